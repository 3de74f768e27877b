#!/usr/bin/python3
"""Server memory per idle, upgraded WebSocket connection.

Opens N raw TCP connections to a running server, completes the upgrade on each by hand (no
WebSocket library, so the client cannot hide anything), and reports the growth of the server's
resident set size from /proc/PID/status. Loopback only.

    idle_rss.py --pid PID --port PORT [--count 2000]
"""
import argparse
import socket
import time

REQUEST = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def open_upgraded(port, count, into):
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(REQUEST)
        if not s.recv(4096).startswith(b"HTTP/1.1 101"):
            raise RuntimeError("upgrade refused")
        into.append(s)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--pid", type=int, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    sockets = []
    open_upgraded(args.port, 50, sockets)  # warm up allocator pools first
    time.sleep(0.3)
    before = rss_kib(args.pid)
    open_upgraded(args.port, args.count, sockets)
    time.sleep(0.5)
    after = rss_kib(args.pid)
    print(f"server RSS {before} KiB -> {after} KiB for {args.count} idle connections: "
          f"{(after - before) * 1024 / args.count:.0f} bytes each")


if __name__ == "__main__":
    main()
