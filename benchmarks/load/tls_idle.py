#!/usr/bin/env python3
"""Server memory per idle wss:// connection: the TLS counterpart of `wsload idle`.

wsload speaks only plain TCP, so this opens TLS connections with Python's standard library
(no duplex code), upgrades each with a fixed request, checks for the 101 and leaves them
open; it reports how much the server's resident set (VmRSS in /proc/PID/status) grew per
connection. 50 connections are opened first and not measured, to warm up the allocator.

    tls_idle.py --port P --server-pid PID [--connections 2000] [--plain] [--json]

--plain measures the same thing over plain TCP, for a comparison made by the same client.
"""
import argparse
import base64
import json
import os
import socket
import ssl
import sys
import time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


def open_upgraded(port, context):
    sock = socket.create_connection(("127.0.0.1", port))
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="localhost")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                  "Sec-WebSocket-Version: 13\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError("the server closed the connection during the upgrade")
        head += chunk
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"upgrade refused: {head.splitlines()[0]!r}")
    return sock


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--plain", action="store_true", help="plain TCP instead of TLS")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    context = None
    if not args.plain:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the benchmark's self-signed certificate

    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    warm = [open_upgraded(args.port, context) for _ in range(50)]
    time.sleep(0.3)
    before = rss_kib(args.server_pid)
    held = [open_upgraded(args.port, context) for _ in range(args.connections)]
    time.sleep(0.5)  # the server finishes with the last handshakes
    after = rss_kib(args.server_pid)
    per_connection = (after - before) * 1024 / args.connections
    scheme = "ws" if args.plain else "wss"
    if args.json:
        print(json.dumps({"mode": "idle", "scheme": scheme, "connections": args.connections,
                          "rss_before_kib": before, "rss_after_kib": after,
                          "bytes_per_connection": per_connection}))
    else:
        print(f"idle {scheme}://: server RSS {before} KiB -> {after} KiB for "
              f"{args.connections} connections: {per_connection:.0f} bytes each")
    for sock in held + warm:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
