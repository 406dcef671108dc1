"""THE datasheet peak table, with robust matching of CUDA device names.

The roofline uses *measured* ceilings first (``attnperf ceilings``); these
datasheet figures are the fallback and the reference printed beside them.
"""

from __future__ import annotations

import dataclasses
import re


@dataclasses.dataclass(frozen=True)
class Peak:
    """Datasheet peaks: dense tensor-core TFLOP/s per dtype, memory TB/s."""

    name: str
    tflops: dict[str, float]
    bandwidth_tb_s: float
    source: str


# One cited table.  Dense (no structured sparsity) figures; "float32" is the
# non-tensor-core FP32 rate (PyTorch's default: TF32 off for matmul).
PEAKS = [
    Peak(
        "H100 SXM",
        {"float16": 989.4, "bfloat16": 989.4, "tf32": 494.7, "float32": 66.9},
        3.35,
        "NVIDIA H100 Tensor Core GPU datasheet (SXM5), 2023",
    ),
    Peak(
        "H100 NVL",
        {"float16": 835.0, "bfloat16": 835.0, "tf32": 417.5, "float32": 60.0},
        3.9,
        "NVIDIA H100 Tensor Core GPU datasheet (NVL), 2023",
    ),
    Peak(
        "H100 PCIe",
        {"float16": 756.5, "bfloat16": 756.5, "tf32": 378.0, "float32": 51.2},
        2.0,
        "NVIDIA H100 Tensor Core GPU datasheet (PCIe), 2023",
    ),
    Peak(
        "H200 NVL",
        {"float16": 835.0, "bfloat16": 835.0, "tf32": 417.5, "float32": 60.0},
        4.8,
        "NVIDIA H200 Tensor Core GPU datasheet (NVL), 2024",
    ),
    Peak(
        "H200",
        {"float16": 989.4, "bfloat16": 989.4, "tf32": 494.7, "float32": 66.9},
        4.8,
        "NVIDIA H200 Tensor Core GPU datasheet (SXM), 2024",
    ),
    Peak(
        "A100 SXM 80GB",
        {"float16": 312.0, "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5},
        2.039,
        "NVIDIA A100 Tensor Core GPU datasheet, 2021",
    ),
    Peak(
        "A100 PCIe 80GB",
        {"float16": 312.0, "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5},
        1.935,
        "NVIDIA A100 Tensor Core GPU datasheet, 2021",
    ),
    Peak(
        "A100 40GB",
        {"float16": 312.0, "bfloat16": 312.0, "tf32": 156.0, "float32": 19.5},
        1.555,
        "NVIDIA A100 Tensor Core GPU datasheet, 2021",
    ),
    Peak(
        "L4",
        {"float16": 121.0, "bfloat16": 121.0, "tf32": 60.0, "float32": 30.3},
        0.300,
        "NVIDIA L4 Tensor Core GPU datasheet, 2023",
    ),
    Peak(
        "A10G",
        {"float16": 125.0, "bfloat16": 125.0, "tf32": 62.5, "float32": 31.2},
        0.600,
        "NVIDIA A10 datasheet, 2021 (A10G, AWS's variant, has no public datasheet; A10 figures)",
    ),
    Peak(
        "A10",
        {"float16": 125.0, "bfloat16": 125.0, "tf32": 62.5, "float32": 31.2},
        0.600,
        "NVIDIA A10 datasheet, 2021",
    ),
]

# Ordered rules: real names look like "NVIDIA H100 80GB HBM3", "NVIDIA H100 PCIe",
# "NVIDIA H100 NVL", "NVIDIA A100-SXM4-80GB", "NVIDIA A100 80GB PCIe",
# "NVIDIA A100-PCIE-40GB", "NVIDIA L4", "NVIDIA A10G", "NVIDIA H200".
_MATCH_RULES = [
    (r"\bH200\b.*\bNVL\b", "H200 NVL"),
    (r"\bH200\b", "H200"),
    (r"\bH100\b.*\bNVL\b", "H100 NVL"),
    (r"\bH100\b.*\bPCIE\b", "H100 PCIe"),
    (r"\bH100\b", "H100 SXM"),  # "H100 80GB HBM3" and "H100 SXM5" are the SXM part
    (r"\bA100\b.*\b80\s*GB\b.*\bPCIE\b", "A100 PCIe 80GB"),
    (r"\bA100\b.*\b80\s*GB\b", "A100 SXM 80GB"),
    (r"\bA100\b", "A100 40GB"),
    (r"\bL4\b", "L4"),
    (r"\bA10G\b", "A10G"),
    (r"\bA10\b", "A10"),
]


def match_peak(device_name: str) -> Peak | None:
    """Find the datasheet entry for a device name as CUDA reports it."""
    norm = re.sub(r"[-_]", " ", device_name.upper())
    by_name = {p.name: p for p in PEAKS}
    for pattern, name in _MATCH_RULES:
        if re.search(pattern, norm):
            return by_name[name]
    return None
