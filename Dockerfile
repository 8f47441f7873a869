# syntax=docker/dockerfile:1.7
#
# One image per Quarry function, all from this file. FUNCTION picks the binary:
#
#   auth | ask | sql-exec | retrieve | ingest | index-advisor   -> quarry-<name> (one Cloud Run service)
#   quarry                                                       -> the CLI (migration job, `quarry dev`)
#
#   docker build --build-arg FUNCTION=sql-exec -t quarry/sql-exec .
#
# The SQL migrations are compiled into the binaries (include_dir), so the runtime images hold the
# binary and nothing else. Images that only need libc run on distroless (no shell, no package
# manager, uid 65532); `ingest` and the CLI run on debian:bookworm-slim with Tesseract and Poppler
# because ingestion OCRs scanned PDFs and images (`quarry dev` serves ingest too).
#
# Optional local LLM for `ask` (see docs/deploy.md): bake a GGUF file into the image with
#   docker build --build-arg FUNCTION=ask --build-context models=.quarry/models \
#     --build-arg ASK_MODEL=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf -t quarry/ask .
# or leave it out (the default) and mount a folder at /models at run time.

ARG FUNCTION=auth
ARG RUST_IMAGE=rust:1-bookworm

# ------------------------------------------------------------------------------------ build
FROM ${RUST_IMAGE} AS builder
ARG FUNCTION
# llama.cpp (the local model in ask and the CLI) builds with CMake; bindgen needs libclang.
RUN set -eu; apt-get update; \
    apt-get install -y --no-install-recommends cmake clang libclang-dev; \
    rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The cargo registry, git checkouts and target/ are BuildKit cache mounts: they survive between
# builds (and between functions) but never land in a layer, hence the copy out to /out.
RUN --mount=type=cache,id=quarry-cargo-registry,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,id=quarry-cargo-git,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,id=quarry-target,target=/src/target,sharing=locked \
    set -eu; \
    case "$FUNCTION" in \
      auth|ask|sql-exec|retrieve|ingest|index-advisor) crate="quarry-$FUNCTION"; bin="quarry-$FUNCTION" ;; \
      quarry) crate="quarry-cli"; bin="quarry" ;; \
      *) echo "unknown FUNCTION '$FUNCTION': use auth, ask, sql-exec, retrieve, ingest, index-advisor or quarry" >&2; exit 1 ;; \
    esac; \
    cargo build --release --locked -p "$crate" --bin "$bin"; \
    install -D -m 0755 "target/release/$bin" /out/app

# ------------------------------------------------------------------- optional model for ask
# `models` is empty unless overridden with `--build-context models=<folder>`; ASK_MODEL names the
# file in that folder to bake in. Without both, /models stays empty (mount a volume instead).
FROM scratch AS models

FROM ${RUST_IMAGE} AS model
ARG ASK_MODEL=""
RUN --mount=type=bind,from=models,target=/in \
    set -eu; mkdir -p /models; \
    if [ -n "$ASK_MODEL" ]; then \
      test -f "/in/$ASK_MODEL" || { echo "ASK_MODEL=$ASK_MODEL not found in the models build context" >&2; exit 1; }; \
      cp "/in/$ASK_MODEL" "/models/$ASK_MODEL"; \
    fi

# ----------------------------------------------------------------------------- base images
FROM gcr.io/distroless/cc-debian12:nonroot AS base-distroless
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
USER nonroot:nonroot
ENTRYPOINT ["/usr/local/bin/app"]

FROM debian:bookworm-slim AS base-ocr
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates libgomp1 tesseract-ocr tesseract-ocr-eng poppler-utils; \
    rm -rf /var/lib/apt/lists/*; \
    groupadd --system --gid 65532 quarry; \
    useradd --system --uid 65532 --gid quarry --home-dir /nonexistent --shell /usr/sbin/nologin quarry
ENV HOST=0.0.0.0 PORT=8080
EXPOSE 8080
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/app"]

# ------------------------------------------------------------------ one runtime per function
FROM base-distroless AS runtime-auth
COPY --from=builder /out/app /usr/local/bin/app

FROM base-distroless AS runtime-sql-exec
COPY --from=builder /out/app /usr/local/bin/app

FROM base-distroless AS runtime-retrieve
COPY --from=builder /out/app /usr/local/bin/app

FROM base-distroless AS runtime-index-advisor
COPY --from=builder /out/app /usr/local/bin/app

# distroless/cc carries libgomp1, the OpenMP runtime llama.cpp's threads need.
FROM base-distroless AS runtime-ask
COPY --from=builder /out/app /usr/local/bin/app
COPY --from=model --chown=65532:65532 /models /models

FROM base-ocr AS runtime-ingest
COPY --from=builder /out/app /usr/local/bin/app

# The CLI: `quarry migrate`, `quarry demo load` (mount the data at /data) and `quarry dev`.
FROM base-ocr AS runtime-quarry
ENV QUARRY_DATA_DIR=/data
COPY --from=builder /out/app /usr/local/bin/quarry
ENTRYPOINT ["/usr/local/bin/quarry"]
CMD ["dev"]

# ------------------------------------------------------------------------------- the image
FROM runtime-${FUNCTION}
