"""A sharded pull-request job: its shards' folders merged into one verdict; one shard a GPU.

``attnperf ci bench --shard K/N`` (:mod:`attnperf.ci.bench`) measures shard K of the suite
(:mod:`attnperf.model.shard`) and writes its folder: ``verdict.json`` (``"shard": "K/N"``),
``summary.md``, ``results/`` (both commits' asv result files, the other shards'
combinations n/a), ``paired.json`` on a CPU.  :func:`merge` (``attnperf ci merge DIR...``)
makes one job's output of the N folders:

* it refuses folders that are not one split of one pair -- a shard missing or given twice,
  shards of different N, base, head, machine or factors -- with one error naming them;
* it merges the result files (:func:`attnperf.io.asv_merge.merge_results`: each
  combination from the shard that measured it) into ``OUT/results``, and judges them with
  the code one unsharded job uses: :func:`attnperf.analysis.ab.compare`, the paired
  re-measurements of every shard (:func:`~attnperf.analysis.ab.confirm_paired`) and
  :func:`~attnperf.analysis.ab.decide` with asv's exit and finish of the shards combined
  (asv's exit 2 outranks 1, 1 outranks 0, as one asv run over the whole suite would have
  exited); a shard whose own verdict is a harness failure makes the merged verdict one;
* it writes ``OUT/verdict.json`` (the unsharded keys, plus ``shards``: each one's verdict
  and GPU), ``OUT/summary.md`` (the PR comment's section, as one job renders it) and
  ``OUT/paired.json``, and reports to GitHub Actions as one job does.

``--results-only`` (:func:`merge_results_only`) merges plain asv results folders -- the main
branch's sharded ``asv run`` -- with no verdict.

:func:`run_on_gpus` (``attnperf ci bench --gpus 0,1,...``) runs shard K of N on the K-th GPU
listed, all at once: each shard is a ``ci bench --shard K/N`` process with
``CUDA_VISIBLE_DEVICES`` set to its GPU (``CUDA_DEVICE_ORDER=PCI_BUS_ID``: the indices
nvidia-smi shows) and asv folders of its own (``.asv/gpu-I`` beside the config: results and
environments, reused by later runs on that GPU), writing ``OUT/shard-K``; the machine is
described once, before; then :func:`merge` makes ``OUT`` the job's one verdict.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from ..analysis import ab, judge
from ..errors import (
    BenchInputError,
    BenchJobError,
    ReportError,
    UsageError,
)
from ..io import thresholds as thresholds_file
from ..io.asv_merge import merge_results
from ..io.asv_results import read_results
from ..io.files import read_bytes, read_text
from ..io.folders import OwnedDir
from ..io.jsonfile import load_json
from ..measure.paired import Paired
from ..model import shard as shard_model
from ..model.shard import Shard
from ..render import markdown as md
from ..render import prcomment
from ..render.cibench import paired_section, why_section
from . import bench, folders, github

# What every shard of one split must share: one pair, one machine, one way of judging.
SAME = ("machine", "base", "head", "factor", "asv_factor", "paired_factor", "rounds")
LOG = "asv-continuous.log"


@dataclasses.dataclass(frozen=True)
class MergeOptions:
    """``attnperf ci merge``: the shards' folders and where the merged job goes."""

    dirs: tuple[str, ...]
    out: str = "ci-artifacts/bench"
    results_only: bool = False

    def __post_init__(self) -> None:
        if not self.dirs:
            raise UsageError("give the shards' folders (DIR...)")
        if not self.out:
            raise UsageError("--out must not be empty")


@dataclasses.dataclass(frozen=True)
class ShardFolder:
    """One shard's ``ci bench --shard K/N`` folder, its verdict read."""

    folder: Path
    shard: Shard
    verdict: dict[str, Any]

    @property
    def label(self) -> str:
        return f"shard {self.shard} ({str(self.folder)!r})"


def read_shard(folder: str) -> ShardFolder:
    """One folder's verdict: :class:`BenchInputError` for a folder that is not a shard's,
    :class:`BenchJobError` for a shard whose job failed before its verdict."""
    path = Path(folder)
    if not path.is_dir():
        raise BenchInputError(f"{folder!r} is not a folder; give the output folders of "
                              "`attnperf ci bench --shard K/N`")
    if not (path / "verdict.json").is_file():
        if OwnedDir.listed(path, folders.OUT_MARKER) is None:
            raise BenchInputError(f"{folder!r} holds no verdict.json and is not the output "
                                  "folder of `attnperf ci bench --shard K/N`")
        why = _headline(path / "summary.md")
        raise BenchJobError(f"the shard in {folder!r} wrote no verdict: its job failed before "
                            f"asv compared{f' ({why})' if why else ''}")
    try:
        verdict = load_json(str(path / "verdict.json"), "verdict")
    except ReportError as exc:
        raise BenchInputError(str(exc)) from None
    if not isinstance(verdict, dict):
        raise BenchInputError(f"{folder!r}: verdict.json is not a JSON object")
    for key, kinds in (("machine", str), ("base", str), ("head", str), ("factor", (int, float)),
                       ("asv_factor", (int, float)), ("exit_code", int)):
        if not isinstance(verdict.get(key), kinds) or isinstance(verdict.get(key), bool):
            raise BenchInputError(f"{folder!r}: verdict.json has no valid {key!r}; not the "
                                  "verdict of `attnperf ci bench --shard K/N`")
    text = verdict.get("shard")
    if not isinstance(text, str):
        raise BenchInputError(f"{folder!r}: verdict.json names no shard (an unsharded job); "
                              "give the folders of `attnperf ci bench --shard K/N`")
    try:
        shard = Shard.parse(text, f"{folder!r}: verdict.json's shard")
    except UsageError as exc:
        raise BenchInputError(str(exc)) from None
    return ShardFolder(path, shard, verdict)


def _headline(summary: Path) -> str:
    """The first line of a summary, without its markdown heading marks (or "")."""
    try:
        first = read_text(summary, "summary", 1 << 20).strip().splitlines()
    except (ReportError, OSError):
        return ""
    return first[0].lstrip("#").strip() if first else ""


def one_split(shards: Sequence[ShardFolder]) -> list[ShardFolder]:
    """``shards`` in shard order, after checking they are every shard of one split of one
    pair, once (:class:`BenchInputError` naming the folders otherwise)."""
    first = shards[0]
    for s in shards[1:]:
        if s.shard.count != first.shard.count:
            raise BenchInputError(f"{first.label} and {s.label} are of different splits "
                                  f"(N={first.shard.count} vs {s.shard.count}): give the "
                                  "folders of one split")
        for key in SAME:
            if s.verdict.get(key) != first.verdict.get(key):
                raise BenchInputError(f"{first.label} and {s.label} differ in {key}: "
                                      f"{first.verdict.get(key)!r} vs {s.verdict.get(key)!r}; "
                                      "give the shards of one job")
        if (s.verdict.get("thresholds") is None) != (first.verdict.get("thresholds") is None):
            raise BenchInputError(f"{first.label} and {s.label} differ in thresholds: one was "
                                  "judged with calibrated thresholds, the other not")
    by_index: dict[int, ShardFolder] = {}
    for s in shards:
        if s.shard.index in by_index:
            raise BenchInputError(f"shard {s.shard} is given twice: "
                                  f"{str(by_index[s.shard.index].folder)!r} and "
                                  f"{str(s.folder)!r}")
        by_index[s.shard.index] = s
    count = first.shard.count
    missing = [f"{k}/{count}" for k in range(1, count + 1) if k not in by_index]
    if missing:
        raise BenchInputError(f"shard(s) {', '.join(missing)} missing: give the folder of "
                              f"every shard ({count} in all)")
    return [by_index[k] for k in range(1, count + 1)]


def _paired(shards: Sequence[ShardFolder], factor: float
            ) -> tuple[dict[tuple[str, str], Paired], list[dict[str, Any]]]:
    """Every shard's paired re-measurements (its rows'), and what they could not measure."""
    done: dict[tuple[str, str], Paired] = {}
    failed: list[dict[str, Any]] = []
    for s in shards:
        path = s.folder / "paired.json"
        if not path.is_file():
            raise BenchInputError(f"{s.label}: no paired.json, though its verdict was judged "
                                  f"by the paired re-measurement (x{factor:g})")
        try:
            data = load_json(str(path), "paired re-measurement")
            for r in data["results"]:
                done[(str(r["kernel"]), str(r["problem"]))] = Paired.from_dict(r)
            failed += [dict(x) for x in data.get("not_measured", [])]
        except (ReportError, KeyError, TypeError, ValueError) as exc:
            raise BenchInputError(f"{s.label}: paired.json cannot be read ({exc})") from None
    return done, failed


def _asv_exit(exits: Sequence[object]) -> int | None:
    """What one asv run over the whole suite would have exited: an exit that is no verdict
    (a kill, a time-out) first, then 2 (a failure) over 1 (slower) over 0; None: not run."""
    codes = [e for e in exits if isinstance(e, int) and not isinstance(e, bool)]
    odd = [e for e in codes if e not in (0, 1, 2)]
    if odd:
        return odd[0]
    return max(codes) if codes else None


def _finished(values: Sequence[object]) -> bool | None:
    if any(v is False for v in values):
        return False
    return True if values and all(v is True for v in values) else None


def _gpu_text(gpu: object) -> str:
    if not isinstance(gpu, dict) or gpu.get("index") is None:
        return ""
    serial = gpu.get("serial")
    return f" on GPU {gpu['index']}" + (f" (serial {serial})" if serial else "")


def _footer(shards: Sequence[ShardFolder]) -> str:
    where = "; ".join(f"{s.shard}{_gpu_text(s.verdict.get('gpu'))}" for s in shards)
    return (f"<sub>Measured in {len(shards)} shard(s): {md.text(where)}; asv's own output: "
            f"`{LOG}` in each shard's folder.</sub>")


def merge(o: MergeOptions) -> bench.Outcome:
    """One verdict of a sharded job (see the module docstring): writes ``o.out`` and
    reports to GitHub Actions.  :class:`BenchInputError` for folders that are not every
    shard of one job, :class:`BenchJobError` for a shard that failed before its verdict,
    :class:`UsageError` for an output folder it must not write."""
    shards = one_split([read_shard(d) for d in o.dirs])
    out = _out(o.out, [s.folder for s in shards])
    first = shards[0].verdict
    machine, base, head = str(first["machine"]), str(first["base"]), str(first["head"])
    factor, asv_factor = float(first["factor"]), float(first["asv_factor"])
    count = shards[0].shard.count
    written, notes = merge_results([s.folder / "results" for s in shards], out,
                                   owner=lambda params: shard_model.owner(params, count))
    calibrated = _thresholds(shards, machine)
    db = read_results(str(out.root / "results"))
    m = db.machines.get(machine)
    base_run = m.runs_for(base)[-1] if m and m.runs_for(base) else None
    head_run = m.runs_for(head)[-1] if m and m.runs_for(head) else None
    cmp = ab.compare(db, machine, base_run, head_run, factor,
                     calibrated.lookup() if calibrated else None)
    asv_view = ab.compare(db, machine, base_run, head_run, asv_factor, metric_rules=False)
    paired = None
    pf = first.get("paired_factor")
    paired_factor = float(pf) if pf is not None else None
    if paired_factor is not None:
        paired, failed = _paired(shards, paired_factor)
        out.write_text("paired.json", json.dumps(
            {"factor": paired_factor,
             "results": [{"kernel": k, "problem": p, **r.to_dict()}
                         for (k, p), r in sorted(paired.items())],
             "not_measured": failed}, indent=2) + "\n")
        cmp = ab.confirm_paired(cmp, paired, paired_factor)
    asv_exit = _asv_exit([s.verdict.get("asv_exit") for s in shards])
    finished = _finished([s.verdict.get("asv_finished") for s in shards])
    code, reason = ab.decide(asv_exit, cmp, asv_view, finished)
    harness = next((s for s in shards if s.verdict.get("exit_code") == ab.EXIT_INFRA), None)
    if harness is not None and code != ab.EXIT_INFRA:
        code, reason = ab.EXIT_INFRA, f"shard {harness.shard}: {harness.verdict.get('reason')}"
    summary = prcomment.render_section(db, machine, base, head, factor, asv_exit=asv_exit,
                                       extra_notes=notes, footer=_footer(shards),
                                       thresholds=calibrated, asv_factor=asv_factor,
                                       comparison=cmp, asv_view=asv_view, verdict=(code, reason))
    reasons = judge.why_lines(cmp.rows)
    summary += why_section(reasons)
    if paired is not None and paired_factor is not None:
        summary += paired_section(paired, paired_factor)
    summary_path = out.write_text("summary.md", summary)
    verdict = {"exit_code": code, "verdict": ab.VERDICTS[code], "reason": reason,
               "asv_exit": asv_exit, "machine": machine, "base": base, "head": head,
               "factor": factor, "asv_factor": asv_factor, "rounds": first.get("rounds"),
               "thresholds": first.get("thresholds"), "paired_factor": paired_factor,
               "files": written,
               "counts": {c: cmp.count(c) for c in (ab.WORSE, ab.BETTER, ab.BROKE, ab.FIXED)},
               "flagged": reasons, "asv_finished": finished,
               "shards": [{"shard": str(s.shard), "folder": str(s.folder),
                           "verdict": s.verdict.get("verdict"),
                           "exit_code": s.verdict.get("exit_code"),
                           "asv_exit": s.verdict.get("asv_exit"), "gpu": s.verdict.get("gpu")}
                          for s in shards]}
    out.write_text("verdict.json", json.dumps(verdict, indent=2) + "\n")
    github.publish(code, reason, machine, summary)
    return bench.Outcome(code, reason, summary_path, tuple(reasons))


def _out(folder: str, shard_folders: Sequence[Path]) -> OwnedDir:
    resolved = Path(folder).resolve()
    for s in shard_folders:
        if s.resolve() == resolved:
            raise UsageError(f"--out {folder!r} is a shard's folder; give a folder of its own")
    return folders.out_dir(folder)


def _thresholds(shards: Sequence[ShardFolder], machine: str
                ) -> thresholds_file.Thresholds | None:
    """The calibrated thresholds the shards judged with (each shard keeps a copy in its
    results), or None; :class:`BenchInputError` when they are missing or differ."""
    if shards[0].verdict.get("thresholds") is None:
        return None
    copies = []
    for s in shards:
        path = thresholds_file.path_for(str(s.folder / "results"), machine)
        try:
            copies.append(read_bytes(path, "thresholds", error=ReportError))
        except ReportError as exc:
            raise BenchInputError(f"{s.label} was judged with calibrated thresholds but "
                                  f"holds no copy of them: {exc}") from None
    if any(c != copies[0] for c in copies[1:]):
        raise BenchInputError("the shards were judged with different calibrated thresholds")
    try:
        return thresholds_file.read(
            thresholds_file.path_for(str(shards[0].folder / "results"), machine))
    except ReportError as exc:
        raise BenchInputError(str(exc)) from None


def merge_results_only(o: MergeOptions) -> tuple[Path, list[str], list[str]]:
    """``o.dirs`` are asv results folders (one per shard): merged into ``o.out/results``.
    Returns (that folder, the files written, notes on what was left out)."""
    roots = []
    for d in o.dirs:
        if not Path(d).is_dir():
            raise BenchInputError(f"{d!r} is not a folder; give the shards' asv results "
                                  "folders")
        roots.append(Path(d))
    out = _out(o.out, roots)
    written, notes = merge_results(roots, out)
    return out.root / "results", written, notes


# ------------------------------------------------------------- --gpus ------
# argv, env, cwd, the log file -> a started process (wait(), terminate()): subprocess.Popen's
Launch = Callable[[list[str], dict[str, str], Path, IO[bytes]], Any]


def _popen(argv: list[str], env: dict[str, str], cwd: Path, log: IO[bytes]) -> Any:
    return subprocess.Popen(argv, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)


def cuda_gpu_count() -> int:
    """How many CUDA GPUs this host has (0 without CUDA)."""
    import torch  # the torch layer's question; device_count() opens no CUDA context

    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def child_argv(o: bench.BenchOptions, shard: Shard, base: str, head: str, config: Path,
               out: Path, asv_dir: Path, thresholds: Path | None) -> list[str]:
    """The ``attnperf ci bench`` command line of one shard of ``o``."""
    argv = [sys.executable, "-m", "attnperf", "ci", "bench", "--base", base, "--head", head,
            "--machine", o.machine_name, "--config", str(config), "--out", str(out),
            "--device", "cuda", "--no-describe", "--shard", str(shard),
            "--asv-dir", str(asv_dir), "--confirm", o.confirm,
            "--paired-factor", repr(o.paired_factor)]
    if o.factor is not None:
        argv += ["--factor", repr(o.factor)]
    if o.asv is not None:
        argv += ["--asv", o.asv]
    argv += [f"--asv-arg={a}" for a in o.asv_args]
    if o.timeout_s is not None:
        argv += ["--timeout", repr(o.timeout_s)]
    if o.rounds is not None:
        argv += ["--rounds", str(o.rounds)]
    argv += ["--thresholds", str(thresholds)] if thresholds else ["--no-thresholds"]
    return argv


def run_on_gpus(o: bench.BenchOptions, launch: Launch | None = None,
                gpu_count: Callable[[], int] | None = None,
                stream: IO[str] | None = None) -> bench.Outcome:
    """``ci bench --gpus``: shard K of N on the K-th GPU of ``o.gpus``, all at once, merged
    into ``o.out`` (see the module docstring).  :class:`UsageError` for a machine without
    those CUDA GPUs (a CPU first), before anything runs; :class:`BenchJobError` as
    :func:`attnperf.ci.bench.run` and :func:`merge`.  ``launch`` and ``gpu_count`` stand in
    for ``subprocess.Popen`` and CUDA's device count (tests)."""
    stream = stream if stream is not None else sys.stderr
    gpus = o.gpus
    listed = bench.gpus_text(gpus)
    device = bench.device_of(o)
    if device != "cuda":
        raise UsageError(f"--gpus {listed}: runs one shard per CUDA GPU, and the device of "
                         f"machine {o.machine_name!r} is {device}; on a CPU give each job "
                         "--shard K/N")
    have = (gpu_count or cuda_gpu_count)()
    if max(gpus) >= have:
        raise UsageError(f"--gpus {listed}: this host has {have} CUDA GPU(s)"
                         + (f" (0..{have - 1})" if have else ""))
    conf_path, conf = bench.read_config(o.config)
    conf_dir = conf_path.parent
    results_dir = (conf_dir / conf.get("results_dir", "results")).resolve()
    out = folders.out_dir(o.out, conf_dir, results_dir)
    base, head = bench.resolve(conf_dir, o.base), bench.resolve(conf_dir, o.head)
    log = out.write_text(LOG, "")
    env = bench._env()
    env.update(CUDA_DEVICE_ORDER="PCI_BUS_ID")
    for key in [k for k in env if k.startswith("GITHUB_")] + ["GITHUB_ACTIONS"]:
        env.pop(key, None)  # the shards report nothing to GitHub: the merged job does
    if o.describe:  # once, before the shards start: they share the host's description
        bench.describe_machine(conf_dir, results_dir, o.machine_name, "cuda", log, env)
    thresholds = None
    if o.use_thresholds:
        path = bench._thresholds_path(o, results_dir)
        bench._thresholds(o, results_dir)  # refuses a missing --thresholds or a bad file
        thresholds = path.resolve() if path.is_file() else None
    count = len(gpus)
    shard_dirs = []
    children = []
    try:
        for k, gpu in enumerate(gpus, start=1):
            shard = Shard(k, count)
            asv_dir = conf_dir / ".asv" / f"gpu-{gpu}"
            folders.share_ceilings(results_dir, asv_dir / "results", o.machine_name)
            folder = out.root / f"shard-{k}"
            shard_dirs.append(folder)
            argv = child_argv(o, shard, base, head, conf_path, folder, asv_dir, thresholds)
            logfile = tempfile.TemporaryFile()
            print(f"[attnperf ci bench] shard {shard} on GPU {gpu}: started", file=stream)
            try:
                child = (launch or _popen)(argv, dict(env, CUDA_VISIBLE_DEVICES=str(gpu)),
                                           conf_dir, logfile)
            except BaseException:
                logfile.close()
                raise
            children.append((shard, gpu, child, logfile))
        for shard, gpu, child, logfile in children:
            rc = child.wait()
            logfile.seek(0)
            out.write_bytes(f"shard-{shard.index}.log", logfile.read())
            logfile.close()
            print(f"[attnperf ci bench] shard {shard} on GPU {gpu}: exit {rc} "
                  f"(output: {out.root / f'shard-{shard.index}.log'})", file=stream)
    except BaseException:  # an interrupt or a failure: no shard outlives this run
        for _, _, child, _ in children:
            child.terminate()
        for _, _, child, logfile in children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
            logfile.close()
        raise
    return merge(MergeOptions(tuple(str(f) for f in shard_dirs), o.out))
