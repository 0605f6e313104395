# Rhythm service image: API (`rhythm serve`), Celery worker and beat share it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN groupadd --system --gid 10001 rhythm \
    && useradd --system --uid 10001 --gid rhythm --home-dir /home/rhythm --create-home rhythm

WORKDIR /srv/rhythm

# Dependencies first, so source edits do not re-download them. torch comes from PyTorch's CPU index: the
# default wheel pulls CUDA libraries (gigabytes) the service never uses; vLLM runs in its own container.
COPY pyproject.toml README.md ./
COPY app ./app
COPY bridges ./bridges
COPY workers ./workers
COPY sim ./sim
COPY policy ./policy
COPY migrations ./migrations
COPY alembic.ini ./
RUN pip install --extra-index-url https://download.pytorch.org/whl/cpu "torch==2.13.0" \
    && pip install --extra-index-url https://download.pytorch.org/whl/cpu .

USER rhythm

ENV RHYTHM_ENV=production \
    RHYTHM_HOST=0.0.0.0 \
    RHYTHM_PORT=8000 \
    RHYTHM_ADAPTER_DIR=/home/rhythm/adapters

EXPOSE 8000

HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('RHYTHM_PORT', '8000')}/healthz\", timeout=4)"]

CMD ["rhythm", "serve"]
