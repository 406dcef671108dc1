"""One line per flagged row: what the verdict rested on (attnperf.analysis.judge)."""

from attnperf.analysis import ab, judge
from attnperf.io.asv_results import FAILED, OK, Point

TIME = "bench_attention.TimeAttention.track_device_time"
ACC = "bench_attention.Accuracy.track_abs_error"
SLOWER = Point(OK, 1.5)  # the default head point: x1.5 of the base's 1.0


def _row(change, ratio=1.5, factor=1.1, source="factor",
         text="p=1.0e-05 (Mann–Whitney U, n=15/15)", bench=TIME, after=SLOWER):
    return ab.Row(bench, ("tiled", "cpu_seed"), Point(OK, 1.0), after, ratio, change,
                  ab.Significance(True, text), "seconds", factor, source)


def test_a_slower_row_from_asvs_runs_names_ratio_test_threshold_and_not_paired():
    assert judge.why(_row(ab.WORSE)) == (
        "tiled/cpu_seed TimeAttention.track_device_time: x1.500 > x1.1 (factor); "
        "p=1.0e-05 (Mann–Whitney U, n=15/15); asv's separate runs, not paired")


def test_a_paired_row_says_paired_and_its_sign_test():
    line = judge.why(_row(ab.WORSE, 1.31, 1.1, "paired", "paired p=2.0e-04 (sign test, 40 pairs)"))
    assert line.endswith(": x1.310 > x1.1 (paired factor); paired p=2.0e-04 (sign test, 40 pairs); "
                         "paired re-measurement (live workers, samples alternated)")


def test_an_interval_a_calibrated_threshold_and_a_metric():
    assert "x1.500 > x1.23 (calibrated threshold); 99% CIs disjoint; asv's separate runs" in \
        judge.why(_row(ab.WORSE, factor=1.23, source="calibrated", text="99% CIs disjoint"))
    line = judge.why(_row(ab.WORSE, 2.0, 1.25, "metric", "no statistics (factor only)", ACC))
    assert line.endswith("x2.000 > x1.25 (the metric's factor); no statistics (factor only); "
                         "deterministic metric")


def test_only_flagged_rows_get_a_line_broken_first():
    rows = [_row(ab.SAME, 1.01), _row(ab.WORSE, 1.2), _row(ab.BETTER, 0.5),
            _row(ab.WORSE, 1.9), _row(ab.BROKE, None, after=Point(FAILED))]
    lines = judge.why_lines(rows)
    assert len(lines) == 3
    assert lines[0].endswith("fails at head, passed at base (a wrong result or an error)")
    assert "x1.900" in lines[1] and "x1.200" in lines[2]


def test_compare_and_confirm_paired_record_where_the_threshold_came_from():
    class Paired:
        ratio, pairs, p_slower, p_faster = 1.4, 30, 1e-4, 1.0

        def slower(self, f):
            return self.ratio > f

        def faster(self, f):
            return False

    cmp = ab.Comparison("m", None, None, 1.1, [_row(ab.WORSE)])
    out = ab.confirm_paired(cmp, {("tiled", "cpu_seed"): Paired()}, 1.2)
    assert out.rows[0].source == "paired" and out.rows[0].factor == 1.2
    assert out.rows[0].change == ab.WORSE
