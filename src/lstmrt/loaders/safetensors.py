"""safetensors files, parsed directly: an 8-byte little-endian header length, a JSON header
{name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}}, then the raw little-endian buffers."""

from __future__ import annotations

import json
import struct
from collections import OrderedDict

import numpy as np

from .torch_pickle import storage_array

_DTYPES = {"F32": "f4", "F16": "f2", "BF16": "bf16", "F64": "f8"}
_MAX_HEADER = 100 << 20  # the format's own limit; a larger "length" means this is not a safetensors file


def looks_like_safetensors(head: bytes, file_size: int) -> bool:
    if len(head) < 9:
        return False
    (n,) = struct.unpack("<Q", head[:8])
    return 2 <= n <= min(_MAX_HEADER, file_size - 8) and head[8:9] == b"{"


def read_header(path) -> tuple:
    """(header dict without __metadata__, metadata dict, offset of the data section)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        if n > _MAX_HEADER:
            raise ValueError(f"{path}: safetensors header length {n} is implausible")
        header = json.loads(f.read(n).decode("utf-8"), object_pairs_hook=OrderedDict)
    if not isinstance(header, dict):
        raise ValueError(f"{path}: safetensors header is not a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    return header, metadata, 8 + n


def read_safetensors(path, names=None) -> OrderedDict:
    """Tensors (all, or those in `names`) as NumPy arrays, float ones only: F32, F16, BF16, F64."""
    header, _metadata, start = read_header(path)
    out = OrderedDict()
    with open(path, "rb") as f:
        for name, info in header.items():
            if names is not None and name not in names:
                continue
            dtype = _DTYPES.get(info.get("dtype"))
            if dtype is None:
                raise ValueError(f"{path}: tensor {name!r} has dtype {info.get('dtype')}; supported: "
                                 + ", ".join(_DTYPES))
            shape = tuple(info["shape"])
            begin, end = info["data_offsets"]
            numel = int(np.prod(shape, dtype=np.int64))
            size = 2 if dtype == "bf16" else np.dtype(dtype).itemsize
            if end - begin != numel * size or begin < 0:
                raise ValueError(f"{path}: tensor {name!r} of shape {shape} {info['dtype']} spans {end - begin} "
                                 f"bytes, expected {numel * size}")
            f.seek(start + begin)
            out[name] = storage_array(f.read(end - begin), dtype, numel, name).reshape(shape)
    return out
