"""The one settings object, read from the environment with the legacy server's variable names."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_JWT_SECRET = "your-secret-key-change-in-production"  # noqa: S105 - refused, never used
MIN_JWT_SECRET_LENGTH = 32


class ConfigError(RuntimeError):
    """A setting makes safe start-up impossible; the message says which and how to fix it."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=None, extra="ignore", populate_by_name=True, case_sensitive=False
    )

    backserver_host: str = "0.0.0.0"  # noqa: S104 - the app reaches the server over the LAN
    backserver_port: int = Field(8000, ge=1, le=65535)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    allowed_origins: str = "*"
    forwarded_allow_ips: str = ""
    log_level: str = "info"
    log_format: Literal["json", "text"] = "json"
    metrics_token: SecretStr | None = None

    api_key: SecretStr = SecretStr("")
    jwt_secret_key: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "HS384", "HS512"] = "HS256"
    jwt_expiration_hours: float = Field(24.0, gt=0, le=24 * 30)
    legacy_identity_headers: bool = True
    users_file: Path | None = None

    storage_root: Path = Field(
        Path("storage"), validation_alias=AliasChoices("STORAGE_ROOT", "STORAGE_DIR")
    )
    database_url: str | None = None
    # Connections each process keeps open, and how many more it may open under load; with
    # `serve --workers N` and replicas, the sum over processes must fit max_connections.
    database_pool_size: int = Field(10, ge=1, le=1000)
    database_max_overflow: int = Field(30, ge=0, le=1000)
    # Photos and model files: unset is the folder under STORAGE_ROOT; s3://bucket/prefix is
    # S3-compatible object storage (store/objects/), credentials from the AWS_* variables/files.
    blob_store_url: str | None = None
    s3_endpoint_url: str | None = None
    # How long an interrupted upload's intent is left alone before it counts as abandoned when
    # other processes may be writing (PostgreSQL); with SQLite start-up removes them all.
    blob_intent_lease_s: float = Field(900.0, ge=60, le=7 * 24 * 3600)
    case_id_start: int = Field(10000, ge=0, le=10**15)
    encrypt_storage: bool = False
    data_encryption_key: SecretStr | None = None
    data_encryption_old_keys: SecretStr | None = None

    max_json_body_bytes: int = Field(1_000_000, ge=1024)
    max_upload_bytes: int = Field(15 * 1024 * 1024, ge=1024)
    max_case_record_bytes: int = Field(65536, ge=4096, le=1_000_000)
    http_max_header_bytes: int = Field(65536, ge=4096, le=16 * 1024 * 1024)
    http_header_timeout_s: float = Field(10.0, gt=0, le=3600)
    http_body_idle_timeout_s: float = Field(30.0, gt=0, le=3600)
    enable_docs: bool = True
    login_max_failures: int = Field(5, ge=1, le=1000)
    login_max_failures_per_address: int = Field(20, ge=1, le=100_000)
    login_failure_window_s: float = Field(900.0, ge=1)
    upload_rate_per_minute: int = Field(60, ge=1, le=100_000)
    image_url_misses_per_minute: int = Field(30, ge=1, le=100_000)

    model_path: Path | None = None
    model_device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    model_trust_pickle: bool = False
    inference_runtime: Literal["torch", "onnx"] = "onnx"
    inference_threads: int = Field(0, ge=0, le=256)
    decode_workers: int = Field(0, ge=0, le=64)
    batch_max_size: int = Field(8, ge=1, le=64)
    batch_max_wait_ms: float = Field(2.0, ge=0, le=200)
    inference_queue_size: int = Field(64, ge=1, le=10_000)
    max_image_pixels: int = Field(50_000_000, ge=10_000)
    max_decoded_pixels: int = Field(12_000_000, ge=10_000)
    max_jpeg_scans: int = Field(64, ge=1, le=10_000)
    max_jpeg_decode_passes: float = Field(16.0, ge=1, le=1000)
    min_image_side: int = Field(64, ge=1)
    blur_threshold: float = Field(8.0, ge=0)

    # The learning loop (labels, active learning, training, promotion).
    model_assets_dir: Path | None = None
    model_file_extensions: str = ".pt,.pth,.jit,.pth.tar,.onnx"
    retrain_min_new_labels: int = Field(20, ge=1, le=1_000_000)
    retrain_default_epochs: int = Field(10, ge=1, le=100)
    retrain_default_batch_size: int = Field(16, ge=1, le=128)
    retrain_device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    retrain_auto: bool = True
    registry_poll_seconds: float = Field(10.0, ge=0.5, le=3600)
    training_threads: int = Field(0, ge=0, le=256)
    training_heartbeat_timeout_s: float = Field(300.0, ge=10)
    # Where training runs execute: "local" (a child process of the server, the default) or
    # "procrastinate" (jobs in PostgreSQL, executed by `allcare worker` processes anywhere).
    training_queue: Literal["local", "procrastinate"] = "local"
    al_default_architecture: str = "efficientnet_lite0"
    al_candidates_top_k: int = Field(5, ge=0, le=10_000)
    al_candidates_include_labeled: bool = False
    al_candidates_entry_type: str = ""
    al_candidates_status: str = ""
    al_annotation_entry_types: str = "reject,case"
    al_mel_quota: float = Field(0.2, ge=0, le=1)
    al_mel_suspicion: float = Field(0.3, ge=0, le=1)
    eval_holdout_share: float = Field(0.2, ge=0.05, le=0.5)
    al_evaluation_share: float = Field(0.2, ge=0.0, le=0.5)
    promotion_min_eval_cases: int = Field(100, ge=1)
    promotion_min_eval_melanomas: int = Field(10, ge=1)
    promotion_min_improvement: float = Field(0.0, ge=0, le=1)
    promotion_mel_margin: float = Field(0.05, ge=0, le=1)
    promotion_max_ece_increase: float = Field(0.03, ge=0, le=1)
    # A person promoting by hand (allcare train --promote, allcare models promote) is refused,
    # without --force and a reason, a version whose held-out numbers are below these floors.
    promotion_floor_balanced_accuracy: float = Field(0.5, ge=0, le=1)
    promotion_floor_mel_recall: float = Field(0.5, ge=0, le=1)
    retrain_min_steps: int = Field(300, ge=0, le=1_000_000)
    # A retraining run's loss weight for melanoma (the other classes 1): candidates keep the
    # melanoma sensitivity the gate's non-inferiority rule asks of them.
    retrain_melanoma_weight: float = Field(2.0, ge=1.0, le=10.0)
    # Share of the clinic's training-side cases a run holds back to fit its temperature on
    # (services/learning/calibration.py); 0 turns calibration off.
    retrain_calibration_share: float = Field(0.1, ge=0.0, le=0.5)
    retrain_replay_share: float = Field(0.5, ge=0, le=0.9)

    @field_validator(
        "tls_cert_file",
        "tls_key_file",
        "users_file",
        "model_path",
        "model_assets_dir",
        "blob_store_url",
        "s3_endpoint_url",
        mode="before",
    )
    @classmethod
    def _empty_path_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "jwt_secret_key",
        "data_encryption_key",
        "data_encryption_old_keys",
        "metrics_token",
        mode="before",
    )
    @classmethod
    def _empty_secret_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @cached_property
    def sqlalchemy_url(self) -> str:
        """The database URL with a psycopg 3 driver, defaulting to a SQLite file in the data dir."""
        url = self.database_url or f"sqlite:///{(self.storage_root / 'allcare.db').as_posix()}"
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @property
    def uses_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def database_display(self) -> str:
        """The database for people: a SQLite file's absolute path, or the URL without password."""
        from sqlalchemy.engine import make_url

        url = make_url(self.sqlalchemy_url)
        if url.get_backend_name() == "sqlite" and url.database:
            return f"{Path(url.database).resolve()} (SQLite)"
        return url.render_as_string(hide_password=True)

    @cached_property
    def cors_origins(self) -> list[str]:
        origins = [o.strip() for o in self.allowed_origins.split(",") if o.strip()]
        return ["*"] if "*" in origins else origins

    @property
    def assets_dir(self) -> Path:
        return self.model_assets_dir or self.storage_root / "assets"

    @property
    def models_dir(self) -> Path:
        """Registered model files, one immutable folder per version."""
        return self.storage_root / "models"

    @cached_property
    def model_extensions(self) -> tuple[str, ...]:
        return tuple(e.strip().lower() for e in self.model_file_extensions.split(",") if e.strip())

    @cached_property
    def annotation_entry_types(self) -> frozenset[str]:
        return frozenset(
            e.strip().lower() for e in self.al_annotation_entry_types.split(",") if e.strip()
        )

    @property
    def tls_enabled(self) -> bool:
        return self.tls_cert_file is not None and self.tls_key_file is not None

    @cached_property
    def thread_budget(self) -> tuple[int, int]:
        """(inference threads, decode workers) that together fit the cores this process may use.

        Inference gets every core; decoding gets about a third of them (at least one), which
        overlaps the next photos' decoding with the current batch without starving it.
        """
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        cores = cores or 1
        inference = self.inference_threads or cores
        decode = self.decode_workers or max(1, cores // 3)
        return inference, decode


def load_settings() -> Settings:
    return Settings()


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as environment variables, for a child process that must see exactly what
    this process sees (the training worker)."""
    env: dict[str, str] = {}
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            continue
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        env[name.upper()] = str(value).lower() if isinstance(value, bool) else str(value)
    env["DATABASE_URL"] = settings.sqlalchemy_url
    return env
