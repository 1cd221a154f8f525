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
