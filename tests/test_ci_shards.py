"""A sharded pull-request job (attnperf.ci.shards): `ci bench --shard K/N`, `ci merge` of the
shards' folders, and `ci bench --gpus` running one shard per GPU.

The fast tests put a stand-in for `asv` on the command line: it drops prepared result files
where asv would write them (the shard's own, chosen by ATTNPERF_ASV_SHARD: the other
shards' combinations n/a, as the suite records them) and exits as asv would for those
files.  The merged verdict is compared with one unsharded job's over the same results.
The slow test runs the real `asv continuous` on a clone, 1 shard against 2.
"""

import itertools
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from attnperf.analysis import ab
from attnperf.ci import bench, shards
from attnperf.cli import build_parser
from attnperf.cli.ci import Bench
from attnperf.errors import UsageError
from attnperf.io.asv_results import read_results
from attnperf.model.catalog import PRESETS, pass_id
from attnperf.model.shard import Shard
from support import asvdata as d
from support import realasv

KERNELS = ["sdpa", "tiled", "naive"]
PROBLEMS = [PRESETS[n].id for n in ("seed", "train", "causal")]
PASS_PROBLEMS = [PRESETS["causal"].id]
MODES = ["bwd", "fwd+bwd"]
TRAIN = "bench_attention.TrainingPass.track_device_time"
FOOTER = re.compile(r"^<sub>.*</sub>$", re.M)

FAKE_ASV = '''#!{python}
import json, os, shutil, sys
args = sys.argv[1:]
with open(args[args.index("--config") + 1]) as fh:
    conf = json.loads("\\n".join(l for l in fh.read().splitlines()
                                if not l.lstrip().startswith("//")))
shard = os.environ.get("ATTNPERF_ASV_SHARD", "")
name = shard.replace("/", "of") or "whole"
with open(os.path.join(os.environ["FAKE_ASV_LOG"], name + ".json"), "w") as fh:
    json.dump({{"argv": args, "cwd": os.getcwd(), "results_dir": conf["results_dir"],
               "cuda": os.environ.get("CUDA_VISIBLE_DEVICES"),
               "order": os.environ.get("CUDA_DEVICE_ORDER"),
               "github": [k for k in os.environ if k.startswith("GITHUB_")]}}, fh)
plan = json.loads(os.environ["FAKE_ASV_PLAN"])[shard or "whole"]
shutil.copytree(plan["results"], conf["results_dir"], dirs_exist_ok=True)
print({{0: "BENCHMARKS NOT SIGNIFICANTLY CHANGED.", 1: "PERFORMANCE DECREASED."}}.get(
    plan["exit"], "asv: a benchmark failed"))
sys.exit(plan["exit"])
'''


@pytest.fixture(autouse=True)
def no_github(monkeypatch):
    for key in [k for k in os.environ if k.startswith("GITHUB_")]:
        monkeypatch.delenv(key)


def _value(scenario, commit_is_head, k, p):
    """One combination's samples (None: failed) in a scenario: tiled twice as slow at head
    (regression), nothing changed (aa), naive failing at head on the large problem
    (broken)."""
    if scenario == "broken" and commit_is_head and k == "naive" and p == PROBLEMS[1]:
        return None
    slow = 2.0 if scenario in ("regression", "old-base") and commit_is_head and k == "tiled" \
        else 1.0
    base = {"sdpa": 1e-5, "tiled": 3e-5, "naive": 9e-5}[k] * (1 + len(p) / 100)
    return d.samples(base * slow, seed=len(k) + len(p) + (7 if commit_is_head else 0))


def _results(folder, scenario, commits, keep_base, keep_head):
    """asv's files for both commits; combinations ``keep`` refuses (kernel, problem id)
    are n/a, as a shard's suite records the others'."""
    d.write_benchmarks(folder, KERNELS, PROBLEMS)
    d.write_machine(folder, d.H100_INFO, d.H100_CEILINGS)
    for commit, ms, keep, is_head in ((commits[0], 1000, keep_base, False),
                                      (commits[1], 2000, keep_head, True)):
        time = [(_value(scenario, is_head, k, p) if keep(k, p) else math.nan)
                for k, p in itertools.product(KERNELS, PROBLEMS)]
        passes = [(_value(scenario, is_head, k, pass_id(p, m)) if keep(k, pass_id(p, m))
                   else math.nan) for k, p, m in itertools.product(KERNELS, PASS_PROBLEMS, MODES)]
        pass_params = [[repr(k) for k in KERNELS], [repr(p) for p in PASS_PROBLEMS],
                       [repr(m) for m in MODES]]
        d.write_run(folder, d.H100_INFO, commit, ms,
                    {d.TIME: d.row(d.grid_params(KERNELS, PROBLEMS), time),
                     TRAIN: d.row(pass_params, passes)})


def _asv_exit(folder, commits, factor=1.05):
    """What asv continuous exits for these files: 2 a failure, 1 slower, 0 neither."""
    db = read_results(str(folder))
    m = db.machines["h100"]
    base, head = m.runs_for(commits[0])[-1], m.runs_for(commits[1])[-1]
    view = ab.compare(db, "h100", base, head, factor, metric_rules=False)
    if any(p.status == "failed" for r in (base, head) for b in r.benchmarks.values()
           for p in b.points.values()):
        return 2
    return 1 if view.count(ab.WORSE) else 0


def _plan(tmp, scenario, commits, count):
    """The stand-in asv's plan: the unsharded job's files and each shard's."""
    plan = {}
    everything = lambda k, p: True  # noqa: E731

    def add(key, keep_base, keep_head):
        folder = tmp / "prepared" / scenario / key.replace("/", "of")
        _results(folder, scenario, commits, keep_base, keep_head)
        plan[key] = {"results": str(folder), "exit": _asv_exit(folder, commits)}

    add("whole", everything, everything)
    for k in range(1, count + 1):
        mine = Shard(k, count).owns
        # a base from before sharding measures everything, in every shard
        add(f"{k}/{count}", everything if scenario == "old-base" else mine, mine)
    return plan


@pytest.fixture
def pair(tmp_path, monkeypatch):
    root = tmp_path / "repo"
    commits = d.git_repo(root, 2)
    conf = d.asv_conf(root)
    fake = tmp_path / "asv"
    fake.write_text(FAKE_ASV.format(python=sys.executable))
    fake.chmod(0o755)
    calls = tmp_path / "calls"
    calls.mkdir()
    monkeypatch.setenv("FAKE_ASV_LOG", str(calls))

    def plan(scenario, count=2):
        monkeypatch.setenv("FAKE_ASV_PLAN", json.dumps(_plan(tmp_path, scenario, commits, count)))

    return {"root": root, "commits": commits, "conf": conf, "fake": fake, "tmp": tmp_path,
            "calls": calls, "plan": plan}


def _bench(cli, pair, out, *extra):
    res = cli("ci", "bench", "--config", pair["conf"], "--base", pair["commits"][0], "--head",
              "HEAD", "--machine", "h100", "--device", "cuda", "--no-describe", "--asv",
              pair["fake"], "--out", out, *extra)
    assert (out / "verdict.json").is_file(), res.err
    verdict = json.loads((out / "verdict.json").read_text())
    return res, verdict, (out / "summary.md").read_text()


def _shard_folders(cli, pair, count=2, *extra):
    folders = []
    for k in range(1, count + 1):
        folders.append(pair["tmp"] / f"shard-{k}")
        res, verdict, _ = _bench(cli, pair, folders[-1], "--shard", f"{k}/{count}", *extra)
        assert verdict["shard"] == f"{k}/{count}" and verdict["exit_code"] == res.code, res.err
    return folders


def _same_verdict(one, merged):
    for key in ("exit_code", "verdict", "reason", "asv_exit", "counts", "flagged", "factor",
                "base", "head", "machine"):
        assert one[key] == merged[key], key


def _body(summary):
    return FOOTER.sub("", summary)


@pytest.mark.parametrize("scenario, code", [("regression", 1), ("aa", 0), ("broken", 4),
                                             ("old-base", 1)])
def test_two_shards_merged_are_one_job(cli, pair, scenario, code):
    """Same rows flagged, same verdict and exit code, the same PR comment section (less its
    footer, which names the shards), and the result files merged to one job's."""
    pair["plan"](scenario)
    res, one, one_summary = _bench(cli, pair, pair["tmp"] / "one")
    assert res.code == code == one["exit_code"], res.err
    folders = _shard_folders(cli, pair)
    # each shard flags its own rows: together the one job's, none twice
    flagged = [json.loads((f / "verdict.json").read_text())["flagged"] for f in folders]
    assert sorted(flagged[0] + flagged[1]) == sorted(one["flagged"])
    assert not set(flagged[0]) & set(flagged[1])
    merged_out = pair["tmp"] / "merged"
    res = cli("ci", "merge", *folders, "--out", merged_out)
    assert res.code == code, res.err
    merged = json.loads((merged_out / "verdict.json").read_text())
    _same_verdict(one, merged)
    summary = (merged_out / "summary.md").read_text()
    assert _body(summary) == _body(one_summary)
    assert "Measured in 2 shard(s): 1/2" in summary
    assert [s["shard"] for s in merged["shards"]] == ["1/2", "2/2"]
    for line in one["flagged"]:
        assert f"[attnperf ci merge] flagged: {line}" in res.err
    # the merged result files hold what the one job's do
    a, b = read_results(str(pair["tmp"] / "one" / "results")), read_results(
        str(merged_out / "results"))
    for run_a, run_b in zip(a.machines["h100"].runs, b.machines["h100"].runs, strict=True):
        assert {n: x.points for n, x in run_a.benchmarks.items()} == \
            {n: x.points for n, x in run_b.benchmarks.items()}


def test_calibrated_thresholds_judge_the_merged_rows_as_one_jobs(cli, pair):
    """With the machine's calibrated thresholds each shard judges its rows by them and keeps
    a copy for the merge: tiled's seed row, calibrated at x2.5, is not flagged by either."""
    from attnperf.io import thresholds as tf

    pair["plan"]("regression")
    seed = ("tiled", PROBLEMS[0])
    (pair["root"] / "results" / "h100").mkdir(parents=True)
    tf.write(tf.path_for(str(pair["root"] / "results"), "h100"), tf.Thresholds(
        "h100", "2026-11-25T00:00:00+00:00", "a" * 40, 4, 2, 1.05, 1.01, 2.0,
        [tf.Entry(d.TIME, seed, (1.0, 1.0), 1.5, 2.5, 2.6)]))
    res, one, one_summary = _bench(cli, pair, pair["tmp"] / "one")
    assert res.code == 1 and one["counts"]["worse"] == 4, res.err
    folders = _shard_folders(cli, pair)
    res = cli("ci", "merge", *folders, "--out", pair["tmp"] / "merged")
    assert res.code == 1, res.err
    _same_verdict(one, json.loads((pair["tmp"] / "merged" / "verdict.json").read_text()))
    summary = (pair["tmp"] / "merged" / "summary.md").read_text()
    assert _body(summary) == _body(one_summary) and "per-benchmark thresholds" in summary
    owner = next(f for f in folders if (f / "results" / "h100" / tf.FILE_NAME).is_file())
    (owner / "results" / "h100" / tf.FILE_NAME).unlink()
    _one_error(cli("ci", "merge", *folders, "--out", pair["tmp"] / "merged"), 2,
               "judged with calibrated thresholds but holds no copy of them")


def test_a_shards_verdict_is_about_its_own_rows(cli, pair):
    pair["plan"]("old-base")
    verdicts = [json.loads((f / "verdict.json").read_text()) for f in _shard_folders(cli, pair)]
    for k, verdict in enumerate(verdicts, start=1):
        shard = Shard(k, 2)
        assert verdict["gpu"]["index"] == 0  # CUDA_VISIBLE_DEVICES unset: the first GPU
        assert verdict["asv_finished"] is True
        flagged = [line.split(" ")[0].split("/", 1) for line in verdict["flagged"]]
        assert flagged and all(shard.owns(kern, prob) for kern, prob in flagged), flagged
    call = json.loads((pair["calls"] / "1of2.json").read_text())
    assert call["results_dir"] == "results"  # the config's own: no --asv-dir


def _edit(folder, **changes):
    path = folder / "verdict.json"
    verdict = json.loads(path.read_text())
    verdict.update(changes)
    path.write_text(json.dumps(verdict))


def _one_error(res, code, *needles):
    assert res.code == code, (res.code, res.err)
    lines = [line for line in res.err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    assert "Traceback" not in res.err


def test_merge_refuses_what_is_not_one_job(cli, pair):
    pair["plan"]("regression", count=3)
    folders = _shard_folders(cli, pair, 3)
    out = pair["tmp"] / "merged"
    _one_error(cli("ci", "merge", folders[0], folders[2], "--out", out), 2,
               "shard(s) 2/3 missing", "3 in all")
    _one_error(cli("ci", "merge", *folders, folders[1], "--out", out), 2,
               "shard 2/3 is given twice")
    _one_error(cli("ci", "merge", *folders, pair["tmp"] / "nowhere", "--out", out), 2,
               "nowhere' is not a folder")
    _one_error(cli("ci", "merge", *folders, "--out", folders[1]), 2, "is a shard's folder")
    other = pair["tmp"] / "other"
    shutil.copytree(folders[2], other)
    _edit(other, shard="3/4")
    _one_error(cli("ci", "merge", *folders[:2], other, "--out", out), 2,
               "different splits (N=3 vs 4)")
    for key, value in (("base", "f" * 40), ("machine", "a100"), ("factor", 1.5)):
        shutil.rmtree(other)
        shutil.copytree(folders[2], other)
        _edit(other, **{key: value})
        _one_error(cli("ci", "merge", *folders[:2], other, "--out", out), 2,
                   f"differ in {key}")
    _edit(other, shard=None)
    _one_error(cli("ci", "merge", *folders[:2], other, "--out", out), 2,
               "names no shard (an unsharded job)")
    _edit(other, factor=None)
    _one_error(cli("ci", "merge", *folders[:2], other, "--out", out), 2,
               "verdict.json has no valid 'factor'")
    plain = pair["tmp"] / "plain"
    plain.mkdir()
    _one_error(cli("ci", "merge", *folders[:2], plain, "--out", out), 2,
               "holds no verdict.json and is not the output folder")
    assert not (out / "verdict.json").exists()
    assert "no benchmark results" in (out / "summary.md").read_text()  # says why


def test_a_shard_that_failed_before_its_verdict_is_a_harness_failure(cli, pair):
    pair["plan"]("aa")
    folders = _shard_folders(cli, pair)
    (folders[1] / "verdict.json").unlink()
    (folders[1] / "summary.md").write_text("### ⚠️ `h100`: cannot start asv\n")
    res = cli("ci", "merge", *folders, "--out", pair["tmp"] / "merged")
    _one_error(res, 3, "wrote no verdict", "(⚠️ `h100`: cannot start asv)")


def test_a_shards_harness_failure_is_the_merged_verdict(cli, pair):
    pair["plan"]("aa")
    folders = _shard_folders(cli, pair)
    _edit(folders[1], exit_code=3, verdict="error", reason="asv continuous exited -9")
    res = cli("ci", "merge", *folders, "--out", pair["tmp"] / "merged")
    assert res.code == 3, res.err
    merged = json.loads((pair["tmp"] / "merged" / "verdict.json").read_text())
    assert merged["reason"] == "shard 2/2: asv continuous exited -9"


def test_the_shards_paired_re_measurements_judge_the_merged_rows(cli, pair):
    """On a CPU each shard re-measures its own time rows paired; the merge judges every
    row by its shard's pairs, as one job judges by its own."""
    pair["plan"]("regression")
    folders = _shard_folders(cli, pair)
    for k, folder in enumerate(folders, start=1):
        mine = [(kern, prob) for kern, prob in itertools.product(
            KERNELS, PROBLEMS + [pass_id(p, m) for p in PASS_PROBLEMS for m in MODES])
            if Shard(k, 2).owns(kern, prob)]
        (folder / "paired.json").write_text(json.dumps({"factor": 1.1, "results": [
            {"kernel": kern, "problem": prob, "ratio": 1.01, "p_slower": 0.4, "p_faster": 0.6,
             "pairs": 20, "base_s": 1e-3, "head_s": 1.01e-3, "calls": 3,
             **({"runs": [0.99, 1.01, 1.03]} if k == 1 else {})}  # shard 2: written before runs
            for kern, prob in mine], "not_measured": []}))
        _edit(folder, paired_factor=1.1)
    out = pair["tmp"] / "merged"
    res = cli("ci", "merge", *folders, "--out", out)
    assert res.code == 0, res.err
    merged = json.loads((out / "verdict.json").read_text())
    assert merged["reason"].startswith("no significant regression past the paired "
                                       "re-measurement (asv flagged 5 at its factor")
    paired = json.loads((out / "paired.json").read_text())["results"]
    assert len(paired) == len(KERNELS) * (len(PROBLEMS) + 2)  # every row, once
    summary = (out / "summary.md").read_text()
    assert "paired p=4.0e-01 (sign test, 20 pairs)" in summary
    with_runs = summary.count("| 1.010 | 0.990 1.010 1.030 | 4.0e-01 |")  # the paired table
    assert with_runs > 0 and with_runs + summary.count("| 1.010 | — | 4.0e-01 |") == len(paired)
    assert sum(r["runs"] == [0.99, 1.01, 1.03] for r in paired) == with_runs
    (folders[1] / "paired.json").unlink()
    _one_error(cli("ci", "merge", *folders, "--out", out), 2, "shard 2/2", "no paired.json")


def test_merge_reports_to_github_once(cli, pair, monkeypatch):
    pair["plan"]("regression")
    folders = _shard_folders(cli, pair)
    out = pair["tmp"] / "gh"
    monkeypatch.setenv("GITHUB_OUTPUT", str(out) + ".output")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(out) + ".summary")
    res = cli("ci", "merge", *folders, "--out", out)
    assert res.code == 1
    assert Path(str(out) + ".output").read_text() == "verdict=regression\nexit_code=1\n"
    assert Path(str(out) + ".summary").read_text() == (out / "summary.md").read_text() + "\n"


def test_merge_results_only(cli, pair):
    pair["plan"]("regression")
    plan = json.loads(os.environ["FAKE_ASV_PLAN"])
    out = pair["tmp"] / "merged"
    res = cli("ci", "merge", "--results-only", plan["1/2"]["results"], plan["2/2"]["results"],
              "--out", out)
    assert res.code == 0, res.err
    assert "5 file(s) merged" in res.err
    merged = read_results(str(out / "results")).machines["h100"].runs
    whole = read_results(plan["whole"]["results"]).machines["h100"].runs
    assert [{n: b.points for n, b in r.benchmarks.items()} for r in merged] == \
        [{n: b.points for n, b in r.benchmarks.items()} for r in whole]


# ---------------------------------------------------------------- --gpus ---
def test_one_shard_per_gpu_in_parallel_then_merged(cli, pair):
    """--gpus 0,1: two `ci bench --shard K/2` processes, each pinned to its GPU
    (CUDA_VISIBLE_DEVICES, PCI bus order) with asv folders of its own, reporting nothing to
    GitHub; OUT is their merged verdict, the same as one job's."""
    pair["plan"]("regression")
    _, one, one_summary = _bench(cli, pair, pair["tmp"] / "one")
    out = pair["tmp"] / "gpus"
    options = bench.BenchOptions(base=pair["commits"][0], machine="h100", config=str(pair["conf"]),
                                 out=str(out), device="cuda", describe=False,
                                 asv=str(pair["fake"]), gpus=(1, 0))
    outcome = shards.run_on_gpus(options, gpu_count=lambda: 2)
    assert outcome.code == 1
    merged = json.loads((out / "verdict.json").read_text())
    _same_verdict(one, merged)
    assert _body((out / "summary.md").read_text()) == _body(one_summary)
    root = pair["root"].resolve()
    for k, gpu in ((1, 1), (2, 0)):
        call = json.loads((pair["calls"] / f"{k}of2.json").read_text())
        assert (call["cuda"], call["order"], call["github"]) == (str(gpu), "PCI_BUS_ID", [])
        assert call["results_dir"] == str(root / ".asv" / f"gpu-{gpu}" / "results")
        assert Path(call["cwd"]).resolve() == root  # asv runs in the repository
        shard = json.loads((out / f"shard-{k}" / "verdict.json").read_text())
        assert shard["gpu"]["index"] == gpu and shard["shard"] == f"{k}/2"
        assert merged["shards"][k - 1]["gpu"]["index"] == gpu
        assert (out / f"shard-{k}.log").is_file()
    assert "1/2 on GPU 1; 2/2 on GPU 0" in (out / "summary.md").read_text()


def test_gpus_are_refused_on_a_cpu_and_where_there_are_none(cli, pair, tmp_path):
    res = cli("ci", "bench", "--base", "x", "--machine", "m", "--device", "cpu", "--gpus",
              "0,1", "--out", tmp_path / "o")
    _one_error(res, 2, "--gpus 0,1: runs one shard per CUDA GPU", "is cpu",
               "--shard K/N")
    assert not (tmp_path / "o").exists()
    options = bench.BenchOptions(base="x", machine="m", device="cuda", gpus=(0, 2),
                                 out=str(tmp_path / "o"))
    with pytest.raises(UsageError, match=r"--gpus 0,2: this host has 2 CUDA GPU\(s\) \(0..1\)"):
        shards.run_on_gpus(options, gpu_count=lambda: 2)
    with pytest.raises(UsageError, match=r"this host has 0 CUDA GPU\(s\)$"):
        shards.run_on_gpus(options, gpu_count=lambda: 0)


@pytest.mark.parametrize("extra, message", [
    (["--shard", "3/2"], "--shard '3/2': give K/N"),
    (["--shard", "0/2"], "1 <= K <= N <= 64"),
    (["--gpus", "0,0"], "--gpus '0,0': give the indices of distinct GPUs"),
    (["--gpus", "a"], "--gpus 'a'"),
    (["--gpus", "0,1", "--shard", "1/2"], "give one"),
    (["--gpus", "0,1", "--render-only"], "--gpus with --render-only"),
    (["--asv-dir", "x", "--results-dir", "y"], "--asv-dir with --results-dir"),
])
def test_bad_shard_flags_are_one_error_line(cli, tmp_path, extra, message):
    res = cli("ci", "bench", "--base", "x", "--machine", "m", "--out", tmp_path / "o", *extra)
    _one_error(res, 2, message)
    assert not (tmp_path / "o").exists()


def _options(argv, monkeypatch):
    """The options `attnperf ci bench` builds from ``argv`` (its run stood in for)."""
    seen = []
    monkeypatch.setattr(Bench, "run", classmethod(lambda cls, o: seen.append(o) or 0))
    Bench.run_from_args(build_parser().parse_args(argv))
    return seen[0]


def test_a_shards_command_line_is_the_jobs_options(monkeypatch):
    """--gpus hands each shard every option of the job (as its own command line)."""
    options = bench.BenchOptions(base="b", head="h", machine="m", factor=1.07, config="c.json",
                                 out="o", device="cuda", asv="/x/asv",
                                 asv_args=("-e", "--quick"), timeout_s=99.5, rounds=3,
                                 confirm="paired", paired_factor=1.2, gpus=(3, 1))
    argv = shards.child_argv(options, Shard(2, 2), "b" * 40, "c" * 40, Path("/r/c.json"),
                             Path("/o/shard-2"), Path("/r/.asv/gpu-1"), Path("/t.json"))
    assert argv[:5] == [sys.executable, "-m", "attnperf", "ci", "bench"]
    child = _options(argv[3:], monkeypatch)
    expected = dict(vars(options), base="b" * 40, head="c" * 40, config="/r/c.json",
                    out="/o/shard-2", describe=False, gpus=(), shard=Shard(2, 2),
                    asv_dir="/r/.asv/gpu-1", thresholds="/t.json")
    assert vars(child) == expected
    no_thresholds = shards.child_argv(options, Shard(1, 2), "b", "c", Path("c"), Path("o"),
                                      Path("a"), None)
    assert not _options(no_thresholds[3:], monkeypatch).use_thresholds


def test_asv_dir_gives_asv_folders_of_the_jobs_own(cli, pair):
    pair["plan"]("aa")
    asv_dir = pair["tmp"] / "asv-own"
    res, verdict, _ = _bench(cli, pair, pair["tmp"] / "own", "--asv-dir", asv_dir)
    assert res.code == 0, res.err
    conf = json.loads((asv_dir / "asv.conf.json").read_text())
    own = asv_dir.resolve()
    assert (conf["results_dir"], conf["env_dir"], conf["html_dir"]) == (
        str(own / "results"), str(own / "env"), str(own / "html"))
    assert conf["repo"] == "." and conf["project"] == "attnperf"  # the rest as it was
    assert (own / "results" / "h100").is_dir() and not (pair["root"] / "results").exists()
    assert "h100/machine.json" in verdict["files"]


# ------------------------------------------------------------- real asv ---
def _content(out):
    """What a PR comment section says, less its measured figures: the verdict, the headline,
    each table row's verdict, benchmark, kernel, problem and correctness, the flagged rows
    and the rows measured paired."""
    verdict = json.loads((out / "verdict.json").read_text())
    summary = (out / "summary.md").read_text()
    rows = [tuple(c.strip() for c in line.split(" | ")[:4]) + (line.split(" | ")[-1],)
            for line in summary.splitlines() if line.startswith("| ") and " | track_" in line]
    why = [line.split(":")[0] for line in summary.split("#### Why flagged")[-1].splitlines()
           if line.startswith("- ")] if "#### Why flagged" in summary else []
    paired = sorted(tuple(line.split(" | ")[:2]) for line in
                    summary.split("re-measured paired")[-1].splitlines()
                    if line.startswith("| ") and " ms |" not in line) \
        if "re-measured paired" in summary else []
    return {"exit_code": verdict["exit_code"], "counts": verdict["counts"],
            "reason": re.sub(r"\d+(\.\d+)?", "#", verdict["reason"]),
            "headline": re.sub(r"\d+(\.\d+)?", "#", summary.splitlines()[0]),
            "rows": rows, "why": why, "paired": paired}


@pytest.mark.slow
@pytest.mark.timeout(600)  # three ci bench runs on real asv (one job and two shards)
def test_one_shard_and_two_give_the_same_verdict_with_real_asv(asv_env_lock, cpu_machine_key):
    """Real asv continuous on a clone (CPU; tiled and sdpa on cpu_seed, which the hash puts
    in different shards of two), over a pair where tiled does its work twice and sdpa is
    untouched: one unsharded job and two shards merged flag the same row (tiled's, not
    sdpa's), with the same verdict and the same PR comment section less its figures."""
    cpu_seed = PRESETS["cpu_seed"].id
    assert {Shard(1, 2).owns("sdpa", cpu_seed), Shard(2, 2).owns("tiled", cpu_seed)} == {True}
    with realasv.workdir("attnperf-ci-shards-") as root:
        clone, base = realasv.clone_with_shared_env(root)
        slow = realasv.commit(clone, "tiled does its work twice",
                              realasv.inject(realasv.slowdown(2)))
        env = realasv.asv_env(root, cpu_machine_key, "tiled,sdpa", "cpu_seed")

        def attnperf(*args):
            proc = subprocess.run([sys.executable, "-m", "attnperf", *map(str, args)], cwd=clone,
                                  env=env, capture_output=True, text=True, timeout=600)
            return proc.returncode, proc.stdout[-3000:] + proc.stderr[-3000:]

        # one asv round a commit: the rows' verdicts are under test, not asv's steadiness
        job = ["ci", "bench", "--base", base, "--head", slow, "--machine", realasv.MACHINE,
               "--no-describe", "--device", "cpu", "--factor", "2.5", "--rounds", "1"]
        rc, log = attnperf(*job, "--out", root / "one")
        assert rc == 1, log
        for k in (1, 2):
            rc, log = attnperf(*job, "--shard", f"{k}/2", "--out", root / f"{k}")
            assert (root / f"{k}" / "verdict.json").is_file(), log
        rc, log = attnperf("ci", "merge", root / "1", root / "2", "--out", root / "merged")
        assert rc == 1, log
        one, merged = _content(root / "one"), _content(root / "merged")
        assert merged == one, (one, merged)
        assert {r[2] for r in one["rows"]} == {"tiled", "sdpa"} and len(one["paired"]) == 2, one
        assert {r[2] for r in one["rows"] if r[0].endswith("worse")} == {"tiled"}, one


def test_an_interrupted_gpus_run_leaves_no_shard_running(pair, monkeypatch):
    """Ctrl-C (or a failure) while the shards run: each started shard is stopped and waited
    for before the interrupt goes on, so no shard outlives the run."""
    pair["plan"]("regression")
    started = []

    def launch(argv, env, cwd, log):
        if started:  # the second GPU's start is interrupted
            raise KeyboardInterrupt
        started.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                        stdout=log, stderr=subprocess.STDOUT))
        return started[-1]

    options = bench.BenchOptions(base=pair["commits"][0], machine="h100", config=str(pair["conf"]),
                                 out=str(pair["tmp"] / "interrupted"), device="cuda",
                                 describe=False, asv=str(pair["fake"]), gpus=(0, 1))
    with pytest.raises(KeyboardInterrupt):
        shards.run_on_gpus(options, gpu_count=lambda: 2, launch=launch)
    assert len(started) == 1 and started[0].poll() is not None
