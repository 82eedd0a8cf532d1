"""The 3D view of the objects: a dot at each centroid coloured by its equivalent radius, in the analysed volume's
box, oblique and from the top and the side; of many objects a seeded sample of at most :data:`MAX_3D_OBJECTS`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .layout import DOUBLE_COLUMN, inside_figure, labels_clear_of_ticks, ticks_for_length, views_layout
from .style import MIN_FONT_PT, _plt, _wrap, save_figure, seeded_sample, styled

MAX_3D_OBJECTS = 10_000   # the 3D view draws a random sample of at most this many objects (three views each)


def colour_scale(values, *, percentiles=(2, 98)):
    """One :class:`~matplotlib.colors.Normalize` from the ``percentiles`` of ``values`` for every panel of a
    figure; widened around the value where they coincide (objects all of one radius: a one-value scale left
    panels that did not share it at the bottom of the colormap)."""
    from matplotlib.colors import Normalize

    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    lo, hi = (np.percentile(v, percentiles) if len(v) else (0.0, 1.0))
    if hi <= lo:
        half = max(0.05 * abs(lo), 0.5)
        lo, hi = lo - half, lo + half
    return Normalize(vmin=float(lo), vmax=float(hi))


@styled
def objects_3d(table: dict, shape, path, *, voxel_size=None, column: str = "equivalent_radius_nm",
               max_objects: int = MAX_3D_OBJECTS, rng=0, empty_note: str = "no objects") -> Path:
    """A 3D view of the objects: each a dot at its centroid coloured by its equivalent radius (one colour
    scale for the three views), inside the analysed volume's box: oblique (3D), from the top (along z, y down,
    as the slices and napari) and from the side (along x, z up); the top and side views are plain 2D plots
    (an orthographic view is one), drawn to scale with each axis labelled in its unit.

    The dots are of one size: marker sizes in screen points cannot be to scale in a 3D projection, and dots
    grown with the radius hid the gaps between objects. Of more than ``max_objects`` objects, a random sample
    of ``max_objects`` (``rng``: a seed or a NumPy Generator) is drawn, and the title and caption say so; the
    colour scale spans all of them."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.ticker import MaxNLocator, NullLocator

    vs = np.asarray(voxel_size if voxel_size else (1.0, 1.0, 1.0), float)
    unit = 1000.0 if voxel_size else 1.0
    label = "µm" if voxel_size else "voxels"
    if voxel_size and max(np.asarray(shape, float) * vs) >= 1e6:  # a lab scan: 0 to 5 mm, not 0 to 5000 µm
        unit, label = 1e6, "mm"
    if column not in table or not voxel_size:
        column = "equivalent_radius_vox"
    values = np.asarray(table[column], float)
    radius_unit = "voxels"
    if column.endswith("_nm"):  # the colour bar in nm, µm or mm: a 50 µm voxel scan's read 180000 nm
        from ..io.units import readable_unit

        radius_unit, size = readable_unit(float(np.nanmax(values, initial=0.0)))
        values = values / size
    total = len(values)
    norm = colour_scale(values)
    pick = seeded_sample(total, max_objects, rng)
    values = values[pick]
    c = np.stack([np.asarray(table[f"centroid_{a}"], float)[pick] for a in "zyx"], 1).reshape(-1, 3) * vs / unit
    lower = -0.5 * vs / unit  # the volume's outer faces: voxel centres at 0 .. n-1 (as the centroids, napari)
    extent = (np.asarray(shape, float) - 0.5) * vs / unit
    dz, dy, dx = extent - lower
    widths, height = views_layout(float(dz), float(dy), float(dx))
    plt = _plt()
    fig = plt.figure(figsize=(DOUBLE_COLUMN, height), layout="constrained")
    fig.get_layout_engine().set(w_pad=0.03, h_pad=0.03, wspace=0.04)
    grid = fig.add_gridspec(1, 3, width_ratios=widths)
    dot = 4.0 if len(values) > 2000 else 9.0  # points²: fixed, not to scale
    scatter = dict(c=values, cmap="viridis", norm=norm, s=dot, edgecolors="none")
    # oblique: a 3D axes, its box to scale
    ax3 = fig.add_subplot(grid[0], projection="3d")
    _box(ax3, lower, extent)
    if len(values):
        ax3.scatter(c[:, 2], c[:, 1], c[:, 0], depthshade=False, **scatter)
    ax3.set_box_aspect((dx, dy, dz), zoom=1.0)
    ax3.view_init(elev=25, azim=-55)
    ax3.tick_params(labelsize=MIN_FONT_PT, pad=-2)
    longest = max(dz, dy, dx)
    for axis, length in zip("xyz", (dx, dy, dz)):
        # fewer ticks along a short side (a flat box's z: six ticks one on the other); none below a tenth
        # (and no label: the names of a tall box's x and y ran into each other; the 2D views show those sides)
        n = 3 if length > 0.5 * longest else 2 if length > 0.25 * longest else 1
        getattr(ax3, f"{axis}axis").set_major_locator(MaxNLocator(n) if length > 0.1 * longest else NullLocator())
        if length > 0.1 * longest:
            getattr(ax3, f"set_{axis}label")(f"{axis} ({label})", labelpad=-6)
    # z on the left: on the right its ticks and label ran into the top view's y label
    ax3.zaxis.set_ticks_position("lower")
    ax3.zaxis.set_label_position("lower")
    ax3.zaxis.set_rotate_label(False)
    ax3.zaxis.label.set_rotation(90)
    ax3.set_title("oblique (z up)")
    # top and side: 2D, one scale each, the box's faces as the axes' limits
    top = fig.add_subplot(grid[1])
    side = fig.add_subplot(grid[2])
    for ax, (h, v), (name, hl, vl) in ((top, (2, 1), ("along z (top, y down)", "x", "y")),
                                       (side, (1, 0), ("side (along x, z up)", "y", "z"))):
        if len(values):
            ax.scatter(c[:, h], c[:, v], **scatter)
        ax.set_xlim(lower[h], extent[h])
        ax.set_ylim(lower[v], extent[v])
        ax.set_aspect("equal")
        ax.set_anchor("N")  # the titles in one line
        ax.set_xlabel(f"{hl} ({label})", labelpad=1)
        ax.set_ylabel(f"{vl} ({label})", labelpad=1)
        ax.set_title(name)
    top.invert_yaxis()  # y down, as in the slices, hit maps and napari
    if not total:
        top.text(0.5, 0.5, _wrap(empty_note), transform=top.transAxes, ha="center", va="center",
                 bbox=dict(boxstyle="round", fc="white", ec="0.6", lw=0.6))
    if total:
        fig.colorbar(ScalarMappable(norm=norm, cmap="viridis"), ax=[ax3, top, side], shrink=0.85, aspect=25,
                     pad=0.02, label=f"equivalent radius ({radius_unit})")
    drawn = len(values)
    sample = ""
    if drawn < total:
        fig.suptitle(f"{drawn:,} of {total:,} objects drawn (a random sample)")
        sample = (" The sample is seeded (the same on every run) and keeps the figure readable and small; the "
                  "colour scale spans all the objects, and every object is in the objects table and the "
                  "histograms.")
    labels_clear_of_ticks(fig, ax3)  # (a flat box's x and y labels lay on their ticks' labels)
    inside_figure(fig, ax3)
    for ax in (top, side):  # ticks for the 2D views' sizes on paper
        box = ax.get_window_extent()
        for axis, inches in ((ax.xaxis, box.width / fig.dpi), (ax.yaxis, box.height / fig.dpi)):
            ticks_for_length(axis, inches)
    what = f"a random sample of {drawn:,} of the {total:,} objects" if sample else \
        f"the {total:,} object{'' if total == 1 else 's'}"
    caption = (f"3D view of {what}: each a dot at its centroid (dots of one size, not to scale) coloured by its "
               "equivalent radius, in the box of the analysed volume (oblique; from the top, along z with y "
               "down; from the side, along x), so their spatial distribution shows." + sample
               + ("" if total else f" Empty: {empty_note}."))
    return save_figure(fig, path, caption, marks=3 * drawn)


def _box(ax, lower, upper):
    """The edges of the box from ``lower`` to ``upper`` (z, y, x), drawn as x, y, z."""
    import itertools

    lo, hi = np.asarray(lower, float)[::-1], np.asarray(upper, float)[::-1]
    corners = list(itertools.product(*zip(lo, hi)))
    for a, b in itertools.combinations(corners, 2):
        if sum(p != q for p, q in zip(a, b)) == 1:  # an edge: the corners differ along one axis
            ax.plot(*zip(a, b), color="0.6", lw=0.6)
    ax.set_xlim(lo[0], hi[0])
    ax.set_ylim(lo[1], hi[1])
    ax.set_zlim(lo[2], hi[2])
