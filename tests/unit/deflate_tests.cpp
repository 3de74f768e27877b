// permessage-deflate (RFC 7692): negotiation in both roles, the handshake wiring, the zlib
// codec and the session's compressed messages. Every received stream is fed whole, at every
// split point and one byte at a time, as the session's other tests are. Built only with zlib.
#include "catch.hpp"

#include <duplex/protocol/deflate_codec.hpp>
#include <duplex/protocol/handshake.hpp>
#include <duplex/protocol/permessage_deflate.hpp>
#include <duplex/protocol/session.hpp>
#include <duplex/shared_message.hpp>

#include <zlib.h>

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace duplex::protocol;
using duplex::error;

namespace {

const random_source::seed_type test_seed = {3, 1, 4, 1, 5, 9, 2, 6};

// --- negotiation helpers ----------------------------------------------------------------

std::vector<extension> offers(std::string_view header) {
    std::vector<extension> out;
    REQUIRE_FALSE(parse_extensions(header, out));
    return out;
}

extension element(std::string_view header) {
    auto all = offers(header);
    REQUIRE(all.size() == 1);
    return all.front();
}

deflate_server_options server_on() {
    deflate_server_options o;
    o.enabled = true;
    return o;
}

deflate_client_options client_on() {
    deflate_client_options o;
    o.enabled = true;
    return o;
}

// The server's answer to `header`, written as a header value, or "" when it declines.
std::string answer(std::string_view header, deflate_server_options o = server_on()) {
    const auto agreed = negotiate_deflate(offers(header), o);
    return agreed ? format_extensions({agreed->response}) : std::string();
}

std::error_code client_check(std::string_view response, deflate_client_options o = client_on(),
                             deflate_params* out = nullptr) {
    deflate_params p;
    const auto ec = accept_deflate_response(element(response), o, p);
    if (out) *out = p;
    return ec;
}

// --- session helpers --------------------------------------------------------------------

struct recorded {
    event_type type;
    opcode op;
    std::string data;
    std::uint16_t code;
    std::error_code error;
    bool operator==(const recorded& o) const {
        return type == o.type && op == o.op && data == o.data && code == o.code && error == o.error;
    }
};

// A frame as a peer sends it: client frames masked with a fixed key, `rsv1` as given.
std::string frame(opcode op, std::string_view payload, bool fin, bool masked, bool rsv1) {
    frame_header h;
    h.fin = fin;
    h.rsv1 = rsv1;
    h.op = op;
    h.payload_size = payload.size();
    h.masked = masked;
    h.mask = 0x5A17C3E9;
    unsigned char head[max_frame_header_size];
    const std::size_t n = encode_frame_header(h, head);
    std::string out(reinterpret_cast<const char*>(head), n);
    const std::size_t at = out.size();
    out.append(payload);
    if (masked) apply_mask(&out[at], payload.size(), h.mask);
    return out;
}

std::string bytes(std::initializer_list<unsigned> values) {
    std::string out;
    for (const unsigned v : values) out.push_back(static_cast<char>(v));
    return out;
}

// Raw DEFLATE of `text` with a sync flush and the trailer removed, as a peer compresses
// (zlib directly, not our codec, so the two are checked against each other).
std::string peer_compress(std::string_view text, int window_bits = 15) {
    z_stream z{};
    REQUIRE(deflateInit2(&z, 6, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK);
    std::string out(text.size() + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(text.data()));
    z.avail_in = static_cast<uInt>(text.size());
    z.next_out = reinterpret_cast<Bytef*>(&out[0]);
    z.avail_out = static_cast<uInt>(out.size());
    REQUIRE(deflate(&z, Z_SYNC_FLUSH) == Z_OK);
    REQUIRE(z.avail_in == 0);
    out.resize(out.size() - z.avail_out);
    deflateEnd(&z);
    REQUIRE(out.size() >= 4);
    REQUIRE(out.substr(out.size() - 4) == bytes({0x00, 0x00, 0xff, 0xff}));
    out.resize(out.size() - 4);
    return out;
}

session_options with_deflate(deflate_params p = {}, std::size_t threshold = 0) {
    session_options o;
    o.deflate = p;
    o.compression.threshold = threshold;
    return o;
}

struct outcome {
    std::vector<recorded> events;
    std::string output;
    session_state state;
};

outcome run(role r, const std::string& input, const std::vector<std::size_t>& cuts,
            const session_options& options) {
    session s(r, options, test_seed);
    outcome out;
    std::size_t begin = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(input.size());
    for (const std::size_t end : ends) {
        std::string piece = input.substr(begin, end - begin);
        char* data = piece.data();
        std::size_t size = piece.size();
        for (;;) {
            const auto result = s.receive(data, size);
            REQUIRE(result.consumed <= size);
            data += result.consumed;
            size -= result.consumed;
            if (result.ev.type == event_type::none) {
                REQUIRE(size == 0);
                break;
            }
            out.events.push_back({result.ev.type, result.ev.op, std::string(result.ev.data),
                                  result.ev.code, result.ev.error});
        }
        begin = end;
    }
    out.output = std::string(s.pending_output());
    out.state = s.state();
    return out;
}

// Partial delivery cuts a message differently per split: adjacent pieces are merged.
std::vector<recorded> merged(const std::vector<recorded>& events) {
    std::vector<recorded> out;
    for (const auto& e : events) {
        if ((e.type == event_type::message_data || e.type == event_type::message_end) &&
            !out.empty() && out.back().type == event_type::message_data) {
            out.back().data += e.data;
            out.back().type = e.type;
            continue;
        }
        out.push_back(e);
    }
    return out;
}

outcome run_every_split(role r, const std::string& input, const session_options& options) {
    const outcome whole = run(r, input, {}, options);
    for (std::size_t cut = 1; cut < input.size(); ++cut) {
        const outcome split = run(r, input, {cut}, options);
        INFO("split at " << cut);
        REQUIRE(merged(split.events) == merged(whole.events));
        REQUIRE(split.output == whole.output);
        REQUIRE(split.state == whole.state);
    }
    std::vector<std::size_t> every_byte;
    for (std::size_t i = 1; i < input.size(); ++i) every_byte.push_back(i);
    const outcome bytewise = run(r, input, every_byte, options);
    REQUIRE(merged(bytewise.events) == merged(whole.events));
    REQUIRE(bytewise.output == whole.output);
    return whole;
}

recorded message(opcode op, std::string data) {
    return {event_type::message, op, std::move(data), 0, {}};
}

recorded failure(error e, std::uint16_t code) {
    return {event_type::error, opcode::text, {}, code, make_error_code(e)};
}

// The first byte of every frame in `wire` (unmasked server frames or masked client frames).
std::vector<unsigned> first_bytes(const std::string& wire) {
    std::vector<unsigned> out;
    std::size_t at = 0;
    while (at < wire.size()) {
        frame_header h;
        const auto r = decode_frame_header(reinterpret_cast<const unsigned char*>(wire.data()) + at,
                                           wire.size() - at, h, {true, false, false});
        REQUIRE(r.status == progress::done);
        out.push_back(static_cast<unsigned char>(wire[at]));
        at += r.size + static_cast<std::size_t>(h.payload_size);
    }
    return out;
}

} // namespace

// ===================================================================== negotiation: server

TEST_CASE("RFC 7692 5: a server answers the first well-formed permessage-deflate offer",
          "[deflate][negotiation]") {
    CHECK(answer("permessage-deflate") == "permessage-deflate");
    // Several offers in order of preference: a malformed first one is declined, not fatal.
    CHECK(answer("permessage-deflate; foo=1, permessage-deflate; server_no_context_takeover, "
                 "permessage-deflate") == "permessage-deflate; server_no_context_takeover");
    CHECK(answer("x-other, permessage-deflate; client_max_window_bits") == "permessage-deflate");
    // Nothing acceptable, or not offered: declined, and the handshake goes on without it.
    CHECK(answer("permessage-deflate; bogus") == "");
    CHECK(answer("x-webkit-deflate-frame") == "");
    CHECK(answer("") == "");
}

TEST_CASE("RFC 7692 5: a server declines offers with unknown, duplicated or invalid parameters",
          "[deflate][negotiation]") {
    for (const char* bad : {
             "permessage-deflate; unknown_param",
             "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
             "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
             "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
             "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
             "permessage-deflate; server_no_context_takeover=1",
             "permessage-deflate; client_no_context_takeover=\"x\"",
             "permessage-deflate; server_max_window_bits",
             "permessage-deflate; server_max_window_bits=7",
             "permessage-deflate; server_max_window_bits=16",
             "permessage-deflate; server_max_window_bits=08",
             "permessage-deflate; server_max_window_bits=015",
             "permessage-deflate; server_max_window_bits=abc",
             "permessage-deflate; client_max_window_bits=0",
             "permessage-deflate; client_max_window_bits=\"16\"",
         }) {
        INFO(bad);
        CHECK(answer(bad) == "");
    }
    // A quoted value is the same value (RFC 7692 section 5 uses RFC 6455 9.1's grammar).
    CHECK(answer("permessage-deflate; server_max_window_bits=\"10\"") ==
          "permessage-deflate; server_max_window_bits=10");
}

TEST_CASE("RFC 7692 5: a server with permessage-deflate disabled declines every offer",
          "[deflate][negotiation]") {
    deflate_server_options off;
    CHECK(answer("permessage-deflate", off) == "");
}

TEST_CASE("RFC 7692 7.1.1.1: server_no_context_takeover offered is answered, and may be sent "
          "unasked",
          "[deflate][negotiation]") {
    const auto agreed =
        negotiate_deflate(offers("permessage-deflate; server_no_context_takeover"), server_on());
    REQUIRE(agreed);
    CHECK(agreed->params.server_no_context_takeover);
    CHECK(format_extensions({agreed->response}) ==
          "permessage-deflate; server_no_context_takeover");
    auto o = server_on();
    o.server_no_context_takeover = true;
    CHECK(answer("permessage-deflate", o) == "permessage-deflate; server_no_context_takeover");
}

TEST_CASE("RFC 7692 7.1.1.2: client_no_context_takeover is answered when hinted or wanted",
          "[deflate][negotiation]") {
    CHECK(answer("permessage-deflate; client_no_context_takeover") ==
          "permessage-deflate; client_no_context_takeover");
    auto o = server_on();
    o.client_no_context_takeover = true;
    const auto agreed = negotiate_deflate(offers("permessage-deflate"), o);
    REQUIRE(agreed);
    CHECK(agreed->params.client_no_context_takeover);
    CHECK(format_extensions({agreed->response}) ==
          "permessage-deflate; client_no_context_takeover");
}

TEST_CASE("RFC 7692 7.1.2.1: server_max_window_bits is answered with the same or a smaller value",
          "[deflate][negotiation]") {
    // Offered: always answered, never larger than offered.
    CHECK(answer("permessage-deflate; server_max_window_bits=10") ==
          "permessage-deflate; server_max_window_bits=10");
    auto o = server_on();
    o.server_max_window_bits = 9;
    CHECK(answer("permessage-deflate; server_max_window_bits=12", o) ==
          "permessage-deflate; server_max_window_bits=9");
    CHECK(answer("permessage-deflate; server_max_window_bits=8", o) ==
          "permessage-deflate; server_max_window_bits=8");
    // Not offered: a server may still use (and then must announce) a smaller window.
    CHECK(answer("permessage-deflate", o) == "permessage-deflate; server_max_window_bits=9");
    const auto agreed = negotiate_deflate(offers("permessage-deflate"), o);
    REQUIRE(agreed);
    CHECK(agreed->params.server_max_window_bits == 9);
}

TEST_CASE("RFC 7692 7.1.2.2: client_max_window_bits is answered only when offered, with or "
          "without a value",
          "[deflate][negotiation]") {
    auto o = server_on();
    o.client_max_window_bits = 10;
    // Not offered: the response must not name it, and the client keeps a 32 KiB window.
    const auto none = negotiate_deflate(offers("permessage-deflate"), o);
    REQUIRE(none);
    CHECK(format_extensions({none->response}) == "permessage-deflate");
    CHECK(none->params.client_max_window_bits == 15);
    // Offered without a value: the server may choose.
    CHECK(answer("permessage-deflate; client_max_window_bits", o) ==
          "permessage-deflate; client_max_window_bits=10");
    // Offered with a value: the client will use no more than that.
    CHECK(answer("permessage-deflate; client_max_window_bits=9", o) ==
          "permessage-deflate; client_max_window_bits=9");
    CHECK(answer("permessage-deflate; client_max_window_bits=12", o) ==
          "permessage-deflate; client_max_window_bits=10");
    CHECK(answer("permessage-deflate; client_max_window_bits=12") ==
          "permessage-deflate; client_max_window_bits=12");
    CHECK(answer("permessage-deflate; client_max_window_bits") == "permessage-deflate");
}

// ===================================================================== negotiation: client

TEST_CASE("RFC 7692 5 and 7.1: the client's offer names what its options ask for",
          "[deflate][negotiation]") {
    CHECK(format_extensions({make_deflate_offer(client_on())}) ==
          "permessage-deflate; client_max_window_bits");
    auto o = client_on();
    o.server_no_context_takeover = true;
    o.client_no_context_takeover = true;
    o.server_max_window_bits = 10;
    o.client_max_window_bits = 11;
    CHECK(format_extensions({make_deflate_offer(o)}) ==
          "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
          "server_max_window_bits=10; client_max_window_bits=11");
    // What we offer, a server of ours accepts as offered.
    auto s = server_on();
    const auto agreed = negotiate_deflate({make_deflate_offer(o)}, s);
    REQUIRE(agreed);
    deflate_params p;
    REQUIRE_FALSE(accept_deflate_response(agreed->response, o, p));
    CHECK(p == agreed->params);
    CHECK(p.server_no_context_takeover);
    CHECK(p.client_no_context_takeover);
    CHECK(p.server_max_window_bits == 10);
    CHECK(p.client_max_window_bits == 11);
}

TEST_CASE("RFC 7692 5: a client fails on a response with unknown, duplicated or invalid "
          "parameters",
          "[deflate][negotiation]") {
    for (const char* bad : {
             "permessage-deflate; unknown_param",
             "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
             "permessage-deflate; client_max_window_bits=10; client_max_window_bits=10",
             "permessage-deflate; server_max_window_bits",
             "permessage-deflate; server_max_window_bits=16",
             "permessage-deflate; server_max_window_bits=09",
             "permessage-deflate; client_no_context_takeover=yes",
             "x-other",
         }) {
        INFO(bad);
        CHECK(client_check(bad) == error::bad_extension_params);
    }
}

TEST_CASE("RFC 7692 7.1.1.1: a client that asked for server_no_context_takeover fails on a "
          "response without it, and accepts it unasked",
          "[deflate][negotiation]") {
    auto o = client_on();
    o.server_no_context_takeover = true;
    CHECK(client_check("permessage-deflate", o) == error::bad_extension_params);
    deflate_params p;
    CHECK_FALSE(client_check("permessage-deflate; server_no_context_takeover", client_on(), &p));
    CHECK(p.server_no_context_takeover);
}

TEST_CASE("RFC 7692 7.1.1.2: client_no_context_takeover in a response binds the client, and so "
          "does its own hint",
          "[deflate][negotiation]") {
    deflate_params p;
    CHECK_FALSE(client_check("permessage-deflate; client_no_context_takeover", client_on(), &p));
    CHECK(p.client_no_context_takeover);
    auto hint = client_on();
    hint.client_no_context_takeover = true;
    CHECK_FALSE(client_check("permessage-deflate", hint, &p));
    CHECK(p.client_no_context_takeover);
}

TEST_CASE("RFC 7692 7.1.2.1: a client fails on a server_max_window_bits above the one it asked "
          "for",
          "[deflate][negotiation]") {
    auto o = client_on();
    o.server_max_window_bits = 10;
    deflate_params p;
    CHECK_FALSE(client_check("permessage-deflate; server_max_window_bits=10", o, &p));
    CHECK(p.server_max_window_bits == 10);
    CHECK_FALSE(client_check("permessage-deflate; server_max_window_bits=8", o, &p));
    CHECK(p.server_max_window_bits == 8);
    CHECK(client_check("permessage-deflate; server_max_window_bits=11", o) ==
          error::bad_extension_params);
    // Not asked: any valid value; absent: the server keeps 15 unless we limited it.
    CHECK_FALSE(client_check("permessage-deflate; server_max_window_bits=12", client_on(), &p));
    CHECK(p.server_max_window_bits == 12);
    CHECK_FALSE(client_check("permessage-deflate", o, &p));
    CHECK(p.server_max_window_bits == 10);
}

TEST_CASE("RFC 7692 7.1.2.2: a client fails on client_max_window_bits without a value or above "
          "its offer",
          "[deflate][negotiation]") {
    CHECK(client_check("permessage-deflate; client_max_window_bits") ==
          error::bad_extension_params);
    auto o = client_on();
    o.client_max_window_bits = 10;
    CHECK(client_check("permessage-deflate; client_max_window_bits=11", o) ==
          error::bad_extension_params);
    deflate_params p;
    CHECK_FALSE(client_check("permessage-deflate; client_max_window_bits=9", o, &p));
    CHECK(p.client_max_window_bits == 9);
    CHECK_FALSE(client_check("permessage-deflate", o, &p));
    CHECK(p.client_max_window_bits == 10);
}

// ===================================================================== handshake wiring

namespace {

const std::array<std::uint8_t, 16> nonce = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

client_options client_with(deflate_client_options d) {
    client_options o;
    o.host = "example.com";
    o.deflate = d;
    return o;
}

// A 101 for `client`'s request, with `extensions` as its Sec-WebSocket-Extensions value.
std::string response_for(const client_handshake& client, std::string_view extensions) {
    std::string out = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: " +
                      accept_key(client.key()) + "\r\n";
    if (!extensions.empty()) out.append("Sec-WebSocket-Extensions: ").append(extensions) += "\r\n";
    return out + "\r\n";
}

} // namespace

TEST_CASE("RFC 7692 5: both handshakes agree on permessage-deflate and tell the session what",
          "[deflate][handshake]") {
    auto offer = client_on();
    offer.client_no_context_takeover = true;
    client_options copts = client_with(offer);
    copts.extensions = "x-other; a=1";
    client_handshake client(copts, nonce);
    REQUIRE_FALSE(client.error());
    CHECK(client.request().find("Sec-WebSocket-Extensions: permessage-deflate; "
                                "client_no_context_takeover; client_max_window_bits, "
                                "x-other; a=1\r\n") != std::string::npos);

    server_handshake::options sopts;
    sopts.deflate = server_on();
    sopts.deflate.server_max_window_bits = 12;
    server_handshake server(sopts);
    REQUIRE(server.feed(client.request()).status == progress::done);
    const std::string response = server.accept();
    CHECK(response.find("Sec-WebSocket-Extensions: permessage-deflate; client_no_context_takeover; "
                        "server_max_window_bits=12\r\n") != std::string::npos);
    REQUIRE(server.deflate());
    CHECK(server.deflate()->client_no_context_takeover);
    CHECK(server.deflate()->server_max_window_bits == 12);

    REQUIRE(client.feed(response).status == progress::done);
    REQUIRE(client.deflate());
    CHECK(*client.deflate() == *server.deflate());
}

TEST_CASE("RFC 7692 5: a server that declines, or a client that did not offer, leaves it off",
          "[deflate][handshake]") {
    client_handshake client(client_with(client_on()), nonce);
    server_handshake server; // deflate not enabled
    REQUIRE(server.feed(client.request()).status == progress::done);
    const std::string response = server.accept();
    CHECK(response.find("Sec-WebSocket-Extensions") == std::string::npos);
    CHECK_FALSE(server.deflate());
    REQUIRE(client.feed(response).status == progress::done);
    CHECK_FALSE(client.deflate());

    client_handshake plain(client_with({}), nonce);
    CHECK(plain.request().find("Sec-WebSocket-Extensions") == std::string::npos);
    CHECK(plain.feed(response_for(plain, "permessage-deflate")).error ==
          error::unexpected_extension);
}

TEST_CASE("RFC 7692 5: a client fails the handshake on a permessage-deflate response it did not "
          "allow",
          "[deflate][handshake]") {
    auto o = client_on();
    o.server_max_window_bits = 10;
    for (const char* bad : {"permessage-deflate; server_max_window_bits=11",
                            "permessage-deflate; client_max_window_bits",
                            "permessage-deflate; nope", "permessage-deflate, permessage-deflate"}) {
        INFO(bad);
        client_handshake client(client_with(o), nonce);
        const auto r = client.feed(response_for(client, bad));
        CHECK(r.status == progress::failed);
        CHECK(r.error == error::bad_extension_params);
        CHECK_FALSE(client.deflate());
    }
    // Offering it twice, once by hand, is refused before anything is sent.
    client_options twice = client_with(client_on());
    twice.extensions = "permessage-deflate";
    client_handshake refused(twice, nonce);
    CHECK(refused.error() == error::bad_extension_header);
    CHECK(refused.request().empty());
}

// ===================================================================== receiving

TEST_CASE("RFC 7692 7.2.3.1: 'Hello' compressed in one frame is delivered inflated",
          "[deflate][session]") {
    const std::string wire = bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
    const auto out = run_every_split(role::client, wire, with_deflate());
    REQUIRE(out.events == std::vector<recorded>{message(opcode::text, "Hello")});
    CHECK(out.state == session_state::open);
}

TEST_CASE("RFC 7692 7.2.3.2: a second 'Hello' refers back into the first (context takeover)",
          "[deflate][session]") {
    const std::string wire = bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}) +
                             bytes({0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00});
    const auto out = run_every_split(role::client, wire, with_deflate());
    CHECK(out.events ==
          std::vector<recorded>{message(opcode::text, "Hello"), message(opcode::text, "Hello")});
}

TEST_CASE("RFC 7692 7.2.3.3, 7.2.3.4, 7.2.3.5: stored blocks, a final block and two blocks all "
          "inflate to 'Hello'",
          "[deflate][session]") {
    for (const std::string& wire :
         {bytes({0xc1, 0x0b, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00}),
          bytes({0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}),
          bytes({0xc1, 0x0d, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07,
                 0x00})}) {
        const auto out = run_every_split(role::client, wire, with_deflate());
        CHECK(out.events == std::vector<recorded>{message(opcode::text, "Hello")});
    }
    // After a final block (BFINAL) the next message starts a fresh stream.
    const std::string twice = bytes({0xc1, 0x08, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00}) +
                              bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
    CHECK(run_every_split(role::client, twice, with_deflate()).events ==
          std::vector<recorded>{message(opcode::text, "Hello"), message(opcode::text, "Hello")});
}

TEST_CASE("RFC 7692 6.1: a compressed message in fragments has RSV1 on its first frame only",
          "[deflate][session]") {
    std::string text;
    for (int i = 0; i < 40; ++i) text += "fragmented and compressed, " + std::to_string(i) + "; ";
    const std::string z = peer_compress(text);
    const std::size_t a = z.size() / 3, b = 2 * z.size() / 3;
    const std::string wire = frame(opcode::text, z.substr(0, a), false, true, true) +
                             frame(opcode::ping, "p", true, true, false) +
                             frame(opcode::continuation, z.substr(a, b - a), false, true, false) +
                             frame(opcode::continuation, z.substr(b), true, true, false) +
                             frame(opcode::binary, "raw", true, true, false);
    const auto out = run_every_split(role::server, wire, with_deflate());
    REQUIRE(out.events.size() == 3);
    CHECK(out.events[0].type == event_type::ping);
    CHECK(out.events[1] == message(opcode::text, text));
    // An uncompressed message (RSV1 clear) is delivered as it came.
    CHECK(out.events[2] == message(opcode::binary, "raw"));

    session_options partial = with_deflate();
    partial.deliver_partial_messages = true;
    // Partial delivery: inflated pieces as frames arrive (some before the ping), no RSV1 seen.
    const auto pieces = run_every_split(role::server, wire, partial);
    std::string first;
    bool ended = false, pinged = false;
    for (const auto& e : pieces.events) {
        if (e.type == event_type::ping) pinged = true;
        if (ended || (e.type != event_type::message_data && e.type != event_type::message_end))
            continue;
        first += e.data;
        ended = e.type == event_type::message_end;
    }
    CHECK(pinged);
    CHECK(ended);
    CHECK(first == text);
    CHECK(pieces.events.back() == recorded{event_type::message_end, opcode::binary, "raw", 0, {}});
}

TEST_CASE("RFC 7692 6.1: RSV1 on a continuation frame fails the connection with 1002",
          "[deflate][session]") {
    const std::string z = peer_compress("Hello, world");
    const std::string wire = frame(opcode::text, z.substr(0, 4), false, true, true) +
                             frame(opcode::continuation, z.substr(4), true, true, true);
    const auto out = run_every_split(role::server, wire, with_deflate());
    CHECK(out.events == std::vector<recorded>{failure(error::reserved_bits, 1002)});
    CHECK(out.state == session_state::failed);
}

TEST_CASE("RFC 7692 6: RSV1 on a control frame, or without the extension, fails with 1002",
          "[deflate][session]") {
    const std::string ping = frame(opcode::ping, "", true, true, true);
    CHECK(run_every_split(role::server, ping, with_deflate()).events ==
          std::vector<recorded>{failure(error::reserved_bits, 1002)});
    const std::string compressed = frame(opcode::text, peer_compress("Hello"), true, true, true);
    CHECK(run_every_split(role::server, compressed, session_options{}).events ==
          std::vector<recorded>{failure(error::reserved_bits, 1002)});
}

TEST_CASE("RFC 7692 7.2.2: data that does not inflate fails with 1002, bytes after a final block "
          "are ignored (as in 7.2.3.4)",
          "[deflate][session]") {
    const std::string garbage =
        frame(opcode::binary, bytes({0xff, 0xff, 0xff, 0xff}), true, true, true);
    CHECK(run_every_split(role::server, garbage, with_deflate()).events ==
          std::vector<recorded>{failure(error::bad_compressed_data, 1002)});
    const std::string after_final =
        frame(opcode::text,
              bytes({0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00, 0xf2, 0x48, 0x05, 0x00}), true,
              true, true);
    const auto out = run_every_split(role::server, after_final, with_deflate());
    CHECK(out.events == std::vector<recorded>{message(opcode::text, "Hello")});
}

TEST_CASE("RFC 6455 10.4 with RFC 7692: a decompression bomb fails with 1009 as soon as the "
          "inflated size passes max_message_size",
          "[deflate][session][limits]") {
    // 64 MiB of zeros compress to about 64 KiB; the limit is 1 MiB.
    const std::string zeros(64U << 20, '\0');
    const std::string z = peer_compress(zeros);
    REQUIRE(z.size() < zeros.size() / 500);
    for (const bool partial : {false, true}) {
        session_options o = with_deflate();
        o.max_message_size = 1U << 20;
        o.deliver_partial_messages = partial;
        const std::string wire = frame(opcode::binary, z, true, true, true);
        session s(role::server, o, test_seed);
        // Fed in 256-byte reads, as a socket would deliver it: the failure comes within the
        // first reads (about 1 KiB inflates past 1 MiB), not after the whole frame.
        std::size_t fed = 0, delivered = 0, largest_event = 0;
        event last;
        while (fed < wire.size() && last.type != event_type::error) {
            std::string piece = wire.substr(fed, 256);
            fed += piece.size();
            std::size_t used = 0;
            for (;;) {
                const auto r = s.receive(piece.data() + used, piece.size() - used);
                used += r.consumed;
                if (r.ev.type == event_type::none) break;
                last = r.ev;
                if (r.ev.type == event_type::message_data) {
                    delivered += r.ev.data.size();
                    largest_event = std::max(largest_event, r.ev.data.size());
                }
                if (r.ev.type == event_type::error) break;
            }
        }
        INFO("partial delivery: " << partial);
        CHECK(last.type == event_type::error);
        CHECK(last.error == error::message_too_big);
        CHECK(last.code == 1009);
        CHECK(fed < wire.size() / 8);
        CHECK(delivered <= o.max_message_size);
        CHECK(largest_event <= o.max_message_size);
        CHECK(s.state() == session_state::failed);
        CHECK_FALSE(s.holds_deflate_state());
    }
    // A message at the limit that does not compress is larger on the wire than the limit: it
    // is the inflated size that counts (the wire gets deflate's worst case on top).
    std::string random_bytes(1000, '\0');
    std::mt19937 rng(1000);
    for (auto& c : random_bytes) c = static_cast<char>(rng());
    const std::string incompressible = peer_compress(random_bytes);
    REQUIRE(incompressible.size() > 1000);
    session_options small = with_deflate();
    small.max_message_size = 1000;
    small.max_frame_size = 1000;
    CHECK(run_every_split(role::server, frame(opcode::binary, incompressible, true, true, true),
                          small)
              .events == std::vector<recorded>{message(opcode::binary, random_bytes)});
    random_bytes.push_back('!');
    CHECK(run(role::server, frame(opcode::binary, peer_compress(random_bytes), true, true, true),
              {}, small)
              .events == std::vector<recorded>{failure(error::message_too_big, 1009)});
    // Exactly at the limit is allowed.
    session_options o = with_deflate();
    o.max_message_size = 4096;
    const std::string at_limit(4096, 'a');
    const auto ok =
        run(role::server, frame(opcode::text, peer_compress(at_limit), true, true, true), {}, o);
    CHECK(ok.events == std::vector<recorded>{message(opcode::text, at_limit)});
}

TEST_CASE("RFC 7692 with RFC 6455 8.1: UTF-8 is validated on the inflated bytes, failing fast "
          "with 1007",
          "[deflate][session][utf8]") {
    const std::string bad = peer_compress("valid so far \xC3\x28 and then not");
    CHECK(run_every_split(role::server, frame(opcode::text, bad, true, true, true), with_deflate())
              .events == std::vector<recorded>{failure(error::invalid_utf8, 1007)});
    // A multi-byte sequence split across the inflated output of two frames is fine.
    const std::string good_text = "caf\xC3\xA9 \xF0\x9F\x98\x80 ok";
    const std::string good = peer_compress(good_text);
    const std::string wire =
        frame(opcode::text, good.substr(0, good.size() / 2), false, true, true) +
        frame(opcode::continuation, good.substr(good.size() / 2), true, true, false);
    CHECK(run_every_split(role::server, wire, with_deflate()).events ==
          std::vector<recorded>{message(opcode::text, good_text)});
    // Bad text before data that does not inflate is reported as bad text, however it is cut.
    const std::string then_garbage = bad + bytes({0xff, 0xff, 0xff});
    CHECK(run_every_split(role::server, frame(opcode::text, then_garbage, true, true, true),
                          with_deflate())
              .events == std::vector<recorded>{failure(error::invalid_utf8, 1007)});
    // Fail fast: the first frame's bad byte fails before the message ends.
    std::string long_bad(4000, 'x');
    long_bad[10] = '\xFF';
    const std::string z = peer_compress(long_bad);
    const auto out =
        run(role::server, frame(opcode::text, z, false, true, true), {}, with_deflate());
    CHECK(out.events == std::vector<recorded>{failure(error::invalid_utf8, 1007)});
}

// ===================================================================== sending

TEST_CASE("RFC 7692 7.2.3.1 and 7.2.3.2: what we send for 'Hello' twice is the RFC's example",
          "[deflate][session][send]") {
    session s(role::server, with_deflate(), test_seed);
    REQUIRE_FALSE(s.send_text("Hello"));
    REQUIRE_FALSE(s.send_text("Hello"));
    CHECK(std::string(s.pending_output()) ==
          bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}) +
              bytes({0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00}));
    CHECK(s.holds_deflate_state());
}

TEST_CASE("RFC 7692 7.1.1.1: without context takeover each message compresses alone and no "
          "zlib state is held between messages",
          "[deflate][session][send]") {
    deflate_params p;
    p.server_no_context_takeover = true;
    p.client_no_context_takeover = true;
    session s(role::server, with_deflate(p), test_seed);
    REQUIRE_FALSE(s.send_text("Hello"));
    REQUIRE_FALSE(s.send_text("Hello"));
    const std::string one = bytes({0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
    CHECK(std::string(s.pending_output()) == one + one);
    CHECK_FALSE(s.holds_deflate_state());
    // Receiving: the decompressor is released after each message too.
    std::string in = frame(opcode::text, peer_compress("Hello"), true, true, true);
    const auto r = s.receive(in.data(), in.size());
    CHECK(r.ev.type == event_type::message);
    CHECK(r.ev.data == "Hello");
    CHECK_FALSE(s.holds_deflate_state());
}

TEST_CASE("RFC 7692 6: RSV1 is set on compressed messages only: never on control frames, "
          "fragments, or messages under the threshold",
          "[deflate][session][send]") {
    session s(role::client, with_deflate({}, 10), test_seed);
    REQUIRE_FALSE(s.send_text("short"));                   // under the threshold
    REQUIRE_FALSE(s.send_text("long enough to compress")); // compressed
    REQUIRE_FALSE(s.ping("ping"));
    REQUIRE_FALSE(s.send(opcode::binary, "fragment one, not compressed", false));
    REQUIRE_FALSE(s.send(opcode::continuation, "and two", true));
    REQUIRE_FALSE(s.send_binary(""));
    REQUIRE_FALSE(s.close());
    CHECK(first_bytes(std::string(s.pending_output())) ==
          std::vector<unsigned>{0x81, 0xc1, 0x89, 0x02, 0x80, 0x82, 0x88});
    // The threshold of 0 still sends an empty message uncompressed.
    session zero(role::client, with_deflate(), test_seed);
    REQUIRE_FALSE(zero.send_binary(""));
    CHECK(first_bytes(std::string(zero.pending_output())) == std::vector<unsigned>{0x82});
}

TEST_CASE("RFC 7692 7.2.1: prepare_message() gives the compressed body for the caller to write",
          "[deflate][session][send]") {
    session s(role::client, with_deflate(), test_seed);
    frame_prefix prefix;
    std::string_view body;
    const std::string text(3000, 'z');
    REQUIRE_FALSE(s.prepare_message(opcode::text, text, prefix, body));
    CHECK(body.size() < 100);
    CHECK(body.data() != text.data());
    CHECK((prefix.bytes[0] & 0x40U) != 0);
    REQUIRE(prefix.masked);
    std::string wire(prefix.view());
    const std::size_t at = wire.size();
    wire.append(body);
    apply_mask(&wire[at], body.size(), prefix.key);
    CHECK(run(role::server, wire, {}, with_deflate()).events ==
          std::vector<recorded>{message(opcode::text, text)});
    // Without the extension the body is the payload itself.
    session plain(role::client, {}, test_seed);
    REQUIRE_FALSE(plain.prepare_message(opcode::binary, text, prefix, body));
    CHECK(body.data() == text.data());
    CHECK((prefix.bytes[0] & 0x40U) == 0);
    CHECK(plain.prepare_message(opcode::continuation, text, prefix, body) == error::bad_opcode);
}

TEST_CASE("RFC 7692 7.1.2.1: with an 8-bit window, what we send inflates with a 256-byte window",
          "[deflate][session][send]") {
    deflate_params p;
    p.server_max_window_bits = 8;
    session s(role::server, with_deflate(p), test_seed);
    std::string text;
    for (int i = 0; i < 200; ++i) text += "repeat repeat " + std::to_string(i % 7);
    REQUIRE_FALSE(s.send_text(text));
    const std::string wire(s.pending_output());
    frame_header h;
    const auto r = decode_frame_header(reinterpret_cast<const unsigned char*>(wire.data()),
                                       wire.size(), h, {true, false, false});
    REQUIRE(r.status == progress::done);
    CHECK(h.rsv1);
    std::string z = wire.substr(r.size) + bytes({0x00, 0x00, 0xff, 0xff});
    z_stream in{};
    REQUIRE(inflateInit2(&in, -8) == Z_OK);
    std::string out(text.size() + 16, '\0');
    in.next_in = reinterpret_cast<Bytef*>(&z[0]);
    in.avail_in = static_cast<uInt>(z.size());
    in.next_out = reinterpret_cast<Bytef*>(&out[0]);
    in.avail_out = static_cast<uInt>(out.size());
    CHECK(inflate(&in, Z_SYNC_FLUSH) == Z_OK);
    out.resize(out.size() - in.avail_out);
    inflateEnd(&in);
    CHECK(out == text);
}

TEST_CASE("RFC 7692 round trip: random messages, windows, context takeover and reads, both roles",
          "[deflate][session][property]") {
    std::mt19937 rng(7692);
    for (const role sender : {role::client, role::server}) {
        for (int round = 0; round < 40; ++round) {
            deflate_params p;
            p.server_no_context_takeover = rng() % 2 == 0;
            p.client_no_context_takeover = rng() % 2 == 0;
            p.server_max_window_bits = 8 + static_cast<int>(rng() % 8);
            p.client_max_window_bits = 8 + static_cast<int>(rng() % 8);
            session_options o = with_deflate(p, rng() % 64);
            o.compression.level = static_cast<int>(rng() % 10);
            o.compression.mem_level = 1 + static_cast<int>(rng() % 9);
            session tx(sender, o, test_seed);
            std::vector<recorded> expected;
            const int messages = 1 + static_cast<int>(rng() % 6);
            for (int m = 0; m < messages; ++m) {
                const bool text = rng() % 2 == 0;
                std::string body(rng() % 3 == 0 ? rng() % 70000 : rng() % 300, '\0');
                // Compressible: a small alphabet with repeats.
                for (auto& c : body)
                    c = text ? static_cast<char>('a' + rng() % 4) : static_cast<char>(rng() % 8);
                if (text && body.size() >= 4) body.replace(body.size() / 2, 4, "\xF0\x9F\x98\x80");
                const opcode op = text ? opcode::text : opcode::binary;
                if (rng() % 5 == 0 && body.size() > 2) {
                    // A fragmented message goes uncompressed, between compressed ones.
                    REQUIRE_FALSE(tx.send(op, std::string_view(body).substr(0, 1), false));
                    REQUIRE_FALSE(tx.send(opcode::continuation, std::string_view(body).substr(1)));
                } else {
                    REQUIRE_FALSE(tx.send(op, body));
                }
                if (rng() % 4 == 0) REQUIRE_FALSE(tx.ping("k"));
                expected.push_back(message(op, body));
            }
            const std::string wire(tx.pending_output());
            std::vector<std::size_t> cuts;
            std::size_t pos = 0;
            while (true) {
                pos += 1 + rng() % 2000;
                if (pos >= wire.size()) break;
                cuts.push_back(pos);
            }
            const role reader = sender == role::client ? role::server : role::client;
            session_options ro = with_deflate(p);
            ro.deliver_partial_messages = rng() % 2 == 0;
            const auto out = run(reader, wire, cuts, ro);
            std::vector<recorded> messages_only;
            for (const auto& e : merged(out.events)) {
                if (e.type == event_type::ping || e.type == event_type::message_start) continue;
                recorded whole = e;
                if (whole.type == event_type::message_end) whole.type = event_type::message;
                messages_only.push_back(whole);
            }
            INFO("round " << round);
            REQUIRE(messages_only == expected);
            CHECK(out.state == session_state::open);
        }
    }
}

// ===================================================================== codec

TEST_CASE("RFC 7692 7.2.2: the inflater stops at its limit in bounded steps, however the input "
          "is cut",
          "[deflate][codec]") {
    const std::string z = peer_compress(std::string(200000, 'q'));
    for (const std::size_t step : {std::size_t{1}, std::size_t{7}, z.size()}) {
        message_inflater inflater(15, false);
        std::string out;
        std::error_code ec;
        std::size_t at = 0;
        while (!ec && at < z.size()) {
            const std::size_t n = std::min(step, z.size() - at);
            ec = inflater.inflate(z.data() + at, n, at + n == z.size(), out, 50000);
            at += n;
        }
        INFO("step " << step);
        CHECK(ec == error::message_too_big);
        CHECK(out.size() <= 50001);
        CHECK_FALSE(inflater.holds_state());
        // After a failure the next message starts afresh.
        const std::string hello = bytes({0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00});
        std::string again;
        CHECK_FALSE(inflater.inflate(hello.data(), hello.size(), true, again, 100));
        CHECK(again == "Hello");
    }
}

// ===================================================================== broadcasts, compressed once

TEST_CASE("RFC 7692 7.1.1.1: a server without context takeover has settings a broadcast can "
          "share, and one with context takeover or a client has none",
          "[deflate][session][send]") {
    deflate_params p;
    p.server_no_context_takeover = true;
    p.server_max_window_bits = 10;
    session_options o = with_deflate(p, 100);
    o.compression.level = 12; // clamped, as the compressor clamps it
    o.compression.mem_level = 5;
    session server(role::server, o, test_seed);
    const auto settings = server.shared_compression();
    REQUIRE(settings);
    CHECK(*settings == stateless_deflate{10, 9, 5});
    CHECK_FALSE(server.would_compress(99));
    CHECK(server.would_compress(100));

    CHECK_FALSE(session(role::server, with_deflate(), test_seed).shared_compression());
    CHECK_FALSE(session(role::client, with_deflate(p), test_seed).shared_compression());
    session plain(role::server, session_options{}, test_seed);
    CHECK_FALSE(plain.shared_compression());
    CHECK_FALSE(plain.would_compress(5000));
}

TEST_CASE("RFC 7692 7.2.1: a shared message compresses once per settings, on any number of "
          "threads, into the frame a server session without context takeover sends",
          "[deflate][send]") {
    std::string text;
    for (int i = 0; i < 200; ++i) text += R"({"user":"u)" + std::to_string(i % 7) + R"(","n":1},)";
    const auto message = duplex::shared_message::text(text);
    REQUIRE(message);
    CHECK(message.compressions() == 0);

    const stateless_deflate settings{15, 6, 8};
    std::vector<const char*> seen(4, nullptr);
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < seen.size(); ++t)
        threads.emplace_back([&, t] {
            for (int i = 0; i < 50; ++i) seen[t] = message.compressed_frame(settings).data();
        });
    for (auto& t : threads) t.join();
    const std::string_view compressed = message.compressed_frame(settings);
    REQUIRE_FALSE(compressed.empty());
    for (const char* p : seen) CHECK(p == compressed.data()); // one buffer, shared
    CHECK(message.compressions() == 1);

    // The same bytes a session without context takeover sends, twice over.
    deflate_params p;
    p.server_no_context_takeover = true;
    session s(role::server, with_deflate(p), test_seed);
    REQUIRE_FALSE(s.send_text(text));
    CHECK(std::string(s.pending_output()) == compressed);
    CHECK(first_bytes(std::string(compressed)) == std::vector<unsigned>{0xc1});
    // And what a peer inflates is the message.
    session peer(role::client, with_deflate(p), test_seed);
    std::string wire(compressed);
    const auto r = peer.receive(wire.data(), wire.size());
    CHECK(r.ev.type == event_type::message);
    CHECK(r.ev.data == text);

    // Other settings: compressed again, once, for a peer with a 512-byte window.
    const std::string_view small = message.compressed_frame({9, 6, 8});
    REQUIRE_FALSE(small.empty());
    CHECK(small.data() != compressed.data());
    CHECK(message.compressed_frame({9, 6, 8}).data() == small.data());
    CHECK(message.compressions() == 2);
    p.server_max_window_bits = 9;
    session narrow(role::client, with_deflate(p), test_seed);
    wire = std::string(small);
    const auto r9 = narrow.receive(wire.data(), wire.size());
    CHECK(r9.ev.type == event_type::message);
    CHECK(r9.ev.data == text);

    // Past max_compressed_forms settings: none, and the frame goes uncompressed.
    for (int level = 1; level <= 2; ++level)
        CHECK_FALSE(message.compressed_frame({15, level, 8}).empty());
    CHECK(message.compressed_frame({15, 3, 8}).empty());
    CHECK(message.compressions() == duplex::shared_message::max_compressed_forms);
    CHECK(duplex::shared_message::binary("").compressed_frame(settings).empty());
}

TEST_CASE("RFC 7692 7.1.1.1: without context takeover, starting afresh for every message reuses "
          "the thread's zlib memory instead of allocating it again",
          "[deflate][send]") {
    const std::string text(3000, 'q');
    std::string out;
    message_deflater deflater(15, true, 6, 8);
    REQUIRE(deflater.compress(text, out));
    CHECK_FALSE(deflater.holds_state());
    // What the compressor freed is kept for its next message (or another one on this thread).
    const std::size_t held = detail::zlib_block_cache::held();
    CHECK(held > 0);
    for (int i = 0; i < 20; ++i) REQUIRE(deflater.compress(text, out));
    CHECK(detail::zlib_block_cache::held() == held);
    // And the messages are still whole: each inflates alone.
    message_inflater inflater(15, true);
    std::string inflated;
    REQUIRE_FALSE(inflater.inflate(out.data(), out.size(), true, inflated, 1U << 20));
    CHECK(inflated == text);
}
