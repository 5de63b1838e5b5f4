#!/usr/bin/env bash
# Runs ccvm's whole test suite on a fresh machine: installs the Rust targets and the Node
# packages the tests use, starts a private Docker engine for the user chaincode tests (unless
# CCVM_TEST_DOCKER_HOST already names one), then runs every test of the workspace.
set -euo pipefail
cd "$(dirname "$0")/.."

rustup target add wasm32-wasip2 x86_64-unknown-linux-musl
(cd tests/node && npm ci --no-audit --no-fund --loglevel=error)

# Stops the engine started below, waits for it to exit, and removes its files.
stop_docker_engine() {
    local root=$1 pid
    pid=$(cat "$root/docker.pid" 2>/dev/null) || true
    if [[ -n "$pid" ]]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 30); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 1
        done
    fi
    umount "$root"/exec/netns/* 2>/dev/null || true
    rm -rf "$root" 2>/dev/null || true
}

# A Docker engine of the tests' own, as Debian's docker.io runs it without a bridge or
# iptables: containers use host networking to reach the node on loopback.
start_docker_engine() {
    local root
    root=$(mktemp -d /tmp/ccvm-docker.XXXXXX)
    dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
        -H "unix://$root/docker.sock" --data-root "$root/data" --exec-root "$root/exec" \
        --pidfile "$root/docker.pid" >"$root/dockerd.log" 2>&1 &
    trap "stop_docker_engine '$root'" EXIT
    for _ in $(seq 60); do
        if docker -H "unix://$root/docker.sock" version >/dev/null 2>&1; then
            export CCVM_TEST_DOCKER_HOST="unix://$root/docker.sock"
            return
        fi
        sleep 1
    done
    echo "the Docker engine did not start; its log:" >&2
    cat "$root/dockerd.log" >&2
    return 1
}

if [[ -z "${CCVM_TEST_DOCKER_HOST:-}" ]]; then
    if command -v dockerd >/dev/null 2>&1 && [[ $(id -u) == 0 ]]; then
        start_docker_engine
    else
        echo "no Docker engine: the Docker tests will be skipped (CI requires them)" >&2
    fi
fi

cargo test --workspace
