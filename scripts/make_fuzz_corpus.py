#!/usr/bin/env python3
"""Write the fuzzing seed corpus tests/fuzz_corpus/: one small valid file per format lstmrt.load reads, made by
the real frameworks (torch, Keras 3, tf_keras) and lstmrt's own model files saved from them, and MANIFEST.json
describing them.

    python scripts/make_fuzz_corpus.py                # rewrite tests/fuzz_corpus/
    python scripts/make_fuzz_corpus.py --check        # write to a temporary directory and load every file
    python scripts/make_fuzz_corpus.py --only onnx    # (re)write one group of files, keep the others as they are

Models are tiny (sizes 2-5) so the corpus stays well under 1 MB and a mutated file loads in milliseconds. Keras
files carry a save date, and TorchScript and legacy torch files differ between torch versions, so regenerated
files differ byte-wise from the committed ones; their content does not. --only adds a group (its manifest entries
replaced, the others kept in place) without rewriting the rest. Every file must load with lstmrt before it is kept
(the fuzzer mutates *valid* files)."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "tests" / "fuzz_corpus"
SEED = 20261121


def last_step_prelu(cell: str):
    """torch.nn.<cell> (3 -> 4), a Linear on its last step and a per-feature nn.PReLU (which needs (batch, features)
    data), with distinct slopes, one negative: nn.PReLU starts at 0.25 for every feature."""
    import torch
    from torch import nn

    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = getattr(nn, cell)(3, 4, batch_first=True)
            self.head = nn.Linear(4, 3)
            self.act = nn.PReLU(3)

        def forward(self, x):
            return self.act(self.head(self.rnn(x)[0][:, -1]))

    model = LastStep().eval()
    with torch.no_grad():
        model.act.weight.copy_(torch.tensor([0.3, -0.7, 1.4]))
    return model


def attention_model():
    """torch.nn.GRU (3 -> 4), softmax attention over time with a Linear -> Tanh -> Linear scorer, a Linear head."""
    import torch
    from torch import nn

    class Attended(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4, batch_first=True)
            self.score = nn.Sequential(nn.Linear(4, 3), nn.Tanh(), nn.Linear(3, 1))
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            out = self.rnn(x)[0]
            return self.head(torch.sum(torch.softmax(self.score(out), dim=1) * out, dim=1))

    torch.manual_seed(SEED)
    return Attended().eval()


def torch_files(out: Path) -> list:
    import torch
    from safetensors.torch import save_file
    from torch import nn

    class Net(nn.Module):  # pickled by torch.save(model) as a user-defined class (__main__.Net): a record
        def __init__(self):
            super().__init__()
            self.rnn = nn.GRU(3, 4, batch_first=True)
            self.head = nn.Linear(4, 2)

        def forward(self, x):
            return torch.tanh(self.head(self.rnn(x)[0]))

    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(7, 3)
            self.lstm = nn.LSTM(3, 4, batch_first=True)
            self.decoder = nn.Linear(4, 7)

        def forward(self, tokens):
            return self.decoder(self.lstm(self.embedding(tokens))[0])

    torch.manual_seed(SEED)
    net, tokens, last_step = Net().eval(), Tokens().eval(), last_step_prelu("GRU")
    stack = nn.Sequential(nn.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, batch_first=True)).eval()
    mlp = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2), nn.Softmax(dim=-1)).eval()
    activations = nn.Sequential(
        nn.Linear(3, 4), nn.PReLU(init=-0.2), nn.Linear(4, 4), nn.LeakyReLU(0.1), nn.Linear(4, 2), nn.CELU(0.5)
    ).eval()
    legacy = {"_use_new_zipfile_serialization": False}
    files = []

    def add(name, fmt, write, **load_args):
        write(out / name)
        files.append({"file": name, "format": fmt, "load": load_args})

    # a state dict holds no forward(): layers= states it (without, lstmrt warns and would drop net's tanh)
    net_order, tokens_order = ["rnn", "head", "tanh"], ["embedding", "lstm", "decoder"]
    add("state_dict.pt", "torch-zip", lambda p: torch.save(net.state_dict(), p), layers=net_order)
    add("state_dict_legacy.pt", "torch-legacy", lambda p: torch.save(net.state_dict(), p, **legacy), layers=net_order)
    add(
        "checkpoint.pt",
        "torch-zip",
        lambda p: torch.save({"epoch": 3, "model_state": tokens.state_dict(), "loss": 0.25, "tag": "best"}, p),
        layers=tokens_order,
    )
    add("whole_module.pt", "torch-zip", lambda p: torch.save(stack, p))
    add("whole_module_legacy.pt", "torch-legacy", lambda p: torch.save(mlp, p, **legacy))
    add("whole_module_activations.pt", "torch-zip", lambda p: torch.save(activations, p))
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; its archives are still a format we read
        warnings.simplefilter("ignore")
        add("scripted.pt", "torchscript", lambda p: torch.jit.script(net).save(str(p)))
        add("traced.pt", "torchscript", lambda p: torch.jit.trace(mlp, torch.zeros(1, 2, 3)).save(str(p)))
        add("scripted_prelu.pt", "torchscript", lambda p: torch.jit.script(last_step).save(str(p)))
    add("state_dict.safetensors", "safetensors", lambda p: save_file(net.state_dict(), str(p)), layers=net_order)
    add(
        "tokens.safetensors",
        "safetensors",
        lambda p: save_file({f"{k}": v for k, v in tokens.state_dict().items()}, str(p)),
        layers=tokens_order,
    )
    return files


def keras_files(out: Path) -> list:
    import keras
    import numpy as np
    import tf_keras

    files = []

    def build(K, bidirectional):
        K.utils.set_random_seed(SEED)
        L = K.layers
        rnn = (
            L.Bidirectional(L.GRU(3, return_sequences=True), merge_mode="sum")
            if bidirectional
            else L.LSTM(4, return_sequences=True)
        )
        return K.Sequential([K.Input((5, 3)), L.Masking(0.0), rnn, L.Dense(2, activation="tanh")])

    def build_prelu(K):
        """A slope per feature (shared over time), and activations that take a parameter."""
        K.utils.set_random_seed(SEED)
        L = K.layers
        prelu = L.PReLU(shared_axes=[1])
        model = K.Sequential(
            [K.Input((5, 3)), L.LSTM(4, return_sequences=True), prelu, L.Dense(3, activation="leaky_relu")]
            + [L.Dense(2, activation="squareplus")]
        )
        prelu.set_weights([np.array([[0.3, -0.7, 1.4, 0.1]], np.float32)])  # its initializer is zeros
        return model

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        k3 = build(keras, bidirectional=False)
        k3.save(out / "keras3.keras")
        files.append({"file": "keras3.keras", "format": "keras", "load": {}})
        k3.save(out / "keras3.h5")
        files.append({"file": "keras3.h5", "format": "keras", "load": {}})
        k3.save_weights(out / "keras3.weights.h5")
        (out / "keras3.json").write_text(k3.to_json())
        files.append({"file": "keras3.weights.h5", "format": "keras", "load": {"layers": "keras3.json"}})
        prelu = build_prelu(keras)
        prelu.save(out / "keras3_prelu.keras")
        files.append({"file": "keras3_prelu.keras", "format": "keras", "load": {}})
        k2 = build(tf_keras, bidirectional=True)
        k2.save(out / "tf_keras.h5")
        files.append({"file": "tf_keras.h5", "format": "keras", "load": {}})
        k2.save_weights(str(out / "tf_keras_weights.h5"))
        (out / "tf_keras_weights.json").write_text(k2.to_json())
        files.append({"file": "tf_keras_weights.h5", "format": "keras", "load": {"layers": "tf_keras_weights.json"}})
    return files


def tf2onnx_bidirectional(path: Path) -> dict:
    """A Keras 3 Bidirectional stack converted by tf2onnx: sum-merged sequences, a Dense on them, a last step."""
    import keras
    import numpy as np
    import tensorflow as tf
    import tf2onnx

    L = keras.layers
    inp = keras.Input((None, 3))
    x = L.Bidirectional(L.LSTM(4, return_sequences=True), merge_mode="sum")(inp)
    x = L.Bidirectional(L.LSTM(3))(L.Dense(3, activation="tanh")(x))
    model = keras.Model(inp, L.Dense(2)(x))
    rng = np.random.default_rng(SEED)
    for weight in model.weights:
        weight.assign(0.5 * rng.standard_normal(weight.shape).astype(np.float32))
    signature = (tf.TensorSpec((None, None, 3), tf.float32, name="x"),)
    tf2onnx.convert.from_keras(model, input_signature=signature, opset=17, output_path=str(path))
    return {"file": path.name, "format": "onnx", "load": {}}


def onnx_files(out: Path) -> list:
    """ONNX files: four torch.onnx.export (the TorchScript-based exporter, dynamo=False) with dynamic batch and
    time axes, a bidirectional LSTM stack, a token model, a last-step model with a per-feature PReLU and a GRU with
    attention pooling; a Keras 3
    model converted by tf2onnx (each direction sliced out of Y and merged again, a Dense on a sequence through
    merged rows, last steps ending at INT32_MAX); and a graph built with onnx.helper holding what no exporter
    writes: an LSTM node with peepholes, clip and non-default activations, a MatMul + Add head."""
    import numpy as np
    import onnx
    import torch
    from onnx import TensorProto, helper, numpy_helper
    from torch import nn

    class Stack(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
            self.head = nn.Linear(8, 2)

        def forward(self, x):
            return self.head(self.lstm(x)[0])

    class Tokens(nn.Module):
        def __init__(self):
            super().__init__()
            self.embedding = nn.Embedding(7, 3)
            self.gru = nn.GRU(3, 4, batch_first=True)
            self.decoder = nn.Linear(4, 7)

        def forward(self, tokens):
            return self.decoder(self.gru(self.embedding(tokens))[0])

    files = []

    def export(name, module, example, y_axes=("batch", "time")):
        axes = {"x": {0: "batch", 1: "time"}, "y": dict(enumerate(y_axes))}
        with warnings.catch_warnings():  # the TorchScript-based exporter's deprecation and tracer warnings
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module.eval(),
                (example,),
                str(out / name),
                dynamo=False,
                input_names=["x"],
                output_names=["y"],
                dynamic_axes=axes,
            )
        files.append({"file": name, "format": "onnx", "load": {}})

    torch.manual_seed(SEED)
    export("lstm_stack.onnx", Stack(), torch.zeros(2, 5, 3))
    export("tokens.onnx", Tokens(), torch.zeros(2, 5, dtype=torch.int64))
    export("prelu_last_step.onnx", last_step_prelu("LSTM"), torch.zeros(2, 5, 3), y_axes=("batch",))
    export("attention.onnx", attention_model(), torch.zeros(2, 5, 3), y_axes=("batch",))
    files.append(tf2onnx_bidirectional(out / "tf2onnx_keras3.onnx"))

    H, F_IN, F_OUT = 3, 2, 2
    rng = np.random.default_rng(SEED)

    def rand(*shape):
        return (0.5 * rng.standard_normal(shape)).astype(np.float32)

    inits = {
        "W": rand(1, 4 * H, F_IN),
        "R": rand(1, 4 * H, H),
        "B": rand(1, 8 * H),
        "P": rand(1, 3 * H),
        "axis": np.array([1], np.int64),
        "head_W": rand(H, F_OUT),
        "head_b": rand(F_OUT),
    }
    nodes = [
        helper.make_node(
            "LSTM",
            ["x", "W", "R", "B", "", "", "", "P"],
            ["Y", "Y_h"],
            name="lstm",
            hidden_size=H,
            clip=0.5,
            activations=["HardSigmoid", "Tanh", "Softsign"],
            activation_alpha=[0.2],
            activation_beta=[0.5],
        ),
        helper.make_node("Squeeze", ["Y", "axis"], ["seq"]),
        helper.make_node("MatMul", ["seq", "head_W"], ["xW"], name="head_matmul"),
        helper.make_node("Add", ["xW", "head_b"], ["y"], name="head_add"),
    ]
    graph = helper.make_graph(
        nodes,
        "peephole",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["time", "batch", F_IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["time", "batch", F_OUT])],
        [numpy_helper.from_array(value, name) for name, value in inits.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(out / "lstm_peephole.onnx"))
    files.append({"file": "lstm_peephole.onnx", "format": "onnx", "load": {}})
    return files


def model_files(out: Path, lstmrt) -> list:
    """lstmrt's own model files, saved from corpus files: a bidirectional projected stack, a token model, a
    masked Keras model (a KerasModel, whose options the file carries) and a Keras model with a per-feature PReLU;
    and one saved from a live torch module with attention pooling (the model of attention.onnx)."""
    files = []
    for name, source, args in (
        ("stack.lstmrt", "whole_module.pt", {}),
        ("tokens.lstmrt", "checkpoint.pt", {"layers": ["embedding", "lstm", "decoder"]}),
        ("keras3.lstmrt", "keras3.keras", {}),
        ("keras3_prelu.lstmrt", "keras3_prelu.keras", {}),
    ):
        lstmrt.load(out / source, **args).save(out / name)
        files.append({"file": name, "format": "lstmrt", "load": {}})
    lstmrt.load(attention_model()).save(out / "attention.lstmrt")  # read from its forward()
    files.append({"file": "attention.lstmrt", "format": "lstmrt", "load": {}})
    return files


def load_args(entry: dict, directory: Path) -> dict:
    """The keyword arguments for lstmrt.load of a manifest entry (a layers= .json file becomes its dict: the
    architecture of a Keras weights-only file)."""
    args = dict(entry["load"])
    layers = args.get("layers")
    if isinstance(layers, str) and layers.endswith(".json"):
        args["layers"] = json.loads((directory / layers).read_text())
    return args


def write_group(group: str, out: Path, lstmrt) -> list:
    """The manifest entries of one group of files, written to `out` (lstmrt model files are saved from the
    torch and Keras files already there)."""
    if group == "lstmrt":
        return model_files(out, lstmrt)
    return {"torch": torch_files, "keras": keras_files, "onnx": onnx_files}[group](out)


GROUPS = ("torch", "keras", "lstmrt", "onnx")  # in manifest order


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="write to a temporary directory and only check")
    ap.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        help="write only this group of files (repeatable); the other files and their manifest entries are kept",
    )
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT / "src"))
    import lstmrt

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) if args.check else CORPUS
        out.mkdir(parents=True, exist_ok=True)
        if args.only:  # start from the committed corpus: a copy of it when checking
            kept = json.loads((CORPUS / "MANIFEST.json").read_text())["files"]
            if args.check:
                for path in CORPUS.iterdir():
                    shutil.copyfile(path, out / path.name)
        else:
            kept = []
            for old in out.iterdir() if not args.check else ():
                old.unlink()
        files = []
        for group in (g for g in GROUPS if not args.only or g in args.only):
            files += write_group(group, out, lstmrt)
        # a rewritten file keeps its place in the manifest, a new one goes last
        written = {entry["file"]: entry for entry in files}
        known = {entry["file"] for entry in kept}
        files = [written.get(e["file"], e) for e in kept] + [e for e in files if e["file"] not in known]
        for entry in files:
            model = lstmrt.load(out / entry["file"], **load_args(entry, out))
            entry["input_size"], entry["output_size"] = model.input_size, model.output_size
        (out / "MANIFEST.json").write_text(json.dumps({"seed": SEED, "files": files}, indent=1) + "\n")
        total = sum(p.stat().st_size for p in out.iterdir())
        print(f"{len(files)} files, {total / 1024:.0f} KiB in {out}")
        if total >= 1 << 20:
            print("corpus is 1 MB or more: make the models smaller", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
