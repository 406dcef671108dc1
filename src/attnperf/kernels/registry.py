"""The kernel registry: every kernel attnperf can measure, by name.

Kernels come from ``module:attribute`` references, each naming a
:class:`~attnperf.kernels.spec.KernelSpec` or a list of them, found in three
places (one mechanism, three doors):

1. attnperf's built-ins, :data:`BUILTINS` -- also declared as entry points in
   attnperf's pyproject.toml, and loaded from this list too, so they work where
   attnperf runs from ``src/`` without installed metadata (the GPU host);
2. the entry-point group ``attnperf.kernels`` of every installed distribution
   (``importlib.metadata``): how another repository plugs its kernels in;
3. references added at run time: ``attnperf run --kernel-module pkg.mod:ATTR``,
   ``kernel-modules`` in ``[tool.attnperf]``, :func:`add_reference`, or the
   environment variable ``ATTNPERF_KERNEL_MODULES`` (how a worker process loads
   the same kernels as its parent).

A discovered entry point that fails to load never stops the others: it is
logged once as a warning naming the entry point and its error, and its name is
registered as a *broken* kernel (:class:`BrokenPlugin`): listed as unavailable
with that reason, and recorded as an error for every config it is asked to run.
An explicit reference (3.) that fails raises :class:`PluginError` instead.

The registry imports kernel modules; kernel modules never import the registry.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Iterable, Sequence
from typing import NoReturn

from ..errors import PluginError, UnknownNameError
from ..model.problem import Problem
from .spec import KernelFn, KernelSpec

log = logging.getLogger(__name__)

GROUP = "attnperf.kernels"

BUILTINS = (
    "attnperf.kernels.sdpa:KERNELS",
    "attnperf.kernels.naive:KERNELS",
    "attnperf.kernels.tiled:KERNELS",
    "attnperf.kernels.triton_flash:KERNELS",
)

# Extra kernel references from the environment (comma-separated module:attribute):
# how a measuring worker process, or a test's `attnperf run` subprocess, loads the
# same kernels as its parent.
ENV_MODULES = "ATTNPERF_KERNEL_MODULES"

# Old names that must keep resolving (history keys are never renamed).
ALIASES = {"pytorch_sdpa": "sdpa"}  # legacy single-config reports' kernel_name


def canonical_name(name: str) -> str:
    return ALIASES.get(name, name)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def load_reference(ref: str, origin: str = "") -> list[KernelSpec]:
    """The spec(s) that ``module:attribute`` names (raises :class:`PluginError`)."""
    module, sep, attr = ref.partition(":")
    if not sep or not module or not attr:
        raise PluginError(f"kernel reference {ref!r} must look like package.module:ATTRIBUTE")
    where = origin or ref
    try:
        obj: object = importlib.import_module(module)
    except Exception as exc:  # noqa: BLE001 - plugin code is arbitrary; report, never crash
        raise PluginError(f"kernel plugin {where} failed to import: {_short(exc)}") from exc
    try:
        for part in attr.split("."):
            obj = getattr(obj, part)
    except AttributeError:
        raise PluginError(f"kernel plugin {where}: module {module!r} has no attribute "
                          f"{attr!r}") from None
    specs: list[object] = list(obj) if isinstance(obj, (list, tuple)) else [obj]
    if not specs:
        raise PluginError(f"kernel plugin {where} holds no kernel (an empty list)")
    for s in specs:
        if not isinstance(s, KernelSpec):
            raise PluginError(f"kernel plugin {where} holds a {type(s).__name__}, expected a "
                              "KernelSpec (decorate the function with @attnperf.kernel(...))")
    return [s for s in specs if isinstance(s, KernelSpec)]  # all of them (checked above)


def _broken_call(reason: str) -> KernelFn:
    def fn(q: object, k: object, v: object, *, causal: bool, scale: float) -> NoReturn:
        raise PluginError(reason)
    return fn


def broken_spec(name: str, reason: str, origin: str) -> KernelSpec:
    """A placeholder for a plugin that could not load: every call raises its reason."""
    return KernelSpec(name=name, fn=_broken_call(reason), family="broken plugin",
                      description=reason, origin=origin)


def is_broken(spec: KernelSpec) -> bool:
    return spec.family == "broken plugin"


def availability(spec: KernelSpec, problems: Sequence[Problem], device: str
                 ) -> tuple[list[Problem], str]:
    """The problems of ``problems`` that ``spec`` runs on ``device``, and why not the
    others: the first refusal's reason ("" when it runs them all; a broken plugin's
    reason when it cannot load)."""
    if is_broken(spec):
        return [], spec.description
    runs, why = [], ""
    for problem in problems:
        ok, reason = spec.check(problem, device)
        if ok:
            runs.append(problem)
        elif not why:
            why = reason
    return runs, why


def entry_points(group: str = GROUP) -> list[tuple[str, str, str]]:
    """(name, ``module:attribute``, distribution) of every installed entry point
    in ``group``, first occurrence of each (name, value) only (a distribution seen
    twice on sys.path, e.g. an asv environment that lends a site-packages)."""
    from importlib import metadata

    seen = set()
    out = []
    for dist in metadata.distributions():
        try:
            dist_name = dist.metadata["Name"] or "?"
            eps = [ep for ep in dist.entry_points if ep.group == group]
        except Exception:  # noqa: BLE001 - a corrupt dist-info must not stop discovery
            continue
        for ep in eps:
            if (ep.name, ep.value) in seen:
                continue
            seen.add((ep.name, ep.value))
            out.append((ep.name, ep.value, f"{dist_name} {dist.version}"))
    return out


class Registry:
    def __init__(self) -> None:
        self._kernels: dict[str, KernelSpec] = {}
        self._refs: list[str] = []  # added at run time, in order
        self._loaded = False

    def register(self, spec: KernelSpec) -> KernelSpec:
        if spec.name in self._kernels:
            raise ValueError(f"kernel {spec.name!r} registered twice "
                             f"({self._kernels[spec.name].origin or 'built in'} and "
                             f"{spec.origin or 'built in'})")
        self._kernels[spec.name] = spec
        return spec

    def _add(self, specs: Iterable[KernelSpec], origin: str) -> list[str]:
        names = []
        for spec in specs:
            if not spec.origin:
                spec = _with_origin(spec, origin)
            if spec.name in self._kernels:
                log.warning("kernel plugin %s: a kernel named %r is already registered (%s); "
                            "ignoring this one", origin, spec.name,
                            self._kernels[spec.name].origin)
                continue
            self._kernels[spec.name] = spec
            names.append(spec.name)
        return names

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        done = set()
        for ref in BUILTINS:
            self._add(load_reference(ref), ref)
            done.add(ref)
        for name, ref, dist in entry_points():
            if ref in done:  # attnperf's own entry points: the built-ins above
                continue
            done.add(ref)
            origin = f"entry point '{name} = {ref}' ({dist})"
            try:
                specs = load_reference(ref, origin)
            except PluginError as exc:
                log.warning("%s", exc)
                if name not in self._kernels:
                    self._kernels[name] = broken_spec(name, str(exc), origin)
                continue
            self._add(specs, origin)
        self._load_environment()

    def _load_environment(self) -> None:
        for ref in filter(None, (r.strip() for r in os.environ.get(ENV_MODULES, "").split(","))):
            self.add_reference(ref)

    def add_reference(self, ref: str) -> list[str]:
        """Load ``module:attribute`` now; returns the names it registered.
        Raises :class:`PluginError` (one line: the reference and the problem)."""
        self._load()
        if ref in self._refs:
            return [n for n, s in self._kernels.items() if s.origin == ref]
        names = self._add(load_reference(ref), ref)
        self._refs.append(ref)
        return names

    def references(self) -> list[str]:
        """References added at run time (a worker process re-adds these)."""
        return list(self._refs)

    def get(self, name: str) -> KernelSpec:
        self._load()
        name = canonical_name(name)
        if name not in self._kernels:
            raise UnknownNameError(
                f"unknown kernel {name!r}; allowed: {', '.join(self.names())}")
        return self._kernels[name]

    def names(self) -> list[str]:
        self._load()
        return list(self._kernels)

    def broken(self) -> dict[str, str]:
        """Plugins that failed to load: name -> reason."""
        self._load()
        return {n: s.description for n, s in self._kernels.items() if is_broken(s)}


def _with_origin(spec: KernelSpec, origin: str) -> KernelSpec:
    import dataclasses
    return dataclasses.replace(spec, origin=origin)


REGISTRY = Registry()


def get(name: str) -> KernelSpec:
    return REGISTRY.get(name)


def names() -> list[str]:
    return REGISTRY.names()


def add_reference(ref: str) -> list[str]:
    return REGISTRY.add_reference(ref)


def origin_of(name: str) -> str | None:
    return REGISTRY.get(name).origin or None
