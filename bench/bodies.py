"""Request bodies for each kind of load, built from byte templates (cheap in the generator)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np

from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb

__all__ = ["make_body", "make_message", "zipf_customers"]

MakeBody = Callable[[int, str, dict[str, Any]], bytes]

CHECK = b'{"customer":"acme","feature":"max_context_tokens","user":"u-1"}'
RESERVE = (
    b'{"customer":"%s","team":"eng","user":"u-%d","feature":"chat","model":"gpt-4o-mini",'
    b'"units":{"input_tokens":1200,"output_tokens":800},"idempotency_key":"%s-%d"}'
)
COMMIT = b'{"reservation_id":"%s","units":{"input_tokens":1180,"output_tokens":312}}'
COMMIT_ALL = b'{"reservation_id":"%s","units":{"input_tokens":1200,"output_tokens":800}}'
MANY = b'{"customer":"c%d","feature":"max_context_tokens"}'
_run = np.random.default_rng().integers(1 << 40)


def zipf_customers(count: int, customers: int, s: float, seed: int = 7) -> np.ndarray:
    """``count`` customer indices in [0, customers) with Zipf(s) popularity (index 0 hottest)."""
    weights = 1.0 / np.arange(1, customers + 1) ** s
    cumulative = np.cumsum(weights) / weights.sum()
    return np.searchsorted(cumulative, np.random.default_rng(seed).random(count))


def make_body(kind: str, *, customer: str, customers: int, zipf_s: float) -> MakeBody:
    if kind == "check":
        return lambda i, step, context: CHECK
    if kind in ("reserve-commit", "contention"):
        prefix, name = b"%x" % _run, customer.encode()
        # contention commits exactly what it reserved, so that every hold is fully settled
        commit = COMMIT if kind == "reserve-commit" else COMMIT_ALL

        def reserve_commit(i: int, step: str, context: dict[str, Any]) -> bytes:
            if step != "commit":
                return RESERVE % (name, i % 100, prefix, i)
            rid = msgspec.json.decode(context["reserve"])["reservation_id"]
            return commit % rid.encode()

        return reserve_commit
    if kind == "many-customers":
        picks = zipf_customers(2_000_000, customers, zipf_s)

        def many(i: int, step: str, context: dict[str, Any]) -> bytes:
            return MANY % int(picks[i % len(picks)])

        return many
    raise ValueError(f"unknown body kind {kind!r}")


MakeMessage = Callable[[int, str, dict[str, Any]], Any]


def make_message(kind: str, *, customer: str) -> MakeMessage:
    """The protobuf twin of ``make_body`` for the gRPC scenarios."""
    check = pb.CheckRequest(customer="acme", feature="max_context_tokens", user="u-1")
    if kind == "check":
        return lambda i, step, context: check
    prefix = f"{_run:x}"

    def reserve_commit(i: int, step: str, context: dict[str, Any]) -> Any:
        if step != "Commit":
            return pb.ReserveRequest(
                customer=customer, team="eng", user=f"u-{i % 100}", feature="chat",
                model="gpt-4o-mini", units={"input_tokens": 1200, "output_tokens": 800},
                idempotency_key=f"{prefix}-g{i}",
            )  # fmt: skip
        return pb.CommitRequest(
            reservation_id=context["Reserve"].reservation_id,
            units={"input_tokens": 1180, "output_tokens": 312},
        )

    return reserve_commit
