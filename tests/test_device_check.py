"""The device check (studylib.device_check) on this machine's CPU: every check is recorded with a status,
the JSON and the summary agree, a failing check makes the exit status non-zero and does not stop the
others, the time limit writes the files and exits; and the kernel-class breakdown counts a CUDA kernel
once. No timed assertions: the timing checks may pass or fail here, only their presence is asserted."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from studylib import device_check as dc
from studylib import timing
from studylib.__main__ import main

CUDA_ONLY = ("stage_timer_vs_events", "host_device_copies")


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("device")
    rc = dc.run(out, device="cpu", budget="tiny", time_limit_s=600, echo=False)
    report = json.loads((out / dc.JSON_NAME).read_text())
    text = (out / dc.TEXT_NAME).read_text().splitlines()
    return rc, report, text


@pytest.mark.slow
def test_every_check_is_recorded_with_a_status(cpu_run):
    rc, report, text = cpu_run
    names = [c["name"] for c in report["checks"]]
    assert names == list(dc.CHECKS)
    for c in report["checks"]:
        assert c["status"] in (dc.PASS, dc.FAIL, dc.SKIP), c
        assert c["reason"], f"{c['name']} gives no reason"
        assert isinstance(c["numbers"], dict)
    failed = [c["name"] for c in report["checks"] if c["status"] == dc.FAIL]
    assert rc == report["exit_status"] == (1 if failed else 0)
    assert report["complete"] is True and report["device"] == "cpu"
    # the checks that time nothing must pass on any CPU
    status = {c["name"]: c["status"] for c in report["checks"]}
    assert status["device_probe"] == dc.PASS
    assert status["op_microbenchmarks"] == dc.PASS, report["checks"][names.index("op_microbenchmarks")]["reason"]
    assert status["peak_memory"] in (dc.PASS, dc.SKIP)
    if not torch.cuda.is_available():
        for name in CUDA_ONLY:
            assert status[name] == dc.SKIP and "CUDA" in report["checks"][names.index(name)]["reason"]
        assert "no CUDA device" in report["note"]


@pytest.mark.slow
def test_summary_has_one_line_per_check_and_the_counts(cpu_run):
    _, report, text = cpu_run
    assert text[0].startswith("device check on CPU")
    assert len(text) == len(dc.CHECKS) + 2
    for line, c in zip(text[1:-1], report["checks"]):
        assert line.split()[:2] == [c["status"].upper(), c["name"]]
    m = re.fullmatch(r"(\d+) passed, (\d+) failed, (\d+) skipped", text[-1])
    assert m and tuple(map(int, m.groups())) == (report["counts"]["pass"], report["counts"]["fail"],
                                                 report["counts"]["skip"])
    assert sum(report["counts"].values()) == len(dc.CHECKS)


def test_a_failing_check_fails_the_run_and_the_next_check_still_runs(tmp_path, monkeypatch):
    def boom(ctx):
        raise RuntimeError("boom on purpose")

    monkeypatch.setitem(dc.CHECKS, "peak_memory", boom)
    monkeypatch.setitem(dc.CHECKS, "gemm_flops", lambda ctx: dc._result(dc.FAIL, "numbers out of range", {"x": 1.0}))
    rc = dc.run(tmp_path, device="cpu", budget="tiny", checks=["device_probe", "peak_memory", "gemm_flops",
                                                                "host_device_copies"], echo=False)
    assert rc == 1
    report = json.loads((tmp_path / dc.JSON_NAME).read_text())
    by = {c["name"]: c for c in report["checks"]}
    assert by["device_probe"]["status"] == dc.PASS
    assert by["peak_memory"]["status"] == dc.FAIL
    assert by["peak_memory"]["reason"] == "RuntimeError: boom on purpose"
    assert "boom on purpose" in by["peak_memory"]["numbers"]["traceback"]
    assert by["gemm_flops"]["status"] == dc.FAIL and by["gemm_flops"]["numbers"] == {"x": 1.0}
    assert by["host_device_copies"]["status"] in (dc.SKIP, dc.PASS)  # ran after the failures
    assert (tmp_path / dc.TEXT_NAME).read_text().splitlines()[-1].startswith("1 passed, 2 failed")


def test_a_failed_probe_skips_the_rest(tmp_path, monkeypatch):
    monkeypatch.setitem(dc.CHECKS, "device_probe", lambda ctx: dc._result(dc.FAIL, "no device"))
    rc = dc.run(tmp_path, device="cpu", budget="tiny", checks=["device_probe", "peak_memory"], echo=False)
    report = json.loads((tmp_path / dc.JSON_NAME).read_text())
    assert rc == 1 and [c["status"] for c in report["checks"]] == [dc.FAIL, dc.SKIP]


def test_command_line(tmp_path, capsys):
    assert main(["device-check", "--out", str(tmp_path), "--device", "cpu", "--budget", "tiny",
                 "--check", "device_probe"]) == 0
    assert (tmp_path / dc.JSON_NAME).is_file() and (tmp_path / dc.TEXT_NAME).is_file()
    assert "1 passed, 0 failed, 0 skipped" in capsys.readouterr().out
    assert main(["device-check", "--out", str(tmp_path), "--device", "tpu"]) == 2
    assert "device must be auto, cpu or cuda" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["device-check", "--out", str(tmp_path), "--check", "no_such_check"])


def test_time_limit_writes_the_files_and_exits_3(tmp_path):
    script = (
        "import time, sys\n"
        "from studylib import device_check as dc\n"
        "dc.CHECKS['peak_memory'] = lambda ctx: time.sleep(60)\n"
        f"dc.run({str(tmp_path)!r}, device='cpu', budget='tiny', checks=['device_probe', 'peak_memory', 'gemm_flops'],"
        " time_limit_s=2.0, echo=False)\n"
        "sys.exit(0)\n")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    report = json.loads((tmp_path / dc.JSON_NAME).read_text())
    assert [(c["name"], c["status"]) for c in report["checks"]] == [
        ("device_probe", dc.PASS), ("peak_memory", dc.FAIL), ("gemm_flops", dc.SKIP)]
    assert "time limit" in report["checks"][1]["reason"]
    assert (tmp_path / dc.TEXT_NAME).read_text().splitlines()[-1] == "1 passed, 1 failed, 1 skipped"


def test_first_module_falls_back_but_reports_a_missing_dependency():
    assert dc._first_module("studylib.no_such_module", "studylib.timing") is timing
    with pytest.raises(ModuleNotFoundError):
        dc._first_module("studylib.no_such_module", "studylib.also_missing")


class _Event(SimpleNamespace):
    pass


def test_kernel_class_breakdown_counts_a_cuda_kernel_once():
    """The profiler lists a CUDA kernel twice: in the self device time of the op that launched it and as
    an event of its own (device_type CUDA). The breakdown must count it once."""
    from torch.autograd import DeviceType

    rng = _Event(name="stage::feature_projection", cpu_parent=None, sequence_nr=-1, device_type=DeviceType.CPU,
                 self_device_time_total=0, self_cpu_time_total=5)
    mm = _Event(name="aten::mm", cpu_parent=rng, sequence_nr=7, device_type=DeviceType.CPU,
                self_device_time_total=100, self_cpu_time_total=10)
    kernel = _Event(name="sm90_xmma_gemm_f32f32_tf32f32_f32_nn_n_tilesize128x128x32", cpu_parent=None, sequence_nr=-1,
                    device_type=DeviceType.CUDA, self_device_time_total=100, self_cpu_time_total=0)
    prof = SimpleNamespace(events=lambda: [rng, mm, kernel])
    df = timing.kernel_class_breakdown(prof, "cuda")
    assert df["self_us"].sum() == 100
    assert df.iloc[0][["stage", "kernel_class", "op"]].tolist() == ["feature_projection", timing.GEMM, "aten::mm"]
