"""RadAlign stages chained through the CLI on a tiny dataset: concepts -> retrieval -> LLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import recipe_variant, write_tiny_dataset
from xrg.cli import main

RECIPES = Path(__file__).resolve().parents[1] / "recipes" / "radalign"


pytestmark = pytest.mark.usefixtures("one_thread")


def _data_args(root: Path) -> list[str]:
    return ["--data.init_args.synthetic=null", f"--data.init_args.annotation_path={root / 'annotation.json'}",
            f"--data.init_args.labels_path={root / 'labels.json'}", "--data.init_args.image_size=48",
            "--data.init_args.resize=52", "--data.init_args.batch_size=4"]


def _small() -> list[str]:
    return ["--model.init_args.image_encoder.init_args.model_name=test_resnet",
            "--model.init_args.findings.init_args.dim=32", "--model.init_args.findings.init_args.heads=2",
            "--trainer.enable_checkpointing=true", "--trainer.logger=false"]


def _checkpoint(root: Path) -> Path:
    return next(root.rglob("last.ckpt"))


def test_concepts_then_retrieval_then_generation(tmp_path):
    data = write_tiny_dataset(tmp_path / "tiny")
    stage1 = tmp_path / "stage1"
    main(["fit", "--config", str(RECIPES / "retrieval_synthetic.yaml"), *_data_args(data), *_small(),
          "--trainer.max_steps=2", "--trainer.max_epochs=1", f"--trainer.default_root_dir={stage1}"])
    checkpoint = _checkpoint(stage1)

    # Retrieval-only baseline: the index is built once next to the checkpoint, then reloaded.
    predictions = tmp_path / "retrieval.jsonl"
    args = ["--config", str(RECIPES / "retrieval_synthetic.yaml"), *_data_args(data), *_small(),
            f"--ckpt_path={checkpoint}"]
    main(["predict", *args, f"--predictions={predictions}"])
    index_dir = checkpoint.parent / "retrieval_index"
    first = json.loads((index_dir / "index.json").read_text())
    assert len(first["ids"]) == 8  # the training split
    rows = [json.loads(line) for line in predictions.read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert row["generated"] in first["reports"] and row["id"] not in row["retrieved_ids"]
        assert set(row["diseases"]) >= {"Cardiomegaly", "Pleural Effusion"} and len(row["criteria"]) == 28
    mtime = (index_dir / "embeddings.safetensors").stat().st_mtime_ns
    main(["predict", *args, f"--predictions={tmp_path / 'again.jsonl'}"])
    assert (index_dir / "embeddings.safetensors").stat().st_mtime_ns == mtime  # reloaded, not rebuilt
    assert (tmp_path / "again.jsonl").read_text() == predictions.read_text()

    # Stage 2 starts its image encoder and concepts from stage 1 and trains only the LLM.
    stage2 = tmp_path / "stage2"
    small_llm = '{model_type: llama, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 1, ' \
                'num_attention_heads: 2, num_key_value_heads: 2, max_position_embeddings: 2048}'
    aligner = "model.init_args.guides.0.init_args.aligner.init_args"
    recipe = recipe_variant(RECIPES / "generate_synthetic.yaml", tmp_path / "generate.yaml",
                            {f"{aligner}.dim": 32, f"{aligner}.heads": 2})
    generate = ["--config", str(recipe), *_data_args(data), "--model.init_args.image_encoder.init_args.model_name=test_resnet",
                "--trainer.enable_checkpointing=true", "--trainer.logger=false",
                f"--model.init_args.decoder.init_args.config={small_llm}",
                "--model.init_args.decoder.init_args.max_new_tokens=8"]
    main(["fit", *generate, "--trainer.max_steps=2", "--trainer.max_epochs=1", f"--trainer.default_root_dir={stage2}",
          f"--model.init_args.init_from.checkpoint={checkpoint}"])
    stage2_checkpoint = _checkpoint(stage2)
    state = torch.load(stage2_checkpoint, weights_only=True)["state_dict"]
    stage1_state = torch.load(checkpoint, weights_only=True)["state_dict"]
    assert torch.equal(state["guides.concepts.aligner.evidence_weight"], stage1_state["findings.evidence_weight"])
    assert torch.equal(state["image_encoder.model.conv1.0.weight"], stage1_state["image_encoder.model.conv1.0.weight"])

    explained = tmp_path / "radalign.jsonl"
    main(["predict", *generate, f"--ckpt_path={stage2_checkpoint}", f"--predictions={explained}"])
    rows = [json.loads(line) for line in explained.read_text().splitlines()]
    assert len(rows) == 4
    for row in rows:
        assert isinstance(row["generated"], str) and len(row["retrieved_ids"]) == 2
        assert row["id"] not in row["retrieved_ids"] and "Cardiomegaly" in row["diseases"]
