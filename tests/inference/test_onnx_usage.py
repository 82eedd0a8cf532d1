"""Review MF3: the usage record of an ONNX export said "(x - mean) / sd" where segment takes the moments within
fences, clips at +-10 s.d. and gives no-data voxels 0; and it left out the voxel size the model was trained at.
Following the record now reproduces segment's map."""

import numpy as np
import pytest
import torch

import tomoseg
from tomoseg.cli import main
from tomoseg.io import read_volume, write_volume


def _by_the_record(image: np.ndarray, model, usage: dict) -> np.ndarray:
    """The 0-255 map computed from the record's words alone (NumPy percentiles, the model as a plain callable)."""
    norm = usage["normalization"]
    assert norm["method"] == "zscore" and norm["scope"] == "whole-volume"
    assert "1% and 99% percentiles each moved out by 2 times" in norm["statistics"]
    data = np.isfinite(image)
    p1, p99 = np.percentile(image[data], [1, 99])
    fence = 2 * (p99 - p1)
    kept = image[data & (image >= p1 - fence) & (image <= p99 + fence)].astype(np.float64)
    z = np.clip((image - kept.mean()) / kept.std(), -norm["clip"], norm["clip"])
    z[~data] = 0
    with torch.no_grad():
        p = torch.sigmoid(model(torch.from_numpy(z[None, None].astype(np.float32)))).numpy()[0, 0]
    out = np.rint(p * 255)
    out[~data] = 0  # "probability 0 in the output"
    return out


def test_following_the_onnx_record_gives_segments_map(tmp_path, capsys):
    pytest.importorskip("onnx")
    from tomoseg.io.onnx_marker import read_marker

    torch.manual_seed(0)
    model = tomoseg.UNet3D(2, 4)
    model.train()
    with torch.no_grad():  # BatchNorm statistics of a z-scored input, so that the map is not flat
        model(torch.randn(2, 1, 16, 16, 16))
    path = tomoseg.save_model(model.eval(), tmp_path / "m.safetensors", {"voxel_size_nm": [30, 30, 30]})
    assert main(["export-onnx", str(path), str(tmp_path / "m.onnx")]) == 0
    usage = read_marker(tmp_path / "m.onnx")
    assert usage["voxel_size_nm"] == [30, 30, 30] and usage["normalization"]["clip"] == 10
    assert usage["normalization"]["formula"] == "clip((x - mean) / sd, -10, 10); 0 where no data"

    image = np.random.default_rng(2).normal(100, 10, (16, 32, 32)).astype(np.float32)
    image[3, 4, 5:8] = 1e6  # zingers: outside the fences, clipped
    image[9, 20, 20] = np.nan  # no data
    write_volume(str(tmp_path / "in.tif"), image, voxel_size=(30.0,) * 3)
    assert main(["segment", str(tmp_path / "in.tif"), str(tmp_path / "p.tif"), "--model", str(path),
                 "--backend", "torch", "-q"]) == 0
    capsys.readouterr()
    segmented = read_volume(str(tmp_path / "p.tif")).astype(int)
    assert np.abs(segmented - _by_the_record(image, tomoseg.load_model(path), usage)).max() <= 1
    # the plain z-score the record used to describe is not it: the zingers pull the mean and s.d.
    plain = np.nan_to_num((image - np.nanmean(image)) / np.nanstd(image))
    with torch.no_grad():
        p = torch.sigmoid(tomoseg.load_model(path)(torch.from_numpy(plain[None, None]))).numpy()[0, 0]
    assert np.abs(segmented - np.rint(p * 255)).max() > 1
