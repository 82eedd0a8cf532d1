"""tomoseg's marker in ONNX files, written and read without the onnx package."""

import numpy as np
import pytest

from tomoseg.io.onnx_marker import add_marker, read_marker


def test_marker_round_trip_and_onnx_sees_it(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph)
    model.metadata_props.add(key="other", value="kept")
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    assert read_marker(path) is None
    add_marker(path, {"tool": "tomoseg export-onnx", "n": 1})
    assert read_marker(path) == {"tool": "tomoseg export-onnx", "n": 1}
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded)
    assert {e.key: e.value for e in loaded.metadata_props}["other"] == "kept"


@pytest.mark.parametrize("content", [b"", b"hello world\n", b"\x72\x05\x0a\x07tomoseg", b"\xff" * 64,
                                     np.random.default_rng(0).bytes(4096)])
def test_other_files_carry_no_marker(tmp_path, content):
    path = tmp_path / "x.onnx"
    path.write_bytes(content)
    assert read_marker(path) is None
    assert read_marker(tmp_path / "missing.onnx") is None
