#!/usr/bin/python3
"""Conformance suite for duplex in the manner of Autobahn|Testsuite (sections 1-13) plus the
opening handshake of RFC 6455 section 4, in both roles. Python 3 standard library only.

    run_conformance.py --role server --echo-server PATH      duplex's echo server, we are the client
    run_conformance.py --role client --client PATH           duplex's client, we are the server
    run_conformance.py --role both --echo-server PATH --client PATH

Options: --cases REGEX (case ids, e.g. '5\\..*|7\\.1\\.1'), --jobs N (cases run in parallel),
--markdown FILE (also write the tables as Markdown), --verbose (notes for every case),
--progress (each grade as its case ends),
--allow FILE (the reviewed NON-STRICT allow-list; default allowed_non_strict.txt here).

Both duplex programs run with their default limits: no flag is passed to either.

The server role starts one echo_server on an ephemeral port and opens one connection per case.
The client role listens on an ephemeral port and starts conformance_client once per case with
ws://127.0.0.1:PORT/runCase?case=ID&agent=duplex, like Autobahn's fuzzing server. It prints a
table of cases (OK, NON-STRICT, FAILED, INFORMATIONAL per role) and counts per section, and
exits 1 if a case FAILED or was NON-STRICT without an entry in the allow-list, 0 otherwise (2
for usage, setup problems also 1).
"""
import argparse
import concurrent.futures
import contextlib
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.parse

# The suite's modules sit next to this script; no __pycache__ in the source tree from ctest.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cases import AUTOBAHN_SECTIONS, CASES, OCTET_PAUSE, SECTIONS, standard  # noqa: E402
from deflate import Codec  # noqa: E402
from judge import (EVENT_TIMEOUT, FAILED, INFORMATIONAL, NON_STRICT, OK,  # noqa: E402
                   TCP_END_TIMEOUT, Echo, Fail, NotOpened, Refused, Verdict, play)
from wire import (Peer, accept_key, accept_response, check_client_request, new_key,  # noqa: E402
                  parse_head, read_head)

HOST = "127.0.0.1"
HANDSHAKE_TIMEOUT = 5.0  # generous: a sanitizer build starts slowly under load
PROCESS_EXIT_TIMEOUT = 5.0


def send_pieces(sock, data):
    """Bytes, or a list of pieces written with a pause between them."""
    if isinstance(data, list):
        for i, piece in enumerate(data):
            if i:
                time.sleep(OCTET_PAUSE)
            sock.sendall(piece)
    else:
        sock.sendall(data)


def sanitizer_report(text):
    for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                   "ThreadSanitizer", "UndefinedBehaviorSanitizer"):
        at = text.find(marker)
        if at >= 0:
            return text[max(0, at - 200):at + 1500]
    return None


# --- server role: duplex's echo server, the suite is the client -----------------------------

class EchoServer:
    def __init__(self, path):
        # No limit flags: the defaults are what the suite checks.
        self.process = subprocess.Popen(
            [path, "--host", HOST, "--port", "0", "--threads", "2"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        found = re.search(r":(\d+)\s*$", line)
        if not found:
            self.process.kill()
            raise RuntimeError(f"echo_server did not start: {line!r} "
                               f"{self.process.stderr.read()[:2000]}")
        self.port = int(found.group(1))

    def stop(self):
        """SIGTERM: a graceful shutdown. Returns problems (exit status, sanitizer output)."""
        self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate()
            return [f"echo_server still running 10 s after SIGTERM; stderr: {err[-2000:]}"]
        problems = []
        if self.process.returncode != 0:
            problems.append(f"echo_server exited with status {self.process.returncode}")
        report = sanitizer_report(err)
        if report:
            problems.append(f"echo_server sanitizer report:\n{report}")
        return problems


def check_accept(head, key, verdict, negotiation=None):
    """RFC 6455 4.2.2 item 5 / 4.1: what the 101 must carry, and nothing it must not. With a
    permessage-deflate negotiation, the agreed parameters (deflate.Agreed) or None."""
    if head.status != 101:
        verdict.add(FAILED, f"the handshake was refused: {head.start_line!r}")
        return False
    if head.tokens("Upgrade") != ["websocket"]:
        verdict.add(FAILED, f"101 with Upgrade {head.get_all('Upgrade')}")
    if "upgrade" not in head.tokens("Connection"):
        verdict.add(FAILED, f"101 with Connection {head.get_all('Connection')}")
    if head.get_all("Sec-WebSocket-Accept") != [accept_key(key)]:
        verdict.add(FAILED, f"101 with Sec-WebSocket-Accept {head.get_all('Sec-WebSocket-Accept')}"
                            f", expected {accept_key(key)!r}")
    for name in ("Sec-WebSocket-Protocol",) + (() if negotiation else
                                               ("Sec-WebSocket-Extensions",)):
        if head.get_all(name):
            verdict.add(FAILED, f"101 with {name}: {head.get_all(name)}, which we did not ask for "
                                "or cannot have been agreed (4.2.2)")
    if negotiation is None:
        return True
    agreed, problems = negotiation.check_response(head.get_all("Sec-WebSocket-Extensions"))
    for problem in problems:
        verdict.add(FAILED, f"permessage-deflate response: {problem}")
    return agreed


def judge_refusal(case, head, body, ended, verdict):
    expect = case.expect
    if head is None:
        verdict.add(FAILED, "no HTTP response (the server must answer with an error code, 4.2.1)")
        return
    status = head.status
    verdict.observed = f"answered {head.start_line!r}"
    if status == 101:
        verdict.add(FAILED, "the server accepted an invalid handshake (101)")
    elif status in expect.ok_statuses:
        pass
    elif status in expect.non_strict_statuses:
        verdict.add(NON_STRICT, f"answered {status}, the RFC's choice is "
                                f"{expect.ok_statuses[0]}")
    else:
        verdict.add(FAILED, f"answered {head.start_line!r}, expected one of "
                            f"{expect.ok_statuses + expect.non_strict_statuses}")
    if status != 101:
        required = dict(expect.required_headers)
        required.update(expect.status_headers.get(status, {}))
        for name, value in required.items():
            values = head.get_all(name)
            if not values or (value and value not in values):
                verdict.add(FAILED, f"{status} without '{name}: {value or '...'}' (RFC 6455 "
                                    "4.4, RFC 7231 6.5.5)")
    if not ended:
        verdict.add(NON_STRICT, "the server kept the connection open after refusing it")


def run_server_case(case, port):
    verdict = Verdict()
    key = new_key()
    target = f"/runCase?case={case.id}&agent=duplex"
    sock = socket.create_connection((HOST, port), timeout=HANDSHAKE_TIMEOUT)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        request = case.request or standard(
            case.negotiation.request_field() + "\n" if case.negotiation else "")
        send_pieces(sock, request(f"{HOST}:{port}", target, key))
        raw, rest = read_head(sock, time.monotonic() + HANDSHAKE_TIMEOUT)
        head = parse_head(raw) if raw else None
        if isinstance(case.expect, Refused):
            ended, body = read_to_end(sock, rest, TCP_END_TIMEOUT)
            judge_refusal(case, head, body, ended, verdict)
            return verdict
        if head is None:
            verdict.add(FAILED, "no 101 response within "
                                f"{HANDSHAKE_TIMEOUT} s ({rest[:80]!r} received)")
            return verdict
        agreed = check_accept(head, key, verdict, case.negotiation)
        if not agreed:
            return verdict
        codec = Codec(agreed, we_are_client=True) if case.negotiation else None
        peer = Peer(sock, we_are_client=True, initial_bytes=rest, deflate=codec)
        verdict.merge(play(case, peer))
        peer.abort()
        return verdict
    finally:
        sock.close()


def read_to_end(sock, data, timeout):
    deadline = time.monotonic() + timeout
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False, data
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            return False, data
        except OSError:
            return True, data
        if not chunk:
            return True, data
        data += chunk


# --- client role: duplex's client, the suite is the server ----------------------------------

class CaseServer:
    """Listens for conformance_client and hands each connection, once its request head has
    arrived, to the case named in its URL."""

    def __init__(self):
        self.listener = socket.create_server((HOST, 0))
        self.port = self.listener.getsockname()[1]
        self.waiting = {}
        self.lock = threading.Lock()
        threading.Thread(target=self._accept_loop, daemon=True).start()

    def expect(self, case_id):
        q = queue.Queue()
        with self.lock:
            self.waiting[case_id] = q
        return q

    def _accept_loop(self):
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._read_request, args=(sock,), daemon=True).start()

    def _read_request(self, sock):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        raw, rest = read_head(sock, time.monotonic() + HANDSHAKE_TIMEOUT)
        head = parse_head(raw) if raw else None
        target = head.start_line.split(" ")[1] if head and head.start_line.count(" ") >= 2 else ""
        case_id = urllib.parse.parse_qs(urllib.parse.urlsplit(target).query).get("case", [""])[0]
        with self.lock:
            q = self.waiting.pop(case_id, None)
        if q is None:
            sock.close()
        else:
            q.put((sock, head, rest))

    def close(self):
        self.listener.close()


CLOSED_LINE = re.compile(r"^closed (\d+) (.*) sent=(\d+) received=(\d+) initiator=(\w+)$", re.M)


def close_code_of(payload):
    return 1005 if not payload else int.from_bytes(payload[:2], "big")


def check_close_report(case, peer, out, verdict):
    """What the client's close_info said against what went over the wire: both codes, who
    started the closing handshake, and no error after a completed one."""
    found = CLOSED_LINE.search(out)
    if not found or peer is None:
        return
    code, error, sent, received, initiator = (int(found.group(1)), found.group(2),
                                              int(found.group(3)), int(found.group(4)),
                                              found.group(5))
    report = f"close_info: code {code}, error {error!r}, sent {sent}, received {received}, " \
             f"initiator {initiator}"
    observed = peer.observed.close
    if isinstance(case.expect, Echo) and not peer.peer_closed_first and observed is not None:
        ours = close_code_of(peer.close_sent)
        answered = observed.code if observed.code is not None else 1005
        if error != "-" or initiator != "peer" or received != ours or sent != answered:
            verdict.add(FAILED, f"{report}; the suite closed with {ours}, the client answered "
                                f"{close_name_of(observed)} and the handshake completed")
    elif isinstance(case.expect, Fail) and peer.peer_closed_first and observed is not None:
        theirs = observed.code if observed.code is not None else 1005
        if initiator != "local" or sent != theirs or code != theirs or error == "-":
            verdict.add(FAILED, f"{report}; the client failed the connection with {theirs}")


def close_name_of(close):
    return "with no code" if close.code is None else str(close.code)


def finish_client(process, verdict, expect_open, case=None, peer=None):
    try:
        out, err = process.communicate(timeout=PROCESS_EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
        verdict.add(FAILED, f"conformance_client still running {PROCESS_EXIT_TIMEOUT} s after "
                            f"the case ended (output: {out.strip()[-200:]!r})")
        return
    report = sanitizer_report(err)
    if report:
        verdict.add(FAILED, f"sanitizer report from conformance_client:\n{report}")
    if not expect_open:
        verdict.observed = f"conformance_client exit {process.returncode}: {out.strip()!r}"
    opened = out.startswith("open")
    if expect_open:
        if process.returncode != 0 or not opened:
            verdict.add(FAILED, f"conformance_client exit {process.returncode}: "
                                f"{(out + err).strip()[-300:]!r}")
        elif not CLOSED_LINE.search(out):
            verdict.add(FAILED, f"conformance_client did not report the end: {out.strip()!r}")
        else:
            check_close_report(case, peer, out, verdict)
    else:
        if opened or process.returncode != 3:
            verdict.add(FAILED, f"the client opened the connection (exit {process.returncode}, "
                                f"{out.strip()[-200:]!r}); RFC 6455 4.1 says it MUST fail it")


def run_client_case(case, server, client_path):
    verdict = Verdict()
    arrival = server.expect(case.id)
    target = f"/runCase?case={case.id}&agent=duplex"
    url = f"ws://{HOST}:{server.port}{target}"
    process = subprocess.Popen([client_path, url, *case.client_args],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        sock, head, leftover = arrival.get(timeout=HANDSHAKE_TIMEOUT)
    except queue.Empty:
        process.kill()
        out, err = process.communicate()
        verdict.add(FAILED, f"conformance_client did not connect within {HANDSHAKE_TIMEOUT} s: "
                            f"{(out + err).strip()[-300:]!r}")
        return verdict
    try:
        if head is None:
            verdict.add(FAILED, "no complete upgrade request from the client")
            finish_client(process, Verdict(), True)
            return verdict
        for problem in check_client_request(head, f"{HOST}:{server.port}", target):
            verdict.add(FAILED, problem)
        if leftover:
            verdict.add(FAILED, "the client sent bytes before the 101 (4.1: it MUST NOT send "
                                "frames before the handshake completed)")
        key = (head.get_all("Sec-WebSocket-Key") or [""])[0]
        codec = None
        if case.negotiation:
            field, agreed, offer, problems = case.negotiation.answer_offer(
                head.get_all("Sec-WebSocket-Extensions"))
            for problem in problems:
                verdict.add(FAILED, f"permessage-deflate offer: {problem}")
            if field is None:
                sock.close()
                finish_client(process, Verdict(), True)
                return verdict
            codec = Codec(agreed, we_are_client=False,
                          peer_hint_no_context_takeover=bool(offer.get(
                              "client_no_context_takeover")))
            send_pieces(sock, accept_response(key, field + "\r\n"))
        else:
            send_pieces(sock, case.response(key) if case.response else accept_response(key))
        if isinstance(case.expect, NotOpened):
            ended, data = read_to_end(sock, b"", PROCESS_EXIT_TIMEOUT)
            if data:
                verdict.add(FAILED, f"the client sent {len(data)} bytes after a handshake it must "
                                    "refuse")
            if not ended:
                verdict.add(FAILED, "the client did not close the TCP connection after failing "
                                    "the handshake")
            finish_client(process, verdict, expect_open=False)
            return verdict
        peer = Peer(sock, we_are_client=False, deflate=codec)
        verdict.merge(play(case, peer))
        peer.abort()
        finish_client(process, verdict, True, case, peer)
        return verdict
    finally:
        sock.close()
        if process.poll() is None:
            process.kill()
            process.communicate()


# --- running and reporting ------------------------------------------------------------------

def run_all(cases, roles, args):
    echo_server = EchoServer(args.echo_server) if "server" in roles else None
    case_server = CaseServer() if "client" in roles else None
    jobs = []
    for case in cases:
        for role in roles:
            if role in case.roles:
                jobs.append((case, role))
    # The long cases first, so that they overlap with everything else, but only two of them
    # at a time: on a small machine a pile of multi-megabyte transfers would starve the rest.
    jobs.sort(key=lambda job: job[0].timeout, reverse=True)
    heavy = threading.Semaphore(2)

    def run(job):
        case, role = job
        is_heavy = case.heavy if case.heavy is not None else case.timeout > EVENT_TIMEOUT
        with heavy if is_heavy else contextlib.nullcontext():
            return run_one(case, role)

    def run_one(case, role):
        started = time.monotonic()
        try:
            if role == "server":
                verdict = run_server_case(case, echo_server.port)
            else:
                verdict = run_client_case(case, case_server, args.client)
        except Exception as e:  # a bug in the suite or a peer gone away: never hide a case
            verdict = Verdict()
            verdict.add(FAILED, f"the test side failed: {type(e).__name__}: {e}")
        return (case, role), verdict, time.monotonic() - started

    results = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(run, job) for job in jobs]
        for future in concurrent.futures.as_completed(futures):
            (case, role), verdict, seconds = future.result()
            results[(case.id, role)] = (verdict, seconds)
            if args.progress:
                print(f"{case.id} [{role} role] {verdict.result} in {seconds:.1f} s "
                      f"({len(results)} of {len(jobs)})", flush=True)
    problems = echo_server.stop() if echo_server else []
    if case_server:
        case_server.close()
    return results, problems


def section_title(section):
    return f"{section} {SECTIONS[section]}"


def tables(cases, roles, results, markdown):
    """The case table and the per-section counts, as plain text or Markdown lines (the counts
    first in Markdown, where the case table is long)."""
    lines = []
    shown = [c for c in cases if any(r in c.roles for r in roles)]
    width = max(len(c.description) for c in shown)
    width = min(width, 80)

    def cell(case, role):
        if role not in case.roles:
            return "—" if markdown else "-"
        return results[(case.id, role)][0].result

    if markdown:
        lines.append("| case | description | " + " | ".join(f"{r} role" for r in roles) + " |")
        lines.append("|---|---|" + "---|" * len(roles))
        for c in shown:
            description = c.description.replace("|", "\\|")
            lines.append(f"| {c.id} | {description} | " +
                         " | ".join(cell(c, r) for r in roles) + " |")
    else:
        lines.append(f"{'case':9} {'description':{width}} " + " ".join(f"{r:11}" for r in roles))
        for c in shown:
            d = c.description if len(c.description) <= width else c.description[:width - 3] + "..."
            lines.append(f"{c.id:9} {d:{width}} " + " ".join(f"{cell(c, r):11}" for r in roles))
    counts = summary(shown, roles, results, markdown)
    return counts + [""] + lines if markdown else lines + [""] + counts


def summary(cases, roles, results, markdown):
    """Per section and role: how many cases, and how many were OK, NON-STRICT, FAILED,
    INFORMATIONAL; then Autobahn's sections together, then everything."""
    kinds = (OK, NON_STRICT, FAILED, INFORMATIONAL)
    lines = []
    if markdown:
        lines.append("| section | " + " | ".join(f"{r} {k}" for r in roles
                                                 for k in ("cases",) + kinds) + " |")
        lines.append("|---|" + "---:|" * (5 * len(roles)))
    else:
        lines.append(f"{'':44}" + "".join(f"  {r + ' role':<46}" for r in roles))
        lines.append(f"{'section':44}" +
                     "  cases    OK  NON-STRICT  FAILED  INFORMATIONAL" * len(roles))
    groups = {"autobahn": [c for c in cases if c.section in AUTOBAHN_SECTIONS], "all": cases}
    for section in list(SECTIONS) + list(groups):
        members = groups.get(section) or [c for c in cases if c.section == section]
        if not members:
            continue
        counts = []
        for r in roles:
            ran = [c for c in members if r in c.roles]
            counts.append([len(ran)] + [sum(1 for c in ran if results[(c.id, r)][0].result == k)
                                        for k in kinds])
        title = {"all": "all", "autobahn": "Autobahn sections 1-13"}.get(section) or \
            section_title(section)
        if markdown:
            lines.append(f"| {title} | " + " | ".join(str(n) for row in counts for n in row) + " |")
        else:
            lines.append(f"{title[:44]:44}" + "".join(
                f"  {row[0]:5} {row[1]:5} {row[2]:11} {row[3]:7} {row[4]:14}" for row in counts))
    return lines


def findings(cases, roles, results, verbose):
    lines = []
    for c in cases:
        for r in roles:
            if (c.id, r) not in results:
                continue
            verdict, seconds = results[(c.id, r)]
            if verdict.result != OK or verbose:
                lines.append(f"{c.id} [{r} role] {verdict.result} in {seconds:.2f} s — "
                             f"{c.description}")
                if verbose and verdict.observed:
                    lines.append(f"    observed: {verdict.observed}")
                lines += [f"    {note}" for note in verdict.notes]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--role", choices=("server", "client", "both"), required=True)
    parser.add_argument("--echo-server", help="path of examples/echo_server (server role)")
    parser.add_argument("--client", help="path of tests/conformance/conformance_client")
    parser.add_argument("--cases", help="regular expression on case ids")
    parser.add_argument("--jobs", type=int, default=6)
    parser.add_argument("--allow", default=os.path.join(os.path.dirname(
        os.path.abspath(__file__)), "allowed_non_strict.txt"))
    parser.add_argument("--markdown", help="also write the tables to this file")
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--progress", action="store_true",
                        help="print each case's grade as it ends (long runs)")
    args = parser.parse_args()
    roles = ("server", "client") if args.role == "both" else (args.role,)
    if "server" in roles and not args.echo_server:
        parser.error("the server role needs --echo-server")
    if "client" in roles and not args.client:
        parser.error("the client role needs --client")
    for path in (args.echo_server, args.client):
        if path and not os.access(path, os.X_OK):
            print(f"FAIL: {path} is not built", file=sys.stderr)
            return 1
    cases = [c for c in CASES if args.cases is None or re.fullmatch(args.cases, c.id)]
    if not cases:
        parser.error(f"no case matches {args.cases!r}")

    started = time.monotonic()
    results, problems = run_all(cases, roles, args)
    elapsed = time.monotonic() - started
    shown = [c for c in cases if any(r in c.roles for r in roles)]

    print("\n".join(tables(cases, roles, results, markdown=False)))
    notes = findings(shown, roles, results, args.verbose)
    if notes:
        print("\nFindings:\n" + "\n".join(notes))
    for problem in problems:
        print(f"\nFAIL: {problem}")
    allowed = read_allow_list(args.allow)
    count = {k: sum(1 for v, _ in results.values() if v.result == k)
             for k in (OK, NON_STRICT, FAILED, INFORMATIONAL)}
    unexplained = sorted(key for key, (v, _) in results.items()
                         if v.result == NON_STRICT and key not in allowed)
    for case_id, role in unexplained:
        print(f"\nFAIL: {case_id} [{role} role] is NON-STRICT and not in {args.allow}")
    for (case_id, role), reason in sorted(allowed.items()):
        if (case_id, role) in results and results[(case_id, role)][0].result != NON_STRICT:
            print(f"\nnote: {case_id} [{role} role] is allowed NON-STRICT ({reason}) but was "
                  f"{results[(case_id, role)][0].result}: the entry can go")
    print(f"\n{len(results)} case runs in {elapsed:.1f} s: {count[OK]} OK, "
          f"{count[NON_STRICT]} NON-STRICT ({count[NON_STRICT] - len(unexplained)} allowed), "
          f"{count[FAILED]} FAILED, {count[INFORMATIONAL]} INFORMATIONAL")
    if args.markdown:
        with open(args.markdown, "w") as out:
            out.write("\n".join(tables(cases, roles, results, markdown=True)) + "\n")
    return 1 if count[FAILED] or unexplained or problems else 0


def read_allow_list(path):
    """(case id, role) -> reason. Each line: CASE-ID ROLE REASON...; '#' starts a comment. An
    entry without a reason is an error: the file exists to be reviewed."""
    allowed = {}
    with open(path) as f:
        for number, line in enumerate(f, 1):
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split(None, 2)
            if len(parts) < 3 or parts[1] not in ("server", "client"):
                raise SystemExit(f"{path}:{number}: expected 'CASE-ID server|client REASON'")
            allowed[(parts[0], parts[1])] = parts[2]
    return allowed


if __name__ == "__main__":
    sys.exit(main())
