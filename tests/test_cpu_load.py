"""CPU A/A under load: the CPU verdict on a loaded 2-core machine (slow, real asv).

While an unrelated process keeps one core busy (a Python loop), `attnperf ci bench --device cpu`
(asv continuous, then every time row re-measured paired: both commits in two live workers
pinned to one core, samples alternated; attnperf.measure.paired) runs on a temporary clone
(conftest's ``cpu_pr``: tiled, sdpa and sdpa_math over cpu_seed and cpu_causal, cpu_causal
with its training passes):

* an A/A pair (commits that differ only in README) flags nothing;
* a pair whose head makes `tiled` do at least 30 % more work is a regression at both of
  tiled's forward problems, and at nothing else.

asv's own view of the same pairs is printed (`pytest -s`): its separate processes read
identical code 0.76-1.45x apart on this machine kind, so at its factor 1.5 it can never flag
30 %, and at any factor that flags 30 % it flags identical code.

The A/A pair is the CPU job's own A/A run (judged at x2.5), whose outputs the end-to-end test
at the end of this file checks: measured once for both (one test file runs on one worker).
Both pairs run with one asv round (the A/B at the CPU factor): on a CPU the paired
re-measurement, not asv, decides every time row, so asv's rounds only steady the view printed
for the log (the workflow's two interleaved rounds through `ci bench` are test_acceptance's).
An earlier form of this check ran three A/A pairs (base..1, 1..2, 2..3) and the A/B, each
with two asv rounds: several times the cost of what runs here, for A/A pairs that all measure
the same thing (identical code, one core busy).
"""

import pytest

from attnperf.analysis import ab
from attnperf.analysis.gate import TIME
from attnperf.io.asv_results import read_results
from attnperf.measure.paired import Paired
from support.realasv import Job, inject, more_work

pytestmark = pytest.mark.slow

SLOWED = "tiled"
# At least 30 % more real work per call (support.realasv.more_work): the forward is 1.3-1.5x
# slower at both problems (tiled's per-call overhead on top); the backward alone is untouched.
SLOW_30 = more_work(3)


def _rows(cpu_pr, job: Job) -> dict:
    """(kernel, problem id) -> the paired figures of ``job``; prints them beside asv's view."""
    verdict = job.verdict
    db = read_results(str(cpu_pr.clone / "results"))
    machine = db.machines[verdict["machine"]]
    cmp = ab.compare(db, verdict["machine"], machine.runs_for(verdict["base"])[-1],
                     machine.runs_for(verdict["head"])[-1], verdict["factor"])
    asv_rows = {(r.kernel, r.problem): (r.change, r.ratio) for r in cmp.rows
                if r.benchmark == TIME and r.ratio is not None}
    rows = {(r["kernel"], r["problem"]): r for r in job.paired["results"]}
    print(f"\n{job.name}: exit {job.proc.returncode}, asv factor {verdict['factor']}, "
          f"paired factor {job.paired['factor']}, load average {job.load[0]:.2f} -> "
          f"{job.load[1]:.2f}, {job.seconds:.0f} s")
    for key, r in sorted(rows.items()):
        change, ratio = asv_rows.get(key, ("-", float("nan")))
        print(f"  {key[0]:10s} {key[1]:32s} paired {r['ratio']:6.3f} p={r['p_slower']:.1e}   "
              f"asv {ratio:6.3f} {change}")
    # 3 kernels x 2 problems forward, and x cpu_causal under bwd and fwd+bwd
    assert len(rows) == 12 and not job.paired["not_measured"], job.summary
    return rows


def _flagged(job: Job, rows: dict) -> set:
    """The rows the paired judge calls slower, read back from ``paired.json``."""
    return {key for key, r in rows.items()
            if Paired.from_dict(r).slower(job.verdict["paired_factor"])}


@pytest.mark.timeout(600)  # the A/A: 2 asv benchmark runs, 12 paired rows, one core busy
def test_aa_under_load_flags_nothing(cpu_pr):
    job = cpu_pr.aa()
    rows = _rows(cpu_pr, job)
    assert job.proc.returncode == 0 and job.verdict["verdict"] == "ok", \
        job.summary + job.proc.stderr[-2000:]
    assert not _flagged(job, rows), job.summary


@pytest.mark.timeout(600)  # 2 asv benchmark runs, 12 paired rows, one core busy
def test_a_30_percent_slowdown_under_load_is_flagged(cpu_pr):
    cpu_pr.commit("slow", "tiled does 30 % more work", inject(SLOW_30))
    job = cpu_pr.run("A/B tiled +30 %", "readme", "slow", "cpu-load", "--rounds", "1")
    rows = _rows(cpu_pr, job)
    assert job.proc.returncode == 1 and job.verdict["verdict"] == "regression", \
        job.summary + job.proc.stderr[-2000:]
    flagged = _flagged(job, rows)
    # The forward does 30 % more work at both problems; the backward alone is untouched
    # (the forward runs once, outside the timed calls); fwd+bwd carries a share of it.
    forward = {key for key in rows if not key[1].endswith(("_bwd", "_fwdbwd"))}
    assert {k for k, _ in flagged} == {SLOWED}, job.summary
    assert {key for key in forward if key[0] == SLOWED} <= flagged, job.summary
    assert not any(p.endswith("_bwd") for _, p in flagged), job.summary


@pytest.mark.slow
@pytest.mark.timeout(600)  # the A/A: 2 asv benchmark runs, 12 paired rows, one core busy
def test_end_to_end_real_asv_on_a_clone(cpu_pr):
    """asv continuous base..head on a clone, the way the CPU job runs it (one asv round here;
    the workflow's two go through test_acceptance), then the paired re-measurement.  The two commits
    differ only in README: this is the suite's A/A run (identical kernel code flags nothing
    at test_asv_e2e's factor 2.5), the run judged under load below (one core busy):
    tiled, sdpa and sdpa_math at cpu_seed and cpu_causal (conftest's cpu_pr)."""
    job = cpu_pr.aa()
    out, verdict, summary = job.out, job.verdict, job.summary
    assert job.proc.returncode == 0, job.proc.stdout[-3000:] + job.proc.stderr[-3000:]
    assert verdict["verdict"] == "ok" and verdict["asv_exit"] == 0
    assert "BENCHMARKS NOT SIGNIFICANTLY CHANGED." in job.asv_log
    assert summary.startswith("### ✅ `ci-e2e`: no significant regression (factor ×2.5)")
    rows = [
        line
        for line in summary.splitlines()
        if line.startswith("| same | track_device_time |") and "b8_h4_sq64_d64_fp32" in line
    ]  # cpu_seed, by id
    assert {r.split(" | ")[2] for r in rows} == {"tiled", "sdpa", "sdpa_math"}, summary
    assert all(r.rstrip(" |").endswith("| ok") for r in rows), rows
    # On a CPU the time rows are judged by the paired re-measurement, and say so.
    assert all("paired p=" in r and "sign test" in r for r in rows), rows
    # A/A flags no accuracy metric either: the error figures repeat exactly on a CPU
    # (max and mean, 3 kernels x 2 forward problems).
    acc = [line for line in summary.splitlines() if "_abs_error |" in line]
    assert len(acc) == 12 and all(line.startswith("| same |") and "| 1.00× (×1.25) |" in line
                                  for line in acc), summary
    assert "| gpu | none |" in summary and "Measured ceilings: copy" in summary
    assert job.step_summary.startswith(summary)
    files = verdict["files"]
    assert "ci-e2e/attnperf-ceilings.json" in files and "benchmarks.json" in files
    assert sum(f.endswith("-virtualenv-py3.11.json") for f in files) == 2
    print(f"\nci_bench end to end: {out / 'summary.md'} ({job.seconds:.0f} s)")
