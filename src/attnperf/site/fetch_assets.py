"""Fetch the web assets that `asv publish`'s pages load from CDNs, from the npm registry.

    attnperf asv fetch-assets [DEST]      (default: .cache/asv-www)

Uses `npm pack NAME@VERSION` (npm's own client), checks each tarball against
the integrity pinned in attnperf.site.assets.ASSETS, extracts the files the pages
need and writes DEST/manifest.json (CDN url -> local file).  Then
`attnperf site build --asv-assets DEST` makes the site work offline.
Idempotent: returns at once when DEST already holds every asset.
Exit: 0 ok, 1 a package could not be fetched or failed its integrity check.
"""

import base64
import hashlib
import json
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from .assets import ASSETS, MANIFEST, load_manifest


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(dest: Path) -> int:
    if len(load_manifest(dest)) == len(ASSETS):
        print(f"asv web assets already in {dest}")
        return 0
    npm = shutil.which("npm")
    if npm is None:
        print("error: npm is not installed (apt-get install npm, or Node.js's npm)", file=sys.stderr)
        return 1
    dest.mkdir(parents=True, exist_ok=True)
    files = {}
    with tempfile.TemporaryDirectory(prefix="asv-www-") as tmp:
        for package, integrity in sorted({(a.package, a.integrity) for a in ASSETS}):
            proc = subprocess.run([npm, "pack", package, "--json", "--pack-destination", tmp],
                                  capture_output=True, text=True, check=False, timeout=300)
            if proc.returncode != 0:
                print(f"error: npm pack {package} failed: {proc.stderr.strip()[-500:]}",
                      file=sys.stderr)
                return 1
            try:
                tgz = Path(tmp) / json.loads(proc.stdout)[0]["filename"]
            except (ValueError, KeyError, IndexError) as exc:
                print(f"error: npm pack {package}: unexpected output ({exc})", file=sys.stderr)
                return 1
            got = _integrity(tgz)
            if got != integrity:
                print(f"error: {package}: tarball integrity {got} != pinned {integrity}",
                      file=sys.stderr)
                return 1
            with tarfile.open(tgz) as tar:
                for asset in (a for a in ASSETS if a.package == package):
                    member = tar.extractfile(f"package/{asset.member}")
                    if member is None:
                        print(f"error: {package} has no {asset.member}", file=sys.stderr)
                        return 1
                    (dest / asset.local).write_bytes(member.read())
                    files[asset.url] = asset.local
    (dest / MANIFEST).write_text(json.dumps(
        {"files": files, "packages": sorted({a.package for a in ASSETS})}, indent=2) + "\n")
    print(f"fetched {len(files)} asv web assets into {dest}")
    return 0


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    dest = Path(argv[0] if argv else ".cache/asv-www")
    return fetch(dest)

