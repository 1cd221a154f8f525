"""PReLU (docs/math.md, section 6): y = x >= 0 ? x : slope * x per feature. The oracle against its formula and torch's
F.prelu at special values; the runtime bit-exact against the formula there; chains of layers against the oracle in
predict (lengths, masks, threads) and streams (single, batched, chunked, shared between threads); a torch model
whose weights are copied in by hand (the loaders come later)."""

import numpy as np
import pytest
import reference as ref
import specs
import torch
from conftest import assert_close

import lstmrt

F = torch.nn.functional

# x at every special value against slopes of each kind: positive, negative, 0 (a relu), 1 (the identity), tiny, huge,
# and the non-finite ones lstmrt accepts as it accepts any weight
XS = np.array(
    [-10.0, -2.5, -1.0, -1e-3, 3e-39, -3e-39, 1e-45, -1e-45, 0.0, -0.0, 0.5, 7.0, 1e30, -1e30, np.inf, -np.inf, np.nan],
    np.float32,
)
SLOPES = np.array([0.25, -0.5, 0.0, -0.0, 1.0, 1e-3, -3.0, 1e20, np.inf, -np.inf, np.nan], np.float32)


def formula(X, slope):
    """The definition, in float32 like the runtime (one rounding of an exact product)."""
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(X >= 0, X, slope * X).astype(np.float32)


def grid():
    """(T, F): row t is XS[t] in every feature, feature f has SLOPES[f]."""
    return np.repeat(XS[:, None], len(SLOPES), axis=1)


def assert_same_bits(got, want):
    """Equal as float32 bit patterns (-0.0 is not 0.0); NaN where NaN (its payload is the hardware's). A float64
    beyond float32's range rounds to inf, as the float32 product does."""
    with np.errstate(over="ignore"):
        got, want = np.asarray(got, np.float32), np.asarray(want, np.float32)
    assert got.shape == want.shape
    nan = np.isnan(want)
    assert np.array_equal(np.isnan(got), nan)
    assert np.array_equal(got[~nan].view(np.uint32), want[~nan].view(np.uint32))


def denormal(X):
    return (X != 0) & (np.abs(X) < np.finfo(np.float32).tiny)


def runtime_want(got, X, slope):
    """The formula's bits, except that a denormal x may come back as it is: the runtime's calls run in flush-to-zero
    mode on x86 and AArch64 (docs/kernels.md), where a denormal compares as ±0."""
    kept = denormal(X) & (got.view(np.uint32) == X.view(np.uint32))
    return np.where(kept, X, formula(X, slope))


def torch_prelu(X, slope):
    """torch's F.prelu over the last axis (its channel axis is 1: X is (N, F))."""
    with torch.no_grad():
        return F.prelu(torch.from_numpy(X), torch.from_numpy(slope)).numpy()


def assert_matches_torch(got, X, slope):
    """Values equal to torch's (NaN where NaN), except where docs/math.md says they differ: at x = ±0 lstmrt returns x
    where torch returns slope * x (a zero of the product's sign, NaN for a non-finite slope)."""
    want = torch_prelu(X, slope)
    zero = X == 0
    np.testing.assert_array_equal(got[~zero], want[~zero])
    assert np.array_equal(np.signbit(got[zero]), np.signbit(X[zero])) and np.all(got[zero] == 0)
    finite = np.broadcast_to(np.isfinite(slope), X.shape)
    np.testing.assert_array_equal(got[zero & finite], want[zero & finite])  # ±0 compare equal


# -- the oracle ------------------------------------------------------------------------------------------------------
def test_reference_is_the_formula():
    X = grid().astype(np.float64)
    got = ref.prelu(X, SLOPES.astype(np.float64))
    assert_same_bits(got, formula(grid(), SLOPES))  # a float32 product is exact in float64
    assert np.array_equal(np.signbit(got[X == 0]), np.signbit(X[X == 0]))  # -0.0 stays -0.0
    assert np.isnan(got[XS == -np.inf][0, SLOPES == 0]).all()  # -inf * 0, as torch


def test_reference_matches_torch():
    X = grid().astype(np.float64)
    slope = SLOPES.astype(np.float64)
    assert_matches_torch(ref.prelu(X, slope), X, slope)


# -- the runtime at special values -----------------------------------------------------------------------------------
def test_special_values_bit_exact():
    """predict, a stream's steps and a batched stream's run: every x against every slope, the formula's bits."""
    model = lstmrt.Model([lstmrt.PReLU(SLOPES)])
    X = grid()
    got = model.predict(X)
    assert_same_bits(got, runtime_want(got, X, SLOPES))
    stream = model.stream()
    assert_same_bits(np.stack([stream.step(x).copy() for x in X]), runtime_want(got, X, SLOPES))
    three = np.stack([X, X[::-1], X])
    got = model.stream(batch=3).run(three)
    assert_same_bits(got, runtime_want(got, three, SLOPES))


def test_special_values_match_torch():
    """Away from denormal x, whose flush-to-zero test_special_values_bit_exact covers."""
    X = grid()[~denormal(XS)]
    assert_matches_torch(lstmrt.Model([lstmrt.PReLU(SLOPES)]).predict(X), X, SLOPES)


@pytest.mark.parametrize("features", [1, 7, 17, 33, 64, 65])
def test_every_feature_has_its_own_slope(rng, features):
    """Awkward widths (a vectorised loop's tail), each feature's slope at its own index."""
    slope = rng.uniform(-2, 2, features).astype(np.float32)
    X = rng.standard_normal((4, 9, features)).astype(np.float32)
    got = lstmrt.Model([lstmrt.PReLU(slope)]).predict(X)
    assert_same_bits(got, runtime_want(got, X, slope))


# -- chains against the oracle ---------------------------------------------------------------------------------------
def chain(rng, name):
    """The chains: after a recurrent layer, between dense layers, on the model input, twice in a row."""
    slope = lambda n: rng.uniform(-1.5, 1.5, n)  # noqa: E731 - both signs
    if name == "lstm-prelu-dense":
        return [specs.lstm(rng, 3, 17), lstmrt.PReLU(slope(17)), specs.dense(rng, 17, 4)]
    if name == "dense-prelu-gru":
        return [specs.dense(rng, 5, 9), lstmrt.PReLU(slope(9)), specs.gru(rng, 9, 6, hold_masked_output=True)]
    if name == "prelu-first-rnn-prelu":
        return [lstmrt.PReLU(slope(7)), specs.rnn(rng, 7, 5), lstmrt.PReLU(np.zeros(5)), lstmrt.PReLU(slope(5))]
    raise ValueError(name)


CHAINS = ["lstm-prelu-dense", "dense-prelu-gru", "prelu-first-rnn-prelu"]


@pytest.mark.parametrize("name", CHAINS)
def test_chain_predict(rng, name):
    layers = chain(rng, name)
    model = lstmrt.Model(layers)
    B, T = 3, 21
    X = rng.standard_normal((B, T, model.input_size)).astype(np.float32) * 2
    mask = rng.random((B, T)) > 0.3
    mask[0, 0] = False
    lengths = np.array([T, 8, 0])
    for kwargs in ({}, {"lengths": lengths}, {"mask": mask}, {"lengths": lengths, "mask": mask}):
        assert_close(model.predict(X, **kwargs), ref.predict(layers, X, **kwargs))


@pytest.mark.parametrize("name", CHAINS)
def test_chain_streams(rng, name):
    """A stream's steps, a batched stream's steps and any chunking of its runs equal one predict."""
    layers = chain(rng, name)
    model = lstmrt.Model(layers)
    X = rng.standard_normal((4, 15, model.input_size)).astype(np.float32) * 2
    want = model.predict(X)
    assert_close(want, ref.predict(layers, X))
    single = model.stream()
    assert_close(np.stack([single.step(x).copy() for x in X[1]]), want[1])
    batched = model.stream(batch=4)
    assert_close(np.stack([batched.step(X[:, t]).copy() for t in range(15)], axis=1), want)
    batched.reset()
    assert_close(np.concatenate([batched.run(X[:, :4]), batched.run(X[:, 4:5]), batched.run(X[:, 5:])], 1), want)


def test_chain_with_threads(rng):
    """Batch rows over threads, and one sequence's LSTM steps shared by a team (H 128: enough weights for it)."""
    layers = [specs.lstm(rng, 16, 128), lstmrt.PReLU(rng.uniform(-1, 1, 128)), specs.dense(rng, 128, 3)]
    model = lstmrt.Model(layers)
    X = rng.standard_normal((32, 6, 16)).astype(np.float32)
    assert_close(model.predict(X, threads=4), ref.predict(layers, X))
    one = rng.standard_normal((1, 80, 16)).astype(np.float32)
    alone = model.predict(one)
    assert np.array_equal(model.predict(one, threads=2), alone)
    shared, single = model.stream(threads=2), model.stream()
    assert np.array_equal(np.stack([shared.step(x).copy() for x in one[0]]), [single.step(x).copy() for x in one[0]])
    assert np.array_equal(shared.run(one[0]), single.run(one[0]))


# -- the real framework ----------------------------------------------------------------------------------------------
class TorchPReLUModel(torch.nn.Module):
    """nn.LSTM -> nn.PReLU(per feature) -> nn.Linear -> nn.PReLU(one shared slope, the default). torch's PReLU takes
    its channels on axis 1, so the per-feature one sees the features there: (B, F, T)."""

    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(3, 17, batch_first=True)
        self.act = torch.nn.PReLU(17)
        self.head = torch.nn.Linear(17, 4)
        self.out = torch.nn.PReLU()

    def forward(self, x):
        return self.out(self.head(self.act(self.lstm(x)[0].transpose(1, 2)).transpose(1, 2)))


def test_torch_model(rng):
    torch.manual_seed(int(rng.integers(2**31)))
    module = TorchPReLUModel().eval()
    with torch.no_grad():  # slopes of both signs, away from torch's initial 0.25
        module.act.weight.uniform_(-1.5, 1.5)
        module.out.weight.fill_(0.4)
    p = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    model = lstmrt.Model(
        [
            lstmrt.LSTM(p["lstm.weight_ih_l0"], p["lstm.weight_hh_l0"], p["lstm.bias_ih_l0"], p["lstm.bias_hh_l0"]),
            lstmrt.PReLU(p["act.weight"]),
            lstmrt.Dense(p["head.weight"], p["head.bias"]),
            lstmrt.PReLU(np.repeat(p["out.weight"], 4)),
        ]
    )
    X = rng.standard_normal((3, 20, 3)).astype(np.float32)
    with torch.no_grad():
        want = module(torch.from_numpy(X)).numpy()
    assert_close(model.predict(X), want)
    assert np.any(want < 0) and np.any(want > 0)  # both branches of the last PReLU
