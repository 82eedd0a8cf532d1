"""Ablation configuration: YAML in, a validated dataclass out, checked before any training.

A study names the network configurations to train (``"4/8"``: 4 levels, base 8 features),
the variants of the reference configuration (normalization, loss), the classical baselines,
the shared training recipe (the keys of ``tomoseg train``), and the held-out phantoms.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from ..errors import TomosegError

MAX_HELD_OUT = 1000  # held-out phantoms: generated at each study, all in memory

PAPER_CONFIGURATIONS = ("4/8", "4/6", "4/4", "3/8", "3/6", "3/4")   # the rows of the paper's Table 2
VARIANTS = {
    "patch-normalization": "trained with the paper's per-sub-volume z-score",
    "dice-bce": "trained with Dice + BCE instead of BCE",
}
BASELINES = {
    "otsu": "Otsu's threshold inside the sample",
    "best-threshold": "the best single gray threshold inside the sample, chosen knowing the labels",
    "random-forest": "random forest on Gaussian filter features (as ilastik does)",
}
_NAME = re.compile(r"^(\d+)/(\d+)$")


def parse_configuration(name) -> tuple[int, int]:
    """``"4/8"`` -> ``(4, 8)``: levels 2..5, base features 2..64."""
    m = _NAME.match(str(name).strip())
    if m:
        levels, base = int(m.group(1)), int(m.group(2))
        if 2 <= levels <= 5 and 2 <= base <= 64:
            return levels, base
    raise TomosegError(f"unknown configuration {name!r}: write LEVELS/BASE_FEATURES with levels 2..5 and base "
                       f"2..64, e.g. the paper's {list(PAPER_CONFIGURATIONS)}")


@dataclass
class EvaluationPhantoms:
    """The held-out set: phantoms from seeds ``seed .. seed+count-1`` (presets in turn, never used in
    training), and/or the user's fully labelled volumes ``[{image: PATH, labels: PATH, sample: PATH}]``
    (``sample``, optional: a mask of the specimen, where the threshold baselines look; default everywhere)."""

    count: int = 3
    shape: list = field(default_factory=lambda: [64, 192, 192])
    seed: int = 9500
    presets: list = field(default_factory=lambda: ["default", "noisy", "low-contrast"])
    subvolume: int = 96          # the per-sub-volume inference window of the paper-normalized model
    volumes: list = field(default_factory=list)

    def __post_init__(self):
        from ..synthetic import PRESETS

        for entry in self.volumes:
            if not isinstance(entry, dict) or not {"image", "labels"} <= set(entry) <= {"image", "labels", "sample"}:
                raise TomosegError(f"each entry of evaluation.volumes needs 'image' and 'labels' (and optionally "
                                   f"'sample'), got {entry!r}")
            for key, path in entry.items():
                if not Path(str(path).split(".h5:")[0]).exists():
                    raise TomosegError(f"evaluation.volumes: {key} {path}: file not found")
        if self.count < 0 or (self.count == 0 and not self.volumes):
            raise TomosegError("the held-out set is empty: set evaluation.count >= 1 or list evaluation.volumes")
        if len(self.shape) != 3 or min(self.shape) < 16:
            raise TomosegError(f"evaluation.shape {self.shape} must be three sizes of at least 16")
        unknown = sorted(set(self.presets) - set(PRESETS))
        if unknown or not self.presets:
            raise TomosegError(f"evaluation.presets: unknown {unknown or '(empty)'}; known: {sorted(PRESETS)}")
        if self.subvolume < 16 or self.subvolume % 8:
            raise TomosegError(f"evaluation.subvolume {self.subvolume} must be a multiple of 8, at least 16")
        if not isinstance(self.count, int) or self.count > MAX_HELD_OUT:
            raise TomosegError(f"evaluation.count {self.count!r} must be a whole number up to {MAX_HELD_OUT:,} (the "
                               "held-out phantoms are generated at each study and held in memory), e.g. 3 to 20")
        if self.count:
            from ..synthetic.config import preset
            from ..synthetic.phantom import check_fits

            for name in self.presets[:self.count]:
                try:
                    check_fits(tuple(self.shape), preset(name))
                except TomosegError as exc:
                    raise TomosegError(f"evaluation.shape {self.shape} (preset {name}): {exc}") from None

    def memory_bytes(self) -> int:
        """Bytes the held-out phantoms take in memory: image, labels and sample mask (a byte each a voxel)."""
        voxels = 1
        for s in self.shape:
            voxels *= int(s)
        return 3 * voxels * self.count


@dataclass
class AblationConfig:
    output: str = "runs/ablation"
    configurations: list = field(default_factory=lambda: list(PAPER_CONFIGURATIONS))
    reference: str = "4/8"        # the configuration the variants change
    variants: list = field(default_factory=lambda: list(VARIANTS))
    baselines: list = field(default_factory=lambda: list(BASELINES))
    train: dict = field(default_factory=dict)       # a `tomoseg train` config without output and model
    evaluation: EvaluationPhantoms = field(default_factory=EvaluationPhantoms)

    def __post_init__(self):
        if not isinstance(self.configurations, list):
            raise TomosegError(f"configurations {self.configurations!r} must be a list, e.g. [\"4/8\", \"3/6\"]")
        if not self.configurations:
            raise TomosegError("configurations is empty: list at least one, e.g. "
                               f"{list(PAPER_CONFIGURATIONS)}")
        parsed = [parse_configuration(c) for c in self.configurations]
        if len(set(parsed)) != len(parsed):
            raise TomosegError(f"configurations lists one twice: {self.configurations}")
        for key, known in (("variants", VARIANTS), ("baselines", BASELINES)):
            values = getattr(self, key) or []
            if not isinstance(values, list):
                raise TomosegError(f"{key} {values!r} must be a list, e.g. {sorted(known)[:2]}")
            unknown = sorted(set(values) - set(known))
            if unknown:
                raise TomosegError(f"unknown {key} {unknown}; known: {sorted(known)}")
            setattr(self, key, list(values))
        if "random-forest" in self.baselines:
            import importlib.util

            if importlib.util.find_spec("sklearn") is None:
                from ..errors import needs_package

                raise needs_package("the random-forest baseline", "scikit-learn",
                                    "or remove random-forest from baselines")
        if self.variants and parse_configuration(self.reference) not in parsed:
            raise TomosegError(f"reference {self.reference!r} must be one of the configurations "
                               f"{self.configurations} (the variants change it)")
        if self.train is not None and not isinstance(self.train, dict):
            raise TomosegError("config section 'train' must be a mapping of keys to values (the keys of tomoseg "
                               f"train), not a {type(self.train).__name__}")
        if not isinstance(self.output, str) or not self.output.strip():
            raise TomosegError(f"output {self.output!r} must be a folder name, e.g. runs/ablation")
        for key in ("output", "model"):
            if key in (self.train or {}):
                raise TomosegError(f"train.{key} is set by the ablation itself; remove it")
        recipe = self.train_config()  # validate the training recipe now, before any work
        if recipe.data.normalization != "volume":
            raise TomosegError(f"train.data.normalization {recipe.data.normalization!r}: the study's rows and the "
                               "random-forest baseline are whole-volume z-scored; remove the key (the "
                               "patch-normalization variant trains the per-patch model)")
        self._check_held_out_is_not_trained_on(recipe)

    def _check_held_out_is_not_trained_on(self, recipe) -> None:
        """The held-out phantoms' seeds are none of the training or validation phantoms' seeds, and no held-out
        volume is a training or validation volume."""
        ev, phantoms = self.evaluation, recipe.data.phantoms
        if phantoms is not None and ev.count:
            from ..training.data import phantom_specs

            seeds = [it["seed"] for v in (False, True) for it in phantom_specs(phantoms, validation=v)]
            if seeds and ev.seed <= max(seeds) and min(seeds) <= ev.seed + ev.count - 1:
                raise TomosegError(f"evaluation.seed {ev.seed}..{ev.seed + ev.count - 1} overlaps the training "
                                   f"phantoms' seeds {min(seeds)}..{max(seeds)}, so held-out phantoms would be "
                                   f"training ones; set evaluation.seed to {max(seeds) + 1} or more (or below "
                                   f"{min(seeds) - ev.count + 1})")
        trained = {Path(str(e["image"])).resolve(): key for key in ("volumes", "validation_volumes")
                   for e in getattr(recipe.data, key)}
        for entry in ev.volumes:
            key = trained.get(Path(str(entry["image"])).resolve())
            if key:
                raise TomosegError(f"evaluation.volumes: {entry['image']} is also in train.data.{key}; hold out a "
                                   "volume the models are not trained or validated on")

    def train_config(self, configuration: str | None = None, variant: str | None = None, **changes):
        """The training config of one row: the shared recipe with its model and output."""
        from ..training import config_from_dict

        values = dict(self.train or {})
        levels, base = parse_configuration(configuration or self.reference)
        values["model"] = {"levels": levels, "base_features": base}
        values["output"] = str(Path(self.output) / "models" / row_name(configuration or self.reference, variant))
        for dotted, value in changes.items():
            section, key = dotted.split(".")
            values[section] = {**(values.get(section) or {}), key: value}
        return config_from_dict(values)

    def to_dict(self) -> dict:
        return asdict(self)


def row_name(configuration: str, variant: str | None = None) -> str:
    levels, base = parse_configuration(configuration)
    return f"{levels}-{base}" + (f"-{variant}" if variant else "")


def _check_keys(values: dict, cls, where: str = "") -> None:
    """Unknown keys fail, naming them and the allowed ones (``where``: the section, for nested ones)."""
    allowed = sorted(f.name for f in fields(cls))
    unknown = sorted(set(values) - set(allowed))
    if unknown:
        names = [f"{where}.{k}" for k in unknown] if where else unknown
        raise TomosegError(f"unknown {'' if where else 'ablation config '}key(s) {names}; allowed: {allowed}")


def ablation_from_dict(values: dict) -> AblationConfig:
    if not isinstance(values, dict):
        raise TomosegError("an ablation config must be a mapping of keys to values")
    _check_keys(values, AblationConfig)
    values = dict(values)
    ev = values.get("evaluation") or {}
    if not isinstance(ev, dict):
        raise TomosegError("evaluation must be a mapping")
    _check_keys(ev, EvaluationPhantoms, "evaluation")
    values["evaluation"] = EvaluationPhantoms(**ev)
    if "configurations" in values and values["configurations"] is None:
        values["configurations"] = []
    return AblationConfig(**values)


def load_ablation_config(path) -> AblationConfig:
    from ..training.config import read_yaml

    return ablation_from_dict(read_yaml(path) or {})
