"""Disease clues (TRRG): inject perceived diseases as embeddings, let them interact with the image."""

from xrg.blocks.clues.base import ClueInjector, ClueInteraction
from xrg.blocks.clues.injector import DiseaseClueInjector
from xrg.blocks.clues.interaction import MultiGranularClueInteraction

__all__ = ["ClueInjector", "ClueInteraction", "DiseaseClueInjector", "MultiGranularClueInteraction"]
