"""The synthetic benchmark's labels.json says what the report says, as an independent labeler reads it."""

import json

import pytest

from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.synthetic import generate_benchmark
from xrg.metrics.labeler import label_reports


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    root = generate_benchmark(tmp_path_factory.mktemp("synth") / "b", 150, seed=11)
    annotation = json.loads((root / "annotation.json").read_text())
    labels = json.loads((root / "labels.json").read_text())
    items = [item for split in annotation.values() for item in split]
    return items, labels


def test_positive_and_uncertain_findings_agree_with_chexpert_rules(benchmark):
    items, labels = benchmark
    predicted = label_reports([item["report"] for item in items])
    for name in CHEXPERT_LABELS:
        # Negative vs blank may differ by design ("lungs are clear" negates opacity for
        # chexpert-rules); what a report asserts or hedges must be read the same way.
        truth = [labels[item["id"]][name] in (1, -1) and labels[item["id"]][name] for item in items]
        read = [row[name] in (1, -1) and row[name] for row in predicted]
        agreement = sum(t == r for t, r in zip(truth, read)) / len(items)
        assert agreement >= 0.97, f"{name}: {agreement:.3f}"
