"""The builder: a discovery's groups -> a module spec -> a runnable Inception-like module.

``spec`` holds the plain values (branches, widths, kernel sizes), ``rules`` turns a discovery into
a spec, ``reference`` measures hand-designed modules, ``modules`` realises specs as ``nn.Module``s,
``drawing`` pictures them, and ``specnet`` registers networks built from specs in the model
registry (imported here, so ``import sparsenet.builder`` makes ``get_model("specnet")`` work).
"""

from sparsenet.builder import specnet as _registers_specnet  # noqa: F401
