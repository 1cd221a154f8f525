"""lstmrt: a CPU inference runtime for recurrent networks (LSTM, GRU, SimpleRNN, dense heads), C inside.

model = lstmrt.from_torch(module)     # or lstmrt.Model([lstmrt.LSTM(...), lstmrt.Dense(...)])
s = model.stream()
y = s.step(x)
"""

from ._version import __version__
from .errors import (
    ArchitectureError,
    CorruptFileError,
    CorruptPickleError,
    LayerOrderWarning,
    LoadError,
    ModelTooLargeError,
    UnexpectedContentError,
    UnsafeFileError,
    UnsafePickleError,
    UnsupportedModelError,
)
from .layers import (
    GRU,
    LSTM,
    Activation,
    Add,
    Affine,
    Bidirectional,
    Dense,
    Embedding,
    AttentionPooling,
    GlobalPooling,
    LayerNorm,
    PReLU,
    SimpleRNN,
)
from .loaders.load import load
from .loaders.torch_live import from_torch
from .model import Model
from .stream import Stream


def kernel_tier() -> str:
    """The kernel tier in use: scalar, avx2, avx512 or neon (LSTMRT_ISA may lower it)."""
    from . import _native

    return _native.kernel_tier()


def cpu_features() -> str:
    from . import _native

    return _native.cpu_features()


__all__ = [
    "__version__",
    "Model",
    "Stream",
    "LSTM",
    "GRU",
    "SimpleRNN",
    "Bidirectional",
    "Dense",
    "Activation",
    "Affine",
    "PReLU",
    "LayerNorm",
    "AttentionPooling",
    "GlobalPooling",
    "Embedding",
    "Add",
    "from_torch",
    "load",
    "kernel_tier",
    "cpu_features",
    "LoadError",
    "UnsafeFileError",
    "UnsafePickleError",
    "CorruptFileError",
    "UnsupportedModelError",
    "ArchitectureError",
    "ModelTooLargeError",
    "CorruptPickleError",
    "UnexpectedContentError",
    "LayerOrderWarning",
]
