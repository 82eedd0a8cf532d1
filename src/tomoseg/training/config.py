"""Training configuration: YAML in, validated dataclasses out; defaults live here only.

Every section rejects unknown keys, naming the key and the allowed ones.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

from ..errors import TomosegError
from ..synthetic.pool import RANGE_KEYS  # the physics ranges, in the order they are drawn


MAX_PHANTOMS = 100_000  # per pool key (count, validation_count): beyond it, a typo rather than a plan
_BOOLS = {"true": True, "yes": True, "on": True, "false": False, "no": False, "off": False}


def _coerce(value, annotation: str, key: str):
    """``value`` as the field's type; numbers written as text (YAML reads ``1e-3`` as a string) are accepted."""
    types = [t.strip() for t in str(annotation).split("|")]
    if value is None:
        if "None" in types:
            return None
        raise TomosegError(f"{key}: needs a value ({types[0]}), not an empty entry")
    base = types[0]
    if base == "int":
        if isinstance(value, bool):
            raise TomosegError(f"{key}: {value!r} must be a whole number")
        if isinstance(value, str):
            try:
                value = float(value.strip()) if value.strip() else value
            except ValueError:
                raise TomosegError(f"{key}: {value!r} is not a number; write a whole number, e.g. 10") from None
        if isinstance(value, float):
            if not value.is_integer():
                raise TomosegError(f"{key}: {value!r} must be a whole number")
            value = int(value)
        if not isinstance(value, int):
            raise TomosegError(f"{key}: {value!r} must be a whole number")
        return value
    if base == "float":
        if isinstance(value, bool):
            raise TomosegError(f"{key}: {value!r} must be a number")
        if isinstance(value, str):
            try:
                return float(value.strip())
            except ValueError:
                raise TomosegError(f"{key}: {value!r} is not a number (e.g. 0.001 or 1.0e-3)") from None
        if not isinstance(value, (int, float)):
            raise TomosegError(f"{key}: {value!r} must be a number")
        value = float(value)
        if value != value or value in (float("inf"), float("-inf")):
            raise TomosegError(f"{key}: {value!r} must be a finite number")
        return value
    if base == "bool":
        if isinstance(value, str) and value.strip().lower() == "auto" and "str" in types:
            return "auto"  # the device's choice
        if isinstance(value, str) and value.strip().lower() in _BOOLS:
            return _BOOLS[value.strip().lower()]
        if not isinstance(value, bool):
            raise TomosegError(f"{key}: {value!r} must be true or false" + (" or auto" if "str" in types else ""))
        return value
    if base == "str":
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise TomosegError(f"{key}: {value!r} must be text")
        return value
    if base == "list":
        if not isinstance(value, list):
            raise TomosegError(f"{key}: {value!r} must be a list, e.g. {_list_example(key)}")
        return value
    return value


_LIST_EXAMPLES = {  # an example that fits each list key (the last part of the dotted key)
    "volumes": "[{image: scan.tif, labels: labels.tif}]",
    "validation_volumes": "[{image: scan.tif, labels: labels.tif}]",
    "shape": "[64, 192, 192]", "physics_shape": "[64, 192, 192]", "presets": "[default, noisy]",
    "voxel_size_nm": "[29.33, 29.33, 29.33]", "zoom": "[1.0, 1.25]", "photons": "[250.0, 4000.0]",
    "angles": "[160, 420]", "gain_error": "[0.002, 0.02]", "object_gray": "[95.0, 150.0]",
    "radius_mean": "[2.2, 3.6]", "blur_sigma": "[0.5, 1.2]",
}


def _list_example(key: str) -> str:
    return _LIST_EXAMPLES.get(key.rsplit(".", 1)[-1], "[1, 2]")


def _number(v) -> bool:
    import math

    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _from_dict(cls, values, where: str):
    if values is None:
        return cls()
    if not isinstance(values, dict):
        raise TomosegError(f"config section {where or '(the top level)'!r} must be a mapping of keys to values, "
                           f"not a {type(values).__name__}")
    allowed = {f.name: f for f in fields(cls)}
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        raise TomosegError(f"unknown config key(s) {[f'{where}.{k}' if where else k for k in unknown]}; "
                           f"allowed in {where or 'the top level'}: {sorted(allowed)}")
    kwargs = {}
    for name, value in values.items():
        sub = _SECTIONS.get((cls, name))
        key = f"{where}.{name}" if where else name
        if sub is not None and value is not None:
            kwargs[name] = _from_dict(sub, value, key)
        else:
            kwargs[name] = _coerce(value, allowed[name].type, key)
    return cls(**kwargs)


@dataclass
class PhysicsPool:
    """Physics-mode phantoms (forward projection, Poisson noise, gain errors, FBP) mixed into the pool,
    each parameter drawn uniformly from its [low, high] range per volume."""

    count: int = 0                          # physics volumes in the training pool
    validation_count: int = 0               # and among the validation volumes
    photons: list = field(default_factory=lambda: [250.0, 4000.0])    # per detector pixel and angle
    angles: list = field(default_factory=lambda: [160, 420])
    gain_error: list = field(default_factory=lambda: [0.002, 0.02])    # s.d. of detector gains
    object_gray: list = field(default_factory=lambda: [95.0, 150.0])
    radius_mean: list = field(default_factory=lambda: [2.2, 3.6])      # voxels
    blur_sigma: list = field(default_factory=lambda: [0.5, 1.2])       # voxels

    def __post_init__(self):
        for key in ("count", "validation_count"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 0:
                raise TomosegError(f"data.phantoms.physics.{key} {getattr(self, key)!r} must be a whole number >= 0")
            if getattr(self, key) > MAX_PHANTOMS:
                raise TomosegError(f"data.phantoms.physics.{key} {getattr(self, key)} is more than {MAX_PHANTOMS:,} "
                                   f"phantoms; give at most {MAX_PHANTOMS:,}")
        for key in RANGE_KEYS:
            r = getattr(self, key)
            if (not isinstance(r, (list, tuple)) or len(r) != 2
                    or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in r) or r[0] > r[1]):
                raise TomosegError(f"data.phantoms.physics.{key} {r!r} must be [low, high] numbers, low <= high")


@dataclass
class PhantomData:
    """Phantoms generated from seeds (the default model is trained on these), cached on disk."""

    count: int = 8                          # volumes in the training pool
    shape: list = field(default_factory=lambda: [64, 192, 192])
    presets: list = field(default_factory=lambda: ["default"])
    randomize: bool = False                 # jitter noise, contrast, rings, sizes around each preset
    seed: int = 0                           # volume i uses seed + i
    validation_count: int = 2               # held-out volumes (seeds after the training ones)
    physics: PhysicsPool | None = None      # physics-mode volumes added to the pool (seeds after those)
    physics_shape: list | None = None       # their shape (default: shape); FBP costs ~0.3 s per slice
    cache_dir: str | None = "auto"          # auto: $XDG_CACHE_HOME/tomoseg/phantoms; null: no cache
    workers: int = 0                        # processes generating the pool (0: all cores)
    faded_ends: float = 0.0                 # share of volumes whose end slices fade to a dark, flat field (as
                                            # reconstructions do past the sample's ends): no objects there

    def __post_init__(self):
        from ..synthetic import PRESETS

        for key in ("count", "validation_count", "seed", "workers"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise TomosegError(f"data.phantoms.{key} {value!r} must be a whole number >= 0")
        for key in ("count", "validation_count"):
            if getattr(self, key) > MAX_PHANTOMS:
                raise TomosegError(f"data.phantoms.{key} {getattr(self, key)} is more than {MAX_PHANTOMS:,} phantoms "
                                   "(each is generated, cached on disk and held in memory); give at most "
                                   f"{MAX_PHANTOMS:,}, e.g. 8 to 200")
        for key in ("shape", "physics_shape"):
            shape = getattr(self, key)
            if shape is None and key == "physics_shape":
                continue
            if (len(shape) != 3 or not all(isinstance(v, int) and not isinstance(v, bool) for v in shape)
                    or min(shape) < 8):
                raise TomosegError(f"data.phantoms.{key} {shape!r} must be three whole sizes (z, y, x) of at least 8, "
                                   "e.g. [64, 192, 192]")
        if not self.presets or not all(isinstance(p, str) for p in self.presets):
            raise TomosegError(f"data.phantoms.presets {self.presets!r} must list at least one preset, e.g. "
                               f"[default, noisy]; known: {sorted(PRESETS)}")
        unknown = sorted(set(self.presets) - set(PRESETS))
        if unknown:
            raise TomosegError(f"data.phantoms.presets: unknown {unknown}; known: {sorted(PRESETS)}")
        if self.cache_dir is not None and not self.cache_dir.strip():
            raise TomosegError("data.phantoms.cache_dir '': give a folder, auto ($XDG_CACHE_HOME/tomoseg/phantoms) "
                               "or null (no cache)")
        if not 0 <= self.faded_ends <= 1:
            raise TomosegError(f"data.phantoms.faded_ends {self.faded_ends!r} must be a share between 0 and 1")


def _one_of(config, section: str, choices: dict) -> None:
    """Refuse a key of ``config`` whose value is not one of two words (``choices``: key -> the two, in the order
    the message names them): ``section.key 'x' must be a or b``."""
    for key, (a, b) in choices.items():
        value = getattr(config, key)
        if value not in (a, b):
            raise TomosegError(f"{section}.{key} {value!r} must be {a} or {b}")


@dataclass
class DataConfig:
    phantoms: PhantomData | None = None
    volumes: list = field(default_factory=list)             # [{image: PATH, labels: PATH}, ...]
    validation_volumes: list = field(default_factory=list)  # same form; else a split of `volumes`
    hold_out: float = 0.2        # without validation_volumes (random mode): the share of each training volume's
    #                              annotated slices, at its far end in z, kept out of training to validate on; 0: none
    ignore_value: int = 255                                  # label value meaning "not annotated"
    normalization: str = "volume"                            # volume (whole-volume z-score) | patch (paper's code)
    # what the label files' values mean, where they are not 0/1/ignore_value: {object: 1, background: 2,
    # ignore: 0} reads a napari or ilastik annotation (0 = unpainted). ignore may be left out (every voxel
    # annotated). Applies to data.volumes and data.validation_volumes, not to phantoms
    labels: dict | None = None
    # the user volumes' gray values (as segment --objects, --fill-value): bright objects are flipped for the model
    # (recorded in the model; segment then defaults to it); fill_value means no data (left out of the statistics,
    # normalized to 0). Phantoms are dark objects without fill, whatever these say
    objects: str = "dark"                                     # dark | bright
    fill_value: float | None = None

    def __post_init__(self):
        self._check_labels()
        _one_of(self, "data", {"objects": ("dark", "bright")})
        if self.fill_value is not None and not _number(self.fill_value):
            raise TomosegError(f"data.fill_value {self.fill_value!r} must be a finite gray value, or null")
        _one_of(self, "data", {"normalization": ("volume", "patch")})
        if not _number(self.hold_out) or not 0 <= self.hold_out < 1:
            raise TomosegError(f"data.hold_out {self.hold_out!r} must be a share from 0 (none) to below 1 (0.2: "
                               "the last fifth of each volume's annotated slices)")
        if not 0 <= int(self.ignore_value) <= 255 or self.ignore_value in (0, 1):
            raise TomosegError(f"data.ignore_value {self.ignore_value!r} must be 2..255")
        for entry in list(self.volumes) + list(self.validation_volumes):
            if not isinstance(entry, dict) or set(entry) != {"image", "labels"}:
                raise TomosegError(f"each entry of data.volumes needs exactly 'image' and 'labels', got {entry!r}")

    def _check_labels(self) -> None:
        m = self.labels
        if m is None:
            return
        example = "e.g. {object: 1, background: 2, ignore: 0} (napari, ilastik)"
        if not isinstance(m, dict):
            raise TomosegError(f"data.labels {m!r} must map object, background and (optionally) ignore to the "
                               f"label files' values, {example}")
        unknown = sorted(set(m) - {"object", "background", "ignore"})
        missing = sorted({"object", "background"} - set(m))
        if unknown or missing:
            raise TomosegError("data.labels: " + (f"unknown key(s) {unknown}" if unknown else f"missing {missing}")
                               + f"; give object, background and (optionally) ignore, {example}")
        for key, value in m.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 255:
                raise TomosegError(f"data.labels.{key} {value!r} must be a whole number 0..255 (a value of the "
                                   "label files)")
        if len(set(m.values())) != len(m):
            raise TomosegError(f"data.labels {m!r}: object, background and ignore need different values")
        if self.ignore_value != 255:
            raise TomosegError("data.ignore_value and data.labels are both given: with data.labels, give the value "
                               "of unannotated voxels as data.labels.ignore")

    @property
    def file_ignore(self) -> int | None:
        """The label files' value of unannotated voxels (None: data.labels names none, every voxel counts)."""
        return int(self.ignore_value) if self.labels is None else self.labels.get("ignore")


@dataclass
class SamplingConfig:
    mode: str = "random"              # random patches | paper (non-overlapping sub-volumes, 60/30/10 split)
    patch_size: int = 64
    batch_size: int = 2
    foreground_fraction: float = 0.5  # share of patches centred on an object voxel
    centre_on: str = "voxels"         # voxels: an object voxel drawn uniformly (large objects dominate) |
                                      # objects: an object drawn uniformly, then one of its voxels
    steps_per_epoch: int = 100
    validation_patches: int = 8
    validation: str = "patches"       # what picks best.safetensors: patches (loss) | volumes (voxel F1 of whole volumes)
    validation_cells: str = "annotated"  # grid validation (paper mode, held-out slices): draw among the cells that
                                      # hold annotated voxels (annotated) | among all cells (any; runs before it)
    held_out_cells: str = "all"       # validation on held-out slices (data.hold_out): every grid cell holding
                                      # annotated voxels, up to validation.MAX_HELD_OUT_CELLS (all) |
                                      # validation_patches cells drawn among them (drawn; runs before it)
    patches_from: str = "annotation"  # random mode: keep one slab per run of annotated slices and centre the
                                      # non-object patches on annotated voxels (annotation) | keep one box around
                                      # all of them and draw those patches anywhere in it (box; runs before it)

    def __post_init__(self):
        _one_of(self, "sampling", {"validation": ("patches", "volumes"), "centre_on": ("voxels", "objects"),
                                   "mode": ("random", "paper")})
        if self.patch_size < 8 or self.patch_size % 8:
            raise TomosegError(f"sampling.patch_size {self.patch_size} must be a multiple of 8")
        if self.batch_size < 1 or self.steps_per_epoch < 1:
            raise TomosegError("sampling.batch_size and sampling.steps_per_epoch must be at least 1")
        _one_of(self, "sampling", {"validation_cells": ("annotated", "any"), "held_out_cells": ("all", "drawn"),
                                   "patches_from": ("annotation", "box")})
        if self.validation_patches < 1:
            raise TomosegError(f"sampling.validation_patches {self.validation_patches} must be at least 1")
        if not 0 <= self.foreground_fraction <= 1:
            raise TomosegError("sampling.foreground_fraction must be between 0 and 1")


@dataclass
class AugmentConfig:
    flips: bool = True
    rot90: bool = True
    zoom: list = field(default_factory=lambda: [1.0, 1.25])  # the paper's up-scaling: random zoom factor range
    zoom_probability: float = 0.3
    intensity_scale: float = 0.1      # x (1 ± this)
    intensity_shift: float = 0.1      # ± this, in units of the volume's s.d.
    noise: float = 0.05               # Gaussian noise s.d. (normalized units), random up to this

    def __post_init__(self):
        z = self.zoom
        if (len(z) != 2 or not all(_number(v) for v in z) or not 0.25 <= z[0] <= z[1] <= 4):
            raise TomosegError(f"augment.zoom {z!r} must be two zoom factors [low, high], low <= high, between "
                               "0.25 and 4 (e.g. [1.0, 1.25]; [1.0, 1.0]: no zoom)")
        if not 0 <= self.zoom_probability <= 1:
            raise TomosegError(f"augment.zoom_probability {self.zoom_probability!r} must be between 0 and 1")
        if not 0 <= self.intensity_scale < 1:
            raise TomosegError(f"augment.intensity_scale {self.intensity_scale!r} must be at least 0 and below 1")
        for key in ("intensity_shift", "noise"):
            if getattr(self, key) < 0:
                raise TomosegError(f"augment.{key} {getattr(self, key)!r} must be at least 0")


@dataclass
class OptimConfig:
    learning_rate: float = 1e-3
    weight_decay: float = 0.0
    loss: str = "bce"                 # bce (the paper's) | dice_bce | focal
    schedule: str = "constant"        # constant | cosine (decays to 5 % of the rate over the run)
    loss_after: str | None = None     # switch to this loss ...
    switch_at: float = 0.3            # ... after this share of the budget (steps or minutes)

    def __post_init__(self):
        for key in ("loss", "loss_after"):
            value = getattr(self, key)
            if value not in ("bce", "dice_bce", "focal") and not (key == "loss_after" and value is None):
                raise TomosegError(f"optim.{key} {value!r} must be bce, dice_bce or focal")
        if not 0 <= self.switch_at <= 1:
            raise TomosegError(f"optim.switch_at {self.switch_at!r} must be between 0 and 1")
        if self.schedule not in ("constant", "cosine"):
            raise TomosegError(f"optim.schedule {self.schedule!r} must be constant or cosine")
        if not self.learning_rate > 0:
            raise TomosegError("optim.learning_rate must be positive")
        if not self.weight_decay >= 0:
            raise TomosegError(f"optim.weight_decay {self.weight_decay!r} must be at least 0 (0: none)")


@dataclass
class PerformanceConfig:
    """Speed settings; the defaults are the fastest measured on each device (benchmarks/train_throughput.py)."""

    tf32: bool = True                 # TensorFloat-32 matrix units for f32 work on CUDA
    cudnn_benchmark: bool = True      # let cuDNN time its convolution algorithms once per shape
    compile: bool = False             # torch.compile the model (minutes of start-up; worth it for long runs)
    # channels-last-3D memory format; auto: where it pays (tomoseg.memory_order.channels_last_pays): on the CPU
    # (a training step 1.7x faster in f32, 1.35x in bf16, on 2 cores) and for bf16/fp16 on CUDA with cuDNN 9.8+
    channels_last: bool | str = "auto"

    def __post_init__(self):
        if not (isinstance(self.channels_last, bool) or self.channels_last == "auto"):
            raise TomosegError(f"performance.channels_last {self.channels_last!r} must be true, false or auto")


@dataclass
class ModelSection:
    levels: int = 4
    base_features: int = 8

    def __post_init__(self):
        if not 2 <= self.levels <= 8:
            raise TomosegError(f"model.levels {self.levels} must be 2 to 8 (the paper's model: 4)")
        if not 1 <= self.base_features <= 256:
            raise TomosegError(f"model.base_features {self.base_features} must be 1 to 256 (the paper's model: 8)")


@dataclass
class TrainConfig:
    output: str = "runs/train"
    model: ModelSection = field(default_factory=ModelSection)
    init: str | None = None           # None (random) | "default" (the shipped model) | PATH
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    epochs: int = 10
    seed: int = 0
    device: str = "auto"              # auto | cpu | cuda | cuda:N
    precision: str = "auto"           # auto (bf16 on CUDA and bf16-capable CPUs, else f32) | f32 | bf16 | fp16 (CUDA)
    max_minutes: float | None = None  # time budget of the training steps; the run ends at whichever budget ends first
    performance: PerformanceConfig = field(default_factory=PerformanceConfig)
    voxel_size_nm: list | None = None  # recorded in the model; phantoms: 29.33

    def __post_init__(self):
        if not isinstance(self.epochs, int) or isinstance(self.epochs, bool) or self.epochs < 1:
            raise TomosegError(f"epochs {self.epochs!r} must be a whole number of at least 1")
        if self.seed < 0:
            raise TomosegError(f"seed {self.seed} must be a whole number >= 0")
        divisor = 2 ** (self.model.levels - 1)
        if self.sampling.patch_size % divisor:
            raise TomosegError(f"sampling.patch_size {self.sampling.patch_size} must be a multiple of {divisor} for "
                               f"model.levels {self.model.levels} (the network halves a patch {self.model.levels - 1} "
                               f"times); e.g. patch_size {max(divisor, self.sampling.patch_size // divisor * divisor)}")
        if not isinstance(self.device, str) or not (
                self.device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", self.device)):
            raise TomosegError(f"device {self.device!r} must be auto, cpu, cuda or cuda:N")
        if self.precision not in ("auto", "f32", "bf16", "fp16"):
            raise TomosegError(f"precision {self.precision!r} must be auto, f32, bf16 or fp16")
        if self.max_minutes is not None and not (isinstance(self.max_minutes, (int, float)) and self.max_minutes > 0):
            raise TomosegError(f"max_minutes {self.max_minutes!r} must be a positive number of minutes")
        if self.voxel_size_nm is not None:
            from ..io.volume import check_voxel_size

            try:
                self.voxel_size_nm = list(check_voxel_size(self.voxel_size_nm))
            except TomosegError:
                raise TomosegError(f"voxel_size_nm {self.voxel_size_nm!r} must be three positive numbers (z, y, x) "
                                   "in nm, e.g. [29.33, 29.33, 29.33]") from None
        if not self.data.volumes and self.data.phantoms is None:
            raise TomosegError("the training set is empty: give data.volumes or data.phantoms")

    def to_dict(self) -> dict:
        return asdict(self)


_SECTIONS = {
    (TrainConfig, "model"): ModelSection, (TrainConfig, "data"): DataConfig,
    (TrainConfig, "sampling"): SamplingConfig, (TrainConfig, "augment"): AugmentConfig,
    (TrainConfig, "optim"): OptimConfig, (DataConfig, "phantoms"): PhantomData,
    (TrainConfig, "performance"): PerformanceConfig, (PhantomData, "physics"): PhysicsPool,
}


def config_from_dict(values: dict) -> TrainConfig:
    """Validate a plain dict (e.g. parsed YAML) into a :class:`TrainConfig`."""
    return _from_dict(TrainConfig, values or {}, "")


def shipped_configs() -> dict:
    """The example configs installed with tomoseg (the repository's ``configs/``), by file name."""
    folder = Path(__file__).resolve().parents[1] / "configs"
    found = sorted(folder.glob("*.yaml")) + sorted(folder.glob("experiments/*.yaml"))
    return {str(f.relative_to(folder)): f for f in found}


def find_config(path) -> Path:
    """``path`` where it exists; else, for a bare name (``finetune-default.yaml``, ``finetune-default``) or one
    under ``configs/`` (as the README writes them, from a folder without them), the example config of that name
    installed with tomoseg, said in a note. A path found nowhere is refused, listing the examples."""
    path = Path(path).expanduser()
    if path.exists():
        return path
    name = str(path.relative_to("configs") if path.parts[:1] == ("configs",) else path)
    shipped = shipped_configs()
    for candidate in (name, f"{name}.yaml"):
        if candidate in shipped:
            from ..errors import note

            note(f"{path}: not in this folder; using the example config installed with tomoseg, "
                 f"{shipped[candidate]} (copy it to change it)")
            return shipped[candidate]
    names = ", ".join(n for n in shipped if "/" not in n)
    raise TomosegError(f"{path}: config file not found; the examples installed with tomoseg, usable by name: "
                       f"{names} (copy one to change it: tomoseg train --example NAME > my.yaml)")


def read_yaml(path):
    """The parsed contents of a YAML config file, with a clear error if it is missing or malformed."""
    import yaml

    path = find_config(path)
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise TomosegError(f"{path}: not valid YAML{where} ({problem})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TomosegError(f"{path}: config file cannot be read ({exc})") from None


def load_config(path) -> TrainConfig:
    """A config file: its data paths (and ``init``) that are relative and not found from the current folder are
    looked for beside the config file, as a config written next to its data expects."""
    values = read_yaml(path)
    if isinstance(values, dict):
        values = _beside(values, Path(path).resolve().parent)
    return config_from_dict(values)


def _beside(values: dict, folder: Path) -> dict:
    from ..io import split_dataset

    def found(entry):
        if not isinstance(entry, str) or entry in ("default", "v1", "v2", "v3"):
            return entry
        file, dataset = split_dataset(entry)
        if file.is_absolute() or file.exists() or not (folder / file).exists():
            return entry
        return str(folder / file) + (f":{dataset}" if dataset else "")

    values = dict(values)
    data = values.get("data")
    if isinstance(data, dict):
        data = dict(data)
        for key in ("volumes", "validation_volumes"):
            if isinstance(data.get(key), list):
                data[key] = [{k: found(v) for k, v in e.items()} if isinstance(e, dict) else e for e in data[key]]
        values["data"] = data
    if "init" in values:
        values["init"] = found(values["init"])
    return values


def dump_config(config: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def is_config(obj) -> bool:
    return is_dataclass(obj) and isinstance(obj, TrainConfig)
