"""benchmarks/quality_synthetic.py chains a run's stages: each later stage starts from the stage
before's last checkpoint, `--seed` reaches every stage and `--set` only the last one."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def quality(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import quality_synthetic

    yield quality_synthetic
    sys.modules.pop("quality_synthetic", None)


def _fake_fit(calls):
    def fit(recipe, run, a, *extra):
        calls.append((Path(recipe).name, run.name, list(extra)))
        (run / "checkpoints").mkdir(parents=True, exist_ok=True)
        (run / "checkpoints" / "last.ckpt").write_text(run.name)
        return run / "checkpoints" / "best.ckpt"
    return fit


@pytest.mark.parametrize("seed", [None, 3])
def test_stages_chain_with_the_seed_on_each_and_set_on_the_last(quality, monkeypatch, tmp_path, seed):
    calls = []
    monkeypatch.setattr(quality, "fit", _fake_fit(calls))
    a = argparse.Namespace(workdir=str(tmp_path), epochs=7, seed=seed, set=["--model.init_args.x=1"])
    best = quality.fit_stages("findings_transformer_enriched_head", a)

    (head, head_run, head_args), (writer, writer_run, writer_args) = calls
    assert (head, head_run, writer, writer_run) == ("findings_classifier_synthetic.yaml", "stage0",
                                                     "findings_transformer_synthetic.yaml", "stage1")
    assert f"--model.init_args.init_from.checkpoint={tmp_path / 'findings_transformer_enriched_head' / 'stage0' / 'checkpoints' / 'last.ckpt'}" in writer_args
    assert not any(x.startswith("--model.init_args.init_from") for x in head_args)
    assert ("--seed_everything=3" in head_args, "--seed_everything=3" in writer_args) == (seed == 3, seed == 3)
    assert not any(x.startswith("--seed_everything") for x in head_args + writer_args) or seed is not None
    assert ("--trainer.max_epochs=7" in head_args, "--trainer.max_epochs=7" in writer_args) == (False, True)
    assert ("--model.init_args.x=1" in head_args, writer_args[-1]) == (False, "--model.init_args.x=1")
    assert best.parent.parent.name == "stage1"
