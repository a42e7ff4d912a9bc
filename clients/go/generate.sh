#!/usr/bin/env bash
# Run from anywhere. Regenerates clients/go/gen from proto/capvault/v1 with buf and the Go plugins pinned in go.mod.
# `clients/go/generate.sh --check` fails if the committed stubs differ from what the protos generate.
set -euo pipefail
cd "$(dirname "$0")/../.."
npx buf generate --template clients/go/buf.gen.yaml --path proto/capvault
if [ "${1:-}" = "--check" ]; then
  if [ -n "$(git status --porcelain -- clients/go/gen)" ]; then
    git status --short -- clients/go/gen
    echo "clients/go/gen is out of date with proto/: run clients/go/generate.sh and commit the result" >&2
    exit 1
  fi
fi
