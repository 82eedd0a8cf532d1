"""Sub-commands about data: ``info`` and ``phantom``."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import TomosegError
from ..io import open_volume, split_dataset
from ..io.units import voxel_size_text
from .registry import checked_voxel_size, command, length_nm, overwrite_arg, voxel_size_arg

def _disk_size(path: Path) -> int:
    if path.is_dir():
        return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    size = path.stat().st_size
    companions = []
    if path.suffix == ".vol":
        companions = [path.with_name(path.name + ".info"), path.with_name(path.name + ".xml")]
    elif path.suffix.lower() == ".nhdr":  # a detached header: its data file holds the voxels
        from ..io.nrrd_file import detached_data_file

        companions = [detached_data_file(path)]
    return size + sum(c.stat().st_size for c in companions if c is not None and c.is_file())


def sample_statistics(vol, max_voxels: int = 8_000_000) -> dict:
    """min, max and mean of evenly spaced z slices (all of them for small volumes)."""
    per_slice = vol.shape[1] * vol.shape[2]
    n = max(1, min(vol.shape[0], max_voxels // max(per_slice, 1)))
    zs = np.unique(np.linspace(0, vol.shape[0] - 1, n).round().astype(int))
    lo, hi, total, count, nan = np.inf, -np.inf, 0.0, 0, 0
    for z in zs:
        plane = np.asarray(vol[int(z)], dtype=np.float64)
        missing = np.isnan(plane)
        nan += int(missing.sum())
        plane = plane[~missing]  # NaN (no value) left out of min, max and mean, and counted
        with np.errstate(over="ignore", invalid="ignore"):  # values near 1e308: the mean shows as inf
            if plane.size:
                lo, hi = min(lo, plane.min()), max(hi, plane.max())
            total += plane.sum()
        count += plane.size
    return {"min": float(lo) if count else None, "max": float(hi) if count else None,
            "mean": total / count if count else None, "nan_voxels": nan, "sampled_slices": int(len(zs))}


@command("info")
def _info(sub):
    p = sub.add_parser("info", help="describe a volume (shape, type, chunks, voxel size, value range) or a model",
                       description="Describe a volume without reading all of it; or a model: a .safetensors file "
                                   "or a shipped model's name (default, v2, v1).")
    p.add_argument("volume", help="file, folder of slices, or file.h5:/dataset; or a model (.safetensors, default, v2, "
                   "v1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    voxel_size_arg(p)
    p.set_defaults(run=_run_info)


def _run_info(args) -> int:
    from .model_info import is_model, model_info

    if is_model(args.volume):
        return model_info(args.volume, args.json)
    with open_volume(args.volume, voxel_size=checked_voxel_size(args.voxel_size)) as vol:
        # a compressed NRRD is decompressed whole to read any slice: a large one is described from its header only
        stats = None if vol.whole_read and vol.nbytes > 2**26 else sample_statistics(vol)
        file, _ = split_dataset(args.volume)
        info = {
            # an HDF5 file's dataset named as picked (the file alone does not say which one is read)
            "path": str(vol.path) if vol.format == "hdf5" else str(args.volume), "format": vol.format,
            "shape": list(vol.shape), "dtype": str(vol.dtype),
            "chunks": list(vol.chunks) if vol.chunks else None,
            "voxel_size_nm": list(vol.voxel_size) if vol.voxel_size else None,
            "origin_nm": _origin(vol), "axes_rotated": _rotated(vol),
            "size_on_disk_bytes": _disk_size(file), "size_in_memory_bytes": vol.nbytes, "sample": stats,
            # with the voxel size the reader assumed (a TIFF's z spacing), said on stderr as a note too
            "notes": list(vol.notes) + ([vol.voxel_size_note] if vol.voxel_size_note and not args.voxel_size
                                        else []),
        }
    if args.json:
        from ..io.result_folders import strict_json

        print(strict_json(info))
        return 0
    vs = info["voxel_size_nm"]
    # where the file gives something that is not the voxel size (a camera's pixel, a size without units), the notes
    # below say what: "the file does not say" would contradict them
    said = any("voxel size" in n for n in vol.notes)
    unknown = "unknown (see the notes below; pass --voxel-size Z Y X)" if said else \
        "unknown (the file does not say; pass --voxel-size Z Y X)"
    lines = [
        f"path          {info['path']}",
        f"format        {info['format']}",
        f"shape (z,y,x) {' × '.join(map(str, vol.shape))}  ({vol.size / 1e6:.1f} Mvoxels)",
        f"dtype         {info['dtype']}",
        f"chunks        {' × '.join(map(str, vol.chunks)) if vol.chunks else 'contiguous'}",
        "voxel size    " + (voxel_size_text(vs) + " (z, y, x)" if vs else unknown),
        *([f"origin        {voxel_size_text(info['origin_nm'])} (z, y, x: where voxel (0, 0, 0)'s centre lies; "
           "analyze's centroid_*_nm start there)"] if info["origin_nm"] else []),
        *(["origin        not along the array's axes: the NRRD's space directions rotate, flip or swap them "
           "(NRRD outputs keep its space; centroid_*_nm run from voxel (0, 0, 0))"] if info["axes_rotated"] else []),
        f"on disk       {info['size_on_disk_bytes'] / 2**20:.1f} MiB (in memory {vol.nbytes / 2**20:.1f} MiB)",
        ("values        not sampled (the file is compressed as a whole: any slice means decompressing all "
         "of it)") if stats is None else
        (f"values        min {stats['min']:g}, max {stats['max']:g}, mean {stats['mean']:.4g} "
         + (f"({stats['nan_voxels']:,} NaN voxels left out) " if stats["nan_voxels"] else "")
         + f"(from {stats['sampled_slices']} slices)") if stats["min"] is not None else
        (f"values        only NaN (not a number) in the {stats['sampled_slices']} sampled slices: the volume "
         "holds no gray values"),
    ]
    lines += [f"note          {n}" for n in vol.notes]
    print("\n".join(lines))
    return 0



def _origin(vol) -> list | None:
    """Where the volume's voxel (0, 0, 0) lies, (z, y, x) nm (an OME-Zarr translation, an axis-aligned NRRD's space
    origin), for info (review LO2: it was shown nowhere)."""
    from ..io.volume import origin_of

    origin = origin_of(vol)
    return None if origin is None else [float(o) for o in origin]


def _rotated(vol) -> bool:
    """Whether the volume is an NRRD whose space directions do not run along the array's axes, each the positive
    way (:func:`~tomoseg.io.nrrd_file.along_array_axes`, relative to their length: an absolute tolerance took a
    rotation in metres for none, and info showed neither an origin nor this)."""
    from ..io.nrrd_file import along_array_axes

    orientation = getattr(vol, "orientation", None)
    if not orientation or orientation.get("space directions") is None:
        return False
    return not along_array_axes(orientation["space directions"])


@command("phantom")
def _phantom(sub):
    p = sub.add_parser("phantom", help="generate a synthetic TXM micropillar volume with exact labels",
                       description="Generate a synthetic TXM micropillar volume with exact labels. "
                                   "The same seed gives identical files (with --pair, identical pairs: the "
                                   "BEFORE scan of a pair is not the single phantom of the same seed); a "
                                   "provenance record beside each volume (FILE.provenance.json) says how it was "
                                   "made. Built in memory: about 24 bytes per voxel (docs/phantoms.md).")
    p.add_argument("image", help="output image volume (any supported format)")
    p.add_argument("--labels", required=True, help="output semantic label volume: the exact ground truth (uint8, "
                                                  "1 = object, 0 = not)")
    p.add_argument("--instances", help="output volume of object ids (uint32: each object its own id, the "
                                       "--objects table's label; 0 = background; .zarr, .h5, .nrrd or .npy)")
    p.add_argument("--objects", help="output CSV of the objects, one row per id of --instances: true centre, "
                                     "semi-axes, volume, labelled voxels (with --pair: the BEFORE scan's objects; "
                                     "the matches: --pair-matches)")
    p.add_argument("--shape", nargs=3, type=int, metavar=("Z", "Y", "X"), default=[128, 256, 256],
                   help="the volume's size in voxels (default 128 256 256)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same phantom (default 0)")
    p.add_argument("--preset", default="default", help="named parameter set (see --list-presets)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="change one phantom parameter, e.g. --set noise_sd=25, --set physics=true (repeatable; "
                        "the parameters: tomoseg.synthetic.PhantomConfig, docs/phantoms.md)")
    p.add_argument("--voxel-size", nargs=3, type=length_nm, metavar=("Z", "Y", "X"), default=[29.33] * 3,
                   help="voxel size written into the files, nm or with a unit (default: the paper's 29.33)")
    p.add_argument("--figure", metavar="FILE.png",
                   help="also draw the phantom's figure (a slice, a zoom with label contours, gray-value "
                        "histograms, as the paper's Fig. 3) as FILE.png with .svg and .pdf beside it; never "
                        "replaces an existing file")
    p.add_argument("--list-presets", action=_ListPresets, help="print the presets and exit")
    from .track import add_pair_args

    add_pair_args(p)
    _add_pair_change_args(p)
    overwrite_arg(p)
    p.set_defaults(run=_run_phantom)


# the changes between a pair's scans (tomoseg.synthetic.pair.PairChanges): option, field, what it sets
PAIR_CHANGE_OPTIONS = (
    ("--pair-remove", "remove", "share of the BEFORE objects that dissolve (vanished)"),
    ("--pair-add", "add", "new objects (appeared), as a share of the BEFORE objects' count (0 or more: 2 makes "
                          "twice as many)"),
    ("--pair-grow", "grow", "share of the BEFORE objects that grow by --pair-grow-by"),
    ("--pair-grow-by", "grow_by", "voxels added to a grown object's equivalent radius"),
    ("--pair-shrink", "shrink", "share of the BEFORE objects that shrink by --pair-shrink-by (those of radius 2.5 "
                                "voxels or more)"),
    ("--pair-shrink-by", "shrink_by", "voxels taken from a shrunk object's equivalent radius, under 2.5"),
    ("--pair-merge", "merge", "share of the BEFORE objects that merge, in pairs of neighbours"),
    ("--pair-split", "split", "share of the BEFORE objects that split in two"),
    ("--pair-beside-removed", "beside_removed",
     "share of the dissolved objects beside whose spot a new ball (radius 1.5-4 voxels) forms, 1.5-3.5 voxels "
     "away: the truth keeps the two apart (vanished; appeared, change added_beside_removed), which track may pair "
     "as one object that changed (its uncertain flag)"),
)


def _add_pair_change_args(p) -> None:
    from ..synthetic.pair import PairChanges

    default = PairChanges()
    g = p.add_argument_group("pair changes", "what changes between the pair's scans (with --pair; the counts of "
                                             "each status go to the pair's provenance, the values to --pair-truth). "
                                             "Shares are 0-1 (--pair-add 0 or more) and drawn in the order merge, "
                                             "split, remove, grow, shrink from the objects left unchanged: where they "
                                             "add up to more than the objects, the last get fewer")
    for option, name, what in PAIR_CHANGE_OPTIONS:
        unit = "VOXELS" if name.endswith("_by") else "SHARE"
        g.add_argument(option, type=float, metavar=unit, help=f"{what} (default {getattr(default, name)})")


def pair_changes(args):
    """The ``PairChanges`` of ``phantom --pair``: the defaults, and the --pair-* change options given, each checked
    (one error naming the option and its value)."""
    from ..synthetic.pair import PairChanges, change_problem

    given = {name: getattr(args, f"pair_{name}") for _, name, _ in PAIR_CHANGE_OPTIONS
             if getattr(args, f"pair_{name}", None) is not None}  # the options' names: --pair-NAME
    for option, name, _ in PAIR_CHANGE_OPTIONS:
        if name in given:
            problem = change_problem(name, given[name])
            if problem:
                raise TomosegError(f"{option} {given[name]:g}: {problem}")
            if not args.pair:
                raise TomosegError(f"{option} {given[name]:g}: a change between the two scans of a pair; give "
                                   "--pair AFTER_IMAGE too (or leave it out)")
    if not args.pair:  # the pair's other options, which a single phantom would leave aside unsaid (and record)
        for option in ("--pair-labels", "--pair-instances", "--pair-truth", "--pair-matches", "--rotation",
                       "--translation"):
            if getattr(args, option[2:].replace("-", "_"), None) is not None:
                raise TomosegError(f"{option}: belongs to the second scan of a pair; give --pair AFTER_IMAGE too "
                                   "(or leave it out)")
    return PairChanges(**given)


class _ListPresets(argparse.Action):
    """``--list-presets`` prints and exits like ``--help``: it needs none of the output arguments."""

    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        from ..synthetic import PRESETS

        for name, preset in PRESETS.items():
            print(f"{name:14s} {preset or '(the defaults)'}")
        parser.exit()


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _parse_sets(items) -> dict:
    from ..synthetic import PhantomConfig

    types = {name: type(value) for name, value in PhantomConfig().to_dict().items()}
    out = {}
    for item in items:
        if "=" not in item:
            raise TomosegError(f"--set {item!r}: write KEY=VALUE, e.g. --set noise_sd=25")
        key, value = item.split("=", 1)
        if key not in types:
            raise TomosegError(f"unknown phantom parameter {key!r}; allowed: {sorted(types)}")
        if types[key] is bool:  # a typo (physics=ture) must not pass for false (review PH2)
            word = value.strip().lower()
            if word not in _TRUE + _FALSE:
                raise TomosegError(f"--set {key}={value}: give true or false (also yes/no, on/off, 1/0)")
            out[key] = word in _TRUE
            continue
        try:
            out[key] = types[key](value)
        except ValueError:
            raise TomosegError(f"--set {key}={value}: not a valid {types[key].__name__}") from None
    return out


PHANTOM_BYTES_PER_VOXEL = 24  # measured peak while generating (image, labels, instances, work arrays)
PHANTOM_SECONDS_PER_VOXEL = 1e-6  # measured on one CPU core: 64x256x256 in about 4 s
# the physics mode's radon + iradon of each slice: about 2e-8 s per angle and pixel (0.25 s for a 256-wide slice
# with 256 angles, 3.0 s at 512: width cubed), measured on one core; it dominates from about 64 wide (review PH9)
PHYSICS_SECONDS_PER_ANGLE_PIXEL = 2e-8


def phantom_seconds(shape, cfg=None) -> float:
    """About how long generating a phantom of ``shape`` takes on one core (``cfg``: its PhantomConfig, for the
    physics mode)."""
    Z, Y, X = (int(s) for s in shape)
    seconds = Z * Y * X * PHANTOM_SECONDS_PER_VOXEL
    if cfg is not None and cfg.physics:
        side = min(Y, X)
        seconds += Z * (cfg.angles or side) * side**2 * PHYSICS_SECONDS_PER_ANGLE_PIXEL
    return seconds


def check_phantom_memory(shape, cfg=None) -> None:
    """Refuse a phantom that cannot fit in the memory available now (it is built in memory); say how long a
    large one takes (``cfg``: its PhantomConfig, for the physics mode)."""
    import psutil

    voxels = int(np.prod([int(s) for s in shape], dtype=np.int64))
    need = voxels * PHANTOM_BYTES_PER_VOXEL
    available = psutil.virtual_memory().available
    if need > available:
        raise TomosegError(f"--shape {' '.join(map(str, shape))}: a phantom of {voxels / 1e6:,.0f} Mvoxels needs "
                           f"about {need / 2**30:,.1f} GiB of memory, {available / 2**30:,.1f} GiB are available; "
                           "choose a smaller shape (e.g. 128 256 256) or tile several phantoms")
    seconds = phantom_seconds(shape, cfg)
    if seconds > 60:
        import sys

        mode = " in physics mode" if cfg is not None and cfg.physics else ""
        print(f"tomoseg: note: a phantom of {voxels / 1e6:,.0f} Mvoxels{mode} takes about {seconds / 60:,.0f} min "
              f"and {need / 2**30:,.1f} GiB of memory", file=sys.stderr)


PAIR_TRUTH_TOOL = "tomoseg phantom"  # the "tool" entry of a --pair-truth JSON: how --overwrite knows its own


def check_phantom_outputs(args, shape) -> None:
    """Every output of ``phantom`` (with ``--pair``: the AFTER scan's too) checked before anything is generated:
    one path each, none an existing file tomoseg may not replace, formats that hold the data."""
    from ..io import check_output_format
    from ..io.output_guard import (MATCH_TABLE_COLUMNS, check_json_output, check_output, check_outputs_apart,
                                   check_table_output)
    from ..io.disk_space import check_writable_folder

    pair = bool(getattr(args, "pair", None))
    volumes = [("IMAGE", args.image, np.uint8), ("--labels", args.labels, np.uint8),
               ("--instances", args.instances, np.uint32)]
    if pair:
        volumes += [("--pair", args.pair, np.uint8), ("--pair-labels", args.pair_labels, np.uint8),
                    ("--pair-instances", args.pair_instances, np.uint32)]
    volumes = [v for v in volumes if v[1]]
    check_outputs_apart([(opt, path) for opt, path, _ in volumes] + [("--objects", args.objects)]
                        + [("--pair-truth", args.pair_truth if pair else None),
                           ("--pair-matches", args.pair_matches if pair else None)])
    for _, out, dtype in volumes:
        check_writable_folder(split_dataset(out)[0].parent)
        check_output(out, overwrite=args.overwrite)
        if dtype is not None:
            check_output_format(out, dtype, shape)
    if args.objects:
        check_table_output(args.objects, overwrite=args.overwrite)
    if pair and args.pair_matches:
        check_table_output(args.pair_matches, overwrite=args.overwrite, columns=MATCH_TABLE_COLUMNS,
                           what="a match table")
    if pair and args.pair_truth:
        check_json_output(args.pair_truth, overwrite=args.overwrite, tool=PAIR_TRUTH_TOOL)
    if getattr(args, "figure", None):
        _check_figure_output(args.figure, pair)


def _check_figure_output(figure, pair: bool) -> None:
    """``phantom --figure``: a .png path whose PNG, SVG and PDF do not exist yet, in a writable folder."""
    from ..io.disk_space import check_writable_folder

    path = Path(figure)
    if pair:
        raise TomosegError(f"--figure {figure}: drawn for a single phantom only; leave out --pair")
    if path.suffix.lower() != ".png":
        raise TomosegError(f"--figure {figure}: give a file name ending in .png (the .svg and .pdf are written "
                           "beside it)")
    check_writable_folder(path.parent)
    for p in (path, path.with_suffix(".svg"), path.with_suffix(".pdf")):
        if p.exists():
            raise TomosegError(f"--figure {figure}: {p} already exists; remove it or give another name (a "
                               "figure is never written over)")


PHANTOM_CONTENT = {"image": "gray values (uint8, 8-bit scale)", "labels": "semantic labels (uint8: 1 object, 0 not)",
                   "instances": "object ids (uint32: the objects table's label, 0 background)",
                   "pair": "the AFTER scan's gray values (uint8, 8-bit scale)",
                   "pair_labels": "the AFTER scan's semantic labels (uint8: 1 object, 0 not)",
                   "pair_instances": "the AFTER scan's object ids (uint32: after_label of the pair's truth)"}
# the output options of a phantom's command line, in the order written there
_VOLUME_OPTIONS = (("labels", "--labels"), ("instances", "--instances"), ("pair", "--pair"),
                   ("pair_labels", "--pair-labels"), ("pair_instances", "--pair-instances"))


def write_phantom_records(args, volumes: dict, config, sets: dict, about: dict) -> None:
    """A provenance record beside each volume written (``{"image": (path, array), ...}``, keys of
    :data:`PHANTOM_CONTENT`): what makes it again (seed, preset, the --set values, the full ``config``, the
    generator's version and the packages whose random streams and filters it depends on, the command line), what
    the file holds, the run's other outputs, and ``about`` (objects, label fraction; a pair's motion). Written
    after every volume, so that volumes sharing an HDF5 file carry its final stamp (review PH6)."""
    import shlex

    from .._version import __version__
    from ..inference.outputs import package_versions
    from ..io.output_guard import write_provenance
    from ..synthetic import GENERATOR_VERSION

    paths = {what: str(path) for what, (path, _) in volumes.items()}
    argv = ["tomoseg", "phantom", paths["image"]]
    for what, option in _VOLUME_OPTIONS:
        if what in paths:
            argv += [option, paths[what]]
    argv += ["--shape", *map(str, args.shape), "--seed", str(args.seed), "--preset", args.preset,
             *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")],
             "--voxel-size", *(repr(float(v)) for v in args.voxel_size)]
    for option in ("rotation", "translation"):  # a pair's motion where given (else drawn from the seed)
        if getattr(args, option, None):
            argv += [f"--{option}", *(repr(float(v)) for v in getattr(args, option))]
    for option, name, _ in PAIR_CHANGE_OPTIONS:  # a pair's changes where given (else the defaults)
        if getattr(args, f"pair_{name}", None) is not None:
            argv += [option, repr(float(getattr(args, f"pair_{name}")))]
    extra = {"objects": args.objects, "pair_truth": getattr(args, "pair_truth", None),
             "pair_matches": getattr(args, "pair_matches", None)}
    common = {
        "tool": "tomoseg phantom", "tomoseg_version": __version__, "generator_version": GENERATOR_VERSION,
        "seed": int(args.seed), "preset": args.preset, "set": sets, "config": config.to_dict(),
        "shape": [int(s) for s in args.shape], "voxel_size_nm": [float(v) for v in args.voxel_size], **about,
        "packages": package_versions(("numpy", "scipy", "scikit-image")),
        "outputs": {**paths, **{k: v for k, v in extra.items() if v}}, "command": shlex.join(argv),
    }
    for what, (path, data) in volumes.items():
        # "written": which output this is (as segment's "written": "mask"): napari opens the labels as labels
        write_provenance(path, {**common, "written": what, "content": PHANTOM_CONTENT[what], "dtype": str(data.dtype)})


def _run_phantom(args) -> int:
    from ..io import write_volume
    from ..synthetic import make_phantom
    from ..table import write_csv

    if args.seed < 0:
        raise TomosegError(f"--seed {args.seed}: give a whole number >= 0")
    shape = tuple(args.shape)
    if min(shape) < 1:
        raise TomosegError(f"--shape {' '.join(map(str, shape))}: give three positive sizes (z, y, x)")
    from ..synthetic import preset

    sets = _parse_sets(args.set)
    changes = pair_changes(args)
    check_phantom_memory(shape, preset(args.preset, **sets))  # the parameters checked before any work, too
    check_phantom_outputs(args, shape)
    if args.pair:
        from .track import run_phantom_pair

        return run_phantom_pair(args, sets, changes)
    phantom = make_phantom(args.shape, rng=args.seed, preset_name=args.preset, **sets)
    vs = tuple(args.voxel_size)
    volumes = {"image": (args.image, phantom.image), "labels": (args.labels, phantom.labels),
               "instances": (args.instances, phantom.instances)}
    volumes = {what: v for what, v in volumes.items() if v[0]}
    for path, data in volumes.values():
        write_volume(path, data, voxel_size=vs, overwrite=args.overwrite)
    if args.objects:
        table = dict(phantom.objects)
        table["equivalent_radius_nm"] = table["equivalent_radius_vox"] * float(np.cbrt(np.prod(vs)))
        write_csv(table, args.objects, overwrite=args.overwrite)
    write_phantom_records(args, volumes, phantom.config, sets,
                          {"objects": int(len(phantom.objects["label"])),
                           "label_fraction": float(phantom.labels.mean())})
    n = len(phantom.objects["label"])
    print(f"phantom {tuple(args.shape)} seed {args.seed} preset {args.preset}: {n} objects, "
          f"{phantom.labels.mean():.3%} of voxels -> {args.image}, {args.labels}")
    if args.figure:
        from ..synthetic.figure import phantom_figure

        phantom_figure(phantom, args.figure, voxel_size=vs,
                       title=f"phantom {' × '.join(map(str, args.shape))}, seed {args.seed}, preset {args.preset}")
        print(f"figure -> {args.figure} (.svg, .pdf beside it)")
    return 0
