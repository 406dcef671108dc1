"""What a kernel is: the public kernel API (:data:`KERNEL_API_VERSION` 1).

A kernel is a callable over PyTorch tensors in SDPA layout::

    def my_attention(q, k, v, *, causal: bool, scale: float) -> torch.Tensor: ...

``q`` is (batch, heads, seq_q, head_dim); ``k`` and ``v`` are (batch,
kv_heads, seq_kv, head_dim) -- fewer K/V heads than query heads is
grouped-query attention (query head ``h`` uses K/V head ``h // (heads //
kv_heads)``).  ``causal`` uses PyTorch's top-left aligned mask (query ``i``
sees keys ``0..i``); ``scale`` multiplies ``q @ k^T`` (``1/sqrt(head_dim)``).
It returns the output, shaped and typed like ``q``.

:func:`kernel` (``attnperf.kernel``) wraps such a callable in a
:class:`KernelSpec` that says what it is and where it can run::

    @attnperf.kernel(name="my_attn", family="triton", devices=["cuda"],
                     dtypes=["float16", "bfloat16"])
    def my_attn(q, k, v, *, causal, scale): ...

Optional parts of a spec:

* ``supports(problem)`` or ``supports(problem, device)`` -- ``None`` when the
  kernel can run the :class:`~attnperf.model.problem.Problem`, else the reason
  it cannot (asked before anything is allocated; ``devices`` and ``dtypes``
  are checked first).  Raising :class:`~attnperf.errors.KernelUnavailableError`
  from the call itself also records the config as unavailable.
* ``provenance`` -- a string (e.g. a version) or a callable
  ``(q, k, v, *, causal, scale) -> str | None`` saying what actually ran
  (recorded as the result's backend).
* ``flops(problem)`` / ``bytes(problem)`` -- the kernel's own work model
  (a sliding-window or sparse kernel does less than dense attention); the
  roofline uses them instead of :mod:`attnperf.model.roofline`'s.  They get
  the problem with its pass (``problem.mode``): count the backward's work too.
* ``workspace_bytes(problem)`` -- scratch memory beyond Q, K, V and O, so
  attnperf can skip a problem that would not fit before allocating it.
* ``passes`` -- the passes it can be timed in (``Problem.mode``: ``fwd``,
  ``bwd``, ``fwd+bwd``).  The backward passes take gradients of the output
  with ``torch.autograd.grad``: the kernel must be differentiable (plain
  PyTorch ops, or a ``torch.autograd.Function``).  Default ``None``: every
  pass, the backward ones when the output carries an autograd graph at the
  first call (else the config is recorded as unavailable, with that reason);
  ``passes=["fwd"]`` says up front that a kernel has no backward.

Kernels are found by the registry (:mod:`attnperf.kernels.registry`) through
the entry-point group ``attnperf.kernels`` and ``module:attribute``
references; the attribute holds one spec or a list of them.  Kernel modules
import this module, never the registry.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..model.problem import DTYPES, PASSES, Problem, canonical_dtype

if TYPE_CHECKING:
    import torch

# Bumped when the kernel contract above changes incompatibly; a plugin may
# check ``attnperf.KERNEL_API_VERSION`` to support several attnperf versions.
KERNEL_API_VERSION = 1

DEVICES = ("cpu", "cuda")
Availability = tuple[bool, str]
# The callables of the contract (module docstring), loose where plugins legitimately differ:
# ``fn(q, k, v, *, causal, scale)`` returning the output tensor; ``supports(problem[, device])``
# returning something falsy when the problem runs, else why not; ``provenance(q, k, v, *,
# causal, scale)`` returning what ran or None.
KernelFn = Callable[..., Any]
SupportsFn = Callable[..., object]
ProvenanceFn = Callable[..., object]


def _names(field: str, values: object, allowed: Sequence[str],
           canon: Callable[[Any], str] = lambda x: x) -> tuple[str, ...]:
    if isinstance(values, str) or not isinstance(values, (list, tuple, set, frozenset)):
        raise TypeError(f"KernelSpec {field} must be a list of names, got {values!r}")
    out: list[str] = []
    for v in values:
        try:
            c = canon(v)
        except ValueError:
            c = None
        if c is None or c not in allowed:  # None: canon refused it
            raise ValueError(f"KernelSpec {field}: unknown {v!r}; allowed: {', '.join(allowed)}")
        out.append(c)
    if not out:
        raise ValueError(f"KernelSpec {field} must name at least one of {', '.join(allowed)}")
    return tuple(dict.fromkeys(out))


def _arity(fn: Callable[..., object]) -> int:
    """Positional parameters ``fn`` accepts (2 or more for ``supports(problem, device)``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # builtins without a signature: assume the documented one
        return 1
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return 2
    return sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in params)


@dataclasses.dataclass(frozen=True)
class KernelSpec:
    """One kernel: its callable and what attnperf needs to know about it.

    Build it with :func:`kernel` (or directly); see the module docstring for the
    contract of ``fn`` and the optional parts.
    """

    name: str
    fn: KernelFn
    family: str = "plugin"
    description: str = ""
    devices: Sequence[str] = DEVICES
    dtypes: Sequence[str] = tuple(DTYPES)
    supports: SupportsFn | None = None
    provenance: None | str | ProvenanceFn = None
    flops: Callable[[Problem], int] | None = None
    bytes: Callable[[Problem], int] | None = None
    workspace_bytes: Callable[[Problem], int] | None = None
    passes: Sequence[str] | None = None  # None: all, backward when differentiable
    # Where the spec came from (an entry point or a module:attribute reference).
    origin: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.strip() or "|" in self.name:
            raise ValueError(f"KernelSpec name must be a non-empty string without '|', "
                             f"got {self.name!r}")
        if not callable(self.fn):
            raise TypeError(f"kernel {self.name!r}: fn must be callable, got {self.fn!r}")
        object.__setattr__(self, "devices", _names("devices", self.devices, DEVICES))
        object.__setattr__(self, "dtypes", _names("dtypes", self.dtypes, tuple(DTYPES),
                                                  canonical_dtype))
        if self.passes is not None:
            object.__setattr__(self, "passes", _names("passes", self.passes, PASSES))
        for field in ("supports", "flops", "bytes", "workspace_bytes"):
            value = getattr(self, field)
            if value is not None and not callable(value):
                raise TypeError(f"kernel {self.name!r}: {field} must be callable, got {value!r}")
        if self.provenance is not None and not (callable(self.provenance)
                                                or isinstance(self.provenance, str)):
            raise TypeError(f"kernel {self.name!r}: provenance must be a string or callable")
        if not self.description:
            doc = (inspect.getdoc(self.fn) or "").strip().splitlines()
            object.__setattr__(self, "description", doc[0] if doc else f"{self.family} kernel")

    # ---- what attnperf calls ----------------------------------------------
    def __call__(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *,
                 causal: bool = False, scale: float | None = None) -> torch.Tensor:
        """Call the kernel directly (``scale`` defaults to ``1/sqrt(head_dim)``)."""
        if scale is None:
            scale = 1.0 / math.sqrt(q.shape[-1])
        out: torch.Tensor = self.fn(q, k, v, causal=causal, scale=scale)
        return out

    def run(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
            problem: Problem) -> torch.Tensor:
        """The call attnperf times: nothing but the kernel."""
        out: torch.Tensor = self.fn(q, k, v, causal=problem.causal, scale=problem_scale(problem))
        return out

    def check(self, problem: Problem, device: str) -> Availability:
        """``(True, "available")`` or ``(False, why)``, before anything is allocated."""
        if device not in self.devices:
            where = " or ".join(d.upper() for d in self.devices)
            return False, f"{self.name} runs only on {where} (device is {device})"
        if problem.dtype not in self.dtypes:
            return False, (f"{self.name} supports {', '.join(self.dtypes)} only "
                           f"(problem is {problem.dtype})")
        if self.passes is not None and problem.mode not in self.passes:
            return False, (f"{self.name} supports the pass(es) {', '.join(self.passes)} only "
                           f"(problem is {problem.mode})")
        if self.supports is not None:
            why = (self.supports(problem, device) if _arity(self.supports) >= 2
                   else self.supports(problem))
            if why:
                return False, str(why)
        return True, "available"

    def backend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                problem: Problem) -> str | None:
        """What ran (the provenance), or None."""
        if self.provenance is None or isinstance(self.provenance, str):
            return self.provenance
        out = self.provenance(q, k, v, causal=problem.causal, scale=problem_scale(problem))
        return None if out is None else str(out)

    def scratch_bytes(self, problem: Problem) -> int:
        return int(self.workspace_bytes(problem)) if self.workspace_bytes else 0

    def work(self, problem: Problem) -> tuple[int | None, int | None]:
        """The kernel's own (FLOPs, bytes), None where the standard model applies."""
        f = int(self.flops(problem)) if self.flops else None
        b = int(self.bytes(problem)) if self.bytes else None
        return f, b


def problem_scale(problem: Problem) -> float:
    return 1.0 / math.sqrt(problem.head_dim)


def kernel(name: str | None = None, *, family: str = "plugin", description: str = "",
           devices: Sequence[str] = DEVICES, dtypes: Sequence[str] = tuple(DTYPES),
           supports: SupportsFn | None = None, provenance: None | str | ProvenanceFn = None,
           flops: Callable[[Problem], int] | None = None,
           bytes: Callable[[Problem], int] | None = None,  # noqa: A002 - the documented name
           workspace_bytes: Callable[[Problem], int] | None = None,
           passes: Sequence[str] | None = None) -> Callable[[KernelFn], KernelSpec]:
    """Decorator: turn ``fn(q, k, v, *, causal, scale)`` into a :class:`KernelSpec`.

    The name defaults to the function's name; the description to the first line
    of its docstring.  The result is still callable like the function.
    """
    def wrap(fn: KernelFn) -> KernelSpec:
        return KernelSpec(name=name or fn.__name__, fn=fn, family=family,
                          description=description, devices=devices, dtypes=dtypes,
                          supports=supports, provenance=provenance, flops=flops, bytes=bytes,
                          workspace_bytes=workspace_bytes, passes=passes)
    return wrap


def kv_group(q: torch.Tensor, k: torch.Tensor) -> int:
    """Query heads per K/V head, from the tensors (GQA when > 1)."""
    return q.shape[1] // k.shape[1]


def causal_mask(seq_q: int, seq_kv: int, device: torch.device | str | None) -> torch.Tensor:
    """True where query i may see key j (PyTorch's top-left aligned convention)."""
    import torch

    return torch.ones(seq_q, seq_kv, dtype=torch.bool, device=device).tril()
