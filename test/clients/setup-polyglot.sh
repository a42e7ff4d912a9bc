#!/usr/bin/env bash
# Installs what the polyglot tests (test/clients/polyglot.test.ts) need, once, under .cache/polyglot (idempotent and
# cached: a rerun with nothing changed takes a second):
#   - a Python 3.11 venv with the pinned test requirements and the capvault client built from clients/python
#     (`pip install ./clients/python`, which generates the stubs from proto/);
#   - grpcurl, built with `go install` from the Go module proxy;
#   - the Go client's modules (clients/go, go.sum committed), and examples/go-agent built once.
# .ci/run calls it; the test calls it too, so `npx vitest run test/clients/polyglot.test.ts` works on its own.
# Prints `python=...` and `grpcurl=...` lines.
set -euo pipefail
cd "$(dirname "$0")/../.."
CACHE=.cache/polyglot
GRPCURL_VERSION=v1.9.3
mkdir -p "$CACHE/bin"

# Python: a venv keyed by everything that goes into it.
PYTHON="${CAPVAULT_PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || {
  echo "Python 3.11 is needed (biscuit-python 0.4.0 ships cp311 wheels); set CAPVAULT_PYTHON" >&2; exit 1; }
stamp=$( (cat clients/python/requirements-test.txt; "$PYTHON" --version; \
  find clients/python -type f \( -name '*.py' -o -name '*.toml' -o -name '*.txt' \) -not -path '*/build/*' -not -path '*.egg-info*' \
    -not -path '*/tests/*' | LC_ALL=C sort | xargs cat; find proto -type f | LC_ALL=C sort | xargs cat) | sha256sum | cut -c1-16)
VENV="$CACHE/venv"
if [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "installing the Python client into $VENV" >&2
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r clients/python/requirements-test.txt >&2
  "$VENV/bin/pip" install --quiet --disable-pip-version-check --force-reinstall --no-deps ./clients/python >&2
  "$VENV/bin/pip" check >&2
  rm -rf clients/python/build clients/python/*.egg-info
  echo "$stamp" > "$VENV/.stamp"
fi

# grpcurl
GRPCURL="$CACHE/bin/grpcurl"
if [ "$(cat "$CACHE/bin/.grpcurl-version" 2>/dev/null)" != "$GRPCURL_VERSION" ] || [ ! -x "$GRPCURL" ]; then
  echo "building grpcurl $GRPCURL_VERSION with go install" >&2
  GOBIN="$PWD/$CACHE/bin" CGO_ENABLED=0 go install "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION" >&2
  echo "$GRPCURL_VERSION" > "$CACHE/bin/.grpcurl-version"
fi

# The Go client's dependencies (and a build, so the test's `go test` only compiles the tests).
(cd clients/go && go mod download && go build ./... && go vet ./...) >&2
(cd examples/go-agent && go build -o /dev/null .) >&2

echo "python=$PWD/$VENV/bin/python"
echo "grpcurl=$PWD/$GRPCURL"
