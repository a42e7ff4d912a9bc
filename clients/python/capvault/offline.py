"""Offline attenuation: append a block of checks to a capability with biscuit-python, without calling the broker.

The same vocabulary as the Attenuate RPC and the TypeScript client's attenuateOffline (src/capabilities/
restriction-block.ts): the same checks, values always passed as Datalog parameters (never interpolated). A block can
only restrict: the broker trusts grants (`right(...)`) only from the authority block it signed, and verifies every
block of every token it is given.
"""
from __future__ import annotations

import datetime as _dt
import re
from typing import Iterable, List, Mapping, Optional, Union

from ._common import Restriction, _seconds
from .errors import local_error

_IDENT = re.compile(r"^[^\x00-\x1f\x7f]{1,256}$")
_METHOD = re.compile(r"^[A-Z]{1,16}$")
_PARAM = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_RAW_CHECK = re.compile(r"^(check if|check all|reject if)\s")
MAX_TTL_SECONDS = 90 * 24 * 3600  # the broker's maxTtlSeconds


def _path_prefix(prefix: str) -> str:
    """The broker's canonical prefix, or PATH_INVALID: origin-form, no dot segments, no escapes of '.' or '/'."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or prefix.startswith("//"):
        raise local_error("PATH_INVALID", "path_prefix must be an origin-form path starting with /")
    if any(c in prefix for c in "?#\\") or any(ord(c) < 0x21 or ord(c) == 0x7F for c in prefix):
        raise local_error("PATH_INVALID", "path_prefix has a character a canonical path cannot have")
    if re.search(r"%(2e|2f|5c)", prefix, re.I) or any(seg in (".", "..") for seg in prefix.split("/")) or "//" in prefix:
        raise local_error("PATH_INVALID", "path_prefix is not canonical (dot segments, empty segments or escaped separators)")
    return prefix if prefix.endswith("/") else prefix + "/"


def _public_key(key):
    import biscuit_auth

    if isinstance(key, biscuit_auth.PublicKey):
        return key
    hex_key = getattr(key, "public_key", key)
    return biscuit_auth.PublicKey.from_bytes(bytes.fromhex(hex_key), biscuit_auth.Algorithm.Ed25519)


def _root(public_keys):
    """A root-key lookup by key id, from ListPublicKeys answers, {key_id: hex} or one hex key."""
    if isinstance(public_keys, (str, bytes)) or not isinstance(public_keys, (Mapping, Iterable)):
        one = _public_key(public_keys)
        return lambda key_id: one
    if isinstance(public_keys, Mapping):
        keys = {int(k): _public_key(v) for k, v in public_keys.items()}
    else:
        keys = {int(k.key_id): _public_key(k) for k in public_keys}

    def lookup(key_id):
        if key_id not in keys:
            raise local_error("CAPABILITY_UNKNOWN_ROOT_KEY")
        return keys[key_id]

    return lookup


def block_for(r: Restriction, now: Optional[_dt.datetime] = None):
    """The biscuit_auth.BlockBuilder of checks a restriction compiles to (INVALID_REQUEST etc. for bad input)."""
    import biscuit_auth

    lines: List[str] = []
    params = {}
    connections = list(dict.fromkeys(r.connections))
    for c in connections:
        if not isinstance(c, str) or not _IDENT.match(c):
            raise local_error("INVALID_REQUEST", "connections[] must be non-empty strings")
    if connections:
        lines.append("check if connection($c), {connections}.contains($c);")
        params["connections"] = set(connections)
    methods = list(dict.fromkeys(m.upper() for m in r.methods))
    for m in methods:
        if not _METHOD.match(m):
            raise local_error("METHOD_INVALID")
    if methods:
        lines.append("check if method($m), {methods}.contains($m);")
        params["methods"] = set(methods)
    if r.path_prefix:
        lines.append('check if path($path), ($path + "/").starts_with({prefix});')
        params["prefix"] = _path_prefix(r.path_prefix)
    expiries = []
    now = now or _dt.datetime.now(_dt.timezone.utc)
    if r.ttl is not None:
        ttl = _seconds(r.ttl)
        if not (0 < ttl <= MAX_TTL_SECONDS):
            raise local_error("INVALID_REQUEST", "ttl must be positive and within the maximum lifetime")
        expiries.append(_dt.datetime.fromtimestamp(int(now.timestamp() + ttl), _dt.timezone.utc))
    if r.expires_at is not None:
        expiries.append(r.expires_at if r.expires_at.tzinfo else r.expires_at.replace(tzinfo=_dt.timezone.utc))
    if expiries:
        lines.append("check if time($time), $time <= {expires};")
        params["expires"] = min(expiries)
    for kind, constraints in (("query", r.query), ("body", r.body)):
        for i, (name, values) in enumerate(constraints.items()):
            if not _IDENT.match(name):
                raise local_error("INVALID_REQUEST", f"{kind} constraint name must be an identifier")
            values = set(values)
            if not values or not all(isinstance(v, str) for v in values):
                raise local_error("INVALID_REQUEST", f"{kind} constraint {name} needs string values")
            lines.append(f"check all {kind}({{{kind}{i}n}}, $v), {{{kind}{i}v}}.contains($v);")
            params[f"{kind}{i}n"] = name
            params[f"{kind}{i}v"] = values
    raw = []
    for i, check in enumerate(r.checks):
        code, check_params = (check, {}) if isinstance(check, str) else check
        code = code.strip().rstrip(";").strip()
        if not _RAW_CHECK.match(code) or ";" in code:
            raise local_error("DATALOG_INVALID", f"checks[{i}] must be a single check (check if, check all, reject if)")
        for name in check_params:
            if not _PARAM.match(name):
                raise local_error("DATALOG_INVALID", f"bad parameter name {name}")
        raw.append((code + ";", dict(check_params)))
    if not lines and not raw:
        raise local_error("INVALID_REQUEST", "the restriction is empty: set at least one field")
    try:
        block = biscuit_auth.BlockBuilder("\n".join(lines), params) if lines else biscuit_auth.BlockBuilder()
        for code, p in raw:
            block.add_code(code, p)
    except biscuit_auth.DataLogError as err:
        raise local_error("DATALOG_INVALID", f"invalid Datalog: {err}") from None
    return block


def attenuate_offline(token: str, restriction: Optional[Restriction] = None, *, public_keys,
                      now: Optional[_dt.datetime] = None, **fields) -> str:
    """Append a block of checks to `token` and return the narrower token. `public_keys` are the broker's root public
    keys (Client.public_keys(), {key_id: hex}, or one hex key): the token is verified first, so a damaged or forged
    token is reported here (CAPABILITY_MALFORMED / CAPABILITY_SIGNATURE_INVALID / CAPABILITY_UNKNOWN_ROOT_KEY)."""
    import biscuit_auth

    r = restriction or Restriction(**fields)
    block = block_for(r, now)
    try:
        parsed = biscuit_auth.Biscuit.from_base64(token, _root(public_keys))
    except biscuit_auth.BiscuitValidationError as err:
        text = str(err)
        reason = "CAPABILITY_UNKNOWN_ROOT_KEY" if "root key" in text.lower() else (
            "CAPABILITY_SIGNATURE_INVALID" if "signature" in text.lower() else "CAPABILITY_MALFORMED")
        raise local_error(reason, f"{local_error(reason).message} ({text})") from None
    return parsed.append(block).to_base64()
