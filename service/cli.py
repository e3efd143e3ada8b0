"""The ``bylinecheck`` command line: serve, worker, check, audit, keys, train, eval."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from service.config import Settings
from service.domain import CheckRequest, HeadshotUpload, Scope
from service.errors import ServiceError
from service.inputs import decode_text
from service.store import Store

app = typer.Typer(no_args_is_help=True, help="bylinecheck: is this article, and its byline, real?")
keys_app = typer.Typer(no_args_is_help=True, help="Manage API keys.")
train_app = typer.Typer(no_args_is_help=True, help="Train the shipped models from ../shared/datasets.")
eval_app = typer.Typer(no_args_is_help=True, help="Evaluate detectors on labelled data.")
app.add_typer(keys_app, name="keys")
app.add_typer(train_app, name="train")
app.add_typer(eval_app, name="eval")
models_app = typer.Typer(no_args_is_help=True, help="Declared (bring-your-own) detectors.")
app.add_typer(models_app, name="models")
console = Console(stderr=True)


def _settings() -> Settings:
    return Settings()


@app.command()
def serve(host: Annotated[str | None, typer.Option()] = None, port: Annotated[int | None, typer.Option()] = None,
          workers: Annotated[int, typer.Option(help="uvicorn worker processes")] = 1) -> None:
    """Start the HTTP service (SQLite, in-process queue and CPU by default)."""
    import logging

    import uvicorn

    from service.api import create_app

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = _settings()
    if workers > 1:
        from service.serving import run_workers

        run_workers("service.api.asgi:app", host or settings.host, port or settings.port, workers)
        return
    uvicorn.run(create_app(settings), host=host or settings.host, port=port or settings.port)


@app.command()
def worker() -> None:
    """Run queue workers (webhook jobs and callbacks) in this process; restart it after a crash."""
    import logging

    from service.webhooks.worker import run_worker

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run_worker(_settings())


@app.command()
def migrate() -> None:
    """Upgrade the database schema to the latest migrations (run before starting a new version)."""
    settings = _settings()
    store = Store(settings.database_url, settings.secret_key.get_secret_value())
    try:
        store.migrate()
    finally:
        store.close()
    console.print("database schema is up to date")


@app.command()
def check(
    text: Annotated[Path | None, typer.Option(exists=True, dir_okay=False, help="UTF-8 text file")] = None,
    byline: Annotated[str | None, typer.Option()] = None,
    headshot: Annotated[list[Path] | None, typer.Option(exists=True, dir_okay=False)] = None,
) -> None:
    """Check one article (and headshots) without a server; prints the report as JSON."""
    from service.runner import open_pipeline

    async def run() -> dict[str, object]:
        request = CheckRequest(
            text=decode_text(text.read_bytes()) if text else None, byline=byline, source="cli",
            headshots=tuple(HeadshotUpload(p.read_bytes(), p.name) for p in headshot or []),
        )
        async with open_pipeline(_settings()) as pipeline:
            return await pipeline.check(request)

    try:
        report = asyncio.run(run())
    except ServiceError as exc:
        console.print(f"[red]{exc.code}[/red]: {exc.message}")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(report, indent=2) + "\n")


@app.command()
def audit(
    archive: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="WXR, Ghost JSON, JSONL or CSV export")],
    out: Annotated[Path, typer.Option("--out", help="folder for the outputs, or OUT.jsonl (others written beside it)")],
    fmt: Annotated[str, typer.Option("--format", help="auto | wxr | ghost | jsonl | csv")] = "auto",
    headshots: Annotated[Path | None, typer.Option(exists=True, help="folder of headshots, or a CSV/JSON mapping")] = None,
    engine: Annotated[str, typer.Option(help="local | ray")] = "local",
    ray_address: Annotated[str | None, typer.Option(help="address of an existing Ray cluster")] = None,
    concurrency: Annotated[int, typer.Option(min=1, max=256, help="articles in flight (local engine)")] = 16,
    ray_actors: Annotated[int, typer.Option(min=1, max=1024, help="detector actors (Ray engine)")] = 2,
    fresh: Annotated[bool, typer.Option(help="start a new audit instead of resuming")] = False,
) -> None:
    """Audit an archive: one report per article, a per-author roll-up (CSV) and an HTML report. Resumable."""
    from service.audit import ArchiveFormat, AuditOptions, EngineName, OutputPaths, run_audit
    from service.audit import Progress as AuditProgress
    from service.audit.progress import audit_progress

    try:
        options = AuditOptions(fmt=ArchiveFormat(fmt), headshots=headshots, engine=EngineName(engine),
                               ray_address=ray_address, concurrency=concurrency, ray_actors=ray_actors, fresh=fresh)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with audit_progress(console) as (start, advance):
        try:
            written = asyncio.run(run_audit(_settings(), archive, out, options=options,
                                            progress=AuditProgress(start=start, advance=advance)))
        except KeyboardInterrupt:
            console.print("[yellow]interrupted[/yellow]: run the same command again to resume")
            raise typer.Exit(130) from None
    paths = OutputPaths.for_out(out)
    console.print(f"wrote {written} reports to {paths.jsonl}; authors: {paths.authors_csv}; report: {paths.html}")


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Option()],
    scope: Annotated[list[Scope] | None, typer.Option(help="check, audit, admin (repeatable)")] = None,
) -> None:
    """Create an API key and print it (it is stored hashed and cannot be shown again)."""
    settings = _settings()
    store = Store(settings.database_url, settings.secret_key.get_secret_value())
    store.migrate()
    token = store.create_api_key(name, scope or [Scope.CHECK])
    store.close()
    sys.stdout.write(token + "\n")


@keys_app.command("list")
def keys_list() -> None:
    settings = _settings()
    store = Store(settings.database_url, settings.secret_key.get_secret_value())
    store.migrate()
    for key_id, name, scopes, revoked in store.list_api_keys():
        sys.stdout.write(f"{key_id}\t{name}\t{scopes}\t{'revoked' if revoked else 'active'}\n")
    store.close()


@keys_app.command("revoke")
def keys_revoke(key_id: str) -> None:
    settings = _settings()
    store = Store(settings.database_url, settings.secret_key.get_secret_value())
    store.migrate()
    found = store.revoke_api_key(key_id)
    store.close()
    if not found:
        raise typer.Exit(1)


@train_app.command("text")
def train_text(
    data: Annotated[Path, typer.Option(help="../shared/datasets/text")] = Path("../shared/datasets/text"),
    out: Annotated[Path, typer.Option()] = Path("weights/text"),
    seed: int = 0,
    budget_s: float = 1200.0,
) -> None:
    """Reproduce the shipped text detector (needs the train extra)."""
    from detectors.text.training import train_text_model

    sys.stdout.write(json.dumps(train_text_model(data, out, seed=seed, budget_s=budget_s), indent=2) + "\n")


@train_app.command("faces")
def train_faces(
    data: Annotated[Path, typer.Option(help="../shared/datasets/faces")] = Path("../shared/datasets/faces"),
    out: Annotated[Path, typer.Option()] = Path("weights/face"),
    seed: int = 0,
    budget_s: float = 1200.0,
    stack_v2: Annotated[Path | None, typer.Option(help="face_cnn_v2.onnx of the GPU run: stack and calibrate 2.x")] = None,
    cnn_v1: Annotated[Path | None, typer.Option(help="with --stack-v2: 1.0.0's model.onnx (a stacker candidate)")] = None,
    gpu_log: Annotated[Path | None, typer.Option(help="with --stack-v2: the GPU run's train_log.json")] = None,
    v1: Annotated[bool, typer.Option("--v1", help="train 1.0.0 instead (its 96 px CNN on this CPU)")] = False,
) -> None:
    """Reproduce the shipped face detector (needs the train extra).

    By default everything after the CNN is refitted here from the committed CNN (``weights/face/model_v2.onnx``):
    seeded cue trees, side models, stacker choice, calibration, thresholds and the card's studies (3.5 minutes on 2
    cores with its feature caches built; building them first takes several minutes more); the manifest comes out as
    shipped (checked 2026-11-30: manifest, cue trees, grid model and test table byte-identical). A new CNN: crops
    with ``python -m detectors.face.gpu_data``, the GPU run ``scripts/gpu_train_face.sh OUT``
    (detectors/face/GPU_RUN.md), then ``--stack-v2 OUT/face_cnn_v2.onnx --gpu-log OUT/train_log.json`` here.
    ``--v1`` trains 1.0.0 (CPU CNN) instead.
    """
    from detectors.face.training import DEFAULT_CACHE

    if v1:
        from detectors.face.training import train_face_model

        summary = train_face_model(data, out, seed=seed, budget_s=budget_s)
    elif stack_v2 is not None:
        from detectors.face.stacking import stack_face_v2

        summary = stack_face_v2(data, out, stack_v2, seed, DEFAULT_CACHE, cnn_v1, gpu_log)
    else:
        from detectors.face.stacking import reproduce_shipped

        summary = reproduce_shipped(data, out, seed, DEFAULT_CACHE)
    sys.stdout.write(json.dumps(summary, indent=2, default=float) + "\n")


@eval_app.command("text")
def eval_text(input_path: Annotated[Path, typer.Option("--input", exists=True, dir_okay=False)]) -> None:
    """AUROC, TPR at 1%/5% FPR, FPR at the threshold, ECE and coverage: overall, per domain, per generator."""
    from detectors.contract import Device
    from detectors.text import build_text_detector
    from detectors.text.evaluation import evaluate_rows, format_evaluation

    detector = build_text_detector(_settings().weights_dir / "text")
    detector.load(Device())
    rows = [json.loads(line) for line in input_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    sys.stdout.write(format_evaluation(evaluate_rows(detector, rows)) + "\n")


@eval_app.command("faces")
def eval_faces(
    real: Annotated[Path, typer.Option(exists=True, file_okay=False)],
    synthetic: Annotated[Path, typer.Option(exists=True, file_okay=False)],
) -> None:
    """AUROC, TPR at 1% FPR, FPR at the threshold, coverage; also after JPEG q60 + half size."""
    from detectors.contract import Device
    from detectors.face import build_face_detector
    from detectors.face.evaluation import evaluate_dirs, format_evaluation

    detector = build_face_detector(_settings().weights_dir / "face")
    detector.load(Device())
    sys.stdout.write(format_evaluation(evaluate_dirs(detector, real, synthetic)) + "\n")


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def bench(ctx: typer.Context) -> None:
    """Service benchmark at concurrency 1, 8, 32 (see benchmarks/bench_checks.py; --peer adds the baseline)."""
    from benchmarks.bench_checks import main as bench_main

    bench_main(list(ctx.args))


@models_app.command("export")
def models_export(
    name: Annotated[str, typer.Argument(help="A declared detector (BYLINECHECK_CUSTOM_DETECTORS)")],
    out: Annotated[Path | None, typer.Option(help="Output folder; default <path>-onnx")] = None,
) -> None:
    """Convert a declared transformers classifier to ONNX (inference without torch); writes its manifest."""
    from service.model_admin import AdminError, export_model

    try:
        result = export_model(_settings(), name, out)
    except AdminError as exc:
        console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


@app.command()
def calibrate(
    input_path: Annotated[Path, typer.Option("--input", exists=True, dir_okay=False,
                                             help="JSONL rows: text or image (path) + label human|ai")],
    detector: Annotated[str | None, typer.Option(help="Declared detector to calibrate")] = None,
    ensemble: Annotated[str | None, typer.Option(help="Role (text|image) whose stacker to fit")] = None,
    target_fpr: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.01,
) -> None:
    """Fit Platt calibration and thresholds (likely_ai at FPR <= target on human rows); write the manifest."""
    from service.model_admin import AdminError, calibrate_detector, calibrate_ensemble

    if (detector is None) == (ensemble is None):
        console.print("[red]error[/red]: give exactly one of --detector or --ensemble")
        raise typer.Exit(2)
    try:
        result = calibrate_detector(_settings(), detector, input_path, target_fpr) if detector else \
            calibrate_ensemble(_settings(), str(ensemble), input_path, target_fpr)
    except AdminError as exc:
        console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


@models_app.command("eval")
def models_eval(
    name: Annotated[str, typer.Argument(help="A declared detector, or text / face for ours")],
    input_path: Annotated[Path, typer.Option("--input", exists=True, dir_okay=False,
                                             help="JSONL rows: text or image (path) + label human|ai")],
    target_fpr: Annotated[float, typer.Option(min=0.0, max=0.5)] = 0.01,
) -> None:
    """AUROC, TPR at the target FPR, FPR/TPR at the calibrated threshold, ECE and coverage, as JSON."""
    from service.model_admin import AdminError, evaluate_detector

    try:
        result = evaluate_detector(_settings(), name, input_path, target_fpr)
    except AdminError as exc:
        console.print(f"[red]error[/red]: {exc}")
        raise typer.Exit(2) from None
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


@models_app.command("list")
def models_list() -> None:
    """Declared detectors and ensembles: folder present, calibrated, version (loads no model)."""
    from service.model_admin import list_models

    sys.stdout.write(json.dumps(list_models(_settings()), indent=2) + "\n")
