"""Verdicts: one function (attnperf.analysis.ab.decide) gives the PR job's exit code and its
summary's headline, so they cannot disagree; a kernel's output dtype, shape and device are
part of correctness."""

from __future__ import annotations

import itertools
import json

import pytest
import torch

from attnperf.analysis import ab
from attnperf.io.asv_results import OK, Point
from attnperf.measure.correctness import reference, verify, verify_grads
from attnperf.model.problem import Problem
from attnperf.render import prcomment as pc
from support import asvdata as d

TIME = d.TIME
ICONS = {ab.EXIT_OK: "✅", ab.EXIT_REGRESSION: "🔴", ab.EXIT_BROKEN: "💥", ab.EXIT_INFRA: "⚠️"}


def _cmp(per_benchmark=False, **counts):
    rows = [ab.Row(TIME, ("k", f"p{i}"), Point(OK, 1.0), Point(OK, 1.0), 1.0, change,
                   ab.Significance(None, ""), "seconds", 1.05)
            for change, n in counts.items() for i in range(n)]
    return ab.Comparison("m", object(), object(), 1.05, rows, per_benchmark)


@pytest.mark.parametrize("asv_exit,counts", list(itertools.product(
    [None, 0, 1, 2, 3, 124], [{}, {ab.WORSE: 2}, {ab.BROKE: 1}, {ab.BETTER: 1},
                              {ab.WORSE: 1, ab.BROKE: 1}, {ab.SAME: 3}])))
def test_headline_and_exit_code_come_from_one_verdict(asv_exit, counts):
    cmp = _cmp(**counts)
    code, _ = ab.decide(asv_exit, cmp)
    assert pc._headline(cmp, asv_exit).startswith(ICONS[code])
    if cmp.count(ab.WORSE) or cmp.count(ab.BROKE):
        assert code != ab.EXIT_OK  # a slower or broken row is never "no regression"


def test_no_results_names_what_lacks():
    """Without results for both commits: a harness failure whose reason says whether asv ran
    (its log) or the results were read from disk (the summary's notes)."""
    assert ab.decide(None, None) == (ab.EXIT_INFRA, "no readable results for both commits in "
                                     "the results folder (asv not run); see the notes in the "
                                     "summary")
    code, why = ab.decide(1, None)
    assert code == ab.EXIT_INFRA and why.startswith("asv wrote no results for both commits")


def test_render_only_with_asv_exit_0_over_slower_rows(cli, tmp_path, monkeypatch):
    """`ci bench --render-only --asv-exit 0` over rows 2x slower: regression, exit 1, and the
    summary says so above those rows."""
    root = tmp_path / "repo"
    base, head = d.git_repo(root, 2)
    conf = d.asv_conf(root)
    results = root / "results"
    d.write_benchmarks(results, ["tiled"], ["seed"])
    d.write_machine(results, d.H100_INFO, d.H100_CEILINGS)
    for commit, scale, ms in ((base, 1.0, 1000), (head, 4.1, 2000)):
        d.write_run(results, d.H100_INFO, commit, ms,
                    {TIME: d.row([["'tiled'"], ["'seed'"]], [d.samples(1e-3 * scale, seed=3)])})
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    out = tmp_path / "out"
    res = cli("ci", "bench", "--config", str(conf), "--base", base, "--head", head, "--machine",
              "h100", "--render-only", "--asv-exit", "0", "--out", str(out))
    assert res.code == ab.EXIT_REGRESSION, res.err
    verdict = json.loads((out / "verdict.json").read_text())
    assert verdict["verdict"] == "regression" and verdict["exit_code"] == 1
    summary = (out / "summary.md").read_text()
    assert summary.startswith("### 🔴 `h100`: regression") and "4.10×" in summary
    assert "no significant regression" not in summary


# ------------------------------------------------------------ correctness -----
P32 = Problem(batch=1, heads=2, seq_q=8, head_dim=4, dtype="float32")


def _qkv(problem):
    g = torch.Generator().manual_seed(0)
    return [torch.randn(problem.batch, problem.heads, problem.seq_q, problem.head_dim,
                        generator=g, dtype=torch.float32) for _ in range(3)]


def test_a_float64_result_for_a_float32_problem_is_not_ok():
    q, k, v = _qkv(P32)
    ref = reference(q, k, v, P32)
    assert verify(ref.float(), ref, P32).passed  # the same numbers, right dtype: ok
    with pytest.raises(TypeError, match="dtype float64, expected float32"):
        verify(ref.clone(), ref, P32)  # exact, but float64
    with pytest.raises(ValueError, match="on meta, expected cpu"):
        verify(torch.empty(ref.shape, dtype=torch.float32, device="meta"), ref, P32)
    with pytest.raises(ValueError, match="shape"):
        verify(ref.float()[..., :2], ref, P32)
    grads = [ref.clone() for _ in range(3)]
    with pytest.raises(TypeError, match="dq has dtype float64"):
        verify_grads(grads, [ref] * 3, P32)


def _float64_attention(q, k, v, problem):
    return torch.softmax(q.double() @ k.double().transpose(-2, -1) / problem.head_dim ** 0.5,
                         dim=-1) @ v.double()


def test_run_records_a_float64_kernel_as_an_error(cli, tmp_path, tiny_run_args, temp_kernel):
    temp_kernel("test_returns_float64", _float64_attention)
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", "test_returns_float64", "-o", out)
    assert res.code == 1
    (entry,) = json.loads(out.read_text())["results"]
    assert entry["status"] == "error" and "dtype float64, expected float32" in entry["reason"]
