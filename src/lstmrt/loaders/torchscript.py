"""TorchScript archives (torch.jit.save of a scripted or traced module), read as data without torch: data.pkl
gives the module tree (records) with parameters by name; the code/ files give each class's constants (`name :
Final[T] = value`) and, for traced modules that have none, the options visible in the one op their forward
calls (torch.elu(x, 0.5), torch.rnn_relu(...)). The code is parsed with `ast`, never executed."""

from __future__ import annotations

import ast
import functools
import re
import zipfile

import numpy as np

from ..errors import LoadError, UnsupportedModelError
from .safety import MAX_TEXT_BYTES, open_zip, read_member
from .torch_activations import IN_PLACE_OPS, SIGNATURES
from .torch_file import archive_root, unpickle_from_zip
from .torch_tree import is_module, module_parts
from .torchscript_forward import ForwardOrder, dotted_name


# What parsing or evaluating code from a file may raise when the code is damaged: the class's options are then
# reported missing, as for code that does not parse. (Deep nesting is a RecursionError or, in the parser, a
# MemoryError; null bytes a ValueError.)
_BAD_CODE = (SyntaxError, ValueError, TypeError, RecursionError, MemoryError)


class ScriptClass:
    """One class of the archive's code: its Final constants and its forward() definition."""

    def __init__(self, node: ast.ClassDef):
        self.finals, self.forward, self.methods = {}, None, {}
        for item in node.body:
            if (
                isinstance(item, ast.AnnAssign)
                and isinstance(item.target, ast.Name)
                and item.value is not None
                and _mentions_final(item.annotation)
            ):
                try:
                    self.finals[item.target.id] = ast.literal_eval(item.value)
                except _BAD_CODE:  # e.g. a tensor constant (CONSTANTS.c0): not an option lstmrt reads
                    pass
            elif isinstance(item, ast.FunctionDef):
                self.methods[item.name] = item  # forward() may call the others (init_hidden() and the like)
                if item.name == "forward":
                    self.forward = item


def _mentions_final(annotation) -> bool:
    try:
        return "Final" in ast.unparse(annotation)
    except _BAD_CODE:
        return False


def read_classes(zf: zipfile.ZipFile, root: str, source="the archive") -> dict:
    """qualified name (as data.pkl spells it, e.g. __torch__.torch.nn.modules.rnn.LSTM) -> ScriptClass."""
    classes = {}
    for name in zf.namelist():
        if not (name.startswith(root + "code/") and name.endswith(".py")):
            continue
        module = name[len(root + "code/") : -len(".py")].replace("/", ".")
        try:
            tree = ast.parse(read_member(zf, name, MAX_TEXT_BYTES, source).decode("utf-8"))
        except (UnicodeDecodeError, *_BAD_CODE):  # options from this file are then reported missing
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                classes[f"{module}.{node.name}"] = ScriptClass(node)
    return classes


def read_torchscript(path):
    """(root module record, ForwardOrder) of a TorchScript archive."""
    with open_zip(path) as zf:
        root = archive_root(zf.namelist())
        if root is None:
            raise UnsupportedModelError(
                f"{path}: TorchScript archive without data.pkl (saved by PyTorch < 1.4?) is not supported"
            )
        classes = read_classes(zf, root, path)
        record = unpickle_from_zip(zf, root, "data.pkl", path)
        if not is_module(record):
            raise UnsupportedModelError(f"{path}: the archive's data.pkl holds a {type(record).__name__}, not a module")
        constants = functools.cache(lambda: _constants(zf, root, path))
        _attach_options(record, classes, set(), constants)
        traced = constants()
    return record, ForwardOrder(classes, traced)


def _constants(zf, root: str, path) -> tuple:
    """The tensors traced code names CONSTANTS.c0, c1, ... (an initial state, a number the code computes with);
    none when the archive has none or lstmrt cannot read them (such a state or number is then refused)."""
    if f"{root}constants.pkl" not in zf.namelist():
        return ()
    try:
        constants = unpickle_from_zip(zf, root, "constants.pkl", path, storages="constants")
    except LoadError:
        return ()
    return constants if isinstance(constants, tuple) else ()


def _attach_options(root, classes: dict, seen: set, constants) -> None:
    """Each record's options from its class's code. constants: a function giving the archive's tensor constants."""
    todo = [root]  # a walk without recursion: a file may nest modules arbitrarily deep
    while todo:
        record = todo.pop()
        if id(record) in seen:
            continue
        seen.add(id(record))
        cls = classes.get(record.qualname)
        attrs = record.attrs
        if cls is not None:
            for key, value in cls.finals.items():
                attrs.setdefault(key, value)
            if not cls.finals and cls.forward is not None:
                for key, value in _traced_options(cls.forward).items():
                    if key == "initial_state" and _zero_constant(value, constants()):
                        continue  # zeros captured by the trace (a stored zero state): what lstmrt starts from
                    attrs.setdefault(key, value)
        todo += module_parts(record)[1].values()


def _zero_constant(code: str, constants: tuple) -> bool:
    """`code` names a tensor constant of the archive (CONSTANTS.c<i>) whose values are all zero."""
    match = re.fullmatch(r"CONSTANTS\.c(\d+)", code)
    if match is None or int(match.group(1)) >= len(constants):
        return False
    value = constants[int(match.group(1))]
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and not value.any()


def _literal(node, default=None):
    try:
        return ast.literal_eval(node)
    except _BAD_CODE:
        return default


# torch op called by a traced module's forward -> {option: positional index (or keyword name)}
_OP_OPTIONS = {
    "torch.elu": {"alpha": 1},
    "torch.elu_": {"alpha": 1},  # nn.ELU(inplace=True): traced code calls the in-place op
    "torch.leaky_relu": {"negative_slope": 1},
    "torch.leaky_relu_": {"negative_slope": 1},
    "torch.celu": {"alpha": 1},
    "torch.celu_": {"alpha": 1},
    "torch.hardshrink": {"lambd": 1},
    "torch.softshrink": {"lambd": 1},
    "torch.hardtanh": {"min_val": 1, "max_val": 2},
    "torch.hardtanh_": {"min_val": 1, "max_val": 2},
    "torch.softplus": {"beta": 1, "threshold": 2},
    "torch.softmax": {"dim": 1},
    "torch.log_softmax": {"dim": 1},
    "torch.gelu": {"approximate": "approximate"},
    "torch.embedding_renorm_": {"max_norm": 2},
    "torch.layer_norm": {"normalized_shape": 1, "eps": 4},
    "torch.rms_norm": {"normalized_shape": 1, "eps": 3},
    "torch.batch_norm": {"batch_statistics": 5, "eps": 7},  # (input, weight, bias, mean, var, training, momentum, eps)
    "torch.flatten": {"start_dim": 1, "end_dim": 2},
}
# What a traced call leaving an option out means: torch's default (traced nn.LeakyReLU() is torch.leaky_relu(x)).
_OP_DEFAULTS = {
    "torch.gelu": {"approximate": "none"},
    "torch.flatten": {"start_dim": 0, "end_dim": -1},
    **{
        f"torch.{name}": {k: v for k, v in options if k != "inplace"}
        for op, options in SIGNATURES.items()
        for name in (op, f"{op}_")
        if name in (*SIGNATURES, *IN_PLACE_OPS)
    },
}


def _traced_options(forward: ast.FunctionDef) -> dict:
    """Options of a traced torch.nn module, read off the op its forward calls."""
    found = {}
    for node in ast.walk(forward):
        if not isinstance(node, ast.Call):
            continue
        op = dotted_name(node.func)
        if op in ("torch.rnn_relu", "torch.rnn_relu_cell", "torch.rnn_tanh", "torch.rnn_tanh_cell"):
            found.setdefault("nonlinearity", op.split("_")[1])
        for option, where in _OP_OPTIONS.get(op, {}).items():
            if isinstance(where, int) and where < len(node.args):
                found.setdefault(option, _literal(node.args[where]))
            for kw in node.keywords:
                if kw.arg == where:
                    found.setdefault(option, _literal(kw.value))
        for option, value in _OP_DEFAULTS.get(op, {}).items():
            found.setdefault(option, value)
    found.update(_traced_recurrent(forward))
    return found


_RECURRENT_OPS = ("torch.lstm", "torch.gru", "torch.rnn_tanh", "torch.rnn_relu")


def _captured_state(hx, assigned: dict, forward: ast.FunctionDef):
    """The code of an initial state (or of one of its tensors) that is neither torch.zeros nor an argument of the
    traced forward (which the caller's code passes, and the caller's reader checks); None when there is none."""
    arguments = {a.arg for a in forward.args.args}
    parts = hx.elts if isinstance(hx, (ast.List, ast.Tuple)) else [hx]
    if isinstance(hx, ast.Name) and isinstance(assigned.get(hx.id), (ast.List, ast.Tuple)):
        parts = assigned[hx.id].elts
    for part in parts:
        value = assigned.get(part.id, part) if isinstance(part, ast.Name) else part
        if isinstance(part, ast.Name) and part.id in arguments and part.id not in assigned:
            continue
        if isinstance(value, ast.Call) and dotted_name(value.func) == "torch.zeros":
            continue
        return ast.unparse(value)
    return None


def _traced_recurrent(forward: ast.FunctionDef) -> dict:
    """batch_first, and which of its results (output, h_n[, c_n]) a traced nn.LSTM/GRU/RNN returns: tracing keeps
    only what the caller used, so the caller's code alone does not say whether it indexes the output or h_n.
    The op's padded form is (input, hx, params, has_biases, num_layers, dropout, train, bidirectional,
    batch_first); the packed form has the batch sizes second and no batch_first. Also the initial state when it is
    neither zeros nor the caller's (initial_state: its code, e.g. a tensor the trace captured, CONSTANTS.c0)."""
    results, found, assigned = None, {}, {}
    for stmt in forward.body:
        call = getattr(stmt, "value", None)
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            assigned[stmt.targets[0].id] = call
        if isinstance(stmt, ast.Assign) and isinstance(call, ast.Call) and dotted_name(call.func) in _RECURRENT_OPS:
            padded = len(call.args) == 9 and isinstance(_literal(call.args[3]), bool)
            if padded:
                batch_first = _literal(call.args[8])
                if isinstance(batch_first, bool):
                    found["batch_first"] = batch_first
            if len(call.args) > 2:
                state = _captured_state(call.args[1 if padded else 2], assigned, forward)
                if state is not None:
                    found["initial_state"] = state
            target = stmt.targets[0]
            if isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
                results = [t.id for t in target.elts]
        elif isinstance(stmt, ast.Return) and results is not None:
            returned = stmt.value.elts if isinstance(stmt.value, ast.Tuple) else [stmt.value]
            names = [r.id if isinstance(r, ast.Name) else None for r in returned]
            if all(n in results for n in names):
                found["traced_returns"] = tuple(results.index(n) for n in names)
    return found
