"""How `ReportGeneration` wires its blocks: the prompt an LLM decoder reads when guides write fields
and no prompt is given; the memory when visual tokens are left out; generating from images alone;
what trains when an aligner's pretraining heads ride along.
(Written from mutation survivors, benchmarks/mutation.py.)"""

from __future__ import annotations

import torch

from xrg.blocks.clues import DiseaseClueInjector, MultiGranularClueInteraction
from xrg.blocks.decoders import CausalLMDecoder, TransformerDecoder
from xrg.blocks.encoders import HFTextEncoder, TimmImageEncoder
from xrg.blocks.findings import FindingsClassifier, ZeroShotDiseasePerception
from xrg.blocks.guides import DiseaseClues, PredictedFindings
from xrg.data.tokenizers import WordTokenizer
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


def transformer() -> TransformerDecoder:
    return TransformerDecoder(WordTokenizer(1, words=["heart", "normal"]), dim=16, heads=2, ffn_dim=16, encoder_layers=1,
                              decoder_layers=1, max_length=4, num_beams=1)


def test_without_visual_tokens_the_memory_is_the_guide_tokens_all_attended():
    torch.manual_seed(0)
    guide = PredictedFindings(FindingsClassifier(["Cardiomegaly", "Pleural Effusion"]), tokens=True, token_dim=16)
    task = ReportGeneration(TimmImageEncoder("test_resnet"), transformer(), guides=[guide], visual_tokens=False,
                            nlg_metrics=False, clinical_efficacy=False).eval()
    view_mask = torch.tensor([[True, True], [True, False]])  # the second study has one view: padded
    batch = {"ids": ["a", "b"], "images": torch.rand(2, 2, 3, 32, 32), "view_mask": view_mask, "reports": ["x", "y"]}
    with torch.no_grad():
        encoded = task.encode(batch, with_loss=False)
    memory = encoded.memory
    assert torch.equal(memory.tokens, encoded.guidance["findings"].tokens.to(memory.tokens.dtype))
    assert memory.mask is not None and memory.mask.shape == memory.tokens.shape[:2] and memory.mask.all()
    with torch.no_grad():  # the decoder reads that memory
        assert len(task.generate_reports(encoded)) == 2 and float(task.step_loss(task.encode(batch))) > 0


def test_a_task_with_training_only_losses_generates_from_images_alone():
    """Notebook use: `task(images)` has neither reports nor labels, so no guide may compute its
    training loss (TRRG's consistency loss labels the reports)."""
    torch.manual_seed(0)
    text = HFTextEncoder(config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 64}, frozen=True)
    clues = DiseaseClues(ZeroShotDiseasePerception(text, ["Cardiomegaly", "Pleural Effusion"], embed_dim=16),
                         DiseaseClueInjector(16), MultiGranularClueInteraction(16, 2), consistency_weight=0.5)
    task = ReportGeneration(TimmImageEncoder("test_resnet"), transformer(), guides=[clues],
                            nlg_metrics=False, clinical_efficacy=False).eval()
    images = torch.rand(3, 1, 3, 32, 32)
    with torch.no_grad():
        reports = task(images)
        expected = task.generate_reports(task.encode({"ids": ["0", "1", "2"], "images": images}, with_loss=False))
    assert reports == expected and len(reports) == 3


def test_every_trainable_weight_of_a_qformer_report_task_learns_from_the_report_loss():
    """The aligner's pretraining-only parts (ITC temperature and projections, ITM head, ITG head, text
    embeddings) get no gradient from a report loss: the task freezes them, and everything it leaves
    trainable (queries, cross-attention, layers, decoder) receives a gradient."""
    from xrg.blocks.aligners import QFormerAligner

    torch.manual_seed(0)
    aligner = QFormerAligner(config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                     "intermediate_size": 64}, tokenizer=WordTokenizer(threshold=1), num_queries=4,
                             embed_dim=16, cross_attention_every=1)
    aligner.prepare(["heart", "normal heart"])  # its tokenizer and BERT, built from the training reports
    task = ReportGeneration(TimmImageEncoder("test_resnet"), transformer(), aligner=aligner, nlg_metrics=False,
                            clinical_efficacy=False)
    batch = {"ids": ["a", "b"], "images": torch.rand(2, 1, 3, 32, 32), "reports": ["heart", "normal heart"]}
    task.step_loss(task.encode(batch)).backward()
    dead = [n for n, p in task.named_parameters() if p.requires_grad and p.grad is None]
    assert not dead, f"trainable but untouched by the report loss: {dead}"
    frozen = {n for n, p in task.named_parameters() if not p.requires_grad}
    for part in ("temperature", "itm_head", "itg", "vision_proj", "text_proj", "word_embeddings"):
        assert any(n.startswith("aligner.") and part in n for n in frozen), f"the aligner's {part} trains"
