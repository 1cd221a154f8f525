"""Models converted from live torch modules against torch itself.

The truth is the same module in float64 (weights are float32 values, so both sides compute the same function):
the comparison then measures lstmrt's float32 error only, not torch's. Sizes are the awkward ones of the engine
issue (1, 3, 17, 64, 130), in a cross product chosen to cover each size in each role while staying fast."""

import copy

import numpy as np
import pytest
import torch
from conftest import assert_cell_close, assert_close
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import lstmrt


@pytest.fixture(autouse=True)
def _torch_seed(rng):
    torch.manual_seed(int(rng.integers(2**31)))


def as64(module):
    return copy.deepcopy(module).double().eval()


def inputs(rng, B, T, input_size):
    return rng.standard_normal((B, T, input_size)).astype(np.float32)


def torch_run(module, X):
    """Output sequence and final state of a batch-first recurrent module in float64."""
    with torch.no_grad():
        y, state = as64(module)(torch.from_numpy(X).double())
    return y.numpy(), state


def check_final_state(model, X, state64, lstm):
    """The stream state after run(X) equals torch's h_n (and c_n): one entry per layer."""
    s = model.stream(batch=X.shape[0])
    s.run(X)
    h_n = (state64[0] if lstm else state64).numpy()
    for layer, got in enumerate(s.state):
        assert_close(got[0], h_n[layer], what=f"h_n layer {layer}")
        if lstm:
            assert_cell_close(got[1], state64[1].numpy()[layer], what=f"c_n layer {layer}")


def check_recurrent_module(rng, module, B, T, *, lstm):
    """predict against torch in float64; for one direction also the final state after streaming."""
    model = lstmrt.from_torch(module)
    X = inputs(rng, B, T, module.input_size)
    y64, state64 = torch_run(module, X)
    assert_close(model.predict(X), y64)
    if not module.bidirectional:
        check_final_state(model, X, state64, lstm=lstm)


# (input_size, hidden_size, num_layers, bidirectional, proj_size, bias, batch, steps)
LSTM_CASES = [
    (1, 1, 1, False, 0, True, 1, 500),
    (3, 17, 2, False, 0, True, 3, 120),
    (17, 64, 1, True, 0, True, 3, 40),
    (64, 130, 1, False, 0, True, 1, 200),
    (130, 3, 2, True, 0, False, 3, 30),
    (17, 64, 2, False, 17, True, 3, 60),
    (3, 130, 1, True, 64, True, 1, 25),
    (64, 17, 3, False, 1, False, 3, 20),
    (1, 3, 1, False, 0, False, 1, 7),
]


@pytest.mark.parametrize("input_size,hidden_size,layers,bidir,proj,bias,B,T", LSTM_CASES)
def test_lstm(rng, input_size, hidden_size, layers, bidir, proj, bias, B, T):
    module = torch.nn.LSTM(
        input_size, hidden_size, num_layers=layers, bidirectional=bidir, proj_size=proj, bias=bias, batch_first=True
    )
    check_recurrent_module(rng, module, B, T, lstm=True)


# (input_size, hidden_size, num_layers, bidirectional, bias, batch, steps)
GRU_CASES = [
    (1, 1, 1, False, True, 1, 500),
    (17, 3, 2, False, True, 3, 90),
    (3, 64, 1, True, True, 3, 50),
    (130, 17, 1, False, False, 1, 40),
    (64, 130, 2, True, True, 1, 30),
]


@pytest.mark.parametrize("input_size,hidden_size,layers,bidir,bias,B,T", GRU_CASES)
def test_gru(rng, input_size, hidden_size, layers, bidir, bias, B, T):
    module = torch.nn.GRU(input_size, hidden_size, num_layers=layers, bidirectional=bidir, bias=bias, batch_first=True)
    check_recurrent_module(rng, module, B, T, lstm=False)


# (nonlinearity, input_size, hidden_size, num_layers, bidirectional, batch, steps)
RNN_CASES = [
    ("tanh", 1, 1, 1, False, 1, 500),
    ("tanh", 17, 64, 2, True, 3, 40),
    ("relu", 3, 17, 1, False, 3, 200),
    ("relu", 130, 3, 2, False, 1, 30),
    ("relu", 64, 130, 1, True, 3, 20),
]


@pytest.mark.parametrize("nonlinearity,input_size,hidden_size,layers,bidir,B,T", RNN_CASES)
def test_rnn(rng, nonlinearity, input_size, hidden_size, layers, bidir, B, T):
    module = torch.nn.RNN(
        input_size, hidden_size, num_layers=layers, nonlinearity=nonlinearity, bidirectional=bidir, batch_first=True
    )
    check_recurrent_module(rng, module, B, T, lstm=False)


# -- cells: one stream step = one cell call ---------------------------------------------------------------------
CELL_CASES = [
    ("LSTMCell", {}, 1, 1, None),
    ("LSTMCell", {}, 17, 130, 3),
    ("GRUCell", {}, 3, 17, None),
    ("GRUCell", {}, 130, 64, 3),
    ("RNNCell", {"nonlinearity": "tanh"}, 64, 3, 3),
    ("RNNCell", {"nonlinearity": "relu"}, 17, 17, None),
    ("LSTMCell", {"bias": False}, 3, 64, 3),
]


@pytest.mark.parametrize("kind,kwargs,input_size,hidden_size,batch", CELL_CASES)
def test_cell_steps(rng, kind, kwargs, input_size, hidden_size, batch):
    cell = getattr(torch.nn, kind)(input_size, hidden_size, **kwargs)
    model = lstmrt.from_torch(cell)
    cell64 = as64(cell)
    stream = model.stream(batch=batch)
    B = batch or 1
    lstm = kind == "LSTMCell"
    state = (torch.zeros(B, hidden_size, dtype=torch.float64),) * (2 if lstm else 1)
    for t in range(25):
        x = rng.standard_normal((B, input_size)).astype(np.float32)
        with torch.no_grad():
            out = cell64(torch.from_numpy(x).double(), state if lstm else state[0])
        state = out if lstm else (out,)
        y = stream.step(x if batch else x[0])
        assert_close(y, state[0].numpy() if batch else state[0].numpy()[0], what=f"h at step {t}")
    got = stream.state[0]
    want = [s.numpy() if batch else s.numpy()[0] for s in state]
    assert_close(got[0], want[0], what="h")
    if lstm:
        assert_cell_close(got[1], want[1])


# -- heads ------------------------------------------------------------------------------------------------------
def test_lstm_with_linear_head(rng):
    lstm = torch.nn.LSTM(17, 64, num_layers=2, batch_first=True)
    head = torch.nn.Linear(64, 3)
    model = lstmrt.Model(lstmrt.from_torch(lstm).layers + lstmrt.from_torch(head).layers)
    X = inputs(rng, 3, 40, 17)
    y64, _ = torch_run(lstm, X)
    with torch.no_grad():
        want = as64(head)(torch.from_numpy(y64)).numpy()
    assert_close(model.predict(X), want)


def test_gru_with_sequential_head(rng):
    gru = torch.nn.GRU(3, 130, batch_first=True, bidirectional=True)
    head = torch.nn.Sequential(
        torch.nn.Linear(260, 17),
        torch.nn.ReLU(),
        torch.nn.Linear(17, 64),
        torch.nn.Tanh(),
        torch.nn.Dropout(0.5),
        torch.nn.Linear(64, 1),
        torch.nn.Sigmoid(),
    )
    model = lstmrt.Model(lstmrt.from_torch(gru).layers + lstmrt.from_torch(head).layers)
    X = inputs(rng, 3, 30, 3)
    y64, _ = torch_run(gru, X)
    with torch.no_grad():
        want = as64(head)(torch.from_numpy(y64)).numpy()
    assert_close(model.predict(X), want)


def test_sequential_alone(rng):
    head = torch.nn.Sequential(torch.nn.Linear(1, 130), torch.nn.Sigmoid(), torch.nn.Linear(130, 3), torch.nn.ReLU())
    model = lstmrt.from_torch(head)
    X = inputs(rng, 1, 9, 1)
    with torch.no_grad():
        want = as64(head)(torch.from_numpy(X).double()).numpy()
    assert_close(model.predict(X), want)


# -- packed sequences -------------------------------------------------------------------------------------------
def packed_run(module, X, lengths):
    with torch.no_grad():
        packed = pack_padded_sequence(
            torch.from_numpy(X).double(), torch.from_numpy(lengths), batch_first=True, enforce_sorted=False
        )
        y, state = as64(module)(packed)
        y, _ = pad_packed_sequence(y, batch_first=True, total_length=X.shape[1])
    return y.numpy(), state


def random_lengths(rng, B, T):
    lengths = rng.integers(1, T + 1, size=B)
    lengths[rng.integers(B)] = T
    return lengths.astype(np.int64)


PACKED_CASES = [
    ("LSTM", dict(num_layers=2, bidirectional=True), 17, 3, 5, 40),
    ("LSTM", dict(proj_size=3, bidirectional=True), 3, 17, 3, 60),
    ("GRU", dict(bidirectional=True), 64, 17, 4, 30),
    ("RNN", dict(num_layers=2, bidirectional=True, nonlinearity="relu"), 3, 64, 3, 25),
]


@pytest.mark.parametrize("kind,kwargs,input_size,hidden_size,B,T", PACKED_CASES)
def test_packed_sequences(rng, kind, kwargs, input_size, hidden_size, B, T):
    module = getattr(torch.nn, kind)(input_size, hidden_size, batch_first=True, **kwargs)
    model = lstmrt.from_torch(module)
    X = inputs(rng, B, T, input_size)
    lengths = random_lengths(rng, B, T)
    want, _ = packed_run(module, X, lengths)
    got = model.predict(X, lengths=lengths)
    assert_close(got, want)
    for b in range(B):
        assert np.all(got[b, lengths[b] :] == 0.0), "padding outputs must be exactly 0"


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_packed_final_state(rng, kind):
    """torch's h_n of a packed batch is each sequence's state at its own last step: a stream run over exactly
    that many steps must end there too."""
    module = getattr(torch.nn, kind)(17, 64, num_layers=2, batch_first=True)
    model = lstmrt.from_torch(module)
    X = inputs(rng, 3, 50, 17)
    lengths = random_lengths(rng, 3, 50)
    _, state64 = packed_run(module, X, lengths)
    lstm = kind == "LSTM"
    h_n = (state64[0] if lstm else state64).numpy()
    s = model.stream()
    for b in range(3):
        s.reset()
        s.run(X[b, : lengths[b]])
        for layer, got in enumerate(s.state):
            assert_close(got[0], h_n[layer, b], what=f"h_n layer {layer}, sequence {b}")
            if lstm:
                assert_cell_close(got[1], state64[1].numpy()[layer, b])
