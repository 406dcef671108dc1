"""Seeded random inputs for a problem.  Never zeros: zeros hide unwritten
outputs and wrong indexing, and can run faster than real data."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import torch

from ..model.problem import Problem

DEFAULT_SEED = 20251013


def torch_dtype(name: str) -> torch.dtype:
    dtype: torch.dtype = getattr(torch, name)
    return dtype


def seed_for(problem: Problem, seed: int = DEFAULT_SEED, what: str = "") -> int:
    """A per-problem seed, stable across processes (unlike ``hash()``).  Every pass
    of a shape draws the forward problem's Q, K, V (the random seed is derived from the
    forward id)."""
    digest = hashlib.sha256(f"{seed}:{problem.with_pass('fwd').id}{what}".encode()).digest()
    return int.from_bytes(digest[:6], "little")


def make_inputs(problem: Problem, device: str, seed: int = DEFAULT_SEED
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Fresh standard-normal Q, K, V in SDPA layout on ``device``."""
    draw = _drawer(problem, device, seed_for(problem, seed))
    return (draw(problem.heads, problem.seq_q), draw(problem.kv_heads, problem.seq_kv),
            draw(problem.kv_heads, problem.seq_kv))


def make_grad_output(problem: Problem, device: str, seed: int = DEFAULT_SEED) -> torch.Tensor:
    """The seeded standard-normal dO (shaped like the output) the backward passes use."""
    return _drawer(problem, device, seed_for(problem, seed, ":dout"))(problem.heads, problem.seq_q)


def _drawer(problem: Problem, device: str, seed: int) -> Callable[[int, int], torch.Tensor]:
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    dt = torch_dtype(problem.dtype)

    def draw(heads: int, seq: int) -> torch.Tensor:
        return torch.randn(problem.batch, heads, seq, problem.head_dim, generator=gen,
                           device=device, dtype=torch.float32).to(dt)
    return draw
