"""HL7 v2 ORU^R01 parsing (shipped samples and broken inputs) and ACK building."""

from __future__ import annotations

import random
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from importlib.resources import files
from pathlib import Path

import hl7
import pytest
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import parse_message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nlp_service.intake import hl7 as intake_hl7
from nlp_service.intake.hl7 import build_ack, parse_oru, peek_control_id
from nlp_service.intake.message import HL7MessageError, ParsedMessage, ParsedReport

SAMPLES = Path(str(files("nlp_service") / "samples" / "hl7"))
SAMPLE_NAMES = sorted(path.name for path in SAMPLES.glob("*.hl7"))
NOW = datetime(2026, 10, 1, 12, 30, 0, tzinfo=UTC)
EST = timezone(timedelta(hours=-5))
EDT = timezone(timedelta(hours=-4))


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def parsed(name: str) -> ParsedMessage:
    return parse_oru(sample(name))


def seg(name: str, fields: dict[int, str]) -> str:
    """A segment with the given fields (1-based positions) filled in."""
    return name + "|" + "|".join(fields.get(i, "") for i in range(1, max(fields) + 1))


MSH = ("MSH|^~\\&|RIS|HOSP|RADNLP|HOSP|20260110120000||ORU^R01^ORU_R01|CTRL0001|P|2.5.1|||AL|NE")
PID = seg("PID", {1: "1", 3: "MRN900001^^^HOSP^MR", 5: "TEST^PATIENT", 7: "19700101", 8: "F"})
ORC = seg("ORC", {1: "RE", 2: "PLC9", 3: "ACC9"})
OBR_FIELDS = {1: "1", 2: "PLC9", 3: "ACC9", 4: "71046^XR CHEST 2 VIEWS^CPT4",
              7: "20260110110000", 16: "1111^DOE^JOHN", 24: "DX", 25: "F",
              32: "2222&ROE&JANE"}
OBR = seg("OBR", OBR_FIELDS)


def obx(value: str, value_type: str = "TX", setid: int = 1, status: str = "F") -> str:
    return seg("OBX", {1: str(setid), 2: value_type, 3: "&GDT", 4: str(setid), 5: value,
                       11: status})


def message(*segments: str, separator: str = "\r") -> str:
    return separator.join(segments) + separator


def with_obr(**changes: str) -> str:
    fields = dict(OBR_FIELDS)
    fields.update({int(key[1:]): value for key, value in changes.items()})
    return seg("OBR", fields)


GOOD = message(MSH, PID, ORC, OBR, obx("No acute cardiopulmonary process."))


def refusal(raw: str | bytes) -> HL7MessageError:
    with pytest.raises(HL7MessageError) as caught:
        parse_oru(raw)
    return caught.value


# --- the shipped samples -----------------------------------------------------------------


def test_there_are_enough_samples_with_unique_control_ids_in_chronological_order() -> None:
    assert len(SAMPLE_NAMES) >= 22
    messages = [parsed(name) for name in SAMPLE_NAMES]
    control_ids = [m.control_id for m in messages]
    assert len(set(control_ids)) == len(control_ids)
    times = [m.message_time for m in messages]
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]
    assert {"2.3", "2.3.1", "2.4", "2.5", "2.5.1"} <= {m.version for m in messages}


def test_samples_readme_lists_every_file() -> None:
    readme = (SAMPLES / "README.md").read_text(encoding="utf-8")
    assert "written by the radnlp project" in readme.lower()
    for name in SAMPLE_NAMES:
        assert f"`{name}`" in readme


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_parses_completely(name: str) -> None:
    result = parsed(name)
    assert result.message_type == "ORU^R01"
    assert re.fullmatch(r"MRN\d{6}|\d{7}", result.patient_mrn)
    assert result.patient_mrn_authority in {"HOSP", "NCH"}
    assert result.sending_application and result.sending_facility
    assert result.reports
    for report in result.reports:
        assert report.text.strip()
        assert "\r" not in report.text
        assert re.fullmatch(r"[A-Z]{2}\d{8}", report.accession)
        assert report.result_status in {"P", "F", "C", "X"}
        assert report.procedure_code and re.fullmatch(r"\d{5}", report.procedure_code)
        assert report.procedure_system == "CPT4"
        assert report.modality in {"CT", "MR", "US", "XR", "MG"}
        assert report.body_region
        assert report.observed_at is not None and report.observed_at.tzinfo is not None
        assert report.ordering_provider and re.fullmatch(r".+, .+ \(\d+\)",
                                                         report.ordering_provider)


def test_line_per_obx_tx_report_keeps_lines_sections_and_metadata() -> None:
    result = parsed("01_ct_chest_nodule_tx.hl7")
    assert result.control_id == "HOSP260112143512001"
    assert result.version == "2.5.1"
    assert (result.patient_mrn, result.patient_mrn_authority) == ("MRN100234", "HOSP")
    assert (result.sending_application, result.sending_facility) == ("EPICRAD", "HOSP")
    assert result.message_time == datetime(2026, 1, 12, 14, 35, 12, tzinfo=EST)
    [report] = result.reports
    lines = report.text.split("\n")
    assert len(lines) == 17
    assert lines[0] == "EXAMINATION: CT CHEST WITHOUT CONTRAST"
    assert lines[4] == "" and lines[5] == "FINDINGS:"
    assert lines.index("IMPRESSION:") > lines.index("FINDINGS:")
    assert lines[-3].endswith("per Fleischner Society guidelines.")
    assert report.accession == "CT26000123"
    assert report.placer_number == "ORD77012345"
    assert (report.procedure_code, report.procedure_name) == ("71250",
                                                              "CT CHEST WITHOUT CONTRAST")
    assert (report.modality, report.body_region) == ("CT", "chest")
    assert report.observed_at == datetime(2026, 1, 12, 14, 5, 12, tzinfo=EST)
    assert report.ordering_provider == "CHANDRA, PRIYA (4410)"
    assert report.interpreter == "MORALES, ELENA (9001)"
    assert "2.25." not in report.text  # the ZDS study UID is not report text


def test_ft_line_breaks_become_newlines() -> None:
    raw = sample("02_xr_chest_pneumonia_ft.hl7")
    assert raw.count(b"\rOBX|") == 1 and b"\\.br\\" in raw
    [report] = parse_oru(raw).reports
    assert "\\" not in report.text
    assert report.text.startswith("EXAM: XR CHEST 2 VIEWS\nHISTORY: Fever")
    assert "COMPARISON: None.\n\nFINDINGS:\nThere is airspace consolidation" in report.text
    assert report.text.endswith("to document resolution.")
    assert report.modality == "XR"  # OBR-24 DX is radiography, the lexicon's XR
    assert report.observed_at == datetime(2026, 1, 19, 8, 42, 10, tzinfo=UTC)  # naive -> UTC


def test_ft_repetitions_and_crlf_separators() -> None:
    raw = sample("11_ct_head_crlf_ft_repetitions.hl7")
    assert b"\r\n" in raw and b"~FINDINGS:" in raw
    [report] = parse_oru(raw).reports
    assert "COMPARISON: None.\nFINDINGS:\nNo acute intracranial hemorrhage" in report.text
    assert "\nIMPRESSION:\n1. No acute intracranial abnormality." in report.text


def test_escape_sequences_in_samples_are_decoded() -> None:
    us = parsed("10_us_abdomen_lf_escapes.hl7").reports[0]
    assert "Right upper quadrant pain after meals & nausea." in us.text
    assert "\\T\\" not in us.text
    spine = parsed("08_mr_lumbar_spine_v23_lf.hl7").reports[0]
    assert "(Cobb angle approximately 12°)" in spine.text
    ct = parsed("04_ct_abd_pelvis_final.hl7").reports[0]
    assert "Left lower quadrant pain, nausea & vomiting." in ct.text


def test_several_obr_groups_give_one_report_each_with_its_own_text() -> None:
    chest, abdomen = parsed("07_ct_chest_abd_pelvis_two_obr.hl7").reports
    assert (chest.accession, abdomen.accession) == ("CT26000912", "CT26000913")
    assert (chest.procedure_code, abdomen.procedure_code) == ("71260", "74177")
    assert (chest.body_region, abdomen.body_region) == ("chest", "abdomen/pelvis")
    assert chest.placer_number == "ORD77015100" and abdomen.placer_number == "ORD77015101"
    assert "thoracic metastatic disease" in chest.text and "renal calculus" not in chest.text
    assert abdomen.text.startswith("EXAMINATION: CT ABDOMEN AND PELVIS")
    assert "renal calculus" in abdomen.text and "thoracic" not in abdomen.text
    head, spine = parsed("22_ct_head_cspine_trauma_two_obr.hl7").reports
    assert (head.body_region, spine.body_region) == ("head", "spine")
    assert "recommend thyroid ultrasound" in spine.text and "thyroid" not in head.text


@pytest.mark.parametrize("name", ["08_mr_lumbar_spine_v23_lf.hl7",
                                  "20_xr_chest_preop_v23_crlf.hl7"])
def test_v23_messages_parse(name: str) -> None:
    result = parsed(name)
    assert result.version == "2.3"
    assert result.reports[0].result_status == "F"
    assert result.reports[0].interpreter in {"DUBOIS, MARC (9004)", "FITZGERALD, ALAN (9002)"}


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_segment_separator_style_does_not_change_the_result(separator: str) -> None:
    text = sample("01_ct_chest_nodule_tx.hl7").decode()
    restyled = separator.join(text.split("\r"))
    assert parse_oru(restyled) == parse_oru(text)


def test_lf_sample_uses_lf_only() -> None:
    raw = sample("10_us_abdomen_lf_escapes.hl7")
    assert b"\r" not in raw
    assert len(parse_oru(raw).reports[0].text.split("\n")) == 14


def test_z_segments_are_ignored() -> None:
    text = sample("09_mg_screening_zsegments.hl7").decode()
    assert "\rZPV|" in text and "\rZDS|" in text
    without_z = "\r".join(line for line in text.split("\r") if not line.startswith("Z"))
    assert parse_oru(text) == parse_oru(without_z)


def test_non_text_obx_lines_are_skipped() -> None:
    [report] = parsed("09_mg_screening_zsegments.hl7").reports
    assert report.text.endswith("RECOMMENDATION: Recommend annual screening mammography.")
    assert "Negative^BIRADS" not in report.text and "PACS" not in report.text
    assert (report.modality, report.body_region) == ("MG", "breast")


def test_message_without_pv1_is_accepted() -> None:
    raw = sample("06_us_thyroid_no_pv1.hl7")
    assert b"PV1|" not in raw
    [report] = parse_oru(raw).reports
    assert (report.modality, report.body_region) == ("US", "thyroid")
    assert "12 months per ACR TI-RADS" in report.text


def test_nte_between_obx_lines_is_not_report_text() -> None:
    [report] = parsed("17_us_renal_nte.hl7").reports
    assert "Sonographer" not in report.text
    assert report.text.split("\n")[6] == "IMPRESSION:"
    assert report.body_region == "kidney"


def test_latin1_bytes_are_decoded() -> None:
    raw = sample("19_mr_knee_latin1.hl7")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    result = parse_oru(raw)
    assert (result.patient_mrn, result.patient_mrn_authority) == ("3000411", "NCH")
    [report] = result.reports
    assert report.ordering_provider == "LINDSTRÖM, ÅSA (7781)"
    assert "Small Baker cyst measuring 2.3 × 1.1 cm." in report.text
    assert (report.modality, report.body_region) == ("MR", "lower extremity")


def test_preliminary_final_corrected_addendum_and_cancelled_versions() -> None:
    prelim, final, corrected = (parsed(name).reports[0] for name in (
        "03_ct_abd_pelvis_prelim.hl7", "04_ct_abd_pelvis_final.hl7",
        "05_ct_abd_pelvis_corrected.hl7"))
    assert {prelim.accession, final.accession, corrected.accession} == {"CT26000544"}
    assert [prelim.result_status, final.result_status, corrected.result_status] == ["P", "F", "C"]
    assert prelim.interpreter is None and final.interpreter == "HUANG, LILY (9003)"
    assert "left adrenal nodule" in final.text and "right adrenal nodule" in corrected.text
    original, addendum = (parsed(name).reports[0] for name in (
        "13_mr_brain_final.hl7", "14_mr_brain_addendum.hl7"))
    assert addendum.accession == original.accession and addendum.result_status == "C"
    assert addendum.text.startswith(original.text)
    assert "\nADDENDUM (2026-03-18):" in addendum.text
    issued, cancelled = (parsed(name).reports[0] for name in (
        "15_xr_chest_portable_wrong_patient.hl7", "16_xr_chest_portable_cancelled.hl7"))
    assert cancelled.accession == issued.accession == "DX26001630"
    assert (issued.result_status, cancelled.result_status) == ("F", "X")


def test_follow_up_exams_of_the_same_patient() -> None:
    first, later = parsed("01_ct_chest_nodule_tx.hl7"), parsed("21_ct_chest_nodule_followup.hl7")
    assert first.patient_mrn == later.patient_mrn
    a, b = first.reports[0], later.reports[0]
    assert (a.modality, a.body_region) == (b.modality, b.body_region) == ("CT", "chest")
    assert a.observed_at is not None and b.observed_at is not None
    assert b.observed_at - a.observed_at > timedelta(days=180)
    assert b.observed_at == datetime(2026, 8, 18, 10, 45, tzinfo=EDT)  # OBR-7 without seconds
    assert later.message_time == datetime(2026, 8, 18, 11, 30, 22, 123400, tzinfo=EDT)


@pytest.mark.parametrize(("name", "modality"), [
    ("12_xr_chest_followup_ft.hl7", "XR"),  # OBR-24 CR
    ("20_xr_chest_preop_v23_crlf.hl7", "XR"),  # OBR-24 RAD: from the procedure name
    ("13_mr_brain_final.hl7", "MR"),
])
def test_modality_from_section_or_procedure_name(name: str, modality: str) -> None:
    assert parsed(name).reports[0].modality == modality


def test_mllp_framing_and_byte_order_mark_are_ignored() -> None:
    raw = sample("01_ct_chest_nodule_tx.hl7")
    assert parse_oru(b"\x0b" + raw + b"\x1c\r") == parse_oru(raw)
    assert parse_oru("\ufeff" + raw.decode()) == parse_oru(raw)


# --- inline messages: what real feeds do ----------------------------------------------------


def test_escape_sequences_are_decoded_once() -> None:
    text = parse_oru(message(MSH, PID, OBR, obx(
        "a \\E\\T\\E\\ b \\X41\\ c \\H\\bold\\N\\ d\\.sp\\e \\.sp2\\f C:\\temp \\Zlocal\\g"
    ))).reports[0].text
    assert text == "a \\T\\ b A c bold d\ne\n\nf C:\\temp g"  # lines are right-stripped


def test_unescaped_component_separators_in_tx_stay_text() -> None:
    report = parse_oru(message(MSH, PID, OBR, obx("Nodule 3^4 mm & stable"))).reports[0]
    assert report.text == "Nodule 3^4 mm & stable"


def test_raw_line_break_inside_obx_value_continues_the_segment() -> None:
    raw = message(MSH, PID, OBR, obx("First line\nsecond line"), obx("Third", setid=2))
    assert parse_oru(raw).reports[0].text == "First line\nsecond line\nThird"


def test_obx_without_value_type_is_text_but_numeric_and_encapsulated_are_not() -> None:
    raw = message(MSH, PID, OBR, obx("Keep me", value_type=""), obx("7", "NM", 2),
                  obx("^application^pdf^Base64^JVBERi0=", "ED", 3), obx("And me", "ST", 4))
    assert parse_oru(raw).reports[0].text == "Keep me\nAnd me"


def test_empty_text_lines_are_kept_inside_but_trimmed_at_the_ends() -> None:
    raw = message(MSH, PID, OBR, obx("", setid=1), obx("A", setid=2), obx("", setid=3),
                  obx("B", setid=4), obx("", setid=5))
    assert parse_oru(raw).reports[0].text == "A\n\nB"


def test_nonstandard_encoding_characters() -> None:
    msh = "MSH|@*\\%|RIS@1.2.3@ISO|HOSP|RADNLP|HOSP|20260110120000||ORU@R01|C77|P|2.4"
    obr = seg("OBR", {1: "1", 3: "ACC77", 4: "70450@CT HEAD WITHOUT CONTRAST@CPT4", 25: "F",
                      32: "33%LEE%ANN"})
    pid = seg("PID", {1: "1", 3: "MRN7@@@HOSP@MR"})
    result = parse_oru(message(msh, pid, obr, obx("Normal. 5\\T\\6 a\\S\\b").replace("^", "@")))
    assert (result.control_id, result.patient_mrn, result.patient_mrn_authority) == (
        "C77", "MRN7", "HOSP")
    [report] = result.reports
    assert report.text == "Normal. 5%6 a@b"
    assert (report.procedure_code, report.modality, report.body_region) == ("70450", "CT", "head")
    assert report.interpreter == "LEE, ANN (33)"
    ack = build_ack(message(msh, pid, obr), "AA", now=NOW)
    header = hl7.parse(ack).segment("MSH")
    assert str(header[5]) == "RIS^1.2.3^ISO"
    assert str(hl7.parse(ack).segment("MSA")[2]) == "C77"


def test_procedure_name_inference_uses_the_lexicon() -> None:
    raw = message(MSH, PID, with_obr(o4="74176^CT ABD \\T\\ PELVIS W/O CONTRAST^CPT4", o24=""),
                  obx("Normal."))
    report = parse_oru(raw).reports[0]
    assert report.procedure_name == "CT ABD & PELVIS W/O CONTRAST"
    assert (report.modality, report.body_region) == ("CT", "abdomen/pelvis")
    knee = parse_oru(message(MSH, PID, with_obr(o4="73721^MRI KNEE LEFT^CPT4", o24="RAD"),
                             obx("Normal."))).reports[0]
    assert (knee.modality, knee.body_region) == ("MR", "lower extremity")
    unknown = parse_oru(message(MSH, PID, with_obr(o4="99999^SPECIAL PROCEDURE^L", o24="RAD"),
                                obx("Done."))).reports[0]
    assert (unknown.modality, unknown.body_region) == (None, None)


@pytest.mark.parametrize(("section", "procedure", "modality"), [
    ("DX", "CHEST 2 VIEWS", "XR"),
    ("CR", "CHEST 2 VIEWS", "XR"),
    ("XR", "CHEST 2 VIEWS", "XR"),
    ("RAD", "CHEST 2 VIEWS", "XR"),  # "views" are radiographs
    ("RAD", "CHEST", None),
    ("RX", "CHEST", "XR"),  # HL7 table 0074: radiograph
    ("NMS", "SPECIAL PROCEDURE", "NM"),
    ("RAD", "MRI BRAIN WITHOUT CONTRAST", "MR"),
    ("MR", "SPECIAL PROCEDURE", "MR"),
    ("NM", "SPECIAL PROCEDURE", "NM"),
    ("PT", "SPECIAL PROCEDURE", "PT"),
    ("CT", "MRI BRAIN", "CT"),  # a DICOM modality in OBR-24 wins over the name
    ("", "US ABDOMEN COMPLETE", "US"),
    ("", "PET/CT SKULL BASE TO MID-THIGH", "PT"),
])
def test_modality_rules(section: str, procedure: str, modality: str | None) -> None:
    raw = message(MSH, PID, with_obr(o4=f"1^{procedure}^L", o24=section), obx("Text."))
    assert parse_oru(raw).reports[0].modality == modality


@pytest.mark.parametrize(("obr4", "section", "expected"), [
    # CPT codes (RadLex Playbook and CPT ranges: terminology/procedures.py) decide first.
    ("71250^OUTSIDE STUDY^CPT4", "RAD", ("CT", "chest")),
    ("70551^^C4", "", ("MR", "head")),
    ("74177^CT A/P^CPT", "CT", ("CT", "abdomen/pelvis")),
    ("73721^MRI JOINT LOWER EXTREMITY^CPT4", "RAD", ("MR", "lower extremity")),
    ("77067^SCREENING^CPT4", "RAD", ("MG", "breast")),
    ("78815^PET/CT^CPT4", "NM", ("PT", "whole body")),  # the code outranks OBR-24
    ("70551^MRI BRAIN^CPT4", "CT", ("MR", "head")),
    ("76536^US THYROID^CPT4", "US", ("US", "thyroid")),  # the text's finer region
    ("71045^^CPT4", "", ("XR", "chest")),
    # RadLex Playbook RPIDs, by prefix or under a Playbook coding system.
    ("RPID16^CT Chest wo^RADLEX", "RAD", ("CT", "chest")),
    ("RPID522^EXAM^RADLEX", "", ("MR", "lower extremity")),
    ("2503^XR Chest 2V^RPID", "RAD", ("XR", "chest")),
    # A code outside the known ranges, or a local code: the procedure text, then OBR-24.
    ("99999^CT HEAD WITHOUT CONTRAST^CPT4", "RAD", ("CT", "head")),
    ("71250^MRI BRAIN^L", "RAD", ("MR", "head")),
    ("99999^SPECIAL PROCEDURE^L", "MR", ("MR", None)),
])
def test_exam_modality_and_region_from_the_procedure_code(
        obr4: str, section: str, expected: tuple[str | None, str | None]) -> None:
    raw = message(MSH, PID, with_obr(o4=obr4, o24=section), obx("Text."))
    report = parse_oru(raw).reports[0]
    assert (report.modality, report.body_region) == expected


def test_accession_fallbacks() -> None:
    def accession(obr: str, orc: str = ORC) -> str:
        return parse_oru(message(MSH, PID, orc, obr, obx("Text."))).reports[0].accession

    assert accession(OBR) == "ACC9"
    assert accession(with_obr(o3="")) == "ACC9"  # ORC-3
    assert accession(with_obr(o3="", o2="PLC42"), seg("ORC", {1: "RE"})) == "PLC42"
    assert accession(with_obr(o3="", o2="", o18="ACC18"), seg("ORC", {1: "RE"})) == "ACC18"
    assert accession(with_obr(o3="", o2=""), seg("ORC", {1: "RE", 2: "PLC5"})) == "PLC5"
    error = refusal(message(MSH, PID, with_obr(o2="", o3=""), obx("Text.")))
    assert (error.ack_code, error.error_code) == ("AE", 101)
    assert "OBR 1 has no accession number: OBR-3 (filler order number)" in error.reason


def test_providers() -> None:
    def report(**changes: str) -> ParsedReport:
        return parse_oru(message(MSH, PID, ORC, with_obr(**changes), obx("Text."))).reports[0]

    assert report().ordering_provider == "DOE, JOHN (1111)"
    assert report().interpreter == "ROE, JANE (2222)"
    assert report(o32="3333^SMITH^ANN").interpreter == "SMITH, ANN (3333)"  # sent as XCN
    assert report(o32="3333&SMITH&ANN^20260110").interpreter == "SMITH, ANN (3333)"
    assert report(o32="4444").interpreter == "4444"
    assert report(o16="^ONLYNAME").ordering_provider == "ONLYNAME"
    assert report(o16="").ordering_provider is None
    orc12 = seg("ORC", {1: "RE", 3: "ACC9", 12: "5555^ORC^DOC"})
    raw = message(MSH, PID, orc12, with_obr(o16=""), obx("Text."))
    assert parse_oru(raw).reports[0].ordering_provider == "ORC, DOC (5555)"


@pytest.mark.parametrize(("obr25", "expected"), [("F", "F"), ("C", "C"), ("X", "X"), ("P", "P"),
                                                 ("A", "P"), ("R", "P"), ("I", "P")])
def test_result_status_mapping(obr25: str, expected: str) -> None:
    raw = message(MSH, PID, with_obr(o25=obr25), obx("Text."))
    assert parse_oru(raw).reports[0].result_status == expected


def test_missing_obr25_takes_the_obx11_status_when_all_lines_agree() -> None:
    agreeing = message(MSH, PID, with_obr(o25=""), obx("A", setid=1), obx("B", setid=2))
    assert parse_oru(agreeing).reports[0].result_status == "F"
    mixed = message(MSH, PID, with_obr(o25=""), obx("A", setid=1), obx("B", setid=2, status="P"))
    error = refusal(mixed)
    assert (error.ack_code, error.error_code, error.field_position) == ("AE", 101, 25)
    assert "OBR-25 (result status) is empty" in error.reason


def test_cancellation_may_come_without_text() -> None:
    [report] = parse_oru(message(MSH, PID, with_obr(o25="X"))).reports
    assert (report.result_status, report.text) == ("X", "")


def test_timestamp_forms() -> None:
    def observed(value: str) -> datetime | None:
        return parse_oru(message(MSH, PID, with_obr(o7=value), obx("T"))).reports[0].observed_at

    assert observed("20260110") == datetime(2026, 1, 10, tzinfo=UTC)
    assert observed("202601101205") == datetime(2026, 1, 10, 12, 5, tzinfo=UTC)
    assert observed("20260110120559.25+0130") == datetime(
        2026, 1, 10, 12, 5, 59, 250000, tzinfo=timezone(timedelta(hours=1, minutes=30)))
    assert observed("") is None


def test_several_pids_of_the_same_patient_are_accepted() -> None:
    raw = message(MSH, PID, OBR, obx("A"), PID, with_obr(o1="2", o3="ACC10"), obx("B"))
    result = parse_oru(raw)
    assert [r.accession for r in result.reports] == ["ACC9", "ACC10"]
    assert [r.text for r in result.reports] == ["A", "B"]


# --- refusals ------------------------------------------------------------------------------

REFUSALS = [
    ("", "AE", 100, "it is empty"),
    (b"\x00\xff\xfe garbage \x81\x9d", "AE", 100, "does not start with MSH"),
    ("PID|1||MRN1\rOBR|1", "AE", 100, "not an HL7 v2 message: does not start with MSH"),
    ("MSH", "AE", 102, "MSH-1/MSH-2 (encoding characters)"),
    ("MSH|^^\\&|RIS|HOSP|||20260110||ORU^R01|C1|P|2.5.1", "AE", 102, "MSH-2"),
    (GOOD.replace("ORU^R01^ORU_R01", "ADT^A01^ADT_A01"), "AR", 200,
     "MSH-9 (message type) is ADT^A01; only ORU^R01 is accepted"),
    (GOOD.replace("|2.5.1|", "|2.2|"), "AR", 203, "MSH-12 (version id) '2.2' is not supported"),
    (GOOD.replace("|2.5.1|", "||"), "AR", 203, "MSH-12 (version id) is empty"),
    (GOOD.replace("|CTRL0001|", "||"), "AE", 101, "MSH-10 (message control id) is empty"),
    (GOOD.replace("MRN900001^^^HOSP^MR", ""), "AE", 101, "PID-3 (patient identifier list)"),
    (message(MSH, ORC, OBR, obx("x")), "AE", 100, "no PID segment"),
    (message(MSH, PID, ORC), "AE", 100, "no OBR segment"),
    (message(MSH, PID, ORC, OBR), "AE", 101,
     "OBR 1 (accession ACC9) has no report text (no TX/FT/ST OBX)"),
    (message(MSH, PID, OBR, obx("7", "NM")), "AE", 101, "has no report text (no TX/FT/ST OBX)"),
    (message(MSH, PID, OBR, obx("   ")), "AE", 101, "its TX/FT/ST OBX values are empty"),
    (message(MSH, PID, obx("x"), OBR), "AE", 100, "OBX 1 comes before any OBR"),
    (message(MSH, PID, with_obr(o25="Q"), obx("x")), "AE", 103, "OBR-25 (result status) 'Q'"),
    (message(MSH, PID, with_obr(o7="2026-01-10"), obx("x")), "AE", 102,
     "OBR 1: OBR-7 (observation date/time) is not an HL7 date/time: '2026-01-10'"),
    (message(MSH, PID, with_obr(o7="20261310"), obx("x")), "AE", 102, "OBR-7"),
    (GOOD.replace("|20260110120000|", "|yesterday|", 1), "AE", 102, "MSH-7"),
    (message(MSH, PID, OBR, obx("x"), MSH, PID, OBR, obx("y")), "AE", 100,
     "more than one message"),
    (message(MSH, PID, OBR, obx("x"), seg("PID", {1: "2", 3: "OTHER^^^HOSP^MR"})), "AE", 100,
     "PID 2 names another patient"),
]


@pytest.mark.parametrize(("raw", "ack_code", "error_code", "reason"), REFUSALS)
def test_refusals_name_the_problem(raw: str | bytes, ack_code: str, error_code: int,
                                   reason: str) -> None:
    error = refusal(raw)
    assert (error.ack_code, error.error_code) == (ack_code, error_code)
    assert reason in error.reason


def test_refusal_locates_the_segment_and_field() -> None:
    error = refusal(message(MSH, PID, OBR, obx("x"), with_obr(o1="2", o3="ACC2", o25="Q"),
                            obx("y")))
    assert (error.segment, error.segment_sequence, error.field_position) == ("OBR", 2, 25)
    assert error.reason.startswith("OBR 2: ")
    error = refusal(GOOD.replace("|CTRL0001|", "||"))
    assert (error.segment, error.segment_sequence, error.field_position) == ("MSH", 1, 10)


def test_invalid_utf8_bytes_in_a_good_message_are_read_not_refused() -> None:
    raw = message(MSH, PID, OBR, obx("Size 2 cm. Caf\xe9 \u2013 ok")).encode("cp1252")
    raw = raw.replace(b"ok", b"\x81ok")  # undefined in cp1252 too: falls back to latin-1
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    text = parse_oru(raw).reports[0].text
    assert text.startswith("Size 2 cm. Caf\xe9 ") and text.endswith("ok")


@pytest.mark.parametrize("raw", [None, 42, ["MSH"]])
def test_non_text_input_is_refused(raw: object) -> None:
    error = refusal(raw)  # type: ignore[arg-type]
    assert (error.ack_code, error.error_code) == ("AE", 100)


def test_parser_failures_become_hl7_message_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_args: object, **_kwargs: object) -> None:
        raise HL7apyException("broken segment")

    monkeypatch.setattr(intake_hl7, "parse_segment", refuse)
    error = refusal(GOOD)
    assert (error.ack_code, error.error_code, error.segment) == ("AE", 102, "PID")
    assert "broken segment" in error.reason

    def crash(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr(intake_hl7, "parse_segment", crash)
    error = refusal(GOOD)
    assert (error.ack_code, error.error_code) == ("AE", 207)
    assert "RuntimeError: bug" in error.reason


def test_mutated_samples_only_ever_raise_hl7_message_error() -> None:
    rng = random.Random(20260110)
    originals = [sample(name) for name in SAMPLE_NAMES]
    alphabet = b"|^~\\&\r\nAZaz09 .+-"
    outcomes = set()
    for _ in range(250):
        data = bytearray(rng.choice(originals))
        for _edit in range(rng.randint(1, 6)):
            position = rng.randrange(len(data))
            roll = rng.random()
            if roll < 0.4:
                data[position] = rng.choice(alphabet)
            elif roll < 0.7:
                del data[position:position + rng.randint(1, 40)]
            else:
                data[position:position] = bytes([rng.randrange(256)])
        try:
            parse_oru(bytes(data))
            outcomes.add("parsed")
        except HL7MessageError as error:
            outcomes.add(error.ack_code)
            assert error.reason
            ack = build_ack(bytes(data), error.ack_code, error=error)
            assert hl7.parse(ack).segment("MSA")[1][0] == error.ack_code
    assert {"parsed", "AE"} <= outcomes


def test_arbitrary_input_never_raises_anything_else(figures: Callable[[str], None]) -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(st.one_of(st.binary(max_size=300), st.text(max_size=300),
                     st.text(max_size=200).map(lambda tail: "MSH|^~\\&|" + tail)))
    def check(raw: str | bytes) -> None:
        try:
            parse_oru(raw)
            outcomes["parsed"] += 1
        except HL7MessageError as error:
            assert error.ack_code in {"AE", "AR"}
            outcomes[f"refused {error.ack_code}"] += 1
        ack = build_ack(raw, "AE")
        assert hl7.parse(ack).segment("MSA")[2][0] == (peek_control_id(raw) or "")

    check()
    figures(f"HL7 parser: {sum(outcomes.values())} generated inputs, none raised anything but "
            f"a refusal ({', '.join(f'{k} {n}' for k, n in sorted(outcomes.items()))})")


# --- peek_control_id ------------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_peek_control_id_agrees_with_the_parser(name: str) -> None:
    assert peek_control_id(sample(name)) == parsed(name).control_id


def test_peek_control_id_on_broken_input() -> None:
    assert peek_control_id(b"\x0b" + GOOD.encode() + b"\x1c\r") == "CTRL0001"
    assert peek_control_id(GOOD.replace("ORU^R01", "ADT^A01")) == "CTRL0001"
    assert peek_control_id("junk\rMSH|^~\\&|A|B|C|D|2026||ORU^R01|X9|P|2.4") == "X9"
    for garbage in (None, "", b"\xff\xfe", "MSH", "MSH|^~\\&|A|B", "hello world"):
        assert peek_control_id(garbage) is None


# --- build_ack ------------------------------------------------------------------------------


def test_aa_ack_swaps_applications_and_echoes_the_control_id() -> None:
    raw = sample("01_ct_chest_nodule_tx.hl7")
    ack = build_ack(raw, "AA", control_id="ACK0001", now=NOW)
    assert ack.split("\r") == [
        "MSH|^~\\&|RADNLP|HOSP|EPICRAD|HOSP|20261001123000+0000||ACK^R01^ACK|ACK0001|P|2.5.1",
        "MSA|AA|HOSP260112143512001",
    ]
    parsed_ack = parse_message(ack, find_groups=False)
    assert parsed_ack.msh.msh_9.to_er7() == "ACK^R01^ACK"
    assert parsed_ack.msa.msa_1.to_er7() == "AA"
    assert parsed_ack.msa.msa_2.to_er7() == "HOSP260112143512001"
    assert str(hl7.parse(ack).segment("MSA")[2]) == "HOSP260112143512001"


def test_ack_text_for_aa_goes_to_msa3() -> None:
    ack = build_ack(GOOD, "AA", text="duplicate; already received", now=NOW)
    assert ack.split("\r")[1] == "MSA|AA|CTRL0001|duplicate; already received"
    assert "ERR" not in ack


def test_error_ack_v25_has_err_location_code_severity_and_escaped_reason() -> None:
    reason = "OBR 2 bad | field ^ with & all ~ separators \\ here"
    error = HL7MessageError(reason, error_code=101, segment="OBR", segment_sequence=2,
                            field_position=25)
    ack = build_ack(GOOD, "AE", error=error, control_id="ACK0002", now=NOW)
    escaped = "OBR 2 bad \\F\\ field \\S\\ with \\T\\ all \\R\\ separators \\E\\ here"
    _msh, msa, err = ack.split("\r")
    assert msa == f"MSA|AE|CTRL0001|{escaped}"
    assert err == f"ERR||OBR^2^25|101^Required field missing^HL70357|E||||{escaped}"
    message_ = hl7.parse(ack)
    assert message_.unescape(str(message_.segment("ERR")[8])) == reason
    assert message_.unescape(str(message_.segment("MSA")[3])) == reason
    parsed_ack = parse_message(ack, find_groups=False)
    assert parsed_ack.err.err_3.to_er7() == "101^Required field missing^HL70357"
    assert parsed_ack.err.err_4.to_er7() == "E"


def test_error_ack_for_v23_puts_code_and_location_in_err1() -> None:
    raw = sample("08_mr_lumbar_spine_v23_lf.hl7")
    error = HL7MessageError("PID-3 (patient identifier list) has no identifier (MRN)",
                            error_code=101, segment="PID", segment_sequence=1, field_position=3)
    msh, msa, err = build_ack(raw, "AE", error=error, now=NOW).split("\r")
    fields = msh.split("|")
    assert (fields[2], fields[4], fields[8], fields[11]) == ("RADNLP", "RISX", "ACK^R01", "2.3")
    assert msa == "MSA|AE|NI0000093321|PID-3 (patient identifier list) has no identifier (MRN)"
    assert err == "ERR|PID^1^3^101&Required field missing&HL70357"
    assert parse_message(build_ack(raw, "AE", error=error)).msa.msa_2.to_er7() == "NI0000093321"


@pytest.mark.parametrize(("raw", "ack_code", "error_code", "reason"), REFUSALS)
def test_ack_for_every_refusal_parses_back(raw: str | bytes, ack_code: str, error_code: int,
                                          reason: str) -> None:
    error = refusal(raw)
    ack = build_ack(raw, error.ack_code, error=error, now=NOW)
    message_ = hl7.parse(ack)
    assert str(message_.segment("MSA")[1]) == ack_code
    assert str(message_.segment("MSA")[2]) == (peek_control_id(raw) or "")
    err = message_.segment("ERR")
    assert f"{error_code}^" in str(err) or f"{error_code}&" in str(err)
    assert parse_message(ack, find_groups=False).msa.msa_1.to_er7() == ack_code


@pytest.mark.parametrize("raw", [None, b"", b"\xff\xfe\x00garbage", "MSH", "MSH|", "not hl7"])
def test_ack_for_garbage(raw: str | bytes | None) -> None:
    ack = build_ack(raw, "AR", error=HL7MessageError("unreadable", ack_code="AR", error_code=100),
                    now=NOW)
    msh, msa, err = ack.split("\r")
    assert msh.startswith("MSH|^~\\&|RADNLP|||")
    assert msh.endswith("|ACK^R01^ACK|" + msh.split("|")[9] + "|P|2.5.1")
    assert msa == "MSA|AR||unreadable"
    assert err == "ERR|||100^Segment sequence error^HL70357|E||||unreadable"
    assert str(hl7.parse(ack).segment("MSA")[1]) == "AR"
    assert parse_message(ack, find_groups=False).msa.msa_1.to_er7() == "AR"


def test_error_ack_without_an_error_object_still_has_err() -> None:
    ack = build_ack(GOOD, "AE", text="could not store", now=NOW)
    assert ack.split("\r")[1:] == [
        "MSA|AE|CTRL0001|could not store",
        "ERR|||207^Application internal error^HL70357|E||||could not store",
    ]


def test_ack_control_ids_are_new_and_fit_msh10() -> None:
    ids = {build_ack(GOOD, "AA").split("\r")[0].split("|")[9] for _ in range(50)}
    assert len(ids) == 50
    assert all(len(i) <= 20 and i != "CTRL0001" for i in ids)


def test_ack_keeps_the_processing_id_and_uses_now_in_utc_when_naive() -> None:
    ack = build_ack(GOOD.replace("|CTRL0001|P|", "|CTRL0001|T|"), "AA",
                    now=datetime(2026, 2, 3, 4, 5, 6))
    fields = ack.split("\r")[0].split("|")
    assert (fields[6], fields[10]) == ("20260203040506+0000", "T")
