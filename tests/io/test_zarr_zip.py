"""Zipped Zarr stores read in place (review readers2 RD4): zarr's ZipStore (``.zarr.zip``), a zipped OME-Zarr with
its levels and voxel size, a zip whose one top folder is the store (``zip -r x.zarr.zip x.zarr``), a zip file
named ``.zarr``; never written."""

import zipfile

import numpy as np
import pytest
import zarr

from tomoseg.errors import TomosegError
from tomoseg.io import open_volume, read_volume, write_volume

Z, Y, X = 6, 10, 12


@pytest.fixture
def vol():
    v = np.random.default_rng(0).integers(0, 60000, (Z, Y, X), dtype=np.uint16)
    v[:, 0, 0] = np.arange(Z)
    return v


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_rd4_a_zarr_zipstore_is_read_in_place(tmp_path, vol, zarr_format):
    p = tmp_path / "scan.zarr.zip"
    store = zarr.storage.ZipStore(p, mode="w")
    a = zarr.create_array(store, shape=vol.shape, chunks=(2, 5, 6), dtype=vol.dtype, zarr_format=zarr_format,
                          attributes={"voxel_size_nm": [30.0, 20.0, 10.0]})
    a[:] = vol
    store.close()
    with open_volume(p) as v:
        assert v.format == "zarr" and v.shape == (Z, Y, X)
        assert v.voxel_size == (30.0, 20.0, 10.0)
        assert np.array_equal(v[1:4, 2:7, 3:11], vol[1:4, 2:7, 3:11])
        assert np.array_equal(v.read(), vol)


def _zip_folder(folder, target, top: str = ""):
    """``folder`` zipped as ``cd folder && zip -r target .`` does (``top`` = "": the store at the zip's root) or as
    ``zip -r target folder`` does (``top`` = the folder's name)."""
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as z:
        for f in sorted(folder.rglob("*")):
            if f.is_file():
                z.write(f, (f"{top}/" if top else "") + f.relative_to(folder).as_posix())


@pytest.mark.parametrize("top", ["", "scan.ome.zarr"])
def test_rd4_a_zipped_ome_zarr_keeps_its_voxel_size_and_levels(tmp_path, vol, top):
    folder = tmp_path / "scan.ome.zarr"
    write_volume(folder, vol, voxel_size=(30.0, 20.0, 10.0))
    g = zarr.open_group(folder, mode="a")  # a second level, as pyramids have
    ms = g.attrs["ome"]
    ms["multiscales"][0]["datasets"].append({"path": "1", "coordinateTransformations": [
        {"type": "scale", "scale": [60.0, 40.0, 20.0]}]})
    g.attrs["ome"] = ms
    g.create_array("1", data=vol[::2, ::2, ::2])
    p = tmp_path / "scan.ome.zarr.zip"
    _zip_folder(folder, p, top)
    with open_volume(p) as v:
        assert v.voxel_size == (30.0, 20.0, 10.0)
        assert np.array_equal(v.read(), vol)
    with open_volume(f"{p}:1") as v:
        assert v.voxel_size == (60.0, 40.0, 20.0)
        assert np.array_equal(v.read(), vol[::2, ::2, ::2])


def test_rd4_a_zip_file_named_zarr_is_read(tmp_path, vol):
    folder = tmp_path / "plain"
    zarr.create_array(folder, data=vol, chunks=(3, 5, 6), zarr_format=3)
    p = tmp_path / "scan.zarr"
    _zip_folder(folder, p)
    assert np.array_equal(read_volume(p), vol)


def test_rd4_a_zip_without_a_zarr_store_says_what_it_holds(tmp_path):
    p = tmp_path / "scan.zarr.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("a/slice_0000.tif", b"II*\0")
        z.writestr("b/readme.txt", "x")
    with pytest.raises(TomosegError, match=r"scan.zarr.zip: is a zip file without a Zarr store at its top \(no "
                                           r"zarr.json, .zarray or .zgroup\)"):
        open_volume(p)


@pytest.mark.parametrize("name, match", [
    ("out.zarr.zip", r"out.zarr.zip: tomoseg reads zipped Zarr stores but does not write them; write out.zarr"),
    # a plain .zip output: refused the same way, naming the folder to write
    ("out.zip", r"out.zip: tomoseg reads zipped Zarr stores but does not write them; write out.zarr \(a folder\)"),
])
def test_rd4_zipped_zarr_is_not_written(tmp_path, vol, name, match):
    with pytest.raises(TomosegError, match=match):
        write_volume(tmp_path / name, vol)
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("top", ["", "scan.ome.zarr"])
def test_a_zipped_store_named_plain_zip_is_read(tmp_path, vol, top):
    """``zip -r scan.zip scan.ome.zarr`` (or zipping the store's contents) as a user sends a scan: the archive is
    a Zarr store whatever its name; it got "a zip archive: unzip it". Its levels by ``scan.zip:1``."""
    folder = tmp_path / "scan.ome.zarr"
    write_volume(folder, vol, voxel_size=(30.0, 20.0, 10.0))
    p = tmp_path / "scan.zip"
    _zip_folder(folder, p, top)
    with open_volume(p) as v:
        assert v.format == "zarr" and v.voxel_size == (30.0, 20.0, 10.0)
        assert np.array_equal(v.read(), vol)
    with open_volume(f"{p}:0") as v:
        assert np.array_equal(v[1:3], vol[1:3])


def test_a_plain_zip_of_something_else_still_says_unzip_it(tmp_path):
    p = tmp_path / "slices.zip"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("slices/slice_0000.tif", b"II*\0")
        z.writestr("slices/slice_0001.tif", b"II*\0")
    with pytest.raises(TomosegError, match=r"slices.zip: .*a zip archive without a Zarr store in it .*unzip it"):
        open_volume(p)


@pytest.mark.parametrize("zipped", [False, True], ids=["folder", "zip"])
def test_a_level_of_a_store_that_is_one_array_is_refused(tmp_path, vol, zipped):
    """scan.zip:7 (or store.zarr:7) where the store is one array, not a group of levels: the whole array was read as
    if it were level 7, silently (adversarial review ZP1)."""
    folder = tmp_path / "plain.zarr"
    zarr.create_array(folder, data=vol, chunks=(3, 5, 6), zarr_format=3)
    p = folder
    if zipped:
        p = tmp_path / "scan.zip"
        _zip_folder(folder, p, "plain.zarr")
    with pytest.raises(TomosegError, match=r"is one Zarr array.*holds no '7'.*without ':7'"):
        open_volume(f"{p}:7")
    assert np.array_equal(read_volume(p), vol)


def test_a_zip_made_by_macos_finder_is_read(tmp_path, vol):
    """Finder's Compress adds __MACOSX/ (the files' resource forks) beside the store's folder, and .DS_Store files:
    the store was not found in "its one top folder" and the zip was refused (adversarial review ZP2)."""
    folder = tmp_path / "scan.ome.zarr"
    write_volume(folder, vol, voxel_size=(30.0, 20.0, 10.0))
    p = tmp_path / "scan.zip"
    _zip_folder(folder, p, "scan.ome.zarr")
    with zipfile.ZipFile(p, "a") as z:
        z.writestr("__MACOSX/scan.ome.zarr/._zarr.json", b"\0\5\26\7\0\2\0\0")
        z.writestr("scan.ome.zarr/.DS_Store", b"\0\0\0\1Bud1")
    with open_volume(p) as v:
        assert v.voxel_size == (30.0, 20.0, 10.0)
        assert np.array_equal(v.read(), vol)


@pytest.mark.parametrize("name", ["scan.zip", "scan.zarr.zip"])
def test_a_zip_whose_stores_lie_further_down_names_them(tmp_path, vol, name):
    """A store two folders down, or two stores: it said the zip held no store at all (ZP2)."""
    folder = tmp_path / "plain.zarr"
    zarr.create_array(folder, data=vol, chunks=(3, 5, 6), zarr_format=2)
    p = tmp_path / name
    _zip_folder(folder, p, "run1/plain.zarr")
    with pytest.raises(TomosegError, match=r"holds a Zarr store further down \(run1/plain\.zarr\).*unzip it"):
        open_volume(p)
    with zipfile.ZipFile(p, "a") as z:
        z.writestr("run2/other.zarr/zarr.json", '{"zarr_format": 3, "node_type": "group"}')
    with pytest.raises(TomosegError, match=r"holds 2 Zarr stores further down \(run1/plain\.zarr, run2/other\.zarr\)"):
        open_volume(p)


@pytest.mark.parametrize("name", ["scan.zip", "scan.zarr.zip"])
def test_a_zip_cut_short_is_said_to_be_damaged(tmp_path, vol, name):
    """A zip cut short (a copy or download stopped): "a zip archive without a Zarr store in it" (or "not a zip
    file") sent the user to unzip it; it is damaged (ZP3)."""
    folder = tmp_path / "plain.zarr"
    zarr.create_array(folder, data=vol, chunks=(3, 5, 6), zarr_format=3)
    whole = tmp_path / "whole.zip"
    _zip_folder(folder, whole)
    p = tmp_path / name
    p.write_bytes(whole.read_bytes()[:-30])
    with pytest.raises(TomosegError, match=r"is a damaged or incomplete zip file.*copy it again"):
        open_volume(p)


def _zip_with_a_bad_chunk(folder, target, key: str) -> None:
    """``folder`` zipped (stored, not deflated) with one byte of its chunk file ``key`` flipped: that chunk fails
    the zip's CRC check when read."""
    _zip_folder(folder, target)
    data = bytearray(target.read_bytes())
    with zipfile.ZipFile(target) as z:
        info = z.getinfo(key)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)  # the local header's length
    data[start + info.compress_size // 2] ^= 0xFF
    target.write_bytes(bytes(data))


@pytest.mark.parametrize("command", ["info", "analyze", "segment", "evaluate-prediction", "evaluate-labels"])
def test_a_chunk_failing_its_crc_gives_one_error_line(tmp_path, command, tiny_model_factory):
    """A zipped store is read through Zarr's event loop: when one chunk of a read failed its CRC, the read's other
    chunks were still in flight as the command exited, and asyncio printed "Task was destroyed but it is pending!"
    for each (hundreds of lines) after the error (adversarial review ZP). One line: the error."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    vol = np.random.default_rng(0).integers(0, 256, (32, 128, 128), dtype=np.uint8)
    folder = tmp_path / "scan.zarr"
    zarr.create_array(folder, data=vol, chunks=(8, 8, 8), zarr_format=3, attributes={"voxel_size_nm": [30.0] * 3})
    bad = tmp_path / "bad.zip"
    _zip_with_a_bad_chunk(folder, bad, "c/1/1/1")
    np.save(tmp_path / "gt.npy", np.zeros(vol.shape, np.uint8))
    args = {"info": ["info", bad],
            # random gray values read as a map: --read-as says so (else the gray-scan warning comes first)
            "analyze": ["analyze", "-q", bad, "--csv", tmp_path / "o.csv", "--read-as", "probability"],
            "segment": ["segment", "-q", bad, tmp_path / "o.zarr", "--model", tiny_model_factory(2)],
            "evaluate-prediction": ["evaluate", "-q", bad, tmp_path / "gt.npy", "--read-as", "probability"],
            "evaluate-labels": ["evaluate", "-q", tmp_path / "gt.npy", bad]}[command]
    src = str(Path(__file__).resolve().parents[2] / "src")
    proc = subprocess.run([sys.executable, "-m", "tomoseg", *map(str, args)], capture_output=True, encoding="utf-8",
                          env=dict(os.environ, PYTHONPATH=src), timeout=300)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"tomoseg: error: {bad}: data cannot be read (BadZipFile: Bad CRC-32 for file "
                                        f"'c/1/1/1'); the file may be damaged, incomplete or changed while tomoseg "
                                        f"read it"], proc.stderr[:2000]


def _zipcrypto_zip(folder, target, password: bytes, encrypted=lambda name: True) -> None:
    """``folder`` zipped (stored) at the zip's top as ``zip -r -P PASSWORD`` does: the entries that ``encrypted``
    names with the traditional PKWARE encryption (ZipCrypto, what zip, Windows and most archive tools write when
    given a password; Python's zipfile reads it but cannot write it)."""
    import struct
    import zlib

    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        table.append(c)

    def crc_byte(crc, b):
        return (crc >> 8) ^ table[(crc ^ b) & 0xFF]

    def encrypt(data: bytes) -> bytes:
        k = [0x12345678, 0x23456789, 0x34567890]

        def update(b):
            k[0] = crc_byte(k[0], b)
            k[1] = ((k[1] + (k[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
            k[2] = crc_byte(k[2], k[1] >> 24)

        for b in password:
            update(b)
        out = bytearray()
        for b in data:
            t = (k[2] | 2) & 0xFFFF
            out.append(b ^ (((t * (t ^ 1)) >> 8) & 0xFF))
            update(b)
        return bytes(out)

    local, central = bytearray(), bytearray()
    files = [f for f in sorted(folder.rglob("*")) if f.is_file()]
    for f in files:
        name = f.relative_to(folder).as_posix().encode()
        data = f.read_bytes()
        crc = zlib.crc32(data)
        flag = 0
        if encrypted(name.decode()):
            flag = 1
            data = encrypt(bytes(11) + bytes([crc >> 24]) + data)  # the 12-byte header: its last byte checks the key
        offset = len(local)
        local += struct.pack("<4s5H3L2H", b"PK\x03\x04", 20, flag, 0, 0, 0, crc, len(data), len(f.read_bytes()),
                             len(name), 0) + name + data
        central += struct.pack("<4s6H3L5H2L", b"PK\x01\x02", 20, 20, flag, 0, 0, 0, crc, len(data),
                               len(f.read_bytes()), len(name), 0, 0, 0, 0, 0, offset) + name
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(files), len(files), len(central), len(local), 0)
    target.write_bytes(bytes(local + central + end))


@pytest.mark.parametrize("which", ["all", "chunks"])
def test_an_encrypted_zip_is_said_to_need_unzipping_with_its_password(tmp_path, vol, which):
    """A password-protected zip: "is not a readable zipped Zarr store (File 'zarr.json' is encrypted, password
    required for extraction)", or, where only the chunks are encrypted, "data cannot be read ... the file may be
    damaged" once the work had started (adversarial review ZP5). What to do: unzip it with its password."""
    folder = tmp_path / "plain.zarr"
    zarr.create_array(folder, data=vol, chunks=(3, 5, 6), zarr_format=3)
    p = tmp_path / "enc.zip"
    _zipcrypto_zip(folder, p, b"secret", (lambda n: True) if which == "all" else (lambda n: n.startswith("c/")))
    with zipfile.ZipFile(p) as z:  # a real encrypted zip: zipfile reads it back with the password
        z.setpassword(b"secret")
        assert z.read("zarr.json") == (folder / "zarr.json").read_bytes()
        assert z.read("c/1/1/1") == (folder / "c/1/1/1").read_bytes()
    with pytest.raises(TomosegError, match=r"enc.zip: is an encrypted \(password-protected\) zip file: tomoseg cannot "
                                           r"read it in place; unzip it with its password and give the Zarr store "
                                           r"inside"):
        open_volume(p)
