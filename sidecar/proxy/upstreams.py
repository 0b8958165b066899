"""Where the proxy sends each model: a YAML file of upstreams (``--proxy-upstreams``).

    upstreams:
      openai:
        base_url: https://api.openai.com/v1
        api_key_env: OPENAI_API_KEY     # the upstream's key, from this environment variable
        models: [gpt-4o, gpt-4o-mini]

One upstream may serve many models; a model is served by one upstream. The key is read once,
at start, and never logged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import msgspec
import yaml

from sidecar.settings import SettingsError

__all__ = ["Upstream", "load_upstreams"]


class _UpstreamSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    base_url: str
    models: list[str]
    api_key_env: str | None = None


class _FileSpec(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    upstreams: dict[str, _UpstreamSpec]


class Upstream(msgspec.Struct, frozen=True):
    name: str
    base_url: str
    """Without a trailing slash: ``/chat/completions`` is appended."""
    api_key: str | None


def load_upstreams(path: str, environ: Mapping[str, str] = os.environ) -> dict[str, Upstream]:
    """Model -> its upstream; SettingsError naming the file and the field to fix."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        spec = msgspec.convert(raw, _FileSpec)
    except OSError as error:
        raise SettingsError(f"{path}: cannot read the upstreams file ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise SettingsError(f"{path}: not valid YAML ({error})") from None
    except msgspec.ValidationError as error:
        raise SettingsError(f"{path}: {error}; see docs/design.md, Proxy") from None
    models: dict[str, Upstream] = {}
    for name, upstream in spec.upstreams.items():
        where = f"{path}: upstreams.{name}"
        if not upstream.base_url.startswith(("http://", "https://")):
            raise SettingsError(f"{where}.base_url: use an http:// or https:// URL")
        key = None
        if upstream.api_key_env is not None:
            key = environ.get(upstream.api_key_env)
            if not key:
                raise SettingsError(
                    f"{where}.api_key_env: the variable {upstream.api_key_env} is not set"
                )
        for model in upstream.models:
            if model in models:
                raise SettingsError(
                    f"{where}.models: {model!r} is served by {models[model].name} already"
                )
            models[model] = Upstream(name, upstream.base_url.rstrip("/"), key)
    return models
