"""Errors to gRPC status, in one place: the code, plus a google.rpc.BadRequest naming the field."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from sidecar.errors import RequestError

__all__ = ["FIELD_NAMES", "STATUS", "status_of"]

STATUS = {
    "invalid_request": grpc.StatusCode.INVALID_ARGUMENT,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "permission_denied": grpc.StatusCode.PERMISSION_DENIED,
    "not_found": grpc.StatusCode.NOT_FOUND,
    "conflict": grpc.StatusCode.FAILED_PRECONDITION,
    "store_unavailable": grpc.StatusCode.UNAVAILABLE,
    # gRPC's own meaning: "the operation may have completed"; the field names the retry key.
    "outcome_unknown": grpc.StatusCode.DEADLINE_EXCEEDED,
    "internal": grpc.StatusCode.INTERNAL,
}
# Wire fields that carry amounts are *_nanos in the proto.
FIELD_NAMES = {"amount": "amount_nanos", "limit": "limit_nanos"}


def status_of(error: RequestError) -> grpc.Status:
    """The rich status for ``error``: its code, its message, and the field at fault (as a
    ``google.rpc.BadRequest``) when there is one."""
    code = STATUS[error.code]
    field = FIELD_NAMES.get(error.field, error.field)
    details = []
    if field:  # a BadRequest names a field at fault; an internal error has none
        detail = any_pb2.Any()
        detail.Pack(
            error_details_pb2.BadRequest(
                field_violations=[
                    error_details_pb2.BadRequest.FieldViolation(
                        field=field, description=error.message
                    )
                ]
            )
        )
        details.append(detail)
    status = status_pb2.Status(
        code=getattr(code_pb2, code.name),
        message=f"{field}: {error.message}" if field else error.message,
        details=details,
    )
    return rpc_status.to_status(status)
