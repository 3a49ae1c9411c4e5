"""The training-loss curve of a recipe, step by step: to show that a refactor left a recipe's
behaviour unchanged (same seed, same data, same curve) or to compare two recipes' first steps.

    python benchmarks/loss_curves.py --recipe recipes/trrg/stage2_synthetic.yaml --steps 12 \
        --out benchmarks/results/curves/trrg_stage2.json
    python benchmarks/loss_curves.py --compare a.json b.json      # max |difference| per step

The fit runs on a small synthetic benchmark (`--num-studies`), one thread, no validation, and
records `train/loss` after every optimizer step. To compare two versions of the code whose
blocks draw their random initial weights in a different order, `--save-init` writes the weights
the first run starts from and `--load-init` (with `--rename old.prefix=new.prefix` for blocks that
moved) starts the second run from exactly those; both runs reseed the global RNG (data order,
dropout) when training starts, so equal code paths give equal curves.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path

import lightning as L
import torch

from xrg.cli import main
from xrg.data.jsonl import write_atomic
from synthetic_runs import REPO


class RecordLoss(L.Callback):
    def __init__(self, save_init: str | None = None, load_init: str | None = None,
                 renames: dict[str, str] | None = None, seed: int = 0) -> None:
        self.losses: list[float] = []
        self.save_init, self.load_init, self.renames, self.seed = save_init, load_init, renames or {}, seed

    def on_train_start(self, trainer, pl_module) -> None:
        if self.save_init:
            torch.save(pl_module.state_dict(), self.save_init)
        if self.load_init:
            state = torch.load(self.load_init, weights_only=True)
            for old, new in self.renames.items():
                state = {(new + k[len(old):] if k.startswith(old) else k): v for k, v in state.items()}
            own = pl_module.state_dict()
            # a weight whose shape changed (e.g. an unused projection now bound to another width) keeps its own init
            reshaped = [k for k, v in state.items() if k in own and hasattr(v, "shape") and v.shape != own[k].shape]
            state = {k: v for k, v in state.items() if k not in reshaped}
            missing, unexpected = pl_module.load_state_dict(state, strict=False)
            print(f"loaded initial weights: {len(missing)} missing {missing[:5]}, {len(unexpected)} unexpected "
                  f"{unexpected[:5]}, {len(reshaped)} of another shape {reshaped[:5]}")
        L.seed_everything(self.seed, verbose=False)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        self.losses.append(float(loss))


def curve(recipe: str, steps: int, root: str, num_studies: int, extra: list[str], recorder: RecordLoss) -> list[float]:
    torch.set_num_threads(1)
    original = L.Trainer.__init__

    @functools.wraps(original)  # the CLI reads the Trainer's arguments from this signature
    def with_recorder(self, *args, **kwargs):
        kwargs["callbacks"] = [*(kwargs.get("callbacks") or []), recorder]
        original(self, *args, **kwargs)

    L.Trainer.__init__ = with_recorder
    try:
        main(["fit", "--config", recipe, f"--trainer.max_steps={steps}", "--trainer.limit_val_batches=0",
              "--trainer.logger=false", f"--trainer.default_root_dir={root}_runs",
              f"--data.init_args.synthetic.root={root}", f"--data.init_args.synthetic.num_studies={num_studies}",
              *extra])
    finally:
        L.Trainer.__init__ = original
    return recorder.losses


def compare(a: str, b: str) -> int:
    first, second = json.loads(Path(a).read_text()), json.loads(Path(b).read_text())
    print(f"{'step':>4} {'before':>10} {'after':>10} {'|diff|':>10}")
    for step, (x, y) in enumerate(zip(first["losses"], second["losses"])):
        print(f"{step:>4} {x:>10.6f} {y:>10.6f} {abs(x - y):>10.2e}")
    worst = max(abs(x - y) for x, y in zip(first["losses"], second["losses"]))
    print(f"max |diff| {worst:.3e} over {min(len(first['losses']), len(second['losses']))} steps")
    return 0


def run(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe")
    parser.add_argument("--steps", type=int, default=12)
    parser.add_argument("--root", default=str(REPO / "data_cache" / "curves_synthetic"))
    parser.add_argument("--num-studies", type=int, default=200)
    parser.add_argument("--out")
    parser.add_argument("--compare", nargs=2, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--save-init", help="write the weights training starts from here")
    parser.add_argument("--load-init", help="start training from these weights (a --save-init file)")
    parser.add_argument("--rename", action="append", default=[], help="old.prefix=new.prefix for --load-init keys")
    parser.add_argument("--set", action="append", default=[], help="extra CLI override, e.g. --set=--model.init_args.x=1")
    a = parser.parse_args(argv)
    if a.compare:
        return compare(*a.compare)
    renames = dict(item.split("=", 1) for item in a.rename)
    losses = curve(a.recipe, a.steps, a.root, a.num_studies, a.set, RecordLoss(a.save_init, a.load_init, renames))
    result = {"recipe": a.recipe, "steps": a.steps, "num_studies": a.num_studies, "losses": losses}
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        write_atomic(Path(a.out), json.dumps(result, indent=1))
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(run())
