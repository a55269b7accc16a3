# mcp-fc service image: one image, runs the API or a worker.
#   docker build -t mcp-fc .
#   docker run -e MCPFC_ENVIRONMENT=production -e MCPFC_SECRET_KEY=... -e MCPFC_DATABASE_URL=... \
#              -e MCPFC_BROKER_URL=redis://... -e MCPFC_RESULT_BACKEND=redis://... -p 8000:8000 mcp-fc api
#   docker run ... mcp-fc worker --concurrency 16
FROM python:3.12-slim AS build
WORKDIR /src
# The service's packages only: fc_emulator (the local FC emulator behind `mcp-fc dev`) and bridge/ (its own
# distribution, for the runtime image) stay out, so this image carries no emulator and no bridge.
# tests/packaging/test_distributions.py builds the wheel from exactly these COPY lines and checks that.
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY deployer ./deployer
COPY tasks ./tasks
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.12-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 \
    MCPFC_DATA_DIR=/var/lib/mcp-fc MCPFC_API_HOST=0.0.0.0 \
    # SIGTERM starts Celery's soft shutdown, so in-flight deploys are handed back, not lost.
    REMAP_SIGTERM=SIGQUIT
RUN useradd --system --uid 10001 --home-dir /var/lib/mcp-fc --create-home mcpfc
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
USER mcpfc
WORKDIR /var/lib/mcp-fc
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=3s CMD python -c "import urllib.request,sys; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=2)" || exit 1
ENTRYPOINT ["mcp-fc"]
CMD ["api"]
