"""PromptBuilder: fields, chat formats, RaDialog preset, dialog history."""

from __future__ import annotations

import pytest

from xrg.blocks.decoders.prompt import PLACEHOLDER, VICUNA_SYSTEM, PromptBuilder


def test_radialog_preset_is_the_papers_vicuna_prompt_with_32_slots():
    prompt = PromptBuilder(preset="radialog").build(findings=["Cardiomegaly", "Edema"])
    assert prompt.startswith(VICUNA_SYSTEM + " USER: Image information: <image:32>. Predicted Findings: Cardiomegaly, Edema. ")
    assert "You are to act as a radiologist and write the finding section" in prompt
    assert prompt.endswith(" ASSISTANT:")
    assert [m.group(1) for m in PLACEHOLDER.finditer(prompt)] == ["32"]


def test_fields_are_formatted_and_missing_fields_are_named():
    builder = PromptBuilder(template="{image} Concepts: {concepts}. Similar: {retrieved}. {instruction}", chat="plain")
    text = builder.message(concepts=[("effusion", 0.912), ("edema", 0.1)], retrieved=["a .", "b ."], instruction="Write.")
    assert text == "<image> Concepts: effusion (0.91), edema (0.10). Similar: [1] a . [2] b .. Write."
    assert PromptBuilder(preset="radialog").message(findings=[]).count("Predicted Findings: None.") == 1
    with pytest.raises(ValueError, match="instruction"):
        builder.message(concepts=[], retrieved=[])


def test_history_renders_alternating_turns_and_closes_assistant_turns():
    builder = PromptBuilder(preset="radialog", image_tokens=2)
    first = builder.message(findings="none")
    prompt = builder.build(history=[("user", first), ("assistant", "heart is normal .")], instruction="Is there an effusion?")
    assert prompt == (
        f"{VICUNA_SYSTEM} USER: {first} ASSISTANT: heart is normal .</s> USER: Is there an effusion? ASSISTANT:"
    )
    chatml = PromptBuilder(template="{image} {instruction}", chat="chatml", system="Be brief.")
    assert chatml.build(instruction="Report.") == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\n<image> Report.<|im_end|>\n<|im_start|>assistant\n"
    )
    with pytest.raises(ValueError, match="instruction"):
        builder.build(history=[("user", first), ("assistant", "x")])
    with pytest.raises(ValueError, match="role"):
        builder.render([("doctor", "x"), ("user", "y")])
    with pytest.raises(ValueError, match="preset"):
        PromptBuilder(preset="nope")
