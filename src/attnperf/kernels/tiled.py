"""attnperf's in-repo kernel: block-wise attention with an online softmax.

The FlashAttention recurrence written in plain PyTorch: K/V are visited one
block at a time, a running row maximum ``m`` and normaliser ``l`` rescale the
fp32 accumulator, so the (seq_q x seq_kv) score matrix never exists in full.
Runs on CPU and GPU.  The asv suite tracks its performance history, so changes
here show up on the trend site commit by commit.
"""

from __future__ import annotations

import torch

from ..model.problem import PASSES
from .spec import KernelSpec

BLOCK_KV = 256


def tiled_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, causal: bool,
                    scale: float, block_kv: int = BLOCK_KV) -> torch.Tensor:
    b, h, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    g = h // hkv
    # Group the query heads that share one K/V head: (B, Hkv, G, Sq, D).
    qg = q.reshape(b, hkv, g, sq, d)
    m = torch.full((b, hkv, g, sq, 1), float("-inf"), dtype=torch.float32, device=q.device)
    l = torch.zeros((b, hkv, g, sq, 1), dtype=torch.float32, device=q.device)
    acc = torch.zeros((b, hkv, g, sq, d), dtype=torch.float32, device=q.device)
    qpos = torch.arange(sq, device=q.device)
    for start in range(0, sk, block_kv):
        if causal and start > sq - 1:
            break  # top-left causal: no query sees keys at or past this block
        end = min(start + block_kv, sk)
        kb = k[:, :, None, start:end]
        vb = v[:, :, None, start:end]
        s = torch.matmul(qg, kb.transpose(-2, -1)).float() * scale
        if causal and end - 1 > 0:
            kpos = torch.arange(start, end, device=q.device)
            s.masked_fill_(kpos[None, :] > qpos[:, None], float("-inf"))
        # Key 0 is visible to every query, so m is finite after the first block.
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        p = torch.exp(s - m_new)
        alpha = torch.exp(m - m_new)
        l = l * alpha + p.sum(dim=-1, keepdim=True)
        acc = acc * alpha + torch.matmul(p.to(v.dtype), vb).float()
        m = m_new
    return (acc / l).to(q.dtype).reshape(b, h, sq, d)


KERNELS = [
    KernelSpec(
        name="tiled",
        fn=tiled_attention,
        family="in-repo",
        passes=PASSES,
        description=f"in-repo block-wise online-softmax attention (PyTorch, KV block {BLOCK_KV})",
        workspace_bytes=lambda p: (
            p.batch * p.heads * p.seq_q * (min(BLOCK_KV, p.seq_kv) * 12 + p.head_dim * 8)
        ),
    )
]
