"""Copy the NumPy attention reference into PyTorch layers, and translate its masks.

:mod:`stlab.models.attention.reference` writes masks as *allowed* (True = may attend), like
``torch.nn.functional.scaled_dot_product_attention``. ``torch.nn.MultiheadAttention`` and the
``nn.Transformer*`` layers read a boolean mask the other way round (True = blocked): handing them
the same tensor silently attends to exactly the wrong keys. :func:`blocked_mask` converts.

Introduced in chapter 8 (Self-attention for the next visit).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from stlab.models.attention.reference import BlockParams, MultiHeadParams, Norm


def _tensor(array: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    # A copy: torch refuses to share read-only (e.g. broadcast) NumPy memory without a warning.
    return torch.tensor(np.array(array), dtype=dtype)


def blocked_mask(allowed: np.ndarray | torch.Tensor, num_heads: int | None = None) -> torch.Tensor:
    """The book's allowed mask as ``nn.MultiheadAttention``'s ``attn_mask`` (True = blocked).

    Args:
        allowed: ``[Lq, Lk]`` or ``[B, Lq, Lk]`` boolean, True = may attend; or a ``[B, Lk]``
            key mask (True = real key), which becomes a ``key_padding_mask``.
        num_heads: for a ``[B, Lq, Lk]`` mask, ``nn.MultiheadAttention`` wants one mask per
            example *and head*, ``[B * H, Lq, Lk]`` with the heads of an example adjacent.

    Returns:
        ``~allowed`` as a bool tensor (repeated per head when ``num_heads`` is given).
    """
    allowed = _tensor(allowed, torch.bool) if isinstance(allowed, np.ndarray) else allowed.to(torch.bool)
    blocked = ~allowed
    if num_heads is not None:
        if blocked.ndim != 3:
            raise ValueError(f"num_heads only applies to a [B, Lq, Lk] mask, got shape {tuple(blocked.shape)}")
        blocked = blocked.repeat_interleave(num_heads, dim=0)
    return blocked


def _load_attention(layer: nn.MultiheadAttention, params: MultiHeadParams, dtype: torch.dtype) -> None:
    """Copy ``params`` into a layer that packs ``q, k, v`` into one ``[3E, E]`` in-projection."""
    with torch.no_grad():
        layer.in_proj_weight.copy_(_tensor(np.concatenate([params.w_q, params.w_k, params.w_v]), dtype))
        layer.in_proj_bias.copy_(_tensor(np.concatenate([params.b_q, params.b_k, params.b_v]), dtype))
        layer.out_proj.weight.copy_(_tensor(params.w_o, dtype))
        layer.out_proj.bias.copy_(_tensor(params.b_o, dtype))


def to_torch_multihead(params: MultiHeadParams, dtype: torch.dtype = torch.float64) -> nn.MultiheadAttention:
    """An ``nn.MultiheadAttention`` (``batch_first=True``, no dropout, eval mode) with ``params``.

    Call it as ``layer(x_q, x_kv, x_kv, attn_mask=blocked_mask(allowed, H))``; its weights come
    back ``[B, H, Lq, Lk]`` with ``average_attn_weights=False``.
    """
    layer = nn.MultiheadAttention(params.embed_dim, params.num_heads, dropout=0.0, bias=True, batch_first=True,
                                  dtype=dtype)
    _load_attention(layer, params, dtype)
    return layer.eval()


def torch_block(params: BlockParams, norm: Norm = "pre", dtype: torch.dtype = torch.float64
                ) -> nn.TransformerEncoderLayer:
    """An ``nn.TransformerEncoderLayer`` computing :func:`~stlab.models.attention.reference.transformer_block`.

    ``norm_first=True`` is the pre-LN block; dropout is 0 and ``layer_norm_eps`` and the
    activation are taken from ``params`` so that nothing falls back to a differing default.
    Returned in eval mode. Masks go in as ``src_mask=blocked_mask(...)``.
    """
    if norm not in ("pre", "post"):
        raise ValueError(f"norm must be 'pre' or 'post', got {norm!r}")
    attention = params.attention
    layer = nn.TransformerEncoderLayer(attention.embed_dim, attention.num_heads, dim_feedforward=params.ff_dim,
                                       dropout=0.0, activation=params.activation, layer_norm_eps=params.eps,
                                       batch_first=True, norm_first=norm == "pre", dtype=dtype)
    _load_attention(layer.self_attn, attention, dtype)
    with torch.no_grad():
        for module, weight, bias in ((layer.linear1, params.w_1, params.b_1), (layer.linear2, params.w_2, params.b_2),
                                     (layer.norm1, params.norm_1_gamma, params.norm_1_beta),
                                     (layer.norm2, params.norm_2_gamma, params.norm_2_beta)):
            module.weight.copy_(_tensor(weight, dtype))
            module.bias.copy_(_tensor(bias, dtype))
    return layer.eval()


__all__ = ["blocked_mask", "to_torch_multihead", "torch_block"]
