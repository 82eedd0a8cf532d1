"""ONNX export (spatial sizes left dynamic; they must be multiples of 2**(levels-1))."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import torch


def onnx_usage(model) -> dict:
    """What a consumer of the exported network must do as tomoseg does (recorded in the ONNX file's ``tomoseg``
    metadata entry): the input's normalization as segment does it, the spatial divisor, the sigmoid, the threshold
    and the voxel size the model was trained at."""
    from .normalization import CLIP, FENCE, PERCENTILE

    meta = getattr(model, "metadata", None) or {}
    norm = {"method": "zscore", "scope": "whole-volume", **(meta.get("normalization") or {})}
    sign = "-" if norm.get("objects") == "bright" else ""  # (bright objects: the model learned dark ones)
    lo, hi = f"{PERCENTILE:.0%}", f"{1 - PERCENTILE:.0%}"
    return {"input": "float32 (n, 1, z, y, x); z, y, x multiples of divisor (pad, e.g. by reflection)",
            "divisor": model.config.divisor,
            # what segment does (review MF3: the record said "(x - mean) / sd" only)
            "normalization": {**norm, "clip": CLIP,
                              "formula": f"clip({sign}(x - mean) / sd, -{CLIP:g}, {CLIP:g}); 0 where no data",
                              "statistics": ("as tomoseg segment does, although this model was trained on each "
                                             "patch's own statistics (segment warns): "
                                             if norm.get("scope") == "patch" else "") +
                                            f"mean and sd of the whole volume, over the voxels within the fences: "
                                            f"the {lo} and {hi} percentiles each moved out by {FENCE:g} times the "
                                            "distance between them; NaN, inf and the scan's fill value left out",
                              "no_data": "NaN, inf and the fill value: input 0, and probability 0 in the output"},
            "voxel_size_nm": meta.get("voxel_size_nm"),  # the voxel size of the training scans (z, y, x)
            "output": "logits; probability p = sigmoid(logits); tomoseg's map = round(p * 255) as uint8",
            "threshold": meta.get("threshold", 127),
            "mask": "object where round(p * 255) > threshold (p >= 0.5 for 127)",
            "precision": "float32; OpenVINO's CPU plugin may run it in bf16 unless INFERENCE_PRECISION_HINT=f32"}


def export_onnx(model, path, *, opset: int = 17) -> Path:
    """Write ``model`` as ONNX to ``path`` (through ``PATH.partial``), marked as tomoseg's (metadata ``tomoseg``,
    which also records how to use it: :func:`onnx_usage`). ``model`` itself is left as it is (a copy is exported)."""
    from ..errors import have_module, needs_package

    if not have_module("onnx"):  # else PyTorch fails deep inside the export, after tracing the network
        raise needs_package("export-onnx", "onnx")
    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    d = model.config.divisor
    example = torch.zeros(1, 1, 2 * d, 2 * d, 2 * d)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(copy.deepcopy(model).cpu().eval(), (example,), str(tmp), input_names=["image"],
                          output_names=["logits"],
                          dynamic_axes={"image": {0: "n", 2: "z", 3: "y", 4: "x"},
                                        "logits": {0: "n", 2: "z", 3: "y", 4: "x"}},
                          opset_version=opset, dynamo=False)
    from .._version import __version__
    from ..io.onnx_marker import add_marker

    from .model_file import model_identity

    identity = model_identity(model)
    of_file = identity == getattr(model, "sha256", None) and getattr(model, "path", None) is not None
    add_marker(tmp, {"tool": "tomoseg export-onnx", "tomoseg_version": __version__, "opset": opset,  # the tool:
                     "model_sha256": identity,  # how --overwrite knows its own exports
                     "model_file": Path(model.path).name if of_file else None,  # the file of those weights
                     **onnx_usage(model)})
    tmp.replace(path)
    return path
