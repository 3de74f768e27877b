// duplex::connection's read path over the in-memory transport (detail/connection_read.hpp):
// reads in pieces, read failures and the peer's end of the transport, the peer's protocol
// errors, async_read, and handlers that are never re-entered. The harness is
// memory_harness.hpp.
#include "memory_harness.hpp"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace test;

// ---- reading in pieces ------------------------------------------------------------------

TEST_CASE("Messages arrive intact when reads deliver 1-byte and odd-sized pieces, both roles, "
          "with pings between fragments",
          "[connection][pieces]") {
    const int pattern = GENERATE(0, 1);
    const role r = GENERATE(role::server, role::client);
    const std::vector<std::size_t> pieces = pattern == 0
                                                ? std::vector<std::size_t>{1}
                                                : std::vector<std::size_t>{3, 7, 1, 13, 2, 64, 5};
    CAPTURE(pattern, r == role::server);

    harness h;
    auto [a, b] = h.pair();
    a.read_chunks(pieces);
    auto c = h.connect(std::move(a), r);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading();

    std::string all_bytes;
    for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
    std::string big(65600, '\0'); // a 64-bit length, its header split too
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    const std::string utf8 = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC";
    const std::size_t cut = utf8.size() - 1; // inside the euro sign

    peer.send(opcode::text, "hello");
    peer.send(opcode::ping, "p1");
    peer.send(opcode::binary, all_bytes);
    peer.send(opcode::text, "frag", fin_bit::clear);
    peer.send(opcode::ping, "p2"); // 5.4: control frames may come between fragments
    peer.send(opcode::continuation, "ment", fin_bit::clear);
    peer.send(opcode::continuation, "ed");
    peer.send(opcode::text, utf8.substr(0, cut), fin_bit::clear);
    peer.send(opcode::continuation, utf8.substr(cut));
    peer.send(opcode::binary, "ab", fin_bit::clear);
    peer.send(opcode::continuation, "", fin_bit::clear);
    peer.send(opcode::ping, "");
    peer.send(opcode::continuation, "cd");
    peer.send(opcode::text, "");
    peer.send(opcode::binary, big);
    peer.send(opcode::text, "last");
    const std::vector<std::string> expected = {
        "t:hello", "b:" + all_bytes, "t:fragmented", "t:" + utf8, "b:abcd",
        "t:",      "b:" + big,       "t:last"};

    auto rec = std::make_shared<record>();
    auto handlers = record_into(rec);
    handlers.on_message = [rec](const auto& conn, const duplex::message_view& m) {
        rec->messages.push_back(describe(m.type, m.data));
        conn->send(m.type, m.data); // echo: the sending side is exercised as well
    };
    c->start(std::move(handlers));

    // 64 KiB read a byte at a time takes seconds in a Debug or sanitizer build on a busy
    // machine: a bound that only a stuck connection reaches.
    REQUIRE(h.run_until(
        [&] {
            return rec->messages.size() == expected.size() &&
                   data_messages(peer.frames()).size() == expected.size();
        },
        60s));
    CHECK(rec->messages == expected);
    CHECK(rec->errors.empty());
    CHECK_FALSE(rec->closed);

    const auto frames = peer.frames();
    CHECK(data_messages(frames) == expected);
    std::vector<std::string> pongs;
    for (const auto& f : frames) {
        CHECK(f.fin);
        CHECK(f.masked == (r == role::client)); // 5.1 / 5.3
        if (f.is(opcode::pong)) pongs.push_back(f.payload);
    }
    CHECK(pongs == (std::vector<std::string>{"p1", "p2", ""})); // 5.5.3: same payload, in order
}

// ---- transport failures -----------------------------------------------------------------

TEST_CASE("The Nth read failing ends the connection: on_error with that code, then on_close 1006",
          "[connection][errors]") {
    const role r = GENERATE(role::server, role::client);
    CAPTURE(r == role::server);
    const auto reset = code(asio::error::connection_reset);
    harness h;
    auto [a, b] = h.pair();
    a.fail_read(2, reset); // the first read gets "before", the second fails
    auto c = h.connect(std::move(a), r);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading();
    peer.send(opcode::text, "before");

    SECTION("with handlers") {
        auto rec = std::make_shared<record>();
        c->start(record_into(rec));
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->opens == 1);
        CHECK(rec->messages == (std::vector<std::string>{"t:before"}));
        CHECK(rec->errors == (std::vector<std::error_code>{reset}));
        CHECK_FALSE(rec->error_after_close);
        CHECK(rec->closed->code == 1006);
        CHECK(rec->closed->error == reset);
        CHECK(c->result().error == reset);
        CHECK(c->is_closing());
        CHECK(c->send_text("late") == send_status::closed);
    }
    SECTION("with async_read: the pending read completes with the error, and so do later ones") {
        auto shared_reads =
            std::make_shared<std::vector<std::pair<std::error_code, std::string>>>();
        auto& reads = *shared_reads;
        auto read = [&] {
            c->async_read([shared_reads](std::error_code ec, duplex::message m) {
                shared_reads->emplace_back(ec, describe(m.type, m.data));
            });
        };
        read();
        REQUIRE(h.run_until([&] { return reads.size() == 1; }));
        read();
        REQUIRE(h.run_until([&] { return reads.size() == 2; }));
        read();
        REQUIRE(h.run_until([&] { return reads.size() == 3; }));
        CHECK(reads[0].first == std::error_code{});
        CHECK(reads[0].second == "t:before");
        CHECK(reads[1].first == reset);
        CHECK(reads[2].first == reset);
        CHECK(c->result().code == 1006);
        CHECK(c->result().error == reset);
    }
    // The transport was cut, without a close frame.
    REQUIRE(h.run_until([&] { return peer.read_ended(); }));
    CHECK(peer.saw_eof());
    CHECK(peer.frames().empty());
}

TEST_CASE(
    "The peer ending the transport without a close frame: on_close 1006 with eof, no on_error",
    "[connection][errors]") {
    const auto eof = code(asio::error::eof);
    harness h;
    auto [a, b] = h.pair();
    const role r = GENERATE(role::server, role::client);
    CAPTURE(r == role::server);
    auto c = h.connect(std::move(a), r);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading();
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    peer.send(opcode::text, "hi");
    REQUIRE(h.run_until([&] { return rec->messages.size() == 1; }));

    SECTION("it closes its end") { peer.close(); }
    SECTION("it shuts down its sending side (half-close)") { peer.shutdown_send(); }
    SECTION("it stops in the middle of a frame") {
        const std::string next = frame(opcode::text, "never whole",
                                       (r == role::server ? masking::client : masking::none));
        peer.write(next.substr(0, 5));
        peer.shutdown_send();
    }
    SECTION("it ends the transport instead of answering our close") {
        outcome closed;
        c->async_close(1000, "bye", closed.handler());
        REQUIRE(h.run_until([&] { return !peer.frames().empty(); }));
        CHECK(peer.frames()[0].is(opcode::close));
        peer.close();
        REQUIRE(h.run_until([&] { return closed.ready(); }));
        CHECK(closed.get() == eof);
    }
    REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
    CHECK(rec->messages == (std::vector<std::string>{"t:hi"}));
    CHECK(rec->closed->code == 1006);
    CHECK(rec->closed->error == eof);
    // Documented in on_transport_end: an orderly end of the transport is not a transport
    // failure, so on_error is not called; on_close's 1006 and eof say what happened.
    CHECK(rec->errors.empty());
}

// ---- protocol errors from the peer --------------------------------------------------------

TEST_CASE("RFC 6455 7.1.7: a peer's protocol error fails the connection with 1002/1007/1009, "
          "we end the transport",
          "[connection][errors][protocol]") {
    struct violation {
        const char* name;
        role ours;
        std::string bytes;
        error expected;
        std::uint16_t close_code;
        duplex::protocol::session_options limits = {};
    };
    const std::string long_length = std::string("\x82\xFF\x80\0\0\0\0\0\0\0", 10) + "abcd";
    const std::string short_in_16_bits = std::string("\x82\xFE\x00\x05", 4) + "abcd" + "hello";
    duplex::protocol::session_options small_messages;
    small_messages.max_message_size = 64;
    duplex::protocol::session_options few_fragments;
    few_fragments.max_fragments = 3;
    const std::vector<violation> cases = {
        {"5.1: an unmasked frame to a server", role::server,
         frame(opcode::text, "hi", masking::none), error::mask_required, 1002},
        {"5.1: a masked frame to a client", role::client,
         frame(opcode::text, "hi", masking::client), error::unexpected_mask, 1002},
        {"5.2: reserved opcode 3", role::server, raw_frame(0x83, "", masking::client),
         error::reserved_opcode, 1002},
        {"5.2: reserved control opcode 0xB", role::client, raw_frame(0x8B, "", masking::none),
         error::reserved_opcode, 1002},
        {"5.2: RSV1 without an extension", role::server, raw_frame(0xC1, "hi", masking::client),
         error::reserved_bits, 1002},
        {"5.2: a 64-bit length with its top bit set", role::server, long_length,
         error::length_msb_set, 1002},
        {"5.2: a length not in its shortest form", role::server, short_in_16_bits,
         error::non_minimal_length, 1002},
        {"5.5: a ping of 126 bytes", role::server,
         frame(opcode::ping, std::string(126, 'p'), masking::client), error::control_too_big, 1002},
        {"5.5: a fragmented ping", role::server,
         frame(opcode::ping, "p", masking::client, fin_bit::clear), error::control_fragmented,
         1002},
        {"5.4: a continuation with no message", role::server,
         frame(opcode::continuation, "x", masking::client), error::unexpected_continuation, 1002},
        {"5.4: a new message inside a fragmented one", role::client,
         frame(opcode::text, "a", masking::none, fin_bit::clear) +
             frame(opcode::text, "b", masking::none),
         error::expected_continuation, 1002},
        {"8.1: invalid UTF-8 in a text message", role::server,
         frame(opcode::text, "\xC3\x28", masking::client), error::invalid_utf8, 1007},
        {"8.1: invalid UTF-8 in a text message to a client", role::client,
         frame(opcode::text, "ok\xFF", masking::none), error::invalid_utf8, 1007},
        {"8.1: a fragmented text message that ends inside a UTF-8 sequence", role::server,
         frame(opcode::text, "ok\xE2\x82", masking::client, fin_bit::clear) +
             frame(opcode::continuation, "", masking::client),
         error::invalid_utf8, 1007},
        {"5.5.1: a close payload of one byte", role::server,
         frame(opcode::close, std::string(1, '\x03'), masking::client), error::bad_close_payload,
         1002},
        {"7.4: close code 1005 on the wire", role::server,
         frame(opcode::close, close_payload(1005), masking::client), error::bad_close_code, 1002},
        {"5.5.1: a close reason that is not UTF-8", role::client,
         frame(opcode::close, close_payload(1000, "\xFF"), masking::none), error::invalid_utf8,
         1007},
        {"10.4: a message over max_message_size", role::server,
         frame(opcode::binary, std::string(65, 'x'), masking::client), error::message_too_big, 1009,
         small_messages},
        {"10.4: more fragments than max_fragments", role::client,
         frame(opcode::binary, "a", masking::none, fin_bit::clear) +
             frame(opcode::continuation, "b", masking::none, fin_bit::clear) +
             frame(opcode::continuation, "c", masking::none, fin_bit::clear) +
             frame(opcode::continuation, "d", masking::none),
         error::too_many_fragments, 1009, few_fragments},
    };

    for (const auto& v : cases) {
        INFO(v.name);
        harness h;
        auto [a, b] = h.pair();
        auto options = fast_options();
        options.protocol = v.limits;
        auto c = h.connect(std::move(a), v.ours, options);
        auto peer = h.peer(std::move(b), other(v.ours));
        peer.start_reading();
        peer.send(opcode::text, "ok");
        peer.write(v.bytes);
        peer.send(opcode::text, "after"); // ignored: nothing is processed after the failure
        auto rec = std::make_shared<record>();
        c->start(record_into(rec));

        // We failed the connection, so we end the transport first, without waiting for the peer.
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.saw_eof());
        CHECK_FALSE(rec->closed); // still reading until the peer ends its side
        CHECK(rec->messages == (std::vector<std::string>{"t:ok"}));
        CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(v.expected)}));
        const auto frames = peer.frames();
        REQUIRE(frames.size() == 1);
        CHECK(frames[0].is(opcode::close));
        CHECK(frames[0].masked == (v.ours == role::client));
        CHECK(frames[0].close_code() == v.close_code);
        CHECK(frames[0].close_reason() == make_error_code(v.expected).message());
        CHECK(c->send_text("x") == send_status::closed);

        peer.close();
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == v.close_code);
        CHECK(rec->closed->error == v.expected);
        CHECK(rec->closed->reason == make_error_code(v.expected).message());
        CHECK(rec->errors.size() == 1);
    }
}

// ---- async operations -------------------------------------------------------------------

TEST_CASE("async_read: messages in order, leftovers kept for the next read, and its errors",
          "[connection][async]") {
    harness h;
    auto [a, b] = h.pair();
    using read_list = std::vector<std::pair<std::error_code, std::string>>;
    auto shared_reads = std::make_shared<read_list>();
    read_list& reads = *shared_reads;
    auto read_into = [&](const std::shared_ptr<mem_connection>& c) {
        c->async_read([shared_reads](std::error_code ec, duplex::message m) {
            shared_reads->emplace_back(ec, describe(m.type, m.data));
        });
    };
    auto reads_done = [&](std::size_t n) { return h.run_until([&] { return reads.size() >= n; }); };

    SECTION("several frames in one transport read come out one per async_read") {
        // A second transport read would fail: everything after the first message must come
        // from the bytes the first read left over.
        a.fail_read(2, code(asio::error::connection_reset));
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        peer.write(frame(opcode::text, "one", masking::client) +
                   frame(opcode::binary, "two", masking::client) +
                   frame(opcode::text, "thr", masking::client, fin_bit::clear) +
                   frame(opcode::ping, "p", masking::client) +
                   frame(opcode::continuation, "ee", masking::client));
        for (std::size_t i = 1; i <= 3; ++i) {
            read_into(c);
            REQUIRE(reads_done(i));
        }
        CHECK(reads == (read_list{{{}, "t:one"}, {{}, "b:two"}, {{}, "t:three"}}));
        REQUIRE(h.run_until([&] { return !peer.frames().empty(); }));
        CHECK(peer.frames()[0].is(opcode::pong));
        read_into(c); // now the transport is read again, and fails
        REQUIRE(reads_done(4));
        CHECK(reads[3].first == asio::error::connection_reset);
    }
    SECTION("a second concurrent async_read fails with operation_in_progress") {
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        read_into(c);
        read_into(c);
        REQUIRE(reads_done(1));
        CHECK(reads[0].first == error::operation_in_progress);
        peer.send(opcode::text, "first one wins");
        REQUIRE(reads_done(2));
        CHECK(reads[1] == std::make_pair(std::error_code{}, std::string("t:first one wins")));
    }
    SECTION("a pending async_read ends with the close handshake; later ones fail with closed") {
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        read_into(c);
        peer.send_close(1000, "bye");
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        peer.close();
        REQUIRE(reads_done(1));
        CHECK(reads[0].first == error::closed);
        CHECK(c->result().code == 1000);
        CHECK(c->result().error == std::error_code{});
        read_into(c);
        REQUIRE(reads_done(2));
        CHECK(reads[1].first == error::closed);
    }
    SECTION("async_read on a connection started with handlers fails with operation_in_progress") {
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        auto rec = std::make_shared<record>();
        c->start(record_into(rec));
        read_into(c);
        REQUIRE(reads_done(1));
        CHECK(reads[0].first == error::operation_in_progress);
    }
    SECTION("bytes given to the constructor (after the HTTP head) are read first") {
        const std::string initial = frame(opcode::text, "early", masking::client) +
                                    frame(opcode::text, "ear", masking::client, fin_bit::clear);
        auto c = h.connect(std::move(a), role::server, fast_options(), initial);
        auto peer = h.peer(std::move(b), role::client);
        peer.send(opcode::continuation, "lier");
        read_into(c);
        REQUIRE(reads_done(1));
        read_into(c);
        REQUIRE(reads_done(2));
        CHECK(reads[0].second == "t:early");
        CHECK(reads[1].second == "t:earlier");
    }
}

// ---- handlers are never re-entered ---------------------------------------------------------

TEST_CASE("close() from inside on_message does not run on_message again inside it",
          "[connection][handlers]") {
    // A connection's handlers never run concurrently, and (as with Asio's own handlers) one is
    // not entered while another is still running: the message view given to on_message stays
    // valid for the whole call, even when the handler calls close() or send().
    harness h;
    auto [a, b] = h.pair();
    auto c = h.connect(std::move(a), role::server);
    auto peer = h.peer(std::move(b), role::client);
    peer.start_reading();
    const std::string first(3000, 'f'); // reassembled from two fragments: held by the session
    peer.write(frame(opcode::text, first.substr(0, 1500), masking::client, fin_bit::clear) +
               frame(opcode::continuation, first.substr(1500), masking::client) +
               frame(opcode::text, "second", masking::client));
    auto rec = std::make_shared<record>();
    auto depth = std::make_shared<int>(0);
    auto max_depth = std::make_shared<int>(0);
    auto shared_finished = std::make_shared<std::vector<std::string>>();
    auto& finished = *shared_finished; // in the order the handler calls returned
    auto handlers = record_into(rec);
    handlers.on_message = [rec, depth, max_depth, shared_finished](const auto& conn,
                                                                   const duplex::message_view& m) {
        *max_depth = std::max(*max_depth, ++*depth);
        const std::string copy(m.data); // taken before close(): see the report on re-entry
        rec->messages.push_back(describe(m.type, copy));
        if (rec->messages.size() == 1) conn->close(1000, "enough");
        shared_finished->push_back(copy.substr(0, 6));
        --*depth;
    };
    c->start(std::move(handlers));
    REQUIRE(h.run_until([&] { return rec->messages.size() == 2; }));
    CHECK(*max_depth == 1);
    CHECK(finished == (std::vector<std::string>{"ffffff", "second"}));
    CHECK(rec->messages == (std::vector<std::string>{"t:" + first, "t:second"}));
}
