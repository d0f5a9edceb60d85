"""Sphinx configuration for skmonge.

Build with ``make docs`` (``sphinx-build -W -b html doc doc/_build/html``):
warnings are errors. sphinx-gallery executes the scripts in ``doc/examples``
and generates their pages, figures and printed output under
``doc/auto_examples``; MathJax is served from ``_static/mathjax`` of the build
itself, so formulas render without a network.
"""

import importlib
import os
import pkgutil
import re
import sys

# the package itself, whether or not it is installed in the environment
sys.path.insert(0, os.path.abspath(os.path.join(os.path.dirname(__file__), "..")))

import skmonge  # noqa: E402

project = "skmonge"
author = "skmonge developers"
copyright = "skmonge developers"
release = version = skmonge.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    # MathJax 3 copied into the build (_static/mathjax), no CDN
    "sphinx-mathjax-offline",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]
templates_path = ["_templates"]
exclude_patterns = ["_build", "examples/GALLERY_HEADER.rst"]
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
# numpydoc renders the Parameters/Returns sections; the class templates list
# the methods themselves
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False

html_theme = "pydata_sphinx_theme"
html_title = f"skmonge {release}"
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    # sg_download_links: the .py / .ipynb links of an example page (empty
    # elsewhere)
    "secondary_sidebar_items": ["page-toc", "sourcelink", "sg_download_links"],
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version", "theme-version"],
}
# the navigation column is useless on the single-page sections
html_sidebars = {"changelog": [], "getting_started": [], "user_guide": []}

# The slow examples read SKMONGE_EXAMPLES_QUICK and then train for fewer
# iterations; their pages say so. Set here so that every build (CI included)
# stays within a few minutes on two cores.
os.environ.setdefault("SKMONGE_EXAMPLES_QUICK", "1")
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"/plot_",  # run every plot_*.py
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "download_all_examples": True,
    "doc_module": ("skmonge",),
    "backreferences_dir": "generated/backreferences",
    "reference_url": {"skmonge": None},
    "min_reported_time": 1,
    "reset_modules": ("matplotlib",),
    "show_memory": False,
}


def _public_modules():
    """``skmonge`` and every public module below it, subpackages included.

    A module is public when no component of its dotted name starts with an
    underscore (``skmonge.neural.icnn`` is, ``skmonge._kernels.kovlp`` is not).
    """
    names = ["skmonge"]
    for info in pkgutil.walk_packages(skmonge.__path__, prefix="skmonge."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def _listed_objects(text):
    """The objects api.rst lists: autosummary entries under each currentmodule."""
    objects, module = [], None
    for line in text.splitlines():
        match = re.match(r"^\.\. currentmodule:: ([\w.]+)", line)
        if match:
            module = importlib.import_module(match.group(1))
        elif module is not None and re.match(r"^ {3}\w+\s*$", line):
            objects.append(getattr(module, line.strip(), None))
    return objects


def _check_api_page(app):
    """Warn (an error under -W) when a public name is missing from api.rst.

    Every module of the package that declares ``__all__`` is checked, so a new
    module or function cannot be published without reference documentation.
    A name counts as listed when the same object is listed under any module
    (``skmonge.EntropicSparseMap`` documents ``skmonge.entropic``'s).
    """
    from sphinx.util import logging

    logger = logging.getLogger(__name__)
    with open(os.path.join(app.srcdir, "api.rst"), encoding="utf-8") as handle:
        listed = _listed_objects(handle.read())
    missing = []
    for module_name in _public_modules():
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            logger.warning("cannot import %s to check api.rst: %s", module_name, exc)
            continue
        for name in getattr(module, "__all__", []):
            if name.startswith("__"):
                continue
            obj = getattr(module, name)
            if not any(obj is other for other in listed):
                missing.append(f"{module_name}.{name}")
    if missing:
        logger.warning(
            "api.rst does not list the public name(s): %s", ", ".join(missing)
        )


MATHJAX_PATH = "_static/mathjax/tex-chtml.js"


def _check_local_math(app, exception):
    """Fail the build when a page with math would load MathJax from the network.

    Every HTML page holding a formula must load the MathJax copy shipped in
    the build (``_static/mathjax``) through a relative path, and that file
    must exist; no page may reference a remote MathJax or KaTeX.
    """
    if exception is not None or app.builder.format != "html":
        return
    from sphinx.errors import ExtensionError

    outdir = app.outdir
    if not os.path.isfile(os.path.join(outdir, MATHJAX_PATH)):
        raise ExtensionError(f"the build has no local MathJax at {MATHJAX_PATH}")
    remote = re.compile(
        r"<script[^>]+src=\"(?:https?:)?//[^\"]*(?:mathjax|katex)", re.IGNORECASE
    )
    local = re.compile(r'<script[^>]+src="((?:\.\./)*)' + re.escape(MATHJAX_PATH))
    pages_with_math, problems = 0, []
    for root, _, files in os.walk(outdir):
        for name in files:
            if not name.endswith(".html"):
                continue
            path = os.path.join(root, name)
            with open(path, encoding="utf-8") as handle:
                html = handle.read()
            page = os.path.relpath(path, outdir)
            if remote.search(html):
                problems.append(f"{page} loads MathJax/KaTeX from the network")
            if 'class="math' not in html:
                continue
            pages_with_math += 1
            match = local.search(html)
            if match is None:
                problems.append(f"{page} has math but does not load {MATHJAX_PATH}")
            elif not os.path.isfile(
                os.path.join(os.path.dirname(path), match.group(1), MATHJAX_PATH)
            ):
                problems.append(f"{page}: the MathJax path it loads does not exist")
    if pages_with_math == 0:
        problems.append("no page holds math: the check itself is broken")
    if problems:
        raise ExtensionError("; ".join(problems))


def setup(app):
    app.connect("builder-inited", _check_api_page)
    # after sphinx-mathjax-offline has copied MathJax into the build
    app.connect("build-finished", _check_local_math, priority=900)
