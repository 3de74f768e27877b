// Server and client over real sockets on 127.0.0.1 (and Unix-domain sockets): handshakes, hooks,
// refusals, timeouts, backpressure, shutdown, reconnects, many connections and several io threads.
// Every wait is bounded (futures through get_within, conditions through eventually, io threads
// through io_thread), so a bug fails a test instead of hanging the run; the bounds are generous and
// only fail on absence, never on speed. Handlers run on io threads and only record what they
// see: Catch2 assertions are made on the test thread.
#include "catch.hpp"
#include "harness.hpp"
#include "test_certificate.hpp"

#include <duplex/duplex.hpp>

#include <duplex/transport/unix_socket.hpp>

#include <asio/connect.hpp>
#include <asio/io_context.hpp>
#include <asio/read_until.hpp>
#include <asio/use_future.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <cerrno>
#include <cstdlib>

#if defined(DUPLEX_ENABLE_DEFLATE)
#include <zlib.h>
#endif

using namespace std::chrono_literals;
using namespace test;
using duplex::error;
using duplex::opcode;
using tcp_server = duplex::server<duplex::transport::tcp>;
using tcp_connection = duplex::connection<duplex::transport::tcp>;

namespace {

// The result of a future, failing the test if it is not ready within `limit`.
template <class Future>
auto get_within(Future&& future, std::chrono::milliseconds limit = patience) {
    REQUIRE(future.wait_for(limit) == std::future_status::ready);
    return future.get();
}

// The error a future's operation failed with (empty if it succeeded), failing the test if it is
// not ready within `limit`. Not CHECK_THROWS(get_within(...)): a timeout must not count as the
// expected exception.
template <class Future>
std::error_code failure_of(Future&& future, std::chrono::milliseconds limit = patience) {
    REQUIRE(future.wait_for(limit) == std::future_status::ready);
    try {
        future.get();
    } catch (const std::system_error& e) {
        return e.code();
    }
    return {};
}

// io.run() on a thread of its own, for tests that expect it to return once the server stops.
// If it does not, the destructor stops the io_context, so a failed check cannot hang the join.
struct io_thread {
    explicit io_thread(asio::io_context& context)
        : io(context), thread([this] {
              io.run();
              returned.set_value();
          }) {}
    ~io_thread() {
        io.stop();
        thread.join();
    }
    bool returned_within(std::chrono::milliseconds limit = patience) {
        return done.wait_for(limit) == std::future_status::ready;
    }
    asio::io_context& io;
    std::promise<void> returned;
    std::future<void> done = returned.get_future();
    std::thread thread;
};

std::string url_for(const tcp_server& server, std::string_view path = "/") {
    return "ws://127.0.0.1:" + std::to_string(server.port()) + std::string(path);
}

template <class Server>
void listen_or_fail(Server& server) {
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    REQUIRE(server.port() != 0);
}

std::future<std::shared_ptr<tcp_connection>>
start_connect(asio::io_context& io, const std::string& url, duplex::client_options options = {}) {
    return duplex::async_connect<duplex::transport::tcp>(io.get_executor(), url, options,
                                                         asio::use_future);
}

std::shared_ptr<tcp_connection> connect(asio::io_context& io, const std::string& url,
                                        duplex::client_options options = {}) {
    return get_within(start_connect(io, url, std::move(options)));
}

// A blocking socket that speaks raw bytes: for peers that misbehave on purpose.
struct raw_peer {
    asio::io_context io;
    asio::ip::tcp::socket socket{io};
    explicit raw_peer(std::uint16_t port) {
        socket.connect({asio::ip::make_address("127.0.0.1"), port});
    }
    void send(std::string_view bytes) { asio::write(socket, asio::buffer(bytes)); }
    // Reads until the peer closes or `limit` passes; returns what arrived.
    std::string read_all(std::chrono::milliseconds limit = patience) {
        std::string out;
        socket.non_blocking(true);
        const auto deadline = std::chrono::steady_clock::now() + limit;
        char buf[4096];
        while (std::chrono::steady_clock::now() < deadline) {
            std::error_code ec;
            const std::size_t n = socket.read_some(asio::buffer(buf), ec);
            if (ec == asio::error::would_block) {
                std::this_thread::sleep_for(5ms);
                continue;
            }
            if (ec) {
                closed = true;
                break;
            }
            out.append(buf, n);
        }
        return out;
    }
    bool closed = false;
};

const std::string valid_upgrade = "GET /chat HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                                  "Connection: Upgrade\r\nSec-WebSocket-Key: "
                                  "dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

void echo_messages(tcp_server& server) {
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
    };
}

// Server options that read plain TCP one way or the other: readiness and a per-thread buffer,
// or a buffer held by each connection.
duplex::server_options reading_with(bool hold_read_buffer) {
    duplex::server_options options;
    options.connection.hold_read_buffer = hold_read_buffer;
    return options;
}

} // namespace

TEST_CASE("RFC 6455 4: echo over real sockets with futures, text and binary of many sizes",
          "[integration]") {
    const bool hold_read_buffer = GENERATE(false, true);
    CAPTURE(hold_read_buffer);
    io_runner runner;
    tcp_server server(runner.io, reading_with(hold_read_buffer));
    echo_messages(server);
    listen_or_fail(server);

    duplex::client_options client_options;
    client_options.connection.hold_read_buffer = hold_read_buffer;
    auto c = connect(runner.io, url_for(server), client_options);
    REQUIRE(c);
    for (std::size_t size : {0U, 1U, 125U, 126U, 65535U, 65536U, 1U << 20}) {
        for (opcode type : {opcode::text, opcode::binary}) {
            std::string payload(size, type == opcode::text ? 'a' : '\x9c');
            get_within(c->async_send(type, payload, asio::use_future));
            const duplex::message reply = get_within(c->async_read(asio::use_future));
            CHECK(reply.type == type);
            CHECK(reply.data == payload);
        }
    }
    get_within(c->async_ping("are you there", asio::use_future));
    get_within(c->async_close(1000, "done", asio::use_future));
    CHECK(c->result().code == 1000);
    CHECK_FALSE(c->result().error);
}

TEST_CASE("Echoes written straight from the read buffer survive a peer that stops reading",
          "[integration]") {
    // The server writes an echo from the bytes it has just read when the socket takes it at
    // once, and copies it when it does not. A client that reads nothing for a while makes the
    // socket refuse: every echo must still come back whole and in order.
    const bool hold_read_buffer = GENERATE(false, true);
    CAPTURE(hold_read_buffer);
    io_runner runner;
    tcp_server server(runner.io, reading_with(hold_read_buffer));
    std::atomic<std::size_t> echoed{0};
    server.handlers().on_message = [&](const auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
        ++echoed;
    };
    listen_or_fail(server);
    auto c = connect(runner.io, url_for(server)); // pull mode: reads only for async_read
    constexpr std::size_t count = 512;
    std::vector<std::string> sent;
    for (std::size_t i = 0; i < count; ++i) {
        std::string payload(16 * 1024, static_cast<char>('a' + i % 26));
        payload.replace(0, std::to_string(i).size(), std::to_string(i));
        REQUIRE(c->send_binary(payload) != duplex::send_status::dropped);
        sent.push_back(std::move(payload));
    }
    // 8 MiB of echoes is more than the two sockets' buffers hold: the server queues the rest.
    REQUIRE(eventually([&] { return echoed.load() == count; }));
    for (std::size_t i = 0; i < count; ++i) {
        const duplex::message reply = get_within(c->async_read(asio::use_future));
        REQUIRE(reply.data == sent[i]);
    }
    get_within(c->async_close(1000, "done", asio::use_future));
    CHECK(c->result().code == 1000);
}

TEST_CASE("Completion handlers: plain callbacks run on the connection's strand", "[integration]") {
    io_runner runner;
    tcp_server server(runner.io);
    echo_messages(server);
    listen_or_fail(server);

    // The handlers run on an io thread: they pass on what happened, the test thread checks it.
    std::promise<std::string> got;
    duplex::async_connect<duplex::transport::tcp>(
        runner.io.get_executor(), url_for(server), {},
        [&](std::error_code ec, std::shared_ptr<tcp_connection> c) {
            if (ec) return got.set_value("connect failed: " + ec.message());
            c->async_send(opcode::text, "callback", [c, &got](std::error_code send_ec) {
                if (send_ec) return got.set_value("send failed: " + send_ec.message());
                c->async_read([c, &got](std::error_code read_ec, duplex::message m) {
                    got.set_value(read_ec ? "read failed: " + read_ec.message() : m.data);
                    c->close();
                });
            });
        });
    CHECK(get_within(got.get_future()) == "callback");
}

TEST_CASE("A second async_read while one is pending fails with operation_in_progress",
          "[integration]") {
    io_runner runner;
    tcp_server server(runner.io);
    listen_or_fail(server);
    auto c = connect(runner.io, url_for(server));
    auto first = c->async_read(asio::use_future);
    auto second = c->async_read(asio::use_future);
    REQUIRE(second.wait_for(patience) == std::future_status::ready);
    try {
        second.get();
        FAIL("expected an error");
    } catch (const std::system_error& e) {
        CHECK(e.code() == error::operation_in_progress);
    }
    c->close();
    REQUIRE(first.wait_for(patience) == std::future_status::ready);
    CHECK_THROWS(first.get()); // the read ends with the connection
}

TEST_CASE("Upgrade hook sees path, query, headers, cookies and peer, picks the subprotocol and "
          "fills user data",
          "[integration]") {
    struct user {
        std::string name;
    };
    io_runner runner;
    duplex::server<duplex::transport::tcp, user> server(runner.io);
    std::promise<std::string> seen;
    // What the hook saw on the accepted upgrade, written on an io thread, checked here once
    // `seen` is ready (the message comes after the upgrade on the same connection).
    struct upgrade_seen {
        std::optional<std::string> trace, session;
        std::string remote;
        std::size_t subprotocols = 0;
    } hook;
    server.handlers().on_upgrade = [&hook](const duplex::request_info& req, user& u) {
        if (req.path() != "/room" ||
            req.query_param("token") != std::optional<std::string_view>("s3cret"))
            return duplex::upgrade_decision::reject(401, "bad token");
        if (auto v = req.header("X-Trace")) hook.trace = std::string(*v);
        if (auto v = req.cookie("session")) hook.session = std::string(*v);
        hook.remote = req.remote.address().to_string();
        hook.subprotocols = req.upgrade->subprotocols.size();
        u.name = std::string(*req.query_param("name"));
        return duplex::upgrade_decision::accept("chat.v1");
    };
    server.handlers().on_message = [&](const auto& c, const duplex::message_view&) {
        seen.set_value(c->data().name + "/" + c->subprotocol());
    };
    listen_or_fail(server);

    duplex::client_options options;
    options.subprotocols = {"chat.v2", "chat.v1"};
    options.headers = {{"X-Trace", "42"}, {"Cookie", "session=abc; other=1"}};
    auto c = connect(
        runner.io,
        "ws://127.0.0.1:" + std::to_string(server.port()) + "/room?name=ada&token=s3cret", options);
    CHECK(c->subprotocol() == "chat.v1");
    c->send_text("hi");
    CHECK(get_within(seen.get_future()) == "ada/chat.v1");
    CHECK(hook.trace == std::optional<std::string>("42"));
    CHECK(hook.session == std::optional<std::string>("abc"));
    CHECK(hook.remote == "127.0.0.1");
    CHECK(hook.subprotocols == 2);

    // The same hook refuses a wrong token with 401, before any WebSocket frame.
    try {
        connect(runner.io, "ws://127.0.0.1:" + std::to_string(server.port()) + "/room?token=no",
                options);
        FAIL("expected a refusal");
    } catch (const std::system_error& e) {
        CHECK(e.code() == error::bad_status);
    }
    raw_peer raw(server.port());
    raw.send("GET /room?token=no HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: "
             "Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: "
             "13\r\n\r\n");
    const std::string answer = raw.read_all();
    CHECK(answer.rfind("HTTP/1.1 401 ", 0) == 0);
    CHECK(answer.find("bad token") != std::string::npos);
}

TEST_CASE("Origin allow-list helper", "[integration]") {
    const std::vector<std::string> allowed = {"https://app.example", "http://localhost:8080"};
    CHECK(duplex::is_origin_allowed("https://app.example", allowed));
    CHECK(duplex::is_origin_allowed("HTTPS://APP.EXAMPLE", allowed));
    CHECK_FALSE(duplex::is_origin_allowed("https://evil.example", allowed));
    CHECK(duplex::is_origin_allowed("", allowed));
    CHECK_FALSE(duplex::is_origin_allowed("", allowed, false));
}

TEST_CASE("Plain HTTP goes to on_http, without it a request gets 426 with Upgrade: websocket",
          "[integration]") {
    io_runner runner;
    tcp_server server(runner.io);
    listen_or_fail(server);
    {
        raw_peer raw(server.port());
        raw.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
        const std::string answer = raw.read_all();
        CHECK(answer.rfind("HTTP/1.1 426 ", 0) == 0);
        CHECK(answer.find("Upgrade: websocket\r\n") != std::string::npos);
    }
    tcp_server with_http(runner.io);
    with_http.handlers().on_http = [](const duplex::request_info& req) {
        duplex::http_response r;
        if (req.path() == "/health") {
            r.content_type = "application/json";
            r.body = R"({"status":"ok"})";
        } else {
            r.status = 404;
            r.body = "not found";
        }
        return r;
    };
    listen_or_fail(with_http);
    raw_peer health(with_http.port());
    health.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    const std::string ok = health.read_all();
    CHECK(ok.rfind("HTTP/1.1 200 ", 0) == 0);
    CHECK(ok.find("Content-Type: application/json\r\n") != std::string::npos);
    CHECK(ok.find(R"({"status":"ok"})") != std::string::npos);
    raw_peer missing(with_http.port());
    missing.send("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    CHECK(missing.read_all().rfind("HTTP/1.1 404 ", 0) == 0);
}

TEST_CASE("RFC 7692 5: a server with deflate enabled agrees in its 101 and inflates what it "
          "receives",
          "[integration][deflate]") {
#ifndef DUPLEX_ENABLE_DEFLATE
    DUPLEX_SKIP("built without zlib (duplex::deflate)");
#else
    io_runner runner;
    duplex::server_options options;
    options.deflate.enabled = true;
    tcp_server server(runner.io, options);
    echo_messages(server);
    listen_or_fail(server);
    raw_peer raw(server.port());
    std::string request = valid_upgrade;
    request.insert(request.size() - 2,
                   "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n");
    // "Hello" compressed (RFC 7692 7.2.3.1) and a close, masked with an all-zero key.
    const std::string hello = std::string("\xc1\x87\0\0\0\0\xf2\x48\xcd\xc9\xc9\x07\x00", 13);
    const std::string close = std::string("\x88\x82\0\0\0\0\x03\xe8", 8);
    raw.send(request + hello + close);
    const std::string answer = raw.read_all();
    CHECK(answer.rfind("HTTP/1.1 101 ", 0) == 0);
    CHECK(answer.find("Sec-WebSocket-Extensions: permessage-deflate\r\n") != std::string::npos);
    const std::size_t end = answer.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    // The echo of the inflated message (sent uncompressed), then the close reply.
    CHECK(answer.substr(end + 4, 7) == "\x81\x05Hello");
    CHECK(raw.closed);

    // A server that does not enable it answers no extension; the same bytes then fail (RSV1).
    tcp_server plain(runner.io);
    echo_messages(plain);
    listen_or_fail(plain);
    raw_peer refused(plain.port());
    refused.send(request + hello);
    const std::string no = refused.read_all();
    CHECK(no.rfind("HTTP/1.1 101 ", 0) == 0);
    CHECK(no.find("Sec-WebSocket-Extensions") == std::string::npos);
    CHECK(no.find("\x03\xea"
                  "frame uses reserved bits") != std::string::npos); // 1002
#endif
}

TEST_CASE("RFC 7692 7.2.1: with deflate agreed, a server compresses a message at or above the "
          "threshold (RSV1 set, trailer removed) and sends a short one as it is",
          "[integration][deflate]") {
#ifndef DUPLEX_ENABLE_DEFLATE
    DUPLEX_SKIP("built without zlib (duplex::deflate)");
#else
    io_runner runner;
    duplex::server_options options;
    options.deflate.enabled = true;
    tcp_server server(runner.io, options);
    echo_messages(server);
    listen_or_fail(server);
    raw_peer raw(server.port());
    std::string request = valid_upgrade;
    request.insert(request.size() - 2, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
    std::string large;
    for (int i = 0; i < 500; ++i) large += "{\"n\":" + std::to_string(i % 10) + "},";
    raw.send(request + frame(opcode::text, large, masking::client) +
             frame(opcode::text, "short", masking::client) + close_frame(1000, masking::client));
    const std::string answer = raw.read_all();
    const std::size_t end = answer.find("\r\n\r\n");
    REQUIRE(end != std::string::npos);
    REQUIRE(answer.find("Sec-WebSocket-Extensions: permessage-deflate\r\n") < end);
    const auto frames = decode_frames(std::string_view(answer).substr(end + 4));
    REQUIRE(frames.size() == 3);
    const auto first_byte = static_cast<unsigned char>(answer[end + 4]);
    CHECK(first_byte == 0xC1); // FIN, RSV1 (compressed), text
    CHECK_FALSE(frames[0].masked);
    CHECK(frames[0].payload.size() < large.size() / 4);

    // Inflated by zlib itself, with the trailer put back (7.2.2), it is the message.
    std::string compressed = frames[0].payload + std::string("\x00\x00\xff\xff", 4);
    z_stream z{};
    REQUIRE(inflateInit2(&z, -15) == Z_OK);
    std::string inflated(large.size() + 64, '\0');
    z.next_in = reinterpret_cast<Bytef*>(compressed.data());
    z.avail_in = static_cast<uInt>(compressed.size());
    z.next_out = reinterpret_cast<Bytef*>(inflated.data());
    z.avail_out = static_cast<uInt>(inflated.size());
    const int status = inflate(&z, Z_SYNC_FLUSH);
    inflated.resize(z.total_out);
    inflateEnd(&z);
    CHECK((status == Z_OK || status == Z_STREAM_END));
    CHECK(inflated == large);

    // Below compression.threshold: as it is, RSV1 clear.
    REQUIRE(frames[1].payload == "short");
    const std::size_t short_at = answer.rfind("short");
    CHECK(answer.substr(short_at - 2, 2) == "\x81\x05");
    CHECK(frames[2].is(opcode::close));
#endif
}

TEST_CASE("RFC 7692 5: on_upgrade can decline permessage-deflate for one connection (a "
          "subprotocol whose payloads are compressed already) and keep it for others",
          "[integration][deflate]") {
#ifndef DUPLEX_ENABLE_DEFLATE
    DUPLEX_SKIP("built without zlib (duplex::deflate)");
#else
    io_runner runner;
    duplex::server_options options;
    options.deflate.enabled = true;
    tcp_server server(runner.io, options);
    server.handlers().on_upgrade = [](const duplex::request_info& req, auto&) {
        const auto& offered = req.upgrade->subprotocols;
        const bool precompressed =
            std::find(offered.begin(), offered.end(), "zipped") != offered.end();
        auto decision = duplex::upgrade_decision::accept(precompressed ? "zipped" : "");
        decision.deflate = !precompressed;
        return decision;
    };
    listen_or_fail(server);
    auto answer_to = [&](const std::string& extra_headers) {
        raw_peer raw(server.port());
        std::string request = valid_upgrade;
        request.insert(request.size() - 2, extra_headers);
        raw.send(request + close_frame(1000, masking::client));
        const std::string answer = raw.read_all();
        return answer.substr(0, answer.find("\r\n\r\n") + 4);
    };
    const std::string offer = "Sec-WebSocket-Extensions: permessage-deflate\r\n";
    const std::string declined = answer_to(offer + "Sec-WebSocket-Protocol: zipped\r\n");
    CHECK(declined.rfind("HTTP/1.1 101 ", 0) == 0);
    CHECK(declined.find("Sec-WebSocket-Protocol: zipped\r\n") != std::string::npos);
    CHECK(declined.find("Sec-WebSocket-Extensions") == std::string::npos);
    const std::string agreed = answer_to(offer);
    CHECK(agreed.rfind("HTTP/1.1 101 ", 0) == 0);
    CHECK(agreed.find("Sec-WebSocket-Extensions: permessage-deflate\r\n") != std::string::npos);
#endif
}

TEST_CASE("RFC 7692 5: a client offers permessage-deflate by default exactly when the build can "
          "compress",
          "[integration][deflate]") {
    const duplex::client_options defaults;
    CHECK(defaults.deflate.enabled == duplex::protocol::deflate_supported);
    CHECK_FALSE(defaults.deflate.server_no_context_takeover);
    CHECK_FALSE(defaults.deflate.client_no_context_takeover);
    CHECK(defaults.deflate.server_max_window_bits == 15);
    CHECK(defaults.deflate.client_max_window_bits == 15);
}

TEST_CASE("RFC 7692 5: a client at its defaults offers permessage-deflate and a server with "
          "deflate enabled agrees, and they exchange messages",
          "[integration][deflate]") {
#ifndef DUPLEX_ENABLE_DEFLATE
    DUPLEX_SKIP("built without zlib (duplex::deflate)");
#else
    io_runner runner;
    duplex::server_options options;
    options.deflate.enabled = true;
    tcp_server server(runner.io, options);
    std::mutex m;
    std::vector<std::string> offered;
    server.handlers().on_upgrade = [&](const duplex::request_info& req, auto&) {
        std::lock_guard<std::mutex> lock(m);
        for (const auto& e : req.upgrade->extensions) offered.push_back(e.name);
        return duplex::upgrade_decision::accept();
    };
    echo_messages(server);
    listen_or_fail(server);
    const duplex::client_options copts; // offers permessage-deflate by default in this build
    auto c = connect(runner.io, url_for(server), copts);
    CHECK(c->options().protocol.deflate.has_value()); // the server agreed
    const std::string text(5000, 'x');
    get_within(c->async_send(opcode::text, text, asio::use_future));
    const auto reply = get_within(c->async_read(asio::use_future));
    CHECK(reply.data == text);
    std::lock_guard<std::mutex> lock(m);
    CHECK(offered == std::vector<std::string>{"permessage-deflate"});
#endif
}

#if defined(DUPLEX_ENABLE_DEFLATE)
namespace {

struct raw_answer {
    std::string head; // the 101 and its headers
    std::vector<wire_frame> frames;
};

// Reads from `raw` until the response head and `count` frames after it have arrived; an empty
// head when they have not within `patience`.
raw_answer read_frames(raw_peer& raw, std::size_t count) {
    std::string in;
    raw.socket.non_blocking(true);
    const auto deadline = std::chrono::steady_clock::now() + patience;
    char buf[4096];
    for (;;) {
        const std::size_t end = in.find("\r\n\r\n");
        if (end != std::string::npos) {
            auto frames = decode_frames(std::string_view(in).substr(end + 4));
            if (frames.size() >= count) return {in.substr(0, end + 4), std::move(frames)};
        }
        if (std::chrono::steady_clock::now() >= deadline) return {};
        std::error_code ec;
        const std::size_t n = raw.socket.read_some(asio::buffer(buf), ec);
        if (ec == asio::error::would_block) {
            std::this_thread::sleep_for(2ms);
            continue;
        }
        if (ec) return {};
        in.append(buf, n);
    }
}

// Inflates one compressed message's payload with zlib itself, in `z`'s context (RFC 7692
// 7.2.2: the trailer put back).
std::string inflate_with(z_stream& z, std::string payload) {
    payload += std::string("\x00\x00\xff\xff", 4);
    std::string out(1U << 20, '\0');
    z.next_in = reinterpret_cast<Bytef*>(payload.data());
    z.avail_in = static_cast<uInt>(payload.size());
    z.next_out = reinterpret_cast<Bytef*>(out.data());
    z.avail_out = static_cast<uInt>(out.size());
    const int status = inflate(&z, Z_SYNC_FLUSH);
    if ((status != Z_OK && status != Z_STREAM_END) || z.avail_in != 0) return "<not inflated>";
    out.resize(out.size() - z.avail_out);
    return out;
}

std::string json_update(int seed) {
    std::string out = "[";
    for (int i = 0; i < 60; ++i)
        out += R"({"id":)" + std::to_string(seed * 100 + i) + R"(,"user":"user)" +
               std::to_string(i % 9) + R"(","text":"hello there","ok":true},)";
    out.back() = ']';
    return out;
}

} // namespace
#endif

TEST_CASE("RFC 7692 7.1.1.1: a broadcast is compressed once for all recipients without context "
          "takeover, in its own context for each recipient with it, and not without deflate",
          "[integration][deflate]") {
#ifndef DUPLEX_ENABLE_DEFLATE
    DUPLEX_SKIP("built without zlib (duplex::deflate)");
#else
    // Two io threads: connections on both compress, or wait for, the same shared frame.
    io_runner runner(2);
    duplex::server_options options;
    options.deflate.enabled = true;
    tcp_server server(runner.io, options);
    counter opened;
    server.handlers().on_open = [&](const auto&) { opened.add(); };
    listen_or_fail(server);
    const auto upgrade = [](const std::string& extensions) {
        std::string request = valid_upgrade;
        if (!extensions.empty())
            request.insert(request.size() - 2, "Sec-WebSocket-Extensions: " + extensions + "\r\n");
        return request;
    };
    std::vector<std::unique_ptr<raw_peer>> stateless;
    for (int i = 0; i < 3; ++i) {
        stateless.push_back(std::make_unique<raw_peer>(server.port()));
        stateless.back()->send(upgrade("permessage-deflate; server_no_context_takeover"));
    }
    raw_peer takeover(server.port());
    takeover.send(upgrade("permessage-deflate"));
    raw_peer plain(server.port());
    plain.send(upgrade(""));
    // And duplex's own client, inflating, in each of the three ways.
    duplex::client_options client_takeover;
    client_takeover.deflate.enabled = true;
    duplex::client_options client_stateless = client_takeover;
    client_stateless.deflate.server_no_context_takeover = true;
    std::vector<std::shared_ptr<tcp_connection>> clients = {
        connect(runner.io, url_for(server), client_takeover),
        connect(runner.io, url_for(server), client_stateless), connect(runner.io, url_for(server))};
    REQUIRE(opened.wait_for(8));

    const std::vector<std::string> texts = {json_update(1), json_update(1), json_update(2)};
    std::vector<duplex::shared_message> messages;
    for (const auto& t : texts) messages.push_back(duplex::shared_message::text(t));
    for (const auto& m : messages) CHECK(server.broadcast(m) == 8);

    // Without context takeover: the same bytes for every recipient, each message alone.
    std::vector<wire_frame> first;
    for (auto& raw : stateless) {
        const raw_answer got = read_frames(*raw, 3);
        REQUIRE(got.head.find("server_no_context_takeover") != std::string::npos);
        REQUIRE(got.frames.size() == 3);
        for (std::size_t i = 0; i < 3; ++i) {
            CHECK(got.frames[i].rsv1);
            CHECK(got.frames[i].is(opcode::text));
            z_stream z{};
            REQUIRE(inflateInit2(&z, -15) == Z_OK);
            CHECK(inflate_with(z, got.frames[i].payload) == texts[i]);
            inflateEnd(&z);
            if (!first.empty()) CHECK(got.frames[i].payload == first[i].payload);
        }
        CHECK(got.frames[0].payload == got.frames[1].payload);
        if (first.empty()) first = got.frames;
    }
    // The compressor ran once per message for all of them (and not for the others).
    for (const auto& m : messages) CHECK(m.compressions() == 1);

    // With context takeover: one stream, in which the repeated message refers back.
    const raw_answer kept = read_frames(takeover, 3);
    REQUIRE(kept.head.find("permessage-deflate") != std::string::npos);
    CHECK(kept.head.find("server_no_context_takeover") == std::string::npos);
    REQUIRE(kept.frames.size() == 3);
    z_stream z{};
    REQUIRE(inflateInit2(&z, -15) == Z_OK);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK(kept.frames[i].rsv1);
        CHECK(inflate_with(z, kept.frames[i].payload) == texts[i]);
    }
    inflateEnd(&z);
    CHECK(kept.frames[1].payload.size() < first[1].payload.size() / 4);

    // Without deflate: the frame as it always was.
    const raw_answer none = read_frames(plain, 3);
    REQUIRE(none.head.find("Sec-WebSocket-Extensions") == std::string::npos);
    REQUIRE(none.frames.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
        CHECK_FALSE(none.frames[i].rsv1);
        CHECK(none.frames[i].payload == texts[i]);
    }

    for (const auto& c : clients)
        for (const auto& t : texts) CHECK(get_within(c->async_read(asio::use_future)).data == t);
#endif
}

TEST_CASE("RFC 6455 4.2.1 and 4.4: malformed upgrades are refused with the right status",
          "[integration]") {
    io_runner runner;
    tcp_server server(runner.io);
    listen_or_fail(server);
    auto answer_to = [&](const std::string& request) {
        raw_peer raw(server.port());
        raw.send(request);
        return raw.read_all();
    };
    SECTION("a bad key is 400") {
        std::string r = valid_upgrade;
        r.replace(r.find("dGhlIHNhbXBsZSBub25jZQ=="), 24, "short");
        CHECK(answer_to(r).rfind("HTTP/1.1 400 ", 0) == 0);
    }
    SECTION("a wrong version is 426 with Sec-WebSocket-Version: 13") {
        std::string r = valid_upgrade;
        r.replace(r.find("Version: 13"), 11, "Version: 8");
        const std::string answer = answer_to(r);
        CHECK(answer.rfind("HTTP/1.1 426 ", 0) == 0);
        CHECK(answer.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
    }
    SECTION("HTTP/1.0 is refused with a 4xx") {
        std::string r = valid_upgrade;
        r.replace(r.find("HTTP/1.1"), 8, "HTTP/1.0");
        CHECK(answer_to(r).rfind("HTTP/1.1 4", 0) == 0);
    }
    SECTION("a POST is refused with a 4xx") {
        std::string r = valid_upgrade;
        r.replace(0, 3, "POST");
        CHECK(answer_to(r).rfind("HTTP/1.1 4", 0) == 0);
    }
    SECTION("garbage is 400") {
        CHECK(answer_to("\x16\x03\x01 hello\r\n\r\n").rfind("HTTP/1.1 400 ", 0) == 0);
    }
    SECTION("a head over the limit is 431") {
        std::string r = "GET / HTTP/1.1\r\nX: " + std::string(9000, 'a') + "\r\n\r\n";
        CHECK(answer_to(r).rfind("HTTP/1.1 431 ", 0) == 0);
    }
}

TEST_CASE("Handshake timeout: a client that sends nothing, or dribbles, is dropped",
          "[integration][timeout]") {
    io_runner runner;
    duplex::server_options options;
    options.handshake_timeout = 200ms;
    tcp_server server(runner.io, options);
    listen_or_fail(server);
    raw_peer silent(server.port());
    CHECK(silent.read_all().empty());
    CHECK(silent.closed); // by the server, long before read_all's bound: nothing else ends it

    // One byte every 20 ms: the 200 ms deadline passes long before the head is complete, and
    // the server cuts the connection while the client is still writing.
    raw_peer dribbler(server.port());
    std::error_code write_error;
    for (char ch : std::string("GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n")) {
        asio::write(dribbler.socket, asio::buffer(&ch, 1), write_error);
        if (write_error) break;
        std::this_thread::sleep_for(20ms);
    }
    if (!write_error) dribbler.read_all();
    CHECK((write_error || dribbler.closed)); // the head never completes: only the deadline ends it
}

TEST_CASE("Keepalive: a peer that never answers pings is dropped with timed_out",
          "[integration][timeout]") {
    io_runner runner;
    duplex::server_options options;
    options.connection.ping_interval = 100ms;
    options.connection.pong_timeout = 150ms;
    tcp_server server(runner.io, options);
    std::promise<duplex::close_info> closed;
    server.handlers().on_close = [&](const auto&, const duplex::close_info& info) {
        closed.set_value(info);
    };
    listen_or_fail(server);
    raw_peer mute(server.port());
    mute.send(valid_upgrade); // then never reads nor answers
    auto future = closed.get_future();
    REQUIRE(future.wait_for(patience) == std::future_status::ready);
    const auto info = future.get();
    CHECK(info.error == error::timed_out);
    CHECK(info.code == 1006);
}

TEST_CASE("Keepalive: a responsive client stays connected through many ping intervals",
          "[integration][timeout]") {
    // Counted, not timed: the test waits until the server has had pongs for several pings
    // spread over more than two pong_timeouts, so a keepalive that ignored the answers would
    // have closed first; nothing asserts how long that took. The pong_timeout is generous, so a
    // slow (sanitizer) run cannot miss it by accident.
    io_runner runner;
    duplex::server_options options;
    options.connection.ping_interval = 20ms;
    options.connection.pong_timeout = 500ms;
    constexpr int enough_pongs = 3;
    tcp_server server(runner.io, options);
    std::atomic<int> closes{0};
    std::atomic<int> pongs{0};
    server.handlers().on_close = [&](const auto&, const duplex::close_info&) { ++closes; };
    server.handlers().on_pong = [&](const auto&, std::string_view) { ++pongs; };
    echo_messages(server);
    listen_or_fail(server);
    auto c = connect(runner.io, url_for(server));
    duplex::connection_handlers<tcp_connection> h;
    c->start(h); // reading: the session answers the server's pings
    const auto start = std::chrono::steady_clock::now();
    const auto spans_two_timeouts = [&] {
        return std::chrono::steady_clock::now() - start > 2 * options.connection.pong_timeout;
    };
    REQUIRE(eventually(
        [&] {
            return (pongs.load() >= enough_pongs && spans_two_timeouts()) || closes.load() != 0;
        },
        30s));
    CHECK(closes.load() == 0);
    CHECK(pongs.load() >= enough_pongs);
    CHECK(server.connection_count() == 1);
    c->close();
}

TEST_CASE("Idle timeout closes a connection with 1001 when no message moves",
          "[integration][timeout]") {
    io_runner runner;
    duplex::server_options options;
    options.connection.idle_timeout = 150ms;
    tcp_server server(runner.io, options);
    listen_or_fail(server);
    auto c = connect(runner.io, url_for(server));
    std::promise<duplex::close_info> closed;
    duplex::connection_handlers<tcp_connection> h;
    h.on_close = [&](const auto&, const duplex::close_info& info) { closed.set_value(info); };
    c->start(h);
    auto future = closed.get_future();
    REQUIRE(future.wait_for(patience) == std::future_status::ready);
    CHECK(future.get().code == 1001);
}

TEST_CASE("Backpressure: a reader that stops reading hits the high-water mark, then the limit",
          "[integration][backpressure]") {
    io_runner runner;
    duplex::server_options options;
    options.connection.send_buffer_high_water = 256U << 10;
    options.connection.send_buffer_limit = 1U << 20;
    options.connection.close_timeout = 300ms;
    tcp_server server(runner.io, options);
    std::vector<duplex::send_status> statuses;
    std::size_t most_buffered = 0;
    std::promise<duplex::close_info> closed;
    server.handlers().on_open = [&](const auto& c) {
        const std::string chunk(64U << 10, 'z');
        for (int i = 0; i < 200; ++i) {
            const auto status = c->send_binary(chunk);
            most_buffered = std::max(most_buffered, c->buffered_amount());
            statuses.push_back(status);
            if (status == duplex::send_status::dropped) break;
        }
    };
    server.handlers().on_close = [&](const auto&, const duplex::close_info& info) {
        closed.set_value(info);
    };
    listen_or_fail(server);
    raw_peer stalled(server.port());
    stalled.send(valid_upgrade); // and never reads
    auto future = closed.get_future();
    REQUIRE(future.wait_for(patience) == std::future_status::ready);
    const auto info = future.get();
    CHECK(info.error == error::send_buffer_full);
    REQUIRE(!statuses.empty());
    CHECK(statuses.front() == duplex::send_status::ok);
    CHECK(std::find(statuses.begin(), statuses.end(), duplex::send_status::backpressure) !=
          statuses.end());
    CHECK(statuses.back() == duplex::send_status::dropped);
    CHECK(most_buffered <= options.connection.send_buffer_limit);
}

TEST_CASE("Backpressure: buffered_amount drains to zero once the peer reads", "[integration]") {
    io_runner runner;
    tcp_server server(runner.io);
    echo_messages(server);
    listen_or_fail(server);
    auto c = connect(runner.io, url_for(server));
    for (int i = 0; i < 50; ++i)
        CHECK(c->send_binary(std::string(10000, 'q')) == duplex::send_status::ok);
    for (int i = 0; i < 50; ++i)
        CHECK(get_within(c->async_read(asio::use_future)).data.size() == 10000);
    CHECK(c->buffered_amount() == 0);
    c->close();
}

TEST_CASE("RFC 6455 7.1.2: a server-initiated close reaches the client with code and reason",
          "[integration]") {
    io_runner runner;
    tcp_server server(runner.io);
    server.handlers().on_open = [](const auto& c) { c->close(4001, "bye now"); };
    listen_or_fail(server);
    auto c = connect(runner.io, url_for(server));
    std::promise<duplex::close_info> closed;
    duplex::connection_handlers<tcp_connection> h;
    h.on_close = [&](const auto&, const duplex::close_info& info) { closed.set_value(info); };
    c->start(h);
    auto future = closed.get_future();
    REQUIRE(future.wait_for(patience) == std::future_status::ready);
    const auto info = future.get();
    CHECK(info.code == 4001);
    CHECK(info.reason == "bye now");
    CHECK_FALSE(info.error);
}

TEST_CASE("RFC 6455 7.1.7: a protocol error from the client is answered with 1002 and a close",
          "[integration]") {
    io_runner runner;
    tcp_server server(runner.io);
    std::promise<std::error_code> failed;
    server.handlers().on_error = [&](const auto&, std::error_code ec) { failed.set_value(ec); };
    listen_or_fail(server);
    raw_peer bad(server.port());
    bad.send(valid_upgrade);
    bad.send(std::string("\x81\x05Hello", 7)); // unmasked: clients must mask (5.1)
    const std::string answer = bad.read_all();
    auto future = failed.get_future();
    REQUIRE(future.wait_for(patience) == std::future_status::ready);
    CHECK(future.get() == error::mask_required);
    const auto frames = answer.substr(answer.find("\r\n\r\n") + 4);
    REQUIRE(frames.size() >= 4);
    CHECK(static_cast<unsigned char>(frames[0]) == 0x88);
    CHECK(static_cast<unsigned char>(frames[2]) == 0x03); // 1002 = 0x03EA
    CHECK(static_cast<unsigned char>(frames[3]) == 0xEA);
    CHECK(bad.closed); // and the server ended the TCP connection
}

TEST_CASE("Graceful shutdown: stop() sends 1001 to every client and lets io.run() return",
          "[integration][shutdown]") {
    asio::io_context io;
    tcp_server server(io);
    listen_or_fail(server);
    io_thread server_thread(io);

    io_runner clients;
    counter all_closed;
    std::vector<std::uint16_t> codes(5, 0);
    std::vector<std::shared_ptr<tcp_connection>> conns;
    for (std::size_t i = 0; i < codes.size(); ++i) {
        auto c = connect(clients.io, url_for(server));
        duplex::connection_handlers<tcp_connection> h;
        h.on_close = [&, i](const auto&, const duplex::close_info& info) {
            codes[i] = info.code;
            all_closed.add();
        };
        c->start(h);
        conns.push_back(c);
    }
    REQUIRE(eventually([&] { return server.connection_count() == codes.size(); }));
    server.stop(2s);
    server.stop(2s); // idempotent
    REQUIRE(all_closed.wait_for(5));
    for (auto code : codes) CHECK(code == 1001);
    CHECK(server_thread.returned_within()); // io.run() returns: no work is left
    CHECK(server.connection_count() == 0);
}

TEST_CASE("Graceful shutdown: a handshake already writing its 101 becomes a connection closed "
          "with 1001",
          "[integration][shutdown]") {
    asio::io_context io;
    tcp_server server(io);
    // stop() from inside on_upgrade runs while this handshake goes on to write its 101: the
    // client must get a close frame, and the server's count must come back to zero once.
    server.handlers().on_upgrade = [&](const duplex::request_info&, duplex::no_user_data&) {
        server.stop(2s);
        return duplex::upgrade_decision::accept();
    };
    listen_or_fail(server);
    io_thread server_thread(io);
    io_runner clients;
    auto c = connect(clients.io, url_for(server));
    CHECK(failure_of(c->async_read(asio::use_future)));
    CHECK(c->result().code == 1001);
    CHECK(server_thread.returned_within());
    CHECK(server.connection_count() == 0);
}

TEST_CASE("Graceful shutdown: clients that never answer are cut at the deadline",
          "[integration][shutdown]") {
    // Every other timer is far beyond the wait below, so only stop()'s deadline can end these
    // connections (and let io.run() return) in time.
    asio::io_context io;
    duplex::server_options options;
    options.handshake_timeout = 10 * patience;
    options.connection.close_timeout = 10 * patience;
    options.connection.ping_interval = 0ms;
    tcp_server server(io, options);
    listen_or_fail(server);
    io_thread server_thread(io);
    raw_peer mute(server.port());
    mute.send(valid_upgrade);
    raw_peer half(server.port()); // still in its handshake
    REQUIRE(eventually([&] { return server.connection_count() + server.handshake_count() == 2; }));
    server.stop(300ms);
    CHECK(server_thread.returned_within());
    CHECK(server.connection_count() + server.handshake_count() == 0);
}

TEST_CASE("stop() is safe from inside a handler", "[integration][shutdown]") {
    asio::io_context io;
    tcp_server server(io);
    server.handlers().on_message = [&](const auto&, const duplex::message_view&) {
        server.stop(1s);
        server.stop(1s);
    };
    listen_or_fail(server);
    io_thread server_thread(io);
    io_runner clients;
    auto c = connect(clients.io, url_for(server));
    c->send_text("stop please");
    CHECK(failure_of(c->async_read(asio::use_future))); // the server closes with 1001
    CHECK(c->result().code == 1001);
    CHECK(server_thread.returned_within());
}

TEST_CASE("Connection limit: sockets past max_connections are closed at once", "[integration]") {
    io_runner runner;
    duplex::server_options options;
    options.max_connections = 2;
    tcp_server server(runner.io, options);
    listen_or_fail(server);
    auto a = connect(runner.io, url_for(server));
    auto b = connect(runner.io, url_for(server));
    CHECK(failure_of(start_connect(runner.io, url_for(server))));
    get_within(a->async_close(1000, "", asio::use_future));
    REQUIRE(eventually([&] { return server.connection_count() == 1; }));
    CHECK(connect(runner.io, url_for(server)) != nullptr);
}

TEST_CASE("1,000 concurrent connections each get their echo", "[integration][scale]") {
    io_runner server_runner;
    tcp_server server(server_runner.io);
    echo_messages(server);
    listen_or_fail(server);
    io_runner client_runner;
    constexpr int count = 1000;
    std::vector<std::future<std::shared_ptr<tcp_connection>>> pending;
    for (int i = 0; i < count; ++i)
        pending.push_back(duplex::async_connect<duplex::transport::tcp>(
            client_runner.io.get_executor(), url_for(server), {}, asio::use_future));
    std::vector<std::shared_ptr<tcp_connection>> conns;
    for (auto& p : pending) conns.push_back(get_within(p));
    // A client sees the 101 a moment before the server, whose write of it has yet to
    // complete, counts the connection as upgraded.
    CHECK(eventually([&] { return server.connection_count() == static_cast<std::size_t>(count); }));
    std::vector<std::future<duplex::message>> replies;
    for (int i = 0; i < count; ++i) {
        conns[static_cast<std::size_t>(i)]->send_text("n" + std::to_string(i));
        replies.push_back(conns[static_cast<std::size_t>(i)]->async_read(asio::use_future));
    }
    int correct = 0;
    for (int i = 0; i < count; ++i)
        correct += get_within(replies[static_cast<std::size_t>(i)]).data == "n" + std::to_string(i);
    CHECK(correct == count);
    for (auto& c : conns) c->close();
}

TEST_CASE("A server on two io threads echoes concurrent clients correctly",
          "[integration][threads]") {
    io_runner server_runner(2);
    tcp_server server(server_runner.io);
    echo_messages(server);
    listen_or_fail(server);
    io_runner client_runner(2);
    std::vector<std::thread> threads;
    std::atomic<int> good{0};
    // Catch2 assertions are not thread-safe: each client thread writes down its first problem,
    // and the test thread checks them after the joins.
    std::vector<std::string> problems(8);
    for (int t = 0; t < 8; ++t) {
        threads.emplace_back([&, t] {
            std::string& problem = problems[static_cast<std::size_t>(t)];
            // Bounded like get_within, without asserting off the test thread.
            auto ready = [](auto& f) { return f.wait_for(patience) == std::future_status::ready; };
            try {
                auto connecting = start_connect(client_runner.io, url_for(server));
                if (!ready(connecting)) return void(problem = "no connection");
                auto c = connecting.get();
                for (int i = 0; i < 50; ++i) {
                    const std::string payload = std::to_string(t) + ":" + std::to_string(i);
                    c->send_text(payload); // from this thread, not the strand
                    auto reply = c->async_read(asio::use_future);
                    if (!ready(reply)) return void(problem = "no reply to " + payload);
                    if (reply.get().data != payload) return void(problem = "wrong reply");
                }
                auto closing = c->async_close(1000, "", asio::use_future);
                if (!ready(closing)) return void(problem = "no close");
                closing.get();
                ++good;
            } catch (const std::exception& e) {
                problem = e.what();
            }
        });
    }
    for (auto& t : threads) t.join();
    for (const auto& problem : problems) CHECK(problem.empty());
    CHECK(good.load() == 8);
}

TEST_CASE("Client errors: bad URL, scheme/transport mismatch, refused port, connect timeout",
          "[integration][client]") {
    io_runner runner;
    auto error_of = [&](const std::string& url, duplex::client_options options = {}) {
        return failure_of(start_connect(runner.io, url, std::move(options)));
    };
    CHECK(error_of("http://127.0.0.1/") == error::bad_url);
    CHECK(error_of("wss://127.0.0.1/") == error::bad_url); // plain TCP transport
    CHECK(error_of("ws://127.0.0.1:1/") == asio::error::connection_refused);

    // A listener that accepts TCP but never answers the upgrade.
    asio::ip::tcp::acceptor silent(runner.io, {asio::ip::make_address("127.0.0.1"), 0});
    duplex::client_options quick;
    quick.connect_timeout = 200ms;
    CHECK(error_of("ws://127.0.0.1:" + std::to_string(silent.local_endpoint().port()) + "/",
                   quick) == error::timed_out);
}

TEST_CASE("Reconnecting client: reconnects after a drop and calls on_open each time",
          "[integration][client]") {
    io_runner runner;
    tcp_server server(runner.io);
    std::atomic<int> opened{0};
    server.handlers().on_open = [&](const auto& c) {
        if (++opened == 1) c->close(1012, "restarting"); // drop the first connection
    };
    echo_messages(server);
    listen_or_fail(server);

    duplex::reconnect_options policy;
    policy.initial_delay = 10ms;
    auto client = duplex::reconnecting_client<duplex::transport::tcp>::create(
        runner.io.get_executor(), url_for(server), {}, policy);
    counter opens;
    std::promise<std::string> echoed;
    std::atomic<bool> answered{false};
    client->handlers().on_open = [&](const auto& c) {
        opens.add();
        if (opens.count == 2) c->send_text("after reconnect");
    };
    client->handlers().on_message = [&](const auto&, const duplex::message_view& m) {
        if (!answered.exchange(true)) echoed.set_value(std::string(m.data));
    };
    client->start();
    REQUIRE(opens.wait_for(2));
    auto future = echoed.get_future();
    REQUIRE(future.wait_for(patience) == std::future_status::ready);
    CHECK(future.get() == "after reconnect");
    CHECK(client->connects() == 2);
    client->stop();
}

TEST_CASE("Reconnecting client: gives up after max_attempts consecutive failures",
          "[integration][client]") {
    io_runner runner;
    duplex::reconnect_options policy;
    policy.initial_delay = 5ms;
    policy.max_delay = 20ms;
    policy.max_attempts = 3;
    auto client = duplex::reconnecting_client<duplex::transport::tcp>::create(
        runner.io.get_executor(), "ws://127.0.0.1:1/", {}, policy);
    std::promise<std::error_code> gave_up;
    client->handlers().on_give_up = [&](std::error_code ec) { gave_up.set_value(ec); };
    client->start();
    auto future = gave_up.get_future();
    REQUIRE(future.wait_for(patience) == std::future_status::ready);
    CHECK(future.get() == asio::error::connection_refused);
    CHECK(client->failures() == 3); // exactly max_attempts (issue 12)
}

TEST_CASE("IPv6: a server on ::1 and a client to ws://[::1]:port", "[integration][ipv6]") {
    io_runner runner;
    tcp_server server(runner.io);
    echo_messages(server);
    if (server.listen("::1", 0)) DUPLEX_SKIP("no IPv6 loopback (::1) on this machine");
    auto c = connect(runner.io, "ws://[::1]:" + std::to_string(server.port()) + "/v6");
    c->send_text("over IPv6");
    CHECK(get_within(c->async_read(asio::use_future)).data == "over IPv6");
    CHECK(c->remote_endpoint().address().is_v6());
    get_within(c->async_close(1000, "", asio::use_future));
}

#if defined(DUPLEX_ENABLE_TLS)
TEST_CASE("wss://: echo through a TLS server with a verified certificate", "[integration][tls]") {
    require_certificate();
    using duplex::transport::tls;
    io_runner runner;
    duplex::server<tls> server(runner.io, {},
                               tls::server_context(certificate().cert, certificate().key));
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
    };
    listen_or_fail(server);
    const std::string port = std::to_string(server.port());
    // Also on 127.0.0.2, an address the certificate does not name.
    REQUIRE_FALSE(server.listen("127.0.0.2", server.port()));

    auto trusted = tls::client_context();
    trusted.ssl->load_verify_file(certificate().cert);
    auto c = get_within(duplex::async_connect<tls>(
        runner.io.get_executor(), "wss://localhost:" + port + "/", {}, trusted, asio::use_future));
    for (std::size_t size : {0U, 126U, 70000U, 4U << 20}) {
        const std::string payload(size, 's');
        get_within(c->async_send(opcode::binary, payload, asio::use_future));
        CHECK(get_within(c->async_read(asio::use_future)).data == payload);
    }
    get_within(c->async_close(1000, "tls bye", asio::use_future));
    CHECK_FALSE(c->result().error); // a clean close over TLS, whatever the peer's shutdown

    SECTION("the host name is verified by default") {
        const auto ec = failure_of(duplex::async_connect<tls>(runner.io.get_executor(),
                                                              "wss://127.0.0.2:" + port + "/", {},
                                                              trusted, asio::use_future));
        CHECK(ec); // a certificate for localhost/127.0.0.1 must not be accepted for 127.0.0.2
        CHECK(ec != asio::error::connection_refused); // it reached the TLS handshake
        CHECK(ec.category() != duplex::error_category());
    }
    SECTION("an untrusted certificate is refused by default") {
        auto system_only = tls::client_context();
        CHECK(failure_of(duplex::async_connect<tls>(runner.io.get_executor(),
                                                    "wss://localhost:" + port + "/", {},
                                                    system_only, asio::use_future)));
    }
    SECTION("plain ws:// to a TLS port fails the handshake, it does not hang") {
        duplex::client_options quick;
        quick.connect_timeout = 2s;
        CHECK(failure_of(start_connect(runner.io, "ws://127.0.0.1:" + port + "/", quick)));
    }
}
#endif

// Unix-domain sockets (transport::unix_socket): the tests above that apply to a transport
// without IP addresses, and the socket file's own life (stale files, permissions, removal).
namespace {

using duplex::transport::unix_socket;
using unix_server = duplex::server<unix_socket>;
using unix_connection = duplex::connection<unix_socket>;

// A fresh directory under /tmp, removed with its contents: short, because a socket path must
// fit in sockaddr_un (108 bytes), which a build directory's path may not.
struct temp_dir {
    temp_dir() {
        char name[] = "/tmp/duplex-test-XXXXXX";
        REQUIRE(::mkdtemp(name) != nullptr);
        path = name;
    }
    ~temp_dir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    std::string file(std::string_view name) const { return path + "/" + std::string(name); }
    std::string path;
};

std::string unix_url(const std::string& socket_path, std::string_view target = "/") {
    return "ws+unix://" + socket_path + ":" + std::string(target);
}

std::future<std::shared_ptr<unix_connection>>
start_unix_connect(asio::io_context& io, const std::string& url,
                   duplex::client_options options = {}) {
    return duplex::async_connect<unix_socket>(io.get_executor(), url, options, asio::use_future);
}

std::shared_ptr<unix_connection> connect_unix(asio::io_context& io, const std::string& url) {
    return get_within(start_unix_connect(io, url));
}

bool is_socket_file(const std::string& path) {
    std::error_code ec;
    return std::filesystem::is_socket(std::filesystem::symlink_status(path, ec));
}

void echo_unix(unix_server& server) {
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
    };
}

} // namespace

TEST_CASE("Unix socket: echo through ws+unix, text and binary of many sizes",
          "[integration][unix]") {
    const bool hold_read_buffer = GENERATE(false, true);
    CAPTURE(hold_read_buffer);
    temp_dir dir;
    io_runner runner;
    unix_server server(runner.io, reading_with(hold_read_buffer));
    echo_unix(server);
    REQUIRE_FALSE(server.listen(dir.file("ws.sock")));
    CHECK(is_socket_file(dir.file("ws.sock")));

    auto c = connect_unix(runner.io, unix_url(dir.file("ws.sock"), "/echo"));
    for (std::size_t size : {0U, 1U, 125U, 126U, 65535U, 65536U, 1U << 20, 4U << 20}) {
        CAPTURE(size);
        const std::string payload(size, 'u');
        const auto type = size % 2 ? opcode::text : opcode::binary;
        get_within(c->async_send(type, payload, asio::use_future));
        const auto reply = get_within(c->async_read(asio::use_future));
        CHECK(reply.type == type);
        CHECK(reply.data == payload);
    }
    CHECK(server.connection_count() == 1);
    CHECK(c->remote_endpoint().port() == 0); // no IP peer on a Unix socket
    get_within(c->async_close(1000, "unix bye", asio::use_future));
    CHECK_FALSE(c->result().error);
    CHECK(c->result().code == 1000);
}

TEST_CASE("Unix socket: the upgrade hook sees target, query and headers, and Host is localhost",
          "[integration][unix]") {
    temp_dir dir;
    io_runner runner;
    unix_server server(runner.io);
    std::mutex m;
    std::string path, room, host, token, proxy_for;
    unsigned short remote_port = 1;
    server.handlers().on_upgrade = [&](const duplex::request_info& r, duplex::no_user_data&) {
        std::lock_guard<std::mutex> lock(m);
        path = std::string(r.path());
        room = std::string(r.query_param("room").value_or(""));
        host = std::string(r.header("Host").value_or(""));
        token = std::string(r.header("Authorization").value_or(""));
        proxy_for = std::string(r.header("X-Forwarded-For").value_or(""));
        remote_port = r.remote.port();
        if (token != "Bearer good") return duplex::upgrade_decision::reject(401, "bad token");
        return duplex::upgrade_decision::accept("chat.v1");
    };
    REQUIRE_FALSE(server.listen(dir.file("ws.sock")));

    duplex::client_options options;
    options.subprotocols = {"chat.v1"};
    options.headers = {{"Authorization", "Bearer good"}, {"X-Forwarded-For", "203.0.113.7"}};
    auto c = get_within(start_unix_connect(
        runner.io, unix_url(dir.file("ws.sock"), "/rooms/lobby?room=7"), options));
    CHECK(c->subprotocol() == "chat.v1");
    {
        std::lock_guard<std::mutex> lock(m);
        CHECK(path == "/rooms/lobby");
        CHECK(room == "7");
        CHECK(host == "localhost");
        CHECK(token == "Bearer good");
        CHECK(proxy_for == "203.0.113.7"); // what a reverse proxy passes on
        CHECK(remote_port == 0);
    }

    // A refusal carries its status and body to the client, as over TCP.
    options.headers = {{"Authorization", "Bearer wrong"}};
    duplex::upgrade_response refusal;
    const auto ec = failure_of(
        duplex::async_connect<unix_socket>(runner.io.get_executor(), unix_url(dir.file("ws.sock")),
                                           options, refusal, asio::use_future));
    CHECK(ec == error::bad_status);
    CHECK(refusal.status == 401);
    CHECK(refusal.body == "bad token");
}

TEST_CASE("Unix socket: plain HTTP goes to on_http, a protocol error is answered with 1002",
          "[integration][unix]") {
    temp_dir dir;
    io_runner runner;
    unix_server server(runner.io);
    server.handlers().on_http = [](const duplex::request_info& r) {
        duplex::http_response response;
        response.body = r.path() == "/health" ? "ok" : "?";
        return response;
    };
    REQUIRE_FALSE(server.listen(dir.file("ws.sock")));

    // A blocking peer that writes raw bytes, as a proxy's health check or a broken client does.
    auto raw_exchange = [&](std::string_view bytes) {
        asio::io_context io;
        asio::local::stream_protocol::socket s(io);
        s.connect(asio::local::stream_protocol::endpoint(dir.file("ws.sock")));
        asio::write(s, asio::buffer(bytes));
        std::string out;
        std::error_code ec;
        char buf[4096];
        while (!ec) out.append(buf, s.read_some(asio::buffer(buf), ec));
        return out;
    };
    const std::string health =
        raw_exchange("GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    CHECK(health.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(health.substr(health.size() - 2) == "ok");

    const std::string answer = raw_exchange(valid_upgrade + std::string("\x81\x05Hello", 7));
    const auto frames = answer.substr(answer.find("\r\n\r\n") + 4);
    REQUIRE(frames.size() >= 4);
    CHECK(static_cast<unsigned char>(frames[0]) == 0x88);
    CHECK(static_cast<unsigned char>(frames[2]) == 0x03); // 1002 = 0x03EA
    CHECK(static_cast<unsigned char>(frames[3]) == 0xEA);
}

TEST_CASE("Unix socket: stop() sends 1001, lets io.run() return and removes the socket file",
          "[integration][unix][shutdown]") {
    temp_dir dir;
    const std::string path = dir.file("ws.sock");
    asio::io_context io;
    unix_server server(io);
    REQUIRE_FALSE(server.listen(path));
    io_thread server_thread(io);
    io_runner clients;
    auto c = connect_unix(clients.io, unix_url(path));
    REQUIRE(eventually([&] { return server.connection_count() == 1; }));
    server.stop(2s);
    CHECK(failure_of(c->async_read(asio::use_future)));
    CHECK(c->result().code == 1001);
    CHECK(server_thread.returned_within());
    CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));

    // A server destroyed without stop() removes its file too.
    {
        asio::io_context other;
        unix_server short_lived(other);
        REQUIRE_FALSE(short_lived.listen(path));
        CHECK(is_socket_file(path));
    }
    CHECK_FALSE(std::filesystem::exists(std::filesystem::symlink_status(path)));
}

TEST_CASE("Unix socket: a stale socket file is replaced, a live socket and other files are not",
          "[integration][unix]") {
    temp_dir dir;
    const std::string path = dir.file("ws.sock");
    io_runner runner;
    {
        // What a server that died leaves: a socket file nobody accepts on.
        asio::local::stream_protocol::acceptor dead(runner.io);
        dead.open();
        dead.bind(asio::local::stream_protocol::endpoint(path));
        dead.listen();
    }
    REQUIRE(is_socket_file(path));
    unix_server server(runner.io);
    echo_unix(server);
    REQUIRE_FALSE(server.listen(path));
    auto c = connect_unix(runner.io, unix_url(path));
    c->send_text("after a stale file");
    CHECK(get_within(c->async_read(asio::use_future)).data == "after a stale file");

    SECTION("a second server on a live socket fails, and the first keeps its file") {
        unix_server second(runner.io);
        CHECK(second.listen(path) == asio::error::address_in_use);
        CHECK(is_socket_file(path));
        auto again = connect_unix(runner.io, unix_url(path));
        again->send_text("still served");
        CHECK(get_within(again->async_read(asio::use_future)).data == "still served");
    }
    SECTION("a regular file, a directory and a symbolic link are left alone") {
        const std::string regular = dir.file("data.txt");
        { std::ofstream(regular) << "precious"; }
        const std::string directory = dir.file("subdir");
        std::filesystem::create_directory(directory);
        const std::string link = dir.file("link.sock");
        std::filesystem::create_symlink(path, link);
        unix_server other(runner.io);
        for (const auto& taken : {regular, directory, link}) {
            CAPTURE(taken);
            CHECK(other.listen(taken) == std::errc::file_exists);
        }
        std::ifstream in(regular);
        std::string content;
        in >> content;
        CHECK(content == "precious");
        CHECK(std::filesystem::is_directory(directory));
        CHECK(std::filesystem::is_symlink(std::filesystem::symlink_status(link)));
    }
}

TEST_CASE("Unix socket: the socket file gets the mode of listen_options, 0660 by default",
          "[integration][unix]") {
    temp_dir dir;
    io_runner runner;
    auto mode_of = [](const std::string& path) {
        return std::filesystem::symlink_status(path).permissions() & std::filesystem::perms::mask;
    };
    using std::filesystem::perms;
    unix_server by_default(runner.io);
    REQUIRE_FALSE(by_default.listen(dir.file("default.sock")));
    CHECK(mode_of(dir.file("default.sock")) ==
          (perms::owner_read | perms::owner_write | perms::group_read | perms::group_write));

    unix_server owner_only(runner.io);
    unix_socket::listen_options options;
    options.permissions = 0600;
    REQUIRE_FALSE(owner_only.listen(dir.file("owner.sock"), options));
    CHECK(mode_of(dir.file("owner.sock")) == (perms::owner_read | perms::owner_write));
    // The owner can still connect.
    CHECK(connect_unix(runner.io, unix_url(dir.file("owner.sock"))) != nullptr);
}

TEST_CASE("Unix socket: client errors: tcp URL, missing socket file, path too long, timeout",
          "[integration][unix][client]") {
    temp_dir dir;
    io_runner runner;
    auto error_of = [&](const std::string& url, duplex::client_options options = {}) {
        return failure_of(start_unix_connect(runner.io, url, std::move(options)));
    };
    CHECK(error_of("ws://127.0.0.1:1/") == error::bad_url); // a Unix transport needs ws+unix
    CHECK(failure_of(start_connect(runner.io, unix_url(dir.file("ws.sock")))) == error::bad_url);
    const auto missing = error_of(unix_url(dir.file("nobody.sock")));
    CHECK(missing.value() == ENOENT);
    CHECK(error_of(unix_url("/tmp/" + std::string(200, 'x'))) == asio::error::name_too_long);
    unix_server server(runner.io);
    CHECK(server.listen("/tmp/" + std::string(200, 'x')) == asio::error::name_too_long);

    // A listener that accepts but never answers the upgrade.
    asio::local::stream_protocol::acceptor silent(
        runner.io, asio::local::stream_protocol::endpoint(dir.file("silent.sock")));
    duplex::client_options quick;
    quick.connect_timeout = 200ms;
    CHECK(error_of(unix_url(dir.file("silent.sock")), quick) == error::timed_out);
}

TEST_CASE("Unix socket: the reconnecting client reconnects after a drop",
          "[integration][unix][client]") {
    temp_dir dir;
    io_runner runner;
    unix_server server(runner.io);
    std::atomic<int> opened{0};
    server.handlers().on_open = [&](const auto& c) {
        if (++opened == 1) c->close(1012, "restarting");
    };
    echo_unix(server);
    REQUIRE_FALSE(server.listen(dir.file("ws.sock")));

    duplex::reconnect_options policy;
    policy.initial_delay = 10ms;
    auto client = duplex::reconnecting_client<unix_socket>::create(
        runner.io.get_executor(), unix_url(dir.file("ws.sock")), {}, policy);
    counter opens;
    std::promise<std::string> echoed;
    std::atomic<bool> answered{false};
    client->handlers().on_open = [&](const auto& c) {
        opens.add();
        if (opens.count == 2) c->send_text("after reconnect");
    };
    client->handlers().on_message = [&](const auto&, const duplex::message_view& m) {
        if (!answered.exchange(true)) echoed.set_value(std::string(m.data));
    };
    client->start();
    REQUIRE(opens.wait_for(2));
    auto future = echoed.get_future();
    REQUIRE(future.wait_for(patience) == std::future_status::ready);
    CHECK(future.get() == "after reconnect");
    CHECK(client->connects() == 2);
    client->stop();
}

TEST_CASE("Unix socket: a server on two io threads echoes concurrent clients",
          "[integration][unix][threads]") {
    temp_dir dir;
    io_runner server_runner(2);
    unix_server server(server_runner.io);
    echo_unix(server);
    REQUIRE_FALSE(server.listen(dir.file("ws.sock")));
    io_runner client_runner(2);
    constexpr int count = 50;
    std::vector<std::future<std::shared_ptr<unix_connection>>> pending;
    for (int i = 0; i < count; ++i)
        pending.push_back(start_unix_connect(client_runner.io, unix_url(dir.file("ws.sock"))));
    std::vector<std::shared_ptr<unix_connection>> conns;
    for (auto& p : pending) conns.push_back(get_within(p));
    std::vector<std::future<duplex::message>> replies;
    for (int i = 0; i < count; ++i) {
        conns[static_cast<std::size_t>(i)]->send_text("client " + std::to_string(i));
        replies.push_back(conns[static_cast<std::size_t>(i)]->async_read(asio::use_future));
    }
    for (int i = 0; i < count; ++i)
        CHECK(get_within(replies[static_cast<std::size_t>(i)]).data ==
              "client " + std::to_string(i));
}
