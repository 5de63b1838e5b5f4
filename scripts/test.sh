#!/usr/bin/env bash
# Runs ccvm's whole test suite on a fresh machine: installs the Rust targets and the Node
# packages the tests use, then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 x86_64-unknown-linux-musl
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)
cargo test --workspace
