"""3D connected components, in memory or chunk by chunk for volumes larger than memory.

The chunked labelling equals ``scipy.ndimage.label`` up to a renumbering:
each chunk is labelled on its own, then labels that touch across chunk
boundaries (faces, edges and corners, for 26-connectivity) are merged with a
graph's connected components, and a last pass writes consecutive labels in
raster order of first appearance (the order scipy uses).
"""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from ..errors import TomosegError


def structure(connectivity: int) -> np.ndarray:
    if connectivity == 26:
        return np.ones((3, 3, 3), bool)
    if connectivity == 6:
        return ndimage.generate_binary_structure(3, 1)
    if connectivity == 18:
        return ndimage.generate_binary_structure(3, 2)
    raise TomosegError(f"connectivity {connectivity!r} must be 6, 18 or 26")


def label_objects(mask, *, connectivity: int = 26) -> tuple[np.ndarray, int]:
    """Label the connected components of a mask in memory: (labels uint32, count).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((3, 3, 3), bool); m[0, 0, 0] = m[2, 2, 2] = True
    >>> label_objects(m)[1], label_objects(m, connectivity=6)[1]
    (2, 2)
    """
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise TomosegError(f"mask must be 3D, got shape {mask.shape}")
    labels = np.zeros(mask.shape, np.uint32)
    n = ndimage.label(mask.astype(bool, copy=False), structure=structure(connectivity), output=labels)
    return labels, int(n)


def _chunk_slices(shape, chunks):
    ranges = [range(0, s, c) for s, c in zip(shape, chunks)]
    for z, y, x in itertools.product(*ranges):
        yield tuple(slice(a, min(a + c, s)) for a, c, s in zip((z, y, x), chunks, shape))


def _neighbour_offsets(connectivity: int, axis: int):
    """Offsets (in the two other axes) that connect a voxel to the next plane along ``axis``."""
    st = structure(connectivity)
    centre = [1, 1, 1]
    offs = []
    for d in itertools.product((-1, 0, 1), repeat=2):
        idx = list(centre)
        others = [a for a in range(3) if a != axis]
        idx[axis] = 2
        idx[others[0]] += d[0]
        idx[others[1]] += d[1]
        if st[tuple(idx)]:
            offs.append(d)
    return offs


def _pairs_across(plane_a: np.ndarray, plane_b: np.ndarray, offsets) -> np.ndarray:
    pairs = []
    h, w = plane_a.shape
    for dy, dx in offsets:
        a = plane_a[max(0, -dy):h - max(0, dy), max(0, -dx):w - max(0, dx)]
        b = plane_b[max(0, dy):h - max(0, -dy), max(0, dx):w - max(0, -dx)]
        both = (a > 0) & (b > 0)
        if both.any():
            pairs.append(np.stack([a[both], b[both]], 1))
    return np.concatenate(pairs) if pairs else np.zeros((0, 2), np.int64)


def label_chunked(mask_volume, output_path, *, chunks=(128, 128, 128), connectivity: int = 26,
                  threshold: int | None = None, progress=None) -> int:
    """Label a mask volume chunk by chunk into a uint32 Zarr volume at ``output_path``; returns the count.

    Parameters
    ----------
    mask_volume : Volume or array-like
        Nonzero = object; with ``threshold``, object = value > threshold (a uint8 probability map).
    output_path : path
        A ``.zarr`` volume to create (uint32 labels).
    """
    from ..io.zarr_store import create_zarr, store_chunks, write_chunk

    shape = tuple(mask_volume.shape)
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    st = structure(connectivity)
    # whole chunks, only where they hold labels (missing chunks read as 0): see store_chunks
    work = store_chunks(create_zarr(Path(str(output_path) + ".local"), shape, np.uint64, chunks=chunks).array)

    def as_mask(block):
        return block > threshold if threshold is not None else block != 0

    # pass 1: local labels with a global offset
    offset = 0
    for sl in _chunk_slices(shape, chunks):
        local, n = ndimage.label(as_mask(np.asarray(mask_volume[sl])), structure=st)
        if n:
            local = local.astype(np.uint64)
            local[local > 0] += offset
            work[sl] = local
        offset += n
        if progress is not None:
            progress.update(int(np.prod([s.stop - s.start for s in sl])))
    # pass 2: merge labels across chunk boundaries (whole planes: faces, edges and corners)
    edges = []
    for axis in range(3):
        offs = _neighbour_offsets(connectivity, axis)
        for p in range(chunks[axis], shape[axis], chunks[axis]):
            before = [slice(None)] * 3
            after = [slice(None)] * 3
            before[axis], after[axis] = p - 1, p
            edges.append(_pairs_across(np.asarray(work[tuple(before)]), np.asarray(work[tuple(after)]), offs))
    pairs = np.concatenate(edges) if edges else np.zeros((0, 2), np.int64)
    n_local = offset + 1
    graph = sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(n_local, n_local))
    _, component = connected_components(graph, directed=False)
    # pass 3: number components in raster order of first appearance (as scipy does)
    order = np.full(component.max() + 1, np.iinfo(np.int64).max, np.int64)
    for sl in _chunk_slices(shape, chunks):
        block = np.asarray(work[sl])
        where = np.flatnonzero(block)  # object voxels only: a sort of the whole chunk costs 10x more
        ids, first = np.unique(block.ravel()[where], return_index=True)
        if ids.size:
            coords = np.unravel_index(where[first], block.shape)
            flat = np.ravel_multi_index(tuple(c + s.start for c, s in zip(coords, sl)), shape)
            np.minimum.at(order, component[ids.astype(np.int64)], flat)
    comp_ids = np.nonzero(order != np.iinfo(np.int64).max)[0]
    final = np.zeros(component.max() + 1, np.uint32)
    final[comp_ids[np.argsort(order[comp_ids], kind="stable")]] = np.arange(1, len(comp_ids) + 1, dtype=np.uint32)
    lookup = final[component]
    lookup[0] = 0
    out = store_chunks(create_zarr(Path(output_path), shape, np.uint32, chunks=chunks).array)
    for sl in _chunk_slices(shape, chunks):
        write_chunk(out, sl, lookup[np.asarray(work[sl]).astype(np.int64)])
    shutil.rmtree(str(output_path) + ".local")
    return int(len(comp_ids))

