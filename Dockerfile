# FlashMM live node. Runs `flashmm serve`: the node configured by $FLASHMM_CONFIG and the FLASHMM_*
# variables docker-compose.yml passes (see .env.example and the README's "Deploy on a VPS").
FROM python:3.11-slim

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid, so the key file and the state directory on the host can be owned by it.
RUN useradd --create-home --uid 10001 --user-group flashmm \
 && install -d -o flashmm -g flashmm -m 700 /var/lib/flashmm

WORKDIR /app
COPY pyproject.toml README.md ./
COPY deploy deploy
COPY strategies strategies
COPY adapters adapters
COPY backtests backtests
COPY data data
COPY models models
COPY app app
# CPU-only torch first (the default wheel drags in several GB of CUDA libraries), then the project
# with every dependency at the version the tests ran (deploy/constraints.txt).
RUN pip install --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install -c deploy/constraints.txt .

USER flashmm
ENV FLASHMM_CONFIG=/app/deploy/node.toml \
    FLASHMM_STATE_DIR=/var/lib/flashmm/live
EXPOSE 8080
# /health is 200 while the node is ready, connected and its feed fresh (a halted node stays healthy).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % (os.environ.get('FLASHMM_OPS_PORT') or '8080'), timeout=4)"]
ENTRYPOINT ["flashmm"]
CMD ["serve"]
