// duplex/protocol/sha1.hpp — SHA-1 (RFC 3174), written for duplex.
// SPDX-License-Identifier: BSL-1.0
//
// The opening handshake needs SHA-1 exactly once per connection, to compute
// Sec-WebSocket-Accept (RFC 6455 section 4.2.2). SHA-1 is not used here for security (the
// accept key only proves the server understood WebSocket), so a small, portable
// implementation is enough and keeps the protocol layer free of OpenSSL.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace duplex::protocol {

// Incremental SHA-1. finish() returns the digest and leaves the hasher ready for a new
// message, so one hasher can be reused without reconstructing it.
class sha1_hasher {
public:
    sha1_hasher() noexcept { reset(); }

    void reset() noexcept {
        state_ = {0x67452301u, 0xEFCDAB89u, 0x98BADCFEu, 0x10325476u, 0xC3D2E1F0u};
        block_len_ = 0;
        total_len_ = 0;
    }

    void update(std::string_view data) noexcept {
        const auto* p = reinterpret_cast<const unsigned char*>(data.data());
        std::size_t n = data.size();
        total_len_ += static_cast<std::uint64_t>(n);
        // Fill a partial block first; then whole blocks straight from the input, so long
        // inputs are not copied twice.
        if (block_len_ != 0) {
            while (n != 0 && block_len_ != block_.size()) {
                block_[block_len_++] = *p++;
                --n;
            }
            if (block_len_ != block_.size()) return;
            compress(block_.data());
            block_len_ = 0;
        }
        while (n >= block_.size()) {
            compress(p);
            p += block_.size();
            n -= block_.size();
        }
        while (n != 0) {
            block_[block_len_++] = *p++;
            --n;
        }
    }

    std::array<std::uint8_t, 20> finish() noexcept {
        // RFC 3174 section 4: a 1 bit, zeros up to 56 bytes mod 64, then the message
        // length in bits as a 64-bit big-endian integer.
        const std::uint64_t bit_len = total_len_ * 8u;
        block_[block_len_++] = 0x80;
        if (block_len_ > 56) {
            while (block_len_ != block_.size()) block_[block_len_++] = 0;
            compress(block_.data());
            block_len_ = 0;
        }
        while (block_len_ != 56) block_[block_len_++] = 0;
        for (int i = 7; i >= 0; --i) {
            block_[block_len_++] = static_cast<unsigned char>(bit_len >> (8 * i));
        }
        compress(block_.data());

        std::array<std::uint8_t, 20> digest{};
        for (std::size_t i = 0; i != 5; ++i) {
            digest[4 * i + 0] = static_cast<std::uint8_t>(state_[i] >> 24);
            digest[4 * i + 1] = static_cast<std::uint8_t>(state_[i] >> 16);
            digest[4 * i + 2] = static_cast<std::uint8_t>(state_[i] >> 8);
            digest[4 * i + 3] = static_cast<std::uint8_t>(state_[i]);
        }
        reset();
        return digest;
    }

private:
    static std::uint32_t rotl(std::uint32_t x, unsigned n) noexcept {
        return (x << n) | (x >> (32u - n));
    }

    // RFC 3174 section 6.2 (method 2 would save memory; 320 bytes of stack is fine here).
    void compress(const unsigned char* block) noexcept {
        std::uint32_t w[80];
        for (std::size_t t = 0; t != 16; ++t) {
            w[t] = (std::uint32_t{block[4 * t]} << 24) | (std::uint32_t{block[4 * t + 1]} << 16) |
                   (std::uint32_t{block[4 * t + 2]} << 8) | std::uint32_t{block[4 * t + 3]};
        }
        for (std::size_t t = 16; t != 80; ++t) {
            w[t] = rotl(w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16], 1);
        }
        std::uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3], e = state_[4];
        for (std::size_t t = 0; t != 80; ++t) {
            std::uint32_t f, k;
            if (t < 20) {
                f = (b & c) | (~b & d);
                k = 0x5A827999u;
            } else if (t < 40) {
                f = b ^ c ^ d;
                k = 0x6ED9EBA1u;
            } else if (t < 60) {
                f = (b & c) | (b & d) | (c & d);
                k = 0x8F1BBCDCu;
            } else {
                f = b ^ c ^ d;
                k = 0xCA62C1D6u;
            }
            const std::uint32_t temp = rotl(a, 5) + f + e + w[t] + k;
            e = d;
            d = c;
            c = rotl(b, 30);
            b = a;
            a = temp;
        }
        state_[0] += a;
        state_[1] += b;
        state_[2] += c;
        state_[3] += d;
        state_[4] += e;
    }

    std::array<std::uint32_t, 5> state_{};
    std::array<unsigned char, 64> block_{};
    std::size_t block_len_ = 0;
    std::uint64_t total_len_ = 0;
};

inline std::array<std::uint8_t, 20> sha1(std::string_view data) noexcept {
    sha1_hasher h;
    h.update(data);
    return h.finish();
}

} // namespace duplex::protocol
