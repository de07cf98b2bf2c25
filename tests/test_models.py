"""Model registry, GoogLeNet (Table 1), googlenet_small, plaincnn, the Inception block."""

import pytest
import torch
from torch import nn

from sparsenet.errors import SparsenetError
from sparsenet.models import (
    GOOGLENET_INCEPTION,
    Inception,
    branch_membership,
    get_model,
    list_models,
    model_info,
    register_model,
    validate_input,
)
from sparsenet.models.registry import unregister_model

# Table 1 of Szegedy et al. 2014, copied here independently of the model code:
# (in, #1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj, output size)
TABLE1 = {
    "3a": (192, 64, 96, 128, 16, 32, 32, 256),
    "3b": (256, 128, 128, 192, 32, 96, 64, 480),
    "4a": (480, 192, 96, 208, 16, 48, 64, 512),
    "4b": (512, 160, 112, 224, 24, 64, 64, 512),
    "4c": (512, 128, 128, 256, 24, 64, 64, 512),
    "4d": (512, 112, 144, 288, 32, 64, 64, 528),
    "4e": (528, 256, 160, 320, 32, 128, 128, 832),
    "5a": (832, 256, 160, 320, 32, 128, 128, 832),
    "5b": (832, 384, 192, 384, 48, 128, 128, 1024),
}
NAMES = ["conv1", "maxpool1", "conv2", "conv3", "maxpool2"] + [f"inception{k}" for k in TABLE1]



@pytest.fixture(scope="module")
def googlenet():
    torch.manual_seed(0)
    return get_model("googlenet").eval()


# --------------------------------------------------------------------------- registry


def test_list_models_sorted_and_complete():
    names = list_models()
    assert names == sorted(names)
    assert {"googlenet", "googlenet_small", "plaincnn"} <= set(names)


def test_duplicate_name_refused():
    @register_model("_test_dup", default_input=(1, 8, 8), description="throw-away")
    def first(*, num_classes: int = 2, in_channels: int = 1):
        return nn.Linear(in_channels, num_classes)

    try:
        with pytest.raises(SparsenetError, match="'_test_dup' is already registered"):

            @register_model("_test_dup", default_input=(1, 8, 8), description="again")
            def second(*, num_classes: int = 2, in_channels: int = 1):
                return nn.Linear(in_channels, num_classes)

        with pytest.raises(SparsenetError, match="already registered"):
            register_model("googlenet", default_input=(3, 224, 224), description="x")(first)
    finally:
        unregister_model("_test_dup")
    assert "_test_dup" not in list_models()


def test_factory_without_required_kwargs_refused():
    with pytest.raises(SparsenetError, match="missing: in_channels"):

        @register_model("_test_bad", default_input=(1, 8, 8), description="x")
        def bad(*, num_classes: int = 2):
            return nn.Linear(1, num_classes)

    assert "_test_bad" not in list_models()
    with pytest.raises(SparsenetError, match="default_input"):
        register_model("_test_bad", default_input=(1, 8), description="x")


def test_unknown_model_lists_known_names():
    with pytest.raises(SparsenetError, match="unknown model 'googlnet'") as info:
        get_model("googlnet")
    message = str(info.value)
    for name in list_models():
        assert name in message
    assert "Did you mean 'googlenet'" in message


def test_unexpected_kwarg_named_with_accepted_ones():
    with pytest.raises(SparsenetError, match="'widht'") as info:
        get_model("plaincnn", widht=16)
    assert "accepted: num_classes, in_channels, width" in str(info.value)
    with pytest.raises(SparsenetError, match="'width_mult'.*accepted: num_classes, in_channels, aux_logits"):
        get_model("googlenet", width_mult=0.5)


@pytest.mark.parametrize(
    "name, kwargs, match",
    [
        ("plaincnn", {"num_classes": 0}, "num_classes must be an integer >= 1; got 0"),
        ("plaincnn", {"width": 2.5}, "width must be an integer"),
        ("googlenet", {"dropout": 1.0}, r"dropout must be a number in \[0, 1\); got 1.0"),
        ("googlenet", {"aux_logits": "yes"}, "aux_logits must be True or False"),
        ("googlenet_small", {"num_modules": 10}, "num_modules must be an integer from 1 to 9"),
        ("googlenet_small", {"num_modules": 0}, "num_modules"),
        ("googlenet_small", {"width_mult": 0}, "width_mult must be a finite number > 0; got 0"),
        ("googlenet_small", {"in_channels": True}, "in_channels must be an integer"),
    ],
)
def test_bad_option_values(name, kwargs, match):
    with pytest.raises(SparsenetError, match=match):
        get_model(name, **kwargs)


def test_model_info():
    info = model_info("googlenet_small")
    assert info.name == "googlenet_small"
    assert info.default_input == (1, 28, 28)
    assert info.defaults == {
        "num_classes": 10, "in_channels": 1, "width_mult": 1.0, "num_modules": 9,
        "batch_norm": False, "dropout": 0.4,
    }
    assert model_info("googlenet").default_input == (3, 224, 224)
    assert model_info("googlenet").defaults["num_classes"] == 1000
    assert model_info("plaincnn").defaults == {"num_classes": 10, "in_channels": 1, "width": 32}
    info.defaults["num_classes"] = 3  # a copy: the registry is untouched
    assert model_info("googlenet_small").defaults["num_classes"] == 10
    with pytest.raises(SparsenetError, match="known models"):
        model_info("nope")


def test_googlenet_factories_take_their_models_keyword_arguments():
    import inspect

    from sparsenet.models.googlenet import GoogLeNet, GoogLeNetSmall, googlenet, googlenet_small

    for factory, cls, name in ((googlenet, GoogLeNet, "googlenet"), (googlenet_small, GoogLeNetSmall, "googlenet_small")):
        sig = inspect.signature(factory)
        assert factory.__name__ == name and sig.return_annotation == cls.__name__
        assert list(sig.parameters.values()) == list(inspect.signature(cls).parameters.values())
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in sig.parameters.values())
        with pytest.raises(TypeError):
            factory(10)  # keyword-only, as the signature says
        torch.manual_seed(0)
        built = factory(num_classes=3, batch_norm=True)
        torch.manual_seed(0)
        direct = cls(num_classes=3, batch_norm=True)
        assert type(built) is cls and built.num_classes == 3
        assert all(torch.equal(v, direct.state_dict()[k]) for k, v in built.state_dict().items())
    assert inspect.signature(googlenet_small).parameters["width_mult"].default == 1.0


# --------------------------------------------------------------------------- forward shapes


def test_googlenet_forward_and_table1_sizes(googlenet):
    sizes, handles = {}, []
    for name in NAMES:
        module = getattr(googlenet, name)
        handles.append(module.register_forward_hook(
            lambda m, i, o, name=name: sizes.__setitem__(name, tuple(o.shape[1:]))))
    try:
        with torch.no_grad():
            out = googlenet(torch.randn(1, 3, 224, 224))
    finally:
        for h in handles:
            h.remove()
    assert out.shape == (1, 1000)
    assert sizes["conv1"] == (64, 112, 112)
    assert sizes["maxpool1"] == (64, 56, 56)
    assert sizes["conv2"] == (64, 56, 56)
    assert sizes["conv3"] == (192, 56, 56)
    assert sizes["maxpool2"] == (192, 28, 28)
    side = {"3": 28, "4": 14, "5": 7}
    for key, row in TABLE1.items():
        assert sizes[f"inception{key}"] == (row[7], side[key[0]], side[key[0]])
    # the size arithmetic used for the minimum input agrees with the real forward pass
    assert googlenet.stage_sizes(224) == {
        "conv1": 112, "conv3": 56, "inception3": 28, "inception4": 14, "inception5": 7
    }
    # the head as in the paper
    assert isinstance(googlenet.avgpool, nn.AdaptiveAvgPool2d)
    assert googlenet.dropout.p == 0.4 and googlenet.fc.in_features == 1024


def test_googlenet_structure_matches_table1(googlenet):
    assert {k: v[:7] for k, v in TABLE1.items()} == GOOGLENET_INCEPTION
    assert googlenet.conv1.conv.kernel_size == (7, 7) and googlenet.conv1.conv.stride == (2, 2)
    assert googlenet.conv2.conv.kernel_size == (1, 1) and googlenet.conv2.conv.out_channels == 64
    assert googlenet.conv3.conv.kernel_size == (3, 3) and googlenet.conv3.conv.out_channels == 192
    relus = [m for m in googlenet.modules() if isinstance(m, nn.ReLU)]
    convs = [m for m in googlenet.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 3 + 9 * 6 and len(relus) == len(convs)  # a ReLU after every conv
    for key, (cin, c1, r3, c3, r5, c5, pp, _) in TABLE1.items():
        block = getattr(googlenet, f"inception{key}")
        assert block.branch1.conv.weight.shape == (c1, cin, 1, 1)
        assert block.branch2[0].conv.weight.shape == (r3, cin, 1, 1)
        assert block.branch2[1].conv.weight.shape == (c3, r3, 3, 3)
        assert block.branch3[0].conv.weight.shape == (r5, cin, 1, 1)
        assert block.branch3[1].conv.weight.shape == (c5, r5, 5, 5)  # a real 5x5
        assert block.branch3[1].conv.padding == (2, 2)
        pool = block.branch4[0]
        assert isinstance(pool, nn.MaxPool2d) and pool.kernel_size == 3 and pool.stride == 1
        assert block.branch4[1].conv.weight.shape == (pp, cin, 1, 1)


def test_googlenet_aux_logits_train_and_eval():
    torch.manual_seed(0)
    model = get_model("googlenet", aux_logits=True, num_classes=7).train()
    assert model.aux1.conv.conv.weight.shape == (128, 512, 1, 1)
    assert model.aux2.conv.conv.weight.shape == (128, 528, 1, 1)
    assert model.aux1.fc1.in_features == 128 * 4 * 4 and model.aux1.fc1.out_features == 1024
    assert model.aux1.dropout.p == 0.7
    out = model(torch.randn(1, 3, 224, 224))
    main, aux1, aux2 = out
    assert main.shape == aux1.shape == aux2.shape == (1, 7)
    assert out.logits is main
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 96)).shape == (1, 7)
    assert model.min_input_size == (79, 79)  # the auxiliary 5x5 average pool must fit after 4a
    assert model.stage_sizes(79, aux_logits=True)["inception4"] == 5
    assert model.stage_sizes(78, aux_logits=True) is None


def test_googlenet_batch_norm_has_bn_and_no_conv_bias(googlenet):
    model = get_model("googlenet", batch_norm=True, num_classes=5, in_channels=1)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.bias is None for c in convs)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == len(convs)
    model.eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 64, 64)).shape == (1, 5)
    assert all(c.bias is not None for c in googlenet.modules() if isinstance(c, nn.Conv2d))


@pytest.mark.parametrize("side", [28, 32])
@pytest.mark.parametrize("channels", [1, 3])
def test_googlenet_small_and_plaincnn_forward(side, channels):
    torch.manual_seed(0)
    x = torch.randn(2, channels, side, side)
    # googlenet_small at a quarter width to keep the test fast (widths are tested below)
    for name, options in (("googlenet_small", {"width_mult": 0.25}), ("plaincnn", {})):
        model = get_model(name, in_channels=channels, num_classes=10, **options).eval()
        with torch.no_grad():
            assert model(x).shape == (2, 10)
        assert validate_input(model, (channels, side, side)) == (1, 10)


def test_googlenet_small_structure():
    model = get_model("googlenet_small")
    names = dict(model.named_children())
    for name in ["conv1", "conv2", "conv3", "maxpool2", "maxpool3", "maxpool4", "avgpool", "dropout", "fc"]:
        assert name in names
    assert "maxpool1" not in names  # a single stride-2 pool in the stem
    assert model.conv1.conv.stride == (1, 1) and model.conv1.conv.kernel_size == (3, 3)
    for key, row in TABLE1.items():  # width_mult 1.0: the paper's modules
        block = getattr(model, f"inception{key}")
        assert block.in_channels == row[0] and block.out_channels == row[7]
        assert block.branch3[1].conv.kernel_size == (5, 5)
    assert model.stage_sizes(28) == {"conv3": 28, "inception3": 14, "inception4": 7, "inception5": 3}
    assert model.stage_sizes(32) == {"conv3": 32, "inception3": 16, "inception4": 8, "inception5": 4}
    assert model.fc.in_features == 1024


@pytest.mark.parametrize("width_mult", [0.125, 0.25, 0.5, 1.0])
def test_googlenet_small_width_mult(width_mult):
    model = get_model("googlenet_small", width_mult=width_mult).eval()
    scale = lambda w: max(1, int(w * width_mult + 0.5))  # noqa: E731
    assert model.conv3.conv.out_channels == scale(192)
    assert model.inception3a.widths == tuple(scale(w) for w in (64, 128, 32, 32))
    assert model.inception3a.branch3[0].conv.out_channels == scale(16)
    assert model.inception3b.in_channels == model.inception3a.out_channels
    assert model.fc.in_features == sum(scale(w) for w in (384, 384, 128, 128))
    with torch.no_grad():
        assert model(torch.randn(1, 1, 28, 28)).shape == (1, 10)


def test_googlenet_small_tiny_width_keeps_at_least_one_channel():
    model = get_model("googlenet_small", width_mult=0.01)
    assert model.inception3a.branch3[0].conv.out_channels == 1  # 16 * 0.01 rounds to 0 -> 1
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 1, 28, 28)).shape == (1, 10)


@pytest.mark.parametrize("k", range(1, 10))
def test_googlenet_small_num_modules(k):
    model = get_model("googlenet_small", num_modules=k, width_mult=0.125, in_channels=3).eval()
    blocks = [n for n, m in model.named_children() if isinstance(m, Inception)]
    assert blocks == [f"inception{key}" for key in list(TABLE1)[:k]]
    assert ("maxpool3" in dict(model.named_children())) == (k >= 3)
    assert ("maxpool4" in dict(model.named_children())) == (k >= 8)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


def test_plaincnn_structure_and_8x8():
    model = get_model("plaincnn", width=8, num_classes=3, in_channels=2).eval()
    names = [n for n, _ in model.features.named_children()]
    assert names == ["conv1", "relu1", "conv2", "relu2", "pool1", "conv3", "relu3", "pool2"]
    assert model.features.conv2.out_channels == 16 and model.fc.in_features == 16
    with torch.no_grad():
        assert model(torch.randn(4, 2, 8, 8)).shape == (4, 3)
    assert validate_input(model, (2, 8, 8)) == (1, 3)


def test_registered_models_at_default_input():
    for name in ("googlenet_small", "plaincnn"):  # googlenet at 224 is run above
        info = model_info(name)
        model = get_model(name)
        assert validate_input(model, info.default_input) == (1, info.defaults["num_classes"])


def test_deterministic_given_seed():
    torch.manual_seed(3)
    a = get_model("googlenet_small", width_mult=0.25).state_dict()
    torch.manual_seed(3)
    b = get_model("googlenet_small", width_mult=0.25).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)



def test_init_weights():
    from sparsenet.models.googlenet import init_weights

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(64, 256, 3), nn.BatchNorm2d(256), nn.Conv2d(256, 8, 1, bias=False),
                          nn.Flatten(), nn.Linear(512, 300))
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(5.0)
    init_weights(model)
    conv, bn, conv2, _, fc = model
    assert abs(conv.weight.std().item() - (2 / (64 * 9)) ** 0.5) < 0.002  # He-normal, fan-in
    assert torch.all(conv.bias == 0) and torch.all(bn.weight == 1) and torch.all(bn.bias == 0)
    assert abs(conv2.weight.std().item() - (2 / 256) ** 0.5) < 0.02
    assert abs(fc.weight.std().item() - 0.01) < 0.0005 and torch.all(fc.bias == 0)
    torch.manual_seed(1)
    init_weights(model)
    state = [p.clone() for p in model.parameters()]
    torch.manual_seed(1)
    init_weights(model)
    assert all(torch.equal(a, b) for a, b in zip(state, model.parameters()))  # reproducible by seed


# --------------------------------------------------------------------------- input checks


def test_googlenet_too_small_input_says_minimum(googlenet):
    assert googlenet.min_input_size == (47, 47)
    with pytest.raises(SparsenetError, match=r"too small for model 'googlenet'.*H >= 47 and W >= 47.*googlenet_small"):
        googlenet(torch.randn(1, 3, 28, 28))
    with pytest.raises(SparsenetError, match=r"'googlenet'.*at least 47x47"):
        validate_input(googlenet, (3, 28, 28))
    with pytest.raises(SparsenetError, match=r"expects 3 input channel\(s\); got input shape \(1, 224, 224\)"):
        validate_input(googlenet, (1, 224, 224))
    assert validate_input(googlenet, (3, 47, 47)) == (1, 1000)  # the minimum really runs
    assert googlenet.stage_sizes(46) is None


def test_other_models_too_small_and_wrong_channels():
    small = get_model("googlenet_small")
    assert small.min_input_size == (12, 12)
    assert validate_input(small, (1, 12, 12)) == (1, 10)
    with pytest.raises(SparsenetError, match=r"\(1, 1, 11, 11\) is too small.*H >= 12"):
        small(torch.randn(1, 1, 11, 11))
    plain = get_model("plaincnn")
    assert validate_input(plain, (1, 4, 4)) == (1, 10)
    with pytest.raises(SparsenetError, match=r"at least 4x4"):
        validate_input(plain, (1, 3, 3))
    with pytest.raises(SparsenetError, match=r"wrong shape.*\(N, 1, H, W\)"):
        plain(torch.randn(2, 3, 28, 28))
    with pytest.raises(SparsenetError, match="input_shape must be"):
        validate_input(plain, (1, 0, 28))


def test_validate_input_converts_torch_errors_of_foreign_models():
    model = nn.Sequential(nn.Conv2d(3, 4, 5), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    model.train()
    assert validate_input(model, (3, 8, 8)) == (1, 2)
    assert model.training and all(m.training for m in model.modules())  # mode restored
    with pytest.raises(SparsenetError, match=r"'Sequential' cannot take input of shape \(3, 6, 6\)"):
        validate_input(model, (3, 6, 6))


# --------------------------------------------------------------------------- Inception block


def test_inception_block_branches_and_membership():
    block = Inception(in_channels=8, ch1x1=2, ch3x3red=3, ch3x3=4, ch5x5red=1, ch5x5=5, pool_proj=6)
    x = torch.randn(2, 8, 9, 9)
    parts = block._forward(x)
    assert [p.shape[1] for p in parts] == [2, 4, 5, 6]
    out = block(x)
    assert out.shape == (2, 17, 9, 9)
    assert torch.equal(out, torch.cat(parts, 1))
    membership = branch_membership(block)
    assert membership == [0] * 2 + [1] * 4 + [2] * 5 + [3] * 6
    # concatenation order: channels of branch b are the ones membership labels b
    for b, part in enumerate(parts):
        idx = [i for i, m in enumerate(membership) if m == b]
        assert torch.equal(out[:, idx], part)
    with pytest.raises(SparsenetError, match="needs an Inception block; got Linear"):
        branch_membership(nn.Linear(2, 2))
    with pytest.raises(SparsenetError, match="ch5x5 must be an integer >= 1; got 0"):
        Inception(in_channels=8, ch1x1=2, ch3x3red=3, ch3x3=4, ch5x5red=1, ch5x5=0, pool_proj=6)


def test_branch_membership_of_googlenet_modules(googlenet):
    for key, (_, c1, _, c3, _, c5, pp, out) in TABLE1.items():
        membership = branch_membership(getattr(googlenet, f"inception{key}"))
        assert len(membership) == out == c1 + c3 + c5 + pp
        assert [membership.count(b) for b in range(4)] == [c1, c3, c5, pp]
        assert membership == sorted(membership)


def test_size_check_counts_shapes_without_initialising():
    # the meta build skips value fills (nn.init functions and tensor methods alike) but counts
    # every parameter the real build has; a model past the limit is still refused by its count
    from sparsenet.models import registry

    class Custom(nn.Module):
        def __init__(self, width: int = 4, num_classes: int = 3, in_channels: int = 1):
            super().__init__()
            self.a = nn.Linear(width, num_classes * width)
            self.b = nn.Parameter(torch.empty(width, width))
            nn.init.orthogonal_(self.b)
            nn.init.trunc_normal_(self.a.weight, std=0.02)
            self.a.bias.data.fill_(0.1)

    register_model("size_check_custom", default_input=(1, 8, 8), description="throw-away")(Custom)
    try:
        real = sum(p.numel() for p in Custom(6).parameters())
        with torch.device("meta"), registry._ShapesOnly():
            meta = Custom(6)
        assert sum(p.numel() for p in meta.parameters()) == real and all(p.is_meta for p in meta.parameters())
        assert sum(p.numel() for p in get_model("size_check_custom", width=6).parameters()) == real
        with pytest.raises(SparsenetError, match="parameters; at most"):
            get_model("size_check_custom", width=6000)  # 144M parameters, counted on meta
    finally:
        unregister_model("size_check_custom")


def test_size_check_does_not_import_dynamo():
    # torch runs meta-tensor initialisers through decompositions that import torch._dynamo
    # (1.7 s per process); the size check has no values to fill and must not pay for that
    import subprocess
    import sys

    code = ("import sys; from sparsenet.models import get_model; "
            "get_model('googlenet_small', num_classes=10, in_channels=1, width_mult=0.125); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
