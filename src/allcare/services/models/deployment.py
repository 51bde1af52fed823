"""What serves predictions, changed only after the new model has loaded (D10, D12).

Every change (activate, promote, rollback) first loads the target's immutable file into the
inference engine (ml/batching.py ``replace``: load, warm up, swap), then records the new
statuses, pointers and event in one transaction. If the file does not load, nothing changes and
the caller hears why; if the transaction fails, the previous model serves again.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.orm import Session

from allcare.core.config import ConfigError, Settings
from allcare.ml.batching import InferenceEngine
from allcare.ml.loading import LoadedModel
from allcare.ml.model_source import ModelLoadError, sha256_file
from allcare.services.errors import Conflict, InvalidInput, NotFound, Unavailable
from allcare.services.events import EventType, record_event
from allcare.services.models.changes import (
    Activation,
    Promotion,
    Rollback,
    make_production,
    register_file,
)
from allcare.services.models.model_path import register_model_path
from allcare.services.models.registry import (
    Pointer,
    Source,
    Status,
    find_by_sha,
    get_version,
    model_file,
    pointer,
    production_history,
    set_pointer,
)
from allcare.store.db import Database, begin_write
from allcare.store.model_files import ModelFiles
from allcare.store.models import ModelVersion
from allcare.store.objects import ObjectStoreError

log = logging.getLogger(__name__)
ACTIVATABLE = (Status.PRODUCTION, Status.EVALUATING)
NOT_PROMOTABLE = (Status.FAILED, Status.TRAINING)


@dataclass
class Deployment:
    db: Database
    settings: Settings
    engine: InferenceEngine

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # -- start-up ----------------------------------------------------------------------------

    def serve_at_start(self) -> LoadedModel | None:
        """A new MODEL_PATH file (one whose sha256 the registry does not know) is a deployment:
        it is registered and becomes production. Otherwise the registry's active pointer decides,
        so a restart never undoes a promotion or rollback."""
        with self.db.session() as session:
            if self.settings.model_path is not None:
                registered = register_model_path(session, self.settings, self.engine)
                if registered is not None:
                    self._publish_exports(registered)
            active = pointer(session, Pointer.ACTIVE)
            if active is None:
                log.warning("No model to serve: set MODEL_PATH or train one with `allcare train`")
                return None
            version = get_version(session, active)
            try:
                path = model_file(self.settings, version)
            except Unavailable as exc:
                raise ConfigError(
                    f"{exc}. Choose another one with `allcare models activate`"
                ) from exc
        serving = self.engine.model
        if serving is not None and serving.version == version.id:
            return serving
        try:
            loaded = self.engine.replace(path, version.id)
        except ModelLoadError as exc:
            raise ConfigError(
                f"The active model {version.id} does not load: {exc}. Choose another one with "
                "`allcare models activate VERSION`"
            ) from exc
        self._publish_exports(version)
        return loaded

    def _publish_exports(self, version: ModelVersion) -> None:
        """Exports made while loading go to the object store, for replicas without PyTorch; a
        failure costs those replicas the export, never this load."""
        if version.file_key is None:
            return
        try:
            ModelFiles.of(self.settings).publish_exports(version.file_key)
        except ObjectStoreError as exc:
            log.warning("The ONNX export of %s was not published: %s", version.id, exc)

    def follow_registry(self) -> None:
        """Serve what the registry's active pointer names, when another process (the command
        line) changed it. Failures leave the current model serving and are logged."""
        with self.db.session() as session:
            active = pointer(session, Pointer.ACTIVE)
            version = session.get(ModelVersion, active) if active else None
        serving = self.engine.model
        if version is None or (serving is not None and serving.version == version.id):
            return
        with self._lock:
            try:
                self.engine.replace(model_file(self.settings, version), version.id)
                self._publish_exports(version)
            except (ModelLoadError, NotFound) as exc:
                log.error("Active model %s (set elsewhere) does not load: %s", version.id, exc)

    def _architecture(self) -> str | None:
        model = self.engine.model
        return model.source.architecture if model else None

    # -- changes -------------------------------------------------------------------------------

    @contextmanager
    def _serving(self, session: Session, version: ModelVersion, failure: str) -> Iterator[None]:
        """Load ``version`` into the engine, run the caller's database changes, commit; undo the
        swap if they fail. Runs under the deployment lock."""
        previous = self.engine.model
        try:
            self.engine.replace(model_file(self.settings, version), version.id)
        except ModelLoadError as exc:
            raise InvalidInput(f"{failure}: {exc}") from exc
        self._publish_exports(version)
        try:
            yield
            session.commit()
        except BaseException:
            session.rollback()
            if previous is not None:
                self.engine.swap(previous)
            raise

    def activate(self, version_id: str, actor_id: str) -> Activation:
        with self._lock, self.db.session() as session:
            begin_write(session)
            version = get_version(session, version_id, lock=True)
            if version.status not in ACTIVATABLE:
                raise InvalidInput("Only production or candidate models can be activated")
            with self._serving(session, version, "Failed to set active inference model"):
                set_pointer(session, Pointer.ACTIVE, version.id, actor_id, "activated")
                record_event(
                    session,
                    EventType.MODEL_ACTIVATED,
                    f"{actor_id} made {version.id} serve predictions",
                    actor_id=actor_id,
                    version_id=version.id,
                )
            return Activation(version.id, str(model_file(self.settings, version)))

    def promote(
        self, version_id: str, actor_id: str | None, reason: str, *, automatic: bool = False
    ) -> Promotion:
        with self._lock, self.db.session() as session:
            begin_write(session)
            version = self._existing(session, version_id)
            if version.status in NOT_PROMOTABLE:
                raise InvalidInput(f"Model {version.id} is {version.status} and cannot be promoted")
            previous = pointer(session, Pointer.PRODUCTION)
            if previous == version.id:
                raise Conflict(f"Model {version.id} is already in production")
            with self._serving(session, version, "Promotion failed"):
                make_production(session, version, previous, actor_id, reason)
                record_event(
                    session,
                    EventType.MODEL_PROMOTED,
                    f"{version.id} promoted to production"
                    + (" automatically (passed the promotion gate)" if automatic else "")
                    + f" by {actor_id or 'the learning loop'}: {reason}",
                    actor_id=actor_id,
                    version_id=version.id,
                    previous_production=previous,
                    reason=reason,
                    automatic=automatic,
                    accuracy=(version.metrics or {}).get("val_accuracy"),
                    evaluation=(version.evaluation or {}).get("candidate"),
                )
            return Promotion(version.id, previous, reason)

    def rollback(self, target_id: str | None, actor_id: str, reason: str) -> Rollback:
        """To ``target_id``, or with None to the production model before the current one."""
        with self._lock, self.db.session() as session:
            begin_write(session)
            current = pointer(session, Pointer.PRODUCTION)
            if current is None:
                raise InvalidInput("No production model to rollback from")
            if target_id is None:
                earlier = [v for v in production_history(session) if v != current]
                if not earlier:
                    raise InvalidInput("No earlier production model to roll back to")
                target_id = earlier[0]
            target = session.get(ModelVersion, target_id, with_for_update=True)
            if target is None:
                raise NotFound(f"Target model {target_id} not found")
            if target.id == current:
                raise Conflict(f"Model {target.id} is already in production")
            if target.status not in (Status.ARCHIVED, Status.PRODUCTION):
                raise InvalidInput(
                    f"Can only roll back to an archived model; {target.id} is {target.status}"
                )
            with self._serving(session, target, "Rollback failed"):
                make_production(session, target, current, actor_id, reason)
                record_event(
                    session,
                    EventType.MODEL_ROLLBACK,
                    f"{actor_id} rolled production back from {current} to {target.id}: {reason}",
                    actor_id=actor_id,
                    from_version=current,
                    to_version=target.id,
                    reason=reason,
                )
            return Rollback(current, target.id, reason)

    def _existing(self, session: Session, version_id: str) -> ModelVersion:
        version = session.get(ModelVersion, version_id, with_for_update=True)
        if version is None:
            raise NotFound(f"Model {version_id} not found")
        return version

    # -- files brought in ------------------------------------------------------------------

    def register_and_activate(
        self, path: Path, source: Source, actor_id: str, describe: Callable[[ModelVersion], str]
    ) -> ModelVersion:
        """A file from outside the registry (an asset): registered once (by sha256), loaded,
        then made active. A file that does not load stays registered as failed, with why."""
        with self._lock, self.db.session() as session:
            begin_write(session)
            version = find_by_sha(session, sha256_file(path))
            if version is None:
                version = register_file(
                    session, self.settings, path, source, Status.EVALUATING, actor_id
                )
                session.commit()
                begin_write(session)
                version = get_version(session, version.id, lock=True)
            try:
                with self._serving(session, version, f"Failed to load {path.name}"):
                    if version.status == Status.FAILED:
                        version.status = Status.EVALUATING.value
                    version.architecture = self._architecture()
                    set_pointer(session, Pointer.ACTIVE, version.id, actor_id, describe(version))
                    record_event(
                        session,
                        EventType.MODEL_ACTIVATED,
                        describe(version),
                        actor_id=actor_id,
                        version_id=version.id,
                        source=source.value,
                    )
            except InvalidInput as exc:
                version = get_version(session, version.id, lock=True)
                version.status = Status.FAILED.value
                version.error = exc.detail
                session.commit()
                raise
            return version
