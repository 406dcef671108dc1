"""Training passes (fwd, bwd, fwd+bwd): ids, FLOPs and bytes, the kernel capability,
and the gradient gate -- deliberately wrong kernels, written against the public
kernel API, each caught (tests mirror model/problem, model/roofline, measure/session)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from attnperf.errors import InvalidShapeError
from attnperf.kernels import registry
from attnperf.kernels.naive import naive_attention
from attnperf.kernels.spec import KernelSpec
from attnperf.measure.correctness import reference_grads
from attnperf.measure.session import Bench, measure
from attnperf.measure.timing import QUICK
from attnperf.model import roofline
from attnperf.model.catalog import PRESETS
from attnperf.model.problem import GRAD_TOLERANCES, Problem
from support.kernels import wrong_dk_only

GQA = Problem(batch=1, heads=4, kv_heads=2, seq_q=96, head_dim=32, dtype="float32")
CAUSAL = Problem(batch=2, heads=2, seq_q=96, head_dim=32, causal=True, dtype="float32")
BLOCK = 32


# ----------------------------------------------------------------- model -----
def test_forward_ids_keep_their_format_and_passes_add_a_tag():
    train = PRESETS["train"]
    assert train.id == "b4_h16_sq2048_d128_bf16"  # history key: never changes
    assert train.with_pass("bwd").id == "b4_h16_sq2048_d128_bf16_bwd"
    assert train.with_pass("fwd+bwd").id == "b4_h16_sq2048_d128_bf16_fwdbwd"
    for mode in ("fwd", "bwd", "fwd+bwd"):
        p = PRESETS["gqa"].with_pass(mode)
        assert Problem.from_id(p.id) == p and Problem.from_config(p.to_config()) == p
    with pytest.raises(
        InvalidShapeError, match="unknown pass 'train'; allowed: fwd, bwd, fwd\\+bwd"
    ):
        Problem(1, 1, 8, 8, mode="train")


@pytest.mark.parametrize("problem", [PRESETS["train"], PRESETS["gqa"], PRESETS["causal"],
                                     Problem(1, 2, 5, 4, seq_kv=3, causal=True)])
def test_backward_flops_are_exactly_2_5x_and_fwd_bwd_3_5x_the_forward(problem):
    fwd = roofline.flops(problem)
    assert fwd == 4 * problem.head_dim * roofline.attention_pairs(problem)
    assert 2 * roofline.flops(problem.with_pass("bwd")) == 5 * fwd
    assert 2 * roofline.flops(problem.with_pass("fwd+bwd")) == 7 * fwd
    assert all(isinstance(roofline.flops(problem.with_pass(m)), int) for m in ("bwd", "fwd+bwd"))


def test_backward_bytes_hand_counted():
    # B=1, Hq=4, Hkv=2, S=8, D=2, fp16: Q-sized tensors 64 elements, K/V-sized 32.
    p = Problem(1, 4, 8, 2, kv_heads=2, dtype="float16")
    assert roofline.bytes_moved(p) == 2 * (2 * 64 + 2 * 32)                 # q, o; k, v
    bwd = 2 * (4 * 64 + 4 * 32) + 4 * 4 * 8                                 # + lse (fp32 per row)
    assert roofline.bytes_moved(p.with_pass("bwd")) == bwd
    assert roofline.bytes_moved(p.with_pass("fwd+bwd")) == 2 * (2 * 64 + 2 * 32) + 4 * 32 + bwd


# ---------------------------------------------------------- wrong kernels -----
def right(q, k, v, *, causal, scale):
    return naive_attention(q, k, v, causal=causal, scale=scale)


def scale_off_1pct(q, k, v, *, causal, scale):
    return naive_attention(q, k, v, causal=causal, scale=scale * 1.01)


def dropped_last_kv_block(q, k, v, *, causal, scale):
    return naive_attention(q, k[:, :, :-BLOCK], v[:, :, :-BLOCK], causal=causal, scale=scale)


def causal_off_by_one(q, k, v, *, causal, scale):
    if not causal:
        return naive_attention(q, k, v, causal=False, scale=scale)
    g = q.shape[1] // k.shape[1]
    s = torch.matmul(q, k.repeat_interleave(g, 1).transpose(-2, -1)) * scale
    sees = torch.ones(q.shape[2], k.shape[2], dtype=torch.bool).tril(diagonal=1)  # one key too many
    p = torch.softmax(s.masked_fill(~sees, float("-inf")), dim=-1)
    return torch.matmul(p, v.repeat_interleave(g, 1))


def no_autograd(q, k, v, *, causal, scale):
    with torch.no_grad():
        return naive_attention(q, k, v, causal=causal, scale=scale)


def _spec(fn, **kw) -> KernelSpec:
    return KernelSpec(name=f"test_{fn.__name__}", fn=fn, family="test", **kw)


def _as(problem: Problem, dtype: str) -> Problem:
    return dataclasses.replace(problem, dtype=dtype)


def _gate(fn, problem):
    bench = Bench(_spec(fn), problem, "cpu")
    try:
        out = bench.check()
        return out, bench.gradients, bench.wrong(out)
    finally:
        bench.release()


@pytest.mark.parametrize("dtype", ["float32", "float16"])
@pytest.mark.parametrize("problem", [GQA, CAUSAL], ids=["gqa", "causal"])
@pytest.mark.parametrize("fn", [scale_off_1pct, dropped_last_kv_block, causal_off_by_one])
def test_each_wrong_variant_is_caught_for_fwd_and_by_the_gradient_gate(fn, problem, dtype):
    if fn is causal_off_by_one and not problem.causal:
        pytest.skip("the causal boundary exists only in causal problems")
    problem = _as(problem, dtype)
    out, grads, why = _gate(fn, problem)
    assert not out.passed and why.startswith("wrong result")
    for mode in ("bwd", "fwd+bwd"):
        out, grads, why = _gate(fn, problem.with_pass(mode))
        assert not out.passed and why.startswith("wrong result")
        failed = [n for n, c in grads.items() if not c.passed]
        # The gradient gate catches it on its own: dQ and dK carry the forward's error.
        assert "dq" in failed and "dk" in failed, {n: c.rel_error for n, c in grads.items()}


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("problem", [GQA, CAUSAL], ids=["gqa", "causal"])
def test_a_kernel_that_breaks_only_the_backward_is_caught_only_by_the_gradient_gate(problem, dtype):
    problem = _as(problem, dtype)
    out, grads, why = _gate(wrong_dk_only, problem)
    assert out.passed and grads is None and why is None  # the forward is right
    for mode in ("bwd", "fwd+bwd"):
        out, grads, why = _gate(wrong_dk_only, problem.with_pass(mode))
        assert out.passed
        assert [n for n, c in grads.items() if not c.passed] == ["dk"]
        assert why.startswith("wrong gradient dk: rel_error=")
        assert grads["dk"].tolerance == GRAD_TOLERANCES[dtype]


@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
@pytest.mark.parametrize("kernel", ["naive", "tiled", "sdpa", "sdpa_math"])
def test_built_in_kernels_pass_the_gradient_gate(kernel, dtype):
    for problem in (GQA, CAUSAL):
        p = _as(problem, dtype).with_pass("bwd")
        bench = Bench(kernel, p, "cpu")
        out = bench.check()
        assert bench.wrong(out) is None, {n: c.rel_error for n, c in bench.gradients.items()}
        # Passing with room: the measured errors sit well under the bounds.
        assert all(c.rel_error < GRAD_TOLERANCES[dtype] / 2 for c in bench.gradients.values())
        bench.release()


@pytest.mark.parametrize("chunk_bytes", [1 << 30, 1])  # all heads at once; one head per chunk
def test_gradient_reference_is_autograd_of_float64_attention_and_sums_gqa_groups(
    monkeypatch, chunk_bytes
):
    from attnperf.measure import correctness
    monkeypatch.setattr(correctness, "_REF_CHUNK_BYTES", chunk_bytes)
    p = GQA.with_pass("bwd")
    gen = torch.Generator().manual_seed(3)
    q, k, v, do = (torch.randn(s, generator=gen, dtype=torch.float64)
                   for s in [(1, 4, 96, 32), (1, 2, 96, 32), (1, 2, 96, 32), (1, 4, 96, 32)])
    out, (dq, dk, dv) = reference_grads(q, k, v, do, p)
    # Independently: expand K/V per query head, differentiate, fold the groups back.
    qq, kk, vv = (x.clone().requires_grad_(True) for x in (q, k, v))
    s = torch.matmul(qq, kk.repeat_interleave(2, 1).transpose(-2, -1)) / 32 ** 0.5
    o = torch.matmul(torch.softmax(s, -1), vv.repeat_interleave(2, 1))
    o.backward(do)
    for mine, theirs in ((out, o), (dq, qq.grad), (dk, kk.grad), (dv, vv.grad)):
        torch.testing.assert_close(mine, theirs.detach(), rtol=1e-12, atol=1e-12)
    assert not q.requires_grad  # the reference never touched the caller's tensors


def test_measure_records_the_gradients_and_times_the_pass():
    m = measure("tiled", CAUSAL.with_pass("fwd+bwd"), "cpu", budget=QUICK, latency=False)
    assert m.status == "ok", m.reason
    assert set(m.gradients) == {"dq", "dk", "dv"} and all(c.passed for c in m.gradients.values())
    assert m.device_time.median_s > 0
    fwd = measure("tiled", CAUSAL, "cpu", budget=QUICK, latency=False)
    assert fwd.status == "ok" and fwd.gradients is None


def test_the_report_carries_the_gradients_and_validates_against_schema_2(tmp_path):
    import json

    import jsonschema

    from attnperf.io.jsonfile import write_json
    from attnperf.io.report import SCHEMA_FILE, build_report, read_results
    from attnperf.measure.device import fingerprint

    ms = [measure("naive", CAUSAL.with_pass(mode), "cpu", budget=QUICK, latency=False)
          for mode in ("fwd", "bwd")]
    ms.append(measure("test_wrong_dk_only", GQA.with_pass("fwd+bwd"), "cpu", budget=QUICK,
                      latency=False, spec=_spec(wrong_dk_only)))
    report = build_report(ms, fingerprint("cpu"), None, {"passes": ["fwd", "bwd", "fwd+bwd"]})
    jsonschema.validate(report, json.loads(SCHEMA_FILE.read_text()))
    fwd, bwd, wrong = report["results"]
    assert fwd["gradients"] is None and fwd["config"]["mode"] == "fwd"
    assert bwd["config"]["mode"] == "bwd" and bwd["config_id"].endswith("_causal_bwd")
    assert set(bwd["gradients"]) == {"dq", "dk", "dv"}
    assert all(g["passed"] and g["tolerance"] == GRAD_TOLERANCES["float32"]
               for g in bwd["gradients"].values())
    assert wrong["status"] == "failed" and wrong["gradients"]["dk"]["passed"] is False
    path = tmp_path / "r.json"
    write_json(str(path), report)
    assert [r["id"] for r in read_results(str(path))] == [r["id"] for r in report["results"]]


def test_wrong_backward_is_a_failed_measurement_that_is_not_timed():
    m = measure("test_wrong_dk_only", GQA.with_pass("bwd"), "cpu", budget=QUICK, latency=False,
                spec=_spec(wrong_dk_only))
    assert m.status == "failed" and m.reason.startswith("wrong gradient dk")
    assert m.device_time is None and m.gradients["dk"].passed is False


def test_passes_capability():
    fwd_only = _spec(right, passes=["fwd"])
    assert fwd_only.check(GQA, "cpu") == (True, "available")
    ok, why = fwd_only.check(GQA.with_pass("bwd"), "cpu")
    assert not ok and why == "test_right supports the pass(es) fwd only (problem is bwd)"
    with pytest.raises(ValueError, match="unknown 'backward'"):
        _spec(right, passes=["backward"])
    # Default (plugins): every pass, the backward ones when the output is differentiable.
    m = measure("test_no_autograd", GQA.with_pass("bwd"), "cpu", budget=QUICK, latency=False,
                spec=_spec(no_autograd))
    assert m.status == "unavailable" and "has no backward" in m.reason
    for name in ("sdpa", "sdpa_flash", "naive", "tiled", "triton_flash"):
        assert registry.get(name).passes == ("fwd", "bwd", "fwd+bwd")


def test_a_kernel_writing_to_dout_fails():
    def writes_dout(grad):
        grad.mul_(2)  # in place on the incoming gradient: dO itself
        return grad

    def sneaky(q, k, v, *, causal, scale):
        out = naive_attention(q, k, v, causal=causal, scale=scale)
        out.register_hook(writes_dout)
        return out

    out, grads, why = _gate(sneaky, GQA.with_pass("bwd"))
    assert why == "kernel modified its inputs (dout)"
    assert all(c.modified_inputs == ["dout"] and not c.passed for c in grads.values())


def test_an_ab_row_of_a_training_pass_names_the_pass_problem():
    from attnperf.analysis.ab import Row

    def row(*params):
        return Row("bench_attention.TrainingPass.track_device_time", params, None, None, None, "",
                   None, None)

    assert row("sdpa", "cpu_gqa", "fwd+bwd").problem == "b1_h8_kv2_sq256_d64_fp32_fwdbwd"
    assert (
        row("sdpa", "b1_h8_sq512_d64_fp32_causal", "bwd").problem
        == "b1_h8_sq512_d64_fp32_causal_bwd"
    )
    assert row("sdpa", "mystery", "bwd").problem == "mystery bwd"
    assert row("sdpa", "cpu_gqa").problem == "cpu_gqa"
