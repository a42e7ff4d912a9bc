"""The synchronous client: `capvault.connect(address, capability)`."""
from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import grpc

from . import _common
from ._common import DEFAULT_TIMEOUT, Query, Response, Restriction
from .errors import CapvaultError, from_rpc_error
from .v1 import capability_pb2, capability_pb2_grpc, proxy_pb2_grpc


class StreamResponse:
    """A streamed upstream answer: `status` and `headers` at once, the body by iterating (once, to the end).
    Use it as a context manager, or call `cancel()`, to stop early: the broker aborts the upstream request."""

    def __init__(self, call):
        self._call = call
        try:
            first = next(call)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        except StopIteration:
            raise CapvaultError("the broker closed the stream before the response head", code=grpc.StatusCode.INTERNAL) from None
        if first.WhichOneof("part") != "head":
            call.cancel()
            raise CapvaultError("the broker's first stream message was not a head", code=grpc.StatusCode.INTERNAL)
        self.status: int = first.head.status
        self.headers: Dict[str, str] = _common._headers(first.head.headers)

    def __iter__(self) -> Iterator[bytes]:
        try:
            for msg in self._call:
                if msg.WhichOneof("part") == "body_chunk":
                    yield bytes(msg.body_chunk)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def read(self) -> bytes:
        """The whole body."""
        return b"".join(self)

    def cancel(self) -> None:
        self._call.cancel()

    def __enter__(self) -> "StreamResponse":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()


class Client:
    """A capability holder's view of a broker: one gRPC channel, one token. `close()` (or `with`) when done."""

    def __init__(self, channel: grpc.Channel, token: str, owns_channel: bool = True):
        self._channel = channel
        self._token = token
        self._owns = owns_channel
        self._proxy = proxy_pb2_grpc.ProxyServiceStub(channel)
        self._caps = capability_pb2_grpc.CapabilityServiceStub(channel)

    @property
    def token(self) -> str:
        return self._token

    def _call(self, method, request, timeout: Optional[float] = None, token: Optional[str] = None):
        try:
            return method(request, metadata=_common.bearer(token or self._token), timeout=timeout or DEFAULT_TIMEOUT)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    def fetch(self, connection: str, method: str = "GET", path: str = "/", *, query: Query = None,
              headers: Optional[Mapping[str, str]] = None, body: Union[bytes, str, None] = None, json: Any = None,
              timeout: Optional[float] = None) -> Response:
        """One upstream call (ProxyService/Proxy). Returns the answer whatever its HTTP status; raises a
        CapvaultError subclass when the broker refuses or fails."""
        req = _common.http_request(connection, method, path, query, headers, body, json)
        return Response.from_proto(self._call(self._proxy.Proxy, _common.proxy_pb2.ProxyRequest(request=req), timeout))

    def stream(self, connection: str, method: str = "GET", path: str = "/", *, query: Query = None,
               headers: Optional[Mapping[str, str]] = None, body: Union[bytes, str, Iterable[Union[bytes, str]], None] = None,
               timeout: Optional[float] = None) -> StreamResponse:
        """A streamed upload and download (ProxyService/ProxyStream). Returns when the head arrives."""
        head = _common.http_request(connection, method, path, query, headers)
        call = self._proxy.ProxyStream(_common.stream_requests(head, body), metadata=_common.bearer(self._token),
                                       timeout=timeout or DEFAULT_TIMEOUT)
        return StreamResponse(call)

    def authorize(self, connection: str, method: str = "GET", path: str = "/", *, query: Query = None,
                  headers: Optional[Mapping[str, str]] = None, body: Union[bytes, str, None] = None, json: Any = None,
                  timeout: Optional[float] = None) -> capability_pb2.AuthorizeResponse:
        """Dry run (CapabilityService/Authorize): would this request be allowed? Nothing is sent upstream."""
        req = _common.http_request(connection, method, path, query, headers, body, json)
        return self._call(self._caps.Authorize, capability_pb2.AuthorizeRequest(token=self._token, request=req), timeout)

    def attenuate(self, restriction: Optional[Restriction] = None, **fields) -> str:
        """Narrow the token through the broker (CapabilityService/Attenuate); returns the narrower token.
        Give a Restriction or its fields: connections=, methods=, path_prefix=, ttl=, expires_at=, query=, body=, checks=."""
        r = restriction or Restriction(**fields)
        res = self._call(self._caps.Attenuate, capability_pb2.AttenuateRequest(token=self._token, restriction=r.to_proto()))
        return res.token

    def attenuate_offline(self, restriction: Optional[Restriction] = None, **fields) -> str:
        """Narrow the token without the broker (biscuit-python), verified against the broker's root public keys."""
        from .offline import attenuate_offline

        return attenuate_offline(self._token, restriction, public_keys=self.public_keys(), **fields)

    def inspect(self) -> capability_pb2.InspectResponse:
        """The token's blocks as structured data (CapabilityService/Inspect)."""
        return self._call(self._caps.Inspect, capability_pb2.InspectRequest(token=self._token))

    def public_keys(self) -> List[capability_pb2.PublicKey]:
        """The broker's root public keys (CapabilityService/ListPublicKeys; needs no capability)."""
        return list(self._call(self._caps.ListPublicKeys, capability_pb2.ListPublicKeysRequest()).keys)

    def mint(self, tenant: str, subject: str, grants: Iterable, ttl: Union[int, float, _dt.timedelta] = 3600,
             operator: bool = False) -> capability_pb2.MintResponse:
        """Mint a capability (CapabilityService/Mint; needs an operator capability). `grants` are
        (connection, method, path_prefix) tuples."""
        req = capability_pb2.MintRequest(tenant=tenant, subject=subject, grants=_common.grants(grants),
                                         ttl=_common.duration(ttl), operator=operator)
        return self._call(self._caps.Mint, req)

    def revoke(self, revocation_ids: Sequence[str], reason: str = "") -> int:
        """Revoke blocks by revocation id (CapabilityService/Revoke; operator). Returns how many were newly revoked."""
        return self._call(self._caps.Revoke, capability_pb2.RevokeRequest(revocation_ids=list(revocation_ids), reason=reason)).revoked

    def with_token(self, token: str) -> "Client":
        """A client for another token (e.g. a sub-agent's narrower one) on the same channel."""
        return Client(self._channel, token, owns_channel=False)

    def close(self) -> None:
        if self._owns:
            self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(address: str, capability: str, *, credentials: Optional[grpc.ChannelCredentials] = None,
            options: Optional[Sequence] = None) -> Client:
    """Open a channel to the broker at `address` (host:port) on behalf of `capability` (a Biscuit token, sent as
    `authorization: Bearer <token>`). `credentials` (e.g. grpc.ssl_channel_credentials(ca)) make it TLS; without them
    the channel is plaintext (a broker on loopback)."""
    opts = list(options or [])
    channel = grpc.secure_channel(address, credentials, opts) if credentials else grpc.insecure_channel(address, opts)
    return Client(channel, capability)
