"""asv result folders of shards, merged into one: one result file per commit, as one job
would have written it.

Each shard of a sharded suite (:mod:`attnperf.model.shard`) runs asv over the whole suite
but measures only its own combinations; asv records the others as n/a (NaN).  So every
shard writes ``MACHINE/<commit8>-<env>.json`` for the same commits, and the shards' files
differ only in which combinations hold a measurement.  :func:`merge_results` writes one
file per commit holding, for every benchmark and every parameter combination, the point
of the shard that measured it: a number over a failure (null) over n/a (NaN) over a
combination the file lacks; between shards alike, the owner of the combination first
(``owner``), then the shards in the order given.  The per-combination columns (``result``,
``stats_*``, ``samples``) of that point come from that one shard; the benchmark's other
columns (its params, version, start and duration) and the file's fields (commit, machine,
environment) from the first shard.  asv's on-disk format as :mod:`attnperf.io.asv_results`
reads it (results "version": 2), written the way asv writes it (trailing null columns
dropped, NaN as asv's bare ``NaN``).

A commit's file that some shard lacks (its job failed) is left out, with a note: a file of
part of the shards would pass the other shards' combinations off as not measured.  The
machine's other files (``machine.json``, the ceilings, ``benchmarks.json``) are the first
shard's that has them.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
import os
import stat
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ReportError
from .asv_results import (
    _RESULT_NAME,
    ASV_RESULT_COLUMNS,
    KNOWN_RESULT_VERSIONS,
    MAX_ASV_FILE_BYTES,
    unquote,
)
from .folders import OwnedDir
from .jsonfile import load_json

Owner = Callable[[tuple[str, ...]], int]  # unquoted params -> the owning shard (1-based)

# A combination's point, best first: measured, failed, n/a, absent.
_VALUE, _FAILED, _SKIPPED, _ABSENT = 3, 2, 1, 0


def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _files(root: Path) -> list[str]:
    """The files of an asv results folder, relative: benchmarks.json and MACHINE/*.json
    (regular files only; no link followed)."""
    out = ["benchmarks.json"] if _regular(root / "benchmarks.json") else []
    if not root.is_dir() or root.is_symlink():
        return out
    for machine in sorted(p for p in root.iterdir() if p.is_dir() and not p.is_symlink()):
        out += [f"{machine.name}/{f.name}" for f in sorted(machine.glob("*.json")) if _regular(f)]
    return out


def _is_result(rel: str) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return "/" in rel and name != "machine.json" and bool(_RESULT_NAME.match(name))


def _status(row: list[Any] | None, column: int, i: int) -> int:
    """What combination ``i`` of a row holds: measured, failed, n/a or absent."""
    if row is None or column >= len(row):
        return _ABSENT
    values = row[column]
    if values is None:  # asv: every combination failed
        return _FAILED
    if not isinstance(values, list):
        values = [values]
    if i >= len(values):
        return _ABSENT
    v = values[i]
    if v is None:
        return _FAILED
    if isinstance(v, float) and not math.isfinite(v):
        return _SKIPPED
    return _VALUE if isinstance(v, (int, float)) and not isinstance(v, bool) else _FAILED


def _cell(row: list[Any] | None, column: int, i: int) -> Any:
    if row is None or column >= len(row) or not isinstance(row[column], list):
        return None
    values = row[column]
    return values[i] if i < len(values) else None


def _combos(params: object) -> list[tuple[str, ...]] | None:
    if not (isinstance(params, list) and all(isinstance(p, list) for p in params)):
        return None
    return [tuple(unquote(str(v)) for v in c) for c in itertools.product(*params)] \
        if params else [()]


def merge_docs(docs: Sequence[dict[str, Any]], owner: Owner | None = None) -> dict[str, Any]:
    """One asv result document from the shards' documents of one commit (see the module
    docstring); ``owner`` maps a combination's unquoted params to the shard (1-based, in
    ``docs``' order) that measured it.  The documents must share commit, environment and
    ``result_columns`` (:class:`ReportError` otherwise)."""
    first = docs[0]
    columns = first.get("result_columns") or ASV_RESULT_COLUMNS
    for doc in docs[1:]:
        for key in ("commit_hash", "env_name"):
            if doc.get(key) != first.get(key):
                raise ReportError(f"the shards' files differ in {key}: {first.get(key)!r} vs "
                                  f"{doc.get(key)!r}")
        if (doc.get("result_columns") or ASV_RESULT_COLUMNS) != columns:
            raise ReportError("the shards' files differ in result_columns (asv versions?)")
    per_combo = [j for j, c in enumerate(columns) if c in ("result", "samples")
                 or c.startswith("stats_")]
    result_col = columns.index("result") if "result" in columns else 0
    params_col = columns.index("params") if "params" in columns else 1
    merged = copy.deepcopy(dict(first))
    results: dict[str, Any] = {}
    names = list(dict.fromkeys(n for d in docs for n in (d.get("results") or {})))
    for name in names:
        rows = [(d.get("results") or {}).get(name) for d in docs]
        rows = [r if isinstance(r, list) else None for r in rows]
        base = next((r for r in rows if r is not None), None)
        if base is None:  # no shard has a row asv could have written: left out
            continue
        row = list(base) + [None] * (len(columns) - len(base))
        combos = _combos(row[params_col] if params_col < len(row) else None)
        if combos is None:  # a row this reader cannot split: the first shard's, as it is
            results[name] = list(base)
            continue
        chosen = []
        for i, combo in enumerate(combos):
            order = list(range(len(docs)))
            if owner is not None:
                own = owner(combo) - 1
                if 0 <= own < len(docs):
                    order = [own] + [k for k in order if k != own]
            # the best point; between equals, the earliest in ``order`` (the owner first)
            ranked = [(_status(rows[k], result_col, i), -rank, k) for rank, k in enumerate(order)]
            chosen.append(max(ranked)[2])
        for j in per_combo:
            values = [_cell(rows[k], j, i) for i, k in enumerate(chosen)]
            row[j] = None if all(v is None for v in values) else values
        while row and row[-1] is None:
            row.pop()
        results[name] = row
    merged["results"] = results
    durations: dict[str, Any] = {}
    for d in docs:
        for key, value in (d.get("durations") or {}).items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                durations[key] = max(value, durations.get(key, value))
    merged["durations"] = durations
    return merged


def merge_results(roots: Sequence[Path], dest: OwnedDir, under: str = "results",
                  owner: Owner | None = None) -> tuple[list[str], list[str]]:
    """Merge the asv results folders ``roots`` (one per shard, in shard order) into
    ``dest/under``; returns (the files written, relative to ``under``; notes on what was
    left out and why)."""
    notes: list[str] = []
    listed = [_files(Path(r)) for r in roots]
    written: list[str] = []
    for rel in dict.fromkeys(itertools.chain.from_iterable(listed)):
        having = [k for k, files in enumerate(listed) if rel in files]
        if not _is_result(rel):
            dest.copy_in(Path(roots[having[0]]) / rel, f"{under}/{rel}", "asv results file")
            written.append(rel)
            continue
        if len(having) < len(roots):
            lacking = [str(k + 1) for k in range(len(roots)) if k not in having]
            notes.append(f"{rel}: not in shard folder(s) {', '.join(lacking)} of {len(roots)} "
                         "(its job wrote no results for that commit); left out")
            continue
        try:
            docs = []
            for root in roots:
                doc = load_json(str(Path(root) / rel), "asv results", MAX_ASV_FILE_BYTES)
                if not isinstance(doc, dict) or doc.get("version") not in KNOWN_RESULT_VERSIONS:
                    known = ", ".join(map(str, KNOWN_RESULT_VERSIONS))
                    raise ReportError(f"{Path(root) / rel}: not an asv results file of a "
                                      f"version this attnperf reads ({known})")
                docs.append(doc)
            merged = merge_docs(docs, owner)
        except ReportError as exc:
            notes.append(f"{rel}: {exc}; left out")
            continue
        # asv's own writer: compact, NaN as a bare literal (asv/util.py write_json)
        dest.write_text(f"{under}/{rel}", json.dumps(merged, separators=(",", ":")))
        written.append(rel)
    return written, notes
