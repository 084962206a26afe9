# Sourced by scripts/test-web.sh and scripts/test-kotlin.sh: a real mock-apple and siwa-server
# for a browser to sign in through. The fake Apple is on another site than the server
# (http://localhost and http://127.0.0.1), so Apple's form post is really cross-site.
# Sourcing it makes $work (a temporary folder) and the array `pids`: on exit the processes are
# killed and the folder removed. start_stack expects $bin (the binaries).

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_for() {
    for _ in $(seq 1 100); do
        curl -fs "$1" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "$1 did not come up" >&2
    exit 1
}

json_field() {
    python3 -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"
}

# start_stack APP_REDIRECT_URIS [VARIABLE=value ...]: starts both, with a developer key the mock
# made, the web flow on, and the server's extra variables (which win over the ones here); sets
# $mock, $mock_port and $server. The server's port is $SIWA_STACK_PORT when set.
start_stack() {
    local redirects=$1 key server_port
    shift
    mock_port=$(free_port)
    server_port=${SIWA_STACK_PORT:-$(free_port)}
    mock="http://localhost:$mock_port"
    server="http://127.0.0.1:$server_port"
    "$bin/mock-apple" --port "$mock_port" --base-url "$mock" >"$work/mock.log" 2>&1 &
    pids+=($!)
    wait_for "http://127.0.0.1:$mock_port/auth/keys"
    key=$(curl -fs -X POST "http://127.0.0.1:$mock_port/mock/developer-keys/generate")
    env -i PATH="$PATH" HOME="$HOME" RUST_LOG=warn \
        SIWA_HOST=127.0.0.1 PORT="$server_port" \
        SIWA_DATABASE_URL="sqlite://$work/siwa.db?mode=rwc" \
        SIWA_APPLE_CLIENT_IDS=com.example.app \
        SIWA_APPLE_BASE_URL="$mock" \
        SIWA_APPLE_TEAM_ID="$(echo "$key" | json_field teamId)" \
        SIWA_APPLE_KEY_ID="$(echo "$key" | json_field keyId)" \
        SIWA_APPLE_PRIVATE_KEY="$(echo "$key" | json_field privateKeyPem)" \
        SIWA_APPLE_SERVICES_ID=com.example.web \
        SIWA_PUBLIC_URL="$server" \
        SIWA_APP_REDIRECT_URIS="$redirects" \
        SIWA_REVOCATION_POLL_SECS=1 \
        "$@" "$bin/siwa-server" >"$work/server.log" 2>&1 &
    pids+=($!)
    wait_for "$server/healthz"
}

# The two logs' last lines, after a failure.
show_logs() {
    echo "--- siwa-server's log"; tail -n 40 "$work/server.log"
    echo "--- mock-apple's log"; tail -n 20 "$work/mock.log"
}
