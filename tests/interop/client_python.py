#!/usr/bin/python3
"""Python `websockets` (Debian python3-websockets 10.x) as a client of duplex's echo_server.

    client_python.py URL --small-url URL2 [--ca CERT] [--shutdown-pid PID]

URL is an echo_server whose --max-message fits 4 MiB; URL2 one started with --max-message 1000
(for the 1009 case). With --shutdown-pid the last case sends SIGTERM to that echo_server while
a connection is open and expects the server-initiated close 1001 (graceful shutdown).
Prints one line per case and exits non-zero if any check failed.

Run it with /usr/bin/python3: that is the interpreter Debian's package is installed for.
"""
import argparse
import asyncio
import os
import signal
import socket
import ssl
import string
import struct
import sys

import websockets
from websockets.frames import OP_CLOSE, OP_CONT, OP_TEXT

SIZES = [0, 125, 126, 65535, 65536, 4 << 20]
TIMEOUT = 10  # seconds for any single step

failures = []


def check(condition, what):
    """Records a failure; `what` may be a callable so that it is only built on failure."""
    if not condition:
        what = what() if callable(what) else what
        failures.append(what)
        print(f"  FAIL: {what}", flush=True)
    return condition


def describe_mismatch(sent, got):
    if type(sent) is not type(got):
        return f"sent {type(sent).__name__}, got {type(got).__name__}"
    if len(sent) != len(got):
        return f"sent {len(sent)} units, got {len(got)}"
    first = next(i for i, (a, b) in enumerate(zip(sent, got)) if a != b)
    return f"same length {len(sent)}, first difference at offset {first}"


def text_of(n):
    letters = string.ascii_letters + string.digits
    return (letters * (n // len(letters) + 1))[:n]


class Peer:
    def __init__(self, args):
        self.url = args.url
        self.small_url = args.small_url
        self.ssl = None
        if self.url.startswith("wss:"):
            self.ssl = ssl.create_default_context(cafile=args.ca)

    def connect(self, url=None):
        return websockets.connect(
            url or self.url,
            ssl=self.ssl,
            family=socket.AF_INET,  # echo_server listens on 127.0.0.1 only
            max_size=None,
            ping_interval=None,  # no automatic pings: the ping cases send their own
            open_timeout=TIMEOUT,
            close_timeout=TIMEOUT,
        )


async def echo(ws, message, label):
    await asyncio.wait_for(ws.send(message), TIMEOUT)
    reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
    return check(
        reply == message, lambda: f"{label}: echo differs ({describe_mismatch(message, reply)})"
    )


async def expect_close(ws, codes, label):
    """Waits for the connection to end; checks the close code the server sent."""
    try:
        while True:
            reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
            check(False, f"{label}: unexpected message {reply[:40]!r} before the close")
    except websockets.ConnectionClosed:
        pass
    await asyncio.wait_for(ws.wait_closed(), TIMEOUT)
    check(
        ws.close_code in codes,
        f"{label}: server closed with {ws.close_code} {ws.close_reason!r}, expected {codes}",
    )
    return ws.close_code, ws.close_reason


async def case_sizes(peer):
    async with peer.connect() as ws:
        # websockets offers permessage-deflate by default; duplex built with zlib accepts it,
        # so every echo below went through duplex's inflate and deflate (RFC 7692).
        if os.environ.get("DUPLEX_INTEROP_DEFLATE") == "1":
            agreed = [e.name for e in ws.extensions]
            check(agreed == ["permessage-deflate"],
                  f"permessage-deflate offered, but the 101 agreed to {agreed}")
        for n in SIZES:
            await echo(ws, text_of(n), f"text {n} bytes")
            await echo(ws, os.urandom(n), f"binary {n} bytes")


async def case_utf8(peer):
    async with peer.connect() as ws:
        await echo(ws, "héllo wörld — ✓ 😀 日本語 ﷽", "multi-byte UTF-8")
        # Long enough to span several reads: the validator must carry state across them.
        await echo(ws, "€😀ü" * 30000, "multi-byte UTF-8, 270000 bytes")


async def case_fragmented(peer):
    async with peer.connect() as ws:
        # websockets sends an iterable as one fragmented message, one frame per item.
        await asyncio.wait_for(ws.send(["frag", "men", "", "ted ü😀"]), TIMEOUT)
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(reply == "fragmented ü😀", f"fragmented text: got {reply!r}")
        parts = [os.urandom(10), b"", os.urandom(70000), os.urandom(1)]
        await asyncio.wait_for(ws.send(parts), TIMEOUT)
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(reply == b"".join(parts), "fragmented binary: echo differs")

        # A 4-byte character split across fragments, and a ping between the fragments.
        await ws.write_frame(False, OP_TEXT, "a😀".encode()[:3])
        pong = await ws.ping(b"between fragments")
        await ws.write_frame(False, OP_CONT, "a😀".encode()[3:4])
        await ws.write_frame(True, OP_CONT, "a😀b".encode()[4:])
        await asyncio.wait_for(pong, TIMEOUT)
        reply = await asyncio.wait_for(ws.recv(), TIMEOUT)
        check(reply == "a😀b", f"text with a character split across fragments: got {reply!r}")


async def case_ping(peer):
    async with peer.connect() as ws:
        for payload in [b"", b"hello", bytes(range(125))]:
            pong = await ws.ping(payload)  # completes only on a pong with this payload
            try:
                await asyncio.wait_for(pong, TIMEOUT)
            except asyncio.TimeoutError:
                check(False, f"ping with {len(payload)} bytes: no pong with the same payload")
        await ws.pong(b"unsolicited")  # must be ignored
        await echo(ws, "after an unsolicited pong", "echo after an unsolicited pong")


async def case_close(peer):
    async with peer.connect() as ws:
        await echo(ws, "x", "echo before close 1000")
        await asyncio.wait_for(ws.close(1000, "done"), TIMEOUT)
        check(ws.close_code == 1000, f"close 1000: server answered {ws.close_code}")
    async with peer.connect() as ws:
        await asyncio.wait_for(ws.close(4000, "custom reason ✓"), TIMEOUT)
        check(ws.close_code == 4000, f"close 4000: server answered {ws.close_code}")
    async with peer.connect() as ws:
        # An empty close frame: the answer is an empty close (1005 here) or 1000.
        await ws.write_frame(True, OP_CLOSE, b"")
        await expect_close(ws, (1005, 1000), "empty close frame")


async def case_protocol_errors(peer):
    async with peer.connect() as ws:
        await ws.write_frame(True, OP_TEXT, b"valid then \xff\xfe invalid")
        await expect_close(ws, (1007,), "invalid UTF-8 text (RFC 6455 8.1)")
    async with peer.connect() as ws:
        await ws.write_frame(False, OP_TEXT, "ok ".encode())
        await ws.write_frame(True, OP_CONT, b"\xc3\x28")  # bad continuation byte
        await expect_close(ws, (1007,), "invalid UTF-8 in a continuation frame")
    async with peer.connect() as ws:
        await ws.write_frame(True, OP_CLOSE, struct.pack("!H", 1000) + b"\xff")
        await expect_close(ws, (1007, 1002), "close reason that is not UTF-8 (RFC 6455 5.5.1)")
    async with peer.connect() as ws:
        await ws.write_frame(True, OP_CLOSE, struct.pack("!H", 999))
        await expect_close(ws, (1002,), "close code 999 (RFC 6455 7.4)")
    async with peer.connect() as ws:
        await ws.write_frame(True, OP_CONT, b"no message to continue")
        await expect_close(ws, (1002,), "continuation frame without a message (RFC 6455 5.4)")


async def case_too_big(peer):
    async with peer.connect(peer.small_url) as ws:
        await echo(ws, os.urandom(1000), "binary at the 1000-byte limit")
        await ws.send(b"y" * 1001)
        await expect_close(ws, (1009,), "binary over the 1000-byte limit (RFC 6455 7.4.1)")


async def case_shutdown(peer, pid):
    async with peer.connect() as ws:
        await echo(ws, "before shutdown", "echo before shutdown")
        os.kill(pid, signal.SIGTERM)
        await expect_close(ws, (1001,), "server-initiated close on SIGTERM (going away)")


async def main(args):
    peer = Peer(args)
    cases = [
        ("text and binary of 0, 125, 126, 65535, 65536 bytes and 4 MiB", case_sizes(peer)),
        ("UTF-8 text with multi-byte characters", case_utf8(peer)),
        ("fragmented messages", case_fragmented(peer)),
        ("ping/pong", case_ping(peer)),
        ("client closes: 1000, 4000 + reason, empty", case_close(peer)),
        ("invalid input: 1007 and 1002", case_protocol_errors(peer)),
        ("message over the limit: 1009", case_too_big(peer)),
    ]
    if args.shutdown_pid:
        cases.append(("server closes: graceful shutdown", case_shutdown(peer, args.shutdown_pid)))
    for name, coroutine in cases:
        before = len(failures)
        try:
            await coroutine
        except Exception as e:  # any exception is a failed case, not a crash of the suite
            check(False, f"{name}: {type(e).__name__}: {e or f'no answer within {TIMEOUT} s'}")
        print(f"{'ok  ' if len(failures) == before else 'FAIL'} {name}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--small-url", required=True)
    parser.add_argument("--ca")
    parser.add_argument("--shutdown-pid", type=int)
    arguments = parser.parse_args()
    print(f"python websockets {websockets.__version__} -> {arguments.url}", flush=True)
    asyncio.run(main(arguments))
    if failures:
        print(f"{len(failures)} check(s) failed:\n  " + "\n  ".join(failures))
        sys.exit(1)
    print("all checks passed")
