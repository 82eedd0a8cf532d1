"""Scale-out: the same tile function on a Dask distributed cluster, writing into a shared Zarr store.

Each task computes a few tiles and writes their cores (whole output chunks, so
tasks never write the same chunk). A task lost with its worker is run again
elsewhere (Dask reschedules it), and since a tile's result depends only on its
input, the output is byte-identical to a single-process run. The work folder
must be on a file system that every worker sees.
"""

from __future__ import annotations

import os

from ..errors import TomosegError


def _run_batch(job, tiles, gpus: int | None = None) -> int:
    from dataclasses import replace

    from .engine import run_tiles

    if gpus:
        from dask.distributed import get_worker

        job = replace(job, backend=replace(job.backend, device=gpu_of_worker(get_worker().name, gpus)))
    return run_tiles(job, tiles)


def gpu_of_worker(name, gpus: int) -> str:
    """The CUDA device of a worker of a ``--gpus`` cluster: workers are named 0 .. gpus-1 and each takes the
    GPU of its number."""
    try:
        index = int(name)
    except (TypeError, ValueError):
        raise TomosegError(f"Dask worker {name!r} is not one of a --gpus cluster (workers named 0 to "
                           f"{gpus - 1})") from None
    return f"cuda:{index % gpus}"


def run_distributed(job, tiles, *, workers: int | None = None, scheduler: str | None = None, progress=None,
                    tiles_per_task: int = 1, gpus: int | None = None) -> None:
    """Run ``tiles`` on a cluster: an existing one (``scheduler``) or a local one of ``workers`` processes;
    with ``gpus``, one local worker per GPU, each on its own device."""
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError:  # pragma: no cover - distributed is a dependency
        raise TomosegError("the Dask path needs the distributed package: pip install distributed") from None
    cluster = None
    own_client = True
    if scheduler:
        client = _existing_client(scheduler)
        if client is not None:
            own_client = False  # a client of this process is already connected (e.g. in a notebook)
        else:
            try:
                client = Client(scheduler, timeout="20s")
            except OSError as exc:
                raise TomosegError(f"cannot reach the Dask scheduler at {scheduler} ({exc})") from None
    else:
        if gpus:
            workers = gpus
        threads = max(1, (os.cpu_count() or 1) // workers)
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                               env={"TOMOSEG_THREADS": str(threads), "OMP_NUM_THREADS": str(threads)})
        client = Client(cluster)
    try:
        batches = [tiles[i:i + tiles_per_task] for i in range(0, len(tiles), tiles_per_task)]
        futures = client.map(_run_batch, [job] * len(batches), batches, [gpus] * len(batches), pure=False,
                             retries=3)
        sizes = {f.key: sum(_voxels(t) for t in b) for f, b in zip(futures, batches)}
        for future in as_completed(futures):
            future.result()
            if progress is not None:
                progress.update(sizes[future.key])
    finally:
        if own_client:
            client.close()
        if cluster is not None:
            cluster.close()


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
