// duplex/protocol/close.hpp — close frames: status codes (RFC 6455 7.4) and payloads (5.5.1).
// SPDX-License-Identifier: BSL-1.0
//
// A close payload is empty, or a 2-byte big-endian code followed by a UTF-8 reason. Codes
// 1005, 1006 and 1015 describe what happened locally and never travel on the wire; they are
// what an application sees when the peer gave no code or the transport died.
#pragma once

#include "../error.hpp"
#include "frame.hpp"
#include "utf8.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace duplex::protocol {

enum class close_code : std::uint16_t {
    normal = 1000,
    going_away = 1001,
    protocol_error = 1002,
    unsupported_data = 1003,
    no_status = 1005, // local only: the close frame carried no code
    abnormal = 1006,  // local only: the transport closed without a close frame
    invalid_payload = 1007,
    policy_violation = 1008,
    message_too_big = 1009,
    mandatory_extension = 1010,
    internal_error = 1011,
    service_restart = 1012,
    try_again_later = 1013,
    bad_gateway = 1014,
    tls_handshake_failed = 1015, // local only
};

// RFC 6455 7.4.1 and 7.4.2, with the IANA registry's later 1012-1014: the codes an endpoint
// may send and must accept in a close frame.
constexpr bool is_valid_wire_close_code(std::uint16_t code) noexcept {
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

// The close code RFC 6455 asks for when a received frame breaks `e`.
inline close_code close_code_for(std::error_code e) noexcept {
    if (e == error::invalid_utf8) return close_code::invalid_payload;
    if (e == error::frame_too_big || e == error::message_too_big || e == error::too_many_fragments)
        return close_code::message_too_big;
    return close_code::protocol_error;
}

struct close_reason {
    std::uint16_t code = static_cast<std::uint16_t>(close_code::no_status);
    std::string_view reason;
};

// Parses a received close payload. An empty payload yields code 1005 (no status).
inline std::error_code parse_close_payload(std::string_view payload, close_reason& out) noexcept {
    out = close_reason{};
    if (payload.empty()) return {};
    if (payload.size() == 1) return error::bad_close_payload;
    const auto code = static_cast<std::uint16_t>(
        (static_cast<unsigned>(static_cast<unsigned char>(payload[0])) << 8) |
        static_cast<unsigned char>(payload[1]));
    if (!is_valid_wire_close_code(code)) return error::bad_close_code;
    out.code = code;
    out.reason = payload.substr(2);
    if (!is_valid_utf8(out.reason)) return error::invalid_utf8;
    return {};
}

// Builds a close payload to send. Code 1005 means "no code": an empty payload.
inline std::error_code make_close_payload(std::uint16_t code, std::string_view reason,
                                          std::string& out) {
    out.clear();
    if (code == static_cast<std::uint16_t>(close_code::no_status)) {
        if (!reason.empty()) return error::bad_close_code; // a reason needs a code (5.5.1)
        return {};
    }
    if (!is_valid_wire_close_code(code)) return error::bad_close_code;
    if (reason.size() > max_control_payload - 2) return error::control_payload_too_big;
    if (!is_valid_utf8(reason)) return error::invalid_utf8;
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFF));
    out.append(reason);
    return {};
}

} // namespace duplex::protocol
