"""attnperf.measure.device without a GPU: the CUDA fingerprint through a fake
``torch.cuda``, the TF32 switch, and the fallbacks of the CPU model and the
recorded commit."""

import subprocess
import types

import pytest
import torch

from attnperf.measure import device


@pytest.fixture
def fake_h100(monkeypatch):
    props = types.SimpleNamespace(name="NVIDIA H100 80GB HBM3", multi_processor_count=132,
                                  major=9, minor=0, total_memory=85_045_379_072)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda i: props)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: True)
    monkeypatch.setattr(torch.backends.cudnn, "version", lambda: 91900)
    monkeypatch.setattr(device, "driver_version", lambda: "580.65.06")
    return props


def test_cuda_fingerprint_reads_the_gpu(fake_h100):
    env = device.fingerprint("cuda")
    assert {k: env[k] for k in ("device", "gpu_name", "gpu_count", "sm_count",
                                "compute_capability", "gpu_memory_gb", "driver", "cudnn")} == {
        "device": "cuda", "gpu_name": "NVIDIA H100 80GB HBM3", "gpu_count": 2, "sm_count": 132,
        "compute_capability": "9.0", "gpu_memory_gb": 79.2,  # 85045379072 / 2**30 = 79.21
        "driver": "580.65.06", "cudnn": 91900}


def test_cuda_fingerprint_without_cudnn(fake_h100, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "is_available", lambda: False)
    assert device.fingerprint("cuda")["cudnn"] is None


@pytest.mark.parametrize("allow", [True, False])
def test_tf32_follows_the_global_switch_on_cuda_only(allow):
    matmul = torch.backends.cuda.matmul  # a property object: monkeypatch cannot patch it
    before = matmul.allow_tf32
    try:
        matmul.allow_tf32 = allow
        assert device.tf32_enabled("cuda") is allow
        assert device.tf32_enabled("cpu") is False
    finally:
        matmul.allow_tf32 = before


def test_cpu_model_falls_back_when_cpuinfo_is_unreadable(monkeypatch):
    class Unreadable:
        def __init__(self, path):
            pass

        def read_text(self):
            raise OSError("no /proc here")
    monkeypatch.setattr(device, "Path", Unreadable)
    monkeypatch.setattr(device.platform, "processor", lambda: "")
    monkeypatch.setattr(device.platform, "machine", lambda: "riscv64")
    assert device._cpu_model() == "riscv64"


def test_commit_from_asv_only_when_it_is_a_full_hash(monkeypatch):
    monkeypatch.setenv("ASV_COMMIT", "ab" * 20)
    assert device._git_commit() == "ab" * 20
    monkeypatch.setenv("ASV_COMMIT", "main; rm -rf /")
    calls = []
    monkeypatch.setattr(device.subprocess, "run", lambda args, **k: calls.append(args) or
                        subprocess.CompletedProcess(args, 1, "", "not tracked"))
    assert device._git_commit() is None  # not a tracked file: git is not asked for HEAD
    assert len(calls) == 1 and "ls-files" in calls[0]


def test_commit_is_none_when_git_cannot_run(monkeypatch):
    monkeypatch.delenv("ASV_COMMIT", raising=False)

    def no_git(*a, **k):
        raise OSError("git: not found")
    monkeypatch.setattr(device.subprocess, "run", no_git)
    assert device._git_commit() is None
