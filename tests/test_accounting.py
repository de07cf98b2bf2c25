"""Parameter and multiply-add counts, checked against arithmetic from Table 1's layer shapes.

What we found comparing Table 1 of Szegedy et al. 2014 with the arithmetic of its own shapes
(weights only, "K" = 1024 as the table's 3a/3b/fc rows show, e.g. fc 1024*1000 = 1000K):

    row       computed weights   Table 1 params   computed MACs   Table 1 ops
    conv1          9.2K  (9408)        2.7K           118.0M          34M   <- table: 3.5x too low
    conv2+3      112.0K                112K           359.7M         360M
    3a           159.5K                159K           128.1M         128M
    3b           379.0K                380K           304.3M         304M
    4a           366.8K                364K            73.6M          73M
    4b           438.0K                437K            87.9M          88M
    4c           497.5K                463K            99.9M         100M   <- table: params -7%
    4d           590.5K                580K           118.5M         119M
    4e           847.0K                840K           170.0M         170M
    5a          1018.0K               1072K            51.1M          54M   <- table: both +5%
    5b          1409.0K               1388K            70.7M          71M
    fc          1000.0K               1000K             1.0M           1M

* conv1: a 7x7 convolution from 3 to 64 channels has 7*7*3*64 = 9,408 weights and costs
  9,408 * 112*112 = 118.0M multiply-adds; Table 1 says 2.7K and 34M (which agree with each other:
  34M / 112^2 = 2.7K, but not with the stated shapes).
* 5a: Table 1's 1072K/54M agree with each other (1072K * 7^2 = 53.8M) but not with 5a's widths
  (1018K, 51.1M).  4c's 463K disagrees with its own 100M ops, which match the widths (497.5K).
  4d (-1.8%), 5b (-1.5%), 4e (-0.8%) and 4a (-0.8%) are a little off in params only.
* Totals: the table's columns sum to 6,797.7K params (the usual "6.8M"; in units of 1024 that is
  6.96M) and 1,502M ops ("1.5G multiply-adds").  The model as built has 6,998,552 parameters
  (6,990,272 weights + 8,280 biases; no auxiliary classifiers, like the table): 6,826.4K weights
  in the table's units, +0.4% against the column sum, and +2.9% against a plain 6.8M.  It costs
  1,582.7M multiply-adds, +5.4% against 1.5G and +80.7M against the column sum: conv1's row
  accounts for +84.0M of it, 5a's row (-2.9M) and rounding for the rest.  With conv1 taken at
  the table's 34M the total is 1,498.7M, within 0.3% of 1,502M.  The linear head is in both
  totals (1000K params, 1M ops); its 1,000 biases, like all biases, are not in the table.
"""

import pytest
import torch
from torch import nn

from sparsenet.models.accounting import Cost, count_macs, count_params, measure
from sparsenet.errors import SparsenetError
from sparsenet.models import get_model

K = 1024  # Table 1's "K" (e.g. the fc row: 1024 * 1000 weights = 1000K)

# Table 1 widths, independent of the model code: (in, #1x1, #3x3red, #3x3, #5x5red, #5x5, pool proj)
TABLE1 = {
    "3a": (192, 64, 96, 128, 16, 32, 32),
    "3b": (256, 128, 128, 192, 32, 96, 64),
    "4a": (480, 192, 96, 208, 16, 48, 64),
    "4b": (512, 160, 112, 224, 24, 64, 64),
    "4c": (512, 128, 128, 256, 24, 64, 64),
    "4d": (512, 112, 144, 288, 32, 64, 64),
    "4e": (528, 256, 160, 320, 32, 128, 128),
    "5a": (832, 256, 160, 320, 32, 128, 128),
    "5b": (832, 384, 192, 384, 48, 128, 128),
}
SIDE = {"3": 28, "4": 14, "5": 7}  # output size of each stage at 224 x 224
# Table 1's params (K) and ops (M) columns
PAPER = {
    "conv1": (2.7, 34), "conv2+3": (112, 360), "3a": (159, 128), "3b": (380, 304),
    "4a": (364, 73), "4b": (437, 88), "4c": (463, 100), "4d": (580, 119), "4e": (840, 170),
    "5a": (1072, 54), "5b": (1388, 71), "fc": (1000, 1),
}


def inception_weights(cin, c1, r3, c3, r5, c5, pp):
    return cin * c1 + cin * r3 + r3 * c3 * 3 * 3 + cin * r5 + r5 * c5 * 5 * 5 + cin * pp


def expected_rows():
    """Per row of Table 1: (module names, input shape, weights, biases, MACs) from the shapes."""
    rows = {
        "conv1": (["conv1"], (3, 224, 224), 7 * 7 * 3 * 64, 64, 7 * 7 * 3 * 64 * 112 * 112),
        "conv2+3": (["conv2", "conv3"], (64, 56, 56), 64 * 64 + 3 * 3 * 64 * 192, 64 + 192,
                    (64 * 64 + 3 * 3 * 64 * 192) * 56 * 56),
    }
    for key, widths in TABLE1.items():
        w = inception_weights(*widths)
        side = SIDE[key[0]]
        rows[key] = ([f"inception{key}"], (widths[0], side, side), w, sum(widths[1:]), w * side * side)
    rows["fc"] = (["fc"], (1024,), 1024 * 1000, 1000, 1024 * 1000)
    return rows



@pytest.fixture(scope="module")
def googlenet():
    torch.manual_seed(0)
    return get_model("googlenet")


def _module(model, names):
    return nn.Sequential(*(getattr(model, n) for n in names))


def test_inception_3a_by_hand(googlenet):
    weights = 192 * 64 + 192 * 96 + 96 * 128 * 9 + 192 * 16 + 16 * 32 * 25 + 192 * 32
    assert weights == 163_328 == inception_weights(*TABLE1["3a"])
    block = googlenet.inception3a
    assert count_params(block) == weights + (64 + 96 + 128 + 16 + 32 + 32)
    assert count_macs(block, (192, 28, 28)) == weights * 28 * 28 == 128_049_152


def test_googlenet_module_by_module(googlenet):
    for row, (names, shape, weights, biases, macs) in expected_rows().items():
        module = _module(googlenet, names)
        measured_weights = sum(p.numel() for n, p in module.named_parameters() if n.endswith("weight"))
        assert measured_weights == weights, row
        assert count_params(module) == weights + biases, row
        assert count_macs(module, shape) == macs, row


def test_expected_rows_against_table1_columns():
    """Our arithmetic agrees with Table 1 except where the table contradicts its own shapes."""
    rows = expected_rows()
    for row, (_, _, weights, _, macs) in rows.items():
        paper_params, paper_ops = PAPER[row]
        # within 2%, or within the table's rounding (it prints the fc's 1.024M ops as "1M")
        if row not in ("conv1", "4c", "5a"):
            assert abs(weights / K - paper_params) <= 0.02 * paper_params, (row, weights / K)
        if row not in ("conv1", "5a"):
            assert abs(macs / 1e6 - paper_ops) <= max(0.02 * paper_ops, 0.5), (row, macs / 1e6)
    # the rows that disagree, and by how much (see the module docstring)
    assert rows["conv1"][2] == 9408 and rows["conv1"][4] == 118_013_952  # paper: 2.7K, 34M
    assert rows["4c"][2] / K == 497.5  # paper: 463K (its 100M ops match 497.5K)
    assert rows["5a"][2] / K == 1018.0 and round(rows["5a"][4] / 1e6, 1) == 51.1  # paper: 1072K, 54M


def test_googlenet_totals_against_paper(googlenet):
    rows = expected_rows()
    weights = sum(r[2] for r in rows.values())
    biases = sum(r[3] for r in rows.values())
    macs = sum(r[4] for r in rows.values())
    cost = measure(googlenet, (3, 224, 224))
    assert cost == Cost(params=weights + biases, macs=macs)
    assert cost.params == 6_998_552 and weights == 6_990_272
    assert cost.macs == 1_582_671_872
    assert cost.flops == 2 * cost.macs
    # Against the paper's quoted totals: the table's own column sums are 6797.7K and 1502M.
    paper_params_k = sum(p for p, _ in PAPER.values())
    paper_ops_m = sum(o for _, o in PAPER.values())
    assert paper_params_k == pytest.approx(6797.7) and paper_ops_m == 1502
    assert abs(weights / K - paper_params_k) / paper_params_k < 0.01  # 6826.4K vs 6797.7K
    assert abs(cost.params - 6.8e6) / 6.8e6 < 0.035  # 7.00M vs "6.8M" read as 10^6
    assert abs(cost.macs - 1.5e9) / 1.5e9 < 0.06  # 1.583G vs "1.5G": conv1's row is +84M
    without_conv1_discrepancy = cost.macs - rows["conv1"][4] + 34e6
    assert abs(without_conv1_discrepancy - 1.502e9) / 1.502e9 < 0.005


def test_aux_classifiers_add_params_not_eval_macs():
    model = get_model("googlenet", aux_logits=True)
    base = 6_998_552
    aux1 = 512 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    aux2 = 528 * 128 + 128 + 2048 * 1024 + 1024 + 1024 * 1000 + 1000
    assert count_params(model) == base + aux1 + aux2
    assert count_macs(model.aux1, (512, 14, 14)) == 512 * 128 * 16 + 2048 * 1024 + 1024 * 1000


def test_batch_norm_adds_params_not_macs():
    bn = get_model("googlenet_small", width_mult=0.25, batch_norm=True)
    plain = get_model("googlenet_small", width_mult=0.25)
    convs = [m for m in plain.modules() if isinstance(m, nn.Conv2d)]
    # BN: +2 per channel (scale, shift), convs lose their biases (-1 per channel)
    assert count_params(bn) == count_params(plain) + sum(c.out_channels for c in convs)
    assert count_macs(bn, (1, 28, 28)) == count_macs(plain, (1, 28, 28))


def test_googlenet_small_width_mult_scales_macs_quadratically():
    models = {m: get_model("googlenet_small", width_mult=m) for m in (1.0, 0.5, 0.25)}
    macs = {m: count_macs(model, (1, 28, 28)) for m, model in models.items()}
    params = {m: count_params(model) for m, model in models.items()}
    assert macs[1.0] == 358_293_248 and params[1.0] == 5_974_970
    for m in (0.5, 0.25):
        assert macs[m] / macs[1.0] == pytest.approx(m * m, rel=0.05)
        assert params[m] / params[1.0] == pytest.approx(m * m, rel=0.05)


def test_plaincnn_by_hand():
    model = get_model("plaincnn")
    weights = 1 * 32 * 9 + 32 * 64 * 9 + 64 * 64 * 9 + 64 * 10
    assert count_params(model) == weights + 32 + 64 + 64 + 10 == 56_394
    macs = 1 * 32 * 9 * 28 * 28 + 32 * 64 * 9 * 28 * 28 + 64 * 64 * 9 * 14 * 14 + 64 * 10
    assert count_macs(model, (1, 28, 28)) == macs == 21_902_464


def test_count_macs_restores_modes_and_counts_linear_without_bias():
    model = nn.Sequential(nn.Linear(5, 7), nn.Dropout(0.5), nn.Linear(7, 2))
    model.train()
    model[1].eval()  # mixed modes are restored module by module
    assert count_macs(model, (5,)) == 5 * 7 + 7 * 2
    assert model.training and model[0].training and not model[1].training
    conv = nn.Conv2d(2, 3, 3, padding=1)
    assert measure(conv, (2, 4, 4)) == Cost(params=2 * 3 * 9 + 3, macs=2 * 3 * 9 * 16)


@pytest.mark.parametrize("shape", [(3, 0, 4), (), (1, 2, 3, 4), "3x224x224", (2.0, 4, 4)])
def test_bad_input_shape(shape):
    with pytest.raises(SparsenetError, match="input_shape must be"):
        count_macs(nn.Conv2d(2, 3, 3), shape)


def test_errors_are_sparsenet_errors():
    with pytest.raises(SparsenetError, match="expected a torch nn.Module; got str"):
        count_params("googlenet")
    with pytest.raises(SparsenetError, match=r"cannot count multiply-adds of Conv2d at input shape \(3, 4, 4\)"):
        count_macs(nn.Conv2d(2, 3, 3), (3, 4, 4))
    with pytest.raises(SparsenetError, match="too small for model 'googlenet_small'"):
        count_macs(get_model("googlenet_small", width_mult=0.125), (1, 8, 8))
