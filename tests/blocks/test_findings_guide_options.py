"""PredictedFindings' options that make a decoder state what the head perceives (docs/quality.md):
per-observation thresholds tuned on validation, decisions as tokens, positive weights from the
training labels; and the CLIP towers' pooled width reaching the contrastive joint space."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

from conftest import write_tiny_dataset
from xrg.blocks.decoders import TransformerDecoder
from xrg.blocks.encoders import OpenClipImageEncoder, OpenClipTextEncoder, TimmImageEncoder
from xrg.blocks.encoders.base import Features
from xrg.blocks.findings import FindingsClassifier
from xrg.blocks.findings.base import best_f1_thresholds, no_finding_as_labelled
from xrg.blocks.guides import Encoded, PredictedFindings
from xrg.callbacks import stated_findings
from xrg.data import ReportDataModule
from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.tokenizers import WordTokenizer
from xrg.tasks import ContrastivePretraining, ReportGeneration

pytestmark = pytest.mark.usefixtures("one_thread")
THREE = ["Cardiomegaly", "Pleural Effusion", "Pneumothorax"]


def f1_at(probs: torch.Tensor, positive: torch.Tensor, threshold: float) -> float:
    predicted = probs >= threshold
    true_pos = (predicted & positive).sum().item()
    return 2 * true_pos / (predicted.sum().item() + positive.sum().item())


def test_tuned_thresholds_reach_the_best_f1_of_any_threshold():
    torch.manual_seed(0)
    probs = torch.rand(60, 4)
    labels = torch.where(torch.rand(60, 4) < probs, 1.0, 0.0)
    labels[::7, 1] = -1.0  # uncertain counts as negative, as clinical efficacy counts it
    labels[:, 3] = 0.0  # never positive: keeps the default
    thresholds = best_f1_thresholds(probs, labels, default=0.42)
    assert thresholds[3].item() == pytest.approx(0.42)
    for k in range(3):
        positive = labels[:, k] == 1
        best = max(f1_at(probs[:, k], positive, t) for t in probs[:, k].tolist())
        assert f1_at(probs[:, k], positive, thresholds[k].item()) == pytest.approx(best)
        # halfway between two studies' probabilities, not on one of them
        assert not torch.isclose(probs[:, k], thresholds[k]).any()


def encoded(training: bool, labels: torch.Tensor) -> Encoded:
    pooled = torch.randn(labels.shape[0], 8)
    visual = Features(pooled.unsqueeze(1), pooled)
    return Encoded({"labels": labels}, visual, visual, training=training)


def test_decision_tokens_state_what_the_labels_state_in_training():
    torch.manual_seed(0)
    labels = torch.full((5, 14), float("nan"))
    labels[:, CHEXPERT_LABELS.index("Cardiomegaly")] = torch.tensor([1.0, 0.0, 1.0, -1.0, 0.0])
    plain = PredictedFindings(FindingsClassifier(THREE, threshold=0.5), tokens=True)
    decided = PredictedFindings(FindingsClassifier(THREE, threshold=0.5), tokens=True, decision_tokens=True)
    for guide in (plain, decided):
        guide.bind(8, 16)
    decided.load_state_dict(plain.state_dict())
    present, absent = decided.states[:, 0], decided.states[:, 1]

    def is_state(tokens: torch.Tensor) -> torch.Tensor:  # [B, K]: 1 present, 0 absent, nan in between
        on = torch.isclose(tokens, present).all(-1)
        off = torch.isclose(tokens, absent).all(-1)
        return torch.where(on, 1.0, torch.where(off, 0.0, float("nan")))

    # Training: the labels, whichever option.
    trained = decided(encoded(True, labels))
    assert torch.equal(is_state(trained.tokens)[:, 0], torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0]))
    # Validation / test: decisions at the threshold, not probabilities.
    batch = encoded(False, labels)
    probs = decided.head(batch.visual).sigmoid()
    assert torch.equal(is_state(decided(batch).tokens), (probs >= 0.5).float())
    assert is_state(plain(batch).tokens).isnan().all()  # without the option: a mix of both states
    assert decided(batch).fields["findings"] == plain(batch).fields["findings"]


def test_no_finding_rule_decides_no_finding_exactly_when_no_pathology_is_decided():
    names = ["No Finding", "Cardiomegaly", "Support Devices"]
    # decided by thresholds: nothing; a pathology beside No Finding; devices only; No Finding alone
    decided = torch.tensor([[0.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])
    assert torch.equal(no_finding_as_labelled(decided, names),
                       torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]))

    ruled = PredictedFindings(FindingsClassifier(names), tokens=True, decision_tokens=True, no_finding_rule=True)
    plain = PredictedFindings(FindingsClassifier(names), tokens=True, decision_tokens=True)
    for guide in (ruled, plain):
        guide.bind(8, 16)
    ruled.load_state_dict(plain.state_dict())
    for guide in (ruled, plain):
        with torch.no_grad():  # every probability under the threshold: a study with no decision at all
            guide.head.net[-1].bias.fill_(-30.0)
    labels = torch.full((3, 14), float("nan"))
    labels[:, CHEXPERT_LABELS.index("Cardiomegaly")] = 1.0
    tested = encoded(False, labels)
    assert plain(tested).fields["findings"] == [[], [], []]
    assert ruled(tested).fields["findings"] == [["no finding"]] * 3
    assert ruled(tested).explanations[0]["findings"] == ["No Finding"]
    assert torch.equal(ruled(tested).tokens[:, 0], ruled.states[0, 0].expand(3, -1))  # No Finding told present
    # Training tokens state the labels, whichever option.
    assert torch.equal(ruled(encoded(True, labels)).tokens, plain(encoded(True, labels)).tokens)
    with pytest.raises(ValueError, match="no_finding_rule decides 'No Finding', which the head does not predict"):
        PredictedFindings(FindingsClassifier(THREE), no_finding_rule=True)

def test_uncertain_labels_get_their_own_token_in_training_and_never_at_test():
    torch.manual_seed(0)
    labels = torch.full((4, 14), float("nan"))
    labels[:, CHEXPERT_LABELS.index("Cardiomegaly")] = torch.tensor([1.0, 0.0, -1.0, float("nan")])
    guide = PredictedFindings(FindingsClassifier(THREE, threshold=0.5), tokens=True, decision_tokens=True,
                              uncertain_tokens=True)
    guide.bind(8, 16)
    assert guide.states.shape == (3, 3, 16)
    present, absent, uncertain = guide.states[0].unbind(0)
    trained = guide(encoded(True, labels)).tokens[:, 0]  # Cardiomegaly's token per study
    for token, state in zip(trained, (present, absent, uncertain, absent)):  # blank is told as absent
        assert torch.equal(token, state)
    # At test time the head decides present or absent; what is hedged is wording, not image.
    tested = guide(encoded(False, labels)).tokens
    assert not torch.isclose(tested, guide.states[:, 2].expand_as(tested)).all(-1).any()
    # Without the option the uncertain study is told as absent.
    two = PredictedFindings(FindingsClassifier(THREE, threshold=0.5), tokens=True)
    two.bind(8, 16)
    assert torch.equal(two(encoded(True, labels)).tokens[2, 0], two.states[0, 1])


def test_shared_states_tell_every_observation_present_by_the_same_step():
    torch.manual_seed(0)
    labels = torch.full((2, 14), float("nan"))
    for name in THREE:
        labels[:, CHEXPERT_LABELS.index(name)] = torch.tensor([1.0, 0.0])
    guide = PredictedFindings(FindingsClassifier(THREE), tokens=True, shared_states=True, uncertain_tokens=True)
    guide.bind(8, 16)
    assert guide.states.shape == (1, 3, 16) and guide.slots.shape == (3, 16)
    tokens = guide(encoded(True, labels)).tokens  # [2 studies, 3 observations, 16]
    step = tokens[0] - tokens[1]  # present minus absent, per observation
    torch.testing.assert_close(step, (guide.states[0, 0] - guide.states[0, 1]).expand(3, 16))
    assert not torch.allclose(tokens[0, 0], tokens[0, 1])  # the slots keep the observations apart
    # the factors are weights like any other: a fresh guide loading them tells the same tokens
    again = PredictedFindings(FindingsClassifier(THREE), tokens=True, shared_states=True, uncertain_tokens=True)
    again.bind(8, 16)
    again.load_state_dict(guide.state_dict())
    assert torch.equal(again(encoded(True, labels)).tokens, tokens)


def test_training_tokens_tell_what_the_report_still_states_while_the_head_learns_the_study():
    # drop_finding_sentences: the data left Cardiomegaly's sentence out of study 0's report; its
    # token says absent, the field does not name it, and the head's loss still counts it present.
    torch.manual_seed(0)
    labels = torch.full((2, 14), float("nan"))
    labels[:, CHEXPERT_LABELS.index("Cardiomegaly")] = 1.0
    stated = labels.clone()
    stated[0, CHEXPERT_LABELS.index("Cardiomegaly")] = float("nan")
    guide = PredictedFindings(FindingsClassifier(THREE), tokens=True, loss_weight=1.0)
    guide.bind(8, 16)
    batch = encoded(True, labels)
    plain = guide(batch)
    batch.batch["stated_labels"] = stated
    told = guide(batch)
    assert torch.equal(told.tokens[0, 0], guide.states[0, 1]) and torch.equal(told.tokens[1, 0], guide.states[0, 0])
    assert told.fields["findings"] == [[], ["cardiomegaly"]]
    assert torch.equal(told.loss, plain.loss)  # the head's BCE reads the study's labels
    assert not torch.equal(guide(encoded(False, labels)).tokens, told.tokens)  # outside training: the head


def test_uncertain_tokens_without_training_labels_is_refused_in_one_line():
    with pytest.raises(ValueError, match="uncertain_tokens .* labels_in_training: true"):
        PredictedFindings(FindingsClassifier(THREE), tokens=True, labels_in_training=False, uncertain_tokens=True)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    return write_tiny_dataset(tmp_path_factory.mktemp("tiny"), studies_per_split=(16, 12, 4), views=1, size=32)


@pytest.mark.parametrize("rule", [True, "ratio"])
def test_thresholds_are_tuned_on_validation_and_saved_and_pos_weight_fitted(data_root, tmp_path, rule):
    torch.manual_seed(0)
    guide = PredictedFindings(FindingsClassifier(THREE), tokens=True, decision_tokens=True, tune_thresholds=True,
                              fit_pos_weight=rule, loss_weight=1.0)
    decoder = TransformerDecoder(WordTokenizer(threshold=1), dim=16, heads=2, ffn_dim=32, encoder_layers=1,
                                 decoder_layers=1, max_length=12, num_beams=1)
    task = ReportGeneration(TimmImageEncoder("test_resnet"), decoder, guides=[guide], generate_in_validation=False,
                            optimizer=lambda p: torch.optim.AdamW(p, lr=1e-3))
    dm = ReportDataModule(annotation_path=str(data_root / "annotation.json"), labels_path=str(data_root / "labels.json"),
                          max_views=1, image_size=32, resize=32, batch_size=4, cleaning="none")
    trainer = L.Trainer(max_epochs=1, limit_train_batches=2, accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(task, datamodule=dm)

    train = dm.train_labels()[:, [CHEXPERT_LABELS.index(n) for n in THREE]]
    positives = [(train[:, k] == 1).sum().item() for k in range(3)]  # none blank or uncertain in this fixture
    expected = [math.log(len(train) / p) if rule is True else (len(train) - p) / p for p in positives]
    torch.testing.assert_close(guide.head.pos_weight, torch.tensor(expected))

    # The thresholds are the best-F1 ones of the model's validation probabilities.
    task.eval()
    with torch.no_grad():
        batches = list(dm.val_dataloader())
        probs = torch.cat([guide.head(task.image_encoder(b["images"], b.get("view_mask"))).sigmoid() for b in batches])
    labels = torch.cat([b["labels"][:, [CHEXPERT_LABELS.index(n) for n in THREE]] for b in batches])
    torch.testing.assert_close(guide.thresholds, best_f1_thresholds(probs, labels))
    assert not torch.allclose(guide.thresholds, torch.full((3,), 0.5))
    assert torch.equal(task.state_dict()["guides.findings.thresholds"], guide.thresholds)

    # A validation writes its reports at the thresholds of the weights it validates: tuned before
    # its first batch, not carried over from the previous validation.
    class SeenThresholds(L.Callback):
        seen: list[torch.Tensor] = []

        def on_validation_batch_start(self, trainer, pl_module, batch, batch_idx, dataloader_idx=0):
            self.seen.append(guide.thresholds.clone())

    guide.thresholds.fill_(0.99)
    validator = L.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
                          callbacks=[SeenThresholds()], default_root_dir=tmp_path)
    validator.validate(task, datamodule=dm, verbose=False)
    assert len(SeenThresholds.seen) == len(batches)
    for thresholds in SeenThresholds.seen:
        torch.testing.assert_close(thresholds, best_f1_thresholds(probs, labels))


def test_thresholds_are_tuned_on_the_averaged_weights_a_weight_averaging_callback_validates(data_root, tmp_path):
    """Lightning's EMAWeightAveraging swaps its averaged weights in at each validation and saves them
    as the checkpoint's weights: the thresholds saved beside them are tuned on them, not on the
    training weights the swap set aside."""
    from lightning.pytorch.callbacks import EMAWeightAveraging, ModelCheckpoint

    torch.manual_seed(0)

    def build():
        guide = PredictedFindings(FindingsClassifier(THREE), tokens=True, decision_tokens=True, tune_thresholds=True,
                                  loss_weight=1.0)
        decoder = TransformerDecoder(WordTokenizer(threshold=1), dim=16, heads=2, ffn_dim=32, encoder_layers=1,
                                     decoder_layers=1, max_length=12, num_beams=1)
        return ReportGeneration(TimmImageEncoder("test_resnet"), decoder, guides=[guide], generate_in_validation=False,
                                optimizer=lambda p: torch.optim.AdamW(p, lr=3e-2))

    dm = ReportDataModule(annotation_path=str(data_root / "annotation.json"), labels_path=str(data_root / "labels.json"),
                          max_views=1, image_size=32, resize=32, batch_size=4, cleaning="none")
    saved = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = L.Trainer(max_epochs=2, limit_train_batches=3, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                        callbacks=[EMAWeightAveraging(decay=0.5), saved])
    task = build()
    trainer.fit(task, datamodule=dm)

    checkpoint = torch.load(saved.last_model_path, weights_only=True)
    task.eval()
    guide = task.guides["findings"]
    batches = list(dm.val_dataloader())
    labels = torch.cat([b["labels"][:, [CHEXPERT_LABELS.index(n) for n in THREE]] for b in batches])
    tuned = {}
    for weights in ("state_dict", "current_model_state"):  # the averaged weights, the training weights
        task.load_state_dict(checkpoint[weights])
        with torch.no_grad():
            probs = torch.cat([guide.head(task.image_encoder(b["images"], b.get("view_mask"))).sigmoid() for b in batches])
        tuned[weights] = best_f1_thresholds(probs, labels)
    assert not torch.allclose(tuned["state_dict"], tuned["current_model_state"])  # else this test tells nothing
    torch.testing.assert_close(checkpoint["state_dict"]["guides.findings.thresholds"], tuned["state_dict"])


def test_a_findings_head_and_a_joint_space_read_a_clip_tower():
    """open_clip towers give tokens and pooled in CLIP's embedding space (width 24 here, not the
    stage's 256), so RaDialog's findings head, spatial or not, reads them under ReportGeneration
    (before: a shape error) and a joint space binds to the same width."""
    config = {"embed_dim": 24, "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8},
              "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}}
    torch.manual_seed(0)
    image, text = OpenClipImageEncoder("RN50", model_config=config), OpenClipTextEncoder("RN50", model_config=config)
    assert image.dim == text.dim == 24
    contrastive = ContrastivePretraining(image, text, embed_dim=16)
    assert contrastive.joint.embed_images(image(torch.rand(2, 1, 3, 64, 64)).pooled).shape == (2, 16)
    assert contrastive.joint.embed_texts(["there is cardiomegaly", "no effusion"]).shape == (2, 16)

    reports = ["the heart is enlarged .", "lungs are clear .", "the heart is enlarged .", "lungs are clear ."]
    head = FindingsClassifier(["Cardiomegaly"], spatial=1.0)
    decoder = TransformerDecoder(WordTokenizer(threshold=1), dim=16, heads=2, ffn_dim=32, encoder_layers=1,
                                 decoder_layers=1, max_length=8)
    task = ReportGeneration(OpenClipImageEncoder("RN50", model_config=config, frozen=True), decoder,
                            guides=[PredictedFindings(head, tokens=True)], nlg_metrics=False, clinical_efficacy=False)
    decoder.prepare(reports)
    labels = torch.zeros(4, len(CHEXPERT_LABELS))
    labels[[0, 2], CHEXPERT_LABELS.index("Cardiomegaly")] = 1.0
    batch = {"ids": list("abcd"), "images": torch.randn(4, 1, 3, 64, 64, generator=torch.Generator().manual_seed(1)),
             "reports": reports, "labels": labels}
    optimizer = torch.optim.Adam([p for p in task.parameters() if p.requires_grad], lr=5e-3)
    task.train()
    losses = []
    for _ in range(30):
        loss = task.step_loss(task.encode(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_samples_name_the_findings_a_report_states():
    stated = stated_findings(["the heart is moderately enlarged . small left pleural effusion .", "there is no pneumothorax ."])
    assert stated[0] == "Cardiomegaly, Pleural Effusion"
    assert "Pneumothorax" not in stated[1]


def test_a_call_ratio_limit_keeps_a_barely_perceived_finding_rare():
    """Two positives among 100 studies, ranked 30th and 40th by the head: unlimited, the best F1
    calls 40 studies (F1 4/42 > 2/32); with max_call_ratio 1.5 no call among the top 3 is right, so
    none is made."""
    probs = torch.linspace(0.99, 0.01, 100).unsqueeze(1).repeat(1, 2)
    labels = torch.zeros(100, 2)
    labels[[29, 39], 0] = 1.0
    labels[[0, 1, 2, 50], 1] = 1.0  # a perceived finding: its best threshold calls 3 studies either way
    free, limited = best_f1_thresholds(probs, labels), best_f1_thresholds(probs, labels, max_call_ratio=1.5)
    assert (probs[:, 0] >= free[0]).sum() == 40
    assert (probs[:, 0] >= limited[0]).sum() == 0
    assert (probs[:, 1] >= free[1]).sum() == (probs[:, 1] >= limited[1]).sum() == 3
    # within the limit, still the best F1 of any threshold that respects it
    positive = labels[:, 1] == 1
    allowed = [t for t in probs[:, 1].tolist() if (probs[:, 1] >= t).sum() <= 1.5 * positive.sum()]
    assert f1_at(probs[:, 1], positive, limited[1].item()) == pytest.approx(
        max(f1_at(probs[:, 1], positive, t) for t in allowed))
    with pytest.raises(ValueError, match="at least 1"):
        best_f1_thresholds(probs, labels, max_call_ratio=0.5)
    with pytest.raises(ValueError, match="tune_thresholds"):
        PredictedFindings(FindingsClassifier(THREE), max_call_ratio=1.5)
