"""HDF5 files (Keras .h5, .weights.h5, the weights inside .keras) read in a helper process.

libhdf5 is not safe on damaged or hostile files: fuzzing lstmrt's loader found a segfault (a corrupt datatype
message) and an endless loop (a corrupt global heap) in libhdf5 1.14 within minutes. A long-lived service must
not die or hang on a downloaded file, so lstmrt never parses a file with libhdf5 in its own process: a helper
process (started on first use, reused, restarted after a failure) opens the file with h5py, refuses what
must not be followed (check_hdf5: external links, virtual and external datasets, plugin filters, sizes declared
beyond the data, damaged global heaps), and sends back the groups, attributes and numeric datasets as plain
JSON + raw bytes (never a pickle). A crash or a hang of the helper is a CorruptFileError naming the file. A
helper whose caller died in the middle of a request (so nobody will kill it) ends by itself shortly after the
request's timeout (POSIX: an alarm signal, which ends the process even inside a libhdf5 loop).

LSTMRT_HDF5_IN_PROCESS=1 parses in the calling process instead (faster; only for files you trust: a damaged file
can then crash the process). LSTMRT_HDF5_TIMEOUT (seconds, default 300) bounds one file's parse."""

from __future__ import annotations

import atexit
import json
import math
import mmap
import os
import signal
import struct
import subprocess
import sys
import threading

import numpy as np

from ..errors import (
    CorruptFileError,
    LoadError,
    ModelTooLargeError,
    UnexpectedContentError,
    UnsafeFileError,
    UnsupportedModelError,
)

IN_PROCESS_ENV = "LSTMRT_HDF5_IN_PROCESS"
TIMEOUT_ENV = "LSTMRT_HDF5_TIMEOUT"
_DEFAULT_TIMEOUT = 300.0
_MAX_DEPTH = 32
_MAX_OBJECTS = 100_000
_MAX_ATTR_ELEMENTS = 1 << 20
_SKIPPED_GROUPS = ("optimizer_weights", "optimizer")  # optimizer state: never used for inference, not read
_ERRORS = {
    cls.__name__: cls
    for cls in (CorruptFileError, UnsafeFileError, UnsupportedModelError, ModelTooLargeError, UnexpectedContentError)
}


# -- the tree the loader sees ----------------------------------------------------------------------------------
class Dataset:
    """A numeric dataset: shape, dtype, attrs, and its data as `ds[()]`. Datasets that were not read (optimizer
    state, non-numeric) raise CorruptFileError when read."""

    def __init__(self, name: str, shape, dtype, attrs: dict, data):
        self.name, self.shape, self.dtype, self.attrs, self._data = name, shape, dtype, attrs, data

    def __getitem__(self, key):
        if key != () or self._data is None:
            raise CorruptFileError(f"HDF5 dataset {self.name!r} ({self.dtype}) is not numeric weight data")
        return self._data


class Group:
    """A group: attrs (a dict), children by name, and paths ("layers/lstm/vars") for lookups, like h5py."""

    def __init__(self, name: str, attrs: dict, children: dict):
        self.name, self.attrs, self._children = name, attrs, children

    def _find(self, path: str):
        node = self
        for part in path.strip("/").split("/"):
            if not isinstance(node, Group) or part not in node._children:
                return None
            node = node._children[part]
        return node

    def __contains__(self, path) -> bool:
        return isinstance(path, str) and self._find(path) is not None

    def __getitem__(self, path):
        node = self._find(path) if isinstance(path, str) else None
        if node is None:
            raise KeyError(f"no HDF5 object {path!r} in {self.name!r}")
        return node

    def __iter__(self):
        return iter(self._children)

    def __len__(self) -> int:
        return len(self._children)

    def keys(self):
        return list(self._children)


def read(source, origin, *, names_only: bool = False, limit: int | None = None) -> Group:
    """The HDF5 file `source` (a path or bytes) as a Group tree. names_only: root attribute names and child
    names only (format detection). limit: most bytes of dataset data to read (ModelTooLargeError beyond)."""
    request = {"origin": str(origin), "names_only": names_only, "limit": limit}
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        request["path"] = os.fspath(source)
        data = b""
    if os.environ.get(IN_PROCESS_ENV, "") not in ("", "0"):
        header, blob = _snapshot(request, data)
    else:
        header, blob = _HELPER.ask(request, data, origin)
    return _tree(header, blob, origin)


def _tree(header: dict, blob: bytes, origin):
    if "error" in header:
        raise _ERRORS.get(header["error"], CorruptFileError)(header["message"])
    try:
        return _node(header["tree"], blob, "/")
    except (KeyError, TypeError, ValueError) as exc:  # the helper's answer is checked like any input
        raise CorruptFileError(f"{origin}: malformed answer from the HDF5 helper ({exc})") from None


def _node(spec: dict, blob: bytes, name: str):
    attrs = spec["attrs"]
    if spec["kind"] == "group":
        children = {k: _node(v, blob, f"{name.rstrip('/')}/{k}") for k, v in spec["children"].items()}
        return Group(name, attrs, children)
    dtype, shape = np.dtype(spec["dtype"]), tuple(spec["shape"])
    data = None
    if spec.get("offset") is not None:
        if dtype.kind not in "biuf" or not all(type(n) is int and n >= 0 for n in shape):
            raise ValueError(f"dataset {name!r}: bad dtype or shape")
        count = math.prod(shape)
        end = spec["offset"] + count * dtype.itemsize
        if not 0 <= spec["offset"] <= end <= len(blob):
            raise ValueError(f"dataset {name!r}: data outside the answer")
        data = np.frombuffer(blob, dtype, count, spec["offset"]).reshape(shape).copy()
    return Dataset(name, shape, dtype, attrs, data)


# -- the helper process ----------------------------------------------------------------------------------------
def _send(stream, payload: bytes) -> None:
    stream.write(struct.pack("<Q", len(payload)))
    stream.write(payload)


def _receive(stream) -> bytes | None:
    head = stream.read(8)
    if len(head) < 8:
        return None
    (n,) = struct.unpack("<Q", head)
    data = stream.read(n)
    return data if len(data) == n else None


class _Helper:
    """One helper process, used under a lock (h5py serializes HDF5 calls anyway); restarted after a failure."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc = None

    def _start(self):
        env = dict(os.environ, **{IN_PROCESS_ENV: "1"})
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "lstmrt.loaders.hdf5"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
        )

    def _kill(self, hung: bool) -> str:
        """Stop a failed helper; how it ended, for the message."""
        status = None
        if not hung:  # it closed its pipe: collect how it ended
            try:
                status = self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
        if status is None:
            self._proc.kill()
            self._proc.wait()
        self._proc.stdin.close()
        self._proc.stdout.close()
        self._proc = None
        return (
            "did not finish within {timeout:g} s"
            if status is None
            else f"crashed (signal {-status})"
            if status < 0
            else f"exited (status {status})"
        )

    def close(self):
        with self._lock:
            if self._proc is not None:
                self._proc.stdin.close()  # the helper exits at end of input
                try:
                    self._proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    self._proc.kill()
                    self._proc.wait()
                self._proc.stdout.close()
                self._proc = None

    def ask(self, request: dict, data: bytes, origin) -> tuple:
        timeout = float(os.environ.get(TIMEOUT_ENV) or _DEFAULT_TIMEOUT)
        request = dict(request, timeout=timeout)  # the helper's own deadline, should this process die
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._start()
            proc, answer = self._proc, {}

            def exchange():
                try:
                    _send(proc.stdin, json.dumps(request).encode())
                    _send(proc.stdin, data)
                    proc.stdin.flush()
                    answer["header"] = _receive(proc.stdout)
                    answer["blob"] = _receive(proc.stdout)
                except (OSError, ValueError):  # the helper died mid-exchange: reported below
                    pass

            # A thread with a timed join, not select(): pipes cannot be polled on Windows.
            worker = threading.Thread(target=exchange, daemon=True)
            worker.start()
            worker.join(timeout)
            if worker.is_alive() or answer.get("blob") is None:
                how = self._kill(worker.is_alive()).format(timeout=timeout)  # ends a hung exchange (pipes close)
                worker.join()
                raise CorruptFileError(
                    f"{origin}: the HDF5 library {how} reading this file (in lstmrt's helper "
                    "process): the file is damaged"
                )
        try:
            header = json.loads(answer["header"])
        except ValueError:
            header = None
        if not isinstance(header, dict):
            raise CorruptFileError(f"{origin}: malformed answer from the HDF5 helper")
        return header, answer["blob"]


_HELPER = _Helper()
atexit.register(_HELPER.close)


def _serve() -> None:
    """The helper's loop: requests on stdin, answers on a private copy of stdout (stdout itself goes to stderr,
    so that nothing a library prints can corrupt the answers)."""
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    inp = sys.stdin.buffer
    alarm = getattr(signal, "alarm", None)  # POSIX; SIGALRM's default action ends the process
    if alarm:
        signal.signal(signal.SIGALRM, signal.SIG_DFL)
    while True:
        request = _receive(inp)
        data = _receive(inp)
        if request is None or data is None:
            return
        request = json.loads(request)
        if alarm:  # the caller kills a late helper at `timeout`; this only fires if the caller is gone
            alarm(math.ceil(float(request.get("timeout") or _DEFAULT_TIMEOUT)) + 2)
        header, blob = _snapshot(request, data)
        if alarm:
            alarm(0)
        _send(out, json.dumps(header).encode())
        _send(out, blob)
        out.flush()


# -- reading a file with h5py (in the helper, or in process) -----------------------------------------------------
def _snapshot(request: dict, data: bytes) -> tuple:
    """(header, blob): the file's tree as JSON-able dicts, dataset bytes concatenated in blob; or an error."""
    import io

    import h5py

    from .keras_files import check_hdf5

    origin = request["origin"]
    raw = data
    try:
        if "path" in request:  # libhdf5's own file driver; the bytes (for check_global_heaps) memory-mapped
            with open(request["path"], "rb") as fh:
                raw = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) if os.fstat(fh.fileno()).st_size else b""
            f = h5py.File(request["path"], "r")
        else:
            f = h5py.File(io.BytesIO(raw), "r")
    except (OSError, ValueError, OverflowError) as exc:
        _close(raw)
        return {"error": "CorruptFileError", "message": f"{origin}: not a readable HDF5 file ({exc})"}, b""
    try:
        with f:
            if request.get("names_only"):
                tree = {
                    "kind": "group",
                    "attrs": {k: None for k in f.attrs},
                    "children": {k: {"kind": "group", "attrs": {}, "children": {}} for k in f},
                }
                return {"tree": tree}, b""
            check_hdf5(f, origin, raw)
            state = {"objects": 0, "seen": set(), "blobs": [], "size": 0, "limit": request.get("limit")}
            tree = _walk(f, origin, state, 0)
            return {"tree": tree}, b"".join(state["blobs"])
    except LoadError as exc:
        return {"error": type(exc).__name__, "message": str(exc)}, b""
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, OverflowError) as exc:
        # how h5py reports damaged data (OverflowError: a corrupt address handed to its file-object driver)
        return {"error": "CorruptFileError", "message": f"{origin}: damaged HDF5 data ({exc})"}, b""
    except Exception as exc:  # noqa: BLE001 - anything else still answers (and names itself for a bug report)
        return {
            "error": "UnexpectedContentError",
            "message": f"{origin}: unexpected content ({type(exc).__name__}: {exc})",
        }, b""
    finally:
        _close(raw)


def _close(raw) -> None:
    if isinstance(raw, mmap.mmap):
        raw.close()


def _attr_value(value):
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "SOU":
            return [_attr_value(v) if isinstance(v, (bytes, str)) else None for v in value.ravel().tolist()]
        if value.dtype.kind in "biuf":
            return value.tolist()
        return None
    if isinstance(value, np.generic):
        return (
            _attr_value(value.item())
            if value.dtype.kind in "SU"
            else (value.item() if value.dtype.kind in "biuf" else None)
        )
    return value if isinstance(value, (int, float)) else None


def _attrs(obj) -> dict:
    out = {}
    for name in obj.attrs:
        attr = obj.attrs.get_id(name)
        if attr.shape is not None and math.prod(attr.shape) > _MAX_ATTR_ELEMENTS:
            out[name] = None  # no attribute Keras writes is that large
            continue
        out[name] = _attr_value(obj.attrs[name])
    return out


def _walk(group, origin, state, depth) -> dict:
    import h5py

    if depth > _MAX_DEPTH:
        raise UnsupportedModelError(f"{origin}: HDF5 groups nest deeper than {_MAX_DEPTH} levels")
    children = {}
    for name in group:
        link = group.get(name, getlink=True)
        if not isinstance(link, h5py.HardLink):
            raise UnsupportedModelError(
                f"{origin}: HDF5 link {group.name}/{name} is a {type(link).__name__}; "
                "Keras files hold plain groups and datasets"
            )
        obj = group[name]
        state["objects"] += 1
        if obj.id in state["seen"] or state["objects"] > _MAX_OBJECTS:
            raise UnsupportedModelError(
                f"{origin}: HDF5 object {obj.name} is reached twice (a hard-link alias or "
                f"cycle), or the file holds more than {_MAX_OBJECTS:,} objects"
            )
        state["seen"].add(obj.id)
        if isinstance(obj, h5py.Group):
            if depth == 0 and name in _SKIPPED_GROUPS:
                continue
            children[name] = _walk(obj, origin, state, depth + 1)
        elif isinstance(obj, h5py.Dataset):
            children[name] = _dataset(obj, origin, state)
    return {"kind": "group", "attrs": _attrs(group), "children": children}


def _dataset(ds, origin, state) -> dict:
    spec = {
        "kind": "dataset",
        "attrs": _attrs(ds),
        "dtype": ds.dtype.str if ds.dtype.kind in "biuf" else "|u1",
        "shape": list(ds.shape) if ds.shape is not None else [0],
        "offset": None,
    }
    if ds.dtype.kind not in "biuf" or ds.shape is None:
        return spec
    nbytes = math.prod(ds.shape) * ds.dtype.itemsize
    if state["limit"] is not None and state["size"] + nbytes > state["limit"]:
        raise ModelTooLargeError(
            f"{origin}: the file's datasets hold more than the load limit of "
            f"{state['limit']:,} bytes (set LSTMRT_MAX_LOAD_BYTES to change it)"
        )
    data = np.ascontiguousarray(ds[()]).tobytes()
    spec["offset"] = state["size"]
    state["blobs"].append(data)
    state["size"] += len(data)
    return spec


if __name__ == "__main__":
    _serve()
