# Quarry: two commands on a fresh Debian 12 machine, as root.
#   make up    installs what is missing, starts PostgreSQL + Redis + Chroma, migrates, loads the
#              demo data and serves every function on 127.0.0.1:$(PORT) until Ctrl-C.
#   make test  installs what is missing, starts the stack, runs every test against it.
# Everything the project installs or downloads lives in .quarry/ (git-ignored) or system packages.

SHELL := /bin/bash
PORT ?= 8080
export PORT

.PHONY: up test down status install assets stack build lint fmt bench

up: install stack build
	@scripts/assets.sh --llm full
	@eval "$$(scripts/stack.sh env)" && \
	  export QUARRY_DATA_DIR="$${QUARRY_DATA_DIR:-$$PWD/.quarry/data}" && \
	  ./target/debug/quarry migrate && \
	  ./target/debug/quarry demo load && \
	  scripts/demo-docs.sh ./target/debug/quarry && \
	  echo "==> serving every function on http://127.0.0.1:$(PORT) (Ctrl-C stops it)" && \
	  exec ./target/debug/quarry dev

test: install stack
	@scripts/assets.sh --llm small
	@scripts/test.sh

down:
	@scripts/stack.sh down

status:
	@scripts/stack.sh status

install:
	@scripts/install.sh
	@scripts/rust.sh

assets:
	@scripts/assets.sh --llm small

stack:
	@scripts/stack.sh up

build:
	@cargo build --workspace --bins

lint:
	@cargo fmt --all -- --check
	@cargo clippy --workspace --all-targets -- -D warnings
	@cargo clippy -p quarry-auth --target wasm32-wasip2 --no-default-features --features wasm -- -D warnings

fmt:
	@cargo fmt --all
