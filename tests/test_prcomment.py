"""attnperf.prcomment: the PR comment from hand-made asv result files of two commits."""

import math
import re
from pathlib import Path

import pytest

from attnperf.analysis import ab
from attnperf.io import asv_results as ar
from attnperf.render import prcomment as pc
from support import asvdata as d

BASE = "1" * 40
HEAD = "2" * 40
KERNELS = ["sdpa", "tiled", "naive", "sdpa_flash"]
PROBLEMS = ["seed", "train"]
P = d.grid_params(KERNELS, PROBLEMS)
WIDE = [1.0e-3, 1.5e-3, 2.0e-3]  # 3 samples: too few for Mann-Whitney, wide 99% CI


def _times(head: bool):
    def t(k, p):
        if k == "sdpa_flash":
            return math.nan  # n/a both sides
        if (k, p) == ("naive", "seed"):
            return None if head else d.samples(5e-5, seed=1)  # breaks at head
        if (k, p) == ("naive", "train"):
            return d.samples(9e-3, seed=2) if head else None  # fixed at head
        if (k, p) == ("tiled", "seed"):
            return [x * (1.3 if head else 1.0) for x in WIDE]  # 1.3x, not significant
        base = {"seed": 6e-6, "train": 4e-4}[p] * {"sdpa": 1.0, "tiled": 3.0}[k]
        factor = {("tiled", "train"): 2.0, ("sdpa", "train"): 0.5}.get((k, p), 1.0) if head else 1.0
        return d.samples(base * factor, seed=(7 if head else 3) + len(k))
    return t


def _history(tmp_path, info=d.H100_INFO, ceilings=d.H100_CEILINGS, xfloor_version_head="v2"):
    d.write_benchmarks(tmp_path, KERNELS, PROBLEMS)
    d.write_machine(tmp_path, info, ceilings)
    for commit, head, ms in ((BASE, False, 1000), (HEAD, True, 2000)):
        t = _times(head)
        xf = d.grid_values(KERNELS, PROBLEMS, lambda k, p, t=t: [x * 1e4 for x in t(k, p)]
                           if isinstance(t(k, p), list) else t(k, p))
        d.write_run(tmp_path, info, commit, ms, {
            d.TIME: d.row(P, d.grid_values(KERNELS, PROBLEMS, t)),
            d.XFLOOR: d.row(P, xf, version=xfloor_version_head if head else d.VERSION)})
    return ar.read_results(str(tmp_path))


def _rows(cmp, bench=d.TIME):
    return {(r.kernel, r.problem): r for r in cmp.rows if r.benchmark == bench}


def test_classification_mirrors_asv_compare(tmp_path):
    db = _history(tmp_path)
    m = db.machines["h100"]
    cmp = ab.compare(db, "h100", m.runs_for(BASE)[0], m.runs_for(HEAD)[0], 1.05)
    rows = _rows(cmp)
    assert rows[("tiled", "train")].change == ab.WORSE
    assert rows[("tiled", "train")].ratio == pytest.approx(2.0, rel=0.02)
    assert rows[("sdpa", "train")].change == ab.BETTER
    assert rows[("sdpa", "seed")].change == ab.SAME
    assert rows[("naive", "seed")].change == ab.BROKE
    assert rows[("naive", "train")].change == ab.FIXED
    assert rows[("sdpa_flash", "seed")].change == ab.NA
    insignificant = rows[("tiled", "seed")]
    assert insignificant.change == ab.SAME and insignificant.ratio == pytest.approx(1.3)
    assert insignificant.significance.different is False
    assert insignificant.significance.text == "99% CIs overlap"
    # x_over_floor's benchmark version changed at head: not comparable (asv's 'x'),
    # except where neither side has a value
    xf = _rows(cmp, d.XFLOOR)
    assert {r.change for k, r in xf.items() if k[0] != "sdpa_flash"} == {ab.INCOMPARABLE}
    assert {r.change for k, r in xf.items() if k[0] == "sdpa_flash"} == {ab.NA}
    assert not any(d.VIEWS.keys() & {r.benchmark for r in cmp.rows})


def test_significance_is_asvs_mann_whitney(tmp_path):
    from asv import _stats

    db = _history(tmp_path)
    m = db.machines["h100"]
    row = _rows(ab.compare(db, "h100", m.runs_for(BASE)[0], m.runs_for(HEAD)[0], 1.05))[
        ("tiled", "train")]
    expected = _stats.mann_whitney_u(list(row.before.samples), list(row.after.samples))[1]
    assert row.significance.p_value == pytest.approx(expected)
    assert row.significance.text == f"p={expected:.1e} (Mann–Whitney U, n=15/15)"
    assert expected < ab.P_THRESHOLD


def test_regression_comment(tmp_path):
    db = _history(tmp_path)
    text = pc.render_section(db, "h100", BASE, HEAD, 1.05, asv_exit=1)
    # a broken benchmark outranks the slower one in the headline (and the exit code)
    assert text.startswith("### 💥 `h100`: broken benchmark — 1 benchmark(s) failed; also 1 slower")
    lines = text.splitlines()
    assert "Base `11111111` → head `22222222` · factor ×1.05 · asv continuous exit 1" in text
    tiled = next(
        line for line in lines if line.startswith("| 🔴 worse | track_device_time | tiled ")
    )
    cells = [c.strip() for c in tiled.strip("|").split(" | ")]
    assert cells[3] == "train <sub>b4_h16_sq2048_d128_bf16</sub>"
    assert cells[4].startswith("1.2 ms ±") and cells[5].startswith("2.4 ms ±")
    assert cells[6] == "2.00×" and cells[7].startswith("p=") and "Mann–Whitney U" in cells[7]
    # train on an H100: compute-bound against the recorded 770 TFLOP/s bf16 roof
    assert cells[8] == "compute-bound"
    # efficiency = 100 / x_over_floor (here x_over_floor = 1e4 x time: 12 -> 24)
    assert re.fullmatch(r"8\.3\d% → 4\.1\d%", cells[9]) and cells[10] == "ok"
    broke = next(line for line in lines if "💥 broke" in line)
    assert "| naive |" in broke and "**ok → FAILED**" in broke
    assert any("✅ fixed" in line and "FAILED → ok" in line for line in lines)
    assert any("🟢 better" in line and "| sdpa |" in line for line in lines)
    # order: failures first, then regressions, then the rest
    assert lines.index(broke) < lines.index(tiled)
    assert "<summary>Unchanged or n/a:" in text and "| ~1.30× |" in text
    assert "4 benchmark combinations are n/a on both sides" in text
    assert "Failed at head" in text and "`naive/seed`" in text
    assert "| gpu | NVIDIA H100 80GB HBM3 |" in text and "| driver | 580.95.05 |" in text
    assert "Measured ceilings: copy 3000 GB/s" in text
    assert "What is missing" not in text


def test_verdicts_and_exit_codes(tmp_path):
    db = _history(tmp_path)
    m = db.machines["h100"]
    cmp = ab.compare(db, "h100", m.runs_for(BASE)[0], m.runs_for(HEAD)[0], 1.05)
    # asv's exit 0 cannot outvote the broken row the results show, and a broken
    # benchmark outranks a slower one: wrong results are never the regression code
    assert ab.decide(0, cmp)[0] == ab.EXIT_BROKEN
    assert ab.decide(1, cmp)[0] == ab.EXIT_BROKEN
    assert ab.decide(2, cmp)[0] == ab.EXIT_BROKEN
    # asv exited 1 without its comparison: a crash, whatever the rows show
    assert ab.decide(1, cmp, asv_finished=False)[0] == ab.EXIT_INFRA
    assert ab.decide(0, cmp, asv_finished=False)[0] == ab.EXIT_BROKEN
    assert ab.decide(137, cmp)[0] == ab.EXIT_INFRA
    empty = ab.compare(db, "h100", m.runs_for(BASE)[0], m.runs_for(BASE)[0], 1.05)
    assert ab.decide(1, empty)[0] == ab.EXIT_INFRA  # asv's own error, not a regression
    assert ab.decide(0, ab.compare(db, "h100", None, m.latest(), 1.05))[0] == ab.EXIT_INFRA
    text = pc.render_section(db, "h100", BASE, HEAD, 1.05, asv_exit=2)
    assert text.startswith("### 💥 `h100`: broken benchmark — 1 benchmark(s) failed; also 1 slower")
    text = pc.render_section(db, "h100", BASE, HEAD, 1.05, asv_exit=0)
    assert text.startswith("### 💥 `h100`: broken benchmark")
    same = pc.render_section(db, "h100", BASE, BASE, 1.05, asv_exit=0)
    assert same.startswith("### ✅ `h100`: no significant regression")


def test_missing_commit_machine_and_bad_files(tmp_path):
    db = _history(tmp_path)
    (tmp_path / "h100" / "33333333-virtualenv-py3.11.json").write_text('{"version": 99}')
    db = ar.read_results(str(tmp_path))
    text = pc.render_section(db, "h100", BASE, "4" * 40, 1.05, asv_exit=1)
    assert text.startswith("### ⚠️ `h100`: no results for the head commit")
    assert "no results for the head commit 44444444 on 'h100'" in text
    assert "format version 99" in text  # the malformed file is reported, not fatal
    text = pc.render_section(db, "a100", BASE, HEAD, 1.05)
    assert "no results for machine 'a100'" in text and "machines there: h100" in text
    assert "No machine description recorded" in text


def test_machine_without_gpu_fields_or_ceilings(tmp_path):
    info = {k: v for k, v in d.CPU_INFO.items() if k in ("machine", "arch", "cpu", "os")}
    db = _history(tmp_path, info=info, ceilings=None)
    text = pc.render_section(db, "cpu-ci", BASE, HEAD, 1.05, asv_exit=1)
    assert "_No GPU fields recorded for this machine" in text
    assert "No measured ceilings recorded" in text
    tiled = next(
        line for line in text.splitlines() if "🔴 worse | track_device_time | tiled" in line
    )
    assert "| unknown |" in tiled  # no ceilings, no recorded views: regime unknown, said so


def test_recorded_views_win_for_regime(tmp_path):
    _history(tmp_path)
    regime = d.row(P, d.grid_values(KERNELS, PROBLEMS, lambda k, p: 1.0))  # memory-bound
    path = next((tmp_path / "h100").glob("22222222-*.json"))
    import json
    doc = json.loads(path.read_text())
    doc["results"]["bench_attention.RooflineViews.track_regime_code"] = regime
    path.write_text(json.dumps(doc))
    text = pc.render_section(ar.read_results(str(tmp_path)), "h100", BASE, HEAD, 1.05, asv_exit=1)
    tiled = next(
        line for line in text.splitlines() if "🔴 worse | track_device_time | tiled" in line
    )
    assert "| memory-bound |" in tiled


def test_size_limit_keeps_the_changed_rows(tmp_path, monkeypatch):
    db = _history(tmp_path)
    full = pc.render_section(db, "h100", BASE, HEAD, 1.05, asv_exit=1)
    monkeypatch.setattr(pc, "MAX_CHARS", len(full) - 100)
    text = pc.render_section(db, "h100", BASE, HEAD, 1.05, asv_exit=1)
    assert len(text) <= len(full) - 100
    assert "unchanged rows left out (comment size limit)" in text
    assert "🔴 worse" in text


def test_cli_pr_comment(tmp_path, cli):
    _history(tmp_path)
    out = tmp_path / "comment.md"
    r = cli("pr-comment", "--results", str(tmp_path), "--machine", "h100", "--base", BASE,
            "--head", HEAD, "--asv-exit", "1", "--output", str(out))
    assert r.code == 0 and out.read_text().startswith("### 💥 `h100`: broken benchmark")
    r = cli("pr-comment", "--results", str(tmp_path), "--machine", "h100", "--base", "main",
            "--head", HEAD)
    assert r.code == 2 and "--base must be a commit hash" in r.err


def test_comment_from_the_committed_history_names_every_problem():
    """Regression: rows read "(unknown preset)" once the suite keyed problems by id."""
    db = ar.read_results(str(Path(__file__).resolve().parents[1] / "results"))
    for machine, m in db.machines.items():
        assert len(m.runs) >= 2, machine
        text = pc.render_section(db, machine, m.runs[0].commit, m.runs[-1].commit, 1.05)
        rows = [
            line
            for line in text.splitlines()
            if line.startswith("| ")
            and "benchmark |" not in line
            and not line.startswith("| field")
        ]
        assert rows, text
        assert "unknown preset" not in text and "not a problem id" not in text
        for line in rows:
            if line.count("|") < 5:
                continue
            problem = line.split("|")[4].strip()
            # a preset's name over its id, or a training pass's id over its shape
            assert re.match(r"^\w+ <sub>(b\d+_h\d+|B\d+ H\d+)", problem), line


def test_pr_comment_judges_at_the_default_of_the_device_its_results_record(cli, tmp_path):
    """`attnperf pr-comment` without --factor: the default of the device the machine's
    description in --results records (no GPU: the CPU's x1.5; a GPU: x1.05), as ci bench
    judges there without [tool.attnperf]; 2x slower flags on both, 1.3x on the GPU only."""
    params = [["'tiled'", "'sdpa'"], ["'seed'"]]
    for info, factor, slower in ((d.CPU_INFO, "1.5", ["tiled"]),
                                 (d.H100_INFO, "1.05", ["sdpa", "tiled"])):
        results = tmp_path / info["machine"]
        d.write_benchmarks(results, ["tiled", "sdpa"], ["seed"])
        d.write_machine(results, info)
        for commit, head, ms in ((BASE, False, 1000), (HEAD, True, 2000)):
            d.write_run(results, info, commit, ms, {d.TIME: d.row(params, [
                d.samples(1e-3 * (2.0 if head else 1.0), seed=3),
                d.samples(1e-3 * (1.3 if head else 1.0), seed=4)])})
        res = cli("pr-comment", "--results", results, "--machine", info["machine"],
                  "--base", BASE[:8], "--head", HEAD[:8])
        assert res.code == 0, res.err
        assert f"· factor ×{factor} ·" in res.out, res.out
        worse = [line.split(" | ")[2] for line in res.out.splitlines()
                 if line.startswith("| 🔴 worse | track_device_time |")]
        assert sorted(worse) == slower, res.out
        explicit = cli("pr-comment", "--results", results, "--machine", info["machine"],
                       "--base", BASE[:8], "--head", HEAD[:8], "--factor", "3")
        assert "· factor ×3 ·" in explicit.out and "🔴 worse" not in explicit.out
