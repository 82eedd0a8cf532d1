"""A combo box of the viewer's layers for the dock widgets, kept up to date as layers are added, removed,
reordered and renamed, and holding the layers themselves (not their names)."""

from __future__ import annotations

from qtpy.QtWidgets import QComboBox

NONE = "(none)"


def kind_of(layer) -> str:
    return type(layer).__name__.lower()


def prefer_analyzable(layers: list):
    """The layer Analyze offers first: the newest labels layer (a mask, a label image), else the newest image
    whose name says probability map or mask, else None (the first in the list). A gray scan read as a
    probability map finds nothing or a flood (napari review V7)."""
    for layer in reversed(layers):
        if kind_of(layer) == "labels":
            return layer
    for layer in reversed(layers):
        if any(word in layer.name.lower() for word in ("prob", "mask")):
            return layer
    return None


class LayerChoice(QComboBox):
    """The viewer's 3D layers of some kinds (``"image"``, ``"labels"``). :meth:`layer` is the chosen layer itself,
    or None where none is chosen or it has left the viewer. Until the user picks one, the choice follows
    ``prefer`` (a function of the candidate layers; None: the first)."""

    def __init__(self, viewer, kinds: tuple, optional: bool = False, prefer=None):
        super().__init__()
        self.viewer, self.kinds, self.optional, self.prefer = viewer, kinds, optional, prefer
        self._layers: list = []
        self._picked = False  # the user chose: keep that layer while it exists
        self.activated.connect(self._user_picked)
        viewer.layers.events.inserted.connect(self._inserted)
        viewer.layers.events.removed.connect(self._removed)
        viewer.layers.events.reordered.connect(self.refresh)
        for layer in viewer.layers:
            layer.events.name.connect(self.refresh)
        self.refresh()

    def _user_picked(self, *_):
        self._picked = True

    def _inserted(self, event):
        event.value.events.name.connect(self.refresh)
        self.refresh()

    def _removed(self, event):
        event.value.events.name.disconnect(self.refresh)
        self.refresh()

    def candidates(self) -> list:
        return [l for l in self.viewer.layers if kind_of(l) in self.kinds and l.ndim == 3]

    def others(self) -> list:
        """Layers of the kinds that are not 3D (a 2D image, a 4D stack): left out, and said so."""
        return [l for l in self.viewer.layers if kind_of(l) in self.kinds and l.ndim != 3]

    def refresh(self, *_):
        current = self.layer()
        layers = self.candidates()
        if current not in layers or not self._picked:
            self._picked = self._picked and current in layers
            if not self._picked:
                current = self.prefer(layers) if self.prefer else None
            if current is None and not self.optional and layers:
                current = layers[0]
        self.blockSignals(True)
        try:
            self.clear()
            self._layers = ([None] if self.optional else []) + layers
            self.addItems([NONE if l is None else l.name for l in self._layers])
            if current in self._layers:
                self.setCurrentIndex(self._layers.index(current))
        finally:
            self.blockSignals(False)

    def setCurrentText(self, text: str) -> None:  # noqa: N802 (Qt's name) - a choice made in code is the user's
        super().setCurrentText(text)
        self._picked = True

    def layer(self):
        i = self.currentIndex()
        if not 0 <= i < len(self._layers):
            return None
        layer = self._layers[i]
        return layer if layer is not None and layer in self.viewer.layers else None
