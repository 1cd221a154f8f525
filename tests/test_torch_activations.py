"""torch's activations with a parameter (nn.LeakyReLU, nn.CELU, nn.Hardshrink, nn.Softshrink), nn.Hardtanh (whose
bounds pick hard_tanh or relu6), nn.Tanhshrink and nn.LogSigmoid, as modules and as functional calls, read by every
torch path: lstmrt.from_torch, lstmrt.load of the live module, of a torch.save'd whole module (a user class, and an
nn.Sequential) and of its TorchScript scripted and traced files. Each is built in real torch with its own options
and compared with torch; the options lstmrt cannot compute are refused by name."""

import re
import zipfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import assert_close
from torch import nn
from torch_forms import load_as, run_torch

import lstmrt
from lstmrt.errors import ArchitectureError, LayerOrderWarning

FORMS = ["from_torch", "whole", "whole-sequential", "script", "trace"]  # "live": see test_live_modules


class Head(nn.Module):
    """LSTM -> `after` -> Linear -> `act`, registered in forward order."""

    def __init__(self, after, act):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.after = after
        self.fc = nn.Linear(6, 4)
        self.act = act

    def forward(self, x):
        return self.act(self.fc(self.after(self.lstm(x)[0])))


def features(rng):
    return (2 * rng.standard_normal((2, 7, 3))).astype(np.float32)  # wide enough to reach every branch


def load(net, how, X, tmp_path):
    """lstmrt's model of `net` in form `how` (FORMS)."""
    if how == "from_torch":
        return lstmrt.from_torch(nn.Sequential(*net.children()))
    if how == "whole":  # a user class saved whole: its forward() is not in the file, registration order is used
        torch.save(net, tmp_path / "m.pt")
        with pytest.warns(LayerOrderWarning, match=rf"the forward\(\) of {type(net).__name__} is not in the file"):
            return lstmrt.load(tmp_path / "m.pt")
    if how == "whole-sequential":  # the same modules in an nn.Sequential (torch cannot run it: the LSTM's tuple)
        torch.save(nn.Sequential(*net.children()), tmp_path / "m.pt")
        return lstmrt.load(tmp_path / "m.pt")
    return load_as(net, how, torch.from_numpy(X), tmp_path)


def activations(model) -> list:
    return [layer.activation for layer in model.layers if isinstance(layer, lstmrt.Activation)]


# -- modules ---------------------------------------------------------------------------------------------------------
MODULES = {  # id: (module after the LSTM, module after the Linear, the lstmrt activations they are)
    "LeakyReLU(0.05)-LeakyReLU()": (
        lambda: nn.LeakyReLU(0.05),
        nn.LeakyReLU,
        ["leaky_relu(0.05)", "leaky_relu(0.01)"],  # torch's default slope, not lstmrt's bare 0.2
    ),
    "CELU(0.5,inplace)-CELU()": (lambda: nn.CELU(0.5, inplace=True), nn.CELU, ["celu(0.5)", "celu"]),
    "Hardshrink(0.3)-Softshrink(0.2)": (
        lambda: nn.Hardshrink(0.3),
        lambda: nn.Softshrink(0.2),
        ["hard_shrink(0.3)", "soft_shrink(0.2)"],
    ),
    "Hardtanh()-Hardtanh(0,6,inplace)": (
        nn.Hardtanh,
        lambda: nn.Hardtanh(0.0, 6.0, inplace=True),
        ["hard_tanh", "relu6"],
    ),
    # other bounds: a clip (clip_ops), also in an nn.Sequential and a whole-module file (they were refused there)
    "Hardtanh(-2,3)-Hardtanh(0,20)": (
        lambda: nn.Hardtanh(-2.0, 3.0),
        lambda: nn.Hardtanh(0.0, 20.0),
        ["clip_min(-2)", "clip_max(3)", "relu", "clip_max(20)"],
    ),
    "Tanhshrink()-LogSigmoid()": (nn.Tanhshrink, nn.LogSigmoid, ["tanh_shrink", "log_sigmoid"]),
    # nn.ELU(inplace=True) is traced as torch.elu_, whose alpha was not read ("option missing from the file")
    "LeakyReLU(0.2,inplace)-ELU(inplace)": (
        lambda: nn.LeakyReLU(0.2, inplace=True),
        lambda: nn.ELU(inplace=True),
        ["leaky_relu", "elu"],
    ),
}


@pytest.mark.parametrize("how", FORMS)
@pytest.mark.parametrize("name", list(MODULES))
def test_modules_match_torch(name, how, tmp_path, rng):
    torch.manual_seed(0)
    after, act, expected = MODULES[name]
    net = Head(after(), act()).eval()
    X = features(rng)
    model = load(net, how, X, tmp_path)
    assert activations(model) == expected
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


def test_layers_names_torch_classes_and_parameters(tmp_path, rng):
    """A state dict records no activation: layers= names them, a class name meaning torch's defaults."""
    torch.manual_seed(1)
    net = Head(nn.LeakyReLU(), nn.LeakyReLU(0.05)).eval()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    model = lstmrt.load(tmp_path / "sd.pt", layers=["lstm", "LeakyReLU", "fc", "leaky_relu(0.05)"])
    assert activations(model) == ["leaky_relu(0.01)", "leaky_relu(0.05)"]
    X = features(rng)
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


# -- functional calls in forward() ----------------------------------------------------------------------------------
class _Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 6, batch_first=True)
        self.fc = nn.Linear(6, 4)
        self.slope = 0.02  # an option held by the module: scripted code reads self.slope


class LeakySlopes(_Recurrent):
    def forward(self, x):
        return F.leaky_relu(self.fc(F.leaky_relu(self.lstm(x)[0], 0.05)))


class LeakyInPlace(_Recurrent):
    def forward(self, x):
        y = F.leaky_relu(self.lstm(x)[0], negative_slope=0.1, inplace=True)
        return F.leaky_relu_(self.fc(y), self.slope)


class Celus(_Recurrent):
    def forward(self, x):
        return F.celu(self.fc(F.celu(self.lstm(x)[0], 0.5)), alpha=2.0, inplace=True)


class Shrinks(_Recurrent):
    def forward(self, x):
        return F.softshrink(self.fc(F.hardshrink(self.lstm(x)[0], 0.3)), lambd=0.2)


class ShrinksByDefault(_Recurrent):
    def forward(self, x):
        return F.softshrink(self.fc(self.lstm(x)[0].hardshrink(0.25)))


class Hardtanhs(_Recurrent):
    def forward(self, x):
        return F.hardtanh(self.fc(F.hardtanh(self.lstm(x)[0])), min_val=0.0, max_val=6.0, inplace=True)


class HardtanhInPlace(_Recurrent):
    def forward(self, x):
        return F.relu6(self.fc(F.hardtanh_(self.lstm(x)[0])))


class TanhshrinkLogsigmoid(_Recurrent):
    def forward(self, x):
        return F.logsigmoid(self.fc(F.tanhshrink(self.lstm(x)[0])))


class TanhshrinkWritten(_Recurrent):
    def forward(self, x):
        y = self.lstm(x)[0]
        return self.fc(y - torch.tanh(y))


FUNCTIONAL = {
    LeakySlopes: ["leaky_relu(0.05)", "leaky_relu(0.01)"],
    LeakyInPlace: ["leaky_relu(0.1)", "leaky_relu(0.02)"],
    Celus: ["celu(0.5)", "celu(2)"],
    Shrinks: ["hard_shrink(0.3)", "soft_shrink(0.2)"],
    ShrinksByDefault: ["hard_shrink(0.25)", "soft_shrink"],
    Hardtanhs: ["hard_tanh", "relu6"],
    HardtanhInPlace: ["hard_tanh", "relu6"],
    TanhshrinkLogsigmoid: ["tanh_shrink", "log_sigmoid"],
    TanhshrinkWritten: ["tanh_shrink"],
}


@pytest.mark.parametrize("how", ["script", "trace"])
@pytest.mark.parametrize("cls", list(FUNCTIONAL), ids=lambda c: c.__name__)
def test_functional_calls_match_torch(cls, how, tmp_path, rng):
    torch.manual_seed(2)
    net = cls().eval()
    X = features(rng)
    model = load_as(net, how, torch.from_numpy(X), tmp_path)
    assert activations(model) == FUNCTIONAL[cls]
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda: Head(nn.LeakyReLU(), nn.Hardtanh(0.0, 6.0, inplace=True)), ["leaky_relu(0.01)", "relu6"]),
        (LeakyInPlace, FUNCTIONAL[LeakyInPlace]),
    ],
    ids=["modules", "functional"],
)
def test_live_modules(make, expected, tmp_path, rng):
    """lstmrt.load of a live user module reads its forward() as TorchScript, the path of the files above."""
    torch.manual_seed(4)
    net = make().eval()
    X = features(rng)
    model = load_as(net, "live", torch.from_numpy(X), tmp_path)
    assert activations(model) == expected
    assert_close(model.predict(X), run_torch(net, torch.from_numpy(X)))


# -- refused -------------------------------------------------------------------------------------------------------
REFUSED_MODULES = {
    "CELU(0)": (lambda: nn.CELU(0.0), r"nn.CELU\(alpha=0.0\): the parameter of celu must be finite and not 0"),
    "Hardshrink(-0.5)": (
        lambda: nn.Hardshrink(-0.5),
        r"nn.Hardshrink\(lambd=-0.5\): the parameter of hard_shrink must be finite and >= 0, got -0.5",
    ),
}


# torch refuses to run nn.CELU(0), so it cannot be traced
REFUSED_CASES = [(name, how) for name in REFUSED_MODULES for how in ("from_torch", "whole", "script", "trace")]
REFUSED_CASES.remove(("CELU(0)", "trace"))


@pytest.mark.parametrize("name, how", REFUSED_CASES)
def test_options_lstmrt_cannot_compute_are_refused(name, how, tmp_path):
    factory, words = REFUSED_MODULES[name]
    net = nn.Sequential(nn.Linear(3, 4), factory()).eval()
    if how == "from_torch":
        with pytest.raises(ValueError, match=words):
            lstmrt.from_torch(net)
        return
    with pytest.raises(ArchitectureError, match=rf"module '1': {words}"):
        if how == "whole":
            torch.save(net, tmp_path / "m.pt")
            lstmrt.load(tmp_path / "m.pt")
        else:
            load_as(net, how, torch.zeros(2, 5, 3), tmp_path)


def test_softshrink_below_zero_is_refused():
    """torch refuses it when run; a module built with it (or a file holding one) is refused when read."""
    with pytest.raises(ValueError, match=r"nn.Softshrink\(lambd=-1.0\): the parameter of soft_shrink must be finite"):
        lstmrt.from_torch(nn.Sequential(nn.Linear(3, 4), nn.Softshrink(-1.0)))


class SoftplusLowThreshold(_Recurrent):
    """Hardtanh bounds and Softplus' beta other than lstmrt's load (tests/test_torch_arith.py); a threshold below 20
    would differ from softplus(beta x) / beta."""

    def forward(self, x):
        return F.softplus(self.fc(self.lstm(x)[0]), 2.0, 5.0)


class CeluZero(_Recurrent):
    def forward(self, x):
        return F.celu(self.fc(self.lstm(x)[0]), 0.0)


class SlopeGiven(_Recurrent):
    def forward(self, x, slope: float = 0.1):
        return F.leaky_relu(self.fc(self.lstm(x)[0]), slope)


class InPlaceThenAdded(_Recurrent):
    """torch adds the activated tensor to itself: `h` names it after the in-place call."""

    def forward(self, x):
        h = self.fc(self.lstm(x)[0])
        y = F.leaky_relu(h, 0.1, inplace=True)
        return y + h


class InPlaceOnTheInput(_Recurrent):
    def forward(self, x):
        return self.fc(self.lstm(F.leaky_relu(x, 0.1, True))[0])


class InPlaceGiven(_Recurrent):
    def forward(self, x, inplace: bool = False):
        return F.relu(self.fc(self.lstm(x)[0]), inplace)


REFUSED_FUNCTIONAL = {
    SoftplusLowThreshold: (
        ("live", "script", "trace"),
        r"Softplus\(beta=2.0, threshold=5.0\); lstmrt computes softplus\(beta x\) / beta",
    ),
    CeluZero: (("live", "script"), r"celu\(alpha=0.0\): the parameter of celu must be finite and not 0"),
    SlopeGiven: (("script",), r"its negative_slope is not a constant"),  # a trace records the value: it loads
    InPlaceThenAdded: (
        ("live", "script"),  # a trace records the aliasing as it happened
        r"a term of the sum is a tensor that leaky_relu changed in place \(`.*`\), so torch reads the activated "
        r"values there; lstmrt follows an in-place activation when only its result is used afterwards",
    ),
    InPlaceOnTheInput: (
        ("live", "script", "trace"),
        r"leaky_relu \(`.*`\) changes in place the tensor forward\(\) was given, which its caller may still read",
    ),
    InPlaceGiven: (("script",), r"call `.*relu.*`: its inplace flag is not a constant"),
}


@pytest.mark.parametrize(
    "cls, how",
    [(cls, how) for cls, (forms, _) in REFUSED_FUNCTIONAL.items() for how in forms],
    ids=lambda v: getattr(v, "__name__", v),
)
def test_functional_calls_lstmrt_cannot_follow_are_refused(cls, how, tmp_path):
    torch.manual_seed(3)
    words = REFUSED_FUNCTIONAL[cls][1]
    with pytest.raises(ArchitectureError, match=rf"cannot follow {cls.__name__}.forward .*{words}"):
        load_as(cls().eval(), how, torch.zeros(2, 5, 3), tmp_path)


@pytest.mark.parametrize(
    "entry, words",
    [
        ("leaky_relu", r"'leaky_relu' is lstmrt's leaky_relu with Keras's slope 0.2, torch's default slope is 0.01"),
        ("LeakyRelu", r"'LeakyRelu' is lstmrt's leaky_relu with Keras's slope 0.2.*'leaky_relu\(0.01\)'"),
        ("celu(0)", r"layers: 'celu\(0\)': the parameter of celu must be finite and not 0, got 0.0"),
        ("relu(1)", r"layers: 'relu\(1\)': activation 'relu' takes no parameter"),
        ("soft_shrink(x)", r"layers: 'soft_shrink\(x\)': the parameter of 'soft_shrink\(x\)' is not a number"),
    ],
)
def test_layers_entries_refused(entry, words, tmp_path):
    torch.save(Head(nn.Identity(), nn.Identity()).state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ArchitectureError, match=words):
        lstmrt.load(tmp_path / "sd.pt", layers=["lstm", entry, "fc"])


# -- files holding what torch does not write (hand-made or damaged) ------------------------------------------------
def rewrite_code(path, pattern: str, replacement: str) -> None:
    """Replace `pattern` in the archive's code/ files, as a hand-edited TorchScript file would hold."""
    with zipfile.ZipFile(path) as zin:
        members = [(item, zin.read(item.filename)) for item in zin.infolist()]
    replaced = 0
    with zipfile.ZipFile(path, "w") as zout:
        for item, data in members:
            if "/code/" in item.filename and item.filename.endswith(".py"):
                text, n = re.subn(pattern, replacement, data.decode())
                data, replaced = text.encode(), replaced + n
            zout.writestr(item, data)
    assert replaced, f"{pattern!r} is not in the code"


@pytest.mark.parametrize(
    "net, pattern, replacement, words",
    [
        (
            nn.Sequential(nn.Linear(3, 4), nn.LeakyReLU(0.05)),
            r"negative_slope : Final\[float\] = [\d.]+",
            "negative_slope : Final[float] = 'x'",
            r"module '1': nn.LeakyReLU\(negative_slope='x'\): the option is 'x', not a number",
        ),
        (
            nn.Sequential(nn.Linear(3, 4), nn.Hardtanh()),
            r"min_val : Final\[float\] = -1\.",
            "min_val : Final[float] = True",
            r"module '1': nn.Hardtanh\(min_val=True, max_val=1.0\): the option is True, not a number",
        ),
        (
            LeakySlopes(),
            r"0\.050*\d*, False, \)",
            "0.05, False, 7, )",
            r"cannot follow LeakySlopes.forward .*: options other than leaky_relu\(negative_slope, inplace\)",
        ),
        (
            Shrinks(),
            r"torch\.hardshrink\((.*), 0\.29+\)",
            r"torch.hardshrink(\1, lambda_=0.3)",
            r"cannot follow Shrinks.forward .*: options other than hardshrink\(lambd\)",
        ),
    ],
    ids=["option_not_a_number", "bound_is_a_bool", "extra_argument", "unknown_keyword"],
)
def test_hand_edited_torchscript_refused(net, pattern, replacement, words, tmp_path):
    load_as(net.eval(), "script", None, tmp_path)
    rewrite_code(tmp_path / "m.pt", pattern, replacement)
    with pytest.raises(ArchitectureError, match=words):
        lstmrt.load(tmp_path / "m.pt")


def test_option_of_a_live_module_not_a_number():
    act = nn.CELU()
    act.alpha = "0.5"  # what torch would fail on only when run
    with pytest.raises(ValueError, match=r"nn.CELU\(alpha='0.5'\): the option is '0.5', not a number"):
        lstmrt.from_torch(nn.Sequential(nn.Linear(3, 4), act))
