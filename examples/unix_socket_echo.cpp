// unix_socket_echo — a WebSocket echo server on a Unix-domain socket, as behind a local proxy.
//
// With no arguments the program listens on a socket file, connects to itself through a
// ws+unix: URL, sends one message, prints the echo and exits (the socket file is removed).
// With `--serve` it serves until SIGINT or SIGTERM, then stops gracefully (close 1001 to every
// client) and removes the socket file. With `--connect URL` it is only a client: it sends one
// message to the ws+unix: URL and prints the echo. docs/guide.md section 9 shows an nginx
// configuration in front of the server.
//
//   unix_socket_echo [--serve] [--path /tmp/duplex-echo.sock] [--mode 0660]
//   unix_socket_echo --connect ws+unix:///tmp/duplex-echo.sock:/echo
#include <duplex/duplex.hpp>
#include <duplex/transport/unix_socket.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>
#include <asio/use_future.hpp>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

using duplex::transport::unix_socket;

namespace {

// Sends one text message to `url` and prints the echo; 0 when it came back unchanged.
int echo_once(asio::io_context& io, const std::string& url) {
    const std::string text = "hello over a Unix socket";
    try {
        auto c =
            duplex::async_connect<unix_socket>(io.get_executor(), url, {}, asio::use_future).get();
        c->send_text(text);
        const duplex::message reply = c->async_read(asio::use_future).get();
        std::printf("echo: %s\n", reply.data.c_str());
        c->async_close(1000, "done", asio::use_future).get();
        return reply.data == text ? 0 : 1;
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "failed: %s\n", e.what());
        return 1;
    }
}

} // namespace

int main(int argc, char** argv) {
    bool serve_only = false;
    std::string connect_url;
    std::string path = "/tmp/duplex-echo.sock";
    unix_socket::listen_options listen_options; // mode 0660: the owner and the group connect
    for (int i = 1; i < argc; ++i) {
        const bool has_value = i + 1 < argc;
        if (std::strcmp(argv[i], "--serve") == 0) {
            serve_only = true;
        } else if (std::strcmp(argv[i], "--connect") == 0 && has_value) {
            connect_url = argv[++i];
        } else if (std::strcmp(argv[i], "--path") == 0 && has_value) {
            path = argv[++i];
        } else if (std::strcmp(argv[i], "--mode") == 0 && has_value) {
            listen_options.permissions = static_cast<unsigned>(std::strtoul(argv[++i], nullptr, 8));
        } else {
            std::fprintf(stderr,
                         "usage: %s [--serve] [--path FILE] [--mode OCTAL] | --connect URL\n",
                         argv[0]);
            return 2;
        }
    }

    asio::io_context io;
    if (!connect_url.empty()) {
        auto work = asio::make_work_guard(io);
        std::thread io_thread([&] { io.run(); });
        const int status = echo_once(io, connect_url);
        work.reset();
        io_thread.join();
        return status;
    }

    duplex::server<unix_socket> server(io);
    server.handlers().on_upgrade = [](const duplex::request_info& request, duplex::no_user_data&) {
        // No IP peer on a Unix socket: a proxy says who the client is.
        const auto client = request.header("X-Forwarded-For");
        std::printf("upgrade %.*s from %.*s\n", static_cast<int>(request.path().size()),
                    request.path().data(), client ? static_cast<int>(client->size()) : 5,
                    client ? client->data() : "local");
        std::fflush(stdout);
        return duplex::upgrade_decision::accept();
    };
    server.handlers().on_message = [](auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
    };
    if (const auto ec = server.listen(path, listen_options)) {
        std::fprintf(stderr, "cannot listen on %s: %s\n", path.c_str(), ec.message().c_str());
        return 1;
    }
    std::printf("listening on %s\n", path.c_str());
    std::fflush(stdout); // whoever waits for that line may be reading a pipe

    if (serve_only) {
        asio::signal_set signals(io, SIGINT, SIGTERM);
        signals.async_wait([&](std::error_code, int) { server.stop(); });
        io.run(); // returns once stop() has closed everything
        return 0;
    }
    std::thread io_thread([&] { io.run(); });
    const int status = echo_once(io, "ws+unix://" + path + ":/echo");
    server.stop();
    io_thread.join();
    return status;
}
