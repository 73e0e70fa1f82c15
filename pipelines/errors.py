"""Coded error messages, so a user can search for one."""


class Errors:
    E001 = "[E001] Unknown pipeline mode {mode!r}; choose one of: {modes}."
    E002 = "[E002] Report text must be a string, got {kind}."
    E003 = "[E003] Report text is empty."
    E004 = "[E004] Report is too long ({length} characters; the limit is {limit})."
    E005 = "[E005] Line is not valid JSON: {detail}."
    E006 = "[E006] JSON object has no non-empty string field 'text'."
    E007 = "[E007] Cannot read {path}: {detail}."
