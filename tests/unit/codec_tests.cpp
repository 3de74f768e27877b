// Frame header codec, masking, close payloads, the random source and the error category.
#include "catch.hpp"

#include <duplex/error.hpp>
#include <duplex/protocol/close.hpp>
#include <duplex/protocol/frame.hpp>
#include <duplex/protocol/mask.hpp>
#include <duplex/protocol/random.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace duplex::protocol;
using duplex::error;

namespace {

std::vector<unsigned char> bytes(std::initializer_list<int> list) {
    std::vector<unsigned char> out;
    for (int b : list) out.push_back(static_cast<unsigned char>(b));
    return out;
}

std::vector<unsigned char> encode(const frame_header& h) {
    unsigned char buffer[max_frame_header_size];
    const std::size_t n = encode_frame_header(h, buffer);
    return {buffer, buffer + n};
}

decode_result decode(const std::vector<unsigned char>& wire, frame_header& h,
                     reserved_bits_allowed allowed = {}) {
    return decode_frame_header(wire.data(), wire.size(), h, allowed);
}

mask_key key_from_bytes(int a, int b, int c, int d) {
    const unsigned char k[4] = {static_cast<unsigned char>(a), static_cast<unsigned char>(b),
                                static_cast<unsigned char>(c), static_cast<unsigned char>(d)};
    mask_key key;
    std::memcpy(&key, k, 4);
    return key;
}

} // namespace

TEST_CASE("RFC 6455 5.7: single-frame unmasked text 'Hello' header is 81 05", "[frame]") {
    frame_header h;
    h.op = opcode::text;
    h.payload_size = 5;
    CHECK(encode(h) == bytes({0x81, 0x05}));

    frame_header d;
    const auto wire = bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f});
    const auto r = decode(wire, d);
    REQUIRE(r.status == progress::done);
    CHECK(r.size == 2);
    CHECK(d.fin);
    CHECK(d.op == opcode::text);
    CHECK_FALSE(d.masked);
    CHECK(d.payload_size == 5);
}

TEST_CASE("RFC 6455 5.7: single-frame masked text 'Hello' decodes and unmasks", "[frame][mask]") {
    auto wire = bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58});
    frame_header h;
    const auto r = decode(wire, h);
    REQUIRE(r.status == progress::done);
    REQUIRE(r.size == 6);
    CHECK(h.masked);
    CHECK(h.mask == key_from_bytes(0x37, 0xfa, 0x21, 0x3d));
    apply_mask(wire.data() + 6, 5, h.mask);
    CHECK(std::string(wire.begin() + 6, wire.end()) == "Hello");

    frame_header out = h;
    CHECK(encode(out) == bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d}));
}

TEST_CASE("RFC 6455 5.7: fragmented unmasked text headers are 01 03 then 80 02", "[frame]") {
    frame_header first;
    first.fin = false;
    first.op = opcode::text;
    first.payload_size = 3;
    CHECK(encode(first) == bytes({0x01, 0x03}));
    frame_header last;
    last.op = opcode::continuation;
    last.payload_size = 2;
    CHECK(encode(last) == bytes({0x80, 0x02}));
}

TEST_CASE("RFC 6455 5.7: ping 89 05 and masked pong 8a 85", "[frame]") {
    frame_header ping;
    ping.op = opcode::ping;
    ping.payload_size = 5;
    CHECK(encode(ping) == bytes({0x89, 0x05}));
    frame_header pong;
    pong.op = opcode::pong;
    pong.payload_size = 5;
    pong.masked = true;
    pong.mask = key_from_bytes(0x37, 0xfa, 0x21, 0x3d);
    CHECK(encode(pong) == bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d}));
}

TEST_CASE("RFC 6455 5.7: 256-byte and 64 KiB binary frames use 16- and 64-bit lengths", "[frame]") {
    frame_header h;
    h.op = opcode::binary;
    h.payload_size = 256;
    CHECK(encode(h) == bytes({0x82, 0x7E, 0x01, 0x00}));
    h.payload_size = 65536;
    CHECK(encode(h) == bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}));

    frame_header d;
    REQUIRE(decode(bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}), d).status == progress::done);
    CHECK(d.payload_size == 65536);
}

TEST_CASE("RFC 6455 5.2: lengths round-trip at every encoding boundary", "[frame]") {
    for (std::uint64_t size : {0ULL, 1ULL, 125ULL, 126ULL, 127ULL, 65535ULL, 65536ULL,
                               0xFFFFFFFFULL, 0x7FFFFFFFFFFFFFFFULL}) {
        for (bool masked : {false, true}) {
            frame_header h;
            h.op = opcode::binary;
            h.payload_size = size;
            h.masked = masked;
            h.mask = 0x01020304;
            const auto wire = encode(h);
            CHECK(wire.size() == encoded_header_size(size, masked));
            frame_header d;
            const auto r = decode(wire, d);
            REQUIRE(r.status == progress::done);
            CHECK(r.size == wire.size());
            CHECK(d.payload_size == size);
            CHECK(d.masked == masked);
            if (masked) CHECK(d.mask == h.mask);
        }
    }
}

TEST_CASE("RFC 6455 5.2: a header cut at any byte asks for more, never reads past the end",
          "[frame]") {
    frame_header h;
    h.op = opcode::binary;
    h.payload_size = 70000;
    h.masked = true;
    h.mask = 0xA1B2C3D4;
    const auto wire = encode(h);
    REQUIRE(wire.size() == 14);
    for (std::size_t cut = 0; cut < wire.size(); ++cut) {
        // A copy of exactly `cut` bytes, so a sanitizer catches any read past it.
        std::vector<unsigned char> part(wire.begin(), wire.begin() + static_cast<long>(cut));
        frame_header d;
        const auto r = decode_frame_header(part.data(), part.size(), d);
        CHECK(r.status == progress::need_more);
        CHECK(r.size > cut);
        CHECK(r.size <= 14);
    }
}

TEST_CASE("RFC 6455 5.2: a 16-bit length under 126 is not minimal and is refused", "[frame]") {
    frame_header d;
    const auto r = decode(bytes({0x82, 0x7E, 0x00, 0x7D}), d);
    CHECK(r.status == progress::failed);
    CHECK(r.error == error::non_minimal_length);
}

TEST_CASE("RFC 6455 5.2: a 64-bit length under 65536 is not minimal and is refused", "[frame]") {
    frame_header d;
    const auto r = decode(bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}), d);
    CHECK(r.status == progress::failed);
    CHECK(r.error == error::non_minimal_length);
}

TEST_CASE("RFC 6455 5.2: a 64-bit length with the most significant bit set is refused", "[frame]") {
    frame_header d;
    const auto r = decode(bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}), d);
    CHECK(r.status == progress::failed);
    CHECK(r.error == error::length_msb_set);
}

TEST_CASE("RFC 6455 5.2: reserved opcodes 3-7 and B-F are refused", "[frame]") {
    for (int op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
        frame_header d;
        const auto r = decode(bytes({0x80 | op, 0x00}), d);
        CHECK(r.status == progress::failed);
        CHECK(r.error == error::reserved_opcode);
    }
}

TEST_CASE("RFC 6455 5.2: RSV bits are refused unless an extension claims them", "[frame]") {
    for (int bit : {0x40, 0x20, 0x10}) {
        frame_header d;
        const auto wire = bytes({0x81 | bit, 0x00});
        const auto r = decode(wire, d);
        CHECK(r.status == progress::failed);
        CHECK(r.error == error::reserved_bits);
    }
    reserved_bits_allowed deflate;
    deflate.rsv1 = true;
    frame_header d;
    const auto r = decode(bytes({0xC1, 0x00}), d, deflate);
    REQUIRE(r.status == progress::done);
    CHECK(d.rsv1);
    CHECK(decode(bytes({0xA1, 0x00}), d, deflate).error == error::reserved_bits);
}

TEST_CASE("RFC 6455 5.5: a control frame with a 126-byte payload is refused", "[frame]") {
    for (int op : {0x8, 0x9, 0xA}) {
        frame_header d;
        const auto r = decode(bytes({0x80 | op, 0x7E, 0x00, 0x7E}), d);
        CHECK(r.status == progress::failed);
        CHECK(r.error == error::control_too_big);
    }
    frame_header d;
    REQUIRE(decode(bytes({0x89, 0x7D}), d).status == progress::done);
    CHECK(d.payload_size == 125);
}

TEST_CASE("RFC 6455 5.5: a fragmented control frame is refused", "[frame]") {
    for (int op : {0x8, 0x9, 0xA}) {
        frame_header d;
        const auto r = decode(bytes({op, 0x00}), d);
        CHECK(r.status == progress::failed);
        CHECK(r.error == error::control_fragmented);
    }
}

namespace {

// The byte-wise definition of RFC 6455 5.3, the reference every faster path must equal.
void mask_bytewise(unsigned char* data, std::size_t size, const unsigned char key[4],
                   std::size_t offset) {
    for (std::size_t i = 0; i < size; ++i)
        data[i] = static_cast<unsigned char>(data[i] ^ key[(offset + i) % 4]);
}

} // namespace

TEST_CASE("RFC 6455 5.3: masking matches the byte-wise definition at every length, alignment and "
          "key phase",
          "[mask]") {
    // Every length up to 130 covers each remainder the 32-, 16-, 8- and 4-byte steps leave;
    // alignments 0 to 31 start a payload at every offset within a 32-byte vector; offsets past 3
    // check that only offset mod 4 matters.
    std::mt19937 rng(6455);
    std::vector<std::size_t> sizes;
    for (std::size_t size = 0; size <= 130; ++size) sizes.push_back(size);
    for (std::size_t size : {255U, 256U, 257U, 1000U, 4099U}) sizes.push_back(size);
    std::size_t cases = 0, mismatches = 0;
    for (int k = 0; k < 3; ++k) {
        unsigned char key_bytes[4];
        for (auto& b : key_bytes) b = static_cast<unsigned char>(rng());
        if (k == 0) std::memcpy(key_bytes, "\x37\xfa\x21\x3d", 4);
        const mask_key key = key_from_bytes(key_bytes[0], key_bytes[1], key_bytes[2], key_bytes[3]);
        for (std::size_t size : sizes) {
            for (std::size_t align = 0; align < 32; ++align) {
                for (std::size_t offset : {0U, 1U, 2U, 3U, 4U, 7U, 1001U}) {
                    // Guard bytes on both sides must stay untouched.
                    std::vector<unsigned char> storage(align + size + 16);
                    for (auto& b : storage) b = static_cast<unsigned char>(rng());
                    std::vector<unsigned char> expected = storage;
                    mask_bytewise(expected.data() + align, size, key_bytes, offset);
                    const auto next = apply_mask(storage.data() + align, size, key, offset);
                    ++cases;
                    if (next != offset + size || storage != expected) {
                        ++mismatches;
                        if (mismatches <= 3) {
                            CAPTURE(size, align, offset, k, next);
                            CHECK(storage == expected);
                            CHECK(next == offset + size);
                        }
                    }
                }
            }
        }
    }
    CAPTURE(cases);
    CHECK(mismatches == 0);
}

TEST_CASE("RFC 6455 5.3: masking in pieces equals masking at once", "[mask]") {
    std::string text(1000, '\0');
    for (std::size_t i = 0; i < text.size(); ++i) text[i] = static_cast<char>(i * 7);
    std::string whole = text;
    apply_mask(whole.data(), whole.size(), 0xDEADBEEF);
    // Cuts on both sides of the 4-, 8-, 16- and 32-byte steps, and one after the other.
    for (std::size_t cut : {1U, 2U, 3U, 5U, 8U, 13U, 15U, 16U, 17U, 31U, 33U, 63U, 500U, 999U}) {
        std::string pieces = text;
        std::size_t offset = apply_mask(pieces.data(), cut, 0xDEADBEEF);
        apply_mask(pieces.data() + cut, pieces.size() - cut, 0xDEADBEEF, offset);
        CHECK(pieces == whole);
    }
    for (std::size_t step : {1U, 3U, 7U, 17U, 37U}) {
        std::string pieces = text;
        std::size_t offset = 0;
        for (std::size_t at = 0; at < pieces.size(); at += step)
            offset = apply_mask(pieces.data() + at, std::min(step, pieces.size() - at), 0xDEADBEEF,
                                offset);
        CHECK(offset == text.size());
        CHECK(pieces == whole);
    }
    std::string copied(text.size(), '\0');
    copy_masked(copied.data(), text.data(), text.size(), 0xDEADBEEF);
    CHECK(copied == whole);
}

TEST_CASE("RFC 6455 5.3: masking twice with the same key restores the payload", "[mask]") {
    std::vector<unsigned char> data(4096 + 3);
    for (std::size_t i = 0; i < data.size(); ++i) data[i] = static_cast<unsigned char>(i * 13);
    const std::vector<unsigned char> original = data;
    apply_mask(data.data() + 3, 4096, 0x01020304, 2);
    CHECK(data != original);
    apply_mask(data.data() + 3, 4096, 0x01020304, 2);
    CHECK(data == original);
}

TEST_CASE("RFC 6455 7.4: close codes valid on the wire", "[close]") {
    for (int code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000,
                     3999, 4000, 4999})
        CHECK(is_valid_wire_close_code(static_cast<std::uint16_t>(code)));
    for (int code : {0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535})
        CHECK_FALSE(is_valid_wire_close_code(static_cast<std::uint16_t>(code)));
}

TEST_CASE("RFC 6455 5.5.1: close payload parsing", "[close]") {
    close_reason r;
    SECTION("empty payload means no status code (1005)") {
        CHECK_FALSE(parse_close_payload({}, r));
        CHECK(r.code == 1005);
        CHECK(r.reason.empty());
    }
    SECTION("a 1-byte payload is an error") {
        CHECK(parse_close_payload(std::string_view("\x03", 1), r) == error::bad_close_payload);
    }
    SECTION("code and UTF-8 reason") {
        const std::string payload = "\x03\xE8"
                                    "bye \xC3\xA9";
        CHECK_FALSE(parse_close_payload(payload, r));
        CHECK(r.code == 1000);
        CHECK(r.reason == "bye \xC3\xA9");
    }
    SECTION("7.4.1: a code that may not be sent is refused") {
        CHECK(parse_close_payload(std::string_view("\x03\xED", 2), r) == error::bad_close_code);
        CHECK(parse_close_payload(std::string_view("\x03\xEE", 2), r) == error::bad_close_code);
        CHECK(parse_close_payload(std::string_view("\x03\xF7", 2), r) == error::bad_close_code);
    }
    SECTION("a reason that is not UTF-8 is refused") {
        CHECK(parse_close_payload(std::string_view("\x03\xE8\xFF", 3), r) == error::invalid_utf8);
    }
}

TEST_CASE("RFC 6455 5.5.1: building close payloads", "[close]") {
    std::string out;
    CHECK_FALSE(make_close_payload(1000, "done", out));
    CHECK(out == std::string("\x03\xE8"
                             "done"));
    CHECK_FALSE(make_close_payload(1005, {}, out));
    CHECK(out.empty());
    CHECK(make_close_payload(1005, "why", out) == error::bad_close_code);
    CHECK(make_close_payload(1006, {}, out) == error::bad_close_code);
    CHECK(make_close_payload(1000, std::string(124, 'x'), out) == error::control_payload_too_big);
    CHECK_FALSE(make_close_payload(1000, std::string(123, 'x'), out));
    CHECK(out.size() == 125);
    CHECK(make_close_payload(1000, "\xC0\xAF", out) == error::invalid_utf8);
}

TEST_CASE("RFC 6455 7.4.1: each receive error maps to its close code", "[close]") {
    CHECK(close_code_for(error::invalid_utf8) == close_code::invalid_payload);
    CHECK(close_code_for(error::message_too_big) == close_code::message_too_big);
    CHECK(close_code_for(error::frame_too_big) == close_code::message_too_big);
    CHECK(close_code_for(error::too_many_fragments) == close_code::message_too_big);
    CHECK(close_code_for(error::reserved_opcode) == close_code::protocol_error);
    CHECK(close_code_for(error::bad_close_code) == close_code::protocol_error);
    CHECK(close_code_for(error::bad_close_payload) == close_code::protocol_error);
}

TEST_CASE("RFC 8439 2.3.2: the ChaCha20 block function test vector", "[random]") {
    std::array<std::uint32_t, 16> state = {0x61707865, 0x3320646e, 0x79622d32, 0x6b206574,
                                           0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c,
                                           0x13121110, 0x17161514, 0x1b1a1918, 0x1f1e1d1c,
                                           0x00000001, 0x09000000, 0x4a000000, 0x00000000};
    std::array<std::uint32_t, 16> out{};
    duplex::protocol::detail::chacha20_block(state, out);
    const std::array<std::uint32_t, 16> expected = {0xe4e7f110, 0x15593bd1, 0x1fdd0f50, 0xc47120a3,
                                                    0xc7f4d1c7, 0x0368c033, 0x9aaa2204, 0x4e6cd4c3,
                                                    0x466482d2, 0x09aa9f07, 0x05d7c214, 0xa2028bd9,
                                                    0xd19c12b5, 0xb94e16de, 0xe883d0cb, 0x4e3c50a2};
    CHECK(out == expected);
}

TEST_CASE("random_source: a seed reproduces its stream, different seeds differ", "[random]") {
    random_source a({1, 2, 3, 4, 5, 6, 7, 8});
    random_source b({1, 2, 3, 4, 5, 6, 7, 8});
    random_source c({1, 2, 3, 4, 5, 6, 7, 9});
    std::vector<std::uint32_t> sa, sb, sc;
    for (int i = 0; i < 100; ++i) { // crosses several 64-byte blocks
        sa.push_back(a.next_u32());
        sb.push_back(b.next_u32());
        sc.push_back(c.next_u32());
    }
    CHECK(sa == sb);
    CHECK(sa != sc);

    unsigned char buf[7] = {};
    random_source d({1, 2, 3, 4, 5, 6, 7, 8});
    d.fill(buf, sizeof buf);
    std::uint32_t first;
    std::memcpy(&first, buf, 4);
    CHECK(first == sa[0]);
    CHECK(std::memcmp(buf + 4, &sa[1], 3) == 0);

    random_source os_seeded1, os_seeded2;
    CHECK(os_seeded1.next_u32() != os_seeded2.next_u32()); // 2^-32 chance of a false failure
}

TEST_CASE("duplex::error: messages and conditions", "[error]") {
    const std::error_code ec = error::message_too_big;
    CHECK(ec.category().name() == std::string("duplex"));
    CHECK(ec.message() == "message exceeds the size limit");
    CHECK(ec == duplex::condition::too_big);
    CHECK(ec != duplex::condition::protocol_violation);
    CHECK(std::error_code(error::reserved_opcode) == duplex::condition::protocol_violation);
    CHECK(std::error_code(error::invalid_utf8) == duplex::condition::invalid_payload);
    CHECK(std::error_code(error::bad_accept) == duplex::condition::handshake_failed);
    CHECK(std::error_code(error::timed_out) == duplex::condition::timed_out);
    CHECK(std::error_code(error::closed) == duplex::condition::closed_normally);
    for (int v = 1; v <= static_cast<int>(error::bad_opcode); ++v)
        CHECK(std::error_code(v, duplex::error_category()).message() != "unknown duplex error");
}
