"""lesion: the null's sizes, a planted cluster that matters, the command."""

import json

import pytest
import torch
from torch import nn

from sparsenet.lesion import lesion, null_sets


def test_the_null_uses_the_clusters_sizes_and_channels():
    groups = [[0, 2, 4], [1, 3, 5, 7, 9], [6, 8, 10]]
    null = null_sets(groups, 20, seed=1)
    assert sorted(null) == [3, 5]
    pool = {c for g in groups for c in g}
    for size, sets in null.items():
        assert len(sets) == 20 and all(len(s) == size == len(set(s)) and set(s) <= pool for s in sets)
    assert null == null_sets(groups, 20, seed=1) and null != null_sets(groups, 20, seed=2)


def _planted():
    """24 channels: 0-5 carry the label (the sign of the image mean) redundantly, three for each
    class; the other 18 are active but unread by the head.  A random set of 6 rarely takes all
    three of one class's channels, so only the planted cluster costs accuracy."""
    net = nn.Sequential(nn.Conv2d(1, 24, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(24, 2))
    with torch.no_grad():
        net[0].weight.zero_(), net[0].bias.zero_()
        net[0].weight[:3] = 1.0                        # relu(x): evidence for class 1
        net[0].weight[3:6] = -1.0                      # relu(-x): evidence for class 0
        net[0].weight[6:] = torch.randn(18, 1, 1, 1)   # active, but unread
        net[4].weight.zero_(), net[4].bias.zero_()
        net[4].weight[1, :3], net[4].weight[0, 3:6] = 1.0, 1.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 1, 4, 4, generator=g) + torch.randn(400, 1, 1, 1, generator=g)
    y = (x.mean((1, 2, 3)) > 0).long()
    return net.eval(), x, y


def test_a_planted_cluster_that_matters_stands_out_from_the_null():
    net, x, y = _planted()
    groups = [list(range(6 * j, 6 * j + 6)) for j in range(4)]
    r = lesion(net, "1", groups, x, y, 2, n_null=40, seed=0)
    assert r["accuracy"] > 0.99
    matters, *idle = r["clusters"]
    assert matters["drop"] > 0.4 and matters["z"] > 3 and matters["p"] < 0.1
    for c in idle:
        assert abs(c["drop"]) < 1e-9 and c["p"] > 0.5
    assert len(matters["drop_per_class"]) == 2 and max(matters["drop_per_class"]) > 0.4


def test_lesion_command_writes_json_and_plot_and_refuses_bad_input(tmp_path, capsys):
    from sparsenet.cli import main
    from sparsenet.discovery.value import from_labels
    from sparsenet.models import get_model
    from sparsenet.training.checkpoint import save_checkpoint

    torch.manual_seed(0)
    save_checkpoint(tmp_path / "ck" / "checkpoint.pt", model="plaincnn",
                    model_kwargs={"width": 2, "num_classes": 10, "in_channels": 1},
                    state_dict=get_model("plaincnn", width=2).state_dict(), dataset="digits", input_shape=[1, 8, 8])
    from_labels([0, 1, 0, 1], [3, 3], provenance={"layer": "features.relu2"}).save(tmp_path / "disc")
    out = tmp_path / "les"
    assert main(["lesion", "--checkpoint", str(tmp_path / "ck"), "--discovery", str(tmp_path / "disc"),
                 "--out", str(out), "--null-sets", "5"]) == 0
    r = json.loads((out / "lesion.json").read_text())
    assert [c["size"] for c in r["clusters"]] == [2, 2] and r["null"]["sizes"] == [2]
    assert (out / "lesion.png").stat().st_size > 0
    bad = tmp_path / "bad"
    assert main(["lesion", "--checkpoint", str(tmp_path / "ck"), "--discovery", str(tmp_path / "disc"),
                 "--out", str(bad), "--layer", "features.relu1"]) == 2
    assert "layer 'features.relu1' has 2 channels but the discovery has 4" in capsys.readouterr().err
    assert main(["lesion", "--checkpoint", str(tmp_path / "ck"), "--discovery", str(tmp_path / "disc"),
                 "--out", str(bad), "--layer", "nope"]) == 2
    err = capsys.readouterr().err
    assert "layer 'nope' is not in the model" in err and "Traceback" not in err and not bad.exists()
    # each null set is kept: 10^9 of them would not fit in memory
    assert main(["lesion", "--checkpoint", str(tmp_path / "ck"), "--discovery", str(tmp_path / "disc"),
                 "--out", str(bad), "--null-sets", "1000000000"]) == 2
    err = capsys.readouterr().err
    assert "null_sets must be an integer from 1 to 100,000, got 1000000000" in err and not bad.exists()
