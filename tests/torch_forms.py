"""A torch module in each form a user hands it to lstmrt: the live module, a torch.jit.script file, a torch.jit.trace
file; and torch's own output to compare with."""

import warnings

import torch

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
