"""The dock widgets' forms: their fields with the command line's defaults, choices and help (as tooltips), and
the checks of what is typed into them, made by the command line's own functions before any work starts.

The defaults, choices and help come from the ``tomoseg`` parser itself (:func:`cli_option`), so a field and
its flag cannot drift apart. No work and no napari here: Qt widgets and text-to-value checks only.
"""

from __future__ import annotations

from functools import lru_cache

from qtpy.QtWidgets import QCheckBox, QComboBox, QLineEdit, QSpinBox

from ..objects.reading import READ_AS
from .choices import LayerChoice, prefer_analyzable
from .layers import COLOUR_BY

OBJECTS_CHOICES = {"model's default": None, "dark": "dark", "bright": "bright"}


@lru_cache(maxsize=None)
def _options(command: str) -> dict:
    from ..cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")  # argparse's subparsers action
    return {a.dest: a for a in sub.choices[command]._actions}


def cli_option(command: str, dest: str):
    """The argparse action of ``tomoseg COMMAND``'s option ``dest`` (``"roi"``, ``"connectivity"``): its
    ``default``, ``choices`` and ``help``."""
    return _options(command)[dest]


def cli_help(command: str, dest: str) -> str:
    """The option's ``--help`` text, as the command line prints it."""
    return cli_option(command, dest).help.replace("%%", "%")


def _combo(items, current, tip: str) -> QComboBox:
    box = QComboBox()
    box.addItems([str(i) for i in items])
    box.setCurrentText(str(current))
    box.setToolTip(tip)
    return box


def _line(placeholder: str, tip: str) -> QLineEdit:
    line = QLineEdit()
    line.setPlaceholderText(placeholder)
    line.setToolTip(tip)
    return line


def _spin(low: int, high: int, value: int, tip: str, step: int = 1) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setToolTip(tip)
    return spin


def backends() -> list[str]:
    """The ``--backend`` choices that run here: openvino only where it is installed."""
    from ..inference.backends import openvino_available

    return [b for b in cli_option("segment", "backend").choices if b != "openvino" or openvino_available()]


def precisions() -> list[str]:
    """The ``--precision`` choices that run here: fp16 only where PyTorch sees a CUDA GPU."""
    from ..inference.backends import cuda_available

    return [p for p in cli_option("segment", "precision").choices if p != "fp16" or cuda_available()]


def devices() -> list[str]:
    """The ``--device`` choices that run here: cuda only where PyTorch sees a CUDA GPU (a cuda chosen without
    one stopped the run with an error after the form was filled)."""
    from ..inference.backends import cuda_available

    return [d for d in ("auto", "cpu", "cuda") if d != "cuda" or cuda_available()]


def segment_form(w) -> None:
    """Segment's fields, on the widget ``w`` and in its form, in the order a user goes through them."""
    w.image = LayerChoice(w.viewer, ("image",))
    w.model = _line("default model (v3); v2; v1; or a .safetensors file", cli_help("segment", "model"))
    w.objects = _combo(OBJECTS_CHOICES, "model's default", cli_help("segment", "objects"))
    w.fill_value = _line("none (NaN and infinities are always no data)", cli_help("segment", "fill_value"))
    w.roi = _line("whole volume (or z0:z1,y0:y1,x0:x1)",
                  cli_help("segment", "roi") + "; in voxels of the image layer; the result layers have the image's "
                  "size, 0 outside the box, as tomoseg segment --roi writes them")
    w.sample_mask = QCheckBox("skip tiles outside the sample")
    w.sample_mask.setChecked(not cli_option("segment", "no_sample_mask").default)
    w.sample_mask.setToolTip("on (default): tiles wholly outside a mask of the sample found automatically (where "
                             "the surroundings are darker than the sample) get probability 0 without running the "
                             "network; off (tomoseg segment --no-sample-mask): "
                             + cli_help("segment", "no_sample_mask") + ". An ROI replaces it")
    w.roi.textChanged.connect(lambda text: w.sample_mask.setEnabled(not text.strip()))
    w.threshold = _spin(0, 254, cli_option("segment", "threshold").default, cli_help("segment", "threshold"))
    w.device = _combo(devices(), cli_option("segment", "device").default,
                      "auto: a CUDA GPU where PyTorch sees one, else the CPU")
    w.backend = _combo(backends(), cli_option("segment", "backend").default, cli_help("segment", "backend"))
    w.precision = _combo(precisions(), cli_option("segment", "precision").default,
                         cli_help("segment", "precision"))
    w.tile_size = _spin(0, 512, 0, "edge of the cubes the model runs on, in voxels (auto: the command line's "
                        "choice for the backend and the memory); larger is faster and needs more memory", step=8)
    w.tile_size.setSpecialValueText("auto")  # 0: the backend's choice, as tomoseg segment makes it
    w.halo = _spin(0, 128, cli_option("segment", "halo").default, cli_help("segment", "halo"))
    for label, field in (("image", w.image), ("model", w.model), ("objects", w.objects),
                         ("fill value", w.fill_value), ("ROI (voxels)", w.roi),
                         ("sample mask", w.sample_mask), ("threshold (0-255)", w.threshold), ("device", w.device),
                         ("backend", w.backend), ("precision", w.precision), ("tile size (voxels)", w.tile_size),
                         ("halo (voxels)", w.halo)):
        w.form.addRow(label, field)


def analyze_form(w) -> None:
    """Analyze's fields, on the widget ``w`` and in its form: the layers, then how they are read and measured."""
    w.source = LayerChoice(w.viewer, ("labels", "image"), prefer=prefer_analyzable)
    w.intensity = LayerChoice(w.viewer, ("image",), optional=True)
    w.intensity.setToolTip(cli_help("analyze", "intensity"))
    w.probability = LayerChoice(w.viewer, ("image",), optional=True)
    w.probability.setToolTip(cli_help("analyze", "probability"))
    w.sample_mask = LayerChoice(w.viewer, ("labels", "image"), optional=True)
    w.sample_mask.setToolTip(cli_help("analyze", "sample_mask"))
    w.truth = LayerChoice(w.viewer, ("labels", "image"), optional=True)
    w.read_as = _combo(READ_AS, cli_option("analyze", "read_as").default,
                       "auto: decide from the values (0/1: mask; 0-255: probability map; object IDs: label image); "
                       "probability: object where value > threshold; mask: object where value is not 0")
    w.threshold = _spin(0, 254, cli_option("analyze", "threshold").default, cli_help("analyze", "threshold"))
    w.connectivity = _combo(cli_option("analyze", "connectivity").choices, cli_option("analyze", "connectivity").default,
                            cli_help("analyze", "connectivity"))
    w.min_voxels = _spin(1, 10**6, cli_option("analyze", "min_voxels").default, cli_help("analyze", "min_voxels"))
    w.keep_border = QCheckBox("keep objects touching the border")
    w.keep_border.setToolTip(cli_help("analyze", "keep_border"))
    w.no_roi = QCheckBox("whole volume, not the box it was segmented in")
    w.no_roi.setToolTip(cli_help("analyze", "no_roi"))
    w.voxel_size = _line("from the layer's scale and units",
                         cli_help("analyze", "voxel_size").replace("overrides the file's", "three values z y x; "
                         "overrides the layer's scale and units (empty: those, where they are a length)"))
    w.color_by = QComboBox()
    w.color_by.addItems(list(COLOUR_BY))
    for label, field in (("mask or probability", w.source), ("gray image", w.intensity),
                         ("probability (of a mask)", w.probability), ("sample mask", w.sample_mask),
                         ("ground truth", w.truth), ("read as", w.read_as), ("threshold (0-255)", w.threshold),
                         ("connectivity", w.connectivity), ("min voxels", w.min_voxels), ("", w.keep_border), ("", w.no_roi),
                         ("voxel size (nm)", w.voxel_size), ("colour by", w.color_by)):
        w.form.addRow(label, field)


def voxel_size_from(text: str):
    """The voxel size field: empty → None; else three lengths (z y x; nm, or with a unit: 0.65um), read by the
    command line's ``--voxel-size`` parser and checked by its check (:func:`tomoseg.io.checked_voxel_size`,
    which warns where one is implausible). Raises :class:`~tomoseg.errors.TomosegError` naming the field."""
    from ..errors import TomosegError
    from ..io import checked_voxel_size
    from ..io.units import parse_length_nm

    parts = text.replace(",", " ").split()
    if not parts:
        return None
    if len(parts) != 3:
        raise TomosegError(f"voxel size {text.strip()!r}: give three lengths z y x in nm (30 30 30) or with a unit "
                           "(0.03um 0.03um 0.03um), or leave it empty for the layer's scale")
    try:
        values = [parse_length_nm(p) for p in parts]
    except ValueError as exc:
        raise TomosegError(f"voxel size: {exc}") from None
    return checked_voxel_size(values, "voxel size")


def roi_from(text: str, shape):
    """The ROI field as ``--roi`` (None where empty), checked against the image's ``shape`` by the command line's
    parser (:func:`tomoseg.sample_mask.parse_roi`): the same syntax, the same messages."""
    from ..sample_mask import parse_roi

    text = text.strip()
    if not text:
        return None
    parse_roi(text, shape)
    return text
