// Faults and lifetimes. Every abrupt end and timeout, at each phase of a connection, over plain
// TCP and over TLS, repeated to hit races; the same rule (no buffer is freed while an
// operation may still touch it) checked deterministically over the memory transport; a seeded
// soak over ws:// and wss://; a server that runs out of file descriptors; the server-wide
// send budget.
//
// These tests find their bugs through the sanitizers: CI runs them under ASan+UBSan and TSan.
// What they assert themselves is the accounting: every connection ends, none is counted
// twice, no descriptor leaks, and the server still serves a fresh client afterwards. Every
// wait is bounded; a loop that repeats a case stops after a number of iterations or a time
// budget, whichever comes first, so slow sanitizer builds run fewer iterations rather than
// longer (the budget decides how often, never whether, a check passes).
#include "catch.hpp"
#include "harness.hpp"
#include "test_certificate.hpp"

#include <duplex/duplex.hpp>
#include <duplex/transport/memory.hpp>
#if defined(DUPLEX_ENABLE_TLS)
#include <duplex/transport/tls.hpp>
#endif

#include <asio/connect.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/read_until.hpp>
#include <asio/use_future.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

using namespace std::chrono_literals;
using duplex::opcode;
using duplex::send_status;
using namespace test;

namespace {

// ---- small tools --------------------------------------------------------------------------

std::size_t open_descriptors() {
    std::size_t n = 0;
    for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd"))
        ++n;
    return n;
}

// How many times to repeat a case: DUPLEX_FAULT_ITERATIONS, else `fallback`.
std::size_t iterations(std::size_t fallback) {
    if (const char* value = std::getenv("DUPLEX_FAULT_ITERATIONS")) {
        const long n = std::atol(value);
        if (n > 0) return static_cast<std::size_t>(n);
    }
    return fallback;
}

const std::string upgrade_request =
    "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

// ---- a client that misbehaves on purpose, over TCP or TLS ---------------------------------

struct plain_stream {
    static constexpr const char* scheme = "ws";
    explicit plain_stream(asio::io_context& io) : socket(io) {}
    asio::ip::tcp::socket socket;
    asio::ip::tcp::socket& tcp() { return socket; }
    asio::ip::tcp::socket& stream() { return socket; }
    template <class Handler>
    void async_handshake(Handler handler) {
        asio::post(socket.get_executor(), [handler]() mutable { handler(std::error_code{}); });
    }
};

#if defined(DUPLEX_ENABLE_TLS)
struct tls_stream {
    static constexpr const char* scheme = "wss";
    explicit tls_stream(asio::io_context& io) : context(make_context()), ssl(io, context) {}
    static asio::ssl::context make_context() {
        asio::ssl::context c(asio::ssl::context::tls_client);
        c.set_verify_mode(asio::ssl::verify_none); // the test's own server
        return c;
    }
    asio::ssl::context context;
    asio::ssl::stream<asio::ip::tcp::socket> ssl;
    asio::ip::tcp::socket& tcp() { return ssl.next_layer(); }
    asio::ssl::stream<asio::ip::tcp::socket>& stream() { return ssl; }
    template <class Handler>
    void async_handshake(Handler handler) {
        ssl.async_handshake(asio::ssl::stream_base::client, handler);
    }
};
#endif

// Each step runs its own io_context for a bounded time: a server that does not answer makes a
// step fail (false), never hang. A step that timed out may complete during a later one, so
// results land in members, never in a step's local variables.
template <class Stream>
class raw_client {
public:
    explicit raw_client(std::uint16_t port) : port_(port) {}

    // A small receive buffer (set before connecting, so the window stays small) makes a client
    // that does not read stop the server's writes early: its bytes then wait in the server.
    bool connect_tcp(int receive_buffer = 0) {
        if (receive_buffer > 0) {
            std::error_code ignored;
            s_.tcp().open(asio::ip::tcp::v4(), ignored);
            s_.tcp().set_option(asio::socket_base::receive_buffer_size(receive_buffer), ignored);
        }
        s_.tcp().async_connect({asio::ip::make_address("127.0.0.1"), port_},
                               [this](std::error_code ec) { connected_ = !ec; });
        run(5s);
        if (connected_) {
            std::error_code ignored;
            s_.tcp().set_option(asio::ip::tcp::no_delay(true), ignored);
        }
        return connected_;
    }

    bool handshake() {
        s_.async_handshake([this](std::error_code ec) { secured_ = !ec; });
        run(5s);
        return secured_;
    }

    bool upgrade() {
        if (!write(upgrade_request)) return false;
        asio::async_read_until(s_.stream(), asio::dynamic_buffer(head_), "\r\n\r\n",
                               [this](std::error_code ec, std::size_t n) {
                                   upgraded_ = !ec && head_.compare(0, 12, "HTTP/1.1 101") == 0;
                                   if (upgraded_) received_ = head_.substr(n);
                               });
        run(5s);
        return upgraded_;
    }

    bool open(int receive_buffer = 0) {
        return connect_tcp(receive_buffer) && handshake() && upgrade();
    }

    // Writes all of `bytes` to the TLS or TCP stream; false if the peer did not take them in
    // `limit` (it stopped reading) or the write failed. The bytes are kept until the write
    // completes, however late.
    bool write(std::string_view bytes, std::chrono::milliseconds limit = 5s) {
        if (writing_) return false; // an earlier write is still stuck
        writing_ = true;
        write_ok_ = false;
        auto data = std::make_shared<std::string>(bytes);
        asio::async_write(s_.stream(), asio::buffer(*data),
                          [this, data](std::error_code ec, std::size_t) {
                              writing_ = false;
                              write_ok_ = !ec;
                          });
        run(limit);
        return !writing_ && write_ok_;
    }

    // Writes raw bytes below TLS (a torn TLS record, for instance).
    bool write_tcp(std::string_view bytes) {
        std::error_code ec;
        asio::write(s_.tcp(), asio::buffer(bytes.data(), bytes.size()), ec);
        return !ec;
    }

    // Reads until the peer ends the connection or `limit` passes; true if it ended.
    bool read_until_closed(std::chrono::milliseconds limit) {
        if (!reading_) start_reading();
        const auto deadline = clock_type::now() + limit;
        while (!peer_closed_ && clock_type::now() < deadline) run(10ms);
        return peer_closed_;
    }

    // Reads until `bytes` bytes (beyond the HTTP head) have arrived or the peer closed.
    bool read_at_least(std::size_t bytes, std::chrono::milliseconds limit) {
        if (!reading_) start_reading();
        const auto deadline = clock_type::now() + limit;
        while (received_.size() < bytes && !peer_closed_ && clock_type::now() < deadline) run(10ms);
        return received_.size() >= bytes;
    }

    // The TCP connection is reset: SO_LINGER 0, then close (the peer sees RST, not FIN).
    void reset() {
        std::error_code ignored;
        s_.tcp().set_option(asio::socket_base::linger(true, 0), ignored);
        s_.tcp().close(ignored);
        run(0ms);
    }

    // FIN without a TLS close_notify (a truncated TLS stream); reading goes on.
    void end_sending() {
        std::error_code ignored;
        s_.tcp().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
    }

    void close() {
        std::error_code ignored;
        s_.tcp().close(ignored);
        run(0ms);
    }

    const std::string& received() const { return received_; }

private:
    void start_reading() {
        reading_ = true;
        s_.stream().async_read_some(asio::buffer(chunk_),
                                    [this](std::error_code ec, std::size_t n) {
                                        reading_ = false;
                                        if (ec) {
                                            peer_closed_ = true;
                                            return;
                                        }
                                        received_.append(chunk_.data(), n);
                                        start_reading();
                                    });
    }

    void run(std::chrono::milliseconds limit) {
        io_.restart();
        if (limit.count() == 0)
            io_.poll();
        else
            io_.run_for(limit);
    }

    std::uint16_t port_;
    asio::io_context io_;
    Stream s_{io_};
    std::string head_;
    std::string received_;
    std::array<char, 16384> chunk_{};
    bool connected_ = false;
    bool secured_ = false;
    bool upgraded_ = false;
    bool reading_ = false;
    bool writing_ = false;
    bool write_ok_ = false;
    bool peer_closed_ = false;
};

// A client that behaves is still echoed: what every case checks after its faults.
template <class Stream>
void check_still_serves(std::uint16_t port, const std::string& text) {
    raw_client<Stream> fresh(port);
    REQUIRE(fresh.open());
    REQUIRE(fresh.write(frame(opcode::text, text, masking::client)));
    CHECK(fresh.read_at_least(text.size() + 2, 5s));
    CHECK(fresh.received().find(text) != std::string::npos);
    fresh.close();
}

// ---- the fault matrix ---------------------------------------------------------------------

// Where in a connection's life the client stops, and how.
enum class phase {
    tcp_connected,       // before the transport handshake (TLS) or the request (TCP)
    transport_handshake, // TLS: a torn ClientHello record; TCP: a torn request line
    http_request,        // half the upgrade request
    frame_header,        // the first byte of a frame header
    payload,             // a 60 KB frame's header and a part of its payload
    fragment,            // the first fragment of a message, nothing after it
    large_echo,          // eight 60 KB messages to echo, none of the echoes read
    close_sent,          // our close frame, without reading the answer
    after_close,         // our close frame, and the server's answer read
    half_close,          // a message, then FIN; the echo read until the server ends
    ping,                // a ping, then the end
    slow_reader,         // 64 KiB messages, never read, until the server gives up
    keepalive,           // nothing sent or read until the server's keepalive gives up
};

enum class ending { reset, eof };

const char* name_of(phase p) {
    switch (p) {
    case phase::tcp_connected: return "tcp connected";
    case phase::transport_handshake: return "transport handshake";
    case phase::http_request: return "http request";
    case phase::frame_header: return "frame header";
    case phase::payload: return "payload";
    case phase::fragment: return "fragment";
    case phase::large_echo: return "large echo";
    case phase::close_sent: return "close sent";
    case phase::after_close: return "after close";
    case phase::half_close: return "half close";
    case phase::ping: return "ping";
    case phase::slow_reader: return "slow reader";
    case phase::keepalive: return "keepalive";
    }
    return "?";
}

// Short deadlines, so that timeout cases end in a fraction of a second. Keepalive only where
// it is the case: with 150 ms pings, a server slowed down by a sanitizer on a loaded machine
// could give up on a client that is busy being slow on purpose in another way.
duplex::server_options fault_options(phase p = phase::tcp_connected) {
    duplex::server_options o;
    // Generous: under sanitizers and a loaded machine a TLS handshake can take a while, and
    // every case ends its connections itself.
    o.handshake_timeout = 5s;
    o.connection.close_timeout = 300ms;
    o.connection.ping_interval = p == phase::keepalive ? 150ms : 0ms;
    o.connection.pong_timeout = 150ms;
    // Above the large echo's 480 KB, so that only the slow reader, who never stops writing,
    // reaches it.
    o.connection.send_buffer_high_water = 64U * 1024U;
    o.connection.send_buffer_limit = 1U << 20;
    return o;
}

// One client's run through `p`, ended by `e`. Returns the step that failed although the server
// should have allowed it, or "" when every step did what it should.
template <class Stream>
std::string run_phase(std::uint16_t port, phase p, ending e) {
    raw_client<Stream> c(port);
    if (!c.connect_tcp()) return "tcp connect";
    const std::string big(60000, 'b');
    bool ok = true;
    switch (p) {
    case phase::tcp_connected: break;
    case phase::transport_handshake:
        // A TLS handshake record header announcing 512 bytes, and only 40 of them.
        ok = c.write_tcp(std::string("\x16\x03\x01\x02\x00", 5) + std::string(40, '\x01'));
        break;
    default:
        if (!c.handshake()) return "transport handshake";
        if (p == phase::http_request) {
            ok = c.write(upgrade_request.substr(0, upgrade_request.size() / 2));
            break;
        }
        if (!c.upgrade()) return "upgrade";
        switch (p) {
        case phase::frame_header:
            ok = c.write(frame(opcode::binary, big, masking::client).substr(0, 1));
            break;
        case phase::payload:
            ok = c.write(frame(opcode::binary, big, masking::client).substr(0, 20000));
            break;
        case phase::fragment:
            ok = c.write(frame(opcode::text, "first", masking::client, fin_bit::clear));
            break;
        case phase::large_echo: {
            std::string burst;
            for (int i = 0; i < 8; ++i) burst += frame(opcode::binary, big, masking::client);
            ok = c.write(burst);
            break;
        }
        case phase::close_sent: ok = c.write(close_frame(1000, masking::client)); break;
        case phase::after_close:
            ok = c.write(close_frame(1000, masking::client)) && c.read_at_least(4, 5s);
            break;
        case phase::half_close:
            ok = c.write(frame(opcode::text, "half", masking::client));
            c.end_sending();
            // The server answers the FIN (1006 on its side) by ending the connection.
            ok = ok && c.read_until_closed(5s);
            break;
        case phase::ping: ok = c.write(raw_frame(0x89U, "are you there", masking::client)); break;
        case phase::slow_reader: {
            // Never read: the server's echo queue passes its limit, it fails the connection
            // (1008) and cuts it at the close deadline. Our writes stop when it stops reading.
            // Writing goes on while the server closes and then cuts the connection: its read
            // is pending with bytes arriving when the close deadline passes.
            const std::string message =
                frame(opcode::binary, std::string(65536, 's'), masking::client);
            // A write stops only when the server cuts the connection (or after 32 MiB): a
            // slow server must not make this client read early, which would let it catch up.
            for (int i = 0; i < 512; ++i)
                if (!c.write(message, 10s)) break;
            ok = c.read_until_closed(5s);
            break;
        }
        case phase::keepalive:
            // Not reading: the server's pings are never answered, and it gives up.
            ok = c.read_until_closed(5s);
            break;
        default: break;
        }
    }
    if (e == ending::reset)
        c.reset();
    else {
        c.end_sending();
        (void)c.read_until_closed(2s);
        c.close();
    }
    return ok ? std::string() : std::string(name_of(p));
}

template <class Transport, class Stream>
void run_fault_matrix(typename Transport::context_type context,
                      std::initializer_list<phase> phases) {
    const std::size_t rounds = iterations(200);
    const auto budget_per_case = 4s; // repeats stop here even if `rounds` is not reached
    constexpr std::size_t workers = 4;
    for (const phase p : phases) {
        for (const ending e : {ending::reset, ending::eof}) {
            io_runner runner(2);
            duplex::server<Transport> server(runner.io, fault_options(p), context);
            server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
                c->send(m.type, m.data);
            };
            REQUIRE_FALSE(server.listen("127.0.0.1", 0));
            const std::uint16_t port = server.port();
            INFO(Stream::scheme << ": " << name_of(p) << ", then "
                                << (e == ending::reset ? "reset" : "eof"));
            // Several clients at a time, so that the server's io threads interleave them and a
            // client's bytes are arriving while the server ends another connection.
            std::atomic<std::size_t> failures{0}, runs{0};
            std::mutex failed_mutex;
            std::string failed_step;
            const auto stop_at = clock_type::now() + budget_per_case;
            auto worker = [&] {
                for (std::size_t i = 0; i < rounds / workers && clock_type::now() < stop_at; ++i) {
                    const std::string step = run_phase<Stream>(port, p, e);
                    if (!step.empty()) {
                        std::lock_guard<std::mutex> lock(failed_mutex);
                        if (failures++ == 0) failed_step = step;
                    }
                    ++runs;
                }
            };
            std::vector<std::thread> others;
            for (std::size_t w = 1; w < workers; ++w) others.emplace_back(worker);
            worker();
            for (auto& t : others) t.join();
            CHECK(runs.load() > 0);
            INFO("first failed step: " << failed_step << " (of " << runs.load() << " runs)");
            CHECK(failures.load() == 0);
            // Every connection and handshake ended and was released exactly once.
            CHECK(eventually(
                [&] { return server.connection_count() + server.handshake_count() == 0; }));
            // And the server still serves a client that behaves.
            check_still_serves<Stream>(port, "still here");
            server.stop(0ms);
        }
    }
}

const std::initializer_list<phase> handshake_phases = {
    phase::tcp_connected, phase::transport_handshake, phase::http_request};
const std::initializer_list<phase> frame_phases = {phase::frame_header, phase::payload,
                                                   phase::fragment, phase::large_echo};
const std::initializer_list<phase> close_phases = {phase::close_sent, phase::after_close,
                                                   phase::half_close, phase::ping};
const std::initializer_list<phase> timeout_phases = {phase::slow_reader, phase::keepalive};

// stop() while clients are sending, reading slowly and handshaking.
template <class Transport, class Stream>
void run_stop_in_flight(typename Transport::context_type context) {
    const std::size_t rounds = std::min<std::size_t>(iterations(200), 20);
    const auto stop_at = clock_type::now() + 6s;
    for (std::size_t round = 0; round < rounds && clock_type::now() < stop_at; ++round) {
        io_runner runner(2);
        duplex::server<Transport> server(runner.io, fault_options(), context);
        server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
            c->send(m.type, m.data);
        };
        REQUIRE_FALSE(server.listen("127.0.0.1", 0));
        const std::uint16_t port = server.port();
        std::atomic<bool> stop_sent{false};
        std::vector<std::thread> clients;
        for (int k = 0; k < 4; ++k) {
            clients.emplace_back([port, k, &stop_sent] {
                while (!stop_sent) {
                    raw_client<Stream> c(port);
                    if (!c.open()) continue;
                    const std::string burst =
                        frame(opcode::binary, std::string(30000, 'x'), masking::client);
                    for (int i = 0; i < 4 && !stop_sent; ++i)
                        if (!c.write(burst, 200ms)) break;
                    if (k % 2 == 0) (void)c.read_until_closed(50ms);
                    c.reset();
                }
            });
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20 + 10 * (round % 5)));
        server.stop(std::chrono::milliseconds(round % 2 == 0 ? 0 : 100));
        stop_sent = true;
        for (auto& t : clients) t.join();
        CHECK(
            eventually([&] { return server.connection_count() + server.handshake_count() == 0; }));
    }
}

} // namespace

// ---- the lifetime rule, deterministically (memory transport) --------------------------------

namespace {
using memory = duplex::transport::memory;
using mem_connection = duplex::connection<memory>;

duplex::connection_options quiet_options() {
    duplex::connection_options o;
    o.ping_interval = 0ms;
    o.close_timeout = 100ms;
    return o;
}
} // namespace

TEST_CASE("Lifetimes: a read pending when the connection ends keeps its buffer until it "
          "completes (the TLS engine writes into it late)",
          "[faults][lifetime]") {
    asio::io_context io;
    auto ends = memory::make_pair(io.get_executor());
    ends.first.late_buffer_use(true); // the connection's end behaves like a TLS stream
    auto c = std::make_shared<mem_connection>(std::move(ends.first), duplex::protocol::role::server,
                                              quiet_options());
    int closes = 0;
    std::error_code close_error;
    duplex::connection_handlers<mem_connection> h;
    h.on_close = [&](const auto&, const duplex::close_info& info) {
        ++closes;
        close_error = info.error;
    };
    c->start(std::move(h));
    io.run_for(50ms); // the connection's read is pending now
    SECTION("cut by terminate()") { c->terminate(); }
    SECTION("cut by the close deadline") { c->close(1000); }
    io.run_for(500ms);
    CHECK(closes == 1);
    c.reset();
    io.run_for(50ms);
}

TEST_CASE("Lifetimes: frames being written when the connection ends stay alive until the "
          "write completes",
          "[faults][lifetime]") {
    asio::io_context io;
    auto ends = memory::make_pair(io.get_executor());
    ends.first.late_buffer_use(true);
    ends.first.block_writes(true); // the write stays pending, as against a peer not reading
    auto c = std::make_shared<mem_connection>(std::move(ends.first), duplex::protocol::role::server,
                                              quiet_options());
    std::vector<std::error_code> outcomes;
    int closes = 0;
    duplex::connection_handlers<mem_connection> h;
    h.on_close = [&](const auto&, const duplex::close_info&) { ++closes; };
    c->start(std::move(h));
    for (int i = 0; i < 3; ++i)
        c->async_send(opcode::binary, std::string(100000, static_cast<char>('a' + i)),
                      [&](std::error_code ec) { outcomes.push_back(ec); });
    io.run_for(50ms);
    REQUIRE(c->buffered_amount() > 0); // a write is pending
    c->terminate();
    io.run_for(300ms);
    CHECK(closes == 1);
    // Every sender heard once, with an error: nothing was written.
    REQUIRE(outcomes.size() == 3);
    for (const auto& ec : outcomes) CHECK(ec);
    CHECK(c->buffered_amount() == 0);
}

// ---- the crash recipes and the fault matrix over real sockets -----------------------------

TEST_CASE("Faults over ws://: reset and EOF at each handshake phase", "[faults][integration]") {
    run_fault_matrix<duplex::transport::tcp, plain_stream>({}, handshake_phases);
}
TEST_CASE("Faults over ws://: reset and EOF mid-frame, mid-fragment and during a large echo",
          "[faults][integration]") {
    run_fault_matrix<duplex::transport::tcp, plain_stream>({}, frame_phases);
}
TEST_CASE("Faults over ws://: reset and EOF around the close handshake, half-close, ping",
          "[faults][integration]") {
    run_fault_matrix<duplex::transport::tcp, plain_stream>({}, close_phases);
}
TEST_CASE("Faults over ws://: slow readers at the send limit and keepalive timeouts",
          "[faults][integration]") {
    run_fault_matrix<duplex::transport::tcp, plain_stream>({}, timeout_phases);
}
TEST_CASE("Faults over ws://: stop() with reads and writes in flight", "[faults][integration]") {
    run_stop_in_flight<duplex::transport::tcp, plain_stream>({});
}

#if defined(DUPLEX_ENABLE_TLS)
namespace {
duplex::transport::tls::context_type tls_server_context() {
    require_certificate();
    return duplex::transport::tls::server_context(certificate().cert, certificate().key);
}
} // namespace

TEST_CASE("Faults over wss://: reset and EOF at each handshake phase", "[faults][tls]") {
    run_fault_matrix<duplex::transport::tls, tls_stream>(tls_server_context(), handshake_phases);
}
// The first crash recipe: eight 60 KB messages, then a reset, while the server echoes them.
TEST_CASE("Faults over wss://: reset and EOF mid-frame, mid-fragment and during a large echo",
          "[faults][tls]") {
    run_fault_matrix<duplex::transport::tls, tls_stream>(tls_server_context(), frame_phases);
}
TEST_CASE("Faults over wss://: reset and EOF around the close handshake, half-close, ping",
          "[faults][tls]") {
    run_fault_matrix<duplex::transport::tls, tls_stream>(tls_server_context(), close_phases);
}
// The second crash recipe: clients that send 64 KiB messages and never read.
TEST_CASE("Faults over wss://: slow readers at the send limit and keepalive timeouts",
          "[faults][tls]") {
    run_fault_matrix<duplex::transport::tls, tls_stream>(tls_server_context(), timeout_phases);
}
TEST_CASE("Faults over wss://: stop() with reads and writes in flight", "[faults][tls]") {
    run_stop_in_flight<duplex::transport::tls, tls_stream>(tls_server_context());
}
#endif

// ---- a seeded soak over ws:// and wss:// ------------------------------------------------------

namespace {

// One client's random life: maybe gone before the upgrade; then random messages (sizes from
// 0 to 128 KiB, in 1 to 4 fragments), pings, reads and pauses in reading; then a clean close,
// a reset, an EOF or a plain close with unread bytes.
template <class Stream>
void soak_client(std::uint16_t port, std::mt19937& rng) {
    std::uniform_int_distribution<int> percent(0, 99);
    raw_client<Stream> c(port);
    if (!c.connect_tcp()) return;
    const int early = percent(rng);
    if (early < 4) return c.reset();
    if (!c.handshake()) return;
    if (early < 8) return c.close();
    if (!c.upgrade()) return;
    std::uniform_int_distribution<int> action_count(0, 8);
    std::uniform_int_distribution<int> size_exponent(0, 17);
    std::uniform_int_distribution<int> fragment_count(1, 4);
    for (int a = action_count(rng); a > 0; --a) {
        const int what = percent(rng);
        if (what < 50) {
            const std::size_t size = std::uniform_int_distribution<std::size_t>(
                0, std::size_t{1} << size_exponent(rng))(rng);
            const bool text = percent(rng) < 50;
            const std::string payload(size, text ? 't' : '\x7f');
            const int pieces = fragment_count(rng);
            std::string wire;
            for (int i = 0; i < pieces; ++i) {
                const std::size_t from =
                    size * static_cast<std::size_t>(i) / static_cast<std::size_t>(pieces);
                const std::size_t to =
                    size * static_cast<std::size_t>(i + 1) / static_cast<std::size_t>(pieces);
                const unsigned op =
                    i == 0 ? static_cast<unsigned>(text ? opcode::text : opcode::binary) : 0U;
                const unsigned fin = i + 1 == pieces ? 0x80U : 0U;
                wire += raw_frame(fin | op, std::string_view(payload).substr(from, to - from),
                                  masking::client);
            }
            if (!c.write(wire, 300ms)) break; // the server stopped reading us: a slow reader
        } else if (what < 65) {
            if (!c.write(raw_frame(0x89U, "soak", masking::client), 300ms)) break;
        } else if (what < 85) {
            (void)c.read_at_least(c.received().size() + 1, 20ms);
        } // else: read nothing for now
    }
    const int end = percent(rng);
    if (end < 30) {
        if (c.write(close_frame(1000, masking::client), 300ms)) (void)c.read_until_closed(2s);
        c.close();
    } else if (end < 60) {
        c.reset();
    } else if (end < 80) {
        c.end_sending();
        (void)c.read_until_closed(2s);
        c.close();
    } else {
        c.close(); // with unread bytes the kernel answers with a reset
    }
}

std::uint32_t soak_seed() {
    if (const char* value = std::getenv("DUPLEX_SOAK_SEED"))
        return static_cast<std::uint32_t>(std::strtoul(value, nullptr, 10));
    return 20261202U;
}

duplex::server_options soak_options() { return fault_options(); }

} // namespace

TEST_CASE("Soak: a few hundred random clients over ws:// and wss://, two io threads: every "
          "connection accounted for, no descriptor leaked, the server still serves",
          "[faults][soak]") {
    const std::size_t descriptors_before = open_descriptors();
    const std::uint32_t seed = soak_seed();
    INFO("DUPLEX_SOAK_SEED=" << seed << " reproduces each client's script");
    {
        io_runner runner(2);
        auto echo = [](const auto& c, const duplex::message_view& m) { c->send(m.type, m.data); };
        duplex::server<duplex::transport::tcp> plain(runner.io, soak_options());
        plain.handlers().on_message = echo;
        REQUIRE_FALSE(plain.listen("127.0.0.1", 0));
#if defined(DUPLEX_ENABLE_TLS)
        duplex::server<duplex::transport::tls> secure(runner.io, soak_options(),
                                                      tls_server_context());
        secure.handlers().on_message = echo;
        REQUIRE_FALSE(secure.listen("127.0.0.1", 0));
#endif
        const std::size_t workers = 12;
        const std::size_t per_worker = std::max<std::size_t>(iterations(300) / workers, 1);
        const auto stop_at = clock_type::now() + 20s;
        std::atomic<std::size_t> clients{0};
        std::vector<std::thread> pool;
        for (std::size_t w = 0; w < workers; ++w) {
            pool.emplace_back([&, w] {
                std::mt19937 rng(seed + static_cast<std::uint32_t>(w));
                for (std::size_t i = 0; i < per_worker && clock_type::now() < stop_at; ++i) {
#if defined(DUPLEX_ENABLE_TLS)
                    if (rng() % 2 == 0) {
                        soak_client<tls_stream>(secure.port(), rng);
                        ++clients;
                        continue;
                    }
#endif
                    soak_client<plain_stream>(plain.port(), rng);
                    ++clients;
                }
            });
        }
        for (auto& t : pool) t.join();
        CHECK(clients.load() >= workers);
        CHECK(eventually([&] { return plain.connection_count() + plain.handshake_count() == 0; }));
        CHECK(plain.queued_bytes() == 0);
        check_still_serves<plain_stream>(plain.port(), "after the soak");
#if defined(DUPLEX_ENABLE_TLS)
        CHECK(
            eventually([&] { return secure.connection_count() + secure.handshake_count() == 0; }));
        CHECK(secure.queued_bytes() == 0);
        check_still_serves<tls_stream>(secure.port(), "after the soak");
        secure.stop(0ms);
#endif
        plain.stop(0ms);
    }
    CHECK(open_descriptors() == descriptors_before);
}

// ---- out of file descriptors ---------------------------------------------------------------

// Not under UBSan: its vptr check opens a pipe to probe memory, and so reports every virtual
// call as invalid while the process has no descriptor left. The g++ and TSan flavours run it.
#if !defined(DUPLEX_SANITIZE_UNDEFINED)

namespace {
// Lowers the soft descriptor limit for the life of the object (this process only: ctest runs
// each test case in a process of its own).
struct descriptor_limit {
    rlimit saved{};
    explicit descriptor_limit(rlim_t soft) {
        ::getrlimit(RLIMIT_NOFILE, &saved);
        rlimit lowered = saved;
        lowered.rlim_cur = std::min(soft, saved.rlim_max);
        ::setrlimit(RLIMIT_NOFILE, &lowered);
    }
    ~descriptor_limit() { ::setrlimit(RLIMIT_NOFILE, &saved); }
};

int plain_connect(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd);
        return -1;
    }
    return fd;
}
} // namespace

TEST_CASE("Out of file descriptors: the server pauses accepting instead of spinning, reports "
          "it once, and recovers by itself",
          "[faults][emfile]") {
    io_runner runner(1);
    duplex::server_options options;
    options.accept_backoff = 5ms;
    options.accept_backoff_max = 50ms;
    duplex::server<duplex::transport::tcp> server(runner.io, options);
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
    };
    std::atomic<int> reports{0};
    std::mutex report_mutex;
    std::error_code reported;
    server.handlers().on_accept_error = [&](std::error_code ec) {
        std::lock_guard<std::mutex> lock(report_mutex);
        reported = ec;
        ++reports;
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    const std::uint16_t port = server.port();

    std::vector<int> fillers;
    {
        // The io thread waits while the fillers connect, so that every one of them is still in
        // the kernel's backlog when the descriptors run out: the case a busy server meets, and
        // the one that leaves the least room to recover.
        std::promise<void> io_thread_may_go;
        asio::post(runner.io, [go = io_thread_may_go.get_future()]() mutable { go.wait(); });
        descriptor_limit limit(open_descriptors() + 40);
        // Connect until this process has no descriptor left: the server's accepts of the
        // connections in the backlog then fail with EMFILE.
        for (int i = 0; i < 1000; ++i) {
            const int fd = plain_connect(port);
            if (fd < 0) break;
            fillers.push_back(fd);
        }
        io_thread_may_go.set_value();
        REQUIRE(eventually([&] { return reports.load() > 0; }, 5s));
        // The condition lasts a while: the server must wait, not retry in a loop.
        std::this_thread::sleep_for(300ms);
        CHECK(server.accept_errors() < 1000); // a spinning loop makes tens of thousands
        CHECK(reports.load() == 1);
        {
            std::lock_guard<std::mutex> lock(report_mutex);
            CHECK(reported == asio::error::no_descriptors); // EMFILE
        }
        // Descriptors come back: the server accepts the waiting connections by itself. Each
        // filler kept needs a second descriptor for the server's end, so at most half can stay;
        // a third leaves room even when the server had accepted none before running out.
        const std::size_t closed = fillers.size() - fillers.size() / 3;
        for (std::size_t i = 0; i < closed; ++i) ::close(fillers[i]);
        fillers.erase(fillers.begin(), fillers.begin() + static_cast<std::ptrdiff_t>(closed));
        const std::size_t errors_then = server.accept_errors();
        CHECK(eventually(
            [&] { return server.connection_count() + server.handshake_count() >= fillers.size(); },
            10s));
        CHECK(server.accept_errors() - errors_then < 1000);
    }
    for (int fd : fillers) ::close(fd);
    fillers.clear();
    check_still_serves<plain_stream>(port, "descriptors again");
    CHECK(eventually([&] { return server.connection_count() + server.handshake_count() == 0; }));
    server.stop(0ms);
}
#endif

// ---- the server-wide send budget -----------------------------------------------------------

TEST_CASE("Send budget: many slow readers together stay within the server's budget, and the "
          "connections over it are closed with 1008",
          "[faults][budget]") {
    io_runner runner(2);
    duplex::server_options options;
    constexpr std::size_t budget = 256U * 1024U;
    constexpr std::size_t message_size = 200000;
    options.send_budget = budget;
    options.connection.close_timeout = 300ms;
    options.connection.ping_interval = 0ms;
    options.connection.send_buffer_high_water = 64U * 1024U;
    // Far above what any one client sends: a close here can only come from the budget.
    options.connection.send_buffer_limit = 64U << 20;
    duplex::server<duplex::transport::tcp> server(runner.io, options);
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
    };
    std::mutex m;
    std::vector<duplex::close_info> closes;
    server.handlers().on_close = [&](const auto&, const duplex::close_info& info) {
        std::lock_guard<std::mutex> lock(m);
        closes.push_back(info);
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    const std::uint16_t port = server.port();

    constexpr int clients = 6;
    std::atomic<bool> done{false};
    std::atomic<std::size_t> most_queued{0};
    std::thread watcher([&] {
        while (!done) {
            const std::size_t now = server.queued_bytes();
            std::size_t seen = most_queued.load();
            while (now > seen && !most_queued.compare_exchange_weak(seen, now)) {
            }
            std::this_thread::sleep_for(1ms);
        }
    });
    std::vector<std::thread> pool;
    for (int k = 0; k < clients; ++k) {
        pool.emplace_back([port] {
            raw_client<plain_stream> c(port);
            if (!c.open(4096)) return;
            const std::string message =
                frame(opcode::binary, std::string(message_size, 'q'), masking::client);
            // 40 messages, 8 MB, never reading: more than the socket buffers hold.
            for (int i = 0; i < 40; ++i)
                if (!c.write(message, 10s)) break;
            (void)c.read_until_closed(5s);
            c.reset();
        });
    }
    for (auto& t : pool) t.join();
    CHECK(eventually([&] { return server.connection_count() + server.handshake_count() == 0; }));
    done = true;
    watcher.join();
    // A connection whose queue is empty may always queue one message (admit-one).
    CHECK(most_queued.load() <= budget + clients * (message_size + 14));
    CHECK(server.queued_bytes() == 0);
    std::lock_guard<std::mutex> lock(m);
    REQUIRE(closes.size() == clients);
    std::size_t over_budget = 0;
    std::string outcomes;
    for (const auto& info : closes) {
        if (info.error == duplex::error::send_buffer_full) ++over_budget;
        outcomes += std::to_string(info.code) + " " + info.error.message() + "; ";
    }
    INFO("most queued " << most_queued.load() << " bytes; closes: " << outcomes);
    CHECK(over_budget > 0);
    server.stop(0ms);
}

// ---- misuse that must fail through the completion, never throw on an io thread -------------

#if defined(DUPLEX_ENABLE_TLS)
TEST_CASE("TLS contexts: a client copies its context (a temporary is fine), an empty one fails "
          "with no_transport_context, and a server refuses to listen without one",
          "[faults][tls]") {
    using duplex::transport::tls;
    io_runner runner(1);
    duplex::server<tls> server(runner.io, {}, tls_server_context());
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
    };
    REQUIRE_FALSE(server.listen("127.0.0.1", 0));
    const std::string url = "wss://localhost:" + std::to_string(server.port()) + "/";

    // The context goes out of scope before the connect completes: the operation holds a copy.
    auto pending = duplex::async_connect<tls>(runner.io.get_executor(), url, {},
                                              tls::client_context_insecure(), asio::use_future);
    REQUIRE(pending.wait_for(10s) == std::future_status::ready);
    auto c = pending.get();
    REQUIRE(c);
    auto echoed = c->async_send(opcode::text, "copied context", asio::use_future);
    REQUIRE(echoed.wait_for(10s) == std::future_status::ready);
    auto reply = c->async_read(asio::use_future);
    REQUIRE(reply.wait_for(10s) == std::future_status::ready);
    CHECK(reply.get().data == "copied context");
    c->close();

    // An empty context: an error through the completion, not an exception on the io thread.
    std::promise<std::error_code> failed;
    duplex::async_connect<tls>(runner.io.get_executor(), url, {}, tls::context_type{},
                               [&](std::error_code ec, auto) { failed.set_value(ec); });
    auto failure = failed.get_future();
    REQUIRE(failure.wait_for(10s) == std::future_status::ready);
    CHECK(failure.get() == duplex::error::no_transport_context);

    // No context at all: the verifying default, which refuses the self-signed certificate.
    std::promise<std::error_code> refused;
    duplex::async_connect<tls>(runner.io.get_executor(), url, {},
                               [&](std::error_code ec, auto) { refused.set_value(ec); });
    auto refusal = refused.get_future();
    REQUIRE(refusal.wait_for(10s) == std::future_status::ready);
    const std::error_code verify_error = refusal.get();
    CHECK(verify_error);
    CHECK(verify_error != duplex::error::no_transport_context);

    duplex::server<tls> no_context(runner.io, {}, tls::context_type{});
    CHECK(no_context.listen("127.0.0.1", 0) == duplex::error::no_transport_context);
    server.stop(0ms);
}
#endif
