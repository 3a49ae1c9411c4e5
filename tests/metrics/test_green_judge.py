"""GREEN (RadEval's) with a stub judge in place of the LLM: the candidate and the reference reach
the prompt in their places, and the score is computed from what the judge answers about that prompt.

The stub reads the two reports back out of the prompt it was given, the way GREEN's judge is
asked to: every candidate word missing from the reference is a clinically significant error
(a false finding), every shared word a matched finding. Swapping candidate and reference
anywhere between `Green.per_sample` and the prompt changes the score.
"""

from __future__ import annotations

import re

import pytest
import torch

pytest.importorskip("radeval")
pytest.importorskip("datasets")


class StubJudge:
    """Tokenizer and model in one: records each prompt and answers in GREEN's layout."""

    chat_template = None
    eos_token = pad_token = "</s>"
    pad_token_id = eos_token_id = 0
    padding_side = "left"

    def __init__(self) -> None:
        self.prompts: list[str] = []

    # tokenizer
    def apply_chat_template(self, chat, tokenize=False, add_generation_prompt=True) -> str:
        return chat[0]["value"]

    def __call__(self, texts: list[str], **settings):
        self.batch = list(texts)
        self.prompts.extend(texts)
        return _Inputs(input_ids=torch.zeros(len(texts), 3, dtype=torch.long), attention_mask=torch.ones(len(texts), 3))

    def batch_decode(self, outputs, skip_special_tokens: bool = True) -> list[str]:
        return ["<|assistant|>" + _answer(prompt) for prompt in self.batch]

    # model
    def eval(self):
        return self

    def generate(self, input_ids, **settings):
        return torch.zeros(input_ids.shape[0], input_ids.shape[1] + 2, dtype=torch.long)


def _answer(prompt: str) -> str:
    reference = re.search(r"2\. Reference Report:\s*(.*?)\n\n\s*3\.", prompt, re.S).group(1).split()
    candidate = re.search(r"3\. Candidate Report:\s*(.*?)\n\n\s*4\.", prompt, re.S).group(1).split()
    false = [w for w in candidate if w not in reference]
    matched = [w for w in candidate if w in reference]
    return (f"[Explanation]:\nstub\n\n[Clinically Significant Errors]:\n"
            f"(a) False report of a finding in the candidate: {len(false)}. {'; '.join(false)}\n"
            f"(b) Missing a finding present in the reference: 0.\n\n"
            f"[Matched Findings]:\n{len(matched)}. {'; '.join(matched)}\n")


class _Inputs(dict):
    def to(self, device):
        return self

    def __getattr__(self, name):
        return self[name]


@pytest.fixture
def judge(monkeypatch):
    import transformers

    from xrg.metrics.model_based import load_metric

    stub = StubJudge()
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: stub)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: stub)
    return load_metric("green", model="stub-judge", cpu=True), stub


def _score(green, generated, references) -> float:
    return float(green.per_sample(generated, references)["green/score"].mean())


def test_the_prompt_puts_the_reference_and_the_candidate_in_their_places(judge):
    green, stub = judge
    green.per_sample(["mild cardiomegaly effusion"], ["mild cardiomegaly"])
    (prompt,) = stub.prompts
    assert prompt.index("2. Reference Report:\n    mild cardiomegaly\n") < prompt.index("3. Candidate Report:\n    mild cardiomegaly effusion\n")


def test_the_score_is_matched_over_matched_plus_significant_errors_of_the_candidate(judge):
    green, _ = judge
    # candidate states one finding the reference lacks: 2 matched, 1 error -> 2/3; the other way round 1.0
    assert _score(green, ["mild cardiomegaly effusion"], ["mild cardiomegaly"]) == pytest.approx(2 / 3)
    assert _score(green, ["mild cardiomegaly"], ["mild cardiomegaly effusion"]) == pytest.approx(1.0)
    # studies stay paired: the mean of the two
    both = _score(green, ["mild cardiomegaly effusion", "mild cardiomegaly"], ["mild cardiomegaly", "mild cardiomegaly effusion"])
    assert both == pytest.approx((2 / 3 + 1) / 2)


def test_the_judge_loads_on_the_gpu_by_default_and_on_the_cpu_when_asked(monkeypatch):
    import transformers

    from xrg.metrics.model_based import load_metric

    placed = []
    stub = StubJudge()

    def load_model(name, device_map=None, torch_dtype=None, **settings):
        placed.append((device_map[""], torch_dtype))
        return stub

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # a one-GPU machine
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: stub)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", load_model)
    load_metric("green", model="stub-judge")
    load_metric("green", model="stub-judge", cpu=True)
    assert placed == [("cuda:0", torch.float16), ("cpu", torch.float32)]
