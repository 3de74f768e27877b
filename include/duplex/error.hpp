// duplex/error.hpp — every failure duplex reports, as std::error_code values.
// SPDX-License-Identifier: BSL-1.0
//
// duplex never throws on bad input: a malformed handshake, frame, UTF-8 sequence or close
// payload becomes a `duplex::error`, and on an open connection the close code RFC 6455 asks
// for. Compare against `duplex::condition` to ask broad questions ("was it too big?",
// "did the peer break the protocol?") without listing every error.
#pragma once

#include <cstdint>
#include <string>
#include <system_error>
#include <type_traits>

namespace duplex {

enum class error {
    // HTTP head (RFC 7230 section 3)
    head_too_large = 1, // the head exceeded the configured byte limit
    too_many_headers,   // more header fields than the configured limit
    bad_request_line,   // not "METHOD SP target SP HTTP/x.y"
    bad_status_line,    // not "HTTP/x.y SP 3DIGIT SP reason"
    bad_header,         // a header line that is not "token: value"
    obs_fold,           // a folded header line (RFC 7230 3.2.4), refused
    bad_line_ending,    // a bare CR or LF instead of CRLF

    // Opening handshake (RFC 6455 section 4)
    bad_method,             // the upgrade request is not a GET
    bad_http_version,       // older than HTTP/1.1
    missing_host,           // no Host header, or more than one
    missing_upgrade,        // Upgrade does not name websocket
    missing_connection,     // Connection does not contain the upgrade token
    bad_websocket_key,      // Sec-WebSocket-Key does not decode to 16 bytes
    bad_websocket_version,  // Sec-WebSocket-Version is not 13 (answer 426)
    bad_extension_header,   // Sec-WebSocket-Extensions does not follow RFC 6455 9.1
    bad_status,             // the server answered something other than 101
    bad_accept,             // Sec-WebSocket-Accept does not match the key we sent
    unexpected_subprotocol, // the server chose a subprotocol we did not offer
    unexpected_extension,   // the server accepted an extension we did not offer
    bad_extension_params,   // an extension's parameters that the offer did not allow (RFC 7692 5)
    handshake_refused,      // the application refused the upgrade

    // Framing (RFC 6455 section 5)
    reserved_bits,           // RSV1-3 set without an extension that claims them (5.2)
    reserved_opcode,         // opcode 3-7 or 11-15 (5.2)
    control_fragmented,      // a control frame without FIN (5.5)
    control_too_big,         // a control frame payload over 125 bytes (5.5)
    non_minimal_length,      // a payload length not in its shortest encoding (5.2)
    length_msb_set,          // a 64-bit payload length with its top bit set (5.2)
    unexpected_continuation, // a continuation frame with no message in progress (5.4)
    expected_continuation,   // a new data frame while a message is in progress (5.4)
    mask_required,           // a client frame that is not masked (5.1)
    unexpected_mask,         // a server frame that is masked (5.1)
    bad_compressed_data,     // a compressed message that does not inflate (RFC 7692 7.2.2)
    frame_too_big,           // a frame over the configured limit (answer 1009)
    message_too_big,         // a message over the configured limit (answer 1009)
    too_many_fragments,      // more fragments in one message than allowed (answer 1009)
    invalid_utf8,            // a text message or close reason that is not UTF-8 (answer 1007)
    bad_close_payload,       // a close frame with a 1-byte payload (5.5.1)
    bad_close_code,          // a close code that may not appear on the wire (7.4)

    // Use of the API
    closed,                  // sending or reading after the close handshake began
    message_in_progress,     // a new message started while a fragmented one is unfinished
    no_message_in_progress,  // a continuation sent with no message started
    control_payload_too_big, // ping, pong or close payload over 125 bytes
    operation_in_progress,   // a second read (or other single-flight operation) at once
    timed_out,               // a handshake, close or keepalive deadline passed
    send_buffer_full,        // the peer reads too slowly: unsent bytes passed the hard limit
    bad_url,                 // not a ws:// or wss:// URL duplex can connect to
    too_many_connections,    // the server is at its connection limit
    control_backlog,         // pongs piled up for a peer that sends pings but does not read
    bad_opcode,              // send() given an opcode that is not text, binary or continuation
    no_transport_context,    // a TLS server or client given an empty tls::context_type
};

// Broad questions users ask of an error, whatever its exact value.
enum class condition {
    protocol_violation = 1, // the peer broke RFC 6455 or HTTP: we answered 1002 or 400
    invalid_payload,        // bad UTF-8 or close payload content: 1007
    too_big,                // a configured limit was exceeded: 1009 or 431-style refusal
    handshake_failed,       // the opening handshake did not complete
    closed_normally,        // the connection is closed and no error caused it
    timed_out,              // a deadline passed
};

namespace detail {

class error_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "duplex"; }

    std::string message(int value) const override {
        switch (static_cast<error>(value)) {
        case error::head_too_large: return "HTTP head exceeds the size limit";
        case error::too_many_headers: return "HTTP head has too many header fields";
        case error::bad_request_line: return "malformed HTTP request line";
        case error::bad_status_line: return "malformed HTTP status line";
        case error::bad_header: return "malformed HTTP header field";
        case error::obs_fold: return "folded HTTP header lines are not accepted";
        case error::bad_line_ending: return "HTTP lines must end with CRLF";
        case error::bad_method: return "WebSocket upgrade request must use GET";
        case error::bad_http_version: return "WebSocket upgrade requires HTTP/1.1 or later";
        case error::missing_host: return "upgrade request needs exactly one Host header";
        case error::missing_upgrade: return "Upgrade header does not name websocket";
        case error::missing_connection: return "Connection header lacks the upgrade token";
        case error::bad_websocket_key: return "Sec-WebSocket-Key is not 16 base64-encoded bytes";
        case error::bad_websocket_version: return "Sec-WebSocket-Version must be 13";
        case error::bad_extension_header: return "malformed Sec-WebSocket-Extensions header";
        case error::bad_status: return "server did not answer 101 Switching Protocols";
        case error::bad_accept: return "Sec-WebSocket-Accept does not match the key";
        case error::unexpected_subprotocol:
            return "server chose a subprotocol that was not offered";
        case error::unexpected_extension:
            return "server accepted an extension that was not offered";
        case error::bad_extension_params:
            return "extension parameters are malformed or were not offered";
        case error::handshake_refused: return "the upgrade was refused";
        case error::reserved_bits: return "frame uses reserved bits";
        case error::reserved_opcode: return "frame uses a reserved opcode";
        case error::control_fragmented: return "control frame is fragmented";
        case error::control_too_big: return "control frame payload exceeds 125 bytes";
        case error::non_minimal_length: return "frame length is not minimally encoded";
        case error::length_msb_set: return "64-bit frame length has its most significant bit set";
        case error::unexpected_continuation:
            return "continuation frame without a message in progress";
        case error::expected_continuation:
            return "new data frame while a fragmented message is in progress";
        case error::mask_required: return "client frames must be masked";
        case error::unexpected_mask: return "server frames must not be masked";
        case error::bad_compressed_data: return "compressed message does not inflate";
        case error::frame_too_big: return "frame exceeds the size limit";
        case error::message_too_big: return "message exceeds the size limit";
        case error::too_many_fragments: return "message has too many fragments";
        case error::invalid_utf8: return "text is not valid UTF-8";
        case error::bad_close_payload: return "close frame payload of one byte";
        case error::bad_close_code: return "close code may not be sent on the wire";
        case error::closed: return "the connection is closing or closed";
        case error::message_in_progress: return "a fragmented message is still in progress";
        case error::no_message_in_progress: return "no fragmented message is in progress";
        case error::control_payload_too_big: return "control payload exceeds 125 bytes";
        case error::operation_in_progress: return "another operation of this kind is in progress";
        case error::timed_out: return "operation timed out";
        case error::send_buffer_full: return "send buffer limit reached: the peer reads too slowly";
        case error::bad_url: return "not a valid ws:// or wss:// URL";
        case error::too_many_connections: return "the server is at its connection limit";
        case error::control_backlog:
            return "too many unsent control frames: the peer does not read";
        case error::bad_opcode: return "only text, binary and continuation frames carry data";
        case error::no_transport_context:
            return "the transport context is empty (make one with tls::client_context())";
        }
        return "unknown duplex error";
    }

    bool equivalent(int value, const std::error_condition& cond) const noexcept override;
};

class condition_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "duplex.condition"; }

    std::string message(int value) const override {
        switch (static_cast<condition>(value)) {
        case condition::protocol_violation: return "protocol violation";
        case condition::invalid_payload: return "invalid payload";
        case condition::too_big: return "size limit exceeded";
        case condition::handshake_failed: return "opening handshake failed";
        case condition::closed_normally: return "closed normally";
        case condition::timed_out: return "timed out";
        }
        return "unknown duplex condition";
    }
};

} // namespace detail

inline const std::error_category& error_category() noexcept {
    static const detail::error_category_impl instance;
    return instance;
}

inline const std::error_category& condition_category() noexcept {
    static const detail::condition_category_impl instance;
    return instance;
}

inline std::error_code make_error_code(error e) noexcept {
    return {static_cast<int>(e), error_category()};
}

inline std::error_condition make_error_condition(condition c) noexcept {
    return {static_cast<int>(c), condition_category()};
}

inline bool
detail::error_category_impl::equivalent(int value,
                                        const std::error_condition& cond) const noexcept {
    if (cond.category() != condition_category()) return false;
    const auto e = static_cast<error>(value);
    switch (static_cast<condition>(cond.value())) {
    case condition::too_big:
        return e == error::head_too_large || e == error::too_many_headers ||
               e == error::frame_too_big || e == error::message_too_big ||
               e == error::too_many_fragments || e == error::send_buffer_full ||
               e == error::control_backlog;
    case condition::invalid_payload:
        return e == error::invalid_utf8 || e == error::bad_close_payload ||
               e == error::bad_close_code;
    case condition::protocol_violation:
        return (e >= error::bad_request_line && e <= error::bad_line_ending) ||
               (e >= error::bad_method && e <= error::bad_extension_params) ||
               (e >= error::reserved_bits && e <= error::bad_compressed_data);
    case condition::handshake_failed:
        return e >= error::head_too_large && e <= error::handshake_refused;
    case condition::closed_normally: return e == error::closed;
    case condition::timed_out: return e == error::timed_out;
    }
    return false;
}

} // namespace duplex

namespace std {
template <>
struct is_error_code_enum<duplex::error> : true_type {};
template <>
struct is_error_condition_enum<duplex::condition> : true_type {};
} // namespace std
