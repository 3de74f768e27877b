// duplex/protocol/url.hpp — the ws:// and wss:// URLs a client connects to (RFC 6455 section 3).
// SPDX-License-Identifier: BSL-1.0
//
// parse_websocket_url splits a URL into what the client needs: whether to use TLS, the
// host to resolve (and to name in SNI and certificate checks), the port, the Host header
// and the request target of the opening handshake. It does no I/O and no name resolution.
//
// It is strict on purpose, because its output is written into the request line and the
// Host header, and handed to a resolver and to TLS host-name verification. Compared with
// RFC 3986 (and with what browsers accept) it refuses:
//   - any scheme but ws and wss (case-insensitive): http and https are not mapped;
//   - a URL without an authority ("ws:/x", "ws:///x"), or with an empty host;
//   - userinfo ("ws://user:pass@host"): RFC 6455 has no use for it, and it hides the host;
//   - a fragment ('#'), which RFC 6455 section 3 says MUST NOT be used;
//   - any byte that is not visible ASCII (space, CR, LF, other controls, DEL, non-ASCII),
//     anywhere, including leading or trailing white space: nothing is trimmed;
//   - URLs longer than max_url_size bytes;
//   - in a reg-name host, anything but letters, digits, '-', '.', '_' and '~': no
//     percent-encoding and no sub-delims; no empty labels (one trailing dot is kept);
//   - a host whose last label looks like a number (all digits, or "0x" and hex) unless it
//     is a dotted-decimal IPv4 address with four parts and no leading zeros, so "127.1",
//     "0x7f.0.0.1" and "010.0.0.1" never reach a resolver that reads them differently;
//   - in an IPv6 literal, zone identifiers ("[fe80::1%25eth0]", RFC 6874) and IPvFuture
//     ("[v1.x]");
//   - port 0, ports above 65535, and ports that are not all digits (an empty port after
//     ':' is allowed by RFC 3986 and means the default);
//   - in the path and query, characters RFC 3986 does not allow there ('"', '<', '>', '\',
//     '^', '`', '{', '|', '}', '[', ']') and a '%' not followed by two hex digits: the
//     caller percent-encodes. Nothing is decoded and no dot segments are removed.
//
// It also reads the form Node's ws uses for a server on a Unix-domain socket
// (transport::unix_socket): "ws+unix:" and an optional empty authority "//", the socket's
// absolute path, then optionally ':' and the request target: "ws+unix:///run/app.sock:/chat?x=1"
// or "ws+unix:/run/app.sock" (target "/"). The path runs to the first ':' (so it cannot
// contain one, nor '?'); it is taken as written, not percent-decoded. The Host header is then
// "localhost", as Node sends. wss+unix is refused: that transport has no TLS.
#pragma once

#include "duplex/error.hpp"
#include "duplex/protocol/http.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace duplex::protocol {

// Longer URLs are refused; the request line they would produce must fit in a head.
inline constexpr std::size_t max_url_size = 8192;

struct websocket_url {
    bool secure = false;       // wss
    std::string host;          // lower-cased; an IPv6 literal without its brackets ("::1")
    std::uint16_t port = 0;    // explicit, or the default: 80 for ws, 443 for wss
    std::string target = "/";  // origin-form request target: path, then '?' and the query if
                               // the URL has one (an empty query keeps its '?'); never a
                               // fragment
    std::string path = "/";    // as written (still percent-encoded), "/" when empty
    std::string query;         // as written (still percent-encoded), without '?'
    bool ipv6_literal = false; // host was "[...]"
    bool ipv4_literal = false; // host is a dotted-decimal IPv4 address
    std::string socket_path;   // ws+unix: the Unix-domain socket's file; empty otherwise

    // Neither SNI nor a DNS-name certificate check applies to an IP address (RFC 6066 3).
    bool ip_literal() const noexcept { return ipv6_literal || ipv4_literal; }

    std::uint16_t default_port() const noexcept { return secure ? 443 : 80; }

    // The Host header value (RFC 6455 section 4.1 item 4): the host, bracketed when it is
    // an IPv6 literal, and ":port" only when the port is not the default.
    std::string host_header() const {
        std::string out;
        if (ipv6_literal) {
            out.append("[").append(host).append("]");
        } else {
            out = host;
        }
        if (port != default_port()) out.append(":").append(std::to_string(port));
        return out;
    }
};

namespace detail {

// What every malformed URL reports. A dedicated duplex::error::bad_url would be clearer;
// when error.hpp has one, this is the only line to change.
inline constexpr duplex::error url_error = duplex::error::bad_url;

inline bool is_ascii_digit(char c) noexcept { return c >= '0' && c <= '9'; }

inline bool is_ascii_alpha(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// The subset of reg-name (RFC 3986 section 3.2.2) accepted: unreserved characters only.
inline bool is_url_host_char(char c) noexcept {
    return is_ascii_alpha(c) || is_ascii_digit(c) || c == '-' || c == '.' || c == '_' || c == '~';
}

// pchar (RFC 3986 section 3.3) without pct-encoded, plus '/' and '?', which path and
// query may also contain.
inline bool is_url_target_char(char c) noexcept {
    if (is_ascii_alpha(c) || is_ascii_digit(c)) return true;
    switch (c) {
    case '-':
    case '.':
    case '_':
    case '~': // unreserved
    case '!':
    case '$':
    case '&':
    case '\'':
    case '(':
    case ')':
    case '*':
    case '+':
    case ',':
    case ';':
    case '=': // sub-delims
    case ':':
    case '@':
    case '/':
    case '?': return true;
    default: return false;
    }
}

// Path and query (RFC 3986 sections 3.3, 3.4), with percent-encodings well-formed.
inline bool is_url_target(std::string_view s) noexcept {
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '%') {
            if (s.size() - i < 3 || hex_value(s[i + 1]) < 0 || hex_value(s[i + 2]) < 0) {
                return false;
            }
            i += 2;
        } else if (!is_url_target_char(s[i])) {
            return false;
        }
    }
    return true;
}

// dec-octet (RFC 3986 section 3.2.2): 0-255, no leading zeros.
inline bool is_dec_octet(std::string_view s) noexcept {
    if (s.empty() || s.size() > 3 || !std::all_of(s.begin(), s.end(), is_ascii_digit)) {
        return false;
    }
    if (s.size() > 1 && s[0] == '0') return false;
    int value = 0;
    for (const char c : s) value = value * 10 + (c - '0');
    return value <= 255;
}

// IPv4address (RFC 3986 section 3.2.2): four dec-octets separated by dots.
inline bool is_ipv4_address(std::string_view s) noexcept {
    for (int part = 0; part != 4; ++part) {
        const std::size_t dot = s.find('.');
        if ((part == 3) != (dot == std::string_view::npos)) return false;
        if (!is_dec_octet(s.substr(0, dot))) return false;
        s = part == 3 ? std::string_view() : s.substr(dot + 1);
    }
    return true;
}

// h16 (RFC 3986 section 3.2.2): one to four hex digits.
inline bool is_h16(std::string_view s) noexcept {
    return !s.empty() && s.size() <= 4 &&
           std::all_of(s.begin(), s.end(), [](char c) { return hex_value(c) >= 0; });
}

// Counts the 16-bit pieces of one side of an IPv6 address ("1:2:3", maybe empty); the
// last piece may be an IPv4 address (two pieces) when `may_end_in_ipv4`.
inline bool count_ipv6_pieces(std::string_view s, bool may_end_in_ipv4,
                              std::size_t& pieces) noexcept {
    pieces = 0;
    if (s.empty()) return true;
    for (;;) {
        const std::size_t colon = s.find(':');
        const std::string_view piece = s.substr(0, colon);
        if (colon == std::string_view::npos) {
            if (may_end_in_ipv4 && piece.find('.') != std::string_view::npos) {
                if (!is_ipv4_address(piece)) return false;
                pieces += 2;
                return true;
            }
            if (!is_h16(piece)) return false;
            ++pieces;
            return true;
        }
        if (!is_h16(piece)) return false;
        ++pieces;
        s.remove_prefix(colon + 1);
    }
}

// IPv6address (RFC 3986 section 3.2.2): eight pieces, or fewer around one "::".
inline bool is_ipv6_address(std::string_view s) noexcept {
    const std::size_t elision = s.find("::");
    std::size_t pieces = 0;
    if (elision == std::string_view::npos) return count_ipv6_pieces(s, true, pieces) && pieces == 8;
    const std::string_view tail = s.substr(elision + 2);
    if (tail.find("::") != std::string_view::npos) return false;
    std::size_t head_pieces = 0, tail_pieces = 0;
    return count_ipv6_pieces(s.substr(0, elision), false, head_pieces) &&
           count_ipv6_pieces(tail, true, tail_pieces) && head_pieces + tail_pieces <= 7;
}

// Whether the last label of a reg-name (ignoring one trailing dot) is a number in some
// notation an IPv4 parser accepts: decimal digits, or "0x" and hex digits.
inline bool ends_in_number(std::string_view host) noexcept {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    const std::size_t dot = host.rfind('.');
    const std::string_view label = dot == std::string_view::npos ? host : host.substr(dot + 1);
    if (label.empty()) return false;
    if (std::all_of(label.begin(), label.end(), is_ascii_digit)) return true;
    return label.size() >= 2 && label[0] == '0' && (label[1] == 'x' || label[1] == 'X') &&
           std::all_of(label.begin() + 2, label.end(), [](char c) { return hex_value(c) >= 0; });
}

// A non-empty reg-name of accepted characters with no empty label but a trailing one.
inline bool is_url_reg_name(std::string_view host) noexcept {
    if (host.empty() || !std::all_of(host.begin(), host.end(), is_url_host_char)) return false;
    if (host.back() == '.') host.remove_suffix(1);
    if (host.empty() || host.front() == '.' || host.back() == '.') return false;
    return host.find("..") == std::string_view::npos;
}

// port (RFC 3986 section 3.2.3), non-empty here: digits, 1-65535, leading zeros allowed.
inline bool parse_url_port(std::string_view s, std::uint16_t& port) noexcept {
    if (s.empty()) return false;
    unsigned long value = 0;
    for (const char c : s) {
        if (!is_ascii_digit(c)) return false;
        value = value * 10 + static_cast<unsigned long>(c - '0');
        if (value > 65535) return false;
    }
    if (value == 0) return false;
    port = static_cast<std::uint16_t>(value);
    return true;
}

// Splits path [ "?" query ] of a request target into `u` (target, path and query); an empty
// path is "/" (RFC 6455 section 3).
inline bool parse_url_target(std::string_view target, websocket_url& u) {
    if (!is_url_target(target)) return false;
    const std::size_t question = target.find('?');
    const std::string_view path = target.substr(0, question);
    u.path = path.empty() ? std::string("/") : std::string(path);
    u.target = u.path;
    if (question != std::string_view::npos) {
        u.query.assign(target.substr(question + 1));
        u.target.append("?").append(u.query);
    }
    return true;
}

// After "ws+unix:": ["//"] "/" socket-path [ ":" target ].
inline bool parse_unix_socket_url(std::string_view rest, websocket_url& u) {
    if (rest.substr(0, 2) == "//") rest.remove_prefix(2); // an empty authority, then the path
    if (rest.empty() || rest.front() != '/') return false;
    const std::size_t colon = rest.find(':');
    const std::string_view socket_path = rest.substr(0, colon);
    if (socket_path.find('?') != std::string_view::npos) return false;
    const std::string_view target =
        colon == std::string_view::npos ? std::string_view() : rest.substr(colon + 1);
    if (!target.empty() && target.front() != '/' && target.front() != '?') return false;
    u.secure = false;
    u.socket_path.assign(socket_path);
    u.host = "localhost";
    u.port = u.default_port();
    return parse_url_target(target, u);
}

inline bool parse_websocket_url_into(std::string_view url, websocket_url& u) {
    if (url.size() > max_url_size) return false;
    if (!std::all_of(url.begin(), url.end(), is_vchar)) return false;
    if (url.find('#') != std::string_view::npos) return false; // RFC 6455 section 3

    // scheme "://"
    const std::size_t colon = url.find(':');
    if (colon == std::string_view::npos) return false;
    const std::string_view scheme = url.substr(0, colon);
    if (iequals(scheme, "ws+unix")) return parse_unix_socket_url(url.substr(colon + 1), u);
    if (iequals(scheme, "ws")) {
        u.secure = false;
    } else if (iequals(scheme, "wss")) {
        u.secure = true;
    } else {
        return false;
    }
    std::string_view rest = url.substr(colon + 1);
    if (rest.substr(0, 2) != "//") return false;
    rest.remove_prefix(2);

    // authority = host [ ":" port ], ending at the path or the query
    const std::size_t authority_end = rest.find_first_of("/?");
    const std::string_view authority = rest.substr(0, authority_end);
    const std::string_view target =
        authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
    if (authority.find('@') != std::string_view::npos) return false;

    std::string_view host;
    std::string_view port_text; // empty: the default
    if (!authority.empty() && authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return false;
        host = authority.substr(1, close - 1);
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return false;
            port_text = after.substr(1);
        }
        if (!is_ipv6_address(host)) return false;
        u.ipv6_literal = true;
    } else {
        const std::size_t port_colon = authority.find(':');
        host = authority.substr(0, port_colon);
        if (port_colon != std::string_view::npos) port_text = authority.substr(port_colon + 1);
        if (!is_url_reg_name(host)) return false;
        if (ends_in_number(host)) {
            if (!is_ipv4_address(host)) return false;
            u.ipv4_literal = true;
        }
    }
    u.host.assign(host.begin(), host.end());
    for (char& c : u.host) c = ascii_lower(c);

    u.port = u.default_port();
    if (!port_text.empty() && !parse_url_port(port_text, u.port)) return false;

    return parse_url_target(target, u);
}

} // namespace detail

// Parses a ws://, wss:// or ws+unix: URL (RFC 6455 section 3, RFC 3986) into `out`. On failure
// returns the error (see detail::url_error; every malformed URL gives the same one) and
// leaves `out` default-constructed. Never throws on bad input.
inline std::error_code parse_websocket_url(std::string_view url, websocket_url& out) {
    out = websocket_url{};
    websocket_url parsed;
    if (!detail::parse_websocket_url_into(url, parsed)) return detail::url_error;
    out = std::move(parsed);
    return {};
}

} // namespace duplex::protocol
