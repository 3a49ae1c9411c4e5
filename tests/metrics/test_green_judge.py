"""GREEN with a stub judge in place of the LLM: the candidate and the reference reach the prompt
in their places, and the score is computed from what the judge answers about that prompt.

The stub reads the two reports back out of the prompt it was given, the way GREEN's judge is
asked to: every candidate word missing from the reference is a clinically significant error
(a false finding), every shared word a matched finding. Swapping candidate and reference
anywhere between `Green.__call__` and the prompt changes the score.
"""

from __future__ import annotations

import re

import pytest
import torch

from xrg.metrics.model_based import green as green_module
from xrg.metrics.model_based.green import Green


class StubJudge:
    """Tokenizer and model in one: records each prompt and answers in GREEN's layout."""

    chat_template = None
    pad_token_id = eos_token_id = 0

    def __init__(self) -> None:
        self.prompts: list[str] = []

    # tokenizer
    def __call__(self, prompt: str, return_tensors: str = "pt"):
        self.prompts.append(prompt)
        return _Inputs(input_ids=torch.zeros(1, 3, dtype=torch.long))

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        prompt = self.prompts[-1]
        reference = re.search(r"2\. Reference Report:\n(.*?)\n\n3\.", prompt, re.S).group(1).split()
        candidate = re.search(r"3\. Candidate Report:\n(.*?)\n\n4\.", prompt, re.S).group(1).split()
        false = [w for w in candidate if w not in reference]
        matched = [w for w in candidate if w in reference]
        return (f"[Explanation]:\nstub\n\n[Clinically Significant Errors]:\n"
                f"(a) False report of a finding in the candidate: {len(false)}. {'; '.join(false)}\n"
                f"(b) Missing a finding present in the reference: 0.\n\n"
                f"[Matched Findings]:\n{len(matched)}. {'; '.join(matched)}\n")

    # model
    def eval(self):
        return self

    def to(self, device):
        return self

    def generate(self, input_ids, **settings):
        return torch.zeros(1, input_ids.shape[1] + 2, dtype=torch.long)


class _Inputs(dict):
    def to(self, device):
        return self


@pytest.fixture
def judge(monkeypatch) -> tuple[Green, StubJudge]:
    import transformers

    stub = StubJudge()
    monkeypatch.setattr(green_module, "resolve_weights", lambda model, name, hint: model)
    monkeypatch.setattr(transformers.AutoTokenizer, "from_pretrained", lambda *a, **k: stub)
    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", lambda *a, **k: stub)
    return Green("stub-judge"), stub


def test_the_prompt_puts_the_reference_and_the_candidate_in_their_places(judge):
    green, stub = judge
    green(["mild cardiomegaly effusion"], ["mild cardiomegaly"])
    (prompt,) = stub.prompts
    assert prompt.index("2. Reference Report:\nmild cardiomegaly\n") < prompt.index("3. Candidate Report:\nmild cardiomegaly effusion\n")


def test_the_score_is_matched_over_matched_plus_significant_errors_of_the_candidate(judge):
    green, _ = judge
    # candidate states one finding the reference lacks: 2 matched, 1 error -> 2/3; the other way round 1.0
    assert green(["mild cardiomegaly effusion"], ["mild cardiomegaly"])["green/score"] == pytest.approx(2 / 3)
    assert green(["mild cardiomegaly"], ["mild cardiomegaly effusion"])["green/score"] == pytest.approx(1.0)
    # studies stay paired: the mean of the two
    both = green(["mild cardiomegaly effusion", "mild cardiomegaly"], ["mild cardiomegaly", "mild cardiomegaly effusion"])
    assert both["green/score"] == pytest.approx((2 / 3 + 1) / 2)
