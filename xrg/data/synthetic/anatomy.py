"""Per-patient anatomy and exposure, plus the shared noise textures.

A `Patient` is a handful of numbers (thorax width, apex and diaphragm heights, heart size, rib
spacing, exposure); `phantom.py` draws from them. Lengths are in body-frame units where the
image spans [-1, 1]; the inner thoracic width 2 * `width` (~1.55) stands for ~28 cm.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

CM = 0.056  # body-frame units per centimetre
ZONE_SPANS = {"upper": (0.10, 0.36), "middle": (0.38, 0.62), "lower": (0.64, 0.88)}


@dataclass(frozen=True)
class Patient:
    scale: float  # body size on the detector
    shift: tuple[float, float]
    tilt: float  # in-plane rotation, radians
    width: float  # half inner thoracic width at its widest
    apex: float  # y of the lung apices
    dome_right: float  # y of the right hemidiaphragm's highest point
    dome_left: float
    dome_height: float  # how far the domes fall to the costophrenic sulci
    ctr: float  # cardiothoracic ratio of the normal heart
    mediastinum: float  # half-width of the upper mediastinum
    rib_spacing: float
    tissue: float  # soft-tissue attenuation at the body's thickest
    air: float  # how much the aerated lung darkens the image
    bone: float
    markings: float  # conspicuity of vessels
    contrast: float
    black: float  # attenuation mapped to black
    gamma: float
    noise: float

    def dome(self, side: str) -> float:
        return self.dome_right if side == "right" else self.dome_left

    def zone_y(self, zone: str, t: float, side: str = "right") -> float:
        """y inside a lung zone; t in [0, 1] from the zone's top to its bottom."""
        lo, hi = ZONE_SPANS[zone]
        return self.apex + (self.dome(side) - self.apex) * (lo + (hi - lo) * t)

    def across(self, t: float) -> float:
        """Lateral coordinate between the mediastinum (0) and the chest wall (1)."""
        return self.mediastinum + 0.05 + (self.width - self.mediastinum - 0.12) * t


def sample_patient(rng: np.random.Generator) -> Patient:
    u = rng.uniform
    dome_right = u(0.26, 0.36)
    return Patient(
        scale=u(0.88, 1.0), shift=(u(-0.04, 0.04), u(-0.03, 0.05)), tilt=u(-0.05, 0.05),
        width=u(0.72, 0.8), apex=u(-0.78, -0.68), dome_right=dome_right,
        dome_left=dome_right + u(0.02, 0.07), dome_height=u(0.12, 0.18), ctr=u(0.39, 0.47),
        mediastinum=u(0.07, 0.09), rib_spacing=u(0.1, 0.12),
        tissue=u(0.9, 1.05), air=u(0.58, 0.68), bone=u(0.85, 1.15), markings=u(0.08, 0.13),
        contrast=u(0.78, 0.95), black=u(-0.1, -0.02), gamma=u(0.85, 1.2), noise=u(0.01, 0.025),
    )


@lru_cache(maxsize=4)
def textures(size: int) -> dict[str, np.ndarray]:
    """Banks of 2x-size textures, cropped at a random offset per view.

    Drawing fresh noise per image would cost more than the rest of the rendering; a fixed bank
    (from a fixed seed, so outputs stay reproducible) cropped at per-study offsets looks the same.
    """
    rng = np.random.default_rng(0x5EED)
    n = 2 * size
    fy = np.fft.fftfreq(n)[:, None] * size
    fx = np.fft.rfftfreq(n)[None, :] * size
    freq = np.hypot(fy, fx)

    def filtered(response: np.ndarray) -> np.ndarray:
        spectrum = np.fft.rfft2(rng.standard_normal((n, n))) * response
        field = np.fft.irfft2(spectrum, s=(n, n))
        return ((field - field.mean()) / field.std()).astype(np.float32)

    # Vessels: thin bright ridges along zero crossings of band-passed noise.
    vessels = [np.clip(1.0 - np.abs(filtered(np.exp(-((freq - 14) / 6) ** 2))) / 0.6, 0, 1) ** 2
               for _ in range(3)]
    # Patchy airspace disease: smooth blobs in [0.4, 1.6].
    blobs = [np.clip(1.0 + 0.45 * filtered(np.exp(-(freq / 10) ** 2)), 0.4, 1.6) for _ in range(3)]
    # Quantum noise: nearly white, slightly correlated like a real detector.
    grain = [filtered(np.exp(-(freq / (0.35 * size)) ** 2)) for _ in range(3)]
    return {"vessels": np.stack(vessels), "blobs": np.stack(blobs), "grain": np.stack(grain)}


def crop(bank: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    k = int(rng.integers(len(bank)))
    r, c = (int(v) for v in rng.integers(0, size, 2))
    return bank[k, r:r + size, c:c + size]
