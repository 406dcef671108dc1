"""The textbook attention: explicit matmul, softmax, matmul (materialises scores)."""

from __future__ import annotations

import math

import torch

from ..inputs import causal_mask
from ..registry import REGISTRY, KernelSpec
from ..shapes import Problem


def naive_attention(q, k, v, problem: Problem):
    g = problem.gqa_group
    if g > 1:
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(problem.head_dim))
    if problem.causal:
        scores = scores.masked_fill(~causal_mask(problem.seq_q, problem.seq_kv, q.device),
                                    float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return torch.matmul(probs, v)


def _check(problem: Problem, device: str):
    return True, "available"


REGISTRY.register(KernelSpec(
    name="naive", fn=naive_attention, family="reference", check=_check,
    description="explicit matmul-softmax-matmul in PyTorch (scores materialised)",
    workspace_bytes=lambda p: p.batch * p.heads * p.seq_q * p.seq_kv * (2 * p.element_size + 8)))
