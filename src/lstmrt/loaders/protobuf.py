"""The protobuf wire format, decoded without the protobuf package: the fields of one message, and the repeated
scalar fields in both encodings protobuf writers produce (packed: one length-delimited run; unpacked: one tag per
value). Knows nothing of any schema: the caller picks the fields it wants and skips the rest, as protobuf does with
unknown fields.

Every malformation is a CorruptFileError naming `where`: a varint over 10 bytes or cut short, a length past the
end of its message, a field number of 0 or past 2**29 - 1, and wire types 3/4 (groups, which no current schema
uses) and 6/7 (undefined). Values wider than 64 bits keep their low 64 bits, as protobuf's own parsers do."""

from __future__ import annotations

import struct

import numpy as np

from ..errors import CorruptFileError

VARINT, FIXED64, LEN, FIXED32 = 0, 1, 2, 5
_MASK64 = (1 << 64) - 1
_MAX_FIELD = (1 << 29) - 1
_WIRE_NAMES = {3: "3 (start group)", 4: "4 (end group)", 6: "6 (undefined)", 7: "7 (undefined)"}
_CHUNK = 1 << 16  # varints decoded per NumPy pass: bounds the per-byte temporaries to a few MiB


def fields(buf, where: str):
    """(field_number, wire_type, value) of each field of one message, in file order. value: an int for VARINT and
    the raw unsigned bits of FIXED64/FIXED32 (see as_int64, as_float32, as_float64), a memoryview slice of `buf`
    for LEN (no copy). Raises CorruptFileError as it meets a malformation: fields before it were already yielded."""
    mv = memoryview(buf)
    if mv.ndim != 1 or mv.format != "B":
        mv = mv.cast("B")
    end, pos = len(mv), 0
    while pos < end:
        tag = mv[pos]
        if tag < 0x80:  # a field number up to 15: nearly every tag
            pos += 1
        else:
            tag, pos = _varint(mv, pos, end, where)
        number, wire = tag >> 3, tag & 7
        if number == 0 or number > _MAX_FIELD:
            raise CorruptFileError(f"{where}: field number {number} at byte {pos} of {end} is not valid protobuf")
        if wire == VARINT:
            value, pos = _varint(mv, pos, end, where)
        elif wire == LEN:
            n, pos = _varint(mv, pos, end, where)
            if n > end - pos:
                raise CorruptFileError(
                    f"{where}: field {number} declares {n:,} bytes at byte {pos}, past the end of its "
                    f"{end:,}-byte message (truncated?)"
                )
            value, pos = mv[pos : pos + n], pos + n
        elif wire == FIXED32 or wire == FIXED64:
            size = 4 if wire == FIXED32 else 8
            if size > end - pos:
                raise CorruptFileError(f"{where}: field {number} at byte {pos} is cut off by the end of its message")
            value, pos = int.from_bytes(mv[pos : pos + size], "little"), pos + size
        else:
            raise CorruptFileError(
                f"{where}: field {number} has wire type {_WIRE_NAMES[wire]}, which lstmrt does not read"
            )
        yield number, wire, value


def _varint(mv: memoryview, pos: int, end: int, where: str) -> tuple:
    result = shift = 0
    for i in range(pos, min(pos + 10, end)):
        byte = mv[i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _MASK64, i + 1
        shift += 7
    if end - pos >= 10:
        raise CorruptFileError(f"{where}: varint at byte {pos} runs over 10 bytes")
    raise CorruptFileError(f"{where}: varint at byte {pos} runs past the end of its message (truncated?)")


# -- reinterpreting one value -------------------------------------------------------------------------------------
def as_int64(value: int) -> int:
    """An int64 field's value (negative numbers are 10-byte varints, two's complement)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def as_int32(value: int) -> int:
    """An int32 or enum field's value: its low 32 bits, signed (negatives are sign-extended to 64 bits)."""
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value >= 1 << 31 else value


def as_float32(bits: int) -> float:
    return struct.unpack("<f", bits.to_bytes(4, "little"))[0]


def as_float64(bits: int) -> float:
    return struct.unpack("<d", bits.to_bytes(8, "little"))[0]


def text(value, where: str) -> str:
    """A string field: UTF-8."""
    try:
        return str(value, "utf-8")
    except UnicodeDecodeError as exc:
        raise CorruptFileError(f"{where}: invalid UTF-8 at byte {exc.start}") from None


# -- packed runs --------------------------------------------------------------------------------------------------
def count_varints(buf) -> int:
    """How many varints a packed run holds (its bytes without the continuation bit), without decoding them."""
    return int(np.count_nonzero(np.frombuffer(buf, np.uint8) < 0x80))


def packed_varints(buf, where: str) -> np.ndarray:
    """A packed run of varints as uint64 (`.view(np.int64)` for int64 fields), decoded with NumPy."""
    data = np.frombuffer(buf, np.uint8)
    ends = np.flatnonzero(data < 0x80)  # the last byte of each varint
    if data.size and (ends.size == 0 or ends[-1] != data.size - 1):
        raise CorruptFileError(f"{where}: the last varint of a packed run is cut off (truncated?)")
    out = np.empty(ends.size, np.uint64)
    begin = 0
    for first in range(0, ends.size, _CHUNK):
        last = ends[first : first + _CHUNK] - begin
        chunk = data[begin : begin + last[-1] + 1]
        starts = np.concatenate(([0], last[:-1] + 1))
        lengths = last - starts + 1
        longest = int(lengths.max())
        if longest > 10:
            raise CorruptFileError(f"{where}: a varint in a packed run runs over 10 bytes")
        if longest == 1:
            out[first : first + last.size] = chunk
        else:
            shift = (np.arange(chunk.size, dtype=np.uint64) - np.repeat(starts, lengths).astype(np.uint64)) * 7
            # The 7-bit groups of one varint do not overlap, so adding them is OR-ing them; a 10th byte keeps bit 63.
            digits = (chunk & 0x7F).astype(np.uint64) << shift
            out[first : first + last.size] = np.add.reduceat(digits, starts)
        begin += chunk.size
    return out


def packed_fixed(buf, dtype: str, where: str) -> np.ndarray:
    """A packed run of fixed-width values ("<f4" floats, "<f8" doubles, "<u4"/"<u8" raw bits): a read-only view
    of `buf`, no copy."""
    dtype = np.dtype(dtype)
    if len(buf) % dtype.itemsize:
        raise CorruptFileError(f"{where}: a packed run of {len(buf)} bytes is not whole {dtype.itemsize}-byte values")
    return np.frombuffer(buf, dtype)


def packed_floats(buf, where: str) -> np.ndarray:
    return packed_fixed(buf, "<f4", where)


def packed_doubles(buf, where: str) -> np.ndarray:
    return packed_fixed(buf, "<f8", where)


class Repeated:
    """One repeated scalar field of a message, collected as fields() yields it: packed runs and single values,
    which protobuf parsers accept in any mix and concatenate in order. Counted before decoding, so a caller can
    check the size it would allocate first."""

    _RAW = {VARINT: np.uint64, FIXED32: np.uint32, FIXED64: np.uint64}

    def __init__(self, wire: int):
        self.wire = wire
        self.parts = []  # memoryview (a packed run) or int (one value)

    def add(self, wire: int, value) -> bool:
        """Take one occurrence of the field; False when its wire type fits neither encoding (protobuf then treats
        it as an unknown field)."""
        if wire != self.wire and wire != LEN:
            return False
        self.parts.append(value)
        return True

    def __bool__(self):
        return bool(self.parts)

    def count(self, where: str) -> int:
        size = {FIXED32: 4, FIXED64: 8}.get(self.wire)
        total = 0
        for part in self.parts:
            if isinstance(part, int):
                total += 1
            elif size is None:
                total += count_varints(part)
            elif len(part) % size:
                raise CorruptFileError(f"{where}: a packed run of {len(part)} bytes is not whole {size}-byte values")
            else:
                total += len(part) // size
        return total

    def raw(self, where: str) -> np.ndarray:
        """All values in order as unsigned integers (uint64 for varints and FIXED64, uint32 for FIXED32): the
        bits to view as the field's type (int64, float32, float64)."""
        dtype, arrays, singles = self._RAW[self.wire], [], []
        for part in self.parts:
            if isinstance(part, int):
                singles.append(part)
                continue
            if singles:
                arrays.append(np.array(singles, dtype))
                singles = []
            if self.wire == VARINT:
                arrays.append(packed_varints(part, where))
            else:
                arrays.append(packed_fixed(part, np.dtype(dtype).newbyteorder("<"), where).astype(dtype))
        if singles:
            arrays.append(np.array(singles, dtype))
        if len(arrays) == 1:
            return arrays[0]
        return np.concatenate(arrays) if arrays else np.empty(0, dtype)


def merged(parts: list):
    """A singular message field given several times: protobuf merges the occurrences, which is what parsing
    their concatenation does."""
    return parts[0] if len(parts) == 1 else b"".join(parts)
