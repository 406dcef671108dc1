"""The GitHub workflows: actionlint (expressions, runner labels, shellcheck of run: scripts)
and the security rules of docs/ci.md checked on the parsed YAML."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
WF = REPO / ".github" / "workflows"
FILES = sorted(WF.glob("*.yml"))
ACTIONLINT = shutil.which("actionlint", path=str(Path(sys.executable).parent)) or \
    shutil.which("actionlint")

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
}


def load(name: str) -> dict:
    data = yaml.safe_load((WF / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads the key `on` as True
    return data


def steps(job: dict):
    return job.get("steps", [])


@pytest.mark.skipif(ACTIONLINT is None, reason="actionlint not installed: bash tools/install_ci_tools.sh")
def test_actionlint():
    proc = subprocess.run([ACTIONLINT, "-no-color", *map(str, FILES)], capture_output=True,
                          text=True, cwd=REPO, timeout=120)
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
    assert [f.name for f in FILES] == ["main.yml", "pr-comment.yml", "pr.yml"]


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


def test_pr_workflow_triggers_concurrency_and_read_only_jobs():
    pr = load("pr.yml")
    assert pr["on"] == {"pull_request": {"types": ["opened", "synchronize", "reopened", "labeled"]}}
    assert pr["concurrency"]["cancel-in-progress"] is True
    assert "github.event.pull_request.number" in pr["concurrency"]["group"]
    for name, job in pr["jobs"].items():
        assert set((job["permissions"] or {}).values()) <= {"read"}, name
        for step in steps(job):
            if step.get("uses", "").startswith("actions/checkout"):
                assert step["with"]["persist-credentials"] is False
    # untrusted PR fields are never interpolated into a shell script
    for job in pr["jobs"].values():
        for step in steps(job):
            run = step.get("run", "")
            assert "${{" not in run, f"{step.get('name')}: pass values through env:"


def test_gpu_job_only_with_the_label_and_only_there_self_hosted():
    pr = load("pr.yml")
    cpu, gpu = pr["jobs"]["cpu"], pr["jobs"]["gpu"]
    assert cpu["runs-on"] == "ubuntu-latest"
    assert "self-hosted" in gpu["runs-on"] and "attnperf-${{ matrix.gpu }}" in gpu["runs-on"]
    assert gpu["strategy"]["matrix"]["gpu"] and gpu["strategy"]["fail-fast"] is False
    cond = " ".join(gpu["if"].split())
    # the label event itself, or a same-repository PR that carries the label: never a fork push
    assert "(github.event.action == 'labeled' && github.event.label.name == 'benchmark')" in cond
    assert "contains(github.event.pull_request.labels.*.name, 'benchmark')" in cond
    assert "github.event.pull_request.head.repo.full_name == github.repository" in cond
    assert "self-hosted" not in str(cpu["runs-on"]) + str(pr["jobs"]["compose"]["runs-on"])


def test_pr_jobs_run_ci_bench_and_upload_artifacts():
    pr = load("pr.yml")
    for name in ("cpu", "gpu"):
        job = pr["jobs"][name]
        bench = next(s for s in steps(job) if s.get("id") == "bench")
        assert bench["run"].startswith("python -m attnperf ci bench --base \"$BASE_SHA\"")
        assert bench["env"]["BASE_SHA"] == "${{ github.event.pull_request.base.sha }}"
        uploads = [s for s in steps(job) if s.get("uses", "").startswith("actions/upload-artifact")]
        assert len(uploads) == 2 and all(s["if"] == "always()" for s in uploads)
    compose = pr["jobs"]["compose"]
    assert compose["needs"] == ["cpu", "gpu"] and compose["permissions"] == {}
    assert any(s.get("with", {}).get("name") == "pr-comment" for s in steps(compose))


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
