// duplex/protocol/random.hpp — unpredictable bytes for masking keys and handshake nonces.
// SPDX-License-Identifier: BSL-1.0
//
// RFC 6455 5.3 and 10.3 require masking keys that a script in the page cannot predict, or a
// hostile page could steer the bytes a proxy sees. A fast linear generator (xorshift, mt19937)
// can be reconstructed from a few observed keys, so duplex uses the ChaCha20 block function
// (RFC 8439) as a stream generator keyed once from the operating system's entropy. One 64-byte
// block yields sixteen masking keys, so the cost per frame is a few nanoseconds.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <random>

namespace duplex::protocol {

namespace detail {

inline std::uint32_t rotl32(std::uint32_t v, int bits) noexcept {
    return (v << bits) | (v >> (32 - bits));
}

inline void chacha_quarter_round(std::uint32_t& a, std::uint32_t& b, std::uint32_t& c,
                                 std::uint32_t& d) noexcept {
    a += b;
    d = rotl32(d ^ a, 16);
    c += d;
    b = rotl32(b ^ c, 12);
    a += b;
    d = rotl32(d ^ a, 8);
    c += d;
    b = rotl32(b ^ c, 7);
}

// RFC 8439 2.3: twenty rounds over the 16-word state, then the input added back in.
inline void chacha20_block(const std::array<std::uint32_t, 16>& input,
                           std::array<std::uint32_t, 16>& output) noexcept {
    std::array<std::uint32_t, 16> x = input;
    for (int round = 0; round < 10; ++round) {
        chacha_quarter_round(x[0], x[4], x[8], x[12]);
        chacha_quarter_round(x[1], x[5], x[9], x[13]);
        chacha_quarter_round(x[2], x[6], x[10], x[14]);
        chacha_quarter_round(x[3], x[7], x[11], x[15]);
        chacha_quarter_round(x[0], x[5], x[10], x[15]);
        chacha_quarter_round(x[1], x[6], x[11], x[12]);
        chacha_quarter_round(x[2], x[7], x[8], x[13]);
        chacha_quarter_round(x[3], x[4], x[9], x[14]);
    }
    for (std::size_t i = 0; i < 16; ++i) output[i] = x[i] + input[i];
}

} // namespace detail

// A ChaCha20 keystream used as a random generator. Not thread-safe: each session owns one.
class random_source {
public:
    using seed_type = std::array<std::uint32_t, 8>; // a 256-bit ChaCha20 key

    // Keyed from std::random_device, which reads the kernel's entropy pool on the platforms
    // duplex supports.
    random_source() {
        std::random_device device;
        seed_type seed;
        for (auto& word : seed) word = device();
        rekey(seed);
    }

    // A fixed key, for reproducible tests and fuzzing. Never use a constant key in production.
    explicit random_source(const seed_type& seed) noexcept { rekey(seed); }

    std::uint32_t next_u32() noexcept {
        if (used_ == block_.size()) refill();
        return block_[used_++];
    }

    void fill(void* out, std::size_t size) noexcept {
        auto* bytes = static_cast<unsigned char*>(out);
        while (size >= 4) {
            const std::uint32_t word = next_u32();
            std::memcpy(bytes, &word, 4);
            bytes += 4;
            size -= 4;
        }
        if (size != 0) {
            const std::uint32_t word = next_u32();
            std::memcpy(bytes, &word, size);
        }
    }

private:
    void rekey(const seed_type& seed) noexcept {
        // "expand 32-byte k", the RFC 8439 2.3 constants.
        state_ = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574};
        for (std::size_t i = 0; i < 8; ++i) state_[4 + i] = seed[i];
        for (std::size_t i = 12; i < 16; ++i) state_[i] = 0;
        used_ = block_.size();
    }

    void refill() noexcept {
        detail::chacha20_block(state_, block_);
        // A 64-bit block counter in words 12-13: 2^70 bytes before it could repeat.
        if (++state_[12] == 0) ++state_[13];
        used_ = 0;
    }

    std::array<std::uint32_t, 16> state_{};
    std::array<std::uint32_t, 16> block_{};
    std::size_t used_ = 16;
};

} // namespace duplex::protocol
