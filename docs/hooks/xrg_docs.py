"""MkDocs hook: the parts of the docs site that are read from the code, so none can drift.

- `<!-- xrg:catalogue -->` and `<!-- xrg:tasks -->` in a page become the block catalogue and
  the task table (`xrg.blocks.catalogue`: kinds, blocks, signatures, recipes using each).
- `api/<package>.md`: one API reference page per public package of `xrg`, rendered from the
  docstrings by mkdocstrings, plus `api/index.md` listing them. A new package gets its page
  without anyone editing the docs.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path

from mkdocs.structure.files import File

ROOT = Path(__file__).resolve().parents[2]
MARKERS = {
    "<!-- xrg:catalogue -->": lambda: _catalogue().markdown(ROOT / "recipes"),
    "<!-- xrg:tasks -->": lambda: _catalogue().tasks_markdown(ROOT / "recipes"),
}


def _catalogue():
    return importlib.import_module("xrg.blocks.catalogue")


def _packages() -> list[str]:
    """`xrg` and every package below it, skipping private ones (`_name`)."""
    import xrg

    names = ["xrg"]
    for module in pkgutil.walk_packages(xrg.__path__, prefix="xrg."):
        if module.ispkg and not any(part.startswith("_") for part in module.name.split(".")):
            names.append(module.name)
    return sorted(names)


def _api_page(package: str) -> str:
    module = importlib.import_module(package)
    page = [f"# `{package}`", ""]
    if hasattr(module, "__all__"):
        # A package that re-exports its API is documented by that list.
        page += [f"::: {package}", "    options:", "      members_order: source", ""]
    else:
        # One that only groups modules (xrg, xrg.metrics) is documented module by module;
        # its sub-packages have their own pages.
        page += [f"::: {package}", "    options:", "      members: false", ""]
        for sub in pkgutil.iter_modules(module.__path__, prefix=f"{package}."):
            if not sub.ispkg and not sub.name.rsplit(".", 1)[-1].startswith("_"):
                page += [f"## `{sub.name}`", "", f"::: {sub.name}", "    options:", "      heading_level: 3", ""]
    return "\n".join(page)


def on_files(files, config):
    pages = _packages()
    index = ["# API reference", "", "Generated from the docstrings, one page per package.", ""]
    for package in pages:
        files.append(File.generated(config, f"api/{package}.md", content=_api_page(package)))
        index.append(f"- [`{package}`]({package}.md)")
    files.append(File.generated(config, "api/index.md", content="\n".join(index) + "\n"))
    return files


def on_page_markdown(markdown, page, config, files):
    for marker, render in MARKERS.items():
        if marker in markdown:
            markdown = markdown.replace(marker, render())
    return markdown
