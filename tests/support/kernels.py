"""Deliberately wrong kernels that more than one test file registers (negative fixtures),
written against the public kernel API ``fn(q, k, v, *, causal, scale)`` (tests/test_passes.py,
tests/test_suite.py)."""

from __future__ import annotations

import torch

from attnperf.kernels.naive import naive_attention


class _WrongDK(torch.autograd.Function):
    """A right forward; a backward whose dK misses the softmax scale."""

    @staticmethod
    def forward(ctx, q, k, v, causal, scale):
        ctx.save_for_backward(q, k, v)
        ctx.causal, ctx.scale = causal, scale
        return naive_attention(q, k, v, causal=causal, scale=scale)

    @staticmethod
    def backward(ctx, dout):
        q, k, v = (x.detach().requires_grad_(True) for x in ctx.saved_tensors)
        with torch.enable_grad():
            out = naive_attention(q, k, v, causal=ctx.causal, scale=ctx.scale)
            dq, dk, dv = torch.autograd.grad(out, (q, k, v), dout)
        return dq, dk / ctx.scale, dv, None, None


def wrong_dk_only(q, k, v, *, causal, scale):
    """A right forward whose dK misses the softmax scale: only the gradient gate sees it."""
    return _WrongDK.apply(q, k, v, causal, scale)
