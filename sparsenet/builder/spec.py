"""Module and network specs: the plain, validated value between the rules and the builder.

A spec says what a module is made of (branches with kernel sizes and widths, 1x1 reductions,
a pool branch, which input channels each branch reads), never how it is computed; the builder
(`sparsenet.builder.modules`) chooses the realisation.  Specs are frozen dataclasses that validate
themselves on construction, and are saved as versioned JSON::

    {"format": "sparsenet.spec", "version": 1, "kind": "module", "in_channels": 64, ...}

``load_spec`` refuses anything this release cannot build, naming the field and the value:
unknown or missing fields, wrong types, non-positive widths, even kernel sizes, input channel
indices outside ``0..in_channels-1``, a module that does not fit the one before it, a version
it cannot read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from sparsenet.errors import SparsenetError
from sparsenet.io import atomic_write_json, read_json, why_no_file
from sparsenet.limits import MAX_CHANNELS, MAX_KERNEL_SIZE, MAX_MODEL_PARAMS, MAX_MODULE_PARAMS

FORMAT = "sparsenet.spec"
VERSION = 1
CONNECTIVITIES = ("cluster", "full")  # each branch reads its cluster (Arora) | every channel (GoogLeNet)
DEFAULT_CONNECTIVITY = "cluster"
# how `apply` gives a rewritten layer's output channels to clusters (builder/rewrite.py, docs/apply.md):
# outputs per cluster in proportion to its size, the most weight mass under that | each output's own argmax
ASSIGNMENTS = ("balanced", "mass")
DEFAULT_ASSIGNMENT = "balanced"
KINDS = ("module", "network")


class SpecError(SparsenetError):
    """An invalid spec field: says where it is, what it holds and what would be accepted."""

    def __init__(self, where: str, field_name: str, value: Any, accepted: str):
        self.where, self.field_name, self.value, self.accepted = where, field_name, value, accepted
        super().__init__(self._text())

    def _text(self) -> str:
        path = f"{self.where}.{self.field_name}" if self.where else self.field_name
        return f"invalid spec: {path} is {_short(self.value)}; {self.accepted}"

    def relocated(self, where: str) -> "SpecError":
        """The same error, reported at ``where`` (a file name and/or a path like modules[2])."""
        return SpecError(where, self.field_name, self.value, self.accepted)


def _short(value: Any) -> str:
    if isinstance(value, (list, tuple)) and len(value) > 8:
        head = ", ".join(repr(v) for v in value[:8])
        return f"[{head}, ...] ({len(value)} items)"
    if isinstance(value, tuple):   # shown as the JSON list it came from
        return repr(list(value))
    return repr(value)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _check_int(where: str, name: str, value: Any, minimum: int, maximum: int = MAX_CHANNELS) -> None:
    if not _is_int(value) or not minimum <= value <= maximum:
        raise SpecError(where, name, value, f"expected an integer >= {minimum} and <= {maximum:,}")


def _check_odd(where: str, name: str, value: Any, minimum: int = 1) -> None:
    if not _is_int(value) or not minimum <= value <= MAX_KERNEL_SIZE or value % 2 == 0:
        raise SpecError(where, name, value, f"expected an odd integer >= {minimum} (1, 3, 5, ...) and <= {MAX_KERNEL_SIZE}")


def _check_bool(where: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise SpecError(where, name, value, "expected true or false")


def _norm_inputs(owner: Any, where: str) -> None:
    """Normalise ``inputs`` to a tuple of distinct non-negative ints (or None)."""
    inputs = owner.inputs
    if inputs is None:
        return
    if not isinstance(inputs, (list, tuple)) or not inputs:
        raise SpecError(where, "inputs", inputs,
                        "expected null (all input channels) or a non-empty list of channel indices")
    if not all(_is_int(i) and i >= 0 for i in inputs):
        raise SpecError(where, "inputs", inputs, "expected channel indices (integers >= 0)")
    if len(set(inputs)) != len(inputs):
        raise SpecError(where, "inputs", inputs, "expected each channel index at most once")
    object.__setattr__(owner, "inputs", tuple(inputs))


@dataclass(frozen=True)
class BranchSpec:
    kernel_size: int                       # odd spatial extent of the branch's main conv (1, 3, 5, ...)
    width: int                             # output channels of the branch (> 0)
    reduce: int | None = None              # 1x1 reduction width in front of a k>1 conv; None for 1x1 branches
    inputs: tuple[int, ...] | None = None  # input channel indices the branch reads; None = all of them

    def __post_init__(self):
        where = "BranchSpec"
        _check_odd(where, "kernel_size", self.kernel_size)
        _check_int(where, "width", self.width, 1)
        if self.kernel_size == 1 and self.reduce is not None:
            raise SpecError(where, "reduce", self.reduce,
                            "a 1x1 branch has no reduction in front of it: expected null")
        if self.kernel_size > 1:
            if self.reduce is None:
                raise SpecError(where, "reduce", self.reduce,
                                f"a {self.kernel_size}x{self.kernel_size} branch needs a 1x1 reduction: "
                                "expected an integer >= 1")
            _check_int(where, "reduce", self.reduce, 1)
        _norm_inputs(self, where)

    def n_inputs(self, in_channels: int) -> int:
        return in_channels if self.inputs is None else len(self.inputs)


@dataclass(frozen=True)
class PoolSpec:
    projection: int                        # output channels of the 1x1 projection after the pool (> 0)
    kernel_size: int = 3                   # odd max-pool window (stride 1, 'same' padding)
    inputs: tuple[int, ...] | None = None  # input channel indices pooled and projected; None = all

    def __post_init__(self):
        where = "PoolSpec"
        _check_int(where, "projection", self.projection, 1)
        _check_odd(where, "kernel_size", self.kernel_size, 3)
        _norm_inputs(self, where)

    @property
    def width(self) -> int:
        return self.projection

    def n_inputs(self, in_channels: int) -> int:
        return in_channels if self.inputs is None else len(self.inputs)


@dataclass(frozen=True)
class ModuleSpec:
    in_channels: int                          # channels of the module's input (the layer it follows)
    branches: tuple[BranchSpec, ...]          # conv branches; outputs concatenated in this order
    pool: PoolSpec | None = None              # pool branch, concatenated after the conv branches
    connectivity: str = "full"                # "full": every branch reads all inputs; "cluster": its own
    batch_norm: bool = False                  # BatchNorm after every conv (convs then have no bias)
    # output channel i is channel output_order[i] of the concatenated branches (None: as concatenated);
    # grow sets it so the next module's clusters are contiguous slices (builder/layout.py)
    output_order: tuple[int, ...] | None = None
    provenance: dict = field(default_factory=dict, compare=False, repr=False)  # where it came from

    def __post_init__(self):
        where = "ModuleSpec"
        _check_int(where, "in_channels", self.in_channels, 1)
        if isinstance(self.branches, BranchSpec) or not isinstance(self.branches, (list, tuple)) \
                or not self.branches:
            raise SpecError(where, "branches", self.branches, "expected a non-empty list of branches")
        for i, b in enumerate(self.branches):
            if not isinstance(b, BranchSpec):
                raise SpecError(where, f"branches[{i}]", b, "expected a BranchSpec")
        object.__setattr__(self, "branches", tuple(self.branches))
        if self.pool is not None and not isinstance(self.pool, PoolSpec):
            raise SpecError(where, "pool", self.pool, "expected a PoolSpec or null")
        if self.connectivity not in CONNECTIVITIES:
            raise SpecError(where, "connectivity", self.connectivity, f"expected one of {list(CONNECTIVITIES)}")
        _check_bool(where, "batch_norm", self.batch_norm)
        if not isinstance(self.provenance, dict):
            raise SpecError(where, "provenance", self.provenance, "expected an object (dict)")
        if self.output_order is not None:
            order = self.output_order
            if not isinstance(order, (list, tuple)) or not all(_is_int(i) for i in order) \
                    or sorted(order) != list(range(self.out_channels)):
                raise SpecError(where, "output_order", order, f"expected null or a permutation of "
                                f"0..{self.out_channels - 1} (each output channel once)")
            object.__setattr__(self, "output_order", tuple(order))
        for name, part in self._parts():
            if part.inputs is None:
                continue
            if self.connectivity == "full":
                raise SpecError(where, f"{name}.inputs", part.inputs,
                                "connectivity 'full' means every branch reads all input channels: "
                                "expected null (or use connectivity 'cluster')")
            bad = [i for i in part.inputs if i >= self.in_channels]
            if bad:
                raise SpecError(where, f"{name}.inputs", part.inputs,
                                f"channel {bad[0]} is out of range: in_channels is {self.in_channels}, "
                                f"expected indices in 0..{self.in_channels - 1}")
        if module_params(self) > MAX_MODULE_PARAMS:
            raise SpecError(where, "branches", f"{module_params(self):,} parameters",
                            f"expected at most {MAX_MODULE_PARAMS:,} parameters in one module (narrower branches)")

    def _parts(self):
        for i, b in enumerate(self.branches):
            yield f"branches[{i}]", b
        if self.pool is not None:
            yield "pool", self.pool

    @property
    def out_channels(self) -> int:
        return sum(b.width for b in self.branches) + (self.pool.projection if self.pool else 0)


@dataclass(frozen=True)
class StemSpec:
    in_channels: int = 1                    # image channels (1 for MNIST-like data, 3 for RGB)
    widths: tuple[int, ...] = (64,)         # output channels of each stem conv, in order (may be empty)
    kernel_sizes: tuple[int, ...] = (3,)    # odd kernel size of each stem conv
    strides: tuple[int, ...] = (1,)         # stride of each stem conv
    pool: bool = False                      # a 3x3 stride-2 max-pool after the stem convs
    batch_norm: bool = False                # BatchNorm after every stem conv

    def __post_init__(self):
        where = "StemSpec"
        _check_int(where, "in_channels", self.in_channels, 1)
        for name in ("widths", "kernel_sizes", "strides"):
            value = getattr(self, name)
            if not isinstance(value, (list, tuple)):
                raise SpecError(where, name, value, "expected a list of integers, one per stem conv")
            object.__setattr__(self, name, tuple(value))
        if not len(self.widths) == len(self.kernel_sizes) == len(self.strides):
            raise SpecError(where, "kernel_sizes", self.kernel_sizes,
                            f"expected one kernel size and one stride per stem conv "
                            f"({len(self.widths)} widths, {len(self.strides)} strides)")
        for i in range(len(self.widths)):
            _check_int(where, f"widths[{i}]", self.widths[i], 1)
            _check_odd(where, f"kernel_sizes[{i}]", self.kernel_sizes[i])
            _check_int(where, f"strides[{i}]", self.strides[i], 1)
        _check_bool(where, "pool", self.pool)
        _check_bool(where, "batch_norm", self.batch_norm)

    @property
    def out_channels(self) -> int:
        return self.widths[-1] if self.widths else self.in_channels


@dataclass(frozen=True)
class HeadSpec:
    num_classes: int = 10      # outputs of the final linear layer
    dropout: float = 0.2       # dropout probability before the linear layer, in [0, 1)

    def __post_init__(self):
        where = "HeadSpec"
        _check_int(where, "num_classes", self.num_classes, 1)
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) \
                or not 0.0 <= self.dropout < 1.0:
            raise SpecError(where, "dropout", self.dropout, "expected a number in [0, 1)")
        object.__setattr__(self, "dropout", float(self.dropout))


@dataclass(frozen=True)
class NetworkSpec:
    stem: StemSpec                      # convs (and an optional pool) in front of the first module
    modules: tuple[ModuleSpec, ...]     # modules in order; module i reads module i-1's output
    pool_after: tuple[int, ...] = ()    # module indices followed by a 3x3 stride-2 max-pool
    head: HeadSpec = field(default_factory=HeadSpec)  # global average pool + dropout + linear
    provenance: dict = field(default_factory=dict, compare=False, repr=False)  # where it came from

    def __post_init__(self):
        where = "NetworkSpec"
        if not isinstance(self.stem, StemSpec):
            raise SpecError(where, "stem", self.stem, "expected a StemSpec")
        if not isinstance(self.modules, (list, tuple)) or not all(isinstance(m, ModuleSpec) for m in self.modules):
            raise SpecError(where, "modules", self.modules, "expected a list of ModuleSpec")
        object.__setattr__(self, "modules", tuple(self.modules))
        if not isinstance(self.pool_after, (list, tuple)):
            raise SpecError(where, "pool_after", self.pool_after, "expected a list of module indices")
        object.__setattr__(self, "pool_after", tuple(self.pool_after))
        n = len(self.modules)
        for i in self.pool_after:
            if not _is_int(i) or not 0 <= i < n:
                raise SpecError(where, "pool_after", self.pool_after,
                                f"expected module indices in 0..{n - 1}" if n else "expected [] (no modules)")
        if list(self.pool_after) != sorted(set(self.pool_after)):
            raise SpecError(where, "pool_after", self.pool_after, "expected increasing indices, each once")
        if not isinstance(self.head, HeadSpec):
            raise SpecError(where, "head", self.head, "expected a HeadSpec")
        if not isinstance(self.provenance, dict):
            raise SpecError(where, "provenance", self.provenance, "expected an object (dict)")
        check_placement(self)
        if network_params(self) > MAX_MODEL_PARAMS:
            raise SpecError(where, "modules", f"{network_params(self):,} parameters",
                            f"expected at most {MAX_MODEL_PARAMS:,} parameters in one network")

    @property
    def out_channels(self) -> int:
        return self.head.num_classes

    @property
    def features(self) -> int:
        """Channels entering the head: the last module's output (or the stem's)."""
        return self.modules[-1].out_channels if self.modules else self.stem.out_channels


def check_placement(spec: NetworkSpec) -> None:
    """Refuse a module whose in_channels differ from the out_channels of what precedes it."""
    previous, name = spec.stem.out_channels, "stem.out_channels (last stem width)"
    for i, module in enumerate(spec.modules):
        if module.in_channels != previous:
            raise SpecError("", f"modules[{i}].in_channels", module.in_channels,
                            f"it must equal {name}, which is {previous}")
        previous, name = module.out_channels, f"modules[{i}].out_channels"


def check_fits(spec: ModuleSpec, in_channels: int, after: str = "the layer it follows") -> None:
    """Refuse a module spec placed after a layer with a different number of channels."""
    if spec.in_channels != in_channels:
        raise SpecError("", "in_channels", spec.in_channels,
                        f"it must equal the channels of {after}, which is {in_channels}")


# ---------------------------------------------------------------------------------- counting

def _conv_cost(n_in: int, n_out: int, k: int) -> int:
    return n_in * n_out * k * k


def branch_macs_per_pixel(branch: BranchSpec | PoolSpec, in_channels: int) -> int:
    """Multiply-adds per output pixel of one branch (pooling itself costs none)."""
    n = branch.n_inputs(in_channels)
    if isinstance(branch, PoolSpec):
        return _conv_cost(n, branch.projection, 1)
    if branch.kernel_size == 1:
        return _conv_cost(n, branch.width, 1)
    return _conv_cost(n, branch.reduce, 1) + _conv_cost(branch.reduce, branch.width, branch.kernel_size)


def module_macs(spec: ModuleSpec, input_size: Sequence[int]) -> int:
    """Multiply-adds of the module's convolutions at input size (H, W): the connections it has.

    Counts what FlopCounterMode counts (conv multiply-adds; not bias, BN, ReLU or pooling), so
    it equals ``accounting.count_macs`` of the built module whenever the builder needs no
    zero padding (full connectivity, or clusters of equal shapes).
    """
    h, w = _size(input_size)
    parts = list(spec.branches) + ([spec.pool] if spec.pool else [])
    return h * w * sum(branch_macs_per_pixel(p, spec.in_channels) for p in parts)


def module_params(spec: ModuleSpec) -> int:
    """Parameters of the module as specified (conv weights, biases or BN affine parameters)."""
    extra = 2 if spec.batch_norm else 1   # BN weight + bias per channel, else the conv bias
    total = 0
    for part in list(spec.branches) + ([spec.pool] if spec.pool else []):
        n = part.n_inputs(spec.in_channels)
        if isinstance(part, PoolSpec):
            total += n * part.projection + extra * part.projection
        elif part.kernel_size == 1:
            total += n * part.width + extra * part.width
        else:
            total += n * part.reduce + extra * part.reduce
            total += part.reduce * part.width * part.kernel_size ** 2 + extra * part.width
    return total


def _size(input_size: Sequence[int]) -> tuple[int, int]:
    try:
        h, w = (int(v) for v in input_size)
    except (TypeError, ValueError):
        raise SparsenetError(f"input size {input_size!r} is not (H, W); expected two positive integers") from None
    if h < 1 or w < 1:
        raise SparsenetError(f"input size {input_size!r} is not (H, W); expected two positive integers")
    return h, w


def conv_out(size: int, kernel_size: int, stride: int) -> int:
    """Output length of a conv/pool with 'same' padding k//2 along one axis."""
    return (size + 2 * (kernel_size // 2) - kernel_size) // stride + 1


def module_input_sizes(spec: NetworkSpec, input_size: Sequence[int]) -> list[tuple[int, int]]:
    """The (H, W) each module of the network sees for an image of ``input_size``."""
    h, w = _size(input_size)
    for k, s in zip(spec.stem.kernel_sizes, spec.stem.strides):
        h, w = conv_out(h, k, s), conv_out(w, k, s)
    if spec.stem.pool:
        h, w = conv_out(h, 3, 2), conv_out(w, 3, 2)
    sizes = []
    for i in range(len(spec.modules)):
        sizes.append((h, w))
        if i in spec.pool_after:
            h, w = conv_out(h, 3, 2), conv_out(w, 3, 2)
    return sizes


def network_macs(spec: NetworkSpec, input_size: Sequence[int]) -> int:
    """Multiply-adds of stem convs, modules and the final linear layer for one image."""
    h, w = _size(input_size)
    total, c = 0, spec.stem.in_channels
    for width, k, s in zip(spec.stem.widths, spec.stem.kernel_sizes, spec.stem.strides):
        h, w = conv_out(h, k, s), conv_out(w, k, s)
        total += h * w * _conv_cost(c, width, k)
        c = width
    for module, size in zip(spec.modules, module_input_sizes(spec, input_size)):
        total += module_macs(module, size)
    return total + spec.features * spec.head.num_classes


def network_params(spec: NetworkSpec) -> int:
    total, c = 0, spec.stem.in_channels
    extra = 2 if spec.stem.batch_norm else 1
    for width, k in zip(spec.stem.widths, spec.stem.kernel_sizes):
        total += _conv_cost(c, width, k) + extra * width
        c = width
    total += sum(module_params(m) for m in spec.modules)
    return total + spec.features * spec.head.num_classes + spec.head.num_classes


# ---------------------------------------------------------------------------------- JSON

def _plain(value):
    return list(value) if isinstance(value, tuple) else value


def _module_body(spec: ModuleSpec) -> dict[str, Any]:
    return {
        "in_channels": spec.in_channels,
        "connectivity": spec.connectivity,
        "batch_norm": spec.batch_norm,
        "branches": [{"kernel_size": b.kernel_size, "width": b.width, "reduce": b.reduce,
                      "inputs": _plain(b.inputs)} for b in spec.branches],
        "pool": None if spec.pool is None else {
            "kernel_size": spec.pool.kernel_size, "projection": spec.pool.projection,
            "inputs": _plain(spec.pool.inputs)},
        "out_channels": spec.out_channels,
        **({} if spec.output_order is None else {"output_order": list(spec.output_order)}),
        "provenance": spec.provenance,
    }


def spec_to_dict(spec: ModuleSpec | NetworkSpec) -> dict[str, Any]:
    """The versioned JSON object of a spec (``out_channels`` is written for readers, and checked)."""
    head = {"format": FORMAT, "version": VERSION}
    if isinstance(spec, ModuleSpec):
        return {**head, "kind": "module", **_module_body(spec)}
    if isinstance(spec, NetworkSpec):
        s = spec.stem
        return {**head, "kind": "network",
                "stem": {"in_channels": s.in_channels, "widths": list(s.widths),
                         "kernel_sizes": list(s.kernel_sizes), "strides": list(s.strides),
                         "pool": s.pool, "batch_norm": s.batch_norm},
                "modules": [_module_body(m) for m in spec.modules],
                "pool_after": list(spec.pool_after),
                "head": {"num_classes": spec.head.num_classes, "dropout": spec.head.dropout},
                "provenance": spec.provenance}
    raise SparsenetError(f"expected a ModuleSpec or NetworkSpec, got {type(spec).__name__}")


def save_spec(spec: ModuleSpec | NetworkSpec, path: str | Path) -> Path:
    """Write the spec as versioned JSON, atomically."""
    return atomic_write_json(path, spec_to_dict(spec))


def _fields(where: str, data: Any, required: Sequence[str], optional: Sequence[str]) -> dict:
    if not isinstance(data, dict):
        head, _, tail = where.rpartition(".")
        raise SpecError(head, tail or "(top level)", data, "expected an object")
    unknown = [k for k in data if k not in required and k not in optional]
    if unknown:
        raise SpecError(where, unknown[0], data[unknown[0]],
                        f"unknown field; accepted fields are {sorted([*required, *optional])}")
    missing = [k for k in required if k not in data]
    if missing:
        raise SpecError(where, missing[0], "missing", "this field is required")
    return {k: data[k] for k in [*required, *optional] if k in data}


def _make(cls, where: str, kwargs: dict):
    try:
        return cls(**kwargs)
    except SpecError as exc:
        raise exc.relocated(where) from None
    except TypeError as exc:   # e.g. a list where a number was expected, caught before our checks
        raise SpecError(where, "?", kwargs, f"could not be read ({exc})") from None


def _join(a: str, b: str) -> str:
    return f"{a}.{b}" if a else b


def _list(where: str, name: str, value: Any) -> list:
    if not isinstance(value, list):
        raise SpecError(where, name, value, "expected a list")
    return value


def _module_from(data: Any, where: str, top_level: bool) -> ModuleSpec:
    extra = ("format", "version", "kind") if top_level else ()
    d = _fields(where, data, ("in_channels", "branches"),
                ("connectivity", "batch_norm", "pool", "out_channels", "output_order", "provenance", *extra))
    branches = []
    for i, b in enumerate(_list(where, "branches", d["branches"])):
        bw = _join(where, f"branches[{i}]")
        branches.append(_make(BranchSpec, bw, _fields(bw, b, ("kernel_size", "width"), ("reduce", "inputs"))))
    pool = d.get("pool")
    if pool is not None:
        pw = _join(where, "pool")
        pool = _make(PoolSpec, pw, _fields(pw, pool, ("projection",), ("kernel_size", "inputs")))
    kwargs = {"in_channels": d["in_channels"], "branches": branches, "pool": pool}
    for name in ("connectivity", "batch_norm", "output_order", "provenance"):
        if name in d:
            kwargs[name] = d[name]
    spec = _make(ModuleSpec, where, kwargs)
    if "out_channels" in d and d["out_channels"] != spec.out_channels:
        raise SpecError(where, "out_channels", d["out_channels"],
                        f"the branch widths add up to {spec.out_channels}; fix the widths or this field")
    return spec


def spec_from_dict(data: Any, source: str = "<spec>") -> ModuleSpec | NetworkSpec:
    """Validate a parsed spec object and turn it into a ModuleSpec or NetworkSpec."""
    try:
        return _spec_from_dict(data)
    except SpecError as exc:
        raise SparsenetError(f"{source}: {exc}") from None


def _spec_from_dict(data: Any) -> ModuleSpec | NetworkSpec:
    if not isinstance(data, dict):
        raise SpecError("", "(top level)", type(data).__name__, "expected a JSON object")
    if data.get("format") != FORMAT:
        raise SpecError("", "format", data.get("format"),
                        f"expected {FORMAT!r} (written by `sparsenet build --out`)")
    version = data.get("version")
    if version != VERSION:
        raise SpecError("", "version", version,
                        f"this release of sparsenet reads version {VERSION}"
                        + (" (the file was written by a newer release)" if _is_int(version) and version > VERSION else ""))
    kind = data.get("kind")
    if kind not in KINDS:
        raise SpecError("", "kind", kind, f"expected one of {list(KINDS)}")
    if kind == "module":
        return _module_from(data, "", top_level=True)
    d = _fields("", data, ("stem", "modules"), ("format", "version", "kind", "pool_after", "head", "provenance"))
    stem = _make(StemSpec, "stem", _fields("stem", d["stem"], (),
                                            ("in_channels", "widths", "kernel_sizes", "strides", "pool", "batch_norm")))
    modules = [_module_from(m, f"modules[{i}]", top_level=False)
               for i, m in enumerate(_list("", "modules", d["modules"]))]
    kwargs: dict[str, Any] = {"stem": stem, "modules": modules}
    if "head" in d:
        kwargs["head"] = _make(HeadSpec, "head", _fields("head", d["head"], (), ("num_classes", "dropout")))
    for name in ("pool_after", "provenance"):
        if name in d:
            kwargs[name] = d[name]
    return _make(NetworkSpec, "", kwargs)


def load_spec(path: str | Path, kind: str | None = None) -> ModuleSpec | NetworkSpec:
    """Read and validate a spec file; ``kind`` ('module' or 'network') insists on one kind."""
    path = Path(path)
    if not path.is_file():
        raise SparsenetError(f"spec file {path} {why_no_file(path)}; make one with `sparsenet build --discovery ... --out {path.name}`")
    data = read_json(path, "a spec file")
    spec = spec_from_dict(data, source=str(path))
    if kind is not None and spec_kind(spec) != kind:
        raise SparsenetError(f"{path} holds a {spec_kind(spec)} spec; expected a {kind} spec")
    return spec


def spec_kind(spec: ModuleSpec | NetworkSpec) -> str:
    return "module" if isinstance(spec, ModuleSpec) else "network"


__all__ = [
    "FORMAT", "VERSION", "SpecError", "BranchSpec", "PoolSpec", "ModuleSpec", "StemSpec", "HeadSpec",
    "NetworkSpec", "check_placement", "check_fits", "module_macs", "module_params", "network_macs",
    "network_params", "module_input_sizes", "spec_to_dict", "spec_from_dict", "save_spec", "load_spec",
    "spec_kind", "branch_macs_per_pixel",
]
