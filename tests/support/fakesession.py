"""A stand-in for ``attnperf.measure.session.Session`` inside the asv suite: it measures
nothing, records what the suite asked for and answers each job "unavailable"."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from attnperf.model.records import Measurement


def fake_session(device: str, record: Callable[[str, Any, Any, bool], None]) -> type:
    """A Session class for ``device`` that calls ``record(kernel, problem, budget, latency)``
    for every job it is given."""

    class FakeSession:
        environment: dict = {}
        ceilings: dict = {}

        def __init__(self, *a: object, **kw: object) -> None:
            self.device = device

        def __enter__(self) -> FakeSession:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def iter_grid(self, jobs, budget=None, latency=True, skip=None):
            for k, p in jobs:
                record(k, p, budget, latency)
                yield Measurement(k, p, device, status="unavailable", reason="fake")

    return FakeSession
