"""studylib: the helper package of the GNN systems study suite.

Each notebook under ``notebooks/`` calls into these modules (see ``DESIGN.md`` in the shared
folder and the project README):

* :mod:`studylib.paths` -- project root, data/figures/results/reports folders, the dataset mirror.
* :mod:`studylib.params` -- declared, validated parameters of each notebook and profile YAML.
* :mod:`studylib.machine` -- ``probe()`` of the machine and library versions.
* :mod:`studylib.timing` -- device-synchronised stage timers and the kernel-class breakdown.
* :mod:`studylib.data` -- dataset registry, mirror resolution, loaders, synthetic generators.
* :mod:`studylib.models` -- HGNN builders (RGCN, RGAT, HAN) in DGL and PyG with stage marks.
* :mod:`studylib.results` -- tidy result tables with provenance, atomic writes, resumable sweeps.
* :mod:`studylib.plotting` -- the figure theme and ``save_figure``.
* :mod:`studylib.runner` -- ``python -m studylib run`` through papermill and the HTML index.
"""

__version__ = "0.1.0"
