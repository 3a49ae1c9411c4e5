"""Frontal (PA) and lateral radiograph phantoms of one patient showing its findings.

Attenuation adds up along the beam, so each structure adds its density into a shared buffer:
soft tissue raises it, aerated lung lowers it, and anything that replaces air (fluid, consolidation,
a larger heart) raises it inside the lungs. That is all a radiograph is, and it makes every finding
visible the way a reader expects: an effusion whitens the base, a pneumothorax darkens the periphery
and erases its vessels. `conspicuity` scales finding densities (1 = clearly visible, 0.5 = subtle).
"""

from __future__ import annotations

import math

import numpy as np

from xrg.data.synthetic.anatomy import CM, Patient, crop, textures
from xrg.data.synthetic.canvas import Canvas, Window, add_ellipse, add_polyline, ramp
from xrg.data.synthetic.findings import Findings

SIDE_SIGN = {"right": -1.0, "left": 1.0}  # patient's right lies on the image's left (PA view)
EFFUSION_RISE = {"small": 0.1, "moderate": 0.25, "large": 0.5}
PNEUMOTHORAX_LINE = {"small": 0.74, "moderate": 0.56, "large": 0.36}  # cage radius^2 of the lung edge
HEART_CTR = {"mild": 0.56, "moderate": 0.62, "severe": 0.68}
EDEMA_DENSITY = {"mild": 0.22, "moderate": 0.32, "severe": 0.42}
_LUT_LEVELS = 1024


def render_views(patient: Patient, findings: Findings, size: int, views: int, rng: np.random.Generator,
                 conspicuity: float = 1.0) -> list[np.ndarray]:
    """uint8 images: [frontal] or [frontal, lateral]."""
    images = [_expose(_frontal(patient, findings, size, rng, conspicuity), patient, rng)]
    if views > 1:
        images.append(_expose(_lateral(patient, findings, size, rng, conspicuity), patient, rng))
    return images


def heart_half_width(patient: Patient, findings: Findings) -> float:
    ctr = HEART_CTR[findings.cardiomegaly] if findings.cardiomegaly else patient.ctr
    return ctr * patient.width


# ---------------------------------------------------------------------------------------- frontal
def _frontal(p: Patient, f: Findings, size: int, rng: np.random.Generator, k: float) -> Canvas:
    canvas = Canvas(size, scale=p.scale, shift=p.shift, tilt=p.tilt)
    bank = textures(size)
    vessels, blobs = crop(bank["vessels"], rng, size), crop(bank["blobs"], rng, size)
    _body(canvas, p, neck=0.28, half_width=p.width + 0.15)
    # The heart displaces aerated lung, so it is drawn as a hole in the air, not on top of it:
    # fluid or consolidation behind the heart can then never whiten a pixel twice.
    hw = heart_half_width(p, f)
    ry = 0.7 * hw + 0.05
    heart = _heart(canvas, 0.3 * hw, p.dome_right + 0.1 - 0.7 * ry, hw, ry, -0.15)
    lungs = np.zeros((size, size), np.float32)
    for side in ("right", "left"):
        _lung(canvas, p, f, side, vessels, heart, lungs, k)
    _mediastinum(canvas, p, f, top=p.dome_right + 0.1 - 1.7 * ry)
    _parenchyma(canvas, p, f, lungs, blobs, k, lateral=False)
    for points, width, density in _devices(p, f, lateral=False):
        add_polyline(canvas, points, width, density)
    if "pacemaker" in f.devices:
        sx = SIDE_SIGN[f.devices["pacemaker"]] * 0.55
        add_ellipse(canvas, sx, p.apex + 0.08, 0.08, 0.055, 1.4, solid=False)
    return canvas


def _body(canvas: Canvas, p: Patient, neck: float, half_width: float) -> None:
    win = canvas.full()
    shoulders = p.apex - 0.3
    rise = ramp(win.y - shoulders, 0.25)
    half = neck + (half_width - neck) * rise * (2.0 - rise)  # rounded shoulders
    rel = np.abs(win.x) / half
    # Thickest in the middle, thinning towards the flanks (a parabola is close to sqrt here).
    canvas.att += p.tissue * ramp(1.0 - rel, 0.05) * (1.0 - 0.45 * rel * rel)


def _heart(canvas: Canvas, x: float, y: float, rx: float, ry: float, tilt: float) -> np.ndarray:
    """Full-image heart mask; 0.85 of the air is displaced (some lung lies behind the heart)."""
    heart = np.zeros_like(canvas.att)
    add_ellipse(canvas.sibling(heart), x, y, rx, ry, 0.85, tilt=tilt, flat=True)
    return heart


def _lung(canvas: Canvas, p: Patient, f: Findings, side: str, vessels: np.ndarray, heart: np.ndarray,
          lungs: np.ndarray, k: float) -> None:
    sign = SIDE_SIGN[side]
    reach = p.width + 0.12
    dome = p.dome(side)
    win = canvas.window(min(0.0, sign * reach), max(0.0, sign * reach), p.apex - 0.15,
                        dome + p.dome_height + 0.15)
    lat, y = sign * win.x, win.y
    a, b = 0.46, 0.95
    cage_r2 = ((lat - (p.width - a)) / a) ** 2 + ((y - (p.apex + b)) / b) ** 2
    medial = p.mediastinum + (0.08 if f.wide_mediastinum else 0.0) * ramp(p.apex + 0.55 - y, 0.05)
    dome_y = dome + p.dome_height * ((lat - 0.4) / 0.4) ** 2
    inside = np.minimum(np.minimum((1.0 - cage_r2) * 0.22, dome_y - y), lat - medial)
    lung = ramp(inside, 2.5 * canvas.pixel) * (1.0 - heart[win.index])
    lungs[win.index] += lung
    att = canvas.att[win.index]

    # Vessels fade towards the periphery; a pneumothorax has none beyond its pleural line.
    marks = vessels[win.index] * np.clip(1.2 - lat / p.width, 0.15, 1.0)
    if side in f.pneumothorax:
        line = PNEUMOTHORAX_LINE[f.pneumothorax[side]]
        upper = lung * ramp(dome - 0.08 - y, 0.15)
        collapsed = ramp(cage_r2 - line, 0.01) * upper
        marks *= 1.0 - collapsed
        pleura = ramp(0.02 - np.abs(cage_r2 - line), 0.012) * upper
        att += k * p.air * (0.35 * pleura - 0.32 * collapsed)
    att += lung * (p.markings * marks - p.air)

    _ribs(att, p, f, side, lat, y, cage_r2, dome_y, k)
    if side in f.effusion:
        span = np.clip((lat - medial) / (p.width - medial), 0.0, 1.0)
        surface = dome + 0.12 - EFFUSION_RISE[f.effusion[side]] - 0.2 * span * span
        att += k * 0.9 * p.air * lung * ramp(y - surface, 0.05)
    if f.pleural_thickening == side:
        att += k * 0.35 * p.air * lung * ramp(cage_r2 - 0.9, 0.03)


def _ribs(att: np.ndarray, p: Patient, f: Findings, side: str, lat: np.ndarray, y: np.ndarray,
          cage_r2: np.ndarray, dome_y: np.ndarray, k: float) -> None:
    # Ribs overlying the upper abdomen are faint behind the liver and stomach.
    cage = ramp(1.1 - cage_r2, 0.04) * ramp(lat - 0.05, 0.03) * (0.3 + 0.7 * ramp(dome_y + 0.03 - y, 0.06))
    # Posterior ribs arch up from the spine then fall laterally; rib n is centred on phase n - 0.5.
    phase = (y + 0.53 * lat - 0.9 * lat * lat - (p.apex - 0.02)) * (1.0 / p.rib_spacing)
    broken = None
    if f.fracture and f.fracture["side"] == side:
        rib = f.fracture["rib"]
        at = p.across(f.fracture["across"])
        on_rib = np.abs(phase - (rib - 0.5)) < 0.6
        broken = on_rib & (np.abs(lat - at) < 0.02)
        phase = phase + 0.45 * (on_rib & (lat > at))  # the lateral fragment is displaced downwards
    band = ramp(0.2 - np.abs(phase - np.floor(phase) - 0.5), 0.06)
    if broken is not None:
        band = np.where(broken, 1.0 - k, 1.0) * band
    # Anterior ribs: fainter, sloping down towards the sternum.
    front = (y + 0.45 * lat - (p.apex + 0.25)) * (1.0 / (1.25 * p.rib_spacing))
    front_band = ramp(0.18 - np.abs(front - np.floor(front) - 0.5), 0.06) * ramp(lat - 0.3, 0.1)
    att += p.bone * cage * (0.12 * band + 0.045 * front_band)


def _mediastinum(canvas: Canvas, p: Patient, f: Findings, top: float) -> None:
    add_ellipse(canvas, p.mediastinum + 0.02, top - 0.12, 0.06, 0.06, 0.35 * p.tissue)  # aortic knob
    if f.wide_mediastinum:
        add_ellipse(canvas, 0.0, top - 0.2, p.mediastinum + 0.1, 0.28, 0.3 * p.tissue, solid=False)
    carina = top - 0.08
    trachea = [(0.0, -1.1), (0.0, carina)]
    for branch in ([(0.0, carina), (-0.14, carina + 0.14)], [(0.0, carina), (0.16, carina + 0.17)], trachea):
        add_polyline(canvas, branch, 0.028, -0.22)
    win = canvas.window(-0.08, 0.08, -1.2, 1.2)
    if win is not None:  # vertebral bodies with darker disc spaces
        discs = 0.75 + 0.25 * np.cos(win.y * (2 * math.pi / 0.105))
        canvas.att[win.index] += 0.12 * p.bone * ramp(0.07 - np.abs(win.x), 0.02) * discs
    for side, sign in SIDE_SIGN.items():
        lat0, lat1 = 0.04, 0.68
        win = canvas.window(min(sign * lat0, sign * lat1), max(sign * lat0, sign * lat1), p.apex - 0.2, p.apex + 0.1)
        if win is None:
            continue
        lat = sign * win.x
        centre = p.apex + 0.1 - 0.3 * lat + 0.2 * lat * lat
        clavicle = ramp(0.032 - np.abs(win.y - centre), 0.012) * ramp(lat1 - lat, 0.03) * ramp(lat - lat0, 0.02)
        canvas.att[win.index] += 0.2 * p.bone * clavicle
    if p.dome_left - p.dome_right > 0.035:  # gastric bubble under the left dome, when it shows
        add_ellipse(canvas, 0.4, p.dome_left + p.dome_height * 0.05 + 0.09, 0.09, 0.05, -0.25, solid=False)


def _parenchyma(canvas: Canvas, p: Patient, f: Findings, lungs: np.ndarray, blobs: np.ndarray,
                k: float, lateral: bool) -> None:
    """Findings inside the lungs: opacities, atelectasis, nodules, edema (both views)."""
    def where(side: str, across: float, depth: float) -> float:
        return -0.4 + 0.9 * depth if lateral else SIDE_SIGN[side] * p.across(across)

    patchy = blobs * lungs
    for o in f.opacities:
        extent = 0.1 + 0.1 * o.extent
        x, y = where(o.side, o.across, o.depth), p.zone_y(o.zone, 0.5, o.side)
        density = (0.6 if o.kind == "opacity" else 0.9) * p.air * k
        add_ellipse(canvas, x, y, extent * 1.2, extent, density, solid=False, texture=patchy)
    for a in f.atelectasis:
        x, y = where(a.side, a.across, 0.6), p.zone_y(a.zone, 0.5, a.side)
        win = canvas.window(x - 0.2, x + 0.2, y - 0.1, y + 0.1)
        if win is not None:
            band = ramp(0.025 - np.abs(win.y - y - a.tilt * (win.x - x)), 2 * canvas.pixel)
            canvas.att[win.index] += 0.8 * p.air * k * band * ramp(0.17 - np.abs(win.x - x), 0.05) * lungs[win.index]
    if f.lesion:
        lesion = f.lesion
        x = where(lesion.side, lesion.across, lesion.depth)
        y = p.zone_y(lesion.zone, lesion.down, lesion.side)
        radius = lesion.diameter_cm * CM / 2
        add_ellipse(canvas, x, y, radius, radius, 0.65 * p.air * k)
    if f.edema:
        density = EDEMA_DENSITY[f.edema] * p.air * k
        hilum = p.zone_y("middle", 0.2)
        centres = [0.05] if lateral else [SIDE_SIGN[s] * 0.2 for s in SIDE_SIGN]
        for x in centres:
            add_ellipse(canvas, x, hilum, 0.4, 0.5, density, solid=False, texture=patchy)


def _devices(p: Patient, f: Findings, lateral: bool) -> list[tuple[list[tuple[float, float]], float, float]]:
    """Polylines (points, width, density) of tubes, lines and leads in body coordinates."""
    carina = p.dome_right - 0.75
    paths = []
    if "endotracheal_tube" in f.devices:
        tip = carina - 0.12
        paths.append(([(-0.1, -1.1), (-0.02, -0.8), (0.02, tip)] if lateral else [(0.0, -1.1), (0.0, tip)], 0.02, 0.6))
    if "enteric_tube" in f.devices:
        stomach = p.dome_left + 0.12
        paths.append(([(0.0, -1.1), (0.18, -0.6), (0.2, p.dome_left), (-0.05, stomach + 0.05)] if lateral else
                      [(0.02, -1.1), (0.04, -0.3), (0.08, p.dome_left), (0.3, stomach)], 0.014, 0.6))
    if "central_line" in f.devices:
        route = f.devices["central_line"]
        svc = (-0.06, carina + 0.18)
        if lateral:
            start = [(-0.05, -1.1), (-0.12, -0.55)] if route == "right_jugular" else [(-0.45, p.apex), (-0.2, p.apex + 0.1)]
            paths.append((start + [(-0.1, svc[1])], 0.012, 0.55))
        else:
            sign = -1.0 if route.startswith("right") else 1.0
            start = [(-0.25, -1.1), (-0.12, p.apex)] if route == "right_jugular" else \
                [(sign * 0.75, p.apex + 0.02), (sign * 0.3, p.apex + 0.1), (sign * 0.08, p.apex + 0.3)]
            paths.append((start + [svc], 0.012, 0.55))
    if "pacemaker" in f.devices:
        box = (-0.62, p.apex + 0.08) if lateral else (SIDE_SIGN[f.devices["pacemaker"]] * 0.5, p.apex + 0.1)
        atrium = (-0.1, carina + 0.35) if lateral else (-0.1, carina + 0.38)
        ventricle = (-0.35, p.dome_right + 0.02) if lateral else (0.25, p.dome_right)
        vein = (-0.2, p.apex + 0.25) if lateral else (0.0, p.apex + 0.3)
        paths.append(([box, vein, atrium], 0.01, 0.9))
        paths.append(([box, vein, (atrium[0], atrium[1] - 0.1), ventricle], 0.01, 0.9))
    return paths


# ---------------------------------------------------------------------------------------- lateral
def _lateral(p: Patient, f: Findings, size: int, rng: np.random.Generator, k: float) -> Canvas:
    """Patient facing image left: x < 0 anterior. Both lungs overlap, so sides are not told apart."""
    shift = (p.shift[0] * 0.5 + rng.uniform(-0.03, 0.03), p.shift[1])
    canvas = Canvas(size, scale=p.scale, shift=shift, tilt=rng.uniform(-0.04, 0.04))
    bank = textures(size)
    vessels, blobs = crop(bank["vessels"], rng, size), crop(bank["blobs"], rng, size)
    _body(canvas, p, neck=0.3, half_width=0.68)
    dome = 0.5 * (p.dome_right + p.dome_left)
    win = canvas.window(-0.7, 0.75, p.apex - 0.15, dome + 0.6)
    x, y = win.x, win.y
    cage_r2 = ((x - 0.05) / 0.55) ** 2 + ((y - (p.apex + 0.95)) / 0.95) ** 2
    dome_y = dome + p.dome_height * ((x + 0.15) / 0.45) ** 2
    scale = heart_half_width(p, f) / (0.44 * p.width)
    rx, ry = 0.24 * scale, 0.26 * min(scale, 1.25)
    heart = _heart(canvas, -0.42 + rx, dome + 0.12 - ry, rx, ry, 0.5)
    lung = ramp(np.minimum((1.0 - cage_r2) * 0.25, dome_y - y), 2.5 * canvas.pixel) * (1.0 - heart[win.index])
    lungs = np.zeros((size, size), np.float32)
    lungs[win.index] = lung
    att = canvas.att[win.index]
    att += lung * (p.markings * vessels[win.index] - 0.85 * p.air)
    if f.effusion:
        rise = max(EFFUSION_RISE[s] for s in f.effusion.values())
        back = np.clip((x + 0.1) / 0.65, 0.0, 1.0)
        surface = dome + 0.3 - rise - 0.3 * back * back  # meniscus climbs the posterior sulcus
        att += k * 0.8 * p.air * lung * ramp(y - surface, 0.05)

    carina = p.dome_right - 0.75
    add_polyline(canvas, [(-0.08, -1.1), (-0.02, p.apex), (0.08, carina)], 0.03, -0.22)
    _lateral_bones(canvas, p, dome)
    _parenchyma(canvas, p, f, lungs, blobs, k, lateral=True)
    for points, width, density in _devices(p, f, lateral=True):
        add_polyline(canvas, points, width, density)
    if "pacemaker" in f.devices:
        add_ellipse(canvas, -0.64, p.apex + 0.08, 0.03, 0.07, 1.4, solid=False)
    return canvas


def _lateral_bones(canvas: Canvas, p: Patient, dome: float) -> None:
    win = canvas.window(0.35, 0.8, -1.2, 1.2)
    if win is not None:  # thoracic spine with a gentle kyphosis
        centre = 0.56 + 0.05 * (1.0 - win.y * win.y)
        body = ramp(0.08 - np.abs(win.x - centre), 0.015)
        discs = ramp(0.38 - np.abs(win.y * (1.0 / 0.105) % 1.0 - 0.5), 0.08)
        canvas.att[win.index] += 0.4 * p.bone * body * (0.4 + 0.6 * discs)
    win = canvas.window(-0.66, -0.4, p.apex - 0.1, dome)
    if win is not None:  # sternum
        front = -0.6 + 0.1 * (win.y - p.apex)
        canvas.att[win.index] += 0.15 * p.bone * ramp(0.025 - np.abs(win.x - front), 0.01)


# --------------------------------------------------------------------------------------- exposure
def _expose(canvas: Canvas, p: Patient, rng: np.random.Generator) -> np.ndarray:
    grain = crop(textures(canvas.size)["grain"], rng, canvas.size)
    gain = p.contrast * _LUT_LEVELS * 0.8
    level = canvas.att * gain
    level += grain * (p.noise * _LUT_LEVELS) - p.black * gain
    lut = np.round(255 * np.linspace(0.0, 1.0, _LUT_LEVELS) ** p.gamma).astype(np.uint8)
    return lut.take(level.astype(np.int32), mode="clip")  # the take clips under- and overexposure
