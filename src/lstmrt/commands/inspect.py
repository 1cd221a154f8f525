"""lstmrt inspect FILE: what lstmrt reads from a checkpoint: format, layers, sizes, parameter count."""

from ..layers import Embedding
from ._checkpoint_args import add_load_arguments, load_from_args


def add_arguments(parser):
    add_load_arguments(parser)


def run(args) -> int:
    model, info = load_from_args(args)
    where = [info.get("content", "")]
    if info.get("key"):
        where.append(f"under key {info['key']!r}")
    if info.get("prefix"):
        where.append(f"prefix {info['prefix']!r}")
    print(f"{args.file}: {info['format']}, {' '.join(w for w in where if w)}")
    print(repr(model))
    if info.get("order"):
        print(f"layer order: {info['order']}")
    if info.get("onnx"):
        print(_onnx_summary(info["onnx"]))
    if isinstance(model.layers[0], Embedding):
        print(f"input: token ids (T,) or (B, T), below {model.layers[0].num_embeddings}")
    else:
        print(f"input: (T, {model.input_size}) or (B, T, {model.input_size}) float features")
    print(
        "streaming: "
        + (
            "no (bidirectional: whole sequences only, via predict)"
            if model.bidirectional
            else "yes (model.stream(), one step at a time)"
        )
    )
    return 0


def _onnx_summary(facts: dict) -> str:
    """How the ONNX graph's inputs map to lstmrt's: the layout predict takes, and the inputs it does not take."""
    lines = [f"ONNX input {facts['input']!r}"]
    if not facts.get("tokens"):
        lines[0] += f" is {facts['input_layout']}; predict takes (B, T, F) whatever the graph's layout"
    if facts.get("state_inputs"):
        names = ", ".join(repr(n) for n in facts["state_inputs"])
        lines.append(f"state inputs {names}: a stream carries its state itself (stream.state to set it)")
    if facts.get("lengths_inputs"):
        lines.append(f"sequence_lens input {facts['lengths_inputs'][0]!r}: predict(X, lengths=...)")
    return "\n".join(lines)
