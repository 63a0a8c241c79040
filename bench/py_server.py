"""Benchmark upstream on the official Python MCP SDK (PyPI `mcp`, FastMCP).

    python py_server.py stdio
    python py_server.py http PORT      # streamable HTTP at http://127.0.0.1:PORT/mcp

Two tools, `echo(message)` and `add(a, b)`. Logging is kept at WARNING so that the server's
own per-request log lines do not slow it down.
"""

import sys

from mcp.server.fastmcp import FastMCP


def build(port: int = 0) -> FastMCP:
    server = FastMCP("bench-py", log_level="WARNING", host="127.0.0.1", port=port or 8000)

    @server.tool()
    def echo(message: str) -> str:
        """Echo the given message."""
        return message

    @server.tool()
    def add(a: int, b: int) -> int:
        """Add two integers."""
        return a + b

    return server


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if mode == "stdio":
        build().run("stdio")
    elif mode == "http":
        build(int(sys.argv[2])).run("streamable-http")
    else:
        sys.exit(f"usage: {sys.argv[0]} stdio | http PORT")


if __name__ == "__main__":
    main()
