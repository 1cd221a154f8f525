"""The forward order of a user-defined module in a TorchScript archive, read from its forward() code as data:
submodule calls, tuple indexing of a recurrent module's (output, state), element-wise torch activations, a zero
initial state built in forward() (or in a method it calls), taking each sequence's last step (torchscript_steps.py),
pooling over time (torchscript_pooling.py), softmax attention over time (torchscript_attention.py), dropping a
one-feature output's axis (torchscript_shapes.py) and adding an earlier point of the flow (skip connections,
torchscript_residual.py).
Anything else (other arithmetic, other slicing, loops, branches) cannot be followed: that is an error asking for
layers=, because the network is then not a plain chain lstmrt can reproduce."""

from __future__ import annotations

import ast
import re

import numpy as np

from ..errors import ArchitectureError
from . import torchscript_arith as arith
from . import torchscript_attention as attention
from . import torchscript_packing as packing
from . import torchscript_pooling as pooling
from . import torchscript_residual as residual
from . import torchscript_shapes as shapes
from . import torchscript_steps as steps
from .clip_ops import clip_plan
from .torch_activations import IN_PLACE_OPS, SIGNATURES, functional_activation, hardtanh
from .torch_tree import (
    CELLS,
    NO_OP_CALLS,
    PRELU_CALL,
    TORCH_FLOAT32,
    ZERO_STATE_ENTRY,
    class_name,
    module_parts,
    submodule,
)
from .torchscript_steps import Unfollowable as _Unfollowable

_SIMPLE = {
    "relu": "relu",
    "tanh": "tanh",
    "sigmoid": "sigmoid",
    "selu": "selu",
    "silu": "silu",
    "mish": "mish",
    "hardswish": "hard_silu",
    "hardsigmoid": "hard_sigmoid_v3",
    "softsign": "softsign",
    "relu6": "relu6",
    "tanhshrink": "tanh_shrink",
    "log_sigmoid": "log_sigmoid",
}
# torch's in-place forms of those (traced F.relu(x, inplace=True) is torch.relu_(x); y.tanh_())
_SIMPLE_IN_PLACE = tuple(f"{op}_" for op in _SIMPLE)
# torch's clips of the data (x.clamp(0, 20), torch.clip(x, min=-1)) -> their bound options, in order
_CLAMPS = {"clamp": ("min", "max"), "clip": ("min", "max"), "clamp_min": ("min",), "clamp_max": ("max",)}
_IN_PLACE = IN_PLACE_OPS + tuple(f"{op}_" for op in _CLAMPS)
# Where torch.nn.functional's `inplace` flag sits among a call's arguments (the input is 0), for the ops of _SIMPLE
# and elu; SIGNATURES names it for the others.
_INPLACE_AT = {"relu": 1, "selu": 1, "silu": 1, "mish": 1, "hardswish": 1, "hardsigmoid": 1, "relu6": 1, "elu": 2}


def _clip_items(plan: list):
    """A clip's activations (clip_ops) as the walker returns an activation: its name, or items for several."""
    return plan[0] if len(plan) == 1 else tuple(("activation", name) for name in plan) or "linear"


def dotted_name(node) -> str:
    """`a.b.c` for an attribute chain (used by torchscript.py too)."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
    return ".".join(reversed(parts))


def _code(node) -> str:
    """The first line of a node's source, for messages (a damaged tree, e.g. `return` without a value, has none)."""
    try:
        return (ast.unparse(node).splitlines() or [""])[0]
    except (AttributeError, TypeError, ValueError, RecursionError):
        return type(node).__name__


def _const(node, default=None):
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, RecursionError, MemoryError):  # damaged code: not a constant
        return default


class ForwardOrder:
    """forward_order(record) -> [("child", name) | ("activation", name) | (PRELU_CALL, parameter name) |
    (one of torch_tree.SHAPE_ENTRIES, None), ...] or None (no code for the class)."""

    def __init__(self, classes: dict, constants: tuple = ()):
        self._classes = classes
        self._constants = constants  # the tensors traced code names CONSTANTS.c0, c1, ...

    def __call__(self, record):
        cls = self._classes.get(record.qualname)
        if cls is None or cls.forward is None:
            return None
        params, children = module_parts(record)
        numbers = {
            k: v
            for k, v in (record.attrs.items() if isinstance(record.attrs, dict) else ())
            if isinstance(k, str) and isinstance(v, (int, float)) and k not in children
        }
        try:
            try:
                return _Walker(
                    cls.forward, children, cls.methods, numbers=numbers, params=params, constants=self._constants
                ).run()
            except RecursionError:  # expressions nested deeper than any forward() torch writes
                raise _Unfollowable("expressions nested too deeply") from None
        except _Unfollowable as exc:
            name = class_name(record)[0]
            error = ArchitectureError(
                f"cannot follow {name}.forward in the TorchScript code ({exc}); pass "
                f"layers=[...] naming its modules, activations, skip connections ('+input', '+<name>') and "
                f"attention pools ('attention(<name>)') in forward order{_packing_hint(cls.forward)}"
            )
            error.unfollowed = str(exc)  # the reason alone, for a message about the module's own tensors
            raise error from None


def _packing_hint(fn: ast.FunctionDef) -> str:
    """What lstmrt follows of a forward() that packs its batch, the usual way to train on sequences of several
    lengths, for the refusal of something else in it."""
    if not any(isinstance(n, ast.Attribute) and "pack_padded_sequence" in n.attr for n in ast.walk(fn)):
        return ""
    return (
        " (this forward() packs padded sequences: lstmrt follows pack_padded_sequence into recurrent modules and "
        "pad_packed_sequence out of them, or their final states, and takes the lengths as model.predict(X, "
        "lengths=...); with layers=, it computes what packing does at each sequence's own steps, 0 past a length)"
    )


# dropout calls, with the default of their training flag in torch.nn.functional (torch's own ops take it always)
_DROPOUT_TRAINING = {"dropout": True, "feature_dropout": True, "dropout1d": True, "alpha_dropout": False}
_TRACED_CONSTANT = re.compile(r"CONSTANTS\.c(\d{1,9})")  # a tensor a trace captured
_MAX_INLINED = 8  # methods calling methods (init_hidden() and the like); deeper is not a plain forward()
# a zero state stays a zero state (moved, copied, broadcast over the batch)
_ZERO_KEEPING = ("to", "detach", "requires_grad_", "contiguous", "clone", "expand", "expand_as", "repeat")
_MADE_TENSORS = ("ones", "ones_like", "full", "full_like", "rand", "randn", "randn_like", "empty", "tensor")
_CONVERSIONS = {"int": int, "float": float, "bool": bool, "len": len}
_ARITHMETIC = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "floordiv": lambda a, b: a // b,
    "neg": lambda a: -a,
    "__not__": lambda a: not a,
}


class _Walker:
    """Symbolic run of a forward(): values are ("seq", items) — the input after `items` — ("pair", items) — a
    cell's (h, c) — ("module", name), ("self",), ("func", dotted name), ("const", v), ("aux",) — a size, device
    or dtype — ("zeros",) — a zero tensor, as an initial state — ("changed", op, code) — a tensor an in-place
    activation changed, under a name other than its result's — and the recurrent results of torchscript_steps."""

    def __init__(
        self,
        fn: ast.FunctionDef,
        children: dict,
        methods: dict,
        depth=0,
        bound=None,
        numbers=None,
        params=None,
        constants=(),
    ):
        args = fn.args.args
        if len(args) < 2 and bound is None:
            raise _Unfollowable("forward takes no input")
        self.children, self.methods, self.depth, self.numbers = children, methods, depth, numbers or {}
        self.params = params or {}  # the module's own tensors: torch.prelu's weight, arithmetic's constants
        self.constants = constants
        self.lengths = None  # the input of forward() pack_padded_sequence takes the lengths from
        self.zero_params = set()  # the module's tensors of zeros used as initial states (zero_param)
        self.env = {args[0].arg: ("self",)} if args else {}
        if bound is None:
            self.env[args[1].arg] = ("seq", ())
            bound = {}
            defaults = [None] * (len(args) - len(fn.args.defaults)) + list(fn.args.defaults)
            for extra, default in zip(args[2:], defaults[2:]):
                # an optional input (hidden=None) is absent, as when the model is called with x alone; any other
                # input (a required initial state) has a value lstmrt cannot know
                absent = default is not None and _const(default, "?") is None
                bound[extra.arg] = ("const", None) if absent else ("input", extra.arg)
        self.env.update(bound)
        self.given = [v for k, v in self.env.items() if k != (args[0].arg if args else None)]  # the caller's values
        self.name, self.body = fn.name, fn.body

    def run(self) -> list:
        value = self.execute()
        if value[0] == "tuple" and value[1] and value[1][0][0] in ("seq", "pair", "rnn"):
            # (output, state): lstmrt returns the output, as for nn.LSTM; a second output computed from the data (a
            # second head) would be dropped
            for index, other in enumerate(value[1][1:], 2):
                if other[0] in ("seq", attention.TAG) and other != value[1][0]:
                    raise _Unfollowable(
                        f"{self.name} returns {len(value[1])} outputs, and output {index} is computed from the data "
                        "too: lstmrt computes one output per model (load a module that returns one head)"
                    )
            value = value[1][0]
        zero_states = [(ZERO_STATE_ENTRY, name) for name in sorted(self.zero_params)]  # for torch_tree's tensor check
        return zero_states + list(self.seq(value, "the returned value")[1])

    def zero_param(self, value) -> bool:
        """value is a tensor of the module that holds zeros only (a register_buffer("h0", torch.zeros(...))), noted
        as used: as an initial state it is lstmrt's zero state."""
        tensor = self.params.get(value[1]) if value[0] == "param" else None
        if tensor is None or not hasattr(tensor, "shape") or np.asarray(tensor).dtype.kind != "f":
            return False
        if np.any(np.asarray(tensor) != 0):
            return False
        self.zero_params.add(value[1])
        return True

    def execute(self):
        """The value the function returns."""
        value = self.block(self.body)
        if value is None:
            raise _Unfollowable(f"{self.name} has no return statement")
        return value

    def block(self, stmts):
        """Run statements; the returned value, or None when the block ends without a return."""
        for stmt in stmts:
            if isinstance(stmt, ast.Return):
                if stmt.value is None:
                    raise _Unfollowable(f"{self.name} returns nothing")
                return self.eval(stmt.value)
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a string constant (docstring)
            if isinstance(stmt, (ast.For, ast.While)):
                raise _Unfollowable(
                    f"a loop (`{_code(stmt).splitlines()[0]}`), which lstmrt does not follow; a loop stepping an "
                    "nn.LSTMCell / nn.GRUCell over time from a zero state computes what lstmrt runs for that cell "
                    "named in layers="
                )
            if isinstance(stmt, ast.If):  # `if hidden is None:` on an input known to be absent or present
                test = self.eval(stmt.test)
                if test[0] != "const" or not isinstance(test[1], bool):
                    raise _Unfollowable(f"statement `{_code(stmt)}`")
                value = self.block(stmt.body if test[1] else stmt.orelse)
                if value is not None:
                    return value
                continue
            if not isinstance(stmt, (ast.Assign, ast.AnnAssign)) or (
                isinstance(stmt, ast.Assign) and len(stmt.targets) != 1
            ):
                raise _Unfollowable(f"statement `{_code(stmt)}`")
            target = stmt.targets[0] if isinstance(stmt, ast.Assign) else stmt.target
            value = self.eval(stmt.value)
            if isinstance(target, ast.Name):
                self.env[target.id] = value
            elif isinstance(target, ast.Tuple) and all(isinstance(t, ast.Name) for t in target.elts):
                parts = self.unpack(value, len(target.elts), stmt)
                for t, part in zip(target.elts, parts):
                    self.env[t.id] = part
            else:
                raise _Unfollowable(f"assignment `{_code(stmt)}`")
        return None

    def unpack(self, value, n, stmt):
        if value == ("aux",):  # `B, T, _ = x.shape`: sizes of the data, never data
            return [("aux",)] * n
        if value[0] == "pair":
            return [("seq", value[1])] + [("state",)] * (n - 1)
        if value[0] in ("tuple", "list") and len(value[1]) == n:
            return list(value[1])
        parts = steps.unpack(value, n, self)
        if parts is None:
            raise _Unfollowable(f"unpacking in `{_code(stmt)}`")
        return parts

    def seq(self, value, what):
        if value[0] in ("seq", "pair", "rnn") and steps.is_packed(value[1]):
            raise _Unfollowable(
                f"{what} is a PackedSequence; lstmrt follows one into recurrent modules and out of them through "
                "pad_packed_sequence (or their final states, h_n[-1])"
            )
        if value[0] in ("seq", "pair", "rnn"):  # traced code uses a recurrent module's output directly
            return ("seq", value[1])
        if value[0] in (attention.TAG, attention.QUERY):
            return attention.as_data(value, what)
        if value[0] == "hdir":
            raise _Unfollowable(
                f"{what} is one direction's final state of a bidirectional module; lstmrt reads both, "
                "torch.cat((h_n[-2], h_n[-1]), dim=1)"
            )
        if value[0] == "input":
            raise _Unfollowable(f"{what} is the input {value[1]!r} of forward(), which lstmrt does not take")
        if value[0] == "changed":
            raise _Unfollowable(
                f"{what} is a tensor that {value[1]} changed in place (`{value[2]}`), so torch reads the activated "
                "values there; lstmrt follows an in-place activation when only its result is used afterwards"
            )
        if value[0] == "sliced":
            raise _Unfollowable(
                f"{what} is a slice of the features, which lstmrt follows only as a term of a sum (a skip "
                "connection, lin(out) + x[:, :, 0:1])"
            )
        if value[0] == "indices":
            raise _Unfollowable(
                f"{what} is the indices of torch.max over time (where each maximum is), which no lstmrt layer "
                "outputs; lstmrt follows its values, torch.max(out, 1)[0]"
            )
        if value[0] in ("h", "c", "hc"):
            raise _Unfollowable(
                f"{what} is a final state of every layer and direction (h_n or c_n); lstmrt reads the last "
                "layer's, h_n[-1] (or h_n[-2] and h_n[-1] concatenated for both directions)"
            )
        raise _Unfollowable(f"{what} is not the network's data flow")

    def child(self, name: str):
        """The record of a child module, or of a submodule of one ("layers.0", an unrolled ModuleList loop)."""
        head, _, rest = name.partition(".")
        return submodule(self.children[head], rest) if rest else self.children[head]

    def recurrent_of(self, items, what="the final state"):
        """RecurrentInfo of the last torch.nn recurrent module in `items` (the one whose results are indexed)."""
        for tag, name in reversed(items):
            info = steps.recurrent_info(self.child(name)) if tag == "child" else None
            if info is not None:
                return info
        raise _Unfollowable(f"{what} does not come from an nn.LSTM, nn.GRU or nn.RNN of this module")

    def eval(self, node):
        if isinstance(node, ast.Name):
            if node.id not in self.env:
                raise _Unfollowable(f"unknown name {node.id}")
            return self.env[node.id]
        if isinstance(node, ast.Constant):
            return ("const", node.value)
        if isinstance(node, (ast.Tuple, ast.List)):
            kind = "tuple" if isinstance(node, ast.Tuple) else "list"
            return (kind, tuple(self.eval(e) for e in node.elts))
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and self.env.get(node.value.id) == ("self",)
        ):
            if node.attr in self.children:
                return ("module", node.attr)
            if node.attr in self.numbers:  # self.num_layers and the like: used in sizes and indices
                return ("const", self.numbers[node.attr])
            if node.attr in self.params:
                return ("param", node.attr)
            return ("attr", node.attr)
        if isinstance(node, ast.Attribute):
            name = dotted_name(node)
            constant = _TRACED_CONSTANT.fullmatch(name)
            return ("constant", int(constant.group(1))) if constant else ("func", name)
        if isinstance(node, ast.Subscript):
            return self.subscript(node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "annotate":
            if len(node.args) == 2:  # TorchScript's form of a typed assignment, `outs: List[Tensor] = []`
                return self.eval(node.args[1])
        if isinstance(node, ast.Call):
            return self.call(node)
        raise _Unfollowable(f"expression `{_code(node)}`")

    def subscript(self, node):
        value, index = self.eval(node.value), _const(node.slice, "?")
        if value[0] == "pair" and index == 0:
            return ("seq", value[1])
        if value[0] in ("tuple", "list") and isinstance(index, int) and -len(value[1]) <= index < len(value[1]):
            return value[1][index]
        if value[0] == "aux":  # torch.size(x)[0]
            return value
        if isinstance(index, int):
            part = steps.index(value, index, self)
            if part is not None:
                return part
        raise _Unfollowable(f"indexing `{_code(node)}`")

    def call(self, node):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) == 2:
            owner, attr = self.eval(node.args[0]), _const(node.args[1])
            if owner == ("self",) and attr in self.children:
                return ("module", attr)
            if owner[0] == "module" and isinstance(attr, str):  # getattr(self.layers, "0"): a loop over a ModuleList
                try:
                    self.child(f"{owner[1]}.{attr}")
                except KeyError:
                    raise _Unfollowable(f"call `{_code(node)}`: no such submodule") from None
                return ("module", f"{owner[1]}.{attr}")
        if isinstance(func, ast.Name) and func.id == "unchecked_cast" and len(node.args) == 2:
            return self.eval(node.args[1])  # TorchScript's Optional[T] -> T: the value itself
        if isinstance(func, ast.Name) and func.id in _CONVERSIONS and len(node.args) == 1:
            value = self.eval(node.args[0])
            if value[0] == "const" and func.id != "len" and isinstance(value[1], (int, float)):
                return ("const", _CONVERSIONS[func.id](value[1]))  # `if self.skip:` is `if bool(self.skip):`
            return ("aux",) if value[0] in ("aux", "const", "attr", "seq") else self.refuse(node)
        if (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and self.env.get(func.value.id) == ("self",)
            and func.attr in self.methods
        ):
            return self.inline(func.attr, node)
        if isinstance(func, ast.Attribute) and func.attr.startswith("forward"):
            target = self.eval(func.value)
            if target[0] == "module" and not node.args and not node.keywords:
                return ("opaque",)  # traced nn.Identity: forward() without input, result unused
            if target[0] == "module" and node.args:
                return self.call_module(target[1], node)
        callee = self.eval(func) if isinstance(func, ast.Name) else ("func", dotted_name(func))
        if callee[0] == "func" and callee[1].startswith("ops.prim."):  # NumToTensor, device, dtype of a tensor
            return ("aux",)
        if callee[0] != "func" or not node.args:
            raise _Unfollowable(f"call `{_code(node)}`")
        op = callee[1].rsplit(".", 1)[-1]
        if callee[1].startswith("__torch__.torch.nn.utils.rnn."):
            return packing.call(op, node, self, _code(node))
        if not callee[1].startswith(("torch.", "__torch__.torch.nn.functional.")):
            raise _Unfollowable(f"call of {callee[1]}")
        if op in ("size", "dim", "device", "len"):
            return ("aux",)
        if op in _DROPOUT_TRAINING:
            self.check_dropout(callee[1], op, node)
        if op in ("zeros", "zeros_like", "new_zeros", "zero_"):  # x.new_zeros(...), w.new(...).zero_()
            return ("zeros",)
        if op in _MADE_TENSORS:
            return ("tensor",)
        if op in _ARITHMETIC or op in ("__is__", "__isnot__") or op in arith.OPS:
            return self.scalar(op, node)
        first = self.eval(node.args[0])
        if first == ("zeros",) and op in _ZERO_KEEPING or op in _ZERO_KEEPING and self.zero_param(first):
            return ("zeros",)
        if first[0] == "input" and op in packing.LENGTHS_KEEPING:  # lengths.cpu() for pack_padded_sequence
            return first
        attended = attention.follow(op, first, node, self)
        if attended is not None:
            return attended
        first = attention.plain(first)
        if op in ("slice", "select", "cat") or op in shapes.OPS or op in shapes.MOVES:  # squeeze, view, transpose...
            return self.reshape(op, first, node)
        if op == "unsqueeze" and first[0] == "seq":
            return shapes.unsqueeze(first[1], node, self)
        if op == "to" and first[0] == "seq" and self.keeps_float32(node):
            return first
        items = self.seq(first, f"the input of {callee[1]}")[1]
        if op in NO_OP_CALLS:
            return ("seq", items)
        if op in pooling.OPS:
            return pooling.pool(op, items, node, self)
        if op == "prelu":
            return ("seq", items + ((PRELU_CALL, self.prelu_weight(node)),))
        act = self.activation(op, node, steps.time_gone(items) is not None)
        if act is None:  # scripted code calls torch.nn.functional through a local name (_0): say which
            named = "" if isinstance(func, ast.Attribute) else f" of {callee[1].replace('__torch__.', '', 1)}"
            raise _Unfollowable(f"call `{_code(node)}`{named}")
        if self.in_place(op, node, functional=callee[1].startswith("__torch__.torch.nn.functional.")):
            self.changed_in_place(first, op.rstrip("_"), node)
        return ("seq", items + (act if isinstance(act, tuple) else (("activation", act),)))

    def check_dropout(self, callee: str, op: str, node):
        """A dropout call is a no-op when its training flag is False (nn.Dropout in eval mode traces so, and
        F.dropout(x, p, self.training) scripts so); F.dropout's flag defaults to True, and then torch drops at random
        even in eval mode, which no model can reproduce."""
        functional = callee.startswith("__torch__.torch.nn.functional.")
        flag = node.args[2] if len(node.args) > 2 else None
        flag = next((k.value for k in node.keywords if k.arg in ("training", "train")), flag)
        training = _DROPOUT_TRAINING[op] if flag is None and functional else None if flag is None else self.number(flag)
        rate = self.number(node.args[1]) if len(node.args) > 1 else None
        if training is not False and rate not in (0, 0.0):
            raise _Unfollowable(
                f"`{_code(node)}` drops at random: its training flag is {training if training is not None else '?'}"
                f"{' (the default of ' + op + ')' if flag is None else ''}, so torch drops even in eval mode; lstmrt "
                "follows dropout that is off at inference (nn.Dropout, or F.dropout(x, p, self.training) in eval mode)"
            )

    def refuse(self, node):
        raise _Unfollowable(f"call `{_code(node)}`")

    def prelu_weight(self, node) -> str:
        """The parameter of this module that torch.prelu(x, self.w) (F.prelu, x.prelu) takes its slopes from; the
        builder decides, at the data's rank there, what layer that is."""
        weights = node.args[1:] + [k.value for k in node.keywords if k.arg == "weight"]
        value = self.eval(weights[0]) if len(weights) == 1 and len(node.args) + len(node.keywords) == 2 else None
        if value is None or value[0] != "param":
            raise _Unfollowable(
                f"call `{_code(node)}`: lstmrt reads prelu with a parameter of the module as its weight"
            )
        return value[1]

    def in_place(self, op, node, functional: bool) -> bool:
        """Whether the activation call `node` changes its input in place: an in-place op (torch.celu_, what traced
        code writes for inplace=True) or torch.nn.functional's inplace=True (what scripted code writes; torch's
        own ops have no such flag)."""
        if op in _IN_PLACE or op in _SIMPLE_IN_PLACE:
            return True
        if not functional:
            return False
        names = [name for name, _ in SIGNATURES.get(op, ())]
        at = names.index("inplace") + 1 if "inplace" in names else _INPLACE_AT.get(op)
        flag = node.args[at] if at is not None and at < len(node.args) else None
        flag = next((k.value for k in node.keywords if k.arg == "inplace"), flag)
        value = False if flag is None else self.number(flag)
        if not isinstance(value, bool):
            raise _Unfollowable(f"call `{_code(node)}`: its inplace flag is not a constant")
        return value

    def changed_in_place(self, value, op, node):
        """An activation changed the tensor `value` in place: every name holding or viewing it now holds the
        activated tensor, which lstmrt follows under the name the result is given only. The others are marked so
        that a later use of them is refused (torch would read the activated values there); the tensor forward()
        was given is refused at once, as its caller may read it."""
        if value in self.given:
            raise _Unfollowable(
                f"{op} (`{_code(node)}`) changes in place the tensor {self.name}() was given, which its caller may "
                "still read; lstmrt follows the activation without inplace"
            )
        for name, other in self.env.items():
            if residual.may_share(other, value[1], self.children):
                self.env[name] = ("changed", op, _code(node))

    def scalar(self, op, node):
        """Arithmetic on sizes and attributes (self.num_layers * 2, num_layers - 1), and `is None` tests: a
        constant when every operand is one, else a size; on the network's data it cannot be followed."""
        values = [self.eval(a) for a in node.args]
        weighted = attention.weigh(values, node, self) if op == "mul" else None
        if weighted is not None:
            return weighted
        computed = arith.follow(op, values, node, self, _code(node)) if op in arith.OPS else None
        if computed is not None:
            return computed
        summed = steps.sum_directions(values) if op == "add" and not node.keywords else None
        if summed is not None:
            return summed
        if op in ("add", "add_") and any(v[0] not in ("const", "aux", "attr") for v in values):
            return self.skip_connection(op, values, node)
        if op == "sub" and len(values) == 2 and not node.keywords and values[0][0] in ("seq", "pair", "rnn"):
            items = self.seq(values[0], "the input of torch.sub")[1]
            if values[1] == ("seq", items + (("activation", "tanh"),)):  # x - tanh(x): traced F.tanhshrink
                return ("seq", items + (("activation", "tanh_shrink"),))
        if op in ("__is__", "__isnot__"):
            if len(values) != 2 or values[1] != ("const", None):
                raise _Unfollowable(f"call `{_code(node)}`")
            absent = values[0] == ("const", None)
            return ("const", absent if op == "__is__" else not absent)
        if all(v[0] == "const" for v in values):
            try:
                return ("const", _ARITHMETIC[op](*(v[1] for v in values)))
            except (TypeError, ValueError, ZeroDivisionError, OverflowError, KeyError):
                raise _Unfollowable(f"call `{_code(node)}`") from None
        if all(v[0] in ("const", "aux", "attr") for v in values):
            return ("aux",)
        raise _Unfollowable(f"call `{_code(node)}`: arithmetic on the network's data")

    def skip_connection(self, op, values, node):
        """a + b (torch.add, +=) of the data and an earlier point of it (torchscript_residual)."""
        alpha = values[2:] + [self.eval(k.value) for k in node.keywords]
        if len(values) < 2 or any(v != ("const", 1) for v in alpha) or any(k.arg != "alpha" for k in node.keywords):
            raise _Unfollowable(f"call `{_code(node)}`: lstmrt adds two terms (alpha=1)")
        if op == "add_" and values[0][0] == "sliced":
            raise _Unfollowable(f"call `{_code(node)}` adds in place to a slice of the features (a view)")
        terms = [v if v[0] == "sliced" else self.seq(v, "a term of the sum") for v in values[:2]]
        if steps.flips(terms[0][1]) % 2 != steps.flips(terms[1][1]) % 2:
            raise _Unfollowable(f"the sum `{_code(node)}` adds terms whose batch and time axes are swapped")
        total = residual.add(terms, _code(node))
        if op == "add_":
            target = node.args[0].id if isinstance(node.args[0], ast.Name) else None
            self.check_in_place(values[0], target, node)
            if target is not None:
                self.env[target] = total
        return total

    def check_in_place(self, value, target, node):
        """`+=` changes the tensor itself: any other name for it (an alias, or a copy the walker cannot tell from
        one), a view of it (a slice, the last step, a squeeze, an eval-mode no-op module's output), or the tensor
        forward() was given (its caller may read it) would see the sum in torch. Refused, unless only the name
        added to (`target`, None for an expression) holds it."""
        if value in self.given:
            raise _Unfollowable(
                f"`{_code(node)}` changes in place the tensor {self.name}() was given, which its caller may still "
                "read; lstmrt follows `x = x + y`"
            )
        for name, other in self.env.items():
            if name != target and residual.may_share(other, value[1], self.children):
                raise _Unfollowable(
                    f"`{_code(node)}` changes in place a tensor that {name!r} also holds or views; lstmrt follows "
                    "`x = x + y`"
                )

    def call_module(self, name, node):
        first = self.eval(node.args[0])
        attended = attention.call_module(name, self.child(name), first, self) if len(node.args) == 1 else None
        if attended is not None:
            return attended
        info = steps.recurrent_info(self.child(name))
        packed = first[0] == "seq" and steps.is_packed(first[1]) and info is not None
        items = first[1] if packed else self.seq(first, f"the input of {name}")[1]
        for arg in node.args[1:]:  # an initial state: lstmrt's is zero, so only zeros (or None) can be followed
            value = self.eval(arg)
            parts = value[1] if value[0] in ("tuple", "list") else (value,)
            given = [p for p in parts if p[0] == "input"]
            if given:
                raise _Unfollowable(
                    f"{name} starts from the state {given[0][1]!r}, an input of forward(): lstmrt starts each "
                    "sequence from a zero state (a stream then carries it from step to step), which equals this "
                    f"model only when {given[0][1]!r} is zero; an optional input ({given[0][1]}=None, zeros when "
                    "absent) is read as absent"
                )
            if not all(p in (("const", None), ("zeros",)) or self.zero_param(p) for p in parts):
                kind = class_name(self.child(name))[0]
                if (
                    info is None and kind not in CELLS
                ):  # nn.MultiheadAttention(q, k, v) and other modules of several inputs
                    raise _Unfollowable(
                        f"{name} ({kind}) is called with inputs besides the data; lstmrt follows modules called on "
                        "the data alone, and recurrent modules and cells with a zero initial state"
                    )
                raise _Unfollowable(f"{name} is called with more than its input and a zero initial state")
        if info is not None:
            steps.check_layout(items, name, info, self)
        scaled = self.scaled_module(name)
        if scaled is not None:
            return ("seq", items + scaled)
        items = items + (("child", name),) + ((packing.PACKED,) if packed else ())
        if info is not None:
            return steps.called(info, items)
        kind = class_name(self.child(name))[0]
        return ("pair" if kind in CELLS else "seq", items)

    def scaled_module(self, name):
        """An nn.Softplus child with constants lstmrt's softplus lacks, as torchscript_arith's items (its activation
        between Affine layers); None for any other module (nn.Hardtanh, a clip, is an activation module)."""
        record = self.child(name)
        kind, torch_nn = class_name(record)
        if not torch_nn or kind != "Softplus":
            return None
        values = {key: record.attrs.get(key) for key in ("beta", "threshold")}
        return arith.scaled_activation(kind, values, f"{name} (nn.{kind})")

    def inline(self, method, node):
        """A method of the module called from forward() (init_hidden() and the like), run on its arguments."""
        if self.depth >= _MAX_INLINED:
            raise _Unfollowable(f"methods nested deeper than {_MAX_INLINED} calls")
        fn = self.methods[method]
        params = [a.arg for a in fn.args.args[1:]]
        if len(node.args) > len(params) or node.keywords:
            raise _Unfollowable(f"call `{_code(node)}`")
        bound = {p: self.eval(a) for p, a in zip(params, node.args)}
        for p, default in zip(reversed(params), reversed(fn.args.defaults)):
            bound.setdefault(p, ("const", _const(default)))
        if len(bound) != len(params):
            raise _Unfollowable(f"call `{_code(node)}`")
        return _Walker(
            fn, self.children, self.methods, self.depth + 1, bound, self.numbers, self.params, self.constants
        ).execute()

    def reshape(self, op, first, node):
        """Slicing and indexing: full slices, and the last step of a sequence (torchscript_steps)."""
        try:
            value = self._reshape(op, first, node)
        except _Unfollowable as exc:
            why = f": {exc}"
        else:
            if value is not None:
                return value
            why = ""
        raise _Unfollowable(
            f"call `{_code(node)}`{why}; lstmrt follows full slices, taking each sequence's last step "
            "(out[:, -1], h_n[-1]) and dropping a one-feature output's axis (.squeeze(-1)); with layers=[...] it "
            "returns every step's output, and a stream gives it step by step"
        )

    def number(self, node):
        """A constant argument (literal, or a size from the module's attributes), else "?"."""
        literal = _const(node, _Unfollowable)
        if literal is not _Unfollowable:
            return literal
        value = self.eval(node)
        return value[1] if value[0] == "const" else "?"

    def _reshape(self, op, first, node):
        if first[0] == "c":
            raise _Unfollowable("c_n is the LSTM's cell state, which no layer outputs")
        if op in shapes.OPS and first[0] == "seq":
            return shapes.reshape(op, first[1], node, self)
        if op in shapes.MOVES and first[0] == "seq":
            return shapes.swap(op, first[1], node, self)
        if op in ("view", "reshape", "flatten", "ravel") and first[0] == "h":
            return shapes.reshape_state(first, op, node, self)
        args = [self.number(a) for a in node.args[1:]]
        if op == "slice":
            dim, start, end, step = (args + [0, None, None, 1][len(args) :])[:4]
            if (
                start in (None, 0)
                and (end is None or (isinstance(end, int) and end >= residual.INT64_MAX))
                and step == 1
            ):
                return first  # `[:]` on one dimension: changes nothing
            if first[0] == "seq":
                return residual.feature_slice(first, args)  # x[:, :, 0:1], a term of a skip connection
        elif op == "select" and len(args) == 2 and first[0] == "seq":
            return steps.select_step(first, args[0], args[1], self)
        elif op == "select" and len(args) == 2 and first[0] == "h":
            return steps.select_state(first, args[0], args[1], self)
        elif op == "squeeze" and first[0] == "h":
            return steps.squeeze_state(first, tuple(args), self)
        elif op == "cat" and first[0] in ("list", "tuple"):
            dim = args[0] if args else next((self.number(k.value) for k in node.keywords if k.arg == "dim"), 0)
            return steps.concat_directions(first[1], dim)
        return None

    def keeps_float32(self, node) -> bool:
        """x.to(device) / x.to(torch.float32): a no-op for lstmrt, which computes in float32 on the CPU. A dtype
        is an int constant (6 is float32); a bool is non_blocking or copy; the other options do not convert."""

        def harmless(value, dtype: bool) -> bool:
            if value[0] in ("aux", "attr") or value == ("const", None):  # attr: not a number, so not a dtype
                return True
            v = value[1] if value[0] == "const" else "?"
            if isinstance(v, bool):
                return not dtype
            return isinstance(v, int) and (v == TORCH_FLOAT32 or not dtype)

        positional = all(harmless(self.eval(a), dtype=True) for a in node.args[1:])
        return positional and all(harmless(self.eval(k.value), dtype=k.arg == "dtype") for k in node.keywords)

    def activation(self, op, node, two_d: bool):
        """The lstmrt activation of a torch op, or None. After the last step (or pooling over time) the data is
        (B, F): dim 1 is the feature axis there, as 2 (and -1) is on (B, T, F)."""
        args = [_const(a, "?") for a in node.args[1:]]
        kw = {k.arg: _const(k.value, "?") for k in node.keywords}
        if op in _SIMPLE or op in _SIMPLE_IN_PLACE:
            return _SIMPLE[op.rstrip("_")]
        base = op[:-1] if op in _IN_PLACE else op
        if base == "hardtanh":  # a clip, as clamp
            options = self.options(base, node)
            try:
                return _clip_items(hardtanh(options["min_val"], options["max_val"], f"`{_code(node)}`"))
            except ValueError as exc:
                raise _Unfollowable(str(exc)) from None
        if base in _CLAMPS:
            return self.clamp(base, node)
        if base in SIGNATURES:
            try:
                return functional_activation(base, self.options(base, node))
            except ValueError as exc:
                raise _Unfollowable(f"call `{_code(node)}`: {exc}") from None
        if op == "elu" and (not args or args[0] == 1):
            return "elu"
        if (
            op in ("softmax", "log_softmax")
            and args
            and args[0] in ((-1, 1) if two_d else (-1, 2))
            and kw.get("dtype") is None
            and all(a is None for a in args[2:] if not isinstance(a, int))
        ):
            return op
        if op == "gelu" and kw.get("approximate", "none") in ("none", "tanh"):
            return "gelu" if kw.get("approximate", "none") == "none" else "gelu_tanh"
        if op == "softplus":
            given = dict(zip(("beta", "threshold"), node.args[1:])) | {k.arg: k.value for k in node.keywords}
            options = {"beta": 1, "threshold": 20} | {k: self.number(v) for k, v in given.items()}
            if set(options) != {"beta", "threshold"}:
                return None
            return arith.scaled_activation("Softplus", options, _code(node)) or "softplus"
        return None

    def clamp(self, op, node):
        """torch.clamp / clip / clamp_min / clamp_max with number bounds (a literal or a number attribute), as the
        activations clip_ops computes the clip with."""
        names = _CLAMPS[op]
        if len(node.args) - 1 > len(names) or any(k.arg not in names for k in node.keywords):
            raise _Unfollowable(f"call `{_code(node)}`: options other than {op}({', '.join(names)})")
        given = dict(zip(names, node.args[1:])) | {k.arg: k.value for k in node.keywords}
        bounds = {n: None if n not in given or _const(given[n], "?") is None else self.number(given[n]) for n in names}
        if any(b == "?" or isinstance(b, bool) for b in bounds.values()):
            raise _Unfollowable(f"call `{_code(node)}`: lstmrt clips to bounds that are numbers (or number attributes)")
        try:
            return _clip_items(clip_plan(bounds.get("min"), bounds.get("max"), f"`{_code(node)}`"))
        except ValueError as exc:
            raise _Unfollowable(str(exc)) from None

    def options(self, op, node) -> dict:
        """The options of a call of functional op `op` (SIGNATURES), positional or by keyword, torch's defaults
        for those left out; each a number (a literal, or a number attribute of the module: self.slope)."""
        names = [name for name, _ in SIGNATURES[op]]
        if len(node.args) - 1 > len(names) or any(k.arg not in names for k in node.keywords):
            raise _Unfollowable(f"call `{_code(node)}`: options other than {op}({', '.join(names)})")
        given = dict(zip(names, node.args[1:])) | {k.arg: k.value for k in node.keywords}
        options = dict(SIGNATURES[op])
        for name, arg in given.items():
            options[name] = self.number(arg)
            if options[name] == "?":
                raise _Unfollowable(f"call `{_code(node)}`: its {name} is not a constant")
        return options
