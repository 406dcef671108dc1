"""How each (kernel, problem) is measured: the options that travel together.

One frozen :class:`MeasureOptions` goes from the front ends (``attnperf run``,
the asv suite) through :class:`~attnperf.measure.session.Session` into the
worker process and to :func:`~attnperf.measure.bench.measure`, instead of the
same loose arguments in every signature.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from .budget import Budget
from .inputs import DEFAULT_SEED


@dataclasses.dataclass(frozen=True)
class MeasureOptions:
    """How to measure one (kernel, problem).

    ``budget``: the timing budget of each timing.  ``latency``: also time one
    isolated call (GPU only).  ``l2_flush``: flush the GPU's L2 before each
    isolated call.  ``seed``: the inputs' seed.  ``timeout_s``: the time limit
    of one config in a worker process (None: the session's, else
    :func:`~attnperf.measure.isolation.default_timeout_s` of the budget).
    """

    budget: Budget = Budget()
    latency: bool = True
    l2_flush: bool = True
    seed: int = DEFAULT_SEED
    timeout_s: float | None = None

    def updated(self, **changes: Any) -> MeasureOptions:
        """These options with the ``changes`` that are not None (the loose keyword
        arguments the measuring functions still accept)."""
        given = {k: v for k, v in changes.items() if v is not None}
        return dataclasses.replace(self, **given) if given else self


def options_of(options: MeasureOptions | None = None, **loose: Any) -> MeasureOptions:
    """``options`` (default :class:`MeasureOptions`) with the loose keyword arguments
    (``budget=``, ``latency=`` ...) given in their place."""
    return (options or MeasureOptions()).updated(**loose)
