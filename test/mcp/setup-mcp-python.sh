#!/usr/bin/env bash
# A Python 3.11 venv with the official `mcp` package (test/mcp/python/requirements.txt, pinned), for the MCP tests
# (test/mcp/capability-tools.test.ts). Idempotent and cached under .cache/mcp-venv: a rerun with nothing changed takes
# a second. .ci/run calls it; the test calls it too, so the test file runs on its own. Prints `python=...`.
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${CAPVAULT_PYTHON:-python3}"
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 10) else 1)' || { echo "Python >= 3.10 is needed for mcp" >&2; exit 1; }
VENV=.cache/mcp-venv
stamp=$( (cat test/mcp/python/requirements.txt; "$PYTHON" --version) | sha256sum | cut -c1-16)
if [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "installing the Python MCP client into $VENV" >&2
  rm -rf "$VENV"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check -r test/mcp/python/requirements.txt >&2
  "$VENV/bin/pip" check >&2
  echo "$stamp" > "$VENV/.stamp"
fi
echo "python=$PWD/$VENV/bin/python"
