"""The backward kernels.  ``P`` is recomputed from Q, K and the saved ``L``, never stored.

1. ``_bwd_preprocess``: ``Delta = rowsum(dO * O)`` (fp32), one value per query
   row (it equals ``rowsum(P * dP)``, the softmax-Jacobian term).
2. ``_attn_bwd_dkdv``: one program per (K/V block, batch*kv-head).  It keeps its
   K and V tiles resident and loops over the query heads of its GQA group and,
   for each, over the query blocks, accumulating ``dV += P^T dO`` and
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
backward kernels use the forward's causal block skipping (the dK/dV kernel
starts at the first query block that can see its keys and masks only the query
blocks that straddle the diagonal).
"""

from __future__ import annotations

from .config import tl, triton

if triton is not None:
    from .config import _DKDV_CONFIGS, _DQ_CONFIGS, _KEY, _quick_bench
    from .forward import _kv_range, _query_block

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
        o = tl.load(
            O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :],
            mask=row_ok[:, None],
            other=0.0,
        ).to(tl.float32)
        do = tl.load(
            DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :],
            mask=row_ok[:, None],
            other=0.0,
        ).to(tl.float32)
        tl.store(Delta + pid_bh.to(tl.int64) * SEQ_Q + offs_m, tl.sum(o * do, 1), mask=row_ok)

    @triton.jit
    def _dkdv_inner(
        dk,
        dv,
        k,
        v,
        q_base,
        do_base,
        l_base,
        d_base,
        stride_qm,
        stride_dom,
        offs_n,
        offs_d,
        lo,
        hi,
        qk_scale,
        SEQ_Q,
        MASK_CAUSAL: tl.constexpr,
        EVEN_M: tl.constexpr,
        SHIFT: tl.constexpr,
        BLOCK_M: tl.constexpr,
    ):
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
        k = tl.load(
            K + b * stride_kb + hk * stride_kh + offs_n[:, None] * stride_kn + offs_d[None, :],
            mask=col_ok[:, None],
            other=0.0,
        )
        v = tl.load(
            V + b * stride_vb + hk * stride_vh + offs_n[:, None] * stride_vn + offs_d[None, :],
            mask=col_ok[:, None],
            other=0.0,
        )
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
        tl.store(
            DK + b * stride_dkb + hk * stride_dkh + offs_n[:, None] * stride_dkn + offs_d[None, :],
            dk.to(DK.dtype.element_ty),
            mask=col_ok[:, None],
        )
        tl.store(
            DV + b * stride_dvb + hk * stride_dvh + offs_n[:, None] * stride_dvn + offs_d[None, :],
            dv.to(DV.dtype.element_ty),
            mask=col_ok[:, None],
        )

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
        q = tl.load(
            Q + b * stride_qb + h * stride_qh + offs_m[:, None] * stride_qm + offs_d[None, :],
            mask=row_ok[:, None],
            other=0.0,
        )
        do = tl.load(
            DO + b * stride_dob + h * stride_doh + offs_m[:, None] * stride_dom + offs_d[None, :],
            mask=row_ok[:, None],
            other=0.0,
        )
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
        tl.store(
            DQ + b * stride_dqb + h * stride_dqh + offs_m[:, None] * stride_dqm + offs_d[None, :],
            dq.to(DQ.dtype.element_ty),
            mask=row_ok[:, None],
        )

