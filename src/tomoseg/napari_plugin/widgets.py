"""napari dock widgets: segment an open image, analyze a mask, a table linked to the objects.

Work runs in a napari thread worker: the UI stays live, a progress bar moves
tile by tile, and the result arrives as new layers. The work is a generator that
yields between its units (Segment: each tile; Analyze: each step), so Cancel
(napari's ``worker.quit()``) stops it at the next unit and nothing is added;
closing the widget, its dock or the window that holds it cancels it too.
"""

from __future__ import annotations

import logging
import time
from functools import partial

import numpy as np
from qtpy.QtCore import QEvent
from qtpy.QtWidgets import (QAbstractItemView, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QProgressBar,
                            QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from ..errors import TomosegError
from ..io.units import voxel_size_text
from ..sample_mask import parse_roi
from .forms import OBJECTS_CHOICES, analyze_form, roi_from, segment_form, voxel_size_from
from .layers import (COLOUR_BY, MASK_COLORMAP, PLACEMENT_KEYS, analysis_steps, data_digest, layer_origin_nm, layer_roi,
                     level0, placement_like, roi_metadata, voxel_size_nm)
from .segmenting import collected, in_widget_terms, segment_steps

ERROR_COLOUR = "#d55e00"  # Okabe-Ito vermillion
WARNING_COLOUR = "#e69f00"  # Okabe-Ito orange
HEADERS = {"label": "label", "status": "TP/FP", "equivalent_radius_vox": "radius (vox)",
           "equivalent_radius_nm": "radius (nm)", "volume_vox": "volume (vox)", "sphericity_voxel": "sphericity",
           "mean_gray": "mean gray"}
log = logging.getLogger(__name__)


def _level0(layer):
    """The layer's full-resolution data, not read: the workers read it on their thread (``np.asarray`` there), so
    the UI stays live while a lazy layer is computed."""
    return level0(layer.data, getattr(layer, "multiscale", False))


def _add(viewer, layer_tuple, like=None):
    """Add a LayerDataTuple; with ``like``, placed exactly where ``like`` is (its scale, translate, rotate,
    shear, affine and units, :func:`~.layers.placement_like`), overriding the tuple's own placement."""
    data, kwargs, kind = layer_tuple
    kwargs = spherical_points(kwargs)
    if like is not None:
        for key in PLACEMENT_KEYS:
            kwargs.pop(key, None)
        kwargs.update(placement_like(like))
    return getattr(viewer, f"add_{kind}")(data, **kwargs)


def spherical_points(kwargs: dict) -> dict:
    """Points drawn as spheres cut by the slice (napari >= 0.9: ``projection_mode``; before: out-of-slice)."""
    kwargs = dict(kwargs)
    if kwargs.pop("metadata_spherical", False):
        from napari.layers.points._points_constants import PointsProjectionMode

        if hasattr(PointsProjectionMode, "RESCALE_SPHERICAL"):
            kwargs["projection_mode"] = "rescale_spherical"
        else:
            kwargs["out_of_slice_display"] = True
    return kwargs


def _quit(job: dict) -> None:
    """Ask the job's worker, if one runs, to stop at its next yield; the widget is not touched (it may be gone)."""
    worker = job.get("worker")
    if worker is not None:
        worker.quit()


class _Worker(QWidget):
    """Shared parts: Run and Cancel buttons, a progress bar with Mvox/s, a status line.

    While a job runs, Run is disabled and Cancel enabled; Cancel asks the worker to stop (``quit()``) at the
    work's next yield, and the widget returns to idle when the worker has finished, with no layer added. Closing
    the widget, taking it out of its dock (napari's dock close button) or deleting the window that holds it (a
    napari viewer closed) cancels the job the same way."""

    unit = "step"  # what the work yields after, for the status while cancelling

    def __init__(self, viewer):
        super().__init__()
        self.viewer = viewer
        self.worker = None
        self._job = {"worker": None}  # the running worker, for a slot that must not hold the widget
        self._cancelled = False
        self._failed = False
        self._last = None
        self.form = QFormLayout()
        self.run_button = QPushButton("Run")
        self.run_button.clicked.connect(self.run)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setToolTip(f"stop the running job after its current {self.unit}; no layers are added")
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.status = QLabel("")
        self.status.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        box = QVBoxLayout(self)
        box.addLayout(self.form)
        box.addLayout(buttons)
        box.addWidget(self.progress)
        box.addWidget(self.status)
        # the widget deleted (with the window that holds it) while a job runs: stop the job
        self.destroyed.connect(partial(_quit, self._job))

    def _start(self, function, *args, connect: dict | None = None, **kwargs):
        """Run the generator ``function`` in a thread worker; its return value goes to ``self._done`` unless the
        job was cancelled. Its errors go to :meth:`_errored` only: with an ``errored`` slot given, napari/superqt
        do not connect their own that re-raises the exception in Qt's event loop (a traceback and an error
        pop-up in napari; an abort of the process from a script)."""
        from napari.qt.threading import create_worker

        worker = create_worker(function, *args, _start_thread=False,
                               _connect={"errored": self._errored, "finished": self._finished,
                                         "returned": self._returned, **(connect or {})},
                               **kwargs)
        self.worker = self._job["worker"] = worker
        self._cancelled = self._failed = False
        self._last = None
        self._t0 = self._t_tiles = time.monotonic()
        self.status.setStyleSheet("")
        self.run_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        self.cancel_button.setEnabled(True)
        worker.start()
        return worker

    def cancel(self):
        """Stop the running job at its next yield (a tile, a step); nothing is added. Idle: nothing to do."""
        if self.worker is None or self._cancelled:
            return
        self._cancelled = True
        self.worker.quit()
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancelling...")
        self.status.setStyleSheet("")
        self.status.setText(f"cancelling: stops after the current {self.unit}")

    def _returned(self, result):
        if not self._cancelled:  # Cancel pressed after the work returned, before its result arrived: dropped
            self._done(result)

    def _finished(self):
        """Back to idle, after a result, an error or a cancel: Run enabled, Cancel disabled, a busy progress
        bar stopped; after a cancel the status says how far the job went."""
        self.worker = self._job["worker"] = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.cancel_button.setText("Cancel")
        if self.progress.maximum() == 0:
            self.progress.setRange(0, 1000)
            self.progress.setValue(0)
        if self._cancelled and not self._failed:
            self.progress.setValue(0)
            self.status.setText(f"cancelled after {time.monotonic() - self._t0:.1f} s"
                                + (f" ({self._reached()})" if self._last is not None else "")
                                + "; no layers added")

    def _reached(self) -> str:
        return str(self._last)

    def _words(self, text: str) -> str:
        """A TomosegError's text as the status says it (Segment: its settings for the CLI's flags)."""
        return text

    def _say(self, text: str, colour: str = "") -> None:
        """The status line (lines), in ``colour`` (an error's, a warning's; "" the default)."""
        self.status.setStyleSheet(f"color: {colour}" if colour else "")
        self.status.setText(text)

    def closeEvent(self, event):
        """Closing the widget cancels its job."""
        self.cancel()
        super().closeEvent(event)

    def event(self, event):
        """Taken out of its parent (napari's dock close button: ``setParent(None)``, no close event): cancel."""
        if event.type() == QEvent.Type.ParentChange and self.parent() is None:
            self.cancel()
        return super().event(event)

    def _errored(self, exc):
        """One line in the status: a TomosegError's own text (a user's mistake: no traceback); another exception
        by its type and text, its traceback logged."""
        from ..errors import TomosegError

        if isinstance(exc, TomosegError):
            text = self._words(str(exc))
        elif isinstance(exc, MemoryError):
            text = ("not enough memory to hold this layer and its results in napari; segment or analyze it with "
                    "the tomoseg command (it streams the volume to a .ome.zarr), then open the result")
        else:
            log.error("tomoseg: %s failed", type(self).__name__, exc_info=(type(exc), exc, exc.__traceback__))
            text = f"{type(exc).__name__}: {exc} (traceback in the console)"
        self._failed = True
        self.status.setStyleSheet(f"color: {ERROR_COLOUR}")
        self.status.setText("error: " + " ".join(text.split()))

    def _step(self, value):
        self._last = value
        if self._cancelled:  # the status says "cancelling" until the worker stops
            return
        done, total = value
        self.progress.setValue(int(1000 * done / max(total, 1)))
        now = time.monotonic()
        if not done:  # reading, loading the model, the statistics: the rate counts from the tiles' start
            self._t_tiles = now
        dt = now - self._t_tiles
        rate = done / dt / 1e6 if dt > 0 and done else 0
        left = (total - done) / (done / dt) if done and dt > 0 else float("nan")
        self.status.setText(f"{done / 1e6:.2f} of {total / 1e6:.2f} Mvox, {rate:.2f} Mvox/s"
                            + ("" if left != left else f", about {left:.0f} s left"))


class SegmentWidget(_Worker):
    """Segment the chosen image layer with the default model or a model file."""

    unit = "tile"

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        segment_form(self)

    def run(self):
        layer = self.image.layer()
        if layer is None:
            return self._say(_nothing_to_take(self.image, "Segment", "an image (a 3D volume)"), ERROR_COLOUR)
        try:
            options = self._options(tuple(_level0(layer).shape))
        except ValueError as exc:  # the fill value: not a number
            return self._say(f"error: {exc}", ERROR_COLOUR)
        except TomosegError as exc:  # the command line's checks, in the widget's terms
            return self._say("error: " + in_widget_terms(str(exc)), ERROR_COLOUR)
        self._source = layer
        self._threshold = options.threshold  # as it was at Run: a change during the run applies next time
        self._roi = None if options.roi is None else parse_roi(options.roi, tuple(_level0(layer).shape))
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        return self._start(_segment_layers, _level0(layer), self.model.text().strip() or None, name=layer.name,
                           voxel_size=voxel_size_nm(layer), options=options, connect={"yielded": self._step})

    def _options(self, shape):
        """The form as ``tomoseg segment``'s options, checked by the command line's own checks (SegmentOptions',
        the ROI's parser, the backend's resolution) before any work starts."""
        from ..inference import BackendConfig, SegmentOptions, TilingConfig
        from ..inference.backends import resolve

        fill = self.fill_value.text().strip()
        try:
            fill_value = float(fill) if fill else None
        except ValueError:
            raise ValueError(f"fill value {fill!r} is not a number: give the gray value that means no data "
                             "(e.g. -32768), or leave it empty") from None
        backend = BackendConfig(backend=self.backend.currentText(), device=self.device.currentText(),
                                precision=self.precision.currentText())
        resolve(backend)
        return SegmentOptions(threshold=self.threshold.value(), objects=OBJECTS_CHOICES[self.objects.currentText()],
                              fill_value=fill_value, backend=backend, roi=roi_from(self.roi.text(), shape),
                              tiling=TilingConfig(tile_size=self.tile_size.value() or None, halo=self.halo.value()),
                              sample_mask="auto" if self.sample_mask.isChecked() else "off")

    def _words(self, text: str) -> str:
        return in_widget_terms(text)

    def _reached(self) -> str:
        done, total = self._last
        return f"{done / 1e6:.2f} of {total / 1e6:.2f} Mvox segmented"

    def _done(self, result):
        p8, mask, messages, record, digests = result
        layer = self._source
        segmented_in = roi_metadata(self._roi) if self._roi else {"tomoseg": {}}  # Analyze analyses that box
        # the run's record, written beside the file where the layer is saved (writer.py), as segment writes it
        meta = {"tomoseg": {**segmented_in["tomoseg"], "segment": record, "digest": digests[0]}}
        mask_meta = {"tomoseg": {**segmented_in["tomoseg"], "segment": {**record, "written": "mask"},
                                 "digest": digests[1]}}
        _add(self.viewer, (p8, {"name": f"{layer.name} probability", "colormap": "magma",
                                "contrast_limits": (0, 255), "blending": "additive", "visible": False,
                                "metadata": meta}, "image"), like=layer)
        _add(self.viewer, (mask, {"name": f"{layer.name} mask", "opacity": 0.6, "colormap": MASK_COLORMAP,
                                  "metadata": mask_meta}, "labels"), like=layer)
        dt = time.monotonic() - self._t0
        text = (f"done in {dt:.1f} s ({p8.size / 1e6 / max(dt, 1e-9):.2f} Mvox/s): probability (0-255) and mask "
                f"(> {self._threshold}) added")
        # the notes and warnings tomoseg segment prints for these data, one a line, in a warning colour
        warned = any(m.startswith("warning: ") for m in messages)
        self._say("\n".join([text, *messages]), WARNING_COLOUR if warned else "")


def _segment_layers(image, model=None, **kwargs):
    """:func:`.segmenting.segment_steps`, then what the Segment widget adds as layers, on the worker's thread, not
    napari's: the mask (> the run's threshold) and both layers' digests (whether they are saved unedited:
    writer.py). Returns ``(probability, mask, messages, record, (probability digest, mask digest))``."""
    p8, messages, record = yield from segment_steps(image, model, **kwargs)
    mask = (p8 > record["threshold"]).astype(np.uint8)
    return p8, mask, messages, record, (data_digest(p8), data_digest(mask))


class AnalyzeWidget(_Worker):
    """Label and measure the objects of a mask or probability layer; colour them; mark TP/FP/FN against truth."""

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        analyze_form(self)
        self.table = QTableWidget()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.table.itemSelectionChanged.connect(self._jump)
        self.layout().addWidget(self.table)
        # the whole table (every column of tomoseg analyze --csv, units in the names), not napari's layer features
        self.save = QPushButton("Save table as CSV...")
        self.save.setToolTip("the objects table as tomoseg analyze --csv writes it: every column, nm where the "
                             "layer's voxel size is known")
        self.save.setEnabled(False)
        self.save.clicked.connect(self._save_dialog)
        self.layout().addWidget(self.save)
        self.objects = None
        self.layers = []

    def run(self):
        from ..objects import AnalysisOptions

        src = self.source.layer()
        if src is None:
            return self._say(_nothing_to_take(self.source, "Analyze", "a mask or probability map (3D)"),
                             ERROR_COLOUR)
        layers = {"gray image": self.intensity.layer(), "probability map": self.probability.layer(),
                  "sample mask": self.sample_mask.layer(), "ground truth": self.truth.layer()}
        shape = tuple(_level0(src).shape)
        for what, other in layers.items():
            if other is not None and tuple(_level0(other).shape) != shape:
                return self._say(f"error: the {what} {other.name!r} is {_dims(_level0(other).shape)} voxels, "
                                 f"{src.name!r} {_dims(shape)}: choose layers of the same shape", ERROR_COLOUR)
        self._notes = []
        try:  # the command line's checks, before the work
            with collected(self._notes):  # an implausible voxel size: a warning under the result
                given = voxel_size_from(self.voxel_size.text())
                _say_replaced(voxel_size_nm(src), given, src.name)
            options = AnalysisOptions(threshold=self.threshold.value(), min_voxels=self.min_voxels.value(),
                                      exclude_border=not self.keep_border.isChecked(),
                                      connectivity=int(self.connectivity.currentText()),
                                      read_as=self.read_as.currentText())
        except TomosegError as exc:
            return self._say("error: " + " ".join(str(exc).split()), ERROR_COLOUR)
        self._source = src
        gray = layers["gray image"]
        from_gray = None if given or voxel_size_nm(src) or gray is None else voxel_size_nm(gray)
        self._voxel_size = given or voxel_size_nm(src) or from_gray  # as the CLI: the map's, else the gray image's
        self._voxel_size_from = "given" if given else f"the gray image {gray.name!r}'s scale" if from_gray else \
            "the layer's scale"
        # where the layer puts voxel (0, 0, 0) (its translate: the file's origin), from which tomoseg analyze counts
        # the centroid_*_nm columns too; none without a voxel size, as the CLI
        self._origin = layer_origin_nm(src) if self._voxel_size else None
        # the box the layer was segmented in (segment --roi, Segment's ROI), as tomoseg analyze reads it
        self._roi = None if self.no_roi.isChecked() else layer_roi(src, shape)
        self.progress.setRange(0, 0)  # busy
        data = {key: None if layer is None else _level0(layer) for key, layer in
                zip(("intensity", "probability", "sample_mask", "truth"), layers.values())}
        return self._start(analyze_layer, _level0(src), src.name, **data, options=options,
                           voxel_size=self._voxel_size, color_by=COLOUR_BY[self.color_by.currentText()],
                           roi=self._roi, origin=self._origin, connect={"yielded": self._phase})

    def _phase(self, text):
        self._last = text
        if not self._cancelled:
            self.status.setText(f"{text}...")

    def _reached(self) -> str:
        return f"last step: {self._last}"

    def _done(self, result):
        layers, table, counts = result
        self.progress.setRange(0, 1000)
        self.progress.setValue(1000)
        # earlier results stay: the user may have edited them (painted, erased, renumbered) or be analyzing one of
        # them now; napari names the new layers apart ("objects [1]") and the status says which they are
        self.layers = [_add(self.viewer, t, like=self._source) for t in layers]
        renamed = [new.name for (_, kw, _), new in zip(layers, self.layers) if new.name != kw["name"]]
        self.objects = table
        self.save.setEnabled(True)
        self._fill_table(table, layers)
        text = f"{counts['objects']} objects in {time.monotonic() - self._t0:.1f} s ({counts['read as']})"
        if "TP" in counts:
            text += f"; TP {counts['TP']}, FP {counts['FP']}, FN {counts['FN']}"
        if self._voxel_size is None:
            units = "/".join(sorted({str(u) for u in getattr(self._source, "units", ())})) or "none"
            text += (f"; voxel size unknown (layer units: {units}): the nm columns are empty; give a voxel size "
                     "(nm) to fill them")
        else:
            text += f"; voxel size {voxel_size_text(self._voxel_size)} ({self._voxel_size_from})"
        if self._roi is not None:
            box = ",".join(f"{a}:{b}" for a, b in self._roi)
            text += (f"; analysed inside the box {box} it was segmented in (objects touching its faces left out, "
                     "fractions over the box; tick 'whole volume' to analyse all of it)")
        if renamed:
            text += "; earlier results are kept, the new ones are " + ", ".join(repr(n) for n in renamed)
        warnings = self._notes + counts.get("warnings", [])
        self._say("\n".join([text, *warnings]), WARNING_COLOUR if warnings else "")

    def _save_dialog(self):
        from qtpy.QtWidgets import QFileDialog

        path, _ = QFileDialog.getSaveFileName(self, "Save the objects table", "objects.csv", "CSV table (*.csv)")
        if path:
            self.save_table(path)

    def save_table(self, path) -> bool:
        """Write the objects table to ``path`` as ``tomoseg analyze --csv`` does: its checks (a .csv name; an
        existing file replaced only if it is an objects table of tomoseg's that nobody edited since), atomic, and
        stamped. Says what happened in the status; returns whether it was written."""
        from ..errors import TomosegError
        from ..io.output_guard import check_table_output
        from ..table import write_csv

        if self.objects is None:
            self._say("error: run Analyze first: there is no objects table to save", ERROR_COLOUR)
            return False
        try:
            check_table_output(path, overwrite=True)  # the file dialog asked before replacing
            write_csv(self.objects, path, overwrite=True)
        except (TomosegError, OSError) as exc:
            self._say(f"error: {exc}".replace("pass --overwrite to replace it", "choose another name"),
                      ERROR_COLOUR)
            return False
        self._say(f"saved {len(self.objects['label'])} objects ({len(self.objects)} columns) to {path}")
        return True

    def _fill_table(self, table, layers):
        from .layers import TABLE_COLUMNS

        cols = [c for c in TABLE_COLUMNS if c in table and not c.startswith("centroid")]
        status = {}
        for data, kw, _ in layers:
            feats = kw.get("features", {})
            if "status" in feats:
                status = {int(l): s for l, s in zip(feats["label"], feats["status"]) if s != "FN"}
        if status:  # beside the label, visible in a dock of normal width (napari review V12)
            cols.insert(1, "status")
        # refilled with no selection and no signals: the old selection's row index would be read against the new
        # table (an IndexError, or a jump to an unrelated object: napari review V6)
        self.table.blockSignals(True)
        try:
            self.table.clearSelection()
            self._fill(table, cols, status)
        finally:
            self.table.blockSignals(False)

    def _fill(self, table, cols, status):
        self.table.setRowCount(0)
        self.table.setColumnCount(len(cols))
        for j, c in enumerate(cols):  # the header in words with its unit; the column's name in its tooltip
            item = QTableWidgetItem(HEADERS.get(c, c))
            item.setToolTip(f"{c} (the column of objects.csv)" if c != "status" else
                            "TP: matches a true object; FP: matches none (false positive)")
            self.table.setHorizontalHeaderItem(j, item)
        n = len(table["label"])
        self.table.setRowCount(n)
        for i in range(n):
            for j, c in enumerate(cols):
                v = status.get(int(table["label"][i]), "") if c == "status" else table[c][i]
                text = f"{v:.3g}" if isinstance(v, (float, np.floating)) else str(v)
                self.table.setItem(i, j, QTableWidgetItem(text))

    def _jump(self):
        """Select a row: go to the object's slice, centre it, select it in the layers."""
        rows = {i.row() for i in self.table.selectedIndexes()}
        if not rows or self.objects is None:
            return
        i = rows.pop()
        t = self.objects
        if not i < len(t["label"]) or not self.layers or self.layers[0] not in self.viewer.layers:
            return  # a row of an older table, or the objects layer removed: nothing to go to
        labels_layer = self.layers[0]
        voxel = np.array([t[f"centroid_{a}"][i] for a in "zyx"], float)
        centre = np.asarray(labels_layer.data_to_world(voxel), float)  # the layer's whole transform
        self.viewer.dims.set_point(0, float(centre[0]))
        scene = getattr(self.viewer, "scene", None)  # napari >= 0.9 moved the camera to viewer.scene
        camera = scene.camera if scene is not None and hasattr(scene, "camera") else self.viewer.camera
        camera.center = tuple(float(c) for c in centre)
        labels_layer.selected_label = int(t["label"][i])
        if len(self.layers) > 1 and self.layers[1] in self.viewer.layers:
            self.layers[1].selected_data = {i}


def _nothing_to_take(choice, widget: str, what: str) -> str:
    """Why there is no layer to run on: none open, the one chosen gone, or only layers that are not 3D."""
    if choice.count() and choice.currentText() not in ("", "(none)"):
        return f"error: the layer {choice.currentText()!r} is no longer in the viewer: choose another"
    flat = choice.others()
    if flat:
        named = ", ".join(f"{l.name!r} ({l.ndim}D)" for l in flat[:3])
        return (f"error: {widget} takes 3D volumes (z, y, x); {named} {'is' if len(flat) == 1 else 'are'} not 3D: "
                "open a volume (a stack of slices)")
    return f"open {what} first"


def _dims(shape) -> str:
    return " x ".join(str(int(n)) for n in shape)


def analyze_layer(volume, name: str, *, options=None, **kwargs):
    """Generator: :func:`~.layers.analysis_steps` for a layer's data, on the worker's thread: reads the data here
    (a lazy layer too), refuses what ``tomoseg analyze`` refuses (a float map in [0, 1], object IDs stored as
    uint8, values beyond 255 that are not object IDs: :func:`~tomoseg.objects.reading.read_as`, the CLI's
    messages), and says in ``counts["read as"]`` how the volume was read, as the CLI's note says it: a
    probability map (object where > the threshold), a mask or a label image (nonzero = object). Yields the step
    it starts (where Cancel takes effect); returns (layers, table, counts)."""
    from ..objects import AnalysisOptions
    from ..objects.large_regions import large_regions_warning
    from ..objects.reading import read_as

    options = options or AnalysisOptions()
    yield "reading the layer"
    volume = np.asarray(volume)
    reading = read_as(volume, options.read_as, where=f"layer {name!r}", command="Analyze")
    layers, table, counts = yield from analysis_steps(volume, options=options, **kwargs)
    counts["read as"] = reading.note(options.threshold)
    counts["warnings"] = gray_image_warning(volume, name, reading, options)
    pieces = large_regions_warning(counts.get("large_dark_regions"), counts["objects"])
    if pieces:  # analyze's warning of a large pore found in pieces (review S8), under the result
        counts["warnings"].append(f"warning: {pieces}")
    return layers, table, counts


def gray_image_warning(volume, name: str, reading, options) -> list[str]:
    """A warning where a layer read as a probability map by the values alone (auto) has more of its voxels above
    the threshold than a flooded map (``segment``'s flooding check): a gray scan of 0-255 is read so by the CLI's
    rule too, and gives no objects or one flood (napari review V7)."""
    from ..inference.domain import FLOOD_FRACTION

    if reading.kind != "probability" or options.read_as != "auto" or not volume.size:
        return []
    share = np.count_nonzero(volume > options.threshold) / volume.size
    if share <= FLOOD_FRACTION:
        return []
    return [f"warning: {share:.0%} of the voxels of layer {name!r} are above {options.threshold}: a gray image "
            "rather than a probability map? Choose Segment's probability map or mask as 'mask or probability' (or "
            "read as: probability, if this is one)"]


def _say_replaced(scale_nm, given, name: str) -> None:
    """The field's voxel size against the layer's scale, as ``--voxel-size`` against a file's (review U1): a
    factor near 1000 or the scale in reverse order is a warning, another size a note (shown under the result)."""
    from ..errors import note, warn
    from ..io.voxel_sizes import override_message

    said = override_message(scale_nm, given, f"layer {name!r}", option="voxel size", source="the layer")
    if said:
        (warn if said[0] == "warning" else note)(said[1])
