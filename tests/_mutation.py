"""Mutation testing of the code that decides verdicts and numbers.

    python tests/_mutation.py          # the CI scope (`make mutation`, run by .ci/run)
    python tests/_mutation.py --full   # every function of the scoped modules (nightly)

Runs mutmut (configured in pyproject.toml ``[tool.mutmut]``: which files, which
tests) on the functions below, then prints the mutation score, the counts and
every surviving mutant with its diff.  A mutant that only rewords a message
(the change lies inside a string literal holding a space) is listed but not
scored: wording is not a verdict or a number.  Survivors listed in
``tests/mutation_equivalents.md`` (by function and mutated line, so renumbering
does not lose them) are equivalent mutants: no test can tell them apart from the
original, and each entry says why.  Exit status 1 when the score is under
``MIN_SCORE`` or a mutant has no test at all.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MUTMUT = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or "mutmut"
EQUIVALENTS = REPO / "tests" / "mutation_equivalents.md"
MIN_SCORE = 90.0

# The functions that turn measurements into numbers and verdicts.  CI runs these;
# --full adds everything else in the same modules (messages, plumbing, advice text).
CI_SCOPE = [
    # roofline: FLOPs, bytes, floors, regime, the roofline figures, the ceiling choice
    "attnperf.model.roofline.x_causal_pairs__mutmut_*",
    "attnperf.model.roofline.x_attention_pairs__mutmut_*",
    "attnperf.model.roofline.x_flops__mutmut_*",
    "attnperf.model.roofline.x_bytes_moved__mutmut_*",
    "attnperf.model.roofline.x_arithmetic_intensity__mutmut_*",
    "attnperf.model.roofline.x_floors__mutmut_*",
    "attnperf.model.roofline.x_classify__mutmut_*",
    "attnperf.model.roofline.x_analyze__mutmut_*",
    "attnperf.model.roofline.x_ceiling_for__mutmut_*",
    # correctness: the pass rule
    "attnperf.measure.correctness.x_compare__mutmut_*",
    # attnperf compare: times, the threshold, status regressions
    "attnperf.analysis.compare.x__time__mutmut_*",
    "attnperf.analysis.compare.x__pick_times__mutmut_*",
    "attnperf.analysis.compare.x_compare_one__mutmut_*",
    # A/B statistics of two asv runs and the exit policy
    "attnperf.analysis.ab.x_significance__mutmut_*",
    "attnperf.analysis.ab.x__classify__mutmut_*",
    "attnperf.analysis.ab.x_decide__mutmut_*",
    # the asv suite's metric functions
    "attnperf.asv.suite.x_entry__mutmut_*",
    "attnperf.asv.suite.x_entry_for__mutmut_*",
    "attnperf.asv.suite.x_samples__mutmut_*",
    "benchmarks.bench_attention.xǁTimeAttentionǁ*__mutmut_*",
    # report writing
    "attnperf.io.report.x_result_entry__mutmut_*",
    "attnperf.io.report.x_summarize__mutmut_*",
]
FULL_SCOPE = [
    "attnperf.model.roofline.*", "attnperf.measure.correctness.*", "attnperf.analysis.compare.*",
    "attnperf.analysis.ab.*", "attnperf.asv.suite.*", "attnperf.io.report.*",
    "benchmarks.bench_attention.*",
]

KILLED = {1, 3}                     # a test failed (3: pytest internal error)
TIMEOUT = {24, -24, 152, 255, 36}   # the tests ran past mutmut's limit: counted as killed
SKIPPED = {34}
NO_TESTS = {5, 33}


def function_of(mutant: str) -> str:
    return mutant.rpartition("__mutmut_")[0]


def load_equivalents() -> set:
    """``(function, mutated line)`` pairs from tests/mutation_equivalents.md table rows:
    ``| `function` | `mutated line` | reason |`` (a ``\\|`` in the line reads as ``|``)."""
    out = set()
    for line in EQUIVALENTS.read_text().splitlines():
        m = re.match(r"^\|\s*`([^`]+)`\s*\|\s*`(.+?)`\s*\|", line)
        if m:
            out.add((m.group(1), m.group(2).strip().replace("\\|", "|")))
    return out


def results(scope) -> dict:
    """mutant name -> mutmut exit code, for the mutants in ``scope``."""
    out = {}
    for meta in (REPO / "mutants").rglob("*.meta"):
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if any(fnmatch.fnmatchcase(name, g) for g in scope):
                out[name] = code
    return out


def diff_of(mutant: str) -> tuple:
    """(the mutated line(s), the diff) of one mutant, from mutmut's own diff code (in
    process: a `mutmut show` per survivor costs an interpreter start each)."""
    from mutmut.__main__ import find_mutant, get_diff_for_mutant

    text = get_diff_for_mutant(mutant, path=find_mutant(mutant).path)
    plus = [ln[1:].strip() for ln in text.splitlines()
            if ln.startswith("+") and not ln.startswith("+++")]
    minus = [ln[1:].strip() for ln in text.splitlines()
             if ln.startswith("-") and not ln.startswith("---")]
    return " / ".join(plus), text, minus, plus


def _unquote(line: str) -> str:
    return re.sub(r'"[^"]*"' + "|'[^']*'", '""', line)


def wording_only(minus, plus) -> bool:
    """True when a mutant only rewords a human-readable message: the lines differ only
    inside string literals, and every changed literal is prose (it holds a space).
    Keys, statuses and other one-word strings stay scored."""
    if len(minus) != len(plus) or not minus:
        return False
    for a, b in zip(minus, plus, strict=False):
        if _unquote(a) != _unquote(b):
            return False
        la = re.findall(r'"([^"]*)"' + "|'([^']*)'", a)
        lb = re.findall(r'"([^"]*)"' + "|'([^']*)'", b)
        for x, y in zip(la, lb, strict=False):
            x, y = "".join(x), "".join(y)
            if x != y and " " not in x.strip():
                return False
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="every function of the scoped modules")
    ap.add_argument("--report-only", action="store_true", help="read the last run's results")
    args = ap.parse_args(argv)
    scope = FULL_SCOPE if args.full else CI_SCOPE
    if not args.report_only:
        shutil.rmtree(REPO / "mutants", ignore_errors=True)  # never judge stale mutants
        start = time.monotonic()
        log = REPO / "mutants-run.log"
        with open(log, "w") as fh:
            proc = subprocess.run([MUTMUT, "run", *scope], cwd=REPO, stdout=fh,
                                  stderr=subprocess.STDOUT)
        print(f"mutmut run: {time.monotonic() - start:.0f} s (log: {log.name})")
        if proc.returncode != 0:
            print(log.read_text()[-3000:])
            print(f"error: mutmut run exited {proc.returncode}")
            return 1
    res = results(scope)
    if not res:
        print("error: no mutants in scope (did mutmut run?)")
        return 1
    equivalents = load_equivalents()
    killed = sum(c in KILLED or c in TIMEOUT for c in res.values())
    skipped = sum(c in SKIPPED for c in res.values())
    survivors, equivalent, wording = [], [], []
    for name in sorted(
        n for n, c in res.items() if not (c in KILLED or c in TIMEOUT or c in SKIPPED)
    ):
        line, diff, minus, plus = diff_of(name)
        if (function_of(name), line) in equivalents:
            equivalent.append(name)
        elif res[name] == 0 and wording_only(minus, plus):
            wording.append(name)
        else:
            survivors.append((name, res[name], diff))
    judged = len(res) - skipped - len(equivalent) - len(wording)
    score = 100.0 * killed / judged if judged else 0.0
    with_wording = 100.0 * killed / (judged + len(wording)) if judged else 0.0
    no_tests = [n for n, c, _ in survivors if c in NO_TESTS]
    print(f"mutation score {score:.1f} % ({killed} killed of {judged}; {len(survivors)} surviving, "
          f"{len(no_tests)} without tests; not scored: {len(equivalent)} equivalent "
          f"(tests/mutation_equivalents.md), {len(wording)} message wording, {skipped} skipped; "
          f"{len(res)} mutants)")
    print(f"(counting message wording as surviving: {with_wording:.1f} %)")
    for name, code, diff in survivors:
        status = "no tests" if code in NO_TESTS else f"survived (exit {code})"
        print(f"\n--- {name}: {status}")
        print(diff.strip())
    if wording:
        print(f"\nmessage-wording mutants (not scored): {', '.join(wording)}")
    if score < MIN_SCORE or no_tests:
        print(f"\nerror: mutation score {score:.1f} % is under {MIN_SCORE} % "
              "or mutants have no test" if score < MIN_SCORE else
              f"\nerror: {len(no_tests)} mutants have no test")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
