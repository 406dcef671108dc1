"""Helpers of the boundary tests (tests/test_doors_*.py): a guard against a call that blocks
on a FIFO, the one-line-error check, a tree listing to prove nothing was written, and the
check that a name `attnperf init` wrote stayed plain text (:func:`check_rendered`)."""

from __future__ import annotations

import ast
import json
import os
import threading
from collections.abc import Callable
from pathlib import Path

import yaml

from attnperf import scaffold
from attnperf.io.asv_results import read_asv_conf


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


# ------------------------------------------------- names written by init -----
def _files(project) -> dict:
    return scaffold.render(project)


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_PLAIN: dict = {}


def _parsed(project, written: Path | None = None):
    """The files init writes for ``project``, parsed: rendered, or as ``attnperf init``
    wrote them into the repository ``written``."""
    if written is None:
        out = _files(project)
        conf_path = Path(project.root) / "asv.conf.json"
        conf_path.write_text(out["asv.conf.json"])
    else:
        out = {rel: (written / rel).read_text() for rel in scaffold.FILES}
        conf_path = written / "asv.conf.json"
    parsed = {"conf": _asv_conf(conf_path, out["asv.conf.json"]),
              "suite": ast.parse(out["benchmarks/bench_attention.py"]),
              "main": yaml.load(out[".github/workflows/main.yml"], Loader=_LOADER)}
    for name in ("pr", "pr-comment"):  # no name goes there: parsed when the text differs
        text = out[f".github/workflows/{name}.yml"]
        same = _PLAIN.get(name) is not None and _PLAIN[name][0] == text
        parsed[name] = _PLAIN[name][1] if same else yaml.load(text, Loader=_LOADER)
        _PLAIN.setdefault(name, (text, parsed[name]))
    return parsed


# JSON5's line terminators: a comment ends at any of them (asv reads asv.conf.json as JSON5).
_LINE_ENDS = ("\r", "\u2028", "\u2029")


def _asv_conf(path: Path, text: str) -> dict:
    """asv.conf.json as asv reads it (JSON5), quickly: when every comment is a whole line
    holding no other line terminator, JSON5 reads exactly the JSON left without those lines;
    any other file goes to the JSON5 reader itself."""
    lines = text.split("\n")
    kept = [line for line in lines if not line.lstrip().startswith("//")]
    if not any(ch in line for line in lines for ch in _LINE_ENDS):
        try:
            return json.loads("\n".join(kept))
        except ValueError:
            pass
    return read_asv_conf(str(path))


def _strip_docstring(tree: ast.Module) -> str:
    body = tree.body[1:] if ast.get_docstring(tree) is not None else tree.body
    return ast.dump(ast.Module(body=body, type_ignores=[]))


P_NAME, P_BRANCH, P_URL = "zzprojectzz", "zzbranchzz", "https://zzurlzz.example/p"
_PLAIN_PARSED: dict = {}


def _same_shape(plain, odd, sub) -> None:
    """``odd`` is ``plain`` with every string passed through ``sub``: no key, item or value
    more or less (nothing a name could inject)."""
    if isinstance(plain, dict):
        assert isinstance(odd, dict) and [sub(k) if isinstance(k, str) else k for k in plain] \
            == list(odd), (list(plain), list(odd))
        for k, v in plain.items():
            _same_shape(v, odd[sub(k) if isinstance(k, str) else k], sub)
    elif isinstance(plain, list):
        assert isinstance(odd, list) and len(odd) == len(plain)
        for x, y in zip(plain, odd, strict=True):
            _same_shape(x, y, sub)
    elif isinstance(plain, str):
        assert odd == sub(plain), (plain, odd)
    else:
        assert odd == plain


def check_rendered(root: Path, name: str, branch: str, url: str,
                   written: Path | None = None) -> None:
    """``name``/``branch``/``url`` written by init read back as themselves, and every file
    has exactly the structure of a plain project's: nothing injected became code, YAML
    or JSON.  ``root``: a scratch folder; ``written``: check the files ``attnperf init``
    wrote into that repository instead of rendering them."""
    key = (str(root), bool(url))
    if key not in _PLAIN_PARSED:
        _PLAIN_PARSED[key] = _parsed(scaffold.Project(root=root, name=P_NAME, branch=P_BRANCH,
                                                      url=P_URL if url else ""))
    a = _PLAIN_PARSED[key]
    b = _parsed(scaffold.Project(root=root, name=name, branch=branch, url=url), written)

    def sub(text: str) -> str:
        return text.replace(P_URL, url).replace(P_NAME, name).replace(P_BRANCH, branch)
    _same_shape(a["conf"], b["conf"], sub)
    assert b["conf"]["project"] == name and b["conf"]["branches"] == [branch]
    if url:
        assert b["conf"]["project_url"] == url and b["conf"]["show_commit_url"] == url + "/commit/"
    assert ast.get_docstring(b["suite"], clean=False).startswith(
        f"asv suite of {name}: attention kernels")
    if "suite_dump" not in a:
        a["suite_dump"] = _strip_docstring(a["suite"])
    assert _strip_docstring(b["suite"]) == a["suite_dump"]
    _same_shape(a["main"], b["main"], sub)
    assert b["main"][True]["push"]["branches"] == [branch]  # YAML 1.1 reads `on` as True
    assert b["main"]["jobs"]["bench"]["if"] == f"github.ref == 'refs/heads/{branch}'"
    assert b["pr"] == a["pr"] and b["pr-comment"] == a["pr-comment"]
