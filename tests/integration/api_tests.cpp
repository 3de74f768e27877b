// The API edges a user meets first (issue 12): partial message delivery at the connection
// level, the server's connection and handshake counts, reconnecting_client's give-up count,
// refusals and retry hook, the drain signal, and asynchronous upgrade decisions.
//
// Connection-level tests run over the in-memory transport: no sockets, no timing; the io_context
// runs for a bounded time and a bug fails a check instead of hanging. Endpoint tests use
// loopback TCP with generous deadlines that only fail on absence.
#include "catch.hpp"
#include "harness.hpp"

#include <duplex/client.hpp>
#include <duplex/connection.hpp>
#include <duplex/protocol/session.hpp>
#include <duplex/server.hpp>
#include <duplex/transport/memory.hpp>
#include <duplex/transport/tcp.hpp>

#include <asio/connect.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/read.hpp>
#include <asio/use_future.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using duplex::opcode;
using duplex::protocol::role;
using memory = duplex::transport::memory;
using mem_connection = duplex::connection<memory>;
using mem_handlers = duplex::connection_handlers<mem_connection>;
using namespace test;

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define DUPLEX_API_TESTS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define DUPLEX_API_TESTS_SANITIZED 1
#endif
#endif

namespace {

constexpr std::size_t mib = 1024U * 1024U;

// Byte `i` of message number `seed`: printable ASCII, so the same payload is valid as text.
char payload_byte(std::size_t seed, std::size_t i) {
    return static_cast<char>('a' + (i * 7U + seed * 13U + (i >> 12U)) % 26U);
}

// A client endpoint that sends each message in random fragments (sizes from 0 up to 1 MiB,
// mostly small ones near the start, empty fragments included), framed and masked by the
// library's own sans-I/O session and written one frame at a time over a memory stream, so
// that a 64 MiB message never exists twice on the sending side.
struct fragmenting_peer : std::enable_shared_from_this<fragmenting_peer> {
    fragmenting_peer(memory::stream_type s, std::vector<std::size_t> message_sizes,
                     std::uint32_t seed)
        : stream(std::move(s)), session(role::client, big_limits()),
          sizes(std::move(message_sizes)), random(seed) {}

    static duplex::protocol::session_options big_limits() {
        duplex::protocol::session_options o;
        o.max_message_size = 128 * mib;
        o.max_frame_size = 128 * mib;
        return o;
    }

    memory::stream_type stream;
    duplex::protocol::session session;
    std::vector<std::size_t> sizes;
    std::mt19937 random;
    std::size_t message = 0; // index into sizes
    std::size_t offset = 0;  // bytes of the current message already framed
    std::string wire;        // the frame being written
    std::size_t frames = 0;
    bool finished = false;
    std::error_code failed;

    static opcode type_of(std::size_t index) {
        return index % 2 == 0 ? opcode::binary : opcode::text;
    }

    std::size_t next_fragment_size(std::size_t left) {
        std::uniform_int_distribution<int> kind(0, 9);
        const int k = kind(random);
        std::size_t size = 0;
        if (k == 0)
            size = 0;
        else if (k < 5)
            size = std::uniform_int_distribution<std::size_t>(1, 200)(random);
        else
            size = std::uniform_int_distribution<std::size_t>(1, mib)(random);
        return std::min(size, left);
    }

    void write_next() {
        if (message == sizes.size()) {
            finished = true;
            return;
        }
        const std::size_t total = sizes[message];
        const std::size_t size = next_fragment_size(total - offset);
        const bool fin = offset + size == total;
        const opcode op = offset == 0 && !started ? type_of(message) : opcode::continuation;
        const std::string piece = make_payload_slice(message, offset, size);
        if (const auto ec = session.send(op, piece, fin)) {
            failed = ec;
            return;
        }
        started = !fin;
        wire.assign(session.pending_output());
        session.consume_output(wire.size());
        offset += size;
        ++frames;
        if (fin) {
            ++message;
            offset = 0;
        }
        asio::async_write(stream, asio::buffer(wire),
                          [self = shared_from_this()](std::error_code ec, std::size_t) {
                              if (ec) {
                                  self->failed = ec;
                                  return;
                              }
                              self->write_next();
                          });
    }

    static std::string make_payload_slice(std::size_t seed, std::size_t from, std::size_t size) {
        std::string out(size, '\0');
        for (std::size_t i = 0; i < size; ++i) out[i] = payload_byte(seed, from + i);
        return out;
    }

    bool started = false; // a fragmented message is in progress
};

// What the receiving side saw, checked piece by piece against the generator (nothing is
// accumulated, so 64 MiB messages cost no extra memory here).
struct piece_checker {
    std::vector<std::size_t> expected_sizes;
    std::size_t message = 0;
    std::size_t offset = 0;
    bool in_message = false;
    std::size_t pieces = 0;
    std::vector<std::string> problems;

    bool done() const { return message == expected_sizes.size() || !problems.empty(); }

    void piece(opcode type, std::string_view data, bool first, bool last) {
        ++pieces;
        if (message >= expected_sizes.size()) return problem("a piece after the last message");
        if (first != !in_message) return problem("first flag wrong at message " + index());
        if (type != fragmenting_peer::type_of(message))
            return problem("opcode wrong at message " + index());
        const std::size_t size = expected_sizes[message];
        if (offset + data.size() > size) return problem("too many bytes in message " + index());
        for (std::size_t i = 0; i < data.size(); ++i)
            if (data[i] != payload_byte(message, offset + i))
                return problem("byte " + std::to_string(offset + i) + " wrong in message " +
                               index());
        offset += data.size();
        in_message = !last;
        if (last) {
            if (offset != size)
                return problem("message " + index() + " ended after " + std::to_string(offset) +
                               " of " + std::to_string(size) + " bytes");
            ++message;
            offset = 0;
        }
    }

    std::string index() const { return std::to_string(message); }
    void problem(std::string what) {
        if (problems.empty()) problems.push_back(std::move(what));
    }
};

duplex::connection_options partial_options(std::size_t max_message) {
    duplex::connection_options o;
    o.ping_interval = 0ms;
    o.close_timeout = 200ms;
    o.protocol.deliver_partial_messages = true;
    o.protocol.max_message_size = max_message;
    o.protocol.max_frame_size = max_message;
    return o;
}

// 0 B to 64 MiB; under sanitizers the largest is 17 MiB (still past the 16 MiB default).
std::vector<std::size_t> partial_sizes(bool full = true) {
#ifdef DUPLEX_API_TESTS_SANITIZED
    full = false;
#endif
    const std::size_t largest = full ? 64 * mib : 17 * mib + 3;
    return {0, 1, 125, 0, 65536, 300000, 3 * mib + 1, largest, 7};
}

using tcp_server = duplex::server<duplex::transport::tcp>;
using tcp_connection = duplex::connection<duplex::transport::tcp>;

std::string url_for(const tcp_server& server, std::string_view path = "/") {
    return "ws://127.0.0.1:" + std::to_string(server.port()) + std::string(path);
}

// A plain TCP socket to the server, driven synchronously from the test thread.
asio::ip::tcp::socket raw_socket(asio::io_context& io, std::uint16_t port) {
    asio::ip::tcp::socket s(io);
    s.connect({asio::ip::make_address("127.0.0.1"), port});
    return s;
}

// Everything the server writes until it ends the connection.
std::string read_to_end(asio::ip::tcp::socket& s) {
    std::string out;
    std::error_code ec;
    std::array<char, 4096> buffer{};
    for (;;) {
        const std::size_t n = s.read_some(asio::buffer(buffer), ec);
        if (ec) break;
        out.append(buffer.data(), n);
    }
    return out;
}

} // namespace

TEST_CASE("Partial delivery: handlers get every piece in order, with first/last and the opcode",
          "[api][partial]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    // Reads split at odd places too, not only where frames end.
    b.read_chunks({7, 16384, 1, 100000, 3});
    const auto sizes = partial_sizes();
    auto peer = std::make_shared<fragmenting_peer>(std::move(a), sizes, 1234U);
    auto c =
        std::make_shared<mem_connection>(std::move(b), role::server, partial_options(128 * mib));
    piece_checker check;
    check.expected_sizes = sizes;
    std::size_t max_piece = 0;
    mem_handlers h;
    h.on_message = [&](const auto&, const duplex::message_view& m) {
        max_piece = std::max(max_piece, m.data.size());
        check.piece(m.type, m.data, m.first, m.last);
    };
    std::error_code conn_error;
    h.on_error = [&](const auto&, std::error_code ec) { conn_error = ec; };
    c->start(h);
    peer->write_next();
    CHECK(run_until(
        io, [&] { return check.done() || conn_error || peer->failed; }, 120s));
    CHECK_FALSE(conn_error);
    CHECK_FALSE(peer->failed);
    for (const auto& p : check.problems) FAIL_CHECK(p);
    CHECK(check.message == sizes.size());
    // No piece is larger than what one read brought: nothing was reassembled.
    CHECK(max_piece <= 100000);
    c->terminate();
    io.restart();
    io.run_for(100ms);
}

TEST_CASE("Partial delivery: async_read returns one piece per call and reads no further until "
          "the next call",
          "[api][partial]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    b.read_chunks({4096, 1, 65536, 13});
    const auto sizes = partial_sizes(false);
    auto peer = std::make_shared<fragmenting_peer>(std::move(a), sizes, 99U);
    // The sender fills at most 256 KiB of our unread input: if the connection stops reading
    // between two async_read calls, the sender stops too.
    peer->stream.write_capacity(256 * 1024);
    auto c =
        std::make_shared<mem_connection>(std::move(b), role::server, partial_options(128 * mib));
    piece_checker check;
    check.expected_sizes = sizes;
    std::error_code read_error;
    bool reading = false;
    std::size_t calls = 0;
    std::function<void()> read_one = [&] {
        reading = true;
        ++calls;
        c->async_read([&](std::error_code ec, duplex::message m) {
            reading = false;
            if (ec) {
                read_error = ec;
                return;
            }
            check.piece(m.type, m.data, m.first, m.last);
        });
    };
    peer->write_next();
    bool paused_checked = false;
    const auto deadline = clock_type::now() + 120s;
    while (!check.done() && !read_error && !peer->failed && clock_type::now() < deadline) {
        if (!reading) {
            if (!paused_checked && check.message == 7 && check.offset > 0) {
                // Inside the largest message, with no read waiting: nothing more is read, so
                // the sender's position stays where it is however long we wait.
                paused_checked = true;
                io.restart();
                io.run_for(100ms);
                const std::size_t frames_then = peer->frames;
                const std::size_t offset_then = peer->offset;
                io.restart();
                io.run_for(200ms);
                CHECK(peer->frames == frames_then);
                CHECK(peer->offset == offset_then);
            }
            read_one();
        }
        if (io.stopped()) io.restart();
        io.run_one_for(10ms);
    }
    CHECK_FALSE(read_error);
    CHECK_FALSE(peer->failed);
    for (const auto& p : check.problems) FAIL_CHECK(p);
    CHECK(check.message == sizes.size());
    CHECK(paused_checked);
    CHECK(calls == check.pieces);
    c->terminate();
    io.restart();
    io.run_for(100ms);
}

TEST_CASE("Partial delivery off: every message is one piece with first and last set",
          "[api][partial]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    const std::vector<std::size_t> sizes = {0, 10, 70000, 1 * mib};
    auto peer = std::make_shared<fragmenting_peer>(std::move(a), sizes, 5U);
    auto o = partial_options(16 * mib);
    o.protocol.deliver_partial_messages = false;
    auto c = std::make_shared<mem_connection>(std::move(b), role::server, o);
    piece_checker check;
    check.expected_sizes = sizes;
    mem_handlers h;
    std::size_t not_whole = 0; // recorded here, asserted on the test's thread
    h.on_message = [&](const auto&, const duplex::message_view& m) {
        if (!m.first || !m.last) ++not_whole;
        check.piece(m.type, m.data, m.first, m.last);
    };
    c->start(h);
    peer->write_next();
    CHECK(run_until(
        io, [&] { return check.done(); }, 30s));
    for (const auto& p : check.problems) FAIL_CHECK(p);
    CHECK(check.pieces == sizes.size());
    CHECK(not_whole == 0);
    c->terminate();
    io.restart();
    io.run_for(100ms);
}

TEST_CASE("Server counts: connection_count() is upgraded connections, handshake_count() the "
          "sockets not upgraded yet",
          "[api][server]") {
    io_runner server_io;
    tcp_server server(server_io.io);
    // A /health that reports both counts, as an application's would.
    server.handlers().on_http = [&](const duplex::request_info&) {
        duplex::http_response r;
        r.body = "connections=" + std::to_string(server.connection_count()) +
                 " handshakes=" + std::to_string(server.handshake_count());
        return r;
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    asio::io_context local;

    // A socket that connected and said nothing yet is a handshake, not a connection.
    auto silent = raw_socket(local, server.port());
    CHECK(eventually([&] { return server.handshake_count() == 1; }));
    CHECK(server.connection_count() == 0);

    io_runner client_io;
    auto c = duplex::async_connect<duplex::transport::tcp>(client_io.io.get_executor(),
                                                           url_for(server), {}, asio::use_future)
                 .get();
    REQUIRE(c);
    c->start({});
    CHECK(eventually([&] { return server.connection_count() == 1; }));
    CHECK(server.handshake_count() == 1);

    // The health request itself is in its handshake while it is answered.
    auto health = raw_socket(local, server.port());
    asio::write(health, asio::buffer(std::string_view("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")));
    const std::string answer = read_to_end(health);
    CHECK(answer.find("connections=1 handshakes=2") != std::string::npos);

    std::error_code ignored;
    silent.close(ignored);
    health.close(ignored);
    CHECK(eventually([&] { return server.handshake_count() == 0; }));
    CHECK(server.connection_count() == 1);
    c->close();
    CHECK(eventually([&] { return server.connection_count() == 0; }));
    server.stop(0ms);
}

namespace {

// A port where nothing listens: bound once, then released.
std::uint16_t closed_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor a(io, {asio::ip::make_address("127.0.0.1"), 0});
    const auto port = a.local_endpoint().port();
    a.close();
    return port;
}

duplex::reconnect_options quick_retries(std::size_t max_attempts) {
    duplex::reconnect_options p;
    p.initial_delay = 1ms;
    p.max_delay = 5ms;
    p.max_attempts = max_attempts;
    return p;
}

// What a reconnecting_client reported, from its strand, read by the test thread.
struct reconnect_record {
    std::mutex mutex;
    std::vector<std::size_t> retries; // the attempt numbers on_retry reported
    std::vector<std::error_code> retry_errors;
    int give_ups = 0;
    std::size_t failures_at_give_up = 0;
    std::error_code give_up_error;
    int opens = 0;

    template <class Client>
    void watch(Client& client) {
        auto& h = client->handlers();
        h.on_retry = [this](std::size_t attempt, std::chrono::milliseconds, std::error_code ec) {
            std::lock_guard<std::mutex> lock(mutex);
            retries.push_back(attempt);
            retry_errors.push_back(ec);
        };
        h.on_give_up = [this, c = client.get()](std::error_code ec) {
            std::lock_guard<std::mutex> lock(mutex);
            ++give_ups;
            failures_at_give_up = c->failures();
            give_up_error = ec;
        };
        h.on_open = [this](const auto&) {
            std::lock_guard<std::mutex> lock(mutex);
            ++opens;
        };
    }
    int given_up() {
        std::lock_guard<std::mutex> lock(mutex);
        return give_ups;
    }
};

// A server that refuses every upgrade with `status`, a header and a body.
struct refusing_server {
    io_runner runner;
    tcp_server server{runner.io};
    explicit refusing_server(int status) {
        server.handlers().on_upgrade = [status](const duplex::request_info&,
                                                duplex::no_user_data&) {
            return duplex::upgrade_decision::reject(status, "token expired\n",
                                                    {{"WWW-Authenticate", "Bearer"}});
        };
        REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    }
    ~refusing_server() { server.stop(0ms); }
};

} // namespace

TEST_CASE("reconnecting_client: max_attempts = 3 gives up after exactly 3 failed attempts, "
          "with on_retry before each wait",
          "[api][reconnect]") {
    reconnect_record r; // outlives the io thread that calls into it
    io_runner client_io;
    const std::string url = "ws://127.0.0.1:" + std::to_string(closed_port()) + "/";
    auto client = duplex::reconnecting_client<duplex::transport::tcp>::create(
        client_io.io.get_executor(), url, {}, quick_retries(3));
    r.watch(client);
    client->start();
    REQUIRE(eventually([&] { return r.given_up() == 1; }));
    std::this_thread::sleep_for(50ms); // no further attempt, no second give-up
    std::lock_guard<std::mutex> lock(r.mutex);
    CHECK(r.give_ups == 1);
    CHECK(r.failures_at_give_up == 3);
    CHECK(r.retries == std::vector<std::size_t>{1, 2});
    CHECK(r.give_up_error);
    CHECK(r.opens == 0);
}

TEST_CASE("async_connect: a refused upgrade carries the server's status, headers and body",
          "[api][reconnect]") {
    refusing_server s(401);
    io_runner client_io;
    duplex::upgrade_response refusal;
    std::error_code ec;
    try {
        duplex::async_connect<duplex::transport::tcp>(
            client_io.io.get_executor(), url_for(s.server), {}, refusal, asio::use_future)
            .get();
    } catch (const std::system_error& e) {
        ec = e.code();
    }
    CHECK(ec == duplex::error::bad_status);
    CHECK(refusal.status == 401);
    CHECK(refusal.body == "token expired\n");
    CHECK(refusal.header("www-authenticate") == std::optional<std::string_view>("Bearer"));
    CHECK(refusal.is_client_error());

    // A connect that succeeds leaves it empty.
    io_runner echo_io;
    tcp_server echo(echo_io.io);
    REQUIRE_FALSE(echo.listen("127.0.0.1", 0));
    auto c = duplex::async_connect<duplex::transport::tcp>(
                 client_io.io.get_executor(), url_for(echo), {}, refusal, asio::use_future)
                 .get();
    CHECK(c);
    CHECK(refusal.status == 0);
    c->close();
    echo.stop(0ms);
}

TEST_CASE("reconnecting_client: a 4xx refusal is not retried by default, and its answer is kept",
          "[api][reconnect]") {
    refusing_server s(401);
    reconnect_record r;
    io_runner client_io;
    auto client = duplex::reconnecting_client<duplex::transport::tcp>::create(
        client_io.io.get_executor(), url_for(s.server), {}, quick_retries(0));
    r.watch(client);
    client->start();
    REQUIRE(eventually([&] { return r.given_up() == 1; }));
    std::this_thread::sleep_for(50ms);
    {
        std::lock_guard<std::mutex> lock(r.mutex);
        CHECK(r.give_ups == 1);
        CHECK(r.failures_at_give_up == 1);
        CHECK(r.retries.empty());
        CHECK(r.give_up_error == duplex::error::bad_status);
    }
    const auto refusal = client->last_refusal();
    CHECK(refusal.status == 401);
    CHECK(refusal.body == "token expired\n");
}

TEST_CASE("reconnecting_client: 4xx refusals are retried when configured, 503 by default",
          "[api][reconnect]") {
    for (const int status : {401, 503}) {
        refusing_server s(status);
        reconnect_record r;
        io_runner client_io;
        auto policy = quick_retries(2);
        policy.retry_client_errors = status == 401;
        auto client = duplex::reconnecting_client<duplex::transport::tcp>::create(
            client_io.io.get_executor(), url_for(s.server), {}, policy);
        r.watch(client);
        client->start();
        REQUIRE(eventually([&] { return r.given_up() == 1; }));
        std::lock_guard<std::mutex> lock(r.mutex);
        CHECK(r.failures_at_give_up == 2);
        CHECK(r.retries == std::vector<std::size_t>{1});
        REQUIRE(r.retry_errors.size() == 1);
        CHECK(r.retry_errors[0] == duplex::error::bad_status);
        CHECK(client->last_refusal().status == status);
        client->stop();
    }
}

TEST_CASE("on_drain: fired once when the queue falls to the low-water mark after backpressure, and "
          "a producer loop driven by it delivers everything in order",
          "[api][drain]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    // The consumer reads nothing until it is started: the producer meets backpressure.
    a.write_capacity(16 * 1024);
    auto o = partial_options(16 * mib);
    o.protocol.deliver_partial_messages = false;
    o.send_buffer_high_water = 64 * 1024;
    o.send_buffer_low_water = 16 * 1024;
    auto producer = std::make_shared<mem_connection>(std::move(a), role::server, o);
    auto consumer = std::make_shared<mem_connection>(std::move(b), role::client, o);

    constexpr int total = 200;
    const std::string filler(8 * 1024, 'x');
    int next = 0;
    int drains = 0;
    int pauses = 0;
    bool in_send = false;
    bool drain_inside_send = false;
    std::size_t queued_at_drain = 0;
    // The loop of docs/guide.md section 3: send until backpressure, resume in on_drain.
    auto produce = [&](const std::shared_ptr<mem_connection>& c) {
        while (next < total) {
            in_send = true;
            const auto status = c->send_text(std::to_string(next++) + ":" + filler);
            in_send = false;
            if (status == duplex::send_status::backpressure) {
                ++pauses;
                return;
            }
            REQUIRE(status == duplex::send_status::ok);
        }
    };
    mem_handlers ph;
    ph.on_open = produce;
    ph.on_drain = [&](const std::shared_ptr<mem_connection>& c) {
        if (in_send) drain_inside_send = true;
        ++drains;
        queued_at_drain = c->buffered_amount();
        produce(c);
    };
    std::vector<int> received;
    mem_handlers ch;
    ch.on_message = [&](const auto&, const duplex::message_view& m) {
        received.push_back(std::stoi(std::string(m.data.substr(0, m.data.find(':')))));
    };
    producer->start(ph);
    io.run_for(100ms);
    CHECK(pauses == 1);
    CHECK(drains == 0); // nothing was written: nothing drained
    CHECK(received.empty());

    consumer->start(ch);
    // The last pause's drain follows the last message: wait for both, then let everything
    // that is ready run, so that an extra drain would show.
    CHECK(run_until(io, [&] {
        return received.size() == static_cast<std::size_t>(total) && drains == pauses;
    }));
    io.restart();
    while (io.poll() > 0) {
    }
    CHECK(drains == pauses); // once per pause, never more
    CHECK(pauses > 1);
    CHECK_FALSE(drain_inside_send);
    CHECK(queued_at_drain <= o.send_buffer_low_water);
    bool in_order = true;
    for (std::size_t i = 0; i < received.size(); ++i)
        if (received[i] != static_cast<int>(i)) in_order = false;
    CHECK(in_order);
    producer->terminate();
    consumer->terminate();
    io.restart();
    io.run_for(100ms);
}

TEST_CASE("on_upgrade_async: a decision made 100 ms later on another thread, while other "
          "connections keep flowing",
          "[api][async-upgrade]") {
    using string_server = duplex::server<duplex::transport::tcp, std::string>;
    io_runner server_io;
    duplex::server_options options;
    options.handshake_timeout = 5s;
    string_server server(server_io.io, options);
    std::promise<void> fast_echoed;
    auto fast_echoed_future = fast_echoed.get_future().share();
    std::atomic<bool> slow_decided{false};
    std::vector<std::thread> deciders;
    std::mutex deciders_mutex;
    bool released = false;
    // However the test ends, the deciders are released and joined before anything they use.
    struct joiner {
        std::vector<std::thread>& threads;
        std::mutex& mutex;
        std::promise<void>& gate;
        bool& released;
        ~joiner() {
            if (!released) gate.set_value();
            std::lock_guard<std::mutex> lock(mutex);
            for (auto& t : threads) t.join();
        }
    } join_deciders{deciders, deciders_mutex, fast_echoed, released};
    server.handlers().on_upgrade_async = [&](const duplex::request_info& request,
                                             duplex::pending_upgrade<std::string> pending) {
        const std::string path(request.path()); // the request is valid during this call only
        if (path == "/fast") return pending.accept({}, {}, "fast");
        // A "database" on another thread answers once the fast client has been served, and
        // 100 ms later.
        std::lock_guard<std::mutex> lock(deciders_mutex);
        deciders.emplace_back([&, path, pending]() mutable {
            fast_echoed_future.wait();
            std::this_thread::sleep_for(100ms);
            slow_decided = true;
            if (path == "/slow")
                pending.accept("chat.v1", {{"X-Checked", "yes"}}, "from the decider");
            else
                pending.reject(401, "no such token\n");
        });
    };
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send_text(c->data() + ":" + std::string(m.data));
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    const std::string base = "ws://127.0.0.1:" + std::to_string(server.port());

    io_runner client_io;
    duplex::client_options slow_options;
    slow_options.subprotocols = {"chat.v1"};
    auto slow = duplex::async_connect<duplex::transport::tcp>(
        client_io.io.get_executor(), base + "/slow", slow_options, asio::use_future);
    duplex::upgrade_response refusal;
    auto refused = duplex::async_connect<duplex::transport::tcp>(
        client_io.io.get_executor(), base + "/wrong", {}, refusal, asio::use_future);
    REQUIRE(eventually([&] { return server.handshake_count() == 2; }));

    // While two decisions are pending, another client connects and is served.
    auto fast = duplex::async_connect<duplex::transport::tcp>(client_io.io.get_executor(),
                                                              base + "/fast", {}, asio::use_future)
                    .get();
    fast->async_send(opcode::text, "hello", asio::use_future).get();
    CHECK(fast->async_read(asio::use_future).get().data == "fast:hello");
    CHECK_FALSE(slow_decided.load());
    fast_echoed.set_value();
    released = true;

    auto c = slow.get();
    CHECK(slow_decided.load());
    CHECK(c->subprotocol() == "chat.v1");
    c->async_send(opcode::text, "hi", asio::use_future).get();
    CHECK(c->async_read(asio::use_future).get().data == "from the decider:hi");
    CHECK_THROWS(refused.get());
    CHECK(refusal.status == 401);
    CHECK(refusal.body == "no such token\n");
    c->close();
    fast->close();
    server.stop(1s);
}

TEST_CASE(
    "on_upgrade_async: a decision that never comes ends at the handshake deadline, and a late "
    "one is ignored",
    "[api][async-upgrade]") {
    io_runner server_io;
    duplex::server_options options;
    options.handshake_timeout = 200ms;
    tcp_server server(server_io.io, options);
    std::mutex mutex;
    std::vector<duplex::pending_upgrade<>> kept;
    server.handlers().on_upgrade_async = [&](const duplex::request_info&,
                                             duplex::pending_upgrade<> pending) {
        std::lock_guard<std::mutex> lock(mutex);
        kept.push_back(std::move(pending)); // never decided in time
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    io_runner client_io;
    auto attempt = duplex::async_connect<duplex::transport::tcp>(
        client_io.io.get_executor(), url_for(server), {}, asio::use_future);
    CHECK_THROWS(attempt.get());
    CHECK(eventually([&] { return server.handshake_count() == 0; }));
    CHECK(server.connection_count() == 0);
    std::lock_guard<std::mutex> lock(mutex);
    REQUIRE(kept.size() == 1);
    kept[0].accept(); // too late: nothing happens
    CHECK(kept[0].decided());
    std::this_thread::sleep_for(20ms);
    CHECK(server.connection_count() == 0);
    server.stop(0ms);
}
