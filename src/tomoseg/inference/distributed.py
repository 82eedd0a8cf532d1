"""Scale-out: the same tile function on a Dask distributed cluster, writing into a shared Zarr store.

Each task computes a run of consecutive tiles (:func:`task_batches`: whole rows along x, or parts of one) and
writes their cores (whole output chunks, so tasks never write the same chunk). Within a task the windows share
the chunk cache and, on a GPU, are batched, as in a single-process run. A task lost with its worker is run
again elsewhere (Dask reschedules it; the tiles it had finished are skipped), and since a tile's result
depends only on its input, the output is byte-identical to a single-process run. The work folder must be on a
file system that every worker sees.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import time
from dataclasses import replace

from ..errors import TomosegError
from ..progress import print_line

# No dashboard, and the scheduler's own HTTP server (metrics) on a free port: with dashboard_address=None alone it
# still takes 8787, so a Dask dashboard already running there (a user's notebook) made the local cluster warn
# "Port 8787 is already in use" (an error under pytest's warning filter).
QUIET_SCHEDULER = {"dashboard": False, "dashboard_address": ":0"}


def local_threads(workers: int) -> int:
    """Threads for each of ``workers`` local workers (their ``TOMOSEG_THREADS``): the cores this process may
    use (its affinity: ``taskset``, a SLURM allocation), shared out, at least one."""
    from ..io.blocks import usable_cores

    return max(1, usable_cores() // max(1, int(workers)))


def dask_setup(worker) -> None:
    """Dask's preload hook, run in each worker process of a local cluster of ours as it starts (the cluster's
    ``preload`` names this module). Ctrl-C in a terminal reaches every process of the foreground group, the
    workers too: each printed its KeyboardInterrupt traceback ("Process Dask Worker process (from Nanny)").
    They now leave Ctrl-C to tomoseg, which closes the cluster; and what Dask logs below ERROR once a worker
    is closing (a warning for each task still running, "ended with CancelledError") is dropped: how the run
    ended is tomoseg's to say."""
    import signal

    from distributed.core import Status

    try:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    except ValueError:  # not the main thread: a worker run some other way, left as it is
        pass
    closing = (Status.closing, Status.closing_gracefully, Status.closed)
    quiet = _QuietWhile(lambda: worker.status in closing)
    for handler in logging.getLogger("distributed").handlers:
        handler.addFilter(quiet)


class _QuietWhile(logging.Filter):
    """A logging filter that drops the records below ERROR while ``now()`` is true."""

    def __init__(self, now):
        super().__init__()
        self.now = now

    def filter(self, record) -> bool:
        return record.levelno >= logging.ERROR or not self.now()


@contextlib.contextmanager
def _quiet_shutdown(failed: bool):
    """Where the run ``failed`` (or was interrupted), the parent's Dask logs below ERROR (the scheduler's, the
    nannies' of a local cluster: workers still busy when closed, killed after a timeout) are dropped while the
    cluster closes: the run's end is tomoseg's message."""
    handlers = list(logging.getLogger("distributed").handlers) if failed else []
    drop = _QuietWhile(lambda: True)
    for handler in handlers:
        handler.addFilter(drop)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(drop)


class _Reopen:
    """A volume sent to the workers as the call that opens it, made inside the task (:func:`_run_batch`): a
    volume unpickled with the task message is opened by Dask's comm layer, where a failure (the file not on
    that node) is no task error but a worker Dask shuts down, and the run waited for ever (review K1)."""

    def __init__(self, volume):
        self.call = volume.__reduce__()  # (function, args); a TypeError here for a volume that cannot travel

    def open(self):
        function, args = self.call
        return function(*args)


def _run_batch(job, tiles, gpus: int | None = None, software: dict | None = None) -> int:
    """Compute and write ``tiles`` on this worker. ``software``: the versions of what computes the tiles on the
    workers checked before the run (:func:`.cluster_probe.software_of`); a worker that joined the cluster since
    with others refuses the task (review DK4: its tiles, computed without a word, could differ)."""
    from pathlib import Path

    from dask.distributed import get_worker

    from .engine import run_tiles

    worker = get_worker()
    if not (Path(job.work) / "state.json").exists():  # a worker that joined on a node without the output's mount
        # (review DK7: its task failed on "model.safetensors: model file not found")
        raise TomosegError(f"Dask worker {worker.address} ({worker.name}) does not see the run's work folder "
                           f"{job.work}: the output must be on a file system every worker sees, at the same path "
                           "(workers that join during the run are not checked before it)")
    done = Path(job.work) / "done"
    tiles = [t for t in tiles if not (done / str(t.index)).exists()]  # a task run again after its worker was lost
    if not tiles:
        return 0
    if software is not None:
        from .cluster_probe import versions_text, worker_software

        mine = worker_software(job.backend.backend)
        if mine != software:
            raise TomosegError(f"Dask worker {worker.address} ({worker.name}), which joined during the run, runs "
                               f"{versions_text(mine)}, not {versions_text(software)} as the workers checked at the "
                               "start: its tiles could differ; install the same versions on every worker")
    if gpus:
        job = replace(job, backend=replace(job.backend, device=gpu_of_worker(worker.name, gpus)))
    volume = job.volume.open() if isinstance(job.volume, _Reopen) else job.volume
    try:
        # the chunk cache stays within this worker's share of the node's memory, not the node's
        limit = getattr(getattr(worker, "memory_manager", None), "memory_limit", None)
        return run_tiles(replace(job, volume=volume), tiles, memory=limit)
    finally:
        if volume is not job.volume:
            volume.close()


def gpu_of_worker(name, gpus: int) -> str:
    """The CUDA device of a worker of a ``--gpus`` cluster: workers are named 0 .. gpus-1 and each takes the
    GPU of its number."""
    try:
        index = int(name)
    except (TypeError, ValueError):
        raise TomosegError(f"Dask worker {name!r} is not one of a --gpus cluster (workers named 0 to "
                           f"{gpus - 1})") from None
    return f"cuda:{index % gpus}"


def task_batches(tiles, workers: int, tasks_per_worker: int = 4, *, merge_rows: bool = True) -> list[list]:
    """``tiles`` (in z, y, x order) cut into the tasks of a cluster of ``workers``: about ``tasks_per_worker``
    tasks per worker (so that no worker idles long while another finishes), each a run of consecutive tiles.
    Consecutive tiles share input chunks (their halos; whole slices for a folder of TIFF slices), and a task
    reads its windows through one chunk cache and, on a GPU, batches them, as a single process does. Tasks are
    whole rows of tiles along x where there are enough rows, else parts of rows. ``merge_rows=False`` keeps at
    least one task per row, for a cluster whose workers are still arriving (a SLURM cluster scaling up): the
    workers there at the start do not decide how finely the work is cut.

    Examples
    --------
    >>> from tomoseg.inference.tiling import TilingConfig, tile_grid
    >>> tiles = tile_grid((64, 512, 512), TilingConfig(tile_size=64, halo=16), 8)
    >>> [len(b) for b in task_batches(tiles, workers=1)]  # 8 rows of 8 tiles, two rows a task
    [16, 16, 16, 16]
    >>> [len(b) for b in task_batches(tiles, workers=2)]  # a row a task
    [8, 8, 8, 8, 8, 8, 8, 8]
    >>> [len(b) for b in task_batches(tiles[:8], workers=2)]  # one row: split in 8
    [1, 1, 1, 1, 1, 1, 1, 1]
    """
    rows: list[list] = []
    for tile in tiles:
        if rows and rows[-1][-1].core[:2] == tile.core[:2]:
            rows[-1].append(tile)
        else:
            rows.append([tile])
    want = min(len(tiles), max(max(1, int(workers)) * tasks_per_worker, 0 if merge_rows else len(rows)))
    if len(rows) >= want:  # consecutive whole rows, about len(tiles) / want tiles a task
        batches: list[list] = [[] for _ in range(want)]
        seen = 0
        for row in rows:
            batches[min(want - 1, seen * want // len(tiles))] += row
            seen += len(row)
        return [b for b in batches if b]
    parts = -(-want // len(rows))
    batches = []
    for row in rows:
        size = -(-len(row) // min(parts, len(row)))
        batches += [row[i:i + size] for i in range(0, len(row), size)]
    return batches


def run_distributed(job, tiles, *, workers: int | None = None, scheduler: str | None = None, progress=None,
                    gpus: int | None = None, client=None, software: dict | None = None) -> None:
    """Run ``tiles`` on a cluster: an existing one (``scheduler``, or ``client`` already connected to it by
    :func:`connect_scheduler`, left open) or a local one of ``workers`` processes; with ``gpus``, one local
    worker per GPU, each on its own device. The job's paths must be absolute: workers run in folders of their
    own. ``software``: what the workers checked before the run compute the tiles with, which a worker joining
    later must have too (:func:`_run_batch`)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:  # pragma: no cover - distributed is a dependency
        from ..errors import needs_package

        raise needs_package("the Dask path", "distributed") from None
    cluster = None
    own_client = True
    environ = dict(os.environ)  # Dask's nannies write their workers' variables into this process's environment
    if client is not None:  # connected by the caller (connect_scheduler), who closes it
        own_client = False
    elif scheduler:
        client, own_client = connect_scheduler(scheduler)
    else:
        if gpus:
            workers = gpus
        threads = local_threads(workers)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               scheduler_kwargs=QUIET_SCHEDULER, preload=[__name__],  # dask_setup: Ctrl-C
                               env={"TOMOSEG_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)})
        client = Client(cluster)
    failed = True
    futures = []
    try:
        n_workers = workers or len(client.nthreads()) or 1
        batches = task_batches(tiles, n_workers, merge_rows=cluster is not None)  # a cluster of ours is complete
        sent = replace(job, volume=_Reopen(job.volume), run=_run_of(job.work))
        futures = client.map(_run_batch, [sent] * len(batches), batches, [gpus] * len(batches),
                             [software] * len(batches), pure=False, retries=3)
        with _DoneWatcher(job.work, tiles, progress):
            _wait_for(futures, client, scheduler or client.scheduler.address, watch=cluster is None)
        failed = False
    finally:
        with _quiet_shutdown(failed):
            if failed and futures and cluster is None:
                _cancel(client, futures, job.work)
            if own_client:
                client.close()
            if cluster is not None:
                cluster.close()
                _restore_environment(environ)


RESUME = "the same command with --resume continues where it stopped"


def _wait_for(futures, client, address: str, *, watch: bool, poll: float = 0.2) -> None:
    """Wait for ``futures``, raising the first task's error in one line. With ``watch`` (a cluster not ours),
    also watch the workers: none left for :func:`.cluster_probe.worker_wait` seconds (SLURM jobs at their time
    limit, all shut down by Dask) stops the run with an error (review K2), rather than waiting for ever. A
    worker holding the run's tasks that stops answering is said (:class:`_SilenceWatch`, review DK1)."""
    from .cluster_probe import scheduler_lost, start_workers_hint, worker_wait, workers_now

    pending = list(futures)
    wait = worker_wait()
    since = None
    checked = time.monotonic()
    silence = _SilenceWatch(client, {f.key for f in futures})
    while pending:
        for future in [f for f in pending if f.done()]:
            pending.remove(future)
            if future.status == "cancelled" and client.status != "running":  # Dask gave up reconnecting
                raise scheduler_lost(address, RESUME)
            _result(future, local=not watch)
            future.release()  # its result is not wanted: a worker lost later does not run the task again
        if not pending:
            return
        now = time.monotonic()
        if now - checked >= POLL_WORKERS_S:
            checked = now
            if client.status != "running":  # reconnecting: the calls below would wait for Dask to give up
                time.sleep(poll)
                continue
            if watch:
                if workers_now(client, address, RESUME):
                    since = None
                elif since is None:
                    since = now
                    print_line(f"tomoseg: no Dask worker left on {address}: waiting up to {wait:g} s for one")
                elif now - since >= wait:
                    raise TomosegError(f"no Dask worker was connected to {address} for {wait:g} s, with "
                                       f"{len(pending)} task{'s' if len(pending) > 1 else ''} left; "
                                       f"{start_workers_hint(address)}; then {RESUME}")
            silence.check({f.key for f in pending})
        time.sleep(poll)


SILENT_S = 60.0  # a worker holding the run's tasks not heard from for this long is said (review DK1)


class _SilenceWatch:
    """Says, once per worker, a worker that holds the run's tasks and has not been heard from (its heartbeat to the
    scheduler) for :data:`SILENT_S` seconds: stopped (SIGSTOP, a suspended job), swapping, or its node hung on a
    file system. Dask does not take tasks from it, and gives it up only at its ``worker-ttl`` check (5 min, checked
    every 5 min): the bar stood still for 5 to 10 minutes without a word. The silence is timed on this machine's
    clock, from when the worker's last heartbeat time stopped changing (the scheduler's clock may differ)."""

    def __init__(self, client, keys):
        self.client = client
        self.keys = keys
        self.seen: dict = {}   # worker address -> (its last heartbeat time, this machine's time it was seen so)
        self.said: set = set()

    def check(self, pending) -> None:
        try:
            try:
                info = self.client.scheduler_info(n_workers=-1)  # all of them (Dask's default: the first 5)
            except TypeError:  # a Dask before n_workers: all of them always
                info = self.client.scheduler_info()
            workers = info.get("workers", {})
            processing = self.client.processing()
        except Exception:  # noqa: BLE001 - the scheduler's state unreadable now: looked at again at the next poll
            return
        now = time.monotonic()
        for address, info in workers.items():
            last = info.get("last_seen")
            if self.seen.get(address, (None,))[0] != last:
                self.seen[address] = (last, now)
                self.said.discard(address)  # heard from again: a later silence is said again
                continue
            held = len(set(processing.get(address, ())) & pending & self.keys)
            silent = now - self.seen[address][1]
            if held and silent >= SILENT_S and address not in self.said:
                self.said.add(address)
                name = info.get("name")
                named = f" ({name})" if name not in (None, address) else ""
                print_line(f"tomoseg: Dask worker {address}{named} on {info.get('host', '?')} has not answered "
                           f"for {silent:.0f} s and holds {held} of the run's task{'s' if held > 1 else ''} "
                           "(stopped, swapping, or its node hung on a file system?); Dask gives up on it after "
                           "its worker-ttl (5 minutes by default) and runs them on the other workers: end that "
                           f"worker for them to go on at once, or Ctrl-C and {RESUME}")


POLL_WORKERS_S = 5.0


def _result(future, local: bool = False) -> None:
    """A finished task's failure, said in one line; nothing for a task that succeeded. Only the scheduler's record
    of the task is read (its status, its exception), never its result: that (a count of tiles) lives on the
    worker, and asking for it from a worker that had just gone waited for ever, for the task to run again on a
    worker that never came (the test of the last worker gone hung CI so). What a task wrote is on disk either
    way: segment counts the tiles done after the run. ``local``: the cluster is ours (``--workers``), which the
    advice names."""
    from distributed.scheduler import KilledWorker

    status = future.status
    if status == "cancelled":
        raise TomosegError(f"the run's tasks were cancelled on the Dask cluster (by another client of it, or its "
                           f"scheduler closing); {RESUME}")
    if status != "error":  # finished, or lost with its worker since: its tiles are written
        return
    exc = future.exception(timeout=60)
    if isinstance(exc, TomosegError):
        raise TomosegError(f"on a Dask worker: {exc}; {RESUME}") from None
    if isinstance(exc, KilledWorker):
        raise TomosegError(
            "Dask workers died while running the same task of tiles again and again (Dask gave up on it: "
            f"{str(exc).split('.')[0]}); most often a worker out of memory (the workers' logs say 'exceeded 95% "
            "memory budget') or one that cannot load the task (their logs say 'Failed to deserialize'). "
            + ("Use fewer --workers (each gets the machine's memory shared out)" if local else
               "Give each worker fewer threads (dask worker --nthreads 1) or more memory (--memory-limit)")
            + f", or use a smaller --tile-size with --overwrite; else {RESUME}") from None
    # any other failure (a bug, or a worker whose tomoseg is not this one's code): one line, its traceback (the
    # worker's) under --debug; it came as Dask's traceback, e.g. "TypeError: _run_batch() takes from 2 to 3
    # positional arguments but 4 were given" from workers started before tomoseg was updated (review DK5)
    from .cluster_probe import said

    raise TomosegError(f"a task failed on a Dask worker ({said(exc)}); where the workers were started before "
                       "tomoseg was installed or updated, restart them (a worker keeps the code it imported); "
                       f"--debug shows the worker's traceback; {RESUME}") from exc


def _run_of(work) -> float | None:
    """The identity of the run in ``work`` (its state's start) for its tasks to check before each write
    (:func:`.work_folder.check_run`); a stop left by an earlier invocation of the run (Ctrl-C) is lifted."""
    import json
    from pathlib import Path

    from .work_folder import STOPPED

    (Path(work) / STOPPED).unlink(missing_ok=True)
    try:
        return json.loads((Path(work) / "state.json").read_text(encoding="utf-8")).get("started")
    except (OSError, ValueError):
        return None


def _cancel(client, futures, work) -> None:
    """Cancel the run's tasks on a cluster not ours (Ctrl-C, an error): those queued never start; those running
    cannot be stopped by Dask, and stop before writing their next tile (a :data:`.work_folder.STOPPED` file that
    they check, :func:`.work_folder.check_run`). Said on stderr, with how many."""
    from pathlib import Path

    from .work_folder import STOPPED

    try:
        (Path(work) / STOPPED).touch()
    except OSError:
        pass
    running = 0
    try:
        keys = {f.key for f in futures if not f.done()}
        running = sum(len(keys & set(tasks)) for tasks in client.processing().values())
        client.cancel(futures)
    except Exception:  # noqa: BLE001 - the scheduler gone: nothing to cancel
        return
    if running:
        print(f"tomoseg: cancelled the run's tasks on the Dask cluster; {running} already running stop before "
              "writing their next tile (the tile being computed is dropped)", file=sys.stderr, flush=True)


def _restore_environment(environ: dict) -> None:
    """Put back this process's environment as it was before a local cluster started. Dask's nannies set their
    workers' variables (``OMP_NUM_THREADS=1``, ``MALLOC_TRIM_THRESHOLD_``...) in the parent's ``os.environ``
    before spawning each worker, by design, and leave them there: a later PyTorch import in this process (a
    notebook's next ``segment``) would run on one thread, and every process it starts would inherit them."""
    for key in set(os.environ) - set(environ):
        del os.environ[key]
    os.environ.update(environ)


class _DoneWatcher:
    """Moves ``progress`` tile by tile while a Dask run goes on: a task holds many tiles, so the bar follows the
    done markers the workers write (on the shared work folder), looked at every ``interval`` seconds, not
    the tasks."""

    interval = 1.0

    def __init__(self, work, tiles, progress):
        import threading

        self.folder = os.path.join(str(work), "done")
        self.sizes = {t.index: _voxels(t) for t in tiles}
        self.progress = progress
        self.counted: set = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="tomoseg-done-watcher", daemon=True)

    def _count(self) -> None:
        try:
            names = os.listdir(self.folder)
        except OSError:
            return
        new = {int(n) for n in names if n.isdigit()} & self.sizes.keys() - self.counted
        if new:
            self.counted |= new
            self.progress.update(sum(self.sizes[i] for i in new))

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._count()

    def __enter__(self):
        if self.progress is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self._stop.set()
            self._thread.join()
            self._count()


CONNECT_TIMEOUT_S = 30  # the whole connection to a scheduler, handshake included


def connect_scheduler(address: str, timeout: float | None = None):
    """A client connected to the Dask scheduler at ``address`` and whether it is this call's own (to close):
    a client of this process already connected there (a notebook's) is used as it is. Refused with one line
    where nothing answers, where the answer is not Dask's protocol (a web server, SSH) or where no answer comes
    within ``timeout`` seconds: the scheduler is asked for its identity first, under a time limit on the whole
    exchange (Dask's own ``timeout`` covers the TCP connection only: a service that accepts it and stays silent
    held ``Client`` for ever, and garbage bytes gave a MemoryError, a frame length of exabytes)."""
    import asyncio

    from dask.distributed import Client

    timeout = CONNECT_TIMEOUT_S if timeout is None else timeout
    existing = _existing_client(address)
    if existing is not None:
        return existing, False
    _check_reachable(address, timeout)

    async def identity():
        from distributed.comm import connect

        comm = await connect(address, timeout=timeout)
        try:
            await comm.write({"op": "identity", "reply": True})
            return await comm.read()
        finally:
            comm.abort()

    why = None
    try:
        answer = asyncio.run(asyncio.wait_for(identity(), timeout))
        if not isinstance(answer, dict):
            why = "not a Dask scheduler: its answer is not Dask's protocol"
    except MemoryError:  # a frame length read from bytes that are not Dask's
        why = "not a Dask scheduler: its answer is not Dask's protocol"
    except (asyncio.TimeoutError, TimeoutError):
        why = f"no Dask answer within {timeout:g} s: is a Dask scheduler listening there?"
    except OSError as exc:
        why = str(exc)
    except Exception as exc:  # noqa: BLE001 - any failure of the exchange is the scheduler's, named
        why = f"not a Dask scheduler? {type(exc).__name__}: {exc}"
    if why is None:
        try:
            return Client(address, timeout=f"{timeout:g}s"), True
        except (OSError, MemoryError) as exc:
            why = f"{type(exc).__name__}: {exc}"
    raise TomosegError(f"cannot reach the Dask scheduler at {address} ({why}); check the address printed by "
                       "dask-scheduler")


def _check_reachable(address: str, timeout: float) -> None:
    """For a TCP-based address, the host name resolved and a TCP connection tried first, so that an unknown
    host or a refused port is said at once and as such (Dask's connect retries both until its timeout, 30 s,
    and reports a timeout: review K8)."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(address)
        if scheme not in ("tcp", "tls", "ws", "wss"):
            return
        host, port = parse_host_port(location, 8786)
    except ValueError:
        return  # left to Dask, which says what is wrong with it
    where = f"cannot reach the Dask scheduler at {address}"
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise TomosegError(f"{where}: unknown host {host!r} ({exc.strerror}); check the address printed by "
                           "dask scheduler") from None
    try:
        socket.create_connection((host, port), timeout=min(timeout, 10)).close()
    except ConnectionRefusedError:
        raise TomosegError(f"{where}: connection refused (nothing listens on port {port} of {host}: is the "
                           "scheduler running, on that port?)") from None
    except OSError:
        return  # a timeout or an unreachable network: Dask's connect tries again, within its own time limit


def open_cluster(address: str, volume, folder, backend_config):
    """The client of the existing cluster at ``address`` (:func:`connect_scheduler`), whether it is this call's
    own to close, and the reports of its workers (:func:`.cluster_probe.check_workers`, after waiting for a
    first one): every worker can open ``volume``, sees ``folder`` and resolves ``backend_config`` to the same
    backend and device. Refused in one line before any work; the client is closed then."""
    from .cluster_probe import check_workers, wait_for_workers

    from .cluster_probe import scheduler_lost

    client, own = connect_scheduler(address)
    try:
        try:
            wait_for_workers(client, address)
            reports = check_workers(client, volume, folder, backend_config)
        except Exception:
            if client.status != "running":  # the scheduler gone during the check (review DK2)
                raise scheduler_lost(address) from None
            raise
    except BaseException:
        if own:
            client.close()
        raise
    return client, own, reports


def _existing_client(address: str):
    from dask.distributed import default_client

    try:
        client = default_client()
    except ValueError:
        return None
    return client if client.scheduler.address == address else None


def _voxels(tile) -> int:
    n = 1
    for s in tile.core:
        n *= s.stop - s.start
    return n
