"""googlenet_small written as a spec: same cost as the model; swapping a discovered module in."""

import pytest
import torch

from sparsenet.models.accounting import measure
from sparsenet.builder.modules import build_network
from sparsenet.data import load_dataset
from sparsenet.analyser.settings import AnalysisSettings
from sparsenet.errors import SparsenetError
from sparsenet.models import get_model
from sparsenet.builder.rules import module_from_inception
from sparsenet.compare.skeleton import (
    discover_and_swap,
    googlenet_spec,
    pool_mismatch,
    record_module_input,
    stage_index,
    swap_module,
)
from sparsenet.builder.spec import load_spec, module_input_sizes, module_macs


@pytest.mark.parametrize("width_mult, num_modules, side", [
    (0.25, 2, 28), (0.5, 7, 28), (0.125, 9, 16), (0.3, 9, 32), (1.0, 3, 28),
])
def test_spec_has_the_models_params_and_macs(width_mult, num_modules, side):
    spec = googlenet_spec(width_mult, num_modules, input_size=side)
    ours = measure(build_network(spec), (1, side, side))
    theirs = measure(get_model("googlenet_small", width_mult=width_mult, num_modules=num_modules), (1, side, side))
    assert ours == theirs


def test_spec_structure_follows_googlenet_small():
    spec = googlenet_spec(0.5, 9)
    assert spec.stem.widths == (32, 32, 96) and spec.stem.kernel_sizes == (3, 1, 3) and spec.stem.pool
    assert spec.pool_after == (1, 6)          # pools between 3b/4a and 4e/5a
    assert spec.head.dropout == 0.4
    assert [m.out_channels for m in spec.modules][:2] == [128, 240]
    assert stage_index(spec, "4a") == 2


def test_odd_pool_inputs_refused():
    assert pool_mismatch(9, 28) and not pool_mismatch(7, 28) and not pool_mismatch(9, 16)
    with pytest.raises(SparsenetError, match="inception5a.*7x7"):
        googlenet_spec(0.25, 9, input_size=28)


def test_bad_arguments_refused():
    with pytest.raises(SparsenetError, match="num_modules"):
        googlenet_spec(0.25, 10)
    with pytest.raises(SparsenetError, match="width_mult"):
        googlenet_spec(0, 2)
    with pytest.raises(SparsenetError, match="stage '4a' is not in this skeleton"):
        stage_index(googlenet_spec(0.25, 2), "4a")


def test_swap_rewires_the_next_module():
    spec = googlenet_spec(0.25, 3)
    new = module_from_inception(spec.modules[1].in_channels, 10, 4, 6, 2, 3, 5)
    swapped = swap_module(spec, 1, new)
    assert swapped.modules[1] is new
    assert swapped.modules[2].in_channels == new.out_channels == 24
    build_network(swapped)(torch.zeros(2, 1, 28, 28))
    with pytest.raises(SparsenetError, match="reads 7 channels"):
        swap_module(spec, 1, module_from_inception(7, 1, 1, 1, 1, 1, 1))


def test_record_module_input_is_the_modules_input():
    spec = googlenet_spec(0.125, 3)
    torch.manual_seed(0)
    model = build_network(spec).eval()
    x = torch.randn(5, 1, 28, 28)
    seen = []
    handle = model.blocks[2].register_forward_pre_hook(lambda m, inp: seen.append(inp[0].clone()))
    with torch.no_grad():
        model(x)
    handle.remove()
    recorded = record_module_input(model, 2, x, batch_size=2)   # after the pool between 3b and 4a
    assert recorded.shape == (5, 60, 7, 7)
    torch.testing.assert_close(recorded, seen[0])


def test_discover_and_swap_meets_the_budget(tmp_path):
    digits = load_dataset("digits", seed=0, image_size=16)
    spec = googlenet_spec(0.125, 2, num_classes=10, input_size=16)
    torch.manual_seed(0)
    model = build_network(spec)
    summary = discover_and_swap(model, spec, "3b", digits, AnalysisSettings(max_samples=100, permutations=0,
                                                                              resamples=0), tmp_path)
    swapped = load_spec(tmp_path / "network.json", kind="network")
    size = module_input_sizes(swapped, (16, 16))[1]
    target = module_macs(spec.modules[1], size)
    assert summary["hand_module_macs"] == target
    assert abs(module_macs(swapped.modules[1], size) - target) <= 0.02 * target
    assert swapped.modules[0] == spec.modules[0]
    assert (tmp_path / "discovery" / "discovery.json").exists() and (tmp_path / "swap.json").exists()
    build_network(swapped)(digits.x_test[:3])
