"""`xrg evaluate --compare`: paired bootstrap intervals and approximate-randomisation p-values on
cases whose answer is known by hand."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from xrg.data.errors import DataError
from xrg.metrics.bootstrap import mean_scorer, paired_comparison
from xrg.metrics.evaluate import main

WORDS = ["the", "heart", "is", "normal", "no", "effusion", "lungs", "are", "clear", "mild", "cardiomegaly", "."]


def _write(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def _studies(count: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=rng.integers(4, 12))) for _ in range(count)]


def test_identical_systems_give_p_1_and_an_interval_of_0(tmp_path):
    references, generated = _studies(20, 0), _studies(20, 1)
    rows = [{"id": str(i), "generated": g, "reference": r} for i, (g, r) in enumerate(zip(generated, references))]
    a = _write(tmp_path / "a.jsonl", rows)
    b = _write(tmp_path / "b.jsonl", rows[::-1])  # the same studies in another order: paired by id
    out = tmp_path / "cmp.json"
    main(["--compare", str(a), str(b), "--bootstrap", "50", "--output", str(out)])
    result = json.loads(out.read_text())["metrics"]
    assert {"nlg/bleu_4", "nlg/cider", "ce/chexpert-rules/macro14/f1"} <= set(result)
    for key, row in result.items():
        assert row["delta"] == 0 and row["p_value"] == 1.0 and row["ci"] == [0.0, 0.0], key


def test_a_clearly_better_system_has_a_small_p_and_an_interval_above_0(tmp_path, capsys):
    references = _studies(30, 0)
    worse = [{"id": str(i), "generated": g, "reference": r} for i, (g, r) in enumerate(zip(_studies(30, 1), references))]
    better = [{"id": str(i), "generated": r, "reference": r} for i, r in enumerate(references)]
    main(["--compare", str(_write(tmp_path / "a.jsonl", worse)), str(_write(tmp_path / "b.jsonl", better)),
          "--no-ce", "--bootstrap", "300", "--output", str(tmp_path / "cmp.json")])
    result = json.loads((tmp_path / "cmp.json").read_text())["metrics"]
    for key in ("nlg/bleu_1", "nlg/bleu_4", "nlg/rouge_l", "nlg/cider"):
        row = result[key]
        assert row["delta"] > 0 and row["ci"][0] > 0, key
        assert row["p_value"] == pytest.approx(1 / 301), key  # no shuffle reaches the observed difference
    assert "B - A" in capsys.readouterr().out


def test_randomisation_p_value_by_hand():
    """Two studies. A scores (0, 0), B (1, 0): a shuffle only flips the sign of B - A = 1/2, so
    every shuffle reaches it (p = 1). A (0, 0), B (1, 1): |B - A| = 1 only when both studies or
    neither swap (probability 1/2), else 0: p ~ 1/2."""
    scorer = mean_scorer({"x": np.array([0.0, 0.0, 1.0, 0.0])})  # rows: A's 2 studies, then B's
    result = paired_comparison([scorer], n=2, resamples=4000, seed=0)["x"]
    assert result["a"] == 0.0 and result["b"] == 0.5 and result["delta"] == 0.5
    assert result["p_value"] == 1.0
    scorer = mean_scorer({"x": np.array([0.0, 0.0, 1.0, 1.0])})
    result = paired_comparison([scorer], n=2, resamples=4000, seed=0)["x"]
    assert result["p_value"] == pytest.approx(0.5, abs=0.03)  # |B - A| = 1 only when neither or both swap


def test_files_on_other_studies_or_references_are_refused(tmp_path):
    a = _write(tmp_path / "a.jsonl", [{"id": "1", "generated": "x", "reference": "y"}])
    b = _write(tmp_path / "b.jsonl", [{"id": "2", "generated": "x", "reference": "y"}])
    with pytest.raises(DataError, match=r"b\.jsonl: no study '1'"):
        main(["--compare", str(a), str(b), "--no-ce"])
    c = _write(tmp_path / "c.jsonl", [{"id": "1", "generated": "x", "reference": "z"}])
    with pytest.raises(DataError, match=r"study '1' has another reference"):
        main(["--compare", str(a), str(c), "--no-ce"])
