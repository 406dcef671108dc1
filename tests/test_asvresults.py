"""attnperf.asvresults: asv's result files read robustly (bad input -> notes, never a traceback)."""

import json
import math
from pathlib import Path

import pytest

from attnperf.io import asv_results as ar
from attnperf.io import ceilings as ceilings_file
from support import asvdata as d

REPO = Path(__file__).resolve().parents[1]
C1 = "a" * 40
C2 = "b" * 40


def _one(tmp_path, rows, info=d.CPU_INFO, commit=C1, **kw):
    d.write_machine(tmp_path, info, kw.get("ceilings"))
    d.write_run(tmp_path, info, commit, 1795000000000, rows)
    return ar.read_results(str(tmp_path))


def test_statuses_samples_and_stats(tmp_path):
    params = d.grid_params(["sdpa", "tiled"], ["seed", "train"])
    xs = d.samples(1e-3, n=9)
    db = _one(tmp_path, {d.TIME: d.row(params, [xs, math.nan, None, 2e-3])})
    assert db.machines["cpu-ci"].notes == [] and list(db.machines) == ["cpu-ci"]
    run = db.machines["cpu-ci"].latest()
    assert run.commit == C1 and run.short == "aaaaaaaa" and run.env_name == "virtualenv-py3.11"
    ok = run.point(d.TIME, "sdpa", "seed")
    assert ok.status == ar.OK and ok.samples == tuple(xs) and ok.stats["repeat"] == 9
    assert ok.value == pytest.approx(sorted(xs)[4])
    assert run.point(d.TIME, "sdpa", "train").status == ar.SKIPPED  # NaN
    assert run.point(d.TIME, "tiled", "seed").status == ar.FAILED  # null
    plain = run.point(d.TIME, "tiled", "train")
    assert (
        plain.status == ar.OK
        and plain.value == 2e-3
        and plain.samples is None
        and plain.stats is None
    )
    assert run.point(d.TIME, "naive", "seed").status == ar.MISSING
    assert run.point("no.such.benchmark", "sdpa", "seed").status == ar.MISSING
    # raw repr values are kept for asv URLs
    assert run.benchmarks[d.TIME].params == [["'sdpa'", "'tiled'"], ["'seed'", "'train'"]]
    assert ar.raw_param(run.benchmarks[d.TIME], 1, "train") == "'train'"


def test_all_failed_row_and_trailing_columns_dropped(tmp_path):
    params = d.grid_params(["sdpa"], ["seed", "train"])
    db = _one(tmp_path, {d.TIME: [None, params, d.VERSION]})
    run = db.machines["cpu-ci"].latest()
    assert {p.status for p in run.benchmarks[d.TIME].points.values()} == {ar.FAILED}
    assert run.notes == []


def test_short_result_list_is_missing_with_a_note(tmp_path):
    params = d.grid_params(["sdpa", "tiled"], ["seed"])
    db = _one(tmp_path, {d.TIME: [[1e-3], params, d.VERSION]})
    run = db.machines["cpu-ci"].latest()
    assert run.point(d.TIME, "tiled", "seed").status == ar.MISSING
    assert any("1 results for 2 parameter combinations" in n for n in db.all_notes())


def test_non_parameterised_benchmark(tmp_path):
    db = _one(tmp_path, {"bench_other.time_x": [[0.5], [], "v1"]})
    run = db.machines["cpu-ci"].latest()
    assert run.point("bench_other.time_x").value == 0.5


@pytest.mark.parametrize("content, expected", [
    ("{\"commit_hash\": ", "not valid JSON"),
    ("", "is empty"),
    ("[1, 2]", "holds a JSON list"),
    (json.dumps({"version": 3, "commit_hash": C1}), "format version 3"),
    (json.dumps({"commit_hash": C1, "results": {}}), "format version None"),
    (json.dumps({"version": 2, "results": {}}), "no valid commit_hash"),
])
def test_unreadable_files_become_notes(tmp_path, content, expected):
    d.write_machine(tmp_path, d.CPU_INFO)
    (tmp_path / "cpu-ci" / "aaaaaaaa-virtualenv-py3.11.json").write_text(content)
    db = ar.read_results(str(tmp_path))
    assert db.machines["cpu-ci"].runs == []
    assert any(expected in n for n in db.all_notes()), db.all_notes()


def test_odd_rows_and_missing_columns(tmp_path):
    d.write_machine(tmp_path, d.CPU_INFO)
    doc = d.result_doc(C1, d.CPU_INFO, 1795000000000, {
        d.TIME: [[1e-3, "fast"], d.grid_params(["sdpa", "tiled"], ["seed"]), d.VERSION],
        d.XFLOOR: "not a row",
        d.LATENCY: [[1.0], [["'a'"], "bad"]],
    })
    del doc["result_columns"]
    d.write_json(tmp_path / "cpu-ci" / "aaaaaaaa-virtualenv-py3.11.json", doc)
    db = ar.read_results(str(tmp_path))
    run = db.machines["cpu-ci"].latest()
    notes = " | ".join(db.all_notes())
    assert "assuming asv 0.6's column order" in notes
    assert "value 'fast' is not a usable number" in notes and "row is a str" in notes
    assert "malformed params" in notes
    assert run.point(d.TIME, "sdpa", "seed").ok
    assert run.point(d.TIME, "tiled", "seed").status == ar.FAILED
    assert d.XFLOOR not in run.benchmarks


def test_machine_json_ceilings_and_benchmarks_json(tmp_path):
    params = d.grid_params(["sdpa"], ["seed"])
    d.write_benchmarks(tmp_path, ["sdpa"], ["seed"])
    db = _one(tmp_path, {d.TIME: d.row(params, [1e-3])}, info=d.H100_INFO, ceilings=d.H100_CEILINGS)
    m = db.machines["h100"]
    assert m.info["gpu"] == "NVIDIA H100 80GB HBM3" and "version" not in m.info
    assert (
        m.ceilings["bandwidth_gb_s"] == 3000.0 and m.ceilings["matmul_tflops"]["bfloat16"] == 770.0
    )
    assert db.unit(d.TIME) == "seconds" and db.param_names(d.TIME, 2) == ["kernel", "problem"]
    assert db.notes == []


def test_missing_or_bad_side_files(tmp_path):
    params = d.grid_params(["sdpa"], ["seed"])
    d.write_run(tmp_path, d.CPU_INFO, C1, 1795000000000, {d.TIME: d.row(params, [1e-3])})
    (tmp_path / "cpu-ci" / ceilings_file.FILE_NAME).write_text(json.dumps({"schema_version": 9}))
    (tmp_path / "cpu-ci" / "notes.json").write_text("{}")
    db = ar.read_results(str(tmp_path))
    m = db.machines["cpu-ci"]
    notes = " | ".join(db.all_notes())
    assert m.ceilings is None and "ceilings schema_version 9" in notes
    assert "no machine.json" in notes and m.info["cpu"] == "AMD EPYC"  # from the result's params
    assert "benchmarks.json: missing" in notes
    assert "not named like an asv result file" in notes
    assert db.param_names(d.TIME, 2) == ["kernel", "problem"]
    assert db.param_names("bench_x.y", 1) == ["param1"]


def test_runs_sorted_by_commit_date_and_lookup_by_prefix(tmp_path):
    params = d.grid_params(["sdpa"], ["seed"])
    d.write_machine(tmp_path, d.CPU_INFO)
    d.write_run(tmp_path, d.CPU_INFO, C2, 2000, {d.TIME: d.row(params, [2e-3])})
    d.write_run(tmp_path, d.CPU_INFO, C1, 1000, {d.TIME: d.row(params, [1e-3])})
    m = ar.read_results(str(tmp_path)).machines["cpu-ci"]
    assert [r.commit for r in m.runs] == [C1, C2] and m.latest().commit == C2
    assert m.runs_for("bbbbbbbb")[0].commit == C2 and m.runs_for("") == []


def test_empty_and_absent_results_dirs(tmp_path):
    db = ar.read_results(str(tmp_path / "nope"))
    assert db.machines == {} and "no such results directory" in db.notes[0]
    db = ar.read_results(str(tmp_path))
    assert db.machines == {} and any("empty history" in n for n in db.notes)


def test_reads_the_ceilings_version_devices_writes():
    from attnperf.io.ceilings import SCHEMA_VERSION as CEILINGS_SCHEMA_VERSION

    assert CEILINGS_SCHEMA_VERSION in ceilings_file.KNOWN_VERSIONS


def test_unquote():
    assert ar.unquote("'tiled'") == "tiled"
    assert ar.unquote("3") == "3" and ar.unquote("not python") == "not python"


def test_reads_this_repository_results_and_config():
    conf = ar.read_asv_conf(str(REPO / "asv.conf.json"))
    assert conf["html_dir"] == ".asv/html" and conf["results_dir"] == "results"
    db = ar.read_results(str(REPO / "results"))  # whatever is committed: no exception
    for m in db.machines.values():
        for run in m.runs:
            assert len(run.commit) == 40


# ----------------------------------------------- crafted or damaged files ----
@pytest.mark.parametrize(
    "date,kept",
    [
        ("1795000000000", True),
        ("1e30", False),
        ("1" + "0" * 400, False),
        ("-5", False),
        ("Infinity", False),
        ('"2026-01-01"', False),
    ],
)
def test_absurd_commit_dates_are_dropped_with_a_note(tmp_path, date, kept):
    # A date beyond time_t made the site's date formatting raise OverflowError;
    # a 400-digit one overflowed float() in the reader itself.
    d.write_machine(tmp_path, d.CPU_INFO)
    doc = d.result_doc(
        C1, d.CPU_INFO, 123, {d.TIME: d.row(d.grid_params(["sdpa"], ["seed"]), [1e-3])}
    )
    (tmp_path / "cpu-ci" / "aaaaaaaa-virtualenv-py3.11.json").write_text(
        json.dumps(doc).replace('"date": 123', f'"date": {date}'))
    run = ar.read_results(str(tmp_path)).machines["cpu-ci"].latest()
    assert (run.date == 1795000000000) if kept else run.date is None
    assert kept or any("is not a commit date" in n for n in run.notes)


def test_huge_numbers_in_a_row_are_failed_points_not_tracebacks(tmp_path):
    params = d.grid_params(["sdpa", "tiled"], ["seed"])
    d.write_machine(tmp_path, d.CPU_INFO)
    doc = d.result_doc(C1, d.CPU_INFO, 1795000000000, {d.TIME: d.row(params, [1e-3, 2e-3])})
    text = json.dumps(doc).replace("0.002", "1" + "0" * 400, 1)
    (tmp_path / "cpu-ci" / "aaaaaaaa-virtualenv-py3.11.json").write_text(text)
    run = ar.read_results(str(tmp_path)).machines["cpu-ci"].latest()
    assert run.point(d.TIME, "sdpa", "seed").status == ar.OK
    assert run.point(d.TIME, "tiled", "seed").status == ar.FAILED
    assert any("is not a usable number" in n for n in run.notes)


def test_machine_fields_that_are_not_text_are_dropped(tmp_path):
    info = dict(d.CPU_INFO, num_cpu=2, gpu=None, cpu={"nested": [1]})
    db = _one(tmp_path, {d.TIME: d.row(d.grid_params(["sdpa"], ["seed"]), [1e-3])}, info=info)
    m = db.machines["cpu-ci"]
    assert m.info["num_cpu"] == "2" and "gpu" not in m.info and "cpu" not in m.info
    assert any("not text were ignored: cpu, gpu" in n for n in m.notes)


@pytest.mark.parametrize("change,why", [
    ({"bandwidth_gb_s": 1e30}, "bandwidth_gb_s"),
    ({"bandwidth_gb_s": -1}, "bandwidth_gb_s"),
    ({"matmul_tflops": {"float32": 1e12}}, "matmul_tflops['float32']"),
    ({"matmul_tflops": {"float32": 0.0}}, "matmul_tflops['float32']"),
    ({"matmul_tflops": []}, "matmul_tflops object"),
])
def test_absurd_ceilings_are_ignored_with_a_note(tmp_path, change, why):
    db = _one(tmp_path, {d.TIME: d.row(d.grid_params(["sdpa"], ["seed"]), [1e-3])},
              ceilings=dict(d.CPU_CEILINGS, **change))
    m = db.machines["cpu-ci"]
    assert m.ceilings is None
    assert any(why in n and "ignored" in n for n in m.notes), m.notes
