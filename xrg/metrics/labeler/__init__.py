"""`chexpert-rules`, the offline CheXpert-style rule labeler (see docs/clinical_efficacy.md)."""

from xrg.metrics.labeler.rules import ChexpertRulesLabeler, Mention, aggregate, label_report, label_reports, merge

__all__ = ["ChexpertRulesLabeler", "Mention", "aggregate", "label_report", "label_reports", "merge"]
