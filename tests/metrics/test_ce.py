"""Clinical-efficacy conventions checked against sklearn and hand-worked examples."""

from __future__ import annotations

import math
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from xrg.data.labels import CHEXPERT_5, CHEXPERT_LABELS
from xrg.metrics.ce import (
    ClinicalEfficacy,
    binarize,
    ce_from_labels,
    clinical_efficacy,
    format_per_label_report,
    labels_to_matrix,
    per_label_report,
)

NAN = math.nan
FIVE = [CHEXPERT_LABELS.index(name) for name in CHEXPERT_5]


def _random_codes(rows: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    codes = torch.tensor([1.0, 0.0, -1.0, NAN])[torch.randint(0, 4, (rows, 14), generator=generator)]
    codes[:, 0] = 1.0  # every report has a positive, so sklearn's sample average has no 0/0 case
    return codes


@pytest.mark.parametrize("uncertain_as", [0, 1])
def test_conventions_match_sklearn(uncertain_as):
    metrics = pytest.importorskip("sklearn.metrics")
    pred, ref = _random_codes(64, 0), _random_codes(64, 1)
    scores = ce_from_labels(pred, ref)
    suffix = "_u1" if uncertain_as else ""
    y_pred, y_true = binarize(pred, uncertain_as).int().numpy(), binarize(ref, uncertain_as).int().numpy()
    for size, columns in (("14", list(range(14))), ("5", FIVE)):
        for average in ("macro", "micro", "samples"):
            if average == "samples" and size == "5":
                continue  # rows may have no positive among five columns; see the hand-worked test
            p, r, f1, _ = metrics.precision_recall_fscore_support(
                y_true[:, columns], y_pred[:, columns], average=average, zero_division=0
            )
            name = "example" if average == "samples" else average
            key = f"ce/chexpert-rules/{name}{size}{suffix}"
            assert scores[f"{key}/p"] == pytest.approx(p)
            assert scores[f"{key}/r"] == pytest.approx(r)
            assert scores[f"{key}/f1"] == pytest.approx(f1)


def test_uncertain_and_blank_handling_by_hand():
    # one observation column shown; others blank in both
    pred = torch.full((4, 14), NAN)
    ref = torch.full((4, 14), NAN)
    edema = CHEXPERT_LABELS.index("Edema")
    pred[:, edema] = torch.tensor([1.0, -1.0, 0.0, NAN])
    ref[:, edema] = torch.tensor([1.0, 1.0, -1.0, -1.0])
    u0 = per_label_report(pred, ref, uncertain_as=0)["Edema"]
    u1 = per_label_report(pred, ref, uncertain_as=1)["Edema"]
    assert (u0["p"], u0["r"], u0["support"]) == (1.0, 0.5, 2.0)  # -1 read as negative
    assert (u1["p"], u1["r"], u1["support"]) == (1.0, 0.5, 4.0)  # -1 read as positive
    assert u1["f1"] == pytest.approx(2 / 3)
    assert "| Edema | 1.000 | 0.500 | 0.667 | 2 |" in format_per_label_report(per_label_report(pred, ref))


def test_example_based_counts_empty_agreement_as_perfect():
    pred, ref = torch.full((2, 14), NAN), torch.full((2, 14), NAN)
    pred[0, 2] = ref[0, 2] = 1.0  # report 0 agrees on Cardiomegaly; report 1 has no positives at all
    scores = ce_from_labels(pred, ref)
    assert scores["ce/chexpert-rules/example14/f1"] == 1.0
    assert scores["ce/chexpert-rules/macro14/f1"] == pytest.approx(1 / 14)  # 13 never-seen observations score 0


def test_clinical_efficacy_from_text():
    generated = ["Mild cardiomegaly. No pleural effusion.", "Small left pleural effusion.", "The lungs are clear."]
    references = ["The heart is enlarged. Small right effusion.", "No effusion.", "Lungs are clear."]
    scores = clinical_efficacy(generated, references)
    # predicted positives: Cardiomegaly (0), Effusion (1), No Finding (2)
    # reference positives: Cardiomegaly + Effusion (0), No Finding (1), No Finding (2)
    assert scores["ce/chexpert-rules/micro14/p"] == pytest.approx(2 / 3)
    assert scores["ce/chexpert-rules/micro14/r"] == pytest.approx(2 / 4)
    assert scores["ce/chexpert-rules/micro5/f1"] == pytest.approx(0.5)
    expected_groups = {f"{a}{n}{u}" for a in ("macro", "micro", "example") for n in ("14", "5") for u in ("", "_u1")}
    assert {key.split("/")[2] for key in scores} == expected_groups
    assert all(key.startswith("ce/chexpert-rules/") and key.split("/")[3] in ("p", "r", "f1") for key in scores)


def test_bad_input_raises_clear_errors():
    with pytest.raises(ValueError, match="2 generated reports but 1 references"):
        clinical_efficacy(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="unknown labeler 'nope'"):
        clinical_efficacy(["a"], ["a"], labeler="nope")
    with pytest.raises(ValueError, match=r"\[N, 14\]"):
        ce_from_labels(torch.zeros(2, 5), torch.zeros(2, 5))


def test_labels_to_matrix_keeps_blank_as_nan():
    matrix = labels_to_matrix([{"Edema": 1, "Cardiomegaly": -1}, {}])
    assert matrix.shape == (2, 14)
    assert matrix[0, CHEXPERT_LABELS.index("Edema")] == 1 and matrix[0, 2] == -1
    assert torch.isnan(matrix[1]).all()


GENERATED = ["Mild cardiomegaly.", "No effusion.", "Small left effusion.", "Lungs are clear.", "Possible pneumonia."]
REFERENCES = ["Heart is enlarged.", "Small effusion.", "Small left effusion.", "Clear lungs.", "Right lower lobe pneumonia."]


def test_metric_accumulates_and_scores_once():
    metric = ClinicalEfficacy()
    metric.update(GENERATED[:2], REFERENCES[:2])
    metric.update(GENERATED[2:], REFERENCES[2:])
    assert metric.compute() == clinical_efficacy(GENERATED, REFERENCES)
    metric.reset()
    assert metric.generated == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _rank_worker(rank: int, world: int, port: int, queue) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    metric = ClinicalEfficacy()
    metric.update(GENERATED[rank::world], REFERENCES[rank::world])  # uneven shards: 3 and 2 reports
    queue.put((rank, metric.compute()))
    dist.destroy_process_group()


def test_metric_gathers_strings_across_ranks():
    context = mp.get_context("fork")  # the worker lives in this test module, which spawn cannot import
    queue = context.Queue()
    port = _free_port()
    processes = [context.Process(target=_rank_worker, args=(rank, 2, port, queue)) for rank in range(2)]
    for process in processes:
        process.start()
    results = dict(queue.get(timeout=60) for _ in processes)
    for process in processes:
        process.join(timeout=60)
    expected = clinical_efficacy(GENERATED, REFERENCES)
    assert results[0] == pytest.approx(expected) and results[1] == pytest.approx(expected)
