"""ConceptAligner: criteria loading, a trained tiny head separates its diseases, reload is exact."""

from __future__ import annotations

import pytest
import torch

from xrg.blocks.encoders.base import Features
from xrg.blocks.findings.concepts import ConceptAligner, load_criteria
from xrg.data.errors import DataError
from xrg.data.labels import CHEXPERT_LABELS
from xrg.tasks.findings import per_label_auc


pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_text_encoder():
    from xrg.blocks.encoders.hf_text import HFTextEncoder

    torch.manual_seed(0)
    return HFTextEncoder(config={"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
                                 "intermediate_size": 64}, frozen=True)


def test_shipped_criteria_cover_every_chexpert_observation():
    criteria = load_criteria("chexpert")
    assert list(dict.fromkeys(c.disease for c in criteria)) == list(CHEXPERT_LABELS)
    assert all(c.present != c.absent for c in criteria)


def test_bad_criteria_files_name_the_file_and_key(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("Cardiomegaly:\n  - name: heart size\n    present: big heart\n")
    with pytest.raises(DataError, match=r"bad.yaml: 'Cardiomegaly' criterion 0 .*absent"):
        load_criteria(path)
    with pytest.raises(DataError, match="shipped criteria"):
        load_criteria("no_such_criteria")


def _toy_batch(n: int, generator: torch.Generator):
    """Tokens carry disease k as a bump on channel k, so a head can learn every label."""
    labels = (torch.rand(n, 14, generator=generator) < 0.4).float()
    tokens = torch.randn(n, 6, 16, generator=generator) * 0.3
    tokens[:, :, :14] += 2 * labels.unsqueeze(1)
    labels[:, 5] = float("nan")  # blank, which counts as negative: Edema is never present
    return Features(tokens, tokens.mean(1)), labels


def test_trained_head_ranks_diseases_and_its_concepts_sit_on_the_right_anchor(tmp_path):
    torch.manual_seed(0)
    head = ConceptAligner(tiny_text_encoder(), 16, dim=32, heads=2, dropout=0.0)
    generator = torch.Generator().manual_seed(0)
    features, labels = _toy_batch(64, generator)
    optimizer = torch.optim.Adam(head.parameters(), lr=3e-3)
    first = None
    for _ in range(60):
        losses = head.total_loss(head.align(features), labels)
        optimizer.zero_grad()
        losses["loss"].backward()
        optimizer.step()
        first = first if first is not None else {k: v.item() for k, v in losses.items()}
    assert losses["alignment"].item() < 0.5 * first["alignment"]
    assert losses["classification"].item() < 0.5 * first["classification"]

    head.eval()
    test_features, test_labels = _toy_batch(64, generator)
    output = head.align(test_features)
    scores = per_label_auc(output.logits.sigmoid(), test_labels, head.label_names)
    assert "Edema" not in scores and len(scores) == 13  # one class only: no AUC
    assert sum(scores.values()) / len(scores) > 0.9
    # The criteria of a present disease read as present; the prompt names it with its criteria.
    present = output.criterion_probs[test_labels[:, head.disease_of] == 1].mean()
    absent = output.criterion_probs[test_labels[:, head.disease_of] == 0].mean()
    assert present > 0.7 > 0.3 > absent
    study = int((test_labels[:, 2] == 1).nonzero()[0])
    assert any(text.startswith("Cardiomegaly: the cardiac silhouette is enlarged")
               for text, _ in head.scored_concepts(output)[study])

    # Reload into a head built around a *different* text encoder: the saved anchors win.
    torch.save(head.state_dict(), tmp_path / "head.pt")
    torch.manual_seed(1)
    other = ConceptAligner(tiny_text_encoder().apply(_perturb), 16, dim=32, heads=2, dropout=0.0)
    other.load_state_dict(torch.load(tmp_path / "head.pt", weights_only=True))
    other.eval()
    assert torch.equal(other.align(test_features).logits, output.logits)


def _perturb(module):
    for parameter in module.parameters(recurse=False):
        parameter.data.add_(0.5)
