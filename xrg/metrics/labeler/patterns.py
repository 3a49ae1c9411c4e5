"""The vocabulary of `chexpert-rules`: what counts as a mention, and what negates or hedges one.

Everything here is data (regular-expression source strings); `rules.py` compiles it once.
Patterns run on *normalised* sentences: lowercase, every run of non-alphanumerics turned into one
space, apostrophes dropped ("can't" -> "cant"), so raw reports and R2Gen-cleaned reports
("lungs are clear . no effusion .") read the same.

A mention has a *kind*:
- ``finding``: the phrase asserts the observation ("effusion", "heart is enlarged"); negation and
  uncertainty triggers around it decide 1 / 0 / -1.
- ``normal``: the phrase states the structure is normal ("normal heart size"): always 0.
- ``borderline``: the phrase is itself a hedge ("heart size at the upper limits of normal"): -1.
Patterns of one observation are tried in order and an earlier match claims its words, so the
borderline phrase "upper limits of normal" is never read again as "normal".
"""

from __future__ import annotations


def _gap(most: int) -> str:
    """Up to `most` whole words between two phrases (sentences are single-spaced)."""
    return rf"(?: \w+){{0,{most}}}? "


def _gap_before(most: int) -> str:
    """Like `_gap`, but a new clause about the subject ("..., stable mediastinal contours") ends it."""
    return rf"(?: (?!stable\b|unchanged\b)\w+){{0,{most}}}? "


def either_order(subject: str, qualifier: str, after: int = 4, before: int = 3, qualifier_before: str | None = None) -> str:
    """'heart ... enlarged' (qualifier after the subject) or 'enlarged ... heart'.

    `qualifier_before` is the attributive form when it differs: "within normal limits" follows
    its subject and never precedes it ("heart size within normal limits, stable mediastinum")."""
    before_form = qualifier if qualifier_before is None else qualifier_before
    return (rf"(?:\b(?:{subject}){_gap(after)}(?:{qualifier})\b"
            rf"|\b(?:{before_form}){_gap_before(before)}(?:{subject})\b)")


# ---- qualifiers shared by the structure-style observations ------------------------------------
NORMAL = r"normal|within (?:normal limits|(?:the )?limits of normal|limits)|unremarkable|not enlarged|not widened"
# "normal and stable cardiomediastinal contours": "and stable" repeats the verdict, it starts no new clause
NORMAL_BEFORE = r"normal(?! limits)(?: and stable)?|unremarkable"
# A normal qualifier may close a list of structures: "heart size, mediastinal contour, and
# pulmonary vascularity are within normal limits", "heart XXXX, mediastinum, XXXX, bony structures
# and lung XXXX are unremarkable" (up to 10 words after the subject; IU redacts words of the list).
# An attributive one may name what is normal first: "normal size and configuration of the cardiac silhouette".
NORMAL_REACH, NORMAL_REACH_BEFORE = 10, 5
BORDERLINE = (
    r"borderline(?: enlarged| enlargement| large| size)?|(?:at )?(?:the )?upper (?:limits? |range )?(?:of )?normal"
    r"|tops? (?:of )?normal|high normal|upper normal"
)
# A prominent heart is borderline; a prominent mediastinum is an abnormal one, as CheXpert reads any
# unhedged mediastinum mention ("mild prominence of the mediastinum": Enlarged Cardiomediastinum 1).
PROMINENT = r"mildly prominent|prominen\w*"
ENLARGED = r"enlarge\w*|large|increased in size|globular"
WIDENED = r"widen\w*|enlarge\w*|large"
ENLARGED_BEFORE = r"enlarged|large|globular|widened"

HEART = r"heart(?: size)?|cardiac(?: silhouette| size| shadow| contours?)?"
MEDIASTINUM = (
    r"cardi[oa]? ?mediastin\w*(?: silhouette| contours?| shadow| width)?"  # "cardia mediastinal": a typo IU keeps
    r"|(?:superior )?mediastinum"
    # the adjective names the structure only with its noun: not "mediastinal granulomas / clips"
    r"|(?:superior )?mediastinal(?: and hilar)? (?:silhouettes?|contours?|width|shadow|configuration|xxxx)"
)
LUNGS = r"lungs?|lung fields?|lung parenchyma"
# Scarring of the pleura is Pleural Other, not a lung opacity (CheXpert lists "pleural scar",
# "pleural parenchymal scar"): at the pleura, where pleura and lung meet ("right apical
# pleural-parenchymal irregularities compatible with scarring") or at a costophrenic angle.
PLEURAL_SCAR = (
    r"\bpleural (?:\w+ )?(?:scar\w*|fibrosis)\b"
    r"|\bpleur(?:al|o) ?parenchymal (?:\w+ ){0,4}(?:scar\w*|thickening|irregularit\w*)"
    r"|\bcostophrenic (?:\w+ )?(?:scar\w*|thickening)\b|\bscar\w* (?:of )?(?:the )?(?:\w+ )?costophrenic\b"
)
ANGLES = r"costophrenic(?: \w+)?|pleural spaces?"  # "costophrenic XXXX are sharp": IU redacts words

def structure_mentions(direct: str, subject: str, abnormal: str, abnormal_before: str = ENLARGED_BEFORE,
                       borderline: str = BORDERLINE) -> list[tuple[str, str]]:
    """A structure that is enlarged (finding), borderline (-1) or normal (0), plus direct terms."""
    return [
        (direct, "finding"),
        (either_order(subject, borderline), "borderline"),
        (either_order(subject, abnormal, qualifier_before=abnormal_before), "finding"),
        (either_order(subject, NORMAL, after=NORMAL_REACH, before=NORMAL_REACH_BEFORE, qualifier_before=NORMAL_BEFORE),
         "normal"),
    ]


# ---- mentions, per observation, in CheXpert order (No Finding is derived, never mentioned) ----
# (pattern, kind); tried in order, earlier matches claim their words.
MENTIONS: dict[str, list[tuple[str, str]]] = {
    "Enlarged Cardiomediastinum": structure_mentions(
        r"\bwiden\w* (?:of )?(?:the )?(?:superior )?mediastinum\b|\bmediastinal (?:widening|enlargement)\b"
        r"|\bcardiomediastinal enlargement\b|\bmediastinal mass(?:es)?\b", MEDIASTINUM, f"{WIDENED}|{PROMINENT}", rf"{ENLARGED_BEFORE}|prominen\w*"),
    "Cardiomegaly": structure_mentions(
        r"\bcardiomegaly\b|\bcardiac enlargement\b|\benlarge\w* (?:of )?(?:the )?(?:heart|cardiac silhouette)\b"
        r"|\b(?:large|enlarged) heart\b|\b(?:left|right) (?:atri\w*|ventric\w*) (?:enlargement|dilat\w*)\b"
        r"|\benlarged (?:left|right) (?:atrium|ventricle)\b", HEART, ENLARGED,
        borderline=f"{BORDERLINE}|{PROMINENT}"),
    "Lung Lesion": [
        (r"\bnodul(?:e|es|ar|arity)\b|\bmass(?:es)?\b|\blesions?\b|\btumou?rs?\b|\bneoplasm\w*\b|\bcarcinoma\b"
         r"|\bmalignan\w*|\b(?:lung|pulmonary) metasta\w*|\blump\b|\bcavitary lesion\b|\bcavit(?:y|ies)\b", "finding"),
    ],
    "Lung Opacity": [
        (r"\bopaci\w*|\binfiltrat\w*|\bair ?space (?:disease|opacit\w*|process|filling)\b"
         r"|\binterstitial (?:markings?|pattern|opacit\w*|prominence|thickening|disease|changes?|lung disease|process)\b"
         r"|\breticula\w*|\bstreak(?:s|iness)?\b|\bscar\w*|\bfibros\w*|\bfibrotic\b|\bdensit(?:y|ies)\b|\bground ?glass\b|\bhaz(?:e|y|iness)\b"
         r"|\bperibronchial (?:thickening|cuffing)\b|\bbronchial wall thickening\b|\bdecreased translucency\b"
         r"|\b(?:increased|prominent|coarse\w*|increase in) (?:\w+ ){0,2}markings\b",
         "finding"),
        (either_order(LUNGS, r"clear"), "normal"),
    ],
    "Edema": [
        (r"\bedema\w*|\bcongestion\b|\bcongestive\b|\bheart failure\b|\bchf\b|\bvenous hypertension\b"
         r"|\bvascular (?:prominence|indistinctness)\b|\bindistinct (?:pulmonary )?vascula\w*", "finding"),
        # "prominence of the central pulmonary vasculature", "pulmonary XXXX are engorged" (IU redacts "vessels")
        (either_order(r"vascul(?:arity|ature|aturity)|pulmonary (?:vessels|xxxx)", r"prominen\w*|increased|congested|engorged",
                      before=4), "finding"),
    ],
    "Consolidation": [(r"\bconsolidat\w*", "finding")],
    "Pneumonia": [
        (r"\b(?:broncho)?pneumonias?\b|\bpneumonic\b|\bpneumonitis\b|\binfection\w*|\binfectious\b", "finding"),
    ],
    "Atelectasis": [
        (r"\batelecta\w*|\b(?:lobar|lobe|lung|segmental) collapse\b|\bcollapsed? (?:of )?(?:the )?(?:\w+ ){0,4}(?:lobes?|lungs?)\b",
         "finding"),
    ],
    "Pneumothorax": [(r"\b(?:hydro)?pneumothora\w*|\bptx\b|\bpleural (?:(?:or|and) \w+ )?air\b", "finding")],
    "Pleural Effusion": [
        (r"\beffusions?\b|\bpleural fluid\b|\bhydro(?:pneumo)?thorax\b|\bfluid (?:in|within) the (?:\w+ )?(?:fissure|pleural space)\b",
         "finding"),
        (either_order(ANGLES, r"clear|sharp"), "normal"),
    ],
    "Pleural Other": [
        (rf"\bpleural (?:\w+ )?(?:thickening|plaques?|calcification\w*)\b|\bfibrothorax\b|{PLEURAL_SCAR}"
         r"|\bapical (?:pleural )?cap(?:ping|s)?\b", "finding"),
    ],
    "Fracture": [(r"\bfractur\w*|\bfx\b", "finding")],
    "Support Devices": [
        (r"\bpace ?makers?\b|\bpacer\b|\ba?icd\b|\bdefibrillators?\b|\bcatheters?\b|\bpicc\b|\bport ?a ?cath\b|\bmediport\b"
         r"|\b(?:chest|infusion|venous|power) port\b|\btubes?\b|\b(?:central|venous|arterial|picc|jugular|subclavian|ij) lines?\b"
         r"|\blines\b|\bstents?\b|\bcoils?\b|\bvalve (?:replacement|prosthesis)\b|\bprosthetic (?:\w+ )?valve\b"
         r"|\bhardware\b|\bscrews?\b|\bplates?\b|\barthroplast\w*|\bshunt\b|\bloop recorder\b|\bdevices?\b|\bdrains?\b"
         r"|\bcannula\b|\bswan ganz\b|\bballoon pump\b|\blvad\b|\bleads\b|\belectrodes?\b|\bsternal wires\b"
         r"|\btracheostomy\b|\banchors?\b|\bimplantable\b|\b(?:neuro ?)?stimulator\b|\b(?:spinal|fixation|harrington) rods?\b"
         r"|\bprosthe(?:sis|tic) (?:\w+ )?(?:shoulder|hip|knee|joint|humer\w*)\b|\b(?:shoulder|hip|knee|joint) prosthe\w*"
         # a device named by a redacted word ("left XXXX with tip at the cavoatrial junction")
         r"|\btip\b|\b(?:cavo|caval) ?atrial junction\b",
         "finding"),
    ],
}

# An opacity the report explains by something outside the lung ("density compatible with a hiatal
# hernia", "opacity related to superimposed soft tissues") is not a lung opacity.
EXPLAINED_BY = (
    r"compatible (?:with )?|consistent with |related to |due to |reflect\w* |represent\w* |from |correspond\w* to "
    r"|(?:most )?suggestive of "
)
# ... or by something that is not a lung opacity at all, such as an artifact.
OUTSIDE_THE_LUNG = (
    r"hernia|soft tissues?|breast|nipples?|fat|overlap\w*|superimpos\w*|scapula\w*|ribs?|bon(?:e|y)|osseous"
    r"|piercings?|jewel\w*|bullets?|gunshot|shrapnel|metallic|pectus|chest wall|artifact\w*"
)
# A finding explained, in the same sentence or in a next one that starts from it ("opacities ... compatible
# with scarring or atelectasis", "Increased interstitial markings. This may be related to chronic interstitial
# changes or edema."), is not mentioned again by the explanation: the hedged "scarring" restates the stated
# opacity, it does not make it uncertain (rules.py drops such repeated mentions).
EXPLANATION = (
    r"\b(?:compatible with|consistent with|represent\w*|reflect\w*|related to|due to|secondary to|suggest\w*"
    r"|correspond\w* to|likely|favou?r\w*|appearance)\b"
)
RESTATES_PREVIOUS = r"^ (?:this|these|it|they|which|the appearance|appearance|the findings?|findings?)\b"

# A prominence the report explains by normal anatomy ("prominence of the superior mediastinum ...
# reflects mediastinal and vascular structures") is neither enlargement nor another abnormality.
PROMINENCE_EXPLAINED = (
    rf"\bprominen\w* (?:\w+ ){{0,12}}?(?:{EXPLAINED_BY})(?:\w+ ){{0,3}}?(?:vascular|vessels?|fat|structures)\b"
)
# A sentence about the examination, not the patient: "limited exam, for evaluation of fractures".
EXAM_LIMITATION = (
    r"\b(?:(?:limited|suboptimal|not optimal|not dedicated|not tailored) (?:\w+ ){0,3}?(?:for|to)|limits?) (?:the )?"
    r"(?:evaluat\w*|assess\w*|detect\w*) (?:of |for )?(?:(?!(?:no|not|without|but|however)\b)\w+\b ?){1,4}"
)

# Phrases that contain a mention word but are not that observation (a device position,
# a different effusion). A mention overlapping one of these is dropped; EXAM_LIMITATION drops
# a mention of any observation.
UNMENTIONS: dict[str, str] = {
    "Enlarged Cardiomediastinum": PROMINENCE_EXPLAINED,
    "Cardiomegaly": r"\b(?:over|overlying|projects? over|projecting over) (?:the )?(?:heart|cardiac)\b|\bcardiac (?:pacemaker|pacer|device|leads?|monitor|surgery|valve)\w*",
    "Lung Lesion": r"\bnodular (?:prominence|fullness|(?:soft tissue )?contour|(?:pleural )?irregularit\w*|(?:pleural )?thickening)\b"
                   r"|\bmass effect\b|\b(?:bone|bony|osseous|lytic|sclerotic|blastic|skin) lesions?\b|\bbreast mass\w*|\bmediastinal mass\w*"
                   rf"|\b(?:nodul|mass)\w* (?:\w+ ){{0,8}}(?:{EXPLAINED_BY})(?:\w+ ){{0,4}}(?:{OUTSIDE_THE_LUNG})\b",
    "Lung Opacity": rf"\b(?:opacit|densit)\w* (?:\w+ ){{0,8}}(?:{EXPLAINED_BY})(?:\w+ ){{0,4}}(?:{OUTSIDE_THE_LUNG})\b"
                    rf"|\bdensit\w* (?:\w+ ){{0,2}}foreign bod(?:y|ies)\b|{PLEURAL_SCAR}"
                    # a calcified density the report calls a granuloma is a granuloma ("calcific density ... represents
                    # old granulomatous disease"); nodular densities so explained stay nodules and opacities
                    rf"|\bcalci\w* densit\w* (?:\w+ ){{0,8}}(?:{EXPLAINED_BY})(?:\w+ ){{0,4}}granulom\w*"
                    r"|\b(?:bone|bony|osseous|breast|mineral|sclerotic) densit\w*|\bdensit\w* of the (?:bones?|breasts?)\b"
                    # outside the lungs: in the mediastinum or the paratracheal soft tissues
                    r"|\b(?:paratracheal|mediastinal|paraspinal|prevertebral) (?:soft tissue )?(?:opacit|densit)\w*"
                    r"|\b(?:opacit|densit)\w* (?:\w+ ){0,8}(?:in|within) the (?:\w+ )?mediastinum\b",
    # large central pulmonary arteries "suggesting pulmonary artery hypertension" are not congestion
    "Edema": r"\b(?:soft tissue|subcutaneous) edema\b"
             r"|\b(?:prominen|enlarge)\w* (?:\w+ ){0,6}?(?:suggest\w*|consistent with|compatible with|due to|related to|reflect\w*"
             r"|represent\w*) (?:\w+ ){0,2}?arter\w* hypertension\b",
    "Pneumonia": r"\b(?:old|prior|previous|remote|healed|granulomatous) (?:\w+ )?infection\w*",
    # a broken sternotomy wire (IU redacts the noun: "fracture of the superior-most sternotomy XXXX") is hardware, not bone
    "Fracture": r"\bfractur\w* (?:of )?(?:the )?(?:\w+ ){0,3}?sternotomy\b|\bsternotomy (?:\w+ ){0,2}?(?:is |are )?fractur\w*"
                r"|\b(?:sternal|sternotomy) wires? (?:\w+ ){0,2}?fractur\w*|\bfractur\w* (?:of )?(?:the )?(?:\w+ ){0,2}?wires?\b",
    "Pleural Effusion": r"\bpericardial effusions?\b|\b(?:joint|knee|elbow|shoulder) effusions?\b",
    "Support Devices": r"\b(?:scapular?|rib|clavicular|apical|lung) tips?\b|\btips? of the (?:scapula|ribs?|clavicle|lungs?)\b"
                       r"|\b(?:kerley|septal|b) lines\b|\bfissure lines\b|\bendplates?\b|\bplate ?like\b|\bdevices? (?:is|are) not\b",
}

# Other abnormalities: not among the 14, but their presence (positive or uncertain) means
# "No Finding" cannot be 1 (CheXpert's no-finding phrase list plays the same role).
OTHER_ABNORMALITIES = (
    r"\bemphysema\w*|\bcopd\b|\bhyperinfla\w*|\bhyperexpan\w*|\bhyperlucen\w*|\bbull(?:a|ae|ous)\b|\bscoliosis\b"
    r"|\bdextroscoliosis\b|\blevoscoliosis\b|\bkyphos\w*|\bhernia\w*|\bdegenera\w*|\bspondylo\w*|\bosteophyt\w*"
    r"|\bosteopeni\w*|\barthrit\w*|\barthropath\w*|\bcalcifi\w*|\bgranulom\w*|\batherosclero\w*|\btortu\w*|\bectatic\b"
    r"|\bectasia\b|\baneurysm\w*|\belevat\w*|\beventration\b|\bblunt\w*|\bthickening\b|\bcephalization\b|\baspiration\b"
    r"|\bcontusion\b|\bmetasta\w*|\bpneumomediastinum\b|\bpneumoperitoneum\b|\bfree air\b|\bdeformit\w*"
    r"|\bhemorrhage\b|\bhematoma\b|\bbronchiectasis\b|\bbronchitis\b|\basthma\b|\b(?:lymph)?adenopathy\b"
    r"|\bvolume loss\b|\bprominen\w*|\bcysts?\b|\bcavitation\b|\bhypertension\b|\bbronchospasm\b"
    r"|\bairways? disease\b|\bbullets?\b|\bflatten\w*|\bspurr?ing\b|\bunfold\w*|\bdeviat\w*|\bsclero(?:sis|tic)\b|\blytic\b|\bwedging\b|\bcompression\b"
    r"|\blucenc\w*|\binjur\w*|\bcurvature\b|\bextraluminal\b|\bintraperitoneal (?:free )?(?:air|gas)\b"
    r"|\bincreased lung volumes?\b|\bchronic (?:obstructive )?lung disease\b"
)
OTHER_UNMENTIONS = PROMINENCE_EXPLAINED

# ---- triggers ---------------------------------------------------------------------------------
# Hedges built from negation words: matched first, and hidden from the negation search, so
# "cannot be excluded" never reads as a negation. CheXpert also treats "no new X" as uncertain.
HEDGED_NEGATION = (
    r"\b(?:can ?not|cant|could not|couldnt|not) (?:be )?(?:been )?(?:entirely |completely |totally |definitely |fully )?"
    r"(?:exclude[ds]?|ruled? out)\b|\b(?:can ?not|cant|not) (?:be )?well (?:seen|demonstrated|visuali[sz]ed|evaluated|assessed|identified)\b|\b(?:difficult|impossible|hard) to (?:exclude|rule out)\b|\bno new\b|\bnot excluded\b"
)
# Look like negation, are not: "no change in the effusion" keeps the effusion.
NOT_A_NEGATION = (
    r"\bno (?:significant |substantial |interval |appreciable |definite |other )?"
    r"(?:change|increase|interval change|worsening|improvement|progression|decrease|growth)\w*(?: in| of)?\b"
    r"|\bnot (?:significantly |substantially )?(?:changed|improved|increased|worsened|decreased)\b|\bnot only\b"
)
NEGATION_BEFORE = (
    r"\b(?:no|not|without|negative for|free of|clear of|absence of|absent|resolution of|resolved|resolving"
    r"|removal of|removed|lack of|neither|nor|never|rather than|instead of|interval clearing of)\b"
)
NEGATION_AFTER = (
    r"^(?: \w+){0,4}? (?:(?:is|are|was|were|has been|have been) )?"
    r"(?:not\b|absent\b|(?:has |have )?resolved\b|resolving\b|no longer\b|removed\b|cleared\b|gone\b|negative\b)"
)
UNCERTAIN_BEFORE = (
    r"\b(?:possibl\w*|probabl\w*|likely|may|might|could|questionabl\w*|question(?: of)?|questioned|suspect\w*|suspicio\w*"
    r"|concern\w*|worrisome|suggest\w*|borderline|equivocal|indeterminate|versus|vs|differential|consider\w*|for evaluation (?:of|for)"
    r"|presum\w*|favou?r\w*|potential\w*|perhaps|maybe|uncertain|unclear|evaluate for|assess for|rule out|query"
    r"|cannot|cant|or|andor|and or)\b"
)
# After the mention, a hedge must be predicated of it ("effusion is likely", "may be present"):
# "opacity, possibly pneumonia" hedges the pneumonia, not the opacity.
UNCERTAIN_AFTER = (
    r"^(?: \w+){0,5}? (?:(?:is|are|was|were) (?:\w+ )?"
    r"(?:likely|possible|probable|suspected|questioned|uncertain|considered|favou?red|suggested)|(?:may|might|could) (?:also )?be)\b"
    r"|^ (?:\w+ )?(?:suspected|questioned)\b|^ (?:versus|vs|or|andor|and or)\b"
    r"|^ (?:etiology|process|disease|changes?) (?:versus|vs)\b"  # "an infectious etiology versus chronic lung disease"
)
# Words that end a trigger's reach inside a sentence ("no effusion but mild atelectasis").
SCOPE_END = (
    r"\b(?:but|however|although|though|yet|whereas|while|except|aside from|apart from|otherwise|which|that is"
    r"|there (?:is|are|has|have)|is seen|are seen|is noted|are noted|is present|are present"
    r"|and (?:there|the|a|an|mild|mildly|moderate|moderately|severe|marked|small|large|minimal|trace|new|stable|persistent|chronic|old|left|right|bilateral))\b"
)
# After a mention, a reporting verb closes its clause: "opacity noted, not visualized on prior".
SCOPE_END_AFTER = rf"{SCOPE_END}|\b(?<!well )(?:noted|seen|identified|demonstrated|present|visualized)\b"
NEGATION_REACH, UNCERTAINTY_REACH = 12, 6  # words between a trigger and the mention it governs
# "The previously visualized nodular density in the right upper lobe is not well seen": a hedged negation
# after its mention reaches past where the mention is.
HEDGED_NEGATION_AFTER_REACH = 8

# A next sentence calling it possibly an artifact ("... nodular like opacity in the right midlung.
# This may be artifact.") makes the positive mentions of the sentence before it uncertain.
MAYBE_ARTIFACT = (
    r"^ (?:this|these|it|they|which|that|the \w+)(?: \w+){0,3}? (?:may|might|could|possibly|probably|likely|questionabl\w*)"
    r"(?: \w+){0,3}? artifact\w*\b"
)

# Mentions that also add an uncertain Cardiomegaly (CheXpert's heart-failure exception).
HEART_FAILURE = r"\bheart failure\b|\bchf\b|\bcongestive\b"
