"""``attnperf kernels``, ``attnperf ceilings`` and ``attnperf env``: what this machine has."""

from __future__ import annotations

import argparse
import json

from ..kernels import registry
from ..measure.device import fingerprint, resolve_device
from ..measure.session import Session
from ..model.catalog import PRESETS, SWEEPS
from .command import Command, ExitCode

DEVICE_HELP = "auto|cpu|cuda (default auto: cuda when present)"


class Kernels(Command):
    name = "kernels"
    help = "list kernels (built-in and plugins) and whether they can run here"
    exit_codes = (ExitCode.OK, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", default="auto", help=DEVICE_HELP)
        parser.add_argument("--sweeps", action="store_true", help="also list named problems and sweeps")

    @classmethod
    def run(cls, device: str = "auto", sweeps: bool = False) -> int:
        device = resolve_device(device)
        probe = PRESETS["seed"]
        print(f"kernels on {device} (checked for {probe.id}):")
        for name in registry.names():
            spec = registry.get(name)
            ok, why = (False, spec.description) if registry.is_broken(spec) else spec.check(probe, device)
            print(f"  {name:16s} {'available' if ok else 'unavailable'}: "
                  f"{spec.description if ok else why}")
        if sweeps:
            print("problems:")
            for name, p in PRESETS.items():
                print(f"  {name:18s} {p.id}")
            print("sweeps:")
            for name, members in SWEEPS.items():
                print(f"  {name:12s} {', '.join(members)}")
        return ExitCode.OK


class Ceilings(Command):
    name = "ceilings"
    help = "measure (and cache) this machine's copy bandwidth and matmul rates"
    exit_codes = (ExitCode.OK, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", default="auto", help=DEVICE_HELP)
        parser.add_argument("--refresh", action="store_true", help="measure again even if cached")
        parser.add_argument("--json", dest="as_json", action="store_true",
                            help="print the ceilings as JSON")

    @classmethod
    def run(cls, device: str = "auto", refresh: bool = False, as_json: bool = False) -> int:
        session = Session(device, refresh_ceilings=refresh)
        env, data, peak = session.environment, session.ceilings, session.peak
        if as_json:
            print(json.dumps(data, indent=2))
            return ExitCode.OK
        where = env["gpu_name"] or env["cpu_model"]
        print(f"ceilings on {where} ({'cached' if data['cached'] else 'measured now'}: {data['cache_path']})")
        ds = f" (datasheet {peak.bandwidth_tb_s * 1e3:.0f})" if peak else ""
        print(f"  copy bandwidth   {data['bandwidth_gb_s']:10.1f} GB/s{ds}")
        for dt, tf in data["matmul_tflops"].items():
            ds = f" (datasheet {peak.tflops[dt]:.1f})" if peak and dt in peak.tflops else ""
            print(f"  matmul {dt:9s} {tf:10.4g} TFLOP/s at n={data['matmul_n'].get(dt)}{ds}")
        return ExitCode.OK


class Env(Command):
    name = "env"
    help = "print the environment fingerprint (allowlisted fields only)"
    exit_codes = (ExitCode.OK, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", default="auto", help=DEVICE_HELP)

    @classmethod
    def run(cls, device: str = "auto") -> int:
        print(json.dumps(fingerprint(resolve_device(device)), indent=2))
        return ExitCode.OK

