"""Errors: one CapvaultError subclass per gRPC status code, each carrying the broker's stable `reason`.

The broker sends a google.rpc.Status with an ErrorInfo (domain "capvault", an UPPER_SNAKE reason, metadata) in the
`grpc-status-details-bin` trailer; `from_rpc_error` decodes it. Branch on `reason`, never on the message.
"""
from __future__ import annotations

from typing import Dict, Optional, Type

import grpc
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2

from ._reasons import ERROR_DOMAIN, REASONS

__all__ = [
    "CapvaultError", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound", "AlreadyExists",
    "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted", "OutOfRange", "Unimplemented",
    "Internal", "Unavailable", "DataLoss", "Unauthenticated", "error_class", "from_rpc_error", "local_error",
]


class CapvaultError(Exception):
    """A refusal or failure. `code` is the grpc.StatusCode, `reason` the stable capvault reason ("UNKNOWN" when the
    error did not come from the broker, e.g. the client's own deadline or an unreachable broker), `metadata` the
    ErrorInfo's details (e.g. {"block": "1", "check": "0"})."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, reason: str = "UNKNOWN", metadata: Optional[Dict[str, str]] = None,
                 code: Optional[grpc.StatusCode] = None):
        super().__init__(message)
        self.message = message
        self.reason = reason
        self.metadata: Dict[str, str] = dict(metadata or {})
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, message={self.message!r}, metadata={self.metadata!r})"


def _subclass(name: str, code: grpc.StatusCode) -> Type[CapvaultError]:
    return type(name, (CapvaultError,), {"code": code, "__doc__": f"gRPC {code.name}."})


Cancelled = _subclass("Cancelled", grpc.StatusCode.CANCELLED)
Unknown = _subclass("Unknown", grpc.StatusCode.UNKNOWN)
InvalidArgument = _subclass("InvalidArgument", grpc.StatusCode.INVALID_ARGUMENT)
DeadlineExceeded = _subclass("DeadlineExceeded", grpc.StatusCode.DEADLINE_EXCEEDED)
NotFound = _subclass("NotFound", grpc.StatusCode.NOT_FOUND)
AlreadyExists = _subclass("AlreadyExists", grpc.StatusCode.ALREADY_EXISTS)
PermissionDenied = _subclass("PermissionDenied", grpc.StatusCode.PERMISSION_DENIED)
ResourceExhausted = _subclass("ResourceExhausted", grpc.StatusCode.RESOURCE_EXHAUSTED)
FailedPrecondition = _subclass("FailedPrecondition", grpc.StatusCode.FAILED_PRECONDITION)
Aborted = _subclass("Aborted", grpc.StatusCode.ABORTED)
OutOfRange = _subclass("OutOfRange", grpc.StatusCode.OUT_OF_RANGE)
Unimplemented = _subclass("Unimplemented", grpc.StatusCode.UNIMPLEMENTED)
Internal = _subclass("Internal", grpc.StatusCode.INTERNAL)
Unavailable = _subclass("Unavailable", grpc.StatusCode.UNAVAILABLE)
DataLoss = _subclass("DataLoss", grpc.StatusCode.DATA_LOSS)
Unauthenticated = _subclass("Unauthenticated", grpc.StatusCode.UNAUTHENTICATED)

_BY_CODE: Dict[grpc.StatusCode, Type[CapvaultError]] = {
    cls.code: cls
    for cls in (Cancelled, Unknown, InvalidArgument, DeadlineExceeded, NotFound, AlreadyExists, PermissionDenied,
                ResourceExhausted, FailedPrecondition, Aborted, OutOfRange, Unimplemented, Internal, Unavailable,
                DataLoss, Unauthenticated)
}
_BY_NUMBER = {c.value[0]: c for c in grpc.StatusCode}


def error_class(code: grpc.StatusCode) -> Type[CapvaultError]:
    """The CapvaultError subclass for a gRPC status code."""
    return _BY_CODE.get(code, Unknown)


def local_error(reason: str, message: Optional[str] = None) -> CapvaultError:
    """An error raised by the client itself for a reason of the broker's table (same class, same reason)."""
    name, number, public = REASONS[reason]
    return error_class(_BY_NUMBER[number])(message or public, reason)


def _error_info(details: bytes) -> Optional[error_details_pb2.ErrorInfo]:
    try:
        st = status_pb2.Status.FromString(details)
    except DecodeError:
        return None
    for any_ in st.details:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
            if info.domain == ERROR_DOMAIN:
                return info
    return None


def from_status(code: grpc.StatusCode, message: str, trailing_metadata) -> CapvaultError:
    """A CapvaultError from a call's status, decoding ErrorInfo from `grpc-status-details-bin` when present."""
    info = None
    for key, value in trailing_metadata or ():
        if key == "grpc-status-details-bin":
            info = _error_info(value)
    if info is None:
        return error_class(code)(message or code.name, "UNKNOWN")
    return error_class(code)(message, info.reason, dict(info.metadata))


def from_rpc_error(err: grpc.RpcError) -> CapvaultError:
    """Convert a grpc.RpcError (sync or asyncio) into its CapvaultError."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    message = err.details() if hasattr(err, "details") else str(err)
    trailing = err.trailing_metadata() if hasattr(err, "trailing_metadata") else ()
    error = from_status(code, message or "", trailing)
    error.__cause__ = err
    return error
