"""Shared fixtures: a tiny R2Gen-format dataset written to a temp dir (no generator needed)."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from xrg.data.labels import CHEXPERT_LABELS

torch.set_num_threads(2)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    """Each test starts without the seed an earlier test left. `seed_everything` records its seed in
    PL_GLOBAL_SEED (every fit through the CLI: its recipe's seed, or a random one where the config
    names none, as in tests/bad_inputs), and xrg's loaders draw their order from it
    (`xrg.data.loader.default_seed`), so a learning test's data order, and whether it passes, would
    otherwise depend on the tests before it (one failed that way in a full run and passed alone).
    Cleared before the test's fixtures are set up, so module-scoped fixtures that train are covered."""
    for name in ("PL_GLOBAL_SEED", "PL_SEED_WORKERS"):
        os.environ.pop(name, None)


REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"

_SENTENCES = {
    "Cardiomegaly": ("The heart is enlarged.", "Heart size is normal."),
    "Pleural Effusion": ("There is a small left pleural effusion.", "No pleural effusion."),
    "Pneumothorax": ("There is a right pneumothorax.", "No pneumothorax."),
}


def write_tiny_dataset(root: Path, studies_per_split=(8, 4, 4), views: int = 2, size: int = 48,
                       visible: tuple[str, ...] = ("Cardiomegaly",)) -> Path:
    """Studies whose image brightness follows cardiomegaly, with matching reports and labels.

    With several `visible` findings the image is cut into that many horizontal bands, band k
    bright when finding k is present, so the image shows every visible finding."""
    rng = random.Random(0)
    annotation, labels = {}, {}
    index = 0
    for split, count in zip(("train", "val", "test"), studies_per_split):
        items = []
        for _ in range(count):
            study_id = f"study_{index:03d}"
            index += 1
            present = {name: rng.random() < 0.5 for name in _SENTENCES}
            report = " ".join(_SENTENCES[name][0 if on else 1] for name, on in present.items())
            paths = []
            for view in range(views):
                pixels = np.zeros((size, size), dtype=np.uint8)
                for band, rows in zip(visible, np.array_split(np.arange(size), len(visible))):
                    pixels[rows] = 200 if present[band] else 60
                path = root / "images" / study_id / f"{view}.png"
                path.parent.mkdir(parents=True, exist_ok=True)
                Image.fromarray(pixels, mode="L").save(path)
                paths.append(f"{study_id}/{view}.png")
            items.append({"id": study_id, "report": report, "image_path": paths, "split": split})
            codes = {name: None for name in CHEXPERT_LABELS}
            codes.update({name: int(on) for name, on in present.items()})
            codes["No Finding"] = int(not any(present.values()))
            labels[study_id] = codes
        annotation[split] = items
    (root / "annotation.json").write_text(json.dumps(annotation))
    (root / "labels.json").write_text(json.dumps(labels))
    return root


@pytest.fixture
def one_thread():
    """Tiny models only lose to thread hand-offs, badly so on a shared machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    return write_tiny_dataset(tmp_path / "tiny")


def tiny_chain_args(root: Path, run: Path) -> list[str]:
    """CLI overrides that shrink a synthetic recipe to seconds: a 24-study benchmark at 64 px, timm's
    tiny test ResNet and two steps, so chained stage tests stay quick."""
    return [
        f"--data.init_args.synthetic.root={root}",
        "--data.init_args.synthetic.num_studies=24",
        "--data.init_args.synthetic.image_size=64",
        "--data.init_args.image_size=64",
        "--data.init_args.resize=72",
        "--data.init_args.batch_size=4",
        "--model.init_args.image_encoder.init_args.model_name=test_resnet",
        "--trainer.max_steps=2",
        "--trainer.limit_val_batches=1",
        "--trainer.num_sanity_val_steps=0",
        f"--trainer.default_root_dir={run}",
    ]


def last_checkpoint(run: Path) -> Path:
    (path,) = run.rglob("last.ckpt")
    return path


def recipe_variant(recipe: Path, out: Path, changes: dict) -> Path:
    """A copy of `recipe` with values changed at dotted paths, list items by index
    (`model.init_args.guides.0.init_args.tokens`): what the command line cannot reach inside a list."""
    import yaml

    config = yaml.safe_load(Path(recipe).read_text())
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = config
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out
