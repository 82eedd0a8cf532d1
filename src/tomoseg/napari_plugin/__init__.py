"""napari plugin (npe2): open tomoseg's outputs, segment and analyze open layers, see objects and errors.

Install with ``pip install "tomoseg[napari]"``; napari finds the plugin through the
``napari.manifest`` entry point (``napari.yaml`` beside this file). The layer
builders in :mod:`.layers` need neither napari nor Qt; the widgets in
:mod:`.widgets` import them only when napari builds them.
"""
