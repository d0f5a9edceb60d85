"""Sphinx configuration for skmonge.

Build with ``make docs`` (``sphinx-build -W -b html doc doc/_build/html``):
warnings are errors. The examples in ``doc/examples`` are included as source
and are not executed by the build.
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
    "numpydoc",
]
templates_path = ["_templates"]
exclude_patterns = ["_build"]
autosummary_generate = True
autodoc_default_options = {"member-order": "bysource"}
# numpydoc renders the Parameters/Returns sections; the class templates list
# the methods themselves
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
html_theme = "alabaster"
html_theme_options = {"description": "Displacement-sparse optimal-transport maps"}


def _public_modules():
    """``skmonge`` and every public submodule (no leading underscore)."""
    names = ["skmonge"]
    for info in pkgutil.iter_modules(skmonge.__path__):
        if not info.name.startswith("_"):
            names.append(f"skmonge.{info.name}")
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


def setup(app):
    app.connect("builder-inited", _check_api_page)
