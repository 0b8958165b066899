"""The worst case of a call, from the request alone (no tokenizer download), and the units of
its actual usage. Pure.

**Input.** Byte-level BPE tokenizers (GPT, Llama 3, Claude's) map every token to at least one
byte of UTF-8 text, so a text never has more tokens than UTF-8 bytes. The bound is the UTF-8
bytes of every string a message carries (content, text parts, names, tool-call arguments),
plus the JSON bytes of ``tools``/``functions``/``response_format`` (rendered into the prompt
no longer than their JSON), plus ``PER_MESSAGE`` tokens per message and ``PER_REQUEST`` per
request for the chat format's framing (OpenAI documents 3 and 3). An embeddings input is its
UTF-8 bytes, or the length of a token array. Images, audio and files have no bound without
their own price, and are refused.

**Output.** ``max_completion_tokens`` (or the older ``max_tokens``) times ``n``; without it, the
model's ``max_output_tokens`` from the catalog; without that, the request is refused.
"""

from __future__ import annotations

from typing import Any

import msgspec

from sidecar.errors import InvalidInput

__all__ = [
    "MAX_OUTPUT_TOKENS",
    "PER_MESSAGE",
    "PER_REQUEST",
    "chat_input_bound",
    "embeddings_input_bound",
    "output_bound",
    "usage_units",
]

PER_MESSAGE = 8
PER_REQUEST = 8
MAX_OUTPUT_TOKENS = 1_000_000
"""No model writes more in one call; a larger ``max_tokens`` is a mistake, refused."""
_UNBOUNDED_PARTS = {"image_url", "input_audio", "file", "image", "audio"}
_PROMPT_FIELDS = ("tools", "functions", "response_format")
_encode = msgspec.json.Encoder().encode


def _strings(value: Any, field: str) -> int:
    """UTF-8 bytes of every string in ``value``; refuses parts that have no bound."""
    if isinstance(value, str):
        return len(value.encode())
    if isinstance(value, list):
        return sum(_strings(item, f"{field}[{i}]") for i, item in enumerate(value))
    if isinstance(value, dict):
        kind = value.get("type")
        if kind in _UNBOUNDED_PARTS:
            raise InvalidInput(
                f"{field}.type",
                f"{kind} inputs have no price in the catalog, so no worst case; send text only",
            )
        return sum(_strings(v, f"{field}.{k}") for k, v in value.items() if k != "type")
    return 0


def chat_input_bound(body: dict[str, Any]) -> int:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidInput("messages", "is required: a non-empty array of messages")
    total = PER_REQUEST
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InvalidInput(f"messages[{i}]", "must be an object with a role")
        total += PER_MESSAGE + _strings(
            {k: v for k, v in message.items() if k != "role"}, f"messages[{i}]"
        )
    for field in _PROMPT_FIELDS:
        if body.get(field) is not None:
            total += len(_encode(body[field]))
    return total


def embeddings_input_bound(body: dict[str, Any]) -> int:
    value = body.get("input")
    if not isinstance(value, str | list) or not value:
        raise InvalidInput("input", "is required: a string, an array of strings or of tokens")
    items = value if isinstance(value, list) else [value]
    if all(isinstance(i, int) and not isinstance(i, bool) for i in items):  # one token array
        return len(items)
    total = 0
    for i, item in enumerate(items):
        if isinstance(item, str):
            total += len(item.encode())
        elif isinstance(item, list) and all(isinstance(t, int) for t in item):
            total += len(item)
        else:
            raise InvalidInput(f"input[{i}]", "must be a string or an array of token ids")
    return total


def output_bound(body: dict[str, Any], model_max: int | None, model: str) -> int:
    field = "max_completion_tokens" if "max_completion_tokens" in body else "max_tokens"
    limit: Any = body.get(field)
    n: Any = body.get("n", 1)
    if n is None:
        n = 1
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
        raise InvalidInput("n", "must be an integer from 1 to 128")
    count: int = n
    if limit is None:
        if model_max is None:
            raise InvalidInput(
                "max_completion_tokens",
                f"is required: the catalog gives model {model!r} no max_output_tokens to "
                "bound the answer by",
            )
        return model_max * count
    ceiling = model_max if model_max is not None else MAX_OUTPUT_TOKENS
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= ceiling:
        raise InvalidInput(field, f"must be an integer from 1 to {ceiling}")
    tokens: int = limit
    return tokens * count


def usage_units(usage: Any) -> dict[str, int] | None:
    """Units by kind from an OpenAI ``usage`` object; None when it is not one."""
    if not isinstance(usage, dict):
        return None
    prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens", 0)
    if not isinstance(prompt, int) or not isinstance(completion, int) or prompt < 0:
        return None
    details = usage.get("prompt_tokens_details") or {}
    cached = details.get("cached_tokens") or 0 if isinstance(details, dict) else 0
    cached = min(cached, prompt) if isinstance(cached, int) and cached > 0 else 0
    units = {"input_tokens": prompt - cached, "output_tokens": max(completion, 0)}
    if cached:
        units["cached_input_tokens"] = cached
    return units
