// The session state machine: every stream is fed whole, at every split point and one byte at a
// time, and must produce the same events and the same output each way.
#include "catch.hpp"

#include <duplex/protocol/session.hpp>

#include "../common/test_frames.hpp"

#include <cstring>
#include <random>
#include <string>
#include <vector>

using namespace duplex::protocol;
using duplex::error;
using namespace test_frames;

namespace {

const random_source::seed_type test_seed = {11, 22, 33, 44, 55, 66, 77, 88};

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

// What a client sends (masked) and what a server sends (unmasked), built by hand
// (tests/common/test_frames.hpp).
std::string from_client(opcode op, std::string_view payload, fin_bit fin = fin_bit::set) {
    return frame(op, payload, masking::client, fin);
}
std::string from_server(opcode op, std::string_view payload, fin_bit fin = fin_bit::set) {
    return frame(op, payload, masking::none, fin);
}

struct outcome {
    std::vector<recorded> events;
    std::string output;
    session_state state;
};

// Feeds `input` in pieces that end at `cuts` (sorted offsets); each piece is its own buffer,
// as separate socket reads would be.
outcome run(role r, const std::string& input, const std::vector<std::size_t>& cuts,
            session_options options = {}) {
    session s(r, options, test_seed);
    outcome out;
    std::size_t begin = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(input.size());
    for (std::size_t end : ends) {
        std::string piece = input.substr(begin, end - begin);
        char* data = piece.data();
        std::size_t size = piece.size();
        for (;;) {
            auto result = s.receive(data, size);
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

// Partial delivery splits data differently per cut; merge adjacent pieces to compare.
std::vector<recorded> merge_pieces(const std::vector<recorded>& events) {
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

// The heart of the sans-I/O promise: the same result whatever the read boundaries.
outcome run_every_split(role r, const std::string& input, session_options options = {}) {
    const outcome whole = run(r, input, {}, options);
    auto normal = [&](const outcome& o) {
        return options.deliver_partial_messages ? merge_pieces(o.events) : o.events;
    };
    for (std::size_t cut = 1; cut < input.size(); ++cut) {
        const outcome split = run(r, input, {cut}, options);
        INFO("split at " << cut);
        REQUIRE(normal(split) == normal(whole));
        REQUIRE(split.output == whole.output);
        REQUIRE(split.state == whole.state);
    }
    std::vector<std::size_t> every_byte;
    for (std::size_t i = 1; i < input.size(); ++i) every_byte.push_back(i);
    const outcome bytewise = run(r, input, every_byte, options);
    REQUIRE(normal(bytewise) == normal(whole));
    REQUIRE(bytewise.output == whole.output);
    return whole;
}

recorded message(opcode op, std::string data) {
    return {event_type::message, op, std::move(data), 0, {}};
}

// Reads what a session sent, with a session of the other role.
std::vector<recorded> decode_output(role sender, const std::string& output) {
    const role reader = sender == role::server ? role::client : role::server;
    return run(reader, output, {}).events;
}

} // namespace

TEST_CASE("RFC 6455 5.7: a masked 'Hello' from a client is one text message", "[session]") {
    const std::string wire("\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11);
    const auto out = run_every_split(role::server, wire);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0] == message(opcode::text, "Hello"));
    CHECK(out.output.empty());
    CHECK(out.state == session_state::open);
}

TEST_CASE("RFC 6455 5.7: an unmasked 'Hello' from a server is one text message", "[session]") {
    const std::string wire("\x81\x05Hello", 7);
    const auto out = run_every_split(role::client, wire);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0] == message(opcode::text, "Hello"));
}

TEST_CASE("RFC 6455 5.7: a fragmented 'Hel' + 'lo' is one message", "[session]") {
    const std::string wire("\x01\x03Hel\x80\x02lo", 9);
    const auto out = run_every_split(role::client, wire);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0] == message(opcode::text, "Hello"));
}

TEST_CASE("RFC 6455 5.7: 256-byte and 64 KiB binary messages", "[session]") {
    std::string small(256, '\0'), large(65536, '\0');
    for (std::size_t i = 0; i < large.size(); ++i) large[i] = static_cast<char>(i * 31);
    small = large.substr(0, 256);
    const auto out_small = run_every_split(role::client, from_server(opcode::binary, small));
    CHECK(out_small.events == std::vector<recorded>{message(opcode::binary, small)});
    // The 64 KiB one: a few cuts instead of all 65,000 (each is a full copy).
    const std::string wire = frame(opcode::binary, large, masking::client, fin_bit::set);
    for (std::size_t cut : {1U, 2U, 9U, 10U, 13U, 14U, 15U, 40000U}) {
        const auto out = run(role::server, wire, {cut});
        CHECK(out.events == std::vector<recorded>{message(opcode::binary, large)});
    }
}

TEST_CASE("RFC 6455 5.4: control frames may be injected between fragments", "[session]") {
    const std::string wire =
        from_client(opcode::text, "fra", fin_bit::clear) + from_client(opcode::ping, "p1") +
        from_client(opcode::continuation, "gme", fin_bit::clear) + from_client(opcode::pong, "p2") +
        from_client(opcode::continuation, "nted", fin_bit::set);
    const auto out = run_every_split(role::server, wire);
    const std::vector<recorded> expected = {
        {event_type::ping, opcode::text, "p1", 0, {}},
        {event_type::pong, opcode::text, "p2", 0, {}},
        message(opcode::text, "fragmented"),
    };
    CHECK(out.events == expected);
    CHECK(out.output == std::string("\x8a\x02p1", 4)); // the server's automatic pong
}

TEST_CASE("RFC 6455 5.4: empty fragments and empty messages are delivered", "[session]") {
    const std::string wire = from_client(opcode::binary, "", fin_bit::clear) +
                             from_client(opcode::continuation, "", fin_bit::clear) +
                             from_client(opcode::continuation, "", fin_bit::set) +
                             from_client(opcode::text, "");
    const auto out = run_every_split(role::server, wire);
    const std::vector<recorded> expected = {message(opcode::binary, ""), message(opcode::text, "")};
    CHECK(out.events == expected);
}

TEST_CASE("RFC 6455 5.4: a continuation with no message in progress fails with 1002", "[session]") {
    const auto out = run_every_split(role::server, from_client(opcode::continuation, "x"));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].type == event_type::error);
    CHECK(out.events[0].error == error::unexpected_continuation);
    CHECK(out.events[0].code == 1002);
    CHECK(out.state == session_state::failed);
    const auto sent = decode_output(role::server, out.output);
    REQUIRE(sent.size() == 1);
    CHECK(sent[0].type == event_type::close);
    CHECK(sent[0].code == 1002);
}

TEST_CASE("RFC 6455 5.4: a new data frame inside a fragmented message fails with 1002",
          "[session]") {
    const std::string wire =
        from_client(opcode::text, "a", fin_bit::clear) + from_client(opcode::binary, "b");
    const auto out = run_every_split(role::server, wire);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::expected_continuation);
    CHECK(out.events[0].code == 1002);
}

TEST_CASE("RFC 6455 5.1: a server fails the connection on an unmasked client frame", "[session]") {
    const auto out = run_every_split(role::server, from_server(opcode::text, "hi"));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::mask_required);
    CHECK(out.events[0].code == 1002);
}

TEST_CASE("RFC 6455 5.1: a client fails the connection on a masked server frame", "[session]") {
    const auto out = run_every_split(role::client, from_client(opcode::text, "hi"));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::unexpected_mask);
    CHECK(out.events[0].code == 1002);
    // The client's own close frame is masked, as every client frame is.
    REQUIRE(out.output.size() >= 6);
    CHECK((static_cast<unsigned char>(out.output[1]) & 0x80U) != 0);
}

TEST_CASE("RFC 6455 5.2: reserved opcodes and RSV bits fail the connection with 1002",
          "[session]") {
    for (int op : {3, 7, 0xB, 0xF}) {
        const auto out =
            run(role::server, frame(static_cast<opcode>(op), "x", masking::client), {});
        REQUIRE(out.events.size() == 1);
        CHECK(out.events[0].error == error::reserved_opcode);
        CHECK(out.events[0].code == 1002);
    }
    const auto rsv = run_every_split(role::server,
                                     frame(opcode::text, "x", masking::client, fin_bit::set, 0x40));
    REQUIRE(rsv.events.size() == 1);
    CHECK(rsv.events[0].error == error::reserved_bits);

    session_options deflate;
    deflate.reserved_bits.rsv1 = true;
    const auto claimed = run(
        role::server, frame(opcode::text, "x", masking::client, fin_bit::set, 0x40), {}, deflate);
    REQUIRE(claimed.events.size() == 1);
    CHECK(claimed.events[0].type == event_type::message);
}

TEST_CASE("RFC 6455 5.5: control frames over 125 bytes or fragmented fail with 1002", "[session]") {
    std::string big_ping("\x89\x7E\x00\x7E", 4);
    big_ping.append(126, 'x');
    const auto out = run_every_split(role::client, big_ping);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::control_too_big);
    const auto frag = run_every_split(role::client, std::string("\x09\x01x", 3));
    REQUIRE(frag.events.size() == 1);
    CHECK(frag.events[0].error == error::control_fragmented);
}

TEST_CASE("RFC 6455 5.5.2: a ping is answered with a pong carrying the same data", "[session]") {
    const std::string payload(125, 'p');
    const auto server = run_every_split(role::server, from_client(opcode::ping, payload));
    REQUIRE(server.events.size() == 1);
    CHECK(server.events[0].type == event_type::ping);
    CHECK(server.events[0].data == payload);
    CHECK(server.output == std::string("\x8a\x7d", 2) + payload);

    const auto client = run_every_split(role::client, from_server(opcode::ping, "hey"));
    const auto pong = decode_output(role::client, client.output);
    REQUIRE(pong.size() == 1);
    CHECK(pong[0].type == event_type::pong);
    CHECK(pong[0].data == "hey");

    session_options manual;
    manual.auto_pong = false;
    const auto quiet = run(role::server, from_client(opcode::ping, "x"), {}, manual);
    CHECK(quiet.events.size() == 1);
    CHECK(quiet.output.empty());
}

TEST_CASE("RFC 6455 5.5.1: a close is answered with a close echoing the code", "[session]") {
    const auto out =
        run_every_split(role::server, from_client(opcode::close, close_payload(1001, "bye")));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].type == event_type::close);
    CHECK(out.events[0].code == 1001);
    CHECK(out.events[0].data == "bye");
    CHECK(out.output == std::string("\x88\x02\x03\xE9", 4));
    CHECK(out.state == session_state::closed);
}

TEST_CASE("RFC 6455 5.5.1: an empty close is answered with an empty close (code 1005 seen)",
          "[session]") {
    const auto out = run_every_split(role::client, from_server(opcode::close, ""));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].code == 1005);
    const auto reply = decode_output(role::client, out.output);
    REQUIRE(reply.size() == 1);
    CHECK(reply[0].type == event_type::close);
    CHECK(reply[0].code == 1005);
}

TEST_CASE("RFC 6455 5.5.1: a close payload of one byte fails with 1002", "[session]") {
    const auto out = run_every_split(role::server, from_client(opcode::close, "\x03"));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::bad_close_payload);
    CHECK(out.events[0].code == 1002);
}

TEST_CASE("RFC 6455 7.4.1: a close with a code not allowed on the wire fails with 1002",
          "[session]") {
    for (int code : {0, 999, 1004, 1005, 1006, 1015, 1100, 2999, 5000}) {
        const auto out = run_every_split(
            role::server,
            from_client(opcode::close, close_payload(static_cast<std::uint16_t>(code))));
        REQUIRE(out.events.size() == 1);
        CHECK(out.events[0].error == error::bad_close_code);
        CHECK(out.events[0].code == 1002);
    }
    for (int code : {1000, 1003, 1007, 1011, 3000, 4999}) {
        const auto out = run_every_split(
            role::server,
            from_client(opcode::close, close_payload(static_cast<std::uint16_t>(code))));
        REQUIRE(out.events.size() == 1);
        CHECK(out.events[0].type == event_type::close);
        CHECK(out.events[0].code == code);
    }
}

TEST_CASE("RFC 6455 5.5.1: a close reason that is not UTF-8 fails with 1007", "[session]") {
    const auto out = run_every_split(
        role::server, from_client(opcode::close, close_payload(1000, "\xCE\xBA\xE1\xBD")));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::invalid_utf8);
    CHECK(out.events[0].code == 1007);
}

TEST_CASE("RFC 6455 5.5.1: after a close is received, further input is ignored", "[session]") {
    const std::string wire = from_client(opcode::close, close_payload(1000)) +
                             from_client(opcode::text, "late") + "\xFF\xFF garbage";
    const auto out = run_every_split(role::server, wire);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].type == event_type::close);
    CHECK(out.state == session_state::closed);
}

TEST_CASE("RFC 6455 7.1.2: after sending a close, no data may be sent, the peer's close ends it",
          "[session]") {
    session s(role::server, {}, test_seed);
    REQUIRE_FALSE(s.close(1000, "done"));
    CHECK(s.state() == session_state::closing);
    CHECK(std::string(s.pending_output()) == std::string("\x88\x06\x03\xE8"
                                                         "done",
                                                         8));
    CHECK(s.send_text("more") == error::closed);
    CHECK(s.close() == error::closed);
    CHECK_FALSE(s.ping("still alive?")); // control frames are not data (5.5.1)
    s.consume_output(s.pending_output().size());

    // Data still arrives while closing (5.5.1: the peer may not have seen our close yet).
    std::string wire =
        from_client(opcode::text, "in flight") + from_client(opcode::close, close_payload(1000));
    const std::size_t before = s.pending_output().size();
    REQUIRE(before == 0);
    auto r1 = s.receive(wire.data(), wire.size());
    CHECK(r1.ev.type == event_type::message);
    CHECK(r1.ev.data == "in flight");
    auto r2 = s.receive(wire.data() + r1.consumed, wire.size() - r1.consumed);
    CHECK(r2.ev.type == event_type::close);
    CHECK(s.state() == session_state::closed);
    CHECK(s.wants_transport_close());
    CHECK(s.pending_output().size() == before); // no second close frame
}

TEST_CASE("RFC 6455 8.1: invalid UTF-8 in a text message fails with 1007", "[session][utf8]") {
    const auto out = run_every_split(role::server, from_client(opcode::text, "ok \xED\xA0\x80"));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::invalid_utf8);
    CHECK(out.events[0].code == 1007);
    const auto reply = decode_output(role::server, out.output);
    REQUIRE(reply.size() == 1);
    CHECK(reply[0].code == 1007);
}

TEST_CASE("RFC 6455 8.1: a text message ending inside a UTF-8 sequence fails with 1007",
          "[session][utf8]") {
    const auto out = run_every_split(role::server, from_client(opcode::text, "ab\xE2\x82"));
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::invalid_utf8);
}

TEST_CASE("RFC 6455 8.1: a UTF-8 sequence split across fragments is valid", "[session][utf8]") {
    // U+20AC EURO SIGN (E2 82 AC) with its bytes in three frames.
    const std::string wire = from_client(opcode::text, "\xE2", fin_bit::clear) +
                             from_client(opcode::continuation, "\x82", fin_bit::clear) +
                             from_client(opcode::continuation, "\xAC", fin_bit::set);
    const auto out = run_every_split(role::server, wire);
    CHECK(out.events == std::vector<recorded>{message(opcode::text, "\xE2\x82\xAC")});
}

TEST_CASE("RFC 6455 8.1: invalid UTF-8 fails fast, before the rest of the message arrives",
          "[session][utf8]") {
    session s(role::server, {}, test_seed);
    // A first fragment with an invalid byte; the message never finishes.
    std::string wire = from_client(opcode::text, "hello \xC0 world", fin_bit::clear);
    auto r = s.receive(wire.data(), wire.size());
    CHECK(r.ev.type == event_type::error);
    CHECK(r.ev.error == error::invalid_utf8);

    // Inside a single frame whose end has not arrived yet.
    session t(role::server, {}, test_seed);
    std::string big =
        from_client(opcode::text, std::string(1000, 'a') + "\xFF" + std::string(1000, 'b'));
    auto partial = t.receive(big.data(), 4 + 4 + 1001); // 16-bit length, key, 1001 bytes
    CHECK(partial.ev.type == event_type::error);
    CHECK(partial.ev.error == error::invalid_utf8);
}

TEST_CASE("RFC 6455 10.4: a frame over the limit fails with 1009 from its header alone",
          "[session][limits]") {
    session_options options;
    options.max_frame_size = 1000;
    options.max_message_size = 4000;
    session s(role::server, options, test_seed);
    // Only the header of a 1001-byte frame: no payload has been sent at all.
    std::string head = from_client(opcode::binary, std::string(1001, 'x')).substr(0, 8);
    auto r = s.receive(head.data(), head.size());
    CHECK(r.ev.type == event_type::error);
    CHECK(r.ev.error == error::frame_too_big);
    CHECK(r.ev.code == 1009);
    CHECK(run(role::server, from_client(opcode::binary, std::string(1000, 'x')), {}, options)
              .events.at(0)
              .type == event_type::message);
}

TEST_CASE("RFC 6455 10.4: fragments summing past the message limit fail with 1009",
          "[session][limits]") {
    session_options options;
    options.max_message_size = 10;
    options.fragment_overhead = 0; // the payloads alone; the charge per frame is tested below
    const std::string ok = from_client(opcode::text, "12345", fin_bit::clear) +
                           from_client(opcode::continuation, "67890", fin_bit::set);
    CHECK(run_every_split(role::server, ok, options).events.at(0).type == event_type::message);
    const std::string over = from_client(opcode::text, "12345", fin_bit::clear) +
                             from_client(opcode::continuation, "678901", fin_bit::set);
    const auto out = run_every_split(role::server, over, options);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::message_too_big);
    CHECK(out.events[0].code == 1009);
}

TEST_CASE("RFC 6455 10.4: a huge 63-bit length cannot overflow the size check",
          "[session][limits]") {
    // First fragment of 5 bytes, then a continuation declaring 2^63 - 1 bytes.
    std::string wire = from_client(opcode::binary, "12345", fin_bit::clear);
    wire += std::string("\x80\xFF\x7F\xFF\xFF\xFF\xFF\xFF\xFF\xFF\x00\x00\x00\x00", 14);
    const auto out = run_every_split(role::server, wire);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::frame_too_big);
}

TEST_CASE("RFC 6455 10.4: a flood of tiny fragments fails with 1009", "[session][limits]") {
    session_options options;
    options.max_fragments = 100;
    std::string wire = from_client(opcode::binary, "", fin_bit::clear);
    for (int i = 0; i < 98; ++i) wire += from_client(opcode::continuation, "", fin_bit::clear);
    // 1 + 98 + 1 = 100 fragments: exactly at the limit.
    const auto at_limit =
        run(role::server, wire + from_client(opcode::continuation, "", fin_bit::set), {}, options);
    REQUIRE(at_limit.events.size() == 1);
    CHECK(at_limit.events[0].type == event_type::message);
    wire += from_client(opcode::continuation, "", fin_bit::clear);
    wire += from_client(opcode::continuation, "", fin_bit::clear); // the 101st
    const auto over = run_every_split(role::server, wire, options);
    REQUIRE(over.events.size() == 1);
    CHECK(over.events[0].error == error::too_many_fragments);
    CHECK(over.events[0].code == 1009);
}

TEST_CASE("RFC 6455 10.4: each continuation frame is charged fragment_overhead bytes of the "
          "message budget: exactly at max_message_size is delivered, one byte more fails with "
          "1009",
          "[session][limits]") {
    session_options options;
    options.max_message_size = 100;
    options.fragment_overhead = 14;
    // 30 + (14 + 14) + (14 + 28) = 100: two continuations charged 14 each.
    auto wire = [](std::size_t last) {
        return from_client(opcode::binary, std::string(30, 'a'), fin_bit::clear) +
               from_client(opcode::continuation, std::string(14, 'b'), fin_bit::clear) +
               from_client(opcode::continuation, std::string(last, 'c'), fin_bit::set);
    };
    const auto at_limit = run_every_split(role::server, wire(28), options);
    REQUIRE(at_limit.events.size() == 1);
    CHECK(at_limit.events[0] ==
          message(opcode::binary,
                  std::string(30, 'a') + std::string(14, 'b') + std::string(28, 'c')));
    const auto over = run_every_split(role::server, wire(29), options);
    REQUIRE(over.events.size() == 1);
    CHECK(over.events[0].error == error::message_too_big);
    CHECK(over.events[0].code == 1009);
}

TEST_CASE("RFC 6455 10.4: a flood of empty continuation frames is stopped by the charge per "
          "frame (1009), though it never carries a payload byte",
          "[session][limits]") {
    session_options options;
    options.max_message_size = 140;
    options.fragment_overhead = 14; // room for exactly 10 continuation frames
    std::string wire = from_client(opcode::text, "", fin_bit::clear);
    for (int i = 0; i < 9; ++i) wire += from_client(opcode::continuation, "", fin_bit::clear);
    const auto at_limit = run_every_split(
        role::server, wire + from_client(opcode::continuation, "", fin_bit::set), options);
    REQUIRE(at_limit.events.size() == 1);
    CHECK(at_limit.events[0] == message(opcode::text, ""));
    wire += from_client(opcode::continuation, "", fin_bit::clear);
    wire += from_client(opcode::continuation, "", fin_bit::clear); // the 11th: 154 > 140
    const auto over = run_every_split(role::server, wire, options);
    REQUIRE(over.events.size() == 1);
    CHECK(over.events[0].error == error::too_many_fragments);
    CHECK(over.events[0].code == 1009);
    CHECK(over.state == session_state::failed);
}

TEST_CASE("RFC 6455 10.4: the default limits admit Autobahn 9.3.1 (4 MiB in 64-byte "
          "fragments, 65,537 frames, the last one empty) and a 16 MiB frame, and refuse 16 MiB "
          "+ 1 byte",
          "[session][limits]") {
    const session_options defaults;
    CHECK(defaults.max_message_size == 16U << 20);
    const std::string payload(4U << 20, '*');
    std::string wire;
    std::size_t frames = 0;
    for (std::size_t at = 0; at <= payload.size(); at += 64, ++frames)
        wire += from_client(at == 0 ? opcode::text : opcode::continuation,
                            std::string_view(payload).substr(at, 64),
                            (at == payload.size() ? fin_bit::set : fin_bit::clear));
    CHECK(frames == 65537);
    const auto fragmented = run(role::server, wire, {});
    REQUIRE(fragmented.events.size() == 1);
    CHECK(fragmented.events[0].data == payload);

    const std::string biggest(defaults.max_message_size, '\xfe');
    const auto at_limit = run(role::client, from_server(opcode::binary, biggest), {});
    REQUIRE(at_limit.events.size() == 1);
    CHECK(at_limit.events[0].data.size() == biggest.size());
    const auto over = run(role::client, from_server(opcode::binary, biggest + '\xfe'), {});
    REQUIRE(over.events.size() == 1);
    CHECK(over.events[0].code == 1009);
}

TEST_CASE("RFC 6455 7.1.2, 5.5.1: the session records the code of the close frame it sent and "
          "who started the closing handshake",
          "[session][close]") {
    SECTION("nobody yet") {
        session s(role::server);
        CHECK(s.initiator() == close_initiator::none);
        CHECK(s.sent_close_code() == 1006);
    }
    SECTION("we close; the peer's reply does not change our code") {
        session s(role::client, {}, test_seed);
        REQUIRE_FALSE(s.close(4000, "bye"));
        std::string reply = from_server(opcode::close, close_payload(1000));
        REQUIRE(s.receive(reply.data(), reply.size()).ev.type == event_type::close);
        CHECK(s.initiator() == close_initiator::local);
        CHECK(s.sent_close_code() == 4000);
        CHECK(s.peer_close_code() == 1000);
    }
    SECTION("the peer closes; our reply echoes its code") {
        session s(role::server);
        std::string wire = from_client(opcode::close, close_payload(1001));
        REQUIRE(s.receive(wire.data(), wire.size()).ev.type == event_type::close);
        CHECK(s.initiator() == close_initiator::peer);
        CHECK(s.sent_close_code() == 1001);
        CHECK(s.peer_close_code() == 1001);
    }
    SECTION("we fail the connection") {
        session s(role::server);
        std::string wire = from_client(opcode::text, "\xff");
        REQUIRE(s.receive(wire.data(), wire.size()).ev.type == event_type::error);
        CHECK(s.initiator() == close_initiator::local);
        CHECK(s.sent_close_code() == 1007);
        CHECK(s.peer_close_code() == 1006);
    }
}

TEST_CASE("RFC 6455 5.1: server frames are never masked, client frames always with fresh keys",
          "[session][send]") {
    session server(role::server, {}, test_seed);
    REQUIRE_FALSE(server.send_text("Hello"));
    CHECK(std::string(server.pending_output()) == std::string("\x81\x05Hello", 7));

    session client(role::client, {}, test_seed);
    REQUIRE_FALSE(client.send_text("Hello"));
    REQUIRE_FALSE(client.send_text("Hello"));
    const std::string out(client.pending_output());
    REQUIRE(out.size() == 2 * 11);
    CHECK(static_cast<unsigned char>(out[1]) == 0x85);
    CHECK(out.substr(2, 4) != out.substr(13, 4)); // a new key per frame
    CHECK(out.substr(6, 5) != "Hello");
    CHECK(decode_output(role::client, out) ==
          std::vector<recorded>{message(opcode::text, "Hello"), message(opcode::text, "Hello")});
}

TEST_CASE("RFC 6455 5.4: sending a fragmented message", "[session][send]") {
    session s(role::server, {}, test_seed);
    REQUIRE_FALSE(s.send(opcode::text, "Hel", false));
    CHECK(s.send_text("x") == error::message_in_progress);
    REQUIRE_FALSE(s.ping("mid")); // control frames may be interleaved
    REQUIRE_FALSE(s.send(opcode::continuation, "lo", true));
    CHECK(s.send(opcode::continuation, "!", true) == error::no_message_in_progress);
    CHECK(std::string(s.pending_output()) == std::string("\x01\x03Hel\x89\x03mid\x80\x02lo", 14));
}

TEST_CASE("Sending: control payloads over 125 bytes and invalid UTF-8 text are refused",
          "[session][send]") {
    session s(role::client, {}, test_seed);
    CHECK(s.ping(std::string(126, 'x')) == error::control_payload_too_big);
    CHECK(s.pong(std::string(126, 'x')) == error::control_payload_too_big);
    CHECK(s.close(1000, std::string(124, 'x')) == error::control_payload_too_big);
    CHECK(s.close(1006) == error::bad_close_code);
    CHECK(s.send_text("\xC0\x80") == error::invalid_utf8);
    CHECK(s.send(opcode::text, "\xE2\x82", true) == error::invalid_utf8);
    REQUIRE_FALSE(s.send(opcode::text, "\xE2\x82", false)); // completed by the next fragment
    CHECK(s.send(opcode::continuation, "\x41", true) == error::invalid_utf8);
    REQUIRE_FALSE(s.send(opcode::continuation, "\xAC", true));
    CHECK(s.send(opcode::ping, "x") == error::bad_opcode);
    CHECK(s.send(static_cast<opcode>(3), "x") == error::bad_opcode);
    CHECK_FALSE(std::error_code(error::bad_opcode) == duplex::condition::protocol_violation);
    CHECK_FALSE(s.has_pending_output() == false);
    CHECK(s.state() == session_state::open);
}

TEST_CASE("Output is consumed in pieces and the zero-copy path matches send()", "[session][send]") {
    session a(role::client, {}, test_seed);
    session b(role::client, {}, test_seed);
    const std::string payload(300, 'z');
    REQUIRE_FALSE(a.send_binary(payload));
    frame_prefix prefix;
    REQUIRE_FALSE(b.prepare_send(opcode::binary, payload, true, prefix));
    std::string manual(prefix.view());
    std::string masked = payload;
    REQUIRE(prefix.masked);
    apply_mask(masked.data(), masked.size(), prefix.key);
    manual += masked;
    CHECK(std::string(a.pending_output()) == manual);

    a.consume_output(10);
    CHECK(a.pending_output() == std::string_view(manual).substr(10));
    a.consume_output(1000);
    CHECK_FALSE(a.has_pending_output());
}

TEST_CASE("A single-frame message in one read is delivered without a copy", "[session][fast]") {
    session s(role::server, {}, test_seed);
    std::string wire = from_client(opcode::binary, std::string(4096, 'q'));
    auto r = s.receive(wire.data(), wire.size());
    REQUIRE(r.ev.type == event_type::message);
    CHECK(r.ev.data.data() >= wire.data());
    CHECK(r.ev.data.data() + r.ev.data.size() <= wire.data() + wire.size());
}

TEST_CASE("Partial delivery: start, data and end carry the whole message", "[session]") {
    session_options options;
    options.deliver_partial_messages = true;
    const std::string wire = from_client(opcode::text, "Hel", fin_bit::clear) +
                             from_client(opcode::ping, "") +
                             from_client(opcode::continuation, "lo", fin_bit::set);
    const auto out = run_every_split(role::server, wire, options);
    const auto merged = merge_pieces(out.events);
    REQUIRE(merged.size() == 4);
    CHECK(merged[0].type == event_type::message_start);
    CHECK(merged[0].op == opcode::text);
    CHECK(merged[1].type == event_type::message_data);
    CHECK(merged[1].data == "Hel");
    CHECK(merged[2].type == event_type::ping);
    CHECK(merged[3].type == event_type::message_end);
    CHECK(merged[3].data == "lo");
}

TEST_CASE("Round trip: random messages, fragmentation and reads, both roles",
          "[session][property]") {
    std::mt19937 rng(20261122);
    for (role sender : {role::client, role::server}) {
        for (int round = 0; round < 60; ++round) {
            session tx(sender, {}, test_seed);
            std::vector<recorded> expected;
            const int messages = 1 + static_cast<int>(rng() % 6);
            for (int m = 0; m < messages; ++m) {
                const bool text = rng() % 2 == 0;
                std::string body(rng() % 3 == 0 ? rng() % 70000 : rng() % 200, '\0');
                for (auto& c : body)
                    c = text ? static_cast<char>('a' + rng() % 26) : static_cast<char>(rng());
                if (text && body.size() >= 4) body.replace(body.size() / 2, 4, "\xF0\x9F\x98\x80");
                const opcode op = text ? opcode::text : opcode::binary;
                const std::size_t pieces = 1 + rng() % 4;
                std::size_t at = 0;
                for (std::size_t p = 0; p < pieces; ++p) {
                    const bool last = p + 1 == pieces;
                    const std::size_t len =
                        last ? body.size() - at : rng() % (body.size() - at + 1);
                    // A random cut can split the emoji; validation is per message, so fine.
                    REQUIRE_FALSE(tx.send(p == 0 ? op : opcode::continuation,
                                          std::string_view(body).substr(at, len), last));
                    at += len;
                    if (rng() % 4 == 0) REQUIRE_FALSE(tx.ping("k"));
                }
                expected.push_back(message(op, body));
            }
            const std::string wire(tx.pending_output());
            std::vector<std::size_t> cuts;
            std::size_t pos = 0;
            while (true) {
                pos += 1 + rng() % 3000;
                if (pos >= wire.size()) break;
                cuts.push_back(pos);
            }
            const role reader = sender == role::client ? role::server : role::client;
            const auto out = run(reader, wire, cuts);
            std::vector<recorded> messages_only;
            for (const auto& e : out.events)
                if (e.type != event_type::ping) messages_only.push_back(e);
            REQUIRE(messages_only == expected);
            CHECK(out.state == session_state::open);
        }
    }
}

TEST_CASE("RFC 6455 5.5.2: a ping received after we sent a close is still answered", "[session]") {
    session s(role::server, {}, test_seed);
    REQUIRE_FALSE(s.close(1000));
    s.consume_output(s.pending_output().size());
    std::string wire = from_client(opcode::ping, "hb");
    auto r = s.receive(wire.data(), wire.size());
    CHECK(r.ev.type == event_type::ping);
    CHECK(std::string(s.pending_output()) == std::string("\x8a\x02hb", 4));
    CHECK(s.state() == session_state::closing);
}

TEST_CASE("RFC 7692 6.1: RSV bits are never accepted on control frames, even when claimed",
          "[session]") {
    session_options deflate;
    deflate.reserved_bits.rsv1 = true;
    const auto out = run_every_split(
        role::server, frame(opcode::ping, "x", masking::client, fin_bit::set, 0x40), deflate);
    REQUIRE(out.events.size() == 1);
    CHECK(out.events[0].error == error::reserved_bits);
    CHECK(out.events[0].code == 1002);
}

TEST_CASE("RFC 6455 7.4.2: registered codes 1012-1014 are accepted and echoed", "[session]") {
    for (std::uint16_t code : {std::uint16_t{1012}, std::uint16_t{1013}, std::uint16_t{1014}}) {
        const auto out =
            run_every_split(role::client, from_server(opcode::close, close_payload(code)));
        REQUIRE(out.events.size() == 1);
        CHECK(out.events[0].type == event_type::close);
        CHECK(out.events[0].code == code);
    }
}
