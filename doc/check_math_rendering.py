"""Check in headless Chromium that every formula of the built docs renders.

Usage: ``python doc/check_math_rendering.py [doc/_build/html]``.

Each HTML page holding math (``class="math``) is opened from disk in
Chromium, without network, and the DOM after MathJax has run is read back:
every math element must have become a MathJax ``<mjx-container>``, and no
LaTeX delimiter may be left in the page text. Exit status 1 names the pages
that fail; 0 otherwise. Without a Chromium binary the check is skipped
(status 0, with a message), so ``.ci/run`` can call it everywhere; the
build itself already asserts that every page loads the local MathJax.
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

MATH = re.compile(r'class="math[ "]')
RAW_LATEX = re.compile(r"\\\(|\\\[")
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_browser():
    """The first Chromium-like binary on PATH, or None."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path is not None:
            return path
    return None


def rendered_dom(browser, page, profile):
    """The DOM of ``page`` once its scripts have run (virtual time, no network)."""
    command = [
        browser,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",
        "--dump-dom",
        "file://" + os.path.abspath(page),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    return done.stdout


def text_outside_code(html):
    """Page text without scripts, code blocks and tags (where LaTeX may be quoted)."""
    html = re.sub(r"<(script|style|pre|code)\b.*?</\1>", " ", html, flags=re.S)
    return re.sub(r"<[^>]+>", " ", html)


def check_page(browser, page, profile):
    """A list of problems of one page (empty when all its math rendered)."""
    with open(page, encoding="utf-8") as handle:
        expected = len(MATH.findall(handle.read()))
    dom = rendered_dom(browser, page, profile)
    rendered = dom.count("<mjx-container")
    problems = []
    if rendered < expected:
        problems.append(f"{rendered} of {expected} formulas rendered")
    if RAW_LATEX.search(text_outside_code(dom)):
        problems.append("raw LaTeX delimiters left in the page")
    return expected, problems


def main(build_dir):
    browser = find_browser()
    if browser is None:
        print("check_math_rendering: no Chromium on PATH, skipped")
        return 0
    pages = []
    for root, _, files in os.walk(build_dir):
        for name in sorted(files):
            path = os.path.join(root, name)
            if name.endswith(".html"):
                with open(path, encoding="utf-8") as handle:
                    if MATH.search(handle.read()):
                        pages.append(path)
    if not pages:
        print(f"check_math_rendering: no page with math under {build_dir}")
        return 1
    failures, formulas = [], 0
    with tempfile.TemporaryDirectory() as profile:
        for page in pages:
            count, problems = check_page(browser, page, profile)
            formulas += count
            if problems:
                name = os.path.relpath(page, build_dir)
                failures.append(f"{name}: {'; '.join(problems)}")
    if failures:
        listing = "\n  ".join(failures)
        print(f"check_math_rendering: formulas not rendered:\n  {listing}")
        return 1
    print(
        f"check_math_rendering: {formulas} formulas on {len(pages)} pages "
        f"rendered by MathJax in {os.path.basename(browser)}, offline"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "doc/_build/html"))
