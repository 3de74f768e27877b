// conformance_client — duplex's side of the client-role conformance tests.
//
//   conformance_client URL [--deflate on|off] [--client-no-context-takeover]
//                          [--server-no-context-takeover] [--server-max-window-bits N]
//
// It behaves like the client Autobahn|Testsuite drives: it connects to one case's URL (the
// test server picks the case from it, e.g. ws://127.0.0.1:PORT/runCase?case=5.19), echoes
// every message back with its own opcode until the connection ends, and exits. Everything
// else — pongs, the close reply, failing the connection on a protocol violation, the limits —
// is the library's own behaviour with its default client_options, which is what the test
// server judges. The flags change only the permessage-deflate offer (offered by default where
// the build has zlib): Autobahn's section 13 offers differ per case, and hc.12 needs a client
// that offers nothing.
//
// Output: "open" once the opening handshake succeeded, then "closed CODE ERROR sent=S
// received=R initiator=I" when the connection ended (ERROR is "-" after a clean closing
// handshake; S and R are the close codes of close_info, I is local, peer or none). Exit status: 0
// when the connection opened (however it ended), 3 when the opening handshake failed, 2 for usage.
// A failed handshake is an expected outcome of some cases, so it has its own status.
#include <duplex/duplex.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

[[noreturn]] void usage(const char* program) {
    std::fprintf(stderr,
                 "usage: %s URL [--deflate on|off] [--client-no-context-takeover]\n"
                 "       [--server-no-context-takeover] [--server-max-window-bits 8-15]\n",
                 program);
    std::exit(2);
}

duplex::protocol::deflate_client_options parse_offer(int argc, char** argv) {
    duplex::protocol::deflate_client_options offer = duplex::client_options{}.deflate;
    for (int i = 2; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--client-no-context-takeover") {
            offer.client_no_context_takeover = true;
        } else if (flag == "--server-no-context-takeover") {
            offer.server_no_context_takeover = true;
        } else if (i + 1 < argc && flag == "--deflate") {
            const std::string value = argv[++i];
            if (value != "on" && value != "off") usage(argv[0]);
            offer.enabled = value == "on";
        } else if (i + 1 < argc && flag == "--server-max-window-bits") {
            const int bits = std::atoi(argv[++i]);
            if (bits < 8 || bits > 15) usage(argv[0]);
            offer.server_max_window_bits = bits;
        } else {
            usage(argv[0]);
        }
    }
    return offer;
}

const char* initiator_name(duplex::close_initiator who) {
    switch (who) {
    case duplex::close_initiator::local: return "local";
    case duplex::close_initiator::peer: return "peer";
    default: return "none";
    }
}

constexpr int handshake_failed_status = 3;

} // namespace

int main(int argc, char** argv) {
    if (argc < 2 || std::string(argv[1]).rfind("--", 0) == 0) usage(argv[0]);
    const std::string url = argv[1];
    using connection_type = duplex::connection<duplex::transport::tcp>;

    duplex::client_options options; // the defaults: what the suite checks
    options.deflate = parse_offer(argc, argv);

    asio::io_context io;
    int status = 0;
    duplex::async_connect<duplex::transport::tcp>(
        io.get_executor(), url, options,
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
                std::printf("closed %u %s sent=%u received=%u initiator=%s\n",
                            static_cast<unsigned>(info.code),
                            info.error ? info.error.message().c_str() : "-",
                            static_cast<unsigned>(info.sent_code),
                            static_cast<unsigned>(info.received_code),
                            initiator_name(info.initiator));
                std::fflush(stdout);
            };
            connection->start(std::move(handlers));
        });
    // Returns once the connection has ended: nothing else keeps the io_context busy.
    io.run();
    return status;
}
