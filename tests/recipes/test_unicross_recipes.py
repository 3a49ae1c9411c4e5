"""The paper-size UniCrossAdapter recipe builds (random RN101, no download) and trains only what the
paper trains: adapters, neck, decoder and the text positional embedding."""

from pathlib import Path

import yaml
from jsonargparse import ArgumentParser

from xrg.tasks import ReportGeneration

RECIPES = Path(__file__).resolve().parents[2] / "recipes" / "unicrossadapter"


def build_model(recipe: str) -> ReportGeneration:
    model = yaml.safe_load((RECIPES / recipe).read_text())["model"]
    encoders = model["init_args"]["image_encoder"]["init_args"]
    for tower in ("image_encoder", "text_encoder"):
        encoders[tower]["init_args"]["pretrained"] = None  # random weights: the hub is out of reach
    parser = ArgumentParser()
    parser.add_subclass_arguments(ReportGeneration, "model")
    return parser.instantiate_classes(parser.parse_object({"model": model})).model


def test_iu_xray_recipe_trains_adapters_neck_decoder_and_text_positions_only():
    model = build_model("iu_xray.yaml")
    model.decoder.prepare(["the heart is normal .", "no effusion ."] * 3)
    encoder = model.image_encoder
    assert encoder.adapter.map_shapes == [(512, 28, 28), (1024, 14, 14), (2048, 7, 7)]
    assert encoder.text_encoder.dim == 512 and len(encoder.text_encoder.stages) == 12
    trainable = {name.split(".")[1] if name.startswith("image_encoder.") else name.split(".")[0]
                 for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"adapter", "neck", "text_encoder", "decoder"}
    text_trainable = [n for n, p in encoder.text_encoder.named_parameters() if p.requires_grad]
    assert text_trainable == ["tower.positional_embedding"]
    total = sum(p.numel() for p in model.parameters())
    frozen = sum(p.numel() for p in model.parameters() if not p.requires_grad)
    # CLIP RN101's two towers (~119M) stay frozen; the trained part is a minority of the whole.
    assert frozen > 100e6 and frozen / total > 0.5
    print(f"IU X-Ray recipe: {total - frozen:,} trainable of {total:,}")
