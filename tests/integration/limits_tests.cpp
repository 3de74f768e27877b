// The limits at their edges, over the in-memory transport: each one exactly at its value and
// one past it, the defaults against the largest messages Autobahn|Testsuite sends, and what
// close_info reports when a limit or the peer ends a connection.
//
// The protocol limits (max_message_size, max_frame_size, the charge per continuation frame)
// are tested frame by frame in unit/session_tests.cpp; here they are seen through a whole
// connection, together with the send buffer, which only exists at this level.
#include "catch.hpp"
#include "harness.hpp"

#include <duplex/connection.hpp>
#include <duplex/transport/memory.hpp>

#include <asio/io_context.hpp>
#include <asio/write.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using namespace test;

namespace {

using duplex::close_initiator;
using duplex::error;
using duplex::opcode;
using duplex::send_status;
using duplex::protocol::role;
using memory = duplex::transport::memory;
using mem_connection = duplex::connection<memory>;
using mem_handlers = duplex::connection_handlers<mem_connection>;

constexpr std::size_t header = duplex::protocol::max_frame_header_size;

// Keepalive off and a short close deadline: a connection whose peer does not read ends soon.
duplex::connection_options quick(duplex::connection_options o = {}) {
    o.ping_interval = 0ms;
    o.close_timeout = 200ms;
    return o;
}

// What a connection's handlers saw; written on the io thread, read after it stopped.
struct seen {
    std::vector<std::string> messages;
    std::vector<send_status> echo_statuses;
    std::optional<duplex::close_info> closed;
};

mem_handlers recording(const std::shared_ptr<seen>& s, bool echo) {
    mem_handlers h;
    h.on_message = [s, echo](const auto& c, const duplex::message_view& m) {
        s->messages.emplace_back(m.data);
        if (echo) s->echo_statuses.push_back(c->send(m.type, m.data));
    };
    h.on_close = [s](const auto&, const duplex::close_info& info) { s->closed = info; };
    return h;
}

void write_to(memory::stream_type& end, asio::io_context& io, const std::string& bytes) {
    bool written = false;
    std::error_code write_error;
    asio::async_write(end, asio::buffer(bytes), [&](std::error_code ec, std::size_t) {
        write_error = ec;
        written = true;
    });
    REQUIRE(run_until(io, [&] { return written; }));
    REQUIRE_FALSE(write_error);
}

} // namespace

TEST_CASE("send_buffer_limit, admit-one: while at most send_buffer_high_water bytes wait, a "
          "message of any size is queued, and past the mark one that would pass the limit is "
          "dropped (at exactly the limit it is not)",
          "[limits][backpressure]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    a.write_capacity(0); // the peer reads nothing: every byte sent stays queued
    auto options = quick();
    options.send_buffer_high_water = 1000;
    options.send_buffer_limit = 4000;
    auto c = std::make_shared<mem_connection>(std::move(a), role::server, options);
    auto s = std::make_shared<seen>();
    c->start(recording(s, false));

    SECTION("exactly at the high-water mark: a message larger than the whole limit is queued") {
        CHECK(c->send_binary(std::string(1000 - header, 'a')) == send_status::ok);
        REQUIRE(c->buffered_amount() == 1000);
        CHECK(c->send_binary(std::string(10000 - header, 'b')) == send_status::backpressure);
        CHECK(c->buffered_amount() == 11000);
        CHECK_FALSE(c->is_closing());
    }
    SECTION("one byte past the mark: exactly at the limit is queued, one byte more is dropped "
            "and the connection is failed with 1008") {
        CHECK(c->send_binary(std::string(1001 - header, 'a')) == send_status::backpressure);
        REQUIRE(c->buffered_amount() == 1001);
        CHECK(c->send_binary(std::string(2999 - header, 'b')) == send_status::backpressure);
        REQUIRE(c->buffered_amount() == 4000);
        CHECK(c->send_binary("c") == send_status::dropped);
        CHECK(c->buffered_amount() == 4000);
        REQUIRE(run_until(io, [&] { return s->closed.has_value(); }));
        CHECK(s->closed->code == 1008);
        CHECK(s->closed->sent_code == 1008);
        CHECK(s->closed->initiator == close_initiator::local);
        CHECK(s->closed->error == error::send_buffer_full);
        CHECK(c->buffered_amount() == 0);
    }
    c->terminate();
    b.close();
    run_until(io, [&] { return s->closed.has_value(); });
}

TEST_CASE("Defaults: a message of exactly max_message_size (16 MiB, Autobahn 9.1.6/9.2.6) is "
          "echoed although its echo costs more than send_buffer_limit, and one byte more fails "
          "with 1009, and both ends report it",
          "[limits]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    const duplex::connection_options defaults;
    REQUIRE(defaults.protocol.max_message_size == defaults.send_buffer_limit); // the hard case
    auto server = std::make_shared<mem_connection>(std::move(a), role::server, quick());
    auto client = std::make_shared<mem_connection>(std::move(b), role::client, quick());
    auto at_server = std::make_shared<seen>();
    auto at_client = std::make_shared<seen>();
    server->start(recording(at_server, true));
    client->start(recording(at_client, false));

    const std::string biggest(defaults.protocol.max_message_size, '\xfe');
    REQUIRE(client->send_binary(biggest) != send_status::dropped);
    REQUIRE(run_until(io, [&] { return !at_client->messages.empty(); }));
    CHECK(at_client->messages.front() == biggest);
    REQUIRE(at_server->echo_statuses.size() == 1);
    CHECK(at_server->echo_statuses.front() == send_status::backpressure);

    REQUIRE(client->send_binary(biggest + '\xfe') != send_status::dropped);
    REQUIRE(run_until(io, [&] { return at_server->closed && at_client->closed; }));
    CHECK(at_server->messages.size() == 1);
    CHECK(at_server->closed->code == 1009);
    CHECK(at_server->closed->initiator == close_initiator::local);
    CHECK(at_server->closed->error == error::frame_too_big); // from the header alone
    CHECK(at_client->closed->code == 1009);
    CHECK(at_client->closed->received_code == 1009);
    CHECK(at_client->closed->sent_code == 1009);
    CHECK(at_client->closed->initiator == close_initiator::peer);
    CHECK_FALSE(at_client->closed->error);
}

TEST_CASE("close_info: after a completed closing handshake a reset of the transport is clean "
          "(RFC 6455 7.1.1), and before it, it is the error",
          "[limits][close]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    const bool handshake_first = GENERATE(true, false);
    // Read 1 brings the server's close frame; the wait for the server's end (read 2) fails.
    if (handshake_first) {
        a.fail_read(2, asio::error::make_error_code(asio::error::connection_reset));
        write_to(b, io, close_frame(1000, masking::none));
    } else {
        a.fail_read(1, asio::error::make_error_code(asio::error::connection_reset));
    }
    auto client = std::make_shared<mem_connection>(std::move(a), role::client, quick());
    auto s = std::make_shared<seen>();
    client->start(recording(s, false));
    REQUIRE(run_until(io, [&] { return s->closed.has_value(); }));
    if (handshake_first) {
        CHECK_FALSE(s->closed->error);
        CHECK(s->closed->code == 1000);
        CHECK(s->closed->received_code == 1000);
        CHECK(s->closed->sent_code == 1000);
        CHECK(s->closed->initiator == close_initiator::peer);
    } else {
        CHECK(s->closed->error == asio::error::connection_reset);
        CHECK(s->closed->code == 1006);
        CHECK(s->closed->received_code == 1006);
        CHECK(s->closed->sent_code == 1006);
        CHECK(s->closed->initiator == close_initiator::none);
    }
    b.close();
}

TEST_CASE("close_info: when we fail a slow reader with 1008 and the peer answers 1000, code "
          "stays 1008 and both codes are reported",
          "[limits][close]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    a.write_capacity(0); // our close frame cannot go out either: the deadline ends it
    auto options = quick();
    options.send_buffer_high_water = 100;
    options.send_buffer_limit = 200;
    auto c = std::make_shared<mem_connection>(std::move(a), role::server, options);
    auto s = std::make_shared<seen>();
    c->start(recording(s, false));
    CHECK(c->send_binary(std::string(150, 'a')) == send_status::backpressure);
    CHECK(c->send_binary(std::string(150, 'b')) == send_status::dropped);
    REQUIRE(run_until(io, [&] { return c->is_closing(); }));
    write_to(b, io, close_frame(1000, masking::client));
    REQUIRE(run_until(io, [&] { return s->closed.has_value(); }));
    CHECK(s->closed->code == 1008);
    CHECK(s->closed->reason == "send buffer limit");
    CHECK(s->closed->sent_code == 1008);
    CHECK(s->closed->received_code == 1000);
    CHECK(s->closed->initiator == close_initiator::local);
    CHECK(s->closed->error == error::send_buffer_full);
    b.close();
}
