import os
import subprocess
import sys

import torch

from xrg.metrics.gather import first_rows, gather_studies, study_keys


def test_study_keys_are_the_same_in_every_process():
    # Python's own hash() is salted per process, so two ranks would disagree on it
    ids = ["p10/s5001", "p10/s5002", "ü-study"]
    code = f"from xrg.metrics.gather import study_keys; print(study_keys({ids!r}).tolist())"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                           env=os.environ | {"PYTHONHASHSEED": "123"})
    keys = study_keys(ids)
    assert other.stdout.strip() == str(keys.tolist())
    assert keys.dtype == torch.long and len(set(keys.tolist())) == 3 and (keys >= 0).all()


def test_first_rows_keeps_each_studys_first_row_in_order():
    keys = torch.tensor([7, 3, 7, 9, 3, 1])
    assert first_rows(keys).tolist() == [0, 1, 3, 5]
    assert first_rows(torch.empty(0, dtype=torch.long)).tolist() == []


class _TwoRanks:
    """A stand-in for a LightningModule under DDP: all_gather stacks what two ranks hold."""

    def __init__(self, other_rank: dict[int, torch.Tensor]) -> None:
        self.other_rank, self.calls = other_rank, 0

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        other = self.other_rank[self.calls]
        self.calls += 1
        return torch.stack([tensor, other])


def test_a_study_the_sampler_padded_in_twice_is_gathered_once():
    # 5 studies over 2 ranks: Lightning's DistributedSampler pads rank 1 with a repeat of study a
    keys0, keys1 = study_keys(["a", "c", "e"]), study_keys(["b", "d", "a"])
    probs0, probs1 = torch.tensor([[0.1], [0.3], [0.5]]), torch.tensor([[0.2], [0.4], [0.1]])
    task = _TwoRanks({0: keys1, 1: probs1})
    (probs,) = gather_studies(task, keys0, probs0)
    assert torch.equal(probs, torch.tensor([[0.1], [0.3], [0.5], [0.2], [0.4]]))
