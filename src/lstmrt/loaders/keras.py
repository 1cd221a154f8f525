"""Keras models to lstmrt: `.keras` archives, legacy HDF5 full models, weights-only files (+ architecture), and
live Keras models. Needs h5py only (Keras itself is never imported). See docs/loading.md, section Keras."""

from __future__ import annotations

import os
import zipfile

from ..errors import CorruptFileError, LoadError, ModelTooLargeError, UnsupportedModelError
from . import hdf5, keras_files, keras_graph, keras_ops
from .keras_layers import (
    MASK_DROPPERS,
    POOLING,
    RECURRENT,
    Context,
    Point,
    bidirectional,
    fail,
    global_pooling,
    per_step,
    recurrent,
    refuse_quantized,
    rnn_layers,
    skip_add,
)
from .keras_model import KerasModel
from .safety import file_errors


def _recurrent_parts(e, cfg: dict, weights: list) -> list:
    """[(entry, config, weights)] of a recurrent layer: itself, or the layer of each cell of keras.layers.RNN
    (rnn_layers), each with its share of the weights (the cells' in order)."""
    if e.class_name != "RNN":
        return [(e, cfg, weights)]
    parts = []
    for name, sub_cfg in rnn_layers(e, cfg):
        sub = type(e)(name, sub_cfg, f"{e.name}/{sub_cfg.get('name', '')}")
        n = 3 if sub_cfg.get("use_bias", True) else 2
        parts.append((sub, sub_cfg, weights[:n]))
        weights = weights[n:]
    if weights:
        raise fail(e, f"holds {len(weights)} weights more than its cells take")
    return parts


def load_keras(source, *, layers=None) -> KerasModel:
    """An lstmrt Model computing what the Keras model computes in inference.

    source: a path (or binary file object) to a `.keras`, `.h5`/`.hdf5` or `.weights.h5` file, or a live Keras
    model. layers: the architecture for a weights-only file — `model.to_json()`, its parsed dict, or the path
    of a .json file holding it. The result is a KerasModel (a Model) whose predict() applies the model's Keras
    masking; see its docstring. What is wrong with a file raises a lstmrt.LoadError (docs/loading.md, Errors)."""
    if keras_files.is_live_model(source):
        src, _ = keras_files.open_source(source, layers)
        return _convert(src)
    origin = os.fspath(source) if isinstance(source, (str, os.PathLike)) else "the Keras file"
    if layers is not None:  # the caller's architecture: its errors are the caller's (TypeError, OSError, ValueError)
        layers = keras_files.architecture(layers)
    with file_errors(origin):
        src, _ = keras_files.open_source(source, layers)
        return _convert(src)


def is_keras_file(path) -> bool:
    """True for a `.keras` archive or an HDF5 file written by Keras (full model or weights). Without h5py any
    HDF5 file counts, so that loading it explains what to install."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                return {"config.json", "model.weights.h5"} <= set(z.namelist())
        if not _has_hdf5_signature(path):
            return False
        try:
            keras_files.h5py_module()
        except ImportError:
            return True
        f = hdf5.read(path, path, names_only=True)  # root names only, read in lstmrt's HDF5 helper process
        return bool({"model_config", "layer_names"} & set(f.attrs)) or ("layers" in f and "vars" in f)
    except (OSError, ValueError, TypeError, NotImplementedError):  # LoadError is a ValueError too
        return False


def keras_file_kind(path) -> str | None:
    """ "model" for a file that holds the architecture (a .keras archive, a full .h5 model), "weights" for a
    weights-only file (load_keras needs layers=), None for a file that is neither. Needs h5py for HDF5 files."""
    if zipfile.is_zipfile(path):
        return "model" if is_keras_file(path) else None
    if not _has_hdf5_signature(path):
        return None
    keras_files.h5py_module()  # raises ImportError saying what to install
    f = hdf5.read(path, path, names_only=True)
    if "model_config" in f.attrs:
        return "model"
    return "weights" if "layer_names" in f.attrs or ("layers" in f and "vars" in f) else None


def _has_hdf5_signature(path) -> bool:
    """The HDF5 superblock sits at offset 0, 512, 1024, 2048, ... (after an optional user block)."""
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        offset = 0
        while offset + 8 <= size:
            fh.seek(offset)
            if fh.read(8) == keras_files.HDF5_SIGNATURE:
                return True
            offset = 512 if offset == 0 else offset * 2
    return False


def _convert(src) -> KerasModel:
    _, chain, shape = keras_graph.parse(src.config)
    ctx = Context(src.major)
    tokens = any(e.class_name == "Embedding" for e in chain)
    rank = len(shape) if shape else None
    if rank is not None and rank != (2 if tokens else 3):
        want = "(batch, time) token ids" if tokens else "(batch, time, features)"
        raise UnsupportedModelError(
            f"the Keras model's input has shape {tuple(shape)}: lstmrt runs sequence models, {want}"
        )
    features = None if tokens or not shape else shape[-1]
    specs, mask_value, mask_zero = [], None, False
    reversed_seq = final = False  # sequence currently in reversed time order / a layer returned its last step
    mask_dropped_by = None  # the layer after which Keras's mask is gone (its later layers see every step)
    points, before = {}, None  # the data after each layer (Point), for the Add layers reading it; the layer before
    unmasked = set()  # the points before the layer that makes Keras's mask (Masking, Embedding(mask_zero=True))
    for e in chain:
        cls, cfg = e.class_name, e.config
        if before is not None:
            points[before.name] = Point(len(specs), features, final, reversed_seq, before.class_name)
            if mask_value is None and not mask_zero:
                unmasked.add(before.name)
        before = e
        try:
            refuse_quantized(e, cfg)
            if cls == "Masking":
                if specs or mask_value is not None:
                    raise fail(
                        e,
                        "must come before every other layer (only the input and no-op layers may "
                        "precede it): the mask is derived from the model input",
                    )
                mask_value = float(cfg.get("mask_value", 0.0))
                continue
            if mask_dropped_by and (cls in RECURRENT or cls == "Bidirectional" or POOLING.get(cls) == "average"):
                raise fail(
                    e,
                    f"follows {mask_dropped_by}, which drops Keras's mask: Keras runs this layer on every step, "
                    "while lstmrt applies the model's mask to each of its recurrent and average-pooling layers",
                )
            if cls in RECURRENT or cls in ("RNN", "Bidirectional"):
                weights = src.weights(e, features)
                if e.final_state:  # its return_state h: the final output, held through masked steps as Keras's state
                    cfg = dict(cfg, return_sequences=False, zero_output_for_mask=False)
                for sub, sub_cfg, sub_weights in _recurrent_parts(e, cfg, weights):
                    if reversed_seq and (mask_value is not None or mask_zero):
                        raise fail(
                            sub,
                            "follows a go_backwards layer in a masked model: Keras passes it a reversed "
                            "sequence with the mask in forward order, which lstmrt cannot express",
                        )
                    if sub.class_name == "Bidirectional":
                        spec = bidirectional(sub, sub_cfg, sub_weights, ctx, swap=reversed_seq)
                        seq = spec.forward.return_sequences
                    else:
                        gb = bool(sub_cfg.get("go_backwards", False))
                        hold = not sub_cfg.get("zero_output_for_mask", False)
                        # a forward layer on a reversed sequence is a backward layer on the original one
                        spec = recurrent(sub, sub_cfg, sub_weights, ctx, hold=hold, go_backwards=gb != reversed_seq)
                        seq = spec.return_sequences
                        reversed_seq ^= gb and seq
                    if not seq:
                        final, reversed_seq = True, False  # one vector repeated over time: order no longer matters
                    specs.append(spec)
            elif e.skip_from is not None:
                here = Point(len(specs), features, final, reversed_seq, cls)
                specs.append(skip_add(e, points[e.skip_from], here, mask_value))
                if ctx.major >= 3 and (mask_value is not None or mask_zero) and e.skip_from in unmasked:
                    # Keras 3's merge layers pass no mask on when one of their inputs has none (tf_keras's do)
                    mask_dropped_by = mask_dropped_by or (
                        f"Keras layer {e.name!r} ({cls}: its input from {e.skip_from!r} has no mask, and Keras 3 "
                        "then passes none on)"
                    )
            elif e.op is not None:  # `h[:, -1]`, or a mean / max over time (Keras 3 ops, tf_keras TensorFlow ops)
                masked, token_ids = mask_value is not None or mask_zero, tokens and not specs  # Embedding to come
                pool = keras_ops.over_time(
                    e, features, final=final, reversed_seq=reversed_seq, masked=masked, token_ids=token_ids
                )
                specs += [pool] if pool is not None else []  # None: the last step, which the model returns
                final, reversed_seq = True, False
            elif cls in POOLING:
                if reversed_seq and POOLING[cls] == "average" and (mask_value is not None or mask_zero):
                    raise fail(
                        e,
                        "follows a go_backwards layer in a masked model: Keras averages a reversed sequence "
                        "with the mask in forward order, which lstmrt cannot express",
                    )
                specs.append(global_pooling(e, cfg, features, after_last_step=final))
                final, reversed_seq = True, False  # the pool of the whole sequence does not depend on its order
            else:
                if cls == "Embedding":
                    if specs:
                        raise fail(e, "must be the first layer")
                    mask_zero = bool(cfg.get("mask_zero", False))
                data_rank = None if rank is None else (2 if final else 3)  # (batch, features) once time is gone
                specs += per_step(e, cfg, src.weights(e, features), ctx, data_rank, features)
                if (mask_value is not None or mask_zero) and cls in MASK_DROPPERS[3 if ctx.major >= 3 else 2]:
                    mask_dropped_by = mask_dropped_by or f"Keras layer {e.name!r} ({cls})"
        except LoadError:
            raise
        except (TypeError, ValueError) as exc:
            raise fail(e, str(exc)) from None
        except (KeyError, IndexError, AttributeError) as exc:  # a config without the entries Keras writes
            raise CorruptFileError(
                f"Keras layer {e.name!r} ({cls}): malformed config ({type(exc).__name__}: {exc})"
            ) from None
        if specs and specs[-1].output_size is not None:
            features = specs[-1].output_size
    if not specs:
        raise UnsupportedModelError("the Keras model contains no layer lstmrt can run")
    first_size = None if specs[0].input_size is not None else (shape[-1] if shape else None)
    try:
        return KerasModel(
            specs,
            input_size=first_size,
            return_sequences=not final,
            mask_value=mask_value,
            mask_zero=mask_zero,
            reverse_output=reversed_seq,
        )
    except MemoryError:
        raise ModelTooLargeError("the Keras model's weights do not fit in memory") from None
    except (TypeError, ValueError) as exc:
        raise UnsupportedModelError(f"the Keras layers do not form a model lstmrt runs: {exc}") from None
