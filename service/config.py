"""The one settings object. Every value comes from ``BYLINECHECK_*`` environment variables or defaults.

Caveats first: :class:`Settings` is never created at import time; the CLI (or a test) builds one and
passes it down explicitly (``create_app(settings)``). Nothing else in the code reads ``os.environ``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
PLACEHOLDER_SECRET = "change-me"


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"
    TEST = "test"


class EnergyBackend(StrEnum):
    AUTO = "auto"
    NVML = "nvml"
    RAPL = "rapl"
    CPU_TIME = "cpu-time"


class DeviceSetting(StrEnum):
    CPU = "cpu"
    CUDA = "cuda"


SHIPPED_ROLES = {"text": "text", "face": "image"}  # shipped detector slot -> the modality it judges


class CustomDetectorSpec(BaseModel):
    """A declared ("bring your own") detector: a local folder, never a download. See README, "Bring your own"."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="Unique; not 'text' or 'face'")
    kind: Literal["hf-sequence-classifier", "zero-shot-lm", "hf-image-classifier", "onnx"]
    path: Path = Field(description="Local model folder (the observer / scoring model for zero-shot-lm)")
    role: Literal["text", "image"] = "text"
    performer_path: Path | None = Field(default=None, description="zero-shot-lm: performer (Binoculars) or "
                                        "sampling model (Fast-DetectGPT)")
    method: Literal["binoculars", "fast-detectgpt"] | None = Field(
        default=None, description="zero-shot-lm; default binoculars with two models, fast-detectgpt with one")
    ai_label: str = Field(default="1", description="The output label name (or index) that means AI")
    device: DeviceSetting | None = Field(default=None, description="None = the service's device")
    max_batch_size: int = Field(default=8, ge=1, le=1024)
    max_length: int = Field(default=512, ge=8, le=32_768, description="Tokens per window")
    max_windows: int = Field(default=16, ge=1)
    min_evidence: float | None = Field(default=None, ge=0.0, description="Tokens (text) or crop pixels (image)")
    crop: Literal["image", "face"] = "image"
    verify_sha256: bool = Field(default=True, description="Check the calibration manifest's sha256s at load")
    io: dict[str, Any] = Field(default_factory=dict, description="onnx: the declared input/output spec")
    manifest_dir: Path | None = Field(default=None, description="Where calibrate writes this detector's manifest; "
                                      "default <path>/.bylinecheck/<name>")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        default="auto", description="Weights' dtype for the torch kinds; auto = as stored (e.g. bfloat16 for 7B LMs)")


class EnsembleSpec(BaseModel):
    """Detectors stacked for one role by a logistic regression fitted with ``bylinecheck calibrate --ensemble``."""

    role: Literal["text", "image"]
    members: list[str] = Field(min_length=1, description="'text' / 'face' (shipped) or custom detector names")
    manifest: Path = Field(description="Stacker manifest (JSON) written by the calibrate command")


class Settings(BaseSettings):
    """All configuration. Units are in the names (``_s`` seconds, ``_bytes``, ``_w`` watts)."""

    model_config = SettingsConfigDict(env_prefix="BYLINECHECK_", env_file=None, extra="ignore")

    environment: Environment = Environment.DEVELOPMENT
    host: str = "127.0.0.1"
    port: int = 8000

    spread_connections_in_flight: int = Field(
        default=0, ge=0, description="Ask a client to reconnect (Connection: close) when this worker process has at "
        "least this many requests in flight, so that the next request goes to whichever worker process accepts it "
        "first instead of staying on a busy one (service/api/connections.py). 0 = keep every connection open (the "
        "default for one process); `bylinecheck serve --workers N` with N >= 2 makes it 2 unless set (2 cores, c=8: "
        "p50 -22%, benchmarks/NOTES.md, round 12)")

    spread_connections_max_in_flight: int = Field(
        default=8, ge=1, description="Above this many requests in flight a worker process counts as saturated and "
        "keeps its connections open even with spread_connections_in_flight set: all processes are then saturated "
        "and reconnecting only reorders the queue (2 cores, c=32: p99 +26% without this cap; benchmarks/NOTES.md, "
        "round 12)")

    database_url: str = f"sqlite:///{REPO_ROOT / 'var' / 'bylinecheck.sqlite3'}"
    store_busy_timeout_s: float = Field(
        default=10.0, gt=0.0, description="SQLite: how long a write waits for a lock before a 503 store_busy")
    weights_dir: Path = REPO_ROOT / "weights"
    device: DeviceSetting = DeviceSetting.CPU
    cuda_index: int = 0
    intra_op_threads: int = Field(
        default=1, ge=0, description="ONNX Runtime threads per session. 1: the shipped models' forward passes take "
        "~1 ms and extra threads only spin after each run (measured on 2 cores: ~60-100 ms of CPU per check); the "
        "forward pass then runs on the lane thread, whose CPU time is its energy estimate. 0 = ONNX Runtime default")

    # Micro-batching.
    max_batch_size: int = Field(default=16, ge=1, le=1024)
    max_wait_s: float = Field(default=0.01, ge=0.0, le=1.0)
    max_queue: int = Field(default=256, ge=1)
    request_deadline_s: float = Field(default=30.0, gt=0.0)
    retry_after_s: int = Field(default=1, ge=1)
    preprocess_workers: int = Field(
        default=0, ge=0, le=256, description="Threads that decode images and preprocess items for the shipped "
        "detectors (face finding, featurisation, provenance); 0 = four per CPU core, at most 64. dlib, OpenCV, numpy "
        "and Pillow release the GIL for their heavy parts, so threads use the cores; more threads than cores let the "
        "operating system share the cores among the checks in flight (benchmarks/NOTES.md, round 9: on 2 cores, c=8, "
        "p50 -21% against one thread per core)")

    # Input limits.
    max_text_chars: int = Field(default=200_000, ge=1)
    max_image_bytes: int = Field(default=15 * 1024 * 1024, ge=1)
    max_image_pixels: int = Field(default=40_000_000, ge=1)
    max_headshots: int = Field(default=8, ge=0)
    max_request_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    body_idle_timeout_s: float = Field(default=15.0, gt=0.0, description="Longest wait for the next body chunk (408)")
    body_deadline_s: float = Field(default=120.0, gt=0.0, description="Longest time to receive a whole body (408)")

    # Energy accounting.
    energy_backend: EnergyBackend = EnergyBackend.AUTO
    rapl_root: Path = Path("/sys/class/powercap")
    cpu_core_power_w: float = Field(
        default=6.75,
        gt=0.0,
        description="Per-core power for the CPU-time estimate: Intel Xeon Platinum 8380 TDP 270 W / 40 cores.",
    )
    cpu_core_power_source: str = "Intel Xeon Platinum 8380 TDP (270 W) / 40 cores"
    energy_overhead: bool = Field(
        default=True, description="Add a `service-overhead` part to each check's energy: the worker process's CPU "
        "that no detector part bills (HTTP, event loop, store), averaged over recent checks (service/overhead.py). "
        "Not added when a part was read from RAPL, whose package reading already covers it.")
    grid_gco2e_per_kwh: float = Field(
        default=480.0,
        ge=0.0,
        description="World average 2023 carbon intensity of electricity, Ember Global Electricity Review 2024.",
    )
    grid_source: str = "Ember, Global Electricity Review 2024 (world average, 2023)"
    smartphone_charge_kwh: float = Field(
        default=0.022,
        gt=0.0,
        description="EPA figure as used in the 2024 version of 'Power Hungry Processing' (was 0.012 before 2024).",
    )

    # Auth.
    bootstrap_api_key: bool = True
    secret_key: SecretStr = SecretStr(PLACEHOLDER_SECRET)

    # Rate limits per API key (0 disables).
    rate_limit_per_minute: int = Field(default=600, ge=0)
    rate_limit_burst: int = Field(default=60, ge=1)

    # Text detector.
    text_lm: Literal["auto", "off", "always"] = Field(
        default="auto", description="SmolLM2 likelihood features in the shipped text detector (weights/text >= 0.2.0): "
        "auto = only for texts the n-gram model is unsure of (the cascade band in the manifest; ~1.4 CPU-s each at 256 tokens), "
        "always = every text, off = the n-gram model alone (its own calibration and thresholds, ~20 ms per article)")
    text_lm_runtime: Literal["numpy", "onnx"] = Field(
        default="numpy", description="What runs SmolLM2's float32 pass on CPU (a CUDA device uses PyTorch): numpy, or "
        "ONNX Runtime, which gives the same features (within ~5e-6) for ~23% less CPU per LM-path text but holds "
        "~0.95 GB more memory per worker process (its pre-packed weights; benchmarks/NOTES.md, round 11)")

    # Headshots.
    keep_headshot_images: bool = False
    headshot_retention_days: int = Field(default=30, ge=0)
    face_embeddings: bool = Field(
        default=True,
        description="Keep dlib's 128-d face descriptor (~10 ms per face on one core, ONNX Runtime) in the report and the "
        "store for reuse matching. Face model 2.2.0 computes it for every judged face anyway (its stacker reads it); "
        "false keeps it out of reports and the database (reuse is then found by pHash only)")
    reuse_embedding_max_distance: float = Field(
        default=0.35, gt=0.0, description="Measured (benchmarks/reuse_rates.py, 120 faces): same face after resize+JPEG q70+crop "
        "matched 99.2%, different people 0 of 7,021 pairs; at 0.45: 100% and 0.30%")
    reuse_phash_max_distance: int = Field(default=10, ge=0, le=64)
    reuse_candidate_limit: int = Field(
        default=100_000, ge=1, description="Reuse search compares a new headshot with at most this many earlier "
        "headshots under other bylines, the newest by created_at (then id). Every stored headshot's fingerprint is "
        "held in an in-process index (service/reuse_index.py; ~0.7 KB each per API process, 76 MB at 100,000; "
        "refreshed from the database before each check, first look-up loads it all: ~2 s at 100,000); a look-up "
        "over 100,000 takes ~11 ms instead of ~1.2 s (benchmarks/bench_reuse.py)")
    headshot_cache_size: int = Field(
        default=256, ge=0, description="Headshot analyses (face finding, crops, cues, embedding; ~30 KB each) kept "
        "in memory, keyed by the upload's sha256 and the face model's version, and as many finished face outputs "
        "and provenance readings (metadata, watermark, pHash; well under 1 KB each): the same byline photo sent "
        "again skips face preprocessing, the face model's forward pass and the provenance readers. 0 = off")
    headshot_decode_min_side: int = Field(
        default=448, ge=0, description="Decode JPEG headshots at 1/2, 1/4 or 1/8 scale (DCT scaling) while the "
        "longest side stays >= this (the face finder works at 448 px; faces with under ~60 px between the eyes are "
        "re-decoded at full size); 0 = always full size. Not applied when a declared image detector is configured")

    # Webhooks (inbound CMS events, durable queue, outbound callbacks). See docs/webhooks.md.
    webhook_secrets: dict[str, list[SecretStr]] = Field(
        default_factory=dict,
        description="source -> secrets, newest first (rotation): ghost = the Ghost secret; "
        "wordpress/standard = 'whsec_<base64>'. JSON in BYLINECHECK_WEBHOOK_SECRETS.",
    )
    webhook_tolerance_s: int = Field(default=300, ge=1, description="Accepted clock skew of signed timestamps")
    redis_url: SecretStr | None = Field(default=None, description="Use RedisHuey at this URL instead of SqliteHuey")
    queue_path: Path = REPO_ROOT / "var" / "queue.sqlite3"
    queue_in_process: bool | None = Field(
        default=None, description="Run queue workers inside the API process; None = yes except in production")
    queue_workers: int = Field(default=1, ge=1, le=64)
    queue_poll_max_s: float = Field(default=1.0, gt=0.0, le=60.0)
    job_max_attempts: int = Field(default=5, ge=1)
    job_retry_base_s: float = Field(default=2.0, gt=0.0)
    job_retry_max_s: float = Field(default=600.0, gt=0.0)
    fetch_allow_hosts: list[str] = Field(default_factory=list, description="Hosts headshot URLs may be fetched from")
    private_allow_hosts: list[str] = Field(
        default_factory=list, description="Hosts allowed to resolve to private/loopback addresses (fetch and callbacks)")
    allow_private_fetch: bool = Field(default=False, description="Allow every private address (development only)")
    fetch_timeout_s: float = Field(default=5.0, gt=0.0)
    callback_timeout_s: float = Field(default=10.0, gt=0.0)
    callback_max_age_s: float = Field(default=86_400.0, gt=0.0, description="Give up on a callback after this long")
    callback_retry_base_s: float = Field(default=5.0, gt=0.0)
    callback_retry_max_s: float = Field(default=3_600.0, gt=0.0)
    job_lease_margin_s: float = Field(
        default=30.0, gt=0.0, description="A running job is leased for fetch_timeout_s + request_deadline_s + this")

    # Archive audits.
    audit_dir: Path = REPO_ROOT / "var" / "audits"
    audit_concurrency: int = Field(default=16, ge=1, le=256, description="Articles in flight per API audit")

    # Declared detectors and ensembles (JSON in BYLINECHECK_CUSTOM_DETECTORS / BYLINECHECK_ENSEMBLES).
    custom_detectors: list[CustomDetectorSpec] = Field(default_factory=list)
    ensembles: list[EnsembleSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_custom_detectors(self) -> Settings:
        roles = dict(SHIPPED_ROLES)
        for spec in self.custom_detectors:
            if spec.name in roles:
                raise ValueError(f"custom detector name {spec.name!r} is already used")
            roles[spec.name] = spec.role
        seen: set[str] = set()
        for ensemble in self.ensembles:
            if ensemble.role in seen:
                raise ValueError(f"more than one ensemble for role {ensemble.role}")
            seen.add(ensemble.role)
            wrong = [m for m in ensemble.members if roles.get(m) != ensemble.role]
            if wrong:
                raise ValueError(f"ensemble {ensemble.role}: {wrong} are not {ensemble.role} detectors")
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Settings:
        if self.environment is Environment.PRODUCTION and self.secret_key.get_secret_value() == PLACEHOLDER_SECRET:
            raise ValueError("BYLINECHECK_SECRET_KEY is the placeholder; set a real secret in production")
        if self.max_wait_s > self.request_deadline_s:
            raise ValueError("max_wait_s must not exceed request_deadline_s")
        return self

    def preprocess_threads(self, cpu_count: int | None) -> int:
        """The preprocessing pool's size: ``preprocess_workers``, or four per core (at most 64) when it is 0."""
        return self.preprocess_workers or min(64, 4 * (cpu_count or 1))
