"""Read a catalog file: YAML with duplicate keys refused, strict schema, exact compile."""

from __future__ import annotations

import hashlib
from pathlib import Path

import msgspec
import yaml

from sidecar.catalog.compile import compile_catalog
from sidecar.catalog.model import Catalog
from sidecar.catalog.spec import CatalogSpec
from sidecar.errors import CatalogError
from sidecar.locate import locate

__all__ = ["load_catalog", "parse_catalog"]


def _duplicates(node: yaml.Node, path: str = "") -> tuple[str, int] | None:
    """The dotted path and line of the first key written twice in one mapping, if any.

    PyYAML silently keeps the last of two equal keys; a catalog must not.
    """
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            where = f"{path}.{key}" if path else key
            if key in seen:
                return where, key_node.start_mark.line + 1
            seen.add(key)
            found = _duplicates(value_node, where)
            if found:
                return found
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            found = _duplicates(item, f"{path}[{index}]")
            if found:
                return found
    return None


def load_catalog(path: str | Path) -> Catalog:
    """Load and validate a catalog file; raise CatalogError naming file, path and fix."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise CatalogError(
            file, "(file)", f"cannot read: {error.strerror}", "check the path"
        ) from None
    return parse_catalog(text, file=file)


def parse_catalog(text: str, *, file: str = "<catalog>") -> Catalog:
    """Parse catalog YAML text; ``file`` names it in errors."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        raise CatalogError(file, where, str(error.problem), "fix the YAML syntax") from None
    except yaml.YAMLError as error:  # e.g. a control character, which YAML does not allow
        raise CatalogError(
            file, "(file)", str(error).splitlines()[0], "save it as plain UTF-8 text"
        ) from None
    duplicate = root is not None and _duplicates(root)
    if duplicate:
        path, line = duplicate
        raise CatalogError(file, path, f"declared twice (line {line})", "declare each id once")
    if not isinstance(data, dict):
        raise CatalogError(file, "(top)", "not a mapping", "start with credit_types:, models: ...")
    try:
        spec = msgspec.convert(data, CatalogSpec)
    except msgspec.ValidationError as error:
        path, problem = locate(data, CatalogSpec)
        raise CatalogError(file, path or "(top)", problem or str(error), _fix(problem)) from None
    digest = hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()
    return compile_catalog(spec, file=file, version=digest[:12])


def _fix(problem: str) -> str:
    if "unknown field" in problem:
        return "remove it or correct its spelling"
    if "missing required field" in problem:
        return "add the field"
    return "use the type the schema names"
