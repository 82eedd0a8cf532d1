"""The orthoslice figure: three orthogonal slices at one scale and in one gray range, the objects counted and not
counted outlined, the other two planes dashed, one scale bar (which planes: :mod:`tomoseg.report.slices`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .image_panels import _length_label, add_scale_bar, gray_range, nice_length, pixel_aspect
from .layout import legend_under_short_panels, panels_to_one_scale
from .style import MIN_FONT_PT, _plt, save_figure, styled


PLANE_LINE = dict(color="white", gapcolor="black", lw=0.6, ls=(0, (4, 4)), alpha=0.7)  # orthoslices' other planes


@styled
def orthoslices(image, mask, path, *, centre=None, title="", reason: str = "", voxel_size=None,
                excluded=None) -> Path:
    """Three orthogonal slices through ``centre`` with the mask outlined (Okabe-Ito orange), in one gray
    range (:func:`gray_range` of the three planes), the other two planes marked by dashed lines.

    ``excluded``: a function ``(axis, index, mask_plane) -> bool plane`` giving the part of a plane's mask that
    belongs to objects the analysis does not count (border, small, outside the sample mask; outlined in sky
    blue),
    e.g. :func:`tomoseg.report.slices.excluded_in_plane`."""
    from matplotlib.lines import Line2D
    from skimage.segmentation import find_boundaries

    shape = image.shape
    centre = tuple(int(c) for c in (centre or tuple(s // 2 for s in shape)))
    planes = [(0, "z", np.asarray(image[centre[0]]), np.asarray(mask[centre[0]]), 2),
              (1, "y", np.asarray(image[:, centre[1]]), np.asarray(mask[:, centre[1]]), 2),
              (2, "x", np.asarray(image[:, :, centre[2]]), np.asarray(mask[:, :, centre[2]]), 1)]
    vs = np.asarray(voxel_size if voxel_size else (1.0, 1.0, 1.0), float)
    widths = [shape[2] * vs[2], shape[2] * vs[2], shape[1] * vs[1]]  # in nm: the panels to one scale
    heights = [shape[1] * vs[1], shape[0] * vs[0], shape[0] * vs[0]]
    names = [f"{name} = {centre[axis]}" for axis, name, *_ in planes]
    fig, axes, scale = panels_to_one_scale(_plt().figure(), widths, heights, names, suptitle=bool(title))
    lo, hi = gray_range(*(p[2] for p in planes))
    colours = {"kept": np.array([0.902, 0.624, 0.0, 1.0], np.float32),
               "excluded": np.array([0.337, 0.706, 0.914, 1.0], np.float32)}
    any_excluded = any_kept = False
    # the other planes' lines: in the z plane (rows y, columns x); y plane (z, x); x plane (z, y)
    cross = {"z": (centre[1], centre[2]), "y": (centre[0], centre[2]), "x": (centre[0], centre[1])}
    for ax, (axis, name, img, m, horiz) in zip(axes, planes):
        # the image's rows over its columns, in nm: z over x or y, y over x in the z plane
        aspect = pixel_aspect(voxel_size, 1 if name == "z" else 0, horiz)
        ax.imshow(img, cmap="gray", interpolation="nearest", aspect=aspect, vmin=lo, vmax=hi)
        objects = np.asarray(m) > 0
        left_out = excluded(axis, centre[axis], objects) if excluded is not None else np.zeros_like(objects)
        overlay = np.zeros(objects.shape + (4,), np.float32)
        counted = objects & ~left_out
        any_kept |= bool(counted.any())
        overlay[find_boundaries(counted, mode="outer")] = colours["kept"]
        if left_out.any():
            any_excluded = True
            overlay[find_boundaries(left_out, mode="outer")] = colours["excluded"]
        ax.imshow(overlay, interpolation="nearest", aspect=aspect)
        row, col = cross[name]
        for line in (ax.axhline, ax.axvline):  # white dashes with black gaps: seen on the bright sample too (white
            line(row if line == ax.axhline else col, **PLANE_LINE)  # alone vanished on it)
        ax.set_title(f"{name} = {centre[axis]}")
        ax.set_axis_off()
    # one scale bar: the three share one scale (a bar on each, on a thin volume's 3-slice strips, lay over the
    # strip and the titles); on the widest panel, or, where its label is wider than that panel's room for it (a
    # tall volume's 32-pixel panels), under the widest panel with white below it
    k, outside = _scale_bar_panel(fig, widths, heights, scale, labelled=bool(voxel_size))
    row_nm = float(vs[1] if planes[k][1] == "z" else vs[0])  # the panel's rows: y in the z plane, else z
    add_scale_bar(axes[k], float(voxel_size[planes[k][4]]) if voxel_size else None, planes[k][2].shape[1],
                  thickness=(2.0 / 72) / scale / row_nm, outside=outside,  # 2 points thick on paper
                  fraction=0.6 if outside else 0.2)
    handles = [Line2D([], [], color=colours["kept"], lw=2, label="objects counted")] if any_kept or not any_excluded \
        else []
    if any_excluded:
        handles.append(Line2D([], [], color=colours["excluded"], lw=2, label="objects not counted"))
    handles.append(Line2D([], [], **{**PLANE_LINE, "lw": 1.0, "ls": (0, (2.4, 2.4))}, label="the other two planes"))
    legend = fig.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 0.0), ncol=len(handles),
                        frameon=False, borderaxespad=0.2)
    legend_under_short_panels(fig, axes, legend)  # a flat volume's: under its y and x strips, not a row below
    if title:
        fig.suptitle(title, y=1 - 0.04 / fig.get_size_inches()[1], va="top")  # (the layout's margin)
    caption = ("Orthogonal slices with the counted objects outlined in orange"
               + (" and the objects not counted (touching the border, under the minimum size, or outside the sample "
                  "mask) in sky blue"
                  if any_excluded else "")
               + "; dashed lines: where the other two planes cut. All three panels share one gray range (1st to "
                 "99th percentile of their values)" + (" and one scale (the scale bar)." if voxel_size else
                                                       " and one scale."))
    if reason:
        caption += f" {reason}."
    return save_figure(fig, path, caption)


def _scale_bar_panel(fig, widths, heights, scale, *, labelled: bool = True) -> tuple[int, bool]:
    """Which orthoslice panel (``widths``, ``heights`` in nm at ``scale`` inches per nm; ``labelled``: whether a
    bar is drawn, the voxel size known) takes the scale bar, and whether outside its image: the widest (then
    tallest) panel, inside where the label of a bar of a fifth of its width fits across it, else under the
    widest panel with room below (0.3 inch) for the bar and its label; inside the widest where none has."""
    w = [float(v) * scale for v in widths]
    h = [float(v) * scale for v in heights]
    k = max(range(len(w)), key=lambda i: (w[i], h[i]))
    if not labelled:
        return k, False
    length = nice_length(0.2 * widths[k])
    text = fig.text(0, 0, _length_label(length), fontsize=MIN_FONT_PT)
    label = text.get_window_extent(fig.canvas.get_renderer()).width / fig.dpi + 0.04  # + its box's pad
    text.remove()
    bar_centre = w[k] * 0.96 - length * scale / 2  # as add_scale_bar places it
    if bar_centre - label / 2 >= 0 and bar_centre + label / 2 <= w[k]:
        return k, False
    room = [i for i in range(len(w)) if max(h) - h[i] >= 0.3]
    if not room:
        return k, False
    return max(room, key=lambda i: (w[i], max(h) - h[i])), True

