"""The live broker these tests run against, from the environment (test/clients/polyglot.test.ts sets it):
CAPVAULT_ADDR, CAPVAULT_OPERATOR_TOKEN, CAPVAULT_TENANT, CAPVAULT_CONNECTION (an account connected through the real
OAuth flow, whose API echoes {method, url, bodyBytes}). Without them the tests fail: they never skip."""
import os
from dataclasses import dataclass

import pytest


@dataclass
class Broker:
    address: str
    operator_token: str
    tenant: str
    connection: str


@pytest.fixture(scope="session")
def broker() -> Broker:
    missing = [k for k in ("CAPVAULT_ADDR", "CAPVAULT_OPERATOR_TOKEN", "CAPVAULT_TENANT", "CAPVAULT_CONNECTION") if not os.environ.get(k)]
    if missing:
        pytest.fail(f"no broker to test against: set {', '.join(missing)} (npx vitest run test/clients/polyglot.test.ts does)")
    return Broker(os.environ["CAPVAULT_ADDR"], os.environ["CAPVAULT_OPERATOR_TOKEN"], os.environ["CAPVAULT_TENANT"],
                  os.environ["CAPVAULT_CONNECTION"])
