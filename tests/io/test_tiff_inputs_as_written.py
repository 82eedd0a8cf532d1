"""TIFF inputs as ImageJ, Fiji, tifffile and Pillow write them (review of the readers: IN2, IN3, IN5, IN6, IN10).

Every file here is written by tifffile (or Pillow) the way the producer writes it; each test failed on the tree
before its fix."""

import warnings

import numpy as np
import pytest
import tifffile

from tomoseg.errors import TomosegError, TomosegNote, TomosegWarning
from tomoseg.io import open_volume, write_volume


@pytest.fixture
def vol():
    return np.random.default_rng(0).integers(0, 250, (12, 16, 20), dtype=np.uint16)


def _open(path, **kwargs):
    """The volume and the notes said while opening it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TomosegNote)
        v = open_volume(str(path), **kwargs)
    return v, [str(w.message) for w in caught if issubclass(w.category, TomosegNote)]


# IN2: the z spacing of ImageJ stacks and folders of slices


def test_imagej_stack_without_spacing_has_fiji_depth_of_one_unit_with_a_note(tmp_path, vol):
    """ImageJ writes ``spacing=`` only when the voxel depth is not 1 (FileSaver.getDescriptionString), and Fiji
    reads a stack without it as 1.0 of its unit in z. tomoseg took z = x (650 nm) without a word."""
    p = tmp_path / "ij_depth1.tif"
    tifffile.imwrite(p, vol, description="ImageJ=1.54f\nimages=12\nslices=12\nunit=micron\nloop=false\n",
                     resolution=(1 / 0.65, 1 / 0.65), metadata=None)
    v, notes = _open(p)
    with v:
        assert v.voxel_size == pytest.approx((1000.0, 650.0, 650.0))
    assert any("no z spacing" in n and "1 micron" in n and "--voxel-size" in n for n in notes), notes
    v, notes = _open(p, voxel_size=(700.0, 650.0, 650.0))  # given: nothing assumed, nothing said
    with v:
        assert v.voxel_size == (700.0, 650.0, 650.0)
    assert not any("z spacing" in n for n in notes)


def test_imagej_stack_with_spacing_says_nothing(tmp_path, vol):
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, vol, imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                     metadata={"spacing": 0.7, "unit": "um", "axes": "ZYX"})
    v, notes = _open(p)
    with v:
        assert v.voxel_size == pytest.approx((700.0, 650.0, 650.0))
    assert not any("z spacing" in n for n in notes)


def test_folder_of_imagej_slices_takes_z_equal_to_x_as_fiji_with_a_note(tmp_path, vol):
    """2D slices never carry a spacing; Fiji's Image Sequence sets the depth to the pixel width. tomoseg did the
    same, silently; a folder tomoseg wrote carries its z and gets no note."""
    folder = tmp_path / "slices"
    folder.mkdir()
    for z in range(len(vol)):
        tifffile.imwrite(folder / f"rec_{z:04d}.tif", vol[z], imagej=True, resolution=(1 / 0.65, 1 / 0.65),
                         metadata={"unit": "um"})
    v, notes = _open(folder)
    with v:
        assert v.voxel_size == pytest.approx((650.0, 650.0, 650.0))
    assert any("no z spacing" in n and "z taken equal to x (650 nm)" in n and "--voxel-size" in n for n in notes)
    ours = tmp_path / "ours"
    write_volume(str(ours), vol, voxel_size=(40.0, 30.0, 30.0))  # no extension: a folder of slices
    v, notes = _open(ours)
    with v:
        assert v.voxel_size == pytest.approx((40.0, 30.0, 30.0))
    assert not any("z spacing" in n for n in notes)


# IN10: resolution tags in pixels per centimetre (ResolutionUnit 3)


def test_slices_with_resolution_in_pixels_per_cm_are_read(tmp_path, vol):
    folder = tmp_path / "cm"
    folder.mkdir()
    for z in range(len(vol)):
        tifffile.imwrite(folder / f"s_{z:03d}.tif", vol[z], resolution=(1e4 / 0.65, 1e4 / 0.65),
                         resolutionunit="CENTIMETER")
    v, notes = _open(folder)
    with v:
        assert v.voxel_size == pytest.approx((650.0, 650.0, 650.0))
    assert any("z taken equal to x" in n for n in notes)


def test_stack_with_resolution_in_pixels_per_cm_names_x_and_y_and_leaves_z_to_the_user(tmp_path, vol):
    p = tmp_path / "rescm.tif"
    tifffile.imwrite(p, vol, resolution=(1e4 / 0.65, 1e4 / 0.5), resolutionunit="CENTIMETER", metadata=None)
    v, notes = _open(p)
    with v:
        assert v.voxel_size is None  # a plain stack gives no z (Fiji would take 1 cm)
    assert any("y 500 nm and x 650 nm" in n and "--voxel-size Z 500 650" in n for n in notes), notes
    with open_volume(str(p), voxel_size=(650.0, 500.0, 650.0)) as v:
        assert v.voxel_size == (650.0, 500.0, 650.0)


def test_tomoseg_bigtiff_resolution_tags_in_cm_round_trip(tmp_path, vol, monkeypatch):
    """tomoseg writes pixels per centimetre into its BigTIFF outputs for plain TIFF readers; read back, they
    give x and y even where the OME-XML is gone (a tool that rewrote the description)."""
    from tomoseg.io import tiff

    monkeypatch.setattr(tiff, "BIGTIFF_BYTES", 1000)
    p = tmp_path / "big.tif"
    write_volume(str(p), vol, voxel_size=(40.0, 31.0, 29.33))
    with open_volume(str(p)) as v:
        assert v.voxel_size == pytest.approx((40.0, 31.0, 29.33))
    tifffile.tiffcomment(p, "a description without OME-XML")
    v, notes = _open(p)
    with v:
        assert v.voxel_size is None
        np.testing.assert_array_equal(v.read(), vol)
    assert any("y 31 nm and x 29.33 nm" in n for n in notes), notes


# IN3: WhiteIsZero


def test_white_is_zero_is_read_as_stored_with_a_warning(tmp_path, vol):
    """Viewers show a MINISWHITE TIFF inverted; tomoseg reads the stored values (as tifffile, and Fiji's
    measurements), and now says so, with --objects bright: its histogram warning blamed the objects."""
    p = tmp_path / "mw.tif"
    data = vol.astype(np.uint8)
    tifffile.imwrite(p, data, photometric="miniswhite")
    with pytest.warns(TomosegWarning, match=r"WhiteIsZero .*--objects bright"):
        v = open_volume(str(p))
    with v:
        np.testing.assert_array_equal(v.read(), data)
    folder = tmp_path / "mw_slices"
    folder.mkdir()
    for z in range(len(data)):
        tifffile.imwrite(folder / f"s_{z:03d}.tif", data[z], photometric="miniswhite")
    with pytest.warns(TomosegWarning, match="WhiteIsZero"):
        open_volume(str(folder)).close()


# IN5: a page of another type or size among a stack's pages


def _pages(path, pages, **kwargs):
    with tifffile.TiffWriter(path) as w:
        for page in pages:
            w.write(page, **kwargs)


@pytest.mark.parametrize("metadata", [{}, {"metadata": None}], ids=["tifffile", "plain"])
def test_a_page_of_another_type_is_named(tmp_path, vol, metadata):
    """Written page by page, the stack was called 'a 2D image'; a plain file was read without page 7, the
    slices above it one too low (a note only said it held two images)."""
    p = tmp_path / "mixed.tif"
    _pages(p, [vol[z].astype(np.float32) if z == 7 else vol[z] for z in range(12)], **metadata)
    with pytest.raises(TomosegError, match=r"mixed.tif: page 7 of its 12 pages \(counting from 0\) is float32, "
                                           r"the other pages uint16; all pages of a stack must have the same"):
        open_volume(str(p))


@pytest.mark.parametrize("writer", ["tifffile", "plain", "pillow"])
def test_a_page_of_another_size_is_named(tmp_path, vol, writer):
    p = tmp_path / "narrow.tif"
    pages = [vol[z, :, :-1] if z == 3 else vol[z] for z in range(12)]
    if writer == "pillow":
        from PIL import Image

        images = [Image.fromarray(page.astype(np.uint8)) for page in pages]
        images[0].save(p, save_all=True, append_images=images[1:])
    else:
        _pages(p, pages, **({"metadata": None} if writer == "plain" else {}))
    with pytest.raises(TomosegError, match=r"page 3 of its 12 pages \(counting from 0\) has shape \(16, 19\), the "
                                           r"other pages \(16, 20\)"):
        open_volume(str(p))


def test_a_trailing_preview_page_is_still_left_to_the_choice_of_series(tmp_path, vol):
    p = tmp_path / "preview.tif"
    _pages(p, [vol[z] for z in range(12)] + [vol[0, ::4, ::4]], metadata=None)
    with open_volume(str(p)) as v:
        np.testing.assert_array_equal(v.read(), vol)
        assert "series 0, the largest, is read" in v.notes[0]


# IN6: channels and time points


def test_2d_composite_of_channels_is_refused(tmp_path, vol):
    """An ImageJ 2-channel composite was read as a volume of two slices, without a word."""
    p = tmp_path / "cyx.tif"
    tifffile.imwrite(p, vol[:2].astype(np.uint8), imagej=True, metadata={"axes": "CYX", "mode": "composite"})
    with pytest.raises(TomosegError, match=r"cyx.tif: is a 2D image of 2 channels .*not a volume"):
        open_volume(str(p))


@pytest.mark.parametrize("axes,kind", [("TYX", "time points"), ("CYX", "channels")])
def test_2d_time_points_or_gray_channels_are_read_as_slices_with_a_note(tmp_path, vol, axes, kind):
    """Time points, and channels in grayscale mode (what tifffile's imagej=True makes of a 3D array written
    without axes), are read as z slices as before, now with a note."""
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, vol.astype(np.uint8), imagej=True, metadata={"axes": axes})
    v, notes = _open(p)
    with v:
        assert v.shape == vol.shape
    assert any(f"12 {kind} (axes {axes}) are read as z slices" in n for n in notes), notes


@pytest.mark.parametrize("kind", ["imagej", "ome"])
def test_4d_stack_with_channels_names_them_and_how_to_keep_one(tmp_path, vol, kind):
    """'has 4 dimensions (12, 2, 16, 20)' said neither that the extra axis holds channels nor what to do."""
    p = tmp_path / f"c.{kind}.tif"
    if kind == "imagej":
        tifffile.imwrite(p, np.stack([vol, vol], 1), imagej=True, metadata={"axes": "ZCYX"})
        dims, index = "12 z × 2 channels × 16 y × 20 x \\(axes ZCYX\\)", r"\[:, 0\]"
    else:
        tifffile.imwrite(p, np.stack([vol, vol]), ome=True, metadata={"axes": "CZYX"})
        dims, index = "2 channels × 12 z × 16 y × 20 x \\(axes CZYX\\)", r"\[0, :\]"
    with pytest.raises(TomosegError, match=f"holds {dims}; tomoseg needs one 3D volume .*Split Channels.*{index}"):
        open_volume(str(p))


def test_info_json_lists_the_assumed_z_spacing(tmp_path, vol, capsys):
    """`tomoseg info --json` carries the note a script reads (it went to stderr only), unless --voxel-size is given."""
    import json

    from tomoseg.cli import main

    p = tmp_path / "ij_depth1.tif"
    tifffile.imwrite(p, vol, description="ImageJ=1.54f\nimages=12\nslices=12\nunit=micron\nloop=false\n",
                     resolution=(1 / 0.65, 1 / 0.65), metadata=None)
    assert main(["info", str(p), "--json"]) == 0
    notes = json.loads(capsys.readouterr().out)["notes"]
    assert any("no z spacing" in n and "--voxel-size" in n for n in notes), notes
    assert main(["info", str(p), "--json", "--voxel-size", "700", "650", "650"]) == 0
    assert not any("z spacing" in n for n in json.loads(capsys.readouterr().out)["notes"])


def _fiji_cyx(path, vol):
    """12 gray channels as Fiji saves them (its own ImageJ version in the description; tifffile writes 1.11a)."""
    tifffile.imwrite(path, vol.astype(np.uint8), description="ImageJ=1.54f\nimages=12\nchannels=12\nhyperstack=true\n"
                     "mode=grayscale\nloop=false\n", metadata=None)


@pytest.mark.parametrize("writer, said", [
    ("tifffile", "tifffile's imagej=True writes a 3D array as channels"),
    ("fiji", "Fiji shows them as channels; if they are z slices, set Slices (z) to 12 and Channels to 1 in "
             "Image > Properties and save again"),
    ("ome", "its OME metadata gives 12 channels and 1 z plane"),
])
def test_rd9_the_channels_note_names_the_files_own_writer(tmp_path, vol, writer, said):
    """Review readers2 RD9: the note blamed tifffile's imagej=True for every file, Fiji's and OME-TIFFs too."""
    p = tmp_path / "c.tif"
    if writer == "tifffile":
        tifffile.imwrite(p, vol.astype(np.uint8), imagej=True, metadata={"axes": "CYX"})
    elif writer == "fiji":
        _fiji_cyx(p, vol)
    else:
        tifffile.imwrite(p, vol.astype(np.uint8), ome=True, metadata={"axes": "CYX"})
    v, notes = _open(p)
    with v:
        np.testing.assert_array_equal(v.read(), vol.astype(np.uint8))
    note = next(n for n in notes if "12 channels (axes CYX) are read as z slices" in n)
    assert said in note
    if writer != "tifffile":
        assert "tifffile" not in note
