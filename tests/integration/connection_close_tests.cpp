// duplex::connection's lifecycle over the in-memory transport (detail/connection_close.hpp):
// the close handshake both ways, the close deadline, keepalive and the idle timeout, and the
// one error funnel. The harness is memory_harness.hpp.
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

// ---- the close handshake ------------------------------------------------------------------

TEST_CASE("RFC 6455 7.1.2: a close handshake started by either side completes on both ends",
          "[connection][close]") {
    harness h;
    auto [a, b] = h.pair();
    auto server = h.connect(std::move(a), role::server);
    auto client = h.connect(std::move(b), role::client);
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    server->start(record_into(srec));
    client->start(record_into(crec));
    auto both_closed = [&] { return srec->closed && crec->closed; };

    SECTION("the server closes") {
        server->close(4001, "server bye");
        REQUIRE(h.run_until(both_closed));
        CHECK(crec->closed->code == 4001);
        CHECK(crec->closed->reason == "server bye");
        CHECK(srec->closed->code == 4001); // 5.5.1: the reply echoes the code (without a reason)
        CHECK(srec->closed->reason.empty());
    }
    SECTION("the client closes, with async_close") {
        outcome done;
        client->async_close(4002, "client bye", done.handler());
        REQUIRE(h.run_until([&] { return both_closed() && done.ready(); }));
        CHECK(done.get() == std::error_code{});
        CHECK(srec->closed->code == 4002);
        CHECK(srec->closed->reason == "client bye");
        CHECK(crec->closed->code == 4002);
        CHECK(crec->closed->reason.empty());
    }
    SECTION("a close without a code is 1005 on both ends") {
        client->close(1005);
        REQUIRE(h.run_until(both_closed));
        CHECK(srec->closed->code == 1005);
        CHECK(crec->closed->code == 1005);
    }
    SECTION("messages queued before close() go out before the close frame") {
        server->send_text("one");
        server->send_binary("two");
        server->close(1000, "after two");
        REQUIRE(h.run_until(both_closed));
        CHECK(crec->messages == (std::vector<std::string>{"t:one", "b:two"}));
        CHECK(crec->closed->code == 1000);
        CHECK(crec->closed->reason == "after two");
    }
    SECTION("an invalid code or reason from the application closes with 1000") {
        const bool bad_code = GENERATE(true, false);
        if (bad_code)
            server->close(1006, "local only");
        else
            server->close(4000, std::string(124, 'r')); // over 123 bytes
        REQUIRE(h.run_until(both_closed));
        CHECK(crec->closed->code == 1000);
        CHECK(crec->closed->reason.empty());
    }
    CHECK(srec->errors.empty());
    CHECK(crec->errors.empty());
    CHECK(srec->closed->error == std::error_code{});
    CHECK(crec->closed->error == std::error_code{});
    CHECK(server->result().error == std::error_code{});
    CHECK(client->result().error == std::error_code{});
    CHECK(server->send_text("x") == send_status::closed);
    CHECK(client->send_text("x") == send_status::closed);
}

TEST_CASE("close() takes effect at once for its caller: is_closing() and send() see it",
          "[connection][close]") {
    // is_closing(): "True once close() was called"; send(): "closed: not queued: the
    // connection is closing or closed". A send() after close() on the same thread must not
    // answer ok for a message that is then silently discarded.
    harness h;
    auto [a, b] = h.pair();
    auto server = h.connect(std::move(a), role::server);
    auto client = h.connect(std::move(b), role::client);
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    server->start(record_into(srec));
    client->start(record_into(crec));
    server->send_text("before");
    server->close(1000, "bye");
    CHECK(server->is_closing());
    const auto late = server->send_text("after");
    CHECK(late == send_status::closed);
    REQUIRE(h.run_until([&] { return srec->closed && crec->closed; }));
    CHECK(crec->messages == (std::vector<std::string>{"t:before"}));
    CHECK(server->buffered_amount() == 0);
}

TEST_CASE("RFC 6455 7.1.1: after the close handshake the server ends the TCP connection first",
          "[connection][close]") {
    harness h;
    auto [a, b] = h.pair();
    auto rec = std::make_shared<record>();

    SECTION("our server ends it without waiting for the client") {
        auto server = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        server->start(record_into(rec));
        server->close(1000, "bye");
        REQUIRE(h.run_until([&] { return !peer.frames().empty(); }));
        CHECK(peer.frames()[0].close_code() == 1000);
        CHECK(peer.frames()[0].close_reason() == "bye");
        peer.send_close(1000);
        // The server shuts its side down while the client still holds its end open ...
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.saw_eof());
        CHECK_FALSE(rec->closed); // ... and reads until the client closes too.
        peer.close();
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == 1000);
        CHECK(rec->closed->error == std::error_code{});
        CHECK(peer.frames().size() == 1);
    }
    SECTION("our client waits for the server to end it") {
        auto client = h.connect(std::move(a), role::client);
        auto peer = h.peer(std::move(b), role::server);
        peer.start_reading();
        client->start(record_into(rec));
        peer.send_close(1000, "bye");
        REQUIRE(h.run_until([&] { return !peer.frames().empty(); }));
        const auto reply = peer.frames()[0];
        CHECK(reply.is(opcode::close));
        CHECK(reply.masked);
        CHECK(reply.close_code() == 1000);
        h.settle();
        CHECK_FALSE(peer.read_ended()); // the client did not end the transport
        CHECK_FALSE(rec->closed);
        peer.shutdown_send();
        REQUIRE(h.run_until([&] { return rec->closed && peer.read_ended(); }));
        CHECK(rec->closed->code == 1000);
        CHECK(rec->closed->reason == "bye");
        CHECK(rec->closed->error == std::error_code{});
        CHECK(peer.saw_eof());
    }
    SECTION("our client ends it itself after close_timeout when the server never does") {
        auto options = fast_options();
        options.close_timeout = 60ms;
        auto client = h.connect(std::move(a), role::client, options);
        auto peer = h.peer(std::move(b), role::server);
        peer.start_reading();
        client->start(record_into(rec));
        const auto t0 = clock_type::now();
        peer.send_close(1001, "going");
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed_at - t0 >= 60ms);
        CHECK(rec->closed->code == 1001);
        CHECK(rec->closed->error == std::error_code{}); // the handshake itself completed
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.saw_eof());
    }
    CHECK(rec->errors.empty());
}

TEST_CASE("Close timeout: a peer that never answers our close is cut after close_timeout",
          "[connection][close][timeouts]") {
    const role r = GENERATE(role::server, role::client);
    CAPTURE(r == role::server);
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.close_timeout = 60ms;
    auto c = h.connect(std::move(a), r, options);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading(); // it reads, but never answers
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    const auto t0 = clock_type::now();
    outcome done;
    c->async_close(1000, "bye", done.handler());
    REQUIRE(h.run_until([&] { return rec->closed && done.ready(); }));
    CHECK(rec->closed_at - t0 >= 60ms); // not before close_timeout (a timer never fires early)
    CHECK(done.get() == error::timed_out);
    CHECK(rec->closed->error == error::timed_out);
    CHECK(rec->closed->code == 1006);
    REQUIRE(rec->errors.size() == 1); // a timeout is a failure: on_error, then on_close
    CHECK(rec->errors[0] == error::timed_out);
    REQUIRE(h.run_until([&] { return peer.read_ended(); }));
    CHECK(peer.saw_eof());
    const auto frames = peer.frames();
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].is(opcode::close));
    CHECK(frames[0].masked == (r == role::client));
    CHECK(frames[0].close_code() == 1000);
    CHECK(frames[0].close_reason() == "bye");
}

// ---- keepalive and idle timeout -----------------------------------------------------------

TEST_CASE("Keepalive: a silent peer is dropped with timed_out after ping_interval + pong_timeout",
          "[connection][timeouts]") {
    const role r = GENERATE(role::server, role::client);
    CAPTURE(r == role::server);
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.ping_interval = 30ms;
    options.pong_timeout = 40ms;
    const auto t0 = clock_type::now(); // before the connection: its silence counts from there
    auto c = h.connect(std::move(a), r, options);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading(); // reads our ping, never answers anything
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
    CHECK(rec->closed_at - t0 >= 70ms); // not before ping_interval + pong_timeout
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::timed_out)}));
    CHECK(rec->closed->error == error::timed_out);
    CHECK(rec->closed->code == 1006);
    REQUIRE(h.run_until([&] { return peer.read_ended(); }));
    CHECK(peer.saw_eof());
    const auto frames = peer.frames();
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].is(opcode::ping));
    CHECK(frames[0].masked == (r == role::client));
}

TEST_CASE("Keepalive: a peer that answers pings stays open", "[connection][timeouts]") {
    // Counted, not timed: the test runs until the server has had pongs for several pings spread
    // over more than two pong_timeouts, so a keepalive that ignored the answers would have
    // closed first; nothing asserts how long that took. The pong_timeout is generous, so a slow
    // (sanitizer) run cannot miss it by accident.
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.ping_interval = 10ms;
    options.pong_timeout = 500ms;
    constexpr std::size_t enough_pongs = 3;
    auto server = h.connect(std::move(a), role::server, options);
    auto client = h.connect(std::move(b), role::client); // keepalive off: it only answers
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    const auto t0 = clock_type::now();
    server->start(record_into(srec));
    client->start(record_into(crec));
    const auto spans_two_timeouts = [&] {
        return clock_type::now() - t0 > 2 * options.pong_timeout;
    };
    REQUIRE(h.run_until(
        [&] {
            return (srec->pongs.size() >= enough_pongs && spans_two_timeouts()) || srec->closed ||
                   crec->closed;
        },
        30s));
    CHECK_FALSE(srec->closed);
    CHECK_FALSE(crec->closed);
    CHECK(srec->pongs.size() >= enough_pongs);
    CHECK(srec->errors.empty());
    server->close();
    REQUIRE(h.run_until([&] { return srec->closed && crec->closed; }));
    CHECK(srec->closed->error == std::error_code{});
    CHECK(crec->closed->error == std::error_code{});
}

TEST_CASE("Idle timeout: no message either way for idle_timeout closes with 1001",
          "[connection][timeouts]") {
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.idle_timeout = 50ms;
    const auto t0 = clock_type::now(); // before the connection: idleness counts from there
    auto server = h.connect(std::move(a), role::server, options);
    auto client = h.connect(std::move(b), role::client);
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    server->start(record_into(srec));
    client->start(record_into(crec));
    REQUIRE(h.run_until([&] { return srec->closed && crec->closed; }));
    CHECK(srec->closed_at - t0 >= 50ms);
    CHECK(crec->closed->code == 1001);
    CHECK(crec->closed->reason == "idle timeout");
    CHECK(srec->closed->code == 1001);
    CHECK(srec->closed->error == std::error_code{});
    CHECK(crec->closed->error == std::error_code{});
    CHECK(srec->errors.empty());
}

// ---- one error funnel -----------------------------------------------------------------------

TEST_CASE("One error funnel: a peer's protocol error after a slow-reader failure leaves the first "
          "error in on_error and in close_info alike",
          "[connection][errors]") {
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(256); // the peer's receive window: the rest waits until it reads
    auto options = fast_options();
    options.send_buffer_high_water = 1000;
    options.send_buffer_limit = 4000;
    options.close_timeout = patience; // the peer's frames end it, not the deadline
    auto c = h.connect(std::move(a), role::server, options);
    auto peer = h.peer(std::move(b), role::client); // not reading yet
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    h.poll();

    const std::string payload(100, 'x');
    bool dropped = false;
    for (int i = 0; i < 1000 && !dropped; ++i) {
        dropped = c->send_binary(payload) == send_status::dropped;
        h.poll();
    }
    REQUIRE(dropped);
    h.settle();
    REQUIRE(rec->errors ==
            (std::vector<std::error_code>{make_error_code(error::send_buffer_full)}));

    // Then the peer breaks the protocol (5.2: a reserved opcode) while our close is pending.
    peer.write(raw_frame(0x83, "", masking::client));
    peer.start_reading();
    // The peer never ends its side, so the drain after its error ends at the close deadline,
    // which started with the slow-reader failure, a moment before this wait: wait longer than
    // that, or the two limits race.
    REQUIRE(h.run_until([&] { return rec->closed.has_value(); }, 2 * patience));
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::send_buffer_full)}));
    CHECK(rec->closed->error == error::send_buffer_full);
    CHECK(rec->closed->code == 1008);
    CHECK(rec->closed->reason == "send buffer limit");
    CHECK_FALSE(rec->error_after_close);
}
