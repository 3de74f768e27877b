// What the libFuzzer targets share: a failing check that libFuzzer records as a crash, split
// points derived from the input, a reference UTF-8 decoder written independently of the
// library's, and a heap meter that bounds what the code under test keeps allocated.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DUPLEX_FUZZ_HEAP_METER 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(DUPLEX_FUZZ_HEAP_METER)
#define DUPLEX_FUZZ_HEAP_METER 1
#endif

#ifdef DUPLEX_FUZZ_HEAP_METER
#include <sanitizer/allocator_interface.h>
#endif

namespace fuzz {

// abort() rather than an exception or assert(): libFuzzer saves the input as a crash whatever
// the build type, and the message names the broken invariant.
inline void check(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
}

// Cut points 1..size-1 at pseudo-random distances of 1 to 17 bytes, fixed by `seed`: short
// enough that headers, UTF-8 sequences and CRLFs get split, and reproducible from the input.
inline std::vector<std::size_t> random_cuts(unsigned seed, std::size_t size) {
    std::vector<std::size_t> cuts;
    unsigned x = seed;
    for (std::size_t at = 0;;) {
        x = x * 1103515245U + 12345U;
        at += 1 + (x >> 16U) % 17U;
        if (at >= size) break;
        cuts.push_back(at);
    }
    return cuts;
}

inline std::vector<std::size_t> every_cut(std::size_t size) {
    std::vector<std::size_t> cuts;
    for (std::size_t i = 1; i < size; ++i) cuts.push_back(i);
    return cuts;
}

// Splits `text` at `cuts` (ascending, each < text.size()).
inline std::vector<std::string_view> pieces(std::string_view text,
                                            const std::vector<std::size_t>& cuts) {
    std::vector<std::string_view> out;
    std::size_t begin = 0;
    for (const std::size_t end : cuts) {
        out.push_back(text.substr(begin, end - begin));
        begin = end;
    }
    out.push_back(text.substr(begin));
    return out;
}

// RFC 3629 read from the code point values rather than from the table of byte ranges that
// the library uses: a lead byte's high bits give the sequence length, and the code point must
// need exactly that length (no overlong form), must not be a surrogate (U+D800..U+DFFF) and
// must not exceed U+10FFFF. To find the same fail-fast position as the library, a byte is
// refused as soon as no continuation bytes could make its sequence valid: the code points
// still reachable form an interval, which must meet a valid range.
class reference_utf8 {
public:
    bool feed(unsigned char b) {
        if (failed_) return false;
        if (length_ == 0) {
            if (b < 0x80) return true;
            if ((b & 0xE0U) == 0xC0U) {
                length_ = 2;
                value_ = b & 0x1FU;
            } else if ((b & 0xF0U) == 0xE0U) {
                length_ = 3;
                value_ = b & 0x0FU;
            } else if ((b & 0xF8U) == 0xF0U) {
                length_ = 4;
                value_ = b & 0x07U;
            } else {
                return fail(); // a continuation byte, or F8..FF which UTF-8 never uses
            }
            have_ = 1;
        } else {
            if ((b & 0xC0U) != 0x80U) return fail();
            value_ = (value_ << 6U) | (b & 0x3FU);
            ++have_;
        }
        if (!can_complete()) return fail();
        if (have_ == length_) length_ = 0;
        return true;
    }

    bool feed(std::string_view text) {
        for (const char c : text)
            if (!feed(static_cast<unsigned char>(c))) return false;
        return true;
    }

    bool failed() const { return failed_; }
    bool complete() const { return !failed_ && length_ == 0; }

private:
    bool fail() {
        failed_ = true;
        return false;
    }

    bool can_complete() const {
        const unsigned missing_bits = 6U * (length_ - have_);
        const std::uint32_t lowest = value_ << missing_bits;
        const std::uint32_t highest = lowest | ((std::uint32_t{1} << missing_bits) - 1U);
        const std::uint32_t shortest_needing_length = length_ == 2   ? 0x80U
                                                      : length_ == 3 ? 0x800U
                                                                     : 0x10000U;
        const auto meets = [&](std::uint32_t from, std::uint32_t to) {
            if (from < shortest_needing_length) from = shortest_needing_length;
            return from <= to && lowest <= to && from <= highest;
        };
        return meets(0, 0xD7FF) || meets(0xE000, 0x10FFFF);
    }

    bool failed_ = false;
    unsigned length_ = 0; // of the sequence in progress, 0 between code points
    unsigned have_ = 0;   // its bytes seen so far
    std::uint32_t value_ = 0;
};

// The index of the first byte at which `text` stops being the start of valid UTF-8, or
// text.size() when it never does.
inline std::size_t reference_utf8_failure(std::string_view text) {
    reference_utf8 decoder;
    for (std::size_t i = 0; i < text.size(); ++i)
        if (!decoder.feed(static_cast<unsigned char>(text[i]))) return i;
    return text.size();
}

inline bool reference_is_utf8(std::string_view text) {
    reference_utf8 decoder;
    return decoder.feed(text) && decoder.complete();
}

// Measures the heap that calls into the library keep: bytes allocated minus bytes freed while
// a heap_window is open, and the peak of that sum. Only with AddressSanitizer, whose allocator
// has hooks and knows each block's size; elsewhere it measures nothing and checks pass.
class heap_meter {
public:
    static constexpr bool available() {
#ifdef DUPLEX_FUZZ_HEAP_METER
        return true;
#else
        return false;
#endif
    }

    static void start() {
        install();
        live_ = 0;
        peak_ = 0;
    }
    static long long peak() { return peak_; }

    class window {
    public:
        window() : was_open_(open_) { open_ = true; }
        window(const window&) = delete;
        window& operator=(const window&) = delete;
        ~window() { open_ = was_open_; }

    private:
        bool was_open_;
    };

private:
#ifdef DUPLEX_FUZZ_HEAP_METER
    static void on_malloc(const volatile void*, std::size_t size) {
        if (!open_) return;
        live_ += static_cast<long long>(size);
        if (live_ > peak_) peak_ = live_;
    }
    static void on_free(const volatile void* p) {
        if (!open_ || p == nullptr) return;
        live_ -= static_cast<long long>(__sanitizer_get_allocated_size(const_cast<const void*>(p)));
    }
    static void install() {
        static const bool installed = __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
        (void)installed;
    }
#else
    static void install() {}
#endif

    static inline bool open_ = false;
    static inline long long live_ = 0;
    static inline long long peak_ = 0;
};

} // namespace fuzz
