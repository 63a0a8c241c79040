# syntax=docker/dockerfile:1
# mcpo in a container: the release binary plus Node/npm (npx servers) and Python/pip + uv
# (uvx servers), running as a non-root user.
#   docker build -t mcpo .
#   docker run -p 8000:8000 -v $PWD/config.json:/config/config.json mcpo --config /config/config.json

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin mcpo

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl nodejs npm python3 python3-pip python3-venv tini \
    && pip3 install --no-cache-dir --break-system-packages uv \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 mcpo
COPY --from=build /src/target/release/mcpo /usr/local/bin/mcpo
USER mcpo
WORKDIR /home/mcpo
ENV MCPO_HOST=0.0.0.0 MCPO_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8000/healthz || exit 1
ENTRYPOINT ["/usr/bin/tini", "--", "mcpo"]
CMD ["--config", "/config/config.json"]
