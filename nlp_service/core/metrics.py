"""Prometheus metrics of the service (scraped at ``GET /metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

MESSAGES_RECEIVED = Counter("radnlp_hl7_messages_received_total",
                            "HL7 messages received, by transport", ["transport"])
MESSAGES_ACKED = Counter("radnlp_hl7_messages_acked_total",
                         "ACKs sent, by code (AA, AE, AR)", ["code"])
MESSAGES_DUPLICATE = Counter("radnlp_hl7_messages_duplicate_total",
                             "Messages received again (same control id and content)")
WORKER_MESSAGES = Counter("radnlp_worker_messages_total",
                          "Inbox messages the worker finished, by outcome", ["outcome"])
WORKER_REPORTS = Counter("radnlp_worker_reports_total", "Report versions stored")
BATCH_SECONDS = Histogram("radnlp_worker_batch_seconds",
                          "Time to process one batch, by phase: analyse (the pipeline), "
                          "prepare (FHIR resources, guideline checks), store (the transaction)",
                          ["phase"],
                          buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
