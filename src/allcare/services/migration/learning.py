"""The learning side of ``allcare migrate``: the model registry with its files, the labels pool,
the event log and the training configuration (contract 3.5-3.8).

Registry paths are the old machine's absolute paths; files are found under AL_Back and copied
into the new registry (immutable, sha256). A version id already used here for another model is
renumbered. The production and active models must load before they become the pointers. The
labels pool was keyed by case id alone (D6): its entries are matched to cases by the owner in
their image paths; where the case record holds another label, the record wins and the conflict
is reported.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from sqlalchemy.orm import Session

from allcare.core.clock import now_utc
from allcare.core.config import Settings
from allcare.ml.classes import ARCHITECTURES
from allcare.ml.loading import ModelOptions, load_model
from allcare.ml.model_source import ModelLoadError
from allcare.ml.training_config import OPTIMIZERS
from allcare.services.events import EventType, record_event
from allcare.services.labels.records import LABEL_CHOICES
from allcare.services.learning.config import CONFIG_KEY, defaults
from allcare.services.migration.importer import Migration
from allcare.services.migration.report import ALREADY
from allcare.services.migration.steps import legacy_time
from allcare.services.models.registry import (
    Pointer,
    Source,
    Status,
    is_version_id,
    new_version_id,
    set_pointer,
)
from allcare.services.principal import is_valid_user_id
from allcare.store.model_files import ModelFiles
from allcare.store.models import AppSetting, Event, ModelVersion, TrainingLabel

STATUSES = {s.value for s in Status}
CONFIG_RANGES = {
    "epochs": (int, 1, 100),
    "batch_size": (int, 1, 128),
    "learning_rate": (float, 1e-6, 1.0),
    "dropout": (float, 0.0, 0.9),
}


class LearningMigration:
    def __init__(self, base: Migration, settings: Settings) -> None:
        self.base = base
        self.settings = settings
        self.report = base.report
        self.versions: dict[str, str] = {}

    # -- registry ------------------------------------------------------------------------------

    def import_registry(self, session: Session) -> None:
        registry = self.base.tree.model_list()
        if registry is None:
            return
        if not isinstance(registry, dict):
            self.report.problem("models", str(registry))
            return
        models = registry.get("models") or {}
        for version_id, entry in models.items():
            if isinstance(entry, dict):
                self._import_version(session, str(version_id), entry)
        self._set_pointers(session, registry)

    def _import_version(self, session: Session, old_id: str, entry: dict[str, Any]) -> None:
        base = self.base
        known = base.done(session, "model", old_id)
        if known is not None:
            self.versions[old_id] = known
            self.report.count("models", ALREADY)
            return
        base.progress(f"model {old_id}")
        base.begin(session)
        new_id = old_id
        if not is_version_id(old_id) or session.get(ModelVersion, old_id) is not None:
            new_id = new_version_id(session)
            self.report.problems.append(f"model {old_id!r} is registered here as {new_id}")
        status = str(entry.get("status") or "")
        error = None
        if status == Status.TRAINING or status not in STATUSES:
            status, error = Status.FAILED.value, f"was {status or 'unknown'} in the old server"
        architecture = entry.get("architecture")
        if architecture not in ARCHITECTURES:
            status = Status.FAILED.value
            error = f"architecture {architecture!r} cannot be served here"
        path = base.tree.model_file(old_id, entry)
        file_key = sha256 = size = None
        if path is None:
            status, error = Status.FAILED.value, "the model file was not found at import"
            self.report.problems.append(f"model {old_id}: its file was not found under AL_Back")
        elif not base.dry_run:
            stored = ModelFiles.of(self.settings).copy(new_id, path, name="model.pt")
            file_key, sha256, size = stored.key, stored.sha256, stored.size_bytes
        session.add(
            ModelVersion(
                id=new_id,
                status=status,
                source=Source.IMPORT.value,
                source_name=path.name if path else None,
                architecture=architecture if isinstance(architecture, str) else None,
                base_version=entry.get("base_model"),
                file_key=file_key,
                sha256=sha256,
                size_bytes=size,
                training_config=entry.get("training_config"),
                metrics=entry.get("metrics") if isinstance(entry.get("metrics"), dict) else {},
                training_log=base.tree.training_log(path) if path else None,
                error=error,
                created_at=legacy_time(entry.get("created_at")) or now_utc(),
            )
        )
        base.mark(session, "model", old_id, new_id)
        base.commit(session)
        self.versions[old_id] = new_id
        self.report.count("models")

    def _set_pointers(self, session: Session, registry: dict[str, Any]) -> None:
        production = self.versions.get(str(registry.get("current_production") or ""))
        active_entry = registry.get("active_inference")
        active_old = active_entry.get("version_id") if isinstance(active_entry, dict) else None
        active = self.versions.get(str(active_old or "")) or production
        for name, version_id in ((Pointer.PRODUCTION, production), (Pointer.ACTIVE, active)):
            if version_id is None or self.base.done(session, "pointer", name) is not None:
                continue
            version = session.get(ModelVersion, version_id)
            if version is None or not self._loads(version):
                continue
            self.base.begin(session)
            if name == Pointer.PRODUCTION:
                version.status = Status.PRODUCTION.value
            set_pointer(session, name, version_id, None, "imported from the old server")
            self.base.mark(session, "pointer", name, version_id)
            self.base.commit(session)

    def _loads(self, version: ModelVersion) -> bool:
        """The model a pointer names must load (the server refuses to start otherwise). A dry
        run copies no file, so it cannot tell."""
        if self.base.dry_run:
            return True
        if version.file_key is None:
            return False
        path = ModelFiles.of(self.settings).local_path(version.file_key, version.sha256)
        options = ModelOptions("torch", "cpu", 1, self.settings.storage_root / "model-cache")
        try:
            load_model(path, options, version.id)
        except ModelLoadError as exc:
            self.report.problems.append(f"model {version.id} does not load, not served: {exc}")
            return False
        return True

    # -- labels pool ---------------------------------------------------------------------------

    def import_labels_pool(self, session: Session) -> None:
        for where, entry in self.base.tree.labels_pool():
            if isinstance(entry, Exception) or not isinstance(entry, dict):
                self.report.problem("labels", str(entry))
                continue
            self._pool_entry(session, str(where), entry)

    def _pool_entry(self, session: Session, where: str, entry: dict[str, Any]) -> None:
        case_text = str(entry.get("case_id") or "")
        paths = entry.get("image_paths") or []
        owner = str(paths[0]).split("/", 1)[0] if paths and "/" in str(paths[0]) else ""
        key = f"{owner}/{case_text}"
        if self.base.done(session, "pool", key) is not None:
            self.report.count("labels", f"{ALREADY} (pool)")
            return
        case_id = self.base.case_ids.get((owner, case_text))
        if case_id is None:
            self.report.problem("labels", f"{where}: no imported case {key}; pool entry skipped")
            return
        label = entry.get("correct_label")
        if label not in LABEL_CHOICES:
            self.report.problem("labels", f"{where}: label {label!r} is not a known code")
            return
        self.base.begin(session)
        case, current = self.base.current_label(session, case_id)
        if current is None:
            labeller = str(entry.get("user_id") or "")
            labeller = labeller if is_valid_user_id(labeller) else "legacy_import"
            self.base.ensure_account(session, labeller, "labeller")
            when = entry.get("updated_at") or entry.get("created_at")
            self.base.add_label(session, case, label, labeller, {"correct_label": label}, when)
        elif current != label:
            self.report.problem(
                "labels",
                f"{where}: the pool says {label!r} for {key}, the case record {current!r}: kept "
                "the case record's",
                outcome="pool conflicts (record kept)",
            )
        else:
            self.report.count("labels", "pool entries matching the record")
        self._used_in_models(session, case.current_label_id, entry.get("used_in_models"))
        self.base.mark(session, "pool", key, str(case_id))
        self.base.commit(session)

    def _used_in_models(self, session: Session, label_id: int | None, versions: Any) -> None:
        if label_id is None or not isinstance(versions, list):
            return
        for old in versions:
            new = self.versions.get(str(old))
            if new and session.get(TrainingLabel, (new, label_id)) is None:
                session.add(TrainingLabel(version_id=new, label_id=label_id))

    # -- events and configuration ------------------------------------------------------------

    def import_events(self, session: Session) -> None:
        for where, entry in self.base.tree.events():
            if not isinstance(entry, dict):
                self.report.problem("events", str(entry))
                continue
            key = hashlib.sha256(json.dumps(entry, sort_keys=True).encode()).hexdigest()
            if self.base.done(session, "event", key) is not None:
                self.report.count("events", ALREADY)
                continue
            kind = str(entry.get("type") or entry.get("event_type") or "")[:32]
            if not kind:
                self.report.problem("events", f"{where}: event without a type")
                continue
            self.base.begin(session)
            given = entry.get("metadata")
            metadata: dict[str, Any] = given if isinstance(given, dict) else {}
            session.add(
                Event(
                    at=legacy_time(entry.get("timestamp")) or now_utc(),
                    type=kind,
                    message=str(entry.get("message") or ""),
                    actor_id=None,
                    details=metadata | {"imported_from": str(where)},
                )
            )
            self.base.mark(session, "event", key, kind)
            self.base.commit(session)
            self.report.count("events")

    def import_config(self, session: Session) -> None:
        config = self.base.tree.active_config()
        if config is None:
            return
        if not isinstance(config, dict):
            self.report.problem("config", str(config))
            return
        self.base.begin(session)
        if session.get(AppSetting, CONFIG_KEY) is not None:
            self.report.count("config", "kept (set here already)")
            return
        clean = {}
        for name, value in config.items():
            problem = _config_problem(name, value)
            if problem:
                self.report.problems.append(f"active_config.json: {name}: {problem}; default kept")
            else:
                clean[name] = value
        session.add(AppSetting(key=CONFIG_KEY, value=clean, updated_by="migration"))
        record_event(
            session,
            EventType.CONFIG_UPDATED,
            "Training configuration imported from the old server",
            changes=clean,
        )
        self.base.commit(session)
        self.report.count("config")
        self.report.notes.append(
            f"Training configuration: {defaults(self.settings) | clean} (admin settings win, D21)"
        )


def _config_problem(name: str, value: Any) -> str | None:
    if name == "optimizer":
        return None if value in OPTIMIZERS else "unknown optimizer"
    if name == "augmentation_applied":
        return None if isinstance(value, bool) else "not a boolean"
    if name not in CONFIG_RANGES:
        return "not a training setting"
    kind, low, high = CONFIG_RANGES[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return "not a number"
    if kind is int and value != int(value):
        return "not a whole number"
    return None if low <= value <= high else f"outside {low}..{high}"


def run(base: Migration, settings: Settings, session: Session) -> None:
    """Everything, in dependency order (labels of the pool may name imported models)."""
    base.run_cases(session)
    learning = LearningMigration(base, settings)
    learning.import_registry(session)
    learning.import_labels_pool(session)
    learning.import_events(session)
    learning.import_config(session)
