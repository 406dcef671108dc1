"""The fresh-process loop the GPU probes share (state_probe.py, capture_probe.py).

``fresh_processes(script, n, timeout_s)`` runs ``python script --child`` ``n`` times, one
after another, and returns what each printed on its last stdout line (JSON), or
``{"error": <the end of its stderr>}`` when it printed none.
"""
import json
import subprocess
import sys


def fresh_processes(script: str, n: int, timeout_s: float) -> list:
    out = []
    for _ in range(n):
        p = subprocess.run([sys.executable, script, "--child"], capture_output=True, text=True,
                           timeout=timeout_s)
        try:
            out.append(json.loads(p.stdout.strip().splitlines()[-1]))
        except (IndexError, ValueError):
            out.append({"error": p.stderr[-800:]})
    return out
