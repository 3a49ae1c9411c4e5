"""Two CPU processes (gloo) give exactly the scores of one process: texts are gathered, not scores,
and a study that both ranks hold (the padding of Lightning's DistributedSampler) counts once."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from xrg.metrics.ce import ClinicalEfficacy
from xrg.metrics.nlg import NLGMetrics

PAIRS = [
    ("the heart is normal in size . the lungs are clear .", "the heart size is normal . the lungs are clear ."),
    ("no acute cardiopulmonary abnormality .", "no acute cardiopulmonary process ."),
    ("small left pleural effusion .", "moderate left pleural effusion with atelectasis ."),
    ("the lungs are hyperinflated .", "the lungs are hyperinflated with flattened diaphragms ."),
    ("there is no pneumothorax .", "there is a small right apical pneumothorax ."),
    ("mild cardiomegaly . no edema .", "stable mild cardiomegaly . no pulmonary edema ."),
    ("bibasilar atelectasis .", "low lung volumes with bibasilar atelectasis ."),
]


PROBABILITIES = torch.rand(len(PAIRS), 14, generator=torch.Generator().manual_seed(0), dtype=torch.float64)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    # Uneven shards, rank 1 updates in two batches, and it also holds study 0 again as a sampler's
    # padding does: sizes and repeats must not matter.
    ids = [str(i) for i in range(len(PAIRS))]
    shard = list(zip(ids, PAIRS, PROBABILITIES))[:5] if rank == 0 else list(zip(ids, PAIRS, PROBABILITIES))[5:] + [(ids[0], PAIRS[0], PROBABILITIES[0])]
    metric, efficacy = NLGMetrics(meteor=False), ClinicalEfficacy()
    for start in range(0, len(shard), 2 if rank else len(shard)):
        batch = shard[start : start + (2 if rank else len(shard))]
        generated, references, batch_ids = [g for _, (g, _), _ in batch], [r for _, (_, r), _ in batch], [i for i, _, _ in batch]
        metric.update(generated, references, ids=batch_ids)
        efficacy.update(generated, references, torch.stack([p for _, _, p in batch]), ids=batch_ids)
    scores = metric.compute() | efficacy.compute()
    local = metric.texts()  # states are restored after compute's sync
    Path(out, f"rank{rank}.json").write_text(json.dumps({"scores": scores, "local": len(local[0])}))
    dist.destroy_process_group()


def test_two_processes_equal_one(tmp_path: Path, monkeypatch) -> None:
    # Spawned workers import this module by name; with pytest's importlib mode that needs the
    # repository root on the sys.path they inherit.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single, efficacy = NLGMetrics(meteor=False), ClinicalEfficacy()
    single.update([g for g, _ in PAIRS], [r for _, r in PAIRS])
    efficacy.update([g for g, _ in PAIRS], [r for _, r in PAIRS], PROBABILITIES)
    expected = single.compute() | efficacy.compute()
    assert "ce/chexpert-rules/auroc/Pleural Effusion" in expected  # the probabilities were scored
    for rank, local_size in ((0, 5), (1, 3)):
        result = json.loads(Path(tmp_path, f"rank{rank}.json").read_text())
        assert result["local"] == local_size
        assert result["scores"].keys() == expected.keys()
        for key, value in expected.items():
            assert abs(result["scores"][key] - value) < 1e-12, key
