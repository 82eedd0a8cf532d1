"""The summary's units and what its volume fraction counts (review study S3, S9)."""

import json

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.objects import analyze


def _volume():
    v = np.zeros((20, 30, 30), np.uint8)
    v[3:6, 3:6, 3:6] = 1          # 27 voxels
    v[10:14, 10:14, 10:14] = 1    # 64 voxels
    v[0:4, 20:24, 20:24] = 1      # 64 voxels, touching the border
    return v


def test_sd_radius_nm_on_anisotropic_voxels():
    r = analyze(_volume(), voxel_size=(20.0, 10.0, 10.0))
    radii = np.asarray(r.population["equivalent_radius_nm"])
    assert r.summary["sd_radius_nm"] == pytest.approx(radii.std(ddof=1))
    assert r.summary["sd_radius_nm"] != pytest.approx(r.summary["sd_radius_vox"] * 10.0)
    assert analyze(_volume()).summary["sd_radius_nm"] is None  # no voxel size: not the voxel value in disguise


def test_density_per_voxel_without_voxel_size():
    s = analyze(_volume()).summary
    assert s["number_density_per_um3"] is None
    assert s["number_density_per_mvox"] == pytest.approx(2 / (20 * 30 * 30) * 1e6)
    assert "biased low" in s["number_density_note"]


def test_printed_line_gives_both_fractions_and_nm(tmp_path, capsys):
    np.save(tmp_path / "m.npy", _volume())
    assert main(["analyze", str(tmp_path / "m.npy"), "--csv", str(tmp_path / "o.csv"), "--voxel-size", "10", "10",
                 "10", "-q"]) == 0
    line = capsys.readouterr().out
    everything, kept = (27 + 64 + 64) / 18000, (27 + 64) / 18000
    assert f"volume fraction {everything:.3%} of the whole volume (every object voxel; {kept:.3%} in the kept " \
           "objects)" in line
    r = analyze(_volume(), voxel_size=(10.0, 10.0, 10.0)).summary
    assert f"mean radius {r['mean_radius_nm']:.2f} ± {r['sd_radius_nm']:.2f} nm ({r['mean_radius_vox']:.2f} ± " \
           f"{r['sd_radius_vox']:.2f} voxels)" in line
    c = r["number_density_corrected_per_um3"]
    assert f"number density {r['number_density_per_um3']:.4g} /µm³ (kept objects; {c:.4g} /µm³ with the " \
           "Miles-Lantuéjoul edge correction)" in line
    assert main(["analyze", str(tmp_path / "m.npy"), "--json", "-q"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["fraction_basis"].startswith("volume_fraction_all_objects (the phase's volume fraction)")


def test_report_names_what_each_fraction_counts(tmp_path):
    np.save(tmp_path / "m.npy", _volume())
    assert main(["analyze", str(tmp_path / "m.npy"), "--out", str(tmp_path / "r"), "--report", "--voxel-size", "10",
                 "10", "10", "-q"]) == 0
    text = (tmp_path / "r" / "report.html").read_text(encoding="utf-8")
    assert "every object voxel (the phase&#x27;s volume fraction)" in text or \
        "every object voxel (the phase's volume fraction)" in text
    assert "kept objects only" in text and "S.d. of the radius (nm)" in text and "biased low" in text
    s = json.loads((tmp_path / "r" / "summary.json").read_text(encoding="utf-8"))
    keys = list(s)
    assert keys.index("volume_fraction_all_objects") < keys.index("volume_fraction")


def test_printed_line_of_a_lab_scan_in_micrometres_and_per_cubic_millimetre(tmp_path, capsys):
    """Concrete at 50 µm voxels printed "mean radius 94271.61 ± 27280.48 nm" and "number density 1e-09 /µm³":
    the radius is now in the unit it reaches (µm), the density per mm³ where per µm³ it would be under 1e-4."""
    np.save(tmp_path / "m.npy", _volume())
    assert main(["analyze", str(tmp_path / "m.npy"), "--csv", str(tmp_path / "o.csv"), "--voxel-size", "50um",
                 "50um", "50um", "-q"]) == 0
    line = capsys.readouterr().out
    r = analyze(_volume(), voxel_size=(5e4, 5e4, 5e4)).summary
    assert f"mean radius {r['mean_radius_nm'] / 1e3:.2f} ± {r['sd_radius_nm'] / 1e3:.2f} µm " \
           f"({r['mean_radius_vox']:.2f} ± {r['sd_radius_vox']:.2f} voxels)" in line
    c = r["number_density_corrected_per_um3"]
    assert f"number density {r['number_density_per_um3'] * 1e9:.4g} /mm³ (kept objects; {c * 1e9:.4g} /mm³ with " \
           "the Miles-Lantuéjoul edge correction)" in line
    assert " nm" not in line and "e-0" not in line
