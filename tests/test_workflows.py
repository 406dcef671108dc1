"""The GitHub workflows: actionlint (expressions, runner labels, shellcheck of run: scripts),
zizmor (security audits), and the security rules of docs/ci.md checked on the parsed YAML,
with the `if:` and `concurrency:` expressions evaluated for the events that matter."""

import base64
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from support.ghexpr import condition, evaluate, interpolate

REPO = Path(__file__).resolve().parents[1]
WF = REPO / ".github" / "workflows"
FILES = sorted(WF.glob("*.yml"))
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or \
    shutil.which("actionlint")
ZIZMOR = shutil.which("zizmor", path=str(Path(sys.executable).parent)) or shutil.which("zizmor")

# Third-party actions, pinned by full commit SHA.  Each SHA was checked against several
# independent public workflows that pin the same tag (see docs/ci.md).
PINS = {
    "actions/checkout": ("11bd71901bbe5b1630ceea73d27597364c9af683", "v4.2.2"),
    "actions/setup-python": ("a26af69be951a213d495a4c3e4e4022e16d87065", "v5.6.0"),
    "actions/upload-artifact": ("ea165f8d65b6e75b540449e92b4886f43607fa02", "v4.6.2"),
    "actions/download-artifact": ("d3f86a106a0bac45b974a628896c90dbdf5c8093", "v4.3.0"),
    "actions/github-script": ("60a0d83039c74a4aee543508d2ffcb1c3799cdea", "v7.0.1"),
    "actions/upload-pages-artifact": ("56afc609e74202658d3ffba0e8f6dda462b719fa", "v3.0.1"),
    "actions/deploy-pages": ("d6db90164ac5ed86f2b6aed7e0febac5b3c0c03e", "v4.0.5"),
    "pypa/gh-action-pypi-publish": ("dc37677b2e1c63e2034f94d8a5b11f265b73ba33", "v1.14.2"),
}


def load(name: str) -> dict:
    data = yaml.safe_load((WF / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps(job: dict):
    return job.get("steps", [])


@pytest.mark.skipif(
    ACTIONLINT is None, reason="actionlint not installed: bash tools/install_ci_tools.sh"
)
def test_actionlint(tmp_path):
    """The committed workflows, and what `attnperf init` writes for another repository."""
    proc = subprocess.run([ACTIONLINT, "-no-color", *map(str, FILES)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    generic = _rendered_workflows(tmp_path, name="toyattn", branch="trunk",
                                  url="https://github.com/o/toyattn")
    assert len(generic) == 3
    proc = subprocess.run([ACTIONLINT, "-no-color", *map(str, generic)], capture_output=True,
                          text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    if shutil.which("shellcheck") is None:
        pytest.skip("actionlint passed, but without shellcheck the run: scripts were not checked")


def test_actionlint_catches_a_broken_expression(tmp_path):
    if ACTIONLINT is None:
        pytest.skip("actionlint not installed: bash tools/install_ci_tools.sh")
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text((WF / "pr.yml").read_text().replace(
        "name: bench-${{ matrix.gpu }}", "name: bench-${{ matrix.gpus }}", 1))
    proc = subprocess.run([ACTIONLINT, "-no-color", str(bad)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1 and 'property "gpus" is not defined' in proc.stdout, proc.stdout


def test_expected_workflows():
    assert [f.name for f in FILES] == ["main.yml", "pr-comment.yml", "pr.yml", "release.yml"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_actions_pinned_by_full_sha(path):
    uses = re.findall(r"uses:\s*(\S+)(.*)", path.read_text())
    assert uses
    for ref, comment in uses:
        name, _, sha = ref.partition("@")
        assert name in PINS, f"{path.name}: unexpected action {ref}"
        assert (sha, comment.strip().lstrip("# ").strip()) == PINS[name], f"{path.name}: {ref}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_least_permissions(path):
    data = load(path.name)
    assert data["permissions"] == {}, "top level grants nothing"
    for name, job in data["jobs"].items():
        assert "permissions" in job, f"{path.name}:{name} must say what it needs"
    assert "pull_request_target" not in data["on"]
    code = "\n".join(line.split("#")[0] for line in path.read_text().splitlines())
    assert "secrets." not in code


# ------------------------------ GitHub expressions, evaluated (support.ghexpr) ---
BASE = "attnperf/attnperf"


def pr_event(action: str, head_repo: str, labels=(), label=None, number=7, run_id=1001):
    """The `github` context of a pull_request run (what pr.yml's expressions read)."""
    event = {"action": action, "pull_request": {
        "number": number, "head": {"repo": {"full_name": head_repo}, "sha": "h" * 40},
        "base": {"sha": "b" * 40}, "labels": [{"name": n} for n in labels]}}
    if label:
        event["label"] = {"name": label}
    return {"github": {"event": event, "repository": BASE, "run_id": run_id,
                       "ref": f"refs/pull/{number}/merge"}}


def test_the_evaluator_reads_these_expressions():
    ctx = pr_event("labeled", "me/fork", labels=["benchmark", "x"], label="benchmark")
    assert evaluate("contains(github.event.pull_request.labels.*.name, 'benchmark')", ctx) is True
    assert evaluate("!(github.event.action == 'labeled') || github.run_id", ctx) == 1001
    assert (
        evaluate("github.event.pull_request.head.repo.full_name == github.repository", ctx) is False
    )
    assert evaluate("format('refs/heads/{0}', 'main')", ctx) == "refs/heads/main"


def test_pr_workflow_triggers_concurrency_and_read_only_jobs():
    pr = load("pr.yml")
    assert pr["on"] == {"pull_request": {"types": ["opened", "synchronize", "reopened", "labeled"]}}
    assert pr["concurrency"]["cancel-in-progress"] is True
    for name, job in pr["jobs"].items():
        assert set((job["permissions"] or {}).values()) <= {"read"}, name


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_expression_is_expanded_into_a_shell_script(path):
    """Untrusted fields (a branch name, a label, a title) reach scripts only through env:."""
    for name, job in load(path.name)["jobs"].items():
        for step in steps(job):
            assert "${{" not in step.get("run", ""), (
                f"{name}/{step.get('name')}: pass it through env:"
            )


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_no_checkout_keeps_credentials(path):
    """actions/checkout would leave the token in .git/config for every later step (benchmarks
    on the self-hosted runners included): every checkout says persist-credentials: false."""
    checkouts = [(name, step) for name, job in load(path.name)["jobs"].items()
                 for step in steps(job) if step.get("uses", "").startswith("actions/checkout@")]
    for name, step in checkouts:
        assert step.get("with", {}).get("persist-credentials") is False, f"{path.name}:{name}"


def test_a_fork_push_never_shares_a_concurrency_group_with_a_gpu_run():
    """The group is keyed by the head repository and the PR number: no run that reaches the
    GPU shares a group with a run a fork's author can start (a push cancels the older run of
    its group).  A newer push still cancels the older run of the same PR, and an unrelated
    label never cancels a benchmark."""
    pr = load("pr.yml")
    group, gpu_if = pr["concurrency"]["group"], condition(pr["jobs"]["gpu"]["if"])
    assert "github.event.pull_request.head.repo.full_name" in group
    assert "github.event.pull_request.number" in group

    def g(*args, **kw):
        return interpolate(group, pr_event(*args, **kw))

    events = [((action, head, ["benchmark"]), {"number": n})
              for action in ("opened", "synchronize", "reopened")
              for head in (BASE, "mallory/attnperf") for n in (7, 8)]
    events += [(("labeled", head, ["benchmark"], "benchmark"), {"number": n})
               for head in (BASE, "mallory/attnperf") for n in (7, 8)]
    gpu_runs = {g(*a, **kw) for a, kw in events if evaluate(gpu_if, pr_event(*a, **kw))}
    fork_started = {g(a, "mallory/attnperf", ["benchmark"], number=n)
                    for a in ("opened", "synchronize", "reopened") for n in (7, 8)}
    assert gpu_runs and fork_started and not gpu_runs & fork_started
    # a newer push replaces the older run of the same PR ...
    assert g("synchronize", BASE, number=7) == g("opened", BASE, number=7) == \
        g("labeled", BASE, ["benchmark"], "benchmark", number=7)
    assert g("synchronize", BASE, number=7) != g("synchronize", BASE, number=8)
    # ... while an unrelated label gets a group of its own
    assert g("labeled", BASE, ["benchmark"], "wip", run_id=5) != g("synchronize", BASE)
    assert load("main.yml")["concurrency"]["group"] not in gpu_runs | fork_started


def test_gpu_job_only_with_the_label_and_never_for_a_fork():
    pr = load("pr.yml")
    cpu, gpu = pr["jobs"]["cpu"], pr["jobs"]["gpu"]
    assert cpu["runs-on"] == "ubuntu-latest"
    assert "self-hosted" in gpu["runs-on"] and "attnperf-${{ matrix.gpu }}" in gpu["runs-on"]
    assert gpu["strategy"]["matrix"]["gpu"] and gpu["strategy"]["fail-fast"] is False
    assert "self-hosted" not in str(cpu["runs-on"]) + str(pr["jobs"]["compose"]["runs-on"])

    def runs(*args, **kw):
        return bool(evaluate(condition(gpu["if"]), pr_event(*args, **kw)))

    # a branch of this repository: the label event, and later pushes while it has the label
    assert runs("labeled", BASE, ["benchmark"], "benchmark")
    assert runs("synchronize", BASE, ["benchmark"]) and runs("reopened", BASE, ["benchmark"])
    assert not runs("synchronize", BASE, []) and not runs("opened", BASE, ["wip"])
    assert not runs("labeled", BASE, ["benchmark", "wip"], "wip")  # another label: no rerun
    # a fork: never, labelled or not (defence in depth; the boundary is fork-run approval)
    for action in ("opened", "synchronize", "reopened"):
        assert not runs(action, "mallory/attnperf", ["benchmark"])
    assert not runs("labeled", "mallory/attnperf", ["benchmark"], "benchmark")
    # the CPU job runs for forks too (GitHub-hosted, read-only token)
    assert evaluate(condition(cpu["if"]), pr_event("synchronize", "mallory/attnperf"))


def _self_hosted_label_sets(runs_on_values):
    out = []
    for value in runs_on_values:
        labels = set(value if isinstance(value, list) else [value])
        if "self-hosted" in labels:
            out.append(labels)
    return out


def test_main_uses_runners_of_its_own():
    """main.yml writes history: its GPU legs must never land on a runner that takes PR jobs,
    nor a PR job on its runners.  A runner takes a job when it has every label the job asks
    for, so neither label set may contain the other."""
    import json
    main, pr = load("main.yml"), load("pr.yml")
    include = main["jobs"]["bench"]["strategy"]["matrix"]["include"]
    main_sets = _self_hosted_label_sets(json.loads(e["runner"]) for e in include)
    gpu = pr["jobs"]["gpu"]
    pr_sets = _self_hosted_label_sets(
        [label.replace("${{ matrix.gpu }}", kind) for label in gpu["runs-on"]]
        for kind in gpu["strategy"]["matrix"]["gpu"])
    assert main_sets and pr_sets
    for m in main_sets:
        assert any(label.endswith("-main") for label in m), m
        for p in pr_sets:
            assert not m <= p and not p <= m, (m, p)
    # a self-hosted runner only ever in these two jobs
    for path in FILES:
        for name, job in load(path.name)["jobs"].items():
            if "self-hosted" in str(job["runs-on"]):
                assert (path.name, name) == ("pr.yml", "gpu"), (path.name, name)
            elif "matrix.runner" in str(job["runs-on"]):
                assert (path.name, name) == ("main.yml", "bench"), (path.name, name)


def test_main_jobs_run_only_from_the_main_branch():
    """A manual run from another branch would record that branch's commits as main's history
    on main's runners: bench and publish (and so deploy) refuse other refs."""
    m = load("main.yml")
    for name in ("bench", "merge", "publish"):
        cond = condition(m["jobs"][name]["if"]).replace("!cancelled()", "true")
        for ref, expected in (("refs/heads/main", True), ("refs/heads/topic", False),
                              ("refs/pull/7/merge", False)):
            assert bool(evaluate(cond, {"github": {"ref": ref}})) is expected, (name, ref)
    assert m["jobs"]["deploy"]["needs"] == "publish"


def test_generated_main_workflow_keeps_to_the_repositorys_branch(tmp_path):
    """What `attnperf init` writes for another repository names that repository's branch."""
    [main] = [p for p in _rendered_workflows(tmp_path, name="toyattn", branch="trunk")
              if p.name == "main.yml"]
    data = yaml.safe_load(main.read_text())
    for name in ("bench", "publish"):
        cond = condition(data["jobs"][name]["if"]).replace("!cancelled()", "true")
        assert evaluate(cond, {"github": {"ref": "refs/heads/trunk"}})
        assert not evaluate(cond, {"github": {"ref": "refs/heads/main"}})
    runners = [e["runner"] for e in data["jobs"]["bench"]["strategy"]["matrix"]["include"]]
    assert any("attnperf-h100-main" in r for r in runners)


def _token_steps(job):
    return [s for s in steps(job) if "github.token" in str(s.get("env", {}))]


def test_the_token_reaches_git_only_through_the_environment(tmp_path):
    """With no persisted credentials, main.yml's two git steps get the token in env: and hand
    it to git as an environment config (never argv, never a file); no later step sees it."""
    m = load("main.yml")
    for name in ("bench", "publish"):
        job = m["jobs"][name]
        [step] = _token_steps(job)
        assert step["env"] == {"GIT_TOKEN": "${{ github.token }}"}
        assert "GIT_CONFIG_COUNT" in step["run"] and "git config http" not in step["run"]
        first_install = next(i for i, s in enumerate(steps(job)) if "Install" in s.get("name", ""))
        assert steps(job).index(step) < first_install, f"{name}: the token step runs project code"
    assert "github.token" not in (WF / "pr.yml").read_text()  # PR jobs never hand it out

    # run the bench job's fetch step with a stand-in git that records what it was given
    fake = tmp_path / "bin"
    fake.mkdir()
    log = tmp_path / "git.log"
    (fake / "git").write_text(
        "#!/bin/sh\n"
        f"printf 'argv=%s\\n' \"$*\" >> {log}\n"
        f"env | grep '^GIT_CONFIG' | sort >> {log}\n"
        "exit 1\n")  # no data branch yet
    (fake / "git").chmod(0o755)
    [step] = _token_steps(m["jobs"]["bench"])
    token = "ghs_s3cr3t-value"
    env = {**os.environ, "PATH": f"{fake}:{os.environ['PATH']}", "GIT_TOKEN": token,
           "GITHUB_SERVER_URL": "https://github.com", "DATA_BRANCH": "asv-results"}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    recorded = log.read_text()
    argv = [line for line in recorded.splitlines() if line.startswith("argv=")]
    assert argv == ["argv=fetch --depth=1 origin asv-results"]
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    assert "GIT_CONFIG_COUNT=1" in recorded
    assert "GIT_CONFIG_KEY_0=http.https://github.com/.extraheader" in recorded
    assert f"GIT_CONFIG_VALUE_0=AUTHORIZATION: basic {basic}" in recorded
    assert token not in proc.stdout.replace(f"::add-mask::{basic}", "")
    assert f"::add-mask::{basic}" in proc.stdout


# ------------------------------------------------------------------ zizmor ---
def _zizmor(*paths):
    return subprocess.run([ZIZMOR, "--offline", "--persona=auditor", "--no-progress",
                           "--format=plain", *map(str, paths)],
                          capture_output=True, text=True, timeout=120)


def _rendered_workflows(tmp_path, **project):
    from attnperf import scaffold
    proj = scaffold.Project(root=tmp_path, **project)
    out = []
    for rel, text in scaffold.render(proj).items():
        if rel.startswith(".github/workflows/"):
            dest = tmp_path / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_text(text)
            out.append(dest)
    return out


@pytest.mark.skipif(ZIZMOR is None, reason="zizmor not installed: bash tools/install_ci_tools.sh")
def test_zizmor_finds_nothing_unanswered(tmp_path):
    """zizmor's auditor persona (every audit, offline) over the committed workflows and over
    what `attnperf init` writes for another repository: no finding, and each ignore comment
    gives its reason (docs/ci.md)."""
    proc = _zizmor(*FILES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    generic = _rendered_workflows(tmp_path, name="toyattn", branch="trunk",
                                  url="https://github.com/o/toyattn")
    proc = _zizmor(*generic)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for path in FILES:
        for line in path.read_text().splitlines():
            m = re.search(r"zizmor: ignore\[[\w-]+\](.*)", line)
            if m:
                assert len(m.group(1).strip()) > 20, f"{path.name}: say why: {line.strip()}"


@pytest.mark.skipif(ZIZMOR is None, reason="zizmor not installed: bash tools/install_ci_tools.sh")
def test_zizmor_catches_a_persisted_credential(tmp_path):
    bad = tmp_path / ".github" / "workflows" / "main.yml"
    bad.parent.mkdir(parents=True)
    text = (WF / "main.yml").read_text()
    assert "persist-credentials: false" in text
    bad.write_text(text.replace("          persist-credentials: false\n", "", 1))
    proc = _zizmor(bad)
    assert proc.returncode != 0 and "artipacked" in proc.stdout, proc.stdout


def _uploads(job):
    return [s for s in steps(job) if s.get("uses", "").startswith("actions/upload-artifact")]


def test_pr_jobs_run_ci_bench_and_upload_artifacts():
    pr = load("pr.yml")
    for name in ("cpu", "gpu"):
        job = pr["jobs"][name]
        bench = next(s for s in steps(job) if s.get("id") == "bench")
        assert bench["run"].startswith("python -m attnperf ci bench --base \"$BASE_SHA\"")
        assert bench["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
    assert [s["if"] for s in _uploads(pr["jobs"]["cpu"])] == ["always()", "always()"]
    # the GPU job: its folder and comment section as one job (one shard), or its shard's
    # folder for gpu-merge
    assert [s["if"] for s in _uploads(pr["jobs"]["gpu"])] == [
        "always() && matrix.shards == 1", "always() && matrix.shards == 1",
        "always() && matrix.shards != 1"]
    compose = pr["jobs"]["compose"]
    assert compose["needs"] == ["cpu", "gpu", "gpu-merge"] and compose["permissions"] == {}
    assert any(s.get("with", {}).get("name") == "pr-comment" for s in steps(compose))


def test_sharded_gpu_jobs_are_merged_on_a_hosted_runner_with_a_read_only_token():
    pr = load("pr.yml")
    merge = pr["jobs"]["gpu-merge"]
    assert merge["needs"] == "gpu" and merge["runs-on"] == "ubuntu-latest"
    assert merge["permissions"] == {"contents": "read"}
    assert condition(merge["if"]).strip() == "!cancelled() && needs.gpu.result != 'skipped'"
    [download] = [s for s in steps(merge) if "download-artifact" in s.get("uses", "")]
    assert download["with"]["pattern"] == "shard-*"
    [shard_upload] = [s for s in _uploads(pr["jobs"]["gpu"]) if "shard" in s["with"]["name"]]
    assert shard_upload["with"]["name"] == "shard-${{ matrix.gpu }}-${{ matrix.shard }}"
    run = next(s for s in steps(merge) if s.get("id") == "merge")["run"]
    assert 'python -m attnperf ci merge "$dir"*/ --out "ci-artifacts/bench-$gpu"' in run
    assert {s["with"]["name"] for s in _uploads(merge)} == {"bench-shards-merged",
                                                             "comment-shards-merged"}


def _matrix_shards(entries):
    """Every (kind, shards) of a matrix lists its shards 1..N once."""
    kinds = {}
    for e in entries:
        kinds.setdefault((e["kind"], e["shards"]), []).append(e["shard"])
    for (kind, n), listed in kinds.items():
        assert sorted(listed) == list(range(1, n + 1)), (kind, n, listed)
    return kinds


def test_the_shard_settings_list_every_shard_once():
    gpu = load("pr.yml")["jobs"]["gpu"]["strategy"]["matrix"]
    _matrix_shards([{"kind": g, "shards": n, "shard": k} for g in gpu["gpu"]
                    for n in gpu["shards"] for k in gpu["shard"]])
    assert gpu["shards"] == [1] and gpu["shard"] == [1]  # the default: one job per kind
    include = load("main.yml")["jobs"]["bench"]["strategy"]["matrix"]["include"]
    assert {(kind, n) for kind, n in _matrix_shards(
        [dict(e, kind=e["machine"]) for e in include])} == {("gh-ubuntu-cpu", 1), ("h100", 1)}


def _run_step(step, env, tmp_path, matrix):
    """Run a step's script as the runner would, with a stand-in `python` that records its
    arguments (and, for `ci merge`, writes a summary for the kinds named in MERGE_OK)."""
    fake = tmp_path / "bin"
    fake.mkdir(exist_ok=True)
    (fake / "python").write_text(
        "#!/bin/sh\n"
        f"printf '%s\\n' \"$*\" >> {tmp_path / 'argv.log'}\n"
        "if [ \"$4\" = merge ]; then\n"
        "  for a; do out=\"$a\"; done\n"
        "  case \" $MERGE_OK \" in *\" $(basename \"$out\" | sed 's/^bench-//') \"*)\n"
        "    mkdir -p \"$out\"; echo '### merged' > \"$out/summary.md\"; exit 1;; esac\n"
        "  exit 2\n"
        "fi\n")
    (fake / "python").chmod(0o755)
    ctx = {"matrix": matrix, "runner": {"temp": str(tmp_path / "temp")},
           "github": pr_event("synchronize", BASE, ["benchmark"])["github"]}
    step_env = {k: str(interpolate(v, ctx)) for k, v in step.get("env", {}).items()}
    proc = subprocess.run(["bash", "-e", "-c", step["run"]],
                          env={**os.environ, **env, **step_env,
                               "PATH": f"{fake}:{os.environ['PATH']}"},
                          cwd=tmp_path, capture_output=True, text=True, timeout=30)
    log = tmp_path / "argv.log"
    argv = log.read_text().splitlines() if log.exists() else []
    if log.exists():
        log.unlink()
    return proc, argv


def test_a_gpu_shard_runs_ci_bench_for_its_shard(tmp_path):
    """One shard: the command, folder and comment section as before sharding; shard K of N:
    `--shard K/N` and a folder of its own under ci-artifacts/shards/<gpu>/<K>."""
    gpu = load("pr.yml")["jobs"]["gpu"]
    bench = next(s for s in steps(gpu) if s.get("id") == "bench")
    env = {"GPU_ROUNDS": "2"}
    _, [one] = _run_step(bench, env, tmp_path, {"gpu": "h100", "shard": 1, "shards": 1})
    assert one == (f"-m attnperf ci bench --base {'b' * 40} --head {'h' * 40} --machine h100 "
                   "--device cuda --rounds 2 --out ci-artifacts/bench-h100")
    _, [two] = _run_step(bench, env, tmp_path, {"gpu": "h100", "shard": 2, "shards": 3})
    assert two.endswith("--rounds 2 --shard 2/3 --out ci-artifacts/shards/h100/2")
    assert "GPU h100 shard 2/3 (self-hosted)" == interpolate(
        gpu["name"], {"matrix": {"gpu": "h100", "shard": 2, "shards": 3}})
    assert "GPU h100 (self-hosted)" == interpolate(
        gpu["name"], {"matrix": {"gpu": "h100", "shard": 1, "shards": 1}})
    tests = next(s for s in steps(gpu) if s.get("name", "").startswith("GPU tests"))
    assert tests["if"] == "matrix.shard == 1"  # once per kind, not once per shard


def test_gpu_merge_makes_one_section_per_kind_and_fails_with_the_worst(tmp_path):
    merge = load("pr.yml")["jobs"]["gpu-merge"]
    step = next(s for s in steps(merge) if s.get("id") == "merge")
    for kind, shards in (("h100", (1, 2)), ("a100-80", (1, 2, 3))):
        for k in shards:
            (tmp_path / "temp" / "shards" / kind / str(k)).mkdir(parents=True)
    proc, argv = _run_step(step, {"MERGE_OK": "h100"}, tmp_path, {})
    assert proc.returncode == 2, proc.stderr  # a100-80's merge was refused
    shards = str(tmp_path / "temp" / "shards")
    assert sorted(argv) == sorted([
        f"-m attnperf ci merge {shards}/a100-80/1/ {shards}/a100-80/2/ {shards}/a100-80/3/ "
        "--out ci-artifacts/bench-a100-80",
        f"-m attnperf ci merge {shards}/h100/1/ {shards}/h100/2/ --out ci-artifacts/bench-h100"])
    sections = tmp_path / "ci-artifacts" / "comment"
    assert (sections / "20-h100.md").read_text() == "### merged\n"
    assert "`a100-80`: its shards could not be merged" in (sections / "20-a100-80.md").read_text()


def test_main_merges_sharded_results_before_publishing():
    m = load("main.yml")
    merge, publish = m["jobs"]["merge"], m["jobs"]["publish"]
    assert merge["needs"] == "bench" and publish["needs"] == ["bench", "merge"]
    assert merge["runs-on"] == "ubuntu-latest" and merge["permissions"] == {"contents": "read"}
    [download] = [s for s in steps(merge) if "download-artifact" in s.get("uses", "")]
    assert download["with"]["pattern"] == "shard-results-*"
    assert "merge-multiple" not in download["with"]  # one folder per shard
    run = next(s["run"] for s in steps(merge) if "ci merge" in s.get("run", ""))
    assert run == ('python -m attnperf ci merge --results-only "$SHARDS_DIR"/*/ '
                   "--out ci-artifacts/merged")
    [upload] = _uploads(merge)
    assert upload["with"]["name"] == "results-of-shards"  # publish's results-* takes it
    bench = m["jobs"]["bench"]
    name = next(s for s in _uploads(bench))["with"]["name"]
    ctx = {"matrix": {"machine": "h100", "shard": 2, "shards": 2}}
    assert interpolate(name, ctx) == "shard-results-h100-2"
    assert interpolate(name, {"matrix": {"machine": "h100", "shard": 1, "shards": 1}}) == \
        "results-h100"
    run_step = next(s for s in steps(bench) if s.get("name", "").startswith("asv run"))
    assert interpolate(run_step["env"]["ATTNPERF_ASV_SHARD"], ctx) == "2/2"


def test_comment_workflow_never_runs_pr_code():
    c = load("pr-comment.yml")
    assert c["on"] == {"workflow_run": {"workflows": ["benchmarks (pull request)"],
                                        "types": ["completed"]}}
    assert load("pr.yml")["name"] == "benchmarks (pull request)"
    job = c["jobs"]["comment"]
    assert job["permissions"] == {"actions": "read", "pull-requests": "write"}
    assert not any("checkout" in s.get("uses", "") for s in steps(job))
    assert not any("run" in s for s in steps(job))
    script = next(s for s in steps(job) if "github-script" in s.get("uses", ""))["with"]["script"]
    assert "<!-- attnperf-pr-benchmarks -->" in script
    assert "updateComment" in script and "createComment" in script
    assert "pr.head.sha !== process.env.RUN_HEAD_SHA" in script  # the artifact is not trusted


def test_main_workflow_history_and_pages():
    m = load("main.yml")
    assert m["on"]["push"] == {"branches": ["main"]} and m["on"]["schedule"]
    # main queues runs (a GPU leg is long and uploads at the end): never cancelled midway
    assert m["concurrency"]["cancel-in-progress"] is False
    bench, publish, deploy = (m["jobs"][k] for k in ("bench", "publish", "deploy"))
    assert bench["permissions"] == {"contents": "read"}
    assert publish["permissions"] == {"contents": "write"}
    assert deploy["permissions"] == {"pages": "write", "id-token": "write"}
    assert deploy["environment"]["name"] == "github-pages"
    assert bench["env"]["ATTNPERF_ASV_VIEWS"] == "1"
    text = (WF / "main.yml").read_text()
    assert "--skip-existing-commits" in text and "attnperf site build" in text
    assert "DATA_BRANCH: asv-results" in text


def test_ci_bench_gate_matches_the_suite():
    from attnperf.ci import bench as mod
    bench = (REPO / "benchmarks" / "bench_attention.py").read_text()
    assert mod.GATED == "^(?!.*Views)" and "-b '^(?!.*Views)'" in bench
    assert re.search(mod.GATED, "bench_attention.TimeAttention.track_device_time")
    assert re.search(mod.GATED, "bench_attention.TimeAttention.track_x_over_floor")
    for view in ("bench_attention.RooflineViews.track_tflops",
                 "bench_attention.LatencyViews.track_latency"):
        assert not re.search(mod.GATED, view)


def test_pr_gpu_job_runs_the_gpu_tests_before_benchmarking():
    gpu = load("pr.yml")["jobs"]["gpu"]
    names = [s.get("name", "") for s in steps(gpu)]
    tests = next(s for s in steps(gpu) if s.get("name", "").startswith("GPU tests"))
    assert "pytest" in tests["run"] and "-m gpu" in tests["run"]
    assert names.index(tests["name"]) < names.index("asv continuous, base vs head")
