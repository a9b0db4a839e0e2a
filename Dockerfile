# CPU image of Uncia: the pipeline (`uncia run`) and the dashboard (`uncia serve`).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

RUN apt-get update \
    && apt-get install -y --no-install-recommends curl libgomp1 \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md ./
COPY pipeline ./pipeline
COPY dashboard ./dashboard
COPY app.py ./
# The CPU wheels of torch keep the image small; the pins match pyproject.toml.
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.14.1 torchvision==0.29.1 \
    && pip install .

RUN useradd --create-home --uid 10001 uncia && mkdir -p /data && chown uncia /data
USER uncia
VOLUME ["/data"]
EXPOSE 8050

HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD curl -fsS http://127.0.0.1:8050/ >/dev/null || exit 1

ENTRYPOINT ["uncia"]
CMD ["serve", "--data", "/data/demo", "--host", "0.0.0.0", "--port", "8050"]
