"""The build pipeline: a discovery (or an existing spec) -> a checked module spec, its summary,
and optionally a picture beside a hand-designed reference module.

Everything that can fail (loading, budget fitting, building the module, drawing) happens before
anything is written, so a refused build leaves no file behind.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from sparsenet.builder.drawing import comparison_figure
from sparsenet.builder.modules import DEFAULT_PAD_TOLERANCE, build_module, module_summary, network_summary
from sparsenet.builder.rules import (DEFAULT_CONNECTIVITY, DEFAULT_REFERENCE, Reference, discovery_input_size, fit_budget,
                                     module_from_discovery, reference_like)
from sparsenet.builder.spec import (ModuleSpec, NetworkSpec, check_fits, load_spec, module_macs, module_params,
                                    network_macs, network_params, save_spec)
from sparsenet.discovery.value import load_discovery
from sparsenet.errors import SparsenetError
from sparsenet.figures import save_figure

__all__ = ["DEFAULT_REFERENCE", "Built", "build", "spec_from_discovery", "rescale_spec"]



@dataclass(frozen=True)
class Built:
    spec: ModuleSpec | NetworkSpec
    summary: str                          # branches, widths, parameters, multiply-adds
    input_size: tuple[int, int] | None    # the module's input (H, W), where known
    reference: Reference | None           # the module named by budget_like, if any
    out: Path | None                      # where the spec was written (None: not written)
    picture: Path | None                  # where the picture was written (None: not drawn)
    fitted: bool = False                  # this call fitted the widths to a budget

    def budget_line(self) -> str | None:
        """One line on the budget fit, when this call asked for one (a spec read from a file
        keeps the budget of the build that made it in its provenance; that is not reported)."""
        budget = self.spec.provenance.get("budget") if isinstance(self.spec, ModuleSpec) else None
        if not (budget and self.fitted):
            return None
        gap = budget["macs"] / budget["target_macs"] - 1
        return (f"budget: target {budget['target_macs']:,} multiply-adds"
                + (f" ({self.reference.name})" if self.reference else "")
                + f", achieved {budget['macs']:,} ({gap:+.2%}) with width scale {budget['width_scale']:.4g}"
                + f" and {budget['adjust_steps']} single-width steps")


def _fit(make, budget_macs, reference, size):
    if size is None:
        raise SparsenetError("a budget needs the module's input size: the discovery has no provenance.layer_shape; "
                             "give --input-size H,W")
    return fit_budget(make, budget_macs if budget_macs else reference.macs, size)


def spec_from_discovery(path: str | Path, *, connectivity: str = DEFAULT_CONNECTIVITY, batch_norm: bool = False,
                        budget_macs: float | None = None, budget_like: str | None = None,
                        input_size: tuple[int, int] | None = None, in_channels: int | None = None):
    """The rules applied to a discovery file, optionally scaled to a budget; returns (spec, size, reference)."""
    reference = reference_like(budget_like) if budget_like else None
    discovery = load_discovery(path)
    if in_channels is not None and in_channels != discovery.channels:
        raise SparsenetError(f"the discovery's layer has {discovery.channels} channels, but --in-channels is "
                             f"{in_channels}: the module would not fit the layer it follows")
    size = input_size or discovery_input_size(discovery)

    def make(f: float = 1.0) -> ModuleSpec:
        return module_from_discovery(discovery, connectivity=connectivity, batch_norm=batch_norm, width_scale=f)

    spec = _fit(make, budget_macs, reference, size) if (budget_macs or reference) else make()
    provenance = {**spec.provenance, "discovery": str(path)}
    if size is not None:
        provenance["input_size"] = list(size)
    if reference:
        provenance["budget"] = {**provenance["budget"], "like": reference.name}
    return replace(spec, provenance=provenance), size, reference


def _spec_size(spec):
    value = spec.provenance.get("input_size")
    if isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and v > 0 for v in value):
        return tuple(value)
    return None


def rescale_spec(path: str | Path, *, budget_macs: float | None = None, budget_like: str | None = None,
                 input_size: tuple[int, int] | None = None, in_channels: int | None = None):
    """A spec file, checked against ``in_channels`` and optionally rescaled; returns (spec, size, reference)."""
    reference = reference_like(budget_like) if budget_like else None
    spec = load_spec(path)
    if in_channels is not None:
        if isinstance(spec, ModuleSpec):
            check_fits(spec, in_channels, after="the layer it follows (--in-channels)")
        elif spec.stem.in_channels != in_channels:
            raise SparsenetError(f"the network reads {spec.stem.in_channels} image channels, "
                                 f"but --in-channels is {in_channels}")
    size = input_size or _spec_size(spec)
    if budget_macs or reference:
        if not isinstance(spec, ModuleSpec):
            raise SparsenetError("--budget-macs/--budget-like rescale a module spec; this is a network spec")
        spec = _fit(spec, budget_macs, reference, size)
    return spec, size, reference


def _figure(spec, reference: Reference, size):
    if isinstance(spec, ModuleSpec):
        cost = f"{module_params(spec):,} params"
        if size is not None:
            cost += f", {module_macs(spec, size) / 1e6:.2f}M MACs at {size[0]}x{size[1]}"
        title = f"discovered ({spec.connectivity} connectivity)\n{cost}"
    else:
        cost = f"{network_params(spec):,} params"
        if size is not None:
            cost += f", {network_macs(spec, size) / 1e6:.2f}M MACs at {size[0]}x{size[1]}"
        title = f"discovered network\n{cost}"
    h, w = reference.input_size
    ref_title = (f"hand-designed: {reference.name}\n{reference.params:,} params, "
                 f"{reference.macs / 1e6:.2f}M MACs at {h}x{w}")
    return comparison_figure(spec, reference.spec, (title, ref_title))


def build(*, discovery: str | Path | None = None, spec: str | Path | None = None, out: str | Path | None = None,
          connectivity: str = DEFAULT_CONNECTIVITY, batch_norm: bool = False, budget_macs: float | None = None,
          budget_like: str | None = None, input_size: tuple[int, int] | None = None,
          in_channels: int | None = None, picture: str | Path | None = None, reference: str | None = None,
          pad_tolerance: float | None = None) -> Built:
    """``sparsenet build``: from a discovery (spec written to ``out``, default spec.json beside it)
    or from a spec (written only when ``out`` is given); optionally a picture beside ``reference``."""
    if (discovery is None) == (spec is None):
        raise SparsenetError("give exactly one of a discovery or a spec to build from")
    tol = DEFAULT_PAD_TOLERANCE if pad_tolerance is None else pad_tolerance
    if discovery is not None:
        made, size, ref = spec_from_discovery(discovery, connectivity=connectivity, batch_norm=batch_norm,
                                              budget_macs=budget_macs, budget_like=budget_like,
                                              input_size=input_size, in_channels=in_channels)
        if out is None:
            d = Path(discovery)
            out = (d if d.is_dir() else d.parent) / "spec.json"
    else:
        made, size, ref = rescale_spec(spec, budget_macs=budget_macs, budget_like=budget_like,
                                       input_size=input_size, in_channels=in_channels)
    if isinstance(made, ModuleSpec):
        build_module(made, pad_tolerance=tol)
        text = module_summary(made, size, pad_tolerance=tol)
    else:
        text = network_summary(made, size, pad_tolerance=tol)
    figure = _figure(made, ref or reference_like(reference or DEFAULT_REFERENCE), size) if picture else None
    if out is not None:
        save_spec(made, out)
    if figure is not None:
        save_figure(figure, picture)
    return Built(made, text, size, ref, Path(out) if out is not None else None,
                 Path(picture) if picture else None, fitted=bool(budget_macs or budget_like))
