"""attnperf's asv plugin for ``asv publish``: the regressions page judged like the PR verdict.

``attnperf site build`` names this module in the ``plugins`` of the temporary
asv config it publishes with (never in the repository's asv.conf.json, so no
other asv command imports attnperf), together with
``attnperf_regression_factors`` ({machine: factor}).  asv runs every
:class:`asv.publishing.OutputPublisher` subclass after its own; this one
(``order`` after asv's ``Regressions``) keeps in ``regressions.json`` and the
``regressions.xml`` feed only the steps that the PR verdict would flag on that
machine: worse by more than its factor (``ratio > factor``, the rule of
``asv continuous --factor``); accuracy and peak memory by more than their own
(:data:`attnperf.analysis.gate.METRIC_FACTORS`).

Views (TFLOP/s, GB/s, efficiency, regime, latency) never reach it: the
repository's asv.conf.json turns asv's detection off for them
(``regressions_first_commits``: null), as the PR job leaves them out of its
verdict (``-b '^(?!.*Views)'``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from asv import util
from asv.plugins.regressions import Regressions
from asv.publishing import OutputPublisher

from ..analysis.cells import device_of
from ..analysis.gate import metric_factor
from ..errors import ConfigError
from ..io import project_config
from ..io.asv_results import read_machine
from ..model.config import DEFAULT_FACTORS, default_factor

CONF_KEY = "attnperf_regression_factors"
# A graph of no machine in CONF_KEY (asv publishes only the machines named there): the
# smallest default factor, so the page hides no step a verdict could flag.
DEFAULT = min(DEFAULT_FACTORS.values())


def unlisted_factor(conf_dir: Path, mdir: Path, notes: list[str]) -> float:
    """The PR verdict's factor on a machine that ``attnperf_machines`` does not list: what
    ``attnperf ci bench`` judges at on the device its description in ``mdir`` records (a GPU,
    or none): ``[tool.attnperf]`` regression-factor of the repository, else the device's
    default.  A ``[tool.attnperf]`` that cannot be read adds a note and the default applies."""
    device = device_of(read_machine(mdir).info)
    try:
        return project_config.regression_factor(conf_dir, device)
    except ConfigError as exc:
        notes.append(f"{exc}; {mdir.name}'s regressions are judged at the {device} default "
                     f"x{default_factor(device):g}")
        return default_factor(device)


def _machine_factor(graph_path: str, factors: dict[str, float]) -> float | None:
    parts = graph_path.replace("\\", "/").split("/")
    for name, factor in factors.items():
        if util.sanitize_filename(f"machine-{name}") in parts:
            return factor
    return None


def keep(regression: list[Any], factors: dict[str, float], default: float) -> list[Any] | None:
    """The regression with only the jumps past its machine's factor, or None."""
    name, graph_path, params, idx, last_v, best_v, jumps = regression
    # Accuracy and peak memory: their own fixed factor, as in the PR verdict.
    factor = metric_factor(name) or _machine_factor(graph_path, factors) or default
    kept = [j for j in jumps if j[2] and j[3] is not None and j[3] / j[2] > factor]
    if not kept:
        return None
    return [name, graph_path, params, idx, last_v, best_v, kept]


class AttnperfVerdictFilter(OutputPublisher):  # type: ignore[misc]  # asv ships no types
    """Drop regressions the PR verdict would not flag (see the module docstring)."""

    name = "attnperf-regressions-filter"
    button_label = None
    description = "attnperf: regressions past each machine's PR-verdict factor"
    order = Regressions.order + 1

    @classmethod
    def publish(cls, conf: Any, repo: Any, benchmarks: Any, graphs: Any,
                revisions: dict[str, int]) -> None:
        factors = {str(k): float(v) for k, v in (getattr(conf, CONF_KEY, None) or {}).items()}
        default = float(getattr(conf, "attnperf_default_factor", DEFAULT))
        path = os.path.join(conf.html_dir, "regressions.json")
        try:
            with open(path) as fh:
                data = json.load(fh)
        except (OSError, ValueError):
            return
        regressions = [r for r in (keep(r, factors, default) for r in data.get("regressions", []))
                       if r is not None]
        revision_to_hash = {r: h for h, r in revisions.items()}
        Regressions._save(conf, {"regressions": regressions})
        Regressions._save_feed(conf, benchmarks, regressions, revisions, revision_to_hash)
