"""What the synthetic studies show and say: findings change the right pixels, reports match labels."""

from __future__ import annotations

import re

import numpy as np
import pytest

from xrg.data.labels import CHEXPERT_LABELS
from xrg.data.synthetic import Findings, findings_from_labels, sample_findings, write_report
from xrg.data.synthetic.anatomy import sample_patient
from xrg.data.synthetic.canvas import Canvas
from xrg.data.synthetic.findings import Lesion
from xrg.data.synthetic.phantom import PNEUMOTHORAX_LINE, heart_half_width, render_views

SIZE = 128


def _render(findings: Findings, seed: int = 7) -> tuple[np.ndarray, object, Canvas]:
    """Frontal image of one fixed patient; identical RNG draws, so only the findings differ."""
    patient = sample_patient(np.random.default_rng(seed))
    image = render_views(patient, findings, SIZE, 1, np.random.default_rng(seed + 1))[0].astype(np.float32)
    geometry = Canvas(SIZE, scale=patient.scale, shift=patient.shift, tilt=patient.tilt)
    return image, patient, geometry


def _patch(image: np.ndarray, geometry: Canvas, x: float, y: float, radius: int = 3) -> np.ndarray:
    col, row = (int(v) for v in geometry.to_pixel(x, y))
    return image[row - radius:row + radius + 1, col - radius:col + radius + 1]


def test_findings_leave_the_rest_of_the_image_alone():
    normal, *_ = _render(Findings())
    again, *_ = _render(Findings())
    assert np.array_equal(normal, again)
    effusion, *_ = _render(Findings(effusion={"right": "moderate"}))
    changed = np.abs(effusion - normal) > 0
    assert changed.any() and not changed[:, SIZE // 2 + 10:].any()  # the left hemithorax is untouched


def test_cardiomegaly_widens_the_heart():
    normal, patient, geometry = _render(Findings())
    big, *_ = _render(Findings(cardiomegaly="severe"))
    hw_normal, hw_big = heart_half_width(patient, Findings()), heart_half_width(patient, Findings(cardiomegaly="severe"))
    assert hw_big / patient.width > 0.6 > 0.5 > hw_normal / patient.width  # CTR > 0.5 only when enlarged
    # Between the normal and the enlarged left heart border, lung turns into heart: brighter.
    y = patient.dome_right - 0.1
    x = 0.3 * hw_normal + 0.5 * (hw_normal + hw_big)
    assert (_patch(big, geometry, x, y) - _patch(normal, geometry, x, y)).mean() > 25
    # Well away from the heart nothing moves.
    assert np.array_equal(_patch(big, geometry, -0.5, patient.apex + 0.2), _patch(normal, geometry, -0.5, patient.apex + 0.2))


def test_effusion_whitens_the_costophrenic_angle_of_its_side():
    normal, patient, geometry = _render(Findings())
    wet, *_ = _render(Findings(effusion={"left": "moderate"}))
    angle = (0.7 * patient.width, patient.dome_left - 0.03)  # lateral base, just above the dome
    assert (_patch(wet, geometry, *angle) - _patch(normal, geometry, *angle)).mean() > 30
    right_angle = (-angle[0], patient.dome_right - 0.03)
    assert np.array_equal(_patch(wet, geometry, *right_angle), _patch(normal, geometry, *right_angle))


def test_pneumothorax_darkens_the_periphery_behind_a_pleural_line():
    normal, patient, geometry = _render(Findings())
    ptx, *_ = _render(Findings(pneumothorax={"right": "large"}))
    y = patient.apex + 0.55
    edge = (-(patient.width - 0.14), y)  # inside the lung, beyond the pleural line
    assert (_patch(normal, geometry, *edge) - _patch(ptx, geometry, *edge)).mean() > 10  # air without lung
    # The visceral pleural line: where the cage-ellipse radius^2 equals the large-PTX threshold.
    centre, a, b = patient.width - 0.46, 0.46, 0.95
    line = centre + a * np.sqrt(PNEUMOTHORAX_LINE["large"] - ((y - (patient.apex + b)) / b) ** 2)
    diff = ptx - normal
    at_line = _patch(diff, geometry, -line, y, 1).max()
    beyond = _patch(diff, geometry, -(line + 0.06), y, 1).mean()
    assert at_line > beyond + 10


def test_nodule_is_a_bright_round_spot_where_placed():
    lesion = Lesion("nodule", "left", "upper", 2.5, across=0.5, down=0.5, depth=0.5)
    normal, patient, geometry = _render(Findings())
    spot, *_ = _render(Findings(lesion=lesion))
    x, y = patient.across(0.5), patient.zone_y("upper", 0.5, "left")
    assert (_patch(spot, geometry, x, y, 1) - _patch(normal, geometry, x, y, 1)).mean() > 25


def test_devices_and_lateral_view_show_findings():
    patient = sample_patient(np.random.default_rng(1))
    plain = render_views(patient, Findings(), SIZE, 2, np.random.default_rng(2))
    tubes = render_views(patient, Findings(devices={"endotracheal_tube": "oral", "pacemaker": "left"}), SIZE, 2,
                         np.random.default_rng(2))
    wet = render_views(patient, Findings(effusion={"right": "large", "left": "large"}), SIZE, 2,
                       np.random.default_rng(2))
    for view in (0, 1):
        assert (tubes[view].astype(int) - plain[view] > 40).sum() > 20
        assert (wet[view].astype(int) - plain[view]).mean() > 2


# ------------------------------------------------------------------------------------ reports
# Words a CheXpert-style labeler keys on, per label; "No Finding" is derived, not mentioned.
KEYWORDS = {
    "Enlarged Cardiomediastinum": r"mediastin", "Cardiomegaly": r"cardiomegaly|heart|cardiac silhouette",
    "Lung Lesion": r"nodule|mass", "Lung Opacity": r"opacity|airspace disease|haziness", "Edema": r"edema",
    "Consolidation": r"consolidation", "Pneumonia": r"pneumonia", "Atelectasis": r"atelectasis",
    "Pneumothorax": r"pneumothorax", "Pleural Effusion": r"effusion", "Pleural Other": r"pleural thickening",
    "Fracture": r"fracture", "Support Devices": r"tube|line|catheter|pacemaker",
}
NEGATION = re.compile(r"\b(no|negative for|normal|within normal limits|unremarkable)\b")
HEDGE = re.compile(r"may|likely|concerning|cannot be excluded|possible")


@pytest.fixture(scope="module")
def reports():
    out = []
    for i in range(400):
        rng = np.random.default_rng([11, i])
        findings = sample_findings(rng)
        out.append((findings, *write_report(findings, rng)))
    return out


def test_every_code_is_backed_by_a_sentence(reports):
    for findings, text, labels in reports:
        assert list(labels) == list(CHEXPERT_LABELS)
        sentences = [s.lower() for s in text.split(". ")]
        for name, code in labels.items():
            if name == "No Finding" or code is None:
                continue
            said = [s for s in sentences if re.search(KEYWORDS[name], s)]
            assert said, (name, text)
            if code == 0:
                assert any(NEGATION.search(s) for s in said), (name, text)
            elif code == -1:
                assert any(HEDGE.search(s) for s in said), (name, text)
            else:
                assert any(not s.startswith(("no ", "there is no", "negative for", "no evidence")) for s in said)


def test_labels_follow_the_findings(reports):
    for findings, text, labels in reports:
        assert (labels["Cardiomegaly"] == 1) == bool(findings.cardiomegaly), text
        assert (labels["Pleural Effusion"] == 1) == bool(findings.effusion), text
        assert (labels["Pneumothorax"] == 1) == bool(findings.pneumothorax), text
        assert (labels["Edema"] == 1) == bool(findings.edema), text
        assert (labels["Lung Lesion"] == 1) == (findings.lesion is not None), text
        assert (labels["Fracture"] == 1) == (findings.fracture is not None), text
        assert (labels["Support Devices"] == 1) == bool(findings.devices), text
        assert (labels["No Finding"] == 1) == findings.is_normal, text
        assert labels["No Finding"] in (1, None)
        for side in findings.effusion:
            assert side in text or "bilateral" in text


def test_prevalence_and_cooccurrence():
    sampled = [sample_findings(np.random.default_rng([5, i])) for i in range(3000)]
    normal = np.mean([f.is_normal for f in sampled])
    assert 0.36 < normal < 0.44
    edema = [f for f in sampled if f.edema]
    with_cardiomegaly = np.mean([bool(f.cardiomegaly) for f in edema])
    assert with_cardiomegaly > 2 * np.mean([bool(f.cardiomegaly) for f in sampled])
    sick = [f for f in sampled if f.edema or f.pneumothorax or f.opacities]
    assert np.mean([bool(f.devices) for f in sick]) > 2 * np.mean([bool(f.devices) for f in sampled if not f.is_normal and f not in sick])


def test_reports_are_not_one_template(reports):
    texts = [t for _, t, _ in reports]
    assert len(set(texts)) > 0.8 * len(texts)
    normal = {t for f, t, _ in reports if f.is_normal}
    assert len(normal) > 30
    first_sentences = {t.split(". ")[0] for t in texts}
    assert len(first_sentences) > 25


def test_findings_from_labels_show_positive_and_uncertain_only():
    rng = np.random.default_rng(0)
    labels = dict.fromkeys(CHEXPERT_LABELS) | {"Cardiomegaly": 1, "Edema": -1, "Pneumothorax": 0, "Fracture": 1}
    findings = findings_from_labels(labels, rng)
    assert findings.cardiomegaly and findings.edema == "mild" and findings.fracture
    assert not findings.pneumothorax and not findings.effusion and not findings.devices
