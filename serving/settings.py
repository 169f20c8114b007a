"""Service settings, read from the environment (``RECSYS_*``) at the edge only."""

from __future__ import annotations

from pathlib import Path

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings of ``recsys serve``.

    Environment: ``RECSYS_ARTIFACT``, ``RECSYS_ADMIN_TOKEN``,
    ``RECSYS_STATE_PATH``, ``RECSYS_MAX_K``, ``RECSYS_HOST``, ``RECSYS_PORT``.
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    artifact: Path | None = None
    admin_token: SecretStr | None = None
    state_path: Path | None = None
    host: str = "127.0.0.1"
    port: int = 8000
