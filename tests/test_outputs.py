"""Outputs never replace what they should not: io.jsonfile.check_writable /
write_json / write_text, and the CLI commands that write files (run, compare, pr-comment).

Each refusal is one ``error:`` line, exit 2, and the file (or link, device, FIFO) as it was.
"""

import json
import os
from pathlib import Path

import pytest

from attnperf.errors import OutputPathError
from attnperf.io.jsonfile import check_writable, write_json, write_text

SEED_REPORT = {"kernel_name": "k", "config": {"batch_size": 1, "num_heads": 1, "seq_len": 8,
                                               "head_dim": 8},
               "performance": {"mean_time_ms": 1.0}}


def _report(path: Path) -> Path:
    path.write_text(json.dumps([SEED_REPORT]))
    return path


def _refused(res, what: str):
    assert res.code == 2, res.err
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("error: "), res.err
    assert what in res.err, res.err


def test_symlink_is_refused_and_kept(tmp_path, cli):
    target = _report(tmp_path / "target.json")
    link = tmp_path / "link.json"
    link.symlink_to(target)
    cur = _report(tmp_path / "cur.json")
    res = cli("compare", cur, "--baseline", cur, "--output", link, "--format", "json")
    _refused(res, "symbolic link")
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert json.loads(target.read_text()) == [SEED_REPORT]


@pytest.mark.parametrize("kind", ["dev-null", "fifo"])
def test_device_or_fifo_is_refused(tmp_path, cli, kind):
    if kind == "fifo":
        out = tmp_path / "pipe"
        os.mkfifo(out)
    else:
        out = Path("/dev/null")
    cur = _report(tmp_path / "cur.json")
    res = cli("compare", cur, "--baseline", cur, "-o", out)
    _refused(res, "not a regular file")
    assert out.exists() and not out.is_file()  # still the device / FIFO


@pytest.mark.parametrize("which", ["current", "baseline"])
def test_compare_never_overwrites_its_input(tmp_path, cli, which):
    cur = _report(tmp_path / "cur.json")
    base = _report(tmp_path / "base.json")
    out = cur if which == "current" else base
    before = out.read_text()
    res = cli("compare", cur, "--baseline", base, "-o", out)
    _refused(res, "input of this command")
    assert out.read_text() == before
    # the same file by another spelling
    res = cli("compare", cur, "--baseline", base, "-o", tmp_path / "." / out.name)
    _refused(res, "input of this command")


@pytest.mark.parametrize("spelling", ["slash", "existing-dir"])
def test_directory_outputs_are_refused(tmp_path, cli, spelling):
    cur = _report(tmp_path / "cur.json")
    target = tmp_path / "out"
    if spelling == "existing-dir":
        target.mkdir()
        arg = str(target)
    else:
        arg = str(target) + "/"
    res = cli("compare", cur, "--baseline", cur, "-o", arg)
    _refused(res, "is a directory" if spelling == "existing-dir" else "names a directory")
    assert not target.is_file()


def test_run_that_measured_nothing_keeps_the_existing_report(tmp_path, cli, tiny_run_args):
    out = tmp_path / "r.json"
    out.write_text('{"good": "report"}\n')
    res = cli("run", *tiny_run_args, "--kernel", "sdpa_efficient,sdpa_cudnn", "--output", out)
    assert res.code == 2 and "nothing was measured" in res.err and str(out) in res.err
    assert [line for line in res.err_lines if line.startswith("error:")] == [res.err_lines[-1]]
    assert out.read_text() == '{"good": "report"}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


def test_pr_comment_output_is_checked_too(tmp_path, cli):
    link = tmp_path / "c.md"
    link.symlink_to(tmp_path / "elsewhere.md")
    res = cli("pr-comment", "--results", tmp_path, "--machine", "m", "--base", "a" * 8,
              "--head", "b" * 8, "-o", link)
    _refused(res, "symbolic link")


def test_library_writers(tmp_path):
    write_json(str(tmp_path / "a.json"), {"x": float("nan")})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": None}
    with pytest.raises(OutputPathError, match="input of this command"):
        write_text(str(tmp_path / "a.json"), "x", inputs=[str(tmp_path / "a.json")])
    with pytest.raises(OutputPathError, match="names a directory"):
        check_writable(str(tmp_path / "new") + os.sep)
    assert (tmp_path / "a.json").read_text().startswith("{")
