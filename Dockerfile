# syntax=docker/dockerfile:1
# The Fortress image: `fortress run` (the operator) and `fortress api` (the HTTP API).
#   docker build -t fortress:dev .
# Stage 1 builds the wheel and installs it with its dependencies into a virtual environment;
# stage 2 copies only that environment onto a clean slim Python, without pip's caches or compilers.
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# operator/fortress/migrations and operator/fortress/crds are symlinks to these top-level folders,
# so the wheel carries the SQL migrations and the CRDs.
COPY pyproject.toml README.md ./
COPY migrations ./migrations
COPY crds ./crds
COPY operator ./operator
# every dependency as a wheel (one, `names`, is published only as an sdist and is built here)
RUN python -m pip wheel --wheel-dir /wheels . \
 && python -m venv /opt/fortress \
 && /opt/fortress/bin/python -m pip install --no-index --find-links /wheels --only-binary=:all: fortress-operator \
 && /opt/fortress/bin/python -m pip uninstall --yes pip \
 && /opt/fortress/bin/fortress --help >/dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="fortress" \
      org.opencontainers.image.description="Fortress Kubernetes operator and HTTP API" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=builder /opt/fortress /opt/fortress
ENV PATH=/opt/fortress/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# A fixed non-root UID/GID (the chart's runAsUser); the root filesystem can be read-only.
USER 65532:65532
WORKDIR /tmp
EXPOSE 8000 8080 9090
ENTRYPOINT ["fortress"]
CMD ["run"]
