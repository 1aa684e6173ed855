"""The sparse operands that the op registry builds for SpMM and SpSpMM are coalesced (sorted, each
pair once): sparse products are undefined on anything else."""

from __future__ import annotations

import pytest

from studylib.data.edges import is_coalesced
from studylib.studies.op_microbenchmarks import ops


@pytest.mark.parametrize("name", ["spmm", "spspmm"])
@pytest.mark.parametrize("sparsity", [0.0, 0.9, 0.99])
def test_sparse_operands_are_coalesced(name, sparsity):
    inputs = ops.build_inputs(name, 4096, sparsity, seed=0)
    coo = inputs.t["coo"]
    assert coo.is_coalesced()
    assert is_coalesced(coo.indices(), tuple(coo.shape))
    assert inputs.t["csr"].crow_indices()[-1] == coo._nnz()
