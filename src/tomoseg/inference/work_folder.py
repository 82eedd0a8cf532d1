"""The work folder of a ``segment`` run: what makes a killed run resumable and a resumed run safe.

``OUTPUT.tomoseg-run/`` holds the work stores (Zarr), one done marker per finished tile, the model, the sample
mask and ``state.json``: the run's fingerprint (input content, model, settings) and its normalization
statistics. A resume must find the same fingerprint (its settings as resolved, not as typed: the input's
resolved path), or it is refused with the differences named; the input is fingerprinted again before the
result is written, so a scan changed during the run is never mixed in.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import TomosegError
from ..io import split_dataset
from ..io.output_guard import WORK_SUFFIX  # named there, where the readers see it too

if TYPE_CHECKING:
    from .engine import SegmentOptions


def work_dir_for(output) -> Path:
    """The work folder of a run writing ``output``: beside it, and for a dataset inside an HDF5 file named after
    the dataset too (``x.h5:/entry/prob`` -> ``x.h5.entry_prob.tomoseg-run``), so that two runs into one file
    never take over each other's work."""
    import re

    f, dataset = split_dataset(output)
    tag = "." + re.sub(r"[^A-Za-z0-9_.-]+", "_", dataset.strip("/")) if dataset and dataset.strip("/") else ""
    return f.with_name(f.name + tag + WORK_SUFFIX)


def resolved_path(path) -> str:
    """``path`` as the file it names: absolute, ``..`` and symbolic links resolved, a dataset, level or series
    inside it (``file.h5:/entry/data``, ``store.zarr:1``, ``file.tif:1``) kept after it, an HDF5 dataset with
    its leading ``/`` (``x.h5:data`` is ``x.h5:/data``): two spellings of one input give one string.

    >>> resolved_path("/data/scans/../scans/a.h5:entry/data")
    '/data/scans/a.h5:/entry/data'
    """
    from ..io import hdf5

    file, dataset = split_dataset(path)
    text = str(file.resolve())
    if dataset is None:
        return text
    if file.suffix.lower() in hdf5.EXTENSIONS:
        dataset = "/" + dataset.lstrip("/")
    return f"{text}:{dataset}"


def run_fingerprint(volume, model, options: SegmentOptions, backend_name: str, write_mask: bool) -> dict:
    """What a resume must find unchanged; ``model_sha256`` is the model's identity
    (:func:`.model_file.model_identity`: its file's SHA-256 while its weights are the file's, else the
    digest of its weights). Settings are recorded as resolved, not as typed: the input's resolved path, the
    statistics method ``auto`` becomes for this volume (full or sample)."""
    from .model_file import model_identity
    from .fingerprint import input_fingerprint
    from .normalization import stats_method

    file, _ = split_dataset(volume.path)
    stat = file.stat() if file.exists() and file.is_file() else None
    return {
        "input": resolved_path(volume.path),
        "input_shape": list(volume.shape), "input_dtype": str(volume.dtype),
        "input_bytes": stat.st_size if stat else None,
        "input_content": input_fingerprint(volume, volume.path),
        "model_sha256": model_identity(model), "threshold": options.threshold,
        "tiling": asdict(options.tiling), "chunk": options.tiling.chunk(model.config.divisor),
        "backend": backend_name, "precision": options.backend.precision,
        "stats_method": stats_method(options.stats, volume.size), "write_mask": write_mask,
        # the outputs' metadata (work stores made by the first run) and the provenance must agree
        "voxel_size_nm": list(volume.voxel_size) if volume.voxel_size else None,
        # the gray values' meaning: the normalization itself is the saved statistics (state.json's "stats")
        "objects": options.objects or "dark", "fill_value": options.fill_value,
    }


ADDED_LATER = ("voxel_size_nm",)  # keys an interrupted run of an earlier version lacks: not compared then
# keys an earlier version's run lacks, with the value its run had: compared as that (a run started before
# --objects and --fill-value resumes only as dark objects without a fill value; its statistics, saved without
# fences or clipping, are applied as they were, so all its tiles share one normalization)
EARLIER_DEFAULTS = {"objects": "dark", "fill_value": None}


def _as_resolved(saved: dict) -> dict:
    """A saved fingerprint made comparable where an earlier tomoseg wrote it with values as typed: the input
    path resolved (against this folder: right where the run is resumed from the folder it started in, as a
    relative path needs; else refused as another input), ``auto`` statistics resolved for the saved shape.
    Values written as resolved are unchanged by this."""
    from .normalization import stats_method

    out = {**EARLIER_DEFAULTS, **saved}
    if isinstance(out.get("input"), str):
        out["input"] = resolved_path(out["input"])
    shape = out.get("input_shape")
    if out.get("stats_method") == "auto" and isinstance(shape, list) and all(isinstance(n, int) for n in shape):
        out["stats_method"] = stats_method("auto", int(np.prod(shape, dtype=np.int64)))
    return out


def read_saved_state(work: Path, options: SegmentOptions) -> dict | None:
    """The state of the interrupted run in ``work`` that ``options.resume`` continues: read once (its finished
    outputs, its fingerprint, its statistics and sample mask all come from this one read), refused where
    damaged; None where not resuming or there is none."""
    state_file = work / "state.json"
    if not options.resume or not state_file.exists():
        return None
    return _read_state(state_file)


def _read_state(state_file: Path) -> dict:
    try:
        state = json.loads(state_file.read_text(encoding="utf-8"))
        state["fingerprint"], state["stats"]  # noqa: B018 - the keys a resume needs
    except (OSError, ValueError, KeyError, TypeError):
        raise TomosegError(f"{state_file}: the interrupted run's state is damaged (truncated or not tomoseg's); "
                           "pass --overwrite to start over") from None
    return state


def check_done(work: Path, n_tiles: int | None) -> None:
    stray = [n for n in os.listdir(work / "done")
             if not n.isdigit() or (n_tiles is not None and int(n) >= n_tiles)]
    if stray:
        raise TomosegError(f"{work / 'done'}: holds {stray[0]!r}, which is not a finished-tile marker of this run; "
                           "remove it, or pass --overwrite to start over")


def prepare_work(work: Path, fingerprint: dict, options: SegmentOptions, n_tiles: int | None = None, *,
                 state: dict | None = None) -> dict | None:
    """Return the saved state of an interrupted run to resume, or None to start afresh. ``state``: that state
    as :func:`read_saved_state` read it (None: read here)."""
    from .fingerprint import changes

    if work.exists():
        check_not_running(work)  # before a resume shares its tiles or --overwrite removes them
        state = state if state is not None else read_saved_state(work, options)
        if state is not None:
            saved = state["fingerprint"]
            if isinstance(saved, dict):
                saved = _as_resolved(saved)
            if isinstance(saved, dict) and saved.get("input_content") != fingerprint["input_content"]:
                what = ", ".join(changes(saved.get("input_content"), fingerprint["input_content"]))
                raise TomosegError(f"{work}: the input {fingerprint['input']} changed since the interrupted run "
                                   f"({what}); resuming would mix tiles of two scans. Pass --overwrite to start over")
            diff = sorted(k for k in fingerprint if not isinstance(saved, dict) or (
                saved.get(k) != fingerprint[k] and not (k in ADDED_LATER and k not in saved)))
            if diff:
                raise TomosegError(f"{work}: the interrupted run used other settings ({', '.join(diff)}); "
                                   "pass --overwrite to start over")
            if (work / "done").is_dir():
                check_done(work, n_tiles)
            return state
        if not options.overwrite and not options.resume and not _never_started(work):
            raise TomosegError(f"{work}: an interrupted run left its work here; pass --resume to continue it "
                               "or --overwrite to start over")
        shutil.rmtree(work)
    return None


# what a work folder holds while it is made, before its state.json (engine._make_work_folder)
_SETUP_NAMES = {"done", "prob.zarr", "mask.zarr", "model.safetensors", "model.safetensors.partial",
                "sample_mask.npz", "state.json.partial", "running.json"}


def _never_started(work: Path) -> bool:
    """A work folder whose making stopped before its state.json (a run killed then, or a version that left it
    when the disk filled: review C3): no tile was computed (their markers come after the state), so there is
    nothing to resume and it is made again. Only a folder of the names a setup writes, with no tile marker."""
    if (work / "state.json").exists():
        return False
    try:
        names = set(os.listdir(work))
        markers = os.listdir(work / "done") if (work / "done").is_dir() else []
    except OSError:
        return False
    return names <= _SETUP_NAMES and not markers


def lost_tiles(work: Path, tiles, names) -> list[int]:
    """The finished ``tiles`` (computed, not skipped) whose output chunks are missing or empty in the work stores
    ``names`` (``prob``, ``mask``): lost in a crash after the done marker, or by a file system. A computed core's
    chunks are always stored (never left to Zarr's fill value), so each must be there."""
    import zarr

    lost = set()
    for name in names:
        store = work / f"{name}.zarr"
        array = zarr.open_array(str(store), path="0", mode="r")
        chunks = array.chunks
        for tile in tiles:
            if tile.index in lost:
                continue
            ranges = [range(s.start // c, -(-s.stop // c)) for s, c in zip(tile.core, chunks)]
            for key in (array.metadata.encode_chunk_key((i, j, k))
                        for i in ranges[0] for j in ranges[1] for k in ranges[2]):
                try:
                    if (store / "0" / key).stat().st_size == 0:
                        lost.add(tile.index)
                        break
                except OSError:
                    lost.add(tile.index)
                    break
    return sorted(lost)


def finished_outputs(state: dict | None) -> dict:
    """The outputs an interrupted run already finished ({path: resolution levels}; its finish step was cut
    short), from its state (:func:`read_saved_state`); empty where there is none."""
    finished = state.get("finished") if isinstance(state, dict) else None
    return finished if isinstance(finished, dict) else {}


RUNNING = "running.json"  # the invocation running the run now: its host and pid; touched every HEARTBEAT_S
HEARTBEAT_S = 10.0
STALE_S = 60.0  # a heartbeat older than this is of an invocation gone (killed, its node lost)


def check_not_running(work: Path) -> None:
    """Refuse where another invocation is running the run in ``work`` now (its :data:`RUNNING` heartbeat fresh:
    touched within :data:`STALE_S` seconds, and on this host its process alive). Two runs into one output were
    not refused: the second was told "an interrupted run left its work here; pass --resume", and a resume then
    computed the same tiles, finished, removed the work folder, and the first ended in "No such file or
    directory"; an --overwrite removed the first run's work under it (review DK3)."""
    import platform
    import time

    path = work / RUNNING
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        age = time.time() - path.stat().st_mtime
        host, pid = str(info["host"]), int(info["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if host == platform.node():  # this host: whether the process lives decides, not the time since its sign
        if pid == os.getpid():
            return
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return  # killed (kill -9): nothing runs it
        except OSError:
            pass  # another user's process: alive
        if age > STALE_S and not _is_tomoseg(pid):  # silent for long, and its number taken by another program
            return
    elif age > STALE_S:
        return
    raise TomosegError(f"{work}: another tomoseg is running this run now (process {pid} on {host}, heard from "
                       f"{max(age, 0):.0f} s ago): wait for it to finish, or stop it first (then --resume continues "
                       f"its work; one gone without a word stops counting {STALE_S:g} s after it was last heard "
                       "from); two runs into one output would undo each other's work")


def _is_tomoseg(pid: int) -> bool:
    """Whether process ``pid`` of this host runs tomoseg (its command line names it; suspended with Ctrl-Z, it
    stays the run's however long its sign has not been touched)."""
    try:
        import psutil

        return any("tomoseg" in part for part in psutil.Process(pid).cmdline())
    except Exception:  # noqa: BLE001 - gone meanwhile, or not ours to read
        return False


class Heartbeat:
    """This invocation's :data:`RUNNING` file in a work folder, touched every :data:`HEARTBEAT_S` seconds while
    the run goes on (from a thread), removed by :meth:`stop`: how another invocation knows the run is running
    (:func:`check_not_running`), on any host that sees the folder."""

    def __init__(self, work: Path):
        import threading

        self.path = Path(work) / RUNNING
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="tomoseg-heartbeat", daemon=True)

    def start(self) -> "Heartbeat":
        import platform
        import time

        tmp = self.path.with_name(f"{RUNNING}.{os.getpid()}.partial")
        tmp.write_text(json.dumps({"host": platform.node(), "pid": os.getpid(), "started": time.time()}),
                       encoding="utf-8")
        os.replace(tmp, self.path)
        self._thread.start()
        return self

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            try:
                os.utime(self.path)
            except OSError:  # the folder removed (the run finished, or replaced): nothing to keep fresh
                pass

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()
        try:
            if json.loads(self.path.read_text(encoding="utf-8")).get("pid") == os.getpid():
                self.path.unlink()
        except (OSError, ValueError, AttributeError):
            pass


STOPPED = "stopped"  # written in a work folder when its run's Dask tasks were cancelled (Ctrl-C, an error)


def check_run(work: Path, started: float) -> None:
    """Raise where the run that started at ``started`` must write no more into ``work``: its tasks were cancelled
    (a :data:`STOPPED` file there) or the folder is another run's (``--overwrite`` made it again: a task of the
    old run still running on a cluster would mix its tiles into the new run's). Checked before each tile's
    write by the tasks of a Dask run."""
    if (work / STOPPED).exists():
        raise TomosegError(f"{work}: the run was stopped")
    try:
        now = json.loads((work / "state.json").read_text(encoding="utf-8")).get("started")
    except (OSError, ValueError):
        now = None
    if now != started:
        raise TomosegError(f"{work}: the work folder is no longer this run's")


def write_state(work: Path, state: dict) -> None:
    """``state.json``, written to a temporary name and renamed: complete or the one before."""
    tmp = work / "state.json.partial"
    tmp.write_text(json.dumps(state, indent=1), encoding="utf-8")
    os.replace(tmp, work / "state.json")


def add_invocation(work: Path, state: dict, started: float) -> None:
    """Record that a resumed run started at ``started`` (seconds since the epoch); the first run's start is
    ``state["started"]``."""
    state["invocations"] = [*state.get("invocations", [state["started"]]), started]
    write_state(work, state)


def invocations(work: Path, state: dict, computed, finished_at: float) -> list[dict]:
    """What each invocation of a run did, from the done markers' times (so a run killed with -9 is counted too):
    the tiles of ``computed`` (indices; skipped ones excluded) it finished, and the seconds from its start to its
    last finished tile. A run of one invocation needs no marker's time (``finished_at``: its tiles' end): no
    stat of every marker, which costs on a network file system."""
    import time

    starts = sorted(state.get("invocations", [state["started"]]))
    if len(starts) == 1:
        return [{"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(starts[0])),
                 "tiles_computed": len(computed), "seconds_to_last_tile": round(finished_at - starts[0], 3)}]
    finished = []
    for i in computed:
        try:
            finished.append((work / "done" / str(i)).stat().st_mtime)
        except OSError:
            pass
    out = []
    for k, start in enumerate(starts):
        end = starts[k + 1] if k + 1 < len(starts) else float("inf")
        times = [t for t in finished if start <= t < end]
        out.append({"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(start)),
                    "tiles_computed": len(times),
                    "seconds_to_last_tile": round(max(times) - start, 3) if times else None})
    return out


def write_done_marker(work: Path, tile, objects_per_slice) -> None:
    """Mark ``tile`` finished: ``done/INDEX`` holds the number of object voxels in each z slice of its core
    (for the flooding check, without reading the output again). Written to a temporary name and renamed, so a
    marker is complete or absent."""
    tmp = work / f"marker-{tile.index}.partial"
    tmp.write_text(json.dumps({"z": tile.core[0].start, "objects": [int(n) for n in objects_per_slice]}),
                   encoding="utf-8")
    os.replace(tmp, work / "done" / str(tile.index))


def objects_per_slice(work: Path, tiles, skipped, shape):
    """Object voxels in each z slice of the output (an int64 array of length ``shape[0]``), from the done
    markers; None where a computed tile's marker does not say (written by an earlier version of tomoseg)."""
    counts = np.zeros(int(shape[0]), np.int64)
    for tile in tiles:
        if tile.index in skipped:  # outside the sample: probability 0
            continue
        try:
            record = json.loads((work / "done" / str(tile.index)).read_text(encoding="utf-8"))
            z, objects = int(record["z"]), record["objects"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        counts[z:z + len(objects)] += np.asarray(objects, np.int64)
    return counts


def check_input_unchanged(volume, fingerprint: dict) -> None:
    """Refuse to finish when the input was modified during the run (tiles from two versions of it)."""
    from .fingerprint import changes, input_fingerprint

    now = input_fingerprint(volume, volume.path)
    if now != fingerprint["input_content"]:
        raise TomosegError(f"{volume.path}: the input changed while it was segmented "
                           f"({', '.join(changes(fingerprint['input_content'], now))}); the result would mix two "
                           "versions of it and is not written. Run again with --overwrite once the input is final")
