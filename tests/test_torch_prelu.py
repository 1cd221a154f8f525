"""torch's nn.PReLU and F.prelu in every torch path: lstmrt.from_torch, lstmrt.load of the live module, of a
torch.save'd whole module, of a state dict with layers= ("PReLU(<module>)"), and of torch.jit.script / torch.jit.trace
files. One slope is leaky_relu(slope) on any data; one slope per feature is a PReLU layer where the data is (B, F),
after the last step or pooling over time. Built in real torch with slopes away from the constant init (negative, above
1, different per feature) and compared with torch in predict and step by step; what lstmrt cannot compute is refused
by name: per-step slopes (torch's dim 1 of a sequence) and non-finite slopes."""

import contextlib
import re

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from torch import nn
from torch_forms import load_as, run_torch

import lstmrt
from lstmrt.errors import ArchitectureError, LayerOrderWarning


def spread(prelu: nn.PReLU, seed: int) -> nn.PReLU:
    """Slopes of every kind, one per feature, in a seeded order: init's constant 0.25 would hide a mix-up."""
    n = prelu.weight.numel()
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        prelu.weight.copy_(torch.linspace(-1.2, 1.6, n)[order])
    return prelu


# -- on the sequence: one slope -----------------------------------------------------------------------------------
class OverSequence(nn.Module):
    """LSTM -> nn.PReLU() on every step -> Linear -> nn.PReLU(init=-0.3)."""

    layers = ["lstm", "PReLU(act)", "fc", "PReLU(out)"]

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.act = nn.PReLU()
        self.fc = nn.Linear(6, 4)
        self.out = nn.PReLU(init=-0.3)

    def forward(self, x):
        return self.out(self.fc(self.act(self.lstm(x)[0])))


class BidirectionalOverSequence(nn.Module):
    """A bidirectional GRU -> Linear -> nn.PReLU(init=1.7): a slope above 1."""

    layers = ["gru", "fc", "PReLU(act)"]

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 5, bidirectional=True, batch_first=True)
        self.fc = nn.Linear(10, 4)
        self.act = nn.PReLU(init=1.7)

    def forward(self, x):
        return self.act(self.fc(self.gru(x)[0]))


# -- on (B, F): one slope per feature ----------------------------------------------------------------------------
class LastStep(nn.Module):
    """The tutorial head: fc(out[:, -1]) -> nn.PReLU(5)."""

    layers = ["lstm", "last_step", "fc", "PReLU(act)"]

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.fc = nn.Linear(6, 5)
        self.act = spread(nn.PReLU(5), 1)

    def forward(self, x):
        return self.act(self.fc(self.lstm(x)[0][:, -1]))


class FinalState(nn.Module):
    """A GRU's h_n[-1] -> nn.PReLU(6) -> Linear."""

    layers = ["gru", "last_step", "PReLU(act)", "fc"]

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 6, batch_first=True)
        self.act = spread(nn.PReLU(6), 2)
        self.fc = nn.Linear(6, 2)

    def forward(self, x):
        _, h_n = self.gru(x)
        return self.fc(self.act(h_n[-1]))


class Pooled(nn.Module):
    """A bidirectional GRU, the mean over time -> nn.PReLU(8) -> Linear."""

    layers = ["gru", "mean_over_time", "PReLU(act)", "fc"]

    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(3, 4, bidirectional=True, batch_first=True)
        self.act = spread(nn.PReLU(8), 3)
        self.fc = nn.Linear(8, 3)

    def forward(self, x):
        return self.fc(self.act(self.gru(x)[0].mean(1)))


class Functional(nn.Module):
    """F.prelu with parameters of the module: one slope on the sequence, one per feature after the last step."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.fc = nn.Linear(6, 5)
        self.a = nn.Parameter(torch.tensor([-0.4]))
        self.w = spread(nn.PReLU(5), 4).weight

    def forward(self, x):
        y = F.prelu(self.lstm(x)[0], self.a)
        return F.prelu(self.fc(y[:, -1]), self.w)


def features(rng, T=7):
    return (2 * rng.standard_normal((3, T, 3))).astype(np.float32)  # wide enough for both signs everywhere


def without_prelu_names(layers) -> list:
    """layers= naming the modules themselves: a whole-module file records their class."""
    return [re.sub(r"PReLU\((.*)\)", r"\1", entry) for entry in layers]


def load(net, how, X, tmp_path):
    """lstmrt's model of `net` in form `how`."""
    if how == "from_torch":  # its children in order, as forward() applies them on the sequence
        return lstmrt.from_torch(nn.Sequential(*net.children()))
    if how == "whole":  # forward() is not in the file: registration order, which is forward order here
        torch.save(net, tmp_path / "m.pt")
        return lstmrt.load(tmp_path / "m.pt")
    if how == "whole-layers":
        torch.save(net, tmp_path / "m.pt")
        return lstmrt.load(tmp_path / "m.pt", layers=without_prelu_names(net.layers))
    if how == "state-dict":
        torch.save(net.state_dict(), tmp_path / "sd.pt")
        return lstmrt.load(tmp_path / "sd.pt", layers=net.layers)
    return load_as(net, how, torch.from_numpy(X), tmp_path)


def assert_matches_torch(model, net, X):
    """predict, and a stream step by step (what torch returns for the sequence so far), against torch."""
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))
    if any(isinstance(layer, lstmrt.Bidirectional) for layer in model.layers):
        return  # a bidirectional model does not stream
    stream = model.stream(batch=X.shape[0])
    for t in range(X.shape[1]):
        want = run_torch(net, torch.from_numpy(X[:, : t + 1].copy()))
        assert_close(stream.step(X[:, t]), want[:, -1] if want.ndim == 3 else want, what=f"step {t}")


def slopes(model) -> list:
    """What each PReLU became: an activation's name, or a PReLU layer's slopes."""
    found = []
    for layer in model.layers:
        if isinstance(layer, lstmrt.Activation) and layer.activation.startswith("leaky_relu"):
            found.append(layer.activation)
        elif isinstance(layer, lstmrt.PReLU):
            found.append(layer.slope.tolist())
    return found


def weights(*prelus) -> list:
    return [p.detach().numpy().astype(np.float32).tolist() for p in prelus]


SEQUENCE_FORMS = ["from_torch", "live", "script", "trace", "whole", "state-dict"]
FILE_FORMS = ["live", "script", "trace", "whole-layers", "state-dict"]
CASES = [(OverSequence, how, lambda n: ["leaky_relu(0.25)", "leaky_relu(-0.3)"]) for how in SEQUENCE_FORMS] + [
    (BidirectionalOverSequence, how, lambda n: ["leaky_relu(1.7)"]) for how in SEQUENCE_FORMS
]
CASES += [(cls, how, lambda n: weights(n.act.weight)) for cls in (LastStep, FinalState, Pooled) for how in FILE_FORMS]
CASES += [(Functional, how, lambda n: ["leaky_relu(-0.4)", *weights(n.w)]) for how in ("live", "script", "trace")]


@pytest.mark.parametrize("make, how, expected", CASES, ids=[f"{c.__name__}-{how}" for c, how, _ in CASES])
def test_prelu_matches_torch(make, how, expected, tmp_path, rng):
    torch.manual_seed(7)
    net = make().eval()
    X = features(rng)
    unread = f"the forward\\(\\) of {make.__name__} is not in the file"
    with pytest.warns(LayerOrderWarning, match=unread) if how == "whole" else contextlib.nullcontext():
        model = load(net, how, X, tmp_path)
    assert slopes(model) == expected(net)
    assert_matches_torch(model, net, X)


# -- refused -------------------------------------------------------------------------------------------------------
class PerStep(nn.Module):
    """nn.PReLU(T) on a (B, T, H) sequence: torch runs it, one slope per time step."""

    layers = ["lstm", "PReLU(act)"]

    def __init__(self, steps=5):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.act = nn.PReLU(steps)

    def forward(self, x):
        return self.act(self.lstm(x)[0])


class FunctionalPerStep(nn.Module):
    def __init__(self, steps=5):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.w = nn.Parameter(torch.linspace(-1.0, 1.0, steps))

    def forward(self, x):
        return F.prelu(self.lstm(x)[0], self.w)


ON_A_SEQUENCE = (
    r"nn.PReLU\(num_parameters=5\) is applied to a sequence: on \(B, T, F\) torch takes dim 1 as the channels, one "
    r"slope per time step .*lstmrt has one slope per feature"
)


@pytest.mark.parametrize("how", ["from_torch", "live", "script", "trace", "whole", "state-dict"])
def test_per_step_slopes_are_refused(how, tmp_path):
    torch.manual_seed(8)
    net = PerStep().eval()
    X = torch.zeros(2, 5, 3)
    assert run_torch(net, X).shape == (2, 5, 6)  # torch runs it, as T == num_parameters
    if how == "from_torch":
        with pytest.raises(ValueError, match=ON_A_SEQUENCE + r".*\(lstmrt.load of the whole module"):
            load(net, how, X.numpy(), tmp_path)
        return
    with pytest.raises(ArchitectureError, match=r"module 'act': " + ON_A_SEQUENCE + r".*layers=\[\.\.\., 'last_step'"):
        load(net, how, X.numpy(), tmp_path)


@pytest.mark.parametrize("how", ["live", "script", "trace"])
def test_functional_per_step_slopes_are_refused(how, tmp_path):
    torch.manual_seed(9)
    words = r"parameter 'w': F.prelu\(x, self.w\) with 5 slopes is applied to a sequence: .*one slope per time step"
    with pytest.raises(ArchitectureError, match=words):
        load(FunctionalPerStep().eval(), how, np.zeros((2, 5, 3), np.float32), tmp_path)


def non_finite(make, slope: float):
    net = make().eval()
    with torch.no_grad():
        net.act.weight[-1] = slope  # what a diverged training run leaves
    return net


NON_FINITE = {
    "one-nan": (
        OverSequence,
        float("nan"),
        r"nn.PReLU\(num_parameters=1\): slope 0 is nan; lstmrt takes finite slopes",
    ),
    "per-feature-inf": (LastStep, float("inf"), r"nn.PReLU\(num_parameters=5\): slope 4 is inf; lstmrt takes finite"),
}


@pytest.mark.parametrize(
    "name, how", [("one-nan", "from_torch")] + [(n, how) for n in NON_FINITE for how in FILE_FORMS]
)
def test_non_finite_slopes_are_refused(name, how, tmp_path):
    make, slope, words = NON_FINITE[name]
    error = ValueError if how == "from_torch" else ArchitectureError
    with pytest.raises(error, match=("" if how == "from_torch" else "module 'act': ") + words):
        load(non_finite(make, slope), how, np.zeros((2, 5, 3), np.float32), tmp_path)


class ConstantSlope(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)

    def forward(self, x):
        return F.prelu(self.lstm(x)[0], torch.full((1,), 0.1))


class SlopeAndScale(nn.Module):
    """A parameter forward() uses other than as prelu's weight: lstmrt cannot see what it does."""

    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.w = nn.Parameter(torch.tensor([0.1]))
        self.scale = nn.Parameter(torch.full((6,), 2.0))

    def forward(self, x):
        return F.prelu(self.lstm(x)[0], self.w) ** self.scale


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize(
    "make, words",
    [
        (ConstantSlope, r"cannot follow ConstantSlope.forward .*lstmrt reads prelu with a parameter of the module"),
        (SlopeAndScale, r"\(SlopeAndScale\) holds parameters of its own \(w, scale\), used by its forward\(\)"),
    ],
    ids=["constant-weight", "parameter-used-otherwise"],
)
def test_prelu_weights_lstmrt_cannot_read_are_refused(make, words, how, tmp_path):
    with pytest.raises(ArchitectureError, match=words):
        load_as(make().eval(), how, torch.zeros(2, 5, 3), tmp_path)


@pytest.mark.parametrize(
    "entry, words",
    [
        ("PReLU(fc)", r"layers: 'PReLU\(fc\)' names module 'fc' \(weight, bias\); PReLU\(<module>\) names a module"),
        ("PReLU(head)", r"layers: 'PReLU\(head\)' names no module 'head'"),
        ("PReLU", r"'PReLU' is neither a module .* an nn.PReLU \('PReLU\(<module>\)'\)"),
    ],
)
def test_layers_entries_refused(entry, words, tmp_path):
    torch.save(LastStep().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ArchitectureError, match=words):
        lstmrt.load(tmp_path / "sd.pt", layers=["lstm", "last_step", entry, "act"])


def test_a_state_dict_without_layers_says_how_to_name_it(tmp_path):
    torch.save(LastStep().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ArchitectureError, match=r"module 'act' \(weight \(5,\)\) .*name it 'PReLU\(act\)' in layers="):
        lstmrt.load(tmp_path / "sd.pt")
