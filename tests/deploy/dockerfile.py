"""A small Dockerfile parser, and a replayer that runs a stage without a Docker engine.

The replay stands a folder in for the stage's root filesystem: absolute paths the recipe names
(ENV and ARG values written as ``/...``, WORKDIR, COPY destinations) are moved under it, RUN
steps run with ``/bin/sh -c`` in the mapped WORKDIR with the stage's variables, COPY reads the
build context through ``.dockerignore`` or, with ``--from``, another replayed stage's folder.
It covers the instructions and forms this repository's Dockerfile uses and refuses the rest
(ADD, SHELL, RUN flags, COPY wildcards...) rather than replay them wrongly.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Dockerfile",
    "Ignore",
    "Instruction",
    "Replay",
    "Stage",
    "Step",
    "command",
    "expand",
    "pairs",
    "parse",
    "replay",
]

RUN_TIMEOUT_S = 600
# Instructions that only describe the image: nothing to do on the filesystem.
METADATA = {"LABEL", "EXPOSE", "USER", "HEALTHCHECK", "ENTRYPOINT", "CMD", "STOPSIGNAL"}


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: ``RUN``, ``COPY``..."""
    flags: dict[str, str]
    """Leading ``--name=value`` options, e.g. ``{"from": "builder"}``."""
    value: str
    """The rest of the logical line, continuations joined."""
    line: int


@dataclass
class Stage:
    base: str
    """The FROM image as written, variables unexpanded."""
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


@dataclass
class Dockerfile:
    args: dict[str, str]
    """ARGs declared before the first FROM, with their defaults."""
    stages: list[Stage]

    def stage(self, name: str) -> Stage:
        (found,) = (s for s in self.stages if s.name == name)
        return found

    def base(self, stage: Stage) -> str:
        return expand(stage.base, self.args)


def _logical_lines(text: str) -> list[tuple[int, str]]:
    """Lines with their continuations joined; comment and blank lines dropped, as Docker does
    (also inside a continuation)."""
    out: list[tuple[int, str]] = []
    parts: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if not parts:
            start = number
        line = raw.rstrip()
        if line.endswith("\\"):
            parts.append(line[:-1].strip())
            continue
        parts.append(line.strip())
        out.append((start, " ".join(p for p in parts if p)))
        parts = []
    if parts:
        raise ValueError(f"line {start}: the last instruction ends in a continuation")
    return out


def _instruction(number: int, line: str) -> Instruction:
    keyword, _, rest = line.partition(" ")
    flags: dict[str, str] = {}
    rest = rest.strip()
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        flags[name] = value
        rest = rest.strip()
    return Instruction(keyword.upper(), flags, rest, number)


def parse(text: str) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for number, line in _logical_lines(text):
        instruction = _instruction(number, line)
        if instruction.keyword == "FROM":
            words = instruction.value.split()
            if len(words) not in (1, 3) or (len(words) == 3 and words[1].upper() != "AS"):
                raise ValueError(f"line {number}: FROM image [AS name], got {line!r}")
            stages.append(Stage(words[0], words[2] if len(words) == 3 else None))
        elif not stages:
            if instruction.keyword != "ARG":
                raise ValueError(f"line {number}: only ARG may come before FROM")
            name, _, default = instruction.value.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append(instruction)
    return Dockerfile(args, stages)


def pairs(value: str) -> list[tuple[str, str]]:
    """``K=V K2="V 2"`` (or the old ``K V``) of an ENV or LABEL, quotes removed, unexpanded."""
    words = shlex.split(value)
    if "=" not in words[0]:
        key, _, rest = value.partition(" ")
        return [(key, rest.strip())]
    return [(key, val) for key, _, val in (word.partition("=") for word in words)]


_VARIABLE = re.compile(r"\\\$|\$\{(\w+)(?::([-+])([^}]*))?\}|\$(\w+)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Docker's substitution: ``$V``, ``${V}``, ``${V:-default}``, ``${V:+set}``, ``\\$``."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "\\$":
            return "$"
        name = match[1] or match[4]
        value = env.get(name, "")
        if match[2] == "-":
            return value or match[3]
        if match[2] == "+":
            return match[3] if value else ""
        return value

    return _VARIABLE.sub(one, text)


def command(value: str) -> list[str]:
    """The argv of an exec form (a JSON array) or of a shell form (``/bin/sh -c``)."""
    if value.startswith("["):
        argv = json.loads(value)
        assert isinstance(argv, list), value
        return [str(word) for word in argv]
    return ["/bin/sh", "-c", value]


class Ignore:
    """``.dockerignore``: patterns from the context root with ``*``, ``?``, ``**`` and ``!``
    exceptions, the last matching line winning; a matching folder takes its contents along."""

    def __init__(self, text: str) -> None:
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            keep = line.startswith("!")
            pattern = line.removeprefix("!").strip().strip("/")
            if "[" in pattern or "\\" in pattern:
                raise ValueError(f".dockerignore: {line!r}: classes and escapes not supported")
            self.rules.append((keep, re.compile(self._regex(pattern))))

    @staticmethod
    def _regex(pattern: str) -> str:
        out = ""
        for part in re.split(r"(\*\*/|/\*\*|\*\*|\*|\?)", pattern):
            out += {
                "**/": "(?:.*/)?",
                "/**": "(?:/.*)?",
                "**": ".*",
                "*": "[^/]*",
                "?": "[^/]",
            }.get(part, re.escape(part))
        return out

    def __call__(self, relative: str) -> bool:
        """Whether the context path ``relative`` (``a/b/c``) stays out of the build."""
        parts = relative.strip("/").split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        ignored = False
        for keep, regex in self.rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                ignored = not keep
        return ignored


@dataclass(frozen=True)
class Step:
    instruction: Instruction
    argv: list[str]
    returncode: int
    output: str


@dataclass
class Replay:
    root: Path
    """The folder standing in for the stage's ``/``."""
    env: dict[str, str]
    """The environment RUN steps get: the stage's ENV and ARGs, paths mapped, over the base."""
    workdir: Path
    image_env: dict[str, str] = field(default_factory=dict)
    """The stage's ENV and ARGs as the image has them, for paths of COPY and WORKDIR."""
    steps: list[Step] = field(default_factory=list)
    skipped: list[Instruction] = field(default_factory=list)

    def path(self, path: str) -> Path:
        """Where the replay keeps the stage's ``path`` (absolute, or relative to WORKDIR)."""
        if path.startswith("/"):
            return self.root / path.lstrip("/")
        return self.workdir / path

    def move(self, to: Path) -> None:
        """Take the stage's folder to ``to``, as if its filesystem were another one now."""
        self.root.rename(to)
        self.workdir = to / self.workdir.relative_to(self.root)
        self.env = {key: value.replace(str(self.root), str(to)) for key, value in self.env.items()}
        self.root = to


def _copy(source: Path, target: Path, context: Path | None, ignore: Ignore) -> None:
    """Copy a file or a folder's contents; under ``context``, without what ``ignore`` names."""

    def skipped(folder: str, names: list[str]) -> set[str]:
        if context is None:
            return set()
        return {n for n in names if ignore(str(Path(folder, n).relative_to(context)))}

    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True, ignore=skipped)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target, follow_symlinks=False)


def _replay_copy(
    state: Replay,
    instruction: Instruction,
    context: Path,
    ignore: Ignore,
    stages: Mapping[str, Replay],
) -> None:
    if set(instruction.flags) - {"from", "chown", "chmod"}:
        raise NotImplementedError(f"line {instruction.line}: COPY {instruction.flags}")
    # --chown and --chmod are the image's business: the replay runs as whoever runs it.
    words = shlex.split(instruction.value)
    *sources, destination = (expand(word, state.image_env) for word in words)
    if any(ch in word for word in sources for ch in "*?["):
        raise NotImplementedError(f"line {instruction.line}: COPY wildcards")
    target = state.path(destination)
    into_folder = destination.endswith("/") or len(sources) > 1
    origin = instruction.flags.get("from")
    for word in sources:
        if origin is not None:
            source, base = stages[origin].path(word), None
        else:
            relative = word.strip("/").removeprefix("./") or "."
            if relative != "." and ignore(relative):
                raise FileNotFoundError(f"line {instruction.line}: {word} is in .dockerignore")
            source, base = context / relative, context
        if not source.exists():
            raise FileNotFoundError(f"line {instruction.line}: COPY source {word} not found")
        place = target / source.name if into_folder and not source.is_dir() else target
        _copy(source, place, base, ignore)


def replay(
    dockerfile: Dockerfile,
    stage: Stage,
    *,
    root: Path,
    context: Path,
    base_env: Mapping[str, str],
    stages: Mapping[str, Replay] | None = None,
    run: bool = True,
) -> Replay:
    """Replay ``stage`` in ``root``; stop at the first RUN that fails. With ``run=False`` the
    RUN steps are recorded in ``skipped`` instead (for a stage whose RUNs need root)."""
    root.mkdir(parents=True, exist_ok=True)
    state = Replay(root, dict(base_env), root)
    args: dict[str, str] = {}
    image_args: dict[str, str] = {}
    ignore_file = context / ".dockerignore"
    ignore = Ignore(ignore_file.read_text() if ignore_file.exists() else "")

    def mapped(raw: str, value: str) -> str:
        # A literal absolute path of the recipe is moved under the root; $PATH-like values
        # built from mapped variables are already there.
        return str(state.path(value)) if raw.startswith("/") else value

    def assign(name: str, raw: str, host: dict[str, str], image: dict[str, str]) -> None:
        # Both see the variables as they were before this instruction, as in Docker.
        host[name] = mapped(raw, expand(raw, state.env | args))
        image[name] = expand(raw, state.image_env | image_args)

    for instruction in stage.instructions:
        keyword, value = instruction.keyword, instruction.value
        if keyword == "ENV":
            for key, raw in pairs(value):
                assign(key, raw, state.env, state.image_env)
        elif keyword == "ARG":
            name, has_default, default = value.partition("=")
            if has_default or name in dockerfile.args:
                assign(name, default if has_default else dockerfile.args[name], args, image_args)
        elif keyword == "WORKDIR":
            state.workdir = state.path(expand(value, state.image_env | image_args))
            state.workdir.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            _replay_copy(state, instruction, context, ignore, stages or {})
        elif keyword == "RUN":
            if instruction.flags:
                raise NotImplementedError(f"line {instruction.line}: RUN {instruction.flags}")
            if not run:
                state.skipped.append(instruction)
                continue
            argv = command(value)
            done = subprocess.run(
                argv,
                cwd=state.workdir,
                env=state.env | args,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
                timeout=RUN_TIMEOUT_S,
                check=False,
            )
            state.steps.append(Step(instruction, argv, done.returncode, done.stdout))
            if done.returncode != 0:
                break
        elif keyword not in METADATA:
            raise NotImplementedError(f"line {instruction.line}: {keyword} is not replayed")
    return state
