"""What attnperf ships speaks to its users, not about how it was built.

Code, docstrings, help text, tests, tools, docs and every file ``attnperf init`` generates are
read by attnperf's users.  None of them may point at notes outside the repository, at the project
attnperf grew from, at issue numbers of its tracker or at the work sessions that built it: a
reader cannot follow any of those.  Dated measurements belong on the docs' evidence page.

Not builders' words, and allowed: the problem presets ``seed`` / ``cpu_seed`` and ``--sweep
seed-train`` (history keys), a random seed (seeded inputs, a forward id keying it), the legacy
report format's schema file name (``seed-report.schema.json``), upstream references such as
``asv#966``, and attnperf's measuring ``Session``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# Where product text lives: the package (with the templates `attnperf init` renders), the tests,
# the docs, developer tools, CI and the files at the root that init generates or a user reads.
AREAS = sorted(
    str(p.relative_to(REPO))
    for p in (REPO / "src" / "attnperf").iterdir()
    if p.name != "__pycache__"
) + [
    "tests",
    "docs",
    "tools",
    "benchmarks",
    ".github",
    ".ci",
    "README.md",
    "pyproject.toml",
    "Makefile",
    "asv.conf.json",
]
SELF = Path(__file__).resolve()
BINARY = {".png", ".jpg", ".gif", ".ico", ".woff", ".woff2", ".pyc", ".gz", ".tgz", ".whl"}

_RNG_VERB = "".join(
    f"(?<!{verb} )" for verb in ("keys", "set", "sets", "fix", "fixes", "pass", "passes")
)
BANNED = {
    "a path outside the repository": r"\.\./shared\b",
    "the builders' notes": r"\bFACTS\.md\b",
    "the project attnperf grew from": _RNG_VERB + r"\b[Tt]he seed\b(?![-_=`])|\bseed's\b"
                                      r"|\b[Ss]eed (?:report|JSON|file)s?\b",
    "an issue number": r"\b[Ii]ssues? #?\d+",
    "a numbered work session": r"\b[Ss]ession[ _-]?\d+",
    "the work that built it": r"\b[Ww]ork sessions?\b|\b[Dd]one-when\b",
}
PATTERN = re.compile("|".join(f"(?P<g{i}>{rx})" for i, rx in enumerate(BANNED.values())))
LABELS = list(BANNED)


def hits(text: str) -> list:
    """(line number, what it names, the line) for every builders' word in ``text``."""
    return [(n, LABELS[int(m.lastgroup[1:])], line.strip())
            for n, line in enumerate(text.splitlines(), 1) for m in PATTERN.finditer(line)]


def _files(area: str):
    root = REPO / area
    paths = [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.is_file())
    for path in paths:
        parts = set(path.relative_to(REPO).parts)
        if path == SELF or "__pycache__" in parts or any(p.endswith(".egg-info") for p in parts) \
                or path.suffix in BINARY:
            continue
        try:
            yield path, path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue


@pytest.mark.parametrize("area", [a for a in AREAS if (REPO / a).exists()])
def test_no_builders_vocabulary(area):
    found = [f"{path.relative_to(REPO)}:{n}: {label}: {line[:120]}"
             for path, text in _files(area) for n, label, line in hits(text)]
    assert found == [], "\n".join(found)


# The origin's name, built from parts as the examples below are.
SEED = "se" + "ed"
THE = "the " + SEED
ISSUE, SESSION = "iss" + "ue", "ses" + "sion"


@pytest.mark.parametrize(
    "text",
    [
        # built from parts so that this file does not itself carry the phrase it must catch
        "measured before (" + "../" + "shared/" + "FACTS" + ".md, 'Power state')",
        "see " + "FACTS" + ".md",
        THE + "'s integrated_test.py",
        "(T" + THE[1:] + " also said SLIGHT IMPROVEMENT)",
        THE + " shape and a large training shape",
        "not a " + SEED + " report",
        THE + " JSON says 32.0",
        "read " + SEED + " files too",
        ISSUE + " 12, item 7",
        "(" + ISSUE + " 12 #9)",
        ISSUE + "s 8 and 11",
        "I" + ISSUE[1:] + " 9: an A/A",
        "bash tools/gpu/" + SESSION + "10.sh",
        "Device call of " + SESSION + " 5",
        "the " + SESSION + "-10 A/A sets",
        "notes of a " + "work " + "session",
        "every " + "done" + "-when line",
    ],
)
def test_builders_words_are_caught(text):
    assert hits(text), text


@pytest.mark.parametrize(
    "text",
    [
        "--sweep seed-train",
        "PRESETS['seed']",
        "problems: seed, decode, gqa",
        "cpu_seed and cpu_causal",
        "Generator().manual_seed(0)",
        "seed=0",
        "def _run(b, seed=0):",
        "the random seed",
        "the forward id keys " + THE,  # a random seed
        "fresh seeded random inputs",
        "the `seed` preset's shape",
        "io/schemas/seed-report.schema.json",
        "asv#966",
        "triton-lang/triton#11584",
        "measure.session.Session",
        "one measuring session per run",
        "the issue tracker",
    ],
)
def test_real_concepts_are_left_alone(text):
    assert hits(text) == [], text
