"""Where a finding was read: Grad-CAM heatmaps for every findings / concept / perception head.

Every such head (`FindingsHead`: RaDialog's classifier, RadAlign's concept aligner, TRRG's
zero-shot perception) reads the image encoder's features, so one mechanism serves them all:
run the encoder with a hook on its last feature map (`ImageEncoder.cam_layer`), take the
gradient of the finding's logit with respect to that map, weight each channel by its mean
gradient, sum, keep the positive part (Selvaraju et al., 2017). One backward pass per finding
serves the whole batch (studies are independent in eval mode). Maps are upsampled to the
model's input size and scaled to [0, 1] per view.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from xrg.blocks.findings.base import FindingsHead


def finding_heads(task: torch.nn.Module) -> list[FindingsHead]:
    """The task's findings heads, in module order (a head nested in a guide included)."""
    return [module for module in task.modules() if isinstance(module, FindingsHead)]


def finding_probabilities(task: torch.nn.Module, visual) -> list[dict[str, float]]:
    """Per study, the probability of every observation any head scores; where two heads score one
    observation, the first head in module order gives it."""
    rows: list[dict[str, float]] = [{} for _ in range(visual.pooled.shape[0])]
    for head in finding_heads(task):
        for row, probs in zip(rows, head(visual).sigmoid().float().tolist()):
            for name, p in zip(head.label_names, probs):
                row.setdefault(name, round(p, 4))
    return rows


def _as_map(output: Any) -> torch.Tensor:
    """The tensor a hooked module gave: a tensor, a tuple's first item or a model output's last_hidden_state."""
    if isinstance(output, torch.Tensor):
        return output
    if hasattr(output, "last_hidden_state"):
        return output.last_hidden_state
    return output[0]


def _cam(feature_map: torch.Tensor, gradient: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of `[N, C, h, w]` maps (or `[N, T, D]` tokens on a square grid after any class tokens) -> `[N, h, w]`."""
    if feature_map.dim() == 3:
        tokens = feature_map.shape[1]
        side = int(tokens**0.5)
        prefix = tokens - side * side
        if side == 0 or prefix > 8:
            raise ValueError(f"cannot lay {tokens} feature tokens on a square grid for a heatmap")
        feature_map = feature_map[:, prefix:].transpose(1, 2).unflatten(2, (side, side))
        gradient = gradient[:, prefix:].transpose(1, 2).unflatten(2, (side, side))
    weights = gradient.mean(dim=(2, 3), keepdim=True)
    return (weights * feature_map).sum(1).clamp_min(0)


def gradcam(task: torch.nn.Module, images: torch.Tensor, view_mask: torch.Tensor | None,
            wanted: list[list[str]]) -> list[dict[str, np.ndarray]]:
    """Per study, `{finding: [V, H, W] float32 in [0, 1]}` for the findings named in `wanted[study]`
    (V: the study's real views; H, W: the model's input size). Works under `torch.inference_mode`."""
    encoder = task.image_encoder
    layer = encoder.cam_layer()
    if layer is None:
        raise ValueError(f"{type(encoder).__name__} names no feature map (`cam_layer`), so it gives no heatmaps")
    heads = {name: (head, k) for head in reversed(finding_heads(task)) for k, name in enumerate(head.label_names)}
    unknown = sorted({name for names in wanted for name in names if name not in heads})
    if unknown:
        raise ValueError(f"no findings head of this model scores {unknown}; it scores {sorted(heads)}")
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda module, args, output: captured.append(_as_map(output)))
    batch, views = images.shape[:2]
    size = images.shape[-2:]
    results: list[dict[str, np.ndarray]] = [{} for _ in range(batch)]
    try:
        with torch.inference_mode(False), torch.enable_grad():
            # A clone made outside inference mode can carry gradients; asking for them on the input
            # makes the feature map differentiable even when every encoder weight is frozen.
            pixels = images.clone().requires_grad_(True)
            mask = None if view_mask is None else view_mask.clone()
            captured.clear()
            visual = encoder(pixels, mask)
            feature_map = captured[-1]
            logits = {id(head): head(visual) for head, _ in heads.values()}
            for name in dict.fromkeys(n for names in wanted for n in names):
                head, k = heads[name]
                studies = [b for b, names in enumerate(wanted) if name in names]
                score = logits[id(head)][studies, k].sum()
                gradient, = torch.autograd.grad(score, feature_map, retain_graph=True)
                cams = _cam(feature_map.detach().float(), gradient.float()).unflatten(0, (batch, views))
                for b in studies:
                    real = int(mask[b].sum()) if mask is not None else views
                    maps = F.interpolate(cams[b, :real].unsqueeze(1), size=size, mode="bilinear", align_corners=False)[:, 0]
                    peak = maps.flatten(1).amax(1).clamp_min(1e-12)[:, None, None]
                    results[b][name] = (maps / peak).cpu().numpy().astype(np.float32)
    finally:
        handle.remove()
    return results


def overlay(image: Image.Image, heatmap: np.ndarray, alpha: float = 0.5) -> Image.Image:
    """`heatmap` ([h, w] in [0, 1]) over the radiograph, at the radiograph's own resolution:
    a black-red-yellow scale whose opacity follows the heat, so a cold region shows the image."""
    base = np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0
    heat = Image.fromarray(np.clip(heatmap * 255, 0, 255).astype(np.uint8))
    heat = np.asarray(heat.resize(image.size, Image.BILINEAR), dtype=np.float32)[..., None] / 255.0
    colour = np.concatenate([np.clip(3 * heat, 0, 1), np.clip(3 * heat - 1, 0, 1), np.clip(3 * heat - 2, 0, 1)], -1)
    blend = alpha * heat
    return Image.fromarray(np.round(255 * ((1 - blend) * base + blend * colour)).astype(np.uint8))
