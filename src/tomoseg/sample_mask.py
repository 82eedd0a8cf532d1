"""Where the sample is: a cheap mask that lets ``segment`` skip tiles of empty space. No PyTorch here.

Micropillar scans are about half environment (air, the reconstruction's outside). ``segment`` computes only the
tiles whose core touches the sample mask; the rest of the output keeps probability 0. Inside the mask the result
is unchanged (every computed core is still read with its full halo of real context), so tiled output still
equals a whole-volume pass there.

Three sources of a mask:

- :func:`auto_sample_mask` (the default): a low-resolution pass. One slice per block of ``factor`` slices,
  averaged in ``factor`` x ``factor`` blocks, smoothed within the slice, split by Otsu's threshold; the union
  over z of these slices with its holes filled (a prism along z), grown by ``margin`` voxels (default: the
  halo). Where the statistics are sampled (above 2^31 voxels), the slices come from the layers that pass reads
  (:func:`tomoseg.io.blocks.sample_slabs`) and from the first and the last layer (:func:`end_layers`, read
  for the mask alone: the sampled layers leave the ends out, and a pillar's base or foot, widest there, was
  skipped). The prism never skips along z: dark end slices (cone-beam CT of concrete), or pores that reach the
  surface in some slices, cannot remove sample; a part wider than the rest that lies wholly between two
  sampled layers can be missed (``--stats full`` reads every layer). Where the split is not clear (Otsu's
  between-class share of the variance below ``min_separation``), the sample fills nearly the whole field of
  view, or the brighter class runs along the field's edge (a sample cut by the field, or a sample darker than
  a holder or resin beside it: the mask assumes the surroundings are the darker class), the mask is "all
  sample".
- :func:`file_sample_mask`: a user's mask volume of the same shape (nonzero = sample), grown by ``margin``
  voxels as the automatic one (``segment`` gives the halo): the objects at the sample's surface, which reach
  past a mask drawn at that surface, are computed whole.
- :func:`roi_sample_mask`: a box ``z0:z1,y0:y1,x0:x1`` (Python slices; empty ends mean the volume's ends).

A :class:`SampleMask` is a boolean volume at ``1/factor`` resolution (a block is True where it may hold sample)
plus the bounding box of the sample at full resolution and a record for the provenance.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from .errors import TomosegError


@dataclass(frozen=True)
class SampleMask:
    """A block mask at ``1/factor`` resolution and the sample's bounding box (full resolution)."""

    low: np.ndarray
    factor: int
    shape: tuple
    box: tuple | None               # slices; None: the mask is empty
    record: dict = field(compare=False)

    @property
    def everything(self) -> bool:
        return bool(self.low.all()) and self.box == tuple(slice(0, s) for s in self.shape)

    def touches(self, region) -> bool:
        """Whether the box ``region`` (slices, full resolution) may hold sample."""
        if self.box is None:
            return False
        if any(r.stop <= b.start or r.start >= b.stop for r, b in zip(region, self.box)):
            return False
        f = self.factor
        return bool(self.low[tuple(slice(r.start // f, -(-r.stop // f)) for r in region)].any())

    def fraction(self) -> float:
        return float(self.low.mean())

    def save(self, path) -> None:
        np.savez_compressed(path, low=self.low, factor=self.factor, shape=np.array(self.shape),
                            box=np.array([[b.start, b.stop] for b in self.box]) if self.box else np.zeros((0, 2)))

    @classmethod
    def load(cls, path, record: dict) -> "SampleMask":
        with np.load(path) as z:
            box = tuple(slice(int(a), int(b)) for a, b in z["box"]) or None
            return cls(z["low"], int(z["factor"]), tuple(int(s) for s in z["shape"]), box, record)


def _low_shape(shape, factor: int) -> tuple:
    return tuple(-(-int(s) // factor) for s in shape)


def _make(low: np.ndarray, factor: int, shape, record: dict, box=None) -> SampleMask:
    if box is None:
        if not low.any():
            box = None
        else:
            box = []
            for axis, s in enumerate(shape):
                hit = np.flatnonzero(low.any(axis=tuple(a for a in range(3) if a != axis)))
                box.append(slice(int(hit[0]) * factor, min(int(s), (int(hit[-1]) + 1) * factor)))
            box = tuple(box)
    record = {**record, "factor": factor, "sample_fraction": round(float(low.mean()), 4),
              "box": [[b.start, b.stop] for b in box] if box else None,
              "mask_sha256": hashlib.sha256(np.packbits(low).tobytes()).hexdigest()[:16]}
    return SampleMask(low, factor, tuple(int(s) for s in shape), box, record)


def all_sample(shape, reason: str = "off", factor: int = 8) -> SampleMask:
    """The mask that skips nothing."""
    return _make(np.ones(_low_shape(shape, factor), bool), factor, shape, {"method": reason})


def otsu(values: np.ndarray, bins: int = 256, threads: int = 1) -> tuple[float, float]:
    """Otsu's threshold of ``values`` and its separation: the between-class share of the variance (0–1).

    With ``threads`` > 1 the histogram is counted in parts on that many threads and summed: the same counts
    (a value's bin depends on the value and the range only), so the same threshold."""
    values = np.asarray(values)
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    parts = [p for p in np.array_split(values.reshape(-1), max(1, int(threads))) if p.size]
    ranges = _map(lambda p: (float(p.min()), float(p.max())), parts)
    lo, hi = min(r[0] for r in ranges), max(r[1] for r in ranges)
    if hi <= lo:
        return lo, 0.0
    # counted in float64: float32 bin edges collapse where the range is narrow against its offset (G7: 85 levels
    # within 1000.000-1000.005 made np.histogram refuse)
    counted = _map(lambda p: np.histogram(p.astype(np.float64, copy=False), bins=bins, range=(lo, hi)), parts)
    hist, edges = sum(h for h, _ in counted), counted[0][1]
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    s0 = np.cumsum(hist * centres)
    m0 = s0 / np.maximum(w0, 1)
    m1 = (s0[-1] - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (m0 - m1) ** 2 / w0[-1] ** 2
    i = int(np.argmax(between[:-1]))
    return float(edges[i + 1]), float(between[i] / _variance(parts))


def _variance(parts) -> float:
    """The variance of the concatenated ``parts`` (float64), from each part's moments."""
    from .inference.normalization import add_moments

    moments = (0, 0.0, 0.0)
    for part in _map(lambda p: (p.size, float(p.mean(dtype=np.float64)), float(p.var(dtype=np.float64)) * p.size),
                     parts):
        moments = add_moments(moments, part)
    count, _, m2 = moments
    return m2 / count


def _map(fn, items) -> list:
    """``fn`` over ``items``, on one thread per item where there are several (NumPy and SciPy's filters let other
    threads run)."""
    items = list(items)
    if len(items) < 2:
        return [fn(i) for i in items]
    from .thread_pool import ThreadPool

    with ThreadPool(len(items)) as pool:
        return list(pool.map(fn, items))


def mask_threads() -> int:
    """Threads for the mask's arithmetic: those of the statistics pass it follows."""
    from .inference.normalization import stats_threads

    return stats_threads()


class LowResolution:
    """The low-resolution copy :func:`auto_sample_mask` works on, collected from blocks of the volume as they
    are read: one slice per block of ``factor`` slices (its middle), averaged in ``factor`` x ``factor`` blocks.

    Call it with ``(block, data)`` for blocks that cover the volume (y and x edges on multiples of ``factor``, as
    :func:`tomoseg.io.blocks.block_grid` cuts them with ``multiple=factor``); ``segment`` feeds it the blocks of
    its statistics pass, so the mask costs no read of its own. ``complete`` says whether every chosen slice
    was seen.

    With ``slabs`` (z ranges: the layers a sampled statistics pass reads, :func:`tomoseg.io.blocks.sample_slabs`,
    and the end layers, :func:`end_layers`, which :meth:`read` reads for the mask alone) the slices are chosen
    within those ranges only, every ``factor``-th (the middle one of a thinner range).
    """

    def __init__(self, shape, factor: int, slabs=None):
        self.shape = tuple(int(s) for s in shape)
        self.factor = int(factor)
        self.slabs = None if slabs is None else sorted(slabs, key=lambda s: s.start)
        slabs = self.slabs
        z, y, x = self.shape
        if slabs is None:
            self.picks = [min(z - 1, z0 + factor // 2) for z0 in range(0, z, factor)]
        else:  # every factor-th slice of each slab, or its middle one where it is thinner
            self.picks = [p for s in slabs for p in (range(s.start + factor // 2, s.stop, factor)
                                                     if s.stop - s.start > factor // 2
                                                     else [(s.start + s.stop - 1) // 2])]
        self.low = np.zeros((len(self.picks), -(-y // factor), -(-x // factor)), np.float32)
        self._seen = np.zeros(self.low.shape, bool)

    def __call__(self, block, data) -> None:
        zs, ys, xs = block
        f, (_, y, x) = self.factor, self.shape
        if any(b.start % f or (b.stop % f and b.stop != n) for b, n in ((ys, y), (xs, x))):
            raise ValueError(f"block {block} does not have its y and x edges on multiples of {f}")
        rows, cols = slice(ys.start // f, -(-ys.stop // f)), slice(xs.start // f, -(-xs.stop // f))
        for i, p in enumerate(self.picks):
            if zs.start <= p < zs.stop:
                sl = data[p - zs.start]
                pad = ((0, (rows.stop - rows.start) * f - sl.shape[0]),
                       (0, (cols.stop - cols.start) * f - sl.shape[1]))
                if any(n for _, n in pad):
                    sl = np.pad(sl, pad, mode="edge")
                self.low[i, rows, cols] = _block_mean(sl, f)
                self._seen[i, rows, cols] = True

    @property
    def complete(self) -> bool:
        return bool(self._seen.all())

    def read(self, volume, slabs) -> None:
        """Read the z ranges ``slabs`` of ``volume`` (whole storage chunks) into the copy: the layers its
        slices come from that no other pass reads (:func:`end_layers`)."""
        from .io.blocks import read_blocks, slab_blocks, storage_chunks

        for block, data in read_blocks(volume, slab_blocks(self.shape, slabs, storage_chunks(volume),
                                                           multiple=self.factor)):
            self(block, data)


def end_layers(shape, chunks, slabs) -> list[slice]:
    """The first and the last layer of storage chunks along z (one slice where the data is not chunked in z)
    that the sampled layers ``slabs`` leave out: :func:`auto_sample_mask` needs the ends of the sample, where a
    pillar's base or foot (or the substrate) is wider than the rest, and the statistics leave them out (their
    dark ends biased the mean, review G5).

    Examples
    --------
    >>> end_layers((1000, 64, 64), (64, 32, 32), [slice(128, 192), slice(512, 576), slice(832, 896)])
    [slice(0, 64, None), slice(960, 1000, None)]
    >>> end_layers((100, 64, 64), None, [slice(0, 1), slice(50, 51)])
    [slice(99, 100, None)]
    """
    z, depth = int(shape[0]), int(chunks[0]) if chunks else 1
    ends = [slice(0, min(depth, z)), slice((z - 1) // depth * depth, z)]
    ends = ends[:1] if ends[0] == ends[1] else ends
    return [e for e in ends if not any(s.start <= e.start < s.stop for s in slabs)]


def _block_mean(image: np.ndarray, f: int) -> np.ndarray:
    """Means of the ``f`` x ``f`` blocks of a 2D image whose sides are multiples of ``f`` (float32). Integer
    images are summed exactly in integers, rows first (several times faster than converting to float)."""
    ly, lx = image.shape[0] // f, image.shape[1] // f
    if image.dtype.kind in "ui" and image.dtype.itemsize <= 2:
        acc = np.uint16 if image.dtype == np.uint8 and f <= 256 else np.int64
        rows = image.reshape(ly, f, lx * f).sum(axis=1, dtype=acc)
        sums = rows.reshape(ly, lx, f).sum(axis=2, dtype=np.int64)
    else:
        sums = image.reshape(ly, f, lx, f).sum(axis=(1, 3), dtype=np.float64)
    return (sums / (f * f)).astype(np.float32)


def mask_factor(shape) -> int:
    """Resolution of the automatic mask: blocks of 4 voxels per axis, more (a power of two, so blocks stay
    aligned with storage chunks) where the low-resolution copy would exceed 2^24 voxels (below 100 MB)."""
    need = (float(np.prod(shape, dtype=np.float64)) / 2**24) ** (1 / 3)
    return max(4, 2 ** math.ceil(math.log2(max(need, 1.0))))


def downsample(volume, factor: int, chunks=None) -> np.ndarray:
    """:class:`LowResolution` of ``volume``, reading it in blocks of whole storage chunks (whole slices along x),
    or with ``chunks`` (z, y, x) in blocks of that size at most (rounded to multiples of ``factor``): the memory
    of an analysis that reads a volume chunk by chunk."""
    from .io.blocks import block_grid, read_blocks, storage_chunks

    low = LowResolution(volume.shape, factor)
    if chunks is None:
        grid = block_grid(volume.shape, storage_chunks(volume), multiple=factor)
    else:
        steps = [max(factor, int(c) // factor * factor) for c in chunks]
        grid = [(slice(z, min(z + steps[0], volume.shape[0])), slice(y, min(y + steps[1], volume.shape[1])),
                 slice(x, min(x + steps[2], volume.shape[2])))
                for z in range(0, volume.shape[0], steps[0]) for y in range(0, volume.shape[1], steps[1])
                for x in range(0, volume.shape[2], steps[2])]
    blocks = [b for b in grid if any(b[0].start <= p < b[0].stop for p in low.picks)]
    for block, data in read_blocks(volume, blocks):
        low(block, data)
    return low.low


def auto_sample_mask(volume, *, margin: int = 48, factor: int | None = None, min_separation: float = 0.8,
                     max_fraction: float = 0.97, max_edge_share: float = 0.1,
                     low: LowResolution | None = None) -> SampleMask:
    """The sample of a volume whose surroundings are darker than the sample (see the module's notes).

    Parameters
    ----------
    volume : array-like (z, y, x)
        Anything sliceable along z.
    margin : int
        Voxels added around the sample (the network's halo by default).
    factor : int, optional
        Resolution of the mask: blocks of ``factor`` voxels per axis; by default :func:`mask_factor`.
    min_separation : float
        The Otsu split must explain this share of the low-resolution variance, else "all sample".
    max_fraction : float
        A mask covering more than this share of the slice area is "all sample".
    max_edge_share : float
        Where the brighter class covers more than this share of the field's edge (in the union over z), the
        mask is "all sample": the sample is cut by the field, or it is darker than what runs along the edge
        (a holder, resin), and a mask of the brighter class would cut sample away.
    low : LowResolution, optional
        The low-resolution copy, collected already (complete); else ``volume`` is read here.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.full((16, 64, 64), 20, np.uint8); v[:, 16:48, 16:48] = 200
    >>> m = auto_sample_mask(v, margin=4)
    >>> m.touches((slice(0, 16), slice(0, 8), slice(0, 8))), m.touches((slice(0, 16), slice(20, 30), slice(20, 30)))
    (False, True)
    """
    shape = tuple(int(s) for s in volume.shape)
    if low is not None:
        if not low.complete or low.shape != shape:
            raise ValueError("the low-resolution copy is incomplete or of another volume")
        factor, layers, low = low.factor, low.slabs, low.low
    else:
        layers = None
        factor = factor or mask_factor(shape)
        low = downsample(volume, factor)
    # smoothed within slices (they lie ``factor`` apart), so groups of slices on their own threads: the same result
    threads = mask_threads()
    groups = [g for g in np.array_split(np.arange(low.shape[0]), threads) if g.size]
    smooth = np.concatenate(_map(lambda g: ndimage.gaussian_filter(low[g[0]:g[-1] + 1], (0, 1.0, 1.0)), groups))
    threshold, separation = otsu(smooth, threads=threads)
    base = {"method": "auto", "otsu_threshold": round(threshold, 3), "separation": round(separation, 3),
            "margin": int(margin), "slices": int(low.shape[0]),
            # the z ranges its slices came from (every ``factor``-th slice of each): None, the whole volume
            "layers": None if layers is None else [[s.start, s.stop] for s in layers]}
    if separation < min_separation:
        return _make(np.ones(_low_shape(shape, factor), bool), factor, shape,
                     {**base, "fallback": f"no clear background (separation {separation:.2f} < {min_separation})"})
    # holes filled once, in the union over z: filling each slice first would add nothing (a hole of one slice
    # is enclosed by that slice's sample, which the union holds)
    bright = (smooth > threshold).any(axis=0)
    # the darker class must be the outside: where the brighter one runs along the field's edge, it may be a
    # holder, resin or a denser part beside a darker sample, which a mask of the bright class would cut away
    edge = np.concatenate([bright[0], bright[-1], bright[1:-1, 0], bright[1:-1, -1]])
    if edge.mean() > max_edge_share:
        return _make(np.ones(_low_shape(shape, factor), bool), factor, shape,
                     {**base, "fallback": f"the brighter class runs along {edge.mean():.0%} of the field's edge "
                                          "(a sample cut by the field, or one darker than its surroundings)"})
    footprint = ndimage.binary_fill_holes(bright)
    if not footprint.any():
        return _make(np.ones(_low_shape(shape, factor), bool), factor, shape,
                     {**base, "fallback": "no sample found"})
    grow = math.ceil(margin / factor) + 1  # + 1 block: a block half on the sample may average below the threshold
    footprint = ndimage.distance_transform_edt(~footprint) <= grow
    if footprint.mean() > max_fraction:
        return _make(np.ones(_low_shape(shape, factor), bool), factor, shape,
                     {**base, "fallback": f"the sample fills {footprint.mean():.0%} of the field of view"})
    mask = np.broadcast_to(footprint, _low_shape(shape, factor)).copy()  # a prism: every block along z
    return _make(mask, factor, shape, {**base, "fallback": None})


def parse_roi(text: str, shape) -> tuple[slice, slice, slice]:
    """``"z0:z1,y0:y1,x0:x1"`` (empty ends: the volume's ends) to slices, checked against ``shape``."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) != 3 or any(p.count(":") != 1 for p in parts):
        raise TomosegError(f"--roi {text!r}: give three ranges z0:z1,y0:y1,x0:x1 (e.g. 0:100,50:450,50:450)")
    box = []
    for p, s, axis in zip(parts, shape, "zyx"):
        a, b = p.split(":")
        try:
            lo, hi = int(a) if a else 0, int(b) if b else int(s)
        except ValueError:
            raise TomosegError(f"--roi {text!r}: {p!r} is not a range of integers") from None
        if 0 <= lo < s < hi:  # reaches past the end: say so, and what fits
            raise TomosegError(f"--roi {text!r}: {axis} range {lo}:{hi} reaches past the volume's end (0:{s}); use "
                               f"{lo}:{s} or {lo}: (to the end)")
        if not 0 <= lo < hi <= s:
            raise TomosegError(f"--roi {text!r}: {axis} range {lo}:{hi} is empty or outside the volume (0:{s})")
        box.append(slice(lo, hi))
    return tuple(box)


def roi_sample_mask(shape, roi, factor: int = 8) -> SampleMask:
    """The box ``roi`` (a string as :func:`parse_roi` reads, or three slices) as a sample mask."""
    box = parse_roi(roi, shape) if isinstance(roi, str) else tuple(roi)
    low = np.zeros(_low_shape(shape, factor), bool)
    low[tuple(slice(b.start // factor, -(-b.stop // factor)) for b in box)] = True
    return _make(low, factor, shape, {"method": "roi", "roi": [[b.start, b.stop] for b in box]}, box=box)


def inside(data: np.ndarray, where) -> np.ndarray:
    """A block of a user's sample mask as booleans (nonzero = sample). NaN is refused: some tools write NaN
    outside the sample, which ``!= 0`` would take for sample."""
    data = np.asarray(data)
    if data.dtype.kind == "f" and np.isnan(data).any():
        raise TomosegError(f"{where}: the sample mask holds NaN; tomoseg reads nonzero as sample, so NaN would "
                           "count as sample. Replace NaN by 0 where there is no sample (numpy: "
                           "numpy.nan_to_num(mask)) and save the mask again")
    return data != 0


def binned_hint(mask_shape, shape) -> str:
    """Where ``mask_shape`` is ``shape`` binned by an integer (a mask drawn on a binned copy of the scan): what to
    do, for the error that refuses it; else ""

    Examples
    --------
    >>> print(binned_hint((16, 64, 65), (64, 256, 258)))  # doctest: +NORMALIZE_WHITESPACE
    it looks like the input binned by 4: give the mask at the input's shape, e.g. in NumPy
    mask.repeat(4, 0).repeat(4, 1).repeat(4, 2)[:64, :256, :258]
    >>> binned_hint((8, 16, 17), (8, 16, 16))
    ''
    """
    mask_shape, shape = tuple(int(s) for s in mask_shape), tuple(int(s) for s in shape)
    k = shape[0] // max(mask_shape[0], 1)
    if k < 2 or any(-(-s // k) != m for s, m in zip(shape, mask_shape)):
        return ""
    cut = ", ".join(f":{s}" for s in shape)
    return (f"it looks like the input binned by {k}: give the mask at the input's shape, e.g. in NumPy "
            f"mask.repeat({k}, 0).repeat({k}, 1).repeat({k}, 2)[{cut}]")


SOFT_SHARE = 0.05  # warn where more than this share of a mask's nonzero voxels are below 0.5 (graded levels)


class SoftValues:
    """What a float mask holds, counted block by block: its voxels between 0 and 0.5 (exclusive), the least and
    the largest of its nonzero values, its nonzero voxels and all voxels seen (for :meth:`warning`)."""

    def __init__(self):
        self.soft, self.nonzero, self.total, self.low, self.high = 0, 0, 0, np.inf, -np.inf

    def __call__(self, data) -> None:
        data = np.asarray(data)
        self.total += int(data.size)
        self.nonzero += int(np.count_nonzero(data))
        if data.dtype.kind == "f":
            self.soft += int(np.count_nonzero((data > 0) & (data < 0.5)))
            values = data[(data != 0) & np.isfinite(data)]
            if values.size:
                self.low, self.high = min(self.low, float(values.min())), max(self.high, float(values.max()))

    def warning(self, where) -> str | None:
        """The warning for a mask of graded values many of whose nonzero voxels lie below 0.5: a probability or a
        smoothed mask, every nonzero voxel of which tomoseg takes for sample (review SM7: a mask of 1 inside and
        0.01 outside made the whole volume the sample, and analyze's fractions 2.6 times too low, without a
        word). None for a mask of one nonzero level (1, 255, 0.5) or a large one interpolated (its edges alone
        graded)."""
        if self.soft <= SOFT_SHARE * self.nonzero or self.low == self.high:  # one nonzero level: a binary mask
            return None
        return (f"{where}: {self.soft / self.nonzero:.0%} of its nonzero voxels lie below 0.5 (its values from "
                f"{self.low:.3g} to {self.high:.3g}: a probability, or a smoothed mask?); tomoseg takes every "
                f"nonzero voxel for sample, here {self.nonzero / max(self.total, 1):.0%} of the voxels. If that is "
                "not the sample, threshold it where the sample begins (numpy: mask > 0.5 for a probability) and "
                "save it again")


def file_sample_mask(path, shape, factor: int | None = None, margin: int = 0) -> SampleMask:
    """A user's mask volume (nonzero = sample) of the volume's shape, read in blocks of whole storage chunks, at
    ``1/factor`` resolution (default :func:`mask_factor`: 4 up to 2^30 voxels, coarser above, so the block mask
    stays under 2^24 voxels) and grown by ``margin`` voxels in z, y and x (every voxel within ``margin`` of the
    mask is in a block of it): objects at the sample's surface reach past a mask drawn there, and without the
    margin the tiles beyond a mask's edge on a tile edge were skipped, cutting them (review SM1)."""
    from .io import open_volume
    from .io.blocks import block_grid, read_blocks, storage_chunks

    factor = int(factor or mask_factor(shape))
    mask = open_volume(path)
    try:
        if tuple(mask.shape) != tuple(shape):
            raise TomosegError(f"--sample-mask {path}: shape {tuple(mask.shape)} differs from the input's "
                               f"{tuple(shape)}"
                               + "; " + (binned_hint(mask.shape, shape) or "give a mask of the same shape"))
        low = np.zeros(_low_shape(shape, factor), bool)
        ly, lx = low.shape[1:]
        soft = SoftValues()
        for (zs, ys, _), data in read_blocks(mask, block_grid(shape, storage_chunks(mask), multiple=factor)):
            nz, ny = -(-(zs.stop - zs.start) // factor), -(-(ys.stop - ys.start) // factor)
            soft(data)
            data = inside(data, f"--sample-mask {path}")  # NaN refused (SoftValues counts it as nonzero)
            data = np.pad(data, ((0, nz * factor - data.shape[0]), (0, ny * factor - data.shape[1]),
                                 (0, lx * factor - shape[2])))
            z0, y0 = zs.start // factor, ys.start // factor
            low[z0:z0 + nz, y0:y0 + ny] |= data.reshape(nz, factor, ny, factor, lx, factor).any(axis=(1, 3, 5))
    finally:
        close = getattr(mask, "close", None)
        if close is not None:
            close()
    if not low.any():  # as analyze --sample-mask: an all-zero map with exit 0 would look like a result
        raise TomosegError(f"--sample-mask {path}: the sample mask is empty (no nonzero voxel); give the mask of "
                           "the sample")
    message = soft.warning(f"--sample-mask {path}")
    if message:
        from .errors import warn

        warn(message)
    grow = -(-int(margin) // factor)  # blocks: a voxel within ``margin`` of the mask lies within these of its block
    if grow:  # a cube, separable: fast on a large block mask
        low = ndimage.maximum_filter(low.view(np.uint8), size=2 * grow + 1, mode="constant").view(bool)
    return _make(low, factor, shape, {"method": "file", "file": str(path), "margin": int(margin)})


class PrismMask:
    """A sample footprint (y, x) repeated along every z slice, read block by block like a mask volume (True
    inside the sample): :func:`analysis_sample_mask`'s."""

    def __init__(self, shape, footprint: np.ndarray, record: dict):
        self.shape, self.footprint, self.record = tuple(int(s) for s in shape), footprint, record
        self.dtype = np.dtype(bool)

    def __getitem__(self, key):
        key = key if isinstance(key, tuple) else (key,)
        zs, ys, xs = key + (slice(None),) * (3 - len(key))
        n = len(range(self.shape[0])[zs])
        return np.broadcast_to(self.footprint[ys, xs], (n,) + self.footprint[ys, xs].shape).copy()

    def fraction(self) -> float:
        return float(self.footprint.mean())


def analysis_sample_mask(image, *, factor: int | None = None) -> PrismMask:
    """The sample of a gray-value image as ``analyze --sample-mask auto`` measures in: :func:`auto_sample_mask`'s
    split (the Otsu threshold of the low-resolution copy, a prism along z with its holes filled), applied at
    full resolution in y and x (the same slices, smoothed by a Gaussian of 1 voxel) and without a margin, so that its voxels are the sample's volume (segment's mask,
    grown by the network's halo in blocks, is not). Where :func:`auto_sample_mask` finds no clear sample (its
    fallbacks), a :class:`TomosegError` says why.

    Examples
    --------
    >>> v = np.full((8, 64, 64), 20, np.uint8); v[:, 16:48, 16:48] = 200
    >>> m = analysis_sample_mask(v)
    >>> int(m.footprint.sum()), m[0:2, 0:20, 0:20].shape
    (1024, (2, 20, 20))
    """
    shape = tuple(int(s) for s in image.shape)
    coarse = auto_sample_mask(image, margin=0, factor=factor)
    why = coarse.record.get("fallback")
    if why or coarse.record.get("method") != "auto":
        raise TomosegError(f"--sample-mask auto: no sample found in the gray image ({why}); give a mask file of the "
                           "sample (nonzero inside), or leave --sample-mask out to measure over the whole volume")
    f, threshold = coarse.factor, float(coarse.record["otsu_threshold"])
    bright = np.zeros(shape[1:], bool)
    for z in LowResolution(shape, f).picks:  # the slices the low-resolution copy used, at full resolution
        bright |= ndimage.gaussian_filter(np.asarray(image[z], np.float32), 1.0, mode="nearest") > threshold
    footprint = ndimage.binary_fill_holes(bright)
    record = {"method": "auto", "otsu_threshold": round(threshold, 3), "factor": f,
              "separation": coarse.record.get("separation"), "sample_fraction": round(float(footprint.mean()), 4)}
    return PrismMask(shape, footprint, record)
