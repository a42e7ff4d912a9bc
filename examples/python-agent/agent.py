"""An agent that reads a repository's open issues through a narrowed capability, and handles a denial.

    CAPVAULT_ADDR=127.0.0.1:50051 CAPVAULT_TOKEN=... CAPVAULT_CONNECTION=conn_... python agent.py acme/widgets

It narrows its own capability offline (biscuit-python) to GET under /repos/<repo>/ for five minutes, as it would
before handing it to a sub-agent, reads the issues with the narrower token, then shows what a refusal looks like.
"""
import os
import sys

import capvault


def main(repo: str) -> int:
    address = os.environ.get("CAPVAULT_ADDR", "127.0.0.1:50051")
    connection = os.environ["CAPVAULT_CONNECTION"]
    with capvault.connect(address, os.environ["CAPVAULT_TOKEN"]) as cv:
        narrowed = cv.attenuate_offline(methods=["GET"], path_prefix=f"/repos/{repo}/", ttl=300)
        reader = cv.with_token(narrowed)

        res = reader.fetch(connection, "GET", f"/repos/{repo}/issues", query={"state": "open"})
        print(f"GET /repos/{repo}/issues -> HTTP {res.status}")
        print(res.text())

        try:
            reader.fetch(connection, "GET", "/repos/acme/secrets")
        except capvault.PermissionDenied as err:
            # Branch on the stable reason, never on the message.
            if err.reason == "CAPABILITY_CHECK_FAILED":
                print(f"denied as expected: {err.reason} (block {err.metadata.get('block')}, check {err.metadata.get('check')})")
            else:
                print(f"denied: {err.reason}: {err.message}")
        except capvault.Unauthenticated as err:
            print(f"the capability is no longer valid ({err.reason}): ask for a new one")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "acme/widgets"))
