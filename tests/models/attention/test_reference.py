"""Self-attention from its equations (chapter 8): masks, the masked softmax, the hand-written
backward pass against finite differences, positions, causality and the two block orderings."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from stlab.models.attention.reference import (
    add_positions,
    causal_mask,
    combine_masks,
    feed_forward,
    gelu,
    init_block,
    init_learned_positions,
    init_multi_head,
    layer_norm,
    left_padding_mask,
    multi_head_attention,
    multi_head_attention_backward,
    multi_head_attention_with_cache,
    scaled_dot_product_attention,
    sinusoidal_positions,
    softmax,
    transformer_block,
)

B, L, E, H = 3, 5, 8, 2
LENGTHS = [5, 3, 1]  # one full history and two left-padded ones


def _inputs(seed: int = 0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(B, L, E)).astype(dtype), rng.normal(size=(B, L, E)).astype(dtype)


def _allowed() -> np.ndarray:
    return combine_masks(causal_mask(L), left_padding_mask(LENGTHS, L))


def test_masks_follow_the_allowed_convention():
    np.testing.assert_array_equal(causal_mask(3), [[1, 0, 0], [1, 1, 0], [1, 1, 1]])
    pad = left_padding_mask([3, 1, 0], 4)
    np.testing.assert_array_equal(pad, [[0, 1, 1, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    allowed = combine_masks(causal_mask(4), pad)
    assert allowed.shape == (3, 4, 4)
    # Real query 2 of the first history sees real keys 1 and 2 only.
    np.testing.assert_array_equal(allowed[0, 2], [0, 1, 1, 0])
    # Padding queries of a left-padded history see only padding under the causal mask: empty rows.
    assert not allowed[1, :3].any() and allowed[1, 3].sum() == 1
    assert combine_masks(key_allowed=pad).shape == (3, 4, 4)
    assert combine_masks(causal_mask(4)).shape == (1, 4, 4)
    with pytest.raises(ValueError, match="lengths must lie"):
        left_padding_mask([5], 4)
    with pytest.raises(ValueError, match=r"\[B, Lk\]"):
        combine_masks(causal_mask(4), pad[:, :3])


def test_softmax_is_stable_and_gives_zero_weights_to_fully_masked_rows():
    logits = np.array([[1000.0, 0.0, -1000.0], [1.0, 2.0, 3.0], [5.0, 6.0, 7.0]])
    allowed = np.array([[True, True, True], [True, False, True], [False, False, False]])
    with np.errstate(over="raise", invalid="raise", divide="raise"):  # underflow to 0 is fine
        w = softmax(logits, allowed)
    np.testing.assert_allclose(w[0], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(w[1], [1 / (1 + math.e ** 2), 0.0, math.e ** 2 / (1 + math.e ** 2)])
    np.testing.assert_array_equal(w[2], [0.0, 0.0, 0.0])  # zeros, not NaN
    np.testing.assert_allclose(softmax(logits[1:2]), softmax(logits[1:2], np.ones((1, 3), bool)))
    # The naive formula really is 0/0 on that row: the safe version is a choice, not a given.
    with np.errstate(invalid="ignore"):
        naive = np.exp(np.where(allowed, logits, -np.inf) - np.where(allowed, logits, -np.inf).max(-1, keepdims=True))
    assert np.isnan(naive[2]).all()


def test_scaled_dot_product_attention_by_hand():
    q = np.array([[1.0, 0.0]])
    k = np.array([[1.0, 0.0], [0.0, 1.0]])
    v = np.array([[10.0, 0.0], [0.0, 10.0]])
    out, w = scaled_dot_product_attention(q, k, v, bias=np.array([[0.0, 0.5]]))
    s = np.array([1 / math.sqrt(2), 0.5])  # q.k / sqrt(d) + bias
    expected = np.exp(s) / np.exp(s).sum()
    np.testing.assert_allclose(w[0], expected)
    np.testing.assert_allclose(out[0], 10 * expected)
    out, w = scaled_dot_product_attention(q, k, v, allowed=np.array([[False, False]]))
    np.testing.assert_array_equal(out, 0.0)
    np.testing.assert_array_equal(w, 0.0)


def test_multi_head_weights_are_a_distribution_over_allowed_keys():
    params = init_multi_head(E, H, np.random.default_rng(1))
    x, _ = _inputs()
    allowed = _allowed()
    out, w = multi_head_attention(x, x, params, allowed)
    assert out.shape == (B, L, E) and w.shape == (B, H, L, L)
    assert np.isfinite(out).all()
    assert (w[~np.broadcast_to(allowed[:, None], w.shape)] == 0).all()
    row_sums = w.sum(-1)  # 1 on rows with an allowed key, 0 on the empty ones
    np.testing.assert_allclose(row_sums, np.broadcast_to(allowed.any(-1)[:, None], row_sums.shape).astype(float))
    # An empty row's output is the output projection's bias alone.
    np.testing.assert_allclose(out[2, 0], params.b_o)


def test_multi_head_backward_matches_finite_differences():
    rng = np.random.default_rng(2)
    params = init_multi_head(E, H, rng)
    x_q, x_kv = _inputs(3)
    allowed = _allowed()
    bias = rng.normal(size=(B, L, L))  # e.g. a space-time relation bias, shared by the heads
    R = rng.normal(size=(B, L, E))

    def loss() -> float:
        return float((multi_head_attention(x_q, x_kv, params, allowed, bias)[0] * R).sum())

    _, _, cache = multi_head_attention_with_cache(x_q, x_kv, params, allowed, bias)
    grads = multi_head_attention_backward(R, cache)
    arrays = {"x_q": x_q, "x_kv": x_kv, "bias": bias}
    arrays.update({name: getattr(params, name) for name in
                   ("w_q", "w_k", "w_v", "b_q", "b_k", "b_v", "w_o", "b_o")})
    eps = 1e-6
    for name, array in arrays.items():  # every entry of every input and parameter
        numeric = np.zeros_like(array)
        for index in np.ndindex(array.shape):
            saved = array[index]
            array[index] = saved + eps
            up = loss()
            array[index] = saved - eps
            down = loss()
            array[index] = saved
            numeric[index] = (up - down) / (2 * eps)
        analytic = getattr(grads, name)
        assert analytic.shape == array.shape, name
        if name == "b_k":  # adds q.b_k to a whole row of logits, which the softmax ignores
            assert np.abs(analytic).max() < 1e-12 and np.abs(numeric).max() < 1e-8
            continue
        error = np.linalg.norm(analytic - numeric) / max(np.linalg.norm(analytic) + np.linalg.norm(numeric), 1e-12)
        assert error < 1e-6, (name, error)
    # Blocked pairs, empty rows included, do not reach the output: their bias has no gradient.
    assert np.abs(grads.bias[~allowed]).max() == 0.0


def test_backward_reduces_a_per_query_key_bias_over_batch_and_heads():
    rng = np.random.default_rng(4)
    params = init_multi_head(E, H, rng)
    x, _ = _inputs(5)
    bias = rng.normal(size=(L, L))
    _, _, cache = multi_head_attention_with_cache(x, x, params, causal_mask(L), bias)
    full = np.broadcast_to(bias, (B, H, L, L)).copy()
    _, _, cache_full = multi_head_attention_with_cache(x, x, params, causal_mask(L), full)
    R = rng.normal(size=(B, L, E))
    grad, grad_full = multi_head_attention_backward(R, cache), multi_head_attention_backward(R, cache_full)
    np.testing.assert_allclose(grad.bias, grad_full.bias.sum(axis=(0, 1)), atol=1e-12)
    np.testing.assert_allclose(grad.x_q, grad_full.x_q, atol=1e-12)


def test_float32_in_float32_out():
    params = init_multi_head(E, H, np.random.default_rng(6), dtype=np.float32)
    x, _ = _inputs(dtype=np.float32)
    out, w, cache = multi_head_attention_with_cache(x, x, params, _allowed())
    assert out.dtype == w.dtype == np.float32
    assert multi_head_attention_backward(np.ones_like(out), cache).w_q.dtype == np.float32
    block = init_block(E, H, 16, np.random.default_rng(7), dtype=np.float32, activation="gelu")
    assert transformer_block(x, block, _allowed()).dtype == np.float32


def test_causal_output_ignores_the_future():
    rng = np.random.default_rng(8)
    params = init_multi_head(E, H, rng)
    block = init_block(E, H, 16, rng)
    x, _ = _inputs(9)
    for i in range(L - 1):
        changed = x.copy()
        changed[:, i + 1:] = rng.normal(size=changed[:, i + 1:].shape)
        for f in (lambda z: multi_head_attention(z, z, params, causal_mask(L))[0],
                  lambda z: transformer_block(z, block, causal_mask(L), norm="pre"),
                  lambda z: transformer_block(z, block, causal_mask(L), norm="post")):
            before, after = f(x), f(changed)
            np.testing.assert_array_equal(before[:, : i + 1], after[:, : i + 1])
            assert np.abs(before[:, i + 1:] - after[:, i + 1:]).min() > 0  # the future does change


def test_without_the_mask_the_past_sees_the_future():
    params = init_multi_head(E, H, np.random.default_rng(10))
    x, _ = _inputs(11)
    changed = x.copy()
    changed[:, -1] += 1.0
    assert np.abs(multi_head_attention(x, x, params)[0][:, 0] - multi_head_attention(changed, changed, params)[0][:, 0]).min() > 0


def test_sinusoidal_positions_match_the_formula_and_are_bounded():
    length, dim = 50, 16
    p = sinusoidal_positions(length, dim)
    for t in (0, 1, 7, 49):
        for i in range(dim // 2):
            angle = t / 10000 ** (2 * i / dim)
            assert p[t, 2 * i] == pytest.approx(math.sin(angle), abs=1e-12)
            assert p[t, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-12)
    assert np.abs(p).max() <= 1.0
    np.testing.assert_allclose(p[:, 0::2] ** 2 + p[:, 1::2] ** 2, 1.0)  # each pair lies on a circle
    assert len({tuple(row) for row in np.round(p, 9)}) == length  # every slot is distinct
    odd = sinusoidal_positions(4, 5)  # an odd width keeps the last sine, drops its cosine
    assert odd.shape == (4, 5)
    np.testing.assert_allclose(odd[:, 4], np.sin(np.arange(4) / 10000 ** (4 / 5)))
    assert sinusoidal_positions(3, 4, dtype=np.float32).dtype == np.float32


def test_positions_are_added_rows_of_a_table():
    x, _ = _inputs(12)
    table = init_learned_positions(10, E, np.random.default_rng(13))
    np.testing.assert_array_equal(add_positions(x, table), x + table[None, :L])
    with pytest.raises(ValueError, match="cannot cover"):
        add_positions(x, table[:3])


def test_layer_norm_and_feed_forward_by_hand():
    x = np.array([[1.0, 2.0, 3.0, 6.0]])
    mean, var = 3.0, (4 + 1 + 0 + 9) / 4
    np.testing.assert_allclose(layer_norm(x, np.full(4, 2.0), np.full(4, 0.5), eps=1e-5),
                               2 * (x - mean) / math.sqrt(var + 1e-5) + 0.5)
    np.testing.assert_allclose(gelu(np.array([0.0, 1.0, -1.0])),
                               [0.0, 0.5 * (1 + math.erf(2 ** -0.5)), -0.5 * (1 - math.erf(2 ** -0.5))])
    w_1, b_1 = np.eye(4), np.array([0.0, -5.0, 0.0, 0.0])
    np.testing.assert_allclose(feed_forward(x, w_1, b_1, np.eye(4), np.zeros(4)), [[1.0, 0.0, 3.0, 6.0]])
    with pytest.raises(ValueError, match="activation"):
        feed_forward(x, w_1, b_1, np.eye(4), np.zeros(4), activation="tanh")


def test_pre_and_post_norm_blocks_differ_as_written():
    block = init_block(E, H, 16, np.random.default_rng(14))
    x, _ = _inputs(15)
    post = transformer_block(x, block, norm="post")
    # Post-LN ends in a LayerNorm: with gamma = 1 and beta = 0 every position is standardised.
    plain = dataclasses.replace(block, norm_2_gamma=np.ones(E), norm_2_beta=np.zeros(E))
    standardised = transformer_block(x, plain, norm="post")
    np.testing.assert_allclose(standardised.mean(-1), 0.0, atol=1e-12)
    np.testing.assert_allclose(standardised.var(-1), 1.0, rtol=1e-3)
    # Pre-LN keeps the residual stream: its output is x plus the two sub-layers, not normalised.
    pre = transformer_block(x, block, norm="pre")
    assert np.abs(pre.var(-1) - 1.0).max() > 1e-2
    assert np.abs(pre - post).max() > 1e-3
    with pytest.raises(ValueError, match="norm"):
        transformer_block(x, block, norm="sandwich")


def test_bad_shapes_are_named():
    params = init_multi_head(E, H, np.random.default_rng(16))
    with pytest.raises(ValueError, match=r"\[B, L, E\]"):
        multi_head_attention(np.zeros((L, E)), np.zeros((L, E)), params)
    with pytest.raises(ValueError, match="features but E"):
        multi_head_attention(np.zeros((B, L, E + 1)), np.zeros((B, L, E + 1)), params)
    with pytest.raises(ValueError, match="not divisible"):
        init_multi_head(E, 3, np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"\[Lq, Lk\]"):
        multi_head_attention(np.zeros((B, L, E)), np.zeros((B, L, E)), params, allowed=np.ones(L, bool))
