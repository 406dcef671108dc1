"""Fetch the web assets that `asv publish`'s pages load from CDNs, from the npm registry
(``attnperf asv fetch-assets [DEST]``).

Uses `npm pack NAME@VERSION` (npm's own client), checks each tarball against
the integrity pinned in attnperf.site.assets.ASSETS, extracts the files the pages
need and writes DEST/manifest.json (CDN url -> local file).  Then
`attnperf site build --asv-assets DEST` makes the site work offline.
Idempotent: returns at once when DEST already holds every asset.  A package that
cannot be fetched or fails its integrity check raises :class:`AssetFetchError`.
DEST is a folder attnperf owns (:class:`attnperf.io.folders.OwnedDir`, marker
:data:`MARKER`): it writes only there, follows no link in it, and never replaces
a file it did not write (:class:`OutputPathError`, before anything is fetched).
"""

import base64
import hashlib
import json
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ..errors import AssetFetchError
from ..io.folders import OwnedDir
from .assets import ASSETS, MANIFEST, load_manifest

# The list of files attnperf wrote into DEST: the only ones a later fetch rewrites.
MARKER = ".attnperf-assets"


def _integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(dest: Path) -> int:
    """Fetch every asset into ``dest``; returns how many files were written (0: all there)."""
    if len(load_manifest(dest)) == len(ASSETS):
        return 0
    npm = shutil.which("npm")
    if npm is None:
        raise AssetFetchError("npm is not installed (apt-get install npm, or Node.js's npm)")
    owned = OwnedDir(dest, MARKER, f"asv fetch-assets {str(dest)!r}").open()
    owned.check([a.local for a in ASSETS] + [MANIFEST])
    files = {}
    with tempfile.TemporaryDirectory(prefix="asv-www-") as tmp:
        for package, integrity in sorted({(a.package, a.integrity) for a in ASSETS}):
            proc = subprocess.run([npm, "pack", package, "--json", "--pack-destination", tmp],
                                  capture_output=True, text=True, check=False, timeout=300)
            if proc.returncode != 0:
                raise AssetFetchError(f"npm pack {package} failed: {proc.stderr.strip()[-500:]}")
            try:
                tgz = Path(tmp) / json.loads(proc.stdout)[0]["filename"]
            except (ValueError, KeyError, IndexError) as exc:
                raise AssetFetchError(f"npm pack {package}: unexpected output ({exc})") from None
            got = _integrity(tgz)
            if got != integrity:
                raise AssetFetchError(f"{package}: tarball integrity {got} != pinned {integrity}")
            with tarfile.open(tgz) as tar:
                for asset in (a for a in ASSETS if a.package == package):
                    member = tar.extractfile(f"package/{asset.member}")
                    if member is None:
                        raise AssetFetchError(f"{package} has no {asset.member}")
                    owned.write_bytes(asset.local, member.read())
                    files[asset.url] = asset.local
    owned.write_text(MANIFEST, json.dumps(
        {"files": files, "packages": sorted({a.package for a in ASSETS})}, indent=2) + "\n")
    return len(files)
