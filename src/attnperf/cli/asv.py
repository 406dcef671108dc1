"""``attnperf asv machine|fetch-assets|env-build|env-install``: the asv helpers that the
workflows and asv.conf.json call."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from ..asv import envinstall
from ..asv.machine import default_name, describe
from ..errors import AssetFetchError
from ..site import fetch_assets
from ..site.publish import DEFAULT_ASSETS
from .command import Command, ExitCode, machine_name


class Machine(Command):
    name = "asv machine"
    help = "describe this machine to asv (with its GPU facts) and measure its ceilings"
    description = ("Write NAME into ~/.asv-machine.json (asv's fields plus gpu, gpu_count, "
                   "driver, cuda, cudnn, torch) and measure this machine's ceilings into "
                   "RESULTS_DIR/NAME/attnperf-ceilings.json for the site's roofline chart "
                   "(its measured roofs, and a regime for every row).  Without NAME: this "
                   "host's name, which asv then uses without --machine.")
    exit_codes = (ExitCode.OK, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("name", metavar="NAME", nargs="?", default=None, type=machine_name(""),
                            help="the asv machine name (one history per name; letters, digits "
                                 "and . _ + -; default: this host's name, the one asv uses when "
                                 "--machine is not given)")
        parser.add_argument("--results-dir", default="results",
                            help="asv results dir the ceilings go to (default results)")
        parser.add_argument("--device", default="auto",
                            help="auto|cpu|cuda: the device to describe (default auto)")

    @classmethod
    def run(cls, name: str | None = None, results_dir: str = "results",
            device: str = "auto") -> int:
        print(json.dumps(describe(name or default_name(), results_dir, device), indent=2))
        return ExitCode.OK


class FetchAssets(Command):
    name = "asv fetch-assets"
    help = "fetch asv's page scripts (pinned npm packages) for sites that work offline"
    exit_codes = (ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("dest", nargs="?", default=str(DEFAULT_ASSETS),
                            help=f"where to put them (default {DEFAULT_ASSETS}; a folder "
                                 "attnperf owns: a later fetch rewrites only what it wrote); "
                                 "then `attnperf site build --asv-assets DEST`")

    @classmethod
    def run(cls, dest: str = str(DEFAULT_ASSETS)) -> int:
        try:
            count = fetch_assets.fetch(Path(dest))
        except AssetFetchError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.FAILURE
        print(f"fetched {count} asv web assets into {dest}" if count
              else f"asv web assets already in {dest}")
        return ExitCode.OK


def _pip_step(step: Callable[..., object], *args: str) -> int:
    try:
        step(*args)
    except subprocess.CalledProcessError as exc:
        print(
            f"error: {' '.join(map(str, exc.cmd[:4]))} ... exited {exc.returncode}", file=sys.stderr
        )
        return ExitCode.FAILURE
    return ExitCode.OK


class EnvBuild(Command):
    name = "asv env-build"
    help = ("asv.conf.json's build step for another repository: lend this Python's packages "
            "to the asv environment, build the commit's wheel offline")
    exit_codes = (ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--env", dest="env_dir", metavar="ENV_DIR", required=True,
                            help="the asv environment ({env_dir})")
        parser.add_argument("build_dir", help="the commit's checkout ({build_dir})")
        parser.add_argument("wheel_dir", help="where the wheel goes ({build_cache_dir})")

    @classmethod
    def run(cls, env_dir: str, build_dir: str, wheel_dir: str) -> int:
        return _pip_step(envinstall.env_build, env_dir, build_dir, wheel_dir)


class EnvInstall(Command):
    name = "asv env-install"
    help = ("asv.conf.json's install step for another repository: lend this Python's "
            "packages to the asv environment, install the commit's wheel without dependencies")
    exit_codes = (ExitCode.OK, ExitCode.FAILURE, ExitCode.USAGE)

    @classmethod
    def setup_arguments(cls, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--env", dest="env_dir", metavar="ENV_DIR", required=True,
                            help="the asv environment ({env_dir})")
        parser.add_argument("wheel", help="the commit's wheel ({wheel_file})")

    @classmethod
    def run(cls, env_dir: str, wheel: str) -> int:
        return _pip_step(envinstall.env_install, env_dir, wheel)
