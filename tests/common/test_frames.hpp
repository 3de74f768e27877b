// WebSocket frames built and decoded by hand for tests, independently of the library's codec
// (a bug there must not be able to hide itself). Shared by the unit and integration tests.
//
// Whether a frame is masked and whether it is the last of its message are named, not bare
// booleans, so that two helpers cannot take them in different orders:
//   frame(opcode::text, "part", masking::client, fin_bit::clear)
#pragma once

#include <duplex/protocol/frame.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace test_frames {

using duplex::protocol::opcode;

// client: masked with a fixed key, as a client must send (RFC 6455 5.3); none: as a server.
enum class masking : bool { none, client };
// set: the last frame of its message (RFC 6455 5.2 FIN); clear: more fragments follow.
enum class fin_bit : bool { clear, set };

inline constexpr std::array<unsigned char, 4> test_key = {0x37, 0xFA, 0x21, 0x3D};

// A frame whose first byte is given whole (FIN, RSV and opcode bits).
inline std::string raw_frame(unsigned first_byte, std::string_view payload, masking m) {
    const bool masked = m == masking::client;
    std::string out;
    out.push_back(static_cast<char>(first_byte));
    const unsigned mask_bit = masked ? 0x80U : 0U;
    const std::size_t n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<char>(mask_bit | n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(mask_bit | 126U));
        out.push_back(static_cast<char>((n >> 8) & 0xFFU));
        out.push_back(static_cast<char>(n & 0xFFU));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127U));
        for (int shift = 56; shift >= 0; shift -= 8)
            out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFFU));
    }
    if (!masked) return out.append(payload);
    for (unsigned char k : test_key) out.push_back(static_cast<char>(k));
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(static_cast<char>(static_cast<unsigned char>(payload[i]) ^ test_key[i % 4]));
    return out;
}

// `rsv_bits` go into the first byte as they are (0x40 is RSV1).
inline std::string frame(opcode op, std::string_view payload, masking m, fin_bit fin = fin_bit::set,
                         unsigned rsv_bits = 0) {
    return raw_frame((fin == fin_bit::set ? 0x80U : 0U) | rsv_bits | static_cast<unsigned>(op),
                     payload, m);
}

inline std::string close_payload(std::uint16_t code, std::string_view reason = {}) {
    std::string out;
    out.push_back(static_cast<char>(code >> 8));
    out.push_back(static_cast<char>(code & 0xFFU));
    return out.append(reason);
}

inline std::string close_frame(std::uint16_t code, masking m, std::string_view reason = {}) {
    return frame(opcode::close, close_payload(code, reason), m);
}

struct wire_frame {
    bool fin = true;
    bool rsv1 = false; // permessage-deflate: a compressed message (RFC 7692 6)
    unsigned op = 0;
    bool masked = false;
    std::string payload;

    bool is(opcode o) const { return op == static_cast<unsigned>(o); }
    bool is_data() const { return is(opcode::text) || is(opcode::binary); }
    std::uint16_t close_code() const {
        if (payload.size() < 2) return 1005;
        return static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                          static_cast<unsigned char>(payload[1]));
    }
    std::string close_reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }
};

// Every complete frame in `bytes`, unmasked; an incomplete tail is ignored.
inline std::vector<wire_frame> decode_frames(std::string_view bytes) {
    std::vector<wire_frame> out;
    std::size_t at = 0;
    for (;;) {
        const std::size_t left = bytes.size() - at;
        if (left < 2) break;
        const auto b0 = static_cast<unsigned char>(bytes[at]);
        const auto b1 = static_cast<unsigned char>(bytes[at + 1]);
        std::size_t header = 2;
        std::uint64_t length = b1 & 0x7FU;
        const std::size_t extra = length == 126 ? 2 : length == 127 ? 8 : 0;
        if (left < header + extra) break;
        if (extra != 0) {
            length = 0;
            for (std::size_t i = 0; i < extra; ++i)
                length = (length << 8) | static_cast<unsigned char>(bytes[at + 2 + i]);
            header += extra;
        }
        const bool masked = (b1 & 0x80U) != 0;
        if (masked) header += 4;
        if (left < header || left - header < length) break;
        wire_frame f;
        f.fin = (b0 & 0x80U) != 0;
        f.rsv1 = (b0 & 0x40U) != 0;
        f.op = b0 & 0x0FU;
        f.masked = masked;
        f.payload = std::string(bytes.substr(at + header, static_cast<std::size_t>(length)));
        if (masked)
            for (std::size_t i = 0; i < f.payload.size(); ++i)
                f.payload[i] =
                    static_cast<char>(static_cast<unsigned char>(f.payload[i]) ^
                                      static_cast<unsigned char>(bytes[at + header - 4 + i % 4]));
        out.push_back(std::move(f));
        at += header + static_cast<std::size_t>(length);
    }
    return out;
}

} // namespace test_frames
