"""attnperf.timing on the CPU: statistics against hand-computed literals, and
the sampling loop driven by a fake clock (no sleeping, no real-time thresholds)."""

import pytest

from attnperf.measure.timing import (QUICK, Budget, Samples, time_cpu, time_cuda_device,
                             time_cuda_latency)

# Binary fractions of a second, so the fake clock's arithmetic is exact.
TICK = 2.0 ** -10  # ~0.977 ms


class FakeClock:
    """A clock that advances only when the timed function runs."""

    def __init__(self, durations):
        self.now = 0.0
        self.calls = 0
        self._durations = durations

    def __call__(self) -> float:
        return self.now

    def fn(self) -> None:
        self.now += self._durations(self.calls)
        self.calls += 1


def samples_ms(values_ms):
    return Samples([v / 1e3 for v in values_ms], method="test", calls_per_sample=1,
                   warmup_calls=0)


# ----------------------------------------------------------- statistics -----
def test_stats_odd_count():
    # sorted 1, 2, 3, 4, 10 ms
    # median 3; q1 at position 0.25*4 = 1 -> 2; q3 at 3 -> 4; IQR 2
    # mean 20/5 = 4; sample std: sqrt((9+4+1+0+36)/4) = sqrt(12.5) = 3.5355339...
    st = samples_ms([4, 1, 10, 3, 2]).stats()
    assert st["n"] == 5
    assert st["median_ms"] == pytest.approx(3.0)
    assert st["q1_ms"] == pytest.approx(2.0)
    assert st["q3_ms"] == pytest.approx(4.0)
    assert st["iqr_ms"] == pytest.approx(2.0)
    assert st["mean_ms"] == pytest.approx(4.0)
    assert st["std_ms"] == pytest.approx(3.5355339059327378)
    assert st["min_ms"] == pytest.approx(1.0)
    assert st["max_ms"] == pytest.approx(10.0)
    assert st["iqr_over_median"] == pytest.approx(2.0 / 3.0)
    assert st["unstable"] is True


def test_stats_even_count_interpolates_like_numpy():
    # sorted 1, 2, 4, 8 ms: median (2+4)/2 = 3
    # q1 at position 0.75 -> 1 + 0.75*(2-1) = 1.75; q3 at 2.25 -> 4 + 0.25*(8-4) = 5
    # IQR 3.25; mean 15/4 = 3.75
    st = samples_ms([8, 1, 4, 2]).stats()
    assert st["median_ms"] == pytest.approx(3.0)
    assert st["q1_ms"] == pytest.approx(1.75)
    assert st["q3_ms"] == pytest.approx(5.0)
    assert st["iqr_ms"] == pytest.approx(3.25)
    assert st["mean_ms"] == pytest.approx(3.75)
    assert st["min_ms"] == pytest.approx(1.0)


def test_stats_stable_and_single_sample():
    # 100, 101, 102, 103, 104: IQR 101..103 = 2 -> 2/102 = 1.96 % < 10 %
    st = samples_ms([100, 101, 102, 103, 104]).stats()
    assert st["iqr_over_median"] == pytest.approx(2 / 102)
    assert st["unstable"] is False
    one = samples_ms([5]).stats()
    assert (one["median_ms"], one["iqr_ms"], one["std_ms"], one["min_ms"]) == \
        pytest.approx((5.0, 0.0, 0.0, 5.0))


def test_to_dict_keeps_raw_samples_in_order():
    d = samples_ms([4, 1, 10, 3, 2]).to_dict()
    assert d["samples_ms"] == pytest.approx([4, 1, 10, 3, 2])  # never sorted, never trimmed
    assert d["method"] == "test" and d["calls_per_sample"] == 1
    assert "note" not in d
    assert Samples([1e-3], "m", 1, 0, note="why").to_dict()["note"] == "why"


def test_median_s():
    assert samples_ms([3, 1, 2]).median_s == pytest.approx(2e-3)


# ------------------------------------------------------------- time_cpu -----
def test_time_cpu_exact_per_call_and_calls_per_sample():
    # Each call takes 1 TICK. No warm-up time asked: exactly 2 warm-up calls,
    # per-call estimate 1 TICK, target 4 TICK per sample -> 4 calls per sample.
    # Equal samples are stable (IQR 0), so sampling stops at min_samples = 3.
    clock = FakeClock(lambda i: TICK)
    budget = Budget(min_samples=3, max_samples=50, budget_s=10.0, warmup_s=0.0,
                    target_sample_s=4 * TICK)
    s = time_cpu(clock.fn, budget, clock=clock)
    assert s.warmup_calls == 2
    assert s.calls_per_sample == 4
    assert s.samples_s == [TICK, TICK, TICK]
    assert clock.calls == 2 + 3 * 4
    assert s.method == "cpu-perf_counter"


def test_time_cpu_warmup_runs_until_warmup_time():
    # warm-up 8 TICK at 1 TICK per call -> 8 calls
    clock = FakeClock(lambda i: TICK)
    s = time_cpu(clock.fn, Budget(min_samples=3, warmup_s=8 * TICK, target_sample_s=TICK),
                 clock=clock)
    assert s.warmup_calls == 8
    assert s.calls_per_sample == 1


def _alternating(i):
    # 2 warm-up calls, then samples alternate 1 and 3 TICK: IQR/median stays large.
    return TICK if i % 2 == 0 else 3 * TICK


def test_time_cpu_keeps_raw_unstable_samples_until_budget_is_spent():
    # Budget 10 TICK of timed work: 1+3+1+3 = 8 < 10, +1 = 9 < 10, +3 = 12 -> stop at 6 samples.
    clock = FakeClock(_alternating)
    budget = Budget(min_samples=3, max_samples=100, budget_s=10 * TICK, warmup_s=0.0,
                    target_sample_s=1e-9)
    s = time_cpu(clock.fn, budget, clock=clock)
    assert s.calls_per_sample == 1
    assert s.samples_s == [TICK, 3 * TICK, TICK, 3 * TICK, TICK, 3 * TICK]
    st = s.stats()
    assert st["min_ms"] == pytest.approx(TICK * 1e3)
    assert st["unstable"] is True


def test_time_cpu_stops_at_max_samples():
    clock = FakeClock(_alternating)
    budget = Budget(min_samples=3, max_samples=7, budget_s=1e6, warmup_s=0.0,
                    target_sample_s=1e-9)
    assert len(time_cpu(clock.fn, budget, clock=clock).samples_s) == 7


def test_time_cpu_takes_min_samples_even_past_the_budget():
    # Every sample alone exceeds the budget; still min_samples are taken.
    clock = FakeClock(_alternating)
    budget = Budget(min_samples=5, max_samples=100, budget_s=TICK / 4, warmup_s=0.0,
                    target_sample_s=1e-9)
    assert len(time_cpu(clock.fn, budget, clock=clock).samples_s) == 5


def test_time_cpu_with_the_real_clock_returns_positive_samples():
    calls = []
    s = time_cpu(lambda: calls.append(1),
                 Budget(min_samples=3, max_samples=5, budget_s=0.01, warmup_s=0.0))
    assert 3 <= len(s.samples_s) <= 5
    assert all(x > 0 for x in s.samples_s)
    assert len(calls) == s.warmup_calls + s.calls_per_sample * len(s.samples_s)


def test_quick_budget_is_smaller_than_default():
    assert QUICK.budget_s < Budget().budget_s
    assert QUICK.min_samples >= 3


# ------------------------------------------------------------------ GPU -----
@pytest.mark.gpu
def test_cuda_device_time_is_graph_replay_and_below_isolated_latency():
    import torch

    a = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(1024, 1024, device="cuda", dtype=torch.bfloat16)
    out = torch.empty(1024, 1024, device="cuda", dtype=torch.bfloat16)

    def fn():
        torch.matmul(a, b, out=out)

    budget = Budget(min_samples=5, max_samples=20, budget_s=0.05, warmup_s=0.02)
    device = time_cuda_device(fn, budget)
    latency = time_cuda_latency(fn, budget, l2_flush=True)
    assert device.method == "cuda-graph", device.note
    assert device.calls_per_sample > 1
    assert latency.method == "cuda-events-per-call" and latency.l2_flush
    assert all(x > 0 for x in device.samples_s)
    # Back-to-back replays hide launch gaps an isolated, cold-cache call pays.
    assert device.median_s < latency.median_s
