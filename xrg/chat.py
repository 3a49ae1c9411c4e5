"""`xrg chat`: talk with a trained LLM report model about one study (RaDialog-style).

The session first writes the report (prompted with what the model's guides give: predicted
findings, concepts, retrieved reports, disease clues), then answers
follow-ups with the whole conversation as context: "Is there an effusion?", "Correct it: there
is no pneumothorax", "Explain it simply". From Python:

    session = Session.from_checkpoint("last.ckpt", ["frontal.png", "lateral.png"])
    session.report(); session.ask("Is there an effusion?")
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

from xrg.cli import CommandParser
from xrg.data.errors import CheckpointError

class Session:
    """A dialog about one study. `model` is a `ReportGeneration` task with an LLM decoder and a
    prompt; `images` is `[V, C, H, W]` already transformed as in training. The image is encoded once."""

    def __init__(self, model, images: torch.Tensor, **generate_kwargs: Any) -> None:
        _require_chat_model(model)
        self.model = model.eval()
        self.generate_kwargs = generate_kwargs
        self.history: list[tuple[str, str]] = []
        device = next(model.parameters()).device
        batch = {"ids": ["chat"], "images": images.unsqueeze(0).to(device), "view_mask": None}
        with torch.no_grad():
            self._encoded = model.encode(batch, with_loss=False)
        self.fields = model.prompt_fields(self._encoded, 0)
        self.findings = self.fields["findings"]

    @staticmethod
    def supports(model) -> bool:
        """Whether `model` can hold a dialog: a report task with an LLM decoder and a prompt."""
        return getattr(model, "prompt", None) is not None and hasattr(model, "encode")

    def continue_from(self, report: str) -> None:
        """Start the conversation from a report already written for this study (the web page's),
        so follow-ups refer to the report the user read."""
        self.history = [("user", self.model.prompt.message(**self.fields)), ("assistant", report)]

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, image_paths: list[str | Path], **generate_kwargs: Any) -> "Session":
        """Model and image preparation both come from the checkpoint written by `xrg fit`."""
        from xrg import load

        model = load(checkpoint)
        try:
            _require_chat_model(model)
        except CheckpointError as error:
            raise CheckpointError(f"{checkpoint}: {error}") from None
        return cls(model, model.preparation.views(list(image_paths)), **generate_kwargs)

    def _reply(self, prompt: str) -> str:
        return self.model.decoder.generate(self._encoded.memory, [prompt], **self.generate_kwargs)[0]

    def report(self) -> str:
        """The report (first turn); starts the conversation over."""
        message = self.model.prompt.message(**self.fields)
        answer = self._reply(self.model.prompt.build(**self.fields))
        self.history = [("user", message), ("assistant", answer)]
        return answer

    def ask(self, question: str) -> str:
        """An answer to a follow-up, given everything said so far (writes the report first if needed)."""
        if not self.history:
            self.report()
        answer = self._reply(self.model.prompt.build(history=self.history, instruction=question))
        self.history += [("user", question), ("assistant", answer)]
        return answer


def _require_chat_model(model) -> None:
    if not Session.supports(model):
        raise CheckpointError(f"{type(model).__name__} is not an LLM report model (needs an LLM decoder and a "
                              "prompt); chat needs e.g. RaDialog's llm or instruct stage")


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser(prog="xrg chat", description="Talk with a trained LLM report model about an image.")
    parser.add_argument("--ckpt", required=True, help="checkpoint written by `xrg fit` (LLM report / instruction stage)")
    parser.add_argument("--image", action="append", required=True, help="image file; repeat for more views")
    parser.add_argument("--ask", action="append", default=[], help="follow-up question(s) to answer, then exit")
    parser.add_argument("--max-new-tokens", type=int, default=None)
    parser.add_argument("--num-beams", type=int, default=None)
    args = parser.parse_args(argv)

    overrides = {k: v for k, v in {"max_new_tokens": args.max_new_tokens, "num_beams": args.num_beams}.items() if v is not None}
    session = Session.from_checkpoint(args.ckpt, args.image, **overrides)
    if session.findings:
        print(f"predicted findings: {', '.join(session.findings)}")
    print(f"report: {session.report()}")
    questions = args.ask
    interactive = not questions
    if interactive:
        print("ask a follow-up (empty line or Ctrl-D to quit)")
    while True:
        if questions:
            question = questions.pop(0)
            print(f"> {question}")
        elif interactive:
            try:
                question = input("> ").strip()
            except EOFError:
                break
            if not question:
                break
        else:
            break
        print(session.ask(question))
    return 0


if __name__ == "__main__":
    sys.exit(main())
