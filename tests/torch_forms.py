"""A torch module in each form a user hands it to lstmrt: the live module, a torch.jit.script file, a torch.jit.trace
file; and torch's own output to compare with. Modules more than one test file exports."""

import warnings

import torch
from torch import nn

import lstmrt


def load_as(net, how: str, example, tmp_path) -> lstmrt.Model:
    """lstmrt's model of `net`: how = "live", "script" or "trace" (traced on `example`, a torch input)."""
    if how == "live":
        return lstmrt.load(net)
    with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; its archives are still what users have
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        compiled = torch.jit.script(net) if how == "script" else torch.jit.trace(net, example)
        compiled.save(str(tmp_path / "m.pt"))
    return lstmrt.load(tmp_path / "m.pt")


def run_torch(net, example):
    with torch.no_grad():
        return net(example).numpy()


def perturb(net, scale=0.3):
    """Adds scale * N(0, 1) to every parameter of `net` (in place; returns it): weights away from torch's
    initialisation (norm weights from 1, biases from 0, attention scores from uniform), so their mapping is checked."""
    with torch.no_grad():
        for p in net.parameters():
            p.add_(scale * torch.randn_like(p))
    return net


def forget_rnn_dispatch():
    """torch 2.13 caches how aten.lstm / aten.gru dispatch during a default-exporter export; a later export then
    decomposes the RNN into a loop over the example's steps and its file has a static time axis (test_load_onnx.py
    orders its exports for that). Dropping those cache entries gives every export a dynamic time axis again; where
    that stops working, the test runs the file at its static time size."""
    for op in (torch.ops.aten.lstm.input, torch.ops.aten.gru.input):
        cache = getattr(op, "_dispatch_cache", None)
        if isinstance(cache, dict):
            cache.clear()


class Pooled(nn.Module):
    """LSTM, an optional nn.LayerNorm, a reduction over time (or none), a Linear to 2; every weight randomized (norm
    weights and biases away from 1 and 0)."""

    def __init__(self, inputs, hidden, reduce, norm=False):
        super().__init__()
        self.lstm = nn.LSTM(inputs, hidden, batch_first=True)
        self.norm = nn.LayerNorm(hidden, eps=1e-3) if norm else nn.Identity()
        self.fc = nn.Linear(hidden, 2)
        self.reduce = reduce
        perturb(self)

    def forward(self, x):
        out, _ = self.lstm(x)
        out = self.norm(out)
        if self.reduce == "mean":
            out = out.mean(1)
        elif self.reduce == "max":
            out = out.max(1)[0]
        elif self.reduce == "amax":
            out = torch.amax(out, dim=1)
        elif self.reduce == "mean-keepdim":
            out = out.mean(dim=1, keepdim=True)
        return self.fc(out)
