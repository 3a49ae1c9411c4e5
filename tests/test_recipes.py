"""Every recipe parses against the code; every CPU-size recipe fits one batch (fast_dev_run).

Paper-size recipes name hub backbones that cannot be downloaded here, so here they are parsed with
--print_config only; tests/recipes/test_every_recipe_steps.py steps every recipe, paper size
included, with its hub-only parts replaced by random stand-ins (`xrg.standins`).
"""

from pathlib import Path

import pytest

from xrg.cli import main

REPO = Path(__file__).resolve().parents[1]
STRATEGIES = sorted((REPO / "recipes" / "strategies").glob("*.yaml"))  # overlays, not recipes
SCHEDULES = sorted((REPO / "recipes" / "schedules").glob("*.yaml"))
DATA_OVERLAYS = sorted((REPO / "recipes" / "data").glob("*.yaml"))  # more studies, with their epochs
STAGES = sorted((REPO / "recipes" / "stages").glob("*.yaml"))  # a stage's start, e.g. a frozen pre-trained head
VIEWS = sorted((REPO / "recipes" / "views").glob("*.yaml"))  # which views a study is read from
OVERLAYS = STRATEGIES + SCHEDULES + DATA_OVERLAYS + STAGES + VIEWS
RECIPES = sorted(set((REPO / "recipes").rglob("*.yaml")) - set(OVERLAYS))
SYNTHETIC = [r for r in RECIPES if "synthetic" in r.name]


def _id(path: Path) -> str:
    return str(path.relative_to(REPO / "recipes"))


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("synthetic") / "benchmark"


def test_there_are_recipes():
    assert SYNTHETIC and len(RECIPES) > len(SYNTHETIC)


@pytest.mark.parametrize("recipe", RECIPES, ids=_id)
def test_recipe_parses(recipe, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(recipe), "--print_config"])
    assert exit_info.value.code in (0, None)
    assert "class_path" in capsys.readouterr().out


@pytest.mark.parametrize("recipe", SYNTHETIC, ids=_id)
def test_synthetic_recipe_fits_one_batch(recipe, tmp_path, synthetic_root):
    args = ["fit", "--config", str(recipe), "--trainer.fast_dev_run=true", f"--trainer.default_root_dir={tmp_path}"]
    if "synthetic:" in recipe.read_text():
        # One small benchmark shared by all recipes of the session keeps this test quick.
        args += [f"--data.init_args.synthetic.root={synthetic_root}", "--data.init_args.synthetic.num_studies=120"]
    main(args)


@pytest.mark.parametrize("recipe", RECIPES, ids=_id)
def test_recipes_use_short_class_paths_and_type_no_inferable_width(recipe):
    """One style: blocks, tasks, optimizers and callbacks by short class name; widths the task binds
    (a Q-Former's vision width, a projector's input) are never typed in a recipe."""
    text = recipe.read_text()
    dotted = [line.strip() for line in text.splitlines() if "class_path:" in line and "." in line.split("class_path:")[1].split(",")[0]]
    assert not dotted, dotted
    assert "vision_dim" not in text and "in_dim" not in text


PAPER_SIZE = [r for r in RECIPES if r not in SYNTHETIC and "accelerator: cpu" not in r.read_text()]


@pytest.mark.parametrize("recipe", PAPER_SIZE, ids=_id)
def test_paper_size_recipes_are_tuned_for_gpus(recipe):
    """Images are decoded in worker processes kept between epochs and pinned for the copy to the
    GPU; compute is bf16-mixed; a LoRA-trained 7B LLM checkpoints its activations."""
    import yaml

    config = yaml.safe_load(recipe.read_text())
    data = config["data"]["init_args"]
    assert data["num_workers"] > 0 and data["pin_memory"] is True and data.get("persistent_workers", True) is True
    assert config["trainer"]["precision"] == "bf16-mixed"
    decoder = config["model"]["init_args"].get("decoder", {})
    if decoder.get("class_path") == "CausalLMDecoder" and decoder["init_args"].get("lora"):
        assert decoder["init_args"]["gradient_checkpointing"] is True


@pytest.mark.parametrize("recipe", RECIPES, ids=_id)
def test_no_recipe_turns_the_progress_bar_off(recipe):
    """A person waiting on a fit sees Lightning's rich progress bar; batch jobs use XRG_QUIET=1 instead."""
    import yaml

    trainer = yaml.safe_load(recipe.read_text()).get("trainer") or {}
    assert trainer.get("enable_progress_bar", True) is not False


LORA_LLM = [r for r in PAPER_SIZE if "lora:" in r.read_text()]


@pytest.mark.parametrize("overlay", STRATEGIES, ids=_id)
@pytest.mark.parametrize("recipe", LORA_LLM, ids=_id)
def test_strategy_overlays_compose_with_every_lora_llm_recipe(recipe, overlay, capsys):
    """`--config RECIPE --config OVERLAY` swaps the strategy and keeps the recipe's model."""
    import yaml

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", str(recipe), "--config", str(overlay), "--print_config"])
    assert exit_info.value.code in (0, None)
    merged = yaml.safe_load(capsys.readouterr().out)
    wanted = yaml.safe_load(overlay.read_text())
    assert merged["trainer"]["strategy"]["class_path"] == wanted["trainer"]["strategy"]["class_path"]
    decoder = merged["model"]["init_args"]["decoder"]["init_args"]
    original = yaml.safe_load(recipe.read_text())["model"]["init_args"]["decoder"]["init_args"]
    assert decoder["model"] == original["model"] and decoder["lora"] == original["lora"]
    if "FSDP" in wanted["trainer"]["strategy"]["class_path"]:
        assert decoder["dtype"] == "float32"  # FSDP flattens a unit's weights: one dtype with LoRA's fp32


def test_fsdp_overlay_wraps_each_llama_decoder_layer():
    import yaml
    from jsonargparse import ArgumentParser
    from lightning.pytorch.strategies import FSDPStrategy, Strategy
    from transformers import LlamaConfig, LlamaForCausalLM

    parser = ArgumentParser()
    parser.add_argument("--strategy", type=Strategy)
    config = yaml.safe_load((REPO / "recipes" / "strategies" / "fsdp_llama.yaml").read_text())["trainer"]
    strategy = parser.instantiate(parser.parse_object(config)).strategy
    assert isinstance(strategy, FSDPStrategy) and strategy.kwargs["use_orig_params"]  # LoRA: frozen + trained in a unit
    policy = strategy.kwargs["auto_wrap_policy"]
    llama = LlamaForCausalLM(LlamaConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                         num_attention_heads=2, num_key_value_heads=1, vocab_size=64))
    wrapped = [name for name, module in llama.named_modules() if policy(module=module, recurse=False, nonwrapped_numel=0)]
    assert wrapped == ["model.layers.0", "model.layers.1"]


COSINE = [r for r in SYNTHETIC if "CosineAnnealingLR" in r.read_text()]


def _task_settings(config: Path) -> set[str]:
    """The task options a recipe or overlay sets (an overlay's beside its schedule: a pre-training
    overlay's loss weighting)."""
    import yaml

    return set((yaml.safe_load(config.read_text()).get("model") or {}).get("init_args") or {}) - {"lr_scheduler"}


# every schedule and data overlay over every cosine recipe whose task states the overlay's task options
SCHEDULE_PAIRS = [(recipe, overlay) for overlay in SCHEDULES + DATA_OVERLAYS for recipe in COSINE
                  if _task_settings(overlay) <= _task_settings(recipe)]


def _printed(capsys, *configs: Path) -> dict:
    """The config `xrg fit --config A --config B ... --print_config` resolves to."""
    import yaml

    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *(arg for c in configs for arg in ("--config", str(c))), "--print_config"])
    assert exit_info.value.code in (0, None)
    return yaml.safe_load(capsys.readouterr().out)


def _with(config: dict, overlay: dict) -> dict:
    """`config` with the overlay's keys written over it, nested dicts merged."""
    merged = dict(config)
    for key, value in overlay.items():
        merged[key] = _with(config.get(key) or {}, value) if isinstance(value, dict) else value
    return merged


@pytest.mark.parametrize(("recipe", "overlay"), SCHEDULE_PAIRS, ids=[f"{_id(r)}+{_id(o)}" for r, o in SCHEDULE_PAIRS])
def test_schedule_overlays_set_epochs_and_cosine_horizon_together(recipe, overlay, capsys):
    """`--config RECIPE --config OVERLAY` changes the epochs and the cosine T_max alike, sets what
    else the overlay names (a data overlay's benchmark settings, its validation cadence) and nothing
    more of the recipe (its optimiser, blocks and other data settings stay)."""
    import yaml

    alone, merged = _printed(capsys, recipe), _printed(capsys, recipe, overlay)
    assert merged != alone  # the overlay is not a no-op on this recipe
    assert merged["trainer"]["max_epochs"] == merged["model"]["init_args"]["lr_scheduler"]["init_args"]["T_max"]
    assert merged == _with(alone, yaml.safe_load(overlay.read_text()))


@pytest.mark.parametrize("overlay", VIEWS, ids=_id)
@pytest.mark.parametrize("recipe", SYNTHETIC, ids=_id)
def test_views_overlays_set_the_views_and_nothing_else(recipe, overlay, capsys):
    """`--config RECIPE --config views/frontal.yaml` reads one view per study whatever the recipe read."""
    import yaml

    alone, merged = _printed(capsys, recipe), _printed(capsys, recipe, overlay)
    assert merged["data"]["init_args"]["max_views"] == yaml.safe_load(overlay.read_text())["data"]["init_args"]["max_views"]
    assert merged == _with(alone, yaml.safe_load(overlay.read_text()))
