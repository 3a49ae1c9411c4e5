"""`sentence_order: findings_first`: training reports rewritten in one order, nothing else changed."""

from __future__ import annotations

import pytest

from xrg.data import ReportDataModule
from xrg.data.sentence_order import order_findings_first, sentence_orderer
from xrg.metrics.labeler import label_reports

REPORT = ("no pneumothorax . the osseous structures are intact . small left pleural effusion . "
          "the heart is mildly enlarged . there is no focal consolidation .")


def test_stated_findings_come_first_in_chexpert_order_then_ruled_out_ones_then_the_rest():
    ordered = sentence_orderer("findings_first")(REPORT)
    assert ordered == ("the heart is mildly enlarged . small left pleural effusion . there is no focal consolidation . "
                       "no pneumothorax . the osseous structures are intact .")
    assert sentence_orderer("as_written") is None
    with pytest.raises(ValueError, match="sentence_order"):
        sentence_orderer("alphabetical")


def test_the_order_is_stable_and_reads_only_the_fourteen_observations():
    # Sentences without a mention of the 14 keep their written order, wherever they stand; the
    # labeler's internal mentions ("_other abnormality") do not count.
    mentions = {"a .": [], "b .": [("Edema", 1)], "c .": [("_other abnormality", 1)], "d .": [("Edema", 0)]}
    assert order_findings_first("a . b . c . d .", mentions.__getitem__) == "b . d . a . c ."


def test_training_reports_only_are_reordered_and_keep_their_labels(tmp_path):
    common = dict(synthetic={"root": str(tmp_path / "bench"), "num_studies": 60, "image_size": 32}, image_size=32,
                  resize=36)
    written, ordered = ReportDataModule(**common), ReportDataModule(**common, sentence_order="findings_first")
    for module in (written, ordered):
        module.setup("fit")
    before, after = written.datasets["train"].reports, ordered.datasets["train"].reports
    assert before != after  # some reports were out of order
    assert [sorted(r.split()) for r in before] == [sorted(r.split()) for r in after]
    assert label_reports(before) == label_reports(after)
    assert written.datasets["val"].reports == ordered.datasets["val"].reports  # references as written
