"""The block zoo: one folder per block kind, one base class per kind (see each `base.py`).

Importing this package imports every kind, so a recipe can name any block by its short class
name (`class_path: TimmImageEncoder`): LightningCLI finds it among the subclasses of the base
class the task's argument is typed with.
"""

from xrg.blocks import adapters, aligners, clues, decoders, encoders, findings, guides, retrieval  # noqa: F401
