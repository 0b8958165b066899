"""Structured logs of ``creditgate serve`` as a process: one JSON object per stderr line, for
start (with its config and catalog version) and for a rejected catalog change; no token or
password anywhere; the level and format come from the environment."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from sidecar.embedded import EmbeddedRedis
from sidecar.logs import redacted, safe_url
from tests.conftest import EXAMPLE, ROOT

pytestmark = pytest.mark.redis

TOKEN = "super-secret-admin-token-0123456789"
COMMAND = [sys.executable, "-m", "sidecar.cli", "serve"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _environ(redis: str, catalog: Path, **extra: str) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CREDITGATE_")}
    return environ | {
        "CREDITGATE_REDIS": redis, "CREDITGATE_CATALOG": str(catalog),
        "CREDITGATE_ADMIN_TOKEN": TOKEN, "CREDITGATE_CATALOG_RELOAD_MS": "50",
        "CREDITGATE_PORT": str(_free_port()), "CREDITGATE_ADMIN_PORT": "0",
        "CREDITGATE_GRPC_PORT": "0", "CREDITGATE_GRPC_ADMIN_PORT": "0", **extra,
    }  # fmt: skip


def _run(environ: dict[str, str], catalog: Path) -> tuple[int, list[str]]:
    """Start serve, wait until it answers, break the catalog, give the watcher a second, stop
    it; its exit code and stderr lines."""
    process = subprocess.Popen(COMMAND, env=environ, cwd=ROOT, stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{environ['CREDITGATE_PORT']}/healthz"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and process.poll() is None:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.05)
        catalog.write_text("plans: [broken")
        time.sleep(1.0)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=15)
    return process.returncode, stderr.decode().splitlines()


def _json(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(EXAMPLE.read_text())
    return path


def test_every_line_is_json_and_names_what_happened(
    redis_server: EmbeddedRedis, catalog: Path
) -> None:
    code, lines = _run(_environ(redis_server.url, catalog), catalog)
    assert code == 0
    entries = _json(lines)  # raises on any line that is not one JSON object
    started = next(e for e in entries if e["message"] == "sidecar started")
    assert started["level"] == "info"
    assert started["catalog_version"]
    assert started["config"]["admin_token"] == "***"
    assert started["config"]["catalog"] == str(catalog)
    rejected = [e for e in entries if e["message"].startswith("catalog change rejected")]
    assert len(rejected) == 1
    assert rejected[0]["level"] == "error"
    assert rejected[0]["catalog_version"] == started["catalog_version"]
    assert rejected[0]["file"] == str(catalog)
    assert TOKEN not in "".join(lines)


def test_the_level_comes_from_the_environment(redis_server: EmbeddedRedis, catalog: Path) -> None:
    environ = _environ(redis_server.url, catalog, CREDITGATE_LOG_LEVEL="error")
    code, lines = _run(environ, catalog)
    assert code == 0
    levels = {entry["level"] for entry in _json(lines)}
    assert levels == {"error"}  # the rejection; no info lines


def test_a_bad_level_is_refused_naming_the_variable(catalog: Path) -> None:
    environ = _environ("redis://127.0.0.1:1/0", catalog, CREDITGATE_LOG_LEVEL="loud")
    done = subprocess.run(
        COMMAND, check=False, env=environ, cwd=ROOT, capture_output=True, timeout=30
    )
    assert done.returncode == 2
    assert "CREDITGATE_LOG_LEVEL" in done.stderr.decode()
    assert "DEBUG, INFO, WARNING, ERROR" in done.stderr.decode()


@pytest.mark.parametrize(
    ("url", "logged"),
    [
        ("redis://:hunter2@cache:6380/0", "redis://***@cache:6380/0"),
        ("redis://app:hunter2@cache:6380/0", "redis://app:***@cache:6380/0"),
        ("redis://cache:6380/0?password=hunter2", "redis://cache:6380/0?password=***"),
        (
            "postgresql://u:hunter2@db/ledger?sslmode=require&sslpassword=hunter2",
            "postgresql://u:***@db/ledger?sslmode=require&sslpassword=***",
        ),
        (
            "unix:///run/redis.sock?db=0&password=hunter2",
            "unix:///run/redis.sock?db=0&password=***",
        ),
        ("redis://cache:6380/0", "redis://cache:6380/0"),
    ],
)
def test_urls_are_logged_without_their_passwords(url: str, logged: str) -> None:
    assert safe_url(url) == logged
    config = redacted({"redis": url, "database_url": url, "admin_token": "t" * 20, "port": 1})
    assert config == {"redis": logged, "database_url": logged, "admin_token": "***", "port": 1}
