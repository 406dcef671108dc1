"""Make `asv publish`'s pages work without the network (no CDN at view time).

asv 0.6.6's ``index.html`` loads jQuery, flot, bootstrap, md5 and stupidtable
from three CDNs.  An offline preview, the CI browser check (the CI machine
reaches package registries only) and a GitHub Pages site that should not
depend on third-party CDNs all need local copies.  They come from the npm
registry (``attnperf asv fetch-assets``, with the pinned tarball integrity
below) and :func:`vendor` rewrites ``index.html`` to use them.

The copies are checked when fetched (npm tarball integrity, pinned here); the
page's ``integrity`` attributes are dropped with the CDN URLs: on ``file://``
Chromium blocks any script that carries one ("the resource requires the
request to be CORS enabled"), and a file of the site itself gains nothing from
SRI.  (Where the npm file is byte-identical to the CDN file -- jQuery,
bootstrap js/css, orderBars, md5 -- its hash still equals asv's attribute:
:func:`sri` and the tests check it.)  cdnjs's flot ``*.min.js``
are cdnjs's own minifications of flot 0.8.3; the npm package ships the
unminified 0.8.3 sources, used instead.  cdnjs's stupidtable 1.0.1 is not on
npm; 1.1.3 (same API: ``$(table).stupidtable()``) is used.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re
from pathlib import Path

from ..errors import AttnperfError
from ..io.files import read_bytes, read_text

MANIFEST = "manifest.json"
VENDOR_DIR = "vendor"


@dataclasses.dataclass(frozen=True)
class Asset:
    url: str  # as written in asv 0.6.6's www/index.html
    package: str  # npm name@version
    integrity: str  # npm tarball integrity (dist.integrity), pinned
    member: str  # path inside the tarball's package/ directory
    local: str  # file name under vendor/


_JQ = (
    "jquery@3.3.1",
    "sha512-Ubldcmxp5np52/ENotGxlLe6aGMvmF4R8S6tZjsP6Knsaxd/xp3Zrh50cG93lR6nPXyUFwzN3ZSOQI0wRJNdGg==",
)
_FLOT = (
    "flot@0.8.3",
    "sha512-xg2otcTJDvS+ERK+my4wxG/ASq90QURXtoM4LhacCq0jQW2jbyjdttbRNqU2cPykrpMvJ6b2uSp6SAgYAzj9tQ==",
)
_BS = (
    "bootstrap@3.1.1",
    "sha512-TAzqS8E/ISpVHP29gYhy+1NSV+FJwApDVQhDfgLYsIuUDJiqJzH2DfORN5tiu+Ie2iBLrzEG34t4Rf465cigqg==",
)
_OB = (
    "flot-orderbars@1.0.0",
    "sha512-Jv51fvzevUjNXEeozpwEKfPjhiZhfiJddv0WHjduUTCmSF+7T5K7C9c9Y1wIVmUhDBv5fLMjgbwKecT0GIKPZA==",
)
_MD5 = (
    "blueimp-md5@2.19.0",
    "sha512-DRQrD6gJyy8FbiE4s+bDoXS9hiW3Vbx5uCdwvcCf3zLHL+Iv7LtGHLpr+GZV8rHG8tK766FGYBwRbu8pELTt+w==",
)
_ST = (
    "stupid-table-plugin@1.1.3",
    "sha512-2Vk7XouQPxUQPRe9w0Fu7ZZ8kHLK7rDoLMsCgtKxRNJ7f4dSOGvW9CkHsq5wD6QsaEnWoyLBYH3xOEsrK3yWBg==",
)
_CDNJS = "https://cdnjs.cloudflare.com/ajax/libs/"
_JSD = "https://cdn.jsdelivr.net/npm/"

ASSETS: tuple[Asset, ...] = (
    Asset("https://code.jquery.com/jquery-3.3.1.min.js", *_JQ, "dist/jquery.min.js",
          "jquery-3.3.1.min.js"),
    Asset(_CDNJS + "flot/0.8.3/jquery.flot.min.js", *_FLOT, "jquery.flot.js", "jquery.flot.js"),
    Asset(_CDNJS + "flot/0.8.3/jquery.flot.time.min.js", *_FLOT, "jquery.flot.time.js",
          "jquery.flot.time.js"),
    Asset(_CDNJS + "flot/0.8.3/jquery.flot.selection.min.js", *_FLOT, "jquery.flot.selection.js",
          "jquery.flot.selection.js"),
    Asset(_CDNJS + "flot/0.8.3/jquery.flot.categories.min.js", *_FLOT,
          "jquery.flot.categories.js", "jquery.flot.categories.js"),
    Asset(_JSD + "flot-orderbars@1.0.0/js/jquery.flot.orderBars.js", *_OB,
          "js/jquery.flot.orderBars.js", "jquery.flot.orderBars.js"),
    Asset(_CDNJS + "stupidtable/1.0.1/stupidtable.min.js", *_ST, "stupidtable.min.js",
          "stupidtable.min.js"),
    Asset(_CDNJS + "blueimp-md5/2.19.0/js/md5.min.js", *_MD5, "js/md5.min.js", "md5.min.js"),
    Asset(_JSD + "bootstrap@3.1.1/dist/js/bootstrap.min.js", *_BS, "dist/js/bootstrap.min.js",
          "bootstrap.min.js"),
    Asset(_JSD + "bootstrap@3.1.1/dist/css/bootstrap.min.css", *_BS,
          "dist/css/bootstrap.min.css", "bootstrap.min.css"),
)

_TAG = re.compile(r"<(script|link)\b[^>]*?\b(?:src|href)=\"(https?://[^\"]+)\"[^>]*>", re.I)
_ATTR = re.compile(r"\s(integrity|crossorigin|referrerpolicy)=\"[^\"]*\"", re.I)


def sri(data: bytes, algorithm: str = "sha256") -> str:
    return base64.b64encode(hashlib.new(algorithm, data).digest()).decode()


def load_manifest(assets_dir: Path) -> dict[str, str]:
    """url -> local file name, for the assets present in ``assets_dir``."""
    path = Path(assets_dir) / MANIFEST
    try:
        data = json.loads(read_text(path, "asset manifest", limit=1 << 20))
    except (AttnperfError, ValueError, RecursionError):
        return {}
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict):
        return {}
    # Only plain file names of regular files in the folder: a crafted manifest cannot make
    # vendor() read or write beside it (``../x``, an absolute path, a link).
    return {url: name for url, name in files.items()
            if isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name
            and "\\" not in name and not (Path(assets_dir) / name).is_symlink()
            and (Path(assets_dir) / name).is_file()}


def vendor(html_dir: Path, assets_dir: Path) -> tuple[list[str], list[str]]:
    """Point asv's index.html at local copies; returns (vendored urls, urls left remote)."""
    index = Path(html_dir) / "index.html"
    manifest = load_manifest(assets_dir)
    text = index.read_text()
    done: list[str] = []
    left: list[str] = []
    dest = Path(html_dir) / VENDOR_DIR

    def replace(m: re.Match[str]) -> str:
        tag, url = m.group(0), m.group(2)
        name = manifest.get(url)
        if name is None:
            left.append(url)
            return tag
        dest.mkdir(exist_ok=True)
        data = read_bytes(Path(assets_dir) / name, "asset")
        (dest / name).write_bytes(data)
        new = _ATTR.sub("", tag.replace(url, f"{VENDOR_DIR}/{name}"))
        done.append(url)
        return new

    index.write_text(_TAG.sub(replace, text))
    return done, left
