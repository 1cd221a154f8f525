"""lstmrt model files (.lstmrt, docs/model-file.md): every layer kind and option written and read back through a
path and a file object, bit-identical; the layout as documented; models from real torch and Keras files; what the
reader refuses, each refusal naming the file; detection by content, not by extension."""

import io
import re
import json
import os
import struct
import zlib

import numpy as np
import pytest
import specs
from conftest import assert_close

import lstmrt
from lstmrt import model_file
from lstmrt.layers import Layer
from lstmrt.loaders.load import load_with_info

B, T = 3, 9
RECORD, ARRAYS = 288, 96  # docs/model-file.md, version 2: a layer record's size, where its array references start


# -- a catalogue of models: name -> rng -> (layers, Model options) ---------------------------------------------------
def _layer_norm_case(mode, weighted):
    def case(rng):
        scale = rng.uniform(0.5, 2.0, 4) if weighted else None
        shift = rng.standard_normal(4) if weighted and mode == "layer" else None
        norm = lstmrt.LayerNorm(4, scale=scale, shift=shift, epsilon=1e-3, mode=mode)
        return [specs.gru(rng, 3, 4), norm, specs.dense(rng, 4, 2)], {}

    return case


CASES = {
    "lstm": lambda rng: ([specs.lstm(rng, 3, 5), specs.dense(rng, 5, 2)], {}),
    "lstm-proj-peephole-clip": lambda rng: ([specs.lstm(rng, 3, 6, proj_size=2, peephole=True, cell_clip=0.7)], {}),
    "lstm-activations-no-bias": lambda rng: (
        [specs.lstm(rng, 3, 4, bias=False, activations=("hard_sigmoid", "relu", "softsign"))],
        {},
    ),
    "lstm-go-backwards-hold": lambda rng: ([specs.lstm(rng, 3, 4, go_backwards=True, hold_masked_output=True)], {}),
    "lstm-last-squeezed": lambda rng: (
        [specs.lstm(rng, 3, 4, return_sequences=False), specs.dense(rng, 4, 1, "sigmoid")],
        {"return_sequences": False, "squeeze_output": True},
    ),
    "lstm-last-unit-axis": lambda rng: (  # predict (B, 1, 2), as an ONNX graph's out[:, -1:]
        [specs.lstm(rng, 3, 4, return_sequences=False), specs.dense(rng, 4, 2)],
        {"return_sequences": False, "unit_axes": (1,)},
    ),
    "gru-unit-axes": lambda rng: ([specs.gru(rng, 3, 5)], {"unit_axes": (0, 4)}),  # (1, B, T, 5, 1)
    "gru-reset-after": lambda rng: ([specs.gru(rng, 3, 5), specs.dense(rng, 5, 3, "softmax")], {}),
    "gru-reset-before": lambda rng: (
        [specs.gru(rng, 3, 5, reset_after=False, activations=("hard_sigmoid_v3", "elu"), hold_masked_output=True)],
        {},
    ),
    "rnn": lambda rng: ([specs.rnn(rng, 3, 4, activation="relu", bias=False), specs.rnn(rng, 4, 4)], {}),
    "activation-parameters": lambda rng: (
        [
            specs.lstm(rng, 3, 4, activations=("hard_sigmoid", "leaky_relu(0.01)", "celu(0.5)")),
            specs.gru(rng, 4, 4, activations=("sigmoid", "soft_shrink(0.2)")),
            specs.rnn(rng, 4, 3, activation="squareplus(1)"),
            lstmrt.Activation("hard_shrink(0.1)"),
        ],
        {},
    ),
    "bidirectional-concat": lambda rng: ([specs.bidirectional("lstm", rng, 3, 4, proj_size=2, peephole=True)], {}),
    "bidirectional-sum": lambda rng: ([specs.bidirectional("gru", rng, 3, 4, "sum", reset_after=False)], {}),
    "bidirectional-mul": lambda rng: ([specs.bidirectional("rnn", rng, 3, 4, "mul", hold_masked_output=True)], {}),
    "bidirectional-ave-last": lambda rng: (
        [specs.bidirectional("lstm", rng, 3, 4, "ave", return_sequences=False), specs.dense(rng, 4, 2)],
        {"return_sequences": False},
    ),
    "dense-softmax": lambda rng: ([specs.dense(rng, 3, 6, "gelu"), specs.dense(rng, 6, 4, "softmax")], {}),
    "activation-first": lambda rng: (
        [lstmrt.Activation("tanh"), specs.gru(rng, 3, 4), lstmrt.Activation("log_softmax")],
        {"input_size": 3},
    ),
    "affine": lambda rng: (
        [lstmrt.Affine(rng.uniform(0.5, 2.0, 3), rng.standard_normal(3)), specs.lstm(rng, 3, 4)],
        {},
    ),
    "prelu": lambda rng: (
        [lstmrt.PReLU(rng.uniform(-1, 1, 3)), specs.lstm(rng, 3, 4), lstmrt.PReLU([0.25, -0.5, 0.0, 2.0])],
        {},
    ),
    **{
        f"layer-norm-{mode}-{'weighted' if weighted else 'plain'}": _layer_norm_case(mode, weighted)
        for mode in lstmrt.LayerNorm.MODES
        for weighted in (True, False)
    },
    "pooling-average": lambda rng: (
        [specs.lstm(rng, 3, 4), lstmrt.GlobalPooling(4, "average"), specs.dense(rng, 4, 2)],
        {"return_sequences": False},
    ),
    "pooling-max": lambda rng: ([specs.gru(rng, 3, 4), lstmrt.GlobalPooling(4, "max")], {"return_sequences": False}),
    "add-from-input": lambda rng: (
        [specs.lstm(rng, 3, 6), specs.dense(rng, 6, 1), lstmrt.Add(1, "input", 2)],
        {"squeeze_output": True},
    ),
    "add-from-a-layer": lambda rng: (
        [specs.lstm(rng, 3, 4), specs.gru(rng, 4, 4), lstmrt.Add(4, 0), specs.dense(rng, 4, 2), lstmrt.Add(2, 1, 1)],
        {},
    ),
    "attention": lambda rng: (
        [specs.lstm(rng, 3, 4), specs.dense(rng, 4, 1), lstmrt.AttentionPooling(4, 0), specs.dense(rng, 4, 2)],
        {"return_sequences": False},
    ),
    "attention-per-feature-of-input": lambda rng: (
        [specs.gru(rng, 3, 2), lstmrt.AttentionPooling(2, "input", 1, per_feature=True)],
        {"return_sequences": False},
    ),
    "embedding": lambda rng: (
        [lstmrt.Embedding(rng.standard_normal((7, 3))), specs.gru(rng, 3, 4), specs.dense(rng, 4, 7, "softmax")],
        {},
    ),
}


def build(case, rng):
    layers, options = CASES[case](rng)
    return lstmrt.Model(layers, **options)


def example(model, rng):
    if isinstance(model.layers[0], lstmrt.Embedding):
        return rng.integers(0, model.layers[0].num_embeddings, (B, T))
    return rng.standard_normal((B, T, model.input_size)).astype(np.float32)


def assert_same_spec(got, want, where="layer"):
    """Same class and attributes; arrays bit-identical (float32). Floats compare as float32: the file stores
    cell_clip and epsilon as float32 (a spec's float64 1e-5 comes back as float32(1e-5))."""
    assert type(got) is type(want), where
    assert vars(got).keys() == vars(want).keys(), where
    for name, value in vars(want).items():
        other = vars(got)[name]
        if isinstance(value, Layer):
            assert_same_spec(other, value, f"{where}.{name}")
        elif isinstance(value, np.ndarray):
            assert other.dtype == value.dtype and np.array_equal(other, value), f"{where}.{name}"
        elif isinstance(value, float):
            assert np.float32(other) == np.float32(value), f"{where}.{name}: {other!r} != {value!r}"
        else:
            assert other == value, f"{where}.{name}: {other!r} != {value!r}"


def assert_same_outputs(got, want, rng):
    """predict bit-identical (NaN where NaN) with and without lengths and a mask; streams step for step."""
    X = example(want, rng)
    mask = rng.random((B, T)) > 0.35
    mask[0, 0] = mask[-1, -1] = False
    lengths = np.array([T, 4, 0])
    for kwargs in ({}, {"lengths": lengths}, {"mask": mask}, {"lengths": lengths, "mask": mask}):
        expected = want.predict(X, **kwargs)
        assert np.array_equal(got.predict(X, **kwargs), expected, equal_nan=True), kwargs
    assert np.any(want.predict(X) != 0)  # a comparison of zeros would prove nothing
    if want.bidirectional:  # bidirectional and go_backwards models cannot stream
        return
    one, other = got.stream(), want.stream()
    assert np.array_equal(np.stack([one.step(x) for x in X[0]]), np.stack([other.step(x) for x in X[0]]))
    assert np.array_equal(got.stream(batch=B).run(X), want.stream(batch=B).run(X), equal_nan=True)


# -- round trips -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("via", ["path", "bytes", "file object"])
@pytest.mark.parametrize("case", list(CASES))
def test_round_trip_is_exact(case, via, tmp_path, rng):
    model = build(case, rng)
    if via == "path":
        path = tmp_path / "model.lstmrt"
        model.save(path)
        data = path.read_bytes()
        loaded = lstmrt.load(path)
    else:
        f = io.BytesIO()
        model.save(f)
        data = f.getvalue()
        loaded = model_file.from_bytes(data) if via == "bytes" else lstmrt.load(io.BytesIO(data))
    assert type(loaded) is lstmrt.Model
    assert repr(loaded) == repr(model)
    assert len(loaded.layers) == len(model.layers)
    for i, (got, want) in enumerate(zip(loaded.layers, model.layers)):
        assert_same_spec(got, want, f"layer {i}")
    for name in ("input_size", "output_size", "return_sequences", "squeeze_output", "unit_axes", "parameter_count"):
        assert getattr(loaded, name) == getattr(model, name), name
    assert_same_outputs(loaded, model, rng)
    assert model_file.to_bytes(loaded) == data  # the writer is deterministic and the reader loses nothing


def test_layout_is_the_documented_one(rng):
    """The header, a record and its arrays where docs/model-file.md puts them (a reader in another language
    follows that page, not this writer)."""
    lstm = specs.lstm(rng, 3, 5, peephole=True, return_sequences=False)
    model = lstmrt.Model([lstm, specs.dense(rng, 5, 2)], return_sequences=False)
    data = model_file.to_bytes(model)
    magic, version, crc, size, layers, record, options_at, options_size = struct.unpack_from("<8sIIQIIQQ", data)
    assert (magic, version, size, layers, record) == (b"\x89LSTMRT\n", 2, len(data), 2, RECORD)
    assert crc == zlib.crc32(data[16:]) and data[48:64] == bytes(16)
    assert options_at >= 64 + 2 * RECORD
    options = json.loads(data[options_at : options_at + options_size])
    assert options == {"class": "Model", "return_sequences": False, "squeeze_output": False}
    kind, input_size, hidden_size, proj_size, _, directions = struct.unpack_from("<6i", data, 64)
    assert (kind, input_size, hidden_size, proj_size, directions) == (0, 3, 5, 0, 1)
    assert struct.unpack_from("<i", data, 64 + 56) == (1,)  # final_only: the LSTM's return_sequences=False
    arrays = [lstm.weight_ih, lstm.weight_hh, lstm.bias_ih, lstm.bias_hh, lstm.peephole, None] + [None] * 6
    for slot, array in enumerate(arrays):
        at, count = struct.unpack_from("<QQ", data, 64 + ARRAYS + 16 * slot)
        if array is None:
            assert (at, count) == (0, 0), slot
            continue
        assert at % 64 == 0 and count == array.size, slot
        assert np.array_equal(np.frombuffer(data, "<f4", count, at), array.ravel()), slot
    dense = model.layers[1]
    at, count = struct.unpack_from("<QQ", data, 64 + RECORD + ARRAYS)
    assert np.array_equal(np.frombuffer(data, "<f4", count, at).reshape(2, 5), dense.weight)
    assert data[64 + RECORD + 80 : 64 + RECORD + ARRAYS] == bytes(16)  # activation_alpha of linear, then zero


def test_activation_parameters_are_in_the_record(rng):
    model = lstmrt.Model([specs.dense(rng, 3, 4, activation="leaky_relu(0.01)"), lstmrt.Activation("celu(-2)")])
    data = model_file.to_bytes(model)
    assert struct.unpack_from("<3f4x", data, 64 + 80) == (np.float32(0.01), 0.0, 0.0)
    assert struct.unpack_from("<3f4x", data, 64 + RECORD + 80) == (-2.0, 0.0, 0.0)
    loaded = model_file.from_bytes(data)
    assert [loaded.layers[0].activation, loaded.layers[1].activation] == ["leaky_relu(0.01)", "celu(-2)"]
    assert_same_outputs(loaded, model, rng)


def as_version_1(data: bytes) -> bytes:
    """The file as version 1 wrote it: 272-byte records without activation_alpha (the options and weights stay
    where they are; the bytes freed after the records are zero)."""
    layers = struct.unpack_from("<I", data, 24)[0]
    records = b"".join(
        data[at : at + 80] + data[at + ARRAYS : at + RECORD] for at in range(64, 64 + layers * RECORD, RECORD)
    )
    old = bytearray(data)
    old[64 : 64 + layers * RECORD] = records.ljust(layers * RECORD, b"\0")
    struct.pack_into("<II", old, 8, 1, 0)
    struct.pack_into("<I", old, 28, 272)
    return with_crc(old)


def test_version_1_files_load(rng):
    model = build("add-from-a-layer", rng)
    loaded = model_file.from_bytes(as_version_1(model_file.to_bytes(model)))
    assert_same_outputs(loaded, model, rng)
    assert model_file.to_bytes(loaded) == model_file.to_bytes(model)


def test_a_misaligned_buffer_loads(rng):
    model = build("add-from-a-layer", rng)
    data = model_file.to_bytes(model)
    view = memoryview(bytearray(b"x" + data))[1:]
    assert np.frombuffer(view, np.uint8).ctypes.data % 4 != 0  # the floats really are misaligned
    loaded = model_file.from_bytes(view)
    assert_same_outputs(loaded, model, rng)
    assert model_file.to_bytes(loaded) == data


@pytest.mark.parametrize("name", ["model.bin", "model.pt", "model.h5", "model.keras", "model"])
def test_detected_by_content_not_extension(name, tmp_path, rng):
    model = build("lstm", rng)
    model.save(str(tmp_path / name))
    loaded, info = load_with_info(tmp_path / name)
    assert info["format"] == "lstmrt model file"
    assert_same_outputs(loaded, model, rng)


def test_an_extension_does_not_make_a_model_file(tmp_path):
    path = tmp_path / "model.lstmrt"
    path.write_bytes(b"not a model\n" * 8)
    with pytest.raises(lstmrt.UnsupportedModelError, match="unrecognized file format") as info:
        lstmrt.load(path)
    assert str(path) in str(info.value)


def test_weights_that_look_like_a_zip_end_record_load(tmp_path):
    """The magic settles the format before zipfile searches the file for an end record (which weights can hold)."""
    end_record = b"PK\x05\x06" + struct.pack("<4H2IH", 0, 0, 1, 1, 46, 0, 0) + bytes(2)
    model = lstmrt.Model([lstmrt.Dense(np.frombuffer(end_record, "<f4").reshape(1, 6))])
    model.save(tmp_path / "model.lstmrt")
    assert model_file.to_bytes(lstmrt.load(tmp_path / "model.lstmrt")) == model_file.to_bytes(model)


# -- real frameworks -------------------------------------------------------------------------------------------------
def torch_lstm_head(torch, tmp_path):
    """nn.LSTM(batch_first) -> nn.Linear, read from a torch.save state dict file."""
    module = torch.nn.ModuleDict(
        {"lstm": torch.nn.LSTM(3, 6, num_layers=2, batch_first=True), "head": torch.nn.Linear(6, 2)}
    ).eval()
    torch.save(module.state_dict(), tmp_path / "model.pt")
    return lstmrt.load(tmp_path / "model.pt", layers=["lstm", "head"]), lambda x: module["head"](module["lstm"](x)[0])


def torch_bidirectional_gru(torch, tmp_path):
    """A live nn.GRU(bidirectional, batch_first), read with from_torch."""
    module = torch.nn.GRU(3, 4, bidirectional=True, batch_first=True).eval()
    return lstmrt.from_torch(module), lambda x: module(x)[0]


@pytest.mark.parametrize("source", [torch_lstm_head, torch_bidirectional_gru], ids=lambda f: f.__name__[6:])
def test_torch_model_through_a_model_file(source, tmp_path, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(int(rng.integers(2**31)))
    model, forward = source(torch, tmp_path)
    model.save(tmp_path / "model.lstmrt")
    loaded = lstmrt.load(tmp_path / "model.lstmrt")
    X = rng.standard_normal((B, T, 3)).astype(np.float32)
    with torch.no_grad():
        expected = forward(torch.from_numpy(X)).numpy()
    assert_close(loaded.predict(X), expected, what="lstmrt file vs torch")
    assert np.array_equal(loaded.predict(X), model.predict(X))


@pytest.fixture(scope="module")
def keras3():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # before TensorFlow is imported by Keras
    keras = pytest.importorskip("keras")
    if int(keras.__version__.split(".")[0]) < 3:
        pytest.skip("keras is not Keras 3")
    return keras


def keras_masking(K, rng):
    """Masking(-1) -> LSTM -> SimpleRNN(go_backwards): mask_value, and the reversed output order of a go_backwards
    layer that returns sequences."""
    L = K.layers
    model = K.Sequential(
        [
            K.Input((T, 3)),
            L.Masking(-1.0),
            L.LSTM(5, return_sequences=True),
            L.SimpleRNN(3, go_backwards=True, return_sequences=True),
            L.Dense(2),
        ]
    )
    X = rng.standard_normal((B, T, 3)).astype(np.float32)
    X[0, 3] = X[1, T - 2 :] = X[2, :2] = -1.0  # a gap, trailing and leading padding
    return model, X, {"mask_value": -1.0, "mask_zero": False, "reverse_output": True}


def keras_mask_zero(K, rng):
    """Embedding(mask_zero=True) -> GRU -> Dense: token id 0 is padding."""
    L = K.layers
    model = K.Sequential([K.Input((T,), dtype="int32"), L.Embedding(8, 4, mask_zero=True), L.GRU(5), L.Dense(3)])
    X = rng.integers(1, 8, (B, T))
    X[0, 3] = 0
    X[1, T - 2 :] = 0
    X[2, :2] = 0
    return model, X.astype(np.int32), {"mask_value": None, "mask_zero": True, "reverse_output": False}


@pytest.mark.parametrize("case", [keras_masking, keras_mask_zero], ids=lambda f: f.__name__[6:])
def test_keras_masking_survives_a_model_file(case, keras3, tmp_path, rng):
    keras3.utils.set_random_seed(int(rng.integers(2**31)))
    net, X, masking = case(keras3, rng)
    for layer in net.layers:  # every weight random, biases included
        layer.set_weights([rng.uniform(-0.7, 0.7, w.shape).astype(np.float32) for w in layer.get_weights()])
    expected = np.asarray(net(X, training=False))
    model = lstmrt.load(net)
    model.save(tmp_path / "model.lstmrt")
    loaded = lstmrt.load(tmp_path / "model.lstmrt")
    assert type(loaded) is type(model) and type(loaded).__name__ == "KerasModel"
    assert {name: getattr(loaded, name) for name in masking} == masking
    assert repr(loaded) == repr(model)
    assert_close(loaded.predict(X), expected, what="lstmrt file vs Keras")
    assert np.array_equal(loaded.predict(X), model.predict(X))
    unmasked = loaded.predict(X, mask=np.ones((B, T), bool))
    assert np.abs(unmasked - expected).max() > 1e-3  # the masked steps matter: a lost mask would show
    assert model_file.to_bytes(loaded) == model_file.to_bytes(model)


# -- refusals --------------------------------------------------------------------------------------------------------
def with_crc(data):
    """The bytes with the header's CRC-32 recomputed, so that the checks after the checksum are reached."""
    data = bytearray(data)
    data[12:16] = struct.pack("<I", zlib.crc32(data[16:]))
    return bytes(data)


def with_options(data, text):
    """The options replaced by `text` (padded with spaces to their length), CRC recomputed."""
    at, size = struct.unpack_from("<QQ", data, 32)
    new = text.encode().ljust(size)
    assert len(new) == size
    return with_crc(data[:at] + new + data[at + size :])


def with_u32(data, at, value):
    data = bytearray(data)
    struct.pack_into("<I", data, at, value)
    return with_crc(data)


def flip_a_weight_byte(data):
    at, _ = struct.unpack_from("<QQ", data, 64 + ARRAYS)  # layer 0's weight_ih
    damaged = bytearray(data)
    damaged[at + 1] ^= 0x10
    return bytes(damaged)


def one_float_short(data):
    """Layer 0's weight_ih reference says one float fewer than the layer's sizes read."""
    at, count = struct.unpack_from("<QQ", data, 64 + ARRAYS)
    data = bytearray(data)
    struct.pack_into("<QQ", data, 64 + ARRAYS, at, count - 1)
    return with_crc(data)


DAMAGE = {
    "truncated": (lambda d: d[:-1], lstmrt.CorruptFileError, r"of \d+ bytes, but its header says \d+: truncated"),
    "cut in the records": (lambda d: d[:400], lstmrt.CorruptFileError, r"of 400 bytes, .* truncated"),
    "an extra byte": (lambda d: d + b"\0", lstmrt.CorruptFileError, r"header says \d+: bytes after its end"),
    "a flipped weight byte": (flip_a_weight_byte, lstmrt.CorruptFileError, r"damaged: checksum [0-9a-f]{8}"),
    "version 3": (
        lambda d: with_u32(d, 8, 3),
        lstmrt.UnsupportedModelError,
        r"format version 3; this lstmrt reads versions 1 to 2",
    ),
    "version 1 records under version 2": (
        lambda d: with_u32(d, 28, 272),
        lstmrt.CorruptFileError,
        r"layer records of 272 bytes; version 2 has 288",
    ),
    "bytes 92 to 95 not zero": (
        lambda d: with_u32(d, 64 + 92, 1),
        lstmrt.CorruptFileError,
        r"layer 0: bytes 92 to 95 of its record are not zero",
    ),
    "a parameter of an activation without one": (
        lambda d: with_u32(d, 64 + RECORD + 80, 0x3F000000),  # 0.5 for the dense layer's linear
        lstmrt.CorruptFileError,
        r"layer 1: activation_alpha\[0\] = 0.5 is not a parameter",
    ),
    "an unknown option": (
        lambda d: with_options(d, '{"class": "Model", "foo": 1}'),
        lstmrt.UnsupportedModelError,
        r"options foo are unknown to this lstmrt",
    ),
    "an unknown class": (
        lambda d: with_options(d, '{"class": "Foo"}'),
        lstmrt.UnsupportedModelError,
        r"model class 'Foo'; this lstmrt knows Model, KerasModel",
    ),
    "options not JSON": (
        lambda d: with_options(d, '{"class": "Model", '),
        lstmrt.CorruptFileError,
        r"its options are not JSON",
    ),
    "options not an object": (
        lambda d: with_options(d, "[1]"),
        lstmrt.CorruptFileError,
        r"its options are list, not a JSON object",
    ),
    "a cut header": (lambda d: d[:40], lstmrt.CorruptFileError, r"of 40 bytes: truncated \(its header alone has 64\)"),
    "an array count mismatch": (
        one_float_short,
        lstmrt.CorruptFileError,
        r"layer 0 direction 0: weight_ih holds 59 floats; the layer's sizes need 60",
    ),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_refusals_name_the_file(damage, tmp_path, rng):
    model = lstmrt.Model([specs.lstm(rng, 3, 5), specs.dense(rng, 5, 2)])
    how, error, message = DAMAGE[damage]
    path = tmp_path / "model.lstmrt"
    path.write_bytes(how(model_file.to_bytes(model)))
    with pytest.raises(error, match=message) as info:
        lstmrt.load(path)
    assert type(info.value) is error and isinstance(info.value, lstmrt.LoadError)  # not UnexpectedContentError
    assert str(path) in str(info.value)


def with_array(data, layer, slot, at, count):
    """Layer `layer`'s array reference `slot` (direction 0) set to (at, count), CRC recomputed."""
    data = bytearray(data)
    struct.pack_into("<QQ", data, 64 + RECORD * layer + ARRAYS + 16 * slot, at, count)
    return with_crc(data)


def test_prelu_slope_refusals(tmp_path, rng):
    """A PReLU's slope (weight_ih, one float per feature) of the wrong length, absent, or joined by an array it does not
    read: each refused, naming the array."""
    data = model_file.to_bytes(lstmrt.Model([lstmrt.PReLU(rng.uniform(-1, 1, 3)), specs.lstm(rng, 3, 4)]))
    slope_at, count = struct.unpack_from("<QQ", data, 64 + ARRAYS)
    assert count == 3
    damaged = {
        "short": (with_array(data, 0, 0, slope_at, 2), r"layer 0 direction 0: weight_ih holds 2 floats; .* need 3"),
        "long": (with_array(data, 0, 0, slope_at, 4), r"layer 0 direction 0: weight_ih holds 4 floats; .* need 3"),
        "absent": (with_array(data, 0, 0, 0, 0), r"layer 0: prelu slope \(weight_ih\) is NULL"),
        "with a shift": (
            with_array(data, 0, 2, slope_at, 3),
            r"layer 0 direction 0: bias_ih holds 3 floats; .* need 0",
        ),
    }
    for name, (bad, message) in damaged.items():
        path = tmp_path / f"{name}.lstmrt"
        path.write_bytes(bad)
        with pytest.raises(lstmrt.CorruptFileError, match=message):
            lstmrt.load(path)


@pytest.mark.parametrize("option", [{"key": "model"}, {"prefix": "lstm"}, {"layers": ["lstm", "head"]}])
def test_load_arguments_do_not_apply(option, tmp_path, rng):
    build("lstm", rng).save(tmp_path / "model.lstmrt")
    (name,) = option
    with pytest.raises(ValueError, match=rf"^{name}= does not apply to lstmrt model files") as info:
        lstmrt.load(tmp_path / "model.lstmrt", **option)
    assert not isinstance(info.value, lstmrt.LoadError)  # the caller's argument, not the file, is at fault


# Every field of every record, set to hostile values with the CRC recomputed: the reader raises a LoadError (never
# an IndexError or the like) or gives a model that runs.
FIELDS = (
    "kind input_size hidden_size proj_size num_embeddings num_directions merge_mode activations[0] activations[1] "
    "activations[2] cell_clip linear_before_reset hold_masked_output go_backwards final_only epsilon norm_mode "
    "pool_mode add_from add_offset activation_alpha[0] activation_alpha[1] activation_alpha[2]"
).split()
HOSTILE_INTS = (-(2**31), -1, 0, 1, 2, 3, 5, 9, 100, 2**31 - 1)
HOSTILE_FLOATS = (float("nan"), float("inf"), -1.0, 0.0, 1e-30, 1e30)


@pytest.mark.parametrize("field", FIELDS)
def test_hostile_record_fields(field, rng):
    models = [
        lstmrt.Model(
            [
                specs.lstm(rng, 3, 4, proj_size=2, peephole=True, cell_clip=3.0),
                specs.dense(rng, 2, 2, activation="leaky_relu(0.01)"),
            ]
        ),
        lstmrt.Model([specs.bidirectional("gru", rng, 3, 4, "sum"), lstmrt.LayerNorm(4), lstmrt.Add(4, 0)]),
        lstmrt.Model(
            [
                lstmrt.Embedding(rng.standard_normal((5, 3))),
                specs.rnn(rng, 3, 2),
                lstmrt.GlobalPooling(2, "max"),
                lstmrt.Affine(np.ones(2), np.zeros(2)),
                lstmrt.PReLU(np.full(2, 0.5)),
                lstmrt.Activation("softmax"),
            ]
        ),
    ]
    index = FIELDS.index(field)
    floats = field in ("cell_clip", "epsilon") or field.startswith("activation_alpha")
    loaded = 0
    for model in models:
        data = model_file.to_bytes(model)
        for layer in range(len(model.layers)):
            for value in HOSTILE_FLOATS if floats else HOSTILE_INTS:
                damaged = bytearray(data)
                struct.pack_into("<f" if floats else "<i", damaged, 64 + RECORD * layer + 4 * index, value)
                try:
                    got = model_file.from_bytes(with_crc(damaged))
                except lstmrt.LoadError as exc:
                    assert not isinstance(exc, lstmrt.UnexpectedContentError), exc
                    continue
                got.predict(example(got, rng)[:1])
                loaded += 1
    assert loaded > 0  # the values the writer itself writes (0, 1) load


@pytest.mark.parametrize(
    "source, words",
    [
        ("content", "cannot load a bytes holding a file's content: lstmrt.load takes a file path"),
        ("bytearray", "cannot load a bytearray holding a file's content"),
        ("zip file object", "cannot load the BytesIO: from a file object lstmrt reads its own model files"),
        ("text file object", "cannot load the StringIO: it reads str, not bytes"),
    ],
)
def test_load_of_content_or_other_file_objects_is_the_callers_type_error(source, words, rng):
    """Model.save writes to a file object, so load reads one back; a model file's bytes are not a path (a probe
    found them named in a 2 KB CorruptFileError), and other formats are read by name."""
    f = io.BytesIO()
    build("lstm", rng).save(f)
    given = {
        "content": f.getvalue(),
        "bytearray": bytearray(f.getvalue()),
        "zip file object": io.BytesIO(b"PK\x03\x04" + bytes(60)),
        "text file object": io.StringIO("LSTMRT"),
    }[source]
    with pytest.raises(TypeError, match=re.escape(words)):
        lstmrt.load(given)


def test_a_path_given_to_from_bytes_is_the_callers_type_error():
    with pytest.raises(TypeError, match="bytes-like"):
        model_file.from_bytes("model.lstmrt")


def test_unit_axes_shape_predict_and_only_it(rng):
    """unit_axes inserts axes of size 1 into predict's result for a batch (an ONNX graph's output shape), not for a
    single sequence nor a stream's step; a file records them only when there are some (older files stay byte for
    byte what they were); bad positions are refused, and in a file they are damage."""
    layers = [specs.lstm(rng, 3, 4, return_sequences=False), specs.dense(rng, 4, 2)]
    plain = lstmrt.Model(layers, return_sequences=False)
    kept = lstmrt.Model(layers, return_sequences=False, unit_axes=(1, 3))
    X = rng.standard_normal((B, T, 3)).astype(np.float32)
    assert kept.predict(X).shape == (B, 1, 2, 1)
    assert np.array_equal(kept.predict(X)[:, 0, :, 0], plain.predict(X))
    assert kept.predict(X[0]).shape == (2,) and kept.stream().step(X[0, 0]).shape == (2,)
    assert b"unit_axes" not in model_file.to_bytes(plain) and b'"unit_axes": [1, 3]' in model_file.to_bytes(kept)
    for bad in ((1, 1), (2, 1), (-1,), (4,), (True,), ("1",)):
        with pytest.raises(ValueError, match="unit_axes must be ascending positions"):
            lstmrt.Model(layers, return_sequences=False, unit_axes=bad)
    damaged = with_crc(model_file.to_bytes(kept).replace(b'"unit_axes": [1, 3]', b'"unit_axes": [3, 1]'))
    with pytest.raises(lstmrt.CorruptFileError, match="unit_axes must be ascending"):
        model_file.from_bytes(damaged)
