// duplex/protocol/mask.hpp — the XOR masking of RFC 6455 5.3, done many bytes per step.
// SPDX-License-Identifier: BSL-1.0
//
// Every client frame is masked and every server unmasks every byte it receives, so this is on
// the hot path of both roles. The key is applied a machine word at a time (the compiler widens
// it further to SIMD), at any alignment, in place, and can resume mid-frame: a payload that
// arrives in several reads is unmasked piece by piece with the running offset.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace duplex::protocol {

// Masking key in wire order (the four bytes exactly as they appear in the frame header).
using mask_key = std::uint32_t;

// XORs `size` bytes at `data` with `key`, as if they started at byte `offset` of the payload
// (RFC 6455 5.3: octet i is XORed with key octet i mod 4). Returns the offset that follows,
// so that a caller can continue with the next piece.
inline std::size_t apply_mask(void* data, std::size_t size, mask_key key,
                              std::size_t offset = 0) noexcept {
    auto* bytes = static_cast<unsigned char*>(data);
    unsigned char key_bytes[4];
    std::memcpy(key_bytes, &key, 4);

    // Rotate the key so that key_bytes[0] applies to bytes[0]; then any run of 8 bytes uses the
    // same 8-byte pattern, whatever the offset and the alignment.
    const std::size_t shift = offset & 3U;
    unsigned char pattern[8];
    for (std::size_t i = 0; i < 8; ++i) pattern[i] = key_bytes[(shift + i) & 3U];
    std::uint64_t word_key;
    std::memcpy(&word_key, pattern, 8);

    std::size_t i = 0;
    for (; i + 32 <= size; i += 32) {
        std::uint64_t w[4];
        std::memcpy(w, bytes + i, 32);
        w[0] ^= word_key;
        w[1] ^= word_key;
        w[2] ^= word_key;
        w[3] ^= word_key;
        std::memcpy(bytes + i, w, 32);
    }
    for (; i + 8 <= size; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, bytes + i, 8);
        w ^= word_key;
        std::memcpy(bytes + i, &w, 8);
    }
    for (; i < size; ++i) bytes[i] = static_cast<unsigned char>(bytes[i] ^ pattern[i & 7U]);
    return offset + size;
}

// Copies `size` bytes from `src` to `dst` while masking them: one pass instead of a copy and
// then a mask, for a client that must not modify the caller's payload.
inline std::size_t copy_masked(void* dst, const void* src, std::size_t size, mask_key key,
                               std::size_t offset = 0) noexcept {
    if (size != 0) std::memcpy(dst, src, size);
    return apply_mask(dst, size, key, offset);
}

} // namespace duplex::protocol
