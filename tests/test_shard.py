"""Shards of the suite (attnperf.model.shard), the suite measuring one shard
(attnperf.asv.suite, ATTNPERF_ASV_SHARD), and the shards' asv result files merged into one
(attnperf.io.asv_merge)."""

import itertools
import json
import math
import os
import subprocess
import sys
from collections import Counter

import pytest

from attnperf.analysis import ab
from attnperf.asv import suite
from attnperf.errors import UsageError
from attnperf.io import asv_merge
from attnperf.io.asv_results import read_run
from attnperf.io.folders import OwnedDir
from attnperf.model import shard as sh
from attnperf.model.catalog import PRESETS, pass_id, resolve
from attnperf.model.shard import Shard
from support import asvdata as d
from support.fakesession import fake_session


def default_combinations(kernels=suite.GRID_KERNELS):
    """(kernel, problem id) of every combination of attnperf's default suite: the forward
    grid and the training passes (the cache keys the suite measures)."""
    fwd = [(k, p) for k in kernels for p in suite.GRID_PROBLEMS]
    passes = [(k, pass_id(p, m)) for k in kernels for p in suite.GRID_PASS_PROBLEMS
              for m in suite.GRID_PASSES]
    return fwd + passes


# ------------------------------------------------------------ assignment ----
def test_every_combination_is_in_exactly_one_shard():
    combos = default_combinations()
    assert len(combos) == len(set(combos)) == 160
    for n in range(1, 9):
        owners = [[s for s in range(1, n + 1) if Shard(s, n).owns(k, p)] for k, p in combos]
        assert all(len(o) == 1 for o in owners), n
        assert {o[0] for o in owners} == set(range(1, n + 1))  # no shard left empty here
        assert [o[0] for o in owners] == [sh.shard_of(k, p, n) for k, p in combos]


def test_shards_are_balanced_in_count():
    """A hash balances counts, not perfectly: no shard of the default suite holds more than
    1.5 times or less than half the mean, for 2 to 8 shards."""
    combos = default_combinations()
    for n in range(2, 9):
        counts = Counter(sh.shard_of(k, p, n) for k, p in combos)
        mean = len(combos) / n
        assert 0.5 * mean <= min(counts.values()) and max(counts.values()) <= 1.5 * mean, \
            (n, counts)


def test_adding_a_kernel_or_a_problem_moves_only_its_own_combinations():
    before = {c: sh.shard_of(*c, 4) for c in default_combinations()}
    grown = default_combinations([*suite.GRID_KERNELS, "flash_v9"])
    grown += [(k, "b1_h1_sq8_d8_fp32") for k in suite.GRID_KERNELS]
    after = {c: sh.shard_of(*c, 4) for c in grown}
    assert {c: after[c] for c in before} == before
    assert {c for c in after if c not in before} == {c for c in grown if c[0] == "flash_v9"
                                                    or c[1] == "b1_h1_sq8_d8_fp32"}


def test_the_assignment_is_the_same_in_every_process():
    """Both commits of a pair are measured in one shard only if every process (and every
    commit's attnperf) hashes alike: SHA-256 of the combination's id, never Python's salted
    hash.  The values are pinned: changing the hash would split a pair across shards."""
    code = ("from attnperf.model.shard import shard_of; "
            "print([shard_of(k, p, 4) for k, p in "
            "[('tiled', 'b8_h4_sq64_d64_fp32'), ('sdpa', 'b8_h4_sq64_d64_fp32'), "
            "('naive', 'b4_h16_sq2048_d128_bf16_fwdbwd')]])")
    seen = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}, check=True).stdout
            for seed in ("0", "1", "12345")}
    assert len(seen) == 1
    assert json.loads(seen.pop()) == [sh.shard_of("tiled", "b8_h4_sq64_d64_fp32", 4),
                                      sh.shard_of("sdpa", "b8_h4_sq64_d64_fp32", 4),
                                      sh.shard_of("naive", "b4_h16_sq2048_d128_bf16_fwdbwd", 4)]
    assert (sh.shard_of("tiled", "b8_h4_sq64_d64_fp32", 2),
            sh.shard_of("sdpa", "b8_h4_sq64_d64_fp32", 2)) == (2, 1)


def test_asv_params_name_the_suites_combination():
    """A TrainingPass row (kernel, problem, pass) is the pass's combination, the one the
    suite keys and measures; the verdict's rows name it alike."""
    train = PRESETS["train"].id
    assert sh.params_problem_id(("tiled", train, "bwd")) == resolve(train).with_pass("bwd").id
    row = ab.Row("bench_attention.TrainingPass.track_device_time", ("tiled", train, "bwd"),
                 None, None, None, ab.SAME, ab.Significance(None, ""), None)
    assert sh.params_problem_id(row.params) == row.problem
    assert sh.params_problem_id(("tiled", "(none)", "(none)")) == "(none) (none)"
    for n in (2, 3):
        assert sh.owner(("tiled", train, "bwd"), n) == sh.shard_of("tiled", row.problem, n)
        assert Shard(sh.owner(("tiled", train), n), n).owns_params(("tiled", train))
    assert sh.owner((), 3) == 1 and Shard(2, 3).owns_params(())


@pytest.mark.parametrize("text", ["0/2", "3/2", "1/0", "1/65", "a/b", "-1/2", "1/-2", "1",
                                  "1/2/3", "1 /2", "", "½/2"])
def test_a_bad_shard_is_named_with_what_is_allowed(text):
    with pytest.raises(UsageError) as err:
        Shard.parse(text)
    assert f"--shard {text!r}: give K/N" in str(err.value)
    assert "1 <= K <= N <= 64" in str(err.value)


def test_shard_text_round_trips():
    for n in (1, 2, 64):
        for k in (1, n):
            assert Shard.parse(str(Shard(k, n))) == Shard(k, n)
    assert Shard.parse(" 2/3 ") == Shard(2, 3)
    with pytest.raises(UsageError):
        Shard(3, 2)


# ----------------------------------------------------------------- suite ----
def _fake_session(monkeypatch, asked):
    FakeSession = fake_session("cpu", lambda k, p, budget, latency: asked.append((k, p.id)))
    monkeypatch.setattr(suite, "Session", FakeSession)
    for name in ("ATTNPERF_ASV_KERNELS", "ATTNPERF_ASV_PROBLEMS", "ATTNPERF_ASV_PASSES",
                 sh.ENV):
        monkeypatch.delenv(name, raising=False)


def test_the_suite_measures_only_its_shards_combinations(monkeypatch):
    asked = []
    _fake_session(monkeypatch, asked)
    kernels = ["sdpa", "tiled", "naive"]
    whole = suite.measure_grid(kernels, device_name="cpu")
    everything = list(asked)
    assert "shard" not in whole["__meta__"]
    parts = []
    for k in (1, 2, 3):
        asked.clear()
        monkeypatch.setenv(sh.ENV, f"{k}/3")
        cache = suite.measure_grid(kernels, device_name="cpu")
        assert cache["__meta__"]["shard"] == f"{k}/3"
        assert asked and all(Shard(k, 3).owns(*c) for c in asked)
        parts.append(list(asked))
        # the other shards' combinations read n/a, saying who measures them
        theirs = next(c for c in everything if not Shard(k, 3).owns(*c))
        with pytest.raises(suite.Skip, match=f"another shard than {k}/3 measures it"):
            suite.entry_for(cache, *theirs)
    assert sorted(itertools.chain(*parts)) == sorted(everything)  # each once, none lost
    monkeypatch.setenv(sh.ENV, "")  # empty: the whole selection
    asked.clear()
    suite.measure_grid(kernels, device_name="cpu")
    assert asked == everything


def test_an_unknown_kernel_fails_only_in_its_shard(monkeypatch):
    asked = []
    _fake_session(monkeypatch, asked)
    pid = PRESETS["cpu_seed"].id
    owner = sh.shard_of("nope", pid, 2)
    for k in (1, 2):
        monkeypatch.setenv(sh.ENV, f"{k}/2")
        cache = suite.measure_grid(["nope"], problems=[pid], device_name="cpu")
        assert (suite.key("nope", pid) in cache) == (k == owner)


def test_a_bad_shard_variable_is_a_selection_error(monkeypatch):
    asked = []
    _fake_session(monkeypatch, asked)
    monkeypatch.setenv(sh.ENV, "2/1")
    with pytest.raises(suite.SelectionError, match=r"ATTNPERF_ASV_SHARD '2/1': give K/N"):
        suite.measure_grid(["sdpa"], device_name="cpu")
    assert asked == []


# ------------------------------------------------------ merging results ----
KERNELS = ["sdpa", "tiled", "naive"]
PROBLEMS = [PRESETS["cpu_seed"].id, PRESETS["cpu_causal"].id]
PASS_PARAMS = [[repr(k) for k in KERNELS], [repr(PRESETS["cpu_causal"].id)],
               [repr("bwd"), repr("fwd+bwd")]]


def _value(k, p, mode=""):
    if k == "naive" and p == PROBLEMS[1]:
        return None  # failed (a wrong result)
    if k == "sdpa" and mode == "fwd+bwd":
        return math.nan  # n/a
    return d.samples(1e-3 * (1 + len(k) + len(p) + len(mode)), seed=len(k))


def _rows(keep):
    """A TimeAttention and a TrainingPass row; combinations ``keep`` refuses are n/a."""
    time = [(_value(k, p) if keep(k, p) else math.nan)
            for k, p in itertools.product(KERNELS, PROBLEMS)]
    passes = [(_value(k, p, m) if keep(k, pass_id(p, m)) else math.nan)
              for k, p, m in itertools.product(KERNELS, PROBLEMS[1:], ["bwd", "fwd+bwd"])]
    return {d.TIME: d.row(d.grid_params(KERNELS, PROBLEMS), time),
            "bench_attention.TrainingPass.track_device_time": d.row(PASS_PARAMS, passes)}


def _write(folder, keep, commit="ab" * 20):
    d.write_machine(folder, d.CPU_INFO, d.CPU_CEILINGS)
    d.write_benchmarks(folder, KERNELS, PROBLEMS)
    return d.write_run(folder, d.CPU_INFO, commit, 1795000000000, _rows(keep))


def test_merged_results_equal_one_jobs(tmp_path):
    """Each shard's file holds its combinations and n/a for the rest; the merged file holds,
    per combination, what one job over the whole suite recorded: measured, failed, n/a."""
    whole = _write(tmp_path / "whole", lambda k, p: True)
    roots = []
    for k in (1, 2, 3):
        roots.append(tmp_path / f"shard-{k}")
        _write(roots[-1], lambda kern, p, k=k: Shard(k, 3).owns(kern, p))
    out = OwnedDir(tmp_path / "out", ".marker").open()
    written, notes = asv_merge.merge_results(roots, out, owner=lambda c: sh.owner(c, 3))
    assert notes == []
    assert sorted(written) == sorted(["benchmarks.json", "cpu-ci/machine.json",
                                      "cpu-ci/attnperf-ceilings.json", whole.relative_to(
                                          tmp_path / "whole").as_posix()])
    merged = tmp_path / "out" / "results" / "cpu-ci" / whole.name
    a, b = read_run(whole, "cpu-ci", []), read_run(merged, "cpu-ci", [])
    assert a.benchmarks.keys() == b.benchmarks.keys()
    for name in a.benchmarks:
        assert a.benchmarks[name].points == b.benchmarks[name].points, name
    statuses = Counter(p.status for b_ in b.benchmarks.values() for p in b_.points.values())
    assert statuses == {"ok": 8, "failed": 3, "skipped": 1}  # none lost to a shard's n/a
    assert "NaN" in merged.read_text()  # asv's own literal for n/a


def test_between_two_measurements_the_owner_wins_and_a_value_beats_a_failure():
    """A base commit from before sharding measures every combination in every shard: the
    owner's point is taken.  A shard whose whole benchmark failed (null) loses to the shard
    that measured a combination."""
    cols = d.COLUMNS
    params = [["'tiled'", "'sdpa'"], ["'p'"]]

    def doc(result):
        return d.result_doc("ab" * 20, d.CPU_INFO, 1, {d.TIME: [result, params, "v"]})

    one, two = doc([1.0, 2.0]), doc([10.0, 20.0])
    merged = asv_merge.merge_docs([one, two], owner=lambda c: 1 if c[0] == "tiled" else 2)
    assert merged["results"][d.TIME][0] == [1.0, 20.0]
    merged = asv_merge.merge_docs([one, two])  # no owner known: the first shard's
    assert merged["results"][d.TIME][0] == [1.0, 2.0]
    crashed = doc(None)  # asv: every combination failed
    merged = asv_merge.merge_docs([crashed, doc([math.nan, 2.0])])
    assert merged["results"][d.TIME][0] == [None, 2.0]
    assert merged["result_columns"] == cols


def test_a_commit_some_shard_lacks_is_left_out_with_a_note(tmp_path):
    roots = [tmp_path / "a", tmp_path / "b"]
    _write(roots[0], lambda k, p: True)
    _write(roots[0], lambda k, p: True, commit="cd" * 20)
    _write(roots[1], lambda k, p: True)
    out = OwnedDir(tmp_path / "out", ".marker").open()
    written, notes = asv_merge.merge_results(roots, out)
    assert not any(w.startswith("cpu-ci/cdcdcdcd") for w in written)
    assert any(w.startswith("cpu-ci/abababab") for w in written)
    assert len(notes) == 1 and "not in shard folder(s) 2 of 2" in notes[0]
    bad = json.loads((roots[1] / "cpu-ci" / "abababab-virtualenv-py3.11.json").read_text())
    bad["env_name"] = "other"
    (roots[1] / "cpu-ci" / "abababab-virtualenv-py3.11.json").write_text(json.dumps(bad))
    written, notes = asv_merge.merge_results(roots, out)
    assert not any(w.startswith("cpu-ci/abababab") for w in written)
    assert any("differ in env_name" in n for n in notes)
