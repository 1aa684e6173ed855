"""Findings: a paper's claim declared once, as data, and its verdict on this machine's tables.

A :class:`Finding` names the claim (short), where the paper shows it and the paper's number when it
gives one, the tables it needs, a ``measure`` function of those tables that returns the measured
quantity and evidence text computed from the numbers only (:class:`Measured`), the
:class:`Criterion` that turns the quantity into a verdict (thresholds fixed before measuring and
written into the output), and a ``testable`` predicate saying when the test means something on the
hardware at hand. Declarations live in each study's ``findings.py``::

    from studylib import findings as fd

    AGGREGATION_DOMINATES = fd.Finding(
        id="aggregation-dominates",
        claim="Neighbor aggregation is the largest stage of HGNN training",
        where="Fig. 3", paper="aggregation 74% of time (RGCN, ACM)",
        tables=("kernels",),
        measure=lambda t: fd.Measured(value=[...], evidence="..."),
        criterion=fd.all_of("configurations whose largest stage is neighbor aggregation"),
    )
    frame = fd.record("01-hgnn-training", [AGGREGATION_DOMINATES], {"kernels": kernels}, parameters=PARAMS)
    fd.show(frame)                     # the notebook's table: claim, paper, ours, criterion, verdict

Verdicts (:data:`VERDICTS`): *reproduced*, *partly*, *not reproduced* (decided by the criterion),
*not measured* (an input is missing: a library, a table, or rows the measure needs; the evidence
says which) and *not testable here* (the hardware cannot stand in for the paper's; the evidence
gives the reason). A verdict resting on timing summaries flagged ``noisy`` (see
:func:`studylib.timing.summarize`) says so in the ``noisy`` column and in the evidence; rows whose
``status`` is not ``ok`` (out of memory, unsupported, refused) are counted in ``failed_rows`` and in
the evidence, never dropped silently.

:func:`record` writes the findings of a notebook to ``results/<notebook>/findings.{parquet,csv,json}``
and ``figures/<notebook>/findings.json`` (committed with the reference run's figures). The suite's
scoreboard is read back from those files: :func:`load`, :func:`scoreboard_markdown`,
:func:`update_readme` (the README's section between :data:`README_START` and :data:`README_END`,
written by ``python -m studylib scoreboard --markdown``) and :func:`report_section` (the scoreboard
of ``reports/index.html``).
"""

from __future__ import annotations

import html
import importlib.util
import json
import math
import numbers
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from studylib import paths, results

# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------

REPRODUCED = "reproduced"
PARTLY = "partly"
NOT_REPRODUCED = "not reproduced"
NOT_MEASURED = "not measured"
NOT_TESTABLE = "not testable here"
#: Every verdict, in the order the scoreboard counts them.
VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED, NOT_MEASURED, NOT_TESTABLE)
#: The verdicts a criterion decides (the other two are decided before measuring).
MEASURED_VERDICTS = (REPRODUCED, PARTLY, NOT_REPRODUCED)

#: File stem of a notebook's findings files (results/<notebook>/ and figures/<notebook>/).
FINDINGS_NAME = "findings"
#: Columns of the tidy findings table, in order.
COLUMNS = ("notebook", "id", "claim", "where", "paper", "ours", "value", "criterion", "thresholds",
           "verdict", "noisy", "failed_rows", "evidence")
#: The marker comments around the README's generated scoreboard section.
README_START = "<!-- scoreboard:start -->"
README_END = "<!-- scoreboard:end -->"

_ID = re.compile(r"^[a-z0-9][a-z0-9_.-]*$")


class NotMeasured(Exception):
    """Raised by a ``measure`` function (or by :class:`Tables`) when an input it needs is absent;
    the message names the input (table, column, configuration) and becomes the evidence of a
    *not measured* verdict."""


def all_any(flags: Iterable[bool]) -> str:
    """The suite's common aggregation: *reproduced* if every flag holds, *partly* if at least one
    does, *not reproduced* if none does.

    ``flags`` are per-configuration (or per-part) outcomes of one claim, each decided by a threshold
    fixed before measuring. Raises :class:`NotMeasured` when there are no flags at all (nothing was
    measured, so nothing can be concluded).
    """
    values = [bool(f) for f in flags]
    if not values:
        raise NotMeasured("no configuration was measured")
    return REPRODUCED if all(values) else PARTLY if any(values) else NOT_REPRODUCED


def grade(value: float, reproduced: float, partly: float | None = None, *, higher: bool = True) -> str:
    """A verdict from one number against two thresholds fixed before measuring.

    With ``higher=True``: *reproduced* if ``value >= reproduced``, *partly* if ``value >= partly``
    (when given), else *not reproduced*; with ``higher=False`` the comparisons are ``<=``.
    Raises :class:`NotMeasured` when ``value`` is NaN or infinite and ``ValueError`` when the
    thresholds are in the wrong order (``partly`` must be the easier one).
    """
    v = float(value)
    if not math.isfinite(v):
        raise NotMeasured(f"the measured value is {v}")
    if partly is not None and (partly > reproduced if higher else partly < reproduced):
        raise ValueError(f"partly threshold {partly} must be {'<=' if higher else '>='} the reproduced "
                         f"threshold {reproduced}")
    ge = (lambda a, b: a >= b) if higher else (lambda a, b: a <= b)
    if ge(v, reproduced):
        return REPRODUCED
    if partly is not None and ge(v, partly):
        return PARTLY
    return NOT_REPRODUCED


# --------------------------------------------------------------------------------------------
# Criteria: thresholds as data
# --------------------------------------------------------------------------------------------

def _fmt(x: Any) -> str:
    if isinstance(x, bool) or x is None:
        return str(x)
    if isinstance(x, numbers.Real):
        return f"{float(x):.4g}"
    return str(x)


@dataclass(frozen=True)
class Criterion:
    """How a measured quantity becomes a verdict, fixed before measuring.

    Build one with :func:`at_least`, :func:`at_most`, :func:`all_of`, :func:`fraction_of` or
    :func:`custom`. ``describe()`` is the human text and ``thresholds()`` the numbers; both go into
    the findings table.

    Attributes:
        quantity: what the measured value is, with its unit (e.g. ``"all-reduce share of a step"``).
        kind: ``at_least`` | ``at_most`` (value: one real number), ``all_any`` | ``fraction``
            (value: a sequence of booleans, one per configuration or per part of the claim),
            ``custom`` (value: anything ``rule`` accepts).
        reproduced, partly: the thresholds (``partly`` may be ``None``: no partial level).
        text: the rule in words (``custom`` only).
        rule: ``rule(value, thresholds) -> verdict`` (``custom`` only).
        custom_thresholds: ``((name, number), ...)`` of a ``custom`` rule.
        custom_verdicts: the verdicts a ``custom`` rule can return.
    """

    quantity: str
    kind: str
    reproduced: float | None = None
    partly: float | None = None
    text: str | None = None
    rule: Callable[[Any, dict], str] | None = field(default=None, compare=False)
    custom_thresholds: tuple[tuple[str, float], ...] = ()
    custom_verdicts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        kinds = ("at_least", "at_most", "all_any", "fraction", "custom")
        if self.kind not in kinds:
            raise ValueError(f"criterion kind must be one of {kinds}, got {self.kind!r}")
        if self.kind == "custom":
            if self.rule is None or not self.text:
                raise ValueError("a custom criterion needs text and rule")
            bad = [v for v in self.custom_verdicts if v not in MEASURED_VERDICTS]
            if bad or not self.custom_verdicts:
                raise ValueError(f"custom_verdicts must be a non-empty subset of {MEASURED_VERDICTS}, "
                                 f"got {self.custom_verdicts}")
        elif self.kind in ("at_least", "at_most", "fraction"):
            if self.reproduced is None:
                raise ValueError(f"a {self.kind} criterion needs a reproduced threshold")
            # grade() rejects thresholds in the wrong order
            grade(self.reproduced, self.reproduced, self.partly, higher=self.kind != "at_most")

    def thresholds(self) -> dict[str, float]:
        """The thresholds as data: ``{"reproduced": x, "partly": y}`` (or a custom rule's)."""
        if self.kind == "custom":
            return dict(self.custom_thresholds)
        if self.kind == "all_any":
            return {"reproduced": 1.0, "partly": "any"}  # type: ignore[dict-item]
        out = {"reproduced": self.reproduced}
        if self.partly is not None:
            out["partly"] = self.partly
        return out

    def describe(self) -> str:
        """The criterion in words, generated from the thresholds (what the findings table shows)."""
        q = self.quantity
        if self.kind == "custom":
            return f"{q}: {self.text}"
        if self.kind == "all_any":
            return f"{q}: reproduced if all hold, partly if some hold, else not reproduced"
        op = "<=" if self.kind == "at_most" else ">="
        what = f"share of {q}" if self.kind == "fraction" else q
        text = f"reproduced if {what} {op} {_fmt(self.reproduced)}"
        if self.partly is not None:
            text += f"; partly if {op} {_fmt(self.partly)}"
        return text + "; else not reproduced"

    def verdicts(self) -> frozenset[str]:
        """The verdicts this criterion can return (each must be reachable by a test)."""
        if self.kind == "custom":
            return frozenset(self.custom_verdicts)
        if self.kind == "all_any" or self.partly is not None:
            return frozenset(MEASURED_VERDICTS)
        return frozenset({REPRODUCED, NOT_REPRODUCED})

    def decide(self, value: Any) -> str:
        """The verdict for ``value``.

        Raises :class:`NotMeasured` for a NaN number or an empty sequence of flags, and
        ``TypeError`` when ``value`` has the wrong type for the criterion's kind.
        """
        if self.kind == "custom":
            verdict = self.rule(value, self.thresholds())  # type: ignore[misc]
            if verdict not in self.custom_verdicts:
                raise ValueError(f"custom rule of {self.quantity!r} returned {verdict!r}, not one of "
                                 f"its declared verdicts {self.custom_verdicts}")
            return verdict
        if self.kind in ("all_any", "fraction"):
            flags = _flags(value, self.quantity)
            if self.kind == "all_any":
                return all_any(flags)
            if not flags:
                raise NotMeasured("no configuration was measured")
            return grade(sum(flags) / len(flags), self.reproduced, self.partly)  # type: ignore[arg-type]
        return grade(_number(value, self.quantity), self.reproduced, self.partly,  # type: ignore[arg-type]
                     higher=self.kind == "at_least")


def _flags(value: Any, quantity: str) -> list[bool]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{quantity}: expected a sequence of booleans, got {type(value).__name__}")
    out = []
    for v in value:
        if not isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{quantity}: expected booleans, got {v!r}")
        out.append(bool(v))
    return out


def _number(value: Any, quantity: str) -> float:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{quantity}: expected a real number, got {value!r}")
    return float(value)


def at_least(quantity: str, reproduced: float, partly: float | None = None) -> Criterion:
    """*reproduced* if the value >= ``reproduced``, *partly* if >= ``partly``, else *not reproduced*."""
    return Criterion(quantity, "at_least", reproduced, partly)


def at_most(quantity: str, reproduced: float, partly: float | None = None) -> Criterion:
    """*reproduced* if the value <= ``reproduced``, *partly* if <= ``partly``, else *not reproduced*."""
    return Criterion(quantity, "at_most", reproduced, partly)


def all_of(quantity: str) -> Criterion:
    """The value is a sequence of booleans: *reproduced* if all hold, *partly* if some do (see
    :func:`all_any`)."""
    return Criterion(quantity, "all_any")


def fraction_of(quantity: str, reproduced: float, partly: float | None = None) -> Criterion:
    """The value is a sequence of booleans; its share of ``True`` is graded like :func:`at_least`."""
    return Criterion(quantity, "fraction", reproduced, partly)


def custom(quantity: str, text: str, rule: Callable[[Any, dict], str], verdicts: Iterable[str],
           **thresholds: float) -> Criterion:
    """A rule of its own: ``rule(value, thresholds) -> verdict``; ``text`` says it in words,
    ``thresholds`` are its numbers (written into the output), ``verdicts`` those it can return."""
    return Criterion(quantity, "custom", text=text, rule=rule, custom_thresholds=tuple(sorted(thresholds.items())),
                     custom_verdicts=tuple(verdicts))


# --------------------------------------------------------------------------------------------
# Tables and measurements
# --------------------------------------------------------------------------------------------

def ok_rows(df: pd.DataFrame) -> pd.DataFrame:
    """Rows whose ``status`` is ``ok`` (all rows when there is no ``status`` column; a missing
    status, e.g. from a concatenation with a table that records none, counts as ok)."""
    if "status" not in df.columns:
        return df
    return df[df["status"].isna() | (df["status"] == "ok")]


def failed_counts(df: pd.DataFrame | None) -> dict[str, int]:
    """``{status: rows}`` for the rows whose ``status`` is set and not ``ok`` (e.g. ``{"oom": 2}``)."""
    if df is None or "status" not in df.columns:
        return {}
    bad = df["status"][df["status"].notna() & (df["status"] != "ok")]
    return {str(k): int(v) for k, v in bad.value_counts().sort_index().items()}


class Tables(Mapping):
    """A study's tables by name (``pandas.DataFrame``); names given as ``None`` count as missing.

    ``tables[name]`` raises :class:`NotMeasured` naming a missing table, so a ``measure`` function
    that indexes a table it needs yields *not measured* on its own; :meth:`ok` gives the rows whose
    status is ``ok`` and raises :class:`NotMeasured` when there are none.
    """

    def __init__(self, tables: Mapping[str, pd.DataFrame | None] | None = None):
        self._t = {str(k): v for k, v in (tables or {}).items() if v is not None}

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self._t:
            raise NotMeasured(f"table {name!r} is missing")
        return self._t[name]

    def __contains__(self, name: object) -> bool:
        return name in self._t

    def __iter__(self) -> Iterator[str]:
        return iter(self._t)

    def __len__(self) -> int:
        return len(self._t)

    def get(self, name: str, default: Any = None) -> Any:
        """The table ``name``, or ``default`` when it is missing."""
        return self._t.get(name, default)

    def ok(self, name: str) -> pd.DataFrame:
        """The rows of table ``name`` whose status is ok; :class:`NotMeasured` when none."""
        df = ok_rows(self[name])
        if df.empty:
            failed = failed_counts(self[name])
            raise NotMeasured(f"table {name!r} has no successful rows"
                              + (f" ({_failed_text(failed)})" if failed else ""))
        return df


@dataclass(frozen=True)
class Measured:
    """What a finding's ``measure`` returns.

    Attributes:
        value: the measured quantity the criterion decides on (a number for ``at_least`` /
            ``at_most``, a sequence of booleans for ``all_of`` / ``fraction_of``).
        evidence: the numbers behind the value, in words, computed from the tables only.
        ours: the short form of our number for the table beside the paper's (default: derived from
            ``value``: ``"0.42"`` or ``"3 of 4"``).
        noisy: how many timing summaries the value rests on are flagged noisy; ``None`` counts the
            ``True`` cells of a ``noisy`` column in the finding's tables (ok rows).
        failed: configurations the measure left out because they failed, beyond the rows whose
            ``status`` is not ok (counted by :func:`evaluate` itself): ``{reason: count}``.
    """

    value: Any
    evidence: str
    ours: str | None = None
    noisy: int | None = None
    failed: Mapping[str, int] = field(default_factory=dict)


def summarize_by(df: pd.DataFrame, by: Sequence[str] | str, column: str = "seconds") -> pd.DataFrame:
    """One :func:`studylib.timing.summarize` per group of ``by`` over ``column`` (raw samples):
    a DataFrame with the ``by`` columns and ``median``, ``q1``, ``q3``, ``iqr``, ``mean``, ``min``,
    ``max``, ``n``, ``noisy``. Only ok rows are summarized. Raises ``KeyError`` naming a missing
    column."""
    from studylib import timing

    by = [by] if isinstance(by, str) else list(by)
    missing = [c for c in [*by, column] if c not in df.columns]
    if missing:
        raise KeyError(f"summarize_by: table lacks column(s) {missing}")
    rows = []
    for key, g in ok_rows(df).groupby(by, sort=True):
        key = key if isinstance(key, tuple) else (key,)
        rows.append({**dict(zip(by, key, strict=True)), **timing.summarize(g[column].to_numpy())})
    cols = [*by, "median", "q1", "q3", "iqr", "mean", "min", "max", "n", "noisy"]
    return pd.DataFrame(rows, columns=cols)


def count_noisy(summary: pd.DataFrame) -> int:
    """How many rows of a summary (see :func:`summarize_by`) are flagged noisy (0 without a
    ``noisy`` column)."""
    if "noisy" not in summary.columns:
        return 0
    return int(summary["noisy"].fillna(False).astype(bool).sum())


# --------------------------------------------------------------------------------------------
# Findings and their evaluation
# --------------------------------------------------------------------------------------------

Testable = Callable[[dict, Tables], "str | None"]


@dataclass(frozen=True)
class Finding:
    """A paper's claim, declared once.

    Attributes:
        id: short stable name, lower case (``"aggregation-dominates"``); unique within a study.
        claim: the paper's claim, short.
        where: where the paper shows it (``"Fig. 5"``, ``"Table 3"``, ``"Sec. 6.2"``).
        measure: ``measure(tables) -> Measured``; may raise :class:`NotMeasured`.
        criterion: the verdict rule (:class:`Criterion`), fixed before measuring.
        tables: names of the tables the measure needs; a missing or empty one gives *not measured*.
        paper: the paper's number as the paper gives it (``None`` when it gives none).
        libraries: importable modules the measure needs (``"torch_sparse"``); a missing one gives
            *not measured*.
        testable: ``testable(machine, tables) -> None | reason``: ``machine`` is a
            :func:`studylib.hardware.probe` dict, ``tables`` what was measured (missing tables are
            absent). A reason gives *not testable here* with that reason as evidence.
    """

    id: str
    claim: str
    where: str
    measure: Callable[[Tables], Measured] = field(compare=False)
    criterion: Criterion
    tables: tuple[str, ...] = ()
    paper: str | None = None
    libraries: tuple[str, ...] = ()
    testable: Testable | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not _ID.match(self.id or ""):
            raise ValueError(f"finding id must be lower case letters, digits, '-', '_' or '.', got {self.id!r}")
        if not self.claim.strip() or not self.where.strip():
            raise ValueError(f"finding {self.id!r}: claim and where must not be empty")
        if not isinstance(self.criterion, Criterion):
            raise TypeError(f"finding {self.id!r}: criterion must be a Criterion, got {type(self.criterion).__name__}")
        for name in ("tables", "libraries"):
            value = getattr(self, name)
            if isinstance(value, str):
                value = (value,)
            object.__setattr__(self, name, tuple(value))

    def verdicts(self) -> frozenset[str]:
        """Every verdict this finding declares it can reach: its criterion's, *not measured*,
        and *not testable here* when it has a ``testable`` predicate."""
        out = set(self.criterion.verdicts()) | {NOT_MEASURED}
        if self.testable is not None:
            out.add(NOT_TESTABLE)
        return frozenset(out)


def needs_gpus(count: int, why: str = "") -> Testable:
    """A ``testable`` predicate: not testable with fewer than ``count`` GPUs; the reason names the
    count this machine has, then ``why`` (e.g. ``"processes on shared CPU cores cannot stand in for
    GPUs"``)."""
    def testable(machine: dict, tables: Tables) -> str | None:
        have = len(machine.get("gpus") or [])
        if have >= count:
            return None
        return f"needs {count} GPU{'s' if count != 1 else ''}, this machine has {have}" + (f": {why}" if why else "")
    return testable


def needs_cores(count: int, why: str = "") -> Testable:
    """A ``testable`` predicate: not testable with fewer than ``count`` cores available to this
    process (``cores_available`` of the probe)."""
    def testable(machine: dict, tables: Tables) -> str | None:
        have = int(machine.get("cores_available") or machine.get("logical_cores") or 0)
        if have >= count:
            return None
        return f"needs {count} cores, this machine has {have}" + (f": {why}" if why else "")
    return testable


def _failed_text(failed: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(failed.items()))


def _default_ours(value: Any) -> str:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return _fmt(value)
    try:
        flags = _flags(value, "")
        return f"{sum(flags)} of {len(flags)}"
    except TypeError:
        return str(value)


def _numeric(value: Any) -> float:
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_)):
        return float(value)
    try:
        flags = _flags(value, "")
        return sum(flags) / len(flags) if flags else float("nan")
    except TypeError:
        return float("nan")


def _probe() -> dict:
    from studylib import hardware

    return hardware.probe()


def evaluate_one(finding: Finding, tables: Mapping[str, pd.DataFrame | None] | Tables, machine: dict,
                 notebook: str = "") -> dict:
    """The verdict of one finding as one row of the findings table (keys :data:`COLUMNS`).

    Order: a missing library -> *not measured*; ``testable`` gives a reason -> *not testable
    here*; a missing or empty table, or one without ok rows -> *not measured*; ``measure`` raises
    :class:`NotMeasured` -> *not measured*; else the criterion decides. Failed rows of the finding's
    tables are counted in every case; other exceptions of ``measure`` propagate.
    """
    t = tables if isinstance(tables, Tables) else Tables(tables)
    c = finding.criterion
    row = {"notebook": notebook, "id": finding.id, "claim": finding.claim, "where": finding.where,
           "paper": finding.paper or "", "ours": "", "value": float("nan"), "criterion": c.describe(),
           "thresholds": json.dumps(c.thresholds(), sort_keys=True), "verdict": NOT_MEASURED,
           "noisy": False, "failed_rows": 0, "evidence": ""}
    failed: dict[str, dict[str, int]] = {}
    for name in finding.tables:
        counts = failed_counts(t.get(name))
        if counts:
            failed[name] = counts

    def notes(extra: Mapping[str, int] | None = None, noisy: int = 0) -> str:
        parts = []
        if noisy:
            parts.append(f"{noisy} timing summar{'y' if noisy == 1 else 'ies'} behind this verdict "
                         f"{'is' if noisy == 1 else 'are'} flagged noisy")
        all_failed = dict(failed)
        if extra:
            all_failed["measure"] = dict(extra)
        n = sum(sum(v.values()) for v in all_failed.values())
        row["failed_rows"] = n
        if n:
            parts.append(f"failed rows not used: {n} ("
                         + "; ".join(f"{k}: {_failed_text(v)}" for k, v in all_failed.items()) + ")")
        return "".join(f"; {p}" for p in parts)

    missing_libs = [lib for lib in finding.libraries if importlib.util.find_spec(lib) is None]
    if missing_libs:
        row["evidence"] = f"library {', '.join(missing_libs)} not installed" + notes()
        return row
    if finding.testable is not None:
        reason = finding.testable(machine, t)
        if reason:
            row["verdict"] = NOT_TESTABLE
            row["evidence"] = str(reason) + notes()
            return row
    absent = [n for n in finding.tables if n not in t]
    empty = [n for n in finding.tables if n in t and t[n].empty]
    no_ok = [n for n in finding.tables if n in t and not t[n].empty and ok_rows(t[n]).empty]
    if absent or empty or no_ok:
        why = ([f"table {n!r} is missing" for n in absent] + [f"table {n!r} is empty" for n in empty]
               + [f"table {n!r} has no successful rows" for n in no_ok])
        row["evidence"] = "; ".join(why) + notes()
        return row
    try:
        m = finding.measure(t)
        if not isinstance(m, Measured):
            raise TypeError(f"finding {finding.id!r}: measure returned {type(m).__name__}, not Measured")
        verdict = c.decide(m.value)
    except NotMeasured as err:
        row["evidence"] = str(err) + notes()
        return row
    noisy = m.noisy
    if noisy is None:
        noisy = sum(count_noisy(ok_rows(t[n])) for n in finding.tables)
    row.update(verdict=verdict, ours=m.ours if m.ours is not None else _default_ours(m.value),
               value=_numeric(m.value), noisy=bool(noisy))
    row["evidence"] = m.evidence + notes(m.failed, int(noisy))
    return row


def evaluate(findings: Sequence[Finding], tables: Mapping[str, pd.DataFrame | None] | Tables,
             machine: dict | None = None, notebook: str = "") -> pd.DataFrame:
    """The findings table: one row per finding, columns :data:`COLUMNS`.

    Args:
        findings: the study's declarations.
        tables: name -> DataFrame (``None`` = not measured).
        machine: a :func:`studylib.hardware.probe` dict (default: probe this machine).
        notebook: the notebook name written into each row.

    Columns: ``claim``, ``where``, ``paper`` (the paper's number or ``""``), ``ours`` (our number,
    short), ``value`` (float; the share of ``True`` for flag sequences, NaN when not measured),
    ``criterion`` (in words), ``thresholds`` (JSON), ``verdict`` (one of :data:`VERDICTS`),
    ``noisy`` (bool), ``failed_rows`` (int), ``evidence``.

    Raises ``ValueError`` on duplicate ids.
    """
    ids = [f.id for f in findings]
    dup = sorted({i for i in ids if ids.count(i) > 1})
    if dup:
        raise ValueError(f"duplicate finding id(s) {dup}")
    t = tables if isinstance(tables, Tables) else Tables(tables)
    machine = _probe() if machine is None else machine
    rows = [evaluate_one(f, t, machine, notebook) for f in findings]
    return pd.DataFrame(rows, columns=list(COLUMNS)).astype({"noisy": bool, "failed_rows": int, "value": float})


def reached_verdicts(finding: Finding, cases: Iterable[Mapping[str, pd.DataFrame | None]],
                     machine: dict | None = None) -> set[str]:
    """The verdicts ``finding`` reaches over several sets of (synthetic) tables: a test asserts
    ``reached_verdicts(f, cases, machine) == f.verdicts()`` so that no declared verdict is
    unreachable. ``machine`` defaults to a probe-like dict of a 2-core machine without GPUs."""
    machine = machine if machine is not None else {"gpus": [], "cores_available": 2, "logical_cores": 2}
    return {evaluate_one(finding, tables, machine)["verdict"] for tables in cases}


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        return _json_safe(obj.item())
    return obj


def _machine_line(machine: dict) -> str:
    from studylib import hardware

    try:
        return hardware.describe(machine)
    except (KeyError, TypeError, AttributeError):
        return str(machine.get("cpu_model") or machine.get("hostname") or "unknown machine")


def write(notebook: str, frame: pd.DataFrame, *, parameters: dict | None = None, run_id: str | None = None,
          machine: dict | None = None, extra: dict | None = None) -> dict[str, Path]:
    """Write a notebook's findings table atomically: ``results/<notebook>/findings.parquet``,
    ``.csv`` and ``.json``, and ``figures/<notebook>/findings.json`` (the same JSON).

    The JSON holds ``notebook``, ``run_id``, ``created_utc``, ``git_sha``, ``profile``,
    ``machine`` (one line), ``hardware`` (the probe), ``parameters``, ``findings`` (one record per
    row) and the keys of ``extra`` (e.g. fitted constants). Raises ``ValueError`` when ``extra``
    reuses one of those keys. Returns ``{"parquet", "csv", "json", "figures_json"}`` paths.
    """
    import os

    machine = _probe() if machine is None else machine
    run_id = results.current_run_id(run_id or (parameters or {}).get("run_id"))
    doc = {"notebook": notebook, "run_id": run_id, "created_utc": results.utc_now(),
           "git_sha": machine.get("git_sha"), "profile": os.environ.get("STUDYLIB_PROFILE"),
           "machine": _machine_line(machine), "hardware": machine, "parameters": parameters or {},
           "findings": _json_safe(frame.to_dict("records"))}
    clash = sorted(set(extra or {}) & set(doc))
    if clash:
        raise ValueError(f"findings of {notebook}: extra keys {clash} are reserved")
    doc.update(_json_safe(dict(extra or {})))
    out = paths.results_dir(notebook)
    files = {"parquet": out / f"{FINDINGS_NAME}.parquet", "csv": out / f"{FINDINGS_NAME}.csv",
             "json": out / f"{FINDINGS_NAME}.json", "figures_json": paths.figures_dir(notebook) / f"{FINDINGS_NAME}.json"}
    with results.atomic_path(files["parquet"]) as tmp:
        frame.to_parquet(tmp, index=False)
    with results.atomic_path(files["csv"]) as tmp:
        frame.to_csv(tmp, index=False)
    results.write_json(files["json"], doc)
    results.write_json(files["figures_json"], doc)
    return files


def record(notebook: str, findings: Sequence[Finding], tables: Mapping[str, pd.DataFrame | None] | Tables, *,
           parameters: dict | None = None, run_id: str | None = None, machine: dict | None = None,
           extra: dict | None = None) -> pd.DataFrame:
    """:func:`evaluate` the findings of ``notebook`` and :func:`write` them; returns the table."""
    machine = _probe() if machine is None else machine
    frame = evaluate(findings, tables, machine=machine, notebook=notebook)
    write(notebook, frame, parameters=parameters, run_id=run_id, machine=machine, extra=extra)
    return frame


# --------------------------------------------------------------------------------------------
# Display
# --------------------------------------------------------------------------------------------

def verdict_label(verdict: str, noisy: bool = False, failed_rows: int = 0) -> str:
    """The verdict as shown: ``"reproduced (noisy)"``, ``"partly (2 failed rows)"``."""
    tags = (["noisy"] if noisy else []) + ([f"{failed_rows} failed row{'s' if failed_rows != 1 else ''}"]
                                           if failed_rows else [])
    return verdict + (f" ({', '.join(tags)})" if tags else "")


def _md(text: Any) -> str:
    return str("" if text is None or (isinstance(text, float) and math.isnan(text)) else text) \
        .replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ").strip()


def _paper_cell(r: Mapping) -> str:
    where = str(r.get("where") or "")
    paper = str(r.get("paper") or "")
    return f"{paper} ({where})" if paper and where else paper or where or "–"


def to_markdown(frame: pd.DataFrame, *, criterion: bool = True, evidence: bool = False,
                notebook_column: bool = False) -> str:
    """A Markdown table of a findings table: claim, paper (number and where), ours, criterion,
    verdict (with noisy / failed-row tags); optionally the notebook and the evidence."""
    head = (["study"] if notebook_column else []) + ["claim", "paper", "ours"] + \
        (["criterion"] if criterion else []) + ["verdict"] + (["evidence"] if evidence else [])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in frame.to_dict("records"):
        cells = ([r.get("notebook")] if notebook_column else []) + [r.get("claim"), _paper_cell(r), r.get("ours") or "–"]
        cells += [r.get("criterion")] if criterion else []
        cells.append(f"**{verdict_label(r.get('verdict', ''), bool(r.get('noisy')), int(r.get('failed_rows') or 0))}**")
        cells += [r.get("evidence")] if evidence else []
        lines.append("| " + " | ".join(_md(c) for c in cells) + " |")
    return "\n".join(lines)


_VERDICT_CLASS = {REPRODUCED: "reproduced", PARTLY: "partly", NOT_REPRODUCED: "not-reproduced",
                  NOT_MEASURED: "not-measured", NOT_TESTABLE: "not-testable"}
#: CSS for the verdict classes of :func:`to_html` (the HTML report includes it).
VERDICT_CSS = (".v-reproduced{color:#070;font-weight:bold}.v-partly{color:#a60;font-weight:bold}"
               ".v-not-reproduced{color:#b00;font-weight:bold}.v-not-measured,.v-not-testable{color:#777}")


def to_html(frame: pd.DataFrame, *, notebook_column: bool = False) -> str:
    """An HTML table of a findings table: claim, paper, ours, criterion, verdict, evidence (folded)."""
    esc = html.escape
    head = (["study"] if notebook_column else []) + ["claim", "paper", "ours", "criterion", "verdict", "evidence"]
    rows = []
    for r in frame.to_dict("records"):
        verdict = str(r.get("verdict", ""))
        label = verdict_label(verdict, bool(r.get("noisy")), int(r.get("failed_rows") or 0))
        cells = ([esc(str(r.get("notebook", "")))] if notebook_column else []) + [
            esc(str(r.get("claim", ""))), esc(_paper_cell(r)), esc(str(r.get("ours") or "–")),
            esc(str(r.get("criterion", ""))),
            f'<span class="v-{_VERDICT_CLASS.get(verdict, "unknown")}">{esc(label)}</span>',
            esc(str(r.get("evidence", "")))]
        rows.append("<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    return ("<table><tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>" + "".join(rows) + "</table>")


class FindingsTable:
    """A findings table for a notebook: shown as HTML in Jupyter, as Markdown elsewhere."""

    def __init__(self, frame: pd.DataFrame):
        self.frame = frame

    def _repr_html_(self) -> str:
        return f"<style>{VERDICT_CSS}</style>" + to_html(self.frame)

    def _repr_markdown_(self) -> str:
        return to_markdown(self.frame, evidence=True)

    def __repr__(self) -> str:
        return to_markdown(self.frame, evidence=True)


def show(frame: pd.DataFrame) -> FindingsTable:
    """The notebook's findings table (claim, paper's number, ours, criterion, verdict, evidence);
    the last expression of a cell, or ``IPython.display.display(show(frame))``."""
    return FindingsTable(frame)


# --------------------------------------------------------------------------------------------
# The suite's scoreboard
# --------------------------------------------------------------------------------------------

_DOC_COLUMNS = ("run_id", "profile", "git_sha", "machine")


def load(folder: Path | None = None) -> pd.DataFrame:
    """Every ``<folder>/<notebook>/findings.json`` (default ``figures/``; ``paths.results_dir()``
    reads this machine's latest results instead) as one table: :data:`COLUMNS` plus ``run_id``,
    ``profile``, ``git_sha``, ``machine``; notebooks in name order, findings in file order.

    Records written before this module (a ``finding`` key instead of ``claim``) are read with the
    claim taken from ``finding``. Raises ``ValueError`` naming a file that is not a findings
    document (unreadable JSON, no ``findings`` list).
    """
    folder = paths.figures_dir() if folder is None else Path(folder)
    rows = []
    for f in sorted(folder.glob(f"*/{FINDINGS_NAME}.json")) if folder.is_dir() else []:
        try:
            doc = json.loads(f.read_text())
        except (OSError, ValueError) as err:
            raise ValueError(f"{f}: not a readable findings file ({type(err).__name__}: {err})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("findings"), list):
            raise ValueError(f"{f}: not a findings file (no 'findings' list)")
        for rec in doc["findings"]:
            rec = dict(rec)
            rec.setdefault("claim", rec.get("finding", ""))
            rec["notebook"] = rec.get("notebook") or doc.get("notebook") or f.parent.name
            rows.append({**{c: rec.get(c) for c in COLUMNS}, **{c: doc.get(c) for c in _DOC_COLUMNS}})
    frame = pd.DataFrame(rows, columns=[*COLUMNS, *_DOC_COLUMNS])
    frame["noisy"] = frame["noisy"].astype("boolean").fillna(False).astype(bool)
    frame["failed_rows"] = pd.to_numeric(frame["failed_rows"]).fillna(0).astype(int)
    return frame


def tally(frame: pd.DataFrame) -> dict[str, int]:
    """Findings per verdict, every verdict of :data:`VERDICTS` present (zeros included)."""
    counts = frame["verdict"].value_counts() if not frame.empty else pd.Series(dtype=int)
    return {v: int(counts.get(v, 0)) for v in VERDICTS}


def _runs(frame: pd.DataFrame) -> list[dict]:
    cols = ["notebook", *_DOC_COLUMNS]
    return frame[cols].drop_duplicates("notebook").fillna("").to_dict("records") if not frame.empty else []


def scoreboard_markdown(frame: pd.DataFrame, source: str = "figures/<notebook>/findings.json") -> str:
    """The scoreboard in Markdown, deterministic in the files' content: a tally per verdict, one
    table of every finding (study, claim, paper, ours, verdict) and the run behind each study."""
    if frame.empty:
        return (f"No findings files yet (`{source}`): the reference run's verdicts appear here once "
                "`make figures` has run from a clean tree, its findings files are committed and "
                "`python -m studylib scoreboard --markdown` has rewritten this section.")
    t = tally(frame)
    lines = [f"{len(frame)} findings: " + ", ".join(f"{n} {v}" for v, n in t.items()) + ".", "",
             to_markdown(frame, criterion=False, notebook_column=True), "",
             "Runs behind these verdicts:", ""]
    for r in _runs(frame):
        sha = str(r["git_sha"])[:12] or "unknown"
        lines.append(f"- `{r['notebook']}`: run {r['run_id'] or 'unknown'}, profile {r['profile'] or 'unknown'}, "
                     f"git {sha}{' (dirty)' if str(r['git_sha']).endswith('-dirty') else ''}, {_md(r['machine'])}")
    return "\n".join(lines)


def readme_section(frame: pd.DataFrame) -> str:
    """The README's scoreboard block, markers included."""
    return (f"{README_START}\n<!-- generated by `python -m studylib scoreboard --markdown` from "
            f"figures/*/{FINDINGS_NAME}.json; do not edit by hand -->\n{scoreboard_markdown(frame)}\n{README_END}")


def render_readme(text: str, frame: pd.DataFrame) -> str:
    """``text`` (a README) with the block between :data:`README_START` and :data:`README_END`
    replaced by :func:`readme_section`. Raises ``ValueError`` when the markers are missing, repeated
    or out of order."""
    starts, ends = text.count(README_START), text.count(README_END)
    if starts != 1 or ends != 1 or text.index(README_START) > text.index(README_END):
        raise ValueError(f"README must hold {README_START} then {README_END} once each "
                         f"(found {starts} and {ends})")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    return head + readme_section(frame) + tail


def update_readme(readme: Path | None = None, folder: Path | None = None, *, check: bool = False) -> bool:
    """Regenerate the README's scoreboard section from the committed findings files.

    Args:
        readme: the README (default ``<root>/README.md``).
        folder: where the findings files are (default ``figures/``).
        check: only compare, write nothing.

    Returns whether the README differs from the generated one (and, unless ``check``, was
    rewritten). Raises ``ValueError`` (markers) or ``OSError`` (files).
    """
    readme = paths.project_root() / "README.md" if readme is None else Path(readme)
    text = readme.read_text()
    new = render_readme(text, load(folder))
    if new == text:
        return False
    if not check:
        with results.atomic_path(readme) as tmp:
            tmp.write_text(new)
    return True


def report_section(reports: Path | None = None, folder: Path | None = None) -> str:
    """The scoreboard for ``reports/index.html`` (an HTML fragment) from the findings files in
    ``folder`` (default ``figures/``); also writes it as ``reports/scoreboard.csv`` and ``.json``."""
    reports = paths.reports_dir() if reports is None else Path(reports)
    folder = paths.figures_dir() if folder is None else Path(folder)
    frame = load(folder)
    out = ["<h2>Scoreboard: the papers' findings on this machine</h2>"]
    if frame.empty:
        out.append(f'<p class="muted">no findings files yet in {html.escape(str(folder))} '
                   f"(<code>*/{FINDINGS_NAME}.json</code>, written by each notebook)</p>")
        return "\n".join(out)
    with results.atomic_path(reports / "scoreboard.csv") as tmp:
        frame.to_csv(tmp, index=False)
    results.write_json(reports / "scoreboard.json", {"findings": _json_safe(frame.to_dict("records")),
                                                     "tally": tally(frame)})
    t = tally(frame)
    out.append(f"<style>{VERDICT_CSS}</style><p>{len(frame)} findings: "
               + ", ".join(f"{n} {html.escape(v)}" for v, n in t.items())
               + ' &middot; <a href="scoreboard.csv">csv</a></p>')
    out.append(to_html(frame, notebook_column=True))
    runs = "".join(f"<li><code>{html.escape(str(r['notebook']))}</code>: run {html.escape(str(r['run_id']))}, "
                   f"profile {html.escape(str(r['profile']))}, git {html.escape(str(r['git_sha']))}, "
                   f"{html.escape(str(r['machine']))}</li>" for r in _runs(frame))
    out.append(f"<p>runs behind these verdicts:</p><ul>{runs}</ul>")
    return "\n".join(out)
