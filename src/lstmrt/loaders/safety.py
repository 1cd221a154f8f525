"""What a file may make lstmrt allocate or open, checked before it happens: zip members (paths, duplicates,
compression ratio, declared sizes), the memory budget of one load, and the backstop that turns an exception lstmrt
did not anticipate while interpreting a file into a CorruptFileError (docs/loading.md, section Errors)."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import struct
import zipfile
import zlib

from ..errors import (
    CorruptFileError,
    LoadError,
    ModelTooLargeError,
    UnexpectedContentError,
    UnsafeFileError,
    UnsupportedModelError,
)

LIMIT_ENV = "LSTMRT_MAX_LOAD_BYTES"
# A zip member may expand this much (uncompressed / compressed) once it is past SMALL_MEMBER bytes: weights barely
# compress (float noise), text compresses ~5-10x; a zip bomb's members expand 1000x and more.
MAX_RATIO = 200
SMALL_MEMBER = 1 << 20
MAX_PICKLE_BYTES = 256 << 20  # data.pkl / a legacy object pickle: the tensors are stored outside it
MAX_TEXT_BYTES = 64 << 20  # config.json, metadata.json, TorchScript code files, byteorder
# Tensor bytes are counted as float32 (what lstmrt keeps); a load holds about three copies at its peak (file bytes,
# layer spec, packed C weights), hence a quarter of the available memory by default.
_PEAK_COPIES = 4
_FALLBACK_LIMIT = 16 << 30
_DRIVE = re.compile(r"[A-Za-z]:")


def max_load_bytes() -> int:
    """The most tensor bytes (as float32) one load may read: LSTMRT_MAX_LOAD_BYTES if set, else a quarter of the
    memory available now (MemAvailable), else 16 GiB."""
    value = os.environ.get(LIMIT_ENV)
    if value:
        try:
            return int(value)
        except ValueError:
            raise ValueError(f"{LIMIT_ENV}={value!r}: expected a number of bytes") from None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024 // _PEAK_COPIES
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // _PEAK_COPIES
    except (AttributeError, ValueError, OSError):
        return _FALLBACK_LIMIT


def _limit_origin() -> str:
    if os.environ.get(LIMIT_ENV):
        return f"set by {LIMIT_ENV}"
    return f"a quarter of the available memory; set {LIMIT_ENV} to change it"


class Budget:
    """Tensor bytes one load has committed to read, checked against max_load_bytes() before each allocation."""

    def __init__(self, source):
        self.source, self.used, self.limit = source, 0, max_load_bytes()

    def take(self, elements: int, itemsize: int, what: str) -> None:
        nbytes = elements * max(itemsize, 4)  # float16 / bfloat16 become float32
        self.used += nbytes
        if self.used > self.limit:
            raise ModelTooLargeError(
                f"{self.source}: {what} brings the tensors to {_size(self.used)}, over the load limit of "
                f"{_size(self.limit)} ({_limit_origin()})"
            )


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"):
        if n < 1024 or unit == "EiB":
            return f"{n:,} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError  # pragma: no cover


# -- zip archives -------------------------------------------------------------------------------------------------
def check_zip(zf: zipfile.ZipFile, source) -> None:
    """Refuse what a loader should never act on: member paths leaving the archive (absolute, `..`, drive
    letters), a name given twice (which copy a reader takes differs between readers), encryption, compression
    methods other than stored/deflate, and members whose declared size is a decompression bomb: over MAX_RATIO
    times their compressed size, or all together past the load limit. Nothing is decompressed here."""
    seen, total = set(), 0
    for info in zf.infolist():
        name = info.filename
        parts = name.replace("\\", "/").split("/")
        if name.startswith(("/", "\\")) or _DRIVE.match(name) or ".." in parts:
            raise UnsafeFileError(f"{source}: zip member {name!r} names a path outside the archive")
        if name in seen:
            raise UnsafeFileError(
                f"{source}: zip member {name!r} appears twice: readers disagree on which copy is the real one"
            )
        seen.add(name)
        if info.flag_bits & 0x1:
            raise UnsupportedModelError(f"{source}: zip member {name!r} is encrypted")
        if info.extract_version > zipfile.MAX_EXTRACT_VERSION or info.flag_bits & 0x20:
            raise UnsupportedModelError(
                f"{source}: zip member {name!r} needs zip version "
                f"{info.extract_version / 10:.1f} or patched data: not supported"
            )
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise UnsupportedModelError(
                f"{source}: zip member {name!r} uses compression method "
                f"{info.compress_type}; supported: stored, deflate"
            )
        if info.file_size > SMALL_MEMBER and info.file_size > MAX_RATIO * info.compress_size:
            raise UnsafeFileError(
                f"{source}: zip member {name!r} would expand {info.compress_size:,} bytes to "
                f"{info.file_size:,} (over {MAX_RATIO}x): a decompression bomb"
            )
        total += info.file_size
    limit = max(max_load_bytes(), SMALL_MEMBER)
    if total > limit:
        raise ModelTooLargeError(
            f"{source}: the archive's members declare {_size(total)} in all, over the load "
            f"limit of {_size(limit)} (set {LIMIT_ENV} to change it)"
        )


def open_zip(source) -> zipfile.ZipFile:
    """A checked zipfile.ZipFile (see check_zip); a damaged archive is a CorruptFileError."""
    try:
        zf = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, EOFError, ValueError, struct.error, OverflowError, NotImplementedError) as exc:
        raise CorruptFileError(f"{source}: damaged zip archive ({exc})") from exc
    try:
        check_zip(zf, source)
    except BaseException:
        zf.close()
        raise
    return zf


def read_member(zf: zipfile.ZipFile, name: str, limit: int, source, *, exact: int | None = None) -> bytes:
    """The member's bytes, its declared size checked against `limit` (or, with `exact`, the first `exact` bytes,
    the member having to hold at least that many) before anything is decompressed."""
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise CorruptFileError(f"{source}: member {name!r} is missing from the archive") from None
    if exact is not None and info.file_size < exact:
        raise CorruptFileError(f"{source}: member {name!r} holds {info.file_size:,} bytes, expected {exact:,}")
    if exact is None and info.file_size > limit:
        raise UnsupportedModelError(
            f"{source}: member {name!r} declares {info.file_size:,} bytes, more than the {limit:,} lstmrt reads for it"
        )
    try:
        with zf.open(info) as member:
            data = member.read(info.file_size if exact is None else exact)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, struct.error, NotImplementedError) as exc:
        raise CorruptFileError(f"{source}: member {name!r} is damaged ({exc})") from exc
    if len(data) != (info.file_size if exact is None else exact):
        raise CorruptFileError(f"{source}: member {name!r} is truncated")
    return data


# -- the backstop -----------------------------------------------------------------------------------------------
# Raised by parsers on malformed input; lstmrt reads each format with explicit checks first, and these are what
# remains (a damaged stream detected by the library underneath).
_PARSE_ERRORS = (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, struct.error, UnicodeError, zlib.error)
# Exceptions no check anticipated: reported as UnexpectedContentError (a CorruptFileError) with the cause chained.
_UNEXPECTED = (TypeError, AttributeError, IndexError, KeyError, RecursionError, OverflowError)


@contextlib.contextmanager
def file_errors(source, *, reading: bool = False, keep: tuple = ()):
    """Inside, reading and interpreting an untrusted file: parser exceptions become CorruptFileError, exceptions
    that no check anticipated become UnexpectedContentError. LoadError passes through, and so do plain ValueErrors
    unless `reading` (a region that depends on the file's bytes only, where no argument can be wrong), and the
    types in `keep` (errors about the caller's arguments, such as KeyError for a key= naming nothing)."""
    unexpected = _UNEXPECTED + (ValueError,) if reading else _UNEXPECTED
    try:
        yield
    except (LoadError, *keep):
        raise
    except _PARSE_ERRORS as exc:
        raise CorruptFileError(f"{source}: damaged file ({type(exc).__name__}: {exc})") from exc
    except unexpected as exc:
        raise UnexpectedContentError(f"{source}: unexpected content ({type(exc).__name__}: {exc})") from exc
