"""attnperf.compare: the contract of the legacy compare_baseline.py, with hand numbers."""

import pytest

from attnperf.analysis.compare import DEFAULT_THRESHOLD, compare_results, verdict
from attnperf.errors import ReportError
from attnperf.io.report import read_results
from attnperf.render.compare import render

SEED_ID = "b8_h4_sq64_d64_fp16"


def one(make, base_ms, cur_ms, threshold=DEFAULT_THRESHOLD):
    """Compare one config whose mean went ``base_ms`` -> ``cur_ms``."""
    return compare_results([make("sdpa", SEED_ID, mean_ms=base_ms)],
                           [make("sdpa", SEED_ID, mean_ms=cur_ms)], threshold)


# ------------------------------------------------ a legacy report's numbers ----
def test_seed_validation_numbers(json_file, seed_report):
    # A recorded legacy GPU validation: 0.0524 ms -> 0.05174 ms
    #   speedup     = 0.0524 / 0.05174                 = 1.01276 -> 1.0128
    #   improvement = (0.0524 - 0.05174) / 0.0524 * 100 = 1.2595 -> +1.26 %
    base = read_results(str(json_file("base.json", seed_report(0.0524))))
    cur = read_results(str(json_file("cur.json", seed_report(0.05174))))
    r = compare_results(base, cur, -3.0)
    assert round(r["speedup"], 4) == 1.0128
    assert round(r["improvement_pct"], 2) == 1.26
    assert r["is_regression"] is False
    assert (r["baseline_time_ms"], r["current_time_ms"], r["threshold"]) == (0.0524, 0.05174, -3.0)
    assert r["comparisons"][0]["statistic"] == "mean_time_ms"
    assert r["worst_id"] == f"sdpa/{SEED_ID}"
    # +1.26 % is inside the +-3 % band: not an improvement (the legacy tool said SLIGHT
    # IMPROVEMENT).
    assert verdict(r["improvement_pct"], r["is_regression"], -3.0) == "NO SIGNIFICANT CHANGE"


def test_seed_metrics_key_against_an_attnperf_report(json_file, seed_report, result_entry,
                                                     v1_report):
    # Older legacy files hold `metrics`; the current report is ours with a median
    # and a mean.  The legacy format has no median, so means are compared:
    #   (0.0524 - 0.06) / 0.0524 * 100 = -14.50 %  -> regression at -3 %
    base = read_results(str(json_file("base.json", seed_report(0.0524, key="metrics"))))
    cur = read_results(str(json_file("cur.json", v1_report(
        [result_entry("sdpa", SEED_ID, mean_ms=0.06, median_ms=0.05)]))))
    r = compare_results(base, cur)
    row = r["comparisons"][0]
    assert row["id"] == f"sdpa/{SEED_ID}"
    assert row["statistic"] == "mean_time_ms"
    assert row["improvement_pct"] == pytest.approx(-14.503816793893129)
    assert r["is_regression"] is True


# ------------------------------------------------------------ threshold -----
@pytest.mark.parametrize("cur,threshold,regression", [
    (1.05, -3.0, True),     # 5 % slower: improvement -5 < -3
    (1.02, -3.0, False),    # 2 % slower: -2 is within -3
    (0.90, -3.0, False),    # 10 % faster
    (1.05, -10.0, False),   # looser threshold
    (1.01, 0.0, True),      # any slowdown at threshold 0
])
def test_threshold(result_entry, cur, threshold, regression):
    r = one(result_entry, 1.0, cur, threshold)
    assert r["improvement_pct"] == pytest.approx((1.0 - cur) * 100)
    assert r["speedup"] == pytest.approx(1.0 / cur)
    assert r["is_regression"] is regression
    assert r["regressions"] == ([f"sdpa/{SEED_ID}"] if regression else [])


def test_median_preferred_when_both_sides_have_it(result_entry):
    # medians 1.0 -> 1.1: -10 % (regression), although the means improved 2.0 -> 1.0
    r = compare_results([result_entry("sdpa", SEED_ID, mean_ms=2.0, median_ms=1.0)],
                        [result_entry("sdpa", SEED_ID, mean_ms=1.0, median_ms=1.1)])
    row = r["comparisons"][0]
    assert row["statistic"] == "median_time_ms"
    assert row["improvement_pct"] == pytest.approx(-10.0)
    assert r["is_regression"] is True


def test_mean_used_when_one_side_lacks_a_median(result_entry):
    # means 2.0 -> 1.0: speedup 2, +50 %
    r = compare_results([result_entry("sdpa", SEED_ID, mean_ms=2.0)],
                        [result_entry("sdpa", SEED_ID, mean_ms=1.0, median_ms=5.0)])
    row = r["comparisons"][0]
    assert row["statistic"] == "mean_time_ms"
    assert (row["speedup"], row["improvement_pct"]) == pytest.approx((2.0, 50.0))
    assert r["is_regression"] is False


@pytest.mark.parametrize("bad", [0, -1.0, "0.05", True, None])
def test_unusable_time_on_a_measured_config_is_refused(result_entry, bad):
    # A garbage number must not pass silently: that would switch a CI gate off.
    base = result_entry("sdpa", SEED_ID, mean_ms=1.0)
    cur = result_entry("sdpa", SEED_ID, mean_ms=1.0)
    cur["performance"]["mean_time_ms"] = bad
    with pytest.raises(ReportError, match=f"sdpa/{SEED_ID}: measured on both sides"):
        compare_results([base], [cur])


def test_config_not_measured_in_the_baseline_is_not_timed(result_entry):
    base = result_entry("sdpa", SEED_ID, mean_ms=None)
    base["status"] = "unavailable"
    cur = result_entry("sdpa", SEED_ID, mean_ms=1.0)
    r = compare_results([base], [cur])
    assert r["speedup"] is None and r["is_regression"] is False
    assert verdict(r["improvement_pct"], r["is_regression"]) == "NOT TIMED"
    text = render(r, "text")
    assert "  Time (ms):  n/a (baseline unavailable, current ok)\n  Speedup:    n/a\n" in text
    assert "n/ax" not in text and "n/ax" not in render(r, "markdown")


def test_config_no_longer_measured_is_a_regression(result_entry):
    base = result_entry("sdpa", SEED_ID, mean_ms=1.0)
    cur = result_entry("sdpa", SEED_ID, mean_ms=None)
    cur["status"] = "unavailable"
    r = compare_results([base], [cur])
    assert r["is_regression"] is True and r["comparisons"][0]["coverage_regression"] is True


def test_different_time_bases_are_refused(result_entry):
    base = result_entry("sdpa", SEED_ID, mean_ms=0.05)
    cur = result_entry("sdpa", SEED_ID, mean_ms=7.0)
    base["performance"]["time_basis"] = "device_time"
    cur["performance"]["time_basis"] = "cpu_wall_time"
    with pytest.raises(ReportError, match="device_time.*cpu_wall_time"):
        compare_results([base], [cur])


# ------------------------------------------------------ matching configs ----
def test_unmatched_configs_are_listed(result_entry):
    base = [result_entry("sdpa", "a", mean_ms=1.0), result_entry("sdpa", "b", mean_ms=1.0)]
    cur = [result_entry("sdpa", "b", mean_ms=1.0), result_entry("naive", "b", mean_ms=1.0)]
    r = compare_results(base, cur)
    assert [c["id"] for c in r["comparisons"]] == ["sdpa/b"]
    assert r["unmatched"] == {"baseline_only": ["sdpa/a"], "current_only": ["naive/b"]}


def test_no_config_in_common_is_an_error_listing_both_sides(result_entry):
    with pytest.raises(ReportError) as info:
        compare_results([result_entry("sdpa", "a", mean_ms=1.0)],
                        [result_entry("tiled", "a", mean_ms=1.0)])
    msg = str(info.value)
    assert "no config in common" in msg and "sdpa/a" in msg and "tiled/a" in msg


def test_worst_config_supplies_the_seed_keys(result_entry):
    # a: 1.0 -> 0.9 (+10 %), b: 2.0 -> 2.1 (-5 %) -> worst is b
    base = [result_entry("sdpa", "a", mean_ms=1.0), result_entry("sdpa", "b", mean_ms=2.0)]
    cur = [result_entry("sdpa", "a", mean_ms=0.9), result_entry("sdpa", "b", mean_ms=2.1)]
    r = compare_results(base, cur)
    assert r["worst_id"] == "sdpa/b"
    assert (r["baseline_time_ms"], r["current_time_ms"]) == (2.0, 2.1)
    assert r["improvement_pct"] == pytest.approx(-5.0)
    assert r["regressions"] == ["sdpa/b"]


# ------------------------------------------------ correctness regressions ---
@pytest.mark.parametrize("base_status,cur_status,correctness,coverage", [
    ("ok", "failed", True, False),
    ("ok", "error", True, False),
    ("ok", "crashed", True, False),
    ("ok", "timed_out", True, False),
    ("failed", "failed", False, False),
    ("ok", "skipped", False, True),
    ("ok", "unavailable", False, True),
])
def test_status_regressions(result_entry, base_status, cur_status, correctness, coverage):
    # The current run is faster (1.0 -> 0.5): only the status can make it a regression.
    base = result_entry("sdpa", SEED_ID, mean_ms=1.0, status=base_status)
    cur = result_entry("sdpa", SEED_ID, mean_ms=0.5, status=cur_status)
    r = compare_results([base], [cur])
    row = r["comparisons"][0]
    assert row["correctness_regression"] is correctness
    assert row["coverage_regression"] is coverage
    assert r["is_regression"] is (correctness or coverage)


def test_failed_current_without_times_is_a_regression(result_entry):
    r = compare_results([result_entry("sdpa", SEED_ID, mean_ms=1.0)],
                        [result_entry("sdpa", SEED_ID, status="failed")])
    assert r["is_regression"] is True and r["speedup"] is None
    assert "CORRECTNESS REGRESSION (failed)" in render(r, "markdown")


# ------------------------------------------------------------- rendering ----
@pytest.mark.parametrize("pct,regression,threshold,word", [
    (12.0, False, -3.0, "IMPROVEMENT"), (3.01, False, -3.0, "IMPROVEMENT"),
    # the band is symmetric: +-3 % around zero is no change at threshold -3
    (3.0, False, -3.0, "NO SIGNIFICANT CHANGE"), (0.05, False, -3.0, "NO SIGNIFICANT CHANGE"),
    (1.26, False, -3.0, "NO SIGNIFICANT CHANGE"), (0.0, False, -3.0, "NO SIGNIFICANT CHANGE"),
    (-2.98, False, -3.0, "NO SIGNIFICANT CHANGE"), (-3.0, False, -3.0, "NO SIGNIFICANT CHANGE"),
    (-5.0, True, -3.0, "REGRESSION"), (None, False, -3.0, "NOT TIMED"),
    (0.05, False, 0.0, "IMPROVEMENT"), (-0.05, True, 0.0, "REGRESSION"),
    (8.0, False, -10.0, "NO SIGNIFICANT CHANGE"), (10.5, False, -10.0, "IMPROVEMENT"),
])
def test_verdict_words_follow_the_threshold_symmetrically(pct, regression, threshold, word):
    assert verdict(pct, regression, threshold) == word


@pytest.mark.parametrize("cur,word", [(0.9995, "NO SIGNIFICANT CHANGE"),   # +0.05 %
                                      (1.0298, "NO SIGNIFICANT CHANGE"),   # -2.98 %
                                      (1.0302, "REGRESSION"),              # -3.02 %
                                      (0.9698, "IMPROVEMENT")])            # +3.02 %
def test_rendered_verdict_matches_is_regression(result_entry, cur, word):
    r = one(result_entry, 1.0, cur)
    assert render(r, "text").splitlines()[3] == f"  {word}"
    assert r["is_regression"] is (word == "REGRESSION")


def test_render_text_and_markdown(result_entry):
    r = compare_results([result_entry("sdpa", SEED_ID, mean_ms=0.0524),
                         result_entry("sdpa", "gone", mean_ms=1.0)],
                        [result_entry("sdpa", SEED_ID, mean_ms=0.05174)], allow_missing=True)
    text = render(r, "text")
    assert "Speedup:    1.0128x" in text
    assert "0.0524 -> 0.0517 (+1.26%, mean_time_ms)" in text
    assert "NO SIGNIFICANT CHANGE" in text
    assert "missing from the current report (in the baseline only): sdpa/gone" in text
    assert text.rstrip().endswith(
        "Overall: OK (0 of 1 configs past -3.0 %; 1 config(s) of the baseline not compared "
        "(--allow-missing))")
    md = render(r, "markdown").splitlines()
    assert md[0] == "**attnperf compare** (threshold -3.0 %): no regression"
    row = next(line for line in md if f"`sdpa/{SEED_ID}`" in line)
    assert [c.strip() for c in row.strip("|").split("|")] == [
        f"`sdpa/{SEED_ID}`", "0.0524", "0.0517", "1.0128x", "+1.26 %", "NO SIGNIFICANT CHANGE"]


# ------------------------------------------------------- lost coverage ------
def test_configs_missing_from_the_current_report_fail_unless_allowed(result_entry):
    # A filtered run (1 config) against a full baseline (3): 2 configs lost.
    base = [result_entry("sdpa", c, mean_ms=1.0) for c in ("a", "b", "c")]
    cur = [result_entry("sdpa", "a", mean_ms=1.0)]
    r = compare_results(base, cur)
    assert r["missing"] == ["sdpa/b", "sdpa/c"] and r["coverage_lost"] is True
    assert r["is_regression"] is True and r["regressions"] == []
    text = render(r, "text")
    assert "missing from the current report (in the baseline only): sdpa/b, sdpa/c" in text
    assert text.rstrip().endswith(
        "2 config(s) of the baseline missing from the current report: "
        "lost coverage, pass --allow-missing if they were left out on purpose)"
    )
    assert text.rstrip().splitlines()[-1].startswith("Overall: REGRESSION")
    allowed = compare_results(base, cur, allow_missing=True)
    assert allowed["is_regression"] is False and allowed["coverage_lost"] is False
    assert allowed["missing"] == ["sdpa/b", "sdpa/c"]


def test_new_configs_in_the_current_report_do_not_fail(result_entry):
    r = compare_results(
        [result_entry("sdpa", "a", mean_ms=1.0)],
        [result_entry("sdpa", "a", mean_ms=1.0), result_entry("sdpa", "z", mean_ms=1.0)],
    )
    assert r["is_regression"] is False and r["missing"] == []
    assert "new in the current report (not in the baseline): sdpa/z" in render(r, "text")


@pytest.mark.parametrize("bad", [float("inf"), float("nan"), 1e308 * 10, 10 ** 400])
def test_non_finite_or_absurd_times_are_refused(result_entry, bad):
    # An Infinity baseline printed "+nan%" and wrote NaN into the JSON output.
    base = result_entry("sdpa", SEED_ID, mean_ms=1.0)
    base["performance"]["mean_time_ms"] = bad
    with pytest.raises(ReportError, match="measured on both sides"):
        compare_results([base], [result_entry("sdpa", SEED_ID, mean_ms=1.0)])


# ------------------------------------------------------- one row, key by key --
def assert_row(row: dict, expected: dict) -> None:
    """The comparison JSON's row keys: added over time, never renamed or dropped."""
    assert {k: row.get(k, "<missing>") for k in expected} == expected


def test_row_of_a_timed_config(result_entry):
    base = dict(result_entry("sdpa", SEED_ID, median_ms=4.0), status="ok")
    cur = result_entry("sdpa", SEED_ID, median_ms=5.0)
    del cur["status"]  # a missing status means "ok" (legacy files have none)
    for side in (base, cur):
        side["performance"]["time_basis"] = "device_time"  # the same basis: comparable
    (row,) = compare_results([base], [cur], -3.0)["comparisons"]
    assert_row(row, {"id": f"sdpa/{SEED_ID}", "kernel_name": "sdpa", "config_id": SEED_ID,
                   "baseline_status": "ok", "current_status": "ok", "threshold": -3.0,
                   "speedup": 0.8, "improvement_pct": -25.0, "baseline_time_ms": 4.0,
                   "current_time_ms": 5.0, "statistic": "median_time_ms", "is_regression": True,
                   "correctness_regression": False, "coverage_regression": False})


def test_row_of_a_config_not_timed(result_entry):
    base = result_entry("sdpa", SEED_ID, status="skipped")
    cur = result_entry("sdpa", SEED_ID, mean_ms=1.0)
    (row,) = compare_results([base], [cur])["comparisons"]
    assert_row(row, {"id": f"sdpa/{SEED_ID}", "kernel_name": "sdpa", "config_id": SEED_ID,
                   "baseline_status": "skipped", "current_status": "ok", "threshold": -3.0,
                   "speedup": None, "improvement_pct": None, "baseline_time_ms": None,
                   "current_time_ms": None, "statistic": None, "is_regression": False,
                   "correctness_regression": False, "coverage_regression": False})


def test_missing_baseline_status_means_ok(result_entry):
    base = result_entry("sdpa", SEED_ID, mean_ms=1.0)
    del base["status"]
    cur = result_entry("sdpa", SEED_ID, status="failed")
    (row,) = compare_results([base], [cur])["comparisons"]
    assert (row["baseline_status"], row["correctness_regression"], row["is_regression"]) == (
        "ok", True, True)
