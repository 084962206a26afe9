# Sourced by scripts/test-docker.sh: a Docker engine, and local stand-ins for the Dockerfile's base
# images, on a machine that cannot reach a registry (../shared/docker-on-linux.md).
#
#   start_engine DIR     uses the engine at $DOCKER_HOST when one answers; otherwise installs
#                        Debian's docker.io if needed and starts dockerd with its data, state and
#                        socket under DIR, and exports DOCKER_HOST. stop_engine stops only that one.
#   make_stand_ins       tags `gcr.io/distroless/cc-debian12:nonroot` and `rust:1-bookworm`, the
#                        names in the Dockerfile's FROM lines, unless the engine has them already.
#   make_postgres_stand_in  tags `postgres:15-bookworm` (compose.yaml's): Debian's PostgreSQL 15
#                        behind an entrypoint that honours the official image's POSTGRES_USER,
#                        POSTGRES_PASSWORD and POSTGRES_DB, its data in /var/lib/postgresql/data.
#
# Debian roots are made once with debootstrap and kept under $SIWA_DOCKER_CACHE
# (~/.cache/siwa/docker), so a second run on the same machine skips the download.

docker_cache=${SIWA_DOCKER_CACHE:-$HOME/.cache/siwa/docker}
engine_pid=""
engine_dir=""

as_root_install() {
    if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
        echo "missing: $* (install them as root on Debian)" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

start_engine() {
    local dir=$1
    if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        echo "== using the Docker engine at ${DOCKER_HOST:-the default socket}"
        return
    fi
    command -v dockerd >/dev/null || as_root_install docker.io
    mkdir -p "$dir"
    engine_dir=$(cd "$dir" && pwd)
    export DOCKER_HOST="unix://$dir/docker.sock"
    # overlay2 shares layers (vfs copies each whole, which makes the build several times
    # slower); vfs where the kernel or filesystem refuses overlay2.
    local driver
    for driver in overlay2 vfs; do
        # No bridge and no iptables: these machines allow neither; containers use the host's
        # network.
        dockerd --storage-driver="$driver" --data-root="$dir/root" --exec-root="$dir/exec" \
            --pidfile="$dir/dockerd.pid" -H "unix://$dir/docker.sock" \
            --iptables=false --bridge=none >"$dir/dockerd.log" 2>&1 &
        engine_pid=$!
        for _ in $(seq 1 100); do
            docker info >/dev/null 2>&1 && break
            kill -0 "$engine_pid" 2>/dev/null || break
            sleep 0.2
        done
        if docker info >/dev/null 2>&1; then
            echo "== dockerd $(docker version --format '{{.Server.Version}}') started ($driver, data under $dir)"
            return
        fi
        stop_engine
        rm -rf "$dir/root" "$dir/exec"
    done
    echo "dockerd did not start:" >&2
    tail -n 20 "$dir/dockerd.log" >&2
    exit 1
}

stop_engine() {
    [ -n "$engine_pid" ] || return 0
    kill "$engine_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$engine_pid" 2>/dev/null || break
        sleep 0.1
    done
    # What the engine left mounted under its folders (its network namespace, overlay layers),
    # deepest first, so the folders can be removed.
    findmnt -rn -o TARGET | grep "^$engine_dir/" | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    engine_pid=""
}

# A Debian bookworm root (minbase) at $docker_cache/NAME with the packages given, made once.
debian_root() {
    local name=$1 root="$docker_cache/$1"
    shift
    if [ -f "$root/.complete" ]; then
        echo "$root"
        return
    fi
    command -v debootstrap >/dev/null || as_root_install debootstrap >&2
    rm -rf "$root"
    mkdir -p "$docker_cache"
    echo "== debootstrap bookworm ($name)" >&2
    debootstrap --variant=minbase --include="$(IFS=,; echo "$*")" bookworm "$root" \
        http://deb.debian.org/debian >"$docker_cache/$name.log" 2>&1 || {
        tail -n 20 "$docker_cache/$name.log" >&2
        exit 1
    }
    chroot "$root" apt-get clean
    touch "$root/.complete"
    echo "$root"
}

make_stand_ins() {
    local root
    if ! docker image inspect gcr.io/distroless/cc-debian12:nonroot >/dev/null 2>&1; then
        root=$(debian_root runtime ca-certificates)
        # distroless's nonroot user and group (65532), which the Dockerfile's COPY --chown uses.
        grep -q '^nonroot:' "$root/etc/passwd" ||
            chroot "$root" useradd --uid 65532 --user-group --no-create-home --home-dir /home/nonroot nonroot
        tar -C "$root" --exclude=./.complete -c . |
            docker import - gcr.io/distroless/cc-debian12:nonroot >/dev/null
        echo "== stand-in gcr.io/distroless/cc-debian12:nonroot made"
    fi
    if ! docker image inspect rust:1-bookworm >/dev/null 2>&1; then
        root=$(debian_root builder ca-certificates gcc libc6-dev make pkg-config)
        # The machine's own toolchain (no other can be fetched), and its trusted certificates:
        # cargo in the build reaches crates.io through the same TLS interception as the host.
        if [ ! -x "$root/opt/rust/bin/cargo" ]; then
            rm -rf "$root/opt/rust"
            cp -a "$(rustc --print sysroot)" "$root/opt/rust"
        fi
        cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
        tar -C "$root" --exclude=./.complete -c . |
            docker import --change 'ENV PATH=/opt/rust/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
                - rust:1-bookworm >/dev/null
        echo "== stand-in rust:1-bookworm made (toolchain $(rustc --version | awk '{print $2}'))"
    fi
}

make_postgres_stand_in() {
    docker image inspect postgres:15-bookworm >/dev/null 2>&1 && return
    local root
    root=$(debian_root postgres ca-certificates postgresql-15)
    cat >"$root/usr/local/bin/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# A stand-in for the official image's entrypoint: first start makes the cluster, its user
# (password authentication over TCP) and its database; then PostgreSQL runs in the foreground.
set -e
PGDATA=${PGDATA:-/var/lib/postgresql/data}
if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" && chown -R postgres:postgres "$PGDATA" && chmod 700 "$PGDATA"
    exec runuser -u postgres -- "$0" "$@"
fi
user=${POSTGRES_USER:-postgres}
if [ ! -s "$PGDATA/PG_VERSION" ]; then
    printf '%s' "${POSTGRES_PASSWORD:?POSTGRES_PASSWORD is required}" >/tmp/pwfile
    initdb -D "$PGDATA" -U "$user" --pwfile=/tmp/pwfile --auth-local=trust --auth-host=scram-sha-256 >/dev/null
    rm -f /tmp/pwfile
    echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
    db=${POSTGRES_DB:-$user}
    if [ "$db" != postgres ]; then
        echo "CREATE DATABASE \"$db\" OWNER \"$user\";" | postgres --single -D "$PGDATA" postgres >/dev/null
    fi
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -k /tmp "$@"
ENTRYPOINT
    chmod 755 "$root/usr/local/bin/docker-entrypoint.sh"
    tar -C "$root" --exclude=./.complete -c . |
        docker import \
            --change 'ENV PATH=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
            --change 'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]' \
            - postgres:15-bookworm >/dev/null
    echo "== stand-in postgres:15-bookworm made (Debian's PostgreSQL 15)"
}
