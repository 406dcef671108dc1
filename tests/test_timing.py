"""attnperf.timing on the CPU: statistics against hand-computed literals, the
sampling loop driven by a fake clock, and the GPU paths (graph capture, per-call
division, L2 flush, warm-up, the power protocol, clocks, retakes) driven by a
fake CUDA world (tests/support/fakecuda.py) -- no sleeping, no real-time thresholds."""

import dataclasses
import math

import pytest

from attnperf.measure import cudalaunch, nvml, power, timing
from attnperf.measure.timing import (
    BACK_TO_BACK_POWER,
    QUICK,
    Budget,
    PowerControl,
    Samples,
    time_cpu,
    time_cpu_thread,
    time_cuda_device,
    time_cuda_latency,
)
from attnperf.model.records import ClockReading
from support.fakecuda import CAPPED_MHZ, MAX_MHZ, SW_POWER_CAP, FakeWorld, fake_torch, install

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


# ------------------------------------------------------- time_cpu_thread ---
class DescheduledThread:
    """Thread CPU time advances by each call's work; wall time also by the time the
    thread waits while another job runs on its core (every other call waits 3 TICK)."""

    def __init__(self, work=TICK):
        self.cpu = self.wall = 0.0
        self.calls = 0
        self.work = work

    def fn(self) -> None:
        self.cpu += self.work
        self.wall += self.work + (3 * TICK if self.calls % 2 else 0.0)
        self.calls += 1


def test_time_cpu_thread_gates_cpu_time_and_keeps_wall_time_as_a_view():
    t = DescheduledThread()
    refs = iter([TICK, TICK, 2 * TICK, 2 * TICK, TICK, TICK, TICK])  # bursts around samples
    budget = Budget(min_samples=3, max_samples=3, budget_s=10.0, warmup_s=0.0,
                    target_sample_s=2 * TICK)
    s = time_cpu_thread(t.fn, budget, reference=lambda: next(refs), clock=lambda: t.wall,
                        cpu_clock=lambda: t.cpu, fix_malloc=False)
    assert (s.warmup_calls, s.calls_per_sample) == (2, 2)
    assert s.samples_s == [TICK, TICK, TICK]  # descheduled time excluded
    assert s.wall_s == [2.5 * TICK] * 3  # one of the two calls per sample waited 3 TICK
    assert s.cpu_clock == timing.CPU_CLOCK == "thread" and s.method == "cpu-thread_time"
    assert s.reference_s == [TICK, TICK, 2 * TICK, 2 * TICK]
    # Each sample over the mean of the bursts on either side, at the reference speed.
    r = timing.CPU_REFERENCE_S
    assert s.normalised_s == [TICK * r / TICK, TICK * r / (1.5 * TICK), TICK * r / (2 * TICK)]


def test_time_cpu_thread_budget_counts_the_reference_bursts():
    t = DescheduledThread()
    budget = Budget(min_samples=1, max_samples=100, budget_s=8 * TICK, warmup_s=0.0,
                    target_sample_s=TICK, stable_ratio=0.0)
    s = time_cpu_thread(t.fn, budget, reference=lambda: TICK, clock=lambda: t.wall,
                        cpu_clock=lambda: t.cpu, fix_malloc=False)
    assert len(s.samples_s) == 4  # 1 TICK of work + 1 TICK of reference per sample


def test_session_times_one_thread_with_thread_cpu_time_and_several_with_wall_time():
    torch = pytest.importorskip("torch")
    from attnperf.measure.session import Bench
    from attnperf.model.catalog import PRESETS

    before = torch.get_num_threads()
    bench = Bench("sdpa", PRESETS["cpu_seed"], "cpu")
    quick = Budget(min_samples=3, max_samples=3, warmup_s=0.0)
    try:
        torch.set_num_threads(1)
        one = bench.time_samples(quick)
        torch.set_num_threads(2)
        two = bench.time_samples(quick)
    finally:
        torch.set_num_threads(before)
    assert (one.cpu_clock, one.method) == ("thread", "cpu-thread_time")
    assert len(one.wall_s) == 3 and len(one.reference_s) == 4 and len(one.normalised_s) == 3
    assert all(x > 0 for x in one.samples_s + one.normalised_s)
    assert (two.cpu_clock, two.method) == (None, "cpu-perf_counter") and two.thread is None


def test_fix_malloc_thresholds_on_glibc():
    import platform
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert timing.fix_malloc_thresholds() is True


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


# ------------------------------------------------- GPU paths, fake CUDA -----
D = TICK / 16          # one kernel call: ~61 us
REPLAY = 16 * D        # graph_target_s=TICK at D per call -> 16 calls = 1 TICK per replay
# A plan with round numbers: warm 1 replay, timed 2 replays, gap = 1 x 3 replays.
SIMPLE = PowerControl(gap_ratio=1.0, gap_min_s=0.0, gap_max_s=1.0, warm_s=TICK,
                      sample_s=2 * TICK, sustained=False)


def _budget(n, **kw):
    kw = {"budget_s": 10.0, "warmup_s": 0.0, "stable_ratio": 0.0, "settle_s": 0.0, **kw}
    return Budget(min_samples=n, max_samples=n, **kw)


def _device(world, monkeypatch, budget, power=SIMPLE, clocks=None, fn=None, **kw):
    install(monkeypatch, world)
    return time_cuda_device(fn or world.kernel(D), budget, graph_target_s=TICK, power=power,
                            clocks=clocks, sleep=world.sleep, clock=world.perf_counter, **kw)


def _samples_start(world):
    """Where the samples begin in the log: the synchronize before the first gap
    (after warm-up, capture, upload and probe)."""
    return next(i for i, e in enumerate(world.log) if e[0] == "sleep") - 1


def test_device_time_divides_by_every_call_timed(monkeypatch):
    world = FakeWorld()
    s = _device(world, monkeypatch, _budget(4))
    assert s.method == "cuda-graph" and s.protocol == "gap-warm" and s.note == ""
    assert s.samples_s == [D] * 4                 # (2 replays x 16 calls) / 32
    assert (s.calls_per_sample, s.replays_per_sample, s.warm_replays) == (32, 2, 1)
    assert s.gap_s == 3 * TICK                    # ratio 1 x (1 warm + 2 timed) replays
    # warm-up: 3 calls + a 5-call burst; side-stream init 2; capture runs nothing;
    # upload 1 replay; probe 3 replays; 4 samples x 3 replays -- of 16 calls each.
    assert s.warmup_calls == 8
    assert world.kernels == 8 + 2 + 16 * (1 + 3 + 4 * 3)


def test_settling_cycles_keep_a_start_up_transient_out_of_the_samples(monkeypatch):
    # A process's first samples can read a few percent slow with the clock at its
    # maximum and no slowdown reason; with few samples that can set the median.
    # Untimed protocol cycles first (Budget.settle_s) leave it out.
    probe = FakeWorld()
    s = _device(probe, monkeypatch, _budget(8))
    t0 = probe.log[_samples_start(probe) + 3][1]  # the first sample's first kernel starts
    calls = s.calls_per_sample // s.replays_per_sample
    cycle = s.gap_s + (s.warm_replays + s.replays_per_sample) * calls * D
    slow_until = t0 + 5 * cycle  # the first five samples' worth of time runs slow

    plain_world = FakeWorld(slow_until_s=slow_until, slow_factor=1.25)
    plain = _device(plain_world, monkeypatch, _budget(8))
    assert plain.settle_cycles == 0
    assert sum(x > D for x in plain.samples_s) == 5 and plain.median_s > D

    world = FakeWorld(slow_until_s=slow_until, slow_factor=1.25)
    settled = _device(world, monkeypatch, _budget(8, settle_s=6 * cycle))
    assert settled.settle_cycles == 6
    assert settled.samples_s == [D] * 8
    assert settled.power_state()["settle_cycles"] == 6
    # the settling cycles are the sample protocol, untimed: 6 more cycles of kernels
    per_cycle = (settled.warm_replays + settled.replays_per_sample) * (
        settled.calls_per_sample // settled.replays_per_sample)
    assert world.kernels == plain_world.kernels + 6 * per_cycle
    assert timing.settle_cycles(0.0, cycle) == 0
    assert timing.settle_cycles(0.1, 0.0) == timing.MAX_SETTLE_CYCLES  # a zero-length cycle
    assert timing.settle_cycles(1e9, cycle) == timing.MAX_SETTLE_CYCLES
    assert timing.settle_cycles(cycle / 10, cycle) == 1


def test_samples_take_turns_over_several_captures(monkeypatch):
    # A kernel can run at a slightly different speed from one graph capture to the
    # next in one process.  With one capture every sample of a timing is in that
    # capture's state; with four, the samples take turns over four graphs.
    states = (1.04, 1.0, 1.0, 1.0)
    one_world = FakeWorld(capture_factors=states)
    one = _device(one_world, monkeypatch, _budget(8))
    assert one.captures == 1 and one.samples_s == pytest.approx([1.04 * D] * 8)

    world = FakeWorld(capture_factors=states)
    many = _device(world, monkeypatch, _budget(8, captures=4))
    assert many.captures == 4 and many.power_state()["captures"] == 4
    assert world.captures == 4
    assert many.samples_s == pytest.approx([1.04 * D, D, D, D] * 2)  # in turn, in order
    assert many.median_s == pytest.approx(D)
    # every sample capped (a GPU at its power cap): the slow capture is not retaken for it
    capped_world = FakeWorld(capture_factors=states)
    capped = _device(capped_world, monkeypatch, _budget(8, captures=4),
                     clocks=lambda: ClockReading(CAPPED_MHZ, SW_POWER_CAP))
    assert capped.retaken == 0 and capped.samples_s == pytest.approx([1.04 * D, D, D, D] * 2)
    graphs = {id(e[1]): e[1] for e in world.log if e[0] == "replay"}
    # each graph: its upload replay, then two samples of (1 warm + 2 timed) replays;
    # the first graph also served the 3-replay probe
    assert sorted(g.replays for g in graphs.values()) == [7, 7, 7, 10]


def test_more_captures_only_where_the_first_one_is_a_graph(monkeypatch):
    # capture fails: eager bursts, which have no capture to vary
    world = FakeWorld(capture_error="operation not permitted when stream is capturing")
    s = _device(world, monkeypatch, _budget(4, captures=4))
    assert s.method == "cuda-events-burst" and s.captures == 1
    assert s.note.endswith("; 1 of 4 captures (eager calls: no graph to capture again)")
    # back to back (no gap-warm protocol): one graph, as before
    world = FakeWorld()
    s = _device(world, monkeypatch, _budget(4, captures=4), power=BACK_TO_BACK_POWER)
    assert s.captures == 1 and world.captures == 1
    # a later capture fails: the samples take turns over the graphs captured so far
    world = FakeWorld()

    def third_capture_fails():
        if world.capturing is not None and world.captures == 3:
            raise RuntimeError("capture failed")
        world.kernel(D)()

    s = _device(world, monkeypatch, _budget(4, captures=4), fn=third_capture_fails)
    assert s.method == "cuda-graph" and s.captures == 2 and s.samples_s == pytest.approx([D] * 4)
    assert s.note == "2 of 4 captures (the next capture failed: capture failed)"
    with pytest.raises(ValueError, match="captures must be >= 1, got 0"):
        Budget(captures=0)


def test_the_default_budget_settles_before_its_samples(monkeypatch):
    # `attnperf run` (Budget()) spends ~0.1 s of untimed sample cycles; the suite does not.
    world = FakeWorld()
    s = _device(world, monkeypatch, Budget(min_samples=3, max_samples=3, warmup_s=0.0))
    cycle = (
        s.gap_s
        + (s.warm_replays + s.replays_per_sample) * (s.calls_per_sample // s.replays_per_sample) * D
    )
    assert Budget().settle_s > 0
    assert s.settle_cycles == timing.settle_cycles(Budget().settle_s, cycle) > 1


def test_gap_comes_before_the_warm_replay_and_the_timed_replays_queue_right_behind_it(monkeypatch):
    world = FakeWorld()
    s = _device(world, monkeypatch, _budget(2), clocks=world.read_clock)
    first = _samples_start(world)
    log = world.log[first:]
    kinds = [e[0] for e in log]
    one = ["sync", "sleep", "replay"] + ["kernel"] * 16 + ["record"] + \
        (["replay"] + ["kernel"] * 16) * 2 + ["record", "event_sync", "clock"]
    assert kinds == one * 2
    assert log[1] == ("sleep", s.gap_s)
    kernels = [e for e in log if e[0] == "kernel"][:48]
    before_gap = max(e[1] + e[2] for e in world.log[:first] if e[0] == "kernel")
    assert kernels[0][1] - before_gap == s.gap_s  # the device idled exactly the gap
    for a, b in zip(kernels, kernels[1:], strict=False):
        assert b[1] == a[1] + a[2]                 # warm -> timed with no hole in between
    assert log[19][0] == "record"                 # the start event, reached right after
    assert log[19][2] == kernels[15][1] + kernels[15][2]  # the warm replay's last kernel


@pytest.mark.parametrize("replay_s,expected", [
    (2.1e-3, (1, 1, 1.25 * 4.2e-3)),      # train-like graph: the measured 5 ms gap
    (140e-6, (15, 15, 1.25 * 30 * 140e-6)),  # seed-like: several replays per part
    (6e-3, (1, 1, 15e-3)),                # long replay: the gap grows with it
    (50e-3, (1, 1, 20e-3)),               # ... up to gap_max_s
])
def test_power_plan_scales_the_gap_with_the_work(replay_s, expected):
    warm, timed, gap = PowerControl().plan(replay_s)
    assert (warm, timed) == expected[:2]
    assert gap == pytest.approx(expected[2], rel=1e-12)
    # The duty cycle never exceeds 1 / (1 + ratio) below the clamp.
    if gap < PowerControl().gap_max_s:
        busy = (warm + timed) * replay_s
        assert busy / (busy + gap) == pytest.approx(1 / 2.25)


def test_power_plan_clamps_and_bounds():
    assert PowerControl(gap_min_s=8e-3).plan(1e-3)[2] == 8e-3
    assert PowerControl().plan(2e-3)[:2] == (1, 1)   # exactly 2 ms / 2 ms: no extra replay
    assert PowerControl().plan(1e-9)[:2] == (timing.MAX_REPLAYS, timing.MAX_REPLAYS)


def test_gap_scales_with_the_replay_in_the_timing_loop(monkeypatch):
    power = PowerControl(gap_ratio=2.0, gap_min_s=0.0, gap_max_s=1.0, warm_s=TICK,
                         sample_s=TICK, sustained=False)
    short = _device(FakeWorld(), monkeypatch, _budget(2), power=power)
    world = FakeWorld()
    long = _device(world, monkeypatch, _budget(2), power=power, fn=world.kernel(4 * D))
    # short: 16 calls of D = 1 TICK a replay -> 1 + 1 replays, gap 2 x 2 TICK
    # long: 4 calls of 4D = 1 TICK a replay (graph_target TICK) -> the same plan
    assert short.gap_s == long.gap_s == 4 * TICK
    world = FakeWorld()
    longer = _device(world, monkeypatch, _budget(2), power=power, fn=world.kernel(2 * TICK))
    # one call of 2 TICK per replay -> 1 + 1 replays of 2 TICK, gap 2 x 4 TICK
    assert (longer.calls_per_sample, longer.gap_s) == (1, 8 * TICK)
    assert longer.samples_s == [2 * TICK] * 2


def test_the_budget_counts_the_gap(monkeypatch):
    # Each sample costs gap 3 TICK + 3 replays of 1 TICK = 6 TICK of wall time;
    # a 30 TICK budget stops after the 5th sample (the first at or past it).
    world = FakeWorld()
    s = _device(world, monkeypatch, Budget(min_samples=2, max_samples=100, budget_s=30 * TICK,
                                           warmup_s=0.0, stable_ratio=0.0))
    assert len(s.samples_s) == 5


def test_warm_replays_absorb_the_clock_ramp_after_idling(monkeypatch):
    # After 0.5 TICK idle the clock drops; the next TICK of work runs 2x slower.
    ramp = {"idle_drop_s": TICK / 2, "ramp_s": TICK}
    world = FakeWorld(**ramp)
    warm = _device(world, monkeypatch, _budget(3), clocks=world.read_clock,
                   power=PowerControl(gap_ratio=1.0, gap_min_s=0.0, gap_max_s=1.0,
                                      warm_s=2 * TICK, sample_s=TICK, sustained=False))
    assert warm.samples_s == [D] * 3            # the ramp fell inside the 2 warm replays
    assert warm.sm_clocks_mhz() == [MAX_MHZ] * 3
    world = FakeWorld(**ramp)
    cold = _device(world, monkeypatch, _budget(3), clocks=world.read_clock,
                   power=PowerControl(gap_ratio=1.0, gap_min_s=0.0, gap_max_s=1.0,
                                      warm_s=TICK / 4, sample_s=TICK, sustained=False))
    # One warm replay (16 calls, 1 TICK at full clock) is enough here: its first 8
    # calls run at 2x and use up the 1 TICK ramp; the timed replay runs at full clock.
    assert cold.warm_replays == 1
    assert cold.samples_s == [D] * 3
    world = FakeWorld(idle_drop_s=TICK / 2, ramp_s=3 * TICK)
    short = _device(world, monkeypatch, _budget(3), clocks=world.read_clock,
                    power=PowerControl(gap_ratio=1.0, gap_min_s=0.0, gap_max_s=1.0,
                                       warm_s=TICK / 4, sample_s=TICK, sustained=False))
    # A 3 TICK ramp outlasts the warm replay (2 TICK at 2x): the timed replay's
    # first 8 calls still run at 2x -> (8 x 2 + 8) D / 16 calls = 1.5 D.
    assert short.samples_s == [1.5 * D] * 3


def test_power_cap_under_back_to_back_and_not_with_the_gap(monkeypatch):
    # The cap engages after 4 TICK of work without a 2 TICK idle spell.
    cap = {"cap_after_s": 4 * TICK, "cool_s": 2 * TICK, "cap_factor": 1.25}
    world = FakeWorld(**cap)
    old = _device(world, monkeypatch, _budget(8), power=BACK_TO_BACK_POWER,
                  clocks=world.read_clock)
    assert old.protocol == "back-to-back" and old.gap_s is None
    assert old.calls_per_sample == 16
    assert max(old.samples_s) == 1.25 * D and min(old.samples_s) == D
    assert old.retaken == 0 and not old.unsteady  # back to back: recorded, never retaken
    assert old.slowdown_samples > 0
    world = FakeWorld(**cap)
    power = PowerControl(gap_ratio=1.0, gap_min_s=0.0, gap_max_s=1.0, warm_s=TICK,
                         sample_s=TICK, sustained=True)
    new = _device(world, monkeypatch, _budget(6), power=power, clocks=world.read_clock)
    assert new.samples_s == [D] * 6                 # a 2 TICK gap cools it every sample
    assert new.slowdown_samples == 0 and new.retaken == 0
    assert new.sm_clocks_mhz() == [MAX_MHZ] * 6
    # The sustained view: 6 replays back to back right after the last sample's 2
    # TICK of work: the 3rd replay starts at 4 TICK of work, under the cap.
    sus = new.sustained
    assert sus.protocol == "back-to-back" and sus.calls_per_sample == 16
    assert sus.samples_s == pytest.approx([D, D] + [1.25 * D] * 4, rel=1e-12)
    assert sus.sm_clocks_mhz() == [CAPPED_MHZ] * 6  # one reading per batch, after it


class Script:
    """A clock reader that flags the samples it is told to (1-based)."""

    def __init__(self, flagged, mhz=MAX_MHZ, bits=SW_POWER_CAP | 0x1):
        self.flagged, self.mhz, self.bits, self.n = set(flagged), mhz, bits, 0

    def __call__(self):
        self.n += 1
        if self.n in self.flagged:
            return ClockReading(CAPPED_MHZ, self.bits)
        return ClockReading(self.mhz, 0) if self.n % 5 else None  # every 5th: NVML hiccup


def test_samples_under_slowdown_are_retaken_within_the_budget(monkeypatch):
    # 4 needed, retake budget ceil(0.5 x 4) = 2: samples 2 and 5 are set aside.
    world = FakeWorld()
    s = _device(world, monkeypatch, _budget(4, retake_fraction=0.5, slow_margin=None),
                clocks=Script({2, 5}))
    assert [e[0] for e in world.log].count("sleep") == 6
    assert s.samples_s == [D] * 4 and not s.unsteady
    assert s.retaken == 2 and s.power.rejected_s == [D, D]
    assert s.power.clocks == [ClockReading(MAX_MHZ, 0), ClockReading(MAX_MHZ, 0),
                        ClockReading(MAX_MHZ, 0), ClockReading(MAX_MHZ, 0)]
    assert s.power.rejected_clocks == [ClockReading(CAPPED_MHZ, 5)] * 2
    d = s.to_dict()
    assert d["retaken"] == 2 and d["rejected_samples_ms"] == [D * 1e3] * 2
    assert d["rejected_clock_events"] == [["gpu_idle", "sw_power_cap"]] * 2
    assert d["slowdown_samples"] == 0 and d["unsteady"] is False


@pytest.mark.parametrize("bits,retaken", [
    (0x4, 1), (0x8, 1), (0x20, 1), (0x40, 1), (0x80, 1),  # power and thermal slowdowns
    (0x1 | 0x2 | 0x10 | 0x100, 0),  # idle, application clocks, sync boost, display: not slowdowns
])
def test_which_clock_events_make_a_sample_be_retaken(monkeypatch, bits, retaken):
    s = _device(
        FakeWorld(), monkeypatch, _budget(3, slow_margin=None), clocks=Script({2}, bits=bits)
    )
    assert s.retaken == retaken and len(s.samples_s) == 3


def test_a_reading_nvml_cannot_make_is_kept_as_unknown(monkeypatch):
    s = _device(FakeWorld(), monkeypatch, _budget(6), clocks=Script(set()))
    assert s.sm_clocks_mhz() == [MAX_MHZ] * 4 + [None] + [MAX_MHZ]
    assert s.clock_events()[4] is None and s.retaken == 0


def test_unsteady_when_the_retake_budget_runs_out(monkeypatch):
    # Every sample is capped: 2 retakes allowed, the 3rd flagged sample ends it.
    world = FakeWorld()
    s = _device(world, monkeypatch, _budget(4, retake_fraction=0.5, slow_margin=None),
                clocks=Script(range(1, 100)))
    assert [e[0] for e in world.log].count("sleep") == 3
    assert s.unsteady and s.retaken == 3 and s.samples_s == [D] * 3 and s.power.rejected_s == []
    assert s.unsteady_reason == ("sw_power_cap in 3 of 3 samples; 0 steady of 4 samples "
                                 "needed after 2 retakes")
    ps = s.power_state()
    assert (ps["slowdown_samples"], ps["slowdown_reasons"], ps["slowdown_bits"]) == \
        (3, ["sw_power_cap"], SW_POWER_CAP)
    assert ps["unsteady"] is True and ps["sm_clock_median_mhz"] == CAPPED_MHZ


def test_unsteady_keeps_every_sample_in_the_order_taken(monkeypatch):
    # Samples 1 and 3 capped; no retake allowed (fraction 0): the first flagged
    # sample ends the sampling with 0 steady of 3.
    world = FakeWorld()
    s = _device(world, monkeypatch, _budget(3, retake_fraction=0.0, slow_margin=None),
                clocks=Script({1, 3}))
    assert s.unsteady and len(s.samples_s) == 1
    assert s.unsteady_reason.startswith("sw_power_cap in 1 of 1 samples; 0 steady of 3")
    # A flagged sample after enough steady ones does not make the result unsteady.
    s = _device(FakeWorld(), monkeypatch, _budget(2, retake_fraction=0.0, slow_margin=None),
                clocks=Script({3}))
    assert not s.unsteady and s.samples_s == [D, D] and s.retaken == 0


def test_without_nvml_the_clock_fields_say_unavailable(monkeypatch):
    s = _device(FakeWorld(), monkeypatch, _budget(3), clocks=None)
    assert s.clock_source == "unavailable" and s.samples_s == [D] * 3
    d = s.to_dict()
    for key in ("sm_clock_mhz", "clock_events", "slowdown_samples", "slowdown_reasons",
                "slowdown_bits", "rejected_clock_events"):
        assert d[key] == "unavailable", key
    assert d["sm_clock_median_mhz"] is None and d["unsteady"] is False
    assert d["gap_ms"] == 3 * TICK * 1e3 and d["protocol"] == "gap-warm"


def test_default_clocks_come_from_nvml_for_torch_s_current_gpu(monkeypatch):
    asked = []
    monkeypatch.setattr(nvml, "clock_reader",
                        lambda uuid, index: asked.append((uuid, index)))  # returns None
    world = FakeWorld(uuid="GPU-1234")
    install(monkeypatch, world)
    s = time_cuda_device(world.kernel(D), _budget(2), graph_target_s=TICK, power=SIMPLE,
                         sleep=world.sleep, clock=world.perf_counter)
    assert asked == [("GPU-1234", 0)] and s.clock_source == "unavailable"
    world = FakeWorld(uuid=None)
    install(monkeypatch, world)
    time_cuda_latency(world.kernel(D), _budget(2), clock=world.perf_counter)
    assert asked[-1] == (None, 0)


def test_capture_failure_falls_back_to_bursts_of_calls(monkeypatch):
    world = FakeWorld(capture_error="operation not permitted when stream is capturing")
    s = _device(world, monkeypatch, _budget(3))
    assert s.method == "cuda-events-burst"
    assert s.note == "graph capture failed: operation not permitted when stream is capturing"
    assert s.samples_s == [D] * 3 and s.calls_per_sample == 32
    assert not any(e[0] == "replay" for e in world.log)
    assert len(world.capture_streams) == 2  # tried twice
    # warm-up 8, two capture tries x 2 set-up calls, one burst to time the host's
    # enqueueing, then 16-call bursts: upload, 3 probe, 3 samples x 3; 2 spins to
    # measure the spin rate, one before the probe and one before each sample.
    assert (
        world.kernel_log("kernel")
        and world.kernels == 8 + 4 + 16 + 16 * (1 + 3 + 3 * 3) + 2 + 1 + 3
    )


def test_a_capture_that_fails_once_is_tried_again(monkeypatch):
    world = FakeWorld(capture_error="CUDNN_STATUS_NOT_INITIALIZED", capture_failures=1)
    s = _device(world, monkeypatch, _budget(3))
    assert s.method == "cuda-graph" and len(world.capture_streams) == 2
    assert s.note == "captured at the second try (first: CUDNN_STATUS_NOT_INITIALIZED)"
    assert s.samples_s == [D] * 3 and not any(e[0] == "spin" for e in world.log)


@pytest.mark.parametrize("capture", [False, True])
def test_eager_bursts_time_the_device_not_the_host_that_enqueues_them(monkeypatch, capture):
    # Enqueuing a call costs the host 3x the call's device time (a small backward
    # through autograd): events around a plain burst would read 3 D per call.
    # A spin kernel queued before the start event holds the stream until the
    # whole burst is enqueued, so the events see the calls back to back.
    world = FakeWorld(launch_s=3 * D, capture_error="not capturable" if capture else None)
    s = _device(world, monkeypatch, _budget(3), capture=capture)
    assert s.method == "cuda-events-burst"
    assert s.samples_s == [pytest.approx(D)] * 3
    kinds = [e[0] for e in world.log]
    starts = [i for i, e in enumerate(world.log) if e[0] == "record"][
        -6::2
    ]  # the samples' start events
    assert all(kinds[i - 1] == "spin" for i in starts)
    # without the spin the same bursts are host-bound
    monkeypatch.setattr(cudalaunch.Launch, "ahead", lambda self, n: None)
    world = FakeWorld(launch_s=3 * D, capture_error="not capturable" if capture else None)
    s = _device(world, monkeypatch, _budget(3), capture=capture)
    assert min(s.samples_s) > 2.5 * D


def test_cuda_warmup_runs_for_warmup_s_and_estimates_one_call():
    world = FakeWorld()
    torch = fake_torch(world)
    # The host clock moves only when it waits: every 8 calls it synchronises.
    # 8 calls -> 0.5 TICK, 16 -> 1 TICK = warmup_s: stop; then a 5-call burst.
    calls, per_call = cudalaunch.cuda_warmup(torch, world.kernel(D), Budget(warmup_s=TICK),
                                              world.perf_counter)
    assert (calls, per_call) == (16 + 5, D)


def test_latency_flushes_l2_before_each_isolated_call(monkeypatch):
    world = FakeWorld(l2_bytes=1 << 20)
    install(monkeypatch, world)
    s = time_cuda_latency(world.kernel(D), _budget(3), l2_flush=True, clocks=world.read_clock,
                          clock=world.perf_counter)
    assert s.samples_s == [D] * 3 and s.l2_flush and s.protocol == "isolated"
    assert s.method == "cuda-events-per-call" and s.calls_per_sample == 1
    after_warmup = [e[0] for e in world.log][next(i for i, e in enumerate(world.log)
                                                  if e[0] == "flush"):]
    assert after_warmup == ["flush", "sync", "record", "kernel", "record", "event_sync",
                            "clock"] * 3
    flush = next(e for e in world.log if e[0] == "flush")
    assert flush[2] == 4 * (2 * (1 << 20) // 4) / 3e12  # a buffer twice the L2
    assert s.sm_clocks_mhz() == [MAX_MHZ] * 3
    world = FakeWorld()
    install(monkeypatch, world)
    s = time_cuda_latency(world.kernel(D), _budget(3), l2_flush=False, clocks=None,
                          clock=world.perf_counter)
    assert not any(e[0] == "flush" for e in world.log) and not s.l2_flush
    assert s.clock_source == "unavailable"


def test_latency_retakes_samples_under_slowdown(monkeypatch):
    world = FakeWorld()
    install(monkeypatch, world)
    s = time_cuda_latency(world.kernel(D), _budget(3, retake_fraction=1.0, slow_margin=None),
                          clocks=Script({1}),
                          clock=world.perf_counter)
    assert s.retaken == 1 and len(s.samples_s) == 3 and not s.unsteady


def test_sustained_view_takes_min_samples_back_to_back(monkeypatch):
    world = FakeWorld()
    power = PowerControl(gap_ratio=1.0, gap_min_s=0.0, gap_max_s=1.0, warm_s=TICK,
                         sample_s=TICK, sustained=True)
    s = _device(world, monkeypatch, Budget(min_samples=3, max_samples=5, budget_s=10.0,
                                           warmup_s=0.0, stable_ratio=0.0),
                power=power, clocks=world.read_clock)
    assert len(s.samples_s) == 5 and len(s.sustained.samples_s) == 3
    assert s.sustained.samples_s == [D] * 3 and s.sustained.warmup_calls == 0
    d = s.to_dict()
    assert d["sustained"]["protocol"] == "back-to-back" and d["sustained"]["gap_ms"] is None
    assert d["sustained"]["samples_ms"] == [D * 1e3] * 3


@pytest.mark.parametrize("kw,match", [
    ({"protocol": "fixed"}, r"unknown power protocol 'fixed'; allowed: gap-warm, back-to-back"),
    ({"gap_ratio": -1.0}, r"gap_ratio must be a finite number >= 0, not -1.0"),
    ({"warm_s": math.nan}, r"warm_s must be a finite number >= 0, not nan"),
    ({"gap_min_s": 0.5, "gap_max_s": 0.1}, r"gap_min_s \(0.5\) is above gap_max_s \(0.1\)"),
])
def test_power_control_rejects_bad_settings(kw, match):
    with pytest.raises(ValueError, match=match):
        PowerControl(**kw)


def _scripted(times, flagged, budget, *more):
    """power.sample_steady over scripted sample times; samples in ``flagged`` (1-based, in the
    order drawn) read sw_power_cap.  ``more``: the scripts of further captures, taking turns."""
    n, now = [0], [0.0]

    def script(times):
        it = iter(times)
        return lambda: next(it)

    def read():
        n[0] += 1
        return ClockReading(CAPPED_MHZ if n[0] in flagged else MAX_MHZ,
                            SW_POWER_CAP if n[0] in flagged else 0)

    def clock():
        now[0] += 1e-3
        return now[0]

    return power.sample_steady([script(s) for s in (times, *more)], read, budget, clock=clock)


def test_a_capped_sample_on_time_is_kept():
    # A GPU at its power cap: sw_power_cap after nearly every sample, times steady.
    drawn = _scripted(
        [D] * 10,
        set(range(1, 11)),
        Budget(min_samples=5, max_samples=5, budget_s=1.0, warmup_s=0.0, stable_ratio=0.0),
    )
    assert drawn.samples_s == [D] * 5 and drawn.retaken == 0 and not drawn.unsteady_reason
    assert [c.event_bits for c in drawn.clocks] == [SW_POWER_CAP] * 5


def test_a_capped_sample_that_is_slow_is_retaken_and_an_uncapped_slow_one_kept():
    budget = Budget(min_samples=5, max_samples=5, budget_s=1.0, warmup_s=0.0, stable_ratio=0.0)
    # sample 4 is 3 % slow and capped: retaken; sample 6 is 3 % slow, not capped: kept
    times = [D, D, D, 1.03 * D, D, 1.03 * D, D]
    drawn = _scripted(times, {4}, budget)
    assert drawn.rejected_s == [1.03 * D] and drawn.retaken == 1
    assert drawn.samples_s == [D, D, D, D, 1.03 * D]
    # just inside the margin (1.5 % slow) is kept even when capped
    drawn = _scripted([D, D, D, 1.015 * D, D, D], {4}, budget)
    assert drawn.retaken == 0 and drawn.samples_s == [D, D, D, 1.015 * D, D]


def test_with_several_captures_a_sample_is_slow_only_against_its_own_capture():
    budget = Budget(min_samples=8, max_samples=8, budget_s=1.0, warmup_s=0.0, stable_ratio=0.0)
    # capture B runs 2.5 % slower (a per-capture state), every sample capped: B is not retaken
    a, b = [D] * 4, [1.025 * D] * 4
    drawn = _scripted(a, set(range(1, 9)), budget, b)
    assert drawn.retaken == 0 and drawn.samples_s == [D, 1.025 * D] * 4
    # A's 4th sample is 3 % slow against A's own and capped: retaken, from A again
    a = [D, D, D, 1.03 * D, D, D]
    drawn = _scripted(a, {7}, budget, [1.025 * D] * 4)
    assert drawn.rejected_s == [1.03 * D] and drawn.retaken == 1
    assert drawn.samples_s == [D, 1.025 * D] * 4


def test_sampling_ends_on_a_whole_number_of_turns():
    # the budget runs out after 4 samples (1 ms each); with 3 captures it goes on to 6
    budget = Budget(min_samples=4, max_samples=20, budget_s=0.0035, warmup_s=0.0, stable_ratio=0.0)
    drawn = _scripted([D] * 9, set(), budget, [2 * D] * 9, [3 * D] * 9)
    assert drawn.samples_s == [D, 2 * D, 3 * D] * 2
    assert len(_scripted([D] * 9, set(), budget).samples_s) == 4  # one capture: as before
    # but never past max_samples
    capped = dataclasses.replace(budget, max_samples=5)
    assert len(_scripted([D] * 9, set(), capped, [D] * 9, [D] * 9).samples_s) == 5


def test_drifting_capped_samples_end_unsteady():
    budget = Budget(min_samples=4, max_samples=4, budget_s=1.0, warmup_s=0.0, stable_ratio=0.0,
                    retake_fraction=0.5)
    times = [D, D, D] + [D * (1.05 + 0.05 * k) for k in range(10)]
    drawn = _scripted(times, set(range(4, 20)), budget)
    assert drawn.retaken == 3 and drawn.unsteady_reason.startswith("sw_power_cap in 3 of 6 samples")


def test_the_forward_is_captured_on_torch_s_side_stream_a_backward_on_its_own(monkeypatch):
    """A backward runs on its forward's stream: Bench makes that stream current, and the
    graph is captured there; on the default stream (the forward pass) torch picks its own."""
    world = FakeWorld()
    torch = install(monkeypatch, world)

    def device():
        return time_cuda_device(world.kernel(D), _budget(2), graph_target_s=TICK, power=SIMPLE,
                                clocks=None, sleep=world.sleep, clock=world.perf_counter)

    device()
    assert world.capture_streams == [None]
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        s = device()
    assert world.capture_streams == [None, side]
    assert s.method == "cuda-graph"


def test_capture_off_times_eager_calls_between_events_and_says_so(monkeypatch):
    world = FakeWorld()
    s = _device(world, monkeypatch, _budget(3), capture=False)
    assert s.method == "cuda-events-burst"
    assert s.note == "graph capture off (eager calls queued behind a spin kernel)"
    assert s.samples_s == [D] * 3
    assert world.capture_streams == [] and not any(e[0] == "replay" for e in world.log)
