"""The textbook attention: explicit matmul, softmax, matmul (materialises scores)."""

from __future__ import annotations

import math

import torch

from ..model.problem import Problem
from .spec import KernelSpec, causal_mask


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


KERNELS = [KernelSpec(
    name="naive", fn=naive_attention, family="reference",
    description="explicit matmul-softmax-matmul in PyTorch (scores materialised)",
    workspace_bytes=lambda p: p.batch * p.heads * p.seq_q * p.seq_kv * (2 * p.element_size + 8))]
