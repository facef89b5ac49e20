"""Rerank a candidate generator's top POIs with a language model, LLM-Mob style.

A cheap next-visit model (a baseline, the recurrent model) proposes the top ``K`` POIs for each
query; the language model reads the user's recent visits as venue names with local day and time,
the query's day and time and the numbered candidates, and each candidate's name is scored by its
log-likelihood as the answer (:mod:`stlab.models.pretrained.scoring`). The prompt follows the
spirit of LLM-Mob (Wang et al., 2023, "Where would I go next? Large language models as human
mobility predictors"), which lists historical and context stays with their times; generation is
replaced by scoring, which a small model on a CPU can afford.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np

from stlab.models.pretrained.loading import causal_lm
from stlab.models.pretrained.scoring import Normalise, candidate_log_likelihoods
from stlab.protocol import NextVisitQueries

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

# Day names spelled out here: strftime("%A") follows the process locale.
DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")

SYSTEM_PROMPT = ("You predict where a person will check in next, from the places they visited "
                 "recently and the time of the next visit.")

#: Opens the answer, so each candidate is scored as the words that complete this sentence. It
#: ends without a space: the candidates are tokenised with a leading one.
ANSWER_LEAD = "The next place the user visits is"
#: What the prompt calls a venue whose name is unknown (a fifth of Gowalla's NYC venues): scoring
#: an empty name would score a lone space, which says nothing about the place.
UNNAMED_PLACE = "a place without a name"


def _when(moment: datetime) -> str:
    return f"{DAY_NAMES[moment.weekday()]} {moment:%H:%M}"


def _label(name: str) -> str:
    return name.strip() or UNNAMED_PLACE


def _has_chat_template(tokenizer: PreTrainedTokenizerBase | None) -> bool:
    return tokenizer is not None and bool(getattr(tokenizer, "chat_template", None))


def rerank_prompt(history: Sequence[tuple[str, datetime]], query_time: datetime, candidates: Sequence[str], *,
                  tokenizer: PreTrainedTokenizerBase | None = None, system: str = SYSTEM_PROMPT,
                  answer_lead: str = ANSWER_LEAD) -> str:
    """The prompt asking which candidate the user visits next; it ends with ``answer_lead``.

    Args:
        history: ``(venue name, local time)`` of the user's recent check-ins, oldest first.
        query_time: local time of the check-in to predict.
        candidates: venue names, listed numbered from 1 in the given order.
        tokenizer: when it has a chat template (instruction-tuned models such as SmolLM2-Instruct),
            the question is the user turn and ``answer_lead`` starts the assistant turn; without
            one, a plain-text prompt is returned.
        system: the system message.
        answer_lead: the start of the answer the candidates complete.

    Returns:
        the prompt; score candidate names after it with a leading space
        (:func:`~stlab.models.pretrained.score_candidates` does by default).
    """
    if not candidates:
        raise ValueError("no candidates to ask about")
    visits = "\n".join(f"{i}. {_when(t)}, {name}" for i, (name, t) in enumerate(history, start=1))
    options = "\n".join(f"{i}. {name}" for i, name in enumerate(candidates, start=1))
    question = (
        f"Places the user visited recently, oldest first (local day and time, place):\n"
        f"{visits or '(none)'}\n\n"
        f"The next visit is on {DAY_NAMES[query_time.weekday()]} at {query_time:%H:%M}.\n"
        f"Candidate places:\n{options}\n\n"
        "Which candidate place will the user visit next? Answer with its name."
    )
    if _has_chat_template(tokenizer):
        messages = [{"role": "system", "content": system}, {"role": "user", "content": question}]
        head = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)  # type: ignore[union-attr]
        return f"{head}{answer_lead}"
    return f"{system}\n\n{question}\n\n{answer_lead}"


def _log_softmax_rows(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def mix_scores(llm: np.ndarray, generator: np.ndarray, weight: float) -> np.ndarray:
    """``weight * log_softmax(llm) + (1 - weight) * log_softmax(generator)``, row by row.

    Both are turned into log-probabilities over each query's ``K`` candidates first, so scores on
    different scales (summed log-likelihoods, a model's logits) mix as a weighted product of two
    distributions. ``generator`` must be on a log scale: pass ``np.log`` of probabilities.

    Args:
        llm, generator: ``[Q, K]``.
        weight: ``0`` keeps the generator's ranking, ``1`` the language model's.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight must be in [0, 1], got {weight}")
    llm, generator = np.asarray(llm, dtype=np.float64), np.asarray(generator, dtype=np.float64)
    if llm.shape != generator.shape or llm.ndim != 2:
        raise ValueError(f"expected two [Q, K] arrays of one shape, got {llm.shape} and {generator.shape}")
    return weight * _log_softmax_rows(llm) + (1.0 - weight) * _log_softmax_rows(generator)


@dataclass(frozen=True)
class RerankResult:
    """Language-model scores of each query's candidates.

    Attributes:
        candidates: ``[Q, K]`` POI indices, as given.
        llm: ``[Q, K]`` log-likelihood of each candidate's name (per-token mean or sum).
        combined: ``[Q, K]`` the ranking scores: :func:`mix_scores` of ``llm`` and the generator's
            scores, or ``llm`` when none were given.
    """

    candidates: np.ndarray
    llm: np.ndarray
    combined: np.ndarray

    def ranked(self) -> np.ndarray:
        """``[Q, K]`` the candidates reordered by :attr:`combined`, best first (stable on ties)."""
        order = np.argsort(-self.combined, axis=1, kind="stable")
        return np.take_along_axis(self.candidates, order, axis=1)


def llm_rerank(queries: NextVisitQueries, candidates: np.ndarray, *, poi_names: Sequence[str], timezone: str,
               tokenizer: PreTrainedTokenizerBase | None = None, model: PreTrainedModel | None = None,
               generator_scores: np.ndarray | None = None, weight: float = 0.5, history_window: int = 10,
               normalise: Normalise = "mean", batch_size: int = 32, progress: bool = True) -> RerankResult:
    """Score each query's candidate POIs with a language model, one shared prompt per query.

    Args:
        queries: ``Q`` queries (:meth:`stlab.protocol.NextVisitTask.queries`).
        candidates: ``[Q, K]`` POI indices, e.g. the top 20 of a candidate generator.
        poi_names: venue name of each POI index (``[P]``); an empty name is shown as
            :data:`UNNAMED_PLACE`.
        timezone: the city's zone, for the local day and time of visits.
        tokenizer, model: default SmolLM2 (:func:`~stlab.models.pretrained.causal_lm`).
        generator_scores: ``[Q, K]`` the generator's scores of the candidates (log scale), mixed
            in with ``weight`` by :func:`mix_scores`.
        weight: the language model's share of the mix.
        history_window: most recent check-ins shown in the prompt.
        normalise: ``"mean"`` per-token log-likelihood (names of different lengths compete
            fairly) or ``"sum"``.
        batch_size: candidates per forward pass.
        progress: show a progress bar over queries.

    Returns:
        the scores; ``result.ranked()`` gives the reranked candidates.
    """
    from tqdm.auto import tqdm

    candidates = np.asarray(candidates)
    if candidates.ndim != 2 or len(candidates) != len(queries):
        raise ValueError(f"candidates must be [Q, K] with Q = {len(queries)}, got {candidates.shape}")
    if candidates.size and (candidates.min() < 0 or candidates.max() >= len(poi_names)):
        raise ValueError(f"candidate POI indices must lie in 0 .. {len(poi_names) - 1}")
    if generator_scores is not None and np.shape(generator_scores) != candidates.shape:
        raise ValueError(f"generator_scores must have the shape of candidates {candidates.shape}, "
                         f"got {np.shape(generator_scores)}")
    if history_window < 0:
        raise ValueError(f"history_window must be >= 0, got {history_window}")
    if tokenizer is None or model is None:
        tokenizer, model = causal_lm()
    zone = ZoneInfo(timezone)
    # A chat template writes its own special tokens; the tokenizer must not add a second BOS.
    special = not _has_chat_template(tokenizer)
    llm = np.empty(candidates.shape, dtype=np.float64)
    for q in tqdm(range(len(queries)), desc="LLM rerank", unit="query", disable=not progress):
        pois, times = queries.history_poi[q], queries.history_time[q]
        valid = np.flatnonzero(pois >= 0)[-history_window:] if history_window else np.array([], dtype=int)
        history = [(_label(poi_names[pois[i]]), datetime.fromtimestamp(int(times[i]), tz=zone)) for i in valid]
        names = [_label(poi_names[p]) for p in candidates[q]]
        prompt = rerank_prompt(history, datetime.fromtimestamp(int(queries.time[q]), tz=zone), names,
                               tokenizer=tokenizer)
        result = candidate_log_likelihoods(prompt, names, tokenizer=tokenizer, model=model,
                                           add_special_tokens=special, batch_size=batch_size)
        llm[q] = result.scores(normalise)
    combined = llm if generator_scores is None else mix_scores(llm, generator_scores, weight)
    return RerankResult(candidates=candidates, llm=llm, combined=combined)
