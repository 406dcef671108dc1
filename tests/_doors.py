"""Helpers of the boundary tests (tests/test_doors_*.py): a guard against a call that blocks
on a FIFO, the one-line-error check, and a tree listing to prove nothing was written."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path


def one_error(res, *needles: str) -> None:
    """``res`` (the ``cli`` fixture's result) is exit 2 with exactly one ``error:`` line
    holding every needle, and no traceback."""
    assert res.code == 2, (res.code, res.err)
    assert len(res.err_lines) == 1 and res.err_lines[0].startswith("error: "), res.err
    assert "Traceback" not in res.err
    for needle in needles:
        assert needle in res.err, (needle, res.err)


def returns_without_blocking(fn: Callable[[], object], fifos=(), seconds: float = 30.0):
    """Run ``fn`` in a thread; fail (and unblock it by opening ``fifos`` for writing) if it
    has not returned within ``seconds``.  Returns fn's result or re-raises its exception."""
    box: dict[str, object] = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            box["error"] = exc

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        for fifo in fifos:  # release a reader stuck in open()
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:
                pass
        t.join(5)
        raise AssertionError(f"{fn} blocked for {seconds} s (on a FIFO?)")
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box.get("value")


def listing(folder: Path) -> dict[str, bytes | None]:
    """Every entry under ``folder``: file contents, link targets, None for folders."""
    out: dict[str, bytes | None] = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        if p.is_symlink():
            out[rel] = b"-> " + os.readlink(p).encode()
        elif p.is_file():
            out[rel] = p.read_bytes()
        else:
            out[rel] = None
    return out
