"""Kernel plugins (attnperf.kernels.spec / registry) and the project config (model/config.py,
io/project_config.py): the public kernel API, entry-point discovery, module:attribute
references, bad plugins, a kernel's own FLOP model, [tool.attnperf] validation and use."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

import attnperf
from attnperf.asv import suite
from attnperf.errors import ConfigError, PluginError
from attnperf.kernels import registry
from attnperf.kernels.spec import KernelSpec
from attnperf.measure.session import measure
from attnperf.measure.timing import Budget
from attnperf.model import roofline
from attnperf.model.config import parse
from attnperf.model.problem import Problem

PLUGIN = '''
import torch
import attnperf

def _attention(q, k, v, causal, scale):
    g = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
    s = torch.matmul(q.float(), k.float().transpose(-2, -1)) * scale
    if causal:
        s = s.masked_fill(~torch.ones(s.shape[-2:], dtype=torch.bool).tril(), float("-inf"))
    return torch.matmul(torch.softmax(s, dim=-1), v.float()).to(q.dtype)

@attnperf.kernel(name="good", family="test")
def good(q, k, v, *, causal, scale):
    return _attention(q, k, v, causal, scale)

@attnperf.kernel(name="raises_big")
def raises_big(q, k, v, *, causal, scale):
    if q.shape[2] > 8:
        raise RuntimeError(f"seq_q {q.shape[2]} > 8 is not implemented")
    return _attention(q, k, v, causal, scale)

@attnperf.kernel(name="wrong_shape")
def wrong_shape(q, k, v, *, causal, scale):
    return _attention(q, k, v, causal, scale)[:, :1]

@attnperf.kernel(name="nan_out")
def nan_out(q, k, v, *, causal, scale):
    out = _attention(q, k, v, causal, scale).clone()
    out[0, 0, 0, 0] = float("nan")
    return out

KERNELS = [good, raises_big, wrong_shape, nan_out]

OWN_WORK = attnperf.kernel(name="own_work", flops=lambda p: 1000, bytes=lambda p: 4000)(good.fn)
NOT_A_SPEC = [good.fn]
'''


def _dist(site, name, version, entry_points):
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "entry_points.txt").write_text("[attnperf.kernels]\n" + "".join(
        f"{k} = {v}\n" for k, v in entry_points.items()))


@pytest.fixture
def plugin_site(tmp_path):
    """Installed plugin distributions (dist-info + entry points) in a sys.path directory:
    goodplug (four kernels), badplug (an entry point whose module does not exist)."""
    site = tmp_path / "site"
    (site / "goodplug").mkdir(parents=True)
    (site / "goodplug" / "__init__.py").write_text(PLUGIN)
    _dist(site, "goodplug", "1.0", {"goodplug": "goodplug:KERNELS"})
    _dist(site, "badplug", "0.1", {"broken": "badplug_missing.kernels:KERNELS"})
    return site


@pytest.fixture
def fresh_registry(monkeypatch, plugin_site):
    """A registry that discovers the plugin site (the global one is left alone)."""
    monkeypatch.syspath_prepend(str(plugin_site))
    monkeypatch.setattr(registry, "REGISTRY", registry.Registry())
    return registry.REGISTRY


def _attnperf(cwd, site, *args):
    env = dict(os.environ, PYTHONPATH=str(site))
    return subprocess.run([sys.executable, "-m", "attnperf", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


BROKEN_WHY = ("kernel plugin entry point 'broken = badplug_missing.kernels:KERNELS' (badplug 0.1) "
              "failed to import: ModuleNotFoundError: No module named 'badplug_missing'")


# --------------------------------------------------------------- the API ----
def test_public_api_decorator_makes_a_callable_spec():
    assert attnperf.KERNEL_API_VERSION == 1

    @attnperf.kernel(name="k1", family="fam", devices=["cuda"], dtypes=["bf16", "fp16"])
    def k1(q, k, v, *, causal, scale):
        """first line of the doc"""
        return q * scale

    assert isinstance(k1, attnperf.KernelSpec) and k1.description == "first line of the doc"
    assert k1.dtypes == ("bfloat16", "float16") and k1.devices == ("cuda",)
    q = torch.ones(1, 1, 2, 4)
    assert torch.equal(k1(q, q, q), q * 0.5)  # scale defaults to 1/sqrt(head_dim)
    p = Problem(batch=1, heads=1, seq_q=2, head_dim=4, dtype="fp32")
    assert k1.check(p, "cpu") == (False, "k1 runs only on CUDA (device is cpu)")
    assert k1.check(p, "cuda") == (False, "k1 supports bfloat16, float16 only (problem is float32)")


def test_supports_takes_the_problem_and_optionally_the_device():
    p = Problem(batch=1, heads=1, seq_q=2, head_dim=256, dtype="fp32")
    one = KernelSpec(name="a", fn=lambda q, k, v, **kw: q,
                     supports=lambda prob: "head_dim > 128" if prob.head_dim > 128 else None)
    two = KernelSpec(name="b", fn=lambda q, k, v, **kw: q,
                     supports=lambda prob, device: f"not on {device}")
    assert one.check(p, "cpu") == (False, "head_dim > 128")
    assert two.check(p, "cpu") == (False, "not on cpu")


@pytest.mark.parametrize("kw,match", [
    (dict(devices=["tpu"]), "unknown 'tpu'; allowed: cpu, cuda"),
    (dict(dtypes=["int8"]), "unknown 'int8'"),
    (dict(devices="cpu"), "must be a list"),
    (dict(name="a|b"), "without '|'"),
    (dict(fn=3), "fn must be callable"),
    (dict(flops=5), "flops must be callable"),
])
def test_spec_validation(kw, match):
    args = dict(name="x", fn=lambda q, k, v, **kw: q)
    args.update(kw)
    with pytest.raises((ValueError, TypeError), match=match):
        KernelSpec(**args)


def test_builtins_are_declared_as_entry_points_and_listed_in_the_registry():
    from pathlib import Path

    from attnperf.io.project_config import read_toml
    eps = read_toml(Path(__file__).resolve().parents[1] / "pyproject.toml")["project"][
        "entry-points"][registry.GROUP]
    assert sorted(eps.values()) == sorted(registry.BUILTINS)


# --------------------------------------------------------- discovery ---------
def test_entry_points_are_discovered_and_a_broken_one_is_a_placeholder(fresh_registry, caplog):
    names = fresh_registry.names()
    assert {"good", "raises_big", "wrong_shape", "nan_out", "broken", "sdpa", "tiled"} <= set(names)
    assert (
        fresh_registry.get("good").origin
        == "entry point 'goodplug = goodplug:KERNELS' (goodplug 1.0)"
    )
    assert fresh_registry.broken() == {"broken": BROKEN_WHY}
    assert [r.getMessage() for r in caplog.records if r.levelname == "WARNING"] == [BROKEN_WHY]


def test_module_attribute_references(fresh_registry):
    assert fresh_registry.add_reference("goodplug:OWN_WORK") == ["own_work"]
    assert fresh_registry.references() == ["goodplug:OWN_WORK"]
    with pytest.raises(PluginError, match="kernel plugin goodplug:NOT_A_SPEC holds a function"):
        fresh_registry.add_reference("goodplug:NOT_A_SPEC")
    with pytest.raises(PluginError, match="module 'goodplug' has no attribute 'NOPE'"):
        fresh_registry.add_reference("goodplug:NOPE")
    with pytest.raises(PluginError, match="must look like package.module:ATTRIBUTE"):
        fresh_registry.add_reference("goodplug")


def test_a_kernels_own_work_model_is_the_roofline(fresh_registry):
    fresh_registry.add_reference("goodplug:OWN_WORK")
    p = Problem(batch=1, heads=2, seq_q=16, head_dim=8, dtype="fp32")
    m = measure("own_work", p, "cpu", ceiling_data={"bandwidth_gb_s": 50.0,
                                                     "matmul_tflops": {"float32": 0.25}},
                budget=Budget(min_samples=3, budget_s=0.01, warmup_s=0.0), latency=False)
    assert m.status == "ok" and (m.roofline.flops, m.roofline.bytes) == (1000, 4000)
    assert roofline.flops(p) != 1000
    assert m.roofline.achieved_tflops == pytest.approx(1000 / m.device_time.median_s / 1e12)


def test_attnperf_kernels_lists_a_broken_plugin_with_its_reason(tmp_path, plugin_site):
    proc = _attnperf(tmp_path, plugin_site, "kernels", "--device", "cpu")
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == f"WARNING attnperf.kernels.registry: {BROKEN_WHY}"
    line = next(x for x in proc.stdout.splitlines() if x.strip().startswith("broken "))
    assert line.split(None, 2)[1:] == ["unavailable:", BROKEN_WHY]
    assert any(x.split()[:2] == ["good", "available:"] for x in proc.stdout.splitlines())


def test_bad_plugins_fail_their_configs_only(tmp_path, plugin_site):
    """raises on some shapes, wrong shape, NaN, cannot import: each recorded for its configs,
    every other kernel measured, exit 1 -- driven by the repository's [tool.attnperf]."""
    (tmp_path / "pyproject.toml").write_text(textwrap.dedent('''
        [tool.attnperf]
        kernels = ["good", "raises_big", "wrong_shape", "nan_out", "broken"]
        baselines = ["sdpa"]
        problems = [{batch = 1, heads = 2, seq_q = [8, 16], head_dim = 8, dtype = "float32"}]
        '''))
    proc = _attnperf(tmp_path, plugin_site, "run", "--device", "cpu", "--budget-ms", "20",
                     "-o", "r.json")
    assert proc.returncode == 1, proc.stderr
    results = {r["id"]: r for r in json.loads((tmp_path / "r.json").read_text())["results"]}
    status = {k: v["status"] for k, v in results.items()}
    s8, s16 = "b1_h2_sq8_d8_fp32", "b1_h2_sq16_d8_fp32"
    assert status == {
        f"good/{s8}": "ok", f"raises_big/{s8}": "ok", f"wrong_shape/{s8}": "error",
        f"nan_out/{s8}": "failed", f"broken/{s8}": "error", f"sdpa/{s8}": "ok",
        f"good/{s16}": "ok", f"raises_big/{s16}": "error", f"wrong_shape/{s16}": "error",
        f"nan_out/{s16}": "failed", f"broken/{s16}": "error", f"sdpa/{s16}": "ok"}
    assert results[f"raises_big/{s16}"]["reason"] == "RuntimeError: seq_q 16 > 8 is not implemented"
    assert results[f"wrong_shape/{s8}"]["reason"] == (
        "ValueError: kernel returned shape (1, 1, 8, 8), expected (1, 2, 8, 8) (the shape of q)")
    assert "nonfinite=1" in results[f"nan_out/{s8}"]["reason"]
    assert results[f"broken/{s8}"]["reason"] == f"PluginError: {BROKEN_WHY}"
    assert f"raises_big/{s16}: error: RuntimeError: seq_q 16 > 8" in proc.stdout


def test_kernel_module_flag_and_its_errors(cli, tmp_path, tiny_run_args, fresh_registry):
    res = cli("run", *tiny_run_args, "--kernel-module", "goodplug:OWN_WORK", "--kernel", "own_work",
              "-o", tmp_path / "r.json")
    assert res.code == 0, res.err
    res = cli("run", *tiny_run_args, "--kernel-module", "nosuchpkg.k:KERNELS", "--kernel", "sdpa")
    assert res.code == 2 and res.err_lines == [
        "error: kernel plugin nosuchpkg.k:KERNELS failed to import: ModuleNotFoundError: "
        "No module named 'nosuchpkg'"]


# ------------------------------------------------------------- config -------
def test_config_parses_presets_ids_tables_and_products():
    c = parse(
        {
            "kernels": ["k"],
            "baselines": ["sdpa", "k"],
            "problems": [
                "cpu_seed",
                "b1_h8_sq512_d64_fp32_causal",
                {
                    "batch": 1,
                    "heads": 8,
                    "kv_heads": [2, 8],
                    "seq_q": 64,
                    "head_dim": 32,
                    "dtype": ["fp16", "bf16"],
                    "causal": True,
                },
            ],
            "sweeps": {"tiny": [{"batch": 1, "heads": 1, "seq_q": 4, "head_dim": 4}]},
            "tolerances": {"bfloat16": 0.03},
            "regression-factor": 1.2,
        },
        source="p.toml",
    )
    assert c.tracked == ["k", "sdpa"]
    assert [p.id for p in c.problems] == [
        "b8_h4_sq64_d64_fp32", "b1_h8_sq512_d64_fp32_causal",
        "b1_h8_kv2_sq64_d32_fp16_causal", "b1_h8_kv2_sq64_d32_bf16_causal",
        "b1_h8_sq64_d32_fp16_causal", "b1_h8_sq64_d32_bf16_causal"]
    assert [p.id for p in c.sweeps["tiny"]] == ["b1_h1_sq4_d4_fp16"]
    assert c.tolerances == {"bfloat16": 0.03} and (c.factor("cpu"), c.factor("cuda")) == (1.2, 1.2)
    assert parse({}).problems is None and parse({}).factors == {"cpu": 1.5, "cuda": 1.05}


@pytest.mark.parametrize("table,message", [
    ({"kernal": ["x"]}, "p.toml: unknown key tool.attnperf.kernal; allowed: kernels, baselines, "
                        "kernel-modules, problems, sweeps, tolerances, regression-factor, passes"),
    ({"kernels": "sdpa"}, "p.toml: tool.attnperf.kernels = 'sdpa' is invalid ("),
    ({"problems": [{"batch": 1, "heads": 2, "seq_q": 4, "head_dim": 8, "dtype": "int8"}]},
     "p.toml: tool.attnperf.problems[0].dtype = 'int8' is not allowed; allowed: bf16, bfloat16,"),
    ({"problems": [{"batch": 1, "heads": 2, "seq_q": 4, "head_dim": 8, "colour": 1}]},
     "p.toml: unknown key tool.attnperf.problems[0].colour; allowed: batch, causal, dtype,"),
    ({"problems": [{"batch": 0, "heads": 2, "seq_q": 4, "head_dim": 8}]},
     "p.toml: tool.attnperf.problems[0].batch = 0 is invalid"),
    ({"problems": [{"batch": 1, "heads": 3, "kv_heads": 2, "seq_q": 4, "head_dim": 8}]},
     "kv_heads must divide heads"),
    ({"problems": ["nosuch"]}, "p.toml: tool.attnperf.problems[0]: unknown problem 'nosuch'"),
    ({"tolerances": {"fp8": 0.1}}, "p.toml: unknown key tool.attnperf.tolerances.fp8; allowed: "
                                   "bfloat16, float16, float32, float64, tf32"),
    ({"regression-factor": 0.9}, "p.toml: tool.attnperf.regression-factor = 0.9 is invalid"),
    ({"regression-factor": {"gpu": 1.1}}, "unknown key tool.attnperf.regression-factor.gpu; "
                                          "allowed: cpu, cuda"),
    ({"kernel-modules": ["no_colon"]}, "allowed: a list of 'package.module:ATTRIBUTE' references"),
])
def test_config_errors_are_one_line_naming_key_and_allowed(table, message):
    with pytest.raises(ConfigError) as info:
        parse(table, source="p.toml")
    text = str(info.value)
    assert message in text and "\n" not in text, text


def test_bad_config_is_exit_2_from_run(cli, tmp_path, monkeypatch, tiny_run_args):
    (tmp_path / "pyproject.toml").write_text("[tool.attnperf]\nproblems = []\n")
    monkeypatch.chdir(tmp_path)
    res = cli("run", *tiny_run_args)
    assert res.code == 2 and len(res.err_lines) == 1 and res.out == ""
    assert res.err_lines[0].startswith(
        f"error: {tmp_path / 'pyproject.toml'}: tool.attnperf.problems"
    )
    (tmp_path / "pyproject.toml").write_text("[tool.attnperf\n")
    res = cli("run", *tiny_run_args)
    assert res.code == 2 and "invalid TOML" in res.err and len(res.err_lines) == 1
    (tmp_path / "pyproject.toml").write_text('[tool.attnperf]\nkernels = ["nope"]\n')
    res = cli("run", "--device", "cpu")
    assert res.code == 2 and "[tool.attnperf] names unknown kernel 'nope'; allowed: sdpa" in res.err


def test_config_tolerance_is_used(cli, tmp_path, monkeypatch, tiny_run_args):
    (tmp_path / "pyproject.toml").write_text("[tool.attnperf]\ntolerances = {float32 = 1e-9}\n")
    monkeypatch.chdir(tmp_path)
    res = cli("run", *tiny_run_args, "--kernel", "tiled", "-o", tmp_path / "r.json")
    r = json.loads((tmp_path / "r.json").read_text())["results"][0]
    assert r["correctness"]["tolerance"] == 1e-9 and r["status"] == "failed" and res.code == 1


def test_suite_grid_reads_the_config(tmp_path, monkeypatch):
    assert suite.grid(tmp_path) == (suite.GRID_KERNELS, suite.GRID_PROBLEMS)  # no pyproject
    (tmp_path / "pyproject.toml").write_text(
        '[tool.attnperf]\nkernels = ["tiled"]\nbaselines = ["sdpa"]\nproblems = ["cpu_seed"]\n')
    assert suite.grid(tmp_path) == (["tiled", "sdpa"], ["b8_h4_sq64_d64_fp32"])
    monkeypatch.setenv("ATTNPERF_ASV_KERNELS", "sdpa")
    assert suite.selection(tmp_path) == (["sdpa"], ["b8_h4_sq64_d64_fp32"])


def test_suite_records_an_unloadable_kernel_module_as_errors(tmp_path, monkeypatch):
    monkeypatch.setattr(registry, "REGISTRY", registry.Registry())
    (tmp_path / "pyproject.toml").write_text(
        '[tool.attnperf]\nkernels = ["mine"]\nbaselines = ["sdpa"]\n'
        'kernel-modules = ["not_here.k:KERNELS"]\nproblems = ["cpu_seed"]\n')
    cache = suite.measure_grid(device_name="cpu", project_dir=tmp_path,
                               budget=Budget(min_samples=7, budget_s=0.05))
    pid = "b8_h4_sq64_d64_fp32"
    assert cache[f"sdpa|{pid}"]["status"] == "ok"
    with pytest.raises(RuntimeError, match="no kernel named 'mine' is registered; kernel plugin "
                                           "not_here.k:KERNELS failed to import"):
        suite.entry_for(cache, "mine", pid)


def test_run_on_a_cpu_leaves_out_the_configs_gpu_problems(cli, tmp_path, monkeypatch):
    # Before: a CPU run of the starter config printed a "skipped" row per GPU preset.
    (tmp_path / "pyproject.toml").write_text(
        '[tool.attnperf]\nkernels = ["sdpa"]\nproblems = ["seed", '
        '{batch = 1, heads = 2, seq_q = 16, head_dim = 8, dtype = "float32"}, "train"]\n')
    monkeypatch.chdir(tmp_path)
    res = cli("run", "--device", "cpu", "--budget-ms", "5", "--in-process", "-o", "r.json")
    assert res.code == 0, res.err
    results = json.loads((tmp_path / "r.json").read_text())["results"]
    assert [r["id"] for r in results] == ["sdpa/b1_h2_sq16_d8_fp32"]
    assert "b8_h4_sq64_d64_fp16" not in res.out and "skipped" not in res.out
    assert ("attnperf: [tool.attnperf] problems that need a GPU, left out on cpu: "
            "b8_h4_sq64_d64_fp16, b4_h16_sq2048_d128_bf16") in res.err
    # asked for: measured, even a half-precision problem
    res = cli("run", "--device", "cpu", "--budget-ms", "5", "--in-process", "--batch", "1",
              "--heads", "2", "--seq", "16", "--dim", "8", "--dtype", "fp16")
    assert res.code == 0 and "b1_h2_sq16_d8_fp16" in res.out and "left out" not in res.err
