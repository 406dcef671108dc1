"""Helpers shared by the test files: the one place a test file imports them from.

A test file never imports another test file or ``conftest`` (tests/test_testsuite.py holds
that): importing a test file runs its module-level code again and makes pytest collect its
tests under a second name; importing ``conftest`` gives a second copy of it.  What two test
files share lives here, and conftest.py keeps the fixtures.

* this module: the repository root, the thread count every test process uses, the canned
  CPU ceilings;
* :mod:`support.asvdata`: hand-made asv result files and throwaway git repositories;
* :mod:`support.doors`: the boundary tests' guards (one-line errors, a FIFO that would block,
  a tree listing) and the check that `attnperf init` wrote a hostile name as plain text;
* :mod:`support.dists`: a snapshot of the working tree and its sdist and wheel;
* :mod:`support.fakeasv`: `attnperf ci bench` against a stand-in for the asv executable;
* :mod:`support.fakecuda`: the fake CUDA world of the GPU timing tests;
* :mod:`support.fuzz`: damaged-file strategies and the templates they damage;
* :mod:`support.ghexpr`: GitHub Actions expressions, evaluated;
* :mod:`support.kernels`: deliberately wrong kernels that more than one test file registers;
* :mod:`support.plugin`: a plugin repository with one kernel (the README's "Track your own
  kernels" flow);
* :mod:`support.realasv`: real asv on a temporary clone of this repository (the slow tier);
* :mod:`support.unprivileged`: running a check as an ordinary user under root.

``tests/faultkernels.py`` stays beside the test files on purpose: worker subprocesses and
tools/gpu/acceptance.py import it by its reference ``faultkernels:KERNELS`` (with tests/ on
their ``PYTHONPATH``).
"""

from __future__ import annotations

import json
from pathlib import Path

from attnperf.io.ceilings import SCHEMA_VERSION as CEILINGS_SCHEMA_VERSION

REPO = Path(__file__).resolve().parents[2]

# One intra-op thread, in the test process (conftest) and in subprocesses (OMP_NUM_THREADS):
# on a 2-core machine with a busy core, two threads turn a 30 us tiny-problem call into
# ~8-16 ms of barrier waits, which would make the suite slow, not wrong.
TEST_THREADS = 1

# Round, obviously-fake CPU ceilings: tests that look at the roofline know them.
FAKE_CPU_CEILINGS = {
    "schema_version": CEILINGS_SCHEMA_VERSION,
    "device": "cpu",
    "bandwidth_gb_s": 50.0,
    "copy_bytes": 1 << 20,
    "matmul_tflops": {"float16": 0.02, "bfloat16": 0.05, "float32": 0.25},
    "matmul_n": {"float16": 64, "bfloat16": 64, "float32": 64},
    "measured_at": "2026-01-01T00:00:00Z",
}


def write_canned_ceilings(cache_home: Path, machine_key: str) -> Path:
    """FAKE_CPU_CEILINGS as the ceilings cache entry of ``machine_key`` under ``cache_home``
    (an ``XDG_CACHE_HOME``), so no process using it measures ceilings."""
    path = cache_home / "attnperf" / "ceilings" / f"cpu-{machine_key}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(FAKE_CPU_CEILINGS))
    return path
