"""The cases: Autobahn|Testsuite sections 1-7, 9, 10, 12 and 13 (Autobahn has no section 8, and
its section 11 is empty), all 517 of them, written from what each of its cases does — the same sizes, fragmentation, pauses and
expected outcomes — plus cases that are not Autobahn's: the opening handshake of RFC 6455
section 4 (ids hs.* for the server role, hc.* for the client role), masking (m.*), and more
close codes and the default limits (x.*).

Autobahn's numbering is kept so results can be compared with its reports. Both duplex
programs run with their default limits; no case is resized to fit them.

Every frame case runs the same script in both roles: the test side is the client (frames
masked) against duplex's echo server, or the server (frames unmasked) against duplex's client.
"""
import re
import time
from dataclasses import dataclass

import corpora
from deflate import Negotiation, accepting, first_of
from judge import Echo, Fail, Informational, NotOpened, Refused
from wire import (BINARY, CLOSE, CONTINUATION, PING, PONG, TEXT, accept_key, accept_response,
                  close_payload, encode_frame, is_utf8)

# Autobahn's "frame-wise chops" and "octet-wise chops": a pause between writes so that each
# arrives in its own read on the other side.
FRAME_PAUSE = 0.01
OCTET_PAUSE = 0.001
# Autobahn's pause in 5.19, 5.20 and 6.4.x.
LONG_PAUSE = 1.0
SLOW_TIMEOUT = 60.0  # for the multi-megabyte cases of section 9 (a sanitizer build is slow)


@dataclass
class Case:
    id: str
    description: str
    expect: object
    script: object = None  # script(peer) -> bytes that finish the message (fail-fast) or None
    roles: tuple = ("server", "client")
    timeout: float = 2.0
    request: object = None  # server role: request(host, target, key) -> bytes to send
    response: object = None  # client role: response(key) -> bytes to answer the request with
    # permessage-deflate (sections 12, 13): the offers, the acceptance and what each role checks
    negotiation: object = None
    client_args: tuple = ()  # client role: flags for conformance_client after the URL
    heavy: bool = None  # one of the few long transfers run at a time (default: timeout > 2 s)

    @property
    def section(self):
        return self.id.split(".")[0]


SECTIONS = {
    "1": "Framing",
    "2": "Pings/Pongs",
    "3": "Reserved Bits",
    "4": "Opcodes",
    "5": "Fragmentation",
    "6": "UTF-8 Handling",
    "7": "Close Handling",
    "9": "Limits/Performance",
    "10": "Miscellaneous",
    "12": "WebSocket Compression (different payloads)",
    "13": "WebSocket Compression (different parameters)",
    "x": "Extra: close codes, default limits (not Autobahn's)",
    "hs": "Opening handshake, server (RFC 6455 4.2)",
    "hc": "Opening handshake, client (RFC 6455 4.1)",
    "m": "Masking (RFC 6455 5.1, 5.3)",
}

CASES = []


def case(id, description, expect, script=None, **kw):
    CASES.append(Case(id, description, expect, script, **kw))


def msg(payload, opcode=TEXT):
    return ("message", opcode, payload)


def pong(payload):
    return ("pong", payload)


def echo(payload, opcode=TEXT, **kw):
    return Echo([[msg(payload, opcode)]], **kw)


# --- 1 Framing -----------------------------------------------------------------------------

for opcode, sub, kind, fill in ((TEXT, 1, "text", b"*"), (BINARY, 2, "binary", b"\xfe")):
    for n, size in enumerate((0, 125, 126, 127, 128, 65535, 65536), 1):
        case(f"1.{sub}.{n}", f"{kind} message, payload {size} bytes", echo(fill * size, opcode),
             lambda p, o=opcode, s=size, f=fill: p.send(o, f * s))
    case(f"1.{sub}.8", f"{kind} message, payload 65536 bytes, sent in chops of 997 bytes",
         echo(fill * 65536, opcode), lambda p, o=opcode, f=fill: p.send(o, f * 65536, chop=997))

# --- 2 Pings/Pongs -------------------------------------------------------------------------

for n, (what, payload) in enumerate((("no payload", b""),
                                     ("small text payload", b"Hello, world!"),
                                     ("small binary payload", b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff"),
                                     ("binary payload of 125 bytes", b"\xfe" * 125)), 1):
    case(f"2.{n}", f"ping with {what}: a pong with the same payload", Echo([[pong(payload)]]),
         lambda p, d=payload: p.send(PING, d))
case("2.5", "ping with a 126-byte payload: control frames carry at most 125 (5.5)", Fail(1002),
     lambda p: p.send(PING, b"\xfe" * 126))
case("2.6", "ping with 125-byte payload, sent in octet-wise chops", Echo([[pong(b"\xfe" * 125)]]),
     lambda p: p.send(PING, b"\xfe" * 125, chop=1, delay=OCTET_PAUSE))
case("2.7", "unsolicited pong without payload: no answer", Echo([[]]), lambda p: p.send(PONG))
case("2.8", "unsolicited pong with payload: no answer", Echo([[]]),
     lambda p: p.send(PONG, b"unsolicited pong payload"))
case("2.9", "unsolicited pong, then a ping: only the ping is answered",
     Echo([[pong(b"ping payload")]]),
     lambda p: p.send_frames([p.frame(PONG, b"unsolicited pong payload"),
                              p.frame(PING, b"ping payload")]))

TEN_PINGS = [b"payload-%d" % i for i in range(10)]

# 5.5.3 would let an endpoint answer only the most recent ping; Autobahn expects all ten.
case("2.10", "10 pings with payloads: a pong for each",
     Echo([[pong(x) for x in TEN_PINGS]]),
     lambda p: p.send_frames([p.frame(PING, x) for x in TEN_PINGS]))
case("2.11", "10 pings with payloads, sent in octet-wise chops",
     Echo([[pong(x) for x in TEN_PINGS]]),
     lambda p: p.send_frames([p.frame(PING, x) for x in TEN_PINGS], chop=1, delay=OCTET_PAUSE))

# --- 3 Reserved bits -----------------------------------------------------------------------

HELLO = b"Hello, world!"
ECHO_HELLO_FIRST = dict(ok=[[msg(HELLO)]], non_strict=[[]])  # fail-fast may lose the echo

case("3.1", "text message with RSV = 1 (5.2: no extension defines it)", Fail(1002),
     lambda p: p.send(TEXT, HELLO, rsv=1))
case("3.2", "text message, then text with RSV = 2, then ping", Fail(1002, **ECHO_HELLO_FIRST),
     lambda p: p.send_frames([p.frame(TEXT, HELLO), p.frame(TEXT, HELLO, rsv=2), p.frame(PING)]))
case("3.3", "text message, then text with RSV = 3, then ping, in frame-wise chops",
     Fail(1002, **ECHO_HELLO_FIRST),
     lambda p: p.send_frames([p.frame(TEXT, HELLO), p.frame(TEXT, HELLO, rsv=3), p.frame(PING)],
                             per_frame_delay=FRAME_PAUSE))
case("3.4", "text message, then text with RSV = 4, then ping, in octet-wise chops",
     Fail(1002, **ECHO_HELLO_FIRST),
     lambda p: p.send_frames([p.frame(TEXT, HELLO), p.frame(TEXT, HELLO, rsv=4), p.frame(PING)],
                             chop=1, delay=OCTET_PAUSE))
case("3.5", "binary message with RSV = 5", Fail(1002),
     lambda p: p.send(BINARY, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff", rsv=5))
case("3.6", "ping with RSV = 6", Fail(1002), lambda p: p.send(PING, HELLO, rsv=6))
case("3.7", "close with RSV = 7", Fail(1002), lambda p: p.send(CLOSE, close_payload(1000), rsv=7))

# --- 4 Opcodes -----------------------------------------------------------------------------

for sub, kind, first in ((1, "non-control", 3), (2, "control", 11)):
    case(f"4.{sub}.1", f"frame with reserved {kind} opcode {first}", Fail(1002),
         lambda p, o=first: p.send(o))
    case(f"4.{sub}.2", f"frame with reserved {kind} opcode {first + 1} and a payload", Fail(1002),
         lambda p, o=first + 1: p.send(o, b"reserved opcode payload"))
    case(f"4.{sub}.3", f"text message, then reserved {kind} opcode {first + 2}, then ping",
         Fail(1002, **ECHO_HELLO_FIRST),
         lambda p, o=first + 2: p.send_frames([p.frame(TEXT, HELLO), p.frame(o), p.frame(PING)]))
    case(f"4.{sub}.4", f"text message, then reserved {kind} opcode {first + 3} with payload, "
         "then ping", Fail(1002, **ECHO_HELLO_FIRST),
         lambda p, o=first + 3: p.send_frames([p.frame(TEXT, HELLO), p.frame(o, b"payload"),
                                               p.frame(PING)]))
    case(f"4.{sub}.5", f"text message, then reserved {kind} opcode {first + 4} with payload, "
         "then ping, in octet-wise chops", Fail(1002, **ECHO_HELLO_FIRST),
         lambda p, o=first + 4: p.send_frames([p.frame(TEXT, HELLO), p.frame(o, b"payload"),
                                               p.frame(PING)], chop=1, delay=OCTET_PAUSE))

# --- 5 Fragmentation -----------------------------------------------------------------------

CHOPS = {"in one chop": {}, "in frame-wise chops": {"per_frame_delay": FRAME_PAUSE},
         "in octet-wise chops": {"chop": 1, "delay": OCTET_PAUSE}}


def fragments(*specs):
    """Frames from (opcode, payload, fin) triples; built when the script runs, with that
    connection's masking."""
    return lambda p: [p.frame(o, d, fin) for o, d, fin in specs]


def send(build, **how):
    return lambda p: p.send_frames(build(p), **how)


case("5.1", "ping fragmented into 2 fragments (5.5: control frames are not fragmented)",
     Fail(1002), send(fragments((PING, b"fragment1", False), (CONTINUATION, b"fragment2", True))))
case("5.2", "pong fragmented into 2 fragments", Fail(1002),
     send(fragments((PONG, b"fragment1", False), (CONTINUATION, b"fragment2", True))))
TWO_FRAGMENTS = fragments((TEXT, b"fragment1", False), (CONTINUATION, b"fragment2", True))
WITH_PING = fragments((TEXT, b"fragment1", False), (PING, b"ping payload", True),
                      (CONTINUATION, b"fragment2", True))
for n, how in enumerate(CHOPS, 3):
    case(f"5.{n}", f"text message in 2 fragments, {how}", echo(b"fragment1fragment2"),
         send(TWO_FRAGMENTS, **CHOPS[how]))
for n, how in enumerate(CHOPS, 6):
    case(f"5.{n}", f"text message in 2 fragments with a ping in between, {how}",
         Echo([[pong(b"ping payload"), msg(b"fragment1fragment2")]]), send(WITH_PING, **CHOPS[how]))
for first, fin in ((9, True), (12, False)):
    for n, how in enumerate(CHOPS, first):
        case(f"5.{n}", f"continuation with FIN = {fin} and nothing to continue, then a text "
             f"message, {how} (5.4)", Fail(1002),
             send(fragments((CONTINUATION, b"fragment1", fin), (TEXT, b"fragment2", True)),
                  **CHOPS[how]))
case("5.15", "text in 2 fragments, then a continuation with FIN = false and nothing to "
     "continue, then a text message", Fail(1002, ok=[[msg(b"fragment1fragment2")]],
                                          non_strict=[[]]),
     send(fragments((TEXT, b"fragment1", False), (CONTINUATION, b"fragment2", True),
                    (CONTINUATION, b"fragment3", False), (TEXT, b"fragment4", True))))
for n, fin in ((16, False), (17, True)):
    case(f"5.{n}", f"twice: continuation with FIN = {fin} and nothing to continue, then text in "
         "2 fragments", Fail(1002),
         send(fragments(*[(CONTINUATION, b"fragment1", fin), (TEXT, b"fragment2", False),
                          (CONTINUATION, b"fragment3", True)] * 2)))
case("5.18", "text message in 2 fragments, both with opcode text", Fail(1002),
     send(fragments((TEXT, b"fragment1", False), (TEXT, b"fragment2", True))))


def fragments_with_pings(p, per_frame_delay):
    """5.19: 2 fragments, a ping, a 1 s pause, 2 fragments, a ping, the last fragment."""
    f = [p.frame(TEXT, b"fragment1", False), p.frame(CONTINUATION, b"fragment2", False),
         p.frame(PING, b"pongme 1!"), p.frame(CONTINUATION, b"fragment3", False),
         p.frame(CONTINUATION, b"fragment4", False), p.frame(PING, b"pongme 2!"),
         p.frame(CONTINUATION, b"fragment5", True)]
    p.send_frames(f[:3], per_frame_delay)
    time.sleep(LONG_PAUSE)
    p.send_frames(f[3:], per_frame_delay)


FIVE_FRAGMENTS = Echo([[pong(b"pongme 1!"), pong(b"pongme 2!"),
                        msg(b"fragment1fragment2fragment3fragment4fragment5")]])
case("5.19", f"text in 5 fragments, pings in between, a {LONG_PAUSE:g} s pause",
     FIVE_FRAGMENTS, lambda p: fragments_with_pings(p, 0))
case("5.20", "as 5.19, in frame-wise chops", FIVE_FRAGMENTS,
     lambda p: fragments_with_pings(p, FRAME_PAUSE))

# --- 6 UTF-8 handling ----------------------------------------------------------------------

KOSME = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"  # κόσμε
HELLO_UTF8 = "Hello-µ@ßöäüàá-UTF-8!!".encode()
INVALID_TEXT = KOSME + b"\xed\xa0\x80" + b"edited"  # a UTF-16 surrogate in the middle


def one_byte_fragments(p, data):
    frames = [p.frame(TEXT if i == 0 else CONTINUATION, data[i:i + 1], i == len(data) - 1)
              for i in range(len(data))]
    p.send_frames(frames)


def invalid_utf8(**kw):
    # 7.4.1 has a code for this one; Autobahn grades any other (1002 too) WRONG CODE.
    return Fail(1007, **kw)


case("6.1.1", "text message of length 0", echo(b""), lambda p: p.send(TEXT, b""))
case("6.1.2", "text message in 3 fragments, each of length 0", echo(b""),
     send(fragments((TEXT, b"", False), (CONTINUATION, b"", False), (CONTINUATION, b"", True))))
case("6.1.3", "text message in 3 fragments, first and last of length 0",
     echo(b"middle frame payload"),
     send(fragments((TEXT, b"", False), (CONTINUATION, b"middle frame payload", False),
                    (CONTINUATION, b"", True))))
case("6.2.1", "valid UTF-8 text message in one fragment", echo(HELLO_UTF8),
     lambda p: p.send(TEXT, HELLO_UTF8))
case("6.2.2", "valid UTF-8 text in 2 fragments, split on a code point boundary", echo(HELLO_UTF8),
     send(fragments((TEXT, HELLO_UTF8[:7], False), (CONTINUATION, HELLO_UTF8[7:], True))))
case("6.2.3", "valid UTF-8 text in 1-byte fragments (splits inside code points)",
     echo(HELLO_UTF8), lambda p: one_byte_fragments(p, HELLO_UTF8))
case("6.2.4", "valid UTF-8 text (κόσμε) in 1-byte fragments", echo(KOSME),
     lambda p: one_byte_fragments(p, KOSME))
case("6.3.1", "invalid UTF-8 text message in one fragment", invalid_utf8(),
     lambda p: p.send(TEXT, INVALID_TEXT))
case("6.3.2", "invalid UTF-8 text message in 1-byte fragments", invalid_utf8(),
     lambda p: one_byte_fragments(p, INVALID_TEXT))


def still_open(p):
    """True when the peer has neither closed nor ended the connection (checked before the
    invalid part goes out: failing on the valid start is not fail-fast, it is wrong)."""
    return p.observed.close is None and p.observed.peer_ended_tcp_at is None


def fail_fast_fragments(part1, part2, part3):
    """6.4.1/6.4.2: part2 makes the text invalid; the peer must fail before part3 arrives.
    Returns (closed before part2, the bytes of part3)."""
    def script(p):
        p.send(TEXT, part1, fin=False)
        time.sleep(LONG_PAUSE)
        if not still_open(p):
            return True, b""
        p.send(CONTINUATION, part2, fin=False)
        return False, p.frame(CONTINUATION, part3, True)
    return script


def fail_fast_chops(part1, part2, part3):
    """6.4.3/6.4.4: one frame, written in three pieces; the peer must fail inside the frame."""
    def script(p):
        whole = p.frame(TEXT, part1 + part2 + part3)
        start = len(whole) - len(part1 + part2 + part3)
        cut1, cut2 = start + len(part1), start + len(part1) + len(part2)
        p.send_raw(whole[:cut1])
        time.sleep(LONG_PAUSE)
        if not still_open(p):
            return True, b""
        p.send_raw(whole[cut1:cut2])
        return False, whole[cut2:]
    return script


FAIL_FAST_PARTS = ((KOSME, b"\xf4\x90\x80\x80", b"edited"),  # U+110000: above U+10FFFF
                   (KOSME + b"\xf4", b"\x90", b"\x80\x80edited"))
for n, parts in enumerate(FAIL_FAST_PARTS, 1):
    case(f"6.4.{n}", "fail-fast: text in 3 fragments, the 2nd makes it invalid "
         f"({parts[1]!r}); close 1007 must come before the 3rd", invalid_utf8(fail_fast=True),
         fail_fast_fragments(*parts))
    case(f"6.4.{n + 2}", "fail-fast: one text frame in 3 chops, the 2nd makes it invalid "
         f"({parts[1]!r}); close 1007 must come before the 3rd", invalid_utf8(fail_fast=True),
         fail_fast_chops(*parts))

# 6.5 to 6.23: Markus Kuhn's UTF-8 decoder test sequences as Autobahn arranges them, each sent
# as one text message: valid ones must be echoed, invalid ones must fail the connection (1007).
# The flag is Autobahn's; load time checks it against Python's strict decoder.
UTF8_SEQUENCES = [
    ("Some valid UTF-8 sequences",
     [(True, b"hello\x24world"), (True, b"hello\xc2\xa2world"), (True, b"hello\xe2\x82\xacworld"),
      (True, b"hello\xf0\xa4\xad\xa2world"), (True, KOSME)]),
    ("All prefixes of a valid UTF-8 string that contains multi-byte code points",
     [(is_utf8(KOSME[:i]), KOSME[:i]) for i in range(1, len(KOSME) + 1)]),
    ("First possible sequence of a certain length",
     [(True, b"\x00"), (True, b"\xc2\x80"), (True, b"\xe0\xa0\x80"), (True, b"\xf0\x90\x80\x80")]),
    ("First possible sequence length 5/6 (invalid code points)",
     [(False, b"\xf8\x88\x80\x80\x80"), (False, b"\xfc\x84\x80\x80\x80\x80")]),
    ("Last possible sequence of a certain length",
     [(True, b"\x7f"), (True, b"\xdf\xbf"), (True, b"\xef\xbf\xbf"), (True, b"\xf4\x8f\xbf\xbf")]),
    ("Last possible sequence length 4/5/6 (invalid code points)",
     [(False, b"\xf7\xbf\xbf\xbf"), (False, b"\xfb\xbf\xbf\xbf\xbf"),
      (False, b"\xfd\xbf\xbf\xbf\xbf\xbf")]),
    ("Other boundary conditions",
     [(True, b"\xed\x9f\xbf"), (True, b"\xee\x80\x80"), (True, b"\xef\xbf\xbd"),
      (True, b"\xf4\x8f\xbf\xbf"), (False, b"\xf4\x90\x80\x80")]),
    ("Unexpected continuation bytes",
     [(False, b"\x80"), (False, b"\xbf"), (False, b"\x80\xbf"), (False, b"\x80\xbf\x80"),
      (False, b"\x80\xbf\x80\xbf"), (False, b"\x80\xbf\x80\xbf\x80"),
      (False, b"\x80\xbf\x80\xbf\x80\xbf"), (False, bytes(range(0x80, 0xC0)))]),
    ("Lonely start characters",
     [(False, b"".join(bytes([b]) + b" " for b in range(lo, hi + 1)))
      for lo, hi in ((0xC0, 0xDF), (0xE0, 0xEF), (0xF0, 0xF7), (0xF8, 0xFB), (0xFC, 0xFD))]),
    ("Sequences with last continuation byte missing",
     [(False, s) for s in (b"\xc0", b"\xe0\x80", b"\xf0\x80\x80", b"\xf8\x80\x80\x80",
                           b"\xfc\x80\x80\x80\x80", b"\xdf", b"\xef\xbf", b"\xf7\xbf\xbf",
                           b"\xfb\xbf\xbf\xbf", b"\xfd\xbf\xbf\xbf\xbf")]),
    ("Concatenation of incomplete sequences",
     [(False, b"\xc0\xe0\x80\xf0\x80\x80\xf8\x80\x80\x80\xfc\x80\x80\x80\x80\xdf\xef\xbf"
              b"\xf7\xbf\xbf\xfb\xbf\xbf\xbf\xfd\xbf\xbf\xbf\xbf")]),
    ("Impossible bytes", [(False, b"\xfe"), (False, b"\xff"), (False, b"\xfe\xfe\xff\xff")]),
    ("Examples of an overlong ASCII character",
     [(False, s) for s in (b"\xc0\xaf", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf",
                           b"\xf8\x80\x80\x80\xaf", b"\xfc\x80\x80\x80\x80\xaf")]),
    ("Maximum overlong sequences",
     [(False, s) for s in (b"\xc1\xbf", b"\xe0\x9f\xbf", b"\xf0\x8f\xbf\xbf",
                           b"\xf8\x87\xbf\xbf\xbf", b"\xfc\x83\xbf\xbf\xbf\xbf")]),
    ("Overlong representation of the NUL character",
     [(False, s) for s in (b"\xc0\x80", b"\xe0\x80\x80", b"\xf0\x80\x80\x80",
                           b"\xf8\x80\x80\x80\x80", b"\xfc\x80\x80\x80\x80\x80")]),
    ("Single UTF-16 surrogates",
     [(False, s) for s in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80", b"\xed\xaf\xbf",
                           b"\xed\xb0\x80", b"\xed\xbe\x80", b"\xed\xbf\xbf")]),
    ("Paired UTF-16 surrogates",
     [(False, hi + lo) for hi in (b"\xed\xa0\x80", b"\xed\xad\xbf", b"\xed\xae\x80",
                                  b"\xed\xaf\xbf") for lo in (b"\xed\xb0\x80", b"\xed\xbf\xbf")]),
    ("Non-character code points (valid UTF-8)",
     [(True, b"\xef\xbf\xbe"), (True, b"\xef\xbf\xbf")] +
     [(True, bytes([z1, z2, 0xBF, z3])) for z1 in (0xF0, 0xF1, 0xF2, 0xF3, 0xF4)
      for z2 in (0x8F, 0x9F, 0xAF, 0xBF) if not (z1 == 0xF0 and z2 == 0x8F)
      and not (z1 == 0xF4 and z2 != 0x8F) for z3 in (0xBE, 0xBF)]),
    ("Unicode specials (i.e. replacement char)",
     [(True, b"\xef\xbf" + bytes([b])) for b in range(0xB9, 0xC0)]),
]

for group, (title, sequences) in enumerate(UTF8_SEQUENCES, 5):
    for n, (valid, payload) in enumerate(sequences, 1):
        assert valid == is_utf8(payload), (group, n, payload)
        shown = payload if len(payload) <= 16 else payload[:14] + b"..."
        case(f"6.{group}.{n}", f"{title}: {shown.hex(' ')}",
             echo(payload) if valid else invalid_utf8(), lambda p, d=payload: p.send(TEXT, d))

# --- 7 Close handling ----------------------------------------------------------------------

case("7.1.1", "text message, then close: the echo, then close 1000", echo(b"Hello World!"),
     lambda p: (p.send(TEXT, b"Hello World!"), p.send_close(1000)))
case("7.1.2", "two close frames: the second is ignored", Echo([[]]),
     lambda p: (p.send_close(1000), p.send(CLOSE, close_payload(1000))))
case("7.1.3", "ping after close: not answered (5.5.2)", Echo([[]]),
     lambda p: (p.send_close(1000), p.send(PING, b"Hello World!")))
case("7.1.4", "text message after close: not echoed", Echo([[]]),
     lambda p: (p.send_close(1000), p.send(TEXT, b"Hello World!")))
case("7.1.5", "first fragment, close, last fragment: no message", Echo([[]]),
     lambda p: (p.send(TEXT, b"fragment1", fin=False), p.send_close(1000),
                p.send(CONTINUATION, b"fragment2")))
BIG_7_1_6 = b"BAsd7&jh23" * 26214 + b"BA"  # 256 KiB, Autobahn's payload
case("7.1.6", "256 KiB message, a text message, close, ping, back to back: the echoes may be "
     "dropped for the close (informational)", Informational(),
     lambda p: (p.send_frames([p.frame(TEXT, BIG_7_1_6), p.frame(TEXT, b"Hello World!")]),
                p.send_close(1000), p.send(PING)))
case("7.3.1", "close with an empty payload: answered with a close",
     Echo([[]], close_codes=(None, 1000)), lambda p: p.send_close(payload=b""))
case("7.3.2", "close with a 1-byte payload (5.5.1: a code is 2 bytes)", Fail(1002),
     lambda p: p.send_close(payload=b"*"))
case("7.3.3", "close with code 1000", Echo([[]]), lambda p: p.send_close(1000))
case("7.3.4", "close with code 1000 and a reason", Echo([[]]),
     lambda p: p.send_close(1000, b"Hello World!"))
case("7.3.5", "close with code 1000 and a 123-byte reason (the longest)", Echo([[]]),
     lambda p: p.send_close(1000, b"*" * 123))
case("7.3.6", "close with code and a 124-byte reason: payload 126 > 125 (5.5)", Fail(1002),
     lambda p: p.send_close(1000, b"*" * 124))
case("7.5.1", "close with a reason that is not UTF-8 (5.5.1)", invalid_utf8(),
     lambda p: p.send_close(1000, INVALID_TEXT))
VALID_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999)
for n, code in enumerate(VALID_CODES, 1):
    case(f"7.7.{n}", f"close with valid code {code}: answered with {code} or 1000",
         Echo([[]], close_codes=(code, 1000)), lambda p, c=code: p.send_close(c))
INVALID_CODES = (0, 999, 1004, 1005, 1006, 1016, 1100, 2000, 2999)
for n, code in enumerate(INVALID_CODES, 1):
    case(f"7.9.{n}", f"close with invalid code {code} (7.4): fail with 1002", Fail(1002),
         lambda p, c=code: p.send_close(c))
# duplex fails these with 1002 (the x.* cases check that); Autobahn leaves them open.
for n, code in enumerate((5000, 65535), 1):
    case(f"7.13.{n}", f"close with code {code}, outside every range (7.4.2; informational)",
         Informational(), lambda p, c=code: p.send_close(c))

# --- 9 Limits and performance --------------------------------------------------------------
# Autobahn's sizes, payload patterns and fragmentations, against duplex's default limits.

MiB = 1 << 20
TEXT_PATTERN = b"BAsd7&jh23"  # what Autobahn repeats in 9.1.x and 9.5.x
BINARY_PATTERN = b"\x00\xfe\x23\xfa\xf0"  # in 9.2.x and 9.6.x


def repeated(pattern, size):
    return (pattern * (size // len(pattern) + 1))[:size]


def slow(**kw):
    return dict(timeout=SLOW_TIMEOUT, **kw)


def autobahn_fragments(payload, size):
    """Autobahn's fragmenter: pieces of `size` bytes, the last one marked final; when `size`
    divides the payload, that last piece is an empty continuation frame (4 MiB in 64-byte
    fragments: 65,537 frames)."""
    pieces = [payload[i:i + size] for i in range(0, len(payload), size)]
    if len(payload) % size == 0:
        pieces.append(b"")
    return pieces


def fragmented(p, opcode, payload, size):
    pieces = autobahn_fragments(payload, size)
    frames = [p.frame(opcode if i == 0 else CONTINUATION, piece, i == len(pieces) - 1)
              for i, piece in enumerate(pieces)]
    p.send_frames(frames)


def one_after_another(p, opcode, payload, count):
    """9.7/9.8: send, wait for the echo, send the next."""
    for i in range(count):
        p.send(opcode, payload)
        if not p.wait_events(i + 1, 2.0):
            return


for sub, opcode, kind, pattern in ((1, TEXT, "text", TEXT_PATTERN),
                                   (2, BINARY, "binary", BINARY_PATTERN)):
    for n, size in enumerate((64 << 10, 256 << 10, MiB, 4 * MiB, 8 * MiB, 16 * MiB), 1):
        payload = repeated(pattern, size)
        case(f"9.{sub}.{n}", f"{kind} message of {size >> 10} KiB", echo(payload, opcode),
             lambda p, o=opcode, d=payload: p.send(o, d), **slow())
for sub, opcode, kind, fill in ((3, TEXT, "text", b"*"), (4, BINARY, "binary", b"\xfe")):
    for n, frag in enumerate((64, 256, 1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, MiB,
                              4 * MiB), 1):
        frames = len(autobahn_fragments(b"\0" * (4 * MiB), frag))
        case(f"9.{sub}.{n}", f"{kind} message of 4 MiB in {frag}-byte fragments ({frames} "
             "frames, the last one empty)", echo(fill * (4 * MiB), opcode),
             lambda p, o=opcode, f=fill, c=frag: fragmented(p, o, f * (4 * MiB), c), **slow())
for sub, opcode, kind, pattern in ((5, TEXT, "text", TEXT_PATTERN),
                                   (6, BINARY, "binary", BINARY_PATTERN)):
    payload = repeated(pattern, MiB)
    for n, chop in enumerate((64, 128, 256, 512, 1024, 2048), 1):
        case(f"9.{sub}.{n}", f"{kind} message of 1 MiB, written in chops of {chop} bytes",
             echo(payload, opcode),
             lambda p, o=opcode, d=payload, c=chop: p.send(o, d, chop=c), **slow())
for sub, opcode, kind, fill in ((7, TEXT, "text", b"*"), (8, BINARY, "binary", b"\xfe")):
    for n, size in enumerate((0, 16, 64, 256, 1024, 4096), 1):
        case(f"9.{sub}.{n}", f"1000 {kind} messages of {size} bytes, each after the last echo",
             Echo([[msg(fill * size, opcode)] * 1000]),
             lambda p, o=opcode, s=size, f=fill: one_after_another(p, o, f * s, 1000), **slow())

# --- 10 Miscellaneous ----------------------------------------------------------------------

case("10.1.1", "text message of 65536 bytes in 1300-byte fragments", echo(b"*" * 65536),
     lambda p: fragmented(p, TEXT, b"*" * 65536, 1300))

# --- 12, 13 WebSocket compression (permessage-deflate, RFC 7692) ---------------------------
# Autobahn's table of (message size, messages, case timeout in s, auto-fragment size): the same
# 18 rows in every subsection. Sizes are bytes, or characters for the text kinds (Autobahn
# slices its text files by character). Autobahn sends each message after the echo of the one
# before and grades OK when every echo is the message sent, FAILED on the first that is not or
# when the case does not finish in its time. Autobahn's payload files are replaced by
# generated data of the same kinds (corpora.py); everything else is Autobahn's.
COMPRESSION_ROWS = (
    (16, 1000, 60, 0), (64, 1000, 60, 0), (256, 1000, 120, 0), (1024, 1000, 240, 0),
    (4096, 1000, 480, 0), (8192, 1000, 480, 0), (16384, 1000, 480, 0), (32768, 1000, 480, 0),
    (65536, 1000, 480, 0), (131072, 1000, 480, 0),
    (8192, 1000, 480, 256), (16384, 1000, 480, 256), (32768, 1000, 480, 256),
    (65536, 1000, 480, 256), (131072, 1000, 480, 256), (131072, 1000, 480, 1024),
    (131072, 1000, 480, 4096), (131072, 1000, 480, 32768),
)
ECHO_WAIT = 10.0  # for one echo; a stalled case fails without waiting out its 480 s
ECHOED = ("echo", b"")


def compressed_echoes(p, corpus, text, size, count, fragment_size, seconds):
    """Sends `count` messages of `size`, each once the echo of the one before came back,
    and checks each echo at once (the events keep a marker, not 128 KiB per message)."""
    opcode = TEXT if text else BINARY
    deadline = time.monotonic() + seconds
    source = corpora.messages(corpus, size)
    for i in range(count):
        payload = next(source)
        p.send_message(opcode, payload, fragment_size)
        if not p.wait_events(i + 1, min(ECHO_WAIT, max(0.0, deadline - time.monotonic()))):
            if not p.observed.close:
                p.observed.violations.append(
                    f"no echo of message {i + 1} of {count} within "
                    f"{min(ECHO_WAIT, seconds):.0f} s (or the case's {seconds} s)")
            return
        event = p.observed.events[i]
        if event == ("message", opcode, payload):
            p.observed.events[i] = ECHOED
            continue
        got = f"{event[0]} {len(event[-1])} bytes" if event[0] == "message" else event[0]
        p.observed.violations.append(f"echo {i + 1} of {count} differs from the message sent "
                                     f"({len(payload)} bytes, opcode {opcode}): got {got}")
        return


def all_echoed(count):
    return lambda events: len(events) == count and all(e == ECHOED for e in events)


def compression_cases(section, sub, what, corpus, text, negotiation):
    for n, (size, count, seconds, fragment) in enumerate(COMPRESSION_ROWS, 1):
        unit = "characters" if text else "bytes"
        frag = f", auto-fragmented to {fragment} bytes" if fragment else ""
        case(f"{section}.{sub}.{n}", f"{what}: {count} compressed messages of {size} {unit}"
             f"{frag}, each after the last echo",
             Echo([all_echoed(count)], count=count),
             lambda p, s=size, c=count, f=fragment, t=seconds: compressed_echoes(
                 p, corpus, text, s, c, f, t),
             timeout=SLOW_TIMEOUT, heavy=False, negotiation=negotiation,
             client_args=negotiation.client_args)


# Autobahn's client offers: every one carries client_no_context_takeover and
# client_max_window_bits (it lets the server ask for either), plus what the case requests of
# the server. Section 12 uses that default offer and a plain acceptance.
def autobahn_offer(server_no_context_takeover=False, server_max_window_bits=0):
    offer = {"client_no_context_takeover": True, "client_max_window_bits": True}
    if server_no_context_takeover:
        offer["server_no_context_takeover"] = True
    if server_max_window_bits:
        offer["server_max_window_bits"] = server_max_window_bits
    return offer


def client_flags(offer):
    """conformance_client's flags for an offer of Autobahn's (duplex always offers
    client_max_window_bits)."""
    flags = []
    if offer.get("client_no_context_takeover"):
        flags.append("--client-no-context-takeover")
    if offer.get("server_no_context_takeover"):
        flags.append("--server-no-context-takeover")
    if offer.get("server_max_window_bits"):
        flags += ["--server-max-window-bits", str(offer["server_max_window_bits"])]
    return tuple(flags)


# In the client role the offer is duplex's client's own: its default one in section 12 (what
# every user of client_options gets), the case's first offer in section 13.
DEFAULT_NEGOTIATION = Negotiation([autobahn_offer()], accepting(), (),
                                  {"client_max_window_bits": True})
for sub, what, corpus, text in corpora.KINDS:
    compression_cases("12", sub, what, corpus, text, DEFAULT_NEGOTIATION)

# Section 13: JSON-like text under 7 pairs of offers and acceptances, Autobahn's:
# (server_no_context_takeover, server_max_window_bits) offered, (client_no_context_takeover,
# client_max_window_bits) the server asks for.
ACCEPT_PLAIN = accepting()
ACCEPT_NO_CONTEXT = accepting(request_no_context_takeover=True)
ACCEPT_9 = accepting(request_max_window_bits=9)
ACCEPT_15 = accepting(request_max_window_bits=15)
ACCEPT_NO_CONTEXT_9 = accepting(True, 9)
ACCEPT_NO_CONTEXT_15 = accepting(True, 15)
PARAMETER_SETS = (
    ("default offer / plain acceptance", [autobahn_offer()], ACCEPT_PLAIN),
    ("offer server_no_context_takeover / ask client_no_context_takeover",
     [autobahn_offer(True)], ACCEPT_NO_CONTEXT),
    ("offer server_max_window_bits=9 / ask client_max_window_bits=9",
     [autobahn_offer(False, 9)], ACCEPT_9),
    ("offer server_max_window_bits=15 / ask client_max_window_bits=15",
     [autobahn_offer(False, 15)], ACCEPT_15),
    ("offer both no_context_takeover, window 9 / ask the same of the client",
     [autobahn_offer(True, 9)], ACCEPT_NO_CONTEXT_9),
    ("offer both no_context_takeover, window 15 / ask the same of the client",
     [autobahn_offer(True, 15)], ACCEPT_NO_CONTEXT_15),
    ("3 offers (no context + 9, no context, default) / the first acceptable of 3",
     [autobahn_offer(True, 9), autobahn_offer(True), autobahn_offer()],
     first_of(ACCEPT_NO_CONTEXT_9, ACCEPT_NO_CONTEXT, ACCEPT_PLAIN)),
)
for sub, (what, offers, accept) in enumerate(PARAMETER_SETS, 1):
    # duplex's client leaves server_max_window_bits=15 (the default) out of its offer, so in
    # the client role 13.4 and 13.6 offer the rest.
    client_offer = {k: v for k, v in offers[0].items()
                    if (k, v) != ("server_max_window_bits", 15)}
    compression_cases("13", sub, what, corpora.json_text, True,
                      Negotiation(offers, accept, client_flags(client_offer), client_offer))

# --- x: more close codes, and the default limits (not Autobahn's) ---------------------------

for n, code in enumerate((1012, 1013, 1014), 1):
    case(f"x.{n}", f"close with code {code}, valid in the IANA registry",
         Echo([[]], close_codes=(code, 1000)), lambda p, c=code: p.send_close(c))
for n, code in enumerate((1015, 5000, 65535), 4):
    case(f"x.{n}", f"close with code {code}: not for the wire (7.4.1, 7.4.2): fail with 1002",
         Fail(1002), lambda p, c=code: p.send_close(c))

# duplex's defaults (session_options): 16 MiB per message and per frame, and every
# continuation frame charged 14 bytes (the largest header) against the message's 16 MiB.
DEFAULT_MAX_MESSAGE = 16 * MiB
FRAGMENT_CHARGE = 14


def oversized_frame(p):
    """A frame header announcing one byte more than the limit: the peer can refuse it from
    the header alone (1009), before any of the payload. Returns what fail-fast expects."""
    whole = p.frame(BINARY, b"\xfe" * (DEFAULT_MAX_MESSAGE + 1))
    p.send_raw(whole[:1024])
    return False, whole[1024:]


def two_fragments(total):
    """A binary message of `total` payload bytes in 2 frames."""
    half = total // 2
    return lambda p: p.send_frames([p.frame(BINARY, b"\xfe" * half, False),
                                    p.frame(CONTINUATION, b"\xfe" * (total - half))])


def empty_continuations(p, count, final):
    """An empty text frame, then `count` empty continuation frames (the last final when
    `final`): a message that costs nothing but frames."""
    key = b"\x01\x02\x03\x04" if p.we_are_client else None
    head = encode_frame(TEXT, b"", False, 0, key)
    middle = encode_frame(CONTINUATION, b"", False, 0, key)
    last = encode_frame(CONTINUATION, b"", final, 0, key)
    p.send_raw(head + middle * (count - 1) + last)


AT_LIMIT = DEFAULT_MAX_MESSAGE - FRAGMENT_CHARGE  # 2 frames: payload + 1 charge = the limit
FLOOD = DEFAULT_MAX_MESSAGE // FRAGMENT_CHARGE  # continuation frames that fit the limit
case("x.7", "binary frame announcing 16 MiB + 1 byte: 1009 from the header (10.4)",
     Fail(1009, fail_fast=True), oversized_frame, **slow())
case("x.8", "message of 16 MiB - 14 bytes in 2 fragments: exactly the limit with one "
     "continuation charged 14 bytes; echoed", echo(b"\xfe" * AT_LIMIT, BINARY),
     two_fragments(AT_LIMIT), **slow())
case("x.9", "message of 16 MiB - 13 bytes in 2 fragments: one byte past the limit, 1009",
     Fail(1009), two_fragments(AT_LIMIT + 1), **slow())
case("x.10", f"empty text message in {FLOOD + 1} frames: every continuation charged 14 bytes "
     "fills the 16 MiB exactly; echoed", echo(b""),
     lambda p: empty_continuations(p, FLOOD, True), **slow())
case("x.11", f"empty-continuation flood: {FLOOD + 1} continuation frames, no payload, no "
     "end: 1009 (the charge bounds frames without payload)", Fail(1009),
     lambda p: empty_continuations(p, FLOOD + 1, False), **slow())

# --- hs: opening handshake, server role (RFC 6455 4.2.1, 4.2.2, 4.4) ----------------------


def request(text):
    """A request from a template: {host}, {target}, {key} are filled in; lines end in CRLF."""
    return lambda host, target, key: (text.replace("\n", "\r\n").format(
        host=host, target=target, key=key)).encode("latin-1")


def standard(extra="", method="GET", version="HTTP/1.1", omit=()):
    lines = [f"{method} {{target}} {version}", "Host: {host}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Key: {key}", "Sec-WebSocket-Version: 13"]
    lines = [line for line in lines if not any(line.startswith(o) for o in omit)]
    return request("\n".join(lines) + "\n" + extra + "\n")


HELLO_ECHO = (lambda p: p.send(TEXT, b"Hello"), echo(b"Hello"))
case("hs.1", "tokens in other cases: 'Upgrade: WebSocket', 'Connection: keep-alive, Upgrade' "
     "(4.2.1: case-insensitive) are accepted", HELLO_ECHO[1], HELLO_ECHO[0], roles=("server",),
     request=request("GET {target} HTTP/1.1\nhost: {host}\nupgrade: WebSocket\n"
                     "connection: keep-alive, Upgrade\nsec-websocket-key: {key}\n"
                     "sec-websocket-version: 13\n\n"))


def one_byte_at_a_time(host, target, key):
    return [bytes([b]) for b in standard()(host, target, key)]


case("hs.2", "the request arrives one byte at a time", HELLO_ECHO[1], HELLO_ECHO[0],
     roles=("server",), request=one_byte_at_a_time)
case("hs.3", "a frame in the same write as the request: it is not lost", echo(b"first frame"),
     lambda p: None, roles=("server",),
     request=lambda host, target, key: standard()(host, target, key) + encode_frame(
         TEXT, b"first frame", mask_key=b"\x01\x02\x03\x04"))
case("hs.4", "a subprotocol offered, none chosen: no Sec-WebSocket-Protocol in the 101 "
     "(4.2.2 item 5.4)", HELLO_ECHO[1], HELLO_ECHO[0], roles=("server",),
     request=standard("Sec-WebSocket-Protocol: chat, superchat\n"))
case("hs.5", "an unknown extension offered: not accepted in the 101 (9.1)", HELLO_ECHO[1],
     HELLO_ECHO[0], roles=("server",),
     request=standard("Sec-WebSocket-Extensions: x-conformance-unknown; level=3\n"))
REFUSE_400 = Refused((400,))
VERSION_426 = {"Sec-WebSocket-Version": "13"}
for id, what, req, expect in (
        ("hs.6", "no Upgrade field: not a WebSocket request (4.2.1 item 3)",
         standard(omit=("Upgrade",)), Refused((400, 426))),
        ("hs.7", "'Upgrade: h2c' (4.2.1 item 3)",
         request("GET {target} HTTP/1.1\nHost: {host}\nUpgrade: h2c\nConnection: Upgrade\n"
                 "Sec-WebSocket-Key: {key}\nSec-WebSocket-Version: 13\n\n"), Refused((400, 426))),
        ("hs.8", "no 'Connection: Upgrade' (4.2.1 item 4)", standard(omit=("Connection",)),
         REFUSE_400),
        ("hs.9", "Sec-WebSocket-Version: 8: 426 naming version 13 (4.4: with any error code)",
         request("GET {target} HTTP/1.1\nHost: {host}\nUpgrade: websocket\n"
                 "Connection: Upgrade\nSec-WebSocket-Key: {key}\nSec-WebSocket-Version: 8\n\n"),
         Refused((426,), (400,), VERSION_426)),
        ("hs.10", "no Sec-WebSocket-Version (4.2.1 item 6)",
         standard(omit=("Sec-WebSocket-Version",)), Refused((426, 400), (), VERSION_426)),
        ("hs.11", "Sec-WebSocket-Key of 15 bytes (4.2.1 item 5: 16)",
         request("GET {target} HTTP/1.1\nHost: {host}\nUpgrade: websocket\n"
                 "Connection: Upgrade\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\n"
                 "Sec-WebSocket-Version: 13\n\n"), REFUSE_400),
        ("hs.12", "Sec-WebSocket-Key that is not base64",
         request("GET {target} HTTP/1.1\nHost: {host}\nUpgrade: websocket\n"
                 "Connection: Upgrade\nSec-WebSocket-Key: !!!!!!!!!!!!!!!!!!!!!!==\n"
                 "Sec-WebSocket-Version: 13\n\n"), REFUSE_400),
        ("hs.13", "no Sec-WebSocket-Key", standard(omit=("Sec-WebSocket-Key",)), REFUSE_400),
        ("hs.14", "two Sec-WebSocket-Key fields", standard("Sec-WebSocket-Key: {key}\n"),
         REFUSE_400),
        ("hs.15", "POST instead of GET (4.2.1 item 1): 405 with Allow (RFC 7231 6.5.5)",
         standard(method="POST"), Refused((405, 400), (), {}, {405: {"Allow": None}})),
        ("hs.16", "HTTP/1.0 (4.2.1 item 1: HTTP/1.1 or higher)", standard(version="HTTP/1.0"),
         Refused((400, 505))),
        ("hs.17", "no Host field (4.2.1 item 2)", standard(omit=("Host",)), REFUSE_400),
        ("hs.18", "two Host fields (RFC 7230 5.4)", standard("Host: other.example\n"),
         REFUSE_400),
):
    case(id, what, expect, roles=("server",), request=req)

# --- hc: opening handshake, client role (RFC 6455 4.1) -------------------------------------


def response(text):
    """A response from a template: {accept} is the right Sec-WebSocket-Accept."""
    return lambda key: text.replace("\n", "\r\n").format(accept=accept_key(key)).encode("latin-1")


case("hc.1", "tokens in other cases: 'Upgrade: WebSocket', 'Connection: upgrade' are accepted",
     HELLO_ECHO[1], HELLO_ECHO[0], roles=("client",),
     response=response("HTTP/1.1 101 Switching Protocols\nupgrade: WebSocket\n"
                       "connection: upgrade\nsec-websocket-accept: {accept}\n\n"))
case("hc.2", "the 101 arrives one byte at a time", HELLO_ECHO[1], HELLO_ECHO[0],
     roles=("client",), response=lambda key: [bytes([b]) for b in accept_response(key)])
case("hc.3", "a frame in the same write as the 101: it is not lost", echo(b"first frame"),
     lambda p: None, roles=("client",),
     response=lambda key: accept_response(key) + b"\x81\x0bfirst frame")
for id, what, resp in (
        ("hc.4", "wrong Sec-WebSocket-Accept (4.1: MUST fail)",
         response("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n"
                  f"Sec-WebSocket-Accept: {accept_key('dGhlIHNhbXBsZSBub25jZQ==')}\n\n")),
        ("hc.5", "no Sec-WebSocket-Accept",
         response("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n"
                  "Connection: Upgrade\n\n")),
        ("hc.6", "no Upgrade field",
         response("HTTP/1.1 101 Switching Protocols\nConnection: Upgrade\n"
                  "Sec-WebSocket-Accept: {accept}\n\n")),
        ("hc.7", "'Upgrade: h2c'",
         response("HTTP/1.1 101 Switching Protocols\nUpgrade: h2c\nConnection: Upgrade\n"
                  "Sec-WebSocket-Accept: {accept}\n\n")),
        ("hc.8", "no Connection field",
         response("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\n"
                  "Sec-WebSocket-Accept: {accept}\n\n")),
        ("hc.9", "status 200 instead of 101, with the WebSocket fields",
         response("HTTP/1.1 200 OK\nUpgrade: websocket\nConnection: Upgrade\n"
                  "Sec-WebSocket-Accept: {accept}\nContent-Length: 0\n\n")),
        ("hc.10", "status 403",
         response("HTTP/1.1 403 Forbidden\nContent-Length: 0\nConnection: close\n\n")),
        ("hc.11", "a subprotocol the client did not offer (4.1 item 6 of the response checks)",
         response("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n"
                  "Sec-WebSocket-Accept: {accept}\nSec-WebSocket-Protocol: chat\n\n")),
        ("hc.12", "permessage-deflate, which the client did not offer (its offer turned off; "
         "4.1 item 5)",
         response("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n"
                  "Sec-WebSocket-Accept: {accept}\n"
                  "Sec-WebSocket-Extensions: permessage-deflate\n\n")),
        ("hc.13", "an unknown extension the client did not offer (4.1 item 5)",
         response("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\nConnection: Upgrade\n"
                  "Sec-WebSocket-Accept: {accept}\nSec-WebSocket-Extensions: x-unknown\n\n")),
):
    # The frame after the response would be the first message if the client wrongly opened.
    # hc.12's client must not offer permessage-deflate, which it does by default.
    case(id, what + ": the client must fail", NotOpened(), roles=("client",),
         response=lambda key, r=resp: r(key) + b"\x81\x05Hello",
         client_args=("--deflate", "off") if id == "hc.12" else ())

# --- m: masking (RFC 6455 5.1, 5.3) --------------------------------------------------------

case("m.1", "a frame masked the wrong way for its direction (client: unmasked, server: masked) "
     "must fail the connection (5.1)", Fail(1002),
     lambda p: p.send(TEXT, b"Hello", masked=not p.we_are_client))


def distinct_mask_keys(p):
    for i in range(100):
        p.send(BINARY, b"%d" % i)
    p.wait_events(100, 2.0)
    keys = p.observed.mask_keys
    if len(set(keys)) != len(keys):
        p.observed.violations.append(
            f"{len(keys) - len(set(keys))} masking keys repeated in {len(keys)} frames "
            "(5.3: a fresh key for each frame)")


case("m.2", "100 messages from the client: each frame with its own masking key (5.3)",
     Echo([[msg(b"%d" % i, BINARY) for i in range(100)]]), distinct_mask_keys,
     roles=("client",))


def select(pattern):
    """The cases whose id matches a regular expression (all for None)."""
    return [c for c in CASES if pattern is None or re.fullmatch(pattern, c.id)]


_ids = [c.id for c in CASES]
assert len(_ids) == len(set(_ids)), "duplicate case ids"
AUTOBAHN_SECTIONS = ("1", "2", "3", "4", "5", "6", "7", "9", "10", "12", "13")
assert sum(1 for c in CASES if c.section in AUTOBAHN_SECTIONS) == 517, "Autobahn has 517 cases"
