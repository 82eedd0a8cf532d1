"""Figures a scientist can put in a paper (matplotlib).

Like the paper's Figs. 4–6: a normalized confusion matrix, hit maps, size
histograms of prediction and ground truth, sphericity against radius coloured by
mean gray value; orthogonal slices with the mask outlined, the volume fraction
along z, and a 3D view of the objects coloured by radius.

Every figure is written three times: PNG at 300 dpi, and SVG and PDF (vector) beside it. It is sized for a
journal column (:data:`SINGLE_COLUMN` 85 mm or :data:`DOUBLE_COLUMN` 175 mm wide) with no text under 7 pt at
that size, drawn under one style (:func:`styled`: fonts, Okabe-Ito colours, SVG text kept as text and PDF
fonts embedded as TrueType, so labels stay editable) from the first artist to the saved file, with
constrained layout (no overlapping labels), physical axes when the voxel size is known (z in µm, radius in nm
beside voxels), scale bars on image panels, and colour-blind-safe colours (Okabe & Ito 2008 for categories,
viridis/cividis for values). Each figure's caption, including why a slice was chosen, goes into
``captions.json`` beside the figures, where the HTML report reads it.

Figures of one mark per object stay bounded in time and size whatever the number of objects: above
:data:`VECTOR_MARKS` marks they are written as PNG only (an SVG holds every mark as a path: 60 MB for 30,000
objects in 3D, 1.3 GB for 666,000; embedding the marks as an image in the SVG instead took longer than the
vector file), the 3D view draws a seeded random sample of at most :data:`MAX_3D_OBJECTS` objects and the
sphericity scatter one of at most :data:`MAX_SCATTER` a panel, their titles saying how many of how many, and a
size histogram has at most :data:`MAX_BINS` bars (:func:`radius_bins`: a few objects far larger than the rest
lie beyond its axis, said on it). Captions say all three.

Every figure function takes the data as arrays or tables (dicts of columns, as ``objects.csv`` reads back
with :func:`tomoseg.table.read_csv`), so any figure can be drawn again from the saved files
(docs/analysis.md, "Re-plotting the figures").

The figures are drawn in modules named for what they hold, and every name is importable from here as before:
:mod:`.style` (the style, colours, making and saving a figure), :mod:`.image_panels` (slices to scale, gray range,
scale bars), :mod:`.layout` (where things go), :mod:`.evaluation_figures` (confusion matrix, hit maps),
:mod:`.distributions` (size histogram, sphericity against radius), :mod:`.orthoslice_figure`, :mod:`.z_profile`
(the volume fraction along z) and :mod:`.view_3d` (the 3D view of the objects).
"""

from .distributions import (MARK_AREA, MARK_CAP, MAX_BINS, MAX_SCATTER, OVERPLOT, mark_areas, mark_legend_counts,
                            radius_bins, size_handles, size_histogram, sphericity_figure)
from .evaluation_figures import (CONFUSION_CAPTION, HIT_COLOURS, confusion_figure, hit_map, hit_map_figure,
                                 hit_map_figures, hit_map_slices)
from .image_panels import add_scale_bar, gray_range, nice_length, pixel_aspect
from .layout import DOUBLE_COLUMN, SINGLE_COLUMN
from .orthoslice_figure import PLANE_LINE, orthoslices
from .style import (DPI, FORMATS, MIN_FONT_PT, OKABE_ITO, SERIES, STYLE, VECTOR_MARKS, format_fraction, new_figure,
                    no_objects, save_figure, styled)
from .view_3d import MAX_3D_OBJECTS, colour_scale, objects_3d
from .z_profile import fraction_along_z, fraction_along_z_table

__all__ = ["CONFUSION_CAPTION", "DOUBLE_COLUMN", "DPI", "FORMATS", "HIT_COLOURS", "MARK_AREA", "MARK_CAP",
           "MAX_3D_OBJECTS", "MAX_BINS", "MAX_SCATTER", "radius_bins", "MIN_FONT_PT", "OKABE_ITO", "OVERPLOT", "PLANE_LINE", "SERIES", "SINGLE_COLUMN", "STYLE",
           "VECTOR_MARKS", "add_scale_bar", "colour_scale", "confusion_figure", "format_fraction", "fraction_along_z",
           "fraction_along_z_table", "gray_range", "hit_map", "hit_map_figure", "hit_map_figures", "hit_map_slices",
           "mark_areas", "mark_legend_counts", "new_figure", "nice_length", "no_objects", "objects_3d", "orthoslices",
           "pixel_aspect", "save_figure", "size_handles", "size_histogram", "sphericity_figure", "styled"]
