"""Procedures as exams: the shipped RadLex Playbook table, CPT ranges, and the build script."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from terminology import build_playbook
from terminology.procedures import (
    CPT_FILE,
    PLAYBOOK_COLUMNS,
    PLAYBOOK_FILE,
    code_modality_region,
    cpt_modality_region,
    cpt_ranges,
    playbook_procedure,
    playbook_procedures,
    procedure_modality_region,
)
from terminology.vocabulary import DICOM_MODALITY_CODES, REGION_NAMES

# --- the shipped Playbook table (never ../shared at test time) -------------------------------


def test_shipped_table_is_complete_and_in_vocabulary_terms() -> None:
    table = playbook_procedures()
    assert len(table) > 4000
    with PLAYBOOK_FILE.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert tuple(rows[0]) == PLAYBOOK_COLUMNS
    assert len({row["rpid"] for row in rows}) == len(rows) == len(table)
    assert {p.modality for p in table.values()} - {None} == DICOM_MODALITY_CODES
    for procedure in table.values():
        assert procedure.modality or procedure.body_region, procedure.rpid
        for part in (procedure.body_region or "chest").split("/"):
            assert part in REGION_NAMES, procedure


@pytest.mark.parametrize(("rpid", "name", "modality", "region"), [
    ("RPID16", "CT Chest wo", "CT", "chest"),
    ("RPID145", "CT Abd/Pelv w", "CT", "abdomen/pelvis"),
    ("RPID522", "MR Knee wo", "MR", "lower extremity"),
    ("RPID2503", "XR Chest 2V", "XR", "chest"),
    ("RPID5606", "MG BREAST BILAT SCREEN", "MG", "breast"),
    ("RPID6014", "PT/CT Bone Skull to Thigh", "PT", "whole body"),  # PET-CT RID -> PT
    ("RPID6145", "FL Abd Small Bowel", "RF", "abdomen/pelvis"),  # radio-fluoroscopy
    ("RPID387", "CT ABD KIDNEY WO & W IVCON", "CT", "kidney"),  # focus finer than abdomen
    ("RPID5833", "FL < 1 Hr", "RF", None),
])
def test_playbook_rows(rpid: str, name: str, modality: str, region: str | None) -> None:
    procedure = playbook_procedure(rpid)
    assert procedure is not None
    assert (procedure.name, procedure.modality, procedure.body_region) == (name, modality, region)


def test_playbook_lookup_by_number_and_unknown() -> None:
    assert playbook_procedure("16") == playbook_procedure("RPID16")
    assert playbook_procedure("rpid16") == playbook_procedure("RPID16")
    assert playbook_procedure("RPID99999999") is None
    assert playbook_procedure("CT CHEST") is None


# --- CPT ranges -----------------------------------------------------------------------------


@pytest.mark.parametrize(("code", "modality", "region"), [
    ("70450", "CT", "head"), ("70470", "CT", "head"), ("70490", "CT", "neck"),
    ("70496", "CT", "head"), ("70498", "CT", "neck"),
    ("70551", "MR", "head"), ("70553", "MR", "head"), ("70543", "MR", "head/neck"),
    ("70336", "MR", "head"), ("70360", "XR", "neck"),
    ("70390", None, "head/neck"),  # in the head-and-neck section, modality not listed
    ("71045", "XR", "chest"), ("71046", "XR", "chest"), ("71048", "XR", "chest"),
    ("71101", "XR", "chest"), ("71250", "CT", "chest"), ("71271", "CT", "chest"),
    ("71275", "CT", "chest"), ("71551", "MR", "chest"),
    ("72040", "XR", "spine"), ("72125", "CT", "spine"), ("72148", "MR", "spine"),
    ("72158", "MR", "spine"), ("72170", "XR", "pelvis"), ("72191", "CT", "pelvis"),
    ("72192", "CT", "pelvis"), ("72194", "CT", "pelvis"), ("72197", "MR", "pelvis"),
    ("72240", None, None),  # myelography: not listed, the text decides
    ("73030", "XR", "upper extremity"), ("73040", "RF", "upper extremity"),
    ("73200", "CT", "upper extremity"), ("73221", "MR", "upper extremity"),
    ("73562", "XR", "lower extremity"), ("73580", "RF", "lower extremity"),
    ("73700", "CT", "lower extremity"), ("73721", "MR", "lower extremity"),
    ("74018", "XR", "abdomen"), ("74150", "CT", "abdomen"), ("74177", "CT", "abdomen/pelvis"),
    ("74178", "CT", "abdomen/pelvis"), ("74174", "CT", "abdomen/pelvis"),
    ("74175", "CT", "abdomen"), ("74181", "MR", "abdomen"), ("74183", "MR", "abdomen"),
    ("74220", "RF", None), ("74240", "RF", "abdomen"), ("74263", "CT", "abdomen/pelvis"),
    ("75557", "MR", "heart"), ("75571", "CT", "heart"), ("75574", "CT", "heart"),
    ("75710", "XA", None), ("75635", "CT", None),
    ("76000", "RF", None), ("76497", "CT", None),
    ("76536", "US", "head/neck"), ("76604", "US", "chest"), ("76642", "US", "breast"),
    ("76700", "US", "abdomen"), ("76705", "US", "abdomen"), ("76770", "US", "abdomen"),
    ("76776", "US", "kidney"), ("76805", "US", "pelvis"), ("76856", "US", "pelvis"),
    ("76882", "US", "extremity"), ("76942", "US", None),
    ("77047", "MR", "breast"), ("77063", "MG", "breast"), ("77067", "MG", "breast"),
    ("78014", "NM", "thyroid"), ("78306", "NM", "whole body"), ("78452", "NM", "heart"),
    ("78431", "PT", "heart"), ("78459", "PT", "heart"), ("78492", "PT", "heart"),
    ("78582", "NM", "chest"), ("78608", "PT", "head"), ("78707", "NM", "kidney"),
    ("78811", "PT", None), ("78815", "PT", "whole body"), ("78816", "PT", "whole body"),
    ("78800", "NM", None),
    ("93306", "US", "heart"), ("93880", "US", "neck"), ("93970", "US", "extremity"),
    ("99213", None, None), ("12345", None, None),  # not radiology
])
def test_cpt_ranges(code: str, modality: str | None, region: str | None) -> None:
    assert cpt_modality_region(code) == (modality, region)


def test_cpt_codes_with_modifiers_and_bad_codes() -> None:
    assert cpt_modality_region("71250-26") == ("CT", "chest")
    assert cpt_modality_region(" 70551 ") == ("MR", "head")
    assert cpt_modality_region("7125") == (None, None)
    assert cpt_modality_region(None) == (None, None)


def test_cpt_file_is_valid_and_narrowest_first() -> None:
    ranges = cpt_ranges()
    assert len(ranges) > 80
    widths = [r.high - r.low for r in ranges]
    assert widths == sorted(widths)
    assert all(r.what for r in ranges)
    assert "low,high,modality,region,what" in CPT_FILE.read_text()


def test_bad_cpt_file_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "cpt.csv"
    bad.write_text("# a comment\nlow,high,modality,region,what\n70450,70470,CTX,head,x\n")
    with pytest.raises(ValueError, match="line 3: modality 'CTX'"):
        cpt_ranges(bad)
    bad.write_text("low,high,modality,region,what\n70450,70470,CT,belly,x\n")
    with pytest.raises(ValueError, match="body region 'belly'"):
        cpt_ranges(bad)


# --- a procedure as the exam: code, then text ------------------------------------------------


@pytest.mark.parametrize(("code", "system", "text", "expected"), [
    ("71250", "CPT4", "CT CHEST WITHOUT CONTRAST", ("CT", "chest")),
    ("71250", "CPT4", "OUTSIDE STUDY", ("CT", "chest")),  # the code alone decides
    ("71250", None, None, ("CT", "chest")),  # no coding system: a CPT-like code is CPT
    ("71250", "L", "MRI BRAIN", ("MR", "head")),  # a local code: only the text tells
    ("76536", "CPT4", "US THYROID", ("US", "thyroid")),  # finer region within the code's
    ("76770", "C4", "US RENAL COMPLETE", ("US", "kidney")),
    ("71250", "CPT", "CT ABDOMEN", ("CT", "chest")),  # a region outside the code's: the code
    ("70390", "CPT", "SIALOGRAM", (None, "head/neck")),
    ("70390", "CPT", "FLUORO SIALOGRAM", ("RF", "head/neck")),
    ("99213", "CPT", "XR CHEST 2 VIEWS", ("XR", "chest")),  # unknown code: the text
    ("RPID16", "RADLEX", "SOMETHING ELSE", ("CT", "chest")),
    ("522", "RPID", None, ("MR", "lower extremity")),
    ("RPID99999999", None, "MRI KNEE", ("MR", "lower extremity")),
    (None, None, "SCREENING MAMMOGRAPHY BILATERAL", ("MG", "breast")),  # implied region
    (None, None, "SPECIAL PROCEDURE", (None, None)),
])
def test_procedure_modality_region(code: str | None, system: str | None, text: str | None,
                                   expected: tuple[str | None, str | None]) -> None:
    assert procedure_modality_region(code, system, text) == expected


def test_a_modality_known_elsewhere_ranks_below_the_code_and_above_the_text() -> None:
    assert procedure_modality_region("70551", "CPT4", "CT HEAD", modality="CT") == ("MR", "head")
    assert procedure_modality_region("1", "L", "MRI BRAIN", modality="CT") == ("CT", "head")
    assert procedure_modality_region(None, None, "MRI BRAIN", modality=None) == ("MR", "head")
    assert code_modality_region("70551", "LOCAL") == (None, None)


# --- the build script, on a Playbook excerpt in its own format -------------------------------

RIDS = ["0"] * 26


def rids(**positions: str) -> str:
    values = list(RIDS)
    for position, rid in positions.items():
        values[int(position[1:])] = rid
    return "|".join(values) + "|"


def playbook_row(rpid: str, short: str, abbreviated: str, definition: str, rid_list: str) -> str:
    return ",".join([rpid, "CODE", short, short, abbreviated, abbreviated, definition, rid_list])


def test_build_playbook_from_an_excerpt(tmp_path: Path) -> None:
    playbook = tmp_path / "radlex_playbook.csv"
    playbook.write_text("\n".join([
        playbook_row("RPID16", "CT Chest wo", "CT CHST WO IVCON",
                     "A computed tomography  RADIOLOGY ORDERABLE imaging procedure",
                     rids(p0="RID10321", p1="RID13060", p3="RID1243")),
        playbook_row("RPID8", "", "CT CHST ANGIO HEART", "A computed tomography  RADIOLOGY",
                     rids(p0="RID10321", p3="RID1243", p13="RID1385")),
        playbook_row("RPID2503", "XR Chest 2V", "XRAY CHST 2V", "A radiography  RADIOLOGY",
                     rids(p0="RID10345", p3="RID1243")),
        playbook_row("RPID6638", "FL Abd Small Bowel", "ABD SMALL BOWEL",
                     "A radio-fluoroscopy  RADIOLOGY ORDERABLE", rids(p3="RID56", p4="RID2507")),
        playbook_row("RPID5823", "", "IR ARTHRO ELBOW", " RADIOLOGY ORDERABLE ARTHROGRAPHY",
                     rids(p0="RID10367", p13="RID2010")),
        playbook_row("RPID6090", "RP Abd Bx w Guide", "RP ABD GUIDE BX", "RADIOLOGY",
                     rids(p0="RID10311")),
    ]) + "\n")
    radlex = tmp_path / "radlex_terms.csv"
    radlex.write_text("thorax,RID1243,RID1\nabdomen,RID56,RID1\npelvis,RID2507,RID1\n"
                      "heart,RID1385,RID1\nelbow,RID2010,RID1\n")
    out = tmp_path / "playbook_procedures.csv"
    assert build_playbook.main([str(playbook), "--out", str(out)]) == 0
    with out.open(newline="") as handle:
        rows = [tuple(row.values()) for row in csv.DictReader(handle)]
    assert rows == [
        ("RPID8", "CT CHST ANGIO HEART", "CT", "heart"),  # focus within the chest
        ("RPID16", "CT Chest wo", "CT", "chest"),
        ("RPID2503", "XR Chest 2V", "XR", "chest"),  # "XRAY", the Playbook's abbreviation
        ("RPID5823", "IR ARTHRO ELBOW", "", "upper extremity"),  # region from the focus
        ("RPID6638", "FL Abd Small Bowel", "RF", "abdomen/pelvis"),  # definition's modality
    ]  # RPID6090: guidance by no named modality, no region: left out


def test_build_playbook_refuses_another_format(tmp_path: Path) -> None:
    playbook = tmp_path / "radlex_playbook.csv"
    playbook.write_text("RPID,name\nRPID1,CT\n")
    assert build_playbook.main([str(playbook), "--radlex", str(playbook),
                                "--out", str(tmp_path / "out.csv")]) == 1
