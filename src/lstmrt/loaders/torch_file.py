"""Files written by torch.save, read without torch: the zip format (PyTorch >= 1.6) and the legacy pickle stream
(`_use_new_zipfile_serialization=False`). Either gives back the saved object with tensors as NumPy arrays and
modules as inert records (see torch_pickle)."""

from __future__ import annotations

import io
import pickle
import pickletools
import struct
import zipfile

import numpy as np

from .torch_pickle import RestrictedUnpickler, storage_array

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001


def archive_root(names) -> str | None:
    """The directory holding data.pkl in a torch zip archive (its name is free: torch uses the file's stem)."""
    roots = [n[: -len("data.pkl")] for n in names if n.endswith("data.pkl") and n.count("/") <= 1]
    return roots[0] if len(roots) == 1 else None


def read_zip(path) -> object:
    with zipfile.ZipFile(path) as zf:
        root = archive_root(zf.namelist())
        if root is None:
            raise ValueError(f"{path}: a zip archive without a single data.pkl is not a torch.save file")
        return unpickle_from_zip(zf, root, "data.pkl")


def unpickle_from_zip(zf: zipfile.ZipFile, root: str, member: str) -> object:
    byteorder = "<"
    if f"{root}byteorder" in zf.namelist():
        byteorder = "<" if zf.read(f"{root}byteorder").strip() == b"little" else ">"

    def load_storage(key, dtype, numel):
        name = f"{root}data/{key}"
        try:
            data = zf.read(name)
        except KeyError:
            raise pickle.UnpicklingError(f"storage {key!r} is missing from the archive ({name})") from None
        return storage_array(data, dtype, numel, key, byteorder)

    return RestrictedUnpickler(io.BytesIO(zf.read(root + member)), load_storage).load()


def read_legacy(path) -> object:
    """The pre-1.6 stream: magic, protocol, sys_info pickles, the object pickle, the list of storage keys, then
    each storage as int64 element count + raw bytes, in key order."""
    with open(path, "rb") as f:
        try:
            magic = _small_pickle(f)
        except pickle.UnpicklingError:
            magic = None
        if magic != _LEGACY_MAGIC:
            raise ValueError(f"{path}: a pickle, but not one written by torch.save (no torch magic number)")
        if _small_pickle(f) != _LEGACY_PROTOCOL:
            raise ValueError(f"{path}: unsupported torch legacy protocol version")
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
        if not isinstance(keys, list):
            raise pickle.UnpicklingError("torch legacy file: the storage key list is missing")
        arrays = {}
        for key in keys:
            if key not in found:
                raise pickle.UnpicklingError(f"torch legacy file: storage {key!r} is not referenced")
            dtype, numel = found[key]
            (count,) = struct.unpack(byteorder + "q", f.read(8))
            size = 2 if dtype == "bf16" else np.dtype(dtype).itemsize
            arrays[key] = storage_array(f.read(count * size), dtype, count, key, byteorder)[:numel]
        f.seek(start)
        return RestrictedUnpickler(f, lambda key, dtype, numel: arrays[key]).load()


def _small_pickle(f):
    """A header pickle of plain values (numbers, strings, dicts, lists): no globals allowed at all."""
    start = f.tell()
    for opcode, _arg, _pos in pickletools.genops(f):
        if opcode.name in ("GLOBAL", "STACK_GLOBAL", "INST", "OBJ", "REDUCE", "NEWOBJ", "NEWOBJ_EX", "BUILD",
                           "EXT1", "EXT2", "EXT4", "PERSID", "BINPERSID"):
            raise pickle.UnpicklingError(f"torch legacy header contains opcode {opcode.name}")
        if opcode.name == "STOP":
            break
    end = f.tell()
    f.seek(start)
    return pickle.loads(f.read(end - start))
