"""The deployment examples parse, and say what the code they start expects."""

from __future__ import annotations

import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from nlp_service.cli import app
from nlp_service.core.config import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "nlp_service" / "deploy"


def test_compose_runs_the_service_and_workers_on_one_postgres() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"postgres", "radnlp", "worker"}
    for name in ("radnlp", "worker"):
        env = services[name]["environment"]
        assert env["RADNLP_DATABASE_URL"].startswith("postgresql+psycopg://")
        assert "@postgres:5432/" in env["RADNLP_DATABASE_URL"]
        # Every RADNLP_ variable is a setting the service reads (a typo would be ignored).
        fields = {f"RADNLP_{name.upper()}" for name in Settings.model_fields}
        assert set(env) <= fields, set(env) - fields
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["worker"]["command"][:2] == ["radnlp", "worker"]
    assert services["worker"]["deploy"]["replicas"] >= 2
    build = services["radnlp"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve().is_file()


@pytest.mark.skipif(shutil.which("docker") is None or subprocess.run(
    ["docker", "compose", "version"], capture_output=True).returncode != 0,
    reason="docker compose is not installed here")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(["docker", "compose", "-f", str(DEPLOY / "compose.yaml"), "config",
                             "--quiet"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_the_rayjob_runs_a_backfill_with_an_actor_per_gpu() -> None:
    job = yaml.safe_load((DEPLOY / "rayjob-backfill.yaml").read_text())
    assert (job["apiVersion"], job["kind"]) == ("ray.io/v1", "RayJob")
    spec = job["spec"]
    argv = shlex.split(spec["entrypoint"])
    assert argv[:2] == ["radnlp", "backfill"]
    gpus = sum(group["replicas"] * int(container["resources"]["limits"]["nvidia.com/gpu"])
               for group in spec["rayClusterSpec"]["workerGroupSpecs"]
               for container in group["template"]["spec"]["containers"])
    assert int(argv[argv.index("--actors") + 1]) == gpus
    # The entrypoint's options are the command's own.
    from typer.main import get_command

    command = get_command(app).commands["backfill"]  # type: ignore[attr-defined]
    known = {opt for param in command.params for opt in param.opts}
    assert {a for a in argv[2:] if a.startswith("--")} <= known
