"""Shards of the asv suite: which (kernel, problem, pass) combinations one job measures.

A suite too large for one job is split into ``N`` shards; shard ``K`` of ``N`` (``K/N``,
1-based) measures the combinations that hash to it.  The hash is of a combination's stable
id -- ``kernel|problem id``, the problem id carrying its pass tag for a training pass
(``b1_h8_sq512_d64_bf16_causal_bwd``): the suite's cache key, the same words asv's history
keys are made of -- never of its position in the grid.  So

* the assignment is the same on every machine, in every process and for every commit
  (SHA-256, not Python's salted ``hash``): both commits of a pair are measured in one shard;
* adding a kernel or a problem moves no other combination to another shard;
* each benchmark of a combination (its time, accuracy, peak memory, views) is in the shard
  of that combination: the suite measures a combination once and every benchmark reads it.

Shards are balanced in count, not in cost (a large problem costs more than a small one).
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Sequence

from ..errors import InvalidShapeError, SelectionError, UnknownNameError, UsageError
from .catalog import pass_id

MAX_SHARDS = 64  # more jobs than this would each measure a handful of combinations
# The asv suite measures only shard K/N's combinations when this holds "K/N" (the other
# combinations read n/a); `attnperf ci bench --shard K/N` sets it for asv.
ENV = "ATTNPERF_ASV_SHARD"
ALLOWED = (f"give K/N, shard K of N, with whole numbers 1 <= K <= N <= {MAX_SHARDS} "
           "(e.g. 1/2 and 2/2)")


def combination_id(kernel: str, problem_id: str) -> str:
    """The stable id of one combination: ``kernel|problem id`` (the suite's cache key)."""
    return f"{kernel}|{problem_id}"


def shard_of(kernel: str, problem_id: str, count: int) -> int:
    """The shard (1..``count``) that measures ``kernel`` on ``problem_id``."""
    digest = hashlib.sha256(combination_id(kernel, problem_id).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def params_problem_id(params: Sequence[str]) -> str:
    """The problem id of an asv parameter combination (kernel, problem[, pass]): the
    problem's own id, or for a training pass the id with its pass tag (as the suite keys
    it); a combination that names no known problem keeps its words, so it still hashes
    the same every time."""
    if len(params) > 2:
        try:
            return pass_id(params[1], params[2])
        except (UnknownNameError, InvalidShapeError):
            return f"{params[1]} {params[2]}"
    return params[1] if len(params) > 1 else ""


@dataclasses.dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based); checked on construction (:class:`UsageError`)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not (isinstance(self.count, int) and 1 <= self.count <= MAX_SHARDS
                and isinstance(self.index, int) and 1 <= self.index <= self.count):
            raise UsageError(f"shard {self.index}/{self.count}: {ALLOWED}")

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @classmethod
    def parse(cls, text: str, where: str = "--shard") -> Shard:
        """``"K/N"`` -> Shard; :class:`UsageError` naming ``where``, the value and what is
        allowed otherwise."""
        k, sep, n = text.strip().partition("/")
        if sep and k.isdigit() and n.isdigit():  # digits only: no sign, no spaces inside
            index, count = int(k), int(n)
            if 1 <= count <= MAX_SHARDS and 1 <= index <= count:
                return cls(index, count)
        raise UsageError(f"{where} {text!r}: {ALLOWED}")

    @classmethod
    def from_environ(cls) -> Shard | None:
        """``ATTNPERF_ASV_SHARD`` (the asv suite's selection): None when unset or empty;
        :class:`SelectionError` for a value that is not K/N."""
        raw = os.environ.get(ENV, "").strip()
        if not raw:
            return None
        try:
            return cls.parse(raw, ENV)
        except UsageError as exc:
            raise SelectionError(str(exc)) from None

    def owns(self, kernel: str, problem_id: str) -> bool:
        """Does this shard measure ``kernel`` on ``problem_id`` (a pass's id for a pass)?"""
        return self.count == 1 or shard_of(kernel, problem_id, self.count) == self.index

    def owns_params(self, params: Sequence[str]) -> bool:
        """Does this shard measure the asv parameter combination ``params``?  A benchmark
        without parameters is every shard's (the first shard's, when they are merged)."""
        if not params:
            return True
        return self.owns(params[0], params_problem_id(params))



def owner(params: Sequence[str], count: int) -> int:
    """The shard (1..``count``) that measures the asv parameter combination ``params``
    (1 for a benchmark without parameters)."""
    if not params or count == 1:
        return 1
    return shard_of(params[0], params_problem_id(params), count)
