"""Training utilities shared by the PyTorch models: device, seeds, early stopping, safe
checkpoints and one epoch loop with progress bars and optional mixed precision.

Introduced in chapter 7 (Recurrent models in PyTorch); chapter 6 uses :func:`seed_everything`.
"""

from __future__ import annotations

import math
import os
import random
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm


def select_device(preference: str = "auto") -> torch.device:
    """The device to train on: ``"auto"`` picks CUDA when present, else the CPU.

    Raises:
        ValueError: ``"cuda"`` was asked for on a machine without a usable GPU.
    """
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(preference)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA GPU is available here; "
                         "use device='auto' (falls back to the CPU) or device='cpu'")
    return device


@contextmanager
def cpu_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with ``num_threads`` PyTorch CPU threads, then restore the process setting
    (``None`` changes nothing). On a shared machine whose cores are busy, fewer threads can be
    several times faster."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def seed_everything(seed: int, *, deterministic: bool = True) -> None:
    """Seed Python, NumPy, PyTorch (CPU and CUDA) and, if imported, Keras.

    With ``deterministic``, PyTorch is asked for deterministic kernels (``warn_only``: an
    operation without one still runs), so the same parameters on the CPU give the same numbers
    twice. On a GPU some kernels remain nondeterministic; results then agree within noise.

    Process-wide effects (they outlive the call and touch code that never asked for them):

    * the global random states of Python's ``random``, NumPy's legacy ``np.random`` and
      PyTorch's default generator are reset -- code that draws from them afterwards (including
      other libraries) gets the seeded sequence;
    * with ``deterministic``: ``CUBLAS_WORKSPACE_CONFIG`` is set in ``os.environ`` if unset (it is
      read when CUDA initialises, so it only helps before the first CUDA call; child processes
      inherit it); ``torch.use_deterministic_algorithms(True, warn_only=True)`` stays on for the
      whole process, which can slow later GPU code and warns on operations without a deterministic
      kernel; ``torch.backends.cudnn.benchmark`` is switched off for the process;
    * if Keras is imported, ``keras.utils.set_random_seed`` reseeds Keras's global generator (and
      the backend's: TensorFlow's or JAX's global seed).

    Models in ``stlab`` that draw random numbers also take their own ``seed`` and local
    generators where the library allows it, so their results do not depend on what ran before.
    """
    random.seed(seed)  # process-wide: Python's global random state
    np.random.seed(seed)  # process-wide: NumPy's legacy global state
    torch.manual_seed(seed)  # process-wide: the default generator, CUDA's too
    if deterministic:
        # Read when CUDA starts; setdefault keeps a value the user chose.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)  # stays on for the process
        torch.backends.cudnn.benchmark = False  # process-wide
    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(seed)


@dataclass
class EarlyStopping:
    """Stop when a validation metric has not improved by ``min_delta`` for ``patience`` epochs.

    Args:
        patience: epochs without improvement tolerated.
        mode: ``"max"`` for metrics such as MRR, ``"min"`` for losses.
        min_delta: the smallest change that counts as an improvement.
    """

    patience: int = 3
    mode: Literal["min", "max"] = "max"
    min_delta: float = 0.0
    best: float = field(default=math.nan, init=False)
    best_epoch: int = field(default=-1, init=False)
    bad_epochs: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        if self.patience < 0 or self.mode not in ("min", "max"):
            raise ValueError("patience must be >= 0 and mode 'min' or 'max'")

    def step(self, value: float, epoch: int) -> bool:
        """Record an epoch's metric; return whether it is the best so far."""
        if not math.isfinite(value):
            raise ValueError(f"validation metric is {value} at epoch {epoch}; training diverged -- "
                             "lower the learning rate or clip gradients")
        better = math.isnan(self.best) or (value > self.best + self.min_delta if self.mode == "max"
                                           else value < self.best - self.min_delta)
        if better:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs > self.patience


def save_checkpoint(path: str | Path, model: nn.Module, **metadata: float | str) -> Path:
    """Write the model's weights (and plain metadata) atomically: a temporary file, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save({"state_dict": model.state_dict(), "metadata": dict(metadata)}, temporary)
    os.replace(temporary, path)
    return path


def load_checkpoint(path: str | Path, model: nn.Module, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load weights saved by :func:`save_checkpoint` into ``model``; return the metadata.

    ``weights_only=True`` makes ``torch.load`` refuse anything but tensors and plain containers,
    so a tampered file cannot run code when it is read.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}; train first or check the path")
    payload = torch.load(path, map_location=map_location, weights_only=True)
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise ValueError(f"{path} is not a checkpoint written by stlab.training.save_checkpoint")
    model.load_state_dict(payload["state_dict"])
    return dict(payload.get("metadata", {}))


def train_epochs(
    model: nn.Module,
    batches: Callable[[int], Iterable[tuple[Any, ...]]],
    loss_fn: Callable[[nn.Module, tuple[Any, ...]], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    *,
    num_epochs: int,
    validate: Callable[[nn.Module], float] | None = None,
    early_stopping: EarlyStopping | None = None,
    checkpoint: str | Path | None = None,
    device: torch.device | None = None,
    mixed_precision: bool = False,
    grad_clip: float | None = 1.0,
    progress: bool = True,
) -> pd.DataFrame:
    """Train for up to ``num_epochs``; validate, stop early and keep the best weights.

    Args:
        model: the network (moved to ``device``).
        batches: ``epoch -> iterable of batches``, each a tuple the loss function understands
            (tensors are moved to ``device`` here).
        loss_fn: ``(model, batch) -> scalar loss``.
        optimizer: over ``model.parameters()``.
        validate: ``model -> metric`` after each epoch (the model is in eval mode).
        early_stopping: stops on the validation metric; the best epoch's weights are restored.
        checkpoint: where the best weights are written (atomically) and read back from.
        mixed_precision: bfloat16/float16 autocast on CUDA (ignored on the CPU).
        grad_clip: maximum gradient norm (``None`` to disable).

    Returns:
        One row per epoch: training loss, validation metric, seconds, examples per second.
    """
    device = device or next(model.parameters()).device
    model.to(device)
    use_amp = mixed_precision and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    best_state: dict[str, torch.Tensor] | None = None
    history = []
    for epoch in range(num_epochs):
        model.train()
        start, total, count, examples = time.perf_counter(), 0.0, 0, 0
        bar = tqdm(batches(epoch), desc=f"epoch {epoch + 1}/{num_epochs}", disable=not progress, leave=False)
        for batch in bar:
            batch = tuple(b.to(device, non_blocking=True) if isinstance(b, torch.Tensor) else b for b in batch)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device_type=device.type, enabled=use_amp):
                loss = loss_fn(model, batch)
            scaler.scale(loss).backward()
            if grad_clip is not None:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
            scaler.step(optimizer)
            scaler.update()
            total += float(loss.detach())
            count += 1
            examples += len(batch[0]) if isinstance(batch[0], torch.Tensor) else 1
            bar.set_postfix(loss=f"{total / count:.4f}")
        seconds = time.perf_counter() - start
        row: dict[str, float] = {"epoch": epoch + 1, "train loss": total / max(count, 1), "seconds": seconds,
                                 "examples/s": examples / seconds if seconds > 0 else math.nan}
        if validate is not None:
            model.eval()
            with torch.no_grad():
                row["validation"] = float(validate(model))
            if early_stopping is not None:
                if early_stopping.step(row["validation"], epoch + 1):
                    if checkpoint is not None:
                        save_checkpoint(checkpoint, model, epoch=epoch + 1, validation=row["validation"])
                    else:
                        best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        history.append(row)
        if early_stopping is not None and early_stopping.should_stop:
            break
    if early_stopping is not None and early_stopping.best_epoch > 0:
        if checkpoint is not None:
            load_checkpoint(checkpoint, model, map_location=device)
        elif best_state is not None:
            model.load_state_dict(best_state)
    return pd.DataFrame(history).set_index("epoch")


__all__ = ["EarlyStopping", "cpu_threads", "load_checkpoint", "save_checkpoint", "seed_everything", "select_device", "train_epochs"]
