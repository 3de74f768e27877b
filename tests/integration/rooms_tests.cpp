// duplex::rooms and duplex::shared_message: membership, automatic leave at close, exclusion,
// history, slow members, the backplane, fan-out over real sockets and publishing from many
// threads at once (this file runs under TSan in CI).
//
// Most tests use the in-memory transport: a server-role connection is the room member, and a
// client-role connection on the other end of its pipe records what the member was sent.
#include "catch.hpp"
#include "harness.hpp"

#include <duplex/duplex.hpp>
#include <duplex/rooms.hpp>
#include <duplex/transport/memory.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using duplex::opcode;
using duplex::presence_kind;
using duplex::protocol::role;
using test::counter;
using test::io_runner;
using memory = duplex::transport::memory;
using mem_connection = duplex::connection<memory>;
using mem_rooms = duplex::rooms<mem_connection>;

namespace {

duplex::connection_options quiet_options() {
    duplex::connection_options o;
    o.ping_interval = 0ms;
    o.close_timeout = 200ms;
    return o;
}

// What the far end of one member's pipe received.
struct inbox {
    std::mutex m;
    std::vector<std::string> messages;
    std::optional<std::uint16_t> close_code;
    void add(std::string_view s) {
        std::lock_guard<std::mutex> lock(m);
        messages.emplace_back(s);
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(m);
        return messages.size();
    }
    std::vector<std::string> copy() {
        std::lock_guard<std::mutex> lock(m);
        return messages;
    }
};

struct member {
    std::shared_ptr<mem_connection> server_side; // joins rooms
    std::shared_ptr<mem_connection> client_side; // reads what it was sent
    std::shared_ptr<inbox> received = std::make_shared<inbox>();
};

struct harness {
    asio::io_context io;

    // A member whose peer reads everything, unless `reading` is false: then nothing reads the
    // pipe, which accepts `capacity` bytes before writes stall.
    member make_member(bool reading = true,
                       duplex::connection_options server_options = quiet_options()) {
        auto [a, b] = memory::make_pair(io.get_executor());
        member m;
        if (!reading) a.write_capacity(4096);
        m.server_side =
            std::make_shared<mem_connection>(std::move(a), role::server, server_options);
        m.server_side->start({});
        if (reading) {
            m.client_side =
                std::make_shared<mem_connection>(std::move(b), role::client, quiet_options());
            duplex::connection_handlers<mem_connection> h;
            auto box = m.received;
            h.on_message = [box](auto&, const duplex::message_view& v) { box->add(v.data); };
            h.on_close = [box](auto&, const duplex::close_info& info) {
                std::lock_guard<std::mutex> lock(box->m);
                box->close_code = info.code;
            };
            m.client_side->start(std::move(h));
        } else {
            // Keep the far end open and silent.
            auto parked = std::make_shared<memory::stream_type>(std::move(b));
            parked_.push_back(parked);
        }
        return m;
    }

    // Runs every handler that is ready, and those they make ready, until none is: all that
    // happens without a timer, however slow the machine (unlike running for a few ms).
    void settle() {
        for (int i = 0; i < 100000; ++i) {
            io.restart();
            if (io.poll() == 0) return;
        }
        FAIL("handlers kept making each other ready: a busy loop");
    }

    // Runs handlers until `done()` or `limit`; returns done(). The default bound is generous:
    // only an event that never comes reaches it, however slow the machine.
    template <class Pred>
    bool run_until(Pred&& done, std::chrono::milliseconds limit = 10s) {
        const auto deadline = std::chrono::steady_clock::now() + limit;
        while (!done()) {
            if (std::chrono::steady_clock::now() >= deadline) return false;
            io.restart();
            io.run_for(2ms);
        }
        return true;
    }

    std::vector<std::shared_ptr<memory::stream_type>> parked_;
};

} // namespace

TEST_CASE("shared_message: encoded once as an unmasked final frame, text must be UTF-8",
          "[rooms]") {
    auto m = duplex::shared_message::text("hello");
    REQUIRE(m);
    CHECK(m.is_text());
    CHECK(m.payload() == "hello");
    CHECK(m.frame_bytes() == std::string("\x81\x05hello", 7));

    const std::string big(70000, 'b');
    auto b = duplex::shared_message::binary(big);
    REQUIRE(b.frame_bytes().size() == 10 + big.size()); // 5.2: 64-bit length for > 65535
    CHECK(static_cast<unsigned char>(b.frame_bytes()[1]) == 127);

    std::error_code ec;
    CHECK_FALSE(duplex::shared_message::make(opcode::text, "\xC0\xAF", ec));
    CHECK(ec == duplex::error::invalid_utf8);
    CHECK_FALSE(duplex::shared_message::make(opcode::ping, "x", ec));
    CHECK(ec == duplex::error::bad_opcode);
}

TEST_CASE("shared_message: every connection queues a reference to one buffer, not a copy",
          "[rooms]") {
    harness h;
    std::vector<member> members;
    for (int i = 0; i < 5; ++i) members.push_back(h.make_member());
    auto m = duplex::shared_message::text("to everyone");
    for (auto& mem : members) CHECK(mem.server_side->send(m) == duplex::send_status::ok);
    // Each queued send holds the same buffer until its write completes.
    CHECK(m.use_count() == 6);
    REQUIRE(h.run_until([&] {
        return std::all_of(members.begin(), members.end(),
                           [](member& x) { return x.received->size() == 1; });
    }));
    for (auto& mem : members) CHECK(mem.received->copy()[0] == "to everyone");
    CHECK(m.use_count() == 1);
    CHECK(members[0].server_side->send(duplex::shared_message{}) ==
          duplex::send_status::invalid_payload);
}

TEST_CASE("shared_message through a client connection is masked with the client's own key",
          "[rooms]") {
    harness h;
    auto [a, b] = memory::make_pair(h.io.get_executor());
    auto client = std::make_shared<mem_connection>(std::move(a), role::client, quiet_options());
    auto server = std::make_shared<mem_connection>(std::move(b), role::server, quiet_options());
    std::vector<std::string> got;
    duplex::connection_handlers<mem_connection> sh;
    sh.on_message = [&](auto&, const duplex::message_view& v) { got.emplace_back(v.data); };
    server->start(std::move(sh));
    client->start({});
    auto m = duplex::shared_message::binary("from a client");
    client->send(m);
    client->send(m);
    // A server that received an unmasked frame would have failed with 1002 (RFC 6455 5.1).
    REQUIRE(h.run_until([&] { return got.size() == 2; }));
    CHECK(got[1] == "from a client");
    CHECK_FALSE(server->is_closing());
}

TEST_CASE("Rooms: join, leave and membership queries", "[rooms]") {
    harness h;
    mem_rooms rooms;
    auto a = h.make_member(), b = h.make_member();
    CHECK(rooms.join(a.server_side, "lobby"));
    CHECK_FALSE(rooms.join(a.server_side, "lobby")); // already a member
    CHECK(rooms.join(a.server_side, "news"));
    CHECK(rooms.join(b.server_side, "lobby"));
    CHECK(rooms.member_count("lobby") == 2);
    CHECK(rooms.member_count("news") == 1);
    CHECK(rooms.member_count("nowhere") == 0);
    CHECK(rooms.room_count() == 2);
    auto of_a = rooms.rooms_of(*a.server_side);
    std::sort(of_a.begin(), of_a.end());
    CHECK(of_a == std::vector<std::string>{"lobby", "news"});
    auto lobby = rooms.members("lobby");
    CHECK(std::count(lobby.begin(), lobby.end(), b.server_side) == 1);

    CHECK(rooms.leave(a.server_side, "lobby"));
    CHECK_FALSE(rooms.leave(a.server_side, "lobby"));
    CHECK(rooms.member_count("lobby") == 1);
    rooms.leave_all(a.server_side);
    CHECK(rooms.rooms_of(*a.server_side).empty());
    CHECK(rooms.room_count() == 1);           // "news" emptied and had no history: forgotten
    CHECK(rooms.join(a.server_side, "news")); // a member again after leave_all
}

TEST_CASE("Rooms: a closed connection leaves every room, with presence events", "[rooms]") {
    harness h;
    mem_rooms rooms;
    std::mutex m;
    std::vector<std::tuple<presence_kind, std::string, std::size_t>> events;
    rooms.on_presence([&](const duplex::presence_event<mem_connection>& e) {
        std::lock_guard<std::mutex> lock(m);
        events.emplace_back(e.kind, std::string(e.room), e.member_count);
    });
    auto a = h.make_member(), b = h.make_member();
    rooms.join(a.server_side, "one");
    rooms.join(a.server_side, "two");
    rooms.join(b.server_side, "one");
    a.client_side->close(); // the peer goes away; the server side completes the close
    REQUIRE(h.run_until([&] { return rooms.member_count("two") == 0; }));
    CHECK(rooms.member_count("one") == 1);
    CHECK(rooms.rooms_of(*a.server_side).empty());
    CHECK_FALSE(rooms.join(a.server_side, "one")); // closed connections cannot join

    std::lock_guard<std::mutex> lock(m);
    REQUIRE(events.size() == 5);
    CHECK(events[0] == std::make_tuple(presence_kind::joined, std::string("one"), std::size_t{1}));
    CHECK(events[2] == std::make_tuple(presence_kind::joined, std::string("one"), std::size_t{2}));
    std::set<std::string> left;
    for (std::size_t i = 3; i < 5; ++i) {
        CHECK(std::get<0>(events[i]) == presence_kind::left);
        left.insert(std::get<1>(events[i]));
    }
    CHECK(left == std::set<std::string>{"one", "two"});
}

TEST_CASE("Rooms: a connection closed before it joined is not kept", "[rooms]") {
    harness h;
    mem_rooms rooms;
    auto a = h.make_member();
    a.server_side->terminate();
    REQUIRE(h.run_until([&] { return a.server_side->is_closing(); }));
    CHECK_FALSE(rooms.join(a.server_side, "late"));
    CHECK(rooms.member_count("late") == 0);
}

TEST_CASE("Rooms: publish reaches every member once, except the excluded sender", "[rooms]") {
    harness h;
    mem_rooms rooms;
    std::vector<member> members;
    for (int i = 0; i < 4; ++i) {
        members.push_back(h.make_member());
        rooms.join(members.back().server_side, "chat");
    }
    auto outsider = h.make_member();
    rooms.join(outsider.server_side, "elsewhere");

    auto r = rooms.publish("chat", opcode::text, "hi all", members[0].server_side.get());
    CHECK(r.delivered == 3);
    CHECK(r.skipped == 0);
    r = rooms.publish("chat", opcode::binary, "second");
    CHECK(r.delivered == 4);
    CHECK(rooms.publish("empty-room", opcode::text, "nobody").delivered == 0);
    CHECK(rooms.publish("chat", opcode::text, "\xFF").delivered == 0); // not UTF-8: no one

    REQUIRE(h.run_until([&] { return members[1].received->size() == 2; }));
    REQUIRE(h.run_until([&] { return members[0].received->size() == 1; }));
    h.settle();
    CHECK(members[0].received->copy() == std::vector<std::string>{"second"});
    for (int i = 1; i < 4; ++i)
        CHECK(members[static_cast<std::size_t>(i)].received->copy() ==
              std::vector<std::string>{"hi all", "second"});
    CHECK(outsider.received->size() == 0);

    auto all = rooms.publish_all(opcode::text, "announcement");
    CHECK(all.delivered == 5); // each connection once, whatever rooms it is in
    REQUIRE(h.run_until([&] { return outsider.received->size() == 1; }));
}

TEST_CASE("Rooms: history keeps the last N messages with sequence numbers for resync", "[rooms]") {
    harness h;
    duplex::rooms_options o;
    o.history_size = 3;
    o.max_retained_empty_rooms = 2;
    mem_rooms rooms(o);
    auto a = h.make_member();
    rooms.join(a.server_side, "feed");
    for (int i = 1; i <= 5; ++i)
        CHECK(rooms.publish("feed", opcode::text, "m" + std::to_string(i)).sequence ==
              static_cast<std::uint64_t>(i));
    auto all = rooms.history("feed");
    REQUIRE(all.size() == 3);
    CHECK(all[0].sequence == 3);
    CHECK(all[0].message.payload() == "m3");
    CHECK(all[2].message.payload() == "m5");
    // A client that saw up to 4 asks for what it missed.
    auto missed = rooms.history("feed", 4);
    REQUIRE(missed.size() == 1);
    CHECK(missed[0].message.payload() == "m5");

    // The room outlives its last member for the sake of its history...
    rooms.leave(a.server_side, "feed");
    CHECK(rooms.history("feed").size() == 3);
    CHECK(rooms.publish("feed", opcode::text, "m6").sequence == 6);
    // ...but only a bounded number of empty rooms are kept.
    for (const char* name : {"x", "y"}) {
        rooms.join(a.server_side, name);
        rooms.publish(name, opcode::text, "keep me");
        rooms.leave(a.server_side, name);
    }
    CHECK(rooms.history("feed").empty());
    CHECK(rooms.history("x").size() == 1);
    CHECK(rooms.history("y").size() == 1);
    CHECK(rooms.room_count() == 2);
}

TEST_CASE("Rooms: a slow member misses messages, the others get every one", "[rooms][slow]") {
    harness h;
    mem_rooms rooms;
    auto slow_options = quiet_options();
    slow_options.send_buffer_high_water = 16 * 1024;
    auto fast = h.make_member();
    auto slow = h.make_member(false, slow_options);
    rooms.join(fast.server_side, "r");
    rooms.join(slow.server_side, "r");
    const std::string chunk(4000, 'x');
    std::size_t skipped = 0;
    for (int i = 0; i < 20; ++i) {
        skipped += rooms.publish("r", opcode::binary, chunk).skipped;
        h.settle();
    }
    CHECK(skipped > 0);
    CHECK(slow.server_side->buffered_amount() <= std::size_t{16 * 1024 + 4000 + 14});
    REQUIRE(h.run_until([&] { return fast.received->size() == 20; }));
    CHECK_FALSE(slow.server_side->is_closing()); // dropped messages, kept the connection
}

TEST_CASE("Rooms: with on_slow = close, a slow member is closed with 1008", "[rooms][slow]") {
    harness h;
    duplex::rooms_options o;
    o.on_slow = duplex::slow_subscriber::close;
    mem_rooms rooms(o);
    auto slow_options = quiet_options();
    slow_options.send_buffer_high_water = 16 * 1024;
    auto fast = h.make_member();
    auto slow = h.make_member(false, slow_options);
    rooms.join(fast.server_side, "r");
    rooms.join(slow.server_side, "r");
    const std::string chunk(4000, 'x');
    for (int i = 0; i < 20 && !slow.server_side->is_closing(); ++i) {
        rooms.publish("r", opcode::binary, chunk);
        h.settle();
    }
    CHECK(slow.server_side->is_closing());
    // It cannot read its close frame either: the close deadline cuts it and it leaves.
    REQUIRE(h.run_until([&] { return rooms.member_count("r") == 1; }));
    rooms.publish("r", opcode::text, "after");
    REQUIRE(h.run_until([&] {
        auto got = fast.received->copy();
        return !got.empty() && got.back() == "after";
    }));
}

TEST_CASE("Rooms: two rooms objects share a room through the in-process backplane",
          "[rooms][backplane]") {
    harness h;
    auto plane = std::make_shared<duplex::in_process_backplane>();
    mem_rooms node_a({}, plane), node_b({}, plane);
    mem_rooms node_c({}, plane); // no members in the room: receives nothing for it
    auto a1 = h.make_member(), b1 = h.make_member(), b2 = h.make_member(), c1 = h.make_member();
    node_a.join(a1.server_side, "shared");
    node_b.join(b1.server_side, "shared");
    node_b.join(b2.server_side, "shared");
    node_c.join(c1.server_side, "other");

    auto r = node_a.publish("shared", opcode::text, "from a", a1.server_side.get());
    CHECK(r.delivered == 0); // a's only local member is the excluded sender
    REQUIRE(h.run_until([&] { return b1.received->size() == 1 && b2.received->size() == 1; }));
    node_b.publish("shared", opcode::text, "from b");
    REQUIRE(h.run_until([&] { return a1.received->size() == 1; }));
    CHECK(a1.received->copy()[0] == "from b");
    REQUIRE(h.run_until([&] { return b1.received->size() == 2; }));
    node_c.publish_all(opcode::text, "everyone");
    REQUIRE(h.run_until([&] {
        return a1.received->size() == 2 && b2.received->size() == 3 && c1.received->size() == 1;
    }));
    h.settle();
    CHECK(b1.received->copy() == std::vector<std::string>{"from a", "from b", "everyone"});
    CHECK(c1.received->copy() == std::vector<std::string>{"everyone"});

    // After b's members leave, b no longer receives the room's traffic.
    node_b.leave(b1.server_side, "shared");
    node_b.leave(b2.server_side, "shared");
    node_a.publish("shared", opcode::text, "late");
    h.settle();
    CHECK(b1.received->size() == 3);
}

// ---- real sockets and threads ---------------------------------------------------------------

namespace {

using tcp_server = duplex::server<duplex::transport::tcp>;
using tcp_connection = duplex::connection<duplex::transport::tcp>;
using tcp_rooms = duplex::rooms<tcp_server::connection_type>;

// Opens `count` clients that count every message they receive into `received`.
std::vector<std::shared_ptr<tcp_connection>> open_clients(asio::io_context& io, std::uint16_t port,
                                                          std::size_t count, counter& received) {
    std::vector<std::future<std::shared_ptr<tcp_connection>>> pending;
    const std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/";
    for (std::size_t i = 0; i < count; ++i)
        pending.push_back(duplex::async_connect<duplex::transport::tcp>(io.get_executor(), url, {},
                                                                        asio::use_future));
    std::vector<std::shared_ptr<tcp_connection>> clients;
    for (auto& p : pending) {
        REQUIRE(p.wait_for(10s) == std::future_status::ready);
        auto c = p.get();
        duplex::connection_handlers<tcp_connection> h;
        h.on_message = [&received](auto&, const duplex::message_view&) { received.add(); };
        c->start(std::move(h));
        clients.push_back(std::move(c));
    }
    return clients;
}

} // namespace

TEST_CASE("Rooms: one publish fans out to 1,000 members over real sockets",
          "[rooms][integration][scale]") {
    io_runner server_io(1);
    tcp_server server(server_io.io);
    tcp_rooms rooms;
    counter joined;
    server.handlers().on_open = [&](auto& c) {
        rooms.join(c, "everyone");
        joined.add();
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    io_runner client_io(1);
    counter received;
    constexpr std::size_t count = 1000;
    auto clients = open_clients(client_io.io, server.port(), count, received);
    REQUIRE(joined.wait_for(count, 10s));
    REQUIRE(rooms.member_count("everyone") == count);

    auto message = duplex::shared_message::text("one frame for a thousand sockets");
    auto result = rooms.publish("everyone", message);
    CHECK(result.delivered == count);
    REQUIRE(received.wait_for(count, 10s));

    for (auto& c : clients) c->close();
    for (int i = 0; i < 500 && rooms.member_count("everyone") != 0; ++i)
        std::this_thread::sleep_for(10ms);
    CHECK(rooms.member_count("everyone") == 0); // every close left the room
}

TEST_CASE("Rooms: broadcasts written straight from the shared frames survive a member that "
          "stops reading, whole and in order with its own sends",
          "[rooms][integration][cork]") {
    // A member with nothing queued gets a turn's broadcasts written at once from the shared
    // bytes; what its socket does not take (one frame partly) is queued. A member that reads
    // nothing for a while makes the socket refuse mid-frame, and sends of the member's own from
    // another thread sit between the broadcasts: every message must still arrive whole, once,
    // in the order it was sent.
    io_runner server_io(1);
    duplex::server_options options;
    options.connection.send_buffer_high_water = 64U << 20; // nothing skipped as slow
    options.connection.send_buffer_limit = 128U << 20;
    tcp_server server(server_io.io, options);
    tcp_rooms rooms;
    std::promise<std::shared_ptr<tcp_server::connection_type>> opened;
    server.handlers().on_open = [&](auto& c) {
        rooms.join(c, "room");
        opened.set_value(c);
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    io_runner client_io(1);
    auto pending = duplex::async_connect<duplex::transport::tcp>(
        client_io.io.get_executor(), "ws://127.0.0.1:" + std::to_string(server.port()) + "/", {},
        asio::use_future);
    REQUIRE(pending.wait_for(10s) == std::future_status::ready);
    auto client = pending.get(); // pull mode: reads only for async_read
    auto opened_future = opened.get_future();
    REQUIRE(opened_future.wait_for(10s) == std::future_status::ready);
    auto member = opened_future.get();

    auto payload = [](std::size_t i, char kind) {
        std::string p(9000 + i % 7 * 1000, static_cast<char>('a' + i % 26));
        const std::string tag = kind + std::to_string(i) + ':';
        p.replace(0, tag.size(), tag);
        return p;
    };
    std::vector<std::string> expected;
    constexpr std::size_t turns = 24;
    constexpr std::size_t per_turn = 40; // ~10 MB in all: more than both sockets' buffers
    for (std::size_t t = 0; t < turns; ++t) {
        std::vector<std::string> turn;
        for (std::size_t i = 0; i < per_turn; ++i) {
            const std::size_t n = t * per_turn + i;
            turn.push_back(payload(n, i % 10 == 9 ? 'o' : 'b'));
        }
        expected.insert(expected.end(), turn.begin(), turn.end());
        std::promise<void> done;
        // One turn of the server's io thread, as a publisher's handler is; the member's own
        // sends come from outside its strand too, through the same inbox.
        asio::post(server_io.io, [&, turn = std::move(turn)] {
            for (const auto& p : turn) {
                if (p[0] == 'o')
                    member->send(opcode::binary, p);
                else
                    rooms.publish("room", opcode::binary, p);
            }
            done.set_value();
        });
        REQUIRE(done.get_future().wait_for(10s) == std::future_status::ready);
    }
    for (const auto& want : expected) {
        auto read = client->async_read(asio::use_future);
        REQUIRE(read.wait_for(10s) == std::future_status::ready);
        const duplex::message got = read.get();
        REQUIRE(got.data.size() == want.size());
        REQUIRE(got.data == want);
    }
    REQUIRE(test::eventually([&] { return member->buffered_amount() == 0; }));
    auto closed = client->async_close(1000, "done", asio::use_future);
    REQUIRE(closed.wait_for(10s) == std::future_status::ready);
    CHECK(client->result().code == 1000);
}

TEST_CASE("Rooms: publishing from many threads while members join and leave (TSan)",
          "[rooms][integration][threads]") {
    io_runner server_io(2);
    tcp_server server(server_io.io);
    tcp_rooms rooms;
    std::atomic<int> opened{0};
    server.handlers().on_open = [&](auto& c) {
        rooms.join(c, "busy");
        ++opened;
    };
    // Members also publish from their own strands.
    server.handlers().on_message = [&](auto& c, const duplex::message_view& m) {
        rooms.publish("busy", m.type, m.data, c.get());
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    io_runner client_io(2);
    counter received;
    auto clients = open_clients(client_io.io, server.port(), 20, received);
    for (int i = 0; i < 500 && opened.load() < 20; ++i) std::this_thread::sleep_for(10ms);
    REQUIRE(opened.load() == 20);

    std::atomic<std::size_t> delivered{0};
    std::vector<std::thread> publishers;
    for (int t = 0; t < 3; ++t)
        publishers.emplace_back([&, t] {
            for (int i = 0; i < 100; ++i)
                delivered += rooms
                                 .publish("busy", opcode::text,
                                          "t" + std::to_string(t) + ":" + std::to_string(i))
                                 .delivered;
        });
    std::thread churn([&] {
        auto members = rooms.members("busy");
        for (int i = 0; i < 50; ++i)
            for (std::size_t k = 0; k < 3; ++k) {
                rooms.join(members[k], "side");
                rooms.leave(members[k], "side");
                (void)rooms.rooms_of(*members[k]);
            }
    });
    for (std::size_t i = 0; i < 5; ++i) clients[i]->send_text("from client " + std::to_string(i));
    for (auto& p : publishers) p.join();
    churn.join();
    // Each client message reaches the 19 other members.
    const std::size_t expected = delivered.load() + 5 * 19;
    REQUIRE(received.wait_for(expected, 10s));
    CHECK(delivered.load() == 3 * 100 * 20);
    for (auto& c : clients) c->close();
}
