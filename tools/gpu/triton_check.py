"""GPU check of the in-repo Triton FlashAttention: forward and gradients against float64.

Run from the repository root on a CUDA host (PYTHONPATH=src).  Prints, per case and dtype,
the relative error of out, dQ, dK, dV against a float64 reference computed from copies of the
inputs, and PASS/FAIL against the tolerances of tests/test_triton_flash.py; exits 1 on a FAIL.
Cases cover ragged lengths, decode, GQA/MQA, Sq != Sk, D 64/128, causal and not, bf16/fp16.
"""
import math
import sys

import torch

from attnperf.kernels import triton_flash as tf

TOL = {torch.float16: 2e-3, torch.bfloat16: 1.5e-2}
CASES = [  # (B, Hq, Hkv, Sq, Sk, D, causal, dtypes)
    (2, 8, 8, 1000, 1000, 64, False, ("bf16", "fp16")),
    (1, 16, 4, 2048, 2048, 128, True, ("bf16",)),     # GQA
    (1, 8, 1, 333, 1500, 64, False, ("bf16",)),       # MQA, Sq < Sk
    (1, 8, 2, 1500, 333, 128, True, ("fp16",)),       # Sq > Sk
    (4, 8, 8, 1, 4096, 128, False, ("bf16",)),        # decode
]
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def reference(q, k, v, causal, scale):
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    s = (q @ k.transpose(-1, -2)) * scale
    if causal:
        keep = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool, device=q.device).tril()
        s = s.masked_fill(~keep, float("-inf"))
    return torch.softmax(s, dim=-1) @ v


def rel(x, ref):
    d = ref.norm().item()
    return (x.double() - ref).norm().item() / (d if d > 0 else 1.0)


def main() -> int:
    bad = 0
    gen = torch.Generator(device="cuda").manual_seed(0)
    for case in CASES:
        b, hq, hkv, sq, sk, d, causal, names = case
        for dtype in (DTYPES[n] for n in names):
            shape_q, shape_kv = (b, hq, sq, d), (b, hkv, sk, d)
            q, k, v = (torch.randn(s, generator=gen, device="cuda").to(dtype)
                       for s in (shape_q, shape_kv, shape_kv))
            do = torch.randn(shape_q, generator=gen, device="cuda").to(dtype)
            q64, k64, v64 = (t.double().requires_grad_() for t in (q, k, v))
            q, k, v = (t.clone().requires_grad_() for t in (q, k, v))
            out = tf.flash_attention(q, k, v, causal=causal)
            out.backward(do)
            ref = reference(q64, k64, v64, causal, 1.0 / math.sqrt(d))
            ref.backward(do.double())
            errs = {"out": rel(out, ref), "dq": rel(q.grad, q64.grad),
                    "dk": rel(k.grad, k64.grad), "dv": rel(v.grad, v64.grad)}
            ok = all(e <= TOL[dtype] for e in errs.values())
            bad += not ok
            print(f"{'PASS' if ok else 'FAIL'} {case[:7]} {str(dtype)[6:]:8s} "
                  + " ".join(f"{n}={e:.2e}" for n, e in errs.items()), flush=True)
            del q64, k64, v64, ref
            torch.cuda.empty_cache()
    print(f"{bad} failing")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
