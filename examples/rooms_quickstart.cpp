// rooms_quickstart — the complete example of docs/rooms.md.
//
// Clients connect to ws://127.0.0.1:9002/?room=NAME and join that room (default "lobby").
// A message from one member goes to the others in its room; a client that sends "/rooms"
// gets the list of rooms it is in, and a client that joins gets the last 20 messages of
// the room first, so that it can catch up.
//
//   rooms_quickstart [port]
#include <duplex/duplex.hpp>

#include <asio/io_context.hpp>
#include <asio/signal_set.hpp>

#include <cstdio>
#include <cstdlib>
#include <string>

using server_type = duplex::server<duplex::transport::tcp, std::string>; // user data: the room
using connection_type = server_type::connection_type;

int main(int argc, char** argv) {
    const auto port = static_cast<std::uint16_t>(argc > 1 ? std::atoi(argv[1]) : 9002);
    asio::io_context io;
    server_type server(io);

    duplex::rooms_options options;
    options.history_size = 20;
    duplex::rooms<connection_type> rooms(options);

    rooms.on_presence([](const duplex::presence_event<connection_type>& e) {
        std::printf("%s %s %s (%zu members)\n",
                    e.connection->remote_endpoint().address().to_string().c_str(),
                    e.kind == duplex::presence_kind::joined ? "joined" : "left",
                    std::string(e.room).c_str(), e.member_count);
    });

    auto& h = server.handlers();
    h.on_upgrade = [](const duplex::request_info& request, std::string& room) {
        room = std::string(request.query_param("room").value_or("lobby"));
        if (room.empty() || room.size() > 64)
            return duplex::upgrade_decision::reject(400, "bad room");
        return duplex::upgrade_decision::accept();
    };
    h.on_open = [&](const std::shared_ptr<connection_type>& c) {
        for (const auto& entry : rooms.history(c->data())) c->send(entry.message); // catch up
        rooms.join(c, c->data());
    };
    h.on_message = [&](const std::shared_ptr<connection_type>& c, const duplex::message_view& m) {
        if (m.data == "/rooms") {
            std::string list;
            for (const auto& name : rooms.rooms_of(*c)) list += name + "\n";
            c->send_text(list);
            return;
        }
        rooms.publish(c->data(), m.type, m.data, c.get()); // to everyone else in the room
    };
    // No on_close needed: a connection leaves its rooms when it closes.

    if (auto ec = server.listen("127.0.0.1", port)) {
        std::fprintf(stderr, "listen: %s\n", ec.message().c_str());
        return 1;
    }
    std::printf("rooms_quickstart on ws://127.0.0.1:%u/?room=lobby\n", server.port());
    std::fflush(stdout);
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { server.stop(); });
    io.run();
}
