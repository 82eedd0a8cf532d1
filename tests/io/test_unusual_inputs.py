"""Valid but unusual input files (review unusual-inputs.md, U1-U14 but U5): each written by the real library
(tifffile, h5py, zarr, pynrrd, Pillow) and read with exact shapes, values and voxel sizes."""

import json
import subprocess
import sys

import h5py
import nrrd
import numpy as np
import pytest
import tifffile
import zarr

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume, split_dataset
from tomoseg.io.units import nm_per_unit


@pytest.fixture
def vol():
    return (np.arange(8 * 32 * 48) % 251).astype(np.uint8).reshape(8, 32, 48)


def _info(path) -> dict:
    from tomoseg.cli import main
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["info", str(path), "--json"]) == 0
    return json.loads(out.getvalue())


# ---------------------------------------------------------------- U1, U2: OME-TIFF series and their sizes
def test_u1_ome_tiff_voxel_size_is_that_of_the_image_read_with_its_own_default_unit(tmp_path, vol):
    path = tmp_path / "mix.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:  # 30 µm (OME's implicit unit), then a preview given in nm
        tw.write(vol, photometric="minisblack", metadata={"axes": "ZYX", "PhysicalSizeX": 30, "PhysicalSizeY": 30,
                                                          "PhysicalSizeZ": 30})
        tw.write(vol[:, ::4, ::4], photometric="minisblack", metadata={
            "axes": "ZYX", "PhysicalSizeX": 120000, "PhysicalSizeXUnit": "nm", "PhysicalSizeY": 120000,
            "PhysicalSizeYUnit": "nm", "PhysicalSizeZ": 30000, "PhysicalSizeZUnit": "nm"})
    with open_volume(str(path)) as v:
        assert v.voxel_size == (30000.0, 30000.0, 30000.0)
        np.testing.assert_array_equal(v.read(), vol)
    with open_volume(f"{path}:1") as v:  # the preview, with its own nm sizes
        assert v.shape == (8, 8, 12) and v.voxel_size == (30000.0, 120000.0, 120000.0)
        np.testing.assert_array_equal(v.read(), vol[:, ::4, ::4])


def test_u1_ome_tiff_z_size_is_not_taken_from_another_image(tmp_path, vol):
    path = tmp_path / "noz.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(vol, photometric="minisblack", metadata={"axes": "ZYX", "PhysicalSizeX": 0.03, "PhysicalSizeY": 0.03})
        tw.write(vol[:2, ::4, ::4], photometric="minisblack", metadata={
            "axes": "ZYX", "PhysicalSizeX": 0.12, "PhysicalSizeY": 0.12, "PhysicalSizeZ": 0.5})
    with open_volume(str(path)) as v:
        assert v.voxel_size is None  # the first image gives no z size: unknown, not the preview's 500 nm


def test_u2_the_largest_series_is_read_not_a_thumbnail_before_it_and_info_says_so(tmp_path, vol):
    path = tmp_path / "rev.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(vol[:4, ::4, ::4], photometric="minisblack", metadata={
            "axes": "ZYX", "PhysicalSizeX": 0.12, "PhysicalSizeY": 0.12, "PhysicalSizeZ": 0.12, "Name": "thumb"})
        tw.write(vol, photometric="minisblack", metadata={
            "axes": "ZYX", "PhysicalSizeX": 0.03, "PhysicalSizeY": 0.03, "PhysicalSizeZ": 0.04, "Name": "volume"})
    with open_volume(str(path)) as v:
        assert v.shape == (8, 32, 48) and v.voxel_size == (40.0, 30.0, 30.0)
        np.testing.assert_array_equal(v.read(), vol)
    info = _info(path)
    assert info["shape"] == [8, 32, 48]
    assert "series 1, the largest, is read" in info["notes"][0] and "'thumb'" in info["notes"][0]
    assert split_dataset(f"{path}:0") == (path, "0")
    with open_volume(f"{path}:0") as v:
        assert v.shape == (4, 8, 12) and v.voxel_size == (120.0, 120.0, 120.0)
    with pytest.raises(TomosegError, match=r"has no series 2; it holds 2 \(0: 4 × 8 × 12 'thumb'; 1: 8 × 32 × 48"):
        open_volume(f"{path}:2")


def test_u2_two_volumes_of_the_same_size_are_refused_listed(tmp_path, vol):
    path = tmp_path / "two.ome.tif"
    with tifffile.TiffWriter(path, ome=True) as tw:
        tw.write(vol, photometric="minisblack", metadata={"axes": "ZYX", "Name": "a"})
        tw.write(vol[::-1], photometric="minisblack", metadata={"axes": "ZYX", "Name": "b"})
    with pytest.raises(TomosegError, match=r"same size; name the one to read as .*two.ome.tif:N"):
        open_volume(str(path))
    with open_volume(f"{path}:1") as v:
        np.testing.assert_array_equal(v.read(), vol[::-1])


# ---------------------------------------------------------------- U3: z of length 1 in 4D/5D files
@pytest.mark.parametrize("shape5", [(1, 1, 1), (2, 1, 1)])
def test_u3_ome_zarr_tczyx_keeps_a_z_of_one(tmp_path, vol, shape5):
    t, c, z = shape5
    data = np.stack([vol[:1] + i for i in range(t)])[:, None]  # (t, 1, 1, Y, X)
    g = zarr.open_group(str(tmp_path / "o.ome.zarr"), mode="w", zarr_format=3)
    a = g.create_array("0", shape=data.shape, dtype="u1", chunks=(1, 1, 16, 16, 16))
    a[:] = data
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [
        {"name": "t", "type": "time"}, {"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "micrometer"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 0.04, 0.03,
                                                                                              0.03]}]}]}]}
    if t > 1:  # t=2: not a volume; refused as 4D, never read with shifted axes
        with pytest.raises(TomosegError, match="dimensions"):
            open_volume(str(tmp_path / "o.ome.zarr"))
        return
    with open_volume(str(tmp_path / "o.ome.zarr")) as v:
        assert v.shape == (1, 32, 48) and v.voxel_size == (40.0, 30.0, 30.0)
        assert v[0:1, 0:32, 0:48].shape == (1, 32, 48)
        np.testing.assert_array_equal(v[0:1, 10:20, 30:45], vol[:1, 10:20, 30:45])
        np.testing.assert_array_equal(v[0], vol[0])


def test_u3_ome_zarr_czyx_with_z_of_one_and_tiff_tczyx_with_z_of_one(tmp_path, vol):
    g = zarr.open_group(str(tmp_path / "c.ome.zarr"), mode="w", zarr_format=3)
    g.create_array("0", data=vol[:1][None], chunks=(1, 1, 16, 16))
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [{"name": "c", "type": "channel"}] + [
        {"name": n, "type": "space", "unit": "nanometer"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 40, 30, 30]}]}]}]}
    with open_volume(str(tmp_path / "c.ome.zarr")) as v:
        np.testing.assert_array_equal(v.read(), vol[:1])
    for compression in (None, "zlib"):
        p = tmp_path / f"z1_{compression}.ome.tif"
        tifffile.imwrite(p, vol[:1][None, None], photometric="minisblack", compression=compression,
                         metadata={"axes": "TCZYX", "PhysicalSizeX": 0.03, "PhysicalSizeY": 0.03,
                                   "PhysicalSizeZ": 0.04})
        with open_volume(str(p)) as v:
            assert v.shape == (1, 32, 48) and v.voxel_size == (40.0, 30.0, 30.0)
            np.testing.assert_array_equal(v[0:1, 5:9, 7:30], vol[:1, 5:9, 7:30])


# ---------------------------------------------------------------- U4: LZW, with and without imagecodecs
def _lzw_file(tmp_path, vol):
    pytest.importorskip("PIL")
    from PIL import Image

    path = tmp_path / "lzw.tif"
    ims = [Image.fromarray(s) for s in vol]
    ims[0].save(path, save_all=True, append_images=ims[1:], compression="tiff_lzw")
    return path


def test_u4_lzw_tiff_names_the_compression_and_what_to_do(tmp_path, vol):
    """Without imagecodecs (a child process where it cannot be imported), an LZW TIFF is refused at open,
    naming the compression and what to install; not called damaged."""
    import subprocess
    import sys

    path = _lzw_file(tmp_path, vol)
    code = ("import sys; sys.modules['imagecodecs'] = None\n"
            "from tomoseg.errors import TomosegError\nfrom tomoseg.io import open_volume\n"
            f"try:\n    open_volume({str(path)!r})\nexcept TomosegError as exc:\n    print(exc)\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    message = run.stdout.strip()
    assert run.returncode == 0, run.stderr
    assert "LZW compression" in message and "pip install 'tomoseg[codecs]'" in message and "damaged" not in message
    assert "\n" not in message


def test_u4_lzw_tiffs_read_with_imagecodecs(tmp_path, vol):
    """With imagecodecs (tomoseg[codecs]), LZW files and folders of LZW slices (as Fiji and many microscope
    programs save them) read as their data, whole and box by box."""
    pytest.importorskip("imagecodecs")
    path = _lzw_file(tmp_path, vol)
    folder = tmp_path / "slices"
    folder.mkdir()
    for i, s in enumerate(vol):
        tifffile.imwrite(folder / f"s_{i:04d}.tif", s, compression="lzw", predictor=True)
    for source in (path, folder):
        with open_volume(str(source)) as v:
            np.testing.assert_array_equal(v[:, :, :], vol)
            np.testing.assert_array_equal(v[2:5, 3:20, 11:40], vol[2:5, 3:20, 11:40])


# ---------------------------------------------------------------- U6, U11, U13: NRRD
def test_u6_gzip_nrrd_is_read_in_one_array_and_info_reads_the_header_only(tmp_path):
    """pynrrd's nrrd.read held the compressed bytes, a decompressed buffer and the array (193 MiB above the
    baseline for these 96 MiB, 3x for random data); info decompressed it all to describe it."""
    data = np.zeros((48, 1024, 1024), np.uint16)  # 96 MiB
    data[5, 7, 9] = 7
    nrrd.write(str(tmp_path / "g.nrrd"), data, {"encoding": "gzip"}, index_order="C", compression_level=1)
    del data
    peak = "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024"
    code = (f"import resource, sys, tomoseg; v = tomoseg.open_volume(sys.argv[1]); r0 = {peak}; "
            f"a = v[5:6, 7:8, 9:10]; print(int(a.sum()), {peak} - r0)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "g.nrrd")], capture_output=True, encoding="utf-8",
                         check=True).stdout.split()
    assert int(out[0]) == 7
    assert float(out[1]) < 96 * 1.3  # MiB above the baseline
    small = tmp_path / "small.nrrd"
    nrrd.write(str(small), np.zeros((2, 4, 4), np.uint8), {"encoding": "gzip"}, index_order="C")
    code = (f"import resource, sys; from tomoseg.cli import main; main(['info', sys.argv[2]]); r0 = {peak}; "
            f"main(['info', sys.argv[1]]); print({peak} - r0)")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "g.nrrd"), str(small)], capture_output=True,
                         encoding="utf-8", check=True)
    assert "shape (z,y,x) 48 × 1024 × 1024" in run.stdout and "values        not sampled" in run.stdout
    assert float(run.stdout.split()[-1]) < 16  # MiB: the header only, nothing decompressed


def test_u6_the_memory_guard_counts_the_peak_of_the_read(tmp_path, monkeypatch):
    import psutil

    data = np.zeros((8, 16, 16), np.uint16)
    nrrd.write(str(tmp_path / "t.nrrd"), data, {"encoding": "gzip"}, index_order="C")
    nrrd.write(str(tmp_path / "a.nrrd"), data, {"encoding": "ascii"}, index_order="C")

    class Little:
        available = 2 * (64 << 20) + 2 * data.nbytes + 1000  # streamed gzip fits, ascii (3x via pynrrd) not

    monkeypatch.setattr(psutil, "virtual_memory", lambda: Little)
    with open_volume(str(tmp_path / "t.nrrd")) as v:
        np.testing.assert_array_equal(v.read(), data)
    Little.available = 5 * data.nbytes
    with pytest.raises(TomosegError, match=r"ascii-compressed NRRD .* at the peak"):
        open_volume(str(tmp_path / "a.nrrd"))


@pytest.mark.parametrize("encoding", ["raw", "gzip", "bzip2"])
def test_u11_detached_nhdr_is_read(tmp_path, vol, encoding, capsys):
    data = vol.astype(np.uint16) * 200 + 1000
    header = {"encoding": encoding, "space directions": np.diag([30.0, 30.0, 40.0]), "space units": ["nm"] * 3,
              "space dimension": 3}
    nrrd.write(str(tmp_path / "d.nhdr"), data, header, index_order="C", detached_header=True)
    assert len(list(tmp_path.iterdir())) == 2
    with open_volume(str(tmp_path / "d.nhdr")) as v:
        assert v.shape == (8, 32, 48) and v.voxel_size == (40.0, 30.0, 30.0) and v.dtype == np.uint16
        np.testing.assert_array_equal(v.read(), data)
        assert "detached header" in v.notes[-1]
    if encoding == "raw":  # info counts the data file, not only the header (it said about 0 MiB)
        import json

        from tomoseg.cli import main

        total = sum(p.stat().st_size for p in tmp_path.iterdir())
        capsys.readouterr()
        assert main(["info", str(tmp_path / "d.nhdr"), "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["size_on_disk_bytes"] == total >= data.nbytes


def test_u11_detached_data_missing_and_nhdr_output_refused(tmp_path, vol):
    nrrd.write(str(tmp_path / "d.nhdr"), vol, {"encoding": "raw"}, index_order="C", detached_header=True)
    next(p for p in tmp_path.iterdir() if p.suffix != ".nhdr").unlink()
    with pytest.raises(TomosegError, match="its data file .* is missing"):
        open_volume(str(tmp_path / "d.nhdr"))
    from tomoseg.io import check_output_format

    with pytest.raises(TomosegError, match=r"name the output \.nrrd"):
        check_output_format(str(tmp_path / "o.nhdr"), np.uint8, (2, 2, 2))


def test_u13_slicer_nrrd_without_space_units_is_in_mm_with_a_note(tmp_path, vol):
    nrrd.write(str(tmp_path / "s.nrrd"), vol, {"encoding": "gzip", "space": "left-posterior-superior",
                                                "space directions": np.diag([0.03, 0.03, 0.04]),
                                                "space origin": [0, 0, 0], "kinds": ["domain"] * 3},
               index_order="C")
    with open_volume(str(tmp_path / "s.nrrd")) as v:
        assert v.voxel_size == pytest.approx((40000.0, 30000.0, 30000.0))
        np.testing.assert_array_equal(v.read(), vol)
    assert "in mm by convention" in _info(tmp_path / "s.nrrd")["notes"][0]
    nrrd.write(str(tmp_path / "x.nrrd"), vol, {"space dimension": 3, "space directions": np.diag([1.0, 1, 1])},
               index_order="C")  # no anatomical space: no unit assumed
    assert open_volume(str(tmp_path / "x.nrrd")).voxel_size is None


# ---------------------------------------------------------------- U7, U8, U9, U10: HDF5 / NeXus
def test_u7_nexus_default_and_signal_name_the_volume(tmp_path, vol):
    path = tmp_path / "n.nxs"
    with h5py.File(path, "w") as f:
        f.attrs["default"] = "entry"
        e = f.create_group("entry")
        e.attrs["NX_class"], e.attrs["default"] = "NXentry", "recon"
        d = e.create_group("recon")
        d.attrs["NX_class"], d.attrs["signal"] = "NXdata", "volume"
        d.create_dataset("mask", data=(vol > 100).astype(np.uint8))
        d.create_dataset("volume", data=vol)
    with open_volume(str(path)) as v:
        assert str(v.path).endswith("n.nxs:/entry/recon/volume")
        np.testing.assert_array_equal(v.read(), vol)


def test_u8_a_volume_behind_an_external_link_is_found(tmp_path, vol, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with h5py.File("target.h5", "w") as f:
        f.create_dataset("vol", data=vol, chunks=(4, 16, 16), compression="gzip")
    with h5py.File("master.h5", "w") as f:
        f["entry/data/data"] = h5py.ExternalLink("target.h5", "/vol")
    with h5py.File("master2.h5", "w") as f:
        f["recon/vol"] = h5py.ExternalLink("target.h5", "/vol")
        f["gone"] = h5py.ExternalLink("missing.h5", "/vol")
    for name in ("master.h5", "master2.h5"):
        with open_volume(name) as v:
            np.testing.assert_array_equal(v.read(), vol)
            assert "external link to target.h5:/vol" in v.notes[0]
    with h5py.File("only_missing.h5", "w") as f:
        f["gone"] = h5py.ExternalLink("missing.h5", "/vol")
    with pytest.raises(TomosegError, match=r"external links /gone -> missing.h5:/vol point to missing files"):
        open_volume("only_missing.h5")


def test_u9_a_single_dataset_with_a_leading_axis_of_one_reads_as_3d(tmp_path, vol):
    with h5py.File(tmp_path / "4d.h5", "w") as f:
        f.create_dataset("data", data=vol[None], chunks=(1, 4, 16, 16), compression="gzip")
        f.create_dataset("z1", data=vol[None, :1], chunks=(1, 1, 16, 16))
    with open_volume(str(tmp_path / "4d.h5:/data")) as v:
        assert v.shape == (8, 32, 48) and v.chunks == (4, 16, 16)
        np.testing.assert_array_equal(v[2:5, 3:20, 1:40], vol[2:5, 3:20, 1:40])
    with open_volume(str(tmp_path / "4d.h5:/z1")) as v:
        np.testing.assert_array_equal(v.read(), vol[:1])
    with h5py.File(tmp_path / "one.h5", "w") as f:
        f.create_dataset("data", data=vol[None])
    with open_volume(str(tmp_path / "one.h5")) as v:  # found on its own, not "several datasets"
        np.testing.assert_array_equal(v.read(), vol)
    with h5py.File(tmp_path / "t2.h5", "w") as f:
        f.create_dataset("data", data=np.stack([vol, vol]))
    with pytest.raises(TomosegError, match=r"its only image dataset /data has shape \(2, 8, 32, 48\)"):
        open_volume(str(tmp_path / "t2.h5"))


@pytest.mark.parametrize("attrs, expected", [
    ({"element_size_um": 0.03}, (30.0, 30.0, 30.0)),
    ({"voxel_size_nm": 30.0}, (30.0, 30.0, 30.0)),
    ({"element_size_um": np.array([0.04])}, (40.0, 40.0, 40.0)),
    ({"voxel_size": np.array([40.0, 30, 30]), "units": "nm"}, (40.0, 30.0, 30.0)),
])
def test_u10_scalar_voxel_sizes_are_isotropic_with_a_note(tmp_path, vol, attrs, expected):
    with h5py.File(tmp_path / "v.h5", "w") as f:
        ds = f.create_dataset("data", data=vol)
        for k, v in attrs.items():
            ds.attrs[k] = v
    with open_volume(str(tmp_path / "v.h5")) as v:
        assert v.voxel_size == pytest.approx(expected)
        assert ("isotropic" in " ".join(v.notes)) == ("units" not in attrs)


# ---------------------------------------------------------------- U12: units
@pytest.mark.parametrize("unit, nm", [("centimeter", 1e7), ("picometer", 1e-3), ("pm", 1e-3), ("decimeter", 1e8),
                                      ("dm", 1e8), ("angstrom", 0.1), ("Å", 0.1), ("Mm", None), ("inch", 2.54e7)])
def test_u12_length_units(unit, nm):
    assert nm_per_unit(unit) == nm


def test_u12_ome_zarr_in_picometer_and_ome_tiff_in_pm(tmp_path, vol):
    g = zarr.open_group(str(tmp_path / "pm.ome.zarr"), mode="w", zarr_format=3)
    g.create_array("0", data=vol, chunks=(8, 16, 16))
    g.attrs["ome"] = {"version": "0.5", "multiscales": [{"axes": [
        {"name": n, "type": "space", "unit": "picometer"} for n in "zyx"],
        "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [40000, 30000,
                                                                                              30000]}]}]}]}
    assert open_volume(str(tmp_path / "pm.ome.zarr")).voxel_size == pytest.approx((40.0, 30.0, 30.0))
    tifffile.imwrite(tmp_path / "pm.ome.tif", vol, photometric="minisblack", metadata={
        "axes": "ZYX", "PhysicalSizeX": 30000, "PhysicalSizeXUnit": "pm", "PhysicalSizeY": 30000,
        "PhysicalSizeYUnit": "pm", "PhysicalSizeZ": 400, "PhysicalSizeZUnit": "Å"})
    assert open_volume(str(tmp_path / "pm.ome.tif")).voxel_size == pytest.approx((40.0, 30.0, 30.0))


# ---------------------------------------------------------------- U14: PyHST2 .vol with .vol.xml only
def test_u14_pyhst_vol_with_only_its_xml_sidecar(tmp_path, vol):
    data = (vol / 255).astype(">f4")
    data.tofile(tmp_path / "p.vol")
    (tmp_path / "p.vol.xml").write_text(
        "<!-- PyHST VOLUME XML FILE -->\n<tomodb2><reconstruction><listSubVolume><subVolume>"
        "<SUBVOLUME_NAME>p.vol</SUBVOLUME_NAME><SIZEX>48</SIZEX><SIZEY>32</SIZEY><SIZEZ>8</SIZEZ>"
        "<BYTE_ORDER>HIGHBYTEFIRST</BYTE_ORDER></subVolume></listSubVolume></reconstruction></tomodb2>\n")
    with open_volume(str(tmp_path / "p.vol")) as v:
        assert v.shape == (8, 32, 48) and v.voxel_size is None
        np.testing.assert_array_equal(v.read(), data)
        assert "read from p.vol.xml" in v.notes[0]
    (tmp_path / "p.vol.xml").unlink()
    with pytest.raises(TomosegError, match=r"p.vol.info is missing.* or NAME.vol.xml"):
        open_volume(str(tmp_path / "p.vol"))
