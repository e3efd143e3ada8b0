"""Prometheus metrics on a registry owned by the app (no global registry)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.batching import BatchStats


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.checks = Counter("bylinecheck_checks", "Checks completed, by verdict", ["verdict", "source"],
                              registry=self.registry)
        self.check_latency = Histogram("bylinecheck_check_latency_seconds", "Check latency", registry=self.registry,
                                       buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
        self.energy = Counter("bylinecheck_inference_energy_joules", "Energy of inference batches, in joules",
                              ["detector", "source", "method"], registry=self.registry)
        self.batches = Counter("bylinecheck_batches", "Inference batches run", ["detector"], registry=self.registry)
        self.batch_size = Histogram("bylinecheck_batch_size", "Items per inference batch", ["detector"],
                                    registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
        self.errors = Counter("bylinecheck_errors", "Errors returned, by code", ["code"], registry=self.registry)
        self.queue_depth = Gauge("bylinecheck_queue_depth", "Items waiting per detector", ["detector"],
                                 registry=self.registry)

    def observe_batch(self, stats: BatchStats) -> None:
        self.batches.labels(stats.detector).inc()
        self.batch_size.labels(stats.detector).observe(stats.size)
        self.energy.labels(stats.detector, stats.reading.source.value, stats.reading.method.value).inc(
            stats.reading.joules)

    def render(self) -> bytes:
        return generate_latest(self.registry)
