"""The block catalogue, read from the code: every kind, every block of it, the recipes using it.

A kind is a `Block` subclass defined in a kind's `base.py` (`xrg/blocks/<kind>/base.py`); its
blocks are the concrete classes below it, wherever they live (`UniCrossEncoder` sits in
`adapters/` but is an image encoder). The docs site renders this at build time
(`docs/hooks/catalogue.py`), so the catalogue cannot drift from the code.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

import xrg.blocks
from xrg.blocks.base import Block


@dataclass
class Kind:
    base: type
    blocks: list[type] = field(default_factory=list)


def _subclasses(cls: type) -> list[type]:
    found = []
    for sub in cls.__subclasses__():
        found += [sub, *_subclasses(sub)]
    return found


def _is_xrg(cls: type) -> bool:
    return cls.__module__.startswith("xrg.") and not cls.__module__.startswith("xrg.blocks.base")


# The order a study flows through a report model; a kind not named here comes after, by name.
PIPELINE = ["encoders", "adapters", "aligners", "findings", "clues", "retrieval", "guides", "decoders"]


def kinds() -> list[Kind]:
    """Every kind in pipeline order, each with its concrete blocks sorted by name."""
    packages = [m.name for m in pkgutil.iter_modules(xrg.blocks.__path__) if m.ispkg]
    packages.sort(key=lambda name: (PIPELINE.index(name) if name in PIPELINE else len(PIPELINE), name))
    found = []
    for package in packages:
        try:
            base_module = importlib.import_module(f"xrg.blocks.{package}.base")
        except ModuleNotFoundError:
            continue
        for _, cls in inspect.getmembers(base_module, inspect.isclass):
            if cls.__module__ == base_module.__name__ and issubclass(cls, Block):
                found.append(Kind(cls))
    bases = {kind.base for kind in found}
    for kind in found:
        # A block counts under every kind it implements (a Q-Former is an aligner; being a
        # vocabulary owner is how, not what); bases themselves are not blocks.
        kind.blocks = sorted({c for c in _subclasses(kind.base) if _is_xrg(c) and c not in bases and not inspect.isabstract(c)},
                             key=lambda c: c.__name__)
    return found


def other_blocks() -> list[type]:
    """Blocks that are parts of other blocks (no kind): listed so nothing in the zoo is hidden."""
    in_kinds = {c for kind in kinds() for c in (kind.base, *kind.blocks)}
    return sorted({c for c in _subclasses(Block) if _is_xrg(c) and c not in in_kinds and not inspect.isabstract(c)
                   and c.__name__ != "VocabularyOwner" and not c.__name__.startswith("_")}, key=lambda c: c.__name__)


def summary(cls: type) -> str:
    """The first paragraph of the class's own docstring (never a parent's: that describes the
    parent), else of its module's, on one line."""
    doc = cls.__dict__.get("__doc__") or importlib.import_module(cls.__module__).__doc__ or ""
    text = " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())
    text = text.removeprefix(f"`{cls.__name__}`: ")  # module docstrings open with their class name
    first_sentence = re.match(r"(.+?(?<!e\.g)(?<!i\.e)\.)\s", text)
    return first_sentence.group(1) if first_sentence else text


def signature(cls: type) -> str:
    """`Name(arg: type = default, ...)`: what a recipe's `init_args` can set."""
    parts = []
    for parameter in list(inspect.signature(cls.__init__).parameters.values())[1:]:
        text = parameter.name
        if parameter.annotation is not inspect.Parameter.empty:
            annotation = parameter.annotation
            text += f": {annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)}"
        if parameter.default is not inspect.Parameter.empty:
            text += f" = {parameter.default!r}"
        parts.append(text)
    return f"{cls.__name__}({', '.join(parts)})"


def recipes_using(root: Path) -> dict[str, list[str]]:
    """Short class name -> the recipes (`<paper>/<stage>.yaml` under `root`) naming it in a `class_path`."""
    uses: dict[str, set[str]] = {}

    def walk(node, recipe: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("class_path"), str):
                uses.setdefault(node["class_path"].rsplit(".", 1)[-1], set()).add(recipe)
            for value in node.values():
                walk(value, recipe)
        elif isinstance(node, list):
            for value in node:
                walk(value, recipe)

    for path in sorted(root.rglob("*.yaml")):
        walk(yaml.safe_load(path.read_text()), str(path.relative_to(root)))
    return {name: sorted(paths) for name, paths in uses.items()}


def _link(cls: type) -> str:
    """A cross-reference to the class's API page (resolved by mkdocs-autorefs; a class the API
    reference does not render fails `mkdocs build --strict`)."""
    return f"[`{cls.__name__}`][{cls.__module__}.{cls.__qualname__}]"


def _table(classes: list[type], uses: dict[str, list[str]], per_stage: bool = False) -> list[str]:
    """One row per class; its recipes as paper folders, or `paper/stage` with `per_stage`."""
    rows = ["| block | what it is | recipes |", "| --- | --- | --- |"]
    for cls in classes:
        names = [str(Path(r).with_suffix("")) if per_stage else Path(r).parent.name for r in uses.get(cls.__name__, [])]
        recipes = ", ".join(f"`{name}`" for name in dict.fromkeys(names)) or "—"
        rows.append(f"| {_link(cls)} | {summary(cls)} | {recipes} |")
    return rows


def _signatures(classes: list[type]) -> list[str]:
    return ["```python", *(signature(cls) for cls in classes), "```"]


def markdown(recipes_root: Path, heading: str = "##") -> str:
    """The catalogue page section: per kind, its contract, its blocks, their signatures."""
    uses = recipes_using(recipes_root)
    lines: list[str] = []
    for kind in kinds():
        lines += [f"{heading} {kind.base.__name__} (`{kind.base.__module__.rsplit('.', 1)[0]}`)", "", summary(kind.base), ""]
        if kind.blocks:
            lines += _table(kind.blocks, uses) + [""] + _signatures(kind.blocks) + [""]
    parts = other_blocks()
    if parts:
        lines += [f"{heading} Parts of other blocks", "", *_table(parts, uses), "", *_signatures(parts), ""]
    return "\n".join(lines)


def tasks_markdown(recipes_root: Path) -> str:
    """The tasks (one LightningModule per training objective) with the recipes that use each."""
    from xrg.tasks import XrgTask

    tasks = sorted({c for c in _subclasses(XrgTask) if _is_xrg(c)}, key=lambda c: c.__name__)
    uses = recipes_using(recipes_root)
    return "\n".join(_table(tasks, uses, per_stage=True)).replace("| block |", "| task |", 1)
