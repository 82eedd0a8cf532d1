"""What every figure shares: its size and text (:data:`STYLE`, at least :data:`MIN_FONT_PT`), its colours
(Okabe & Ito 2008 for categories), the figure made under constrained layout and saved as PNG (300 dpi) with SVG
and PDF beside it (PNG only above :data:`VECTOR_MARKS` marks), its caption into ``captions.json``; and the few
texts every figure writes the same way (an empty plot's note, a fraction's digits).
"""

from __future__ import annotations

import functools
from pathlib import Path

from ..io.result_folders import write_captions

DPI = 300
FORMATS = ("png", "svg", "pdf")  # the first a raster, the others vector (left out above VECTOR_MARKS marks)
MIN_FONT_PT = 7             # the smallest text of any figure, at the width it is made for
# Okabe & Ito: distinguishable with the common colour-vision deficiencies
OKABE_ITO = {"black": "#000000", "orange": "#E69F00", "sky blue": "#56B4E9", "bluish green": "#009E73",
             "yellow": "#F0E442", "blue": "#0072B2", "vermillion": "#D55E00", "reddish purple": "#CC79A7"}
SERIES = [OKABE_ITO[k] for k in ("blue", "orange", "bluish green", "vermillion", "reddish purple", "sky blue")]
VECTOR_MARKS = 2_000      # figures with more marks than this (about 1.5 MB of SVG): PNG only
STYLE = {"font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "figure.titlesize": 8,
         "xtick.labelsize": 7, "ytick.labelsize": 7, "legend.fontsize": 7, "legend.title_fontsize": 7,
         "axes.linewidth": 0.6, "lines.linewidth": 1.0, "xtick.major.width": 0.6, "ytick.major.width": 0.6,
         "svg.fonttype": "none", "pdf.fonttype": 42, "ps.fonttype": 42}


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def styled(draw):
    """Run a figure function under :data:`STYLE` (and the Okabe-Ito cycle) from its first artist to its saved
    files: text sizes are taken when text is made, ``svg.fonttype`` when the file is written, so the style
    must hold for the figure's whole life."""

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        plt = _plt()
        with plt.rc_context({**STYLE, "axes.prop_cycle": plt.cycler(color=SERIES)}):
            return draw(*args, **kwargs)

    return wrapper


def new_figure(*args, **kwargs):
    """``plt.subplots`` with constrained layout (call it inside a :func:`styled` function)."""
    return _plt().subplots(*args, layout="constrained", **kwargs)


def save_figure(fig, path, caption: str | None = None, *, marks: int = 0, captions: bool = True) -> Path:
    """PNG (300 dpi) and the vector files beside it (:data:`FORMATS`; PNG only for a figure of more than
    :data:`VECTOR_MARKS` ``marks``: the caption says so, and vector files of that name from before are
    removed); the caption into ``captions.json`` of the folder (with ``captions``: a results folder's)."""
    from ..io.result_stamps import stamp_results

    path = Path(path)
    vector = marks <= VECTOR_MARKS
    for fmt in FORMATS if vector else FORMATS[:1]:
        fig.savefig(path.with_suffix(f".{fmt}"), dpi=DPI)
    if not vector:
        for fmt in FORMATS[1:]:
            path.with_suffix(f".{fmt}").unlink(missing_ok=True)
        caption = ((caption or "") + f" PNG only: a vector file of its {marks:,} marks would be large and slow "
                   "to open.").lstrip()  # (the sentence was glued to the caption's last: "range.PNG only")
    _plt().close(fig)
    if caption and captions:  # written and stamped as the figures: an edited captions.json is never replaced
        write_captions(path.parent, {path.stem: caption})
    # size and time of each file noted: one edited later (a paper's retouched SVG) is never replaced
    stamp_results([path.with_suffix(f".{fmt}") for fmt in FORMATS])
    return path


def seeded_sample(total: int, size: int, rng=0):
    """The indices (sorted) of a random sample of ``size`` of ``total`` objects, the same on every run for a seed
    ``rng``; all of them (``slice(None)``) where there are no more than ``size``: the figures of one mark per
    object draw at most that many."""
    import numpy as np

    if total <= size:
        return slice(None)
    return np.sort(np.random.default_rng(rng).choice(total, size=size, replace=False))


def no_objects(ax, note: str) -> None:
    """An empty plot that says why it is empty (``note``), with non-negative axes."""
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.text(0.5, 0.5, _wrap(note), transform=ax.transAxes, ha="center", va="center",
            bbox=dict(boxstyle="round", fc="white", ec="0.6", lw=0.6))


def _wrap(note: str, width: int = 38) -> str:
    """A note in lines that fit a single-column panel (text in the axes counts in the layout)."""
    import textwrap

    return textwrap.fill(note, width)


def format_fraction(v: float) -> str:
    """A fraction in [0, 1] with its digits: 3 decimals, or scientific below 0.001 (0 stays 0).

    >>> format_fraction(0.25), format_fraction(0.000159), format_fraction(0.0)
    ('0.250', '1.59e-04', '0')
    """
    if v == 0:
        return "0"
    return f"{v:.3f}" if abs(v) >= 1e-3 else f"{v:.2e}"

