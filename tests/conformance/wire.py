"""The WebSocket wire format, written from RFC 6455 for the conformance suite.

It shares no code with duplex or with any WebSocket library on purpose: a bug copied into the
test side would hide the same bug in the library. It is deliberately permissive about what it
sends (any opcode, RSV bits, lying lengths, unmasked client frames) and strict about what it
receives, because the peer under test is the one being judged.

  encode_frame()       one frame's bytes, exactly as asked
  FrameParser          bytes in, frames out; never judges, only parses
  Peer                 one connection: sends what a case says, records what comes back
  check_client_request() / accept_response() / read_head()   the opening handshake
"""
import base64
import hashlib
import os
import socket
import struct
import threading
import time
import zlib
from dataclasses import dataclass, field

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455 section 1.3

CONTINUATION, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
# How long the test server waits, after a closing handshake it started, before it ends the TCP
# connection: long enough to see a client that ends it first, short enough to add little.
CLIENT_WAIT_CHECK = 0.05

OPCODE_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

# RFC 6455 7.4.1 and 7.4.2 (with the IANA registry's 1012-1014): what may travel in a close frame.
def is_valid_close_code(code):
    return 1000 <= code <= 1003 or 1007 <= code <= 1014 or 3000 <= code <= 4999


def accept_key(key):
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key (RFC 6455 4.2.2 item 5)."""
    if isinstance(key, str):
        key = key.encode("ascii")
    return base64.b64encode(hashlib.sha1(key + GUID).digest()).decode("ascii")


def apply_mask(payload, key):
    """XOR with the 4-byte key (RFC 6455 5.3), as one big-integer operation: fast enough for
    the multi-megabyte messages of section 9, where a byte loop would dominate the run time."""
    n = len(payload)
    if n == 0:
        return b""
    pattern = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(pattern, "little")).to_bytes(
        n, "little")


def encode_frame(opcode, payload=b"", fin=True, rsv=0, mask_key=None, declared_length=None):
    """One frame. rsv is the 3-bit RSV1..RSV3 field (4 = RSV1); mask_key None sends it unmasked.
    declared_length lets a case announce more payload than it sends (limits, fail-fast)."""
    length = len(payload) if declared_length is None else declared_length
    head = bytearray([(0x80 if fin else 0) | (rsv & 7) << 4 | (opcode & 0xF)])
    mask_bit = 0x80 if mask_key is not None else 0
    if length < 126:
        head.append(mask_bit | length)
    elif length <= 0xFFFF:
        head.append(mask_bit | 126)
        head += struct.pack("!H", length)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", length)
    if mask_key is None:
        return bytes(head) + payload
    return bytes(head) + mask_key + apply_mask(payload, mask_key)


def close_payload(code=None, reason=b""):
    return b"" if code is None else struct.pack("!H", code) + reason


def is_utf8(data):
    # Python's decoder follows RFC 3629: it refuses surrogates, overlongs and code points above
    # U+10FFFF, and accepts noncharacters, as RFC 6455 8.1 asks.
    try:
        data.decode("utf-8", errors="strict")
        return True
    except UnicodeDecodeError:
        return False


@dataclass
class Frame:
    fin: bool
    rsv: int
    opcode: int
    masked: bool
    mask_key: bytes
    payload: bytes
    length_bytes: int  # 0, 2 or 8: how the length was encoded


class FrameParser:
    """Splits a byte stream into frames. Payloads are returned unmasked."""

    def __init__(self):
        self.buffer = bytearray()

    def feed(self, data):
        self.buffer += data
        frames = []
        at = 0
        buf = self.buffer
        while True:
            if len(buf) - at < 2:
                break
            b0, b1 = buf[at], buf[at + 1]
            short = b1 & 0x7F
            length_bytes = 2 if short == 126 else 8 if short == 127 else 0
            masked = bool(b1 & 0x80)
            header = 2 + length_bytes + (4 if masked else 0)
            if len(buf) - at < header:
                break
            if length_bytes == 2:
                length = struct.unpack_from("!H", buf, at + 2)[0]
            elif length_bytes == 8:
                length = struct.unpack_from("!Q", buf, at + 2)[0]
            else:
                length = short
            if len(buf) - at < header + length:
                break
            key = bytes(buf[at + header - 4:at + header]) if masked else b""
            payload = bytes(buf[at + header:at + header + length])
            if masked:
                payload = apply_mask(payload, key)
            frames.append(Frame(bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, key, payload,
                                length_bytes))
            at += header + length
        if at:
            del buf[:at]
        return frames


# --- the opening handshake (RFC 6455 section 4) ---------------------------------------------

def new_key():
    return base64.b64encode(os.urandom(16)).decode("ascii")


def accept_response(key, extra=""):
    return ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Accept: {accept_key(key)}\r\n{extra}\r\n").encode("ascii")


@dataclass
class HttpHead:
    start_line: str
    fields: list  # (name, value) in order, names as sent

    def get(self, name):
        values = self.get_all(name)
        return values[0] if values else None

    def get_all(self, name):
        return [v for n, v in self.fields if n.lower() == name.lower()]

    def tokens(self, name):
        return [t.strip().lower() for v in self.get_all(name) for t in v.split(",") if t.strip()]

    @property
    def status(self):
        parts = self.start_line.split(" ", 2)
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None


def parse_head(raw):
    lines = raw.decode("latin-1").split("\r\n")
    fields = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        fields.append((name.strip(), value.strip()))
    return HttpHead(lines[0], fields)


def read_head(sock, deadline, limit=65536):
    """Reads up to the end of an HTTP head. Returns (head bytes or None, bytes after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or len(data) > limit:
            return None, data
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except (socket.timeout, OSError):
            return None, data
        if not chunk:
            return None, data
        data += chunk
    end = data.index(b"\r\n\r\n") + 4
    return data[:end], data[end:]


def check_client_request(head, expected_host, expected_target):
    """What RFC 6455 4.1 asks of a client's opening handshake; returns a list of problems."""
    problems = []
    parts = head.start_line.split(" ")
    if len(parts) != 3 or parts[0] != "GET" or parts[2] != "HTTP/1.1":
        problems.append(f"request line {head.start_line!r} is not 'GET target HTTP/1.1' "
                        "(4.1 item 2)")
    elif parts[1] != expected_target:
        problems.append(f"request target {parts[1]!r}, expected {expected_target!r} (4.1 item 3)")
    if head.get_all("Host") != [expected_host]:
        problems.append(f"Host {head.get_all('Host')}, expected {expected_host!r} (4.1 item 4)")
    if "websocket" not in head.tokens("Upgrade"):
        problems.append("no 'Upgrade: websocket' (4.1 item 5)")
    if "upgrade" not in head.tokens("Connection"):
        problems.append("no 'Connection: Upgrade' (4.1 item 6)")
    keys = head.get_all("Sec-WebSocket-Key")
    try:
        nonce = base64.b64decode(keys[0], validate=True) if len(keys) == 1 else b""
    except ValueError:
        nonce = b""
    if len(nonce) != 16:
        problems.append(f"Sec-WebSocket-Key {keys} is not one base64 16-byte nonce (4.1 item 7)")
    if head.get_all("Sec-WebSocket-Version") != ["13"]:
        problems.append(f"Sec-WebSocket-Version {head.get_all('Sec-WebSocket-Version')}, "
                        "expected 13 (4.1 item 9)")
    return problems


# --- one connection ---------------------------------------------------------------------------

@dataclass
class CloseFrame:
    code: object  # int, or None for an empty payload
    reason: bytes
    payload: bytes


@dataclass
class Observed:
    """Everything the peer under test did on one connection, in the order it happened."""
    events: list = field(default_factory=list)  # ("message", opcode, payload) / ("pong", payload)
    close: object = None  # CloseFrame the peer sent, if any
    violations: list = field(default_factory=list)  # frames the peer must never send
    mask_keys: list = field(default_factory=list)  # of the masked frames received
    peer_ended_tcp_at: object = None  # when we read EOF (or a reset)
    reset: bool = False  # the peer's end came as a reset, not an orderly FIN


class Peer:
    """One open WebSocket connection seen from the test side.

    The case's script sends frames through it exactly as written (masked when we are the
    client, RFC 6455 5.3). A reader thread parses what the peer under test sends, checks the
    frame rules it must follow (masking by role, RSV bits, opcodes, control frame limits,
    continuation order, UTF-8 of text and close reasons), and records messages, pongs, the
    close frame and the end of the TCP connection.

    The closing handshake follows RFC 6455 7.1: a close from the peer is echoed at once; when we
    are the server we end the TCP connection as soon as close frames went both ways; when we are
    the client we wait for the server to end it.
    """

    def __init__(self, sock, we_are_client, initial_bytes=b"", deflate=None):
        self.sock = sock
        # permessage-deflate's codec (deflate.Codec) when the handshake agreed on it: RSV1 is
        # then allowed on the first frame of a message, which is inflated when complete.
        self.deflate = deflate
        # Blocking from here on: a timeout left from the handshake must not cut a large write
        # short (a partial frame would corrupt the stream and look like the peer's fault).
        sock.settimeout(None)
        self.we_are_client = we_are_client
        self.observed = Observed()
        self.close_sent = None  # payload of the close frame we sent
        self.peer_closed_first = False  # its close was not an answer to ours
        self.we_ended_tcp = False
        self.peer_ended_tcp_first = False  # a client that did not wait for us (7.1.1)
        self._end_timer = None
        self._send_lock = threading.Lock()
        self._changed = threading.Condition()
        self._parser = FrameParser()
        self._message = None  # [opcode, bytearray, compressed] of a message in progress
        self._reader = threading.Thread(target=self._read_loop, args=(initial_bytes,), daemon=True)
        self._reader.start()

    # -- sending --------------------------------------------------------------------------

    def frame(self, opcode, payload=b"", fin=True, rsv=0, masked=None, declared_length=None):
        """The bytes of one frame as this side sends it (masked by default when we are the
        client); for scripts that put several frames into one write."""
        if masked is None:
            masked = self.we_are_client
        key = os.urandom(4) if masked else None
        return encode_frame(opcode, payload, fin, rsv, key, declared_length)

    def send_raw(self, data, chop=None, delay=0.0):
        """Writes bytes, in pieces of `chop` bytes with `delay` seconds between them when asked
        (Autobahn's "octet-wise chops"). A peer that already ended the connection is not an
        error here: the verdict looks at what it sent, not at our late writes."""
        pieces = [data] if not chop else [data[i:i + chop] for i in range(0, len(data), chop)]
        for i, piece in enumerate(pieces):
            if i and delay:
                time.sleep(delay)
            try:
                with self._send_lock:
                    self.sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                return False
        return True

    def send(self, opcode, payload=b"", fin=True, rsv=0, chop=None, delay=0.0, **kw):
        return self.send_raw(self.frame(opcode, payload, fin, rsv, **kw), chop, delay)

    def send_frames(self, frames, per_frame_delay=0.0, chop=None, delay=0.0):
        """Several frames: in one write ("one chop"), one write per frame with a pause between
        them ("frame-wise chops"), or in pieces of `chop` bytes ("octet-wise chops")."""
        if per_frame_delay:
            for i, f in enumerate(frames):
                if i:
                    time.sleep(per_frame_delay)
                self.send_raw(f)
        else:
            self.send_raw(b"".join(frames), chop, delay)

    def send_message(self, opcode, payload, fragment_size=0):
        """A message as Autobahn's sender makes it: compressed when permessage-deflate was
        agreed (RSV1 on the first frame, RFC 7692 6), then, when fragment_size is set and the
        (compressed) payload is longer, in frames of that size with an empty final one when it
        divides the payload (Autobahn's auto-fragmentation)."""
        rsv = 0
        if self.deflate is not None:
            payload, rsv = self.deflate.compress(payload), 4
        if not fragment_size or len(payload) <= fragment_size:
            return self.send_raw(self.frame(opcode, payload, rsv=rsv))
        pieces = [payload[i:i + fragment_size] for i in range(0, len(payload), fragment_size)]
        if len(payload) % fragment_size == 0:
            pieces.append(b"")
        return self.send_raw(b"".join(
            self.frame(opcode if i == 0 else CONTINUATION, piece, i == len(pieces) - 1,
                       rsv if i == 0 else 0) for i, piece in enumerate(pieces)))

    def send_close(self, code=1000, reason=b"", payload=None):
        if payload is None:
            payload = close_payload(code, reason)
        with self._changed:
            if self.close_sent is None:
                self.close_sent = payload
        self.send_raw(self.frame(CLOSE, payload))
        self._maybe_end_tcp()

    # -- waiting --------------------------------------------------------------------------

    def wait_for(self, predicate, timeout):
        """Waits until predicate(observed) holds or the peer ended the connection."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self.observed):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    return predicate(self.observed)
                self._changed.wait(remaining)
            return True

    def wait_events(self, count, timeout):
        return self.wait_for(lambda o: len(o.events) >= count or o.close is not None, timeout)

    def wait_close(self, timeout):
        return self.wait_for(lambda o: o.close is not None or o.peer_ended_tcp_at is not None,
                             timeout)

    def wait_tcp_end(self, timeout):
        self._reader.join(timeout)
        if self._end_timer:
            self._end_timer.join()  # so that peer_ended_tcp_first is known
        return not self._reader.is_alive()

    def abort(self):
        """Ends our side for good (the case is over)."""
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._reader.join(2)
        self.sock.close()

    # -- receiving ------------------------------------------------------------------------

    def _violation(self, text):
        self.observed.violations.append(text)

    def _read_loop(self, initial_bytes):
        data = initial_bytes
        while True:
            if data:
                for f in self._parser.feed(data):
                    self._on_frame(f)
            try:
                data = self.sock.recv(1 << 18)
            except ConnectionResetError:
                self.observed.reset = True
                data = b""
            except OSError:
                data = b""
            if not data:
                break
        with self._changed:
            self.observed.peer_ended_tcp_at = time.monotonic()
            self._changed.notify_all()

    def _on_frame(self, f):
        o = self.observed
        name = OPCODE_NAMES.get(f.opcode, f"reserved opcode {f.opcode}")
        if f.masked:
            o.mask_keys.append(f.mask_key)
        if self.we_are_client and f.masked:
            self._violation(f"a server sent a masked {name} frame (RFC 6455 5.1)")
        if not self.we_are_client and not f.masked:
            self._violation(f"a client sent an unmasked {name} frame (RFC 6455 5.1, 5.3)")
        compressed = False
        if f.rsv == 4 and self.deflate is not None and f.opcode in (TEXT, BINARY):
            compressed = True  # RFC 7692 6: RSV1 marks the first frame of a compressed message
        elif f.rsv and self.deflate is not None:
            self._violation(f"{name} frame with RSV bits {f.rsv:03b}: permessage-deflate allows "
                            "RSV1 on the first frame of a data message only (RFC 7692 6, 6.1)")
        elif f.rsv:
            self._violation(f"{name} frame with RSV bits {f.rsv:03b} and no extension (5.2)")
        if f.opcode not in OPCODE_NAMES:
            self._violation(f"frame with reserved opcode {f.opcode} (5.2)")
            return
        minimal = 0 if len(f.payload) < 126 else 2 if len(f.payload) <= 0xFFFF else 8
        if f.length_bytes != minimal:
            self._violation(f"{name} frame length not in its minimal encoding (5.2)")
        if o.close is not None and f.opcode in (CONTINUATION, TEXT, BINARY, CLOSE):
            self._violation(f"{name} frame after the peer's own close frame (5.5.1)")
        if f.opcode >= 8:
            if not f.fin or len(f.payload) > 125:
                self._violation(f"{name} frame fragmented or longer than 125 bytes (5.5)")
            if f.opcode == CLOSE:
                self._on_close(f)
            elif f.opcode == PONG:
                self._record(("pong", f.payload))
            # A ping from the peer (a keepalive) is not part of any case's outcome.
            return
        if f.opcode == CONTINUATION:
            if self._message is None:
                self._violation("continuation frame with no message in progress (5.4)")
                return
            self._message[1] += f.payload
        else:
            if self._message is not None:
                self._violation("new data frame inside a fragmented message (5.4)")
            self._message = [f.opcode, bytearray(f.payload), compressed]
        if f.fin:
            opcode, payload, compressed = self._message[0], bytes(self._message[1]), \
                self._message[2]
            self._message = None
            if compressed:
                try:
                    payload = self.deflate.inflate(payload)
                except zlib.error as e:
                    self._violation(f"a compressed message that does not inflate with the agreed "
                                    f"parameters ({self.deflate.agreed.describe()}): {e} (RFC "
                                    "7692 7.2.2)")
                    payload = b""
            if opcode == TEXT and not is_utf8(payload):
                self._violation("text message that is not UTF-8 (8.1)")
            self._record(("message", opcode, payload))

    def _record(self, event):
        with self._changed:
            self.observed.events.append(event)
            self._changed.notify_all()

    def _on_close(self, f):
        code, reason = None, b""
        if len(f.payload) == 1:
            self._violation("close frame with a 1-byte payload (5.5.1)")
        elif len(f.payload) >= 2:
            code = struct.unpack("!H", f.payload[:2])[0]
            reason = f.payload[2:]
            if not is_valid_close_code(code):
                self._violation(f"close frame with code {code}, not allowed on the wire (7.4)")
            if not is_utf8(reason):
                self._violation("close reason that is not UTF-8 (5.5.1)")
        with self._changed:
            if self.observed.close is None:
                self.observed.close = CloseFrame(code, reason, f.payload)
            reply = None
            if self.close_sent is None:
                self.peer_closed_first = True
                # 5.5.1: answer with a close, echoing the code (an invalid one is answered 1002).
                if code is None:
                    reply = b""
                elif is_valid_close_code(code):
                    reply = close_payload(code)
                else:
                    reply = close_payload(1002)
                self.close_sent = reply
            self._changed.notify_all()
        if reply is not None:
            self.send_raw(self.frame(CLOSE, reply))
        self._maybe_end_tcp()

    def _maybe_end_tcp(self):
        # 7.1.1: the server ends the TCP connection first, once close frames went both ways.
        # After a closing handshake that we started, it waits a moment first: a client that
        # ends the connection in that moment did not wait for the server as 7.1.1 asks.
        with self._changed:
            if self.we_are_client or self.we_ended_tcp:
                return
            if self.close_sent is None or self.observed.close is None:
                return
            self.we_ended_tcp = True
        if self.peer_closed_first:
            self._end_tcp()
        else:
            self._end_timer = threading.Timer(CLIENT_WAIT_CHECK, self._end_tcp)
            self._end_timer.start()

    def _end_tcp(self):
        with self._changed:
            self.peer_ended_tcp_first = self.observed.peer_ended_tcp_at is not None
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
