// duplex/protocol/utf8.hpp — incremental UTF-8 validation (RFC 3629 section 4).
// SPDX-License-Identifier: BSL-1.0
//
// RFC 6455 requires text messages and close reasons to be valid UTF-8, and lets us fail the
// connection (1007) as soon as the bytes received so far can no longer become valid text
// (section 8.1). A text message arrives in frames, fragments and reads of arbitrary size, so
// the validator keeps the position inside a partly received code point between feed() calls:
// feed every piece of payload as it is unmasked, and ask complete() once the message ends.
// is_valid_utf8() checks a buffer that is already whole, such as a close reason.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>

namespace duplex::protocol {

class utf8_validator {
public:
    // Returns false at the first byte that cannot start or continue a well-formed sequence;
    // valid_prefix() then says where it was. Once failed, stays failed until reset().
    inline bool feed(const char* data, std::size_t size) noexcept;
    bool feed(std::string_view text) noexcept { return feed(text.data(), text.size()); }

    // Everything fed so far is valid and does not end inside a code point. A message that ends
    // in the middle of a sequence is invalid even though no single byte was wrong.
    bool complete() const noexcept { return !failed_ && need_ == 0; }
    bool failed() const noexcept { return failed_; }

    // How many bytes of the last feed() call were accepted: the index of the offending byte
    // when it returned false (0 if the validator had already failed before the call), the
    // whole size when it returned true.
    std::size_t valid_prefix() const noexcept { return valid_prefix_; }

    void reset() noexcept { *this = utf8_validator{}; }

private:
    // Continuation bytes still expected, and the range the next one must fall in. Only the
    // first continuation byte has a range narrower than 80..BF (RFC 3629 table), which is how
    // overlongs, surrogates and code points above U+10FFFF are refused at that byte.
    std::uint8_t need_ = 0;
    std::uint8_t lo_ = 0x80;
    std::uint8_t hi_ = 0xBF;
    bool failed_ = false;
    std::size_t valid_prefix_ = 0;
};

namespace detail {

inline std::uint64_t utf8_load64(const unsigned char* p) noexcept {
    // memcpy rather than a cast: the payload has no alignment and aliasing must stay legal.
    std::uint64_t word;
    std::memcpy(&word, p, sizeof word);
    return word;
}

// A byte with its top bit set somewhere in the word means it is not all ASCII; the test is
// the same whatever the byte order.
constexpr std::uint64_t utf8_high_bits = 0x8080808080808080u;

// What a byte at a code point boundary commits the text to, per RFC 3629 section 4.
struct utf8_lead {
    std::uint8_t need; // continuation bytes that must follow; utf8_never if it cannot start one
    std::uint8_t lo;   // range of the first continuation byte
    std::uint8_t hi;
};

constexpr std::uint8_t utf8_never = 0xFF;

// Indexed by byte - 0x80. Built from the RFC table at compile time rather than written out, so
// each rule appears once and can be read against the RFC.
struct utf8_lead_table {
    utf8_lead entries[128];
};

constexpr utf8_lead_table make_utf8_lead_table() noexcept {
    utf8_lead_table table{};
    for (unsigned b = 0x80; b <= 0xFF; ++b) {
        utf8_lead lead{utf8_never, 0x80, 0xBF};
        // 80..BF only continue a sequence; C0 C1 could only start overlong forms; F5..FF could
        // only start code points above U+10FFFF.
        if (b >= 0xC2 && b <= 0xDF) lead.need = 1;
        if (b >= 0xE0 && b <= 0xEF) lead.need = 2;
        if (b >= 0xF0 && b <= 0xF4) lead.need = 3;
        if (b == 0xE0) lead.lo = 0xA0; // E0 80..9F would be overlong
        if (b == 0xED) lead.hi = 0x9F; // ED A0..BF would be surrogates
        if (b == 0xF0) lead.lo = 0x90; // F0 80..8F would be overlong
        if (b == 0xF4) lead.hi = 0x8F; // F4 90..BF would be above U+10FFFF
        table.entries[b - 0x80] = lead;
    }
    return table;
}

inline constexpr utf8_lead_table utf8_leads = make_utf8_lead_table();

} // namespace detail

inline bool utf8_validator::feed(const char* data, std::size_t size) noexcept {
    if (failed_) {
        valid_prefix_ = 0;
        return false;
    }
    const auto* const p = reinterpret_cast<const unsigned char*>(data);
    // Locals rather than members in the loop: the input is read as unsigned char, which may
    // alias the members, so updates to members could not stay in registers.
    unsigned need = need_;
    unsigned lo = lo_;
    unsigned hi = hi_;
    std::size_t i = 0;
    // After a word that was not all ASCII, go byte by byte at least this far before trying
    // words again, so dense non-ASCII text does not pay for a failed word test per code point.
    std::size_t slow_until = 0;

    while (i < size) {
        if (need == 0) {
            if (i >= slow_until) {
                while (size - i >= 16) {
                    const std::uint64_t a = detail::utf8_load64(p + i);
                    const std::uint64_t b = detail::utf8_load64(p + i + 8);
                    if (((a | b) & detail::utf8_high_bits) != 0) break;
                    i += 16;
                }
                if (size - i >= 8 && (detail::utf8_load64(p + i) & detail::utf8_high_bits) == 0)
                    i += 8;
                slow_until = i + 8;
                if (i == size) break;
            }
            const unsigned c = p[i];
            if (c < 0x80) {
                ++i;
                continue;
            }
            // A table lookup rather than a chain of comparisons: one load instead of up to six
            // branches on every lead byte, which is every second or third byte of non-Latin text.
            const detail::utf8_lead lead = detail::utf8_leads.entries[c - 0x80];
            if (lead.need == detail::utf8_never) break;
            need = lead.need;
            lo = lead.lo;
            hi = lead.hi;
            ++i;
            continue;
        }
        // One unsigned comparison tests lo <= byte <= hi.
        if (p[i] - lo > hi - lo) break;
        --need;
        lo = 0x80;
        hi = 0xBF;
        ++i;
    }

    need_ = static_cast<std::uint8_t>(need);
    lo_ = static_cast<std::uint8_t>(lo);
    hi_ = static_cast<std::uint8_t>(hi);
    valid_prefix_ = i;
    failed_ = i != size;
    return !failed_;
}

inline bool is_valid_utf8(std::string_view text) noexcept {
    utf8_validator validator;
    return validator.feed(text) && validator.complete();
}

} // namespace duplex::protocol
