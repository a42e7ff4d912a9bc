"""The asyncio client: `capvault.aio.connect(address, capability)`, the same calls as the sync client, awaited."""
from __future__ import annotations

import datetime as _dt
from typing import Any, AsyncIterable, AsyncIterator, Dict, Iterable, List, Mapping, Optional, Sequence, Union

import grpc
import grpc.aio

from . import _common
from ._common import DEFAULT_TIMEOUT, Query, Response, Restriction
from .errors import CapvaultError, from_rpc_error
from .v1 import capability_pb2, capability_pb2_grpc, proxy_pb2, proxy_pb2_grpc


class AsyncStreamResponse:
    """A streamed upstream answer: `status`, `headers`, and the body with `async for chunk in res`."""

    def __init__(self, call, status: int, headers: Dict[str, str]):
        self._call = call
        self.status = status
        self.headers = headers

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            # read(), not `async for`: grpc.aio refuses to mix the two on one call, and the head was read().
            while True:
                msg = await self._call.read()
                if msg is grpc.aio.EOF:
                    return
                if msg.WhichOneof("part") == "body_chunk":
                    yield bytes(msg.body_chunk)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self])

    def cancel(self) -> None:
        self._call.cancel()

    async def __aenter__(self) -> "AsyncStreamResponse":
        return self

    async def __aexit__(self, *exc) -> None:
        self.cancel()


async def _body_messages(head, body):
    """Stream request messages from bytes, an iterable or an async iterable of chunks."""
    if body is not None and hasattr(body, "__aiter__"):
        for msg in _common.stream_requests(head, None):
            yield msg
        async for part in body:
            for msg in list(_common.stream_requests(head, part))[1:]:
                yield msg
        return
    for msg in _common.stream_requests(head, body):
        yield msg


class AsyncClient:
    """The asyncio twin of capvault.Client. `await close()` (or `async with`) when done."""

    def __init__(self, channel: grpc.aio.Channel, token: str, owns_channel: bool = True):
        self._channel = channel
        self._token = token
        self._owns = owns_channel
        self._proxy = proxy_pb2_grpc.ProxyServiceStub(channel)
        self._caps = capability_pb2_grpc.CapabilityServiceStub(channel)

    @property
    def token(self) -> str:
        return self._token

    async def _call(self, method, request, timeout: Optional[float] = None):
        try:
            return await method(request, metadata=_common.bearer(self._token), timeout=timeout or DEFAULT_TIMEOUT)
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None

    async def fetch(self, connection: str, method: str = "GET", path: str = "/", *, query: Query = None,
                    headers: Optional[Mapping[str, str]] = None, body: Union[bytes, str, None] = None, json: Any = None,
                    timeout: Optional[float] = None) -> Response:
        req = _common.http_request(connection, method, path, query, headers, body, json)
        return Response.from_proto(await self._call(self._proxy.Proxy, proxy_pb2.ProxyRequest(request=req), timeout))

    async def stream(self, connection: str, method: str = "GET", path: str = "/", *, query: Query = None,
                     headers: Optional[Mapping[str, str]] = None,
                     body: Union[bytes, str, Iterable[Union[bytes, str]], AsyncIterable[Union[bytes, str]], None] = None,
                     timeout: Optional[float] = None) -> AsyncStreamResponse:
        head = _common.http_request(connection, method, path, query, headers)
        call = self._proxy.ProxyStream(_body_messages(head, body), metadata=_common.bearer(self._token),
                                       timeout=timeout or DEFAULT_TIMEOUT)
        try:
            first = await call.read()
        except grpc.RpcError as err:
            raise from_rpc_error(err) from None
        if first is grpc.aio.EOF or first.WhichOneof("part") != "head":
            call.cancel()
            raise CapvaultError("the broker's stream did not start with a response head", code=grpc.StatusCode.INTERNAL)
        return AsyncStreamResponse(call, first.head.status, _common._headers(first.head.headers))

    async def authorize(self, connection: str, method: str = "GET", path: str = "/", *, query: Query = None,
                        headers: Optional[Mapping[str, str]] = None, body: Union[bytes, str, None] = None,
                        json: Any = None, timeout: Optional[float] = None) -> capability_pb2.AuthorizeResponse:
        req = _common.http_request(connection, method, path, query, headers, body, json)
        return await self._call(self._caps.Authorize, capability_pb2.AuthorizeRequest(token=self._token, request=req), timeout)

    async def attenuate(self, restriction: Optional[Restriction] = None, **fields) -> str:
        r = restriction or Restriction(**fields)
        res = await self._call(self._caps.Attenuate, capability_pb2.AttenuateRequest(token=self._token, restriction=r.to_proto()))
        return res.token

    async def attenuate_offline(self, restriction: Optional[Restriction] = None, **fields) -> str:
        from .offline import attenuate_offline

        return attenuate_offline(self._token, restriction, public_keys=await self.public_keys(), **fields)

    async def inspect(self) -> capability_pb2.InspectResponse:
        return await self._call(self._caps.Inspect, capability_pb2.InspectRequest(token=self._token))

    async def public_keys(self) -> List[capability_pb2.PublicKey]:
        return list((await self._call(self._caps.ListPublicKeys, capability_pb2.ListPublicKeysRequest())).keys)

    async def mint(self, tenant: str, subject: str, grants: Iterable, ttl: Union[int, float, _dt.timedelta] = 3600,
                   operator: bool = False) -> capability_pb2.MintResponse:
        req = capability_pb2.MintRequest(tenant=tenant, subject=subject, grants=_common.grants(grants),
                                         ttl=_common.duration(ttl), operator=operator)
        return await self._call(self._caps.Mint, req)

    async def revoke(self, revocation_ids: Sequence[str], reason: str = "") -> int:
        res = await self._call(self._caps.Revoke, capability_pb2.RevokeRequest(revocation_ids=list(revocation_ids), reason=reason))
        return res.revoked

    def with_token(self, token: str) -> "AsyncClient":
        return AsyncClient(self._channel, token, owns_channel=False)

    async def close(self) -> None:
        if self._owns:
            await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


def connect(address: str, capability: str, *, credentials: Optional[grpc.ChannelCredentials] = None,
            options: Optional[Sequence] = None) -> AsyncClient:
    """As capvault.connect, over asyncio (create it inside a running event loop)."""
    opts = list(options or [])
    channel = grpc.aio.secure_channel(address, credentials, opts) if credentials else grpc.aio.insecure_channel(address, opts)
    return AsyncClient(channel, capability)
