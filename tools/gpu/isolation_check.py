"""GPU proof for issue 12 items 2, 5, 6 (isolation, interruption, correctness).

Run on a CUDA host from the repository root:  python tools/gpu/isolation_check.py
Prints, with numbers:
  1. a sweep mixing CUDA faults with good kernels: a device-side assert (a CUDA
     error that poisons its context), a hang, a segfault, a kernel zeroing q,
     one right only on its first call (caught in a CUDA-graph replay) -- each
     recorded, and every good kernel after them measured ok in a fresh worker;
  2. SIGINT mid-sweep: exit 130, a partial report marked interrupted, the worker gone;
  3. device time isolated vs --in-process (same kernel, alternating), and the
     cost of keeping the last output (Bench.call) vs a bare call in one process;
  4. the wall time of a worker start on this host.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

from attnperf.kernels.spec import KernelSpec

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent


# ------------------------------------------------------ CUDA fault kernels --
def fault_cuda_assert(q, k, v, *, causal, scale):
    """An out-of-bounds gather: a device-side assert, a sticky CUDA error."""
    idx = torch.full((1,), 1 << 20, device=q.device, dtype=torch.long)
    q.flatten()[idx].sum().item()
    return q


KERNELS = [KernelSpec(name="fault_cuda_assert", fn=fault_cuda_assert, family="test-fault",
                      description="device-side assert")]


def env() -> dict:
    path = os.pathsep.join([str(HERE), str(REPO / "tests"), os.environ.get("PYTHONPATH", "")])
    return dict(os.environ, PYTHONPATH=path,
                ATTNPERF_KERNEL_MODULES="isolation_check:KERNELS,faultkernels:KERNELS")


def attnperf(*args, **kw):
    return subprocess.run([sys.executable, "-m", "attnperf", "run", "--device", "cuda", *args],
                          capture_output=True, text=True, env=env(), **kw)


TRAIN = ["--batch", "4", "--heads", "16", "--seq", "2048", "--dim", "128", "--dtype", "bf16"]
SEED = ["--batch", "8", "--heads", "4", "--seq", "64", "--dim", "64", "--dtype", "fp16"]


def sweep(tmp: Path) -> None:
    print("== 1. faults and good kernels in one sweep (4,16,2048,128 bf16, --timeout-s 20)")
    kernels = ["sdpa", "fault_cuda_assert", "sdpa_flash", "fault_hang", "sdpa_cudnn",
               "fault_segfault", "sdpa_efficient", "fault_zero_q", "fault_nan_after_first",
               "fault_report_error", "sdpa"]
    out = tmp / "faults.json"
    t0 = time.perf_counter()
    res = attnperf(*TRAIN, "--kernel", ",".join(kernels), "--timeout-s", "20", "-o", str(out))
    took = time.perf_counter() - t0
    print(f"exit {res.returncode}, {took:.1f} s wall")
    data = json.loads(out.read_text())
    for r in data["results"]:
        perf = r["performance"]
        t = f"{perf['median_time_ms']:.4f} ms" if perf else "-"
        print(f"  {r['kernel_name']:24s} {r['status']:10s} {t:>12s}  {r['reason'][:110]}")
    print("  summary:", data["summary"])
    print(res.stderr.strip().splitlines()[-1])


def interrupt(tmp: Path) -> None:
    print("== 2. SIGINT while a kernel hangs on the GPU")
    out, pidfile = tmp / "partial.json", tmp / "worker.pid"
    e = dict(env(), ATTNPERF_TEST_PIDFILE=str(pidfile))
    proc = subprocess.Popen([sys.executable, "-m", "attnperf", "run", "--device", "cuda", *SEED,
                             "--kernel", "sdpa,fault_hang,sdpa_flash", "-o", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=e)
    deadline = time.time() + 300
    while not (pidfile.exists() and pidfile.read_text()) and time.time() < deadline:
        time.sleep(0.1)
    pid = int(pidfile.read_text())
    t0 = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    gone = not Path(f"/proc/{pid}").exists()
    data = json.loads(out.read_text())
    print(f"exit {proc.returncode} after {time.perf_counter() - t0:.2f} s; interrupted="
          f"{data['interrupted']}, results={[r['id'] for r in data['results']]}, "
          f"not_run={data['not_run']}; worker {pid} gone: {gone}; files: {os.listdir(tmp)}")
    print(stderr.strip().splitlines()[-1])


def median_ms(report: Path, kernel: str) -> float:
    data = json.loads(report.read_text())
    return next(r["performance"]["median_time_ms"] for r in data["results"]
                if r["kernel_name"] == kernel)


def overhead(tmp: Path) -> None:
    print("== 3. device time: isolated vs --in-process (alternating, 3 rounds)")
    for name, shape in (("train", TRAIN), ("seed", SEED)):
        rows = {"isolated": [], "in-process": []}
        for _ in range(3):
            for mode, extra in (("isolated", []), ("in-process", ["--in-process"])):
                out = tmp / f"o-{name}-{mode}.json"
                t0 = time.perf_counter()
                attnperf(*shape, "--kernel", "sdpa", "--no-latency", "-o", str(out), *extra)
                rows[mode].append((median_ms(out, "sdpa"), time.perf_counter() - t0))
        for mode, vals in rows.items():
            print(f"  {name:5s} {mode:10s} median ms {[round(v, 4) for v, _ in vals]}  "
                  f"wall s {[round(w, 1) for _, w in vals]}")
    print("== 3b. Bench.call (keeps the last output) vs a bare call, one process")
    from attnperf.measure.session import Bench
    from attnperf.measure.timing import Budget, time_cuda_device
    from attnperf.model.catalog import PRESETS
    for preset in ("train", "seed"):
        b = Bench("sdpa", PRESETS[preset], "cuda")
        bare = lambda: b.spec.fn(b.q, b.k, b.v, b.problem)  # noqa: E731
        res = {"bare": [], "Bench.call": []}
        for _ in range(3):
            for label, fn in (("bare", bare), ("Bench.call", b.call)):
                res[label].append(time_cuda_device(fn, Budget(budget_s=0.5)).median_s * 1e3)
        print(f"  {preset:5s} " + "  ".join(f"{k} {[round(x, 4) for x in v]} ms" for k, v in res.items()))
        b.release()


def worker_start() -> None:
    print("== 4. worker start on this host")
    from attnperf.measure.session import Session
    from attnperf.model.catalog import PRESETS
    from attnperf.measure.timing import Budget
    with Session("cuda", isolate=True) as s:
        for i in range(3):
            t0 = time.perf_counter()
            s.measure("fault_segfault", PRESETS["seed"], budget=Budget(budget_s=0.05))  # kills it
            t1 = time.perf_counter()
            m = s.measure("sdpa", PRESETS["seed"], budget=Budget(budget_s=0.05), latency=False)
            t2 = time.perf_counter()
            print(f"  round {i}: crash {t1 - t0:.2f} s; next config incl. a new worker "
                  f"(fork + CUDA init + 1 s warm-up) {t2 - t1:.2f} s -> {m.status}")


def main() -> None:
    assert torch.cuda.is_available(), "needs a CUDA GPU"
    sys.path[:0] = [str(HERE), str(REPO / "tests")]
    os.environ.update({k: v for k, v in env().items() if k.startswith(("ATTNPERF_", "PYTHONPATH"))})
    print(torch.cuda.get_device_name(0), "torch", torch.__version__)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        sweep(tmp)
        (tmp / "i").mkdir()
        interrupt(tmp / "i")
        overhead(tmp)
    worker_start()


if __name__ == "__main__":
    main()
