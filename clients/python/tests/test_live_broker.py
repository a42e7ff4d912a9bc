"""The Python client against a live broker (real OAuth server, real HTTPS upstream), end to end."""
import asyncio
import datetime as dt

import biscuit_auth
import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import capvault
import capvault.aio


def mint(broker, grants, ttl=3600, subject="py-agent"):
    with capvault.connect(broker.address, broker.operator_token) as op:
        return op.mint(broker.tenant, subject, grants, ttl=ttl)


def test_reflection_builds_a_descriptor_pool_and_calls_mint(broker):
    """A client that knows nothing but the address: every service resolves through reflection, and Mint is called
    with message classes built from the reflected descriptors."""
    with grpc.insecure_channel(broker.address) as channel:
        db = ProtoReflectionDescriptorDatabase(channel)
        pool = descriptor_pool.DescriptorPool(db)
        services = set(db.get_services())
        for name in ("capvault.v1.CapabilityService", "capvault.v1.ConnectionService", "capvault.v1.ProxyService",
                     "capvault.v1.AdminService", "grpc.health.v1.Health"):
            assert name in services
            for method in pool.FindServiceByName(name).methods:
                assert method.input_type.fields is not None and method.output_type.full_name
        mint_method = pool.FindMethodByName("capvault.v1.CapabilityService.Mint")
        Request = message_factory.GetMessageClass(mint_method.input_type)
        Response = message_factory.GetMessageClass(mint_method.output_type)
        req = Request(tenant=broker.tenant, subject="reflected")
        req.grants.add(connection=broker.connection, method="GET", path_prefix="/repos/")
        req.ttl.seconds = 60
        call = channel.unary_unary("/capvault.v1.CapabilityService/Mint", request_serializer=Request.SerializeToString,
                                   response_deserializer=Response.FromString)
        res = call(req, metadata=[("authorization", f"Bearer {broker.operator_token}")], timeout=10)
        assert res.token and res.expires_at.seconds > 0


def test_mint_attenuate_offline_proxy_and_denial(broker):
    minted = mint(broker, [(broker.connection, "GET", "/repos/acme/")])
    with capvault.connect(broker.address, minted.token) as agent:
        narrowed = agent.attenuate_offline(path_prefix="/repos/acme/widgets/", methods=["GET"], ttl=300)
        assert narrowed != minted.token
        sub = agent.with_token(narrowed)
        assert len(sub.inspect().blocks) == 2

        res = sub.fetch(broker.connection, "GET", "/repos/acme/widgets/issues", query={"state": "open"})
        assert res.status == 200
        assert res.json() == {"method": "GET", "url": "/repos/acme/widgets/issues?state=open", "bodyBytes": 0}

        with pytest.raises(capvault.PermissionDenied) as denied:
            sub.fetch(broker.connection, "GET", "/repos/acme/secrets")
        assert denied.value.reason == "CAPABILITY_CHECK_FAILED"
        assert denied.value.code == grpc.StatusCode.PERMISSION_DENIED
        assert denied.value.metadata.get("block") == "1"
        # The orchestrator's own token still reaches it.
        assert agent.fetch(broker.connection, "GET", "/repos/acme/secrets").status == 200


def test_a_python_appended_block_cannot_add_a_right(broker):
    minted = mint(broker, [(broker.connection, "GET", "/repos/acme/")])
    with capvault.connect(broker.address, minted.token) as agent:
        # The client refuses to build anything but checks.
        with pytest.raises(capvault.InvalidArgument) as refused:
            agent.attenuate_offline(checks=[f'right("{broker.connection}", "DELETE", "/repos/acme/")'])
        assert refused.value.reason == "DATALOG_INVALID"

        # biscuit-python itself will append a fact; the broker does not trust it.
        keys = {k.key_id: biscuit_auth.PublicKey.from_bytes(bytes.fromhex(k.public_key), biscuit_auth.Algorithm.Ed25519)
                for k in agent.public_keys()}
        token = biscuit_auth.Biscuit.from_base64(minted.token, lambda key_id: keys[key_id])
        widened = token.append(biscuit_auth.BlockBuilder(
            'right({c}, "DELETE", "/repos/acme/"); right({c}, "GET", "/");', {"c": broker.connection})).to_base64()
        evil = agent.with_token(widened)
        with pytest.raises(capvault.PermissionDenied) as denied:
            evil.fetch(broker.connection, "DELETE", "/repos/acme/widgets")
        assert denied.value.reason == "NO_MATCHING_GRANT"
        with pytest.raises(capvault.PermissionDenied) as outside:
            evil.fetch(broker.connection, "GET", "/orgs/acme")
        assert outside.value.reason == "NO_MATCHING_GRANT"
        assert evil.fetch(broker.connection, "GET", "/repos/acme/widgets").status == 200


def test_attenuate_through_the_rpc_and_revoke(broker):
    minted = mint(broker, [(broker.connection, "GET", "/repos/acme/")])
    with capvault.connect(broker.address, minted.token) as agent:
        narrowed = agent.attenuate(capvault.Restriction(path_prefix="/repos/acme/widgets/", ttl=dt.timedelta(minutes=5)))
        sub = agent.with_token(narrowed)
        info = sub.inspect()
        assert [b.index for b in info.blocks] == [0, 1]
        assert sub.fetch(broker.connection, "GET", "/repos/acme/widgets").status == 200
        with pytest.raises(capvault.PermissionDenied) as denied:
            sub.fetch(broker.connection, "GET", "/repos/acme/gadgets")
        assert denied.value.reason == "CAPABILITY_CHECK_FAILED"
        verdict = sub.authorize(broker.connection, "GET", "/repos/acme/gadgets")
        assert not verdict.allowed and verdict.denials[0].block_index == 1

        with capvault.connect(broker.address, broker.operator_token) as op:
            assert op.revoke([info.blocks[1].revocation_id], reason="test") == 1
        with pytest.raises(capvault.Unauthenticated) as revoked:
            sub.fetch(broker.connection, "GET", "/repos/acme/widgets")
        assert revoked.value.reason == "CAPABILITY_REVOKED"
        assert agent.fetch(broker.connection, "GET", "/repos/acme/widgets").status == 200


def test_stream_upload_and_download(broker):
    minted = mint(broker, [(broker.connection, "PUT", "/upload/")])
    with capvault.connect(broker.address, minted.token) as agent:
        chunks = (b"x" * 100_000 for _ in range(3))
        with agent.stream(broker.connection, "PUT", "/upload/big.bin", body=chunks,
                          headers={"content-type": "application/octet-stream"}) as res:
            assert res.status == 200
            assert capvault.Response(res.status, res.headers, res.read()).json()["bodyBytes"] == 300_000


def test_errors_carry_reasons_from_the_one_table(broker):
    with capvault.connect(broker.address, "not-a-token") as nobody:
        with pytest.raises(capvault.Unauthenticated) as bad:
            nobody.fetch(broker.connection, "GET", "/repos/acme/widgets")
    assert bad.value.reason == "CAPABILITY_MALFORMED"
    minted = mint(broker, [(broker.connection, "GET", "/repos/acme/")])
    with capvault.connect(broker.address, minted.token) as agent:
        with pytest.raises(capvault.InvalidArgument) as path:
            agent.fetch(broker.connection, "GET", "https://evil.example/")
        with pytest.raises(capvault.PermissionDenied) as grant:
            agent.fetch(broker.connection, "POST", "/repos/acme/widgets", json={"a": 1})
    for err in (bad.value, path.value, grant.value):
        name, number, _ = capvault.REASONS[err.reason]
        assert err.code.name == name and err.code.value[0] == number
    assert path.value.reason == "PATH_INVALID"
    assert grant.value.reason == "NO_MATCHING_GRANT"
    # A client-side failure has no broker reason.
    with capvault.connect("127.0.0.1:1", "t") as nowhere:
        with pytest.raises(capvault.Unavailable) as unreachable:
            nowhere.fetch("c", "GET", "/", timeout=2)
    assert unreachable.value.reason == "UNKNOWN"


def test_asyncio_client(broker):
    minted = mint(broker, [(broker.connection, "GET", "/repos/acme/")])

    async def main():
        async with capvault.aio.connect(broker.address, minted.token) as agent:
            narrowed = await agent.attenuate_offline(path_prefix="/repos/acme/widgets/")
            sub = agent.with_token(narrowed)
            res = await sub.fetch(broker.connection, "GET", "/repos/acme/widgets/pulls")
            assert res.status == 200 and res.json()["url"] == "/repos/acme/widgets/pulls"
            with pytest.raises(capvault.PermissionDenied) as denied:
                await sub.fetch(broker.connection, "GET", "/repos/acme/secrets")
            assert denied.value.reason == "CAPABILITY_CHECK_FAILED"
            streamed = await sub.stream(broker.connection, "GET", "/repos/acme/widgets/readme")
            assert streamed.status == 200
            assert b"readme" in await streamed.read()
            with pytest.raises(capvault.DeadlineExceeded):
                await sub.fetch(broker.connection, "GET", "/repos/acme/widgets", timeout=0.000001)

    asyncio.run(main())
