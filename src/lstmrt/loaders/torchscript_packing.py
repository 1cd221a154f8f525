"""Packed sequences in a forward(), as the TorchScript walker sees them: `pack_padded_sequence(x, lengths,
batch_first=..., enforce_sorted=...)` before the recurrent modules, `pad_packed_sequence(out, batch_first=...)`
after them, `lengths` an input of forward(). torch then runs each sequence over its own steps, which is what
lstmrt's `predict(X, lengths=...)` computes: the chain of layers is the same, and the lengths are predict's argument
(without them every sequence is whole, as torch with every length the padded one).

Items this module adds: PACKED after the data a PackedSequence holds (packed data, or a recurrent module's output
from it), PADDED (("padded", batch_first)) where pad_packed_sequence made it a padded tensor again: its layout,
and a mark that the steps past each length are zeros in torch. Reading the last step, pooling or attention over
such a tensor would take those zeros in torch (out[:, -1] is zeros for a shorter sequence, a mean divides by the
padded length), where lstmrt takes each sequence's own steps: refused (the final state h_n[-1] is what lstmrt
computes). Both are skipped by torch_tree, as they compute nothing."""

from __future__ import annotations

from .torch_tree import PACKED_ENTRY, PADDED_ENTRY
from .torchscript_steps import Unfollowable, is_packed

PACKED = (PACKED_ENTRY, None)
_SIGNATURES = {
    "pack_padded_sequence": (("input", None), ("lengths", None), ("batch_first", False), ("enforce_sorted", True)),
    "pad_packed_sequence": (("sequence", None), ("batch_first", False), ("padding_value", 0.0), ("total_length", None)),
}
# what code does to the lengths before packing: lengths.cpu(), lengths.to("cpu"), .long(), ... (the same lengths)
LENGTHS_KEEPING = ("cpu", "to", "long", "int", "int64", "detach", "contiguous", "clone", "tolist")


def call(op: str, node, walker, code: str):
    """The value of torch.nn.utils.rnn.<op>(...)."""
    if op not in _SIGNATURES:
        raise Unfollowable(f"`{code}`: lstmrt follows pack_padded_sequence and pad_packed_sequence")
    names = [name for name, _ in _SIGNATURES[op]]
    if len(node.args) > len(names) or any(k.arg not in names for k in node.keywords):
        raise Unfollowable(f"`{code}`: options other than {op}({', '.join(names)})")
    given = dict(zip(names, node.args)) | {k.arg: k.value for k in node.keywords}
    data = walker.eval(given[names[0]])
    options = {name: walker.number(given[name]) if name in given else default for name, default in _SIGNATURES[op][1:]}
    if op == "pack_padded_sequence":
        return _pack(data, walker.eval(given["lengths"]) if "lengths" in given else None, options, walker, code)
    return _pad(data, options, code)


def _pack(data, lengths, options, walker, code):
    if data[0] not in ("seq", "pair", "rnn") or is_packed(walker.seq(data, "the data packed")[1]):
        raise Unfollowable(f"`{code}` packs what is not the network's data (or is packed already)")
    items = data[1]
    if lengths is None or lengths[0] != "input":
        raise Unfollowable(f"`{code}` packs with lengths that are not an input of forward()")
    if walker.lengths not in (None, lengths[1]):
        raise Unfollowable(f"`{code}` packs with {lengths[1]!r}, after packing with {walker.lengths!r}")
    if not isinstance(options["batch_first"], bool):
        raise Unfollowable(f"`{code}`: its batch_first is not a constant")
    walker.lengths = lengths[1]
    return ("seq", items + (PACKED,))


def _pad(data, options, code):
    if data[0] != "seq" or not is_packed(data[1]):
        raise Unfollowable(f"`{code}` pads what is not a recurrent module's packed output")
    if options["padding_value"] not in (0, 0.0) or not isinstance(options["batch_first"], bool):
        raise Unfollowable(
            f"`{code}` pads with {options['padding_value']!r}: lstmrt's outputs past a sequence's length are 0"
        )
    padded = ("seq", data[1][:-1] + ((PADDED_ENTRY, options["batch_first"]),))
    return ("tuple", (padded, ("aux",)))  # (padded tensor, lengths)
