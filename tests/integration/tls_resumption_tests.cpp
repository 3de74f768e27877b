// TLS session resumption from duplex's clients (detail/tls_session_cache.hpp, transport/tls.hpp)
// against duplex's server over real loopback sockets: a second connection to the same host name
// and port resumes, a different host name or client_options::tls_resumption = false does not,
// the cache stays within its bounds, the sessions of a connection that ended without
// close_notify stay resumable, and the reconnecting client resumes after a drop. Whether a
// handshake resumed is counted by the client context (SSL_session_reused after each handshake).
#include "catch.hpp"
#include "harness.hpp"
#include "test_certificate.hpp"

#if defined(DUPLEX_ENABLE_TLS)
#include <duplex/duplex.hpp>
#include <duplex/transport/tls.hpp>

#include <asio/use_future.hpp>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

using namespace test;
using duplex::transport::tls;
using wss_server = duplex::server<tls>;
using wss_connection = duplex::connection<tls>;

namespace {

template <class Future>
auto get_within(Future&& future, std::chrono::milliseconds limit = patience) {
    REQUIRE(future.wait_for(limit) == std::future_status::ready);
    return future.get();
}

// A duplex wss:// server with the test certificate (localhost and 127.0.0.1) on 127.0.0.1.
struct tls_echo_server {
    explicit tls_echo_server(asio::io_context& io, int max_version = 0)
        : server(io, {}, server_context(max_version)) {
        server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
            c->send(m.type, m.data);
        };
        REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    }
    static tls::context_type server_context(int max_version) {
        auto context = tls::server_context(certificate().cert, certificate().key);
        if (max_version) ::SSL_CTX_set_max_proto_version(context.ssl->native_handle(), max_version);
        return context;
    }
    std::string url(const std::string& host) const {
        return "wss://" + host + ":" + std::to_string(server.port()) + "/";
    }
    wss_server server;
};

// A client context that verifies the test certificate (and keeps sessions, by default).
tls::context_type trusting_context() {
    auto context = tls::client_context();
    context.load_verify_file(certificate().cert);
    return context;
}

// Connects, echoes one message, closes, and waits until the connection object is gone (its
// SSL freed, which is when OpenSSL would spoil the session). Returns the context's counts.
tls::session_counts connect_and_close(asio::io_context& io, const std::string& url,
                                      tls::context_type& context,
                                      duplex::client_options options = {}) {
    auto c = get_within(duplex::async_connect<tls>(io.get_executor(), url, std::move(options),
                                                   context, asio::use_future));
    REQUIRE(c);
    c->send_text("hello");
    CHECK(get_within(c->async_read(asio::use_future)).data == "hello");
    get_within(c->async_close(1000, "", asio::use_future));
    std::weak_ptr<wss_connection> gone = c;
    c.reset();
    REQUIRE(eventually([&] { return gone.expired(); }));
    return context.client_sessions();
}

} // namespace

TEST_CASE("resumption: the second connection resumes, the first does not", "[tls][resume]") {
    require_certificate();
    io_runner runner;
    tls_echo_server server(runner.io);
    auto context = trusting_context();

    const auto first = connect_and_close(runner.io, server.url("localhost"), context);
    CHECK(first.offered == 0);
    CHECK(first.resumed == 0);
    CHECK(first.sessions >= 1); // the server's TLS 1.3 tickets
    CHECK(first.peers == 1);

    const auto second = connect_and_close(runner.io, server.url("localhost"), context);
    CHECK(second.offered == 1);
    CHECK(second.resumed == 1);

    // Each connection brings fresh tickets: a third resumes as well.
    const auto third = connect_and_close(runner.io, server.url("localhost"), context);
    CHECK(third.resumed == 2);
    CHECK(third.sessions <= duplex::detail::tls_session_cache::sessions_per_peer);
}

TEST_CASE("resumption: a TLS 1.2 session is kept again after it resumed", "[tls][resume]") {
    require_certificate();
    io_runner runner;
    tls_echo_server server(runner.io, TLS1_2_VERSION);
    auto context = trusting_context();
    const auto first = connect_and_close(runner.io, server.url("localhost"), context);
    CHECK(first.sessions == 1);
    // TLS 1.2 brings no new session to a resumed connection: the one used goes back.
    const auto second = connect_and_close(runner.io, server.url("localhost"), context);
    CHECK(second.resumed == 1);
    CHECK(second.sessions == 1);
    CHECK(connect_and_close(runner.io, server.url("localhost"), context).resumed == 2);
}

TEST_CASE("resumption: off in client_options, nothing is offered or kept", "[tls][resume]") {
    require_certificate();
    io_runner runner;
    tls_echo_server server(runner.io);
    auto context = trusting_context();
    duplex::client_options off;
    off.tls_resumption = false;

    connect_and_close(runner.io, server.url("localhost"), context, off);
    const auto after = connect_and_close(runner.io, server.url("localhost"), context, off);
    CHECK(after.offered == 0);
    CHECK(after.resumed == 0);
    CHECK(after.sessions == 0);

    // Turned on again, the client keeps and then resumes.
    connect_and_close(runner.io, server.url("localhost"), context);
    const auto again = connect_and_close(runner.io, server.url("localhost"), context);
    CAPTURE(again.offered, again.sessions, again.peers);
    CHECK(again.resumed == 1);
}

TEST_CASE("resumption: a session is never offered to another host name", "[tls][resume]") {
    require_certificate();
    io_runner runner;
    tls_echo_server server(runner.io);
    auto context = trusting_context();

    // The same server and port, and a certificate valid for both names: still no resumption
    // across them, each name has its own sessions.
    connect_and_close(runner.io, server.url("localhost"), context);
    const auto other = connect_and_close(runner.io, server.url("127.0.0.1"), context);
    CHECK(other.offered == 0);
    CHECK(other.resumed == 0);
    CHECK(other.peers == 2);

    // Names compare case-insensitively (DNS names do); the port is part of the peer.
    CHECK(connect_and_close(runner.io, server.url("LocalHost"), context).resumed == 1);
    tls_echo_server elsewhere(runner.io);
    const auto other_port = connect_and_close(runner.io, elsewhere.url("localhost"), context);
    CHECK(other_port.offered == 1);
    CHECK(other_port.peers == 3);
}

TEST_CASE("resumption: with verification off, SNI still separates the sessions", "[tls][resume]") {
    require_certificate();
    io_runner runner;
    tls_echo_server server(runner.io);
    auto context = tls::client_context_insecure();
    connect_and_close(runner.io, server.url("localhost"), context);
    CHECK(connect_and_close(runner.io, server.url("127.0.0.1"), context).offered == 0);
    const auto again = connect_and_close(runner.io, server.url("localhost"), context);
    CAPTURE(again.offered, again.sessions, again.peers);
    CHECK(again.resumed == 1);
}

TEST_CASE("resumption: a session from a connection that did not verify the peer is never "
          "offered to one that does",
          "[tls][resume]") {
    require_certificate();
    io_runner runner;
    tls_echo_server server(runner.io);
    auto context = trusting_context();
    context.ssl->set_verify_mode(asio::ssl::verify_none);
    CHECK(connect_and_close(runner.io, server.url("localhost"), context).sessions >= 1);
    // The same context, the same host and port, now verifying: a session from the unverified
    // handshake would let it skip the certificate check.
    context.ssl->set_verify_mode(asio::ssl::verify_peer);
    const auto verified = connect_and_close(runner.io, server.url("localhost"), context);
    CHECK(verified.offered == 0);
    CHECK(verified.resumed == 0);
    CHECK(connect_and_close(runner.io, server.url("localhost"), context).resumed == 1);
}

TEST_CASE("resumption: the cache keeps at most its peers, the least recent goes first",
          "[tls][resume]") {
    require_certificate();
    io_runner runner;
    std::vector<std::unique_ptr<tls_echo_server>> servers;
    for (int i = 0; i < 3; ++i) servers.push_back(std::make_unique<tls_echo_server>(runner.io));
    auto context = trusting_context();
    REQUIRE(context.keep_client_sessions(2));

    for (auto& s : servers) connect_and_close(runner.io, s->url("localhost"), context);
    const auto full = context.client_sessions();
    CHECK(full.peers == 2);
    CHECK(full.sessions <= 2 * duplex::detail::tls_session_cache::sessions_per_peer);

    // The first server's sessions were dropped; the last one's are there.
    CHECK(connect_and_close(runner.io, servers[0]->url("localhost"), context).offered == 0);
    CHECK(connect_and_close(runner.io, servers[2]->url("localhost"), context).resumed == 1);
    CHECK(context.client_sessions().peers == 2);
}

TEST_CASE("resumption: many peers and sessions stay within the bounds", "[tls][resume]") {
    using cache_type = duplex::detail::tls_session_cache;
    cache_type cache(64);
    for (int i = 0; i < 1000; ++i) {
        for (int j = 0; j < 3; ++j) {
            SSL_SESSION* session = ::SSL_SESSION_new();
            REQUIRE(session != nullptr);
            cache.put("host" + std::to_string(i) + ":443", session); // owned by the cache
        }
    }
    const auto counts = cache.count();
    CHECK(counts.peers == 64);
    CHECK(counts.sessions == 64 * cache_type::sessions_per_peer);
    // A session that cannot be resumed (this one has no master key) is dropped when taken.
    CHECK(cache.take("host999:443") == nullptr);
    CHECK(cache.count().peers == 63);
    cache.set_max_peers(10);
    CHECK(cache.count().peers == 10);
}

TEST_CASE("resumption: a connection that ended without close_notify leaves its sessions "
          "resumable",
          "[tls][resume]") {
    require_certificate();
    io_runner runner;
    tls_echo_server server(runner.io);
    auto context = trusting_context();
    connect_and_close(runner.io, server.url("localhost"), context);
    // OpenSSL servers send two tickets. Without care, OpenSSL marks the newest not resumable
    // when the client's SSL is freed without having sent close_notify, as a WebSocket client's
    // is (the server ends TCP first).
    auto* cache = duplex::detail::tls_session_cache::of(context.ssl->native_handle());
    REQUIRE(cache != nullptr);
    const std::string peer = "localhost:" + std::to_string(server.server.port());
    REQUIRE(context.client_sessions().sessions == 2);
    // take() drops sessions that are not resumable: both must still be there to take.
    SSL_SESSION* newest = cache->take(peer);
    SSL_SESSION* oldest = cache->take(peer);
    CHECK(newest != nullptr);
    CHECK(oldest != nullptr);
    if (newest) {
        CHECK(::SSL_SESSION_is_resumable(newest) == 1);
        ::SSL_SESSION_free(newest);
    }
    if (oldest) ::SSL_SESSION_free(oldest);
}

TEST_CASE("resumption: the reconnecting client resumes after the server drops it",
          "[tls][resume]") {
    require_certificate();
    io_runner runner;
    tls_echo_server server(runner.io);
    std::atomic<int> opened{0};
    server.server.handlers().on_open = [&](const auto& c) {
        if (++opened == 1) c->close(1012, "restarting"); // drop the first connection
    };
    auto context = trusting_context();
    duplex::reconnect_options policy;
    policy.initial_delay = std::chrono::milliseconds(10);
    auto client = duplex::reconnecting_client<tls>::create(
        runner.io.get_executor(), server.url("localhost"), {}, policy, context);
    counter opens;
    client->handlers().on_open = [&](const auto&) { opens.add(); };
    client->start();
    REQUIRE(opens.wait_for(2));
    CHECK(client->connects() == 2);
    const auto counts = context.client_sessions();
    CHECK(counts.offered == 1);
    CHECK(counts.resumed == 1);
    client->stop();
    REQUIRE(eventually([&] { return client->current() == nullptr; }));
}

#endif // DUPLEX_ENABLE_TLS
