"""The 14 CheXpert observations: the label vocabulary every block and metric shares.

Codes follow the CheXpert labeler: 1 positive, 0 negative, -1 uncertain, None (blank) not mentioned.
In tensors, blank is stored as NaN so "not mentioned" never silently becomes "negative".
"""

CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding",
    "Enlarged Cardiomediastinum",
    "Cardiomegaly",
    "Lung Lesion",
    "Lung Opacity",
    "Edema",
    "Consolidation",
    "Pneumonia",
    "Atelectasis",
    "Pneumothorax",
    "Pleural Effusion",
    "Pleural Other",
    "Fracture",
    "Support Devices",
)

# The five observations of the CheXpert competition, used by the micro-5 / macro-5 CE conventions.
CHEXPERT_5: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

POSITIVE, NEGATIVE, UNCERTAIN, BLANK = 1, 0, -1, None
