"""chexpert-rules against hand labels (see docs/clinical_efficacy.md). The rules were tuned on the
development cases (fixtures/labeler_cases.jsonl, partial labels) and the tuning set
(fixtures/labeler_tuning.jsonl: 488 real IU X-Ray reports, all 14 observations; each part was first
written as a held-out set and used for tuning after it had been scored). Quality on reports the rules
were not tuned on is measured on fixtures/labeler_heldout.jsonl: 220 IU X-Ray reports drawn and
labeled by hand after the rules were frozen (1893096), committed before the labeler ran on them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xrg.data.cleaning import clean_iu_xray
from xrg.data.errors import DataError
from xrg.data.labels import CHEXPERT_LABELS
from xrg.metrics.labeler import ChexpertRulesLabeler, label_report, label_reports, merge
from xrg.metrics.labeler.agreement import CLASSES, agreement
from xrg.metrics.labeler.cli import main as label_main

FIXTURES = Path(__file__).parent / "fixtures"
CASES = [json.loads(line) for line in (FIXTURES / "labeler_cases.jsonl").open()]
TUNING = [json.loads(line) for line in (FIXTURES / "labeler_tuning.jsonl").open()]
HELDOUT = [json.loads(line) for line in (FIXTURES / "labeler_heldout.jsonl").open()]
IU_ANNOTATION = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "iu_xray" / "annotation.json"


@pytest.mark.parametrize("case", CASES, ids=[case["text"][:60] for case in CASES])
def test_hand_labeled_case(case):
    labels = label_report(case["text"])
    assert {name: labels[name] for name in case["labels"]} == case["labels"]


def _f1(expected: list, predicted: list, code) -> float | None:
    true_pos = sum(e == code and p == code for e, p in zip(expected, predicted))
    support, predicted_count = expected.count(code), predicted.count(code)
    if support == 0:
        return None
    return 2 * true_pos / (support + predicted_count)


def test_macro_f1_over_observations_reaches_target():
    # CheXpert-paper style: F1 of positive, negative and uncertain codes per observation,
    # macro-averaged over the observations that have that code among the hand labels.
    per_code: dict[int, list[float]] = {1: [], 0: [], -1: []}
    for name in CHEXPERT_LABELS:
        checked = [case for case in CASES if name in case["labels"]]
        expected = [case["labels"][name] for case in checked]
        predicted = [label_report(case["text"])[name] for case in checked]
        for code, scores in per_code.items():
            score = _f1(expected, predicted, code)
            if score is not None:
                scores.append(score)
    macro = {code: sum(scores) / len(scores) for code, scores in per_code.items()}
    assert macro[1] >= 0.90 and macro[0] >= 0.90 and macro[-1] >= 0.85, macro


def test_cases_cover_every_observation_and_enough_reports():
    assert len(CASES) >= 150
    for name in CHEXPERT_LABELS:
        assert sum(name in case["labels"] for case in CASES) >= 5, name


@pytest.mark.parametrize("case", CASES[::7], ids=lambda case: case["text"][:40])
def test_r2gen_cleaned_text_labels_like_raw_text(case):
    assert label_report(clean_iu_xray(case["text"])) == label_report(case["text"])


def test_real_iu_reports_label_the_same_after_r2gen_cleaning():
    if not IU_ANNOTATION.exists():
        pytest.skip("shared IU X-Ray annotation not available")
    reports = [item["report"] for item in json.loads(IU_ANNOTATION.read_text())["val"]]
    raw, cleaned = label_reports(reports), label_reports([clean_iu_xray(r) for r in reports])
    agreement = sum(a == b for a, b in zip(raw, cleaned)) / len(reports)
    assert agreement >= 0.97
    # the labeler finds something in nearly every real report
    assert sum(any(v is not None for k, v in labels.items() if k != "No Finding") for labels in raw) >= 0.95 * len(raw)


def _normalised(text: str) -> str:
    return " ".join(text.lower().split())


def assert_whole(rows: list[dict]) -> None:
    """Every report judged on all 14 observations, with CheXpert's "No Finding" convention."""
    assert len({row["id"] for row in rows}) == len(rows) and len({_normalised(row["text"]) for row in rows}) == len(rows)
    for row in rows:
        assert list(row["labels"]) == list(CHEXPERT_LABELS), row["id"]  # all 14 judged, blank = None
        assert set(row["labels"].values()) <= {1, 0, -1, None}, row["id"]
        if row["labels"]["No Finding"] is not None:  # CheXpert: 1 or blank, and 1 only when nothing is found
            assert row["labels"]["No Finding"] == 1, row["id"]
            found = [n for n, v in row["labels"].items() if v in (1, -1) and n not in ("No Finding", "Support Devices")]
            assert not found, (row["id"], found)


def test_tuning_set_is_whole():
    # 270 reports of the first held-out set (i17L; `part` open / sealed) and 218 of the second (h17L;
    # `part` heldout-1, scored once at 0.913 before it was tuned on)
    assert len(TUNING) == 488
    assert sum(row["part"] == "heldout-1" for row in TUNING) == 218
    assert_whole(TUNING)


def test_tuning_set_agreement_with_hand_labels():
    # Macro-F1 over every (observation, class) with >= 3 hand labels (classes 1, 0, -1) on the 488
    # reports the rules were tuned on: 0.989 over 29 cells when the rules were frozen (0.949 before
    # this round's tuning), so a rule change that undoes a tuned phrasing fails here.
    predicted = label_reports(row["text"] for row in TUNING)
    score = agreement([row["labels"] for row in TUNING], predicted)["macro_f1"]
    assert score >= 0.985, score


def test_heldout_set_is_whole_and_apart_from_everything_the_rules_were_tuned_on():
    assert len(HELDOUT) >= 200
    assert_whole(HELDOUT)
    tuned_on = {_normalised(row["text"]) for row in CASES + TUNING}
    assert not [row["id"] for row in HELDOUT if _normalised(row["text"]) in tuned_on]


def test_heldout_agreement_with_hand_labels():
    # A regression guard, not a target: the rules were frozen (1893096) before these reports were
    # drawn and labeled, and the figure was measured once, 0.961 over 24 cells (0.956 with the rules
    # before this round). The floor sits a little under it.
    predicted = label_reports(row["text"] for row in HELDOUT)
    score = agreement([row["labels"] for row in HELDOUT], predicted)["macro_f1"]
    assert score >= 0.95, score


def test_agreement_equals_sklearn_one_vs_rest_f1():
    metrics = pytest.importorskip("sklearn.metrics")
    expected = [row["labels"] for row in TUNING]
    predicted = label_reports(row["text"] for row in TUNING)
    result = agreement(expected, predicted)
    for (name, code), cell in result["cells"].items():
        truth = [str(row[name]) for row in expected]
        guess = [str(row[name]) for row in predicted]
        f1 = metrics.f1_score(truth, guess, labels=[str(code)], average=None, zero_division=0)[0]
        assert cell["f1"] == pytest.approx(f1) and cell["support"] == truth.count(str(code)) >= 3
    supported = [(n, c) for n in CHEXPERT_LABELS for c in CLASSES if sum(row[n] == c for row in expected) >= 3]
    assert sorted(result["cells"]) == sorted(supported)
    assert result["macro_f1"] == pytest.approx(sum(c["f1"] for c in result["cells"].values()) / len(supported))


@pytest.mark.parametrize(
    ("mentions", "merged"),
    [([1], 1), ([0, 0], 0), ([0, 1], 1), ([-1, 1], 1), ([0, -1], -1), ([1, 0, -1], -1), ([-1, -1], -1)],
)
def test_merge_follows_chexpert_aggregation(mentions, merged):
    assert merge(mentions) == merged


def test_no_finding_ignores_support_devices_and_blocks_on_uncertain():
    assert label_report("Pacemaker in place. Lungs are clear.")["No Finding"] == 1
    assert label_report("Possible small effusion.")["No Finding"] is None
    assert label_report("Mild scoliosis.")["No Finding"] is None
    # CheXpert's convention: "No Finding" is 1 or blank, never 0
    assert all(labels["No Finding"] in (1, None) for labels in label_reports(case["text"] for case in CASES))


def test_labels_have_all_fourteen_names_in_order():
    labels = ChexpertRulesLabeler()("Small right effusion.")
    assert list(labels) == list(CHEXPERT_LABELS)
    assert labels["Pleural Effusion"] == 1


def test_cli_writes_one_label_line_per_report(tmp_path):
    source, target = tmp_path / "reports.jsonl", tmp_path / "out" / "labels.jsonl"
    source.write_text(
        json.dumps({"id": "a", "report": "Mild cardiomegaly. No effusion."}) + "\n\n"
        + json.dumps({"id": 7, "report": "lungs are clear ."}) + "\n"
    )
    assert label_main(["--input", str(source), "--output", str(target)]) == 0
    rows = [json.loads(line) for line in target.read_text().splitlines()]
    assert [row["id"] for row in rows] == ["a", 7]
    assert rows[0]["labels"]["Cardiomegaly"] == 1 and rows[0]["labels"]["Pleural Effusion"] == 0
    assert rows[1]["labels"]["No Finding"] == 1 and list(rows[1]["labels"]) == list(CHEXPERT_LABELS)


@pytest.mark.parametrize("bad_line", ["{not json", json.dumps({"id": "x"}), json.dumps({"id": "x", "report": 3})])
def test_cli_names_the_bad_line(tmp_path, bad_line):
    source = tmp_path / "reports.jsonl"
    source.write_text(json.dumps({"id": "ok", "report": "Normal."}) + "\n" + bad_line + "\n")
    with pytest.raises(DataError, match=r"reports\.jsonl:2"):
        label_main(["--input", str(source), "--output", str(tmp_path / "labels.jsonl")])
