// duplex::connection's write path over the in-memory transport (detail/connection_write.hpp):
// write failures, backpressure and the write queue, control frames before data, one write per
// read, corking (sends outside a read's handlers leave together at the end of the turn),
// async_ping, and senders on other threads. The harness is memory_harness.hpp.
#include "memory_harness.hpp"

#include <duplex/rooms.hpp>

#include <asio/post.hpp>

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

TEST_CASE("The Nth write failing ends the connection, queued async_send handlers get the error",
          "[connection][errors]") {
    const auto reset = code(asio::error::connection_reset);
    harness h;
    auto [a, b] = h.pair();
    auto rec = std::make_shared<record>();
    std::vector<outcome> sent(4);
    auto async_send = [&](std::shared_ptr<mem_connection>& c, std::size_t i) {
        c->async_send(opcode::text, "m" + std::to_string(i), sent[i].handler());
    };
    auto all_sent = [&](std::size_t from) {
        return std::all_of(sent.begin() + static_cast<std::ptrdiff_t>(from), sent.end(),
                           [](const outcome& o) { return o.ready(); });
    };

    SECTION("the first write fails: the frame in flight and the frames queued behind it") {
        a.fail_write(1, reset);
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        c->start(record_into(rec));
        for (std::size_t i = 0; i < sent.size(); ++i) async_send(c, i); // m0 alone is in flight
        REQUIRE(h.run_until([&] { return rec->closed && all_sent(0); }));
        for (const auto& o : sent) CHECK(o.get() == reset);
        CHECK(rec->errors == (std::vector<std::error_code>{reset}));
        CHECK(rec->closed->code == 1006);
        CHECK(rec->closed->error == reset);
        CHECK(c->buffered_amount() == 0);
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.received().empty());
        CHECK(peer.saw_eof());
    }
    SECTION("the second write fails: the first message arrives, the rest fail") {
        a.fail_write(2, reset);
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        c->start(record_into(rec));
        async_send(c, 0);
        REQUIRE(h.run_until([&] { return sent[0].ready(); }));
        CHECK(sent[0].get() == std::error_code{});
        for (std::size_t i = 1; i < sent.size(); ++i) async_send(c, i);
        REQUIRE(h.run_until([&] { return rec->closed && all_sent(1); }));
        for (std::size_t i = 1; i < sent.size(); ++i) CHECK(sent[i].get() == reset);
        CHECK(rec->errors == (std::vector<std::error_code>{reset}));
        CHECK(rec->closed->code == 1006);
        CHECK(rec->closed->error == reset);
        CHECK(c->buffered_amount() == 0);
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(data_messages(peer.frames()) == (std::vector<std::string>{"t:m0"}));
    }
    SECTION("the close frame's write fails: async_close completes with the error") {
        const auto broken = code(asio::error::broken_pipe);
        a.fail_write(1, broken);
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        c->start(record_into(rec));
        outcome closed;
        c->async_close(1000, "bye", closed.handler());
        REQUIRE(h.run_until([&] { return rec->closed && closed.ready(); }));
        CHECK(closed.get() == broken);
        CHECK(rec->closed->code == 1006);
        CHECK(rec->closed->error == broken);
        // Every failure is reported once through on_error, then on_close.
        REQUIRE(rec->errors.size() == 1);
        CHECK(rec->errors[0] == broken);
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.received().empty());
    }
}

// ---- backpressure and the write queue -------------------------------------------------------

TEST_CASE("Backpressure: ok, then backpressure past the high-water mark, then dropped past the "
          "limit, the connection closes with send_buffer_full",
          "[connection][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(256); // the peer's receive window: the rest waits until it reads
    auto options = fast_options();
    options.send_buffer_high_water = 1000;
    options.send_buffer_limit = 4000;
    options.close_timeout = 80ms;
    auto c = h.connect(std::move(a), role::server, options);
    auto peer = h.peer(std::move(b), role::client); // not reading yet
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    h.poll();

    constexpr std::size_t cost = 100 + duplex::protocol::max_frame_header_size;
    std::vector<std::string> payloads;
    std::vector<send_status> statuses;
    for (std::size_t i = 0; i < 60; ++i) {
        std::string payload = std::to_string(i);
        payload.resize(100, '.');
        const std::size_t before = c->buffered_amount();
        const bool closing = c->is_closing();
        const auto status = c->send_binary(payload);
        INFO("message " << i << ", " << before << " bytes buffered before it");
        if (closing)
            CHECK(status == send_status::closed);
        else if (before + cost > options.send_buffer_limit)
            CHECK(status == send_status::dropped);
        else if (before + cost > options.send_buffer_high_water)
            CHECK(status == send_status::backpressure);
        else
            CHECK(status == send_status::ok);
        statuses.push_back(status);
        if (status == send_status::ok || status == send_status::backpressure)
            payloads.push_back("b:" + payload);
        CHECK(c->buffered_amount() <= options.send_buffer_limit);
        h.poll();
        CHECK(c->buffered_amount() <= options.send_buffer_limit);
    }
    CHECK(std::is_sorted(statuses.begin(), statuses.end())); // ok < backpressure < dropped < closed
    for (auto s :
         {send_status::ok, send_status::backpressure, send_status::dropped, send_status::closed})
        CHECK(std::count(statuses.begin(), statuses.end(), s) > 0);
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::send_buffer_full)}));
    CHECK(c->is_closing());

    SECTION("the peer reads again: it gets the frames already in flight, then close 1008") {
        peer.start_reading();
        auto has_close = [&] {
            const auto f = peer.frames();
            return !f.empty() && f.back().is(opcode::close);
        };
        REQUIRE(h.run_until(has_close));
        const auto frames = peer.frames();
        const auto got = data_messages(frames);
        REQUIRE_FALSE(got.empty());
        CHECK(got.size() + 1 == frames.size());
        CHECK(std::equal(got.begin(), got.end(), payloads.begin())); // a prefix, in order
        CHECK(frames.back().close_code() == 1008);
        CHECK(frames.back().close_reason() == "send buffer limit");
        peer.send_close(1008);
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == 1008);
    }
    SECTION("the peer never reads: the close deadline cuts the transport") {
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == 1008);
        CHECK(rec->closed->reason == "send buffer limit");
    }
    CHECK(rec->closed->error == error::send_buffer_full);
    CHECK(c->buffered_amount() == 0);
    CHECK(rec->errors.size() == 1);
}

TEST_CASE("async_send is bounded by send_buffer_limit too", "[connection][backpressure]") {
    // A slow reader must not make our memory grow without bound (issue 3), whichever way the
    // application sends. send() enforces the limit; async_send reserves its bytes without
    // looking at it.
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(0); // the peer reads nothing at all
    auto options = fast_options();
    options.send_buffer_high_water = 1000;
    options.send_buffer_limit = 4000;
    auto c = h.connect(std::move(a), role::server, options);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    auto results = std::make_shared<std::vector<std::error_code>>();
    std::size_t peak = 0;
    for (int i = 0; i < 100; ++i) {
        c->async_send(opcode::binary, std::string(100, 'x'),
                      [results](std::error_code ec) { results->push_back(ec); });
        peak = std::max(peak, c->buffered_amount());
        h.poll();
    }
    CHECK(peak <= options.send_buffer_limit);
    CHECK(std::count(results->begin(), results->end(), make_error_code(error::send_buffer_full)) >
          0);
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::send_buffer_full)}));
}

TEST_CASE("Control frames go before queued data in the next write: a pong or a close reply is not "
          "stuck behind the queue",
          "[connection][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(64); // the first message stalls part-way until the peer reads
    auto c = h.connect(std::move(a), role::server);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    std::vector<outcome> sent(3);
    const std::vector<std::string> payloads = {std::string(1000, 'A'), "BBBB", "CCCC"};
    // Sends in one turn leave in one write (corking): A goes first and alone, so that it is in
    // flight and stalled while B and C wait in the queue behind it.
    c->async_send(opcode::binary, payloads[0], sent[0].handler());
    h.settle();
    for (std::size_t i = 1; i < payloads.size(); ++i)
        c->async_send(opcode::binary, payloads[i], sent[i].handler());
    h.settle(); // A is in flight and stalled; B and C wait in the queue
    CHECK(c->buffered_amount() == 1000 + 4 + 4 + 3 * duplex::protocol::max_frame_header_size);
    CHECK_FALSE(sent[0].ready());

    SECTION("a pong overtakes the queued messages") {
        peer.send(opcode::ping, "urgent");
        h.settle(); // the ping is read and its pong queued while A is still being written
        peer.start_reading();
        REQUIRE(h.run_until([&] { return peer.frames().size() == 4; }));
        const auto frames = peer.frames();
        CHECK(frames[0].payload == payloads[0]);
        CHECK(frames[1].is(opcode::pong));
        CHECK(frames[1].payload == "urgent");
        CHECK(frames[2].payload == payloads[1]);
        CHECK(frames[3].payload == payloads[2]);
        REQUIRE(h.run_until([&] { return sent[2].ready(); }));
        for (const auto& o : sent) CHECK(o.get() == std::error_code{});
        CHECK_FALSE(rec->closed);
    }
    SECTION("the close reply follows the frame in flight; the queued ones are dropped") {
        peer.send_close(1000, "stop");
        h.settle();
        CHECK(c->is_closing());
        peer.start_reading();
        REQUIRE(h.run_until([&] { return peer.read_ended(); })); // the server ended first
        const auto frames = peer.frames();
        REQUIRE(frames.size() == 2);
        CHECK(frames[0].payload == payloads[0]);
        CHECK(frames[1].is(opcode::close));
        CHECK(frames[1].close_code() == 1000);
        REQUIRE(h.run_until([&] { return sent[2].ready(); }));
        CHECK(sent[0].get() == std::error_code{});
        CHECK(sent[1].get() == error::closed);
        CHECK(sent[2].get() == error::closed);
        peer.close();
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == 1000);
        CHECK(rec->closed->reason == "stop");
        CHECK(rec->closed->error == std::error_code{});
    }
    CHECK(rec->errors.empty());
}

TEST_CASE("Answers sent from on_message while one read is parsed leave in one write",
          "[connection][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    auto c = h.connect(std::move(a), role::server);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    auto handlers = record_into(rec);
    handlers.on_message = [](const auto& conn, const duplex::message_view& m) {
        conn->send(m.type, m.data);
        conn->send(opcode::text, "ack");
    };
    c->start(std::move(handlers));
    // The peer's read is pending before the messages go out: a write per answer would
    // complete it with the first answer alone.
    peer.start_reading();
    h.settle();
    peer.write(frame(opcode::text, "one", masking::client) +
               frame(opcode::binary, "two", masking::client) +
               frame(opcode::text, "three", masking::client));
    REQUIRE(h.run_until([&] { return peer.frames().size() == 6; }));
    CHECK(peer.state().reads == 1);
    CHECK(data_messages(peer.frames()) ==
          std::vector<std::string>{"t:one", "t:ack", "b:two", "t:ack", "t:three", "t:ack"});
    CHECK(c->buffered_amount() == 0);
}

TEST_CASE("Answers to messages read together with a close or a protocol error go out before our "
          "close frame",
          "[connection][close]") {
    // Answers wait for the end of the read (one write per read); a close or an error later in
    // that read must not drop them: Autobahn 7.1.1, 3.2, 4.1.3 and others expect the echo.
    struct ending {
        const char* what;
        std::string bytes;
        std::uint16_t code;
    };
    const auto end = GENERATE(
        ending{"the peer's close",
               frame(opcode::close, std::string("\x03\xE8", 2), masking::client), 1000},
        ending{"a frame with RSV2 set (5.2)", raw_frame(0xA1, "bad", masking::client), 1002});
    CAPTURE(end.what);
    harness h;
    auto [a, b] = h.pair();
    auto c = h.connect(std::move(a), role::server);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    auto handlers = record_into(rec);
    handlers.on_message = [](const auto& conn, const duplex::message_view& m) {
        conn->send(m.type, m.data);
    };
    c->start(std::move(handlers));
    peer.start_reading();
    peer.write(frame(opcode::text, "Hello, world!", masking::client) + end.bytes);
    REQUIRE(h.run_until([&] { return peer.read_ended(); }));
    const auto frames = peer.frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].is(opcode::text));
    CHECK(frames[0].payload == "Hello, world!");
    CHECK(frames[1].is(opcode::close));
    CHECK(frames[1].close_code() == end.code);
}

TEST_CASE("A ping flood from a peer that does not read fails with control_backlog, bounded",
          "[connection][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(0);    // we can write nothing: the peer does not read
    b.write_capacity(2048); // and what it sends us waits in at most 2 KiB until we read it
    auto options = fast_options();
    options.read_buffer_size = 1024;
    auto c = h.connect(std::move(a), role::server, options);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));

    const std::string ping = frame(opcode::ping, std::string(125, 'p'), masking::client);
    constexpr std::size_t flood = 5000;
    std::string pings;
    for (std::size_t i = 0; i < flood; ++i) pings += ping;
    peer.write(pings);
    REQUIRE(h.run_until([&] { return rec->closed && !peer.state().writing; }));
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::control_backlog)}));
    CHECK(rec->closed->error == error::control_backlog);
    CHECK(rec->closed->code == 1006);
    CHECK(peer.state().write_error == code(asio::error::connection_reset));
    // The connection stopped reading once about 64 KiB of pongs (127 bytes each) piled up:
    // at most one read buffer more, one in flight, and the 2 KiB window in the pipe.
    const std::size_t accepted = peer.state().written / ping.size();
    const std::size_t bound = (64 * 1024 + 2 * options.read_buffer_size + 2048) / 127 + 4;
    CAPTURE(accepted, bound);
    CHECK(accepted <= bound);
    CHECK(accepted < flood);
    CHECK(c->buffered_amount() == 0);
}

TEST_CASE("async_ping completes once written, its errors", "[connection][async]") {
    harness h;
    auto [a, b] = h.pair();
    auto c = h.connect(std::move(a), role::client);
    auto peer = h.peer(std::move(b), role::server);
    peer.start_reading();
    auto shared_pings = std::make_shared<std::vector<std::error_code>>();
    auto& pings = *shared_pings;
    auto ping = [&](std::string payload) {
        c->async_ping(std::move(payload),
                      [shared_pings](std::error_code ec) { shared_pings->push_back(ec); });
    };
    ping("hello?");
    REQUIRE(h.run_until([&] { return pings.size() == 1; }));
    CHECK(pings[0] == std::error_code{});
    REQUIRE(peer.frames().size() == 1);
    CHECK(peer.frames()[0].is(opcode::ping));
    CHECK(peer.frames()[0].masked);
    CHECK(peer.frames()[0].payload == "hello?");

    ping(std::string(126, 'x'));
    REQUIRE(h.run_until([&] { return pings.size() == 2; }));
    CHECK(pings[1] == error::control_payload_too_big);

    c->terminate();
    ping("late");
    REQUIRE(h.run_until([&] { return pings.size() == 3; }));
    CHECK(pings[2] == error::closed);
}

// ---- corking ------------------------------------------------------------------------------

TEST_CASE("Corking: publishes and sends made in one turn outside the member's read reach it in "
          "one write",
          "[connection][cork]") {
    harness h;
    duplex::rooms<mem_connection> rooms;
    std::vector<std::shared_ptr<mem_connection>> members;
    std::vector<raw_peer> peers;
    for (int i = 0; i < 2; ++i) {
        auto [a, b] = h.pair();
        members.push_back(h.connect(std::move(a), role::server));
        peers.push_back(h.peer(std::move(b), role::client));
        members.back()->start({});
        REQUIRE(rooms.join(members.back(), "room"));
        // A read is pending before anything is sent: a write per message would complete it
        // with the first message alone.
        peers.back().start_reading();
    }
    h.settle();
    // One turn, as a publisher's handler is: five publishes, and a send of the first
    // member's own between them.
    std::vector<std::size_t> buffered_in_turn;
    asio::post(h.io, [&] {
        for (int i = 0; i < 5; ++i) {
            rooms.publish("room", opcode::text, "p" + std::to_string(i));
            if (i == 2) members[0]->send(opcode::binary, "own");
        }
        for (auto& m : members) buffered_in_turn.push_back(m->buffered_amount());
    });
    REQUIRE(h.run_until([&] {
        return data_messages(peers[0].frames()).size() == 6 &&
               data_messages(peers[1].frames()).size() == 5;
    }));
    h.settle();
    // Nothing was written during the turn: everything was still queued at its end.
    REQUIRE(buffered_in_turn.size() == 2);
    CHECK(buffered_in_turn[0] > 0);
    CHECK(buffered_in_turn[1] > 0);
    CHECK(peers[0].state().reads == 1);
    CHECK(peers[1].state().reads == 1);
    CHECK(data_messages(peers[0].frames()) ==
          std::vector<std::string>{"t:p0", "t:p1", "t:p2", "b:own", "t:p3", "t:p4"});
    CHECK(data_messages(peers[1].frames()) ==
          std::vector<std::string>{"t:p0", "t:p1", "t:p2", "t:p3", "t:p4"});
    for (auto& m : members) CHECK(m->buffered_amount() == 0);
}

namespace {
// One server connection in a room, and the raw peer that reads what it is sent.
struct one_member_room {
    harness h;
    duplex::rooms<mem_connection> rooms;
    std::shared_ptr<mem_connection> c;
    std::optional<raw_peer> peer;

    one_member_room() {
        auto [a, b] = h.pair();
        c = h.connect(std::move(a), role::server);
        peer.emplace(h.peer(std::move(b), role::client));
        c->start({});
        REQUIRE(rooms.join(c, "room"));
        peer->start_reading();
        h.settle();
    }

    // Everything the peer received, once the last of it is a close frame.
    std::vector<wire_frame> frames_until_close() {
        REQUIRE(h.run_until([&] {
            const auto frames = peer->frames();
            return !frames.empty() && frames.back().is(opcode::close);
        }));
        return peer->frames();
    }
};
} // namespace

TEST_CASE("Corking: sends in the member's own turns keep their order with broadcasts, and a "
          "close in the same turn goes last",
          "[connection][cork]") {
    one_member_room m;
    auto& rooms = m.rooms;
    auto& c = m.c;
    // On the member's own strand (as its on_drain or a posted task would be), then from
    // outside it, then close(): the close frame follows every message queued before it.
    asio::post(c->get_executor(), [&] {
        rooms.publish("room", opcode::text, "b1");
        c->send(opcode::text, "own1");
    });
    asio::post(m.h.io, [&] {
        rooms.publish("room", opcode::text, "b2");
        c->send(opcode::text, "own2");
        rooms.publish("room", opcode::text, "b3");
        c->close(1000, "bye");
        rooms.publish("room", opcode::text, "after close"); // refused: the member is closing
    });
    const auto frames = m.frames_until_close();
    CHECK(data_messages(frames) ==
          std::vector<std::string>{"t:b1", "t:own1", "t:b2", "t:own2", "t:b3"});
    CHECK(frames.back().close_code() == 1000);
    CHECK(std::count_if(frames.begin(), frames.end(),
                        [](const wire_frame& f) { return f.is(opcode::close); }) == 1);
}

TEST_CASE("Inbox: a broadcast from outside the member's strand goes before a send that the "
          "member's strand makes next in the same turn",
          "[connection][cork]") {
    one_member_room m;
    auto& rooms = m.rooms;
    auto& c = m.c;
    // The publish waits in the member's inbox, unframed; the dispatch then runs on the
    // member's strand at once (nothing else is queued on it), and its send must not overtake.
    asio::post(m.h.io, [&] {
        rooms.publish("room", opcode::text, "b1");
        asio::dispatch(c->get_executor(), [&] {
            c->send(opcode::text, "own1");
            rooms.publish("room", opcode::text, "b2");
        });
        rooms.publish("room", opcode::text, "b3");
        asio::dispatch(c->get_executor(), [&] { c->close(1000, "bye"); });
    });
    CHECK(data_messages(m.frames_until_close()) ==
          std::vector<std::string>{"t:b1", "t:own1", "t:b2", "t:b3"});
    CHECK(c->buffered_amount() == 0);
}

TEST_CASE("Corking: sends in one turn still count against the send buffer limit",
          "[connection][cork][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.send_buffer_high_water = 100;
    options.send_buffer_low_water = 50;
    options.send_buffer_limit = 200;
    auto c = h.connect(std::move(a), role::server, options);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    peer.start_reading();
    h.settle();
    // Nothing is written before the turn ends, so the queue grows within it: the limits see
    // every send, and the one past the limit is dropped and fails the member as a slow reader.
    const std::string payload(60, 'x');
    std::vector<send_status> statuses;
    asio::post(h.io, [&] {
        for (int i = 0; i < 5; ++i) statuses.push_back(c->send(opcode::binary, payload));
    });
    REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
    REQUIRE(statuses.size() == 5);
    CHECK(statuses[0] == send_status::ok);
    CHECK(statuses[1] == send_status::backpressure);
    CHECK(std::find(statuses.begin(), statuses.end(), send_status::dropped) != statuses.end());
    CHECK(rec->closed->code == 1008);
    CHECK(c->buffered_amount() == 0);
}

// ---- threads ------------------------------------------------------------------------------

TEST_CASE("send and close from other threads while the io runs on its own: per-sender order",
          "[connection][threads]") {
    const unsigned io_threads = GENERATE(1U, 2U);
    CAPTURE(io_threads);
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    auto [a, b] = memory::make_pair(io.get_executor());
    auto options = fast_options();
    // Generous: a clean close is asserted below, and hundreds of queued messages on a busy
    // machine must not turn it into a timeout.
    options.close_timeout = 5s;
    auto server = std::make_shared<mem_connection>(std::move(a), role::server, options);
    auto client = std::make_shared<mem_connection>(std::move(b), role::client, options);

    struct shared_record {
        std::mutex m;
        std::condition_variable cv;
        std::vector<std::string> at_client, at_server;
        std::optional<duplex::close_info> server_closed, client_closed;
        std::atomic<int> busy[2] = {0, 0}; // handlers running, per connection
        std::atomic<bool> overlapped{false};
        void enter(bool is_server) {
            if (busy[is_server ? 1 : 0].fetch_add(1) != 0) overlapped = true;
        }
        void leave(bool is_server) { busy[is_server ? 1 : 0].fetch_sub(1); }
    };
    auto rec = std::make_shared<shared_record>();
    auto handlers_for = [rec](bool is_server) {
        mem_handlers hd;
        hd.on_message = [rec, is_server](const auto&, const duplex::message_view& m) {
            rec->enter(is_server);
            std::this_thread::yield(); // widen the window for a second handler to slip in
            {
                std::lock_guard<std::mutex> lock(rec->m);
                (is_server ? rec->at_server : rec->at_client).emplace_back(m.data);
                rec->cv.notify_all();
            }
            rec->leave(is_server);
        };
        hd.on_close = [rec, is_server](const auto&, const duplex::close_info& info) {
            std::lock_guard<std::mutex> lock(rec->m);
            (is_server ? rec->server_closed : rec->client_closed) = info;
            rec->cv.notify_all();
        };
        return hd;
    };
    server->start(handlers_for(true));
    client->start(handlers_for(false));

    std::vector<std::thread> pool;
    for (unsigned i = 0; i < io_threads; ++i) pool.emplace_back([&io] { io.run(); });
    struct joiner {
        asio::io_context& io;
        std::vector<std::thread>& pool;
        ~joiner() {
            io.stop();
            for (auto& t : pool)
                if (t.joinable()) t.join();
        }
    } join_pool{io, pool};

    constexpr int per_sender = 300;
    auto sender = [](std::shared_ptr<mem_connection> c, std::string tag) {
        return std::thread([c = std::move(c), tag] {
            for (int i = 0; i < per_sender; ++i) {
                const auto st = c->send_text(tag + std::to_string(i));
                if (st != send_status::ok && st != send_status::backpressure) return;
            }
        });
    };
    // Returns, for each tag, the indexes received in order.
    auto by_sender = [](const std::vector<std::string>& got, const std::string& tag) {
        std::vector<int> out;
        for (const auto& s : got)
            if (s.compare(0, tag.size(), tag) == 0) out.push_back(std::stoi(s.substr(tag.size())));
        return out;
    };
    auto is_prefix = [](const std::vector<int>& v) {
        for (std::size_t i = 0; i < v.size(); ++i)
            if (v[i] != static_cast<int>(i)) return false;
        return true;
    };

    SECTION("everything sent before close arrives, in order per sender") {
        std::thread s1 = sender(server, "a:");
        std::thread s2 = sender(server, "b:");
        std::thread s3 = sender(client, "c:");
        s1.join();
        s2.join();
        s3.join();
        {
            std::unique_lock<std::mutex> lock(rec->m);
            REQUIRE(rec->cv.wait_for(lock, 10s, [&] {
                return rec->at_client.size() == 2 * per_sender &&
                       rec->at_server.size() == per_sender;
            }));
        }
        std::thread closer([&] { client->close(1000, "done"); });
        closer.join();
        std::unique_lock<std::mutex> lock(rec->m);
        REQUIRE(
            rec->cv.wait_for(lock, 10s, [&] { return rec->server_closed && rec->client_closed; }));
        for (const char* tag : {"a:", "b:"}) {
            const auto got = by_sender(rec->at_client, tag);
            CHECK(got.size() == per_sender);
            CHECK(is_prefix(got));
        }
        const auto got = by_sender(rec->at_server, "c:");
        CHECK(got.size() == per_sender);
        CHECK(is_prefix(got));
        CHECK(rec->server_closed->code == 1000);
        CHECK(rec->server_closed->reason == "done");
        CHECK(rec->server_closed->error == std::error_code{});
        CHECK(rec->client_closed->error == std::error_code{});
    }
    SECTION("close while others send: each sender's messages arrive as an in-order prefix") {
        std::thread s1 = sender(server, "a:");
        std::thread s2 = sender(server, "b:");
        std::thread closer([&] {
            std::this_thread::sleep_for(1ms);
            server->close(1001, "bye");
        });
        s1.join();
        s2.join();
        closer.join();
        std::unique_lock<std::mutex> lock(rec->m);
        REQUIRE(
            rec->cv.wait_for(lock, 10s, [&] { return rec->server_closed && rec->client_closed; }));
        for (const char* tag : {"a:", "b:"}) CHECK(is_prefix(by_sender(rec->at_client, tag)));
        CHECK(rec->client_closed->code == 1001);
        CHECK(rec->client_closed->error == std::error_code{});
        CHECK(rec->server_closed->error == std::error_code{});
        CHECK(server->send_text("late") == send_status::closed);
    }
    CHECK(server->buffered_amount() == 0);
    CHECK_FALSE(rec->overlapped); // a connection's handlers never run at the same time
    work.reset();
    io.stop();
    for (auto& t : pool) t.join();
    io.restart();
    io.run_for(100ms); // completes what closing the pipe posted
}
