"""The writing door (attnperf.io.files, attnperf.io.folders): atomic, never through a link,
never over a device, a FIFO or an input of the same command, never outside the place given,
one writer per file; a folder attnperf owns is rewritten only in what attnperf wrote there."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap

import pytest

from attnperf.errors import OutputPathError
from attnperf.io import files
from attnperf.io.folders import OwnedDir
from attnperf.io.jsonfile import write_json
from attnperf.site import publish as publish_mod
from support import asvdata as d
from support.doors import listing, one_error


# ----------------------------------------------------------- ci bench --out -----
@pytest.fixture
def bench(tmp_path, monkeypatch):
    """A repository with results of two commits (tiled/train twice as slow at head)."""
    root = tmp_path / "repo"
    base, head = d.git_repo(root, 2)
    conf = d.asv_conf(root)
    results = root / "results"
    kernels, problems = ["sdpa", "tiled"], ["seed", "train"]
    d.write_benchmarks(results, kernels, problems)
    d.write_machine(results, d.H100_INFO, d.H100_CEILINGS)
    for commit, slow, ms in ((base, 1.0, 1000), (head, 2.0, 2000)):
        def t(k, p, slow=slow):
            return d.samples({"seed": 6e-6, "train": 4e-4}[p] * (slow if k == "tiled" else 1.0),
                             seed=len(k) + len(p))
        d.write_run(results, d.H100_INFO, commit, ms,
                    {d.TIME: d.row(d.grid_params(kernels, problems),
                                   d.grid_values(kernels, problems, t))})
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(root)
    return {"root": root, "conf": conf, "base": base, "tmp": tmp_path}


def _bench(cli, b, out, *extra):
    return cli("ci", "bench", "--config", str(b["conf"]), "--base", b["base"], "--machine",
               "h100", "--render-only", "--out", str(out), *extra)


def test_ci_bench_out_never_replaces_a_users_file(cli, bench):
    out = bench["tmp"] / "mine"
    out.mkdir()
    for name in ("summary.md", "verdict.json", "asv-continuous.log"):
        (out / name).write_text(f"my {name}")
        before = listing(out)
        one_error(_bench(cli, bench, out), f"{name!r} exists", "attnperf did not write it")
        assert listing(out) == before
        (out / name).unlink()
    # an empty folder of the user's: written, marked; a file of the user's beside stays
    (out / "notes.txt").write_text("mine")
    assert _bench(cli, bench, out).code == 1
    assert (out / "notes.txt").read_text() == "mine" and (out / "verdict.json").is_file()
    # the next job rewrites what it wrote (the marker says what)
    assert _bench(cli, bench, out).code == 1
    marker = json.loads((out / ".attnperf-ci-bench").read_text())
    assert "summary.md" in marker["files"] and "notes.txt" not in marker["files"]


def test_ci_bench_out_follows_no_link(cli, bench):
    outside = bench["tmp"] / "outside.md"
    outside.write_text("precious")
    out = bench["tmp"] / "o"
    out.mkdir()
    (out / "summary.md").symlink_to(outside)
    one_error(_bench(cli, bench, out), "'summary.md' exists (a symbolic link)")
    (out / "summary.md").unlink()
    elsewhere = bench["tmp"] / "elsewhere"
    elsewhere.mkdir()
    (out / "results").symlink_to(elsewhere)
    one_error(_bench(cli, bench, out), "'results'")
    assert outside.read_text() == "precious" and list(elsewhere.iterdir()) == []
    link = bench["tmp"] / "link"
    link.symlink_to(elsewhere)
    one_error(_bench(cli, bench, link), "symbolic link")


@pytest.mark.parametrize("where", [".", "results", "..", "results/h100"])
def test_ci_bench_out_is_never_the_repository_or_the_results(cli, bench, where):
    before = listing(bench["root"])
    one_error(_bench(cli, bench, where), f"--out {where!r}")
    assert listing(bench["root"]) == before


# ----------------------------------------------------- a command's inputs -----
def test_pr_comment_never_replaces_a_result_file(cli, bench):
    results = bench["root"] / "results"
    target = next((results / "h100").glob(f"{bench['base'][:8]}-*.json"))
    before = listing(results)
    one_error(cli("pr-comment", "--results", str(results), "--machine", "h100", "--base",
                  bench["base"], "--head", bench["base"], "-o", str(target)),
              "input of this command")
    assert listing(results) == before


def test_calibrate_never_replaces_its_pool_or_config(cli, tmp_path, monkeypatch):
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    conf = d.asv_conf(root)
    home = tmp_path / "home"
    home.mkdir()
    (home / ".asv-machine.json").write_text(json.dumps({"version": 1, "cpu-ci": d.CPU_INFO}))
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(root)
    pool = d.write_run(tmp_path / "pool", d.CPU_INFO, "a" * 40, 1000, {
        d.TIME: d.row(d.grid_params(["sdpa"], ["seed"]), [d.samples(1e-3)])})
    before = pool.read_bytes(), conf.read_bytes()
    for target in (pool, conf):
        one_error(cli("calibrate", "--runs", "0", "--pool", str(pool), "-o", str(target)),
                  "input of this command")
    assert (pool.read_bytes(), conf.read_bytes()) == before


def test_output_names_longer_than_the_file_system_allows(cli, tmp_path, tiny_run_args):
    long = tmp_path / ("r" * 300 + ".json")
    one_error(cli("run", *tiny_run_args, "-o", str(long)), "this file system allows")
    with pytest.raises(OutputPathError, match="this file system allows"):
        write_json(str(long), {})
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------- init -----
@pytest.fixture
def repo(tmp_path):
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    return root


@pytest.mark.parametrize("force", [False, True])
@pytest.mark.parametrize("dangling", [False, True])
def test_init_never_writes_through_a_link(cli, repo, tmp_path, force, dangling):
    outside = tmp_path / "outside.json"
    if not dangling:
        outside.write_text("precious")
    (repo / "asv.conf.json").symlink_to(outside)
    before = listing(repo)
    one_error(cli("init", str(repo), *(["--force"] if force else [])),
              "does not write through symbolic links")
    assert listing(repo) == before
    assert (outside.read_text() == "precious") if not dangling else not outside.exists()


def test_init_never_writes_through_a_linked_folder(cli, repo, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (repo / ".github").symlink_to(elsewhere)
    one_error(cli("init", str(repo), "--force"), "does not write through symbolic links", ".github")
    assert list(elsewhere.iterdir()) == [] and not (repo / "asv.conf.json").exists()


def test_init_into_a_folder_that_refuses_writes_is_one_error(cli, repo, monkeypatch):
    """An immutable folder (chattr +i) refuses even root with EPERM: one line, no traceback."""
    real_open = os.open

    def immutable(path, flags, *args, **kw):
        if str(path).startswith(str(repo)) and flags & os.O_CREAT:
            raise PermissionError(errno.EPERM, "Operation not permitted", str(path))
        return real_open(path, flags, *args, **kw)
    monkeypatch.setattr(files.os, "open", immutable)
    one_error(cli("init", str(repo)), "cannot write", "Operation not permitted")


# ---------------------------------------------------------------- the lock -----
HOLDER = textwrap.dedent("""
    import sys
    from attnperf.io.files import output_lock
    with output_lock(sys.argv[1]):
        print("held", flush=True)
        sys.stdin.read()
""")


def test_two_writers_of_one_file_the_second_fails(cli, tmp_path, tiny_run_args):
    target = tmp_path / "same.json"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(target)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        res = cli("run", *tiny_run_args, "--kernel", "sdpa", "-o", str(target))
        one_error(res, "another attnperf process", f"(pid {holder.pid})", "is writing it")
        with pytest.raises(OutputPathError, match="another attnperf process"):
            write_json(str(target), {"v": 1})
        assert not target.exists()
    finally:
        holder.communicate("", timeout=60)
    write_json(str(target), {"v": 2})  # free again; the lock file is gone
    assert json.loads(target.read_text()) == {"v": 2} and os.listdir(tmp_path) == ["same.json"]


def test_the_lock_is_reentrant_in_one_process(tmp_path):
    target = tmp_path / "r.json"
    with files.output_lock(target):
        write_json(str(target), {"a": 1})
        write_json(str(target), {"a": 2})
    assert json.loads(target.read_text()) == {"a": 2} and os.listdir(tmp_path) == ["r.json"]


# --------------------------------------------------------------- owned folders -----
def test_owned_dir_stays_inside_and_keeps_user_files(tmp_path):
    root = tmp_path / "out"
    owned = OwnedDir(root, ".mark").open()
    for bad in ("../x", "/etc/passwd", "a/../../x", ""):
        with pytest.raises(OutputPathError, match="not a path inside"):
            owned.write_text(bad, "x")
    (root / "user.txt").write_text("mine")
    with pytest.raises(OutputPathError, match="'user.txt' exists .* attnperf did not write it"):
        owned.write_text("user.txt", "x")
    (root / "sub").symlink_to(tmp_path)
    with pytest.raises(OutputPathError, match="'sub' is a symbolic link"):
        owned.write_text("sub/x.txt", "x")
    owned.write_text("a/b.txt", "one")
    again = OwnedDir(root, ".mark").open()
    assert again.owned and again.mine("a/b.txt") and not again.mine("user.txt")
    again.write_text("a/b.txt", "two")
    assert (root / "a" / "b.txt").read_text() == "two" and (root / "user.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_site_build_keeps_the_users_files(cli, tmp_path):
    hist = d.history(tmp_path / "proj", 2, machines=("cpu",))
    out = tmp_path / "site"

    def build():
        return cli("site", "build", "--config", str(hist["conf"]), "--no-asv", "--out", str(out))
    assert build().code == 0
    (out / "CNAME").write_text("perf.example.org")
    (out / "extra").mkdir()
    (out / "extra" / "notes.html").write_text("mine")
    r = build()
    assert r.code == 0 and "kept 2 file(s) attnperf did not write" in r.err
    assert (out / "CNAME").read_text() == "perf.example.org"
    assert (out / "extra" / "notes.html").read_text() == "mine"
    marker = json.loads((out / publish_mod.SITE_MARKER).read_text())
    assert "attnperf/index.html" in marker["files"] and "CNAME" not in marker["files"]
    # a user's file where the new site writes one: refused, the previous site left as it was
    os.remove(out / "attnperf" / "style.css")
    marker["files"].remove("attnperf/style.css")
    (out / publish_mod.SITE_MARKER).write_text(json.dumps(marker))
    (out / "attnperf" / "style.css").write_text("my style")
    before = listing(out)
    one_error(build(), "'attnperf/style.css' is a file attnperf did not write")
    assert listing(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "site"]


def test_site_build_over_a_site_without_a_file_list_keeps_what_it_does_not_write(cli, tmp_path):
    """A site an older attnperf built (a marker without the list): nothing in it is lost."""
    hist = d.history(tmp_path / "proj", 2, machines=("cpu",))
    out = tmp_path / "site"
    out.mkdir()
    (out / publish_mod.SITE_MARKER).write_text("built by `attnperf site build`\n")
    (out / "index.html").write_text("old index")
    (out / "mine.txt").write_text("mine")
    r = cli("site", "build", "--config", str(hist["conf"]), "--no-asv", "--out", str(out))
    assert r.code == 0, r.err
    assert (out / "mine.txt").read_text() == "mine" and (
        out / "index.html"
    ).read_text() != "old index"


@pytest.mark.parametrize("argv", [
    ["site", "build", "--no-asv", "--out", "{long}"],
    ["asv", "fetch-assets", "{long}"],
    ["init", "{long}"],
    ["ci", "bench", "--base", "HEAD", "--machine", "m", "--render-only", "--out", "{long}"],
    ["compare", "a.json", "--baseline", "b.json", "-o", "{long}"],
])
def test_names_longer_than_the_file_system_allows_are_one_line(cli, tmp_path, monkeypatch, argv):
    root = tmp_path / "repo"
    d.git_repo(root, 1)
    d.asv_conf(root)
    monkeypatch.chdir(root)
    for name in ("a.json", "b.json"):
        (root / name).write_text("{}")
    before = listing(tmp_path)
    res = cli(*[a.format(long="x" * 300) for a in argv])
    assert res.code == 2 and len(res.err_lines) == 1 and res.err.startswith("error: "), res.err
    assert "Traceback" not in res.err and ("too long" in res.err or "allows 255" in res.err)
    assert listing(tmp_path) == before


def test_a_job_that_cannot_start_writes_no_summary_into_a_users_folder(cli, tmp_path, monkeypatch):
    """`ci bench --out .` with an unreadable config: exit 3, and nothing written into `.`."""
    (tmp_path / "notes.md").write_text("mine")
    monkeypatch.chdir(tmp_path)
    for var in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(var, raising=False)
    res = cli("ci", "bench", "--base", "x", "--machine", "m", "--config", "nope.json", "--out", ".")
    assert res.code == 2 and "does not exist" in res.err  # an input error, not the harness
    assert os.listdir(tmp_path) == ["notes.md"]
    res = cli(
        "ci", "bench", "--base", "x", "--machine", "m", "--config", "nope.json", "--out", "new"
    )
    assert res.code == 2 and (tmp_path / "new" / "summary.md").is_file()
