"""ONNX export (spatial sizes left dynamic; they must be multiples of 2**(levels-1))."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch


def export_onnx(model, path, *, opset: int = 17) -> Path:
    """Write ``model`` as ONNX to ``path`` (through ``PATH.partial``), marked as tomoseg's (metadata ``tomoseg``)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    d = model.config.divisor
    example = torch.zeros(1, 1, 2 * d, 2 * d, 2 * d)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(copy.deepcopy(model).cpu().eval(), (example,), str(tmp), input_names=["image"], output_names=["logits"],
                          dynamic_axes={"image": {0: "n", 2: "z", 3: "y", 4: "x"},
                                        "logits": {0: "n", 2: "z", 3: "y", 4: "x"}},
                          opset_version=opset, dynamo=False)
    from .._version import __version__
    from ..io.onnx_marker import add_marker

    add_marker(tmp, {"tool": "tomoseg export-onnx", "tomoseg_version": __version__, "opset": opset,
                     "model_sha256": getattr(model, "sha256", None)})  # how --overwrite knows its own exports
    tmp.replace(path)
    return path
