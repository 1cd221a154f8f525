"""lstmrt.load on real PyTorch files (torch.save zip and legacy, whole pickled modules, TorchScript scripted and
traced, safetensors), written by torch in tmp_path and compared with the same module in float64."""

import contextlib
import copy
import io
import os
import pickle
import pickletools
import re
import warnings
import zipfile
from typing import List

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch_forms import load_as
from torch import nn
from torch.nn import functional as F

import lstmrt
from lstmrt.errors import LayerOrderWarning
from lstmrt.loaders.load import load_with_info
from lstmrt.loaders.torch_build import ArchitectureError
from lstmrt.loaders.torch_pickle import UnsafePickleError

safetensors_torch = pytest.importorskip("safetensors.torch")


# -- models: module-level classes, so torch.save(model) and torch.jit.script can find them -------------------------
class RecurrentHead(nn.Module):
    """rnn -> head -> act, registered in forward order."""

    def __init__(self, rnn, head, act=None):
        super().__init__()
        self.rnn, self.head, self.act = rnn, head, act if act is not None else nn.Identity()

    def forward(self, x):
        return self.act(self.head(self.rnn(x)[0]))


class Tokens(nn.Module):
    def __init__(self, vocab=11, dim=4, hidden=6):
        super().__init__()
        self.embedding = nn.Embedding(vocab, dim)
        self.lstm = nn.LSTM(dim, hidden, batch_first=True)
        self.decoder = nn.Linear(hidden, vocab)

    def forward(self, tokens):
        return self.decoder(self.lstm(self.embedding(tokens))[0])


class HeadFirst(nn.Module):
    """Registers its head before its rnn: registration order is not forward order."""

    def __init__(self):
        super().__init__()
        self.head = nn.Linear(5, 2)
        self.gru = nn.GRU(3, 5, batch_first=True)

    def forward(self, x):
        return torch.relu(self.head(self.gru(x)[0]))


class Scaled(nn.Module):
    """A forward lstmrt cannot follow: a power of the data."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, batch_first=True)

    def forward(self, x):
        return self.gru(x)[0] ** 2


class EncoderDecoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder = RecurrentHead(nn.GRU(3, 4, batch_first=True), nn.Linear(4, 4))
        self.decoder = RecurrentHead(nn.LSTM(4, 5, batch_first=True), nn.Linear(5, 2), nn.Tanh())

    def forward(self, x):
        return self.decoder(self.encoder(x))


MODELS = {
    # name: (factory, layers= needed when only names and shapes are stored, i.e. activations)
    "lstm-2layer-bidir-proj": (
        lambda: RecurrentHead(
            nn.LSTM(3, 5, num_layers=2, bidirectional=True, proj_size=2, batch_first=True), nn.Linear(4, 3), nn.Tanh()
        ),
        ["rnn", "head", "tanh"],
    ),
    "gru-bidir": (
        lambda: RecurrentHead(nn.GRU(3, 4, bidirectional=True, batch_first=True), nn.Linear(8, 2), nn.Sigmoid()),
        ["rnn", "head", "sigmoid"],
    ),
    "rnn-nobias": (
        lambda: RecurrentHead(nn.RNN(3, 4, num_layers=2, bias=False, batch_first=True), nn.Linear(4, 2)),
        ["rnn", "head"],
    ),
    "mlp-sequential": (
        lambda: nn.Sequential(
            nn.Linear(3, 8), nn.GELU(approximate="tanh"), nn.Dropout(0.3), nn.Linear(8, 4), nn.Softmax(dim=-1)
        ),
        ["0", "gelu_tanh", "3", "softmax"],
    ),
    "tokens": (Tokens, ["embedding", "lstm", "decoder"]),
}
FORMATS = ["zip", "legacy", "whole", "whole-legacy", "script", "trace", "safetensors"]
STATE_DICT_FORMATS = ("zip", "legacy", "safetensors")


def make(name, seed=0):
    torch.manual_seed(seed)
    return MODELS[name][0]().eval()


def features(rng, B=2, T=7):
    return rng.standard_normal((B, T, 3)).astype(np.float32)


def example(name, rng):
    return rng.integers(0, 11, size=(2, 7)) if name == "tokens" else features(rng)


def reference(module, X):
    """The module's output in float64 (weights are float32 values: this isolates lstmrt's rounding)."""
    m = copy.deepcopy(module).double().eval()
    x = torch.from_numpy(X) if X.dtype.kind in "iu" else torch.from_numpy(X).double()
    with torch.no_grad():
        y = m(x)
    return (y[0] if isinstance(y, tuple) else y).numpy()


def script(module):
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; its archives are still what we read
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        return torch.jit.script(module)


def trace(module, x):
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        warnings.filterwarnings("ignore", "LSTM with projections is not supported with oneDNN", UserWarning)
        return torch.jit.trace(module, x)


def save(module, fmt, path, X):
    if fmt == "zip":
        torch.save(module.state_dict(), path)
    elif fmt == "legacy":
        torch.save(module.state_dict(), path, _use_new_zipfile_serialization=False)
    elif fmt == "whole":
        torch.save(module, path)
    elif fmt == "whole-legacy":
        torch.save(module, path, _use_new_zipfile_serialization=False)
    elif fmt == "script":
        script(module).save(str(path))
    elif fmt == "trace":
        trace(module, torch.from_numpy(X if X is not None else np.zeros((1, 2, 3), np.float32))).save(str(path))
    elif fmt == "safetensors":
        safetensors_torch.save_file(module.state_dict(), str(path))
    return str(path)


def unread_forward(fmt, module=None, name=None):
    """What loading a torch.save(model) file of a user-defined class gives, besides the model: a warning that its
    forward() is not in the file (its modules in registration order, its functional ops unseen)."""
    name = name or type(module).__name__
    if not fmt.startswith("whole") or type(module).__module__.startswith("torch.nn."):
        return contextlib.nullcontext()
    return pytest.warns(
        LayerOrderWarning,
        match=rf"the forward\(\) of {name} is not in the file: .*registration "
        r"order.*functional ops.*not applied.*layers=",
    )


def state_dict_order(*names):
    """What loading a container's state dict without layers= gives, besides the model: a warning that the file
    holds no forward() (its layers in the file's order, no activations), with the layers= that states it."""
    listed = ", ".join(names)
    return pytest.warns(
        LayerOrderWarning,
        match=rf"^a state dict records parameters, not forward\(\): {listed} are "
        rf"applied in .*no activation between or after them .*layers={re.escape(repr(list(names)))}",
    )


# -- every format x every model ---------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(MODELS))
def test_formats_match_torch(name, fmt, tmp_path, rng):
    module = make(name)
    X = example(name, rng)
    path = save(module, fmt, tmp_path / f"model.{fmt}", X)
    layers = MODELS[name][1] if fmt in STATE_DICT_FORMATS else None
    with unread_forward(fmt, module):
        model = lstmrt.load(path, layers=layers)
    assert_close(model.predict(X), reference(module, X))
    assert_close(model.predict(X[0]), reference(module, X[:1])[0])


@pytest.mark.parametrize("name", list(MODELS))
def test_model_files_keep_every_model(name, tmp_path, rng):
    """Each model, loaded from the live module and saved as lstmrt's own file, loads back without torch's help and
    still matches torch."""
    module = make(name)
    X = example(name, rng)
    lstmrt.load(module).save(tmp_path / "model.lstmrt")
    model = lstmrt.load(tmp_path / "model.lstmrt")
    assert_close(model.predict(X), reference(module, X))


@pytest.mark.parametrize("fmt", ["whole", "script", "trace"])
def test_rnn_relu_nonlinearity_read_from_module_tree(fmt, tmp_path, rng):
    torch.manual_seed(1)
    module = RecurrentHead(nn.RNN(3, 4, num_layers=2, nonlinearity="relu", batch_first=True), nn.Linear(4, 2)).eval()
    X = features(rng)
    with unread_forward(fmt, module):
        model = lstmrt.load(save(module, fmt, tmp_path / "m.pt", X))
    assert model.layers[0].activation == "relu"
    assert_close(model.predict(X), reference(module, X))


@pytest.mark.parametrize("fmt", ["whole", "script", "trace"])
def test_plain_modules_saved_whole(fmt, tmp_path, rng):
    """A bare nn.LSTM (output = every step, as torch's output[0]) and a bare nn.Sequential."""
    torch.manual_seed(2)
    X = features(rng)
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True).eval()
    model = lstmrt.load(save(lstm, fmt, tmp_path / "lstm.pt", X))
    assert_close(model.predict(X), reference(lstm, X))
    time_major = nn.LSTM(3, 4, bidirectional=True).eval()  # lstmrt's input is (B, T, I) whatever batch_first
    model = lstmrt.load(save(time_major, fmt, tmp_path / "tm.pt", X.transpose(1, 0, 2).copy()))
    assert_close(model.predict(X), reference(time_major, X.transpose(1, 0, 2).copy()).transpose(1, 0, 2))
    seq = nn.Sequential(nn.Linear(3, 5), nn.ELU(), nn.Linear(5, 2), nn.LogSoftmax(dim=-1)).eval()
    model = lstmrt.load(save(seq, fmt, tmp_path / "seq.pt", X))
    assert_close(model.predict(X), reference(seq, X))


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("fmt", ["zip", "whole", "script"])
def test_cells_run_over_the_sequence(kind, fmt, tmp_path, rng):
    torch.manual_seed(3)
    cell = getattr(nn, kind)(3, 5).eval()
    X = features(rng)
    model = lstmrt.load(save(cell, fmt, tmp_path / "cell.pt", X))
    c64 = copy.deepcopy(cell).double()
    state, outputs = None, []
    with torch.no_grad():
        for t in range(X.shape[1]):
            state = c64(torch.from_numpy(X[:, t]).double(), state)
            outputs.append((state[0] if isinstance(state, tuple) else state).numpy())
    assert_close(model.predict(X), np.stack(outputs, axis=1))


# -- names and shapes -----------------------------------------------------------------------------------------------
class TwelveRows(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(5, 3, batch_first=True)  # weight_ih (12, 5), weight_hh (12, 3)
        self.gru = nn.GRU(3, 4, batch_first=True)  # weight_ih (12, 3), weight_hh (12, 4)

    def forward(self, x):
        return self.gru(self.lstm(x)[0])[0]


def test_twelve_rows_lstm_vs_gru_settled_by_weight_hh(tmp_path, rng):
    torch.manual_seed(4)
    module = TwelveRows().eval()
    torch.save(module.state_dict(), tmp_path / "sd.pt")
    with state_dict_order("lstm", "gru"):
        model = lstmrt.load(tmp_path / "sd.pt")
    assert [type(s).__name__ for s in model.layers] == ["LSTM", "GRU"]
    X = rng.standard_normal((2, 6, 5)).astype(np.float32)
    assert_close(model.predict(X), reference(module, X))


def test_state_dict_without_activations_is_a_chain_of_its_layers(tmp_path, rng):
    """Documented: a state dict yields no activations; recurrent -> Linear needs none to load. It says so: the
    module's sigmoid is missing from the model, which would otherwise give wrong numbers without a word."""
    module = make("gru-bidir")
    torch.save(module.state_dict(), tmp_path / "sd.pt")
    with state_dict_order("rnn", "head"):
        model = lstmrt.load(tmp_path / "sd.pt")
    assert [type(s).__name__ for s in model.layers] == ["Bidirectional", "Dense"]
    X = features(rng)
    assert_close(model.predict(X), reference(RecurrentHead(module.rnn, module.head), X))  # no sigmoid
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # layers= states the order: no warning
        model = lstmrt.load(tmp_path / "sd.pt", layers=["rnn", "head", "sigmoid"])
    assert_close(model.predict(X), reference(module, X))


def test_state_dict_of_a_bare_torch_module_gives_no_warning(tmp_path, rng):
    """nn.LSTM's own state dict (names without a module path): its forward is torch's, nothing can be missing."""
    lstm = nn.LSTM(3, 4, num_layers=2, batch_first=True).eval()
    torch.save(lstm.state_dict(), tmp_path / "sd.pt")
    safetensors_torch.save_file(lstm.state_dict(), str(tmp_path / "sd.safetensors"))
    X = features(rng)
    for name in ("sd.pt", "sd.safetensors"):
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            model = lstmrt.load(tmp_path / name)
        assert_close(model.predict(X), reference(lstm, X))


def test_linear_after_linear_in_a_state_dict_asks_for_layers(tmp_path):
    torch.save(make("mlp-sequential").state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ArchitectureError, match=r"'0' and '3' are both nn.Linear.*layers="):
        lstmrt.load(tmp_path / "sd.pt")


def test_registration_order_not_forward_order_asks_for_layers(tmp_path, rng):
    torch.manual_seed(5)
    module = HeadFirst().eval()
    for fmt in ("zip", "whole"):
        path = save(module, fmt, tmp_path / f"m.{fmt}", None)
        with pytest.raises(ArchitectureError, match=r"expects 3 input features.*outputs 2.*layers="):
            lstmrt.load(path)
        model = lstmrt.load(path, layers=["gru", "head", "relu"])
        X = features(rng)
        assert_close(model.predict(X), reference(module, X))


def test_torchscript_follows_forward_code(tmp_path, rng):
    """Scripted code shows the forward order (head registered first) and the functional relu."""
    torch.manual_seed(6)
    module = HeadFirst().eval()
    X = features(rng)
    model = lstmrt.load(save(module, "script", tmp_path / "m.pt", X))
    assert [type(s).__name__ for s in model.layers] == ["GRU", "Dense", "Activation"]
    assert_close(model.predict(X), reference(module, X))


def test_torchscript_forward_that_is_not_a_chain_asks_for_layers(tmp_path, rng):
    module = Scaled().eval()
    path = save(module, "script", tmp_path / "m.pt", None)
    with pytest.raises(ArchitectureError, match=r"cannot follow Scaled.forward.*layers="):
        lstmrt.load(path)
    assert lstmrt.load(path, layers=["gru"]).layers[0].hidden_size == 4


def test_nested_user_modules_whole_and_script(tmp_path, rng):
    torch.manual_seed(7)
    module = EncoderDecoder().eval()
    X = features(rng)
    for fmt in ("whole", "script", "trace"):
        with unread_forward(fmt, module, name="EncoderDecoder, RecurrentHead"):
            model = lstmrt.load(save(module, fmt, tmp_path / f"m.{fmt}", X))
        assert_close(model.predict(X), reference(module, X))


# -- key, prefix, layers ------------------------------------------------------------------------------------------
def checkpoint(module):
    return {
        "epoch": 3,
        "model_state": module.state_dict(),
        "optimizer_state": torch.optim.Adam(module.parameters()).state_dict(),
        "scheduler": {"last_epoch": 3},
    }


def test_key_auto_detected_and_explicit(tmp_path, rng):
    module = make("gru-bidir")
    opt = torch.optim.Adam(module.parameters())
    module(torch.randn(1, 2, 3)).sum().backward()
    opt.step()  # optimizer moments now hold tensors: they must not count as candidates
    torch.save(
        {"epoch": 3, "model_state": module.state_dict(), "optimizer_state": opt.state_dict()}, tmp_path / "ck.pt"
    )
    X = features(rng)
    for key in (None, "model_state"):
        model, info = load_with_info(tmp_path / "ck.pt", key=key, layers=["rnn", "head", "sigmoid"])
        assert info["key"] == "model_state"
        assert_close(model.predict(X), reference(module, X))


def test_key_dotted_path_and_errors(tmp_path):
    a, b = make("gru-bidir"), make("rnn-nobias")
    torch.save({"models": {"generator": a.state_dict(), "critic": b.state_dict()}, "step": 10}, tmp_path / "two.pt")
    with pytest.raises(ValueError, match=r"several.*'models.generator'.*'models.critic'.*key="):
        lstmrt.load(tmp_path / "two.pt")
    with state_dict_order("rnn", "head"):
        assert lstmrt.load(tmp_path / "two.pt", key="models.critic").layers[0].hidden_size == 4
    with pytest.raises(KeyError, match=r"key 'nope' not found.*'models'"):
        lstmrt.load(tmp_path / "two.pt", key="nope")
    with pytest.raises(ValueError, match=r"key 'step' holds a int, not a state dict"):
        lstmrt.load(tmp_path / "two.pt", key="step")
    torch.save({"epoch": 1, "note": "empty"}, tmp_path / "none.pt")
    with pytest.raises(ValueError, match=r"no state dict or module found.*'epoch', 'note'.*key="):
        lstmrt.load(tmp_path / "none.pt")


def test_checkpoint_holding_a_whole_module(tmp_path, rng):
    module = make("lstm-2layer-bidir-proj")
    torch.save({"epoch": 1, "model": module}, tmp_path / "ck.pt")
    with unread_forward("whole", module):
        model, info = load_with_info(tmp_path / "ck.pt")
    assert info["key"] == "model"
    X = features(rng)
    assert_close(model.predict(X), reference(module, X))


@pytest.mark.parametrize("fmt", ["zip", "legacy", "whole", "script", "safetensors"])
def test_prefix_selects_a_submodule(fmt, tmp_path, rng):
    torch.manual_seed(8)
    module = EncoderDecoder().eval()
    X = features(rng)
    path = save(module, fmt, tmp_path / "m.pt", X)
    lstm = lstmrt.load(path, prefix="decoder.rnn")
    assert [type(s).__name__ for s in lstm.layers] == ["LSTM"]
    assert_close(lstm.predict(X[..., :1].repeat(4, -1)), reference(module.decoder.rnn, X[..., :1].repeat(4, -1)))
    layers = ["rnn", "head", "tanh"] if fmt in STATE_DICT_FORMATS else None
    with unread_forward(fmt, module.decoder):
        decoder = lstmrt.load(path, prefix="decoder", layers=layers)
    H = reference(module.encoder, X).astype(np.float32)
    assert_close(decoder.predict(H), reference(module.decoder, H))
    with pytest.raises(
        ValueError,
        match=r"prefix 'decoder.gru'|no parameter under prefix 'decoder.gru'"
        r"|no tensor under prefix 'decoder.gru'",
    ):
        lstmrt.load(path, prefix="decoder.gru")


def test_layers_errors(tmp_path):
    torch.save(make("gru-bidir").state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match=r"'rnnn' is neither a module in the file \(modules: 'rnn', 'head'\)"):
        lstmrt.load(tmp_path / "sd.pt", layers=["rnnn", "head"])
    with pytest.raises(ValueError, match=r"does not use the parameters of module\(s\) 'head'.*prefix="):
        lstmrt.load(tmp_path / "sd.pt", layers=["rnn"])
    with pytest.raises(ValueError, match=r"'rnn' is named twice"):
        lstmrt.load(tmp_path / "sd.pt", layers=["rnn", "rnn", "head"])
    with pytest.raises(TypeError, match="layers must be a list"):
        lstmrt.load(tmp_path / "sd.pt", layers="rnn")
    model = lstmrt.load(tmp_path / "sd.pt", layers=["rnn", "ReLU", "head", "softmax"])  # torch class names too
    assert [model.layers[1].activation, model.layers[3].activation] == ["relu", "softmax"]


# -- safetensors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16, torch.float64])
def test_safetensors_dtypes(dtype, tmp_path, rng):
    module = make("tokens")
    state = {k: v.to(dtype) for k, v in module.state_dict().items()}
    safetensors_torch.save_file(state, str(tmp_path / "m.safetensors"))
    module.load_state_dict({k: v.float() for k, v in state.items()})  # the rounded weights are the truth
    with state_dict_order("embedding", "lstm", "decoder"):  # the Embedding fixes the order, but not the forward
        model = lstmrt.load(tmp_path / "m.safetensors")
    X = example("tokens", rng)
    assert_close(model.predict(X), reference(module, X))


def test_safetensors_order_from_sequential_indices(tmp_path, rng):
    torch.manual_seed(9)
    seq = nn.Sequential(*[nn.Linear(3, 3) if i % 2 == 0 else nn.Tanh() for i in range(11)]).eval()
    safetensors_torch.save_file(seq.state_dict(), str(tmp_path / "m.safetensors"))  # "10.weight" sorts before "2"
    X = features(rng)
    model = lstmrt.load(tmp_path / "m.safetensors", layers=[str(i) if i % 2 == 0 else "tanh" for i in range(11)])
    assert_close(model.predict(X), reference(seq, X))
    with pytest.raises(ArchitectureError, match="both nn.Linear"):
        lstmrt.load(tmp_path / "m.safetensors")


def test_safetensors_ambiguous_order_asks_for_layers(tmp_path):
    module = RecurrentHead(nn.GRU(3, 4), nn.Linear(4, 3))  # head -> rnn would chain too: 4 -> 3 -> 4
    safetensors_torch.save_file(module.state_dict(), str(tmp_path / "m.safetensors"))
    with pytest.raises(ArchitectureError, match=r"does not record the order.*layers="):
        lstmrt.load(tmp_path / "m.safetensors")


def test_safetensors_unknown_order_with_two_linears_is_never_guessed(tmp_path, rng):
    """Found by differential testing: rnn -> fc1 -> fc2 was dropped from the candidate orders (two nn.Linear
    meet), and the one other order whose sizes chain (fc2 -> rnn -> fc1: 17 -> 4 -> 31 -> 17) was loaded as the
    model, silently. Both orders chain: that is an ArchitectureError asking for layers=."""

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc1, self.fc2 = nn.GRU(4, 31, batch_first=True), nn.Linear(31, 17), nn.Linear(17, 4)

        def forward(self, x):
            return self.fc2(self.fc1(self.rnn(x)[0]))

    torch.manual_seed(3)
    net = Net().eval()
    safetensors_torch.save_file(net.state_dict(), str(tmp_path / "m.safetensors"))
    with pytest.raises(ArchitectureError, match=r"several orders of 'fc1', 'fc2', 'rnn' chain their sizes"):
        lstmrt.load(tmp_path / "m.safetensors")
    X = rng.standard_normal((2, 6, 4)).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(X)).numpy()
    assert_close(lstmrt.load(tmp_path / "m.safetensors", layers=["rnn", "fc1", "fc2"]).predict(X), want)


def test_safetensors_whose_first_byte_is_the_pickle_opcode(tmp_path, rng):
    """Found by differential testing: a safetensors header length whose low byte is 0x80 (1 file in 256) made
    the file's first byte the pickle PROTO opcode, and it was refused as a foreign pickle."""
    module = make("tokens")
    path = tmp_path / "m.safetensors"
    for pad in range(256):  # metadata padding moves the header length through every low byte
        safetensors_torch.save_file(module.state_dict(), str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:1] == b"\x80":
            break
    assert path.read_bytes()[:1] == b"\x80"
    X = example("tokens", rng)
    with state_dict_order("embedding", "lstm", "decoder"):
        assert_close(lstmrt.load(path).predict(X), reference(module, X))


def test_torch_file_integer_weights_are_refused(tmp_path):
    torch.save({"head.weight": torch.ones(2, 3, dtype=torch.int32), "head.bias": torch.ones(2)}, tmp_path / "i.pt")
    with pytest.raises(ArchitectureError, match=r"'head': parameter 'weight' has dtype int32; supported: floating"):
        lstmrt.load(tmp_path / "i.pt")


def test_safetensors_unsupported_dtype(tmp_path):
    safetensors_torch.save_file({"head.weight": torch.ones(2, 2, dtype=torch.int64)}, str(tmp_path / "i.safetensors"))
    with pytest.raises(ValueError, match=r"'head.weight' has dtype I64; supported: F32, F16, BF16, F64"):
        lstmrt.load(tmp_path / "i.safetensors")


# -- dtypes and devices in torch.save files -------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
@pytest.mark.parametrize("fmt", ["zip", "legacy", "whole"])
def test_torch_file_dtypes(dtype, fmt, tmp_path, rng):
    module = make("lstm-2layer-bidir-proj").to(dtype)
    path = save(module, fmt, tmp_path / "m.pt", None)
    layers = MODELS["lstm-2layer-bidir-proj"][1] if fmt in STATE_DICT_FORMATS else None
    X = features(rng)
    with unread_forward(fmt, module):
        model = lstmrt.load(path, layers=layers)
    assert_close(model.predict(X), reference(module.float(), X))


@pytest.fixture
def cuda_locations():
    """Make torch.save tag every storage as saved from cuda:0, as on a GPU machine (restored afterwards)."""
    registry = torch.serialization._package_registry
    entry = (0, lambda storage: "cuda:0", lambda storage, location: None)
    registry.insert(0, entry)
    yield
    registry.remove(entry)


@pytest.mark.parametrize("fmt", ["zip", "legacy", "whole"])
def test_storages_saved_from_cuda_load_on_cpu(fmt, tmp_path, rng, cuda_locations):
    module = make("gru-bidir")
    path = save(module, fmt, tmp_path / "m.pt", None)
    if fmt == "legacy":
        with open(path, "rb") as f:
            raw = f.read()
    else:
        with zipfile.ZipFile(path) as zf:
            raw = zf.read("m/data.pkl")
    assert b"cuda:0" in raw
    layers = MODELS["gru-bidir"][1] if fmt in STATE_DICT_FORMATS else None
    X = features(rng)
    with unread_forward(fmt, module):
        model = lstmrt.load(path, layers=layers)
    assert_close(model.predict(X), reference(module, X))


# -- unsupported content: errors naming the layer, its class and what is supported ----------------------------------
class WithGroupNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4, batch_first=True)
        self.act = nn.GroupNorm(2, 4)

    def forward(self, x):
        return self.act(self.rnn(x)[0])


@pytest.mark.parametrize("fmt", ["zip", "whole", "script"])
def test_unsupported_layer_is_named(fmt, tmp_path):
    path = save(WithGroupNorm().eval(), fmt, tmp_path / "m.pt", None)
    pattern = (
        r"module 'act' \(weight \(4,\), bias \(4,\)\) is no layer lstmrt knows \(a 1-D weight may be a "
        r"normalisation.*\); supported: nn.LSTM"
        if fmt == "zip"
        else r"module 'act' is a torch.nn.GroupNorm, which lstmrt does not support; supported: nn.LSTM"
    )
    with pytest.raises(ArchitectureError, match=pattern):
        lstmrt.load(path)
    assert lstmrt.load(path, prefix="rnn").output_size == 4  # prefix= leaves the unsupported module out


def _hardtanh_out_of_order():
    """nn.Hardtanh(2, -2), which torch refuses to build, as a damaged or hand-edited file may hold it."""
    module = nn.Hardtanh()
    module.min_val, module.max_val = 2.0, -2.0
    return module


@pytest.mark.parametrize(
    "module, words",
    [
        (
            nn.Sequential(nn.Linear(3, 3), _hardtanh_out_of_order()),
            r"module '1': nn.Hardtanh\(min_val=2.0, max_val=-2.0\): the lower bound 2 is not below the upper bound",
        ),
        (nn.Sequential(nn.Linear(3, 3), nn.ELU(alpha=0.5)), r"module '1': nn.ELU\(alpha=0.5\) is not supported"),
        (nn.Sequential(nn.Embedding(5, 3, max_norm=1.0), nn.Linear(3, 2)), r"'0': nn.Embedding\(max_norm=...\)"),
        (nn.Sequential(nn.Linear(3, 3), nn.Softmax(dim=0)), r"nn.Softmax\(dim=0\) is not supported"),
        (nn.Sequential(nn.Linear(3, 3), nn.Softmax()), r"nn.Softmax\(dim=None\) is not supported"),
    ],
    ids=["hardtanh_bounds", "elu_alpha", "embedding_max_norm", "softmax_dim0", "softmax_implicit_dim"],
)
@pytest.mark.parametrize("fmt", ["whole", "script"])
def test_unsupported_options_are_named(module, words, fmt, tmp_path):
    path = save(module.eval(), fmt, tmp_path / "m.pt", None)
    with pytest.raises(ArchitectureError, match=words):
        lstmrt.load(path)


@pytest.mark.parametrize(
    "module, words",
    [
        (nn.Sequential(nn.Embedding(5, 3, max_norm=0.5), nn.Linear(3, 2)), r"nn.Embedding\(max_norm=...\)"),
        (nn.Sequential(nn.Linear(3, 3), nn.Softmax()), r"nn.Softmax\(dim=None\) is not supported"),
    ],
    ids=["embedding_max_norm", "softmax_implicit_dim"],
)
@pytest.mark.parametrize("how", ["from_torch", "load"])
def test_live_modules_refuse_what_files_refuse(module, words, how):
    """Found by a docs review: live modules took both (torch's outputs differed by ~0.5) while files refused them."""
    with pytest.raises(ValueError, match=words):
        (lstmrt.from_torch if how == "from_torch" else lstmrt.load)(module.eval())


def test_live_module_list_is_read_as_a_module_tree(rng):
    """A live nn.ModuleList loads like a saved one (registration order); it went to from_torch, which refused it."""
    torch.manual_seed(4)
    modules = nn.ModuleList([nn.LSTM(3, 5, batch_first=True), nn.Linear(5, 2)]).eval()
    X = rng.standard_normal((2, 6, 3)).astype(np.float32)
    with torch.no_grad():
        want = modules[1](modules[0](torch.from_numpy(X))[0]).numpy()
    assert_close(lstmrt.load(modules).predict(X), want)


def test_user_module_with_its_own_parameters_is_refused(tmp_path):
    class_ = OwnParameter()
    torch.save(class_, tmp_path / "m.pt")
    with pytest.raises(ArchitectureError, match=r"OwnParameter\) holds parameters of its own \(scale\)"):
        lstmrt.load(tmp_path / "m.pt")


class OwnParameter(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(3, 4)
        self.scale = nn.Parameter(torch.ones(4))


def test_parametrized_weights_are_refused(tmp_path):
    from torch.nn.utils import parametrizations

    torch.save(nn.Sequential(parametrizations.weight_norm(nn.Linear(3, 3))).state_dict(), tmp_path / "wn.pt")
    with pytest.raises(ArchitectureError, match=r"'0.parametrizations.weight': parametrized weights .* not supported"):
        lstmrt.load(tmp_path / "wn.pt")


class EmbeddingLast(nn.Module):
    def __init__(self):
        super().__init__()
        self.rnn = nn.GRU(4, 5, batch_first=True)
        self.emb = nn.Embedding(10, 4)

    def forward(self, tokens):
        return self.rnn(self.emb(tokens))[0]


class EightHeads(nn.Module):
    def __init__(self):
        super().__init__()
        for name in "abcdefgh":
            setattr(self, name, nn.Linear(4, 4))


def test_names_and_shapes_errors(tmp_path, rng):
    torch.save(EmbeddingLast().state_dict(), tmp_path / "late.pt")
    with pytest.raises(ArchitectureError, match=r"'emb' is an nn.Embedding but is not the first layer.*layers="):
        lstmrt.load(tmp_path / "late.pt")
    model = lstmrt.load(tmp_path / "late.pt", layers=["emb", "rnn"])
    ids = rng.integers(0, 10, size=(2, 5))
    assert_close(model.predict(ids), reference(load_state(EmbeddingLast(), tmp_path / "late.pt"), ids))

    torch.save(nn.Sequential(nn.Embedding(5, 3)).state_dict(), tmp_path / "alone.pt")
    with pytest.raises(ArchitectureError, match=r"cannot tell whether '0' is an nn.Embedding or an nn.Linear"):
        lstmrt.load(tmp_path / "alone.pt")

    state = nn.LSTM(3, 4).state_dict()
    state["weight_hh_l0_raw"] = state["weight_hh_l0"].clone()  # AWD-LSTM's weight-dropped copy
    torch.save(state, tmp_path / "raw.pt")
    with pytest.raises(ArchitectureError, match=r"the root module: unexpected parameter 'weight_hh_l0_raw'"):
        lstmrt.load(tmp_path / "raw.pt")

    safetensors_torch.save_file(EightHeads().state_dict(), str(tmp_path / "eight.safetensors"))
    with pytest.raises(ArchitectureError, match=r"does not record the order of its 8 modules.*layers="):
        lstmrt.load(tmp_path / "eight.safetensors")


def load_state(module, path):
    module.load_state_dict(torch.load(path, weights_only=True))
    return module.eval()


def test_files_that_are_not_torch_checkpoints(tmp_path):
    with open(tmp_path / "plain.pkl", "wb") as f:
        pickle.dump({"w": np.ones(2)}, f, protocol=2)
    with pytest.raises(ValueError, match="a pickle, but not one written by torch.save"):
        lstmrt.load(tmp_path / "plain.pkl")
    import tarfile

    (tmp_path / "sys_info").write_text("x")
    with tarfile.open(tmp_path / "old.tar", "w") as tf:
        tf.add(tmp_path / "sys_info", arcname="sys_info")
    with pytest.raises(ValueError, match=r"tar format of PyTorch < 0.4 is not supported"):
        lstmrt.load(tmp_path / "old.tar")
    torch.save({"w": torch.ones(3)}, tmp_path / "real.pt")
    with zipfile.ZipFile(tmp_path / "real.pt") as zin, zipfile.ZipFile(tmp_path / "cut.pt", "w") as zout:
        for item in zin.infolist():
            if not item.filename.endswith("/data/0"):
                zout.writestr(item, zin.read(item.filename))
    with pytest.raises(pickle.UnpicklingError, match=r"storage '0' is missing from the archive"):
        lstmrt.load(tmp_path / "cut.pt")


# -- format detection ----------------------------------------------------------------------------------------------
def test_format_from_content_not_extension(tmp_path, rng):
    module = make("tokens")
    X = example("tokens", rng)
    torch.save(module, tmp_path / "weights.h5")
    safetensors_torch.save_file(module.state_dict(), str(tmp_path / "model.pt"))
    script(module).save(str(tmp_path / "model.safetensors"))
    for name, fmt in [
        ("weights.h5", "torch.save file (zip)"),
        ("model.pt", "safetensors file"),
        ("model.safetensors", "TorchScript archive"),
    ]:
        expected = {
            "weights.h5": unread_forward("whole", module),
            "model.pt": state_dict_order("embedding", "lstm", "decoder"),
        }.get(name, contextlib.nullcontext())
        with expected:
            model, info = load_with_info(tmp_path / name)
        assert info["format"] == fmt
        assert_close(model.predict(X), reference(module, X))
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="unrecognized file format; supported: torch.save"):
        lstmrt.load(tmp_path / "notes.txt")
    with zipfile.ZipFile(tmp_path / "other.zip", "w") as zf:
        zf.writestr("readme.md", "x")
    with pytest.raises(ValueError, match="neither a torch.save / TorchScript file"):
        lstmrt.load(tmp_path / "other.zip")


def test_options_that_do_not_apply(tmp_path):
    module = make("tokens")
    safetensors_torch.save_file(module.state_dict(), str(tmp_path / "m.safetensors"))
    with pytest.raises(ValueError, match="key= does not apply to safetensors"):
        lstmrt.load(tmp_path / "m.safetensors", key="model")
    script(module).save(str(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match="key= does not apply to TorchScript"):
        lstmrt.load(tmp_path / "m.pt", key="model")
    with pytest.raises(TypeError, match="cannot load a list"):
        lstmrt.load([1, 2])


# -- live modules -------------------------------------------------------------------------------------------------
def test_live_modules(rng):
    module = EncoderDecoder().eval()
    X = features(rng)
    assert_close(
        lstmrt.load(module.decoder.rnn).predict(X[..., :1].repeat(4, -1)),
        reference(module.decoder.rnn, X[..., :1].repeat(4, -1)),
    )
    model = lstmrt.load(module, layers=["encoder.rnn", "encoder.head", "decoder.rnn", "decoder.head", "tanh"])
    assert_close(model.predict(X), reference(module, X))
    decoder = lstmrt.load(module, prefix="decoder", layers=["rnn", "head", "tanh"])
    H = reference(module.encoder, X).astype(np.float32)
    assert_close(decoder.predict(H), reference(module.decoder, H))
    scripted = script(module)
    assert_close(lstmrt.load(scripted).predict(X), reference(module, X))  # via its TorchScript archive
    assert_close(lstmrt.load(module).predict(X), reference(module, X))  # user-defined: scripted, forward read
    with pytest.raises(ValueError, match=r"does not use the parameters of module\(s\) 'encoder.head', 'decoder.head'"):
        lstmrt.load(module, layers=["encoder.rnn", "decoder.rnn"])
    with pytest.raises(ValueError, match=r"key= does not apply to live torch modules"):
        lstmrt.load(module, key="x")


# -- never executing code from a file -----------------------------------------------------------------------------
def payload_os_system(canary):
    return b"cos\nsystem\n(V" + f"touch {canary}".encode() + b"\ntR."


def payload_via(module, name, arg):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n(V" + arg.encode() + b"\ntR."


def stack_global(module, name):
    """Protocol 4 STACK_GLOBAL with a dotted name: pickle's own find_class would walk the attributes."""

    def short(text):
        return b"\x8c" + bytes([len(text)]) + text.encode()

    return b"\x80\x04" + short(module) + short(name) + b"\x93."


class _Reduce:
    def __init__(self, fn, args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payload_reduce(fn, *args):
    return pickle.dumps(_Reduce(fn, args), protocol=2)


def replace_data_pkl(src, dst, data):
    """A real torch.save archive whose data.pkl is replaced by `data` (the rest left as torch wrote it)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename.endswith("/data.pkl") else zin.read(item.filename))


def legacy_with_payload(src, dst, data):
    """A real legacy torch.save stream whose object pickle is replaced by `data`."""
    raw = src.read_bytes()
    f = io.BytesIO(raw)
    for _ in range(3):
        pickle.load(f)  # magic, protocol, sys_info (plain values)
    start = f.tell()
    for op, _arg, _pos in pickletools.genops(f):
        if op.name == "STOP":
            break
    dst.write_bytes(raw[:start] + data + raw[f.tell() :])


@pytest.mark.parametrize("container", ["zip", "legacy", "torchscript"])
def test_malicious_pickle_does_not_run(container, tmp_path):
    canary = tmp_path / "canary"
    module = make("gru-bidir")
    if container == "torchscript":
        script(module).save(str(tmp_path / "real.pt"))
    else:
        save(module, container, tmp_path / "real.pt", None)
    target = tmp_path / "evil.pt"
    payload = payload_os_system(canary)
    if container == "legacy":
        legacy_with_payload(tmp_path / "real.pt", target, payload)
    else:
        replace_data_pkl(tmp_path / "real.pt", target, payload)
    with pytest.raises(UnsafePickleError, match=r"refusing global os.system"):
        lstmrt.load(target)
    assert not canary.exists()


@pytest.mark.parametrize(
    "payload, name",
    [
        (payload_via("builtins", "eval", "__import__('os').system('touch CANARY')"), "builtins.eval"),
        (payload_via("builtins", "exec", "open('CANARY', 'w')"), "builtins.exec"),
        (payload_via("__builtin__", "getattr", "x"), "builtins.getattr"),
        (payload_via("subprocess", "Popen", "touch CANARY"), "subprocess.Popen"),
        (payload_via("importlib", "import_module", "os"), "importlib.import_module"),
        (payload_via("posix", "system", "touch CANARY"), "posix.system"),
        (payload_via("numpy", "load", "CANARY"), "numpy.load"),
        (payload_via("torch", "load", "CANARY"), "torch.load"),
        (payload_via("evil_module", "do_evil", "x"), "evil_module.do_evil"),
        (
            stack_global("torch.nn.modules.rnn", "LSTM.__init__.__globals__"),
            r"torch.nn.modules.rnn.LSTM.__init__.__globals__",
        ),
        (payload_via("torch.nn.modules.rnn", "LSTM", "x"), "refusing to call global torch.nn.modules.rnn.LSTM"),
        (payload_via("mypackage.models", "Net", "x"), "refusing to call global mypackage.models.Net"),
        (b"ctorch._utils\n_rebuild_tensor_v2\n(N}V__defaults__\n(I1\ntstb.", "refusing to modify _rebuild_tensor"),
    ],
    ids=[
        "eval",
        "exec",
        "getattr",
        "popen",
        "importlib",
        "posix",
        "numpy_load",
        "torch_load",
        "unknown_function",
        "dotted_getattr_chain",
        "call_torch_class",
        "call_user_class",
        "build_onto_allowed_function",
    ],
)
def test_refused_globals_are_named(payload, name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({"w": torch.ones(1)}, tmp_path / "real.pt")
    replace_data_pkl(tmp_path / "real.pt", tmp_path / "evil.pt", payload.replace(b"CANARY", b"canary"))
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.").replace("(", r"\(")):
        lstmrt.load(tmp_path / "evil.pt")
    assert not (tmp_path / "canary").exists()


def test_payload_built_by_pickle_itself_is_refused(tmp_path):
    """The classic __reduce__ exploit, pickled by Python (os.system is posix.system on Linux)."""
    canary = tmp_path / "canary"
    torch.save({"w": torch.ones(1)}, tmp_path / "real.pt")
    replace_data_pkl(tmp_path / "real.pt", tmp_path / "evil.pt", payload_reduce(os.system, f"touch {canary}"))
    with pytest.raises(UnsafePickleError, match=r"refusing global (posix|os)\.system"):
        lstmrt.load(tmp_path / "evil.pt")
    assert not canary.exists()


def test_corrupt_tensor_layout_is_refused(tmp_path):
    """A size that reaches past its storage must not read out of bounds."""
    torch.save({"w": torch.ones(2, 2)}, tmp_path / "real.pt")
    data = zipfile.ZipFile(tmp_path / "real.pt").read("real/data.pkl")
    bad = data.replace(b"K\x02K\x02\x86", b"K\x09K\x02\x86")  # size (2, 2) -> (9, 2)
    assert bad != data
    replace_data_pkl(tmp_path / "real.pt", tmp_path / "bad.pt", bad)
    with pytest.raises(pickle.UnpicklingError, match=r"reaches element 17 of storage '0' which has 4"):
        lstmrt.load(tmp_path / "bad.pt", key="w")


@pytest.mark.parametrize("protocol", [0, 1])
def test_legacy_file_with_an_old_pickle_protocol_is_named(protocol, tmp_path):
    path = tmp_path / "old.pt"
    torch.save(nn.LSTM(3, 4).state_dict(), path, pickle_protocol=protocol, _use_new_zipfile_serialization=False)
    with pytest.raises(lstmrt.UnsupportedModelError, match="pickle protocol 0 or 1"):
        lstmrt.load(str(path))


class _ReversedWithTanh(nn.Module):
    """Registered Linear first, run last, with a functional tanh: registration order alone reads it wrongly."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 6)
        self.lstm = nn.LSTM(6, 6, batch_first=True)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(torch.tanh(out))


class _FirstStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        return self.fc(out[:, 0, :])


def test_live_user_module_follows_its_forward_code(rng):
    """A live user module is scripted and read like TorchScript: its forward order and functional activation
    (registration order gave Linear -> LSTM without the tanh: error 0.8)."""
    torch.manual_seed(0)
    net = _ReversedWithTanh().eval()
    X = rng.standard_normal((2, 7, 6)).astype(np.float32)
    model, info = load_with_info(net)
    assert info["order"] == "forward() code"
    with torch.no_grad():
        assert_close(model.predict(X), net(torch.from_numpy(X)).numpy())


def test_from_torch_of_a_user_module_follows_its_forward_code(rng):
    """from_torch(module) of the user's own class reads it as lstmrt.load(module) does (it said "cannot convert torch
    module"); Model options are refused there (forward() sets them), and a user module inside an nn.Sequential
    is refused with the hint."""
    torch.manual_seed(0)
    net = _ReversedWithTanh().eval()
    X = rng.standard_normal((2, 7, 6)).astype(np.float32)
    with torch.no_grad():
        assert_close(lstmrt.from_torch(net).predict(X), net(torch.from_numpy(X)).numpy())
    with pytest.raises(ValueError, match="Model options only for torch.nn modules; _ReversedWithTanh"):
        lstmrt.from_torch(net, return_sequences=False)
    with pytest.raises(ValueError, match=r"module 0 of the nn.Sequential, _ReversedWithTanh, is a module of your own"):
        lstmrt.from_torch(nn.Sequential(net))


def test_live_user_module_the_reader_refuses_asks_for_layers(rng):
    """As its TorchScript file does (it fell back to registration order, silently: right here only because
    lstmrt returns every step, wrong for any op the reader refuses)."""
    torch.manual_seed(0)
    net = _FirstStep().eval()
    X = rng.standard_normal((2, 7, 3)).astype(np.float32)
    with pytest.raises(ArchitectureError, match=r"cannot follow _FirstStep.forward .*select.*pass layers="):
        lstmrt.load(net)
    model, info = load_with_info(net, layers=["lstm", "fc"])
    assert info["order"] == "as given by layers="
    with torch.no_grad():
        assert_close(model.predict(X)[:, 0], net(torch.from_numpy(X)).numpy())


class _PackedBatch(nn.Module):
    """The usual way to train on sequences of several lengths: pack the padded batch, unpack the output."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 6, batch_first=True)
        self.fc = nn.Linear(6, 2)

    def forward(self, x, lengths=None):  # unannotated, as usually written: scripted as a Tensor
        if lengths is None:
            lengths = torch.full((x.shape[0],), x.shape[1])
        packed = nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        out, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=x.shape[1])
        return self.fc(out)


def test_live_module_that_packs_sequences_asks_for_layers_and_lengths(rng):
    """torch scripts this forward() but cannot save it (torch.jit.save raised `strides() called on an undefined
    Tensor` out of lstmrt.load); lstmrt traces it instead and asks for layers= and predict(lengths=)."""
    torch.manual_seed(0)
    net = _PackedBatch().eval()
    with pytest.raises(ArchitectureError, match=r"_PackedBatch.forward.*layers=.*packs padded.*lengths="):
        lstmrt.load(net)
    X = rng.standard_normal((3, 7, 4)).astype(np.float32)
    model = lstmrt.load(net, layers=["lstm", "fc"])
    with torch.no_grad():
        assert_close(model.predict(X), net(torch.from_numpy(X)).numpy())


@pytest.mark.parametrize("wrapper", ["DataParallel", "torch.compile"])
def test_live_training_wrappers_are_read_through(wrapper, rng):
    """nn.DataParallel was refused as an unsupported torch module; torch.compile's wrapper hid the forward(), so
    its modules were taken in registration order (Linear before LSTM, without the tanh)."""
    torch.manual_seed(0)
    net = _ReversedWithTanh().eval()
    with warnings.catch_warnings():  # importing torch.compile's backend warns about torch.jit (torch 2.13)
        warnings.simplefilter("ignore", DeprecationWarning)
        wrapped = nn.DataParallel(net) if wrapper == "DataParallel" else torch.compile(net)
    X = rng.standard_normal((2, 7, 6)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model, info = load_with_info(wrapped)
    assert info["order"] == "forward() code"
    with torch.no_grad():
        assert_close(model.predict(X), net(torch.from_numpy(X)).numpy())
    attr = "module" if wrapper == "DataParallel" else "_orig_mod"
    for names in ([f"{attr}.lstm", "tanh", f"{attr}.fc"], ["lstm", "tanh", "fc"]):  # through the wrapper or not
        with torch.no_grad():
            assert_close(lstmrt.load(wrapped, layers=names).predict(X), net(torch.from_numpy(X)).numpy())
    assert lstmrt.load(wrapped, prefix=f"{attr}.lstm").layers[0].hidden_size == 6


def test_a_saved_data_parallel_module_is_read_through(tmp_path, rng):
    """torch.save of an nn.DataParallel was refused ("the root module is a torch.nn.DataParallel"), and layers= named
    its modules as '' (found by a probe): the module it holds is read, prefix= and layers= with or without module."""
    torch.manual_seed(0)
    torch.save(
        nn.DataParallel(nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Dropout(0.2), nn.Linear(4, 2))), tmp_path / "m.pt"
    )
    X = rng.standard_normal((2, 5, 3)).astype(np.float32)
    head = torch.load(tmp_path / "m.pt", weights_only=False).module.eval()  # the test's own file: trusted
    with torch.no_grad():
        expected = head(torch.from_numpy(X)).numpy()
    for kwargs in ({}, {"layers": ["module.0", "tanh", "module.3"]}, {"layers": ["0", "tanh", "3"]}):
        assert_close(lstmrt.load(tmp_path / "m.pt", **kwargs).predict(X), expected)
    assert lstmrt.load(tmp_path / "m.pt", prefix="module.0").output_size == 4


def test_a_state_dict_takes_dropout_in_layers_as_no_change(tmp_path, rng):
    torch.manual_seed(1)
    head = nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.1), nn.Linear(4, 2)).eval()
    torch.save(head.state_dict(), tmp_path / "sd.pt")
    X = rng.standard_normal((2, 5, 3)).astype(np.float32)
    with torch.no_grad():
        assert_close(
            lstmrt.load(tmp_path / "sd.pt", layers=["0", "Dropout", "2"]).predict(X), head(torch.from_numpy(X)).numpy()
        )


def test_a_user_module_inside_a_live_sequential_is_named(rng):
    """It raised a plain ValueError telling the user to call lstmrt.load(module), which they had done."""

    class Pick(nn.Module):
        def forward(self, x):
            return x[0]

    net = nn.Sequential(nn.LSTM(3, 4, batch_first=True), Pick(), nn.Linear(4, 2)).eval()
    with pytest.raises(
        lstmrt.UnsupportedModelError, match=r"module 1 of the nn.Sequential, Pick, is a module of your own"
    ):
        lstmrt.load(net)
    X = rng.standard_normal((2, 5, 3)).astype(np.float32)
    with torch.no_grad():
        assert_close(lstmrt.load(net, layers=["0", "2"]).predict(X), net(torch.from_numpy(X)).numpy())


class _StoredState(nn.Module):
    """The old tutorial style: an initial state kept as a tensor attribute and passed to the recurrent module, which
    torch.jit.trace captures into the module's code as a tensor constant (CONSTANTS.c0)."""

    def __init__(self, kind, value):
        super().__init__()
        self.rnn = getattr(nn, kind)(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)
        state = torch.full((1, 2, 4), value)
        self.state = (state, state.clone()) if kind == "LSTM" else state

    def forward(self, x):
        out, _ = self.rnn(x, self.state)
        return self.fc(out)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_traced_initial_state_captured_as_a_constant(tmp_path, rng, kind):
    """Zeros captured by the trace load (they are where lstmrt's streams start); any other captured state is
    refused naming it (it was read as zeros: a wrong answer)."""
    torch.manual_seed(0)
    X = rng.standard_normal((2, 5, 3)).astype(np.float32)
    for value in (0.0, 0.25):
        net = _StoredState(kind, value).eval()
        trace(net, torch.from_numpy(X)).save(str(tmp_path / "traced.pt"))
        if value:
            with pytest.raises(ArchitectureError, match="module 'rnn' starts from the initial state CONSTANTS.c0"):
                lstmrt.load(tmp_path / "traced.pt")
        else:
            with torch.no_grad():
                assert_close(lstmrt.load(tmp_path / "traced.pt").predict(X), net(torch.from_numpy(X)).numpy())


class _TwoHeads(nn.Module):
    """A regression and a classification head on the last step, both returned."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.reg, self.cls = nn.Linear(5, 1), nn.Linear(5, 4)

    def forward(self, x):
        out, _ = self.lstm(x)
        last = out[:, -1]
        return self.reg(last), self.cls(last)


@pytest.mark.parametrize("how", ["live", "script", "trace"])
def test_second_head_is_refused_not_dropped(tmp_path, rng, how):
    """forward() returning two outputs computed from the data: lstmrt computes one, so it refuses (it returned the
    first and left the second head out without a word)."""
    torch.manual_seed(0)
    net = _TwoHeads().eval()
    X = rng.standard_normal((2, 5, 3)).astype(np.float32)
    with pytest.raises(ArchitectureError, match="returns 2 outputs, and output 2 is computed from the data too"):
        load_as(net, how, torch.from_numpy(X), tmp_path)


class _CellLoop(nn.Module):
    """A Python loop stepping an nn.LSTMCell over time, the outputs collected in a typed list."""

    def __init__(self):
        super().__init__()
        self.cell = nn.LSTMCell(3, 5)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        h = torch.zeros(x.size(0), 5)
        c = torch.zeros(x.size(0), 5)
        outs: List[torch.Tensor] = []
        for t in range(x.size(1)):
            h, c = self.cell(x[:, t], (h, c))
            outs.append(h)
        return self.fc(torch.stack(outs, 1))


def test_cell_loop_is_refused_pointing_to_layers(rng):
    """The loop is refused as a loop (it was "unknown name annotate", TorchScript's typed list), and the cell named
    in layers= computes what the loop does."""
    torch.manual_seed(0)
    net = _CellLoop().eval()
    with pytest.raises(ArchitectureError, match=r"a loop \(`for t in range\(torch.size\(x, 1\)\):`\).*layers="):
        lstmrt.load(net)
    X = rng.standard_normal((2, 6, 3)).astype(np.float32)
    with torch.no_grad():
        assert_close(lstmrt.load(net, layers=["cell", "fc"]).predict(X), net(torch.from_numpy(X)).numpy())


class _FunctionalDropout(nn.Module):
    """F.dropout in forward(): off in eval mode only when given self.training; its training flag defaults to True."""

    def __init__(self, training_flag):
        super().__init__()
        self.training_flag = training_flag
        self.lstm = nn.LSTM(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 2)

    def forward(self, x):
        out, _ = self.lstm(x)
        if self.training_flag:
            out = F.dropout(out, 0.5, self.training)
        else:
            out = F.dropout(out, 0.5)
        return self.fc(out)


@pytest.mark.parametrize("how", ["live", "script", "trace"])
def test_functional_dropout_is_a_no_op_only_when_off(tmp_path, rng, how):
    """F.dropout(out, 0.5) drops at random even after eval() (training=True is its default): it loaded as a no-op,
    giving numbers torch never gives. With self.training it is off in eval mode, and loads."""
    X = rng.standard_normal((2, 6, 3)).astype(np.float32)
    torch.manual_seed(0)
    off = _FunctionalDropout(True).eval()
    model = load_as(off, how, torch.from_numpy(X), tmp_path)
    with torch.no_grad():
        assert_close(model.predict(X), off(torch.from_numpy(X)).numpy())
    with pytest.raises(ArchitectureError, match=r"drops at random: its training flag is True"):
        load_as(_FunctionalDropout(False).eval(), how, torch.from_numpy(X), tmp_path)
