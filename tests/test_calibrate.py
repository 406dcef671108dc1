"""`attnperf calibrate` and per-benchmark thresholds: the noise rule, the file format, the
command (with a stand-in asv that writes A/A result sets with known medians), and the CI
verdict re-judged per benchmark (`attnperf ci bench` with a thresholds file)."""

import json
import os
import sys
from pathlib import Path

import pytest

from attnperf.analysis import ab, gate, noise
from attnperf.cli import main
from attnperf.errors import ReportError
from attnperf.io import thresholds as tf
from attnperf.io.asv_results import read_results, read_run
from support import asvdata as d
from support import fakeasv

TESTS = Path(__file__).resolve().parent
KERNELS, PROBLEMS = ["sdpa", "tiled"], ["seed", "train"]
SPREADS = {"sdpa": 0.01, "tiled": 0.10}  # per-run drift of the medians, per kernel


def _median(k, p, i):
    """Run i's median: sdpa drifts 1 % from run to run, tiled 10 %; seed/train alike."""
    return {"seed": 1e-3, "train": 4e-3}[p] * (1 + SPREADS[k] * (i % 2))


# ------------------------------------------------------------- the rule ---
def test_rule_threshold_is_spread_squared_with_a_floor():
    rule = noise.Rule(floor=1.01, headroom=2.0)
    assert rule.threshold(1.10) == pytest.approx(1.21)
    assert rule.threshold(1.001) == 1.01
    assert noise.detectable_at(1.5, 1.1) == pytest.approx(1.65)


def _runs(tmp_path, n):
    results = tmp_path / "results"
    params = d.grid_params(KERNELS, PROBLEMS)
    runs = []
    for i in range(n):
        rows = {
            d.TIME: d.row(
                params,
                d.grid_values(
                    KERNELS,
                    PROBLEMS,
                    lambda k, p, i=i: d.samples(_median(k, p, i), spread=0.001, seed=i),
                ),
            ),
            d.LATENCY: d.row(
                params, d.grid_values(KERNELS, PROBLEMS, lambda k, p, i=i: 5.0 * (i + 1))
            ),
            # deterministic metrics, judged at fixed factors: their A/A spread is no threshold
            gate.MAX_ABS_ERROR: d.row(
                params, d.grid_values(KERNELS, PROBLEMS, lambda k, p, i=i: 1e-3 * (i + 1))
            ),
            gate.PEAK_MEMORY: d.row(
                params, d.grid_values(KERNELS, PROBLEMS, lambda k, p, i=i: 1e6 * (i + 1))
            ),
        }
        path = d.write_run(results / f"set{i}", d.CPU_INFO, "a" * 40, 1000, rows)
        runs.append(read_run(path, "cpu-ci", []))
    return runs


def test_entries_per_benchmark_from_a_a_runs(tmp_path):
    entries = noise.entries(_runs(tmp_path, 4))
    by = {(e.benchmark, e.params): e for e in entries}
    # views and the deterministic metrics left out
    assert set(by) == {(d.TIME, (k, p)) for k in KERNELS for p in PROBLEMS}
    tiled, sdpa = by[(d.TIME, ("tiled", "train"))], by[(d.TIME, ("sdpa", "train"))]
    assert tiled.spread == pytest.approx(1.10, rel=2e-3) and len(tiled.medians) == 4
    assert tiled.threshold == pytest.approx(1.21, rel=5e-3)
    assert tiled.detectable == pytest.approx(1.21 * 1.10, rel=5e-3)
    assert sdpa.spread == pytest.approx(1.01, rel=2e-3)
    assert sdpa.threshold == pytest.approx(1.0201, rel=1e-3)


def test_entries_need_two_runs(tmp_path):
    assert noise.entries(_runs(tmp_path, 1)) == []


# ------------------------------------------------------------- the file ---
def _thresholds(entries, machine="cpu-ci", rounds=2):
    return tf.Thresholds(machine, "2026-11-25T00:00:00+00:00", "a" * 40, 4, rounds, 1.5, 1.01, 2.0,
                         entries)


def test_file_round_trip(tmp_path):
    entries = noise.entries(_runs(tmp_path, 3))
    path = tf.path_for(str(tmp_path / "results"), "cpu-ci")
    path.parent.mkdir(parents=True)
    tf.write(path, _thresholds(entries))
    back = tf.read(path)
    assert back == _thresholds(entries)
    assert json.loads(path.read_text())["schema_version"] == tf.SCHEMA_VERSION
    assert back.lookup()[(d.TIME, ("tiled", "seed"))] == pytest.approx(1.21, rel=5e-3)
    assert tf.read(tmp_path / "absent.json") is None


@pytest.mark.parametrize("edit, message", [
    (lambda x: x.update(schema_version=9), "schema_version 9 is not one this attnperf reads"),
    (lambda x: x.update(rounds=0), "'rounds' must be a positive integer"),
    (lambda x: x["benchmarks"][0].update(threshold=0.5), "'threshold' must be a number >= 1.0"),
    (lambda x: x["benchmarks"][0].update(params="tiled"), "'params' must be a list of strings"),
    (lambda x: x.update(benchmarks={}), "'benchmarks' must be a list"),
])
def test_file_validation_names_the_problem(tmp_path, edit, message):
    data = _thresholds(noise.entries(_runs(tmp_path, 2))).to_dict()
    edit(data)
    path = tmp_path / "t.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ReportError, match=message.replace("(", r"\(").replace(")", r"\)")):
        tf.read(path)


def test_asv_results_reader_skips_the_thresholds_file(tmp_path):
    runs = _runs(tmp_path, 2)
    results = tmp_path / "results" / "set0"
    tf.write(results / "cpu-ci" / tf.FILE_NAME, _thresholds(noise.entries(runs)))
    db = read_results(str(results))
    assert not any(tf.FILE_NAME in n for n in db.all_notes())


# --------------------------------------------- per-benchmark verdicts (ab) ---
def _pair(tmp_path, scale_tiled):
    results = tmp_path / "pair"
    d.write_benchmarks(results, KERNELS, PROBLEMS)
    params = d.grid_params(KERNELS, PROBLEMS)
    runs = []
    for commit, scale in (("b" * 40, 1.0), ("c" * 40, scale_tiled)):
        rows = {
            d.TIME: d.row(
                params,
                d.grid_values(
                    KERNELS,
                    PROBLEMS,
                    lambda k, p, scale=scale: d.samples(
                        _median(k, p, 0) * (scale if k == "tiled" else 1.0), seed=len(k) + len(p)
                    ),
                ),
            )
        }
        runs.append(read_run(d.write_run(results, d.CPU_INFO, commit, 1000, rows), "cpu-ci", []))
    return read_results(str(results)), runs


def test_rows_are_judged_at_their_own_threshold(tmp_path):
    db, (base, head) = _pair(tmp_path, 1.15)
    own = {(d.TIME, ("tiled", "seed")): 1.1, (d.TIME, ("tiled", "train")): 1.2}
    cmp = ab.compare(db, "cpu-ci", base, head, 1.5, own)
    change = {(r.kernel, r.problem): (r.change, r.factor) for r in cmp.rows}
    assert change[("tiled", "seed")] == (ab.WORSE, 1.1)
    assert change[("tiled", "train")] == (ab.SAME, 1.2)
    assert change[("sdpa", "seed")] == (ab.SAME, 1.5)  # no entry: the suite factor
    assert cmp.per_benchmark and not ab.compare(db, "cpu-ci", base, head, 1.5).per_benchmark


def test_decide_follows_the_re_judged_rows(tmp_path):
    db, (base, head) = _pair(tmp_path, 1.15)
    lenient = {(d.TIME, (k, p)): 1.3 for k in KERNELS for p in PROBLEMS}
    strict = {(d.TIME, ("tiled", "seed")): 1.1}
    asv_view = ab.compare(db, "cpu-ci", base, head, 1.05)
    assert asv_view.count(ab.WORSE) == 2
    # asv (at x1.05) exits 1; no row passes its threshold of 1.3: ok, and says why.
    code, why = ab.decide(1, ab.compare(db, "cpu-ci", base, head, 1.5, lenient), asv_view)
    assert code == ab.EXIT_OK and "calibrated thresholds" in why
    code, why = ab.decide(1, ab.compare(db, "cpu-ci", base, head, 1.5, strict), asv_view)
    assert code == ab.EXIT_REGRESSION and "their calibrated thresholds" in why
    # asv exit 1 that no row explains, at any factor, is still an asv error.
    flat_db, (b2, h2) = _pair(tmp_path / "flat", 1.0)
    code, _ = ab.decide(1, ab.compare(flat_db, "cpu-ci", b2, h2, 1.5, lenient),
                        ab.compare(flat_db, "cpu-ci", b2, h2, 1.05))
    assert code == ab.EXIT_INFRA


# ------------------------------------------ ci bench with a thresholds file ---
@pytest.fixture
def project(tmp_path):
    """The stand-in asv's PR job project (support.fakeasv)."""
    return fakeasv.make_project(tmp_path)


_run = fakeasv.run_job


def _write_thresholds(project, entries, machine="h100", rounds=3):
    path = tf.path_for(str(project["root"] / "results"), machine)
    path.parent.mkdir(parents=True, exist_ok=True)
    tf.write(path, _thresholds(entries, machine=machine, rounds=rounds))
    return path


def _entry(k, p, threshold):
    return tf.Entry(d.TIME, (k, p), (1.0, 1.0), 1.0, threshold, threshold)


def test_ci_bench_runs_asv_at_the_smallest_threshold_and_re_judges(project):
    # Prepared results: tiled/train is 2x slower at head.  Its threshold 2.5 -> not a regression.
    _write_thresholds(project, [_entry("tiled", "train", 2.5), _entry("sdpa", "seed", 1.02)])
    proc, out, verdict = _run(project, 1)
    argv = json.loads((project["tmp"] / "argv.json").read_text())
    assert argv[argv.index("--factor") + 1] == "1.02"
    assert argv[argv.index("-a") + 1] == "rounds=3" and "--interleave-rounds" in argv
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert verdict["verdict"] == "ok" and verdict["asv_factor"] == 1.02 and verdict["rounds"] == 3
    assert "calibrated thresholds" in verdict["reason"]
    summary = (out / "summary.md").read_text()
    assert summary.startswith("### ✅ `h100`: no significant regression (per-benchmark thresholds)")
    assert "2.00× (×2.5)" in summary


def test_ci_bench_threshold_below_the_suite_factor_flags(project):
    _write_thresholds(project, [_entry("tiled", "train", 1.5)])
    proc, out, verdict = _run(project, 1, extra=["--factor", "3", "--rounds", "2"])
    argv = json.loads((project["tmp"] / "argv.json").read_text())
    assert argv[argv.index("--factor") + 1] == "1.5" and "rounds=2" in argv
    assert proc.returncode == 1 and verdict["verdict"] == "regression"
    assert (out / "summary.md").read_text().startswith(
        "### 🔴 `h100`: regression — 1 benchmark(s) slower than their calibrated thresholds")
    # --no-thresholds: the suite factor 3 alone; asv's exit 1 is then unexplained.
    proc, out, verdict = _run(project, 0, extra=["--factor", "3", "--no-thresholds"])
    argv = json.loads((project["tmp"] / "argv.json").read_text())
    assert argv[argv.index("--factor") + 1] == "3" and "-a" not in argv
    assert proc.returncode == 0 and verdict["thresholds"] is None


def test_ci_bench_refuses_a_broken_or_foreign_thresholds_file(project):
    path = _write_thresholds(project, [_entry("tiled", "train", 1.5)], machine="other")
    target = tf.path_for(str(project["root"] / "results"), "h100")
    target.parent.mkdir(parents=True)
    path.rename(target)
    proc, out, verdict = _run(project, 0)
    assert proc.returncode == 2 and "calibrated for machine 'other', not 'h100'" in proc.stderr
    tf.path_for(str(project["root"] / "results"), "h100").write_text("{")
    proc, out, verdict = _run(project, 0)
    assert proc.returncode == 2 and "is not valid JSON" in proc.stderr


# --------------------------------------------- the command, stand-in asv ---
FAKE_ASV = """#!{python}
import json, os, sys
sys.path.insert(0, {tests!r})
from support import asvdata as d
argv = sys.argv[1:]
conf = json.load(open(argv[argv.index("--config") + 1]))
machine = argv[argv.index("--machine") + 1]
counter = os.environ["FAKE_ASV_COUNTER"]
i = int(open(counter).read()) if os.path.exists(counter) else 0
open(counter, "w").write(str(i + 1))
with open(os.environ["FAKE_ASV_LOG"], "a") as fh:
    fh.write(json.dumps(argv) + "\\n")
kernels, problems = ["sdpa", "tiled"], ["seed", "train"]
spreads = {{"sdpa": 0.01, "tiled": 0.10}}
def t(k, p):
    return d.samples({{"seed": 1e-3, "train": 4e-3}}[p] * (1 + spreads[k] * (i % 2)), seed=i)
info = dict(d.CPU_INFO, machine=machine)
d.write_run(__import__("pathlib").Path(conf["results_dir"]), info, argv[-1][:-2], 1000,
            {{d.TIME: d.row(d.grid_params(kernels, problems),
                            d.grid_values(kernels, problems, t))}})
"""


@pytest.fixture
def calib(tmp_path, monkeypatch, capsys):
    root = tmp_path / "repo"
    commits = d.git_repo(root, 2)
    d.asv_conf(root)
    fake = tmp_path / "asv"
    fake.write_text(FAKE_ASV.format(python=sys.executable, tests=str(TESTS)))
    fake.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asv-machine.json").write_text(json.dumps({"version": 1, "cpu-ci": d.CPU_INFO}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("FAKE_ASV_LOG", str(tmp_path / "asv.log"))
    monkeypatch.setenv("FAKE_ASV_COUNTER", str(tmp_path / "counter"))
    monkeypatch.chdir(root)
    return {"root": root, "commits": commits, "fake": fake, "tmp": tmp_path, "capsys": capsys}


def _calibrate(c, *args):
    c["capsys"].readouterr()
    rc = main(["calibrate", "--asv", str(c["fake"]), *args])
    out, err = c["capsys"].readouterr()
    log = c["tmp"] / "asv.log"
    calls = [json.loads(x) for x in log.read_text().splitlines()] if log.exists() else []
    return rc, out, err, calls


def test_calibrate_writes_thresholds_and_leaves_history_alone(calib):
    rc, out, err, calls = _calibrate(calib, "--runs", "4", "--rounds", "2", "--factor", "1.5")
    assert rc == 0, err
    assert len(calls) == 4
    head = calib["commits"][-1]
    for argv in calls:
        assert argv[-1] == f"{head}^!" and "rounds=2" in argv and "--interleave-rounds" in argv
        conf = argv[argv.index("--config") + 1]
        assert not conf.startswith(str(calib["root"]))  # a derived config, elsewhere
    results = calib["root"] / "results" / "cpu-ci"
    assert sorted(p.name for p in results.iterdir()) == [tf.FILE_NAME]  # no result file written
    t = tf.read(results / tf.FILE_NAME)
    assert t.runs == 4 and t.rounds == 2 and t.commit == head and t.machine == "cpu-ci"
    by = {e.params: e for e in t.entries}
    assert by[("tiled", "seed")].spread == pytest.approx(1.10, rel=2e-3)
    assert by[("tiled", "seed")].threshold == pytest.approx(1.21, rel=5e-3)
    assert by[("sdpa", "seed")].threshold == pytest.approx(1.0201, rel=1e-3)
    line = next(x for x in out.splitlines() if "track_device_time('tiled', 'seed')" in x)
    assert [float(x) for x in line.split()[:4]] == pytest.approx([1.10, 1.21, 1.331, 1.65],
                                                                  abs=2e-3), line
    assert f"wrote {results / tf.FILE_NAME}" in out


def test_calibrate_reports_at_the_factor_ci_bench_judges_at(calib):
    """Without --factor, the detectable slowdown is reported (and the file records it) at
    the factor ci bench judges at on the machine's device, as `attnperf asv machine`
    recorded it: the CPU's 1.5, a GPU's 1.05, or [tool.attnperf] regression-factor."""
    home = Path(os.environ["HOME"])
    (home / ".asv-machine.json").write_text(json.dumps(
        {"version": 1, "cpu-ci": d.CPU_INFO, "h100": d.H100_INFO}))
    out_file = calib["tmp"] / "t.json"
    for machine, pyproject, factor in (("cpu-ci", None, 1.5), ("h100", None, 1.05),
                                       ("cpu-ci", "regression-factor = {cpu = 1.2}", 1.2)):
        if pyproject:
            (calib["root"] / "pyproject.toml").write_text(f"[tool.attnperf]\n{pyproject}\n")
        rc, out, err, _ = _calibrate(calib, "--machine", machine, "--runs", "2", "-o",
                                     str(out_file))
        assert rc == 0, err
        assert f"a single factor {factor:g} flags" in out, out
        assert tf.read(out_file).factor == factor
    (calib["root"] / "pyproject.toml").write_text("[tool.attnperf]\nregression-factor = 0.5\n")
    rc, out, err, calls = _calibrate(calib, "--machine", "cpu-ci", "--runs", "2", "--no-write")
    assert rc == 2 and err.startswith("error: ") and "regression-factor = 0.5" in err, err
    assert len(calls) == 6 and out == ""  # refused before asv ran again


def test_calibrate_no_write_and_usage_errors(calib):
    rc, out, err, calls = _calibrate(calib, "--runs", "2", "--no-write")
    assert rc == 0 and not (calib["root"] / "results" / "cpu-ci" / tf.FILE_NAME).exists()
    for args, message in ((["--runs", "1"], "--runs must be at least 2"),
                          (["--factor", "0.5"], "--factor must be a number >= 1.0"),
                          (["--commit", "nope"], "'nope' is not a commit"),
                          (["--machine", "gpu9"], "asv knows no machine 'gpu9'")):
        rc, out, err, _ = _calibrate(calib, *args)
        assert rc == 2 and err.startswith("error: ") and message in err and out == "", (args, err)


def test_calibrate_pools_earlier_sets(calib):
    """--pool adds earlier A/A sets: an earlier thresholds file's medians and asv results files.
    Two measured sets of tiled (1.00, 1.10) plus an earlier file whose medians reach 1.30 ->
    the spread is 1.30; --runs 0 recomputes from pooled sets alone; foreign files are refused."""
    results = calib["root"] / "results" / "cpu-ci"
    earlier = calib["tmp"] / "earlier.json"
    rc, out, err, _ = _calibrate(calib, "--runs", "2", "-o", str(earlier))
    assert rc == 0, err
    t = tf.read(earlier)
    stretched = [tf.Entry(e.benchmark, e.params, e.medians + (e.medians[0] * 1.3,), 1.0, 1.01, 1.01)
                 for e in t.entries]
    tf.write(earlier, _thresholds(stretched, rounds=2))
    rc, out, err, calls = _calibrate(calib, "--runs", "2", "--pool", str(earlier))
    assert rc == 0, err
    measured = len(calls)
    pooled = tf.read(results / tf.FILE_NAME)
    assert pooled.runs == 2 + 4  # measured now + the earlier file's recorded sets
    by = {e.params: e for e in pooled.entries}
    assert len(by[("tiled", "seed")].medians) == 2 + 3
    assert by[("tiled", "seed")].spread == pytest.approx(1.30, rel=2e-3)
    # an asv results file as one more set, and nothing measured now
    one_set = d.write_run(calib["tmp"] / "set", dict(d.CPU_INFO, machine="cpu-ci"), "b" * 40, 1000,
                          {d.TIME: d.row(d.grid_params(KERNELS, PROBLEMS), d.grid_values(
                              KERNELS, PROBLEMS, lambda k, p: d.samples(_median(k, p, 0) * 1.5)))})
    rc, out, err, calls = _calibrate(calib, "--runs", "0", "--pool", str(earlier),
                                     "--pool", str(one_set), "--no-write")
    assert rc == 0 and len(calls) == measured, err  # no asv call this time
    line = next(x for x in out.splitlines() if "track_device_time('sdpa', 'train')" in x)
    assert float(line.split()[0]) == pytest.approx(1.5, rel=2e-3), line
    foreign = d.write_run(calib["tmp"] / "foreign", dict(d.CPU_INFO, machine="other"), "c" * 40,
                          1000, {d.TIME: d.row(d.grid_params(KERNELS, PROBLEMS), d.grid_values(
                              KERNELS, PROBLEMS, lambda k, p: d.samples(1e-3)))})
    for args, message in ((["--runs", "0"], "--runs must be at least 2"),
                          (["--runs", "0", "--pool", str(foreign)], "not an asv results file of "
                           "machine 'cpu-ci'"),
                          (["--runs", "0", "--pool", str(earlier), "--rounds", "3"],
                           "with 3 (--rounds)"),
                          (["--runs", "0", "--pool", str(calib["tmp"] / "nope.json")],
                           "does not exist")):
        rc, out, err, _ = _calibrate(calib, *args)
        assert rc == 2 and err.startswith("error: ") and message in err and out == "", (args, err)
