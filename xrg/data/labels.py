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

COLUMN: dict[str, int] = {name: i for i, name in enumerate(CHEXPERT_LABELS)}  # an observation's column

# The five observations of the CheXpert competition, used by the micro-5 / macro-5 CE conventions.
CHEXPERT_5: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Pleural Effusion",
)

POSITIVE, NEGATIVE, UNCERTAIN, BLANK = 1, 0, -1, None


def select_labels(labels, names):
    """The columns of CheXpert-coded `labels` ([N, 14], `CHEXPERT_LABELS` order, as batches carry
    them) for `names`, in that order: `[N, len(names)]`.

    A head may predict any subset of the observations in any order; indexing the batch's labels by
    position instead would silently pair a head's "Cardiomegaly" with the batch's "No Finding".
    """
    if labels.shape[-1] != len(CHEXPERT_LABELS):
        raise ValueError(f"labels have {labels.shape[-1]} columns; expected the {len(CHEXPERT_LABELS)} CheXpert "
                         f"observations in CHEXPERT_LABELS order")
    unknown = [name for name in names if name not in CHEXPERT_LABELS]
    if unknown:
        raise ValueError(f"{unknown} are not CheXpert observations, so the dataset has no labels for them; "
                         f"expected names from {list(CHEXPERT_LABELS)}")
    if list(names) == list(CHEXPERT_LABELS):
        return labels
    return labels[..., [CHEXPERT_LABELS.index(name) for name in names]]
