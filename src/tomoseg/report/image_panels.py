"""Image panels (slices drawn with imshow): drawn to scale (:func:`pixel_aspect`), in one gray range for panels
to be compared (:func:`gray_range`), with a scale bar (:func:`add_scale_bar`) of a round length (:func:`nice_length`).
"""

from __future__ import annotations

import numpy as np

from .style import MIN_FONT_PT


def nice_length(target: float) -> float:
    """The 1-2-5 number nearest below ``target`` (for scale bars).

    >>> nice_length(730), nice_length(2900)
    (500.0, 2000.0)
    """
    if target <= 0:
        return 0.0
    exp = np.floor(np.log10(target))
    for m in (5, 2, 1):
        if m * 10 ** exp <= target:
            return float(m * 10 ** exp)
    return float(10 ** exp)


def _length_label(nm: float) -> str:
    from ..io.units import readable_unit

    name, size = readable_unit(nm)
    return f"{nm / size:g} {name}"


def pixel_aspect(voxel_size, rows: int = 1, columns: int = 2) -> float:
    """Height over width of one pixel of a slice whose rows run along axis ``rows`` and columns along axis
    ``columns`` of ``voxel_size`` (z, y, x; default: a z slice, y over x), as imshow's ``aspect`` wants it so
    that the slice is drawn to scale; 1 without a voxel size.

    >>> pixel_aspect((100.0, 30.0, 60.0)), pixel_aspect((100.0, 30.0, 60.0), 0, 2), pixel_aspect(None)
    (0.5, 1.6666666666666667, 1.0)
    """
    if not voxel_size:
        return 1.0
    return float(voxel_size[rows]) / float(voxel_size[columns])


def _display_aspect(ax) -> float:
    """The height on screen of one y data unit over that of one x data unit (1 where the axes are 'auto')."""
    aspect = ax.get_aspect()
    return float(aspect) if not isinstance(aspect, str) else 1.0


def add_scale_bar(ax, pixel_nm: float | None, width_px: int, *, fraction: float = 0.2,
                  thickness: float | None = None, outside: bool = False) -> None:
    """A white bar with its length (nm or µm) in the lower right of an image panel; ``pixel_nm``: a column's
    width (the bar lies along the rows). Call it after the image is drawn with its aspect: the bar's thickness is
    the same on screen whatever the pixels' height over width. ``thickness``: the bar's, in rows, where the
    panel's size on paper is known (by default 1.2 % of the panel's longer side: on a tall, narrow panel that
    was a bar thicker than long). ``outside``: the bar centred under the image, its label (black) under the bar,
    for a panel too narrow for the label (take a longer ``fraction``: nothing is hidden under it)."""
    if not pixel_nm:
        return
    from matplotlib.patches import Rectangle

    length_nm = nice_length(fraction * width_px * pixel_nm)
    length_px = length_nm / pixel_nm
    y0, y1 = ax.get_ylim()
    a = _display_aspect(ax)
    # one unit of bar thickness (in rows), the same on wide and tall panels and on non-square pixels
    u = thickness if thickness else 0.012 * max(abs(y1 - y0) * a, width_px) / a
    if outside:  # under the image (rows grow downwards: the image's bottom edge is the larger y limit)
        x, y = (width_px - length_px) / 2 - 0.5, max(y0, y1) + 1.5 * u
        ax.add_patch(Rectangle((x, y), length_px, u, color="black", lw=0, clip_on=False))
        ax.text(x + length_px / 2, y + 1.8 * u, _length_label(length_nm), color="black", ha="center", va="top",
                fontsize=MIN_FONT_PT, clip_on=False)
        return
    x = width_px - length_px - 0.04 * width_px
    y = max(y0, y1) - 2.5 * u
    ax.add_patch(Rectangle((x, y), length_px, u, color="white", ec="black", lw=0.5))
    ax.text(x + length_px / 2, y - 0.8 * u, _length_label(length_nm), color="white", ha="center", va="bottom",
            fontsize=MIN_FONT_PT, bbox=dict(boxstyle="square,pad=0.1", fc="black", alpha=0.5, ec="none"))
    # (a dark box behind the label rather than a stroke around it: a stroked label is saved as paths, not as
    # text that can be edited in the SVG)



def gray_range(*planes) -> tuple[float, float]:
    """One gray range (the 1st to 99th percentile of the planes' finite values together) for image panels
    that are to be compared: the same gray value the same shade in each."""
    values = np.concatenate([np.asarray(p, np.float64).ravel() for p in planes])
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)

