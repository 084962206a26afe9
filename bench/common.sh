# What bench/run, bench/compare and bench/profile share: sourced, not run.
#
# Tokens are minted by `mock-apple tokens` (every core signing, the key parsed once) with the
# keys of a mock-apple started on $BENCH_CACHE/keys, and kept there for the next run while they
# are valid (a day): each token is a different user unless asked otherwise, so a run whose every
# request carries a token of its own makes every sign-in a write.

BENCH_CACHE=${BENCH_CACHE:-$HOME/.cache/siwa/bench}
# Users of each token set: disjoint ranges, so no set signs in another's users.
BENCH_FIRST_SEED_ROUTE=0
BENCH_FIRST_WARM_UP=100000000
BENCH_FIRST_APPS_ROUTE=200000000
BENCH_FIRST_APPS_WARM_UP=300000000
BENCH_FIRST_RETURNING=400000000

bench_need() { # command debian-package
    command -v "$1" >/dev/null && return
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null
    fi
    command -v "$1" >/dev/null || { echo "bench: $1 is required (Debian package $2)" >&2; exit 1; }
}

bench_wait_for() { # url
    for _ in $(seq 1 100); do
        curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "bench: $1 did not come up" >&2
    exit 1
}

# Starts mock-apple on PORT with the cached keys; its pid is appended to `pids`.
bench_start_mock() { # bin-dir port log
    mkdir -p "$BENCH_CACHE"
    "$1/mock-apple" --port "$2" --key-dir "$BENCH_CACHE/keys" >"$3" 2>&1 &
    pids+=($!)
    bench_wait_for "http://127.0.0.1:$2/auth/keys"
}

# Writes FILE with COUNT tokens of users FIRST.., one per line (`TOKEN RAW_NONCE` with
# `nonces`), of USERS users (default: one per token); reuses the cached set when it is valid.
bench_tokens() { # bin-dir file count first [nonces|plain] [users]
    local bin=$1 file=$2 count=$3 first=$4 nonces=${5:-plain} users=${6:-$3}
    local cached="$BENCH_CACHE/tokens-$first-$count-$users-$nonces"
    # Valid for a day from minting; reused for 20 hours, and only with the keys they were
    # signed with.
    if [ -s "$cached" ] && [ "$cached" -nt "$BENCH_CACHE/keys/keys.json" ] \
        && [ -n "$(find "$cached" -mmin -1200)" ]; then
        cp "$cached" "$file"
        return
    fi
    local flags=(--count "$count" --first "$first" --users "$users" --lifetime-secs 86400)
    [ "$nonces" = nonces ] && flags+=(--nonces)
    local started=$SECONDS
    "$bin/mock-apple" tokens --key-dir "$BENCH_CACHE/keys" "${flags[@]}" >"$cached.part"
    mv "$cached.part" "$cached"
    echo "   minted $count tokens in $((SECONDS - started)) s" >&2
    cp "$cached" "$file"
}

# A throwaway PostgreSQL (default settings) in DIR on PORT; sets BENCH_PG_URL and stop_pg.
bench_start_postgres() { # dir port
    local pg_bin
    pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
    if [ -z "$pg_bin" ] && [ "$(id -u)" = 0 ]; then
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
        pg_bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    fi
    [ -n "$pg_bin" ] || { echo "bench: PostgreSQL is needed (Debian: postgresql)" >&2; exit 1; }
    BENCH_PG_BIN=$pg_bin BENCH_PG_DIR=$1
    mkdir -p "$1"
    # The server runs as postgres: it must reach its directory.
    [ "$(id -u)" = 0 ] && chmod o+x "$(dirname "$1")" && chown postgres "$1"
    bench_as_pg "$pg_bin/initdb" -D "$1/data" -A trust -U postgres >/dev/null
    bench_as_pg "$pg_bin/pg_ctl" -D "$1/data" -l "$1/log" -w \
        -o "-k $1 -p $2 -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
    stop_pg() { bench_as_pg "$BENCH_PG_BIN/pg_ctl" -D "$BENCH_PG_DIR/data" -m fast -w stop >/dev/null 2>&1 || true; }
    BENCH_PG_URL="postgres://postgres@127.0.0.1:$2/postgres"
}
bench_as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

# wrk's script for a sign-in route: each request the next line of $BENCH_TOKEN_FILE, on
# $BENCH_PATH (`/auth/apple` takes the token; `/v1/auth/apple` the token and its raw nonce).
# Prints `RESULT rps= p50_ms= p99_ms= non2xx= errors= repeated=`, where `repeated` counts the
# requests that came back to a token already sent: the run outgrew its tokens.
bench_sign_in_lua() { # file
    cat >"$1" <<'LUA'
local tokens = {}
for line in io.lines(os.getenv("BENCH_TOKEN_FILE")) do tokens[#tokens + 1] = line end
local path = os.getenv("BENCH_PATH")
sent, repeated = 0, 0
request = function()
  sent = sent + 1
  if sent > #tokens then repeated = sent - #tokens end
  local line = tokens[(sent - 1) % #tokens + 1]
  local token, raw = line:match("^(%S+) (%S+)$")
  local body
  if raw then
    body = '{"identityToken":"' .. token .. '","rawNonce":"' .. raw .. '"}'
  else
    body = '{"identityToken":"' .. line .. '"}'
  end
  return wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
end
LUA
    bench_done_lua >>"$1"
}

# wrk's script for the refresh route: each connection's next request carries the refresh token
# its last answer gave, from a pool filled first with $REFRESH_TOKENS (one fresh session each).
bench_refresh_lua() { # file
    cat >"$1" <<'LUA'
local pool = {}
for line in io.lines(os.getenv("REFRESH_TOKENS")) do pool[#pool + 1] = line end
request = function()
  return wrk.format("POST", "/v1/auth/refresh", {["Content-Type"] = "application/json"},
                    '{"refreshToken":"' .. table.remove(pool) .. '"}')
end
response = function(status, headers, body)
  local token = body:match('"refreshToken":"([^"]+)"')
  if token then pool[#pool + 1] = token end
end
LUA
    bench_done_lua >>"$1"
}

# The RESULT line, with `repeated` summed over wrk's threads (a global of each thread's script).
bench_done_lua() {
    cat <<'LUA'
local threads = {}
setup = function(thread) threads[#threads + 1] = thread end
done = function(summary, latency, requests)
  local repeated = 0
  for _, thread in ipairs(threads) do repeated = repeated + (thread:get("repeated") or 0) end
  io.write(string.format("RESULT rps=%.0f p50_ms=%.2f p99_ms=%.2f non2xx=%d errors=%d repeated=%d\n",
    summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    repeated))
end
LUA
}

# COUNT fresh sessions' refresh tokens, one per line: a token minted by the mock, signed in
# through POST /v1/auth/apple.
bench_sessions() { # mock-port siwa-port count file
    python3 - "$1" "$2" "$3" >"$4" <<'PY'
import json, sys, urllib.request
mock, siwa, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
def post(url, body):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"content-type": "application/json"})
    return json.load(urllib.request.urlopen(req))
for _ in range(count):
    token = post(f"http://127.0.0.1:{mock}/mock/identity-token", {"lifetimeSecs": 3600})["identityToken"]
    print(post(f"http://127.0.0.1:{siwa}/v1/auth/apple", {"identityToken": token})["session"]["refreshToken"])
PY
}

# Field NAME of a RESULT line.
bench_field() { # line name
    awk -v line="$1" -v name="$2" 'BEGIN { n = split(line, f, " "); for (i = 1; i <= n; i++) { split(f[i], kv, "="); if (kv[1] == name) print kv[2] } }'
}
