"""Before a run on an existing Dask cluster: are there workers, and can each of them do the work?

Dask shuts down a worker that cannot unpickle a task (a missing input mount, no tomoseg or another version of
it) and the client then waits for ever; a scheduler without workers is waited on for ever too. So before the
statistics pass each worker is asked, out of band (``Client.run``), for its tomoseg version, whether it opens
the input (the same shape as here), whether it sees the output's folder (where the work folder goes: a file
written here is read there, and one written there is read here), which backend and device ``--device`` and
``--backend`` resolve to there, and its memory limit and threads. The run is refused in one line naming each
worker that fails and why.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from ..errors import TomosegError
from ..progress import print_line

WAIT_S = 600.0     # how long a cluster may have no worker (SLURM jobs in the queue) before the run stops
PROBE_S = 120.0    # how long the workers may take to answer the check (opening the input on a slow mount)
POLL_S = 2.0


def worker_wait() -> float:
    """Seconds to wait for a first (or a new) worker: ``TOMOSEG_DASK_WAIT`` where set, else :data:`WAIT_S`."""
    text = os.environ.get("TOMOSEG_DASK_WAIT")
    if text:
        try:
            value = float(text)
        except ValueError:
            raise TomosegError(f"TOMOSEG_DASK_WAIT={text!r}: give a number of seconds") from None
        if value >= 0:
            return value
        raise TomosegError(f"TOMOSEG_DASK_WAIT={text!r}: give a number of seconds, 0 or more")
    return WAIT_S


def start_workers_hint(address: str) -> str:
    return (f"start workers with `dask worker {address}` (with tomoseg installed, and TOMOSEG_THREADS set to "
            "their cores), or scale up the cluster (cluster.scale(...) with dask-jobqueue)")


def scheduler_lost(address: str, then: str = "run the same command again") -> TomosegError:
    """The error of a scheduler that stopped answering (Dask gave up reconnecting to it, after its connect
    timeout): what happened and what to do, ``then`` the way to go on."""
    return TomosegError(f"lost the Dask scheduler at {address}: it stopped answering and Dask gave up reconnecting "
                        f"(its job ended, or it was stopped); start it again, and its workers, then {then}")


def workers_now(client, address: str | None = None, then: str = "run the same command again") -> dict:
    """``{address: threads}`` of the workers connected now (asked of the scheduler). A scheduler gone meanwhile
    (the call waits while Dask reconnects, then fails with "ConnectionPool closing": review DK2) is said as lost,
    with ``then``."""
    try:
        return dict(client.nthreads())
    except Exception:
        if client.status != "running":
            raise scheduler_lost(address or "its address", then) from None
        raise


def wait_for_workers(client, address: str, wait: float | None = None, poll: float = POLL_S) -> dict:
    """The workers connected to ``client``'s scheduler, waiting up to ``wait`` seconds (:func:`worker_wait`)
    for a first one, saying so on stderr; refused in one line where none comes."""
    wait = worker_wait() if wait is None else wait
    start = time.monotonic()
    told = False
    while True:
        workers = workers_now(client, address)
        if workers:
            return workers
        if time.monotonic() - start >= wait:
            raise TomosegError(f"no Dask worker is connected to the scheduler at {address} (waited {wait:g} s); "
                               f"{start_workers_hint(address)}; TOMOSEG_DASK_WAIT sets how long to wait")
        if not told:
            print_line(f"tomoseg: waiting for Dask workers: 0 connected to {address} (up to {wait:g} s)")
            told = True
        time.sleep(poll)


@dataclass(frozen=True)
class WorkerReport:
    """What a worker said about itself."""

    address: str
    version: str | None = None
    backend: str | None = None
    device: str | None = None
    memory_limit: int | None = None
    threads: int = 1
    problems: tuple = ()
    host: str | None = None
    packages: tuple = ()  # (name, version) of what computes the tiles there

    def record(self) -> dict:
        """What the provenance keeps of this worker: where it ran, with what (the client's own versions may
        differ from the workers' that computed the tiles)."""
        return {"address": self.address, "host": self.host, "tomoseg_version": self.version,
                "backend": self.backend, "device": self.device, "threads": self.threads,
                "memory_limit": self.memory_limit, "packages": dict(self.packages)}


def probe_worker(volume_call, shape, folder: str, token_name: str, token: str, backend_config,
                 dask_worker=None) -> dict:
    """Run on each worker (``Client.run``): the checks of this module's docstring, as a dict of plain values.
    ``volume_call``: ``(function, args)`` that opens the input (the volume's ``__reduce__``)."""
    import platform

    import tomoseg

    from .outputs import package_versions

    problems = []
    stale = stale_modules()
    if stale:
        problems.append(f"runs tomoseg code older than its files ({stale[0]} changed since the worker started): "
                        "restart the workers after installing or updating tomoseg")
    info = {"version": tomoseg.__version__, "problems": problems, "host": platform.node(),
            "packages": list(package_versions(("numpy", "torch", "openvino", "zarr", "h5py", "tifffile",
                                               "distributed")).items())}
    try:
        function, args = volume_call
        volume = function(*args)
        try:
            if tuple(volume.shape) != tuple(shape):
                problems.append(f"opens the input with shape {tuple(volume.shape)}, not {tuple(shape)} as here")
        finally:
            volume.close()
    except Exception as exc:  # noqa: BLE001 - whatever stops the worker from opening the input, said as it is
        problems.append(f"cannot open the input ({said(exc)}): the input must be on a file system every "
                        "worker sees, at the same path")
    where = (f"{folder}, where the work folder goes: the output must be on a file system every worker sees, at "
             "the same path")
    try:
        seen = (Path(folder) / token_name).read_text(encoding="utf-8")
    except OSError:
        seen = None
    if seen != token:
        problems.append(f"does not see the file tomoseg wrote in {where}")
    else:
        try:
            mine = Path(folder) / f"{token_name}.{uuid.uuid4().hex}"
            mine.write_text(token, encoding="utf-8")
            info["wrote"] = mine.name
        except OSError as exc:
            problems.append(f"cannot write in {where} ({said(exc)})")
    try:
        from .backends import resolve

        info["backend"], info["device"] = resolve(backend_config)
    except Exception as exc:  # noqa: BLE001
        problems.append(said(exc))
    if dask_worker is not None:
        limit = getattr(getattr(dask_worker, "memory_manager", None), "memory_limit", None)
        info["memory_limit"] = int(limit) if limit else None
        info["threads"] = int(getattr(dask_worker.state, "nthreads", 1) or 1)
    return info


STALE_SLACK_S = 30.0  # a file server's clock ahead of the worker's, or files written as the worker started


def stale_modules() -> list[str]:
    """The files of this process's imported tomoseg modules that changed after the process started: a Dask worker
    that outlives an update of tomoseg keeps running the code it imported, while its version string may be the
    same (an editable install, a fix without a new version), and its tasks then failed with tracebacks such as
    "_run_batch() takes from 2 to 3 positional arguments but 4 were given" (review DK5)."""
    import sys

    try:
        import psutil

        started = psutil.Process().create_time()
    except Exception:  # noqa: BLE001 - no figure: nothing to compare with
        return []
    stale = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None) if name.split(".")[0] == "tomoseg" else None
        try:
            if path and os.stat(path).st_mtime > started + STALE_SLACK_S:
                stale.append(path)
        except OSError:
            pass
    return sorted(stale)


def said(exc: BaseException) -> str:
    """An exception in one line: its first line, with its type unless it is tomoseg's own message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text and not isinstance(exc, TomosegError) else \
        (text[0] if text else type(exc).__name__)


def check_workers(client, volume, folder, backend_config, *, timeout: float = PROBE_S) -> list[WorkerReport]:
    """Ask every worker of ``client`` (:func:`probe_worker`) and refuse in one line where any fails; the reports
    of the workers, all able to do the work and agreeing on the backend and device."""
    import tomoseg

    folder = Path(folder)
    token_name = f".tomoseg-probe-{uuid.uuid4().hex}"
    token = uuid.uuid4().hex
    token_path = folder / token_name
    volume_call = volume.__reduce__()
    try:
        token_path.write_text(token, encoding="utf-8")
        answers = _run_within(client, timeout, probe_worker, volume_call, tuple(volume.shape), str(folder),
                              token_name, token, backend_config)
        reports = []
        for address, answer in sorted(answers.items()):
            if isinstance(answer, BaseException):
                reports.append(WorkerReport(address, problems=(_not_runnable(answer),)))
                continue
            problems = list(answer["problems"])
            if answer["version"] != tomoseg.__version__:
                problems.insert(0, f"has tomoseg {answer['version']}, not {tomoseg.__version__} as here: install "
                                   "the same version on the workers")
            wrote = answer.get("wrote")
            if wrote:
                if not (folder / wrote).exists():
                    problems.append(f"writes into another {folder} than this machine's (its file is not seen here):"
                                    " the output must be on a file system every worker sees")
                _remove(folder / wrote)
            reports.append(WorkerReport(address, answer["version"], answer.get("backend"), answer.get("device"),
                                        answer.get("memory_limit"), answer.get("threads", 1), tuple(problems),
                                        answer.get("host"), tuple(map(tuple, answer.get("packages") or ()))))
    finally:
        _remove(token_path)
    bad = [r for r in reports if r.problems]
    if bad:
        raise TomosegError("; ".join(f"Dask worker {r.address} {', and '.join(r.problems)}" for r in bad))
    kinds = {(r.backend, r.device) for r in reports}
    if len(kinds) > 1:
        said = ", ".join(f"{r.address}: {r.backend} on {r.device}" for r in reports)
        raise TomosegError(f"the Dask workers would run different backends or devices ({said}); their results "
                           "would differ: give --device (and --backend) so that all run the same")
    softwares = {tuple(sorted(software_of(r).items())) for r in reports}
    if len(softwares) > 1:
        said = ", ".join(f"{r.address}: {versions_text(software_of(r))}" for r in reports)
        raise TomosegError(f"the Dask workers run different versions of what computes the tiles ({said}); their "
                           "results could differ: install the same versions on every worker")
    return reports


def backend_package(backend: str | None) -> str:
    """The package whose version decides a backend's numbers: ``openvino`` or ``torch``."""
    return "openvino" if backend == "openvino" else "torch"


def software_of(report: WorkerReport) -> dict:
    """What decides the bytes of the tiles a checked worker computes: its tomoseg's version and its backend
    package's (:func:`worker_software` of a worker joining later must equal it)."""
    name = backend_package(report.backend)
    return {"tomoseg": report.version, name: dict(report.packages).get(name)}


def worker_software(backend: str | None) -> dict:
    """:func:`software_of` this process (a worker running a task)."""
    import tomoseg

    from .outputs import package_versions

    name = backend_package(backend)
    return {"tomoseg": tomoseg.__version__, name: package_versions((name,)).get(name)}


def versions_text(software: dict) -> str:
    """``{"tomoseg": "0.3", "torch": "2.13"}`` as "tomoseg 0.3 and torch 2.13"."""
    return " and ".join(f"{name} {version}" for name, version in software.items())


def _not_runnable(exc: BaseException) -> str:
    if isinstance(exc, ImportError) or "No module named" in str(exc):  # Dask may hand it back as Exception(...)
        return (f"cannot run tomoseg's code ({said(exc)}): install tomoseg, the same version as here, in the "
                "workers' Python environment")
    return f"failed the check ({said(exc)})"


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def _run_within(client, timeout: float, function, *args) -> dict:
    """``client.run(function, *args)`` on every worker, each worker's answer or exception, within ``timeout``
    seconds (Dask's own call has no limit: a worker stuck on a hung mount would hold it for ever)."""
    answers: dict = {}

    def call():
        try:
            answers.update(client.run(function, *args, on_error="return"))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            answers["__error__"] = exc

    thread = threading.Thread(target=call, name="tomoseg-worker-probe", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise TomosegError(f"the Dask workers did not answer tomoseg's check within {timeout:g} s (a file system "
                           "that hangs on a worker?); see the workers' logs")
    if "__error__" in answers:
        exc = answers.pop("__error__")
        raise TomosegError(f"could not check the Dask workers ({said(exc)})")
    return answers


def check_worker_memory(reports, shape, tiling, divisor: int, backend: str, base_features: int) -> None:
    """Refuse a CPU run where a worker's memory limit cannot hold the windows of each of its threads (each runs
    a task, with windows of its own; Dask restarts a worker past 95 % of its limit), naming a tile size that
    fits (the estimate of :mod:`.memory_check`)."""
    from .memory_check import _advice, _gb, _window_voxels, window_peak

    need = window_peak(backend, _window_voxels(shape, tiling, divisor), base_features)
    short = [r for r in reports if r.memory_limit and need * r.threads > 0.95 * r.memory_limit]
    if not short:
        return
    worst = min(short, key=lambda r: r.memory_limit / r.threads)
    room = int(0.95 * worst.memory_limit / worst.threads)
    names = ", ".join(r.address for r in short[:3]) + (f" and {len(short) - 3} more" if len(short) > 3 else "")
    raise TomosegError(f"Dask worker{'s' if len(short) > 1 else ''} {names} would run out of memory: each thread "
                       f"runs a task whose windows (tile size {tiling.tile_size}) need about {_gb(need)} at their "
                       f"peak, and {worst.address} has {_gb(worst.memory_limit)} for {worst.threads} thread"
                       f"{'s' if worst.threads > 1 else ''}; "
                       + _advice(shape, tiling, divisor, backend, base_features, room, again=False)
                       + ", or give each worker fewer threads (dask worker --nthreads 1) or more memory "
                       "(--memory-limit)")
