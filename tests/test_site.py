"""attnperf.site (+ svgchart, asvwww): the published site, built from hand-made asv results.

The browser tests open the built site in real headless Chromium
(tools/ci_browser_check.py, through Playwright) and keep screenshots under
ci-artifacts/; they skip, saying why, where Chromium, Playwright or asv's
offline scripts are missing (tools/install_browser.sh installs them).
"""

import importlib.util
import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

from attnperf.io import asv_results as ar
from attnperf.render import site as site_pages
from attnperf.render.svg import ChartPoint, Roof, roofline_svg
from attnperf.site import publish as publish_mod
from attnperf.site import publish as site
from attnperf.site.assets import ASSETS, load_manifest, sri, vendor
from support import asvdata as d

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = REPO / "ci-artifacts"
ASSETS_DIR = REPO / ".cache" / "asv-www"
ASV_WWW = Path(importlib.util.find_spec("asv").origin).parent / "www"

_spec = importlib.util.spec_from_file_location(
    "ci_browser_check", REPO / "tools" / "ci_browser_check.py"
)
browser_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(browser_check)
CHROMIUM = browser_check.find_chromium()


@pytest.fixture
def hist(tmp_path):
    return d.history(tmp_path / "proj")


def _points(html: str) -> int:
    return len(re.findall(r'<circle class="point"', html))


# ----------------------------------------------------------- pages ------
def test_pages_without_asv(hist):
    out = hist["root"] / "html"
    report = site.build(str(hist["conf"]), out=str(out), publish=False)
    assert report.asv_exit is None and not report.has_asv
    pages = {p.machine: p for p in report.pages}
    # CPU: sdpa + tiled on cpu_seed and cpu_causal; H100: 3 kernels on seed and train
    assert (pages["cpu-ci"].points, pages["h100"].points) == (4, 6)
    assert (pages["cpu-ci"].roofs, pages["h100"].roofs) == (1, 2)  # float32 | float16 + bfloat16
    h100 = (out / "attnperf" / "h100.html").read_text()
    assert _points(h100) == 6 and h100.count('class="roof"') == 2
    assert h100.count('class="ridge-point"') == 2
    data = json.loads(re.search(r'id="attnperf-data">(.*?)</script>', h100, re.S).group(1))
    assert len(data["points"]) == 6 and data["commit"] == hist["commits"][-1]
    bf16 = next(r for r in data["roofs"] if r["label"] == "bfloat16")
    assert bf16["tflops"] == 770.0 and bf16["ridge"] == pytest.approx(770e12 / 3000e9)
    assert "NVIDIA H100 80GB HBM3" in h100 and "580.95.05" in h100
    assert "compute-bound" in h100 and "latency-bound" in h100
    # file:// safe: no network, no fetch of JSON
    for html in (h100, (out / "attnperf" / "index.html").read_text()):
        urls = re.findall(r"(?:src|href)=\"(\w+:)|url\((\w+:)", html)
        assert urls == [] and "https://" not in html
        assert "fetch(" not in html and "XMLHttpRequest" not in html
    index = (out / "attnperf" / "index.html").read_text()
    assert 'href="cpu-ci.html"' in index and 'href="h100.html"' in index
    # without asv's pages there are no graph links, and a landing page redirects here
    assert "asv-link" not in h100
    assert "attnperf/index.html" in (out / "index.html").read_text()


def test_asv_graph_links_follow_asvs_url_scheme(hist):
    out = hist["root"] / "html"
    site.build(str(hist["conf"]), out=str(out))
    html = (out / "attnperf" / "h100.html").read_text()
    links = re.findall(r'class="asv-link" href="([^"]+)"', html)
    assert len(links) == 12  # time + x floor for 6 rows
    import html as html_mod
    first = html_mod.unescape(links[0])
    assert first == ("../index.html#bench_attention.TimeAttention.track_device_time?machine=h100"
                     "&p-kernel='sdpa'&p-problem='seed'")
    # asv.js parse_hash_string, in Python: location before '?', key=value pairs after
    frag = first.split("#", 1)[1]
    location, query = frag.split("?", 1)
    params = {}
    for part in query.split("&"):
        k, v = part.split("=")
        params.setdefault(urllib.parse.unquote(k), []).append(urllib.parse.unquote(v))
    assert location == "bench_attention.TimeAttention.track_device_time"
    assert params == {"machine": ["h100"], "p-kernel": ["'sdpa'"], "p-problem": ["'seed'"]}
    # ... and those are the values asv's graph page selects on (graphdisplay.js)
    graph_js = (ASV_WWW / "graphdisplay.js").read_text()
    assert "state_selection['p-'+param_name]" in graph_js
    assert "state_selection[param]" in graph_js  # machine=... selects the machine
    index = json.loads((out / "index.json").read_text())
    bench = index["benchmarks"]["bench_attention.TimeAttention.track_device_time"]
    assert "'sdpa'" in bench["params"][0] and "'seed'" in bench["params"][1]
    assert "machine" in index["params"]


def test_asv_publish_output_gets_the_nav_link_once(hist):
    out = hist["root"] / "html"
    report = site.build(str(hist["conf"]), out=str(out))
    assert report.asv_exit == 0 and report.has_asv, report.asv_output
    text = (out / "index.html").read_text()
    assert text.count(site_pages.NAV_MARKER) == 1 and 'href="attnperf/index.html"' in text
    assert (
        site.link_from_asv(out)
        and (out / "index.html").read_text().count(site_pages.NAV_MARKER) == 1
    )
    assert (out / "graphs").is_dir()


def test_bad_and_partial_input_still_builds(tmp_path):
    results = tmp_path / "results"
    params = d.grid_params(["sdpa", "tiled"], ["cpu_seed", "mystery"])
    bare = {"machine": "bare", "arch": "x86_64"}  # no GPU fields, no cpu, no ceilings
    d.write_machine(results, bare)
    d.write_run(results, bare, "c" * 40, 1000, {d.TIME: d.row(params, [
        d.samples(1e-3), d.samples(2e-3), None, math.nan])})
    (results / "bare" / "dddddddd-virtualenv-py3.11.json").write_text('{"version": 7}')
    (results / "empty").mkdir()
    (results / "broken").mkdir()
    (results / "broken" / "eeeeeeee-virtualenv-py3.11.json").write_text("{trunc")
    out = tmp_path / "html"
    report = site.build(str(d.asv_conf(tmp_path)), results=str(results), out=str(out),
                        publish=False)
    pages = {p.machine: p for p in report.pages}
    assert set(pages) == {"bare", "empty", "broken"}
    bare_html = (out / "attnperf" / "bare.html").read_text()
    assert (
        pages["bare"].points == 1 and _points(bare_html) == 1
    )  # sdpa/cpu_seed; mystery has no shape
    assert "no ceilings recorded" in bare_html and "CPU only (no GPU fields recorded)" in bare_html
    assert "FAILED" in bare_html  # tiled/cpu_seed failed
    assert "format version 7" in bare_html
    assert "problems unknown to this attnperf" in bare_html and "mystery" in bare_html
    empty_html = (out / "attnperf" / "empty.html").read_text()
    assert "no readable result files: empty history" in empty_html
    assert "no measured points in the latest run" in empty_html
    assert "not valid JSON" in (out / "attnperf" / "broken.html").read_text()


def test_machine_page_shows_accuracy_and_peak_memory_with_their_graphs(tmp_path):
    results = tmp_path / "results"
    names = (d.TIME, d.MAX_ERR, d.MEAN_ERR, d.PEAK)
    d.write_benchmarks(results, ["sdpa", "tiled"], ["train"], names)
    d.write_machine(results, d.H100_INFO, d.H100_CEILINGS)
    params = d.grid_params(["sdpa", "tiled"], ["train"])
    d.write_run(results, d.H100_INFO, "c" * 40, 1000, {
        d.TIME: d.row(params, [d.samples(2e-4), d.samples(9e-4)]),
        d.MAX_ERR: d.row(params, [3.9e-3, 1.56e-2]), d.MEAN_ERR: d.row(params, [1.2e-4, 4.4e-4]),
        d.PEAK: d.row(params, [float(33 << 20), math.nan])})  # tiled's memory n/a
    db = ar.read_results(str(results))
    html, _ = site_pages.machine_page(db, db.machines["h100"], has_asv=True)
    assert "<th>max abs error</th><th>mean abs error</th>" in html and "<th>peak MiB</th>" in html
    for value in ("0.0039", "0.00012", "33", "0.016", "0.00044"):  # 2 significant digits
        assert f"<td>{value}</td>" in html, value
    import html as html_mod
    links = re.findall(r'class="asv-link" href="[^"]*#([^?"]+)\?[^"]*p-kernel=\'(\w+)\'',
                       html_mod.unescape(html))
    assert ("bench_attention.PeakMemory.track_peak_memory_bytes", "sdpa") in links
    assert ("bench_attention.PeakMemory.track_peak_memory_bytes", "tiled") not in links
    assert {k for n, k in links if n == "bench_attention.Accuracy.track_mean_abs_error"} == {
        "sdpa", "tiled"}
    data = json.loads(re.search(r'<script type="application/json"[^>]*>(.*?)</script>', html,
                                re.S).group(1))
    assert [c["peak_memory_bytes"] for c in data["cells"]] == [33 << 20, None]


def test_empty_results_directory(tmp_path, cli):
    conf = d.asv_conf(tmp_path)
    (tmp_path / "results").mkdir()
    r = cli("site", "build", "--config", str(conf), "--no-asv", "--out", str(tmp_path / "html"))
    assert r.code == 0, r.err
    index = (tmp_path / "html" / "attnperf" / "index.html").read_text()
    assert "No machines: the results directory holds no asv results yet." in index
    assert "empty history" in index


def test_cli_site_build(hist, cli):
    r = cli("site", "build", "--config", str(hist["conf"]))
    assert r.code == 0, r.err
    assert "h100: 6 points, 2 roofs, 6 rows" in r.err
    assert (hist["root"] / "html" / "attnperf" / "h100.html").is_file()
    r = cli("site", "build", "--config", str(hist["root"] / "nope.json"))
    assert r.code == 2 and "does not exist" in r.err
    r = cli("site")
    assert r.code == 2 and "usage: attnperf site build" in r.err


def test_svg_chart_geometry():
    roof = Roof("bfloat16", 770.0, 3000.0, "measured")
    svg = roofline_svg(
        [ChartPoint(32.0, 5.0, "sdpa", "a"), ChartPoint(1000.0, 300.0, "tiled", "b")],
        [roof],
        caption="x",
    )
    assert svg.count('<circle class="point"') == 2 and svg.count('class="legend"') == 2
    # the memory roof's slope is the bandwidth: y = 3000 GB/s * x / 1000 up to the ridge
    path = re.search(r'<path class="roof" d="M([\d.]+),([\d.]+) L([\d.]+),([\d.]+) L', svg)
    assert path and float(path.group(3)) > float(path.group(1))
    assert "ridge 257" in svg
    empty = roofline_svg([], [], caption="nothing")
    assert "no measured points" in empty and "no ceilings recorded" in empty


# ----------------------------------------------------- asv's CDN scripts ------
def test_vendor_rewrites_asvs_cdn_tags(tmp_path):
    html = tmp_path / "html"
    html.mkdir()
    shutil.copy(ASV_WWW / "index.html", html / "index.html")
    assets = tmp_path / "assets"
    assets.mkdir()
    files = {}
    for a in ASSETS:
        (assets / a.local).write_text(f"/* {a.local} */")
        files[a.url] = a.local
    (assets / "manifest.json").write_text(json.dumps({"files": files}))
    done, left = vendor(html, assets)
    text = (html / "index.html").read_text()
    assert len(done) == len(ASSETS) and left == []
    assert "cdn.jsdelivr.net" not in text and "cdnjs.cloudflare.com" not in text
    assert "code.jquery.com" not in text
    assert 'src="vendor/jquery-3.3.1.min.js"' in text
    assert "integrity=" not in text and "crossorigin=" not in text
    assert (html / "vendor" / "bootstrap.min.css").read_text() == "/* bootstrap.min.css */"
    # even a file matching the tag's SRI loses the attribute: Chromium blocks a file://
    # script that carries one (no CORS on file://), and the file is the site's own
    body = b"console.log(1);"
    (html / "index.html").write_text(
        f'<script src="https://x.invalid/a.js" integrity="sha256-{sri(body)}" '
        'crossorigin="anonymous"></script>')
    (assets / "a.js").write_bytes(body)
    (assets / "manifest.json").write_text(json.dumps({"files": {"https://x.invalid/a.js": "a.js"}}))
    vendor(html, assets)
    assert (html / "index.html").read_text() == '<script src="vendor/a.js"></script>'


def test_a_crafted_manifest_cannot_point_outside_the_assets_folder(tmp_path):
    """Only plain file names of regular files in the folder count: a name with a path, an
    absolute one or a link is left remote, never read from or written beside the site."""
    html, assets = tmp_path / "site" / "html", tmp_path / "assets"
    html.mkdir(parents=True)
    assets.mkdir()
    secret = tmp_path / "secret.js"
    secret.write_text("the user's")
    (assets / "link.js").symlink_to(secret)
    (assets / "ok.js").write_text("/* ok */")
    urls = {f"https://x.invalid/{i}.js": name for i, name in
            enumerate(["../secret.js", str(secret), "link.js", "..", "sub/ok.js", "ok.js"])}
    (assets / "manifest.json").write_text(json.dumps({"files": urls}))
    assert load_manifest(assets) == {"https://x.invalid/5.js": "ok.js"}
    (html / "index.html").write_text("".join(f'<script src="{u}"></script>' for u in urls))
    done, left = vendor(html, assets)
    assert done == ["https://x.invalid/5.js"] and len(left) == 5
    assert sorted(p.name for p in (html / "vendor").iterdir()) == ["ok.js"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["assets", "secret.js", "site"]


def test_asset_table_covers_asvs_page():
    urls = set(re.findall(r'(?:src|href)="(https://[^"]+\.(?:js|css))"',
                          (ASV_WWW / "index.html").read_text()))
    assert urls == {a.url for a in ASSETS}


# ---------------------------------------------------------- browser ------
needs_browser = pytest.mark.skipif(
    CHROMIUM is None,
    reason="Chromium or Playwright not found: bash tools/install_browser.sh installs both")


def _offline_assets():
    if len(load_manifest(ASSETS_DIR)) != len(ASSETS):
        pytest.skip(f"asv's scripts are not in {ASSETS_DIR}: bash tools/install_browser.sh")
    return ASSETS_DIR


def _browser_check(site_dir: Path, shots: Path) -> dict:
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "ci_browser_check.py"),
                           str(site_dir), "--out", str(shots)],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode in (0, 1) and proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


@needs_browser
def test_site_in_headless_chromium(hist):
    assets = _offline_assets()
    out = hist["root"] / "html"
    report = site.build(str(hist["conf"]), out=str(out), asv_assets=str(assets))
    assert report.asv_exit == 0 and len(report.vendored) == len(ASSETS) and not report.left_remote
    shots = ARTIFACTS / "browser"
    result = _browser_check(out, shots)
    pages = {p["name"]: p for p in result["pages"]}
    assert result["ok"], json.dumps(result, indent=2)
    assert pages["roofline cpu-ci (file://)"]["points"] == 4
    assert pages["roofline h100 (file://)"]["points"] == 6
    assert pages["roofline h100 (file://)"]["roofs"] == 2
    graph = pages["asv graph (http)"]
    assert graph["points"] == len(hist["commits"])  # one series: sdpa/cpu_seed on cpu-ci
    assert graph["title"] == "bench_attention.TimeAttention.track_device_time"
    for p in result["pages"]:
        assert p["errors"] == [] and Path(p["screenshot"]).stat().st_size > 10000
    print("\nscreenshots: " + ", ".join(p["screenshot"] for p in result["pages"]))


@needs_browser
def test_site_of_this_repository_results_in_chromium(tmp_path):
    """The site built from the committed results/ (the CPU and GPU history), as CI publishes it."""
    assets = _offline_assets()
    db = ar.read_results(str(REPO / "results"))
    if not db.machines:
        pytest.skip("no results committed under results/ yet")
    out = tmp_path / "html"
    report = site.build(str(REPO / "asv.conf.json"), out=str(out), asv_assets=str(assets))
    assert report.asv_exit == 0, report.asv_output[-2000:]
    result = _browser_check(out, ARTIFACTS / "browser-repo")
    assert all(p["errors"] == [] for p in result["pages"]), json.dumps(result, indent=2)
    rooflines = {p["name"]: p for p in result["pages"] if p["name"].startswith("roofline")}
    for page in report.pages:
        assert rooflines[f"roofline {Path(page.file).stem} (file://)"]["points"] == page.points
    if any(p.points for p in report.pages):
        assert result["ok"], json.dumps(result, indent=2)
    # attnperf tracks itself: the CPU machine kind's history holds >= 20 commits of main with
    # every CPU benchmark (forward, training passes, accuracy), and the site shows them -- the
    # roofline page a point per row, one kernel's history graph a point per commit.
    cpu = db.machines.get("cpu-2core")
    if cpu is not None:
        assert len({r.commit for r in cpu.runs}) >= 20, len(cpu.runs)
        for bench in ("TimeAttention.track_device_time", "TrainingPass.track_device_time",
                      "Accuracy.track_max_abs_error"):
            assert all(r.benchmarks.get(f"bench_attention.{bench}") for r in cpu.runs), bench
        page = rooflines["roofline cpu-2core (file://)"]
        assert page["points"] > 0 and page["errors"] == [], page
        graph = next(p for p in result["pages"] if p["name"] == "asv graph (http)")
        assert "machine=cpu-2core" in graph["url"] and graph["points"] >= 20, graph
        assert Path(graph["screenshot"]).stat().st_size > 10000, graph
    print("\nrepository site: " + "; ".join(f"{p.machine}: {p.points} points, {p.roofs} roofs"
                                           for p in report.pages))
    print("screenshots: " + ", ".join(p.get("screenshot", "-") for p in result["pages"]))


@needs_browser
def test_browser_check_reports_console_errors(hist, tmp_path):
    """The negative fixture: a page that logs an error and throws must fail the check."""
    out = hist["root"] / "html"
    site.build(str(hist["conf"]), out=str(out), publish=False)
    page = out / "attnperf" / "h100.html"
    page.write_text(page.read_text().replace(
        "</body>", "<script>console.error('boom'); null.x;</script></body>"))
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "ci_browser_check.py"), str(out),
                           "--out", str(tmp_path / "shots")],
                          capture_output=True, text=True, timeout=240)
    assert proc.returncode == 1
    result = json.loads(proc.stdout)
    bad = next(p for p in result["pages"] if p["name"] == "roofline h100 (file://)")
    assert "console.error: boom" in bad["errors"]
    assert any(e.startswith("exception: TypeError") for e in bad["errors"]), bad["errors"]
    assert not result["ok"]


# ---------------------------------------------------------- hostile names ------
HOSTILE = ["<img src=x onerror=alert(1)>", "@org_team", "[x](javascript:alert(1))", "a`b``c",
           "<!--", "</script><script>alert(1)</script>"]


def _hostile_results(tmp_path: Path) -> Path:
    results = tmp_path / "results"
    kernels = ["sdpa", HOSTILE[0], HOSTILE[4]]
    params = d.grid_params(kernels, ["cpu_seed"])
    for name in ["a:b", "a_b", "index", "H100x", "h100x", HOSTILE[0], HOSTILE[1]]:
        info = dict(d.CPU_INFO, machine=name, cpu=HOSTILE[5])
        d.write_machine(results, info, d.CPU_CEILINGS)
        d.write_run(results, info, "c" * 40, 1000, {d.TIME: d.row(params, [
            d.samples(1e-3), d.samples(2e-3), d.samples(3e-3)])})
    return results


def test_page_names_never_collide():
    names = ["a:b", "a_b", "a?b", "index", "INDEX", "style", "H100", "h100", "ok-name.1", "", "."]
    files = site_pages.page_names(names)
    assert len(set(files.values())) == len(names)
    assert files["a_b"] == "a_b.html" and files["ok-name.1"] == "ok-name.1.html"
    assert files["index"] != "index.html" and files["style"] != "style.html"
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+\.html", f) and not f.startswith(".")
               for f in files.values())
    assert files == site_pages.page_names(reversed(names))  # a name's page does not move


def test_hostile_names_are_escaped_in_the_pages(tmp_path):
    results = _hostile_results(tmp_path)
    out = tmp_path / "html"
    report = site.build(str(d.asv_conf(tmp_path)), results=str(results), out=str(out),
                        publish=False)
    files = {p.machine: p.file for p in report.pages}
    assert len(files) == 7 and len(set(files.values())) == 7  # no page overwrote another
    assert (out / "attnperf" / "index.html").read_text().count('class="machine"') == 7
    for page in report.pages:
        html = (out / "attnperf" / page.file).read_text()
        assert "<img" not in html and "<!--" not in html and "</script><script>" not in html
        assert "&lt;img src=x onerror=alert(1)&gt;" in html
        blob = re.search(r'id="attnperf-data">(.*?)</script>', html, re.S).group(1)
        assert "<" not in blob and ">" not in blob  # \u003c: no </script>, <!--, <script
        data = json.loads(blob)
        assert data["machine"] == page.machine
        assert {c["kernel"] for c in data["cells"]} == {"sdpa", HOSTILE[0], HOSTILE[4]}
    index = (out / "attnperf" / "index.html").read_text()
    assert "<img" not in index and "&lt;img" in index


def test_hostile_names_in_the_pr_comment(tmp_path):
    from attnperf.render import prcomment
    results = _hostile_results(tmp_path)
    db = ar.read_results(str(results))
    text = prcomment.render_section(db, HOSTILE[0], "c" * 40, "c" * 40, 1.05,
                                    extra_notes=["ping @org/team, see [x](javascript:alert(1))",
                                                 "multi\nline | cell `tick`"])
    assert "`<img src=x onerror=alert(1)>`" in text  # a code span: shown, never markup
    # outside code spans (where nothing is HTML, a link or a mention):
    bare = re.sub(r"(`+)(?!`).*?(?<!`)\1(?!`)", "", text.replace("\\|", ""))
    assert "<img" not in bare and "<!--" not in bare and "<script>" not in bare
    assert "@org" not in bare.replace("@\u200borg", "")  # nobody is pinged
    assert "\\[x\\](javascript:" in bare and not re.search(r"(?<!\\)\]\(", bare)  # no link
    rows = [line for line in text.splitlines() if line.startswith("| ")]
    width = {len(re.split(r"(?<!\\)\|", r)) for r in rows if "track_device_time" in r}
    assert len(width) <= 1  # every row of the table has as many cells as its header
    notes = [line for line in text.splitlines() if line.startswith("- ")]
    assert any("multi line \\| cell \\`tick\\`" in n for n in notes)


def test_markdown_helpers():
    from attnperf.render import markdown as md
    assert md.text("sdpa_flash") == "sdpa_flash"
    assert md.text("<b>@x #1 [a](b) | `c` *d* _e_") == (
        "&lt;b&gt;@\u200bx #\u200b1 \\[a\\](b) \\| \\`c\\` \\*d\\* \\_e\\_")
    assert md.code("a`b``c") == "```a`b``c```" and md.code("`x") == "`` `x ``"
    assert md.code("a|b\nc") == "`a\\|b c`"


# ------------------------------------------------------ the output folder ------
def _listing(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None)
            for p in sorted(folder.rglob("*"))}


def test_site_build_refuses_folders_it_must_not_replace(hist, cli, tmp_path):
    root, results = hist["root"], hist["results"]
    (root / "notes").mkdir()
    (root / "notes" / "mine.txt").write_text("keep me")
    before = _listing(root)
    for out, why in ((root, "repository"), (root.parent, "repository"), (results, "results"),
                     (results / "cpu-ci", "results"), (root / "notes", "not empty"),
                     (root / "notes" / "mine.txt", "not a folder")):
        r = cli("site", "build", "--config", str(hist["conf"]), "--no-asv", "--out", str(out))
        assert r.code == 2 and len(r.err_lines) == 1 and r.err.startswith("error: --out"), r.err
        assert why in r.err
    r = cli("site", "build", "--config", str(hist["conf"]), "--no-asv",
            "--results", str(results), "--out", str(root / "results" / ".."))
    assert r.code == 2
    assert _listing(root) == before  # nothing written, nothing deleted
    # a folder built before is rebuilt; the marker lists what attnperf wrote, and a file
    # the user added stays
    out = tmp_path / "site"
    assert (
        cli("site", "build", "--config", str(hist["conf"]), "--no-asv", "--out", str(out)).code == 0
    )
    assert (out / publish_mod.SITE_MARKER).is_file()
    (out / "stale.html").write_text("old")
    r = cli("site", "build", "--config", str(hist["conf"]), "--no-asv", "--out", str(out))
    assert r.code == 0 and "kept 1 file(s) attnperf did not write" in r.err
    assert (out / "stale.html").read_text() == "old" and (out / "attnperf" / "index.html").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj", "site"]  # no temporary left


SLOW_ASV = '''#!{python}
import os, shutil, sys, time
conf = sys.argv[sys.argv.index("--config") + 1]
html = os.path.join(os.path.dirname(conf), "site")
shutil.rmtree(html, ignore_errors=True)  # as asv publish does
os.makedirs(html)
open(os.path.join(html, "index.html"), "w").write("half a site")
with open(os.environ["SLOW_ASV_PID"] + ".tmp", "w") as fh:
    fh.write(str(os.getpid()))
os.rename(os.environ["SLOW_ASV_PID"] + ".tmp", os.environ["SLOW_ASV_PID"])
time.sleep(120)
'''


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interrupted_build_keeps_the_previous_site(hist, tmp_path, cli, sig):
    out = tmp_path / "pub" / "site"
    out.parent.mkdir()
    assert (
        cli("site", "build", "--config", str(hist["conf"]), "--no-asv", "--out", str(out)).code == 0
    )
    before = _listing(out)
    fake = tmp_path / "asv"
    fake.write_text(SLOW_ASV.format(python=sys.executable))
    fake.chmod(0o755)
    pid_file = tmp_path / "asv.pid"
    private_tmp = tmp_path / "tmpdir"  # this build's temporaries only (other processes share /tmp)
    private_tmp.mkdir()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "attnperf",
            "site",
            "build",
            "--config",
            str(hist["conf"]),
            "--out",
            str(out),
            "--asv",
            str(fake),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SLOW_ASV_PID": str(pid_file), "TMPDIR": str(private_tmp)},
    )
    deadline = time.monotonic() + 60
    while not pid_file.exists():  # asv publish is running (and has emptied its html_dir)
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    asv_pid = int(pid_file.read_text())
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith(f"error: interrupted by {sig.name}"), stderr
    with pytest.raises(ProcessLookupError):  # asv publish was killed, not orphaned
        for _ in range(100):
            os.kill(asv_pid, 0)
            time.sleep(0.05)
    assert _listing(out) == before  # the previous site, untouched
    assert [p.name for p in out.parent.iterdir()] == ["site"]  # no temporary folder
    assert list(private_tmp.iterdir()) == []  # no /tmp/attnperf-publish-* or other temporary


# ------------------------------------------------- committed history only ------
def test_only_listed_machines_are_published(tmp_path, cli):
    results = tmp_path / "results"
    params = d.grid_params(["sdpa"], ["cpu_seed"])
    for name in ("cpu-ci", "laptop"):
        info = dict(d.CPU_INFO, machine=name)
        d.write_machine(results, info, d.CPU_CEILINGS)
        d.write_run(results, info, "c" * 40, 1000, {d.TIME: d.row(params, [d.samples(1e-3)])})
    conf = d.asv_conf(tmp_path)
    data = json.loads(conf.read_text().split("\n", 1)[1])
    conf.write_text(json.dumps(dict(data, attnperf_machines={"cpu-ci": {"factor": 1.5}})))
    r = cli("site", "build", "--config", str(conf), "--no-asv", "--out", str(tmp_path / "a"))
    assert r.code == 0 and "not published: laptop" in r.err and "--include-machine" in r.err
    assert [p.name for p in (tmp_path / "a" / "attnperf").glob("*.html")] != []
    assert not (tmp_path / "a" / "attnperf" / "laptop.html").exists()
    assert "laptop" not in (tmp_path / "a" / "attnperf" / "index.html").read_text()
    r = cli("site", "build", "--config", str(conf), "--no-asv", "--out", str(tmp_path / "b"),
            "--include-machine", "laptop")
    assert r.code == 0 and (tmp_path / "b" / "attnperf" / "laptop.html").is_file()
    r = cli("site", "build", "--config", str(conf), "--no-asv", "--out", str(tmp_path / "c"),
            "--all-machines")
    assert r.code == 0 and (tmp_path / "c" / "attnperf" / "laptop.html").is_file()


def test_a_machine_published_beyond_the_list_is_judged_at_its_devices_factor(tmp_path,
                                                                            monkeypatch):
    """A machine asked for beyond attnperf_machines: its regressions are judged at the factor
    ci bench would use on the device its description records -- [tool.attnperf]
    regression-factor, else the device's default -- never one number for every device."""
    from attnperf.site.publisher import CONF_KEY

    results = tmp_path / "results"
    params = d.grid_params(["sdpa"], ["cpu_seed"])
    for info in (d.CPU_INFO, dict(d.CPU_INFO, machine="laptop"), d.H100_INFO):
        d.write_machine(results, info)
        d.write_run(results, info, "c" * 40, 1000, {d.TIME: d.row(params, [d.samples(1e-3)])})
    conf = d.asv_conf(tmp_path)
    data = json.loads(conf.read_text().split("\n", 1)[1])
    conf.write_text(json.dumps(dict(data, attnperf_machines={"cpu-ci": {"factor": 3.0}})))
    published = []

    def asv_publish(config, asv=None):  # what the plugin is given; no asv run
        published.append(json.loads(Path(config).read_text()))
        return 1, "not run"
    monkeypatch.setattr(publish_mod, "run_asv_publish", asv_publish)
    for pyproject, factors in ((None, {"cpu-ci": 3.0, "laptop": 1.5, "h100": 1.05}),
                               ("regression-factor = {cuda = 1.2}",
                                {"cpu-ci": 3.0, "laptop": 1.5, "h100": 1.2})):
        if pyproject:
            (tmp_path / "pyproject.toml").write_text(f"[tool.attnperf]\n{pyproject}\n")
        site.build(str(conf), out=str(tmp_path / "html"), all_machines=True)
        assert published[-1][CONF_KEY] == factors
        # a graph of no listed machine: the smallest, which hides no step a verdict flags
        assert published[-1]["attnperf_default_factor"] == min(factors.values())
    (tmp_path / "pyproject.toml").write_text("[tool.attnperf]\nregression-factor = 0.5\n")
    report = site.build(str(conf), out=str(tmp_path / "html"), all_machines=True)
    assert published[-1][CONF_KEY] == {"cpu-ci": 3.0, "laptop": 1.5, "h100": 1.05}
    assert any("regression-factor = 0.5" in n and "h100's regressions are judged at the cuda "
               "default x1.05" in n for n in report.notes), report.notes


def _conf() -> dict:
    return ar.read_asv_conf(str(REPO / "asv.conf.json"))


def test_the_listed_machines_are_cis_and_their_factors_the_pr_verdicts():
    import yaml
    machines = publish_mod.published_machines(_conf())
    wf = REPO / ".github" / "workflows"
    main = yaml.safe_load((wf / "main.yml").read_text())
    pr = yaml.safe_load((wf / "pr.yml").read_text())
    recorded = {e["machine"] for e in main["jobs"]["bench"]["strategy"]["matrix"]["include"]}
    gpus = set(pr["jobs"]["gpu"]["strategy"]["matrix"]["gpu"])
    assert recorded | gpus | {"gh-ubuntu-cpu"} <= set(machines)
    assert {p.name for p in (REPO / "results").iterdir() if p.is_dir()} <= set(machines)
    # the PR verdict's factors: [tool.attnperf] regression-factor (read by `attnperf ci bench`)
    from attnperf.io.project_config import load
    config = load(REPO / "pyproject.toml")
    assert machines["gh-ubuntu-cpu"] == config.factor("cpu") == machines["cpu-2core"]
    assert all(machines[g] == config.factor("cuda") for g in gpus)


def test_local_machines_are_git_ignored_under_results():
    def ignored(path: str) -> bool:
        return subprocess.run(["git", "-C", str(REPO), "check-ignore", "-q", "--no-index", path],
                              check=False).returncode == 0
    assert ignored("results/my-laptop/abcdef12-virtualenv-py3.11.json")
    assert ignored("results/my-laptop/machine.json")
    for m in publish_mod.published_machines(_conf()):
        assert not ignored(f"results/{m}/abcdef12-virtualenv-py3.11.json"), m
    assert not ignored("results/benchmarks.json")


# --------------------------------------------------- the regressions page ------
def test_published_regressions_are_what_the_pr_verdict_would_flag(tmp_path):
    """asv publish over the committed results/ (5 commits of main, no kernel changed):
    before, 42 regressions of which 31 from views; now no view, and every step listed is
    past its machine's PR factor."""
    out = tmp_path / "html"
    report = site.build(str(REPO / "asv.conf.json"), out=str(out))
    assert report.asv_exit == 0, report.asv_output[-2000:]
    regressions = json.loads((out / "regressions.json").read_text())["regressions"]
    factors = publish_mod.published_machines(_conf())
    assert not [r for r in regressions if "Views." in r[0]]
    for name, graph, _, _, _, _, jumps in regressions:
        machine = re.search(r"(?:^|/)machine-([^/]+)", graph).group(1)
        assert all(after / before > factors[machine] for _, _, before, after in jumps), name
    assert len(regressions) < 11  # was 42; 11 gated before the per-machine factor
    feed = (out / "regressions.xml").read_text()
    assert "Views" not in feed and feed.count("<entry>") == len(regressions)


def test_training_passes_table_shows_fwd_bwd_and_fwd_bwd_per_kernel(tmp_path):
    """TrainingPass results (three params) beside the forward's: TF/s from each pass's FLOPs
    (2.5x / 3.5x the forward's) and efficiency from x_over_floor."""
    import json as _json

    from attnperf.analysis import cells as am
    from attnperf.io.asv_results import read_results
    results = tmp_path / "results"
    pid = "b4_h16_sq2048_d128_bf16"
    d.write_machine(results, d.H100_INFO, d.H100_CEILINGS)
    fwd_params = d.grid_params(["sdpa"], [pid])
    pass_params = fwd_params + [[repr("bwd"), repr("fwd+bwd")]]
    train_time = "bench_attention.TrainingPass.track_device_time"
    train_x = "bench_attention.TrainingPass.track_x_over_floor"
    d.write_run(results, d.H100_INFO, "a" * 40, 1000, {
        d.TIME: d.row(fwd_params, [d.samples(200e-6, spread=0)]),
        d.XFLOOR: d.row(fwd_params, [d.samples(2.0, spread=0)]),
        train_time: d.row(pass_params, [d.samples(500e-6, spread=0), None]),
        train_x: d.row(pass_params, [d.samples(4.0, spread=0), None])})
    bench = _json.loads(d.write_benchmarks(results, ["sdpa"], [pid]).read_text())
    for name in (train_time, train_x):
        bench[name] = dict(bench[d.TIME], name=name, param_names=["kernel", "problem", "pass"],
                           params=pass_params)
    d.write_json(results / "benchmarks.json", bench)
    db = read_results(str(results))
    m = db.machines["h100"]
    [row] = am.pass_rows(m.latest(), m)
    fwd_flops = 4 * 4 * 16 * 2048 * 2048 * 128
    assert row.passes["fwd"].tflops == pytest.approx(fwd_flops / 200e-6 / 1e12)
    assert row.passes["bwd"].tflops == pytest.approx(2.5 * fwd_flops / 500e-6 / 1e12)
    assert row.passes["bwd"].efficiency_pct == pytest.approx(25.0)
    assert row.passes["fwd"].efficiency_pct == pytest.approx(50.0)
    assert row.passes["fwd+bwd"].status == "failed"
    out = tmp_path / "html"
    site.build(str(d.asv_conf(tmp_path)), results=str(results), out=str(out), publish=False)
    html = (out / "attnperf" / "h100.html").read_text()
    table = html[html.index("Training passes, per kernel"):html.index("<h2>History")]
    assert "bwd TFLOP/s" in table and "fwd+bwd efficiency" in table
    assert f"{2.5 * fwd_flops / 500e-6 / 1e12:.3g}" in table and "25" in table and "FAILED" in table


def test_asv_publish_gets_every_problem_the_machines_results_hold(tmp_path):
    """A grid that follows the device lists only the CPU's problems in benchmarks.json after a
    CPU run: the copy that asv publish reads lists the GPU's too, so no history drops out of
    asv's graphs."""
    results = tmp_path / "results"
    cpu, gpu = ["b8_h4_sq64_d64_fp32"], ["b8_h4_sq64_d64_fp16", "b4_h16_sq2048_d128_bf16"]
    for info, problems in ((d.CPU_INFO, cpu), (d.H100_INFO, gpu)):
        d.write_machine(results, info)
        params = d.grid_params(["sdpa"], problems)
        d.write_run(results, info, "c" * 40, 1000,
                    {d.TIME: d.row(params, [d.samples(1e-3) for _ in problems])})
    d.write_benchmarks(results, ["sdpa"], cpu, names=[d.TIME, d.XFLOOR])  # the CPU ran last
    before = (results / "benchmarks.json").read_text()
    publish_mod._copy_results(results, ["cpu-ci", "h100"], tmp_path / "sel")
    data = json.loads((tmp_path / "sel" / "benchmarks.json").read_text())
    assert data[d.TIME]["params"] == [["'sdpa'"], [repr(p) for p in cpu + gpu]]
    assert data[d.XFLOOR]["params"] == d.grid_params(["sdpa"], cpu)  # no results: as it was
    assert (results / "benchmarks.json").read_text() == before  # the repository's file untouched
