// Transport policies: the in-memory pipe (its stream behaviour and fault injection), the plain
// socket functions tcp and unix_socket share (over a socket pair), and TLS over real loopback
// sockets (certificate and host-name verification, SNI, close_notify).
//
// Every io_context runs with run_for and a short bound, so a bug shows up as a failed check,
// never as a CI job that hangs. The TLS tests make a throw-away self-signed certificate with
// the `openssl` command at run time, so no key is ever committed.
#include "catch.hpp"
#include "test_certificate.hpp"

#include <duplex/transport/memory.hpp>
#include <duplex/transport/tcp.hpp>
#include <duplex/transport/unix_socket.hpp>
#if defined(DUPLEX_ENABLE_TLS)
#include <duplex/transport/tls.hpp>
#endif

#include <asio/io_context.hpp>
#include <asio/local/connect_pair.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/use_future.hpp>
#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <future>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <stdlib.h> // mkdtemp
#include <unistd.h> // rmdir

using duplex::transport::memory;
using namespace std::chrono_literals;

namespace {

constexpr auto bound = 3s; // no test needs more than a fraction of this

std::error_code code(asio::error::basic_errors e) { return asio::error::make_error_code(e); }
std::error_code code(asio::error::misc_errors e) { return asio::error::make_error_code(e); }

// Reads from `stream` until eof or an error, recording what each read returned.
struct reader {
    memory::stream_type& stream;
    std::string data;
    std::vector<std::size_t> sizes;
    std::error_code end;
    std::array<char, 64> buffer{};

    void start() {
        stream.async_read_some(asio::buffer(buffer), [this](std::error_code ec, std::size_t n) {
            if (ec) {
                end = ec;
                return;
            }
            sizes.push_back(n);
            data.append(buffer.data(), n);
            start();
        });
    }
};

} // namespace

TEST_CASE("memory: bytes written on one end are read on the other, both ways",
          "[transport][memory]") {
    asio::io_context io;
    auto ends = memory::make_pair(io.get_executor());
    auto& a = ends.first;
    auto& b = ends.second;

    std::string received(11, '\0');
    std::string reply(4, '\0');
    std::error_code read_ec = code(asio::error::would_block), reply_ec = read_ec;
    std::error_code write_ec = read_ec;
    std::size_t wrote = 0;
    asio::async_write(a, asio::buffer(std::string_view("hello world")),
                      [&](std::error_code ec, std::size_t n) {
                          write_ec = ec;
                          wrote = n;
                      });
    asio::async_read(b, asio::buffer(received), [&](std::error_code ec, std::size_t) {
        read_ec = ec;
        asio::async_write(b, asio::buffer(std::string_view("pong")),
                          [](std::error_code, std::size_t) {});
    });
    asio::async_read(a, asio::buffer(reply),
                     [&](std::error_code ec, std::size_t) { reply_ec = ec; });
    io.run_for(bound);

    CHECK(!write_ec);
    CHECK(wrote == 11);
    CHECK(!read_ec);
    CHECK(received == "hello world");
    CHECK(!reply_ec);
    CHECK(reply == "pong");
}

TEST_CASE("memory: completions are posted, never run inside the initiating call",
          "[transport][memory]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    bool initiated = false;
    bool inline_call = false;
    int completed = 0;
    a.async_write_some(asio::buffer(std::string_view("x")), [&](std::error_code, std::size_t) {
        inline_call = inline_call || !initiated;
        ++completed;
    });
    char c = 0;
    b.async_read_some(asio::buffer(&c, 1), [&](std::error_code, std::size_t) {
        inline_call = inline_call || !initiated;
        ++completed;
    });
    initiated = true;
    io.run_for(bound);
    CHECK(completed == 2);
    CHECK_FALSE(inline_call);
    CHECK(c == 'x');
}

TEST_CASE("memory: read_chunks and max_read_size split the byte stream", "[transport][memory]") {
    asio::io_context io;
    auto ends = memory::make_pair(io.get_executor());
    auto& a = ends.first;
    auto& b = ends.second;
    reader r{b, {}, {}, {}, {}};

    SECTION("read_chunks cycles through the sizes") {
        b.read_chunks({1, 3, 0}); // the zero is ignored
        r.start();
        asio::async_write(a, asio::buffer(std::string_view("abcdefghij")),
                          [&](std::error_code, std::size_t) {
                              std::error_code ec;
                              a.shutdown_send(ec);
                          });
        io.run_for(bound);
        CHECK(r.data == "abcdefghij");
        CHECK(r.sizes == (std::vector<std::size_t>{1, 3, 1, 3, 1, 1}));
        CHECK(r.end == code(asio::error::eof));
    }
    SECTION("max_read_size caps every read") {
        b.max_read_size(4);
        r.start();
        asio::async_write(a, asio::buffer(std::string_view("abcdefghij")),
                          [&](std::error_code, std::size_t) {
                              std::error_code ec;
                              a.shutdown_send(ec);
                          });
        io.run_for(bound);
        CHECK(r.data == "abcdefghij");
        CHECK(r.sizes == (std::vector<std::size_t>{4, 4, 2}));
    }
}

TEST_CASE("memory: the nth read or write fails with the injected error", "[transport][memory]") {
    asio::io_context io;
    auto ends = memory::make_pair(io.get_executor());
    auto& a = ends.first;
    auto& b = ends.second;
    std::vector<std::error_code> results;
    auto record = [&](std::error_code ec, std::size_t) { results.push_back(ec); };

    SECTION("write") {
        a.fail_write(2, asio::error::connection_reset);
        asio::async_write(
            a, asio::buffer(std::string_view("one")), [&](std::error_code ec, std::size_t) {
                results.push_back(ec);
                asio::async_write(a, asio::buffer(std::string_view("two")),
                                  [&](std::error_code ec2, std::size_t) {
                                      results.push_back(ec2);
                                      asio::async_write(a, asio::buffer(std::string_view("three")),
                                                        record);
                                  });
            });
        io.run_for(bound);
        REQUIRE(results.size() == 3);
        CHECK(!results[0]);
        CHECK(results[1] == code(asio::error::connection_reset));
        CHECK(!results[2]);
        CHECK(b.available() == 8); // "one" + "three": the failed write delivered nothing
    }
    SECTION("read") {
        b.fail_read(2, asio::error::connection_reset);
        std::string data(3, '\0');
        std::size_t failed_read_bytes = 99;
        asio::async_write(a, asio::buffer(std::string_view("abcdef")),
                          [](std::error_code, std::size_t) {});
        asio::async_read(b, asio::buffer(data), [&](std::error_code ec, std::size_t) {
            results.push_back(ec);
            b.async_read_some(asio::buffer(data), [&](std::error_code ec2, std::size_t n) {
                results.push_back(ec2);
                failed_read_bytes = n;
                asio::async_read(b, asio::buffer(data), record);
            });
        });
        io.run_for(bound);
        REQUIRE(results.size() == 3);
        CHECK(!results[0]);
        CHECK(results[1] == code(asio::error::connection_reset));
        CHECK(!results[2]);
        CHECK(failed_read_bytes == 0);
        CHECK(data == "def"); // the failed read consumed nothing
    }
}

TEST_CASE("memory: shutdown gives the peer eof after the queued bytes, close aborts",
          "[transport][memory]") {
    asio::io_context io;
    auto ends = memory::make_pair(io.get_executor());
    auto& a = ends.first;
    auto& b = ends.second;

    SECTION("async_shutdown") {
        reader r{b, {}, {}, {}, {}};
        std::error_code shutdown_ec = code(asio::error::would_block);
        std::error_code late_write = shutdown_ec;
        asio::async_write(a, asio::buffer(std::string_view("xyz")),
                          [](std::error_code, std::size_t) {});
        memory::async_shutdown(a, [&](std::error_code ec) {
            shutdown_ec = ec;
            a.async_write_some(asio::buffer(std::string_view("late")),
                               [&](std::error_code ec2, std::size_t) { late_write = ec2; });
        });
        r.start();
        io.run_for(bound);
        CHECK(!shutdown_ec);
        CHECK(r.data == "xyz");
        CHECK(r.end == code(asio::error::eof));
        CHECK(memory::is_clean_end(r.end));
        CHECK(late_write == code(asio::error::broken_pipe));
    }
    SECTION("close") {
        std::error_code closer_read = code(asio::error::would_block);
        std::error_code peer_write = closer_read;
        reader r{b, {}, {}, {}, {}};
        char c = 0;
        a.async_read_some(asio::buffer(&c, 1),
                          [&](std::error_code ec, std::size_t) { closer_read = ec; });
        asio::async_write(
            a, asio::buffer(std::string_view("bye")), [&](std::error_code, std::size_t) {
                memory::close(a);
                memory::close(a); // idempotent
                b.async_write_some(asio::buffer(std::string_view("?")),
                                   [&](std::error_code ec, std::size_t) { peer_write = ec; });
            });
        r.start();
        io.run_for(bound);
        CHECK(closer_read == code(asio::error::operation_aborted));
        CHECK(r.data == "bye");
        CHECK(r.end == code(asio::error::eof));
        CHECK(peer_write == code(asio::error::connection_reset));
        CHECK_FALSE(a.is_open());
        CHECK(b.is_open());
    }
}

TEST_CASE("memory: writes wait at the write capacity and resume when the peer reads",
          "[transport][memory]") {
    asio::io_context io;
    auto ends = memory::make_pair(io.get_executor());
    auto& a = ends.first;
    auto& b = ends.second;
    const std::string payload(20, 'p');
    bool written = false;
    std::size_t written_bytes = 0;

    SECTION("capacity") {
        a.write_capacity(8);
        std::error_code write_ec = code(asio::error::would_block);
        asio::async_write(a, asio::buffer(payload), [&](std::error_code ec, std::size_t n) {
            write_ec = ec;
            written = true;
            written_bytes = n;
        });
        io.run_for(50ms); // pending work keeps run_for busy until the bound
        CHECK_FALSE(written);
        CHECK(b.available() == 8);

        std::string received(20, '\0');
        io.restart();
        std::error_code read_ec = code(asio::error::would_block);
        asio::async_read(b, asio::buffer(received),
                         [&](std::error_code ec, std::size_t) { read_ec = ec; });
        io.run_for(bound);
        CHECK(!read_ec);
        CHECK(!write_ec);
        CHECK(written);
        CHECK(written_bytes == 20);
        CHECK(received == payload);
    }
    SECTION("block_writes") {
        a.block_writes(true);
        asio::async_write(a, asio::buffer(payload), [&](std::error_code, std::size_t n) {
            written = true;
            written_bytes = n;
        });
        io.run_for(50ms);
        CHECK_FALSE(written);
        CHECK(b.available() == 0);
        a.block_writes(false);
        io.restart();
        io.run_for(bound);
        CHECK(written);
        CHECK(b.available() == 20);
    }
    SECTION("a blocked writer sees connection_reset when the peer closes") {
        std::error_code ec_seen;
        a.block_writes(true);
        asio::async_write(a, asio::buffer(payload),
                          [&](std::error_code ec, std::size_t) { ec_seen = ec; });
        io.run_for(20ms);
        b.close();
        io.restart();
        io.run_for(bound);
        CHECK(ec_seen == code(asio::error::connection_reset));
    }
}

TEST_CASE("memory: use_future and a multi-threaded io_context with a strand per end",
          "[transport][memory]") {
    SECTION("use_future") {
        asio::io_context io;
        auto ends = memory::make_pair(io.get_executor());
        auto& a = ends.first;
        auto& b = ends.second;
        auto work = asio::make_work_guard(io);
        std::thread runner([&] { io.run_for(bound); });

        std::array<char, 5> buffer{};
        auto wrote =
            asio::async_write(a, asio::buffer(std::string_view("12345")), asio::use_future);
        auto read = asio::async_read(b, asio::buffer(buffer), asio::use_future);
        REQUIRE(wrote.wait_for(bound) == std::future_status::ready);
        REQUIRE(read.wait_for(bound) == std::future_status::ready);
        CHECK(wrote.get() == 5);
        CHECK(read.get() == 5);
        CHECK(std::string(buffer.data(), 5) == "12345");

        a.fail_read(1, asio::error::connection_reset);
        auto failed = a.async_read_some(asio::buffer(buffer), asio::use_future);
        REQUIRE(failed.wait_for(bound) == std::future_status::ready);
        CHECK_THROWS_AS(failed.get(), std::system_error);

        work.reset();
        io.stop();
        runner.join();
    }
    SECTION("ping-pong across two strands on two threads") {
        asio::io_context io;
        auto ends = memory::make_pair(asio::make_strand(io), asio::make_strand(io));
        auto& a = ends.first;
        auto& b = ends.second;
        a.read_chunks({1, 2});
        constexpr int rounds = 200;
        int pongs = 0;
        bool failed = false; // Catch assertions are not thread-safe: checked after join
        std::array<char, 4> a_buf{}, b_buf{};

        std::function<void()> ping;
        std::function<void()> echo;
        ping = [&] {
            asio::async_write(
                a, asio::buffer(std::string_view("ping")), [&](std::error_code ec, std::size_t) {
                    if (ec) return void(failed = true);
                    asio::async_read(a, asio::buffer(a_buf), [&](std::error_code ec2, std::size_t) {
                        if (ec2) return void(failed = true);
                        if (++pongs < rounds)
                            ping();
                        else
                            memory::close(a);
                    });
                });
        };
        echo = [&] {
            asio::async_read(b, asio::buffer(b_buf), [&](std::error_code ec, std::size_t) {
                if (ec) return; // eof once a closes
                asio::async_write(b, asio::buffer(b_buf),
                                  [&](std::error_code, std::size_t) { echo(); });
            });
        };
        asio::post(a.get_executor(), ping);
        asio::post(b.get_executor(), echo);
        std::thread second([&] { io.run_for(bound); });
        io.run_for(bound);
        second.join();
        CHECK_FALSE(failed);
        CHECK(pongs == rounds);
    }
}

TEST_CASE("memory: the policy's handshake, shutdown and endpoint", "[transport][memory]") {
    asio::io_context io;
    auto ends = memory::make_pair(io.get_executor());
    auto& a = ends.first;
    auto& b = ends.second;
    std::error_code handshake = code(asio::error::would_block);
    memory::async_handshake(a, duplex::protocol::role::client, "x",
                            [&](std::error_code ec) { handshake = ec; });
    io.run_for(bound);
    CHECK(!handshake);
    CHECK(memory::remote_endpoint(a) == asio::ip::tcp::endpoint{});
    CHECK_FALSE(memory::is_secure);
    CHECK_FALSE(memory::is_clean_end(code(asio::error::connection_reset)));

    memory::stream_type moved = std::move(b);
    std::error_code on_moved_from = code(asio::error::would_block);
    char none = 0;
    b.async_read_some(asio::buffer(&none, 0),
                      [&](std::error_code ec, std::size_t) { on_moved_from = ec; });
    io.restart();
    io.run_for(bound);
    CHECK(on_moved_from == code(asio::error::bad_descriptor));
    CHECK(moved.is_open());
}

TEST_CASE("unix_socket: the policy's handshake and shutdown complete posted, readiness and "
          "non-blocking reads and writes",
          "[transport][unix]") {
    using duplex::transport::unix_socket;
    asio::io_context io;
    unix_socket::stream_type a(io), b(io);
    asio::local::connect_pair(a, b);
    CHECK(unix_socket::remote_endpoint(a) == asio::ip::tcp::endpoint{}); // no IP peer
    CHECK_FALSE(unix_socket::is_secure);
    CHECK(unix_socket::is_clean_end(code(asio::error::eof)));
    CHECK_FALSE(unix_socket::is_clean_end(code(asio::error::connection_reset)));

    // Completions are posted like Asio's own: not inside the initiating call.
    bool handshake_done = false;
    std::error_code handshake = code(asio::error::would_block);
    unix_socket::async_handshake(a, duplex::protocol::role::client, "", [&](std::error_code ec) {
        handshake_done = true;
        handshake = ec;
    });
    CHECK_FALSE(handshake_done);
    io.run_for(bound);
    CHECK(handshake_done);
    CHECK_FALSE(handshake);

    // Nothing to read yet: would_block; after a write, readiness and then the bytes.
    std::array<char, 16> buffer{};
    std::error_code ec;
    CHECK(unix_socket::read_now(b, asio::buffer(buffer), ec) == 0);
    CHECK(ec == code(asio::error::would_block));
    const std::string hello = "hello";
    CHECK(unix_socket::write_now(a, {asio::buffer(hello)}, ec) == hello.size());
    CHECK_FALSE(ec);
    std::error_code readable = code(asio::error::would_block);
    unix_socket::async_wait_readable(b, [&](std::error_code e) { readable = e; });
    io.restart();
    io.run_for(bound);
    CHECK_FALSE(readable);
    CHECK(unix_socket::read_now(b, asio::buffer(buffer), ec) == hello.size());
    CHECK(std::string(buffer.data(), hello.size()) == hello);

    // Shutdown ends the sending direction: the peer reads eof, a clean end.
    std::error_code shutdown = code(asio::error::would_block);
    unix_socket::async_shutdown(a, [&](std::error_code e) { shutdown = e; });
    std::error_code peer_end;
    b.async_read_some(asio::buffer(buffer), [&](std::error_code e, std::size_t) { peer_end = e; });
    io.restart();
    io.run_for(bound);
    CHECK_FALSE(shutdown);
    CHECK(unix_socket::is_clean_end(peer_end));
    unix_socket::close(a);
    unix_socket::close(a); // idempotent
    CHECK_FALSE(a.is_open());
}

TEST_CASE("unix_socket: make_endpoint refuses empty, NUL-containing and too long paths",
          "[transport][unix]") {
    using duplex::transport::unix_socket;
    unix_socket::endpoint_type endpoint;
    CHECK(unix_socket::make_endpoint("", endpoint) == code(asio::error::invalid_argument));
    CHECK(unix_socket::make_endpoint(std::string("/tmp/a\0b", 8), endpoint) ==
          code(asio::error::invalid_argument));
    CHECK(unix_socket::make_endpoint("/tmp/" + std::string(103, 'x'), endpoint) ==
          code(asio::error::name_too_long)); // 108 bytes and a NUL do not fit in 108
    CHECK_FALSE(unix_socket::make_endpoint("/tmp/" + std::string(102, 'x'), endpoint));
    CHECK(endpoint.path() == "/tmp/" + std::string(102, 'x')); // 107 bytes do
}

TEST_CASE("memory: destroying the io_context destroys the handlers of pending operations",
          "[transport][memory]") {
    // A handler that owns its own stream, the shape of every connection: nothing but the
    // context's shutdown can break that cycle while the peer stays silent.
    struct owner {
        std::optional<memory::stream_type> stream;
        char byte = 0;
    };
    std::weak_ptr<owner> left_behind;
    bool called = false;
    {
        asio::io_context io;
        auto ends = memory::make_pair(io.get_executor());
        auto holder = std::make_shared<owner>();
        holder->stream.emplace(std::move(ends.first));
        holder->stream->async_read_some(
            asio::buffer(&holder->byte, 1),
            [holder, &called](std::error_code, std::size_t) { called = true; });
        left_behind = holder;
        holder.reset();
        io.run_for(10ms); // the read stays pending: the peer never writes
        CHECK_FALSE(left_behind.expired());
    }
    CHECK(left_behind.expired());
    CHECK_FALSE(called);
}
// ---------------------------------------------------------------------------------------------
// TLS over loopback: only when built against duplex::tls (OpenSSL).
#if defined(DUPLEX_ENABLE_TLS)

using duplex::transport::tls;

namespace {

// A server and a client TLS stream over a connected loopback TCP pair.
struct tls_pair {
    asio::io_context io;
    tls::context_type server_context;
    tls::context_type client_context;
    std::optional<tls::stream_type> server, client;
    std::error_code server_ec = code(asio::error::would_block);
    std::error_code client_ec = server_ec;

    explicit tls_pair(tls::context_type client_ctx)
        : server_context(tls::server_context(certificate().cert, certificate().key)),
          client_context(std::move(client_ctx)) {
        asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
        asio::ip::tcp::socket accepted(io), connected(io);
        // A blocking connect to a listening socket completes from the backlog; accept then
        // returns at once. Nothing here can wait on the other side.
        connected.connect(acceptor.local_endpoint());
        acceptor.accept(accepted);
        server.emplace(tls::make_stream(std::move(accepted), server_context));
        client.emplace(tls::make_stream(std::move(connected), client_context));
    }

    void handshake(const std::string& host) {
        tls::async_handshake(*server, duplex::protocol::role::server, "",
                             [this](std::error_code ec) {
                                 server_ec = ec;
                                 if (ec) tls::close(*server);
                             });
        tls::async_handshake(*client, duplex::protocol::role::client, host,
                             [this](std::error_code ec) {
                                 client_ec = ec;
                                 if (ec) tls::close(*client); // so the server is not left waiting
                             });
        io.run_for(bound);
    }

    long client_verify_result() { return ::SSL_get_verify_result(client->native_handle()); }
};

bool is_verify_failure(const std::error_code& ec) {
    return ec.category() == asio::error::get_ssl_category() &&
           ERR_GET_REASON(static_cast<unsigned long>(ec.value())) ==
               SSL_R_CERTIFICATE_VERIFY_FAILED;
}

std::string server_name(tls::stream_type& stream) {
    const char* name = ::SSL_get_servername(stream.native_handle(), TLSEXT_NAMETYPE_host_name);
    return name ? name : "";
}

} // namespace

TEST_CASE("tls: a verifying client accepts a trusted certificate for the right host",
          "[transport][tls]") {
    require_certificate();
    auto context = tls::client_context();
    context.load_verify_file(certificate().cert);
    tls_pair pair(context);

    SECTION("by name, with SNI") {
        pair.handshake("localhost");
        CHECK(!pair.client_ec);
        CHECK(!pair.server_ec);
        CHECK(server_name(*pair.server) == "localhost");
    }
    SECTION("a trailing dot is not part of the name") {
        pair.handshake("localhost.");
        CHECK(!pair.client_ec);
        CHECK(server_name(*pair.server) == "localhost");
    }
    SECTION("by IP address: checked against the IP SAN, no SNI (RFC 6066 3)") {
        pair.handshake("127.0.0.1");
        CHECK(!pair.client_ec);
        CHECK(!pair.server_ec);
        CHECK(server_name(*pair.server).empty());
    }
    CHECK(tls::remote_endpoint(*pair.server).address() == asio::ip::make_address("127.0.0.1"));
    CHECK(tls::is_secure);
}

TEST_CASE("tls: a verifying client refuses a certificate for another host", "[transport][tls]") {
    require_certificate();
    auto context = tls::client_context();
    context.load_verify_file(certificate().cert);
    tls_pair pair(context);
    pair.handshake("example.com");
    CHECK(is_verify_failure(pair.client_ec));
    CHECK(pair.client_verify_result() == X509_V_ERR_HOSTNAME_MISMATCH);
    CHECK(pair.server_ec); // the client's alert, or the closed socket
}

TEST_CASE("tls: a verifying client refuses a certificate it does not trust", "[transport][tls]") {
    require_certificate();
    tls_pair pair(tls::client_context());
    pair.handshake("localhost");
    CHECK(is_verify_failure(pair.client_ec));
    CHECK(pair.client_verify_result() == X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
    CHECK(pair.server_ec);
}

TEST_CASE("tls: a verifying client with no host name refuses to handshake", "[transport][tls]") {
    require_certificate();
    auto context = tls::client_context();
    context.load_verify_file(certificate().cert);
    tls_pair pair(context);
    pair.handshake("");
    CHECK(pair.client_ec == code(asio::error::invalid_argument));
}

TEST_CASE("tls: the explicit insecure client accepts any certificate", "[transport][tls]") {
    require_certificate();
    tls_pair pair(tls::client_context_insecure());
    pair.handshake("example.com");
    CHECK(!pair.client_ec);
    CHECK(!pair.server_ec);
    CHECK(server_name(*pair.server) == "example.com"); // SNI is still sent
}

TEST_CASE("tls: close_notify ends the stream cleanly, truncation after close counts as clean",
          "[transport][tls]") {
    require_certificate();
    auto context = tls::client_context();
    context.load_verify_file(certificate().cert);
    tls_pair pair(context);
    pair.handshake("localhost");
    REQUIRE(!pair.client_ec);
    REQUIRE(!pair.server_ec);
    pair.io.restart();

    std::array<char, 16> server_buf{}, client_buf{};
    std::error_code server_read = code(asio::error::would_block);
    std::error_code client_read = server_read, server_shutdown = server_read,
                    client_shutdown = server_read;

    SECTION("both sides send close_notify") {
        // The server shuts down while its own read is pending, as a connection's read loop is.
        pair.server->async_read_some(asio::buffer(server_buf),
                                     [&](std::error_code ec, std::size_t) { server_read = ec; });
        tls::async_shutdown(*pair.server, [&](std::error_code ec) { server_shutdown = ec; });
        pair.client->async_read_some(asio::buffer(client_buf), [&](std::error_code ec,
                                                                   std::size_t) {
            client_read = ec;
            tls::async_shutdown(*pair.client, [&](std::error_code ec2) { client_shutdown = ec2; });
        });
        pair.io.run_for(bound);
        CHECK(client_read == code(asio::error::eof));
        CHECK(tls::is_clean_end(client_read));
        CHECK(!client_shutdown);
        CHECK(!server_shutdown);
        CHECK(tls::is_clean_end(server_read));
    }
    SECTION("a peer that never answers: the shutdown completes once close_notify has left") {
        tls::async_shutdown(*pair.server, [&](std::error_code ec) { server_shutdown = ec; });
        pair.io.run_for(bound);
        CHECK(!server_shutdown);
        CHECK((::SSL_get_shutdown(pair.server->native_handle()) & SSL_SENT_SHUTDOWN) != 0);
        // The peer reads the close_notify as the end of the stream.
        pair.io.restart();
        pair.client->async_read_some(asio::buffer(client_buf),
                                     [&](std::error_code ec, std::size_t) { client_read = ec; });
        pair.io.run_for(bound);
        CHECK(client_read == code(asio::error::eof));
    }
    SECTION("the peer closes TCP without close_notify") {
        pair.client->async_read_some(asio::buffer(client_buf),
                                     [&](std::error_code ec, std::size_t) { client_read = ec; });
        asio::post(pair.io, [&] {
            tls::close(*pair.server);
            tls::close(*pair.server); // idempotent
        });
        pair.io.run_for(bound);
        CHECK(client_read == std::error_code(asio::ssl::error::stream_truncated));
        CHECK(tls::is_clean_end(client_read));
    }
    CHECK_FALSE(tls::is_clean_end(code(asio::error::connection_reset)));
}

TEST_CASE("tls: context factories report bad files", "[transport][tls]") {
    std::error_code ec;
    auto context = tls::server_context("/nonexistent/cert.pem", "/nonexistent/key.pem", ec);
    CHECK(ec);
    CHECK_FALSE(context);
    CHECK_THROWS_AS(tls::server_context("/nonexistent/cert.pem", "/nonexistent/key.pem"),
                    asio::system_error);

    auto client = tls::client_context();
    client.load_verify_file("/nonexistent/ca.pem", ec);
    CHECK(ec);
    CHECK_THROWS_AS(client.load_verify_file("/nonexistent/ca.pem"), asio::system_error);

    tls::context_type empty;
    asio::io_context io;
    CHECK_THROWS_AS(tls::make_stream(asio::ip::tcp::socket(io), empty), std::invalid_argument);
}

#endif // DUPLEX_ENABLE_TLS
