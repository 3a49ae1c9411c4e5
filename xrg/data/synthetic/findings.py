"""What a synthetic study shows: sampled findings with realistic prevalence and co-occurrence.

Findings are anatomy-free descriptions (side, zone, size words, relative positions in [0, 1]);
the renderer places them on each patient's lungs and the report writer words them. The same
per-finding samplers serve both the generative mode and `findings_from_labels`, which turns
CheXpert codes from a real report into findings to render.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

SIDES = ("right", "left")
ZONES = ("upper", "middle", "lower")
SIZES = ("small", "moderate", "large")
SEVERITIES = ("mild", "moderate", "severe")
DEVICES = ("endotracheal_tube", "central_line", "enteric_tube", "pacemaker")
CENTRAL_LINE_ROUTES = ("right_jugular", "right_subclavian", "left_subclavian")

# Share of studies with no pathology at all (CheXpert "No Finding"), and per-finding base rates
# among abnormal studies; co-occurrence is layered on top in `sample_findings`.
NORMAL_FRACTION = 0.40
BASE_RATES = {
    "cardiomegaly": 0.30, "wide_mediastinum": 0.04, "edema": 0.10, "effusion": 0.18,
    "opacity": 0.35, "atelectasis": 0.16, "pneumothorax": 0.07, "lesion": 0.08,
    "fracture": 0.05, "pleural_thickening": 0.03,
}


@dataclass
class Opacity:
    """Airspace disease in one zone. kind: consolidation | opacity | pneumonia."""

    kind: str
    side: str
    zone: str
    hedged: bool  # pneumonia worded as "may represent" rather than stated
    across: float  # lateral position within the lung, 0 medial .. 1 lateral
    extent: float  # 0 small .. 1 large
    depth: float  # anterior-posterior position for the lateral view, 0 anterior .. 1 posterior


@dataclass
class Atelectasis:
    side: str
    zone: str
    hedged: bool
    across: float
    tilt: float


@dataclass
class Lesion:
    kind: str  # nodule | mass
    side: str
    zone: str
    diameter_cm: float
    across: float
    down: float  # position within the zone, 0 top .. 1 bottom
    depth: float


@dataclass
class Findings:
    cardiomegaly: str | None = None  # severity
    wide_mediastinum: bool = False
    edema: str | None = None  # severity
    effusion: dict[str, str] = field(default_factory=dict)  # side -> size
    pneumothorax: dict[str, str] = field(default_factory=dict)  # side -> size
    pleural_thickening: str | None = None  # side
    opacities: list[Opacity] = field(default_factory=list)
    atelectasis: list[Atelectasis] = field(default_factory=list)
    lesion: Lesion | None = None
    fracture: dict | None = None  # {"side", "rib" (4..9), "across"}
    devices: dict[str, str] = field(default_factory=dict)  # device -> variant

    @property
    def is_normal(self) -> bool:
        return not any(v for k, v in vars(self).items() if k != "devices")

    def to_dict(self) -> dict:
        return asdict(self)


def _pick(rng: np.random.Generator, options, p=None):
    return options[int(rng.choice(len(options), p=p))]


def _side(rng: np.random.Generator) -> str:
    return _pick(rng, SIDES)


def sample_opacity(rng: np.random.Generator, kind: str | None = None, hedged: bool | None = None) -> Opacity:
    kind = kind or _pick(rng, ("consolidation", "opacity", "pneumonia"), p=(0.4, 0.4, 0.2))
    # Pneumonia is a clinical inference: most reports hedge it on top of a consolidation.
    hedged = (kind == "pneumonia" and rng.random() < 0.75) if hedged is None else hedged
    zone = _pick(rng, ZONES, p=(0.2, 0.3, 0.5))
    return Opacity(kind, _side(rng), zone, hedged, float(rng.uniform(0.25, 0.75)),
                   float(rng.uniform(0.3, 1.0)), float(rng.uniform(0.3, 0.9)))


def sample_atelectasis(rng: np.random.Generator, hedged: bool | None = None) -> Atelectasis:
    hedged = bool(rng.random() < 0.3) if hedged is None else hedged
    return Atelectasis(_side(rng), _pick(rng, ("middle", "lower"), p=(0.3, 0.7)), hedged,
                       float(rng.uniform(0.3, 0.7)), float(rng.uniform(-0.25, 0.25)))


def sample_lesion(rng: np.random.Generator) -> Lesion:
    kind = _pick(rng, ("nodule", "mass"), p=(0.7, 0.3))
    diameter = rng.uniform(1.2, 2.6) if kind == "nodule" else rng.uniform(3.5, 6.0)
    return Lesion(kind, _side(rng), _pick(rng, ZONES), round(float(diameter), 1),
                  float(rng.uniform(0.3, 0.75)), float(rng.uniform(0.2, 0.8)), float(rng.uniform(0.2, 0.8)))


def sample_effusion(rng: np.random.Generator, edema: bool = False) -> dict[str, str]:
    size = _pick(rng, SIZES, p=(0.5, 0.35, 0.15))
    if rng.random() < (0.7 if edema else 0.3):  # failure effusions are usually bilateral
        other = size if rng.random() < 0.6 else _pick(rng, SIZES[:2])
        return {"right": size, "left": other}
    return {_side(rng): size}


def sample_devices(rng: np.random.Generator, cardiomegaly: bool = False) -> dict[str, str]:
    devices: dict[str, str] = {}
    if rng.random() < 0.4:
        devices["endotracheal_tube"] = "oral"
        if rng.random() < 0.7:  # intubated patients usually also have a feeding tube
            devices["enteric_tube"] = "nasogastric"
    if rng.random() < 0.45:
        devices["central_line"] = _pick(rng, CENTRAL_LINE_ROUTES, p=(0.5, 0.3, 0.2))
    if rng.random() < (0.45 if cardiomegaly else 0.15):
        devices["pacemaker"] = _pick(rng, SIDES, p=(0.2, 0.8))
    if not devices:
        devices[_pick(rng, DEVICES)] = "default"
        devices = _fill_variants(rng, devices)
    return devices


def _fill_variants(rng: np.random.Generator, devices: dict[str, str]) -> dict[str, str]:
    variants = {"endotracheal_tube": ("oral",), "enteric_tube": ("nasogastric",),
                "central_line": CENTRAL_LINE_ROUTES, "pacemaker": SIDES}
    return {d: (_pick(rng, variants[d]) if v == "default" else v) for d, v in devices.items()}


def sample_fracture(rng: np.random.Generator) -> dict:
    return {"side": _side(rng), "rib": int(rng.integers(4, 10)), "across": float(rng.uniform(0.55, 0.8))}


def check_rates(rates: dict[str, float]) -> None:
    """`rates` overrides some of BASE_RATES: known findings, each a probability."""
    for name, rate in rates.items():
        if name not in BASE_RATES:
            raise ValueError(f"finding rate {name!r}: expected one of {', '.join(BASE_RATES)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"finding rate {name!r}: expected a probability in [0, 1], got {rate}")


def sample_findings(rng: np.random.Generator, rates: dict[str, float] | None = None) -> Findings:
    """One study's findings; about NORMAL_FRACTION of studies have none. `rates` replaces some of
    BASE_RATES (an enriched draw: e.g. {"fracture": 0.3} among abnormal studies)."""
    f = Findings()
    if rng.random() < NORMAL_FRACTION:
        return f
    r = BASE_RATES | (rates or {})
    while f.is_normal:  # an abnormal study shows at least one pathology
        f = _sample_abnormal(rng, r)
    return f


def _sample_abnormal(rng: np.random.Generator, r: dict[str, float]) -> Findings:
    f = Findings()
    if rng.random() < r["cardiomegaly"]:
        f.cardiomegaly = _pick(rng, SEVERITIES, p=(0.5, 0.35, 0.15))
    f.wide_mediastinum = bool(rng.random() < r["wide_mediastinum"])
    # Heart failure cluster: edema mostly with a big heart, effusions mostly with edema.
    if rng.random() < (0.35 if f.cardiomegaly else r["edema"]):
        f.edema = _pick(rng, SEVERITIES, p=(0.5, 0.35, 0.15))
    if rng.random() < (0.6 if f.edema else 0.35 if f.cardiomegaly else r["effusion"]):
        f.effusion = sample_effusion(rng, edema=f.edema is not None)
    if rng.random() < r["opacity"]:
        f.opacities.append(sample_opacity(rng))
        if rng.random() < 0.15:
            f.opacities.append(sample_opacity(rng))
    # Compressive atelectasis sits next to effusions.
    if rng.random() < (0.35 if f.effusion else r["atelectasis"]):
        f.atelectasis.append(sample_atelectasis(rng))
    if rng.random() < r["pneumothorax"]:
        f.pneumothorax = {_side(rng): _pick(rng, SIZES, p=(0.55, 0.3, 0.15))}
    if rng.random() < r["lesion"]:
        f.lesion = sample_lesion(rng)
    if rng.random() < r["fracture"]:
        f.fracture = sample_fracture(rng)
    if rng.random() < r["pleural_thickening"]:
        f.pleural_thickening = _side(rng)
    sick = bool(f.edema or f.pneumothorax or f.opacities or any(s != "small" for s in f.effusion.values()))
    if rng.random() < (0.45 if sick else 0.12):
        f.devices = sample_devices(rng, cardiomegaly=f.cardiomegaly is not None)
    return f


def findings_from_labels(labels: dict[str, int | None], rng: np.random.Generator) -> Findings:
    """Findings that show every positive (1) or uncertain (-1) label; details are sampled.

    Uncertain labels are drawn at their mildest (U-Ones: a hedged finding is usually visible).
    """
    shown = {name for name, code in labels.items() if code in (1, -1)}
    mild = {name for name, code in labels.items() if code == -1}
    f = Findings()
    if "Cardiomegaly" in shown:
        f.cardiomegaly = "mild" if "Cardiomegaly" in mild else _pick(rng, SEVERITIES, p=(0.5, 0.35, 0.15))
    f.wide_mediastinum = "Enlarged Cardiomediastinum" in shown
    if "Edema" in shown:
        f.edema = "mild" if "Edema" in mild else _pick(rng, SEVERITIES, p=(0.5, 0.35, 0.15))
    if "Pleural Effusion" in shown:
        f.effusion = sample_effusion(rng, edema=f.edema is not None)
        if "Pleural Effusion" in mild:
            f.effusion = {side: "small" for side in f.effusion}
    if "Pneumothorax" in shown:
        f.pneumothorax = {_side(rng): "small" if "Pneumothorax" in mild else _pick(rng, SIZES)}
    if "Pleural Other" in shown:
        f.pleural_thickening = _side(rng)
    for label, kind in (("Consolidation", "consolidation"), ("Lung Opacity", "opacity"), ("Pneumonia", "pneumonia")):
        if label in shown:
            f.opacities.append(sample_opacity(rng, kind=kind, hedged=label in mild))
    if "Atelectasis" in shown:
        f.atelectasis.append(sample_atelectasis(rng, hedged="Atelectasis" in mild))
    if "Lung Lesion" in shown:
        f.lesion = sample_lesion(rng)
    if "Fracture" in shown:
        f.fracture = sample_fracture(rng)
    if "Support Devices" in shown:
        f.devices = sample_devices(rng, cardiomegaly=f.cardiomegaly is not None)
    return f
