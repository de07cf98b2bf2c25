"""Training and growth read through DataLoaders: a user's own Dataset or DataLoader trains and
grows like the built-in data; a sampler can be passed in; the analyser reads the statistics
discover accumulated instead of computing them again."""

import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, IterableDataset, TensorDataset
from torch.utils.data.distributed import DistributedSampler

import sparsenet
from sparsenet.analyser import CorrelationAnalyzer
from sparsenet.analyser.settings import AnalysisSettings
from sparsenet.data import load_dataset, normalize
from sparsenet.data.loader import train_loader
from sparsenet.data.splits import carve_validation
from sparsenet.data.synthetic import planted_groups
from sparsenet.data.training_data import TrainingData
from sparsenet.errors import SparsenetError
from sparsenet.grow import GrowthConfig, grow
from sparsenet.stats import ChannelStats
from sparsenet.training.loop import TrainConfig, build_model, train


@pytest.fixture(scope="module")
def digits():  # 400 training images keep the trainings short
    return carve_validation(load_dataset("digits", seed=0), None, train_subset=400)


def _as_torch(ds, **kw):
    """The built-in dataset's splits as plain TensorDatasets, normalised as sparsenet normalises them."""
    mean, std = ds.mean_std()
    return TrainingData.from_torch(TensorDataset(normalize(ds.x_train, mean, std), ds.y_train),
                                   TensorDataset(normalize(ds.x_test, mean, std), ds.y_test),
                                   num_classes=ds.num_classes, name=ds.name, hflip=ds.hflip, **kw)


def _weights(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_a_user_dataset_trains_exactly_as_the_built_in_data(digits):
    # the same images through a plain TensorDataset (read item by item, collated by torch) and
    # through sparsenet's batch-indexed wrapper: the same permutation, augmentation and weights
    config = TrainConfig(epochs=1, batch_size=50, seed=5, augment=True, warmup_steps=3)
    runs = []
    for data in (digits, _as_torch(digits)):
        model, _ = build_model("plaincnn", digits, config.seed, {"width": 4})
        metrics = train(model, data, config, model_name="plaincnn", model_kwargs={"width": 4}, progress=False)
        runs.append((_weights(model), metrics))
    (w0, m0), (w1, m1) = runs
    assert all(torch.equal(w0[k], w1[k]) for k in w0)
    assert m0["epochs"] == m1["epochs"] and m0["train_samples"] == m1["train_samples"] == len(digits.x_train)


def test_a_user_dataloader_is_used_as_it_is(digits, tmp_path):
    data = _as_torch(digits)
    loader = DataLoader(data.train, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    mine = TrainingData.from_torch(loader, DataLoader(data.test, batch_size=100), num_classes=10, name="mine")
    model = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1),
                                torch.nn.Flatten(), torch.nn.Linear(8, 10))
    with pytest.raises(SparsenetError, match="batches of 32 but the recipe says batch_size 64"):
        train(model, mine, TrainConfig(epochs=1), progress=False)
    metrics = train(model, mine, TrainConfig(epochs=2, batch_size=32, lr=0.1), out_dir=tmp_path, progress=False)
    assert metrics["model"] == "Sequential" and metrics["dataset"] == "mine"
    assert metrics["train_samples"] == len(digits.x_train) and metrics["test_samples"] == len(digits.x_test)
    assert metrics["epochs"][1]["train_loss"] < metrics["epochs"][0]["train_loss"]  # it learns
    ckpt = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert ckpt["normalization"] is None and ckpt["steps"] == 2 * len(loader)


def test_the_loader_takes_a_sampler_and_refuses_bad_data(digits):
    data = _as_torch(digits)
    n = len(digits.x_train)
    indexed = TensorDataset(digits.x_train, torch.arange(n))  # the label is the index
    seen = []
    for rank in (0, 1):  # a DistributedSampler needs no process group when told its rank
        sampler = DistributedSampler(indexed, num_replicas=2, rank=rank, shuffle=True, seed=3)
        seen.append(torch.cat([i for _, i in train_loader(indexed, 100, sampler=sampler)]))
    assert len(seen[0]) == len(seen[1]) == (n + 1) // 2  # the sampler pads to equal shards
    assert set(torch.cat(seen).tolist()) == set(range(n)) and seen[0].tolist() != sorted(seen[0].tolist())
    with pytest.raises(SparsenetError, match="shuffle=True needs generator"):
        train_loader(data.train, 10)

    class Stream(IterableDataset):
        def __iter__(self):
            return iter([])

    with pytest.raises(SparsenetError, match="IterableDataset goes inside a DataLoader"):
        TrainingData.from_torch(Stream(), data.test, num_classes=10)
    with pytest.raises(SparsenetError, match="num_classes must be an integer >= 2"):
        TrainingData.from_torch(data.train, data.test, num_classes=1)
    with pytest.raises(SparsenetError, match="accepted: a sparsenet.data.Dataset"):
        train(torch.nn.Linear(2, 2), [1, 2, 3], TrainConfig(), progress=False)
    with pytest.raises(SparsenetError, match="accepted: C x H x W per image"):
        TrainingData.from_torch(TensorDataset(torch.zeros(4, 3), torch.zeros(4, dtype=torch.long)), data.test,
                                num_classes=10)


def test_grow_on_a_user_dataset(digits, tmp_path):
    data = _as_torch(digits)
    summary = grow(data, GrowthConfig(modules=1, stem_width=8), TrainConfig(epochs=1, seed=0),
                   AnalysisSettings(max_samples=100, permutations=0, resamples=0, clusters=2), tmp_path,
                   progress=False)
    assert summary["data"] == "digits" and summary["modules"] == 1
    found = json.loads((tmp_path / "step1" / "discovery" / "discovery.json").read_text())
    assert found["provenance"]["samples"] == 100 and len(found["clusters"]) == 2


@pytest.mark.parametrize("spatial", ["channel_pairs", "cluster_maps"])
def test_fit_reads_the_statistics_given_instead_of_computing_them(spatial):
    X = planted_groups(n_samples=40, random_state=1).X
    stats = ChannelStats(max_radius=2).partial_fit(X[:20]).merge(ChannelStats(max_radius=2).partial_fit(X[20:]))
    params = dict(random_state=0, n_permutations=5, n_resamples=2, spatial_method=spatial)
    given = CorrelationAnalyzer(**params).fit(X, stats=stats)
    own = CorrelationAnalyzer(**params).fit(X)
    assert given.stats_ is stats
    np.testing.assert_array_equal(given.labels_, own.labels_)
    np.testing.assert_allclose(given.affinity_, own.affinity_, atol=1e-12)
    assert given.significance_["p"] == own.significance_["p"]
    with pytest.raises(SparsenetError, match="hold 20 images of"):
        CorrelationAnalyzer(**params).fit(X, stats=ChannelStats(max_radius=2).partial_fit(X[:20]))
    np.testing.assert_array_equal(given.kernel_sizes_, own.kernel_sizes_)
    if spatial == "channel_pairs":  # the fit reads the rings; the cluster maps read the samples
        with pytest.raises(SparsenetError, match="their rings reach 1, the fit reads 2"):
            CorrelationAnalyzer(**params).fit(X, stats=ChannelStats(max_radius=1).partial_fit(X))
    with pytest.raises(SparsenetError, match="threshold is 0.5"):
        CorrelationAnalyzer(**params).fit(X, stats=ChannelStats(max_radius=2, threshold=0.5).partial_fit(X))


def test_discover_keeps_one_set_of_statistics():
    model = torch.nn.Sequential(torch.nn.Conv2d(2, 6, 3, padding=1), torch.nn.ReLU())
    x = torch.randn(40, 2, 6, 6, generator=torch.Generator().manual_seed(0))
    found = sparsenet.discover(model, "1", DataLoader(TensorDataset(x), batch_size=16), device="cpu",
                               permutations=3, resamples=0, clusters=2)
    assert found.analyzer.stats_ is found.stats and found.stats.n_images_ == 40
    streamed = sparsenet.discover(model, "1", x, device="cpu", permutations=0, resamples=0)  # statistics only
    assert "eigengap" in streamed.provenance["k_rule"] and "k_rule" not in found.provenance
