"""Image panels (slices drawn with imshow): drawn to scale (:func:`pixel_aspect`), in one gray range for panels
to be compared (:func:`gray_range`), with a scale bar (:func:`add_scale_bar`) of a round length (:func:`nice_length`).
"""

from __future__ import annotations

import functools

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
    for a panel too narrow for the label (take a longer ``fraction``: nothing is hidden under it).

    Inside, the bar and its label stay inside the panel: the label is placed when the figure is drawn, once the
    panel's size on paper is known (:func:`_scale_bar_class`), and the bar is at most a fifth of a thin strip's height
    (on the narrow panel of a 16 x 256 x 64 phantom the label ran past the image's edge; on a strip of a few rows
    the bar went past its top)."""
    if not pixel_nm:
        return
    from matplotlib.patches import Rectangle

    length_nm = nice_length(fraction * width_px * pixel_nm)
    length_px = length_nm / pixel_nm
    y0, y1 = ax.get_ylim()
    a = _display_aspect(ax)
    # one unit of bar thickness (in rows), the same on wide and tall panels and on non-square pixels
    u = thickness if thickness else 0.012 * max(abs(y1 - y0) * a, width_px) / a
    if not outside:
        u = min(u, abs(y1 - y0) / 5)  # on a strip of a few rows: the bar and the row under it inside
    if outside:  # under the image (rows grow downwards: the image's bottom edge is the larger y limit)
        x, y = (width_px - length_px) / 2 - 0.5, max(y0, y1) + 1.5 * u
        ax.add_patch(Rectangle((x, y), length_px, u, color="black", lw=0, clip_on=False))
        ax.text(x + length_px / 2, y + 1.8 * u, _length_label(length_nm), color="black", ha="center", va="top",
                fontsize=MIN_FONT_PT, clip_on=False)
        return
    x = width_px - length_px - 0.04 * width_px
    y = max(y0, y1) - 2.5 * u
    bar = _scale_bar_class()((x, y), length_px, u, color="white", ec="black", lw=0.5)
    ax.add_patch(bar)
    bar.label = ax.text(x + length_px / 2, y - 0.8 * u, _length_label(length_nm), color="white", ha="center",
                        va="bottom", fontsize=MIN_FONT_PT,
                        bbox=dict(boxstyle="square,pad=0.1", fc="black", alpha=0.5, ec="none"))
    # (a dark box behind the label rather than a stroke around it: a stroked label is saved as paths, not as
    # text that can be edited in the SVG)
    bar.home, bar.one_line = bar.label.get_position(), bar.label.get_text()
    bar.label.set_in_layout(False)  # placed inside the panel when drawn: nothing for the layout to make room for


@functools.cache
def _scale_bar_class():
    """A scale bar that places its label (``bar.label``) inside their panel when drawn
    (:func:`_place_bar_label`), once the panel's size on paper is known: the bar is drawn before the label
    (patches before texts). Where the label fits nowhere in the panel, neither is shown. (Made here: matplotlib
    is imported when a figure is drawn, not with tomoseg.)"""
    from matplotlib.patches import Rectangle

    class ScaleBar(Rectangle):
        def draw(self, renderer):
            fits = _place_bar_label(self, renderer)
            self.set_visible(fits)
            self.label.set_visible(fits)
            super().draw(renderer)

    return ScaleBar


def _place_bar_label(bar, renderer) -> bool:
    """Where the label of a scale ``bar`` goes in its panel as drawn now, 2 points inside its edges: centred over
    the bar where it fits there (as always), else moved along the bar's row into the panel, in two lines (number
    over unit) where one line is wider than the panel, or left of the bar on a strip too thin for a label over
    it. Returns whether it fits in the panel."""
    label, ax = bar.label, bar.axes
    box = ax.get_window_extent(renderer)
    pad = 2.0 * bar.figure.dpi / 72
    x0, y0, y1 = bar.get_x(), bar.get_y(), bar.get_y() + bar.get_height()
    to_screen, to_data = ax.transData, ax.transData.inverted()
    label.set_visible(True)  # (measured: an invisible text's extent is a unit box at the origin)
    label.set_text(bar.one_line)
    label.set_position(bar.home)
    label.set_ha("center")
    label.set_va("bottom")
    top, bottom = sorted(to_screen.transform([(x0, y0), (x0, y1)])[:, 1])[::-1]
    if top > box.y1 or bottom < box.y0:  # the bar itself out of the panel (a strip thinner than the bar)
        return False
    ext = label.get_window_extent(renderer)
    if ext.y1 > box.y1 - pad:  # no room over the bar (a strip of a few rows): left of it
        label.set_ha("right")
        label.set_va("center")
        right = to_screen.transform((x0, y0))[0] - pad
        label.set_position(tuple(to_data.transform((right, (top + bottom) / 2))))
        ext = label.get_window_extent(renderer)
        return ext.x0 >= box.x0 + pad and ext.y0 >= box.y0 and ext.y1 <= box.y1
    if ext.width > box.width - 2 * pad:  # wider than the panel: number over unit
        label.set_text(bar.one_line.replace(" ", "\n", 1))
        ext = label.get_window_extent(renderer)
    if ext.width > box.width - 2 * pad or ext.y1 > box.y1 - pad:
        return False
    shift = max(0.0, box.x0 + pad - ext.x0) - max(0.0, ext.x1 - (box.x1 - pad))
    if shift:
        home = to_screen.transform(bar.home)
        label.set_position(tuple(to_data.transform((home[0] + shift, home[1]))))
    return True


def gray_range(*planes) -> tuple[float, float]:
    """One gray range (the 1st to 99th percentile of the planes' finite values together) for image panels
    that are to be compared: the same gray value the same shade in each."""
    values = np.concatenate([np.asarray(p, np.float64).ravel() for p in planes])
    values = values[np.isfinite(values)]
    if not len(values):
        return 0.0, 1.0
    lo, hi = np.percentile(values, [1, 99])
    return (float(lo), float(hi)) if hi > lo else (float(lo) - 0.5, float(lo) + 0.5)

