# Multi-stage build: wheels in a builder, a small non-root runtime with the shipped weights.
FROM python:3.11-slim AS builder
WORKDIR /src
COPY pyproject.toml README.md ./
COPY service ./service
COPY detectors ./detectors
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[postgres,redis]"

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 bylinecheck
WORKDIR /app
COPY --from=builder /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
COPY weights ./weights
ENV BYLINECHECK_WEIGHTS_DIR=/app/weights \
    BYLINECHECK_HOST=0.0.0.0 \
    BYLINECHECK_DATABASE_URL=sqlite:////data/bylinecheck.sqlite3
RUN mkdir /data && chown bylinecheck /data
USER bylinecheck
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz')"
CMD ["bylinecheck", "serve"]
