"""Can a CNN trained from scratch see a rib fracture or a pleural thickening at all? A probe.

    python benchmarks/small_findings_probe.py --image-size 128 --detail-channel 9
    python benchmarks/small_findings_probe.py --image-size 128            # the plain image

The two are the synthetic benchmark's faintest findings (a gap and a 1-2 pixel step in one rib; a
rim 2-3 pixels deep along one lung's edge), and no findings head trained on the benchmark perceived
them (docs/quality.md sections 1, 8 and 10). Here each is present in half of the studies,
independently, on top of whatever else the generator draws, so 3,000 training studies hold ~1,500 of
each (30 times the benchmark's 1,000 training studies' ~50 and ~30); `--prevalence` sets that share in
the training studies (the test studies keep one half). Frontal views are rendered at
`--image-size`, prepared by xrg's own evaluation transform (`--detail-channel` as
`ReportDataModule(detail_channel)`), and `test_resnet` with a mean-pooled two-logit head learns them
(BCE, AdamW, one-cycle lr 3e-3, batch 32, one torch thread); test AUC on 600 more studies after each
epoch. First it prints how visible each is at that size (`visibility`). Writes JSON (--out) and
prints a table.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import numpy as np
import timm
import torch
from PIL import Image
from sklearn.metrics import roc_auc_score

from xrg.data.jsonl import write_atomic
from xrg.data.synthetic.anatomy import sample_patient
from xrg.data.synthetic.findings import _side, sample_findings, sample_fracture
from xrg.data.synthetic.phantom import render_views
from xrg.data.transforms import build_transform

FINDINGS = ("fracture", "pleural_thickening")


def study(index: int, size: int, prevalence: float = 0.5) -> tuple[np.ndarray, list[float]]:
    """One frontal view with each of FINDINGS present with probability `prevalence`, independently."""
    rng = np.random.default_rng([7, index])
    findings = sample_findings(rng)
    findings.fracture = sample_fracture(rng) if rng.random() < prevalence else None
    findings.pleural_thickening = _side(rng) if rng.random() < prevalence else None
    image = render_views(sample_patient(rng), findings, size, 1, rng)[0]
    return image, [float(getattr(findings, name) is not None) for name in FINDINGS]


def visibility(size: int, studies: int = 12) -> dict[str, dict[str, float]]:
    """How much each finding changes its image: the same patient, noise and findings rendered with
    and without it; pixels changed by more than 8 grey levels, the largest change, and the pixel
    noise (the standard deviation of neighbouring pixels' difference / sqrt 2)."""
    out = {}
    for name in FINDINGS:
        changed, largest, noise, index = [], [], [], 0
        while len(changed) < studies:
            rng = np.random.default_rng([8, index])
            index += 1
            findings = sample_findings(rng)
            if getattr(findings, name) is None:
                continue
            without, seed = copy.deepcopy(findings), rng.integers(1 << 31)
            setattr(without, name, None)
            shown, hidden = (render_views(sample_patient(np.random.default_rng(seed)), f, size, 1,
                                          np.random.default_rng(seed))[0].astype(float) for f in (findings, without))
            difference = np.abs(shown - hidden)
            changed.append((difference > 8).sum())
            largest.append(difference.max())
            noise.append(np.diff(hidden, axis=0).std() / np.sqrt(2))
        out[name] = {"pixels_changed": float(np.mean(changed)), "largest_change": float(np.mean(largest)),
                     "pixel_noise": float(np.mean(noise))}
    return out


def prepared(count: int, offset: int, size: int, detail: int | None,
             prevalence: float = 0.5) -> tuple[torch.Tensor, torch.Tensor]:
    transform = build_transform(train=False, image_size=size, resize=size, detail_channel=detail)
    studies = [study(offset + i, size, prevalence) for i in range(count)]
    images = torch.stack([transform(Image.fromarray(image)) for image, _ in studies])
    return images, torch.tensor([labels for _, labels in studies])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--detail-channel", type=int, default=None)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--train-studies", type=int, default=3000)
    parser.add_argument("--prevalence", type=float, default=0.5, help="of each finding in the training studies")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    seen = visibility(args.image_size)
    for name, row in seen.items():
        print(f"{name} at {args.image_size} px: {row['pixels_changed']:.0f} pixels changed by > 8 grey levels, "
              f"at most {row['largest_change']:.0f} (pixel noise {row['pixel_noise']:.1f})")
    x_train, y_train = prepared(args.train_studies, 0, args.image_size, args.detail_channel, args.prevalence)
    x_test, y_test = prepared(600, args.train_studies, args.image_size, args.detail_channel)
    backbone = timm.create_model("test_resnet", num_classes=0, global_pool="avg")
    model = torch.nn.Sequential(backbone, torch.nn.Linear(backbone.num_features, len(FINDINGS)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    batch, steps = 32, args.train_studies // 32
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, 3e-3, total_steps=args.epochs * steps)
    epochs, start = [], time.process_time()
    print(f"| epoch | train loss | {' AUC | '.join(FINDINGS)} AUC | CPU s |\n|---|---|---|---|---|")
    for epoch in range(args.epochs):
        model.train()
        order = torch.randperm(args.train_studies)
        for step in range(steps):
            chosen = order[step * batch:(step + 1) * batch]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x_train[chosen]), y_train[chosen])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        model.eval()
        with torch.no_grad():
            scores = torch.cat([model(x_test[i:i + 100]) for i in range(0, len(x_test), 100)])
        auc = {name: roc_auc_score(y_test[:, k], scores[:, k]) for k, name in enumerate(FINDINGS)}
        epochs.append({"epoch": epoch + 1, "train_loss": loss.item(), "test_auc": auc,
                       "cpu_s": time.process_time() - start})
        print(f"| {epoch + 1} | {loss.item():.3f} | " + " | ".join(f"{v:.3f}" for v in auc.values())
              + f" | {epochs[-1]['cpu_s']:.0f} |", flush=True)
    result = {"image_size": args.image_size, "detail_channel": args.detail_channel, "visibility": seen,
              "train_studies": args.train_studies, "prevalence": args.prevalence, "epochs": epochs}
    if args.out:
        write_atomic(args.out, json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
