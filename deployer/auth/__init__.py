"""The OAuth 2.1 authorization server (issue 25): metadata, authorization code with PKCE, tokens bound to one
deployment's resource. Used by ``api``; uses ``store``. The resource-server side lives in the bridge."""
