"""Every sparse operand the op registry hands to a sparse kernel is coalesced (sorted, each pair
once): sparse products are undefined on anything else. Checked for the prepared state of every
implementation of every sparse operation (torch COO and CSR tensors, ``EdgeIndex``,
``torch_sparse.SparseTensor``, ``(index, value)`` pairs); ``coalesce`` alone takes uncoalesced
entries, by definition, and every implementation of it must return coalesced ones."""

from __future__ import annotations

import pytest
import torch

from studylib.data.edges import is_coalesced
from studylib.studies.op_microbenchmarks import ops

SPARSE_OPS = [n for n in ops.operation_names() if ops.get(n).family == "sparse" and n != "coalesce"]


def _sparse_operands(obj, n: int):
    """Yield ``(what, [2, nnz] index)`` for each sparse operand found in a prepared state."""
    if isinstance(obj, ops.OpInputs):
        yield from _sparse_operands(obj.t, n)
    elif isinstance(obj, dict):
        if "index" in obj and "value" in obj and isinstance(obj["index"], torch.Tensor):
            yield "index/value pair", obj["index"]
        for k, v in obj.items():
            if k != "index":
                yield from _sparse_operands(v, n)
    elif isinstance(obj, (tuple, list)):
        for v in obj:
            yield from _sparse_operands(v, n)
    elif type(obj).__name__ == "EdgeIndex":
        yield "EdgeIndex", obj.as_tensor()
    elif type(obj).__name__ == "SparseTensor":  # torch_sparse
        yield "SparseTensor", torch.stack([obj.storage.row(), obj.storage.col()])
    elif isinstance(obj, torch.Tensor) and obj.layout == torch.sparse_coo:
        assert obj.is_coalesced(), "a COO operand not flagged coalesced"
        yield "COO tensor", obj.indices()
    elif isinstance(obj, torch.Tensor) and obj.layout == torch.sparse_csr:
        yield "CSR tensor", _csr_index(obj)


def _csr_index(csr: torch.Tensor) -> torch.Tensor:
    counts = csr.crow_indices().diff()
    rows = torch.repeat_interleave(torch.arange(csr.size(0)), counts)
    return torch.stack([rows, csr.col_indices()])


def test_every_sparse_operation_is_checked():
    assert {"spmm", "spspmm", "transpose"} <= set(SPARSE_OPS)


@pytest.mark.parametrize("name", SPARSE_OPS)
@pytest.mark.parametrize("sparsity", [0.0, 0.9, 0.99])
def test_sparse_operands_are_coalesced(name, sparsity):
    inputs = ops.build_inputs(name, 4096, sparsity, seed=0)
    n = inputs.meta["n"]
    coo = inputs.t["coo"]
    assert coo.is_coalesced() and is_coalesced(coo.indices(), tuple(coo.shape))
    assert inputs.t["csr"].crow_indices()[-1] == coo._nnz()
    for im in ops.get(name).implementations():
        found = list(_sparse_operands(im.state(inputs), n))
        assert found, f"{name} [{im.name}]: no sparse operand found in its state"
        for what, index in found:
            assert is_coalesced(index, (n, n)), f"{name} [{im.name}]: {what} is not coalesced at sparsity {sparsity}"


@pytest.mark.parametrize("reduce_factor", [1, 4])
def test_coalesce_takes_duplicates_and_returns_coalesced_entries(reduce_factor):
    inputs = ops.build_inputs("coalesce", 4096, 0.5, reduce_factor=reduce_factor, seed=0)
    n, nnz = inputs.meta["n"], inputs.meta["nnz"]
    assert inputs.t["index"].size(1) == nnz * reduce_factor
    assert not is_coalesced(inputs.t["index"], (n, n))  # shuffled (and, with rf > 1, repeated) entries
    for im in ops.get("coalesce").implementations():
        out = im.run(im.state(inputs))
        index = out.indices() if isinstance(out, torch.Tensor) else out[0]
        assert index.size(1) == nnz and is_coalesced(index, (n, n)), im.name
