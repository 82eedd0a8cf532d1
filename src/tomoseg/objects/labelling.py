"""3D connected components, in memory or chunk by chunk for volumes larger than memory.

The chunked labelling equals ``scipy.ndimage.label``, numbering included:
each chunk is labelled on its own (chunks on several threads), then labels that
touch across chunk boundaries (faces, edges and corners, for 26-connectivity)
are merged with a graph's connected components, and a last pass writes
consecutive labels in raster order of first appearance (the order scipy uses).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
from scipy import ndimage, sparse
from scipy.sparse.csgraph import connected_components

from ..errors import TomosegError
from ..io.blocks import chunk_regions


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

    ``mask``: bool, or 0 and 1 (or a label image of 16 bits or more: nonzero = object); a probability map is
    refused (:func:`~tomoseg.objects.reading.as_mask`): threshold it first (``p > 0.5``, ``p8 > 127``).

    Examples
    --------
    >>> import numpy as np
    >>> m = np.zeros((3, 3, 3), bool); m[0, 0, 0] = m[2, 2, 2] = True
    >>> label_objects(m)[1], label_objects(m, connectivity=6)[1]
    (2, 2)
    """
    from .reading import as_mask

    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise TomosegError(f"mask must be 3D, got shape {mask.shape}")
    mask = as_mask(mask, "mask")
    labels = np.zeros(mask.shape, np.uint32)
    n = ndimage.label(mask, structure=structure(connectivity), output=labels)
    return labels, int(n)


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


def label_threads() -> int:
    """Threads for labelling chunks: one per core, up to 16 (``scipy.ndimage.label`` and the chunk reads and
    writes let other threads run)."""
    from ..io.blocks import worker_threads

    return worker_threads(16)


class _Faces:
    """The labelled voxels on the planes either side of each chunk boundary, kept sparse (objects are a small
    share of the voxels), and the pairs of labels that touch across them.

    A boundary at index ``p`` along ``axis`` is cut into segments: the whole plane for z, one layer of chunks for
    y, one chunk for x. A segment's pairs are found, and its faces dropped, as soon as the chunks on both sides
    are in (:meth:`add`, chunks in raster order), so what is held is about two layers of chunks' z faces, not
    every face of the volume. Contacts that leave a segment diagonally (into the next layer or row of chunks)
    cross a z or y boundary too, and are found there: a z plane spans every y and x, a y segment every x."""

    def __init__(self, shape, chunks, connectivity: int):
        self.shape, self.chunks = shape, chunks
        self.offsets = {axis: _neighbour_offsets(connectivity, axis) for axis in range(3)}
        grid = [-(-s // c) for s, c in zip(shape, chunks)]
        self.expected = {0: grid[1] * grid[2], 1: grid[2], 2: 1}  # chunks on one side of a segment
        self.parts: dict = {}    # (axis, boundary, segment, side) -> [(keys, labels)]
        self.seen: dict = {}     # (axis, boundary, segment, side) -> chunks added
        self.found: list = [np.zeros((0, 2), np.int64)]

    @staticmethod
    def _segment(axis: int, region) -> tuple:
        return () if axis == 0 else (region[0].start,) if axis == 1 else (region[0].start, region[1].start)

    def add(self, lab, region, offset: int) -> None:
        """A chunk's labels (``lab``: local, None where it has none) with its global label offset."""
        for axis in range(3):
            others = [a for a in range(3) if a != axis]
            width = self.shape[others[1]]
            for side, pos, boundary in ((1, 0, region[axis].start), (0, -1, region[axis].stop)):
                if boundary in (0, self.shape[axis]):
                    continue  # a face on the volume's border: nothing beyond it
                key = (axis, boundary, self._segment(axis, region), side)
                self.seen[key] = self.seen.get(key, 0) + 1
                if lab is not None:
                    plane = np.take(lab, pos, axis=axis)
                    nz = np.flatnonzero(plane)
                    if nz.size:
                        u, v = np.unravel_index(nz, plane.shape)
                        keys = (u + region[others[0]].start) * width + (v + region[others[1]].start)
                        self.parts.setdefault(key, []).append((keys, plane.ravel()[nz].astype(np.int64) + offset))
                pair = key[:3] + (1 - side,)
                if self.seen[key] == self.expected[axis] and self.seen.get(pair) == self.expected[axis]:
                    self._pair(*key[:3])

    def _pair(self, axis: int, boundary: int, segment: tuple) -> None:
        before = self.parts.pop((axis, boundary, segment, 0), None)
        after = self.parts.pop((axis, boundary, segment, 1), None)
        self.seen.pop((axis, boundary, segment, 0))
        self.seen.pop((axis, boundary, segment, 1))
        if not before or not after:
            return
        others = [a for a in range(3) if a != axis]
        height, width = self.shape[others[0]], self.shape[others[1]]
        kb, lb = (np.concatenate(x) for x in zip(*before))
        ka, la = (np.concatenate(x) for x in zip(*after))
        order = np.argsort(ka)
        ka, la = ka[order], la[order]
        ub, vb = np.divmod(kb, width)
        found = []
        for du, dv in self.offsets[axis]:
            u, v = ub + du, vb + dv
            ok = (u >= 0) & (u < height) & (v >= 0) & (v < width)
            want = u[ok] * width + v[ok]
            at = np.clip(np.searchsorted(ka, want), 0, len(ka) - 1)
            hit = ka[at] == want
            found.append(np.stack([lb[ok][hit], la[at[hit]]], 1))
        self.found.append(np.unique(np.concatenate(found), axis=0))  # one row per pair of labels, not per voxel

    def pairs(self) -> np.ndarray:
        """(label before, label after) for the labels that touch across chunk boundaries, all chunks added."""
        if self.parts:
            raise RuntimeError(f"chunk faces never paired: {sorted(self.parts)[:3]}")
        return np.concatenate(self.found)


# bytes a label store takes (uint32 labels, compressed): 10.3 MB for 40,188 balls of 23.4 M voxels
# (0.44 byte a voxel, 257 bytes an object); sized here at twice that, for masks less smooth
STORE_BYTES_PER_VOXEL, STORE_BYTES_PER_OBJECT = 0.5, 200


def store_bytes(object_voxels: int, objects: int) -> int:
    """About how many bytes :func:`label_chunked`'s store takes for ``objects`` of ``object_voxels`` in all."""
    return int(STORE_BYTES_PER_VOXEL * object_voxels + STORE_BYTES_PER_OBJECT * objects)


def _where(folder: Path) -> str:
    """How to name ``folder`` in advice: the temporary folder (moved by TMPDIR) or the folder itself."""
    from ..io.disk_space import in_temporary_folder, temporary_folder_advice

    if in_temporary_folder(folder):
        return temporary_folder_advice()
    return f"{folder}: free space there"


def check_store_space(store: Path, object_voxels: int, objects: int, *, sure: bool = False,
                      what: str = "the label store of the chunked labelling") -> None:
    """Refuse where a label store (:func:`store_bytes`) will not fit on the disk of its folder: ``sure`` for
    what is counted so far (a part of the volume), else for the whole volume's estimate."""
    from ..io.disk_space import free_bytes, human_size

    folder = store.parent
    free = free_bytes(folder if folder.exists() else Path("."))
    need = store_bytes(object_voxels, objects)
    if free is None or need <= free:
        return
    so_far = "the objects found so far take" if sure else "the volume's"
    raise TomosegError(f"{folder}: too little free space for {what} "
                       f"({so_far} {objects} objects of {object_voxels} voxels need about {human_size(need)}, "
                       f"{human_size(free)} are free); use {_where(folder)}")


def open_label_store(store):
    """The label volume :func:`label_chunked` wrote to ``store`` (uint32 Zarr), for reading on worker threads."""
    import zarr

    from ..io.zarr_chunks import parallel_reader

    return parallel_reader(zarr.open_array(str(store), path="0", mode="r"))


def label_chunked(mask_volume, output_path, *, chunks=(128, 128, 128), connectivity: int = 26,
                  threshold: int | None = None, progress=None, threads: int | None = None, visit=None) -> int:
    """Label a mask volume chunk by chunk into a uint32 Zarr volume at ``output_path``; returns the count.

    Two reads of the mask, each chunk on its own thread: the first labels every chunk on its own and keeps,
    per local label, where it first appears and which labelled voxels lie on the chunk's faces (sparse);
    those faces give the labels to merge across chunk boundaries (a graph's connected components), numbered
    in raster order of first appearance, as scipy numbers them. The second labels each chunk again (the same
    local labels: labelling is deterministic) and writes the final labels. Nothing but the output is written.

    Parameters
    ----------
    mask_volume : Volume or array-like
        Nonzero = object; with ``threshold``, object = value > threshold (a uint8 probability map).
    output_path : path
        A ``.zarr`` volume to create (uint32 labels).
    threads : int, optional
        Chunks labelled at once (default: :func:`label_threads`).
    progress : optional
        Anything with ``update(n)``: given each chunk's voxels in each of the two passes (twice the volume's
        voxels in all).
    visit : callable, optional
        Called as ``visit(region, labels, block)`` with the final labels (uint32) of each chunk holding any and
        the mask (or probability) block they came from, so that a pass over the labels (bounding boxes,
        measurements) needs no read of its own. It runs on the worker threads: it must be thread-safe.
    """
    from ..io.blocks import read_ahead
    from ..io.zarr_chunks import parallel_writer
    from ..io.zarr_store import create_zarr, store_chunks, write_chunk

    shape = tuple(int(s) for s in mask_volume.shape)
    chunks = tuple(min(c, s) for c, s in zip(chunks, shape))
    st = structure(connectivity)
    regions = list(chunk_regions(shape, chunks))
    threads = label_threads() if threads is None else int(threads)

    def local(region) -> tuple[np.ndarray, int, np.ndarray]:  # on a worker thread: labels, count, the block read
        block = np.asarray(mask_volume[region])
        lab, n = ndimage.label(block > threshold if threshold is not None else block != 0, structure=st)
        return lab, n, block

    def first_seen(region):  # on a worker thread: the labels, where each local label first appears, voxels
        lab, n, _ = local(region)
        if not n:
            return lab, n, None, 0
        where = np.flatnonzero(lab)  # object voxels only: a sort of the whole chunk costs 10x more
        _, first = np.unique(lab.ravel()[where], return_index=True)  # labels 1..n, each present
        coords = np.unravel_index(where[first], lab.shape)
        return lab, n, np.ravel_multi_index(tuple(c + r.start for c, r in zip(coords, region)), shape), where.size

    # pass 1: local labels, their first appearance and the chunk faces; offsets in raster order of chunks
    offsets, firsts, faces, total = [], [np.zeros(1, np.int64)], _Faces(shape, chunks, connectivity), 0
    store, voxels = Path(output_path), 0
    for k, (region, (lab, n, first, found)) in enumerate(read_ahead(regions, first_seen, threads=threads)):
        offsets.append(total)
        faces.add(lab if n else None, region, total)
        if n:
            firsts.append(first)
        total += n
        voxels += found
        if k % 64 == 63:  # the objects so far need more room than there is: stop now, not after the pass
            check_store_space(store, voxels, total, sure=True)
        if progress is not None:
            progress.update(int(np.prod([r.stop - r.start for r in region])))
    check_store_space(store, voxels, total)  # before anything is written
    first = np.concatenate(firsts)  # first[k]: where global local label k first appears (k = 0: background)
    # merge labels that touch across chunk boundaries
    pairs = faces.pairs()
    graph = sparse.coo_matrix((np.ones(len(pairs), np.int8), (pairs[:, 0], pairs[:, 1])), shape=(total + 1,) * 2)
    _, component = connected_components(graph, directed=False)
    # number components in raster order of first appearance (as scipy does)
    order = np.full(component.max() + 1, np.iinfo(np.int64).max, np.int64)
    np.minimum.at(order, component[1:], first[1:])
    comp_ids = np.nonzero(order != np.iinfo(np.int64).max)[0]
    final = np.zeros(component.max() + 1, np.uint32)
    final[comp_ids[np.argsort(order[comp_ids], kind="stable")]] = np.arange(1, len(comp_ids) + 1, dtype=np.uint32)
    lookup = final[component]
    lookup[0] = 0
    # pass 2: the final labels, each chunk labelled again on a worker thread and written there
    out = parallel_writer(store_chunks(create_zarr(Path(output_path), shape, np.uint32, chunks=chunks).array))
    def relabel(item) -> None:
        region, offset = item
        lab, n, block = local(region)
        if progress is not None:
            progress.update(int(lab.size))
        if not n:
            return
        final = lookup[offset:offset + n + 1].copy()  # the chunk's local labels 0..n -> final labels
        final[0] = 0
        lab = final[lab]
        write_chunk(out, region, lab)
        if visit is not None:
            visit(region, lab, block)

    try:
        for _ in read_ahead(list(zip(regions, offsets)), relabel, threads=threads):
            pass
    except OSError as exc:
        import errno

        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise TomosegError(f"{store.parent}: the disk filled while the chunked labelling wrote its label store "
                           f"({exc.strerror}); use {_where(store.parent)}") from None
    return int(len(comp_ids))
