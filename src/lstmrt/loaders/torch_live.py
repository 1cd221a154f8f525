"""lstmrt.from_torch: a live torch module (nn.LSTM, nn.GRU, nn.RNN, the cells, nn.Linear, nn.Embedding,
activations, nn.PReLU, nn.Sequential of those) to an lstmrt Model. torch is imported only by the caller's module."""

from __future__ import annotations

from ..errors import UnsupportedModelError
from ..layers import Activation
from . import torch_activations, torch_layers

# Activation modules with torch's default arguments map to these names (a layers= entry naming the class means
# that); _activation reads the options of the module at hand, and refuses those lstmrt cannot compute.
_ACTIVATIONS = {
    "ReLU": "relu",
    "Tanh": "tanh",
    "Sigmoid": "sigmoid",
    "ELU": "elu",
    "SELU": "selu",
    "Softsign": "softsign",
    "Softplus": "softplus",
    "SiLU": "silu",
    "Mish": "mish",
    "Hardsigmoid": "hard_sigmoid_v3",
    "Hardswish": "hard_silu",
    "ReLU6": "relu6",
    "GELU": "gelu",
    "Softmax": "softmax",
    "LogSoftmax": "log_softmax",
    "LeakyReLU": "leaky_relu(0.01)",
    "CELU": "celu",
    "Hardshrink": "hard_shrink",
    "Softshrink": "soft_shrink",
    "Hardtanh": "hard_tanh",
    "Tanhshrink": "tanh_shrink",
    "LogSigmoid": "log_sigmoid",
}
_NO_OPS = ("Dropout", "Identity", "AlphaDropout")


def _params(module) -> dict:
    return {name: p.detach().cpu().float().numpy() for name, p in module.named_parameters()}


def _activations(module, two_d: bool = False) -> list:
    """The Activation layers of an activation module (one; a clip, nn.Hardtanh, may take two). two_d: the module is
    applied after forward() took the last step, to (B, F), where dim 1 (and torch's implicit dim=None, which is 1
    for 2-D input) is the feature axis."""
    name = type(module).__name__
    act = _ACTIVATIONS[name]
    if name == "ELU" and module.alpha != 1.0:
        raise ValueError(f"nn.ELU(alpha={module.alpha}) is not supported: only alpha=1")
    if name == "Softplus" and (module.beta != 1.0 or module.threshold != 20.0):
        raise ValueError("nn.Softplus with beta != 1 or threshold != 20 is not supported")
    if name in torch_activations.PARAMETRIZED or name == "Hardtanh":
        return [Activation(a) for a in torch_activations.module_activations(name, module)]
    if name == "GELU" and module.approximate == "tanh":
        act = "gelu_tanh"
    if name in ("Softmax", "LogSoftmax") and module.dim not in ((-1, 1, None) if two_d else (-1, 2)):
        # dim=None is torch's deprecated implicit dim: over a (B, T, F) input that is dim 0, the batch axis
        raise ValueError(f"nn.{name}(dim={module.dim}) is not supported: only the feature axis (dim=-1)")
    return [Activation(act)]


def _convert(module) -> list:
    name = type(module).__name__
    if name in ("LSTM", "GRU", "RNN"):
        if getattr(module, "proj_size", 0) and name != "LSTM":
            raise ValueError(f"nn.{name} with proj_size is not supported")
        return torch_layers.recurrent_layers(
            name,
            _params(module),
            num_layers=module.num_layers,
            bidirectional=module.bidirectional,
            nonlinearity=getattr(module, "nonlinearity", "tanh"),
        )
    if name in ("LSTMCell", "GRUCell", "RNNCell"):
        return [
            torch_layers.cell_layer(name[:-4], _params(module), nonlinearity=getattr(module, "nonlinearity", "tanh"))
        ]
    if name == "Linear":
        return [torch_layers.linear_layer(_params(module))]
    if name in torch_layers.NORMS:
        return [
            torch_layers.norm_layer(name, _params(module), normalized_shape=module.normalized_shape, eps=module.eps)
        ]
    if name == torch_layers.BATCH_NORM:  # from_torch's models run on sequences: see torch_build._batch_norm
        raise ValueError(
            "nn.BatchNorm1d on a sequence (B, T, F) normalizes dim 1 (time), not the features; lstmrt reads it after "
            "a forward() takes the last step or pools over time (lstmrt.load of the whole module)"
        )
    if name == "PReLU":  # on a sequence: one slope for all, or torch's per-step slopes, which are refused
        hint = " (lstmrt.load of the whole module, which follows its forward())"
        return [torch_layers.prelu_layer(_params(module)["weight"], two_d=False, hint=hint)]
    if name == "Flatten":
        raise ValueError(
            "nn.Flatten on a sequence (B, T, F) joins its axes; lstmrt reads it after a forward() takes the last "
            "step or pools over time (lstmrt.load of the whole module)"
        )
    if name == "Embedding":
        if module.max_norm is not None:  # as the file loaders refuse it: a lookup that rewrites the table
            raise ValueError("nn.Embedding(max_norm=...) renormalizes rows at lookup; not supported")
        return [torch_layers.embedding_layer(_params(module))]
    if name in _ACTIVATIONS:
        return _activations(module)
    if name in _NO_OPS:
        return []
    if name == "Sequential":
        specs = []
        for index, child in enumerate(module):
            if not _is_torch_nn(child):  # lstmrt cannot see its forward() from here
                raise UnsupportedModelError(
                    f"module {index} of the nn.Sequential, {type(child).__name__}, is a module of your own class: "
                    "lstmrt follows a user module's forward() when it is the model given to lstmrt.load (put the "
                    "layers in one whose forward() calls them), or pass layers=[...] naming the layers in order"
                )
            specs += _convert(child)
        return specs
    supported = ", ".join(
        [
            "LSTM",
            "GRU",
            "RNN",
            "LSTMCell",
            "GRUCell",
            "RNNCell",
            "Linear",
            "Embedding",
            *torch_layers.NORMS,
            "Sequential",
            *_ACTIVATIONS,
            "PReLU",
            *_NO_OPS,
        ]
    )
    hint = "" if _is_torch_nn(module) else " (a module of your own class: lstmrt.load(module) follows its forward())"
    raise ValueError(f"cannot convert torch module {name}{hint}; supported: {supported}")


def _is_torch_nn(module) -> bool:
    return type(module).__module__.startswith("torch.nn.")


def from_torch(module, **model_kwargs):
    """An lstmrt Model computing what `module` computes (in eval mode: dropout is ignored). Input layout is
    batch-first (B, T, I) whatever the module's batch_first. A module of the user's own class (or a ModuleList /
    ModuleDict) is read as lstmrt.load(module) reads it, following its forward()."""
    from ..model import Model

    if not _is_torch_nn(module) or type(module).__name__ in ("ModuleList", "ModuleDict"):
        if model_kwargs:
            raise ValueError(
                f"from_torch takes Model options only for torch.nn modules; {type(module).__name__} is read by "
                "following its forward(), which sets them"
            )
        from .load import load

        return load(module)
    layers = _convert(module)
    if not layers:
        raise ValueError(f"torch module {type(module).__name__} contains no layer lstmrt can run")
    return Model(layers, **model_kwargs)
