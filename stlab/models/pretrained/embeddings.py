"""Sentence embeddings of names, an on-disk cache verified on every use, and cosine neighbours.

A cached embedding matrix is stored as ``<cache>/embeddings/<key>.npy`` with a JSON sidecar
``<key>.json`` holding the array's sha256, shape, dtype and the model id. The key is the sha256
of the model id, :data:`EMBEDDING_CACHE_FORMAT` and the texts *in order*, so a different model
(or version, or weights file) or a different list of texts can never pick up the wrong matrix.
On every use the file's checksum, shape and dtype are checked against the sidecar; a mismatch
(a half-copied, truncated or edited file) is logged and the matrix is rebuilt. Both files are
written to a temporary file and renamed into place, and arrays are loaded with
``allow_pickle=False`` so a tampered file cannot run code.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from stlab.config import cache_dir as default_cache_root
from stlab.data.fetch import atomic_path, file_digest
from stlab.models.pretrained.loading import MINILM, model_identity, sentence_encoder

log = logging.getLogger(__name__)

#: Part of every cache key: bump it with any change to how embeddings are computed or stored
#: (normalisation, dtype, file layout), so old files are not mistaken for new ones.
EMBEDDING_CACHE_FORMAT = 1

_NORM_FLOOR = 1e-12  # an all-zero row stays zero instead of becoming NaN


class TextEncoder(Protocol):
    """What :func:`embed_texts` needs: a ``SentenceTransformer`` or anything encoding alike."""

    def encode(self, sentences: list[str], **kwargs: Any) -> Any: ...


def _l2_normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, _NORM_FLOOR)).astype(np.float32, copy=False)


def _embedding_dimension(encoder: TextEncoder) -> int:
    for name in ("get_embedding_dimension", "get_sentence_embedding_dimension"):
        method = getattr(encoder, name, None)
        if callable(method) and method() is not None:
            return int(method())
    return int(np.asarray(encoder.encode(["x"], convert_to_numpy=True)).shape[1])


def embed_texts(texts: Sequence[str], *, encoder: TextEncoder | None = None, batch_size: int = 128,
                progress: bool = False) -> np.ndarray:
    """Embed ``texts`` with ``encoder`` (default: all-MiniLM-L6-v2 on the CPU).

    Duplicates are encoded once (POI names repeat: chains, "Home", "Office") and scattered back.

    Args:
        texts: ``N`` strings.
        encoder: a ``SentenceTransformer``; default :func:`~stlab.models.pretrained.sentence_encoder`.
        batch_size: texts per forward pass.
        progress: show the encoder's progress bar.

    Returns:
        ``[N, D]`` float32, each row L2-normalised (so a dot product is a cosine); ``D = 384``
        for the default model.
    """
    texts = list(texts)
    if not all(isinstance(t, str) for t in texts):
        raise TypeError("texts must all be strings (replace missing names with '' first)")
    encoder = sentence_encoder() if encoder is None else encoder
    if not texts:
        return np.zeros((0, _embedding_dimension(encoder)), dtype=np.float32)
    unique = list(dict.fromkeys(texts))  # keeps first-seen order, so runs are reproducible
    raw = encoder.encode(unique, batch_size=batch_size, convert_to_numpy=True,
                         normalize_embeddings=True, show_progress_bar=progress)
    vectors = _l2_normalise(np.asarray(raw, dtype=np.float32))
    if vectors.ndim != 2 or len(vectors) != len(unique):
        raise ValueError(f"encoder returned shape {vectors.shape} for {len(unique)} texts")
    if len(unique) == len(texts):
        return vectors
    row = {text: i for i, text in enumerate(unique)}
    return vectors[np.fromiter((row[t] for t in texts), dtype=np.int64, count=len(texts))]


def embedding_cache_key(texts: Sequence[str], model_id: str) -> str:
    """sha256 of the model id, the cache format and the texts in order (JSON, so unambiguous)."""
    payload = json.dumps({"model": model_id, "format": EMBEDDING_CACHE_FORMAT, "texts": list(texts)},
                         ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def _load_verified(array_path: Path, meta_path: Path, *, model_id: str, rows: int) -> np.ndarray | None:
    """The cached matrix if it passes every check, else ``None`` (after logging why)."""
    if not array_path.exists() or not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, json.JSONDecodeError):
        log.warning("embedding cache sidecar %s is unreadable; rebuilding", meta_path)
        return None
    if meta.get("model_id") != model_id or meta.get("format") != EMBEDDING_CACHE_FORMAT:
        log.warning("embedding cache %s was made by another model or format; rebuilding", array_path)
        return None
    actual = file_digest(array_path)
    if actual != meta.get("sha256"):
        log.warning("embedding cache %s does not match its recorded checksum (expected %s, got %s); "
                    "rebuilding", array_path, meta.get("sha256"), actual)
        return None
    try:
        array = np.load(array_path, allow_pickle=False)
    except (OSError, ValueError) as err:
        log.warning("embedding cache %s cannot be read (%s); rebuilding", array_path, err)
        return None
    shape = tuple(meta.get("shape", ()))
    if array.shape != shape or array.dtype != np.float32 or array.ndim != 2 or len(array) != rows:
        log.warning("embedding cache %s has shape %s %s, expected %s float32 with %d rows; rebuilding",
                    array_path, array.shape, array.dtype, shape, rows)
        return None
    return array


def cached_embeddings(texts: Sequence[str], *, cache_dir: Path | None = None,
                      encoder: TextEncoder | None = None, model_id: str | None = None,
                      batch_size: int = 128, progress: bool = False) -> np.ndarray:
    """:func:`embed_texts`, kept on disk and verified on every use.

    Args:
        texts: ``N`` strings; their order is part of the key.
        cache_dir: folder of the cache; default ``<STLAB_CACHE>/embeddings``.
        encoder: as in :func:`embed_texts`. A custom encoder needs a ``model_id``.
        model_id: identity of the encoder for the key; default the wheel's
            ``name==version@sha256`` (:class:`~stlab.models.pretrained.ModelIdentity`).
        batch_size, progress: as in :func:`embed_texts`.

    Returns:
        ``[N, D]`` float32, L2-normalised rows; a writable array in memory (changing it never
        touches the file).
    """
    texts = list(texts)
    if model_id is None:
        if encoder is not None:
            raise ValueError("pass model_id= with a custom encoder, so its cache cannot be mistaken "
                             "for another model's")
        model_id = model_identity(MINILM).model_id
    directory = Path(cache_dir) if cache_dir is not None else default_cache_root() / "embeddings"
    key = embedding_cache_key(texts, model_id)
    array_path, meta_path = directory / f"{key}.npy", directory / f"{key}.json"
    cached = _load_verified(array_path, meta_path, model_id=model_id, rows=len(texts))
    if cached is not None:
        log.debug("embeddings of %d texts read from %s", len(texts), array_path)
        return cached
    vectors = embed_texts(texts, encoder=encoder, batch_size=batch_size, progress=progress)
    # np.save gets a file object: given a path, it would append ".npy" to the temporary name.
    with atomic_path(array_path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, vectors, allow_pickle=False)
    meta = {"model_id": model_id, "format": EMBEDDING_CACHE_FORMAT, "sha256": file_digest(array_path),
            "shape": list(vectors.shape), "dtype": str(vectors.dtype), "texts": len(texts)}
    # The sidecar is written last: a crash in between leaves an array without a matching
    # sidecar, which the next use rebuilds.
    with atomic_path(meta_path) as tmp:
        tmp.write_text(json.dumps(meta, indent=2))
    return vectors


def nearest_neighbours(embeddings: np.ndarray, index: np.ndarray, k: int, *,
                       block_rows: int = 1024) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``index`` most cosine-similar to each row of ``embeddings``.

    Rows are normalised here, so unnormalised inputs are fine. The similarity matrix is built
    ``block_rows`` queries at a time, so memory stays ``O(block_rows * M)``.

    Args:
        embeddings: ``[N, D]`` queries.
        index: ``[M, D]`` the rows to search.
        k: neighbours per query, ``1 <= k <= M``.

    Returns:
        ``(indices [N, k] int64, cosine [N, k] float32)``, most similar first; equal cosines
        within the ``k`` are ordered by index, so results are deterministic.
    """
    embeddings, index = np.asarray(embeddings), np.asarray(index)
    if embeddings.ndim != 2 or index.ndim != 2 or embeddings.shape[1] != index.shape[1]:
        raise ValueError(f"expected [N, D] and [M, D], got {embeddings.shape} and {index.shape}")
    if not 1 <= k <= len(index):
        raise ValueError(f"k must be between 1 and {len(index)} (rows of index), got {k}")
    queries = _l2_normalise(embeddings.astype(np.float32, copy=False))
    keys = _l2_normalise(index.astype(np.float32, copy=False))
    out_idx = np.empty((len(queries), k), dtype=np.int64)
    out_cos = np.empty((len(queries), k), dtype=np.float32)
    for start in range(0, len(queries), block_rows):
        sims = queries[start:start + block_rows] @ keys.T  # [B, M]
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k] if k < len(keys) else \
            np.broadcast_to(np.arange(len(keys)), sims.shape).copy()
        top_sims = np.take_along_axis(sims, top, axis=1)
        order = np.lexsort((top, -top_sims), axis=1)  # by cosine descending, then index
        out_idx[start:start + block_rows] = np.take_along_axis(top, order, axis=1)
        out_cos[start:start + block_rows] = np.take_along_axis(top_sims, order, axis=1)
    return out_idx, out_cos


def embedding_start(vectors: np.ndarray, dim: int, *, seed: int = 0) -> np.ndarray:
    """``[N, dim]`` float32 starting vectors for a model's embedding table from text embeddings.

    The first principal components of ``vectors`` (``[N, D]``), scaled so that every entry has
    standard deviation ``dim ** -0.5`` -- the size of a random start -- and so keep the geometry
    of the names (close names, close rows). When ``dim`` exceeds what the data can give
    (``min(N, D)`` components), the remaining columns are seeded random noise of the same size.

    Introduced in chapter 9 (Pretrained models).
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if vectors.ndim != 2 or len(vectors) < 2:
        raise ValueError(f"need [N, D] embeddings with N >= 2, got shape {vectors.shape}")
    if dim < 1:
        raise ValueError(f"dim must be >= 1, got {dim}")
    centred = vectors - vectors.mean(axis=0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    keep = min(dim, components.shape[0])
    projected = centred @ components[:keep].T  # [N, keep]
    scale = projected.std()
    projected = projected / scale if scale > 0 else projected
    if keep < dim:
        extra = np.random.default_rng(seed).normal(size=(len(vectors), dim - keep))
        projected = np.concatenate([projected, extra], axis=1)
    return (projected * dim ** -0.5).astype(np.float32)
