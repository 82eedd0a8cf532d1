"""--voxel-size against the voxel size the file records (review U1): it replaced the file's without a word, so
a micro-CT user typing µm as nm (3.25 for 3.25 µm) measured everything 1000x too small, and x y z typed for
Z Y X swapped the axes, silently."""

import json
import pickle
import warnings

import numpy as np
import pytest
import tifffile

from tomoseg.cli import main
from tomoseg.errors import TomosegNote, TomosegWarning
from tomoseg.io import open_volume


def _imagej(path, um_zyx):
    """An ImageJ stack as Fiji saves it, in µm (z from spacing, y and x from the resolution tags)."""
    z, y, x = um_zyx
    a = np.zeros((6, 20, 24), np.uint8)
    a[2:4, 8:12, 8:12] = 1
    tifffile.imwrite(path, a, imagej=True, resolution=(1 / x, 1 / y),
                     metadata={"axes": "ZYX", "spacing": z, "unit": "um"})
    return str(path)


def _said(path, voxel_size, *, keep_open=False):
    """The volume (closed unless ``keep_open``) and tomoseg's notes and warnings of opening it."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        vol = open_volume(path, voxel_size=voxel_size)
    if not keep_open:
        vol.close()
    return vol, [(w.category, str(w.message)) for w in caught
                 if issubclass(w.category, (TomosegNote, TomosegWarning))]


def test_micrometres_typed_as_nm_are_warned_with_the_spelling(tmp_path):
    path = _imagej(tmp_path / "ct.tif", (3.25, 3.25, 3.25))
    with open_volume(path) as vol:
        assert vol.voxel_size == pytest.approx((3250.0,) * 3)
    vol, said = _said(path, (3.25, 3.25, 3.25))  # plausible on its own (over 1 nm): no other warning
    assert vol.voxel_size == (3.25, 3.25, 3.25)  # the user's value is used, as documented
    assert [c for c, _ in said] == [TomosegWarning], said
    assert "1,000x smaller than the file's 3250 × 3250 × 3250 nm" in said[0][1]
    assert "--voxel-size 3.25um 3.25um 3.25um (or the nm: 3250 3250 3250)" in said[0][1]


def test_an_implausible_size_is_warned_once_and_the_files_size_is_a_note(tmp_path):
    """0.06 0.03 0.03 (µm typed as nm) on a 60x30x30 nm file: the implausibility warning already says to write
    0.06um (or 60 30 30); the comparison with the file's size is then a note, not a second warning with the same
    advice."""
    path = _imagej(tmp_path / "txm.tif", (0.06, 0.03, 0.03))
    vol, said = _said(path, (0.06, 0.03, 0.03))
    assert [c for c, _ in said] == [TomosegWarning, TomosegNote], said
    assert "implausible for X-ray tomography" in said[0][1] and "0.06um 0.03um 0.03um" in said[0][1]
    assert "replaces the file's 60 × 30 × 30 nm, 1,000x smaller (see the warning above)" in said[1][1]
    assert vol.voxel_size == (0.06, 0.03, 0.03)


def test_axes_in_reverse_order_are_warned(tmp_path):
    path = _imagej(tmp_path / "a.tif", (0.06, 0.03, 0.02))  # 60 × 30 × 20 nm
    _, said = _said(path, (20, 30, 60))
    assert [c for c, _ in said] == [TomosegWarning], said
    assert "the file's 60 × 30 × 20 nm in reverse order: --voxel-size is Z Y X" in said[0][1]
    assert "give --voxel-size 60 30 20 if the file is right" in said[0][1]


def test_a_correction_is_a_note_and_the_same_size_says_nothing(tmp_path):
    path = _imagej(tmp_path / "a.tif", (0.06, 0.03, 0.03))
    _, said = _said(path, (29.33, 29.33, 29.33))
    assert said == [(TomosegNote, f"{path}: --voxel-size 29.33 × 29.33 × 29.33 nm replaces the file's 60 × 30 × 30 nm")]
    assert _said(path, (60.00001, 30, 30))[1] == []  # µm rounding in one place, nm in another: the same
    np.save(tmp_path / "none.npy", np.zeros((4, 5, 6), np.uint8))
    assert _said(str(tmp_path / "none.npy"), (60, 30, 30))[1] == []  # a file without a voxel size: nothing replaced


def test_a_volume_opened_again_in_a_worker_does_not_say_it_again(tmp_path):
    vol, said = _said(_imagej(tmp_path / "a.tif", (0.06, 0.03, 0.03)), (50, 30, 30), keep_open=True)
    assert len(said) == 1
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = pickle.loads(pickle.dumps(vol))
    vol.close()
    again.close()
    assert again.voxel_size == (50, 30, 30)
    # tomoseg's own only: a ResourceWarning of another test's file, collected meanwhile, is no repeat
    assert not [w for w in caught if issubclass(w.category, (TomosegNote, TomosegWarning))]


def test_the_correction_is_kept_in_the_results_notes(tmp_path, capsys):
    path = _imagej(tmp_path / "ct.tif", (3.25, 3.25, 3.25))
    assert main(["analyze", path, "--voxel-size", "3.25", "3.25", "3.25", "--out", str(tmp_path / "o"),
                 "-q"]) == 0
    err = capsys.readouterr().err
    assert "tomoseg: warning: " in err and "1,000x smaller" in err
    notes = json.loads((tmp_path / "o" / "summary.json").read_text())["notes"]
    assert any(n.startswith("warning:") and "1,000x smaller" in n for n in notes), notes


def test_evaluate_and_track_say_it_too(tmp_path, capsys):
    """evaluate and track applied --voxel-size themselves, after opening the files without it: nothing said."""
    from tomoseg.io import write_volume
    from tomoseg.synthetic import make_phantom

    ph = make_phantom((24, 64, 64), rng=3)
    for name, data in (("img.tif", ph.image), ("lab.tif", ph.labels)):
        write_volume(str(tmp_path / name), data, voxel_size=(60.0, 30.0, 30.0))
    img, lab = str(tmp_path / "img.tif"), str(tmp_path / "lab.tif")
    assert main(["evaluate", lab, lab, "--voxel-size", "3.25", "3.25", "3.25", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"tomoseg: note: {lab}: --voxel-size 3.25 × 3.25 × 3.25 nm replaces the file's 60 × 30 × 30 nm" in err
    assert main(["track", img, img, "--before-labels", lab, "--after-labels", lab, "--transform",
                 _identity(tmp_path), "--out", str(tmp_path / "tr"), "--voxel-size", "30", "30", "60", "-q"]) == 0
    err = capsys.readouterr().err
    assert f"tomoseg: warning: {img}: --voxel-size 30 × 30 × 60 nm is the file's 60 × 30 × 30 nm in reverse order" in err


def _identity(tmp_path):
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"matrix": np.eye(4).tolist()}))
    return str(path)


def test_a_large_voxel_size_is_written_out_in_messages(tmp_path, capsys):
    """Sizes of a millimetre and more were written as 1e+06 and 1.23457e+06 (six digits: 1234567 and 1234600 nm
    read the same) in every message and in info (adversarial review VS1)."""
    from tomoseg.io import write_volume
    from tomoseg.io.units import voxel_size_text

    assert voxel_size_text((1e6, 1234567.0, 30.5)) == "1000000 × 1234567 × 30.5 nm"
    assert voxel_size_text((0.001, 29.33, 1e-5)) == "0.001 × 29.33 × 1e-05 nm"  # small ones as before
    p = tmp_path / "v.tif"
    write_volume(p, np.zeros((2, 4, 4), np.uint8), voxel_size=(30.0, 30.0, 30.0))
    assert main(["info", str(p), "--voxel-size", "1234567", "30", "30"]) == 0
    captured = capsys.readouterr()
    assert "voxel size    1234567 × 30 × 30 nm" in captured.out
    assert "--voxel-size 1234567 × 30 × 30 nm replaces the file's 30 × 30 × 30 nm" in captured.err


@pytest.mark.parametrize("values", [["1e10", "30", "30"], ["30", "30", "1e-5"]])
def test_the_possible_range_is_written_as_voxel_sizes_are(tmp_path, capsys, values):
    """The refusal of a voxel size past a picometre to a metre wrote its bounds as "0.001 nm to 1e+09 nm", the one
    number of a message not in voxel_size_text's style (adversarial review VS2)."""
    np.save(tmp_path / "v.npy", np.zeros((3, 4, 5), np.uint8))
    assert main(["info", str(tmp_path / "v.npy"), "--voxel-size", *values]) == 1
    err = capsys.readouterr().err
    assert "is outside 0.001 nm to 1000000000 nm (a picometre to a metre)" in err, err
    assert "e+" not in err, err
