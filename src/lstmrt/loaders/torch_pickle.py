"""A restricted unpickler for PyTorch files: tensors become NumPy arrays, class instances (torch.nn modules, the
user's own nn.Module subclasses, TorchScript objects) become inert `Record`s, and nothing named in the file is
ever imported or called beyond the short allowlist below. This is what makes loading an untrusted checkpoint safe:
`pickle.load` would run any callable the file names (os.system, builtins.eval, ...).

The stream is run by Python's own pickle machine (pickle._Unpickler, not the C one) with the opcodes that call or
mutate objects (REDUCE, NEWOBJ, INST/OBJ, BUILD) checked against what they act on, and with its memo a dict: the C
unpickler sizes its memo from the indices a file declares and pre-allocates BINBYTES8 buffers of declared length,
so a 30-byte file could make it allocate gigabytes. Every other error of a damaged stream is a CorruptPickleError."""

from __future__ import annotations

import collections
import math
import pickle
import re
import struct

import numpy as np

from ..errors import CorruptPickleError, LoadError, UnsafePickleError

# torch.<Name>Storage -> NumPy dtype of its elements; bfloat16 is read as uint16 and widened (NumPy has none).
STORAGE_DTYPES = {
    "FloatStorage": "f4",
    "DoubleStorage": "f8",
    "HalfStorage": "f2",
    "BFloat16Storage": "bf16",
    "LongStorage": "i8",
    "IntStorage": "i4",
    "ShortStorage": "i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
    "ComplexFloatStorage": "c8",
    "ComplexDoubleStorage": "c16",
    "UntypedStorage": "u1",
}
_TORCH_DTYPES = {
    "float32": "f4",
    "float": "f4",
    "float64": "f8",
    "double": "f8",
    "float16": "f2",
    "half": "f2",
    "bfloat16": "bf16",
    "int64": "i8",
    "long": "i8",
    "int32": "i4",
    "int": "i4",
    "int16": "i2",
    "int8": "i1",
    "uint8": "u1",
    "bool": "?",
}
# Modules whose globals are refused outright, even class-like names: the usual gadgets of malicious pickles.
_DENIED_MODULES = {
    "builtins",
    "__builtin__",
    "os",
    "posix",
    "nt",
    "sys",
    "subprocess",
    "importlib",
    "runpy",
    "shutil",
    "socket",
    "pickle",
    "_pickle",
    "marshal",
    "types",
    "ctypes",
    "code",
    "codeop",
    "pty",
    "webbrowser",
    "operator",
    "functools",
    "io",
    "_io",
    "multiprocessing",
    "threading",
    "signal",
    "pathlib",
    "tempfile",
    "inspect",
    "asyncio",
    "pdb",
    "timeit",
    "trace",
    "platform",
    "zipimport",
    "pkgutil",
    "site",
    "sysconfig",
    "_posixsubprocess",
    "nturl2path",
    "copyreg",
    "copy_reg",
    "numpy",
    "torch",
}
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*\Z")
_MODULE = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*\Z")
_CLASS = re.compile(r"[A-Z]\w*\Z")


_HINT = " (for a file of your own: save model.state_dict() or a TorchScript archive instead)"
_MAX_NDIM = 32  # numpy's own limit is 64; no weight has more than a handful of axes
_MAX_DIM = 1 << 48  # a single axis longer than any storage lstmrt could hold: refused before any arithmetic
# Elements that tensors may hold beyond the bytes of their storages: torch saves expanded (stride-0) tensors as
# their small storage, and rebuilding materializes them. Past this, a file declaring (10^9, 10^9) over one float
# is refused instead of allocated.
_EXPAND_SLACK = 1 << 24


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
        raise UnsafePickleError(
            f"refusing to call global {cls.qualname}: lstmrt only rebuilds instances of "
            f"classes as data, it never calls what a file names{_HINT}"
        )


def record_class(module: str, name: str, cache: dict) -> type:
    """The record class for module.name, one per load (`cache`): nothing a file does outlives its loading."""
    key = f"{module}.{name}"
    if key not in cache:
        cache[key] = _RecordMeta(name, (Record,), {"qualname": key, "__module__": "lstmrt.records"})
    return cache[key]


class StorageType:
    __slots__ = ("name", "dtype")

    def __init__(self, name: str):
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "dtype", STORAGE_DTYPES[name])

    def __setattr__(self, name, value):
        raise UnsafePickleError(f"refusing to modify storage type {self.name}")

    def __repr__(self):
        return f"torch.{self.name}"


class Storage:
    """A storage's elements as a 1-D array (None while only the structure is being read)."""

    __slots__ = ("key", "array")

    def __init__(self, key: str, array):
        self.key, self.array = key, array


# -- tensor rebuilding: what torch._utils does, on NumPy arrays --------------------------------------------------
def _ints(value, what: str) -> tuple:
    if (
        not isinstance(value, (tuple, list))
        or len(value) > _MAX_NDIM
        or not all(type(v) is int and 0 <= v <= _MAX_DIM for v in value)
    ):
        raise CorruptPickleError(
            f"tensor {what} must be at most {_MAX_NDIM} non-negative integers, got {_short(value)}"
        )
    return tuple(value)


def _short(value, limit: int = 120) -> str:
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # an int past Python's 4300-digit str limit, or deep nesting
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[:limit] + "..."


# Any of these from pickle's machine means the opcodes do not form a valid stream (popping an empty stack, a MARK
# missing, a wrong argument type for an allowlisted callable, a truncated argument, ...).
MALFORMED_STREAM = (
    pickle.UnpicklingError,
    EOFError,
    struct.error,
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    OverflowError,
    UnicodeError,
)


class _BoundedReader:
    """The stream a pickle is read from, refusing reads past its end before they happen: a file's read(n)
    allocates n bytes first, and n (a BINBYTES8 / BINUNICODE8 / FRAME length) is the file's word."""

    def __init__(self, file):
        self._file = file
        here = file.tell()
        self._end = file.seek(0, 2)
        file.seek(here)

    def read(self, n=-1):
        left = self._end - self._file.tell()
        if n is not None and n > left:
            raise CorruptPickleError(f"pickle data truncated: an argument of {n:,} bytes with {left:,} left")
        return self._file.read(n)

    def readline(self):
        return self._file.readline()


class _Loading:
    """Per-load accounting of tensor elements against the storages they come from (see _EXPAND_SLACK)."""

    def __init__(self):
        self.stored = self.materialized = 0
        self.storages: set = set()


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored, loading=None):
    if not isinstance(storage, Storage):
        raise CorruptPickleError(f"tensor storage expected, got {type(storage).__name__}")
    size, stride = _ints(size, "size"), _ints(stride, "stride")
    if len(size) != len(stride) or type(storage_offset) is not int or not 0 <= storage_offset <= _MAX_DIM:
        raise CorruptPickleError(
            f"inconsistent tensor layout: size {size}, stride {stride}, offset {_short(storage_offset)}"
        )
    arr = storage.array
    if arr is None:  # structure-only pass (legacy format): bytes come later
        return None
    if not (isinstance(arr, np.ndarray) and arr.ndim == 1 and arr.flags.c_contiguous):
        raise CorruptPickleError(f"storage {storage.key!r} was tampered with")  # as_strided needs this
    if 0 in size:
        return np.zeros(size, arr.dtype)
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= arr.size:  # a malformed file must not make us read outside the storage
        raise CorruptPickleError(
            f"tensor of size {size} reaches element {last} of storage {storage.key!r} which has {arr.size}"
        )
    numel = math.prod(size)
    if loading is not None:  # strides of 0 let a tiny storage declare a huge tensor: bound what is materialized
        if storage.key not in loading.storages:
            loading.storages.add(storage.key)
            loading.stored += arr.size
        loading.materialized += numel
        if loading.materialized > loading.stored + _EXPAND_SLACK:
            raise CorruptPickleError(
                f"tensor of size {size} over storage {storage.key!r} ({arr.size} elements): "
                f"the file's tensors hold {loading.materialized:,} elements but its storages "
                f"only {loading.stored:,}"
            )
    view = np.lib.stride_tricks.as_strided(
        arr[storage_offset:], shape=size, strides=[s * arr.itemsize for s in stride], writeable=False
    )
    return np.array(view)


def _rebuild_tensor_v3(
    storage, storage_offset, size, stride, requires_grad, backward_hooks, dtype, *_ignored, loading=None
):
    # Untyped (byte) storage plus a dtype: reinterpret the bytes, offsets are in elements of dtype.
    if isinstance(storage, Storage) and storage.array is not None and isinstance(dtype, str) and dtype in _TORCH_DTYPES:
        storage = Storage(storage.key, _view_bytes(storage.array, _TORCH_DTYPES[dtype], "<"))
    return _rebuild_tensor(storage, storage_offset, size, stride, loading=loading)


def _rebuild_parameter(data, requires_grad, backward_hooks, *state):
    return data


def _rebuild_from_type_v2(func, new_type, args, state, *, loading=None):
    func = func.fn if isinstance(func, _Call) else None
    if func not in _REBUILDERS or not isinstance(args, tuple):
        raise UnsafePickleError(f"refusing tensor rebuild through {func!r}")
    if func in (_rebuild_tensor, _rebuild_tensor_v3):
        return func(*args, loading=loading)
    return func(*args)


def _rebuild_device_tensor_from_numpy(data, dtype, device, requires_grad):
    return data


_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_parameter, _rebuild_device_tensor_from_numpy)


def _view_bytes(raw: np.ndarray, dtype: str, byteorder: str) -> np.ndarray:
    data = raw.tobytes() if not isinstance(raw, (bytes, bytearray)) else raw
    if len(data) % itemsize(dtype):  # an untyped storage reinterpreted: whole elements only
        raise CorruptPickleError(f"{len(data)} bytes of storage are not a whole number of {dtype} elements")
    if dtype == "bf16":
        half = np.frombuffer(data, dtype=byteorder + "u2")
        return (half.astype(np.uint32) << 16).view(np.float32)
    dt = np.dtype(dtype).newbyteorder(byteorder) if np.dtype(dtype).itemsize > 1 else np.dtype(dtype)
    return np.frombuffer(data, dtype=dt)


def itemsize(dtype: str) -> int:
    """Bytes per element of a storage dtype code (STORAGE_DTYPES values)."""
    return 2 if dtype == "bf16" else np.dtype(dtype).itemsize


def storage_array(data: bytes, dtype: str, numel: int, key: str, byteorder: str = "<") -> np.ndarray:
    """The `numel` elements of a storage from its raw bytes."""
    size = itemsize(dtype)
    if len(data) < numel * size:
        raise CorruptPickleError(f"storage {key!r} holds {len(data)} bytes, expected {numel * size}")
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
    if cls is not np.ndarray or not isinstance(shape, tuple) or shape != (0,) or dtype != b"b":
        raise UnsafePickleError(f"refusing numpy _reconstruct of {_short(cls)}")  # numpy pickles exactly this
    return np.ndarray.__new__(np.ndarray, (0,), np.int8)  # its BUILD state then gives dtype, shape and data


def _numpy_dtype(spec, align=False, copy=False):
    # Plain numbers only: object, void, string and structured dtypes are not weights (and object arrays hold
    # arbitrary Python objects).
    if not isinstance(spec, str) or len(spec) > 8:
        raise UnsafePickleError(f"refusing numpy.dtype({_short(spec)})")
    try:
        dt = np.dtype(spec, bool(align), bool(copy))
    except TypeError as exc:
        raise CorruptPickleError(f"numpy.dtype({spec!r}): {exc}") from None
    if dt.kind not in "biufc" or dt.fields is not None or dt.subdtype is not None:
        raise UnsafePickleError(f"refusing numpy.dtype({spec!r}): only numeric dtypes")
    return dt


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
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("builtins", "slice"): slice,
    ("builtins", "complex"): complex,
    ("builtins", "object"): object,
    ("_codecs", "encode"): _latin1_encode,
    ("copyreg", "_reconstructor"): _reconstructor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch._utils", "_rebuild_device_tensor_from_numpy"): _rebuild_device_tensor_from_numpy,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type_v2,
    ("torch", "Size"): tuple,
    ("torch", "device"): _device,
    ("torch.jit._pickle", "restore_type_tag"): _identity,
    **{("torch.jit._pickle", f"build_{kind}list"): list for kind in ("int", "double", "bool", "tensor", "string")},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _numpy_dtype,
    **{(mod, "_reconstruct"): _numpy_reconstruct for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
    **{(mod, "scalar"): _numpy_scalar for mod in ("numpy.core.multiarray", "numpy._core.multiarray")},
}
_RENAMED_MODULES = {"__builtin__": "builtins", "copy_reg": "copyreg"}


_TENSOR_REBUILDERS = (_rebuild_tensor, _rebuild_tensor_v3, _rebuild_from_type_v2)


class _Call:
    """An allowlisted function as the file sees it: callable, but with no attributes a BUILD could change.
    Tensor rebuilders also get the load's element accounting (`loading`), which a file cannot pass itself."""

    __slots__ = ("fn", "loading")

    def __init__(self, fn, loading=None):
        object.__setattr__(self, "fn", fn)
        object.__setattr__(self, "loading", loading)

    def __call__(self, *args):
        if self.fn in _TENSOR_REBUILDERS:
            return self.fn(*args, loading=self.loading)
        return self.fn(*args)

    def __setattr__(self, name, value):
        raise UnsafePickleError(f"refusing to modify {self.fn.__name__}")

    def __repr__(self):
        return f"<allowlisted {self.fn.__name__}>"


def resolve_global(module: str, name: str, classes: dict, loading=None):
    """What a GLOBAL opcode may stand for here: an allowlisted callable, a storage type, a dtype name, or an inert
    record class (from `classes`, this load's cache). Everything else raises UnsafePickleError naming it."""
    if not isinstance(module, str) or not isinstance(name, str):
        raise CorruptPickleError("a global's module and name must be strings")
    module = _RENAMED_MODULES.get(module, module)
    safe = _SAFE_GLOBALS.get((module, name))
    if safe is not None:
        return safe if isinstance(safe, type) else _Call(safe, loading)
    if module == "torch" and name in STORAGE_DTYPES:
        return StorageType(name)
    if module == "torch" and name in _TORCH_DTYPES:
        return name
    top = module.split(".")[0]
    torch_class = (
        top == "torch"
        and module.startswith(("torch.nn.", "torch.ao.nn."))
        or (module, name) in (("torch", "Tensor"), ("torch.nn.parameter", "Parameter"))
    )
    class_like = _MODULE.match(module) and (_IDENTIFIER.match(name) if top == "__torch__" else _CLASS.match(name))
    if class_like and (torch_class or top not in _DENIED_MODULES):
        return record_class(module, name, classes)
    raise UnsafePickleError(
        f"refusing global {module}.{name}: lstmrt rebuilds only tensors, containers and "
        f"module records and never imports or calls anything else a file names{_HINT}"
    )


# What REDUCE / INST / OBJ may call besides allowlisted functions (_Call), and what NEWOBJ may create besides
# records: containers and plain values whose construction runs no code of the file's choosing. numpy.ndarray is
# deliberately absent: ndarray((10**5, 10**5)) would allocate what the file declares.
_CALLABLE_TYPES = (collections.OrderedDict, set, frozenset, slice, complex, tuple, list, object)
_NEWOBJ_TYPES = (collections.OrderedDict, set, frozenset, tuple, list, dict, object)


def _what(obj) -> str:
    if isinstance(obj, type):
        return getattr(obj, "qualname", "") or f"{obj.__module__}.{obj.__qualname__}"
    return type(obj).__name__


def _simple_dtype_state(state) -> bool:
    """The BUILD state numpy pickles for a numeric dtype: (3, '<', None, None, None, -1, -1, 0)."""
    return (
        isinstance(state, tuple)
        and len(state) in (8, 9)
        and state[0] in (3, 4)
        and state[1] in "<>|="
        and isinstance(state[1], str)
        and all(v is None for v in state[2:5])
        and all(type(v) is int for v in state[5:8])
    )


def _ndarray_state(state) -> bool:
    """The BUILD state numpy pickles for an array of numbers: (version, shape, dtype, is_fortran, raw bytes)."""
    if not (isinstance(state, tuple) and len(state) == 5 and type(state[0]) is int):
        return False
    _, shape, dtype, fortran, raw = state
    return (
        isinstance(shape, tuple)
        and len(shape) <= _MAX_NDIM
        and all(type(n) is int for n in shape)
        and isinstance(dtype, np.dtype)
        and dtype.kind in "biufc"
        and isinstance(fortran, bool)
        and isinstance(raw, bytes)
    )


class RestrictedUnpickler(pickle._Unpickler):
    """Unpickles a torch file's pickle. `load_storage(key, dtype, numel)` returns the storage's elements (or None
    while only reading structure). load() raises UnsafePickleError for anything that could run code and
    CorruptPickleError for a damaged stream."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, load_storage):
        super().__init__(_BoundedReader(file), encoding="utf-8")
        self._load_storage = load_storage
        self._storages: dict = {}
        self._classes: dict = {}
        self._loading = _Loading()

    def load(self):
        try:
            return super().load()
        except LoadError:
            raise
        except RecursionError:  # deep nesting in what a stream builds (the machine itself is not recursive)
            raise CorruptPickleError("the pickle nests objects too deeply") from None
        except MALFORMED_STREAM as exc:
            raise CorruptPickleError(f"damaged pickle stream ({type(exc).__name__}: {_short(str(exc), 300)})") from exc

    def find_class(self, module, name):
        return resolve_global(module, name, self._classes, self._loading)

    def load_bytearray8(self):  # protocol 5, which torch does not write; it allocates its declared length first
        raise CorruptPickleError("unsupported opcode BYTEARRAY8 (protocol 5 out-of-band data)")

    dispatch[pickle.BYTEARRAY8[0]] = load_bytearray8

    # -- the opcodes that call or mutate: checked against what they act on --------------------------------------
    def _check_call(self, func, how: str) -> None:
        if isinstance(func, (_Call, _RecordMeta)) or any(func is t for t in _CALLABLE_TYPES):
            return  # a record class refuses the call itself, naming the class
        raise UnsafePickleError(
            f"refusing {how} of {_what(func)[:120]}: lstmrt calls only its allowlist of "
            f"tensor rebuilders and containers{_HINT}"
        )

    def load_reduce(self):
        args = self.stack.pop()
        func = self.stack[-1]
        self._check_call(func, "a call (REDUCE)")
        if not isinstance(args, tuple):
            raise CorruptPickleError("REDUCE arguments are not a tuple")
        self.stack[-1] = func(*args)

    dispatch[pickle.REDUCE[0]] = load_reduce

    def _check_new(self, cls) -> None:
        if isinstance(cls, _RecordMeta) or any(cls is t for t in _NEWOBJ_TYPES):
            return
        raise UnsafePickleError(f"refusing to create an instance (NEWOBJ) of {_what(cls)[:120]}{_HINT}")

    def load_newobj(self):
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_new(cls)
        self.append(cls.__new__(cls, *args) if isinstance(cls, _RecordMeta) else cls.__new__(cls))

    dispatch[pickle.NEWOBJ[0]] = load_newobj

    def load_newobj_ex(self):
        self.stack.pop()  # keyword arguments: records ignore them, containers take none
        args = self.stack.pop()
        cls = self.stack.pop()
        self._check_new(cls)
        self.append(cls.__new__(cls, *args) if isinstance(cls, _RecordMeta) else cls.__new__(cls))

    dispatch[pickle.NEWOBJ_EX[0]] = load_newobj_ex

    def _instantiate(self, klass, args):  # INST and OBJ
        if isinstance(klass, _RecordMeta) and not args:
            self.append(klass.__new__(klass))
            return
        self._check_call(klass, "a call (INST/OBJ)")
        self.append(klass(*args))

    def load_build(self):
        state = self.stack[-1]
        inst = self.stack[-2]
        if isinstance(inst, Record):
            pass  # Record.__setstate__ keeps the state as data
        elif isinstance(inst, collections.OrderedDict):  # a state dict's _metadata attribute
            if not isinstance(state, dict):
                raise CorruptPickleError("OrderedDict BUILD state is not a dict")
        elif isinstance(inst, np.dtype):
            if not _simple_dtype_state(state):
                raise UnsafePickleError(f"refusing numpy dtype state {_short(state)}")
        elif type(inst) is np.ndarray:
            if not _ndarray_state(state):
                raise UnsafePickleError("refusing numpy array state that is not numbers")
        elif isinstance(inst, (_Call, StorageType)):
            raise UnsafePickleError(f"refusing to modify {inst.fn.__name__ if isinstance(inst, _Call) else inst}")
        else:
            raise UnsafePickleError(f"refusing to set the state (BUILD) of {_what(inst)[:120]}{_HINT}")
        super().load_build()

    dispatch[pickle.BUILD[0]] = load_build

    def persistent_load(self, pid):
        pid = tuple(p.decode("ascii") if isinstance(p, bytes) else p for p in pid) if isinstance(pid, tuple) else pid
        if isinstance(pid, tuple) and len(pid) == 4 and pid[0] == "module" and isinstance(pid[1], _RecordMeta):
            return pid[1]  # legacy files name each module class with its source (for a warning); class only
        if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
            raise UnsafePickleError(f"unsupported persistent id {_short(pid)}: expected a torch storage reference")
        storage_type, key, _location, numel = pid[1:5]  # the location (cpu, cuda:0, mps) does not matter: bytes
        if not isinstance(storage_type, StorageType):
            raise CorruptPickleError(
                f"unsupported storage type {_short(storage_type)}; supported: "
                + ", ".join(f"torch.{n}" for n in STORAGE_DTYPES)
            )
        if not isinstance(key, (str, int)) or isinstance(key, bool):
            raise CorruptPickleError(f"storage key {_short(key)} is not a name")
        if type(numel) is not int or not 0 <= numel <= _MAX_DIM:
            raise CorruptPickleError(f"storage {key!r} has invalid size {_short(numel)}")
        key = str(key)
        if key not in self._storages:
            self._storages[key] = Storage(key, self._load_storage(key, storage_type.dtype, numel))
        storage = self._storages[key]
        view = pid[5] if len(pid) == 6 else None
        if view is not None and storage.array is not None:  # legacy files: a view into another storage
            if not (isinstance(view, tuple) and len(view) == 3 and all(type(v) is int and v >= 0 for v in view[1:])):
                raise CorruptPickleError(f"storage view {_short(view)} is malformed")
            _view_key, offset, view_size = view
            return Storage(f"{key}[{offset}:]", storage.array[offset : offset + view_size])
        return storage


class PlainUnpickler(pickle._Unpickler):
    """Plain values only (numbers, strings, bytes, containers): every global is refused, so nothing can be
    called. For the header pickles of legacy files (magic number, protocol, sys_info, storage keys)."""

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BYTEARRAY8[0]] = RestrictedUnpickler.load_bytearray8

    def __init__(self, file):
        super().__init__(_BoundedReader(file), encoding="utf-8")

    def find_class(self, module, name):
        raise UnsafePickleError(
            f"refusing global {_short(module)}.{_short(name)} in a header that holds plain values only"
        )

    def persistent_load(self, pid):
        raise UnsafePickleError("refusing a persistent id in a header that holds plain values only")

    def load(self):
        try:
            return super().load()
        except LoadError:
            raise
        except (*MALFORMED_STREAM, RecursionError) as exc:
            raise CorruptPickleError(f"damaged pickle stream ({type(exc).__name__}: {_short(str(exc), 300)})") from exc
