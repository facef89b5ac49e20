"""Score candidate continuations of one prompt with a causal language model, sharing the prompt.

Generating text with a 135 M-parameter model on a CPU is slow and its answers are hard to parse;
asking how *likely* each candidate answer is, is cheap and always yields a full ranking. For a
prompt ``p`` and candidate tokens ``c_1 .. c_n``::

    log P(c | p) = sum_j log P(c_j | p, c_1 .. c_{j-1})

All candidates share the prompt, usually by far the longest part, so its forward pass is run
**once**: its key/value cache is copied to a batch of ``C`` rows and the candidates, right-padded
to a common length, are run on top of it in one batch. The attention mask covers the prompt
(all ones) and the real candidate tokens; position ids continue from the prompt's length. The
first candidate token is predicted by the prompt's last logits, token ``j`` by the output at
candidate position ``j - 1``, so the last candidate token never needs a forward pass.

**Tokenisation at the boundary.** The prompt and each candidate are tokenised *separately* and
their ids concatenated; the candidate gets ``prefix`` (a space by default) in front. Byte-level
BPE tokenizers (GPT-2, Llama 3, SmolLM2) attach a space to the word after it (``" Starbucks"``
-> ``Ġ Star b ucks``), so end the prompt *without* a trailing space and let the candidate bring
its own; then the ids equal those of tokenising ``prompt + " " + candidate`` in one go, and
every candidate is scored as the same kind of word start.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import torch

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

Normalise = Literal["sum", "mean"]


@dataclass(frozen=True)
class CandidateLogLikelihoods:
    """Log-likelihoods of ``C`` candidate continuations of one prompt.

    Attributes:
        total: ``[C]`` float64, ``log P(candidate | prompt)`` (sum over the candidate's tokens).
        n_tokens: ``[C]`` int64, tokens per candidate.
    """

    total: np.ndarray
    n_tokens: np.ndarray

    @property
    def mean(self) -> np.ndarray:
        """``[C]`` mean log-probability per token: does not favour short candidates as ``total`` does."""
        return self.total / self.n_tokens

    def scores(self, normalise: Normalise = "mean") -> np.ndarray:
        """``[C]`` the ``"sum"`` (:attr:`total`) or the per-token ``"mean"``."""
        if normalise == "sum":
            return self.total
        if normalise == "mean":
            return self.mean
        raise ValueError(f"normalise must be 'sum' or 'mean', got {normalise!r}")


def _cache_argument(model: Any) -> str:
    """Name of the key/value cache argument: ``cache`` in transformers 5.x (``past_key_values``
    is deprecated there and gone in 5.40), ``past_key_values`` before."""
    parameters = inspect.signature(model.forward).parameters
    return "cache" if "cache" in parameters else "past_key_values"


def _returned_cache(output: Any) -> Any:
    cache = getattr(output, "cache", None)
    return cache if cache is not None else output.past_key_values


def _ids(tokenizer: PreTrainedTokenizerBase, text: str, *, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def tokenize_candidates(tokenizer: PreTrainedTokenizerBase, candidates: Sequence[str], *,
                        prefix: str = " ") -> list[list[int]]:
    """Token ids of each ``prefix + candidate``, without special tokens (see the module notes)."""
    ids = [_ids(tokenizer, prefix + c, special=False) for c in candidates]
    empty = [c for c, i in zip(candidates, ids) if not i]
    if empty:
        raise ValueError(f"candidates {empty[:3]!r} tokenise to nothing; give every candidate some text")
    return ids


@torch.inference_mode()
def candidate_log_likelihoods(prompt: str, candidates: Sequence[str], *,
                              tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel,
                              prefix: str = " ", add_special_tokens: bool = True,
                              batch_size: int = 32) -> CandidateLogLikelihoods:
    """``log P(prefix + candidate | prompt)`` for every candidate, the prompt run once.

    Args:
        prompt: the context; end it without a trailing space (the candidates bring theirs).
        candidates: ``C`` continuations, of any token lengths.
        tokenizer, model: a causal LM in eval mode (e.g. from :func:`~stlab.models.pretrained.causal_lm`).
        prefix: put before each candidate when tokenising it.
        add_special_tokens: let the tokenizer add its BOS to the prompt, as in training (set
            ``False`` when the prompt already holds it, e.g. from a chat template that writes it).
        batch_size: candidates per forward pass (memory grows with ``batch_size * length * vocab``).

    Returns:
        totals and token counts; ``.scores("mean")`` or ``.scores("sum")`` gives ``[C]``.
    """
    prompt_ids = _ids(tokenizer, prompt, special=add_special_tokens)
    if not prompt_ids:
        raise ValueError("the prompt tokenises to nothing; the first candidate token needs a context")
    candidate_ids = tokenize_candidates(tokenizer, candidates, prefix=prefix)
    device = next(model.parameters()).device
    cache_arg = _cache_argument(model)
    prompt_tensor = torch.tensor([prompt_ids], dtype=torch.long, device=device)  # [1, P]
    # Only the prompt's last logits are needed; computing all P rows would cost P x vocab x hidden.
    keep = {"logits_to_keep": 1} if "logits_to_keep" in inspect.signature(model.forward).parameters else {}
    out = model(input_ids=prompt_tensor, attention_mask=torch.ones_like(prompt_tensor), use_cache=True, **keep)
    prompt_cache = _returned_cache(out)
    # log-probs in float64: sums over many tokens then do not drift from a reference computation
    first_logp = torch.log_softmax(out.logits[0, -1].to(torch.float64), dim=-1)  # [V]
    n_prompt = len(prompt_ids)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    totals = np.empty(len(candidates), dtype=np.float64)
    for start in range(0, len(candidates), batch_size):
        chunk = candidate_ids[start:start + batch_size]
        b, width = len(chunk), max(len(ids) for ids in chunk)
        ids = torch.full((b, width), pad_id, dtype=torch.long, device=device)  # [b, W] right-padded
        real = torch.zeros((b, width), dtype=torch.bool, device=device)
        for row, cand in enumerate(chunk):
            ids[row, :len(cand)] = torch.tensor(cand, dtype=torch.long)
            real[row, :len(cand)] = True
        token_logp = torch.empty((b, width), dtype=torch.float64, device=device)
        token_logp[:, 0] = first_logp[ids[:, 0]]
        if width > 1:
            # The prompt cache, copied so every chunk starts from the prompt alone, then repeated
            # to b rows (batch_repeat_interleave is the Cache API for this, in place).
            cache = copy.deepcopy(prompt_cache)
            cache.batch_repeat_interleave(b)
            inputs = ids[:, :-1]  # [b, W-1]: the last token is predicted, never fed
            attention = torch.cat([torch.ones((b, n_prompt), dtype=torch.long, device=device),
                                   real[:, :-1].long()], dim=1)  # [b, P + W - 1]
            positions = (n_prompt + torch.arange(width - 1, device=device)).expand(b, -1)  # [b, W-1]
            logits = model(input_ids=inputs, attention_mask=attention, position_ids=positions,
                           use_cache=True, **{cache_arg: cache}).logits  # [b, W-1, V]
            logp = torch.log_softmax(logits.to(torch.float64), dim=-1)
            token_logp[:, 1:] = logp.gather(-1, ids[:, 1:, None]).squeeze(-1)
        totals[start:start + b] = token_logp.masked_fill(~real, 0.0).sum(dim=1).cpu().numpy()
    n_tokens = np.array([len(ids) for ids in candidate_ids], dtype=np.int64)
    return CandidateLogLikelihoods(total=totals, n_tokens=n_tokens)


def score_candidates(prompt: str, candidates: Sequence[str], *, tokenizer: PreTrainedTokenizerBase,
                     model: PreTrainedModel, normalise: Normalise = "mean", prefix: str = " ",
                     add_special_tokens: bool = True, batch_size: int = 32) -> np.ndarray:
    """``[C]`` log-likelihood of each candidate given ``prompt``: its ``"sum"`` over tokens or
    per-token ``"mean"`` (default: the sum favours candidates with few tokens, e.g. short
    names). See :func:`candidate_log_likelihoods` for the arguments."""
    result = candidate_log_likelihoods(prompt, candidates, tokenizer=tokenizer, model=model, prefix=prefix,
                                       add_special_tokens=add_special_tokens, batch_size=batch_size)
    return result.scores(normalise)
