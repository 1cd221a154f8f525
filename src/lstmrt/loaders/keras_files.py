"""Reading Keras files and live Keras models: the model config, the Keras major version that wrote it, and each
layer's weights in `layer.get_weights()` order. h5py is the only dependency; Keras itself is never imported.

Containers:
- `.keras` (Keras 3, and tf_keras >= 2.13): zip of config.json, metadata.json, model.weights.h5.
- legacy HDF5 full model (`.h5`, Keras 2 / tf.keras / tf_keras / Keras 3): attrs model_config, keras_version;
  group model_weights/<layer name> with attr weight_names (the get_weights() order).
- weights only: Keras 2 `save_weights(".h5")` (root = a model_weights group) or Keras 3 `.weights.h5`
  (groups layers/<class-based name>/vars/<i>); the architecture comes from `layers=`.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile

import numpy as np

from . import keras_graph, keras_layers

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def h5py_module():
    try:
        import h5py
    except ImportError:  # pragma: no cover - h5py ships with the keras extra
        raise ImportError("loading Keras files needs h5py: pip install 'lstmrt[keras]' (or pip install h5py)") from None
    return h5py


def _major(version) -> int | None:
    try:
        return int(str(version).split(".")[0])
    except ValueError:
        return None


def _text(value) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def guess_major(model_cfg: dict) -> int:
    """Keras major version from the config style when no file says it: Keras 3 writes InputLayer batch_shape and
    dtype policies as dicts; Keras 2 writes batch_input_shape and dtype names."""
    _, cfg = keras_graph._unwrap(model_cfg)
    for layer in (cfg if isinstance(cfg, list) else cfg.get("layers", [])):
        c = layer.get("config") or {}
        if "batch_shape" in c or isinstance(c.get("dtype"), dict):
            return 3
        if "batch_input_shape" in c or isinstance(c.get("dtype"), str):
            return 2
    return 3


class Source:
    """What the converter needs: config, Keras major version, weights(entry) -> list of arrays."""

    def __init__(self, config: dict, major: int, weights):
        self.config, self.major, self._weights = config, major, weights

    def weights(self, entry) -> list:
        return [np.asarray(w) for w in self._weights(entry)]


class _LegacyWeights:
    """model_weights/<layer name>, datasets listed in attr weight_names (Keras 2 names end in ':0')."""

    def __init__(self, group, entries):
        self.group = group
        names = set(group.keys())
        missing = [e for e in entries if e.name not in names and e.class_name not in _WEIGHTLESS]
        self.by_order = {}
        if missing:  # weights of another instance of the architecture: Keras 2 matches weighted layers in order
            stored = [_text(n) for n in group.attrs.get("layer_names", []) if _has_weights(group, _text(n))]
            cands = [e for e in entries if e.class_name not in _WEIGHTLESS]
            if len(stored) != len(cands):
                raise ValueError(f"the weights file has no weights for Keras layer {missing[0].name!r} "
                                 f"({missing[0].class_name}), and its {len(stored)} weighted layers cannot be "
                                 f"matched in order to the architecture's {len(cands)}")
            self.by_order = {e.name: n for e, n in zip(cands, stored)}

    def __call__(self, entry):
        name = self.by_order.get(entry.name, entry.name)
        if name not in self.group:
            return []
        g = self.group[name]
        return [g[_text(n)][()] for n in g.attrs.get("weight_names", [])]


_WEIGHTLESS = (*keras_layers.NO_OPS, "Masking", "Activation", *keras_graph.MASK_OPS)


def _has_weights(group, name) -> bool:
    return name in group and len(group[name].attrs.get("weight_names", [])) > 0


class _V3Weights:
    """layers/<path>/vars/<i>, with sub-objects cell (RNN), forward_layer/backward_layer (Bidirectional) and
    layer (TimeDistributed) collected in that order: the get_weights() order."""

    _CHILDREN = ("cell", "forward_layer", "backward_layer", "layer")

    def __init__(self, root, entries):
        self.root, self.paths = root, keras_graph.weights_paths(entries)

    def __call__(self, entry):
        path = "layers/" + self.paths[entry.name]
        return self._collect(self.root[path]) if path in self.root else []

    def _collect(self, g) -> list:
        out = []
        if "vars" in g:
            v = g["vars"]
            out += [v[k][()] for k in sorted(v.keys(), key=int)]
        for child in self._CHILDREN:
            if child in g:
                out += self._collect(g[child])
        return out


def _architecture(layers) -> dict:
    """layers=: a model.to_json() string, its parsed dict (or a get_config() dict), or a path to a .json file."""
    if isinstance(layers, dict):
        return layers
    if isinstance(layers, (str, os.PathLike)):
        text = str(layers) if isinstance(layers, str) and layers.lstrip().startswith("{") else None
        if text is None:
            with open(layers, encoding="utf-8") as f:
                text = f.read()
        return json.loads(text)
    raise TypeError("layers= must be the model architecture: a model.to_json() string, its dict, or a path to a "
                    f".json file; got {type(layers).__name__}")


def _from_h5(f, layers) -> Source:
    if "model_config" in f.attrs:
        if layers is not None:
            raise ValueError("this Keras file holds a full model (architecture included): do not pass layers=")
        config = json.loads(_text(f.attrs["model_config"]))
        weights_group = f["model_weights"]
        major = _major(_text(f.attrs.get("keras_version", weights_group.attrs.get("keras_version", ""))))
        entries = keras_graph.parse(config)[0]
        return Source(config, major or guess_major(config), _LegacyWeights(weights_group, entries))
    legacy = "layer_names" in f.attrs
    if not legacy and "layers" not in f and "vars" not in f:
        raise ValueError("this HDF5 file is neither a Keras model nor a Keras weights file")
    if layers is None:
        raise ValueError("this Keras file holds weights only: pass the architecture as layers= (a model.to_json() "
                         "string, its dict, or a path to a .json file)")
    config = _architecture(layers)
    major = _major(config.get("keras_version", "")) or _major(_text(f.attrs.get("keras_version", "")))
    entries = keras_graph.parse(config)[0]
    weights = _LegacyWeights(f, entries) if legacy else _V3Weights(f, entries)
    return Source(config, major or guess_major(config), weights)


def _from_zip(z, layers):
    names = set(z.namelist())
    if "config.json" not in names or "model.weights.h5" not in names:
        raise ValueError("this zip is not a .keras archive with config.json and model.weights.h5 (sharded weights "
                         "are not supported)")
    if layers is not None:
        raise ValueError("a .keras archive holds the architecture: do not pass layers=")
    config = json.loads(z.read("config.json"))
    meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
    module = str(config.get("module", ""))
    major = _major(meta.get("keras_version", "")) or (2 if module.startswith("tf_keras") else guess_major(config))
    f = h5py_module().File(io.BytesIO(z.read("model.weights.h5")), "r")
    return Source(config, major, _V3Weights(f, keras_graph.parse(config)[0])), f


def _from_live(model) -> Source:
    """A live Keras model: its own get_config() and get_weights(); the version from the package it came from."""
    try:
        config = model.get_config()
    except NotImplementedError:
        raise ValueError(f"Keras model {type(model).__name__} has no config (a subclassed model): rebuild it as a "
                         "Sequential or Functional model") from None
    cls = type(model).__name__
    if cls not in ("Sequential", "Functional", "Model") or not isinstance(config, dict) or "layers" not in config:
        raise ValueError(f"Keras model class {cls} is not supported: only Sequential and Functional models")
    config = {"class_name": "Sequential" if cls == "Sequential" else "Functional", "config": config}
    root = type(model).__module__.split(".")[0]
    version = getattr(sys.modules.get(root), "__version__", "")
    major = 2 if root in ("tf_keras", "tensorflow") else (_major(version) or guess_major(config))
    by_name = {layer.name: layer for layer in model.layers}
    return Source(config, major, lambda entry: by_name[entry.name].get_weights() if entry.name in by_name else [])


def is_live_model(obj) -> bool:
    return not isinstance(obj, (str, bytes, os.PathLike)) and hasattr(obj, "get_config") and hasattr(obj, "layers")


def open_source(source, layers=None):
    """(Source, file to close or None) for a path, a binary file object or a live Keras model."""
    if is_live_model(source):
        if layers is not None:
            raise ValueError("a live Keras model carries its architecture: do not pass layers=")
        return _from_live(source), None
    if isinstance(source, (str, os.PathLike)) and not os.path.exists(source):
        raise FileNotFoundError(f"no such Keras file: {os.fspath(source)!r}")
    if zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as z:
            return _from_zip(z, layers)
    h5py = h5py_module()
    if hasattr(source, "seek"):
        source.seek(0)
    f = h5py.File(source, "r")
    try:
        return _from_h5(f, layers), f
    except BaseException:
        f.close()
        raise
