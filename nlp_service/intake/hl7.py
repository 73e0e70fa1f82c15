"""HL7 v2 ORU^R01 intake: read a radiology result message into a ParsedMessage, build its ACK."""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.exceptions import HL7apyException
from hl7apy.parser import get_message_info, parse_segment

from nlp_service.intake.message import (
    AckCode,
    HL7MessageError,
    ParsedMessage,
    ParsedReport,
    ResultStatus,
)
from terminology.procedures import procedure_modality_region
from terminology.vocabulary import modality_code

# hl7apy ships 2.1-2.8.2; 2.1 and 2.2 lack the ORU fields we read (OBR-32 as CNN, CX.4 of PID-3).
SUPPORTED_VERSIONS = ("2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.8", "2.8.1", "2.8.2")
DEFAULT_ACK_VERSION = "2.5.1"
ACK_APPLICATION = "RADNLP"
TEXT_VALUE_TYPES = frozenset({"TX", "FT", "ST"})
# Table 0123 (OBR-25) and table 0085 (OBX-11) as stored: anything not yet final is preliminary.
RESULT_STATUS: dict[str, ResultStatus] = {
    "F": "F", "C": "C", "X": "X", "P": "P", "A": "P", "R": "P", "I": "P", "S": "P", "O": "P",
}
ERROR_CODE_TEXT = {
    0: "Message accepted", 100: "Segment sequence error", 101: "Required field missing",
    102: "Data type error", 103: "Table value not found", 104: "Value too long",
    200: "Unsupported message type", 201: "Unsupported event code",
    202: "Unsupported processing id", 203: "Unsupported version id",
    204: "Unknown key identifier", 205: "Duplicate key identifier",
    206: "Application record locked", 207: "Application internal error",
}
# OBR-24 (diagnostic service section) IDs of HL7 table 0074 that name a modality, in words the
# vocabulary reads; DICOM codes (CT, MR, CR, DX, ...) are read as they are.
SECTION_WORDS = {"RX": "radiograph", "DR": "radiograph", "XRC": "fluoroscopy",
                 "NMR": "magnetic resonance", "NMS": "nuclear medicine", "RUS": "ultrasound",
                 "VUS": "ultrasound", "OUS": "ultrasound", "CUS": "ultrasound"}
# OBR-24 values that stand for a whole imaging department: the procedure decides first.
DEPARTMENT_SECTIONS = frozenset({"RAD", "XR", "IMG", "DI", "RADIOLOGY"})
_PARSED_SEGMENTS = frozenset({"MSH", "PID", "ORC", "OBR", "OBX"})
_MESSAGE_BOUNDARIES = frozenset({"MSH", "FHS", "BHS", "BTS", "FTS"})
_NAME_INDEX = re.compile(r"_(\d+)$")
_TIMESTAMP = re.compile(
    r"(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,6}))?([+-]\d{4})?"
)
_VERSION_LIKE = re.compile(r"2\.\d(?:\.\d)?")


@dataclass(frozen=True)
class _Separators:
    """The message's encoding characters (MSH-1 and MSH-2)."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"
    truncation: str | None = None

    def as_hl7apy(self) -> dict[str, str]:
        chars = {"FIELD": self.field, "COMPONENT": self.component,
                 "REPETITION": self.repetition, "ESCAPE": self.escape,
                 "SUBCOMPONENT": self.subcomponent, "SEGMENT": "\r", "GROUP": "\r"}
        if self.truncation:
            chars["TRUNCATION"] = self.truncation
        return chars


STANDARD = _Separators()


@dataclass
class _Group:
    """One OBR with the ORC before it and its OBX lines."""

    obr: Any
    sequence: int
    orc: Any | None
    obx: list[tuple[int, Any]] = field(default_factory=list)


def parse_oru(raw: str | bytes) -> ParsedMessage:
    """Read an ORU^R01 message (v2.3-2.8.2); every refusal is an ``HL7MessageError``."""
    try:
        return _parse(raw)
    except HL7MessageError:
        raise
    except HL7apyException as error:
        raise HL7MessageError(f"the HL7 parser refused the message: {error}",
                              error_code=102) from error
    except Exception as error:
        raise HL7MessageError(f"cannot read the message ({type(error).__name__}: {error})",
                              error_code=207) from error


def peek_control_id(raw: str | bytes | None) -> str | None:
    """MSH-10 by plain splitting, for messages too broken to parse; ``None`` if unreadable."""
    header = _read_header(raw)
    if header is None:
        return None
    fields, seps = header
    return _unescape(_msh(fields, 10), seps).strip() or None


def build_oru(control_id: str, accession: str, text: str, *, mrn: str,
              mrn_authority: str = "HOSP", status: str = "F",
              observed_at: datetime | None = None,
              procedure: tuple[str, str, str] = ("", "", ""), modality: str = "",
              version: str = "2.5.1", sending_application: str = "RIS",
              birth_date: date | None = None, ordering_provider: str = "",
              interpreter: str = "") -> str:
    """An ORU^R01 carrying ``text`` as one TX OBX per line (segments joined by CR), e.g. to
    feed reports held as text files to the service. Providers are ER7 as sent: OBR-16
    "ID^FAMILY^GIVEN", OBR-32 "ID&FAMILY&GIVEN"."""
    stamp = (observed_at or datetime.now(UTC)).strftime("%Y%m%d%H%M%S%z")
    code, name, system = (_escape(part) for part in procedure)
    segments = [
        ["MSH", "^~\\&", _escape(sending_application), "", "RADNLP", "", stamp, "",
         "ORU^R01^ORU_R01", _escape(control_id), "P", version],
        ["PID", "1", "", f"{_escape(mrn)}^^^{_escape(mrn_authority)}^MR", "", "", "",
         birth_date.strftime("%Y%m%d") if birth_date else ""],
        ["OBR", "1", "", _escape(accession), f"{code}^{name}^{system}", "", "", stamp,
         *[""] * 8, ordering_provider, *[""] * 7, _escape(modality), status,
         *[""] * 6, interpreter],
    ]
    segments += [["OBX", str(number), "TX", "&GDT^REPORT TEXT", "", _escape(line), "", "", "",
                  "", "", status] for number, line in enumerate(text.split("\n"), 1)]
    return "\r".join(_segment(fields) for fields in segments) + "\r"


def build_ack(raw: str | bytes | None, ack_code: AckCode, *, error: HL7MessageError | None = None,
              text: str | None = None, control_id: str | None = None,
              now: datetime | None = None) -> str:
    """The ACK of ``raw`` (segments joined by CR); ``control_id`` is the ACK's own MSH-10.

    Works on any input: what cannot be read from the original is left empty or defaulted.
    """
    header = _read_header(raw)
    fields, seps = header if header is not None else ([], STANDARD)
    version = _first_component(_msh(fields, 12), seps)
    if not _VERSION_LIKE.fullmatch(version):
        version = DEFAULT_ACK_VERSION
    processing = _first_component(_msh(fields, 11), seps).upper()
    stamp = now or datetime.now(UTC)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    msh = [
        "MSH", "^~\\&",
        _recode(_msh(fields, 5), seps) or ACK_APPLICATION, _recode(_msh(fields, 6), seps),
        _recode(_msh(fields, 3), seps), _recode(_msh(fields, 4), seps),
        stamp.strftime("%Y%m%d%H%M%S%z"), "",
        # MSH-9.3 (message structure) exists from v2.3.1 on.
        "ACK^R01" if _version_key(version) < (2, 3, 1) else "ACK^R01^ACK",
        _escape(control_id) if control_id else "ACK" + uuid.uuid4().hex[:17].upper(),
        processing if processing in ("P", "T", "D") else "P",
        version,
    ]
    original_id = _unescape(_msh(fields, 10), seps).strip()
    if ack_code != "AA" and error is None:
        error = HL7MessageError(text or "message not accepted", ack_code=ack_code)
    message_text = text if text is not None else (error.reason if error and ack_code != "AA"
                                                  else "")
    segments = [_segment(msh), _segment(["MSA", ack_code, _escape(original_id),
                                         _escape(message_text)])]
    if ack_code != "AA" and error is not None:
        segments.append(_err_segment(error, version))
    return "\r".join(segments)


# --- parsing -------------------------------------------------------------------------------


def _parse(raw: str | bytes) -> ParsedMessage:
    if not isinstance(raw, str | bytes):
        raise HL7MessageError(f"not an HL7 v2 message: got {type(raw).__name__}, not text",
                              error_code=100)
    text = _to_text(raw)
    if not text:
        raise HL7MessageError("not an HL7 v2 message: it is empty", error_code=100)
    if not text.startswith("MSH"):
        raise HL7MessageError(
            f"not an HL7 v2 message: does not start with MSH (starts with {text[:12]!r})",
            error_code=100, segment="MSH", segment_sequence=1)
    if len(text) < 8 or text[3].isalnum() or text[3].isspace():
        raise HL7MessageError("MSH-1/MSH-2 (encoding characters) are missing or invalid",
                              error_code=102, segment="MSH", segment_sequence=1, field_position=2)
    if "\x00" in text:
        # No database stores NUL in text (PostgreSQL refuses it): refused, and kept as bytes.
        raise HL7MessageError("the message contains NUL characters", error_code=102)
    lines = _split_segments(text, text[3])
    try:
        chars, _, version = get_message_info(lines[0])
    except HL7apyException as error:
        raise HL7MessageError(f"MSH-2 (encoding characters) is invalid: {error}",
                              error_code=102, segment="MSH", segment_sequence=1,
                              field_position=2) from error
    seps = _Separators(field=chars["FIELD"], component=chars["COMPONENT"],
                       repetition=chars["REPETITION"], escape=chars["ESCAPE"],
                       subcomponent=chars["SUBCOMPONENT"], truncation=chars.get("TRUNCATION"))
    version = (version or "").strip()
    if not version:
        raise HL7MessageError("MSH-12 (version id) is empty", ack_code="AR", error_code=203,
                              segment="MSH", segment_sequence=1, field_position=12)
    if version not in SUPPORTED_VERSIONS:
        raise HL7MessageError(
            f"MSH-12 (version id) {version[:20]!r} is not supported; accepted: "
            f"{', '.join(SUPPORTED_VERSIONS)}",
            ack_code="AR", error_code=203, segment="MSH", segment_sequence=1, field_position=12)

    segments = _parse_segments(lines, version, seps)
    msh = segments[0][2]
    control_id = _first(msh, 10, seps)
    if not control_id:
        raise HL7MessageError("MSH-10 (message control id) is empty", error_code=101,
                              segment="MSH", segment_sequence=1, field_position=10)
    message_type = _message_type(msh, seps)

    pid, groups = _structure(segments, seps)
    mrn = _first(pid, 3, seps)
    if not mrn:
        raise HL7MessageError("PID-3 (patient identifier list) has no identifier (MRN)",
                              error_code=101, segment="PID", segment_sequence=1, field_position=3)
    authority = _first(pid, 3, seps, 4, 1) or _first(pid, 3, seps, 4, 2) or None
    return ParsedMessage(
        control_id=control_id, version=version, message_type=message_type, patient_mrn=mrn,
        patient_mrn_authority=authority,
        patient_birth_date=_birth_date(_first(pid, 7, seps)),
        sending_application=_hd(msh, 3, seps), sending_facility=_hd(msh, 4, seps),
        message_time=_timestamp(_first(msh, 7, seps), "MSH-7 (date/time of message)",
                                "MSH", 1, 7),
        reports=[_report(group, seps) for group in groups],
    )


# HL7 table 0211 (MSH-18 character set) names and the codec that reads them; ASCII and an
# empty MSH-18 are read as undeclared text (senders declare ASCII and send 8-bit text).
CHARACTER_SETS = {
    "8859/1": "latin-1", "8859/2": "iso8859-2", "8859/3": "iso8859-3", "8859/4": "iso8859-4",
    "8859/5": "iso8859-5", "8859/6": "iso8859-6", "8859/7": "iso8859-7",
    "8859/8": "iso8859-8", "8859/9": "iso8859-9", "8859/15": "iso8859-15",
    "UNICODE": "utf-8", "UNICODE UTF-8": "utf-8", "UTF-8": "utf-8",
    "ISO IR14": "shift_jis", "ISO IR87": "iso2022_jp", "ISO IR159": "iso2022_jp_2",
    "GB 18030-2000": "gb18030", "KS X 1001": "euc_kr", "BIG-5": "big5",
    # Not in table 0211, but what Japanese and Windows senders write.
    "SJIS": "shift_jis", "SHIFT_JIS": "shift_jis", "SHIFT-JIS": "shift_jis",
    "WINDOWS-1252": "cp1252", "CP1252": "cp1252",
}
UNDECLARED_CHARACTER_SETS = frozenset({"", "ASCII", "ISO IR6"})
_MSH_18 = re.compile(rb"MSH(?P<sep>[^A-Za-z0-9\s])")


def decode_hl7(raw: bytes) -> str:
    """HL7 bytes as text, the one way every path reads them: in the character set MSH-18
    declares, else UTF-8, else Windows-1252 (what 8-bit senders mean: its smart quotes are
    C1 control characters in Latin-1), else Latin-1 for the five bytes cp1252 leaves
    undefined. A declared set the bytes do not fit is a refusal (AR), never a guess."""
    declared = declared_character_set(raw)
    if declared not in UNDECLARED_CHARACTER_SETS:
        codec = CHARACTER_SETS.get(declared)
        if codec is None:
            raise HL7MessageError(
                f"MSH-18 (character set) {declared[:30]!r} is not supported; accepted: "
                f"{', '.join(sorted(CHARACTER_SETS))} (or none: UTF-8, else Windows-1252)",
                ack_code="AR", error_code=103, segment="MSH", segment_sequence=1,
                field_position=18)
        try:
            return raw.decode(codec)
        except UnicodeDecodeError as error:
            raise HL7MessageError(
                f"the message is not valid {declared} (MSH-18): byte {error.start} "
                f"({raw[error.start:error.start + 1].hex()}) cannot be read",
                ack_code="AR", error_code=102, segment="MSH", segment_sequence=1,
                field_position=18) from error
    for codec in ("utf-8", "cp1252"):
        try:
            return raw.decode(codec)
        except UnicodeDecodeError:
            continue
    return raw.decode("latin-1")


def declared_character_set(raw: bytes) -> str:
    """MSH-18's first repetition, upper-cased ("" when absent), read from the bytes: the
    header before it is ASCII in every character set HL7 allows."""
    match = _MSH_18.search(raw[:4096])
    if match is None:
        return ""
    line = re.split(rb"[\r\n]", raw[match.start():match.start() + 4096], maxsplit=1)[0]
    fields = line.split(match.group("sep"))
    if len(fields) < 18:
        return ""
    repetition = fields[1][1:2] or b"~"
    value = fields[17].split(repetition)[0]
    return value.decode("latin-1").strip().upper()


def _to_text(raw: str | bytes) -> str:
    text = decode_hl7(raw) if isinstance(raw, bytes) else raw
    # MLLP start/end bytes and a byte order mark are framing, not content.
    return text.strip("\x0b\x1c\ufeff\x00 \t\r\n")


def _split_segments(text: str, field_separator: str) -> list[str]:
    """Segments on CR, LF or CRLF; a line that does not start a segment continues the previous
    one (text with raw line breaks inside OBX-5)."""
    start = re.compile(r"[A-Z][A-Z0-9]{2}(?:" + re.escape(field_separator) + r"|\s*$)")
    segments: list[str] = []
    for line in re.split(r"\r\n|\r|\n", text):
        if not line.strip():
            continue
        if start.match(line) or not segments:
            segments.append(line.rstrip())
        else:
            segments[-1] += "\n" + line.rstrip()
    return segments


def _parse_segments(lines: list[str], version: str,
                    seps: _Separators) -> list[tuple[str, int, Any]]:
    """(name, occurrence, hl7apy segment) of the segments read; others (PV1, NTE, Z...) are
    skipped."""
    counts: dict[str, int] = {}
    parsed = []
    for index, line in enumerate(lines):
        name = line[:3]
        counts[name] = counts.get(name, 0) + 1
        if index > 0 and name in _MESSAGE_BOUNDARIES:
            raise HL7MessageError(f"more than one message: {name} at segment {index + 1}",
                                  error_code=100, segment=name, segment_sequence=counts[name])
        if name not in _PARSED_SEGMENTS:
            continue
        if name in ("MSH", "OBX"):
            # Only MSH-3/4/7/9/10/12 (read by get_message_info and plain fields) and OBX-2/5/11
            # are used; hl7apy's full datatype parse cost ~2 ms per MSH and ~3 ms per OBX, most
            # of a message's parse time. MSH-1 is the separator itself, hence the padding.
            fields = line.split(seps.field)
            if name == "MSH":
                fields.insert(1, seps.field)
            parsed.append((name, counts[name], _RawSegment(name, fields)))
            continue
        try:
            segment = parse_segment(line, version=version, encoding_chars=seps.as_hl7apy(),
                                    validation_level=VALIDATION_LEVEL.TOLERANT)
        except HL7apyException as error:
            raise HL7MessageError(f"{name} {counts[name]} cannot be parsed: {error}",
                                  error_code=102, segment=name,
                                  segment_sequence=counts[name]) from error
        parsed.append((name, counts[name], segment))
    return parsed


def _message_type(msh: Any, seps: _Separators) -> str:
    code, event = _first(msh, 9, seps).upper(), _first(msh, 9, seps, 2).upper()
    if (code, event) != ("ORU", "R01"):
        shown = "^".join(part for part in (code, event) if part) or "empty"
        raise HL7MessageError(f"MSH-9 (message type) is {shown[:20]}; only ORU^R01 is accepted",
                              ack_code="AR", error_code=200, segment="MSH", segment_sequence=1,
                              field_position=9)
    return "ORU^R01"


def _structure(segments: list[tuple[str, int, Any]],
               seps: _Separators) -> tuple[Any, list[_Group]]:
    """The PID and the OBR groups, in message order."""
    pid = None
    groups: list[_Group] = []
    pending_orc = None
    for name, sequence, segment in segments[1:]:
        if name == "PID":
            if pid is None:
                pid = segment
            elif _first(segment, 3, seps) != _first(pid, 3, seps):
                raise HL7MessageError(
                    f"PID {sequence} names another patient; one message must carry one patient",
                    error_code=100, segment="PID", segment_sequence=sequence, field_position=3)
        elif name == "ORC":
            pending_orc = segment
        elif name == "OBR":
            groups.append(_Group(obr=segment, sequence=sequence, orc=pending_orc))
            pending_orc = None
        elif name == "OBX":
            if not groups:
                raise HL7MessageError(f"OBX {sequence} comes before any OBR", error_code=100,
                                      segment="OBX", segment_sequence=sequence)
            groups[-1].obx.append((sequence, segment))
    if pid is None:
        raise HL7MessageError("no PID segment", error_code=100, segment="PID",
                              segment_sequence=1)
    if not groups:
        raise HL7MessageError("no OBR segment", error_code=100, segment="OBR",
                              segment_sequence=1)
    return pid, groups


def _report(group: _Group, seps: _Separators) -> ParsedReport:
    obr, orc, where = group.obr, group.orc, f"OBR {group.sequence}"
    accession = (_first(obr, 3, seps) or _first(orc, 3, seps) or _first(obr, 2, seps)
                 or _first(obr, 18, seps) or _first(orc, 2, seps))
    if not accession:
        raise HL7MessageError(
            f"{where} has no accession number: OBR-3 (filler order number), ORC-3, OBR-2, "
            "OBR-18 and ORC-2 are all empty",
            error_code=101, segment="OBR", segment_sequence=group.sequence, field_position=3)
    lines: list[str] = []
    statuses: list[str] = []
    for _sequence, obx in group.obx:
        value_type = _first(obx, 2, seps).upper()
        values = _reps(obx, 5, seps)
        # A value without a type is text in practice; ED, RP, NM, CE... are not report text.
        if value_type not in TEXT_VALUE_TYPES and (value_type or not values):
            continue
        statuses.append(_first(obx, 11, seps).upper())
        for value in values or [""]:
            lines.extend(line.rstrip() for line in _unescape(value, seps).split("\n"))
    text = "\n".join(lines).strip("\n")
    status = _result_status(obr, statuses, where, group.sequence, seps)
    if not text.strip() and status != "X":
        detail = "its TX/FT/ST OBX values are empty" if statuses else "no TX/FT/ST OBX"
        raise HL7MessageError(f"{where} (accession {accession}) has no report text ({detail})",
                              error_code=101, segment="OBR", segment_sequence=group.sequence)
    code, name, system = _procedure(obr, seps)
    modality, body_region = _modality_region(_first(obr, 24, seps), code, system, name)
    return ParsedReport(
        accession=accession, text=text, result_status=status,
        placer_number=_first(obr, 2, seps) or _first(orc, 2, seps) or None,
        procedure_code=code, procedure_name=name, procedure_system=system,
        modality=modality, body_region=body_region,
        observed_at=_timestamp(_first(obr, 7, seps), f"{where}: OBR-7 (observation date/time)",
                               "OBR", group.sequence, 7),
        ordering_provider=_provider(obr, 16, seps) or _provider(orc, 12, seps),
        interpreter=_interpreter(obr, seps),
    )


def _result_status(obr: Any, obx_statuses: list[str], where: str, sequence: int,
                   seps: _Separators) -> ResultStatus:
    value = _first(obr, 25, seps).upper()
    if value:
        if value not in RESULT_STATUS:
            raise HL7MessageError(
                f"{where}: OBR-25 (result status) {value[:10]!r} is not one of "
                f"{', '.join(RESULT_STATUS)}",
                error_code=103, segment="OBR", segment_sequence=sequence, field_position=25)
        return RESULT_STATUS[value]
    # Some senders leave OBR-25 empty and put the status on every OBX line (OBX-11).
    derived = {RESULT_STATUS.get(status) for status in obx_statuses}
    agreed = derived.pop() if len(derived) == 1 else None
    if agreed is not None:
        return agreed
    shown = ", ".join(sorted({s or "empty" for s in obx_statuses})) or "no text OBX"
    raise HL7MessageError(
        f"{where}: OBR-25 (result status) is empty and the OBX-11 statuses ({shown}) do not "
        "give one", error_code=101, segment="OBR", segment_sequence=sequence, field_position=25)


def _procedure(obr: Any, seps: _Separators) -> tuple[str | None, str | None, str | None]:
    """OBR-4 code, text and coding system; the alternate triplet when the first is empty."""
    primary = [_first(obr, 4, seps, n) for n in (1, 2, 3)]
    alternate = [_first(obr, 4, seps, n) for n in (4, 5, 6)]
    code, name, system = primary if (primary[0] or primary[1]) else alternate
    return code or None, name or None, system or None


def _provider(segment: Any, position: int, seps: _Separators) -> str | None:
    """An XCN field as "Family, Given (ID)" (family may carry FN subcomponents)."""
    reps = _reps(segment, position, seps)
    if not reps:
        return None
    ident = _part(reps[0], seps, 1)
    family = _part(reps[0], seps, 2, 1)
    given = _part(reps[0], seps, 3)
    return _person(ident, family, given)


def _interpreter(obr: Any, seps: _Separators) -> str | None:
    """OBR-32 (NDL whose first component is a CNN: ID&Family&Given) as "Family, Given (ID)"."""
    reps = _reps(obr, 32, seps)
    if not reps:
        return None
    first = reps[0].split(seps.component)
    second = _part(reps[0], seps, 2)
    if seps.subcomponent not in first[0] and second and not re.fullmatch(r"[\d.+-]+", second):
        # Sent as XCN (ID^Family^Given) instead of NDL; the second component is then no time.
        return _person(_part(reps[0], seps, 1), _part(reps[0], seps, 2, 1),
                       _part(reps[0], seps, 3))
    return _person(*(_part(reps[0], seps, 1, n) for n in (1, 2, 3)))


def _person(ident: str, family: str, given: str) -> str | None:
    name = ", ".join(part for part in (family, given) if part)
    if name and ident:
        return f"{name} ({ident})"
    return name or ident or None


def _hd(segment: Any, position: int, seps: _Separators) -> str | None:
    """An HD field's namespace id, or its universal id when that is all there is."""
    return _first(segment, position, seps) or _first(segment, position, seps, 2) or None


def _timestamp(value: str, where: str, segment: str, sequence: int,
               position: int) -> datetime | None:
    """An HL7 TS/DTM value as an aware datetime (UTC when it has no offset)."""
    if not value:
        return None
    match = _TIMESTAMP.fullmatch(value)
    try:
        if match is None:
            raise ValueError("not YYYY[MM[DD[HH[MM[SS[.S]]]]]][+/-ZZZZ]")
        year, month, day, hour, minute, second, fraction, offset = match.groups()
        zone = UTC
        if offset:
            sign = -1 if offset[0] == "-" else 1
            zone = timezone(sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5])))
        return datetime(int(year), int(month or 1), int(day or 1), int(hour or 0),
                        int(minute or 0), int(second or 0), int((fraction or "0").ljust(6, "0")),
                        tzinfo=zone)
    except ValueError as error:
        raise HL7MessageError(f"{where} is not an HL7 date/time: {value[:30]!r} ({error})",
                              error_code=102, segment=segment, segment_sequence=sequence,
                              field_position=position) from error


def _birth_date(value: str) -> date | None:
    """PID-7 as a date; a value that is not a date is ignored (it only serves age checks)."""
    try:
        moment = _timestamp(value, "PID-7 (date of birth)", "PID", 1, 7)
    except HL7MessageError:
        return None
    return moment.date() if moment is not None else None


# --- modality and body region of the exam -------------------------------------------------


def _modality_region(section: str, code: str | None, system: str | None,
                     name: str | None) -> tuple[str | None, str | None]:
    """The exam's modality and body region in the vocabulary's terms (so an exam and the
    recommendation it fulfils compare equal): from the procedure code (CPT or RadLex Playbook
    RPID), else a modality named by OBR-24, else the procedure name; a department-wide OBR-24
    ("RAD", "XR") counts only when nothing else names a modality."""
    section = section.strip().upper()
    named = modality_code(SECTION_WORDS.get(section, section)) if section else None
    specific = named if section not in DEPARTMENT_SECTIONS else None
    modality, region = procedure_modality_region(code, system, name, modality=specific)
    if modality is None and named is not None:
        modality, region = procedure_modality_region(code, system, name, modality=named)
    return modality, region


# --- field access on hl7apy segments -------------------------------------------------------


@dataclass(frozen=True)
class _RawSegment:
    """A segment split on the field separator only (``fields[n]`` is field n)."""

    name: str
    fields: list[str]


def _reps(segment: Any, position: int, seps: _Separators) -> list[str]:
    """The repetitions of a field as ER7 text exactly as sent (still escaped)."""
    if segment is None:
        return []
    if isinstance(segment, _RawSegment):
        value = segment.fields[position] if position < len(segment.fields) else ""
        return value.split(seps.repetition) if value else []
    name = f"{segment.name}_{position}"
    return [_er7(item, seps) for item in segment.children if item.name == name]


def _er7(field_: Any, seps: _Separators) -> str:
    # hl7apy's own to_er7() re-escapes the escape character in \X..\ and \.br\ sequences
    # (\.br\ comes back as \E\.br\E\), which would turn them into literal text; rebuild the
    # field from its leaves, whose values are the text as sent.
    return _join(field_.children, seps.component,
                 lambda component: _join(component.children, seps.subcomponent, _leaf))


def _join(children: Sequence[Any], separator: str, render: Any) -> str:
    """Children at their positions (hl7apy drops empty named components, keeping their index in
    the name, e.g. CX_4)."""
    parts: list[str] = []
    for child in children:
        match = _NAME_INDEX.search(child.name or "")
        position = int(match.group(1)) if match else len(parts) + 1
        while len(parts) < position - 1:
            parts.append("")
        parts.append(render(child))
    return separator.join(parts)


def _leaf(subcomponent: Any) -> str:
    value = subcomponent.value
    if value is None or isinstance(value, str):
        return value or ""
    raw = getattr(value, "value", None)
    return raw if isinstance(raw, str) else str(value.to_er7())


def _part(rep: str, seps: _Separators, component: int, subcomponent: int | None = None) -> str:
    """One component (and subcomponent) of a repetition, unescaped and stripped."""
    components = rep.split(seps.component)
    piece = components[component - 1] if len(components) >= component else ""
    if subcomponent is not None:
        subs = piece.split(seps.subcomponent)
        piece = subs[subcomponent - 1] if len(subs) >= subcomponent else ""
    return _unescape(piece, seps).strip()


def _first(segment: Any, position: int, seps: _Separators, component: int = 1,
           subcomponent: int | None = None) -> str:
    """A component of the field's first repetition ("" if absent)."""
    reps = _reps(segment, position, seps)
    return _part(reps[0], seps, component, subcomponent) if reps else ""


# --- escape sequences ----------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _escape_pattern(escape: str) -> re.Pattern[str]:
    e = re.escape(escape)
    return re.compile(
        e + r"(?:(?P<sep>[FSTREP])|X(?P<hex>[0-9A-Fa-f]*)"
        r"|\.(?P<fmt>br|sp|in|ti|sk|fi|nf|ce)\s*(?P<n>[+-]?\d*)"
        r"|(?P<drop>[HN]|Z[^" + e + r"\r\n]*|C[0-9A-Fa-f]{4}|M[0-9A-Fa-f]{4,6}))" + e
    )


def _unescape(text: str, seps: _Separators) -> str:
    """Decode HL7 escape sequences in one pass (so ``\\E\\T\\E\\`` stays the text ``\\T\\``);
    malformed sequences are left as they are."""
    if seps.escape not in text:
        return text
    separators = {"F": seps.field, "S": seps.component, "T": seps.subcomponent,
                  "R": seps.repetition, "E": seps.escape, "P": seps.truncation}

    def decode(match: re.Match[str]) -> str:
        if match.group("sep"):
            return separators[match.group("sep")] or match.group(0)
        if match.group("hex") is not None:
            digits = match.group("hex")
            if len(digits) % 2:
                return match.group(0)
            data = bytes.fromhex(digits)
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                return data.decode("cp1252", errors="replace")
        command = match.group("fmt")
        if command:
            count = int(match.group("n")) if match.group("n").lstrip("+-").isdigit() else 1
            if command == "br":
                return "\n"
            if command == "sp":
                return "\n" * max(count, 1)
            if command == "sk":
                return " " * max(count, 1)
            return "\n" if command == "ce" else ""
        return ""

    return _escape_pattern(seps.escape).sub(decode, text)


def _escape(text: str) -> str:
    """Text as an ER7 value with the standard encoding characters."""
    text = text.replace("\\", "\\E\\")
    for char, sequence in (("|", "\\F\\"), ("^", "\\S\\"), ("&", "\\T\\"), ("~", "\\R\\")):
        text = text.replace(char, sequence)
    return re.sub(r"[\r\n]+", " ", text)


# --- ACK -----------------------------------------------------------------------------------


def _read_header(raw: str | bytes | None) -> tuple[list[str], _Separators] | None:
    """MSH fields (index n-1 holds MSH-n, n >= 2) and separators, by plain splitting."""
    if not isinstance(raw, str | bytes):
        return None
    try:
        text = _to_text(raw)
    except HL7MessageError:  # a character set the bytes do not fit: the header is ASCII
        assert isinstance(raw, bytes)
        text = raw.decode("latin-1")
    except Exception:
        return None
    match = re.search(r"(?:^|[\r\n])(MSH[^\r\n]*)", text)
    if match is None or len(match.group(1)) < 8:
        return None
    line = match.group(1)
    field_separator = line[3]
    if field_separator.isalnum() or field_separator.isspace():
        return None
    fields = line.split(field_separator)
    chars = fields[1] if len(fields) > 1 else ""
    if len(chars) >= 4 and len(set(chars[:4] + field_separator)) == 5:
        seps = _Separators(field=field_separator, component=chars[0], repetition=chars[1],
                           escape=chars[2], subcomponent=chars[3],
                           truncation=chars[4] if len(chars) > 4 else None)
    else:
        seps = _Separators(field=field_separator)
    return fields, seps


def _msh(fields: list[str], position: int) -> str:
    return fields[position - 1] if len(fields) >= position else ""


def _first_component(value: str, seps: _Separators) -> str:
    return _unescape(value.split(seps.repetition)[0].split(seps.component)[0], seps).strip()


def _recode(value: str, seps: _Separators) -> str:
    """A field of the original (first repetition) in the standard encoding characters."""
    first = value.split(seps.repetition)[0]
    components = [
        "&".join(_escape(_unescape(sub, seps)) for sub in component.split(seps.subcomponent))
        for component in first.split(seps.component)
    ]
    return "^".join(components).rstrip("^&")


def _version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _segment(fields: list[str]) -> str:
    while len(fields) > 1 and not fields[-1]:
        fields.pop()
    return "|".join(fields)


def _err_segment(error: HL7MessageError, version: str) -> str:
    code = error.error_code
    code_text = ERROR_CODE_TEXT.get(code, "Application internal error")
    sequence = str(error.segment_sequence or 1) if error.segment else ""
    position = str(error.field_position) if error.field_position else ""
    if _version_key(version) >= (2, 5):
        location = "^".join((error.segment or "", sequence, position)).rstrip("^")
        return _segment(["ERR", "", location, f"{code}^{code_text}^HL70357", "E", "", "", "",
                         _escape(error.reason)])
    # Before 2.5, ERR-1 (ELD) holds both: segment^sequence^field^code&text&table.
    return _segment(["ERR", f"{error.segment or ''}^{sequence}^{position}^"
                            f"{code}&{code_text}&HL70357"])
