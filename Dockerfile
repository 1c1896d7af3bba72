# wyoming-realtime-text:
#   docker build -t wyoming-realtime-text .
#   docker run -d --name wyoming-realtime-text -e OPENAI_API_KEY=sk-... -p 10310:10310 -p 10311:10311 wyoming-realtime-text
# With a config of your own (readable by uid 10310), add
#   -v "$PWD/config.yaml:/config.yaml:ro" ... wyoming-realtime-text --uri tcp://0.0.0.0:10310 --config /config.yaml
# compose.yaml runs it together with wyoming-piper.

# Build stage: every dependency has a manylinux wheel, so nothing is compiled; the source tree,
# pip and setuptools' build files stay here.
FROM python:3.11-slim AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY wyoming_realtime_text ./wyoming_realtime_text
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install . \
    && /opt/venv/bin/pip uninstall -y pip

# Run stage: the slim image with the virtual environment only, as an unprivileged user.
FROM python:3.11-slim
# WEB_HOST: the live page listens on every interface of the container; the published port
# (-p 10311:10311, or none) decides who reaches it.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PATH=/opt/venv/bin:$PATH WEB_HOST=0.0.0.0
COPY --from=build /opt/venv /opt/venv
RUN useradd --system --no-create-home --uid 10310 wyoming

USER wyoming
# 10311: the live page, /healthz and /metrics (web.port)
EXPOSE 10310 10311
# Healthy when the server answers a Wyoming describe with info (what Home Assistant asks first).
HEALTHCHECK --start-period=20s --interval=30s --timeout=5s --retries=3 \
    CMD ["python3", "-m", "wyoming_realtime_text.healthcheck", "tcp://127.0.0.1:10310", "--timeout", "3"]
# Configure with the environment (OPENAI_API_KEY) or a mounted config (see the top of this file).
ENTRYPOINT ["wyoming-realtime-text"]
CMD ["--uri", "tcp://0.0.0.0:10310"]
