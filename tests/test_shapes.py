"""attnperf.shapes: validation, stable ids (history keys), presets and sweeps."""

import dataclasses

import pytest

from attnperf.errors import InvalidShapeError, UnknownNameError
from attnperf.model.catalog import PRESETS, SWEEPS, resolve, sweep
from attnperf.model.problem import Problem, canonical_dtype

SIZE_FIELDS = ["batch", "heads", "seq_q", "head_dim", "seq_kv", "kv_heads"]


def make(**overrides) -> Problem:
    kw = dict(batch=2, heads=4, seq_q=8, head_dim=16)
    kw.update(overrides)
    return Problem(**kw)


# ---------------------------------------------------------- validation ------
BAD_SIZES = [0, -1, 2.0, 2.5, "4", True, False]
# None means "same as seq_q / heads" for seq_kv and kv_heads, so it is bad only for the others.
BAD_SIZE_CASES = [(f, bad) for f in SIZE_FIELDS for bad in BAD_SIZES] + [
    (f, None) for f in ("batch", "heads", "seq_q", "head_dim")]


@pytest.mark.parametrize("field,bad", BAD_SIZE_CASES)
def test_bad_size_is_rejected_naming_field_and_value(field, bad):
    with pytest.raises(InvalidShapeError) as info:
        make(**{field: bad})
    msg = str(info.value)
    assert field in msg
    assert "positive integer" in msg
    assert repr(bad) in msg or str(bad) in msg


def test_heads_not_divisible_by_kv_heads():
    with pytest.raises(InvalidShapeError, match=r"heads=6 is not divisible by kv_heads=4"):
        make(heads=6, kv_heads=4)


def test_kv_heads_larger_than_heads_is_rejected():
    with pytest.raises(InvalidShapeError, match="kv_heads=8"):
        make(heads=4, kv_heads=8)


@pytest.mark.parametrize("bad", ["int8", "float64", "", "fp8"])
def test_unknown_dtype_lists_allowed(bad):
    with pytest.raises(InvalidShapeError) as info:
        make(dtype=bad)
    msg = str(info.value)
    assert repr(bad) in msg
    assert "allowed:" in msg and "float16" in msg and "bfloat16" in msg and "float32" in msg


@pytest.mark.parametrize("alias,canonical", [
    ("fp16", "float16"), ("half", "float16"), ("FP16", "float16"), ("bf16", "bfloat16"),
    ("fp32", "float32"), ("float", "float32"), (" bfloat16 ", "bfloat16")])
def test_dtype_aliases(alias, canonical):
    assert canonical_dtype(alias) == canonical
    assert make(dtype=alias).dtype == canonical


@pytest.mark.parametrize("mode", ["backward", "fwdbwd", "", "FWD"])
def test_unknown_mode(mode):
    # Passes are fwd, bwd, fwd+bwd; "fwdbwd" is only fwd+bwd's tag in ids.
    with pytest.raises(InvalidShapeError, match=r"unknown pass .*allowed: fwd, bwd, fwd\+bwd"):
        make(mode=mode)


def test_causal_must_be_a_bool():
    with pytest.raises(InvalidShapeError, match="causal"):
        make(causal=1)


def test_errors_are_value_errors_for_callers_that_catch_those():
    with pytest.raises(ValueError):
        make(batch=0)


def test_defaults_fill_seq_kv_and_kv_heads():
    p = make()
    assert (p.seq_kv, p.kv_heads, p.gqa_group) == (8, 4, 1)
    assert make(heads=32, kv_heads=8).gqa_group == 4


@pytest.mark.parametrize("dtype,size", [("float16", 2), ("bfloat16", 2), ("float32", 4)])
def test_element_size(dtype, size):
    assert make(dtype=dtype).element_size == size


def test_problem_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        make().batch = 3  # type: ignore[misc]


# ------------------------------------------------------------------ ids -----
@pytest.mark.parametrize("problem,expected", [
    (Problem(batch=8, heads=4, seq_q=64, head_dim=64, dtype="float16"), "b8_h4_sq64_d64_fp16"),
    (Problem(batch=1, heads=32, kv_heads=8, seq_q=1, seq_kv=4096, head_dim=128, dtype="bf16"),
     "b1_h32_kv8_sq1_sk4096_d128_bf16"),
    (Problem(batch=1, heads=8, seq_q=512, head_dim=64, causal=True, dtype="fp32"),
     "b1_h8_sq512_d64_fp32_causal"),
    # Explicitly equal seq_kv / kv_heads do not change the id (same problem, same key).
    (Problem(batch=2, heads=4, kv_heads=4, seq_q=16, seq_kv=16, head_dim=8, dtype="fp16"),
     "b2_h4_sq16_d8_fp16"),
])
def test_id_literals(problem, expected):
    assert problem.id == expected
    assert str(problem) == expected


@pytest.mark.parametrize("name,expected", [
    ("seed", "b8_h4_sq64_d64_fp16"),
    ("decode", "b8_h32_kv8_sq1_sk4096_d128_bf16"),
    ("train", "b4_h16_sq2048_d128_bf16"),
    ("cpu_seed", "b8_h4_sq64_d64_fp32"),
])
def test_preset_ids_are_pinned(name, expected):
    assert PRESETS[name].id == expected


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_from_id_round_trips_every_preset(name):
    p = PRESETS[name]
    assert Problem.from_id(p.id) == p


@pytest.mark.parametrize("bad", ["", "b8_h4", "x8_h4_sq64_d64_fp16", "b8_h4_sq64_d64_fp16_zz",
                                 "b_h4_sq64_d64_fp16"])
def test_from_id_rejects_garbage(bad):
    with pytest.raises(InvalidShapeError) as info:
        Problem.from_id(bad)
    assert repr(bad) in str(info.value)


def test_config_round_trip_and_seed_config_block():
    p = Problem(batch=2, heads=8, kv_heads=2, seq_q=3, seq_kv=5, head_dim=16, causal=True,
                dtype="bf16")
    cfg = p.to_config()
    assert cfg["id"] == p.id
    assert Problem.from_config(cfg) == p
    # A legacy config block has only these five keys.
    seed_cfg = {"batch_size": 8, "num_heads": 4, "seq_len": 64, "head_dim": 64, "dtype": "float16"}
    assert Problem.from_config(seed_cfg).id == "b8_h4_sq64_d64_fp16"


def test_from_config_missing_key():
    with pytest.raises(InvalidShapeError, match="'head_dim'"):
        Problem.from_config({"batch_size": 1, "num_heads": 1, "seq_len": 1})


# ------------------------------------------------------ presets, sweeps -----
def test_presets_the_issue_needs():
    seed = PRESETS["seed"]
    assert (seed.batch, seed.heads, seed.seq_q, seed.head_dim, seed.dtype) == \
        (8, 4, 64, 64, "float16")
    decode = PRESETS["decode"]
    assert decode.seq_q == 1 and decode.kv_heads < decode.heads
    assert PRESETS["gqa"].kv_heads < PRESETS["gqa"].heads
    assert PRESETS["causal"].causal
    train = PRESETS["train"]
    assert (train.batch, train.heads, train.seq_q, train.head_dim, train.dtype) == \
        (4, 16, 2048, 128, "bfloat16")


def test_sweeps_reference_existing_presets():
    for name, members in SWEEPS.items():
        assert members, name
        assert [p.id for p in sweep(name)] == [PRESETS[m].id for m in members]
    assert {"cpu-small", "gpu-default", "seed-train"} <= set(SWEEPS)
    assert [p.id for p in sweep("seed-train")] == ["b8_h4_sq64_d64_fp16", "b4_h16_sq2048_d128_bf16"]
    # The CPU default sweep is CPU-sized: float32 only.
    assert {p.dtype for p in sweep("cpu-small")} == {"float32"}


def test_unknown_preset_and_sweep_list_the_allowed_names():
    with pytest.raises(UnknownNameError) as info:
        sweep("nope")
    assert "'nope'" in str(info.value) and "cpu-small" in str(info.value)
    with pytest.raises(UnknownNameError) as info:
        resolve("nope")
    assert "'nope'" in str(info.value) and "seed" in str(info.value)
