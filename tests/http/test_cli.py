"""``creditgate up`` and ``creditgate serve`` as a user runs them: real subprocesses."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp
import pytest

from tests.conftest import ROOT
from tests.http.conftest import CATALOG, cost, credits

pytestmark = pytest.mark.redis

COMMAND = [sys.executable, "-m", "sidecar.cli"]
START_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 15.0


def _environ(**extra: str) -> dict[str, str]:
    """This environment without any CREDITGATE_* setting, plus ``extra``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CREDITGATE_")}
    return clean | extra


@dataclass
class Curl:
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    data: str | None = None


def parse_curl(line: str) -> Curl:
    """The parts of a ``curl -s [-X M] URL [-H 'K: V'] [-d 'BODY']`` line that matter."""
    words = shlex.split(line)
    assert words[0] == "curl", line
    curl = Curl(method="", url="")
    rest = iter(words[1:])
    for word in rest:
        if word == "-s":
            continue
        if word == "-X":
            curl.method = next(rest)
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            curl.headers[name.strip()] = value.strip()
        elif word == "-d":
            curl.data = next(rest)
        else:
            assert not word.startswith("-"), f"unexpected option {word} in {line}"
            assert not curl.url, line
            curl.url = word
    curl.method = curl.method or ("POST" if curl.data is not None else "GET")
    return curl


async def replay(http: aiohttp.ClientSession, curl: Curl) -> tuple[int, dict[str, object]]:
    """Send what curl would: -d sends the text as is, as a form-encoded body."""
    headers = dict(curl.headers)
    data = None
    if curl.data is not None:
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        data = curl.data.encode()
    async with http.request(curl.method, curl.url, data=data, headers=headers) as response:
        return response.status, await response.json()


def _refuses(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except ConnectionRefusedError:
        return True


async def test_up_prints_a_tour_that_works_and_stops_everything(tmp_path: Path) -> None:
    errors = (tmp_path / "stderr.txt").open("wb")
    process = await asyncio.create_subprocess_exec(
        *COMMAND, "up", "--port", "0", "--admin-port", "0",
        "--grpc-port", "0", "--grpc-admin-port", "0", "--ledger-port", "0",
        "--proxy-port", "0", "--demo-upstream-port", "0",
        stdout=asyncio.subprocess.PIPE, stderr=errors, cwd=ROOT, env=_environ(),
    )  # fmt: skip
    assert process.stdout is not None
    try:
        lines: list[str] = []
        async with asyncio.timeout(START_TIMEOUT_S):
            while not lines or "Ctrl-C stops everything" not in lines[-1]:
                raw = await process.stdout.readline()
                assert raw, f"up exited early: {(tmp_path / 'stderr.txt').read_text()}"
                lines.append(raw.decode().rstrip("\n"))
        banner = "\n".join(lines)
        redis = re.search(
            r"Redis: +redis://127\.0\.0\.1:(\d+)/0 \(embedded, stopped on exit: (\S+)\)", banner
        )
        assert redis, banner
        redis_port, folder = int(redis[1]), Path(redis[2])
        assert folder.is_dir()
        assert folder.name.startswith("creditgate-redis-")
        assert not _refuses(redis_port)

        curls = [parse_curl(line) for line in lines if line.startswith("curl ")]
        by_path = {(c.method, c.url.split("/", 3)[3]): c for c in curls}
        assert (len(curls), len(by_path)) == (7, 6), banner
        reserve, denied = (c for c in curls if c.url.endswith("/v1/reserve"))
        commit = by_path["POST", "v1/commit"]
        balance = by_path["GET", "v1/balance?customer=acme"]
        grant = by_path["POST", "admin/v1/customers/acme/grants"]
        ledger_balance = by_path["GET", "ledger/v1/customers/acme/balance"]
        (invoice,) = (c for c in curls if "/ledger/v1/customers/acme/invoice" in c.url)

        async with aiohttp.ClientSession() as http:
            status, held = await replay(http, reserve)
            assert status == 200, held
            worst = {"input_tokens": 1200, "output_tokens": 800}
            assert (held["allowed"], held["held"]) == (True, credits(cost("gpt-4o-mini", worst)))
            rid = held["reservation_id"]
            assert isinstance(rid, str)
            assert commit.data is not None
            assert "PASTE_RESERVATION_ID" in commit.data
            commit.data = commit.data.replace("PASTE_RESERVATION_ID", rid)
            status, committed = await replay(http, commit)
            assert status == 200, committed
            actual = cost("gpt-4o-mini", {"input_tokens": 1180, "output_tokens": 312})
            assert committed["result"] == "committed"
            assert committed["cost"] == credits(actual)

            status, no = await replay(http, denied)
            assert (status, no["allowed"], no["reason"]) == (200, False, "model_not_allowed")

            # acme: pro (20 included credits) and 100 paid, as the banner says.
            included = Decimal(CATALOG["plans"]["pro"]["grants"][0]["amount"])
            status, state = await replay(http, balance)
            assert status == 200, state
            assert state["balance"] == credits(included + 100 - actual)

            assert grant.headers["Authorization"].startswith("Bearer ")
            status, granted = await replay(http, grant)
            assert status == 200, granted
            assert (granted["result"], granted["amount"]) == ("granted", credits(5))
            status, state = await replay(http, balance)
            assert state["balance"] == credits(included + 105 - actual)

            # The ledger that `up` runs beside the sidecar records the commit within seconds.
            async with asyncio.timeout(10):
                while True:
                    status, recorded = await replay(http, ledger_balance)
                    assert status == 200, recorded
                    used = {t["credit_type"]: t["used"] for t in recorded["credit_types"]}
                    if used.get("included") == credits(actual):
                        break
                    await asyncio.sleep(0.1)
            status, bill = await replay(http, invoice)
            assert status == 200, bill

            # The console line opens acme's page with acme's own admin token.
            console = re.search(r"Console: (\S+/console/login\?token=at_\S+)", banner)
            assert console, banner
            async with (
                # A cookie jar of its own, that keeps cookies of an IP address as browsers do.
                aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as browser,
                browser.get(console[1]) as response,
            ):
                page = await response.text()
                assert response.status == 200, page
            assert '<span id="customer">acme</span>' in page
            assert "globex" not in page

            # The proxy line, as printed: the OpenAI SDK against the demo provider, metered.
            start = next(i for i, line in enumerate(lines) if line.startswith("python -c "))
            script = "".join(line.rstrip("\\") for line in lines[start : start + 3])
            code = shlex.split(script)[2]
            proxied = await asyncio.create_subprocess_exec(
                sys.executable,
                "-c",
                code,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                cwd=ROOT,
            )
            printed, failed = await asyncio.wait_for(proxied.communicate(), START_TIMEOUT_S)
            assert proxied.returncode == 0, (code, failed.decode()[-2000:])
            assert "completion_tokens=20" in printed.decode()
            status, state = await replay(http, balance)
            assert Decimal(state["balance"]) < included + 105 - actual  # the call was charged

            # The token is required: the same line without it is refused.
            grant.headers.pop("Authorization")
            status, refused = await replay(http, grant)
            assert status == 401, refused

        process.send_signal(signal.SIGINT)
        async with asyncio.timeout(STOP_TIMEOUT_S):
            code = await process.wait()
        assert code == 0, (tmp_path / "stderr.txt").read_text()
        logged = (tmp_path / "stderr.txt").read_text()
        assert "Creditgate stopped." in logged
        assert " INFO sidecar.server: sidecar started" in logged  # text for a terminal, not JSON
        assert not folder.exists()
        assert _refuses(redis_port)
    finally:
        if process.returncode is None:  # a failure above: stop it the way a user would
            process.send_signal(signal.SIGINT)
            try:
                async with asyncio.timeout(STOP_TIMEOUT_S):
                    await process.wait()
            except TimeoutError:
                process.kill()  # last resort; its valkey-server may then outlive it
                await process.wait()
        errors.close()


def _run(*args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=_environ(**environ),
        timeout=60,
        check=False,
    )


def test_serve_without_a_catalog_exits_2_naming_the_flag_and_variable() -> None:
    done = _run("serve", "--redis", "redis://127.0.0.1:1/0")
    assert done.returncode == 2, done
    assert "--catalog" in done.stderr
    assert "CREDITGATE_CATALOG" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_a_bad_port_variable_exits_2_naming_the_flag() -> None:
    catalog = str(ROOT / "policies" / "example.yaml")
    done = _run(
        "serve", "--catalog", catalog, "--redis", "redis://127.0.0.1:1/0", CREDITGATE_PORT="abc"
    )
    assert done.returncode == 2, done
    assert "--port" in done.stderr
    assert "CREDITGATE_PORT" in done.stderr
    assert "'abc'" in done.stderr
    assert "Traceback" not in done.stderr


def test_serve_with_a_replica_wait_past_the_deadline_exits_2_saying_why() -> None:
    catalog = str(ROOT / "policies" / "example.yaml")
    done = _run(
        "serve", "--catalog", catalog, "--redis", "redis://127.0.0.1:1/0",
        "--redis-wait-replicas", "1", "--redis-wait-timeout-ms", "300",
    )  # fmt: skip
    assert done.returncode == 2, done
    assert "--redis-wait-timeout-ms" in done.stderr
    assert "below redis_deadline_ms (250)" in done.stderr
    assert "Traceback" not in done.stderr
