"""A restricted unpickler for PyTorch files: tensors become NumPy arrays, class instances (torch.nn modules, the
user's own nn.Module subclasses, TorchScript objects) become inert `Record`s, and nothing named in the file is
ever imported or called beyond the short allowlist below. This is what makes loading an untrusted checkpoint safe:
`pickle.load` would run any callable the file names (os.system, builtins.eval, ...)."""

from __future__ import annotations

import collections
import pickle
import re

import numpy as np

# torch.<Name>Storage -> NumPy dtype of its elements; bfloat16 is read as uint16 and widened (NumPy has none).
STORAGE_DTYPES = {
    "FloatStorage": "f4", "DoubleStorage": "f8", "HalfStorage": "f2", "BFloat16Storage": "bf16",
    "LongStorage": "i8", "IntStorage": "i4", "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "ComplexFloatStorage": "c8", "ComplexDoubleStorage": "c16", "UntypedStorage": "u1",
}
_TORCH_DTYPES = {
    "float32": "f4", "float": "f4", "float64": "f8", "double": "f8", "float16": "f2", "half": "f2",
    "bfloat16": "bf16", "int64": "i8", "long": "i8", "int32": "i4", "int": "i4", "int16": "i2", "int8": "i1",
    "uint8": "u1", "bool": "?",
}
# Modules whose globals are refused outright, even class-like names: the usual gadgets of malicious pickles.
_DENIED_MODULES = {
    "builtins", "__builtin__", "os", "posix", "nt", "sys", "subprocess", "importlib", "runpy", "shutil", "socket",
    "pickle", "_pickle", "marshal", "types", "ctypes", "code", "codeop", "pty", "webbrowser", "operator",
    "functools", "io", "_io", "multiprocessing", "threading", "signal", "pathlib", "tempfile", "inspect", "asyncio",
    "pdb", "timeit", "trace", "platform", "zipimport", "pkgutil", "site", "sysconfig", "_posixsubprocess", "nturl2path",
    "copyreg", "copy_reg", "numpy", "torch",
}
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*\Z")
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_CLASS = re.compile(r"[A-Z]\w*\Z")


_HINT = " (for a file of your own: save model.state_dict() or a TorchScript archive instead)"


class UnsafePickleError(pickle.UnpicklingError):
    """The file names a global (function, class) that lstmrt will not resolve: loading it could run code."""


class Record:
    """An instance of a class named in the file, kept as data: `qualname`, the constructor arguments of the
    pickle (`args`) and the pickled state (`state`: usually the instance's __dict__). Attribute access falls back
    to the state, so a record of torch.nn.ELU answers `.alpha` like the module would."""

    qualname = ""

    def __new__(cls, *args):  # pickle's NEWOBJ: create without running any __init__
        self = object.__new__(cls)
        object.__setattr__(self, "args", args)
        object.__setattr__(self, "state", {})
        return self

    def __setstate__(self, state):  # pickle's BUILD
        object.__setattr__(self, "state", state)

    @property
    def attrs(self) -> dict:
        st = self.state
        if isinstance(st, tuple) and len(st) == 2 and isinstance(st[0], dict):  # (__dict__, __slots__ state)
            st = st[0]
        return st if isinstance(st, dict) else {}

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        try:
            return self.attrs[name]
        except KeyError:
            raise AttributeError(f"{self.qualname} record has no attribute {name!r}") from None

    def __repr__(self):
        return f"<record of {self.qualname}>"


class _RecordMeta(type):
    def __call__(cls, *args, **kwargs):  # pickle's REDUCE: a call, which could run code in the real class
        raise UnsafePickleError(f"refusing to call global {cls.qualname}: lstmrt only rebuilds instances of "
                                f"classes as data, it never calls what a file names{_HINT}")


def record_class(module: str, name: str, cache: dict) -> type:
    """The record class for module.name, one per load (`cache`): nothing a file does outlives its loading."""
    key = f"{module}.{name}"
    if key not in cache:
        cache[key] = _RecordMeta(name, (Record,), {"qualname": key, "__module__": "lstmrt.records"})
    return cache[key]


class StorageType:
    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        self.name, self.dtype = name, STORAGE_DTYPES[name]

    def __repr__(self):
        return f"torch.{self.name}"


class Storage:
    """A storage's elements as a 1-D array (None while only the structure is being read)."""

    __slots__ = ("key", "array")

    def __init__(self, key: str, array):
        self.key, self.array = key, array


# -- tensor rebuilding: what torch._utils does, on NumPy arrays --------------------------------------------------
def _ints(value, what: str) -> tuple:
    if not isinstance(value, (tuple, list)) or not all(isinstance(v, int) and v >= 0 for v in value):
        raise pickle.UnpicklingError(f"tensor {what} must be non-negative integers, got {value!r}")
    return tuple(value)


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    if not isinstance(storage, Storage):
        raise pickle.UnpicklingError(f"tensor storage expected, got {type(storage).__name__}")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride) or not isinstance(storage_offset, int) or storage_offset < 0:
        raise pickle.UnpicklingError(f"inconsistent tensor layout: size {size}, stride {stride}, "
                                     f"offset {storage_offset!r}")
    arr = storage.array
    if arr is None:  # structure-only pass (legacy format): bytes come later
        return None
    if not (isinstance(arr, np.ndarray) and arr.ndim == 1 and arr.flags.c_contiguous):
        raise pickle.UnpicklingError(f"storage {storage.key!r} was tampered with")  # as_strided needs this
    if 0 in size:
        return np.zeros(size, arr.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= arr.size:  # a malformed file must not make us read outside the storage
        raise pickle.UnpicklingError(f"tensor of size {size} reaches element {last} of storage {storage.key!r} "
                                     f"which has {arr.size}")
    view = np.lib.stride_tricks.as_strided(arr[storage_offset:], shape=size,
                                           strides=[s * arr.itemsize for s in stride], writeable=False)
    return np.array(view)


def _rebuild_tensor_v3(storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *_ignored):
    # Untyped (byte) storage plus a dtype: reinterpret the bytes, offsets are in elements of dtype.
    if isinstance(storage, Storage) and storage.array is not None and dtype in _TORCH_DTYPES:
        storage = Storage(storage.key, _view_bytes(storage.array, _TORCH_DTYPES[dtype], "<"))
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    return data


def _rebuild_from_type_v2(func, new_type, args, state):
    func = getattr(func, "fn", None)
    if func not in _REBUILDERS:
        raise UnsafePickleError(f"refusing tensor rebuild through {func!r}")
    return func(*args)


def _rebuild_device_tensor_from_numpy(data, dtype, device, requires_grad):
    return data


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter, _rebuild_device_tensor_from_numpy)


def _view_bytes(raw: np.ndarray, dtype: str, byteorder: str) -> np.ndarray:
    if dtype == "bf16":
        half = np.frombuffer(raw.tobytes(), dtype=byteorder + "u2")
        return (half.astype(np.uint32) << 16).view(np.float32)
    dt = np.dtype(dtype).newbyteorder(byteorder) if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    return np.frombuffer(raw.tobytes() if not isinstance(raw, (bytes, bytearray)) else raw, dtype=dt)


def storage_array(data: bytes, dtype: str, numel: int, key: str, byteorder: str = "<") -> np.ndarray:
    """The `numel` elements of a storage from its raw bytes."""
    size = 2 if dtype == "bf16" else np.dtype(dtype).itemsize
    if len(data) < numel * size:
        raise pickle.UnpicklingError(f"storage {key!r} holds {len(data)} bytes, expected {numel * size}")
    arr = _view_bytes(np.frombuffer(data, np.uint8, numel * size), dtype, byteorder)
    return arr.astype(arr.dtype.newbyteorder("=")) if arr.dtype.byteorder not in "=|" else arr


# -- the few other callables a torch file may name -------------------------------------------------------------
def _latin1_encode(text, encoding="latin1"):  # how protocol 2 spells a bytes object
    if encoding not in ("latin1", "latin-1"):
        raise UnsafePickleError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


def _reconstructor(cls, base, state):  # copyreg._reconstructor, protocols 0 and 1
    if not (isinstance(cls, type) and issubclass(cls, Record)) or base is not object:
        raise UnsafePickleError(f"refusing copyreg._reconstructor({cls!r}, {base!r})")
    return cls.__new__(cls)


def _numpy_reconstruct(cls, shape, dtype):
    if cls is not np.ndarray or tuple(shape) != (0,):  # what numpy pickles; the data comes with BUILD
        raise UnsafePickleError(f"refusing numpy _reconstruct of {cls!r}")
    return np.ndarray.__new__(np.ndarray, shape, dtype)


def _numpy_dtype(spec, align=False, copy=False):
    if not isinstance(spec, str):
        raise UnsafePickleError(f"refusing numpy.dtype({spec!r})")
    return np.dtype(spec, align, copy)


def _numpy_scalar(dtype, data=None):
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise UnsafePickleError("refusing numpy scalar that is not plain data")
    return np.frombuffer(data, dtype, 1)[0]


def _identity(value, *_ignored):
    return value


def _device(*args):
    return ":".join(str(a) for a in args)


_SAFE_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set, ("builtins", "frozenset"): frozenset, ("builtins", "slice"): slice,
    ("builtins", "complex"): complex, ("builtins", "object"): object,
    ("_codecs", "encode"): _latin1_encode,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._utils", "_rebuild_device_tensor_from_numpy"): _rebuild_device_tensor_from_numpy,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): tuple, ("torch", "device"): _device,
    ("torch.jit._pickle", "restore_type_tag"): _identity,
    **{("torch.jit._pickle", f"build_{kind}list"): list for kind in ("int", "double", "bool", "tensor", "string")},
    ("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): _numpy_dtype,
    **{(mod, "_reconstruct"): _numpy_reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _numpy_scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
}
_RENAMED_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


class _Call:
    """An allowlisted function as the file sees it: callable, but with no attributes a BUILD could change."""

    __slots__ = ("fn",)

    def __init__(self, fn):
        object.__setattr__(self, "fn", fn)

    def __call__(self, *args):
        return self.fn(*args)

    def __setattr__(self, name, value):
        raise UnsafePickleError(f"refusing to modify {self.fn.__name__}")


def resolve_global(module: str, name: str, classes: dict):
    """What a GLOBAL opcode may stand for here: an allowlisted callable, a storage type, a dtype name, or an inert
    record class (from `classes`, this load's cache). Everything else raises UnsafePickleError naming it."""
    module = _RENAMED_MODULES.get(module, module)
    safe = _SAFE_GLOBALS.get((module, name))
    if safe is not None:
        return safe if isinstance(safe, type) else _Call(safe)
    if module == "torch" and name in STORAGE_DTYPES:
        return StorageType(name)
    if module == "torch" and name in _TORCH_DTYPES:
        return name
    top = module.split(".")[0]
    torch_class = top == "torch" and module.startswith(("torch.nn.", "torch.ao.nn.")) or (module, name) in (
        ("torch", "Tensor"), ("torch.nn.parameter", "Parameter"))
    class_like = _MODULE.match(module) and (_IDENTIFIER.match(name) if top == "__torch__" else _CLASS.match(name))
    if class_like and (torch_class or top not in _DENIED_MODULES):
        return record_class(module, name, classes)
    raise UnsafePickleError(f"refusing global {module}.{name}: lstmrt rebuilds only tensors, containers and "
                            f"module records and never imports or calls anything else a file names{_HINT}")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles a torch file's pickle. `load_storage(key, dtype, numel)` returns the storage's elements (or None
    while only reading structure)."""

    def __init__(self, file, load_storage):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage
        self._storages: dict = {}
        self._classes: dict = {}

    def find_class(self, module, name):
        return resolve_global(module, name, self._classes)

    def persistent_load(self, pid):
        pid = tuple(p.decode("ascii") if isinstance(p, bytes) else p for p in pid) if isinstance(pid, tuple) else pid
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module" and isinstance(pid[1], _RecordMeta):
            return pid[1]  # legacy files name each module class with its source (for a warning); class only
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise UnsafePickleError(f"unsupported persistent id {pid!r}: expected a torch storage reference")
        storage_type, key, _location, numel = pid[1:5]  # the location (cpu, cuda:0, mps) does not matter: bytes
        if not isinstance(storage_type, StorageType):
            raise pickle.UnpicklingError(f"unsupported storage type {storage_type!r}; supported: "
                                         + ", ".join(f"torch.{n}" for n in STORAGE_DTYPES))
        if not isinstance(numel, int) or numel < 0:
            raise pickle.UnpicklingError(f"storage {key!r} has invalid size {numel!r}")
        key = str(key)
        if key not in self._storages:
            self._storages[key] = Storage(key, self._load_storage(key, storage_type.dtype, numel))
        storage = self._storages[key]
        view = pid[5] if len(pid) == 6 else None
        if view is not None and storage.array is not None:  # legacy files: a view into another storage
            _view_key, offset, view_size = view
            return Storage(f"{key}[{offset}:]", storage.array[offset:offset + view_size])
        return storage
