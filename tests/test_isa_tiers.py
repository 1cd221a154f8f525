"""Whole models on every kernel tier this machine has (LSTMRT_ISA=scalar/avx2/avx512, or scalar/neon), against
torch in float64.

The tier is chosen once per process, so each tier runs in its own subprocess: it converts torch modules with
from_torch, runs predict / stream steps / batched streams, and reports the worst errors as JSON. Long sequences
(T=500) check that the SIMD activation approximations (docs/kernels.md: below 2e-7 each) do not accumulate past
the engine's 1e-5 contract. The kernel-level tests (each kernel against the scalar oracle, special values) are
native/tests/test_kernels.c."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from conftest import ATOL, CELL_ATOL

TIER_ORDER = {"x86": ["scalar", "avx2", "avx512"], "arm": ["scalar", "neon"]}

# id -> (kind, input_size, hidden_size, num_layers, proj_size, batch, steps, input scale)
CASES = {
    "lstm-7-33x2-T500": ("lstm", 7, 33, 2, 0, 3, 500, 1.0),
    "gru-5-17-T500": ("gru", 5, 17, 1, 0, 2, 500, 1.0),
    "lstm-16-64-saturating": ("lstm", 16, 64, 1, 0, 2, 200, 8.0),
    "gru-32-128-T100": ("gru", 32, 128, 1, 0, 1, 100, 1.0),
    "lstm-3-130-proj17": ("lstm", 3, 130, 1, 17, 2, 120, 1.0),
    "lstm-64-256": ("lstm", 64, 256, 1, 0, 1, 40, 1.0),
}

WORKER = textwrap.dedent(
    """
    import json, sys
    import numpy as np, torch
    import lstmrt

    torch.set_num_threads(1)
    cases = json.loads(sys.argv[1])
    out = {"tier": lstmrt.kernel_tier(), "features": lstmrt.cpu_features(), "cases": {}}
    for name, (kind, I, H, L, P, B, T, scale) in cases.items():
        torch.manual_seed(len(name) * 7919 + I)
        rng = np.random.default_rng(I * 1000 + H)
        extra = {"proj_size": P} if P else {}
        cls = torch.nn.LSTM if kind == "lstm" else torch.nn.GRU
        module = cls(I, H, num_layers=L, batch_first=True, **extra).eval()
        model = lstmrt.from_torch(module)
        X = (scale * rng.standard_normal((B, T, I))).astype(np.float32)
        with torch.no_grad():
            y64, state64 = module.double()(torch.from_numpy(X).double())
        y64 = y64.numpy()
        res = {}
        res["predict"] = float(np.abs(model.predict(X) - y64).max())
        # one stream per sequence, step by step (the m = 1 GEMV path)
        s = model.stream()
        ys = np.stack([s.step(X[0, t]) for t in range(T)])
        res["step"] = float(np.abs(ys - y64[0]).max())
        # a batched stream (the GEMM path), run in two chunks
        sb = model.stream(batch=B)
        half = T // 2
        yb = np.concatenate([sb.run(X[:, :half]), sb.run(X[:, half:])], axis=1)
        res["batched"] = float(np.abs(yb - y64).max())
        if kind == "lstm":
            c64 = state64[1].numpy()
            res["cell"] = max(float((np.abs(st[1] - c64[l]) / (1 + np.abs(c64[l]))).max())
                              for l, st in enumerate(sb.state))
        out["cases"][name] = res
    print(json.dumps(out))
    """
)


def run_tier(tier):
    env = dict(os.environ, LSTMRT_ISA=tier)
    result = subprocess.run(
        [sys.executable, "-c", WORKER, json.dumps(CASES)], capture_output=True, text=True, env=env, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_tier_name(tier, attr="kernel_tier"):
    """lstmrt.<attr>() in a fresh process with LSTMRT_ISA=tier (unset for None)."""
    env = dict(os.environ)
    env.pop("LSTMRT_ISA", None)
    if tier:
        env["LSTMRT_ISA"] = tier
    code = f"import lstmrt; print(lstmrt.{attr}())"
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    ).stdout.strip()


def machine_tiers():
    best = run_tier_name(None)
    for order in TIER_ORDER.values():
        if best in order:
            return order[: order.index(best) + 1]
    return [best]


TIERS = machine_tiers()


@pytest.fixture(scope="module")
def tier_results():
    cache = {}

    def get(tier):
        if tier not in cache:
            cache[tier] = run_tier(tier)
        return cache[tier]

    return get


@pytest.mark.parametrize("tier", TIERS)
@pytest.mark.parametrize("case", list(CASES))
def test_model_matches_torch_on_tier(tier_results, tier, case):
    res = tier_results(tier)
    assert res["tier"] == tier, f"LSTMRT_ISA={tier} selected {res['tier']}"
    errs = res["cases"][case]
    for what in ("predict", "step", "batched"):
        assert errs[what] <= ATOL, f"[{tier}] {case} {what}: max abs error {errs[what]:.3g} > {ATOL:.0e}"
    if "cell" in errs:
        assert errs["cell"] <= CELL_ATOL, f"[{tier}] {case} c: relative error {errs['cell']:.3g}"


@pytest.mark.parametrize("tier", TIERS)
def test_isa_env_selects_tier(tier):
    assert run_tier_name(tier) == tier


def test_isa_env_never_raises_the_tier():
    best = TIERS[-1]
    lower = TIERS[0]
    assert run_tier_name(lower) == lower
    # an unknown name, or a tier above what the machine has, leaves the best available tier
    assert run_tier_name("no-such-isa") == best
    higher = [t for order in TIER_ORDER.values() if best in order for t in order[order.index(best) + 1 :]]
    for tier in higher:
        assert run_tier_name(tier) == best


def test_cpu_features_listed():
    features = run_tier_name(None, "cpu_features").split()
    if TIERS[-1] in ("avx2", "avx512"):
        assert {"sse2", "avx2", "fma", "os-avx"} <= set(features), features
    if TIERS[-1] == "avx512":
        assert {"avx512f", "avx512bw", "avx512vl", "os-avx512"} <= set(features), features
    if TIERS[-1] == "neon":
        assert "asimd" in features


def _info_with_isa(value):
    env = {k: v for k, v in os.environ.items() if k != "LSTMRT_ISA"}
    env["LSTMRT_ISA"] = value
    return subprocess.run(
        [sys.executable, "-m", "lstmrt", "info"], capture_output=True, text=True, env=env, check=True
    ).stdout


def test_info_says_what_lstmrt_isa_did():
    """The C library ignores a value it cannot use without a word; `lstmrt info` says so (a misspelt AVX2 would
    otherwise look as if it had worked)."""
    assert "LSTMRT_ISA='AVX2' is not a tier name" in _info_with_isa("AVX2")
    out = _info_with_isa(TIERS[0])
    assert f"kernel tier in use: {TIERS[0]}" in out and f"LSTMRT_ISA='{TIERS[0]}': in use" in out
    foreign = "neon" if TIERS[-1] != "neon" else "avx512"
    assert f"LSTMRT_ISA='{foreign}' names no tier this build can lower to" in _info_with_isa(foreign)
