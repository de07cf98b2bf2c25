"""`sparsenet grow` on tiny data: runs end to end and resumes after an interruption."""

import json
import shutil

import pytest

from sparsenet.cli import main
from sparsenet.data import load_dataset
from sparsenet.analyser.settings import AnalysisSettings
from sparsenet.errors import SparsenetError
from sparsenet.grow import GrowthConfig, grow
from sparsenet.builder.spec import load_spec
from sparsenet.training.config import TrainConfig

ANALYSIS = AnalysisSettings(max_samples=150, permutations=2, resamples=2)
TRAIN = TrainConfig(epochs=1, batch_size=64, seed=0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits", seed=0, image_size=12)


@pytest.fixture(scope="module")
def grown(digits, tmp_path_factory):
    out = tmp_path_factory.mktemp("grow")
    config = GrowthConfig(modules=2, stem_width=8, budget_macs=60_000)
    return out, grow(digits, config, TRAIN, ANALYSIS, out, progress=False)


def test_grow_end_to_end(grown, digits):
    out, summary = grown
    assert summary["modules"] == 2 and len(summary["steps"]) == 3
    for step in (1, 2):
        d = json.loads((out / f"step{step}" / "discovery" / "discovery.json").read_text())
        module = load_spec(out / f"step{step}" / "module.json", kind="module")
        assert module.in_channels == d["channels"]
        assert {b.kernel_size for b in module.branches} == {c["kernel_size"] for c in d["clusters"]}
    network = load_spec(out / "network.json", kind="network")
    assert len(network.modules) == 2
    for name in ("checkpoint.pt", "metrics.json", "network.png"):
        assert (out / name).stat().st_size > 0
    assert 0.0 <= summary["final_test_accuracy"] <= 1.0


def test_budget_met_per_module(grown, digits):
    from sparsenet.builder.spec import module_input_sizes, module_macs

    out, _ = grown
    network = load_spec(out / "network.json", kind="network")
    sizes = module_input_sizes(network, digits.input_shape[1:])
    for module, size in zip(network.modules, sizes):
        assert abs(module_macs(module, size) - 60_000) <= 0.02 * 60_000


def test_resume_after_interruption(grown, digits, tmp_path):
    out, summary = grown
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    # Interrupt inside step 2: its result and the final files were never written.
    for name in ("network.json", "checkpoint.pt", "metrics.json", "network.png"):
        (copy / name).unlink()
    (copy / "step2" / "metrics.json").unlink()
    step1_time = (copy / "step1" / "checkpoint.pt").stat().st_mtime_ns
    config = GrowthConfig(modules=2, stem_width=8, budget_macs=60_000)
    resumed = grow(digits, config, TRAIN, ANALYSIS, copy, progress=False)
    assert (copy / "step1" / "checkpoint.pt").stat().st_mtime_ns == step1_time  # not retrained
    assert resumed["final_test_accuracy"] == summary["final_test_accuracy"]
    assert resumed["steps"] == summary["steps"][:2] + [resumed["steps"][2]]


def test_other_settings_refused(grown, digits):
    out, _ = grown
    with pytest.raises(SparsenetError, match="other settings.*growth"):
        grow(digits, GrowthConfig(modules=3, stem_width=8), TRAIN, ANALYSIS, out, progress=False)


def test_unmeetable_budget_cli(capsys, tmp_path):
    code = main(["grow", "--data", "digits", "--modules", "1", "--epochs", "1", "--budget-macs", "10",
                 "--max-samples", "100", "--permutations", "2", "--resamples", "2", "--out", str(tmp_path / "g"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be met" in err and "Traceback" not in err
    assert not (tmp_path / "g" / "network.json").exists()


def test_grow_and_train_take_the_same_stability_settings():
    from sparsenet.cli import build_parser
    from sparsenet.grow import STEP_TRAINING

    parser = build_parser()
    for command in ("grow", "train"):
        args = parser.parse_args([command, "--warmup-steps", "7", "--clip-grad-norm", "1.5"])
        assert (args.warmup_steps, args.clip_grad_norm) == (7, 1.5)
    args = parser.parse_args(["grow"])   # unchanged defaults: the step recipe's
    assert (args.warmup_steps, args.clip_grad_norm) == (STEP_TRAINING.warmup_steps, STEP_TRAINING.clip_grad_norm)


def test_significance_rule_respects_the_permutation_floor():
    from sparsenet.grow import looks_significant

    assert looks_significant({"z": 82.0, "p": 1 / 11, "n_permutations": 10})  # p at its floor, z large
    assert not looks_significant({"z": -31.6, "p": 1.0, "n_permutations": 10})
    assert not looks_significant({"z": 1.0, "p": 0.04, "n_permutations": 100})
    assert looks_significant({})  # not tested: nothing to warn about


def test_grown_modules_read_contiguous_slices_of_a_producer_that_keeps_its_function(grown, digits):
    """Each step lays its producer out in the order the new module reads (builder/layout.py): the
    trained, frozen layers compute the same channels, renamed, and the clusters are views."""
    import torch

    from sparsenet.builder.modules import build_network
    from sparsenet.training.checkpoint import load_checkpoint

    out, _ = grown
    x = torch.as_tensor(digits.x_test[:8]).float()
    models = []
    for step in (0, 1, 2):
        net = build_network(load_spec(out / f"step{step}" / "network.json", kind="network")).eval()
        net.load_state_dict(load_checkpoint(out / f"step{step}" / "checkpoint.pt")["state_dict"])
        models.append(net)
    with torch.no_grad():
        for step in (1, 2):
            order = load_spec(out / f"step{step}" / "module.json", kind="module").provenance["input_order"]
            before, after = models[step - 1], models[step]
            y0 = before.stem(x) if step == 1 else before.blocks[0](before.stem(x))
            y1 = after.stem(x) if step == 1 else after.blocks[0](after.stem(x))
            assert (y1 - y0[:, order]).abs().max() < 1e-5, step
    final = models[2]
    for block in final.blocks:
        for bucket in block.buckets:  # a gather only where the groups read unequal numbers of channels
            assert (bucket.index is None) == (len({n for n, _, _ in bucket._groups}) == 1)
