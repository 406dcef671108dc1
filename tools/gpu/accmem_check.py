"""GPU proof for issue 11 items 4 and 5: accuracy and peak memory through the suite's path.

Run on a CUDA host from the repository root (about 2 minutes on an H100):

    PYTHONPATH=/tmp/site:$PWD/src python tools/gpu/accmem_check.py

Prints, for the default GPU grid kernels (attnperf.asv.suite.GRID_KERNELS) at
train (4,16,2048,128 bf16) and seed (8,4,64,64 fp16), what the asv cache entry
records (attnperf.asv.suite.measure_grid, the function asv's setup_cache calls):

  1. per kernel x problem: status, max and mean abs error against float64, the
     peak MiB of one warm call, and the output's own size (the peak includes the
     output, so a peak below it would be wrong);
  2. the same grid measured a second time in a fresh session: the ratio of each
     figure between the two (the A/A spread the gate's factors, x1.25 for errors
     and x1.10 for memory, must stay clear of);
  3. tiled with its softmax in bfloat16 instead of float32, against tiled, at both
     problems: the error ratios the x1.25 accuracy factor is meant to flag.

Pass: every ok row has finite errors and peak >= output MiB; every A/A ratio is
within 1.25 (errors) and 1.10 (memory) -- "A/A ok" below; the bf16 softmax shows
ratios (informational: on bf16 problems the CPU measured 1.15-1.43x).
Writes $OUT/accmem_check.json (or ./accmem_check.json without $OUT).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import torch

from attnperf.analysis.gate import METRIC_FACTORS
from attnperf.asv import suite
from attnperf.kernels import registry
from attnperf.measure.session import measure
from attnperf.model.catalog import PRESETS

PROBLEMS = [PRESETS["train"], PRESETS["seed"]]


def tiled_bf16_softmax(q, k, v, *, causal, scale, block_kv=256):
    """attnperf's tiled kernel with the exponentials taken in bfloat16."""
    b, h, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    qg = q.reshape(b, hkv, h // hkv, sq, d)
    m = torch.full((*qg.shape[:-1], 1), float("-inf"), dtype=torch.float32, device=q.device)
    l = torch.zeros_like(m)
    acc = torch.zeros(qg.shape, dtype=torch.float32, device=q.device)
    qpos = torch.arange(sq, device=q.device)
    for start in range(0, sk, block_kv):
        if causal and start > sq - 1:
            break
        end = min(start + block_kv, sk)
        kb, vb = k[:, :, None, start:end], v[:, :, None, start:end]
        s = torch.matmul(qg, kb.transpose(-2, -1)).float() * scale
        if causal and end - 1 > 0:
            s.masked_fill_(torch.arange(start, end, device=q.device)[None, :] > qpos[:, None],
                           float("-inf"))
        m_new = torch.maximum(m, s.amax(dim=-1, keepdim=True))
        p = torch.exp((s - m_new).bfloat16()).float()  # the change under test
        alpha = torch.exp(m - m_new)
        l = l * alpha + p.sum(dim=-1, keepdim=True)
        acc = acc * alpha + torch.matmul(p.to(v.dtype), vb).float()
        m = m_new
    return (acc / l).to(q.dtype).reshape(b, h, sq, d)


def _grid():
    return suite.measure_grid(list(suite.GRID_KERNELS), [p.id for p in PROBLEMS], "cuda")


def _figures(e):
    c = e.get("correctness") or {}
    return c.get("max_abs_error"), c.get("mean_abs_error"), e.get("peak_memory_bytes")


def _ratio(a, b):
    return b / a if a and b is not None and a is not None else None


def main() -> int:
    if not torch.cuda.is_available():
        print("error: no CUDA device", file=sys.stderr)
        return 2
    t0 = time.time()
    print(f"device: {torch.cuda.get_device_name()}  torch {torch.__version__}")
    first, second = _grid(), _grid()
    out = {"device": torch.cuda.get_device_name(), "torch": torch.__version__, "rows": []}
    print(f"\n{'kernel':16} {'problem':26} {'status':11} {'max_abs':>9} {'mean_abs':>9} "
          f"{'peak MiB':>9} {'out MiB':>8}   A/A max mean peak")
    aa_ok = True
    for p in PROBLEMS:
        out_mib = p.batch * p.heads * p.seq_q * p.head_dim * p.element_size / 2**20
        for k in suite.GRID_KERNELS:
            e1, e2 = first.get(suite.key(k, p.id), {}), second.get(suite.key(k, p.id), {})
            f1, f2 = _figures(e1), _figures(e2)
            ratios = [_ratio(a, b) for a, b in zip(f1, f2)]
            limits = (METRIC_FACTORS["Accuracy"],) * 2 + (METRIC_FACTORS["PeakMemory"],)
            ok = all(r is None or (r > 0 and max(r, 1 / r) <= lim) for r, lim in zip(ratios, limits))
            aa_ok &= ok
            peak = f1[2] / 2**20 if f1[2] is not None else None
            bad_peak = peak is not None and peak < out_mib
            print(f"{k:16} {p.id:26} {e1.get('status', '?'):11} {_fmt(f1[0]):>9} {_fmt(f1[1]):>9} "
                  f"{_fmt(peak, '.1f'):>9} {out_mib:8.1f}   "
                  + " ".join(_fmt(r, '.3f') for r in ratios)
                  + ("" if ok else "  A/A SPREAD") + ("  PEAK < OUTPUT" if bad_peak else ""))
            out["rows"].append({"kernel": k, "problem": p.id, "status": e1.get("status"),
                                "reason": e1.get("reason"), "first": f1, "second": f2,
                                "aa_ratios": ratios, "output_mib": out_mib,
                                "peak_memory_note": e1.get("peak_memory_note")})
    print(f"\nA/A {'ok' if aa_ok else 'NOT ok'}: every ratio within x{METRIC_FACTORS['Accuracy']:g} "
          f"(errors) / x{METRIC_FACTORS['PeakMemory']:g} (memory)")

    base = registry.get("tiled")
    variant = dataclasses.replace(base, name="tiled_bf16_softmax", fn=tiled_bf16_softmax)
    print("\ntiled with its softmax in bfloat16, against tiled (error ratios):")
    out["bf16_softmax"] = []
    for p in PROBLEMS:
        a = measure("tiled", p, "cuda", latency=False, budget=suite.ASV_BUDGET)
        b = measure("tiled_bf16_softmax", p, "cuda", latency=False, budget=suite.ASV_BUDGET,
                    spec=variant)
        ra = _ratio(a.correctness.max_abs_error, b.correctness.max_abs_error)
        rm = _ratio(a.correctness.mean_abs_error, b.correctness.mean_abs_error)
        flagged = [n for n, r in (("max", ra), ("mean", rm))
                   if r is not None and r > METRIC_FACTORS["Accuracy"]]
        print(f"  {p.id:26} status {b.status:7} max x{_fmt(ra, '.3f')}  mean x{_fmt(rm, '.3f')}  "
              f"flagged at x{METRIC_FACTORS['Accuracy']:g}: {', '.join(flagged) or 'none'}")
        out["bf16_softmax"].append({"problem": p.id, "status": b.status, "max_ratio": ra,
                                    "mean_ratio": rm})
    dest = Path(os.environ.get("OUT", ".")) / "accmem_check.json"
    dest.write_text(json.dumps(out, indent=2, default=str) + "\n")
    print(f"\n{time.time() - t0:.0f} s; wrote {dest}")
    return 0 if aa_ok else 1


def _fmt(x, spec=".2e"):
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


if __name__ == "__main__":
    sys.exit(main())
