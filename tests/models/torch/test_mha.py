"""The NumPy attention reference against PyTorch: ``nn.MultiheadAttention``, per-head
``scaled_dot_product_attention`` and ``nn.TransformerEncoderLayer`` with copied weights, autograd
against the hand-written backward, and the two mask traps."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

from stlab.models.attention.reference import (  # noqa: E402
    causal_mask,
    combine_masks,
    init_block,
    init_multi_head,
    left_padding_mask,
    multi_head_attention,
    multi_head_attention_backward,
    multi_head_attention_with_cache,
    transformer_block,
)
from stlab.models.torch.mha import blocked_mask, to_torch_multihead, torch_block  # noqa: E402

B, L, E, H, FF = 3, 5, 8, 2, 16
LENGTHS = [5, 3, 1]  # one full history and two left-padded ones
DTYPES = [pytest.param(np.float64, torch.float64, 1e-10, id="float64"),
          pytest.param(np.float32, torch.float32, 1e-5, id="float32")]


def _setup(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    params = init_multi_head(E, H, rng, dtype=dtype)
    x = rng.normal(size=(B, L, E)).astype(dtype)
    allowed = combine_masks(causal_mask(L), left_padding_mask(LENGTHS, L))  # [B, L, L]
    bias = rng.normal(size=(B, L, L)).astype(dtype)
    return rng, params, x, allowed, bias


def _t(array, dtype=None):
    return torch.tensor(np.array(array), dtype=dtype)


def _additive(allowed, bias, num_heads, dtype):
    """Bias and mask as one float ``attn_mask``: -inf where blocked, repeated per head."""
    logits = np.where(allowed, bias, -np.inf)
    return _t(logits, dtype).repeat_interleave(num_heads, dim=0)


def _sdpa_heads(params, x, allowed, bias, dtype):
    """Multi-head attention written with torch ops and ``F.scaled_dot_product_attention`` per head."""
    def project(w, b):
        return F.linear(_t(x, dtype), _t(w, dtype), _t(b, dtype)).view(B, L, H, E // H).transpose(1, 2)

    q, k, v = (project(params.w_q, params.b_q), project(params.w_k, params.b_k), project(params.w_v, params.b_v))
    mask = _t(allowed)[:, None] if bias is None else _t(np.where(allowed, bias, -np.inf), dtype)[:, None]
    heads = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # True = allowed here
    return F.linear(heads.transpose(1, 2).reshape(B, L, E), _t(params.w_o, dtype), _t(params.b_o, dtype))


@pytest.mark.parametrize("np_dtype,torch_dtype,tolerance", DTYPES)
def test_multihead_parity(np_dtype, torch_dtype, tolerance):
    _, params, x, allowed, _ = _setup(np_dtype)
    ours, our_weights = multi_head_attention(x, x, params, allowed)
    layer = to_torch_multihead(params, torch_dtype)
    xt = _t(x)
    with torch.no_grad():
        out, weights = layer(xt, xt, xt, attn_mask=blocked_mask(allowed, H), need_weights=True,
                             average_attn_weights=False)
        sdpa = _sdpa_heads(params, x, allowed, None, torch_dtype)
    assert out.dtype == torch_dtype and weights.shape == (B, H, L, L)
    # nn.MultiheadAttention's explicit softmax gives NaN on empty rows (trap b): compare the others.
    rows = allowed.any(-1)  # [B, L]
    assert np.abs(ours[rows] - out.numpy()[rows]).max() <= tolerance
    assert np.abs(our_weights.transpose(0, 2, 1, 3)[rows] - weights.numpy().transpose(0, 2, 1, 3)[rows]).max() \
        <= tolerance
    assert np.isnan(out.numpy()[~rows]).all()
    # SDPA returns zeros on empty rows, like the reference: every row agrees.
    assert np.abs(ours - sdpa.numpy()).max() <= tolerance


@pytest.mark.parametrize("np_dtype,torch_dtype,tolerance", DTYPES)
def test_multihead_parity_with_a_relation_bias(np_dtype, torch_dtype, tolerance):
    _, params, x, allowed, bias = _setup(np_dtype, seed=1)
    ours, _ = multi_head_attention(x, x, params, allowed, bias)
    layer = to_torch_multihead(params, torch_dtype)
    xt = _t(x)
    with torch.no_grad():  # a float attn_mask is added to the logits: bias and mask in one
        out, _ = layer(xt, xt, xt, attn_mask=_additive(allowed, bias, H, torch_dtype), need_weights=False)
        sdpa = _sdpa_heads(params, x, allowed, bias, torch_dtype)
    assert np.abs(ours - out.numpy()).max() <= tolerance
    assert np.abs(ours - sdpa.numpy()).max() <= tolerance


def test_backward_matches_torch_autograd():
    rng, params, x_q, allowed, bias = _setup(seed=2)
    x_kv = rng.normal(size=(B, L, E))
    R = rng.normal(size=(B, L, E))
    _, _, cache = multi_head_attention_with_cache(x_q, x_kv, params, allowed, bias)
    ours = multi_head_attention_backward(R, cache)
    layer = to_torch_multihead(params)
    xq, xkv, bias_t = _t(x_q).requires_grad_(), _t(x_kv).requires_grad_(), _t(bias).requires_grad_()
    mask = torch.where(_t(allowed), bias_t, float("-inf")).repeat_interleave(H, dim=0)
    out, _ = layer(xq, xkv, xkv, attn_mask=mask, need_weights=False)
    (out * _t(R)).sum().backward()
    e = E
    for name, grad in (("x_q", xq.grad), ("x_kv", xkv.grad), ("bias", bias_t.grad),
                       ("w_q", layer.in_proj_weight.grad[:e]), ("w_k", layer.in_proj_weight.grad[e:2 * e]),
                       ("w_v", layer.in_proj_weight.grad[2 * e:]), ("b_q", layer.in_proj_bias.grad[:e]),
                       ("b_k", layer.in_proj_bias.grad[e:2 * e]), ("b_v", layer.in_proj_bias.grad[2 * e:]),
                       ("w_o", layer.out_proj.weight.grad), ("b_o", layer.out_proj.bias.grad)):
        np.testing.assert_allclose(getattr(ours, name), grad.numpy(), atol=1e-10, err_msg=name)


@pytest.mark.parametrize("norm", ["pre", "post"])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
@pytest.mark.parametrize("np_dtype,torch_dtype,tolerance", DTYPES)
def test_block_parity(norm, activation, np_dtype, torch_dtype, tolerance):
    rng, _, x, allowed, _ = _setup(np_dtype, seed=3)
    params = init_block(E, H, FF, rng, dtype=np_dtype, activation=activation)
    layer = torch_block(params, norm, torch_dtype)
    assert not layer.training and layer.norm1.eps == 1e-5 and layer.norm_first == (norm == "pre")
    xt = _t(x)
    with torch.no_grad():  # causal only: no empty rows, so the inference fast path is safe
        causal = layer(xt, src_mask=blocked_mask(causal_mask(L)))
    assert np.abs(transformer_block(x, params, causal_mask(L), norm=norm) - causal.numpy()).max() <= tolerance
    # With the padding mask too, use the autograd ("slow") path, which agrees on every row.
    ours = transformer_block(x, params, allowed, norm=norm)
    padded = layer(xt.clone().requires_grad_(), src_mask=blocked_mask(allowed, H))
    assert np.abs(ours - padded.detach().numpy()).max() <= tolerance


def test_boolean_masks_mean_opposite_things_in_multihead_attention_and_sdpa():
    _, params, x, allowed, _ = _setup(seed=4)
    allowed = np.broadcast_to(causal_mask(L), (B, L, L))  # no empty rows, so no NaN either way
    ours, our_weights = multi_head_attention(x, x, params, allowed)
    layer = to_torch_multihead(params)
    xt, same_mask = _t(x), _t(allowed).repeat_interleave(H, dim=0)
    with torch.no_grad():
        mha_out, mha_weights = layer(xt, xt, xt, attn_mask=same_mask, need_weights=True, average_attn_weights=False)
        sdpa_out = _sdpa_heads(params, x, allowed, None, torch.float64)
    # SDPA reads True as "may attend" and agrees with the reference ...
    assert np.abs(sdpa_out.numpy() - ours).max() <= 1e-10
    # ... nn.MultiheadAttention reads True as "blocked": the last query, allowed everything, sees
    # nothing (NaN) and the others attend exactly to the future keys.
    assert np.isnan(mha_out[:, -1].numpy()).all()
    w = mha_weights.numpy()[:, :, :-1]
    assert (w[np.broadcast_to(allowed[:, None, :-1], w.shape)] == 0).all()
    assert np.abs(mha_out[:, :-1].numpy() - ours[:, :-1]).min() > 1e-3
    # The converter fixes it.
    with torch.no_grad():
        fixed, fixed_weights = layer(xt, xt, xt, attn_mask=blocked_mask(allowed, H), average_attn_weights=False)
    assert np.abs(fixed.numpy() - ours).max() <= 1e-10
    assert np.abs(fixed_weights.numpy() - our_weights).max() <= 1e-10
    with pytest.raises(ValueError, match="num_heads"):
        blocked_mask(causal_mask(L), H)


def test_left_padded_causal_history_turns_nan_on_the_inference_fast_path():
    rng, _, x, allowed, _ = _setup(np.float32, seed=5)
    params = init_block(E, H, FF, rng, dtype=np.float32)
    layer = torch_block(params, "post", torch.float32)
    encoder = torch.nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False).eval()
    xt = _t(x)
    causal = blocked_mask(causal_mask(L))
    key_padding = blocked_mask(left_padding_mask(LENGTHS, L))  # [B, L], True = padding
    empty = ~allowed.any(-1)  # padding queries that see only padding keys
    assert empty.sum() == (5 - 3) + (5 - 1)
    with torch.no_grad():
        one = layer(xt, src_mask=causal, src_key_padding_mask=key_padding).numpy()
        two = encoder(xt, mask=causal, src_key_padding_mask=key_padding).numpy()
    # torch 2.13, eval mode, no autograd: the empty rows come out NaN after one layer ...
    np.testing.assert_array_equal(np.isnan(one).any(-1), empty)
    # ... and the second layer spreads the NaN to every step of the padded histories, real steps
    # included (NaN values behind a zero weight still give NaN), while the full history is fine.
    assert np.isnan(two[1:]).all() and np.isfinite(two[0]).all()
    # The same encoder with autograd on (as in training) or with the fast path off is finite and
    # agrees with the reference, whose empty rows attend to nothing.
    ours = x
    for _ in range(2):
        ours = transformer_block(ours, params, allowed, norm="post")
    assert np.isfinite(ours).all()
    slow = encoder(xt.clone().requires_grad_(), mask=causal, src_key_padding_mask=key_padding).detach().numpy()
    assert np.abs(slow - ours).max() <= 1e-5
    enabled = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with torch.no_grad():
            no_fast_path = encoder(xt, mask=causal, src_key_padding_mask=key_padding).numpy()
    finally:
        torch.backends.mha.set_fastpath_enabled(enabled)
    assert np.abs(no_fast_path - ours).max() <= 1e-5
    _, weights = multi_head_attention(x, x, params.attention, allowed)
    assert (weights.transpose(0, 2, 1, 3)[empty] == 0).all()
