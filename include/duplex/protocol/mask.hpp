// duplex/protocol/mask.hpp — the XOR masking of RFC 6455 5.3, done many bytes per step.
// SPDX-License-Identifier: BSL-1.0
//
// Every client frame is masked and every server unmasks every byte it receives, so this is on
// the hot path of both roles. The key is applied 16 bytes per step with SSE2 (32 with AVX2 when
// the build enables it), a machine word per step elsewhere, at any alignment, in place, and can
// resume mid-frame: a payload that arrives in several reads is unmasked piece by piece with the
// running offset.
//
// Why intrinsics rather than a loop left to the vectorizer: how a compiler widens a word loop
// depends on where it is inlined. GCC 12 with -march=native turned the former 32-byte block
// loop (four 64-bit words through a local array) into scalar loads assembled into one 256-bit
// store inside the server's read path, and made 16 KiB echoes a third slower than the generic
// build. Explicit 16- and 32-byte unaligned loads and stores compile to the same few
// instructions wherever they land (benchmarks/micro/flavours.sh measures every build).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__) || defined(_M_X64) || (defined(_M_IX86_FP) && _M_IX86_FP >= 2)
#include <emmintrin.h>
#define DUPLEX_DETAIL_MASK_SSE2 1
#endif
#if defined(__AVX2__)
#include <immintrin.h>
#define DUPLEX_DETAIL_MASK_AVX2 1
#endif

namespace duplex::protocol {

// Masking key in wire order (the four bytes exactly as they appear in the frame header).
using mask_key = std::uint32_t;

namespace detail {

// The key as it applies to a run of bytes starting at payload `offset`: its bytes (in memory
// order) rotated so that the first one is the key octet for that offset.
inline std::uint32_t mask_key_at(mask_key key, std::size_t offset) noexcept {
    const unsigned shift = static_cast<unsigned>(offset & 3U);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ || defined(_M_X64) ||     \
    defined(_M_IX86) || defined(_M_ARM64)
    // The first byte in memory is the lowest one: shift it out to the right (one `ror`).
    const unsigned bits = 8U * shift;
    return (key >> bits) | (key << ((32U - bits) & 31U));
#else
    unsigned char in[4], out[4];
    std::memcpy(in, &key, 4);
    for (unsigned i = 0; i < 4; ++i) out[i] = in[(shift + i) & 3U];
    std::uint32_t rotated;
    std::memcpy(&rotated, out, 4);
    return rotated;
#endif
}

} // namespace detail

// XORs `size` bytes at `data` with `key`, as if they started at byte `offset` of the payload
// (RFC 6455 5.3: octet i is XORed with key octet i mod 4). Returns the offset that follows,
// so that a caller can continue with the next piece.
inline std::size_t apply_mask(void* data, std::size_t size, mask_key key,
                              std::size_t offset = 0) noexcept {
    auto* bytes = static_cast<unsigned char*>(data);
    // From here on every 4-byte run of the payload uses the same key bytes, at any alignment.
    const std::uint32_t k = detail::mask_key_at(key, offset);
    std::size_t i = 0;
    // Two vectors per step: half the loop overhead, and the two are independent.
#if defined(DUPLEX_DETAIL_MASK_AVX2)
    if (size >= 32) {
        const __m256i wide = _mm256_set1_epi32(static_cast<int>(k));
        for (; i + 64 <= size; i += 64) {
            auto* at = reinterpret_cast<__m256i*>(bytes + i);
            const __m256i a = _mm256_loadu_si256(at), b = _mm256_loadu_si256(at + 1);
            _mm256_storeu_si256(at, _mm256_xor_si256(a, wide));
            _mm256_storeu_si256(at + 1, _mm256_xor_si256(b, wide));
        }
        if (i + 32 <= size) {
            auto* at = reinterpret_cast<__m256i*>(bytes + i);
            _mm256_storeu_si256(at, _mm256_xor_si256(_mm256_loadu_si256(at), wide));
            i += 32;
        }
    }
#endif
#if defined(DUPLEX_DETAIL_MASK_SSE2)
    if (i + 16 <= size) {
        const __m128i wide = _mm_set1_epi32(static_cast<int>(k));
        for (; i + 32 <= size; i += 32) {
            auto* at = reinterpret_cast<__m128i*>(bytes + i);
            const __m128i a = _mm_loadu_si128(at), b = _mm_loadu_si128(at + 1);
            _mm_storeu_si128(at, _mm_xor_si128(a, wide));
            _mm_storeu_si128(at + 1, _mm_xor_si128(b, wide));
        }
        if (i + 16 <= size) {
            auto* at = reinterpret_cast<__m128i*>(bytes + i);
            _mm_storeu_si128(at, _mm_xor_si128(_mm_loadu_si128(at), wide));
            i += 16;
        }
    }
#endif
    // Both halves hold the same four key bytes, so the word is right in either byte order.
    const std::uint64_t word = (std::uint64_t{k} << 32) | k;
    for (; i + 8 <= size; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, bytes + i, 8);
        w ^= word;
        std::memcpy(bytes + i, &w, 8);
    }
    if (i + 4 <= size) {
        std::uint32_t w;
        std::memcpy(&w, bytes + i, 4);
        w ^= k;
        std::memcpy(bytes + i, &w, 4);
        i += 4;
    }
    // At most three bytes are left: spelled out, so that no compiler vectorizes this tail.
    unsigned char key_bytes[4];
    std::memcpy(key_bytes, &k, 4);
    switch (size - i) {
    case 3: bytes[i + 2] = static_cast<unsigned char>(bytes[i + 2] ^ key_bytes[2]); [[fallthrough]];
    case 2: bytes[i + 1] = static_cast<unsigned char>(bytes[i + 1] ^ key_bytes[1]); [[fallthrough]];
    case 1: bytes[i] = static_cast<unsigned char>(bytes[i] ^ key_bytes[0]); break;
    default: break;
    }
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
