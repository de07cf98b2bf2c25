"""Recorder: hooks capture the right tensor and are always removed."""

import pytest
import torch
from torch import nn

from sparsenet.errors import SparsenetError
from sparsenet.models import get_model
from sparsenet.recording import get_layer, hookable_layers, iter_activations, record


def _hook_count(model):
    return sum(len(m._forward_hooks) for m in model.modules())


@pytest.fixture
def model():
    torch.manual_seed(0)
    return get_model("plaincnn", width=4)


def test_list_layers_gives_output_shapes(model):
    layers = {name: shape for name, _, shape in hookable_layers(model, (1, 28, 28))}
    assert len(layers) >= 4
    assert any(len(s) == 3 for s in layers.values()) and any(len(s) == 1 for s in layers.values())
    assert _hook_count(model) == 0


def test_record_equals_manual_forward(model):
    name, module = next((n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    x = torch.randn(10, 1, 28, 28)
    seen = []
    handle = module.register_forward_hook(lambda m, i, o: seen.append(o.detach().clone()))
    with torch.no_grad():
        model.eval()(x)
    handle.remove()
    acts = record(model, name, x, batch_size=3)
    assert torch.allclose(acts, seen[0])
    assert _hook_count(model) == 0 and not acts.requires_grad


def test_flat_layer_records_n_by_c(model):
    flat = [n for n, _, s in hookable_layers(model, (1, 28, 28)) if len(s) == 1][0]
    assert record(model, flat, torch.randn(5, 1, 28, 28)).ndim == 2


def test_unknown_layer_names_the_known_ones(model):
    with pytest.raises(SparsenetError, match="unknown layer 'nope'.*features"):
        get_layer(model, "nope")


def test_hooks_removed_after_error(model):
    name = next(n for n, m in model.named_modules() if isinstance(m, nn.Conv2d))
    with pytest.raises(SparsenetError, match="wrong shape"):
        record(model, name, torch.randn(2, 3, 28, 28))  # wrong channel count fails inside forward
    assert _hook_count(model) == 0


def test_unused_layer_is_an_error():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 3), nn.Linear(3, 3)

        def forward(self, x):
            return self.used(x)

    net = Net()
    with pytest.raises(SparsenetError, match="captured nothing"):
        list(iter_activations(net, "unused", [torch.randn(2, 3)]))
    assert _hook_count(net) == 0


def test_record_inputs_is_the_previous_layers_output_and_stops_before_the_layer():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 2, 3))
    x = torch.randn(7, 1, 8, 8)
    ran = []
    handle = model[2].register_forward_hook(lambda *a: ran.append(1))
    got = record(model, "2", x, batch_size=3, inputs=True)
    handle.remove()
    torch.testing.assert_close(got, record(model, "1", x, batch_size=3))
    assert got.shape == (7, 4, 6, 6) and not ran
    assert not model[2]._forward_pre_hooks  # hooks removed
