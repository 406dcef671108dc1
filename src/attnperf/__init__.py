"""attnperf: truthful measurement and history of attention kernels."""

__version__ = "0.1.0"

# Bumped whenever the public measurement API used by benchmarks/ changes, so
# the asv suite from HEAD can feature-detect older commits during `asv find`.
API_VERSION = 1
