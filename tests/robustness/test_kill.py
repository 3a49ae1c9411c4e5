"""`kill -9` at the worst moment: a fit resumes bit-identically, a predict rerun never destroys the
earlier file, two fits started together into one folder keep apart.

One module-wide set of real `python -m xrg` processes (tiny model, 30-study synthetic benchmark,
30 steps): two identical fits start at the same moment into one `default_root_dir` (and one
benchmark cache); one is killed with SIGKILL just after a mid-epoch checkpoint and resumed from
its `last.ckpt`; the other runs through. Every test below reads that set.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from xrg.data.errors import DataError
from xrg.metrics.evaluate import main as evaluate

REPO = Path(__file__).resolve().parents[2]
BATCHES_PER_EPOCH = 5  # 24 training studies in batches of 5
EPOCHS = 6
EVERY = 3  # checkpoint steps 3, 6, 9, 12 are mid-epoch; 15 ends epoch 3


def recipe(tmp: Path) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "max_epochs": EPOCHS, "accelerator": "cpu", "devices": 1, "log_every_n_steps": 1,
            "enable_progress_bar": False, "enable_model_summary": False, "num_sanity_val_steps": 0,
            "limit_val_batches": 1,
            "callbacks": [{"class_path": "ModelCheckpoint",
                           "init_args": {"save_last": True, "every_n_train_steps": EVERY, "save_top_k": 0}}],
        },
        "model": {"class_path": "ReportGeneration", "init_args": {
            "image_encoder": {"class_path": "TimmImageEncoder", "init_args": {"model_name": "test_resnet"}},
            "decoder": {"class_path": "TransformerDecoder", "init_args": {
                "tokenizer": {"class_path": "WordTokenizer", "init_args": {"threshold": 1}},
                "dim": 32, "heads": 2, "ffn_dim": 64, "encoder_layers": 1, "decoder_layers": 1,
                "dropout": 0.1, "max_length": 24, "num_beams": 2}},  # dropout: the model draws random numbers
            "nlg_metrics": False, "clinical_efficacy": False, "generate_in_validation": False,
            "optimizer": {"class_path": "AdamW", "init_args": {"lr": 1.0e-3}},
            "lr_scheduler": {"class_path": "StepLR", "init_args": {"step_size": 2, "gamma": 0.5}},
        }},
        "data": {"class_path": "ReportDataModule", "init_args": {
            "synthetic": {"root": str(tmp / "data_cache" / "synthetic"), "num_studies": 30, "seed": 0,
                          "image_size": 64, "split_fractions": [0.8, 0.1, 0.1]},
            # random crops and flips drawn in a worker process: augmentation must replay too
            "image_size": 56, "resize": 64, "horizontal_flip": True, "batch_size": 5, "eval_batch_size": 2,
            "num_workers": 1, "predict_split": "train"}},
    }
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def xrg(*args: str) -> list[str]:
    return [sys.executable, "-m", "xrg", *args]


ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))  # one thread: results depend on it


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        if process.poll() is not None:
            raise AssertionError(f"the process ended (exit {process.returncode}) before {what}")
        time.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


def step_of(checkpoint: Path) -> int:
    try:
        return torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]
    except Exception:  # being written right now
        return -1


def version_of_killed_run(runs: Path) -> Path | None:
    """The killed run is the one started with `--trainer.enable_model_summary=true` (no effect on
    training): its config.yaml tells its version folder from its twin's."""
    for config in runs.glob("lightning_logs/version_*/config.yaml"):
        if "enable_model_summary: true" in config.read_text():
            return config.parent
    return None


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill")
    config = recipe(tmp)
    root = tmp / "runs"
    fit = ["fit", "--config", str(config), f"--trainer.default_root_dir={root}"]
    logs = {name: (tmp / f"{name}.log").open("w") for name in ("full", "killed", "resumed")}
    full = subprocess.Popen(xrg(*fit), env=ENV, stdout=logs["full"], stderr=subprocess.STDOUT)
    doomed = subprocess.Popen(xrg(*fit, "--trainer.enable_model_summary=true"), env=ENV,
                              stdout=logs["killed"], stderr=subprocess.STDOUT)

    def mid_epoch_checkpoint():
        version = version_of_killed_run(root)
        last = version / "checkpoints" / "last.ckpt" if version else None
        return last if last and last.is_file() and step_of(last) >= 2 * EVERY else None

    last = wait_for(mid_epoch_checkpoint, doomed, "the second checkpoint")
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    killed_at = torch.load(last, map_location="cpu", weights_only=True)
    resumed = subprocess.run(xrg(*fit, f"--ckpt_path={last}"), env=ENV, stdout=logs["resumed"], stderr=subprocess.STDOUT)
    assert full.wait() == 0, (tmp / "full.log").read_text()[-3000:]
    assert resumed.returncode == 0, (tmp / "resumed.log").read_text()[-3000:]
    versions = sorted(root.glob("lightning_logs/version_*"))
    return {"tmp": tmp, "config": config, "root": root, "killed_at": killed_at, "killed_version": last.parents[1],
            "versions": versions, "logs": {name: tmp / f"{name}.log" for name in logs}}


def final_checkpoint(version: Path) -> dict:
    return torch.load(version / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)


def test_two_fits_started_together_get_their_own_version_folder(runs):
    killed, others = runs["killed_version"], [v for v in runs["versions"] if v != runs["killed_version"]]
    assert len(runs["versions"]) == 3  # the two started together, and the resumed run
    configs = [(v / "config.yaml").read_text() for v in runs["versions"]]
    assert sum("enable_model_summary: true" in c for c in configs) == 1, "two runs wrote into one folder"
    assert all((v / "checkpoints" / "last.ckpt").is_file() for v in [killed, *others])
    # ... and the benchmark cache they both asked for was built once, atomically: no temporary folder left
    cache = runs["tmp"] / "data_cache"
    assert sorted(p.name for p in cache.iterdir()) == ["synthetic"]


def test_killed_fit_resumes_bit_identical_to_an_uninterrupted_one(runs):
    state = runs["killed_at"]
    step = state["global_step"]
    assert step % BATCHES_PER_EPOCH != 0, f"killed at step {step}: an epoch boundary, not mid-epoch"
    assert state["epoch"] == step // BATCHES_PER_EPOCH
    finals = {v: final_checkpoint(v) for v in runs["versions"] if v != runs["killed_version"]}
    assert sorted(c["global_step"] for c in finals.values()) == [EPOCHS * BATCHES_PER_EPOCH] * 2
    (full, resumed) = sorted(finals.values(), key=lambda c: "ckpt_path: null" not in c["xrg_config"])
    assert "ckpt_path: null" in full["xrg_config"] and "last.ckpt" in resumed["xrg_config"]
    weights = [k for k, v in full["state_dict"].items() if torch.is_tensor(v) and v.is_floating_point()]
    assert weights and full["state_dict"].keys() == resumed["state_dict"].keys()
    diff = max((full["state_dict"][k] - resumed["state_dict"][k]).abs().max().item() for k in weights)
    assert diff == 0.0, f"resumed weights differ from the uninterrupted run's by up to {diff}"
    # the optimizer's moments and the scheduler's position too
    assert full["lr_schedulers"] == resumed["lr_schedulers"]
    for a, b in zip(full["optimizer_states"][0]["state"].values(), resumed["optimizer_states"][0]["state"].values()):
        assert torch.equal(a["exp_avg"], b["exp_avg"]) and torch.equal(a["exp_avg_sq"], b["exp_avg_sq"])


def test_killed_predict_rerun_keeps_the_complete_file_and_evaluate_catches_a_cut_one(runs, capsys, one_thread):
    from xrg.cli import main

    checkpoint = next(v for v in runs["versions"] if v != runs["killed_version"]) / "checkpoints" / "last.ckpt"
    output = runs["tmp"] / "out" / "predictions.jsonl"
    predict = ["predict", "--config", str(runs["config"]), f"--ckpt_path={checkpoint}", f"--predictions={output}",
               f"--trainer.default_root_dir={runs['tmp'] / 'predict'}"]
    main(predict)  # in this process: the run the rerun must not destroy
    complete = output.read_bytes()
    rows = [json.loads(line) for line in complete.decode().splitlines()]
    assert len(rows) == 24 and len({row["id"] for row in rows}) == 24  # every training study, once
    assert json.loads((output.parent / "predictions.jsonl.meta.json").read_text()) == {"rows": 24, "errors": 0, "expected": 24}

    rerun = subprocess.Popen(xrg(*predict), env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    partial = output.parent / "predictions.jsonl.partial"
    wait_for(lambda: partial.is_file() and partial.read_text().count("\n") >= 2, rerun, "two predictions of the rerun")
    rerun.send_signal(signal.SIGKILL)
    rerun.wait()
    assert output.read_bytes() == complete  # the earlier complete file, untouched
    lines = partial.read_text().count("\n")
    assert 2 <= lines < 24

    capsys.readouterr()
    assert evaluate(["--predictions", str(output), "--no-meteor", "--no-ce"]) == 0
    err = capsys.readouterr().err
    assert "predictions.jsonl.partial exists" in err and "did not finish" in err

    # The case: a file cut short (an older xrg truncated it on rerun) is refused, not scored.
    cut = output.parent / "cut.jsonl"
    cut.write_bytes(b"".join(complete.splitlines(keepends=True)[:8]))
    (output.parent / "cut.jsonl.meta.json").write_text((output.parent / "predictions.jsonl.meta.json").read_text())
    with pytest.raises(DataError, match="8 rows, but cut.jsonl.meta.json records 24"):
        evaluate(["--predictions", str(cut), "--no-meteor", "--no-ce"])
    (output.parent / "cut.jsonl.meta.json").unlink()
    with pytest.raises(DataError, match="8 predictions, expected 24"):
        evaluate(["--predictions", str(cut), "--expect", "24", "--no-meteor", "--no-ce"])
    assert evaluate(["--predictions", str(cut), "--no-meteor", "--no-ce"]) == 0
    assert "nothing shows that it holds every study" in capsys.readouterr().err
