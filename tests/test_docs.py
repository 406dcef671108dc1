"""The documentation: every command it shows works, and the pages say true things.

Commands are read from README.md and docs/*.md themselves: every line of every ```bash
block.  Each one is accounted for in exactly one table below:

* ``RUN_HERE``: run by a test of this file as the docs show it (placeholders filled in);
* ``ELSEWHERE``: run by the named test of another file (``tests/FILE.py::TEST``; the test
  must exist), usually because it needs real asv runs over commits;
* ``GPU_ONLY``: needs CUDA; named is what runs it on a GPU machine and what covers its CPU
  side here;
* ``INSTALL``: the install forms; checked here against the project's metadata, installed by
  the packaging tests;
* ``GITHUB_ADMIN``: commands against GitHub or a runner host (settings, runner registration);
  no test can run them, so ``test_runner_commands_match_the_workflows`` checks the names they
  use (labels, variables, pins) against the workflows and pyproject.toml.

A command added to the docs without an entry fails
``test_every_documented_command_is_accounted_for``, and so does an entry whose command left
the docs.  Subprocesses inherit conftest's private cache (canned ceilings) and
OMP_NUM_THREADS=1; nothing else about the commands is changed.
"""

from __future__ import annotations

import argparse
import http.client
import importlib.util
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from support import FAKE_CPU_CEILINGS

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
README = (REPO / "README.md").read_text()
PAGES = {p.relative_to(REPO).as_posix(): p.read_text() for p in sorted(DOCS.glob("*.md"))}
DOCUMENTS = {"README.md": README, **PAGES}
BIN = Path(sys.executable).parent
ATTNPERF = shutil.which("attnperf", path=str(BIN)) or shutil.which("attnperf")
HAS_CUDA = torch.cuda.is_available()
README_LIMIT = 10 * 1024  # bytes: a front page, not a manual


# ------------------------------------------------------------ extraction ----
FENCE = re.compile(r"^([ \t]*)```([\w+-]*)[^\n]*\n(.*?)^\1```[ \t]*$", re.M | re.S)
FENCE_LANGUAGES = {"bash", "text", "python", "toml", "yaml"}


def fenced_blocks(text: str) -> Iterator[tuple[str, str]]:
    """(language, body) of every fenced block, indentation of a list item removed."""
    for m in FENCE.finditer(text):
        yield m.group(2), re.sub(r"^" + re.escape(m.group(1)), "", m.group(3), flags=re.M)


def fenced_commands(text: str) -> list[str]:
    """Commands of every ```bash block: comments dropped, `\\` continuations joined."""
    out = []
    for language, block in fenced_blocks(text):
        if language != "bash":
            continue
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            cmd = re.sub(r"\s+#.*$", "", line).strip()
            if cmd and not cmd.startswith("#"):
                out.append(" ".join(cmd.split()))
    return out


def documented_commands() -> dict[str, list[str]]:
    """command -> the documents that show it."""
    where: dict[str, list[str]] = {}
    for name, text in DOCUMENTS.items():
        for cmd in fenced_commands(text):
            where.setdefault(cmd, []).append(name)
    return where


def expand_optional(command: str) -> list[str]:
    """``attnperf ceilings [--refresh] [--json]`` -> the four commands it stands for."""
    parts = re.split(r"\s*(\[[^\]]+\])\s*", command)
    base = [p for p in parts if p and not p.startswith("[")]
    options = [p[1:-1] for p in parts if p.startswith("[")]
    out = []
    for picks in itertools.product([False, True], repeat=len(options)):
        out.append(" ".join(base + [o for o, on in zip(options, picks, strict=True) if on]))
    return out


# ------------------------------------------------------------ accounting ----
PLUGIN_FLOW = "tests/test_init.py::test_readme_flow_in_a_plugin_repository"
CI_BENCH_E2E = "tests/test_cpu_load.py::test_end_to_end_real_asv_on_a_clone"
SHARDS_E2E = "tests/test_ci_shards.py::test_one_shard_and_two_give_the_same_verdict_with_real_asv"

# Commands run below exactly as the docs show them (placeholders filled in).
RUN_HERE = {
    "attnperf run": "test_attnperf_run_with_no_flags",
    "attnperf run --device cuda": "test_run_device_cuda",
    "attnperf run --kernel sdpa,tiled --pass fwd,bwd --pass fwd+bwd": "test_run_training_passes",
    "attnperf compare CURRENT --baseline BASE --threshold -3.0": "test_compare_as_documented",
    "attnperf kernels --sweeps": "test_kernels_and_env",
    "attnperf pr-comment --machine h100 --base c7356fa9 --head 8b1c0a3c":
        "test_pr_comment_of_the_front_page",
    "attnperf site build --serve": "test_site_build_serve",
    "make setup": "test_make_targets_run_the_documented_commands",
    "source .venv/bin/activate": "test_make_targets_run_the_documented_commands",
    "make run": "test_make_targets_run_the_documented_commands",
    "make test": "test_make_targets_run_the_documented_commands",
    "make test-slow": "test_make_targets_run_the_documented_commands",
    "make test-all": "test_make_targets_run_the_documented_commands",
    "make mutation": "test_make_targets_run_the_documented_commands",
    "make mutation-full": "test_make_targets_run_the_documented_commands",
    "make continuous MACHINE=my-box": "test_make_targets_run_the_documented_commands",
    "pip install -e '.[test,nvml]'": "test_make_targets_run_the_documented_commands",
    "make docs": "test_docs_build_strict",
    "python docs/scripts/screenshots.py": "test_screenshots_script",
}
# Commands that need asv runs over commits: the test that runs them.
SITE = "tests/test_site.py::test_site_of_this_repository_results_in_chromium"
ELSEWHERE = {
    "python -m pip install -e .": PLUGIN_FLOW,
    "attnperf init": PLUGIN_FLOW,
    'git add -A && git commit -m "Track attention kernels with attnperf"': PLUGIN_FLOW,
    "attnperf asv machine": PLUGIN_FLOW,
    "attnperf ci bench --base HEAD~1 --head HEAD": PLUGIN_FLOW,
    "attnperf site build": SITE,
    "attnperf asv fetch-assets": SITE,
    "attnperf ci bench --base origin/main --head HEAD --machine my-box --device cpu --factor 1.50":
        CI_BENCH_E2E,
    "attnperf asv machine my-box": CI_BENCH_E2E,
    "asv continuous --machine my-box --factor 1.5 --interleave-rounds -a rounds=2 "
    "-b '^(?!.*Views)' main HEAD": CI_BENCH_E2E,
    "ATTNPERF_ASV_KERNELS=tiled ATTNPERF_ASV_PROBLEMS=cpu_seed asv run -e --machine my-box "
    "-b track_device_time HEAD^!": "tests/test_asv_e2e.py::test_continuous_flags_injected_slowdown",
    "attnperf bisect GOOD BAD --factor 1.05 -b \"'tiled', 'b4_h16_sq2048_d128_bf16'\"":
        "tests/test_bisect.py::test_select_matches_like_asv_b",
    "ATTNPERF_ASV_KERNELS=tiled ATTNPERF_ASV_PROBLEMS=cpu_causal attnperf bisect GOOD BAD "
    "--machine my-box -b track_device_time":
        "tests/test_bisect.py::test_real_asv_bisect_names_the_injected_commit",
    "lint-imports": "tests/test_architecture.py::test_contracts_are_kept",
    "attnperf ci bench --base origin/main --head HEAD --machine my-gpu --shard 1/2 --out shard-1":
        SHARDS_E2E,
    "attnperf ci bench --base origin/main --head HEAD --machine my-gpu --shard 2/2 --out shard-2":
        SHARDS_E2E,
    "attnperf ci merge shard-1 shard-2 --out merged": SHARDS_E2E,
}
# Commands that need CUDA: (what runs them on a GPU machine, what covers them here).
GPU_ONLY = {
    "ATTNPERF_ASV_KERNELS=triton_flash attnperf ci bench --base main --head HEAD --machine my-gpu "
    "--rounds 2": (
        "tools/gpu/acceptance.py (its triton check)",
        "tests/test_suite.py::test_triton_flash_is_in_the_default_selection",
    ),
    "attnperf bisect v0.3 HEAD -b track_device_time --machine h100": (
        "tools/gpu/acceptance.py (ci bench and bisect share the verdict code)",
        "tests/test_bisect.py::test_bisect_uses_calibrated_thresholds",
    ),
    "python tools/gpu/acceptance.py --device cuda --budget-s 540 --out acceptance-out": (
        "tools/gpu/acceptance.py",
        None,
    ),
}
INSTALL = {
    "git clone https://github.com/attnperf/attnperf && cd attnperf && python -m pip install .":
        "clone",
    'python -m pip install "attnperf @ git+https://github.com/attnperf/attnperf@v0.2.0"': "git tag",
    "python -m pip install attnperf": "PyPI (documented as not published yet)",
}
GITHUB_ADMIN = {
    "gh api -X PUT repos/OWNER/REPO/actions/permissions/fork-pr-contributor-approval "
    "-f approval_policy=all_external_contributors",
    "gh api repos/OWNER/REPO/actions/permissions/fork-pr-contributor-approval",
    "gh api -X POST orgs/ORG/actions/runner-groups -f name=attnperf-main -f visibility=selected "
    "-F 'selected_repository_ids[]=REPO_ID' -F allows_public_repositories=true "
    "-F restricted_to_workflows=true "
    "-f 'selected_workflows[]=OWNER/REPO/.github/workflows/main.yml@refs/heads/main'",
    "gh api -X POST orgs/ORG/actions/runner-groups -f name=attnperf-pr-gpu -f visibility=selected "
    "-F 'selected_repository_ids[]=REPO_ID' -F allows_public_repositories=true",
    "gh api orgs/ORG/actions/runner-groups "
    "--jq '.runner_groups[] | {name, restricted_to_workflows, selected_workflows}'",
    "python3.11 -m venv /opt/attnperf-py",
    "/opt/attnperf-py/bin/pip install torch asv==0.6.6 asv_runner==0.3.2 virtualenv setuptools "
    "nvidia-ml-py numpy tqdm jsonschema jinja2 tabulate pytest hypothesis pytest-timeout==2.4.0",
    "./config.sh --url https://github.com/OWNER/REPO --token TOKEN --name h100-main-1 "
    "--labels attnperf-h100-main --unattended",
    'echo "ATTNPERF_RUNNER_PYTHON=/opt/attnperf-py/bin/python" >> .env',
    "sudo ./svc.sh install && sudo ./svc.sh start",
    "jit=$(gh api -X POST repos/OWNER/REPO/actions/runners/generate-jitconfig "
    "-f name=\"h100-pr-$(date +%s)\" -F runner_group_id=1 -f 'labels[]=self-hosted' "
    "-f 'labels[]=linux' -f 'labels[]=x64' -f 'labels[]=attnperf-h100' --jq .encoded_jit_config)",
    './run.sh --jitconfig "$jit"',
}
TABLES = {"RUN_HERE": set(RUN_HERE), "ELSEWHERE": set(ELSEWHERE), "GPU_ONLY": set(GPU_ONLY),
          "INSTALL": set(INSTALL), "GITHUB_ADMIN": GITHUB_ADMIN}


def test_every_documented_command_is_accounted_for():
    documented = documented_commands()
    assert "attnperf run" in documented and "make run" in documented  # the extraction works
    accounted = set().union(*TABLES.values())
    missing = {c: documented[c] for c in sorted(set(documented) - accounted)}
    assert not missing, f"documented commands without a test: {json.dumps(missing, indent=1)}"
    gone = sorted(accounted - set(documented))
    assert not gone, f"accounted for but no longer in the docs: {gone}"
    twice = [(a, b) for a, b in itertools.combinations(TABLES, 2) if TABLES[a] & TABLES[b]]
    assert not twice, f"a command in two tables: {twice}"
    assert set(RUN_HERE.values()) <= set(globals())


def _test_exists(ref: str) -> bool:
    path, _, name = ref.partition("::")
    file = REPO / path
    return file.is_file() and re.search(
        rf"^(?:async )?def {re.escape(name)}\(", file.read_text(), re.M
    )


def test_every_named_test_exists():
    refs = list(ELSEWHERE.values()) + [here for _, here in GPU_ONLY.values() if here]
    assert [r for r in refs if not _test_exists(r)] == []


def test_gpu_only_commands_name_what_runs_them():
    script = REPO / "tools" / "gpu" / "acceptance.py"
    for command, (runner, _) in GPU_ONLY.items():
        assert runner.split()[0] == "tools/gpu/acceptance.py", command
    if not script.is_file():
        pytest.skip("tools/gpu/acceptance.py is not in this tree")
    help_text = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                               text=True, timeout=120)
    assert help_text.returncode == 0, help_text.stderr
    command = next(c for c in GPU_ONLY if c.startswith("python tools/gpu/acceptance.py"))
    for flag in re.findall(r"(--[\w-]+)", command):
        assert flag in help_text.stdout, flag


def test_extraction_of_blocks_and_options():
    text = ("x\n```bash\nmake a   # note\n# only a comment\nFOO=1 b \\\n  --c d\n```\n"
            "- item:\n  ```bash\n  make e\n  ```\n```text\nnot a command\n```\n")
    assert fenced_commands(text) == ["make a", "FOO=1 b --c d", "make e"]
    assert expand_optional("attnperf c [--r] [--j]") == [
        "attnperf c", "attnperf c --j", "attnperf c --r", "attnperf c --r --j"]


def test_every_fence_names_a_known_language():
    """A command in an unlabelled (or ```sh) block would escape the accounting above."""
    bad = [(name, lang) for name, text in DOCUMENTS.items()
           for lang, _ in fenced_blocks(text) if lang not in FENCE_LANGUAGES]
    assert bad == []


# --------------------------------------------------------------- the pages ----
def test_readme_is_a_front_page():
    size = len(README.encode())
    assert size <= README_LIMIT, f"README.md is {size} bytes; the reference belongs in docs/"
    for command in INSTALL:  # the three install forms, exactly
        assert f"```bash\n  {command}\n  ```" in README, command
    assert "not published" in README
    assert "## Track your own kernels" in README  # tests/test_init.py reads its flow from there


def test_readme_pictures_and_links_exist():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", README)
    assert len(images) == 2 and all(i.startswith("docs/img/") for i in images), images
    for image in images:
        assert (REPO / image).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
    links = [t for t in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", README)
             if not re.match(r"[a-z]+://", t)]
    assert links and [t for t in links if not (REPO / t).exists()] == []
    for page in set(PAGES) - {"docs/index.md"}:  # every page is reachable from the front page
        assert f"({page})" in README, page


def test_the_tracking_flow_is_the_same_on_both_pages():
    def flow(text, heading):
        section = text[text.index(heading):]
        return fenced_commands(re.search(r"```bash\n.*?```", section, re.S).group(0))

    assert flow(README, "## Track your own kernels") == flow(
        PAGES["docs/tracking.md"], "## The flow"
    )


REPO_PATH = re.compile(r"`((?:src|tests|tools|benchmarks|docs|constraints)/[\w./-]*)`")


def test_repository_paths_named_in_the_docs_exist():
    named = {
        m.group(1).rstrip(".") for text in DOCUMENTS.values() for m in REPO_PATH.finditer(text)
    }
    assert "src/attnperf/measure/timing.py" in named  # the pattern works
    gpu_scripts = {runner.split()[0] for runner, _ in GPU_ONLY.values()}
    missing = sorted(p for p in named - gpu_scripts if not (REPO / p).exists())
    assert missing == []


def test_architecture_names_real_modules():
    """Every module or folder of the architecture page's tables exists under src/attnperf."""
    text = PAGES["docs/architecture.md"]
    named = set(re.findall(r"`((?:[a-z_]+/)+(?:[a-z_]+\.py)?)`", text))
    named |= set(re.findall(r"`([a-z_]+\.py)`", text)) - {"bench_attention.py"}
    assert {"measure/timing.py", "render/templates/"} <= named  # the patterns work
    pkg = REPO / "src" / "attnperf"
    missing = sorted(n for n in named if not (pkg / n).exists() and not (REPO / n).exists())
    assert missing == []


# ------------------------------------------------------- the CLI reference ----
def _hook():
    spec = importlib.util.spec_from_file_location(
        "cli_reference", DOCS / "hooks" / "cli_reference.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_covers_every_command_and_argument():
    from attnperf.cli import build_parser

    hook = _hook()
    parser = build_parser()
    page = hook.render(parser)
    commands = list(hook.walk(parser))
    assert len(commands) >= 13 and any(p.prog == "attnperf site build" for p, _, _ in commands)
    for sub, depth, _ in commands:
        if depth:
            assert f"`{sub.prog}`" in page, sub.prog
        section = page.split(f"`{sub.prog}`\n", 1)[-1] if depth else page
        for action in sub._actions:
            if isinstance(action, (argparse._HelpAction, argparse._SubParsersAction)):
                continue
            if action.option_strings:
                names = action.option_strings[:1]
            elif action.choices:  # a positional with choices is shown by its choices
                names = [str(c) for c in action.choices]
            else:
                names = [action.metavar or action.dest]
            assert all(n in section for n in names), (sub.prog, names)
    assert all(f"`attnperf {name}`" in page for name in ("ci bench", "asv machine", "site build"))
    assert (
        "### Exit codes" in page
        and "130  stopped by SIGINT" in page
        and "143  stopped by SIGTERM" in page
    )


def test_cli_reference_hook_fills_only_its_page():
    hook = _hook()
    assert hook.on_page_markdown("# x\n", page=None) == "# x\n"
    cli_page = PAGES["docs/cli.md"]
    assert hook.MARKER in cli_page
    rendered = hook.on_page_markdown(cli_page, page=None)
    assert hook.MARKER not in rendered and "## `attnperf run`" in rendered


def test_cli_reference_escapes_help_text():
    hook = _hook()
    assert hook.inline("a|b <x> [tool.attnperf] `keep | this`") == \
        r"a\|b \<x\> \[tool.attnperf\] `keep \| this`"


MKDOCS = shutil.which("mkdocs", path=str(BIN))


@pytest.mark.skipif(
    MKDOCS is None, reason="the docs extra is not installed (make docs installs it)"
)
def test_docs_build_strict(tmp_path):
    """`make docs`: its recipe, and the strict build itself (a broken link or anchor fails)."""
    recipe = _make_dry_run("docs")[-1]
    assert re.search(r"mkdocs build --strict -d \S+$", recipe), recipe
    out = tmp_path / "site"
    res = subprocess.run(
        [MKDOCS, "build", "--strict", "-d", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, NO_MKDOCS_2_WARNING="1"),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "WARNING" not in res.stderr, res.stderr[-3000:]
    cli_page = (out / "cli" / "index.html").read_text()
    assert 'id="attnperf-site-build"' in cli_page and "--include-machine" in cli_page
    assert not (out / "hooks").exists() and not (out / "scripts").exists()


# --------------------------------------------------------------- running ----
def attnperf(
    command: str, *, timeout: float = 600, env=None, cwd=REPO
) -> subprocess.CompletedProcess:
    """Run a documented `attnperf ...` command line through the installed console script."""
    argv = command.split()
    assert argv[0] == "attnperf" and ATTNPERF, command
    return subprocess.run([ATTNPERF, *argv[1:]], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env)


def _documented_table_header() -> list[str]:
    block = re.search(r"`attnperf run` checks every kernel.*?```text\n(.*?)\n",
                      PAGES["docs/getting-started.md"], flags=re.S)
    return re.split(r"\s{2,}", block.group(1).strip())


@pytest.mark.slow  # ~30 s of CPU on 2 cores: `make test` leaves it out, `make test-slow` runs it
@pytest.mark.skipif(HAS_CUDA, reason="on a GPU machine the default is the GPU sweep (minutes)")
def test_attnperf_run_with_no_flags():
    """The main command, unchanged: every kernel over the default CPU sweep."""
    from attnperf.kernels import registry
    from attnperf.model.catalog import sweep

    start = time.monotonic()
    res = attnperf("attnperf run")
    elapsed = time.monotonic() - start
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    documented = _documented_table_header()
    # The docs show a GPU table; a CPU table drops the columns empty on every row
    # (latency, backend, note) and keeps the others in the same order.
    assert header[:5] == documented[:5] and header == [c for c in documented if c in header], header
    rows = [ln.split() for ln in lines[2:] if ln.strip() and not ln.startswith((" ", "-"))]
    problems = [p.id for p in sweep("cpu-small")]
    table = {(r[0], r[1]): r[2] for r in rows if len(r) > 2 and r[1] in problems}
    # Kernels that cannot run on a CPU are one line each below the table, not rows.
    assert set(table.values()) == {"ok"}
    assert all(table[(k, p)] == "ok" for k in ("sdpa", "naive", "tiled") for p in problems)
    assert {k for k, _ in table} <= set(registry.names())
    summary = res.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"\d+ ok, 0 failed, 0 errors, 0 skipped, \d+ unavailable", summary), summary
    print(f"\nattnperf run (no flags): {elapsed:.1f} s")


@pytest.mark.skipif(HAS_CUDA, reason="with a GPU this is the GPU sweep: test_cli's gpu tests")
def test_run_training_passes():
    """The --pass example: every problem of the CPU sweep in each pass, gradients checked."""
    from attnperf.model.catalog import sweep

    res = attnperf(next(c for c in RUN_HERE if "--pass" in c), timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    rows = {
        (r[0], r[1]): r[2] for r in (ln.split() for ln in res.stdout.splitlines()[2:]) if len(r) > 2
    }
    expected = {(k, p.with_pass(m).id) for k in ("sdpa", "tiled") for p in sweep("cpu-small")
                for m in ("fwd", "bwd", "fwd+bwd")}
    assert {key: rows.get(key) for key in expected} == dict.fromkeys(expected, "ok")
    assert res.stderr.strip().splitlines()[-1].startswith("24 ok, 0 failed")


@pytest.mark.skipif(HAS_CUDA, reason="with a GPU this is the GPU sweep: test_cli's gpu tests")
def test_run_device_cuda():
    res = attnperf("attnperf run --device cuda", timeout=120)
    assert res.returncode == 2 and res.stdout == ""
    (line,) = res.stderr.strip().splitlines()
    assert line.startswith("error: --device cuda") and "--device cpu" in line


def test_compare_as_documented(tmp_path, seed_report):
    command = next(c for c in RUN_HERE if c.startswith("attnperf compare"))
    base = tmp_path / "base.json"
    base.write_text(json.dumps(seed_report(0.0524)))
    for ms, code, word in ((0.0524 * 1.05, 1, "REGRESSION"), (0.0524 * 1.02, 0, "NO SIGNIFICANT")):
        cur = tmp_path / "cur.json"
        cur.write_text(json.dumps(seed_report(ms)))
        res = attnperf(command.replace("CURRENT", str(cur)).replace("BASE", str(base)), timeout=120)
        assert res.returncode == code, res.stderr
        assert word in res.stdout and res.stderr == ""


def test_kernels_and_env():
    for command in expand_optional("attnperf kernels [--sweeps]"):
        res = attnperf(command, timeout=120)
        assert res.returncode == 0, res.stderr
        assert res.stdout.startswith("kernels on ") and "tiled" in res.stdout
        assert ("sweeps:" in res.stdout) is command.endswith("--sweeps")
    res = attnperf("attnperf env", timeout=120)
    assert res.returncode == 0, res.stderr
    env = json.loads(res.stdout)
    assert env["torch"] == torch.__version__ and env["device"] in ("cpu", "cuda")


def test_pr_comment_of_the_front_page():
    """The front page's comment, rendered from the committed H100 results as shown."""
    command = next(c for c in RUN_HERE if c.startswith("attnperf pr-comment"))
    res = attnperf(command, timeout=120)
    assert res.returncode == 0, res.stderr
    first = res.stdout.splitlines()[0]
    assert first.startswith("### 🔴 `h100`: regression"), first
    assert "| 🔴 worse | track_device_time | sdpa | causal" in res.stdout


QUICK_CEILINGS = """\
import attnperf.measure.ceilings as c
_measure = c.measure_ceilings
c.measure_ceilings = lambda device, quick=False: _measure(device, quick=True)
"""


@pytest.mark.skipif(HAS_CUDA, reason="auto picks the GPU, whose ceilings conftest does not can")
def test_ceilings_cached_and_refreshed(tmp_path, isolated_cache):
    """`attnperf ceilings` (docs/measuring.md).  Without --refresh: conftest's canned cache.
    With --refresh: a real measurement, at measure_ceilings' own quick sizes (a sitecustomize
    in the subprocess; seconds, not ~15 s)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(QUICK_CEILINGS)
    env = dict(os.environ, PYTHONPATH=str(site))
    for command in expand_optional("attnperf ceilings [--refresh] [--json]"):
        res = attnperf(command, timeout=300, env=env)
        assert res.returncode == 0, res.stderr
        refresh = "--refresh" in command
        if "--json" in command:
            data = json.loads(res.stdout)
            assert data["cached"] is not refresh
            if refresh:  # measured now (quick sizes): CPU figures, not the canned round numbers
                assert data["bandwidth_gb_s"] > 0 and data["bandwidth_gb_s"] != 50.0
                assert data["matmul_n"] == {"float16": 128, "bfloat16": 128, "float32": 512}
            else:
                assert data["bandwidth_gb_s"] == FAKE_CPU_CEILINGS["bandwidth_gb_s"]
        else:
            first = res.stdout.splitlines()[0]
            assert ("measured now" in first) is refresh and ("cached" in first) is not refresh
            assert "copy bandwidth" in res.stdout and "matmul float32" in res.stdout


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_site_build_serve(tmp_path):
    """The site command from the committed results/.  Two flags are added: --port (a free
    one: 8000 may be taken on a shared machine) and --out (a temporary directory, so a test
    never writes into the work tree)."""
    command = "attnperf site build --serve"
    assert command in RUN_HERE
    port = _free_port()
    out = tmp_path / "html"
    argv = command.split()[1:] + ["--port", str(port), "--out", str(out)]
    # `with`: the pipes are closed however the test ends (a leaked one is a ResourceWarning).
    with subprocess.Popen([ATTNPERF, *argv], cwd=REPO, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 300
            status = None
            while time.monotonic() < deadline and proc.poll() is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                try:
                    conn.request("GET", "/attnperf/index.html")
                    resp = conn.getresponse()
                    status, body = resp.status, resp.read().decode()
                    break
                except OSError:
                    time.sleep(0.2)
                finally:
                    conn.close()
            assert proc.poll() is None, proc.communicate()[1][-2000:]
            assert status == 200
            assert "roofline" in body.lower()
            assert (out / "index.html").is_file()
        finally:
            proc.terminate()
            proc.wait(timeout=30)


def _make_dry_run(target: str, *args: str) -> list[str]:
    # The Makefile's defaults, whatever the caller's make set (PYTEST_WORKERS=0 make test).
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTEST_WORKERS", "MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    res = subprocess.run(["make", "-n", "-s", target, *args], cwd=REPO, capture_output=True,
                         text=True, timeout=60, env=env)
    assert res.returncode == 0, res.stderr
    return [ln.strip() for ln in res.stdout.splitlines() if ln.strip()]


def test_make_targets_run_the_documented_commands():
    # make run = set-up + exactly `attnperf run` (test_attnperf_run_with_no_flags runs it).
    program, *args = _make_dry_run("run")[-1].split()
    assert program.endswith("/bin/attnperf") and args == ["run"]
    # The tiers: make test = all but the slow tier; make test-slow = the slow tier alone;
    # make test-all = the whole suite (no marker filter).  CI runs the two tiers, then mutation.
    # Each on every core (at most 4 workers), a test file on one worker.
    xdist = "-n auto --maxprocesses 4 --dist loadfile"
    assert _make_dry_run("test")[-1].endswith(f'-m pytest -q {xdist} -m "not slow"')
    assert _make_dry_run("test-slow")[-1].endswith(f"-m pytest -q {xdist} -m slow")
    assert _make_dry_run("test-all")[-1].endswith(f"-m pytest -q {xdist}")
    ci = [line.split("#")[0].strip() for line in (REPO / ".ci" / "run").read_text().splitlines()]
    makes = [line for line in ci if line.startswith("make ")]
    assert makes[-3:] == ["make test", "make test-slow", "make mutation"], makes
    # make mutation / mutation-full = the mutation script, the second over every function.
    assert _make_dry_run("mutation")[-1].endswith("tests/_mutation.py")
    assert _make_dry_run("mutation-full")[-1].endswith("tests/_mutation.py --full")
    # make continuous = `attnperf ci bench` base main, head HEAD, as CI runs it.
    recipe = " ".join(_make_dry_run("continuous", "MACHINE=my-box"))
    assert "attnperf ci bench" in recipe and "--base main" in recipe and "--head HEAD" in recipe
    assert "--machine my-box" in recipe
    # make setup = the .venv these tests run from; `source .venv/bin/activate` needs its script.
    setup = " ".join(_make_dry_run("setup", "-B"))
    assert "-m venv .venv" in setup and "-e '.[test,triton]'" in setup
    if Path(sys.prefix).name == ".venv":
        assert (Path(sys.prefix) / "bin" / "activate").is_file()
    # pip install -e '.[test,nvml]': both extras exist.
    import tomllib

    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    assert {"test", "nvml", "docs"} <= set(extras)


def test_install_forms_name_this_project():
    """The install forms point at the repository pyproject.toml names; installing them is the
    packaging tests' job."""
    import tomllib
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    url = project["urls"]["Repository"]
    clone, tag, pypi = INSTALL
    assert clone.startswith(f"git clone {url} && cd {url.rsplit('/', 1)[-1]} && ")
    assert tag.startswith(f'python -m pip install "{project["name"]} @ git+{url}@v')
    assert pypi == f"python -m pip install {project['name']}"


def test_runner_commands_match_the_workflows():
    """What the runner set-up commands name is what the workflows ask for: the PR runner's
    label is pr.yml's `attnperf-<gpu>` for a gpu of its matrix, the main runner's label is in
    main.yml's matrix, the runner group admits main.yml, the runner's Python is the variable
    the workflows read, and its asv and pytest-timeout pins are the project's."""
    import tomllib

    workflows = {p.name: p.read_text() for p in (REPO / ".github" / "workflows").glob("*.yml")}
    admin = " ".join(GITHUB_ADMIN)
    labels = set(re.findall(r"attnperf-h100(?:-main)?\b", admin))
    assert labels == {"attnperf-h100", "attnperf-h100-main"}
    assert '"attnperf-${{ matrix.gpu }}"' in workflows["pr.yml"]
    assert re.search(r"^\s*gpu: \[[^\]]*\bh100\b", workflows["pr.yml"], re.M)
    assert '"attnperf-h100-main"' in workflows["main.yml"]
    assert "OWNER/REPO/.github/workflows/main.yml@refs/heads/main" in admin
    for name in ("main.yml", "pr.yml"):
        assert "ATTNPERF_RUNNER_PYTHON" in workflows[name]
    assert "ATTNPERF_RUNNER_PYTHON=/opt/attnperf-py/bin/python" in admin
    assert "github.event.label.name == 'benchmark'" in workflows["pr.yml"]
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = re.findall(r"\b(asv(?:_runner)?==[\d.]+)", admin)
    assert len(pins) == 2 and set(pins) <= set(project["dependencies"]), pins
    # The GPU tests the PR job runs first need pytest's required time-limit plugin, at the
    # test extra's pin.
    plugin = re.findall(r"\bpytest-timeout==[\d.]+", admin)
    assert len(plugin) == 1 and plugin[0] in project["optional-dependencies"]["test"], plugin


def test_asv_selection_variables_of_the_docs(monkeypatch):
    from attnperf.asv import suite
    from attnperf.model.catalog import PRESETS

    command = next(c for c in ELSEWHERE if " asv run " in c)
    for assignment in re.findall(r"(ATTNPERF_\w+)=(\S+)", command):
        monkeypatch.setenv(*assignment)
    assert suite.selection() == (["tiled"], [PRESETS["cpu_seed"].id])
    assert re.search(r"-b (\S+)", command).group(1) == "track_device_time"


def test_screenshots_script(tmp_path):
    """The front page's pictures are made as documented (into a temporary folder here)."""
    pytest.importorskip(
        "markdown", reason="the docs extra is not installed (make docs installs it)"
    )
    sys.path.insert(0, str(REPO / "tools"))
    try:
        from ci_browser_check import find_chromium
    finally:
        sys.path.remove(str(REPO / "tools"))
    if find_chromium() is None:
        pytest.skip("Chromium or Playwright not installed: bash tools/install_browser.sh")
    command = next(c for c in RUN_HERE if "screenshots.py" in c).split()
    res = subprocess.run([sys.executable, *command[1:], "--out", str(tmp_path)], cwd=REPO,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    for name in ("pr-comment.png", "site.png"):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000, name
        assert (DOCS / "img" / name).is_file()


def test_the_documented_install_setting_is_what_init_writes():
    """docs/ci.md shows the generated workflows' ATTNPERF_REQUIREMENT line as init renders it."""
    from attnperf import __version__
    from attnperf.scaffold import TEMPLATES

    blocks = [code for lang, code in fenced_blocks((REPO / "docs" / "ci.md").read_text())
              if lang == "yaml"]
    shown = [line.strip() for code in blocks for line in code.splitlines()
             if line.strip().startswith("ATTNPERF_REQUIREMENT:")]
    assert len(shown) == 1, shown
    template = (TEMPLATES / "workflows" / "pr.yml").read_text()
    line = next(
        x.strip() for x in template.splitlines() if x.strip().startswith("ATTNPERF_REQUIREMENT:")
    )
    rendered = line.replace("[[ attnperf_requirement ]]",
                            f"attnperf @ git+https://github.com/attnperf/attnperf@v{__version__}")
    assert shown[0] == rendered
