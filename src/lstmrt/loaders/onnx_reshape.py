"""Reshape of a data value with named axes: which input axes each target dimension takes. Exporters reshape to
merge a bidirectional node's two directions into features ((T, B, 2, H) -> (T, B, 2H): concatenation), to drop
unit axes, and with static shapes they write the batch and time sizes of the export as plain numbers. tf2onnx's Dense
on a sequence (Tensordot) merges batch and time into rows, (B, T, F) -> (B*T, F), and splits them again after the
MatMul: the merged axis is tagged "x0*x1" (in its order) and split only back into the same axes in the same order."""

from __future__ import annotations

from dataclasses import replace

from .onnx_values import DIRECTIONS, FEATURES, INPUT_AXES, MERGED, UNIT


def reshape_data(x, target: list, allowzero: int, static: dict):
    """The reshaped Data value, or a string saying why the reshape is not one lstmrt can follow."""
    x = _unmerged(x)
    if not allowzero:
        target = [("copy", x.axes[i]) if t == 0 and i < len(x.axes) else t for i, t in enumerate(target)]
    if sum(t == -1 for t in target) > 1:
        return "more than one -1"

    def size(axis: int):
        s = x.sizes[axis]
        return static.get(x.axes[axis]) if s is None else s

    axes = [i for i in range(len(x.axes)) if not (x.axes[i] in (UNIT, DIRECTIONS) and x.sizes[i] == 1)]
    groups = {}  # target position -> source axes it takes

    def take(entries, pool):
        """Match target entries to the source axes in `pool`, in order; returns the axes left over."""
        pool = list(pool)
        for pos, entry in entries:
            group = []
            if isinstance(entry, tuple) and entry[1] in (UNIT, DIRECTIONS) and entry[1] not in _tags(x, pool):
                groups[pos] = []  # copies a unit axis
                continue
            if isinstance(entry, tuple):  # copy: up to and including that tag (a merged one: its axes, in order)
                parts = entry[1].split(MERGED)
                if parts[-1] not in _tags(x, pool):
                    return None
                while x.axes[pool[0]] != parts[-1]:
                    group.append(pool.pop(0))
                group.append(pool.pop(0))
                if len(parts) > 1 and [x.axes[i] for i in group if x.sizes[i] != 1 or x.axes[i] in INPUT_AXES] != parts:
                    return None
            else:
                product = 1
                while pool and (product < entry or product == entry == 1 and _prefer(x, pool[0], size)):
                    if size(pool[0]) is None:
                        return None
                    product *= size(pool[0])
                    group.append(pool.pop(0))
                if product != entry:
                    return None
            groups[pos] = group
        return pool

    indexed = list(enumerate(target))
    if -1 in target:
        cut = target.index(-1)
        rest = take(indexed[:cut], axes)
        rest = None if rest is None else take(indexed[cut + 1 :][::-1], rest[::-1])
        if rest is None:
            return f"sizes that do not match {tuple(size(i) for i in range(len(x.axes)))}"
        groups[cut] = rest[::-1]
        for pos in range(cut + 1, len(target)):
            groups[pos] = groups[pos][::-1]
    else:
        rest = take(indexed, axes)
        if rest is None or rest:
            return f"sizes that do not match {tuple(size(i) for i in range(len(x.axes)))}"
    new_axes, new_sizes = [], []
    for pos in range(len(target)):
        kept = [i for i in groups[pos] if not (x.axes[i] in (UNIT, DIRECTIONS) and x.sizes[i] == 1)]
        if not kept:
            new_axes.append(UNIT)
            new_sizes.append(1)
        elif len(kept) == 1:
            new_axes.append(x.axes[kept[0]])
            new_sizes.append(x.sizes[kept[0]])
        elif [x.axes[i] for i in kept] == [DIRECTIONS, FEATURES]:
            new_axes.append(FEATURES)  # the directions side by side: concatenation, as Keras' merge_mode="concat"
            new_sizes.append(x.sizes[kept[0]] * x.sizes[kept[1]])
        elif sorted(x.axes[i] for i in kept) == sorted(INPUT_AXES):
            new_axes.append(MERGED.join(x.axes[i] for i in kept))  # rows: batch x time, for a per-step product
            new_sizes.append(None)
        else:
            return "it mixes " + " and ".join(x.axes[i] for i in kept)
    return replace(x, axes=tuple(new_axes), sizes=tuple(new_sizes))


def _unmerged(x):
    """x with a merged rows axis ("x0*x1") written as the two axes it merged, for matching a reshape's target."""
    axes, sizes = [], []
    for tag, size in zip(x.axes, x.sizes):
        parts = tag.split(MERGED)
        axes += parts
        sizes += [size] if len(parts) == 1 else [None] * len(parts)
    return replace(x, axes=tuple(axes), sizes=tuple(sizes))


def _tags(x, pool) -> list:
    return [x.axes[i] for i in pool]


def _prefer(x, axis: int, size) -> bool:
    """A target 1 takes an input axis whose export size was 1 (batch or time), rather than adding a unit axis."""
    return x.axes[axis] in INPUT_AXES and size(axis) == 1
