"""Radiology-style reports for synthetic findings, with the CheXpert codes the text implies.

Every sentence is emitted together with the labels it asserts (1 stated, 0 negated, -1 hedged),
so the labels cannot drift from the words. Codes merge as the CheXpert labeler aggregates
mentions: positive beats uncertain beats negative. "No Finding" is then 1 when nothing but
support devices is positive or uncertain, and blank otherwise.
"""

from __future__ import annotations

import numpy as np

from xrg.data.labels import BLANK, CHEXPERT_LABELS, NEGATIVE, POSITIVE, UNCERTAIN
from xrg.data.synthetic.findings import Findings

_PRIORITY = {POSITIVE: 3, UNCERTAIN: 2, NEGATIVE: 1, BLANK: 0}
_ADVERB = {"mild": "mildly", "moderate": "moderately", "severe": "markedly"}

HEART_ENLARGED = ("The heart is {adv} enlarged.", "{Sev} cardiomegaly.", "There is {sev} cardiomegaly.",
                  "The cardiac silhouette is {adv} enlarged.", "{Sev} enlargement of the cardiac silhouette.")
HEART_NORMAL = ("The heart is normal in size.", "Heart size is within normal limits.", "Normal heart size.",
                "The heart size is normal.")
MEDIASTINUM_NORMAL = ("The mediastinal contours are normal.", "The mediastinum is unremarkable.",
                      "Normal mediastinal contour.")
BOTH_NORMAL = ("Heart size and mediastinal contours are normal.", "Normal heart size and mediastinal contour.",
               "The heart and mediastinum are within normal limits.")
WIDE_MEDIASTINUM = ("The mediastinum is widened.", "Widened superior mediastinum.",
                    "The mediastinal silhouette is enlarged.")
LUNGS_CLEAR = ("The lungs are clear.", "Lungs are clear bilaterally.", "The lungs are well expanded and clear.",
               "Clear lungs.")
OVERALL_NORMAL = ("No acute cardiopulmonary abnormality.", "No acute cardiopulmonary disease.",
                  "No acute cardiopulmonary process.")
BONES_NORMAL = ("The osseous structures are intact.", "No acute osseous abnormality.",
                "Visualized osseous structures are unremarkable.", "Bony structures are within normal limits.")

# (template, {label: code}) - the codes a labeler reads off that sentence.
OPACITY = {
    "consolidation": (("There is focal consolidation in the {loc}.", {"Consolidation": 1}),
                      ("Airspace consolidation in the {loc}.", {"Consolidation": 1}),
                      ("Consolidation is present in the {loc}.", {"Consolidation": 1})),
    "opacity": (("Patchy opacity in the {loc}.", {"Lung Opacity": 1}),
                ("There is an airspace opacity in the {loc}.", {"Lung Opacity": 1}),
                ("Hazy opacity projects over the {loc}.", {"Lung Opacity": 1})),
    "pneumonia": (("Dense consolidation in the {loc} consistent with pneumonia.", {"Consolidation": 1, "Pneumonia": 1}),
                  ("{Loc} pneumonia.", {"Pneumonia": 1})),
    "pneumonia_hedged": (("Consolidation in the {loc}, concerning for pneumonia.", {"Consolidation": 1, "Pneumonia": -1}),
                         ("Airspace opacity in the {loc} may represent pneumonia.", {"Lung Opacity": 1, "Pneumonia": -1}),
                         ("Focal consolidation in the {loc}; pneumonia cannot be excluded.", {"Consolidation": 1, "Pneumonia": -1})),
}
ATELECTASIS = ((("Linear atelectasis at the {loc}.", {"Atelectasis": 1}),
                ("Plate-like atelectasis in the {loc}.", {"Atelectasis": 1}),
                ("There is subsegmental atelectasis in the {loc}.", {"Atelectasis": 1})),
               (("Linear opacity at the {loc}, likely atelectasis.", {"Lung Opacity": 1, "Atelectasis": -1}),
                ("Streaky opacity in the {loc} which may reflect atelectasis.", {"Lung Opacity": 1, "Atelectasis": -1})))
# "Haziness" is itself a lung-opacity mention for a CheXpert-style labeler, so that phrasing
# carries Lung Opacity too and labels.json agrees with what `xrg label` reads in the text.
EDEMA = (("{Sev} pulmonary edema.", {"Edema": 1}),
         ("There is {sev} interstitial pulmonary edema.", {"Edema": 1}),
         ("Bilateral perihilar haziness consistent with {sev} pulmonary edema.", {"Edema": 1, "Lung Opacity": 1}))
NODULE = ("There is a {cm} cm nodule in the {loc}.", "A {cm} cm pulmonary nodule projects over the {loc}.",
          "{Cm} cm rounded nodule in the {loc}.")
MASS = ("There is a {cm} cm mass in the {loc}.", "A large {cm} cm mass occupies the {loc}.")
EFFUSION_ONE = ("{Size} {side} pleural effusion.", "There is a {size} {side} pleural effusion.",
                "A {size} {side} pleural effusion is present.")
EFFUSION_SMALL = ("Blunting of the {side} costophrenic angle consistent with a small pleural effusion.",)
EFFUSION_BOTH = ("{Size} bilateral pleural effusions.", "There are {size} bilateral pleural effusions.")
EFFUSION_MIXED = ("{Right} right and {left} left pleural effusions.",)
PNEUMOTHORAX = ("{Size} {side} pneumothorax.", "There is a {size} {side} apical pneumothorax.",
                "A {size} {side}-sided pneumothorax is present.")
PLEURAL_THICKENING = ("{Side} apical pleural thickening.", "Mild {side} pleural thickening.")
FRACTURE = ("There is an acute fracture of the {side} {nth} rib.", "Displaced {side} {nth} rib fracture.",
            "Fracture of the lateral {side} {nth} rib is noted.")
DEVICES = {
    "endotracheal_tube": ("Endotracheal tube tip terminates {cm} cm above the carina.",
                          "An endotracheal tube is in place with its tip {cm} cm above the carina."),
    "enteric_tube": ("Enteric tube courses below the diaphragm into the stomach.",
                     "Nasogastric tube tip is in the stomach."),
    "central_line": ("{Route} central venous catheter with tip in the SVC.",
                     "{Route} central line terminates in the superior vena cava."),
    "pacemaker": ("{Side} chest wall pacemaker with leads in the right atrium and right ventricle.",
                  "Dual-lead cardiac pacemaker from the {side} chest wall."),
}
ROUTES = {"right_jugular": "right internal jugular", "right_subclavian": "right subclavian",
          "left_subclavian": "left subclavian"}
# Words for the absent findings a report may rule out, and how often each is ruled out.
NEGATABLE = {
    "Pneumothorax": (("pneumothorax",), 0.85),
    "Pleural Effusion": (("pleural effusion", "effusion"), 0.85),
    "Consolidation": (("focal consolidation", "airspace consolidation", "consolidation"), 0.6),
    "Edema": (("pulmonary edema", "edema"), 0.25),
    "Lung Opacity": (("focal airspace disease", "focal airspace opacity"), 0.2),
    "Lung Lesion": (("suspicious pulmonary nodules", "nodules or masses"), 0.1),
    "Fracture": (("displaced rib fracture", "acute fracture"), 0.15),
}
NEGATION = ("No {items}.", "There is no {items}.", "Negative for {items}.", "No evidence of {items}.")
_ORDINAL = {4: "4th", 5: "5th", 6: "6th", 7: "7th", 8: "8th", 9: "9th"}


def location(side: str, zone: str, rng: np.random.Generator) -> str:
    if zone == "middle":
        options = ("right middle lobe", "right midlung") if side == "right" else ("lingula", "left midlung")
    elif zone == "upper":
        options = (f"{side} upper lobe", f"{side} upper lung", f"{side} lung apex")
    else:
        options = (f"{side} lower lobe", f"{side} lung base", f"{side} base")
    return _choice(rng, options)


def _choice(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _fill(template: str, **words) -> str:
    words |= {k.capitalize(): str(v).capitalize() for k, v in words.items()}
    text = template.format(**words)
    return text[0].upper() + text[1:]


class _Report:
    def __init__(self) -> None:
        self.sentences: list[tuple[float, str]] = []
        self.labels: dict[str, int | None] = dict.fromkeys(CHEXPERT_LABELS, BLANK)

    def say(self, order: float, text: str, labels: dict[str, int] | None = None) -> None:
        self.sentences.append((order, text))
        for name, code in (labels or {}).items():
            if _PRIORITY[code] > _PRIORITY[self.labels[name]]:
                self.labels[name] = code


def write_report(findings: Findings, rng: np.random.Generator) -> tuple[str, dict[str, int | None]]:
    """Report text and its 14 CheXpert codes; sentence order and wording vary per study."""
    r = _Report()
    jitter = lambda: float(rng.uniform(0.0, 0.8))  # noqa: E731 - sections keep a loose order
    heart_first = rng.random() < 0.6
    heart_at, lungs_at = (0.0, 1.0) if heart_first else (1.0, 0.0)
    devices_at = -1.0 if rng.random() < 0.5 else 4.0
    _heart(r, findings, rng, heart_at + jitter())
    _lungs(r, findings, rng, lungs_at, jitter)
    _pleura(r, findings, rng, 2.0 + jitter())
    _bones(r, findings, rng, 3.0 + jitter())
    for device, variant in findings.devices.items():
        words = {"cm": _choice(rng, (3, 4, 5)), "route": ROUTES.get(variant, ""), "side": variant}
        r.say(devices_at + jitter(), _fill(_choice(rng, DEVICES[device]), **words), {"Support Devices": 1})
    _negatives(r, rng, 2.5 + jitter())
    if findings.is_normal and rng.random() < 0.4:
        r.say(5.0, _choice(rng, OVERALL_NORMAL))
    pathology = [n for n in CHEXPERT_LABELS if n not in ("No Finding", "Support Devices")]
    if not any(r.labels[n] in (POSITIVE, UNCERTAIN) for n in pathology):
        r.labels["No Finding"] = POSITIVE
    text = " ".join(t for _, t in sorted(r.sentences, key=lambda s: s[0]))
    return text, r.labels


def _heart(r: _Report, f: Findings, rng: np.random.Generator, at: float) -> None:
    if f.cardiomegaly:
        words = {"sev": {"severe": "marked"}.get(f.cardiomegaly, f.cardiomegaly), "adv": _ADVERB[f.cardiomegaly]}
        r.say(at, _fill(_choice(rng, HEART_ENLARGED), **words), {"Cardiomegaly": 1})
    if f.wide_mediastinum:
        r.say(at + 0.01, _choice(rng, WIDE_MEDIASTINUM), {"Enlarged Cardiomediastinum": 1})
    if f.cardiomegaly and not f.wide_mediastinum and rng.random() < 0.4:
        r.say(at + 0.01, _choice(rng, MEDIASTINUM_NORMAL), {"Enlarged Cardiomediastinum": 0})
    elif not f.cardiomegaly and f.wide_mediastinum:
        r.say(at, _choice(rng, HEART_NORMAL), {"Cardiomegaly": 0})
    elif not f.cardiomegaly and rng.random() < 0.9:
        if rng.random() < 0.5:
            r.say(at, _choice(rng, BOTH_NORMAL), {"Cardiomegaly": 0, "Enlarged Cardiomediastinum": 0})
        else:
            r.say(at, _choice(rng, HEART_NORMAL), {"Cardiomegaly": 0})


def _lungs(r: _Report, f: Findings, rng: np.random.Generator, at: float, jitter) -> None:
    for o in f.opacities:
        kind = "pneumonia_hedged" if o.kind == "pneumonia" and o.hedged else o.kind
        template, labels = _choice(rng, OPACITY[kind])
        r.say(at + jitter(), _fill(template, loc=location(o.side, o.zone, rng)), labels)
    for a in f.atelectasis:
        template, labels = _choice(rng, ATELECTASIS[int(a.hedged)])
        r.say(at + jitter(), _fill(template, loc=location(a.side, a.zone, rng)), labels)
    if f.edema:
        template, labels = _choice(rng, EDEMA)
        r.say(at + jitter(), _fill(template, sev=f.edema), labels)
    if f.lesion:
        bank = NODULE if f.lesion.kind == "nodule" else MASS
        text = _fill(_choice(rng, bank), cm=f.lesion.diameter_cm, loc=location(f.lesion.side, f.lesion.zone, rng))
        r.say(at + jitter(), text, {"Lung Lesion": 1})
    if not (f.opacities or f.atelectasis or f.edema or f.lesion or f.pneumothorax) and rng.random() < 0.85:
        r.say(at, _choice(rng, LUNGS_CLEAR))


def _pleura(r: _Report, f: Findings, rng: np.random.Generator, at: float) -> None:
    eff = f.effusion
    if len(eff) == 2 and eff["right"] == eff["left"]:
        r.say(at, _fill(_choice(rng, EFFUSION_BOTH), size=eff["right"]), {"Pleural Effusion": 1})
    elif len(eff) == 2:
        r.say(at, _fill(_choice(rng, EFFUSION_MIXED), right=eff["right"], left=eff["left"]), {"Pleural Effusion": 1})
    for side, size in eff.items() if len(eff) == 1 else ():
        bank = EFFUSION_ONE + EFFUSION_SMALL if size == "small" else EFFUSION_ONE
        r.say(at, _fill(_choice(rng, bank), size=size, side=side), {"Pleural Effusion": 1})
    for side, size in f.pneumothorax.items():
        r.say(at, _fill(_choice(rng, PNEUMOTHORAX), size=size, side=side), {"Pneumothorax": 1})
    if f.pleural_thickening:
        r.say(at + 0.1, _fill(_choice(rng, PLEURAL_THICKENING), side=f.pleural_thickening), {"Pleural Other": 1})


def _bones(r: _Report, f: Findings, rng: np.random.Generator, at: float) -> None:
    if f.fracture:
        words = {"side": f.fracture["side"], "nth": _ORDINAL[f.fracture["rib"]]}
        r.say(at, _fill(_choice(rng, FRACTURE), **words), {"Fracture": 1})
    elif rng.random() < 0.45:
        r.say(at, _choice(rng, BONES_NORMAL))


def _negatives(r: _Report, rng: np.random.Generator, at: float) -> None:
    """Rule out absent key findings, in one or two sentences ("No pneumothorax or effusion.")."""
    airspace = ("Lung Opacity", "Consolidation", "Pneumonia")
    # "No focal airspace disease" beside a stated opacity would contradict the report.
    blocked = set(airspace) if any(r.labels[n] in (POSITIVE, UNCERTAIN) for n in airspace) else set()
    absent = [name for name, (_, rate) in NEGATABLE.items()
              if r.labels[name] is BLANK and name not in blocked and rng.random() < rate]
    if not absent:
        return
    order = list(rng.permutation(len(absent)))
    absent = [absent[i] for i in order]
    cut = len(absent) if len(absent) < 3 or rng.random() < 0.6 else int(rng.integers(1, len(absent)))
    for group in (absent[:cut], absent[cut:]):
        if group:
            words = [_choice(rng, NEGATABLE[name][0]) for name in group]
            items = words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]
            r.say(at + 0.01 * len(r.sentences), _fill(_choice(rng, NEGATION), items=items), dict.fromkeys(group, 0))
