"""How `ReportGeneration` wires its blocks: the prompt an LLM decoder reads when guides write fields
and no prompt is given. (Written from mutation survivors, benchmarks/mutation.py.)"""

from __future__ import annotations

import torch

from xrg.blocks.decoders import CausalLMDecoder
from xrg.blocks.encoders import TimmImageEncoder
from xrg.blocks.findings import FindingsClassifier
from xrg.blocks.guides import PredictedFindings
from xrg.data.tokenizers import BPETokenizer
from xrg.tasks import ReportGeneration

TINY_LLAMA = {"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
              "num_attention_heads": 2, "num_key_value_heads": 2, "max_position_embeddings": 256}


def llm() -> CausalLMDecoder:
    torch.manual_seed(0)
    return CausalLMDecoder(config=TINY_LLAMA, tokenizer=BPETokenizer(vocab_size=300))


def test_guides_writing_fields_give_an_llm_a_prompt_stating_them_when_none_is_given():
    head = FindingsClassifier(["Cardiomegaly", "Pleural Effusion"], threshold=0.5)
    task = ReportGeneration(TimmImageEncoder("test_resnet"), llm(), guides=[PredictedFindings(head)],
                            nlg_metrics=False, clinical_efficacy=False).eval()
    with torch.no_grad():  # the head finds cardiomegaly and never an effusion
        head.net[-1].weight.zero_()
        head.net[-1].bias.copy_(torch.tensor([3.0, -3.0]))
    labels = torch.full((2, 14), float("nan"))
    batch = {"ids": ["a", "b"], "images": torch.rand(2, 1, 3, 32, 32), "reports": ["x", "y"], "labels": labels}
    with torch.no_grad():
        prompts = task.prompts(task.encode(batch, with_loss=False))
    stated = "Image: <image>. Findings: cardiomegaly. Write the findings section of this chest x-ray report."
    assert prompts is not None and [p.strip() for p in prompts] == [stated, stated]
