"""The checked-in generated code is what proto/generate.py makes of the .proto today, and the
proto keeps the contract's rules: one Reason per wire reason, *_UNSPECIFIED zeros, one message
pair per RPC, no float anywhere, and every amount an int64 ``*_nanos``."""

from __future__ import annotations

import importlib.util
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import pytest
from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import FieldDescriptor

from sidecar import wire
from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2 as pb
from tests.conftest import ROOT

GEN = ROOT / "sidecar" / "rpc" / "gen"
PROTO = ROOT / "proto" / "creditgate" / "v1" / "creditgate.proto"


def _load_generator() -> ModuleType:
    """proto/generate.py by its path: ``proto`` is not a package."""
    spec = importlib.util.spec_from_file_location(
        "creditgate_proto_generate", ROOT / "proto" / "generate.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path, bytecode caches left out."""
    return {
        str(path.relative_to(folder)): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


def test_checked_in_generated_code_is_not_stale(tmp_path: Path) -> None:
    generate = _load_generator()
    target = tmp_path / "gen"
    target.mkdir()
    written = generate.generate(target)
    fresh = _files(target)
    checked_in = _files(GEN)
    assert {str(Path(p).relative_to(target)) for p in written} == set(fresh)
    expected = {
        "__init__.py",
        "creditgate/__init__.py",
        "creditgate/v1/__init__.py",
        "creditgate/v1/creditgate_pb2.py",
        "creditgate/v1/creditgate_pb2.pyi",
        "creditgate/v1/creditgate_pb2_grpc.py",
    }
    assert set(fresh) == expected
    assert set(checked_in) == expected, "stray or missing files in sidecar/rpc/gen"
    for name in sorted(expected):
        assert fresh[name] == checked_in[name], (
            f"sidecar/rpc/gen/{name} is stale: run .venv/bin/python proto/generate.py"
        )
    # The grpc module imports its messages as a package module, not by the proto root.
    grpc_module = fresh["creditgate/v1/creditgate_pb2_grpc.py"].decode()
    assert "from sidecar.rpc.gen.creditgate.v1 import creditgate_pb2" in grpc_module
    assert "\nfrom creditgate.v1 import" not in grpc_module


def test_generated_descriptor_is_the_proto_file_on_disk() -> None:
    """The module serves the descriptor of this very file: same package, same service names."""
    assert pb.DESCRIPTOR.name == "creditgate/v1/creditgate.proto"
    assert pb.DESCRIPTOR.package == "creditgate.v1"
    text = PROTO.read_text()
    for service in pb.DESCRIPTOR.services_by_name.values():
        assert f"service {service.name} {{" in text
        for method in service.methods:
            assert f"rpc {method.name}(" in text


def test_reason_enum_matches_the_wire_reasons_one_to_one() -> None:
    values = {value.name: value.number for value in pb.Reason.DESCRIPTOR.values}
    assert values.pop("REASON_UNSPECIFIED") == 0
    assert set(values) == {f"REASON_{reason.upper()}" for reason in wire.REASONS}
    assert len(values) == len(wire.REASONS) == len(set(wire.REASONS))
    assert 0 not in values.values()
    # The wire's closed list and its Literal type agree too.
    assert set(typing.get_args(wire.Reason)) == set(wire.REASONS)


def _enums() -> list[Any]:
    found = list(pb.DESCRIPTOR.enum_types_by_name.values())
    stack = list(pb.DESCRIPTOR.message_types_by_name.values())
    while stack:
        message = stack.pop()
        found.extend(message.enum_types)
        stack.extend(message.nested_types)
    return found


def _screaming(name: str) -> str:
    """CommitResult -> COMMIT_RESULT, written out by hand rather than taken from convert.py."""
    out = ""
    for i, ch in enumerate(name):
        if ch.isupper() and i:
            out += "_"
        out += ch.upper()
    return out


def test_every_enum_zero_is_unspecified_and_values_carry_the_enum_prefix() -> None:
    enums = _enums()
    assert {e.name for e in enums} == {
        "Reason", "DecidedBy", "CommitResult", "ReleaseResult", "Period", "BudgetMode",
        "GrantResult", "UpsertResult", "SetBudgetResult", "IssueProxyKeyResult",
        "RevokeProxyKeyResult", "IssueTokenResult", "RevokeTokenResult", "TokenRole",
        "AlertTarget", "AlertSource", "SetAlertsResult", "CorrectionResult",
        "SubmitProposalResult", "CatalogDecisionResult",
    }  # fmt: skip
    for enum in enums:
        prefix = _screaming(enum.name) + "_"
        zero = enum.values_by_number[0]
        assert zero.name == f"{prefix}UNSPECIFIED", enum.name
        assert zero.name.endswith("_UNSPECIFIED")
        for value in enum.values:
            assert value.name.startswith(prefix), (enum.name, value.name)
        assert len(enum.values_by_number) == len(enum.values), f"{enum.name} has aliases"


def test_every_rpc_has_its_own_request_and_response() -> None:
    seen: dict[str, str] = {}
    exceptions = []
    methods = 0
    for service in pb.DESCRIPTOR.services_by_name.values():
        for method in service.methods:
            methods += 1
            assert method.input_type.name == f"{method.name}Request", method.full_name
            if method.full_name == "creditgate.v1.CreditgateAdminService.GetCustomer":
                exceptions.append(method.output_type.name)
            else:
                assert method.output_type.name == f"{method.name}Response", method.full_name
            for message in (method.input_type, method.output_type):
                owner = seen.setdefault(message.full_name, method.full_name)
                if message.name != "GetBalanceResponse":
                    assert owner == method.full_name, f"{message.name} shared by {owner}"
            assert not method.client_streaming
            assert not method.server_streaming
    # The one allowed exception: an admin's view of a customer is the public balance answer.
    assert exceptions == ["GetBalanceResponse"]
    assert seen["creditgate.v1.GetBalanceResponse"] == "creditgate.v1.CreditgateService.GetBalance"
    assert methods == 23


def _message_protos() -> list[descriptor_pb2.DescriptorProto]:
    file = descriptor_pb2.FileDescriptorProto()
    pb.DESCRIPTOR.CopyToProto(file)
    out = []
    stack = list(file.message_type)
    while stack:
        message = stack.pop()
        out.append(message)
        stack.extend(message.nested_type)  # map entries live here
    return out


def test_no_field_anywhere_is_float_or_double() -> None:
    messages = _message_protos()
    floats = (
        descriptor_pb2.FieldDescriptorProto.TYPE_FLOAT,
        descriptor_pb2.FieldDescriptorProto.TYPE_DOUBLE,
    )
    fields = [(m.name, f.name, f.type) for m in messages for f in m.field]
    assert len(fields) > 100  # the walk did reach the messages and their map entries
    assert any(m.options.map_entry for m in messages)
    assert [(m, f) for m, f, kind in fields if kind in floats] == []
    # And every *_nanos field (or map of them) is an int64.
    for message in messages:
        for field in message.field:
            if field.name.endswith("_nanos") and field.type != field.TYPE_MESSAGE:
                assert field.type == field.TYPE_INT64, (message.name, field.name)


# Wire struct -> the proto message that mirrors it.
MIRRORS: dict[type[msgspec.Struct], Any] = {
    wire.CheckRequest: pb.CheckRequest,
    wire.CheckResponse: pb.CheckResponse,
    wire.ReserveRequest: pb.ReserveRequest,
    wire.ReserveResponse: pb.ReserveResponse,
    wire.CommitRequest: pb.CommitRequest,
    wire.BurnedCredits: pb.BurnedCredits,
    wire.CommitResponse: pb.CommitResponse,
    wire.ReleaseRequest: pb.ReleaseRequest,
    wire.ReleaseResponse: pb.ReleaseResponse,
    wire.BucketState: pb.Bucket,
    wire.BudgetState: pb.Budget,
    wire.BalanceResponse: pb.GetBalanceResponse,
    wire.BudgetsResponse: pb.GetBudgetsResponse,
    wire.UpsertCustomerRequest: pb.UpsertCustomerRequest,
    wire.CustomerResponse: pb.UpsertCustomerResponse,
    wire.GrantRequest: pb.GrantRequest,
    wire.GrantResponse: pb.GrantResponse,
    wire.BudgetScope: pb.BudgetScope,
    wire.SetBudgetRequest: pb.SetBudgetRequest,
    wire.SetBudgetResponse: pb.SetBudgetResponse,
}
# The amounts of the wire contract (decimal strings of credits), listed by hand from docs/design.md.
AMOUNTS: dict[type[msgspec.Struct], set[str]] = {
    wire.ReserveRequest: {"amount"},
    wire.ReserveResponse: {"held", "remaining"},
    wire.CommitRequest: {"amount"},
    wire.BurnedCredits: {"amount"},
    wire.CommitResponse: {"cost", "overrun", "overage", "released", "uncovered"},
    wire.ReleaseResponse: {"released"},
    wire.BucketState: {"amount"},
    wire.BudgetState: {"limit", "used", "held", "remaining"},
    wire.BalanceResponse: {"balance", "held", "uncovered_used", "overage_used"},
    wire.GrantRequest: {"amount"},
    wire.GrantResponse: {"amount"},
    wire.SetBudgetRequest: {"limit"},
    wire.SetBudgetResponse: {"limit"},
}
# Wire fields the proto carries otherwise, on purpose.
NOT_MIRRORED = {
    (wire.CheckResponse, "value"),  # a oneof of int_value / string_value
}
# Proto fields with no wire field: the admin customer travels in the URL path over HTTP.
PROTO_ONLY = {
    pb.UpsertCustomerRequest: {"customer"},
    pb.GrantRequest: {"customer"},
    pb.SetBudgetRequest: {"customer"},
    pb.CheckResponse: {"int_value", "string_value"},
}


def _is_str_amount(annotation: Any) -> bool:
    """``str``, ``str | None`` or ``dict[str, str]``: the shapes an amount takes on the wire."""
    args = set(typing.get_args(annotation)) - {type(None)}
    if annotation is str or args == {str}:
        return True
    return typing.get_origin(annotation) is dict and typing.get_args(annotation) == (str, str)


@pytest.mark.parametrize("struct", list(MIRRORS), ids=lambda s: s.__name__)
def test_every_wire_amount_is_an_int64_nanos_field(struct: type[msgspec.Struct]) -> None:
    message = MIRRORS[struct].DESCRIPTOR
    hints = typing.get_type_hints(struct)
    amounts = AMOUNTS.get(struct, set())
    covered = set()
    for name in struct.__struct_fields__:
        if (struct, name) in NOT_MIRRORED:
            continue
        if name in amounts:
            assert _is_str_amount(hints[name]), f"{struct.__name__}.{name} is not a str amount"
            field = message.fields_by_name.get(f"{name}_nanos")
            assert field is not None, f"{struct.__name__}.{name} has no {name}_nanos in the proto"
            assert name not in message.fields_by_name, f"{name} also travels as a non-amount"
            if field.message_type is not None:  # a map of amounts
                assert field.message_type.GetOptions().map_entry
                key, value = (field.message_type.fields_by_name[n] for n in ("key", "value"))
                assert key.type == FieldDescriptor.TYPE_STRING
                assert value.type == FieldDescriptor.TYPE_INT64
            else:
                assert field.type == FieldDescriptor.TYPE_INT64, f"{field.name} is not int64"
            covered.add(field.name)
        else:
            field = message.fields_by_name.get(name)
            assert field is not None, f"{struct.__name__}.{name} is not in {message.name}"
            assert not name.endswith("_nanos")
            covered.add(name)
    extra = set(message.fields_by_name) - covered - PROTO_ONLY.get(MIRRORS[struct], set())
    assert extra == set(), f"{message.name} has fields the wire does not: {extra}"


def test_amount_lists_cover_every_str_amount_shaped_field_named_like_money() -> None:
    """A guard on the hand-written list: every struct field named like money is in it."""
    money = {"amount", "held", "remaining", "cost", "overrun", "overage", "released", "uncovered",
             "limit", "used", "balance", "uncovered_used", "overage_used"}  # fmt: skip
    for struct in MIRRORS:
        hints = typing.get_type_hints(struct)
        for name in struct.__struct_fields__:
            if name in money and _is_str_amount(hints[name]):
                assert name in AMOUNTS.get(struct, set()), f"{struct.__name__}.{name}"
