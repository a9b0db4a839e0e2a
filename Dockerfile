# CPU image of Uncia: the pipeline (`uncia run`) and the dashboard (`uncia serve`).
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1

# libgomp1 and tesseract-ocr (`uncia infobar`) follow the base image's security updates;
# pinning them would freeze them.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 tesseract-ocr \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md requirements.lock ./
COPY pipeline ./pipeline
COPY cli ./cli
COPY dashboard ./dashboard
COPY app.py ./
# CPU by default: the CPU wheels of torch keep the image small; the pins match requirements.lock.
# A CUDA build passes --build-arg TORCH_INDEX=https://download.pytorch.org/whl/cu126.
# Everything else, torch's own dependencies included, comes from PyPI at the locked versions.
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-deps --index-url "${TORCH_INDEX}" torch==2.14.1 torchvision==0.29.1 \
    && pip install -c requirements.lock .

RUN groupadd --gid 10001 uncia \
    && useradd --create-home --uid 10001 --gid 10001 --shell /usr/sbin/nologin uncia \
    && mkdir -p /data && chown 10001:10001 /data
USER 10001:10001
VOLUME ["/data"]
EXPOSE 8050

# Healthy when the dashboard answers; 401 counts (it answers, and asks for a password).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s \
    CMD ["python", "-c", "import sys, urllib.request, urllib.error\ntry:\n    urllib.request.urlopen('http://127.0.0.1:8050/', timeout=4)\nexcept urllib.error.HTTPError as e:\n    sys.exit(e.code != 401)\nexcept OSError:\n    sys.exit(1)"]

# Two commands: `docker run IMAGE run ROOT --deployments CSV --out /data/...` (the pipeline)
# and the default, the dashboard. Publish it on loopback (-p 127.0.0.1:8050:8050) or give it
# --auth-file: inside the container it must listen on 0.0.0.0 (docs/security.md).
ENTRYPOINT ["uncia"]
CMD ["serve", "--data", "/data/demo", "--host", "0.0.0.0", "--port", "8050", "--workers", "2"]
