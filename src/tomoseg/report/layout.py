"""Where things go on a figure, as opposed to what is drawn (:mod:`tomoseg.report.figures`): the journal's
column widths, the panels of image figures laid out by hand at one scale, the 3D view's panel widths and height,
tick spacing for an axis' length on paper, labels kept apart and inside the figure.

Every function takes a matplotlib figure, axes or axis made by its caller and places things on it; none draws data.
"""

from __future__ import annotations

import numpy as np

SINGLE_COLUMN = 85 / 25.4   # inches: a journal's single column (85 mm) ...
DOUBLE_COLUMN = 175 / 25.4  # ... and its full width (175 mm)
MARGIN = 0.04               # inches of white around a figure laid out by hand (:func:`panels_to_one_scale`)


def keep_labels_apart(fig, labels, *, step: float = 9.0, tries: int = 6) -> None:
    """Move point labels (annotations with an offset in points, e.g. the ablation figure's row names) that
    overlap an earlier one or a mark of their axes (the points of its lines drawn with markers) a line up or down
    (``step`` points; up first, then down, farther each time), staying inside their axes; a label that cannot be
    placed apart stays where it was. Call it once the axes' limits are set."""
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    marks = []
    for ax in {t.axes for t in labels}:
        for line in ax.get_lines():
            if line.get_marker() in (None, "None", "", " "):
                continue
            half = line.get_markersize() / 2 * fig.dpi / 72
            xy = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]).astype(float))
            marks += [Bbox.from_extents(x - half, y - half, x + half, y + half) for x, y in xy
                      if np.isfinite(x) and np.isfinite(y)]
    placed = []
    for t in labels:
        dx, dy = t.xyann
        inside = t.axes.get_window_extent(r)
        for k in [0] + [s * i for i in range(1, tries + 1) for s in (1, -1)]:
            t.xyann = (dx, dy + k * step)
            b = t.get_window_extent(r)
            if not any(b.overlaps(o) for o in placed + marks) and inside.y0 <= b.y0 and b.y1 <= inside.y1:
                break
        else:
            t.xyann = (dx, dy)
            b = t.get_window_extent(r)
        placed.append(b)


def count_axis(axis) -> None:
    """Whole numbers only on an axis of counts (no 0.5 objects), in steps of 1, 2 or 5 times a power of ten (25,
    250: 2.5 where it makes whole numbers); MaxNLocator's own steps also take 3, 4, 6 and 8 (0, 6, 12 for 50
    objects)."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1, steps=[1, 2, 2.5, 5, 10]))


def panels_to_one_scale(fig, widths, heights, titles, *, suptitle: bool = False):
    """``fig`` (new, empty) made a double-column figure of image panels in a row, each ``widths[i]`` by
    ``heights[i]`` (nm, or voxels) at one scale, tops in line under their ``titles``, a legend's row below; the
    scale (inches per unit) chosen so that the row fills the column without the figure growing past 5 inches.
    Returns the figure, its axes and the scale.

    Laid out by hand: under constrained layout a thin volume's panels (3 slices: strips) floated mid-height
    under titles wider than them, and a panel narrower than its title was pushed past the figure's right edge
    (x = 128 of a 256 x 8 x 256 volume, 13 points out)."""
    import matplotlib

    fig.set_size_inches(DOUBLE_COLUMN, 3.0)
    r = fig.canvas.get_renderer()
    title_w = []
    for t in titles:
        text = fig.text(0, 0, t, fontsize=matplotlib.rcParams["axes.titlesize"])
        title_w.append(text.get_window_extent(r).width / fig.dpi + 0.04)
        text.remove()
    margin, gap, title_h, legend_h = MARGIN, 0.12, 0.26, 0.3
    top_h = 0.22 if suptitle else 0.0
    room = DOUBLE_COLUMN - 2 * margin - gap * (len(widths) - 1)
    scale = min(room / sum(widths), 5.0 / max(heights))
    for _ in range(8):  # titles wider than their panels take room from the panels
        slots = [max(w * scale, t) for w, t in zip(widths, title_w)]
        excess = sum(slots) - room
        drawn = sum(w * scale for w, slot in zip(widths, slots) if w * scale >= slot)
        if excess <= 1e-6 or drawn <= 0:
            break
        scale *= max(0.05, (drawn - excess) / drawn)
    height = max(h * scale for h in heights)
    fig_h = margin + top_h + title_h + height + legend_h + margin
    fig.set_size_inches(DOUBLE_COLUMN, fig_h)
    x = margin + (room - sum(slots)) / 2
    axes = []
    for w, h, slot in zip(widths, heights, slots):
        left = x + (slot - w * scale) / 2
        bottom = fig_h - margin - top_h - title_h - h * scale
        axes.append(fig.add_axes((left / DOUBLE_COLUMN, bottom / fig_h, w * scale / DOUBLE_COLUMN,
                                  h * scale / fig_h)))
        x += slot + gap
    return fig, axes, scale


def inside_figure(fig, ax3) -> None:
    """Constrained layout leaves a 3D axes' labels out of its count (they reached 3 to 30 points past the
    figure's edges): the layout drawn, the margins that they need kept free, and the layout drawn again."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [a.label.get_window_extent(r) for a in (ax3.xaxis, ax3.yaxis, ax3.zaxis) if a.label.get_text()]
    for a in (ax3.xaxis, ax3.yaxis, ax3.zaxis):  # the ticks drawn: those inside the axis' limits
        lo, hi = sorted(a.get_view_interval())
        boxes += [t.label1.get_window_extent(r) for t in a.get_major_ticks()
                  if lo <= t.get_loc() <= hi and t.label1.get_visible() and t.label1.get_text()]
    if not boxes:
        return
    from matplotlib.transforms import Bbox

    b = Bbox.union(boxes)
    pad = 2.0 * fig.dpi / 72  # 2 points of white between a label and the edge
    w, h = fig.bbox.width, fig.bbox.height
    left = max(0.0, pad - b.x0) / w
    bottom = max(0.0, pad - b.y0) / h
    top = max(0.0, b.y1 - (h - pad)) / h
    if left or bottom or top:
        fig.get_layout_engine().set(rect=(left, bottom, 1 - left, 1 - bottom - top))
        fig.canvas.draw()


def text_corners(text, renderer) -> np.ndarray:
    """The four corners (display pixels, in order around it) of ``text`` as drawn, turned by its rotation. Its
    window extent is the upright box around the turned text: for a slanted label of a 3D axis far larger than
    the text (boxes of a label and a tick label 3 points apart overlapped)."""
    from matplotlib.text import Text

    upright = Text(0, 0, text.get_text(), fontproperties=text.get_fontproperties(), figure=text.figure)
    size = upright.get_window_extent(renderer)
    centre = text.get_window_extent(renderer).get_points().mean(axis=0)  # a turned box's centre: its upright box's
    a = np.deg2rad(text.get_rotation())
    turn = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    half = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * (size.width / 2, size.height / 2)
    return centre + half @ turn.T


def polygons_apart(p, q, gap: float = 0.0) -> bool:
    """Whether the convex polygons ``p`` and ``q`` (corners in order, as :func:`text_corners` gives them) are at
    least ``gap`` apart along a line across them (the separating axis test over both polygons' edge normals)."""
    p, q = np.asarray(p, float), np.asarray(q, float)
    for poly in (p, q):
        for i in range(len(poly)):
            edge = poly[(i + 1) % len(poly)] - poly[i]
            normal = np.array([-edge[1], edge[0]]) / np.hypot(*edge)
            a, b = p @ normal, q @ normal
            if a.max() + gap <= b.min() or b.max() + gap <= a.min():
                return True
    return False


def labels_clear_of_ticks(fig, ax3, *, gap: float = 1.0, step: float = 2.0, pushes: int = 3, tries: int = 12) -> None:
    """Each axis label of the 3D axes ``ax3`` kept ``gap`` points clear of the tick labels drawn in ``ax3`` (on a
    flat box the x label lay on the x ticks' "2.5", the y label on the y ticks'; on the demo's box they touched):
    moved out from its axis (``step`` points at a time, at most ``pushes`` times, and not onto another axes of
    the figure: moved out alone, a flat box's y label ran into the top view's), then, where it still lies on
    one, the tick labels under it left blank (their tick marks kept; an axis keeps one at least). The figure is
    drawn to measure, at most ``tries`` times; call it once the limits and ticks are set."""
    from matplotlib.ticker import FixedFormatter, FixedLocator

    axes = (ax3.xaxis, ax3.yaxis, ax3.zaxis)
    pad = gap * fig.dpi / 72
    texts, locs = {}, {}  # axis: its tick labels as drawn ("" where left blank) and their locations
    pushed = {a: 0 for a in axes}
    stop = {a: False for a in axes}  # no more moving out: it reached another axes, or `pushes`
    for _ in range(tries):
        fig.canvas.draw()
        r = fig.canvas.get_renderer()
        others = [ax.get_tightbbox(r) for ax in fig.axes if ax is not ax3 and ax.get_visible()]
        shown = []  # (axis, index of the tick, corners)
        for a in axes:
            lo, hi = sorted(a.get_view_interval())
            ticks = [t for t in a.get_major_ticks() if lo <= t.get_loc() <= hi]
            if a not in texts:
                texts[a] = [t.label1.get_text() if t.label1.get_visible() else "" for t in ticks]
                locs[a] = [t.get_loc() for t in ticks]
            shown += [(a, i, text_corners(t.label1, r)) for i, t in enumerate(ticks) if texts[a][i]]
        moved = blanked = False
        for label_axis in axes:
            if not label_axis.label.get_text():
                continue
            box = text_corners(label_axis.label, r)
            if pushed[label_axis] and not all(polygons_apart(box, _corners(o), 0.0) for o in others):
                label_axis.labelpad -= step  # back: it reached another axes
                pushed[label_axis] -= 1
                stop[label_axis] = moved = True
                continue
            on = [(a, i) for a, i, corners in shown if texts[a][i] and not polygons_apart(box, corners, pad)]
            if not on:
                continue
            if not stop[label_axis] and pushed[label_axis] < pushes:
                label_axis.labelpad += step
                pushed[label_axis] += 1
                moved = True
                continue
            for a, i in on:
                if sum(bool(t) for t in texts[a]) > 1:
                    texts[a][i] = ""
                    blanked = moved = True
        if not moved:
            break
        if blanked:
            for a in axes:
                a.set_major_locator(FixedLocator(locs[a]))
                a.set_major_formatter(FixedFormatter(texts[a]))


def _corners(bbox) -> np.ndarray:
    return np.array([[bbox.x0, bbox.y0], [bbox.x1, bbox.y0], [bbox.x1, bbox.y1], [bbox.x0, bbox.y1]])


def ticks_for_length(axis, inches: float) -> None:
    """About one tick per 0.35 inch of an axis drawn ``inches`` long (a thin view of a flat or tall box had
    its tick labels one over the other); below 0.3 inch the far end only."""
    from matplotlib.ticker import FixedLocator, MaxNLocator

    if inches >= 0.3:
        axis.set_major_locator(MaxNLocator(int(np.clip(inches / 0.35, 1, 5))))
        return
    lo, hi = sorted(axis.get_view_interval())
    far = MaxNLocator(1).tick_values(lo, hi)
    axis.set_major_locator(FixedLocator([t for t in far if lo <= t <= hi][-1:]))


def unit_ticks(axis, per_voxel: float) -> None:
    """Ticks at round values of a length unit on an axis drawn in voxels (``per_voxel``: units per voxel), as
    many as the axis' drawn length holds (matplotlib's ``nbins="auto"``, asked again at each draw): five ticks a
    view ran together on a narrow top view ("0.40.81.21.6") and piled up on a side view of a few slices."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    class Scaled(MaxNLocator):
        def tick_values(self, vmin, vmax):
            lo, hi = sorted((vmin, vmax))
            ticks = super().tick_values(lo * per_voxel, hi * per_voxel)
            return ticks[(ticks >= lo * per_voxel - 1e-9) & (ticks <= hi * per_voxel + 1e-9)] / per_voxel

    axis.set_major_locator(Scaled(nbins="auto", steps=[1, 2, 2.5, 5, 10], min_n_ticks=1))
    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{round(v * per_voxel, 9):g}"))


def views_layout(dz: float, dy: float, dx: float) -> tuple[list[float], float]:
    """The width ratios of the 3D view's panels (oblique, top, side) and the figure's height (inches), from the
    box's size along z, y, x: each 2D view as wide as it is drawn at the panels' height (its extremes kept
    readable: a flat or tall box gets a panel no narrower than a third, no wider than twice the height), the
    height chosen so that the panels and a colour bar fill the double column."""
    h = 2.2  # inches: the panels' height before fitting
    top = float(np.clip(h * dx / dy, h / 3, 1.7 * h))
    side = float(np.clip(h * dy / dz, h / 3, 1.7 * h))
    oblique = 1.25 * h
    room = DOUBLE_COLUMN - 1.6  # the colour bar and the axes' labels
    scale = min(1.0, room / (oblique + top + side))
    return [oblique, top, side], round(max(1.35, h * scale) + 0.75, 2)


def centre_legend_over(fig, legend, ax, *, pad: float = 2.0) -> None:
    """A figure legend placed by constrained layout ("outside upper center": centred on the figure) moved to be
    centred over ``ax`` (where its axis labels are centred: a single series' legend sat left of them by half the
    width of the count axis' labels), kept ``pad`` points inside the figure's edges; the layout is drawn and
    then held as it is, so that the legend stays in the room that the layout made for it."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    width, box = fig.bbox.width, ax.get_window_extent(r)
    half = legend.get_window_extent(r).width / 2
    room = pad * fig.dpi / 72 + half
    centre = float(np.clip((box.x0 + box.x1) / 2, room, width - room)) if width > 2 * room else width / 2
    fig.set_layout_engine("none")  # the axes stay where the layout put them
    legend.set_bbox_to_anchor((centre / width, 0.0, 0.0, 1.0), transform=fig.transFigure)


def legend_under_short_panels(fig, axes, legend, *, gap: float = 0.06) -> bool:
    """Where a row of :func:`panels_to_one_scale` panels has panels shorter than the tallest (a flat volume's y
    and x slices: strips under which most of the figure was white), the figure ``legend`` (made for the row
    under the panels) moved under the short panels, ``gap`` inches below the lowest of them (their tight boxes:
    a scale bar drawn under one counts), centred under them, and the figure cut to end ``MARGIN`` under the
    tallest panel. Where no run of neighbouring panels has the room (width and height) it stays where it was.
    Returns whether it moved."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    w_in, h_in = fig.get_size_inches()
    dpi = fig.dpi
    size = legend.get_window_extent(r)
    lw, lh = size.width / dpi, size.height / dpi
    frames = [ax.get_position() for ax in axes]  # figure fractions
    lefts = [f.x0 * w_in for f in frames]
    rights = [f.x1 * w_in for f in frames]
    bottoms = [min(f.y0 * h_in, ax.get_tightbbox(r).y0 / dpi) for f, ax in zip(frames, axes)]
    floor = min(f.y0 * h_in for f in frames)  # the tallest panel's bottom
    best = None
    for i in range(len(axes)):
        for j in range(i, len(axes)):
            low = min(bottoms[i:j + 1])
            if rights[j] - lefts[i] >= lw and low - floor >= lh + gap and (best is None or low > best[2]):
                best = (i, j, low)
    if best is None:
        return False
    i, j, low = best
    cut = floor - MARGIN
    new_h = h_in - cut
    for f, ax in zip(frames, axes):
        ax.set_position((f.x0, (f.y0 * h_in - cut) / new_h, f.width, f.height * h_in / new_h))
    fig.set_size_inches(w_in, new_h)
    centre = (lefts[i] + rights[j]) / 2
    legend.set_loc("upper center")
    legend.set_bbox_to_anchor((centre / w_in, (low - cut - gap) / new_h, 0.0, 0.0), transform=fig.transFigure)
    legend.borderaxespad = 0.0
    return True
