"""The built book in a real browser: every page loads cleanly, math is typeset, images load, internal
links resolve, search finds a chapter's words, every chapter offers its notebook and its text, and a
screenshot of every page lands in ``_build/screens/``."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest
import yaml

from tests.site.conftest import ROOT, SCREENS, SITE, pages

# Text typeset math must never show: display or inline TeX delimiters, or a bare environment.
RAW_TEX = re.compile(r"\$\$|\\\(|\\\[|\\begin\{")

WAIT_FOR_MATHJAX = """async () => {
  if (!window.MathJax || !MathJax.startup) return 'absent';
  await MathJax.startup.promise;
  return 'typeset';
}"""

MATH_REPORT = """() => {
  const untypeset = Array.from(document.querySelectorAll('.math'))
    .filter(el => !el.querySelector('mjx-container')).map(el => el.textContent.slice(0, 80));
  const errors = Array.from(document.querySelectorAll('mjx-merror')).map(el => el.textContent.slice(0, 80));
  const prose = document.querySelector('main') || document.body;
  const copy = prose.cloneNode(true);
  copy.querySelectorAll('pre, code, script, style, mjx-container, .highlight, .output').forEach(el => el.remove());
  return {formulas: document.querySelectorAll('mjx-container').length, untypeset, errors, text: copy.textContent};
}"""

BROKEN_IMAGES = """async () => {
  const images = Array.from(document.images);
  await Promise.all(images.map(img => img.complete ? null :
    new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
  return images.filter(img => img.naturalWidth === 0).map(img => img.getAttribute('src'));
}"""


@cache
def anchors_of(path: Path) -> frozenset[str]:
    """The ids a built page defines (targets of ``#fragment`` links)."""
    return frozenset(re.findall(r'\bid="([^"]+)"', path.read_text(encoding="utf-8")))


def local_file(url: str, site_url: str) -> Path:
    """The file under the built site that a local URL serves."""
    path = unquote(urlsplit(url).path)
    target = SITE / path.lstrip("/")
    return target / "index.html" if path.endswith("/") or target.is_dir() else target


def screenshot_name(page_name: str) -> str:
    return page_name.removesuffix(".html").replace("/", "__") + ".png"


@pytest.mark.parametrize("name", pages())
def test_every_page_renders_cleanly(page, site_url, name):
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: console_errors.append(f"uncaught: {error}"))
    response = page.goto(f"{site_url}/{name}", wait_until="load")
    assert response is not None and response.ok, f"{name}: HTTP {response.status if response else 'no response'}"
    if 'http-equiv="refresh"' in (SITE / name).read_text(encoding="utf-8").lower():  # index.html forwards
        page.wait_for_url(lambda url: not url.endswith(name), timeout=10_000)
        page.wait_for_load_state("load")

    mathjax = page.evaluate(WAIT_FOR_MATHJAX)
    math = page.evaluate(MATH_REPORT)
    assert not math["untypeset"], f"{name}: formulas MathJax left as text: {math['untypeset'][:5]}"
    assert not math["errors"], f"{name}: MathJax could not typeset: {math['errors'][:5]}"
    raw = RAW_TEX.search(math["text"])
    assert raw is None, f"{name}: raw TeX in the page text: ...{math['text'][max(raw.start() - 60, 0):raw.end() + 60]}..."
    if math["formulas"]:
        assert mathjax == "typeset", f"{name}: formulas but no MathJax"

    broken = page.evaluate(BROKEN_IMAGES)
    assert not broken, f"{name}: images that did not load: {broken}"

    links = page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    dead = []
    for link in {link for link in links if link.startswith(site_url)}:
        target = local_file(link, site_url)
        fragment = unquote(urlsplit(link).fragment)
        if not target.is_file():
            dead.append(f"{link} (no file {target.relative_to(SITE)})")
        elif fragment and target.suffix == ".html" and fragment not in anchors_of(target):
            dead.append(f"{link} (no #{fragment} in {target.relative_to(SITE)})")
    assert not dead, f"{name}: internal links that do not resolve: {sorted(dead)}"

    SCREENS.mkdir(parents=True, exist_ok=True)
    screen = SCREENS / screenshot_name(name)
    page.screenshot(path=str(screen))
    assert screen.stat().st_size > 0

    assert not page.outside_requests, f"{name}: requests outside the book (it must work offline): {page.outside_requests}"
    assert not console_errors, f"{name}: console errors: {console_errors}"


def toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [chapter["file"] for chapter in part.get("chapters", [])]
    files += [chapter["file"] for chapter in toc.get("chapters", [])]
    return [str(Path(file).with_suffix("")) for file in files]


def test_every_page_of_the_table_of_contents_was_built(site_url):
    missing = [file for file in toc_files() if not (SITE / f"{file}.html").is_file()]
    assert not missing, f"pages in _toc.yml with no HTML in {SITE}: {missing} (rerun make book)"


def test_search_finds_a_term_from_a_chapter(page, site_url):
    page.goto(f"{site_url}/search.html?q=Markov", wait_until="load")
    page.wait_for_selector("#search-results ul.search li a", timeout=30_000)
    hits = page.evaluate("() => Array.from(document.querySelectorAll('#search-results ul.search li a')).map(a => a.href)")
    assert any("/chapters/" in hit for hit in hits), f"searching 'Markov' found no chapter: {hits}"


CHAPTER_PAGES = [name for name in pages() if re.fullmatch(r"chapters/\d\d-.*\.html", name)]


CHAPTER_SHAPE = """() => {
  const article = document.querySelector('article') || document.body;
  const admonitions = Array.from(article.querySelectorAll('.admonition'));
  const sections = Array.from(article.querySelectorAll('section > h2')).map(h => h.textContent.replace(/[#¶]/g, '').trim());
  const firstSection = article.querySelector('section section');
  const opening = admonitions.length ? admonitions[0] : null;
  return {opening: opening ? opening.querySelector('.admonition-title').textContent.trim() : null,
          openingBeforeSections: !!(opening && firstSection &&
             (opening.compareDocumentPosition(firstSection) & Node.DOCUMENT_POSITION_FOLLOWING)),
          last: sections[sections.length - 1] || null,
          wide: Array.from(article.querySelectorAll('.cell_input pre')).filter(pre => pre.scrollWidth > pre.clientWidth + 1)
                  .map(pre => pre.textContent.split('\\n').reduce((a, b) => (b.length > a.length ? b : a), '').slice(0, 100))};
}"""


@pytest.mark.parametrize("name", CHAPTER_PAGES)
def test_every_chapter_has_its_shape_fits_the_page_and_offers_downloads(page, site_url, name):
    page.goto(f"{site_url}/{name}", wait_until="load")
    shape = page.evaluate(CHAPTER_SHAPE)
    assert shape["opening"] == "In this chapter" and shape["openingBeforeSections"], \
        f"{name}: the page should open with its objectives box ('In this chapter'), found {shape['opening']!r}"
    assert shape["last"] is not None and shape["last"].endswith("Exercises"), \
        f"{name}: the page should end with its exercises, its last section is {shape['last']!r}"
    assert not shape["wide"], f"{name}: code cells wider than the page (longest lines): {shape['wide'][:5]}"

    downloads = page.evaluate("() => Array.from(document.querySelectorAll('a[href*=\"_sources/\"]')).map(a => a.href)")
    stem = Path(name).stem
    notebook = [link for link in downloads if link.endswith(f"{stem}.ipynb")]
    text = [link for link in downloads if link.endswith(f"{stem}.md")]
    assert notebook and text, f"{name}: download buttons for .ipynb and .md expected, found {downloads}"
    executed = json.loads(local_file(notebook[0], site_url).read_text(encoding="utf-8"))
    code = [cell for cell in executed["cells"] if cell["cell_type"] == "code"]
    assert code and any(cell.get("outputs") for cell in code), f"{name}: the notebook offered has no executed cells"
    assert "jupytext" in local_file(text[0], site_url).read_text(encoding="utf-8")
