#!/usr/bin/env bash
# Runs mcpo on config.example.json on a fresh machine: installs the example's Python server
# into .example-venv/ (python3 on PATH then means that venv), builds mcpo and starts it.
# Extra arguments go to mcpo, e.g. `scripts/run-example.sh --port 9000 --api-key secret`.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
if [ ! -x .example-venv/bin/mcp-server-time ]; then
  python3 -m venv .example-venv
  .example-venv/bin/pip install --quiet --disable-pip-version-check mcp-server-time==2026.10.19
fi
export PATH="$root/.example-venv/bin:$PATH"
cargo build --release --locked
exec ./target/release/mcpo --config config.example.json "$@"
