"""`attnperf ci bench` against a stand-in for the asv executable (no benchmark runs).

The stand-in records its arguments, drops prepared result files where asv would write them,
prints what asv continuous prints last and exits with a chosen code: how asv's exit codes and
results become the job's verdict, without measuring anything (tests/test_ci_bench.py,
tests/test_calibrate.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from support import asvdata as d

SCRIPT = ["-m", "attnperf", "ci", "bench"]
KERNELS, PROBLEMS = ["sdpa", "tiled"], ["seed", "train"]

FAKE_ASV = '''#!{python}
import json, os, shutil, sys
with open(os.environ["FAKE_ASV_ARGV"], "w") as fh:
    json.dump(sys.argv[1:], fh)
src = os.environ.get("FAKE_ASV_RESULTS")
if src:
    shutil.copytree(src, os.environ["FAKE_ASV_DEST"], dirs_exist_ok=True)
print("fake asv: exit", os.environ["FAKE_ASV_EXIT"])
# asv continuous's last line once it has compared (none after a crash or exit 2)
print(os.environ.get("FAKE_ASV_SAYS", ""))
sys.exit(int(os.environ["FAKE_ASV_EXIT"]))
'''
SAYS = {0: "BENCHMARKS NOT SIGNIFICANTLY CHANGED.", 1: "PERFORMANCE DECREASED."}


def make_project(tmp_path: Path) -> dict:
    """A git repo with two commits, an asv config, and prepared results for both commits
    (tiled/train twice as slow at head; ``broken``: the same, where sdpa/seed fails at head),
    and the stand-in asv (``fake``)."""
    root = tmp_path / "repo"
    base, head = d.git_repo(root, 2)
    conf = d.asv_conf(root)
    prepared = tmp_path / "prepared"
    d.write_benchmarks(prepared, KERNELS, PROBLEMS)
    d.write_machine(prepared, d.H100_INFO, d.H100_CEILINGS)
    params = d.grid_params(KERNELS, PROBLEMS)
    broken = tmp_path / "broken"
    for folder, fails in ((prepared, False), (broken, True)):
        if fails:
            shutil.copytree(prepared, broken)
        for commit, slow, ms in ((base, 1.0, 1000), (head, 2.0, 2000)):
            def t(k, p, slow=slow, fail=fails and commit == head):
                # tiled/train is twice as slow at head; the rest unchanged
                if (k, p) == ("tiled", "seed"):
                    return d.samples(2e-5, seed=1)
                if fail and (k, p) == ("sdpa", "seed"):
                    return None
                scale = slow if k == "tiled" else 1.0
                return d.samples({"seed": 6e-6, "train": 4e-4}[p] * scale, seed=len(k) + len(p))
            d.write_run(folder, d.H100_INFO, commit, ms,
                        {d.TIME: d.row(params, d.grid_values(KERNELS, PROBLEMS, t))})
    fake = tmp_path / "asv"
    fake.write_text(FAKE_ASV.format(python=sys.executable))
    fake.chmod(0o755)
    return {"root": root, "conf": conf, "base": base, "head": head, "prepared": prepared,
            "broken": broken, "fake": fake, "tmp": tmp_path}


def run_job(project: dict, asv_exit: int, with_results: bool = True, extra=(),
            github: bool = True, says: str | None = None, results: str = "prepared"):
    """`attnperf ci bench --base BASE --head HEAD --machine h100` in a subprocess, the stand-in
    asv exiting ``asv_exit`` after printing ``says`` (by default what asv prints last for that
    exit code) and dropping the ``results`` result set unless ``with_results`` is false; with
    ``github``, as a GitHub Actions step; ``--device cuda`` unless ``extra`` names a device.
    Returns (process, out dir, verdict or None)."""
    tmp = project["tmp"]
    out = tmp / "out"
    env = dict(os.environ)
    env.update({"FAKE_ASV_ARGV": str(tmp / "argv.json"), "FAKE_ASV_EXIT": str(asv_exit),
                "FAKE_ASV_SAYS": SAYS.get(asv_exit, "") if says is None else says,
                "FAKE_ASV_RESULTS": str(project[results]) if with_results else "",
                "FAKE_ASV_DEST": str(project["root"] / "results")})
    if github:
        env.update({"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp / "step-summary.md"),
                    "GITHUB_OUTPUT": str(tmp / "github-output")})
    else:
        for k in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
            env.pop(k, None)
    proc = subprocess.run(
        [sys.executable, *SCRIPT, "--config", str(project["conf"]), "--base", project["base"],
         "--head", "HEAD", "--machine", "h100", "--no-describe", "--asv", str(project["fake"]),
         "--out", str(out), *(() if "--device" in extra else ("--device", "cuda")), *extra],
        capture_output=True, text=True, env=env, timeout=120)
    verdict = json.loads((out / "verdict.json").read_text()) if (out / "verdict.json").exists() \
        else None
    return proc, out, verdict
