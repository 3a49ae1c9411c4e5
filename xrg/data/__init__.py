"""Data: annotation formats, cleaning, tokenizers, transforms, the DataModule, the synthetic benchmark."""

from xrg.data.annotation import Study, read_annotation, read_labels
from xrg.data.datamodule import ReportDataModule, SyntheticBenchmark
from xrg.data.errors import DataError
from xrg.data.labels import CHEXPERT_5, CHEXPERT_LABELS

__all__ = [
    "CHEXPERT_5",
    "CHEXPERT_LABELS",
    "DataError",
    "ReportDataModule",
    "Study",
    "SyntheticBenchmark",
    "read_annotation",
    "read_labels",
]
