"""Device choice, seeds, early stopping, safe checkpoints and the epoch loop."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from stlab.training import (EarlyStopping, load_checkpoint, save_checkpoint, seed_everything,  # noqa: E402
                            select_device, train_epochs)


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA GPU"):
            select_device("cuda")


def test_early_stopping_counts_patience_and_refuses_nan():
    stop = EarlyStopping(patience=1, mode="max", min_delta=0.01)
    assert stop.step(0.5, 1) and not stop.should_stop
    assert not stop.step(0.505, 2)  # below min_delta: not an improvement
    assert not stop.should_stop
    assert not stop.step(0.4, 3) and stop.should_stop
    assert stop.best == 0.5 and stop.best_epoch == 1
    with pytest.raises(ValueError, match="diverged"):
        EarlyStopping().step(float("nan"), 1)


def test_checkpoint_round_trip_and_restricted_loading(tmp_path):
    model = torch.nn.Linear(3, 2)
    path = save_checkpoint(tmp_path / "best.pt", model, epoch=4, validation=0.25)
    other = torch.nn.Linear(3, 2)
    assert load_checkpoint(path, other) == {"epoch": 4, "validation": 0.25}
    assert torch.equal(other.weight, model.weight)
    assert not list(tmp_path.glob(".*tmp*")), "no temporary file left behind"

    class Evil:
        def __reduce__(self):
            return (print, ("this must never run",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"state_dict": Evil()}, protocol=2))
    with pytest.raises(pickle.UnpicklingError):
        load_checkpoint(bad, other)
    with pytest.raises(FileNotFoundError, match="train first"):
        load_checkpoint(tmp_path / "missing.pt", other)


def _fit(seed: int, tmp_path=None):
    seed_everything(seed)
    X = torch.randn(256, 4)
    y = X @ torch.tensor([1.0, -2.0, 0.5, 0.0]) + 0.1 * torch.randn(256)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)

    def batches(epoch):
        order = torch.randperm(256)
        return [(X[order[i:i + 32]], y[order[i:i + 32]]) for i in range(0, 256, 32)]

    def loss_fn(m, batch):
        return torch.nn.functional.mse_loss(m(batch[0]).squeeze(1), batch[1])

    def validate(m):
        with torch.no_grad():
            return -float(torch.nn.functional.mse_loss(m(X).squeeze(1), y))

    history = train_epochs(model, batches, loss_fn, optimizer, num_epochs=30, validate=validate,
                           early_stopping=EarlyStopping(patience=2), progress=False,
                           checkpoint=None if tmp_path is None else tmp_path / "ckpt.pt")
    return model, history, validate(model)


def test_training_learns_restores_the_best_epoch_and_is_reproducible(tmp_path):
    model_a, history_a, final_a = _fit(0)
    model_b, history_b, final_b = _fit(0, tmp_path)
    assert history_a["train loss"].iloc[-1] < history_a["train loss"].iloc[0] / 10
    np.testing.assert_array_equal(history_a["train loss"].to_numpy(), history_b["train loss"].to_numpy())
    assert torch.equal(model_a.weight, model_b.weight)
    # The best epoch's weights are restored, from memory or from the checkpoint file.
    assert final_a == pytest.approx(history_a["validation"].max())
    assert final_b == pytest.approx(history_b["validation"].max())
