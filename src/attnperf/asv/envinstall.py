"""Install step of attnperf's asv environments (asv.conf.json's install_command).

    python {conf_dir}/src/attnperf/asv/envinstall.py install [--constraints FILE] WHEEL

Standard library only, and run *by path*: it runs inside a fresh benchmark
environment before any attnperf is installed there, and for every commit --
also for commits older than this file -- so it cannot be imported from the
commit under test.  It ships in the wheel like every other module.

Runs inside the benchmark environment (asv puts its bin/ first on PATH).

1. Makes PyTorch visible without installing it per environment.  If the
   environment cannot import torch, the first interpreter found with a torch of
   the same Python version -- ``$ATTNPERF_TORCH_PYTHON``, then
   ``$VIRTUAL_ENV/bin/python``, then ``python3``/``python`` on PATH outside the
   environment -- lends its site-packages through a ``.pth`` file.  Entries of a
   .pth file go *after* the environment's own site-packages, so the commit's
   attnperf and the pinned asv_runner always win.  This is what lets the GPU
   host, which has CUDA PyTorch and no network, run `asv continuous` offline.
   With no such interpreter, torch is pip-installed once per environment
   (``--constraints``, e.g. ``constraints/asv-env.txt``, pins a CPU build).
2. Installs this commit's wheel with ``--no-deps --force-reinstall``: only
   attnperf changes between commits, in about a second.
"""

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

PTH_NAME = "attnperf-host-torch.pth"
FIND_SITE = ("import importlib.util as u, os, sys; s = u.find_spec('torch'); "
             "print(sys.version_info[:2], os.path.dirname(os.path.dirname(s.origin)) if s else '')")


def _env_has(module: str) -> bool:
    probe = f"import importlib.util as u; raise SystemExit(0 if u.find_spec({module!r}) else 1)"
    return subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def _candidates():
    env_bin = Path(sys.prefix).resolve() / "bin"
    seen = set()
    explicit = [os.environ.get("ATTNPERF_TORCH_PYTHON")]
    venv = os.environ.get("VIRTUAL_ENV")
    if venv:
        explicit.append(str(Path(venv) / "bin" / "python"))
    for d in os.environ.get("PATH", "").split(os.pathsep):
        for name in ("python3", "python"):
            explicit.append(str(Path(d) / name))
    for c in explicit:
        if not c or not os.path.exists(c):
            continue
        if Path(c).resolve().parent == env_bin or Path(c).parent.resolve() == env_bin:
            continue
        if c in seen:
            continue
        seen.add(c)
        yield c


def _host_torch_site():
    want = str(tuple(sys.version_info[:2]))
    for exe in _candidates():
        try:
            out = subprocess.run([exe, "-c", FIND_SITE], capture_output=True, text=True,
                                 timeout=60, check=False).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        version, _, site = out.partition(") ")
        if site and version + ")" == want:
            return exe, site
    return None, None


def ensure_torch(constraints: str = "") -> None:
    site_dir = Path(sysconfig.get_paths()["purelib"])
    pth = site_dir / PTH_NAME
    if _env_has("torch"):
        return
    exe, host_site = _host_torch_site()
    if host_site:
        pth.write_text(host_site + "\n")
        print(f"asv_env: using PyTorch from {exe} ({host_site})")
        return
    print("asv_env: no PyTorch to reuse; installing one into this environment")
    pins = ["-c", constraints] if constraints else []
    subprocess.run([sys.executable, "-m", "pip", "install", *pins, "torch", "numpy", "tqdm"], check=True)


def install(wheel: str, constraints: str = "") -> None:
    ensure_torch(constraints)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall",
                    "--no-index", "--no-cache-dir", "-q", wheel], check=True)


def main(argv) -> int:
    args = list(argv[1:])
    constraints = ""
    if len(args) >= 2 and args[1] == "--constraints":
        constraints = args[2] if len(args) > 2 else ""
        del args[1:3]
    if len(args) != 2 or args[0] != "install" or not constraints and "--constraints" in argv:
        print("usage: envinstall.py install [--constraints FILE] WHEEL", file=sys.stderr)
        return 2
    install(args[1], constraints)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
