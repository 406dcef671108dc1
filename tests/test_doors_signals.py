"""Interruptions: a run that had measured everything keeps its complete report and table
whatever signal arrives while it finishes; Ctrl-C while the commands load is one line; the
asv processes attnperf starts are killed with everything they started."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from attnperf.asv import runner
from attnperf.measure.session import Session


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_after_the_last_config_keeps_the_complete_report(cli, tmp_path, tiny_run_args,
                                                                  monkeypatch, sig):
    real_close = Session.close

    def close_then_signal(self):  # the signal lands as the run wraps up
        os.kill(os.getpid(), sig)
        return real_close(self)
    monkeypatch.setattr(Session, "close", close_then_signal)
    out = tmp_path / "r.json"
    res = cli("run", *tiny_run_args, "--kernel", "sdpa", "-o", out)
    assert res.code == 0, res.err
    report = json.loads(out.read_text())
    assert report["interrupted"] is False and report["not_run"] == []
    assert "sdpa" in res.out  # the table
    assert f"note: {sig.name} arrived after the last config" in res.err
    assert "error:" not in res.err


def test_ctrl_c_while_the_commands_load_is_one_line():
    """A KeyboardInterrupt raised while `attnperf.cli` imports its commands (as Ctrl-C during
    the seconds `import torch` takes): exit 130, one line, no traceback."""
    code = textwrap.dedent("""
        import sys
        class Interrupt:
            def find_spec(self, name, path=None, target=None):
                if name == "attnperf.cli.run":
                    raise KeyboardInterrupt
        sys.meta_path.insert(0, Interrupt())
        from attnperf.cli import main
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 130 and proc.stderr == "error: interrupted\n", proc.stderr


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by init) counts as gone
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def _gone(pid: int) -> bool:
    for _ in range(200):
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def test_asv_timeout_kills_what_asv_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    cmd = ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; echo started; wait"]
    code = runner.tee(cmd, tmp_path, dict(os.environ), None, tmp_path / "log", timeout=2)
    assert code == 124
    assert _gone(int(pid_file.read_text())), "asv's child outlived the timeout"
    assert "killed after 2 s" in (tmp_path / "log").read_text()


def test_an_interrupted_asv_run_leaves_no_process(tmp_path):
    pid_file = tmp_path / "child.pid"
    cmd = ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; echo started; wait"]

    class Stream:
        def write(self, line):  # Ctrl-C while asv's output is being copied
            raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        runner.tee(cmd, tmp_path, dict(os.environ), Stream(), None)
    assert _gone(int(pid_file.read_text()))
