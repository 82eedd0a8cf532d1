"""The look review (real CT: a lab scan of cement, a binned concrete scan at 50 µm voxels): what a scientist
sees in the report's tables and the figures' legends and axes."""

import json


from tomoseg.report import build_report


def test_report_writes_one_column_of_large_numbers_in_one_format(tmp_path):
    """Concrete at 50 µm voxels: the objects table's equivalent_radius_nm column read 8.419e+04 and 114,270 one
    row apart (scientific from 10,000 to 99,999, grouped digits from 100,000), and the voxel size read
    5e+04 × 5e+04 × 5e+04. Every number from 10,000 up is now written in grouped digits."""
    (tmp_path / "summary.json").write_text(json.dumps({"objects": 2, "voxel_size_nm": [50000.0, 50000.0, 50000.0],
                                                       "mean_radius_nm": 94271.6, "mean_radius_vox": 1.885}))
    (tmp_path / "objects.csv").write_text("label,volume_vox,equivalent_radius_nm,mean_gray\n"
                                          "1,20,84190.3,14790.2\n2,50,114270.1,16520.7\n")
    html = build_report(tmp_path).read_text(encoding="utf-8")
    assert "e+0" not in html
    assert "<td>84,190</td>" in html and "<td>114,270</td>" in html and "<td>14,790</td>" in html
    assert "voxel_size_nm</span></td><td>50,000 × 50,000 × 50,000</td>" in html
    assert "mean_radius_nm</span></td><td>94,272</td>" in html
    assert "mean_radius_vox</span></td><td>1.885</td>" in html
