"""`xrg evaluate`, `xrg label`, `xrg chat`, `xrg data`: bad files and arguments give one line (exit 2)."""

from __future__ import annotations

import json

import pytest

GOOD = {"id": "s1", "generated": "No effusion.", "reference": "No pleural effusion."}
PREDICTION_CASES = [
    ("not-json", "{oops\n", ["preds.jsonl:1", "not a JSON line"]),
    ("not-utf8", b'{"id": "\xff"}\n', ["preds.jsonl:1", "not valid UTF-8"]),
    ("not-an-object", "[1, 2]\n", ["preds.jsonl:1", "expected a JSON object, got list"]),
    ("missing-reference", json.dumps({"id": "s1", "generated": "x"}) + "\n", ["preds.jsonl:1", "missing 'reference'"]),
    ("generated-not-string", json.dumps({**GOOD, "generated": ["x"]}) + "\n", ["preds.jsonl:1", "'generated' must be a string"]),
    ("duplicate-id", (json.dumps(GOOD) + "\n") * 2, ["preds.jsonl:2", "duplicated id 's1'", "line 1"]),
    ("empty-file", "\n", ["preds.jsonl", "no predictions"]),
    ("100000-word-hypothesis", json.dumps({**GOOD, "generated": "effusion " * 100_000}) + "\n",
     ["preds.jsonl:1", "'generated' has 100,000 words", "at most 1,000"]),
]


@pytest.mark.parametrize("content, culprits", [c[1:] for c in PREDICTION_CASES], ids=[c[0] for c in PREDICTION_CASES])
def test_bad_predictions_file(tmp_path, refused, content, culprits):
    path = tmp_path / "preds.jsonl"
    path.write_bytes(content) if isinstance(content, bytes) else path.write_text(content)
    refused(["evaluate", "--predictions", path, "--no-meteor"], *culprits)


ARGUMENT_CASES = [
    ("evaluate-no-input", ["evaluate"], ["xrg evaluate", "--predictions"]),
    ("evaluate-unknown-flag", ["evaluate", "--predictions", "p.jsonl", "--bleu"], ["unrecognized arguments: --bleu"]),
    ("evaluate-missing-file", ["evaluate", "--predictions", "{tmp}/gone.jsonl"], ["gone.jsonl", "not found"]),
    ("label-missing-file", ["label", "--input", "{tmp}/gone.jsonl", "--output", "{tmp}/o.jsonl"], ["gone.jsonl", "not found"]),
    ("chat-no-image", ["chat", "--ckpt", "x.ckpt"], ["xrg chat", "--image"]),
    ("chat-missing-checkpoint", ["chat", "--ckpt", "{tmp}/gone.ckpt", "--image", "x.png", "--ask", "hi"],
     ["gone.ckpt does not exist"]),
    ("data-no-subcommand", ["data"], ["xrg data", "command"]),
    ("synth-zero-studies", ["data", "synth", "--out", "{tmp}/s", "--num-studies", "0"], ["num_studies"]),
]


@pytest.mark.parametrize("args, culprits", [c[1:] for c in ARGUMENT_CASES], ids=[c[0] for c in ARGUMENT_CASES])
def test_bad_arguments(tmp_path, refused, args, culprits):
    refused([arg.format(tmp=tmp_path) for arg in args], *culprits)


LABEL_CASES = [
    ("no-report-key", json.dumps({"id": 1, "text": "x"}) + "\n", ["reports.jsonl:1", '"report"']),
    ("report-not-string", json.dumps({"id": 1, "report": 3}) + "\n", ["reports.jsonl:1", '"report"']),
    ("100000-word-report", json.dumps({"id": 1, "report": "edema " * 100_000}) + "\n",
     ["reports.jsonl:1", "'report' has 100,000 words"]),
]


@pytest.mark.parametrize("content, culprits", [c[1:] for c in LABEL_CASES], ids=[c[0] for c in LABEL_CASES])
def test_bad_reports_to_label(tmp_path, refused, content, culprits):
    path = tmp_path / "reports.jsonl"
    path.write_text(content)
    refused(["label", "--input", path, "--output", tmp_path / "labels.jsonl"], *culprits)
    assert not (tmp_path / "labels.jsonl").exists()


def test_chat_with_a_model_that_cannot_talk(world, refused):
    image = next((world.data / "images").rglob("*.png"))
    refused(["chat", "--ckpt", world.classifier, "--image", image, "--ask", "hi"],
            str(world.classifier), "FindingsClassification is not an LLM report model")


def test_chat_with_a_truncated_checkpoint(world, tmp_path, refused):
    path = tmp_path / "cut.ckpt"
    path.write_bytes(world.report.read_bytes()[:2048])
    refused(["chat", "--ckpt", path, "--image", "x.png"], "cut.ckpt", "truncated or corrupt")


def test_data_commands_name_the_bad_labels(world, tmp_path, refused):
    labels = tmp_path / "labels.json"
    labels.write_text(json.dumps({"study_000": ["x"]}))
    refused(["data", "instruct", "--annotation", world.annotation, "--labels", labels, "--out", tmp_path / "i.jsonl"],
            "labels.json", "'study_000'", "expected an object of observation")
    refused(["data", "render", "--annotation", world.annotation, "--labels", world.data / "nope.json",
             "--out", tmp_path / "r"], "nope.json")
