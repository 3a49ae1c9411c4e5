"""Two CPU ranks (gloo) score exactly like one process: negatives and recall are gathered."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from xrg.blocks.encoders import HFTextEncoder, TimmImageEncoder
from xrg.data.labels import CHEXPERT_LABELS
from xrg.tasks.contrastive import ContrastivePretraining

TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64}
FINDINGS = ["there is moderate cardiomegaly", "there is a right pneumothorax", "small left pleural effusion", "the lungs are clear"]
NAMES = ["Cardiomegaly", "Pneumothorax", "Pleural Effusion", None]


def _studies() -> list[dict]:
    generator = torch.Generator().manual_seed(0)
    studies = []
    for i in range(8):
        labels = torch.full((14,), float("nan"))
        if NAMES[i % 4] is not None:
            labels[CHEXPERT_LABELS.index(NAMES[i % 4])] = 1
        studies.append({"id": str(i), "image": torch.randn(1, 3, 32, 32, generator=generator),
                        "report": f"{FINDINGS[i % 4]} . study {i} .", "labels": labels})
    return studies


def _collate(items: list[dict]) -> dict:
    return {"ids": [s["id"] for s in items], "images": torch.stack([s["image"] for s in items]),
            "view_mask": torch.ones(len(items), 1, dtype=torch.bool), "reports": [s["report"] for s in items],
            "labels": torch.stack([s["labels"] for s in items])}


def _validate(task: ContrastivePretraining, devices: int, batch_size: int, order: list[int]) -> dict[str, float]:
    studies = _studies()
    loader = DataLoader([studies[i] for i in order], batch_size=batch_size, collate_fn=_collate)
    strategy = "ddp_spawn" if devices > 1 else "auto"
    trainer = L.Trainer(accelerator="cpu", devices=devices, strategy=strategy, logger=False,
                        enable_progress_bar=False, enable_model_summary=False)
    (metrics,) = trainer.validate(task, loader, verbose=False)
    return metrics


def test_two_ranks_equal_one_process(monkeypatch):
    # Spawned workers import this module by name; importlib mode needs the repo root on sys.path.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    torch.manual_seed(0)
    task = ContrastivePretraining(TimmImageEncoder("test_resnet"), HFTextEncoder("minilm", config=TINY), embed_dim=16)
    # The distributed sampler deals studies 0,2,4,6 to rank 0 and 1,3,5,7 to rank 1; batches of 2
    # per rank gather into {0,2,1,3} and {4,6,5,7}, which one process sees as batches of 4.
    single = _validate(task, 1, 4, [0, 2, 1, 3, 4, 6, 5, 7])
    double = _validate(task, 2, 2, list(range(8)))
    assert single.keys() == double.keys() and "val/recall@5" in single
    for key in single:
        assert double[key] == pytest.approx(single[key], abs=1e-5), key
