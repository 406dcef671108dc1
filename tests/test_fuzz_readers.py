"""Fuzz the three readers of files attnperf does not control.

Each test starts from a valid file, applies generated damage (a value swapped
for random JSON, NaN/Infinity, a huge or 5000-digit number, a deeply nested
array, a deleted key, a truncated text) and feeds it to the reader and to what
consumes the reader's output:

* reports (``attnperf compare``): read -> compare -> text, markdown, JSON.  Any
  failure must be a one-line :class:`ReportError` (the CLI's ``error:`` line).
* asv results (PR comment and site): never raise; bad content becomes notes
  and every value handed on is sane (finite numbers, plausible dates).
* ceilings (the roofline's roofs): a usable record or None with a note.

Runs derandomized (the same examples on every CI run, no flakes), no example
database.  Crashes found while writing this are kept as files under
``tests/data/fuzz/`` and replayed by :func:`test_kept_reproducers`.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from attnperf.analysis.compare import compare_results
from attnperf.errors import ReportError
from attnperf.io import asv_results as ar
from attnperf.io import ceilings as ceilings_file
from attnperf.io.jsonfile import finite
from attnperf.io.report import read_results
from attnperf.render.compare import render
from support import asvdata as d
from support.fuzz import (
    ASV_TEMPLATES,
    REPORT_TEMPLATES,
    check_ceilings_file,
    damaged,
    swept,
)

DATA = Path(__file__).parent / "data" / "fuzz"
EXAMPLES = 150  # per reader: 450 files; with the systematic sweep below, ~2000 files in all
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])

BASELINE_TEXT = json.dumps(REPORT_TEMPLATES[0])


def _check_report_pipeline(path: Path, baseline: Path) -> None:
    """What `attnperf compare` does with ``path``: one ReportError, or output that is valid."""
    try:
        current = read_results(str(path), "current report")
    except ReportError as exc:
        msg = str(exc)
        assert "\n" not in msg and len(msg) < 1000, msg
        return
    for base, cur in ((read_results(str(baseline)), current), (current, current)):
        for allow in (False, True):
            try:
                result = compare_results(base, cur, -3.0, allow_missing=allow)
            except ReportError as exc:
                assert "\n" not in str(exc)
                continue
            render(result, "text")
            render(result, "markdown")
            json.dumps(finite(result), allow_nan=False)


@pytest.fixture
def baseline_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz-base") / "baseline.json"
    path.write_text(BASELINE_TEXT)
    return path


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    """One directory per test, overwritten by each example (no directory per example)."""
    return tmp_path_factory.mktemp("fuzz")


@FUZZ
@given(text=st.sampled_from(REPORT_TEMPLATES).flatmap(damaged))
def test_fuzz_report_reader(scratch, baseline_file, text):
    path = scratch / "report.json"
    path.write_text(text)
    _check_report_pipeline(path, baseline_file)


# ---------------------------------------------------------- asv results -----
ASV_FILES = {"run": "cpu-ci/aaaaaaaa-virtualenv-py3.11.json", "machine": "cpu-ci/machine.json",
             "benchmarks": "benchmarks.json", "ceilings": "cpu-ci/attnperf-ceilings.json"}


def _check_results_db(db: ar.ResultsDB) -> None:
    """What the site and the PR comment rely on, whatever the files held."""
    db.all_notes()
    for machine in db.machines.values():
        assert isinstance(machine.info, dict)
        assert all(isinstance(v, str) for v in machine.info.values()), machine.info
        if machine.ceilings is not None:
            assert ceilings_file.problem_with(machine.ceilings) is None
        for run in machine.runs:
            assert run.date is None or ar.MIN_DATE_MS <= run.date <= ar.MAX_DATE_MS
            assert isinstance(run.commit, str) and isinstance(run.env_name, str)
            for name, bench in run.benchmarks.items():
                db.unit(name)
                db.param_names(name, len(bench.params))
                for key, point in bench.points.items():
                    assert all(isinstance(k, str) for k in key)
                    assert point.value is None or math.isfinite(point.value)
                    assert point.samples is None or all(math.isfinite(s) for s in point.samples)
                    assert point.stats is None or all(
                        math.isfinite(s) for s in point.stats.values()
                    )


def _write_asv_tree(root: Path, texts: dict) -> None:
    for name, rel in ASV_FILES.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(texts.get(name) or json.dumps(ASV_TEMPLATES[name]))


@FUZZ
@given(data=st.data())
def test_fuzz_asv_results_reader(scratch, data):
    which = data.draw(st.lists(st.sampled_from(sorted(ASV_FILES)), min_size=1, max_size=4,
                               unique=True))
    texts = {name: data.draw(damaged(ASV_TEMPLATES[name]), label=name) for name in which}
    root = scratch / "results"
    _write_asv_tree(root, texts)
    _check_results_db(ar.read_results(str(root)))


# -------------------------------------------------------------- ceilings ----
@FUZZ
@given(text=st.sampled_from([d.CPU_CEILINGS, d.H100_CEILINGS]).flatmap(damaged))
def test_fuzz_ceilings_reader(scratch, text):
    path = scratch / ceilings_file.FILE_NAME
    path.write_text(text)
    check_ceilings_file(path)


# ------------------------------------------------------ systematic sweep ----
def test_sweep_every_field_with_every_special_value(tmp_path, baseline_file):
    """Each reader, each field of a valid file, each value of SPECIALS: no traceback."""
    count = 0
    report = tmp_path / "report.json"
    for template in REPORT_TEMPLATES:
        for text in swept(template):
            report.write_text(text)
            _check_report_pipeline(report, baseline_file)
            count += 1
    run = tmp_path / "results" / "cpu-ci" / "aaaaaaaa-virtualenv-py3.11.json"
    run.parent.mkdir(parents=True)
    for text in swept(ASV_TEMPLATES["run"]):
        run.write_text(text)
        notes = []
        got = ar.read_run(run, "cpu-ci", notes)
        if got is not None:
            _check_results_db(
                ar.ResultsDB("r", {"cpu-ci": ar.Machine("cpu-ci", {}, None, [got], [])}, {}, notes)
            )
        count += 1
    ceilings = tmp_path / ceilings_file.FILE_NAME
    for text in swept(d.CPU_CEILINGS):
        ceilings.write_text(text)
        check_ceilings_file(ceilings)
        count += 1
    assert count >= 1000


# ---------------------------------------------------------- reproducers -----
def _kept(kind):
    return sorted((DATA / kind).glob("*.json"))


@pytest.mark.parametrize("path", _kept("report"), ids=lambda p: p.name)
def test_kept_report_reproducers(path, baseline_file):
    _check_report_pipeline(path, baseline_file)


@pytest.mark.parametrize("path", _kept("asv"), ids=lambda p: p.name)
def test_kept_asv_reproducers(path, tmp_path):
    # Each file names the slot it was found in: <slot>-<what>.json
    slot = re.match(r"(run|machine|benchmarks|ceilings)-", path.name).group(1)
    root = tmp_path / "results"
    _write_asv_tree(root, {slot: path.read_text()})
    _check_results_db(ar.read_results(str(root)))


@pytest.mark.parametrize("path", _kept("ceilings"), ids=lambda p: p.name)
def test_kept_ceilings_reproducers(path):
    check_ceilings_file(path)


def test_reproducers_are_kept():
    assert len(_kept("report")) + len(_kept("asv")) + len(_kept("ceilings")) >= 3


@pytest.mark.parametrize("path", _kept("report"), ids=lambda p: p.name)
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_kept_report_reproducers_through_the_cli(cli, path, baseline_file, fmt):
    """`attnperf compare`: one `error:` line and exit 2, or output that parses (JSON: no NaN)."""
    for current, baseline in ((path, baseline_file), (baseline_file, path)):
        res = cli("compare", current, "--baseline", baseline, "--format", fmt)
        if res.code == 2:
            assert res.out == "" and len(res.err_lines) == 1 and res.err.startswith("error: ")
            assert "Traceback" not in res.err
        else:
            assert res.code in (0, 1), res.err
            if fmt == "json":
                json.loads(res.out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
