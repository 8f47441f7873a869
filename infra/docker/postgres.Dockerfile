# PostgreSQL 16 with pgvector (from the base image) plus hypopg, for docker-compose.yml.
# pgvector/pgvector:pg16 is built on the official postgres:16 image, whose apt sources include the
# PGDG repository, so hypopg comes from the same place as the server itself.
ARG PGVECTOR_IMAGE=pgvector/pgvector:pg16
FROM ${PGVECTOR_IMAGE}
RUN set -eu; \
    apt-get update; \
    apt-get install -y --no-install-recommends postgresql-16-hypopg; \
    rm -rf /var/lib/apt/lists/*
