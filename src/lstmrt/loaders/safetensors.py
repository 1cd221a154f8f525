"""safetensors files, parsed directly: an 8-byte little-endian header length, a JSON header
{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw little-endian buffers.

The header is validated as the reference implementation does before any tensor is read: a length within the
file, JSON without duplicate keys, shapes of non-negative integers, each tensor's byte range exactly its shape
times its dtype size, and the ranges tiling the data section from its first to its last byte (no overlap, no
hole, nothing past the end)."""

from __future__ import annotations

import json
import math
import os
import struct
from collections import OrderedDict

from ..errors import CorruptFileError, UnsupportedModelError
from .safety import Budget
from .torch_pickle import storage_array

_DTYPES = {"F32": "f4", "F16": "f2", "BF16": "bf16", "F64": "f8"}
# Bytes per element of every dtype the format defines (to check byte ranges of tensors lstmrt will not read).
_ITEMSIZE = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E5M2": 1,
    "F8_E4M3": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
_MAX_HEADER = 100 << 20  # the format's own limit; a larger "length" means this is not a safetensors file


def looks_like_safetensors(head: bytes, file_size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= min(_MAX_HEADER, file_size - 8) and head[8:9] == b"{"


def _no_duplicates(pairs):
    names = [k for k, _ in pairs]
    if len(set(names)) != len(names):
        twice = next(k for k in names if names.count(k) > 1)
        raise CorruptFileError(f"safetensors header names {twice!r} twice")
    return OrderedDict(pairs)


def read_header(path) -> tuple:
    """(header dict without __metadata__, metadata dict, offset of the data section), validated."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        raw = f.read(8)
        if len(raw) < 8:
            raise CorruptFileError(f"{path}: a safetensors file needs 8 bytes of header length, it has {len(raw)}")
        (n,) = struct.unpack("<Q", raw)
        if n > _MAX_HEADER:
            raise CorruptFileError(f"{path}: safetensors header length {n} is implausible")
        if n > size - 8:
            raise CorruptFileError(
                f"{path}: safetensors header length {n} goes past the end of the file ({size} bytes)"
            )
        text = f.read(n)
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except CorruptFileError as exc:
        raise CorruptFileError(f"{path}: {exc}") from None
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:  # JSONDecodeError is a ValueError
        raise CorruptFileError(f"{path}: safetensors header is not JSON ({exc})") from None
    if not isinstance(header, dict):
        raise CorruptFileError(f"{path}: safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise CorruptFileError(f"{path}: safetensors __metadata__ is not a JSON object")
    _check_layout(path, header, size - 8 - n)
    return header, metadata, 8 + n


def _check_layout(path, header: dict, data_size: int) -> None:
    ranges = []
    for name, info in header.items():
        where = f"{path}: tensor {name!r}"
        if not isinstance(info, dict) or not {"dtype", "shape", "data_offsets"} <= set(info):
            raise CorruptFileError(f"{where}: header entry needs dtype, shape and data_offsets")
        dtype, shape, offsets = info["dtype"], info["shape"], info["data_offsets"]
        if not isinstance(dtype, str) or dtype not in _ITEMSIZE:
            raise CorruptFileError(f"{where}: unknown dtype {str(dtype)[:40]!r}")
        if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
            raise CorruptFileError(f"{where}: shape {str(shape)[:80]} is not a list of non-negative integers")
        if not (
            isinstance(offsets, list)
            and len(offsets) == 2
            and all(type(o) is int for o in offsets)
            and 0 <= offsets[0] <= offsets[1] <= data_size
        ):
            raise CorruptFileError(
                f"{where}: data_offsets {str(offsets)[:80]} are not a range within the {data_size} bytes of data"
            )
        nbytes = math.prod(shape) * _ITEMSIZE[dtype]
        if offsets[1] - offsets[0] != nbytes:
            raise CorruptFileError(
                f"{where} of shape {tuple(shape)} {dtype} spans {offsets[1] - offsets[0]} bytes, expected {nbytes}"
            )
        ranges.append((offsets[0], offsets[1], name))
    end = 0
    for begin, stop, name in sorted(ranges):
        if begin != end:
            what = "overlaps the previous tensor" if begin < end else f"leaves bytes {end}..{begin} unused"
            raise CorruptFileError(f"{path}: tensor {name!r} at bytes {begin}..{stop} {what}")
        end = stop
    if end != data_size:
        raise CorruptFileError(f"{path}: the tensors cover {end} bytes of the {data_size}-byte data section")


def read_safetensors(path, names=None) -> OrderedDict:
    """Tensors (all, or those in `names`) as NumPy arrays, float ones only: F32, F16, BF16, F64."""
    header, _metadata, start = read_header(path)
    out, budget = OrderedDict(), Budget(path)
    with open(path, "rb") as f:
        for name, info in header.items():
            if names is not None and name not in names:
                continue
            dtype = _DTYPES.get(info["dtype"])
            if dtype is None:
                raise UnsupportedModelError(
                    f"{path}: tensor {name!r} has dtype {info['dtype']}; supported: " + ", ".join(_DTYPES)
                )
            shape = tuple(info["shape"])
            begin, end = info["data_offsets"]
            numel = math.prod(shape)
            budget.take(numel, _ITEMSIZE[info["dtype"]], f"tensor {name!r} of shape {shape}")
            f.seek(start + begin)
            out[name] = storage_array(f.read(end - begin), dtype, numel, name).reshape(shape)
    return out
