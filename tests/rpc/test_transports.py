"""Either transport can be switched off: ``http=False`` serves gRPC only, ``grpc=False`` HTTP only,
both off is a settings error naming --http and --grpc; in process and as ``creditgate serve``."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from sidecar.client import GrpcClient, HttpClient
from sidecar.embedded import EmbeddedRedis
from sidecar.settings import Settings, SettingsError, add_flags, settings_from
from sidecar.wire import ReserveRequest
from tests.conftest import EXAMPLE, ROOT
from tests.rpc.conftest import ADMIN_TOKEN, StartSidecar, credits, plan_grant, seed

pytestmark = pytest.mark.redis

COMMAND = [sys.executable, "-m", "sidecar.cli"]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


async def _reserve_and_balance(client: GrpcClient | HttpClient) -> None:
    await seed(client, grants={"paid": "5"})
    ok = await client.reserve(
        ReserveRequest(customer="acme", feature="chat", amount="0.5", idempotency_key="t-1")
    )
    assert (ok.allowed, ok.held) == (True, credits("0.5"))
    state = await client.balance("acme")
    assert state.balance == credits(plan_grant("pro") + 5 - Decimal("0.5"))


async def test_http_off_serves_grpc_only(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(http=False)
    assert (sidecar.port, sidecar.admin_port) == (None, None)
    assert sidecar.grpc_port is not None
    assert sidecar.grpc_admin_port is not None
    async with GrpcClient(
        f"127.0.0.1:{sidecar.grpc_port}",
        admin_target=f"127.0.0.1:{sidecar.grpc_admin_port}",
        admin_token=ADMIN_TOKEN,
    ) as client:
        await _reserve_and_balance(client)


async def test_grpc_off_serves_http_only(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(grpc=False)
    assert (sidecar.grpc_port, sidecar.grpc_admin_port) == (None, None)
    assert sidecar.port is not None
    assert sidecar.admin_port is not None
    async with HttpClient(
        f"http://127.0.0.1:{sidecar.port}",
        admin_url=f"http://127.0.0.1:{sidecar.admin_port}",
        admin_token=ADMIN_TOKEN,
    ) as client:
        await _reserve_and_balance(client)


async def test_without_a_token_no_admin_listener_runs(start_sidecar: StartSidecar) -> None:
    sidecar = await start_sidecar(admin_token=None)
    assert sidecar.port is not None
    assert sidecar.grpc_port is not None
    assert (sidecar.admin_port, sidecar.grpc_admin_port) == (None, None)


def _namespace(**flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_flags(parser)
    args = []
    for name, value in flags.items():
        args += ["--" + name.replace("_", "-"), value]
    return parser.parse_args(args)


BASE = {"catalog": str(EXAMPLE), "redis": "redis://127.0.0.1:1/0"}


@pytest.mark.parametrize(
    ("flags", "environ"),
    [
        pytest.param({"http": "false", "grpc": "false"}, {}, id="flags"),
        pytest.param({}, {"CREDITGATE_HTTP": "false", "CREDITGATE_GRPC": "0"}, id="env"),
        pytest.param({"grpc": "0"}, {"CREDITGATE_HTTP": "False"}, id="mixed"),
    ],
)
def test_both_transports_off_is_a_settings_error(
    flags: dict[str, str], environ: dict[str, str]
) -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from(_namespace(**BASE, **flags), environ)
    message = str(caught.value)
    assert "--http" in message
    assert "--grpc" in message


@pytest.mark.parametrize(
    ("flags", "http", "grpc_on"),
    [
        pytest.param({"http": "false"}, False, True, id="http-false"),
        pytest.param({"grpc": "false"}, True, False, id="grpc-false"),
        pytest.param({"http": "true", "grpc": "true"}, True, True, id="both"),
        pytest.param({}, True, True, id="default"),
    ],
)
def test_transport_flags_parse(flags: dict[str, str], http: bool, grpc_on: bool) -> None:
    settings = settings_from(_namespace(**BASE, **flags), {})
    assert (settings.http, settings.grpc) == (http, grpc_on)
    defaults = Settings(catalog=BASE["catalog"], redis=BASE["redis"])
    assert defaults.http is defaults.grpc is True


def test_a_transport_flag_that_is_not_a_boolean_names_itself() -> None:
    with pytest.raises(SettingsError) as caught:
        settings_from(_namespace(**BASE, grpc="maybe"), {})
    message = str(caught.value)
    assert "--grpc" in message
    assert "CREDITGATE_GRPC" in message
    assert "true or false" in message


# ------------------------------------------------------------------ as `creditgate serve`

Ports = tuple[int | None, int | None, int | None, int | None]


def _ready_ports(line: str) -> Ports | None:
    """The four ports of the JSON "sidecar started" log line, or None for any other line."""
    entry = json.loads(line)
    if entry["message"] != "sidecar started":
        return None
    listening = entry["listening"]
    return listening["http"], listening["admin"], listening["grpc"], listening["grpc_admin"]


def _environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CREDITGATE_")}


@contextlib.asynccontextmanager
async def serve(redis: str, *flags: str) -> AsyncIterator[Ports]:
    """``creditgate serve`` on free ports; yields the four ports its ready line names."""
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "serve", "--catalog", str(EXAMPLE), "--redis", redis,
        "--port", "0", "--admin-port", "0", "--grpc-port", "0", "--grpc-admin-port", "0",
        "--admin-token", ADMIN_TOKEN, *flags,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env=_environ(),
    )  # fmt: skip
    assert process.stderr is not None
    lines: list[str] = []
    drain: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(START_TIMEOUT_S):
            while True:
                raw = await process.stderr.readline()
                assert raw, "serve exited early:\n" + "".join(lines)
                lines.append(raw.decode())
                found = _ready_ports(lines[-1])
                if found:
                    break

        async def keep_draining() -> None:
            assert process.stderr is not None
            while await process.stderr.readline():
                pass

        drain = asyncio.create_task(keep_draining())
        yield found
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(STOP_TIMEOUT_S):
            assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
        if drain is not None:
            await drain


async def test_serve_with_http_false_serves_only_grpc(redis_server: EmbeddedRedis) -> None:
    async with serve(redis_server.url, "--http", "false") as (http, admin, port, grpc_admin):
        assert (http, admin) == (None, None)
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="creditgate.v1.CreditgateService"),
                timeout=5,
            )
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
        assert grpc_admin is not None
        assert not _refuses(grpc_admin)


async def test_serve_with_grpc_false_serves_only_http(redis_server: EmbeddedRedis) -> None:
    async with serve(redis_server.url, "--grpc", "false") as (http, admin, port, grpc_admin):
        assert (port, grpc_admin) == (None, None)
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{http}/readyz") as response,
        ):
            assert response.status == 200
            assert (await response.json())["status"] == "ready"
        assert admin is not None
        assert not _refuses(admin)


async def test_serve_with_both_false_exits_2_naming_both_flags(
    redis_server: EmbeddedRedis,
) -> None:
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "serve", "--catalog", str(EXAMPLE), "--redis", redis_server.url,
        "--http", "false", "--grpc", "false",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env=_environ(),
    )  # fmt: skip
    async with asyncio.timeout(START_TIMEOUT_S):
        _, stderr = await process.communicate()
    assert process.returncode == 2
    text = stderr.decode()
    assert "--http" in text
    assert "--grpc" in text
    assert "Traceback" not in text
