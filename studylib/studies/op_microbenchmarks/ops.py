"""The operation registry of notebook ``03-op-microbenchmarks``: GNN operations, each with its
PyTorch Geometric implementation(s) and its native PyTorch counterpart(s), and how to build inputs
of a given size, sparsity, index reduce factor and index distribution.

After Hosseini, Simini, Vishwanath, *Operation-Level Performance Benchmarking of Graph Neural
Networks for Scientific Applications* (arXiv 2207.09955, Sec. III-IV), who profiled PyG models,
picked the operations that dominate them (scatter reductions, sparse products, coalesce,
transpose, gather/index_select/index_add_, sort, addmm, ...) and timed each across input
sparsity, index reduce factor and size.

Vocabulary
----------
``size``
    the number of elements of an operation's main input before sparsification (times the
    operation's :attr:`Operation.size_scale`); e.g. the ``[rows, feature_dim]`` message tensor of a
    scatter, the ``n x n`` matrix of a sparse product (``n = isqrt(size)``), the ``[E, F]``
    messages of a GNN layer (``E = size // F`` edges).
``sparsity``
    the fraction of entries of the main input set to zero, in ``[0, 1)``. Entries are zeroed
    independently with probability ``sparsity`` (what the paper did with dropout, without its
    rescaling of the survivors). Dense operations keep the zeros in a dense tensor; the sparse
    formats (COO, CSR, ``EdgeIndex``) store only the non-zeros, so their ``nnz`` shrinks.
``reduce_factor``
    index reduce factor ``rf``: an index over ``rows`` entries takes values in
    ``[0, rows // rf)``, so ``rf`` entries on average land in one output row (for a GNN layer,
    the average in-degree ``E / N``).
``index_distribution``
    ``uniform`` (independent uniform indices), ``sorted`` (the same, sorted: CSR-like locality)
    or ``powerlaw`` (log-uniform, Zipf-like group sizes with exponent 1, group ids shuffled).

Every implementation is a pair ``prepare(inputs) -> state`` (untimed: format conversion, module
construction) and ``run(state) -> output`` (the timed call). :func:`build_inputs` builds the
inputs outside any timed region; :func:`canonical` turns any implementation's output into a
comparable form (dense tensor, or a tuple of tensors) so that tests can check that all
implementations of an operation agree.

Implementation roles
--------------------
``pyg`` (:data:`PYG`)
    the kernels of PyG's extension libraries, as gnn-ops-benchmark (the paper's code,
    ``ryienh/gnn-ops-benchmark``) called them: ``torch_scatter.scatter_*`` / ``segment_csr``,
    ``torch_sparse`` (``SparseTensor`` products, ``coalesce``, ``transpose``, ``spmm``), ``pyg_lib``.
    The PyG side of the PyG-vs-native comparison. Available only when the extension imports
    (``make setup`` installs ``torch-scatter`` 2.1.2 and ``torch-sparse`` 0.6.18).
``pyg-utils`` (:data:`PYG_UTILS`)
    PyG's own torch-level utilities and modules (``torch_geometric.utils.scatter``, ``EdgeIndex``,
    ``GCNConv``...): they dispatch to an extension or to native PyTorch depending on the
    device, the dtype and what is installed (e.g. ``torch_geometric.utils.scatter`` calls
    ``Tensor.scatter_add_`` for sum and mean even with ``torch_scatter`` installed, PyG 2.8).
``native``
    PyTorch alone.

Which kernel library actually ran is detected per implementation (:func:`detect_backend`:
``kernel_library`` is ``torch_scatter``, ``torch_sparse``, ``pyg-lib`` or ``torch``), not taken from
the declaration: ``torch_scatter.scatter(reduce="sum")`` is ``Tensor.scatter_add_`` and
``torch_sparse``'s sparse-sparse product is ``torch.sparse.mm``, so those PyG cells compare a
kernel with itself ("same kernel").
"""

from __future__ import annotations

import functools
import importlib
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from studylib import memory

#: Roles of an implementation (see the module docstring): PyG's extension kernels, PyG's
#: torch-level utilities and modules, native PyTorch.
PYG = "pyg"
PYG_UTILS = "pyg-utils"
NATIVE = "native"
ROLES = (PYG, PYG_UTILS, NATIVE)

#: Kernel libraries a measured implementation can have run (:func:`detect_backend`); ``torch`` is
#: native PyTorch (every aten operator).
KERNEL_LIBRARIES = ("torch_scatter", "torch_sparse", "pyg-lib", "torch")

#: Operator namespaces of the extension libraries in the dispatcher (profiler op names).
_LIBRARY_PREFIXES = {"torch_scatter::": "torch_scatter", "torch_sparse::": "torch_sparse", "pyg::": "pyg-lib"}

#: Index distributions understood by :func:`make_index`.
INDEX_DISTRIBUTIONS = ("uniform", "sorted", "powerlaw")

#: Bytes of an index entry (int64).
INDEX_BYTES = 8

#: Elements per chunk when sparsifying (bounds the temporary random tensor to 64 MiB of fp32).
_CHUNK = 1 << 24


class InputTooLargeError(memory.Refused):
    """The inputs of a configuration would not fit in the memory allowed for them (refused before
    anything is built).

    A :class:`studylib.memory.Refused` (a ``MemoryError``): the study's sweep records the
    configuration as ``status="refused"`` with the estimate and the memory available
    (:func:`studylib.memory.refused_row`) and goes on. ``decision`` holds the numbers."""

    def __init__(self, decision: memory.Decision, message: str):
        MemoryError.__init__(self, message)
        self.decision = decision


class UnsupportedError(RuntimeError):
    """An implementation cannot run this configuration (dtype, device or missing extension)."""


# --------------------------------------------------------------------------------------------
# Optional extensions
# --------------------------------------------------------------------------------------------

@functools.cache
def _module(name: str):
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or an OSError from a binary built for another torch
        return None


def extensions() -> dict[str, str | None]:
    """Installed version of each optional PyG extension (``None`` when not importable):
    ``torch_scatter``, ``torch_sparse``, ``pyg_lib``, plus ``torch_geometric`` itself."""
    out = {}
    for name in ("torch_geometric", "torch_scatter", "torch_sparse", "pyg_lib"):
        mod = _module(name)
        out[name] = getattr(mod, "__version__", "unknown") if mod is not None else None
    return out


def _has(name: str) -> bool:
    return _module(name) is not None


# --------------------------------------------------------------------------------------------
# Input generation
# --------------------------------------------------------------------------------------------

def check_sparsity(sparsity: float) -> float:
    """Return ``sparsity`` as a float if it lies in ``[0, 1)``; ``ValueError`` otherwise (1.0 would
    leave no non-zero entry, a negative value has no meaning)."""
    s = float(sparsity)
    if not (0.0 <= s < 1.0) or math.isnan(s):
        raise ValueError(f"sparsity must be in [0, 1) (fraction of zeroed entries), got {sparsity!r}")
    return s


def make_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded with ``seed`` (inputs never touch the global RNG)."""
    g = torch.Generator(device=torch.device(device))
    g.manual_seed(int(seed))
    return g


def make_sparse(x: torch.Tensor, sparsity: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Zero each entry of ``x`` independently with probability ``sparsity``, in place, and return
    ``x``. Works chunk by chunk (at most 2**24 random numbers at a time), so a tensor that fills
    most of the memory can be sparsified. Like dropout without rescaling the kept entries.

    Raises ``ValueError`` for a sparsity outside ``[0, 1)``."""
    s = check_sparsity(sparsity)
    if s == 0.0 or x.numel() == 0:
        return x
    flat = x.view(-1)
    for chunk in flat.split(_CHUNK):
        mask = torch.rand(chunk.shape, generator=generator, device=chunk.device) < s
        chunk.masked_fill_(mask, 0)
    return x


def density(x: torch.Tensor) -> float:
    """Fraction of non-zero entries of a dense tensor (1 - measured sparsity)."""
    return float(torch.count_nonzero(x)) / max(1, x.numel())


def make_index(length: int, num_groups: int, distribution: str = "uniform",
               generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> torch.Tensor:
    """An int64 index of ``length`` entries with values in ``[0, num_groups)``.

    ``uniform``: i.i.d. uniform; ``sorted``: the same, sorted ascending; ``powerlaw``: log-uniform
    ``floor((G + 1) ** u) - 1`` for uniform ``u`` (group ``k`` has probability about
    ``1 / ((k + 1) ln(G + 1))``: Zipf with exponent 1), then the group ids are permuted at random so
    that the large groups are not the first rows. Raises ``ValueError`` for an unknown
    distribution or ``num_groups < 1``."""
    if distribution not in INDEX_DISTRIBUTIONS:
        raise ValueError(f"unknown index distribution {distribution!r}; choose one of {INDEX_DISTRIBUTIONS}")
    if num_groups < 1:
        raise ValueError(f"num_groups must be >= 1 (got {num_groups})")
    device = torch.device(device)
    if distribution == "powerlaw":
        u = torch.rand(length, generator=generator, device=device, dtype=torch.float64)
        idx = torch.exp(u * math.log(num_groups + 1)).floor_().sub_(1).clamp_(0, num_groups - 1).long()
        perm = torch.randperm(num_groups, generator=generator, device=device)
        return perm[idx]
    idx = torch.randint(0, num_groups, (length,), generator=generator, device=device)
    if distribution == "sorted":
        idx = idx.sort().values
    return idx


def index_to_ptr(index: torch.Tensor, num_groups: int) -> torch.Tensor:
    """CSR pointer (int64, ``num_groups + 1`` entries) of a *sorted* index: group ``g`` owns
    entries ``ptr[g]:ptr[g+1]``."""
    counts = torch.bincount(index, minlength=num_groups)
    ptr = torch.zeros(num_groups + 1, dtype=torch.long, device=index.device)
    torch.cumsum(counts, 0, out=ptr[1:])
    return ptr


def _values(shape, dtype, device, generator) -> torch.Tensor:
    """Uniform values in [-1, 1) (exact zeros have probability ~2**-24, so zeros come from
    :func:`make_sparse` only)."""
    x = torch.rand(shape, generator=generator, device=device, dtype=torch.float32).mul_(2).sub_(1)
    return x.to(dtype) if dtype != torch.float32 else x


# --------------------------------------------------------------------------------------------
# Registry types
# --------------------------------------------------------------------------------------------

@dataclass
class OpInputs:
    """Inputs of one configuration of one operation, built outside any timed region.

    Attributes:
        op: operation name.
        t: tensors and small objects by name (shapes in :attr:`meta`).
        numel: elements of the main input as built (see module docstring, ``size``).
        density: measured fraction of non-zero entries of the main input (1 - sparsity).
        bytes: compulsory memory traffic of one call, in bytes (inputs read once, outputs
            written once; intermediates a fused kernel could keep in cache are not counted) --
            the byte count of a STREAM-style bandwidth figure.
        flops: floating-point operations of one call (multiply and add counted separately).
        meta: shapes and counts (``rows``, ``features``, ``groups``, ``n``, ``nnz``, ``edges``...).
    """

    op: str
    t: dict
    numel: int
    density: float
    bytes: float
    flops: float
    meta: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Impl:
    """One implementation of an operation.

    Attributes:
        name: short label, e.g. ``"pyg.utils.scatter"`` or ``"torch.scatter_reduce_"``.
        role: ``"pyg"`` (a kernel of PyG's extension libraries), ``"pyg-utils"`` (PyG's
            torch-level utilities and modules) or ``"native"`` (PyTorch only); see :data:`ROLES`.
        run: the timed call, ``run(state) -> output``.
        prepare: untimed preparation, ``prepare(inputs) -> state`` (default: the inputs).
        requires: importable module this implementation needs (``torch_scatter``...), or None.
        backend: what this implementation calls, in words (the kernels that actually ran are
            detected per measurement with :func:`detect_backend`).
    """

    name: str
    role: str
    run: Callable
    prepare: Callable | None = None
    requires: str | None = None
    backend: str = ""

    def available(self) -> bool:
        """Whether the module it needs (if any) imports."""
        return self.requires is None or _has(self.requires)

    def state(self, inputs: OpInputs):
        """The untimed preparation applied to ``inputs``."""
        return self.prepare(inputs) if self.prepare is not None else inputs


@dataclass(frozen=True)
class Operation:
    """A GNN operation with its implementations and its input builder.

    Attributes:
        name: registry key, e.g. ``"scatter_sum"``.
        family: ``scatter``, ``segment``, ``sparse``, ``indexing``, ``sort``, ``dense`` or ``layer``.
        description: what it computes.
        build: ``build(size, sparsity, reduce_factor, dtype, device, distribution, feature_dim,
            generator, heads) -> OpInputs``.
        footprint: ``footprint(size, reduce_factor, element_bytes, feature_dim) -> bytes``, an
            estimate of the peak memory of building the inputs and running one call (used to
            reject sizes that cannot fit, and to size the paper profile).
        impls: implementations; the first available of each role is the *primary* pair compared in
            the ratio figure.
        uses_reduce_factor: whether ``reduce_factor`` changes the inputs (else only 1 is swept).
        size_scale: the operation runs at ``size * size_scale`` (sparse-sparse and dense matrix
            products are cubic in ``n`` and run 16x smaller; coalesce runs 8x smaller, so that its
            entries repeated by the largest reduce factor, 8, number about ``size``).
        dtypes: dtypes it supports (sparse kernels lack half precision on CPU).
    """

    name: str
    family: str
    description: str
    build: Callable
    footprint: Callable
    impls: tuple[Impl, ...]
    uses_reduce_factor: bool = True
    size_scale: float = 1.0
    dtypes: tuple[torch.dtype, ...] = (torch.float32, torch.float16, torch.bfloat16)

    def implementations(self, available_only: bool = True) -> list[Impl]:
        """Implementations (only those whose extension imports, unless ``available_only=False``)."""
        return [i for i in self.impls if i.available() or not available_only]

    def primary(self, role: str) -> Impl | None:
        """The first available implementation of ``role`` (one of :data:`ROLES`), or None."""
        return next((i for i in self.implementations() if i.role == role), None)

    def impl(self, name: str) -> Impl:
        """The implementation called ``name``; ``ValueError`` listing the known ones otherwise."""
        for i in self.impls:
            if i.name == name:
                return i
        raise ValueError(f"{self.name} has no implementation {name!r}; known: {[i.name for i in self.impls]}")


REGISTRY: dict[str, Operation] = {}


def _register(op: Operation) -> Operation:
    REGISTRY[op.name] = op
    return op


def operation_names() -> list[str]:
    """Names of the registered operations, in registry order."""
    return list(REGISTRY)


def get(name: str) -> Operation:
    """The operation called ``name``. Raises ``ValueError`` naming the known operations otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown operation {name!r}; known operations: {', '.join(REGISTRY)}") from None


def check_names(names) -> list[str]:
    """Validate a list of operation names (``ValueError`` naming the unknown ones)."""
    names = list(names)
    bad = [n for n in names if n not in REGISTRY]
    if bad:
        raise ValueError(f"unknown operation(s) {bad}; known operations: {', '.join(REGISTRY)}")
    return names


# --------------------------------------------------------------------------------------------
# Building inputs
# --------------------------------------------------------------------------------------------

def available_memory_bytes(device: torch.device | str = "cpu") -> int:
    """Free memory on ``device`` (bytes): :func:`studylib.memory.available_bytes` (free device memory
    on a GPU; psutil's available memory, bounded by the process's cgroup limit, on the CPU)."""
    return memory.available_bytes(str(torch.device(device)))


def effective_size(op: Operation, size: int) -> int:
    """The size an operation actually runs at: ``max(16, int(size * op.size_scale))``."""
    return max(16, int(size * op.size_scale))


def size_for_memory(op: str | Operation, fraction: float, *, device: torch.device | str = "cpu",
                    dtype: torch.dtype = torch.float32, reduce_factor: int = 1, feature_dim: int = 32,
                    available: int | None = None) -> int:
    """The largest power-of-two nominal ``size`` whose estimated footprint (see
    :attr:`Operation.footprint`) stays within ``fraction`` of the free memory of ``device``: how
    the paper profile fills most of a device, as the paper did (">95% memory utilisation")."""
    op = get(op) if isinstance(op, str) else op
    if not (0 < fraction <= 1):
        raise ValueError(f"fraction must be in (0, 1] (got {fraction})")
    budget = fraction * (available if available is not None else available_memory_bytes(device))
    w = torch.empty((), dtype=dtype).element_size()
    size = 16
    while op.footprint(effective_size(op, size * 2), reduce_factor, w, feature_dim) <= budget and size < 2**40:
        size *= 2
    return size


def build_inputs(op: str | Operation, size: int, sparsity: float, *, reduce_factor: int = 1,
                 dtype: torch.dtype = torch.float32, device: torch.device | str = "cpu",
                 index_distribution: str = "uniform", feature_dim: int = 32, heads: int = 4, seed: int = 0,
                 max_memory_fraction: float = 0.8, available: int | None = None) -> OpInputs:
    """Build the inputs of operation ``op`` at nominal ``size`` and ``sparsity``.

    Args:
        op: operation name or :class:`Operation`.
        size: nominal number of elements of the main input (> 0); the operation runs at
            :func:`effective_size`.
        sparsity: fraction of zeroed entries, in ``[0, 1)``.
        reduce_factor: index reduce factor (>= 1); ignored by operations without an index.
        dtype: floating dtype of the values (indices are int64).
        device: where the inputs live.
        index_distribution: see :func:`make_index`.
        feature_dim: feature width ``F`` of row-wise operations and GNN layers.
        heads: attention heads of the GAT layer (must divide ``feature_dim``).
        seed: seed of the private generator used for all random inputs.
        max_memory_fraction: refuse to build when the estimated footprint exceeds this fraction
            of the free memory (``available`` bytes, default: measured now).

    Returns the :class:`OpInputs`. Raises ``ValueError`` for an unknown operation, a sparsity
    outside ``[0, 1)``, a non-positive size or reduce factor, an unknown index distribution or a
    dtype the operation does not support; :class:`InputTooLargeError` (a ``MemoryError``) naming
    the estimate and the free memory when the size does not fit.
    """
    op = get(op) if isinstance(op, str) else op
    s = check_sparsity(sparsity)
    if int(size) <= 0:
        raise ValueError(f"size must be > 0 (got {size})")
    if int(reduce_factor) < 1:
        raise ValueError(f"reduce_factor must be >= 1 (got {reduce_factor})")
    if index_distribution not in INDEX_DISTRIBUTIONS:
        raise ValueError(f"unknown index distribution {index_distribution!r}; choose one of {INDEX_DISTRIBUTIONS}")
    if feature_dim <= 0 or feature_dim % heads:
        raise ValueError(f"feature_dim must be > 0 and divisible by heads (got {feature_dim}, heads={heads})")
    if dtype not in op.dtypes:
        raise ValueError(f"{op.name} does not support dtype {dtype} (supports {op.dtypes})")
    device = torch.device(device)
    n = effective_size(op, int(size))
    w = torch.empty((), dtype=dtype).element_size()
    need = op.footprint(n, int(reduce_factor), w, feature_dim)
    free = available if available is not None else available_memory_bytes(device)
    decision = memory.decide({"inputs and one call": int(need)}, what=f"{op.name} at size {size:,}",
                             device=device.type, fraction=max_memory_fraction, available=int(free))
    if not decision.fits:
        raise InputTooLargeError(
            decision, f"{op.name} at size {size:,} needs about {need / 2**30:.2f} GiB on {device.type}, over "
                      f"{max_memory_fraction:.0%} of the {free / 2**30:.1f} GiB free; choose a smaller size")
    gen = make_generator(seed, device)
    rf = int(reduce_factor) if op.uses_reduce_factor else 1
    inp = op.build(n, s, rf, dtype, device, index_distribution, feature_dim, gen, heads)
    inp.meta.setdefault("reduce_factor", rf)
    return inp


def _to_dense(out, inputs: OpInputs | None):
    if isinstance(out, torch.Tensor):
        if out.layout != torch.strided:
            out = out.to_dense()
        return out.detach().to(torch.float64) if out.is_floating_point() else out.detach()
    if hasattr(out, "to_dense") and not isinstance(out, tuple | list):  # torch_sparse.SparseTensor
        return _to_dense(out.to_dense(), inputs)
    if isinstance(out, tuple | list) and len(out) == 2 and inputs is not None and "n" in inputs.meta:
        idx, val = out  # (indices [2, nnz], values [nnz]) of an n x n matrix, or (EdgeIndex, values)
        idx = idx.as_tensor() if hasattr(idx, "as_tensor") else idx
        n = inputs.meta["n"]
        dense = torch.zeros((n, n), dtype=torch.float64, device=val.device)
        return dense.index_put_((idx[0], idx[1]), val.detach().to(torch.float64), accumulate=True)
    if isinstance(out, tuple | list):
        return tuple(_to_dense(o, inputs) for o in out)
    return out


def canonical(out, inputs: OpInputs | None = None, op: str | Operation | None = None):
    """A comparable form of an implementation's output, for checking that implementations agree.

    Sparse tensors (torch COO/CSR, ``torch_sparse.SparseTensor``) become dense; an
    ``(indices, values)`` pair of an ``n x n`` matrix (PyG's ``coalesce`` / ``sort_edge_index``,
    an ``EdgeIndex`` product) becomes the dense matrix (``inputs`` gives ``n``); for ``sort``
    only the sorted values are kept (the permutation of equal keys is not unique). Floating
    tensors are returned as float64.
    """
    name = op.name if isinstance(op, Operation) else op
    if name == "sort":
        out = out[0]
    return _to_dense(out, inputs)


# --------------------------------------------------------------------------------------------
# Shared builders
# --------------------------------------------------------------------------------------------

def _rows(size: int, f: int) -> int:
    return max(2, size // f)


def _groups(rows: int, rf: int) -> int:
    return max(1, rows // rf)


def _dense_rows(size, s, dtype, device, f, gen):
    rows = _rows(size, f)
    x = make_sparse(_values((rows, f), dtype, device, gen), s, gen)
    return x, rows


def _square(size: int) -> int:
    return max(2, math.isqrt(size))


def _sparse_matrix(size, s, dtype, device, gen):
    n = _square(size)
    a = make_sparse(_values((n, n), dtype, device, gen), s, gen)
    d = density(a)
    coo = a.to_sparse().coalesce()
    del a
    return n, coo, d


def _csr(coo: torch.Tensor) -> torch.Tensor:
    """``coo.to_sparse_csr()`` without torch's one-time "CSR support is in beta" warning."""

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return coo.to_sparse_csr()


def _fp_rows(size, rf, w, f, extra_per_row=0.0, out_factor=1.0):
    rows = _rows(size, f)
    groups = _groups(rows, rf)
    return rows * f * w * 2 + rows * (INDEX_BYTES + extra_per_row) + groups * f * w * (1 + out_factor) + 2**20


# --------------------------------------------------------------------------------------------
# Scatter reductions (sum / mean / max / min) of rows of src into index groups
# --------------------------------------------------------------------------------------------

def _build_scatter(size, s, rf, dtype, device, dist, f, gen, heads):
    src, rows = _dense_rows(size, s, dtype, device, f, gen)
    groups = _groups(rows, rf)
    index = make_index(rows, groups, dist, gen, device)
    w = src.element_size()
    return OpInputs("scatter", {"src": src, "index": index, "dim_size": groups}, numel=src.numel(),
                    density=density(src), bytes=rows * f * w + rows * INDEX_BYTES + groups * f * w,
                    flops=rows * f, meta={"rows": rows, "features": f, "groups": groups})


def _pyg_scatter(reduce):
    def run(i):
        from torch_geometric.utils import scatter  # lazy: PyG's import is heavy and loads its optional extensions

        return scatter(i.t["src"], i.t["index"], 0, dim_size=i.t["dim_size"], reduce=reduce)
    return run


def _ts_scatter(reduce):
    def run(i):
        import torch_scatter  # lazy: optional compiled extension

        return torch_scatter.scatter(i.t["src"], i.t["index"], 0, dim_size=i.t["dim_size"], reduce=reduce)
    return run


def _native_scatter(reduce):
    def run(i):
        src, index = i.t["src"], i.t["index"]
        out = src.new_zeros((i.t["dim_size"], src.size(1)))
        idx = index.view(-1, 1).expand_as(src)
        if reduce == "sum":
            return out.scatter_add_(0, idx, src)
        return out.scatter_reduce_(0, idx, src, reduce={"mean": "mean", "max": "amax", "min": "amin"}[reduce],
                                   include_self=False)
    return run


def _native_index_add_sum(i):
    src = i.t["src"]
    return src.new_zeros((i.t["dim_size"], src.size(1))).index_add_(0, i.t["index"], src)


for _r in ("sum", "mean", "max", "min"):
    _impls = [
        Impl("pyg.utils.scatter", PYG_UTILS, _pyg_scatter(_r),
             backend="torch_geometric.utils.scatter (torch_scatter on GPU for min/max with grad, else "
                     "Tensor.scatter_add_ / scatter_reduce_)"),
        Impl("torch_scatter.scatter", PYG, _ts_scatter(_r), requires="torch_scatter", backend="torch_scatter"),
        Impl("torch.scatter_reduce_" if _r != "sum" else "torch.scatter_add_", NATIVE, _native_scatter(_r),
             backend="Tensor.scatter_add_" if _r == "sum" else "Tensor.scatter_reduce_(include_self=False)"),
    ]
    if _r == "sum":
        _impls.append(Impl("torch.index_add_", NATIVE, _native_index_add_sum, backend="Tensor.index_add_"))
    _register(Operation(
        f"scatter_{_r}", "scatter",
        f"{_r} of the rows of src [rows, F] into rows // rf groups given by an index (message aggregation)",
        _build_scatter, lambda n, rf, w, f: _fp_rows(n, rf, w, f, extra_per_row=INDEX_BYTES), tuple(_impls)))


def _native_scatter_mul(i):
    src, index = i.t["src"], i.t["index"]
    # ones where no entry lands: torch_scatter.scatter_mul's and PyG's convention
    return src.new_ones((i.t["dim_size"], src.size(1))).scatter_reduce_(0, index.view(-1, 1).expand_as(src), src,
                                                                        reduce="prod", include_self=True)


_register(Operation(
    "scatter_mul", "scatter",
    "product of the rows of src [rows, F] into rows // rf groups given by an index (1 where no row lands)",
    _build_scatter, lambda n, rf, w, f: _fp_rows(n, rf, w, f, extra_per_row=INDEX_BYTES), (
        Impl("pyg.utils.scatter", PYG_UTILS, _pyg_scatter("mul"),
             backend="torch_geometric.utils.scatter(reduce='mul') (torch_scatter on GPU, else scatter_reduce_ prod)"),
        Impl("torch_scatter.scatter", PYG, _ts_scatter("mul"), requires="torch_scatter",
             backend="torch_scatter.scatter_mul -> torch_scatter::scatter_mul"),
        Impl("torch.scatter_reduce_(prod)", NATIVE, _native_scatter_mul,
             backend="Tensor.scatter_reduce_(reduce='prod', include_self=True) on ones"),
    )))


# --------------------------------------------------------------------------------------------
# Scatter with a random index per element (gnn-ops-benchmark's scatter inputs), along dim 0 or 1
# --------------------------------------------------------------------------------------------

def _build_scatter_elem(dim):
    def build(size, s, rf, dtype, device, dist, f, gen, heads):
        n = _square(size)
        src = make_sparse(_values((n, n), dtype, device, gen), s, gen)
        groups = _groups(n, rf)
        index = make_index(n * n, groups, dist, gen, device).view(n, n)
        w = src.element_size()
        return OpInputs(f"scatter_elem_dim{dim}", {"src": src, "index": index, "dim": dim, "dim_size": groups},
                        numel=n * n, density=density(src), bytes=n * n * (w + INDEX_BYTES) + groups * n * w,
                        flops=float(n * n), meta={"n": n, "groups": groups, "dim": dim})
    return build


def _ts_scatter_elem(reduce):
    def run(i):
        import torch_scatter  # lazy: optional compiled extension

        return torch_scatter.scatter(i.t["src"], i.t["index"], i.t["dim"], dim_size=i.t["dim_size"], reduce=reduce)
    return run


def _native_scatter_elem(reduce):
    def run(i):
        src, index, dim = i.t["src"], i.t["index"], i.t["dim"]
        shape = list(src.shape)
        shape[dim] = i.t["dim_size"]
        out = src.new_zeros(shape)
        if reduce == "sum":
            return out.scatter_add_(dim, index, src)
        return out.scatter_reduce_(dim, index, src, reduce={"mean": "mean", "max": "amax", "min": "amin"}[reduce],
                                   include_self=False)
    return run


for _dim, _reduces in ((0, ("sum", "mean", "max", "min")), (1, ("sum", "max"))):
    for _r in _reduces:
        _register(Operation(
            f"scatter_{_r}_elem" + ("_dim1" if _dim else ""), "scatter",
            f"{_r} of the entries of a square src [n, n] into n // rf {'rows' if _dim == 0 else 'columns'} "
            f"given by a random index per element [n, n], along dim {_dim}, n = isqrt(size)",
            _build_scatter_elem(_dim), lambda n, rf, w, f: 3 * n * w + 2 * n * INDEX_BYTES + 2**20, (
                Impl("torch_scatter.scatter", PYG, _ts_scatter_elem(_r), requires="torch_scatter",
                     backend=f"torch_scatter.scatter(reduce='{_r}') with an index per element"),
                Impl("torch.scatter_add_" if _r == "sum" else "torch.scatter_reduce_", NATIVE, _native_scatter_elem(_r),
                     backend="Tensor.scatter_add_" if _r == "sum" else "Tensor.scatter_reduce_(include_self=False)"),
            )))


# --------------------------------------------------------------------------------------------
# Segment reductions (CSR: the index is sorted and given as pointers)
# --------------------------------------------------------------------------------------------

def _build_segment(size, s, rf, dtype, device, dist, f, gen, heads):
    src, rows = _dense_rows(size, s, dtype, device, f, gen)
    groups = _groups(rows, rf)
    index = make_index(rows, groups, dist, gen, device).sort().values
    ptr = index_to_ptr(index, groups)
    w = src.element_size()
    return OpInputs("segment", {"src": src, "ptr": ptr, "index": index, "dim_size": groups}, numel=src.numel(),
                    density=density(src), bytes=rows * f * w + (groups + 1) * INDEX_BYTES + groups * f * w,
                    flops=rows * f, meta={"rows": rows, "features": f, "groups": groups})


def _pyg_segment(reduce):
    def run(i):
        from torch_geometric.utils import segment  # lazy: PyG's import is heavy and loads its optional extensions

        return segment(i.t["src"], i.t["ptr"], reduce=reduce)
    return run


def _ts_segment(reduce):
    def run(i):
        import torch_scatter  # lazy: optional compiled extension

        return torch_scatter.segment_csr(i.t["src"], i.t["ptr"], reduce=reduce)
    return run


def _native_segment(reduce):
    def run(i):
        out = torch.segment_reduce(i.t["src"], reduce, offsets=i.t["ptr"], axis=0,
                                   initial=0 if reduce in ("sum", "mean") else None)
        if reduce in ("max", "min"):  # empty segments are 0 in PyG's convention, +-inf here
            out = torch.where(out.isinf(), 0, out)
        return out
    return run


for _r in ("sum", "mean", "max", "min"):
    _register(Operation(
        f"segment_{_r}", "segment",
        f"{_r} over contiguous row segments of src [rows, F] given by CSR pointers (sorted index)",
        _build_segment, lambda n, rf, w, f: _fp_rows(n, rf, w, f, extra_per_row=INDEX_BYTES), (
            Impl("pyg.utils.segment", PYG_UTILS, _pyg_segment(_r),
                 backend="torch_geometric.utils.segment (torch_scatter.segment_csr when installed, "
                         "else torch._segment_reduce)"),
            Impl("torch_scatter.segment_csr", PYG, _ts_segment(_r), requires="torch_scatter",
                 backend="torch_scatter.segment_csr"),
            Impl("torch.segment_reduce", NATIVE, _native_segment(_r), backend="torch.segment_reduce (offsets)"),
            Impl("torch.scatter_reduce_(sorted)", NATIVE, _native_scatter(_r),
                 backend="Tensor.scatter_add_/scatter_reduce_ on the sorted index"),
        )))


# --------------------------------------------------------------------------------------------
# Indexing: gather, index_select along each dimension, index_add_
# --------------------------------------------------------------------------------------------

def _build_index_select(dim):
    def build(size, s, rf, dtype, device, dist, f, gen, heads):
        src, rows = _dense_rows(size, s, dtype, device, f, gen)
        w = src.element_size()
        if dim == 0:
            groups = _groups(rows, rf)
            index = make_index(rows, groups, dist, gen, device)
            traffic = rows * INDEX_BYTES + groups * f * w + rows * f * w
            meta = {"rows": rows, "features": f, "groups": groups}
        else:
            groups = max(1, f // rf)
            index = make_index(f, groups, dist, gen, device)
            # selecting columns of a row-major matrix touches every cache line of every row
            traffic = f * INDEX_BYTES + rows * f * w + rows * f * w
            meta = {"rows": rows, "features": f, "groups": groups}
        return OpInputs(f"index_select_dim{dim}", {"src": src, "index": index, "dim": dim}, numel=src.numel(),
                        density=density(src), bytes=traffic, flops=0.0, meta=meta)
    return build


def _pyg_select(i):
    from torch_geometric.utils import select  # lazy: PyG's import is heavy and loads its optional extensions

    return select(i.t["src"], i.t["index"], i.t["dim"])


def _native_index_select(i):
    return i.t["src"].index_select(i.t["dim"], i.t["index"])


def _native_getitem(i):
    src, index = i.t["src"], i.t["index"]
    return src[index] if i.t["dim"] == 0 else src[:, index]


for _d in (0, 1):
    _register(Operation(
        f"index_select_dim{_d}", "indexing",
        f"select {'rows' if _d == 0 else 'columns'} of src [rows, F] by an index "
        f"({'the gather of source features in message passing' if _d == 0 else 'feature selection'})",
        _build_index_select(_d), lambda n, rf, w, f: 3 * n * w + n // f * INDEX_BYTES + 2**20, (
            Impl("pyg.utils.select", PYG_UTILS, _pyg_select, backend="torch_geometric.utils.select -> Tensor.index_select"),
            Impl("torch.index_select", NATIVE, _native_index_select, backend="Tensor.index_select"),
            Impl("torch.Tensor.__getitem__", NATIVE, _native_getitem, backend="advanced indexing (aten::index)"),
        )))


def _build_gather(size, s, rf, dtype, device, dist, f, gen, heads):
    src, rows = _dense_rows(size, s, dtype, device, f, gen)
    groups = _groups(rows, rf)
    index = make_index(rows * f, groups, dist, gen, device).view(rows, f)
    w = src.element_size()
    return OpInputs("gather", {"src": src, "index": index}, numel=src.numel(), density=density(src),
                    bytes=rows * f * INDEX_BYTES + groups * f * w + rows * f * w, flops=0.0,
                    meta={"rows": rows, "features": f, "groups": groups})


_register(Operation(
    "gather", "indexing", "torch.gather along dim 0 with an element-wise index [rows, F] into rows // rf rows",
    _build_gather, lambda n, rf, w, f: 3 * n * w + n * INDEX_BYTES * 2 + 2**20, (
        Impl("torch.gather", NATIVE, lambda i: torch.gather(i.t["src"], 0, i.t["index"]), backend="torch.gather"),
    )))


def _build_index_add(size, s, rf, dtype, device, dist, f, gen, heads):
    inp = _build_scatter(size, s, rf, dtype, device, dist, f, gen, heads)
    inp.op = "index_add"
    return inp


def _prepare_index_add(i):
    # a fresh output per preparation: the timed call accumulates into it in place
    return (i.t["src"].new_zeros((i.t["dim_size"], i.meta["features"])), i.t["index"], i.t["src"])


_register(Operation(
    "index_add", "indexing", "Tensor.index_add_ of src [rows, F] into a preallocated [rows // rf, F] output, in place",
    _build_index_add, lambda n, rf, w, f: _fp_rows(n, rf, w, f), (
        Impl("torch.index_add_", NATIVE, lambda st: st[0].index_add_(0, st[1], st[2]), prepare=_prepare_index_add,
             backend="Tensor.index_add_ (in place into a preallocated output, accumulating over calls)"),
    )))


# --------------------------------------------------------------------------------------------
# Fused index reductions (gnn-ops-benchmark's fused_index_*_reduce): eager vs torch.jit.script
# --------------------------------------------------------------------------------------------

def index_add_select_sum(x: torch.Tensor, dim: int, index: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """``index_add`` then ``index_select`` then ``sum``: ``torch.index_add(x, dim, index, other)``,
    the rows (dim 0) or columns (dim 1) ``index`` of the result, summed along ``dim``. The chain of
    gnn-ops-benchmark's ``benchmark_fused_index_add_reduce.py`` (ryienh/gnn-ops-benchmark).

    Args: x, other: ``[n, n]``; index: int64 ``[k]`` with values in ``[0, n)``. Returns ``[n]``."""
    out = torch.index_add(x, dim, index, other)
    return torch.index_select(out, dim, index).sum(dim)


def index_select_sum(x: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """``index_select`` then ``sum`` of everything: the chain of gnn-ops-benchmark's
    ``benchmark_fused_index_select_reduce.py``. Args: x ``[n, n]``; index int64 ``[k]`` in ``[0, n)``.
    Returns a scalar tensor."""
    return torch.index_select(x, dim, index).sum()


@functools.cache
def _scripted(name: str):
    """``torch.jit.script`` of one of the chains above (compiled once, on first use)."""
    return torch.jit.script({"index_add_select_sum": index_add_select_sum, "index_select_sum": index_select_sum}[name])


def _build_fused(kind):
    def build(size, s, rf, dtype, device, dist, f, gen, heads):
        n = _square(size)
        x = make_sparse(_values((n, n), dtype, device, gen), s, gen)
        # add-reduce: n indices into [0, n) (upstream: no reduce factor); select-reduce: n // rf indices
        k = n if kind == "add" else max(1, n // rf)
        index = make_index(k, n, dist, gen, device)
        w = x.element_size()
        t = {"x": x, "index": index, "dim": 0}
        if kind == "add":
            t["other"] = x.clone()
            traffic, fl = 3 * n * n * w + 2 * k * INDEX_BYTES + k * n * w + n * w, 2.0 * k * n
        else:
            traffic, fl = k * n * w + k * INDEX_BYTES, float(k * n)
        return OpInputs(f"fused_index_{kind}", t, numel=n * n, density=density(x), bytes=traffic, flops=fl,
                        meta={"n": n, "indices": k})
    return build


def _fused_run(name, scripted):
    def run(i):
        fn = _scripted(name) if scripted else (index_add_select_sum if name == "index_add_select_sum"
                                                 else index_select_sum)
        if name == "index_add_select_sum":
            return fn(i.t["x"], i.t["dim"], i.t["index"], i.t["other"])
        return fn(i.t["x"], i.t["dim"], i.t["index"])
    return run


_register(Operation(
    "fused_index_add_reduce", "fused",
    "index_add of other into x [n, n] at n random rows, index_select of those rows, sum along dim 0 "
    "(eager vs torch.jit.script), n = isqrt(size)",
    _build_fused("add"), lambda n, rf, w, f: 5 * n * w + 2**20, (
        Impl("eager", NATIVE, _fused_run("index_add_select_sum", False), backend="index_add, index_select, sum (eager)"),
        Impl("torch.jit.script", NATIVE, _fused_run("index_add_select_sum", True),
             backend="the same chain as one torch.jit.script function"),
    ), uses_reduce_factor=False))


_register(Operation(
    "fused_index_select_reduce", "fused",
    "index_select of n // rf random rows of x [n, n], then sum (eager vs torch.jit.script), n = isqrt(size)",
    _build_fused("select"), lambda n, rf, w, f: 3 * n * w + 2**20, (
        Impl("eager", NATIVE, _fused_run("index_select_sum", False), backend="index_select, sum (eager)"),
        Impl("torch.jit.script", NATIVE, _fused_run("index_select_sum", True),
             backend="the same chain as one torch.jit.script function"),
    )))


# --------------------------------------------------------------------------------------------
# Sort of an int64 index vector (the first step of coalesce and CSR conversion)
# --------------------------------------------------------------------------------------------

def _build_sort(size, s, rf, dtype, device, dist, f, gen, heads):
    groups = _groups(size, rf)
    x = make_index(size, groups, dist, gen, device)
    if s > 0:
        make_sparse(x, s, gen)
    return OpInputs("sort", {"x": x, "max_value": groups}, numel=size, density=density(x),
                    bytes=3 * size * INDEX_BYTES, flops=0.0, meta={"length": size, "groups": groups})


def _pyg_index_sort(i):
    from torch_geometric.utils import index_sort  # lazy: PyG's import is heavy and loads its optional extensions

    return index_sort(i.t["x"], max_value=i.t["max_value"])


_register(Operation(
    "sort", "sort", "sort an int64 index vector of `size` entries with values in [0, size // rf) (values and permutation)",
    _build_sort, lambda n, rf, w, f: 4 * n * INDEX_BYTES + 2**20, (
        Impl("pyg.utils.index_sort", PYG_UTILS, _pyg_index_sort,
             backend="torch_geometric.utils.index_sort (pyg_lib radix sort when installed, else Tensor.sort)"),
        Impl("torch.sort", NATIVE, lambda i: torch.sort(i.t["x"]), backend="torch.sort"),
        Impl("torch.sort(stable)", NATIVE, lambda i: torch.sort(i.t["x"], stable=True), backend="torch.sort(stable=True)"),
    ), dtypes=(torch.float32, torch.float16, torch.bfloat16)))


# --------------------------------------------------------------------------------------------
# Dense: addmm (the linear layer)
# --------------------------------------------------------------------------------------------

def _build_addmm(size, s, rf, dtype, device, dist, f, gen, heads):
    x, rows = _dense_rows(size, s, dtype, device, f, gen)
    weight = _values((f, f), dtype, device, gen) / math.sqrt(f)
    bias = _values((f,), dtype, device, gen)
    w = x.element_size()
    return OpInputs("addmm", {"x": x, "weight": weight, "bias": bias}, numel=x.numel(), density=density(x),
                    bytes=2 * rows * f * w + (f * f + f) * w, flops=2.0 * rows * f * f + rows * f,
                    meta={"rows": rows, "features": f})


def _prepare_pyg_linear(i):
    from torch_geometric.nn import Linear  # lazy: PyG's import is heavy and loads its optional extensions

    lin = Linear(i.meta["features"], i.meta["features"]).to(device=i.t["x"].device, dtype=i.t["x"].dtype)
    with torch.no_grad():
        lin.weight.copy_(i.t["weight"])
        lin.bias.copy_(i.t["bias"])
    lin.eval()
    return (lin, i.t["x"])


def _run_pyg_linear(state):
    lin, x = state
    with torch.no_grad():
        return lin(x)


_register(Operation(
    "addmm", "dense", "x [rows, F] @ W^T + b with W [F, F] (the linear layer of a GNN)",
    _build_addmm, lambda n, rf, w, f: 3 * n * w + 2**20, (
        Impl("pyg.nn.Linear", PYG_UTILS, _run_pyg_linear, prepare=_prepare_pyg_linear,
             backend="torch_geometric.nn.Linear -> F.linear (addmm)"),
        Impl("torch.addmm", NATIVE, lambda i: torch.addmm(i.t["bias"], i.t["x"], i.t["weight"].t()),
             backend="torch.addmm"),
    ), uses_reduce_factor=False))


def _build_matmul(size, s, rf, dtype, device, dist, f, gen, heads):
    n = _square(size)
    a = make_sparse(_values((n, n), dtype, device, gen), s, gen)
    b = _values((n, n), dtype, device, gen)
    w = a.element_size()
    return OpInputs("matmul", {"a": a, "b": b}, numel=n * n, density=density(a), bytes=3 * n * n * w,
                    flops=2.0 * n ** 3, meta={"n": n})


_register(Operation(
    "matmul", "dense", "dense torch.matmul of A [n, n] (zeros kept) by B [n, n], n = isqrt(size / 16)",
    _build_matmul, lambda n, rf, w, f: 4 * n * w + 2**20, (
        Impl("torch.matmul", NATIVE, lambda i: torch.matmul(i.t["a"], i.t["b"]), backend="torch.matmul (GEMM)"),
    ), uses_reduce_factor=False, size_scale=1 / 16))


# --------------------------------------------------------------------------------------------
# Sparse: SpMM, SpSpMM, coalesce, transpose
# --------------------------------------------------------------------------------------------

def _build_spmm(size, s, rf, dtype, device, dist, f, gen, heads):
    n, coo, d = _sparse_matrix(size, s, dtype, device, gen)
    nnz = coo._nnz()
    x = _values((n, f), dtype, device, gen)
    w = x.element_size()
    return OpInputs("spmm", {"coo": coo, "csr": _csr(coo), "x": x}, numel=n * n, density=d,
                    bytes=nnz * (w + INDEX_BYTES) + (n + 1) * INDEX_BYTES + 2 * n * f * w,
                    flops=2.0 * nnz * f, meta={"n": n, "nnz": nnz, "features": f})


def _prepare_edge_index(i):
    from torch_geometric import EdgeIndex  # lazy: PyG's import is heavy and loads its optional extensions

    coo = i.t["coo"]
    n = coo.size(0)
    ei = EdgeIndex(coo.indices(), sparse_size=(n, n), sort_order="row")
    ei.fill_cache_(no_transpose=True)
    return (ei, coo.values(), i.t.get("x"))


def _run_edge_index_spmm(state):
    ei, val, x = state
    return ei.matmul(x, input_value=val)


def _pyg_utils_spmm(i):
    from torch_geometric.utils import spmm  # lazy: PyG's import is heavy and loads its optional extensions

    return spmm(i.t["csr"], i.t["x"])


def _ts_index_spmm(i):
    import torch_sparse  # lazy: optional compiled extension

    coo = i.t["coo"]
    n = coo.size(0)
    return torch_sparse.spmm(coo.indices(), coo.values(), n, n, i.t["x"])


def _prepare_sparse_tensor(i):
    from torch_sparse import SparseTensor  # lazy: optional compiled extension

    coo = i.t["coo"]
    idx = coo.indices()
    return (SparseTensor(row=idx[0], col=idx[1], value=coo.values(), sparse_sizes=tuple(coo.shape)), i.t.get("x"))


def _run_torch_sparse_matmul(state):
    import torch_sparse  # lazy: optional compiled extension

    a, x = state
    return torch_sparse.matmul(a, x)


_register(Operation(
    "spmm", "sparse", "sparse A [n, n] (density 1 - sparsity) @ dense X [n, F], n = isqrt(size)",
    # + 2 [nnz, F] temporaries of torch_sparse.spmm(index) (the gathered rows, scaled)
    _build_spmm, lambda n, rf, w, f: (n * (2 * w + 1 + 3 * (w + 2 * INDEX_BYTES)) + 3 * math.isqrt(n) * f * w
                                      + 2 * n * f * w + 2**20), (
        Impl("pyg.EdgeIndex.matmul", PYG_UTILS, _run_edge_index_spmm, prepare=_prepare_edge_index,
             backend="torch_geometric.EdgeIndex.matmul (torch_sparse on GPU when installed, else "
                     "torch.sparse.mm on CSR built from the cached row pointer)"),
        Impl("pyg.utils.spmm(CSR)", PYG_UTILS, _pyg_utils_spmm, backend="torch_geometric.utils.spmm -> torch.sparse.mm"),
        Impl("torch_sparse.matmul", PYG, _run_torch_sparse_matmul, prepare=_prepare_sparse_tensor,
             requires="torch_sparse", backend="torch_sparse.matmul (SparseTensor) -> torch_sparse::spmm_sum"),
        Impl("torch_sparse.spmm(index)", PYG, _ts_index_spmm, requires="torch_sparse",
             backend="torch_sparse.spmm(index, value, m, n, X): index_select + torch_scatter.scatter_add "
                     "(gnn-ops-benchmark's call)"),
        Impl("torch.sparse.mm(CSR)", NATIVE, lambda i: torch.sparse.mm(i.t["csr"], i.t["x"]),
             backend="torch.sparse.mm on sparse_csr"),
        Impl("torch.sparse.mm(COO)", NATIVE, lambda i: torch.sparse.mm(i.t["coo"], i.t["x"]),
             backend="torch.sparse.mm on sparse_coo"),
    ), uses_reduce_factor=False, dtypes=(torch.float32,)))


def _build_spspmm(size, s, rf, dtype, device, dist, f, gen, heads):
    n, coo, d = _sparse_matrix(size, s, dtype, device, gen)
    nnz = coo._nnz()
    idx = coo.indices()
    rowcnt = torch.bincount(idx[0], minlength=n).double()
    colcnt = torch.bincount(idx[1], minlength=n).double()
    mults = float((colcnt * rowcnt).sum())  # A @ A: sum_k |col k of A| * |row k of A| (Gustavson)
    w = coo.values().element_size()
    exp_out = n * n * (1.0 - (1.0 - d * d) ** n)  # expected output nnz for i.i.d. sparsity
    return OpInputs("spspmm", {"coo": coo, "csr": _csr(coo)}, numel=n * n, density=d,
                    bytes=2 * (nnz * (w + INDEX_BYTES) + (n + 1) * INDEX_BYTES) + exp_out * (w + INDEX_BYTES),
                    flops=2.0 * mults, meta={"n": n, "nnz": nnz, "expected_out_nnz": exp_out})


def _run_edge_index_spspmm(state):
    ei, val, _ = state
    return ei.matmul(ei, input_value=val, other_value=val)


def _run_torch_sparse_spspmm(state):

    a, _ = state
    return a @ a


_register(Operation(
    "spspmm", "sparse", "sparse A [n, n] @ sparse A (the same matrix), n = isqrt(size / 16)",
    _build_spspmm, lambda n, rf, w, f: n * (2 * w + 1 + 6 * (w + 2 * INDEX_BYTES)) + 2**20, (
        Impl("pyg.EdgeIndex.matmul", PYG_UTILS, _run_edge_index_spspmm,
             prepare=_prepare_edge_index,
             backend="torch_geometric.EdgeIndex.matmul(EdgeIndex) -> torch.matmul on CSR"),
        Impl("torch_sparse.spspmm", PYG, _run_torch_sparse_spspmm, prepare=_prepare_sparse_tensor,
             requires="torch_sparse", backend="torch_sparse SparseTensor @ SparseTensor"),
        Impl("torch.sparse.mm(CSR,CSR)", NATIVE, lambda i: torch.sparse.mm(i.t["csr"], i.t["csr"]),
             backend="torch.sparse.mm on sparse_csr x sparse_csr"),
        Impl("torch.sparse.mm(COO,COO)", NATIVE, lambda i: torch.sparse.mm(i.t["coo"], i.t["coo"]),
             backend="torch.sparse.mm on sparse_coo x sparse_coo"),
    ), uses_reduce_factor=False, size_scale=1 / 16, dtypes=(torch.float32,)))


def _build_coalesce(size, s, rf, dtype, device, dist, f, gen, heads):
    # gnn-ops-benchmark's coalesce input: the non-zeros of an n x n matrix repeated rf times (the
    # reduce factor: rf duplicates of each entry to merge), shuffled
    n, coo, d = _sparse_matrix(size, s, dtype, device, gen)
    nnz = coo._nnz()
    idx, val = coo.indices().repeat(1, rf), coo.values().repeat(rf)
    perm = torch.randperm(nnz * rf, generator=gen, device=coo.device)
    idx, val = idx[:, perm].contiguous(), val[perm].contiguous()
    w = val.element_size()
    return OpInputs("coalesce", {"index": idx, "value": val, "n": n}, numel=n * n, density=d,
                    bytes=nnz * rf * (2 * INDEX_BYTES + w) + nnz * (2 * INDEX_BYTES + w), flops=float(nnz * (rf - 1)),
                    meta={"n": n, "nnz": nnz, "entries": nnz * rf})


def _pyg_coalesce(i):
    from torch_geometric.utils import coalesce  # lazy: PyG's import is heavy and loads its optional extensions

    return coalesce(i.t["index"], i.t["value"], num_nodes=i.t["n"])


def _ts_coalesce(i):
    import torch_sparse  # lazy: optional compiled extension

    return torch_sparse.coalesce(i.t["index"], i.t["value"], i.t["n"], i.t["n"])


def _prepare_uncoalesced(i):
    return torch.sparse_coo_tensor(i.t["index"], i.t["value"], (i.t["n"], i.t["n"]))


_register(Operation(
    "coalesce", "sparse",
    "sort the shuffled COO entries of an n x n matrix, each repeated rf times, row-major and merge the duplicates; "
    "n = isqrt(size / 8), so that rf = 8 sorts about `size` entries",
    _build_coalesce, lambda n, rf, w, f: n * (2 * w + (2 + 3 * rf) * (2 * INDEX_BYTES + w)) + 2**20, (
        Impl("pyg.utils.coalesce", PYG_UTILS, _pyg_coalesce, backend="torch_geometric.utils.coalesce (index_sort + scatter)"),
        Impl("torch_sparse.coalesce", PYG, _ts_coalesce, requires="torch_sparse", backend="torch_sparse.coalesce"),
        Impl("torch.Tensor.coalesce", NATIVE, lambda a: a.coalesce(), prepare=_prepare_uncoalesced,
             backend="sparse_coo_tensor.coalesce"),
    ), size_scale=1 / 8, dtypes=(torch.float32,)))


def _build_transpose(size, s, rf, dtype, device, dist, f, gen, heads):
    n, coo, d = _sparse_matrix(size, s, dtype, device, gen)
    nnz = coo._nnz()
    w = coo.values().element_size()
    return OpInputs("transpose", {"coo": coo, "csr": _csr(coo), "index": coo.indices(),
                                  "value": coo.values(), "n": n}, numel=n * n, density=d,
                    bytes=2 * nnz * (2 * INDEX_BYTES + w), flops=0.0, meta={"n": n, "nnz": nnz})


def _pyg_transpose(i):
    from torch_geometric.utils import sort_edge_index  # lazy: PyG's import is heavy and loads its optional extensions

    return sort_edge_index(i.t["index"].flip(0), i.t["value"], num_nodes=i.t["n"])


def _ts_transpose(i):
    import torch_sparse  # lazy: optional compiled extension

    return torch_sparse.transpose(i.t["index"], i.t["value"], i.t["n"], i.t["n"])


_register(Operation(
    "transpose", "sparse", "transpose an n x n sparse matrix into row-major (CSR or sorted COO) order",
    _build_transpose, lambda n, rf, w, f: n * (2 * w + 5 * (2 * INDEX_BYTES + w)) + 2**20, (
        Impl("pyg.utils.sort_edge_index(flip)", PYG_UTILS, _pyg_transpose,
             backend="edge_index.flip(0) + torch_geometric.utils.sort_edge_index"),
        Impl("torch_sparse.transpose", PYG, _ts_transpose, requires="torch_sparse", backend="torch_sparse.transpose"),
        Impl("torch.coo.t().coalesce()", NATIVE, lambda i: i.t["coo"].t().coalesce(),
             backend="sparse_coo_tensor.t().coalesce()"),
        Impl("torch.csr.t().to_sparse_csr()", NATIVE, lambda i: i.t["csr"].t().to_sparse_csr(),
             backend="sparse_csr_tensor.t() (CSC view) .to_sparse_csr()"),
    ), uses_reduce_factor=False, dtypes=(torch.float32,)))


# --------------------------------------------------------------------------------------------
# GNN layers: MessagePassing.propagate of GCN and GAT vs the same computation in native ops
# --------------------------------------------------------------------------------------------

def _build_graph(size, s, rf, dtype, device, dist, f, gen, heads):
    edges = _rows(size, f)
    nodes = max(2, edges // rf)
    src = make_index(edges, nodes, dist, gen, device)
    # no self loops, so that both implementations add exactly one per node
    dst = (src + torch.randint(1, nodes, (edges,), generator=gen, device=device)) % nodes
    x = make_sparse(_values((nodes, f), dtype, device, gen), s, gen)
    weight = _values((f, f), dtype, device, gen) / math.sqrt(f)
    bias = _values((f,), dtype, device, gen) * 0.1
    c = f // heads
    att_src = _values((1, heads, c), dtype, device, gen)
    att_dst = _values((1, heads, c), dtype, device, gen)
    return {"x": x, "edge_index": torch.stack([src, dst]), "weight": weight, "bias": bias, "att_src": att_src,
            "att_dst": att_dst, "nodes": nodes, "heads": heads}, edges, nodes


def _build_gcn(size, s, rf, dtype, device, dist, f, gen, heads):
    t, edges, nodes = _build_graph(size, s, rf, dtype, device, dist, f, gen, heads)
    w = t["x"].element_size()
    e = edges + nodes
    return OpInputs("gcn_layer", t, numel=edges * f, density=density(t["x"]),
                    bytes=nodes * f * w * 2 + 2 * edges * INDEX_BYTES + f * f * w,
                    flops=2.0 * nodes * f * f + 3.0 * e * f + 4.0 * e,
                    meta={"nodes": nodes, "edges": edges, "features": f})


def _prepare_gcnconv(i):
    from torch_geometric.nn import GCNConv  # lazy: PyG's import is heavy and loads its optional extensions

    f = i.t["x"].size(1)
    conv = GCNConv(f, f, cached=False).to(device=i.t["x"].device, dtype=i.t["x"].dtype)
    with torch.no_grad():
        conv.lin.weight.copy_(i.t["weight"])
        conv.bias.copy_(i.t["bias"])
    conv.eval()
    return (conv, i.t["x"], i.t["edge_index"])


def _run_module(state):
    mod, x, edge_index = state
    with torch.no_grad():
        return mod(x, edge_index)


def gcn_native(x: torch.Tensor, edge_index: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
               num_nodes: int) -> torch.Tensor:
    """One GCN layer in native PyTorch ops (Kipf & Welling, ICLR 2017, Eq. 2):
    ``X' = D^-1/2 (A + I) D^-1/2 X W^T + b`` with ``D`` the in-degree of ``A + I``.

    Args:
        x: node features ``[N, F]``.
        edge_index: ``[2, E]`` int64 (row 0: source, row 1: target), without self loops.
        weight: ``[F_out, F]``; bias: ``[F_out]``.
        num_nodes: ``N``.
    Returns ``[N, F_out]``; the same as PyG's ``GCNConv`` (source-to-target flow) up to rounding.
    """
    loop = torch.arange(num_nodes, device=x.device)
    row = torch.cat([edge_index[0], loop])
    col = torch.cat([edge_index[1], loop])
    deg = torch.zeros(num_nodes, dtype=x.dtype, device=x.device).index_add_(
        0, col, torch.ones(col.numel(), dtype=x.dtype, device=x.device))
    dinv = deg.pow(-0.5)
    dinv.masked_fill_(torch.isinf(dinv), 0)
    norm = dinv[row] * dinv[col]
    h = x @ weight.t()
    msg = h.index_select(0, row) * norm.view(-1, 1)
    return torch.zeros_like(h).index_add_(0, col, msg) + bias


_register(Operation(
    "gcn_layer", "layer", "a GCNConv layer (gcn_norm + propagate) on E = size // F random edges and E // rf nodes",
    _build_gcn, lambda n, rf, w, f: 6 * n * w + 8 * (n // f) * INDEX_BYTES + 2**20, (
        Impl("pyg.nn.GCNConv", PYG_UTILS, _run_module, prepare=_prepare_gcnconv,
             backend="GCNConv: gcn_norm + MessagePassing.propagate (gather-scatter, torch_geometric.utils.scatter)"),
        Impl("native GCN", NATIVE, lambda i: gcn_native(i.t["x"], i.t["edge_index"], i.t["weight"], i.t["bias"],
                                                        i.t["nodes"]),
             backend="index_add_ / index_select / matmul"),
    )))


def _build_gat(size, s, rf, dtype, device, dist, f, gen, heads):
    t, edges, nodes = _build_graph(size, s, rf, dtype, device, dist, f, gen, heads)
    w = t["x"].element_size()
    e = edges + nodes
    return OpInputs("gat_layer", t, numel=edges * f, density=density(t["x"]),
                    bytes=nodes * f * w * 2 + 2 * edges * INDEX_BYTES + f * f * w,
                    flops=2.0 * nodes * f * f + 4.0 * nodes * f + e * (8.0 * heads + 2.0 * f),
                    meta={"nodes": nodes, "edges": edges, "features": f, "heads": heads})


def _prepare_gatconv(i):
    from torch_geometric.nn import GATConv  # lazy: PyG's import is heavy and loads its optional extensions

    f, heads = i.t["x"].size(1), i.t["heads"]
    conv = GATConv(f, f // heads, heads=heads, concat=True, dropout=0.0).to(device=i.t["x"].device,
                                                                             dtype=i.t["x"].dtype)
    with torch.no_grad():
        conv.lin.weight.copy_(i.t["weight"])
        conv.att_src.copy_(i.t["att_src"])
        conv.att_dst.copy_(i.t["att_dst"])
        conv.bias.copy_(i.t["bias"])
    conv.eval()
    return (conv, i.t["x"], i.t["edge_index"])


def gat_native(x: torch.Tensor, edge_index: torch.Tensor, weight: torch.Tensor, att_src: torch.Tensor,
               att_dst: torch.Tensor, bias: torch.Tensor, num_nodes: int, heads: int,
               negative_slope: float = 0.2) -> torch.Tensor:
    """One GAT layer in native PyTorch ops (Velickovic et al., ICLR 2018, Eq. 1-4; heads
    concatenated): ``alpha_ij = softmax_j(LeakyReLU(a_s . W x_j + a_d . W x_i))`` over the
    in-neighbours ``j`` of ``i`` plus ``i`` itself, ``x'_i = sum_j alpha_ij W x_j + b``.

    Args:
        x: ``[N, F]``; edge_index: ``[2, E]`` int64 without self loops; weight: ``[H * C, F]``;
        att_src, att_dst: ``[1, H, C]``; bias: ``[H * C]``; num_nodes: ``N``; heads: ``H``.
    Returns ``[N, H * C]``; the same as PyG's ``GATConv(concat=True, dropout=0)`` in eval mode.
    """
    h = (x @ weight.t()).view(num_nodes, heads, -1)
    a_src = (h * att_src).sum(-1)
    a_dst = (h * att_dst).sum(-1)
    loop = torch.arange(num_nodes, device=x.device)
    row = torch.cat([edge_index[0], loop])
    col = torch.cat([edge_index[1], loop])
    e = torch.nn.functional.leaky_relu(a_src.index_select(0, row) + a_dst.index_select(0, col), negative_slope)
    emax = torch.full((num_nodes, heads), float("-inf"), dtype=e.dtype, device=e.device).scatter_reduce_(
        0, col.view(-1, 1).expand_as(e), e, reduce="amax", include_self=True)
    p = (e - emax.index_select(0, col)).exp()
    denom = torch.zeros_like(emax).index_add_(0, col, p)
    alpha = p / (denom.index_select(0, col) + 1e-16)
    msg = h.index_select(0, row) * alpha.unsqueeze(-1)
    out = torch.zeros_like(h).index_add_(0, col, msg)
    return out.reshape(num_nodes, -1) + bias


_register(Operation(
    "gat_layer", "layer", "a GATConv layer (heads concatenated) on E = size // F random edges and E // rf nodes",
    _build_gat, lambda n, rf, w, f: 10 * n * w + 8 * (n // f) * INDEX_BYTES + 2**20, (
        Impl("pyg.nn.GATConv", PYG_UTILS, _run_module, prepare=_prepare_gatconv,
             backend="GATConv: MessagePassing.propagate with edge_update + softmax (gather-scatter)"),
        Impl("native GAT", NATIVE, lambda i: gat_native(i.t["x"], i.t["edge_index"], i.t["weight"], i.t["att_src"],
                                                        i.t["att_dst"], i.t["bias"], i.t["nodes"], i.t["heads"]),
             backend="index_select / scatter_reduce_ / index_add_ / matmul"),
    )))


# --------------------------------------------------------------------------------------------
# What actually ran
# --------------------------------------------------------------------------------------------

#: Views, allocations and metadata queries: left out of the ``kernels`` column.
_NOT_KERNELS = frozenset(f"aten::{n}" for n in (
    "view", "empty", "empty_like", "empty_strided", "expand", "expand_as", "t", "transpose", "as_strided",
    "detach", "alias", "_to_copy", "to", "lift_fresh", "select", "slice", "unsqueeze", "_unsafe_view", "reshape",
    "permute", "squeeze", "zero_", "resize_", "_nnz", "dense_dim", "sparse_dim", "item", "_local_scalar_dense",
    "crow_indices", "col_indices", "values", "_values", "_indices", "indices", "unbind"))


def kernel_library(names) -> str:
    """The kernel library that ran, from the dispatcher operator names of one call: the extension
    libraries whose operators appear (``torch_scatter``, ``torch_sparse``, ``pyg-lib``; several joined
    by ``+`` in that order), else ``torch`` (native PyTorch only). The extensions' version probes
    (``*::cuda_version``, called once on import) do not count."""
    seen = set()
    for n in names:
        if n.endswith("::cuda_version"):
            continue
        for prefix, lib in _LIBRARY_PREFIXES.items():
            if n.startswith(prefix):
                seen.add(lib)
    libs = [lib for lib in KERNEL_LIBRARIES if lib in seen]
    return "+".join(libs) if libs else "torch"


def detect_backend(run: Callable, state, top: int = 6) -> dict:
    """Run ``run(state)`` once to warm up (lazy imports, caches), then once under ``torch.profiler``
    (CPU activity), and report the operators that executed.

    Returns ``{"kernels": "aten::op1;aten::op2;...", "kernel_library": "torch_scatter" | ...,
    "torch_scatter": bool, "torch_sparse": bool, "pyg_lib": bool}``: the distinct operators in order
    of first call (at most ``top``; views and allocations left out), the kernel library that ran
    (:func:`kernel_library`) and whether each extension's operators ran. The profiler sees every
    operator that passes the dispatcher, the extensions' own (``torch_scatter::scatter_max``,
    ``torch_sparse::spmm_sum``, ``pyg::...``) included; a ``TorchDispatchMode`` would not, since the
    extensions register their operators as composite kernels that run above it.
    """
    import os

    from torch.profiler import ProfilerActivity, profile

    os.environ.setdefault("KINETO_LOG_LEVEL", "5")  # no "STAGE: Completed ..." lines per profile
    run(state)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        run(state)
    seen: list[str] = []
    for ev in prof.events():
        if ev.name not in seen:
            seen.append(ev.name)
    ops_seen = [n for n in seen if "::" in n]
    kept = [n for n in ops_seen if n not in _NOT_KERNELS and not n.endswith("::cuda_version")]
    lib = kernel_library(ops_seen)
    return {"kernels": ";".join(kept[:top]), "kernel_library": lib,
            "torch_scatter": "torch_scatter" in lib, "torch_sparse": "torch_sparse" in lib, "pyg_lib": "pyg-lib" in lib}
