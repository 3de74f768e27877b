// duplex/protocol/base64.hpp — base64 (RFC 4648 section 4), encoding and strict decoding.
// SPDX-License-Identifier: BSL-1.0
//
// The handshake encodes the 16-byte nonce (Sec-WebSocket-Key) and the SHA-1 digest
// (Sec-WebSocket-Accept), and a server must check that the key it receives decodes to
// exactly 16 bytes. Decoding is strict on purpose: every valid key has one spelling, so a
// lenient decoder would only let malformed keys through.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace duplex::protocol {

namespace detail {

inline constexpr char base64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The 6-bit value of an alphabet character, or -1 (padding and everything else).
inline int base64_value(char ch) noexcept {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

} // namespace detail

inline constexpr std::size_t base64_encoded_size(std::size_t n) noexcept { return (n + 2) / 3 * 4; }

// The number of bytes a well-formed encoding decodes to (it does not validate `in`).
inline std::size_t base64_decoded_size(std::string_view in) noexcept {
    if (in.size() % 4 != 0) return in.size() / 4 * 3;
    std::size_t n = in.size() / 4 * 3;
    if (!in.empty() && in.back() == '=') --n;
    if (in.size() >= 2 && in[in.size() - 2] == '=') --n;
    return n;
}

inline std::string base64_encode(std::string_view in) {
    std::string out;
    out.reserve(base64_encoded_size(in.size()));
    const auto* p = reinterpret_cast<const unsigned char*>(in.data());
    std::size_t n = in.size();
    for (; n >= 3; p += 3, n -= 3) {
        const std::uint32_t v = (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8) | p[2];
        out += detail::base64_alphabet[(v >> 18) & 63u];
        out += detail::base64_alphabet[(v >> 12) & 63u];
        out += detail::base64_alphabet[(v >> 6) & 63u];
        out += detail::base64_alphabet[v & 63u];
    }
    if (n == 1) {
        const std::uint32_t v = std::uint32_t{p[0]} << 16;
        out += detail::base64_alphabet[(v >> 18) & 63u];
        out += detail::base64_alphabet[(v >> 12) & 63u];
        out += "==";
    } else if (n == 2) {
        const std::uint32_t v = (std::uint32_t{p[0]} << 16) | (std::uint32_t{p[1]} << 8);
        out += detail::base64_alphabet[(v >> 18) & 63u];
        out += detail::base64_alphabet[(v >> 12) & 63u];
        out += detail::base64_alphabet[(v >> 6) & 63u];
        out += '=';
    }
    return out;
}

// Decodes `in` into `out` (replacing its contents). Returns false, with `out` empty, unless
// `in` is canonical RFC 4648 base64: standard alphabet, length a multiple of 4, padding
// only at the end and exactly as much as needed, no whitespace or line breaks, and unused
// trailing bits zero (section 3.5), so each byte string has exactly one accepted encoding.
inline bool base64_decode(std::string_view in, std::string& out) {
    out.clear();
    if (in.size() % 4 != 0) return false;
    out.reserve(base64_decoded_size(in));
    for (std::size_t i = 0; i < in.size(); i += 4) {
        const bool last = i + 4 == in.size();
        const int a = detail::base64_value(in[i]);
        const int b = detail::base64_value(in[i + 1]);
        int c = detail::base64_value(in[i + 2]);
        int d = detail::base64_value(in[i + 3]);
        std::size_t bytes = 3;
        if (last && in[i + 3] == '=') {
            bytes = 2;
            d = 0;
            if (in[i + 2] == '=') {
                bytes = 1;
                c = 0;
            }
        }
        if (a < 0 || b < 0 || c < 0 || d < 0) {
            out.clear();
            return false;
        }
        // Canonical form: the bits the padding stands for must be zero.
        if ((bytes == 1 && (b & 0x0F) != 0) || (bytes == 2 && (c & 0x03) != 0)) {
            out.clear();
            return false;
        }
        const auto v = (static_cast<std::uint32_t>(a) << 18) |
                       (static_cast<std::uint32_t>(b) << 12) |
                       (static_cast<std::uint32_t>(c) << 6) | static_cast<std::uint32_t>(d);
        out += static_cast<char>((v >> 16) & 0xFFu);
        if (bytes > 1) out += static_cast<char>((v >> 8) & 0xFFu);
        if (bytes > 2) out += static_cast<char>(v & 0xFFu);
    }
    return true;
}

} // namespace duplex::protocol
