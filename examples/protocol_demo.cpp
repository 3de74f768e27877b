// protocol_demo — a WebSocket client and server talking through memory, no sockets.
//
// Shows the sans-I/O protocol layer end to end: the opening handshake, a text message split
// into fragments, a binary message, a ping answered automatically, and the closing handshake.
// Every byte that would cross the network is printed, so the frames of RFC 6455 can be read
// off the screen. Run: scripts/demo.sh (or build/dev/examples/protocol_demo).
#include <duplex/protocol.hpp>

#include <cstdio>
#include <string>

namespace proto = duplex::protocol;

namespace {

void dump(const char* direction, std::string_view bytes) {
    std::printf("%s %zu bytes:", direction, bytes.size());
    const std::size_t shown = bytes.size() < 24 ? bytes.size() : 24;
    for (std::size_t i = 0; i < shown; ++i)
        std::printf(" %02x", static_cast<unsigned>(static_cast<unsigned char>(bytes[i])));
    std::printf("%s\n", shown < bytes.size() ? " ..." : "");
}

const char* describe(proto::event_type type) {
    switch (type) {
    case proto::event_type::message: return "message";
    case proto::event_type::ping: return "ping";
    case proto::event_type::pong: return "pong";
    case proto::event_type::close: return "close";
    case proto::event_type::error: return "error";
    default: return "other";
    }
}

// Moves everything `from` has queued into `to`, printing the bytes and the events they make.
void deliver(const char* direction, proto::session& from, proto::session& to, const char* name) {
    std::string wire(from.pending_output());
    from.consume_output(wire.size());
    if (wire.empty()) return;
    dump(direction, wire);
    char* data = wire.data();
    std::size_t size = wire.size();
    for (;;) {
        const auto r = to.receive(data, size);
        data += r.consumed;
        size -= r.consumed;
        if (r.ev.type == proto::event_type::none) break;
        std::printf("  %s got %s", name, describe(r.ev.type));
        if (r.ev.type == proto::event_type::close || r.ev.type == proto::event_type::error)
            std::printf(" code %u", static_cast<unsigned>(r.ev.code));
        if (r.ev.op == proto::opcode::text || r.ev.type != proto::event_type::message)
            std::printf(" \"%.*s\"", static_cast<int>(r.ev.data.size()), r.ev.data.data());
        else
            std::printf(" of %zu bytes", r.ev.data.size());
        std::printf("\n");
    }
}

} // namespace

int main() {
    proto::random_source random;

    // Opening handshake (RFC 6455 section 4).
    std::array<std::uint8_t, 16> nonce;
    random.fill(nonce.data(), nonce.size());
    proto::client_options request;
    request.host = "chat.example:9001";
    request.target = "/room?name=demo";
    request.subprotocols = {"chat.v2", "chat.v1"};
    proto::client_handshake client_hs(request, nonce);
    std::printf("--- client request\n%s", client_hs.request().c_str());

    proto::server_handshake::options server_options;
    server_options.select_subprotocol = [](const std::vector<std::string_view>& offered) {
        for (auto p : offered)
            if (p == "chat.v1") return std::string(p);
        return std::string();
    };
    proto::server_handshake server_hs(server_options);
    const auto parsed = server_hs.feed(client_hs.request());
    if (parsed.status != proto::progress::done) {
        std::printf("server refused: %s\n", parsed.error.message().c_str());
        return 1;
    }
    std::printf("--- server sees path %.*s, subprotocols offered: %zu\n",
                static_cast<int>(server_hs.upgrade().path.size()), server_hs.upgrade().path.data(),
                server_hs.upgrade().subprotocols.size());
    const std::string response = server_hs.accept();
    std::printf("--- server response\n%s", response.c_str());
    const auto answered = client_hs.feed(response);
    if (answered.status != proto::progress::done) {
        std::printf("client refused the response: %s\n", answered.error.message().c_str());
        return 1;
    }
    std::printf("--- handshake done, subprotocol %.*s\n\n",
                static_cast<int>(client_hs.subprotocol().size()), client_hs.subprotocol().data());

    // Data transfer (RFC 6455 sections 5 and 6).
    proto::session client(proto::role::client);
    proto::session server(proto::role::server);

    (void)client.send(proto::opcode::text, "Hello, ", false); // a fragmented text message
    (void)client.send(proto::opcode::continuation, "world", true);
    deliver("client -> server (masked)", client, server, "server");

    (void)server.send_binary(std::string(300, '\x2a'));
    deliver("server -> client (unmasked)", server, client, "client");

    (void)client.ping("are you there?");
    deliver("client -> server", client, server, "server");
    deliver("server -> client (automatic pong)", server, client, "client");

    // Closing handshake (RFC 6455 section 7): the server starts it, the client echoes it.
    (void)server.close(proto::close_code::going_away, "demo over");
    deliver("server -> client", server, client, "client");
    deliver("client -> server (echo)", client, server, "server");
    std::printf("\nboth closed: %s\n", client.state() == proto::session_state::closed &&
                                               server.state() == proto::session_state::closed
                                           ? "yes"
                                           : "no");
    return 0;
}
