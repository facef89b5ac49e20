"""Copy the NumPy attention reference into ``keras.layers.MultiHeadAttention``.

Keras keeps one kernel per projection with the heads as their own axis, ``x @ kernel`` rather
than PyTorch's ``x @ W.T``:

* ``query/key/value`` kernels ``[E, H, D]`` = ``W.T.reshape(E, H, D)`` (output column ``h*D + d``
  of ``W.T`` is head ``h``, feature ``d``), biases ``[H, D]`` = ``b.reshape(H, D)``;
* ``attention_output`` kernel ``[H, D, E]`` = ``W_o.T.reshape(H, D, E)``, bias ``[E]``.

Keras's ``attention_mask`` uses the book's convention (True = may attend), so the allowed masks
of :mod:`stlab.models.attention.reference` go in unchanged, and a fully masked query row gets
zero weights as in the reference.

Introduced in chapter 8 (Self-attention for the next visit).
"""

from __future__ import annotations

import os

# Before the first ``import keras`` (which imports TensorFlow on the default backend): keep
# TensorFlow's C++ start-up messages and the oneDNN round-off notice off the book's pages.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from stlab.models.attention.reference import MultiHeadParams  # noqa: E402


def keras_multihead_weights(params: MultiHeadParams) -> list[np.ndarray]:
    """The weights of ``keras.layers.MultiHeadAttention`` in ``set_weights`` order:
    ``[q_kernel, q_bias, k_kernel, k_bias, v_kernel, v_bias, out_kernel, out_bias]``."""
    e, h, d = params.embed_dim, params.num_heads, params.head_dim
    weights: list[np.ndarray] = []
    for w, b in ((params.w_q, params.b_q), (params.w_k, params.b_k), (params.w_v, params.b_v)):
        weights += [w.T.reshape(e, h, d), b.reshape(h, d)]
    return weights + [params.w_o.T.reshape(h, d, e), params.b_o]


def to_keras_multihead(params: MultiHeadParams, dtype: str | None = None) -> keras.layers.MultiHeadAttention:
    """A built ``keras.layers.MultiHeadAttention`` holding ``params`` (no dropout).

    Args:
        params: the reference parameters.
        dtype: the layer's dtype policy; defaults to the parameters' dtype (``"float64"`` for
            exact parity: Keras would otherwise compute in float32).

    Call it as ``layer(x_q, x_kv, attention_mask=allowed, return_attention_scores=True)`` with
    ``allowed`` ``[B, Lq, Lk]``.
    """
    dtype = dtype or str(params.w_q.dtype)
    e = params.embed_dim
    layer = keras.layers.MultiHeadAttention(num_heads=params.num_heads, key_dim=params.head_dim, dropout=0.0,
                                            dtype=dtype)
    layer.build((None, None, e), (None, None, e))
    layer.set_weights(keras_multihead_weights(params))
    return layer


__all__ = ["keras_multihead_weights", "to_keras_multihead"]
