"""LightningModules, one per training objective; paper-specific parts are blocks (see xrg.blocks.guides)."""

from xrg.tasks.base import StageInit, XrgTask
from xrg.tasks.concept_alignment import ConceptAlignment
from xrg.tasks.contrastive import ContrastivePretraining
from xrg.tasks.findings import FindingsClassification
from xrg.tasks.instruction import InstructionTuning
from xrg.tasks.qformer_alignment import QFormerAlignment
from xrg.tasks.report_generation import ReportGeneration

__all__ = ["ConceptAlignment", "ContrastivePretraining", "FindingsClassification", "InstructionTuning",
           "QFormerAlignment", "ReportGeneration", "StageInit", "XrgTask"]
