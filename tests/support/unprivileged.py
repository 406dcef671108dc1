"""Run a check as an unprivileged user, so permission tests mean something under root.

CI runs as root, and root writes through any mode bits: a chmod 0500 directory
only stops an ordinary user.  :func:`call_unprivileged` runs a function in a forked
child that, when the parent is root, first drops to ``nobody`` (groups cleared,
then gid, then uid); as any other user it runs as that user.  A fork, not a new
interpreter: this Python may live where ``nobody`` cannot execute it.  The
directories live in a fresh ``/tmp`` folder every user can traverse (pytest's own
tmp folders are 0700, root's).
"""

from __future__ import annotations

import os
import pwd
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def protected_tree() -> Iterator[Path]:
    """``root/ro`` (0555: no one but root may write in it) and ``root/rw/locked.json`` (an
    existing 0444 file in a 0777 directory), with ``root`` traversable by every user."""
    root = Path(tempfile.mkdtemp(prefix="attnperf-perm-"))
    try:
        root.chmod(0o755)
        (root / "ro").mkdir()
        (root / "ro").chmod(0o555)
        (root / "rw").mkdir()
        (root / "rw").chmod(0o777)
        (root / "rw" / "locked.json").write_text("{}\n")
        (root / "rw" / "locked.json").chmod(0o444)
        yield root
    finally:
        (root / "ro").chmod(0o755)
        shutil.rmtree(root, ignore_errors=True)


def _drop_privileges() -> None:
    if os.geteuid() == 0:
        nobody = pwd.getpwnam("nobody")
        os.setgroups([])
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)
        assert os.geteuid() == nobody.pw_uid and os.getegid() == nobody.pw_gid


def call_unprivileged(fn: Callable[..., int], *args) -> tuple[int, str, str]:
    """``fn(*args)`` in a forked child without root; returns (its int result, stdout, stderr)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # child: never returns into pytest
            code = 70
            try:
                sys.stdout, sys.stderr = out, err
                _drop_privileges()
                code = int(fn(*args))
            except BaseException:  # noqa: BLE001 - report anything to the parent
                traceback.print_exc(file=err)
            finally:
                out.flush()
                err.flush()
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return os.waitstatus_to_exitcode(status), out.read(), err.read()
