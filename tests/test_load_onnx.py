"""lstmrt.load on real ONNX files, each compared with ONNX Runtime running the very file lstmrt loads: exports of
torch modules (torch.onnx.export with the TorchScript-based exporter, dynamo=False, and with the default exporter,
dynamo=True, which keeps the weights in an external file) and graphs built with onnx.helper. lstmrt's predict
takes (B, T, F) whatever the graph's layout: a sequence-first graph is fed X.transpose(1, 0, 2) on the ONNX Runtime
side and its (T, B, O) output transposed back."""

import contextlib
import io
import warnings

import numpy as np
import pytest
from conftest import assert_cell_close, assert_close
from onnx_build import recurrent_weights
from onnx_build import save as _save
from onnx_build import value as _value
from torch_forms import Pooled, forget_rnn_dispatch

import lstmrt
from lstmrt.cli import main

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
helper, numpy_helper, TensorProto, nn = onnx.helper, onnx.numpy_helper, onnx.TensorProto, torch.nn

F_IN, H, F_OUT, T, B = 3, 5, 2, 7, 3  # input, hidden, output features; steps; sequences: small, none equal
SLOTS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")  # an LSTM/GRU/RNN node's inputs


# -- ONNX Runtime and the comparison ------------------------------------------------------------------------------
def _ort(path, feeds):
    """All outputs of ONNX Runtime running the file."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def _inputs(rng, b=B, t=T):
    return rng.standard_normal((b, t, F_IN)).astype(np.float32)


def _compare(path, seq_first, reference, X, lengths=None):
    """lstmrt.load(path).predict(X, lengths) against ONNX Runtime's first output for X (B, T, F), running
    `reference` (the file itself, except where ONNX Runtime cannot: see _graph_file) fed in its layout."""
    model = lstmrt.load(path)
    feeds = {"X": np.ascontiguousarray(X.transpose(1, 0, 2) if seq_first else X)}
    if lengths is not None:
        feeds["sequence_lens"] = lengths
    want = _ort(reference, feeds)[0]
    if seq_first and want.ndim == 3:
        want = want.transpose(1, 0, 2)
    assert_close(model.predict(X, lengths=lengths), want)
    shape = [n for i, n in enumerate(want.shape) if i not in model.unit_axes]  # without the graph's unit axes
    assert (model.input_size, model.output_size) == (X.shape[-1], shape[-1])
    return model


def _refused(path, pattern, *names, cls=lstmrt.UnsupportedModelError):
    """lstmrt.load(path) raises cls matching pattern; the message starts with the path and holds each name."""
    with pytest.raises(cls, match=pattern) as caught:
        lstmrt.load(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for name in names:
        assert name in message, f"{name!r} not in: {message}"


# -- torch exports ------------------------------------------------------------------------------------------------
class Chain(nn.Module):
    """Modules in turn; of a recurrent module's outputs, the sequence goes on."""

    def __init__(self, *modules):
        super().__init__()
        self.layers = nn.ModuleList(modules)

    def forward(self, x):
        for layer in self.layers:
            x = layer(x)
            x = x[0] if isinstance(x, tuple) else x
        return x


class LastStep(nn.Module):
    """The tutorial classifier: fc(out[:, -1]) or fc(h_n[-1])."""

    def __init__(self, lstm, fc, from_h_n):
        super().__init__()
        self.lstm, self.fc, self.from_h_n = lstm, fc, from_h_n

    def forward(self, x):
        out, (h_n, _) = self.lstm(x)
        return self.fc(h_n[-1] if self.from_h_n else out[:, -1])


class KeptAxes(nn.Module):
    """Outputs with axes of size 1, which predict keeps as the graph does: (B, 1, O), (B, O, 1), h_n (1, B, H)."""

    def __init__(self, form):
        super().__init__()
        self.lstm, self.fc, self.form = _lstm(), nn.Linear(H, F_OUT), form

    def forward(self, x):
        out, (h_n, _) = self.lstm(x)
        if self.form == "out[:, -1:]":
            return self.fc(out[:, -1:, :])
        if self.form == "unsqueeze(-1)":
            return self.fc(h_n[-1]).unsqueeze(-1)
        return h_n


class Step(nn.Module):
    """One streaming step, the state in and out: what is exported for a runtime that keeps no state."""

    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(F_IN, H, num_layers=2, batch_first=True), nn.Linear(H, F_OUT)

    def forward(self, x, h, c):
        y, (h, c) = self.lstm(x, (h, c))
        return self.fc(y), h, c


def _lstm(**options):
    return nn.LSTM(F_IN, H, batch_first=True, **options)


SIGNS = np.array([1, -1, 1, -1], np.float32)  # outputs in opposite pairs: one of each pair is negative at every step
SLOPES_4 = np.array([0.3, -0.7, 1.4, -0.2], np.float32)  # all different: a reversed or single slope is seen


def _fc_prelu():
    """nn.Linear(H, 4) whose outputs come in opposite pairs (z1, -z1, z2, -z2), then nn.PReLU(4) with SLOPES_4
    (its default, 0.25 for every feature, would not tell one slope per feature from one for all)."""
    fc, prelu = nn.Linear(H, 4), nn.PReLU(4)
    with torch.no_grad():
        signs = torch.from_numpy(SIGNS)
        fc.weight.copy_(fc.weight[::2].repeat_interleave(2, 0) * signs[:, None])
        fc.bias.copy_(fc.bias[::2].repeat_interleave(2) * signs)
        prelu.weight.copy_(torch.from_numpy(SLOPES_4))
    return nn.Sequential(fc, prelu)


def _batch_norm_fc():
    """nn.BatchNorm1d(H) with running statistics and affine weights away from 0 and 1 (eval mode), then a Linear."""
    norm = nn.BatchNorm1d(H)
    with torch.no_grad():
        norm.running_mean.normal_()
        norm.running_var.uniform_(0.5, 2.0)
        norm.weight.normal_()
        norm.bias.normal_()
    return nn.Sequential(norm, nn.Linear(H, F_OUT))


TORCH = {  # id -> (module factory, batch_first)
    "nn.LSTM+Linear": (lambda: Chain(_lstm(), nn.Linear(H, F_OUT)), True),
    "nn.LSTMx2-bidirectional+Linear-dynamic-axes": (
        lambda: Chain(_lstm(num_layers=2, bidirectional=True), nn.Linear(2 * H, F_OUT)),
        True,
    ),
    "nn.GRU-seq-first-2-outputs": (lambda: nn.GRU(F_IN, H), False),
    "nn.RNN-relu": (lambda: nn.RNN(F_IN, H, nonlinearity="relu", batch_first=True), True),
    "nn.LSTM+fc-out-last-step": (lambda: LastStep(_lstm(), nn.Linear(H, F_OUT), from_h_n=False), True),
    "nn.LSTMx2+fc-h_n-last": (lambda: LastStep(_lstm(num_layers=2), nn.Linear(H, F_OUT), from_h_n=True), True),
    "nn.LSTM+Linear+ReLU": (lambda: Chain(_lstm(), nn.Linear(H, F_OUT), nn.ReLU()), True),
    "nn.LSTM+Linear+Sigmoid": (lambda: Chain(_lstm(), nn.Linear(H, F_OUT), nn.Sigmoid()), True),
    "nn.LSTM+Linear+Softmax": (lambda: Chain(_lstm(), nn.Linear(H, F_OUT), nn.Softmax(dim=-1)), True),
    "nn.LSTM+nn.GRU": (lambda: Chain(_lstm(), nn.GRU(H, H + 1, batch_first=True)), True),
    # a slope (F_OUT,) on the last step's (B, F_OUT)
    "nn.LSTM+fc-out-last-step+PReLU-per-feature": (lambda: LastStep(_lstm(), _fc_prelu(), from_h_n=False), True),
    # axes of size 1 in the output: predict returns them too
    "nn.LSTM+fc-out[:, -1:]": (lambda: KeptAxes("out[:, -1:]"), True),
    "nn.LSTM+fc-h_n-unsqueeze(-1)": (lambda: KeptAxes("unsqueeze(-1)"), True),
    "nn.LSTM-h_n-returned": (lambda: KeptAxes("h_n"), True),
    # BatchNormalization of the last step's features: an Affine
    "nn.LSTM+BatchNorm1d-last-step+Linear": (lambda: LastStep(_lstm(), _batch_norm_fc(), from_h_n=False), True),
}


def _export(module, args, path, **options):
    with warnings.catch_warnings():  # the TorchScript-based exporter's deprecation and tracer warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), args, str(path), dynamo=False, **options)
    return path


def _torch_file(name, directory):
    """(path, sequence-first) of TORCH[name] exported at (B, T) with input "X", first output "Y"."""
    build, batch_first = TORCH[name]
    torch.manual_seed(0)
    module = build()
    axes = {"X": {0: "batch", 1: "time"}, "Y": {0: "batch", 1: "time"}} if name.endswith("dynamic-axes") else None
    example = torch.randn((B, T, F_IN) if batch_first else (T, B, F_IN))
    path = _export(
        module, (example,), directory / "model.onnx", input_names=["X"], output_names=["Y"], dynamic_axes=axes
    )
    return path, not batch_first


# -- graphs built with onnx.helper --------------------------------------------------------------------------------
def _weights(rng, op, directions=1, peephole=False):
    return recurrent_weights(rng, op, F_IN, H, directions, peephole)


def _recurrent_file(
    path,
    op,
    consts,
    *,
    lengths=False,
    store="initializer",
    head=None,
    before=(),
    inputs=None,
    opset=14,
    ir_version=8,
    save_options=None,
    **attrs,
):
    """Save a graph: X -> one `op` node named op.lower() (outputs Y, Y_h) -> its Y arranged as torch arranges it,
    "seq" (T, B, D*H) or, with layout=1, (B, T, D*H) -> head (nodes from "seq" or "Y_h" to "out", and their
    constants). X is ["T", "B", F_IN] (layout=1: ["B", "T", F_IN]); lengths=True: sequence_lens a second graph input.
    consts: the node's constant inputs by slot name (W, R, B, P, initial_h, ...), given as `store` says:
    "initializer"; "constant": Constant nodes; "input": initializers also listed as graph inputs (ir_version 3);
    "float16" / "float64": initializers of that type, each Cast to float; "float16-graph": the whole graph in
    float16. before, inputs: nodes ahead of the op node and the graph inputs, to replace X."""
    directions = 2 if attrs.get("direction") == "bidirectional" else 1
    layout = attrs.get("layout", 0)
    elem = TensorProto.FLOAT16 if store == "float16-graph" else TensorProto.FLOAT
    nodes, inits = list(before), {}
    for name, value in consts.items():
        if store in ("float16", "float64"):
            inits[f"{name}_{store}"] = value.astype(store)
            nodes.append(helper.make_node("Cast", [f"{name}_{store}"], [name], to=TensorProto.FLOAT))
        elif store == "constant":
            nodes.append(helper.make_node("Constant", [], [name], value=numpy_helper.from_array(value, name)))
        else:
            inits[name] = value.astype(np.float16) if store == "float16-graph" else value
    given = {"X", *consts, *(["sequence_lens"] if lengths else [])}
    slots = SLOTS[: max(SLOTS.index(slot) for slot in given) + 1]
    node_inputs = [slot if slot in given else "" for slot in slots]
    nodes.append(helper.make_node(op, node_inputs, ["Y", "Y_h"], name=op.lower(), hidden_size=H, **attrs))
    head_nodes, head_consts = head if head is not None else ([], {})
    on_y_h = any("Y_h" in node.input for node in head_nodes)  # else the head reads seq (an If: in its branches)
    if not on_y_h:
        if layout == 1 or directions == 2:  # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H): torch's concatenation
            if layout == 0:
                nodes.append(helper.make_node("Transpose", ["Y"], ["Y_tbdh"], perm=[0, 2, 1, 3]))
            nodes.append(helper.make_node("Reshape", ["Y_tbdh" if layout == 0 else "Y", "merge"], ["seq"], allowzero=0))
            inits["merge"] = np.array([0, 0, -1], np.int64)
        elif opset < 13:
            nodes.append(helper.make_node("Squeeze", ["Y"], ["seq"], axes=[1]))
        else:
            nodes.append(helper.make_node("Squeeze", ["Y", "direction_axis"], ["seq"]))
            inits["direction_axis"] = np.array([1], np.int64)
    nodes += head_nodes
    inits.update(head_consts)
    if inputs is None:
        inputs = [_value("X", ["B", "T", F_IN] if layout else ["T", "B", F_IN], elem)]
        inputs += [_value("sequence_lens", ["B"], TensorProto.INT32)] if lengths else []
    if store == "input":
        inputs = inputs + [_value(n, v.shape, helper.np_dtype_to_tensor_dtype(v.dtype)) for n, v in inits.items()]
    output = [_value("out" if head_nodes else "seq", 2 if on_y_h else 3, elem)]
    return _save(path, nodes, inputs, output, inits, opset=opset, ir_version=ir_version, **(save_options or {}))


def _matmul_add(rng, width):
    """x @ W + b on each step's features, as torch exports a Linear on a sequence."""
    nodes = [
        helper.make_node("MatMul", ["seq", "head_W"], ["head_xW"], name="head_matmul"),
        helper.make_node("Add", ["head_xW", "head_b"], ["out"], name="head_add"),
    ]
    return nodes, {"head_W": rng.standard_normal((width, F_OUT)).astype(np.float32), "head_b": _vector(rng, F_OUT)}


def _gemm_on_y_h(rng, width):
    """Gemm(transB=1) on the final h, Y_h (1, B, H) squeezed to (B, H): predict returns (B, F_OUT)."""
    nodes = [
        helper.make_node("Squeeze", ["Y_h", "head_axis"], ["last"]),
        helper.make_node("Gemm", ["last", "gemm_W", "gemm_b"], ["out"], name="head_gemm", transB=1),
    ]
    consts = {"head_axis": np.array([0], np.int64), "gemm_b": _vector(rng, F_OUT)}
    return nodes, {**consts, "gemm_W": rng.standard_normal((F_OUT, width)).astype(np.float32)}


def _vector(rng, n):
    return rng.standard_normal(n).astype(np.float32)


def _dead_add_then_tanh(rng, width):
    """tanh(x @ W), beside an unread x @ W + b: the reader must not merge the bias into the Dense tanh reads."""
    nodes, consts = _matmul_add(rng, width)
    nodes[1].output[0] = "unread"
    return nodes + [helper.make_node("Tanh", ["head_xW"], ["out"])], consts


def _dead_relu_then_add(rng, width):
    """x @ W + b, beside an unread relu(x @ W): the reader must not merge the relu into the Dense."""
    nodes, consts = _matmul_add(rng, width)
    return nodes + [helper.make_node("Relu", ["head_xW"], ["unread"])], consts


def _last_step_beside_unread_y_h(rng, width):
    """Y[-1] of the sequence, beside an unread Y_h: for a reverse layer these differ (Y_h is Y[0])."""
    nodes = [
        helper.make_node("Squeeze", ["Y_h", "head_axis"], ["unread"]),
        helper.make_node("Squeeze", ["Y", "direction_axis"], ["steps"]),
        helper.make_node("Gather", ["steps", "last_index"], ["out"], axis=0),
    ]
    axes = {"head_axis": np.array([0], np.int64), "direction_axis": np.array([1], np.int64)}
    return nodes, {**axes, "last_index": np.array(-1, np.int64)}


def _ops_head(*ops, dense=True):
    """A head factory: x @ W + b (dense=True; W doubled, so that outputs pass +-1, where Clip(-1, 1) clips), then one
    node per op in turn, each (op type, attributes[, constant inputs by name]), named by its op type in lower case."""

    def head(rng, width):
        nodes, consts = _matmul_add(rng, width) if dense else ([], {})
        current = "seq"
        if dense:
            consts["head_W"] *= 2
            current = nodes[-1].output[0] = "dense"
        for i, (op, attrs, *inputs) in enumerate(ops):
            given = inputs[0] if inputs else {}
            out = "out" if i == len(ops) - 1 else f"{op.lower()}_out"
            nodes.append(helper.make_node(op, [current, *given], [out], name=op.lower(), **attrs))
            consts.update(given)
            current = out
        return nodes, consts

    return head


def _f32(*values):
    return np.array(values[0] if len(values) == 1 else values, np.float32)


def _on_y(op, constant):
    """A head factory: `op` of the recurrent node's Y (T, D, B, H) itself and `constant` (per feature, or per direction
    and feature), before the Transpose and Reshape to (T, B, D*H) that concatenate the directions."""

    def head(rng, width):
        nodes = [
            helper.make_node(op, ["Y", "y_constant"], ["y_op"], name=op.lower()),
            helper.make_node("Transpose", ["y_op"], ["y_tbdh"], perm=[0, 2, 1, 3]),
            helper.make_node("Reshape", ["y_tbdh", "y_merge"], ["out"]),
        ]
        return nodes, {"y_constant": constant, "y_merge": np.array([0, 0, -1], np.int64)}

    return head


def _paired_dense_prelu(slope):
    """A head factory: x @ W + b with 4 outputs in opposite pairs (as _fc_prelu's), then PRelu by `slope`."""

    def head(rng, width):
        nodes, consts = _matmul_add(rng, width)
        nodes[-1].output[0] = "dense"
        nodes.append(helper.make_node("PRelu", ["dense", "slope"], ["out"], name="prelu"))
        W, b = rng.standard_normal((width, 2)), rng.standard_normal(2)
        paired = {"head_W": np.repeat(W, 2, axis=1) * SIGNS, "head_b": np.repeat(b, 2) * SIGNS, "slope": slope}
        return nodes, {k: v.astype(np.float32) for k, v in paired.items()}

    return head


SLOPES_H = _f32(0.25, -0.5, 0.0, 1.5, 0.1)  # one per hidden feature: negative, 0, above 1, all different
SLOPES_2H = np.stack([SLOPES_H, SLOPES_H[::-1] - 0.3]).reshape(2, 1, H)  # per direction and feature


CLIP_MINUS_1_1 = ("Clip", {}, {"clip_min": _f32(-1), "clip_max": _f32(1)})
HARD_SIGMOID_TANH_SOFTSIGN = dict(
    activations=["HardSigmoid", "Tanh", "Softsign"], activation_alpha=[0.2], activation_beta=[0.5]
)
GRAPHS = {  # id -> op, node attributes and _recurrent_file options; peephole: with P
    "LSTM-peephole-clip-HardSigmoid-Tanh-Softsign": dict(  # clip 0.5 is reached: ~0.2 off without it
        op="LSTM", peephole=True, clip=0.5, **HARD_SIGMOID_TANH_SOFTSIGN
    ),
    "LSTM-reverse": dict(op="LSTM", direction="reverse"),
    "LSTM-bidirectional": dict(op="LSTM", direction="bidirectional"),
    "LSTM-layout-1": dict(op="LSTM", layout=1),
    "GRU-linear_before_reset-0": dict(op="GRU", linear_before_reset=0),
    "GRU-linear_before_reset-1": dict(op="GRU", linear_before_reset=1),
    "RNN-Relu": dict(op="RNN", activations=["Relu"]),
    "LSTM-Constant-nodes": dict(op="LSTM", store="constant"),
    "LSTM-float16-initializers-Cast": dict(op="LSTM", store="float16"),
    "LSTM-float64-initializers-Cast": dict(op="LSTM", store="float64"),
    "LSTM-float16-graph": dict(op="LSTM", store="float16-graph"),
    "LSTM-ir3-initializers-among-inputs": dict(op="LSTM", store="input", ir_version=3, opset=9),
    "LSTM-MatMul-Add-head": dict(op="LSTM", head=_matmul_add),
    "LSTM-Y_h-Gemm-transB-head": dict(op="LSTM", head=_gemm_on_y_h),
    "LSTM-MatMul-Tanh-beside-unread-Add": dict(op="LSTM", head=_dead_add_then_tanh),
    "LSTM-MatMul-Add-beside-unread-Relu": dict(op="LSTM", head=_dead_relu_then_add),
    "LSTM-reverse-last-step-beside-unread-Y_h": dict(op="LSTM", direction="reverse", head=_last_step_beside_unread_y_h),
    # recurrent activations with parameters: activation_alpha / beta hold values only for the entries that take them
    "LSTM-Sigmoid-LeakyRelu-Tanh-alpha-0.1": dict(
        op="LSTM", activations=["Sigmoid", "LeakyRelu", "Tanh"], activation_alpha=[0.1]
    ),
    "LSTM-LeakyRelu-without-alpha-is-0.01": dict(op="LSTM", activations=["Sigmoid", "LeakyRelu", "Tanh"]),
    "RNN-LeakyRelu-0.3": dict(op="RNN", activations=["LeakyRelu"], activation_alpha=[0.3]),
    "GRU-bidirectional-LeakyRelu-0.1-both-directions": dict(  # read by position, the backward's would be 0.01
        op="GRU", direction="bidirectional", activations=["Sigmoid", "LeakyRelu"] * 2, activation_alpha=[0.1, 0.1]
    ),
    "LSTM-Affine-written-1-0": dict(
        op="LSTM", activations=["Sigmoid", "Affine", "Tanh"], activation_alpha=[1.0], activation_beta=[0.0]
    ),
    # element-wise activations with parameters, merged into the Dense before them or on the sequence
    "LSTM-MatMul-Add-LeakyRelu-0.05": dict(op="LSTM", head=_ops_head(("LeakyRelu", dict(alpha=0.05)))),
    "LSTM-LeakyRelu-on-sequence-without-alpha-is-0.01": dict(op="LSTM", head=_ops_head(("LeakyRelu", {}), dense=False)),
    "LSTM-MatMul-Add-Celu-0.5": dict(op="LSTM", head=_ops_head(("Celu", dict(alpha=0.5)))),
    "LSTM-MatMul-Add-Shrink-hard-0.3": dict(op="LSTM", head=_ops_head(("Shrink", dict(lambd=0.3)))),
    "LSTM-MatMul-Add-Shrink-soft-0.3": dict(op="LSTM", head=_ops_head(("Shrink", dict(lambd=0.3, bias=0.3)))),
    "LSTM-Shrink-defaults-hard-0.5": dict(op="LSTM", head=_ops_head(("Shrink", {}), dense=False)),
    "LSTM-MatMul-Add-Clip-minus1-1": dict(op="LSTM", head=_ops_head(CLIP_MINUS_1_1)),
    "LSTM-MatMul-Add-Clip-minus1-1-attributes-opset-9": dict(
        op="LSTM", opset=9, head=_ops_head(("Clip", dict(min=-1.0, max=1.0)))
    ),
    # clips to other bounds: lstmrt's relu / relu6 / hard_tanh between Affine layers (clip_ops)
    "LSTM-MatMul-Add-Clip-0-0.8-relu6-scaled": dict(
        op="LSTM", head=_ops_head(("Clip", {}, {"clip_min": _f32(0), "clip_max": _f32(0.8)}))
    ),
    "LSTM-MatMul-Add-Clip-minus0.5-0.9": dict(
        op="LSTM", head=_ops_head(("Clip", {}, {"clip_min": _f32(-0.5), "clip_max": _f32(0.9)}))
    ),
    "LSTM-MatMul-Add-Clip-min-only": dict(op="LSTM", head=_ops_head(("Clip", {}, {"clip_min": _f32(-0.3)}))),
    "LSTM-MatMul-Add-Clip-max-only-attributes-opset-9": dict(
        op="LSTM", opset=9, head=_ops_head(("Clip", dict(max=0.4)))
    ),
    "LSTM-MatMul-Add-Max-constant": dict(op="LSTM", head=_ops_head(("Max", {}, {"max_c": _f32(-0.2)}))),
    "LSTM-MatMul-Add-Min-constant": dict(op="LSTM", head=_ops_head(("Min", {}, {"min_c": _f32(0.7)}))),
    "LSTM-MatMul-Add-PRelu-slope-shape-1": dict(op="LSTM", head=_ops_head(("PRelu", {}, {"slope": _f32([0.15])}))),
    "LSTM-PRelu-slope-scalar": dict(op="LSTM", head=_ops_head(("PRelu", {}, {"slope": _f32(0.25)}), dense=False)),
    # a slope per feature: a PReLU layer, after the Dense or on the sequence; on Y, before the directions are
    # concatenated, the same slopes for both directions or a slope per direction and feature
    "LSTM-MatMul-Add-PRelu-per-feature-(F,)": dict(op="LSTM", head=_paired_dense_prelu(SLOPES_4)),
    "LSTM-MatMul-Add-PRelu-per-feature-(1,1,F)": dict(op="LSTM", head=_paired_dense_prelu(SLOPES_4.reshape(1, 1, 4))),
    "LSTM-PRelu-per-feature-(H,)-on-sequence": dict(
        op="LSTM", head=_ops_head(("PRelu", {}, {"slope": SLOPES_H}), dense=False)
    ),
    "LSTM-PRelu-per-feature-(1,1,H)-on-Y": dict(op="LSTM", head=_on_y("PRelu", SLOPES_H.reshape(1, 1, H))),
    "LSTM-bidirectional-PRelu-per-feature-(H,)-on-Y": dict(
        op="LSTM", direction="bidirectional", head=_on_y("PRelu", SLOPES_H)
    ),
    "LSTM-bidirectional-PRelu-per-feature-(2,1,H)-on-Y": dict(
        op="LSTM", direction="bidirectional", head=_on_y("PRelu", SLOPES_2H)
    ),
    "GRU-bidirectional-Mul-per-feature-(2,1,H)-on-Y": dict(  # the same reading of a constant, as an Affine
        op="GRU", direction="bidirectional", head=_on_y("Mul", SLOPES_2H)
    ),
    "LSTM-MatMul-Add-Sigmoid-Log": dict(op="LSTM", head=_ops_head(("Sigmoid", {}), ("Log", {}))),
    "LSTM-Sigmoid-Log-on-sequence": dict(op="LSTM", head=_ops_head(("Sigmoid", {}), ("Log", {}), dense=False)),
}


def _graph_file(name, directory, rng):
    """(path, sequence-first, reference) of GRAPHS[name]: the file, and the file ONNX Runtime runs (sequence-first
    or not) to give the expected output. That is the file itself except where ONNX Runtime cannot run it exactly:
    it refuses layout=1 ("batchwise recurrent operations are not supported"), and it computes a float16 LSTM in
    half precision (1e-4 off, where lstmrt converts the weights to float32). There the reference is the same graph
    with layout 0, or in float32 holding the float16-rounded weights."""
    case = dict(GRAPHS[name])
    op, peephole, head = case.pop("op"), case.pop("peephole", False), case.pop("head", None)
    directions = 2 if case.get("direction") == "bidirectional" else 1
    consts = _weights(rng, op, directions, peephole)
    head = head(rng, directions * H) if head is not None else None
    path = _recurrent_file(directory / "model.onnx", op, consts, head=head, **case)
    if case.get("store") == "float16-graph":
        consts = {k: v.astype(np.float16).astype(np.float32) for k, v in consts.items()}
    elif not case.get("layout"):
        return path, True, path
    case.update(store="initializer", layout=0)
    return path, True, _recurrent_file(directory / "reference.onnx", op, consts, head=head, **case)


def _file(name, directory, rng):
    """(path, sequence-first, reference) of a TORCH or GRAPHS case."""
    if name in TORCH:
        path, seq_first = _torch_file(name, directory)
        return path, seq_first, path
    return _graph_file(name, directory, rng)


# -- models against ONNX Runtime ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(TORCH))
def test_torch_export_matches_onnxruntime(tmp_path, rng, name):
    path, seq_first, reference = _file(name, tmp_path, rng)
    _compare(path, seq_first, reference, _inputs(rng))
    if name.endswith("dynamic-axes"):  # exported at (B, T): other sizes too
        _compare(path, seq_first, reference, _inputs(rng, B - 1, T + 4))


@pytest.mark.parametrize("name", list(GRAPHS))
def test_onnx_graph_matches_onnxruntime(tmp_path, rng, name):
    _compare(*_graph_file(name, tmp_path, rng), _inputs(rng))


def test_stream_steps_give_predict_rows(tmp_path, rng):
    model = lstmrt.load(_file("nn.LSTM+Linear", tmp_path, rng)[0])
    X = _inputs(rng, 1)
    s = model.stream()
    assert_close(np.stack([s.step(X[0, t]).copy() for t in range(T)]), model.predict(X)[0])


def _assert_steps_give_predict(model, X):
    """A stream stepping through X[0] gives predict's rows; for a last-step model, predict of the steps so far."""
    s = model.stream()
    got = np.stack([s.step(X[0, t]).copy() for t in range(X.shape[1])])
    if model.return_sequences:
        want = model.predict(X)[0]
    else:
        want = np.stack([model.predict(X[:, : t + 1])[0] for t in range(X.shape[1])])
    assert_close(got, want)


@pytest.mark.parametrize(
    "name", [name for name in [*TORCH, *GRAPHS] if "PRelu-per-feature" in name or "PReLU-per-feature" in name]
)
def test_per_feature_prelu_is_a_prelu_layer_that_streams(tmp_path, rng, name):
    path, seq_first, reference = _file(name, tmp_path, rng)
    X = 2 * _inputs(rng)  # both signs in every feature
    model = _compare(path, seq_first, reference, X)
    assert isinstance(model.layers[-1], lstmrt.PReLU)  # its own layer, not merged into the Dense before it
    if not model.bidirectional:  # which needs whole sequences
        _assert_steps_give_predict(model, X[:1])


def test_torch_step_export_keeps_its_state_in_the_stream(tmp_path, rng):
    """forward(x, h, c) -> (y, h, c) exported for one step: lstmrt's model takes x; h and c are the stream's state."""
    torch.manual_seed(0)
    state = torch.zeros(2, 1, H)
    path = _export(
        Step(),
        (torch.zeros(1, 1, F_IN), state, state),
        tmp_path / "step.onnx",
        input_names=["X", "h", "c"],
        output_names=["Y", "h_out", "c_out"],
    )
    model = lstmrt.load(path)
    assert (model.input_size, model.output_size) == (F_IN, F_OUT)
    X = 2 * rng.standard_normal((T + 2, F_IN)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    h = c = np.zeros((2, 1, H), np.float32)
    ys, states = [], []  # ONNX Runtime's outputs, and the state before each step
    for x in X:
        states.append((h, c))
        y, h, c = session.run(None, {"X": x[None, None], "h": h, "c": c})
        ys.append(y[0, 0])
    s = model.stream()
    assert_close(np.stack([s.step(x).copy() for x in X]), np.stack(ys))
    for layer, (h_layer, c_layer) in enumerate(s.state):
        assert_close(h_layer, h[layer, 0], what=f"h of layer {layer}")
        assert_cell_close(c_layer, c[layer, 0], what=f"c of layer {layer}")
    k = 4  # a fresh stream given ONNX Runtime's state after k steps goes on as ONNX Runtime does
    resumed = model.stream()
    resumed.state = [(states[k][0][layer, 0], states[k][1][layer, 0]) for layer in range(2)]
    assert_close(np.stack([resumed.step(x).copy() for x in X[k:]]), np.stack(ys[k:]))


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
def test_sequence_lens_input_is_predicts_lengths(tmp_path, rng, direction):
    """sequence_lens, a second graph input, is not a model input: it is predict's lengths (padding outputs 0, in
    ONNX Runtime as in lstmrt; the backward direction starts at each sequence's own last step)."""
    consts = _weights(rng, "LSTM", 2 if direction == "bidirectional" else 1)
    path = _recurrent_file(tmp_path / "model.onnx", "LSTM", consts, lengths=True, direction=direction)
    model = _compare(path, True, path, _inputs(rng), lengths=np.array([T, 3, 1], np.int32))
    assert model.input_size == F_IN


def test_dense_chain_without_recurrent_node_loads_as_dense(tmp_path, rng):
    """MatMul + Add + Relu on (B, T, F), as x @ W + b: a per-step Dense model."""
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["xW"]),
        helper.make_node("Add", ["xW", "b"], ["z"]),
        helper.make_node("Relu", ["z"], ["out"]),
    ]
    consts = {"W": rng.standard_normal((F_IN, F_OUT)).astype(np.float32), "b": _vector(rng, F_OUT)}
    path = _save(tmp_path / "dense.onnx", nodes, [_value("X", ["B", "T", F_IN])], [_value("out", 3)], consts)
    model = _compare(path, False, path, _inputs(rng))
    assert isinstance(model.layers[0], lstmrt.Dense)
    assert not any(isinstance(layer, (lstmrt.LSTM, lstmrt.GRU, lstmrt.SimpleRNN)) for layer in model.layers)


@pytest.mark.parametrize(
    "name", ["LSTM-peephole-clip-HardSigmoid-Tanh-Softsign", "LSTM-bidirectional", "nn.LSTMx2+fc-h_n-last"]
)
def test_saved_as_lstmrt_file_predicts_the_same(tmp_path, rng, name):
    model = lstmrt.load(_file(name, tmp_path, rng)[0])
    model.save(tmp_path / "m.lstmrt")
    X = _inputs(rng)
    assert np.array_equal(lstmrt.load(tmp_path / "m.lstmrt").predict(X), model.predict(X))


def test_detected_by_content_not_by_extension(tmp_path, rng):
    path, seq_first, _ = _file("nn.LSTM+Linear", tmp_path, rng)
    renamed = tmp_path / "model.bin"
    renamed.write_bytes(path.read_bytes())
    _compare(renamed, seq_first, renamed, _inputs(rng))


def test_cli_inspect_and_export(tmp_path, rng, capsys):
    path = _file("nn.LSTM+Linear", tmp_path, rng)[0]
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{path}: ") and f"(0) LSTM({F_IN} -> {H})" in out and f"(1) Dense({H} -> {F_OUT}" in out
    target = tmp_path / "m.lstmrt"
    assert main(["export", str(path), "-o", str(target)]) == 0
    X = _inputs(rng)
    assert np.array_equal(lstmrt.load(target).predict(X), lstmrt.load(path).predict(X))


# the weights in w.bin, or in a file per tensor named after it; the 8-byte Squeeze axis stays inline, as ONNX Runtime
# needs it to load the file
EXTERNAL = {
    "one-file": dict(save_as_external_data=True, all_tensors_to_one_file=True, location="w.bin", size_threshold=64),
    "file-per-tensor": dict(save_as_external_data=True, all_tensors_to_one_file=False, size_threshold=64),
}


@pytest.mark.parametrize("name", list(EXTERNAL))
def test_external_data_matches_onnxruntime(tmp_path, rng, monkeypatch, name):
    """Weights in files beside the model (onnx.save(..., save_as_external_data=True)), loaded by a relative path:
    read from the model's directory, not the working directory's."""
    head = _matmul_add(rng, H)
    path = _recurrent_file(
        tmp_path / "model.onnx", "LSTM", _weights(rng, "LSTM"), head=head, save_options=EXTERNAL[name]
    )
    assert (tmp_path / ("w.bin" if name == "one-file" else "head_W")).exists()
    monkeypatch.chdir(tmp_path.parent)
    relative = path.relative_to(tmp_path.parent)
    _compare(relative, True, relative, _inputs(rng))


# -- torch.onnx.export's default exporter (dynamo=True): the weights in an external file, model.onnx.data ---------
VOCAB = 11


class Tokens(nn.Module):
    """Token ids -> Embedding -> LSTM -> Linear to one score per step, squeezed: (B, T) ids -> (B, T)."""

    def __init__(self):
        super().__init__()
        self.embedding, self.lstm = nn.Embedding(VOCAB, F_IN), _lstm()
        self.fc = nn.Linear(H, 1)

    def forward(self, tokens):
        return self.fc(self.lstm(self.embedding(tokens))[0]).squeeze(-1)


DYNAMO = {  # id -> (module factory, batch_first); "tokens" in the id: the input is token ids
    "nn.LSTM+Linear": (lambda: Chain(_lstm(), nn.Linear(H, F_OUT)), True),
    "nn.GRU-seq-first-2-outputs": (lambda: nn.GRU(F_IN, H), False),
    "nn.LSTM+fc-out-last-step": (lambda: LastStep(_lstm(), nn.Linear(H, F_OUT), from_h_n=False), True),
    "nn.LSTMx2+fc-h_n-last": (lambda: LastStep(_lstm(num_layers=2), nn.Linear(H, F_OUT), from_h_n=True), True),
    "nn.Embedding+LSTM+Linear+squeeze-tokens": (Tokens, True),
    # activations with parameters as this exporter writes them (LogSigmoid: Sigmoid, then Log)
    "nn.LSTM+Linear+LeakyReLU(0.05)": (lambda: Chain(_lstm(), _linear_past_one(), nn.LeakyReLU(0.05)), True),
    "nn.LSTM+Linear+CELU(0.5)": (lambda: Chain(_lstm(), _linear_past_one(), nn.CELU(0.5)), True),
    "nn.LSTM+Linear+Hardtanh": (lambda: Chain(_lstm(), _linear_past_one(), nn.Hardtanh()), True),
    "nn.LSTM+Linear+LogSigmoid": (lambda: Chain(_lstm(), _linear_past_one(), nn.LogSigmoid()), True),
    "nn.LSTM+Linear+PReLU(0.15)": (lambda: Chain(_lstm(), _linear_past_one(), nn.PReLU(init=0.15)), True),
    # a slope (1, F_OUT) on the last step's (B, F_OUT)
    "nn.LSTM+fc-out-last-step+PReLU-per-feature": (lambda: LastStep(_lstm(), _fc_prelu(), from_h_n=False), True),
    # pooling over time (ReduceMean / ReduceMax) and a norm over the features (LayerNormalization)
    "nn.LSTM+LayerNorm+mean-over-time": (lambda: Pooled(F_IN, H, "mean", norm=True), True),
    "nn.LSTM+amax-over-time": (lambda: Pooled(F_IN, H, "amax"), True),
    "nn.LSTM+BatchNorm1d-last-step+Linear": (lambda: LastStep(_lstm(), _batch_norm_fc(), from_h_n=False), True),
    # batch and time dynamic: the exporter computes the Reshape after each node from Shape slices (Mul of D and H)
    "nn.LSTMx2-bidirectional+Linear-dynamic": (
        lambda: Chain(_lstm(num_layers=2, bidirectional=True), nn.Linear(2 * H, F_OUT)),
        True,
    ),
}


DYNAMIC = "nn.LSTMx2-bidirectional+Linear-dynamic"


def _linear_past_one():
    """nn.Linear(H, F_OUT) scaled up: outputs past +-1 (else within +-1), where Hardtanh clips."""
    linear = nn.Linear(H, F_OUT)
    with torch.no_grad():
        linear.weight.mul_(4)
        linear.bias.mul_(4)
    return linear


def _dynamo_input(name, rng):
    """A (B, T) batch for DYNAMO[name]: token ids, or features (B, T, F_IN)."""
    return rng.integers(0, VOCAB, (B, T)) if "tokens" in name else _inputs(rng)


@pytest.fixture(scope="module")
def dynamo_file(tmp_path_factory):
    """name -> (path, sequence-first) of DYNAMO[name] exported at (B, T) by torch.onnx.export's default exporter,
    with input "X" and first output "Y": each module exported once for the tests of this file (~1 s each)."""
    pytest.importorskip("onnxscript")  # the default exporter needs it
    files = {}

    def export(name):
        if name != DYNAMIC and DYNAMIC not in files:
            # first: after an export of a static nn.LSTM, torch 2.13 exports the next one with time static too
            export(DYNAMIC)
        if name not in files:
            build, batch_first = DYNAMO[name]
            torch.manual_seed(0)
            example = _dynamo_input(name, np.random.default_rng(0))
            example = torch.from_numpy(example if batch_first else example.transpose(1, 0, 2).copy())
            path = tmp_path_factory.mktemp("dynamo") / "model.onnx"
            with warnings.catch_warnings():  # torch.export's warnings; its progress lines go to stdout
                warnings.simplefilter("ignore")
                dynamic = ({0: torch.export.Dim("batch"), 1: torch.export.Dim("time")},) if "dynamic" in name else None
                torch.onnx.export(
                    build().eval(),
                    (example,),
                    str(path),
                    dynamo=True,
                    input_names=["X"],
                    output_names=["Y"],
                    dynamic_shapes=dynamic,
                )
            files[name] = path, not batch_first
        return files[name]

    return export


@pytest.mark.parametrize("name", list(DYNAMO))
def test_torch_default_exporter_matches_onnxruntime(dynamo_file, rng, name):
    path, seq_first = dynamo_file(name)
    initializers = onnx.load(str(path), load_external_data=False).graph.initializer
    assert any(t.data_location == TensorProto.EXTERNAL for t in initializers)  # what the default exporter writes
    assert path.with_name("model.onnx.data").exists()
    X = _dynamo_input(name, rng)
    if "tokens" in name:
        assert_close(lstmrt.load(path).predict(X), _ort(path, {"X": X})[0])
    else:
        _compare(path, seq_first, path, X)
    if "dynamic" in name:  # other batch and time sizes than the export's
        _compare(path, seq_first, path, _inputs(rng, b=B + 2, t=T + 4))
    if "per-feature" in name:
        model = lstmrt.load(path)
        assert isinstance(model.layers[-1], lstmrt.PReLU)
        _assert_steps_give_predict(model, X[:1])


@pytest.mark.parametrize(
    "module", [nn.Hardshrink(0.3), nn.Softshrink(0.3)], ids=["nn.Hardshrink(0.3)", "nn.Softshrink(0.3)"]
)
def test_torch_default_exporter_shrinks_are_refused(tmp_path, module):
    """The default exporter writes no Shrink node for these but |x|, a comparison and Where, which lstmrt does not
    read (nor the Greater / Less / Or / Where of the TorchScript-based exporter: test_onnx_graph_reader.py)."""
    pytest.importorskip("onnxscript")
    path = tmp_path / "model.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(Chain(_lstm(), module).eval(), (torch.randn(B, T, F_IN),), str(path), dynamo=True)
    _refused(path, r"\(Abs\) is not supported in the data path")


# -- refusals -----------------------------------------------------------------------------------------------------
def _head(op, name, inputs=("seq",), consts=None):
    """A head of one node named `name`: `op` of inputs (names, then consts: name -> array) -> out."""
    consts = consts or {}
    return [helper.make_node(op, [*inputs, *consts], ["out"], name=name)], consts


def _if_head():
    then, other = (
        helper.make_graph([helper.make_node(op, ["seq"], [f"{op}_out"])], op, [], [_value(f"{op}_out", 3)])
        for op in ("Identity", "Neg")
    )
    node = helper.make_node("If", ["flag"], ["out"], name="branch", then_branch=then, else_branch=other)
    return [node], {"flag": np.array(True)}


def _loop_head():
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Neg", ["v_in"], ["v_out"])],
        "body",
        [_value("i", [], TensorProto.INT64), _value("cond_in", [], TensorProto.BOOL), _value("v_in", 3)],
        [_value("cond_out", [], TensorProto.BOOL), _value("v_out", 3)],
    )
    node = helper.make_node("Loop", ["trips", "", "seq"], ["out"], name="repeat", body=body)
    return [node], {"trips": np.array(2, np.int64)}


def _two_inputs(path, consts):
    """A + A2 -> X -> LSTM: two data inputs reach the output."""
    add = helper.make_node("Add", ["A", "A2"], ["X"], name="add_inputs")
    inputs = [_value(name, ["T", "B", F_IN]) for name in ("A", "A2")]
    return _recurrent_file(path, "LSTM", consts, before=[add], inputs=inputs)


def _skip_of_unbiased(rng):
    """lstm2(x @ W + b) + x @ W: a skip connection reads the Dense's output without the bias merged into it."""
    nodes, consts = _matmul_add(rng, H)
    nodes[1].output[0] = "biased"
    consts["head_W"] = rng.standard_normal((H, H)).astype(np.float32)
    consts["head_b"] = _vector(rng, H)
    inner = {k + "2": v for k, v in _weights(rng, "LSTM").items() if k != "W"}
    inner["W2"] = (0.5 * rng.standard_normal((1, 4 * H, H))).astype(np.float32)
    nodes += [
        helper.make_node("LSTM", ["biased", "W2", "R2", "B2"], ["Y2"], hidden_size=H),
        helper.make_node("Squeeze", ["Y2", "direction_axis"], ["deeper"]),
        helper.make_node("Add", ["deeper", "head_xW"], ["out"], name="skip_unbiased"),
    ]
    return nodes, {**consts, **inner}


def _prelu_on_y_h():
    """PRelu of the final state Y_h (1, B, H) by a slope per feature, squeezed to (B, H)."""
    nodes = [
        helper.make_node("PRelu", ["Y_h", "slope"], ["h_prelu"], name="prelu"),
        helper.make_node("Squeeze", ["h_prelu", "head_axis"], ["out"]),
    ]
    return nodes, {"slope": SLOPES_H, "head_axis": np.array([0], np.int64)}


SLOPE_PER_STEP = np.linspace(-0.5, 0.5, T, dtype=np.float32).reshape(T, 1, 1)


def _refused_head(*ops, dense=True):
    """_ops_head's nodes and constants, made with a fixed seed for REFUSED."""
    return _ops_head(*ops, dense=dense)(np.random.default_rng(5), H)


CONV_W = np.full((F_OUT, B, 1), 0.5, np.float32)  # seq (T, B, H) taken as (N, C, L): steps as the batch, B channels
REFUSED = {  # id -> (file from (path, LSTM weights), pattern the message matches, names it holds)
    "input_forget": (lambda p, w: _recurrent_file(p, "LSTM", w, input_forget=1), "(?i)input_forget", ()),
    "initial_h-non-zero": (
        lambda p, w: _recurrent_file(p, "LSTM", {**w, "initial_h": np.full((1, B, H), 0.5, np.float32)}),
        "(?i)initial",
        (),
    ),
    "Conv": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_head("Conv", "conv_1", consts={"conv_W": CONV_W})),
        r"\bConv\b",
        ("conv_1",),
    ),
    "Mul-of-non-constants": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_head("Mul", "square", ("seq", "seq"))),
        r"\bMul\b",
        ("square",),
    ),
    "If": (lambda p, w: _recurrent_file(p, "LSTM", w, head=_if_head()), r"\bIf\b", ()),
    "Loop": (lambda p, w: _recurrent_file(p, "LSTM", w, head=_loop_head()), r"\bLoop\b", ()),
    "two-data-inputs": (_two_inputs, "(?i)input", ()),
    "skip-reads-a-Dense-before-its-bias": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_skip_of_unbiased(np.random.default_rng(5))),
        "(?i)before a later node was merged",
        ("skip_unbiased",),
    ),
    # activations lstmrt does not compute, each named with its node
    "Shrink-bias-neither-0-nor-lambd": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("Shrink", dict(lambd=0.5, bias=0.2)))),
        r"Shrink with bias 0\.2: .*bias 0 \(hard_shrink\) or bias = lambd = 0\.5 \(soft_shrink\)",
        ("node shrink (Shrink)",),
    ),
    "PRelu-slope-along-time": (  # seq (T, B, H): a slope (T, 1, 1) per step
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("PRelu", {}, {"slope": SLOPE_PER_STEP}))),
        r"slope of shape \(7, 1, 1\) varying along time \(axis 0\): lstmrt has one slope per feature",
        ("node prelu (PRelu)",),
    ),
    "PRelu-slope-along-batch": (  # seq (T, B, H): a slope (B, 1) per sequence
        lambda p, w: _recurrent_file(
            p, "LSTM", w, head=_refused_head(("PRelu", {}, {"slope": _f32([[0.1], [0.2], [0.3]])}), dense=False)
        ),
        r"slope of shape \(3, 1\) varying along batch \(axis 1\): lstmrt has one slope per feature",
        ("node prelu (PRelu)",),
    ),
    "PRelu-slope-of-wrong-feature-count": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("PRelu", {}, {"slope": _f32(0.1, 0.2, 0.3)}))),
        r"combines 2 features with a slope of shape \(3,\)",
        ("node prelu (PRelu)",),
    ),
    "PRelu-slope-per-feature-inf": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("PRelu", {}, {"slope": _f32(0.1, np.inf)}))),
        r"has a non-finite slope inf for feature 1",
        ("node prelu (PRelu)",),
    ),
    "PRelu-per-feature-on-Y_h": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_prelu_on_y_h()),
        r"applies PRelu to a final state",
        ("node prelu (PRelu)",),
    ),
    "PRelu-slope-of-data": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_head("PRelu", "prelu", ("seq", "seq"))),
        r"has a slope computed at run time",
        ("node prelu (PRelu)",),
    ),
    "PRelu-slope-nan": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("PRelu", {}, {"slope": _f32([np.nan])}))),
        r"PRelu slope: the parameter of leaky_relu must be finite, got nan",
        ("node prelu (PRelu)",),
    ),
    "Gelu-approximate-unknown": (
        lambda p, w: _recurrent_file(p, "LSTM", w, opset=20, head=_refused_head(("Gelu", dict(approximate="cubic")))),
        r"has attributes \{'approximate': 'cubic'\} lstmrt does not compute",
        ("node gelu (Gelu)",),
    ),
    "Clip-bounds-out-of-order": (
        lambda p, w: _recurrent_file(
            p, "LSTM", w, head=_refused_head(("Clip", {}, {"clip_min": _f32(2), "clip_max": _f32(-2)}))
        ),
        r"clips: the lower bound 2 is not below the upper bound -2",
        ("node clip (Clip)",),
    ),
    "Clip-per-feature-bounds": (
        lambda p, w: _recurrent_file(
            p, "LSTM", w, head=_refused_head(("Clip", {}, {"clip_min": np.zeros(2, np.float32)}))
        ),
        r"clips to bounds that are not one constant number each",
        ("node clip (Clip)",),
    ),
    "Max-of-the-data-and-two-constants": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("Max", {}, {"m1": _f32(0), "m2": _f32(1)}))),
        r"takes the max of other than the data and one constant number",
        ("node max (Max)",),
    ),
    "Celu-alpha-0": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("Celu", dict(alpha=0.0)))),
        r"Celu alpha: the parameter of celu must be finite and not 0, got 0\.0",
        ("node celu (Celu)",),
    ),
    "Elu-alpha-2": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("Elu", dict(alpha=2.0)))),
        r"Elu with alpha 2: lstmrt computes it with alpha 1 \(elu\)",
        ("node elu (Elu)",),
    ),
    "ThresholdedRelu": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("ThresholdedRelu", dict(alpha=0.5)))),
        r"ThresholdedRelu \(alpha 0\.5\) is not among lstmrt's activations",
        ("node thresholdedrelu (ThresholdedRelu)",),
    ),
    "Log-of-Tanh": (
        lambda p, w: _recurrent_file(p, "LSTM", w, head=_refused_head(("Tanh", {}), ("Log", {}))),
        r"takes the log of a value other than a Sigmoid's output",
        ("node log (Log)",),
    ),
    "Log-after-RNN-Sigmoid": (  # the Sigmoid is inside the recurrence: no log_sigmoid there
        lambda p, w: _recurrent_file(
            p,
            "RNN",
            _weights(np.random.default_rng(5), "RNN"),
            activations=["Sigmoid"],
            head=_refused_head(("Log", {}), dense=False),
        ),
        r"takes the log of a value other than a Sigmoid's output",
        ("node log (Log)",),
    ),
    # recurrent node activations lstmrt does not compute, the node named
    "LSTM-ThresholdedRelu-in-a-slot": (
        lambda p, w: _recurrent_file(
            p, "LSTM", w, activations=["Sigmoid", "ThresholdedRelu", "Tanh"], activation_alpha=[0.5]
        ),
        r"activation ThresholdedRelu cannot be computed by lstmrt: ThresholdedRelu \(alpha 0\.5\) is not among",
        ("node lstm (LSTM)",),
    ),
    "LSTM-ScaledTanh-in-a-slot": (
        lambda p, w: _recurrent_file(
            p, "LSTM", w, activations=["Sigmoid", "ScaledTanh", "Tanh"], activation_alpha=[2.0], activation_beta=[0.5]
        ),
        r"ScaledTanh \(alpha 2, beta 0\.5\) is not among lstmrt's activations",
        ("node lstm (LSTM)",),
    ),
    "LSTM-Affine-scaled-in-a-slot": (
        lambda p, w: _recurrent_file(
            p, "LSTM", w, activations=["Sigmoid", "Affine", "Tanh"], activation_alpha=[2.0], activation_beta=[0.0]
        ),
        r"Affine with alpha 2, beta 0: lstmrt computes it with alpha 1, beta 0 \(linear\)",
        ("node lstm (LSTM)",),
    ),
    "LSTM-Affine-without-alpha": (
        lambda p, w: _recurrent_file(p, "LSTM", w, activations=["Sigmoid", "Affine", "Tanh"]),
        r"Affine without its alpha in activation_alpha: ONNX's default \(1\) and ONNX Runtime's \(0\) differ",
        ("node lstm (LSTM)",),
    ),
    "LSTM-Elu-alpha-0.5-in-a-slot": (
        lambda p, w: _recurrent_file(p, "LSTM", w, activations=["Sigmoid", "Elu", "Tanh"], activation_alpha=[0.5]),
        r"activation Elu cannot be computed by lstmrt: Elu with alpha 0\.5",
        ("node lstm (LSTM)",),
    ),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_unsupported_graph_is_refused(tmp_path, rng, name):
    build, pattern, names = REFUSED[name]
    path = build(tmp_path / "model.onnx", _weights(rng, "LSTM"))
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # a valid file: the refusal is lstmrt's
    _refused(path, pattern, *names)


def test_truncated_file_is_corrupt(tmp_path, rng):
    consts = _weights(rng, "LSTM")
    data = _recurrent_file(tmp_path / "whole.onnx", "LSTM", consts).read_bytes()
    start = data.find(consts["R"].tobytes())
    assert start > 0
    cut = tmp_path / "model.onnx"
    cut.write_bytes(data[: start + consts["R"].nbytes // 2])  # in the middle of initializer R
    _refused(cut, None, cls=lstmrt.CorruptFileError)


class FixedStep(nn.Module):
    """fc(out[:, 4]): a fixed step, which a static export with T = 5 writes as index 4, as it would the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        return self.fc(self.lstm(x)[0][:, 4])


def test_a_fixed_step_of_a_static_time_axis_is_refused(tmp_path, rng):
    """Index 4 of a time axis the graph fixes at 5 was read as the last step, and predict on 7 steps returned step 6
    (0.2 off torch, which reads step 4; ONNX Runtime refuses 7 steps). The last step as index -1 still loads."""
    torch.manual_seed(0)
    path = _export(FixedStep(), (torch.zeros(2, 5, 3),), tmp_path / "fixed.onnx", input_names=["x"])
    _refused(path, r"selects step 4 of a time axis the graph fixes at 5 steps", "/Gather")
    last = LastStep(nn.LSTM(3, 5, batch_first=True), nn.Linear(5, 2), from_h_n=False).eval()
    model = lstmrt.load(_export(last, (torch.zeros(2, 5, 3),), tmp_path / "last.onnx", input_names=["x"]))
    X = rng.standard_normal((2, 7, 3)).astype(np.float32)
    with torch.no_grad():
        assert_close(model.predict(X), last(torch.from_numpy(X)).numpy())


@pytest.mark.parametrize("batch", ["static", "dynamic"])
def test_a_projected_lstm_from_the_dynamo_exporter_is_refused(batch, tmp_path):
    """torch's dynamo exporter writes nn.LSTM(proj_size=5) as an ONNX LSTM of hidden size 5 with an initial_c 8 wide,
    which ONNX Runtime refuses to run; lstmrt loaded it as an LSTM(4 -> 5) without the projection (0.09 off). With a
    dynamic batch the initial_c is zeros expanded to (1, batch, 8) at run time, whose width the reader now follows
    (0.48 off before, found by a probe)."""
    torch.manual_seed(0)
    net = LastStep(nn.LSTM(4, 8, proj_size=5, batch_first=True), nn.Linear(5, 3), from_h_n=False).eval()
    path = tmp_path / "projected.onnx"
    dims = ({0: torch.export.Dim("batch")},) if batch == "dynamic" else None
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                net, (torch.zeros(2, 5, 4),), str(path), dynamo=True, input_names=["x"], dynamic_shapes=dims
            )
        finally:
            forget_rnn_dispatch()
    shape = r"\(1, \?, 8\)" if batch == "dynamic" else r"\(1, 2, 8\)"
    _refused(path, rf"has an initial_c of shape {shape} where ONNX expects .* hidden size 5 .*proj_size")
