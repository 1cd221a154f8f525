"""The ONNX graph reader on the shapes torch exports around recurrent nodes (skip connections, feature slices of the
input, token ids, a bidirectional layer's final states, static shapes baked into Reshapes, activation heads), each
compared with ONNX Runtime on the file, and with torch at shapes other than the exported one; and the graphs it
must refuse, by node name and reason."""

import warnings

import numpy as np
import pytest
from conftest import assert_close
from onnx_build import assert_refused, recurrent_weights, save, value

import lstmrt

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
torch = pytest.importorskip("torch")
nn, helper, numpy_helper, TensorProto = torch.nn, onnx.helper, onnx.numpy_helper, onnx.TensorProto

F_IN, H, B, T = 3, 6, 2, 5


class Skip(nn.Module):
    """out + a slice of the input (the audio-effect model), or a layer's output added to a later one's."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        hidden = F_IN if kind == "output" else H  # a residual around an LSTM keeps the width
        self.lstm, self.lstm2 = nn.LSTM(F_IN, hidden, batch_first=True), nn.LSTM(hidden, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, 2 if kind == "input-last-two" else hidden if kind == "output" else 1)

    def forward(self, x):
        out, _ = self.lstm(x)
        if self.kind == "input-slice":
            return self.fc(out) + x[:, :, 1:2]
        if self.kind == "input-last-two":
            return self.fc(out) + x[..., -2:]
        out = out + x  # kind "output": residual around each LSTM
        deeper, _ = self.lstm2(out)
        return self.fc(deeper + out)


class BidirectionalFinal(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru, self.fc = nn.GRU(F_IN, H, bidirectional=True, batch_first=True), nn.Linear(2 * H, 3)

    def forward(self, x):
        _, h = self.gru(x)
        return self.fc(torch.cat([h[-2], h[-1]], 1))


class ViewFinal(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(F_IN, H), nn.Linear(H, 2)  # sequence first

    def forward(self, x):
        _, (h, _) = self.lstm(x)
        return self.fc(h.view(-1, H))


class Head(nn.Module):
    def __init__(self, activation, bidirectional=False, layers=1):
        super().__init__()
        self.lstm = nn.LSTM(F_IN, H, num_layers=layers, bidirectional=bidirectional, batch_first=True)
        self.fc, self.act = nn.Linear(H * (2 if bidirectional else 1), 4), activation

    def forward(self, x):
        return self.act(self.fc(self.lstm(x)[0]))


class Scaled(nn.Module):
    def forward(self, x):
        return x * 3.0


class Gated(nn.Module):
    """out * sigmoid(fc(out)): a gate computed from the data, not x * sigmoid(x) (SiLU): refused."""

    def __init__(self):
        super().__init__()
        self.lstm, self.gate = nn.LSTM(F_IN, H, batch_first=True), nn.Linear(H, H)

    def forward(self, x):
        out = self.lstm(x)[0]
        return out * torch.sigmoid(self.gate(out))


class ChannelPReLU(nn.Module):
    """nn.PReLU(H) with a slope per feature (one negative, one 0) on the LSTM's output as channels, (B, H, T), and
    back: torch exports the slope (H, 1), which varies along the data's features while they are not the last axis."""

    def __init__(self):
        super().__init__()
        self.lstm, self.act = nn.LSTM(F_IN, H, batch_first=True), nn.PReLU(H)
        with torch.no_grad():
            self.act.weight.copy_(torch.tensor([0.25, -0.5, 0.0, 1.5, 0.1, 0.7]))

    def forward(self, x):
        return self.act(self.lstm(x)[0].transpose(1, 2)).transpose(1, 2)


def _loud(head, gain=8.0):
    """head with its fc scaled up: its outputs (else within +-0.35) reach past +-1, where Hardtanh clips."""
    with torch.no_grad():
        head.fc.weight.mul_(gain)
        head.fc.bias.mul_(gain)
    return head


TORCH = {  # id -> (module factory, batch_first, dynamic axes)
    "skip-input-slice": (lambda: Skip("input-slice"), True, True),
    "skip-input-last-two": (lambda: Skip("input-last-two"), True, True),
    "skip-output-residuals": (lambda: Skip("output"), True, True),
    "gru-bidirectional-final-states-cat": (BidirectionalFinal, True, True),
    "lstm-seq-first-h_n.view": (ViewFinal, False, True),
    "bidirectional-x2-static-shapes": (lambda: Head(nn.Identity(), bidirectional=True, layers=2), True, False),
    "head-gelu": (lambda: Head(nn.GELU()), True, True),
    "head-hardswish": (lambda: Head(nn.Hardswish()), True, True),
    "head-hardsigmoid": (lambda: Head(nn.Hardsigmoid()), True, True),
    "head-elu": (lambda: Head(nn.ELU()), True, True),
    "head-softplus": (lambda: Head(nn.Softplus()), True, True),
    "head-relu6": (lambda: Head(nn.ReLU6()), True, True),
    "head-log-softmax": (lambda: Head(nn.LogSoftmax(dim=-1)), True, True),
    "head-leaky-relu-default": (lambda: _loud(Head(nn.LeakyReLU())), True, True),  # ONNX LeakyRelu alpha 0.01
    "head-leaky-relu-0.05": (lambda: _loud(Head(nn.LeakyReLU(0.05))), True, True),
    "head-celu-0.5": (lambda: _loud(Head(nn.CELU(0.5))), True, True),
    "head-hardtanh": (lambda: _loud(Head(nn.Hardtanh())), True, True),  # Clip(-1, 1)
    "head-hardtanh-minus2-3": (lambda: _loud(Head(nn.Hardtanh(-2, 3))), True, True),  # between Affine layers
    "head-log-sigmoid": (lambda: _loud(Head(nn.LogSigmoid())), True, True),  # Sigmoid, then Log
    "head-prelu-one-slope": (lambda: _loud(Head(nn.PReLU(init=0.15))), True, True),  # PRelu, slope (1, 1)
    "prelu-per-feature-on-channels": (ChannelPReLU, True, True),
    "input-slice-of-every-feature": (lambda: InputSlice(0, F_IN), True, True),
    # nn.SiLU exports as x * Sigmoid(x): the Sigmoid merged into the Dense, then the product read as silu
    "head-silu": (lambda: _loud(Head(nn.SiLU())), True, True),
    "head-silu-after-scaling": (lambda: Head(nn.Sequential(Scaled(), nn.SiLU())), True, True),  # an Activation layer
}


def _export(module, example, path, dynamic, batch_first=True):
    axes = {"X": {0: "b", 1: "t"} if batch_first else {0: "t", 1: "b"}}
    with warnings.catch_warnings():  # the TorchScript-based exporter's deprecation and tracer warnings
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module.eval(),
            (example,),
            str(path),
            dynamo=False,
            input_names=["X"],
            dynamic_axes=axes if dynamic else None,
        )
    return path


def _ort(path, X):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"X": X})[0]


@pytest.mark.parametrize("name", list(TORCH))
def test_torch_export_matches_onnxruntime_and_torch(tmp_path, rng, name):
    build, batch_first, dynamic = TORCH[name]
    torch.manual_seed(0)
    module = build().eval()
    example = torch.randn((B, T, F_IN) if batch_first else (T, B, F_IN))
    path = _export(module, example, tmp_path / "m.onnx", dynamic, batch_first)
    model = lstmrt.load(path)
    X = rng.standard_normal((B, T, F_IN)).astype(np.float32)
    X_graph = X if batch_first else np.ascontiguousarray(X.transpose(1, 0, 2))
    want = _ort(path, X_graph)
    got = model.predict(X)
    assert_close(got, want if want.ndim == 2 or batch_first else want.transpose(1, 0, 2))
    # a shape other than the exported one, against torch itself (a static-shape graph runs in ONNX Runtime only at
    # the shape it was exported with; lstmrt reads the layers, not the shapes)
    X = rng.standard_normal((B + 1, T + 3, F_IN)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(X if batch_first else np.ascontiguousarray(X.transpose(1, 0, 2)))).numpy()
    assert_close(model.predict(X), want if want.ndim == 2 or batch_first else want.transpose(1, 0, 2))


def test_token_model_squeezed_output(tmp_path, rng):
    """nn.Embedding -> LSTM -> Linear(., 1) -> squeeze(-1): integer ids in, (B, T) out, as torch and ONNX Runtime."""

    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding, self.lstm, self.fc = nn.Embedding(20, 4), nn.LSTM(4, H, batch_first=True), nn.Linear(H, 1)

        def forward(self, ids):
            return self.fc(self.lstm(self.embedding(ids))[0]).squeeze(-1)

    torch.manual_seed(1)
    path = _export(Tokens(), torch.randint(0, 20, (B, T)), tmp_path / "tokens.onnx", dynamic=True)
    model = lstmrt.load(path)
    ids = rng.integers(0, 20, (B, T))
    assert_close(model.predict(ids), _ort(path, ids))
    assert isinstance(model.layers[0], lstmrt.Embedding) and model.squeeze_output


def test_selu_with_its_parameters_written_out(tmp_path, rng):
    """A Selu node may spell out ONNX's default alpha and gamma (float32 values): still lstmrt's selu."""
    weight = rng.standard_normal((F_IN, 4)).astype(np.float32)
    nodes = [
        helper.make_node("MatMul", ["X", "W"], ["h"]),
        helper.make_node("Selu", ["h"], ["Y"], alpha=1.67326319217681884765625, gamma=1.05070102214813232421875),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["B", "T", F_IN])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["B", "T", 4])],
        [numpy_helper.from_array(weight, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.save(model, str(tmp_path / "selu.onnx"))
    X = 3 * rng.standard_normal((B, T, F_IN)).astype(np.float32)
    assert_close(lstmrt.load(tmp_path / "selu.onnx").predict(X), _ort(tmp_path / "selu.onnx", X))


# -- refusals -----------------------------------------------------------------------------------------------------
class Branches(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.lstm, self.fc, self.fc2 = nn.LSTM(F_IN, H, batch_first=True), nn.Linear(H, 2), nn.Linear(H, 2)
        self.encoder = nn.LSTM(F_IN, H, batch_first=True)

    def forward(self, x):
        out, (h, c) = self.lstm(x)
        if self.kind == "two-heads":
            return self.fc(out) + self.fc2(out)
        if self.kind == "dense-on-feature-slice":
            return self.fc2(torch.cat([out[:, :, :3], out[:, :, :3]], -1))[..., :2]
        if self.kind == "concat-features":
            return torch.cat([out, x], -1)
        if self.kind == "encoder-decoder":
            return self.fc(self.encoder(x, (h, c))[0])
        raise AssertionError(self.kind)


class InputSlice(nn.Module):
    """The recurrent layer reads x[..., start:stop] of the model input: a no-op when that is every feature."""

    def __init__(self, start=1, stop=F_IN):
        super().__init__()
        self.start, self.stop = start, stop
        self.gru, self.fc = nn.GRU(stop - start, H, batch_first=True), nn.Linear(H, 2)

    def forward(self, x):
        return self.fc(self.gru(x[:, :, self.start : self.stop])[0])


class OneDirectionFinal(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm, self.fc = nn.LSTM(F_IN, H, bidirectional=True, batch_first=True), nn.Linear(H, 2)

    def forward(self, x):
        return self.fc(self.lstm(x)[1][0][-1])


class FinalAfterDeeperLayer(nn.Module):
    """A bidirectional layer's final states read after a later layer has read its sequence: the final states make
    each direction return its last output, which would change what the later layer reads."""

    def __init__(self):
        super().__init__()
        self.gru, self.fc = nn.GRU(F_IN, H, bidirectional=True, batch_first=True), nn.Linear(2 * H, 2)
        self.gru2 = nn.GRU(2 * H, 2, batch_first=True)

    def forward(self, x):
        out, h = self.gru(x)
        forward, backward = h[-2], h[-1]
        deeper = self.gru2(out)[0][:, -1]
        return self.fc(torch.cat([forward, backward], 1)) + deeper


REFUSED = {  # id -> (module factory, words of the message)
    "two-heads": (lambda: Branches("two-heads"), ["MatMul", "branches"]),
    "dense-on-feature-slice": (lambda: Branches("dense-on-feature-slice"), ["Concat"]),
    "concat-features": (lambda: Branches("concat-features"), ["Concat", "concatenates"]),
    # torch writes Hardshrink / Softshrink / Tanhshrink as several nodes (comparisons and Where; Tanh, then Sub of
    # the Tanh's input), which do not map onto one lstmrt activation
    "hardshrink": (lambda: Head(nn.Hardshrink(0.3)), ["/act/Greater (Greater)", "not supported"]),
    "softshrink": (lambda: Head(nn.Softshrink(0.3)), ["/act/Greater (Greater)", "not supported"]),
    "tanhshrink": (lambda: Head(nn.Tanhshrink()), ["/act/Sub (Sub)", "before a later node was merged"]),
    # nn.PReLU(T) on (B, T, 4): torch's channel axis 1 is time, a slope (T, 1) per step
    "prelu-per-step": (
        lambda: Head(nn.PReLU(T)),
        ["/act/PRelu (PRelu)", "slope of shape (5, 1) varying along time (axis 1): lstmrt has one slope per feature"],
    ),
    "encoder-decoder": (lambda: Branches("encoder-decoder"), ["/encoder/LSTM", "not the output of the layers before"]),
    "gated-not-silu": (Gated, ["/Mul (Mul)", "multiplies two data values"]),
    # lstmrt ran the GRU on the slice's width, taking the model input to be the slice (a probe's find)
    "input-feature-slice": (InputSlice, ["/gru/GRU (GRU)", "reads a slice of the features before it"]),
    "bidirectional-one-direction-final": (OneDirectionFinal, ["Gemm", "one direction's final state"]),
    "bidirectional-final-after-deeper-layer": (FinalAfterDeeperLayer, ["Concat", "changes layer 0"]),
}


@pytest.mark.parametrize("name", list(REFUSED))
def test_torch_export_refused_naming_the_node(tmp_path, name):
    build, words = REFUSED[name]
    torch.manual_seed(0)
    path = _export(build(), torch.randn(B, T, F_IN), tmp_path / "m.onnx", dynamic=True)
    ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # a valid file
    assert_refused(path, *words)


def _damaged(tmp_path, edit):
    """A valid exported LSTM + Linear whose graph `edit` damages (onnx.checker would refuse the result)."""
    torch.manual_seed(0)
    path = _export(Head(nn.Identity()), torch.randn(B, T, F_IN), tmp_path / "m.onnx", dynamic=True)
    model = onnx.load(str(path))
    edit(model.graph)
    onnx.save(model, str(path))
    return path


def _node(graph, op):
    return next(n for n in graph.node if n.op_type == op)


def _set_attr(node, name, value):
    for a in list(node.attribute):
        if a.name == name:
            node.attribute.remove(a)
    node.attribute.append(helper.make_attribute(name, value))


DAMAGED = {  # id -> (edit of the graph, exception class, words)
    "layout-2": (lambda g: _set_attr(_node(g, "LSTM"), "layout", 2), lstmrt.CorruptFileError, ["layout 2"]),
    "hidden_size-a-string": (
        lambda g: _set_attr(_node(g, "LSTM"), "hidden_size", "six"),
        lstmrt.CorruptFileError,
        ["hidden_size", "type str"],
    ),
    "hidden_size-wrong": (
        lambda g: _set_attr(_node(g, "LSTM"), "hidden_size", H + 1),
        lstmrt.UnsupportedModelError,
        ["W is shape", "expected"],
    ),
    "activation_alpha-strings": (
        lambda g: _set_attr(_node(g, "LSTM"), "activation_alpha", ["0.1"]),
        lstmrt.CorruptFileError,
        ["attribute activation_alpha holds values other than floats"],
    ),
    "matmul-one-input": (lambda g: _node(g, "MatMul").input.pop(), lstmrt.CorruptFileError, ["MatMul", "1 inputs"]),
    "transpose-bad-perm": (
        lambda g: _set_attr(_node(g, "Transpose"), "perm", [0, 0, 2]),
        lstmrt.CorruptFileError,
        ["perm", "not a permutation"],
    ),
    "nodes-out-of-order": (lambda g: g.node.insert(0, g.node.pop()), lstmrt.CorruptFileError, ["before any node"]),
    "custom-domain": (
        lambda g: setattr(_node(g, "MatMul"), "domain", "com.example"),
        lstmrt.UnsupportedModelError,
        ["com.example"],
    ),
}


@pytest.mark.parametrize("name", list(DAMAGED))
def test_damaged_graph_refused(tmp_path, name):
    edit, cls, words = DAMAGED[name]
    with pytest.raises(cls) as caught:
        lstmrt.load(_damaged(tmp_path, edit))
    for word in words:
        assert word in str(caught.value), str(caught.value)


@pytest.mark.parametrize(
    "op, why",
    [
        ("Add", "combines a final state with a constant"),
        ("Mul", "combines a final state with a constant"),
        ("Div", "combines a final state with a divisor"),
        ("Sub", "combines a final state with a constant"),
    ],
)
def test_a_constant_combined_with_every_final_state_is_refused(tmp_path, rng, op, why):
    """Y_h of every layer and direction, before one layer's is taken as data (fuzzing found that this raised an
    AttributeError inside the loader)."""
    nodes = [
        helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y", "Y_h"], name="rnn", hidden_size=H),
        helper.make_node(op, ["Y_h", "c"], ["y"], name="combine"),
    ]
    inits = {**recurrent_weights(rng, "LSTM", 3, H), "c": np.full(H, 0.5, np.float32)}
    path = save(tmp_path / "m.onnx", nodes, [value("X", ["T", "B", 3])], [value("y", 3)], inits)
    assert_refused(path, f"node combine ({op})", why)
