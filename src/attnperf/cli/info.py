"""``attnperf kernels``, ``attnperf ceilings`` and ``attnperf env``: what this machine has."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Sequence

from ..asv.devices import device_problems
from ..errors import UsageError
from ..io.project_config import load_nearest
from ..kernels import registry
from ..measure.device import fingerprint, resolve_device
from ..measure.session import Session
from ..model.catalog import PRESETS, SWEEPS, resolve
from ..model.problem import canonical_dtype
from .command import Command, ExitCode

DEVICE_HELP = "auto|cpu|cuda (default auto: cuda when present)"


class Kernels(Command):
    name = "kernels"
    help = "list kernels (built-in and plugins) and whether they can run here"
    description = ("List every kernel found and whether it runs on this device, checked for the "
                   "problems `attnperf run` uses there ([tool.attnperf]'s problems that the "
                   "device runs, else the default CPU or GPU problems), or for --problem/--dtype.")
    exit_codes = (ExitCode.OK, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", default="auto", help=DEVICE_HELP)
        parser.add_argument("--problem", action="append", metavar="NAME",
                            help="check for this problem: a preset name (--sweeps lists them) or "
                                 "a problem id (repeat or comma-separate; default: the problems "
                                 "`attnperf run` uses on the device)")
        parser.add_argument("--dtype", help="check the problems at this dtype: float16|bfloat16|"
                                            "float32 (aliases fp16, bf16, fp32)")
        parser.add_argument(
            "--sweeps", action="store_true", help="also list named problems and sweeps"
        )

    @classmethod
    def run_from_args(cls, args: argparse.Namespace) -> int:
        names = tuple(n.strip() for arg in args.problem or () for n in arg.split(",") if n.strip())
        if args.problem and not names:
            raise UsageError(f"--problem {','.join(args.problem)!r} names no problem; "
                             "allowed: a preset name (`attnperf kernels --sweeps`) or a problem id")
        return cls.run(device=args.device, problems=names, dtype=args.dtype, sweeps=args.sweeps)

    @classmethod
    def run(cls, device: str = "auto", problems: Sequence[str] = (), dtype: str | None = None,
            sweeps: bool = False) -> int:
        device = resolve_device(device)
        checked = ([resolve(name) for name in problems] if problems
                   else device_problems(load_nearest(), device))
        if dtype is not None:
            dt = canonical_dtype(dtype)  # InvalidShapeError names the allowed ones: exit 2
            checked = list({p.id: p for p in (dataclasses.replace(p, dtype=dt)
                                              for p in checked)}.values())
        names = {p.id: n for n, p in PRESETS.items()}
        print(f"kernels on {device} (checked for "
              f"{', '.join(names.get(p.id, p.id) for p in checked)}):")
        for name in registry.names():
            spec = registry.get(name)
            runs, why = registry.availability(spec, checked, device)
            if len(runs) == len(checked):
                status = f"available: {spec.description}"
            elif runs:
                status = (f"available for {len(runs)} of {len(checked)}: {spec.description} "
                          f"(not the others: {why})")
            else:
                status = f"unavailable: {why}"
            print(f"  {name:16s} {status}")
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
        print(
            f"ceilings on {where} "
            f"({'cached' if data['cached'] else 'measured now'}: {data['cache_path']})"
        )
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

