"""Trustworthy ceilings: best of several rounds, a damaged cache
is measured again with a warning, a kernel that beats the roofs makes the session
measure them again once, and a row that still beats them is flagged."""

from __future__ import annotations

import json
import logging

import pytest

from attnperf.io import ceilings as ceilings_file
from attnperf.measure import ceilings as ceilings_mod
from attnperf.measure import session as session_mod
from attnperf.measure.device import fingerprint, machine_key
from attnperf.measure.timing import QUICK
from attnperf.model import roofline
from attnperf.model.problem import Problem
from attnperf.model.records import Samples

DTYPES = ("float16", "bfloat16", "float32")


class RoundTimer:
    """Injected timer: the samples of call ``i`` are ``seconds[i]`` (no kernel is run).

    Calls come in round order: copy_, mul, then matmul float16, bfloat16, float32.
    """

    def __init__(self, seconds):
        self.seconds, self.calls = list(seconds), 0

    def __call__(self, fn, budget):
        s = self.seconds[self.calls]
        self.calls += 1
        return Samples(
            samples_s=[s, s * 1.5, s * 2], method="fake", calls_per_sample=1, warmup_calls=0
        )


def test_each_figure_is_the_best_of_several_rounds():
    # Round 1 under load (10x slow), round 2 quiet, round 3 half loaded; the copy's
    # best is mul in round 2 (0.9 ms), each matmul's its round-2 time.
    quiet = [1e-3, 0.9e-3, 2e-3, 3e-3, 4e-3]
    timer = RoundTimer([10 * x for x in quiet] + quiet + [2 * x for x in quiet])
    got = ceilings_mod.measure_ceilings("cpu", quick=True, rounds=3, timer=timer)
    assert timer.calls == 15 and got["rounds"] == 3
    copy_bytes = got["copy_bytes"]  # quick: 256 MiB / 8
    assert copy_bytes == 32 << 20
    assert got["bandwidth_gb_s"] == pytest.approx(2 * copy_bytes / 0.9e-3 / 1e9)
    for name, t in zip(DTYPES, quiet[2:], strict=False):
        n = got["matmul_n"][name]
        assert got["matmul_tflops"][name] == pytest.approx(2 * n ** 3 / t / 1e12)
    assert ceilings_file.problem_with(got) is None


def test_one_round_under_load_is_what_a_single_round_would_have_kept():
    # A single round: whatever load it met is the roof (here 10x too low).
    timer = RoundTimer([1e-2] * 5)
    one = ceilings_mod.measure_ceilings("cpu", quick=True, rounds=1, timer=timer)
    assert timer.calls == 5 and one["rounds"] == 1
    with pytest.raises(ValueError, match="rounds must be at least 1"):
        ceilings_mod.measure_ceilings("cpu", quick=True, rounds=0, timer=timer)


# ------------------------------------------------------ a damaged cache -----
GOOD = {"schema_version": ceilings_file.SCHEMA_VERSION, "device": "cpu", "bandwidth_gb_s": 40.0,
        "matmul_tflops": {"float16": 0.002, "bfloat16": 0.1, "float32": 0.2}}


@pytest.mark.parametrize(
    "content,why",
    [
        ("[]", "holds a JSON list"),
        ("{not json", "not valid JSON"),
        (json.dumps(dict(GOOD, schema_version=99)), "schema_version 99"),
        (json.dumps(dict(GOOD, schema_version=1)), "format version 1"),
        (
            json.dumps(dict(GOOD, matmul_tflops={"float32": 0.2})),
            "no matmul rate for float16, bfloat16",
        ),
        (json.dumps(dict(GOOD, bandwidth_gb_s=1e30)), "bandwidth_gb_s"),
        (json.dumps(dict(GOOD, matmul_tflops=dict(GOOD["matmul_tflops"], float16=-1))), "float16"),
    ],
    ids=[
        "list",
        "not-json",
        "future-version",
        "old-version",
        "missing-dtype",
        "absurd-bandwidth",
        "negative-rate",
    ],
)
def test_damaged_cache_is_measured_again_with_a_warning(
    monkeypatch, tmp_path, caplog, content, why
):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    env = fingerprint("cpu")
    path = ceilings_file.cache_path("cpu", machine_key(env))
    path.parent.mkdir(parents=True)
    path.write_text(content)
    calls = []
    monkeypatch.setattr(ceilings_mod, "measure_ceilings",
                        lambda device, quick=False: calls.append(device) or dict(GOOD))
    with caplog.at_level(logging.WARNING, logger="attnperf.measure.ceilings"):
        data = ceilings_mod.load_or_measure_ceilings("cpu", env)
    assert calls == ["cpu"] and data["cached"] is False
    warning = " ".join(r.getMessage() for r in caplog.records)
    assert (
        "cached ceilings unusable" in warning
        and why in warning
        and "measuring them again" in warning
    )
    # Never a dropped roofline: every dtype has its roof again, and the cache is repaired.
    for dt in DTYPES:
        assert roofline.ceiling_for(Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype=dt),
                                    data, None) is not None
    assert ceilings_mod.load_or_measure_ceilings("cpu", env)["cached"] is True and calls == ["cpu"]


# ------------------------------------------- a kernel that beats the roofs --
# 1e-6 TF/s (1 MFLOP/s): the tiny problem's 16 kFLOP need 16 ms at that rate; sdpa
# takes microseconds, i.e. thousands of % "efficiency" -- a ceiling measured wrong.
LOW = dict(GOOD, matmul_tflops={"float16": 1e-6, "bfloat16": 1e-6, "float32": 1e-6})


def _session(monkeypatch, second):
    """A CPU session whose first ceilings are LOW and whose re-measurement gives ``second``."""
    calls = []

    def fake(device, env, refresh=False, quick=False):
        calls.append(refresh)
        return dict(second if refresh else LOW, cached=not refresh)
    monkeypatch.setattr(session_mod, "load_or_measure_ceilings", fake)
    return session_mod.Session("cpu"), calls


def test_beaten_ceilings_are_measured_again_once(monkeypatch, tiny_problem, caplog):
    session, calls = _session(monkeypatch, GOOD)
    with caplog.at_level(logging.WARNING, logger="attnperf.measure.session"):
        rows = session.measure_grid([("sdpa", tiny_problem), ("naive", tiny_problem)], budget=QUICK)
    assert calls == [False, True]  # loaded once, measured again once
    assert session.ceilings_remeasured and session.ceilings["matmul_tflops"]["float32"] == 0.2
    assert "sdpa/b1_h2_sq16_d8_fp32 ran at" in caplog.text and "measuring them again" in caplog.text
    for m in rows:  # both rows on the new roofs, believable
        assert m.status == "ok" and m.roofline.ceiling_tflops == 0.2
        assert not m.roofline.ceiling_beaten and m.roofline.efficiency_pct < 100


def test_still_beaten_after_measuring_again_is_flagged(monkeypatch, tiny_problem):
    session, calls = _session(monkeypatch, LOW)
    m = session.measure("sdpa", tiny_problem, budget=QUICK)
    m2 = session.measure("naive", tiny_problem, budget=QUICK)
    assert calls == [False, True]  # never more than once per session
    for row in (m, m2):
        assert row.roofline.ceiling_beaten and row.roofline.efficiency_pct > 100
        assert "even after the ceilings were measured again" in row.roofline.ceiling_note
