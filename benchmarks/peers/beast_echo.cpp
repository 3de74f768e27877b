// beast_echo — Boost.Beast as a benchmark peer, written the way Beast's own asynchronous
// examples are: one session object per connection, async_read into a flat_buffer, async_write
// of the same buffer. Same options as every peer: no compression, 16 MiB message limit,
// TCP_NODELAY, one thread. --deflate accepts permessage-deflate with the settings every peer's
// --deflate shares: zlib level 6, memLevel 8, context takeover, every message compressed (this
// Beast has no size threshold).
//
//   beast_echo [--port P] [--deflate]   (0 picks a free port; prints "listening on PORT")
//
// Paths: / echoes; /sub joins the broadcast room; each message on /pub is sent to every
// member. Beast has no rooms: the payload is shared, and each member's stream frames it.
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include "../common/open_files.hpp"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <unordered_set>

namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr std::size_t shared_message_limit = 16U << 20;
bool deflate = false; // --deflate

class session;

// The broadcast room: every thing runs on the one io_context thread, so no lock.
struct room {
    std::unordered_set<session*> members;
    void publish(const std::shared_ptr<const std::string>& payload, bool text);
};

class session : public std::enable_shared_from_this<session> {
public:
    session(tcp::socket&& socket, room& members) : ws_(std::move(socket)), room_(members) {}

    ~session() { room_.members.erase(this); }

    void run() {
        // Read the request first, as Beast's advanced server does, to route on its target.
        http::async_read(ws_.next_layer(), buffer_, request_,
                         beast::bind_front_handler(&session::on_request, shared_from_this()));
    }

    void deliver(const std::shared_ptr<const std::string>& payload, bool text) {
        queue_.push_back({payload, text});
        if (queue_.size() == 1) write_next();
    }

private:
    enum class kind { echo, subscriber, publisher };

    void on_request(beast::error_code ec, std::size_t) {
        if (ec || !websocket::is_upgrade(request_)) return;
        const beast::string_view target = request_.target();
        what_ = target == "/sub"   ? kind::subscriber
                : target == "/pub" ? kind::publisher
                                   : kind::echo;
        ws_.set_option(websocket::stream_base::timeout::suggested(beast::role_type::server));
        ws_.read_message_max(shared_message_limit);
        ws_.auto_fragment(false);
        if (deflate) {
            websocket::permessage_deflate pmd;
            pmd.server_enable = true;
            pmd.compLevel = 6;
            pmd.memLevel = 8;
            ws_.set_option(pmd);
        }
        ws_.async_accept(request_,
                         beast::bind_front_handler(&session::on_accept, shared_from_this()));
    }

    void on_accept(beast::error_code ec) {
        if (ec) return;
        request_ = {}; // the upgrade request is not needed any more: keep idle sessions small
        if (what_ == kind::subscriber) room_.members.insert(this);
        read();
    }

    void read() {
        ws_.async_read(buffer_, beast::bind_front_handler(&session::on_read, shared_from_this()));
    }

    void on_read(beast::error_code ec, std::size_t) {
        if (ec) {
            room_.members.erase(this);
            return;
        }
        if (what_ == kind::echo) {
            ws_.text(ws_.got_text());
            ws_.async_write(buffer_.data(),
                            beast::bind_front_handler(&session::on_echoed, shared_from_this()));
            return;
        }
        if (what_ == kind::publisher)
            room_.publish(
                std::make_shared<const std::string>(beast::buffers_to_string(buffer_.data())),
                ws_.got_text());
        buffer_.consume(buffer_.size());
        read();
    }

    void on_echoed(beast::error_code ec, std::size_t) {
        if (ec) return;
        buffer_.consume(buffer_.size());
        read();
    }

    // A websocket::stream allows one write at a time: a member's messages wait in a queue.
    void write_next() {
        ws_.text(queue_.front().text);
        ws_.async_write(net::buffer(*queue_.front().payload),
                        beast::bind_front_handler(&session::on_delivered, shared_from_this()));
    }

    void on_delivered(beast::error_code ec, std::size_t) {
        if (ec) {
            room_.members.erase(this);
            queue_.clear();
            return;
        }
        queue_.pop_front();
        if (!queue_.empty()) write_next();
    }

    struct outgoing {
        std::shared_ptr<const std::string> payload;
        bool text;
    };

    websocket::stream<beast::tcp_stream> ws_;
    room& room_;
    beast::flat_buffer buffer_;
    http::request<http::string_body> request_;
    kind what_ = kind::echo;
    std::deque<outgoing> queue_;
};

void room::publish(const std::shared_ptr<const std::string>& payload, bool text) {
    for (session* member : members) member->deliver(payload, text);
}

class listener : public std::enable_shared_from_this<listener> {
public:
    listener(net::io_context& io, tcp::endpoint endpoint)
        : io_(io), acceptor_(net::make_strand(io)) {
        acceptor_.open(endpoint.protocol());
        acceptor_.set_option(net::socket_base::reuse_address(true));
        acceptor_.bind(endpoint);
        acceptor_.listen(net::socket_base::max_listen_connections);
    }

    unsigned short port() const { return acceptor_.local_endpoint().port(); }

    void accept() {
        acceptor_.async_accept(net::make_strand(io_),
                               beast::bind_front_handler(&listener::on_accept, shared_from_this()));
    }

private:
    void on_accept(beast::error_code ec, tcp::socket socket) {
        if (!ec) {
            socket.set_option(tcp::no_delay(true), ec);
            std::make_shared<session>(std::move(socket), room_)->run();
        }
        accept();
    }

    net::io_context& io_;
    tcp::acceptor acceptor_;
    room room_;
};

} // namespace

int main(int argc, char** argv) {
    unsigned short port = 9303;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = static_cast<unsigned short>(std::strtoul(argv[++i], nullptr, 10));
        } else if (std::strcmp(argv[i], "--deflate") == 0) {
            deflate = true;
        } else {
            std::fprintf(stderr, "usage: %s [--port P] [--deflate]\n", argv[0]);
            return 2;
        }
    }
    bench::raise_open_file_limit();

    net::io_context io(1);
    try {
        auto server =
            std::make_shared<listener>(io, tcp::endpoint(net::ip::address_v4::loopback(), port));
        server->accept();
        std::printf("listening on %u\n", server->port());
        std::fflush(stdout);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "beast_echo: cannot listen: %s\n", e.what());
        return 1;
    }
    net::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](beast::error_code, int) { io.stop(); });
    io.run();
    return 0;
}
