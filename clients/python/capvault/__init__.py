"""capvault: the Python client for the capvault credential broker.

    import capvault
    with capvault.connect("127.0.0.1:50051", token) as cv:
        res = cv.fetch("conn_...", "GET", "/repos/acme/widgets/issues", query={"state": "open"})

`capvault.aio.connect` is the same over asyncio. Every refusal raises a CapvaultError subclass (one per gRPC code)
carrying the broker's stable `reason`.
"""
from ._client import Client, StreamResponse, connect
from ._common import STREAM_CHUNK_BYTES, Response, Restriction
from ._reasons import ERROR_DOMAIN, REASONS
from .errors import (Aborted, AlreadyExists, Cancelled, CapvaultError, DataLoss, DeadlineExceeded, FailedPrecondition,
                     Internal, InvalidArgument, NotFound, OutOfRange, PermissionDenied, ResourceExhausted, Unauthenticated,
                     Unavailable, Unimplemented, Unknown)


def attenuate_offline(token, restriction=None, *, public_keys, now=None, **fields):
    """Append a block of checks to `token` without the broker (needs the `offline` extra: biscuit-python)."""
    from .offline import attenuate_offline as _attenuate_offline

    return _attenuate_offline(token, restriction, public_keys=public_keys, now=now, **fields)


__all__ = [
    "connect", "Client", "StreamResponse", "Response", "Restriction", "attenuate_offline", "STREAM_CHUNK_BYTES",
    "REASONS", "ERROR_DOMAIN", "CapvaultError", "Cancelled", "Unknown", "InvalidArgument", "DeadlineExceeded",
    "NotFound", "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
]
