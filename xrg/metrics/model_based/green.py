"""GREEN (Ostmeier et al., 2024): an LLM judge counts clinically significant errors and matches.

The judge reads both reports and answers in a fixed layout; the score of one pair is
matched / (matched + clinically significant errors), 0 when both are 0.
"""

from __future__ import annotations

import re
from typing import Sequence

from xrg.metrics.model_based._weights import resolve_weights

ERROR_CATEGORIES = (
    "(a) False report of a finding in the candidate",
    "(b) Missing a finding present in the reference",
    "(c) Misidentification of a finding's anatomic location/position",
    "(d) Misassessment of the severity of a finding",
    "(e) Mentioning a comparison that isn't in the reference",
    "(f) Omitting a comparison detailing a change from a prior study",
)
PROMPT = (
    "Objective: Evaluate the accuracy of a candidate radiology report in comparison to a reference radiology "
    "report composed by expert radiologists.\n\n"
    "Process Overview: You will be presented with:\n1. The criteria for making a judgment.\n"
    "2. The reference radiology report.\n3. The candidate radiology report.\n4. The desired format for your assessment.\n\n"
    "1. Criteria for Judgment:\nFor each candidate report, determine:\n"
    "The count of clinically significant errors.\nThe count of clinically insignificant errors.\n\n"
    "Errors can fall into one of these categories:\n" + "\n".join(f"{c}." for c in ERROR_CATEGORIES) + "\n\n"
    "Note: Concentrate on the clinical findings rather than the report's writing style. "
    "Evaluate only the findings that appear in both reports.\n\n"
    "2. Reference Report:\n{reference}\n\n3. Candidate Report:\n{candidate}\n\n"
    "4. Reporting Your Assessment:\nFollow this specific format for your output, even if no errors are found:\n"
    "```\n[Explanation]:\n<Explanation>\n\n[Clinically Significant Errors]:\n"
    + "\n".join(f"{c}: <Error Count>. <Error 1>; <Error 2>; ...; <Error n>" for c in ERROR_CATEGORIES)
    + "\n\n[Clinically Insignificant Errors]:\n"
    + "\n".join(f"{c}: <Error Count>. <Error 1>; <Error 2>; ...; <Error n>" for c in ERROR_CATEGORIES)
    + "\n\n[Matched Findings]:\n<The Number of Matched Findings>. <Finding 1>; <Finding 2>; ...; <Finding n>\n```\n"
)
HINT = "Save a causal LM (GREEN's checkpoint, or any instruction-tuned LM) with its tokenizer to a folder and pass its path."

_SECTION = re.compile(r"\[(Clinically Significant Errors|Clinically Insignificant Errors|Matched Findings)\]:?(.*?)(?=\n\s*\[|\Z)", re.S)
_CATEGORY = re.compile(r"\(([a-f])\)[^:\n]*:\s*(\d+)")
_LEADING_COUNT = re.compile(r"^\s*(\d+)")


def parse_green_response(text: str) -> dict[str, object]:
    """Counts from one judge answer: significant / insignificant errors per category, matched findings."""
    parsed: dict[str, object] = {"significant": {}, "insignificant": {}, "matched": 0}
    for title, body in _SECTION.findall(text):
        if title == "Matched Findings":
            count = _LEADING_COUNT.match(body.strip() + " ")
            parsed["matched"] = int(count.group(1)) if count else 0
        else:
            key = "significant" if title.startswith("Clinically Significant") else "insignificant"
            parsed[key] = {letter: int(count) for letter, count in _CATEGORY.findall(body)}
    return parsed


def green_score(parsed: dict[str, object]) -> float:
    matched, errors = parsed["matched"], sum(parsed["significant"].values())
    return matched / (matched + errors) if matched + errors else 0.0


class Green:
    def __init__(self, model: str, max_new_tokens: int = 512, device: str = "cpu") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        path = resolve_weights(model, "GREEN", HINT)
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True).eval().to(device)
        self.max_new_tokens, self.device = max_new_tokens, device

    def judge(self, candidate: str, reference: str) -> str:
        import torch

        prompt = PROMPT.format(reference=reference, candidate=candidate)
        if getattr(self.tokenizer, "chat_template", None):
            prompt = self.tokenizer.apply_chat_template([{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        inputs = self.tokenizer(prompt, return_tensors="pt").to(self.device)
        with torch.no_grad():
            output = self.model.generate(**inputs, max_new_tokens=self.max_new_tokens, do_sample=False,
                                         pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id)
        return self.tokenizer.decode(output[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)

    def __call__(self, generated: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        if len(generated) != len(references):
            raise ValueError(f"got {len(generated)} generated reports but {len(references)} references")
        scores = [green_score(parse_green_response(self.judge(c, r))) for c, r in zip(generated, references)]
        return {"green/score": sum(scores) / max(len(scores), 1)}
