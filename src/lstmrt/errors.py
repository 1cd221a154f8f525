"""The exceptions lstmrt.load raises for what is in a file (docs/loading.md, section Errors).

    LoadError(ValueError)                the file cannot become a Model; always names the file or the part at fault
    ├── UnsafeFileError                  loading it would run code or reach outside the file: nothing was run or read
    │   └── UnsafePickleError            (also a pickle.UnpicklingError) a pickle names a global lstmrt will not call
    ├── CorruptFileError                 damaged or self-contradictory: truncated, bad offsets, sizes past the data
    │   └── UnexpectedContentError       content no check anticipated (the original exception is chained)
    └── UnsupportedModelError            a valid file holding something lstmrt does not run (format, layer, option)
        ├── ArchitectureError            parameter names/shapes do not determine a model (pass layers=)
        └── ModelTooLargeError           the weights would not fit the memory limit (LSTMRT_MAX_LOAD_BYTES)

Errors of the call itself stay ordinary: a missing file is an OSError, a bad argument a TypeError/ValueError
(and key= naming nothing a KeyError).

    LayerOrderWarning(UserWarning)       a module's forward() was not read or not in the file (a state dict):
                                         the file's order used, activations it does not hold not applied"""

from __future__ import annotations

import pickle


class LoadError(ValueError):
    """A file (or live model) that lstmrt cannot turn into a Model."""


class UnsafeFileError(LoadError):
    """Loading would execute code or read outside the file (pickle globals, zip member paths, HDF5 external links,
    virtual or external datasets, decompression bombs). Refused before anything was run or opened."""


class UnsafePickleError(UnsafeFileError, pickle.UnpicklingError):
    """The file names a global (function, class) that lstmrt will not resolve or call: loading it could run code."""


class CorruptFileError(LoadError):
    """The file is damaged or contradicts itself: truncated, bad checksums or offsets, declared sizes beyond the
    bytes present, shapes that disagree with the architecture it declares."""


class CorruptPickleError(CorruptFileError, pickle.UnpicklingError):
    """A damaged pickle stream (also a pickle.UnpicklingError, as the torch readers always raised)."""


class UnexpectedContentError(CorruptFileError):
    """Interpreting the file raised an exception no check of lstmrt anticipated (chained as __cause__): the file
    is not one the frameworks write. Worth a bug report with the file: it names a check lstmrt is missing."""


class UnsupportedModelError(LoadError):
    """A well-formed file whose content lstmrt does not run: an unknown format, layer class or option."""


class ArchitectureError(UnsupportedModelError):
    """The file's parameters do not determine a model lstmrt can build (the message says what to pass)."""


class ModelTooLargeError(UnsupportedModelError):
    """The file's tensors would need more memory than the load limit allows (LSTMRT_MAX_LOAD_BYTES; see
    lstmrt.loaders.safety)."""


class LayerOrderWarning(UserWarning):
    """A user-defined torch module's forward() could not be read (a torch.save(model) file stores no code; a live
    module that neither scripts nor traces; a container's state dict, which holds parameters only): its modules
    were taken in the file's order, and what its forward() does without parameters (F.relu, nn.Tanh, slicing) is
    not applied. Pass layers=[...] to state the forward order and the activations."""
