"""Rules: planted clusters give the expected branches; budgets met within 2 %; the CLI."""

import json

import pytest

from sparsenet.cli import main
from sparsenet.discovery.value import from_labels
from sparsenet.errors import SparsenetError
from sparsenet.models.inception import GOOGLENET_INCEPTION
from sparsenet.builder.rules import (POOL_SHARE, REDUCE_RATIO_3X3, REDUCE_RATIO_5X5, fit_budget, module_from_discovery,
                             module_from_inception, parse_budget_like, reference_module, scale_module)
from sparsenet.builder.spec import load_spec, module_macs

# Planted structure: 4 clusters of known sizes and extents, interleaved, 4 inactive channels.
SIZES, KERNELS = [16, 8, 24, 8], [1, 3, 3, 5]
LABELS = [k for k, s in enumerate(SIZES) for _ in range(s)] + [-1] * 4
LABELS = LABELS[::2] + LABELS[1::2]   # interleave so that clusters are not contiguous channels


def planted(**provenance):
    return from_labels(LABELS, KERNELS, provenance=provenance or {"layer_shape": [60, 8, 8]})


def members(k):
    return tuple(i for i, v in enumerate(LABELS) if v == k)


def test_ratios_are_googlenet_averages():
    assert REDUCE_RATIO_3X3 == pytest.approx(0.542, abs=1e-3)
    assert REDUCE_RATIO_5X5 == pytest.approx(0.366, abs=1e-3)
    assert POOL_SHARE == pytest.approx(0.132, abs=1e-3)


def test_cluster_mode_branches():
    spec = module_from_discovery(planted())
    assert spec.connectivity == "cluster" and spec.in_channels == 60
    # ordered by (kernel size, cluster id); one branch per cluster reading exactly its channels
    got = [(b.kernel_size, b.width, b.reduce, b.inputs) for b in spec.branches]
    assert got == [(1, 16, None, members(0)), (3, 8, 4, members(1)), (3, 24, 13, members(2)),
                   (5, 8, 3, members(3))]
    assert spec.pool.projection == round(56 * POOL_SHARE / (1 - POOL_SHARE))   # 8.5 -> 9
    inactive = set(range(60)) - set(spec.pool.inputs)
    assert inactive == {i for i, v in enumerate(LABELS) if v < 0}
    assert not inactive & {i for b in spec.branches for i in b.inputs}


def test_full_mode_merges_kernel_sizes():
    spec = module_from_discovery(planted(), connectivity="full")
    assert [(b.kernel_size, b.width, b.reduce, b.inputs) for b in spec.branches] == \
        [(1, 16, None, None), (3, 32, 17, None), (5, 8, 3, None)]
    assert spec.pool.inputs is None


def test_widths_proportional_to_cluster_sizes():
    spec = module_from_discovery(planted(), width_scale=2.5)
    widths = [b.width for b in spec.branches]
    assert widths == [40, 20, 60, 20]   # 2.5 x (16, 8, 24, 8)
    tiny = module_from_discovery(planted(), width_scale=0.01)
    assert all(b.width == 1 and b.reduce in (None, 1) for b in tiny.branches) and tiny.pool.projection == 1


@pytest.mark.parametrize("connectivity", ["cluster", "full"])
@pytest.mark.parametrize("target", [2e5, 1.3e6, 7.7e6, 4.1e7])
def test_budget_met_within_two_percent(connectivity, target):
    spec = fit_budget(lambda f: module_from_discovery(planted(), connectivity=connectivity, width_scale=f),
                      target, (8, 8))
    assert abs(module_macs(spec, (8, 8)) - target) <= 0.02 * target
    assert spec.provenance["budget"]["macs"] == module_macs(spec, (8, 8))
    assert spec.connectivity == connectivity


def test_budget_refused_when_impossible():
    # every width 1, per pixel: 16 (1x1) + 8+9 (3x3) + 24+9 (3x3) + 8+25 (5x5) + 56 (pool) = 155; x 64 px
    with pytest.raises(SparsenetError, match=r"cannot be met: the cheapest module .* needs 9,920 multiply-adds"):
        fit_budget(lambda f: module_from_discovery(planted(), width_scale=f), 1000, (8, 8))


def test_scale_googlenet_module_to_budget():
    spec = module_from_inception(*GOOGLENET_INCEPTION["3a"])
    half = scale_module(spec, 0.5)
    assert [b.width for b in half.branches] == [32, 64, 16] and half.pool.projection == 16
    fitted = fit_budget(spec, 1e6, (14, 14))
    assert abs(module_macs(fitted, (14, 14)) - 1e6) <= 2e4


def test_reference_module_measured_by_hook():
    ref = reference_module("googlenet_small", "3a", 0.5)
    assert ref.name == "googlenet_small@0.5:3a" and ref.input_size == (14, 14)
    assert ref.spec.in_channels == 96 and [b.width for b in ref.spec.branches] == [32, 64, 16]
    assert ref.macs == module_macs(ref.spec, ref.input_size)
    assert parse_budget_like("googlenet_small:4b") == ("googlenet_small", 1.0, "4b")
    for bad in ("googlenet_small", "googlenet_small:9z", "googlenet_small@x:3a"):
        with pytest.raises(SparsenetError, match="MODEL\\[@WIDTH_MULT\\]:STAGE|not an Inception stage"):
            parse_budget_like(bad)


# ---------------------------------------------------------------------------------- CLI

@pytest.fixture
def discovery_dir(tmp_path):
    planted().save(tmp_path / "run" / "discovery.json")
    return tmp_path / "run"


def test_cli_build_writes_spec_and_picture(discovery_dir, tmp_path, capsys):
    out, png = tmp_path / "spec.json", tmp_path / "cmp.png"
    assert main(["build", "--discovery", str(discovery_dir / "discovery.json"), "--out", str(out),
                 "--budget-like", "googlenet_small@0.25:3a", "--picture", str(png)]) == 0
    spec = load_spec(out)
    ref = reference_module("googlenet_small", "3a", 0.25)
    assert abs(module_macs(spec, (8, 8)) - ref.macs) <= 0.02 * ref.macs
    assert spec.provenance["budget"]["like"] == "googlenet_small@0.25:3a"
    assert png.read_bytes()[:4] == b"\x89PNG"
    text = capsys.readouterr().out
    assert "multiply-adds at 8x8" in text and "budget: target" in text
    # summary mode reads it back
    assert main(["build", "--spec", str(out), "--input-size", "8,8"]) == 0
    summary = capsys.readouterr().out
    assert f"{module_macs(spec, (8, 8)):,}" in summary
    assert "budget:" not in summary  # no budget was asked for this time


def test_cli_default_out_and_full(discovery_dir, capsys):
    assert main(["build", "--discovery", str(discovery_dir), "--connectivity", "full"]) == 0
    data = json.loads((discovery_dir / "spec.json").read_text())
    assert data["connectivity"] == "full" and len(data["branches"]) == 3


@pytest.mark.parametrize("args, message", [
    (["--budget-macs", "1000"], "cannot be met: the cheapest module"),
    (["--in-channels", "32"], "has 60 channels, but --in-channels is 32"),
    (["--input-size", "8"], "--input-size '8' is not H,W"),
])
def test_cli_refuses_and_writes_nothing(discovery_dir, tmp_path, capsys, args, message):
    out = tmp_path / "spec.json"
    assert main(["build", "--discovery", str(discovery_dir), "--out", str(out), *args]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not out.exists()


def test_cli_bad_discovery(tmp_path, capsys):
    bad = tmp_path / "discovery.json"
    bad.write_text(json.dumps({"format": "something else"}))
    out, png = tmp_path / "spec.json", tmp_path / "p.png"
    assert main(["build", "--discovery", str(bad), "--out", str(out), "--picture", str(png)]) == 2
    err = capsys.readouterr().err
    assert "is not a valid discovery file: field 'format'" in err
    assert not out.exists() and not png.exists()


def test_cli_spec_that_does_not_fit(discovery_dir, tmp_path, capsys):
    out = tmp_path / "spec.json"
    assert main(["build", "--discovery", str(discovery_dir), "--out", str(out)]) == 0
    assert main(["build", "--spec", str(out), "--in-channels", "64"]) == 2
    assert "in_channels is 60; it must equal the channels of the layer it follows (--in-channels), which is 64" \
        in capsys.readouterr().err
