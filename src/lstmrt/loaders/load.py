"""lstmrt.load: one entry point for checkpoint files and live framework models. The format is detected from the
file's content (the extension is not trusted); framework loaders are imported only when needed, and PyTorch
files are read without torch."""

from __future__ import annotations

import contextlib
import glob
import io
import os
import sys
import warnings
import zipfile

from ..errors import CorruptFileError, LayerOrderWarning, UnsupportedModelError
from ..model import Model
from ..model_file import looks_like_model_file
from .safety import Budget, file_errors, open_zip
from .safetensors import looks_like_safetensors, read_header, read_safetensors
from .torch_build import build_model
from .torch_checkpoint import select_model
from .torch_tree import (
    CELLS,
    RECURRENT,
    LiveRecord,
    class_name,
    is_module,
    select_layers,
    submodule,
    units_from_module,
    units_from_state_dict,
)

_HDF5 = b"\x89HDF\r\n\x1a\n"
FORMATS = {
    "torch-zip": "torch.save file (zip)",
    "torch-legacy": "torch.save file (legacy, pre-1.6)",
    "torchscript": "TorchScript archive",
    "safetensors": "safetensors file",
    "keras": "Keras model file",
    "lstmrt": "lstmrt model file",
    "onnx": "ONNX model",
}


def load(source, *, key=None, prefix=None, layers=None) -> Model:
    """A Model from `source`: a file path (torch.save zip or legacy, TorchScript, safetensors, Keras .h5/.keras,
    ONNX .onnx, lstmrt's own .lstmrt), a binary file object holding a .lstmrt model (as Model.save writes one) or a
    live torch nn.Module / Keras model. key: where a checkpoint dict nests
    the state dict (found alone when there is one obvious candidate). prefix: only the modules under this dotted
    path ("decoder.rnn"). layers: the forward order, as module names of the file and activation names
    (["gru", "head", "relu"]). See docs/loading.md for what each format provides and what is refused. Whatever is
    wrong with the file raises a lstmrt.LoadError (UnsafeFileError, CorruptFileError, UnsupportedModelError;
    section Errors)."""
    return load_with_info(source, key=key, prefix=prefix, layers=layers)[0]


def load_with_info(source, *, key=None, prefix=None, layers=None) -> tuple:
    """(Model, info) where info describes what was read: format, key and what kind of object."""
    if isinstance(source, (bytes, bytearray, memoryview)) and (not isinstance(source, bytes) or b"\0" in source):
        raise TypeError(
            f"cannot load a {type(source).__name__} holding a file's content: lstmrt.load takes a file path (or a "
            "binary file object holding a .lstmrt model, as Model.save writes one)"
        )
    if hasattr(source, "read") and not isinstance(source, (str, bytes, os.PathLike)):
        return _load_file_object(source, key, prefix, layers)
    if not isinstance(source, (str, bytes, os.PathLike)):
        return _load_live(source, key, prefix, layers)
    path = os.fspath(source)
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    with file_errors(path, reading=True):
        fmt = detect_format(path)
    info = {"format": FORMATS[fmt], "path": path, "key": None, "prefix": prefix}
    if fmt == "lstmrt":
        _not_applicable(key=key, prefix=prefix, layers=layers, where="lstmrt model files (they hold one model)")
        from ..model_file import from_bytes

        with file_errors(path, reading=True):
            with open(path, "rb") as f:
                Budget(path).take(os.fstat(f.fileno()).st_size // 4, 4, "the file")  # all of it is weights, nearly
                data = f.read()
            info["content"] = "lstmrt model"
            return from_bytes(data, path), info
    if fmt == "onnx":
        _not_applicable(key=key, prefix=prefix, layers=layers, where="ONNX files (their graph gives the order)")
        from .onnx import load_onnx

        with file_errors(path):
            model, facts = load_onnx(path)
        info.update(
            content=f"exported by {facts['producer'] or 'an unnamed producer'}, opset {facts['opset']}", onnx=facts
        )
        return model, info
    if fmt == "keras":
        _not_applicable(key=key, prefix=prefix, where="Keras files")
        from .keras import load_keras

        info["content"] = "Keras model"
        return load_keras(path, layers=layers), info  # layers= is the architecture here (load_keras checks it)
    _check_layer_names(layers)
    if fmt == "safetensors":
        _not_applicable(key=key, where="safetensors files (they hold one flat set of tensors)")
        with file_errors(path, reading=True):
            names = list(read_header(path)[0])
        wanted = [n for n in names if _under(n, prefix)] if prefix else names
        if not wanted:
            raise ValueError(f"{path}: no tensor under prefix {prefix!r}; modules: {_top_names(names)}")
        with file_errors(path, reading=True):
            state = _strip(read_safetensors(path, set(wanted)), prefix)
        units = units_from_state_dict(state)
        info["content"] = "tensors (state dict)"
        known = all(u.path.split(".")[0].isdigit() for u in units)  # nn.Sequential indices give the order
        if known:
            units.sort(key=lambda u: [int(p) if p.isdigit() else p for p in u.path.split(".")])
        note = "nn.Sequential indices" if known else "the one order whose sizes chain (the file records none)"
        with file_errors(path):
            return _build(units, layers, info, order_known=known, note=note), info
    if fmt == "torchscript":
        _not_applicable(key=key, where="TorchScript archives")
        from .torchscript import read_torchscript

        with file_errors(path, reading=True):
            record, forward_order = read_torchscript(path)
        info["content"] = "TorchScript module"
        with file_errors(path):
            return _from_module(record, prefix, layers, forward_order, info), info
    from .torch_file import read_legacy, read_zip

    with file_errors(path, reading=True):
        obj = read_zip(path) if fmt == "torch-zip" else read_legacy(path)
    with file_errors(path, keep=(KeyError,)):  # KeyError: key= names nothing in the file
        node, info["key"] = select_model(obj, key, path)
    if is_module(node):
        info["content"] = "whole module (torch.save(model))"
        with file_errors(path):
            return _from_module(node, prefix, layers, None, info), info
    info["content"] = "state dict"
    if prefix:
        found = {k: v for k, v in node.items() if _under(k, prefix)}
        if not found:
            raise ValueError(f"{path}: no parameter under prefix {prefix!r}; modules: {_top_names(node)}")
        node = _strip(found, prefix)
    with file_errors(path):
        return _build(units_from_state_dict(node), layers, info, note="state dict order (registration order)"), info


# torch's legacy format opens with its magic number pickled; under protocols 0 and 1 that is a text LONG opcode
LEGACY_MAGIC_PROTOCOL_0_1 = b"L119547037146038801333356L\n"


def detect_format(path: str) -> str:
    if not os.path.isfile(path):  # before open() says only "Is a directory" / "No such file"
        _refuse_tensorflow(path)
    with open(path, "rb") as f:
        head = f.read(512)
        size = os.fstat(f.fileno()).st_size
    if looks_like_model_file(head):  # first: its magic settles it, where zipfile and HDF5 search the whole file
        return "lstmrt"
    if _is_keras(path, head):
        return "keras"
    if zipfile.is_zipfile(path):
        from .torch_file import archive_root

        with open_zip(path) as zf:
            names = zf.namelist()
        root = archive_root(names)
        if root is None:
            raise UnsupportedModelError(
                f"{path}: a zip archive that is neither a torch.save / TorchScript file (no "
                "data.pkl) nor a Keras .keras file (no config.json + model.weights.h5)"
            )
        return "torchscript" if any(n.startswith(root + "code/") for n in names) else "torch-zip"
    if head.startswith(b"PK\x03\x04"):
        raise CorruptFileError(f"{path}: a damaged or truncated zip archive (its central directory is missing)")
    # safetensors before pickles: its first byte is the low byte of the header length, 0x80 for 1 file in 256
    # (the pickle protocol opcode); a pickle cannot pass this test ('{' at byte 8 after a plausible length)
    if looks_like_safetensors(head, size):
        return "safetensors"
    if len(head) >= 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") <= 100 << 20:
        raise CorruptFileError(
            f"{path}: a safetensors header of {int.from_bytes(head[:8], 'little')} bytes in a file of {size}: truncated"
        )
    if head[:1] == b"\x80":
        return "torch-legacy"  # or another pickle, which read_legacy refuses without running it
    if head.startswith(LEGACY_MAGIC_PROTOCOL_0_1):
        raise UnsupportedModelError(
            f"{path}: a legacy (non-zip) torch.save file written with pickle protocol 0 or "
            "1; only protocols 2 and up are read: re-save it with torch.save's defaults"
        )
    if len(head) > 262 and head[257:262] == b"ustar":
        raise UnsupportedModelError(
            f"{path}: a tar archive: the torch.save tar format of PyTorch < 0.4 is not "
            "supported; re-save it with a recent PyTorch"
        )
    _refuse_tensorflow(path)
    if path.lower().endswith(".onnx") or _looks_like_onnx(head):
        return "onnx"
    raise UnsupportedModelError(f"{path}: unrecognized file format; supported: " + ", ".join(FORMATS.values()))


# protobuf keys of onnx.ModelProto fields that follow ir_version (field 1, written first): producer_name,
# producer_version, domain, model_version, doc_string, graph, opset_import
_ONNX_SECOND_KEYS = frozenset(b"\x12\x1a\x22\x28\x32\x3a\x42")


def _looks_like_onnx(head: bytes) -> bool:
    """An ONNX ModelProto as exporters write it: ir_version (a small varint under key 0x08), then another field."""
    return len(head) >= 3 and head[0] == 0x08 and 1 <= head[1] < 0x80 and head[2] in _ONNX_SECOND_KEYS


def _refuse_tensorflow(path: str) -> None:
    """Raise for TensorFlow's own formats, which tf.keras / tf_keras write when the name given to model.save or
    save_weights has no .keras/.h5 extension (their default in TF 2.x): say what they are and how to re-save."""
    what = None
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            what = "a TensorFlow SavedModel directory"
    elif os.path.basename(path) == "saved_model.pb":
        what = "a TensorFlow SavedModel's graph"
    elif not os.path.exists(path) and os.path.isfile(path + ".index"):
        what = f"the prefix of a TensorFlow checkpoint ({os.path.basename(path)}.index, .data-*)"
    elif path.endswith(".index") and glob.glob(glob.escape(path[: -len(".index")]) + ".data-*"):
        what = "a TensorFlow checkpoint's index"
    if what:
        raise UnsupportedModelError(
            f"{path}: {what}; lstmrt reads Keras files, not TensorFlow's: load the model in Keras and save it with "
            "model.save('model.keras') (or 'model.h5'), or its weights with save_weights('model.weights.h5') and "
            "the architecture with model.to_json()"
        )


def _is_keras(path: str, head: bytes) -> bool:
    try:
        from .keras import is_keras_file
    except ModuleNotFoundError as exc:
        if exc.name != __package__ + ".keras":
            raise
        if head.startswith(_HDF5):
            raise UnsupportedModelError(f"{path}: an HDF5 (Keras) file, but this lstmrt has no Keras loader") from None
        return False
    if head.startswith(_HDF5):
        return True  # the Keras loader says what is wrong with an HDF5 file that is not a readable Keras file
    return bool(is_keras_file(path))


def _not_applicable(*, where: str, **options) -> None:
    given = [name for name, value in options.items() if value is not None]
    if given:
        raise ValueError(f"{'/'.join(given)}= does not apply to {where}")


def _under(name: str, prefix: str) -> bool:
    return name.startswith(prefix + ".")


def _strip(state: dict, prefix) -> dict:
    if not prefix:
        return state
    return {k[len(prefix) + 1 :]: v for k, v in state.items()}


def _top_names(names) -> str:
    return ", ".join(dict.fromkeys(repr(n.split(".")[0]) for n in names)) or "(none)"


_NO_ACTIVATIONS = "; no activations: names and shapes do not record them (add them with layers=)"


def _build(units, layers, info, *, order_known: bool = True, note: str):
    if layers is not None:
        info["order"] = "as given by layers="
        return build_model(select_layers(units, layers, records_activations=False))
    info["order"] = note + _NO_ACTIVATIONS
    used = []
    model = build_model(units, order_known=order_known, order_note=note, used=used)
    if any(u.path for u in used):  # a container's parameters: its forward() may apply what they do not record
        _warn_unrecorded_forward(used, note)
    return model


def _from_module(record, prefix, layers, forward_order, info, *, unread_why=None):
    """A Model from a module tree. unread_why: why a user-defined module's forward() could not be read, for the
    LayerOrderWarning given when one was not (default: it is not in the file, or not in its TorchScript code)."""
    record, prefix, layers = _unwrap_saved_wrapper(record, prefix, layers)
    if prefix:
        try:
            record = submodule(record, prefix)
        except KeyError as exc:
            raise ValueError(f"prefix {prefix!r}: {exc.args[0]}") from None
    if layers is not None:
        info["order"] = "as given by layers="
        return build_model(select_layers(units_from_module(record), layers))
    unread = []
    units = units_from_module(record, forward_order=forward_order, unread=unread)
    why = unread_why or ("is not in the file" if forward_order is None else "is not in its TorchScript code")
    note = f"registration order of a user-defined module's children (its forward() {why})"
    name, torch_nn = class_name(record)
    if any(u.guessed_before for u in units[1:]):
        info["order"] = note if unread else "registration order of an nn.ModuleList/ModuleDict"
    elif torch_nn:
        info["order"] = "nn.Sequential order" if name == "Sequential" else "a single module"
    else:
        info["order"] = "forward() code" if forward_order is not None else "a single child module"
    model = build_model(units, order_note=info["order"])  # named by a size mismatch: where the order came from
    if unread:  # after the build: a model that fails to build already says to pass layers=
        _warn_unread_forward(unread, why)
    return model


def _warn_unread_forward(classes: list, why: str) -> None:
    # A functional op in a forward() lstmrt cannot read (F.relu, torch.softmax, slicing) is simply not applied:
    # the model loads and gives wrong numbers. Nothing in the Model shows it, so say it.
    names = ", ".join(dict.fromkeys(classes))
    warnings.warn(
        f"the forward() of {names} {why}: its modules are taken in registration order and functional ops "
        "in forward() (F.relu, torch.tanh, slicing, ...) are not applied. Pass layers=[...] naming the "
        "modules and activations in forward order, or load it as TorchScript (torch.jit.script, or "
        "torch.jit.trace with an example input)",
        LayerOrderWarning,
        stacklevel=_user_stacklevel(),
    )


def _warn_unrecorded_forward(units, note: str) -> None:
    # As for an unread forward(): an nn.Tanh (no parameters) or a torch.tanh in forward() is simply not in the
    # file, and the model would load and give wrong numbers without a word.
    names = [u.path for u in units]
    warnings.warn(
        f"a state dict records parameters, not forward(): {', '.join(names)} are applied in "
        f"{note}, with no activation between or after them (parameter-free modules such as nn.Tanh and "
        "functional ops such as F.relu are not in the file). Pass layers=[...] naming the modules and "
        f"activations in forward order (e.g. layers={names!r}), and 'last_step' where forward() takes "
        "out[:, -1] or h_n[-1] ('mean_over_time' / 'max_over_time' where it pools over time, out.mean(1) / "
        "out.max(1)[0]), to state them",
        LayerOrderWarning,
        stacklevel=_user_stacklevel(),
    )


def _user_stacklevel() -> int:
    """The stacklevel of the caller's first frame outside lstmrt: the warning points at their load() call."""
    level, frame = 2, sys._getframe(2)  # 1 is the function that calls warnings.warn
    while frame is not None and frame.f_globals.get("__name__", "").split(".")[0] == "lstmrt":
        level, frame = level + 1, frame.f_back
    return level


# -- live models -------------------------------------------------------------------------------------------------
def _mro_modules(obj) -> set:
    return {(c.__module__ or "") for c in type(obj).__mro__}


def _is_torch_module(obj) -> bool:
    return any(c.__module__ == "torch.nn.modules.module" and c.__name__ == "Module" for c in type(obj).__mro__)


def _is_keras_model(obj) -> bool:
    return any(
        m.split(".")[0] in ("keras", "tf_keras") or m.startswith("tensorflow.python.keras") for m in _mro_modules(obj)
    )


def _check_layer_names(layers):
    """For PyTorch sources, layers= is the forward order: module and activation names."""
    if layers is not None and (isinstance(layers, str) or not all(isinstance(e, str) for e in layers)):
        raise TypeError("layers must be a list of module names and activation names (strings)")


def _archive(scripted) -> io.BytesIO:
    """The archive torch.jit.save writes for a live TorchScript module, which lstmrt reads like a file."""
    import torch  # already loaded: the caller holds a torch object

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch deprecates jit.save; this archive is internal, read right away
        warnings.filterwarnings("ignore", "`torch.jit", DeprecationWarning)
        torch.jit.save(scripted, buffer)
    return buffer


def _read_scripted(scripted) -> tuple:
    """(root record, ForwardOrder) of a live TorchScript module, through the archive torch.jit.save writes."""
    from .torchscript import read_torchscript

    try:
        buffer = _archive(scripted)
    except Exception as exc:  # noqa: BLE001 - torch's own failure, e.g. a scripted PackedSequence forward
        raise UnsupportedModelError(
            f"torch.jit.save cannot save this TorchScript module ({_first_line(exc)}), and lstmrt reads a "
            "TorchScript module through what it saves: load the nn.Module it was scripted from, with layers=[...] "
            "naming its modules and activations in forward order"
        ) from None
    return read_torchscript(buffer)


def _load_live_forward(module, prefix, info):
    """A live user module read through its own forward(): compiled to TorchScript and read like a TorchScript
    file, whose reader raises an ArchitectureError asking for layers= when the forward is not a plain chain of
    its modules and activations. Only a forward that neither scripts nor traces is read in registration order."""
    from .torchscript import read_torchscript

    archive, why_not = _compile_forward(module)
    if archive is None:
        return _from_module(LiveRecord(module), prefix, None, None, info, unread_why=f"could not be read ({why_not})")
    record, forward_order = read_torchscript(archive)
    return _from_module(record, prefix, None, forward_order, info)


def _compile_forward(module) -> tuple:
    """(TorchScript archive, None), or (None, why not). torch.jit.script reads the forward's source; a forward
    without source (a class made by exec) or with Python that TorchScript lacks is traced instead, and so is one
    that scripts but does not save (torch scripts a pack_padded_sequence forward, then fails to save it)."""
    scripted, script_failure = _script(module)
    if scripted is not None:
        return scripted, None
    traced, trace_failure = _trace(module)
    if traced is not None:
        return traced, None
    return None, f"torch.jit.script: {script_failure}; torch.jit.trace: {trace_failure}"


def _script(module) -> tuple:
    """(archive of torch.jit.script(module), None), or (None, why not)."""
    import torch  # already loaded: the caller holds a torch object

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return _archive(torch.jit.script(module)), None
    except Exception as exc:  # noqa: BLE001 - any scripting failure (no source, unsupported Python) means: trace
        return None, _first_line(exc)


def _trace(module) -> tuple:
    """torch.jit.trace of the module on a small example input. Tracing runs the caller's own live object, as
    their code would (nothing from a file), in eval mode and without gradients. A trace warned to depend on
    tensor values in the user's code (a branch, a .item()) records one path only: it is not used."""
    import torch

    example = _example_input(module)
    if example is None:
        return None, "no nn.LSTM/GRU/RNN, cell, nn.Linear or nn.Embedding gives the input size"
    try:
        with _eval_mode(module), torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            traced = torch.jit.trace(module, example, check_trace=False)
        archive = _archive(traced)
    except Exception as exc:  # noqa: BLE001 - forward() wants other inputs, or fails on this one
        return None, _first_line(exc)
    torch_files = os.path.dirname(torch.__file__) + os.sep  # torch's own modules warn too, harmlessly
    for w in caught:
        if issubclass(w.category, torch.jit.TracerWarning) and not w.filename.startswith(torch_files):
            return None, f"{str(w.message).split('.')[0]} at {w.filename}:{w.lineno}, so the trace may hold one path"
    return archive, None


def _example_input(module):
    """Zeros of shape (2 sequences, 3 steps, input size) in the dtype and device of the first layer in
    registration order, steps first if the first recurrent module is not batch_first; token ids (2, 3) when
    that layer is an nn.Embedding. None without such a layer."""
    import torch

    layers = [m for m in module.modules() if type(m).__module__.startswith("torch.nn.")]
    first = next((m for m in layers if type(m).__name__ in (*RECURRENT, *CELLS, "Linear", "Embedding")), None)
    weight = next(first.parameters(), None) if first is not None else None
    if weight is None:
        return None
    if type(first).__name__ == "Embedding":
        return torch.zeros((2, 3), dtype=torch.long, device=weight.device)
    size = first.in_features if type(first).__name__ == "Linear" else first.input_size
    rnn = next((m for m in layers if type(m).__name__ in RECURRENT), None)
    shape = (3, 2, size) if rnn is not None and not rnn.batch_first else (2, 3, size)
    return torch.zeros(shape, dtype=weight.dtype, device=weight.device)


@contextlib.contextmanager
def _eval_mode(module):
    """The module in eval mode (dropout off, no batch-norm statistics updated), its own modes restored after."""
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training


def _first_line(exc: Exception) -> str:
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"{type(exc).__name__}: {text[:120]}" if text else type(exc).__name__


# Training wrappers that compute what the module they hold computes: (module of the class, class, attribute).
_WRAPPERS = (
    ("torch.nn.parallel.data_parallel", "DataParallel", "module"),
    ("torch.nn.parallel.distributed", "DistributedDataParallel", "module"),
    ("torch._dynamo.eval_frame", "OptimizedModule", "_orig_mod"),  # torch.compile
)


def _unwrap_training_wrappers(obj, prefix, layers):
    """(module, prefix, layers): the model inside nn.DataParallel, DistributedDataParallel or torch.compile's
    wrapper, which is what a user who passes the wrapper means (the wrapper is no layer, and its forward() is not
    one lstmrt can read), and prefix= and layers= with the wrapper's attribute (`module.lstm`) taken off."""
    while True:
        attr = next((a for m, c, a in _WRAPPERS if type(obj).__module__ == m and type(obj).__name__ == c), None)
        if attr is None:
            return obj, prefix, layers
        obj = getattr(obj, attr)
        if prefix is not None:
            prefix = None if prefix == attr else prefix.removeprefix(attr + ".")
        if layers is not None:
            layers = [name.removeprefix(attr + ".") for name in layers]


def _unwrap_saved_wrapper(record, prefix, layers):
    """(record, prefix, layers): the module a torch.save'd nn.DataParallel / DistributedDataParallel holds (its
    `module`), as _unwrap_training_wrappers does for a live one."""
    while class_name(record) in (("DataParallel", True), ("DistributedDataParallel", True)):
        try:
            record = submodule(record, "module")
        except KeyError:
            return record, prefix, layers
        if prefix is not None:
            prefix = None if prefix == "module" else prefix.removeprefix("module.")
        if layers is not None:
            layers = [name.removeprefix("module.") for name in layers]
    return record, prefix, layers


def _load_file_object(f, key, prefix, layers) -> tuple:
    """A binary file object holding lstmrt's own model file (what Model.save writes to one). Other formats are read
    from paths: their readers (zip archives, HDF5, external ONNX data) open files by name."""
    where = str(getattr(f, "name", None) or f"the {type(f).__name__}")
    data = f.read()
    if not isinstance(data, (bytes, bytearray)):
        raise TypeError(f"cannot load {where}: it reads {type(data).__name__}, not bytes (open it in binary mode)")
    from ..model_file import from_bytes, looks_like_model_file

    if not looks_like_model_file(bytes(data[:16])):
        raise TypeError(
            f"cannot load {where}: from a file object lstmrt reads its own model files (.lstmrt) only; give other "
            "formats as a path"
        )
    _not_applicable(key=key, prefix=prefix, layers=layers, where="lstmrt model files (they hold one model)")
    info = {"format": FORMATS["lstmrt"], "path": None, "key": None, "prefix": None, "content": "lstmrt model"}
    return from_bytes(data, where), info


def _load_live(obj, key, prefix, layers):
    if _is_torch_module(obj):
        _check_layer_names(layers)  # a live Keras model gets layers= checked by load_keras
    if _is_torch_module(obj) and hasattr(obj, "save") and hasattr(obj, "code"):  # a live TorchScript module
        _not_applicable(key=key, where="TorchScript modules")
        record, forward_order = _read_scripted(obj)
        info = {"format": "live TorchScript module", "key": None, "prefix": prefix, "content": "TorchScript module"}
        return _from_module(record, prefix, layers, forward_order, info), info
    if _is_torch_module(obj):
        _not_applicable(key=key, where="live torch modules")
        obj, prefix, layers = _unwrap_training_wrappers(obj, prefix, layers)
        info = {"format": "live torch module", "key": None, "prefix": prefix, "content": type(obj).__name__}
        if (
            prefix is None
            and layers is None
            and type(obj).__module__.startswith("torch.nn.")
            and type(obj).__name__ not in ("ModuleList", "ModuleDict")
        ):  # containers: read as a module tree
            from .torch_live import from_torch

            info["order"] = "the module itself"
            return from_torch(obj), info
        if layers is None:
            return _load_live_forward(obj, prefix, info), info
        return _from_module(LiveRecord(obj), prefix, layers, None, info), info
    if _is_keras_model(obj):
        _not_applicable(key=key, prefix=prefix, where="Keras models")
        from .keras import load_keras

        return load_keras(obj, layers=layers), {
            "format": "live Keras model",
            "key": None,
            "prefix": None,
            "content": type(obj).__name__,
        }
    raise TypeError(f"cannot load a {type(obj).__name__}: expected a file path, a torch nn.Module or a Keras model")
