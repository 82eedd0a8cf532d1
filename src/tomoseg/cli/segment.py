"""Sub-commands ``segment`` and ``export-onnx``."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .. import interrupt
from ..errors import TomosegError
from .registry import checked_voxel_size, command, overwrite_arg, voxel_size_arg


@command("segment")
def _segment(sub):
    p = sub.add_parser(
        "segment", help="segment a volume: probability map (uint8 0-255) and optional mask",
        description="Segment precipitates and pores in a volume of any size, tile by tile in bounded memory. "
                    "Writes the probability map (uint8, round(probability x 255)) and optionally the binary mask "
                    "(value > threshold). A provenance JSON is written beside the output.")
    p.add_argument("input", help="input volume (TIFF, folder of slices, file.h5:/dataset, .zarr, .nrrd, .vol, .npy)")
    p.add_argument("output", help="probability map to write (.zarr recommended for large volumes)")
    p.add_argument("--model", help="model file (.safetensors), or a shipped model's name: default (v3), v2 or v1 "
                                   "(the first default model); default: the shipped default")
    p.add_argument("--mask", metavar="MASK_OUT", help="also write the binary mask here")
    p.add_argument("--labels", metavar="LABELS_OUT",
                   help="also write the object label image here (as `analyze --labels` does: IDs in raster order, "
                        "objects on the border or under 8 voxels are 0); any format")
    p.add_argument("--threshold", type=int, default=127, metavar="0-254",
                   help="object where round(probability x 255) > this, an integer from 0 to 254 (default 127: "
                        "p >= 0.5)")
    p.add_argument("--tile-size", type=int, default=None, metavar="VOXELS",
                   help="a read window holds at most (tile size + 2 x halo)^3 voxels; its shape is fitted to the "
                        "volume (default: 224 with OpenVINO, windows of up to 320^3, about 3 GB; 160 with PyTorch on "
                        "the CPU, about 4 GB; on CUDA the largest whose windows fit the GPU's memory)")
    p.add_argument("--halo", type=int, default=48, metavar="VOXELS", help="context around each tile in voxels (default 48: as whole-volume inference; 16 is about 1.7x faster, see docs/segment.md)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--backend", default="auto", choices=["auto", "openvino", "torch"],
                   help="auto: OpenVINO on CPU where installed, else PyTorch")
    p.add_argument("--precision", default="f32", choices=["f32", "bf16", "fp16"],
                   help="f32 (exact; the default), bf16 (faster on CPUs with bf16 units and on GPUs), fp16 (CUDA)")
    p.add_argument("--stats", default="auto", choices=["auto", "full", "sample"],
                   help="normalization statistics from every voxel (full) or from 5%% of the layers of storage "
                        "chunks along z, at least 8, evenly spread (sample: one read of a few layers for them "
                        "and the sample mask); auto: full up to 2^31 voxels")
    p.add_argument("--objects", choices=["dark", "bright"], default=None,
                   help="objects darker than their surroundings (pores, light precipitates) or brighter (heavy-"
                        "element precipitates: the gray values are flipped for the model); default: what the "
                        "model was trained for (dark for the shipped model)")
    p.add_argument("--fill-value", type=float, metavar="V", default=None,
                   help="a gray value that means no data (the constant outside the reconstructed cylinder, e.g. "
                        "-32768 or -1, or padded slices): left out of the statistics, probability 0. NaN and "
                        "infinities are always treated so")
    sample = p.add_mutually_exclusive_group()
    sample.add_argument("--sample-mask", metavar="FILE",
                        help="mask volume of the input's shape (nonzero = sample): tiles wholly outside it "
                             "and its halo (--halo voxels, so objects at its edge are whole) get probability 0 "
                             "without running the network (default: a mask found automatically "
                             "where the surroundings are darker than the sample, see docs/segment.md)")
    sample.add_argument("--roi", metavar="Z0:Z1,Y0:Y1,X0:X1",
                        help="segment only this box (empty ends: the volume's ends); the rest gets probability 0 "
                             "(the network runs on the tiles that touch the box, with their context)")
    sample.add_argument("--no-sample-mask", action="store_true",
                        help="run the network on every tile (no automatic sample mask)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run")
    p.add_argument("--workers", type=int, metavar="N",
                   help="run on a local Dask cluster with this many worker processes, which share this run's "
                        "cores (default: none, one process)")
    p.add_argument("--dask-scheduler", metavar="ADDRESS", help="run on an existing Dask cluster (tcp://host:8786)")
    p.add_argument("--gpus", type=int, metavar="N",
                   help="use N GPUs of this machine: a local Dask cluster of N workers, one per GPU (cuda:0 to "
                        "cuda:N-1); the output is byte-identical to a run on one GPU")
    voxel_size_arg(p)
    overwrite_arg(p)
    p.set_defaults(run=_run_segment)


def _run_segment(args) -> int:
    from . import progress_enabled
    from ..inference import BackendConfig, SegmentOptions, TilingConfig, segment

    if args.workers is not None and args.workers < 1:
        raise TomosegError(f"--workers {args.workers}: give at least 1")
    if args.dask_scheduler is not None:
        check_scheduler_address(args.dask_scheduler)
    options = SegmentOptions(
        threshold=args.threshold, tiling=TilingConfig(tile_size=args.tile_size, halo=args.halo),
        backend=BackendConfig(backend=args.backend, device=args.device, precision=args.precision),
        stats=args.stats, voxel_size=checked_voxel_size(args.voxel_size), resume=args.resume,
        overwrite=args.overwrite, workers=args.workers, scheduler=args.dask_scheduler, gpus=args.gpus,
        sample_mask="off" if args.no_sample_mask else (args.sample_mask or "auto"), roi=args.roi,
        objects=args.objects, fill_value=args.fill_value)
    from ..inference.outputs import check_output_dataset_name
    from ..io.output_guard import check_outputs_apart

    if args.labels:
        if str(args.labels) in (str(args.output), str(args.mask)):
            raise TomosegError(f"--labels {args.labels}: the label image needs a path of its own")
        check_output_dataset_name("--labels", args.labels)
    # every output against every input (--sample-mask too, with or without --labels) and each other
    check_outputs_apart([(None, args.output), ("--mask", args.mask), ("--labels", args.labels)],
                        inputs=[(None, args.input), ("--sample-mask", args.sample_mask)])
    if args.labels:
        _check_labels_output(args)
    if args.sample_mask and not args.no_sample_mask and args.roi is None:  # a mask cut elsewhere: said (brief H2)
        from ..io.placement import warn_if_files_placed_apart

        warn_if_files_placed_apart(args.input, args.input, args.sample_mask, f"--sample-mask {args.sample_mask}",
                                   how="matched voxel by voxel (the mask chooses the tiles to segment)")
    record = segment(args.input, args.output, model=args.model, mask_output=args.mask, options=options,
                     progress=progress_enabled(args))
    if args.labels:
        args.stage = "labels"  # the map is complete: an interruption from here is not resumed (cli._resume_hint)
        _write_labels(args, record)
    interrupt.finished()  # every output is in place: a signal from here does not make the run "interrupted"
    shape = record["input_shape"]
    vox = shape[0] * shape[1] * shape[2]
    print(f"segmented {'x'.join(map(str, shape))} ({vox / 1e6:.1f} Mvox) in {record['duration_s']:.1f} s "
          f"({vox / 1e6 / max(record['duration_s'], 1e-9):.2f} Mvox/s, {record['backend']}) -> {args.output}"
          + (f", {args.mask}" if args.mask else "") + (f", {args.labels}" if args.labels else ""))
    return 0


def _check_labels_output(args) -> None:
    """``--labels`` before the work: a format that holds label IDs, replaceable (only tomoseg's own, with
    --overwrite), its folder there."""
    from ..io import check_output_format, split_dataset
    from ..io.output_guard import check_output
    from ..io.disk_space import check_writable_folder
    from ..objects.label_image import label_dtype_for
    from .analysis import _check_label_outputs

    check_output_format(args.labels, label_dtype_for(args.labels, 1), (8, 8, 8))  # the type; shape: later
    check_writable_folder(split_dataset(args.labels)[0].parent)
    check_output(args.labels, overwrite=args.overwrite, input_path=args.input)
    _check_label_outputs(args)


def _write_labels(args, record) -> None:
    """The object label image of the probability map just written, with analyze's default rules; its
    provenance record names the map, and the map's record names the label image (``outputs.labels``)."""
    from ..io import open_volume
    from ..io.output_guard import provenance_path, write_provenance
    from ..io.volume import origin_of
    from ..objects import analyze
    from ..objects.analysis import AnalysisOptions
    from ..objects.label_image import labelled_as, write_label_image

    prob = open_volume(args.output)
    voxel_size = tuple(record["voxel_size_nm"]) if record.get("voxel_size_nm") else None
    try:
        result = analyze(prob, voxel_size=voxel_size, keep_labels=True,  # the map just written: no guess
                         options=AnalysisOptions(threshold=args.threshold, read_as="probability"))
    except BaseException:
        prob.close()
        raise
    sample = record.get("sample_mask") or {}
    selected = _inside_roi(result.selected, sample, prob.shape)
    source, orientation, origin = prob, prob.orientation, origin_of(prob)  # where the map lies: the labels too
    if orientation is None and origin is None:  # a map that holds no place (TIFF, HDF5; a rotated NRRD's as Zarr)
        orientation, origin = _place_of_input(args.input)
    if result.labels is None:  # labelled in memory: the label step labels the map's mask again, held here
        source = (prob.read() > args.threshold).astype("uint8")
    prob.close()  # the labels may go into the map's own HDF5 file, which h5py cannot hold open twice
    about = {"command": "tomoseg segment --labels", "labelled_from": str(args.output),
             **labelled_as(True, args.threshold), "all_objects": False,
             "segment_record": str(provenance_path(args.output)), "roi": None}
    if sample.get("method") == "roi" and sample.get("roi"):
        about["roi"] = {"box": sample["roi"], "left_out": "objects touching an inner face of the box (cut there)"}
    try:
        write_label_image(source, args.labels, selected, options=result.options, voxel_size=voxel_size,
                          overwrite=args.overwrite, labels=result.labels, orientation=orientation,
                          origin=origin, provenance=about)
    finally:
        if result.labels is not None:
            result.labels.discard()
    record["outputs"]["labels"] = str(args.labels)
    record.update(write_provenance(args.output, record))


def _place_of_input(path) -> tuple:
    """(orientation, origin) of the input ``path``, where segment's map holds neither (review LO1): an NRRD's
    space directions and origin, an OME-Zarr's translation; opened again without saying again what its first
    opening said."""
    import warnings

    from ..io import open_volume
    from ..io.volume import origin_of

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open_volume(path) as vol:
            return vol.orientation, origin_of(vol)


def _inside_roi(table: dict, sample: dict, shape) -> dict:
    """The objects of ``table`` that do not touch an inner face of the ``--roi`` box (a face that is not the
    volume's own edge): the map is 0 past it, so such objects are cut there, and are left out as the objects
    at the volume's border are (their size would be wrong)."""
    if sample.get("method") != "roi" or not sample.get("roi") or not len(table.get("label", ())):
        return table
    cut = np.zeros(len(table["label"]), bool)
    for axis, ((lo, hi), size) in zip("zyx", zip(sample["roi"], shape)):
        first, last = np.asarray(table[f"bbox_{axis}0"]), np.asarray(table[f"bbox_{axis}1"])
        if lo > 0:
            cut |= first <= lo
        if hi < size:
            cut |= last >= hi
    return {k: np.asarray(v)[~cut] for k, v in table.items()}


def check_scheduler_address(address: str) -> str:
    """A Dask scheduler address: ``tcp://host:port`` (also tls://, ws://, wss://, inproc://, ucx://)."""
    import re

    if not re.fullmatch(r"(tcp|tls|ws|wss|ucx|inproc)://[^\s/:]+(:\d{1,5})?/?|(tcp|tls|ws|wss|ucx|inproc)://\[[0-9a-fA-F:]+\](:\d{1,5})?/?|[^\s/:]+:\d{1,5}",
                        address):
        raise TomosegError(f"--dask-scheduler {address!r}: not a scheduler address; write tcp://HOST:PORT "
                           "(e.g. tcp://10.0.0.5:8786), as printed by dask-scheduler")
    return address


@command("export-onnx")
def _export(sub):
    p = sub.add_parser("export-onnx", help="export a model to ONNX (for other runtimes)",
                       description="Export a tomoseg model to ONNX with dynamic spatial sizes (multiples of "
                                   "2^(levels-1): 8 for the default 4-level model). The file's metadata entry "
                                   "'tomoseg' records the divisor, the normalization (z-score of the whole volume) "
                                   "and the threshold; run it in float32 (docs/segment.md, 'ONNX').")
    p.add_argument("model", help="model file (.safetensors), or a shipped model's name: default (v3), v2 or v1")
    p.add_argument("output", help="ONNX file to write")
    overwrite_arg(p)
    p.set_defaults(run=_run_export)


def _run_export(args) -> int:
    from ..checkpoint import load_model
    from ..inference.export import export_onnx

    from ..io.output_guard import check_onnx_output
    from ..shipped import model_path

    check_onnx_output(args.output, overwrite=args.overwrite, model=model_path(args.model))
    model = load_model(args.model)  # a shipped model's name as segment --model reads it (review MF11)
    out = Path(args.output)
    export_onnx(model, out)
    print(f"wrote {out} (input z-scored over the whole volume, spatial sizes multiples of {model.config.divisor}; "
          "output logits: probability = sigmoid)")
    return 0
