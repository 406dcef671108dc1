"""Fault isolation: measure/worker.py, Session(isolate=True), and `attnperf run`
under kernels that hang, crash, exit, or are stopped by SIGINT/SIGTERM.

The fault kernels live in tests/faultkernels.py; the sweeps here register them
through the kernel API (in-process CLI) or load them by reference in a real
`attnperf run` subprocess.  Problems are tiny and limits short.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import faultkernels
from attnperf.errors import PluginError, UnknownNameError
from attnperf.io.report import SCHEMA_FILE
from attnperf.kernels.registry import ENV_MODULES, REGISTRY, Registry
from attnperf.measure.options import MeasureOptions, options_of
from attnperf.measure.session import Session, default_timeout_s
from attnperf.measure.timing import Budget
from attnperf.measure.worker import Crashed, Done, TimedOut, Worker, describe_exit

TESTS = Path(__file__).resolve().parent
LIMIT_S = 3  # per config in the fault sweeps: > a tiny config (~0.3 s), < fault_slow's calls


def validate(data: dict) -> None:
    import jsonschema

    jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text())).validate(data)


# ------------------------------------------------------ measure/worker.py ---
# The child runs faultkernels.worker_setup / worker_handle (importable, cheap
# to import where the server preloaded attnperf's measuring modules).
PRELOAD = ["attnperf.measure.session"]


@pytest.fixture
def worker():
    w = Worker(faultkernels.worker_setup, "T", faultkernels.worker_handle, preload=PRELOAD)
    yield w
    w.close()


def test_worker_keeps_one_child_across_jobs(worker):
    a, b = worker.run(("echo", 1), 30), worker.run(("echo", 2), 30)
    assert isinstance(a, Done) and isinstance(b, Done)
    assert a.value[:3] == ("T", 1, 1) and b.value[:3] == ("T", 2, 2)
    assert a.value[3] == b.value[3] != os.getpid()
    assert worker.started == 1


@pytest.mark.parametrize("job,words", [
    (("exit", 3), "exited with code 3"),
    (("exit", 0), "exited with code 0"),
    (("signal", signal.SIGSEGV), "was killed by signal 11 (SIGSEGV)"),
    (("signal", signal.SIGKILL), "was killed by signal 9 (SIGKILL)"),
])
def test_a_child_that_dies_is_crashed_and_replaced(worker, job, words):
    first = worker.run(("echo", 0), 30).value[3]
    out = worker.run(job, 30)
    assert isinstance(out, Crashed) and out.reason == f"the worker process {words}"
    again = worker.run(("echo", 1), 30)
    assert isinstance(again, Done) and again.value[2] == 1  # a fresh child: its first job
    assert again.value[3] != first and worker.started == 2


def test_a_child_past_the_limit_is_killed_and_replaced(worker):
    pid = worker.run(("echo", 0), 30).value[3]
    t0 = time.monotonic()
    out = worker.run(("hang", None), 0.5)
    assert time.monotonic() - t0 < 10
    assert isinstance(out, TimedOut) and "0.5 s limit" in out.reason and "killed" in out.reason
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert isinstance(worker.run(("echo", 1), 30), Done) and worker.started == 2


def test_a_retiring_child_answers_then_is_replaced(worker):
    pid = worker.run(("retire", None), 30).value
    nxt = worker.run(("echo", 1), 30).value
    assert nxt[3] != pid and worker.started == 2


def test_a_fork_copy_of_the_child_never_answers_and_exits(worker):
    (child, copy), again = worker.run(("fork", None), 30).value, worker.run(("echo", 1), 30)
    assert copy > 0 and child == again.value[3]  # the child's answers, in order
    assert again.value[:3] == ("T", 1, 2) and worker.started == 1
    deadline = time.monotonic() + 10  # the copy exits as it returns; its parent reaps it later
    while _alive(copy) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(copy)


def test_a_child_that_dies_at_start_is_crashed(monkeypatch):
    w = Worker(os._exit, 7, faultkernels.worker_handle, preload=PRELOAD)  # setup exits with 7
    out = w.run(("echo", 0), 30)
    w.close()
    assert isinstance(out, Crashed)
    assert out.reason == "the worker process exited with code 7 before it was ready"


def test_describe_exit():
    assert describe_exit(-15) == "was killed by signal 15 (SIGTERM)"
    assert describe_exit(2) == "exited with code 2"
    assert describe_exit(None) == "is still running"


def test_default_timeout_derives_from_the_budget():
    assert default_timeout_s(Budget()) == 60.0
    assert default_timeout_s(Budget(budget_s=5.0, warmup_s=0.05)) == pytest.approx(202.0)


# ------------------------------------------------- the kernel references ----
def test_kernel_modules_from_the_environment(monkeypatch):
    monkeypatch.setenv(ENV_MODULES, " faultkernels:KERNELS ,")
    reg = Registry()
    assert set(faultkernels.NAMES) <= set(reg.names())
    assert reg.references() == ["faultkernels:KERNELS"]
    assert sorted(reg.add_reference("faultkernels:KERNELS")) == sorted(faultkernels.NAMES)
    assert reg.references() == ["faultkernels:KERNELS"]  # once per reference


@pytest.mark.parametrize("ref", ["no_such_module_xyz:K", "faultkernels:NOPE", "faultkernels",
                                 "faultkernels:SLOW_CALL_S"])
def test_a_bad_kernel_reference_names_itself(monkeypatch, ref):
    monkeypatch.setenv(ENV_MODULES, ref)
    with pytest.raises(PluginError, match=re.escape(ref)):
        Registry().names()


# ---------------------------------------------- the session, isolated -------
def test_a_closure_kernel_cannot_reach_the_worker_and_says_why(temp_kernel, tiny_problem):
    temp_kernel("test_closure", lambda q, k, v, p: q)
    with Session("cpu", isolate=True) as s:
        m = s.measure("test_closure", tiny_problem, budget=Budget(min_samples=3, budget_s=0.01))
        ok = s.measure("sdpa", tiny_problem, budget=Budget(min_samples=3, budget_s=0.01))
    assert m.status == "error"
    assert "not known in the worker process" in m.reason and ENV_MODULES in m.reason
    assert ok.status == "ok"


def test_unknown_kernel_is_the_callers_error(tiny_problem):
    with Session("cpu", isolate=True) as s, pytest.raises(UnknownNameError):
        s.measure("no_such_kernel", tiny_problem)


THREE = Budget(min_samples=3, max_samples=3, budget_s=0.01, warmup_s=0.0)


def test_measure_options_travel_as_one_object_and_keywords_override_them():
    base = MeasureOptions(budget=THREE, latency=False, seed=7)
    assert options_of(base) is base and options_of(None) == MeasureOptions()
    assert options_of(base, seed=None, timeout_s=5.0) == MeasureOptions(THREE, False, True, 7, 5.0)
    with pytest.raises(TypeError):
        options_of(base, budget_s=0.1)


def test_options_reach_the_worker_and_their_limit_comes_first(fault_kernels, tiny_problem):
    with Session("cpu", isolate=True, timeout_s=600) as s:
        m = s.measure("sdpa", tiny_problem, MeasureOptions(budget=THREE, latency=False))
        hung = s.measure(
            "fault_hang", tiny_problem, MeasureOptions(budget=THREE, timeout_s=LIMIT_S)
        )
    assert m.status == "ok" and len(m.device_time.samples_s) == 3
    assert hung.status == "timed_out" and f"the {LIMIT_S} s limit" in hung.reason


# ------------------------------------------------- `attnperf run` sweeps ----
@pytest.fixture
def fault_kernels():
    """Every fault kernel, registered through the kernel API by reference (as a plugin
    would be); the worker processes load the same reference."""
    REGISTRY.add_reference("faultkernels:KERNELS")  # once per process
    return faultkernels.NAMES


EXPECTED = {  # kernel -> (status, words in the reason)
    "sdpa": ("ok", ""),
    "fault_hang": ("timed_out", f"no result within the {LIMIT_S} s limit per config"),
    "fault_segfault": ("crashed", "killed by signal 11 (SIGSEGV)"),
    "fault_exit3": ("crashed", "exited with code 3"),
    "fault_os_exit0": ("crashed", "exited with code 0"),
    "fault_report_error": ("error", "ReportError: raised by a kernel"),
    "fault_zero_q": ("failed", "kernel modified its inputs (q)"),
    "fault_nan_after_first": ("failed", "wrong result in a timed call: "),
    "fault_mutate_later": ("failed", "kernel modified its inputs (v) in a timed call"),
    "fault_slow": ("timed_out", f"no result within the {LIMIT_S} s limit per config"),
    "naive": ("ok", ""),
}


def test_every_fault_is_recorded_and_the_sweep_goes_on(cli, tmp_path, tiny_run_args,
                                                       fault_kernels):
    out = tmp_path / "r.json"
    t0 = time.monotonic()
    res = cli("run", *tiny_run_args, "--kernel", ",".join(EXPECTED), "--timeout-s", LIMIT_S,
              "--output", out)
    took = time.monotonic() - t0
    assert res.code == 1, res.err
    data = json.loads(out.read_text())
    validate(data)
    got = {r["kernel_name"]: r for r in data["results"]}
    assert list(got) == list(EXPECTED)
    for kernel, (status, words) in EXPECTED.items():
        assert (got[kernel]["status"], words in got[kernel]["reason"]) == (status, True), \
            (kernel, got[kernel]["reason"])
    assert got["fault_nan_after_first"]["correctness"]["nonfinite"] > 0
    assert got["fault_zero_q"]["correctness"]["modified_inputs"] == ["q"]
    for r in got.values():  # nothing wrong or dead was timed
        assert (r["performance"] is not None) is (r["status"] == "ok"), r["id"]
    assert data["summary"] == {"ok": 2, "failed": 3, "error": 1, "crashed": 3, "timed_out": 2,
                               "skipped": 0, "unavailable": 0, "total": 11}
    assert data["interrupted"] is False and data["not_run"] == []
    assert "3 crashed, 2 timed out" in res.err
    assert took < 2 * LIMIT_S + 60  # two limits, not a stalled run


def test_asv_suite_isolates_the_same_way(fault_kernels):
    from attnperf.asv import suite
    from attnperf.model.catalog import PRESETS

    pid = PRESETS["cpu_seed"].id
    cache = suite.measure_grid(kernels=["fault_segfault", "fault_hang", "tiled"], problems=[pid],
                               device_name="cpu", budget=Budget(min_samples=7, budget_s=0.05),
                               timeout_s=LIMIT_S)
    assert cache[f"fault_segfault|{pid}"]["status"] == "crashed"
    assert cache[f"fault_hang|{pid}"]["status"] == "timed_out"
    assert suite.entry_for(cache, "tiled", pid)["device_time_s"]
    with pytest.raises(RuntimeError, match="fault_segfault/.* crashed: the worker process was "
                                           "killed by signal 11"):
        suite.entry_for(cache, "fault_segfault", pid)
    with pytest.raises(RuntimeError, match="fault_hang/.* timed out: no result within"):
        suite.entry_for(cache, "fault_hang", pid)


def test_timeout_flag_must_be_positive(cli, tiny_run_args):
    res = cli("run", *tiny_run_args, "--timeout-s", "0")
    assert res.code == 2 and len(res.err_lines) == 1
    assert res.err_lines[0].startswith("error: ") and "--timeout-s must be a positive number" \
        in res.err_lines[0] and res.err_lines[0].endswith("got 0")


# ------------------------------------- signals to a real `attnperf run` -----
def _alive(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "zombie" not in status


def _wait_for(predicate, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _start_run(pidfile: Path, *argv, **popen) -> subprocess.Popen:
    """A real `attnperf run` that loads the fault kernels by reference."""
    env = dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]),
        ATTNPERF_TEST_PIDFILE=str(pidfile),
        **{ENV_MODULES: "faultkernels:KERNELS"},
    )
    return subprocess.Popen([sys.executable, "-m", "attnperf", "run", *map(str, argv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            **popen)


@pytest.mark.parametrize("signum,code,group", [
    (signal.SIGINT, 130, True),    # Ctrl-C: the whole foreground process group
    (signal.SIGTERM, 143, False),  # kill PID: the parent alone
])
def test_a_signal_mid_sweep_keeps_a_partial_report(tmp_path, tiny_run_args, signum, code, group):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out, pidfile = out_dir / "r.json", tmp_path / "worker.pid"
    proc = _start_run(pidfile, *tiny_run_args, "--kernel", "sdpa,fault_hang,naive",
                      "--timeout-s", "300", "--output", out, start_new_session=True)
    try:
        # The sweep is inside fault_hang once it wrote its pid; sdpa is on disk by then.
        worker_pid = int(_wait_for(lambda: pidfile.exists() and pidfile.read_text(), 120,
                                   "the worker to enter fault_hang"))
        (os.killpg(proc.pid, signum) if group else proc.send_signal(signum))
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    data = json.loads(out.read_text())
    validate(data)
    assert data["interrupted"] is True
    assert [r["id"] for r in data["results"]] == ["sdpa/b1_h2_sq16_d8_fp32"]
    assert data["results"][0]["status"] == "ok"
    assert data["not_run"] == ["fault_hang/b1_h2_sq16_d8_fp32", "naive/b1_h2_sq16_d8_fp32"]
    assert os.listdir(out_dir) == ["r.json"]  # no temporaries
    assert ["sdpa", "b1_h2_sq16_d8_fp32", "ok"] in [ln.split()[:3] for ln in stdout.splitlines()]
    assert "1 of 3 configs measured" in stderr
    assert "fault_hang: hanging now" in stderr and "hanging" not in stdout
    _wait_for(lambda: not _alive(worker_pid), 10, f"worker {worker_pid} to be gone")


def test_interrupt_before_anything_was_measured_writes_nothing(tmp_path, tiny_run_args):
    pidfile = tmp_path / "worker.pid"
    out = tmp_path / "r.json"
    out.write_text("an earlier report")
    proc = _start_run(pidfile, *tiny_run_args, "--kernel", "fault_hang,sdpa", "--output", out)
    try:
        _wait_for(lambda: pidfile.exists() and pidfile.read_text(), 120, "fault_hang")
        proc.send_signal(signal.SIGTERM)
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143
    assert "0 of 2 configs measured; nothing written" in stderr
    assert out.read_text() == "an earlier report"
    assert sorted(os.listdir(tmp_path)) == ["r.json", "worker.pid"]
