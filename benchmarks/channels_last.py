"""CPU seconds of image encoders and of a recipe's training steps, NCHW vs NHWC (`channels_last`).

`ImageEncoder(channels_last=True)` hands the images to the model in NHWC layout; oneDNN's
convolutions, batch norm and max pooling then run on that layout. Two measurements, each a ratio
against NCHW in the same process, the two layouts alternated `--repeats` times (best of each kept):

- **encoders**: forward + backward of a CNN image encoder on one image batch (timm CNNs, and the
  UniCross mix's encoder: frozen tiny open_clip ResNet towers with trainable adapters, 64 px);
- **recipe**: `xrg fit` of the findings-first writer (`mix/findings_transformer_synthetic.yaml`,
  the CPU recipe whose fit is mostly its CNN) for `--batches` training batches, no validation.

    python benchmarks/channels_last.py [--threads 1] [--repeats 2] [--batches 30]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from synthetic_runs import Results, cpu_seconds
from xrg.blocks.adapters import UniCrossAdapter, UniCrossEncoder
from xrg.blocks.encoders import OpenClipImageEncoder, OpenClipTextEncoder, TimmImageEncoder
from xrg.cli import main

REPO = Path(__file__).resolve().parents[1]
RECIPE = REPO / "recipes/mix/findings_transformer_synthetic.yaml"
TINY_CLIP = {"embed_dim": 64, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16, "patch_size": None},
             "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 4}}


def unicross_mix(channels_last: bool) -> UniCrossEncoder:
    """The encoder of `mix/unicross_findings_transformer_synthetic.yaml`."""
    return UniCrossEncoder(
        OpenClipImageEncoder("RN50", frozen=True, model_config=TINY_CLIP),
        OpenClipTextEncoder("RN50", frozen=True, train_params=["positional_embedding"], model_config=TINY_CLIP),
        UniCrossAdapter(bottleneck=32, heads=4, ffn_dim=64, image_points=(2, 3, 4), text_points=(2, 3, 4)),
        dim=64, channels_last=channels_last)


ENCODERS = {  # name -> (build(channels_last), px, images)
    "test_resnet": (lambda nhwc: TimmImageEncoder("test_resnet", channels_last=nhwc), 96, 32),
    "resnet10t": (lambda nhwc: TimmImageEncoder("resnet10t", channels_last=nhwc), 128, 16),
    "resnet18": (lambda nhwc: TimmImageEncoder("resnet18", channels_last=nhwc), 224, 8),
    "UniCross mix encoder": (unicross_mix, 64, 32),
}


def encoder_cpu_s(build, size: int, images: int, channels_last: bool, steps: int = 8) -> float:
    """CPU seconds per forward + backward of one batch."""
    torch.manual_seed(0)
    encoder = build(channels_last)
    batch = torch.randn(images, 1, 3, size, size)
    for _ in range(2):  # warm-up: oneDNN picks its kernels on the first calls
        encoder(batch).tokens.sum().backward()
    start = time.process_time()
    for _ in range(steps):
        encoder(batch).tokens.sum().backward()
    return (time.process_time() - start) / steps


def recipe_cpu_s(batches: int, channels_last: bool, root: Path) -> float:
    """CPU seconds (this process and its loader workers) of `batches` training steps of the recipe."""
    start = cpu_seconds()
    main(["fit", "--config", str(RECIPE), f"--trainer.default_root_dir={root}", "--trainer.max_epochs=1",
          f"--trainer.limit_train_batches={batches}", "--trainer.limit_val_batches=0",
          "--trainer.enable_checkpointing=false", "--trainer.callbacks=[]", "--trainer.enable_progress_bar=false",
          f"--model.init_args.image_encoder.init_args.channels_last={str(channels_last).lower()}"])
    return cpu_seconds() - start


def best_of_alternating(measure, repeats: int) -> dict:
    """The lowest figure of each layout over `repeats` alternating runs, and their ratio."""
    runs = {"nchw": [], "nhwc": []}
    for _ in range(repeats):
        runs["nchw"].append(measure(False))
        runs["nhwc"].append(measure(True))
    nchw, nhwc = min(runs["nchw"]), min(runs["nhwc"])
    return {"nchw_cpu_s": round(nchw, 4), "nhwc_cpu_s": round(nhwc, 4), "speedup": round(nchw / nhwc, 2)}


def main_() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batches", type=int, default=30, help="training batches of the recipe per run")
    parser.add_argument("--out", default=str(REPO / "benchmarks/results/channels_last.json"))
    a = parser.parse_args()
    torch.set_num_threads(a.threads)
    results = Results(a.out, vars(a))
    results.update(encoders={}, recipe={})
    for name, (build, size, images) in ENCODERS.items():
        row = best_of_alternating(lambda nhwc: encoder_cpu_s(build, size, images, nhwc), a.repeats)
        results["encoders"][f"{name} {size}px x{images}"] = row
    root = REPO / "runs/bench_channels_last"
    results["recipe"][f"{RECIPE.name}, {a.batches} batches"] = best_of_alternating(
        lambda nhwc: recipe_cpu_s(a.batches, nhwc, root), a.repeats)
    results.save()
    print(f"| measured ({a.threads} torch thread(s)) | NCHW CPU s | NHWC CPU s | speed-up |\n|---|---|---|---|")
    for group in ("encoders", "recipe"):
        for name, row in results[group].items():
            print(f"| {name} | {row['nchw_cpu_s']:.3f} | {row['nhwc_cpu_s']:.3f} | {row['speedup']:.2f}x |")


if __name__ == "__main__":
    main_()
