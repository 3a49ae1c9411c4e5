"""Find model weights offline: a local directory/file, or a snapshot already in the HF cache."""

from __future__ import annotations

import os
from pathlib import Path


class MissingWeightsError(FileNotFoundError):
    """Weights are not on this machine; the message says what to put where."""


def resolve_weights(name_or_path: str | os.PathLike, metric: str, hint: str) -> Path:
    """A local path as is, else the cached snapshot of hub repo `name_or_path`, never a download."""
    path = Path(name_or_path).expanduser()
    if path.exists():
        return path
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # probing must not wait on a network timeout
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(str(name_or_path), local_files_only=True))
    except Exception:  # any miss (not cached, bad repo id) ends in the same instruction
        cache = os.environ.get("HF_HOME", "~/.cache/huggingface")
        raise MissingWeightsError(
            f"{metric}: no weights for {str(name_or_path)!r}: it is neither a local path nor cached under {cache}/hub. "
            f"{hint}"
        ) from None
