"""FlashAttention forward and backward written in Triton (attnperf's in-repo GPU kernel).

Public API
----------
``flash_attention(q, k, v, causal=False, scale=None)``
    q: (B, Hq, Sq, D); k, v: (B, Hkv, Sk, D) with ``Hq % Hkv == 0`` (GQA/MQA),
    D in {64, 128}, bf16 or fp16.  Differentiable (``torch.autograd.Function``).
    ``causal=True`` uses PyTorch's *top-left* convention: query ``i`` sees keys
    ``0..i`` (``F.scaled_dot_product_attention(is_causal=True)``), also when
    ``Sq != Sk``.  ``scale`` defaults to ``1/sqrt(D)``.
``unsupported_reason(dtype, head_dim, device_type, compute_capability)``
    ``None`` when the kernel can run, else a one-line reason.
``TRITON_IMPORT_ERROR``
    ``None`` when Triton imported, else why it did not (the module still imports).

Design
------
*Forward* (``_attn_fwd``).  One program per (query block of ``BLOCK_M`` rows,
batch*query-head).  The program keeps its Q tile in registers and walks the K/V
sequence in ``BLOCK_N`` blocks.  Scores ``S = Q K^T`` come out of ``tl.dot`` in
fp32; the softmax is *online*: a running row maximum ``m`` and row sum ``l``
(both fp32) are updated per block and the fp32 output accumulator is rescaled
by ``alpha = 2^(m_old - m_new)`` before ``P V`` is added.  The exponentials use
``exp2``: the softmax scale and ``log2(e)`` are folded into one multiplier
(``qk_scale = scale * log2(e)``), so every score costs one FMA plus one
``exp2`` (the MUFU instruction) instead of a multiply and a natural ``exp``.
At the end ``O = acc / l`` and the per-row log-sum-exp ``L = m + log2(l)`` is
stored (fp32, **base 2**, i.e. ``L * ln 2`` is the natural LSE) for the
backward.

*Pipelining.*  ``num_stages`` (autotuned, 2-4) lets Triton software-pipeline
the K/V loads of the inner loop: the loads for block ``j+1..j+stages-1`` are
issued (cp.async / TMA-like async copies into shared memory) while the tensor
cores work on block ``j``.  ``BLOCK_M`` is 128 on the GPU (the M of an sm90
wgmma per 4 warps), ``BLOCK_N`` 64 or 128, 4 or 8 warps; configurations that
do not fit shared memory (e.g. 3-4 stages of 128x128 K and V tiles on an A100's
164 KB) fail to compile and the autotuner discards them, so the list also
holds configurations that fit sm80.  Autotuning is keyed on a power-of-two
bucket of the sequence lengths, ``HEAD_DIM`` and ``CAUSAL`` (plus dtypes),
with a short benchmark per config so tuning stays quick (the first call of a
new key costs ~10-40 s of compile + tuning on an H100).  The choice is cached
on disk with the compiled kernels (``cache_results``): a later process -- each
asv round is one -- reuses it instead of tuning again, so every round of a
commit times the same configuration.  Under
``TRITON_INTERPRET=1`` (CPU tests) a single small configuration is used; the
choice is made when the module is imported.

K/V loads are plain masked pointer loads.  An sm90 alternative that loads the
full (unmasked) K/V blocks through host-side TMA descriptors exists behind the
private ``_use_tma=True`` switch; on an H100 with Triton 3.6 it was not faster
(best config 269-279 vs 307-316 TF/s at 4x16x2048 d128, 455 vs 474 TF/s at
2x32x8192 d128 causal), so it is off by default.

*Ragged lengths.*  Sequence lengths need not be multiples of the block sizes:
query rows past ``Sq`` are loaded as zeros and never stored, key columns past
``Sk`` are loaded as zeros and their scores set to ``-inf``.  Only the blocks
that can contain such columns (or the causal diagonal) take the masked code
path; the bulk of the loop runs unmasked.  ``Sq = 1`` (decode) is one block
with a single live row.

*Causal.*  For query block ``[m0, m0 + BLOCK_M)`` key blocks that start past
the block's last row are never visited; key blocks that every row sees
completely (``n0 + BLOCK_N - 1 <= m0``) run unmasked; only the one or two
blocks straddling the diagonal apply the ``key <= query`` mask.  Key 0 is
visible to every query, so no row ever has an empty softmax.  Causal query
blocks are scheduled heaviest first (reversed program order) to shorten the
tail of the grid.

*GQA.*  Query head ``h`` reads K/V head ``h // (Hq // Hkv)``; nothing is
expanded in memory.

*Backward* (``P`` is recomputed from Q, K and the saved ``L``, never stored):

1. ``_bwd_preprocess``: ``Delta = rowsum(dO * O)`` (fp32), one value per
   query row (it equals ``rowsum(P * dP)``, the softmax-Jacobian term).
2. ``_attn_bwd_dkdv``: one program per (K/V block, batch*kv-head).  It keeps
   its K and V tiles resident and loops over the query heads of its GQA group
   and, for each, over the query blocks, accumulating ``dV += P^T dO`` and
   ``dK += dS^T Q`` (``dS = P * (dP - Delta)``, ``dP = dO V^T``) in fp32
   registers.  Each dK/dV row has exactly one owner, so no atomics are needed
   and the result is deterministic; the GQA reduction over the group's query
   heads happens in registers too.
3. ``_attn_bwd_dq``: one program per (query block, batch*query-head) looping
   over the K/V blocks it sees, accumulating ``dQ += dS K`` in fp32.

Splitting dQ from dK/dV costs one extra recomputation of ``Q K^T`` and
``dO V^T`` per (query, key) block pair, but the alternative (one pass that
accumulates dQ across programs) needs fp32 atomic adds on dQ: non-deterministic
summation order, an fp32 dQ buffer plus a cast, and atomic contention.  Both
backward kernels use the same causal block skipping as the forward (the dK/dV
kernel starts at the first query block that can see its keys and masks only the
query blocks that straddle the diagonal).

*FLOP model* (what benchmark TF/s figures divide by): forward
``4 * B * Hq * Sq * Sk * D`` (two matmuls, 2 FLOPs per multiply-add); causal
counts only the visible (query, key) pairs, ``Sq*(Sq+1)/2`` for ``Sq == Sk``,
i.e. roughly half.  Backward is counted as ``2.5x`` the forward (five matmuls
against two: ``QK^T`` recomputed, ``dO V^T``, ``P^T dO``, ``dS^T Q``, ``dS K``).
"""

from __future__ import annotations

import math

import torch

try:
    import triton
    import triton.language as tl
    from triton.tools.tensor_descriptor import TensorDescriptor
    TRITON_IMPORT_ERROR: "str | None" = None
except Exception as exc:  # ImportError, or a broken install
    triton = None
    tl = None
    TensorDescriptor = None
    TRITON_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

__all__ = ["flash_attention", "unsupported_reason", "TRITON_IMPORT_ERROR"]

SUPPORTED_HEAD_DIMS = (64, 128)
SUPPORTED_DTYPES = (torch.bfloat16, torch.float16)
LOG2E = 1.4426950408889634


def _interpret() -> bool:
    if triton is None:
        return False
    try:
        return bool(triton.knobs.runtime.interpret)  # reads TRITON_INTERPRET now
    except AttributeError:  # Triton < 3.4 has no knobs; treat as not interpreting
        return False


def unsupported_reason(dtype: torch.dtype, head_dim: int, device_type: str,
                       compute_capability: "tuple | None" = None) -> "str | None":
    """None when ``flash_attention`` can run on these inputs, else a one-line reason."""
    if TRITON_IMPORT_ERROR is not None:
        return f"Triton is not installed or failed to import ({TRITON_IMPORT_ERROR})"
    if device_type != "cuda" and not _interpret():
        return f"device '{device_type}' is not CUDA and TRITON_INTERPRET is not set"
    if head_dim not in SUPPORTED_HEAD_DIMS:
        return f"head_dim {head_dim} is not supported (only 64 or 128)"
    if dtype not in SUPPORTED_DTYPES:
        return f"dtype {dtype} is not supported (only bfloat16 or float16)"
    if device_type == "cuda" and compute_capability is not None and tuple(compute_capability) < (8, 0):
        return f"compute capability {tuple(compute_capability)} < 8.0 (needs Ampere or newer)"
    return None


def _bucket(n: int) -> int:
    """Power-of-two bucket of a sequence length (autotune key), capped at 16384."""
    return min(1 << (max(int(n), 1) - 1).bit_length(), 16384)


def _cdiv(a: int, b: int) -> int:
    # Plain int arithmetic: triton.cdiv is a constexpr_function wrapper, slow on the host.
    return -(-a // b)


_CAPABILITY: dict = {}


def _capability(device: torch.device) -> tuple:
    idx = device.index if device.index is not None else torch.cuda.current_device()
    if idx not in _CAPABILITY:
        _CAPABILITY[idx] = torch.cuda.get_device_capability(idx)
    return _CAPABILITY[idx]


# Whether the kernels below were built for Triton's CPU interpreter (decided at import).
_INTERPRETED = _interpret()

if triton is not None:

    def _quick_bench(fn, quantiles):
        # Short benchmark per config: tuning quality is adequate, tuning time small.
        return triton.testing.do_bench(fn, warmup=5, rep=25, quantiles=quantiles)

    def _size_kv_descriptors(nargs):
        # TMA descriptors (forward, sm90+) carry their block shape, which depends on the config.
        for name in ("K_desc", "V_desc"):
            desc = nargs[name]
            if isinstance(desc, TensorDescriptor):
                desc.block_shape = [nargs["BLOCK_N"], nargs["HEAD_DIM"]]

    if _INTERPRETED:
        _FWD_CONFIGS = [triton.Config({"BLOCK_M": 32, "BLOCK_N": 16}, num_warps=4, num_stages=1,
                                      pre_hook=_size_kv_descriptors)]
        _DKDV_CONFIGS = [triton.Config({"BLOCK_M": 16, "BLOCK_N": 32}, num_warps=4, num_stages=1)]
        _DQ_CONFIGS = [triton.Config({"BLOCK_M": 32, "BLOCK_N": 16}, num_warps=4, num_stages=1)]
    else:
        def _cfgs(rows, pre_hook=None):
            return [triton.Config({"BLOCK_M": bm, "BLOCK_N": bn}, num_warps=w, num_stages=s, pre_hook=pre_hook)
                    for bm, bn, w, s in rows]
        # (BLOCK_M, BLOCK_N, num_warps, num_stages)
        # Pruned by measurement (H200, Triton 3.6, bf16 d128, 2026-11-26): 8 warps
        # (two warpgroups of 64 rows) with 64-128 key blocks and 3-4 stages are the
        # best at 4,16,2048 and 2,32,8192 causal (441-462 TF/s); 4-warp 128-row
        # tiles ran 193-375.  64x64x4 serves short queries (decode, seq 64).
        _FWD_CONFIGS = _cfgs([
            (128, 64, 8, 3), (128, 64, 8, 4), (128, 128, 8, 3), (64, 64, 4, 3),
        ], pre_hook=_size_kv_descriptors)
        # dK/dV: BLOCK_N is the resident K/V block, BLOCK_M the streamed Q block.
        _DKDV_CONFIGS = _cfgs([
            (32, 128, 8, 2), (32, 128, 8, 3), (64, 128, 8, 2), (64, 64, 4, 2),
            (32, 64, 4, 3), (64, 64, 8, 3),
        ])
        # dQ: BLOCK_M is the resident Q block, BLOCK_N the streamed K/V block.
        _DQ_CONFIGS = _cfgs([
            (128, 32, 8, 2), (128, 64, 8, 2), (128, 32, 4, 3), (64, 64, 4, 3),
            (64, 32, 4, 3), (128, 64, 8, 3),
        ])

    _KEY = ["Q_BUCKET", "K_BUCKET", "HEAD_DIM", "CAUSAL"]

    @triton.jit
    def _query_block(H, GROUP, SEQ_Q, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr):
        """The query block of this program (forward and dQ share the grid): the
        (batch*query-head) index, batch, query head, K/V head (GQA), first row, row
        offsets, head-dim offsets and the in-range row mask."""
        pid_m = tl.program_id(0)
        if CAUSAL:  # heaviest (last) query blocks first
            pid_m = tl.num_programs(0) - 1 - pid_m
        pid_bh = tl.program_id(1)
        b = (pid_bh // H).to(tl.int64)
        h = (pid_bh % H).to(tl.int64)
        start_m = pid_m * BLOCK_M
        offs_m = start_m + tl.arange(0, BLOCK_M)
        return pid_bh, b, h, h // GROUP, start_m, offs_m, tl.arange(0, HEAD_DIM), offs_m < SEQ_Q

    @triton.jit
    def _kv_range(start_m, SEQ_K, CAUSAL: tl.constexpr, SHIFT: tl.constexpr, DROP_LAST: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        """Key range a query block visits: [0, full_end) unmasked, [full_end, hi) masked."""
        if CAUSAL:
            # Last row start_m + BLOCK_M - 1 sees keys <= that row (+SHIFT, tests only).
            hi = tl.minimum(SEQ_K, start_m + BLOCK_M + SHIFT)
            # Block [n0, n0+BLOCK_N) is fully visible to the first row iff n0+BLOCK_N-1 <= start_m+SHIFT.
            full_end = tl.minimum((SEQ_K // BLOCK_N) * BLOCK_N, ((start_m + SHIFT + 1) // BLOCK_N) * BLOCK_N)
        else:
            hi = SEQ_K
            full_end = (SEQ_K // BLOCK_N) * BLOCK_N
        if DROP_LAST:  # test-only fault injection: skip the last visited K/V block
            hi = (tl.cdiv(hi, BLOCK_N) - 1) * BLOCK_N
            full_end = tl.minimum(full_end, hi)
        return full_end, hi

    @triton.jit
    def _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                   lo, hi, qk_scale, SEQ_K, K_desc, V_desc, kv_row0,
                   MASKED: tl.constexpr, CAUSAL: tl.constexpr, SHIFT: tl.constexpr,
                   BLOCK_N: tl.constexpr, USE_TMA: tl.constexpr):
        offs_n0 = tl.arange(0, BLOCK_N)
        for start_n in range(lo, hi, BLOCK_N):
            offs_n = start_n + offs_n0
            k_ptrs = k_base + offs_n[:, None] * stride_kn + offs_d[None, :]
            v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :]
            if MASKED:
                k = tl.load(k_ptrs, mask=(offs_n < SEQ_K)[:, None], other=0.0)
            elif USE_TMA:
                k = K_desc.load([kv_row0 + start_n, 0])
            else:
                k = tl.load(k_ptrs)
            s = tl.dot(q, tl.trans(k))
            if MASKED:
                visible = (offs_n < SEQ_K)[None, :]
                if CAUSAL:
                    visible = visible & (offs_n[None, :] <= offs_m[:, None] + SHIFT)
                s = tl.where(visible, s, float("-inf"))
            # Scores in the log2 domain: s * scale * log2(e).
            m_new = tl.maximum(m_i, tl.max(s, 1) * qk_scale)
            p = tl.math.exp2(s * qk_scale - m_new[:, None])
            alpha = tl.math.exp2(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None]
            if MASKED:
                v = tl.load(v_ptrs, mask=(offs_n < SEQ_K)[:, None], other=0.0)
            elif USE_TMA:
                v = V_desc.load([kv_row0 + start_n, 0])
            else:
                v = tl.load(v_ptrs)
            acc = tl.dot(p.to(v.dtype), v, acc)
            m_i = m_new
        return acc, l_i, m_i

    @triton.autotune(configs=_FWD_CONFIGS, key=_KEY + ["USE_TMA"], do_bench=_quick_bench, cache_results=True)
    @triton.jit
    def _attn_fwd(Q, K, V, O, L, K_desc, V_desc,
                  stride_qb, stride_qh, stride_qm,
                  stride_kb, stride_kh, stride_kn,
                  stride_vb, stride_vh, stride_vn,
                  stride_ob, stride_oh, stride_om,
                  H, GROUP, SEQ_Q, SEQ_K, qk_scale, Q_BUCKET, K_BUCKET,
                  HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, SHIFT: tl.constexpr,
                  DROP_LAST: tl.constexpr, USE_TMA: tl.constexpr,
                  BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_bh, b, h, hk, start_m, offs_m, offs_d, row_ok = _query_block(
            H, GROUP, SEQ_Q, CAUSAL, BLOCK_M, HEAD_DIM)

        q_ptrs = Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :]
        q = tl.load(q_ptrs, mask=row_ok[:, None], other=0.0)
        k_base = K + b * stride_kb + hk * stride_kh
        v_base = V + b * stride_vb + hk * stride_vh
        # Row of this K/V head in the (B*Hkv*Sk, D) view the TMA descriptors use.
        kv_row0 = ((pid_bh // H) * (H // GROUP) + (pid_bh % H) // GROUP) * SEQ_K

        m_i = tl.full([BLOCK_M], float("-inf"), dtype=tl.float32)
        l_i = tl.zeros([BLOCK_M], dtype=tl.float32)
        acc = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

        full_end, hi = _kv_range(start_m, SEQ_K, CAUSAL, SHIFT, DROP_LAST, BLOCK_M, BLOCK_N)
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                                   0, full_end, qk_scale, SEQ_K, K_desc, V_desc, kv_row0,
                                   False, CAUSAL, SHIFT, BLOCK_N, USE_TMA)
        acc, l_i, m_i = _fwd_inner(acc, l_i, m_i, q, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                                   full_end, hi, qk_scale, SEQ_K, K_desc, V_desc, kv_row0,
                                   True, CAUSAL, SHIFT, BLOCK_N, USE_TMA)

        o = acc / l_i[:, None]
        o_ptrs = O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :]
        tl.store(o_ptrs, o.to(O.dtype.element_ty), mask=row_ok[:, None])
        tl.store(L + pid_bh.to(tl.int64) * SEQ_Q + offs_m, m_i + tl.math.log2(l_i), mask=row_ok)

    @triton.jit
    def _bwd_preprocess(O, DO, Delta,
                        stride_ob, stride_oh, stride_om,
                        stride_dob, stride_doh, stride_dom,
                        H, SEQ_Q, HEAD_DIM: tl.constexpr, BLOCK_M: tl.constexpr):
        pid_m = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = (pid_bh // H).to(tl.int64)
        h = (pid_bh % H).to(tl.int64)
        offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
        offs_d = tl.arange(0, HEAD_DIM)
        row_ok = offs_m < SEQ_Q
        o = tl.load(O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :],
                    mask=row_ok[:, None], other=0.0).to(tl.float32)
        do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :],
                     mask=row_ok[:, None], other=0.0).to(tl.float32)
        tl.store(Delta + pid_bh.to(tl.int64) * SEQ_Q + offs_m, tl.sum(o * do, 1), mask=row_ok)

    @triton.jit
    def _dkdv_inner(dk, dv, k, v, q_base, do_base, l_base, d_base, stride_qm, stride_dom, offs_n, offs_d,
                    lo, hi, qk_scale, SEQ_Q,
                    MASK_CAUSAL: tl.constexpr, EVEN_M: tl.constexpr, SHIFT: tl.constexpr,
                    BLOCK_M: tl.constexpr):
        offs_m0 = tl.arange(0, BLOCK_M)
        for start_m in range(lo, hi, BLOCK_M):
            offs_m = start_m + offs_m0
            q_ptrs = q_base + offs_m[:, None] * stride_qm + offs_d[None, :]
            do_ptrs = do_base + offs_m[:, None] * stride_dom + offs_d[None, :]
            if EVEN_M:
                q = tl.load(q_ptrs)
                lse = tl.load(l_base + offs_m)
            else:
                # Rows past SEQ_Q load as zeros (q, dO, L, Delta): their P is exp2(0) = 1
                # but dO = 0 and dP - Delta = 0, so they add exactly nothing.
                row_ok = offs_m < SEQ_Q
                q = tl.load(q_ptrs, mask=row_ok[:, None], other=0.0)
                lse = tl.load(l_base + offs_m, mask=row_ok, other=0.0)
            # Transposed formulation: rows are keys, columns are queries.
            qkT = tl.dot(k, tl.trans(q))
            pT = tl.math.exp2(qkT * qk_scale - lse[None, :])
            if MASK_CAUSAL:
                pT = tl.where(offs_m[None, :] + SHIFT >= offs_n[:, None], pT, 0.0)
            if EVEN_M:
                do = tl.load(do_ptrs)
                delta = tl.load(d_base + offs_m)
            else:
                do = tl.load(do_ptrs, mask=row_ok[:, None], other=0.0)
                delta = tl.load(d_base + offs_m, mask=row_ok, other=0.0)
            dv = tl.dot(pT.to(do.dtype), do, dv)
            dpT = tl.dot(v, tl.trans(do))
            dsT = pT * (dpT - delta[None, :])
            dk = tl.dot(dsT.to(q.dtype), q, dk)
        return dk, dv

    @triton.autotune(configs=_DKDV_CONFIGS, key=_KEY, do_bench=_quick_bench, cache_results=True)
    @triton.heuristics({"EVEN_M": lambda a: a["SEQ_Q"] % a["BLOCK_M"] == 0})
    @triton.jit
    def _attn_bwd_dkdv(Q, K, V, DO, L, Delta, DK, DV,
                       stride_qb, stride_qh, stride_qm,
                       stride_kb, stride_kh, stride_kn,
                       stride_vb, stride_vh, stride_vn,
                       stride_dob, stride_doh, stride_dom,
                       stride_dkb, stride_dkh, stride_dkn,
                       stride_dvb, stride_dvh, stride_dvn,
                       HQ, HKV, GROUP, SEQ_Q, SEQ_K, qk_scale, sm_scale, Q_BUCKET, K_BUCKET,
                       HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, SHIFT: tl.constexpr,
                       DROP_LAST: tl.constexpr, EVEN_M: tl.constexpr,
                       BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_n = tl.program_id(0)
        pid_bh = tl.program_id(1)
        b = (pid_bh // HKV).to(tl.int64)
        hk = (pid_bh % HKV).to(tl.int64)
        start_n = pid_n * BLOCK_N
        offs_n = start_n + tl.arange(0, BLOCK_N)
        offs_d = tl.arange(0, HEAD_DIM)
        col_ok = offs_n < SEQ_K
        k = tl.load(K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :],
                    mask=col_ok[:, None], other=0.0)
        v = tl.load(V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :],
                    mask=col_ok[:, None], other=0.0)
        dk = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)
        dv = tl.zeros([BLOCK_N, HEAD_DIM], dtype=tl.float32)

        q_end = tl.cdiv(SEQ_Q, BLOCK_M) * BLOCK_M
        if CAUSAL:
            # Key j is seen by rows i >= j - SHIFT; every key of the block by rows
            # i >= start_n + BLOCK_N - 1 - SHIFT.  Query blocks in [lo, mid) straddle
            # the diagonal (masked), [mid, q_end) see the whole block (unmasked).
            lo = (tl.maximum(start_n - SHIFT, 0) // BLOCK_M) * BLOCK_M
            mid = tl.cdiv(tl.maximum(start_n + BLOCK_N - 1 - SHIFT, 0), BLOCK_M) * BLOCK_M
            mid = tl.minimum(tl.maximum(mid, lo), q_end)
        else:
            lo = 0
            mid = 0
        if DROP_LAST:  # test-only fault injection: the last K/V block gets no gradient
            is_last = start_n + BLOCK_N >= SEQ_K
            lo = tl.where(is_last, q_end, lo)
            mid = tl.where(is_last, q_end, mid)

        for g in range(0, GROUP):
            h = hk * GROUP + g
            q_base = Q + b * stride_qb + h * stride_qh
            do_base = DO + b * stride_dob + h * stride_doh
            row0 = (b * HQ + h) * SEQ_Q
            dk, dv = _dkdv_inner(dk, dv, k, v, q_base, do_base, L + row0, Delta + row0,
                                 stride_qm, stride_dom, offs_n, offs_d, lo, mid, qk_scale, SEQ_Q,
                                 True, EVEN_M, SHIFT, BLOCK_M)
            dk, dv = _dkdv_inner(dk, dv, k, v, q_base, do_base, L + row0, Delta + row0,
                                 stride_qm, stride_dom, offs_n, offs_d, mid, q_end, qk_scale, SEQ_Q,
                                 False, EVEN_M, SHIFT, BLOCK_M)

        dk = dk * sm_scale
        tl.store(DK + b * stride_dkb + hk * stride_dkh + offs_n[:, None] * stride_dkn + offs_d[None, :],
                 dk.to(DK.dtype.element_ty), mask=col_ok[:, None])
        tl.store(DV + b * stride_dvb + hk * stride_dvh + offs_n[:, None] * stride_dvn + offs_d[None, :],
                 dv.to(DV.dtype.element_ty), mask=col_ok[:, None])

    @triton.jit
    def _dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                  lo, hi, qk_scale, SEQ_K,
                  MASKED: tl.constexpr, CAUSAL: tl.constexpr, SHIFT: tl.constexpr,
                  BLOCK_N: tl.constexpr):
        offs_n0 = tl.arange(0, BLOCK_N)
        for start_n in range(lo, hi, BLOCK_N):
            offs_n = start_n + offs_n0
            k_ptrs = k_base + offs_n[:, None] * stride_kn + offs_d[None, :]
            v_ptrs = v_base + offs_n[:, None] * stride_vn + offs_d[None, :]
            if MASKED:
                k = tl.load(k_ptrs, mask=(offs_n < SEQ_K)[:, None], other=0.0)
                v = tl.load(v_ptrs, mask=(offs_n < SEQ_K)[:, None], other=0.0)
            else:
                k = tl.load(k_ptrs)
                v = tl.load(v_ptrs)
            qk = tl.dot(q, tl.trans(k))
            p = tl.math.exp2(qk * qk_scale - lse[:, None])
            if MASKED:
                visible = (offs_n < SEQ_K)[None, :]
                if CAUSAL:
                    visible = visible & (offs_n[None, :] <= offs_m[:, None] + SHIFT)
                p = tl.where(visible, p, 0.0)
            dp = tl.dot(do, tl.trans(v))
            ds = p * (dp - delta[:, None])
            dq = tl.dot(ds.to(k.dtype), k, dq)
        return dq

    @triton.autotune(configs=_DQ_CONFIGS, key=_KEY, do_bench=_quick_bench, cache_results=True)
    @triton.jit
    def _attn_bwd_dq(Q, K, V, DO, L, Delta, DQ,
                     stride_qb, stride_qh, stride_qm,
                     stride_kb, stride_kh, stride_kn,
                     stride_vb, stride_vh, stride_vn,
                     stride_dob, stride_doh, stride_dom,
                     stride_dqb, stride_dqh, stride_dqm,
                     H, GROUP, SEQ_Q, SEQ_K, qk_scale, sm_scale, Q_BUCKET, K_BUCKET,
                     HEAD_DIM: tl.constexpr, CAUSAL: tl.constexpr, SHIFT: tl.constexpr,
                     DROP_LAST: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr):
        pid_bh, b, h, hk, start_m, offs_m, offs_d, row_ok = _query_block(
            H, GROUP, SEQ_Q, CAUSAL, BLOCK_M, HEAD_DIM)
        q = tl.load(Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
                    mask=row_ok[:, None], other=0.0)
        do = tl.load(DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :],
                     mask=row_ok[:, None], other=0.0)
        row0 = pid_bh.to(tl.int64) * SEQ_Q
        lse = tl.load(L + row0 + offs_m, mask=row_ok, other=0.0)
        delta = tl.load(Delta + row0 + offs_m, mask=row_ok, other=0.0)
        k_base = K + b * stride_kb + hk * stride_kh
        v_base = V + b * stride_vb + hk * stride_vh
        dq = tl.zeros([BLOCK_M, HEAD_DIM], dtype=tl.float32)

        full_end, hi = _kv_range(start_m, SEQ_K, CAUSAL, SHIFT, DROP_LAST, BLOCK_M, BLOCK_N)
        dq = _dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                       0, full_end, qk_scale, SEQ_K, False, CAUSAL, SHIFT, BLOCK_N)
        dq = _dq_inner(dq, q, do, lse, delta, k_base, v_base, stride_kn, stride_vn, offs_m, offs_d,
                       full_end, hi, qk_scale, SEQ_K, True, CAUSAL, SHIFT, BLOCK_N)

        dq = dq * sm_scale
        tl.store(DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqm + offs_d[None, :],
                 dq.to(DQ.dtype.element_ty), mask=row_ok[:, None])


def _check_inputs(q, k, v, allow_fp32: bool):
    if TRITON_IMPORT_ERROR is not None:
        raise RuntimeError(f"Triton is unavailable: {TRITON_IMPORT_ERROR}")
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError("q, k, v must be 4-D (B, H, S, D)")
    b, hq, _, d = q.shape
    bk, hkv, sk, dk = k.shape
    if v.shape != k.shape or bk != b or dk != d:
        raise ValueError(f"shape mismatch: q {tuple(q.shape)}, k {tuple(k.shape)}, v {tuple(v.shape)}")
    if hq % hkv:
        raise ValueError(f"query heads {hq} not a multiple of kv heads {hkv}")
    if sk < 1 or q.shape[2] < 1:
        raise ValueError("empty sequence")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError("q, k, v must share a dtype")
    cc = _capability(q.device) if q.device.type == "cuda" else None
    reason = unsupported_reason(torch.bfloat16 if (allow_fp32 and q.dtype == torch.float32) else q.dtype,
                                d, q.device.type, cc)
    if reason is not None:
        raise ValueError(reason)


def _last_dim_contiguous(t):
    return t if t.stride(-1) == 1 else t.contiguous()


def _strides(t):
    return t.stride(0), t.stride(1), t.stride(2)


def _want_tma(q, k, v, use_tma):
    # Off by default: on an H100 (Triton 3.6) the best TMA config measured 269-279 TF/s
    # vs 307-316 for pointer loads at 4x16x2048 d128, 455 vs 474 at 2x32x8192 causal.
    if not use_tma:
        return False
    if not (k.is_contiguous() and v.is_contiguous()):
        return False
    return _INTERPRETED or (q.is_cuda and _capability(q.device) >= (9, 0))


def _kv_descriptor(t):
    # 2-D (B*Hkv*Sk, D) view; the block shape is set per config by _size_kv_descriptors.
    rows = t.shape[0] * t.shape[1] * t.shape[2]
    return TensorDescriptor(t, [rows, t.shape[3]], [t.shape[3], 1], [16, t.shape[3]])


def _fwd(q, k, v, causal, scale, shift, drop_last, use_tma=False):
    b, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    use_tma = _want_tma(q, k, v, use_tma)
    k_desc, v_desc = (_kv_descriptor(k), _kv_descriptor(v)) if use_tma else (k, v)
    o = torch.empty_like(q)
    lse = torch.empty((b * hq, sq), device=q.device, dtype=torch.float32)
    grid = lambda meta: (_cdiv(sq, meta["BLOCK_M"]), b * hq)  # noqa: E731
    _attn_fwd[grid](q, k, v, o, lse, k_desc, v_desc, *_strides(q), *_strides(k), *_strides(v), *_strides(o),
                    hq, hq // hkv, sq, sk, scale * LOG2E, _bucket(sq), _bucket(sk),
                    HEAD_DIM=d, CAUSAL=causal, SHIFT=shift, DROP_LAST=drop_last, USE_TMA=use_tma)
    return o, lse


def _bwd(do, q, k, v, o, lse, causal, scale, shift, drop_last):
    b, hq, sq, d = q.shape
    hkv, sk = k.shape[1], k.shape[2]
    do = _last_dim_contiguous(do)
    delta = torch.empty_like(lse)
    pre_block = 64
    _bwd_preprocess[(_cdiv(sq, pre_block), b * hq)](
        o, do, delta, *_strides(o), *_strides(do), hq, sq, HEAD_DIM=d, BLOCK_M=pre_block)
    dq = torch.empty_like(q)
    dk = torch.empty_like(k)
    dv = torch.empty_like(v)
    qk_scale = scale * LOG2E
    grid_kv = lambda meta: (_cdiv(sk, meta["BLOCK_N"]), b * hkv)  # noqa: E731
    _attn_bwd_dkdv[grid_kv](q, k, v, do, lse, delta, dk, dv,
                            *_strides(q), *_strides(k), *_strides(v), *_strides(do),
                            *_strides(dk), *_strides(dv),
                            hq, hkv, hq // hkv, sq, sk, qk_scale, scale, _bucket(sq), _bucket(sk),
                            HEAD_DIM=d, CAUSAL=causal, SHIFT=shift, DROP_LAST=drop_last)
    grid_q = lambda meta: (_cdiv(sq, meta["BLOCK_M"]), b * hq)  # noqa: E731
    _attn_bwd_dq[grid_q](q, k, v, do, lse, delta, dq,
                         *_strides(q), *_strides(k), *_strides(v), *_strides(do), *_strides(dq),
                         hq, hq // hkv, sq, sk, qk_scale, scale, _bucket(sq), _bucket(sk),
                         HEAD_DIM=d, CAUSAL=causal, SHIFT=shift, DROP_LAST=drop_last)
    return dq, dk, dv


class _FlashAttention(torch.autograd.Function):

    @staticmethod
    def forward(ctx, q, k, v, causal, scale, shift, drop_last, use_tma):
        o, lse = _fwd(q, k, v, causal, scale, shift, drop_last, use_tma)
        ctx.save_for_backward(q, k, v, o, lse)
        ctx.causal, ctx.scale, ctx.shift, ctx.drop_last = causal, scale, shift, drop_last
        return o

    @staticmethod
    def backward(ctx, do):
        q, k, v, o, lse = ctx.saved_tensors
        dq, dk, dv = _bwd(do, q, k, v, o, lse, ctx.causal, ctx.scale, ctx.shift, ctx.drop_last)
        return dq, dk, dv, None, None, None, None, None


def flash_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, causal: bool = False,
                    scale: "float | None" = None, *, _debug_scale_mult: float = 1.0,
                    _debug_drop_last_block: bool = False, _debug_causal_shift: int = 0,
                    _allow_fp32: bool = False, _use_tma: bool = False) -> torch.Tensor:
    """Scaled dot-product attention ``softmax(scale * Q K^T [+ causal mask]) V`` in Triton.

    q: (B, Hq, Sq, D); k, v: (B, Hkv, Sk, D), Hq % Hkv == 0; D in {64, 128};
    bf16/fp16.  Returns (B, Hq, Sq, D) in q's dtype.  Differentiable in q, k, v.

    The underscore keywords are for tests only: ``_debug_*`` inject known faults
    (scale multiplied, last K/V block skipped, causal boundary shifted) so the
    tests can show their checks catch them; ``_allow_fp32`` admits float32
    inputs (used by interpreter tests on CPU); ``_use_tma=True`` makes the
    forward load full K/V blocks through TMA descriptors (sm90+, contiguous
    K/V; experimental, off by default, see the module docstring).
    """
    _check_inputs(q, k, v, _allow_fp32)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    scale = float(scale) * float(_debug_scale_mult)
    q, k, v = (_last_dim_contiguous(t) for t in (q, k, v))
    return _FlashAttention.apply(q, k, v, bool(causal), scale, int(_debug_causal_shift),
                                 bool(_debug_drop_last_block), _use_tma)


# ---- registration (the registry finds KERNELS by reference, like every kernel) ----
def _supports(problem, device: str):
    cc = torch.cuda.get_device_capability() if device == "cuda" and torch.cuda.is_available() else None
    return unsupported_reason(getattr(torch, problem.dtype), problem.head_dim, device, cc)


def _kernels():
    from .spec import KernelSpec

    return [KernelSpec(
        name="triton_flash", fn=flash_attention, family="in-repo", supports=_supports,
        dtypes=("float16", "bfloat16"), passes=("fwd", "bwd", "fwd+bwd"),
        description="in-repo Triton FlashAttention (online softmax, autotuned; forward + backward)")]


KERNELS = _kernels()
