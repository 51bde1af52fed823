"""Answers of /admin/models* (contract 2.19-2.27): the registry's records and the changes an
admin makes. Field order is the wire's; the records' JSON blobs (metrics, evaluation, training
configuration) stay objects, as the registry recorded them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from allcare.services.models.assets import Asset, AssetActivation, AssetListing
from allcare.services.models.changes import Activation, Promotion, Rollback
from allcare.services.models.records import ModelListing, VersionRecord

Ok = Literal["ok"]


class VersionOut(BaseModel):
    version_id: str
    status: str
    created_at: str | None
    base_model: str | None
    architecture: str | None
    training_config: dict[str, Any] | None
    metrics: dict[str, Any]
    path: str | None
    sha256: str | None
    source: str | None
    source_name: str | None
    evaluation: dict[str, Any] | None
    error: str | None
    triggered_by: str | None
    started_at: str | None
    finished_at: str | None

    @classmethod
    def of(cls, record: VersionRecord) -> VersionOut:
        return cls.model_validate(record, from_attributes=True)


class ModelListOut(BaseModel):
    status: Ok = "ok"
    models: list[VersionOut]
    current_production: str | None
    active_inference: str | None
    total: int

    @classmethod
    def of(cls, listing: ModelListing) -> ModelListOut:
        return cls(
            models=[VersionOut.of(record) for record in listing.models],
            current_production=listing.current_production,
            active_inference=listing.active_inference,
            total=len(listing.models),
        )


class ProductionOut(BaseModel):
    status: Ok = "ok"
    production_model: VersionOut


class NoProductionOut(BaseModel):
    status: Ok = "ok"
    production_model: None = None
    message: str = "No production model deployed"


class ServingVersionOut(VersionOut):
    active_path: str | None
    serving: str | None


class ActiveOut(BaseModel):
    status: Ok = "ok"
    active_inference: ServingVersionOut | None


class AssetOut(BaseModel):
    file_name: str
    path: str
    size_bytes: int
    modified_at: str
    is_active: bool

    @classmethod
    def of(cls, asset: Asset) -> AssetOut:
        return cls.model_validate(asset, from_attributes=True)


class AssetListOut(BaseModel):
    status: Ok = "ok"
    assets_dir: str
    active_model_path: str | None
    active_version: str | None
    models: list[AssetOut]
    total: int

    @classmethod
    def of(cls, listing: AssetListing) -> AssetListOut:
        return cls(
            assets_dir=listing.assets_dir,
            active_model_path=listing.active_model_path,
            active_version=listing.active_version,
            models=[AssetOut.of(asset) for asset in listing.models],
            total=len(listing.models),
        )


class AssetActivationOut(BaseModel):
    status: Ok = "ok"
    message: str
    active_model_path: str
    model_loaded: bool = True
    version_id: str

    @classmethod
    def of(cls, done: AssetActivation) -> AssetActivationOut:
        return cls(
            message=f"Active inference model set to {done.file_name}",
            active_model_path=done.path,
            version_id=done.version_id,
        )


class PlotDataOut(BaseModel):
    epochs: list[Any]
    series: dict[str, list[Any]]
    available_metrics: list[str]


class TrainingLogOut(BaseModel):
    status: Ok = "ok"
    version_id: str
    training_log_file: str = "training_log.json"
    total_epochs: int
    raw_log: list[dict[str, Any]]
    plot_data: PlotDataOut

    @classmethod
    def of(cls, version_id: str, rows: list[dict[str, Any]]) -> TrainingLogOut:
        metrics = sorted({key for row in rows for key in row if key != "epoch"})
        return cls(
            version_id=version_id,
            total_epochs=len(rows),
            raw_log=rows,
            plot_data=PlotDataOut(
                epochs=[row.get("epoch") for row in rows],
                series={key: [row.get(key) for row in rows] for key in metrics},
                available_metrics=metrics,
            ),
        )


class EvaluationSetOut(BaseModel):
    status: Ok = "ok"
    version_id: str
    summary: dict[str, Any]
    evaluation_set: dict[str, Any]


class ActiveRefOut(BaseModel):
    version_id: str
    path: str


class ActivationOut(BaseModel):
    status: Ok = "ok"
    message: str
    active_inference: ActiveRefOut

    @classmethod
    def of(cls, done: Activation) -> ActivationOut:
        return cls(
            message=f"Active inference model set to {done.version_id}",
            active_inference=ActiveRefOut(version_id=done.version_id, path=done.path),
        )


class PromotionOut(BaseModel):
    status: Ok = "ok"
    message: str
    success: bool = True
    version_id: str
    previous_production: str | None
    reason: str

    @classmethod
    def of(cls, done: Promotion) -> PromotionOut:
        return cls(
            message=f"Model {done.version_id} promoted to production",
            version_id=done.version_id,
            previous_production=done.previous_production,
            reason=done.reason,
        )


class RollbackOut(BaseModel):
    status: Ok = "ok"
    message: str
    success: bool = True
    from_version: str | None
    to_version: str
    reason: str

    @classmethod
    def of(cls, done: Rollback) -> RollbackOut:
        return cls(
            message=f"Rolled back to model {done.to_version}",
            from_version=done.from_version,
            to_version=done.to_version,
            reason=done.reason,
        )
