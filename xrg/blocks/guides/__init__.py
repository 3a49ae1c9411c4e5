"""Guides: what conditions a report besides the image (findings, disease clues, concepts,
retrieved reports, the prior study); see `base.py`."""

from xrg.blocks.guides.base import Encoded, Guidance, Guide
from xrg.blocks.guides.clues import DiseaseClues
from xrg.blocks.guides.concepts import RecognisedConcepts
from xrg.blocks.guides.findings import PredictedFindings
from xrg.blocks.guides.prior import PriorStudy
from xrg.blocks.guides.retrieved import RetrievedReports

__all__ = ["DiseaseClues", "Encoded", "PredictedFindings", "Guidance", "PriorStudy", "Guide", "RecognisedConcepts", "RetrievedReports"]
