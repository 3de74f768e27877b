// C++20 coroutines: a server and a client over real sockets on 127.0.0.1, the client driven
// entirely by co_await on duplex's completion-token operations (async_connect, async_send,
// async_read, async_ping, async_close with asio::use_awaitable).
//
// This translation unit is built as C++20 on its own (the rest of the tests are C++17), and only
// where Asio finds coroutine support (tests/CMakeLists.txt checks ASIO_HAS_CO_AWAIT and
// ASIO_HAS_STD_COROUTINE at configure time; elsewhere a disabled test reports it as skipped).
#include "../unit/catch.hpp"

#include <duplex/duplex.hpp>

#include <asio/io_context.hpp>

#if !defined(ASIO_HAS_CO_AWAIT) || !defined(ASIO_HAS_STD_COROUTINE)
#error "Asio has no C++20 coroutine support here: tests/CMakeLists.txt should not build this file"
#endif

#include <asio/co_spawn.hpp>
#include <asio/redirect_error.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>

#include <chrono>
#include <exception>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using duplex::error;
using duplex::opcode;
using tcp_server = duplex::server<duplex::transport::tcp>;
using tcp_connection = duplex::connection<duplex::transport::tcp>;

namespace {

// A server on 127.0.0.1 (a free port) that echoes every message back with its type.
struct echo_server {
    explicit echo_server(asio::io_context& io) : server(io) {
        server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
            c->send(m.type, m.data);
        };
        REQUIRE_FALSE(server.listen("127.0.0.1", 0));
        REQUIRE(server.port() != 0);
    }
    std::string url() const { return "ws://127.0.0.1:" + std::to_string(server.port()) + "/"; }
    tcp_server server;
};

// Runs `coroutine` on `io` to completion, for at most `limit`, and rethrows what it threw (a
// failed REQUIRE inside it, or an operation's std::system_error).
template <class Awaitable>
void run_to_completion(asio::io_context& io, Awaitable coroutine,
                       std::chrono::milliseconds limit = 5s) {
    bool done = false;
    std::exception_ptr failure;
    asio::co_spawn(io, std::move(coroutine), [&](std::exception_ptr e) {
        failure = e;
        done = true;
    });
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done && std::chrono::steady_clock::now() < deadline) {
        if (io.stopped()) io.restart();
        io.run_one_for(10ms);
    }
    REQUIRE(done);
    if (failure) std::rethrow_exception(failure);
}

asio::awaitable<std::shared_ptr<tcp_connection>> connect(std::string url) {
    auto executor = co_await asio::this_coro::executor;
    // Named, not `duplex::client_options{}` inside the co_await expression: g++ 12.2 frees a
    // brace-initialized aggregate temporary there twice (reproduced without duplex, with any
    // aggregate holding a std::string).
    const duplex::client_options options;
    co_return co_await duplex::async_connect<duplex::transport::tcp>(executor, std::move(url),
                                                                     options, asio::use_awaitable);
}

// Stops the server and lets every socket finish closing.
void shut_down(asio::io_context& io, echo_server& s) {
    s.server.stop(200ms);
    if (io.stopped()) io.restart();
    io.run_for(300ms);
}

} // namespace

TEST_CASE("use_awaitable: connect, send, read, ping and close with co_await", "[awaitable]") {
    asio::io_context io;
    echo_server s(io);
    run_to_completion(io, [&]() -> asio::awaitable<void> {
        auto c = co_await connect(s.url());
        REQUIRE(c);
        for (std::size_t size : {0U, 1U, 125U, 126U, 65535U, 65536U}) {
            for (opcode type : {opcode::text, opcode::binary}) {
                const std::string payload(size, type == opcode::text ? 'a' : '\xfe');
                co_await c->async_send(type, payload, asio::use_awaitable);
                const duplex::message reply = co_await c->async_read(asio::use_awaitable);
                CHECK(reply.type == type);
                CHECK(reply.data == payload);
            }
        }
        co_await c->async_ping("still there?", asio::use_awaitable);
        co_await c->async_close(1000, "done", asio::use_awaitable);
        CHECK(c->result().code == 1000);
        CHECK_FALSE(c->result().error);
    }());
    shut_down(io, s);
}

TEST_CASE("use_awaitable: failures are thrown as std::system_error, or returned through "
          "redirect_error",
          "[awaitable]") {
    asio::io_context io;
    echo_server s(io);
    run_to_completion(io, [&]() -> asio::awaitable<void> {
        auto c = co_await connect(s.url());
        co_await c->async_close(1000, "bye", asio::use_awaitable);

        bool threw = false;
        try {
            (void)co_await c->async_read(asio::use_awaitable);
        } catch (const std::system_error& e) {
            threw = true;
            CHECK(e.code() == error::closed);
        }
        CHECK(threw);

        std::error_code ec;
        co_await c->async_send(opcode::text, "late", asio::redirect_error(asio::use_awaitable, ec));
        CHECK(ec == error::closed);
        co_await c->async_ping("late", asio::redirect_error(asio::use_awaitable, ec));
        CHECK(ec == error::closed);
    }());

    // A refused connection attempt throws too.
    run_to_completion(io, [&]() -> asio::awaitable<void> {
        bool threw = false;
        try {
            (void)co_await connect("ws://127.0.0.1:" + std::to_string(s.server.port()) +
                                   "/%zz bad");
        } catch (const std::system_error&) {
            threw = true;
        }
        CHECK(threw);
    }());
    shut_down(io, s);
}

TEST_CASE("use_awaitable: a reader and a writer coroutine share one connection", "[awaitable]") {
    asio::io_context io;
    echo_server s(io);
    constexpr int count = 200;
    std::vector<std::string> received;
    run_to_completion(io, [&]() -> asio::awaitable<void> {
        auto c = co_await connect(s.url());
        auto executor = co_await asio::this_coro::executor;
        bool reader_done = false;
        asio::co_spawn(
            executor,
            [&, c]() -> asio::awaitable<void> {
                for (int i = 0; i < count; ++i) {
                    auto m = co_await c->async_read(asio::use_awaitable);
                    received.push_back(std::move(m.data));
                }
            },
            [&](std::exception_ptr) { reader_done = true; });
        for (int i = 0; i < count; ++i)
            co_await c->async_send(opcode::text, "m" + std::to_string(i), asio::use_awaitable);
        asio::steady_timer wait(executor);
        while (!reader_done) {
            wait.expires_after(1ms);
            co_await wait.async_wait(asio::use_awaitable);
        }
        co_await c->async_close(1000, "", asio::use_awaitable);
        CHECK_FALSE(c->result().error);
    }());
    REQUIRE(received.size() == count);
    for (int i = 0; i < count; ++i)
        CHECK(received[static_cast<std::size_t>(i)] == "m" + std::to_string(i));
    shut_down(io, s);
}
