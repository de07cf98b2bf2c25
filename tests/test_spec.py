"""Specs: round trips, and every invalid spec refused with a message naming field and value."""

import json

import pytest

from sparsenet.errors import SparsenetError
from sparsenet.builder.spec import (
    BranchSpec,
    HeadSpec,
    ModuleSpec,
    NetworkSpec,
    PoolSpec,
    StemSpec,
    load_spec,
    module_input_sizes,
    module_macs,
    module_params,
    save_spec,
    spec_to_dict,
)


def cluster_module(in_channels=12):
    return ModuleSpec(
        in_channels=in_channels,
        branches=(BranchSpec(1, 4, None, (0, 1, 2)), BranchSpec(3, 5, 2, (3, 4, 5, 6)),
                  BranchSpec(5, 3, 2, (7, 8, 9))),
        pool=PoolSpec(3, inputs=tuple(range(10))), connectivity="cluster", batch_norm=True,
        provenance={"made_by": "test"})


def full_module(in_channels=16):
    return ModuleSpec(in_channels=in_channels, branches=(BranchSpec(1, 8), BranchSpec(3, 12, 6), BranchSpec(5, 4, 2)),
                      pool=PoolSpec(4))


def network():
    first = full_module(16)
    return NetworkSpec(stem=StemSpec(1, (8, 16), (3, 1), (1, 1), pool=True),
                       modules=(first, cluster_module(first.out_channels)), pool_after=(0,),
                       head=HeadSpec(10, 0.3), provenance={"input_size": [28, 28]})


def test_module_round_trip(tmp_path):
    spec = cluster_module()
    save_spec(spec, tmp_path / "m.json")
    back = load_spec(tmp_path / "m.json")
    assert back == spec and back.provenance == spec.provenance
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["format"] == "sparsenet.spec" and data["version"] == 1 and data["kind"] == "module"
    assert spec.out_channels == 4 + 5 + 3 + 3 == data["out_channels"]


def test_network_round_trip(tmp_path):
    spec = network()
    save_spec(spec, tmp_path / "n.json")
    back = load_spec(tmp_path / "n.json", kind="network")
    assert back == spec and back.provenance == spec.provenance
    assert back.out_channels == 10 and back.features == spec.modules[1].out_channels
    assert back.modules[1].provenance == {"made_by": "test"}   # each module keeps where it came from
    with pytest.raises(SparsenetError, match="holds a network spec; expected a module spec"):
        load_spec(tmp_path / "n.json", kind="module")


def test_counts_by_hand():
    spec = full_module(16)
    per_pixel = 16 * 8 + (16 * 6 + 9 * 6 * 12) + (16 * 2 + 25 * 2 * 4) + 16 * 4
    assert module_macs(spec, (7, 5)) == 35 * per_pixel
    weights = 16 * 8 + 16 * 6 + 9 * 6 * 12 + 16 * 2 + 25 * 2 * 4 + 16 * 4
    assert module_params(spec) == weights + (8 + 6 + 12 + 2 + 4 + 4)   # + biases
    assert module_input_sizes(network(), (28, 28)) == [(14, 14), (7, 7)]


def _write(tmp_path, data):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    return path


def _module_dict(**changes):
    data = spec_to_dict(cluster_module())
    data.pop("out_channels")
    data.update(changes)
    return data


def _branch(i, **changes):
    data = _module_dict()
    data["branches"][i].update(changes)
    return data


@pytest.mark.parametrize("data, message", [
    (_module_dict(colour="red"), r"colour is 'red'; unknown field; accepted fields are"),
    (_branch(0, stride=2), r"branches\[0\]\.stride is 2; unknown field"),
    (_branch(1, width=0), r"branches\[1\]\.width is 0; expected an integer >= 1"),
    (_branch(1, width=-3), r"branches\[1\]\.width is -3"),
    (_branch(1, reduce=0), r"branches\[1\]\.reduce is 0; expected an integer >= 1"),
    (_branch(1, kernel_size=4), r"branches\[1\]\.kernel_size is 4; expected an odd integer"),
    (_branch(1, reduce=None), r"branches\[1\]\.reduce is None; a 3x3 branch needs a 1x1 reduction"),
    (_branch(0, reduce=3), r"branches\[0\]\.reduce is 3; a 1x1 branch has no reduction"),
    (_branch(2, inputs=[7, 12]), r"branches\[2\]\.inputs is \[7, 12\].*channel 12 is out of range: "
                                 r"in_channels is 12, expected indices in 0\.\.11"),
    (_branch(2, inputs=[7, 7]), r"branches\[2\]\.inputs .*at most once"),
    (_branch(2, inputs=[]), r"branches\[2\]\.inputs is \[\]; expected null \(all input channels\) or a non-empty list"),
    (_branch(1, width="8"), r"branches\[1\]\.width is '8'; expected an integer"),
    (_branch(1, width=8.0), r"branches\[1\]\.width is 8\.0; expected an integer"),
    (_branch(1, width=True), r"branches\[1\]\.width is True"),
    (_module_dict(in_channels=0), r"in_channels is 0; expected an integer >= 1"),
    (_module_dict(connectivity="sparse"), r"connectivity is 'sparse'; expected one of \['cluster', 'full'\]"),
    (_module_dict(batch_norm="yes"), r"batch_norm is 'yes'; expected true or false"),
    (_module_dict(pool={"projection": 0}), r"pool\.projection is 0; expected an integer >= 1"),
    (_module_dict(pool={"projection": 2, "inputs": [99]}), r"pool\.inputs is \[99\].*out of range"),
    (_module_dict(branches=[]), r"branches is \[\]; expected a non-empty list"),
    (_module_dict(version=2), r"version is 2; this release of sparsenet reads version 1 \(the file was written by a newer"),
    (_module_dict(version="1"), r"version is '1'; this release of sparsenet reads version 1"),
    (_module_dict(format="sparsenet.discovery"), r"format is 'sparsenet.discovery'; expected 'sparsenet.spec'"),
    (_module_dict(kind="layer"), r"kind is 'layer'; expected one of \['module', 'network'\]"),
    (_module_dict(out_channels=99), r"out_channels is 99; the branch widths add up to 15"),
    (_module_dict(connectivity="full"), r"branches\[0\]\.inputs .*connectivity 'full' means every branch reads all"),
    ([1, 2], r"\(top level\) is 'list'; expected a JSON object"),
])
def test_invalid_module_spec_refused(tmp_path, data, message):
    with pytest.raises(SparsenetError, match=message) as info:
        load_spec(_write(tmp_path, data))
    assert str(tmp_path / "bad.json") in str(info.value)


def _network_dict(**changes):
    data = spec_to_dict(network())
    data.update(changes)
    return data


@pytest.mark.parametrize("change, message", [
    (lambda d: d["modules"][1].update(in_channels=20),
     r"modules\[1\]\.in_channels is 20; it must equal modules\[0\]\.out_channels, which is 28"),
    (lambda d: d["modules"][0].update(in_channels=8),
     r"modules\[0\]\.in_channels is 8; it must equal stem\.out_channels \(last stem width\), which is 16"),
    (lambda d: d["modules"][1]["branches"][0].update(width=0), r"modules\[1\]\.branches\[0\]\.width is 0"),
    (lambda d: d["stem"].update(kernel_sizes=[3, 2]), r"stem\.kernel_sizes\[1\] is 2; expected an odd integer"),
    (lambda d: d["stem"].update(strides=[1]), r"stem\.kernel_sizes is \[3, 1\]; expected one kernel size and one stride"),
    (lambda d: d["head"].update(dropout=1.5), r"head\.dropout is 1\.5; expected a number in \[0, 1\)"),
    (lambda d: d["head"].update(num_classes=0), r"head\.num_classes is 0"),
    (lambda d: d.update(pool_after=[5]), r"pool_after is \[5\]; expected module indices in 0\.\.1"),
    (lambda d: d.update(pool_after=[1, 0]), r"pool_after is \[1, 0\]; expected increasing indices"),
    (lambda d: d.update(extra=1), r"extra is 1; unknown field"),
])
def test_invalid_network_spec_refused(tmp_path, change, message):
    data = _network_dict()
    change(data)
    with pytest.raises(SparsenetError, match=message):
        load_spec(_write(tmp_path, data))


def test_construction_validates_too():
    with pytest.raises(SparsenetError, match=r"BranchSpec\.kernel_size is 2"):
        BranchSpec(2, 4, 2)
    with pytest.raises(SparsenetError, match=r"ModuleSpec\.branches\[0\]\.inputs .*channel 5 is out of range"):
        ModuleSpec(4, (BranchSpec(1, 2, None, (5,)),), connectivity="cluster")
    first = full_module(16)
    with pytest.raises(SparsenetError, match=r"modules\[1\]\.in_channels is 16; it must equal modules\[0\]\.out_channels, which is 28"):
        NetworkSpec(StemSpec(1, (16,), (3,), (1,)), (first, full_module(16)))


def test_missing_and_foreign_files(tmp_path):
    with pytest.raises(SparsenetError, match="spec file .* not found"):
        load_spec(tmp_path / "nope.json")
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(SparsenetError, match="is not a spec file: not JSON"):
        load_spec(tmp_path / "x.json")
