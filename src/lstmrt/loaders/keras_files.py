"""Reading Keras files and live Keras models: the model config, the Keras major version that wrote it, and each
layer's weights in `layer.get_weights()` order. h5py is the only dependency; Keras itself is never imported.

Containers:
- `.keras` (Keras 3, and tf_keras >= 2.13): zip of config.json, metadata.json, model.weights.h5.
- legacy HDF5 full model (`.h5`, Keras 2 / tf.keras / tf_keras / Keras 3): attrs model_config, keras_version;
  group model_weights/<layer name> with attr weight_names (the get_weights() order).
- weights only: Keras 2 `save_weights(".h5")` (root = a model_weights group) or Keras 3 `.weights.h5`
  (groups layers/<class-based name>/vars/<i>); the architecture comes from `layers=`.

HDF5 files are parsed by libhdf5 in a helper process (lstmrt.loaders.hdf5), which first checks them (check_hdf5):
no link may lead to another file (HDF5 would open it), no dataset may be virtual (its data lives in other files)
or stored externally, compressed with a filter outside HDF5's built-in set, or declare much more data than it
stores. Each weight's shape is then compared with what the layer's config needs, and its dtype must be
floating point (as for torch files).
"""

from __future__ import annotations

import json
import math
import os
import sys
import zipfile

import numpy as np

from ..errors import CorruptFileError, UnsafeFileError, UnsupportedModelError
from . import hdf5, keras_graph, keras_layers
from .safety import MAX_RATIO, MAX_TEXT_BYTES, SMALL_MEMBER, Budget, max_load_bytes, open_zip, read_member

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5's built-in filters (deflate, shuffle, fletcher32, szip, nbit, scaleoffset) and LZF (h5py's own). Any other
# filter id makes libhdf5 search HDF5_PLUGIN_PATH for a shared library to load.
_BUILTIN_FILTERS = {1, 2, 3, 4, 5, 6, 32000}
_MAX_GROUP_DEPTH = 8  # a layer's nested weight groups (cell, forward_layer, layer, ...): Keras writes 2 or 3


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
    for layer in cfg if isinstance(cfg, list) else cfg.get("layers", []):
        c = layer.get("config") or {}
        if "batch_shape" in c or isinstance(c.get("dtype"), dict):
            return 3
        if "batch_input_shape" in c or isinstance(c.get("dtype"), str):
            return 2
    return 3


class Source:
    """What the converter needs: config, Keras major version, weights(entry, features) -> list of arrays.
    `origin`: the file (None for a live model), whose datasets are checked before they are read."""

    def __init__(self, config: dict, major: int, weights, origin=None):
        self.config, self.major, self._weights, self.origin = config, major, weights, origin
        self.budget = Budget(origin) if origin is not None else None

    def weights(self, entry, features=None) -> list:
        found = self._weights(entry)
        if self.origin is None:
            return [np.asarray(w) for w in found]
        where = f"{self.origin}: Keras layer {entry.name!r} ({entry.class_name})"
        for i, d in enumerate(found):
            if not isinstance(d, hdf5.Dataset):
                raise CorruptFileError(f"{where}: weight {i} is a {type(d).__name__}, not a dataset")
            if d.dtype.kind not in "fiu" or d.shape is None:
                raise CorruptFileError(f"{where}: weight {i} holds {d.dtype} {d.shape}, not numbers")
            if d.dtype.kind != "f" and i not in keras_layers.INTEGER_WEIGHTS.get(entry.class_name, ()):
                # as for torch files; in a Keras file an integer weight is a quantized layer's (or damage)
                raise UnsupportedModelError(
                    f"{where}: weight {i} (HDF5 dataset {d.name!r}) has dtype {d.dtype}; "
                    "supported: floating point (float16, float32, float64), not integer "
                    "(quantized) weights"
                )
        expected = keras_layers.weight_shapes(entry.class_name, entry.config, features, where)
        if expected is not None and len(expected) == len(found):
            for i, (d, want) in enumerate(zip(found, expected)):
                if len(d.shape) != len(want) or any(w is not None and g != w for g, w in zip(d.shape, want)):
                    want_text = "(" + ", ".join("?" if w is None else str(w) for w in want) + ")"
                    raise CorruptFileError(
                        f"{where}: weight {i} has shape {d.shape} in the file; the layer's config needs {want_text}"
                    )
        arrays = []
        for i, d in enumerate(found):
            self.budget.take(math.prod(d.shape), d.dtype.itemsize, f"{where}: weight {i} of shape {d.shape}")
            arrays.append(np.asarray(d[()]))
        return arrays


def _superblock_lengths(raw) -> int:
    """Bytes of a "length" field in this file (superblock 'size of lengths'; 8 in every file h5py writes)."""
    offset = 0
    while offset + 16 <= len(raw):
        if raw[offset : offset + 8] == HDF5_SIGNATURE:
            version = raw[offset + 8]
            size = raw[offset + 14] if version in (0, 1) else raw[offset + 10]
            return size if size in (2, 4, 8) else 8
        offset = 512 if offset == 0 else offset * 2
    return 8


def check_global_heaps(raw, source) -> None:
    """Walk every global heap collection (GCOL: where variable-length strings such as model_config live) as
    libhdf5 will, refusing one whose object sizes leave the collection. libhdf5 1.14 walks such a collection
    with unchecked pointer arithmetic: a damaged size makes it loop forever (or read wild memory) on the first
    string attribute read. Collections are found as libhdf5 checks them: signature and version 1; the reserved
    bytes after the version are not looked at (a collection with damaged reserved bytes was skipped here and
    then hung libhdf5: found by the fuzzer)."""
    lengths = _superblock_lengths(raw)
    header = 8 + lengths  # signature, version, 3 reserved bytes, collection size
    at = raw.find(b"GCOL")
    while at >= 0:
        if raw[at + 4] == 1 and at + header <= len(raw):
            size = int.from_bytes(raw[at + 8 : at + 8 + lengths], "little")
            end = at + min(size, len(raw) - at)
            p = at + header
            while size >= header and p < end:
                if p + 8 + lengths > end:
                    break  # a tail too small for an object header: free space
                index = int.from_bytes(raw[p : p + 2], "little")
                object_size = int.from_bytes(raw[p + 8 : p + 8 + lengths], "little")
                need = 8 + lengths + (object_size + 7) // 8 * 8 if index else object_size
                if need <= 0 or p + need > at + size:
                    raise CorruptFileError(
                        f"{source}: HDF5 global heap at byte {at} is damaged (object {index} "
                        f"claims {object_size:,} bytes)"
                    )
                p += need
        at = raw.find(b"GCOL", at + 4)


def check_hdf5(f, source, raw=None) -> None:
    """Refuse what would make libhdf5 read outside the file or allocate what the file merely declares: external
    (and user-defined) links, virtual datasets, external raw storage, filters outside the built-in set, and
    datasets declaring more than MAX_RATIO times the bytes they store; and damaged global heaps (`raw`: the
    file's bytes). Reads metadata only."""
    h5py = h5py_module()
    if raw is not None:
        check_global_heaps(raw, source)

    # The visitors return the first problem found (a value stops the visit) instead of raising inside it: an
    # exception raised in an h5py visitor callback surfaces as a SystemError.
    def on_link(name, info):
        if info.type not in (h5py.h5l.TYPE_HARD, h5py.h5l.TYPE_SOFT):
            what = "another file" if info.type == h5py.h5l.TYPE_EXTERNAL else "a user-defined target"
            return UnsafeFileError(
                f"{source}: HDF5 link {_text(name)!r} points to {what}: lstmrt reads only the file it was given"
            )
        return None

    def on_object(name, obj):
        if not isinstance(obj, h5py.Dataset):
            return None
        if obj.is_virtual:
            return UnsafeFileError(f"{source}: HDF5 dataset {name!r} is virtual (its data lives in other files)")
        if obj.external:
            return UnsafeFileError(
                f"{source}: HDF5 dataset {name!r} stores its data in external file(s) "
                f"{[e[0] for e in obj.external][:3]}"
            )
        plist = obj.id.get_create_plist()
        for i in range(plist.get_nfilters()):
            code = plist.get_filter(i)[0]
            if code not in _BUILTIN_FILTERS:
                return UnsupportedModelError(
                    f"{source}: HDF5 dataset {name!r} uses filter {code}, not a built-in "
                    "one (libhdf5 would look for a plugin library to load)"
                )
        declared = math.prod(obj.shape) * obj.dtype.itemsize if obj.shape is not None else 0
        stored = obj.id.get_storage_size()
        if declared > SMALL_MEMBER and declared > MAX_RATIO * stored:
            if stored == 0:
                return CorruptFileError(
                    f"{source}: HDF5 dataset {name!r} declares shape {obj.shape} "
                    f"({declared:,} bytes) but stores no data"
                )
            return UnsafeFileError(
                f"{source}: HDF5 dataset {name!r} would expand {stored:,} stored bytes to "
                f"{declared:,} (over {MAX_RATIO}x): a decompression bomb"
            )
        return None

    problem = f.id.links.visit(on_link, info=True)  # H5Lvisit: every link, not following external or soft ones
    if problem is None:
        problem = f.visititems(on_object)  # H5Ovisit: objects reachable by hard links, each once
    if problem is not None:
        raise problem


class _LegacyWeights:
    """model_weights/<layer name>, datasets listed in attr weight_names (Keras 2 names end in ':0'). Weighted layers
    are paired in order, as Keras's load_weights (by_name=False, both Keras versions) and load_model pair them:
    an architecture whose same-shaped layers are named as the file's other layers (lstm_1 where the file's lstm_1
    is the second LSTM) loads what Keras loads. Only when the counts differ, which Keras refuses, does lstmrt match
    the layers by name, if the file has them all."""

    def __init__(self, group, entries):
        self.group = group
        stored = [
            _text(n) for n in _names(group.attrs.get("layer_names", []), "layer_names") if _has_weights(group, _text(n))
        ]
        cands = [e for e in entries if _weighted(e)]
        self.by_order = {e.name: n for e, n in zip(cands, stored)} if len(stored) == len(cands) else {}
        missing = [e for e in cands if e.name not in group]
        if missing and not self.by_order:
            raise CorruptFileError(
                f"the weights file has no weights for Keras layer {missing[0].name!r} "
                f"({missing[0].class_name}), and its {len(stored)} weighted layers cannot be "
                f"matched in order to the architecture's {len(cands)}"
            )

    def __call__(self, entry):
        name = self.by_order.get(entry.name, entry.name)
        if name not in self.group:
            return []
        g = self.group[name]
        if not isinstance(g, hdf5.Group):
            raise CorruptFileError(f"the weights of Keras layer {name!r} are not an HDF5 group")
        names = [_text(n) for n in _names(g.attrs.get("weight_names", []), "weight_names")]
        missing = [n for n in names if n not in g]
        if missing:
            raise CorruptFileError(f"Keras layer {name!r}: weight {missing[0]!r} listed in weight_names is missing")
        return [g[n] for n in names]


_WEIGHTLESS = (
    *keras_layers.NO_OPS,
    *keras_layers.ACTIVATION_LAYERS,
    "Masking",
    "Activation",
    "Add",
    *keras_graph.MASK_OPS,
)


def _weighted(entry) -> bool:
    """A layer lstmrt reads that may have weights. Other classes are refused by name later, weights or not (Keras 3
    leaves its ops nodes, such as GetItem for `x[:, -1]`, out of an .h5's layer list)."""
    return entry.class_name in keras_layers.CLASSES and entry.class_name not in _WEIGHTLESS


def _names(value, what: str) -> list:
    """An HDF5 attribute holding a list of names (layer_names, weight_names), as Keras writes it."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise CorruptFileError(f"attribute {what} is not a list of names")
    names = list(value)
    if not all(isinstance(n, (str, bytes, np.bytes_, np.str_)) for n in names):
        raise CorruptFileError(f"attribute {what} is not a list of names")
    return names


def _has_weights(group, name) -> bool:
    return name in group and len(_names(group[name].attrs.get("weight_names", []), "weight_names")) > 0


class _V3Weights:
    """layers/<path>/vars/<i>, with sub-objects cell (RNN), forward_layer/backward_layer (Bidirectional), layer
    (TimeDistributed) and activation (a layer object as activation=, e.g. PReLU's alpha) collected in that order:
    the get_weights() order."""

    _CHILDREN = ("cell", "forward_layer", "backward_layer", "layer", "activation")

    def __init__(self, root, entries):
        self.root, self.paths = root, keras_graph.weights_paths(entries)

    def __call__(self, entry):
        path = "layers/" + self.paths[entry.name]
        if path not in self.root:
            return []
        cells = _stacked_cells(entry)
        if cells is None:
            return self._collect(self.root[path], 0)
        # RNN(StackedRNNCells): cell/cells/<name>, which HDF5 lists by name: taken in the cells' order
        cell = self.root[path]["cell"] if "cell" in self.root[path] else {}
        stacked = cell["cells"] if "cells" in cell else {}
        return [w for name in cells if name in stacked for w in self._collect(stacked[name], 2)]

    def _collect(self, g, depth: int) -> list:
        if not isinstance(g, hdf5.Group) or depth > _MAX_GROUP_DEPTH:
            raise CorruptFileError(f"Keras weights group {g.name!r} is not a group, or nests too deep")
        out = []
        if "vars" in g:
            v = g["vars"]
            if not isinstance(v, hdf5.Group) or not all(k.isdigit() for k in v.keys()):
                raise CorruptFileError(f"Keras weights group {v.name!r} is not numbered 0, 1, ...")
            out += [v[k] for k in sorted(v.keys(), key=int)]
        for child in self._CHILDREN:
            if child in g:
                out += self._collect(g[child], depth + 1)
        return out


def _stacked_cells(entry):
    """The groups under cell/cells of keras.layers.RNN over several cells, in the cells' order (Keras 3 names them
    as the layers under layers/: class names made unique in order); None for any other layer."""
    if entry.class_name != "RNN":
        return None
    cell = entry.config.get("cell")
    cells = cell if isinstance(cell, list) else ((cell or {}).get("config") or {}).get("cells")
    if not isinstance(cells, list):
        return None
    return keras_graph.unique_names([str(c.get("class_name") if isinstance(c, dict) else "") for c in cells])


def architecture(layers) -> dict:
    """layers=: a model.to_json() string, its parsed dict (or a get_config() dict), or a path to a .json file."""
    if isinstance(layers, dict):
        return layers
    if isinstance(layers, (str, os.PathLike)):
        text = str(layers) if isinstance(layers, str) and layers.lstrip().startswith("{") else None
        if text is None:
            with open(layers, encoding="utf-8") as f:
                text = f.read()
        value = json.loads(text)
        if not isinstance(value, dict):
            raise ValueError("layers= must hold a JSON object (model.to_json())")
        return value
    raise TypeError(
        "layers= must be the model architecture: a model.to_json() string, its dict, or a path to a "
        f".json file; got {type(layers).__name__}"
    )


def _json(text, what: str) -> dict:
    """A config held in the file: JSON text of an object, else CorruptFileError."""
    try:
        value = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise CorruptFileError(f"{what} is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise CorruptFileError(f"{what} is not a JSON object")
    return value


def _from_h5(f, layers, origin=None) -> Source:
    if "model_config" in f.attrs:
        if layers is not None:
            raise ValueError("this Keras file holds a full model (architecture included): do not pass layers=")
        config = _json(_text(f.attrs["model_config"]), "the model_config attribute")
        if "model_weights" not in f or not isinstance(f["model_weights"], hdf5.Group):
            raise CorruptFileError("this Keras file holds a model config but no model_weights group")
        weights_group = f["model_weights"]
        major = _major(_text(f.attrs.get("keras_version", weights_group.attrs.get("keras_version", ""))))
        entries = keras_graph.parse(config)[0]
        return Source(config, major or guess_major(config), _LegacyWeights(weights_group, entries), origin)
    legacy = "layer_names" in f.attrs
    if not legacy and "layers" not in f and "vars" not in f:
        raise UnsupportedModelError("this HDF5 file is neither a Keras model nor a Keras weights file")
    if layers is None:
        raise ValueError(
            "this Keras file holds weights only: pass the architecture as layers= (a model.to_json() "
            "string, its dict, or a path to a .json file)"
        )
    config = architecture(layers)
    major = _major(config.get("keras_version", "")) or _major(_text(f.attrs.get("keras_version", "")))
    entries = keras_graph.parse(config)[0]
    weights = _LegacyWeights(f, entries) if legacy else _V3Weights(f, entries)
    return Source(config, major or guess_major(config), weights, origin)


def _from_zip(z, layers, origin):
    names = set(z.namelist())
    if "config.json" not in names or "model.weights.h5" not in names:
        raise UnsupportedModelError(
            "this zip is not a .keras archive with config.json and model.weights.h5 (sharded weights are not supported)"
        )
    if layers is not None:
        raise ValueError("a .keras archive holds the architecture: do not pass layers=")
    config = _json(read_member(z, "config.json", MAX_TEXT_BYTES, origin), "config.json")
    meta = (
        _json(read_member(z, "metadata.json", MAX_TEXT_BYTES, origin), "metadata.json")
        if "metadata.json" in names
        else {}
    )
    module = str(config.get("module", ""))
    major = _major(meta.get("keras_version", "")) or (2 if module.startswith("tf_keras") else guess_major(config))
    h5py_module()  # the helper reads the file with h5py: say what to install here
    weights = read_member(z, "model.weights.h5", max_load_bytes(), origin)
    f = hdf5.read(weights, f"{origin} (model.weights.h5)", limit=max_load_bytes())
    return Source(config, major, _V3Weights(f, keras_graph.parse(config)[0]), origin)


def _from_live(model) -> Source:
    """A live Keras model: its own get_config() and get_weights(); the version from the package it came from."""
    try:
        config = model.get_config()
    except NotImplementedError:
        config = None  # a subclassed model: refused below, as the same model's file is
    cls = type(model).__name__
    if cls not in ("Sequential", "Functional", "Model") or not isinstance(config, dict) or "layers" not in config:
        raise UnsupportedModelError(
            f"Keras model class {cls} is not supported: only Sequential and Functional models (subclassed "
            "models have no config to read; rebuild them as Sequential or Functional)"
        )
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
    origin = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the Keras file"
    if zipfile.is_zipfile(source):
        with open_zip(source) as z:
            return _from_zip(z, layers, origin), None
    h5py_module()  # the helper reads the file with h5py: say what to install here
    if hasattr(source, "read"):
        source.seek(0)
        source = source.read()
    f = hdf5.read(source, origin, limit=max_load_bytes())
    return _from_h5(f, layers, origin), None
