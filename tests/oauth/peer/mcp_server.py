"""OAuth-protected streamable-HTTP MCP server for mcpo's OAuth tests.

The official MCP Python SDK (PyPI `mcp` 2.3.0) as a resource server: 401 with
`WWW-Authenticate: Bearer ... resource_metadata=...`, RFC 9728 metadata at
`/.well-known/oauth-protected-resource/mcp`, the `mcp:tools` scope required, and every
bearer token checked by RFC 7662 introspection at the authorization server (tests/oauth/peer/
auth_server.mjs) and refused unless it was issued for this resource (RFC 8707).

Usage: mcp_server.py --port N --issuer URL --rs-secret S [--events FILE]
Prints `listening on http://127.0.0.1:N/mcp` once it serves. Listens on 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import time
import warnings

import httpx2 as httpx
import uvicorn

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.auth.provider import AccessToken
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import MCPServer

SCOPE = "mcp:tools"
# Only the `admin_echo` tool needs it; a token without it gets 403 insufficient_scope there.
ADMIN_SCOPE = "mcp:admin"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--rs-secret", required=True)
    parser.add_argument("--events")
    args = parser.parse_args()

    resource = f"http://127.0.0.1:{args.port}/mcp"

    def record(event: dict) -> None:
        if args.events:
            with open(args.events, "a", encoding="utf-8") as f:
                f.write(json.dumps({"at": time.time(), **event}) + "\n")

    class IntrospectionVerifier:
        """Asks the authorization server about every token (RFC 7662)."""

        async def verify_token(self, token: str) -> AccessToken | None:
            fingerprint = hashlib.sha256(token.encode()).hexdigest()[:12]
            async with httpx.AsyncClient(timeout=10) as client:
                response = await client.post(
                    f"{args.issuer}/token/introspection",
                    data={"token": token},
                    auth=("mcp-resource-server", args.rs_secret),
                )
            if response.status_code != 200:
                record({"event": "introspection.error", "status": response.status_code, "token": fingerprint})
                return None
            data = response.json()
            active = bool(data.get("active"))
            aud = data.get("aud")
            if isinstance(aud, list):
                aud = resource if resource in aud else (aud[0] if aud else None)
            record(
                {
                    "event": "token",
                    "token": fingerprint,
                    "active": active,
                    "client_id": data.get("client_id"),
                    "scope": data.get("scope"),
                    "aud": aud,
                }
            )
            if not active:
                return None
            return AccessToken(
                token=token,
                client_id=data.get("client_id", ""),
                scopes=(data.get("scope") or "").split(),
                expires_at=data.get("exp"),
                resource=aud,
                subject=data.get("sub"),
            )

    verifier = IntrospectionVerifier()

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        server = MCPServer(
            name="oauth-peer",
            token_verifier=verifier,
            auth=AuthSettings(
                issuer_url=args.issuer,
                resource_server_url=resource,
                required_scopes=[SCOPE],
                validate_token_resource=True,
            ),
        )

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    @server.tool()
    def admin_echo(text: str) -> str:
        """Echo, for callers whose token has the mcp:admin scope."""
        return text

    @server.tool()
    def whoami() -> str:
        """The client the caller's token was issued to."""
        token = get_access_token()
        return token.client_id if token else "anonymous"

    @server.tool()
    def whoami_subject() -> str:
        """The account (subject) the caller's token was issued for, and to which client."""
        token = get_access_token()
        if not token:
            return "anonymous"
        return json.dumps({"subject": token.subject, "client_id": token.client_id})

    metadata_url = f"http://127.0.0.1:{args.port}/.well-known/oauth-protected-resource/mcp"

    class ScopeGate:
        """403 insufficient_scope for `admin_echo` calls without the mcp:admin scope (the
        SDK checks one scope set for the whole endpoint)."""

        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != "/mcp":
                await self.app(scope, receive, send)
                return
            chunks, more = [], True
            while more:
                message = await receive()
                chunks.append(message.get("body", b""))
                more = message.get("more_body", False)
            body = b"".join(chunks)
            replayed = False

            async def replay():
                nonlocal replayed
                if not replayed:
                    replayed = True
                    return {"type": "http.request", "body": body, "more_body": False}
                return await receive()

            try:
                request = json.loads(body)
            except ValueError:
                request = None
            if (
                isinstance(request, dict)
                and request.get("method") == "tools/call"
                and (request.get("params") or {}).get("name") == "admin_echo"
            ):
                auth = dict(scope["headers"]).get(b"authorization", b"").decode()
                token = auth[7:] if auth.lower().startswith("bearer ") else ""
                info = await verifier.verify_token(token) if token else None
                if info is not None and ADMIN_SCOPE not in info.scopes:
                    record({"event": "insufficient_scope", "scopes": info.scopes})
                    challenge = (
                        f'Bearer error="insufficient_scope", scope="{SCOPE} {ADMIN_SCOPE}", '
                        f'resource_metadata="{metadata_url}"'
                    )
                    await send(
                        {
                            "type": "http.response.start",
                            "status": 403,
                            "headers": [
                                (b"content-type", b"application/json"),
                                (b"www-authenticate", challenge.encode()),
                            ],
                        }
                    )
                    await send({"type": "http.response.body", "body": b'{"error": "insufficient_scope"}'})
                    return
            await self.app(scope, replay, send)

    app = ScopeGate(server.streamable_http_app(host="127.0.0.1"))
    config = uvicorn.Config(app, host="127.0.0.1", port=args.port, log_level="warning")
    uv = uvicorn.Server(config)

    async def serve() -> None:
        task = asyncio.create_task(uv.serve())
        while not uv.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.02)
        print(f"listening on {resource}", flush=True)
        await task

    asyncio.run(serve())


if __name__ == "__main__":
    main()
