"""``attnperf kernels``, ``attnperf ceilings`` and ``attnperf env``: what this machine has."""

from __future__ import annotations

import json

from ..kernels import registry
from ..measure.device import fingerprint, resolve_device
from ..measure.session import Session
from ..model.catalog import PRESETS, SWEEPS
from .common import EXIT_OK


def cmd_kernels(args) -> int:
    device = resolve_device(args.device)
    probe = PRESETS["seed"]
    print(f"kernels on {device} (checked for {probe.id}):")
    for name in registry.names():
        spec = registry.get(name)
        ok, why = (False, spec.description) if registry.is_broken(spec) else spec.check(probe, device)
        print(f"  {name:16s} {'available' if ok else 'unavailable'}: "
              f"{spec.description if ok else why}")
    if args.sweeps:
        print("problems:")
        for name, p in PRESETS.items():
            print(f"  {name:18s} {p.id}")
        print("sweeps:")
        for name, members in SWEEPS.items():
            print(f"  {name:12s} {', '.join(members)}")
    return EXIT_OK


def cmd_ceilings(args) -> int:
    session = Session(args.device, refresh_ceilings=args.refresh)
    env, data, peak = session.environment, session.ceilings, session.peak
    if args.json:
        print(json.dumps(data, indent=2))
        return EXIT_OK
    where = env["gpu_name"] or env["cpu_model"]
    print(f"ceilings on {where} ({'cached' if data['cached'] else 'measured now'}: {data['cache_path']})")
    ds = f" (datasheet {peak.bandwidth_tb_s * 1e3:.0f})" if peak else ""
    print(f"  copy bandwidth   {data['bandwidth_gb_s']:10.1f} GB/s{ds}")
    for dt, tf in data["matmul_tflops"].items():
        ds = f" (datasheet {peak.tflops[dt]:.1f})" if peak and dt in peak.tflops else ""
        print(f"  matmul {dt:9s} {tf:10.4g} TFLOP/s at n={data['matmul_n'].get(dt)}{ds}")
    return EXIT_OK


def cmd_env(args) -> int:
    print(json.dumps(fingerprint(resolve_device(args.device)), indent=2))
    return EXIT_OK
