"""Self-attention from its equations, in NumPy: masks, a masked softmax, scaled dot-product and
multi-head attention with a hand-written backward pass, positions, and the pre-/post-LayerNorm
Transformer block. PyTorch and Keras are tested against this module
(:mod:`stlab.models.torch.mha`, :mod:`stlab.models.keras.mha`); it imports neither.

Scaled dot-product attention (Vaswani et al., 2017), with an additive bias ``B`` (for instance a
space-time relation between two visits) and a boolean mask ``M``:

.. math::

    S = \\frac{Q K^\\top}{\\sqrt{d}} + B, \\qquad
    A_{ij} = \\frac{M_{ij}\\, e^{S_{ij}}}{\\sum_k M_{ik}\\, e^{S_{ik}}}, \\qquad
    \\mathrm{Attn}(Q, K, V) = A V

Multi-head attention projects, splits ``E`` into ``H`` heads of ``D = E / H``, attends per head,
concatenates and projects back: ``out = concat_h(Attn(X_q W_q^h, X_kv W_k^h, X_kv W_v^h)) W_o^T + b_o``.

Conventions used throughout:

* **Masks are "allowed" masks**: ``True`` means "this query may attend to this key". That is the
  convention of ``torch.nn.functional.scaled_dot_product_attention`` and of Keras's
  ``attention_mask``. ``torch.nn.MultiheadAttention`` and the ``nn.Transformer*`` layers use the
  *opposite* one (``True`` = blocked), so a boolean mask must be inverted for them
  (:func:`stlab.models.torch.mha.blocked_mask`).
* **A fully masked query row gets all-zero weights**, hence a zero attention output, and never
  NaN. The plain formula gives ``0 / 0`` there, and such rows are routine: a left-padded history
  under a causal mask has padding queries whose every allowed key is padding. PyTorch's
  ``nn.MultiheadAttention`` with ``need_weights=True`` and its inference fast path return NaN for
  them (and a second layer spreads the NaN to every real step); SDPA and Keras return zeros.
* Weights use PyTorch's layout ``y = x @ W.T + b`` (``W`` is ``[out, in]``).
* Float64 unless the inputs are float32: every function keeps its inputs' dtype.

Introduced in chapter 8 (Self-attention for the next visit).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Norm = Literal["pre", "post"]
Activation = Literal["relu", "gelu"]


# --------------------------------------------------------------------------- masks

def causal_mask(length: int) -> np.ndarray:
    """``[L, L]`` allowed mask of a causal model: query ``i`` may attend to keys ``j <= i``."""
    return np.tril(np.ones((length, length), dtype=bool))


def left_padding_mask(lengths: np.ndarray | list[int], length: int) -> np.ndarray:
    """``[B, L]``, True on the real steps of left-padded histories.

    Histories are left-padded: the ``lengths[b]`` real steps sit at the *end* of the ``L`` slots,
    so the latest visit is always at index ``L - 1`` whatever the history's length.
    """
    lengths = np.asarray(lengths)
    if np.any(lengths < 0) or np.any(lengths > length):
        raise ValueError(f"lengths must lie in [0, {length}], got {lengths.tolist()}")
    return np.arange(length)[None, :] >= (length - lengths)[:, None]


def combine_masks(attn: np.ndarray | None = None, key_allowed: np.ndarray | None = None,
                  query_length: int | None = None) -> np.ndarray:
    """Intersect a query-key mask with a key-padding mask into one ``[B, Lq, Lk]`` allowed mask.

    Args:
        attn: ``[Lq, Lk]`` or ``[B, Lq, Lk]`` allowed mask (e.g. :func:`causal_mask`).
        key_allowed: ``[B, Lk]``, True on real keys (e.g. :func:`left_padding_mask`).
        query_length: ``Lq`` when ``attn`` is omitted (defaults to ``Lk``: self-attention).

    Returns:
        ``[B, Lq, Lk]`` (``B`` is 1 when only a 2-D ``attn`` is given).
    """
    if attn is None and key_allowed is None:
        raise ValueError("give at least one of attn and key_allowed")
    if attn is None:
        lq = key_allowed.shape[1] if query_length is None else query_length
        attn = np.ones((lq, key_allowed.shape[1]), dtype=bool)
    attn = np.asarray(attn, dtype=bool)
    if attn.ndim == 2:
        attn = attn[None]
    if key_allowed is None:
        return attn
    key_allowed = np.asarray(key_allowed, dtype=bool)
    if key_allowed.ndim != 2 or key_allowed.shape[1] != attn.shape[2]:
        raise ValueError(f"key_allowed must be [B, Lk] with Lk = {attn.shape[2]}, got {key_allowed.shape}")
    return attn & key_allowed[:, None, :]


# --------------------------------------------------------------------------- softmax and attention

def softmax(logits: np.ndarray, allowed: np.ndarray | None = None, axis: int = -1) -> np.ndarray:
    """Softmax over ``axis`` restricted to the ``allowed`` entries (broadcast against ``logits``).

    Blocked entries get exactly 0. A row with no allowed entry gets all zeros (a choice: the
    formula is 0/0 there; zeros keep NaN out of the next layers and match SDPA and Keras). The row
    maximum is subtracted first so that large logits do not overflow.
    """
    if allowed is None:
        shifted = logits - logits.max(axis=axis, keepdims=True)
        e = np.exp(shifted)
        return e / e.sum(axis=axis, keepdims=True)
    allowed = np.broadcast_to(allowed, logits.shape)
    masked = np.where(allowed, logits, -np.inf)
    row_max = masked.max(axis=axis, keepdims=True)
    # A fully masked row has max -inf; shifting by it would give inf - inf = NaN.
    row_max = np.where(np.isfinite(row_max), row_max, 0.0)
    e = np.where(allowed, np.exp(np.where(allowed, logits - row_max, 0.0)), 0.0)
    total = e.sum(axis=axis, keepdims=True)
    return e / np.where(total > 0, total, 1.0)


def softmax_backward(grad_weights: np.ndarray, weights: np.ndarray, axis: int = -1) -> np.ndarray:
    """Gradient through :func:`softmax`: ``dS = A * (dA - sum(dA * A))`` along ``axis``.

    This is the softmax Jacobian ``diag(a) - a a^T`` applied to ``dA`` row by row. Blocked entries
    and fully masked rows have ``A = 0`` and correctly get no gradient: the output does not depend
    on their logits.
    """
    return weights * (grad_weights - (grad_weights * weights).sum(axis=axis, keepdims=True))


def _as_4d(array: np.ndarray) -> np.ndarray:
    """A ``[Lq, Lk]``, ``[B, Lq, Lk]`` or ``[B, H, Lq, Lk]`` mask or bias as ``[B|1, H|1, Lq, Lk]``.

    A 3-D array is per example and shared by the heads, so the head axis goes second.
    """
    if array.ndim == 2:
        return array[None, None]
    if array.ndim == 3:
        return array[:, None]
    if array.ndim == 4:
        return array
    raise ValueError(f"masks and biases must be [Lq, Lk], [B, Lq, Lk] or [B, H, Lq, Lk], got {array.shape}")


def scaled_dot_product_attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, allowed: np.ndarray | None = None,
                                 bias: np.ndarray | None = None,
                                 scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(q k^T * scale + bias, allowed) v`` for any leading batch/head axes.

    Args:
        q: ``[..., Lq, D]`` queries; k: ``[..., Lk, D]`` keys; v: ``[..., Lk, Dv]`` values.
        allowed: boolean mask broadcastable to ``[..., Lq, Lk]``, True = may attend.
        bias: finite additive logits broadcastable to ``[..., Lq, Lk]``. Use ``allowed`` for
            masking, not ``-inf`` here, so that fully masked rows stay NaN-free.
        scale: defaults to ``1 / sqrt(D)``, which keeps the logits' variance near 1 for unit
            variance inputs, so the softmax does not saturate as ``D`` grows.

    Returns:
        ``(out [..., Lq, Dv], weights [..., Lq, Lk])``.
    """
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    logits = (q @ np.swapaxes(k, -1, -2)) * scale
    if bias is not None:
        logits = logits + bias
    weights = softmax(logits, allowed)
    return weights @ v, weights


# --------------------------------------------------------------------------- multi-head attention

@dataclass(frozen=True)
class MultiHeadParams:
    """Parameters of one multi-head attention layer, in PyTorch's layout ``y = x @ W.T + b``.

    Shapes:
        w_q, w_k, w_v, w_o: ``[E, E]``; b_q, b_k, b_v, b_o: ``[E]``. Rows ``h*D:(h+1)*D`` of
        ``w_q``, ``w_k``, ``w_v`` (and columns of ``w_o``) belong to head ``h``, ``D = E / H``.
    """

    w_q: np.ndarray
    w_k: np.ndarray
    w_v: np.ndarray
    b_q: np.ndarray
    b_k: np.ndarray
    b_v: np.ndarray
    w_o: np.ndarray
    b_o: np.ndarray
    num_heads: int

    def __post_init__(self) -> None:
        e = self.w_q.shape[0]
        if e % self.num_heads:
            raise ValueError(f"embed_dim {e} is not divisible by num_heads {self.num_heads}")
        for name in ("w_q", "w_k", "w_v", "w_o"):
            if getattr(self, name).shape != (e, e):
                raise ValueError(f"{name} must be [E, E] = [{e}, {e}], got {getattr(self, name).shape}")
        for name in ("b_q", "b_k", "b_v", "b_o"):
            if getattr(self, name).shape != (e,):
                raise ValueError(f"{name} must be [E] = [{e}], got {getattr(self, name).shape}")

    @property
    def embed_dim(self) -> int:
        return int(self.w_q.shape[0])

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads


def init_multi_head(embed_dim: int, num_heads: int, rng: np.random.Generator,
                    dtype: type = np.float64, random_biases: bool = True) -> MultiHeadParams:
    """PyTorch's initialisation: Xavier-uniform on the stacked ``[3E, E]`` input projection,
    ``U(±1/sqrt(E))`` on ``w_o``.

    PyTorch starts every bias at zero; ``random_biases=True`` (the default) draws them from
    ``U(±1/sqrt(E))`` instead, so that a test comparing layouts would notice a misplaced bias.
    """
    bound_in = math.sqrt(6.0 / (embed_dim + 3 * embed_dim))
    bound_out = 1.0 / math.sqrt(embed_dim)

    def u(bound: float, *shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, shape).astype(dtype)

    def bias() -> np.ndarray:
        return u(bound_out, embed_dim) if random_biases else np.zeros(embed_dim, dtype=dtype)

    return MultiHeadParams(w_q=u(bound_in, embed_dim, embed_dim), w_k=u(bound_in, embed_dim, embed_dim),
                           w_v=u(bound_in, embed_dim, embed_dim), b_q=bias(), b_k=bias(), b_v=bias(),
                           w_o=u(bound_out, embed_dim, embed_dim), b_o=bias(), num_heads=num_heads)


def _split_heads(x: np.ndarray, num_heads: int) -> np.ndarray:
    """``[B, L, E]`` -> ``[B, H, L, D]``."""
    b, length, e = x.shape
    return x.reshape(b, length, num_heads, e // num_heads).transpose(0, 2, 1, 3)


def _merge_heads(x: np.ndarray) -> np.ndarray:
    """``[B, H, L, D]`` -> ``[B, L, H * D]`` (the inverse of :func:`_split_heads`)."""
    b, h, length, d = x.shape
    return x.transpose(0, 2, 1, 3).reshape(b, length, h * d)


@dataclass(frozen=True)
class MultiHeadCache:
    """What :func:`multi_head_attention_backward` needs from the forward pass."""

    params: MultiHeadParams
    x_q: np.ndarray  # [B, Lq, E]
    x_kv: np.ndarray  # [B, Lk, E]
    q: np.ndarray  # [B, H, Lq, D], projected and split
    k: np.ndarray  # [B, H, Lk, D]
    v: np.ndarray  # [B, H, Lk, D]
    weights: np.ndarray  # [B, H, Lq, Lk]
    context: np.ndarray  # [B, Lq, E], heads concatenated, before w_o
    scale: float
    bias_shape: tuple[int, ...] | None


def multi_head_attention_with_cache(x_q: np.ndarray, x_kv: np.ndarray, params: MultiHeadParams,
                                    allowed: np.ndarray | None = None, bias: np.ndarray | None = None
                                    ) -> tuple[np.ndarray, np.ndarray, MultiHeadCache]:
    """:func:`multi_head_attention`, also returning the cache for the backward pass."""
    if x_q.ndim != 3 or x_kv.ndim != 3:
        raise ValueError(f"x_q and x_kv must be [B, L, E], got {x_q.shape} and {x_kv.shape}")
    if x_q.shape[2] != params.embed_dim or x_kv.shape[2] != params.embed_dim:
        raise ValueError(f"inputs have {x_q.shape[2]} and {x_kv.shape[2]} features but E = {params.embed_dim}")
    h = params.num_heads
    q = _split_heads(x_q @ params.w_q.T + params.b_q, h)
    k = _split_heads(x_kv @ params.w_k.T + params.b_k, h)
    v = _split_heads(x_kv @ params.w_v.T + params.b_v, h)
    scale = 1.0 / math.sqrt(params.head_dim)
    heads, weights = scaled_dot_product_attention(
        q, k, v, allowed=None if allowed is None else _as_4d(np.asarray(allowed, dtype=bool)),
        bias=None if bias is None else _as_4d(bias), scale=scale)
    context = _merge_heads(heads)
    out = context @ params.w_o.T + params.b_o
    cache = MultiHeadCache(params=params, x_q=x_q, x_kv=x_kv, q=q, k=k, v=v, weights=weights, context=context,
                           scale=scale, bias_shape=None if bias is None else tuple(bias.shape))
    return out, weights, cache


def multi_head_attention(x_q: np.ndarray, x_kv: np.ndarray, params: MultiHeadParams,
                         allowed: np.ndarray | None = None,
                         bias: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Multi-head attention of the queries ``x_q`` over the keys and values ``x_kv``.

    Args:
        x_q: ``[B, Lq, E]``; x_kv: ``[B, Lk, E]`` (pass the same array twice for self-attention).
        params: the layer's parameters.
        allowed: ``[Lq, Lk]``, ``[B, Lq, Lk]`` or ``[B, H, Lq, Lk]`` boolean, True = may attend.
        bias: additive logits of the same shapes, e.g. a space-time relation bias; a 2-D or 3-D
            bias is shared by all heads.

    Returns:
        ``(out [B, Lq, E], weights [B, H, Lq, Lk])``; fully masked rows have zero weights.
    """
    out, weights, _ = multi_head_attention_with_cache(x_q, x_kv, params, allowed, bias)
    return out, weights


@dataclass(frozen=True)
class MultiHeadGradients:
    """Gradients of a scalar loss with respect to the inputs, the parameters and the bias.

    For self-attention (``x_q is x_kv``) the input's gradient is ``x_q + x_kv``. ``bias`` has the
    shape of the bias given to the forward pass (``None`` if there was none).
    """

    x_q: np.ndarray
    x_kv: np.ndarray
    w_q: np.ndarray
    w_k: np.ndarray
    w_v: np.ndarray
    b_q: np.ndarray
    b_k: np.ndarray
    b_v: np.ndarray
    w_o: np.ndarray
    b_o: np.ndarray
    bias: np.ndarray | None


def _sum_to_shape(grad: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Undo the broadcasting of a ``shape`` bias (see :func:`_as_4d`) to the ``[B, H, Lq, Lk]`` logits."""
    target = _as_4d(np.empty(shape, dtype=bool)).shape
    axes = tuple(i for i, (t, g) in enumerate(zip(target, grad.shape, strict=True)) if t == 1 and g != 1)
    return grad.sum(axis=axes, keepdims=True).reshape(shape)


def _linear_grads(grad_y: np.ndarray, x: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For ``y = x @ w.T + b`` with ``x`` ``[B, L, in]``: ``(dx, dw, db)`` from ``dy``."""
    return grad_y @ w, np.einsum("blo,bli->oi", grad_y, x), grad_y.sum(axis=(0, 1))


def multi_head_attention_backward(grad_out: np.ndarray, cache: MultiHeadCache) -> MultiHeadGradients:
    """The backward pass of :func:`multi_head_attention`, derived by hand.

    From the output back (per head, ``A`` the weights, ``s`` the scale):
    ``dC = dOut W_o`` (then split into heads), ``dW_o = dOut^T C``, ``db_o = sum dOut``;
    ``dA = dC V^T``, ``dV = A^T dC``; through the softmax ``dS = A * (dA - rowsum(dA * A))``;
    ``dBias = dS`` summed over the broadcast axes; ``dQ = s dS K``, ``dK = s dS^T Q``; and through
    each projection ``y = x W^T + b``: ``dx = dy W``, ``dW = dy^T x``, ``db = sum dy``.

    Args:
        grad_out: ``[B, Lq, E]`` gradient of the loss with respect to the output.
        cache: from :func:`multi_head_attention_with_cache`.
    """
    p = cache.params
    d_context, d_w_o, d_b_o = _linear_grads(grad_out, cache.context, p.w_o)
    d_heads = _split_heads(d_context, p.num_heads)  # [B, H, Lq, D]
    d_weights = d_heads @ np.swapaxes(cache.v, -1, -2)  # [B, H, Lq, Lk]
    d_v = np.swapaxes(cache.weights, -1, -2) @ d_heads  # [B, H, Lk, D]
    d_logits = softmax_backward(d_weights, cache.weights)
    d_q = (d_logits @ cache.k) * cache.scale
    d_k = (np.swapaxes(d_logits, -1, -2) @ cache.q) * cache.scale
    dx_q, d_w_q, d_b_q = _linear_grads(_merge_heads(d_q), cache.x_q, p.w_q)
    dx_k, d_w_k, d_b_k = _linear_grads(_merge_heads(d_k), cache.x_kv, p.w_k)
    dx_v, d_w_v, d_b_v = _linear_grads(_merge_heads(d_v), cache.x_kv, p.w_v)
    d_bias = None if cache.bias_shape is None else _sum_to_shape(d_logits, cache.bias_shape)
    return MultiHeadGradients(x_q=dx_q, x_kv=dx_k + dx_v, w_q=d_w_q, w_k=d_w_k, w_v=d_w_v, b_q=d_b_q, b_k=d_b_k,
                              b_v=d_b_v, w_o=d_w_o, b_o=d_b_o, bias=d_bias)


# --------------------------------------------------------------------------- positions

def sinusoidal_positions(length: int, dim: int, base: float = 10000.0, dtype: type = np.float64) -> np.ndarray:
    """``[L, E]`` sinusoidal position encodings (Vaswani et al., 2017).

    ``P[t, 2i] = sin(t / base^(2i/E))`` and ``P[t, 2i+1] = cos(t / base^(2i/E))``: each pair of
    columns is a rotation at its own frequency, so ``P[t + k]`` is a fixed linear map of ``P[t]``
    (relative offsets are easy to read off) and all values lie in ``[-1, 1]``. An odd ``E`` drops
    the last cosine column.
    """
    t = np.arange(length, dtype=np.float64)[:, None]
    frequencies = base ** (-np.arange(0, dim, 2, dtype=np.float64) / dim)  # [ceil(E/2)]
    angles = t * frequencies[None, :]
    out = np.empty((length, dim), dtype=np.float64)
    out[:, 0::2] = np.sin(angles)
    out[:, 1::2] = np.cos(angles[:, : dim // 2])
    return out.astype(dtype, copy=False)


def init_learned_positions(max_length: int, dim: int, rng: np.random.Generator,
                           dtype: type = np.float64) -> np.ndarray:
    """``[L_max, E]`` learned position table, ``N(0, 1)`` like ``torch.nn.Embedding``.

    A learned position is only a trainable row per slot, added like the sinusoids
    (:func:`add_positions`); unlike them it says nothing about slots beyond ``L_max``.
    """
    return rng.normal(size=(max_length, dim)).astype(dtype)


def add_positions(x: np.ndarray, table: np.ndarray) -> np.ndarray:
    """``x + table[:L]`` for ``x`` ``[B, L, E]``, with either kind of table.

    With left-padded histories slot ``L - 1`` is always the latest visit, so row ``L - 1 - k`` of
    the table encodes "``k`` visits ago" for every user, whatever the history's length.
    """
    if table.shape[0] < x.shape[1] or table.shape[1] != x.shape[2]:
        raise ValueError(f"table {table.shape} cannot cover inputs {x.shape}")
    return x + table[: x.shape[1]].astype(x.dtype)


# --------------------------------------------------------------------------- Transformer block

def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-5) -> np.ndarray:
    """``gamma * (x - mean) / sqrt(var + eps) + beta`` over the last axis (biased variance).

    ``eps`` defaults to PyTorch's 1e-5; Keras's ``LayerNormalization`` uses 1e-3, which changes
    the output visibly for small-variance inputs.
    """
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return gamma * (x - mean) / np.sqrt(var + eps) + beta


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU ``x * Phi(x) = x (1 + erf(x / sqrt 2)) / 2`` (PyTorch's default, not the tanh form)."""
    # NumPy has no erf; math.erf element by element is exact, and fast enough at the book's sizes.
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return (0.5 * x * (1.0 + erf(x / math.sqrt(2.0)))).astype(x.dtype)


def feed_forward(x: np.ndarray, w_1: np.ndarray, b_1: np.ndarray, w_2: np.ndarray, b_2: np.ndarray,
                 activation: Activation = "relu") -> np.ndarray:
    """Position-wise ``act(x W_1^T + b_1) W_2^T + b_2``; w_1 ``[F, E]``, w_2 ``[E, F]``."""
    hidden = x @ w_1.T + b_1
    if activation == "relu":
        hidden = np.maximum(hidden, 0)
    elif activation == "gelu":
        hidden = gelu(hidden)
    else:
        raise ValueError(f"activation must be 'relu' or 'gelu', got {activation!r}")
    return hidden @ w_2.T + b_2


@dataclass(frozen=True)
class BlockParams:
    """One Transformer encoder block: attention, feed-forward ``[E] -> [F] -> [E]``, two LayerNorms.

    ``norm_1`` goes with the attention sub-layer and ``norm_2`` with the feed-forward one (as
    ``norm1``/``norm2`` in ``torch.nn.TransformerEncoderLayer``).
    """

    attention: MultiHeadParams
    w_1: np.ndarray  # [F, E]
    b_1: np.ndarray  # [F]
    w_2: np.ndarray  # [E, F]
    b_2: np.ndarray  # [E]
    norm_1_gamma: np.ndarray  # [E]
    norm_1_beta: np.ndarray
    norm_2_gamma: np.ndarray
    norm_2_beta: np.ndarray
    eps: float = 1e-5
    activation: Activation = "relu"

    @property
    def ff_dim(self) -> int:
        return int(self.w_1.shape[0])


def init_block(embed_dim: int, num_heads: int, ff_dim: int, rng: np.random.Generator, dtype: type = np.float64,
               eps: float = 1e-5, activation: Activation = "relu") -> BlockParams:
    """Linear layers ``U(±1/sqrt(fan_in))`` as in PyTorch; LayerNorm scales and shifts drawn near
    ``(1, 0)`` rather than exactly there, so that a swapped ``gamma``/``beta`` would show."""

    def u(bound: float, *shape: int) -> np.ndarray:
        return rng.uniform(-bound, bound, shape).astype(dtype)

    e, f = embed_dim, ff_dim
    return BlockParams(attention=init_multi_head(e, num_heads, rng, dtype), w_1=u(e ** -0.5, f, e),
                       b_1=u(e ** -0.5, f), w_2=u(f ** -0.5, e, f), b_2=u(f ** -0.5, e),
                       norm_1_gamma=1 + u(0.1, e), norm_1_beta=u(0.1, e), norm_2_gamma=1 + u(0.1, e),
                       norm_2_beta=u(0.1, e), eps=eps, activation=activation)


def transformer_block(x: np.ndarray, params: BlockParams, allowed: np.ndarray | None = None,
                      bias: np.ndarray | None = None, norm: Norm = "pre") -> np.ndarray:
    """One encoder block over ``x`` ``[B, L, E]``; returns ``[B, L, E]``.

    * ``norm="post"`` (Vaswani et al.): ``x = LN1(x + MHA(x)); x = LN2(x + FFN(x))``.
    * ``norm="pre"``: ``x = x + MHA(LN1(x)); x = x + FFN(LN2(x))``. The residual path is then
      an identity from input to output, so gradients reach early layers undamped and deep stacks
      train without a learning-rate warm-up; the output is not normalised (add a final LN).
    """
    p = params

    def attend(h: np.ndarray) -> np.ndarray:
        return multi_head_attention(h, h, p.attention, allowed, bias)[0]

    def ffn(h: np.ndarray) -> np.ndarray:
        return feed_forward(h, p.w_1, p.b_1, p.w_2, p.b_2, p.activation)

    if norm == "post":
        x = layer_norm(x + attend(x), p.norm_1_gamma, p.norm_1_beta, p.eps)
        return layer_norm(x + ffn(x), p.norm_2_gamma, p.norm_2_beta, p.eps)
    if norm == "pre":
        x = x + attend(layer_norm(x, p.norm_1_gamma, p.norm_1_beta, p.eps))
        return x + ffn(layer_norm(x, p.norm_2_gamma, p.norm_2_beta, p.eps))
    raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")


__all__ = [
    "BlockParams", "MultiHeadCache", "MultiHeadGradients", "MultiHeadParams", "add_positions", "causal_mask",
    "combine_masks", "feed_forward", "gelu", "init_block", "init_learned_positions", "init_multi_head",
    "layer_norm", "left_padding_mask", "multi_head_attention", "multi_head_attention_backward",
    "multi_head_attention_with_cache", "scaled_dot_product_attention", "sinusoidal_positions", "softmax",
    "softmax_backward", "transformer_block",
]
