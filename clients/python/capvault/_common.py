"""What the sync and asyncio clients share: request building, responses, restrictions."""
from __future__ import annotations

import datetime as _dt
import json as _json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from google.protobuf import duration_pb2, timestamp_pb2

from .errors import local_error
from .v1 import capability_pb2, common_pb2, proxy_pb2

#: Body chunks of a streamed upload are at most this many bytes (as the TypeScript client).
STREAM_CHUNK_BYTES = 64 * 1024
#: Deadline of a call when none is given, seconds.
DEFAULT_TIMEOUT = 30.0

Query = Union[Mapping[str, Union[str, int, bool]], Sequence[Tuple[str, str]], None]


def _query(query: Query) -> List[common_pb2.QueryParam]:
    if query is None:
        return []
    items = query.items() if isinstance(query, Mapping) else query
    out = []
    for name, value in items:
        if isinstance(value, bool):
            value = "true" if value else "false"
        out.append(common_pb2.QueryParam(name=str(name), value=str(value)))
    return out


def http_request(connection: str, method: str, path: str, query: Query = None, headers: Optional[Mapping[str, str]] = None,
                 body: Union[bytes, str, None] = None, json: Any = None) -> common_pb2.HttpRequest:
    """A capvault.v1.HttpRequest. `json` is serialized and sent with content-type application/json."""
    hdrs = dict(headers or {})
    if json is not None:
        if body is not None:
            raise local_error("INVALID_REQUEST", "give body or json, not both")
        body = _json.dumps(json, separators=(",", ":")).encode()
        if not any(k.lower() == "content-type" for k in hdrs):
            hdrs["content-type"] = "application/json"
    if isinstance(body, str):
        body = body.encode()
    return common_pb2.HttpRequest(
        connection=connection,
        method=(method or "GET").upper(),
        path=path,
        query=_query(query),
        headers=[common_pb2.Header(name=k, value=v) for k, v in hdrs.items()],
        body=body or b"",
    )


def _headers(pb_headers) -> Dict[str, str]:
    out: Dict[str, str] = {}
    for h in pb_headers:
        name = h.name.lower()
        out[name] = f"{out[name]}, {h.value}" if name in out else h.value
    return out


@dataclass
class Response:
    """An upstream answer, whatever its status (a 404 or a 500 is an answer, not an error)."""

    status: int
    headers: Dict[str, str]
    body: bytes

    def text(self, encoding: str = "utf-8") -> str:
        return self.body.decode(encoding)

    def json(self) -> Any:
        return _json.loads(self.body)

    @classmethod
    def from_proto(cls, res: proxy_pb2.ProxyResponse) -> "Response":
        return cls(status=res.status, headers=_headers(res.headers), body=bytes(res.body))


def stream_requests(head: common_pb2.HttpRequest, body: Union[bytes, str, Iterable[Union[bytes, str]], None]):
    """The ProxyStream request messages: the head, then the body re-chunked into messages of at most 64 KiB."""
    yield proxy_pb2.ProxyStreamRequest(head=head)
    if body is None:
        return
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        body = [body]
    for part in body:
        data = part.encode() if isinstance(part, str) else bytes(part)
        for i in range(0, len(data), STREAM_CHUNK_BYTES):
            yield proxy_pb2.ProxyStreamRequest(body_chunk=data[i:i + STREAM_CHUNK_BYTES])


def _seconds(value: Union[int, float, _dt.timedelta]) -> float:
    return value.total_seconds() if isinstance(value, _dt.timedelta) else float(value)


@dataclass
class Restriction:
    """What an attenuation block restricts (every set field adds a check; nothing can widen). See docs/client.md."""

    connections: Sequence[str] = ()
    methods: Sequence[str] = ()
    path_prefix: str = ""
    ttl: Union[int, float, _dt.timedelta, None] = None
    expires_at: Optional[_dt.datetime] = None
    query: Mapping[str, Sequence[str]] = field(default_factory=dict)
    body: Mapping[str, Sequence[str]] = field(default_factory=dict)
    checks: Sequence[str] = ()

    def to_proto(self) -> capability_pb2.Restriction:
        r = capability_pb2.Restriction(
            connections=list(self.connections),
            methods=[m.upper() for m in self.methods],
            path_prefix=self.path_prefix,
            query=[capability_pb2.FieldConstraint(name=k, values=list(v)) for k, v in self.query.items()],
            body=[capability_pb2.FieldConstraint(name=k, values=list(v)) for k, v in self.body.items()],
            checks=list(self.checks),
        )
        if self.ttl is not None:
            r.ttl.CopyFrom(duration(self.ttl))
        if self.expires_at is not None:
            r.expires_at.CopyFrom(timestamp(self.expires_at))
        return r


def duration(value: Union[int, float, _dt.timedelta]) -> duration_pb2.Duration:
    seconds = _seconds(value)
    return duration_pb2.Duration(seconds=int(seconds), nanos=int(round((seconds - int(seconds)) * 1e9)))


def timestamp(value: _dt.datetime) -> timestamp_pb2.Timestamp:
    t = timestamp_pb2.Timestamp()
    t.FromDatetime(value.astimezone(_dt.timezone.utc) if value.tzinfo else value)
    return t


def grants(items: Iterable[Union[Tuple[str, str, str], Mapping[str, str]]]) -> List[capability_pb2.Grant]:
    """Grants from (connection, method, path_prefix) tuples or {"connection", "method", "path_prefix"} dicts."""
    out = []
    for g in items:
        if isinstance(g, Mapping):
            out.append(capability_pb2.Grant(connection=g["connection"], method=g["method"], path_prefix=g["path_prefix"]))
        else:
            c, m, p = g
            out.append(capability_pb2.Grant(connection=c, method=m, path_prefix=p))
    return out


def bearer(token: str) -> List[Tuple[str, str]]:
    return [("authorization", f"Bearer {token}")]
