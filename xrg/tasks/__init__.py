"""LightningModules, one per training objective."""

from xrg.tasks.base import StageInit, XrgTask
from xrg.tasks.report_generation import ReportGeneration

__all__ = ["ReportGeneration", "StageInit", "XrgTask"]

from xrg.tasks.contrastive import ContrastivePretraining  # noqa: E402

__all__ += ["ContrastivePretraining"]

from xrg.tasks.trrg import TRRG  # noqa: E402

__all__ += ["TRRG"]
from xrg.tasks.findings import FindingsClassification
from xrg.tasks.llm_report import LLMReportGeneration
from xrg.tasks.qformer_alignment import QFormerAlignment

__all__ += ["FindingsClassification", "LLMReportGeneration", "QFormerAlignment"]
from xrg.tasks.instruction import InstructionTuning

__all__ += ["InstructionTuning"]
from xrg.tasks.concept_alignment import ConceptAlignment
from xrg.tasks.radalign import RadAlign

__all__ += ["ConceptAlignment", "RadAlign"]
