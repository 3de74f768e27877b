// Tests for duplex/protocol/utf8.hpp: the RFC 3629 section 4 table, fail-fast positions
// (RFC 6455 section 8.1 lets us fail the connection at the first impossible byte), the ASCII
// fast path at every offset and alignment, every split of every vector, and a differential
// run against a slow reference decoder written here from the RFC's bit patterns.
#include "catch.hpp"

#include <duplex/protocol/utf8.hpp>

#include <cstddef>
#include <cstdint>
#include <random>
#include <string>
#include <string_view>
#include <vector>

using duplex::protocol::is_valid_utf8;
using duplex::protocol::utf8_validator;

namespace {

// "C0 80" -> the two bytes; keeps the vector tables readable as hex.
std::string from_hex(std::string_view hex) {
    std::string out;
    unsigned value = 0;
    int digits = 0;
    for (const char ch : hex) {
        unsigned nibble = 0;
        if (ch >= '0' && ch <= '9')
            nibble = static_cast<unsigned>(ch - '0');
        else if (ch >= 'A' && ch <= 'F')
            nibble = static_cast<unsigned>(ch - 'A' + 10);
        else if (ch >= 'a' && ch <= 'f')
            nibble = static_cast<unsigned>(ch - 'a' + 10);
        else
            continue;
        value = value * 16 + nibble;
        if (++digits == 2) {
            out.push_back(static_cast<char>(value));
            value = 0;
            digits = 0;
        }
    }
    return out;
}

std::string to_hex(std::string_view bytes) {
    static const char digits[] = "0123456789ABCDEF";
    std::string out;
    for (const char ch : bytes) {
        const auto b = static_cast<unsigned char>(ch);
        if (!out.empty()) out.push_back(' ');
        out.push_back(digits[b >> 4]);
        out.push_back(digits[b & 0xF]);
    }
    return out;
}

// RFC 3629 section 3: the encoding, written independently of the validator.
std::string encode(std::uint32_t cp) {
    std::string out;
    auto put = [&out](std::uint32_t byte) { out.push_back(static_cast<char>(byte)); };
    if (cp < 0x80) {
        put(cp);
    } else if (cp < 0x800) {
        put(0xC0 | (cp >> 6));
        put(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        put(0xE0 | (cp >> 12));
        put(0x80 | ((cp >> 6) & 0x3F));
        put(0x80 | (cp & 0x3F));
    } else {
        put(0xF0 | (cp >> 18));
        put(0x80 | ((cp >> 12) & 0x3F));
        put(0x80 | ((cp >> 6) & 0x3F));
        put(0x80 | (cp & 0x3F));
    }
    return out;
}

constexpr std::size_t npos = static_cast<std::size_t>(-1);

// What a validator should say about a whole input.
struct verdict {
    std::size_t fail_at; // index of the first impossible byte, npos if none
    bool complete;       // no failure and not ending inside a sequence
};

// The reference: decode by the bit patterns of RFC 3629 section 3, then ask of every prefix of a
// sequence whether some continuation could still make it a scalar value that is not overlong,
// not a surrogate and at most U+10FFFF. Slow and direct on purpose; it shares no logic with
// the range checks in the validator.
bool could_complete(std::uint32_t bits, int have, int length) {
    static const std::uint32_t min_for_length[] = {0, 0, 0x80, 0x800, 0x10000};
    const int missing = length - have;
    const std::uint32_t lowest = bits << (6 * missing);
    const std::uint32_t highest = lowest | ((std::uint32_t{1} << (6 * missing)) - 1);
    const std::uint32_t from = lowest > min_for_length[length] ? lowest : min_for_length[length];
    const std::uint32_t to = highest < 0x10FFFF ? highest : 0x10FFFF;
    if (from > to) return false;
    if (from >= 0xD800 && to <= 0xDFFF) return false;
    return true;
}

verdict reference(std::string_view text) {
    std::size_t i = 0;
    while (i < text.size()) {
        const auto lead = static_cast<unsigned char>(text[i]);
        static const unsigned payload_mask[] = {0, 0x7F, 0x1F, 0x0F, 0x07};
        int length = 0; // 0xxxxxxx, 110xxxxx, 1110xxxx, 11110xxx; anything else starts nothing
        if ((lead & 0x80) == 0) length = 1;
        if ((lead & 0xE0) == 0xC0) length = 2;
        if ((lead & 0xF0) == 0xE0) length = 3;
        if ((lead & 0xF8) == 0xF0) length = 4;
        if (length == 0) return {i, false};
        std::uint32_t bits = lead & payload_mask[length];
        if (!could_complete(bits, 1, length)) return {i, false};
        for (int have = 1; have < length; ++have) {
            const std::size_t at = i + static_cast<std::size_t>(have);
            if (at == text.size()) return {npos, false};
            const auto next = static_cast<unsigned char>(text[at]);
            if ((next & 0xC0) != 0x80) return {at, false};
            bits = (bits << 6) | (next & 0x3Fu);
            if (!could_complete(bits, have + 1, length)) return {at, false};
        }
        i += static_cast<std::size_t>(length);
    }
    return {npos, true};
}

verdict whole(std::string_view text) {
    utf8_validator v;
    if (!v.feed(text)) return {v.valid_prefix(), false};
    return {npos, v.complete()};
}

verdict byte_at_a_time(std::string_view text) {
    utf8_validator v;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (!v.feed(text.data() + i, 1)) return {i, false};
    }
    return {npos, v.complete()};
}

// Feeds the pieces one after another; the failing piece's valid_prefix() plus the bytes
// before it must land on the same index as a whole feed.
verdict in_pieces(std::string_view text, const std::vector<std::size_t>& cuts) {
    utf8_validator v;
    std::size_t start = 0;
    for (std::size_t k = 0; k <= cuts.size(); ++k) {
        const std::size_t end = k < cuts.size() ? cuts[k] : text.size();
        if (!v.feed(text.substr(start, end - start))) return {start + v.valid_prefix(), false};
        start = end;
    }
    return {npos, v.complete()};
}

struct vector_case {
    const char* name;
    const char* hex;
    std::size_t fail_at; // npos: feed() accepts every byte
    bool complete;
};

const vector_case valid_vectors[] = {
    {"empty", "", npos, true},
    {"ASCII", "48 65 6C 6C 6F 2C 20 77 6F 72 6C 64 21", npos, true},
    {"NUL and DEL are ASCII", "00 7F", npos, true},
    {"U+0080, first two-byte", "C2 80", npos, true},
    {"U+07FF, last two-byte", "DF BF", npos, true},
    {"U+0800, first three-byte", "E0 A0 80", npos, true},
    {"U+D7FF, last before surrogates", "ED 9F BF", npos, true},
    {"U+E000, first after surrogates", "EE 80 80", npos, true},
    {"U+FFFE and U+FFFF, noncharacters are well-formed", "EF BF BE EF BF BF", npos, true},
    {"U+10000, first four-byte", "F0 90 80 80", npos, true},
    {"U+FFFFF, last of plane 15", "F3 BF BF BF", npos, true},
    {"U+100000, first of plane 16", "F4 80 80 80", npos, true},
    {"U+10FFFF, last code point", "F4 8F BF BF", npos, true},
    {"Hello-µ@ßöäüàá-UTF-8!!",
     "48 65 6C 6C 6F 2D C2 B5 40 C3 9F C3 B6 C3 A4 C3 BC C3 A0 C3 A1 2D 55 54 46 2D 38 21 21", npos,
     true},
    {"Greek kosme", "CE BA E1 BD B9 CF 83 CE BC CE B5", npos, true},
    {"mixed Latin, CJK and emoji", "63 61 66 C3 A9 20 E6 97 A5 E6 9C AC 20 F0 9F 98 80 21", npos,
     true},
    {"BOM is an ordinary code point", "EF BB BF 41", npos, true},
};

const vector_case invalid_vectors[] = {
    {"lone continuation 80", "80", 0, false},
    {"lone continuation BF", "BF", 0, false},
    {"continuation after ASCII", "41 80", 1, false},
    {"extra continuation after a complete pair", "C3 A9 80", 2, false},
    {"two-byte lead with two continuations", "DF BF BF", 2, false},
    {"C0 is never a lead: overlong C0 80", "C0 80", 0, false},
    {"C0 is never a lead: overlong slash C0 AF", "C0 AF", 0, false},
    {"C1 is never a lead: overlong C1 BF", "C1 BF", 0, false},
    {"F5 would exceed U+10FFFF", "F5 80 80 80", 0, false},
    {"F7 BF BF BF would be U+1FFFFF", "F7 BF BF BF", 0, false},
    {"F8 five-byte form", "F8 88 80 80 80", 0, false},
    {"FC six-byte form", "FC 84 80 80 80 80", 0, false},
    {"FE", "FE", 0, false},
    {"FF", "FF", 0, false},
    {"overlong three-byte E0 80 80", "E0 80 80", 1, false},
    {"overlong three-byte E0 9F BF (U+07FF)", "E0 9F BF", 1, false},
    {"overlong four-byte F0 80 80 80", "F0 80 80 80", 1, false},
    {"overlong four-byte F0 8F BF BF (U+FFFF)", "F0 8F BF BF", 1, false},
    {"surrogate ED A0 80 (U+D800)", "ED A0 80", 1, false},
    {"surrogate ED BF BF (U+DFFF)", "ED BF BF", 1, false},
    {"surrogate pair ED AF BF ED B0 80", "ED AF BF ED B0 80", 1, false},
    {"above U+10FFFF: F4 90 80 80", "F4 90 80 80", 1, false},
    {"above U+10FFFF: F4 BF BF BF", "F4 BF BF BF", 1, false},
    {"two-byte lead then ASCII", "C2 41", 1, false},
    {"two-byte lead then another lead", "C2 C2 80", 1, false},
    {"three-byte sequence cut by ASCII", "E1 80 41", 2, false},
    {"four-byte sequence cut by ASCII", "F1 80 80 41", 3, false},
    {"four-byte sequence cut by a lead", "F1 80 80 F1 80 80 80", 3, false},
    {"kosme then a surrogate", "CE BA E1 BD B9 CF 83 CE BC CE B5 ED A0 80 65 64 69 74 65 64", 12,
     false},
};

const vector_case truncated_vectors[] = {
    {"two-byte lead alone", "C2", npos, false},
    {"three-byte lead alone", "E1", npos, false},
    {"E0 A0 missing its last byte", "E0 A0", npos, false},
    {"ED 9F missing its last byte", "ED 9F", npos, false},
    {"F0 90 80 missing its last byte", "F0 90 80", npos, false},
    {"F4 8F BF missing its last byte", "F4 8F BF", npos, false},
    {"text ending in a four-byte lead", "41 42 F3", npos, false},
    {"emoji cut after two bytes", "68 69 20 F0 9F", npos, false},
};

template <std::size_t N>
std::vector<vector_case> as_vector(const vector_case (&cases)[N]) {
    return {cases, cases + N};
}

std::vector<vector_case> all_vectors() {
    std::vector<vector_case> all = as_vector(valid_vectors);
    for (const auto& c : invalid_vectors) all.push_back(c);
    for (const auto& c : truncated_vectors) all.push_back(c);
    return all;
}

void check_vector(const vector_case& c) {
    const std::string text = from_hex(c.hex);
    INFO(c.name << ": " << to_hex(text));
    const verdict w = whole(text);
    CHECK(w.fail_at == c.fail_at);
    CHECK(w.complete == c.complete);
    CHECK(is_valid_utf8(text) == c.complete);
    // The table itself is checked against the reference, so a typo in an index shows up.
    const verdict r = reference(text);
    CHECK(r.fail_at == c.fail_at);
    CHECK(r.complete == c.complete);
}

} // namespace

TEST_CASE("RFC 3629 4: valid sequences at every length boundary are accepted", "[utf8]") {
    for (const auto& c : valid_vectors) check_vector(c);
}

TEST_CASE("RFC 3629 4: ill-formed sequences of every class are rejected", "[utf8]") {
    for (const auto& c : invalid_vectors) check_vector(c);
}

TEST_CASE("RFC 3629 4: overlong two-byte form C0 80 is invalid", "[utf8]") {
    CHECK_FALSE(is_valid_utf8(from_hex("C0 80")));
    CHECK_FALSE(is_valid_utf8(from_hex("C1 BF")));
    CHECK(is_valid_utf8(from_hex("C2 80")));
}

TEST_CASE("RFC 3629 4: surrogates U+D800..U+DFFF are invalid", "[utf8]") {
    CHECK_FALSE(is_valid_utf8(from_hex("ED A0 80")));
    CHECK_FALSE(is_valid_utf8(from_hex("ED BF BF")));
    CHECK(is_valid_utf8(from_hex("ED 9F BF")));
    CHECK(is_valid_utf8(from_hex("EE 80 80")));
}

TEST_CASE("RFC 3629 4: code points above U+10FFFF (F4 90 80 80) are invalid", "[utf8]") {
    CHECK_FALSE(is_valid_utf8(from_hex("F4 90 80 80")));
    CHECK(is_valid_utf8(from_hex("F4 8F BF BF")));
}

TEST_CASE("RFC 6455 8.1: a message that ends inside a sequence is not complete", "[utf8]") {
    for (const auto& c : truncated_vectors) {
        check_vector(c);
        const std::string text = from_hex(c.hex);
        utf8_validator v;
        CHECK(v.feed(text));
        CHECK_FALSE(v.failed());
        CHECK_FALSE(v.complete());
    }
}

TEST_CASE("RFC 3629 4: every single byte is classified by the table", "[utf8]") {
    for (unsigned b = 0; b < 256; ++b) {
        INFO("byte " << b);
        utf8_validator v;
        const char ch = static_cast<char>(b);
        const bool fed = v.feed(&ch, 1);
        if (b < 0x80) {
            CHECK(fed);
            CHECK(v.complete());
        } else if (b < 0xC2 || b > 0xF4) {
            CHECK_FALSE(fed);
            CHECK(v.failed());
            CHECK(v.valid_prefix() == 0);
        } else {
            CHECK(fed);
            CHECK_FALSE(v.complete());
        }
    }
}

TEST_CASE("RFC 3629 3: every scalar value encodes to text the validator accepts", "[utf8]") {
    std::size_t rejected = 0;
    std::uint32_t first_rejected = 0;
    for (std::uint32_t cp = 0; cp <= 0x10FFFF; ++cp) {
        if (cp == 0xD800) cp = 0xE000;
        if (!is_valid_utf8(encode(cp)) && rejected++ == 0) first_rejected = cp;
    }
    INFO("first rejected code point " << first_rejected);
    CHECK(rejected == 0);
}

TEST_CASE("RFC 3629 3: the encoded surrogates are rejected at their second byte", "[utf8]") {
    for (std::uint32_t cp = 0xD800; cp <= 0xDFFF; ++cp) {
        const std::string text = encode(cp);
        INFO(to_hex(text));
        const verdict w = whole(text);
        REQUIRE(w.fail_at == 1);
    }
}

TEST_CASE("RFC 6455 8.1: the first impossible byte is where feed() fails", "[utf8]") {
    for (const auto& c : all_vectors()) {
        const std::string text = from_hex(c.hex);
        INFO(c.name << ": " << to_hex(text));
        const verdict b = byte_at_a_time(text);
        CHECK(b.fail_at == c.fail_at);
        CHECK(b.complete == c.complete);
    }
}

TEST_CASE("RFC 6455 8.1: any split into two pieces gives the whole-feed verdict", "[utf8]") {
    for (const auto& c : all_vectors()) {
        const std::string text = from_hex(c.hex);
        for (std::size_t cut = 0; cut <= text.size(); ++cut) {
            INFO(c.name << ": " << to_hex(text) << " cut at " << cut);
            const verdict p = in_pieces(text, {cut});
            CHECK(p.fail_at == c.fail_at);
            CHECK(p.complete == c.complete);
        }
    }
}

TEST_CASE("RFC 6455 8.1: a failed validator stays failed until reset", "[utf8]") {
    utf8_validator v;
    REQUIRE(v.feed(std::string_view("ab")));
    CHECK(v.valid_prefix() == 2);
    REQUIRE_FALSE(v.feed(from_hex("41 C0 41")));
    CHECK(v.failed());
    CHECK(v.valid_prefix() == 1);
    CHECK_FALSE(v.complete());

    SECTION("later valid bytes do not revive it") {
        CHECK_FALSE(v.feed(std::string_view("plain ASCII")));
        CHECK(v.valid_prefix() == 0);
        CHECK(v.failed());
        CHECK_FALSE(v.complete());
    }
    SECTION("reset starts a new message") {
        v.reset();
        CHECK_FALSE(v.failed());
        CHECK(v.complete());
        CHECK(v.feed(from_hex("C3 A9")));
        CHECK(v.complete());
    }
    SECTION("reset also forgets a partial sequence") {
        utf8_validator w;
        REQUIRE(w.feed(from_hex("E2 82")));
        w.reset();
        CHECK(w.complete());
        CHECK_FALSE(w.feed(from_hex("AC")));
    }
}

TEST_CASE("RFC 6455 5.6: empty payloads and empty pieces change nothing", "[utf8]") {
    utf8_validator v;
    CHECK(v.feed(nullptr, 0));
    CHECK(v.complete());
    CHECK(v.valid_prefix() == 0);
    REQUIRE(v.feed(from_hex("F0 9F")));
    CHECK(v.feed(std::string_view()));
    CHECK_FALSE(v.complete());
    CHECK(v.feed(from_hex("98 80")));
    CHECK(v.complete());
}

// The word-at-a-time path must hand over to the byte path at any offset and any alignment,
// and must not skip a bad byte that sits anywhere inside a word.
TEST_CASE("RFC 3629 4: invalid bytes inside long ASCII runs are found at every offset and "
          "alignment",
          "[utf8]") {
    std::vector<vector_case> cases = all_vectors();
    std::size_t mismatches = 0;
    std::string first_mismatch;
    for (const auto& c : cases) {
        const std::string seq = from_hex(c.hex);
        for (std::size_t tail : {std::size_t{0}, std::size_t{1}, std::size_t{7}, std::size_t{40}}) {
            for (std::size_t offset = 0; offset <= 32; ++offset) {
                for (std::size_t align = 0; align < 16; ++align) {
                    std::string buffer(align, 'x');
                    buffer.append(offset, 'a');
                    buffer += seq;
                    buffer.append(tail, 'z');
                    const std::string_view text(buffer.data() + align, buffer.size() - align);
                    // With ASCII after it, a truncated sequence fails at the first ASCII byte.
                    verdict expected = reference(text);
                    if (c.fail_at != npos) REQUIRE(expected.fail_at == offset + c.fail_at);
                    const verdict got = whole(text);
                    if ((got.fail_at != expected.fail_at || got.complete != expected.complete) &&
                        mismatches++ == 0) {
                        first_mismatch = std::string(c.name) + " offset " + std::to_string(offset) +
                                         " align " + std::to_string(align) + " tail " +
                                         std::to_string(tail);
                    }
                }
            }
        }
    }
    INFO(first_mismatch);
    CHECK(mismatches == 0);
}

TEST_CASE("RFC 3629 4: long ASCII and multibyte runs are valid through the fast path", "[utf8]") {
    std::string text;
    for (int i = 0; i < 1000; ++i) text.push_back(static_cast<char>(0x20 + i % 95));
    CHECK(is_valid_utf8(text));
    const std::string euro = encode(0x20AC);
    for (std::size_t at = 0; at < 64; ++at) {
        std::string mixed = text;
        mixed.insert(at, euro);
        mixed.insert(mixed.size() - at, euro);
        INFO("euro sign at " << at);
        CHECK(is_valid_utf8(mixed));
        mixed.push_back(static_cast<char>(0x80));
        CHECK(whole(mixed).fail_at == mixed.size() - 1);
    }
}

// Exhaustive over short strings: every 1- and 2-byte string, every 3-byte string whose lead
// can start a multibyte sequence, and 4-byte strings around the F0..F4 second-byte limits.
TEST_CASE("RFC 3629 4: the validator matches the reference on all short byte strings", "[utf8]") {
    std::size_t mismatches = 0;
    std::string first_mismatch;
    std::size_t checked = 0;
    auto compare = [&](const std::string& text) {
        ++checked;
        const verdict r = reference(text);
        const verdict w = whole(text);
        if ((w.fail_at != r.fail_at || w.complete != r.complete) && mismatches++ == 0)
            first_mismatch = to_hex(text);
    };
    std::string text;
    for (unsigned a = 0; a < 256; ++a) {
        text.assign(1, static_cast<char>(a));
        compare(text);
        for (unsigned b = 0; b < 256; ++b) {
            text.assign({static_cast<char>(a), static_cast<char>(b)});
            compare(text);
        }
    }
    for (unsigned a = 0xC0; a <= 0xF7; ++a) {
        for (unsigned b = 0; b < 256; ++b) {
            for (unsigned c = 0; c < 256; ++c) {
                text.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
                compare(text);
            }
        }
    }
    for (unsigned a = 0xF0; a <= 0xF5; ++a) {
        for (unsigned b = 0x7F; b <= 0xC0; ++b) {
            for (unsigned c : {0x41u, 0x80u, 0xBFu, 0xC0u}) {
                for (unsigned d = 0; d < 256; ++d) {
                    text.assign({static_cast<char>(a), static_cast<char>(b), static_cast<char>(c),
                                 static_cast<char>(d)});
                    compare(text);
                }
            }
        }
    }
    INFO("first mismatch: " << first_mismatch << " of " << checked);
    CHECK(mismatches == 0);
}

TEST_CASE("RFC 3629 4: differential test against the reference decoder on random text", "[utf8]") {
    std::mt19937 rng(20240611u);
    auto pick = [&rng](std::uint32_t lo, std::uint32_t hi) {
        return std::uniform_int_distribution<std::uint32_t>(lo, hi)(rng);
    };
    // Mostly valid pieces with a few bytes that are likely to break or truncate them, so both
    // verdicts occur often and failures land anywhere, including deep into ASCII runs.
    auto random_text = [&] {
        std::string out;
        const std::uint32_t pieces = pick(0, 12);
        for (std::uint32_t k = 0; k < pieces; ++k) {
            switch (pick(0, 9)) {
            case 0:
            case 1: out.append(pick(0, 40), static_cast<char>(pick(0x20, 0x7E))); break;
            case 2: out += encode(pick(0x80, 0x7FF)); break;
            case 3: {
                std::uint32_t cp = pick(0x800, 0xFFFF);
                if (cp >= 0xD800 && cp <= 0xDFFF) cp -= 0x800;
                out += encode(cp);
                break;
            }
            case 4: out += encode(pick(0x10000, 0x10FFFF)); break;
            case 5: {
                // A lead byte of an edge case followed by arbitrary continuation-range bytes.
                static const unsigned leads[] = {0xC0, 0xC1, 0xC2, 0xDF, 0xE0,
                                                 0xED, 0xEF, 0xF0, 0xF4, 0xF5};
                out.push_back(static_cast<char>(leads[pick(0, 9)]));
                const std::uint32_t n = pick(0, 3);
                for (std::uint32_t j = 0; j < n; ++j)
                    out.push_back(static_cast<char>(pick(0x80, 0xBF)));
                break;
            }
            case 6: out.push_back(static_cast<char>(pick(0x80, 0xF4))); break;
            case 7: out.push_back(static_cast<char>(pick(0, 0xFF))); break;
            default: {
                // A valid code point with its last byte dropped.
                std::string cp = encode(pick(0x80, 0x10FFFF));
                cp.pop_back();
                out += cp;
                break;
            }
            }
        }
        return out;
    };

    std::size_t valid = 0;
    std::size_t invalid = 0;
    std::size_t truncated = 0;
    for (int round = 0; round < 5000; ++round) {
        const std::string text = random_text();
        INFO("round " << round << ": " << to_hex(text));
        const verdict r = reference(text);
        if (r.complete)
            ++valid;
        else if (r.fail_at == npos)
            ++truncated;
        else
            ++invalid;

        const verdict w = whole(text);
        REQUIRE(w.fail_at == r.fail_at);
        REQUIRE(w.complete == r.complete);
        REQUIRE(is_valid_utf8(text) == r.complete);

        const verdict b = byte_at_a_time(text);
        REQUIRE(b.fail_at == r.fail_at);
        REQUIRE(b.complete == r.complete);

        std::vector<std::size_t> cuts;
        std::size_t at = 0;
        while (!text.empty()) {
            at += pick(0, 20);
            if (at >= text.size()) break;
            cuts.push_back(at);
        }
        const verdict p = in_pieces(text, cuts);
        REQUIRE(p.fail_at == r.fail_at);
        REQUIRE(p.complete == r.complete);
    }
    INFO(valid << " valid, " << invalid << " invalid, " << truncated << " truncated");
    CHECK(valid > 500);
    CHECK(invalid > 500);
    CHECK(truncated > 50);
}
