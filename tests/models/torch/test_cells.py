"""The from-scratch PyTorch LSTM against nn.LSTM and the NumPy equations; the gradient-by-lag probe."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stlab.models.equations import LSTMWeights, lstm_backward, lstm_forward, lstm_to_torch_state  # noqa: E402
from stlab.models.torch.cells import ScratchLSTM, gradient_norm_by_lag  # noqa: E402


def test_scratch_lstm_equals_nn_lstm_and_numpy():
    weights = LSTMWeights.init(4, 6, seed=1)
    x = np.random.default_rng(2).normal(size=(7, 3, 4))
    scratch = ScratchLSTM.from_weights(weights)
    reference = torch.nn.LSTM(4, 6, dtype=torch.float64)
    reference.load_state_dict({k: torch.from_numpy(v) for k, v in lstm_to_torch_state(weights).items()})
    xt = torch.from_numpy(x)
    ours, (h, c) = scratch(xt)
    theirs, (h_ref, c_ref) = reference(xt)
    assert (ours - theirs).abs().max().item() <= 1e-10
    assert (c - c_ref[0]).abs().max().item() <= 1e-10
    np.testing.assert_allclose(ours.detach().numpy(), lstm_forward(weights, x)[0], atol=1e-12)


def test_autograd_through_scratch_lstm_equals_hand_backward():
    weights = LSTMWeights.init(3, 5, seed=3)
    x = np.random.default_rng(4).normal(size=(6, 2, 3))
    R = np.random.default_rng(5).normal(size=(6, 2, 5))
    scratch = ScratchLSTM.from_weights(weights)
    out, _ = scratch(torch.from_numpy(x))
    (out * torch.from_numpy(R)).sum().backward()
    _, _, cache = lstm_forward(weights, x)
    grads = lstm_backward(weights, cache, R)
    np.testing.assert_allclose(scratch.W_x.grad.numpy(), grads.W_x, atol=1e-10)
    np.testing.assert_allclose(scratch.W_h.grad.numpy(), grads.W_h, atol=1e-10)
    np.testing.assert_allclose(scratch.b.grad.numpy(), grads.b, atol=1e-10)


def test_gradient_norm_by_lag_shape_and_reproducibility():
    a = gradient_norm_by_lag("rnn", seq_len=20, hidden_size=8, num_inits=2, seed=1)
    b = gradient_norm_by_lag("rnn", seq_len=20, hidden_size=8, num_inits=2, seed=1)
    assert a.shape == (20,) and np.array_equal(a, b) and (a >= 0).all()
    with pytest.raises(ValueError, match="cell must be"):
        gradient_norm_by_lag("transformer")
