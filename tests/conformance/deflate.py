"""permessage-deflate (RFC 7692) for the conformance suite's own side, on Python's zlib.

Written from the RFC, sharing no code with duplex: the negotiation the suite needs in both roles
(an offer as Autobahn's client makes it, an acceptance as Autobahn's server makes it, and the
checks of what duplex answered or offered), and the codec: raw DEFLATE (negative wbits), the
empty-block tail 00 00 ff ff removed after compressing (7.2.1) and appended before inflating
(7.2.2), a fresh zlib stream per message where "no context takeover" was agreed (7.1.1).

  parse_extensions()   Sec-WebSocket-Extensions values -> [(name, [(param, value)])]
  Negotiation          one case's offers and acceptance, and the checks of the other side
  Codec                compress what the suite sends, inflate what it receives
"""
import zlib
from dataclasses import dataclass, field

NAME = "permessage-deflate"
TAIL = b"\x00\x00\xff\xff"  # RFC 7692 7.2.1
PARAMS = ("server_no_context_takeover", "client_no_context_takeover", "server_max_window_bits",
          "client_max_window_bits")


def parse_extensions(values):
    """The elements of Sec-WebSocket-Extensions field values, in order: (name, [(param, value)])
    with value None for a parameter without one (RFC 6455 9.1; quoted values unquoted)."""
    elements = []
    for value in values:
        for element in value.split(","):
            parts = [p.strip() for p in element.split(";")]
            if not parts[0]:
                continue
            params = []
            for p in parts[1:]:
                name, eq, v = p.partition("=")
                v = v.strip()
                if len(v) >= 2 and v[0] == v[-1] == '"':
                    v = v[1:-1]
                params.append((name.strip(), v if eq else None))
            elements.append((parts[0], params))
    return elements


def window_value(text):
    """RFC 7692 7.1.2: a decimal 8-15 without leading zeroes, or None."""
    return int(text) if text in ("8", "9", "10", "11", "12", "13", "14", "15") else None


def check_element(params, is_offer):
    """RFC 7692 section 5 and 7.1: the parameters of one permessage-deflate element as a dict
    (True for a parameter without value), and the problems with them."""
    problems, out = [], {}
    for name, value in params:
        if name not in PARAMS:
            problems.append(f"unknown parameter {name!r} (7.1)")
        elif name in out:
            problems.append(f"parameter {name!r} twice (7.1)")
        elif name.endswith("no_context_takeover"):
            if value is not None:
                problems.append(f"{name} with a value (7.1.1)")
            out[name] = True
        elif value is None:
            if name == "server_max_window_bits" or not is_offer:
                problems.append(f"{name} without a value (7.1.2)")
            out[name] = True
        elif window_value(value) is None:
            problems.append(f"{name}={value!r} is not 8-15 (7.1.2)")
        else:
            out[name] = window_value(value)
    return out, problems


def format_element(params):
    text = NAME
    for name in PARAMS:
        value = params.get(name)
        if value is True:
            text += f"; {name}"
        elif value:
            text += f"; {name}={value}"
    return text


@dataclass
class Agreed:
    """What both sides use after the handshake (RFC 7692 7.1), from the response element."""
    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_max_window_bits: int = 15
    client_max_window_bits: int = 15

    @classmethod
    def from_response(cls, response):
        return cls(bool(response.get("server_no_context_takeover")),
                   bool(response.get("client_no_context_takeover")),
                   response.get("server_max_window_bits") or 15,
                   response.get("client_max_window_bits") or 15)

    def describe(self):
        return format_element({
            "server_no_context_takeover": self.server_no_context_takeover,
            "client_no_context_takeover": self.client_no_context_takeover,
            "server_max_window_bits": self.server_max_window_bits,
            "client_max_window_bits": self.client_max_window_bits})


def response_problems(offer, response):
    """Whether a response element is one the server may send for this offer (RFC 7692 7.1)."""
    problems = []
    if offer.get("server_no_context_takeover") and not response.get("server_no_context_takeover"):
        problems.append("server_no_context_takeover was offered and is missing from the "
                        "response (7.1.1.1: a server accepting the offer MUST include it)")
    offered = offer.get("server_max_window_bits")
    answered = response.get("server_max_window_bits")
    if offered and (not answered or answered > offered):
        problems.append(f"server_max_window_bits={offered} was offered, the response has "
                        f"{answered or 'none'} (7.1.2.1: the same or a smaller value)")
    client_bits = response.get("client_max_window_bits")
    if client_bits and not offer.get("client_max_window_bits"):
        problems.append("client_max_window_bits in the response, not in the offer (7.1.2.2)")
    elif client_bits and offer.get("client_max_window_bits") is not True and \
            client_bits > offer["client_max_window_bits"]:
        problems.append(f"client_max_window_bits={client_bits} above the offered "
                        f"{offer['client_max_window_bits']} (7.1.2.2)")
    return problems


@dataclass
class Negotiation:
    """One case's permessage-deflate handshake, as Autobahn's sections 12 and 13 define it.

    offers       what Autobahn's client offers, in order (server role: the suite sends them;
                 client role: conformance_client is told to offer the first, see client_args)
    accept       Autobahn's server acceptance: function(offers as dicts) -> response dict or None
    client_args  conformance_client flags that make duplex's offer (it makes one) the first of
                 `offers`; empty for its default offer, which `client_offer` then states
    client_offer the offer duplex's client must make in the client role
    """
    offers: list
    accept: object
    client_args: tuple = ()
    client_offer: dict = field(default_factory=dict)

    def request_field(self):
        return "Sec-WebSocket-Extensions: " + ", ".join(format_element(o) for o in self.offers)

    def check_response(self, values):
        """Server role: the 101's Sec-WebSocket-Extensions against our offers. Returns (Agreed or
        None, problems)."""
        elements = parse_extensions(values)
        if not elements:
            return None, ["permessage-deflate was not accepted: no Sec-WebSocket-Extensions in "
                          "the 101 (Autobahn: UNIMPLEMENTED)"]
        if len(elements) != 1 or elements[0][0].lower() != NAME:
            return None, [f"the 101 names {[e[0] for e in elements]}; only permessage-deflate "
                          "was offered (RFC 6455 9.1)"]
        response, problems = check_element(elements[0][1], is_offer=False)
        if problems:
            return None, problems
        # The response answers one of the offers (RFC 7692 5): the first it is valid for.
        per_offer = [response_problems(o, response) for o in self.offers]
        if all(per_offer):
            return None, per_offer[0]
        return Agreed.from_response(response), []

    def answer_offer(self, values):
        """Client role: the client's Sec-WebSocket-Extensions, checked against what the case
        asked it to offer, and our acceptance. Returns (response field or None, Agreed or None,
        the client's offer dict, problems)."""
        elements = parse_extensions(values)
        offers, problems = [], []
        for name, params in elements:
            if name.lower() != NAME:
                continue
            offer, bad = check_element(params, is_offer=True)
            problems += [f"the client's offer: {p}" for p in bad]
            offers.append(offer)
        if not offers:
            return None, None, {}, ["the client offered no permessage-deflate"]
        if offers[0] != self.client_offer:
            problems.append(f"the client offered {format_element(offers[0])!r}, the case asked "
                            f"for {format_element(self.client_offer)!r}")
        response = self.accept(offers)
        if response is None:
            return None, None, offers[0], problems + [
                "no offer of the client can be accepted as the case says"]
        return ("Sec-WebSocket-Extensions: " + format_element(response), Agreed.from_response(
            response), offers[0], problems)


def accepting(request_no_context_takeover=False, request_max_window_bits=0):
    """Autobahn's server acceptance: the first permessage-deflate offer that allows what it
    requests; the response repeats the server_* parameters of the offer and adds the client_*
    ones it requests. Autobahn counts every offer as allowing client_no_context_takeover."""
    def accept(offers):
        for offer in offers:
            if request_max_window_bits and not offer.get("client_max_window_bits"):
                continue
            response = {}
            if offer.get("server_no_context_takeover"):
                response["server_no_context_takeover"] = True
            if offer.get("server_max_window_bits"):
                response["server_max_window_bits"] = offer["server_max_window_bits"]
            if request_no_context_takeover:
                response["client_no_context_takeover"] = True
            if request_max_window_bits:
                response["client_max_window_bits"] = request_max_window_bits
            return response
        return None
    return accept


def first_of(*accepts):
    def accept(offers):
        for a in accepts:
            response = a(offers)
            if response is not None:
                return response
        return None
    return accept


class Codec:
    """The suite's side of one compressed connection. Our compressor follows the agreed
    parameters for our direction, and the decompressor those of the peer's direction, with
    exactly the agreed window: a peer that uses a larger window, or keeps its context where
    it agreed not to, sends data that does not inflate (or inflates wrongly) here."""

    def __init__(self, agreed, we_are_client, peer_hint_no_context_takeover=False):
        self.agreed = agreed
        if we_are_client:
            self.send_bits, self.send_reset = (agreed.client_max_window_bits,
                                               agreed.client_no_context_takeover)
            self.recv_bits, self.recv_reset = (agreed.server_max_window_bits,
                                               agreed.server_no_context_takeover)
        else:
            self.send_bits, self.send_reset = (agreed.server_max_window_bits,
                                               agreed.server_no_context_takeover)
            # 7.1.1.2: a client that offered client_no_context_takeover promised to keep no
            # context, whatever the response says; holding it to that is stricter.
            self.recv_bits, self.recv_reset = (agreed.client_max_window_bits,
                                               agreed.client_no_context_takeover or
                                               peer_hint_no_context_takeover)
        if self.send_bits < 9:
            # zlib refuses an 8-bit window for raw deflate; no case of Autobahn's asks for it.
            raise ValueError("the suite cannot compress with an 8-bit window")
        self._compressor = None
        self._decompressor = None

    def compress(self, data):
        if self._compressor is None or self.send_reset:
            self._compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED,
                                                -self.send_bits, 8)
        out = self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out[:-len(TAIL)]

    def inflate(self, data):
        """The message's bytes; raises zlib.error for data that does not inflate."""
        if self._decompressor is None or self.recv_reset:
            self._decompressor = zlib.decompressobj(-self.recv_bits)
        out = self._decompressor.decompress(data + TAIL)
        if self._decompressor.eof:
            # A final block (BFINAL) ends the stream; the next message starts a new one.
            self._decompressor = None
        return out
