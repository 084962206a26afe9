# siwa-server: multi-stage build, small non-root runtime image.
#   docker build -t siwa-server .
#   docker run -p 3000:3000 -e SIWA_APPLE_CLIENT_IDS=com.example.app \
#       -v siwa-data:/data siwa-server
# Verified by scripts/test-docker.sh, part of scripts/test: this file, unchanged, is built on
# Debian's dockerd 20.10 (overlay2, host network) with local stand-ins for both base images (no
# registry is reachable there: scripts/docker-engine.sh makes them from Debian bookworm); the
# image runs as uid 65532, answers /healthz and /readyz, passes `siwa-server doctor`, signs a
# user in against mock-apple, keeps its SQLite database in /data across docker stop/start, stops
# on SIGTERM in well under 10 s, and exits 2 naming the cause when the system has no CA
# certificates. compose.yaml (two instances on PostgreSQL) is run by the same script.

FROM rust:1-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY core core
COPY bindings bindings
COPY mock-apple mock-apple
COPY server server
# Without the `dev` feature: no fake Apple in the production binary.
RUN cargo build --release --locked -p siwa-server --no-default-features \
 && strip target/release/siwa-server \
 && mkdir -p /out/data

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/siwa-server /usr/local/bin/siwa-server
# The distroless "nonroot" user (65532) must own the data directory.
COPY --from=build --chown=65532:65532 /out/data /data
# SQLite lives in /data unless SIWA_DATABASE_URL points elsewhere (postgres://...).
ENV PORT=3000 \
    SIWA_DATABASE_URL=sqlite:///data/siwa.db?mode=rwc \
    SIWA_LOG_FORMAT=json
WORKDIR /data
VOLUME ["/data"]
EXPOSE 3000
USER nonroot
ENTRYPOINT ["/usr/local/bin/siwa-server"]
CMD ["serve"]
