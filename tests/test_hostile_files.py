"""Hostile and impossible files: each is refused with a LoadError of the documented type, before anything it
asks for is run, opened or allocated. Built from the committed seed corpus (tests/fuzz_corpus/), so these tests
need neither torch nor Keras. Code-running payloads `touch` a canary file in tmp_path that must never appear."""

import io
import json
import os
import pickle
import struct
import subprocess
import sys
import time
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest

import lstmrt
from lstmrt import (
    ArchitectureError,
    CorruptFileError,
    LoadError,
    ModelTooLargeError,
    UnsafeFileError,
    UnsafePickleError,
    UnsupportedModelError,
)
from lstmrt.errors import CorruptPickleError, UnexpectedContentError
from lstmrt.loaders import hdf5

h5py = pytest.importorskip("h5py")

CORPUS = Path(__file__).parent / "fuzz_corpus"
CANARY = "CANARY"  # replaced by the test's canary path in every payload


# -- containers: a payload placed where each format keeps its pickle -------------------------------------------------
def replace_member(src: Path, dst: Path, suffix: str, data: bytes, **extra) -> Path:
    """A copy of the zip `src` whose member ending in `suffix` holds `data`; `extra` adds members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, data if item.filename.endswith(suffix) else zin.read(item.filename))
        for name, content in extra.items():
            zout.writestr(name, content)
    return dst


def legacy_with(data: bytes, dst: Path) -> Path:
    """The legacy corpus file with its object pickle replaced by `data`."""
    raw = (CORPUS / "state_dict_legacy.pt").read_bytes()
    f = io.BytesIO(raw)
    for _ in range(3):
        pickle.load(f)  # magic, protocol, sys_info: plain values
    start = f.tell()
    _skip_pickle(f)
    dst.write_bytes(raw[:start] + data + raw[f.tell() :])
    return dst


def _skip_pickle(f):
    import pickletools

    for op, _arg, _pos in pickletools.genops(f):
        if op.name == "STOP":
            return


def in_container(container: str, data: bytes, tmp_path: Path) -> Path:
    if container == "zip":
        return replace_member(CORPUS / "state_dict.pt", tmp_path / "evil.pt", "/data.pkl", data)
    if container == "torchscript":
        return replace_member(CORPUS / "scripted.pt", tmp_path / "evil.pt", "/data.pkl", data)
    if container == "legacy":
        return legacy_with(data, tmp_path / "evil.pt")
    path = tmp_path / "evil.pkl"  # a plain pickle file
    path.write_bytes(data)
    return path


def sv(text: str) -> bytes:  # protocol 0 unicode string argument
    return b"V" + text.encode() + b"\n"


def short(text: str) -> bytes:  # protocol 4 SHORT_BINUNICODE
    return b"\x8c" + bytes([len(text)]) + text.encode()


# (payload, exception type, words of the message): each must be refused without running anything
GADGETS = {
    "os.system": (b"cos\nsystem\n(" + sv(f"touch {CANARY}") + b"tR.", UnsafePickleError, "refusing global os.system"),
    "builtins.eval": (
        b"cbuiltins\neval\n(" + sv(f"__import__('os').system('touch {CANARY}')") + b"tR.",
        UnsafePickleError,
        "builtins.eval",
    ),
    "builtins.exec": (
        b"c__builtin__\nexec\n(" + sv(f"open('{CANARY}', 'w')") + b"tR.",
        UnsafePickleError,
        "builtins.exec",
    ),
    "subprocess.Popen": (
        b"csubprocess\nPopen\n((" + sv("touch") + sv(CANARY) + b"ltR.",
        UnsafePickleError,
        "subprocess.Popen",
    ),
    "importlib.import_module": (
        b"cimportlib\nimport_module\n(" + sv("os") + b"tR.",
        UnsafePickleError,
        "importlib.import_module",
    ),
    # INST / OBJ: the class and its call in one opcode
    "INST os.system": (b"(" + sv(f"touch {CANARY}") + b"ios\nsystem\n.", UnsafePickleError, "os.system"),
    "OBJ posix.system": (b"(cposix\nsystem\n" + sv(f"touch {CANARY}") + b"o.", UnsafePickleError, "posix.system"),
    "INST record with args": (
        b"(" + sv("x") + b"itorch.nn.modules.rnn\nLSTM\n.",
        UnsafePickleError,
        "refusing to call global torch.nn.modules.rnn.LSTM",
    ),
    # a REDUCE whose callable is itself made by a REDUCE: bytes from _codecs.encode, then called
    "nested REDUCE": (
        b"c_codecs\nencode\n(" + sv("os") + sv("latin1") + b"tR(" + sv("x") + b"tR.",
        UnsafePickleError,
        "refusing a call (REDUCE) of bytes",
    ),
    "nested REDUCE record": (b"ctorch.nn.modules.rnn\nLSTM\n)R)R.", UnsafePickleError, "refusing to call global"),
    # copyreg._reconstructor turning a non-record class into an instance
    "copyreg._reconstructor": (
        b"ccopy_reg\n_reconstructor\n(c__builtin__\nset\nc__builtin__\nobject\nNtR.",
        UnsafePickleError,
        "refusing copyreg._reconstructor",
    ),
    # BUILD onto an allowlisted function, a storage type, a numpy dtype
    "BUILD on a function": (
        b"ctorch._utils\n_rebuild_tensor_v2\n(N}" + sv("__code__") + b"I1\nstb.",
        UnsafePickleError,
        "refusing to modify _rebuild_tensor",
    ),
    "BUILD on a storage type": (
        b"ctorch\nFloatStorage\n(N}" + sv("dtype") + sv("O") + b"stb.",
        UnsafePickleError,
        "refusing to modify torch.FloatStorage",
    ),
    "BUILD on a dtype": (
        b"cnumpy\ndtype\n(" + sv("f4") + b"I00\nI01\ntR(I3\n" + sv("<") + b"cos\nsystem\ntb.",
        UnsafePickleError,
        "os.system",
    ),
    "BUILD odd dtype state": (
        b"cnumpy\ndtype\n(" + sv("f4") + b"I00\nI01\ntR(I3\n" + sv("<") + b"(lI0\nNNI-1\nI-1\nI0\ntb.",
        UnsafePickleError,
        "refusing numpy dtype state",
    ),
    # object arrays and allocation by declared shape through numpy
    "numpy object dtype": (b"cnumpy\ndtype\n(" + sv("O") + b"I00\nI01\ntR.", UnsafePickleError, "only numeric dtypes"),
    "REDUCE numpy.ndarray": (
        b"cnumpy\nndarray\n((J\x00\x00\x01\x00J\x00\x00\x01\x00ttR.",
        UnsafePickleError,
        "refusing a call (REDUCE) of numpy.ndarray",
    ),
    "NEWOBJ numpy.ndarray": (
        b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x01\x00J\x00\x00\x01\x00\x86\x81.",
        UnsafePickleError,
        "NEWOBJ) of numpy.ndarray",
    ),
    # STACK_GLOBAL with names computed by an allowlisted callable (torch.device joins its arguments)
    "STACK_GLOBAL computed": (
        b"\x80\x04ctorch\ndevice\n"
        + short("os")
        + b"\x85R"
        + b"ctorch\ndevice\n"
        + short("system")
        + b"\x85R\x93"
        + short(f"touch {CANARY}")
        + b"\x85R.",
        UnsafePickleError,
        "refusing global os.system",
    ),
    "STACK_GLOBAL dotted": (
        b"\x80\x04" + short("torch.nn.modules.rnn") + short("LSTM.__init__.__globals__") + b"\x93.",
        UnsafePickleError,
        "LSTM.__init__.__globals__",
    ),
    # memo tricks: a refused global stored, then fetched under another opcode; a huge memo index (the C unpickler
    # sizes its memo array from it); a GET of nothing
    "memo smuggling": (b"cos\nsystem\np0\n0g0\n(" + sv(f"touch {CANARY}") + b"tR.", UnsafePickleError, "os.system"),
    "memo huge index": (b"\x80\x02K\x01r\xff\xff\xff\x7f.", LoadError, "holds a int|is not referenced"),
    "memo missing": (b"\x80\x02h\x05.", CorruptPickleError, "damaged pickle stream"),
    # declared lengths: BINBYTES8 of 2^62 bytes, BYTEARRAY8 (allocates first)
    "BINBYTES8 huge": (b"\x80\x04\x8e" + struct.pack("<Q", 1 << 62) + b"xx.", CorruptPickleError, "truncated"),
    "BYTEARRAY8": (b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b".", CorruptPickleError, "BYTEARRAY8"),
    "persistent id": (b"\x80\x02X\x03\x00\x00\x00abcQ.", UnsafePickleError, "unsupported persistent id"),
}


def payload(name: str, canary: Path) -> bytes:
    data = GADGETS[name][0]
    # Protocol-0 strings are newline-terminated, binary ones length-prefixed: keep the lengths right.
    if b"\x8c" + bytes([len(f"touch {CANARY}")]) in data:
        data = data.replace(short(f"touch {CANARY}"), short(f"touch {canary}"))
    return data.replace(CANARY.encode(), str(canary).encode())


@pytest.mark.parametrize("container", ["zip", "legacy", "torchscript"])
@pytest.mark.parametrize("name", list(GADGETS))
def test_pickle_gadgets_are_refused_and_nothing_runs(name, container, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths a payload might use land here
    canary = tmp_path / "canary"
    _, exc, words = GADGETS[name]
    path = in_container(container, payload(name, canary), tmp_path)
    with pytest.raises(exc, match=words.replace(".", r"\.").replace("(", r"\(").replace(")", r"\)")) as info:
        lstmrt.load(path)
    assert isinstance(info.value, LoadError)
    assert not canary.exists() and not (tmp_path / "CANARY").exists()


@pytest.mark.parametrize(
    "name", ["os.system", "builtins.eval", "subprocess.Popen", "STACK_GLOBAL computed", "memo smuggling"]
)
def test_plain_pickles_are_not_unpickled(name, tmp_path, monkeypatch):
    """A pickle that is not a torch.save file: refused as such, before any of it is resolved."""
    monkeypatch.chdir(tmp_path)
    canary = tmp_path / "canary"
    data = payload(name, canary)
    for proto2 in (data if data.startswith(b"\x80") else b"\x80\x02" + data, data):
        path = in_container("plain", proto2, tmp_path)
        with pytest.raises(UnsupportedModelError, match="not one written by torch.save|unrecognized file format"):
            lstmrt.load(path)
    with open(tmp_path / "real.pkl", "wb") as f:  # what pickle itself writes for the classic exploit
        pickle.dump(_Exploit(f"touch {canary}"), f, protocol=2)
    with pytest.raises(UnsupportedModelError, match="lstmrt does not unpickle other pickles"):
        lstmrt.load(tmp_path / "real.pkl")
    assert not canary.exists()


class _Exploit:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


# -- zip archives ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("base", ["state_dict.pt", "scripted.pt", "keras3.keras"])
@pytest.mark.parametrize(
    "name, words",
    [
        ("../../outside", "outside the archive"),
        ("/etc/absolute", "outside the archive"),
        ("C:/windows/x", "outside the archive"),
        ("a/../../b", "outside the archive"),
    ],
)
def test_zip_member_paths_outside_the_archive(base, name, words, tmp_path):
    path = replace_member(CORPUS / base, tmp_path / base, "\0", b"", **{name: b"x"})
    with pytest.raises(UnsafeFileError, match=words):
        lstmrt.load(path)


@pytest.mark.parametrize(
    "base, member",
    [("state_dict.pt", "state_dict/data.pkl"), ("state_dict.pt", "state_dict/data/0"), ("keras3.keras", "config.json")],
)
def test_zip_duplicate_names(base, member, tmp_path, recwarn):
    with zipfile.ZipFile(CORPUS / base) as zf:
        content = zf.read(member)
    path = replace_member(CORPUS / base, tmp_path / base, "\0", b"")
    with zipfile.ZipFile(path, "a") as zf:
        zf.writestr(member, content)  # zipfile warns about the duplicate: that is the point
    recwarn.clear()
    with pytest.raises(UnsafeFileError, match="appears twice"):
        lstmrt.load(path)


@pytest.mark.parametrize(
    "field, value",
    [("class_name", {"class_name": "LSTM"}), ("class_name", 7), ("name", ["lstm"]), ("config", {"name": {"a": 1}})],
)
def test_keras_layer_names_that_are_not_strings(field, value, tmp_path):
    """Found by the fuzzer (seed 31): a layer's class_name mutated into a dict reached a regex as a TypeError."""
    with zipfile.ZipFile(CORPUS / "keras3.keras") as zf:
        config = json.loads(zf.read("config.json"))
    layer = config["config"]["layers"][2]  # the LSTM
    layer[field] = value
    path = replace_member(CORPUS / "keras3.keras", tmp_path / "model.keras", "config.json", json.dumps(config).encode())
    with pytest.raises(CorruptFileError, match="must be strings"):
        lstmrt.load(path)


def keras_config_copy(tmp_path: Path, name: str, edit) -> Path:
    """A copy of the corpus Keras model `name` (.keras or .h5) whose model config is edited by `edit(config)`."""
    if name.endswith(".keras"):
        with zipfile.ZipFile(CORPUS / name) as zf:
            config = json.loads(zf.read("config.json"))
        edit(config)
        return replace_member(CORPUS / name, tmp_path / name, "config.json", json.dumps(config).encode())
    path = tmp_path / name
    path.write_bytes((CORPUS / name).read_bytes())
    with h5py.File(path, "r+") as f:
        config = json.loads(f.attrs["model_config"])
        edit(config)
        f.attrs["model_config"] = json.dumps(config)
    return path


def _set(index: int, *keys, value):
    """An edit setting config.layers[index].config[keys...] = value."""

    def edit(config):
        cfg = config["config"]["layers"][index]["config"]
        for key in keys[:-1]:
            cfg = cfg[key]
        cfg[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    "name, index, keys, value, words",
    [
        ("keras3.keras", 2, ("units",), -3, r"Keras layer 'lstm' \(LSTM\): config units=-3 is not a positive integer"),
        ("keras3.keras", 2, ("units",), 0, r"'lstm' \(LSTM\): config units=0 is not"),
        ("keras3.keras", 2, ("units",), "4", r"'lstm' \(LSTM\): config units='4' is not a positive integer"),
        ("keras3.keras", 2, ("units",), 4.0, r"'lstm' \(LSTM\): config units=4.0 is not"),
        ("keras3.keras", 2, ("units",), True, r"'lstm' \(LSTM\): config units=True is not"),  # a bool is no size
        ("keras3.keras", 2, ("units",), None, r"'lstm' \(LSTM\): config units=None is not"),
        ("keras3.keras", 3, ("units",), "2", r"Keras layer 'dense' \(Dense\): config units='2' is not"),
        ("keras3.h5", 2, ("units",), -4, r"keras3.h5: Keras layer 'lstm' \(LSTM\): config units=-4 is not"),
        (
            "tf_keras.h5",
            2,
            ("layer", "config", "units"),
            "3",
            r"Keras layer 'bidirectional' \(Bidirectional\): config layer.config.units='3' is not a positive integer",
        ),
    ],
    ids=["negative", "zero", "string", "float", "bool", "null", "dense-string", "h5-negative", "bidirectional"],
)
def test_keras_config_sizes_that_are_not_positive_integers(name, index, keys, value, words, tmp_path):
    """The weights fix the sizes, but a config Keras itself would refuse to load contradicts the file."""
    path = keras_config_copy(tmp_path, name, _set(index, *keys, value=value))
    with pytest.raises(CorruptFileError, match=words):
        lstmrt.load(path)


def test_keras_config_without_sizes_takes_them_from_the_weights(tmp_path):
    """An absent size is not a contradiction: the weights' shapes are used, as before."""
    path = keras_config_copy(tmp_path, "keras3.keras", lambda c: c["config"]["layers"][2]["config"].pop("units"))
    X = np.linspace(-1, 1, 15, dtype=np.float32).reshape(1, 5, 3)
    assert np.array_equal(lstmrt.load(path).predict(X), lstmrt.load(CORPUS / "keras3.keras").predict(X))


@pytest.mark.parametrize(
    "base, member",
    [
        ("state_dict.pt", "state_dict/data/0"),
        ("keras3.keras", "extra.bin"),
        ("scripted.pt", "scripted/code/__torch__/bomb.py"),
    ],
)
def test_zip_bomb_refused_before_decompressing(base, member, tmp_path):
    zeros = zlib.compressobj(9, zlib.DEFLATED, -15)
    bomb = zeros.compress(bytes(8 << 20)) + zeros.flush()  # 8 MiB of zeros in ~8 KiB
    path = replace_member(CORPUS / base, tmp_path / base, "\0", b"")
    with zipfile.ZipFile(path, "a") as zf:  # a raw deflate stream written as a member, sizes declared honestly
        info = zipfile.ZipInfo(member + ".bomb" if member.endswith("/0") else member)
        info.compress_type = zipfile.ZIP_DEFLATED
        with zf.open(info, "w") as w:
            w.write(bytes(8 << 20))
    assert len(bomb) < 64 << 10
    with pytest.raises(UnsafeFileError, match="decompression bomb"):
        lstmrt.load(path)


def test_zip_declared_sizes_past_the_load_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("LSTMRT_MAX_LOAD_BYTES", str(2 << 20))
    path = replace_member(
        CORPUS / "state_dict.pt", tmp_path / "big.pt", "\0", b"", **{"state_dict/pad": bytes(3 << 20)}
    )
    with pytest.raises(ModelTooLargeError, match="LSTMRT_MAX_LOAD_BYTES"):
        lstmrt.load(path)


def test_torch_storage_larger_than_its_member(tmp_path):
    data = zipfile.ZipFile(CORPUS / "state_dict.pt").read("state_dict/data.pkl")
    bad = data.replace(b"K$t", b"J\x00\xca\x9a;t", 1)  # storage 0: 36 elements -> 10^9 (4 GB), member has 144 bytes
    assert bad != data
    with pytest.raises(CorruptPickleError, match=r"storage '0' holds 144 bytes, expected 4000000000"):
        lstmrt.load(replace_member(CORPUS / "state_dict.pt", tmp_path / "bad.pt", "/data.pkl", bad))


def test_torch_tensor_declaring_a_huge_shape_over_a_small_storage(tmp_path):
    """size (10^9, 10^9) with strides (0, 0) stays inside a 1-element storage: refused, not materialized."""
    data = zipfile.ZipFile(CORPUS / "state_dict.pt").read("state_dict/data.pkl")
    big = b"J\x00\xca\x9a;J\x00\xca\x9a;\x86"
    bad = data.replace(b"K\x0cK\x03\x86", big, 1).replace(b"K\x03K\x01\x86", b"K\x00K\x00\x86", 1)
    with pytest.raises(CorruptPickleError, match="its storages only"):
        lstmrt.load(replace_member(CORPUS / "state_dict.pt", tmp_path / "bad.pt", "/data.pkl", bad))


def test_torch_legacy_storage_count_past_the_end(tmp_path):
    raw = (CORPUS / "state_dict_legacy.pt").read_bytes()
    f = io.BytesIO(raw)
    for _ in range(4):
        _skip_pickle(f)
    keys = pickle.load(f)
    at = f.tell()  # the first storage's int64 element count
    (count,) = struct.unpack("<q", raw[at : at + 8])
    assert count > 0 and keys
    path = tmp_path / "bad.pt"
    path.write_bytes(raw[:at] + struct.pack("<q", 1 << 60) + raw[at + 8 :])
    with pytest.raises(CorruptPickleError, match="declares 1152921504606846976 elements"):
        lstmrt.load(path)


# -- HDF5 -----------------------------------------------------------------------------------------------------------
def keras_weights_copy(tmp_path: Path, edit) -> tuple:
    """The Keras 3 weights-only corpus file edited by `edit(h5py.File)`, and its architecture."""
    path = tmp_path / "w.weights.h5"
    path.write_bytes((CORPUS / "keras3.weights.h5").read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f, tmp_path)
    return path, json.loads((CORPUS / "keras3.json").read_text())


def _external_link(f, tmp):
    with h5py.File(tmp / "elsewhere.h5", "w") as other:
        other["kernel"] = np.ones((3, 16), np.float32)
    del f["layers/lstm/cell/vars/0"]
    f["layers/lstm/cell/vars/0"] = h5py.ExternalLink(str(tmp / "elsewhere.h5"), "/kernel")


def _virtual(f, tmp):
    with h5py.File(tmp / "elsewhere.h5", "w") as other:
        other["kernel"] = np.ones((3, 16), np.float32)
    layout = h5py.VirtualLayout(shape=(3, 16), dtype="f4")
    layout[:] = h5py.VirtualSource(str(tmp / "elsewhere.h5"), "kernel", shape=(3, 16))
    del f["layers/lstm/cell/vars/0"]
    f.create_virtual_dataset("layers/lstm/cell/vars/0", layout)


def _external_storage(f, tmp):
    (tmp / "raw.bin").write_bytes(np.ones((3, 16), np.float32).tobytes())
    del f["layers/lstm/cell/vars/0"]
    f.create_dataset("layers/lstm/cell/vars/0", shape=(3, 16), dtype="f4", external=[(str(tmp / "raw.bin"), 0, 192)])


def _huge_declared(f, tmp):
    del f["layers/lstm/cell/vars/0"]
    f.create_dataset("layers/lstm/cell/vars/0", shape=(10**9, 10**9), dtype="f4", chunks=(1, 1))


def _compression_bomb(f, tmp):
    del f["layers/dense/vars/0"]
    f.create_dataset(
        "layers/dense/vars/0", data=np.zeros((4000, 4000), np.float32), chunks=(4000, 4000), compression="gzip"
    )


def _shape_mismatch(f, tmp):
    del f["layers/lstm/cell/vars/1"]
    f["layers/lstm/cell/vars/1"] = np.zeros((4, 999), np.float32)  # recurrent kernel: (4, 16) for units=4


def _soft_link_cycle(f, tmp):
    f["layers/lstm/cell/loop"] = h5py.SoftLink("/layers/lstm")


def _hard_link_cycle(f, tmp):
    f["layers/lstm/cell/cell"] = f["layers/lstm"]


@pytest.mark.parametrize(
    "edit, exc, words",
    [
        (_external_link, UnsafeFileError, "points to another file"),
        (_virtual, UnsafeFileError, "is virtual"),
        (_external_storage, UnsafeFileError, "external file"),
        (_huge_declared, CorruptFileError, "stores no data"),
        (_compression_bomb, UnsafeFileError, "decompression bomb"),
        (
            _shape_mismatch,
            CorruptFileError,
            r"weight 1 has shape \(4, 999\) in the file; the layer's config needs "
            r"\(4, 16\)",
        ),
        (_soft_link_cycle, UnsupportedModelError, "SoftLink"),
        (_hard_link_cycle, UnsupportedModelError, "reached twice"),
    ],
    ids=[
        "external_link",
        "virtual",
        "external_storage",
        "huge_declared",
        "compression_bomb",
        "shape_mismatch",
        "soft_link",
        "hard_link_cycle",
    ],
)
def test_hdf5_hostile_weights(edit, exc, words, tmp_path):
    path, architecture = keras_weights_copy(tmp_path, edit)
    with pytest.raises(exc, match=words):
        lstmrt.load(path, layers=architecture)


def _as_dtype(dataset: str, dtype):
    def edit(f):
        data = f[dataset][()]
        del f[dataset]
        f[dataset] = data.astype(dtype)

    return edit


def keras_model_copy(tmp_path: Path, name: str, edit) -> Path:
    """A copy of the corpus Keras model `name` (.keras, .h5 or .weights.h5) whose HDF5 weights are edited by
    `edit(h5py.File)` (in a .keras archive: its model.weights.h5)."""
    if name.endswith(".keras"):
        weights, _ = keras_weights_copy(tmp_path, lambda f, tmp: edit(f))
        return replace_member(CORPUS / name, tmp_path / name, "model.weights.h5", weights.read_bytes())
    path = tmp_path / name
    path.write_bytes((CORPUS / name).read_bytes())
    with h5py.File(path, "r+") as f:
        edit(f)
    return path


@pytest.mark.parametrize(
    "name, dataset, dtype, words",
    [
        (
            "keras3.keras",
            "layers/lstm/cell/vars/0",
            np.int32,
            r"Keras layer 'lstm' \(LSTM\): weight 0 \(HDF5 dataset '/layers/lstm/cell/vars/0'\) has dtype int32; "
            r"supported: floating point",
        ),
        (
            "keras3.weights.h5",
            "layers/dense/vars/1",
            np.uint8,
            r"Keras layer 'dense' \(Dense\): weight 1 \(HDF5 dataset '/layers/dense/vars/1'\) has dtype uint8",
        ),
        (
            "keras3.h5",
            "model_weights/lstm/sequential/lstm/lstm_cell/recurrent_kernel",
            np.int64,
            r"'lstm' \(LSTM\): weight 1 \(HDF5 dataset '/model_weights/lstm/sequential/lstm/lstm_cell/recurrent_kernel'"
            r"\) has dtype int64; supported: floating point",
        ),
        (
            "tf_keras.h5",
            "model_weights/bidirectional/bidirectional/backward_gru/gru_cell/bias:0",
            np.int16,
            r"'bidirectional' \(Bidirectional\): weight 5 \(HDF5 dataset '.*backward_gru/gru_cell/bias:0'\) has dtype "
            r"int16",
        ),
    ],
    ids=["keras-int32", "weights-uint8", "h5-int64", "tf_keras-int16"],
)
def test_keras_integer_weights_are_refused(name, dataset, dtype, words, tmp_path):
    """The same policy as for torch files: weights lstmrt computes with must be floating point."""
    path = keras_model_copy(tmp_path, name, _as_dtype(dataset, dtype))
    architecture = json.loads((CORPUS / "keras3.json").read_text()) if name.endswith(".weights.h5") else None
    with pytest.raises(UnsupportedModelError, match=words):
        lstmrt.load(path, layers=architecture)


def test_hdf5_external_link_in_a_keras_archive(tmp_path):
    weights, _ = keras_weights_copy(tmp_path, _external_link)
    path = replace_member(CORPUS / "keras3.keras", tmp_path / "m.keras", "model.weights.h5", weights.read_bytes())
    with pytest.raises(UnsafeFileError, match="points to another file"):
        lstmrt.load(path)


def _first_global_heap_object(raw: bytes) -> int:
    at = raw.find(b"GCOL")
    assert at >= 0
    return at + 16  # collection header: signature, version, reserved, size


def test_hdf5_damaged_global_heap_does_not_hang(tmp_path):
    """libhdf5 loops forever on a global heap object whose size leaves the collection; lstmrt checks first."""
    raw = bytearray((CORPUS / "keras3.h5").read_bytes())
    obj = _first_global_heap_object(raw)
    raw[obj + 8 : obj + 16] = struct.pack("<Q", 0xFFFFFF0000000000)
    (tmp_path / "m.h5").write_bytes(raw)
    with pytest.raises(CorruptFileError, match="global heap"):
        lstmrt.load(tmp_path / "m.h5")


def test_hdf5_global_heap_with_damaged_reserved_bytes_does_not_hang(tmp_path, monkeypatch):
    """Found by the fuzzer (seed 31): a reserved byte and the collection size of the first global heap changed;
    libhdf5 ignores the reserved bytes and loops forever on the size. The check must still walk that heap."""
    monkeypatch.setenv("LSTMRT_HDF5_TIMEOUT", "10")  # were the check to miss it: fail in seconds, not minutes
    raw = bytearray((CORPUS / "keras3.weights.h5").read_bytes())
    at = _first_global_heap_object(raw) - 16
    raw[at + 7] = raw[at + 8] = 0xFF  # last reserved byte; low byte of the collection size
    (tmp_path / "m.weights.h5").write_bytes(raw)
    with pytest.raises(CorruptFileError, match="global heap"):
        hdf5.read(tmp_path / "m.weights.h5", "m.weights.h5")


def test_hdf5_file_that_crashes_libhdf5(tmp_path):
    """Bytes found by the fuzzer: libhdf5 1.14 segfaults reading this model_config attribute. The crash happens in
    lstmrt's helper process and is a CorruptFileError here (with a libhdf5 that does not crash, also one)."""
    raw = bytearray((CORPUS / "keras3.h5").read_bytes())
    for at, value in ((1009, 0xD5), (1212, 0x01), (3033, 0xBB)):
        raw[at] = value
    (tmp_path / "m.h5").write_bytes(raw)
    with pytest.raises(CorruptFileError):
        lstmrt.load(tmp_path / "m.h5")
    assert lstmrt.load(CORPUS / "keras3.h5").input_size == 3  # the helper came back


@pytest.mark.parametrize(
    "script, words",
    [
        ("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)", r"crashed \(signal"),
        ("import sys, time; sys.stdin.buffer.read(8); time.sleep(600)", "did not finish within 1 s"),
        ("import sys; sys.exit(3)", r"exited \(status 3\)"),
    ],
    ids=["segfault", "hang", "exit"],
)
def test_hdf5_helper_failures_are_corrupt_file_errors(script, words, monkeypatch):
    helper = hdf5._Helper()
    monkeypatch.setattr(
        helper,
        "_start",
        lambda: setattr(
            helper,
            "_proc",
            subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE),
        ),
    )
    monkeypatch.setattr(hdf5, "_HELPER", helper)
    monkeypatch.setenv("LSTMRT_HDF5_TIMEOUT", "1")
    with pytest.raises(CorruptFileError, match=words):
        hdf5.read(CORPUS / "keras3.h5", "keras3.h5")
    helper.close()


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's new parent may be slow to reap it)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses a FIFO and /proc")
def test_hdf5_helper_ends_when_its_caller_dies_mid_request(tmp_path):
    """Seen in a fuzz run: the caller died while libhdf5 looped in the helper, and the orphaned helper burned a core
    until stopped by hand. Here the helper blocks opening a FIFO (no writer ever comes) and its caller is killed;
    the helper must end by itself soon after the request's timeout."""
    fifo = tmp_path / "never.h5"
    os.mkfifo(fifo)
    script = (
        "import sys; from lstmrt.loaders import hdf5\n"
        "hdf5._HELPER._start(); print(hdf5._HELPER._proc.pid, flush=True)\n"
        "hdf5.read(sys.argv[1], 'never.h5')\n"
    )
    caller = subprocess.Popen(
        [sys.executable, "-c", script, str(fifo)],
        stdout=subprocess.PIPE,
        text=True,
        env=dict(os.environ, LSTMRT_HDF5_TIMEOUT="2"),
    )
    helper = int(caller.stdout.readline())
    try:
        time.sleep(0.5)  # the request is on its way; the caller would kill the helper itself at 2 s
        caller.kill()
        caller.wait()
        deadline = time.monotonic() + 30
        while _running(helper) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _running(helper), "the orphaned HDF5 helper is still running 30 s after its caller died"
    finally:
        caller.stdout.close()
        if _running(helper):
            os.kill(helper, 9)


# -- safetensors ----------------------------------------------------------------------------------------------------
def safetensors_with(header, tmp_path: Path, body: bytes | None = None, length: int | None = None) -> Path:
    raw = (CORPUS / "state_dict.safetensors").read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    path = tmp_path / "m.safetensors"
    path.write_bytes(
        struct.pack("<Q", len(text) if length is None else length) + text + (raw[8 + n :] if body is None else body)
    )
    return path


def corpus_header() -> dict:
    raw = (CORPUS / "state_dict.safetensors").read_bytes()
    return json.loads(raw[8 : 8 + struct.unpack("<Q", raw[:8])[0]])


def _edit(**changes):
    def make():
        header = corpus_header()
        for name, (key, value) in changes.items():
            header[name][key] = value
        return header

    return make


@pytest.mark.parametrize(
    "make, words",
    [
        (_edit(**{"head.bias": ("data_offsets", [0, 12])}), "spans 12 bytes, expected 8"),
        (_edit(**{"head.weight": ("data_offsets", [0, 32])}), "overlaps"),
        (_edit(**{"head.bias": ("data_offsets", [10**6, 10**6 + 8])}), "not a range within"),
        (_edit(**{"head.bias": ("data_offsets", [-8, 0])}), "not a range within"),
        (_edit(**{"head.bias": ("shape", [10**9, 10**9])}), "spans 8 bytes, expected 4000000000000000000"),
        (_edit(**{"head.bias": ("shape", [2.0])}), "not a list of non-negative integers"),
        (_edit(**{"head.bias": ("dtype", "Q8")}), "unknown dtype"),
    ],
    ids=["wrong_span", "overlap", "out_of_range", "negative", "huge_shape", "float_shape", "dtype"],
)
def test_safetensors_bad_offsets_and_shapes(make, words, tmp_path):
    with pytest.raises(CorruptFileError, match=words):
        lstmrt.load(safetensors_with(make(), tmp_path))


def test_safetensors_headers(tmp_path):
    header = json.dumps(corpus_header()).encode()
    with pytest.raises(CorruptFileError, match="goes past the end of the file|truncated"):
        lstmrt.load(safetensors_with(header, tmp_path, length=len(header) + 10**6))
    with pytest.raises(CorruptFileError, match="not JSON"):
        lstmrt.load(safetensors_with(b"{" + header[1:-1] + b",,}", tmp_path))
    dup = b'{"head.bias": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, ' + header[1:]
    with pytest.raises(CorruptFileError, match="names 'head.bias' twice"):
        lstmrt.load(safetensors_with(dup, tmp_path))
    with pytest.raises(CorruptFileError, match="cover .* bytes of the"):
        lstmrt.load(safetensors_with(header, tmp_path, body=(CORPUS / "state_dict.safetensors").read_bytes()))


# -- the load limit -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["state_dict.pt", "state_dict_legacy.pt", "state_dict.safetensors", "keras3.h5"])
def test_model_too_large_for_the_limit(name, monkeypatch):
    monkeypatch.setenv("LSTMRT_MAX_LOAD_BYTES", "256")
    with pytest.raises(ModelTooLargeError, match=r"load limit of 256 bytes \(set (by )?LSTMRT_MAX_LOAD_BYTES"):
        lstmrt.load(CORPUS / name)


def test_native_refusal_of_a_huge_model_is_a_load_error(monkeypatch):
    from lstmrt.loaders import torch_build

    def no_memory(*args, **kwargs):
        raise MemoryError

    monkeypatch.setattr(torch_build, "Model", no_memory)
    with pytest.raises(ModelTooLargeError, match="do not fit in memory"):
        lstmrt.load(CORPUS / "state_dict.pt")


# -- the hierarchy --------------------------------------------------------------------------------------------------
def test_exception_hierarchy():
    assert issubclass(LoadError, ValueError)
    for cls in (UnsafeFileError, CorruptFileError, UnsupportedModelError):
        assert issubclass(cls, LoadError)
    assert issubclass(UnsafePickleError, UnsafeFileError) and issubclass(UnsafePickleError, pickle.UnpicklingError)
    assert issubclass(CorruptPickleError, CorruptFileError) and issubclass(CorruptPickleError, pickle.UnpicklingError)
    assert issubclass(ArchitectureError, UnsupportedModelError)
    assert issubclass(ModelTooLargeError, UnsupportedModelError)
    assert issubclass(UnexpectedContentError, CorruptFileError)
    for name in (
        "LoadError",
        "UnsafeFileError",
        "UnsafePickleError",
        "CorruptFileError",
        "CorruptPickleError",
        "UnsupportedModelError",
        "ArchitectureError",
        "ModelTooLargeError",
        "UnexpectedContentError",
    ):
        assert getattr(lstmrt, name) is getattr(lstmrt.errors, name) and name in lstmrt.__all__  # as documented
    from lstmrt.loaders.torch_build import ArchitectureError as old_place
    from lstmrt.loaders.torch_pickle import UnsafePickleError as old_pickle_place

    assert old_place is ArchitectureError and old_pickle_place is UnsafePickleError


def test_missing_file_stays_an_os_error(tmp_path):
    with pytest.raises(FileNotFoundError):
        lstmrt.load(tmp_path / "missing.pt")
