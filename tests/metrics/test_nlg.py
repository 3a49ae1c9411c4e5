"""NLG metrics equal pycocoevalcap 1.2: golden values, stored fixture values, and live comparison."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from xrg.metrics.nlg import Bleu, CiderD, NLGMetrics, RougeL, pair_stats, score_pairs
from xrg.metrics.nlg.ngrams import EncodedPairs
from xrg.metrics.nlg.rouge import lcs_lengths

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
FIXTURE = Path(__file__).with_name("fixtures") / "nlg_pairs.json"
KEYS = {"Bleu_1": "nlg/bleu_1", "Bleu_2": "nlg/bleu_2", "Bleu_3": "nlg/bleu_3", "Bleu_4": "nlg/bleu_4",
        "METEOR": "nlg/meteor", "ROUGE_L": "nlg/rouge_l", "CIDEr": "nlg/cider"}


def _meteor_available() -> bool:
    try:
        from xrg.metrics.nlg.java import METEOR_JAR, find_jar

        find_jar(METEOR_JAR)
    except RuntimeError:
        return False
    return shutil.which("java") is not None


needs_java = pytest.mark.skipif(not _meteor_available(), reason="METEOR needs Java and pycocoevalcap's jar")


def _assert_matches(result, expected: dict, with_meteor: bool) -> None:
    for name, key in KEYS.items():
        if name == "METEOR" and not with_meteor:
            continue
        tolerance = 1e-6 if name == "METEOR" else 1e-9
        assert result.corpus[key] == pytest.approx(expected["scores"][name], abs=tolerance, rel=0), name
        np.testing.assert_allclose(result.per_pair[key], expected["per_pair_scores"][name], atol=tolerance, rtol=0, err_msg=name)


def _golden() -> dict:
    path = SHARED / "golden" / "nlg_pycocoevalcap.json"
    if not path.is_file():
        pytest.skip("../shared/data is not available")
    return json.loads(path.read_text())


@needs_java
def test_golden_pycocoevalcap_values() -> None:
    golden = _golden()
    generated = [pair["res"] for pair in golden["pairs"]]
    references = [pair["gts"] for pair in golden["pairs"]]
    _assert_matches(score_pairs(generated, references), golden, with_meteor=True)
    ptb = score_pairs(generated, references, tokenize="ptb").corpus
    for name, key in KEYS.items():
        tolerance = 1e-6 if name == "METEOR" else 1e-9
        assert ptb[key] == pytest.approx(golden["variants"]["ptb_tokenized_coco_style"]["scores"][name], abs=tolerance, rel=0)


def test_golden_without_java() -> None:
    golden = _golden()
    generated = [pair["res"] for pair in golden["pairs"]]
    references = [pair["gts"] for pair in golden["pairs"]]
    _assert_matches(score_pairs(generated, references, ("bleu", "rouge_l", "cider")), golden, with_meteor=False)


@pytest.mark.parametrize("mode", ["none", "ptb"])
def test_fixture_pairs_equal_stored_pycocoevalcap_scores(mode: str) -> None:
    fixture = json.loads(FIXTURE.read_text(encoding="utf-8"))
    generated = [pair["generated"] for pair in fixture["pairs"]]
    references = [pair["reference"] for pair in fixture["pairs"]]
    java = _meteor_available()
    if mode == "ptb" and not java:
        pytest.skip("PTB tokenisation needs Java and pycocoevalcap's jar")
    metrics = ("bleu", "meteor", "rouge_l", "cider") if java else ("bleu", "rouge_l", "cider")
    _assert_matches(score_pairs(generated, references, metrics, tokenize=mode), fixture[mode], with_meteor=java)


def _random_pairs(count: int, seed: int) -> tuple[list[str], list[str]]:
    rng = random.Random(seed)
    words = [f"w{index}" for index in range(12)] + ["."]

    def text() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.choice([0, 1, 3, 20, 63, 64, 65, 130, rng.randint(2, 200)])))

    generated = [text() for _ in range(count)]
    references = [text() or "w0" for _ in range(count)]
    return generated, references


def test_random_pairs_equal_pycocoevalcap() -> None:
    pytest.importorskip("pycocoevalcap")
    from pycocoevalcap.bleu.bleu import Bleu as CocoBleu
    from pycocoevalcap.cider.cider import Cider as CocoCider
    from pycocoevalcap.rouge.rouge import Rouge as CocoRouge

    generated, references = _random_pairs(60, seed=3)
    gts = {index: [text] for index, text in enumerate(references)}
    res = {index: [text] for index, text in enumerate(generated)}
    ours = score_pairs(generated, references, ("bleu", "rouge_l", "cider"))
    bleu, bleu_pairs = CocoBleu(4).compute_score(gts, res, verbose=0)
    for order in range(4):
        assert ours.corpus[f"nlg/bleu_{order + 1}"] == pytest.approx(bleu[order], abs=1e-12, rel=0)
        np.testing.assert_allclose(ours.per_pair[f"nlg/bleu_{order + 1}"], bleu_pairs[order], atol=1e-12, rtol=0)
    for key, scorer in (("nlg/rouge_l", CocoRouge()), ("nlg/cider", CocoCider())):
        corpus, pairs = scorer.compute_score(gts, res)
        assert ours.corpus[key] == pytest.approx(corpus, abs=1e-9, rel=0)
        np.testing.assert_allclose(ours.per_pair[key], pairs, atol=1e-9, rtol=0)


def _dp_lcs(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_bit_parallel_lcs_equals_dynamic_programming() -> None:
    generated, references = _random_pairs(80, seed=11)
    first = [text.split(" ") for text in generated]
    second = [text.split(" ") for text in references]
    expected = [_dp_lcs(a, b) for a, b in zip(first, second)]
    assert lcs_lengths(EncodedPairs.from_tokens(first, second)).tolist() == expected


def test_cider_depends_on_the_whole_set() -> None:
    # Document frequencies come from the evaluated references: adding pairs changes a pair's score.
    pair = ["the heart is normal ."], ["the heart is normal in size ."]
    alone = pair_stats(*pair).cider[0]
    with_more = pair_stats(pair[0] + ["the lungs are clear ."] * 3, pair[1] + ["the heart is enlarged ."] * 3).cider[0]
    assert alone != pytest.approx(with_more)


def test_metric_accumulates_batches_and_resets() -> None:
    generated, references = _random_pairs(20, seed=5)
    generated[0] = "pleural effusion — naïve"
    one_shot = score_pairs(generated, references, ("bleu", "rouge_l", "cider")).corpus
    metric = NLGMetrics(meteor=False)
    for start in range(0, 20, 7):
        metric.update(generated[start : start + 7], references[start : start + 7])
    assert metric.texts() == (generated, references)
    assert metric.compute() == one_shot
    metric.reset()
    assert metric.texts() == ([], [])


def test_single_metrics_return_their_keys() -> None:
    generated, references = _random_pairs(10, seed=7)
    full = score_pairs(generated, references, ("bleu", "rouge_l", "cider")).corpus
    for metric_class, keys in ((Bleu, [f"nlg/bleu_{n}" for n in range(1, 5)]), (RougeL, ["nlg/rouge_l"]), (CiderD, ["nlg/cider"])):
        metric = metric_class()
        metric.update(generated, references)
        assert metric.compute() == {key: full[key] for key in keys}


def test_bad_input_is_rejected() -> None:
    metric = NLGMetrics(meteor=False)
    with pytest.raises(ValueError, match="2 generated reports but 1 references"):
        metric.update(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="unknown NLG metrics"):
        score_pairs(["a"], ["a"], ("bleu", "spice"))
    with pytest.raises(ValueError, match="no report pairs"):
        score_pairs([], [], ("bleu",))


def test_large_vocabulary_key_path_gives_the_same_scores(monkeypatch) -> None:
    # Composite n-gram keys are renumbered when they could overflow int64; force that path.
    from xrg.metrics.nlg import ngrams

    generated, references = _random_pairs(30, seed=9)
    expected = score_pairs(generated, references, ("bleu", "rouge_l", "cider")).corpus
    monkeypatch.setattr(ngrams, "_KEY_LIMIT", 1000)
    assert score_pairs(generated, references, ("bleu", "rouge_l", "cider")).corpus == expected


@needs_java
def test_meteor_newlines_do_not_break_the_protocol() -> None:
    from xrg.metrics.nlg.meteor import meteor_process

    references = ["the heart is normal in size .", "no pleural effusion .", "lungs are clear ."]
    with_newlines = meteor_process().score(["the heart\nis normal .", "no\r\neffusion .", "lungs clear ."], references)
    flat = meteor_process().score(["the heart is normal .", "no  effusion .", "lungs clear ."], references)
    assert with_newlines[0] == flat[0]
    np.testing.assert_array_equal(with_newlines[1], flat[1])
    assert 0 < flat[0] < 1
