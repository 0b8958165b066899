"""Read a catalog file: YAML with duplicate keys refused, strict schema, exact compile."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import msgspec
import yaml

from sidecar.catalog.compile import compile_catalog
from sidecar.catalog.model import Catalog
from sidecar.catalog.spec import CatalogSpec
from sidecar.errors import CatalogError

__all__ = ["load_catalog", "parse_catalog"]


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key written twice in one mapping (PyYAML keeps the last)."""


def _mapping(loader: _StrictLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    loader.flatten_mapping(node)
    out: dict[Any, Any] = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate id {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
    return out


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)


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
        data = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark
        where = f"line {mark.line + 1}" if mark is not None else "(file)"
        problem = str(error.problem)
        fix = "declare each id once" if "duplicate id" in problem else "fix the YAML syntax"
        raise CatalogError(file, where, problem, fix) from None
    if not isinstance(data, dict):
        raise CatalogError(file, "(top)", "not a mapping", "start with credit_types:, models: ...")
    try:
        spec = msgspec.convert(data, CatalogSpec)
    except msgspec.ValidationError as error:
        path, problem = _locate(data, CatalogSpec, "")
        raise CatalogError(file, path or "(top)", problem or str(error), _fix(problem)) from None
    digest = hashlib.sha256(msgspec.json.encode(data, order="sorted")).hexdigest()
    return compile_catalog(spec, file=file, version=digest[:12])


def _fix(problem: str) -> str:
    if "unknown field" in problem:
        return "remove it or correct its spelling"
    if "missing required field" in problem:
        return "add the field"
    return "use the type the schema names"


def _join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _locate(value: Any, kind: Any, path: str) -> tuple[str, str]:
    """Find the dotted path (with real ids) of the first value that ``kind`` rejects.

    msgspec reports ids inside mappings as ``[...]``; this walk names them.
    """
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError as error:
        message = str(error).split(" - at ", 1)[0]
    else:
        return "", ""
    origin = get_origin(kind)
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and isinstance(value, dict):
        hints = get_type_hints(kind)
        for key, item in value.items():
            if key not in hints:
                return _join(path, key), f"unknown field {key!r}"
            found = _locate(item, hints[key], _join(path, key))
            if found[0]:
                return found
        missing = message.partition("missing required field `")[2].rstrip("`")
        return (_join(path, missing), "missing required field") if missing else (path, message)
    if origin is dict and isinstance(value, dict):
        item_kind = get_args(kind)[1]
        for key, item in value.items():
            found = _locate(item, item_kind, _join(path, key))
            if found[0]:
                return found
    if origin is list and isinstance(value, list):
        item_kind = get_args(kind)[0]
        for index, item in enumerate(value):
            found = _locate(item, item_kind, _join(path, index))
            if found[0]:
                return found
    return path, message
