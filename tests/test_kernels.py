"""The kernel registry and the built-in kernels (sdpa*, naive, tiled) on the CPU."""

import pytest
import torch

from attnperf.errors import KernelUnavailableError, UnknownNameError
from attnperf.kernels import registry
from attnperf.kernels.registry import REGISTRY
from attnperf.kernels.sdpa import BACKENDS, dispatched_backend
from attnperf.kernels.spec import KernelSpec, causal_mask
from attnperf.kernels.tiled import BLOCK_KV, tiled_attention
from attnperf.measure.correctness import check
from attnperf.measure.inputs import make_inputs
from attnperf.measure.session import measure, memory_needed
from attnperf.measure.timing import Budget
from attnperf.model.problem import Problem

CPU_KERNELS = ["naive", "sdpa", "sdpa_flash", "sdpa_math", "tiled"]
CUDA_ONLY = ["sdpa_cudnn", "sdpa_efficient"]

PROBLEMS = [
    Problem(batch=2, heads=4, seq_q=8, head_dim=16, dtype="fp32"),
    Problem(batch=1, heads=4, kv_heads=2, seq_q=5, seq_kv=9, head_dim=8, causal=True, dtype="fp32"),
    Problem(batch=1, heads=2, seq_q=9, seq_kv=4, head_dim=8, causal=True, dtype="fp32"),
    Problem(batch=1, heads=4, kv_heads=1, seq_q=1, seq_kv=33, head_dim=16, dtype="fp32"),
    # More keys than one tiled block, so the online softmax rescales across blocks.
    Problem(batch=1, heads=2, seq_q=3, seq_kv=BLOCK_KV + 44, head_dim=8, dtype="fp32"),
    Problem(batch=1, heads=4, kv_heads=2, seq_q=5, seq_kv=9, head_dim=8, causal=True, dtype="bf16"),
    Problem(batch=1, heads=8, kv_heads=2, seq_q=1, seq_kv=64, head_dim=32, dtype="bf16"),
    Problem(batch=2, heads=2, seq_q=16, head_dim=16, causal=True, dtype="fp16"),
]


# ------------------------------------------------------------- registry -----
def test_builtin_names():
    assert set(CPU_KERNELS + CUDA_ONLY) <= set(registry.names())


def test_availability_on_cpu():
    p = PROBLEMS[0]
    for name in CPU_KERNELS:
        assert registry.get(name).check(p, "cpu") == (True, "available"), name
    for name in CUDA_ONLY:
        ok, why = REGISTRY.get(name).check(p, "cpu")
        assert ok is False and "only on CUDA" in why


def test_forced_backend_checks_know_cuda_dtype_limits():
    p = Problem(batch=1, heads=1, seq_q=8, head_dim=64, dtype="fp32")
    ok, why = registry.get("sdpa_flash").check(p, "cuda")
    assert ok is False and "float16 or bfloat16" in why and "float32" in why


def test_unknown_kernel_lists_valid_names():
    with pytest.raises(UnknownNameError) as info:
        registry.get("flash3")
    msg = str(info.value)
    assert msg.startswith("unknown kernel 'flash3'; allowed: ")
    for name in CPU_KERNELS:
        assert name in msg


def test_seed_kernel_name_is_an_alias_of_sdpa():
    assert registry.canonical_name("pytorch_sdpa") == "sdpa"
    assert registry.get("pytorch_sdpa") is registry.get("sdpa")


def test_registering_a_name_twice_is_refused():
    with pytest.raises(ValueError, match="'naive' registered twice"):
        REGISTRY.register(KernelSpec(name="naive", fn=lambda q, k, v, **kw: q, family="x"))


# ------------------------------------------------------------ correctness ---
@pytest.mark.parametrize("kernel", CPU_KERNELS)
@pytest.mark.parametrize("problem", PROBLEMS, ids=lambda p: p.id)
def test_every_cpu_kernel_is_correct(kernel, problem):
    spec = registry.get(kernel)
    q, k, v = make_inputs(problem, "cpu")
    out = spec.run(q, k, v, problem)
    assert out.dtype == q.dtype and tuple(out.shape) == tuple(q.shape)
    c = check(spec.run, q, k, v, problem)
    assert c.passed, c.summary()


@pytest.mark.parametrize("block_kv", [1, 3, 16, 1000])
def test_tiled_block_sizes(block_kv):
    p = Problem(batch=1, heads=4, kv_heads=2, seq_q=24, seq_kv=40, head_dim=16, causal=True,
                dtype="fp32")
    q, k, v = make_inputs(p, "cpu")
    c = check(lambda q, k, v, p: tiled_attention(q, k, v, causal=p.causal, scale=p.head_dim ** -0.5,
                                                 block_kv=block_kv), q, k, v, p)
    assert c.passed, c.summary()


def test_causal_mask_is_top_left():
    assert causal_mask(2, 3, "cpu").tolist() == [[True, False, False], [True, True, False]]
    assert causal_mask(3, 2, "cpu").tolist() == [[True, False], [True, True], [True, True]]


@pytest.mark.gpu
@pytest.mark.parametrize("kernel", ["sdpa", "sdpa_math", "sdpa_flash", "sdpa_efficient",
                                    "sdpa_cudnn", "naive", "tiled"])
@pytest.mark.parametrize("dtype", ["fp16", "bf16"])
@pytest.mark.parametrize("shape", [
    dict(batch=2, heads=8, seq_q=128, head_dim=64, causal=True),
    # GQA with seq_q != seq_kv: some fused backends refuse it (then: skipped, with why).
    dict(batch=2, heads=8, kv_heads=2, seq_q=128, seq_kv=192, head_dim=64, causal=True),
], ids=["square", "gqa-rect"])
def test_kernels_on_cuda(kernel, dtype, shape):
    p = Problem(dtype=dtype, **shape)
    spec = registry.get(kernel)
    assert spec.check(p, "cuda")[0]
    q, k, v = make_inputs(p, "cuda")
    try:
        c = check(spec.run, q, k, v, p)
    except KernelUnavailableError as exc:  # e.g. cuDNN refusing GQA on this build
        pytest.skip(str(exc))
    assert c.passed, c.summary()


# ------------------------------------------- unavailable, dispatch, memory --
def test_forced_backend_refused_at_dispatch_raises_with_reason():
    p = PROBLEMS[0]
    q, k, v = make_inputs(p, "cpu")
    with pytest.raises(KernelUnavailableError) as info:
        registry.get("sdpa_efficient").run(q, k, v, p)
    assert "efficient" in str(info.value) and "q (2, 4, 8, 16)" in str(info.value)


def test_measure_records_unavailable_backend_with_reason():
    p = PROBLEMS[0]
    budget = Budget(min_samples=3, budget_s=0.01, warmup_s=0.0)
    m = measure("sdpa_efficient", p, "cpu", budget=budget)
    assert (m.status, m.device_time) == ("unavailable", None)
    assert "only on CUDA" in m.reason


def test_measure_records_a_dispatch_time_refusal_as_unavailable(temp_kernel):
    # A check that lets the problem through, and PyTorch refusing it when called.
    temp_kernel("test_optimistic_efficient", registry.get("sdpa_efficient").run)
    m = measure("test_optimistic_efficient", PROBLEMS[0], "cpu",
                budget=Budget(min_samples=3, budget_s=0.01, warmup_s=0.0))
    assert m.status == "unavailable"
    assert "PyTorch refuses sdpa backend efficient" in m.reason


@pytest.mark.parametrize("p", [
    PROBLEMS[0],
    Problem(batch=1, heads=4, kv_heads=2, seq_q=64, head_dim=16, causal=True, dtype="fp32"),
    Problem(batch=1, heads=2, seq_q=16, head_dim=8, dtype="bf16"),
], ids=lambda p: p.id)
def test_default_dispatch_reports_the_backend_it_ran(p):
    q, k, v = make_inputs(p, "cpu")
    tag = dispatched_backend(q, k, v, causal=p.causal, scale=p.head_dim ** -0.5)
    assert tag in BACKENDS  # torch >= 2.3 can always say (None only on older PyTorch)
    default = registry.get("sdpa").run(q, k, v, p)
    forced = {t: registry.get(f"sdpa_{t}").run(q, k, v, p) for t in ("math", "flash")}
    # The reported backend, forced, gives the default call's output bit for bit ...
    assert torch.equal(forced[tag], default)
    # ... and the check can tell the CPU backends apart on this problem.
    assert not all(torch.equal(out, default) for out in forced.values())


def test_memory_needed_literals():
    # b1 h2 sq16 d8 fp32:
    #   Q,K,V,O  4 * 8 * (2*1*2*16 + 2*1*2*16)        =  4,096
    #   saved Q,K,V (input-change check) 4 * 8 * (1*2*16 + 2*1*2*16) = 3,072
    #   ref      8 * 1*2*16*8 + 24 * 16*16*2           = 14,336
    #   naive    1*2*16*16 * (2*4 + 8)                 =  8,192
    p = Problem(batch=1, heads=2, seq_q=16, head_dim=8, dtype="fp32")
    assert memory_needed(registry.get("sdpa"), p) == 21_504
    assert memory_needed(registry.get("naive"), p) == 29_696


# --------------------------------------------------------------- inputs -----
def test_inputs_are_seeded_nonzero_and_per_problem():
    p = Problem(batch=1, heads=4, kv_heads=2, seq_q=3, seq_kv=5, head_dim=8, dtype="bf16")
    q, k, v = make_inputs(p, "cpu")
    assert [tuple(t.shape) for t in (q, k, v)] == [(1, 4, 3, 8), (1, 2, 5, 8), (1, 2, 5, 8)]
    assert q.dtype == torch.bfloat16
    assert all(bool((t != 0).any()) for t in (q, k, v))
    q2, k2, v2 = make_inputs(p, "cpu")
    assert torch.equal(q, q2) and torch.equal(k, k2) and torch.equal(v, v2)
    assert not torch.equal(make_inputs(p, "cpu", seed=1)[0], q)
    assert not torch.equal(k, v)


def test_gpu_memory_cached_by_pytorch_counts_as_available(monkeypatch):
    # After a float64 reference the caching allocator can hold most of the GPU:
    # the driver reports 0.38 GiB free while 134 GiB sit cached and unused
    # (H200, 2,32,8192,128).  Those blocks are PyTorch's to hand out again.
    import sys
    import types

    from attnperf.measure.session import available_memory
    gib = 1 << 30
    cuda = types.SimpleNamespace(mem_get_info=lambda: (gib // 2, 140 * gib),
                                 memory_reserved=lambda: 134 * gib + 5 * gib,
                                 memory_allocated=lambda: 5 * gib)
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=cuda))
    assert available_memory("cuda") == gib // 2 + 134 * gib
    cuda.memory_reserved = lambda: 5 * gib  # nothing cached: the driver's figure
    assert available_memory("cuda") == gib // 2
