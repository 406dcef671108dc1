"""attnperf.correctness: the float64 reference, the error metrics, the per-dtype
tolerances, and deliberately wrong kernels that must fail the check."""

import math

import numpy as np
import pytest
import torch

from attnperf.kernels import registry
from attnperf.kernels.naive import naive_attention as _naive
from attnperf.kernels.tiled import tiled_attention as _tiled
from attnperf.measure.correctness import check, compare, reference
from attnperf.measure.inputs import make_inputs
from attnperf.measure.session import measure
from attnperf.measure.timing import Budget
from attnperf.model.problem import MAX_ABS_FACTOR, TOLERANCES, Problem, precision_key

GQA_CAUSAL = Problem(batch=2, heads=4, kv_heads=2, seq_q=24, seq_kv=40, head_dim=16,
                     causal=True, dtype="float32")
GQA_FULL = Problem(batch=2, heads=4, kv_heads=2, seq_q=24, seq_kv=40, head_dim=16,
                   dtype="float32")


def numpy_attention(q, k, v, causal: bool) -> np.ndarray:
    """Attention written out in numpy float64, independently of torch."""
    q, k, v = (t.double().numpy() for t in (q, k, v))
    b, h, sq, d = q.shape
    g = h // k.shape[1]
    out = np.empty_like(q)
    for bi in range(b):
        for hi in range(h):
            s = q[bi, hi] @ k[bi, hi // g].T / math.sqrt(d)
            if causal:
                s = np.where(np.arange(s.shape[1])[None, :] > np.arange(sq)[:, None], -np.inf, s)
            e = np.exp(s - s.max(axis=1, keepdims=True))
            out[bi, hi] = (e / e.sum(axis=1, keepdims=True)) @ v[bi, hi // g]
    return out


# ------------------------------------------------------------ reference -----
@pytest.mark.parametrize("problem", [
    GQA_CAUSAL, GQA_FULL,
    Problem(batch=1, heads=3, seq_q=1, seq_kv=17, head_dim=8, dtype="bf16"),
    Problem(batch=1, heads=2, seq_q=9, seq_kv=4, head_dim=8, causal=True, dtype="fp16"),
], ids=lambda p: p.id)
def test_reference_matches_independent_numpy(problem):
    q, k, v = make_inputs(problem, "cpu")
    ref = reference(q, k, v, problem)
    assert ref.dtype == torch.float64 and tuple(ref.shape) == tuple(q.shape)
    np.testing.assert_allclose(ref.numpy(), numpy_attention(q, k, v, problem.causal),
                               rtol=1e-12, atol=1e-12)


def test_reference_hand_computed():
    # D = 4, scale 1/2.  q = (2,0,0,0); k0 = 0, k1 = (ln 3, 0, 0, 0)
    # scores (0, ln 3) -> softmax (1/4, 3/4); v0 = 4, v1 = 8 -> 1 + 6 = 7
    p = Problem(batch=1, heads=1, seq_q=1, seq_kv=2, head_dim=4, dtype="float32")
    q = torch.tensor([[[[2.0, 0, 0, 0]]]])
    k = torch.tensor([[[[0.0, 0, 0, 0], [math.log(3), 0, 0, 0]]]])
    v = torch.tensor([[[[4.0, 4, 4, 4], [8.0, 8, 8, 8]]]])
    assert reference(q, k, v, p).flatten().tolist() == pytest.approx([7.0] * 4)


def test_reference_causal_is_top_left():
    # Query 0 sees key 0 only -> v0; query 1 sees both with scores (0, ln 3) -> 7.
    p = Problem(batch=1, heads=1, seq_q=2, seq_kv=3, head_dim=4, causal=True, dtype="float32")
    q = torch.tensor([[[[2.0, 0, 0, 0], [2.0, 0, 0, 0]]]])
    k = torch.tensor([[[[0.0, 0, 0, 0], [math.log(3), 0, 0, 0], [100.0, 0, 0, 0]]]])
    v = torch.tensor([[[[4.0] * 4, [8.0] * 4, [1000.0] * 4]]])
    out = reference(q, k, v, p)
    assert out[0, 0, 0].tolist() == pytest.approx([4.0] * 4)
    assert out[0, 0, 1].tolist() == pytest.approx([7.0] * 4)


# --------------------------------------------------------------- metrics ----
P32 = Problem(batch=1, heads=1, seq_q=1, head_dim=2, dtype="float32")


def test_metrics_hand_computed():
    # ref (3, 4): norm 5.  out (3, 4.00025): rel 0.00025/5 = 5e-5 <= 1e-4; max 2.5e-4; mean 1.25e-4
    ref = torch.tensor([3.0, 4.0], dtype=torch.float64)
    c = compare(torch.tensor([3.0, 4.00025], dtype=torch.float64), ref, P32)
    assert c.rel_error == pytest.approx(5e-5)
    assert c.max_abs_error == pytest.approx(2.5e-4)
    assert c.mean_abs_error == pytest.approx(1.25e-4)
    assert (c.passed, c.nonfinite, c.tolerance, c.tolerance_key) == (True, 0, 1e-4, "float32")
    # (3, 4.001): rel 0.001/5 = 2e-4 > 1e-4
    assert compare(torch.tensor([3.0, 4.001], dtype=torch.float64), ref, P32).passed is False


def test_exact_output_passes_with_unit_correlation():
    ref = torch.randn(2, 3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    c = compare(ref.clone().float(), ref, P32)
    assert c.passed and c.rel_error < 1e-7 and c.correlation == pytest.approx(1.0)


def test_one_bad_element_fails_even_when_the_norm_averages_it_away():
    # ref = 10,000 ones: norm 100, max 1.  One element off by 0.002:
    # rel = 0.002 / 100 = 2e-5 < 1e-4, but max_abs 0.002 > 10 * 1e-4 * 1 = 1e-3.
    ref = torch.ones(1, 1, 1000, 10, dtype=torch.float64)
    out = ref.clone()
    out[0, 0, 500, 3] += 0.002
    c = compare(out, ref, P32)
    assert c.rel_error == pytest.approx(2e-5)
    assert c.max_abs_error == pytest.approx(0.002)
    assert c.rel_error < c.tolerance
    assert c.passed is False


def test_nan_and_inf_fail_and_are_counted():
    ref = torch.ones(4, 4, dtype=torch.float64)
    out = ref.clone()
    out[0, 0] = float("nan")
    out[3, 2] = float("inf")
    c = compare(out, ref, P32)
    assert c.passed is False
    assert c.nonfinite == 2
    assert math.isnan(c.rel_error) and math.isnan(c.max_abs_error)
    assert "nonfinite=2" in c.summary()


def test_tolerances_per_dtype():
    assert set(TOLERANCES) >= {"float16", "bfloat16", "float32", "tf32"}
    # Looser for fewer mantissa bits: fp32 < tf32 < fp16 < bf16.
    t = TOLERANCES
    assert t["float32"] < t["tf32"] < t["float16"] < t["bfloat16"]
    assert MAX_ABS_FACTOR > 1
    p16 = Problem(batch=1, heads=1, seq_q=1, head_dim=2, dtype="bf16")
    assert precision_key(p16.dtype) == "bfloat16"
    assert precision_key(P32.dtype, tf32=True) == "tf32"
    assert precision_key(p16.dtype, tf32=True) == "bfloat16"  # tf32 only affects float32


def test_same_error_passes_bf16_but_fails_fp32():
    # A uniform 0.1 % error: over fp32's 1e-4, within bf16's 2e-2.
    ref = torch.randn(1, 2, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = ref * 1.001
    p16 = Problem(batch=1, heads=2, seq_q=8, head_dim=8, dtype="bf16")
    assert compare(out, ref, p16).passed is True
    assert compare(out, ref, P32).passed is False


def test_wrong_output_shape_is_an_error():
    p = Problem(batch=1, heads=2, seq_q=4, head_dim=8, dtype="fp32")
    q, k, v = make_inputs(p, "cpu")
    with pytest.raises(ValueError, match="shape"):
        check(lambda q, k, v, p: q[:, :1], q, k, v, p)


# ------------------------------------------------ deliberately wrong kernels -
# Written as fn(q, k, v, problem): check() calls kernels that way (KernelSpec.run).
def naive_attention(q, k, v, p):
    return _naive(q, k, v, causal=p.causal, scale=p.head_dim ** -0.5)


def tiled_attention(q, k, v, p, block_kv):
    return _tiled(q, k, v, causal=p.causal, scale=p.head_dim ** -0.5, block_kv=block_kv)


def missing_scale(q, k, v, p):
    g = p.gqa_group
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    s = torch.matmul(q, k.transpose(-2, -1))  # forgot 1/sqrt(D)
    if p.causal:
        s = s.masked_fill(~torch.ones(p.seq_q, p.seq_kv, dtype=torch.bool).tril(), float("-inf"))
    return torch.matmul(torch.softmax(s.float(), dim=-1).to(q.dtype), v)


def gqa_heads_tiled_not_interleaved(q, k, v, p):
    # Query head h must read kv head h // G; .repeat maps it to h % Hkv.
    g = p.gqa_group
    return naive_attention(q, k.repeat(1, g, 1, 1), v.repeat(1, g, 1, 1),
                           Problem(batch=p.batch, heads=p.heads, seq_q=p.seq_q, seq_kv=p.seq_kv,
                                   head_dim=p.head_dim, causal=p.causal, dtype=p.dtype))


def causal_bottom_right(q, k, v, p):
    g = p.gqa_group
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    s = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(p.head_dim)
    mask = torch.ones(p.seq_q, p.seq_kv, dtype=torch.bool).tril(diagonal=p.seq_kv - p.seq_q)
    return torch.matmul(torch.softmax(s.masked_fill(~mask, float("-inf")), dim=-1), v)


def tiled_dropping_last_kv_tile(q, k, v, p):
    # Forgets the ragged last block: with Sk = 40 and blocks of 16, keys 32..39.
    keep = (p.seq_kv // 16) * 16
    short = Problem(batch=p.batch, heads=p.heads, kv_heads=p.kv_heads, seq_q=p.seq_q,
                    seq_kv=keep, head_dim=p.head_dim, causal=p.causal, dtype=p.dtype)
    return tiled_attention(q, k[:, :, :keep], v[:, :, :keep], short, block_kv=16)


def one_corrupted_output_tile(q, k, v, p):
    out = tiled_attention(q, k, v, p, block_kv=16).clone()
    out[1, 3, 8:12, 4:8] += 0.05  # one 4x4 tile of one head, ~0.4 % of the output
    return out


WRONG = [
    (missing_scale, GQA_CAUSAL),
    (gqa_heads_tiled_not_interleaved, GQA_FULL),
    (causal_bottom_right, GQA_CAUSAL),
    (tiled_dropping_last_kv_tile, GQA_FULL),
    (one_corrupted_output_tile, GQA_FULL),
]


@pytest.mark.parametrize("fn,problem", WRONG, ids=[fn.__name__ for fn, _ in WRONG])
def test_wrong_kernel_fails(fn, problem):
    q, k, v = make_inputs(problem, "cpu")
    assert check(naive_attention, q, k, v, problem).passed  # the same problem passes done right
    c = check(fn, q, k, v, problem)
    assert c.passed is False, c.summary()


def test_registered_wrong_kernel_fails(wrong_kernel):
    # conftest's negative fixture: softmax over the queries instead of the keys.
    q, k, v = make_inputs(GQA_FULL, "cpu")
    assert check(registry.get(wrong_kernel).run, q, k, v, GQA_FULL).passed is False


def test_missing_scale_fails_even_at_bf16_tolerance():
    p = Problem(batch=1, heads=2, seq_q=16, head_dim=64, dtype="bf16")
    q, k, v = make_inputs(p, "cpu")
    assert check(missing_scale, q, k, v, p).passed is False


def test_nan_kernel_fails_with_nonfinite_count():
    p = Problem(batch=1, heads=2, seq_q=4, head_dim=8, dtype="fp32")
    q, k, v = make_inputs(p, "cpu")

    def nan_kernel(q, k, v, p):
        out = naive_attention(q, k, v, p).clone()
        out[0, 1, 2, :3] = float("nan")
        return out

    c = check(nan_kernel, q, k, v, p)
    assert c.passed is False and c.nonfinite == 3


def test_measure_records_a_wrong_kernel_as_failed_and_does_not_time_it(wrong_kernel):
    p = Problem(batch=1, heads=2, seq_q=8, head_dim=8, dtype="fp32")
    m = measure(wrong_kernel, p, "cpu", budget=Budget(min_samples=3, budget_s=0.01))
    assert m.status == "failed"
    assert m.reason.startswith("wrong result:") and "rel_error=" in m.reason
    assert m.correctness is not None and m.correctness.passed is False
    assert m.device_time is None and m.roofline is None


# ------------------------------------------- correctness that cannot be fooled
# Kernels from tests/faultkernels.py; measured in this process (the isolated
# path runs the same measure() in its worker: test_isolation.py).
QUICK_BUDGET = Budget(min_samples=3, budget_s=0.01, warmup_s=0.001)


def test_a_kernel_that_zeroes_q_fails_against_the_reference_of_the_real_inputs():
    from faultkernels import fault_zero_q

    p = Problem(batch=1, heads=2, seq_q=16, head_dim=8, dtype="fp32")
    q, k, v = make_inputs(p, "cpu")
    c = check(lambda q, k, v, p: fault_zero_q(q, k, v, causal=p.causal, scale=p.head_dim ** -0.5),
              q, k, v, p)
    # Judged against the inputs it was given, its output is far off (it was
    # judged against the zeros it wrote: rel_error 1.5e-07, passed).
    assert c.passed is False and c.modified_inputs == ["q"]
    assert c.rel_error > 0.1
    assert "kernel modified its inputs (q)" in c.summary()


def test_unchanged_inputs_are_not_flagged():
    p = Problem(batch=1, heads=2, seq_q=16, head_dim=8, dtype="fp32")
    q, k, v = make_inputs(p, "cpu")
    c = check(naive_attention, q, k, v, p)
    assert c.passed and c.modified_inputs == []


@pytest.mark.parametrize("kernel,reason", [
    ("fault_zero_q", "kernel modified its inputs (q)"),
    ("fault_nan_after_first", "wrong result in a timed call: rel_error=nan"),
    ("fault_mutate_later", "kernel modified its inputs (v) in a timed call"),
])
def test_measure_fails_what_a_first_call_check_would_pass(kernel, reason):
    registry.REGISTRY.add_reference("faultkernels:KERNELS")  # once per process
    p = Problem(batch=1, heads=2, seq_q=8, head_dim=8, dtype="fp32")
    m = measure(kernel, p, "cpu", budget=QUICK_BUDGET)
    assert (m.status, m.reason.startswith(reason)) == ("failed", True), m.reason
    assert m.correctness is not None and m.correctness.passed is False
    assert m.device_time is None and m.latency is None and m.roofline is None


def test_attnperf_errors_raised_by_a_kernel_are_an_error_status():
    registry.REGISTRY.add_reference("faultkernels:KERNELS")  # once per process
    p = Problem(batch=1, heads=2, seq_q=8, head_dim=8, dtype="fp32")
    m = measure("fault_report_error", p, "cpu", budget=QUICK_BUDGET)
    assert m.status == "error"
    assert m.reason == "ReportError: raised by a kernel: attnperf's own exception type"


# --------------------------------------------------- edges of the pass rule ---
def test_error_exactly_at_the_tolerance_passes():
    # 100 ones: ||ref|| = 10 exactly, max|ref| = 1.  One element off by 10 * 2^-10:
    # rel = 10 * 2^-10 / 10 = 2^-10 = the tolerance, and the element's error is exactly
    # MAX_ABS_FACTOR * tol * max|ref|.  Both rules say "<=": it passes; a hair more fails.
    tol = 2.0 ** -10
    ref = torch.ones(100, dtype=torch.float64)
    out = ref.clone()
    out[3] += 10 * tol
    c = compare(out, ref, P32, tolerance=tol)
    assert c.rel_error == tol and c.max_abs_error == 10 * tol
    assert c.passed is True and c.tolerance == tol
    out[3] += 2.0 ** -40
    assert compare(out, ref, P32, tolerance=tol).passed is False


def test_an_explicit_tolerance_wins_over_the_dtype_default():
    ref = torch.ones(100, dtype=torch.float64)
    out = ref * (1 + 2e-3)  # rel 2e-3: over fp32's 1e-4
    assert compare(out, ref, P32).passed is False
    c = compare(out, ref, P32, tolerance=3e-3)
    assert c.passed is True and c.tolerance == 3e-3 and c.tolerance_key == "float32"


def test_empty_and_zero_references():
    empty = torch.empty(0, dtype=torch.float64)
    c = compare(empty, empty, P32)
    assert (c.passed, c.rel_error, c.max_abs_error, c.mean_abs_error, c.correlation) == (
        True, 0.0, 0.0, 0.0, 1.0)
    # An all-zero reference: the relative error falls back to the absolute norm.
    zero = torch.zeros(4, dtype=torch.float64)
    c = compare(torch.full((4,), 0.5, dtype=torch.float64), zero, P32)
    assert c.rel_error == 1.0  # ||(0.5, 0.5, 0.5, 0.5)|| = 1
    assert c.passed is False


@pytest.mark.parametrize("out,ref,corr", [
    ([2.0, 1.0], [1.0, 2.0], -1.0),                       # two elements, anti-correlated
    ([0.01, 0.02, 0.03], [0.03, 0.02, 0.01], -1.0),       # tiny spread (std < 1) is still a spread
    ([0.03, 0.02, 0.01], [3.0, 2.0, 1.0], 1.0),
    ([1.0, 1.0, 1.0], [1.0, 2.0, 3.0], 0.0),              # a constant output: no correlation
    ([1.0, 2.0, 3.0], [5.0, 5.0, 5.0], 0.0),              # a constant reference
    ([5.0, 5.0, 5.0], [5.0, 5.0, 5.0], 1.0),              # equal constants
    ([0.5], [0.5], 1.0),
    ([0.5], [0.7], 0.0),
])
def test_correlation_cases(out, ref, corr):
    c = compare(torch.tensor(out, dtype=torch.float64), torch.tensor(ref, dtype=torch.float64), P32)
    assert c.correlation == pytest.approx(corr, abs=1e-12)
