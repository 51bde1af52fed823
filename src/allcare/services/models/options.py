"""How this process opens model files: the settings' runtime, device, threads and cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from allcare.core.config import Settings

if TYPE_CHECKING:
    from allcare.ml.loading import ModelOptions


def model_options(settings: Settings) -> ModelOptions:
    # Deferred: account commands of the CLI start without loading the model code.
    from allcare.ml.loading import ModelOptions

    threads, _ = settings.thread_budget
    return ModelOptions(
        runtime=settings.inference_runtime,
        device=settings.model_device,
        threads=threads,
        fallback_cache_dir=settings.storage_root / "model-cache",
        trust_pickle=settings.model_trust_pickle,
    )
