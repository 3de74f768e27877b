// duplex/protocol/deflate_codec.hpp — compressing and inflating messages (RFC 7692 7.2).
// SPDX-License-Identifier: BSL-1.0
//
// The zlib half of permessage-deflate: raw DEFLATE (no zlib header), one whole message at a
// time, with the empty-block trailer 00 00 ff ff removed on sending and put back on
// receiving. Inflation is bounded: it stops in steps and fails with message_too_big as soon
// as a message's inflated size passes the caller's limit, however small its compressed form
// (a decompression bomb costs at most that limit). Without context takeover a codec frees its
// zlib state after every message, so an idle connection holds none. Needs zlib: compiled only
// with DUPLEX_ENABLE_DEFLATE (the duplex::deflate CMake target). session.hpp uses it.
#pragma once

#ifndef DUPLEX_ENABLE_DEFLATE
#error "duplex/protocol/deflate_codec.hpp needs zlib: link duplex::deflate"
#endif

#include "duplex/error.hpp"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

namespace duplex::protocol {

namespace detail {
// RFC 7692 7.2.1: what a sync flush ends with, removed before sending, re-added on receipt.
inline constexpr unsigned char deflate_trailer[4] = {0x00, 0x00, 0xff, 0xff};
// zlib counts in uInt: longer inputs are fed in pieces of this size.
inline constexpr std::size_t zlib_max_step = std::size_t{1} << 30;

// zlib's memory comes from a small cache per thread. A compressor without context takeover
// allocates about 270 KiB for every message and frees it after; glibc gives memory freed at
// the top of its heap back to the kernel (past 128 KiB) and takes it again for the next
// message, faulting in fresh pages: measured at 30 times the cost of compressing a 200-byte
// message. The cache keeps the blocks of about one compressor and one decompressor per
// thread, so that starting afresh costs zlib's own reset and no more.
class zlib_block_cache {
public:
    static voidpf allocate(voidpf, uInt items, uInt size) noexcept {
        const std::size_t bytes = std::size_t{items} * size;
        for (auto& block : local().blocks) {
            if (block.memory != nullptr && block.size == bytes) {
                local().held -= bytes;
                return user_bytes(std::exchange(block.memory, nullptr));
            }
        }
        void* memory = std::malloc(header + bytes);
        if (memory == nullptr) return Z_NULL;
        std::memcpy(memory, &bytes, sizeof bytes);
        return user_bytes(memory);
    }
    static void release(voidpf, voidpf address) noexcept {
        if (address == Z_NULL) return;
        void* memory = static_cast<char*>(address) - header;
        std::size_t bytes;
        std::memcpy(&bytes, memory, sizeof bytes);
        cache& c = local();
        if (c.held + bytes <= max_held) {
            for (auto& block : c.blocks) {
                if (block.memory != nullptr) continue;
                block = {memory, bytes};
                c.held += bytes;
                return;
            }
        }
        std::free(memory);
    }
    // Bytes this thread keeps for reuse; for tests.
    static std::size_t held() noexcept { return local().held; }

private:
    // Enough for a 15-bit compressor with memLevel 9 (~390 KiB) and a decompressor (~40 KiB).
    static constexpr std::size_t max_held = std::size_t{512} << 10;
    static constexpr std::size_t header = 16; // the size, keeping malloc's 16-byte alignment

    struct block {
        void* memory = nullptr;
        std::size_t size = 0;
    };
    struct cache {
        std::array<block, 12> blocks{};
        std::size_t held = 0;
        cache() = default;
        cache(const cache&) = delete;
        cache& operator=(const cache&) = delete;
        ~cache() {
            for (auto& b : blocks) std::free(b.memory);
        }
    };
    static cache& local() noexcept {
        thread_local cache c;
        return c;
    }
    static voidpf user_bytes(void* memory) noexcept { return static_cast<char*>(memory) + header; }
};

inline void use_block_cache(z_stream& stream) noexcept {
    stream.zalloc = &zlib_block_cache::allocate;
    stream.zfree = &zlib_block_cache::release;
    stream.opaque = Z_NULL;
}
} // namespace detail

// Compresses the messages one endpoint sends.
class message_deflater {
public:
    // window_bits 8-15 as negotiated; level 0-9 and mem_level 1-9 as in zlib's deflateInit2.
    message_deflater(int window_bits, bool no_context_takeover, int level, int mem_level) noexcept
        : window_bits_(std::clamp(window_bits, 8, 15)), level_(std::clamp(level, 0, 9)),
          mem_level_(std::clamp(mem_level, 1, 9)), no_context_takeover_(no_context_takeover) {}
    message_deflater(const message_deflater&) = delete;
    message_deflater& operator=(const message_deflater&) = delete;
    ~message_deflater() { release(); }

    // Replaces `out` with the compressed form of one whole, non-empty message (RFC 7692
    // 7.2.1: a sync flush, then the 00 00 ff ff it ends with removed). False only when zlib
    // fails (out of memory); the context is then dropped, and the caller sends the message
    // uncompressed, which the peer's context does not notice.
    bool compress(std::string_view payload, std::string& out) {
        out.clear();
        if (payload.empty() || (!live_ && !init())) return false;
        std::size_t fed = 0;
        while (fed < payload.size()) {
            const std::size_t piece = std::min(payload.size() - fed, detail::zlib_max_step);
            stream_.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(payload.data() + fed));
            stream_.avail_in = static_cast<uInt>(piece);
            fed += piece;
            for (;;) {
                const std::size_t at = out.size();
                const std::size_t room =
                    std::min(std::max<std::size_t>(at, piece / 2 + 64), detail::zlib_max_step);
                out.resize(at + room);
                stream_.next_out = reinterpret_cast<Bytef*>(&out[at]);
                stream_.avail_out = static_cast<uInt>(room);
                const int rc = ::deflate(&stream_, Z_SYNC_FLUSH);
                out.resize(at + room - stream_.avail_out);
                if (rc != Z_OK && rc != Z_BUF_ERROR) return failed(out);
                if (stream_.avail_in == 0 && stream_.avail_out != 0) break;
            }
        }
        // With input, a sync flush always ends with the empty stored block.
        if (out.size() < 4 ||
            std::memcmp(out.data() + out.size() - 4, detail::deflate_trailer, 4) != 0)
            return failed(out);
        out.resize(out.size() - 4);
        if (no_context_takeover_) release();
        return true;
    }

    // Whether zlib state is allocated now (between messages: only with context takeover).
    bool holds_state() const noexcept { return live_; }

private:
    bool init() noexcept {
        stream_ = z_stream{};
        detail::use_block_cache(stream_);
        // zlib's raw deflate cannot use a 256-byte window (it refuses 8). A 512-byte window
        // with literals only (Z_HUFFMAN_ONLY) never refers back at all, so it honours any
        // window the peer allowed, 8 included.
        const bool literals_only = window_bits_ == 8;
        const int rc =
            deflateInit2(&stream_, level_, Z_DEFLATED, literals_only ? -9 : -window_bits_,
                         mem_level_, literals_only ? Z_HUFFMAN_ONLY : Z_DEFAULT_STRATEGY);
        live_ = rc == Z_OK;
        return live_;
    }
    void release() noexcept {
        if (live_) deflateEnd(&stream_);
        live_ = false;
    }
    bool failed(std::string& out) noexcept {
        release();
        out.clear();
        return false;
    }

    z_stream stream_{};
    int window_bits_;
    int level_;
    int mem_level_;
    bool no_context_takeover_;
    bool live_ = false;
};

// Inflates the messages one endpoint receives, piece by piece as frames arrive.
class message_inflater {
public:
    // window_bits 8-15 as negotiated for the peer's compressor.
    message_inflater(int window_bits, bool no_context_takeover) noexcept
        // 9 for 8: zlib's own deflate uses 9 when asked for 8 (see message_deflater), so
        // peers built on it send distances up to 512; accepting them costs 256 bytes.
        : window_bits_(std::clamp(window_bits, 9, 15)), no_context_takeover_(no_context_takeover) {}
    message_inflater(const message_inflater&) = delete;
    message_inflater& operator=(const message_inflater&) = delete;
    ~message_inflater() { release(); }

    // Inflates the next `size` bytes of a compressed message and appends them to `out`, never
    // letting out.size() pass `limit`: message_too_big the moment it would, whatever is left
    // of the input. `last`: these are the message's final bytes, so the trailer is added and
    // the message ends (7.2.2). bad_compressed_data when the bytes are not DEFLATE. Bytes
    // after a final block (BFINAL) are ignored: the DEFLATE stream ended there, and RFC 7692's
    // own example of such a message (7.2.3.4) carries one. After an error or a final block,
    // the next message starts afresh.
    std::error_code inflate(const char* data, std::size_t size, bool last, std::string& out,
                            std::size_t limit) {
        if (!live_ && !init()) return duplex::error::bad_compressed_data;
        std::error_code ec = run(reinterpret_cast<const unsigned char*>(data), size, out, limit);
        if (!ec && last) ec = run(detail::deflate_trailer, 4, out, limit);
        if (ec || last) {
            // A stream that ended (BFINAL) cannot go on, with or without context takeover.
            if (ec || ended_ || no_context_takeover_) release();
            ended_ = false;
        }
        return ec;
    }

    bool holds_state() const noexcept { return live_; }

private:
    std::error_code run(const unsigned char* in, std::size_t size, std::string& out,
                        std::size_t limit) {
        std::size_t fed = 0;
        while (fed < size && !ended_) {
            const std::size_t piece = std::min(size - fed, detail::zlib_max_step);
            stream_.next_in = const_cast<Bytef*>(in + fed);
            stream_.avail_in = static_cast<uInt>(piece);
            for (;;) {
                if (out.size() > limit) return duplex::error::message_too_big;
                // Bounded steps: at most one byte past the limit is ever produced, so a bomb
                // is caught with its output held at the limit.
                const std::size_t step = std::clamp<std::size_t>(out.size(), 16384, 1U << 20);
                const std::size_t left = limit - out.size();
                const std::size_t room =
                    std::min(left < step ? left + 1 : step, detail::zlib_max_step);
                const std::size_t at = out.size();
                out.resize(at + room);
                stream_.next_out = reinterpret_cast<Bytef*>(&out[at]);
                stream_.avail_out = static_cast<uInt>(room);
                const int rc = ::inflate(&stream_, Z_SYNC_FLUSH);
                out.resize(at + room - stream_.avail_out);
                if (out.size() > limit) return duplex::error::message_too_big;
                if (rc == Z_STREAM_END) {
                    ended_ = true;
                    return {};
                }
                if (rc == Z_BUF_ERROR) {
                    if (stream_.avail_out == 0) continue; // output was full: more room
                    if (stream_.avail_in == 0) break;
                    return duplex::error::bad_compressed_data;
                }
                if (rc != Z_OK) return duplex::error::bad_compressed_data;
                if (stream_.avail_in == 0 && stream_.avail_out != 0) break;
            }
            fed += piece;
        }
        return {};
    }

    bool init() noexcept {
        stream_ = z_stream{};
        detail::use_block_cache(stream_);
        live_ = inflateInit2(&stream_, -window_bits_) == Z_OK;
        ended_ = false;
        return live_;
    }
    void release() noexcept {
        if (live_) inflateEnd(&stream_);
        live_ = false;
    }

    z_stream stream_{};
    int window_bits_;
    bool no_context_takeover_;
    bool live_ = false;
    bool ended_ = false; // the message's DEFLATE stream had a final block
};

} // namespace duplex::protocol
