// duplex/protocol/frame.hpp — the RFC 6455 5.2 frame header: opcodes, encoding, decoding.
// SPDX-License-Identifier: BSL-1.0
//
// Decoding applies every rule that can be judged from the header alone, before any payload is
// read: reserved opcodes and bits, control-frame size and fragmentation, minimal length
// encoding and the 64-bit length's top bit. Rules that need the role or the connection's state
// (masking, continuation order, size limits) belong to the session.
#pragma once

#include "../error.hpp"
#include "progress.hpp"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <system_error>

namespace duplex::protocol {

enum class opcode : std::uint8_t {
    continuation = 0x0,
    text = 0x1,
    binary = 0x2,
    close = 0x8,
    ping = 0x9,
    pong = 0xA,
};

constexpr bool is_control(opcode op) noexcept { return (static_cast<unsigned>(op) & 0x8U) != 0; }

constexpr bool is_known_opcode(unsigned value) noexcept {
    return value <= 0x2 || (value >= 0x8 && value <= 0xA);
}

// RFC 6455 5.5: all control frames MUST have a payload length of 125 bytes or less.
constexpr std::size_t max_control_payload = 125;

// 2 bytes of fixed header, up to 8 of extended length, 4 of masking key.
constexpr std::size_t max_frame_header_size = 14;

struct frame_header {
    bool fin = true;
    bool rsv1 = false;
    bool rsv2 = false;
    bool rsv3 = false;
    opcode op = opcode::text;
    bool masked = false;
    std::uint32_t mask = 0; // wire order, see mask.hpp
    std::uint64_t payload_size = 0;
};

// Bytes the header will occupy on the wire.
constexpr std::size_t encoded_header_size(std::uint64_t payload_size, bool masked) noexcept {
    const std::size_t length_bytes = payload_size < 126 ? 0 : payload_size <= 0xFFFF ? 2 : 8;
    return 2 + length_bytes + (masked ? 4 : 0);
}

// Writes the header into `out` (at least max_frame_header_size bytes) using the shortest length
// form, as 5.2 requires. Returns the number of bytes written.
inline std::size_t encode_frame_header(const frame_header& h, unsigned char* out) noexcept {
    out[0] = static_cast<unsigned char>((h.fin ? 0x80U : 0U) | (h.rsv1 ? 0x40U : 0U) |
                                        (h.rsv2 ? 0x20U : 0U) | (h.rsv3 ? 0x10U : 0U) |
                                        static_cast<unsigned>(h.op));
    const unsigned mask_bit = h.masked ? 0x80U : 0U;
    std::size_t n = 2;
    if (h.payload_size < 126) {
        out[1] = static_cast<unsigned char>(mask_bit | h.payload_size);
    } else if (h.payload_size <= 0xFFFF) {
        out[1] = static_cast<unsigned char>(mask_bit | 126U);
        out[2] = static_cast<unsigned char>(h.payload_size >> 8);
        out[3] = static_cast<unsigned char>(h.payload_size);
        n = 4;
    } else {
        out[1] = static_cast<unsigned char>(mask_bit | 127U);
        for (int i = 0; i < 8; ++i)
            out[2 + i] = static_cast<unsigned char>(h.payload_size >> (56 - 8 * i));
        n = 10;
    }
    if (h.masked) {
        std::memcpy(out + n, &h.mask, 4);
        n += 4;
    }
    return n;
}

struct decode_result {
    progress status;
    std::size_t size;      // done: header bytes; need_more: total bytes needed so far
    std::error_code error; // failed: why
};

// Which RSV bits a negotiated extension allows (RFC 6455 5.2: MUST be 0 unless an extension
// defines them; permessage-deflate claims RSV1).
struct reserved_bits_allowed {
    bool rsv1 = false;
    bool rsv2 = false;
    bool rsv3 = false;
};

// Decodes a header from the first `size` bytes at `data`. Never reads past `size`; reports how
// many bytes it needs when the header is incomplete, so a caller can stash a partial header.
inline decode_result decode_frame_header(const unsigned char* data, std::size_t size,
                                         frame_header& h,
                                         reserved_bits_allowed allowed = {}) noexcept {
    if (size < 2) return {progress::need_more, 2, {}};
    const unsigned b0 = data[0];
    const unsigned b1 = data[1];
    h.fin = (b0 & 0x80U) != 0;
    h.rsv1 = (b0 & 0x40U) != 0;
    h.rsv2 = (b0 & 0x20U) != 0;
    h.rsv3 = (b0 & 0x10U) != 0;
    const unsigned op = b0 & 0x0FU;
    h.masked = (b1 & 0x80U) != 0;
    const unsigned short_length = b1 & 0x7FU;

    if ((h.rsv1 && !allowed.rsv1) || (h.rsv2 && !allowed.rsv2) || (h.rsv3 && !allowed.rsv3))
        return {progress::failed, 0, error::reserved_bits};
    if (!is_known_opcode(op)) return {progress::failed, 0, error::reserved_opcode};
    h.op = static_cast<opcode>(op);
    if (is_control(h.op)) {
        if (!h.fin) return {progress::failed, 0, error::control_fragmented};
        if (short_length > max_control_payload)
            return {progress::failed, 0, error::control_too_big};
    }

    const std::size_t length_bytes = short_length == 126 ? 2 : short_length == 127 ? 8 : 0;
    const std::size_t needed = 2 + length_bytes + (h.masked ? 4 : 0);
    if (size < needed) return {progress::need_more, needed, {}};

    if (length_bytes == 0) {
        h.payload_size = short_length;
    } else if (length_bytes == 2) {
        h.payload_size = (std::uint64_t{data[2]} << 8) | data[3];
        if (h.payload_size < 126) return {progress::failed, 0, error::non_minimal_length};
    } else {
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < 8; ++i) v = (v << 8) | data[2 + i];
        if ((v >> 63) != 0) return {progress::failed, 0, error::length_msb_set};
        if (v <= 0xFFFF) return {progress::failed, 0, error::non_minimal_length};
        h.payload_size = v;
    }
    if (h.masked)
        std::memcpy(&h.mask, data + 2 + length_bytes, 4);
    else
        h.mask = 0;
    return {progress::done, needed, {}};
}

} // namespace duplex::protocol
