"""The container the server holds: store, tokens, model, worker threads, limits (the
composition root's one class)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from allcare.container.accounts_at_start import hint_if_no_accounts, import_users_file
from allcare.container.limits import build_limits
from allcare.container.store import (
    intent_lease,
    open_blobs,
    open_job_queue,
    open_store,
    warn_if_pools_exceed_server,
    warn_if_readable_by_others,
)
from allcare.core.config import ConfigError, Settings
from allcare.core.durable import sweep_partials
from allcare.core.tokens import TokenCodec, resolve_jwt_secret
from allcare.ml.classes import ARCHITECTURES, architecture_id
from allcare.services.accounts.login_throttle import LoginThrottle
from allcare.services.accounts.users import Authenticator
from allcare.services.audit.access_log import AccessWriter
from allcare.services.cases.throttle import MissLimit, RateLimit
from allcare.services.models.options import model_options
from allcare.store.blobs import BlobStore
from allcare.store.crypto import Sealer
from allcare.store.db import Database
from allcare.store.job_queue import QueueState
from allcare.store.objects import ObjectStoreError

if TYPE_CHECKING:
    from allcare.ml.batching import InferenceEngine
    from allcare.services.cases.photo_checks import PhotoCheckService
    from allcare.services.learning.opened_probabilities import OpenedProbabilities
    from allcare.services.learning.supervisor import TrainingSupervisor
    from allcare.services.models.deployment import Deployment

log = logging.getLogger(__name__)


@dataclass
class Container:
    """What a running server holds; ``start`` builds it, ``close`` stops its threads."""

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
    prune_limits: Callable[[], None]
    opened_probabilities: OpenedProbabilities = field(
        default_factory=lambda: _opened_probabilities(), init=False
    )
    _stopping: threading.Event = field(default_factory=threading.Event, init=False)

    @staticmethod
    def prepare(settings: Settings, processes: int) -> None:
        """The start-up steps that belong to the whole data directory, run once before
        ``allcare serve --workers N`` starts its processes with ``start(prepared=True)``: the
        schema, what interrupted writes left, the users file, whether N pools fit."""
        _shared_database(settings)
        db, sealer = open_store(settings)
        try:
            warn_if_pools_exceed_server(db, processes)
            warn_if_readable_by_others(settings)
            sweep_partials(settings.storage_root)
            open_blobs(settings, db, sealer).recover(intent_lease(settings, db))
            import_users_file(settings, db)
            hint_if_no_accounts(db)
        finally:
            db.dispose()

    @classmethod
    def start(cls, settings: Settings, *, prepared: bool = False) -> Container:
        """``prepared``: one of several processes on this data directory (PostgreSQL only),
        after ``prepare``; it leaves the shared files and other processes' runs alone."""
        # ML imports are deferred so account commands of the CLI start without loading torch.
        from allcare.ml.batching import InferenceEngine
        from allcare.ml.photo import PhotoLimits
        from allcare.services.cases.photo_checks import PhotoCheckService
        from allcare.services.learning.supervisor import TrainingSupervisor
        from allcare.services.models.deployment import Deployment

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
        db, sealer = open_store(settings)
        if not prepared:  # walks STORAGE_ROOT: done once, by `prepare`, for several processes
            warn_if_readable_by_others(settings)
            # One process per STORAGE_ROOT (store/data_lock.py): what a crash left is nobody's.
            sweep_partials(settings.storage_root)
        try:
            blobs = open_blobs(settings, db, sealer)
            blobs.recover(intent_lease(settings, db))  # with a lease when others write too
        except BaseException:
            db.dispose()
            raise
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
        queue = open_job_queue(settings, db)
        limits = build_limits(settings, db)
        container = cls(
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
            training=TrainingSupervisor(db, settings, deployment, queue),
            access_writer=AccessWriter(db),
            login_throttle=limits.login,
            upload_rate=limits.uploads,
            url_misses=limits.url_misses,
            prune_limits=limits.prune,
            authenticator=Authenticator(db, parallel=settings.thread_budget[0]),
        )
        try:
            if not prepared:
                import_users_file(settings, db)
            model = deployment.serve_at_start()
            if prepared:  # a sibling's runs are its own: only a stopped heartbeat ends them
                container.training.fail_silent()
                container.training.apply_granted()
            else:
                container.training.reconcile()
        except BaseException:
            container.close()
            raise
        container._follow_registry()
        if not prepared:
            hint_if_no_accounts(db)
        log.info(
            "AllCare Server ready: database %s, storage %s, objects %s, encryption %s, model %s",
            "sqlite" if db.is_sqlite else "postgresql",
            settings.storage_root,
            blobs.objects.describe(),
            "on" if sealer.encrypting else "off",
            model.version if model else "none (POST /check-image answers 503)",
        )
        return container

    def _follow_registry(self) -> None:
        """Another process (``allcare models activate``, ``allcare train --promote``) may change
        which model is active; the server notices within REGISTRY_POLL_SECONDS."""

        def follow() -> None:
            while not self._stopping.wait(self.settings.registry_poll_seconds):
                try:
                    self.deployment.follow_registry()
                except Exception:
                    log.exception("Checking the registry's active model failed")
                lease = intent_lease(self.settings, self.db)
                if lease is not None:  # replicas: abandoned uploads are found while running
                    try:
                        self.blobs.recover(lease)
                        self.prune_limits()
                        self.training.fail_silent()
                        self.training.apply_granted()  # a run whose process lost its server
                    except Exception:
                        log.exception("Clearing what lost replicas left failed")

        threading.Thread(target=follow, name="registry", daemon=True).start()

    def job_queue_state(self) -> QueueState | None:
        """The job system's queue; None with local training or when it cannot be read (the
        reason goes to the log)."""
        if self.training.queue is None:
            return None
        try:
            return self.training.queue.state()
        except Exception as exc:
            log.warning("The job system's state cannot be read: %s", exc)
            return None

    def objects_ok(self) -> bool:
        """The photo store answers (readiness); the reason goes to the log."""
        try:
            self.blobs.objects.check()
        except ObjectStoreError as exc:
            log.warning("Object storage is not ready: %s", exc)
            return False
        return True

    def close(self) -> None:
        self._stopping.set()
        self.access_writer.close()
        self.training.close()
        self.engine.close()
        self.decode_pool.shutdown(wait=True)
        self.db.dispose()


def _shared_database(settings: Settings) -> None:
    if settings.uses_sqlite:
        raise ConfigError(
            "Several server processes (--workers) need PostgreSQL (DATABASE_URL=postgresql://"
            "...): SQLite has one writer, so run one `allcare serve` without --workers"
        )


def _one_blas_thread() -> None:
    """numpy's OpenBLAS keeps a pool of threads that spin between calls; in a server whose
    numpy work is tiny (softmax, the embedding projection) they only took CPU from the
    inference runtime (5 % of the server's CPU, 4 % of upload throughput, measured)."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(1, user_api="blas")


def _opened_probabilities() -> OpenedProbabilities:
    from allcare.services.learning.opened_probabilities import OpenedProbabilities

    return OpenedProbabilities()
