"""The generated block catalogue (docs/blocks.md on the docs site) covers the zoo and the recipes."""

from __future__ import annotations

import importlib
from pathlib import Path

import xrg.blocks
from xrg.blocks import catalogue
from xrg.blocks.base import Block
from xrg.blocks.encoders import ImageEncoder

RECIPES = Path(__file__).resolve().parents[2] / "recipes"


def _catalogued() -> set[type]:
    return {c for kind in catalogue.kinds() for c in (kind.base, *kind.blocks)} | set(catalogue.other_blocks())


def test_every_exported_block_is_catalogued():
    catalogued = _catalogued()
    for name in ("adapters", "aligners", "clues", "decoders", "encoders", "findings", "guides", "retrieval"):
        package = importlib.import_module(f"xrg.blocks.{name}")
        for export in package.__all__:
            obj = getattr(package, export)
            if isinstance(obj, type) and issubclass(obj, Block) and obj is not Block:
                assert obj in catalogued, f"xrg.blocks.{name}.{export} is missing from the catalogue"


def test_a_block_is_listed_under_its_kind_wherever_it_lives():
    by_base = {kind.base: kind.blocks for kind in catalogue.kinds()}
    image_encoders = {c.__name__ for c in by_base[ImageEncoder]}
    # UniCrossEncoder is defined in adapters/ but is an image encoder.
    assert {"TimmImageEncoder", "OpenClipImageEncoder", "HFImageEncoder", "UniCrossEncoder"} <= image_encoders
    assert all(not c.__name__.startswith("_") for blocks in by_base.values() for c in blocks)


def test_every_block_a_recipe_names_is_in_the_catalogue():
    uses = catalogue.recipes_using(RECIPES)
    assert "r2gen/synthetic.yaml" in uses["TimmImageEncoder"]
    names = {c.__name__ for c in _catalogued()}
    for short_name, recipes in uses.items():
        cls = next((c for c in _all_block_classes() if c.__name__ == short_name), None)
        if cls is not None:
            assert short_name in names, f"{recipes[0]} names {short_name}, which the catalogue lacks"


def _all_block_classes() -> list[type]:
    found, stack = [], [Block]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack += cls.__subclasses__()
    return found


def test_signature_and_summary_come_from_the_code():
    from xrg.blocks.encoders import TimmImageEncoder

    assert catalogue.signature(TimmImageEncoder).startswith("TimmImageEncoder(model_name: str = 'resnet101', pretrained: bool = False")
    assert catalogue.summary(TimmImageEncoder) == "`timm.create_model(model_name)` without its classifier."
    page = catalogue.markdown(RECIPES)
    assert "## ImageEncoder (`xrg.blocks.encoders`)" in page
    assert "[`TimmImageEncoder`][xrg.blocks.encoders.timm_encoder.TimmImageEncoder]" in page
    assert xrg.blocks.catalogue.tasks_markdown(RECIPES).count("`r2gen/synthetic`") == 1
