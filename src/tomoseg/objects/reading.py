"""How a volume given for object analysis is read: a 0–255 probability map, a mask, or a label image.

The rule (``read_as="auto"``, docs/analysis.md), on the values of the whole volume:

- bool, or only the values 0 and 1: a **mask**, object where the value is not 0;
- a uint8 volume with any value above 1: a **probability map** on the 0–255 scale, object where the value is
  above the threshold (127); ``tomoseg segment``'s maps are known from their provenance record;
- another type (uint16, int32, float32 ...) of whole values from 0 to 255 with any value above 1: a
  probability map too (a map converted to 16 or 32 bits in Fiji), read as the uint8 map it was;
- whole values whose nonzero regions are flat plateaus of several values (a shape-based sample,
  :func:`looks_like_object_ids`): object IDs. Stored as uint8 they are refused (the threshold would drop the
  IDs up to 127); wider, they are a **label image**, read as a mask (nonzero = object);
- fractional values from 0 to 1 (a float map in [0, 1]: ``predict``'s, ilastik's): a **probability map** in
  [0, 1], read as the 0–255 map ``rint(p * 255)``, so that the threshold means the same (127: p > 0.5);
- refused: other fractional values, negative values, and values above 255 that are not object IDs (a
  gray-value image, a map on another scale).

``read_as="probability"`` or ``"mask"`` forces a reading (a forced probability map must still hold 0–255).

A volume in memory is judged on all of its values. A volume on disk is judged first on a spread sample of
whole chunks (:func:`read_as`), then on every block the analysis reads (:meth:`Reading.view`): a block whose
values the first judgement did not allow (a value above 1 in a map the sample took for a mask) raises
:class:`ReadingChanged`, and the caller reads again under the revised reading (:meth:`Reading.revised`). A
volume the sample got right is read once; one it got wrong at most twice more (the largest value only
grows: mask, then probability map, then label image or refusal). The decision is the same for every file
format and for the same array in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from ..errors import TomosegError
from ..io.volume import path_of

READ_AS = ("auto", "probability", "mask")
ID_TILE = (16, 64, 64)   # the blocks of the object-ID sample: evenly spread cells of this grid
ID_SLABS, ID_TILES = 4, 4  # cells along z, and along each of y and x within a slab


def check_threshold(value, name: str = "threshold") -> int:
    """A threshold on the 0-255 scale (object where value > threshold) checked: an integer from 0 to 254, else a
    :class:`TomosegError` naming ``name`` (``threshold``, or the CLI's ``--threshold``); a probability in (0, 1)
    is told its 0-255 equivalent."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and 0 <= value <= 254:
        return int(value)
    hint = ""
    if isinstance(value, (float, np.floating)) and 0 < value < 1:  # p > value  <=>  p8 > floor(value * 255)
        hint = f"; {value:g} looks like a probability: on the 0-255 scale that is {int(value * 255)}"
    raise TomosegError(f"{name} {value}: give an integer from 0 to 254 (probability x 255; default 127){hint}")


def as_mask(values, name: str) -> np.ndarray:
    """``values`` as a boolean mask (nonzero = object) for the functions that take one (:func:`label_objects`,
    :func:`~tomoseg.metrics.confusion_matrix`): bool, or values 0 and 1 of any type; integers of 16 bits or more
    are label images (nonzero = object). A probability map is refused, not read as every nonzero voxel: a uint8
    volume with values above 1 (the 0-255 map) and floats other than 0 and 1 (the map in [0, 1])."""
    a = np.asarray(values)
    if a.dtype == np.bool_:
        return a
    if a.dtype.kind not in "uif":
        raise TomosegError(f"{name}: holds {a.dtype} values, not a mask (bool, or 0 and 1)")
    if not a.size:
        return a.astype(bool)
    low, high = a.min(), a.max()
    if a.dtype.kind == "f" and not bool(((a == 0) | (a == 1)).all()) or a.dtype == np.uint8 and high > 1:
        raise TomosegError(f"{name}: holds values from {low:g} to {high:g} ({a.dtype}), not a mask (0 and 1): a "
                           "probability map? Pass p > 0.5 for predict's map in [0, 1], p8 > 127 for segment's "
                           "0-255 map (the threshold segment and analyze use)")
    if low < 0:
        raise TomosegError(f"{name}: holds negative values (down to {low:g}, {a.dtype}), not a mask (0 and 1) or "
                           "a label image (0 = background)")
    return a != 0


class ReadingChanged(Exception):
    """A block held values the reading did not allow (:meth:`Reading.view`): read again under
    :meth:`Reading.revised`."""

    def __init__(self, low: float, high: float, fractional: bool):
        super().__init__(f"values from {low} to {high} (fractional: {fractional})")
        self.low, self.high, self.fractional = low, high, fractional


@dataclass(frozen=True)
class Reading:
    """How a volume is read (:func:`read_as`): ``kind`` is ``"probability"`` (object where value > threshold,
    on the 0–255 scale), ``"mask"`` (object where value != 0) or ``"labels"`` (object IDs; read as a mask)."""

    kind: str
    dtype: str
    how: str = "auto"              # "auto", or the reading the caller forced
    low: float = 0.0               # the smallest and largest values seen
    high: float = 0.0
    ids: bool | None = None        # the object-ID sample looks like IDs (None: not looked at, not needed)
    verified: bool = False         # every voxel seen (an array in memory, a full pass), or written by segment
    known: bool = False            # written by tomoseg segment as its probability map (its provenance record)
    fractional: bool = False       # a fractional value seen: a probability map in [0, 1] (``unit``)
    where: str = "the volume"
    command: str = "analyze"

    @property
    def probability(self) -> bool:
        return self.kind == "probability"

    @property
    def unit(self) -> bool:
        """A probability map in [0, 1] (fractional values), read as ``rint(p * 255)``."""
        return self.kind == "probability" and self.fractional

    def note(self, threshold: int) -> str:
        """How the volume was read, in one line (the CLI's stderr note, the napari widget's counts)."""
        if self.unit:
            return (f"read as a probability map in [0, 1] ({self.dtype}): object where rint(p x 255) > {threshold}, "
                    f"i.e. p above about {(threshold + 0.5) / 255:.3f}")
        if self.kind == "probability":
            stored = "" if self.dtype == "uint8" else f", stored as {self.dtype}"
            return f"read as a probability map (values 0-255{stored}): object where value > {threshold}"
        if self.kind == "labels":
            return ("read as a label image (object IDs): object where value is not 0; objects are found again "
                    "by connectivity, so touching objects merge")
        forced = " (read as: mask)" if self.command == "Analyze" else " (--read-as mask)"
        why = forced if self.how == "mask" else "" if self.dtype == "bool" else \
            " (values 0 and 1 only)"
        return f"read as a mask{why}: object where value is not 0"

    def allowed(self) -> tuple | None:
        """The values (low, high, whole only) a block may hold without changing this reading; None: any."""
        if self.verified or self.kind == "labels" or self.how == "mask":
            return None
        if self.unit:
            return (0, 1, False)
        if self.kind == "probability":
            return None if self.dtype == "uint8" else (0, 255, True)
        return (0, 1, True)  # a mask by "0 and 1 only"

    def view(self, volume):
        """``volume`` as the analysis reads it: blocks checked against :meth:`allowed` (else
        :class:`ReadingChanged`), a 0–255 map of another type read as uint8, a map in [0, 1] as
        ``rint(p * 255)``."""
        convert = self.probability and np.dtype(volume.dtype) != np.uint8
        if not convert and self.allowed() is None:
            return volume
        return _ReadView(volume, self, convert)

    def revised(self, volume, changed: ReadingChanged) -> "Reading":
        """The reading once a block held ``changed``'s values (refusals raise here)."""
        low, high = min(self.low, changed.low), max(self.high, changed.high)
        fractional = self.fractional or changed.fractional  # fractions and whole values above 1 together: refused
        ids = self.ids
        if ids is None and high > 1 and self.how == "auto" and not fractional:
            ids = looks_like_object_ids(volume) is not None
        kind = _kind(np.dtype(self.dtype), low, high, fractional, ids, self.how, self.where, self.command)
        return replace(self, kind=kind, low=low, high=high, ids=ids, fractional=fractional)

    def shows_object_ids(self, table, min_voxels: int = 8) -> bool:
        """Whether the objects found under this automatic probability reading (``table``, with the
        ``mean_probability`` and ``max_probability`` of this volume's values) show a sparse label image the
        object-ID sample missed (:func:`flat_objects`); tomoseg's own maps are exempt. Then read again under
        :meth:`as_object_ids`."""
        return self.probability and self.how == "auto" and not self.known and flat_objects(table, min_voxels)

    def as_object_ids(self) -> "Reading":
        """This reading once the objects found turned out to be plateaus of several values (object IDs the
        sample did not show): a label image, or the refusal of IDs stored as uint8."""
        kind = _kind(np.dtype(self.dtype), self.low, max(self.high, 2.0), False, True, self.how, self.where,
                     self.command)
        return replace(self, kind=kind, ids=True)

    def whole(self) -> "Reading":
        """This reading once every voxel has been read under it (no :class:`ReadingChanged`): final."""
        return replace(self, verified=True)


class _ReadView:
    """A volume read through its :class:`Reading`, block by block (anything sliced like an array)."""

    def __init__(self, volume, reading: Reading, convert: bool):
        from ..io.blocks import storage_chunks

        self.volume, self.reading, self.convert = volume, reading, convert
        self.limits = reading.allowed()
        self.shape = tuple(int(s) for s in volume.shape)
        self.dtype = np.dtype(np.uint8) if convert else np.dtype(volume.dtype)
        self.chunks = storage_chunks(volume)

    def __getitem__(self, key):
        block = np.asarray(self.volume[key])
        if self.limits is not None and block.size:
            low, high, fractional = _value_range(block)
            lo, hi, whole = self.limits
            if low < lo or high > hi or (whole and fractional):
                if self.reading.how == "probability":  # a forced reading cannot change: refuse (raises)
                    r = self.reading
                    _kind(np.dtype(r.dtype), low, high, fractional, None, r.how, r.where, r.command)
                raise ReadingChanged(low, high, fractional)
        if self.convert:
            if block.dtype.kind == "f":
                block = np.where(np.isfinite(block), block, 0)
            if self.reading.unit:
                block = np.rint(np.clip(block, 0, 1) * 255)
            block = block.astype(np.uint8)
        return block


def _value_range(block: np.ndarray) -> tuple[float, float, bool]:
    """The smallest and largest finite values of a block, and whether any finite value is fractional."""
    if block.dtype == np.uint8:  # the common case: one pass
        return 0.0, float(block.max()), False
    if block.dtype == np.bool_:
        return 0.0, float(block.any()), False
    if block.dtype.kind == "f":
        finite = np.isfinite(block)
        if not finite.all():
            block = block[finite]
        if not block.size:
            return 0.0, 0.0, False
        return float(block.min()), float(block.max()), bool(np.any(block != np.round(block)))
    return float(block.min()), float(block.max()), False


def flat_objects(table, min_voxels: int = 8) -> bool:
    """Whether the objects found in a volume read as a probability map are each flat at one value (mean
    probability = max probability) and of several values (two at least, as
    :func:`~tomoseg.objects.reading.looks_like_object_ids` asks): a label image's IDs above the threshold, where a
    probability map's objects ramp up from their edges."""
    size = np.asarray(table["volume_vox"])
    big = size >= max(int(min_voxels), 8)
    if int(big.sum()) < 2:
        return False
    mean = np.asarray(table["mean_probability"], float)[big]
    top = np.asarray(table["max_probability"], float)[big]
    return bool(np.all(np.isclose(mean, top, rtol=0, atol=1e-9)) and len(np.unique(np.round(top * 255))) >= 2)


def _force_mask(command: str) -> str:
    """How to force the mask reading: the napari widget's choice, else the CLI's option."""
    return "choose read as: mask" if command == "Analyze" else "pass --read-as mask"


def _kind(dtype, low, high, fractional, ids, how, where, command) -> str:
    """The reading of values from ``low`` to ``high``; refusals raise :class:`TomosegError`."""
    if how == "mask":
        return "mask"
    if fractional:
        if low >= 0 and high <= 1:
            return "probability"  # a map in [0, 1]
        raise TomosegError(f"{where}: holds fractional values from {low:g} to {high:g} ({dtype}); {command} takes a "
                           "mask (0 = background, nonzero = object), a probability map in [0, 1] or one of whole "
                           "values 0-255 (tomoseg's uint8 map): a gray-value image? Give the probability map or "
                           "the mask from tomoseg segment")
    if how == "probability":
        if low < 0 or high > 255:
            raise TomosegError(f"{where}: holds values from {low:g} to {high:g}; a probability map holds 0-255 "
                               "(read as one by --read-as probability, or given as --probability). Convert it to "
                               "uint8 0-255 first")
        return "probability"
    if low < 0:
        raise TomosegError(f"{where}: holds negative values (down to {low:g}, {dtype}): not a mask, a probability "
                           "map or a label image (a gray-value image?). Give the mask or the probability map from "
                           f"tomoseg segment, or {_force_mask(command)} to count every nonzero voxel as object")
    if high <= 1:
        return "mask"
    if ids:
        if dtype == np.uint8:
            raise TomosegError(f"{where}: looks like an image of object IDs stored as uint8 (nonzero regions of one "
                               "value each, several values); uint8 volumes are read as masks (0/1) or probability "
                               "maps (object where > the threshold), which would drop IDs up to 127. Save object "
                               "IDs as uint16 (numpy: .astype('uint16')), or give a mask")
        return "labels"
    if high <= 255:
        return "probability"
    raise TomosegError(f"{where}: holds values up to {high:g} ({dtype}) and does not look like object IDs: not a "
                       "mask (0/1), a probability map (0-255) or a label image (a gray-value image, or a map on "
                       f"another scale?). Convert a probability map to uint8 0-255 first; {_force_mask(command)} to "
                       "count every nonzero voxel as object")


def read_as(volume, how: str = "auto", *, where=None, command: str = "analyze") -> Reading:
    """How ``volume`` is read (module docstring): from all of its values where it is an array in memory, else
    from a spread sample, to be confirmed by the full pass (:meth:`Reading.view`).

    Examples
    --------
    >>> import numpy as np
    >>> read_as(np.array([[[0, 1]]], np.uint8)).kind, read_as(np.array([[[0, 200.0]]], np.float32)).kind
    ('mask', 'probability')
    >>> read_as(np.array([[[0, 0.7]]], np.float32)).unit
    True
    """
    if how not in READ_AS:
        raise TomosegError(f"read as {how!r}: give one of {', '.join(READ_AS)}")
    dtype = np.dtype(volume.dtype)
    where = str(where if where is not None else path_of(volume) or "the volume")
    base = Reading("mask", str(dtype), how=how, where=where, command=command)
    if isinstance(volume, MaskView) or dtype == np.bool_:
        return replace(base, high=1.0, verified=True)
    if how == "mask":
        return replace(base, verified=True)
    if dtype.kind not in "uif":
        raise TomosegError(f"{where}: holds {dtype} values, not a mask or a probability map")
    whole = isinstance(volume, np.ndarray)
    if how == "auto" and dtype == np.uint8 and not whole and written_as_probability(volume):
        return replace(base, kind="probability", high=255.0, verified=True, known=True)  # segment's own map
    blocks = first_look(volume)
    low, high, fractional = np.inf, -np.inf, False
    for block in blocks:
        data = np.asarray(volume[block])
        if data.size:
            lo, hi, frac = _value_range(data)
            low, high, fractional = min(low, lo), max(high, hi), fractional or frac
    low, high = (0.0, 0.0) if high < low else (low, high)  # nothing read (an empty volume)
    ids = looks_like_object_ids(volume) is not None if how == "auto" and high > 1 and not fractional else None
    kind = _kind(dtype, low, high, fractional, ids, how, where, command)
    return replace(base, kind=kind, low=low, high=high, ids=ids, verified=whole, fractional=fractional)


def probability_values(probability, *, where=None, command: str = "analyze"):
    """A probability map given beside a mask (``analyze --probability``, for the ``mean_probability`` and
    ``max_probability`` columns), as the measurement reads it: a float map in [0, 1] as it is; whole values
    0-255 of any type (a uint16 or 32-bit copy of tomoseg's map) as the uint8 map they hold. Anything else
    (negative values, values above 255, fractions above 1) is refused: on a sample now, on every block as it is
    read."""
    where = str(where if where is not None else path_of(probability) or "the probability map")
    dtype = np.dtype(probability.dtype)
    if dtype.kind == "f":
        blocks = first_look(probability)
        ranges = [_value_range(np.asarray(probability[b])) for b in blocks]
        ranges = [(0.0, 0.0, False)] if not ranges else ranges
        low, high = min(r[0] for r in ranges), max(r[1] for r in ranges)
        if any(r[2] for r in ranges):
            if low >= 0 and high <= 1:
                return _UnitView(probability, where)
            raise TomosegError(f"{where}: holds fractional values from {low:g} to {high:g}; a probability map "
                               "holds probabilities in [0, 1] or whole values 0-255")
    reading = read_as(probability, "probability", where=where, command=command)
    return reading.view(probability)


class _UnitView:
    """A float probability map in [0, 1], read block by block as it is; a block outside [0, 1] is refused."""

    def __init__(self, volume, where: str):
        from ..io.blocks import storage_chunks

        self.volume, self.where = volume, where
        self.shape = tuple(int(s) for s in volume.shape)
        self.dtype = np.dtype(volume.dtype)
        self.chunks = storage_chunks(volume)

    def __getitem__(self, key):
        block = np.asarray(self.volume[key])
        if block.size:
            low, high, _ = _value_range(block)
            if low < 0 or high > 1:
                raise TomosegError(f"{self.where}: a float probability map holds values in [0, 1]; this one "
                                   f"also holds {low:g} to {high:g}. Give probabilities in [0, 1] or a uint8 "
                                   "0-255 map")
        return block


def is_probability(volume) -> bool:
    """Whether ``volume`` is read as a 0–255 probability map (:func:`read_as`, automatic reading)."""
    return read_as(volume).probability


def first_look(volume, slices: int = 16) -> list:
    """The blocks a first look at ``volume`` reads: the whole of an array in memory; on disk, blocks holding
    about as many voxels as ``slices`` z slices, spread evenly over the volume: whole storage chunks of a
    chunked store (a single slice of a Zarr store decompresses its whole chunk layer), else whole slices."""
    from ..io.blocks import sample_blocks, storage_chunks

    if isinstance(volume, np.ndarray):
        return [(slice(None),) * 3]
    shape = tuple(int(s) for s in volume.shape)
    return sample_blocks(shape, storage_chunks(volume), min(1.0, slices / shape[0]))


def value_spread(volume) -> tuple[float, float]:
    """Of a uint8 volume's first look (:func:`first_look`): the share of voxels between 13 and 242 of 255
    (probabilities 0.05 to 0.95), and the share within 2 of the most common value. A network's probability map
    is mostly sure background, at one value near 0 (middle 0.09 and mode 0.81 on a lab scan of cement, 0.003
    and 0.99 on a phantom); a gray-value scan spreads over the middle (the cement scan: 1.0 and 0.30; the
    phantom's: 0.97 and 0.23). A uint8 scan given where a map is wanted is read as a map without error; this
    tells it apart.

    >>> import numpy as np
    >>> value_spread(np.array([[[0, 0, 1, 255]]], np.uint8)), value_spread(np.array([[[60, 90, 120, 5]]], np.uint8))
    ((0.0, 0.75), (0.75, 0.25))
    """
    counts = np.zeros(256, np.int64)
    for block in first_look(volume):
        counts += np.bincount(np.asarray(volume[block], np.uint8).ravel(), minlength=256)
    total = int(counts.sum())
    if not total:
        return 0.0, 1.0
    mode = int(counts.argmax())
    return int(counts[13:243].sum()) / total, int(counts[max(mode - 2, 0):mode + 3].sum()) / total


def written_as_probability(volume) -> bool:
    """Whether ``segment`` wrote this volume as its probability map: its provenance record (a dataset of an HDF5
    file has its own, :func:`~tomoseg.io.output_guard.provenance_path`) names it so. Then a sparse map whose
    sample holds only 0 and 1 is not taken for a mask (where every 1 would become an object)."""
    from ..io.output_guard import same_output, tomoseg_provenance

    path = path_of(volume)
    if path is None:
        return False
    record = tomoseg_provenance(path)
    if record is None or record.get("tool") != "tomoseg segment":
        return False
    outputs = record.get("outputs")
    return same_output(outputs.get("probability") if isinstance(outputs, dict) else None, path)


def id_sample(shape) -> list:
    """The blocks the object-ID test looks at: cells of an :data:`ID_TILE` grid fixed by the shape alone
    (evenly spread: :data:`ID_SLABS` along z, :data:`ID_TILES` along each of y and x), so that the same data
    gives the same answer in every file format and in memory."""
    cells = []
    for axis, (n, tile, picks) in enumerate(zip(shape, ID_TILE, (ID_SLABS, ID_TILES, ID_TILES))):
        count = -(-int(n) // tile)
        chosen = np.unique(np.linspace(0, count - 1, min(picks, count)).round().astype(int))
        cells.append([slice(int(i) * tile, min((int(i) + 1) * tile, int(n))) for i in chosen])
    return [(z, y, x) for z in cells[0] for y in cells[1] for x in cells[2]]


def _read_id_sample(volume):
    """The :func:`id_sample` blocks' data: tile by tile from a chunked store (each tile lies in few chunks),
    whole slabs of slices from contiguous data (where a slice is the cheapest read), cut into the same tiles."""
    from ..io.blocks import storage_chunks

    shape = tuple(int(s) for s in volume.shape)
    blocks = id_sample(shape)
    if isinstance(volume, np.ndarray) or storage_chunks(volume) is not None:
        for block in blocks:
            yield np.asarray(volume[block])
        return
    slabs: dict = {}
    for z, y, x in blocks:
        slabs.setdefault((z.start, z.stop), []).append((y, x))
    for (z0, z1), tiles in slabs.items():
        slab = np.asarray(volume[z0:z1, :, :])
        for y, x in tiles:
            yield slab[:, y, x]


def looks_like_object_ids(volume, min_voxels: int = 8) -> tuple[int, int] | None:
    """Whether a volume of whole values holds object IDs (a label image from Fiji or ilastik) rather than a
    mask or a probability map: in the :func:`id_sample`, its nonzero regions of at least ``min_voxels`` are
    nearly all of one value each (90 %, two at least), and of more than one value. A probability map's objects
    ramp up from their edges; a 0/1 or 0/255 mask has one value. Returns (regions, values), or None.
    tomoseg's own probability maps are never taken for IDs."""
    dtype = np.dtype(volume.dtype)
    if dtype == np.bool_ or dtype.kind not in "uif" or isinstance(volume, MaskView):
        return None
    if not isinstance(volume, np.ndarray) and written_as_probability(volume):
        return None
    regions = uniform = 0
    values: set = set()
    for data in _read_id_sample(volume):
        lab, n = ndimage.label(data > 0)
        if not n:
            continue
        index = np.arange(1, n + 1)
        big = ndimage.sum_labels(np.ones(data.shape, np.int32), lab, index) >= min_voxels
        lo = np.asarray(ndimage.minimum(data, lab, index))[big]
        hi = np.asarray(ndimage.maximum(data, lab, index))[big]
        regions += int(big.sum())
        uniform += int(np.count_nonzero(lo == hi))
        values.update(lo[lo == hi].tolist())
    if uniform >= 2 and len(values) >= 2 and uniform >= 0.9 * regions:
        return regions, len(values)
    return None


def mask_of(block, probability: bool, threshold: int):
    """The object voxels of a block: value > ``threshold`` in a probability map, else value != 0."""
    return block > threshold if probability else block != 0


class MaskView:
    """The mask of a mask or probability map (uint8 0/1), read region by region: ``view[z]``, ``view[:, y]``
    read one plane of the volume, not the volume."""

    def __init__(self, volume, options=None, probability: bool | None = None):
        """``probability``: whether ``volume`` is a probability map, where the caller knows (the analysis'
        :class:`Reading`); else :func:`is_probability` decides. ``options``: an AnalysisOptions (threshold)."""
        threshold = 127 if options is None else options.threshold
        prob = is_probability(volume) if probability is None else bool(probability)
        self.volume, self.prob, self.threshold = volume, prob, threshold
        self.shape, self.dtype = tuple(volume.shape), np.dtype(np.uint8)

    def __getitem__(self, key):
        return mask_of(np.asarray(self.volume[key]), self.prob, self.threshold).astype(np.uint8)
