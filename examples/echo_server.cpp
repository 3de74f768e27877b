// echo_server — echoes every message back: text as text, binary as binary.
//
//   echo_server [--host H] [--port P] [--threads N] [--tls-cert FILE --tls-key FILE]
//
// Defaults: 127.0.0.1, port 9001, one thread, plain ws://. With a certificate and key it
// serves wss:// instead. SIGINT or SIGTERM shuts it down gracefully (close 1001 to everyone).
// It is also the server the interop and conformance tests drive.
#include <duplex/duplex.hpp>

#include <asio/signal_set.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

struct arguments {
    std::string host = "127.0.0.1";
    std::uint16_t port = 9001;
    unsigned threads = 1;
    std::string tls_cert;
    std::string tls_key;
    std::size_t max_message = 16U << 20;
};

[[noreturn]] void usage(const char* program) {
    std::fprintf(stderr,
                 "usage: %s [--host H] [--port P] [--threads N] [--max-message BYTES]"
                 " [--tls-cert FILE --tls-key FILE]\n",
                 program);
    std::exit(2);
}

arguments parse(int argc, char** argv) {
    arguments a;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) usage(argv[0]);
        const std::string value = argv[++i];
        if (flag == "--host")
            a.host = value;
        else if (flag == "--port")
            a.port = static_cast<std::uint16_t>(std::stoul(value));
        else if (flag == "--threads")
            a.threads = static_cast<unsigned>(std::stoul(value));
        else if (flag == "--max-message")
            a.max_message = std::stoull(value);
        else if (flag == "--tls-cert")
            a.tls_cert = value;
        else if (flag == "--tls-key")
            a.tls_key = value;
        else
            usage(argv[0]);
    }
    if (a.threads == 0 || a.tls_cert.empty() != a.tls_key.empty()) usage(argv[0]);
    return a;
}

template <class Transport>
int serve(const arguments& args, typename Transport::context_type context) {
    asio::io_context io;
    duplex::server_options options;
    options.connection.protocol.max_message_size = args.max_message;
    options.connection.protocol.max_frame_size = args.max_message;
    duplex::server<Transport> server(io, options, std::move(context));
    server.handlers().on_message = [](const auto& connection, const duplex::message_view& m) {
        connection->send(m.type, m.data);
    };
    if (auto ec = server.listen(args.host, args.port)) {
        std::fprintf(stderr, "cannot listen on %s:%u: %s\n", args.host.c_str(), args.port,
                     ec.message().c_str());
        return 1;
    }
    // Before announcing the address: a supervisor may signal as soon as it reads it.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { server.stop(); });

    const bool v6 = args.host.find(':') != std::string::npos;
    std::printf("echo server listening on %s://%s%s%s:%u\n", Transport::is_secure ? "wss" : "ws",
                v6 ? "[" : "", args.host.c_str(), v6 ? "]" : "", server.port());
    std::fflush(stdout);

    std::vector<std::thread> pool;
    for (unsigned i = 1; i < args.threads; ++i) pool.emplace_back([&] { io.run(); });
    io.run();
    for (auto& t : pool) t.join();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const arguments args = parse(argc, argv);
    if (args.tls_cert.empty()) return serve<duplex::transport::tcp>(args, {});
#if defined(DUPLEX_ENABLE_TLS)
    try {
        return serve<duplex::transport::tls>(
            args, duplex::transport::tls::server_context(args.tls_cert, args.tls_key));
    } catch (const std::exception& e) {
        std::fprintf(stderr, "TLS setup failed: %s\n", e.what());
        return 1;
    }
#else
    std::fprintf(stderr, "this build has no TLS support (configure with OpenSSL)\n");
    return 1;
#endif
}
