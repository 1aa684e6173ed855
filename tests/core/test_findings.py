"""Findings declared as data: every verdict reachable from small synthetic tables, noisy and failed
rows reported, the findings files, the scoreboard and the README's generated section."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from studylib import findings as fd

NO_GPU = {"gpus": [], "cores_available": 2, "logical_cores": 2, "cpu_model": "Test CPU", "git_sha": "abc123"}
TWO_GPUS = {**NO_GPU, "gpus": [{"name": "G"}, {"name": "G"}]}


def _share(t: fd.Tables) -> fd.Measured:
    """Median all-reduce share of a step over the ok rows."""
    d = t.ok("steps")
    share = float(np.median(d["allreduce_seconds"] / d["step_seconds"]))
    return fd.Measured(value=share, evidence=f"all-reduce takes median {share:.0%} of a step over {len(d)} rows")


SHARE = fd.Finding(
    id="allreduce-share", claim="Gradient all-reduce takes a large share of a data-parallel step",
    where="Fig. 9", paper="up to 40%", tables=("steps",), measure=_share,
    criterion=fd.at_least("all-reduce share of a step (median)", reproduced=0.2, partly=0.1),
    testable=fd.needs_gpus(2, "processes on shared CPU cores cannot stand in for GPUs"))


def _steps(shares, status=None, noisy=None) -> pd.DataFrame:
    df = pd.DataFrame({"step_seconds": 1.0, "allreduce_seconds": shares})
    if status is not None:
        df["status"] = status
    if noisy is not None:
        df["noisy"] = noisy
    return df


def _verdict(finding, tables, machine=TWO_GPUS) -> dict:
    return fd.evaluate_one(finding, tables, machine, "01-test")


def test_every_declared_verdict_of_a_threshold_finding_is_reachable():
    cases = [{"steps": _steps([0.3, 0.3, 0.3])}, {"steps": _steps([0.15, 0.15])}, {"steps": _steps([0.01])},
             {}]
    assert fd.reached_verdicts(SHARE, cases, TWO_GPUS) | fd.reached_verdicts(SHARE, cases[:1], NO_GPU) \
        == SHARE.verdicts() == set(fd.VERDICTS)
    r = _verdict(SHARE, cases[0])
    assert r["verdict"] == fd.REPRODUCED and r["ours"] == "0.3" and r["value"] == pytest.approx(0.3)
    assert r["paper"] == "up to 40%" and r["where"] == "Fig. 9"
    assert "30%" in r["evidence"] and not r["noisy"] and r["failed_rows"] == 0
    assert json.loads(r["thresholds"]) == {"reproduced": 0.2, "partly": 0.1}
    assert r["criterion"] == ("reproduced if all-reduce share of a step (median) >= 0.2; partly if >= 0.1; "
                              "else not reproduced")


def test_not_testable_here_gives_the_reason_with_this_machines_numbers():
    r = _verdict(SHARE, {"steps": _steps([0.3])}, NO_GPU)
    assert r["verdict"] == fd.NOT_TESTABLE
    assert r["evidence"] == "needs 2 GPUs, this machine has 0: processes on shared CPU cores cannot stand in for GPUs"
    assert r["ours"] == "" and np.isnan(r["value"])
    assert fd.needs_cores(4)(NO_GPU, fd.Tables()) == "needs 4 cores, this machine has 2"
    assert fd.needs_cores(2)(NO_GPU, fd.Tables()) is None


def test_not_measured_names_the_missing_input():
    assert _verdict(SHARE, {})["evidence"] == "table 'steps' is missing"
    assert _verdict(SHARE, {"steps": None})["verdict"] == fd.NOT_MEASURED
    assert _verdict(SHARE, {"steps": _steps([])})["evidence"] == "table 'steps' is empty"
    lib = fd.Finding(id="needs-lib", claim="c", where="Sec. 1", measure=_share, tables=("steps",),
                     libraries=("studylib_no_such_library",), criterion=fd.at_least("x", 1.0))
    r = _verdict(lib, {"steps": _steps([0.3])})
    assert r["verdict"] == fd.NOT_MEASURED and r["evidence"] == "library studylib_no_such_library not installed"

    def raises(t):
        raise fd.NotMeasured("only one process was run")

    one = fd.Finding(id="one", claim="c", where="Sec. 1", measure=raises, criterion=fd.at_least("x", 1.0))
    assert _verdict(one, {})["evidence"] == "only one process was run"
    # a table indexed by the measure but not declared is reported by name too
    undeclared = fd.Finding(id="u", claim="c", where="Sec. 1", measure=lambda t: fd.Measured(len(t["other"]), ""),
                            criterion=fd.at_least("x", 1.0))
    assert _verdict(undeclared, {})["evidence"] == "table 'other' is missing"
    nan = fd.Finding(id="nan", claim="c", where="Sec. 1", measure=lambda t: fd.Measured(float("nan"), "e"),
                     criterion=fd.at_least("x", 1.0))
    assert _verdict(nan, {})["verdict"] == fd.NOT_MEASURED


def test_failed_rows_are_counted_never_dropped_silently():
    steps = _steps([0.3, 0.3, np.nan, np.nan, np.nan], status=["ok", "ok", "oom", "oom", "unsupported"])
    r = _verdict(SHARE, {"steps": steps})
    assert r["verdict"] == fd.REPRODUCED and r["failed_rows"] == 3
    assert "failed rows not used: 3 (steps: oom 2, unsupported 1)" in r["evidence"]
    assert "over 2 rows" in r["evidence"]
    # all rows failed: not measured, with the counts
    r = _verdict(SHARE, {"steps": _steps([np.nan], status=["oom"])})
    assert r["verdict"] == fd.NOT_MEASURED and r["failed_rows"] == 1
    assert "no successful rows" in r["evidence"] and "oom 1" in r["evidence"]
    # failures the measure itself left out add up
    extra = fd.Finding(id="x", claim="c", where="Sec. 1", tables=("steps",), criterion=fd.at_least("x", 0.0),
                       measure=lambda t: fd.Measured(1.0, "e", failed={"refused": 2}))
    r = _verdict(extra, {"steps": steps})
    assert r["failed_rows"] == 5 and "measure: refused 2" in r["evidence"]


def test_noisy_timings_are_flagged_in_the_verdict():
    r = _verdict(SHARE, {"steps": _steps([0.3, 0.3], noisy=[True, False])})
    assert r["verdict"] == fd.REPRODUCED and r["noisy"]
    assert "1 timing summary behind this verdict is flagged noisy" in r["evidence"]
    assert fd.verdict_label(r["verdict"], r["noisy"], 2) == "reproduced (noisy, 2 failed rows)"
    quiet = _verdict(SHARE, {"steps": _steps([0.3, 0.3], noisy=[False, False])})
    assert not quiet["noisy"] and "noisy" not in quiet["evidence"]
    # the measure may count noisy summaries itself (from summarize_by)
    raw = pd.DataFrame({"cfg": ["a"] * 5 + ["b"] * 5, "seconds": [1, 1, 1, 1, 1, 1, 2, 3, 4, 5.0]})
    summary = fd.summarize_by(raw, "cfg")
    assert list(summary["noisy"]) == [False, True] and fd.count_noisy(summary) == 1
    own = fd.Finding(id="own", claim="c", where="Sec. 1", tables=("raw",), criterion=fd.at_least("x", 0.0),
                     measure=lambda t: fd.Measured(1.0, "e", noisy=fd.count_noisy(fd.summarize_by(t["raw"], "cfg"))))
    assert _verdict(own, {"raw": raw})["noisy"]


def test_all_of_and_fraction_criteria_reach_their_verdicts():
    def per_config(t):
        d = t.ok("grid")
        return fd.Measured(list(d["faster"]), f"faster in {int(d['faster'].sum())} of {len(d)} configurations")

    grid = lambda flags: {"grid": pd.DataFrame({"faster": flags})}  # noqa: E731
    every = fd.Finding(id="every", claim="c", where="Table 2", tables=("grid",), measure=per_config,
                       criterion=fd.all_of("configurations where PyG is faster"))
    cases = [grid([True, True]), grid([True, False]), grid([False, False]), {}]
    assert fd.reached_verdicts(every, cases) == every.verdicts()
    r = _verdict(every, grid([True, False, True]))
    assert r["verdict"] == fd.PARTLY and r["ours"] == "2 of 3" and r["value"] == pytest.approx(2 / 3)
    assert "reproduced if all hold" in r["criterion"]
    most = fd.Finding(id="most", claim="c", where="Table 2", tables=("grid",), measure=per_config,
                      criterion=fd.fraction_of("configurations where PyG is faster", 0.75, 0.5))
    verdicts = [_verdict(most, grid(f))["verdict"] for f in ([True] * 3 + [False], [True, False], [True, False, False])]
    assert verdicts == [fd.REPRODUCED, fd.PARTLY, fd.NOT_REPRODUCED]
    assert _verdict(most, grid([True]))["criterion"] == ("reproduced if share of configurations where PyG is "
                                                         "faster >= 0.75; partly if >= 0.5; else not reproduced")


def test_at_most_and_custom_criteria():
    c = fd.at_most("slowdown", reproduced=1.1, partly=1.5)
    assert [c.decide(v) for v in (1.0, 1.3, 2.0)] == [fd.REPRODUCED, fd.PARTLY, fd.NOT_REPRODUCED]
    assert c.describe() == "reproduced if slowdown <= 1.1; partly if <= 1.5; else not reproduced"
    rule = fd.custom("exponent", "reproduced if within tol of 1", lambda v, th: fd.REPRODUCED if abs(v - 1) <= th["tol"]
                     else fd.NOT_REPRODUCED, [fd.REPRODUCED, fd.NOT_REPRODUCED], tol=0.2)
    assert rule.thresholds() == {"tol": 0.2} and rule.decide(0.9) == fd.REPRODUCED and rule.decide(1.5) == fd.NOT_REPRODUCED
    bad = fd.custom("x", "t", lambda v, th: fd.PARTLY, [fd.REPRODUCED])
    with pytest.raises(ValueError, match="declared verdicts"):
        bad.decide(1)
    assert fd.at_least("x", 1.0).verdicts() == {fd.REPRODUCED, fd.NOT_REPRODUCED}
    with pytest.raises(ValueError, match="partly threshold"):
        fd.at_least("x", 0.5, partly=0.9)
    with pytest.raises(TypeError, match="real number"):
        fd.at_least("x", 1.0).decide([True])


def test_the_common_aggregation():
    assert fd.all_any([True, True]) == fd.REPRODUCED
    assert fd.all_any([True, False]) == fd.PARTLY
    assert fd.all_any([False]) == fd.NOT_REPRODUCED
    with pytest.raises(fd.NotMeasured):
        fd.all_any([])
    assert fd.grade(0.5, 0.4) == fd.REPRODUCED and fd.grade(0.3, 0.4, 0.2) == fd.PARTLY
    assert fd.grade(0.1, 0.4, 0.2) == fd.NOT_REPRODUCED and fd.grade(3, 2, higher=False) == fd.NOT_REPRODUCED


def test_declarations_are_checked():
    with pytest.raises(ValueError, match="finding id"):
        fd.Finding(id="Bad Id", claim="c", where="w", measure=_share, criterion=fd.at_least("x", 1))
    f = fd.Finding(id="ok", claim="c", where="w", measure=_share, criterion=fd.at_least("x", 1), tables="steps")
    assert f.tables == ("steps",)
    with pytest.raises(ValueError, match="duplicate"):
        fd.evaluate([f, f], {}, machine=NO_GPU)
    bad = fd.Finding(id="bad", claim="c", where="w", measure=lambda t: 1.0, criterion=fd.at_least("x", 1))
    with pytest.raises(TypeError, match="not Measured"):
        fd.evaluate([bad], {}, machine=NO_GPU)


def test_record_writes_the_findings_files_and_the_display_table(output_dirs):
    frame = fd.record("01-test", [SHARE], {"steps": _steps([0.3, 0.3], status=["ok", "oom"])},
                      parameters={"run_id": "r1", "x": 1}, machine=TWO_GPUS, extra={"fits": [{"a": float("nan")}]})
    assert list(frame.columns) == list(fd.COLUMNS) and len(frame) == 1
    res = output_dirs / "results" / "01-test"
    for ext in ("parquet", "csv", "json"):
        assert (res / f"findings.{ext}").is_file()
    doc = json.loads((output_dirs / "figures" / "01-test" / "findings.json").read_text())
    assert doc == json.loads((res / "findings.json").read_text())
    assert doc["run_id"] == "r1" and doc["git_sha"] == "abc123" and doc["fits"] == [{"a": None}]
    assert doc["findings"][0]["verdict"] == fd.REPRODUCED and doc["findings"][0]["failed_rows"] == 1
    assert pd.read_parquet(res / "findings.parquet")["claim"].tolist() == [SHARE.claim]
    with pytest.raises(ValueError, match="reserved"):
        fd.write("01-test", frame, machine=TWO_GPUS, extra={"findings": []})
    table = fd.show(frame)
    html = table._repr_html_()
    assert "up to 40% (Fig. 9)" in html and 'class="v-reproduced"' in html and "reproduced (1 failed row)" in html
    md = table._repr_markdown_()
    assert md.splitlines()[0] == "| claim | paper | ours | criterion | verdict | evidence |"
    assert "| 0.3 |" in md and "**reproduced (1 failed row)**" in md


def _write_board(figures: Path) -> None:
    for nb, machine, shares in (("00-a", TWO_GPUS, [0.3]), ("01-b", NO_GPU, [0.3])):
        frame = fd.evaluate([SHARE], {"steps": _steps(shares)}, machine=machine, notebook=nb)
        fd.write(nb, frame, parameters={"run_id": f"run-{nb}"}, machine={**machine, "git_sha": "f" * 40})


def test_scoreboard_reads_every_findings_file(output_dirs):
    _write_board(output_dirs / "figures")
    board = fd.load()
    assert list(board["notebook"]) == ["00-a", "01-b"]
    assert list(board["verdict"]) == [fd.REPRODUCED, fd.NOT_TESTABLE]
    assert fd.tally(board) == {fd.REPRODUCED: 1, fd.PARTLY: 0, fd.NOT_REPRODUCED: 0, fd.NOT_MEASURED: 0,
                               fd.NOT_TESTABLE: 1}
    assert fd.load(output_dirs / "results")["run_id"].tolist() == ["run-00-a", "run-01-b"]
    md = fd.scoreboard_markdown(board)
    assert md.startswith("2 findings: 1 reproduced, 0 partly, 0 not reproduced, 0 not measured, 1 not testable here.")
    assert "| 01-b | Gradient all-reduce" in md and "**not testable here**" in md
    assert "- `00-a`: run run-00-a, profile" in md and "git ffffffffffff," in md
    # old-format records (finding, verdict, evidence) are read too
    old = output_dirs / "figures" / "02-old"
    old.mkdir()
    (old / "findings.json").write_text(json.dumps({"run_id": "r", "findings": [
        {"finding": "Old claim", "verdict": "partly", "evidence": "e"}]}))
    assert fd.load().iloc[-1][["notebook", "claim", "verdict"]].tolist() == ["02-old", "Old claim", "partly"]
    (old / "findings.json").write_text("{not json")
    with pytest.raises(ValueError, match="02-old"):
        fd.load()


def test_report_includes_the_scoreboard(output_dirs, monkeypatch):
    from studylib import runner

    monkeypatch.setenv("STUDYLIB_ROOT", str(output_dirs))
    page = runner.write_index(convert=False).read_text()
    assert "Scoreboard" in page and "no findings files yet" in page
    _write_board(output_dirs / "figures")
    page = runner.write_index(convert=False).read_text()
    assert "Gradient all-reduce takes a large share" in page and "not testable here" in page
    assert 'id="00-a-findings"' not in page  # a findings file is not listed as a figure
    assert (output_dirs / "reports" / "scoreboard.csv").is_file()
    assert json.loads((output_dirs / "reports" / "scoreboard.json").read_text())["tally"][fd.REPRODUCED] == 1


def test_readme_section_is_generated_and_markers_are_checked(tmp_path, output_dirs):
    readme = tmp_path / "README.md"
    readme.write_text(f"# T\n\n## Scoreboard\n\n{fd.README_START}\nhand-written\n{fd.README_END}\n\n## Next\n")
    assert fd.update_readme(readme, check=True) is True and "hand-written" in readme.read_text()
    assert fd.update_readme(readme) is True
    text = readme.read_text()
    assert "No findings files yet" in text and text.endswith(f"{fd.README_END}\n\n## Next\n")
    assert fd.update_readme(readme) is False
    _write_board(output_dirs / "figures")
    assert fd.update_readme(readme, check=True) is True
    fd.update_readme(readme)
    assert "| 00-a | Gradient all-reduce" in readme.read_text() and "No findings files yet" not in readme.read_text()
    with pytest.raises(ValueError, match="once each"):
        fd.render_readme("no markers", fd.load())


def test_the_readme_scoreboard_is_the_one_generated_from_the_committed_findings_files():
    """README.md's scoreboard section equals what ``python -m studylib scoreboard --markdown`` writes
    from figures/*/findings.json; with no findings files committed yet it must say so."""
    from conftest import PROJECT_ROOT

    readme = (PROJECT_ROOT / "README.md").read_text()
    committed = fd.load(PROJECT_ROOT / "figures")
    assert fd.render_readme(readme, committed) == readme, \
        "README.md's scoreboard is stale: run `python -m studylib scoreboard --markdown` and commit README.md"
    if committed.empty:
        assert "No findings files yet" in readme.split(fd.README_START)[1]
    else:
        assert all(c in readme for c in committed["claim"].map(fd._md))


def test_scoreboard_command(output_dirs, monkeypatch, capsys):
    from studylib.__main__ import main

    _write_board(output_dirs / "figures")
    assert main(["scoreboard"]) == 0
    assert "2 findings: 1 reproduced" in capsys.readouterr().out
    (output_dirs / "README.md").write_text(f"{fd.README_START}\n{fd.README_END}\n")
    monkeypatch.setenv("STUDYLIB_ROOT", str(output_dirs))
    assert main(["scoreboard", "--check"]) == 1
    assert main(["scoreboard", "--markdown"]) == 0 and main(["scoreboard", "--check"]) == 0
    assert "| 01-b |" in (output_dirs / "README.md").read_text()
    assert main(["scoreboard", "--results", "--markdown"]) == 2
