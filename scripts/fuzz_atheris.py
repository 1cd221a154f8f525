#!/usr/bin/env python3
"""Coverage-guided fuzzing of lstmrt.load with atheris (libFuzzer for Python), for long runs by hand; CI runs the
deterministic mutation fuzzer of tests/fuzzing.py instead.

    pip install atheris
    python scripts/fuzz_atheris.py WORKDIR -max_total_time=600          # WORKDIR: a writable corpus directory
    python scripts/fuzz_atheris.py -runs=1 crash-<hash>                 # replay a crash

WORKDIR is seeded with tests/fuzz_corpus/ on first use. A finding is any exception that is not a lstmrt.LoadError
(UnexpectedContentError, the loader's backstop, counts as one), a warning other than LayerOrderWarning, or a crash
or hang of this process: HDF5 parsing happens in lstmrt's helper process, so a libhdf5 crash is a CorruptFileError
here, not a crash."""

import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["lstmrt"]):
    import lstmrt
    import lstmrt.loaders.keras  # noqa: F401 - imported lazily by lstmrt.load: instrument them now
    import lstmrt.loaders.onnx  # noqa: F401
    import lstmrt.loaders.torch_file  # noqa: F401
    import lstmrt.loaders.torchscript  # noqa: F401
    from lstmrt.errors import LayerOrderWarning, LoadError, UnexpectedContentError

CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fuzz_corpus"
# Weights-only Keras files need their architecture: the one of the seed file their first bytes look like.
ARCHITECTURES = {name: json.loads((CORPUS / name).read_text()) for name in ("keras3.json", "tf_keras_weights.json")}
WORK = Path(tempfile.mkdtemp(prefix="lstmrt-atheris-"))


def one_input(data: bytes) -> None:
    path = WORK / "input"
    path.write_bytes(data)
    layers = None
    if data.startswith(b"\x89HDF") and b"model_config" not in data:
        layers = ARCHITECTURES["keras3.json" if b"vars" in data else "tf_keras_weights.json"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", LayerOrderWarning)  # a state dict's guessed order: said by design
        try:
            lstmrt.load(path, layers=layers)
        except UnexpectedContentError:
            raise
        except LoadError:
            return


def main() -> None:
    args = sys.argv[1:]
    dirs = [a for a in args if not a.startswith("-") and os.path.isdir(a)]
    for d in dirs:
        if not any(Path(d).iterdir()):
            for f in CORPUS.iterdir():
                if f.suffix != ".json":
                    shutil.copy(f, Path(d) / f.name)
    os.environ.setdefault("LSTMRT_HDF5_TIMEOUT", "30")
    atheris.Setup([sys.argv[0], *args], one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
