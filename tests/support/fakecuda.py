"""A fake CUDA world for CPU tests of attnperf's GPU timing code.

One clock for host and device, in seconds.  The host only moves it by
sleeping and by waiting (``synchronize``); kernel launches are asynchronous:
each kernel starts when the stream is free (or now, if it is idle) and runs for
its duration.  CUDA events take the time at which the stream reaches them, so
``elapsed_time`` is exact device arithmetic -- with binary-fraction durations
the tests compare floats with ``==``.

Optional physics for the power-state tests (off by default):

* ``idle_drop_s`` / ``ramp_s`` / ``ramp_factor``: after the device idled at
  least ``idle_drop_s``, its first ``ramp_s`` of work runs ``ramp_factor``
  times slower (the clock ramping up from idle);
* ``slow_until_s`` / ``slow_factor``: kernels that start before ``slow_until_s``
  run ``slow_factor`` times slower (a process's start-up transient);
* ``cap_after_s`` / ``cool_s`` / ``cap_factor``: after ``cap_after_s`` of work
  without an idle spell of at least ``cool_s``, kernels run ``cap_factor``
  times slower (the power cap), and :meth:`FakeWorld.read_clock` reports
  ``sw_power_cap``.

Installed with :func:`install` as ``sys.modules["torch"]`` for one test.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Sequence
from contextlib import contextmanager

from attnperf.model.records import ClockReading

TICK = 2.0 ** -10  # ~0.977 ms
MAX_MHZ, CAPPED_MHZ, LOW_MHZ = 1980, 1600, 345
SW_POWER_CAP = 0x4


class FakeWorld:
    def __init__(self, *, idle_drop_s: float | None = None, ramp_s: float = 0.0,
                 ramp_factor: float = 2.0, cap_after_s: float | None = None,
                 cool_s: float = 0.0, cap_factor: float = 1.25,
                 capture_error: str | None = None, l2_bytes: int = 50 << 20,
                 uuid: str | None = "8f1d-test", launch_s: float = 0.0,
                 capture_failures: int | None = None, slow_until_s: float = 0.0,
                 slow_factor: float = 1.0, capture_factors: Sequence[float] = (1.0,)) -> None:
        self.now = 0.0          # host time
        self.free_at = 0.0      # when the stream has done everything enqueued
        self.last_end = 0.0     # when the last kernel ended (idle spells are measured from it)
        self.log: list[tuple] = []
        self.capturing: FakeGraph | None = None
        self.capture_error = capture_error
        # how many captures fail with capture_error (None: all of them)
        self.capture_failures = capture_failures
        self.launch_s = launch_s  # host time to enqueue one eager kernel
        self.capture_streams: list[FakeStream | None] = []  # the stream= of each capture
        self.l2_bytes, self.uuid = l2_bytes, uuid
        self.idle_drop_s, self.ramp_s, self.ramp_factor = idle_drop_s, ramp_s, ramp_factor
        self.cap_after_s, self.cool_s, self.cap_factor = cap_after_s, cool_s, cap_factor
        self._since_idle = 0.0  # work since the clock dropped (ramp)
        self._ramping = False
        self._busy = 0.0        # work since the last cooling idle spell (power cap)
        self.capped = False     # whether the last kernel ran under the cap
        self.kernels = 0
        # a start-up transient: kernels that start before slow_until_s run slow_factor slower
        self.slow_until_s, self.slow_factor = slow_until_s, slow_factor
        # a per-capture state: the n-th graph captured runs capture_factors[n % len] slower
        self.capture_factors, self.captures = tuple(capture_factors), 0

    # ------------------------------------------------------------ host side
    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.log.append(("sleep", seconds))
        self.now += seconds

    def synchronize(self) -> None:
        self.log.append(("sync",))
        self.now = max(self.now, self.free_at)

    # ---------------------------------------------------------- device side
    def _start(self) -> float:
        return max(self.now, self.free_at)

    def run(self, seconds: float, label: str = "kernel") -> None:
        """Enqueue one kernel of ``seconds`` base duration (or record it into a graph)."""
        if self.capturing is not None:
            self.capturing.nodes.append((seconds, label))
            return
        start = self._start()
        idle = start - self.last_end
        if self.idle_drop_s is not None and idle >= self.idle_drop_s:
            self._ramping, self._since_idle = True, 0.0
        if self.cap_after_s is not None and idle >= self.cool_s:
            self._busy = 0.0
        factor = 1.0
        if self._ramping and self._since_idle < self.ramp_s:
            factor = self.ramp_factor
        self.capped = self.cap_after_s is not None and self._busy >= self.cap_after_s
        if self.capped:
            factor = max(factor, self.cap_factor)
        if start < self.slow_until_s:
            factor = max(factor, self.slow_factor)
        duration = seconds * factor
        self._since_idle += duration
        self._busy += duration
        self.free_at = self.last_end = start + duration
        self.kernels += 1
        self.log.append((label, start, duration))

    def kernel(self, seconds: float, label: str = "kernel") -> Callable[[], None]:
        def call() -> None:
            if self.capturing is None:
                self.now += self.launch_s  # the host enqueues it (a graph replay does not)
            self.run(seconds, label)
        return call

    def spin(self, cycles: int) -> None:
        """``torch.cuda._sleep``: the fake SM counts 1e9 cycles a second."""
        self.log.append(("spin", cycles))
        self.run(cycles / 1e9, "spin")

    def read_clock(self) -> ClockReading:
        """What NVML would say right after the last kernel."""
        self.log.append(("clock",))
        if self.capped:
            return ClockReading(CAPPED_MHZ, SW_POWER_CAP)
        if self._ramping and self._since_idle < self.ramp_s:
            return ClockReading(LOW_MHZ, 0)
        return ClockReading(MAX_MHZ, 0)

    def kernel_log(self, label: str = "kernel") -> list[tuple[float, float]]:
        return [(e[1], e[2]) for e in self.log if e[0] == label]


class FakeEvent:
    def __init__(self, world: FakeWorld, enable_timing: bool = False) -> None:
        assert enable_timing, "attnperf times with enable_timing=True events"
        self.world, self.t = world, None

    def record(self) -> None:
        w = self.world
        assert w.capturing is None, "no event is recorded inside a graph capture"
        self.t = w._start()
        w.free_at = self.t
        w.log.append(("record", self, self.t))

    def synchronize(self) -> None:
        self.world.log.append(("event_sync", self))
        self.world.now = max(self.world.now, self.t)

    def elapsed_time(self, other: FakeEvent) -> float:
        return (other.t - self.t) * 1e3  # milliseconds, like torch


class FakeGraph:
    def __init__(self, world: FakeWorld) -> None:
        self.world, self.nodes = world, []
        self.replays = 0
        self.factor = 1.0  # set when it is captured (FakeWorld.capture_factors)

    def replay(self) -> None:
        self.replays += 1
        self.world.log.append(("replay", self))
        for seconds, label in self.nodes:
            self.world.run(seconds * self.factor, label)


class FakeStream:
    def __init__(self, world: FakeWorld) -> None:
        self.world = world

    def wait_stream(self, other: FakeStream) -> None:
        pass  # one stream in this world: everything is already ordered


class FakeBuffer:
    """What ``torch.empty`` returns: zero_() is a device kernel (the L2 flush)."""

    def __init__(self, world: FakeWorld, numel: int) -> None:
        self.world, self.numel = world, numel

    def zero_(self) -> None:
        self.world.run(4 * self.numel / 3e12, "flush")  # 3 TB/s


def fake_torch(world: FakeWorld) -> types.ModuleType:
    torch = types.ModuleType("torch")
    cuda = types.SimpleNamespace()
    cuda.Event = lambda enable_timing=False: FakeEvent(world, enable_timing)
    cuda.synchronize = world.synchronize
    cuda.Stream = lambda: FakeStream(world)
    default = FakeStream(world)
    world.current_stream = default
    cuda.default_stream = lambda: default
    cuda.current_stream = lambda: world.current_stream
    cuda.CUDAGraph = lambda: FakeGraph(world)
    cuda.current_device = lambda: 0
    cuda.get_device_properties = lambda i: types.SimpleNamespace(
        L2_cache_size=world.l2_bytes, uuid=world.uuid, name="Fake GPU")

    @contextmanager
    def stream(s):
        before, world.current_stream = world.current_stream, s
        try:
            yield s
        finally:
            world.current_stream = before

    @contextmanager
    def graph(g, stream=None):
        world.capture_streams.append(stream)  # None: torch's own side stream
        if world.capture_error and world.capture_failures != 0:
            if world.capture_failures is not None:
                world.capture_failures -= 1
            raise RuntimeError(world.capture_error + "\nsecond line of the CUDA error")
        world.capturing = g
        g.factor = world.capture_factors[world.captures % len(world.capture_factors)]
        world.captures += 1
        try:
            yield g
        finally:
            world.capturing = None

    cuda.stream, cuda.graph = stream, graph
    cuda._sleep = world.spin
    torch.cuda = cuda
    torch.int32 = "int32"
    torch.empty = lambda n, dtype=None, device=None: FakeBuffer(world, n)
    return torch


def install(monkeypatch, world: FakeWorld) -> types.ModuleType:
    torch = fake_torch(world)
    monkeypatch.setitem(__import__("sys").modules, "torch", torch)
    return torch
