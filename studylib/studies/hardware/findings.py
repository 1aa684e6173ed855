"""The findings of ``00-hardware``. This notebook reproduces no paper; its one claim is about its own
method: the STREAM-style kernels written in torch measure the same memory bandwidth as a standard
tool, ``sysbench memory`` (STREAM: McCalpin, IEEE TCCA Newsletter 1995), declared as data
(:class:`studylib.findings.Finding`) so that it stands on the suite's scoreboard with the others.
"""

from __future__ import annotations

from studylib import findings as fd
from studylib.studies.hardware.measure import REFERENCE_TOLERANCE

#: Share of the like-for-like comparisons (read and write, every thread count) that must agree
#: within :data:`REFERENCE_TOLERANCE` for *reproduced*; at least :data:`PARTLY_SHARE` for *partly*.
AGREE_SHARE = 1.0
PARTLY_SHARE = 0.5


def tables(bandwidth=None, reference=None, comparison=None) -> dict:
    """The tables the findings read: the raw ``bandwidth`` and ``sysbench`` tables and the
    ``comparison`` of :func:`studylib.studies.hardware.measure.compare_with_reference`."""
    return {"bandwidth": bandwidth, "sysbench": reference, "comparison": comparison}


def _host_memory(machine: dict, t: fd.Tables) -> str | None:
    bw = t.get("bandwidth")
    if bw is not None and "device" in bw and (fd.ok_rows(bw)["device"] == "cuda").any():
        return "this run measured the GPU's memory; sysbench measures host memory, so there is nothing to compare with"
    return None


def _agreement(t: fd.Tables) -> fd.Measured:
    c = t.get("comparison")
    if c is None or c.empty:
        raise fd.NotMeasured("no sysbench reference was measured (parameter sysbench = False, or sysbench is not "
                             "installed: apt-get install sysbench)")
    like = c[c["like_for_like"].astype(bool)]
    if like.empty:
        raise fd.NotMeasured("no read or write kernel was compared with sysbench")
    flags = like["within_tolerance"].astype(bool).tolist()
    ev = (f"torch / sysbench within {REFERENCE_TOLERANCE:.0%} in {sum(flags)} of {len(flags)} like-for-like "
          "comparisons: " + "; ".join(f"{r.kernel}, {int(r.threads)} thread(s): {r.ratio:.2f}" for r in like.itertuples()))
    peak = c[~c["like_for_like"].astype(bool) & c["kernel"].astype(str).str.startswith("peak")]
    if not peak.empty:
        ev += "; headline (best STREAM kernel vs best sysbench rate): " + ", ".join(
            f"{int(r.threads)} thread(s) {r.ratio:.2f}" for r in peak.itertuples())
    noisy = 0
    bw = t.get("bandwidth")
    if bw is not None and {"threads", "kernel", "bytes_per_s"} <= set(bw.columns):
        s = fd.summarize_by(bw[bw["kernel"].isin(like["kernel"])], ["threads", "kernel"], "bytes_per_s")
        noisy = fd.count_noisy(s)
    return fd.Measured(flags, ev, noisy=noisy)


STREAM_AGREES = fd.Finding(
    id="stream-agrees-with-sysbench",
    claim="The STREAM-style kernels in torch measure the same memory bandwidth as sysbench memory",
    where="STREAM (McCalpin 1995) against sysbench memory",
    measure=_agreement, testable=_host_memory,
    criterion=fd.fraction_of(f"like-for-like comparisons (read, write) within {REFERENCE_TOLERANCE:.0%} of sysbench",
                             reproduced=AGREE_SHARE, partly=PARTLY_SHARE),
)

#: Every finding of the notebook.
FINDINGS = [STREAM_AGREES]

