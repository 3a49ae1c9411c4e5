"""Clinical-efficacy conventions checked against sklearn and hand-worked examples."""

from __future__ import annotations

import math
import os
import socket
import warnings
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from xrg.data.labels import CHEXPERT_5, CHEXPERT_LABELS
from xrg.metrics.labeler import label_report
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
    return torch.tensor([1.0, 0.0, -1.0, NAN])[torch.randint(0, 4, (rows, 14), generator=generator)]


def _with_edge_cases(codes: torch.Tensor) -> torch.Tensor:
    """Blank rows, all-negative rows and columns that are never positive (or never uncertain)."""
    codes = codes.clone()
    codes[::5] = NAN  # reports that mention nothing
    codes[1::7] = 0.0  # reports that deny everything
    codes[:, CHEXPERT_LABELS.index("Fracture")] = NAN  # never mentioned
    codes[:, CHEXPERT_LABELS.index("Edema")] = codes[:, CHEXPERT_LABELS.index("Edema")].clamp(max=0)  # never positive
    return codes


def _scenarios() -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    pred, ref = _random_codes(64, 0), _random_codes(64, 1)
    return {
        "random": (pred, ref),
        "edge cases": (_with_edge_cases(pred), _with_edge_cases(ref)),
        "edge cases on one side": (_with_edge_cases(pred), ref),
        "all-empty generations": (torch.full_like(pred, NAN), ref),
    }


@pytest.mark.parametrize("uncertain_as", [0, 1])
@pytest.mark.parametrize("scenario", list(_scenarios()))
def test_conventions_match_sklearn(uncertain_as, scenario):
    metrics = pytest.importorskip("sklearn.metrics")
    pred, ref = _scenarios()[scenario]
    scores = ce_from_labels(pred, ref)
    suffix = "_u1" if uncertain_as else ""
    y_pred, y_true = binarize(pred, uncertain_as).int().numpy(), binarize(ref, uncertain_as).int().numpy()
    for size, columns in (("14", list(range(14))), ("5", FIVE)):
        true, predicted = y_true[:, columns], y_pred[:, columns]
        for average in ("macro", "micro", "weighted", "samples"):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # sklearn warns about the 0/0 cases it scores 0
                p, r, f1, _ = metrics.precision_recall_fscore_support(true, predicted, average=average, zero_division=0)
            key = f"ce/chexpert-rules/{'example' if average == 'samples' else average}{size}{suffix}"
            assert scores[f"{key}/p"] == pytest.approx(p, abs=1e-12), (key, "p")
            assert scores[f"{key}/r"] == pytest.approx(r, abs=1e-12), (key, "r")
            assert scores[f"{key}/f1"] == pytest.approx(f1, abs=1e-12), (key, "f1")
        exact = metrics.accuracy_score(true, predicted)  # f1chexbert's accuracy: whole rows equal
        assert scores[f"ce/chexpert-rules/exact{size}{suffix}/acc"] == pytest.approx(exact, abs=1e-12)


def test_every_key_is_documented_and_counted():
    scores = ce_from_labels(*_scenarios()["random"])
    groups = {f"{a}{n}{u}" for a in ("macro", "micro", "weighted", "example") for n in ("14", "5") for u in ("", "_u1")}
    expected = {f"ce/chexpert-rules/{g}/{s}" for g in groups for s in ("p", "r", "f1")}
    expected |= {f"ce/chexpert-rules/exact{n}{u}/acc" for n in ("14", "5") for u in ("", "_u1")}
    assert set(scores) == expected
    docs = (Path(__file__).resolve().parents[2] / "docs" / "clinical_efficacy.md").read_text()
    assert f"All {len(expected)} keys per labeler" in docs


def test_example_based_scores_a_report_with_no_positive_on_either_side_zero():
    pred, ref = torch.full((2, 14), NAN), torch.full((2, 14), NAN)
    pred[0, 2] = ref[0, 2] = 1.0  # report 0 agrees on Cardiomegaly; report 1 has no positives at all
    scores = ce_from_labels(pred, ref)
    assert scores["ce/chexpert-rules/example14/f1"] == 0.5  # sklearn "samples", RaDialog's Sample F1
    assert scores["ce/chexpert-rules/macro14/f1"] == pytest.approx(1 / 14)  # 13 never-seen observations score 0
    assert scores["ce/chexpert-rules/exact14/acc"] == 1.0  # both rows have equal positive sets


def test_auroc_matches_sklearn_per_observation_and_macro():
    metrics = pytest.importorskip("sklearn.metrics")
    pred, ref = _scenarios()["edge cases on one side"]
    probabilities = torch.rand(pred.shape, generator=torch.Generator().manual_seed(2))
    probabilities[:, ::2] = (probabilities[:, ::2] * 4).round() / 4  # ties, which AUROC must average
    scores = ce_from_labels(pred, ref, probabilities=probabilities)
    for suffix, uncertain_as in (("", 0), ("_u1", 1)):
        y_true = binarize(ref, uncertain_as).int().numpy()
        per_label = {}
        for k, name in enumerate(CHEXPERT_LABELS):
            if 0 < y_true[:, k].sum() < len(y_true):
                per_label[k] = metrics.roc_auc_score(y_true[:, k], probabilities[:, k].numpy())
                assert scores[f"ce/chexpert-rules/auroc{suffix}/{name}"] == pytest.approx(per_label[k], abs=1e-12)
            else:  # one class only: AUROC undefined, left out of the mean
                assert math.isnan(scores[f"ce/chexpert-rules/auroc{suffix}/{name}"])
        for size, columns in (("14", range(14)), ("5", FIVE)):
            known = [per_label[k] for k in columns if k in per_label]
            assert scores[f"ce/chexpert-rules/macro{size}{suffix}/auroc"] == pytest.approx(sum(known) / len(known), abs=1e-12)


def test_empty_generated_reports_get_no_credit():
    references = ["Normal chest.", "No acute disease. Lungs are clear.", "Small right effusion.", "Mild scoliosis."]
    assert label_report("") == dict.fromkeys(CHEXPERT_LABELS)  # not "No Finding"
    all_empty = clinical_efficacy(["", " .", "  ", "\n"], references)
    assert all_empty and all(value == 0.0 for value in all_empty.values()), all_empty
    # An empty row is blanked whatever the labeler says about "", and never an exact match,
    # even against a reference with no positive ("Mild scoliosis." labels nothing).
    code = torch.full((1, 14), NAN)
    code[0, 0] = 1.0  # a labeler that calls "" No Finding
    scores = ce_from_labels(code.clone(), code.clone(), empty=torch.tensor([True]))
    assert scores["ce/chexpert-rules/micro14/f1"] == 0.0 and scores["ce/chexpert-rules/exact14/acc"] == 0.0
    half = clinical_efficacy(["", "Small right effusion."], references[:1:-1])
    assert half["ce/chexpert-rules/exact14/acc"] == 0.5


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


def test_per_label_report_of_a_head_with_its_own_labels():
    # a findings head of two labels (Fracture, Pleural Other): its columns named, not CheXpert's first two
    pred = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    ref = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    report = per_label_report(pred, ref, names=["Fracture", "Pleural Other"])
    assert list(report) == ["Fracture", "Pleural Other"]
    assert (report["Fracture"]["p"], report["Fracture"]["r"]) == (0.5, 1.0)
    assert (report["Pleural Other"]["p"], report["Pleural Other"]["r"], report["Pleural Other"]["support"]) == (1.0, 0.5, 2.0)
    with pytest.raises(ValueError, match="2 label columns but 14 names"):
        per_label_report(pred, ref)

def test_clinical_efficacy_from_text():
    generated = ["Mild cardiomegaly. No pleural effusion.", "Small left pleural effusion.", "The lungs are clear."]
    references = ["The heart is enlarged. Small right effusion.", "No effusion.", "Lungs are clear."]
    scores = clinical_efficacy(generated, references)
    # predicted positives: Cardiomegaly (0), Effusion (1), No Finding (2)
    # reference positives: Cardiomegaly + Effusion (0), No Finding (1), No Finding (2)
    assert scores["ce/chexpert-rules/micro14/p"] == pytest.approx(2 / 3)
    assert scores["ce/chexpert-rules/micro14/r"] == pytest.approx(2 / 4)
    assert scores["ce/chexpert-rules/micro5/f1"] == pytest.approx(0.5)
    assert scores["ce/chexpert-rules/exact14/acc"] == pytest.approx(1 / 3)  # only "lungs are clear" matches


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
    assert metric.texts() == ([], [])


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
