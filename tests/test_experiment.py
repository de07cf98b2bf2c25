"""Experiment configurations: every problem is refused before anything runs, naming the key."""

import copy
import tomllib
from pathlib import Path

import pytest

from sparsenet.compare.experiment import ConfigError, diff_configs, load_experiment, parse_experiment

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "experiments" / "smoke.toml"


@pytest.fixture
def smoke():
    return tomllib.loads(SMOKE.read_text())


@pytest.mark.parametrize("path", sorted((ROOT / "experiments").glob("*.toml")), ids=lambda p: p.name)
def test_shipped_configs_are_valid(path):
    e = load_experiment(path)
    assert e.seeds and e.points


def test_smoke_points(smoke):
    e = parse_experiment(smoke)
    names = [p.name for p in e.points]
    assert names == ["googlenet@0.0625", "googlenet@0.125", "plain", "swap-3b", "swap-3b-full", "grown"]
    assert [p.options["width_mult"] for p in e.curve("googlenet")] == [0.0625, 0.125]
    assert e.point("swap-3b").compare_to == "googlenet" and e.point("swap-3b").role == "discovered"
    assert e.point("plain").role == "baseline"
    assert e.train_config(1).seed == 1 and e.train_config(1).epochs == smoke["train"]["epochs"]
    assert e.normalized["latency"]["threads"] == 1
    assert e.normalized["candidates"][3]["analysis"]["clusters"] == "auto"   # default filled in


def _bad(data, match):
    with pytest.raises(ConfigError, match=match):
        parse_experiment(data, source="bad.toml")


def test_unknown_candidate_key_named_by_path(smoke):
    smoke["candidates"][2]["widht_mults"] = [1.0]
    _bad(smoke, r"bad\.toml: candidates\[2\]\.widht_mults: unknown key; accepted keys for a skeleton candidate")


def test_unknown_section_and_keys(smoke):
    data = copy.deepcopy(smoke)
    data["trian"] = {}
    _bad(data, r"trian: unknown section")
    data = copy.deepcopy(smoke)
    data["train"]["epoch"] = 2
    _bad(data, r"train\.epoch: unknown key.*'epochs'")
    data = copy.deepcopy(smoke)
    data["candidates"][3]["analysis"]["cluster"] = 3
    _bad(data, r"candidates\[3\]\.analysis\.cluster: unknown key")
    data = copy.deepcopy(smoke)
    data["candidates"][1]["analysis"] = {}
    _bad(data, r"candidates\[1\]\.analysis: unknown key; accepted keys for a plaincnn candidate")


def test_wrong_types(smoke):
    data = copy.deepcopy(smoke)
    data["train"]["epochs"] = "2"
    _bad(data, r"train\.epochs is '2'; expected an integer >= 1")
    data = copy.deepcopy(smoke)
    data["candidates"][0]["width_mults"] = [0.5, -1]
    _bad(data, r"candidates\[0\]\.width_mults\[1\] is -1; expected a number in \(0")
    data = copy.deepcopy(smoke)
    data["train"]["augment"] = 1
    _bad(data, r"train\.augment is 1; expected true or false")


def test_empty_or_repeated_seeds(smoke):
    smoke["experiment"]["seeds"] = []
    _bad(smoke, r"experiment\.seeds is \[\]; expected a list with at least one item")
    smoke["experiment"]["seeds"] = [0, 0]
    _bad(smoke, r"experiment\.seeds .*at most once")


def test_missing_required(smoke):
    del smoke["experiment"]["seeds"]
    _bad(smoke, r"experiment\.seeds: missing")
    del smoke["data"]
    _bad(smoke, r"data: missing")


def test_unknown_dataset(smoke):
    smoke["data"]["name"] = "imagenet"
    _bad(smoke, r"data\.name is 'imagenet'; unknown dataset; expected one of \['mnist5k', 'digits', 'fashion-mnist'\]")
    smoke["data"]["name"] = "npz:/some/file.npz"
    parse_experiment(smoke)   # FORMAT:PATH accepted


def test_unknown_model_kind(smoke):
    smoke["candidates"][1]["kind"] = "resnet50"
    _bad(smoke, r"candidates\[1\]\.kind is 'resnet50'; expected one of \['googlenet_small', 'plaincnn', 'grown', 'skeleton', 'model'\]")


@pytest.mark.parametrize("index,key,value,message", [
    (2, "stage", "4a", r"candidates\[2\]\.stage is '4a'; with num_modules = 2 the stages are \['3a', '3b'\]"),
    (2, "compare_to", "plain", r"candidates\[2\]\.compare_to is 'plain'; expected the name of a googlenet_small candidate"),
    (4, "budget_like", "googlenet_small:9z", r"candidates\[4\]\.budget_like: stage '9z' is not an Inception stage"),
    (4, "budget_like", "googlenet_small:3a", r"candidates\[4\]\.budget_like: give either budget_macs or budget_like, not both"),
    (1, "name", "swap-3b", r"candidates\[2\]\.name: candidate name 'swap-3b' is used twice"),
    (1, "name", "a/b", r"candidates\[1\]\.name is 'a/b'"),
    # the analyser's own lists, so a typo is refused before a skeleton is trained
    (2, "analysis", {"affinity": "pearson"}, r"candidates\[2\]\.analysis\.affinity is 'pearson'; expected one of \['pearson_abs'"),
    (2, "analysis", {"method": "kmeans"}, r"candidates\[2\]\.analysis\.method is 'kmeans'; expected one of \['spectral'"),
])
def test_candidate_consistency(smoke, index, key, value, message):
    data = copy.deepcopy(smoke)
    data["candidates"][index][key] = value
    _bad(data, message)


def test_toml_syntax_error_names_the_line(tmp_path):
    path = tmp_path / "broken.toml"
    path.write_text('[experiment]\nname = "x"\nseeds = [0 1]\n')
    with pytest.raises(ConfigError, match=r"broken\.toml: not valid TOML: .*line 3"):
        load_experiment(path)
    with pytest.raises(ConfigError, match="experiment configuration .* not found"):
        load_experiment(tmp_path / "missing.toml")


def test_diff_configs(smoke):
    a = parse_experiment(smoke).normalized
    smoke["train"]["epochs"] = 9
    smoke["candidates"][0]["width_mults"] = [0.5]
    b = parse_experiment(smoke).normalized
    assert diff_configs(a, b) == ["candidates[0].width_mults", "train.epochs"]
    assert diff_configs(a, a) == []
