"""Metrics: NLG (pycocoevalcap-exact), clinical efficacy (chexpert-rules), model-based adapters."""


def __getattr__(name: str):
    # Lazy: importing xrg.metrics must not load the labeler tables or start anything.
    if name == "NLGMetrics":
        from xrg.metrics.nlg import NLGMetrics

        return NLGMetrics
    if name == "ClinicalEfficacy":
        from xrg.metrics.ce import ClinicalEfficacy

        return ClinicalEfficacy
    raise AttributeError(name)
