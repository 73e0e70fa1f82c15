"""Service settings, read from the environment with the ``RADNLP_`` prefix."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RADNLP_", extra="ignore")

    pipeline_mode: str = Field(default="full", description="Pipeline mode: full or rules.")
    max_report_chars: int = Field(default=500_000, gt=0,
                                  description="Reports longer than this are rejected.")
    batch_size: int = Field(default=64, gt=0, description="Reports per pipeline batch.")


settings = Settings()
