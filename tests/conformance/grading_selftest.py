#!/usr/bin/python3
"""A test of the conformance suite's grading: it must grade as Autobahn grades, so that a slide
from OK never passes unnoticed.

    grading_selftest.py

It runs run_conformance.py (server role) against faulty_server below, an echo server written
for this test that gets chosen cases wrong on purpose, and checks each grade and the exit
status:

  case   what faulty_server does                                 grade
  5.19   everything right                                        OK
  7.1.6  everything right                                        INFORMATIONAL
  2.10   answers only the last of ten pings (5.5.3 allows it)    FAILED (Autobahn wants ten)
  6.3.1  fails invalid UTF-8 with 1002 instead of 1007           NON-STRICT (WRONG CODE)
  6.4.1  fails the message at its valid first fragment           FAILED (too early)
  6.4.3  fails invalid UTF-8 only once the message is complete   NON-STRICT (not fail-fast)
  hs.9   refuses version 8 with a 400 that names no version      FAILED (4.4: any refusal)
  12.1.1 permessage-deflate right (its own, on zlib)              OK
  12.2.1 declines permessage-deflate                              FAILED (Autobahn: UNIMPLEMENTED)
  13.2.3 agrees server_no_context_takeover, keeps its context     FAILED (echoes do not inflate)
  13.3.1 answers server_max_window_bits=10 to an offer of 9       FAILED (RFC 7692 7.1.2.1)

A NON-STRICT grade must fail the run unless the allow-list names it: the run is made once with
an empty allow-list (exit 1) and once, for the NON-STRICT cases alone, with both listed (exit 0).
Exit status 0 when every check holds.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from deflate import Agreed, Codec, check_element, format_element, parse_extensions  # noqa
from wire import (CLOSE, CONTINUATION, PING, PONG, TEXT, FrameParser, accept_response,  # noqa
                  close_payload, encode_frame, is_utf8, parse_head, read_head)

EXPECTED = {"5.19": "OK", "7.1.6": "INFORMATIONAL", "2.10": "FAILED", "6.3.1": "NON-STRICT",
            "6.4.1": "FAILED", "6.4.3": "NON-STRICT", "hs.9": "FAILED", "12.1.1": "OK",
            "12.2.1": "FAILED", "13.2.3": "FAILED", "13.3.1": "FAILED"}


def deflate_answer(head, case):
    """The faulty server's permessage-deflate: (response field, codec), or ("", None) when it
    declines. It accepts the first offer as a server should, except where the case says."""
    offers = [check_element(params, True)[0] for name, params in
              parse_extensions(head.get_all("Sec-WebSocket-Extensions"))
              if name == "permessage-deflate"]
    if not offers or case == "12.2.1":
        return "", None
    offer = offers[0]
    response = {k: v for k, v in offer.items() if k.startswith("server_")}
    if offer.get("client_no_context_takeover"):
        response["client_no_context_takeover"] = True
    agreed = Agreed.from_response(response)
    if case == "13.2.3":
        agreed.server_no_context_takeover = False  # what it does, not what it answered
    if case == "13.3.1":
        response["server_max_window_bits"] = 10
    return (f"Sec-WebSocket-Extensions: {format_element(response)}\r\n",
            Codec(agreed, we_are_client=False))


# --- the faulty echo server (run as a child: grading_selftest.py --serve ...) ----------------

def serve_connection(sock):
    import time
    raw, rest = read_head(sock, time.monotonic() + 5)
    if not raw:
        return sock.close()
    head = parse_head(raw)
    case = (re.search(r"case=([^&\s]+)", head.start_line) or [None, ""])[1]
    if head.get("Sec-WebSocket-Version") != "13":
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        return sock.close()
    extension, codec = deflate_answer(head, case)
    sock.sendall(accept_response(head.get("Sec-WebSocket-Key"), extension))
    parser = FrameParser()
    message = None  # [opcode, bytearray, compressed]
    pings = []

    def send(opcode, payload=b"", rsv=0):
        sock.sendall(encode_frame(opcode, payload, rsv=rsv))

    def fail(code):
        send(CLOSE, close_payload(code))
        sock.shutdown(socket.SHUT_WR)

    data = rest
    while True:
        for f in parser.feed(data):
            if f.opcode == PING:
                pings.append(f.payload)
                if case != "2.10" or len(pings) == 10:
                    send(PONG, f.payload)
            elif f.opcode == CLOSE:
                send(CLOSE, f.payload[:2])
                sock.shutdown(socket.SHUT_WR)
            elif f.opcode in (TEXT, CONTINUATION) or f.opcode == 2:
                if f.opcode != CONTINUATION:
                    message = [f.opcode, bytearray(), f.rsv == 4]
                message[1] += f.payload
                if case == "6.4.1":
                    return fail(1007)  # at the valid first fragment: too early
                if f.fin:
                    opcode, payload = message[0], bytes(message[1])
                    if message[2]:
                        payload = codec.inflate(payload)
                    if opcode == TEXT and not is_utf8(payload):
                        return fail(1002 if case == "6.3.1" else 1007)
                    if codec:
                        send(opcode, codec.compress(payload), rsv=4)
                    else:
                        send(opcode, payload)
        try:
            data = sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            return sock.close()


def serve():
    listener = socket.create_server(("127.0.0.1", 0))
    print(f"echo server listening on ws://127.0.0.1:{listener.getsockname()[1]}", flush=True)
    while True:
        sock, _ = listener.accept()
        threading.Thread(target=serve_connection, args=(sock,), daemon=True).start()


# --- the checks ------------------------------------------------------------------------------

def run_suite(cases, allow_lines):
    with tempfile.TemporaryDirectory() as tmp:
        server = os.path.join(tmp, "faulty_server")
        with open(server, "w") as f:
            f.write(f"#!/bin/sh\nexec {sys.executable} {os.path.abspath(__file__)} --serve\n")
        os.chmod(server, 0o755)
        allow = os.path.join(tmp, "allow.txt")
        with open(allow, "w") as f:
            f.write("".join(line + "\n" for line in allow_lines))
        done = subprocess.run([sys.executable, os.path.join(HERE, "run_conformance.py"),
                               "--role", "server", "--echo-server", server, "--allow", allow,
                               "--cases", "|".join(re.escape(c) for c in cases)],
                              capture_output=True, text=True, timeout=300)
    grades = {}
    for line in done.stdout.splitlines():
        parts = line.split()
        if parts and parts[0] in cases and parts[-1] in EXPECTED.values():
            grades[parts[0]] = parts[-1]
    return done.returncode, grades, done.stdout + done.stderr


def main():
    if sys.argv[1:2] == ["--serve"]:
        signal_exit()
        serve()
        return 0
    problems = []
    status, grades, output = run_suite(list(EXPECTED), [])
    for case, grade in EXPECTED.items():
        if grades.get(case) != grade:
            problems.append(f"{case}: graded {grades.get(case)}, expected {grade}")
    if status != 1:
        problems.append(f"run with FAILED and unlisted NON-STRICT cases exited {status}, not 1")
    non_strict = [c for c, g in EXPECTED.items() if g == "NON-STRICT"]
    status, grades, allowed_output = run_suite(
        non_strict, [f"{c} server deliberately non-strict for this test" for c in non_strict])
    if status != 0:
        problems.append(f"run whose NON-STRICT cases are all allowed exited {status}, not 0")
    status, _, _ = run_suite(non_strict, [f"{non_strict[0]} server only one of them allowed"])
    if status != 1:
        problems.append(f"run with one NON-STRICT case not allowed exited {status}, not 1")
    if problems:
        print(output)
        print("\n".join(f"FAIL: {p}" for p in problems))
        return 1
    print(f"grading self-test: {len(EXPECTED)} grades as Autobahn's, NON-STRICT fails the run "
          "unless allowed")
    return 0


def signal_exit():
    import signal
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))


if __name__ == "__main__":
    sys.exit(main())
