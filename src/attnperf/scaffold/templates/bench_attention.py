"""asv suite of [[ project|docstring ]]: attention kernels x problems, timed by attnperf (thin classes).

All measuring happens once per commit in ``measure`` (asv ``setup_cache``,
shared by both classes: asv keys the cache by the function's module and line).
Each benchmark then returns numbers from that cache: a forked benchmark
process costs milliseconds, not a fresh `import torch` + CUDA init.

Gated (lower is better; `asv continuous` judges these):
  TimeAttention.track_device_time  -- GPU: CUDA-graph device time per call, each
      sample after an idle gap and warm replays (power state controlled, clocks
      recorded; attnperf.measure.timing); CPU: the measuring thread's CPU time per
      call (time.thread_time) with PyTorch at one thread -- what the kernel
      computed, not time spent waiting for a shared core (wall time at commits
      before it)
  TimeAttention.track_x_over_floor -- that time / the roofline floor time
  Accuracy.track_max_abs_error, Accuracy.track_mean_abs_error -- the checked
      output's error against the float64 reference (seeded inputs); judged at
      their own factor (attnperf.analysis.gate.METRIC_FACTORS), not the timing one
  PeakMemory.track_peak_memory_bytes -- GPU: what one warm call allocates at
      its peak beyond what was allocated before it (inputs excluded); n/a on a CPU
Views (recorded for the site, kept out of verdicts): n/a unless
ATTNPERF_ASV_VIEWS=1, and excluded by the documented `-b '^(?!.*Views)'`.
  LatencyViews.track_latency -- GPU: one isolated call (L2 flushed), CUDA events.
      Includes host dispatch: an A/A pair on the H100 moved it by up to 3.6x,
      so it cannot gate.
  RooflineViews.*  -- TFLOP/s, GB/s, efficiency % (higher is better: asv would
      read a drop as an improvement), regime code.
  SustainedViews.track_sustained_time -- GPU: replays back to back, the power
      state left to the GPU (at its power cap on an H100): what a loop of calls
      sees; it wanders with the clock, so it cannot gate.
  ClockViews.* -- GPU with NVML: track_unsteady (0 = steady; else the NVML
      slowdown bits, e.g. 4 = sw_power_cap, seen in the gated samples after the
      retake budget ran out), track_slowdown_samples, track_sm_clock_mhz.
Training passes (kernel x problem x pass, pass in bwd | fwd+bwd; the forward is
TimeAttention's): gradients dQ, dK, dV checked against float64 autograd first.
  TrainingPass.track_device_time / track_x_over_floor -- gated, as TimeAttention's
      (bwd: torch.autograd.grad of one saved forward, captured in the CUDA graph;
      fwd+bwd: forward and grad together); FLOPs 2.5x / 3.5x the forward's.
  TrainingPassViews.track_tflops / track_efficiency_pct -- views, for the site.

A config that failed its check (a wrong result; or the kernel raised, crashed or
timed out) fails TimeAttention.track_device_time (TrainingPass's for a pass) with one
line -- kernel, problem, what failed, the error figures -- and a one-line summary
after the grid's last failing config; its other benchmarks read n/a.  Unit-less
figures reach asv rounded to 4 significant digits; timings as measured.

History-safe: this file runs against old commits during `asv find`.  It never
raises at import; a commit without the API it needs shows n/a.
"""

import os
import sys

try:
    # Imported here on purpose: with launch_method forkserver this import runs
    # once in the server, and every forked benchmark inherits it (an import of
    # torch is ~1 s on a CPU host, 4.65 s on the GPU host).  No CUDA call here.
    import importlib

    import torch  # noqa: F401

    import attnperf
    _API = getattr(attnperf, "API_VERSION", 0)
    # API 2 moved the suite into attnperf.asv; older commits keep attnperf.suite.
    _suite = importlib.import_module("attnperf.asv.suite" if _API >= 2 else "attnperf.suite")
except Exception as exc:  # noqa: BLE001 - an old or broken commit must not break discovery
    _suite, _API, _IMPORT_ERROR = None, 0, f"{type(exc).__name__}: {exc}"
else:
    _IMPORT_ERROR = ""

NEEDS_API = 1

[% if self_project %]
# attnperf differs here from what `attnperf init` writes: asv runs this file against old
# attnperf commits, whose attnperf cannot read [tool.attnperf], so the grid is literal.
# Static literal params (history keys: never rename, only add).
KERNELS = ["sdpa", "sdpa_cudnn", "sdpa_flash", "sdpa_efficient", "sdpa_math", "naive", "tiled", "triton_flash"]
# Problems by stable id (attnperf presets seed, decode, gqa, causal, mid, train,
# cpu_seed, cpu_decode, cpu_causal, cpu_gqa); tests/test_suite.py keeps these
# lists equal to attnperf.asv.suite's grid.
PROBLEMS = ["b8_h4_sq64_d64_fp16", "b8_h32_kv8_sq1_sk4096_d128_bf16",
            "b2_h32_kv8_sq1024_d128_bf16_causal", "b1_h8_sq512_d64_bf16_causal",
            "b2_h8_sq1024_d64_bf16", "b4_h16_sq2048_d128_bf16",
            "b8_h4_sq64_d64_fp32", "b4_h8_kv2_sq1_sk1024_d64_fp32",
            "b1_h8_sq512_d64_fp32_causal", "b1_h8_kv2_sq256_d64_fp32"]
_GRID = {}
_GRID_ERROR = ""
# The training-pass grid (attnperf presets causal, gqa, train, cpu_causal, cpu_gqa);
# tests/test_suite.py keeps these equal to attnperf.asv.suite's.
PASS_PROBLEMS = ["b1_h8_sq512_d64_bf16_causal", "b2_h32_kv8_sq1024_d128_bf16_causal",
                 "b4_h16_sq2048_d128_bf16", "b1_h8_sq512_d64_fp32_causal",
                 "b1_h8_kv2_sq256_d64_fp32"]
PASSES = ["bwd", "fwd+bwd"]
[% else %]
# The grid is this repository's [tool.attnperf] (the pyproject.toml beside benchmarks/),
# read by the attnperf that runs asv (the same at every commit, so `asv find` over old
# commits measures the same grid).  Kernel and problem names are history keys: add, never rename.
_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GRID = {"project_dir": _PROJECT}
# On a CPU the grid holds only the problems a CPU runs (device_grid; an older attnperf:
# the whole grid), so its tables carry no rows that could only read n/a.
try:
    KERNELS, PROBLEMS = getattr(_suite, "device_grid", _suite.grid)(_PROJECT)
    _GRID_ERROR = ""
except Exception as exc:  # noqa: BLE001 - a bad config fails every benchmark, with its message
    KERNELS, PROBLEMS = ["(no grid)"], ["(no grid)"]
    _GRID_ERROR = _IMPORT_ERROR or f"{type(exc).__name__}: {exc}"
try:  # attnperf before training passes has no pass_grid: the classes show n/a
    PASS_PROBLEMS, PASSES = getattr(_suite, "device_pass_grid", _suite.pass_grid)(_PROJECT)
except Exception:  # noqa: BLE001 - the same reasons as above, or an older attnperf
    PASS_PROBLEMS, PASSES = ["(no grid)"], ["(no grid)"]
[% endif %]


def measure():
    # Always a dict: asv passes no cache argument at all when setup_cache returns None.
    if _GRID_ERROR:
        raise RuntimeError(f"attnperf cannot build this suite: {_GRID_ERROR}")
    if _suite is None:
        return {"__unusable__": f"attnperf cannot be imported at this commit ({_IMPORT_ERROR})"}
    if _API < NEEDS_API:
        return {"__unusable__": f"this commit's attnperf has API_VERSION {_API} < {NEEDS_API}"}
    return _suite.measure_grid(**_GRID)


def _entry(cache, kernel, problem):
    if "__unusable__" in cache:
        raise NotImplementedError(cache["__unusable__"])
    if _suite is None:
        raise RuntimeError(f"attnperf failed to import in the benchmark process: {_IMPORT_ERROR}")
    if f"{kernel}|{problem}" not in cache:
        problem = _older_key(cache, kernel, problem)
    return _suite.entry_for(cache, kernel, problem)


def _checked(fetch, *args):
    """(entry, None); or (None, the exception) for a config that failed its check or did not
    run to the end: the class's track_device_time reports it (:func:`_failure`), once."""
    try:
        return fetch(*args), None
    except NotImplementedError:  # n/a (a RuntimeError too)
        raise
    except (AssertionError, RuntimeError) as exc:
        return None, exc


def _measured(fetch, *args):
    """The entry of a config that ran to a correct result; n/a for the others (their
    failure is reported once, by track_device_time)."""
    entry, failure = _checked(fetch, *args)
    if failure is not None:
        raise NotImplementedError(f"{failure} (reported by track_device_time)")
    return entry


# asv runs each benchmark in a process of its own (asv/benchmark.py), which prints an
# exception's traceback and exits: there a config's failure prints as its one line.
_ASV_PROCESS = os.path.basename(getattr(sys.modules.get("__main__"), "__file__", None) or "") \
    == "benchmark.py"


def _failure(exc, cache, configs, config):
    """``exc`` as it should read in asv's output: its one line, then (after the grid's last
    failing config) the summary of the grid's failures."""
    summary = getattr(_suite, "failure_summary", None)
    line = summary(cache, configs, config) if summary else ""
    if line:
        exc.args = (f"{exc}\n{line}",)
    if _ASV_PROCESS:
        sys.tracebacklimit = 0  # this process ends with this benchmark
    return exc.with_traceback(None)


def _figure(value):
    """A unit-less figure as asv gets it: rounded (attnperf.asv.suite.figure), so asv
    prints 5.224, not 5.223710399461449; an older attnperf: as it is."""
    figure = getattr(_suite, "figure", None)
    return figure(value) if figure else float(value)


def _older_key(cache, kernel, problem_id):
    """Commits before the suite keyed problems by id measured them under preset names."""
    presets = getattr(_suite, "PRESETS", None) or getattr(getattr(attnperf, "shapes", None), "PRESETS", {})
    for name, p in presets.items():
        if getattr(p, "id", None) == problem_id and f"{kernel}|{name}" in cache:
            return name
    return problem_id


def _skip(reason):
    """Skip from inside a benchmark: asv_runner's SkipNotImplemented means n/a;
    a plain NotImplementedError raised there would count as a failure."""
    try:
        from asv_runner.benchmarks.mark import SkipNotImplemented
    except ImportError:  # pragma: no cover - other runners
        return NotImplementedError(reason)
    return SkipNotImplemented(reason)


class _Grid:
    """What every class shares: the grid, and the one per-commit measurement."""

    params = (KERNELS, PROBLEMS)
    param_names = ["kernel", "problem"]
    timeout = 1800
    version = "attnperf-asv-2"
    setup_cache = staticmethod(measure)


class TimeAttention(_Grid):
    unit = "seconds"

    def setup(self, cache, kernel, problem):
        self.entry, self.failure = _checked(_entry, cache, kernel, problem)

    def track_device_time(self, cache, kernel, problem):
        if self.failure is not None:
            configs = [(k, p) for k in KERNELS for p in PROBLEMS]
            raise _failure(self.failure, cache, configs, (kernel, problem))
        return _suite.samples(self.entry["device_time_s"])

    def track_x_over_floor(self, cache, kernel, problem):
        return _over_floor(self.entry, self.failure)

    track_x_over_floor.unit = "x floor"


def _over_floor(entry, failure):
    """Samples of device time / roofline floor time (n/a without a floor, or for a config
    that failed: track_device_time reports it)."""
    if failure is not None:
        raise _skip("failed: reported by track_device_time")
    floor = entry.get("floor_s")
    if not floor:
        raise _skip("no roofline ceiling for this device")
    ratios = getattr(_suite, "over_floor_samples", None)  # rounded, for asv's tables
    return ratios(entry) if ratios else _suite.samples([t / floor for t in entry["device_time_s"]])


# Deterministic metrics of one measured entry.  Functions of the entry, so that a
# class with more parameters (e.g. a pass) can return them for its own entry.
def error_figure(entry, figure):
    """``figure`` (max_abs_error, mean_abs_error) of the checked output vs float64."""
    value = (entry.get("correctness") or {}).get(figure)
    if value is None:
        raise _skip(f"no {figure} recorded for this entry")
    return _figure(value)


def peak_memory_bytes(entry):
    """Peak bytes one call allocated (n/a where this commit or device records none)."""
    value = entry.get("peak_memory_bytes")
    if value is None:
        raise _skip(entry.get("peak_memory_note") or "this commit's attnperf records no peak memory")
    return float(value)


class Accuracy(_Grid):
    unit = "abs error"

    def setup(self, cache, kernel, problem):
        self.entry = _measured(_entry, cache, kernel, problem)

    def track_max_abs_error(self, cache, kernel, problem):
        return error_figure(self.entry, "max_abs_error")

    def track_mean_abs_error(self, cache, kernel, problem):
        return error_figure(self.entry, "mean_abs_error")


class PeakMemory(_Grid):
    unit = "bytes"

    def setup(self, cache, kernel, problem):
        self.entry = _measured(_entry, cache, kernel, problem)
        if self.entry.get("peak_memory_bytes") is None:
            raise NotImplementedError(self.entry.get("peak_memory_note")
                                      or "this commit's attnperf records no peak memory")

    def track_peak_memory_bytes(self, cache, kernel, problem):
        return peak_memory_bytes(self.entry)


def _views_entry(cache, kernel, problem):
    if os.environ.get("ATTNPERF_ASV_VIEWS") != "1":
        raise NotImplementedError("views are recorded for the site only (set ATTNPERF_ASV_VIEWS=1)")
    return _measured(_entry, cache, kernel, problem)


class LatencyViews(_Grid):
    unit = "seconds"

    def setup(self, cache, kernel, problem):
        self.entry = _views_entry(cache, kernel, problem)
        if not self.entry.get("latency_s"):
            raise NotImplementedError("latency is a GPU measurement")

    def track_latency(self, cache, kernel, problem):
        return _suite.samples(self.entry["latency_s"])


class RooflineViews(_Grid):

    def setup(self, cache, kernel, problem):
        self.entry = _views_entry(cache, kernel, problem)
        if "floor_s" not in self.entry:
            raise NotImplementedError("no roofline ceiling for this device")

    def track_tflops(self, cache, kernel, problem):
        return _figure(self.entry["tflops"])

    track_tflops.unit = "TFLOP/s"

    def track_bandwidth_gb_s(self, cache, kernel, problem):
        return _figure(self.entry["gb_s"])

    track_bandwidth_gb_s.unit = "GB/s"

    def track_efficiency_pct(self, cache, kernel, problem):
        return _figure(self.entry["efficiency_pct"])

    track_efficiency_pct.unit = "%"

    def track_regime_code(self, cache, kernel, problem):
        return float(_suite.REGIME_CODES[self.entry["regime"]])

    track_regime_code.unit = "0=latency 1=memory 2=compute"


class SustainedViews(_Grid):
    unit = "seconds"

    def setup(self, cache, kernel, problem):
        self.entry = _views_entry(cache, kernel, problem)
        if not self.entry.get("sustained_time_s"):
            raise NotImplementedError("the sustained figure is a GPU measurement "
                                      "(attnperf with power-state control)")

    def track_sustained_time(self, cache, kernel, problem):
        return _suite.samples(self.entry["sustained_time_s"])


class ClockViews(_Grid):

    def setup(self, cache, kernel, problem):
        self.entry = _views_entry(cache, kernel, problem)
        if self.entry.get("clock_source") != "nvml":
            raise NotImplementedError("GPU clocks unavailable (a CPU, no NVML, or a commit "
                                      "before clock-aware samples)")

    def track_unsteady(self, cache, kernel, problem):
        return float(self.entry["slowdown_bits"]) if self.entry["unsteady"] else 0.0

    track_unsteady.unit = "NVML slowdown bits (0 = steady)"

    def track_slowdown_samples(self, cache, kernel, problem):
        return float(self.entry["slowdown_samples"])

    track_slowdown_samples.unit = "samples"

    def track_sm_clock_mhz(self, cache, kernel, problem):
        mhz = self.entry.get("sm_clock_median_mhz")
        if mhz is None:
            raise _skip("NVML read no SM clock")
        return _figure(mhz)

    track_sm_clock_mhz.unit = "MHz"


def _pass_entry(cache, kernel, problem, mode, views=False):
    if views and os.environ.get("ATTNPERF_ASV_VIEWS") != "1":
        raise NotImplementedError("views are recorded for the site only (set ATTNPERF_ASV_VIEWS=1)")
    if "__unusable__" in cache:
        raise NotImplementedError(cache["__unusable__"])
    pass_key = getattr(_suite, "pass_key", None)
    if pass_key is None:
        raise NotImplementedError("this commit's attnperf measures the forward pass only")
    if mode == getattr(_suite, "NO_PASSES", None):
        raise NotImplementedError("no training passes configured ([tool.attnperf] passes)")
    return _suite.entry_for(cache, kernel, pass_key(problem, mode))


class _PassGrid:
    """Training passes: the same per-commit measurement, a third parameter."""

    params = (KERNELS, PASS_PROBLEMS, PASSES)
    param_names = ["kernel", "problem", "pass"]
    timeout = 1800
    version = "attnperf-asv-2"
    setup_cache = staticmethod(measure)


class TrainingPass(_PassGrid):
    unit = "seconds"

    def setup(self, cache, kernel, problem, mode):
        self.entry, self.failure = _checked(_pass_entry, cache, kernel, problem, mode)

    def track_device_time(self, cache, kernel, problem, mode):
        if self.failure is not None:
            key = _suite.pass_key
            configs = [(k, key(p, m)) for k in KERNELS for p in PASS_PROBLEMS for m in PASSES]
            raise _failure(self.failure, cache, configs, (kernel, key(problem, mode)))
        return _suite.samples(self.entry["device_time_s"])

    def track_x_over_floor(self, cache, kernel, problem, mode):
        return _over_floor(self.entry, self.failure)

    track_x_over_floor.unit = "x floor"


class TrainingPassViews(_PassGrid):

    def setup(self, cache, kernel, problem, mode):
        self.entry = _measured(_pass_entry, cache, kernel, problem, mode, True)
        if "floor_s" not in self.entry:
            raise NotImplementedError("no roofline ceiling for this device")

    def track_tflops(self, cache, kernel, problem, mode):
        return _figure(self.entry["tflops"])

    track_tflops.unit = "TFLOP/s"

    def track_efficiency_pct(self, cache, kernel, problem, mode):
        return _figure(self.entry["efficiency_pct"])

    track_efficiency_pct.unit = "%"
