"""``tomoseg info MODEL``: what a model file says about itself (architecture, the data it expects, how it was
trained and scored).

The fields ``segment`` acts on (threshold, voxel size, normalization) are checked when the file is loaded
(:func:`tomoseg.architecture.check_expectations`); the descriptive ones (training, init, held-out scores) are
shown where they can be read and said to be unreadable where not, never a traceback (review MF1).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..io.units import voxel_size_text

UNREADABLE = "(not readable in this file)"


# files info takes for models: tomoseg's, PyTorch's pickles (refused, with how to convert them) and ONNX exports
MODEL_SUFFIXES = (".safetensors", ".pt", ".pth", ".ckpt", ".pkl", ".onnx")


def is_model(arg: str) -> bool:
    """Whether ``info`` describes ``arg`` as a model: a file of :data:`MODEL_SUFFIXES` or a shipped model's name
    (where no file or folder of that name, a volume, is in the working folder)."""
    from ..shipped import looks_like_a_name, names_shipped_model

    return Path(arg).suffix.lower() in MODEL_SUFFIXES or looks_like_a_name(arg) or (
        names_shipped_model(arg) and not Path(arg).exists())


def onnx_info(path: Path, as_json: bool) -> int:
    """Describe an ONNX file tomoseg exported, from the usage record in its metadata (review MF4)."""
    from ..errors import TomosegError
    from ..io.onnx_marker import read_marker
    from ..shipped import shipped_name

    if not path.is_file():
        raise TomosegError(f"{path}: " + ("is a folder, not an ONNX file" if path.is_dir() else "file not found"))
    record = read_marker(path)
    if record is None or record.get("tool") != "tomoseg export-onnx":
        raise TomosegError(f"{path}: is not an ONNX file exported by tomoseg (no tomoseg entry in its metadata); "
                           "tomoseg info describes tomoseg's .safetensors models and their exports")
    sha = record.get("model_sha256")
    info = {"path": str(path), "format": "onnx", "exported_from": {"sha256": sha, "shipped": shipped_name(str(sha))},
            **record}
    if as_json:
        print(json.dumps(info))
        return 0
    norm, voxel = _dict(record.get("normalization")), record.get("voxel_size_nm")
    shipped = info["exported_from"]["shipped"]
    lines = [f"path          {path}  (ONNX export, opset {record.get('opset', '?')}, tomoseg "
             f"{record.get('tomoseg_version', '?')})",
             f"exported from {record.get('model_file') or 'model'} (sha256 {sha})"
             + (f" (shipped: {shipped})" if shipped else ""),
             f"input         {record.get('input', UNREADABLE)}; divisor {record.get('divisor', '?')}",
             f"normalize     {norm.get('formula', UNREADABLE)}; {norm.get('statistics', '')}".rstrip("; "),
             "voxel size    " + (voxel_size_text(voxel) + " (training scans)"
                                 if isinstance(voxel, list) else "not recorded"),
             f"output        {record.get('output', UNREADABLE)}",
             f"threshold     {record.get('threshold', '?')} (of 255): {record.get('mask', '')}".rstrip(": "),
             f"precision     {record.get('precision', UNREADABLE)}"]
    print("\n".join(lines))
    return 0


def _dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _number(value, spec: str) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "n/a" if value != value else format(value, spec)
    return "n/a" if value is None else UNREADABLE


def model_info(arg: str, as_json: bool) -> int:
    """Print what the model ``arg`` (a file or a shipped name) says about itself; 0."""
    import tomoseg
    from ..shipped import INTENDED_USE, model_card_path, model_path, shipped_name

    if Path(arg).suffix.lower() == ".onnx":
        return onnx_info(Path(arg), as_json)
    model = tomoseg.load_model(arg)  # a pickle (.pt, .pth, .ckpt) is refused here, saying how to convert it
    meta = {k: v for k, v in model.metadata.items() if k != "input_histogram"}
    training = {k: v for k, v in _dict(meta.get("training")).items() if k != "config"}
    total, trainable = tomoseg.count_parameters(model)
    info = {"path": str(model_path(arg)), "shipped": shipped_name(model.sha256), "sha256": model.sha256,
            "parameters": total, "trainable_parameters": trainable, **meta, "training": training,
            "training_data": _training_data(model.metadata)}
    info["intended_use"] = INTENDED_USE if info["shipped"] else None  # (a user's model: theirs to say)
    card = model_card_path() if info["shipped"] else None
    info["model_card"] = str(card) if card else None
    info["segment_refuses"] = _not_runnable(model)
    if as_json:  # valid JSON for every reader: NaN (files written before review R9) as null
        from ..io.result_folders import json_safe

        print(json.dumps(json_safe(info), allow_nan=False))
        return 0
    normalization, voxel = _dict(meta.get("normalization")), meta.get("voxel_size_nm")
    tr, held = _dict(meta.get("trained_on")), _dict(meta.get("held_out"))
    lines = [
        f"path          {info['path']}" + (f"  (shipped: {info['shipped']})" if info["shipped"] else ""),
        f"network       3D U-Net, {model.config.levels} levels, base {model.config.base_features} features; "
        f"{total:,} parameters ({trainable:,} trainable)",
        "expects       " + ("per-patch" if normalization.get("scope") == "patch" else "whole-volume")
        + " z-scored gray values; voxel size "
        + (voxel_size_text(voxel) if voxel else "unknown"),
        f"threshold     {meta.get('threshold', 127)} (of 255)",
    ]
    lines.append(f"objects       {_objects(model.metadata)}")
    refused = _not_runnable(model)
    if refused:
        lines.append(f"segment       cannot run it: {refused}")
    if info["shipped"]:
        lines.append(f"intended      {INTENDED_USE}")
        if info["model_card"]:
            lines.append(f"model card    {info['model_card']}")
    if info["training_data"]:
        lines.append(f"trained on    {info['training_data']}")
    if training:
        lines.append(f"trained       {training.get('step', '?')} steps" + (f", recipe {training['recipe']}"
                     if training.get("recipe") else "") + (f", on {tr.get('gpu') or tr.get('device')}" if tr else ""))
    lines += _training_outcome(meta)
    mean = _dict(held.get("mean"))
    if mean:
        lines.append(f"held-out      voxel recall {_number(mean.get('recall'), '.3f')}, precision "
                     f"{_number(mean.get('precision'), '.3f')}, object F1 {_number(mean.get('object_f1'), '.3f')} "
                     f"(mean of {held.get('benchmark', 'the benchmark')})")
    print("\n".join(lines))
    return 0


def _not_runnable(model) -> str | None:
    """Why predict and segment refuse this model (channels, normalization), else None (review MF12)."""
    from ..errors import TomosegError
    from ..inference.model_file import check_runnable

    try:
        check_runnable(model)
    except TomosegError as exc:
        return str(exc).split(": ", 1)[-1]
    return None


def _objects(meta: dict) -> str:
    """The objects a model finds: dark or bright, and the radii of its training phantoms' objects where it learned
    from phantoms."""
    from ..inference.domain import learned_radius

    objects = _dict(meta.get("normalization")).get("objects", "dark")
    radius = learned_radius(meta)
    return (f"{objects}er than the matrix" + (f", about {radius[0]:g}-{radius[1]:g} voxels in radius (its "
                                              "training phantoms')" if radius else ""))


def _training_data(meta: dict) -> str | None:
    """What a model was trained on, from the training config its file records (review MF7): the phantoms (how
    many, of which presets, their size) and the annotated volumes; None where the file records no config."""
    data = _dict(_dict(_dict(meta.get("training")).get("config")).get("data"))
    parts = []
    phantoms = _dict(data.get("phantoms"))
    if phantoms:
        presets, shape = phantoms.get("presets"), phantoms.get("shape")
        physics = _dict(phantoms.get("physics"))
        parts.append(f"{phantoms.get('count', '?')} synthetic phantoms"
                     + (f" of {len(presets)} presets" if isinstance(presets, list) else "")
                     + (f" ({' × '.join(str(s) for s in shape)} voxels)" if isinstance(shape, list) else "")
                     + (f" and {physics.get('count', '?')} physics-mode phantoms (projections and FBP "
                        "reconstruction)" if physics else ""))
    volumes = [v.get("image") for v in data.get("volumes") or [] if isinstance(v, dict)] \
        if isinstance(data.get("volumes"), list) else []
    if volumes:
        parts.append(f"{len(volumes)} annotated volume{'s' if len(volumes) > 1 else ''}: "
                     + ", ".join(str(v) for v in volumes[:3]) + (", ..." if len(volumes) > 3 else ""))
    return "; ".join(parts) or None


def _training_outcome(meta: dict) -> list[str]:
    """What a model trained by ``tomoseg train`` started from and how it scored on its run's validation data."""
    lines, init = [], meta.get("init")
    training = _dict(meta.get("training"))
    if isinstance(init, dict) and init:
        name = init.get("name", "?")
        shipped = f"the shipped {init['shipped']}" if init.get("shipped") else init.get("path") or name
        lines.append(f"fine-tuned    from {name} ({shipped}, sha256 {str(init.get('sha256'))[:12]}…, "
                     f"tomoseg {init.get('tomoseg_version') or '?'})")
    elif init:
        lines.append(f"fine-tuned    from {UNREADABLE}")
    elif _dict(training.get("config")).get("init"):  # a model of a run before the init was recorded
        lines.append(f"fine-tuned    from {training['config']['init']} (which file then is not recorded)")
    val = _dict(training.get("validation"))
    if val.get("val_loss") is not None:
        source = _dict(meta.get("setup")).get("validation_source")
        epoch = training.get("epoch")
        lines.append(f"validation    epoch {epoch}" + (" (the init model: no epoch beat it)" if epoch == 0 else "")
                     + f": loss {_number(val['val_loss'], '.4g')}, voxel recall {_number(val.get('recall'), '.3f')}, "
                     f"precision {_number(val.get('precision'), '.3f')}, F1 {_number(val.get('f1'), '.3f')}"
                     + (f" on {source}" if source else ""))
    return lines
