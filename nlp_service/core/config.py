"""Service settings, read from the environment with the ``RADNLP_`` prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RADNLP_", extra="ignore")

    pipeline_mode: str = Field(default="full", description="Pipeline mode: full or rules.")
    model: str = Field(default="default", description="Model version for full mode.")
    max_report_chars: int = Field(default=500_000, gt=0,
                                  description="Reports longer than this are rejected.")
    batch_size: int = Field(default=64, gt=0, description="Reports per pipeline batch.")

    log_level: str = Field(default="INFO", pattern="(?i)^(TRACE|DEBUG|INFO|SUCCESS|WARNING|"
                                                   "ERROR|CRITICAL)$",
                           description="Service log level (messages never carry report text).")
    database_url: str = Field(default="sqlite:///radnlp.db",
                              description="SQLAlchemy URL; a SQLite file by default, "
                                          "postgresql+psycopg://... in production.")
    http_host: str = Field(default="127.0.0.1", description="Address the HTTP API binds to.")
    http_port: int = Field(default=8000, ge=0, le=65535)
    mllp_host: str = Field(default="127.0.0.1", description="Address the MLLP listener binds to.")
    mllp_port: int = Field(default=2575, ge=0, le=65535)
    mllp_allowed_sources: str = Field(
        default="", description="Comma-separated addresses or networks (CIDR) allowed to "
                                "connect to the MLLP listener; empty allows any.")
    mllp_tls_cert: str | None = Field(default=None, description="PEM certificate: the MLLP "
                                                                "listener then speaks TLS.")
    mllp_tls_key: str | None = Field(default=None, description="PEM private key for TLS.")
    cors_origins: list[str] = Field(
        default_factory=list, description="Browser origins allowed to call the API from "
                                          "another site (JSON list); none by default.")
    max_message_bytes: int = Field(default=2_000_000, gt=0,
                                   description="Larger HL7 messages are refused (AR).")
    auth_required: bool = Field(
        default=True, description="Every endpoint but /healthz, /readyz, /login and the API "
                                  "docs asks for an API key (or a session from one).")
    secret_key: str | None = Field(
        default=None, description="Signs browser sessions; a random one per start when unset "
                                  "(sessions then end with the process).")
    session_max_age_seconds: int = Field(default=12 * 3600, gt=0,
                                         description="How long a browser session lasts.")
    public_url: str | None = Field(
        default=None, description="The service's public base URL (https://radnlp.example.org), "
                                  "for links and redirects; defaults to http://HTTP_HOST:"
                                  "HTTP_PORT. Never taken from a request's Host header.")
    fhir_base_url: str | None = Field(
        default=None, description="Public base URL of /fhir; defaults to PUBLIC_URL/fhir.")
    api_statement_timeout_seconds: float = Field(
        default=15.0, gt=0, description="A query of an API request running longer is "
                                        "cancelled (answered 503): no query outlives its "
                                        "request.")

    models_dir: str | None = Field(
        default=None, description="Folder of model versions (their artefacts); default: the "
                                  "installed pipelines/models. The active version is kept in "
                                  "the database, so this folder may be read-only.")
    worker_batch_size: int = Field(default=64, gt=0,
                                   description="Inbox messages a worker claims at once.")
    worker_lease_seconds: float = Field(default=300.0, gt=0,
                                        description="A claimed batch not finished by then is "
                                                    "claimed again (its worker died).")
    worker_max_attempts: int = Field(default=3, gt=0,
                                     description="Failures after which a message is set aside.")
    worker_poll_seconds: float = Field(default=0.5, gt=0,
                                       description="Idle wait between inbox polls.")
    worker_processes: int = Field(
        default=0, ge=0, le=64,
        description="Worker processes `radnlp serve` starts beside the listener and the API; 0 "
                    "runs one worker in a thread of the service's own process (a model "
                    "activated through the API then reaches it at once; worker processes load "
                    "the active model when they start).")

    def base_url(self) -> str:
        """The public base URL, without a trailing slash."""
        return (self.public_url or f"http://{self.http_host}:{self.http_port}").rstrip("/")

    dispatcher: bool = Field(default=True, description="`radnlp serve` (and `radnlp worker`) "
                                                       "also deliver notifications.")
    notify_max_attempts: int = Field(default=10, gt=0, description="Failed sends after which "
                                                                   "a delivery is dead.")
    notify_backoff_base_seconds: float = Field(default=2.0, gt=0,
                                               description="First retry delay (doubles).")
    notify_backoff_cap_seconds: float = Field(default=600.0, gt=0,
                                              description="Longest retry delay.")
    notify_timeout_seconds: float = Field(default=10.0, gt=0,
                                          description="A receiver's time to answer.")
    notify_lease_seconds: float = Field(default=60.0, gt=0,
                                        description="A claimed delivery not finished by then "
                                                    "is sent again (its dispatcher died).")
    notify_poll_seconds: float = Field(default=0.2, gt=0,
                                       description="Idle wait between outbox polls.")
    notify_escalate_every_seconds: float = Field(
        default=300.0, gt=0, description="How often the dispatcher writes the escalation "
                                         "schedule's reminders that have come due.")


settings = Settings()
