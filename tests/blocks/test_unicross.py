import pytest
import torch
from safetensors.torch import save_file

from xrg.blocks.adapters import Adapter, UniCrossAdapter, UniCrossEncoder
from xrg.blocks.clues import DiseaseClueInjector, MultiGranularClueInteraction
from xrg.blocks.decoders import TransformerDecoder
from xrg.blocks.decoders.transformer import sincos_2d_positions
from xrg.blocks.encoders import Features, HFTextEncoder, OpenClipImageEncoder, OpenClipTextEncoder
from xrg.blocks.findings import FindingsClassifier, ZeroShotDiseasePerception
from xrg.blocks.guides import DiseaseClues, PredictedFindings
from xrg.checkpoints import load_block_weights
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.tokenizers import WordTokenizer
from xrg.tasks import ReportGeneration

TEXT = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 3}
TINY = {  # (open_clip config, image insertion points, image size)
    "resnet": ({"embed_dim": 24, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
                "text_cfg": TEXT}, (2, 3, 4), 64),
    "vit": ({"embed_dim": 24, "vision_cfg": {"image_size": 32, "layers": 3, "width": 32, "patch_size": 8,
                                             "head_width": 16}, "text_cfg": TEXT}, (1, 2, 3), 32),
}
REPORTS = ["the heart is enlarged .", "no pleural effusion .", "small left pneumothorax .", "lungs are clear ."]


def build_task(family: str, seed: int = 0, guides=()) -> tuple[ReportGeneration, torch.Tensor]:
    torch.manual_seed(seed)
    config, image_points, size = TINY[family]
    encoder = UniCrossEncoder(
        OpenClipImageEncoder("RN50", model_config=config, frozen=True),
        OpenClipTextEncoder("RN50", model_config=config, frozen=True, train_params=["positional_embedding"]),
        UniCrossAdapter(bottleneck=16, heads=2, ffn_dim=32, image_points=image_points, text_points=(1, 2, 3)),
        dim=32,
    )
    grid = encoder.adapter.grid
    decoder = TransformerDecoder(WordTokenizer(threshold=1), dim=32, heads=2, ffn_dim=64, encoder_layers=1,
                                 decoder_layers=1, max_length=12, memory_grid=(grid, grid))
    task = ReportGeneration(encoder, decoder, guides=list(guides), nlg_metrics=False, clinical_efficacy=False)
    decoder.prepare(REPORTS)
    images = torch.randn(len(REPORTS), 2, 3, size, size, generator=torch.Generator().manual_seed(1))
    return task, images


def train(task: ReportGeneration, images: torch.Tensor, steps: int, **batch_fields) -> list[float]:
    optimizer = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=5e-3)
    task.train()
    batch = {"ids": [str(i) for i in range(len(images))], "images": images, "reports": REPORTS[: len(images)],
             **batch_fields}
    losses = []
    for _ in range(steps):
        loss = task.step_loss(task.encode(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("family, steps", [("resnet", 12), ("vit", 1)])
def test_training_moves_adapters_only(family, steps):
    task, images = build_task(family)
    assert isinstance(task.image_encoder.adapter, Adapter)
    towers = {"image": task.image_encoder.image_encoder.tower, "text": task.image_encoder.text_encoder.tower}
    before = {name: {k: v.clone() for k, v in t.state_dict().items()} for name, t in towers.items()}
    adapter_before = {k: v.clone() for k, v in task.image_encoder.adapter.state_dict().items()}
    losses = train(task, images[:, :1], steps)
    if steps > 1:
        assert losses[-1] < 0.6 * losses[0]
    # Frozen weights and BatchNorm statistics are bit-identical; only the named exception trained.
    changed = {name: [k for k, v in t.state_dict().items() if not torch.equal(before[name][k], v)]
               for name, t in towers.items()}
    assert changed == {"image": [], "text": ["positional_embedding"]}
    adapter_after = task.image_encoder.adapter.state_dict()
    assert all(not torch.equal(adapter_before[k], adapter_after[k]) for k in adapter_before if k.endswith("weight"))
    assert "stages.0.visual_down.weight" in task.image_encoder.adapter.trainable_parameter_names()


def test_no_future_token_leak():
    task, images = build_task("resnet")
    task.eval()
    other = ["the heart is normal .", "no pleural effusion or", "small left effusion .", "lungs are clear !"]
    memory_a = task.encode({"images": images, "reports": REPORTS}).memory
    memory_b = task.encode({"images": images, "reports": other}).memory
    # The visual memory never reads the report, so training and generation see the same thing.
    assert torch.equal(memory_a.tokens, memory_b.tokens)
    tokenizer = task.decoder.tokenizer
    ids = tokenizer.batch_encode(REPORTS, 12)
    changed = ids.clone()
    changed[:, 4:] = torch.randint(4, tokenizer.vocab_size, changed[:, 4:].shape)
    with torch.no_grad():
        logits, logits_changed = task.decoder.logits(memory_a, ids), task.decoder.logits(memory_a, changed)
    assert torch.equal(logits[:, :4], logits_changed[:, :4])
    assert not torch.equal(logits[:, 4:], logits_changed[:, 4:])


def test_saved_encoder_reloads_to_identical_outputs(tmp_path):
    task, images = build_task("resnet", seed=0)
    encoder = task.image_encoder.eval()
    path = tmp_path / "encoder.safetensors"
    save_file({f"image_encoder.{k}": v.contiguous() for k, v in encoder.state_dict().items()}, str(path))
    fresh = build_task("resnet", seed=1)[0].image_encoder.eval()
    with torch.no_grad():
        assert not torch.equal(fresh(images).tokens, encoder(images).tokens)
        load_block_weights(fresh, path, "image_encoder")
        assert torch.equal(fresh(images).tokens, encoder(images).tokens)


def test_generation_runs_with_grid_memory():
    task, images = build_task("vit")
    reports = task.eval().generate(images, num_beams=2, max_length=5)
    assert len(reports) == 4 and all(isinstance(r, str) for r in reports)


def test_grid_positions_repeat_per_view_and_cls_is_prepended():
    table = sincos_2d_positions(2, 3, 8)
    assert table.shape == (6, 8) and len({tuple(row.tolist()) for row in table}) == 6
    decoder = TransformerDecoder(WordTokenizer(threshold=1), dim=8, heads=2, ffn_dim=16, encoder_layers=1,
                                 decoder_layers=1, dropout=0.0, memory_dim=4, memory_grid=(2, 3)).eval()
    view = torch.randn(1, 6, 4)
    encoded, mask = decoder.encode_memory(Features(torch.cat([view, view], 1), view[:, 0], torch.ones(1, 12, dtype=bool)))
    assert encoded.shape == (1, 13, 8) and mask.shape == (1, 1, 1, 13)
    torch.testing.assert_close(encoded[:, 1:7], encoded[:, 7:])  # same positions in both views
    with pytest.raises(ValueError, match="not a whole number"):
        decoder.encode_memory(Features(torch.randn(1, 7, 4), torch.randn(1, 4)))


def test_tokens_a_guide_appends_after_the_grid_views_get_no_grid_position():
    # RaDialog's findings tokens (or RadAlign's concept tokens) after UniCrossAdapter's gridded views
    decoder = TransformerDecoder(WordTokenizer(threshold=1), dim=8, heads=2, ffn_dim=16, encoder_layers=1,
                                 decoder_layers=1, dropout=0.0, memory_dim=4, memory_grid=(2, 3)).eval()
    view, appended = torch.randn(1, 6, 4), torch.randn(1, 3, 4)
    memory = Features(torch.cat([view, view, appended], 1), view[:, 0], views=2, appended=3)
    encoded, mask = decoder.encode_memory(memory)
    assert encoded.shape == (1, 16, 8) and mask is None
    torch.testing.assert_close(encoded[:, 1:7], encoded[:, 7:13])  # the views keep their grid positions
    swapped = memory._replace(tokens=torch.cat([view, view, appended[:, [1, 0, 2]]], 1))
    # no position among the appended tokens: swapping two of them swaps their encodings, nothing else
    torch.testing.assert_close(decoder.encode_memory(swapped)[0][:, [13, 14, 15]], encoded[:, [14, 13, 15]])
    with pytest.raises(ValueError, match="not a whole number"):
        decoder.encode_memory(memory._replace(appended=2))


def test_a_findings_guide_writes_through_the_grid_decoder():
    # RaDialog's findings tokens over UniCrossAdapter's gridded memory: a recipe mixes them with no code
    guide = PredictedFindings(FindingsClassifier(["Cardiomegaly", "Pneumothorax"]), tokens=True, labels_in_training=True)
    task, images = build_task("resnet", guides=[guide])
    labels = torch.zeros(4, len(CHEXPERT_LABELS))  # batches carry all 14 observations
    labels[0, CHEXPERT_LABELS.index("Cardiomegaly")] = labels[2, CHEXPERT_LABELS.index("Pneumothorax")] = 1.0
    losses = train(task, images[:, :1], 12, labels=labels)
    assert losses[-1] < 0.6 * losses[0]
    batch = {"ids": list("abcd"), "images": images[:, :1], "reports": REPORTS, "labels": labels}
    assert task.encode(batch, with_loss=False).memory.appended == 2


def test_disease_clues_write_through_the_grid_decoder():
    # TRRG's clues over UniCrossAdapter's gridded memory: the interaction keeps the views' tokens in
    # their places and counts its global and clue tokens as appended, so the grid positions the views only
    text = HFTextEncoder(config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 32}, frozen=True)
    names = ["Cardiomegaly", "Pneumothorax"]
    clues = DiseaseClues(ZeroShotDiseasePerception(text, names, embed_dim=16), DiseaseClueInjector(16),
                         MultiGranularClueInteraction(16, 2), field=None)
    task, images = build_task("resnet", guides=[clues])
    labels = torch.zeros(4, len(CHEXPERT_LABELS))
    labels[0, CHEXPERT_LABELS.index("Cardiomegaly")] = labels[2, CHEXPERT_LABELS.index("Pneumothorax")] = 1.0
    losses = train(task, images, 12, labels=labels)
    assert losses[-1] < 0.6 * losses[0]
    batch = {"ids": list("abcd"), "images": images, "reports": REPORTS, "labels": labels}
    memory = task.encode(batch, with_loss=False).memory
    grid = task.image_encoder.adapter.grid
    assert memory.views == 2 and memory.appended == 1 + len(names)
    assert memory.tokens.shape[1] == 2 * grid * grid + 1 + len(names)


def test_bad_adapter_settings_are_refused():
    with pytest.raises(ValueError, match="pair up"):
        UniCrossAdapter(image_points=(2, 3), text_points=(4, 8, 12))
    with pytest.raises(ValueError, match="increasing"):
        UniCrossAdapter(image_points=(3, 2), text_points=(4, 8))
    config, _, _ = TINY["resnet"]
    image = OpenClipImageEncoder("RN50", model_config=config)
    text = OpenClipTextEncoder("RN50", model_config=config)
    with pytest.raises(ValueError, match="cannot resample"):
        UniCrossEncoder(image, text, UniCrossAdapter(image_points=(2, 3), text_points=(1, 2), grid=3))
    with pytest.raises(ValueError, match="exceed"):
        UniCrossEncoder(image, text, UniCrossAdapter(image_points=(2, 5), text_points=(1, 2)))
