"""The `lstmrt demo` logic: a shipped LSTM filter denoising a synthetic sensor signal, one sample at a time.

Everything here needs NumPy and lstmrt only. The signal generator is shared with scripts/train_demo_model.py,
which trained the shipped weights (src/lstmrt/data/demo_filter.npz) on the "train" split; the demo draws from
the "demo" split, so the signal it shows was never seen in training.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import resources

import numpy as np

from .layers import LSTM, Affine, Dense
from .model import Model

SAMPLE_RATE_HZ = 1000.0
# Bump when make_signal changes: the shipped npz records the version it was trained on.
SIGNAL_VERSION = 2
# Distinct entropy prefixes keep the demo's signals disjoint from the training and validation signals.
_SPLITS = {"train": 1, "val": 2, "demo": 3}
FORMAT_VERSION = 1
_WEIGHT_KEYS = ("lstm.weight_ih", "lstm.weight_hh", "lstm.bias_ih", "lstm.bias_hh", "head.weight", "head.bias")
_META_KEYS = (
    "format_version",
    "hidden_size",
    "input_mean",
    "input_std",
    "sample_rate_hz",
    "signal_version",
    "train_seed",
)


def make_signal(num_samples: int, seed: int, split: str = "demo", sample_rate_hz: float = SAMPLE_RATE_HZ):
    """(clean, noisy), float32 arrays of num_samples: a sensor-like signal at sample_rate_hz.

    clean: a few slow sinusoids (0.2-4 Hz) + a smooth random drift (< 0.1 Hz) + level steps (about one every
    3 s), all stationary so any length stays in range;
    noisy: clean + white Gaussian noise (sigma 0.25) + isolated spikes (0.2% of samples, |amplitude| 2-5).
    The same (seed, split) always gives the same signal (NumPy's PCG64 stream)."""
    if split not in _SPLITS:
        raise ValueError(f"split must be one of {', '.join(_SPLITS)}, got {split!r}")
    n = int(num_samples)
    if n < 1:
        raise ValueError(f"num_samples must be >= 1, got {num_samples!r}")
    rng = np.random.default_rng([_SPLITS[split], int(seed)])
    t = np.arange(n) / sample_rate_hz

    k = int(rng.integers(2, 5))
    freqs = np.exp(rng.uniform(np.log(0.2), np.log(4.0), k))
    amps = rng.uniform(0.2, 1.0, k) / np.sqrt(k)
    phases = rng.uniform(0.0, 2 * np.pi, k)
    clean = (amps[:, None] * np.sin(2 * np.pi * freqs[:, None] * t + phases[:, None])).sum(axis=0)

    # drift: white noise low-passed in the frequency domain (Gaussian roll-off, 0.1 Hz): smooth, stationary,
    # bounded however long the signal, unlike a random walk
    freq = np.fft.rfftfreq(n, 1.0 / sample_rate_hz)
    gain = np.exp(-0.5 * (freq / 0.1) ** 2)
    drift = np.fft.irfft(np.fft.rfft(rng.normal(0.0, 1.0, n)) * gain, n)
    # the filter's power gain (Parseval), not the sample std: short signals keep the same statistics
    clean += 0.5 * drift / np.sqrt((2.0 * np.sum(gain**2) - gain[0] ** 2) / n)

    # steps: at Poisson times (about one every 3 s) the offset jumps to a new level drawn around 0; the
    # filter must follow these quickly yet ignore spikes
    at = np.flatnonzero(rng.random(n) < 1.0 / (3.0 * sample_rate_hz))
    levels = np.concatenate([[0.0], rng.normal(0.0, 0.7, len(at))])
    clean += levels[np.searchsorted(at, np.arange(n), side="right")]

    noisy = clean + rng.normal(0.0, 0.25, n)
    spikes = rng.random(n) < 0.002
    noisy[spikes] += rng.choice([-1.0, 1.0], int(spikes.sum())) * rng.uniform(2.0, 5.0, int(spikes.sum()))
    return clean.astype(np.float32), noisy.astype(np.float32)


def default_weights_path():
    """The shipped weights (a Traversable: works for installed packages and zip imports alike)."""
    return resources.files("lstmrt").joinpath("data").joinpath("demo_filter.npz")


def load_weights(path=None) -> dict:
    """The arrays of a demo-filter npz (default: the shipped one), checked for keys and format version."""
    source = default_weights_path() if path is None else path
    opened = open(source, "rb") if isinstance(source, (str, os.PathLike)) else source.open("rb")
    with opened as f, np.load(f, allow_pickle=False) as npz:
        arrays = {key: npz[key] for key in npz.files}
    missing = [k for k in _WEIGHT_KEYS + _META_KEYS if k not in arrays]
    if missing:
        raise ValueError(f"{source}: not a demo filter file, missing {', '.join(missing)}")
    if int(arrays["format_version"]) != FORMAT_VERSION:
        raise ValueError(
            f"{source}: format_version {int(arrays['format_version'])}, this lstmrt reads {FORMAT_VERSION}"
        )
    if int(arrays["signal_version"]) != SIGNAL_VERSION:
        # the filter was trained on another generator: its error figures would mean nothing here
        raise ValueError(
            f"{source}: trained on signal_version {int(arrays['signal_version'])}, make_signal is "
            f"version {SIGNAL_VERSION}; retrain with scripts/train_demo_model.py"
        )
    return arrays


def build_model(weights: dict) -> Model:
    """Raw sensor units in and out: Affine (normalise) -> LSTM -> Dense -> Affine (denormalise), all in C."""
    mean, std = float(weights["input_mean"]), float(weights["input_std"])
    return Model(
        [
            Affine([1.0 / std], [-mean / std]),
            LSTM(
                weights["lstm.weight_ih"], weights["lstm.weight_hh"], weights["lstm.bias_ih"], weights["lstm.bias_hh"]
            ),
            Dense(weights["head.weight"], weights["head.bias"]),
            Affine([std], [mean]),
        ]
    )


def rmse(a, b) -> float:
    return float(np.sqrt(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)))


@dataclass
class DemoResult:
    clean: np.ndarray
    noisy: np.ndarray
    filtered: np.ndarray
    step_ns: np.ndarray  # wall time of each s.step call
    sample_rate_hz: float
    hidden_size: int

    @property
    def rmse_before(self) -> float:
        return rmse(self.noisy, self.clean)

    @property
    def rmse_after(self) -> float:
        return rmse(self.filtered, self.clean)

    @property
    def real_time_factor(self) -> float:
        """Seconds of signal filtered per second of compute (step calls only)."""
        return (len(self.clean) / self.sample_rate_hz) / (self.step_ns.sum() * 1e-9)


def run(num_samples: int = 10_000, seed: int = 0, weights_path=None) -> DemoResult:
    """Stream the demo signal through the filter exactly as a device loop would: one s.step per sample, into a
    preallocated buffer, timing every call."""
    weights = load_weights(weights_path)
    model = build_model(weights)
    rate = float(weights["sample_rate_hz"])
    clean, noisy = make_signal(num_samples, seed, "demo", rate)
    x = np.empty(1, np.float32)
    y = np.empty(1, np.float32)
    filtered = np.empty(len(noisy), np.float32)
    step_ns = np.empty(len(noisy), np.int64)
    s = model.stream()
    step, clock = s.step, time.perf_counter_ns
    for i, sample in enumerate(noisy):
        x[0] = sample
        t0 = clock()
        step(x, y)
        step_ns[i] = clock() - t0
        filtered[i] = y[0]
    return DemoResult(clean, noisy, filtered, step_ns, rate, int(weights["hidden_size"]))


def plot(result: DemoResult, path) -> None:
    """Raw, filtered and clean signal: the whole run, and a 1 s close-up around the largest spike."""
    from matplotlib.figure import Figure

    t = np.arange(len(result.clean)) / result.sample_rate_hz
    fig = Figure(figsize=(11, 6.5), layout="constrained")
    full, zoom = fig.subplots(2, 1)
    centre = int(np.argmax(np.abs(result.noisy - result.clean)))
    half = int(0.5 * result.sample_rate_hz)
    lo, hi = max(0, centre - half), min(len(t), centre + half)
    for ax, sl in ((full, slice(None)), (zoom, slice(lo, hi))):
        ax.plot(t[sl], result.noisy[sl], color="0.75", lw=0.6, label="raw (noisy sensor)")
        ax.plot(t[sl], result.clean[sl], color="tab:green", lw=1.4, label="clean (truth)")
        ax.plot(t[sl], result.filtered[sl], color="tab:blue", lw=1.0, label="lstmrt filtered (causal)")
        ax.set_xlabel("time [s]")
        ax.grid(alpha=0.3)
    if len(t) > 1:
        full.axvspan(t[lo], t[hi - 1], color="tab:orange", alpha=0.12, lw=0)
    full.set_title(
        f"lstmrt demo: RMSE {result.rmse_before:.3f} raw -> {result.rmse_after:.3f} filtered "
        f"({result.rmse_before / result.rmse_after:.1f}x better)"
    )
    zoom.set_title("close-up (shaded above)")
    full.legend(loc="upper right", fontsize=8)
    fig.savefig(path, dpi=110)
