"""How analyze and evaluate read their input (objects/reading.py): a 0-255 probability map of any type, a mask, a
label image, the same in every format and whatever the sample of chunks shows (review O1, O2, O7)."""

import json

import numpy as np
import pytest
from scipy import ndimage

from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.io import open_volume, write_volume
from tomoseg.objects import AnalysisOptions, analyze
from tomoseg.table import read_csv


def _map(seed=0, shape=(48, 64, 64)):
    """A probability map as a network writes it: cores above 127, halos down to 1, and speckle (the review's
    dtypes2.py): 12 % of the voxels nonzero, a third of them objects."""
    rng = np.random.default_rng(seed)
    c = np.zeros(shape, bool)
    c[tuple(rng.integers(4, np.array(shape) - 4, (40, 3)).T)] = True
    d = ndimage.distance_transform_edt(~c)
    p = np.clip(255 * (1 - (d - 1.0) / 4), 0, 255)
    p = np.where(rng.random(shape) < 0.03, np.maximum(p, rng.integers(1, 30, shape)), p)
    return np.rint(p).astype(np.uint8)


def _objects(p):
    return int(ndimage.label(p > 127, np.ones((3, 3, 3)))[1])


@pytest.mark.parametrize("dtype", [np.float32, np.uint16, np.int32, np.float64])
def test_a_probability_map_of_whole_values_0_255_in_another_type_is_read_as_the_uint8_map(tmp_path, capsys, dtype):
    """A map converted to 32-bit float in Fiji, or stored as uint16, was read as a mask: every voxel above 0 an
    object (17 objects kept of 3147 instead of 34, voxel precision 0.13 instead of 0.66). It is now the 0-255
    map it holds: the same table, scores and confidence columns as the uint8 map, and a note says so."""
    p = _map()
    truth = (ndimage.distance_transform_edt(p < 140) <= 1).astype(np.uint8)
    np.save(tmp_path / "u8.npy", p)
    np.save(tmp_path / "other.npy", p.astype(dtype))
    np.save(tmp_path / "truth.npy", truth)
    for name in ("u8", "other"):
        assert main(["analyze", str(tmp_path / f"{name}.npy"), "--csv", str(tmp_path / f"{name}.csv"),
                     "--all-objects"]) == 0
        assert main(["evaluate", str(tmp_path / f"{name}.npy"), str(tmp_path / "truth.npy"), "--json"]) == 0
    out, err = capsys.readouterr()
    scores = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert scores[0]["voxel"] == scores[1]["voxel"] and scores[0]["objects"] == scores[1]["objects"]
    assert scores[1]["prediction_read_as"] == "probability"
    assert (tmp_path / "u8.csv").read_text() == (tmp_path / "other.csv").read_text()
    assert len(read_csv(tmp_path / "other.csv")["label"]) == _objects(p)
    assert f"other.npy: read as a probability map (values 0-255, stored as {np.dtype(dtype)}): object where " \
           "value > 127" in err
    assert "u8.npy: read as a probability map (values 0-255): object where value > 127" in err


def test_read_as_forces_a_reading_and_a_mask_is_said_to_be_one(tmp_path, capsys):
    p = _map()
    np.save(tmp_path / "p.npy", p)
    np.save(tmp_path / "m.npy", (p > 127).astype(np.uint16))
    assert main(["analyze", str(tmp_path / "p.npy"), "--json", "--read-as", "mask", "--keep-border",
                 "--min-voxels", "1"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["objects"] == ndimage.label(p > 0, np.ones((3, 3, 3)))[1] and summary["read_as"] == "mask"
    assert "p.npy: read as a mask (--read-as mask): object where value is not 0" in err
    assert main(["analyze", str(tmp_path / "m.npy"), "--json"]) == 0
    assert "m.npy: read as a mask (values 0 and 1 only): object where value is not 0" in capsys.readouterr().err
    np.save(tmp_path / "wide.npy", p.astype(np.uint16) * 257)  # a map on the 0-65535 scale
    assert main(["analyze", str(tmp_path / "wide.npy"), "--json", "--read-as", "probability"]) == 1
    assert "wide.npy: holds values from 0 to 65535; a probability map holds 0-255 " in \
        capsys.readouterr().err


def test_a_label_image_is_never_taken_for_a_probability_map():
    """Object IDs in uint16 (or float32, as Fiji saves labels): up to 255 of them they lie in 0-255, and as a
    probability map the IDs up to 127 would be dropped; they are read as a label image (nonzero = object), as
    are IDs beyond 255. As uint8 they are refused (the threshold would drop them)."""
    lab = np.zeros((32, 96, 96), np.int64)
    centres = [(z, y, x) for z in (8, 24) for y in range(8, 96, 16) for x in range(8, 96, 16)]
    for i, c in enumerate(centres, start=1):
        lab[c[0] - 2:c[0] + 3, c[1] - 3:c[1] + 3, c[2] - 3:c[2] + 3] = i
    assert len(centres) == 72
    for ids, dtype in ((lab, np.uint16), (lab, np.float32), (np.where(lab > 0, lab + 300, 0), np.uint16)):
        result = analyze(ids.astype(dtype))
        assert result.reading.kind == "labels" and result.summary["objects"] == 72, dtype
        assert "read as a label image" in result.summary["reading"]
    with pytest.raises(TomosegError, match="looks like an image of object IDs stored as uint8"):
        analyze(lab.astype(np.uint8))


def test_values_no_reading_fits_are_refused():
    gray = np.random.default_rng(0).integers(0, 4000, (8, 16, 16)).astype(np.uint16)
    with pytest.raises(TomosegError, match=r"holds values up to \d+ \(uint16\) and does not look like object IDs"):
        analyze(gray)
    with pytest.raises(TomosegError, match="holds negative values"):
        analyze(np.full((4, 8, 8), -3, np.int16))
    with pytest.raises(TomosegError, match="fractional values from 0.4 to 1.4"):
        analyze(np.full((4, 8, 8), 0.4, np.float32) + np.eye(8, dtype=np.float32))
    with pytest.warns(UserWarning, match="is this a mask?"):  # the user's choice, and a warning
        assert analyze(gray, options=AnalysisOptions(read_as="mask", min_voxels=1)).reading.kind == "mask"


def _sparse_map(tmp_path):
    """The review's sparse_prob.py: four balls (core 255, halos 195/135/75/15) in a 64 x 128 x 128 Zarr of 32^3
    chunks, none of them in a chunk the sample reads."""
    p = np.zeros((64, 128, 128), np.uint8)
    ball = (np.indices((9, 9, 9)) - 4) ** 2
    d = ndimage.distance_transform_edt(~(ball.sum(0) <= 16))
    prof = np.clip(255 - 60 * d, 0, 255).astype(np.uint8)
    for z, y, x in [(16, 48, 80), (48, 80, 48), (16, 80, 16), (48, 16, 112)]:
        box = p[z - 4:z + 5, y - 4:y + 5, x - 4:x + 5]
        box[...] = np.maximum(box, prof)
    write_volume(str(tmp_path / "sp.zarr"), p, chunks=(32, 32, 32))
    return p


@pytest.mark.parametrize("chunked", [False, True], ids=["in-memory", "chunked"])
def test_a_map_whose_sampled_chunks_hold_only_0_and_1_is_still_a_probability_map(tmp_path, chunked):
    """The sample of chunks held no value above 1, so the whole map was read as a mask: every object kept its
    halo (729 voxels instead of 613). Any value above 1 anywhere now makes it a probability map: the labelling's
    own pass over every chunk finds it and reads again, in memory and chunk by chunk; evaluate's voxel pass
    does the same."""
    from tomoseg.evaluation import evaluate

    p = _sparse_map(tmp_path)
    options = AnalysisOptions(in_memory_voxels=0 if chunked else 2**30, chunks=(32, 32, 32))
    with open_volume(str(tmp_path / "sp.zarr")) as vol:
        result = analyze(vol, options=options)
        assert result.objects["volume_vox"].tolist() == [int((p > 127).sum()) // 4] * 4 == [613] * 4
        truth = (p > 127).astype(np.uint8)
        ev = evaluate(vol, truth, options=options)
        assert ev["voxel"]["fp"] == 0 and ev["voxel"]["fn"] == 0 and ev["prediction_read_as"] == "probability"
        assert result.reading.kind == "probability"
        from tomoseg.objects.reading import is_probability

        assert not is_probability(vol)  # the sample alone: only 0 (the case of the review)
    mask = (p > 0).astype(np.uint8)  # a real mask: read once, as a mask
    write_volume(str(tmp_path / "m.zarr"), mask, chunks=(32, 32, 32))
    with open_volume(str(tmp_path / "m.zarr")) as vol:
        result = analyze(vol, options=options)
        assert result.reading.kind == "mask" and result.objects["volume_vox"].tolist() == [729] * 4


def test_the_object_id_test_gives_one_answer_in_every_format(tmp_path):
    """The uint8 object-ID refusal read a sample of slices (.npy) or of chunks (.zarr): the same array was
    refused as .npy and accepted as .zarr. Its sample now depends on the shape alone."""
    from tomoseg.objects.reading import read_as

    flat = np.zeros((40, 50, 60), np.uint8)  # objects of one value each: an edited mask (the review's mkcli.py)
    z, y, x = np.indices(flat.shape)
    flat[((z - 20) ** 2 + (y - 25) ** 2 + (x - 30) ** 2) <= 16] = 200
    flat[0:3, 5:8, 5:8] = flat[10:13, 10:13, 57:60] = flat[30, 10, 10:17] = flat[30:32, 20:22, 10:12] = 255
    flat[5:8, 40:43, 40:43] = 127
    flat[33:36, 40:43, 40:43] = 128
    flat[10:14, 30:34, 5:9] = np.where(np.indices((4, 4, 4))[0] % 2 == 0, 250, 130)
    answers = {}
    for name in ("a.npy", "a.zarr", "a.tif", "a.h5"):
        write_volume(str(tmp_path / name), flat)
        with open_volume(str(tmp_path / name)) as vol:
            try:
                answers[name] = read_as(vol, where=name).kind
            except TomosegError as exc:
                answers[name] = str(exc).split(": ", 1)[1][:40]
    try:
        answers["memory"] = read_as(flat).kind
    except TomosegError as exc:
        answers["memory"] = str(exc).split(": ", 1)[1][:40]
    assert len(set(answers.values())) == 1, answers


def test_the_probability_map_given_beside_a_mask_is_read_by_the_same_rule(tmp_path, capsys):
    """``analyze MASK --probability MAP``: the confidence columns took the map's values as they were, so a map
    stored as uint16 or Fiji's 32-bit float (whole values 0-255) gave a mean probability of 214 instead of
    0.84, and a gray image gave numbers in the thousands without a word. Now whole values 0-255 of any type
    are the uint8 map, a float map in [0, 1] is taken as it is, anything else is refused, and a 0/1 mask given
    in its place is warned about."""
    p = _map()
    mask = (p > 127).astype(np.uint8)
    np.save(tmp_path / "mask.npy", mask)
    inputs = {"u8": p, "u16": p.astype(np.uint16), "f32": p.astype(np.float32), "unit": p / np.float32(255),
              "gray": p.astype(np.uint16) * 300, "neg": p.astype(np.int16) - 1, "over": p / np.float32(100),
              "binary": mask}
    for name, values in inputs.items():
        np.save(tmp_path / f"{name}.npy", values)
    columns = {}
    for name in inputs:
        code = main(["analyze", str(tmp_path / "mask.npy"), "--probability", str(tmp_path / f"{name}.npy"),
                     "--csv", str(tmp_path / f"{name}.csv"), "-q"])
        err = capsys.readouterr().err
        if name in ("gray", "neg", "over"):
            assert code == 1 and f"{name}.npy (the probability map): holds" in err, err
            continue
        assert code == 0, err
        table = read_csv(tmp_path / f"{name}.csv")
        columns[name] = (np.asarray(table["mean_probability"]), np.asarray(table["max_probability"]))
        assert ("holds only 0 and 1 where the objects are (a mask?)" in err) == (name == "binary")
    for name in ("u16", "f32", "unit"):
        np.testing.assert_allclose(columns[name][0], columns["u8"][0], rtol=1e-6)
        np.testing.assert_allclose(columns[name][1], columns["u8"][1], rtol=1e-6)
    assert 0.5 < columns["u8"][0].min() and columns["u8"][1].max() <= 1
    assert columns["binary"][1].max() <= 1 / 255 + 1e-9


def test_a_probability_map_refused_by_a_block_the_sample_did_not_see(tmp_path):
    """The sample of a chunked ``--probability`` map can miss the values that make it no probability map: the
    block that holds them refuses it as it is read (the mask's own reading is not revised for it)."""
    p = _map(shape=(64, 64, 64))
    mask = (p > 127).astype(np.uint8)
    gray = p.astype(np.uint16)
    gray[40:44, 30:34, 30:34] = 4000  # in a chunk the sample of 16 slices does not read
    write_volume(tmp_path / "gray.zarr", gray, chunks=(8, 64, 64))
    opts = AnalysisOptions(in_memory_voxels=1, chunks=(16, 64, 64))
    with pytest.raises(TomosegError, match="holds values from 0 to 4000; a probability map holds 0-255"):
        analyze(mask, probability=open_volume(tmp_path / "gray.zarr"), options=opts)


def _sparse_ids(shape=(80, 320, 320)):
    """A uint16 label image of six balls with IDs on both sides of 127, all in cells the object-ID sample does
    not read (z 32-48, y and x 128-192 of this shape)."""
    from tomoseg.objects.reading import id_sample

    lab = np.zeros(shape, np.uint16)
    z, y, x = np.ogrid[:shape[0], :shape[1], :shape[2]]
    centres = [(40, 136, 136), (40, 136, 160), (40, 136, 184), (40, 160, 136), (40, 160, 172), (40, 184, 150)]
    for ident, (cz, cy, cx) in zip((3, 50, 90, 130, 200, 250), centres):
        lab[(z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2 <= 16] = ident
    assert all(not lab[cell].any() for cell in id_sample(shape))
    return lab


@pytest.mark.parametrize("where", ["memory", "npy", "zarr"])
def test_a_sparse_label_image_the_id_sample_misses_is_read_as_labels(tmp_path, where):
    """A uint16 label image with few objects, none in the blocks the object-ID test reads, was read as a
    probability map: the objects with IDs up to 127 were dropped without a word (3 of 6 found). The objects
    found are flat plateaus of several values, which no probability map makes: it is read again as labels."""
    lab = _sparse_ids()
    if where == "memory":
        volume = lab
    elif where == "npy":
        np.save(tmp_path / "lab.npy", lab)
        volume = open_volume(str(tmp_path / "lab.npy"))
    else:
        write_volume(tmp_path / "lab.zarr", lab, chunks=(16, 64, 64))
        volume = open_volume(str(tmp_path / "lab.zarr"))
    opts = AnalysisOptions(in_memory_voxels=2**30 if where != "zarr" else 1, chunks=(32, 128, 128))
    result = analyze(volume, options=opts)
    assert result.reading.kind == "labels" and len(result.objects["label"]) == 6
    assert sorted(result.objects["volume_vox"].tolist()) == [int((lab == i).sum()) for i in (3, 50, 90, 130, 200, 250)]
    # stored as uint8 it is refused (the threshold would drop the IDs up to 127), not read as 3 objects
    with pytest.raises(TomosegError, match="looks like an image of object IDs stored as uint8"):
        analyze(lab.astype(np.uint8), options=opts)


def test_a_probability_map_with_flat_saturated_objects_stays_a_probability_map():
    """Objects all saturated at 255 (one value) are no object IDs: still a probability map."""
    lab = _sparse_ids()
    p = np.where(lab > 0, 255, 0).astype(np.uint16)
    result = analyze(p)
    assert result.reading.kind == "probability" and len(result.objects["label"]) == 6


def test_evaluate_reads_a_sparse_label_image_prediction_as_labels(tmp_path):
    """The same sparse label image as a prediction: its voxel scores counted only the IDs above 127 (half the
    objects missed); now they are read again as labels, voxel and object scores alike."""
    from tomoseg.evaluation import evaluate

    lab = _sparse_ids()
    truth = (lab > 0).astype(np.uint8)
    for in_memory in (2**30, 1):
        ev = evaluate(lab, truth, options=AnalysisOptions(in_memory_voxels=in_memory, chunks=(32, 128, 128)))
        assert ev["prediction_read_as"] == "labels"
        assert ev["voxel"]["fn"] == 0 and ev["voxel"]["fp"] == 0 and ev["objects"]["recall"] == 1.0


class _Recorder:
    """A bar that records its position after each call, and whether anything reset it."""

    def __init__(self, total):
        self.total, self.n, self.desc, self.seen, self.resets, self.descs = total, 0, "evaluate", [], 0, []

    def update(self, n):
        self.n += int(n)
        self.seen.append(self.n)

    def reset(self, *args, **kwargs):
        self.resets += 1
        self.n = 0

    def set_description(self, desc, **kwargs):
        self.desc = desc
        self.descs.append(desc)


@pytest.mark.parametrize("case", ["label image", "revised reading"])
def test_evaluate_read_again_keeps_one_bar_that_never_goes_back(tmp_path, case):
    """evaluate's own re-reads (the voxel pass under a revised reading; the whole evaluation again where the
    prediction turns out a label image) reset the caller's bar to 0 % (the CLI's bar of 4 passes restarted).
    The bar now goes on: the voxels read so far are added to its total, its description says what is read
    again and is restored at the end, and it ends full, at its total (the revised reading here is found before
    any voxel is counted: nothing to add)."""
    from tomoseg.cli.analysis import _Passes
    from tomoseg.evaluation import evaluate

    if case == "label image":
        pred = _sparse_ids()
        truth = (pred > 0).astype(np.uint8)
        options = AnalysisOptions(chunks=(32, 128, 128))
    else:
        p = _sparse_map(tmp_path)
        pred = open_volume(str(tmp_path / "sp.zarr"))
        truth = (p > 127).astype(np.uint8)
        options = AnalysisOptions(in_memory_voxels=0, chunks=(32, 32, 32))
    bar = _Recorder(int(np.prod(truth.shape)))
    ev = evaluate(pred, truth, options=options, progress=_Passes(bar, 4))
    assert ev["voxel"]["fn"] == 0 and ev["voxel"]["fp"] == 0
    assert bar.resets == 0 and bar.seen == sorted(bar.seen) and bar.n == bar.total and bar.desc == "evaluate"
    if case == "label image":  # read again after two passes: those voxels are more to do, all of it done
        assert bar.total == truth.size * 3 // 2
        assert bar.descs == ["evaluate (reading the prediction again)", "evaluate"]
