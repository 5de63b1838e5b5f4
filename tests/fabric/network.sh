#!/usr/bin/env bash
# A single-orderer, single-peer Hyperledger Fabric network on 127.0.0.1, without Docker, with TLS
# on every endpoint. Works with the Fabric 2.5 and 3.x release archives (bin/ and config/).
#
#   network.sh up WORKDIR FABRIC_DIR BUILDER_DIR
#       Generates crypto material and the genesis block of channel "mychannel" (one orderer org,
#       one peer org Org1MSP, etcdraft, V2_5 application capabilities), starts an orderer and a
#       peer on free loopback ports, joins both to the channel and waits until they are ready.
#       BUILDER_DIR (bin/detect, build, release, run) is the peer's only chaincode builder.
#       Writes WORKDIR/env.sh (source it to run the peer CLI as Org1 admin), the same settings
#       as NAME=VALUE lines in WORKDIR/env (for programs), and WORKDIR/ports.
#   network.sh deploy WORKDIR PACKAGE_FILE NAME [SEQUENCE [COLLECTIONS_JSON]]
#       Installs, approves and commits a chaincode package (version = sequence, default 1, the
#       channel's default endorsement policy, and the private data collections of
#       COLLECTIONS_JSON if given); prints its package id on stdout.
#   network.sh down WORKDIR
#       Stops the peer (with the chaincode processes it started) and the orderer.
#
# Environment:
#   FABRIC_NET_BUILDER_ENV   variables the peer passes on to the builder (space separated)
#   FABRIC_NET_LOG_SPEC      FABRIC_LOGGING_SPEC of the orderer and the peer
#                            (default: grpc=warning:info)
#   FABRIC_NET_TIMEOUT       seconds to wait for each readiness step (default: 30)
#   FABRIC_NET_CC_STARTUP    chaincode startup timeout of the peer (default: 60s)
#
# Needs bash, coreutils, sed, awk, find, setsid; uses curl for HTTP when present.
set -euo pipefail

CHANNEL=mychannel
BUILDER_NAME=ccvm
BUILDER_ENV=${FABRIC_NET_BUILDER_ENV:-"HOME PATH TMPDIR RUST_LOG RUST_BACKTRACE CCVM_LOG CCVM_WASM_FILE CCVM_WASM_TX_DEADLINE_MS CCVM_WASM_MAX_MEMORY_BYTES CCVM_WASM_MAX_STACK_BYTES CCVM_WASM_MAX_MESSAGE_BYTES"}
LOG_SPEC=${FABRIC_NET_LOG_SPEC:-grpc=warning:info}
LOG_FORMAT='%{time:2006-01-02 15:04:05.000 MST} [%{module}] %{shortfunc} -> %{level:.4s} %{id:03x} %{message}'
TIMEOUT=${FABRIC_NET_TIMEOUT:-30}
CC_STARTUP=${FABRIC_NET_CC_STARTUP:-60s}
# Port reservations shared by concurrent networks on this machine (one directory per port).
PORT_LOCKS="${TMPDIR:-/tmp}/fabric-net-ports"

log() { echo "network.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }
usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' >&2
    exit 2
}

# --- helpers -------------------------------------------------------------------------------

abspath() { (CDPATH="" cd -- "$1" && pwd); }

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Prints a port nobody listens on and reserves it for WORKDIR. Ports come from below Linux's
# ephemeral range so that outgoing connections do not take them in the meantime; reservations
# older than 10 minutes are stale (a running network's ports are caught by the probe).
reserve_port() {
    mkdir -p "$PORT_LOCKS"
    local p i
    for ((i = 0; i < 500; i++)); do
        p=$((10000 + (RANDOM * 32768 + RANDOM) % 22000))
        if [[ -d $PORT_LOCKS/$p && -n $(find "$PORT_LOCKS/$p" -maxdepth 0 -mmin +10 2>/dev/null) ]]; then
            rm -rf "$PORT_LOCKS/$p"
        fi
        port_in_use "$p" && continue
        mkdir "$PORT_LOCKS/$p" 2>/dev/null || continue
        echo "$WORKDIR" >"$PORT_LOCKS/$p/owner"
        echo "$p"
        return 0
    done
    die "no free port found"
}

release_ports() {
    local f p
    [[ -f $WORKDIR/ports ]] || return 0
    while IFS='=' read -r _ p; do
        f=$PORT_LOCKS/$p/owner
        if [[ $(cat "$f" 2>/dev/null) == "$WORKDIR" ]]; then rm -rf "${PORT_LOCKS:?}/$p"; fi
    done <"$WORKDIR/ports"
}

# HTTP GET of http://$1 on stdout.
http_get() {
    if command -v curl >/dev/null; then
        curl -fsS --max-time 5 "http://$1"
    else
        local host=${1%%/*} path=/${1#*/}
        exec 3<>"/dev/tcp/${host%:*}/${host##*:}"
        printf 'GET %s HTTP/1.0\r\nHost: %s\r\n\r\n' "$path" "$host" >&3
        sed '1,/^\r\{0,1\}$/d' <&3
        exec 3<&-
    fi
}

# Runs a command with no Fabric variables inherited from the caller's environment.
clean_env() {
    local v args=()
    for v in $(compgen -e); do
        case $v in CORE_* | ORDERER_* | FABRIC_* | CONFIGTX_*) args+=(-u "$v") ;; esac
    done
    exec env "${args[@]}" "$@"
}

# Replaces the Fabric variables of this shell with the Org1 admin's (WORKDIR/env.sh).
load_admin_env() {
    local v
    for v in $(compgen -e); do
        case $v in CORE_* | ORDERER_* | FABRIC_* | CONFIGTX_*) unset "$v" ;; esac
    done
    # shellcheck source=/dev/null
    source "$WORKDIR/env.sh"
}

# Runs a command as the Org1 admin.
as_admin() { (load_admin_env && "$@"); }

dump_logs() {
    local f
    for f in "$WORKDIR"/orderer.log "$WORKDIR"/peer.log; do
        [[ -f $f ]] || continue
        echo "----- last lines of $f -----" >&2
        tail -n 60 "$f" >&2
    done
}

# Starts a daemon in WORKDIR in its own session (process group id = pid), with no Fabric variables
# from the caller's environment, logging to WORKDIR/NAME.log.
start_daemon() {
    local name=$1
    shift
    (cd "$WORKDIR" && clean_env setsid "$@") >"$WORKDIR/$name.log" 2>&1 </dev/null &
    echo $! >"$WORKDIR/$name.pid"
}

alive() { [[ -f $WORKDIR/$1.pid ]] && kill -0 "$(cat "$WORKDIR/$1.pid")" 2>/dev/null; }

# wait_for DESCRIPTION DAEMON COMMAND...: retries COMMAND until it succeeds, DAEMON dies or
# TIMEOUT seconds pass.
wait_for() {
    local what=$1 daemon=$2 deadline=$((SECONDS + TIMEOUT)) out
    shift 2
    while :; do
        if out=$("$@" 2>&1); then return 0; fi
        if ! alive "$daemon"; then
            log "$daemon exited while waiting for $what"
            break
        fi
        if ((SECONDS >= deadline)); then
            log "timed out after ${TIMEOUT}s waiting for $what"
            break
        fi
        sleep 0.2
    done
    echo "$out" | tail -n 20 >&2
    return 1
}

# Stops daemons by process group (so with their children): SIGTERM, then SIGKILL after 10 s.
stop_daemons() {
    local name pid pids=() i live
    for name in "$@"; do
        [[ -f $WORKDIR/$name.pid ]] || continue
        pid=$(cat "$WORKDIR/$name.pid")
        pids+=("$pid")
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for ((i = 0; i < 150; i++)); do
        live=()
        for pid in "${pids[@]}"; do
            if kill -0 -- "-$pid" 2>/dev/null; then live+=("$pid"); fi
        done
        ((${#live[@]})) || break
        if ((i == 100)); then
            log "killing process groups ${live[*]}"
            for pid in "${live[@]}"; do kill -KILL -- "-$pid" 2>/dev/null || true; done
        fi
        sleep 0.1
    done
    for name in "$@"; do rm -f "$WORKDIR/$name.pid"; done
}

# Copies core.yaml with vm.endpoint emptied and chaincode.externalBuilders replaced by BUILDER_DIR.
write_core_yaml() {
    local src=$1 dst=$2 builder=$3 env_list
    env_list=$(printf '%s\n' $BUILDER_ENV)
    awk -v name="$BUILDER_NAME" -v path="$builder" -v envs="$env_list" '
        function indent_of(s) { match(s, /^[ \t]*/); return RLENGTH }
        function q(s) { gsub(/\\/, "\\\\", s); gsub(/"/, "\\\"", s); return "\"" s "\"" }
        /^[A-Za-z]/ { section = $0; sub(/:.*/, "", section); skipping = 0 }
        skipping {
            if ($0 ~ /^[ \t]*(#.*)?$/) { held = held $0 "\n"; next }
            i = indent_of($0)
            if (i > key_indent || (i == key_indent && substr($0, i + 1, 1) == "-")) { held = ""; next }
            printf "%s", held; held = ""; skipping = 0
        }
        section == "vm" && !vm_done && /^[ \t]+endpoint:/ {
            match($0, /^[ \t]*/); print substr($0, 1, RLENGTH) "endpoint: \"\""; vm_done = 1; next
        }
        section == "chaincode" && /^[ \t]+externalBuilders:/ {
            key_indent = indent_of($0); pad = substr($0, 1, key_indent)
            print pad "externalBuilders:"
            print pad "  - name: " q(name)
            print pad "    path: " q(path)
            print pad "    propagateEnvironment:"
            n = split(envs, e, "\n")
            for (i = 1; i <= n; i++) if (e[i] != "") print pad "      - " e[i]
            skipping = 1; eb_done = 1; next
        }
        { print }
        END { printf "%s", held; if (!vm_done || !eb_done) exit 1 }
    ' "$src" >"$dst" || die "unexpected layout of $src"
}

# --- up ------------------------------------------------------------------------------------

cmd_up() {
    [[ $# -eq 3 ]] || usage
    [[ -d $2 ]] || die "no Fabric directory $2"
    [[ -d $3 ]] || die "no builder directory $3"
    mkdir -p "$1"
    WORKDIR=$(abspath "$1")
    local fabric builder f
    fabric=$(abspath "$2")
    builder=$(abspath "$3")
    local bin=$fabric/bin
    for f in peer orderer configtxgen cryptogen osnadmin; do
        [[ -x $bin/$f ]] || die "$bin/$f not found"
    done
    for f in core.yaml orderer.yaml; do
        [[ -f $fabric/config/$f ]] || die "$fabric/config/$f not found"
    done
    [[ -x $builder/bin/detect ]] || die "$builder/bin/detect not found"
    if alive orderer || alive peer; then die "a network is already running in $WORKDIR"; fi

    # Stop whatever was started if any step fails.
    trap 'rc=$?; if ((rc)); then dump_logs; log "up failed, stopping"; cmd_down "$WORKDIR" || true; fi' EXIT

    release_ports
    rm -rf "$WORKDIR"/{crypto,orderer,peer,channel} "$WORKDIR"/{env.sh,env,ports,*.log}
    mkdir -p "$WORKDIR"/{orderer,peer,channel}

    local p_orderer p_cluster p_admin p_orderer_ops p_peer p_cc p_ops
    p_orderer=$(reserve_port)
    p_cluster=$(reserve_port)
    p_admin=$(reserve_port)
    p_orderer_ops=$(reserve_port)
    p_peer=$(reserve_port)
    p_cc=$(reserve_port)
    p_ops=$(reserve_port)
    cat >"$WORKDIR/ports" <<EOF
orderer=$p_orderer
orderer_cluster=$p_cluster
orderer_admin=$p_admin
orderer_operations=$p_orderer_ops
peer=$p_peer
peer_chaincode=$p_cc
peer_operations=$p_ops
EOF

    # Crypto material.
    cat >"$WORKDIR/crypto-config.yaml" <<EOF
OrdererOrgs:
  - Name: OrdererOrg
    Domain: example.com
    EnableNodeOUs: false
    Specs:
      - Hostname: orderer
        SANS: [localhost, 127.0.0.1]
PeerOrgs:
  - Name: Org1
    Domain: org1.example.com
    EnableNodeOUs: true
    Template:
      Count: 1
      SANS: [localhost, 127.0.0.1]
    Users:
      Count: 1
EOF
    "$bin/cryptogen" generate --config "$WORKDIR/crypto-config.yaml" --output "$WORKDIR/crypto" >/dev/null

    local oorg=$WORKDIR/crypto/ordererOrganizations/example.com
    local porg=$WORKDIR/crypto/peerOrganizations/org1.example.com
    local otls=$oorg/orderers/orderer.example.com/tls
    local ptls=$porg/peers/peer0.org1.example.com/tls

    # Channel genesis block.
    cat >"$WORKDIR/channel/configtx.yaml" <<EOF
Organizations:
  - &OrdererOrg
    Name: OrdererOrg
    ID: OrdererMSP
    MSPDir: $oorg/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Writers: {Type: Signature, Rule: "OR('OrdererMSP.member')"}
      Admins: {Type: Signature, Rule: "OR('OrdererMSP.admin')"}
    OrdererEndpoints:
      - 127.0.0.1:$p_orderer
  - &Org1
    Name: Org1MSP
    ID: Org1MSP
    MSPDir: $porg/msp
    Policies:
      Readers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.peer', 'Org1MSP.client')"}
      Writers: {Type: Signature, Rule: "OR('Org1MSP.admin', 'Org1MSP.client')"}
      Admins: {Type: Signature, Rule: "OR('Org1MSP.admin')"}
      Endorsement: {Type: Signature, Rule: "OR('Org1MSP.peer')"}

Capabilities:
  Channel: &ChannelCapabilities {V2_0: true}
  Orderer: &OrdererCapabilities {V2_0: true}
  Application: &ApplicationCapabilities {V2_5: true}

Application: &ApplicationDefaults
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    LifecycleEndorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
    Endorsement: {Type: ImplicitMeta, Rule: "MAJORITY Endorsement"}
  Capabilities: *ApplicationCapabilities

Orderer: &OrdererDefaults
  OrdererType: etcdraft
  BatchTimeout: 250ms
  BatchSize:
    MaxMessageCount: 100
    AbsoluteMaxBytes: 99 MB
    PreferredMaxBytes: 512 KB
  EtcdRaft:
    Consenters:
      - Host: 127.0.0.1
        Port: $p_cluster
        ClientTLSCert: $otls/server.crt
        ServerTLSCert: $otls/server.crt
    Options:
      TickInterval: 100ms
      ElectionTick: 10
      HeartbeatTick: 1
      MaxInflightBlocks: 5
      SnapshotIntervalSize: 16 MB
  Organizations:
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
    BlockValidation: {Type: ImplicitMeta, Rule: "ANY Writers"}
  Capabilities: *OrdererCapabilities

Channel: &ChannelDefaults
  Policies:
    Readers: {Type: ImplicitMeta, Rule: "ANY Readers"}
    Writers: {Type: ImplicitMeta, Rule: "ANY Writers"}
    Admins: {Type: ImplicitMeta, Rule: "MAJORITY Admins"}
  Capabilities: *ChannelCapabilities

Profiles:
  OneOrgChannel:
    <<: *ChannelDefaults
    Orderer:
      <<: *OrdererDefaults
      Organizations: [*OrdererOrg]
    Application:
      <<: *ApplicationDefaults
      Organizations: [*Org1]
EOF
    (clean_env "$bin/configtxgen" -configPath "$WORKDIR/channel" -profile OneOrgChannel \
        -channelID "$CHANNEL" -outputBlock "$WORKDIR/channel/genesis.block") 2>"$WORKDIR/channel/configtxgen.log" ||
        { cat "$WORKDIR/channel/configtxgen.log" >&2; die "configtxgen failed"; }

    # Orderer: client, cluster (etcdraft) and admin listeners, all with TLS.
    cp "$fabric/config/orderer.yaml" "$WORKDIR/orderer/orderer.yaml"
    local orderer_env=(
        FABRIC_CFG_PATH="$WORKDIR/orderer"
        FABRIC_LOGGING_SPEC="$LOG_SPEC"
        FABRIC_LOGGING_FORMAT="$LOG_FORMAT"
        ORDERER_GENERAL_LISTENADDRESS=127.0.0.1
        ORDERER_GENERAL_LISTENPORT="$p_orderer"
        ORDERER_GENERAL_LOCALMSPID=OrdererMSP
        ORDERER_GENERAL_LOCALMSPDIR="$oorg/orderers/orderer.example.com/msp"
        ORDERER_GENERAL_TLS_ENABLED=true
        ORDERER_GENERAL_TLS_CERTIFICATE="$otls/server.crt"
        ORDERER_GENERAL_TLS_PRIVATEKEY="$otls/server.key"
        ORDERER_GENERAL_TLS_ROOTCAS="[$otls/ca.crt]"
        ORDERER_GENERAL_CLUSTER_LISTENADDRESS=127.0.0.1
        ORDERER_GENERAL_CLUSTER_LISTENPORT="$p_cluster"
        ORDERER_GENERAL_CLUSTER_SERVERCERTIFICATE="$otls/server.crt"
        ORDERER_GENERAL_CLUSTER_SERVERPRIVATEKEY="$otls/server.key"
        ORDERER_GENERAL_CLUSTER_CLIENTCERTIFICATE="$otls/server.crt"
        ORDERER_GENERAL_CLUSTER_CLIENTPRIVATEKEY="$otls/server.key"
        ORDERER_GENERAL_PROFILE_ENABLED=false
        ORDERER_FILELEDGER_LOCATION="$WORKDIR/orderer/ledger"
        ORDERER_CONSENSUS_WALDIR="$WORKDIR/orderer/etcdraft/wal"
        ORDERER_CONSENSUS_SNAPDIR="$WORKDIR/orderer/etcdraft/snapshot"
        ORDERER_CHANNELPARTICIPATION_ENABLED=true
        ORDERER_ADMIN_LISTENADDRESS="127.0.0.1:$p_admin"
        ORDERER_ADMIN_TLS_ENABLED=true
        ORDERER_ADMIN_TLS_CERTIFICATE="$otls/server.crt"
        ORDERER_ADMIN_TLS_PRIVATEKEY="$otls/server.key"
        ORDERER_ADMIN_TLS_CLIENTAUTHREQUIRED=true
        ORDERER_ADMIN_TLS_CLIENTROOTCAS="[$otls/ca.crt]"
        ORDERER_OPERATIONS_LISTENADDRESS="127.0.0.1:$p_orderer_ops"
        ORDERER_METRICS_PROVIDER=prometheus
    )
    # Fabric 2.5 boots from a system channel unless told otherwise; 3.x has no such setting.
    if grep -q 'BootstrapMethod' "$WORKDIR/orderer/orderer.yaml"; then
        orderer_env+=(ORDERER_GENERAL_BOOTSTRAPMETHOD=none)
    fi

    # Peer: TLS with cryptogen's server certificate; chaincode only through the external builder.
    write_core_yaml "$fabric/config/core.yaml" "$WORKDIR/peer/core.yaml" "$builder"
    mkdir -p "$WORKDIR/peer/tmp"
    local peer_env=(
        TMPDIR="$WORKDIR/peer/tmp" # the builders' working directories
        FABRIC_CFG_PATH="$WORKDIR/peer"
        FABRIC_LOGGING_SPEC="$LOG_SPEC"
        FABRIC_LOGGING_FORMAT="$LOG_FORMAT"
        CORE_PEER_ID=peer0.org1.example.com
        CORE_PEER_NETWORKID="net$p_peer"
        CORE_PEER_LISTENADDRESS="127.0.0.1:$p_peer"
        CORE_PEER_ADDRESS="127.0.0.1:$p_peer"
        CORE_PEER_ADDRESSAUTODETECT=false
        CORE_PEER_CHAINCODELISTENADDRESS="127.0.0.1:$p_cc"
        CORE_PEER_CHAINCODEADDRESS="127.0.0.1:$p_cc"
        CORE_PEER_LOCALMSPID=Org1MSP
        CORE_PEER_MSPCONFIGPATH="$porg/peers/peer0.org1.example.com/msp"
        CORE_PEER_FILESYSTEMPATH="$WORKDIR/peer/data"
        CORE_LEDGER_SNAPSHOTS_ROOTDIR="$WORKDIR/peer/snapshots"
        CORE_PEER_TLS_ENABLED=true
        CORE_PEER_TLS_CLIENTAUTHREQUIRED=false
        CORE_PEER_TLS_CERT_FILE="$ptls/server.crt"
        CORE_PEER_TLS_KEY_FILE="$ptls/server.key"
        CORE_PEER_TLS_ROOTCERT_FILE="$ptls/ca.crt"
        CORE_PEER_GOSSIP_BOOTSTRAP="127.0.0.1:$p_peer"
        CORE_PEER_GOSSIP_ENDPOINT="127.0.0.1:$p_peer"
        CORE_PEER_GOSSIP_EXTERNALENDPOINT="127.0.0.1:$p_peer"
        CORE_PEER_GOSSIP_USELEADERELECTION=false
        CORE_PEER_GOSSIP_ORGLEADER=true
        CORE_PEER_PROFILE_ENABLED=false
        CORE_CHAINCODE_STARTUPTIMEOUT="$CC_STARTUP"
        CORE_OPERATIONS_LISTENADDRESS="127.0.0.1:$p_ops"
        CORE_OPERATIONS_TLS_ENABLED=false
        CORE_METRICS_PROVIDER=prometheus
    )

    # CLI environment for the Org1 admin.
    cat >"$WORKDIR/env.sh" <<EOF
# Peer CLI as the Org1 admin of the network in $WORKDIR.
export FABRIC_BIN="$bin"
export PATH="$bin:\$PATH"
export FABRIC_CFG_PATH="$WORKDIR/peer"
export CHANNEL_NAME="$CHANNEL"
export FABRIC_LOGGING_SPEC="grpc=warning:info"
export CORE_PEER_ADDRESS="127.0.0.1:$p_peer"
export CORE_PEER_LOCALMSPID=Org1MSP
export CORE_PEER_MSPCONFIGPATH="$porg/users/Admin@org1.example.com/msp"
export CORE_PEER_TLS_ENABLED=true
export CORE_PEER_TLS_ROOTCERT_FILE="$porg/tlsca/tlsca.org1.example.com-cert.pem"
export ORDERER_ADDRESS="127.0.0.1:$p_orderer"
export ORDERER_CA="$oorg/tlsca/tlsca.example.com-cert.pem"
export ORDERER_ADMIN_ADDRESS="127.0.0.1:$p_admin"
export OPERATIONS_ADDRESS="127.0.0.1:$p_ops"
EOF
    sed -n '/^export PATH=/d; s/^export \([A-Z_]*\)="\{0,1\}\([^"]*\)"\{0,1\}$/\1=\2/p' \
        "$WORKDIR/env.sh" >"$WORKDIR/env"

    start_daemon orderer env "${orderer_env[@]}" "$bin/orderer"
    start_daemon peer env "${peer_env[@]}" "$bin/peer" node start

    local osnadmin=("$bin/osnadmin" channel)
    local osn_tls=(
        -o "127.0.0.1:$p_admin" --ca-file "$otls/ca.crt"
        --client-cert "$oorg/users/Admin@example.com/tls/client.crt"
        --client-key "$oorg/users/Admin@example.com/tls/client.key"
    )

    wait_for "the orderer's admin endpoint" orderer "${osnadmin[@]}" list "${osn_tls[@]}"
    "${osnadmin[@]}" join --channelID "$CHANNEL" --config-block "$WORKDIR/channel/genesis.block" \
        "${osn_tls[@]}" >"$WORKDIR/channel/osnadmin-join.log" 2>&1 ||
        { cat "$WORKDIR/channel/osnadmin-join.log" >&2; die "osnadmin channel join failed"; }
    wait_for "a Raft leader on $CHANNEL" orderer \
        grep_http "127.0.0.1:$p_orderer_ops/metrics" "^consensus_etcdraft_is_leader{channel=\"$CHANNEL\"} 1"

    wait_for "the peer" peer as_admin "$bin/peer" channel list
    as_admin "$bin/peer" channel join -b "$WORKDIR/channel/genesis.block" >"$WORKDIR/channel/peer-join.log" 2>&1 ||
        { cat "$WORKDIR/channel/peer-join.log" >&2; die "peer channel join failed"; }
    wait_for "the peer to join $CHANNEL" peer as_admin "$bin/peer" channel getinfo -c "$CHANNEL"
    wait_for "the peer's metrics" peer grep_http "127.0.0.1:$p_ops/metrics" '^ledger_blockchain_height'

    trap - EXIT
    log "up: orderer 127.0.0.1:$p_orderer, peer 127.0.0.1:$p_peer, operations 127.0.0.1:$p_ops"
}

# grep_http ADDRESS/PATH REGEX: succeeds if the response has a line matching REGEX.
grep_http() {
    local body
    body=$(http_get "$1") || return 1
    grep -q -- "$2" <<<"$body"
}

# --- down ----------------------------------------------------------------------------------

cmd_down() {
    [[ $# -eq 1 ]] || usage
    [[ -d $1 ]] || return 0
    WORKDIR=$(abspath "$1")
    stop_daemons peer orderer
    release_ports
}

# --- deploy --------------------------------------------------------------------------------

cmd_deploy() {
    [[ $# -ge 3 && $# -le 5 ]] || usage
    [[ -f $1/env.sh ]] || die "no network in $1"
    WORKDIR=$(abspath "$1")
    local pkg name=$3 seq=${4:-1} id out
    [[ -f $2 ]] || die "$2 not found"
    pkg=$(abspath "$(dirname "$2")")/$(basename "$2")
    load_admin_env
    local orderer=(-o "$ORDERER_ADDRESS" --tls --cafile "$ORDERER_CA")
    local def=(--channelID "$CHANNEL" --name "$name" --version "$seq" --sequence "$seq")
    if [[ -n ${5:-} ]]; then
        def+=(--collections-config "$(abspath "$(dirname "$5")")/$(basename "$5")")
    fi

    id=$(peer lifecycle chaincode calculatepackageid "$pkg") || die "not a chaincode package: $pkg"
    if ! out=$(peer lifecycle chaincode install "$pkg" 2>&1); then
        grep -q 'already successfully installed' <<<"$out" || { echo "$out" >&2; die "install failed"; }
    fi
    out=$(peer lifecycle chaincode queryinstalled 2>&1) || { echo "$out" >&2; die "queryinstalled failed"; }
    grep -qF "Package ID: $id," <<<"$out" || { echo "$out" >&2; die "package $id is not installed"; }

    peer lifecycle chaincode approveformyorg "${orderer[@]}" "${def[@]}" --package-id "$id" \
        --waitForEvent >&2 || die "approveformyorg failed"
    out=$(peer lifecycle chaincode checkcommitreadiness "${def[@]}" --output json 2>&1) ||
        { echo "$out" >&2; die "checkcommitreadiness failed"; }
    grep -q '"Org1MSP": true' <<<"$out" || { echo "$out" >&2; die "definition not approved by Org1MSP"; }
    peer lifecycle chaincode commit "${orderer[@]}" "${def[@]}" --peerAddresses "$CORE_PEER_ADDRESS" \
        --tlsRootCertFiles "$CORE_PEER_TLS_ROOTCERT_FILE" --waitForEvent >&2 || die "commit failed"
    out=$(peer lifecycle chaincode querycommitted --channelID "$CHANNEL" --name "$name" 2>&1) ||
        { echo "$out" >&2; die "querycommitted failed"; }
    echo "$out" >&2
    grep -q "Sequence: $seq," <<<"$out" || die "definition of $name at sequence $seq not committed"
    echo "$id"
}

case ${1:-} in
    up) shift && cmd_up "$@" ;;
    down) shift && cmd_down "$@" ;;
    deploy) shift && cmd_deploy "$@" ;;
    *) usage ;;
esac
