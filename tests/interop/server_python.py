#!/usr/bin/python3
"""Python `websockets` (Debian python3-websockets 10.x) echo server for duplex's client.

    server_python.py [--tls-cert CERT --tls-key KEY]

Listens on 127.0.0.1, an ephemeral port; prints "listening PORT" once ready. Paths:
  /          echoes every message, text as text, binary as binary;
  /fragment  echoes each message in three fragments (a UTF-8 character may be split between
             them), with a ping between the fragments whose pong must carry the same payload:
             a ping still unanswered after 10 s, or when the connection ends, is an error
             (also /fragment?QUERY, which run_interop.sh uses for a client that never answers);
  /close     echoes the first message, then closes with 4001 "server says bye".
When a connection ends it prints "closed PATH CODE REASON" (the code and reason the client
sent), and "error PATH WHAT" for anything the client got wrong. Runs until killed.

Run it with /usr/bin/python3: that is the interpreter Debian's package is installed for.
"""
import argparse
import asyncio
import os
import ssl
import sys

import websockets
from websockets.frames import OP_BINARY, OP_CONT, OP_TEXT

TIMEOUT = 10


def report(line):
    print(line, flush=True)


async def echo_fragmented(ws, path, message):
    data = message.encode() if isinstance(message, str) else message
    cut1, cut2 = len(data) // 3, 2 * len(data) // 3
    first_opcode = OP_TEXT if isinstance(message, str) else OP_BINARY
    payload = f"ping {len(data)}".encode()
    await ws.write_frame(False, first_opcode, data[:cut1])
    pong = await ws.ping(payload)  # completes only on a pong with this payload
    try:
        await ws.write_frame(False, OP_CONT, data[cut1:cut2])
        await ws.write_frame(True, OP_CONT, data[cut2:])
        await asyncio.wait_for(pong, TIMEOUT)
    except asyncio.TimeoutError:
        report(f"error {path} no pong within {TIMEOUT} s for a ping sent between fragments")
    except websockets.ConnectionClosed:
        # A client that closes (or drops) without answering must not pass because it left
        # first: the pending ping ends with ConnectionClosed, which the handler would swallow.
        report(f"error {path} the connection ended with no pong for {payload!r}, "
               "sent between fragments")
        raise


async def handler(ws):
    path = ws.path
    # duplex's client offers permessage-deflate by default where built with zlib (and the
    # silent client, websockets itself, always does): the messages below are compressed.
    deflated = any(e.name == "permessage-deflate" for e in ws.extensions)
    if os.environ.get("DUPLEX_INTEROP_DEFLATE") == "1" and not deflated:
        report(f"error {path} the client did not offer permessage-deflate")
    try:
        async for message in ws:
            if path == "/fragment" or path.startswith("/fragment?"):
                await echo_fragmented(ws, path, message)
            else:
                await ws.send(message)
            if path == "/close":
                await ws.close(4001, "server says bye")
                break
    except websockets.ConnectionClosed:
        pass
    except Exception as e:
        report(f"error {path} {type(e).__name__}: {e}")
    await ws.wait_closed()
    report(f"closed {path} {ws.close_code} {ws.close_reason}")


async def main(args):
    context = None
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
    async with websockets.serve(
        handler, "127.0.0.1", 0, ssl=context, max_size=None, ping_interval=None,
        close_timeout=TIMEOUT,
    ) as server:
        port = server.sockets[0].getsockname()[1]
        report(f"listening {port}")
        await asyncio.Future()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--tls-cert")
    parser.add_argument("--tls-key")
    arguments = parser.parse_args()
    if bool(arguments.tls_cert) != bool(arguments.tls_key):
        parser.error("--tls-cert and --tls-key go together")
    try:
        asyncio.run(main(arguments))
    except KeyboardInterrupt:
        sys.exit(0)
