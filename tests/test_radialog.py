"""RaDialog recipes end to end: classifier -> Q-Former -> LLM -> instruction tuning -> chat."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from xrg.checkpoints import read_state_dict
from conftest import last_checkpoint, tiny_chain_args
from xrg.cli import main

REPO = Path(__file__).resolve().parents[1]
RECIPES = REPO / "recipes" / "radialog"
STAGES = ("classifier", "qformer", "llm", "instruct")


def _small(root: Path, run: Path, stage: str) -> list[str]:
    """The shared tiny-run settings plus what each RaDialog stage needs on top."""
    args = tiny_chain_args(root, run)
    if stage in ("llm", "instruct"):
        args.append("--model.init_args.decoder.init_args.max_new_tokens=8")
    return args


@pytest.fixture(scope="module")
def chain(tmp_path_factory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("radialog")
    root, checkpoints, previous = tmp / "benchmark", {}, None
    for stage in STAGES:
        run = tmp / stage
        extra = [] if previous is None else [f"--model.init_args.init_from.checkpoint={previous}"]
        main(["fit", "--config", str(RECIPES / f"{stage}_synthetic.yaml"), *_small(root, run, stage), *extra])
        checkpoints[stage] = previous = last_checkpoint(run)
    checkpoints["images"] = root
    return checkpoints


def test_each_stage_starts_from_the_previous_one(chain):
    states = {stage: read_state_dict(chain[stage]) for stage in STAGES}
    # The frozen encoder and the frozen findings head pass through every stage unchanged.
    carried = [k for k in states["classifier"] if k.startswith(("image_encoder.", "findings.")) and "num_batches" not in k]
    assert "findings.pos_weight" in carried
    for key in carried:
        for stage in STAGES[1:]:
            # from stage 3 on, the head sits in the findings guide
            moved = key.replace("findings.", "guides.findings.head.", 1) if stage in ("llm", "instruct") else key
            torch.testing.assert_close(states[stage][moved], states["classifier"][key], rtol=0, atol=0)
    # The classifier fitted RaDialog's pos_weight = log(N / count): never all ones.
    assert not torch.allclose(states["classifier"]["findings.pos_weight"], torch.ones(14))
    # Stage 4's LoRA base weights are stage 3's LLM; its adapters are new.
    base = "decoder.llm.base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight"
    torch.testing.assert_close(states["instruct"][base], states["llm"]["decoder.llm.model.layers.0.self_attn.q_proj.weight"])
    assert any("lora_A" in key for key in states["instruct"])
    # Stage 3's aligner started from stage 2's and trained on.
    key = "aligner.queries"
    assert not torch.equal(states["llm"][key], states["qformer"][key])


def test_chat_answers_from_the_model(chain, capsys):
    from xrg.chat import Session

    image = next((chain["images"]).rglob("*.png"))
    session = Session.from_checkpoint(chain["instruct"], [image], max_new_tokens=8)
    report = session.report()
    answer = session.ask("Is there an effusion?")
    # What the session says is what the decoder generates for the dialog prompt.
    prompt = session.model.prompt.build(history=session.history[:2], instruction="Is there an effusion?")
    assert answer == session.model.decoder.generate(session._encoded.memory, [prompt], max_new_tokens=8)[0]
    assert [role for role, _ in session.history] == ["user", "assistant", "user", "assistant"]
    assert session.history[1][1] == report

    assert main(["chat", "--ckpt", str(chain["instruct"]), "--image", str(image), "--max-new-tokens", "8",
                 "--ask", "Is there an effusion?"]) == 0
    printed = capsys.readouterr().out
    assert f"report: {report}" in printed and f"> Is there an effusion?\n{answer}" in printed


def test_chat_help_and_bad_image(tmp_path, capsys, chain):
    with pytest.raises(SystemExit) as exit_info:
        main(["chat", "--help"])
    assert exit_info.value.code == 0 and "--ckpt" in capsys.readouterr().out
    assert main(["chat", "--ckpt", str(chain["instruct"]), "--image", str(tmp_path / "missing.png"), "--ask", "x"]) == 2
    assert capsys.readouterr().err == f"xrg chat: error: image {tmp_path / 'missing.png'} does not exist\n"
