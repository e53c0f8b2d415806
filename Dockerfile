# FlashMM live node image (stub: the VPS deployment issue completes it with a healthcheck,
# compose file and the node entry point).
FROM python:3.11-slim
RUN useradd --create-home --uid 10001 flashmm
WORKDIR /app
COPY pyproject.toml README.md ./
COPY strategies strategies
COPY adapters adapters
COPY backtests backtests
COPY data data
COPY models models
COPY app app
# CPU-only torch: the default torch wheel drags in several GB of CUDA libraries.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-cache-dir .
USER flashmm
ENTRYPOINT ["flashmm"]
CMD ["--help"]
