"""ONNX files: a graph of LSTM / GRU / RNN nodes and the ops around them, read with lstmrt's own protobuf decoder
(no onnx package needed) and turned into a Model by the graph reader. Nothing in the file is run."""

from __future__ import annotations

from ..errors import LoadError, UnsupportedModelError
from ..model import Model
from .onnx_graph import GraphReader
from .onnx_proto import read_onnx


def load_onnx(path: str):
    """(Model, facts): facts name the graph's input and layouts and the producer, for lstmrt inspect."""
    onnx_model = read_onnx(path)
    try:
        layers, options, facts = GraphReader(onnx_model, path).read()
        model = Model(layers, **options)
    except LoadError:
        raise
    except ValueError as exc:  # a layer spec or the Model refusing what the graph's constants make of it
        raise UnsupportedModelError(f"{path}: the graph's layers do not fit together: {exc}") from exc
    facts["producer"] = onnx_model.producer
    facts["opset"] = onnx_model.opsets.get("", onnx_model.opsets.get("ai.onnx"))
    return model, facts
