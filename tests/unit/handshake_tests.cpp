// Tests of the opening-handshake half of the protocol layer: SHA-1, base64, the HTTP head
// parser and writers, and both sides of the RFC 6455 section 4 handshake.
//
// Every stream that goes through a parser is also fed at every split point and one byte
// at a time (feed_every_way), because the sans-I/O core must not care how bytes arrive.
#include "catch.hpp"

#include "duplex/protocol/base64.hpp"
#include "duplex/protocol/handshake.hpp"
#include "duplex/protocol/http.hpp"
#include "duplex/protocol/sha1.hpp"

#include <array>
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

using namespace duplex::protocol;
using duplex::error;

namespace {

std::string to_hex(const std::array<std::uint8_t, 20>& digest) {
    static const char digits[] = "0123456789abcdef";
    std::string out;
    for (const auto b : digest) {
        out += digits[b >> 4];
        out += digits[b & 15];
    }
    return out;
}

// Joins lines with CRLF and ends the head with an empty line.
std::string head_of(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out.append(l).append("\r\n");
    return out + "\r\n";
}

bool still_reading(const http_parser::result& r) { return r.status == progress::need_more; }
bool still_reading(const client_handshake::result& r) { return r.status == progress::need_more; }
bool still_reading(const server_handshake::result& r) { return r.status == progress::need_more; }

// Feeds `stream` whole, then split in two at every point, then one byte at a time, each
// time to a fresh machine from make(), and checks that describe() of the machine and the
// total consumed are the same every time. Returns that description.
template <class Make, class Describe>
std::string feed_every_way(std::string_view stream, Make make, Describe describe) {
    auto run = [&](const std::vector<std::string_view>& pieces) {
        auto m = make();
        std::size_t consumed = 0;
        for (const auto piece : pieces) {
            const auto r = m.feed(piece);
            consumed += r.consumed;
            if (!still_reading(r)) break;
            REQUIRE(r.consumed == piece.size());
        }
        return describe(m) + "\nconsumed=" + std::to_string(consumed);
    };
    const std::string whole = run({stream});
    for (std::size_t cut = 0; cut <= stream.size(); ++cut) {
        const std::string split = run({stream.substr(0, cut), stream.substr(cut)});
        if (split != whole) {
            INFO("split at " << cut);
            CHECK(split == whole);
            return whole;
        }
    }
    std::vector<std::string_view> bytes;
    for (std::size_t i = 0; i < stream.size(); ++i) bytes.push_back(stream.substr(i, 1));
    CHECK(run(bytes) == whole);
    return whole;
}

std::string describe(const http_parser& p) {
    std::ostringstream s;
    s << static_cast<int>(p.status()) << ' ' << p.error().message();
    if (p.status() == progress::done) {
        const http_head& h = p.head();
        s << '|' << h.method() << '|' << h.target() << '|' << h.version_major() << '.'
          << h.version_minor() << '|' << h.status() << '|' << h.reason();
        for (const auto& f : h.fields()) s << '|' << f.name << '=' << f.value;
        s << '|' << h.raw();
    }
    return s.str();
}

// Parses `stream` every way; returns a parser fed the whole stream, and its consumed count.
http_parser parse(http_parser::kind k, std::string_view stream, http_limits limits = {},
                  std::size_t* consumed = nullptr) {
    feed_every_way(
        stream, [&] { return http_parser(k, limits); },
        [](const http_parser& p) { return describe(p); });
    http_parser p(k, limits);
    const auto r = p.feed(stream);
    if (consumed) *consumed = r.consumed;
    return p;
}

http_parser parse_request(std::string_view stream, http_limits limits = {}) {
    return parse(http_parser::kind::request, stream, limits);
}

http_parser parse_response(std::string_view stream, http_limits limits = {}) {
    return parse(http_parser::kind::response, stream, limits);
}

std::error_code request_error(std::string_view stream) { return parse_request(stream).error(); }
std::error_code response_error(std::string_view stream) { return parse_response(stream).error(); }

// RFC 6455 section 1.3 (the same request as in 1.2).
const std::vector<std::string> sample_request_lines = {
    "GET /chat HTTP/1.1",
    "Host: server.example.com",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Origin: http://example.com",
    "Sec-WebSocket-Protocol: chat, superchat",
    "Sec-WebSocket-Version: 13",
};

const std::string sample_request = head_of(sample_request_lines);

const std::string sample_response = "HTTP/1.1 101 Switching Protocols\r\n"
                                    "Upgrade: websocket\r\n"
                                    "Connection: Upgrade\r\n"
                                    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                                    "Sec-WebSocket-Protocol: chat\r\n"
                                    "\r\n";

// "the sample nonce" is the 16 bytes whose base64 is the RFC's sample key.
std::array<std::uint8_t, 16> sample_nonce() {
    const std::string_view text = "the sample nonce";
    std::array<std::uint8_t, 16> n{};
    for (std::size_t i = 0; i != n.size(); ++i) n[i] = static_cast<std::uint8_t>(text[i]);
    return n;
}

// `lines` as a head, with the line starting with `prefix` (case-sensitive) replaced by
// `line`, or removed when `line` is empty; `line` is appended when no line starts with
// `prefix`.
std::string head_replacing(const std::vector<std::string>& original, std::string_view prefix,
                           const std::string& line) {
    std::vector<std::string> lines;
    bool replaced = false;
    for (const auto& l : original) {
        if (std::string_view(l).substr(0, prefix.size()) == prefix) {
            replaced = true;
            if (!line.empty()) lines.push_back(line);
        } else {
            lines.push_back(l);
        }
    }
    if (!replaced && !line.empty()) lines.push_back(line);
    return head_of(lines);
}

std::string sample_with(std::string_view prefix, const std::string& line) {
    return head_replacing(sample_request_lines, prefix, line);
}

std::string describe(server_handshake& s) {
    std::ostringstream o;
    o << static_cast<int>(s.status()) << ' ' << s.error().message() << ' ' << s.is_upgrade() << '\n'
      << s.refusal();
    if (s.status() == progress::done) {
        const auto& u = s.upgrade();
        o << u.target << '|' << u.path << '|' << u.query << '|' << u.host << '|' << u.origin << '|'
          << u.key << '|';
        for (const auto p : u.subprotocols) o << p << ',';
        o << '|' << format_extensions(u.extensions) << '\n' << s.accept();
    }
    return o.str();
}

// Runs a server handshake on `stream` every way; returns one fed the whole stream.
server_handshake serve(std::string_view stream, const server_handshake::options& opts = {},
                       std::size_t* consumed = nullptr) {
    feed_every_way(
        stream, [&] { return server_handshake(opts); },
        [](server_handshake& s) { return describe(s); });
    server_handshake s(opts);
    const auto r = s.feed(stream);
    if (consumed) *consumed = r.consumed;
    return s;
}

std::error_code server_error(std::string_view stream) { return serve(stream).error(); }

std::string describe(const client_handshake& c) {
    std::ostringstream o;
    o << static_cast<int>(c.status()) << ' ' << c.error().message() << '|' << c.subprotocol() << '|'
      << format_extensions(c.extensions());
    if (c.status() != progress::need_more) o << '|' << c.response().raw();
    return o.str();
}

client_options sample_client_options() {
    client_options o;
    o.host = "server.example.com";
    o.target = "/chat";
    o.origin = "http://example.com";
    o.subprotocols = {"chat", "superchat"};
    return o;
}

// Runs a client handshake (sample options unless given) on `response` every way.
client_handshake connect(std::string_view response,
                         const client_options& opts = sample_client_options(),
                         std::size_t* consumed = nullptr) {
    feed_every_way(
        response, [&] { return client_handshake(opts, sample_nonce()); },
        [](const client_handshake& c) { return describe(c); });
    client_handshake c(opts, sample_nonce());
    const auto r = c.feed(response);
    if (consumed) *consumed = r.consumed;
    return c;
}

const std::vector<std::string> minimal_response_lines = {
    "HTTP/1.1 101 Switching Protocols",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
};

// A 101 response for the sample key, with extra header lines.
std::string response_with(const std::vector<std::string>& extra) {
    std::vector<std::string> lines = minimal_response_lines;
    lines.insert(lines.end(), extra.begin(), extra.end());
    return head_of(lines);
}

// The minimal 101 response with the line starting with `prefix` replaced or removed.
std::string response_replacing(std::string_view prefix, const std::string& line) {
    return head_replacing(minimal_response_lines, prefix, line);
}

std::error_code client_error(std::string_view response,
                             const client_options& opts = sample_client_options()) {
    return connect(response, opts).error();
}

// A masked client text frame "Hello" (RFC 6455 section 5.7), to follow a head.
const std::string hello_frame("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);

} // namespace

// ===================================================================================
// SHA-1 (RFC 3174)
// ===================================================================================

TEST_CASE("RFC 3174 7.3: SHA-1 test vectors TEST1 to TEST4") {
    CHECK(to_hex(sha1("abc")) == "a9993e364706816aba3e25717850c26c9cd0d89d");
    CHECK(to_hex(sha1("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
          "84983e441c3bd26ebaae4aa1f95129e5e54670f1");

    sha1_hasher million;
    const std::string thousand(1000, 'a');
    for (int i = 0; i != 1000; ++i) million.update(thousand);
    CHECK(to_hex(million.finish()) == "34aa973cd4c4daa4f61eeb2bdbad27316534016f");

    // TEST4: "01234567" eight times (64 bytes), repeated 10 times.
    sha1_hasher test4;
    for (int i = 0; i != 10; ++i) {
        test4.update("0123456701234567012345670123456701234567012345670123456701234567");
    }
    CHECK(to_hex(test4.finish()) == "dea356a2cddd90c7a7ecedc5ebb563934f460452");
}

TEST_CASE("RFC 3174 4: SHA-1 padding at every block boundary") {
    // Values from an independent implementation (coreutils sha1sum).
    const std::vector<std::pair<std::size_t, std::string>> vectors = {
        {0, "da39a3ee5e6b4b0d3255bfef95601890afd80709"},
        {55, "c1c8bbdc22796e28c0e15163d20899b65621d65a"},
        {56, "c2db330f6083854c99d4b5bfb6e8f29f201be699"},
        {63, "03f09f5b158a7a8cdad920bddc29b81c18a551f5"},
        {64, "0098ba824b5c16427bd7a1122a5a442a25ec644d"},
        {65, "11655326c708d70319be2610e8a57d9a5b959d3b"},
        {119, "ee971065aaa017e0632a8ca6c77bb3bf8b1dfc56"},
        {120, "f34c1488385346a55709ba056ddd08280dd4c6d6"},
    };
    for (const auto& [n, expected] : vectors) {
        INFO(n << " bytes");
        CHECK(to_hex(sha1(std::string(n, 'a'))) == expected);
    }
}

TEST_CASE("RFC 3174: incremental SHA-1 equals one-shot SHA-1 at every split, and reuses") {
    const std::string msg = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
                            "0123456701234567012345670123456701234567012345670123456701234567";
    const auto expected = sha1(msg);
    sha1_hasher h;
    for (std::size_t cut = 0; cut <= msg.size(); ++cut) {
        h.update(std::string_view(msg).substr(0, cut));
        h.update(std::string_view(msg).substr(cut));
        REQUIRE(h.finish() == expected); // finish() also resets for the next round
    }
    for (const char c : msg) h.update(std::string_view(&c, 1));
    CHECK(h.finish() == expected);
}

// ===================================================================================
// base64 (RFC 4648)
// ===================================================================================

TEST_CASE("RFC 4648 10: base64 test vectors encode and decode") {
    const std::vector<std::pair<std::string, std::string>> vectors = {
        {"", ""},
        {"f", "Zg=="},
        {"fo", "Zm8="},
        {"foo", "Zm9v"},
        {"foob", "Zm9vYg=="},
        {"fooba", "Zm9vYmE="},
        {"foobar", "Zm9vYmFy"},
    };
    for (const auto& [plain, encoded] : vectors) {
        INFO(plain);
        CHECK(base64_encode(plain) == encoded);
        std::string out = "junk";
        CHECK(base64_decode(encoded, out));
        CHECK(out == plain);
        CHECK(base64_decoded_size(encoded) == plain.size());
        CHECK(base64_encoded_size(plain.size()) == encoded.size());
    }
}

TEST_CASE("RFC 4648 4: every byte value round-trips through base64") {
    std::string all;
    for (int i = 0; i != 256; ++i) all += static_cast<char>(i);
    for (std::size_t n = 0; n <= all.size(); n += 17) {
        std::string out;
        REQUIRE(base64_decode(base64_encode(all.substr(0, n)), out));
        CHECK(out == all.substr(0, n));
    }
}

TEST_CASE("RFC 4648 3.3, 3.5: strict base64 decoding rejects non-canonical input") {
    const std::string bad = GENERATE(as<std::string>{},
                                     "Zg",        // missing padding (3.2)
                                     "Zg=",       // short padding
                                     "Zm9vY",     // length not a multiple of 4
                                     "Zg==Zg==",  // padding in the middle
                                     "Zm=v",      // padding before data
                                     "Z===",      // too much padding
                                     "====",      // nothing but padding
                                     "Zm9v Yg==", // whitespace (3.3)
                                     "Zm9vYg==\n", "Zm9v\r\nYg==",
                                     "Zm9v!A==", // outside the alphabet
                                     "Zm9-",     // base64url alphabet (section 5)
                                     "Zm9_",
                                     "Zh==", // non-zero bits under padding (3.5)
                                     "Zm9=");
    INFO(bad);
    std::string out = "junk";
    CHECK_FALSE(base64_decode(bad, out));
    CHECK(out.empty());
}

TEST_CASE("RFC 4648 3.3: a NUL byte inside base64 is rejected") {
    std::string out;
    CHECK_FALSE(base64_decode(std::string("Zm9v\0Yg=", 8), out));
}

// ===================================================================================
// HTTP head parsing (RFC 7230 section 3)
// ===================================================================================

TEST_CASE("RFC 7230 3.1.1: a request line is method SP request-target SP HTTP-version") {
    const auto p = parse_request(sample_request);
    REQUIRE(p.status() == progress::done);
    const http_head& h = p.head();
    CHECK(h.is_request());
    CHECK(h.method() == "GET");
    CHECK(h.target() == "/chat");
    CHECK(h.version_major() == 1);
    CHECK(h.version_minor() == 1);
    CHECK(h.status() == 0);
    CHECK(h.fields().size() == 7);
    CHECK(h.raw() == sample_request);

    const auto other = parse_request("OPTIONS * HTTP/1.0\r\n\r\n");
    REQUIRE(other.status() == progress::done);
    CHECK(other.head().method() == "OPTIONS");
    CHECK(other.head().target() == "*");
    CHECK(other.head().version_minor() == 0);
    CHECK(other.head().fields().empty());
}

TEST_CASE("RFC 7230 3.1.1: a malformed request line is refused with bad_request_line") {
    const std::string line = GENERATE(as<std::string>{},
                                      "",                           // empty first line
                                      "GET  /chat HTTP/1.1",        // two spaces
                                      "GET /chat  HTTP/1.1",        //
                                      "GET /chat HTTP/1.1 ",        // trailing space
                                      " GET /chat HTTP/1.1",        // leading space
                                      "GET\t/chat HTTP/1.1",        // HTAB is not SP
                                      "GET /chat",                  // no version
                                      "GET",                        //
                                      "GET /chat http/1.1",         // HTTP-name is case-sensitive
                                      "GET /chat HTTP/1.10",        // one digit each
                                      "GET /chat HTTP/11",          //
                                      "GET /chat HTTP/1.x",         //
                                      "GET /chat HTTP/1.1x",        //
                                      "G(T /chat HTTP/1.1",         // method is a token
                                      "GET /ch\x7f HTTP/1.1",       // DEL in the target
                                      "GET /caf\xc3\xa9 HTTP/1.1"); // non-ASCII target
    INFO(line);
    CHECK(request_error(line + "\r\nHost: a\r\n\r\n") == error::bad_request_line);
}

TEST_CASE("RFC 7230 3.1.1: a NUL in the request line is refused") {
    CHECK(request_error(std::string("GET /a\0b HTTP/1.1\r\n\r\n", 22)) == error::bad_request_line);
}

TEST_CASE("RFC 7230 3.1.2: a status line is HTTP-version SP 3DIGIT SP reason-phrase") {
    const auto p = parse_response(sample_response);
    REQUIRE(p.status() == progress::done);
    const http_head& h = p.head();
    CHECK_FALSE(h.is_request());
    CHECK(h.status() == 101);
    CHECK(h.reason() == "Switching Protocols");
    CHECK(h.method().empty());
    CHECK(h.target().empty());

    // The reason phrase may be empty, may contain obs-text.
    const auto empty_reason = parse_response("HTTP/1.1 404 \r\n\r\n");
    REQUIRE(empty_reason.status() == progress::done);
    CHECK(empty_reason.head().status() == 404);
    CHECK(empty_reason.head().reason().empty());

    const auto latin = parse_response("HTTP/1.1 200 D\xe9j\xe0 vu\r\n\r\n");
    REQUIRE(latin.status() == progress::done);
    CHECK(latin.head().reason() == "D\xe9j\xe0 vu");
}

TEST_CASE("RFC 7230 3.1.2: a status line without SP reason is accepted as an empty reason") {
    // Documented leniency: some servers omit the reason and its separator.
    const auto p = parse_response("HTTP/1.1 101\r\n\r\n");
    REQUIRE(p.status() == progress::done);
    CHECK(p.head().status() == 101);
    CHECK(p.head().reason().empty());
}

TEST_CASE("RFC 7230 3.1.2: a malformed status line is refused with bad_status_line") {
    const std::string line = GENERATE(as<std::string>{},
                                      "",                    // empty first line
                                      "HTTP/1.1 10 OK",      // two digits
                                      "HTTP/1.1 1010 OK",    // four digits
                                      "HTTP/1.1 1a1 OK",     //
                                      "HTTP/1.1 099 OK",     // not a status class
                                      "HTTP/1.1  101 OK",    // two spaces
                                      "HTTP/1.1\t101 OK",    //
                                      "HTTP/1.1 101\tOK",    //
                                      "HTTP/1.1101 OK",      //
                                      "http/1.1 101 OK",     // case-sensitive
                                      "ICY 200 OK",          // not HTTP
                                      "HTTP/1.1 101 OK\x01", // control character
                                      "HTTP/1.1 101 OK\x7f");
    INFO(line);
    CHECK(response_error(line + "\r\n\r\n") == error::bad_status_line);
}

TEST_CASE("RFC 7230 3: a bare LF ending a line is refused with bad_line_ending") {
    CHECK(request_error("GET / HTTP/1.1\nHost: a\r\n\r\n") == error::bad_line_ending);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: a\n\r\n") == error::bad_line_ending);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: a\r\n\n") == error::bad_line_ending);
    CHECK(request_error("GET / HTTP/1.1\n\n") == error::bad_line_ending);
    CHECK(response_error("HTTP/1.1 101 OK\r\nUpgrade: websocket\n\r\n") == error::bad_line_ending);
}

TEST_CASE("RFC 7230 3.5: a bare CR is refused with bad_line_ending") {
    CHECK(request_error("GET / HTTP/1.1\rHost: a\r\n\r\n") == error::bad_line_ending);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n") == error::bad_line_ending);
    CHECK(request_error("GET / HTTP/1.1\r\r\n\r\n") == error::bad_line_ending);
    CHECK(request_error("GET / HTTP/1.1\r\nHost: a\r\n\r\r") == error::bad_line_ending);
}

TEST_CASE("RFC 7230 3.2: header fields are token \":\" OWS value OWS") {
    const auto p = parse_request("GET / HTTP/1.1\r\n"
                                 "Host:a\r\n"
                                 "X-Spaced:   b  c \t\r\n"
                                 "X-Empty:\r\n"
                                 "X-Blank: \t \r\n"
                                 "X-Tab:\tin\tside\r\n"
                                 "X-Obs-Text: caf\xc3\xa9\r\n"
                                 "!#$%&'*+-.^_`|~09az: token chars\r\n"
                                 "\r\n");
    REQUIRE(p.status() == progress::done);
    const auto& f = p.head().fields();
    REQUIRE(f.size() == 7);
    CHECK(f[0].name == "Host");
    CHECK(f[0].value == "a");
    CHECK(f[1].value == "b  c");
    CHECK(f[2].value.empty());
    CHECK(f[3].value.empty());
    CHECK(f[4].value == "in\tside");
    CHECK(f[5].value == "caf\xc3\xa9");
    CHECK(f[6].name == "!#$%&'*+-.^_`|~09az");
}

TEST_CASE("RFC 7230 3.2.4: whitespace before the colon is refused with bad_header") {
    CHECK(request_error("GET / HTTP/1.1\r\nHost : a\r\n\r\n") == error::bad_header);
    CHECK(request_error("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n") == error::bad_header);
}

TEST_CASE("RFC 7230 3.2: a header line that is not token \":\" value is refused") {
    const std::string line = GENERATE(as<std::string>{},
                                      "Host a",         // no colon
                                      ": a",            // empty name
                                      "Ho st: a",       // space in the name
                                      "Ho(st): a",      // separator in the name
                                      "H\xc3\xb3st: a", // non-ASCII name
                                      "Host: a\x01"
                                      "b",           // control in the value
                                      "Host: a\x7f", // DEL in the value
                                      "Host: \x1b[31m");
    INFO(line);
    CHECK(request_error("GET / HTTP/1.1\r\n" + line + "\r\n\r\n") == error::bad_header);
}

TEST_CASE("RFC 7230 3.2: a NUL in a header name or value is refused with bad_header") {
    CHECK(request_error(std::string("GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n", 28)) ==
          error::bad_header);
    CHECK(request_error(std::string("GET / HTTP/1.1\r\nHo\0st: ab\r\n\r\n", 29)) ==
          error::bad_header);
}

TEST_CASE("RFC 7230 3.2.4: obs-fold (a line starting with SP or HTAB) is refused") {
    CHECK(request_error("GET / HTTP/1.1\r\nX-A: b\r\n c\r\n\r\n") == error::obs_fold);
    CHECK(request_error("GET / HTTP/1.1\r\nX-A: b\r\n\tc\r\n\r\n") == error::obs_fold);
    CHECK(response_error("HTTP/1.1 101 OK\r\nX-A: b\r\n  c\r\n\r\n") == error::obs_fold);
}

TEST_CASE("RFC 7230 3.2.2: repeated header fields are kept in order") {
    const auto p = parse_request("GET / HTTP/1.1\r\n"
                                 "X-Rep: 1\r\n"
                                 "Host: a\r\n"
                                 "x-rep: 2\r\n"
                                 "X-REP: 3\r\n"
                                 "\r\n");
    REQUIRE(p.status() == progress::done);
    const http_head& h = p.head();
    REQUIRE(h.fields().size() == 4);
    CHECK(h.fields()[0].value == "1");
    CHECK(h.fields()[2].name == "x-rep");
    CHECK(h.fields()[3].value == "3");
    CHECK(h.count("X-Rep") == 3);
    CHECK(h.count("host") == 1);
    CHECK(h.count("missing") == 0);
    CHECK(h.field("x-REP") == std::optional<std::string_view>("1")); // first, any case
    CHECK_FALSE(h.field("missing").has_value());
    CHECK_FALSE(h.field("X-Re").has_value());
}

TEST_CASE("RFC 7230 7: has_token reads comma lists across fields, ignoring case and OWS") {
    const auto p = parse_request("GET / HTTP/1.1\r\n"
                                 "Connection: keep-alive\r\n"
                                 "Connection: , ,\t UPGRADE \t,\r\n"
                                 "Upgrade: websocketx, xwebsocket, web socket\r\n"
                                 "X-Empty:\r\n"
                                 "\r\n");
    REQUIRE(p.status() == progress::done);
    const http_head& h = p.head();
    CHECK(h.has_token("connection", "upgrade"));
    CHECK(h.has_token("Connection", "Keep-Alive"));
    CHECK_FALSE(h.has_token("Connection", "close"));
    CHECK_FALSE(h.has_token("Upgrade", "websocket")); // no substring matches
    CHECK(h.has_token("Upgrade", "web socket"));      // an element, not a token split
    CHECK_FALSE(h.has_token("X-Empty", ""));
    CHECK_FALSE(h.has_token("Missing", "x"));
    CHECK(h.tokens("connection") == std::vector<std::string_view>{"keep-alive", "UPGRADE"});
    CHECK(h.tokens("X-Empty").empty());
    CHECK(h.tokens("Missing").empty());
}

TEST_CASE("RFC 3986 3.3, 3.4: path, query and query parameters of the request target") {
    const auto p = parse_request("GET /chat/room%201?token=a%2Bb&flag&x=1&x=2&empty= "
                                 "HTTP/1.1\r\n\r\n");
    REQUIRE(p.status() == progress::done);
    const http_head& h = p.head();
    CHECK(h.path() == "/chat/room%201");
    CHECK(h.query() == "token=a%2Bb&flag&x=1&x=2&empty=");
    CHECK(h.query_param("token") == std::optional<std::string_view>("a%2Bb"));
    CHECK(h.query_param("flag") == std::optional<std::string_view>(""));
    CHECK(h.query_param("x") == std::optional<std::string_view>("1"));
    CHECK(h.query_param("empty") == std::optional<std::string_view>(""));
    CHECK_FALSE(h.query_param("tok").has_value());
    CHECK_FALSE(h.query_param("missing").has_value());

    const auto plain = parse_request("GET /only HTTP/1.1\r\n\r\n");
    CHECK(plain.head().path() == "/only");
    CHECK(plain.head().query().empty());
    CHECK_FALSE(plain.head().query_param("a").has_value());

    const auto absolute = parse_request("GET http://example.com:80/a/b?q=1 HTTP/1.1\r\n\r\n");
    CHECK(absolute.head().path() == "/a/b"); // RFC 7230 5.3.2 absolute-form
    CHECK(absolute.head().query() == "q=1");
    const auto authority_only = parse_request("GET ws://example.com HTTP/1.1\r\n\r\n");
    CHECK(authority_only.head().path() == "/");
}

TEST_CASE("RFC 3986 2.1: percent_decode decodes strictly") {
    std::string out;
    CHECK(percent_decode("a%2Bb%20c%2fd", out));
    CHECK(out == "a+b c/d");
    CHECK(percent_decode("a+b", out));
    CHECK(out == "a+b");
    CHECK(percent_decode("a+b", out, true));
    CHECK(out == "a b");
    CHECK(percent_decode("%00", out));
    CHECK(out == std::string(1, '\0'));
    for (const char* bad : {"%", "%2", "a%g0", "%%20", "ab%2"}) {
        INFO(bad);
        out = "junk";
        CHECK_FALSE(percent_decode(bad, out));
        CHECK(out.empty());
    }
}

TEST_CASE("RFC 6265 5.4: cookie() reads name=value pairs of the Cookie header") {
    const auto p = parse_request("GET / HTTP/1.1\r\n"
                                 "Cookie: session=abc123; theme=dark;lang = en\r\n"
                                 "Cookie: quoted=\"q v\"; Session=other\r\n"
                                 "\r\n");
    REQUIRE(p.status() == progress::done);
    const http_head& h = p.head();
    CHECK(h.cookie("session") == std::optional<std::string_view>("abc123"));
    CHECK(h.cookie("theme") == std::optional<std::string_view>("dark"));
    CHECK(h.cookie("lang") == std::optional<std::string_view>("en"));
    CHECK(h.cookie("quoted") == std::optional<std::string_view>("\"q v\""));
    CHECK(h.cookie("Session") == std::optional<std::string_view>("other")); // case-sensitive
    CHECK_FALSE(h.cookie("sess").has_value());
    CHECK_FALSE(h.cookie("missing").has_value());
}

TEST_CASE("RFC 7230 3: bytes after the head are not consumed") {
    std::size_t consumed = 0;
    const std::string stream = sample_request + hello_frame;
    const auto p = parse(http_parser::kind::request, stream, {}, &consumed);
    REQUIRE(p.status() == progress::done);
    CHECK(consumed == sample_request.size());
    CHECK(stream.substr(consumed) == hello_frame);
    CHECK(p.head().raw() == sample_request);
}

TEST_CASE("RFC 7230 3: feeding after the head is complete consumes nothing") {
    http_parser p(http_parser::kind::request);
    auto r = p.feed(sample_request);
    REQUIRE(r.status == progress::done);
    r = p.feed(hello_frame);
    CHECK(r.status == progress::done);
    CHECK(r.consumed == 0);

    http_parser bad(http_parser::kind::request);
    r = bad.feed("GET / HTTP/1.1\n");
    REQUIRE(r.status == progress::failed);
    r = bad.feed("\r\n\r\n");
    CHECK(r.status == progress::failed);
    CHECK(r.consumed == 0);
    CHECK(r.error == error::bad_line_ending);
}

TEST_CASE("RFC 7230 3: reset() parses a second head with the same parser") {
    http_parser p(http_parser::kind::request);
    REQUIRE(p.feed("GET / HTTP/1.1\nX").status == progress::failed);
    p.reset();
    REQUIRE(p.feed(sample_request).status == progress::done);
    CHECK(p.head().target() == "/chat");
    p.reset();
    CHECK(p.status() == progress::need_more);
    CHECK(p.head().fields().empty());
    REQUIRE(p.feed("GET /again HTTP/1.1\r\nA: b\r\n\r\n").status == progress::done);
    CHECK(p.head().target() == "/again");
    CHECK(p.head().fields().size() == 1);
}

TEST_CASE("RFC 7230 3: a parsed head can be taken, copied and moved, views stay valid") {
    http_head copy;
    http_head moved;
    {
        http_parser p(http_parser::kind::request);
        REQUIRE(p.feed(sample_request).status == progress::done);
        http_head taken = p.take_head();
        copy = taken; // copy assignment
        const http_head copy2(taken);
        moved = std::move(taken);
        CHECK(copy2.field("Host") == std::optional<std::string_view>("server.example.com"));
        CHECK(copy2.target().data() != moved.target().data());
    }
    for (const http_head* h : {&copy, &moved}) {
        CHECK(h->method() == "GET");
        CHECK(h->target() == "/chat");
        CHECK(h->field("Origin") == std::optional<std::string_view>("http://example.com"));
        CHECK(h->fields().back().value == "13");
        CHECK(h->raw() == sample_request);
        // Every view points into the head's own bytes.
        const auto raw = h->raw();
        for (const auto& f : h->fields()) {
            CHECK(f.name.data() >= raw.data());
            CHECK(f.value.data() + f.value.size() <= raw.data() + raw.size());
        }
    }
}

TEST_CASE("RFC 6455 10.4: a head of exactly max_head_size bytes is accepted, one more refused") {
    const http_limits limits{64, 100};
    std::string head = "GET / HTTP/1.1\r\nX-Pad: \r\n\r\n";
    head.insert(head.size() - 4, 64 - head.size(), 'p');
    REQUIRE(head.size() == 64);
    auto p = parse_request(head, limits);
    CHECK(p.status() == progress::done);

    std::string over = head;
    over.insert(over.size() - 4, "p");
    std::size_t consumed = 0;
    p = parse(http_parser::kind::request, over, limits, &consumed);
    CHECK(p.error() == error::head_too_large);
    CHECK(consumed == 64); // the 65th byte was never buffered
    CHECK(p.error() == duplex::condition::too_big);
}

TEST_CASE("RFC 6455 10.4: a head that never ends is refused once it passes the limit") {
    const http_limits limits{256, 100};
    const std::string endless = "GET / HTTP/1.1\r\nX-Endless: " + std::string(1 << 20, 'x');
    http_parser p(http_parser::kind::request, limits);
    const auto r = p.feed(endless);
    CHECK(r.status == progress::failed);
    CHECK(r.error == error::head_too_large);
    CHECK(r.consumed == 256);
    CHECK(p.head().raw().size() <= 256);

    // The same, arriving in small pieces: refused at byte 257, nothing buffered beyond.
    http_parser q(http_parser::kind::request, limits);
    std::size_t total = 0;
    http_parser::result last{progress::need_more, 0, {}};
    for (std::size_t i = 0; i < endless.size() && last.status == progress::need_more; i += 7) {
        last = q.feed(std::string_view(endless).substr(i, 7));
        total += last.consumed;
    }
    CHECK(last.error == error::head_too_large);
    CHECK(total == 256);

    // Lines that end but a head that does not: the limit still holds.
    std::string many_lines = "GET / HTTP/1.1\r\n";
    while (many_lines.size() < 1000) many_lines += "A: b\r\n";
    CHECK(parse_request(many_lines, {256, 1000}).error() == error::head_too_large);
}

TEST_CASE("RFC 6455 10.4: exactly max_headers fields are accepted, one more refused") {
    std::string head = "GET / HTTP/1.1\r\n";
    for (int i = 0; i != 5; ++i) head += "X-" + std::to_string(i) + ": v\r\n";
    CHECK(parse_request(head + "\r\n", {8192, 5}).status() == progress::done);
    const auto p = parse_request(head + "X-5: v\r\n\r\n", {8192, 5});
    CHECK(p.error() == error::too_many_headers);
    CHECK(p.error() == duplex::condition::too_big);
    CHECK(parse_request(head + "\r\n", {8192, 0}).error() == error::too_many_headers);
    CHECK(parse_request("GET / HTTP/1.1\r\n\r\n", {8192, 0}).status() == progress::done);
}

TEST_CASE("RFC 7230 3: the default limits accept a head of 8192 bytes fed byte by byte") {
    std::string head = "GET / HTTP/1.1\r\nX-Pad: \r\n\r\n";
    head.insert(head.size() - 4, 8192 - head.size(), 'p');
    http_parser p(http_parser::kind::request);
    http_parser::result r{progress::need_more, 0, {}};
    for (std::size_t i = 0; i < head.size(); ++i) r = p.feed(std::string_view(head).substr(i, 1));
    CHECK(r.status == progress::done);
    head.insert(20, "p");
    http_parser q(http_parser::kind::request);
    CHECK(q.feed(head).error == error::head_too_large);
}

TEST_CASE("RFC 6455 10.4: parsing is linear: a 4 MiB head fed one byte at a time") {
    // A parser that rescanned its buffer on every feed would need ~10^13 steps here.
    std::string head = "GET / HTTP/1.1\r\n";
    const std::string line = "X-Field: " + std::string(100, 'v') + "\r\n";
    while (head.size() < (4u << 20)) head += line;
    head += "\r\n";
    http_parser p(http_parser::kind::request, {head.size(), head.size()});
    http_parser::result r{progress::need_more, 0, {}};
    for (std::size_t i = 0; i < head.size(); ++i) r = p.feed(std::string_view(head).substr(i, 1));
    REQUIRE(r.status == progress::done);
    CHECK(p.head().fields().size() == (head.size() - 18) / line.size());
    CHECK(p.head().has_token("x-field", std::string(100, 'v')));
}

// ===================================================================================
// HTTP head writing
// ===================================================================================

TEST_CASE("RFC 7230 3.1: writers produce request, status and header lines") {
    std::string out;
    CHECK(write_request_line(out, "GET", "/chat?x=1"));
    CHECK(write_field(out, "Host", "example.com"));
    CHECK(write_field(out, "X-Empty", ""));
    CHECK(write_field(out, "X-Tab", "a\tb"));
    write_head_end(out);
    CHECK(out == "GET /chat?x=1 HTTP/1.1\r\nHost: example.com\r\nX-Empty: \r\nX-Tab: a\tb\r\n\r\n");
    const auto p = parse_request(out);
    CHECK(p.status() == progress::done);

    out.clear();
    CHECK(write_status_line(out, 101, reason_phrase(101)));
    CHECK(write_status_line(out, 599, ""));
    CHECK(out == "HTTP/1.1 101 Switching Protocols\r\nHTTP/1.1 599 \r\n");
}

TEST_CASE("RFC 7230 3.2: header injection is impossible: CR, LF, NUL and controls refused") {
    const std::string value = GENERATE(as<std::string>{}, "a\r\nX-Injected: 1", "a\nb", "a\rb",
                                       "\r\n", "a\x01", "a\x7f", "\x1b[0m");
    std::string out = "keep";
    CHECK_FALSE(write_field(out, "X-Value", value));
    CHECK_FALSE(write_field(out, "X-Bad\r\nX-Injected", "v"));
    CHECK_FALSE(write_status_line(out, 200, value));
    CHECK_FALSE(write_request_line(out, "GET", "/" + value));
    CHECK(out == "keep"); // nothing written
    CHECK_FALSE(write_field(out, "X-Nul", std::string("a\0b", 3)));
    CHECK_FALSE(write_field(out, "", "v"));
    CHECK_FALSE(write_field(out, "Bad Name", "v"));
    CHECK_FALSE(write_field(out, "Bad:Name", "v"));
    CHECK_FALSE(write_request_line(out, "G ET", "/"));
    CHECK_FALSE(write_request_line(out, "GET", ""));
    CHECK_FALSE(write_request_line(out, "GET", "/a b"));
    CHECK_FALSE(write_status_line(out, 99, "x"));
    CHECK_FALSE(write_status_line(out, 1000, "x"));
    CHECK(out == "keep");
}

TEST_CASE("RFC 7231 6.1: reason_phrase knows the codes the handshake uses") {
    CHECK(reason_phrase(101) == "Switching Protocols");
    CHECK(reason_phrase(200) == "OK");
    CHECK(reason_phrase(400) == "Bad Request");
    CHECK(reason_phrase(401) == "Unauthorized");
    CHECK(reason_phrase(403) == "Forbidden");
    CHECK(reason_phrase(404) == "Not Found");
    CHECK(reason_phrase(405) == "Method Not Allowed");
    CHECK(reason_phrase(426) == "Upgrade Required");
    CHECK(reason_phrase(431) == "Request Header Fields Too Large");
    CHECK(reason_phrase(500) == "Internal Server Error");
    CHECK(reason_phrase(503) == "Service Unavailable");
    CHECK(reason_phrase(299).empty());
}

TEST_CASE("RFC 7230 3.2.6: is_token and is_field_value") {
    CHECK(is_token("permessage-deflate"));
    CHECK(is_token("!#$%&'*+-.^_`|~"));
    CHECK_FALSE(is_token(""));
    CHECK_FALSE(is_token("a b"));
    CHECK_FALSE(is_token("a,b"));
    CHECK_FALSE(is_token("\"a\""));
    CHECK_FALSE(is_token("caf\xc3\xa9"));
    CHECK(is_field_value(""));
    CHECK(is_field_value("a b\tc \xff"));
    CHECK_FALSE(is_field_value("a\rb"));
    CHECK_FALSE(is_field_value(std::string(1, '\0')));
}

// ===================================================================================
// Sec-WebSocket-Accept and Sec-WebSocket-Extensions
// ===================================================================================

TEST_CASE("RFC 6455 1.3: the accept key of the sample nonce") {
    CHECK(accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    CHECK(base64_encode("the sample nonce") == "dGhlIHNhbXBsZSBub25jZQ==");
}

TEST_CASE("RFC 6455 9.1: extension lists with parameters parse (RFC 7692 examples)") {
    std::vector<extension> exts;
    REQUIRE_FALSE(parse_extensions("permessage-deflate; client_max_window_bits, "
                                   "permessage-deflate;server_max_window_bits=10 ;"
                                   "client_no_context_takeover",
                                   exts));
    REQUIRE(exts.size() == 2);
    CHECK(exts[0].name == "permessage-deflate");
    REQUIRE(exts[0].params.size() == 1);
    CHECK(exts[0].params[0].name == "client_max_window_bits");
    CHECK_FALSE(exts[0].params[0].value.has_value());
    REQUIRE(exts[1].params.size() == 2);
    CHECK(exts[1].params[0].name == "server_max_window_bits");
    CHECK(exts[1].params[0].value == std::optional<std::string>("10"));
    CHECK(exts[1].params[1].name == "client_no_context_takeover");

    // Appends: several header fields combine into one list.
    REQUIRE_FALSE(parse_extensions("x-webkit-deflate-frame", exts));
    CHECK(exts.size() == 3);
    CHECK(format_extensions(exts) ==
          "permessage-deflate; client_max_window_bits, permessage-deflate; "
          "server_max_window_bits=10; client_no_context_takeover, x-webkit-deflate-frame");
}

TEST_CASE("RFC 6455 9.1: a quoted parameter value unescapes to a token") {
    std::vector<extension> exts;
    REQUIRE_FALSE(parse_extensions("foo; a=\"10\"; b = \"x\\-y\"; c=\"\\1\\0\"", exts));
    REQUIRE(exts.size() == 1);
    REQUIRE(exts[0].params.size() == 3);
    CHECK(exts[0].params[0].value == std::optional<std::string>("10"));
    CHECK(exts[0].params[1].value == std::optional<std::string>("x-y"));
    CHECK(exts[0].params[2].value == std::optional<std::string>("10"));
    CHECK(format_extensions(exts) == "foo; a=10; b=x-y; c=10");
}

TEST_CASE("RFC 7230 7: empty extension list elements are ignored") {
    std::vector<extension> exts;
    CHECK_FALSE(parse_extensions("", exts));
    CHECK_FALSE(parse_extensions(" , ,, ", exts));
    CHECK(exts.empty());
    CHECK_FALSE(parse_extensions(", foo ,, bar,", exts));
    CHECK(exts.size() == 2);
}

TEST_CASE("RFC 6455 9.1: malformed extension lists are refused with bad_extension_header") {
    const std::string value = GENERATE(as<std::string>{},
                                       "foo bar",         // two tokens
                                       "foo;",            // empty parameter
                                       "foo;;a",          //
                                       "; a",             // no extension name
                                       "foo; =1",         //
                                       "foo; a=",         // empty value
                                       "foo; a=\"\"",     // quoted empty: not a token
                                       "foo; a=\"1 0\"",  // quoted non-token
                                       "foo; a=\"1,0\"",  //
                                       "foo; a=\"10",     // unterminated
                                       "foo; a=\"1\\",    // dangling escape
                                       "foo; a=1=2",      //
                                       "foo; a=1 2",      //
                                       "\"foo\"",         // quoted name
                                       "foo, \"bar\"",    //
                                       "foo; a=\"\x01\"", // control in quotes
                                       "f\xc3\xb6o");     // non-ASCII
    INFO(value);
    std::vector<extension> exts(1);
    exts[0].name = "kept";
    CHECK(parse_extensions(value, exts) == error::bad_extension_header);
    REQUIRE(exts.size() == 1); // left as it was
    CHECK(exts[0].name == "kept");
}

TEST_CASE("RFC 6455 9.1: extension lists are bounded in extensions and parameters") {
    std::string list;
    for (std::size_t i = 0; i != max_extensions; ++i) list += "e" + std::to_string(i) + ",";
    std::vector<extension> exts;
    CHECK_FALSE(parse_extensions(list, exts));
    CHECK(exts.size() == max_extensions);
    CHECK(parse_extensions("one-more", exts) == error::bad_extension_header);
    CHECK(exts.size() == max_extensions);

    std::string params = "foo";
    for (std::size_t i = 0; i != max_extension_params; ++i) params += "; p";
    exts.clear();
    CHECK_FALSE(parse_extensions(params, exts));
    CHECK(exts.at(0).params.size() == max_extension_params);
    exts.clear();
    CHECK(parse_extensions(params + "; p", exts) == error::bad_extension_header);
    CHECK(exts.empty());

    // A long hostile list is refused quickly (linear), without one allocation per comma.
    exts.clear();
    CHECK(parse_extensions(std::string(1 << 20, ',') + "a;" + std::string(1 << 20, ' '), exts) ==
          error::bad_extension_header);
}

TEST_CASE("RFC 6455 9.1: format_extensions leaves out what cannot be written validly") {
    std::vector<extension> exts = {
        {"ok", {{"a", std::nullopt}, {"bad name", std::nullopt}, {"b", std::string("1 2")}}},
        {"bad\r\nname", {}},
        {"second", {{"c", std::string("3")}}},
    };
    CHECK(format_extensions(exts) == "ok; a, second; c=3");
    CHECK(format_extensions({}).empty());
}

// ===================================================================================
// Server side (RFC 6455 section 4.2)
// ===================================================================================

TEST_CASE("RFC 6455 1.3: the sample request is validated and answered byte for byte") {
    server_handshake::options opts;
    opts.select_subprotocol = [](const std::vector<std::string_view>& offered) {
        return offered.size() == 2 && offered[1] == "superchat" ? std::string("chat")
                                                                : std::string();
    };
    auto s = serve(sample_request, opts);
    REQUIRE(s.status() == progress::done);
    CHECK_FALSE(s.error());
    CHECK(s.is_upgrade());
    const upgrade_request& u = s.upgrade();
    CHECK(u.target == "/chat");
    CHECK(u.path == "/chat");
    CHECK(u.query.empty());
    CHECK(u.host == "server.example.com");
    CHECK(u.origin == "http://example.com");
    CHECK(u.key == "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(u.subprotocols == std::vector<std::string_view>{"chat", "superchat"});
    CHECK(u.extensions.empty());
    CHECK(s.request().field("Sec-WebSocket-Version") == std::optional<std::string_view>("13"));

    CHECK(s.accept() == sample_response);
    CHECK(s.accepted());
    CHECK(s.subprotocol() == "chat");
    CHECK(s.accept().empty()); // only once
}

TEST_CASE("RFC 6455 4.2.1: the upgrade views stay valid when the handshake is moved") {
    auto first = serve(sample_request);
    REQUIRE(first.status() == progress::done);
    std::vector<server_handshake> many;
    many.push_back(std::move(first));
    for (int i = 0; i != 8; ++i) many.push_back(serve(sample_request)); // reallocations
    server_handshake moved = std::move(many.front());
    many.clear();
    CHECK(moved.upgrade().host == "server.example.com");
    CHECK(moved.upgrade().subprotocols.back() == "superchat");
    CHECK(moved.request().field("Origin") == std::optional<std::string_view>("http://example.com"));
    accept_options o;
    o.subprotocol = "chat";
    CHECK(moved.accept(o) == sample_response);
}

TEST_CASE("RFC 6455 4.2.1: validate_upgrade_request fills upgrade_request from a head") {
    const auto p = parse_request(sample_with("GET", "GET /chat?room=1 HTTP/1.1"));
    REQUIRE(p.status() == progress::done);
    upgrade_request u;
    REQUIRE_FALSE(validate_upgrade_request(p.head(), u));
    CHECK(u.path == "/chat");
    CHECK(u.query == "room=1");
    CHECK(u.target == "/chat?room=1");
}

TEST_CASE("RFC 6455 4.2.1 item 1: the method must be GET, else 405 with Allow: GET") {
    for (const char* line : {"POST /chat HTTP/1.1", "get /chat HTTP/1.1", "HEAD /chat HTTP/1.1"}) {
        INFO(line);
        const auto s = serve(sample_with("GET", line));
        CHECK(s.status() == progress::failed);
        CHECK(s.error() == error::bad_method);
        CHECK(s.refusal().substr(0, 36) == "HTTP/1.1 405 Method Not Allowed\r\nAll");
        CHECK(s.refusal().find("\r\nAllow: GET\r\n") != std::string::npos);
    }
}

TEST_CASE("RFC 6455 4.2.1 item 1: the request must be HTTP/1.1 or higher") {
    CHECK(server_error(sample_with("GET", "GET /chat HTTP/1.0")) == error::bad_http_version);
    CHECK(server_error(sample_with("GET", "GET /chat HTTP/0.9")) == error::bad_http_version);
    CHECK_FALSE(server_error(sample_with("GET", "GET /chat HTTP/1.2")));
    CHECK_FALSE(server_error(sample_with("GET", "GET /chat HTTP/2.0")));
}

TEST_CASE("RFC 6455 4.2.1 item 2: exactly one non-empty Host is required") {
    CHECK(server_error(sample_with("Host", "")) == error::missing_host);
    CHECK(server_error(sample_with("Host", "Host:")) == error::missing_host);
    CHECK(server_error(sample_with("Host", "Host: a\r\nHost: b")) == error::missing_host);
    CHECK(server_error(sample_with("Host", "host: a\r\nHOST: a")) == error::missing_host);
    CHECK_FALSE(server_error(sample_with("Host", "hOsT: [::1]:8080")));
}

TEST_CASE("RFC 6455 4.2.1 item 3: Upgrade must contain websocket, case-insensitively") {
    CHECK(server_error(sample_with("Upgrade", "")) == error::missing_upgrade);
    CHECK(server_error(sample_with("Upgrade", "Upgrade: h2c")) == error::missing_upgrade);
    CHECK(server_error(sample_with("Upgrade", "Upgrade: websockets")) == error::missing_upgrade);
    CHECK_FALSE(server_error(sample_with("Upgrade", "Upgrade: WebSocket")));
    CHECK_FALSE(server_error(sample_with("Upgrade", "upgrade: h2c, WEBSOCKET")));
}

TEST_CASE("RFC 6455 4.2.1 item 4: Connection must contain the upgrade token") {
    CHECK(server_error(sample_with("Connection", "")) == error::missing_connection);
    CHECK(server_error(sample_with("Connection", "Connection: close")) ==
          error::missing_connection);
    CHECK(server_error(sample_with("Connection", "Connection: upgraded")) ==
          error::missing_connection);
    CHECK_FALSE(server_error(sample_with("Connection", "Connection: keep-alive, Upgrade")));
    CHECK_FALSE(
        server_error(sample_with("Connection", "Connection: keep-alive\r\nConnection: upgrade")));
}

TEST_CASE("RFC 6455 4.2.1 item 5: Sec-WebSocket-Key must be one base64 16-byte value") {
    const std::string bad = GENERATE(as<std::string>{},
                                     "",                                            // missing
                                     "Sec-WebSocket-Key:",                          // empty
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ",   // unpadded
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZSE=", // 17 bytes
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j",     // 15 bytes
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==", // bits set
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==, "
                                     "dGhlIHNhbXBsZSBub25jZQ==",
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==");
    INFO(bad);
    const auto s = serve(sample_with("Sec-WebSocket-Key", bad));
    CHECK(s.error() == error::bad_websocket_key);
    CHECK(s.refusal().substr(0, 26) == "HTTP/1.1 400 Bad Request\r\n");
}

TEST_CASE("RFC 6455 4.2.1: a request without Sec-WebSocket-Version 13 is refused with 426") {
    const std::string bad = GENERATE(as<std::string>{}, "", "Sec-WebSocket-Version: 8",
                                     "Sec-WebSocket-Version: 13, 8", "Sec-WebSocket-Version: 013",
                                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Version: 13");
    INFO(bad);
    const auto s = serve(sample_with("Sec-WebSocket-Version", bad));
    CHECK(s.error() == error::bad_websocket_version);
    // RFC 6455 4.4: the 426 names the version we speak.
    const std::string body = "Sec-WebSocket-Version must be 13\n";
    CHECK(s.refusal() == "HTTP/1.1 426 Upgrade Required\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         "Content-Type: text/plain; charset=utf-8\r\n"
                         "Content-Length: " +
                             std::to_string(body.size()) +
                             "\r\n"
                             "Connection: close\r\n"
                             "\r\n" +
                             body);
}

TEST_CASE("RFC 6455 4.2.1 item 6: a version-less old-draft request gets 426, not a key error") {
    // A hixie-76 style request: Sec-WebSocket-Key1/Key2, no Sec-WebSocket-Version.
    const std::vector<std::string> hixie = {"GET /demo HTTP/1.1",
                                            "Host: example.com",
                                            "Connection: Upgrade",
                                            "Upgrade: WebSocket",
                                            "Sec-WebSocket-Key2: 12998 5 Y3 1  .P00",
                                            "Sec-WebSocket-Key1: 4 @1  46546xW%0l 1 5"};
    CHECK(server_error(head_of(hixie)) == error::bad_websocket_version);
    // With a version but no key, the key is what is wrong.
    CHECK(server_error(sample_with("Sec-WebSocket-Key", "")) == error::bad_websocket_key);
}

TEST_CASE("RFC 6455 4.2.1 item 7: the Origin is reported, and empty when absent") {
    const auto without = serve(sample_with("Origin", ""));
    REQUIRE(without.status() == progress::done);
    CHECK(without.upgrade().origin.empty());
    // Two Origin fields: refused, so an application cannot check a different one than a
    // proxy did.
    CHECK(server_error(sample_with("Origin", "Origin: http://a.example\r\nOrigin: http://b")) ==
          error::bad_header);
}

TEST_CASE("RFC 6455 4.2.1 item 8: subprotocols are offered in order, non-tokens ignored") {
    const auto s =
        serve(sample_with("Sec-WebSocket-Protocol", "Sec-WebSocket-Protocol: v2.chat, , \"bad\"\r\n"
                                                    "Sec-WebSocket-Protocol: Chat, v1.chat"));
    REQUIRE(s.status() == progress::done);
    CHECK(s.upgrade().subprotocols == std::vector<std::string_view>{"v2.chat", "Chat", "v1.chat"});
    const auto none = serve(sample_with("Sec-WebSocket-Protocol", ""));
    REQUIRE(none.status() == progress::done);
    CHECK(none.upgrade().subprotocols.empty());
}

TEST_CASE("RFC 6455 4.2.1 item 9: Sec-WebSocket-Extensions fields are combined and parsed") {
    const auto s = serve(sample_with("Sec-WebSocket-Extensions",
                                     "Sec-WebSocket-Extensions: permessage-deflate; "
                                     "client_max_window_bits\r\n"
                                     "Sec-WebSocket-Extensions: x-custom; a=\"1\""));
    REQUIRE(s.status() == progress::done);
    CHECK(format_extensions(s.upgrade().extensions) ==
          "permessage-deflate; client_max_window_bits, x-custom; a=1");
    CHECK(server_error(sample_with("Sec-WebSocket-Extensions",
                                   "Sec-WebSocket-Extensions: permessage-deflate; a=\"b c\"")) ==
          error::bad_extension_header);
}

TEST_CASE("RFC 6455 4.2.1: is_upgrade_request tells a plain HTTP request from an upgrade") {
    const auto plain = parse_request("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK_FALSE(is_upgrade_request(plain.head()));
    const auto broken = parse_request("GET / HTTP/1.1\r\nUpgrade: WebSocket\r\n\r\n");
    CHECK(is_upgrade_request(broken.head()));
    const auto sample = parse_request(sample_request);
    CHECK(is_upgrade_request(sample.head()));
}

TEST_CASE("RFC 6455 4.2.1: a plain HTTP request fails as not-an-upgrade and can be answered") {
    auto s = serve("GET /health HTTP/1.1\r\nHost: a\r\n\r\n");
    CHECK(s.status() == progress::failed);
    CHECK(s.error() == error::missing_upgrade);
    CHECK_FALSE(s.is_upgrade());
    CHECK(s.has_request());
    CHECK(s.request().path() == "/health");
    CHECK(s.accept().empty());
    refusal ok;
    ok.status = 200;
    ok.body = "ok";
    CHECK(s.reject(ok) == "HTTP/1.1 200 OK\r\n"
                          "Content-Type: text/plain; charset=utf-8\r\n"
                          "Content-Length: 2\r\n"
                          "Connection: close\r\n"
                          "\r\n"
                          "ok");
    CHECK(s.error() == error::missing_upgrade);
    CHECK(s.refusal() == s.reject(ok));

    const auto broken = serve("GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n");
    CHECK(broken.is_upgrade());
    CHECK(broken.error() == error::missing_connection);
}

TEST_CASE("RFC 6455 4.2.2: bytes after the request head are left for the frame layer") {
    std::size_t consumed = 0;
    const std::string stream = sample_request + hello_frame;
    auto s = serve(stream, {}, &consumed);
    REQUIRE(s.status() == progress::done);
    CHECK(consumed == sample_request.size());
    CHECK(stream.substr(consumed) == hello_frame);
    const auto again = s.feed(hello_frame);
    CHECK(again.consumed == 0);
    CHECK(again.status == progress::done);
}

TEST_CASE("RFC 6455 4.2.2: a malformed or oversized request head gets 400 or 431") {
    auto s = serve("GET / HTTP/1.1\r\nHost : a\r\n\r\n");
    CHECK(s.error() == error::bad_header);
    CHECK_FALSE(s.has_request());
    CHECK_FALSE(s.is_upgrade());
    CHECK(s.refusal().substr(0, 26) == "HTTP/1.1 400 Bad Request\r\n");

    server_handshake::options small;
    small.limits = {128, 100};
    auto big = serve(sample_request, small);
    CHECK(big.error() == error::head_too_large);
    CHECK(big.refusal().substr(0, 46) == "HTTP/1.1 431 Request Header Fields Too Large\r\n");

    small.limits = {8192, 3};
    auto many = serve(sample_request, small);
    CHECK(many.error() == error::too_many_headers);
    CHECK(many.refusal().substr(0, 13) == "HTTP/1.1 431 ");
}

TEST_CASE("RFC 6455 4.2.2: refusal_for maps errors to statuses") {
    CHECK(refusal_for(error::bad_websocket_version).status == 426);
    CHECK(refusal_for(error::bad_websocket_version).headers ==
          std::vector<std::pair<std::string, std::string>>{{"Sec-WebSocket-Version", "13"}});
    CHECK(refusal_for(error::head_too_large).status == 431);
    CHECK(refusal_for(error::too_many_headers).status == 431);
    CHECK(refusal_for(error::bad_method).status == 405);
    CHECK(refusal_for(error::handshake_refused).status == 403);
    for (const auto e :
         {error::bad_request_line, error::bad_header, error::obs_fold, error::bad_line_ending,
          error::bad_http_version, error::missing_host, error::missing_upgrade,
          error::missing_connection, error::bad_websocket_key, error::bad_extension_header}) {
        const auto r = refusal_for(e);
        CHECK(r.status == 400);
        CHECK(r.body == duplex::make_error_code(e).message() + "\n");
    }
    CHECK(refusal_for(std::make_error_code(std::errc::io_error)).status == 400);
}

TEST_CASE("RFC 7230 3.3.2: write_refusal frames its body and closes the connection") {
    refusal r;
    r.status = 401;
    r.body = "{\"error\":\"login\"}";
    r.headers = {{"WWW-Authenticate", "Bearer"},     {"Content-Type", "application/json"},
                 {"Content-Length", "999"},          // would contradict the body: dropped
                 {"Connection", "keep-alive"},       // dropped
                 {"Transfer-Encoding", "chunked"},   // dropped
                 {"X-Evil", "a\r\nSet-Cookie: x=1"}, // injection: dropped
                 {"X-Evil\r\nSet-Cookie", "x=1"}};   // injection: dropped
    CHECK(write_refusal(r) == "HTTP/1.1 401 Unauthorized\r\n"
                              "WWW-Authenticate: Bearer\r\n"
                              "Content-Type: application/json\r\n"
                              "Content-Length: 17\r\n"
                              "Connection: close\r\n"
                              "\r\n"
                              "{\"error\":\"login\"}");
    refusal empty;
    empty.status = 404;
    CHECK(write_refusal(empty) ==
          "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    refusal informational;
    informational.status = 101; // not a refusal: becomes 500
    CHECK(write_refusal(informational).substr(0, 13) == "HTTP/1.1 500 ");
    // Whatever the headers, the result is one well-formed response head.
    const auto p = parse_response(write_refusal(r));
    REQUIRE(p.status() == progress::done);
    CHECK(p.head().count("Set-Cookie") == 0);
    CHECK(p.head().count("Content-Length") == 1);
}

TEST_CASE("RFC 6455 4.2.2: the application can refuse an upgrade with its own answer") {
    auto s = serve(sample_request);
    REQUIRE(s.status() == progress::done);
    refusal r;
    r.status = 401;
    r.body = "who are you?";
    r.headers = {{"WWW-Authenticate", "Basic realm=\"chat\""}};
    const std::string out = s.reject(r);
    CHECK(out == "HTTP/1.1 401 Unauthorized\r\n"
                 "WWW-Authenticate: Basic realm=\"chat\"\r\n"
                 "Content-Type: text/plain; charset=utf-8\r\n"
                 "Content-Length: 12\r\n"
                 "Connection: close\r\n"
                 "\r\n"
                 "who are you?");
    CHECK(s.status() == progress::failed);
    CHECK(s.error() == error::handshake_refused);
    CHECK(s.refusal() == out);
    CHECK(s.accept().empty());

    server_handshake reading;
    CHECK(reading.reject(r).empty()); // nothing to answer yet
    CHECK(reading.status() == progress::need_more);
}

TEST_CASE("RFC 6455 4.2.2 item 5: the server only sends a subprotocol the client offered") {
    SECTION("chosen by accept_options") {
        auto s = serve(sample_request);
        accept_options o;
        o.subprotocol = "superchat";
        const auto out = s.accept(o);
        CHECK(out.find("\r\nSec-WebSocket-Protocol: superchat\r\n") != std::string::npos);
        CHECK(s.subprotocol() == "superchat");
    }
    SECTION("not offered: not sent") {
        auto s = serve(sample_request);
        accept_options o;
        o.subprotocol = "Chat"; // subprotocol names are case-sensitive
        const auto out = s.accept(o);
        CHECK(out.find("Sec-WebSocket-Protocol") == std::string::npos);
        CHECK(s.subprotocol().empty());
    }
    SECTION("select_subprotocol returns one not offered: not sent") {
        server_handshake::options opts;
        opts.select_subprotocol = [](const std::vector<std::string_view>&) {
            return std::string("mqtt");
        };
        auto s = serve(sample_request, opts);
        CHECK(s.accept().find("Sec-WebSocket-Protocol") == std::string::npos);
    }
    SECTION("select_subprotocol is not asked when nothing is offered") {
        server_handshake::options opts;
        bool asked = false;
        opts.select_subprotocol = [&](const std::vector<std::string_view>&) {
            asked = true;
            return std::string("chat");
        };
        server_handshake s(opts);
        REQUIRE(s.feed(sample_with("Sec-WebSocket-Protocol", "")).status == progress::done);
        CHECK(s.accept().find("Sec-WebSocket-Protocol") == std::string::npos);
        CHECK_FALSE(asked);
    }
    SECTION("accept_options overrides select_subprotocol") {
        server_handshake::options opts;
        opts.select_subprotocol = [](const std::vector<std::string_view>&) {
            return std::string("chat");
        };
        auto s = serve(sample_request, opts);
        accept_options o;
        o.subprotocol = "superchat";
        CHECK(s.accept(o).find("Protocol: superchat\r\n") != std::string::npos);
    }
}

TEST_CASE("RFC 6455 4.2.2 item 5: extensions and extra headers in the 101 response") {
    auto s = serve(sample_request);
    accept_options o;
    o.extensions = "permessage-deflate; server_no_context_takeover";
    o.extra_headers = {{"Set-Cookie", "id=1"},
                       {"Sec-WebSocket-Accept", "forged"},     // reserved: dropped
                       {"connection", "close"},                // reserved: dropped
                       {"Content-Length", "5"},                // reserved: dropped
                       {"X-Evil", "a\r\n\r\nHTTP/1.1 200 OK"}, // injection: dropped
                       {"X-Ok", "yes"}};
    CHECK(s.accept(o) == "HTTP/1.1 101 Switching Protocols\r\n"
                         "Upgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                         "Sec-WebSocket-Extensions: permessage-deflate; "
                         "server_no_context_takeover\r\n"
                         "Set-Cookie: id=1\r\n"
                         "X-Ok: yes\r\n"
                         "\r\n");

    upgrade_request u;
    u.key = "dGhlIHNhbXBsZSBub25jZQ==";
    accept_options evil;
    evil.extensions = "foo\r\nX-Injected: 1";
    const auto out = write_accept_response(u, evil);
    CHECK(out.find("X-Injected") == std::string::npos);
    CHECK(out.find("Extensions") == std::string::npos);
}

// ===================================================================================
// Client side (RFC 6455 section 4.1)
// ===================================================================================

TEST_CASE("RFC 6455 1.3: the client writes the sample request byte for byte") {
    const client_handshake c(sample_client_options(), sample_nonce());
    CHECK(c.key() == "dGhlIHNhbXBsZSBub25jZQ==");
    CHECK(c.request() == sample_request);
    CHECK_FALSE(c.error());
    CHECK(c.status() == progress::need_more);
}

TEST_CASE("RFC 6455 4.1: the client request offers extensions and carries extra headers") {
    client_options o;
    o.host = "example.com:8080";
    o.target = "/ws?token=abc";
    o.extensions = "permessage-deflate; client_max_window_bits";
    o.extra_headers = {{"Authorization", "Bearer x"}, {"User-Agent", "duplex"}};
    const client_handshake c(o, sample_nonce());
    CHECK(c.request() == "GET /ws?token=abc HTTP/1.1\r\n"
                         "Host: example.com:8080\r\n"
                         "Upgrade: websocket\r\n"
                         "Connection: Upgrade\r\n"
                         "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                         "Sec-WebSocket-Version: 13\r\n"
                         "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                         "Authorization: Bearer x\r\n"
                         "User-Agent: duplex\r\n"
                         "\r\n");
    // And our own server accepts it.
    const auto s = serve(c.request());
    CHECK(s.status() == progress::done);
    CHECK(s.upgrade().query == "token=abc");
}

TEST_CASE("RFC 6455 4.1: the key is the base64 of the caller's 16-byte nonce") {
    std::array<std::uint8_t, 16> nonce{};
    for (std::size_t i = 0; i != nonce.size(); ++i) nonce[i] = static_cast<std::uint8_t>(i * 17);
    const client_handshake c(sample_client_options(), nonce);
    std::string decoded;
    REQUIRE(base64_decode(c.key(), decoded));
    REQUIRE(decoded.size() == 16);
    for (std::size_t i = 0; i != nonce.size(); ++i) {
        CHECK(static_cast<std::uint8_t>(decoded[i]) == nonce[i]);
    }
    CHECK(c.request().find("Sec-WebSocket-Key: " + c.key() + "\r\n") != std::string::npos);
}

TEST_CASE("RFC 6455 4.1: client options that would break or inject into the request fail") {
    const auto check = [](const client_options& o, error expected) {
        const client_handshake c(o, sample_nonce());
        CHECK(c.error() == expected);
        CHECK(c.status() == progress::failed);
        CHECK(c.request().empty());
        client_handshake copy = c;
        CHECK(copy.feed(sample_response).status == progress::failed);
    };
    auto o = sample_client_options();
    SECTION("target") {
        o.target = "";
        check(o, error::bad_request_line);
        o.target = "/a b";
        check(o, error::bad_request_line);
        o.target = "/a\r\nX-Injected: 1";
        check(o, error::bad_request_line);
    }
    SECTION("host") {
        o.host = "";
        check(o, error::missing_host);
        o.host = "a b";
        check(o, error::missing_host);
        o.host = "a\r\nX: 1";
        check(o, error::missing_host);
    }
    SECTION("origin") {
        o.origin = "http://a\r\nX: 1";
        check(o, error::bad_header);
    }
    SECTION("subprotocols must be tokens (RFC 6455 4.1 item 10)") {
        o.subprotocols = {"chat", "two words"};
        check(o, error::bad_header);
        o.subprotocols = {"a,b"};
        check(o, error::bad_header);
        o.subprotocols = {""};
        check(o, error::bad_header);
    }
    SECTION("extensions offer") {
        o.extensions = "permessage-deflate; a=\"b c\"";
        check(o, error::bad_extension_header);
        o.extensions = "foo\r\nX: 1";
        check(o, error::bad_extension_header);
    }
    SECTION("extra headers: injection") {
        o.extra_headers = {{"X-A", "1\r\nX-B: 2"}};
        check(o, error::bad_header);
        o.extra_headers = {{"X-A\r\nX-B", "1"}};
        check(o, error::bad_header);
        o.extra_headers = {{"X-A", std::string("a\0b", 3)}};
        check(o, error::bad_header);
    }
    SECTION("extra headers: the handshake's own headers cannot be overridden") {
        for (const char* name :
             {"Host", "upgrade", "Connection", "Origin", "Sec-WebSocket-Key",
              "sec-websocket-version", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions",
              "Sec-WebSocket-Accept", "Content-Length", "Transfer-Encoding"}) {
            INFO(name);
            o.extra_headers = {{name, "x"}};
            check(o, error::bad_header);
        }
    }
}

TEST_CASE("RFC 6455 4.1: the client accepts the sample response, frames after it are left") {
    std::size_t consumed = 0;
    const std::string stream = sample_response + std::string("\x81\x05Hello", 7);
    const auto c = connect(stream, sample_client_options(), &consumed);
    CHECK(c.status() == progress::done);
    CHECK_FALSE(c.error());
    CHECK(c.subprotocol() == "chat");
    CHECK(c.extensions().empty());
    CHECK(consumed == sample_response.size());
    CHECK(stream.substr(consumed) == std::string("\x81\x05Hello", 7));
    CHECK(c.response().status() == 101);

    client_handshake again(sample_client_options(), sample_nonce());
    REQUIRE(again.feed(sample_response).status == progress::done);
    const auto r = again.feed("more");
    CHECK(r.status == progress::done);
    CHECK(r.consumed == 0);
}

TEST_CASE("RFC 6455 4.1 item 1: a status other than 101 fails with bad_status, head kept") {
    const std::string response = "HTTP/1.1 401 Unauthorized\r\n"
                                 "WWW-Authenticate: Bearer\r\n"
                                 "Content-Length: 5\r\n"
                                 "\r\n";
    std::size_t consumed = 0;
    const auto c = connect(response + "nope!", sample_client_options(), &consumed);
    CHECK(c.status() == progress::failed);
    CHECK(c.error() == error::bad_status);
    CHECK(c.response().status() == 401);
    CHECK(c.response().field("WWW-Authenticate") == std::optional<std::string_view>("Bearer"));
    CHECK(consumed == response.size()); // the body stays with the caller
    CHECK(client_error("HTTP/1.1 200 OK\r\n\r\n") == error::bad_status);
    CHECK(client_error("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n") ==
          error::bad_status);
}

TEST_CASE("RFC 6455 4.1 item 2: the response Upgrade must be websocket") {
    CHECK(client_error(response_replacing("Upgrade", "")) == error::missing_upgrade);
    for (const char* upgrade : {"h2c", "websocket, h2c", "websockets", ""}) {
        INFO(upgrade);
        CHECK(client_error(response_replacing("Upgrade", "Upgrade: " + std::string(upgrade))) ==
              error::missing_upgrade);
    }
    CHECK_FALSE(client_error(response_replacing("Upgrade", "upgrade: WebSocket")));
}

TEST_CASE("RFC 6455 4.1 item 3: the response Connection must contain upgrade") {
    CHECK(client_error(response_replacing("Connection", "")) == error::missing_connection);
    CHECK(client_error(response_replacing("Connection", "Connection: close")) ==
          error::missing_connection);
    CHECK_FALSE(client_error(response_replacing("Connection", "Connection: keep-alive, UPGRADE")));
}

TEST_CASE("RFC 6455 4.1 item 4: Sec-WebSocket-Accept must match our key") {
    const auto with_accept = [](const std::string& value) {
        return response_replacing("Sec-WebSocket-Accept", "Sec-WebSocket-Accept:" + value);
    };
    CHECK(client_error(response_replacing("Sec-WebSocket-Accept", "")) == error::bad_accept);
    CHECK(client_error(with_accept("")) == error::bad_accept);
    CHECK(client_error(with_accept(" s3pPLMBiTxaQ9kYGzzhZRbK+xOo")) == error::bad_accept);
    CHECK(client_error(with_accept(" S3PPLMBITXAQ9KYGZZHZRBK+XOO=")) == error::bad_accept);
    CHECK(client_error(with_accept(" " + accept_key("dGhlIHNhbXBsZSBub25jZA=="))) ==
          error::bad_accept);
    CHECK(client_error(with_accept(" dGhlIHNhbXBsZSBub25jZQ==")) == error::bad_accept);
    CHECK(client_error(response_with({"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="})) ==
          error::bad_accept); // twice
    CHECK_FALSE(client_error(response_with({})));
    CHECK_FALSE(client_error(with_accept("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=  ")));
}

TEST_CASE("RFC 6455 4.1 item 5: every accepted extension must have been offered") {
    auto o = sample_client_options();
    o.extensions = "permessage-deflate; client_max_window_bits, x-two";
    CHECK(client_error(response_with({"Sec-WebSocket-Extensions: x-unknown"}), o) ==
          error::unexpected_extension);
    CHECK(client_error(response_with({"Sec-WebSocket-Extensions: permessage-deflate",
                                      "Sec-WebSocket-Extensions: x-three"}),
                       o) == error::unexpected_extension);
    CHECK(client_error(response_with({"Sec-WebSocket-Extensions: permessage-deflate"})) ==
          error::unexpected_extension); // nothing offered
    CHECK(client_error(response_with({"Sec-WebSocket-Extensions: permessage-deflate; a=\"\""}),
                       o) == error::bad_extension_header);
    const auto c = connect(response_with({"Sec-WebSocket-Extensions: permessage-deflate; "
                                          "server_max_window_bits=10",
                                          "Sec-WebSocket-Extensions: x-two"}),
                           o);
    REQUIRE(c.status() == progress::done);
    REQUIRE(c.extensions().size() == 2);
    CHECK(c.extensions()[0].name == "permessage-deflate");
    CHECK(c.extensions()[0].params.at(0).value == std::optional<std::string>("10"));
    CHECK(c.extensions()[1].name == "x-two");
}

TEST_CASE("RFC 6455 4.1 item 6: the subprotocol must be one we offered") {
    CHECK(client_error(response_with({"Sec-WebSocket-Protocol: mqtt"})) ==
          error::unexpected_subprotocol);
    CHECK(client_error(response_with({"Sec-WebSocket-Protocol: Chat"})) ==
          error::unexpected_subprotocol); // case-sensitive
    CHECK(client_error(response_with({"Sec-WebSocket-Protocol: chat, superchat"})) ==
          error::unexpected_subprotocol); // one, not a list
    CHECK(client_error(
              response_with({"Sec-WebSocket-Protocol: chat", "Sec-WebSocket-Protocol: chat"})) ==
          error::unexpected_subprotocol);
    CHECK(client_error(response_with({"Sec-WebSocket-Protocol:"})) ==
          error::unexpected_subprotocol);
    auto none = sample_client_options();
    none.subprotocols.clear();
    CHECK(client_error(response_with({"Sec-WebSocket-Protocol: chat"}), none) ==
          error::unexpected_subprotocol);
    const auto c = connect(response_with({}));
    CHECK(c.status() == progress::done);
    CHECK(c.subprotocol().empty()); // the server may choose none
    CHECK(connect(response_with({"Sec-WebSocket-Protocol: superchat"})).subprotocol() ==
          "superchat");
}

TEST_CASE("RFC 7230 3: the client refuses a malformed or oversized response head") {
    CHECK(client_error("HTTP/1.1 101 Switching Protocols\nUpgrade: websocket\r\n\r\n") ==
          error::bad_line_ending);
    CHECK(client_error("HTTP/1.1 101\r\nUpgrade : websocket\r\n\r\n") == error::bad_header);
    CHECK(client_error("SSH-2.0-OpenSSH_9.2\r\n\r\n") == error::bad_status_line);
    auto small = sample_client_options();
    small.limits = {64, 100};
    CHECK(client_error(sample_response, small) == error::head_too_large);
}

// ===================================================================================
// Round trip
// ===================================================================================

TEST_CASE("RFC 6455 4: client and server complete a handshake with negotiation") {
    client_options co;
    co.host = "localhost:9001";
    co.target = "/rooms/lobby?user=ana";
    co.origin = "https://app.example";
    co.subprotocols = {"v2.json", "v1.json"};
    co.extensions = "permessage-deflate; client_max_window_bits, x-unused";
    co.extra_headers = {{"Cookie", "session=s1"}};
    std::array<std::uint8_t, 16> nonce{};
    for (std::size_t i = 0; i != nonce.size(); ++i) nonce[i] = static_cast<std::uint8_t>(200 + i);
    client_handshake client(co, nonce);
    REQUIRE_FALSE(client.error());

    server_handshake::options so;
    so.select_subprotocol = [](const std::vector<std::string_view>& offered) {
        for (const auto p : offered) {
            if (p == "v1.json") return std::string(p);
        }
        return std::string();
    };
    std::size_t consumed = 0;
    auto server = serve(client.request() + hello_frame, so, &consumed);
    REQUIRE(server.status() == progress::done);
    CHECK(consumed == client.request().size());
    const auto& u = server.upgrade();
    CHECK(u.path == "/rooms/lobby");
    CHECK(server.request().query_param("user") == std::optional<std::string_view>("ana"));
    CHECK(server.request().cookie("session") == std::optional<std::string_view>("s1"));
    CHECK(u.origin == "https://app.example");
    CHECK(u.host == "localhost:9001");
    REQUIRE(u.extensions.size() == 2);
    CHECK(u.extensions[0].name == "permessage-deflate");

    accept_options ao;
    ao.extensions = format_extensions(
        {{"permessage-deflate", {{"client_max_window_bits", std::string("12")}}}});
    const std::string response = server.accept(ao);
    CHECK(server.subprotocol() == "v1.json");

    const auto r = client.feed(response + "\x81\x02hi");
    REQUIRE(r.status == progress::done);
    CHECK(r.consumed == response.size());
    CHECK_FALSE(client.error());
    CHECK(client.subprotocol() == "v1.json");
    REQUIRE(client.extensions().size() == 1);
    CHECK(format_extensions(client.extensions()) ==
          "permessage-deflate; client_max_window_bits=12");
}

TEST_CASE("RFC 6455 4: the round trip works fed at every split point on both sides") {
    const client_handshake client(sample_client_options(), sample_nonce());
    server_handshake::options so;
    so.select_subprotocol = [](const std::vector<std::string_view>&) {
        return std::string("superchat");
    };
    auto server = serve(client.request(), so);
    REQUIRE(server.status() == progress::done);
    const std::string response = server.accept();
    const auto c = connect(response);
    CHECK(c.status() == progress::done);
    CHECK(c.subprotocol() == "superchat");
}
