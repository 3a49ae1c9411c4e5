"""`drop_finding_sentences`: training reports with some stated findings left out, and `stated_labels`
that say exactly what each report still states; the study's labels, and the other splits, untouched."""

from __future__ import annotations

import math

import pytest
import torch

from xrg.data import ReportDataModule
from xrg.data.errors import DataError
from xrg.data.dataset import ReportDataset
from xrg.data.finding_dropout import drop_findings, stated_sentences
from xrg.data.labels import CHEXPERT_LABELS, COLUMN
from xrg.data.sentence_order import rule_mentions
from xrg.metrics.ce import label_texts

REPORT = ("the heart is mildly enlarged . patchy opacity consistent with atelectasis in the left base . "
          "small left pleural effusion . no pneumothorax .")


def labels_of(**codes: float) -> torch.Tensor:
    row = torch.full((14,), math.nan)
    for name, code in codes.items():
        row[COLUMN[name.replace("_", " ")]] = code
    return row


def same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return torch.equal(a.nan_to_num(9.0), b.nan_to_num(9.0))


def positives(row: torch.Tensor) -> set[str]:
    return {name for name, code in zip(CHEXPERT_LABELS, row.tolist()) if code in (1, -1)}


LABELS = labels_of(Cardiomegaly=1, Lung_Opacity=1, Atelectasis=1, Pleural_Effusion=1, Pneumothorax=0)


def test_a_dropped_finding_takes_every_sentence_stating_it_and_reads_blank():
    parsed = stated_sentences(REPORT, rule_mentions())
    before = LABELS.clone()
    report, stated = drop_findings(parsed, LABELS, 0.0)
    assert report == REPORT and same(stated, LABELS)  # p = 0: nothing changes
    seen = set()
    for seed in range(40):
        torch.manual_seed(seed)
        report, stated = drop_findings(parsed, LABELS, 0.5)
        seen.add(report)
        assert same(LABELS, before) and "no pneumothorax ." in report  # the study's labels stay
        assert stated[COLUMN["Pneumothorax"]] == 0  # ruled out stays ruled out
        # Opacity and atelectasis share a sentence: leaving either out takes both.
        assert positives(stated) - {"No Finding"} == positives(label_texts([report])[0]) - {"No Finding"}
        if not positives(stated) - {"No Finding"}:
            assert stated[COLUMN["No Finding"]] == 1  # nothing pathological stated any more
    assert len(seen) >= 6  # the draws reach many combinations


def test_a_report_that_would_lose_every_sentence_is_kept_whole():
    parsed = stated_sentences("small left pleural effusion .", rule_mentions())
    torch.manual_seed(0)
    labels = labels_of(Pleural_Effusion=1)
    report, stated = drop_findings(parsed, labels, 0.999)
    assert report == "small left pleural effusion ." and same(stated, labels)


@pytest.fixture(scope="module")
def modules(tmp_path_factory):
    common = dict(synthetic={"root": str(tmp_path_factory.mktemp("bench")), "num_studies": 60, "image_size": 32},
                  image_size=32, resize=36, sentence_order="findings_first", batch_size=60)
    plain, dropping = ReportDataModule(**common), ReportDataModule(**common, drop_finding_sentences=0.5)
    for module in (plain, dropping):
        module.setup("fit")
    return plain, dropping


def test_training_batches_carry_what_each_report_still_states(modules):
    plain, dropping = modules
    batch = next(iter(dropping.train_dataloader()))
    original = dict(zip(plain.datasets["train"].studies, plain.datasets["train"].reports))
    by_id = {study.id: report for study, report in original.items()}
    changed = [i for i, (sid, report) in enumerate(zip(batch["ids"], batch["reports"])) if report != by_id[sid]]
    assert len(changed) >= 10
    labels = plain.datasets["train"].labels
    assert all(same(row, torch.tensor(labels[sid])) for sid, row in zip(batch["ids"], batch["labels"]))
    written = label_texts(batch["reports"])
    for i in changed:
        assert positives(batch["stated_labels"][i]) - {"No Finding"} == positives(written[i]) - {"No Finding"}
        kept = batch["reports"][i].split(" . ")
        assert all(s in by_id[batch["ids"][i]] for s in kept)  # sentences left out, none rewritten


def test_an_items_draws_follow_its_seed_and_the_other_splits_stay_as_written(modules):
    plain, dropping = modules
    train = dropping.datasets["train"]
    assert [train[(i, 7)]["report"] for i in range(20)] == [train[(i, 7)]["report"] for i in range(20)]
    stating = next(i for i, parsed in enumerate(train.stated) if any(parsed.states))
    assert len({train[(stating, s)]["report"] for s in range(30)}) > 1  # other seeds, other draws
    for split in ("val", "test"):
        assert dropping.datasets[split].reports == plain.datasets[split].reports
        assert "stated_labels" not in dropping.datasets[split][0]


def test_dropping_needs_labels_and_a_probability_below_one(modules):
    plain, _ = modules
    train = plain.datasets["train"]
    with pytest.raises(DataError, match="drop_finding_sentences needs the studies' labels"):
        ReportDataset(train.studies, train.image_dir, train.transform, str, None, drop_finding_sentences=0.2)
    with pytest.raises(ValueError, match="drop_finding_sentences is a probability below 1, got 1.0"):
        ReportDataModule(synthetic={"root": "unused"}, drop_finding_sentences=1.0)
