"""Build the published site: `asv publish`'s pages plus attnperf's own pages, safely.

The pages themselves are rendered by :mod:`attnperf.render.site`; this module
runs ``asv publish`` (with :mod:`attnperf.site.publisher` as its plugin),
vendors asv's page scripts (:mod:`attnperf.site.assets`), makes asv's pages
work from ``file://`` (:mod:`attnperf.site.offline`) and links attnperf's pages
from asv's navigation bar.

Nothing is lost (``asv publish`` deletes its output folder first):

* the output folder must be new, empty, or a site built before (it holds
  :data:`SITE_MARKER`, or asv's ``info.json`` + ``index.html``); never the
  repository, the asv config's folder or anything holding it, and never the
  results folder, a folder inside it or one that contains it;
* in a site built before, only what the earlier build wrote (the marker lists it)
  is replaced; every other file -- one the user added -- moves into the new site;
* the site is built in a temporary folder next to the output folder and renamed
  into place at the end; an interrupt (SIGINT, SIGTERM) kills ``asv publish``,
  removes the temporary folder and leaves the previous site as it was.

Only the machines the repository records are published (``attnperf_machines``
in asv.conf.json: CI's machines, each with its PR verdict's factor); a developer's
local ``asv run`` on another machine name stays out unless asked for
(``include``/``all_machines``), and is then judged at the factor ``attnperf ci bench``
would use on its device (:func:`attnperf.site.publisher.unlisted_factor`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from ..errors import OutputPathError, ReportError
from ..io.asv_results import read_asv_conf, read_results
from ..io.files import read_bytes, read_text
from ..io.folders import OwnedDir, regular_files
from ..render.site import NAV_MARKER, SUBDIR, MachinePage, redirect_page, write_pages
from . import offline
from .assets import ASSETS, load_manifest, vendor
from .publisher import CONF_KEY, DEFAULT, unlisted_factor

log = logging.getLogger(__name__)

SITE_MARKER = ".attnperf-site"
MACHINES_KEY = "attnperf_machines"
DEFAULT_ASSETS = Path(".cache") / "asv-www"
_NAV_ANCHOR = '<li id="nav-li-regressions">'


def link_from_asv(html_dir: Path) -> bool:
    """Add "Roofline (attnperf)" to the navigation bar of asv's index.html (idempotent).

    Markup surgery, on purpose: asv 0.6.6's navigation bar is static markup in
    its www/index.html; an ``OutputPublisher`` plugin can write data and files
    but has no hook into that bar (asv.js ignores index.json's ``pages``).
    """
    index = Path(html_dir) / "index.html"
    if not index.is_file():
        return False
    text = index.read_text()
    if NAV_MARKER in text:
        return True
    link = (f'{NAV_MARKER}<li id="nav-li-attnperf"><a href="{SUBDIR}/index.html">'
            "Roofline (attnperf)</a></li>\n\t")
    if _NAV_ANCHOR in text:
        text = text.replace(_NAV_ANCHOR, link + _NAV_ANCHOR, 1)
    elif "</body>" in text:  # another asv layout: a plain link at the end
        text = text.replace("</body>", f'{NAV_MARKER}<p><a href="{SUBDIR}/index.html">'
                            "Roofline (attnperf)</a></p></body>", 1)
    else:
        return False
    index.write_text(text)
    return True


# ---------------------------------------------------------- machines -----
def published_machines(conf: dict[str, Any]) -> dict[str, float]:
    """{machine: PR-verdict factor} of the machines whose history the repository keeps."""
    table = conf.get(MACHINES_KEY)
    out: dict[str, float] = {}
    if isinstance(table, dict):
        for name, spec in table.items():
            factor = spec.get("factor") if isinstance(spec, dict) else None
            if isinstance(factor, (int, float)) and factor >= 1.0:
                out[str(name)] = float(factor)
    return out


def _machine_dirs(results: Path) -> list[str]:
    if not results.is_dir():
        return []
    return sorted(p.name for p in results.iterdir() if p.is_dir() and not p.name.startswith("."))


def _select(results: Path, allowed: Iterable[str], include: Iterable[str],
            all_machines: bool) -> tuple[list[str], list[str]]:
    names = _machine_dirs(results)
    wanted = set(allowed) | set(include)
    chosen = [n for n in names if all_machines or n in wanted]
    return chosen, [n for n in names if n not in chosen]


def _copy_results(results: Path, machines: list[str], dest: Path) -> list[str]:
    """The chosen machines' results, for asv publish: regular files only (a FIFO, device
    or link in results/ is skipped with a note, never opened), each through the file door."""
    dest.mkdir(parents=True)
    notes: list[str] = []
    sources = [results / "benchmarks.json"] if (results / "benchmarks.json").is_file() else []
    for name in machines:
        if (results / name).is_symlink():
            notes.append(f"{results / name}: a symbolic link; not published")
            continue
        sources += list(regular_files(results / name))
        skipped = [p for p in (results / name).rglob("*")
                   if not p.is_dir() and (p.is_symlink() or not p.is_file())]
        notes += [f"{p}: not a regular file; not published" for p in skipped[:5]]
    for src in sources:
        target = dest / src.relative_to(results)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            target.write_bytes(read_bytes(src, "result file"))
        except ReportError as exc:
            notes.append(f"{exc}; not published")
    _widen_params(dest)
    return notes


def _widen_params(results: Path) -> None:
    """Give each benchmark of the copy's benchmarks.json every parameter value its results
    hold.  asv publish graphs only the values benchmarks.json lists, and the last asv run
    wrote that file: a grid that follows the device (a CPU lists only the problems it runs,
    attnperf.asv.suite.device_grid) would otherwise drop a GPU's problems from the graphs."""
    path = results / "benchmarks.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return  # none, or unreadable: asv publish says so
    if not isinstance(data, dict):
        return
    changed = False
    for machine in read_results(str(results)).machines.values():
        for run in machine.runs:
            for name, result in run.benchmarks.items():
                bench = data.get(name)
                params = bench.get("params") if isinstance(bench, dict) else None
                if not isinstance(params, list) or len(params) != len(result.params) or \
                        not all(isinstance(p, list) for p in params):
                    continue
                for listed, held in zip(params, result.params, strict=False):
                    for value in held:
                        if value not in listed:
                            listed.append(value)
                            changed = True
    if changed:
        path.write_text(json.dumps(data, indent=4))


# ------------------------------------------------------- out folder -----
def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _repo_root(conf: dict[str, Any], conf_dir: Path) -> Path | None:
    repo = conf.get("repo")
    if isinstance(repo, str) and "://" not in repo:
        root = (conf_dir / repo).resolve()
        for p in (root, *root.parents):
            if (p / ".git").exists():
                return p
        return root
    return None


def is_site(path: Path) -> bool:
    """An earlier attnperf site (our marker) or asv site (its info.json and index.html)."""
    if (path / SITE_MARKER).is_file():
        return True
    try:
        info = json.loads(read_text(path / "info.json", "asv site info", limit=1 << 20))
    except (ReportError, ValueError, RecursionError):
        return False
    return isinstance(info, dict) and "asv-version" in info and (path / "index.html").is_file()


def check_out_dir(out: Path, conf_dir: Path, results: Path, repo_root: Path | None) -> None:
    """Raise :class:`OutputPathError` unless ``out`` may be replaced by a site."""
    def refuse(why: str) -> NoReturn:
        raise OutputPathError(f"--out {str(out)!r}: {why}; give a new or empty folder, or one "
                              "an earlier `attnperf site build` wrote")
    if out.exists() and not out.is_dir():
        refuse("it exists and is not a folder")
    if repo_root is not None and _inside(repo_root, out):
        refuse(f"it is (or contains) the repository {str(repo_root)!r}")
    if _inside(conf_dir, out):
        refuse(f"it is (or contains) the asv config's folder {str(conf_dir)!r}")
    if _inside(results, out) or _inside(out, results):
        refuse(f"it is, contains or is inside the results folder {str(results)!r}")
    if (out / ".git").exists():
        refuse("it is a git work tree")
    if out.is_dir() and any(out.iterdir()) and not is_site(out):
        refuse(f"it is not empty and holds no site built before (no {SITE_MARKER} marker)")


# ------------------------------------------------------------ build -----
@dataclasses.dataclass
class BuildReport:
    out_dir: str
    asv_exit: int | None
    asv_output: str
    pages: list[MachinePage]
    vendored: list[str]
    left_remote: list[str]
    notes: list[str]
    published: list[str] = dataclasses.field(default_factory=list)
    excluded: list[str] = dataclasses.field(default_factory=list)
    offline_files: int = 0

    @property
    def has_asv(self) -> bool:
        return self.asv_exit == 0


def _publish_config(conf: dict[str, Any], conf_dir: Path, results: Path, html: Path, work: Path,
                    factors: dict[str, float]) -> Path:
    """asv.conf.json with absolute paths (asv chdirs to the config's folder) and the plugin."""
    c = dict(conf)
    for key in ("repo", "benchmark_dir", "env_dir"):
        if isinstance(c.get(key), str) and "://" not in c[key]:
            c[key] = str((conf_dir / c[key]).resolve())
    c["results_dir"], c["html_dir"] = str(results), str(html)
    # A leading dot: asv imports it as a module (else only from asv.plugins).
    c["plugins"] = list(c.get("plugins") or []) + [".attnperf.site.publisher"]
    c[CONF_KEY] = factors
    c["attnperf_default_factor"] = min(factors.values(), default=DEFAULT)
    path = work / "asv.conf.json"
    path.write_text(json.dumps(c, indent=2))
    return path


def _child_env() -> dict[str, str]:
    """asv imports the plugin: let its Python find this attnperf, whichever asv runs."""
    env = dict(os.environ)
    here = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (here, env.get("PYTHONPATH")) if p)
    return env


def run_asv_publish(config: Path, asv: str | None = None,
                    timeout: float = 1800) -> tuple[int, str]:
    """``asv publish`` in its own process group; killed (group and all) if this process
    is interrupted or the timeout passes."""
    exe = asv or shutil.which("asv", path=str(Path(sys.executable).parent)) or shutil.which("asv")
    if exe is None:
        return 127, "asv is not installed (pip install -e '.[asv]')"
    try:
        proc = subprocess.Popen([exe, "publish", "--no-pull", "--config", str(config)],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                stdin=subprocess.DEVNULL, start_new_session=True,
                                env=_child_env())
    except OSError as exc:
        return 126, f"asv publish could not run: {exc}"
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        return 124, f"asv publish did not finish in {timeout:g} s"
    except BaseException:  # KeyboardInterrupt, the CLI's SIGTERM: no orphan asv
        _kill(proc)
        raise
    return proc.returncode, out


def _kill(proc: subprocess.Popen[str]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass
    proc.wait()


def _assets_dir(asv_assets: str | None, conf_dir: Path) -> Path | None:
    if asv_assets:
        return Path(asv_assets)
    default = conf_dir / DEFAULT_ASSETS
    return default if len(load_manifest(default)) == len(ASSETS) else None


def build(config: str = "asv.conf.json", results: str | None = None,
          out: str | None = None, publish: bool = True, asv_assets: str | None = None,
          asv: str | None = None, include: Iterable[str] = (),
          all_machines: bool = False) -> BuildReport:
    """asv publish (unless ``publish`` is False), then attnperf's pages and the nav link,
    built next to ``out`` and renamed into place.  Raises :class:`OutputPathError` for an
    output folder it must not replace (before touching anything)."""
    conf_path = Path(config).resolve()
    notes: list[str] = []
    try:
        conf = read_asv_conf(str(conf_path))
    except (OSError, ValueError, ReportError) as exc:
        conf = {}
        notes.append(f"cannot read the asv config {config} ({exc}); asv's pages are not built")
        publish = False
    conf_dir = conf_path.parent
    results_dir = Path(results).resolve() if results else \
        (conf_dir / conf.get("results_dir", "results")).resolve()
    out_dir = Path(out).resolve() if out else (conf_dir / conf.get("html_dir", "html")).resolve()
    check_out_dir(out_dir, conf_dir, results_dir, _repo_root(conf, conf_dir))
    # What an earlier build wrote there (None: a site without the list; then every file
    # this build does not write is kept).  Everything else in the folder is the user's.
    earlier = OwnedDir.listed(out_dir, SITE_MARKER) if out_dir.is_dir() else None
    factors = published_machines(conf)
    if MACHINES_KEY not in conf:
        all_machines = True  # a config without the list (not this repository's): no filter
    chosen, excluded = _select(results_dir, factors, include, all_machines)
    cli_notes: list[str] = []
    if excluded:  # said to the person building, not on the published pages
        cli_notes.append(f"not published: {', '.join(excluded)} (not in asv.conf.json's "
                     f"{MACHINES_KEY}, the machines CI records; --include-machine NAME or "
                     "--all-machines publishes them)")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.attnperf-build-", dir=out_dir.parent))
    try:
        site = work / "site"
        sel = work / "results"
        notes += _copy_results(results_dir, chosen, sel)
        asv_exit, asv_out = None, ""
        if publish:
            cfg = _publish_config(conf, conf_dir, sel, site, work,
                                  {m: factors[m] if m in factors else
                                   unlisted_factor(conf_dir, sel / m, cli_notes)
                                   for m in chosen})
            asv_exit, asv_out = run_asv_publish(cfg, asv)
            if asv_exit != 0:
                last = [line for line in asv_out.strip().splitlines() if line.strip()][-3:]
                notes.append(f"asv publish exited {asv_exit}: " + " / ".join(last))
        site.mkdir(exist_ok=True)
        index = site / "index.html"
        has_asv = index.is_file() and "asv.js" in index.read_text(errors="replace") and \
            asv_exit == 0
        vendored: list[str] = []
        left: list[str] = []
        n_offline = 0
        if has_asv:
            link_from_asv(site)
            assets = _assets_dir(asv_assets, conf_dir)
            if assets is not None:
                vendored, left = vendor(site, assets)
            if left or assets is None:
                notes.append(f"asv's graph pages load {len(left) or len(ASSETS)} scripts from "
                             "CDNs (no network, no graphs): `attnperf asv fetch-assets` "
                             "once, then build again")
            else:
                n_offline = offline.add(site)
        db = read_results(str(results_dir))
        db.machines = {name: m for name, m in db.machines.items() if name in chosen}
        pages = write_pages(db, site, has_asv, notes)
        if not index.is_file():  # no asv site: the attnperf index is the landing page
            index.write_text(redirect_page(f"{SUBDIR}/index.html"))
        written = sorted(str(p.relative_to(site)) for p in regular_files(site))
        (site / SITE_MARKER).write_text(json.dumps(
            {"attnperf": "built by `attnperf site build`; the next build rewrites these files "
                         "and keeps every other", "files": written}, indent=1) + "\n")
        kept = _user_entries(out_dir, earlier, site)
        if kept:
            cli_notes.append(f"kept {len(kept)} file(s) attnperf did not write in {out_dir}: "
                             + ", ".join(kept[:5]) + (" ..." if len(kept) > 5 else ""))
        _swap_in(site, out_dir, work, kept)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return BuildReport(str(out_dir), asv_exit, asv_out, pages, vendored, left, cli_notes + notes,
                       chosen, excluded, n_offline)


def _user_entries(out_dir: Path, earlier: set[str] | None, site: Path) -> list[str]:
    """Entries of ``out_dir`` the build must keep: files (and links, and empty folders) the
    marker does not list -- or, without a list, that the new site does not hold.  A kept
    file the new site also writes is refused (:class:`OutputPathError`), before any change."""
    if not out_dir.is_dir():
        return []
    kept = []
    for folder, dirs, files in os.walk(out_dir, followlinks=False):
        base = Path(folder)
        entries = list(files) + [d for d in dirs if (base / d).is_symlink()
                                 or not any((base / d).iterdir())]
        dirs[:] = [d for d in dirs if not (base / d).is_symlink()]
        for name in entries:
            rel = str((base / name).relative_to(out_dir))
            if rel == SITE_MARKER:
                continue
            ours = rel in earlier if earlier is not None else os.path.lexists(site / rel)
            if ours:
                continue
            if os.path.lexists(site / rel) or any(
                    os.path.lexists(site / parent) and not (site / parent).is_dir()
                    for parent in Path(rel).parents if str(parent) != "."):
                raise OutputPathError(f"--out {str(out_dir)!r}: {rel!r} is a file attnperf did "
                                      "not write, and the new site has one of that name; move it "
                                      "and build again (the previous site is left as it was)")
            kept.append(rel)
    return sorted(kept)


def _swap_in(site: Path, out_dir: Path, work: Path, kept: Sequence[str] = ()) -> None:
    """Rename the new site into place and move the user's ``kept`` entries into it;
    signals wait until all of it is done."""
    blocked = {signal.SIGINT, signal.SIGTERM}
    old = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        previous = work / "previous"
        if out_dir.exists():
            os.rename(out_dir, previous)
        try:
            os.rename(site, out_dir)
        except OSError:
            if previous.exists():
                os.rename(previous, out_dir)
            raise
        stranded = []
        for rel in kept:
            try:
                (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
                os.rename(previous / rel, out_dir / rel)
            except OSError:
                stranded.append(rel)
        if stranded:  # never deleted with the old site: kept beside it, and said so
            keep = out_dir.parent / f".{out_dir.name}.kept-{os.getpid()}"
            os.rename(previous, keep)
            raise OutputPathError(f"--out {str(out_dir)!r}: could not move {len(stranded)} file(s) "
                                  f"attnperf did not write into the new site; they are in "
                                  f"{str(keep)!r}")
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)
