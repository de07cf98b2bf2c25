"""Training: determinism, resume equals uninterrupted, checkpoints, and bad input."""

import json

import pytest
import torch

from sparsenet.training.checkpoint import load_checkpoint, model_from_checkpoint, save_checkpoint
from sparsenet.data import load_dataset
from sparsenet.errors import CheckpointError, SparsenetError, TrainingDiverged
from sparsenet.training.loop import TrainConfig, build_model, train, train_named, warmup_factor

TINY = dict(width=4)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0)


def _run(digits, tmp_path, epochs=2, **kw):
    config = TrainConfig(epochs=epochs, batch_size=64, lr=0.05, seed=3)
    return train_named("plaincnn", digits, config, TINY, out_dir=tmp_path, progress=False, **kw)


def test_training_learns_and_writes_metrics(digits, tmp_path):
    _, metrics = _run(digits, tmp_path, epochs=3)
    assert metrics["final_test_accuracy"] > 0.3  # 10 classes: chance is 0.1
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert [e["epoch"] for e in written["epochs"]] == [1, 2, 3]
    assert written["params"] > 0 and written["macs"] > 0 and written["wall_time_s"] > 0
    assert written["final_test_accuracy"] == metrics["final_test_accuracy"]


def test_same_seed_is_bit_identical(digits, tmp_path):
    m1, r1 = _run(digits, tmp_path / "a")
    m2, r2 = _run(digits, tmp_path / "b")
    for (k, a), b in zip(m1.state_dict().items(), m2.state_dict().values()):
        assert torch.equal(a, b), k
    assert r1["epochs"] == r2["epochs"]


def test_resume_equals_uninterrupted(digits, tmp_path):
    full, full_metrics = _run(digits, tmp_path / "full", epochs=3)

    class Interrupt(Exception):
        pass

    def stop_after_first(epoch, _):
        if epoch == 1:
            raise Interrupt

    with pytest.raises(Interrupt):
        _run(digits, tmp_path / "cut", epochs=3, on_epoch=stop_after_first)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 1
    resumed, resumed_metrics = _run(digits, tmp_path / "cut", epochs=3, resume=True)
    for (k, a), b in zip(full.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
    assert resumed_metrics["epochs"] == full_metrics["epochs"]


def test_resume_with_other_settings_refused(digits, tmp_path):
    _run(digits, tmp_path, epochs=1)
    config = TrainConfig(epochs=1, batch_size=32, seed=3)
    with pytest.raises(CheckpointError, match="other settings"):
        train_named("plaincnn", digits, config, TINY, out_dir=tmp_path, resume=True, progress=False)


def test_checkpoint_rebuilds_the_model(digits, tmp_path):
    model, _ = _run(digits, tmp_path, epochs=1)
    rebuilt, ckpt = model_from_checkpoint(tmp_path / "checkpoint.pt")
    x = torch.randn(3, *digits.input_shape)
    assert torch.equal(model.eval()(x), rebuilt(x))
    assert ckpt["model"] == "plaincnn" and ckpt["dataset"] == "digits"


def test_corrupt_and_foreign_checkpoints_refused(tmp_path):
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"this is not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable sparsenet checkpoint"):
        load_checkpoint(bad)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weight": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a sparsenet checkpoint"):
        load_checkpoint(foreign)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_with_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("this ran",))

    path = tmp_path / "evil.pt"
    torch.save({"format": "sparsenet.checkpoint", "version": 1, "model": "plaincnn", "model_kwargs": {},
                "state_dict": {}, "payload": Evil()}, path)
    with pytest.raises(CheckpointError, match="not a readable"):
        load_checkpoint(path)


def test_future_version_refused(tmp_path):
    path = tmp_path / "v9.pt"
    save_checkpoint(path, model="plaincnn", model_kwargs={}, state_dict={})
    data = torch.load(path, weights_only=True)
    data["version"] = 9
    torch.save(data, path)
    with pytest.raises(CheckpointError, match="version 9"):
        load_checkpoint(path)


@pytest.mark.parametrize("field,value", [("epochs", 0), ("batch_size", -1), ("lr", 0.0), ("warmup_steps", -1),
                                         ("clip_grad_norm", -1.0), ("clip_grad_norm", float("nan"))])
def test_bad_config_refused(field, value):
    with pytest.raises(SparsenetError, match=field):
        TrainConfig(**{field: value}).validate()


def test_model_data_shape_mismatch(digits):
    # googlenet needs 224 px RGB; digits are 8x8 grey.
    with pytest.raises(SparsenetError, match="googlenet"):
        train_named("googlenet", digits, TrainConfig(epochs=1), progress=False)


def _weight_change(digits, **recipe):
    """Largest change of any weight after one epoch with this recipe (no weight decay)."""
    config = TrainConfig(epochs=1, batch_size=64, lr=0.05, seed=3, weight_decay=0.0, **recipe)
    model, kw = build_model("plaincnn", digits, 3, TINY)
    before = [p.detach().clone() for p in model.parameters()]
    train(model, digits, config, model_name="plaincnn", model_kwargs=kw, progress=False)
    return max((p.detach() - b).abs().max().item() for p, b in zip(model.parameters(), before))


def test_warmup_factor_is_linear_then_one():
    config = TrainConfig(warmup_steps=4)
    assert [warmup_factor(config, s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(TrainConfig(), 0) == 1.0


def test_warmup_and_clipping_reach_the_updates(digits):
    plain = _weight_change(digits)
    assert plain > 1e-2
    # a warm-up longer than the run keeps the learning rate near 0; a tiny clip keeps each step tiny
    assert _weight_change(digits, warmup_steps=10**9) < 1e-4 * plain
    assert _weight_change(digits, clip_grad_norm=1e-9) < 1e-4 * plain


def test_divergence_raises_its_own_error(digits, tmp_path):
    config = TrainConfig(epochs=1, batch_size=64, lr=1e9, seed=3)
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 1 .*warmup_steps.*clip_grad_norm"):
        train_named("plaincnn", digits, config, TINY, out_dir=tmp_path, progress=False)


def test_resume_of_a_checkpoint_from_before_the_new_recipe_keys(digits, tmp_path):
    def stop(epoch, _):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _run(digits, tmp_path, epochs=2, on_epoch=stop)
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    for key in ("warmup_steps", "clip_grad_norm"):   # written by sparsenet before these keys existed
        del ckpt["config"][key]
    torch.save(ckpt, tmp_path / "checkpoint.pt")
    _, metrics = _run(digits, tmp_path, epochs=2, resume=True)
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2]
