"""xrg: a Lightning component zoo for chest X-ray radiology report generation."""

__version__ = "0.1.0"


def load(checkpoint_path, map_location="cpu"):
    """A trained task from one checkpoint file (config, weights and tokenizer are all inside)."""
    from xrg.loading import load as _load

    return _load(checkpoint_path, map_location)
