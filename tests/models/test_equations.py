"""The LSTM and GRU of chapter 5: the hand-written backward pass against finite differences, and
the NumPy forward pass against PyTorch and Keras with copied weights."""

from __future__ import annotations

import numpy as np
import pytest

from stlab.models.equations import (GRUWeights, LSTMWeights, concatenate_weights, gru_forward, gru_to_keras,
                                    gru_to_torch_state, lstm_backward, lstm_forward, lstm_to_keras,
                                    lstm_to_torch_state, sigmoid, split_concatenated)

T, B, D, H = 6, 3, 4, 5


def _inputs(dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(T, B, D)).astype(dtype), rng.normal(size=(B, H)).astype(dtype) * 0.5,
            rng.normal(size=(B, H)).astype(dtype) * 0.5)


def test_sigmoid_is_stable_and_correct():
    x = np.array([-1000.0, -3.0, 0.0, 3.0, 1000.0])
    with np.errstate(over="raise"):
        out = sigmoid(x)
    np.testing.assert_allclose(out, [0.0, 1 / (1 + np.exp(3)), 0.5, 1 / (1 + np.exp(-3)), 1.0])


def test_lstm_backward_matches_finite_differences():
    weights = LSTMWeights.init(D, H, seed=0)
    x, h0, c0 = _inputs()
    rng = np.random.default_rng(2)
    R, S = rng.normal(size=(T, B, H)), rng.normal(size=(B, H))

    def loss() -> float:  # a scalar that uses every hidden state and the last cell state
        h, c_last, _ = lstm_forward(weights, x, h0, c0)
        return float((h * R).sum() + (c_last * S).sum())

    _, _, cache = lstm_forward(weights, x, h0, c0)
    grads = lstm_backward(weights, cache, R, dc_last=S)
    eps = 1e-6
    for name, array, grad in (("W_x", weights.W_x, grads.W_x), ("W_h", weights.W_h, grads.W_h),
                              ("b", weights.b, grads.b), ("x", x, grads.x), ("h0", h0, grads.h0),
                              ("c0", c0, grads.c0)):
        for index in zip(*[rng.integers(0, n, 8) for n in array.shape]):
            saved = array[index]
            array[index] = saved + eps
            up = loss()
            array[index] = saved - eps
            down = loss()
            array[index] = saved
            numeric = (up - down) / (2 * eps)
            assert grad[index] == pytest.approx(numeric, rel=1e-5, abs=1e-8), (name, index)


def test_lstm_backward_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    weights = LSTMWeights.init(D, H, seed=3)
    x, h0, c0 = _inputs(seed=4)
    R = np.random.default_rng(5).normal(size=(T, B, H))
    _, _, cache = lstm_forward(weights, x, h0, c0)
    ours = lstm_backward(weights, cache, R)
    lstm = torch.nn.LSTM(D, H, dtype=torch.float64)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in lstm_to_torch_state(weights).items()})
    xt = torch.from_numpy(x).requires_grad_(True)
    out, _ = lstm(xt, (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))
    (out * torch.from_numpy(R)).sum().backward()
    np.testing.assert_allclose(ours.W_x, lstm.weight_ih_l0.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.W_h, lstm.weight_hh_l0.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.b, lstm.bias_ih_l0.grad.numpy(), atol=1e-10)
    np.testing.assert_allclose(ours.x, xt.grad.numpy(), atol=1e-10)


def test_concatenated_notation_is_the_same_model():
    weights = LSTMWeights.init(D, H, seed=6)
    x, h0, c0 = _inputs()
    W = concatenate_weights(weights)  # [4H, H + D], applied to [h, x]
    assert W.shape == (4 * H, H + D)
    a_two = x[0] @ weights.W_x.T + h0 @ weights.W_h.T
    a_one = np.concatenate([h0, x[0]], axis=1) @ W.T
    np.testing.assert_allclose(a_one, a_two, atol=1e-12)
    back = split_concatenated(W, weights.b, H)
    np.testing.assert_array_equal(lstm_forward(back, x, h0, c0)[0], lstm_forward(weights, x, h0, c0)[0])
    with pytest.raises(ValueError, match=r"\[4H, H \+ D\]"):
        split_concatenated(W[:, :H], weights.b, H)


@pytest.mark.parametrize("dtype,tolerance", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_parity_with_torch(dtype, tolerance):
    torch = pytest.importorskip("torch")
    torch_dtype = torch.float64 if dtype == np.float64 else torch.float32
    x, h0, c0 = _inputs(dtype)
    lstm_w = LSTMWeights.init(D, H, seed=7, dtype=dtype)
    lstm = torch.nn.LSTM(D, H, dtype=torch_dtype)
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in lstm_to_torch_state(lstm_w).items()})
    gru_w = GRUWeights.init(D, H, seed=8, dtype=dtype)
    gru = torch.nn.GRU(D, H, dtype=torch_dtype)
    gru.load_state_dict({k: torch.from_numpy(v) for k, v in gru_to_torch_state(gru_w).items()})
    with torch.no_grad():
        lstm_out, (_, c_last) = lstm(torch.from_numpy(x), (torch.from_numpy(h0)[None], torch.from_numpy(c0)[None]))
        gru_out, _ = gru(torch.from_numpy(x), torch.from_numpy(h0)[None])
    h, c_T, _ = lstm_forward(lstm_w, x, h0, c0)
    assert np.abs(h - lstm_out.numpy()).max() <= tolerance
    assert np.abs(c_T - c_last[0].numpy()).max() <= tolerance
    assert np.abs(gru_forward(gru_w, x, h0) - gru_out.numpy()).max() <= tolerance


@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-10), ("float32", 1e-5)])
def test_parity_with_keras(dtype, tolerance):
    keras = pytest.importorskip("keras")
    x, h0, c0 = _inputs(np.dtype(dtype).type)
    batch_first = np.transpose(x, (1, 0, 2))  # Keras is [B, T, D]
    lstm_w = LSTMWeights.init(D, H, seed=9, dtype=np.dtype(dtype).type)
    lstm = keras.layers.LSTM(H, return_sequences=True, dtype=dtype)
    lstm.build((B, T, D))
    lstm.set_weights(lstm_to_keras(lstm_w))
    keras_h = keras.ops.convert_to_numpy(lstm(batch_first, initial_state=[h0, c0]))
    ours = np.transpose(lstm_forward(lstm_w, x, h0, c0)[0], (1, 0, 2))
    assert np.abs(ours - keras_h).max() <= tolerance
    gru_w = GRUWeights.init(D, H, seed=10, dtype=np.dtype(dtype).type)
    gru = keras.layers.GRU(H, return_sequences=True, reset_after=True, dtype=dtype)
    gru.build((B, T, D))
    gru.set_weights(gru_to_keras(gru_w))
    keras_g = keras.ops.convert_to_numpy(gru(batch_first, initial_state=h0))
    assert np.abs(np.transpose(gru_forward(gru_w, x, h0), (1, 0, 2)) - keras_g).max() <= tolerance


def test_bad_shapes_are_named():
    weights = LSTMWeights.init(D, H)
    with pytest.raises(ValueError, match=r"\[T, B, D\]"):
        lstm_forward(weights, np.zeros((T, D)))
    with pytest.raises(ValueError, match="features but the weights expect"):
        gru_forward(GRUWeights.init(D, H), np.zeros((T, B, D + 1)))
