"""The inputs every verdict flow judges with, and the CPU's paired confirmation.

``attnperf ci bench`` (the PR gate, and the command other repositories run) and
``attnperf bisect`` judge alike, from here:

* the factor: ``[tool.attnperf]`` regression-factor of the repository for the device,
  else attnperf's default for the device (:func:`default_factor`,
  :data:`attnperf.model.config.DEFAULT_FACTORS`); the machine's calibrated
  thresholds, where ``attnperf calibrate`` wrote them, override it per benchmark;
* on a CPU, every flagged time row measured again *paired*
  (:func:`paired_confirmation`): both commits checked out (git worktrees, removed
  after), one live worker process each pinned to one core, samples alternated, over
  four fresh pairs of workers (:mod:`attnperf.measure.paired`), and judged by that
  (:func:`attnperf.analysis.ab.confirm_paired`).  asv measures each commit in its own
  processes, and on a CPU the state a process lands in holds for its whole run: asv's
  statistics then read identical code as a real change; the pairs do not.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ..analysis import ab
from ..analysis.bisect import Confirm
from ..analysis.gate import metric_class
from ..errors import BenchInputError, BenchJobError, ConfigError
from ..io import project_config
from ..measure.paired import PAIRS, RUNS, Paired, PairedRunner

Key = tuple[str, str]
CONFIRM = ("auto", "paired", "none")


def confirming(confirm: str, device: str) -> bool:
    """``--confirm paired``, or ``auto`` on a CPU: the flows that re-measure paired."""
    return confirm == "paired" or (confirm == "auto" and device == "cpu")


def default_factor(conf_dir: Path, device: str) -> float:
    """[tool.attnperf] regression-factor of the repository in ``conf_dir`` for ``device``,
    else attnperf's default for the device (:func:`attnperf.io.project_config.regression_factor`;
    :class:`BenchInputError` for a malformed table)."""
    try:
        return project_config.regression_factor(conf_dir, device)
    except ConfigError as exc:
        raise BenchInputError(str(exc)) from None


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          check=False, stdin=subprocess.DEVNULL)
    if proc.returncode != 0:
        raise BenchJobError(f"git {' '.join(args)} failed: {proc.stderr.strip()}")
    return proc.stdout.strip()


def paired_confirmation(repo: Path, base: str, head: str,
                        rows: ab.Comparison | Sequence[ab.Row],
                        label: str = "ci bench", stream: IO[str] | None = None
                        ) -> tuple[dict[Key, Paired], dict[Key, str]]:
    """(kernel, problem id) -> paired figures for every time row of ``rows`` measured at
    both commits, and -> why not for those the workers could not measure.  Progress goes
    to ``stream`` (default stderr), one line per pair, prefixed ``[attnperf LABEL]``."""
    stream = stream if stream is not None else sys.stderr
    rows = rows.rows if isinstance(rows, ab.Comparison) else rows
    keys = sorted({(r.kernel, r.problem) for r in rows if metric_class(r.benchmark) is None
                   and r.before.ok and r.after.ok})
    done: dict[Key, Paired] = {}
    failed: dict[Key, str] = {}
    if not keys:
        return done, failed
    tmp = Path(tempfile.mkdtemp(prefix="attnperf-paired-"))
    trees: list[Path] = []
    try:
        try:
            for name, sha in (("base", base), ("head", head)):
                _git(repo, "worktree", "add", "--detach", str(tmp / name), sha)
                trees.append(tmp / name)
        except BenchJobError as exc:  # the rows keep asv's verdict; the caller says why
            print(f"[attnperf {label}] no paired re-measurement: {exc}", file=stream)
            return done, {key: f"no checkout: {exc}" for key in keys}
        # Each worker imports its commit's own code first (the checkout's src/ and root).
        def said(key: Key, result: Paired | str) -> None:
            if isinstance(result, str):
                failed[key] = result
                text = result
            else:
                done[key] = result
                text = (f"x{result.ratio:.3f} (p={result.p_slower:.1e}, {result.pairs} pairs; "
                        f"runs {' '.join(f'x{r:.3f}' for r in result.runs)})")
            print(f"[attnperf {label}] paired {key[0]} {key[1]}: {text}", file=stream)

        print(f"[attnperf {label}] paired re-measurement of {len(keys)} row(s): {PAIRS} pairs "
              f"each over {RUNS} fresh pairs of workers", file=stream)
        with PairedRunner(None, None, str(trees[0]), str(trees[1])) as runner:
            runner.measure_all(keys, pairs=PAIRS, runs=RUNS, done=said)
    finally:
        for t in trees:
            subprocess.run(["git", "-C", str(repo), "worktree", "remove", "--force", str(t)],
                           capture_output=True, check=False)
        shutil.rmtree(tmp, ignore_errors=True)
    return done, failed


def paired_judge(repo: Path, factor: float, label: str = "bisect",
                 stream: IO[str] | None = None) -> Confirm:
    """A ``confirm(before, after, rows) -> rows`` for :func:`attnperf.analysis.bisect.bisect`:
    the time rows of ``rows`` measured paired between the two commits and judged at
    ``factor``; rows the workers could not measure keep asv's verdict."""
    def confirm(before: str, after: str, rows: Sequence[ab.Row]) -> list[ab.Row]:
        done, _ = paired_confirmation(repo, before, after, rows, label, stream)
        cmp = ab.Comparison("", None, None, factor, list(rows))
        return ab.confirm_paired(cmp, done, factor).rows
    return confirm
