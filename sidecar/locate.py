"""Name the exact field a msgspec type rejects, with real mapping keys.

msgspec reports ids inside mappings as ``[...]`` (``$.plans[...].features[...]``); errors
here must name them (``plans.pro.features.chat``), so on the error path only, the value is
walked again against its type.
"""

from __future__ import annotations

from types import UnionType
from typing import Any, Union, get_args, get_origin, get_type_hints

import msgspec

from sidecar.text import NUL_PROBLEM

__all__ = ["locate"]


def _join(path: str, key: object) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def locate(value: Any, kind: Any, path: str = "") -> tuple[str, str]:
    """Find the dotted path (with real ids) of the first value that ``kind`` rejects.

    msgspec reports ids inside mappings as ``[...]``; this walk names them.
    """
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError as error:
        message = str(error).split(" - at ", 1)[0]
        if "matching regex" in message and "x00" in message:  # text.py's Text
            message = NUL_PROBLEM
    else:
        return "", ""
    origin = get_origin(kind)
    if origin in (Union, UnionType):
        options = [option for option in get_args(kind) if option is not type(None)]
        for option in options:
            found = locate(value, option, path)
            if found[0] != path:
                return found
        return path, message
    if isinstance(kind, type) and issubclass(kind, msgspec.Struct) and isinstance(value, dict):
        hints = get_type_hints(kind, include_extras=True)  # keeps Text's constraint
        for key, item in value.items():
            if key not in hints:
                return _join(path, key), f"unknown field {key!r}"
            found = locate(item, hints[key], _join(path, key))
            if found[0]:
                return found
        missing = message.partition("missing required field `")[2].rstrip("`")
        return (_join(path, missing), "missing required field") if missing else (path, message)
    if origin is dict and isinstance(value, dict):
        item_kind = get_args(kind)[1]
        for key, item in value.items():
            found = locate(item, item_kind, _join(path, key))
            if found[0]:
                return found
    if origin is list and isinstance(value, list):
        item_kind = get_args(kind)[0]
        for index, item in enumerate(value):
            found = locate(item, item_kind, _join(path, index))
            if found[0]:
                return found
    return path, message
