"""The HTTP API: HL7 intake, reports, analysis and FHIR R4 REST."""
