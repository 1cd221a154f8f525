"""KerasModel: a Model whose predict() reproduces two Keras behaviours a plain layer chain cannot express."""

from __future__ import annotations

import numpy as np

from ..model import Model


class KerasModel(Model):
    """A Model converted from Keras (see lstmrt.loaders.keras.load_keras).

    - Masking: without an explicit `mask=`, predict derives Keras' mask from the input: steps whose features all
      equal `mask_value` (Masking) or whose token id is 0 (`mask_zero`, Embedding(mask_zero=True)) are masked —
      recurrent layers carry their state through them — and, as Keras' Masking does, such steps are zeroed.
      Streams cannot see a mask: to skip a masked step, do not call step() (state carried, output repeated).
    - `reverse_output`: a go_backwards layer with return_sequences=True leaves Keras' output in processing order
      (last step first); predict returns it in that order too.
    """

    def __init__(self, layers, *, mask_value=None, mask_zero=False, reverse_output=False, **kwargs):
        super().__init__(layers, **kwargs)
        self.mask_value = None if mask_value is None else float(mask_value)
        self.mask_zero = bool(mask_zero)
        self.reverse_output = bool(reverse_output)

    def _options(self) -> dict:
        return dict(
            super()._options(), mask_value=self.mask_value, mask_zero=self.mask_zero, reverse_output=self.reverse_output
        )

    def keras_mask(self, X):
        """(X as Keras' Masking leaves it, mask (B, T) or (T,)) for an input X; (X, None) for unmasked models."""
        if self.mask_value is None and not self.mask_zero:
            return X, None
        X = np.asarray(X)
        if self.mask_zero:  # token ids (T,), (B, T) or (B, T, 1)
            return X, (X[..., 0] if X.ndim == 3 else X) != 0
        if X.ndim not in (2, 3) or X.shape[-1] != self.input_size:
            return X, None  # predict reports the bad shape
        if X.dtype.kind == "f" and X.dtype != np.float32:  # Keras compares the float32 input with the mask value
            X = X.astype(np.float32)
        keep = np.any(X != np.float32(self.mask_value), axis=-1)
        return np.where(keep[..., None], X, 0).astype(X.dtype, copy=False), keep

    def predict(self, X, lengths=None, mask=None, *, threads=1):
        if mask is None:
            X, mask = self.keras_mask(X)
        Y = super().predict(X, lengths, mask, threads=threads)
        if self.reverse_output and self.return_sequences:
            Y = np.ascontiguousarray(Y[..., ::-1, :])
        return Y

    def __repr__(self) -> str:
        extra = []
        if self.mask_value is not None:
            extra.append(f"  Keras masking: steps whose features all equal {self.mask_value:g} are masked")
        if self.mask_zero:
            extra.append("  Keras masking: token id 0 is masked")
        if self.reverse_output:
            extra.append("  outputs in Keras' go_backwards (reversed) order")
        return "\n".join([super().__repr__()] + extra)
