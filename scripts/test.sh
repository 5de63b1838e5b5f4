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

# A CA, a server certificate for 127.0.0.1 and a client certificate in `dir`, laid out as
# Docker's DOCKER_CERT_PATH (ca.pem, cert.pem, key.pem) plus the server's pair.
make_engine_certificates() {
    local dir=$1
    local key=(-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes)
    openssl req -x509 "${key[@]}" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" -days 2 \
        -subj /CN=ccvm-test-engine-ca 2>/dev/null
    openssl req "${key[@]}" -keyout "$dir/server-key.pem" -out "$dir/server.csr" \
        -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$dir/server.ext"
    openssl x509 -req -in "$dir/server.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -days 2 -extfile "$dir/server.ext" -out "$dir/server-cert.pem" 2>/dev/null
    openssl req "${key[@]}" -keyout "$dir/key.pem" -out "$dir/client.csr" \
        -subj /CN=ccvm-test-client 2>/dev/null
    printf 'extendedKeyUsage=clientAuth\n' >"$dir/client.ext"
    openssl x509 -req -in "$dir/client.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
        -CAcreateserial -days 2 -extfile "$dir/client.ext" -out "$dir/cert.pem" 2>/dev/null
}

# A Docker engine of the tests' own, as Debian's docker.io runs it without a bridge or
# iptables: containers use host networking to reach the node on loopback. It listens on a unix
# socket and, for the remote-engine tests, on a loopback TCP port that requires mutual TLS.
start_docker_engine() {
    local root port
    root=$(mktemp -d /tmp/ccvm-docker.XXXXXX)
    port=$((20000 + RANDOM % 20000))
    mkdir "$root/certs"
    make_engine_certificates "$root/certs"
    dockerd --storage-driver=vfs --iptables=false --ip6tables=false --bridge=none \
        -H "unix://$root/docker.sock" -H "tcp://127.0.0.1:$port" --tlsverify \
        --tlscacert "$root/certs/ca.pem" --tlscert "$root/certs/server-cert.pem" \
        --tlskey "$root/certs/server-key.pem" --data-root "$root/data" \
        --exec-root "$root/exec" --pidfile "$root/docker.pid" >"$root/dockerd.log" 2>&1 &
    trap "stop_docker_engine '$root'" EXIT
    for _ in $(seq 60); do
        if docker -H "unix://$root/docker.sock" version >/dev/null 2>&1; then
            export CCVM_TEST_DOCKER_HOST="unix://$root/docker.sock"
            export CCVM_TEST_DOCKER_TLS_HOST="tcp://127.0.0.1:$port"
            export CCVM_TEST_DOCKER_CERT_PATH="$root/certs"
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
