"""Service settings, read from the environment (``RECSYS_*``) at the edge only."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Settings of ``recsys serve``.

    Environment: ``RECSYS_ARTIFACT``, ``RECSYS_ADMIN_TOKEN``, ``RECSYS_STATE_PATH``,
    ``RECSYS_MAX_IN_FLIGHT``, ``RECSYS_WATCH_INTERVAL_S``, ``RECSYS_HOST``,
    ``RECSYS_PORT``, ``RECSYS_LOG_JSON``, ``RECSYS_HUGE_PAGES``, ``RECSYS_MMAP_THRESHOLD``,
    ``RECSYS_GC_FREEZE``, ``RECSYS_WORKERS``.
    """

    model_config = SettingsConfigDict(env_prefix="RECSYS_", extra="ignore")

    artifact: Path | None = Field(
        default=None, description="An artifact, or a directory of artifacts (newest served)."
    )
    admin_token: SecretStr | None = Field(
        default=None, description="Bearer token of the admin routes; unset: admin routes off."
    )
    state_path: Path = Field(
        default=Path("recsys-state.sqlite"),
        description="SQLite file of takedowns and erasures, shared with `recsys train`.",
    )
    max_in_flight: int = Field(
        default=64, ge=1, description="Requests served at once; more get 503 + Retry-After."
    )
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After of an overload 503.")
    watch_interval_s: float = Field(
        default=0.0, ge=0.0, description="Poll the artifact directory for newer ones (0: off)."
    )
    huge_pages: bool = Field(
        default=False,
        description=(
            "`recsys serve` restarts itself once with GLIBC_TUNABLES=glibc.malloc.hugetlb=1, "
            "so that large allocations sit on transparent huge pages (Linux, glibc >= 2.35). "
            "Off by default since the indexes are memory-mapped files, which it does not reach."
        ),
    )
    mmap_threshold: int = Field(
        default=2 * 1024 * 1024,
        ge=0,
        le=32 * 1024 * 1024,
        description=(
            "Bytes from which glibc gives an allocation its own mapping, handed back when "
            "freed, so that a replaced artifact's arrays leave at once (0: glibc's adaptive "
            "threshold; serving.holder.map_large_allocations)."
        ),
    )
    gc_freeze: bool = Field(
        default=True,
        description=(
            "Keep the loaded artifact and the libraries out of the cyclic garbage collector's "
            "full scans (gc.freeze after each load), which otherwise held the GIL 42-98 ms "
            "(serving.holder.freeze_long_lived). Single-process servers; the supervisor of "
            "--workers freezes around its forks."
        ),
    )
    workers: int = Field(
        default=1,
        ge=1,
        le=64,
        description=(
            "Server processes. Above 1, a supervisor loads the artifact once, forks the "
            "workers over it and deals them connections (serving/workers.py)."
        ),
    )
    host: str = "127.0.0.1"
    port: int = 8000
    log_json: bool = Field(default=True, description="One JSON object per log line.")
