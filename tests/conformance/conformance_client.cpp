// conformance_client — duplex's side of the client-role conformance tests.
//
//   conformance_client URL [--max-message BYTES]
//
// It behaves like the client Autobahn|Testsuite drives: it connects to one case's URL (the
// test server picks the case from it, e.g. ws://127.0.0.1:PORT/runCase?case=5.19), echoes
// every message back with its own opcode until the connection ends, and exits. Everything
// else — pongs, the close reply, failing the connection on a protocol violation — is the
// library's own behaviour, which is what the test server judges.
//
// Output: "open" once the opening handshake succeeded, then "closed CODE ERROR" when the
// connection ended (ERROR is "-" after a clean closing handshake). Exit status: 0 when the
// connection opened (however it ended), 3 when the opening handshake failed, 2 for usage.
// A failed handshake is an expected outcome of some cases, so it has its own status.
#include <duplex/duplex.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

struct arguments {
    std::string url;
    std::size_t max_message = 8U << 20;
};

[[noreturn]] void usage(const char* program) {
    std::fprintf(stderr, "usage: %s URL [--max-message BYTES]\n", program);
    std::exit(2);
}

arguments parse(int argc, char** argv) {
    arguments a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        if (arg == "--max-message" && i + 1 < argc)
            a.max_message = std::stoull(argv[++i]);
        else if (arg.rfind("--", 0) == 0 || !a.url.empty())
            usage(argv[0]);
        else
            a.url = arg;
    }
    if (a.url.empty()) usage(argv[0]);
    return a;
}

constexpr int handshake_failed_status = 3;

} // namespace

int main(int argc, char** argv) {
    const arguments args = parse(argc, argv);
    using connection_type = duplex::connection<duplex::transport::tcp>;

    duplex::client_options options;
    // The same limits as the echo server in the server-role run, so that section 9 (large
    // messages) asks the same of both roles.
    options.connection.protocol.max_message_size = args.max_message;
    options.connection.protocol.max_frame_size = args.max_message;

    asio::io_context io;
    int status = 0;
    duplex::async_connect<duplex::transport::tcp>(
        io.get_executor(), args.url, options,
        [&status](std::error_code ec, std::shared_ptr<connection_type> connection) {
            if (ec) {
                std::printf("handshake failed: %s\n", ec.message().c_str());
                std::fflush(stdout);
                status = handshake_failed_status;
                return;
            }
            std::printf("open\n");
            std::fflush(stdout);
            duplex::connection_handlers<connection_type> handlers;
            handlers.on_message = [](const auto& c, const duplex::message_view& m) {
                c->send(m.type, m.data);
            };
            handlers.on_close = [](const auto&, const duplex::close_info& info) {
                std::printf("closed %u %s\n", static_cast<unsigned>(info.code),
                            info.error ? info.error.message().c_str() : "-");
                std::fflush(stdout);
            };
            connection->start(std::move(handlers));
        });
    // Returns once the connection has ended: nothing else keeps the io_context busy.
    io.run();
    return status;
}
