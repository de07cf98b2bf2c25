"""Growing a network layer by layer, Arora's way.

Start from a stem and a head, train, record the newest layer's output, discover its clusters,
build the next module from that discovery, append it, train again, and repeat.  ``greedy`` mode
trains only the new module and the head at each step (earlier layers frozen, as in Arora et
al.'s layer-wise construction); ``end2end`` trains the whole network at each step.

Every step lives in its own directory (``step0`` is the stem alone):

    DIR/growth.json            the settings (a rerun with other settings is refused)
    DIR/stepK/discovery/       discovery.json, plots and report.md of the layer the module reads
    DIR/stepK/module.json      the module built from that discovery
    DIR/stepK/network.json     the whole network after the step
    DIR/stepK/checkpoint.pt    its weights;  DIR/stepK/metrics.json  (written last: step done)
    DIR/network.json, checkpoint.pt, metrics.json, network.png   the final result

An interrupted growth resumes from its last finished step (and inside a step from the last
finished epoch).

``ablation`` (``"random_clusters"`` or ``"random_kernels"``, see :mod:`sparsenet.discovery.ablation`)
grows the control arm: each step's discovery is written as found, then replaced by its ablation
(seeded by the training seed and the step, written to ``stepK/ablated_discovery.json``) before the
module is built, so the arm differs from the discovered growth only in what discovery decided.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sparsenet.version import __version__
from sparsenet.builder.spec import CONNECTIVITIES, DEFAULT_CONNECTIVITY
from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_bytes, atomic_write_json
from sparsenet.limits import MAX_CHANNELS, MAX_MODULES
from sparsenet.training.config import TrainConfig

MODES = ("greedy", "end2end")
STEP_TRAINING = TrainConfig(epochs=2)  # `sparsenet grow`'s recipe per step: a step trains one new module


@dataclass(frozen=True)
class GrowthConfig:
    modules: int = 2                   # Inception-like modules grown after the stem
    mode: str = "greedy"               # "greedy": train the new module + head; "end2end": everything
    connectivity: str = DEFAULT_CONNECTIVITY  # "cluster" (Arora) or "full" (GoogLeNet) branch inputs
    budget_macs: int | None = None     # per-module multiply-add target; None: widths follow clusters
    budget_like: str | None = None     # per-module target of a hand-designed module, e.g. googlenet_small:3a
    width_scale: float = 1.0           # without a budget: branch width = cluster size x width_scale
    stem_width: int = 32               # channels of the stem's 3x3 conv (followed by a stride-2 pool)
    pool_after: tuple[int, ...] = ()   # module indices (0-based) followed by a stride-2 max pool

    def validate(self) -> "GrowthConfig":
        if isinstance(self.modules, bool) or not isinstance(self.modules, int) or not 1 <= self.modules <= MAX_MODULES:
            raise SparsenetError(f"modules must be an integer in 1..{MAX_MODULES}, got {self.modules!r}")
        if self.mode not in MODES:
            raise SparsenetError(f"mode must be one of {list(MODES)}, got {self.mode!r}")
        if self.connectivity not in CONNECTIVITIES:
            raise SparsenetError(f"connectivity must be one of {list(CONNECTIVITIES)}, got {self.connectivity!r}")
        if self.budget_macs is not None and self.budget_like is not None:
            raise SparsenetError("give either budget_macs or budget_like, not both")
        if self.budget_macs is not None and not 0 < self.budget_macs < float("inf"):
            raise SparsenetError(f"budget_macs must be a positive number, got {self.budget_macs!r}")
        if not 0 < self.width_scale <= 1024:
            raise SparsenetError(f"width_scale must be a number in (0, 1024], got {self.width_scale!r}")
        if not isinstance(self.stem_width, int) or not 1 <= self.stem_width <= MAX_CHANNELS:
            raise SparsenetError(f"stem_width must be an integer in 1..{MAX_CHANNELS}, got {self.stem_width!r}")
        bad = [i for i in self.pool_after if not 0 <= i < self.modules]
        if bad:
            raise SparsenetError(f"pool_after index {bad[0]} is outside the modules 0..{self.modules - 1}")
        return self


def _initial_spec(dataset, config: GrowthConfig):
    from sparsenet.builder.spec import HeadSpec, NetworkSpec, StemSpec

    stem = StemSpec(in_channels=dataset.in_channels, widths=(config.stem_width,), kernel_sizes=(3,),
                    strides=(1,), pool=True)
    return NetworkSpec(stem=stem, modules=(), head=HeadSpec(num_classes=dataset.num_classes))


def module_budget(config: GrowthConfig) -> int | None:
    """The multiply-adds each grown module is fitted to: ``budget_macs``, or those of the reference
    module ``budget_like`` names; None when neither is set (modules keep their rule-made size)."""
    if config.budget_macs is not None:
        return int(config.budget_macs)
    if config.budget_like is not None:
        from sparsenet.builder.rules import reference_like

        return reference_like(config.budget_like).macs
    return None


def _next_module(discovery, network, dataset, config: GrowthConfig, target: int | None):
    """The module the rules make from ``discovery``, scaled to the budget at its input size."""
    from sparsenet.builder.rules import fit_budget, module_from_discovery
    from sparsenet.builder.spec import NetworkSpec, module_input_sizes

    def make(f):
        return module_from_discovery(discovery, connectivity=config.connectivity, width_scale=f)

    module = make(config.width_scale)
    if target is None:
        return module
    n = len(network.modules)
    pool_after = tuple(i for i in config.pool_after if i < n)
    trial = NetworkSpec(stem=network.stem, modules=network.modules + (module,), pool_after=pool_after,
                        head=network.head)
    size = module_input_sizes(trial, dataset.input_shape[1:])[-1]
    return fit_budget(make, target, size)


def _append(network, module, config: GrowthConfig):
    """``network`` with ``module`` after its last layer; a module producer then emits its channels
    in the order the new module's inputs were laid out for (``provenance["input_order"]``)."""
    from sparsenet.builder.layout import compose_output_order
    from sparsenet.builder.spec import NetworkSpec

    n = len(network.modules) + 1
    modules = network.modules
    order = module.provenance.get("input_order")
    if order is not None and modules:
        modules = modules[:-1] + (compose_output_order(modules[-1], order),)
    return NetworkSpec(stem=network.stem, modules=modules + (module,),
                       pool_after=tuple(i for i in config.pool_after if i < n), head=network.head)


def _newest_layer(network) -> str:
    return f"blocks.{len(network.modules) - 1}" if network.modules else "stem"


def _carry_over(model, previous_state: dict, network, mode: str) -> None:
    """Load the trained stem and modules into the grown model; freeze them in greedy mode."""
    state = {k: v for k, v in previous_state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected:
        raise SparsenetError(f"previous step's weights do not fit the grown network: {unexpected[:3]}")
    if mode == "greedy":
        frozen = [model.stem] + [model.blocks[i] for i in range(len(network.modules) - 1)]
        for part in frozen:
            for p in part.parameters():
                p.requires_grad_(False)


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    path = out / "growth.json"
    if path.exists():
        saved = json.loads(path.read_text())
        diff = sorted(k for k in set(saved) | set(settings) if saved.get(k) != settings.get(k))
        if diff:
            raise SparsenetError(f"{out} holds a growth with other settings ({', '.join(diff)} differ); "
                                 "rerun with the same settings to resume, or choose another --out")
    else:
        atomic_write_json(path, settings)


def grow(dataset, config: GrowthConfig, train_config, analysis, out_dir: str | Path, *,
         progress: bool = True, device=None, ablation: str | None = None, num_workers: int = 0) -> dict[str, Any]:
    """Grow ``config.modules`` modules on ``dataset``; see the module docstring for the layout.

    ``dataset`` is a built-in ``sparsenet.data.Dataset`` or a
    :class:`~sparsenet.data.training_data.TrainingData` over the caller's own torch Datasets or
    DataLoaders; every step records from and trains on its splits through DataLoaders
    (``num_workers`` workers).  Training and recording run on ``device`` (``auto``/None: CUDA
    when available)."""
    from sparsenet.device import resolve_device
    from sparsenet.distributed import process_group

    with process_group(resolve_device(device)):   # under torchrun every step trains data-parallel
        return _grow(dataset, config, train_config, analysis, out_dir, progress, device, ablation, num_workers)


def _grow(dataset, config, train_config, analysis, out_dir, progress, device, ablation, num_workers):
    from sparsenet.data.training_data import as_training_data
    from sparsenet.device import resolve_device
    from sparsenet.distributed import barrier, on_main, writes_here
    from sparsenet.io import check_out_dir, entries, roll_back

    config.validate()
    train_config.validate()
    analysis.validate()
    from sparsenet.discovery.ablation import ABLATIONS

    if ablation not in (None, "none", *ABLATIONS):  # refused before anything trains or is written
        raise SparsenetError(f"unknown ablation {ablation!r}; accepted: none, {', '.join(ABLATIONS)}")
    device = resolve_device(device)
    dataset = as_training_data(dataset)
    if analysis.clusters != "auto" and analysis.clusters > config.stem_width:
        raise SparsenetError(f"clusters is {analysis.clusters}, but the first layer clustered (the stem) has "
                             f"{config.stem_width} channels; give clusters <= stem_width, or 'auto'")
    target = module_budget(config)  # a bad budget_like is refused before anything is written
    out = check_out_dir(out_dir)
    settings = {"data": dataset.name, "growth": asdict(config), "train": asdict(train_config),
                "analysis": asdict(analysis)}
    if ablation not in (None, "none"):   # stored only when set: growths without one keep their settings file
        settings["ablation"] = ablation
    settings = json.loads(json.dumps(settings))  # tuples -> lists, as stored
    logging.getLogger(__name__).info("grow into %s on %s: %s", out, device, settings)
    if (out / "growth.json").exists():
        _check_settings(out, settings)
    before = entries(out)
    barrier()   # every rank has looked at --out before rank 0 writes into it
    progress = progress and writes_here()   # rank 0 tells
    try:
        out.mkdir(parents=True, exist_ok=True)
        on_main(_check_settings, out, settings)
        return _grow_steps(out, dataset, config, train_config, analysis, target, progress, device, ablation,
                           num_workers)
    except SparsenetError:
        if writes_here():
            roll_back(out, before)  # a refused growth leaves --out as it was; an interrupted one stays to resume
        raise


def _grow_steps(out: Path, dataset, config: GrowthConfig, train_config, analysis, target, progress: bool, device,
                ablation, num_workers: int):
    from sparsenet.builder.layout import permute_stem_state
    from sparsenet.builder.modules import build_network
    from sparsenet.training.checkpoint import load_checkpoint
    from sparsenet.builder.spec import load_spec, save_spec, spec_to_dict
    from sparsenet.distributed import on_main
    from sparsenet.training.loop import train
    import torch

    network, state, steps = _initial_spec(dataset, config), None, []
    for step in range(config.modules + 1):
        step_dir = out / f"step{step}"
        if (step_dir / "metrics.json").exists():  # finished earlier: reuse it
            network = load_spec(step_dir / "network.json", kind="network")
            state = load_checkpoint(step_dir / "checkpoint.pt")["state_dict"]
            steps.append(json.loads((step_dir / "metrics.json").read_text()))
            if progress:
                print(f"step {step}: done earlier ({len(network.modules)} modules), reusing {step_dir}")
            continue
        if step > 0:
            torch.manual_seed(train_config.seed)
            model = build_network(network)
            model.load_state_dict(state)
            layer = _newest_layer(network)
            # rank 0 records, discovers and writes the module; in a data-parallel growth the others read it
            on_main(_discover_module, model, layer, step, step_dir, dataset, network, config, train_config,
                    analysis, target, ablation, progress, device)
            module = load_spec(step_dir / "module.json", kind="module")
            order = module.provenance.get("input_order")
            if order is not None and not network.modules:  # the stem makes the channels: permute its weights
                state = permute_stem_state(state, network, order)
            network = _append(network, module, config)
        on_main(save_spec, network, step_dir / "network.json")
        torch.manual_seed(train_config.seed + step)
        model = build_network(network)
        if state is not None:
            _carry_over(model, state, network, config.mode)
        if progress:
            print(f"step {step}: training {len(network.modules)} module(s) "
                  f"({'new module + head' if step and config.mode == 'greedy' else 'whole network'})")
        metrics = train(model, dataset, train_config, model_name="specnet",
                        model_kwargs={"spec": spec_to_dict(network)}, out_dir=step_dir,
                        resume=(step_dir / "checkpoint.pt").exists(), progress=progress,
                        extra={"growth_step": step, "mode": config.mode}, device=device, num_workers=num_workers)
        state = model.state_dict()
        steps.append(metrics)
    return on_main(_finish, out, network, steps, config, dataset, target)   # None on the other ranks


def _discover_module(model, layer, step, step_dir, dataset, network, config, train_config, analysis, target,
                     ablation, progress, device) -> None:
    """Record the newest layer, discover its clusters and write the next module (unless written earlier)."""
    from sparsenet.builder.layout import contiguous_inputs
    from sparsenet.builder.spec import save_spec
    from sparsenet.discover import Activations, analyse, write_run
    from sparsenet.recording import record

    if (step_dir / "module.json").exists():
        return
    acts = record(model.to(device), layer, dataset.train, batch_size=250, max_samples=analysis.max_samples,
                  device=device).cpu()  # the first max_samples training images, in order
    acts_info = Activations(acts, {"model": "specnet", "layer": layer, "data": dataset.name,
                                   "split": "train", "growth_step": step,
                                   "layer_shape": list(acts.shape[1:])})
    analyzer, discovery = analyse(acts_info, analysis)
    if progress and not looks_significant(discovery.significance):
        print(f"step {step}: warning: the clusters of {layer} are not significant "
              f"({discovery.significance}); the module is built from them all the same")
    write_run(analyzer, discovery, step_dir / "discovery")
    if ablation not in (None, "none"):
        from sparsenet.discovery.ablation import ablate

        discovery = ablate(discovery, ablation, seed=train_config.seed * 1000 + step)
        discovery.save(step_dir / "ablated_discovery.json")
    module = _next_module(discovery, network, dataset, config, target)
    laid = contiguous_inputs(module)  # clusters as slices of the producer: no gather
    save_spec(module if laid is None else laid[1], step_dir / "module.json")


def looks_significant(sig: dict) -> bool:
    """z >= 3 and p at 0.05 or as small as the permutations allow (1 / (n + 1))."""
    if not sig or sig.get("z") is None:
        return True  # not tested (no permutations): nothing to warn about
    floor = 1 / (1 + int(sig.get("n_permutations") or 0))
    return sig["z"] >= 3 and sig["p"] <= max(0.05, floor)


def _discovery_summary(step_dir: Path) -> dict[str, Any]:
    """What the step's discovery found (nothing for step 0, which has no discovery)."""
    from sparsenet.discovery.value import load_discovery

    path = step_dir / "discovery" / "discovery.json"
    if not path.exists():
        return {}
    d = load_discovery(path)
    out = {"layer": d.provenance.get("layer"), "clusters": d.n_clusters,
           "kernel_sizes": [c.kernel_size for c in d.clusters], "inactive": len(d.inactive),
           "z": d.significance.get("z"), "p": d.significance.get("p"), "stability": d.stability,
           "cluster_stability": [c.stability for c in d.clusters]}
    ablated = step_dir / "ablated_discovery.json"
    if ablated.exists():   # the module was built from this one
        a = load_discovery(ablated)
        out.update({"ablation": a.provenance.get("ablation"), "built_kernel_sizes": [c.kernel_size for c in a.clusters],
                    "built_cluster_sizes": [c.size for c in a.clusters]})
    return out


def _finish(out: Path, network, steps, config: GrowthConfig, dataset, target) -> dict[str, Any]:
    from sparsenet.builder.drawing import draw_comparison
    from sparsenet.builder.rules import DEFAULT_REFERENCE, reference_like
    from sparsenet.builder.spec import network_macs, network_params, save_spec

    last = out / f"step{config.modules}"
    save_spec(network, out / "network.json")
    atomic_write_bytes(out / "checkpoint.pt", (last / "checkpoint.pt").read_bytes())
    reference = reference_like(config.budget_like or DEFAULT_REFERENCE)
    draw_comparison(network, reference.spec, out / "network.png",
                    titles=(f"grown on {dataset.name} ({len(network.modules)} modules, {config.connectivity})",
                            f"hand-designed {reference.name}"))
    summary = {
        "data": dataset.name, "modules": len(network.modules), "mode": config.mode,
        "connectivity": config.connectivity, "budget_macs_per_module": target,
        "final_test_accuracy": steps[-1]["final_test_accuracy"],
        "params": network_params(network), "macs": network_macs(network, dataset.input_shape[1:]),
        "steps": [{"step": i, "modules": i, "test_accuracy": s["final_test_accuracy"], "params": s["params"],
                   "macs": s["macs"], "wall_time_s": s["wall_time_s"], **_discovery_summary(out / f"step{i}")}
                  for i, s in enumerate(steps)],
        "sparsenet_version": __version__,
    }
    atomic_write_json(out / "metrics.json", summary)
    return summary
