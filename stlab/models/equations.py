"""The LSTM and the GRU from their equations, in NumPy: forward pass, backward pass through time,
and converters to the weight layouts of PyTorch and Keras.

LSTM (Hochreiter & Schmidhuber, 1997; with forget gate, Gers et al., 2000), for each step ``t``:

.. math::

    i_t &= \\sigma(W_{xi} x_t + W_{hi} h_{t-1} + b_i)   \\\\
    f_t &= \\sigma(W_{xf} x_t + W_{hf} h_{t-1} + b_f)   \\\\
    g_t &= \\tanh(W_{xg} x_t + W_{hg} h_{t-1} + b_g)    \\\\
    o_t &= \\sigma(W_{xo} x_t + W_{ho} h_{t-1} + b_o)   \\\\
    c_t &= f_t \\odot c_{t-1} + i_t \\odot g_t,  \\qquad  h_t = o_t \\odot \\tanh(c_t)

The four gates are stacked in the order ``(i, f, g, o)`` -- PyTorch's and Keras's order -- so
``W_x`` is ``[4H, D]``, ``W_h`` is ``[4H, H]`` and ``b`` is ``[4H]``. Writing one matrix
``W`` applied to the concatenation ``[h_{t-1}, x_t]`` is the same model:
``W = [W_h | W_x]`` (:func:`split_concatenated`, :func:`concatenate_weights`).

GRU (Cho et al., 2014), in the "reset after" form of PyTorch and of Keras's default
(``reset_after=True``):

.. math::

    r_t &= \\sigma(W_{xr} x_t + b_{xr} + W_{hr} h_{t-1} + b_{hr})   \\\\
    z_t &= \\sigma(W_{xz} x_t + b_{xz} + W_{hz} h_{t-1} + b_{hz})   \\\\
    n_t &= \\tanh(W_{xn} x_t + b_{xn} + r_t \\odot (W_{hn} h_{t-1} + b_{hn}))  \\\\
    h_t &= (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}

stacked in PyTorch's order ``(r, z, n)``; Keras stacks ``(z, r, n)``.

Introduced in chapter 5 (LSTM and GRU from their equations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def sigmoid(x: np.ndarray) -> np.ndarray:
    """Logistic function, computed without overflow for large negative inputs."""
    out = np.empty_like(x)
    positive = x >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-x[positive]))
    e = np.exp(x[~positive])
    out[~positive] = e / (1.0 + e)
    return out


# --------------------------------------------------------------------------- LSTM

@dataclass
class _RecurrentWeights:
    """Input and recurrent matrices shared by the LSTM and GRU weights (gates stacked on rows)."""

    W_x: np.ndarray
    W_h: np.ndarray

    @property
    def hidden_size(self) -> int:
        return int(self.W_h.shape[1])

    @property
    def input_size(self) -> int:
        return int(self.W_x.shape[1])


@dataclass
class LSTMWeights(_RecurrentWeights):
    """Weights of one LSTM layer, gates stacked ``(i, f, g, o)``.

    Shapes:
        W_x: ``[4H, D]``; W_h: ``[4H, H]``; b: ``[4H]``.
    """

    b: np.ndarray

    @classmethod
    def init(cls, input_size: int, hidden_size: int, *, seed: int = 0, dtype: type = np.float64) -> LSTMWeights:
        """Uniform in ``±1/sqrt(H)``, PyTorch's default initialisation."""
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(hidden_size)
        return cls(W_x=rng.uniform(-k, k, (4 * hidden_size, input_size)).astype(dtype),
                   W_h=rng.uniform(-k, k, (4 * hidden_size, hidden_size)).astype(dtype),
                   b=rng.uniform(-k, k, 4 * hidden_size).astype(dtype))


@dataclass
class LSTMCache:
    """What the backward pass needs from the forward pass (all ``[T, B, .]``)."""

    x: np.ndarray
    h: np.ndarray  # [T + 1, B, H], h[0] = h_0
    c: np.ndarray  # [T + 1, B, H], c[0] = c_0
    gates: np.ndarray  # [T, B, 4H] after their nonlinearities


def _check_sequence(x: np.ndarray, input_size: int) -> None:
    if x.ndim != 3:
        raise ValueError(f"x must be [T, B, D] (time first), got shape {x.shape}")
    if x.shape[2] != input_size:
        raise ValueError(f"x has {x.shape[2]} features but the weights expect {input_size}")


def lstm_forward(weights: LSTMWeights, x: np.ndarray, h0: np.ndarray | None = None,
                 c0: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, LSTMCache]:
    """Run the LSTM over a sequence.

    Args:
        weights: the layer's weights.
        x: ``[T, B, D]`` inputs, time first.
        h0, c0: ``[B, H]`` initial states (zeros if omitted).

    Returns:
        ``(h, c_T, cache)``: all hidden states ``[T, B, H]``, the last cell state ``[B, H]``, and
        the cache for :func:`lstm_backward`.
    """
    _check_sequence(x, weights.input_size)
    T, B, _ = x.shape
    H = weights.hidden_size
    h = np.zeros((T + 1, B, H), dtype=x.dtype)
    c = np.zeros((T + 1, B, H), dtype=x.dtype)
    if h0 is not None:
        h[0] = h0
    if c0 is not None:
        c[0] = c0
    gates = np.empty((T, B, 4 * H), dtype=x.dtype)
    for t in range(T):
        a = x[t] @ weights.W_x.T + h[t] @ weights.W_h.T + weights.b  # [B, 4H] pre-activations
        i, f = sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H])
        g, o = np.tanh(a[:, 2 * H:3 * H]), sigmoid(a[:, 3 * H:])
        c[t + 1] = f * c[t] + i * g
        h[t + 1] = o * np.tanh(c[t + 1])
        gates[t] = np.concatenate([i, f, g, o], axis=1)
    return h[1:], c[T], LSTMCache(x=x, h=h, c=c, gates=gates)


@dataclass
class LSTMGradients:
    """Gradients of a scalar loss with respect to weights, inputs and initial states."""

    W_x: np.ndarray
    W_h: np.ndarray
    b: np.ndarray
    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray


def lstm_backward(weights: LSTMWeights, cache: LSTMCache, dh: np.ndarray,
                  dc_last: np.ndarray | None = None) -> LSTMGradients:
    """Backpropagation through time for :func:`lstm_forward`, written out by hand.

    Args:
        weights: the weights used in the forward pass.
        cache: its cache.
        dh: ``[T, B, H]`` gradient of the loss with respect to every hidden state output.
        dc_last: ``[B, H]`` gradient with respect to the last cell state, if the loss uses it.

    Going backwards, at step ``t`` with ``dh_t`` (from the loss and from step ``t + 1``):
    ``do = dh tanh(c_t)``, ``dc = dc_{t+1 -> t} + dh o (1 - tanh^2 c_t)``, ``di = dc g``,
    ``dg = dc i``, ``df = dc c_{t-1}``, ``dc_{t-1} = dc f``; through the nonlinearities
    ``da = [di i(1-i), df f(1-f), dg (1-g^2), do o(1-o)]``; then ``dW_x += da^T x_t``,
    ``dW_h += da^T h_{t-1}``, ``db += sum da``, ``dx_t = da W_x``, ``dh_{t-1} += da W_h``.
    """
    x, h, c, gates = cache.x, cache.h, cache.c, cache.gates
    T, B, _ = x.shape
    H = weights.hidden_size
    grads = LSTMGradients(W_x=np.zeros_like(weights.W_x), W_h=np.zeros_like(weights.W_h),
                          b=np.zeros_like(weights.b), x=np.zeros_like(x),
                          h0=np.zeros((B, H), dtype=x.dtype), c0=np.zeros((B, H), dtype=x.dtype))
    dh_next = np.zeros((B, H), dtype=x.dtype)
    dc_next = np.zeros((B, H), dtype=x.dtype) if dc_last is None else dc_last.copy()
    for t in reversed(range(T)):
        i, f = gates[t, :, :H], gates[t, :, H:2 * H]
        g, o = gates[t, :, 2 * H:3 * H], gates[t, :, 3 * H:]
        tanh_c = np.tanh(c[t + 1])
        dh_t = dh[t] + dh_next
        do = dh_t * tanh_c
        dc = dc_next + dh_t * o * (1.0 - tanh_c ** 2)
        di, dg, df = dc * g, dc * i, dc * c[t]
        da = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
        grads.W_x += da.T @ x[t]
        grads.W_h += da.T @ h[t]
        grads.b += da.sum(axis=0)
        grads.x[t] = da @ weights.W_x
        dh_next = da @ weights.W_h
        dc_next = dc * f
    grads.h0, grads.c0 = dh_next, dc_next
    return grads


def concatenate_weights(weights: LSTMWeights) -> np.ndarray:
    """``W`` of the single-matrix notation ``W [h_{t-1}, x_t] + b``: ``[4H, H + D]``."""
    return np.concatenate([weights.W_h, weights.W_x], axis=1)


def split_concatenated(W: np.ndarray, b: np.ndarray, hidden_size: int) -> LSTMWeights:
    """The inverse of :func:`concatenate_weights`: ``W = [W_h | W_x]`` back to two matrices."""
    if W.shape[0] != 4 * hidden_size or W.shape[1] <= hidden_size:
        raise ValueError(f"W must be [4H, H + D] with H = {hidden_size}, got {W.shape}")
    return LSTMWeights(W_x=W[:, hidden_size:], W_h=W[:, :hidden_size], b=b)


# --------------------------------------------------------------------------- GRU

@dataclass
class GRUWeights(_RecurrentWeights):
    """Weights of one GRU layer ("reset after"), gates stacked ``(r, z, n)`` as in PyTorch.

    Shapes:
        W_x: ``[3H, D]``; W_h: ``[3H, H]``; b_x: ``[3H]``; b_h: ``[3H]``.
    """

    b_x: np.ndarray
    b_h: np.ndarray

    @classmethod
    def init(cls, input_size: int, hidden_size: int, *, seed: int = 0, dtype: type = np.float64) -> GRUWeights:
        rng = np.random.default_rng(seed)
        k = 1.0 / np.sqrt(hidden_size)

        def u(*shape: int) -> np.ndarray:
            return rng.uniform(-k, k, shape).astype(dtype)

        return cls(W_x=u(3 * hidden_size, input_size), W_h=u(3 * hidden_size, hidden_size),
                   b_x=u(3 * hidden_size), b_h=u(3 * hidden_size))


def gru_forward(weights: GRUWeights, x: np.ndarray, h0: np.ndarray | None = None) -> np.ndarray:
    """Run the GRU over ``x`` ``[T, B, D]``; return all hidden states ``[T, B, H]``."""
    _check_sequence(x, weights.input_size)
    T, B, _ = x.shape
    H = weights.hidden_size
    h = np.zeros((B, H), dtype=x.dtype) if h0 is None else h0.astype(x.dtype)
    out = np.empty((T, B, H), dtype=x.dtype)
    for t in range(T):
        ax = x[t] @ weights.W_x.T + weights.b_x  # [B, 3H]
        ah = h @ weights.W_h.T + weights.b_h  # [B, 3H]
        r = sigmoid(ax[:, :H] + ah[:, :H])
        z = sigmoid(ax[:, H:2 * H] + ah[:, H:2 * H])
        n = np.tanh(ax[:, 2 * H:] + r * ah[:, 2 * H:])  # the reset gate acts after W_hn
        h = (1 - z) * n + z * h
        out[t] = h
    return out


# --------------------------------------------------------------------------- framework layouts

def lstm_to_torch_state(weights: LSTMWeights) -> dict[str, np.ndarray]:
    """State dict of a one-layer ``torch.nn.LSTM``: same gate order; its second bias is zero."""
    return {"weight_ih_l0": weights.W_x, "weight_hh_l0": weights.W_h, "bias_ih_l0": weights.b,
            "bias_hh_l0": np.zeros_like(weights.b)}


def lstm_to_keras(weights: LSTMWeights) -> list[np.ndarray]:
    """``[kernel, recurrent_kernel, bias]`` of ``keras.layers.LSTM``: transposed, same gate order."""
    return [weights.W_x.T, weights.W_h.T, weights.b]


def gru_to_torch_state(weights: GRUWeights) -> dict[str, np.ndarray]:
    """State dict of a one-layer ``torch.nn.GRU`` (gate order ``(r, z, n)``, reset after)."""
    return {"weight_ih_l0": weights.W_x, "weight_hh_l0": weights.W_h, "bias_ih_l0": weights.b_x,
            "bias_hh_l0": weights.b_h}


def _torch_to_keras_gru_order(a: np.ndarray, hidden_size: int) -> np.ndarray:
    """Reorder stacked gates ``(r, z, n)`` -> Keras's ``(z, r, n)`` along axis 0."""
    H = hidden_size
    return np.concatenate([a[H:2 * H], a[:H], a[2 * H:]], axis=0)


def gru_to_keras(weights: GRUWeights) -> list[np.ndarray]:
    """``[kernel, recurrent_kernel, bias]`` of ``keras.layers.GRU(reset_after=True)``.

    Keras stacks ``(z, r, n)`` and keeps input and recurrent biases as the two rows of a
    ``[2, 3H]`` bias.
    """
    H = weights.hidden_size
    kernel = _torch_to_keras_gru_order(weights.W_x, H).T  # [D, 3H]
    recurrent = _torch_to_keras_gru_order(weights.W_h, H).T  # [H, 3H]
    bias = np.stack([_torch_to_keras_gru_order(weights.b_x, H), _torch_to_keras_gru_order(weights.b_h, H)])
    return [kernel, recurrent, bias]


__all__ = [
    "GRUWeights", "LSTMCache", "LSTMGradients", "LSTMWeights", "concatenate_weights", "gru_forward",
    "gru_to_keras", "gru_to_torch_state", "lstm_backward", "lstm_forward", "lstm_to_keras",
    "lstm_to_torch_state", "sigmoid", "split_concatenated",
]
