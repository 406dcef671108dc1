"""Kernels: the spec (spec.py), the registry (registry.py) and the built-in families."""
