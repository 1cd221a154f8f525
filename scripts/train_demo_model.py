"""Train the LSTM filter that `lstmrt demo` ships (src/lstmrt/data/demo_filter.npz).

    python scripts/train_demo_model.py            # ~1-2 minutes on 2 cores; needs torch

The task: from a noisy sensor stream (Gaussian noise + spikes) estimate the clean value at time t from samples
up to t only. A one-layer unidirectional LSTM is causal by construction, so the model streams one sample in,
one estimate out. Signals come from lstmrt.demo.make_signal ("train" split here, "val" for the report, "demo"
for the demo), so training and demo can never overlap.

The npz holds plain float32 arrays in lstmrt's canonical layout (PyTorch's: gates i, f, g, o) plus scalar
metadata; it is read with allow_pickle=False. Everything is seeded and single-threaded: a rerun with the same
torch version gives the same weights.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from lstmrt.demo import FORMAT_VERSION, SAMPLE_RATE_HZ, SIGNAL_VERSION, make_signal, rmse

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "lstmrt" / "data" / "demo_filter.npz"

HIDDEN_SIZE = 32
TRAIN_SEED = 20240601
POOL_SIGNALS, POOL_SAMPLES = 128, 8192  # 1M training samples, generated once
WINDOW, BATCH = 256, 64  # BPTT windows cropped anywhere, each from the zero state
WARMUP = 32  # first outputs of a window have no history: not in the loss
STEPS, LR = 5000, 1e-2  # one-cycle schedule; fewer steps or a lower rate stay at EMA level
# Validated on long signals (60 s), longer than any window: the filter must stay right however long it runs.
VAL_SIGNALS, VAL_SAMPLES = 4, 60_000


class DemoFilter(nn.Module):
    """Raw sensor units in and out: normalise -> LSTM -> Linear -> denormalise. lstmrt.demo.build_model mirrors
    this with Affine -> LSTM -> Dense -> Affine."""

    def __init__(self, hidden_size: int = HIDDEN_SIZE, input_mean: float = 0.0, input_std: float = 1.0):
        super().__init__()
        self.lstm = nn.LSTM(1, hidden_size, batch_first=True)
        self.head = nn.Linear(hidden_size, 1)
        self.register_buffer("input_mean", torch.tensor(float(input_mean)))
        self.register_buffer("input_std", torch.tensor(float(input_std)))

    def forward(self, x):
        """x (B, T, 1) raw -> (B, T, 1) raw."""
        return self.normalised_output(x) * self.input_std + self.input_mean

    def normalised_output(self, x):
        """x (B, T, 1) raw -> the estimate in normalised units (what the loss compares)."""
        h, _ = self.lstm((x - self.input_mean) / self.input_std)
        return self.head(h)

    @classmethod
    def from_npz(cls, path) -> "DemoFilter":
        with np.load(path, allow_pickle=False) as z:
            model = cls(int(z["hidden_size"]), float(z["input_mean"]), float(z["input_std"]))
            with torch.no_grad():
                for name, p in model.named_parameters():
                    p.copy_(torch.from_numpy(z[_NPZ_NAMES[name]]))
        return model.eval()


# torch parameter name -> npz key (the keys lstmrt.demo.load_weights expects)
_NPZ_NAMES = {
    "lstm.weight_ih_l0": "lstm.weight_ih",
    "lstm.weight_hh_l0": "lstm.weight_hh",
    "lstm.bias_ih_l0": "lstm.bias_ih",
    "lstm.bias_hh_l0": "lstm.bias_hh",
    "head.weight": "head.weight",
    "head.bias": "head.bias",
}


def save_npz(model: DemoFilter, path: Path, **extra_meta) -> None:
    arrays = {_NPZ_NAMES[n]: p.detach().numpy().astype(np.float32) for n, p in model.named_parameters()}
    meta = {
        "format_version": np.int32(FORMAT_VERSION),
        "hidden_size": np.int32(model.lstm.hidden_size),
        "input_mean": np.float32(model.input_mean),
        "input_std": np.float32(model.input_std),
        "sample_rate_hz": np.float32(SAMPLE_RATE_HZ),
        "signal_version": np.int32(SIGNAL_VERSION),
        "train_seed": np.int64(TRAIN_SEED),
    }
    meta.update({k: np.asarray(v) for k, v in extra_meta.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays, **meta)


def best_ema_rmse(noisy: np.ndarray, clean: np.ndarray) -> tuple:
    """The best exponential moving average (the usual one-line causal smoother) on these signals, for scale."""
    best = (math.inf, None)
    for alpha in (0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99):
        y = np.empty_like(noisy)
        acc = noisy[:, 0].copy()
        for t in range(noisy.shape[1]):
            acc = alpha * acc + (1 - alpha) * noisy[:, t]
            y[:, t] = acc
        best = min(best, (rmse(y, clean), alpha))
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=STEPS, help=f"optimizer steps (default {STEPS})")
    parser.add_argument("--out", type=Path, default=OUT, help="where to write the npz")
    args = parser.parse_args(argv)

    torch.manual_seed(TRAIN_SEED)
    torch.set_num_threads(1)  # reproducible bit for bit, and polite on a shared 2-core machine
    rng = np.random.default_rng(TRAIN_SEED)
    start = time.perf_counter()

    pool = [make_signal(POOL_SAMPLES, seed, "train") for seed in range(POOL_SIGNALS)]
    clean = np.stack([c for c, _ in pool])
    noisy = np.stack([n for _, n in pool])
    mean, std = float(noisy.mean()), float(noisy.std())
    model = DemoFilter(HIDDEN_SIZE, mean, std)
    x_all = torch.from_numpy(noisy)  # raw: the model normalises its input itself
    y_all = torch.from_numpy((clean - mean) / std)

    opt = torch.optim.Adam(model.parameters(), lr=LR)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=LR, total_steps=args.steps, pct_start=0.1)
    model.train()
    for step in range(1, args.steps + 1):
        rows = torch.from_numpy(rng.integers(0, POOL_SIGNALS, BATCH))
        starts = torch.from_numpy(rng.integers(0, POOL_SAMPLES - WINDOW + 1, BATCH))
        idx = starts[:, None] + torch.arange(WINDOW)
        xb = x_all[rows[:, None], idx][..., None]
        yb = y_all[rows[:, None], idx][..., None]
        loss = nn.functional.mse_loss(model.normalised_output(xb)[:, WARMUP:], yb[:, WARMUP:])
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 250 == 0 or step == args.steps:
            print(f"step {step:5d}  loss {loss.item():.5f}  ({time.perf_counter() - start:.0f} s)", flush=True)

    model.eval()
    val = [make_signal(VAL_SAMPLES, seed, "val") for seed in range(VAL_SIGNALS)]
    v_clean = np.stack([c for c, _ in val])
    v_noisy = np.stack([n for _, n in val])
    with torch.no_grad():
        v_out = model(torch.from_numpy(v_noisy)[..., None])[..., 0].numpy()
    before, after = rmse(v_noisy, v_clean), rmse(v_out, v_clean)
    ema, alpha = best_ema_rmse(v_noisy, v_clean)
    print(
        f"validation ({VAL_SIGNALS} x {VAL_SAMPLES} samples): RMSE noisy {before:.4f}, LSTM {after:.4f} "
        f"({before / after:.1f}x), best EMA {ema:.4f} (alpha {alpha})"
    )

    save_npz(
        model,
        args.out,
        val_rmse_noisy=np.float32(before),
        val_rmse_filtered=np.float32(after),
        val_rmse_best_ema=np.float32(ema),
        train_steps=np.int32(args.steps),
        torch_version=torch.__version__,
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.1f} KB) in {time.perf_counter() - start:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
