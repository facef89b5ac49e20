"""Recurrent cells written from their equations in PyTorch, differentiated by autograd, and a
measurement of vanishing gradients.

Introduced in chapter 5 (LSTM and GRU from their equations).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from stlab.models.equations import LSTMWeights


class ScratchLSTM(nn.Module):
    """A one-layer LSTM built from the gate equations (no ``nn.LSTM`` inside).

    Gates are stacked ``(i, f, g, o)`` as in :mod:`stlab.models.equations`, so weights copy
    one to one from :class:`~stlab.models.equations.LSTMWeights` and into ``torch.nn.LSTM``.

    Args:
        input_size: ``D``, features per step.
        hidden_size: ``H``.

    Shapes:
        - input: ``[T, B, D]`` (time first, like ``nn.LSTM``'s default).
        - output: ``[T, B, H]`` hidden states, and the final ``(h, c)``, each ``[B, H]``.
    """

    def __init__(self, input_size: int, hidden_size: int, *, dtype: torch.dtype = torch.float32) -> None:
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        self.W_x = nn.Parameter(torch.empty(4 * hidden_size, input_size, dtype=dtype))
        self.W_h = nn.Parameter(torch.empty(4 * hidden_size, hidden_size, dtype=dtype))
        self.b = nn.Parameter(torch.empty(4 * hidden_size, dtype=dtype))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Uniform in ``±1/sqrt(H)``, as ``nn.LSTM``."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    @classmethod
    def from_weights(cls, weights: LSTMWeights) -> ScratchLSTM:
        """A module holding a copy of NumPy weights (dtype kept)."""
        dtype = torch.float64 if weights.W_x.dtype == np.float64 else torch.float32
        module = cls(weights.input_size, weights.hidden_size, dtype=dtype)
        with torch.no_grad():
            module.W_x.copy_(torch.from_numpy(weights.W_x))
            module.W_h.copy_(torch.from_numpy(weights.W_h))
            module.b.copy_(torch.from_numpy(weights.b))
        return module

    def forward(self, x: torch.Tensor, state: tuple[torch.Tensor, torch.Tensor] | None = None
                ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        T, B, _ = x.shape
        H = self.hidden_size
        h = x.new_zeros(B, H) if state is None else state[0]
        c = x.new_zeros(B, H) if state is None else state[1]
        x_proj = x @ self.W_x.T + self.b  # [T, B, 4H]: the input part of every step at once
        outputs = []
        for t in range(T):
            a = x_proj[t] + h @ self.W_h.T  # [B, 4H]
            i, f, g, o = a.split(H, dim=1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs), (h, c)  # [T, B, H]


def gradient_norm_by_lag(cell: str, seq_len: int = 100, *, hidden_size: int = 32, input_size: int = 8,
                         batch_size: int = 16, num_inits: int = 5, seed: int = 0,
                         forget_bias: float = 0.0) -> np.ndarray:
    """How much the last hidden state depends on each earlier input: ``||d h_T / d x_{T-k}||``.

    For a plain tanh RNN the norm typically shrinks geometrically with the lag ``k`` (vanishing
    gradients, Bengio et al., 1994); the LSTM's additive cell path lets it decay more slowly,
    especially with a positive forget-gate bias. Measured, not assumed: random initialisations
    (PyTorch defaults), random normal inputs, averaged over ``num_inits`` seeds.

    Args:
        cell: ``"rnn"``, ``"lstm"`` or ``"gru"``.
        seq_len: ``T``.
        forget_bias: added to the LSTM's forget-gate biases (a common initialisation trick).

    Returns:
        ``[seq_len]`` mean gradient norm at lag ``k = 0 .. T - 1``.
    """
    layers = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}
    if cell not in layers:
        raise ValueError(f"cell must be one of {sorted(layers)}, got {cell!r}")
    norms = np.zeros(seq_len)
    for run in range(num_inits):
        torch.manual_seed(seed + run)
        layer = layers[cell](input_size, hidden_size)
        if cell == "lstm" and forget_bias:
            with torch.no_grad():
                layer.bias_ih_l0[hidden_size:2 * hidden_size] += forget_bias
        x = torch.randn(seq_len, batch_size, input_size, requires_grad=True)
        out, _ = layer(x)
        out[-1].sum().backward()  # d(sum of h_T) / d x_t for every t
        per_step = x.grad.norm(dim=2).mean(dim=1).numpy()  # [T]
        norms += per_step[::-1] / num_inits  # index by lag: 0 = the last step
    return norms


__all__ = ["ScratchLSTM", "gradient_norm_by_lag"]
