"""Prometheus metrics of one app: request latency by route, plus the state of inference, the
model, training and the access audit read from the container at each scrape."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from allcare.container import Container
from allcare.services.models import registry
from allcare.services.models.registry import Pointer

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
# Set by `allcare serve --workers N` (api/server_processes.py) for its processes.
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


class AppMetrics:
    """Prometheus collectors per app (tests run many apps in one process; prometheus_client's
    global registry would clash).

    Under ``allcare serve --workers N`` (PROMETHEUS_MULTIPROC_DIR set by the parent) request
    latency is summed over the processes by prometheus_client's multiprocess mode, whichever
    process answers the scrape; the state gauges are that process's.
    """

    def __init__(self, container: Callable[[], Container]) -> None:
        self.collectors = CollectorRegistry()
        shared = os.environ.get(MULTIPROCESS_DIR)
        self.latency = Histogram(
            "allcare_http_request_duration_seconds",
            "Time from request to the end of the answer, by route template and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=None if shared else self.collectors,
        )
        if shared:
            MultiProcessCollector(self.collectors, shared)
        self.collectors.register(StateCollector(container))


class StateCollector(Collector):
    """The container's state, read at each scrape."""

    def __init__(self, container: Callable[[], Container]) -> None:
        self._container = container

    def collect(self) -> Iterator[Metric]:
        container = self._container()
        engine = container.engine
        yield GaugeMetricFamily(
            "allcare_inference_queue_depth", "Photos waiting for the model", engine.queue_depth
        )
        yield GaugeMetricFamily(
            "allcare_inference_queue_capacity",
            "Photos that may wait before /check-image answers 503",
            engine.capacity,
        )
        yield _batch_sizes(engine.batch_size_counts)
        model = engine.model
        info = GaugeMetricFamily(
            "allcare_model_info",
            "The model that serves (1), labelled by version",
            labels=["version"],
        )
        if model is not None:
            info.add_metric([model.version], 1)
        yield info
        yield GaugeMetricFamily(
            "allcare_model_loaded", "1 when a model serves /check-image", int(model is not None)
        )
        yield CounterMetricFamily(
            "allcare_audit_write_failures",
            "Access audit records that could not be written",
            container.access_writer.failures,
        )
        database_up = container.db.ping()
        yield GaugeMetricFamily(
            "allcare_database_up", "1 when the database answers", int(database_up)
        )
        if database_up:
            yield from _learning_loop(container)
            yield from _job_queue(container)


def _job_queue(container: Container) -> Iterator[Metric]:
    """The job system's queue (TRAINING_QUEUE=procrastinate only)."""
    state = container.job_queue_state()
    if state is None:
        return
    yield GaugeMetricFamily(
        "allcare_training_jobs_queued", "Training jobs waiting for a worker", state.queued
    )
    yield GaugeMetricFamily(
        "allcare_training_jobs_running", "Training jobs a worker is executing", state.running
    )
    yield GaugeMetricFamily(
        "allcare_training_workers", "Training workers registered with the job system", state.workers
    )
    if state.heartbeat_age_s is not None:
        yield GaugeMetricFamily(
            "allcare_training_worker_heartbeat_age_seconds",
            "Seconds since the freshest training worker heartbeat",
            state.heartbeat_age_s,
        )


def _batch_sizes(counts: dict[int, int]) -> Metric:
    buckets = [
        (str(bound), sum(n for size, n in counts.items() if size <= bound))
        for bound in BATCH_BUCKETS
    ]
    buckets.append(("+Inf", sum(counts.values())))
    total = sum(size * n for size, n in counts.items())
    return HistogramMetricFamily(
        "allcare_inference_batch_size", "Photos per model call", buckets=buckets, sum_value=total
    )


def _learning_loop(container: Container) -> Iterator[Metric]:
    runs = GaugeMetricFamily(
        "allcare_training_runs", "Training runs by their current status", labels=["status"]
    )
    production = GaugeMetricFamily(
        "allcare_model_production_info",
        "The registry's production model (1), labelled by version; it differs from "
        "allcare_model_info while an admin serves another version on trial",
        labels=["version"],
    )
    with container.db.session() as session:
        counts = registry.training_runs_by_status(session)
        production_version = registry.pointer(session, Pointer.PRODUCTION)
    for status, count in counts.items():
        runs.add_metric([status], count)
    if production_version is not None:
        production.add_metric([production_version], 1)
    yield runs
    yield production
