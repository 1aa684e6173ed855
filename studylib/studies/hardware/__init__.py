"""``00-hardware``: this machine's limits, measured (the baseline of every other study).

Paper: none (STREAM, McCalpin 1995, for the bandwidth kernels; the roofline of Williams, Waterman
and Patterson, CACM 2009).
Notebook: ``notebooks/00-hardware.ipynb``.
Tables (``results/00-hardware/``): ``bandwidth``, ``sysbench``, ``gemm``, ``transfer`` (GPU only),
``limits`` (read by 03 and 05 through :mod:`studylib.limits`), ``probe.json``, ``summary.json``.
Figures (``figures/00-hardware/``): ``bandwidth``, ``gemm``, ``transfer`` (GPU only), ``roofline``.
Findings: :mod:`.findings` (the STREAM kernels against ``sysbench memory``), written to
``results/00-hardware/findings.*`` and ``figures/00-hardware/findings.json``.
"""
