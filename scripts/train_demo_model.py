"""Trains the LSTM filter that `lstmrt demo` ships (src/lstmrt/data/demo_filter.npz).

A causal denoiser: from the noisy samples up to t, estimate the clean sensor value at t. The signal generator
is lstmrt.demo.make_signal (train/val splits here; the demo uses its own split). Deterministic: fixed seeds,
one thread. About a minute on 2 cores. Needs torch (a training-time tool, not a runtime dependency).

    python scripts/train_demo_model.py [--out src/lstmrt/data/demo_filter.npz] [--steps 600]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from lstmrt.demo import FORMAT_VERSION, SAMPLE_RATE_HZ, SIGNAL_VERSION, make_signal, rmse

HIDDEN = 32
SEQ_LEN = 1500      # 1.5 s windows: long enough to see several level steps and slow components
BATCH = 32
TRAIN_SEED = 1234


class Filter(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(1, HIDDEN, batch_first=True)
        self.head = torch.nn.Linear(HIDDEN, 1)

    def forward(self, x):
        return self.head(self.lstm(x)[0])


def windows(num: int, split: str, seed0: int):
    clean, noisy = zip(*(make_signal(SEQ_LEN, seed0 + i, split) for i in range(num)))
    return np.stack(noisy)[..., None], np.stack(clean)[..., None]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent.parent
                        / "src/lstmrt/data/demo_filter.npz")
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args(argv)

    torch.manual_seed(TRAIN_SEED)
    torch.set_num_threads(1)
    noisy, clean = windows(BATCH * 16, "train", TRAIN_SEED)
    val_noisy, val_clean = windows(16, "val", TRAIN_SEED)
    mean, std = float(noisy.mean()), float(noisy.std())
    norm = lambda a: torch.from_numpy((a - mean) / std).float()  # noqa: E731
    x, y, vx, vy = norm(noisy), norm(clean), norm(val_noisy), norm(val_clean)

    model = Filter()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, args.steps)
    gen = torch.Generator().manual_seed(TRAIN_SEED)
    warmup = 50  # the first samples of a window have no history: don't train the filter to guess them
    for step in range(args.steps):
        idx = torch.randint(0, len(x), (BATCH,), generator=gen)
        loss = torch.nn.functional.mse_loss(model(x[idx])[:, warmup:], y[idx][:, warmup:])
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % 100 == 0 or step == args.steps - 1:
            with torch.no_grad():
                pred = model(vx).numpy() * std + mean
            print(f"step {step:4d}  train loss {loss.item():.4f}  val RMSE noisy {rmse(val_noisy, val_clean):.3f}"
                  f" -> filtered {rmse(pred, val_clean):.3f}")

    weights = {f"lstm.{k[:-3]}": v for k, v in ((k, p.detach().numpy()) for k, p in model.lstm.named_parameters())}
    weights.update({f"head.{k}": p.detach().numpy() for k, p in model.head.named_parameters()})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, format_version=FORMAT_VERSION, hidden_size=HIDDEN, input_mean=mean, input_std=std,
             sample_rate_hz=SAMPLE_RATE_HZ, signal_version=SIGNAL_VERSION, train_seed=TRAIN_SEED,
             **{k: v.astype(np.float32) for k, v in weights.items()})
    print(f"saved {args.out} ({args.out.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
