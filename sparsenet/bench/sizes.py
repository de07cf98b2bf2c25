"""The sizes each mode runs at: ``full`` (the numbers in docs/performance.md), ``quick`` (about a
minute on a 2-core CPU) and ``tiny`` (the test suite: every field, no meaningful speed)."""

from __future__ import annotations

from dataclasses import dataclass

from sparsenet.bench.stats_cost import CostCase


@dataclass(frozen=True)
class Sizes:
    mode: str
    repeats: int                               # timed rounds after warm-up (side by side)
    cost_cases: tuple[CostCase, ...]           # statistics vs inference
    machine_channels: int                      # statistics vs matmul / memory
    machine_size: int
    machine_batch: int
    machine_samples: int                       # maps per rate run; memory runs use 1x and 10x
    machine_rate_configs: tuple[tuple, ...]    # (threads (0 = default), dtype, max_radius);
    #   float64 R=0 is the analyser's pass over the data, float32 R=0 its significance null
    machine_memory_config: tuple               # (threads, dtype, max_radius)
    cluster_channels: tuple[int, ...]          # clustering scale
    cluster_significance_channels: tuple[int, ...]
    cluster_images: int
    cluster_size: int
    cluster_permutations: int
    cluster_resamples: int
    hw_channels: int                           # hardware argument
    hw_clusters: int
    hw_size: int
    hw_batch: int
    hw_layout_sweep: tuple                      # (batch, cluster size, kernel) NCHW vs channels-last
    inference_batches: tuple[int, ...]         # discovered vs hand-designed
    inference_repeats: int = 7
    planted_modules: int = 3                   # modules of the planted network (no grown one)


def _cost(images_plain: int, images_google: int, data: str = "mnist5k") -> tuple[CostCase, ...]:
    return (
        CostCase("plaincnn (default)", "plaincnn", (), None, images_plain, 250, data),
        CostCase("googlenet_small", "googlenet_small", (), "inception3b", images_google, 64, data),
        CostCase("googlenet_small", "googlenet_small", (), "inception4e", images_google, 64, data),
    )


FULL = Sizes(
    mode="full", repeats=5,
    cost_cases=_cost(2000, 128),
    machine_channels=256, machine_size=14, machine_batch=100, machine_samples=2000,
    machine_rate_configs=tuple((t, d, r) for t in (0, 1) for d, r in (
        ("float64", 0), ("float32", 0), ("float64", 2), ("float32", 2))),
    machine_memory_config=(0, "float32", 2),
    cluster_channels=(64, 256, 1024, 2048), cluster_significance_channels=(64, 256, 1024),
    cluster_images=128, cluster_size=8, cluster_permutations=99, cluster_resamples=5,
    hw_channels=256, hw_clusters=8, hw_size=14, hw_batch=64,
    hw_layout_sweep=tuple((n, s, k) for n in (64, 8) for s in (8, 16, 32) for k in (3, 5)),
    inference_batches=(1, 64), inference_repeats=15,
)

QUICK = Sizes(
    mode="quick", repeats=3,
    cost_cases=_cost(200, 8)[:2],
    machine_channels=256, machine_size=14, machine_batch=100, machine_samples=200,
    machine_rate_configs=((0, "float64", 0), (0, "float32", 0)),
    machine_memory_config=(0, "float32", 0),
    cluster_channels=(64, 256, 1024), cluster_significance_channels=(64,),
    cluster_images=64, cluster_size=8, cluster_permutations=20, cluster_resamples=5,
    hw_channels=256, hw_clusters=8, hw_size=14, hw_batch=16, hw_layout_sweep=(),
    inference_batches=(1, 64), inference_repeats=3,
)

TINY = Sizes(
    mode="tiny", repeats=2,
    cost_cases=(CostCase("plaincnn (tiny)", "plaincnn", (("width", 4),), None, 16, 8, "random"),),
    machine_channels=8, machine_size=6, machine_batch=4, machine_samples=8,
    machine_rate_configs=((1, "float32", 1),),
    machine_memory_config=(1, "float32", 1),
    cluster_channels=(16, 32), cluster_significance_channels=(16,),
    cluster_images=16, cluster_size=6, cluster_permutations=2, cluster_resamples=1,
    hw_channels=16, hw_clusters=2, hw_size=6, hw_batch=2, hw_layout_sweep=((2, 4, 3), (2, 4, 5)),
    inference_batches=(1, 2), inference_repeats=2, planted_modules=1,
)

MODES = {"full": FULL, "quick": QUICK, "tiny": TINY}
