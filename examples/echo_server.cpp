// echo_server — echoes every message back: text as text, binary as binary.
//
//   echo_server [--host H] [--port P] [--threads N] [--tls-cert FILE --tls-key FILE]
//               [--deflate on|off] [limit flags, below]
//
// Defaults: 127.0.0.1, port 9001, one thread, plain ws://. With a certificate and key it
// serves wss:// instead. SIGINT or SIGTERM shuts it down gracefully (close 1001 to everyone).
// It is also the server the interop and conformance tests drive. permessage-deflate is accepted
// when the build has zlib (duplex::deflate) unless --deflate off.
//
// Every limit of the library is a flag; each left out keeps the library's default (the
// conformance tests run it with none). Sizes are bytes, times milliseconds (0 turns the ping
// and idle timers off):
//   --max-message  --max-frame  --max-fragments  --fragment-overhead
//   --send-buffer-high-water  --send-buffer-limit  --max-connections
//   --max-head-size  --max-headers  --handshake-timeout  --close-timeout
//   --ping-interval  --pong-timeout  --idle-timeout
#include <duplex/duplex.hpp>

#include <asio/signal_set.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>
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
    duplex::server_options options; // the library's defaults unless a flag says otherwise
};

[[noreturn]] void usage(const char* program) {
    std::fprintf(stderr,
                 "usage: %s [--host H] [--port P] [--threads N] [--tls-cert FILE --tls-key FILE]\n"
                 "  [--deflate on|off]\n"
                 "  [--max-message B] [--max-frame B] [--max-fragments N] [--fragment-overhead B]\n"
                 "  [--send-buffer-high-water B] [--send-buffer-limit B] [--max-connections N]\n"
                 "  [--max-head-size B] [--max-headers N] [--handshake-timeout MS]\n"
                 "  [--close-timeout MS] [--ping-interval MS] [--pong-timeout MS]"
                 " [--idle-timeout MS]\n",
                 program);
    std::exit(2);
}

// A limit flag: true when `flag` names one (and its value was stored).
bool limit_flag(const std::string& flag, const std::string& value, duplex::server_options& o) {
    auto& c = o.connection;
    auto& p = c.protocol;
    const std::size_t n = std::stoull(value);
    const std::chrono::milliseconds ms(static_cast<std::chrono::milliseconds::rep>(n));
    if (flag == "--max-message")
        p.max_message_size = n;
    else if (flag == "--max-frame")
        p.max_frame_size = n;
    else if (flag == "--max-fragments")
        p.max_fragments = n;
    else if (flag == "--fragment-overhead")
        p.fragment_overhead = n;
    else if (flag == "--send-buffer-high-water")
        c.send_buffer_high_water = n;
    else if (flag == "--send-buffer-limit")
        c.send_buffer_limit = n;
    else if (flag == "--max-connections")
        o.max_connections = n;
    else if (flag == "--max-head-size")
        o.http.max_head_size = n;
    else if (flag == "--max-headers")
        o.http.max_headers = n;
    else if (flag == "--handshake-timeout")
        o.handshake_timeout = ms;
    else if (flag == "--close-timeout")
        c.close_timeout = ms;
    else if (flag == "--ping-interval")
        c.ping_interval = ms;
    else if (flag == "--pong-timeout")
        c.pong_timeout = ms;
    else if (flag == "--idle-timeout")
        c.idle_timeout = ms;
    else
        return false;
    return true;
}

arguments parse(int argc, char** argv) {
    arguments a;
    a.options.deflate.enabled = true; // where the build can (duplex::deflate)
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
        else if (flag == "--tls-cert")
            a.tls_cert = value;
        else if (flag == "--tls-key")
            a.tls_key = value;
        else if (flag == "--deflate" && (value == "on" || value == "off"))
            a.options.deflate.enabled = value == "on";
        else if (!limit_flag(flag, value, a.options))
            usage(argv[0]);
    }
    if (a.threads == 0 || a.tls_cert.empty() != a.tls_key.empty()) usage(argv[0]);
    return a;
}

template <class Transport>
int serve(const arguments& args, typename Transport::context_type context) {
    asio::io_context io;
    duplex::server<Transport> server(io, args.options, std::move(context));
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
    arguments args;
    try {
        args = parse(argc, argv);
    } catch (const std::logic_error&) { // a number that does not parse (std::stoull)
        usage(argv[0]);
    }
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
