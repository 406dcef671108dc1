"""Kernel families; each module registers its kernels in attnperf.registry.REGISTRY."""
