"""What each case expects, and how an observed connection is graded, the way Autobahn does it.

A case's outcome is one of
  OK             the behaviour RFC 6455 asks for;
  NON-STRICT     what Autobahn shows as non-strict: its NON-STRICT outcomes (a violation
                 detected only when the message completed, not as soon as it could be), a close
                 code other than the one the case expects (Autobahn's WRONG CODE: 1002 for
                 invalid UTF-8, which must be 1007), a client that ends the TCP connection
                 before the server (FAILED BY CLIENT);
  FAILED         a MUST broken, events that match none of the expected ones, a connection
                 failed by the wrong endpoint or too early, a hang;
  INFORMATIONAL  Autobahn's informational cases (7.1.6, 7.13.1, 7.13.2), whose outcome the RFC
                 leaves open: recorded, never OK — unless a frame rule is broken (FAILED).
The worst finding decides. Every finding below OK comes with a note that says why. A
NON-STRICT outcome fails the run unless allowed_non_strict.txt lists it with its reason.
"""
import time
from dataclasses import dataclass, field

from wire import TEXT

OK, NON_STRICT, FAILED, INFORMATIONAL = "OK", "NON-STRICT", "FAILED", "INFORMATIONAL"
_RANK = {OK: 0, INFORMATIONAL: 1, NON_STRICT: 2, FAILED: 3}

# How long the suite waits, in seconds. Short where only a failure waits them out: on loopback
# a conforming peer answers in milliseconds. FAIL_FAST_WAIT is Autobahn's own pause in 6.4.x.
EVENT_TIMEOUT = 2.0  # for the expected echoes and pongs
SETTLE = 0.05  # after them, for anything the peer should not have sent
FAIL_FAST_WAIT = 1.0  # 6.4.x: after the invalid part, for the close (Autobahn waits 1 s)
TCP_END_TIMEOUT = 2.0  # for the end of the TCP connection after the closing handshake


class Verdict:
    def __init__(self):
        self.result = OK
        self.notes = []
        self.observed = ""  # what the peer did, in a line, for --verbose

    def add(self, result, note):
        if _RANK[result] > _RANK[self.result]:
            self.result = result
        self.notes.append(f"{result}: {note}")

    def merge(self, other):
        self.observed = self.observed or other.observed
        for note in other.notes:
            result, _, text = note.partition(": ")
            self.add(result, text)


def worst(results):
    return max(results, key=lambda r: _RANK[r]) if results else OK


@dataclass
class Echo:
    """The peer must stay open and answer: its messages and pongs must equal one of the `ok`
    sequences (or a `non_strict` one), then our close (sent after the script unless the script
    sent one) must be answered with a code in `close_codes` (None: a close with no code), and
    the TCP connection must end as RFC 6455 7.1.1 says.

    A sequence is a list of events — ("message", opcode, payload), ("pong", payload) — or a
    predicate on the observed events (with `count` saying how many to wait for)."""
    ok: list
    non_strict: list = field(default_factory=list)
    close_codes: tuple = (1000,)
    count: int = None


@dataclass
class Fail:
    """The peer must fail the connection (RFC 6455 7.1.7): a close frame with `code`, after
    messages and pongs that equal one of the `ok` sequences (or `non_strict` ones). Any other
    close code is Autobahn's WRONG CODE (NON-STRICT).

    With fail_fast, the script sends the valid start of a message, pauses, sends the part that
    makes it invalid, and returns the bytes that would finish it. The connection must still be
    open when the invalid part is sent (closing before it is FAILED: the peer did not wait for
    the invalid byte), and the close must come within FAIL_FAST_WAIT after it (OK); if it
    comes only once the rest is sent, the peer failed late (NON-STRICT)."""
    code: int
    ok: list = field(default_factory=lambda: [[]])
    non_strict: list = field(default_factory=list)
    fail_fast: bool = False


@dataclass
class Informational:
    """Autobahn's informational cases: the script runs, we close after it unless it did (and
    the peer did not), and the outcome is recorded as INFORMATIONAL."""


@dataclass
class Refused:
    """Server role, opening handshake: the request must be refused with one of `ok_statuses`
    (`non_strict_statuses` acceptable too), never 101. Whatever the status, the refusal must
    carry the `required_headers` (name -> value, or None for any value) that the RFC asks for
    with any error answer, and `status_headers[status]` those it asks for with that status."""
    ok_statuses: tuple
    non_strict_statuses: tuple = ()
    required_headers: dict = field(default_factory=dict)
    status_headers: dict = field(default_factory=dict)


@dataclass
class NotOpened:
    """Client role, opening handshake: the client must fail the connection (RFC 6455 4.1: "the
    client MUST _Fail the WebSocket Connection_"): report a failed handshake, send nothing after
    its request, and close the TCP connection."""


def describe(events, limit=6):
    def one(e):
        if e[0] == "echo":
            return "echo as sent"  # a message a script compared and let go (sections 12, 13)
        if e[0] == "message":
            kind = "text" if e[1] == TEXT else "binary"
            payload = e[2]
        else:
            kind, payload = e[0], e[1]
        shown = payload if len(payload) <= 24 else payload[:20] + b"..."
        return f"{kind}({len(payload)}: {shown!r})"
    if callable(events):
        return "a predicate"
    text = ", ".join(one(e) for e in events[:limit])
    return "[" + text + (f", ... {len(events)} in all" if len(events) > limit else "") + "]"


def _matches(alternative, events):
    return alternative(events) if callable(alternative) else list(alternative) == events


def _expected_count(expect):
    if expect.count is not None:
        return expect.count
    return max((len(a) for a in expect.ok if not callable(a)), default=0)


def judge_events(expect, events, verdict):
    if any(_matches(a, events) for a in expect.ok):
        return
    if any(_matches(a, events) for a in expect.non_strict):
        verdict.add(NON_STRICT, f"received {describe(events)}; the best outcome is "
                                f"{describe(expect.ok[0])}")
        return
    verdict.add(FAILED, f"received {describe(events)}, expected {describe(expect.ok[0])}")


def judge_tcp_end(peer, verdict):
    """RFC 6455 7.1.1: after the closing handshake the server ends the TCP connection first; a
    client ends it once it saw the server's end. Either way it must not stay open."""
    if peer.wait_tcp_end(TCP_END_TIMEOUT):
        return
    who = "server" if peer.we_are_client else "client"
    verdict.add(FAILED, f"the {who} did not end the TCP connection within {TCP_END_TIMEOUT} s "
                        "after the closing handshake (RFC 6455 7.1.1)")


def close_name(code):
    return "a close with no code" if code is None else f"close {code}"


def play_echo(case, peer, verdict):
    expect = case.expect
    observed = peer.observed
    peer.wait_events(_expected_count(expect), case.timeout)
    if observed.close is None:
        time.sleep(SETTLE)
    if peer.close_sent is None and observed.close is None:
        peer.send_close(1000)
    if peer.peer_closed_first:
        verdict.add(FAILED, f"the peer closed first ({close_name(observed.close.code)} "
                            f"{observed.close.reason[:60]!r}); it should have stayed open")
    elif not peer.wait_close(case.timeout):
        verdict.add(FAILED, f"no close frame in answer to ours within {case.timeout} s (5.5.1)")
    elif observed.close is None:
        verdict.add(FAILED, "the peer ended the TCP connection without answering our close "
                            "frame (5.5.1)")
    elif observed.close.code not in expect.close_codes:
        verdict.add(FAILED, f"answered our close with {close_name(observed.close.code)}, "
                            f"expected {' or '.join(close_name(c) for c in expect.close_codes)}")
    judge_events(expect, list(observed.events), verdict)
    judge_tcp_end(peer, verdict)
    if peer.peer_ended_tcp_first:
        verdict.add(NON_STRICT, "the client ended the TCP connection before the server did "
                                "(7.1.1: it SHOULD wait for the server)")


def play_fail(case, peer, verdict, rest):
    expect = case.expect
    observed = peer.observed
    late = False
    if expect.fail_fast:
        early, rest = rest  # the script says whether the peer closed before the invalid part
        if early:
            verdict.add(FAILED, "the connection was failed before the invalid part was sent: "
                                "the valid start of the message must be accepted (Autobahn "
                                "6.4.x expects it open after its 1 s wait)")
        elif not peer.wait_close(FAIL_FAST_WAIT):
            late = True
            peer.send_raw(rest)
    if not peer.wait_close(case.timeout):
        verdict.add(FAILED, f"the connection was not failed: no close frame within "
                            f"{case.timeout} s, expected close {expect.code} (7.1.7)")
        peer.abort()
        judge_events(expect, list(observed.events), verdict)
        return
    if late:
        verdict.add(NON_STRICT, "the connection was failed only once the message was complete, "
                                "not at the first invalid byte (fail-fast, RFC 6455 8.1)")
    if observed.close is None:
        verdict.add(NON_STRICT, "the TCP connection ended without a close frame (7.1.7 says "
                                f"SHOULD send one, here {expect.code})")
    elif observed.close.code != expect.code:
        verdict.add(NON_STRICT, f"failed with {close_name(observed.close.code)} "
                                f"{observed.close.reason[:60]!r}; the case expects "
                                f"{expect.code} (Autobahn: WRONG CODE)")
    judge_events(expect, list(observed.events), verdict)
    judge_tcp_end(peer, verdict)


def play_informational(case, peer, verdict):
    """Autobahn grades these INFORMATIONAL whatever happens; we still wait for the end so
    that frame rules can be checked on everything the peer sent."""
    peer.wait_close(case.timeout)
    if peer.close_sent is None:
        peer.send_close(1000)
        peer.wait_close(case.timeout)
    peer.wait_tcp_end(TCP_END_TIMEOUT)
    verdict.add(INFORMATIONAL, "the RFC leaves this outcome open (Autobahn: informational)")


def play(case, peer):
    """Runs a case's script on an open connection and grades what the peer did."""
    verdict = Verdict()
    rest = case.script(peer)
    if isinstance(case.expect, Echo):
        play_echo(case, peer, verdict)
    elif isinstance(case.expect, Informational):
        play_informational(case, peer, verdict)
    else:
        play_fail(case, peer, verdict, rest)
    for violation in peer.observed.violations:
        verdict.add(FAILED, violation)
    if peer.observed.reset and not isinstance(case.expect, Informational):
        verdict.add(NON_STRICT, "the peer reset the TCP connection instead of ending it "
                                "in order")
    close = peer.observed.close
    verdict.observed = (f"received {describe(peer.observed.events)}, "
                        f"{'no close' if close is None else close_name(close.code)}"
                        f"{' (its own)' if peer.peer_closed_first else ' (answer to ours)'}")
    return verdict
