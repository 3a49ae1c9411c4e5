"""Chained stage recipes agree: a block that `init_from` carries over has the same config in the
stage that trains it and the stage that loads it, so the weights fit the block they are loaded into.

A block without its own config entry (TRRG's `perception.joint` is built from the perception's
`text_encoder` and `embed_dim`) is compared on the settings both sides state.
"""

from __future__ import annotations

from pathlib import Path

import inspect

import pytest
import yaml
from test_recipes import _with

import xrg.blocks  # noqa: F401  every block class, for short class paths
import xrg.blocks.guides as guides
from xrg.blocks.base import Block
from xrg.data.tokenizers import Tokenizer

RECIPES = Path(__file__).resolve().parents[1] / "recipes"
CHAINS = [  # (stage, the stage whose checkpoint it starts from)
    ("radialog/qformer_synthetic.yaml", "radialog/classifier_synthetic.yaml"),
    ("radialog/llm_synthetic.yaml", "radialog/qformer_synthetic.yaml"),
    ("radialog/instruct_synthetic.yaml", "radialog/llm_synthetic.yaml"),
    ("radialog/qformer.yaml", "radialog/classifier.yaml"),
    ("radialog/llm.yaml", "radialog/qformer.yaml"),
    ("radialog/instruct.yaml", "radialog/llm.yaml"),
    ("trrg/stage2_synthetic.yaml", "trrg/stage1_synthetic.yaml"),
    ("trrg/stage2_llm_synthetic.yaml", "trrg/stage1_synthetic.yaml"),
    ("trrg/stage2_mimic_cxr.yaml", "trrg/stage1_mimic_cxr.yaml"),
    ("radalign/generate_synthetic.yaml", "radalign/concepts_synthetic.yaml"),
    ("radalign/generate_mimic_cxr.yaml", "radalign/concepts_mimic_cxr.yaml"),
    ("mix/radialog_retrieval_synthetic.yaml", "radialog/qformer_synthetic.yaml"),
    ("unicrossadapter/synthetic.yaml", "unicrossadapter/clip_synthetic.yaml"),
    ("unicrossadapter/synthetic.yaml", "unicrossadapter/clip_synthetic.yaml + data/clip_pretraining_studies_4_epochs.yaml"),
    ("mix/findings_transformer_synthetic.yaml + stages/frozen_findings_head.yaml",
     "mix/findings_classifier_synthetic.yaml + data/pretraining_studies_4_epochs.yaml"),
    ("mix/findings_classifier_synthetic.yaml + data/pretraining_studies_4_epochs.yaml + stages/continued_findings_head.yaml",
     "mix/findings_classifier_synthetic.yaml + data/pretraining_studies_4_epochs.yaml"),
    ("mix/findings_transformer_synthetic.yaml + stages/frozen_findings_head.yaml + views/frontal.yaml + schedules/cosine_5_epochs.yaml",
     "mix/findings_classifier_synthetic.yaml + data/frontal_pretraining_studies_1_epoch.yaml"),
    ("mix/findings_transformer_synthetic.yaml + stages/frozen_findings_head.yaml + views/frontal.yaml",
     "mix/findings_classifier_synthetic.yaml + data/enriched_frontal_pretraining_studies_1_epoch.yaml"),
    ("mix/findings_transformer_synthetic.yaml + data/more_studies_6_epochs.yaml + data/enriched_more_studies.yaml"
     " + stages/frozen_findings_head.yaml + views/frontal.yaml + schedules/cosine_10_epochs.yaml",
     "mix/findings_classifier_synthetic.yaml + data/enriched_frontal_pretraining_studies_1_epoch.yaml"),
]
# Blocks a task keeps under another name than its argument: ContrastivePretraining's text encoder
# lives inside its joint space.
STORED_AS = {"joint.text_encoder": "text_encoder"}


# Settings of how a block trains or where its first weights come from, not of the weights' shapes:
# a LoRA stage loads its plain predecessor, a stage started from a checkpoint needs no `pretrained`.
TRAINING_ONLY = {"lora", "freeze_llm", "frozen", "pretrained", "train_params"}


def _classes(base: type) -> dict[str, type]:
    found = {}
    for cls in base.__subclasses__():
        found[cls.__name__] = cls
        found.update(_classes(cls))
    return found


CLASSES = {**_classes(Block), **_classes(Tokenizer)}


def resolved(node):
    """A block config with its class's defaults filled in (recipes state some defaults, not others)."""
    if isinstance(node, list):
        return [resolved(item) for item in node]
    if not isinstance(node, dict):
        return node
    if "class_path" not in node:
        return {k: resolved(v) for k, v in node.items()}
    name = node["class_path"].rsplit(".", 1)[-1]
    args = {k: resolved(v) for k, v in (node.get("init_args") or {}).items() if k not in TRAINING_ONLY}
    if name in CLASSES:
        for key, parameter in inspect.signature(CLASSES[name].__init__).parameters.items():
            if parameter.default is not inspect.Parameter.empty and key not in TRAINING_ONLY:
                args.setdefault(key, parameter.default)
    return {"class_path": name, "init_args": args}


def init_args(recipe: str, section: str) -> dict:
    """A recipe's `model` or `data` init args; `recipe + overlay` merges them as `--config recipe --config overlay` does."""
    args: dict = {}
    for part in recipe.split(" + "):
        args = _with(args, (yaml.safe_load((RECIPES / part).read_text()).get(section) or {}).get("init_args") or {})
    return args


def model_args(recipe: str) -> dict:
    return init_args(recipe, "model")


def guide_name(entry: dict) -> str:
    args = entry.get("init_args") or {}
    return args.get("name") or getattr(guides, entry["class_path"].rsplit(".", 1)[-1]).default_name


def block_config(args: dict, dotted: str) -> tuple[dict, str | None]:
    """The config at a dotted block name, or (the deepest config reached, the part it lacks)."""
    node: dict = {"init_args": args}
    parts = dotted.split(".")
    while parts:
        part = parts.pop(0)
        init_args = node.get("init_args") or {}
        if part == "guides" and "guides" in init_args:
            name = parts.pop(0)
            found = [g for g in init_args["guides"] if guide_name(g) == name]
            assert found, f"no guide named {name!r}"
            node = found[0]
        elif part in init_args:
            node = init_args[part]
        else:
            return node, part
    return node, None


@pytest.mark.parametrize(("stage", "previous"), CHAINS, ids=[c[0] for c in CHAINS])
def test_carried_blocks_have_the_same_config_in_both_stages(stage, previous):
    args, before = model_args(stage), model_args(previous)
    carried = args["init_from"]["blocks"]
    assert carried
    for attribute, prefix in carried.items():
        here, missing_here = block_config(args, attribute)
        there, missing_there = block_config(before, STORED_AS.get(prefix, prefix))
        here, there = resolved(here), resolved(there)
        if missing_here is None and missing_there is None:
            assert here == there, f"{stage}: {attribute} differs from {previous}: {prefix}"
            continue
        # a block built by its parent from shared settings: compare what both sides state
        mine, theirs = here.get("init_args", here), there.get("init_args", there)
        shared = set(mine) & set(theirs)
        assert shared, f"{stage}: nothing to compare for {attribute} against {previous}: {prefix}"
        for key in shared:
            assert mine[key] == theirs[key], f"{stage}: {attribute}.{key} differs from {previous}"


def test_a_changed_block_is_caught():
    args = model_args("radialog/llm_synthetic.yaml")
    before = model_args("radialog/qformer_synthetic.yaml")
    before["aligner"]["init_args"]["num_queries"] = 4
    assert block_config(args, "aligner")[0] != block_config(before, "aligner")[0]
    assert block_config(args, "guides.findings.head")[0] == block_config(before, "findings")[0]


@pytest.mark.parametrize(("stage", "previous"), CHAINS, ids=[c[0] for c in CHAINS])
def test_chained_stages_prepare_images_alike(stage, previous):
    """A block trained on images of one size, normalisation or detail channel reads others worse
    (a fit that does it anyway is warned, `XrgTask.warn_if_prepared_otherwise`)."""
    from xrg.data.studies import ImagePreparation

    here, there = ImagePreparation.from_hparams(init_args(stage, "data")), ImagePreparation.from_hparams(init_args(previous, "data"))
    assert here == ImagePreparation(**{**vars(there), "max_views": here.max_views}), f"{stage} reads images otherwise than {previous}"


FROZEN_HEAD_CHAINS = [(stage, previous) for stage, previous in CHAINS
                      if any("findings" in name for name in model_args(stage).get("frozen") or [])]


@pytest.mark.parametrize(("stage", "previous"), FROZEN_HEAD_CHAINS, ids=[c[0] for c in FROZEN_HEAD_CHAINS])
def test_a_frozen_findings_head_reads_as_many_views_as_it_learnt_from(stage, previous):
    """A findings head scores the features pooled over a study's views: a frozen head trained on the
    frontal view alone reads another distribution when the writer hands it two."""
    from xrg.data.studies import ImagePreparation

    here, there = ImagePreparation.from_hparams(init_args(stage, "data")), ImagePreparation.from_hparams(init_args(previous, "data"))
    assert here.max_views == there.max_views, f"{stage} reads {here.max_views} views, its head learnt from {there.max_views}"


def test_frozen_head_chains_are_checked():
    assert len(FROZEN_HEAD_CHAINS) >= 2
