"""`xrg evaluate`: equality with pycocoevalcap on real IU X-Ray reports, bad input, bootstrap."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from xrg.data.cleaning import clean_iu_xray
from xrg.data.errors import DataError
from xrg.metrics.bootstrap import bootstrap_intervals
from xrg.metrics.evaluate import evaluate, main, read_predictions
from xrg.metrics.nlg import pair_stats

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_iu_xray_reports_equal_pycocoevalcap(tmp_path: Path) -> None:
    annotation = SHARED / "iu_xray" / "annotation.json"
    if not annotation.is_file():
        pytest.skip("../shared/data is not available")
    pytest.importorskip("pycocoevalcap")
    if shutil.which("java") is None:
        pytest.skip("METEOR needs Java")
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge

    splits = json.loads(annotation.read_text())
    # Each val report "generated" against a train report: realistic text, varied overlap.
    rows = [
        {"id": study["id"], "generated": study["report"], "reference": splits["train"][index * 7]["report"]}
        for index, study in enumerate(splits["val"])
    ]
    output = tmp_path / "metrics.json"
    main(["--predictions", str(_write(tmp_path / "preds.jsonl", rows)), "--clean", "iu_xray", "--output", str(output), "--no-ce"])
    ours = json.loads(output.read_text())

    gts = {index: [clean_iu_xray(row["reference"])] for index, row in enumerate(rows)}
    res = {index: [clean_iu_xray(row["generated"])] for index, row in enumerate(rows)}
    bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
    expected = {f"nlg/bleu_{order + 1}": bleu[order] for order in range(4)}
    expected["nlg/meteor"] = Meteor().compute_score(gts, res)[0]
    expected["nlg/rouge_l"] = Rouge().compute_score(gts, res)[0]
    expected["nlg/cider"] = Cider().compute_score(gts, res)[0]
    for key, value in expected.items():
        assert ours[key] == pytest.approx(value, abs=1e-6, rel=0), key
    assert ours["n_studies"] == len(rows)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"id": "a", "generated": "x", "reference": "y"}\nnot json\n', r"preds.jsonl:2: not a JSON line"),
        (b'{"id": "a", "generated": "x", "reference": "\xff"}\n', r"preds.jsonl:1: not valid UTF-8"),
        (b'{"id": "a", "generated": "x", "reference": "y"}\n{"id": "a", "generated": "z", "reference": "y"}\n', r":2: duplicated id 'a' \(first seen on line 1\)"),
        (b'{"generated": "x", "reference": "y"}\n', r":1: missing 'id'"),
        (b'{"id": 1, "generated": "x"}\n', r":1: missing 'reference'"),
        (b'{"id": 1, "generated": "x", "reference": "  "}\n', r":1: empty 'reference' for study 1"),
        (b'["a", "b", "c"]\n', r":1: expected a JSON object"),
        (b"\n\n", r"no predictions"),
    ],
)
def test_bad_predictions_name_the_line(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "preds.jsonl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=message):
        read_predictions(path)


def test_empty_generated_is_scored_as_empty_and_counted(tmp_path: Path, capsys) -> None:
    rows = [
        {"id": "a", "generated": "", "reference": "The heart is normal."},
        {"id": "b", "generated": "The lungs are clear.", "reference": "The lungs are clear."},
    ]
    per_sample_path = tmp_path / "per_sample.jsonl"
    main(["--predictions", str(_write(tmp_path / "p.jsonl", rows)), "--clean", "iu_xray", "--no-meteor", "--no-ce",
          "--per-sample", str(per_sample_path)])
    assert "1 empty generated" in capsys.readouterr().out
    per_sample = [json.loads(line) for line in per_sample_path.read_text().splitlines()]
    assert [row["id"] for row in per_sample] == ["a", "b"]
    assert per_sample[0]["nlg/rouge_l"] == 0.0 and per_sample[0]["nlg/bleu_1"] < 1e-9
    assert per_sample[1]["reference"] == "the lungs are clear ."
    assert per_sample[1]["nlg/rouge_l"] == 1.0


def test_ce_unavailable_prints_a_note_and_keeps_nlg(monkeypatch, capsys) -> None:
    monkeypatch.setitem(sys.modules, "xrg.metrics.ce", None)  # makes the import fail
    rows = [{"id": "a", "generated": "no effusion .", "reference": "no pleural effusion ."}]
    summary, _ = evaluate(rows, meteor=False)
    assert "clinical efficacy unavailable" in capsys.readouterr().out
    assert "nlg/bleu_1" in summary and not any(key.startswith("ce/") for key in summary)


def _pairs(count: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    words = ["the", "heart", "lungs", "clear", "normal", "no", "effusion", "."]
    make = lambda: " ".join(rng.choice(words, size=rng.integers(1, 15)))  # noqa: E731
    return [make() for _ in range(count)], [make() for _ in range(count)]


def test_bootstrap_resample_equals_rescoring_the_resampled_set() -> None:
    generated, references = _pairs(40, seed=1)
    stats = pair_stats(generated, references)
    picks = np.random.default_rng(4).integers(0, 40, size=40)
    weights = np.bincount(picks, minlength=40)[None, :].astype(np.float64)
    resampled = pair_stats([generated[i] for i in picks], [references[i] for i in picks]).corpus()
    from_stats = stats.corpus(weights)
    for key in ("nlg/bleu_1", "nlg/bleu_2", "nlg/bleu_3", "nlg/bleu_4", "nlg/rouge_l"):
        assert from_stats[key][0] == pytest.approx(resampled[key], abs=1e-12, rel=0), key


def test_bootstrap_intervals_are_seeded_and_bracket_the_estimate() -> None:
    generated, references = _pairs(60, seed=2)
    stats = pair_stats(generated, references)
    first = bootstrap_intervals(stats, resamples=300, seed=0)
    assert first == bootstrap_intervals(stats, resamples=300, seed=0)
    assert first != bootstrap_intervals(stats, resamples=300, seed=1)
    for key, value in stats.corpus().items():
        low, high = first[key]
        assert low < value < high, key
    summary, _ = evaluate([{"id": str(i), "generated": g, "reference": r} for i, (g, r) in enumerate(zip(generated, references))],
                          meteor=False, ce_labeler=None, bootstrap=300, seed=0)
    assert summary["bootstrap"]["ci95"]["nlg/cider"] == list(first["nlg/cider"])
