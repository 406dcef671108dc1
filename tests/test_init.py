"""`attnperf init` (attnperf.scaffold, cli/init.py): generated files, idempotence, --force,
refusal outside git, dogfooding (attnperf's own files are init's output), and the README's
"Track your own kernels" flow end to end in a throwaway plugin repository (slow: real asv)."""

import json
import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from attnperf import scaffold
from attnperf.asv import suite
from attnperf.io import project_config
from support.plugin import make_plugin_repo, readme_commands

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ASV = shutil.which("asv", path=str(BIN)) or shutil.which("asv")
GENERATED = list(scaffold.FILES)


def _git(cwd, *args):
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def plugin_repo(tmp_path):
    return make_plugin_repo(tmp_path)


# ------------------------------------------------------------- generation ---
def test_init_writes_everything_and_a_starter_config(cli, plugin_repo):
    res = cli("init", plugin_repo)
    assert res.code == 0, res.err
    for rel in GENERATED:
        assert (plugin_repo / rel).is_file(), rel
        assert f"wrote  {rel}" in res.out
    config = project_config.load(plugin_repo / "pyproject.toml")
    assert config.kernels == ("toy_attn",) and config.baselines == ("sdpa",)  # from its entry point
    # the verdict, without asv's flags
    assert "\n  attnperf ci bench --base HEAD~1 --head HEAD\n" in res.out
    assert "\n  attnperf asv machine\n" in res.out  # describes the machine, measures its ceilings
    assert "    wrote  .gitignore" in res.out
    conf = json.loads("\n".join(line for line in (plugin_repo / "asv.conf.json").read_text()
                                .splitlines() if not line.strip().startswith("//")))
    assert conf["project"] == "toyattn" and conf["branches"] == ["main"]
    assert conf["launch_method"] == "forkserver"
    assert conf["matrix"] == {"req": {"pip+asv_runner": ["0.3.2"]}}
    assert "asv env-install --env {env_dir} {wheel_file}" in conf["install_command"][0]
    assert "asv env-build" in conf["build_command"][0]
    assert "tools/" not in json.dumps(conf) and "src/attnperf" not in json.dumps(conf)
    for wf in ("pr.yml", "main.yml", "pr-comment.yml"):
        data = yaml.safe_load((plugin_repo / ".github" / "workflows" / wf).read_text())
        assert data["permissions"] == {}
    pr = (plugin_repo / ".github" / "workflows" / "pr.yml").read_text()
    assert "PYTHONPATH" not in pr and 'pip install "$ATTNPERF_REQUIREMENT" -e .' in pr


def test_init_is_idempotent_and_keeps_edited_files(cli, plugin_repo):
    assert cli("init", plugin_repo).code == 0
    pyproject = (plugin_repo / "pyproject.toml").read_text()
    again = cli("init", plugin_repo)
    assert again.code == 0 and again.out.count("unchanged") == len(GENERATED) + 1  # + .gitignore
    assert (plugin_repo / "pyproject.toml").read_text() == pyproject  # config added once
    bench = plugin_repo / "benchmarks" / "bench_attention.py"
    edited = bench.read_text() + "\n# my own tweak\n"
    bench.write_text(edited)
    kept = cli("init", plugin_repo)
    assert kept.code == 0 and "kept  benchmarks/bench_attention.py (edited" in kept.out
    assert bench.read_text() == edited
    forced = cli("init", plugin_repo, "--force")
    assert "overwrote  benchmarks/bench_attention.py" in forced.out
    assert "# my own tweak" not in bench.read_text()


def test_an_unedited_file_from_an_older_init_is_updated(cli, plugin_repo):
    assert cli("init", plugin_repo).code == 0
    wf = plugin_repo / ".github" / "workflows" / "pr.yml"
    body = wf.read_text().partition("\n")[2].replace("timeout-minutes: 60", "timeout-minutes: 50")
    wf.write_text(scaffold._with_header(".github/workflows/pr.yml", body))  # as an older init wrote
    res = cli("init", plugin_repo)
    assert "updated  .github/workflows/pr.yml" in res.out
    assert "timeout-minutes: 60" in wf.read_text()


def test_a_file_init_did_not_write_is_kept(cli, plugin_repo):
    (plugin_repo / "asv.conf.json").write_text('{"version": 1}\n')
    res = cli("init", plugin_repo)
    assert "kept  asv.conf.json" in res.out
    assert (plugin_repo / "asv.conf.json").read_text() == '{"version": 1}\n'


def test_init_refuses_outside_a_git_repository(cli, tmp_path):
    res = cli("init", tmp_path)
    assert res.code == 2 and res.out == ""
    assert res.err_lines == [f"error: {tmp_path} is not inside a git repository; attnperf init "
                             "sets up asv for a git repository's history (run `git init` and "
                             "commit first)"]
    assert list(tmp_path.iterdir()) == []


def test_init_keeps_an_existing_config(cli, plugin_repo):
    with open(plugin_repo / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.attnperf]\nkernels = ["toy_attn"]\n')
    before = (plugin_repo / "pyproject.toml").read_text()
    assert cli("init", plugin_repo).code == 0
    assert (plugin_repo / "pyproject.toml").read_text() == before


def test_init_refuses_an_invalid_config_before_writing(cli, plugin_repo):
    with open(plugin_repo / "pyproject.toml", "a") as fh:
        fh.write('\n[tool.attnperf]\nregression-factor = 0.5\n')
    res = cli("init", plugin_repo)
    assert res.code == 2 and len(res.err_lines) == 1 and "regression-factor = 0.5" in res.err
    assert not (plugin_repo / "asv.conf.json").exists()


def _generated_suite(repo, name="bench_generated"):
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, repo / "benchmarks" / "bench_attention.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_generated_suite_reads_the_repositorys_config(plugin_repo, cli, monkeypatch):
    assert cli("init", plugin_repo).code == 0
    monkeypatch.delenv("ATTNPERF_ASV_PROBLEMS", raising=False)
    monkeypatch.setenv("ATTNPERF_ASV_DEVICE", "cuda")
    mod = _generated_suite(plugin_repo)
    ids = [suite.resolve(p).id for p in scaffold.DEFAULT_PROBLEMS]
    assert (mod.KERNELS, mod.PROBLEMS) == (["toy_attn", "sdpa"], ids)
    assert mod._GRID == {"project_dir": str(plugin_repo)} and mod._GRID_ERROR == ""
    # A CPU's tables show only the problems it runs (before: a row of n/a per GPU preset).
    monkeypatch.setenv("ATTNPERF_ASV_DEVICE", "cpu")
    mod = _generated_suite(plugin_repo, "bench_generated_cpu")
    assert mod.PROBLEMS == [suite.resolve(p).id for p in scaffold.DEFAULT_PROBLEMS
                            if p.startswith("cpu_")]


def test_generated_suite_says_what_it_measures(plugin_repo, cli):
    # Before: "CPU: wall time", where the suite times the measuring thread's CPU time.
    assert cli("init", plugin_repo).code == 0
    mod = _generated_suite(plugin_repo, "bench_doc")
    doc = " ".join(mod.__doc__.split())
    assert "wall time" not in doc.split("(wall time at commits before it)")[0]
    assert ("CPU: the measuring thread's CPU time per call (time.thread_time) with PyTorch at "
            "one thread") in doc
    # the same quantity as before: the history continues under the same versions
    assert {c.version for c in (mod.TimeAttention, mod.Accuracy, mod.TrainingPass)} == {
        "attnperf-asv-2"}


def test_generated_suite_works_with_an_attnperf_without_the_newer_helpers(plugin_repo, cli,
                                                                           monkeypatch):
    """The file a newer init wrote, run by an older attnperf: the whole grid, raw figures."""
    assert cli("init", plugin_repo).code == 0
    monkeypatch.setenv("ATTNPERF_ASV_DEVICE", "cpu")
    for name in ("device_grid", "device_pass_grid", "figure", "failure_summary"):
        monkeypatch.delattr(suite, name)
    mod = _generated_suite(plugin_repo, "bench_old_attnperf")
    assert mod.PROBLEMS == [suite.resolve(p).id for p in scaffold.DEFAULT_PROBLEMS]
    assert mod._figure(5.223710399461449) == 5.223710399461449


def test_generated_suite_fails_loudly_on_a_bad_config(plugin_repo, cli):
    assert cli("init", plugin_repo).code == 0
    with open(plugin_repo / "pyproject.toml", "a") as fh:
        fh.write("colour = 'red'\n")  # lands in [tool.attnperf]: an unknown key
    import importlib.util
    spec = importlib.util.spec_from_file_location(
        "bench_bad", plugin_repo / "benchmarks" / "bench_attention.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # importing never raises (asv discovery)
    with pytest.raises(RuntimeError, match="unknown key tool.attnperf.colour"):
        mod.measure()


# ------------------------------------------------------------ .gitignore ---
def _ignored(repo, path):
    return subprocess.run(["git", "-C", str(repo), "check-ignore", "-q", "--no-index", path],
                          check=False).returncode == 0


def test_init_ignores_what_attnperf_and_asv_generate_and_keeps_the_history(cli, plugin_repo):
    (plugin_repo / ".gitignore").write_text("# mine\n.asv/\n*.log")  # no final newline
    res = cli("init", plugin_repo)
    assert "  updated  .gitignore" in res.out
    text = (plugin_repo / ".gitignore").read_text()
    assert text.startswith("# mine\n.asv/\n*.log\n\n" + scaffold.GITIGNORE_BEGIN + "\n")
    assert text.endswith(scaffold.GITIGNORE_END + "\n")
    patterns = [ln.lstrip("/") for ln in text.splitlines() if ln and not ln.startswith("#")]
    assert len(patterns) == len(set(patterns))  # .asv/ is the repository's already: not again
    for path in (".asv/env/x", "html/index.html", "_site/index.html", ".cache/asv-www/asv.js",
                 "ci-artifacts/bench/summary.md", "benchmarks/__pycache__/b.pyc",
                 "results/my-laptop/machine.json", "results/my-laptop/attnperf-ceilings.json",
                 "results/benchmarks.json"):
        assert _ignored(plugin_repo, path), path
    for machine in scaffold.CI_MACHINES:  # the history main.yml records stays committable
        for name in ("machine.json", "abcdef12-virtualenv-py3.11.json", "attnperf-ceilings.json",
                     "attnperf-thresholds.json"):
            assert not _ignored(plugin_repo, f"results/{machine}/{name}"), (machine, name)
    for path in ("toyattn/__init__.py", "benchmarks/bench_attention.py", "asv.conf.json",
                 ".github/workflows/main.yml", "pyproject.toml"):
        assert not _ignored(plugin_repo, path), path
    again = cli("init", plugin_repo)
    assert "unchanged  .gitignore" in again.out
    assert (plugin_repo / ".gitignore").read_text() == text
    # the block is refreshed in place; the repository's own lines stay as they are
    edited = text.replace("/_site/\n", "").replace("# mine\n", "# mine\n_site/\n") + "my.db\n"
    (plugin_repo / ".gitignore").write_text(edited)
    assert "unchanged  .gitignore" in cli("init", plugin_repo).out
    (plugin_repo / ".gitignore").write_text(edited.replace("_site/\n", ""))
    assert "  updated  .gitignore" in cli("init", plugin_repo).out
    final = (plugin_repo / ".gitignore").read_text()
    assert final.count(scaffold.GITIGNORE_BEGIN) == 1 and final.endswith("my.db\n")
    assert _ignored(plugin_repo, "_site/index.html")


def test_the_committable_results_are_main_workflows_machines(cli, plugin_repo):
    assert cli("init", plugin_repo).code == 0
    main = yaml.safe_load((plugin_repo / ".github" / "workflows" / "main.yml").read_text())
    recorded = [e["machine"] for e in main["jobs"]["bench"]["strategy"]["matrix"]["include"]]
    assert tuple(recorded) == scaffold.CI_MACHINES


# ---------------------------------------------------------- dogfooding ------
def test_attnperfs_own_files_are_what_init_generates():
    """attnperf's asv.conf.json, benchmarks/ and workflows are init's output for attnperf
    (the self-project blocks of the templates carry the reasons they differ)."""
    project = scaffold.inspect_project(REPO, branch="main")
    assert project.self_project and project.url == "https://github.com/attnperf/attnperf"
    for rel, text in scaffold.render(project).items():
        assert (REPO / rel).read_text() == text, f"{rel}: run `attnperf init --force --branch main`"


def test_every_self_project_difference_says_why():
    """attnperf's own files differ from another repository's only inside the templates'
    `[% if self_project %]` blocks, and each such block gives the reason."""
    blocks = 0
    for template in scaffold.TEMPLATES.rglob("*"):
        if not template.is_file():
            continue
        text = template.read_text()
        for m in re.finditer(r"\[% if self_project %\](.*?)\[% (?:else|endif) %\]", text, re.S):
            blocks += 1
            assert "attnperf differs" in m.group(1), (template.name, m.group(1)[:200])
        assert "self_project" not in re.sub(r"\[% if self_project %\]", "", text), template.name
    # asv.conf.json x2, bench_attention.py; install + GPU env + GPU tests: pr.yml, main.yml x2;
    # ATTNPERF_REQUIREMENT: pr.yml, main.yml; the shards' merge jobs' install: pr.yml, main.yml
    assert blocks == 13


def test_attnperfs_config_matches_its_literal_suite():
    config = project_config.load(REPO / "pyproject.toml")
    kernels, problems = suite.grid(REPO)
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_self", REPO / "benchmarks" / "bench_attention.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert list(config.kernels) == mod.KERNELS == kernels == suite.GRID_KERNELS
    assert config.problems is None and mod.PROBLEMS == problems == suite.GRID_PROBLEMS
    assert (mod.PASS_PROBLEMS, mod.PASSES) == suite.pass_grid(REPO) == suite.pass_grid(None)
    assert (config.factor("cpu"), config.factor("cuda")) == (1.5, 1.05)


# ------------------------------------------------- README flow, real asv -----
def test_readme_flow_has_at_most_five_commands():
    cmds = readme_commands()
    assert 1 <= len(cmds) <= 5 and cmds[0].startswith("python -m pip install")
    assert cmds[-1] == "attnperf ci bench --base HEAD~1 --head HEAD"


SHARED_ENV = Path(os.environ.get("ATTNPERF_TEST_PLUGIN_ENV", REPO / ".asv" / "test-plugin-env"))


@pytest.fixture
def env_lock():
    """Two asv processes must never build in one environment."""
    import fcntl
    SHARED_ENV.mkdir(parents=True, exist_ok=True)
    with open(SHARED_ENV.parent / ".attnperf-test-plugin-env.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield


def init_next_steps(out: str) -> list:
    """The commands `attnperf init` prints after "next:" (the README's flow goes on with them)."""
    lines = out.split("\nnext:\n", 1)[1].splitlines()
    return [line.strip() for line in lines if line.startswith("  ")]


@pytest.mark.slow
@pytest.mark.timeout(600)  # a new project's asv env made cold, ci bench twice, asv run, the site
def test_readme_flow_in_a_plugin_repository(tmp_path, env_lock):
    if ASV is None:
        pytest.skip("asv is not installed")
    repo = make_plugin_repo(tmp_path)
    home = tmp_path / "home"
    home.mkdir()
    env = dict(os.environ)
    env.update(
        {
            "HOME": str(home),
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "ATTNPERF_ASV_DEVICE": "cpu",
            "GIT_AUTHOR_NAME": "t",
            "GIT_COMMITTER_NAME": "t",
            "GIT_AUTHOR_EMAIL": "t@attnperf.invalid",
            "GIT_COMMITTER_EMAIL": "t@attnperf.invalid",
        }
    )
    env.pop("PYTHONPATH", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # as a user's shell: imports leave __pycache__/
    cmds = readme_commands()
    assert cmds[0].startswith("python -m pip install")  # here: this venv's packages, no network

    def sh(cmd, timeout=600):
        proc = subprocess.run(["bash", "-c", cmd], cwd=repo, env=env, capture_output=True,
                              text=True, timeout=timeout)
        return proc.returncode, proc.stdout + proc.stderr

    rc, out = sh(cmds[1])  # attnperf init
    assert rc == 0 and "wrote  asv.conf.json" in out, out
    # The flow goes on as init says (the README's block: its first two lines, then these).
    commit, machine, continuous = init_next_steps(out)[:3]
    assert (commit.startswith("git add -A && git commit"), machine, continuous) == (
        True, "attnperf asv machine", cmds[-1])
    # One CPU problem keeps it short, and a GPU preset that a CPU run must not show; the rest
    # of the starter config is as init wrote it.
    text = (repo / "pyproject.toml").read_text()
    text = re.sub(r"^problems = .*$", 'problems = ["cpu_gqa", "seed"]', text, flags=re.M)
    (repo / "pyproject.toml").write_text(text)
    # asv's environment is shared across runs of this test (creating it costs a minute);
    # each commit is still built and installed into it by asv.conf.json's commands.
    (repo / ".asv").mkdir()
    SHARED_ENV.mkdir(parents=True, exist_ok=True)
    (repo / ".asv" / "env").symlink_to(SHARED_ENV, target_is_directory=True)
    for cmd in (commit, machine):  # machine: asv's description and this machine's ceilings
        rc, out = sh(cmd)
        assert rc == 0, (cmd, out)
    # A/A: HEAD~1 (before init) and HEAD have the same kernel code.
    rc, out = sh(continuous)
    assert rc == 0, out
    assert "[attnperf ci bench] flagged:" not in out, out
    assert "b8_h4_sq64_d64_fp16" not in out, out  # a CPU's tables: no row of the GPU preset
    # A commit that makes the user's kernel 1.3x slower (30 % more work): under asv's x1.5 on
    # a CPU, flagged by the paired re-measurement, at every problem and nothing else.
    kernel = repo / "toyattn" / "__init__.py"
    kernel.write_text(kernel.read_text().replace("SHARE = 0.0", "SHARE = 0.3"))
    rc, out = sh("git commit -qam 'toy: 30 % more work' && " + continuous)
    assert rc == 1, out
    flagged = [line for line in out.splitlines() if line.startswith("[attnperf ci bench] flagged:")]
    assert flagged and all(" toy_attn/" in line for line in flagged), out
    timed = [line for line in flagged if "track_device_time" in line]
    assert {line.split(" toy_attn/")[1].split()[0] for line in timed} == {
        "b1_h8_kv2_sq256_d64_fp32"} and all("paired re-measurement" in line for line in timed), out
    # The site: the user's kernel, its history, roofline figures against measured ceilings.
    rc, out = sh("attnperf site build --out _site")
    assert rc == 0, out
    pages = list((repo / "_site" / "attnperf").glob("*.html"))
    machine_pages = [p for p in pages if p.name != "index.html"]
    assert machine_pages, out
    page = machine_pages[0].read_text()
    assert "measured ceilings: copy " in page and "no measured ceilings" not in page, page
    rows = [r for r in page.split("<tr class=\"status-")[1:]]
    assert len(rows) == 2, page  # toy_attn and sdpa at cpu_gqa; no GPU preset
    for row in rows:
        regime = re.findall(r"<td>(latency-bound|memory-bound|compute-bound|unknown)"
                            r"(?:<sup>\*</sup>)?</td>", row)
        assert regime and regime[0] != "unknown", row
    row = next(r for r in rows if "</span>toy_attn</td>" in r)
    assert re.search(r"<td>[\d.]+%</td><td>[\d.]+×</td>", row), row  # efficiency, x over floor
    assert page.count("<tr><td><code>") == 3, page  # history: before init, init, the slowdown
    results = list((repo / ".asv" / "results").glob("*/*.json")) or \
        list((repo / "results").glob("*/*.json"))
    assert len([r for r in results if r.name != "machine.json"
                and "ceilings" not in r.name]) >= 3  # three commits of history
    # A kernel 1 % off: one line per wrong config and a summary, no traceback.
    kernel.write_text(kernel.read_text().replace("    return out\n", "    return out * 1.01\n"))
    rc, out = sh("git commit -qam 'toy: 1 % off' && asv run -b TimeAttention HEAD^!")
    assert rc == 2, out
    lines = out.strip().splitlines()
    wrong = [line for line in lines if "is WRONG" in line]
    assert [line.split(" is WRONG")[0].split()[-1] for line in wrong] == [
        "toy_attn/b1_h8_kv2_sq256_d64_fp32"], out
    assert "rel_error=0.01 (tolerance 0.0001), max_abs_error=" in wrong[0], out
    assert [line.strip() for line in lines if line.strip().startswith("attnperf: ")] == [
        "attnperf: 1 of 2 kernel x problem configs failed at this commit (1 wrong result), "
        "one line each above; every other config was measured"], out
    assert "Traceback" not in out and len(lines) <= 40, out
    # Nothing attnperf or asv generated is left for git to pick up (results of a machine
    # that main.yml records would be history, to commit).
    status = _git(repo, "status", "--porcelain", "--untracked-files=all")
    node = platform.node()
    assert [s for s in status.splitlines() if not (node in scaffold.CI_MACHINES
                                                  and f"results/{node}/" in s)] == [], status


def test_generated_workflows_pass_actionlint(cli, plugin_repo):
    actionlint = shutil.which("actionlint", path=str(BIN)) or shutil.which("actionlint")
    if actionlint is None:
        pytest.skip("actionlint not installed: bash tools/install_ci_tools.sh")
    assert cli("init", plugin_repo).code == 0
    files = sorted((plugin_repo / ".github" / "workflows").glob("*.yml"))
    proc = subprocess.run([actionlint, "-no-color", *map(str, files)], capture_output=True,
                          text=True, cwd=plugin_repo, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
