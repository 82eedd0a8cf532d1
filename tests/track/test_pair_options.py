"""``tomoseg phantom --pair``'s change options (PairChanges' knobs): what they change, and their errors."""

import collections
import json

import pytest

from tomoseg.cli import main
from tomoseg.errors import TomosegError
from tomoseg.synthetic.pair import PairChanges

SMALL = ["--shape", "32", "112", "112", "--set", "object_fraction=0.008", "--seed", "4"]


def _pair(folder, *options) -> tuple[dict, dict]:
    """A pair written with ``options``: (its --pair-truth JSON, the AFTER image's provenance record)."""
    folder.mkdir()
    assert main(["phantom", str(folder / "b.tif"), "--labels", str(folder / "bl.tif"), "--pair",
                 str(folder / "a.tif"), "--pair-labels", str(folder / "al.tif"), "--pair-truth",
                 str(folder / "t.json"), *SMALL, *options, "-q"]) == 0
    return (json.loads((folder / "t.json").read_text(encoding="utf-8")),
            json.loads((folder / "a.tif.provenance.json").read_text(encoding="utf-8")))


def test_the_change_options_change_the_pair_as_said_and_are_recorded(tmp_path, capsys):
    """--pair-remove, --pair-add and --pair-beside-removed set the shares of dissolved and new objects (the
    default pair of the same seed has one of each, and none formed beside a dissolved one); the truth JSON and
    the provenance record the changes asked, the provenance's command line repeats the options."""
    plain, _ = _pair(tmp_path / "plain")
    truth, record = _pair(tmp_path / "asked", "--pair-remove", "0.3", "--pair-add", "0.25",
                          "--pair-beside-removed", "1")
    n = len(set(truth["matches"]["before_label"]) - {0})
    assert n == len(set(plain["matches"]["before_label"]) - {0}) >= 15  # the same BEFORE objects
    default, asked = (collections.Counter(t["matches"]["change"]) for t in (plain, truth))
    assert default["removed"] == max(round(PairChanges().remove * n), 1) < asked["removed"] == round(0.3 * n)
    assert default["added"] == round(PairChanges().add * n) < asked["added"] == round(0.25 * n)
    assert default["added_beside_removed"] == 0 and asked["removed"] // 2 <= asked["added_beside_removed"] <= \
        asked["removed"]
    assert plain["changes_asked"] == json.loads(json.dumps(vars(PairChanges())))
    assert truth["changes_asked"]["remove"] == 0.3 and truth["changes_asked"]["add"] == 0.25
    assert truth["changes_asked"]["beside_removed"] == 1.0 and truth["changes_asked"]["grow"] == PairChanges().grow
    assert record["changes_asked"] == truth["changes_asked"]
    assert "--pair-remove 0.3 --pair-add 0.25 --pair-beside-removed 1.0" in record["command"]
    with pytest.raises(SystemExit):
        main(["phantom", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--pair-beside-removed SHARE" in help_text and "(default 0.06)" in help_text


@pytest.mark.parametrize("options, line", [
    (["--pair-remove", "1.5"], "--pair-remove 1.5: give a share between 0 and 1 (e.g. 0.3 for 30 %)"),
    (["--pair-add", "-0.1"], "--pair-add -0.1: give the new objects as a share of the BEFORE objects' count, 0 or "
                             "more (e.g. 0.1, or 2 for twice as many)"),
    (["--pair-beside-removed", "2"], "--pair-beside-removed 2: give a share between 0 and 1 (e.g. 0.3 for 30 %)"),
    (["--pair-grow-by", "0"], "--pair-grow-by 0: give the voxels added to a grown object's radius, more than 0 "
                              "(e.g. 1)"),
    (["--pair-shrink-by", "nan"], "--pair-shrink-by nan: give a finite number"),
    (["--pair-shrink-by", "3"], "--pair-shrink-by 3: give the voxels taken from a shrunk object's radius, more "
                                "than 0 and less than 2.5 (objects of radius 2.5 voxels or more are shrunk)"),
], ids=["remove", "add", "beside", "grow_by", "nan", "shrink_by"])
def test_a_bad_change_is_one_error_line_before_any_file(tmp_path, cli_error, options, line):
    argv = ["phantom", str(tmp_path / "b.tif"), "--labels", str(tmp_path / "bl.tif"), "--pair",
            str(tmp_path / "a.tif"), "--pair-labels", str(tmp_path / "al.tif"), *SMALL, *options]
    assert cli_error(main(argv)) == f"tomoseg: error: {line}"
    assert list(tmp_path.iterdir()) == []


def test_a_change_option_needs_a_pair(tmp_path, cli_error):
    line = cli_error(main(["phantom", str(tmp_path / "b.tif"), "--labels", str(tmp_path / "bl.tif"), *SMALL,
                           "--pair-remove", "0.3"]))
    assert line.startswith("tomoseg: error: --pair-remove 0.3: a change between the two scans of a pair; give "
                           "--pair AFTER_IMAGE too")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("changes", [{"remove": 1.2}, {"beside_removed": -0.5}, {"grow_by": float("inf")},
                                     {"shrink_by": 2.5}])
def test_pair_changes_refuse_values_out_of_range(changes):
    """The Python API checks the same rules (one place: change_problem), naming the field."""
    (name, value), = changes.items()
    with pytest.raises(TomosegError, match=f"^PairChanges {name}={value!r}: give "):
        PairChanges(**changes)


def test_more_new_objects_than_old_ones_may_be_asked():
    """--pair-add is new objects per BEFORE object: above 1 (more new precipitates than old) is a real case."""
    assert PairChanges(add=2.0).add == 2.0


@pytest.mark.parametrize("option", [["--rotation", "0", "0", "5"], ["--translation", "1", "2", "3"],
                                    ["--pair-labels", "al.tif"], ["--pair-truth", "t.json"]])
def test_the_pairs_other_options_need_a_pair_too(tmp_path, cli_error, option):
    """A single phantom left --rotation, --pair-labels ... aside without a word (and wrote them in its command)."""
    line = cli_error(main(["phantom", str(tmp_path / "b.tif"), "--labels", str(tmp_path / "bl.tif"), *SMALL, *option]))
    assert line == f"tomoseg: error: {option[0]}: belongs to the second scan of a pair; give --pair AFTER_IMAGE " \
                   "too (or leave it out)"
    assert list(tmp_path.iterdir()) == []
