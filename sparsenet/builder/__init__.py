"""The builder: a discovery's groups -> a module spec -> a runnable Inception-like module.

``spec`` holds the plain values (branches, widths, kernel sizes), ``rules`` turns a discovery into
a spec and measures hand-designed reference modules, ``modules`` realises specs as ``nn.Module``s,
``drawing`` pictures them, and ``specnet`` registers networks built from specs in the model
registry: the code that resolves a model by name (training, checkpoint loading, the CLI's model
commands) imports ``sparsenet.builder.specnet``, so ``get_model("specnet")`` works there.  This
package imports nothing itself, so the command line reads the plain values of ``spec`` without
loading torch.
"""

__all__ = ["build_module", "build_network", "plan_buckets"]


def __getattr__(name):  # lazy: ``from sparsenet.builder import build_module`` (the documented path) loads torch only then
    if name in __all__:
        from sparsenet.builder import modules

        return getattr(modules, name)
    raise AttributeError(f"module 'sparsenet.builder' has no attribute {name!r}")
