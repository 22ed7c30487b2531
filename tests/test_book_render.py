"""The book builds with warnings as errors, and its chapters render in a real browser.

Builds the book the way ``make book`` does (``companion reproduce --profile smoke`` into a
temporary ``book/``, then ``jupyter-book build --warningiserror``), opens every chapter in
headless Chromium and checks the heading, the numbered figures and tables, and that every image
loaded. Screenshots go to ``_build/screenshots/`` (printed; run with ``-s`` to see the paths).
Skipped, with the reason, where Chromium / chromedriver (Debian: ``apt-get install chromium
chromium-driver``; ``.ci/run`` installs them) or Jupyter Book are missing.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "_build" / "screenshots"
#: chapter (book-relative page) -> text its first heading starts with
def _chapters() -> dict[str, str]:
    """Every page of _toc.yml and the start of its title (a notebook's first "# " heading)."""
    import yaml

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]] + [c["file"] for part in toc.get("parts", [{"chapters": toc.get("chapters", [])}])
                             for c in part["chapters"]]
    out = {}
    for page in files:
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
        [sys.executable, "-c", "from companion.reproduce import reproduce; "
         "reproduce('smoke', progress=False)"],
        cwd=src, capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, f"companion reproduce failed:\n{run.stdout}\n{run.stderr}"
    build = subprocess.run(
        [str(jupyter_book), "build", "--warningiserror", "--keep-going", "--path-output",
         str(src), str(src)],
        cwd=src, capture_output=True, text=True, timeout=600,
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
                 "--disable-dev-shm-usage", "--window-size=1280,1600", f"--user-data-dir={profile_dir}"):
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
    assert heading.startswith(CHAPTERS[chapter]), heading
    assert CHAPTERS[chapter] in browser.title
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
    figures = browser.find_elements(By.CSS_SELECTOR, "article figure")
    assert len(figures) == 1
    assert figures[0].find_element(By.CSS_SELECTOR, "figcaption").text.startswith("Fig. ")
    assert browser.execute_script(
        "const i = arguments[0].querySelector('img'); return i && i.naturalWidth > 100", figures[0])
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "article table caption")]
    labels = [c.split(" ", 2)[:2] for c in captions]
    assert [w for w, _ in labels] == ["Table"] * 3  # three numbered tables, consecutively numbered
    numbers = [int(n.rstrip(".:")) for _, n in labels]
    assert numbers == list(range(numbers[0], numbers[0] + 3))
    assert all("profile smoke" in c for c in captions)
    rows = browser.find_elements(By.CSS_SELECTOR, "article table tbody tr")
    assert len(rows) == (10 + 2) + (3 + 2) + 7  # Table 3, Table 4, Table 1 rows
