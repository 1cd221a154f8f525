"""lstmrt export FILE -o OUT: a checkpoint's model as an lstmrt model file (docs/model-file.md), which the C library
loads without Python (lstmrt_model_load_file); with --c-array NAME, as a C source holding the file's bytes, for a
board without a file system (lstmrt_model_load(NAME, NAME_size, &model))."""

from __future__ import annotations

import re

from ..model_file import to_bytes
from ._checkpoint_args import add_load_arguments, load_from_args
from ._errors import CommandError, describe

_BYTES_PER_LINE = 16


# C99 to C23 keywords (C23's bool, true, ... included: a source must build with any of them)
_C_KEYWORDS = frozenset(
    "auto break case char const continue default do double else enum extern float for goto if inline int long "
    "register restrict return short signed sizeof static struct switch typedef union unsigned void volatile while "
    "bool true false nullptr alignas alignof constexpr static_assert thread_local typeof typeof_unqual".split()
)


def add_arguments(parser):
    add_load_arguments(parser)
    parser.add_argument("-o", "--output", required=True, help="where to write the model file (.lstmrt) or C source")
    parser.add_argument(
        "--c-array",
        metavar="NAME",
        help="write a C source defining `const unsigned char NAME[]` (64-byte aligned) and `const size_t NAME_size`",
    )


def run(args) -> int:
    if args.c_array is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", args.c_array):
        raise CommandError(f"--c-array {args.c_array!r} is not a C identifier")
    if args.c_array in _C_KEYWORDS or re.match(r"_[A-Z_]", args.c_array or ""):
        raise CommandError(f"--c-array {args.c_array!r} is a C keyword or a name reserved to the compiler")
    model, info = load_from_args(args)
    data = to_bytes(model)
    text = _c_source(data, args.c_array, args.file, model) if args.c_array else None
    try:
        with open(args.output, "w" if text else "wb") as f:
            f.write(text or data)
    except OSError as exc:
        raise CommandError(describe(exc)) from None
    what = f"C array {args.c_array}" if text else "lstmrt model file"
    print(f"{args.output}: {what}, {len(data):,} bytes ({info['format']} {args.file})")
    print(repr(model))
    return 0


def _c_source(data: bytes, name: str, source: str, model) -> str:
    def comment(text: str) -> str:  # a path or a layer name must not end the comment early
        return text.replace("*/", "* /")

    described = "\n".join(" *   " + comment(line) for line in repr(model).splitlines())
    rows = [
        "    " + ", ".join(f"0x{b:02x}" for b in data[i : i + _BYTES_PER_LINE]) + ","
        for i in range(0, len(data), _BYTES_PER_LINE)
    ]
    return "\n".join(
        [
            f"/* lstmrt model file (docs/model-file.md) exported from {comment(source)}:",
            described,
            f" * Load it with lstmrt_model_load({name}, {name}_size, &model). */",
            "#include <stddef.h>",
            "",
            "/* aligned so that lstmrt_model_load reads the weights in place instead of copying the array first */",
            "#if defined(__GNUC__) || defined(__clang__)",
            "__attribute__((aligned(64)))",
            "#endif",
            f"const unsigned char {name}[{len(data)}] = {{",
            *rows,
            "};",
            f"const size_t {name}_size = {len(data)};",
            "",
        ]
    )
