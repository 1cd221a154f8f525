"""A bidirectional ONNX node's two directions read apart and merged again, as tf2onnx writes Keras' Bidirectional
(tests/test_load_tf2onnx.py has those real exports): graphs built with onnx.helper, each compared with ONNX Runtime
running the file; and what must be refused, by node name and reason."""

import numpy as np
import pytest
from onnx_build import TensorProto, assert_refused, compare_time_first, helper, recurrent_weights, save, value

import lstmrt

ort = pytest.importorskip("onnxruntime")

F_IN, H, T, B = 3, 4, 6, 3
END = 2**31 - 1  # tf2onnx's "to the end" of a slice


def _slice(name, source, start, end, axis):
    """Slice of `source` along `axis` then Squeeze of that axis: tf2onnx's x[start] (strided_slice)."""
    consts = {f"{name}_s": [start], f"{name}_e": [end], f"{name}_a": [axis]}
    nodes = [
        helper.make_node("Slice", [source, *consts], [f"{name}_sliced"], name=f"{name}_slice"),
        helper.make_node("Squeeze", [f"{name}_sliced", f"{name}_a"], [name], name=f"{name}_squeeze"),
    ]
    return nodes, {k: np.array(v, np.int64) for k, v in consts.items()}


def _gather(name, source, index, axis):
    nodes = [helper.make_node("Gather", [source, f"{name}_i"], [name], axis=axis, name=f"{name}_gather")]
    return nodes, {f"{name}_i": np.array(index, np.int64)}


def _directions(take="slice"):
    """Y (T, 2, B, H) split into yf and yb (T, B, H)."""
    pick = _slice if take == "slice" else _gather
    nodes, consts = [], {}
    for name, index in (("yf", 0), ("yb", 1)):
        n, c = pick(name, "Y", index, index + 1, 1) if take == "slice" else pick(name, "Y", index, 1)
        nodes, consts = nodes + n, {**consts, **c}
    return nodes, consts


def _finals():
    """Each direction's final output: yf's last step, yb's first (B, H)."""
    nodes, consts = _directions()
    for name, source, start, end in (("ff", "yf", -1, END), ("fb", "yb", 0, 1)):
        n, c = _slice(name, source, start, end, 0)
        nodes, consts = nodes + n, {**consts, **c}
    return nodes, consts


def _merge(op, a, b, **attrs):
    return [helper.make_node(op, [a, b], ["merged"], name="merge", **attrs)], {}


def _head(source, width, rng):
    """A Dense on the merged value, so that its width and order matter."""
    weight = rng.standard_normal((width, 2)).astype(np.float32)
    return [helper.make_node("MatMul", [source, "head_W"], ["out"], name="head")], {"head_W": weight}


def _file(path, rng, parts, *, op="LSTM", output="out", lengths=False, rank=3):
    """X (T, B, F) -> a bidirectional `op` node -> Y -> the nodes of `parts` ((nodes, constants) each)."""
    consts = recurrent_weights(rng, op, F_IN, H, directions=2)
    inputs = ["X", "W", "R", "B"] + (["sequence_lens"] if lengths else [])
    nodes = [helper.make_node(op, inputs, ["Y"], name="rnn", hidden_size=H, direction="bidirectional")]
    for part_nodes, part_consts in parts:
        nodes, consts = nodes + part_nodes, {**consts, **part_consts}
    graph_inputs = [value("X", ["T", "B", F_IN])]
    graph_inputs += [value("sequence_lens", ["B"], TensorProto.INT32)] if lengths else []
    return save(path, nodes, graph_inputs, [value(output, rank)], consts, opset=17)


def _inputs(rng):
    return rng.standard_normal((B, T, F_IN)).astype(np.float32)


ACCEPTED = {  # id -> (parts, merge mode, return_sequences)
    "slice-concat-sequences": (lambda rng: [_directions(), _merge("Concat", "yf", "yb", axis=2)], "concat", True),
    "gather-concat-sequences": (
        lambda rng: [_directions("gather"), _merge("Concat", "yf", "yb", axis=-1)],
        "concat",
        True,
    ),
    "slice-add-sequences": (lambda rng: [_directions(), _merge("Add", "yf", "yb")], "sum", True),
    "gather-mul-sequences": (lambda rng: [_directions("gather"), _merge("Mul", "yb", "yf")], "mul", True),
    "concat-then-dense": (
        lambda rng: [_directions(), _merge("Concat", "yf", "yb", axis=2), _head("merged", 2 * H, rng)],
        "concat",
        True,
    ),
    "final-steps-concat-dense": (
        lambda rng: [_finals(), _merge("Concat", "ff", "fb", axis=1), _head("merged", 2 * H, rng)],
        "concat",
        False,
    ),
    "final-steps-add": (lambda rng: [_finals(), _merge("Add", "ff", "fb")], "sum", False),
}


@pytest.mark.parametrize("name", list(ACCEPTED))
@pytest.mark.parametrize("op", ["LSTM", "GRU"])
def test_directions_merged_as_the_graph_merges_them(tmp_path, rng, name, op):
    build, mode, sequences = ACCEPTED[name]
    output = "out" if "dense" in name else "merged"
    path = _file(tmp_path / "m.onnx", rng, build(rng), op=op, output=output, rank=3 if sequences else 2)
    model = compare_time_first(path, _inputs(rng))
    (bidirectional,) = [layer for layer in model.layers if isinstance(layer, lstmrt.Bidirectional)]
    assert bidirectional.merge_mode == mode
    assert model.return_sequences is sequences


def test_final_steps_with_sequence_lens_are_each_sequences_own(tmp_path, rng):
    """With sequence_lens, the backward direction's first step is still its final output, and the sum of two
    sequences is zero past each length in ONNX Runtime as in lstmrt."""
    lengths = np.array([T, 3, 1], np.int32)
    parts = [_directions(), _merge("Add", "yf", "yb")]
    compare_time_first(_file(tmp_path / "sum.onnx", rng, parts, lengths=True, output="merged"), _inputs(rng), lengths)


REFUSED = {  # id -> (parts, output, what the message names); outputs (T, B, H) or (T, B, 2H) but "ff" (B, H)
    "backward-then-forward": (
        lambda rng: [_directions(), _merge("Concat", "yb", "yf", axis=2)],
        "merged",
        ("node merge (Concat)", "other than forward then backward"),
    ),
    "concat-along-time": (
        lambda rng: [_directions(), _merge("Concat", "yf", "yb", axis=0)],
        "merged",
        ("node merge (Concat)", "along the features"),
    ),
    "one-direction-output": (lambda rng: [_directions()], "yf", ("is one direction of a bidirectional layer",)),
    "dense-on-one-direction": (
        lambda rng: [_directions(), _head("yb", H, rng)],
        "out",
        ("node head (MatMul)", "one direction of a bidirectional layer's output"),
    ),
    "forward-first-step": (
        lambda rng: [_directions(), _slice("ff", "yf", 0, 1, 0)],
        "ff",
        ("node ff_slice (Slice)", "lstmrt reads whole steps"),
    ),
    "sequence-plus-final": (
        lambda rng: [_finals(), _merge("Add", "yf", "fb")],  # (T, B, H) + (B, H)
        "merged",
        ("node merge (Add)", "not the two directions of one bidirectional layer"),
    ),
    "subtract-directions": (
        lambda rng: [_directions(), _merge("Sub", "yf", "yb")],
        "merged",
        ("node merge (Sub)",),
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_refused_naming_the_node(tmp_path, rng, name):
    build, output, fragments = REFUSED[name]
    path = _file(tmp_path / "m.onnx", rng, build(rng), output=output, rank=2 if output == "ff" else 3)
    assert_refused(path, *fragments)


def test_last_step_with_sequence_lens_is_refused(tmp_path, rng):
    """ONNX's Y is zero past a sequence's length, so its last step is not a shorter sequence's final output."""
    parts = [_finals(), _merge("Concat", "ff", "fb", axis=1)]
    path = _file(tmp_path / "m.onnx", rng, parts, lengths=True, output="merged", rank=2)
    assert_refused(path, "node ff_slice (Slice)", "sequence_lens", "Y_h")


def test_concat_without_axis_is_a_damaged_file(tmp_path, rng):
    """ONNX requires Concat's axis; a file without it is damaged (it was a TypeError out of lstmrt.load)."""
    import onnx

    path = _file(tmp_path / "m.onnx", rng, [_directions(), _merge("Concat", "yf", "yb", axis=2)], output="merged")
    model = onnx.load(str(path))
    concat = next(n for n in model.graph.node if n.op_type == "Concat")
    del concat.attribute[:]
    onnx.save(model, str(path))
    with pytest.raises(lstmrt.CorruptFileError, match=r"node merge \(Concat\) has no axis"):
        lstmrt.load(path)
