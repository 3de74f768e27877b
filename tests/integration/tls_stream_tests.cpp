// transport::tls's own stream (detail/tls_stream.hpp) in the cases a TLS stream gets wrong:
// both directions busy at once, TLS 1.3 KeyUpdate in the middle of a transfer, session tickets
// after the handshake, the peer's TCP end with and without close_notify, a peer that does not
// speak TLS, and no ciphertext buffers held once the stream is idle. Peers are our own stream
// and Asio's asio::ssl::stream, an independent implementation over the same OpenSSL.
#include "catch.hpp"
#include "test_certificate.hpp"

#if defined(DUPLEX_ENABLE_TLS)
#include <duplex/transport/tls.hpp>

#include <asio/io_context.hpp>
#include <asio/ssl.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <string>
#include <vector>

using duplex::transport::tls;
using namespace std::chrono_literals;
using duplex_test::certificate;
using duplex_test::require_certificate;

namespace {

constexpr auto bound = 10s;
using asio_stream = asio::ssl::stream<asio::ip::tcp::socket>;

std::error_code code(asio::error::basic_errors e) { return asio::error::make_error_code(e); }
std::error_code code(asio::error::misc_errors e) { return asio::error::make_error_code(e); }

// Bytes whose position can be checked: a transfer that reorders, drops or repeats fails.
std::string pattern(std::size_t size, unsigned seed) {
    std::string s(size, '\0');
    for (std::size_t i = 0; i < size; ++i)
        s[i] = static_cast<char>((i * 131 + seed * 7 + i / 4099) & 0xff);
    return s;
}

struct loopback {
    asio::io_context io;
    asio::ip::tcp::socket accepted{io}, connected{io};
    loopback() {
        asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
        connected.connect(acceptor.local_endpoint());
        acceptor.accept(accepted);
    }
};

// Our server stream and a client stream (ours, or Asio's) over loopback, handshaken.
template <class Client>
struct pair_of {
    loopback net;
    tls::context_type server_context = tls::server_context(certificate().cert, certificate().key);
    tls::context_type client_context = tls::client_context_insecure();
    std::optional<tls::stream_type> server;
    std::optional<Client> client;
    std::error_code server_ec = code(asio::error::would_block), client_ec = server_ec;

    explicit pair_of(SSL_SESSION* resume = nullptr, tls::context_type* shared_server = nullptr) {
        if (shared_server) server_context = *shared_server;
        server.emplace(tls::make_stream(std::move(net.accepted), server_context));
        if constexpr (std::is_same_v<Client, tls::stream_type>)
            client.emplace(tls::make_stream(std::move(net.connected), client_context));
        else
            client.emplace(std::move(net.connected), client_context.native());
        if (resume) ::SSL_set_session(client->native_handle(), resume);
        tls::async_handshake(*server, duplex::protocol::role::server, "",
                             [this](std::error_code ec) { server_ec = ec; });
        if constexpr (std::is_same_v<Client, tls::stream_type>)
            tls::async_handshake(*client, duplex::protocol::role::client, "localhost",
                                 [this](std::error_code ec) { client_ec = ec; });
        else
            client->async_handshake(asio::ssl::stream_base::client,
                                    [this](std::error_code ec) { client_ec = ec; });
        net.io.run_for(bound);
        net.io.restart();
    }
};

// Reads everything until `want` bytes or an error, the way a connection does: waits for
// readiness, then decrypts what is there into a buffer lent for that one call.
struct ready_reader {
    tls::stream_type& stream;
    std::size_t want;
    std::string data;
    std::error_code end;
    std::size_t empty_wakeups = 0;

    ready_reader(tls::stream_type& s, std::size_t w) : stream(s), want(w) {}

    void start() {
        tls::async_wait_readable(stream, [this](std::error_code ec) {
            if (ec) {
                end = ec;
                return;
            }
            std::array<char, 16384> buffer;
            const std::size_t n = tls::read_now(stream, asio::buffer(buffer), ec);
            if (ec == asio::error::would_block) {
                ++empty_wakeups;
                return start();
            }
            if (ec) {
                end = ec;
                return;
            }
            data.append(buffer.data(), n);
            if (data.size() < want) start();
        });
    }
};

// The same with async_read_some, optionally asking for a key update after every `rekey`
// bytes read (so our answers and the peer's cross the data in flight).
template <class Stream>
struct some_reader {
    Stream& stream;
    std::size_t want;
    std::size_t rekey = 0;
    std::string data;
    std::error_code end;
    std::array<char, 7000> buffer{};
    std::size_t next_rekey;

    some_reader(Stream& s, std::size_t w, std::size_t r = 0)
        : stream(s), want(w), rekey(r), next_rekey(r) {}

    void start() {
        stream.async_read_some(asio::buffer(buffer), [this](std::error_code ec, std::size_t n) {
            if (ec) {
                end = ec;
                return;
            }
            data.append(buffer.data(), n);
            if (rekey && data.size() >= next_rekey) {
                next_rekey += rekey;
                ::SSL_key_update(stream.native_handle(), SSL_KEY_UPDATE_REQUESTED);
            }
            if (data.size() < want) start();
        });
    }
};

// Writes `bytes` in pieces of `piece`, one write at a time, as a connection does.
template <class Stream>
struct writer {
    Stream& stream;
    std::string bytes;
    std::size_t piece;
    std::size_t sent = 0;
    std::error_code end;
    bool done = false;

    writer(Stream& s, std::string b, std::size_t p) : stream(s), bytes(std::move(b)), piece(p) {}

    void start() {
        if (sent == bytes.size()) {
            done = true;
            return;
        }
        const std::size_t n = std::min(piece, bytes.size() - sent);
        asio::async_write(stream, asio::buffer(bytes.data() + sent, n),
                          [this, n](std::error_code ec, std::size_t) {
                              if (ec) {
                                  end = ec;
                                  return;
                              }
                              sent += n;
                              start();
                          });
    }
};

} // namespace

TEST_CASE("tls stream: 3 MiB each way at once, read by readiness and by read_some",
          "[transport][tls]") {
    require_certificate();
    pair_of<tls::stream_type> p;
    REQUIRE(!p.server_ec);
    REQUIRE(!p.client_ec);
    const std::size_t size = 3 * 1024 * 1024;
    ready_reader server_in{*p.server, size};
    some_reader<tls::stream_type> client_in{*p.client, size};
    writer<tls::stream_type> server_out{*p.server, pattern(size, 1), 100000};
    writer<tls::stream_type> client_out{*p.client, pattern(size, 2), 65536};
    server_in.start();
    client_in.start();
    server_out.start();
    client_out.start();
    p.net.io.run_for(bound);
    CHECK(!server_in.end);
    CHECK(!client_in.end);
    CHECK(server_out.done);
    CHECK(client_out.done);
    CHECK(server_in.data == client_out.bytes);
    CHECK(client_in.data == server_out.bytes);
    // Idle again: no ciphertext held on either side.
    CHECK(p.server->buffered_capacity() == 0);
    CHECK(p.client->buffered_capacity() == 0);
}

TEST_CASE("tls stream: the peer requests key updates mid-stream while both directions are busy",
          "[transport][tls]") {
    require_certificate();
    pair_of<asio_stream> p;
    REQUIRE(!p.server_ec);
    REQUIRE(!p.client_ec);
    REQUIRE(::SSL_version(p.server->native_handle()) == TLS1_3_VERSION);
    const std::size_t size = 2 * 1024 * 1024;
    ready_reader server_in{*p.server, size};
    // Asio's client asks our server to update its keys every 64 KiB it reads; ours has to
    // answer with a KeyUpdate of its own while it keeps writing, or the client fails.
    some_reader<asio_stream> client_in{*p.client, size, 64 * 1024};
    writer<tls::stream_type> server_out{*p.server, pattern(size, 3), 40000};
    writer<asio_stream> client_out{*p.client, pattern(size, 4), 30000};
    server_in.start();
    client_in.start();
    server_out.start();
    client_out.start();
    p.net.io.run_for(bound);
    CHECK(!server_in.end);
    CHECK(!client_in.end);
    CHECK(server_out.done);
    CHECK(client_out.done);
    CHECK(server_in.data == client_out.bytes);
    CHECK(client_in.data == server_out.bytes);
    CHECK(p.server->buffered_capacity() == 0);
}

TEST_CASE("tls stream: our stream requests key updates of Asio's while both directions are busy",
          "[transport][tls]") {
    require_certificate();
    pair_of<asio_stream> p;
    REQUIRE(!p.server_ec);
    REQUIRE(!p.client_ec);
    const std::size_t size = 1024 * 1024;
    some_reader<tls::stream_type> server_in{*p.server, size, 50000};
    some_reader<asio_stream> client_in{*p.client, size};
    writer<tls::stream_type> server_out{*p.server, pattern(size, 5), 16384};
    writer<asio_stream> client_out{*p.client, pattern(size, 6), 16384};
    server_in.start();
    client_in.start();
    server_out.start();
    client_out.start();
    p.net.io.run_for(bound);
    CHECK(server_in.data == client_out.bytes);
    CHECK(client_in.data == server_out.bytes);
    // What came after the last byte read (a KeyUpdate answer) is read by the next wait.
    ready_reader rest{*p.server, 1};
    p.net.io.restart();
    rest.start();
    p.net.io.run_for(100ms);
    CHECK(rest.data.empty());
    CHECK(p.server->buffered_capacity() == 0);
}

TEST_CASE("tls stream: an idle stream holds no ciphertext buffers, a waiting read none either",
          "[transport][tls]") {
    require_certificate();
    pair_of<tls::stream_type> p;
    REQUIRE(!p.server_ec);
    REQUIRE(!p.client_ec);
    CHECK(p.server->buffered_capacity() == 0);
    CHECK(p.client->buffered_capacity() == 0);

    writer<tls::stream_type> hello{*p.client, "hello", 5};
    ready_reader in{*p.server, 5};
    hello.start();
    in.start();
    p.net.io.run_for(bound);
    REQUIRE(in.data == "hello");
    // The client's session tickets came after its handshake: read them while waiting.
    ready_reader waiting{*p.client, 1};
    p.net.io.restart();
    waiting.start();
    p.net.io.run_for(100ms);
    CHECK(waiting.data.empty());
    CHECK(p.server->buffered_capacity() == 0);
    CHECK(p.client->buffered_capacity() == 0);
    CHECK(::SSL_pending(p.client->native_handle()) == 0);
}

TEST_CASE("tls stream: the peer's TCP end is stream_truncated, its close_notify eof",
          "[transport][tls]") {
    require_certificate();
    pair_of<tls::stream_type> p;
    REQUIRE(!p.server_ec);
    REQUIRE(!p.client_ec);
    ready_reader in{*p.server, 100};
    writer<tls::stream_type> out{*p.client, "last words", 64};
    in.start();
    out.start();

    SECTION("TCP closed without close_notify, after data") {
        p.net.io.run_for(200ms);
        p.net.io.restart();
        p.client->next_layer().shutdown(asio::socket_base::shutdown_send); // a FIN, no alert
        p.net.io.run_for(bound);
        CHECK(in.data == "last words");
        CHECK(in.end == std::error_code(asio::ssl::error::stream_truncated));
        CHECK(tls::is_clean_end(in.end));
    }
    SECTION("close_notify, then TCP end") {
        tls::async_shutdown(*p.client, [](std::error_code) {});
        p.net.io.run_for(bound);
        CHECK(in.data == "last words");
        CHECK(in.end == code(asio::error::eof));
    }
    CHECK(p.server->buffered_capacity() == 0);
}

TEST_CASE("tls stream: a peer that sends no TLS fails the handshake or the read with an error",
          "[transport][tls]") {
    require_certificate();
    SECTION("an HTTP request instead of a ClientHello") {
        loopback net;
        auto context = tls::server_context(certificate().cert, certificate().key);
        auto server = tls::make_stream(std::move(net.accepted), context);
        std::error_code ec = code(asio::error::would_block);
        tls::async_handshake(server, duplex::protocol::role::server, "",
                             [&](std::error_code e) { ec = e; });
        asio::write(net.connected, asio::buffer(std::string("GET / HTTP/1.1\r\nHost: x\r\n\r\n" +
                                                            std::string(300, 'x'))));
        net.io.run_for(bound);
        CHECK(ec.category() == asio::error::get_ssl_category());
        CHECK(server.buffered_capacity() == 0);
    }
    SECTION("bytes below TLS after the handshake") {
        pair_of<tls::stream_type> p;
        REQUIRE(!p.server_ec);
        ready_reader in{*p.server, 1};
        in.start();
        asio::write(p.client->next_layer(), asio::buffer(pattern(5000, 9)));
        p.net.io.run_for(bound);
        CHECK(in.data.empty());
        CHECK(in.end.category() == asio::error::get_ssl_category());
        CHECK_FALSE(tls::is_clean_end(in.end));
    }
    SECTION("a torn record, then TCP end") {
        pair_of<tls::stream_type> p;
        REQUIRE(!p.server_ec);
        some_reader<tls::stream_type> in{*p.server, 1};
        in.start();
        asio::write(p.client->next_layer(), asio::buffer(std::string("\x17\x03\x03\x40\x00"
                                                                     "abc",
                                                                     8)));
        p.net.io.run_for(100ms);
        p.net.io.restart();
        p.client->next_layer().shutdown(asio::socket_base::shutdown_send);
        p.net.io.run_for(bound);
        CHECK(in.end == std::error_code(asio::ssl::error::stream_truncated));
    }
}

TEST_CASE("tls stream: a client resumes with the server's session ticket", "[transport][tls]") {
    require_certificate();
    SSL_SESSION* session = nullptr;
    auto server_context = tls::server_context(certificate().cert, certificate().key);
    {
        pair_of<tls::stream_type> first(nullptr, &server_context);
        REQUIRE(!first.client_ec);
        // TLS 1.3 tickets arrive after the handshake: the client reads them with the data.
        writer<tls::stream_type> out{*first.server, "x", 1};
        some_reader<tls::stream_type> in{*first.client, 1};
        out.start();
        in.start();
        first.net.io.run_for(bound);
        REQUIRE(in.data == "x");
        CHECK(::SSL_session_reused(first.client->native_handle()) == 0);
        // OpenSSL marks a session that ended without close_notify as not resumable.
        first.net.io.restart();
        tls::async_shutdown(*first.client, [](std::error_code) {});
        first.net.io.run_for(bound);
        session = ::SSL_get1_session(first.client->native_handle());
        REQUIRE(session != nullptr);
        CHECK(::SSL_SESSION_is_resumable(session) == 1);
        CHECK(::SSL_SESSION_has_ticket(session) == 1);
    }
    pair_of<tls::stream_type> second(session, &server_context);
    ::SSL_SESSION_free(session);
    REQUIRE(!second.client_ec);
    REQUIRE(!second.server_ec);
    CHECK(::SSL_session_reused(second.client->native_handle()) == 1);
}

#endif // DUPLEX_ENABLE_TLS
