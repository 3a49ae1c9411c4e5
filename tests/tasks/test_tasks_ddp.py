"""Every training task kind runs under DDP: two CPU processes (gloo), started the way torchrun or
srun start them (each process runs the CLI itself; Lightning reads RANK/LOCAL_RANK/WORLD_SIZE).

One launch fits each task kind's synthetic recipe for 1 step, validates and tests it (contrastive
pretraining scores in validation), then checks on both ranks: identical validation and test
metrics, computed from the whole gathered split (not one rank's half) with each study once (the
sampler pads both evaluation splits with a repeat), report texts scored once (by rank 0, shared), and a retrieval index built once per weights (rank 0
builds and saves it, the other rank loads it).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import subprocess
import sys

import pytest

REPO = Path(__file__).resolve().parents[2]
# task kind -> its synthetic recipe (the report-generation one carries a retrieval guide)
RECIPES = {
    "report_generation": "mix/radialog_retrieval_synthetic.yaml",
    "findings": "radialog/classifier_synthetic.yaml",
    "contrastive": "trrg/stage1_synthetic.yaml",
    "qformer_alignment": "radialog/qformer_synthetic.yaml",
    "concept_alignment": "radalign/retrieval_synthetic.yaml",
    "instruction_tuning": "radialog/instruct_synthetic.yaml",
    # a findings guide tuning its thresholds before validation: both ranks tune on the whole split;
    # over a frozen encoder whose features are kept: each rank encodes half the studies, then both hold them all
    "findings_thresholds": "mix/findings_transformer_synthetic.yaml",
}
# the benchmark made below; label-balanced epochs run on one process only
EXTRA = {"findings_thresholds": ["--data.init_args.synthetic.image_size=256", "--data.init_args.label_balance=0.0",
                                 "--model.init_args.cache_frozen_features=true", "--model.init_args.frozen=[image_encoder]",
                                 "--data.init_args.resize=96"]}
if os.environ.get("XRG_DDP_TASKS"):  # a subset, comma-separated (benchmarks/mutation.py runs the kind it mutates)
    RECIPES = {kind: RECIPES[kind] for kind in os.environ["XRG_DDP_TASKS"].split(",")}
WITH_INDEX = {"report_generation", "concept_alignment"}
# 13 validation and 13 test studies: 7 per rank, so Lightning's DistributedSampler pads each split
# with a repeat of its first study, which every gathered metric must count once
NUM_STUDIES, SPLITS = 50, (0.48, 0.26, 0.26)
TEST_STUDIES = int(NUM_STUDIES * SPLITS[2])
VAL_STUDIES = int(NUM_STUDIES * SPLITS[1])
TRAIN_STUDIES = NUM_STUDIES - TEST_STUDIES - VAL_STUDIES


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _count_calls(module, name: str, record: list, size=lambda *a, **k: None) -> None:
    original = getattr(module, name)

    def counted(*args, **kwargs):
        record.append(size(*args, **kwargs))
        return original(*args, **kwargs)

    setattr(module, name, counted)


def _worker(rank: int, port: int, root: str, tmp: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", NODE_RANK="0",
                      RANK=str(rank), LOCAL_RANK=str(rank))
    import torch

    torch.set_num_threads(1)
    from xrg.blocks.retrieval import lifecycle
    from xrg.lightning_cli import run_lightning_cli
    from xrg.metrics.nlg.metric import PairedTextMetric
    from xrg.blocks.guides import findings as findings_guide
    from xrg.tasks import contrastive, findings

    from xrg.tasks.feature_cache import FeatureCache

    builds, scored, aucs, tuned, recalls, encoded = [], [], [], [], [], []
    _count_calls(FeatureCache, "gather", encoded, lambda cache: sorted(cache.rows))  # this rank's share
    _count_calls(findings_guide, "best_f1_thresholds", tuned, lambda probs, *a, **k: probs.shape[0])
    _count_calls(lifecycle, "build_index", builds)
    _count_calls(PairedTextMetric, "_score", scored, lambda metric: len(metric.texts()[0]))
    _count_calls(findings, "per_label_auc", aucs, lambda probs, *a, **k: probs.shape[0])
    _count_calls(contrastive, "retrieval_recall", recalls, lambda images, *a, **k: images.shape[0])
    results = {}
    for kind, recipe in RECIPES.items():
        del builds[:], scored[:], aucs[:], tuned[:], recalls[:], encoded[:]
        cli = run_lightning_cli([
            "fit", "--config", str(REPO / "recipes" / recipe), "--trainer.accelerator=cpu", "--trainer.devices=2",
            "--trainer.strategy=ddp", "--trainer.max_steps=1", "--trainer.max_epochs=1",
            "--trainer.num_sanity_val_steps=0", "--trainer.logger=false", "--trainer.enable_progress_bar=false",
            f"--trainer.default_root_dir={tmp}/{kind}", f"--data.init_args.synthetic.root={root}",
            f"--data.init_args.synthetic.num_studies={NUM_STUDIES}", f"--data.init_args.synthetic.split_fractions={list(SPLITS)}",
            "--data.init_args.batch_size=4", "--data.init_args.eval_batch_size=6",
            *(["--model.init_args.decoder.init_args.max_new_tokens=8"] if "CausalLMDecoder" in Path(REPO / "recipes" / recipe).read_text() else []),
            *EXTRA.get(kind, []),
        ])
        (validated,) = cli.trainer.validate(cli.model, datamodule=cli.datamodule, verbose=False)
        del scored[:], aucs[:]  # what the test scores is counted below (the index builds count throughout)
        # contrastive pretraining scores in validation
        (metrics,) = [validated] if kind == "contrastive" else cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
        guide = dict(getattr(cli.model, "guides", {})).get("findings")
        thresholds = guide.thresholds.tolist() if getattr(guide, "tune_thresholds", False) else None
        results[kind] = {"metrics": metrics, "val": validated, "builds": len(builds), "scored": scored[:], "auc_rows": aucs[:],
                         "thresholds": thresholds, "tuned_rows": tuned[:], "recall_rows": recalls[:], "encoded": encoded[:]}
    Path(tmp, f"rank{rank}.json").write_text(json.dumps(results))


@pytest.mark.slow
def test_every_task_kind_trains_and_scores_once_under_ddp(tmp_path: Path) -> None:
    from xrg.data.synthetic import ensure_benchmark

    root = tmp_path / "synthetic"
    ensure_benchmark(root, NUM_STUDIES, split_fractions=SPLITS)  # once, before the ranks start
    port = _free_port()
    env = os.environ | {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    ranks = [subprocess.Popen([sys.executable, __file__, str(rank), str(port), str(root), str(tmp_path)], env=env)
             for rank in (0, 1)]
    try:
        codes = [rank.wait(timeout=900) for rank in ranks]
    finally:
        for rank in ranks:  # a rank left waiting on a failed peer
            rank.kill()
    assert codes == [0, 0]
    ranks = [json.loads(Path(tmp_path, f"rank{r}.json").read_text()) for r in (0, 1)]
    for kind in RECIPES:
        first, second = ranks[0][kind], ranks[1][kind]
        assert first["metrics"] and first["metrics"] == pytest.approx(second["metrics"]), kind
        # validation too: a loss logged from one rank's half of the split differs between ranks
        assert any(k.endswith("loss") for k in first["val"]) and first["val"] == pytest.approx(second["val"]), kind
        # rank 0 builds (after fitting, the weights changed: again for the test), rank 1 only loads
        assert second["builds"] == 0 and (first["builds"] >= 1) == (kind in WITH_INDEX), kind
        if kind in ("report_generation", "instruction_tuning"):
            # rank 0 scored the 13 gathered pairs once; rank 1 received the scores
            assert (first["scored"], second["scored"]) == ([TEST_STUDIES], []), kind
            assert "test/nlg/bleu_4" in first["metrics"], kind
        if kind == "findings_thresholds":  # tuned on the whole validation split on both ranks, so alike
            assert first["tuned_rows"] == second["tuned_rows"] == [VAL_STUDIES], kind
            assert first["thresholds"] == second["thresholds"] != [0.5] * 14, first["thresholds"]
            # the kept features: one fill per fit, the ranks splitting the studies between them
            (mine,), (theirs,) = first["encoded"], second["encoded"]
            assert not set(mine) & set(theirs) and len(mine) + len(theirs) == TRAIN_STUDIES + VAL_STUDIES, (mine, theirs)
        if kind in ("findings", "concept_alignment"):
            assert first["auc_rows"] == second["auc_rows"] == [TEST_STUDIES], kind
        if kind == "contrastive":  # recall over the validation studies, each once
            assert first["recall_rows"] and set(first["recall_rows"]) == set(second["recall_rows"]) == {VAL_STUDIES}


if __name__ == "__main__":  # one rank, as torchrun would start it
    _worker(int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4])
