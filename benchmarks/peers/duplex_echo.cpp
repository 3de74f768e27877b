// duplex_echo — duplex as a benchmark peer: an echo server with the options every peer shares
// (no compression, 16 MiB message limit, TCP_NODELAY), plus a broadcast room.
//
//   duplex_echo [--port P] [--threads N] [--hold-read-buffer] [--deflate]
//               [--no-context-takeover]
//                                      (0 picks a free port; prints "listening on PORT")
//
// --deflate (where built with zlib) accepts permessage-deflate with the settings every peer's
// --deflate shares: zlib level 6, memLevel 8, context takeover, every message compressed
// (threshold 0). --no-context-takeover adds server_no_context_takeover to every agreement: no
// compressor is kept between messages, and a room's message is compressed once for all members.
//
// Paths: / echoes every message, text as text, binary as binary; /sub joins the room "bench";
// each message on /pub is published to that room through duplex::rooms (encoded once, the
// one frame shared by every member's write queue). One thread unless --threads says more.
#include <duplex/duplex.hpp>
#include <duplex/rooms.hpp>

#include <asio/signal_set.hpp>

#include "../common/open_files.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

enum class peer_role { echo, subscriber, publisher };

struct peer_data {
    peer_role role = peer_role::echo;
};

using server_type = duplex::server<duplex::transport::tcp, peer_data>;

constexpr std::size_t shared_message_limit = 16U << 20;

} // namespace

int main(int argc, char** argv) {
    std::uint16_t port = 9301;
    unsigned threads = 1;
    bool hold_read_buffer = false; // connection_options::hold_read_buffer
    bool deflate = false;
    bool no_context_takeover = false;
    for (int i = 1; i < argc; ++i) {
        const bool has_value = i + 1 < argc;
        if (has_value && std::strcmp(argv[i], "--port") == 0) {
            port = static_cast<std::uint16_t>(std::strtoul(argv[++i], nullptr, 10));
        } else if (has_value && std::strcmp(argv[i], "--threads") == 0) {
            threads = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 10));
        } else if (std::strcmp(argv[i], "--hold-read-buffer") == 0) {
            hold_read_buffer = true;
        } else if (std::strcmp(argv[i], "--deflate") == 0 && duplex::protocol::deflate_supported) {
            deflate = true;
        } else if (std::strcmp(argv[i], "--no-context-takeover") == 0) {
            no_context_takeover = true;
        } else {
            std::fprintf(stderr,
                         "usage: %s [--port P] [--threads N] [--hold-read-buffer] [--deflate] "
                         "[--no-context-takeover]\n",
                         argv[0]);
            return 2;
        }
    }
    if (threads == 0) threads = 1;
    bench::raise_open_file_limit();

    // The concurrency hint lets Asio skip locking when there is one thread (Beast's examples
    // pass it too).
    asio::io_context io(static_cast<int>(threads));
    duplex::server_options options;
    options.max_connections = 1000000; // the benchmark decides how many
    options.tcp_no_delay = true;
    options.connection.protocol.max_message_size = shared_message_limit;
    options.connection.protocol.max_frame_size = shared_message_limit;
    options.connection.hold_read_buffer = hold_read_buffer;
    options.deflate.enabled = deflate;
    options.deflate.server_no_context_takeover = no_context_takeover;
    options.connection.protocol.compression.level = 6;
    options.connection.protocol.compression.mem_level = 8;
    options.connection.protocol.compression.threshold = 0;

    // Declared before the server: members leave the rooms as the server closes them.
    duplex::rooms<server_type::connection_type> rooms;
    server_type server(io, options);
    server.handlers().on_upgrade = [](const duplex::request_info& request, peer_data& data) {
        if (request.path() == "/sub")
            data.role = peer_role::subscriber;
        else if (request.path() == "/pub")
            data.role = peer_role::publisher;
        return duplex::upgrade_decision::accept();
    };
    server.handlers().on_open = [&rooms](const server_type::connection_ptr& c) {
        if (c->data().role == peer_role::subscriber) rooms.join(c, "bench");
    };
    server.handlers().on_message = [&rooms](const server_type::connection_ptr& c,
                                            const duplex::message_view& m) {
        if (c->data().role == peer_role::publisher)
            rooms.publish("bench", m.type, m.data);
        else
            c->send(m.type, m.data);
    };
    if (auto ec = server.listen("127.0.0.1", port)) {
        std::fprintf(stderr, "duplex_echo: cannot listen on port %u: %s\n", port,
                     ec.message().c_str());
        return 1;
    }
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { server.stop(std::chrono::milliseconds(200)); });
    std::printf("listening on %u\n", server.port());
    std::fflush(stdout);

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < threads; ++i) pool.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
    return 0;
}
