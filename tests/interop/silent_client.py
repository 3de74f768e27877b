#!/usr/bin/python3
"""A client that never answers pings: the check of the peer servers' own pong check.

    silent_client.py URL [--ca CERT]

URL is a /fragment?... path of server_node.js or server_python.py. Standard library only, its
own frame codec: it sends one text message, reads the three fragments of the echo and the ping
the server sends between them, does not answer the ping, then closes with 1000. The server must
then log "error /fragment?... ... no pong ..."; run_interop.sh checks that it does, so a peer
server whose check would let a silent client pass fails the interop case instead.

Exit status: 0 when the exchange went as described (the echo and a ping arrived), 1 otherwise.
"""
import argparse
import base64
import os
import socket
import ssl
import struct
import sys
import urllib.parse

TIMEOUT = 10  # seconds for any single read


def masked_frame(opcode, payload):
    key = os.urandom(4)
    head = bytes([0x80 | opcode])
    n = len(payload)
    if n < 126:
        head += bytes([0x80 | n])
    elif n < 65536:
        head += bytes([0x80 | 126]) + struct.pack("!H", n)
    else:
        head += bytes([0x80 | 127]) + struct.pack("!Q", n)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buffer = b""

    def take(self, n):
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server ended the connection")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def head(self):
        while b"\r\n\r\n" not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("no HTTP response")
            self.buffer += chunk
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        return head.decode("latin-1")

    def frame(self):
        b0, b1 = self.take(2)
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.take(8))[0]
        return b0 & 0x80 != 0, b0 & 0x0F, self.take(n)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--ca")
    args = parser.parse_args()
    url = urllib.parse.urlsplit(args.url)
    sock = socket.create_connection((url.hostname, url.port), timeout=TIMEOUT)
    if url.scheme == "wss":
        context = ssl.create_default_context(cafile=args.ca)
        sock = context.wrap_socket(sock, server_hostname=url.hostname)
    target = url.path + ("?" + url.query if url.query else "")
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall((f"GET {target} HTTP/1.1\r\nHost: {url.hostname}:{url.port}\r\n"
                  "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                  f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n").encode())
    reader = Reader(sock)
    status = reader.head().split("\r\n", 1)[0]
    if " 101 " not in status + " ":
        print(f"silent client: upgrade refused: {status}")
        return 1

    message = "silent ✓".encode()
    sock.sendall(masked_frame(0x1, message))
    echoed, pings = b"", []
    while True:  # the three fragments, and the ping between them, left unanswered
        fin, opcode, payload = reader.frame()
        if opcode == 0x9:
            pings.append(payload)
        elif opcode in (0x0, 0x1):
            echoed += payload
            if fin:
                break
        else:
            print(f"silent client: unexpected opcode {opcode}")
            return 1
    sock.sendall(masked_frame(0x8, struct.pack("!H", 1000) + b"bye"))
    try:  # the close reply, then the server ends the connection
        while reader.frame()[1] != 0x8:
            pass
    except (EOFError, OSError):
        pass
    sock.close()
    print(f"silent client: echo {echoed!r}, {len(pings)} ping(s) left unanswered: {pings!r}")
    return 0 if echoed == message and pings else 1


if __name__ == "__main__":
    sys.exit(main())
