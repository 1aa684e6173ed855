#!/usr/bin/env bash
# Install PyG's extension libraries torch-scatter and torch-sparse, pinned, against the torch of
# the environment whose python is $1. Order: a wheel (a folder in $PIP_FIND_LINKS, or PyG's own
# wheel index when it is reachable), else a build from source against the installed torch (about
# 14 minutes on 2 cores). Where neither works, say so and exit 0: the suite still runs, and
# 03-op-microbenchmarks then reports its PyG-kernel findings as "not measured".
set -uo pipefail
PY=${1:?usage: install_pyg_extensions.sh PYTHON}
PKGS=(torch-scatter==2.1.2 torch-sparse==0.6.18)

if "$PY" -c "import torch_scatter, torch_sparse" 2>/dev/null; then
    echo "torch-scatter and torch-sparse: already installed"
    exit 0
fi
variant=$("$PY" -c "import torch; v=torch.__version__.split('+')[0].rsplit('.',1)[0]; c=torch.version.cuda; print(f\"torch-{v}.0+{'cu'+c.replace('.','') if c else 'cpu'}\")")
echo "torch-scatter and torch-sparse: looking for wheels (PIP_FIND_LINKS=${PIP_FIND_LINKS:-unset}, PyG index $variant)"
if "$PY" -m pip install --quiet --only-binary=:all: --retries 0 --timeout 10 \
        -f "https://data.pyg.org/whl/${variant}.html" "${PKGS[@]}" 2>/dev/null; then
    echo "torch-scatter and torch-sparse: installed from wheels"
    exit 0
fi
echo "torch-scatter and torch-sparse: no wheel found; building from source against the installed torch"
echo "  (about 14 minutes on 2 cores; set PIP_FIND_LINKS to a folder of wheels to skip this)"
if "$PY" -m pip install --quiet --no-build-isolation --no-binary=torch-scatter,torch-sparse "${PKGS[@]}"; then
    echo "torch-scatter and torch-sparse: built and installed"
    exit 0
fi
echo "warning: torch-scatter and torch-sparse could not be installed; the suite runs without PyG's" >&2
echo "  extension kernels and 03-op-microbenchmarks reports its PyG-kernel findings as not measured" >&2
exit 0
