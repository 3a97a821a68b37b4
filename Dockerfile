# syntax=docker/dockerfile:1
# The operator's image: a virtualenv built from the locked runtime requirements (hashes checked), copied into a
# clean runtime stage that runs as a non-root numeric user on a read-only root filesystem.
#
# Base image: python 3.11 (requires-python >= 3.11) on Debian bookworm, slim. Pinned by tag AND by the
# multi-arch index digest that Docker Hub published for that tag (recorded 2026-04-06; we could not query a
# registry from here to re-check it). Bump both together; the digest is what Docker actually pulls.

FROM python:3.11-slim-bookworm@sha256:420310dd2ff7895895f0f1f9d15cae5a95dabceb8f1d6b9a23ef33c2c1c542c3 AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN python -m venv /opt/venv

WORKDIR /src

# Dependencies first, in their own layer: exactly the locked runtime tree with hashes (requirements/runtime.txt,
# exported from uv.lock; never the test kit or the dev tools), so a change to the code does not reinstall them.
# No Kubernetes client library: kopf logs in by itself and the operator reads its Secret with httpx.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --no-cache-dir --require-hashes --requirement requirements/runtime.txt

# Then the operator itself, without dependencies: everything it needs is locked above. Only its own package
# is copied: the test kit beside it in operator/ never enters the image.
COPY pyproject.toml README.md ./
COPY operator/clickhouse_privatelink/ operator/clickhouse_privatelink/
RUN pip install --no-cache-dir --no-deps . \
    && clickhouse-privatelink-operator --help > /dev/null


FROM python:3.11-slim-bookworm@sha256:420310dd2ff7895895f0f1f9d15cae5a95dabceb8f1d6b9a23ef33c2c1c542c3

# Provenance labels from build arguments (docs/image.md has the release command): the repository URL, the
# commit (git rev-parse HEAD) and the build time (RFC 3339). The defaults say "unknown" rather than guess, and
# the epoch keeps a build without arguments reproducible (same inputs, same image config).
ARG SOURCE=unknown
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z

LABEL org.opencontainers.image.title="clickhouse-privatelink-operator" \
      org.opencontainers.image.description="Kubernetes operator that connects a VPC to a ClickHouse Cloud service over AWS PrivateLink" \
      org.opencontainers.image.version="0.3.0" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim-bookworm" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"

# No writes outside /tmp (an emptyDir in the pod): no bytecode caches next to the code, HOME under /tmp.
# The code is owned by root and read-only to the operator's user.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    CHPL_LOG_FORMAT=json

COPY --from=builder /opt/venv /opt/venv

# 65532: the conventional "nonroot" UID/GID of distroless images; numeric so that Kubernetes can verify
# runAsNonRoot without a passwd entry.
USER 65532:65532

# 8080: kopf's liveness endpoint (/healthz); 9090: Prometheus metrics (/metrics).
EXPOSE 8080 9090

ENTRYPOINT ["clickhouse-privatelink-operator", "run"]
CMD ["--all-namespaces"]
