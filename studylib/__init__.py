"""studylib: the helper package of the GNN systems study suite.

The core (what two or more studies use):

* :mod:`studylib.paths` -- project root, data/figures/results/reports folders, the dataset mirror.
* :mod:`studylib.params` -- the parameter base class, validation, profile YAML loading, and the
  registry of the studies' parameter models.
* :mod:`studylib.machine` -- ``probe()`` of the machine and library versions, device and threads.
* :mod:`studylib.timing` -- device-synchronised stage timers, the benchmark harness, the
  kernel-class breakdown, peak memory.
* :mod:`studylib.limits` -- the STREAM kernels and the machine limits ``00-hardware`` measured.
* :mod:`studylib.data` -- dataset registry, mirror resolution, loaders, synthetic generators.
* :mod:`studylib.models` -- HGNN builders (RGCN, RGAT, HAN) in DGL and PyG with stage marks;
  homogeneous GNNs; NGCF and LightGCN.
* :mod:`studylib.distributed` -- the DistDGL cluster launcher, partitioning, network models.
* :mod:`studylib.results` and :mod:`studylib.tables` -- tidy result tables with provenance.
* :mod:`studylib.plotting` -- the figure theme and ``save_figure``.
* :mod:`studylib.notebook` -- a notebook's set-up in one call, and its figure saving.
* :mod:`studylib.runner` -- ``python -m studylib run`` through papermill and the HTML index.

One package per study: :mod:`studylib.studies` (``studies/README.md`` says how to add one).
"""

__version__ = "0.1.0"
