"""Prompts for the LLM recipes (RaDialog, TRRG, RadAlign): named fields, a system line, chat turns.

A prompt is plain text in which `<image>` marks where the visual memory goes. `CausalLMDecoder`
expands every placeholder into embedding slots:

- `<image>`      takes all memory tokens not yet used (so a lone `<image>` takes them all);
- `<image:K>`    takes the next K memory tokens, in order.

So a prompt "Image: <image:32> Clues: <image>" splices 32 image vectors and then the remaining
clue vectors of one memory `Features`. A prompt with no placeholder puts all memory tokens first.

`PromptBuilder` renders a template with named fields (`{image}`, `{findings}`, `{concepts}`,
`{retrieved}`, `{instruction}`, or any other keyword) inside a chat format, optionally after
earlier dialog turns. The returned string ends with the assistant's turn prefix: the decoder
appends the target (training) or generates from there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

IMAGE = "<image>"
PLACEHOLDER = re.compile(r"<image(?::(\d+))?>")


def image_slots(count: int | None = None) -> str:
    """The placeholder for `count` memory tokens (None: all that remain)."""
    return IMAGE if count is None else f"<image:{count}>"


# --- chat formats ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ChatFormat:
    """How turns are laid out as text. `turn_end` closes an assistant turn in the history; the
    decoder appends the tokenizer's EOS after the final target itself."""

    system: str = "{system}"
    user: str = "{text}"
    assistant: str = ""  # the assistant turn's prefix; the prompt ends with it
    reply_gap: str = ""  # between that prefix and an earlier reply's text
    separator: str = " "
    turn_end: str = "</s>"


CHAT_FORMATS: dict[str, ChatFormat] = {
    # FastChat's vicuna_v1.1 layout, used by Vicuna v1.3 and therefore RaDialog.
    "vicuna": ChatFormat(user="USER: {text}", assistant="ASSISTANT:", reply_gap=" "),
    "llama2": ChatFormat(system="<<SYS>>\n{system}\n<</SYS>>\n", user="[INST] {text} [/INST]"),
    "chatml": ChatFormat(
        system="<|im_start|>system\n{system}<|im_end|>",
        user="<|im_start|>user\n{text}<|im_end|>",
        assistant="<|im_start|>assistant\n",
        separator="\n",
        turn_end="<|im_end|>",
    ),
    "plain": ChatFormat(separator="\n", turn_end=""),
}

VICUNA_SYSTEM = (
    "A chat between a curious user and an artificial intelligence assistant. "
    "The assistant gives helpful, detailed, and polite answers to the user's questions."
)

# RaDialog's report-generation instruction (wording of the paper's prompt; 32 image slots).
RADIALOG_TEMPLATE = (
    "Image information: {image}. Predicted Findings: {findings}. You are to act as a radiologist and "
    "write the finding section of a chest x-ray radiology report for this X-ray image and the given "
    "predicted findings. Write in the style of a radiologist, write one fluent text without "
    "enumeration, be concise and don't provide explanations or reasons."
)

PRESETS: dict[str, dict] = {
    "radialog": {"template": RADIALOG_TEMPLATE, "system": VICUNA_SYSTEM, "chat": "vicuna", "image_tokens": 32},
    "plain": {"template": "{image} {instruction}", "system": None, "chat": "plain", "image_tokens": None},
}


# --- field formatting -----------------------------------------------------------------------
def format_findings(names: Iterable[str]) -> str:
    names = list(names)
    return ", ".join(names) if names else "None"


def format_concepts(scored: Iterable[tuple[str, float]]) -> str:
    return ", ".join(f"{name} ({score:.2f})" for name, score in scored) or "None"


def format_retrieved(reports: Sequence[str]) -> str:
    return " ".join(f"[{i + 1}] {report}" for i, report in enumerate(reports)) or "None"


FIELD_TITLES = {"findings": "Findings", "concepts": "Recognised findings with probabilities",
                "retrieved": "Reports of similar studies"}


def default_template(fields: Sequence[str]) -> str:
    """A template stating each guide's field, for a task given guides but no prompt."""
    parts = ["Image: {image}."] + [f"{FIELD_TITLES.get(f, f.capitalize())}: {{{f}}}." for f in fields]
    return " ".join([*parts, "Write the findings section of this chest x-ray report."])


_FORMATTERS = {"findings": format_findings, "concepts": format_concepts, "retrieved": format_retrieved}


class PromptBuilder:
    """Template + system line + chat format -> the decoder's prompt string.

    `template` may name any fields in braces; `{image}` becomes the image placeholder for
    `image_tokens` memory tokens (None: all of them). Lists given for `findings` (names),
    `concepts` ((name, score) pairs) and `retrieved` (reports) are rendered readably; strings
    are used as they are. `preset="radialog"` gives RaDialog's prompt; explicit arguments
    override the preset's.
    """

    def __init__(
        self,
        template: str | None = None,
        system: str | None = None,
        chat: str | None = None,
        image_tokens: int | None = None,
        preset: str | None = None,
    ) -> None:
        if preset is not None and preset not in PRESETS:
            raise ValueError(f"unknown prompt preset {preset!r}; known: {sorted(PRESETS)}")
        base = PRESETS[preset or "plain"]
        self.template = template if template is not None else base["template"]
        self.system = system if system is not None else base["system"]
        chat = chat if chat is not None else base["chat"]
        if chat not in CHAT_FORMATS:
            raise ValueError(f"unknown chat format {chat!r}; known: {sorted(CHAT_FORMATS)}")
        self.chat = CHAT_FORMATS[chat]
        self.image_tokens = image_tokens if image_tokens is not None else base["image_tokens"]

    def message(self, **fields) -> str:
        """The user's first message: the template with its fields filled in."""
        fields.setdefault("image", image_slots(self.image_tokens))
        # known fields read as text; any other list (e.g. a guide's renamed findings field) as names
        rendered = {k: v if isinstance(v, str) else _FORMATTERS.get(k, format_findings)(v) if isinstance(v, (list, tuple))
                    else v for k, v in fields.items()}
        try:
            return self.template.format(**rendered)
        except KeyError as missing:
            raise ValueError(f"prompt template needs field {missing}; given {sorted(fields)}") from None

    def render(self, turns: Sequence[tuple[str, str]]) -> str:
        """`turns` alternate ("user", text) and ("assistant", text), ending with a user turn; the
        result ends with the assistant prefix, ready for a response."""
        if not turns or turns[-1][0] != "user":
            raise ValueError("a prompt's turns must end with a user turn")
        chat = self.chat
        parts = [chat.system.format(system=self.system)] if self.system else []
        for role, text in turns:
            if role == "user":
                parts.append(chat.user.format(text=text))
            elif role == "assistant":
                parts.append(chat.assistant + chat.reply_gap + text + chat.turn_end)
            else:
                raise ValueError(f"unknown dialog role {role!r}; expected 'user' or 'assistant'")
        parts.append(chat.assistant)
        return chat.separator.join(parts)

    def build(self, history: Sequence[tuple[str, str]] = (), **fields) -> str:
        """The template's message as the first user turn, or, with `history`, a follow-up.

        With history, `fields` must hold `instruction` (the new user text): the dialog so far is
        `history` (which already starts with the templated message) plus that instruction.
        """
        if not history:
            return self.render([("user", self.message(**fields))])
        if "instruction" not in fields:
            raise ValueError("a follow-up prompt needs `instruction=` (the user's new message)")
        return self.render([*history, ("user", fields["instruction"])])
