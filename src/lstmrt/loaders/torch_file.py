"""Files written by torch.save, read without torch: the zip format (PyTorch >= 1.6) and the legacy pickle stream
(`_use_new_zipfile_serialization=False`). Either gives back the saved object with tensors as NumPy arrays and
modules as inert records (see torch_pickle)."""

from __future__ import annotations

import io
import os
import struct
import zipfile

from ..errors import CorruptPickleError, LoadError, UnsupportedModelError
from .safety import MAX_PICKLE_BYTES, Budget, open_zip, read_member
from .torch_pickle import PlainUnpickler, RestrictedUnpickler, itemsize, storage_array

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def archive_root(names) -> str | None:
    """The directory holding data.pkl in a torch zip archive (its name is free: torch uses the file's stem)."""
    roots = [n[: -len("data.pkl")] for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
    return roots[0] if len(roots) == 1 else None


def read_zip(path) -> object:
    with open_zip(path) as zf:
        root = archive_root(zf.namelist())
        if root is None:
            raise UnsupportedModelError(f"{path}: a zip archive without a single data.pkl is not a torch.save file")
        return unpickle_from_zip(zf, root, "data.pkl", path)


def unpickle_from_zip(zf: zipfile.ZipFile, root: str, member: str, source="the archive", storages="data") -> object:
    """The object pickled in `root + member`, its storages read from `root + <storages>/<key>` (TorchScript keeps
    its code's tensor constants under constants/). Each storage's size is checked against the bytes its member
    holds, and against the load's memory budget, before it is read."""
    names = set(zf.namelist())
    byteorder = "<"
    if f"{root}byteorder" in names:
        byteorder = "<" if read_member(zf, f"{root}byteorder", 64, source).strip() == b"little" else ">"
    budget = Budget(source)

    def load_storage(key, dtype, numel):
        name = f"{root}{storages}/{key}"
        if name not in names:
            raise CorruptPickleError(f"storage {key!r} is missing from the archive ({name})")
        size = zf.getinfo(name).file_size
        if size < numel * itemsize(dtype):
            raise CorruptPickleError(f"storage {key!r} holds {size} bytes, expected {numel * itemsize(dtype)}")
        budget.take(numel, itemsize(dtype), f"storage {key!r} ({numel:,} elements)")
        data = read_member(zf, name, 0, source, exact=numel * itemsize(dtype))
        return storage_array(data, dtype, numel, key, byteorder)

    data = read_member(zf, root + member, MAX_PICKLE_BYTES, source)
    return RestrictedUnpickler(io.BytesIO(data), load_storage).load()


def read_legacy(path) -> object:
    """The pre-1.6 stream: magic, protocol, sys_info pickles, the object pickle, the list of storage keys, then
    each storage as int64 element count + raw bytes, in key order."""
    with open(path, "rb") as f:
        file_size = os.fstat(f.fileno()).st_size
        try:
            magic = _small_pickle(f)
        except LoadError:
            magic = None
        if type(magic) is not int or magic != _LEGACY_MAGIC:
            raise UnsupportedModelError(
                f"{path}: a pickle, but not one written by torch.save (no torch magic "
                "number); lstmrt does not unpickle other pickles"
            )
        if _small_pickle(f) != _LEGACY_PROTOCOL:
            raise UnsupportedModelError(f"{path}: unsupported torch legacy protocol version")
        sys_info = _small_pickle(f)
        byteorder = "<" if not isinstance(sys_info, dict) or sys_info.get("little_endian", True) else ">"
        start = f.tell()
        # Pass 1 learns each storage's dtype and size (needed to walk the bytes behind the pickle); no data yet.
        found: dict = {}

        def note_storage(key, dtype, numel):
            found[key] = (dtype, numel)
            return None

        RestrictedUnpickler(f, note_storage).load()
        keys = _small_pickle(f)
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise CorruptPickleError("torch legacy file: the storage key list is missing")
        arrays, budget = {}, Budget(path)
        for key in keys:
            if key not in found or key in arrays:
                raise CorruptPickleError(f"torch legacy file: storage {key!r} is not referenced, or listed twice")
            dtype, numel = found[key]
            head = f.read(8)
            if len(head) != 8:
                raise CorruptPickleError(f"torch legacy file: truncated before storage {key!r}")
            (count,) = struct.unpack(byteorder + "q", head)
            size = itemsize(dtype)
            left = file_size - f.tell()
            if not numel <= count <= left // size:  # checked before reading: count is the file's word
                raise CorruptPickleError(
                    f"torch legacy file: storage {key!r} declares {count} elements of "
                    f"{size} bytes; the pickle needs {numel}, the file has {left} bytes left"
                )
            budget.take(count, size, f"storage {key!r} ({count:,} elements)")
            arrays[key] = storage_array(f.read(count * size), dtype, count, key, byteorder)[:numel]
        f.seek(start)
        return RestrictedUnpickler(f, lambda key, dtype, numel: arrays[key]).load()


def _small_pickle(f):
    """A header pickle of plain values (numbers, strings, dicts, lists): no globals allowed at all."""
    return PlainUnpickler(f).load()
