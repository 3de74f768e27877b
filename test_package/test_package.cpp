// test_package.cpp — a program built against a packaged duplex: one echo round trip.
// SPDX-License-Identifier: BSL-1.0
//
// A server and a client in this process talk over loopback. Conan's test_package builds it
// against the recipe's package, and tests/package against `cmake --install` and
// add_subdirectory, so what a user links is exercised the way a user links it.

#include <duplex/duplex.hpp>

#include <asio/use_future.hpp>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

// The package must impose nothing on its users beyond what its headers need: code that still
// uses Asio's deprecated names (asio::io_service) has to keep compiling.
#if defined(ASIO_NO_DEPRECATED)
#error "duplex::duplex defines ASIO_NO_DEPRECATED on its users' targets"
#endif

namespace {

// Generous: it only fails when an answer never comes.
template <class T>
T wait(std::future<T> result) {
    if (result.wait_for(std::chrono::seconds(30)) != std::future_status::ready)
        throw std::runtime_error("no completion within 30 s");
    return result.get();
}

int round_trip(asio::io_context& io, std::uint16_t port) {
    const std::string url = "ws://127.0.0.1:" + std::to_string(port) + "/";
    const std::string text = "hello from a packaged duplex";
    auto client = wait(duplex::async_connect<duplex::transport::tcp>(io.get_executor(), url, {},
                                                                     asio::use_future));
    wait(client->async_send(duplex::opcode::text, text, asio::use_future));
    const duplex::message reply = wait(client->async_read(asio::use_future));
    wait(client->async_close(1000, "done", asio::use_future));
    if (!reply.is_text() || reply.data != text) {
        std::fprintf(stderr, "echo differs: \"%s\"\n", reply.data.c_str());
        return 1;
    }
    std::printf("echo: %s\n", reply.data.c_str());
    return 0;
}

#if defined(DUPLEX_ENABLE_DEFLATE)
// The deflate component brings zlib: one message compressed by a client session and inflated
// by a server session, with the parameters a handshake would have agreed on.
int deflate_round_trip() {
    namespace proto = duplex::protocol;
    proto::session_options options;
    options.deflate = proto::deflate_params{};
    options.compression.threshold = 0;
    proto::session client(proto::role::client, options);
    proto::session server(proto::role::server, options);
    const std::string text(2000, 'a');
    if (client.send_text(text)) return 1;
    std::string wire(client.pending_output());
    if (wire.size() >= text.size() || (static_cast<unsigned char>(wire[0]) & 0x40U) == 0) {
        std::fprintf(stderr, "deflate: the message was not compressed\n");
        return 1;
    }
    const auto r = server.receive(wire.data(), wire.size());
    if (r.ev.type != proto::event_type::message || r.ev.data != text) {
        std::fprintf(stderr, "deflate: the message did not inflate\n");
        return 1;
    }
    std::printf("deflate: compressed round trip, %zu bytes as %zu\n", text.size(), wire.size());
    return 0;
}
#endif

} // namespace

int main() {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    duplex::server<duplex::transport::tcp> server(io);
    server.handlers().on_message = [](const auto& connection, const duplex::message_view& m) {
        connection->send(m.type, m.data);
    };
    if (const auto ec = server.listen("127.0.0.1", 0)) {
        std::fprintf(stderr, "listen: %s\n", ec.message().c_str());
        return 1;
    }
    std::thread runner([&] { io.run(); });

    int status = 1;
    try {
        status = round_trip(io, server.port());
#if defined(DUPLEX_ENABLE_TLS)
        // The tls component brings OpenSSL: a verifying client context is made and linked.
        const auto context = duplex::transport::tls::client_context();
        if (!context.ssl) {
            std::fprintf(stderr, "tls: no client context\n");
            status = 1;
        } else {
            std::printf("tls: client context ready\n");
        }
#endif
#if defined(DUPLEX_ENABLE_DEFLATE)
        if (deflate_round_trip() != 0) status = 1;
#endif
    } catch (const std::exception& e) {
        std::fprintf(stderr, "failed: %s\n", e.what());
        status = 1;
    }

    work.reset();
    io.stop();
    runner.join();
    return status;
}
