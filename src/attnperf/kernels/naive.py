"""The textbook attention: explicit matmul, softmax, matmul (materialises scores)."""

from __future__ import annotations

import torch

from ..model.problem import PASSES
from .spec import KernelSpec, causal_mask, kv_group


def naive_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool,
                    scale: float) -> torch.Tensor:
    g = kv_group(q, k)
    if g > 1:
        k = k.repeat_interleave(g, dim=1)
        v = v.repeat_interleave(g, dim=1)
    scores = torch.matmul(q, k.transpose(-2, -1)) * scale
    if causal:
        scores = scores.masked_fill(~causal_mask(q.shape[2], k.shape[2], q.device),
                                    float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return torch.matmul(probs, v)


KERNELS = [KernelSpec(
    name="naive", fn=naive_attention, family="reference",
    description="explicit matmul-softmax-matmul in PyTorch (scores materialised)", passes=PASSES,
    workspace_bytes=lambda p: p.batch * p.heads * p.seq_q * p.seq_kv * (2 * p.element_size + 8))]
