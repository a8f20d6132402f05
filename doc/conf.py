"""Sphinx configuration of the hybridnet documentation (``bash dev.sh docs`` builds it)."""

import os
import pathlib
import sys

import hybridnet

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

project = "hybridnet"
copyright = "2026, the hybridnet developers"
release = version = hybridnet.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_copybutton",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "_inventories", "auto_examples/*.ipynb", "auto_examples/*.py",
                    "auto_examples/*.zip", "auto_examples/*.json", "auto_examples/*.md5"]
nitpicky = True
# numpydoc's type fields ("array-like of shape (n, d)", "int, default=10") are prose, not
# references; the names they mention are linked where the text uses a role.
numpydoc_xref_param_type = False
numpydoc_show_class_members = False
numpydoc_validation_checks = set()

autosummary_generate = True
# scikit-learn's metadata-routing setters are generated on every estimator and documented there.
autodoc_default_options = {
    "members": True, "inherited-members": False,
    "exclude-members": "set_fit_request,set_score_request,set_predict_request,"
                       "set_partial_fit_request,set_transform_request"}
# A torch module's undocumented forward would show torch.nn.Module.forward's text.
autodoc_inherit_docstrings = False
autodoc_typehints = "none"
autodoc_member_order = "bysource"
# torch.nn.Module.forward and friends document themselves on PyTorch's site.
nitpick_ignore_regex = [(r"py:.*", r"torch\._.*")]

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# The build machines reach package registries only: the inventories are written from the
# installed packages by _inventories/make_inventories.py instead of being downloaded.
INVENTORIES = pathlib.Path(__file__).parent / "_inventories"
intersphinx_mapping = {
    "python": ("https://docs.python.org/3/", str(INVENTORIES / "python.inv")),
    "numpy": ("https://numpy.org/doc/stable/", str(INVENTORIES / "numpy.inv")),
    "scipy": ("https://docs.scipy.org/doc/scipy/", str(INVENTORIES / "scipy.inv")),
    "sklearn": ("https://scikit-learn.org/stable/", str(INVENTORIES / "sklearn.inv")),
    "torch": ("https://docs.pytorch.org/docs/stable/", str(INVENTORIES / "torch.inv")),
}

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",
    "ignore_pattern": r"__init__\.py|/output/",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": True,
    "reference_url": {"hybridnet": None},
    "matplotlib_animations": False,
}

html_theme = "pydata_sphinx_theme"
html_title = f"hybridnet {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "header_links_before_dropdown": 5,
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_show_sourcelink = False
html_context = {"default_mode": "light"}
os.environ.setdefault("MPLBACKEND", "Agg")
