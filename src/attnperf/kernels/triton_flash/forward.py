"""The forward kernel and the block geometry it shares with the dQ kernel.

One program per (query block of ``BLOCK_M`` rows, batch*query-head).  The
program keeps its Q tile in registers and walks the K/V sequence in ``BLOCK_N``
blocks.  Scores ``S = Q K^T`` come out of ``tl.dot`` in fp32; the softmax is
*online*: a running row maximum ``m`` and row sum ``l`` (both fp32) are updated
per block and the fp32 output accumulator is rescaled by
``alpha = 2^(m_old - m_new)`` before ``P V`` is added.  The exponentials use
``exp2``: the softmax scale and ``log2(e)`` are folded into one multiplier
(``qk_scale = scale * log2(e)``), so every score costs one FMA plus one
``exp2`` (the MUFU instruction) instead of a multiply and a natural ``exp``.
At the end ``O = acc / l`` and the per-row log-sum-exp ``L = m + log2(l)`` is
stored (fp32, **base 2**, i.e. ``L * ln 2`` is the natural LSE) for the
backward.

K/V loads are plain masked pointer loads.  An sm90 alternative loads the full
(unmasked) K/V blocks through host-side TMA descriptors (``USE_TMA``, the
private ``_use_tma=True`` switch of ``flash_attention``); it measured no faster,
so it is off by default.

*Ragged lengths.*  Sequence lengths need not be multiples of the block sizes:
query rows past ``Sq`` are loaded as zeros and never stored, key columns past
``Sk`` are loaded as zeros and their scores set to ``-inf``.  Only the blocks
that can contain such columns (or the causal diagonal) take the masked code
path; the bulk of the loop runs unmasked.  ``Sq = 1`` (decode) is one block
with a single live row.

*Causal* (PyTorch's top-left convention).  For query block
``[m0, m0 + BLOCK_M)`` key blocks that start past the block's last row are
never visited; key blocks that every row sees completely
(``n0 + BLOCK_N - 1 <= m0``) run unmasked; only the one or two blocks
straddling the diagonal apply the ``key <= query`` mask.  Key 0 is visible to
every query, so no row ever has an empty softmax.  Causal query blocks are
scheduled heaviest first (reversed program order) to shorten the tail of the
grid.

*GQA.*  Query head ``h`` reads K/V head ``h // (Hq // Hkv)``; nothing is
expanded in memory.

``SHIFT`` and ``DROP_LAST`` are test-only fault injections (the causal boundary
moved, the last K/V block skipped), compiled out when zero/false.
"""

from __future__ import annotations

from .config import tl, triton

if triton is not None:
    from .config import _FWD_CONFIGS, _KEY, _quick_bench

    @triton.jit
    def _query_block(
        H, GROUP, SEQ_Q, CAUSAL: tl.constexpr, BLOCK_M: tl.constexpr, HEAD_DIM: tl.constexpr
    ):
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
    def _kv_range(
        start_m,
        SEQ_K,
        CAUSAL: tl.constexpr,
        SHIFT: tl.constexpr,
        DROP_LAST: tl.constexpr,
        BLOCK_M: tl.constexpr,
        BLOCK_N: tl.constexpr,
    ):
        """Key range a query block visits: [0, full_end) unmasked, [full_end, hi) masked."""
        if CAUSAL:
            # Last row start_m + BLOCK_M - 1 sees keys <= that row (+SHIFT, tests only).
            hi = tl.minimum(SEQ_K, start_m + BLOCK_M + SHIFT)
            # Block [n0, n0+BLOCK_N) is fully visible to the first row iff n0+BLOCK_N-1 <=
            # start_m+SHIFT.
            full_end = tl.minimum(
                (SEQ_K // BLOCK_N) * BLOCK_N, ((start_m + SHIFT + 1) // BLOCK_N) * BLOCK_N
            )
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

    @triton.autotune(
        configs=_FWD_CONFIGS, key=_KEY + ["USE_TMA"], do_bench=_quick_bench, cache_results=True
    )
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
        acc, l_i, m_i = _fwd_inner(
            acc,
            l_i,
            m_i,
            q,
            k_base,
            v_base,
            stride_kn,
            stride_vn,
            offs_m,
            offs_d,
            0,
            full_end,
            qk_scale,
            SEQ_K,
            K_desc,
            V_desc,
            kv_row0,
            False,
            CAUSAL,
            SHIFT,
            BLOCK_N,
            USE_TMA,
        )
        acc, l_i, m_i = _fwd_inner(
            acc,
            l_i,
            m_i,
            q,
            k_base,
            v_base,
            stride_kn,
            stride_vn,
            offs_m,
            offs_d,
            full_end,
            hi,
            qk_scale,
            SEQ_K,
            K_desc,
            V_desc,
            kv_row0,
            True,
            CAUSAL,
            SHIFT,
            BLOCK_N,
            USE_TMA,
        )

        o = acc / l_i[:, None]
        o_ptrs = O + b * stride_ob + h * stride_oh + offs_m[:, None] * stride_om + offs_d[None, :]
        tl.store(o_ptrs, o.to(O.dtype.element_ty), mask=row_ok[:, None])
        tl.store(L + pid_bh.to(tl.int64) * SEQ_Q + offs_m, m_i + tl.math.log2(l_i), mask=row_ok)
