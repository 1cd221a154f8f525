"""lstmrt demo: the shipped LSTM filter denoises a sensor signal one sample at a time (logic: lstmrt/demo.py)."""

from __future__ import annotations

import os

import numpy as np

from ._errors import CommandError


def add_arguments(parser):
    parser.add_argument("--samples", type=int, default=10_000, help="signal length in samples (default 10000)")
    parser.add_argument("--seed", type=int, default=0, help="which demo signal to generate (default 0)")
    parser.add_argument("--plot", metavar="PNG", help="save raw, filtered and clean signal (needs matplotlib)")


def run(args) -> int:
    import lstmrt
    from lstmrt import demo

    _check_options(args)
    result = demo.run(args.samples, args.seed)
    us = result.step_ns / 1000.0
    seconds = len(result.clean) / result.sample_rate_hz
    print(
        f"lstmrt {lstmrt.__version__} demo: LSTM filter (1 -> {result.hidden_size} -> 1), "
        f"kernel tier {lstmrt.kernel_tier()}"
    )
    print(
        f"signal: {len(result.clean)} samples at {result.sample_rate_hz:g} Hz ({seconds:g} s), seed {args.seed}, "
        "streamed one sample per step"
    )
    print(f"error before filtering (RMSE noisy vs clean):    {result.rmse_before:.4f}")
    print(
        f"error after filtering  (RMSE filtered vs clean): {result.rmse_after:.4f}  "
        f"({result.rmse_before / result.rmse_after:.1f}x lower)"
    )
    print(f"latency per step: median {np.median(us):.2f} us, p99 {np.percentile(us, 99):.2f} us, max {us.max():.1f} us")
    print(f"real-time factor: {result.real_time_factor:,.0f}x (seconds of signal filtered per second of compute)")
    if args.plot:
        try:
            demo.plot(result, args.plot)
        except (OSError, ValueError) as exc:  # e.g. an image format matplotlib does not write
            raise CommandError(f"--plot {args.plot}: {exc}") from None
        print(f"plot saved to {args.plot}")
    return 0


def _check_options(args) -> None:
    """Everything that can be refused is refused before the run, not after it."""
    if args.samples < 1:
        raise CommandError("--samples must be >= 1")
    if args.seed < 0:
        raise CommandError(f"--seed must be >= 0 (NumPy seeds are non-negative), got {args.seed}")
    if not args.plot:
        return
    folder = os.path.dirname(os.path.abspath(args.plot))
    if not os.path.isdir(folder):
        raise CommandError(f"--plot {args.plot}: the directory {folder} does not exist")
    try:
        from matplotlib.backend_bases import FigureCanvasBase
    except ImportError:
        raise CommandError("--plot needs matplotlib (pip install 'lstmrt[plot]')") from None
    ext = os.path.splitext(args.plot)[1][1:].lower()  # none: matplotlib writes its default, PNG
    formats = FigureCanvasBase.get_supported_filetypes()
    if ext and ext not in formats:
        raise CommandError(
            f"--plot {args.plot}: matplotlib does not write .{ext} files; use one of {', '.join(sorted(formats))}"
        )
