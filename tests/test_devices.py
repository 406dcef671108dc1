"""attnperf.devices: peak-table name matching, device resolution, the
allowlisted fingerprint and the ceilings cache."""

import json
from pathlib import Path

import pytest
import torch

from attnperf.errors import DeviceUnavailableError
from attnperf.io import ceilings as ceilings_file
from attnperf.measure import ceilings as ceilings_mod
from attnperf.measure.device import fingerprint, machine_key, resolve_device
from attnperf.model.peaks import PEAKS, match_peak


# Names as torch.cuda.get_device_properties().name reports them on real parts.
@pytest.mark.parametrize("reported,entry", [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"),
    ("NVIDIA H100 PCIe", "H100 PCIe"),
    ("NVIDIA H100 NVL", "H100 NVL"),
    ("NVIDIA H200", "H200"),
    ("NVIDIA H200 NVL", "H200 NVL"),
    ("NVIDIA A100-SXM4-40GB", "A100 40GB"),
    ("NVIDIA A100-PCIE-40GB", "A100 40GB"),
    ("NVIDIA A100-SXM4-80GB", "A100 SXM 80GB"),
    ("NVIDIA A100 80GB PCIe", "A100 PCIe 80GB"),
    ("NVIDIA L4", "L4"),
    ("NVIDIA A10G", "A10G"),
    ("NVIDIA A10", "A10"),
])
def test_match_peak_real_names(reported, entry):
    peak = match_peak(reported)
    assert peak is not None and peak.name == entry


@pytest.mark.parametrize("reported", ["NVIDIA GeForce RTX 4090", "NVIDIA L40S", "Tesla T4", "",
                                      "NVIDIA GH200 480GB"])
def test_match_peak_unknown_is_none(reported):
    assert match_peak(reported) is None


def test_peak_figures_of_the_h100_sxm():
    p = match_peak("NVIDIA H100 80GB HBM3")
    assert p.tflops["bfloat16"] == 989.4 and p.tflops["float16"] == 989.4
    assert p.bandwidth_tb_s == 3.35
    assert "datasheet" in p.source


def test_every_peak_is_cited_and_complete():
    names = [p.name for p in PEAKS]
    assert len(names) == len(set(names))
    for p in PEAKS:
        assert p.source and p.bandwidth_tb_s > 0
        assert {"float16", "bfloat16", "float32"} <= set(p.tflops)


# ------------------------------------------------------------- devices ------
def test_resolve_cpu_and_auto():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_unknown_device_lists_choices():
    with pytest.raises(DeviceUnavailableError, match=r"'tpu'.*auto, cpu, cuda"):
        resolve_device("tpu")


def test_cuda_without_gpu_is_a_named_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailableError, match="--device cuda .*no CUDA GPU"):
        resolve_device("cuda")


# ---------------------------------------------------------- fingerprint -----
ALLOWED_KEYS = {
    "attnperf_version", "attnperf_commit", "python", "torch", "platform", "cpu_model",
    "cpu_count", "torch_threads", "device", "gpu_name", "gpu_count", "sm_count",
    "compute_capability", "gpu_memory_gb", "driver", "cuda", "cudnn",
}


def test_fingerprint_is_allowlisted_and_holds_no_environment(monkeypatch):
    monkeypatch.setenv("ATTNPERF_SECRET_SENTINEL", "sentinel-5b1f0c")
    env = fingerprint("cpu")
    assert set(env) == ALLOWED_KEYS
    assert env["device"] == "cpu" and env["gpu_name"] is None
    assert env["torch"] == torch.__version__
    assert "sentinel-5b1f0c" not in json.dumps(env)


def test_machine_key_is_stable_and_hardware_sensitive():
    env = fingerprint("cpu")
    key = machine_key(env)
    assert len(key) == 16 and key == machine_key(dict(env))
    assert machine_key({**env, "torch_threads": (env["torch_threads"] or 0) + 1}) != key
    # The commit is not part of the key: ceilings do not change with our own code.
    assert machine_key({**env, "attnperf_commit": "0" * 40}) == key


# ------------------------------------------------------------ ceilings ------
def test_cached_ceilings_are_read_not_measured(monkeypatch, isolated_cache):
    def boom(*a, **k):
        raise AssertionError("measured although a cache entry exists")
    monkeypatch.setattr(ceilings_mod, "measure_ceilings", boom)
    data = ceilings_mod.load_or_measure_ceilings("cpu", fingerprint("cpu"))
    assert data["cached"] is True
    assert data["bandwidth_gb_s"] == 50.0  # the canned value conftest wrote


def test_missing_or_stale_cache_is_measured_and_written(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    calls = []

    def fake_measure(device, quick=False):
        calls.append(device)
        return {"schema_version": ceilings_file.SCHEMA_VERSION, "device": device,
                "bandwidth_gb_s": 12.5,
                "matmul_tflops": {"float16": 0.01, "bfloat16": 0.01, "float32": 0.1}}
    monkeypatch.setattr(ceilings_mod, "measure_ceilings", fake_measure)
    env = fingerprint("cpu")
    first = ceilings_mod.load_or_measure_ceilings("cpu", env)
    assert first["cached"] is False and calls == ["cpu"]
    cache_file = tmp_path / "attnperf" / "ceilings" / f"cpu-{machine_key(env)}.json"
    assert json.loads(cache_file.read_text())["bandwidth_gb_s"] == 12.5
    assert ceilings_mod.load_or_measure_ceilings("cpu", env)["cached"] is True
    assert calls == ["cpu"]
    # An entry written by another format version is measured again.
    cache_file.write_text(json.dumps({"schema_version": 99, "bandwidth_gb_s": 1.0}))
    assert ceilings_mod.load_or_measure_ceilings("cpu", env)["bandwidth_gb_s"] == 12.5
    assert calls == ["cpu", "cpu"]
    # So is an unreadable one; refresh=True measures regardless.
    cache_file.write_text("{not json")
    assert ceilings_mod.load_or_measure_ceilings("cpu", env)["cached"] is False
    assert ceilings_mod.load_or_measure_ceilings("cpu", env, refresh=True)["cached"] is False
    assert len(calls) == 4


def test_recorded_commit_is_the_commit_under_test(tmp_path):
    """Regression: inside asv's environment (a wheel installed under .asv/env, inside the work
    tree) the fingerprint recorded the work tree's HEAD instead of the benchmarked commit."""
    import shutil
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    clone = tmp_path / "clone"
    shutil.copytree(
        repo / "src", clone / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__")
    )
    for name in ("pyproject.toml", "README.md", "LICENSE", ".gitignore"):
        shutil.copy(repo / name, clone / name)

    def git(*args):
        return subprocess.run(
            ["git", "-C", str(clone), "-c", "user.name=t", "-c", "user.email=t@t.invalid", *args],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "one")
    first = git("rev-parse", "HEAD")
    (clone / "NOTES").write_text("second\n")
    git("add", "NOTES")
    git("commit", "-qm", "two")
    head = git("rev-parse", "HEAD")
    wheels, site = tmp_path / "wheels", clone / ".asv" / "env" / "x" / "site-packages"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                    "--no-index", "-w", str(wheels), str(clone)], check=True, capture_output=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--target",
            str(site),
            *map(str, wheels.glob("*.whl")),
        ],
        check=True,
        capture_output=True,
    )
    probe = "from attnperf.measure.device import _git_commit; print(_git_commit())"

    def recorded(path, **env):
        return subprocess.run(
            [sys.executable, "-c", probe],
            cwd=str(clone),
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(path), **env},
            check=True,
        ).stdout.strip()

    assert recorded(site, ASV_COMMIT=first) == first   # asv names the commit it benchmarks
    assert recorded(site) == "None"                     # never the surrounding work tree's HEAD
    assert recorded(site, ASV_COMMIT="not-a-commit") == "None"
    assert recorded(clone / "src") == head              # a source checkout reports its HEAD
