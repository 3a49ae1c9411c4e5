from xrg.data.cleaning import clean_iu_xray, clean_mimic_cxr, get_cleaner

import pytest


def test_iu_xray_cleaning_matches_r2gen_rules():
    report = "The heart is normal. 1. No effusion (small). 2. Lungs: clear, no edema!"
    # "1. " is dropped, " 2. " becomes a sentence break, punctuation inside sentences goes.
    assert clean_iu_xray(report) == "the heart is normal . no effusion small . lungs clear no edema ."


def test_iu_xray_keeps_digits_and_collapses_repeated_periods():
    assert clean_iu_xray("ET tube 4 cm above carina.. Stable.") == "et tube 4 cm above carina . stable ."


def test_iu_xray_keeps_empty_sentences_like_r2gen():
    # R2Gen never drops empty sentences; "x. . y" therefore keeps an empty one.
    assert clean_iu_xray("Normal. . Clear.") == "normal .  . clear ."


def test_mimic_cleaning_collapses_newlines_underscores_and_spaces():
    report = "FINDINGS:\n  The ___ lungs are clear.  No effusion."
    # the blank "___" shrinks to "_", which the punctuation pass then removes (R2Gen keeps the gap)
    assert clean_mimic_cxr(report) == "findings the  lungs are clear . no effusion ."


def test_unknown_cleaner_names_the_choices():
    with pytest.raises(ValueError, match="iu_xray"):
        get_cleaner("iu")
