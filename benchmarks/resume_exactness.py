"""How exactly does a fit killed with SIGKILL resume? max |diff| of the final weights against an
uninterrupted run with the same seed, for a kill mid-epoch and one at an epoch boundary, with
xrg as it is and with each piece of its resume state taken out.

    nice -n 5 python benchmarks/resume_exactness.py [--out benchmarks/results/resume_exactness.json]

The runs are `tests/robustness/test_kill.py`'s tiny recipe (30 steps, dropout, random crops and
flips in a worker process), one thread each. Variants, applied by patching in the launched process:
- `xrg`: as shipped.
- `no_random_states`: checkpoints without `ExactResume`'s RNG states.
- `no_loader_state`: a training loader that Lightning cannot ask for its position.
- `before`: both removed and Lightning's plain shuffled DataLoader (xrg before issue 13).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "robustness"))
from test_kill import BATCHES_PER_EPOCH, recipe  # noqa: E402  the test's recipe, not a copy

from xrg.checkpoints import read_checkpoint  # noqa: E402
from xrg.data.jsonl import write_atomic  # noqa: E402

PATCHES = {
    "xrg": "",
    "no_random_states": "import xrg.callbacks as c; c.ExactResume.on_save_checkpoint = lambda *a: None",
    "no_loader_state": "import xrg.data.loader as l; del l.StudyLoader.state_dict, l.StudyLoader.load_state_dict",
    "before": (
        "import xrg.callbacks as c, xrg.data.datamodule as d, torch.utils.data as t\n"
        "c.ExactResume.on_save_checkpoint = lambda *a: None\n"
        "def loader(self, split, train):\n"
        "    hp = self.hparams\n"
        "    return t.DataLoader(self.datasets[split], batch_size=hp.batch_size if train else (hp.eval_batch_size or hp.batch_size),\n"
        "        shuffle=train, num_workers=hp.num_workers, persistent_workers=hp.num_workers > 0, collate_fn=d.collate_studies)\n"
        "d.ReportDataModule._loader = loader"
    ),
}
ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))


def command(variant: str, args: list[str]) -> list[str]:
    launch = f"{PATCHES[variant]}\nimport sys\nfrom xrg.cli import main\nsys.exit(main({args!r}))"
    return [sys.executable, "-c", launch]


def weights(run: Path) -> dict[str, torch.Tensor]:
    """The floating-point weights of `run`'s newest last.ckpt (a run folder or a checkpoint file)."""
    state = read_checkpoint(run)["state_dict"]
    return {k: v for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()}


def max_diff(a: dict, b: dict) -> float:
    return max((a[k] - b[k]).abs().max().item() for k in a)


def with_checkpoints_every(config: Path, every: int) -> Path:
    settings = yaml.safe_load(config.read_text())
    settings["trainer"]["callbacks"][0]["init_args"]["every_n_train_steps"] = every
    path = config.with_name(f"every{every}.yaml")
    path.write_text(yaml.safe_dump(settings, sort_keys=False))
    return path


def killed_and_resumed(variant: str, config: Path, run: Path, every: int, kill_at: int) -> tuple[int, Path]:
    fit = ["fit", "--config", str(with_checkpoints_every(config, every)), f"--trainer.default_root_dir={run}"]
    process = subprocess.Popen(command(variant, fit), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while True:
        found = list(run.rglob("last.ckpt"))
        try:
            step = torch.load(found[0], map_location="cpu", weights_only=True)["global_step"] if found else -1
        except Exception:
            step = -1
        if step >= kill_at:
            break
        if process.poll() is not None:
            raise RuntimeError(f"{variant}: the run ended before the kill")
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    checkpoint = found[0]
    step = read_checkpoint(checkpoint)["global_step"]
    subprocess.run(command(variant, [*fit, f"--ckpt_path={checkpoint}"]), env=ENV, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return step, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "resume_exactness.json")
    parser.add_argument("--variants", nargs="+", default=list(PATCHES))
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="resume_exactness-"))
    config = recipe(tmp)
    fit = ["fit", "--config", str(config)]
    kills = {"mid-epoch": (3, 2 * 3), "epoch end": (BATCHES_PER_EPOCH, 2 * BATCHES_PER_EPOCH)}  # (every, kill at)
    uninterrupted = {}
    rows = []
    for variant in args.variants:
        baseline = "before" if variant == "before" else "xrg"
        if baseline not in uninterrupted:
            run = tmp / f"{baseline}-full"
            subprocess.run(command(baseline, [*fit, f"--trainer.default_root_dir={run}"]), env=ENV, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            again = tmp / f"{baseline}-again"  # two uninterrupted runs: the floor
            subprocess.run(command(baseline, [*fit, f"--trainer.default_root_dir={again}"]), env=ENV, check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            uninterrupted[baseline] = weights(run)
            rows.append({"variant": baseline, "kill": "none (second uninterrupted run)", "step": None,
                         "max_abs_diff": max_diff(uninterrupted[baseline], weights(again))})
        for kill, (every, kill_at) in kills.items():
            step, final = killed_and_resumed(variant, config, tmp / f"{variant}-{every}", every, kill_at)
            rows.append({"variant": variant, "kill": kill, "step": step,
                         "max_abs_diff": max_diff(uninterrupted[baseline], weights(final))})
            print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(args.out, json.dumps({"rows": rows, "steps_per_epoch": BATCHES_PER_EPOCH}, indent=1) + "\n")
    print(f"\n{'variant':<18} {'kill':<32} {'step':>5} {'max |diff|':>12}")
    for row in rows:
        print(f"{row['variant']:<18} {row['kill']:<32} {str(row['step'] or '-'):>5} {row['max_abs_diff']:>12.3g}")


if __name__ == "__main__":
    main()
