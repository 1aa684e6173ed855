"""Command line of the study suite: ``python -m studylib {run,report,data,scoreboard,list,device-check}``.

Exit status: 0 when everything asked for succeeded, 1 when a notebook failed or timed out,
2 for a usage error (unknown notebook or profile, invalid parameters) -- then nothing has run,
128 + the signal number after a Ctrl-C (130) or a SIGTERM (143) stopped a run.
No command ever prompts; none reads stdin.
"""

from __future__ import annotations

import argparse
import sys

from studylib import params

_EPILOG_MAIN = """\
examples:
  python -m studylib list                                  notebooks, profiles, parameters
  python -m studylib run --profile smoke                   every notebook of the smoke profile
  python -m studylib run 01-hgnn-training --profile small --set batch_size=128
  python -m studylib report                                rewrite reports/index.html
  python -m studylib scoreboard --markdown                 rewrite README.md's scoreboard section

Executed notebooks go to reports/<profile>/<notebook>.ipynb (kept also when they fail);
figures to figures/<notebook>/ with a JSON provenance sidecar each; reports/index.html shows both.
Environment: STUDYLIB_ROOT moves the project root; STUDYLIB_DATA_MIRROR and the other STUDYLIB_*
variables are passed on to the notebooks' kernels.
"""

_EPILOG_RUN = """\
Parameters come from notebooks/params/<profile>/<notebook>.yaml, then --set overrides; all
selected notebooks are validated before the first one starts. A fresh run id (UTC time + 4 hex
digits) is injected as parameter run_id unless --set run_id=... is given; kernels also see
STUDYLIB_PROFILE, STUDYLIB_RUN_ID and MPLBACKEND=Agg.

exit status: 0 all ok, 1 some notebook failed or timed out, 2 bad arguments/parameters (nothing ran),
130 interrupted by Ctrl-C, 143 by SIGTERM (the running notebook is recorded as interrupted).

examples:
  python -m studylib run --profile smoke
  python -m studylib run 00-hardware 01-hgnn-training --profile small --timeout 3600
  python -m studylib run --profile small --set device=cpu --set 01-hgnn-training:batch_size=64
"""


def _timeout(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds as a number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 (0 = no limit), got {value:g}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``python -m studylib`` with its ``run``, ``report``, ``data``, ``scoreboard``
    and ``list``."""
    parser = argparse.ArgumentParser(
        prog="python -m studylib",
        description="GNN systems study suite: run the parameterized notebooks through papermill, "
                    "list their parameters, and build the HTML report of figures and runs.",
        epilog=_EPILOG_MAIN, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = sub.add_parser(
        "run", help="execute notebooks with a profile's parameters (papermill), then write the report",
        description="Execute study notebooks with a parameter profile through papermill, one after the "
                    "other, each in its own kernel under a time-out, keeping every executed notebook; "
                    "print a summary table and rewrite reports/index.html.",
        epilog=_EPILOG_RUN, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_argument("notebooks", nargs="*", metavar="NOTEBOOK",
                     help="notebook names such as 01-hgnn-training (default: every notebook with a "
                          "YAML file in the profile, in name order)")
    run.add_argument("--profile", choices=params.PROFILES, default="small",
                     help="parameter profile: smoke (seconds, CI), small (minutes on a laptop), "
                          "paper (the published scale) (default: %(default)s)")
    run.add_argument("--timeout", type=_timeout, default=None, metavar="SECONDS",
                     help="wall-clock limit per notebook; past it the notebook is stopped, its partial "
                          "output kept and reported as timed out; 0 = no limit (default: 600 for "
                          "smoke, 1800 otherwise)")
    run.add_argument("--set", dest="overrides", action="append", default=[], metavar="[NOTEBOOK:]NAME=VALUE",
                     help="override a parameter (value parsed as YAML: 3, 0.5, true, cpu, [10,5]); "
                          "without NOTEBOOK: it applies to every selected notebook; repeatable")
    group = run.add_mutually_exclusive_group()
    group.add_argument("--keep-going", dest="keep_going", action="store_true", default=True,
                       help="after a failed or timed-out notebook, run the next one (default)")
    group.add_argument("--stop-on-failure", dest="keep_going", action="store_false",
                       help="stop at the first failed or timed-out notebook; the rest are skipped")
    run.add_argument("--no-progress", dest="progress", action="store_false",
                     help="no progress bars (one line per notebook is still printed)")
    run.add_argument("--no-report", dest="report", action="store_false",
                     help="do not rewrite reports/index.html at the end")

    report = sub.add_parser(
        "report", help="write reports/index.html (figures with provenance, executed notebooks)",
        description="Write reports/index.html: every figure figures/<notebook>/<name>.png with its "
                    "provenance sidecar <name>.json, and every executed notebook reports/<profile>/"
                    "<notebook>.ipynb (also converted to HTML next to it) with its status from "
                    "reports/runs.json. The page is self-contained: relative links, no network.")
    report.add_argument("--no-html", dest="convert", action="store_false",
                        help="do not convert executed notebooks to HTML with nbconvert")

    data = sub.add_parser(
        "data", help="fetch datasets into the cache data/ (from $STUDYLIB_DATA_MIRROR, else download)",
        description="Resolve datasets into the project's cache: copy them from the read-only mirror "
                    "named by STUDYLIB_DATA_MIRROR (checksums verified) or, when that variable is not set, "
                    "download them -- the only command that uses the network. Without names: "
                    "every dataset of the small profiles (name ogbn-mag to fetch it for the paper profile). "
                    "Dataset specs are taken too: ogb:<name>, planetoid:<name>, pyg:<class>[/<name>] are "
                    "downloaded into the cache; user files (heco:, ratings:, lightgcn:) are only checked.")
    data.add_argument("names", nargs="*", metavar="DATASET",
                      help="dataset names or specs (default: the small ones)")

    board = sub.add_parser(
        "scoreboard", help="the suite's findings with their verdicts (from figures/*/findings.json)",
        description="Read every figures/<notebook>/findings.json (or results/<notebook>/findings.json with "
                    "--results) and print the scoreboard; with --markdown rewrite README.md's scoreboard "
                    "section between its marker comments; with --check only say whether it is up to date "
                    "(exit status 1 when not).")
    board.add_argument("--results", action="store_true", help="read results/ (this machine's latest runs) "
                                                              "instead of figures/ (the committed reference run)")
    mode = board.add_mutually_exclusive_group()
    mode.add_argument("--markdown", action="store_true", help="rewrite README.md's scoreboard section")
    mode.add_argument("--check", action="store_true", help="exit 1 when README.md's scoreboard section is stale")

    lst = sub.add_parser(
        "list", help="list notebooks, their profiles and their parameters",
        description="List the notebooks, the profiles with a parameter file for each (and the values it "
                    "sets), and each notebook's declared parameters: name, type, default, description.")
    lst.add_argument("notebooks", nargs="*", metavar="NOTEBOOK", help="only these notebooks")

    from studylib import device_check

    dc = sub.add_parser(
        "device-check", help="exercise the GPU paths (CPU when there is no GPU); write a JSON and a summary",
        description="Run the device check: device probe, stage timers against CUDA events, peak memory, "
                    "GEMM, STREAM and host/device copies (00), the operations of 03 in fp32 and fp16, the PyG "
                    "HGNNs of 01 (stage timing, kernel classes, instrumentation overhead). Writes "
                    "DIR/device_check.json and DIR/device_check.txt; exit status 0 all passed or skipped, 1 a "
                    "check failed, 2 bad arguments, 3 the time limit was reached. Needs torch, torch_geometric, "
                    "numpy, pandas, psutil, pydantic, PyYAML; not DGL, papermill or plotting libraries.")
    device_check.add_arguments(dc)
    return parser


def _error(message: str) -> int:
    for line in str(message).splitlines() or [""]:
        print(f"error: {line}", file=sys.stderr)
    return 2


def main(argv: list[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``) and return the exit status.

    argparse itself exits with status 2 on malformed arguments (``SystemExit``).
    """
    args = build_parser().parse_args(argv)
    if args.command == "device-check":  # before the runner: it needs no papermill, plotting or DGL
        from studylib import device_check

        return device_check.run_from_args(args)
    from studylib import runner

    if args.command == "run":
        try:
            common, scoped = runner.parse_overrides(args.overrides)
            results = runner.run_notebooks(
                args.notebooks, args.profile, common, timeout=args.timeout, keep_going=args.keep_going,
                notebook_overrides=scoped, progress=args.progress, write_report=args.report)
        except (ValueError, FileNotFoundError) as err:
            return _error(str(err))
        except KeyboardInterrupt as err:  # Ctrl-C or SIGTERM (runner.RunInterrupted)
            signum = getattr(err, "signum", 2)
            done = getattr(err, "results", [])
            if done:
                print(runner.format_summary(done))
            print("interrupted: the running notebook was stopped and recorded as interrupted in "
                  f"{runner.display_path(runner.paths.reports_dir() / 'runs.json')}", file=sys.stderr)
            return 128 + signum
        print(runner.format_summary(results))
        if args.report:
            print(f"report: {runner.display_path(runner.paths.reports_dir() / 'index.html')}")
        return 0 if all(r.ok for r in results) else 1
    if args.command == "report":
        path = runner.write_index(convert=args.convert)
        print(path)
        return 0
    if args.command == "data":
        from studylib import data

        names = args.names or [n for n in data.dataset_names() if not n.startswith("ogbn")]
        failed = 0
        for name in names:
            try:
                if ":" in name:
                    from studylib.data import specs

                    print(f"{name:16s} {specs.download(name)}")
                else:
                    print(f"{name:16s} {data.resolve(name, download=True)}")
            except (ValueError, FileNotFoundError) as err:
                failed += 1
                _error(str(err))
        return 1 if failed else 0
    if args.command == "scoreboard":
        from studylib import findings, paths

        folder = paths.results_dir() if args.results else paths.figures_dir()
        if args.results and (args.markdown or args.check):
            return _error("the README's scoreboard is the committed reference run's: --markdown and --check "
                          "read figures/, not --results")
        try:
            if args.markdown or args.check:
                stale = findings.update_readme(folder=folder, check=args.check)
                print(f"README.md scoreboard {'is stale' if stale and args.check else 'rewritten' if stale else 'up to date'}")
                return 1 if stale and args.check else 0
            print(findings.scoreboard_markdown(findings.load(folder), source=f"{folder}/<notebook>/findings.json"))
        except (ValueError, OSError) as err:
            return _error(str(err))
        return 0
    if args.command == "list":
        try:
            print(runner.format_listing(args.notebooks))
        except ValueError as err:
            return _error(str(err))
        return 0
    return _error(f"unknown command {args.command!r}")  # pragma: no cover (argparse rejects it)


if __name__ == "__main__":
    sys.exit(main())
