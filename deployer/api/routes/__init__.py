"""Routers of the HTTP API, one module per resource.

/v1/deployments is three: deployments.py (writes), reads.py (GET, long-poll, ETag), events.py (SSE);
common.py holds what they and the per-deployment resources share, idempotency.py a deploy's
Idempotency-Key. Modules here import each other's public names only.
"""
