"""00-hardware's finding: each declared verdict is reached from small synthetic tables."""

from __future__ import annotations

import pandas as pd

from studylib import findings as fd
from studylib.studies.hardware import findings as f00

CPU = {"gpus": [], "cores_available": 2, "logical_cores": 2}


def _comparison(ratios: dict[tuple[str, int], float]) -> pd.DataFrame:
    rows = [{"threads": t, "kernel": k, "ratio": r, "within_tolerance": abs(r - 1) <= 0.2, "like_for_like": True}
            for (k, t), r in ratios.items()]
    rows.append({"threads": 2, "kernel": "peak (triad)", "ratio": 0.9, "within_tolerance": True, "like_for_like": False})
    return pd.DataFrame(rows)


def _bandwidth(device: str = "cpu", spread: float = 0.0) -> pd.DataFrame:
    return pd.DataFrame([{"threads": t, "kernel": k, "bytes_per_s": 1e10 * (1 + spread * i), "device": device,
                          "status": "ok"} for t in (1, 2) for k in ("read", "write") for i in range(4)])


def test_stream_agreement_reaches_every_verdict():
    f = f00.STREAM_AGREES
    all_in = _comparison({("read", 1): 1.05, ("write", 1): 0.95, ("read", 2): 1.1, ("write", 2): 0.9})
    half = _comparison({("read", 1): 1.25, ("write", 1): 0.95, ("read", 2): 1.1, ("write", 2): 0.5})
    none = _comparison({("read", 1): 1.5, ("write", 1): 0.5})
    cases = [{"comparison": all_in}, {"comparison": half}, {"comparison": none}, {"comparison": pd.DataFrame()},
             {"comparison": all_in, "bandwidth": _bandwidth("cuda")}]
    assert fd.reached_verdicts(f, cases) == f.verdicts()
    r = fd.evaluate_one(f, cases[1], CPU)
    assert r["verdict"] == fd.PARTLY and "read, 1 thread(s): 1.25" in r["evidence"] and r["ours"] == "2 of 4"
    gpu = fd.evaluate_one(f, cases[-1], CPU)
    assert gpu["verdict"] == fd.NOT_TESTABLE and "host memory" in gpu["evidence"]
    assert "sysbench is not installed" in fd.evaluate_one(f, {}, CPU)["evidence"]


def test_noisy_bandwidth_blocks_are_reported():
    f = f00.STREAM_AGREES
    all_in = _comparison({("read", 1): 1.05, ("write", 1): 0.95})
    assert not fd.evaluate_one(f, {"comparison": all_in, "bandwidth": _bandwidth()}, CPU)["noisy"]
    r = fd.evaluate_one(f, {"comparison": all_in, "bandwidth": _bandwidth(spread=0.3)}, CPU)
    assert r["noisy"] and "noisy" in r["evidence"]
