"""Every layer kind and option against the float64 oracle (tests/reference.py), which is itself checked first
against torch (float64) and ONNX Runtime on the parts of docs/math.md they define."""

import pickle

import numpy as np
import pytest
import reference as ref
import specs
import torch
from conftest import ATOL, RTOL_LARGE, assert_close

import lstmrt
from lstmrt.activations import ELEMENTWISE, NAMES


def check(layers, X, *, lengths=None, mask=None, return_sequences=True, atol=ATOL):
    model = lstmrt.Model(layers, return_sequences=return_sequences)
    got = model.predict(X, lengths=lengths, mask=mask)
    want = ref.predict(layers, X, lengths=lengths, mask=mask, return_sequences=return_sequences)
    assert_close(got, want, atol=atol)
    return got, want


def inputs(rng, B, T, input_size):
    return rng.standard_normal((B, T, input_size)).astype(np.float32)


def check_pooled_streams(layers, X):
    """A model that pools over time (GlobalPooling, AttentionPooling) streamed: batched in pieces, and one sequence
    step by step, each step the pool of the sequence so far, as predict's every step gives it."""
    want = lstmrt.Model(layers).predict(X)
    s = lstmrt.Model(layers, return_sequences=False).stream(batch=len(X))
    got = np.concatenate([s.run(X[:, :10]), s.step(X[:, 10])[:, None], s.run(X[:, 11:])], axis=1)
    assert_close(got, want)
    one = lstmrt.Model(layers).stream()
    assert_close(np.stack([one.step(x) for x in X[1]]), want[1])


def check_reset_rows(model, X):
    """reset(rows=[1]) of a batch of two restarts that row's state, and only its."""
    s = model.stream(batch=2)
    s.run(X[:, :5])
    s.reset(rows=[1])
    got = s.run(X[:, 5:])
    assert_close(got[0], model.predict(X[0])[5:])
    assert_close(got[1], model.predict(X[1, 5:]))


def check_state_resumes(stream, layers, state, more):
    """A stream that ran on, given back `state`, runs `more` as before, as its pickle does, and as the reference does
    from that state. Returns (the outputs, the reference's state after them)."""
    first = stream.run(more)
    stream.state = state
    assert np.array_equal(stream.run(more), first)
    stream.state = state
    assert np.array_equal(pickle.loads(pickle.dumps(stream)).run(more), first)
    want, end = ref.run(layers, more, state)
    assert_close(first, want)
    return first, end


def check_state_refused(stream, layer: int, part: int, value, match: str):
    """Setting `value` into the first entry of part `part` of layer entry `layer` of a stream's state raises
    ValueError matching `match`, and leaves the state as it was."""
    before = stream.state
    bad = [tuple(a.copy() for a in e) for e in before]
    bad[layer][part][0] = value
    with pytest.raises(ValueError, match=match):
        stream.state = bad
    assert all(np.array_equal(a, b, equal_nan=True) for e, f in zip(stream.state, before) for a, b in zip(e, f))


def random_mask(rng, B, T):
    """About a third of the steps masked, including the first and the last step of some sequence."""
    mask = rng.random((B, T)) > 0.35
    mask[0, 0] = mask[-1, -1] = False
    mask[0, 1] = True
    return mask


# -- the oracle against the frameworks ------------------------------------------------------------------------
def test_reference_matches_torch(rng):
    torch.manual_seed(int(rng.integers(2**31)))
    cases = [
        torch.nn.LSTM(3, 5, num_layers=2, proj_size=2, bidirectional=True, batch_first=True),
        torch.nn.GRU(4, 6, bidirectional=True, batch_first=True),
        torch.nn.RNN(2, 3, nonlinearity="relu", batch_first=True),
    ]
    for module in cases:
        module = module.double()
        X = rng.standard_normal((2, 7, module.input_size))
        with torch.no_grad():
            want = module(torch.from_numpy(X))[0].numpy()
        assert_close(ref.predict(lstmrt.from_torch(module).layers, X), want, atol=1e-12)


F = torch.nn.functional
TORCH_ACTIVATIONS = {  # lstmrt's name -> the torch function that defines it
    "leaky_relu(0.01)": lambda x: F.leaky_relu(x, 0.01),
    "leaky_relu(-0.5)": lambda x: F.leaky_relu(x, -0.5),
    "celu(0.5)": lambda x: F.celu(x, 0.5),
    "hard_shrink(0.7)": lambda x: F.hardshrink(x, 0.7),
    "soft_shrink(1.5)": lambda x: F.softshrink(x, 1.5),
    "hard_tanh": F.hardtanh,
    "tanh_shrink": F.tanhshrink,
    "log_sigmoid": F.logsigmoid,
    "hard_silu": F.hardswish,
    "mish": F.mish,
    "selu": F.selu,
    "gelu_tanh": lambda x: F.gelu(x, approximate="tanh"),
}


@pytest.mark.parametrize("name", list(TORCH_ACTIVATIONS))
def test_reference_activation_matches_torch(name):
    X = np.concatenate([np.linspace(-10, 10, 401), [0.0, -0.0, 0.7, -0.7, 1e30, -1e30, np.inf, -np.inf, np.nan]])
    with torch.no_grad():
        want = TORCH_ACTIVATIONS[name](torch.from_numpy(X)).numpy()
    with np.errstate(over="ignore", invalid="ignore"):  # both sides of np.where are computed, at inf too
        got = ref.activate(name, X)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)  # infinities and NaNs where torch has them


def _onnx_blocks(w, order, H):
    return np.concatenate([w[k * H : (k + 1) * H] for k in order])


def _onnx_run(op, node_inputs, attrs, T, B, H, D):
    """One ONNX LSTM/GRU node run by ONNX Runtime; returns Y as (B, T, D*H)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    names = list(node_inputs)
    node = helper.make_node(op, names, ["Y"], **attrs)
    inits = [numpy_helper.from_array(v, n) for n, v in node_inputs.items() if n != "X"]
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (y,) = sess.run(None, {"X": node_inputs["X"]})
    return y.transpose(2, 0, 1, 3).reshape(B, T, D * H)


def test_reference_matches_onnxruntime_lstm(rng):
    """Peepholes (i, f see c(t-1), o sees c(t)), cell clip after the peephole term, ONNX activation slots,
    sequence_lens with a reverse direction."""
    H, B, T = 4, 3, 9
    layer = specs.bidirectional(
        "lstm", rng, 3, H, peephole=True, cell_clip=0.7, activations=("hard_sigmoid", "tanh", "softsign")
    )
    cells = [layer.forward, layer.backward]
    lengths = np.array([9, 4, 6], np.int32)
    X = inputs(rng, B, T, 3)
    iofc, iof = [0, 3, 1, 2], [0, 2, 1]
    node_inputs = {
        "X": np.ascontiguousarray(X.transpose(1, 0, 2)),
        "W": np.stack([_onnx_blocks(c.weight_ih, iofc, H) for c in cells]),
        "R": np.stack([_onnx_blocks(c.weight_hh, iofc, H) for c in cells]),
        "B": np.stack(
            [np.concatenate([_onnx_blocks(c.bias_ih, iofc, H), _onnx_blocks(c.bias_hh, iofc, H)]) for c in cells]
        ),
        "sequence_lens": lengths,
        "initial_h": np.zeros((2, B, H), np.float32),
        "initial_c": np.zeros((2, B, H), np.float32),
        "P": np.stack([c.peephole[iof].reshape(-1) for c in cells]),
    }
    attrs = dict(
        hidden_size=H, direction="bidirectional", clip=0.7, activations=["HardSigmoid", "Tanh", "Softsign"] * 2
    )
    want = _onnx_run("LSTM", node_inputs, attrs, T, B, H, 2)
    assert_close(ref.predict([layer], X, lengths=lengths), want, atol=ATOL)
    unclipped = lstmrt.Bidirectional(
        *(
            lstmrt.LSTM(c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh, peephole=c.peephole, activations=c.activations)
            for c in cells
        )
    )
    assert np.abs(ref.predict([unclipped], X) - ref.predict([layer], X)).max() > 10 * ATOL, "clip never active"


def test_lstm_built_from_onnx_initializers_matches_onnxruntime(rng):
    """A user migrating from ONNX builds lstmrt.LSTM from an LSTM node's W, R, B, P and clip by the table of
    docs/math.md. ONNX's P[d] is (3H,) in order i, o, f: passed as it is, it must be refused, not reshaped to rows
    i, f, o (which ran silently wrong)."""
    n_in, H, B, T, clip = 3, 5, 2, 7, 0.7
    W, R = rng.standard_normal((4 * H, n_in)).astype(np.float32), rng.standard_normal((4 * H, H)).astype(np.float32)
    Wb, Rb, P = (rng.standard_normal(n * H).astype(np.float32) for n in (4, 4, 3))
    X = 2 * inputs(rng, B, T, n_in)
    node_inputs = {"X": np.ascontiguousarray(X.transpose(1, 0, 2)), "W": W[None], "R": R[None]}
    node_inputs.update(B=np.concatenate([Wb, Rb])[None], sequence_lens=np.full(B, T, np.int32))
    node_inputs.update(initial_h=np.zeros((1, B, H), np.float32), initial_c=np.zeros((1, B, H), np.float32))
    want = _onnx_run("LSTM", {**node_inputs, "P": P[None]}, dict(hidden_size=H, clip=clip), T, B, H, 1)
    ifgo = [0, 2, 3, 1]
    weights = [_onnx_blocks(w, ifgo, H) for w in (W, R, Wb, Rb)]
    layer = lstmrt.LSTM(*weights, peephole=P.reshape(3, H)[[0, 2, 1]], cell_clip=clip)
    assert_close(lstmrt.Model([layer]).predict(X), want, atol=ATOL)
    with pytest.raises(ValueError, match=r"peephole has shape \(15,\), expected \(3, 5\).*ordered i, o, f"):
        lstmrt.LSTM(*weights, peephole=P, cell_clip=clip)


@pytest.mark.parametrize("reset_after", [False, True])
def test_reference_matches_onnxruntime_gru(rng, reset_after):
    H, B, T = 5, 2, 8
    layer = specs.gru(rng, 2, H, reset_after=reset_after)
    X = inputs(rng, B, T, 2)
    zrh = [1, 0, 2]
    node_inputs = {
        "X": np.ascontiguousarray(X.transpose(1, 0, 2)),
        "W": _onnx_blocks(layer.weight_ih, zrh, H)[None],
        "R": _onnx_blocks(layer.weight_hh, zrh, H)[None],
        "B": np.concatenate([_onnx_blocks(layer.bias_ih, zrh, H), _onnx_blocks(layer.bias_hh, zrh, H)])[None],
    }
    attrs = dict(hidden_size=H, linear_before_reset=int(reset_after))
    want = _onnx_run("GRU", node_inputs, attrs, T, B, H, 1)
    assert_close(ref.predict([layer], X), want, atol=ATOL)


# -- LSTM options ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("input_size,hidden_size,proj_size", [(1, 1, 0), (3, 17, 0), (17, 64, 3), (64, 3, 1)])
def test_lstm_peephole(rng, input_size, hidden_size, proj_size):
    layers = [specs.lstm(rng, input_size, hidden_size, proj_size=proj_size, peephole=True)]
    check(layers, inputs(rng, 3, 30, input_size))


@pytest.mark.parametrize("peephole", [False, True])
@pytest.mark.parametrize("clip", [0.25, 1.5])
def test_lstm_cell_clip(rng, peephole, clip):
    layers = [specs.lstm(rng, 3, 17, peephole=peephole, cell_clip=clip), specs.lstm(rng, 17, 5, cell_clip=clip)]
    X = 3 * inputs(rng, 2, 25, 3)  # large inputs: the clip is active on many gates
    check(layers, X)


def test_lstm_peephole_clip_projection_bidirectional(rng):
    layers = [
        specs.bidirectional("lstm", rng, 5, 17, "ave", proj_size=4, peephole=True, cell_clip=0.5),
        specs.lstm(rng, 4, 3, peephole=True, activations=("hard_sigmoid", "relu", "softsign")),
    ]
    check(layers, inputs(rng, 3, 20, 5), lengths=np.array([20, 7, 1]))


# -- every element-wise activation in every slot ----------------------------------------------------------------
SLOTS = [
    ("lstm", 0),
    ("lstm", 1),
    ("lstm", 2),
    ("gru", 0),
    ("gru", 1),
    ("gru_reset_before", 0),
    ("gru_reset_before", 1),
    ("rnn", 0),
]


# activations with a parameter other than the default (negative slopes and alphas, zero thresholds included)
WITH_PARAMETER = (
    "leaky_relu(0.01)",
    "leaky_relu(-0.5)",
    "celu(0.5)",
    "celu(-2)",
    "hard_shrink(0)",
    "hard_shrink(0.7)",
    "soft_shrink(1.5)",
    "squareplus(0)",
    "clip_min(-0.25)",
    "clip_max(0.3)",
)


def _with_activation(kind, slot, name, rng, input_size, hidden_size):
    if kind == "rnn":
        return specs.rnn(rng, input_size, hidden_size, activation=name)
    acts = list(("sigmoid", "tanh", "tanh") if kind == "lstm" else ("sigmoid", "tanh"))
    acts[slot] = name
    if kind == "gru_reset_before":
        return specs.gru(rng, input_size, hidden_size, activations=tuple(acts), reset_after=False)
    return specs.recurrent(kind, rng, input_size, hidden_size, activations=tuple(acts))


@pytest.mark.parametrize("name", ELEMENTWISE + WITH_PARAMETER)
@pytest.mark.parametrize("kind,slot", SLOTS)
def test_activation_in_cell_slot(rng, kind, slot, name):
    """Unbounded functions in a gate slot (exponential, relu, ...) make the state grow: few steps, small inputs,
    and an absolute tolerance scaled by the largest output."""
    layer = _with_activation(kind, slot, name, rng, 3, 6)
    X = 0.5 * inputs(rng, 2, 6, 3)
    want = ref.predict([layer], X)
    assert np.all(np.isfinite(want))
    check([layer], X, atol=ATOL * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("name", NAMES + WITH_PARAMETER)
def test_activation_in_dense_and_activation_layers(rng, name):
    layers = [specs.dense(rng, 7, 17, activation=name), lstmrt.Activation(name)]
    X = inputs(rng, 2, 5, 7)
    model = lstmrt.Model(layers)
    want = ref.predict(layers, X)
    np.testing.assert_allclose(model.predict(X), want, rtol=RTOL_LARGE, atol=ATOL)


SPECIAL = np.array(
    [0.0, -0.0, 1e-30, -1e-30, 0.5, -0.5, 0.7, -0.7, 1.0, -1.0, 3.0, -3.0, 6.0, 20.0, -20.0, 88.0, -88.0, 1e4, -1e4]
    + [1e30, -1e30, np.inf, -np.inf, np.nan],
    np.float32,
)


@pytest.mark.parametrize("name", ELEMENTWISE + WITH_PARAMETER)
def test_activation_special_values(name):
    """±0, tiny, large |x|, ±inf, NaN: the float32 result equals the float64 formula rounded to float32
    (overflow to inf included) and NaN stays NaN."""
    X = SPECIAL[None, :, None]
    got = lstmrt.Model([lstmrt.Activation(name)], input_size=1).predict(X)
    with np.errstate(over="ignore", invalid="ignore"):
        want = ref.predict([lstmrt.Activation(name)], X).astype(np.float32)
    assert np.array_equal(np.isnan(got), np.isnan(want)), f"NaN pattern: {got.ravel()} vs {want.ravel()}"
    np.testing.assert_allclose(got, want, rtol=RTOL_LARGE, atol=ATOL)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_softmax_rows(rng, name):
    """Row-wise over features: large offsets do not overflow, a NaN in a row makes that row NaN only."""
    X = np.stack([rng.standard_normal((4, 5)) * s + o for s, o in ((1, 0), (30, 0), (1, 1e3), (1, -1e3))])
    X = X.astype(np.float32)
    X[3, 2, 1] = np.nan
    got = lstmrt.Model([lstmrt.Activation(name)], input_size=5).predict(X)
    want = ref.predict([lstmrt.Activation(name)], X)
    assert np.all(np.isnan(got[3, 2])) and not np.any(np.isnan(np.delete(got.reshape(-1, 5), 14, axis=0)))
    np.testing.assert_allclose(got, want, rtol=RTOL_LARGE, atol=ATOL)


# -- GRU reset_after=False --------------------------------------------------------------------------------------
@pytest.mark.parametrize("input_size,hidden_size,bias", [(1, 1, True), (17, 3, True), (3, 64, False), (64, 17, True)])
def test_gru_reset_before(rng, input_size, hidden_size, bias):
    layers = [
        specs.gru(rng, input_size, hidden_size, reset_after=False, bias=bias),
        specs.gru(rng, hidden_size, 5, reset_after=False),
    ]
    check(layers, inputs(rng, 3, 40, input_size))


def test_gru_reset_before_bidirectional_with_lengths(rng):
    layers = [specs.bidirectional("gru", rng, 3, 17, "sum", reset_after=False)]
    check(layers, inputs(rng, 4, 15, 3), lengths=np.array([15, 3, 0, 9]))


# -- masks ------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_mask(rng, kind, hold):
    layers = [
        specs.recurrent(kind, rng, 3, 17, hold_masked_output=hold),
        specs.recurrent(kind, rng, 17, 5, hold_masked_output=hold),
        specs.dense(rng, 5, 2),
    ]
    X = inputs(rng, 3, 20, 3)
    got, _ = check(layers, X, mask=random_mask(rng, 3, 20))
    unmasked = lstmrt.Model(layers).predict(X)
    assert np.abs(got - unmasked).max() > 10 * ATOL


@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_mask_bidirectional(rng, kind, hold):
    layers = [specs.bidirectional(kind, rng, 4, 6, "concat", hold_masked_output=hold)]
    check(layers, inputs(rng, 3, 12, 4), mask=random_mask(rng, 3, 12))


def test_mask_with_lengths_and_projection(rng):
    layers = [
        specs.lstm(rng, 3, 17, proj_size=5, hold_masked_output=True, peephole=True),
        specs.gru(rng, 5, 4, reset_after=False, hold_masked_output=True),
    ]
    check(layers, inputs(rng, 3, 16, 3), lengths=np.array([16, 8, 2]), mask=random_mask(rng, 3, 16))


# -- go_backwards -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_go_backwards(rng, kind):
    layers = [specs.recurrent(kind, rng, 3, 17, go_backwards=True), specs.recurrent(kind, rng, 17, 4)]
    X = inputs(rng, 2, 30, 3)
    check(layers, X)
    check(layers, X, lengths=np.array([30, 11]))
    check(layers, X, mask=random_mask(rng, 2, 30))


def test_go_backwards_equals_reversed_forward(rng):
    """A go_backwards layer on X equals the same forward layer on X reversed, its outputs reversed back."""
    fw = specs.gru(rng, 3, 5)
    bw = lstmrt.GRU(fw.weight_ih, fw.weight_hh, fw.bias_ih, fw.bias_hh, go_backwards=True)
    X = inputs(rng, 2, 10, 3)
    assert_close(lstmrt.Model([bw]).predict(X), lstmrt.Model([fw]).predict(X[:, ::-1])[:, ::-1])


# -- return_sequences=False -------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_final_only(rng, kind, go_backwards):
    layers = [
        specs.recurrent(kind, rng, 3, 17),
        specs.recurrent(kind, rng, 17, 6, return_sequences=False, go_backwards=go_backwards),
        specs.dense(rng, 6, 2, "softmax"),
    ]
    X = inputs(rng, 3, 25, 3)
    check(layers, X, return_sequences=False)
    check(layers, X, lengths=np.array([25, 1, 0]), return_sequences=False)
    check(layers, X, mask=random_mask(rng, 3, 25), return_sequences=False)


def test_final_only_feeds_every_step_of_next_layer(rng):
    """Longer than a predict block (256 rows): the final h must reach steps of earlier blocks too."""
    layers = [specs.lstm(rng, 3, 5, return_sequences=False), specs.gru(rng, 5, 4)]
    check(layers, inputs(rng, 1, 300, 3))
    check(layers, inputs(rng, 3, 120, 3), lengths=np.array([120, 50, 100]))


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
def test_final_only_bidirectional(rng, merge_mode):
    layers = [specs.bidirectional("lstm", rng, 3, 6, merge_mode, return_sequences=False)]
    X = inputs(rng, 3, 14, 3)
    check(layers, X, return_sequences=False)
    check(layers, X, lengths=np.array([3, 14, 9]), return_sequences=False)


# -- bidirectional merges ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
def test_bidirectional_merge(rng, kind, merge_mode):
    width = 2 * 17 if merge_mode == "concat" else 17
    layers = [specs.bidirectional(kind, rng, 3, 17, merge_mode), specs.bidirectional(kind, rng, width, 4, merge_mode)]
    X = inputs(rng, 3, 20, 3)
    check(layers, X)
    check(layers, X, lengths=np.array([20, 13, 1]))


def test_bidirectional_projection(rng):
    layers = [specs.bidirectional("lstm", rng, 3, 17, "concat", proj_size=5), specs.dense(rng, 10, 3, "log_softmax")]
    check(layers, inputs(rng, 2, 18, 3), lengths=np.array([4, 18]))


# -- per-step layers --------------------------------------------------------------------------------------------
def test_embedding(rng):
    table = rng.standard_normal((11, 6)).astype(np.float32)
    layers = [lstmrt.Embedding(table), specs.lstm(rng, 6, 17), specs.dense(rng, 17, 4, "softmax")]
    ids = rng.integers(0, 11, size=(3, 20))
    got, _ = check(layers, ids)
    assert_close(lstmrt.Model(layers).predict(ids[1]), got[1])  # one sequence (T,)
    assert_close(lstmrt.Model(layers[:1]).predict(ids), table[ids])
    check(layers, ids.astype(np.float32), lengths=np.array([20, 5, 12]))


def test_affine(rng):
    scale, shift = rng.uniform(0.1, 3, 5), rng.standard_normal(5)
    layers = [lstmrt.Affine(scale, shift), specs.gru(rng, 5, 17), specs.dense(rng, 17, 3)]
    X = inputs(rng, 2, 15, 5)
    check(layers, X)
    assert_close(lstmrt.Model(layers[:1]).predict(X), X * scale + shift)


@pytest.mark.parametrize("mode", lstmrt.LayerNorm.MODES)
def test_layer_norm(rng, mode):
    """Section 6: each mode, at 1 feature (the variance is 0: the output is the shift), 7 and 33, around recurrent
    layers, with lengths and on every step of a stream."""
    shift = (lambda n: rng.standard_normal(n)) if mode == "layer" else (lambda n: None)
    layers = [
        lstmrt.LayerNorm(7, scale=rng.uniform(0.5, 2, 7), shift=shift(7), epsilon=1e-3, mode=mode),
        specs.lstm(rng, 7, 33),
        lstmrt.LayerNorm(33, mode=mode, epsilon=1e-5),
        specs.gru(rng, 33, 1),
        lstmrt.LayerNorm(1, scale=[1.5], shift=shift(1), epsilon=0.1, mode=mode),
    ]
    X = inputs(rng, 3, 12, 7) * 3 + 1  # a mean that "layer" removes and "rms" does not
    got, _ = check(layers, X)
    check(layers, X, lengths=np.array([12, 4, 1]))
    stream = lstmrt.Model(layers).stream(batch=3)
    assert_close(np.stack([stream.step(X[:, t]) for t in range(12)], axis=1), got)


def test_layer_norm_refuses_what_it_cannot_compute():
    with pytest.raises(ValueError, match=r"mode 'rms' has no shift"):
        lstmrt.LayerNorm(3, shift=np.zeros(3), mode="rms")
    with pytest.raises(ValueError, match=r"unknown mode 'batch'; supported: layer, rms, variance_scale"):
        lstmrt.LayerNorm(3, mode="batch")
    for eps in (-1e-5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match=r"epsilon must be finite and >= 0"):
            lstmrt.LayerNorm(3, epsilon=eps)
    with pytest.raises(ValueError, match=r"scale has shape \(4,\), expected \(3,\)"):
        lstmrt.LayerNorm(3, scale=np.ones(4))
    with pytest.raises(ValueError, match=r"features must be a positive int"):
        lstmrt.LayerNorm(0)
    with pytest.raises(ValueError, match=r"expects 3 input features but layer 0 \(LSTM\) outputs 5"):
        lstmrt.Model([specs.lstm(np.random.default_rng(0), 2, 5), lstmrt.LayerNorm(3)])


@pytest.mark.parametrize("head", ["softmax", "log_softmax"])
def test_softmax_heads(rng, head):
    layers = [specs.rnn(rng, 3, 17), specs.dense(rng, 17, 64), lstmrt.Activation(head), specs.dense(rng, 64, 5, head)]
    X = inputs(rng, 3, 10, 3)
    got, _ = check(layers, X)
    total = np.exp(got).sum(-1) if head == "log_softmax" else got.sum(-1)
    np.testing.assert_allclose(total, 1.0, atol=ATOL)


def test_per_step_layers_between_recurrent_with_lengths(rng):
    """A Dense between two recurrent layers sees the padding outputs; only the model's output is zeroed."""
    layers = [
        specs.lstm(rng, 3, 17),
        specs.dense(rng, 17, 9, "relu"),
        lstmrt.Activation("tanh"),
        lstmrt.Affine(np.full(9, 2.0), np.full(9, 0.5)),
        specs.gru(rng, 9, 6, hold_masked_output=True),
        specs.dense(rng, 6, 2),
    ]
    check(layers, inputs(rng, 3, 24, 3), lengths=np.array([24, 10, 3]))


def test_large_batch(rng):
    """256 rows or more: predict runs one step per block."""
    layers = [specs.lstm(rng, 3, 5, hold_masked_output=True), specs.gru(rng, 5, 4), specs.dense(rng, 4, 2)]
    X = inputs(rng, 300, 4, 3)
    check(layers, X, mask=random_mask(rng, 300, 4), lengths=rng.integers(0, 5, size=300))


def test_deep_mixed_model(rng):
    layers = [
        lstmrt.Affine(np.full(4, 0.5), np.zeros(4)),
        specs.bidirectional("gru", rng, 4, 17, "concat", reset_after=False),
        specs.lstm(rng, 34, 64, proj_size=17, peephole=True, cell_clip=2.0),
        specs.rnn(rng, 17, 3, activation="relu"),
        specs.dense(rng, 3, 130, "gelu"),
        specs.dense(rng, 130, 1, "sigmoid"),
    ]
    X = inputs(rng, 3, 33, 4)
    check(layers, X, lengths=np.array([33, 17, 1]))
    check(layers, X, mask=random_mask(rng, 3, 33))


# -- one row, H a multiple of 16: the fused one-row step kernels (f32_lstm_step, f32_gru_step) -----------------
@pytest.mark.parametrize("hold", [False, True])
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_one_row_fused_kernels(rng, kind, hold):
    """Batch 1 and H % 16 == 0 take the fused kernels, which write each h straight into its output row; longer
    than a predict block (256 steps), both directions, go_backwards, final-only, masks and lengths."""
    layers = [
        specs.bidirectional(kind, rng, 3, 16, "concat", hold_masked_output=hold),
        specs.recurrent(kind, rng, 32, 32, go_backwards=True, hold_masked_output=hold),
        specs.recurrent(kind, rng, 32, 16, return_sequences=False, hold_masked_output=hold),
    ]
    X = inputs(rng, 1, 300, 3)
    check(layers, X)
    check(layers, X, lengths=np.array([181]))
    check(layers, X, mask=random_mask(rng, 1, 300))
    forward = [specs.recurrent(kind, rng, 3, 32), specs.recurrent(kind, rng, 32, 16)]
    stream = lstmrt.Model(forward).stream()  # a stream step runs both products in one pass over the weights
    got = np.stack([stream.step(X[0, t]).copy() for t in range(20)])
    assert_close(got, ref.predict(forward, X[:, :20])[0])
