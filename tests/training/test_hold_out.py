"""data.hold_out: without validation volumes, the last share of each training volume's annotated slices is kept
out of training and validated on (random mode), so the validation scores are not training-set numbers."""

import warnings

import numpy as np
import pytest
import yaml

import tomoseg
from tomoseg.errors import TomosegError, TomosegWarning
from tomoseg.training import config_from_dict, prepare_data, train
from tomoseg.training.checkpoints import changed_keys
from tomoseg.training.sampling import PatchSource
from tomoseg.training.validation import validation_patches

from test_validation_review import _pair, _z_volume  # the same pairs as the validation review's


def _cfg(tmp_path, data, **sampling):
    # voxel_size_nm: the .npy files record none (without it the run warns, review R2)
    return {"output": str(tmp_path / "run"), "epochs": 1, "seed": 3, "model": {"levels": 2, "base_features": 2},
            "voxel_size_nm": [30, 30, 30],
            "data": data, "optim": {"learning_rate": 0.01}, "augment": {"zoom": [1.0, 1.0]},
            "sampling": {"patch_size": 16, "batch_size": 4, "steps_per_epoch": 1, "validation_patches": 8,
                         **sampling}}


def _slices_seen(x, volume_image):
    z_of = {float(v): z for z, v in enumerate(volume_image[:, 0, 0])}  # z-scored value -> slice index
    return {z_of[float(v)] for v in x[:, 0].reshape(-1).tolist()}


def test_the_last_fifth_of_the_slices_validates_and_no_training_patch_reaches_them(tmp_path):
    image, labels = _z_volume(side=48)
    cfg = config_from_dict(_cfg(tmp_path, {"volumes": [_pair(tmp_path, image, labels)]}))
    train_vols, val_vols = prepare_data(cfg, progress=False)
    assert [v.shape[0] for v in train_vols] == [64] and [v.shape[0] for v in val_vols] == [16]
    assert val_vols[0].name.endswith("[held-out slices 64..79]")
    x, _ = validation_patches(cfg, val_vols, train_vols, "cpu")
    whole = np.concatenate([train_vols[0].image, val_vols[0].image])  # the normalized volume
    assert _slices_seen(x, whole) == set(range(64, 80))
    source = PatchSource(train_vols, cfg.sampling, cfg.augment, 255, False, "cpu", seed=0)
    rng, seen = np.random.default_rng(0), set()
    for _ in range(20):
        xb, _ = source.batch(rng, train=False)
        seen |= _slices_seen(xb, whole)
    assert max(seen) <= 63 and min(seen) == 0


def test_sparse_annotation_holds_out_a_share_of_the_annotated_slices(tmp_path):
    image, labels = _z_volume(side=48)
    labels[:] = 255          # not annotated ...
    labels[10:30] = 0        # ... but slices 10..29
    labels[10:30, 20:24, 20:24] = 1
    cfg = config_from_dict(_cfg(tmp_path, {"volumes": [_pair(tmp_path, image, labels)]}))
    train_vols, val_vols = prepare_data(cfg, progress=False)
    # the annotated slices 10..29 with half a patch (8) of context: slices 2..37 kept; the last fifth of the
    # annotated ones (26..29) and the context after them held out, named by their slices in the file
    assert train_vols[0].name.endswith("[annotated region 2:38,0:48,0:48] [train slices 2..25]")
    assert val_vols[0].name.endswith("[annotated region 2:38,0:48,0:48] [held-out slices 26..37]")
    assert (val_vols[0].labels[:4] != 255).all() and (val_vols[0].labels[4:] == 255).all()


def test_a_run_records_where_it_validated_and_does_not_warn(tmp_path):
    image, labels = _z_volume(side=48)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TomosegWarning)
        run = train(_cfg(tmp_path, {"volumes": [_pair(tmp_path, image, labels)]}), progress=False)
    setup = tomoseg.load_model(run / "best.safetensors").metadata["setup"]
    assert setup["validation_source"] == "held-out slices of the training volumes (data.hold_out 0.2)"
    assert len(setup["held_out"]) == 1 and setup["held_out"][0].endswith("[held-out slices 64..79]")


def test_a_volume_too_thin_to_spare_slices_trains_whole_with_a_warning(tmp_path):
    image, labels = _z_volume(depth=18, side=48)  # 20 %: 4 slices held out leaves 14, thinner than a patch of 16
    cfg = _cfg(tmp_path, {"volumes": [_pair(tmp_path, image, labels)]})
    with pytest.warns(TomosegWarning, match=r"p_img.npy: no slices held out for validation \(its training part "
                                            r"would be 14 slices, thinner than a patch \(16\)\)"):
        train_vols, val_vols = prepare_data(config_from_dict(cfg), progress=False)
    assert [v.shape[0] for v in train_vols] == [18] and val_vols == []


@pytest.mark.parametrize("bad", [1, 1.5, -0.1, "x", True])
def test_a_bad_hold_out_is_refused(tmp_path, bad):
    with pytest.raises(TomosegError, match="data.hold_out"):
        config_from_dict(_cfg(tmp_path, {"volumes": [{"image": "a", "labels": "b"}], "hold_out": bad}))


def test_a_run_started_before_hold_out_existed_resumes_as_it_was(tmp_path):
    image, labels = _z_volume(side=48)
    cfg = _cfg(tmp_path, {"volumes": [_pair(tmp_path, image, labels)], "hold_out": 0})
    with pytest.warns(TomosegWarning, match="no held-out data"):
        run = train(cfg, progress=False)
    saved = yaml.safe_load((run / "config.yaml").read_text())
    del saved["data"]["hold_out"]  # as an earlier version wrote it
    (run / "config.yaml").write_text(yaml.safe_dump(saved))
    assert changed_keys(saved, config_from_dict(cfg).to_dict()) == []
    cfg["epochs"] = 2
    with pytest.warns(TomosegWarning, match="no held-out data"):
        train(cfg, resume=True, progress=False)  # hold_out 0: what that run did
    cfg["data"].pop("hold_out")
    with pytest.raises(TomosegError, match=r"config changed since this run started \(data.hold_out\).*started "
                                           r"before data.hold_out existed: set it to 0 in its config.yaml"):
        train(cfg, resume=True, progress=False)


def test_held_out_validation_patches_hold_annotated_voxels(tmp_path):
    """Review R6: with a few annotated slices, the grid over the held-out part is mostly unannotated, and the
    validation patches drawn among all its cells scored on almost no voxels (best.safetensors picked on them).
    They are drawn among the cells holding annotated voxels; a run started before keeps its draw when resumed
    (sampling.validation_cells: any, which an older run's config lacks)."""
    image, labels = _z_volume(side=64)
    labels[:] = 255
    for z in (6, 14, 22, 30, 38, 46, 54, 62, 70, 78):  # every 8th slice annotated, in two opposite corners
        for c in (slice(0, 16), slice(48, 64)):
            labels[z, c, c] = 0
            labels[z, c, c][4:8, 4:8] = 1
    data = {"volumes": [_pair(tmp_path, image, labels)]}
    counts = {}
    for cells in ("annotated", "any"):
        cfg = config_from_dict(_cfg(tmp_path, data, validation_cells=cells, validation_patches=4,
                                    held_out_cells="drawn"))  # the draw (every cell: the test below)
        train_vols, val_vols = prepare_data(cfg, progress=False)
        _, y = validation_patches(cfg, val_vols, train_vols, "cpu")
        counts[cells] = [int((p != 255).sum()) for p in y]
    assert len(counts["annotated"]) == 2 and all(c > 0 for c in counts["annotated"]), counts  # both corners
    assert len(counts["any"]) == 4 and 0 in counts["any"], counts  # the old draw: cells with nothing to score
    # a run started before the key resumes with the draw it had, without being asked to edit its config
    from tomoseg.training.checkpoints import adopt_old_values

    cfg = config_from_dict(_cfg(tmp_path, data))
    saved = cfg.to_dict()
    del saved["sampling"]["validation_cells"]  # an older run's config.yaml
    assert cfg.sampling.validation_cells == "annotated"
    assert adopt_old_values(saved, cfg) == ["sampling.validation_cells"]
    assert cfg.sampling.validation_cells == "any" and saved["sampling"]["validation_cells"] == "any"
    assert changed_keys(saved, cfg.to_dict()) == []
    assert adopt_old_values(cfg.to_dict(), cfg) == []  # a run that has the key keeps its value


def test_held_out_slices_validate_on_every_annotated_cell_and_the_share_is_recorded(tmp_path, capsys):
    """Review R6: held-out validation scored validation_patches (8) grid cells among the annotated ones, 1/8 of the
    held-out annotation here (a share that shrinks as slices grow). It scores every cell holding annotated voxels;
    the share of the held-out annotation scored is printed and recorded. A run started before resumes with its
    draw (sampling.held_out_cells: drawn)."""
    import tomoseg
    from tomoseg.training.checkpoints import adopt_old_values
    from tomoseg.training.validation import coverage

    image, labels = _z_volume(side=128)  # 80 slices, every one annotated: held out 64..79, a grid of 16 x 16 x 16
    data = {"volumes": [_pair(tmp_path, image, labels)]}
    shares = {}
    for cells in ("all", "drawn"):
        cfg = config_from_dict(_cfg(tmp_path, data, held_out_cells=cells))
        train_vols, val_vols = prepare_data(cfg, progress=False)
        patches = validation_patches(cfg, val_vols, train_vols, "cpu")
        shares[cells] = (len(patches[0]), coverage(patches, val_vols, 255))
    assert shares == {"all": (64, 1.0), "drawn": (8, 0.125)}
    run = train(_cfg(tmp_path, data), progress=True)
    setup = tomoseg.load_model(run / "best.safetensors").metadata["setup"]
    assert setup["validation_patches"] == 64 and setup["validation_coverage"] == 1.0
    assert "held-out slices of the training volumes (data.hold_out 0.2); 64 patches, 100% of its annotated " \
           "voxels)" in capsys.readouterr().err
    cfg = config_from_dict(_cfg(tmp_path, data))
    saved = cfg.to_dict()
    del saved["sampling"]["held_out_cells"]  # an older run's config.yaml
    assert adopt_old_values(saved, cfg) == ["sampling.held_out_cells"] and cfg.sampling.held_out_cells == "drawn"
