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
import threading

import pytest

from attnperf.errors import OutputPathError
from attnperf.io import files
from attnperf.io.folders import OwnedDir
from attnperf.io.jsonfile import write_json
from attnperf.site import publish as publish_mod
from support import asvdata as d
from support.doors import listing, one_error, returns_without_blocking


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


# ------------------------------------------------------------ appended logs -----
def _victim(tmp_path):
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("the user's\n")
    return victim


def test_asv_output_is_appended_to_a_regular_log_only(tmp_path):
    from attnperf.asv import runner

    cmd = [sys.executable, "-c", "print('from asv')"]
    log = tmp_path / "asv-continuous.log"
    log.write_text("before\n")
    assert runner.tee(cmd, tmp_path, dict(os.environ), None, log) == 0
    assert log.read_text().startswith("before\n$ ") and log.read_text().endswith("from asv\n")
    victim = _victim(tmp_path)
    link = tmp_path / "linked.log"
    link.symlink_to(victim)
    fifo = tmp_path / "fifo.log"
    os.mkfifo(fifo)
    (tmp_path / "folder.log").mkdir()
    for path, why in ((link, "symbolic link"), (fifo, "FIFO"),
                      (tmp_path / "folder.log", "directory")):
        with pytest.raises(OutputPathError, match=why):
            returns_without_blocking(lambda p=path: runner.tee(cmd, tmp_path, dict(os.environ),
                                                                None, p), [fifo], seconds=10)
    assert victim.read_text() == "the user's\n"


def test_a_link_swapped_in_after_the_check_is_not_followed(tmp_path, monkeypatch):
    victim = _victim(tmp_path)
    log = tmp_path / "asv.log"
    monkeypatch.setattr(files, "check_appendable", lambda p: log.symlink_to(victim))
    with pytest.raises(OutputPathError, match="symbolic link"):
        files.append_text(log, "x\n")
    assert victim.read_text() == "the user's\n"


def test_appenders_wait_for_each_other_and_leave_no_lock_file(tmp_path):
    """Two appenders of one log: the second waits for the first to close (its lines stay
    together), neither is refused, nothing is lost, and nothing but the log is made beside it
    (a log in a folder the user cannot write stays usable)."""
    log = tmp_path / "steps.md"
    second = threading.Thread(target=files.append_text, args=(log, "second\n"))
    with files.append_stream(log) as first:
        first.write("first, ")
        second.start()
        second.join(0.5)
        assert second.is_alive()  # waiting on the first appender's lock
        first.write("still first\n")
    second.join(10)
    assert not second.is_alive()
    assert log.read_text() == "first, still first\nsecond\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["steps.md"]


def test_github_files_are_appended_through_no_link(tmp_path, monkeypatch):
    from attnperf.ci import github

    victim = _victim(tmp_path)
    summary = tmp_path / "step-summary.md"
    summary.symlink_to(victim)
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.delenv("GITHUB_OUTPUT", raising=False)
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    with pytest.raises(OutputPathError, match="symbolic link"):
        github.publish(0, "fine", "h100", "the summary")
    assert victim.read_text() == "the user's\n"
    summary.unlink()
    github.publish(0, "fine", "h100", "the summary")
    github.publish(0, "fine", "h100", "again")
    assert summary.read_text() == "the summary\nagain\n"


def test_shared_ceilings_never_open_a_fifo(tmp_path):
    from attnperf.ci import folders
    from attnperf.errors import BenchJobError
    from attnperf.io.ceilings import FILE_NAME

    (tmp_path / "results" / "h100").mkdir(parents=True)
    (tmp_path / "results" / "h100" / FILE_NAME).write_text("{}")
    (tmp_path / "job" / "h100").mkdir(parents=True)
    fifo = tmp_path / "job" / "h100" / FILE_NAME
    os.mkfifo(fifo)
    with pytest.raises(BenchJobError, match="not a regular file"):
        returns_without_blocking(lambda: folders.share_ceilings(
            tmp_path / "results", tmp_path / "job", "h100"), [fifo], seconds=10)


# ------------------------------------------------------- asv fetch-assets DIR -----
@pytest.fixture
def fake_npm(tmp_path, monkeypatch):
    """An npm whose `npm pack` hands over one small package, pinned as the only asset."""
    import base64
    import hashlib
    import io
    import tarfile

    from attnperf.site import fetch_assets
    from attnperf.site.assets import Asset

    tgz = tmp_path / "npm" / "pkg-1.0.0.tgz"
    tgz.parent.mkdir()
    with tarfile.open(tgz, "w:gz") as tar:
        data = b"window.pkg = 1;\n"
        info = tarfile.TarInfo("package/dist/pkg.js")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tgz.read_bytes()).digest()).decode()
    calls = tmp_path / "npm" / "calls"
    npm = tmp_path / "npm" / "npm"
    npm.write_text(f"#!/bin/sh\necho \"$2\" >> '{calls}'\ncp '{tgz}' \"$5/{tgz.name}\"\n"
                   f"echo '[{{\"filename\": \"{tgz.name}\"}}]'\n")
    npm.chmod(0o755)
    monkeypatch.setattr(fetch_assets.shutil, "which", lambda name: str(npm))
    monkeypatch.setattr(fetch_assets, "ASSETS", (
        Asset("https://cdn.example/pkg.js", "pkg@1.0.0", integrity, "dist/pkg.js", "pkg.js"),))
    return calls


def test_fetch_assets_writes_through_no_link_and_keeps_the_users_files(cli, tmp_path, fake_npm):
    victim = _victim(tmp_path)
    dest = tmp_path / "www"
    dest.mkdir()
    (dest / "pkg.js").symlink_to(victim)
    before = listing(dest)
    one_error(cli("asv", "fetch-assets", dest), "'pkg.js' exists (a symbolic link)",
              "attnperf did not write it")
    assert victim.read_text() == "the user's\n" and listing(dest) == before
    assert not fake_npm.exists()  # refused before anything was fetched
    (dest / "pkg.js").unlink()
    (dest / "pkg.js").write_text("my own pkg.js")
    one_error(cli("asv", "fetch-assets", dest), "'pkg.js' exists (a file)")
    assert (dest / "pkg.js").read_text() == "my own pkg.js"


def test_fetch_assets_rewrites_what_it_wrote(cli, tmp_path, fake_npm):
    dest = tmp_path / "www"
    res = cli("asv", "fetch-assets", dest)
    assert res.code == 0 and res.out.strip() == f"fetched 1 asv web assets into {dest}", res.err
    assert (dest / "pkg.js").read_text() == "window.pkg = 1;\n"
    assert json.loads((dest / "manifest.json").read_text())["files"] == {
        "https://cdn.example/pkg.js": "pkg.js"}
    (dest / "pkg.js").unlink()  # one asset missing: fetched again over attnperf's own files
    res = cli("asv", "fetch-assets", dest)
    assert res.code == 0 and (dest / "pkg.js").is_file(), res.err
    assert fake_npm.read_text().split() == ["pkg@1.0.0", "pkg@1.0.0"]


def test_asv_config_copies_are_written_through_no_link(tmp_path):
    from types import SimpleNamespace

    from attnperf.asv import runner

    victim = _victim(tmp_path)
    dest = tmp_path / "conf"
    dest.mkdir()
    (dest / "asv.conf.json").symlink_to(victim)
    project = SimpleNamespace(conf={"version": 1}, conf_dir=tmp_path)
    with pytest.raises(OutputPathError, match="symbolic link"):
        runner.derived_config(project, tmp_path / "results", dest)  # type: ignore[arg-type]
    assert victim.read_text() == "the user's\n"
