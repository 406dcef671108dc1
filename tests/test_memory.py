"""Peak memory of one call (attnperf.measure.memory): what it subtracts, when it resets,
and why a CPU has none."""

import sys
import types

import pytest

from attnperf.measure import memory
from attnperf.measure.session import measure
from attnperf.measure.timing import Budget
from attnperf.model.catalog import PRESETS


class _Allocator:
    """torch.cuda's allocator statistics, for a call that allocates and frees."""

    def __init__(self, allocated: int):
        self.allocated = self.peak = allocated
        self.log = []

    def alloc(self, n):
        self.allocated += n
        self.peak = max(self.peak, self.allocated)

    def free(self, n):
        self.allocated -= n

    def cuda(self):
        a = self
        return types.SimpleNamespace(
            synchronize=lambda: a.log.append("sync"),
            memory_allocated=lambda: a.allocated,
            max_memory_allocated=lambda: a.peak,
            reset_peak_memory_stats=lambda: (
                a.log.append("reset"),
                setattr(a, "peak", a.allocated),
            ),
        )


def test_cuda_peak_is_the_calls_own_allocation_above_what_was_there(monkeypatch):
    a = _Allocator(allocated=1000)
    a.peak = 5000  # an earlier peak (e.g. the reference) must not count
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=a.cuda()))

    def call():  # a 300-byte temporary, then a 100-byte output that stays
        a.log.append("call")
        a.alloc(300)
        a.alloc(100)
        a.free(300)

    pm = memory.peak_memory(call, "cuda")
    assert (pm.peak_bytes, pm.baseline_bytes, pm.method) == (400, 1000, memory.METHOD_CUDA)
    assert a.log == ["sync", "reset", "call", "sync"]
    assert pm.mib == pytest.approx(400 / 2**20) and pm.available


def test_cpu_peak_is_unavailable_with_the_reason_and_no_call():
    calls = []
    pm = memory.peak_memory(lambda: calls.append(1), "cpu")
    assert pm.peak_bytes is None and not pm.available and calls == []
    assert "unavailable on a CPU" in pm.note and pm.method == "unavailable"


def test_a_cpu_measurement_records_it_unavailable():
    m = measure("tiled", PRESETS["cpu_seed"], "cpu", latency=False,
                budget=Budget(min_samples=2, max_samples=2, budget_s=0.01, warmup_s=0.0))
    assert m.status == "ok" and m.peak_memory == memory.peak_memory(lambda: None, "cpu")
