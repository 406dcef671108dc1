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

Another repository (``attnperf init``) has no copy of this file, and attnperf
is not installed in its benchmark environments.  There the steps run in the
*outer* attnperf -- the one installed next to asv, found on PATH by a
``python -c`` bootstrap in asv.conf.json (asv resolves a command's executable
in the environment's bin/ only):

    attnperf asv env-build --env ENV_DIR BUILD_DIR WHEEL_DIR
    attnperf asv env-install --env ENV_DIR WHEEL

Both first lend the outer interpreter's package directories (where attnperf
and PyTorch live, its site-packages, its PYTHONPATH) to the environment through
a .pth file, then build the commit's wheel offline / install it with
``--no-deps``: the repository's package changes per commit, attnperf, PyTorch
and the package's dependencies come from the Python that runs attnperf.
"""

import os
import subprocess
import sys
import sysconfig
from collections.abc import Iterator, Sequence
from pathlib import Path

PTH_NAME = "attnperf-host-torch.pth"
FIND_SITE = ("import importlib.util as u, os, sys; s = u.find_spec('torch'); "
             "print(sys.version_info[:2], os.path.dirname(os.path.dirname(s.origin)) if s else '')")


def _env_has(module: str) -> bool:
    probe = f"import importlib.util as u; raise SystemExit(0 if u.find_spec({module!r}) else 1)"
    return subprocess.run([sys.executable, "-c", probe], check=False).returncode == 0


def _candidates() -> Iterator[str]:
    env_bin = Path(sys.prefix).resolve() / "bin"
    seen: set[str] = set()
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


def _host_torch_site() -> tuple[str, str] | tuple[None, None]:
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
    subprocess.run(
        [sys.executable, "-m", "pip", "install", *pins, "torch", "numpy", "tqdm"], check=True
    )


def install(wheel: str, constraints: str = "") -> None:
    ensure_torch(constraints)
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--force-reinstall",
                    "--no-index", "--no-cache-dir", "-q", wheel], check=True)


# ---- outer mode: `attnperf asv env-build|env-install` for another repository -------
LENT_PTH = "attnperf-lent-site.pth"
_PROBE = ("import sys, sysconfig; print('%d.%d' % sys.version_info[:2]); "
          "print(sysconfig.get_paths()['purelib'])")


def env_python(env_dir: str) -> str:
    sub = ("Scripts", "python.exe") if os.name == "nt" else ("bin", "python")
    return str(Path(env_dir, *sub))


def lent_dirs() -> list[str]:
    """Where this interpreter finds attnperf, PyTorch and the rest of its packages."""
    import importlib.util

    dirs = []
    for name in ("attnperf", "torch"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            dirs.append(str(Path(spec.origin).resolve().parent.parent))
    paths = sysconfig.get_paths()
    dirs += [paths["purelib"], paths["platlib"]]
    dirs += [d for d in os.environ.get("PYTHONPATH", "").split(os.pathsep) if d]
    return [d for d in dict.fromkeys(dirs) if os.path.isdir(d)]


def lend(env_dir: str) -> str:
    """Make this interpreter's packages visible in the asv environment; returns its python."""
    exe = env_python(env_dir)
    if not os.path.exists(exe):
        raise SystemExit(f"asv_env: {env_dir} has no {exe}; is it an asv environment?")
    out = subprocess.run([exe, "-c", _PROBE], capture_output=True, text=True, check=True).stdout
    version, purelib = out.split("\n")[:2]
    mine = "{}.{}".format(*sys.version_info[:2])
    if version != mine:
        raise SystemExit(f"asv_env: the environment runs Python {version}, attnperf runs under "
                         f"Python {mine} ({sys.executable}); their packages cannot be shared. "
                         f"Run asv with the Python that has attnperf, or set \"pythons\": "
                         f"[\"{mine}\"] in asv.conf.json")
    Path(purelib, LENT_PTH).write_text("\n".join(lent_dirs()) + "\n")
    return exe


def env_build(env_dir: str, build_dir: str, wheel_dir: str) -> None:
    exe = lend(env_dir)
    subprocess.run([exe, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", wheel_dir, build_dir], check=True)


def env_install(env_dir: str, wheel: str) -> None:
    exe = lend(env_dir)
    subprocess.run([exe, "-m", "pip", "install", "--no-deps", "--force-reinstall", "--no-index",
                    "--no-cache-dir", "-q", wheel], check=True)


def outer_main(command: str, args: Sequence[str]) -> int:
    """``attnperf asv env-build|env-install --env ENV_DIR ...`` (the asv.conf.json that
    `attnperf init` writes)."""
    usage = {"env-build": "--env ENV_DIR BUILD_DIR WHEEL_DIR", "env-install": "--env ENV_DIR WHEEL"}
    args = list(args)
    if len(args) < 2 or args[0] != "--env" or len(args) != (4 if command == "env-build" else 3):
        print(f"error: usage: attnperf asv {command} {usage[command]}", file=sys.stderr)
        return 2
    try:
        if command == "env-build":
            env_build(args[1], args[2], args[3])
        else:
            env_install(args[1], args[2])
    except subprocess.CalledProcessError as exc:
        print(
            f"error: {' '.join(map(str, exc.cmd[:4]))} ... exited {exc.returncode}", file=sys.stderr
        )
        return 1
    return 0


def main(argv: Sequence[str]) -> int:
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
