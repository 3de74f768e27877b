// duplex/protocol/handshake.hpp — the WebSocket opening handshake (RFC 6455 section 4).
// SPDX-License-Identifier: BSL-1.0
//
// Sans-I/O drivers for both roles: server_handshake takes request bytes and produces the
// 101 response or a refusal; client_handshake produces the request and checks the
// response. Neither reads a socket, a clock or a random source: the client's nonce is a
// parameter. Both stop right after the head, so bytes that follow it (the first frames)
// stay with the caller. Also here: Sec-WebSocket-Accept. permessage-deflate (RFC 7692)
// is negotiated here when the options enable it (permessage_deflate.hpp has the rules).
#pragma once

#include "duplex/error.hpp"
#include "duplex/protocol/base64.hpp"
#include "duplex/protocol/extensions.hpp"
#include "duplex/protocol/http.hpp"
#include "duplex/protocol/permessage_deflate.hpp"
#include "duplex/protocol/progress.hpp"
#include "duplex/protocol/sha1.hpp"

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace duplex::protocol {

// RFC 6455 section 1.3.
inline constexpr std::string_view websocket_guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// base64(SHA-1(key + GUID)), RFC 6455 section 4.2.2 item 5.
inline std::string accept_key(std::string_view sec_websocket_key) {
    sha1_hasher h;
    h.update(sec_websocket_key);
    h.update(websocket_guid);
    const auto digest = h.finish();
    return base64_encode(
        std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

namespace detail {

inline bool is_one_of(std::string_view name, std::initializer_list<std::string_view> names) {
    for (const auto n : names) {
        if (iequals(name, n)) return true;
    }
    return false;
}

} // namespace detail

// --- Server side (RFC 6455 section 4.2) -----------------------------------------------

// What a valid upgrade request asked for. The views point into the http_head that was
// validated and live as long as it does.
struct upgrade_request {
    std::string_view target, path, query, host, origin, key; // origin empty when absent
    std::vector<std::string_view> subprotocols;              // offered, in order
    std::vector<extension> extensions;                       // offered, in order
};

// Whether the request asks for a WebSocket upgrade at all. A plain HTTP request (a health
// check, a page) is not one, and deserves an HTTP answer rather than a handshake refusal.
inline bool is_upgrade_request(const http_head& request) {
    return request.has_token("Upgrade", "websocket");
}

// RFC 6455 section 4.2.1. The version is checked before the key so that a client speaking
// an older draft (which sends no Sec-WebSocket-Version) is told which version to use (426)
// rather than that its key is bad. More than one Origin field is refused (bad_header): an
// Origin check must not pass on one value while something else in the path acts on
// another. Subprotocol list elements that are not tokens are ignored; none can be chosen.
inline std::error_code validate_upgrade_request(const http_head& request, upgrade_request& out) {
    out = upgrade_request{};
    out.target = request.target();
    out.path = request.path();
    out.query = request.query();
    if (!request.is_request() || request.method() != "GET") return duplex::error::bad_method;
    if (request.version_major() < 1 ||
        (request.version_major() == 1 && request.version_minor() < 1)) {
        return duplex::error::bad_http_version;
    }
    const auto host = request.field("Host");
    if (!host || host->empty() || request.count("Host") != 1) return duplex::error::missing_host;
    out.host = *host;
    if (!is_upgrade_request(request)) return duplex::error::missing_upgrade;
    if (!request.has_token("Connection", "upgrade")) return duplex::error::missing_connection;

    const auto version = request.field("Sec-WebSocket-Version");
    if (!version || *version != "13" || request.count("Sec-WebSocket-Version") != 1) {
        return duplex::error::bad_websocket_version;
    }

    const auto key = request.field("Sec-WebSocket-Key");
    if (!key || key->size() != 24 || request.count("Sec-WebSocket-Key") != 1) {
        return duplex::error::bad_websocket_key;
    }
    std::string nonce;
    if (!base64_decode(*key, nonce) || nonce.size() != 16) return duplex::error::bad_websocket_key;
    out.key = *key;

    if (request.count("Origin") > 1) return duplex::error::bad_header;
    out.origin = request.field("Origin").value_or(std::string_view());

    for (const auto p : request.tokens("Sec-WebSocket-Protocol")) {
        if (is_token(p)) out.subprotocols.push_back(p);
    }
    for (const auto& f : request.fields()) {
        if (!detail::iequals(f.name, "Sec-WebSocket-Extensions")) continue;
        if (auto ec = parse_extensions(f.value, out.extensions)) return ec;
    }
    return {};
}

struct accept_options {
    std::string subprotocol; // must be one of the offered, else it is not sent
    std::string extensions;  // Sec-WebSocket-Extensions response value; empty = none
    std::vector<std::pair<std::string, std::string>> extra_headers;
    // false: do not agree to permessage-deflate on this connection, even when the server
    // enables it and the client offers it (payloads that are compressed already, say).
    bool deflate = true;
};

// The 101 response (RFC 6455 section 4.2.2 item 5). Extra headers that the handshake
// writes itself (Upgrade, Connection, Sec-WebSocket-*), that would frame a body
// (Content-Length, Transfer-Encoding), or that are not a valid name and value (CR, LF,
// NUL...) are dropped; so is an extensions value that is not a valid field value.
inline std::string write_accept_response(const upgrade_request& request,
                                         const accept_options& options) {
    std::string out;
    out.reserve(160);
    out.append("HTTP/1.1 101 Switching Protocols\r\n"
               "Upgrade: websocket\r\n"
               "Connection: Upgrade\r\n"
               "Sec-WebSocket-Accept: ");
    out.append(accept_key(request.key)).append("\r\n");
    if (!options.subprotocol.empty()) {
        for (const auto offered : request.subprotocols) {
            if (offered == options.subprotocol) {
                (void)write_field(out, "Sec-WebSocket-Protocol", options.subprotocol);
                break;
            }
        }
    }
    if (!options.extensions.empty()) {
        (void)write_field(out, "Sec-WebSocket-Extensions", options.extensions);
    }
    for (const auto& [name, value] : options.extra_headers) {
        if (detail::is_one_of(name, {"Upgrade", "Connection", "Sec-WebSocket-Accept",
                                     "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions",
                                     "Sec-WebSocket-Version", "Sec-WebSocket-Key", "Content-Length",
                                     "Transfer-Encoding"})) {
            continue;
        }
        (void)write_field(out, name, value);
    }
    write_head_end(out);
    return out;
}

// A non-101 answer to an upgrade request.
struct refusal {
    int status = 400;
    std::string body; // sent as text/plain unless headers name a Content-Type
    std::vector<std::pair<std::string, std::string>> headers;
};

// The answer RFC 6455 and HTTP ask for, per error:
//  - bad_websocket_version: 426 Upgrade Required with "Sec-WebSocket-Version: 13"
//    (RFC 6455 sections 4.2.2 and 4.4), so the client can retry with a version we speak;
//  - head_too_large, too_many_headers: 431 Request Header Fields Too Large (RFC 6585
//    section 5);
//  - bad_method: 405 Method Not Allowed with "Allow: GET": the resource exists but is only
//    reachable by GET, and RFC 7231 section 6.5.5 requires Allow with a 405;
//  - handshake_refused: 403 Forbidden;
//  - anything else: 400 Bad Request.
// The body is the error's message: it names what was wrong, never any request data.
inline refusal refusal_for(std::error_code ec) {
    refusal r;
    r.status = 400;
    if (ec.category() == error_category()) {
        switch (static_cast<error>(ec.value())) {
        case duplex::error::bad_websocket_version:
            r.status = 426;
            r.headers.emplace_back("Sec-WebSocket-Version", "13");
            break;
        case duplex::error::head_too_large:
        case duplex::error::too_many_headers: r.status = 431; break;
        case duplex::error::bad_method:
            r.status = 405;
            r.headers.emplace_back("Allow", "GET");
            break;
        case duplex::error::handshake_refused: r.status = 403; break;
        default: break;
        }
    }
    r.body = ec ? ec.message() + "\n" : std::string(reason_phrase(r.status)) + "\n";
    return r;
}

// The bytes of a refusal. It always ends the exchange: Content-Length frames the body and
// "Connection: close" tells the peer the connection will not be reused. A status outside
// 200-599 (a 1xx would not end the exchange) becomes 500. User headers that are not a
// valid name and value, or that would contradict the framing (Content-Length,
// Transfer-Encoding, Connection), are dropped.
inline std::string write_refusal(const refusal& r) {
    const int status = (r.status >= 200 && r.status <= 599) ? r.status : 500;
    std::string out;
    out.reserve(128 + r.body.size());
    (void)write_status_line(out, status, reason_phrase(status));
    bool has_content_type = false;
    for (const auto& [name, value] : r.headers) {
        if (detail::is_one_of(name, {"Content-Length", "Transfer-Encoding", "Connection"})) {
            continue;
        }
        if (write_field(out, name, value) && detail::iequals(name, "Content-Type")) {
            has_content_type = true;
        }
    }
    if (!r.body.empty() && !has_content_type) {
        out.append("Content-Type: text/plain; charset=utf-8\r\n");
    }
    out.append("Content-Length: ").append(std::to_string(r.body.size())).append("\r\n");
    out.append("Connection: close\r\n");
    write_head_end(out);
    out.append(r.body);
    return out;
}

// Server side of one handshake. feed() the bytes read from the connection until the status
// is no longer need_more; then either accept() or reject() (done: a valid upgrade request),
// or send refusal() and close (failed). Bytes after the request head are not consumed. Views into
// the request stay valid while this object lives (also across moves); it cannot be copied.
class server_handshake {
public:
    struct options {
        http_limits limits;
        // Called by accept() when the offer is not empty and accept_options names no
        // subprotocol; returns the chosen one, or "" for none.
        std::function<std::string(const std::vector<std::string_view>& offered)> select_subprotocol;
        // permessage-deflate: when enabled (and the build has zlib), accept() answers the
        // first acceptable offer and deflate() tells what was agreed.
        deflate_server_options deflate;
    };

    struct result {
        progress status;
        std::size_t consumed;
        std::error_code error;
    };

    server_handshake() : server_handshake(options{}) {}
    explicit server_handshake(options opts)
        : options_(std::move(opts)), parser_(http_parser::kind::request, options_.limits) {}
    server_handshake(const server_handshake&) = delete;
    server_handshake& operator=(const server_handshake&) = delete;
    server_handshake(server_handshake&&) = default;
    server_handshake& operator=(server_handshake&&) = default;
    ~server_handshake() = default;

    result feed(std::string_view data) {
        if (status_ != progress::need_more) return {status_, 0, error_};
        const auto r = parser_.feed(data);
        if (r.status == progress::need_more) return {status_, r.consumed, {}};
        if (r.status == progress::failed) {
            fail(r.error);
            return {status_, r.consumed, error_};
        }
        have_request_ = true;
        if (const auto ec = validate_upgrade_request(parser_.head(), upgrade_)) {
            fail(ec);
            return {status_, r.consumed, error_};
        }
        status_ = progress::done;
        return {status_, r.consumed, {}};
    }

    progress status() const noexcept { return status_; }
    // Whether accept() sent the 101 (the status stays done).
    bool accepted() const noexcept { return accepted_; }
    std::error_code error() const noexcept { return error_; }

    // The request head; complete once the status left need_more, unless the head itself
    // was malformed (has_request() is false then).
    const http_head& request() const noexcept { return parser_.head(); }
    bool has_request() const noexcept { return have_request_; }
    const upgrade_request& upgrade() const noexcept { return upgrade_; }
    // Whether the request asked for a WebSocket at all: when failed with !is_upgrade(), the
    // caller may answer it as plain HTTP (with reject()) instead of sending refusal().
    bool is_upgrade() const { return have_request_ && is_upgrade_request(parser_.head()); }

    // The 101 response; accepted() becomes true and subprotocol() tells what was chosen.
    // Returns "" unless the status is done and nothing was answered yet.
    std::string accept(accept_options opts = {}) {
        if (status_ != progress::done || accepted_) return {};
        if (opts.subprotocol.empty() && options_.select_subprotocol &&
            !upgrade_.subprotocols.empty()) {
            opts.subprotocol = options_.select_subprotocol(upgrade_.subprotocols);
        }
        for (const auto offered : upgrade_.subprotocols) {
            if (offered == opts.subprotocol) subprotocol_ = offered;
        }
        auto agreed =
            opts.deflate ? negotiate_deflate(upgrade_.extensions, options_.deflate) : std::nullopt;
        if (agreed) {
            // Ours first; an application's own extensions (never permessage-deflate when
            // deflate is enabled) follow.
            std::string value = format_extensions({agreed->response});
            if (!opts.extensions.empty()) value.append(", ").append(opts.extensions);
            opts.extensions = std::move(value);
            deflate_ = agreed->params;
        }
        accepted_ = true;
        return write_accept_response(upgrade_, opts);
    }

    // The subprotocol accept() sent, or "".
    std::string_view subprotocol() const noexcept { return subprotocol_; }
    // The permessage-deflate parameters accept() agreed to, or nullopt: give them to the
    // session (session_options::deflate).
    const std::optional<deflate_params>& deflate() const noexcept { return deflate_; }

    // An answer chosen by the application instead of the upgrade (401 to ask for
    // credentials, 403, a redirect, or any answer to a plain HTTP request). The status
    // becomes failed; error() is handshake_refused unless it already held a reason.
    // Returns "" when there is nothing to answer (still reading, or already accepted).
    std::string reject(const protocol::refusal& r) {
        if (status_ == progress::need_more || accepted_) return {};
        if (!error_) error_ = duplex::error::handshake_refused;
        status_ = progress::failed;
        refusal_ = write_refusal(r);
        return refusal_;
    }

    // The bytes to send after a failure (or the last reject()); "" otherwise.
    std::string refusal() const { return status_ == progress::failed ? refusal_ : std::string(); }

private:
    void fail(std::error_code ec) {
        status_ = progress::failed;
        error_ = ec;
        refusal_ = write_refusal(refusal_for(ec));
    }

    options options_;
    http_parser parser_;
    upgrade_request upgrade_;
    progress status_ = progress::need_more;
    bool accepted_ = false; // accept() answered; the status stays done
    std::error_code error_;
    bool have_request_ = false;
    std::string_view subprotocol_;
    std::optional<deflate_params> deflate_;
    std::string refusal_;
};

// --- Client side (RFC 6455 section 4.1) -----------------------------------------------

struct client_options {
    std::string host;                      // Host header value, with ":port" when not the default
    std::string target = "/";              // origin-form request target: path and query
    std::string origin;                    // Origin header value; empty = not sent
    std::vector<std::string> subprotocols; // offered, in order of preference
    std::string extensions;                // Sec-WebSocket-Extensions offer; empty = none
    // permessage-deflate: when enabled (and the build has zlib), offered before `extensions`
    // (which must not offer it too), and the server's answer is checked (RFC 7692 section 5).
    deflate_client_options deflate;
    std::vector<std::pair<std::string, std::string>> extra_headers;
    http_limits limits; // for the response head
};

// Client side of one handshake: request() is the bytes to send; feed() the response until
// the status is no longer need_more. Bytes after the response head are not consumed.
//
// Options are checked when it is constructed. Invalid ones leave it failed, with an
// empty request() and error() saying why: a target or host that is empty or not plain
// visible ASCII (bad_request_line, missing_host), an origin, subprotocol or extra header
// that is not a valid name and value (bad_header), an extensions offer that does not
// parse (bad_extension_header), and an extra header that the handshake writes itself
// (Host, Upgrade, Connection, Origin, Sec-WebSocket-*) or that would frame a body
// (Content-Length, Transfer-Encoding) (bad_header). Nothing is silently dropped.
class client_handshake {
public:
    struct result {
        progress status;
        std::size_t consumed;
        std::error_code error;
    };

    // `nonce` must come from a CSPRNG (RFC 6455 section 4.1 item 7); the key is its
    // base64.
    client_handshake(client_options options, const std::array<std::uint8_t, 16>& nonce)
        : parser_(http_parser::kind::response, options.limits) {
        key_ = base64_encode(
            std::string_view(reinterpret_cast<const char*>(nonce.data()), nonce.size()));
        if (const auto ec = build_request(options)) {
            status_ = progress::failed;
            error_ = ec;
            request_.clear();
        }
    }

    const std::string& request() const noexcept { return request_; }
    const std::string& key() const noexcept { return key_; }

    result feed(std::string_view data) {
        if (status_ != progress::need_more) return {status_, 0, error_};
        const auto r = parser_.feed(data);
        if (r.status == progress::need_more) return {status_, r.consumed, {}};
        if (r.status == progress::done) {
            if (const auto ec = validate_response()) {
                status_ = progress::failed;
                error_ = ec;
                deflate_.reset();
            } else {
                status_ = progress::done;
            }
        } else {
            status_ = progress::failed;
            error_ = r.error;
        }
        return {status_, r.consumed, error_};
    }

    progress status() const noexcept { return status_; }
    std::error_code error() const noexcept { return error_; }
    // The response head; after bad_status it is kept so the caller can read the status,
    // Content-Length or WWW-Authenticate. The body, if any, is not consumed.
    const http_head& response() const noexcept { return parser_.head(); }
    // The subprotocol the server chose, "" for none.
    std::string_view subprotocol() const noexcept { return subprotocol_; }
    // The extensions the server accepted, in its order, with their parameters.
    const std::vector<extension>& extensions() const noexcept { return extensions_; }
    // The permessage-deflate parameters the server agreed to, or nullopt: give them to the
    // session (session_options::deflate).
    const std::optional<deflate_params>& deflate() const noexcept { return deflate_; }

private:
    std::error_code build_request(const client_options& o) {
        std::string& out = request_;
        if (!write_request_line(out, "GET", o.target)) return duplex::error::bad_request_line;
        if (o.host.empty() || !std::all_of(o.host.begin(), o.host.end(), detail::is_vchar)) {
            return duplex::error::missing_host;
        }
        (void)write_field(out, "Host", o.host);
        out.append("Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ")
            .append(key_)
            .append("\r\n");
        if (!o.origin.empty() && !write_field(out, "Origin", o.origin))
            return duplex::error::bad_header;
        // RFC 6455 section 4.1 item 10: each offered subprotocol is a token.
        std::string protocols;
        for (const auto& p : o.subprotocols) {
            if (!is_token(p)) return duplex::error::bad_header;
            if (!protocols.empty()) protocols += ", ";
            protocols += p;
            offered_subprotocols_.push_back(p);
        }
        if (!protocols.empty()) (void)write_field(out, "Sec-WebSocket-Protocol", protocols);
        out.append("Sec-WebSocket-Version: 13\r\n");
        std::string extensions;
        if (o.deflate.enabled && deflate_supported) {
            deflate_offer_ = o.deflate;
            extensions = format_extensions({make_deflate_offer(o.deflate)});
            offered_extensions_.emplace_back(permessage_deflate_name);
        }
        if (!o.extensions.empty()) {
            std::vector<extension> offer;
            if (parse_extensions(o.extensions, offer) || !is_field_value(o.extensions)) {
                return duplex::error::bad_extension_header;
            }
            for (auto& e : offer) {
                // Two offers of one extension from two sources could not be told apart in
                // the answer.
                if (deflate_offer_ && e.name == permessage_deflate_name)
                    return duplex::error::bad_extension_header;
                offered_extensions_.push_back(std::move(e.name));
            }
            if (!extensions.empty()) extensions += ", ";
            extensions += o.extensions;
        }
        if (!extensions.empty()) (void)write_field(out, "Sec-WebSocket-Extensions", extensions);
        for (const auto& [name, value] : o.extra_headers) {
            if (detail::is_one_of(name,
                                  {"Host", "Upgrade", "Connection", "Origin", "Sec-WebSocket-Key",
                                   "Sec-WebSocket-Version", "Sec-WebSocket-Protocol",
                                   "Sec-WebSocket-Extensions", "Sec-WebSocket-Accept",
                                   "Content-Length", "Transfer-Encoding"}) ||
                !write_field(out, name, value)) {
                return duplex::error::bad_header;
            }
        }
        write_head_end(out);
        return {};
    }

    // RFC 6455 section 4.1, the client's checks of the server's response, in its order.
    std::error_code validate_response() {
        const http_head& h = parser_.head();
        if (h.status() != 101) return duplex::error::bad_status;
        // Item 2: Upgrade must be "websocket" and nothing else.
        const auto upgrade = h.tokens("Upgrade");
        if (upgrade.size() != 1 || !detail::iequals(upgrade.front(), "websocket")) {
            return duplex::error::missing_upgrade;
        }
        if (!h.has_token("Connection", "upgrade")) return duplex::error::missing_connection;
        const auto accept = h.field("Sec-WebSocket-Accept");
        if (!accept || h.count("Sec-WebSocket-Accept") != 1 || *accept != accept_key(key_)) {
            return duplex::error::bad_accept;
        }
        for (const auto& f : h.fields()) {
            if (!detail::iequals(f.name, "Sec-WebSocket-Extensions")) continue;
            if (auto ec = parse_extensions(f.value, extensions_)) return ec;
        }
        for (const auto& e : extensions_) {
            if (std::find(offered_extensions_.begin(), offered_extensions_.end(), e.name) ==
                offered_extensions_.end()) {
                return duplex::error::unexpected_extension;
            }
            if (deflate_offer_ && e.name == permessage_deflate_name) {
                // RFC 7692 section 5: one accepted offer, with parameters the offer allowed.
                if (deflate_) return duplex::error::bad_extension_params;
                deflate_params agreed;
                if (auto ec = accept_deflate_response(e, *deflate_offer_, agreed)) return ec;
                deflate_ = agreed;
            }
        }
        if (const auto protocol = h.field("Sec-WebSocket-Protocol")) {
            if (h.count("Sec-WebSocket-Protocol") != 1 ||
                std::find(offered_subprotocols_.begin(), offered_subprotocols_.end(), *protocol) ==
                    offered_subprotocols_.end()) {
                return duplex::error::unexpected_subprotocol;
            }
            subprotocol_ = std::string(*protocol);
        }
        return {};
    }

    http_parser parser_;
    std::string key_;
    std::string request_;
    std::vector<std::string> offered_subprotocols_;
    std::vector<std::string> offered_extensions_;
    progress status_ = progress::need_more;
    std::error_code error_;
    std::string subprotocol_;
    std::vector<extension> extensions_;
    std::optional<deflate_client_options> deflate_offer_; // when we offered it
    std::optional<deflate_params> deflate_;
};

} // namespace duplex::protocol
