"""Review PH (docs/phantoms.md): odd requests to the phantom generator and what its outputs record."""

from __future__ import annotations

import numpy as np
import pytest

from tomoseg.cli import main
from tomoseg.errors import TomosegError, TomosegWarning
from tomoseg.synthetic import make_phantom


# ------------------------------------------------------------------------------------------------ PH1
@pytest.mark.parametrize("overrides", [
    {"radius_min": 3.5, "radius_mean": 4.0},  # every draw above a quarter of the budget
    {"radius_sd": 0.0, "radius_mean": 3.5},   # a fixed radius: the same draw every time
])
@pytest.mark.timeout(20)  # fails, instead of hanging the run, where the sampler never returns
def test_objects_too_large_for_the_budget_do_not_hang(overrides):
    """32x96x96 holds 590 object voxels; a radius of 3.5 is 180, above a quarter: the sampler redrew for ever."""
    with pytest.warns(TomosegWarning, match="not the object_fraction 0.20% asked"):
        ph = make_phantom((32, 96, 96), rng=0, large_fraction=0.0, **overrides)
    assert len(ph.objects["label"]) >= 1
    r = ph.objects["equivalent_radius_vox"]
    assert r.min() >= 3.5 - 1e-9


# ------------------------------------------------------------------------------------------------ PH4
def _outside_reconstruction(shape):
    Y, X = shape[1:]
    yy, xx = np.mgrid[:Y, :X]
    return np.hypot(yy - (Y - 1) / 2, xx - (X - 1) / 2) > min(Y, X) / 2


def test_no_object_is_labelled_where_the_image_is_the_constant_outside_the_reconstruction():
    """With the pillar moved off the axis, objects near its far side were labelled where the image is 34
    (16 voxels over these seeds before the fix)."""
    hits = 0
    for seed in range(3):
        ph = make_phantom((24, 96, 96), rng=seed, pillar_offset=0.25, object_fraction=0.01)
        out = _outside_reconstruction(ph.image.shape)
        assert np.all(ph.image[:, out] == 34)
        hits += int(ph.labels[:, out].sum())
    assert hits == 0


def test_the_pillar_mask_is_the_pillar_the_image_shows():
    ph = make_phantom((24, 96, 96), rng=0, pillar_radius=0.5)  # off the axis by the default pillar_offset
    out = _outside_reconstruction(ph.image.shape)
    assert not np.any(ph.pillar[:, out])
    assert ph.pillar[:, ~out].any()


@pytest.mark.parametrize("offset", [-0.1, 0.3, 5.0])
def test_pillar_offset_out_of_range_is_refused(offset):
    with pytest.raises(TomosegError, match="pillar_offset"):
        make_phantom((24, 96, 96), rng=0, pillar_offset=offset)


# ------------------------------------------------------------------------------------------------ PH2
@pytest.mark.parametrize("value", ["ture", "maybe", "2", ""])
def test_a_misspelt_boolean_is_refused_not_read_as_false(tmp_path, capsys, cli_error, value):
    line = cli_error(main(["phantom", str(tmp_path / "i.npy"), "--labels", str(tmp_path / "l.npy"),
                           "--shape", "20", "48", "48", "--set", f"physics={value}", "--set", "photons=10", "-q"]))
    assert f"--set physics={value}: give true or false" in line
    assert not (tmp_path / "i.npy").exists()


@pytest.mark.parametrize("value,physics", [("TRUE", True), ("on", True), ("1", True), ("no", False),
                                           ("False", False), ("0", False)])
def test_boolean_words_are_read(value, physics):
    from tomoseg.cli.data import _parse_sets

    assert _parse_sets([f"physics={value}"]) == {"physics": physics}


# ------------------------------------------------------------------------------------------------ PH3
@pytest.mark.parametrize("overrides", [
    {"radius_mean": 9.0, "radius_sd": 0.0},   # an object of radius 9 was placed, radius_max 8
    {"radius_mean": 50.0, "radius_sd": 0.0},  # no object at all, silently
    {"radius_mean": 12.0},                    # every object piled at radius_max
    {"radius_mean": 0.5, "radius_sd": 0.0},   # below radius_min
])
def test_radius_mean_outside_the_radius_range_is_refused(overrides):
    with pytest.raises(TomosegError, match=r"radius_mean = .* must be between radius_min \(1\) and radius_max \(8\)"):
        make_phantom((32, 96, 96), rng=0, **overrides)


def test_a_fixed_radius_inside_the_range_is_kept():
    ph = make_phantom((32, 96, 96), rng=0, radius_mean=2.0, radius_sd=0.0, large_fraction=0.0)
    np.testing.assert_allclose(ph.objects["equivalent_radius_vox"], 2.0)


# ------------------------------------------------------------------------------------------------ PH7
@pytest.mark.parametrize("name,value,match", [
    ("edge_ring_width", 0.0, "positive"),
    ("edge_ring_width", -5.0, "positive"),
    ("ring_artifacts", -3, "zero or positive"),
    ("ring_strength", -1.0, "zero or positive"),
    ("noise_correlation", -0.5, "zero or positive"),
    ("matrix_texture", -7.0, "zero or positive"),
    ("object_gray_sd", -1.0, "zero or positive"),
    ("gain_error", -0.01, "zero or positive"),
    ("matrix_gray", 1e9, "between 0 and 255"),
    ("object_gray", float("nan"), "between 0 and 255"),
    ("z_drift", 1.5, "between -1 and 1"),
    ("photons", float("inf"), "positive"),
])
def test_out_of_range_parameters_are_refused(name, value, match):
    with pytest.raises(TomosegError, match=f"phantom {name} = .* must be {match}"):
        make_phantom((24, 64, 64), rng=0, **{name: value})


# ------------------------------------------------------------------------------------------------ PH6
def test_every_phantom_volume_has_a_record_that_makes_it_again(tmp_path, capsys):
    """A phantom's files said nothing of the seed, preset or --set values that made them."""
    import json
    import shlex

    from tomoseg.io import read_volume
    from tomoseg.io.output_guard import provenance_path
    from tomoseg.synthetic import GENERATOR_VERSION, PhantomConfig

    outputs = {"image": str(tmp_path / "my phantom.tif"), "labels": str(tmp_path / "l.h5:/labels"),
               "instances": str(tmp_path / "l.h5:/instances")}
    assert main(["phantom", outputs["image"], "--labels", outputs["labels"], "--instances", outputs["instances"],
                 "--shape", "20", "48", "48", "--seed", "4", "--preset", "noisy", "--set", "noise_sd=25",
                 "--set", "physics=no", "--voxel-size", "100", "29.333333", "29.333333", "-q"]) == 0
    for what, path in outputs.items():
        record = json.loads(provenance_path(path).read_text())
        assert record["tool"] == "tomoseg phantom" and record["generator_version"] == GENERATOR_VERSION
        assert (record["seed"], record["preset"], record["set"]) == (4, "noisy", {"noise_sd": 25.0, "physics": False})
        assert record["shape"] == [20, 48, 48] and record["voxel_size_nm"] == [100.0, 29.333333, 29.333333]
        assert record["outputs"][what] == path and record["dtype"] == str(read_volume(path).dtype)
        # the record alone makes the same phantom: through the API from its configuration ...
        again = make_phantom(record["shape"], rng=record["seed"], config=PhantomConfig.from_dict(record["config"]))
        np.testing.assert_array_equal(getattr(again, what), read_volume(path))
    # ... and through the CLI from its command line, outputs moved elsewhere
    argv = shlex.split(record["command"])
    assert argv[:2] == ["tomoseg", "phantom"]
    renamed = {str(tmp_path / "my phantom.tif"): str(tmp_path / "again.tif"),
               str(tmp_path / "l.h5:/labels"): str(tmp_path / "again.h5"),
               str(tmp_path / "l.h5:/instances"): str(tmp_path / "again_n.h5")}
    assert main([renamed.get(a, a) for a in argv[1:]] + ["-q"]) == 0
    np.testing.assert_array_equal(read_volume(tmp_path / "again.tif"), read_volume(outputs["image"]))
    np.testing.assert_array_equal(read_volume(tmp_path / "again_n.h5"), read_volume(outputs["instances"]))
    assert read_volume(tmp_path / "again.h5").dtype == np.uint8


def test_a_phantom_npy_keeps_its_voxel_size_in_its_record(tmp_path, capsys):
    from tomoseg.io import open_volume

    assert main(["phantom", str(tmp_path / "i.npy"), "--labels", str(tmp_path / "l.npy"), "--shape", "20", "48",
                 "48", "--voxel-size", "50", "40", "40", "-q"]) == 0
    with open_volume(tmp_path / "l.npy") as vol:
        assert vol.voxel_size == (50.0, 40.0, 40.0)
    # and a second run needs --overwrite, which then replaces it
    assert main(["phantom", str(tmp_path / "i.npy"), "--labels", str(tmp_path / "l.npy"), "--shape", "20", "48",
                 "48", "--seed", "1", "-q", "--overwrite"]) == 0


# ------------------------------------------------------------------------------------------------ PH5
@pytest.mark.parametrize("fraction", [0.2, 0.5])
def test_an_object_fraction_that_does_not_fit_is_said(fraction):
    """object_fraction 0.2 gave 9.3 % of the voxels (0.5: 11.8 %) without a word."""
    with pytest.warns(TomosegWarning, match=rf"not the object_fraction {fraction:.2%} asked: \d+ object\(s\) fit "
                                           r"\(objects lie wholly inside the pillar, 55% of the volume"):
        ph = make_phantom((32, 96, 96), rng=1, object_fraction=fraction)
    assert ph.labels.mean() < 0.9 * fraction


def test_an_object_fraction_that_fits_is_not_warned_about():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ph = make_phantom((32, 96, 96), rng=1, object_fraction=0.05)
    assert ph.labels.mean() == pytest.approx(0.05, rel=0.1)


def test_the_cli_prints_the_shortfall_as_a_warning(tmp_path, capsys):
    assert main(["phantom", str(tmp_path / "i.npy"), "--labels", str(tmp_path / "l.npy"), "--shape", "32", "96",
                 "96", "--set", "object_fraction=0.3", "-q"]) == 0
    assert "tomoseg: warning: phantom (32, 96, 96): its objects fill" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------------ PH8
@pytest.mark.parametrize("shape", [(1, 256, 256), (19, 64, 64), (24, 32, 32)])
def test_too_small_says_the_size_needed(shape):
    with pytest.raises(TomosegError, match=r"too small .* need z of at least 20 and y and x of at least 33; .*"
                                           r"set object_fraction to 0"):
        make_phantom(shape, rng=0)


def test_the_sizes_said_are_enough():
    assert make_phantom((20, 33, 33), rng=0).labels.any()
    one_slice = make_phantom((1, 64, 64), rng=0, object_fraction=0.0)
    assert one_slice.image.shape == (1, 64, 64) and not one_slice.labels.any()


# ------------------------------------------------------------------------------------------------ PH9
def test_the_time_said_for_a_physics_phantom_counts_its_reconstruction(tmp_path, capsys, monkeypatch):
    """256x512x512 in physics mode said "about 1 min" (the image-domain rate); its radon/iradon take ~11 min."""
    import tomoseg.cli.data as data

    def stop(*args, **kwargs):  # the note is printed before the work: stop there
        raise TomosegError("stopped after the checks")

    monkeypatch.setattr(data, "check_phantom_outputs", stop)
    main(["phantom", str(tmp_path / "i.npy"), "--labels", str(tmp_path / "l.npy"), "--shape", "256", "512", "512",
          "--preset", "physics", "-q"])
    err = capsys.readouterr().err
    note = [line for line in err.splitlines() if line.startswith("tomoseg: note:")]
    assert note and "in physics mode takes about" in note[0], err
    minutes = int(note[0].split("takes about ")[1].split(" min")[0])
    assert 5 <= minutes <= 30



# ------------------------------------------------------------------------------------------------ PH10
def _drawn_figure(monkeypatch, tmp_path, phantom):
    """The figure of ``phantom`` as drawn (laid out), before it is saved and closed."""
    import tomoseg.synthetic.figure as figure

    drawn = {}

    def keep(fig, path, *args, **kwargs):
        fig.set_dpi(300)  # laid out as saved (figures.DPI): at 100 dpi the texts fall elsewhere
        fig.canvas.draw()
        drawn["fig"] = fig
        return path

    monkeypatch.setattr(figure, "save_figure", keep)
    figure.phantom_figure(phantom, tmp_path / "f.png")
    return drawn["fig"]


def test_the_histogram_title_clears_the_axis_exponent(monkeypatch, tmp_path):
    fig = _drawn_figure(monkeypatch, tmp_path, make_phantom((24, 128, 128), rng=3))
    renderer = fig.canvas.get_renderer()
    hist = [ax for ax in fig.axes if ax.get_title().startswith("gray values")][0]
    exponent = hist.yaxis.get_offset_text()
    assert exponent.get_text()  # counts in the 1e4s: an exponent is shown
    # the title wholly above it (it ran into it: "1e4gray values ...")
    assert hist.title.get_window_extent(renderer).y0 >= exponent.get_window_extent(renderer).y1


def test_a_phantom_without_objects_says_so_in_its_histogram(monkeypatch, tmp_path):
    fig = _drawn_figure(monkeypatch, tmp_path, make_phantom((24, 64, 64), rng=0, object_fraction=0.0))
    titles = [ax.get_legend().get_title().get_text() for ax in fig.axes if ax.get_legend() is not None]
    assert titles == ["no object voxels"]
    assert not any(ax.get_ylabel() == "object voxels" for ax in fig.axes)  # no empty axis of its own


# ------------------------------------------------------------------------------------------------ labels exact
def test_analyze_measures_the_phantom_objects_back():
    """The labels against tomoseg's own analysis and scipy by hand: count, voxels per object, volume fraction,
    equivalent radius."""
    from scipy import ndimage

    from tomoseg.objects.analysis import analyze

    ph = make_phantom((40, 128, 128), rng=1, object_fraction=0.004)
    table = ph.objects
    result = analyze(ph.labels, voxel_size=(29.33,) * 3)
    objects = result.objects
    assert len(objects["label"]) == len(table["label"]) == ndimage.label(ph.labels)[1]
    np.testing.assert_array_equal(np.sort(objects["volume_vox"]), np.sort(table["label_voxels"]))
    assert result.summary["volume_fraction_all_objects"] == pytest.approx(ph.labels.mean(), rel=1e-12)
    by_hand = np.cbrt(3 * np.sort(table["label_voxels"]) / (4 * np.pi))
    np.testing.assert_allclose(np.sort(objects["equivalent_radius_vox"]), by_hand, rtol=1e-9)
    # and the labelled voxels follow the analytic volumes of the objects (partial volume only)
    big = table["equivalent_radius_vox"] >= 3
    assert np.all(np.abs(table["label_voxels"][big] / table["volume_vox"][big] - 1) < 0.08)


def test_a_pairs_scans_have_records_that_make_them_again(tmp_path, capsys):
    import json
    import shlex

    from tomoseg.io import read_volume
    from tomoseg.io.output_guard import provenance_path

    names = {"image": "b.tif", "labels": "bl.tif", "pair": "a.tif", "pair_labels": "al.tif",
             "instances": "bi.npy", "pair_instances": "ai.npy"}
    options = {"labels": "--labels", "pair": "--pair", "pair_labels": "--pair-labels", "instances": "--instances",
               "pair_instances": "--pair-instances"}
    argv = ["phantom", str(tmp_path / names["image"]), "--shape", "40", "96", "96", "--seed", "2",
            "--set", "object_fraction=0.006", "--rotation", "10", "1", "-1", "-q"]
    for what, option in options.items():
        argv += [option, str(tmp_path / names[what])]
    assert main(argv) == 0
    records = {what: json.loads(provenance_path(tmp_path / name).read_text()) for what, name in names.items()}
    for what, record in records.items():
        assert record["tool"] == "tomoseg phantom" and record["seed"] == 2
        assert record["set"] == {"object_fraction": 0.006}
        assert record["motion"]["rotation_deg"] == [10.0, 1.0, -1.0] and record["outputs"][what].endswith(names[what])
        assert record["dtype"] == ("uint32" if "instances" in what else "uint8")
    again = tmp_path / "again"
    again.mkdir()
    argv = [a.replace(str(tmp_path), str(again)) for a in shlex.split(records["pair"]["command"])[1:]]
    assert main(argv + ["-q"]) == 0
    for name in names.values():
        np.testing.assert_array_equal(read_volume(again / name), read_volume(tmp_path / name))


# ------------------------------------------------------------------------------------------------ PH11
@pytest.mark.parametrize("kwargs,match", [
    ({"shape": (32.7, 96, 96)}, "three whole numbers"),
    ({"shape": (32, 96, 96), "config": "noisy"}, "config: give a PhantomConfig, not a str"),
    ({"shape": (32, 96, 96), "config": {"noise_sd": 3.0}},
     r"give a PhantomConfig, not a dict \(PhantomConfig\(\*\*config\)\)"),
    ({"shape": (32, 96, 96), "preset_name": "clean", "config": "CFG"}, "preset_name .*'clean'.* or a config, not both"),
    ({"shape": (32, 96, 96), "config": "CFG", "no_such": 1}, r"unknown phantom parameter\(s\) \['no_such'\]"),
])
def test_api_misuse_is_one_clear_error(kwargs, match):
    from tomoseg.synthetic import preset

    kwargs = {k: preset("noisy") if v == "CFG" else v for k, v in kwargs.items()}
    with pytest.raises(TomosegError, match=match):
        make_phantom(rng=0, **kwargs)


def test_a_config_with_changes_and_a_whole_float_shape_work():
    from tomoseg.synthetic import preset

    ph = make_phantom((24.0, 64, 64), rng=0, config=preset("noisy"), noise_sd=3.0)
    assert ph.image.shape == (24, 64, 64) and ph.config.noise_sd == 3.0 and ph.config.noise_correlation == 0.8


# ------------------------------------------------------------------------------------------------ formats
def test_one_seed_gives_the_same_volumes_and_voxel_size_in_every_format(tmp_path, capsys):
    from tomoseg.io import open_volume

    reference = make_phantom((20, 64, 64), rng=6)
    for ext in ("tif", "zarr", "ome.zarr", "h5", "nrrd", "npy"):
        image, labels = tmp_path / f"i.{ext}", tmp_path / f"l.{ext}"
        assert main(["phantom", str(image), "--labels", str(labels), "--shape", "20", "64", "64", "--seed", "6",
                     "--voxel-size", "30", "20", "20", "-q"]) == 0
        for path, expected in ((image, reference.image), (labels, reference.labels)):
            with open_volume(path) as vol:
                np.testing.assert_array_equal(vol[:], expected, err_msg=ext)
                assert vol.voxel_size == (30.0, 20.0, 20.0), ext


def test_the_histogram_legend_keeps_clear_of_the_curves(monkeypatch, tmp_path):
    """The legend (upper left) lay over the spike at 34 and the objects' curve."""
    fig = _drawn_figure(monkeypatch, tmp_path, make_phantom((24, 128, 128), rng=3))
    renderer = fig.canvas.get_renderer()
    hist = [ax for ax in fig.axes if ax.get_title().startswith("gray values")][0]
    box = hist.get_legend().get_window_extent(renderer)
    for ax in fig.axes:
        for line in ax.get_lines():
            points = ax.transData.transform(line.get_xydata())
            inside = ((points[:, 0] > box.x0) & (points[:, 0] < box.x1) & (points[:, 1] > box.y0)
                      & (points[:, 1] < box.y1))
            assert not inside.any(), line.get_label()


def test_the_phantom_figure_draws_its_slices_at_the_pixels_shape(tmp_path, monkeypatch):
    """The slice and the zoom were drawn with square pixels whatever ``voxel_size``; they are drawn with
    pixels as tall as y over x (isotropic: square)."""
    import tomoseg.synthetic.figure as figure

    phantom = make_phantom((24, 64, 64), rng=3)
    aspects = {}
    for name, vs in (("flat", (50.0, 30.0, 60.0)), ("square", (29.33, 29.33, 29.33))):
        monkeypatch.setattr(figure, "save_figure", lambda fig, path, *a, **k: aspects.setdefault(
            name, [ax.get_aspect() for ax in fig.axes if ax.images]))
        figure.phantom_figure(phantom, tmp_path / f"{name}.png", voxel_size=vs)
    assert aspects == {"flat": [pytest.approx(0.5)] * 2, "square": [pytest.approx(1.0)] * 2}
