"""``allcare train`` and ``allcare models ...``: a first model, and the registry from a shell."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from allcare.cli.common import cli_store, command_group, fail
from allcare.core.config import Settings
from allcare.ml.classes import DEFAULT_ARCHITECTURE
from allcare.ml.optional import needs_torch
from allcare.ml.training_config import FIRST_MODEL
from allcare.services.models.options import model_options
from allcare.store.db import Database

if TYPE_CHECKING:
    from allcare.services.models.deployment import Deployment


class Init(StrEnum):
    PRETRAINED = "pretrained"
    RANDOM = "random"


models_app = command_group("Inspect and change the model registry.")
ACTOR = "command-line"


@contextmanager
def _registry() -> Iterator[tuple[Settings, Database]]:
    with cli_store() as (settings, db, _sealer):
        yield settings, db


@contextmanager
def _deployment() -> Iterator[Deployment]:
    """Changes are loaded here first (the same validation as the server's); a running server
    follows the registry's active model within REGISTRY_POLL_SECONDS."""
    from allcare.ml.batching import InferenceEngine
    from allcare.services.models.deployment import Deployment

    with _registry() as (settings, db):
        engine = InferenceEngine(
            None, options=model_options(settings), max_batch=1, max_wait_s=0, queue_size=1
        )
        try:
            yield Deployment(db, settings, engine)
        finally:
            engine.close()


def train(
    data_dir: Annotated[Path, typer.Argument(help="Folder with labels.csv and images/.")],
    architecture: Annotated[
        str,
        typer.Option(
            help="efficientnet_lite0 (ImageNet-pretrained), resnet50, efficientnet_v2_m, "
            "mobilenet_v3_large"
        ),
    ] = DEFAULT_ARCHITECTURE,
    init: Annotated[
        Init, typer.Option(help="Start from ImageNet weights (efficientnet_lite0) or random ones")
    ] = Init.PRETRAINED,
    epochs: Annotated[int, typer.Option(min=1, max=100)] = FIRST_MODEL.epochs,
    batch_size: Annotated[int, typer.Option(min=1, max=128)] = FIRST_MODEL.batch_size,
    learning_rate: Annotated[float, typer.Option(min=1e-6, max=1.0)] = FIRST_MODEL.learning_rate,
    melanoma_weight: Annotated[
        float, typer.Option(min=1.0, max=10.0, help="Melanoma's loss weight (the others 1)")
    ] = FIRST_MODEL.melanoma_weight,
    ema: Annotated[
        bool, typer.Option(help="Keep the moving average of the weights (timm's EMA warm-up)")
    ] = FIRST_MODEL.ema,
    seed: Annotated[int, typer.Option(help="Seeds sampling, augmentation and weights")] = 0,
    eval_split: Annotated[str, typer.Option(help="labels.csv split to evaluate on")] = "val",
    mini: Annotated[bool, typer.Option(help="Only rows with mini=1 (a quick run)")] = False,
    limit: Annotated[
        int | None,
        typer.Option(min=2, help="At most this many photos per split (stratified, seeded)"),
    ] = None,
    start_from: Annotated[Path | None, typer.Option(help="Continue from this checkpoint")] = None,
    promote: Annotated[bool, typer.Option(help="Make it production and serve it")] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Promote even below the promotion floor (with --reason)")
    ] = False,
    reason: Annotated[str | None, typer.Option(help="Why it is promoted (audit log)")] = None,
) -> None:
    """Train a model on a folder of labelled photos and register it (a clinic's first model)."""
    missing = needs_torch("allcare train")
    if missing:
        raise fail(missing)
    from allcare.ml.training import Progress, use_training_threads
    from allcare.services.learning.architecture_choice import canonical_architecture
    from allcare.services.learning.first_model import FolderRun, train_from_folder

    with _registry() as (settings, db):
        run = FolderRun(
            data_dir=data_dir,
            architecture=canonical_architecture(architecture),
            config=replace(
                FIRST_MODEL,
                epochs=epochs,
                batch_size=batch_size,
                learning_rate=learning_rate,
                melanoma_weight=melanoma_weight,
                ema=ema,
            ),
            eval_split=eval_split,
            mini=mini,
            limit=limit,
            start_from=start_from,
            pretrained=init == Init.PRETRAINED,
            seed=seed,
        )
        use_training_threads(settings.training_threads)
        with typer.progressbar(length=1000, label=f"Training {run.architecture}") as bar:
            done = 0

            def progress(step: Progress) -> None:
                nonlocal done
                target = int(step.fraction * 1000)
                bar.update(target - done)
                done = target
                bar.label = f"epoch {step.epoch}/{step.epochs} loss {step.loss:.3f}"

            result = train_from_folder(settings, db, run, ACTOR, progress)
        metrics = result.metrics
        typer.echo(
            f"Registered {result.version_id}: accuracy {metrics['val_accuracy']:.3f}, "
            f"balanced accuracy {metrics['balanced_accuracy']:.3f}, melanoma recall "
            f"{metrics['mel_recall']}, ECE {metrics['ece']:.3f} on {metrics['eval_images']} "
            f"'{eval_split}' photos; {metrics['seconds_per_epoch']} s per epoch"
        )
    if promote:
        promote_checked(result.version_id, reason or "first model, trained from a folder", force)


@models_app.command("list")
def list_models() -> None:
    """Every version, newest first, with the production (P) and active (A) marks."""
    from allcare.services.models import records

    with _registry() as (settings, db), db.session() as session:
        listing = records.list_models(session, settings, None)
    typer.echo(
        f"{'':2} {'VERSION':<14}  {'STATUS':<10} {'ARCHITECTURE':<18} {'CREATED':<26}  "
        f"{'BAL.ACC':>7}  {'MEL.SENS':>8}  SOURCE"
    )
    for model in listing.models:
        marks = ("P" if model.version_id == listing.current_production else " ") + (
            "A" if model.version_id == listing.active_inference else " "
        )
        typer.echo(
            f"{marks} {model.version_id:<14}  {model.status:<10} "
            f"{model.architecture or '-':<18} {model.created_at or '-':<26}  "
            f"{_metric(model.metrics, 'balanced_accuracy'):>7}  "
            f"{_metric(model.metrics, 'mel_recall'):>8}  {model.source}"
        )
    typer.echo("P: production, A: serving now; metrics on the held-out set of each training run")


def _metric(metrics: dict[str, Any], name: str) -> str:
    value = metrics.get(name)
    return "-" if value is None else f"{value:.3f}"


@models_app.command("activate")
def activate(version_id: str) -> None:
    """Serve this version (it is loaded here first)."""
    with _deployment() as deployment:
        deployment.activate(version_id, ACTOR)
    typer.echo(f"{version_id} is active")


@models_app.command("promote")
def promote_version(
    version_id: str,
    reason: Annotated[str, typer.Option(help="Why (kept in the audit log)")],
    force: Annotated[
        bool, typer.Option("--force", help="Promote even below the promotion floor")
    ] = False,
) -> None:
    """Make this version production (and serve it); below the promotion floor only with --force."""
    promote_checked(version_id, reason, force)


def promote_checked(version_id: str, reason: str, force: bool) -> None:
    """PROMOTION_FLOOR_* guard promotions by hand: the numbers are shown either way."""
    from allcare.services.models.promotion_floor import check

    with _registry() as (settings, db), db.session() as session:
        checked = check(session, settings, version_id)
    below = "; ".join(checked.shortfalls)
    if below and not force:
        raise fail(
            f"{version_id} was not promoted: {below} ({checked.held_out.describe()}). "
            "To serve it anyway, pass --force with a --reason"
        )
    with _deployment() as deployment:
        forced = f"{reason} (forced below the promotion floor: {below})"
        deployment.promote(version_id, ACTOR, forced if below else reason)
    typer.echo(
        f"{version_id} is in production and serves predictions: {checked.held_out.describe()}"
        + (f"; below the promotion floor ({below}), promoted with --force" if below else "")
    )
