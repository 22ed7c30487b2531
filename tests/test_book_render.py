"""The book builds with warnings as errors, and its chapters render in a real browser.

Builds the book the way ``make book`` does (``companion reproduce --profile smoke`` into a
temporary ``book/``, then ``jupyter-book build --warningiserror``, with ``BOOK_REPOSITORY_URL``
set as the publishing workflow sets it), opens every chapter in headless Chromium **with the
network blocked** and checks the numbered heading, that figures and tables are numbered per
chapter ("Fig. 9.1", never the paper-like "Fig. 4"), that every image loaded, that the math was
typeset by the MathJax copy served from the site itself, and that the launch buttons open the
committed source notebook (``notebooks/NN_name.ipynb``). Screenshots go to
``_build/screenshots/`` (printed; run with ``-s`` to see the paths). Skipped, with the reason,
where Chromium / chromedriver (Debian: ``apt-get install chromium chromium-driver``;
``.ci/run`` installs them) or Jupyter Book are missing.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "_build" / "screenshots"
#: The repository URL the book is built with here, as the publishing workflow passes it.
REPOSITORY_URL = "https://github.com/example-org/example-companion"


def _toc_pages() -> list[tuple[str, bool]]:
    """Every page of _toc.yml in order, with whether its part is numbered."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = toc.get("parts", [{"chapters": toc.get("chapters", [])}])
    return [(toc["root"], False)] + [(c["file"], bool(part.get("numbered")))
                                     for part in parts for c in part["chapters"]]


def _chapter_numbers() -> dict[str, int]:
    """Chapter number of each page in a numbered part (continued across parts, as Jupyter Book's
    multi-toctree numbering does)."""
    numbered = [page for page, is_numbered in _toc_pages() if is_numbered]
    return {page: k for k, page in enumerate(numbered, start=1)}


#: chapter (book-relative page) -> text its first heading starts with
def _chapters() -> dict[str, str]:
    """Every page of _toc.yml and the start of its title (a notebook's first "# " heading)."""
    out = {}
    for page, _ in _toc_pages():
        source = ROOT / "notebooks" / f"{Path(page).name}.ipynb"
        if source.exists():
            cells = json.loads(source.read_text())["cells"]
            text = "".join(next(c for c in cells if c["cell_type"] == "markdown")["source"])
        else:
            text = (ROOT / f"{page}.md").read_text()
        title = next(line for line in text.splitlines() if line.startswith("# "))[2:]
        out[page] = title.split(":")[0].replace("*", "").replace("`", "").strip()
    return out


CHAPTERS = _chapters()
NUMBERS = _chapter_numbers()

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built_book(tmp_path_factory) -> Path:
    """A copy of the book's sources, reproduced at the smoke profile and built to HTML."""
    pytest.importorskip("jupyter_book", reason="jupyter-book not installed (pip install -e '.[book]')")
    pytest.importorskip("papermill", reason="papermill not installed (pip install -e '.[book]')")
    jupyter_book = Path(sys.executable).with_name("jupyter-book")
    if not jupyter_book.exists():
        jupyter_book = Path(shutil.which("jupyter-book") or "jupyter-book")
    src = tmp_path_factory.mktemp("book-src")
    for name in ("_config.yml", "_toc.yml", "references.bib"):
        shutil.copy2(ROOT / name, src / name)
    shutil.copytree(ROOT / "notebooks", src / "notebooks")
    shutil.copytree(ROOT / "results" / "smoke", src / "results" / "smoke",  # committed smoke runs
                    ignore=shutil.ignore_patterns("checkpoint.pt"))
    shutil.copytree(ROOT / "book", src / "book",
                    ignore=shutil.ignore_patterns("*.ipynb", "*.failed", "_build"))
    run = subprocess.run(
        [sys.executable, "-c", "from companion.book.reproduce import reproduce; "
         "reproduce('smoke', progress=False)"],
        cwd=src, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, f"companion reproduce failed:\n{run.stdout}\n{run.stderr}"
    build = subprocess.run(
        [str(jupyter_book), "build", "--warningiserror", "--keep-going", "--path-output",
         str(src), str(src)],
        cwd=src, capture_output=True, text=True, timeout=600,
        env={**os.environ, "BOOK_REPOSITORY_URL": REPOSITORY_URL},
    )
    assert build.returncode == 0, f"jupyter-book build failed:\n{build.stdout[-6000:]}\n{build.stderr[-3000:]}"
    html = src / "_build" / "html"
    assert (html / "index.html").is_file()
    return html


def test_executed_chapter_hides_parameter_cells(built_book):
    page = (built_book / "book" / "01_parameters.html").read_text(encoding="utf-8")
    assert "tag_hide-input" in page  # MyST-NB marks each rendered cell with its tags ...
    assert "tag_parameters" not in page  # ... so the parameter cells were not rendered
    assert "tag_injected-parameters" not in page
    assert page.count("profile smoke") >= 3  # the table captions state the profile instead


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(f"{CHROMIUM} / {CHROMEDRIVER} missing (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium not installed (pip install -e '.[test]')")
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    import tempfile

    profile_dir = tempfile.mkdtemp(prefix="chromium-profile-")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", "--window-size=1280,1600", f"--user-data-dir={profile_dir}",
                 # No network: every host name fails to resolve, so a page that needs a CDN
                 # (MathJax, fonts, scripts) shows it here; the book is read from file:// URLs.
                 "--host-resolver-rules=MAP * ~NOTFOUND"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile_dir, ignore_errors=True)


@pytest.mark.parametrize("chapter", sorted(CHAPTERS))
def test_chapter_renders(built_book, browser, chapter):
    from selenium.webdriver.common.by import By

    page = built_book / f"{chapter}.html"
    assert page.is_file(), f"{page} was not built"
    browser.set_window_size(1280, 1600)
    browser.get(page.as_uri())
    heading = browser.find_element(By.CSS_SELECTOR, "article section h1").text
    number = NUMBERS.get(chapter)
    prefix = f"{number}. " if number else ""
    assert heading.startswith(prefix + CHAPTERS[chapter]), (heading, prefix + CHAPTERS[chapter])
    assert CHAPTERS[chapter] in browser.title
    captions = [c.text for c in browser.find_elements(
        By.CSS_SELECTOR, "article figcaption .caption-number, article table caption .caption-number")]
    # Numbered per chapter ("Fig. 9.1", "Table 9.2"), never like the paper's "Figure 4".
    if number is None:
        assert not captions, f"numbered captions on the unnumbered page {chapter}: {captions}"
    not_prefixed = [c for c in captions if not re.fullmatch(rf"(Fig\.|Table) {number}\.\d+", c.strip())]
    assert not not_prefixed, f"captions on {chapter} without the chapter prefix {number}.: {not_prefixed}"
    text = browser.find_element(By.CSS_SELECTOR, "article").text
    unparsed = [line for line in text.splitlines() if "```{" in line or ":::{" in line or "{glue:" in line]
    assert not unparsed, f"MyST that was not parsed on {chapter}: {unparsed[:3]}"
    images = browser.find_elements(By.CSS_SELECTOR, "article img")
    broken = [img.get_attribute("src")[:80] for img in images
              if not browser.execute_script(
                  "return arguments[0].complete && arguments[0].naturalWidth > 0", img)]
    assert not broken, f"images that did not load on {chapter}: {broken}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1280, min(max(height, 800), 12000))  # the whole page
    shot = SCREENSHOTS / f"{chapter.replace('/', '_')}.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")


def test_parameters_chapter_numbers_figure_and_tables(built_book, browser):
    from selenium.webdriver.common.by import By

    browser.get((built_book / "book" / "01_parameters.html").as_uri())
    number = NUMBERS["book/01_parameters"]
    figures = browser.find_elements(By.CSS_SELECTOR, "article figure")
    assert len(figures) == 1
    assert figures[0].find_element(By.CSS_SELECTOR, "figcaption").text.startswith(f"Fig. {number}.1 ")
    assert browser.execute_script(
        "const i = arguments[0].querySelector('img'); return i && i.naturalWidth > 100", figures[0])
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "article table caption")]
    labels = [c.split(" ", 2)[:2] for c in captions]
    assert [w for w, _ in labels] == ["Table"] * 3  # three numbered tables, numbered in the chapter
    assert [n for _, n in labels] == [f"{number}.1", f"{number}.2", f"{number}.3"]
    assert all("profile smoke" in c for c in captions)
    rows = browser.find_elements(By.CSS_SELECTOR, "article table tbody tr")
    assert len(rows) == (10 + 2) + (3 + 2) + 7  # Table 3, Table 4, Table 1 rows


def test_math_renders_offline(built_book, browser):
    """Chapter 8's math is typeset by MathJax from the site's own _static (the browser has no
    network), so the page shows no raw TeX."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    chapter = "book/08_mdl"
    source = (ROOT / "notebooks" / f"{Path(chapter).name}.ipynb").read_text()
    assert "\\\\frac" in source and "\\\\mathbf" in source  # the page has such math to render
    browser.get((built_book / f"{chapter}.html").as_uri())
    scripts = [s.get_attribute("src") for s in browser.find_elements(By.CSS_SELECTOR, "script[src]")]
    mathjax = [src for src in scripts if "mathjax" in src.lower()]
    assert mathjax, f"no MathJax script on {chapter}: {scripts}"
    assert all(src.startswith("file://") for src in mathjax), f"MathJax not served by the site: {mathjax}"

    def typeset(driver):
        return driver.execute_script(
            "return window.MathJax && MathJax.startup && MathJax.startup.promise "
            "&& document.querySelectorAll('mjx-container').length")

    WebDriverWait(browser, 30).until(typeset, message=f"MathJax typeset nothing on {chapter}")
    browser.execute_script("return MathJax.startup.promise")  # wait for the whole page
    WebDriverWait(browser, 30).until(
        lambda d: not d.find_elements(By.CSS_SELECTOR, "article .math:not(:has(mjx-container))"),
        message="math elements left untypeset")
    assert len(browser.find_elements(By.CSS_SELECTOR, "article mjx-container")) >= 10
    assert not browser.find_elements(By.CSS_SELECTOR, "mjx-merror"), "MathJax reported TeX errors"
    text = browser.find_element(By.CSS_SELECTOR, "article").text
    raw = [line for line in text.splitlines() if "\\frac" in line or "\\mathbf" in line or "$$" in line]
    assert not raw, f"raw TeX visible on {chapter}: {raw[:3]}"


def _launch_links(page: Path) -> dict[str, str]:
    """Launch/repository links in a built page's top bar: {label: href}."""
    html = page.read_text(encoding="utf-8")
    links: dict[str, str] = {}
    for href in re.findall(r'href="([^"]+)"', html):
        for label, start in (("colab", "https://colab.research.google.com/"),
                             ("binder", "https://mybinder.org/"),
                             ("repository", REPOSITORY_URL)):
            if href.startswith(start) and label not in links:
                links[label] = href
    return links


@pytest.mark.parametrize("chapter", sorted(c for c in CHAPTERS
                                           if (ROOT / "notebooks" / f"{Path(c).name}.ipynb").exists()))
def test_launch_buttons_open_the_source_notebook(built_book, chapter):
    """Colab and Binder open the committed notebooks/NN_name.ipynb of the repository the book was
    built for (BOOK_REPOSITORY_URL), not the executed copy book/NN_name.ipynb (not committed)."""
    import yaml

    branch = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["branch"]
    name = Path(chapter).name
    links = _launch_links(built_book / f"{chapter}.html")
    org_repo = REPOSITORY_URL.removeprefix("https://github.com/")
    assert links.get("colab") == (f"https://colab.research.google.com/github/{org_repo}"
                                  f"/blob/{branch}/notebooks/{name}.ipynb"), links
    assert links.get("binder", "").endswith(f"/{org_repo}/{branch}?urlpath=lab/tree/notebooks/{name}.ipynb"), links
    assert links.get("repository") == REPOSITORY_URL, links
    assert (ROOT / "notebooks" / f"{name}.ipynb").is_file()  # the committed source the links open


def test_top_bar_screenshot(built_book, browser):
    """The launch menu of a chapter opens and lists Binder and Colab (screenshot of the top bar)."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 800)
    browser.get((built_book / "book" / "08_mdl.html").as_uri())
    browser.find_element(By.CSS_SELECTOR, ".dropdown-launch-buttons button").click()
    items = browser.find_elements(By.CSS_SELECTOR, ".dropdown-launch-buttons .dropdown-menu a")
    texts = [item.text.strip() for item in items if item.is_displayed()]
    assert texts == ["Binder", "Colab"], texts
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "top_bar_launch_buttons.png"
    browser.save_screenshot(str(shot))
    print(f"screenshot: {shot}")


def test_training_length_animation_plays_offline(built_book, browser):
    """Issue 16: the training-length chapter's animation (matplotlib ``to_jshtml``: frames embedded
    as images, its own script) plays in the browser with the network blocked: stepping a frame
    shows another embedded image, and the static small multiples are there for print."""
    from selenium.webdriver.common.by import By

    browser.set_window_size(1280, 1600)
    browser.get((built_book / "book" / "13_training_length.html").as_uri())
    animations = browser.find_elements(By.CSS_SELECTOR, "article .animation")
    assert len(animations) == 1, "no to_jshtml animation on the page"
    frame = animations[0].find_element(By.CSS_SELECTOR, "img")
    first = frame.get_attribute("src")
    assert first.startswith("data:image/png;base64,")  # embedded, nothing fetched
    assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth > 0", frame)
    slider = animations[0].find_element(By.CSS_SELECTOR, "input[type=range]")
    frames = int(slider.get_attribute("max")) + 1
    assert frames >= 3
    browser.execute_script("arguments[0].scrollIntoView()", animations[0])
    browser.execute_script("arguments[0].value = arguments[0].max; arguments[0].oninput && arguments[0].oninput();"
                           "arguments[0].dispatchEvent(new Event('input'));", slider)
    assert frame.get_attribute("src") != first, "the animation did not change frame"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "training_length_animation.png"
    animations[0].screenshot(str(shot))
    print(f"screenshot: {shot}")
    figures = browser.find_elements(By.CSS_SELECTOR, "article figure img")
    assert len(figures) >= 2  # the curves and the small multiples
