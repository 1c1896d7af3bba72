# wyoming-realtime-text: docker build -t wyoming-realtime-text .
#   docker run -e OPENAI_API_KEY=sk-... -p 10310:10310 wyoming-realtime-text
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY wyoming_realtime_text ./wyoming_realtime_text
RUN pip install . && rm -rf /app/build \
    && useradd --system --no-create-home --uid 10310 wyoming

USER wyoming
EXPOSE 10310
# Configure with the environment (OPENAI_API_KEY) or mount a config: -v ./config.yaml:/config.yaml
#   and add "--config /config.yaml".
ENTRYPOINT ["wyoming-realtime-text"]
CMD ["--uri", "tcp://0.0.0.0:10310"]
