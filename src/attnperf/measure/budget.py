"""How long to spend on one timing, and when to stop sampling.

:class:`Budget` is the one stopping rule of every timing loop in
:mod:`attnperf.measure.timing`: take ``min_samples``, then stop as soon as the
samples agree (IQR/median below ``stable_ratio``), the time budget is spent, or
``max_samples`` are in.  :func:`keep_sampling` applies it.
"""

from __future__ import annotations

import dataclasses

from ..model.samples import iqr_ratio


@dataclasses.dataclass(frozen=True)
class Budget:
    """How long to spend on one measurement.

    ``min_samples`` are always taken; sampling then stops as soon as the spread
    (IQR/median) is below ``stable_ratio``, or ``budget_s`` is spent (timed
    work on a CPU; on a GPU the wall time of each sample, idle gap included),
    or ``max_samples`` are in.  ``warmup_s`` of untimed calls come first;
    ``target_sample_s`` sets how many calls make one sample.

    GPU only:

    * ``retake_fraction``: samples taken under power or thermal slowdown are
      retaken, at most ``ceil(retake_fraction * max_samples)`` extra samples.
    * ``slow_margin``: a flagged sample is retaken only when it is also this much
      slower than the median of the samples drawn so far (None: every flagged
      sample is retaken).  A GPU at its power cap reports the cap after nearly
      every sample, most of them on time: the flag alone says where the GPU is,
      not that the sample is off.
    * ``settle_s``: before each timing's samples, untimed cycles of the sample
      protocol (gap, warm, replays) run for about this long (at least one
      cycle).  The first samples of a fresh process can read a few percent slow
      with the clocks at their maximum and no slowdown reason reported; with
      few samples that transient can move the median.  The asv suite's budgets
      use 0.
    * ``captures``: the calls are captured into this many CUDA graphs and the
      samples take turns over them (settling cycles too).  A kernel can run at
      a slightly different speed from one capture of the same calls to the next
      within a process; with one capture a whole timing lands in one such state,
      several spread its samples over as many (whole turns, within
      ``max_samples``).  The median comes from the pooled samples; a sample is
      judged slow for a retake against its own capture's samples and retaken
      from it; a capture that fails leaves fewer (said in the note).  Graph
      memory is that of K captures while the timing runs.  Default 1.
    """

    min_samples: int = 10
    max_samples: int = 100
    budget_s: float = 0.5
    warmup_s: float = 0.05
    target_sample_s: float = 2e-3
    stable_ratio: float = 0.03
    retake_fraction: float = 0.5
    slow_margin: float | None = 0.02
    settle_s: float = 0.1
    captures: int = 1

    def __post_init__(self) -> None:
        if self.captures < 1:
            raise ValueError(f"captures must be >= 1, got {self.captures}")


QUICK = Budget(min_samples=6, max_samples=30, budget_s=0.15, warmup_s=0.02)


def keep_sampling(samples: list[float], spent_s: float, budget: Budget) -> bool:
    """Whether another sample is due after ``samples`` that cost ``spent_s``."""
    if len(samples) < budget.min_samples:
        return True
    if len(samples) >= budget.max_samples or spent_s >= budget.budget_s:
        return False
    return iqr_ratio(samples) >= budget.stable_ratio  # not yet stable
