"""Reading a benchmark run against the targets, and writing it out: the ratios and verdicts of one size, the
Markdown report (the issue's table with lstmrt's columns), the PNG plot and the JSON."""

from __future__ import annotations

import json
import os

import numpy as np

from lstmrt.bench_spec import (
    BATCH,
    BATCH_SEQ_LEN,
    BATCHED_TARGET,
    COLUMNS,
    FLOOR_TARGET,
    ON_THE_LINE,
    FRAMEWORK_SEQ_KEYS,
    FRAMEWORK_STEP_KEYS,
    PREDICT_TARGETS,
    SEQ_LEN,
    STEP_TARGETS,
    STREAM_BATCH,
    STREAM_BATCH_TARGET,
    target,
)


def median(results, key):
    r = results.get(key, {})
    return r.get("median_us") if r.get("status") == "ok" else None


def ratios(entry) -> dict:
    """Each ratio: competitor time / lstmrt time, with its target (None: informational) and verdict."""
    res, H = entry["results"], entry["hidden_size"]

    def ratio(name, competitor_key, competitor_us, mine_us, target):
        value = competitor_us / mine_us if competitor_us and mine_us else None
        ok = None if value is None or target is None else value >= target
        return {"name": name, "vs": competitor_key, "value": value, "target": target, "pass": ok}

    def fastest(keys):
        found = [(median(res, k), k) for k in keys if median(res, k)]
        return min(found) if found else (None, None)

    step_us, step_key = fastest(FRAMEWORK_STEP_KEYS)
    seq_us, seq_key = fastest(FRAMEWORK_SEQ_KEYS)
    single, batched = median(res, "lstmrt.step"), median(res, "lstmrt.stream_b64")
    bound = entry.get("floor_here_plus_call_us")
    over_floor = single / bound if single and bound else None
    return {
        "floor": {
            "name": "stream.step / (this machine's floor + call), at most",
            "vs": None,
            "value": over_floor,
            "target": FLOOR_TARGET if over_floor else None,
            "at_most": True,
            "pass": None if over_floor is None else over_floor <= FLOOR_TARGET,
        },
        "step": ratio("stream.step vs fastest framework step", step_key, step_us, single, target(STEP_TARGETS, H)),
        "predict": ratio(
            f"predict T={SEQ_LEN} vs faster of torch/ORT whole sequence",
            seq_key,
            seq_us,
            median(res, "lstmrt.predict"),
            target(PREDICT_TARGETS, H),
        ),
        "batched": ratio(
            f"predict B={BATCH} T={BATCH_SEQ_LEN} vs torch",
            "torch.predict_b64",
            median(res, "torch.predict_b64"),
            median(res, "lstmrt.predict_b64"),
            BATCHED_TARGET.get(H),
        ),
        "stream_batch": ratio(
            f"stream(batch={STREAM_BATCH}) per-stream cost vs single stream step",
            "lstmrt.step",
            single,
            batched / STREAM_BATCH if batched else None,
            STREAM_BATCH_TARGET.get(H),
        ),
    }


# --- reporting --------------------------------------------------------------------------------------------
def _fmt(us):
    """The peers' table style: 615, 47, 9.4, 0.41, 0.040."""
    if us is None:
        return "n/a"
    if us >= 20:
        return f"{us:.0f}"
    if us >= 1:
        return f"{us:.1f}"
    return f"{us:.2f}" if us >= 0.1 else f"{us:.3f}"


def _fmt_ratio(r):
    if r["value"] is None:
        return "n/a"
    text = f"{r['value']:.2f}x"
    if r["target"] is None:
        return text
    if f"{r['value']:.2f}" == f"{r['target']:.2f}":  # 1.197 would print as the target it misses
        text = f"{r['value']:.3f}x"
    sign = "<=" if r.get("at_most") else ">="
    verdict = "PASS" if r["pass"] else "MISS"
    if abs(r["value"] / r["target"] - 1) < ON_THE_LINE:
        verdict += " (on the line)"
    return f"{text} ({sign}{r['target']:g}x) {verdict}"


def threads_text(meta):
    n = meta.get("threads", 1)
    return f"{n} thread{'s' if n > 1 else ''}"


def isolation_text(meta):
    waits = meta.get("settle_ms") or {}
    text = "each framework timed in a worker process of its own"
    if waits:
        text += (
            "; before another worker's batch its threads were left to go idle (median settle wait: "
            + ", ".join(f"{fw} {w['median_ms']:.3g} ms" for fw, w in waits.items())
            + ")"
        )
    return text


def _row(cells):
    return "| " + " | ".join(cells) + " |"


def format_report(report) -> str:
    meta, entries = report["meta"], report["sizes"]
    fw = ", ".join(f"{k} {v}" for k, v in meta["frameworks"].items() if v)
    lines = [
        f"lstmrt {meta['lstmrt']}, kernel tier {meta['kernel_tier']} | {fw or 'no frameworks'} | "
        f"numpy {meta['numpy']} | {meta['cpu'] or meta['machine']}",
        f"{threads_text(meta)} each; median of {meta['rounds']} interleaved rounds "
        f"({'quick' if meta['quick'] else 'full'}); "
        f"load average before/after: {meta['loadavg_before']} / {meta['loadavg_after']}",
    ]
    lines += [isolation_text(meta)] if meta.get("isolation") == "process per framework" else []
    lines += [f"note: {n}" for n in meta["notes"]]
    lines += ["", f"Single LSTM layer, batch 1, state carried: median us per step (whole sequence: T={SEQ_LEN})", ""]
    step_cols = list(FRAMEWORK_STEP_KEYS)
    header = (
        ["I, H"]
        + [COLUMNS[k][1] for k in step_cols]
        + [
            "torch / ORT whole sequence",
            "floor (Zen 5 model)",
            "floor here + call",
            "lstmrt stream.step",
            f"lstmrt predict T={SEQ_LEN}",
        ]
    )
    lines += [_row(header), _row(["---"] * len(header))]
    for e in entries:
        res = e["results"]
        seq = " / ".join(_fmt(median(res, k)) for k in FRAMEWORK_SEQ_KEYS)
        cells = [f"{e['input_size']}, {e['hidden_size']}"] + [_fmt(median(res, k)) for k in step_cols]
        here = e.get("floor_here_us")
        here = f"{_fmt(here)} + {_fmt(e['floor_here_plus_call_us'] - here)}" if here else "n/a"
        cells += [seq, _fmt(e["floor_us"]), here, _fmt(median(res, "lstmrt.step")), _fmt(median(res, "lstmrt.predict"))]
        lines.append(_row(cells))

    lines += [
        "",
        f"Batched: predict B={BATCH} T={BATCH_SEQ_LEN} (ms per call); stream(batch={STREAM_BATCH}).step "
        "(us per stream)",
        "",
    ]
    header = [
        "I, H",
        f"torch B={BATCH} T={BATCH_SEQ_LEN}",
        f"lstmrt B={BATCH} T={BATCH_SEQ_LEN}",
        "lstmrt single stream.step",
        f"lstmrt stream(batch={STREAM_BATCH}) per stream",
    ]
    lines += [_row(header), _row(["---"] * len(header))]
    for e in entries:
        res = e["results"]
        ms = [(median(res, k) or 0) / 1e3 or None for k in ("torch.predict_b64", "lstmrt.predict_b64")]
        per_stream = median(res, "lstmrt.stream_b64")
        lines.append(
            _row(
                [
                    f"{e['input_size']}, {e['hidden_size']}",
                    *(f"{m:.3g}" if m else "n/a" for m in ms),
                    _fmt(median(res, "lstmrt.step")),
                    _fmt(per_stream / STREAM_BATCH if per_stream else None),
                ]
            )
        )

    lines += ["", "Ratios vs targets (competitor time / lstmrt time; the competitor in brackets)", ""]
    names = ("step", "predict", "batched", "stream_batch")  # the targets; "floor" is reported below
    header = [
        "I, H",
        "stream.step vs fastest framework step",
        f"predict T={SEQ_LEN} vs faster whole sequence",
        f"B={BATCH} T={BATCH_SEQ_LEN} vs torch",
        f"stream(batch={STREAM_BATCH}) per stream vs single step",
    ]
    lines += [_row(header), _row(["---"] * len(header))]
    passed = total = 0
    for e in entries:
        cells = [f"{e['input_size']}, {e['hidden_size']}"]
        for name in names:
            r = e["ratios"][name]
            text = _fmt_ratio(r)
            if r["vs"] and name in ("step", "predict") and r["value"] is not None:
                text += f" [{COLUMNS[r['vs']][1]}]"
            cells.append(text)
            if r["pass"] is not None:
                total += 1
                passed += bool(r["pass"])
        lines.append(_row(cells))
    lines += [
        "",
        f"targets met: {passed} of {total} measured"
        + (" (numbers from a busy machine are indicative only)" if _busy(meta) else ""),
    ]
    machine = meta.get("machine_floor")
    if machine:
        floors = [e["ratios"]["floor"] for e in entries if e["ratios"]["floor"]["value"] is not None]
        lines += [
            "",
            f"This machine's floor (bench_floor, {meta['kernel_tier']} probes, best of rounds): FMA peak "
            f"{machine['peak_flops'] / 1e9:.0f} GFLOP/s, step call {machine['call_us']:.2f} us, read "
            "bandwidth at the weights' size "
            + ", ".join(f"{int(b) // 1024} KB {bw / 1e9:.0f} GB/s" for b, bw in machine["bandwidth"].items()),
            'stream.step / (floor here + call), the issue\'s "within 1.2x of the floor plus the call": '
            + ", ".join(f"{e['hidden_size']}: {_fmt_ratio(e['ratios']['floor'])}" for e in entries),
            f"within 1.2x: {sum(bool(r['pass']) for r in floors)} of {len(floors)} sizes",
        ]
    return "\n".join(lines)


def _busy(meta):
    load = meta.get("loadavg_before") or [0]
    return load[0] > 0.5 * (os.cpu_count() or 1)


def plot_report(report, path) -> bool:
    """µs per step against hidden_size, log-log. False when matplotlib is missing."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        return False
    entries = report["sizes"]
    hs = [e["hidden_size"] for e in entries]
    fig = Figure(figsize=(8, 5.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key in FRAMEWORK_STEP_KEYS + FRAMEWORK_SEQ_KEYS + ("lstmrt.step", "lstmrt.predict"):
        ys = [median(e["results"], key) for e in entries]
        if not any(ys):
            continue
        mine = key.startswith("lstmrt")
        ax.plot(
            hs,
            [y if y else float("nan") for y in ys],
            marker="o",
            label=COLUMNS[key][1],
            linestyle="--" if "seq" in key or "predict" in key else "-",
            linewidth=2.5 if mine else 1.2,
            color="black" if key == "lstmrt.step" else None,
        )
    ax.plot(hs, [e["floor_us"] for e in entries], linestyle=":", color="gray", label="floor (Zen 5 model)")
    if all(e.get("floor_here_plus_call_us") for e in entries):
        ax.plot(
            hs,
            [e["floor_here_plus_call_us"] for e in entries],
            linestyle="-.",
            color="gray",
            label="floor here + call (measured)",
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(hs, [str(h) for h in hs])
    ax.set_xlabel("hidden_size (input_size as in the table)")
    ax.set_ylabel("µs per step (median)")
    meta = report["meta"]
    threads = meta.get("threads", 1)
    ax.set_title(
        f"One LSTM layer, batch 1 — lstmrt {meta['lstmrt']} ({meta['kernel_tier']}), "
        f"{threads} thread{'s' if threads > 1 else ''}"
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    return True


def write_outputs(report, text, out_dir) -> dict:
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, "bench.json"), "table": os.path.join(out_dir, "bench.md")}
    with open(paths["json"], "w") as f:
        json.dump(report, f, indent=1, default=_json_default)
    with open(paths["table"], "w") as f:
        f.write(text + "\n")
    png = os.path.join(out_dir, "bench.png")
    if plot_report(report, png):
        paths["png"] = png
    return paths


def _json_default(obj):
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
