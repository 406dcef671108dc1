"""attnperf.roofline: every formula pinned by hand-computed literals.

Each expected number below is worked out in the comment beside it, never by
calling the function under test.
"""

import pytest

from attnperf.model import roofline
from attnperf.model.catalog import PRESETS
from attnperf.model.peaks import match_peak
from attnperf.model.problem import Problem
from attnperf.model.roofline import Ceiling, analyze, causal_pairs, ceiling_for, classify

SEED = PRESETS["seed"]      # 8,4,64,64 fp16
TRAIN = PRESETS["train"]    # 4,16,2048,128 bf16
DECODE = PRESETS["decode"]  # b8, 32 q heads / 8 kv heads, sq 1, sk 4096, d128, bf16
H100 = match_peak("NVIDIA H100 80GB HBM3")
# What an H100 host measured: copy 3.0 TB/s, bf16 matmul ~777 TF/s.
H100_MEASURED = {"bandwidth_gb_s": 3000.0, "matmul_tflops": {"float16": 760.0, "bfloat16": 777.0}}


# ---------------------------------------------------------------- FLOPs -----
@pytest.mark.parametrize("sq,sk,pairs", [
    (4, 4, 10),       # 1+2+3+4 = S(S+1)/2
    (3, 3, 6),        # 1+2+3
    (2, 5, 3),        # 1+2: short query block sees the first keys only
    (5, 2, 9),        # 1+2+2+2+2: rows past Sk see every key
    (1, 4096, 1),     # decode step under top-left causal sees key 0
    (1, 1, 1),
])
def test_causal_pairs(sq, sk, pairs):
    assert causal_pairs(sq, sk) == pairs


def test_forward_flops_non_causal():
    # 4 * B * Hq * Sq * Sk * D = 4 * 2 * 3 * 5 * 7 * 4 = 3360
    p = Problem(batch=2, heads=3, seq_q=5, seq_kv=7, head_dim=4, dtype="fp32")
    assert roofline.flops(p) == 3360


def test_forward_flops_causal_counts_visible_pairs_exactly():
    # 4 * D * B * Hq * pairs = 4 * 8 * 1 * 2 * 10 = 640 (not S^2/2 = 8 pairs)
    p = Problem(batch=1, heads=2, seq_q=4, head_dim=8, causal=True, dtype="fp32")
    assert roofline.attention_pairs(p) == 20
    assert roofline.flops(p) == 640
    # Sq=5, Sk=2: 9 pairs; 4 * 2 * 9 = 72
    p = Problem(batch=1, heads=1, seq_q=5, seq_kv=2, head_dim=2, causal=True, dtype="fp32")
    assert roofline.flops(p) == 72


def test_flops_of_seed_train_decode():
    # seed: 4 * 8 * 4 * 64 * 64 * 64 = 33,554,432
    assert roofline.flops(SEED) == 33_554_432
    # train: 4 * 4 * 16 * 2048 * 2048 * 128 = 256 * 4,194,304 * 128 = 137,438,953,472
    assert roofline.flops(TRAIN) == 137_438_953_472
    # decode: 4 * 8 * 32 * 1 * 4096 * 128 = 536,870,912
    assert roofline.flops(DECODE) == 536_870_912


# ---------------------------------------------------------------- bytes -----
def test_bytes_seed():
    # 2 B * 64 * (2*8*4*64 + 2*8*4*64) = 128 * 8192 = 1,048,576
    assert roofline.bytes_moved(SEED) == 1_048_576


def test_bytes_train_and_decode():
    # train: 2 * 128 * (2*4*16*2048 + 2*4*16*2048) = 256 * 524,288 = 134,217,728
    assert roofline.bytes_moved(TRAIN) == 134_217_728
    # decode: 2 * 128 * (2*8*32*1 + 2*8*8*4096) = 256 * (512 + 524,288) = 134,348,800
    assert roofline.bytes_moved(DECODE) == 134_348_800


def test_gqa_reads_less_than_mha():
    # fp32, D=4: 4*4*(2*1*8*16 + 2*1*kv*16): kv=2 -> 16*(256+64) = 5120; kv=8 -> 16*512 = 8192
    gqa = Problem(batch=1, heads=8, kv_heads=2, seq_q=16, head_dim=4, dtype="fp32")
    mha = Problem(batch=1, heads=8, seq_q=16, head_dim=4, dtype="fp32")
    assert roofline.bytes_moved(gqa) == 5120
    assert roofline.bytes_moved(mha) == 8192
    assert roofline.flops(gqa) == roofline.flops(mha)  # same math, fewer bytes


# ------------------------------------------------------------ intensity -----
def test_arithmetic_intensity():
    # 33,554,432 / 1,048,576 = 32 (a legacy report says 32.0 too)
    assert roofline.arithmetic_intensity(SEED) == 32.0
    assert roofline.arithmetic_intensity(TRAIN) == 1024.0    # 137,438,953,472 / 134,217,728
    # 536,870,912 / 134,348,800 = 3.99609756...
    assert roofline.arithmetic_intensity(DECODE) == pytest.approx(3.99609756097561)


def test_ridge_point():
    # 989.4e12 FLOP/s / 3.35e12 B/s = 295.3433 FLOP/byte
    assert Ceiling(989.4, 3350.0, "x").ridge_point == pytest.approx(295.34328358208955)
    assert Ceiling(100.0, 1000.0, "x").ridge_point == pytest.approx(100.0)


# ------------------------------------------------------------- analyze ------
TOY = Ceiling(tflops=100.0, bandwidth_gb_s=1000.0, source="toy")


def test_analyze_compute_bound_floors_and_efficiency():
    # compute floor: 137,438,953,472 / 1e14 = 1.37438953472e-3 s
    # memory floor:  134,217,728 / 1e12     = 1.34217728e-4 s  -> compute-bound
    # time = 2 x floor = 2.74877906944e-3 s  -> x_over_floor 2, efficiency 50 %
    r = analyze(TRAIN, 2.74877906944e-3, TOY, "cuda")
    assert r.compute_floor_s == pytest.approx(1.37438953472e-3)
    assert r.memory_floor_s == pytest.approx(1.34217728e-4)
    assert r.floor_s == pytest.approx(1.37438953472e-3)
    assert r.x_over_floor == pytest.approx(2.0)
    assert r.efficiency_pct == pytest.approx(50.0)
    assert r.achieved_tflops == pytest.approx(50.0)        # 137.44e9 / 2.7488e-3 / 1e12
    assert r.achieved_gb_s == pytest.approx(48.828125)     # 134,217,728 / 2.7488e-3 / 1e9
    assert r.ridge_point == pytest.approx(100.0)
    assert r.arithmetic_intensity == 1024.0
    assert (r.regime, r.bottleneck) == ("compute-bound", "Compute")
    d = r.to_dict()
    assert d["floor_ms"] == pytest.approx(1.37438953472)
    assert d["regime"] == "compute-bound"


def test_analyze_memory_bound_low_efficiency_recommends_profiling():
    # compute floor: 536,870,912 / 1e14 = 5.36870912e-6 s
    # memory floor:  134,348,800 / 1e12 = 1.343488e-4 s -> memory-bound
    # time = 4 x floor = 5.373952e-4 s -> efficiency 25 %
    r = analyze(DECODE, 5.373952e-4, TOY, "cuda")
    assert r.memory_floor_s == pytest.approx(1.343488e-4)
    assert r.efficiency_pct == pytest.approx(25.0)
    assert r.x_over_floor == pytest.approx(4.0)
    assert (r.regime, r.bottleneck) == ("memory-bound", "Memory Bandwidth")
    assert any("headroom" in rec for rec in r.recommendations)


def test_analyze_efficiency_over_100_flags_the_ceiling():
    r = analyze(DECODE, 1.343488e-4 / 2, TOY, "cuda")
    assert r.efficiency_pct == pytest.approx(200.0)  # kept as measured, never silently
    assert r.ceiling_beaten and "measured too low" in r.ceiling_note
    assert any(rec.startswith("Ceiling beaten: this call ran at 200% of the ceiling")
               for rec in r.recommendations)
    again = analyze(DECODE, 1.343488e-4 / 2, TOY, "cuda", remeasured=True)
    assert (
        again.ceiling_beaten and "even after the ceilings were measured again" in again.ceiling_note
    )


@pytest.mark.parametrize("factor,beaten", [(1.0, False), (1.049, False), (1.051, True)])
def test_ceiling_beaten_only_past_the_margin(factor, beaten):
    # time = memory floor / factor -> efficiency = 100 * factor %
    r = analyze(DECODE, 1.343488e-4 / factor, TOY, "cuda")
    assert r.efficiency_pct == pytest.approx(100 * factor)
    assert r.ceiling_beaten is beaten and bool(r.ceiling_note) is beaten


@pytest.mark.parametrize("bad", [0.0, -1e-3])
def test_analyze_rejects_non_positive_time(bad):
    with pytest.raises(ValueError, match="positive"):
        analyze(SEED, bad, TOY, "cuda")


# -------------------------------------------------------------- regimes -----
def test_classify_latency_floor_per_device():
    # Largest floor 10 us: above the CUDA latency floor (5 us), below the CPU one (20 us).
    assert classify(10e-6, 1e-6, "cuda") == "compute-bound"
    assert classify(1e-6, 10e-6, "cuda") == "memory-bound"
    assert classify(10e-6, 1e-6, "cpu") == "latency-bound"
    assert classify(1e-6, 4e-6, "cuda") == "latency-bound"


@pytest.mark.parametrize("measured", [None, H100_MEASURED], ids=["datasheet", "measured"])
@pytest.mark.parametrize("problem,regime", [
    # seed: memory floor 1,048,576 B / 3.35e12 = 0.31 us (3.0e12: 0.35 us) << 5 us
    (SEED, "latency-bound"),
    # train: compute 137.4e9 / 989.4e12 = 139 us (777e12: 177 us) > memory 40 us (45 us)
    (TRAIN, "compute-bound"),
    # decode: memory 134,348,800 / 3.35e12 = 40 us (45 us) > compute 0.54 us (0.69 us)
    (DECODE, "memory-bound"),
], ids=["seed", "train", "decode"])
def test_regimes_on_h100(problem, regime, measured):
    ceiling = ceiling_for(problem, measured, H100)
    r = analyze(problem, 1e-3, ceiling, "cuda")
    assert r.regime == regime


# ------------------------------------------------------------ ceilings ------
def test_ceiling_from_datasheet():
    c = ceiling_for(TRAIN, None, H100)
    assert (c.tflops, c.bandwidth_gb_s) == (989.4, 3350.0)
    assert "datasheet H100 SXM" in c.source


def test_measured_ceiling_wins_over_datasheet():
    c = ceiling_for(TRAIN, H100_MEASURED, H100)
    assert (c.tflops, c.bandwidth_gb_s, c.source) == (777.0, 3000.0, "measured")


def test_missing_measured_figure_falls_back_to_datasheet():
    c = ceiling_for(TRAIN, {"bandwidth_gb_s": 3000.0, "matmul_tflops": {}}, H100)
    assert (c.tflops, c.bandwidth_gb_s) == (989.4, 3000.0)
    assert c.source == "measured, datasheet H100 SXM (compute)"


def test_tf32_selects_the_tf32_roof():
    p = Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype="fp32")
    assert ceiling_for(p, None, H100, tf32=True).tflops == 494.7
    assert ceiling_for(p, None, H100, tf32=False).tflops == 66.9


def test_no_ceiling_without_figures():
    assert ceiling_for(SEED, None, None) is None
    assert ceiling_for(SEED, {"bandwidth_gb_s": 50.0, "matmul_tflops": {}}, None) is None


def test_cpu_measured_ceiling():
    p = Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype="fp32")
    c = ceiling_for(p, {"bandwidth_gb_s": 47.0, "matmul_tflops": {"float32": 0.236}}, None)
    assert (c.tflops, c.bandwidth_gb_s, c.source) == (0.236, 47.0, "measured")


def test_cache_resident_problems_are_marked_and_explained():
    # 1 x 8 heads x 1024 x 64 fp16: Q+O = 2*8*1024*64*2 B = 2,097,152 B; K+V the same -> 4 MiB.
    p = Problem(batch=1, heads=8, seq_q=1024, head_dim=64, dtype="float16")
    assert roofline.bytes_moved(p) == 4_194_304
    # memory floor 4.19 us; compute floor 2.1 GFLOP / 1e4 TF/s = 0.21 us
    roof = Ceiling(tflops=1e4, bandwidth_gb_s=1000.0, source="test")
    fast = analyze(p, 2e-6, roof, "cuda", cache_bytes=50 << 20)  # faster than DRAM allows
    assert fast.cache_resident and fast.x_over_floor < 1 and fast.efficiency_pct > 100
    assert any("fit in the last-level cache" in r for r in fast.recommendations)
    assert not fast.ceiling_beaten  # the cache explains beating the DRAM roof...
    # ...but never beating the compute roof: 4*1*8*1024*1024*64 = 2.1 GFLOP over 1 TF/s
    # is a 2.1 ms compute floor; a 1 ms call beats it whatever the cache holds.
    slow_roof = Ceiling(tflops=1.0, bandwidth_gb_s=1e5, source="test")
    assert analyze(p, 1e-3, slow_roof, "cuda", cache_bytes=50 << 20).ceiling_beaten
    cold = analyze(p, 2e-6, roof, "cuda", cache_bytes=1 << 20)  # 1 MiB cache: not resident
    assert not cold.cache_resident and cold.ceiling_beaten
    assert any("measured too low" in r for r in cold.recommendations)


@pytest.mark.parametrize("dtype,rates,expected", [
    # CPU: fp16 matmul 0.001 TF/s, fp32 0.236 -> an fp16 kernel computing in fp32 is roofed at 0.236
    ("float16", {"float16": 0.001, "bfloat16": 0.13, "float32": 0.236}, 0.236),
    ("bfloat16", {"float16": 0.001, "bfloat16": 0.13, "float32": 0.236}, 0.236),
    # GPU: tensor cores make half precision the faster roof; fp32 keeps its own
    ("bfloat16", {"float16": 770.0, "bfloat16": 770.0, "float32": 51.0}, 770.0),
    ("float32", {"float16": 770.0, "bfloat16": 770.0, "float32": 51.0}, 51.0),
])
def test_half_precision_roof_is_the_faster_of_its_own_and_float32(dtype, rates, expected):
    # The custom fp16 CPU problem that ran at 1642-1983 % of a 0.0013 TF/s fp16 roof.
    p = Problem(batch=1, heads=1, seq_q=8, head_dim=8, dtype=dtype)
    assert ceiling_for(p, {"bandwidth_gb_s": 47.0, "matmul_tflops": rates}, None).tflops == expected


def test_analyze_and_floors_use_the_kernels_own_work_model():
    """A kernel's own (FLOPs, bytes) replace the model's where given, in analyze and floors."""
    p = PRESETS["train"]
    c = Ceiling(tflops=100.0, bandwidth_gb_s=1000.0, source="test")
    own_flops = 3 * roofline.flops(p)
    r = analyze(p, 1.0, c, "cuda", work=(own_flops, None))
    assert (r.flops, r.bytes) == (own_flops, roofline.bytes_moved(p))
    assert r.compute_floor_s == pytest.approx(own_flops / 100e12)
    assert r.memory_floor_s == pytest.approx(roofline.bytes_moved(p) / 1000e9)
    assert roofline.floors(p, c, (2 * 10**12, 5 * 10**9)) == pytest.approx((0.02, 0.005))


@pytest.mark.parametrize("work", [(1_050_000_000_000, 1), (1, 1_050_000_000_000)])
def test_ceiling_beaten_at_the_margin_exactly_with_a_work_model(work):
    """A time exactly BEATEN_MARGIN under a floor is not 'beaten'; a hair faster is.
    FLOPs / (1 TF/s) and bytes / (1000 GB/s) are both 1.05 s exactly here."""
    p = PRESETS["train"]
    c = Ceiling(tflops=1.0, bandwidth_gb_s=1000.0, source="test")
    assert roofline.BEATEN_MARGIN == 1.05
    at = analyze(p, 1.0, c, "cuda", work=work)
    assert not at.ceiling_beaten and at.ceiling_note == ""
    past = analyze(p, 0.999, c, "cuda", work=work)
    assert past.ceiling_beaten and past.ceiling_note.startswith("ran at 105% of the ceiling")


def test_half_precision_roof_without_a_measured_float32_rate():
    """Only the bf16 rate measured (and slow): it is the roof; no float32 rate to prefer."""
    c = ceiling_for(PRESETS["train"], {"matmul_tflops": {"bfloat16": 0.5}, "bandwidth_gb_s": 100.0},
                    None)
    assert (c.tflops, c.bandwidth_gb_s, c.source) == (0.5, 100.0, "measured")
