"""Skip connections in forward(): the guitar-amp model of audio-effect training code (`self.lin(x) + x[:, :, 0:skip]`,
the input's first features added to the output), residual LSTM stacks (`out = out + self.lstm2(out)[0]`, `+=`,
`torch.add`), a residual block module, a skip around the head. They were refused ("arithmetic on the network's
data"). Each is built in real torch and read three ways: the live module, its torch.jit.script file and its
torch.jit.trace file; predict, streams and lengths= are compared with torch."""

import numpy as np
import pytest
import torch
from conftest import assert_close
from torch import nn
from torch_forms import load_as, run_torch

import lstmrt

FORMS = ["live", "script", "trace"]


class GuitarAmp(nn.Module):
    """As audio-effect training code writes it: (T, B, F) without batch_first, the skip taken before the LSTM."""

    def __init__(self, input_size=1, hidden_size=20, skip=1, cell=nn.LSTM):
        super().__init__()
        self.skip = skip
        self.rec = cell(input_size, hidden_size)
        self.lin = nn.Linear(hidden_size, 1 if skip == 0 else skip)

    def forward(self, x):
        if self.skip:
            res = x[:, :, 0 : self.skip]
            x, _ = self.rec(x)
            return self.lin(x) + res
        x, _ = self.rec(x)
        return self.lin(x)


class ResidualStack(nn.Module):
    """out = out + lstm_k(out) for each block, with `+=`, `torch.add` and `+` in both orders, then a head."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(4, 8)
        self.l1 = nn.LSTM(8, 8, batch_first=True)
        self.l2 = nn.GRU(8, 8, batch_first=True)
        self.l3 = nn.LSTM(8, 8, batch_first=True)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        h = torch.tanh(self.inp(x))
        y, _ = self.l1(h)
        out = y + h
        y, _ = self.l2(out)
        out += y
        y, _ = self.l3(out)
        out = torch.add(y, out)
        return self.fc(out)


class Block(nn.Module):
    def __init__(self, size):
        super().__init__()
        self.lstm = nn.LSTM(size, size, batch_first=True)

    def forward(self, x):
        return x + self.lstm(x)[0]


class Blocks(nn.Module):
    """Residual blocks as child modules, each adding its own input."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 6)
        self.blocks = nn.Sequential(Block(6), Block(6))
        self.head = nn.Linear(6, 2)

    def forward(self, x):
        return self.head(self.blocks(self.inp(x)))


class LastValue(nn.Module):
    """A forecaster predicting the change: fc(out) plus the input's last feature, x[..., -1:]."""

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 5, batch_first=True)
        self.fc = nn.Linear(5, 1)

    def forward(self, x):
        out, _ = self.gru(x)
        return self.fc(out) + x[..., -1:]


class HeadSkip(nn.Module):
    """After the last step: a head whose input is added to its output, then a squeeze of one output."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.fc = nn.Linear(6, 6)
        self.out = nn.Linear(6, 1)

    def forward(self, x):
        last = self.lstm(x)[0][:, -1]
        return self.out(torch.relu(self.fc(last)) + last).squeeze(-1)


class ModuleListLoop(nn.Module):
    """The usual residual stack: a loop over an nn.ModuleList, each layer's output added to its input."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 5)
        self.layers = nn.ModuleList([nn.LSTM(5, 5, batch_first=True), nn.GRU(5, 5, batch_first=True)])
        self.head = nn.Linear(5, 2)

    def forward(self, x):
        x = self.inp(x)
        for layer in self.layers:
            y, _ = layer(x)
            x = x + y
        return self.head(x)


class Aliased(nn.Module):
    """`+=` changes the tensor in place: a name for it, and a slice of it (a view), would see the sum too."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.LSTM(2, 4, batch_first=True)
        self.l2 = nn.LSTM(4, 4, batch_first=True)
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        out, _ = self.l1(x)
        same = out
        view = out[:, :, 1:3]
        y, _ = self.l2(out)
        out += y
        return self.fc(same) + view


MODELS = {
    "guitar_amp": (GuitarAmp, (30, 2, 1), False),
    "guitar_amp_gru_2in": (lambda: GuitarAmp(input_size=2, hidden_size=8, cell=nn.GRU), (30, 2, 2), False),
    "residual_stack": (ResidualStack, (3, 17, 4), True),
    "blocks": (Blocks, (3, 12, 3), True),
    "last_value": (LastValue, (2, 9, 3), True),
    "head_skip": (HeadSkip, (4, 10, 3), True),
    "module_list_loop": (ModuleListLoop, (3, 9, 3), True),
}


def build(name):
    make, shape, batch_first = MODELS[name]
    torch.manual_seed(sum(map(ord, name)))
    net = make().eval()
    return net, torch.randn(*shape), batch_first


def batch_major(x, batch_first):
    x = x.numpy()
    return x if batch_first else x.transpose(1, 0, 2)


@pytest.mark.parametrize("how", FORMS)
@pytest.mark.parametrize("name", list(MODELS))
def test_predict_matches_torch(tmp_path, name, how):
    net, x, batch_first = build(name)
    model = load_as(net, how, x, tmp_path)
    want = run_torch(net, x)
    got = model.predict(batch_major(x, batch_first))
    assert_close(got, want if batch_first or want.ndim < 3 else want.transpose(1, 0, 2))
    assert any(isinstance(layer, lstmrt.Add) for layer in model.layers)


@pytest.mark.parametrize("name", ["guitar_amp", "residual_stack", "head_skip"])
def test_stream_matches_torch_on_every_prefix(tmp_path, name):
    net, x, batch_first = build(name)
    model = load_as(net, "script", x, tmp_path)
    X = batch_major(x, batch_first)
    stream = model.stream(batch=X.shape[0])
    for t in range(X.shape[1]):
        got = stream.step(X[:, t])
        prefix = x[: t + 1] if not batch_first else x[:, : t + 1]
        want = run_torch(net, prefix)
        want = want[:, -1] if want.ndim == 3 and batch_first else want[-1] if want.ndim == 3 else want
        assert_close(got.reshape(want.shape), want)


def test_lengths_match_torch_on_unpadded_sequences(tmp_path):
    net, x, _ = build("residual_stack")
    model = load_as(net, "trace", x, tmp_path)
    lengths = np.array([17, 6, 1])
    got = model.predict(x.numpy(), lengths=lengths)
    for b, n in enumerate(lengths):
        assert_close(got[b, :n], run_torch(net, x[b : b + 1, :n])[0])
        assert not got[b, n:].any()


def test_the_guitar_amp_streams_one_sample_at_a_time(tmp_path):
    """The audio use: one sample in, one sample out, the LSTM's state carried."""
    net, x, _ = build("guitar_amp")
    model = load_as(net, "live", x, tmp_path)
    signal = x[:, 0, 0].numpy()
    stream = model.stream()
    got = np.array([stream.step(np.array([s], np.float32))[0] for s in signal])
    assert_close(got, run_torch(net, x[:, :1])[:, 0, 0])
    assert repr(model).splitlines()[-1].strip() == "(2) Add(input[0:1])"


class TwoBranches(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.LSTM(3, 4, batch_first=True)
        self.b = nn.GRU(3, 4, batch_first=True)

    def forward(self, x):
        return self.a(x)[0] + self.b(x)[0]


class Broadcast(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(2, 4, batch_first=True)
        self.lin = nn.Linear(4, 1)

    def forward(self, x):
        return self.lin(self.lstm(x)[0]) + x


class Scaled(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        return torch.add(self.lstm(x)[0], x, alpha=0.5)


class SliceIntoModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(1, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x[:, :, 0:1])[0]


class StridedSlice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 2, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0] + x[:, :, ::2]


class AcrossTheLastStep(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 3, batch_first=True)
        self.fc = nn.Linear(3, 3)

    def forward(self, x):
        out = self.lstm(x)[0]
        return self.fc(out[:, -1]) + out


class InPlaceOnASlice(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 1, batch_first=True)

    def forward(self, x):
        res = x[:, :, 0:1]
        res += self.lstm(x)[0]
        return res


class AfterSqueeze(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        y = self.fc(self.lstm(x)[0]).squeeze(-1)
        return y + y


class PlusLength(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x)[0] + x.size(1)


class InPlaceOnAClone(nn.Module):
    def __init__(self):
        super().__init__()
        self.l1 = nn.LSTM(3, 4, batch_first=True)
        self.l2 = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        out, _ = self.l1(x)
        skip = out.clone()  # a copy: the walker cannot tell it from an alias
        out += self.l2(out)[0]
        return out + skip


class InPlaceSeenThroughSequential(nn.Module):
    """An eval-mode nn.Sequential(nn.Dropout) returns its input's tensor: `kept` sees the `+=` in torch."""

    def __init__(self):
        super().__init__()
        self.l1 = nn.LSTM(3, 4, batch_first=True)
        self.keep = nn.Sequential(nn.Dropout(0.1))
        self.l2 = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        out, _ = self.l1(x)
        kept = self.keep(out)
        out += self.l2(out)[0]
        return kept + self.l2(kept)[0]


class InPlaceOnTheArgument(nn.Module):
    """A block that changes its input in place: its caller's tensor changes too."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 3, batch_first=True)

    def forward(self, x):
        x += self.lstm(x)[0]
        return x


class InPlaceActivation(nn.Module):
    """A pre-activation block: nn.ReLU(inplace=True) changes the tensor the skip adds."""

    def __init__(self):
        super().__init__()
        self.inp = nn.Linear(3, 4)
        self.act = nn.ReLU(inplace=True)
        self.lstm = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        h = self.inp(x)
        return self.lstm(self.act(h))[0] + h


class SumBeforeAnyLayer(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(torch.relu(x) + x)[0]


REFUSED = {
    Aliased: r"changes in place a tensor that '\w+' also holds or views",
    InPlaceOnAClone: r"changes in place a tensor that 'skip' also holds or views; lstmrt follows `x = x \+ y`",
    InPlaceSeenThroughSequential: r"changes in place a tensor that 'kept' also holds or views",
    InPlaceOnTheArgument: r"changes in place the tensor forward\(\) was given, which its caller may still read",
    InPlaceActivation: r"'act' \(nn.ReLU\(inplace=True\)\) changes in place the tensor a skip connection adds",
    SumBeforeAnyLayer: r"adds before any layer with weights",
    TwoBranches: r"adds two branches: lstmrt runs one chain of layers",
    Broadcast: r"adds 2 feature\(s\) of the input to 1: lstmrt adds as many",
    Scaled: r"lstmrt adds two terms \(alpha=1\)",
    SliceIntoModule: r"a slice of the features, which lstmrt follows only as a term of a sum",
    StridedSlice: r"a slice of the features with a step",
    AcrossTheLastStep: r"adds a point with a time axis to data whose time axis is gone",
    InPlaceOnASlice: r"adds in place to a slice of the features \(a view\)",
    AfterSqueeze: r"a skip connection's sum .* comes after the output's feature axis was squeezed",
    PlusLength: r"a term of the sum is not the network's data flow",
}


@pytest.mark.parametrize(
    "cls, how",
    # tracing the in-place add to the input's slice trips torch's own warning: the live module says it
    [
        (cls, how)
        for cls in REFUSED
        for how in ("live", "trace")
        # a trace records the aliasing as it happened (these load and match torch), or trips torch's own warning
        if how == "live"
        or cls not in (InPlaceOnASlice, InPlaceActivation, InPlaceOnTheArgument, InPlaceSeenThroughSequential)
    ],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_refused_with_the_reason(tmp_path, cls, how):
    torch.manual_seed(0)
    net = cls().eval()
    example = torch.randn(2, 3, {Broadcast: 2, SliceIntoModule: 1, StridedSlice: 4, Scaled: 4, Aliased: 2}.get(cls, 3))
    if how == "trace" and cls is AcrossTheLastStep:
        example = torch.randn(2, 2, 3)  # torch broadcasts (B, F) + (B, T, F) only when B and T agree
    with pytest.raises(lstmrt.LoadError, match=REFUSED[cls]):
        load_as(net, how, example, tmp_path)


# -- a state dict records no forward(): "+input" / "+<module>" in layers= say where a skip connection adds --------
@pytest.mark.parametrize(
    "name, layers",
    [
        ("guitar_amp", ["rec", "lin", "+input[0:1]"]),
        ("guitar_amp", ["rec", "lin", "+input[:1]"]),
        ("last_value", ["gru", "fc", "+input[-1:]"]),
        # out = l1(h) + h with h = tanh(inp(x)), then each block adds the sum before it
        ("residual_stack", ["inp", "tanh", "l1", "+tanh", "l2", "++tanh", "l3", "+++tanh", "fc"]),
    ],
)
def test_state_dict_with_skip_connections_in_layers(tmp_path, name, layers):
    net, x, batch_first = build(name)
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    model = lstmrt.load(tmp_path / "sd.pt", layers=layers)
    want = run_torch(net, x)
    assert_close(model.predict(batch_major(x, batch_first)), want if batch_first else want.transpose(1, 0, 2))


def test_layers_skip_connection_mistakes(tmp_path):
    net, _, _ = build("guitar_amp")
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    with pytest.raises(lstmrt.LoadError, match=r"'\+lin' adds the output of 'lin', which is not an entry named before"):
        lstmrt.load(tmp_path / "sd.pt", layers=["rec", "+lin", "lin"])
    with pytest.raises(lstmrt.LoadError, match=r"adds 20 feature\(s\) of the output of layer 0 to 1"):
        lstmrt.load(tmp_path / "sd.pt", layers=["rec", "lin", "+rec"])
    with pytest.raises(lstmrt.LoadError, match=r"a skip connection \('\+input', '\+input\[0:1\]', '\+<module>'\)"):
        lstmrt.load(tmp_path / "sd.pt", layers=["rec", "lin", "+input[0:1"])


class InnerBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(4, 4, batch_first=True)

    def forward(self, x):
        return x + self.lstm(x)[0]


class WithInnerBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.inp, self.block, self.head = nn.Linear(2, 4), InnerBlock(), nn.Linear(4, 1)

    def forward(self, x):
        return self.head(self.block(self.inp(x))) + x[:, :, 0:1]


def test_layers_names_every_skip_even_inside_a_block(tmp_path):
    """layers= states the whole order instead of the forward() code: a block's own skip is named there too."""
    torch.manual_seed(0)
    net, x = WithInnerBlock().eval(), torch.randn(2, 7, 2)
    model = load_as(net, "script", x, tmp_path)  # read from the code
    assert_close(model.predict(x.numpy()), run_torch(net, x))
    named = lstmrt.load(tmp_path / "m.pt", layers=["inp", "block.lstm", "+inp", "head", "+input[0:1]"])
    assert_close(named.predict(x.numpy()), run_torch(net, x))
