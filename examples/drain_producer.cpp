// drain_producer — a server that streams as fast as each client reads, and no faster.
//
// Every client that connects gets `count` numbered messages of `size` bytes. The server sends
// until send() answers backpressure, then stops and waits for on_drain to resume: a slow
// client gets its stream slowly, and the server never holds more than about
// send_buffer_high_water bytes for it. With no arguments the program also runs one client
// itself, reads everything, checks the order and exits; with `--serve` it only serves.
//
//   drain_producer [--serve] [--port 9003] [--count 10000] [--size 4096]
#include <duplex/duplex.hpp>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <thread>

using server_type = duplex::server<duplex::transport::tcp, std::size_t>; // user data: next index
using connection_type = server_type::connection_type;

int main(int argc, char** argv) {
    bool serve_only = false;
    std::uint16_t port = 9003;
    std::size_t count = 10000;
    std::size_t size = 4096;
    for (int i = 1; i < argc; ++i) {
        const bool has_value = i + 1 < argc;
        if (std::strcmp(argv[i], "--serve") == 0)
            serve_only = true;
        else if (std::strcmp(argv[i], "--port") == 0 && has_value)
            port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
        else if (std::strcmp(argv[i], "--count") == 0 && has_value)
            count = std::strtoull(argv[++i], nullptr, 10);
        else if (std::strcmp(argv[i], "--size") == 0 && has_value)
            size = std::strtoull(argv[++i], nullptr, 10);
        else {
            std::fprintf(stderr, "usage: %s [--serve] [--port P] [--count N] [--size BYTES]\n",
                         argv[0]);
            return 2;
        }
    }

    asio::io_context io;
    duplex::server_options options;
    options.connection.send_buffer_high_water = 256 * 1024; // pause past 256 KiB queued
    options.connection.send_buffer_low_water = 64 * 1024;   // resume at 64 KiB
    server_type server(io, options);
    const std::string filler(size, 'x');
    std::size_t pauses = 0; // io runs on one thread: no lock needed

    // The producer loop: send until backpressure, then return; on_drain calls it again.
    auto produce = [&](const std::shared_ptr<connection_type>& c) {
        std::size_t& next = c->data();
        while (next < count) {
            const auto status = c->send_text(std::to_string(next++) + " " + filler);
            if (status == duplex::send_status::backpressure) {
                ++pauses;
                return; // queued; on_drain will call us when the queue is low again
            }
            if (status != duplex::send_status::ok) return; // closed or dropped: stop
        }
        c->close(); // everything queued; the close frame goes out after it
    };
    server.handlers().on_open = produce;
    server.handlers().on_drain = produce;

    if (auto ec = server.listen("127.0.0.1", port)) {
        std::fprintf(stderr, "listen: %s\n", ec.message().c_str());
        return 1;
    }
    std::printf("drain_producer: ws://127.0.0.1:%u/ sends %zu messages of %zu bytes\n",
                static_cast<unsigned>(server.port()), count, size);
    if (serve_only) {
        io.run();
        return 0;
    }

    std::thread server_thread([&] { io.run(); });
    asio::io_context client_io;
    auto work = asio::make_work_guard(client_io);
    std::thread client_thread([&] { client_io.run(); });
    bool ok = true;
    std::size_t received = 0;
    try {
        auto c = duplex::async_connect<duplex::transport::tcp>(
                     client_io.get_executor(),
                     "ws://127.0.0.1:" + std::to_string(server.port()) + "/", {}, asio::use_future)
                     .get();
        for (;;) {
            const duplex::message m = c->async_read(asio::use_future).get(); // throws at close
            if (std::strtoull(m.data.c_str(), nullptr, 10) != received) ok = false;
            ++received;
        }
    } catch (const std::system_error&) {
        // The server closed after the last message.
    }
    server.stop();
    server_thread.join();
    work.reset();
    client_thread.join();
    ok = ok && received == count;
    std::printf("received %zu of %zu in order: %s; the server paused %zu times\n", received, count,
                ok ? "yes" : "no", pauses);
    return ok ? 0 : 1;
}
