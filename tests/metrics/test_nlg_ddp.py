"""Two CPU processes (gloo) give exactly the scores of one process: texts are gathered, not scores."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world_size: int, port: int, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world_size)
    torch.set_num_threads(1)
    # Uneven shards, and rank 1 updates in two batches: sizes must not matter.
    shard = PAIRS[:5] if rank == 0 else PAIRS[5:]
    metric = NLGMetrics(meteor=False)
    for start in range(0, len(shard), 2 if rank else len(shard)):
        batch = shard[start : start + (2 if rank else len(shard))]
        metric.update([g for g, _ in batch], [r for _, r in batch])
    scores = metric.compute()
    local = metric.texts()  # states are restored after compute's sync
    Path(out, f"rank{rank}.json").write_text(json.dumps({"scores": scores, "local": len(local[0])}))
    dist.destroy_process_group()


def test_two_processes_equal_one(tmp_path: Path, monkeypatch) -> None:
    # Spawned workers import this module by name; with pytest's importlib mode that needs the
    # repository root on the sys.path they inherit.
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2]))
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    single = NLGMetrics(meteor=False)
    single.update([g for g, _ in PAIRS], [r for _, r in PAIRS])
    expected = single.compute()
    for rank, local_size in ((0, 5), (1, 2)):
        result = json.loads(Path(tmp_path, f"rank{rank}.json").read_text())
        assert result["local"] == local_size
        assert result["scores"].keys() == expected.keys()
        for key, value in expected.items():
            assert abs(result["scores"][key] - value) < 1e-12, key
