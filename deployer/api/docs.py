"""/docs: Swagger UI for the OpenAPI document, from a pinned release checked by Subresource Integrity.

FastAPI's default page loads `swagger-ui-dist@5` from a CDN: a floating major version, no integrity check,
so whoever controls that URL runs script on the API's origin. Here the version is exact and the browser
refuses the files unless their SHA-384 matches the hashes below (taken from the npm package
swagger-ui-dist@5.32.0, which the CDN serves byte for byte). A Content-Security-Policy allows no other
script. Production keeps /docs off unless MCPFC_DOCS_ENABLED=true (docs/decisions.md, docs/security.md).
"""

from __future__ import annotations

import json

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

SWAGGER_UI_VERSION = "5.32.0"
_BASE = f"https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}"
SWAGGER_JS = f"{_BASE}/swagger-ui-bundle.js"
SWAGGER_JS_SRI = "sha384-7xcoc6ZKDFF7Ek627QTC3Bg/K+5Y36NJ8MWAE43D2m6+3Sh9XO3tdsfHhrS8gNIQ"
SWAGGER_CSS = f"{_BASE}/swagger-ui.css"
SWAGGER_CSS_SRI = "sha384-3nuX7df3EaAoiqLBeyS1Ola0Gpg9ryJKVtarubwfnA1cOH8AWHUdbPSIvEqPZ9VH"

# The inline start-up script is fixed text, so the policy can name it by hash instead of 'unsafe-inline'.
_INIT = "SwaggerUIBundle({url: %s, dom_id: '#swagger-ui', deepLinking: true});"


def _page(title: str, openapi_url: str) -> tuple[str, str]:
    import base64
    import hashlib

    init = _INIT % json.dumps(openapi_url)
    init_hash = base64.b64encode(hashlib.sha256(init.encode()).digest()).decode()
    html = f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API docs</title>
<link rel="stylesheet" href="{SWAGGER_CSS}" integrity="{SWAGGER_CSS_SRI}" crossorigin="anonymous">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{SWAGGER_JS}" integrity="{SWAGGER_JS_SRI}" crossorigin="anonymous"></script>
<script>{init}</script>
</body>
</html>
"""
    csp = (
        "default-src 'none'; "
        f"script-src {SWAGGER_JS} 'sha256-{init_hash}'; "
        f"style-src {SWAGGER_CSS} 'unsafe-inline'; "
        "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html, csp


def install(app: FastAPI, *, docs_url: str = "/docs", openapi_url: str = "/openapi.json") -> None:
    html, csp = _page(app.title, openapi_url)

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return HTMLResponse(html, headers={"Content-Security-Policy": csp, "Cache-Control": "no-cache"})
