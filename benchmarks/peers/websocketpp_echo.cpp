// websocketpp_echo — websocketpp as a benchmark peer, as its echo_server example is written
// (send(hdl, payload, opcode) from the message handler), with logging off and the options
// every peer shares: no compression, 16 MiB message limit, TCP_NODELAY, one thread.
//
//   websocketpp_echo [--port P]      (0 picks a free port; prints "listening on PORT")
//
// Paths: / echoes; /sub joins the broadcast room; each message on /pub is sent to every
// member, by a loop over the members (websocketpp has no rooms).
#include <websocketpp/config/asio_no_tls.hpp>
#include <websocketpp/server.hpp>

#include "../common/open_files.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>

namespace {

using server_type = websocketpp::server<websocketpp::config::asio>;
using handle = websocketpp::connection_hdl;

constexpr std::size_t shared_message_limit = 16U << 20;

} // namespace

int main(int argc, char** argv) {
    unsigned short port = 9304;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = static_cast<unsigned short>(std::strtoul(argv[++i], nullptr, 10));
        } else {
            std::fprintf(stderr, "usage: %s [--port P]\n", argv[0]);
            return 2;
        }
    }
    bench::raise_open_file_limit();

    server_type server;
    std::set<handle, std::owner_less<handle>> members;
    // Logging is on by default and would dominate: a production server turns it off too.
    server.clear_access_channels(websocketpp::log::alevel::all);
    server.clear_error_channels(websocketpp::log::elevel::all);
    server.init_asio();
    server.set_reuse_addr(true);
    server.set_max_message_size(shared_message_limit);
    server.set_listen_backlog(4096);
    // After accept: the socket init handler runs before the socket is open.
    server.set_tcp_post_init_handler([&](handle h) {
        boost::system::error_code ignored;
        server.get_con_from_hdl(h)->get_socket().set_option(boost::asio::ip::tcp::no_delay(true),
                                                            ignored);
    });
    // Several publishers may publish at once (wsload broadcast --publishers).
    std::set<handle, std::owner_less<handle>> publishers;
    server.set_open_handler([&](handle h) {
        const std::string& resource = server.get_con_from_hdl(h)->get_resource();
        if (resource == "/sub") members.insert(h);
        if (resource == "/pub") publishers.insert(h);
    });
    server.set_close_handler([&](handle h) {
        members.erase(h);
        publishers.erase(h);
    });
    server.set_fail_handler([&](handle h) {
        members.erase(h);
        publishers.erase(h);
    });
    server.set_message_handler([&](handle h, server_type::message_ptr message) {
        websocketpp::lib::error_code ec;
        if (publishers.count(h) != 0) {
            for (const handle& member : members)
                server.send(member, message->get_payload(), message->get_opcode(), ec);
        } else {
            server.send(h, message->get_payload(), message->get_opcode(), ec);
        }
    });

    websocketpp::lib::error_code ec;
    server.listen(boost::asio::ip::tcp::endpoint(boost::asio::ip::address_v4::loopback(), port),
                  ec);
    if (!ec) server.start_accept(ec);
    if (ec) {
        std::fprintf(stderr, "websocketpp_echo: cannot listen: %s\n", ec.message().c_str());
        return 1;
    }
    boost::system::error_code endpoint_error;
    std::printf("listening on %u\n", server.get_local_endpoint(endpoint_error).port());
    std::fflush(stdout);
    server.run();
    return 0;
}
