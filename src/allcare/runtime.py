"""Everything a running server or CLI command holds, built once from the settings."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import select

from allcare.core.config import ConfigError, Settings
from allcare.core.tokens import TokenCodec, resolve_jwt_secret
from allcare.ml.classes import ARCHITECTURES, architecture_id
from allcare.services.access_log import AccessWriter
from allcare.services.errors import InvalidInput
from allcare.services.login_throttle import LoginThrottle
from allcare.services.throttle import MissLimit, RateLimit
from allcare.services.users import Authenticator, import_legacy_users
from allcare.store.blobs import BlobStore
from allcare.store.crypto import Sealer
from allcare.store.db import Database
from allcare.store.models import User
from allcare.store.private_files import make_private, wider_than_private

if TYPE_CHECKING:
    from allcare.ml.batching import InferenceEngine
    from allcare.ml.loading import ModelOptions
    from allcare.services.deployment import Deployment
    from allcare.services.opened_probabilities import OpenedProbabilities
    from allcare.services.photo_checks import PhotoCheckService
    from allcare.services.training import TrainingSupervisor

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Database
    sealer: Sealer
    blobs: BlobStore
    tokens: TokenCodec
    engine: InferenceEngine
    decode_pool: ThreadPoolExecutor
    photo_checks: PhotoCheckService
    deployment: Deployment
    training: TrainingSupervisor
    access_writer: AccessWriter
    login_throttle: LoginThrottle
    authenticator: Authenticator
    upload_rate: RateLimit
    url_misses: MissLimit
    opened_probabilities: OpenedProbabilities = field(
        default_factory=lambda: _opened_probabilities(), init=False
    )
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)

    @classmethod
    def open_store(cls, settings: Settings) -> tuple[Database, Sealer]:
        """Database (migrated) and key ring: what CLI commands need, without a signing secret."""
        sealer = Sealer.from_settings(settings)
        make_private()
        settings.storage_root.mkdir(mode=0o700, parents=True, exist_ok=True)
        db = Database(settings.sqlalchemy_url)
        try:
            db.migrate()
            db.ensure_case_counter(settings.case_id_start)
        except Exception:
            db.dispose()
            raise
        return db, sealer

    @classmethod
    def start(cls, settings: Settings) -> Runtime:
        # ML imports are deferred so account commands of the CLI start without loading torch.
        from allcare.ml.batching import InferenceEngine
        from allcare.ml.photo import PhotoLimits
        from allcare.services.deployment import Deployment
        from allcare.services.photo_checks import PhotoCheckService
        from allcare.services.registry import remove_partial_files
        from allcare.services.training import TrainingSupervisor

        _one_blas_thread()
        if architecture_id(settings.al_default_architecture) is None:
            raise ConfigError(
                f"AL_DEFAULT_ARCHITECTURE={settings.al_default_architecture} is unknown; use one "
                f"of {', '.join(ARCHITECTURES)}"
            )
        if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
            raise ConfigError("Set both TLS_CERT_FILE and TLS_KEY_FILE for HTTPS, or neither")
        tokens = TokenCodec(
            resolve_jwt_secret(settings),
            settings.jwt_algorithm,
            timedelta(hours=settings.jwt_expiration_hours),
        )
        db, sealer = cls.open_store(settings)
        _warn_if_readable_by_others(settings)
        blobs = BlobStore(settings.storage_root / "blobs", sealer, db)
        blobs.recover()
        remove_partial_files(settings)
        engine = InferenceEngine(
            None,
            options=model_options(settings),
            max_batch=settings.batch_max_size,
            max_wait_s=settings.batch_max_wait_ms / 1000,
            queue_size=settings.inference_queue_size,
        )
        _, decode_workers = settings.thread_budget
        decode_pool = ThreadPoolExecutor(decode_workers, thread_name_prefix="decode")
        deployment = Deployment(db, settings, engine)
        runtime = cls(
            settings=settings,
            db=db,
            sealer=sealer,
            blobs=blobs,
            tokens=tokens,
            engine=engine,
            decode_pool=decode_pool,
            photo_checks=PhotoCheckService(
                db=db,
                blobs=blobs,
                sealer=sealer,
                engine=engine,
                decode_pool=decode_pool,
                limits=PhotoLimits(
                    max_pixels=settings.max_image_pixels,
                    min_side=settings.min_image_side,
                    max_decoded_pixels=settings.max_decoded_pixels,
                    max_jpeg_scans=settings.max_jpeg_scans,
                    max_jpeg_decode_passes=settings.max_jpeg_decode_passes,
                ),
                blur_threshold=settings.blur_threshold,
                decode_workers=decode_workers,
            ),
            deployment=deployment,
            training=TrainingSupervisor(db, settings, deployment),
            access_writer=AccessWriter(db),
            login_throttle=LoginThrottle(
                per_user=settings.login_max_failures,
                per_address=settings.login_max_failures_per_address,
                window_s=settings.login_failure_window_s,
            ),
            upload_rate=RateLimit(settings.upload_rate_per_minute),
            url_misses=MissLimit(settings.image_url_misses_per_minute),
            authenticator=Authenticator(db, parallel=settings.thread_budget[0]),
        )
        try:
            runtime._import_users_file()
            model = deployment.serve_at_start()
            runtime.training.reconcile()
        except BaseException:
            runtime.close()
            raise
        runtime._follow_registry()
        runtime._hint_if_no_accounts()
        log.info(
            "AllCare Server ready: database %s, storage %s, encryption %s, model %s",
            "sqlite" if db.is_sqlite else "postgresql",
            settings.storage_root,
            "on" if sealer.encrypting else "off",
            model.version if model else "none (POST /check-image answers 503)",
        )
        return runtime

    def _follow_registry(self) -> None:
        """Another process (``allcare models activate``, ``allcare train --promote``) may change
        which model is active; the server notices within REGISTRY_POLL_SECONDS."""

        def follow() -> None:
            while not self._stopping.wait(self.settings.registry_poll_seconds):
                try:
                    self.deployment.follow_registry()
                except Exception:
                    log.exception("Checking the registry's active model failed")

        threading.Thread(target=follow, name="registry", daemon=True).start()

    def _import_users_file(self) -> None:
        path = self.settings.users_file
        if path is None:
            return
        if not path.exists():
            raise ConfigError(f"USERS_FILE {path} does not exist")
        with self.db.session() as session:
            try:
                report = import_legacy_users(session, path)
            except InvalidInput as exc:
                raise ConfigError(exc.detail) from exc
        log.info(
            "USERS_FILE %s: %d added, %d already present, %d invalid",
            path,
            len(report.added),
            len(report.kept_existing),
            len(report.invalid),
        )

    def _hint_if_no_accounts(self) -> None:
        with self.db.session() as session:
            if session.scalar(select(User.id).limit(1)) is None:
                log.warning(
                    "No user accounts yet: create one with "
                    "`allcare users add <id> --role admin` (or set USERS_FILE)"
                )

    def close(self) -> None:
        self._stopping.set()
        self.access_writer.close()
        self.training.close()
        self.engine.close()
        self.decode_pool.shutdown(wait=True)
        self.db.dispose()


def _one_blas_thread() -> None:
    """numpy's OpenBLAS keeps a pool of threads that spin between calls; in a server whose
    numpy work is tiny (softmax, the embedding projection) they only took CPU from the
    inference runtime (5 % of the server's CPU, 4 % of upload throughput, measured)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _warn_if_readable_by_others(settings: Settings) -> None:
    """Data written before files were made owner-only (or copied in) stays as it was: say so."""
    wider = wider_than_private(settings.storage_root)
    if wider.count:
        log.warning(
            "%d files or folders under %s can be read by other users (e.g. %s); patient data "
            "should be owner-only: chmod -R go-rwx %s",
            wider.count,
            settings.storage_root,
            ", ".join(str(path) for path in wider.examples),
            settings.storage_root,
        )


def _opened_probabilities() -> OpenedProbabilities:
    from allcare.services.opened_probabilities import OpenedProbabilities

    return OpenedProbabilities()


def model_options(settings: Settings) -> ModelOptions:
    from allcare.ml.loading import ModelOptions

    threads, _ = settings.thread_budget
    return ModelOptions(
        runtime=settings.inference_runtime,
        device=settings.model_device,
        threads=threads,
        fallback_cache_dir=settings.storage_root / "model-cache",
        trust_pickle=settings.model_trust_pickle,
    )
