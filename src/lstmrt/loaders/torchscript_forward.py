"""The forward order of a user-defined module in a TorchScript archive, read from its forward() code as data:
submodule calls, tuple indexing of a recurrent module's (output, state), and element-wise torch activations.
Anything else (arithmetic, slicing, loops, branches) cannot be followed: that is an error asking for layers=,
because the network is then not a plain chain lstmrt can reproduce."""

from __future__ import annotations

import ast

from ..errors import ArchitectureError
from .torch_tree import CELLS, RECURRENT, class_name, module_parts

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
}
_NO_OPS = ("dropout", "feature_dropout", "alpha_dropout", "contiguous", "detach")


class _Unfollowable(Exception):
    pass


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
    """forward_order(record) -> [("child", name) | ("activation", name), ...] or None (no code for the class)."""

    def __init__(self, classes: dict):
        self._classes = classes

    def __call__(self, record):
        cls = self._classes.get(record.qualname)
        if cls is None or cls.forward is None:
            return None
        children = module_parts(record)[1]
        try:
            try:
                return _Walker(cls.forward, children).run()
            except RecursionError:  # expressions nested deeper than any forward() torch writes
                raise _Unfollowable("expressions nested too deeply") from None
        except _Unfollowable as exc:
            name = class_name(record)[0]
            raise ArchitectureError(
                f"cannot follow {name}.forward in the TorchScript code ({exc}); pass "
                f"layers=[...] naming its modules and activations in forward order{_packing_hint(cls.forward)}"
            ) from None


def _packing_hint(fn: ast.FunctionDef) -> str:
    """What to do about a forward() that packs its batch, the usual way to train on sequences of several lengths:
    the reader stops at the first op of the packing, which does not say that lstmrt has its own form of it."""
    if not any(isinstance(n, ast.Attribute) and "pack_padded_sequence" in n.attr for n in ast.walk(fn)):
        return ""
    return (
        " (this forward() packs padded sequences: lstmrt takes the lengths instead, model.predict(X, lengths=...), "
        "and computes what packing does at each sequence's own steps; its outputs past a length are 0)"
    )


class _Walker:
    """Symbolic run of a forward(): values are ("seq", items) — the input after `items` — ("pair", items) — a
    recurrent module's (output, state) — ("module", name), ("self",), ("func", dotted name), ("const", v)."""

    def __init__(self, fn: ast.FunctionDef, children: dict):
        args = fn.args.args
        if len(args) < 2:
            raise _Unfollowable("forward takes no input")
        self.children = children
        self.env = {args[0].arg: ("self",), args[1].arg: ("seq", ())}
        for extra in args[2:]:
            self.env[extra.arg] = ("const", None)  # extra inputs (e.g. an initial state) are taken as None
        self.body = fn.body

    def run(self) -> list:
        for stmt in self.body:
            if isinstance(stmt, ast.Return):
                if stmt.value is None:
                    raise _Unfollowable("forward returns nothing")
                value = self.eval(stmt.value)
                if value[0] == "tuple" and value[1] and value[1][0][0] in ("seq", "pair"):
                    value = value[1][0]  # (output, state): lstmrt returns the output, as for nn.LSTM
                return list(self.seq(value, "the returned value")[1])
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # a string constant (docstring)
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
        raise _Unfollowable("forward has no return statement")

    def unpack(self, value, n, stmt):
        if value[0] == "pair":
            return [("seq", value[1])] + [("state",)] * (n - 1)
        if value[0] == "tuple" and len(value[1]) == n:
            return list(value[1])
        raise _Unfollowable(f"unpacking in `{_code(stmt)}`")

    def seq(self, value, what):
        if value[0] in ("seq", "pair"):  # traced code uses a recurrent module's output directly
            return ("seq", value[1])
        raise _Unfollowable(f"{what} is not the network's data flow")

    def eval(self, node):
        if isinstance(node, ast.Name):
            if node.id not in self.env:
                raise _Unfollowable(f"unknown name {node.id}")
            return self.env[node.id]
        if isinstance(node, ast.Constant):
            return ("const", node.value)
        if isinstance(node, ast.Tuple):
            return ("tuple", tuple(self.eval(e) for e in node.elts))
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and self.env.get(node.value.id) == ("self",)
        ):
            return ("module", node.attr) if node.attr in self.children else ("attr", node.attr)
        if isinstance(node, ast.Attribute):
            return ("func", dotted_name(node))
        if isinstance(node, ast.Subscript):
            value, index = self.eval(node.value), _const(node.slice, "?")
            if value[0] == "pair" and index == 0:
                return ("seq", value[1])
            if value[0] == "tuple" and isinstance(index, int) and -len(value[1]) <= index < len(value[1]):
                return value[1][index]
            raise _Unfollowable(f"indexing `{_code(node)}`")
        if isinstance(node, ast.Call):
            return self.call(node)
        raise _Unfollowable(f"expression `{_code(node)}`")

    def call(self, node):
        func = node.func
        if isinstance(func, ast.Name) and func.id == "getattr" and len(node.args) == 2:
            if self.eval(node.args[0]) == ("self",) and _const(node.args[1]) in self.children:
                return ("module", _const(node.args[1]))
        if isinstance(func, ast.Attribute) and func.attr.startswith("forward"):
            target = self.eval(func.value)
            if target[0] == "module" and not node.args and not node.keywords:
                return ("opaque",)  # traced nn.Identity: forward() without input, result unused
            if target[0] == "module" and node.args:
                items = self.seq(self.eval(node.args[0]), f"the input of {target[1]}")[1]
                if any(self.eval(a) != ("const", None) for a in node.args[1:]):
                    raise _Unfollowable(f"{target[1]} is called with more than its input")
                name, _ = class_name(self.children[target[1]])
                kind = "pair" if name in RECURRENT or name in CELLS else "seq"
                return (kind, items + (("child", target[1]),))
        callee = self.eval(func) if isinstance(func, ast.Name) else ("func", dotted_name(func))
        if callee[0] != "func" or not node.args:
            raise _Unfollowable(f"call `{_code(node)}`")
        op = callee[1].rsplit(".", 1)[-1]
        if not callee[1].startswith(("torch.", "__torch__.torch.nn.functional.")):
            raise _Unfollowable(f"call of {callee[1]}")
        if op in ("slice", "select"):  # y[:, -1]: the commonest one, with what to do about it
            raise _Unfollowable(
                f"call `{_code(node)}`: indexing, such as taking the last step with y[:, -1]; "
                "with layers=[...] lstmrt returns every step's output, the last of which is this "
                "module's, and a stream gives it step by step"
            )
        items = self.seq(self.eval(node.args[0]), f"the input of {callee[1]}")[1]
        if op in _NO_OPS:
            return ("seq", items)
        act = self.activation(op, node)
        if act is None:  # scripted code calls torch.nn.functional through a local name (_0): say which
            named = "" if isinstance(func, ast.Attribute) else f" of {callee[1].replace('__torch__.', '', 1)}"
            raise _Unfollowable(f"call `{_code(node)}`{named}")
        return ("seq", items + (("activation", act),))

    def activation(self, op, node):
        args = [_const(a, "?") for a in node.args[1:]]
        kw = {k.arg: _const(k.value, "?") for k in node.keywords}
        if op in _SIMPLE:
            return _SIMPLE[op]
        if op == "elu" and (not args or args[0] == 1):
            return "elu"
        if (
            op in ("softmax", "log_softmax")
            and args
            and args[0] in (-1, 2)
            and kw.get("dtype") is None
            and all(a is None for a in args[2:] if not isinstance(a, int))
        ):
            return op
        if op == "gelu" and kw.get("approximate", "none") in ("none", "tanh"):
            return "gelu" if kw.get("approximate", "none") == "none" else "gelu_tanh"
        if op == "softplus" and args[:2] in ([], [1], [1, 20]):
            return "softplus"
        if op == "hardtanh" and args[:2] == [0, 6]:
            return "relu6"
        return None
