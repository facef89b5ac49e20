"""The NumPy attention reference against ``keras.layers.MultiHeadAttention`` with copied weights:
kernel layouts, outputs and attention scores under causal and padding masks, Keras's mask
convention, and its LayerNorm epsilon."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

if importlib.util.find_spec("keras") is None:
    pytest.skip("Keras is not installed", allow_module_level=True)

# The converter's module first: it quiets TensorFlow before the first ``import keras`` starts it.
from stlab.models.keras.mha import keras_multihead_weights, to_keras_multihead  # noqa: E402, I001
import keras  # noqa: E402
from stlab.models.attention.reference import (causal_mask, combine_masks, init_multi_head,  # noqa: E402
                                              layer_norm, left_padding_mask, multi_head_attention)

B, L, E, H = 3, 5, 8, 2
LENGTHS = [5, 3, 1]


def _setup(dtype, seed=0):
    rng = np.random.default_rng(seed)
    params = init_multi_head(E, H, rng, dtype=dtype)
    x_q, x_kv = rng.normal(size=(B, L, E)).astype(dtype), rng.normal(size=(B, L, E)).astype(dtype)
    return params, x_q, x_kv


def test_kernel_layouts():
    params, _, _ = _setup(np.float64)
    q_kernel, q_bias, *_, out_kernel, out_bias = keras_multihead_weights(params)
    assert q_kernel.shape == (E, H, E // H) and q_bias.shape == (H, E // H)
    assert out_kernel.shape == (H, E // H, E) and out_bias.shape == (E,)
    # Head h, feature d of Keras's kernel is row h*D + d of PyTorch's W_q.
    np.testing.assert_array_equal(q_kernel[:, 1, 2], params.w_q[1 * (E // H) + 2])
    np.testing.assert_array_equal(out_kernel[1, 2], params.w_o[:, 1 * (E // H) + 2])


@pytest.mark.parametrize("dtype,tolerance", [("float64", 1e-10), ("float32", 1e-5)])
def test_multihead_parity(dtype, tolerance):
    params, x_q, x_kv = _setup(np.dtype(dtype).type, seed=1)
    allowed = combine_masks(causal_mask(L), left_padding_mask(LENGTHS, L))  # [B, L, L]
    layer = to_keras_multihead(params)
    assert layer.compute_dtype == dtype
    for query, value in ((x_q, x_q), (x_q, x_kv)):  # self- and cross-attention
        ours, our_weights = multi_head_attention(query, value, params, allowed)
        out, scores = layer(query, value, attention_mask=allowed, return_attention_scores=True)
        out, scores = keras.ops.convert_to_numpy(out), keras.ops.convert_to_numpy(scores)
        assert scores.shape == (B, H, L, L)
        # Every row agrees, the empty rows of the padded histories included: Keras zeros them too.
        assert np.abs(ours - out).max() <= tolerance
        assert np.abs(our_weights - scores).max() <= tolerance


def test_keras_reads_masks_as_allowed_like_the_reference():
    params, x, _ = _setup(np.float64, seed=2)
    causal = np.broadcast_to(causal_mask(L), (B, L, L))
    ours, _ = multi_head_attention(x, x, params, causal)
    layer = to_keras_multihead(params)
    same = keras.ops.convert_to_numpy(layer(x, x, attention_mask=causal))
    flag = keras.ops.convert_to_numpy(layer(x, x, use_causal_mask=True))
    inverted = keras.ops.convert_to_numpy(layer(x, x, attention_mask=~causal))  # torch MHA's convention
    assert np.abs(same - ours).max() <= 1e-10
    assert np.abs(flag - ours).max() <= 1e-10
    assert np.abs(inverted[:, :-1] - ours[:, :-1]).min() > 1e-3  # attends to the future instead


def test_layer_norm_epsilon_differs_from_torch():
    rng = np.random.default_rng(3)
    x = rng.normal(scale=0.05, size=(B, L, E))  # small variance: eps is not negligible
    norm = keras.layers.LayerNormalization(dtype="float64")
    out = keras.ops.convert_to_numpy(norm(x))
    assert norm.epsilon == pytest.approx(1e-3)
    ones, zeros = np.ones(E), np.zeros(E)
    assert np.abs(out - layer_norm(x, ones, zeros, eps=1e-3)).max() <= 1e-10
    assert np.abs(out - layer_norm(x, ones, zeros, eps=1e-5)).max() > 1e-2  # torch's default eps
