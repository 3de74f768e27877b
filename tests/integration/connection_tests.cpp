// duplex::connection over the in-memory transport: every error path, deterministically.
//
// Each test builds one connection directly on one end of a memory pipe and drives the other end
// either with a second connection or by hand (a "raw peer" that writes frames built byte by
// byte and keeps everything it reads, to decode afterwards). Faults are injected on the
// connection's end before it is handed over: reads split into chosen pieces, the Nth read or
// write failing, a peer that stops reading (write capacity). The io_context only ever runs for a
// bounded time, and the timeouts in connection_options are tens of milliseconds, so a bug fails
// a check instead of hanging the run. Nothing is timed: tests wait for events (with a generous
// bound that only an absent event reaches), or settle() the io_context (run every handler that
// is ready now) before checking that something did not happen.
#include "catch.hpp"

#include <duplex/connection.hpp>
#include <duplex/transport/memory.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using duplex::error;
using duplex::opcode;
using duplex::send_status;
using duplex::protocol::role;
using memory = duplex::transport::memory;
using mem_connection = duplex::connection<memory>;
using mem_handlers = duplex::connection_handlers<mem_connection>;
using clock_type = std::chrono::steady_clock;

namespace {

std::error_code code(asio::error::basic_errors e) { return asio::error::make_error_code(e); }
std::error_code code(asio::error::misc_errors e) { return asio::error::make_error_code(e); }

role other(role r) { return r == role::server ? role::client : role::server; }

// Keepalive off and a short close deadline; each test turns on what it tests.
duplex::connection_options fast_options() {
    duplex::connection_options o;
    o.ping_interval = 0ms;
    o.close_timeout = 200ms;
    return o;
}

// ---- frames built and decoded by hand, independently of the library's codec ----------------

constexpr std::array<unsigned char, 4> test_key = {0x37, 0xFA, 0x21, 0x3D};

// A frame with the given first byte (FIN, RSV and opcode bits), masked as a client sends it.
std::string raw_frame(unsigned first_byte, std::string_view payload, bool masked) {
    std::string out;
    out.push_back(static_cast<char>(first_byte));
    const unsigned mask_bit = masked ? 0x80U : 0U;
    const std::size_t n = payload.size();
    if (n < 126) {
        out.push_back(static_cast<char>(mask_bit | n));
    } else if (n <= 0xFFFF) {
        out.push_back(static_cast<char>(mask_bit | 126U));
        out.push_back(static_cast<char>((n >> 8) & 0xFFU));
        out.push_back(static_cast<char>(n & 0xFFU));
    } else {
        out.push_back(static_cast<char>(mask_bit | 127U));
        for (int shift = 56; shift >= 0; shift -= 8)
            out.push_back(static_cast<char>((static_cast<std::uint64_t>(n) >> shift) & 0xFFU));
    }
    if (!masked) return out.append(payload);
    for (unsigned char k : test_key) out.push_back(static_cast<char>(k));
    for (std::size_t i = 0; i < n; ++i)
        out.push_back(static_cast<char>(static_cast<unsigned char>(payload[i]) ^ test_key[i % 4]));
    return out;
}

std::string frame(opcode op, std::string_view payload, bool masked, bool fin = true) {
    return raw_frame((fin ? 0x80U : 0U) | static_cast<unsigned>(op), payload, masked);
}

std::string close_payload(std::uint16_t close_code, std::string_view reason = {}) {
    std::string out;
    out.push_back(static_cast<char>(close_code >> 8));
    out.push_back(static_cast<char>(close_code & 0xFFU));
    return out.append(reason);
}

struct wire_frame {
    bool fin = true;
    unsigned op = 0;
    bool masked = false;
    std::string payload;

    bool is(opcode o) const { return op == static_cast<unsigned>(o); }
    bool is_data() const { return is(opcode::text) || is(opcode::binary); }
    std::uint16_t close_code() const {
        if (payload.size() < 2) return 1005;
        return static_cast<std::uint16_t>((static_cast<unsigned char>(payload[0]) << 8) |
                                          static_cast<unsigned char>(payload[1]));
    }
    std::string close_reason() const { return payload.size() > 2 ? payload.substr(2) : ""; }
};

// Every complete frame in `bytes`, unmasked; an incomplete tail is ignored.
std::vector<wire_frame> decode_frames(std::string_view bytes) {
    std::vector<wire_frame> out;
    std::size_t at = 0;
    for (;;) {
        const std::size_t left = bytes.size() - at;
        if (left < 2) break;
        const auto b0 = static_cast<unsigned char>(bytes[at]);
        const auto b1 = static_cast<unsigned char>(bytes[at + 1]);
        std::size_t header = 2;
        std::uint64_t length = b1 & 0x7FU;
        const std::size_t extra = length == 126 ? 2 : length == 127 ? 8 : 0;
        if (left < header + extra) break;
        if (extra != 0) {
            length = 0;
            for (std::size_t i = 0; i < extra; ++i)
                length = (length << 8) | static_cast<unsigned char>(bytes[at + 2 + i]);
            header += extra;
        }
        const bool masked = (b1 & 0x80U) != 0;
        if (masked) header += 4;
        if (left < header || left - header < length) break;
        wire_frame f;
        f.fin = (b0 & 0x80U) != 0;
        f.op = b0 & 0x0FU;
        f.masked = masked;
        f.payload = std::string(bytes.substr(at + header, static_cast<std::size_t>(length)));
        if (masked)
            for (std::size_t i = 0; i < f.payload.size(); ++i)
                f.payload[i] =
                    static_cast<char>(static_cast<unsigned char>(f.payload[i]) ^
                                      static_cast<unsigned char>(bytes[at + header - 4 + i % 4]));
        out.push_back(std::move(f));
        at += header + static_cast<std::size_t>(length);
    }
    return out;
}

std::string describe(opcode op, std::string_view data) {
    return (op == opcode::text ? "t:" : op == opcode::binary ? "b:" : "?:") + std::string(data);
}

std::vector<std::string> data_messages(const std::vector<wire_frame>& frames) {
    std::vector<std::string> out;
    for (const auto& f : frames)
        if (f.is_data()) out.push_back(describe(static_cast<opcode>(f.op), f.payload));
    return out;
}

// ---- the hand-driven end of a pipe -------------------------------------------------------

struct peer_state {
    explicit peer_state(memory::stream_type s) : stream(std::move(s)) {}
    memory::stream_type stream;
    std::string received;
    bool read_ended = false;
    std::error_code read_end;
    std::deque<std::string> outbox;
    bool writing = false;
    std::error_code write_error;
    std::size_t written = 0; // bytes the connection's end accepted
    std::size_t reads = 0;   // reads that delivered bytes
    std::array<char, 4096> buffer{};
};

class raw_peer {
public:
    raw_peer(std::shared_ptr<peer_state> s, bool masks) : s_(std::move(s)), masks_(masks) {}

    peer_state& state() { return *s_; }
    const std::string& received() const { return s_->received; }
    std::vector<wire_frame> frames() const { return decode_frames(s_->received); }
    bool read_ended() const { return s_->read_ended; }
    bool saw_eof() const { return s_->read_ended && s_->read_end == asio::error::eof; }

    // Reads everything the connection writes, until eof or an error.
    void start_reading() { read_loop(s_); }

    // Writes are queued and go out one after another, in order.
    void write(std::string bytes) {
        s_->outbox.push_back(std::move(bytes));
        if (!s_->writing) write_loop(s_);
    }
    void send(opcode op, std::string_view payload, bool fin = true) {
        write(frame(op, payload, masks_, fin));
    }
    void send_close(std::uint16_t close_code, std::string_view reason = {}) {
        write(frame(opcode::close, close_payload(close_code, reason), masks_));
    }
    void close() { s_->stream.close(); }
    void shutdown_send() {
        std::error_code ignored;
        s_->stream.shutdown_send(ignored);
    }

private:
    static void read_loop(std::shared_ptr<peer_state> s) {
        auto& stream = s->stream;
        auto buffer = asio::buffer(s->buffer);
        stream.async_read_some(buffer, [s = std::move(s)](std::error_code ec, std::size_t n) {
            if (ec) {
                s->read_ended = true;
                s->read_end = ec;
                return;
            }
            s->received.append(s->buffer.data(), n);
            ++s->reads;
            read_loop(s);
        });
    }

    static void write_loop(std::shared_ptr<peer_state> s) {
        s->writing = true;
        auto& stream = s->stream;
        auto buffer = asio::buffer(s->outbox.front());
        asio::async_write(stream, buffer, [s = std::move(s)](std::error_code ec, std::size_t n) {
            s->written += n;
            s->outbox.pop_front();
            if (ec) {
                s->write_error = ec;
                s->outbox.clear();
            }
            if (s->outbox.empty()) {
                s->writing = false;
                return;
            }
            write_loop(s);
        });
    }

    std::shared_ptr<peer_state> s_;
    bool masks_;
};

// What a connection's handlers saw.
struct record {
    std::vector<std::string> messages;
    std::vector<std::error_code> errors;
    std::vector<std::string> pongs;
    std::optional<duplex::close_info> closed;
    clock_type::time_point closed_at{};
    int opens = 0;
    bool error_after_close = false;
};

mem_handlers record_into(const std::shared_ptr<record>& r) {
    mem_handlers h;
    h.on_open = [r](const auto&) { ++r->opens; };
    h.on_message = [r](const auto&, const duplex::message_view& m) {
        r->messages.push_back(describe(m.type, m.data));
    };
    h.on_close = [r](const auto&, const duplex::close_info& info) {
        r->closed = info;
        r->closed_at = clock_type::now();
    };
    h.on_error = [r](const auto&, std::error_code ec) {
        if (r->closed) r->error_after_close = true;
        r->errors.push_back(ec);
    };
    h.on_pong = [r](const auto&, std::string_view payload) { r->pongs.emplace_back(payload); };
    return h;
}

// Where an asynchronous operation's result lands. Shared with the handler, so a handler that
// only runs while the harness tears down (after a failed REQUIRE) writes nowhere dangerous.
struct outcome {
    std::shared_ptr<std::optional<std::error_code>> value =
        std::make_shared<std::optional<std::error_code>>();
    auto handler() const {
        return [v = value](std::error_code ec) { *v = ec; };
    }
    bool ready() const { return value->has_value(); }
    std::error_code get() const { return value->value_or(std::error_code{}); }
};

// One io_context, the connections and raw peers of a test, and bounded ways to run it. On the
// way out everything is cut and the io_context drained, so nothing outlives the test.
struct harness {
    asio::io_context io;
    std::vector<std::shared_ptr<mem_connection>> connections;
    std::vector<std::shared_ptr<peer_state>> peers;

    harness() = default;
    harness(const harness&) = delete;
    harness& operator=(const harness&) = delete;
    ~harness() {
        for (auto& c : connections) c->terminate();
        for (auto& p : peers) p->stream.close();
        io.restart();
        io.run_for(200ms);
    }

    std::pair<memory::stream_type, memory::stream_type> pair() {
        return memory::make_pair(io.get_executor());
    }

    std::shared_ptr<mem_connection> connect(memory::stream_type s, role r,
                                            duplex::connection_options o = fast_options(),
                                            std::string_view initial_bytes = {}) {
        auto c = std::make_shared<mem_connection>(std::move(s), r, o, initial_bytes);
        connections.push_back(c);
        return c;
    }

    raw_peer peer(memory::stream_type s, role peer_role) {
        auto state = std::make_shared<peer_state>(std::move(s));
        peers.push_back(state);
        return raw_peer(state, peer_role == role::client);
    }

    // Runs handlers until `done()` or `limit`; returns done(). The default bound is generous:
    // only an event that never comes reaches it, however slow the machine.
    template <class Pred>
    bool run_until(Pred&& done, std::chrono::milliseconds limit = 10s) {
        const auto deadline = clock_type::now() + limit;
        while (!done()) {
            const auto now = clock_type::now();
            if (now >= deadline) return false;
            if (io.stopped()) io.restart();
            const auto step = std::min<clock_type::duration>(deadline - now, 10ms);
            if (io.run_one_for(step) == 0 && io.stopped()) std::this_thread::sleep_for(1ms);
        }
        return true;
    }

    // Runs every handler that is ready, and those they make ready, until none is: all that
    // happens without a timer, however slow the machine (unlike running for a few ms).
    void settle() {
        for (int i = 0; i < 100000; ++i) {
            if (io.stopped()) io.restart();
            if (io.poll() == 0) return;
        }
        FAIL("handlers kept making each other ready: a busy loop");
    }

    // Runs what is ready now, without waiting.
    void poll() {
        if (io.stopped()) io.restart();
        io.poll();
    }
};

} // namespace

// ---- reading in pieces ------------------------------------------------------------------

TEST_CASE("Messages arrive intact when reads deliver 1-byte and odd-sized pieces, both roles, "
          "with pings between fragments",
          "[connection][pieces]") {
    const int pattern = GENERATE(0, 1);
    const role r = GENERATE(role::server, role::client);
    const std::vector<std::size_t> pieces = pattern == 0
                                                ? std::vector<std::size_t>{1}
                                                : std::vector<std::size_t>{3, 7, 1, 13, 2, 64, 5};
    CAPTURE(pattern, r == role::server);

    harness h;
    auto [a, b] = h.pair();
    a.read_chunks(pieces);
    auto c = h.connect(std::move(a), r);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading();

    std::string all_bytes;
    for (int i = 0; i < 256; ++i) all_bytes.push_back(static_cast<char>(i));
    std::string big(65600, '\0'); // a 64-bit length, its header split too
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>('a' + i % 26);
    const std::string utf8 = "h\xC3\xA9llo w\xC3\xB6rld \xE2\x82\xAC";
    const std::size_t cut = utf8.size() - 1; // inside the euro sign

    peer.send(opcode::text, "hello");
    peer.send(opcode::ping, "p1");
    peer.send(opcode::binary, all_bytes);
    peer.send(opcode::text, "frag", false);
    peer.send(opcode::ping, "p2"); // 5.4: control frames may come between fragments
    peer.send(opcode::continuation, "ment", false);
    peer.send(opcode::continuation, "ed");
    peer.send(opcode::text, utf8.substr(0, cut), false);
    peer.send(opcode::continuation, utf8.substr(cut));
    peer.send(opcode::binary, "ab", false);
    peer.send(opcode::continuation, "", false);
    peer.send(opcode::ping, "");
    peer.send(opcode::continuation, "cd");
    peer.send(opcode::text, "");
    peer.send(opcode::binary, big);
    peer.send(opcode::text, "last");
    const std::vector<std::string> expected = {
        "t:hello", "b:" + all_bytes, "t:fragmented", "t:" + utf8, "b:abcd",
        "t:",      "b:" + big,       "t:last"};

    auto rec = std::make_shared<record>();
    auto handlers = record_into(rec);
    handlers.on_message = [rec](const auto& conn, const duplex::message_view& m) {
        rec->messages.push_back(describe(m.type, m.data));
        conn->send(m.type, m.data); // echo: the sending side is exercised as well
    };
    c->start(std::move(handlers));

    // 64 KiB read a byte at a time takes seconds in a Debug or sanitizer build on a busy
    // machine: a bound that only a stuck connection reaches.
    REQUIRE(h.run_until(
        [&] {
            return rec->messages.size() == expected.size() &&
                   data_messages(peer.frames()).size() == expected.size();
        },
        60s));
    CHECK(rec->messages == expected);
    CHECK(rec->errors.empty());
    CHECK_FALSE(rec->closed);

    const auto frames = peer.frames();
    CHECK(data_messages(frames) == expected);
    std::vector<std::string> pongs;
    for (const auto& f : frames) {
        CHECK(f.fin);
        CHECK(f.masked == (r == role::client)); // 5.1 / 5.3
        if (f.is(opcode::pong)) pongs.push_back(f.payload);
    }
    CHECK(pongs == (std::vector<std::string>{"p1", "p2", ""})); // 5.5.3: same payload, in order
}

// ---- transport failures -----------------------------------------------------------------

TEST_CASE("The Nth read failing ends the connection: on_error with that code, then on_close 1006",
          "[connection][errors]") {
    const role r = GENERATE(role::server, role::client);
    CAPTURE(r == role::server);
    const auto reset = code(asio::error::connection_reset);
    harness h;
    auto [a, b] = h.pair();
    a.fail_read(2, reset); // the first read gets "before", the second fails
    auto c = h.connect(std::move(a), r);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading();
    peer.send(opcode::text, "before");

    SECTION("with handlers") {
        auto rec = std::make_shared<record>();
        c->start(record_into(rec));
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->opens == 1);
        CHECK(rec->messages == (std::vector<std::string>{"t:before"}));
        CHECK(rec->errors == (std::vector<std::error_code>{reset}));
        CHECK_FALSE(rec->error_after_close);
        CHECK(rec->closed->code == 1006);
        CHECK(rec->closed->error == reset);
        CHECK(c->result().error == reset);
        CHECK(c->is_closing());
        CHECK(c->send_text("late") == send_status::closed);
    }
    SECTION("with async_read: the pending read completes with the error, and so do later ones") {
        auto shared_reads =
            std::make_shared<std::vector<std::pair<std::error_code, std::string>>>();
        auto& reads = *shared_reads;
        auto read = [&] {
            c->async_read([shared_reads](std::error_code ec, duplex::message m) {
                shared_reads->emplace_back(ec, describe(m.type, m.data));
            });
        };
        read();
        REQUIRE(h.run_until([&] { return reads.size() == 1; }));
        read();
        REQUIRE(h.run_until([&] { return reads.size() == 2; }));
        read();
        REQUIRE(h.run_until([&] { return reads.size() == 3; }));
        CHECK(reads[0].first == std::error_code{});
        CHECK(reads[0].second == "t:before");
        CHECK(reads[1].first == reset);
        CHECK(reads[2].first == reset);
        CHECK(c->result().code == 1006);
        CHECK(c->result().error == reset);
    }
    // The transport was cut, without a close frame.
    REQUIRE(h.run_until([&] { return peer.read_ended(); }));
    CHECK(peer.saw_eof());
    CHECK(peer.frames().empty());
}

TEST_CASE("The Nth write failing ends the connection, queued async_send handlers get the error",
          "[connection][errors]") {
    const auto reset = code(asio::error::connection_reset);
    harness h;
    auto [a, b] = h.pair();
    auto rec = std::make_shared<record>();
    std::vector<outcome> sent(4);
    auto async_send = [&](std::shared_ptr<mem_connection>& c, std::size_t i) {
        c->async_send(opcode::text, "m" + std::to_string(i), sent[i].handler());
    };
    auto all_sent = [&](std::size_t from) {
        return std::all_of(sent.begin() + static_cast<std::ptrdiff_t>(from), sent.end(),
                           [](const outcome& o) { return o.ready(); });
    };

    SECTION("the first write fails: the frame in flight and the frames queued behind it") {
        a.fail_write(1, reset);
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        c->start(record_into(rec));
        for (std::size_t i = 0; i < sent.size(); ++i) async_send(c, i); // m0 alone is in flight
        REQUIRE(h.run_until([&] { return rec->closed && all_sent(0); }));
        for (const auto& o : sent) CHECK(o.get() == reset);
        CHECK(rec->errors == (std::vector<std::error_code>{reset}));
        CHECK(rec->closed->code == 1006);
        CHECK(rec->closed->error == reset);
        CHECK(c->buffered_amount() == 0);
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.received().empty());
        CHECK(peer.saw_eof());
    }
    SECTION("the second write fails: the first message arrives, the rest fail") {
        a.fail_write(2, reset);
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        c->start(record_into(rec));
        async_send(c, 0);
        REQUIRE(h.run_until([&] { return sent[0].ready(); }));
        CHECK(sent[0].get() == std::error_code{});
        for (std::size_t i = 1; i < sent.size(); ++i) async_send(c, i);
        REQUIRE(h.run_until([&] { return rec->closed && all_sent(1); }));
        for (std::size_t i = 1; i < sent.size(); ++i) CHECK(sent[i].get() == reset);
        CHECK(rec->errors == (std::vector<std::error_code>{reset}));
        CHECK(rec->closed->code == 1006);
        CHECK(rec->closed->error == reset);
        CHECK(c->buffered_amount() == 0);
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(data_messages(peer.frames()) == (std::vector<std::string>{"t:m0"}));
    }
    SECTION("the close frame's write fails: async_close completes with the error") {
        const auto broken = code(asio::error::broken_pipe);
        a.fail_write(1, broken);
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        c->start(record_into(rec));
        outcome closed;
        c->async_close(1000, "bye", closed.handler());
        REQUIRE(h.run_until([&] { return rec->closed && closed.ready(); }));
        CHECK(closed.get() == broken);
        CHECK(rec->closed->code == 1006);
        CHECK(rec->closed->error == broken);
        // Every failure is reported once through on_error, then on_close.
        REQUIRE(rec->errors.size() == 1);
        CHECK(rec->errors[0] == broken);
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.received().empty());
    }
}

TEST_CASE(
    "The peer ending the transport without a close frame: on_close 1006 with eof, no on_error",
    "[connection][errors]") {
    const auto eof = code(asio::error::eof);
    harness h;
    auto [a, b] = h.pair();
    const role r = GENERATE(role::server, role::client);
    CAPTURE(r == role::server);
    auto c = h.connect(std::move(a), r);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading();
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    peer.send(opcode::text, "hi");
    REQUIRE(h.run_until([&] { return rec->messages.size() == 1; }));

    SECTION("it closes its end") { peer.close(); }
    SECTION("it shuts down its sending side (half-close)") { peer.shutdown_send(); }
    SECTION("it stops in the middle of a frame") {
        const std::string next = frame(opcode::text, "never whole", r == role::server);
        peer.write(next.substr(0, 5));
        peer.shutdown_send();
    }
    SECTION("it ends the transport instead of answering our close") {
        outcome closed;
        c->async_close(1000, "bye", closed.handler());
        REQUIRE(h.run_until([&] { return !peer.frames().empty(); }));
        CHECK(peer.frames()[0].is(opcode::close));
        peer.close();
        REQUIRE(h.run_until([&] { return closed.ready(); }));
        CHECK(closed.get() == eof);
    }
    REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
    CHECK(rec->messages == (std::vector<std::string>{"t:hi"}));
    CHECK(rec->closed->code == 1006);
    CHECK(rec->closed->error == eof);
    // Documented in on_transport_end: an orderly end of the transport is not a transport
    // failure, so on_error is not called; on_close's 1006 and eof say what happened.
    CHECK(rec->errors.empty());
}

// ---- the close handshake ------------------------------------------------------------------

TEST_CASE("RFC 6455 7.1.2: a close handshake started by either side completes on both ends",
          "[connection][close]") {
    harness h;
    auto [a, b] = h.pair();
    auto server = h.connect(std::move(a), role::server);
    auto client = h.connect(std::move(b), role::client);
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    server->start(record_into(srec));
    client->start(record_into(crec));
    auto both_closed = [&] { return srec->closed && crec->closed; };

    SECTION("the server closes") {
        server->close(4001, "server bye");
        REQUIRE(h.run_until(both_closed));
        CHECK(crec->closed->code == 4001);
        CHECK(crec->closed->reason == "server bye");
        CHECK(srec->closed->code == 4001); // 5.5.1: the reply echoes the code (without a reason)
        CHECK(srec->closed->reason.empty());
    }
    SECTION("the client closes, with async_close") {
        outcome done;
        client->async_close(4002, "client bye", done.handler());
        REQUIRE(h.run_until([&] { return both_closed() && done.ready(); }));
        CHECK(done.get() == std::error_code{});
        CHECK(srec->closed->code == 4002);
        CHECK(srec->closed->reason == "client bye");
        CHECK(crec->closed->code == 4002);
        CHECK(crec->closed->reason.empty());
    }
    SECTION("a close without a code is 1005 on both ends") {
        client->close(1005);
        REQUIRE(h.run_until(both_closed));
        CHECK(srec->closed->code == 1005);
        CHECK(crec->closed->code == 1005);
    }
    SECTION("messages queued before close() go out before the close frame") {
        server->send_text("one");
        server->send_binary("two");
        server->close(1000, "after two");
        REQUIRE(h.run_until(both_closed));
        CHECK(crec->messages == (std::vector<std::string>{"t:one", "b:two"}));
        CHECK(crec->closed->code == 1000);
        CHECK(crec->closed->reason == "after two");
    }
    SECTION("an invalid code or reason from the application closes with 1000") {
        const bool bad_code = GENERATE(true, false);
        if (bad_code)
            server->close(1006, "local only");
        else
            server->close(4000, std::string(124, 'r')); // over 123 bytes
        REQUIRE(h.run_until(both_closed));
        CHECK(crec->closed->code == 1000);
        CHECK(crec->closed->reason.empty());
    }
    CHECK(srec->errors.empty());
    CHECK(crec->errors.empty());
    CHECK(srec->closed->error == std::error_code{});
    CHECK(crec->closed->error == std::error_code{});
    CHECK(server->result().error == std::error_code{});
    CHECK(client->result().error == std::error_code{});
    CHECK(server->send_text("x") == send_status::closed);
    CHECK(client->send_text("x") == send_status::closed);
}

TEST_CASE("close() takes effect at once for its caller: is_closing() and send() see it",
          "[connection][close]") {
    // is_closing(): "True once close() was called"; send(): "closed: not queued: the
    // connection is closing or closed". A send() after close() on the same thread must not
    // answer ok for a message that is then silently discarded.
    harness h;
    auto [a, b] = h.pair();
    auto server = h.connect(std::move(a), role::server);
    auto client = h.connect(std::move(b), role::client);
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    server->start(record_into(srec));
    client->start(record_into(crec));
    server->send_text("before");
    server->close(1000, "bye");
    CHECK(server->is_closing());
    const auto late = server->send_text("after");
    CHECK(late == send_status::closed);
    REQUIRE(h.run_until([&] { return srec->closed && crec->closed; }));
    CHECK(crec->messages == (std::vector<std::string>{"t:before"}));
    CHECK(server->buffered_amount() == 0);
}

TEST_CASE("RFC 6455 7.1.1: after the close handshake the server ends the TCP connection first",
          "[connection][close]") {
    harness h;
    auto [a, b] = h.pair();
    auto rec = std::make_shared<record>();

    SECTION("our server ends it without waiting for the client") {
        auto server = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        server->start(record_into(rec));
        server->close(1000, "bye");
        REQUIRE(h.run_until([&] { return !peer.frames().empty(); }));
        CHECK(peer.frames()[0].close_code() == 1000);
        CHECK(peer.frames()[0].close_reason() == "bye");
        peer.send_close(1000);
        // The server shuts its side down while the client still holds its end open ...
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.saw_eof());
        CHECK_FALSE(rec->closed); // ... and reads until the client closes too.
        peer.close();
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == 1000);
        CHECK(rec->closed->error == std::error_code{});
        CHECK(peer.frames().size() == 1);
    }
    SECTION("our client waits for the server to end it") {
        auto client = h.connect(std::move(a), role::client);
        auto peer = h.peer(std::move(b), role::server);
        peer.start_reading();
        client->start(record_into(rec));
        peer.send_close(1000, "bye");
        REQUIRE(h.run_until([&] { return !peer.frames().empty(); }));
        const auto reply = peer.frames()[0];
        CHECK(reply.is(opcode::close));
        CHECK(reply.masked);
        CHECK(reply.close_code() == 1000);
        h.settle();
        CHECK_FALSE(peer.read_ended()); // the client did not end the transport
        CHECK_FALSE(rec->closed);
        peer.shutdown_send();
        REQUIRE(h.run_until([&] { return rec->closed && peer.read_ended(); }));
        CHECK(rec->closed->code == 1000);
        CHECK(rec->closed->reason == "bye");
        CHECK(rec->closed->error == std::error_code{});
        CHECK(peer.saw_eof());
    }
    SECTION("our client ends it itself after close_timeout when the server never does") {
        auto options = fast_options();
        options.close_timeout = 60ms;
        auto client = h.connect(std::move(a), role::client, options);
        auto peer = h.peer(std::move(b), role::server);
        peer.start_reading();
        client->start(record_into(rec));
        const auto t0 = clock_type::now();
        peer.send_close(1001, "going");
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed_at - t0 >= 60ms);
        CHECK(rec->closed->code == 1001);
        CHECK(rec->closed->error == std::error_code{}); // the handshake itself completed
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.saw_eof());
    }
    CHECK(rec->errors.empty());
}

TEST_CASE("Close timeout: a peer that never answers our close is cut after close_timeout",
          "[connection][close][timeouts]") {
    const role r = GENERATE(role::server, role::client);
    CAPTURE(r == role::server);
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.close_timeout = 60ms;
    auto c = h.connect(std::move(a), r, options);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading(); // it reads, but never answers
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    const auto t0 = clock_type::now();
    outcome done;
    c->async_close(1000, "bye", done.handler());
    REQUIRE(h.run_until([&] { return rec->closed && done.ready(); }));
    CHECK(rec->closed_at - t0 >= 60ms); // not before close_timeout (a timer never fires early)
    CHECK(done.get() == error::timed_out);
    CHECK(rec->closed->error == error::timed_out);
    CHECK(rec->closed->code == 1006);
    REQUIRE(rec->errors.size() == 1); // a timeout is a failure: on_error, then on_close
    CHECK(rec->errors[0] == error::timed_out);
    REQUIRE(h.run_until([&] { return peer.read_ended(); }));
    CHECK(peer.saw_eof());
    const auto frames = peer.frames();
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].is(opcode::close));
    CHECK(frames[0].masked == (r == role::client));
    CHECK(frames[0].close_code() == 1000);
    CHECK(frames[0].close_reason() == "bye");
}

// ---- protocol errors from the peer --------------------------------------------------------

TEST_CASE("RFC 6455 7.1.7: a peer's protocol error fails the connection with 1002/1007/1009, "
          "we end the transport",
          "[connection][errors][protocol]") {
    struct violation {
        const char* name;
        role ours;
        std::string bytes;
        error expected;
        std::uint16_t close_code;
        duplex::protocol::session_options limits = {};
    };
    const std::string long_length = std::string("\x82\xFF\x80\0\0\0\0\0\0\0", 10) + "abcd";
    const std::string short_in_16_bits = std::string("\x82\xFE\x00\x05", 4) + "abcd" + "hello";
    duplex::protocol::session_options small_messages;
    small_messages.max_message_size = 64;
    duplex::protocol::session_options few_fragments;
    few_fragments.max_fragments = 3;
    const std::vector<violation> cases = {
        {"5.1: an unmasked frame to a server", role::server, frame(opcode::text, "hi", false),
         error::mask_required, 1002},
        {"5.1: a masked frame to a client", role::client, frame(opcode::text, "hi", true),
         error::unexpected_mask, 1002},
        {"5.2: reserved opcode 3", role::server, raw_frame(0x83, "", true), error::reserved_opcode,
         1002},
        {"5.2: reserved control opcode 0xB", role::client, raw_frame(0x8B, "", false),
         error::reserved_opcode, 1002},
        {"5.2: RSV1 without an extension", role::server, raw_frame(0xC1, "hi", true),
         error::reserved_bits, 1002},
        {"5.2: a 64-bit length with its top bit set", role::server, long_length,
         error::length_msb_set, 1002},
        {"5.2: a length not in its shortest form", role::server, short_in_16_bits,
         error::non_minimal_length, 1002},
        {"5.5: a ping of 126 bytes", role::server, frame(opcode::ping, std::string(126, 'p'), true),
         error::control_too_big, 1002},
        {"5.5: a fragmented ping", role::server, frame(opcode::ping, "p", true, false),
         error::control_fragmented, 1002},
        {"5.4: a continuation with no message", role::server,
         frame(opcode::continuation, "x", true), error::unexpected_continuation, 1002},
        {"5.4: a new message inside a fragmented one", role::client,
         frame(opcode::text, "a", false, false) + frame(opcode::text, "b", false),
         error::expected_continuation, 1002},
        {"8.1: invalid UTF-8 in a text message", role::server,
         frame(opcode::text, "\xC3\x28", true), error::invalid_utf8, 1007},
        {"8.1: invalid UTF-8 in a text message to a client", role::client,
         frame(opcode::text, "ok\xFF", false), error::invalid_utf8, 1007},
        {"8.1: a fragmented text message that ends inside a UTF-8 sequence", role::server,
         frame(opcode::text, "ok\xE2\x82", true, false) + frame(opcode::continuation, "", true),
         error::invalid_utf8, 1007},
        {"5.5.1: a close payload of one byte", role::server,
         frame(opcode::close, std::string(1, '\x03'), true), error::bad_close_payload, 1002},
        {"7.4: close code 1005 on the wire", role::server,
         frame(opcode::close, close_payload(1005), true), error::bad_close_code, 1002},
        {"5.5.1: a close reason that is not UTF-8", role::client,
         frame(opcode::close, close_payload(1000, "\xFF"), false), error::invalid_utf8, 1007},
        {"10.4: a message over max_message_size", role::server,
         frame(opcode::binary, std::string(65, 'x'), true), error::message_too_big, 1009,
         small_messages},
        {"10.4: more fragments than max_fragments", role::client,
         frame(opcode::binary, "a", false, false) + frame(opcode::continuation, "b", false, false) +
             frame(opcode::continuation, "c", false, false) +
             frame(opcode::continuation, "d", false),
         error::too_many_fragments, 1009, few_fragments},
    };

    for (const auto& v : cases) {
        INFO(v.name);
        harness h;
        auto [a, b] = h.pair();
        auto options = fast_options();
        options.protocol = v.limits;
        auto c = h.connect(std::move(a), v.ours, options);
        auto peer = h.peer(std::move(b), other(v.ours));
        peer.start_reading();
        peer.send(opcode::text, "ok");
        peer.write(v.bytes);
        peer.send(opcode::text, "after"); // ignored: nothing is processed after the failure
        auto rec = std::make_shared<record>();
        c->start(record_into(rec));

        // We failed the connection, so we end the transport first, without waiting for the peer.
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        CHECK(peer.saw_eof());
        CHECK_FALSE(rec->closed); // still reading until the peer ends its side
        CHECK(rec->messages == (std::vector<std::string>{"t:ok"}));
        CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(v.expected)}));
        const auto frames = peer.frames();
        REQUIRE(frames.size() == 1);
        CHECK(frames[0].is(opcode::close));
        CHECK(frames[0].masked == (v.ours == role::client));
        CHECK(frames[0].close_code() == v.close_code);
        CHECK(frames[0].close_reason() == make_error_code(v.expected).message());
        CHECK(c->send_text("x") == send_status::closed);

        peer.close();
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == v.close_code);
        CHECK(rec->closed->error == v.expected);
        CHECK(rec->closed->reason == make_error_code(v.expected).message());
        CHECK(rec->errors.size() == 1);
    }
}

// ---- backpressure and the write queue -------------------------------------------------------

TEST_CASE("Backpressure: ok, then backpressure past the high-water mark, then dropped past the "
          "limit, the connection closes with send_buffer_full",
          "[connection][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(256); // the peer's receive window: the rest waits until it reads
    auto options = fast_options();
    options.send_buffer_high_water = 1000;
    options.send_buffer_limit = 4000;
    options.close_timeout = 80ms;
    auto c = h.connect(std::move(a), role::server, options);
    auto peer = h.peer(std::move(b), role::client); // not reading yet
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    h.poll();

    constexpr std::size_t cost = 100 + duplex::protocol::max_frame_header_size;
    std::vector<std::string> payloads;
    std::vector<send_status> statuses;
    for (std::size_t i = 0; i < 60; ++i) {
        std::string payload = std::to_string(i);
        payload.resize(100, '.');
        const std::size_t before = c->buffered_amount();
        const bool closing = c->is_closing();
        const auto status = c->send_binary(payload);
        INFO("message " << i << ", " << before << " bytes buffered before it");
        if (closing)
            CHECK(status == send_status::closed);
        else if (before + cost > options.send_buffer_limit)
            CHECK(status == send_status::dropped);
        else if (before + cost > options.send_buffer_high_water)
            CHECK(status == send_status::backpressure);
        else
            CHECK(status == send_status::ok);
        statuses.push_back(status);
        if (status == send_status::ok || status == send_status::backpressure)
            payloads.push_back("b:" + payload);
        CHECK(c->buffered_amount() <= options.send_buffer_limit);
        h.poll();
        CHECK(c->buffered_amount() <= options.send_buffer_limit);
    }
    CHECK(std::is_sorted(statuses.begin(), statuses.end())); // ok < backpressure < dropped < closed
    for (auto s :
         {send_status::ok, send_status::backpressure, send_status::dropped, send_status::closed})
        CHECK(std::count(statuses.begin(), statuses.end(), s) > 0);
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::send_buffer_full)}));
    CHECK(c->is_closing());

    SECTION("the peer reads again: it gets the frames already in flight, then close 1008") {
        peer.start_reading();
        auto has_close = [&] {
            const auto f = peer.frames();
            return !f.empty() && f.back().is(opcode::close);
        };
        REQUIRE(h.run_until(has_close));
        const auto frames = peer.frames();
        const auto got = data_messages(frames);
        REQUIRE_FALSE(got.empty());
        CHECK(got.size() + 1 == frames.size());
        CHECK(std::equal(got.begin(), got.end(), payloads.begin())); // a prefix, in order
        CHECK(frames.back().close_code() == 1008);
        CHECK(frames.back().close_reason() == "send buffer limit");
        peer.send_close(1008);
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == 1008);
    }
    SECTION("the peer never reads: the close deadline cuts the transport") {
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == 1008);
        CHECK(rec->closed->reason == "send buffer limit");
    }
    CHECK(rec->closed->error == error::send_buffer_full);
    CHECK(c->buffered_amount() == 0);
    CHECK(rec->errors.size() == 1);
}

TEST_CASE("async_send is bounded by send_buffer_limit too", "[connection][backpressure]") {
    // A slow reader must not make our memory grow without bound (issue 3), whichever way the
    // application sends. send() enforces the limit; async_send reserves its bytes without
    // looking at it.
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(0); // the peer reads nothing at all
    auto options = fast_options();
    options.send_buffer_high_water = 1000;
    options.send_buffer_limit = 4000;
    auto c = h.connect(std::move(a), role::server, options);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    auto results = std::make_shared<std::vector<std::error_code>>();
    std::size_t peak = 0;
    for (int i = 0; i < 100; ++i) {
        c->async_send(opcode::binary, std::string(100, 'x'),
                      [results](std::error_code ec) { results->push_back(ec); });
        peak = std::max(peak, c->buffered_amount());
        h.poll();
    }
    CHECK(peak <= options.send_buffer_limit);
    CHECK(std::count(results->begin(), results->end(), make_error_code(error::send_buffer_full)) >
          0);
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::send_buffer_full)}));
}

TEST_CASE("Control frames go before queued data in the next write: a pong or a close reply is not "
          "stuck behind the queue",
          "[connection][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(64); // the first message stalls part-way until the peer reads
    auto c = h.connect(std::move(a), role::server);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    std::vector<outcome> sent(3);
    const std::vector<std::string> payloads = {std::string(1000, 'A'), "BBBB", "CCCC"};
    for (std::size_t i = 0; i < payloads.size(); ++i)
        c->async_send(opcode::binary, payloads[i], sent[i].handler());
    h.settle(); // A is in flight and stalled; B and C wait in the queue
    CHECK(c->buffered_amount() == 1000 + 4 + 4 + 3 * duplex::protocol::max_frame_header_size);
    CHECK_FALSE(sent[0].ready());

    SECTION("a pong overtakes the queued messages") {
        peer.send(opcode::ping, "urgent");
        h.settle(); // the ping is read and its pong queued while A is still being written
        peer.start_reading();
        REQUIRE(h.run_until([&] { return peer.frames().size() == 4; }));
        const auto frames = peer.frames();
        CHECK(frames[0].payload == payloads[0]);
        CHECK(frames[1].is(opcode::pong));
        CHECK(frames[1].payload == "urgent");
        CHECK(frames[2].payload == payloads[1]);
        CHECK(frames[3].payload == payloads[2]);
        REQUIRE(h.run_until([&] { return sent[2].ready(); }));
        for (const auto& o : sent) CHECK(o.get() == std::error_code{});
        CHECK_FALSE(rec->closed);
    }
    SECTION("the close reply follows the frame in flight; the queued ones are dropped") {
        peer.send_close(1000, "stop");
        h.settle();
        CHECK(c->is_closing());
        peer.start_reading();
        REQUIRE(h.run_until([&] { return peer.read_ended(); })); // the server ended first
        const auto frames = peer.frames();
        REQUIRE(frames.size() == 2);
        CHECK(frames[0].payload == payloads[0]);
        CHECK(frames[1].is(opcode::close));
        CHECK(frames[1].close_code() == 1000);
        REQUIRE(h.run_until([&] { return sent[2].ready(); }));
        CHECK(sent[0].get() == std::error_code{});
        CHECK(sent[1].get() == error::closed);
        CHECK(sent[2].get() == error::closed);
        peer.close();
        REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
        CHECK(rec->closed->code == 1000);
        CHECK(rec->closed->reason == "stop");
        CHECK(rec->closed->error == std::error_code{});
    }
    CHECK(rec->errors.empty());
}

TEST_CASE("Answers sent from on_message while one read is parsed leave in one write",
          "[connection][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    auto c = h.connect(std::move(a), role::server);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    auto handlers = record_into(rec);
    handlers.on_message = [](const auto& conn, const duplex::message_view& m) {
        conn->send(m.type, m.data);
        conn->send(opcode::text, "ack");
    };
    c->start(std::move(handlers));
    // The peer's read is pending before the messages go out: a write per answer would
    // complete it with the first answer alone.
    peer.start_reading();
    h.settle();
    peer.write(frame(opcode::text, "one", true) + frame(opcode::binary, "two", true) +
               frame(opcode::text, "three", true));
    REQUIRE(h.run_until([&] { return peer.frames().size() == 6; }));
    CHECK(peer.state().reads == 1);
    CHECK(data_messages(peer.frames()) ==
          std::vector<std::string>{"t:one", "t:ack", "b:two", "t:ack", "t:three", "t:ack"});
    CHECK(c->buffered_amount() == 0);
}

TEST_CASE("Answers to messages read together with a close or a protocol error go out before our "
          "close frame",
          "[connection][close]") {
    // Answers wait for the end of the read (one write per read); a close or an error later in
    // that read must not drop them: Autobahn 7.1.1, 3.2, 4.1.3 and others expect the echo.
    struct ending {
        const char* what;
        std::string bytes;
        std::uint16_t code;
    };
    const auto end = GENERATE(
        ending{"the peer's close", frame(opcode::close, std::string("\x03\xE8", 2), true), 1000},
        ending{"a frame with RSV2 set (5.2)", raw_frame(0xA1, "bad", true), 1002});
    CAPTURE(end.what);
    harness h;
    auto [a, b] = h.pair();
    auto c = h.connect(std::move(a), role::server);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    auto handlers = record_into(rec);
    handlers.on_message = [](const auto& conn, const duplex::message_view& m) {
        conn->send(m.type, m.data);
    };
    c->start(std::move(handlers));
    peer.start_reading();
    peer.write(frame(opcode::text, "Hello, world!", true) + end.bytes);
    REQUIRE(h.run_until([&] { return peer.read_ended(); }));
    const auto frames = peer.frames();
    REQUIRE(frames.size() == 2);
    CHECK(frames[0].is(opcode::text));
    CHECK(frames[0].payload == "Hello, world!");
    CHECK(frames[1].is(opcode::close));
    CHECK(frames[1].close_code() == end.code);
}

TEST_CASE("A ping flood from a peer that does not read fails with control_backlog, bounded",
          "[connection][backpressure]") {
    harness h;
    auto [a, b] = h.pair();
    a.write_capacity(0);    // we can write nothing: the peer does not read
    b.write_capacity(2048); // and what it sends us waits in at most 2 KiB until we read it
    auto options = fast_options();
    options.read_buffer_size = 1024;
    auto c = h.connect(std::move(a), role::server, options);
    auto peer = h.peer(std::move(b), role::client);
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));

    const std::string ping = frame(opcode::ping, std::string(125, 'p'), true);
    constexpr std::size_t flood = 5000;
    std::string pings;
    for (std::size_t i = 0; i < flood; ++i) pings += ping;
    peer.write(pings);
    REQUIRE(h.run_until([&] { return rec->closed && !peer.state().writing; }));
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::control_backlog)}));
    CHECK(rec->closed->error == error::control_backlog);
    CHECK(rec->closed->code == 1006);
    CHECK(peer.state().write_error == code(asio::error::connection_reset));
    // The connection stopped reading once about 64 KiB of pongs (127 bytes each) piled up:
    // at most one read buffer more, one in flight, and the 2 KiB window in the pipe.
    const std::size_t accepted = peer.state().written / ping.size();
    const std::size_t bound = (64 * 1024 + 2 * options.read_buffer_size + 2048) / 127 + 4;
    CAPTURE(accepted, bound);
    CHECK(accepted <= bound);
    CHECK(accepted < flood);
    CHECK(c->buffered_amount() == 0);
}

// ---- keepalive and idle timeout -----------------------------------------------------------

TEST_CASE("Keepalive: a silent peer is dropped with timed_out after ping_interval + pong_timeout",
          "[connection][timeouts]") {
    const role r = GENERATE(role::server, role::client);
    CAPTURE(r == role::server);
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.ping_interval = 30ms;
    options.pong_timeout = 40ms;
    const auto t0 = clock_type::now(); // before the connection: its silence counts from there
    auto c = h.connect(std::move(a), r, options);
    auto peer = h.peer(std::move(b), other(r));
    peer.start_reading(); // reads our ping, never answers anything
    auto rec = std::make_shared<record>();
    c->start(record_into(rec));
    REQUIRE(h.run_until([&] { return rec->closed.has_value(); }));
    CHECK(rec->closed_at - t0 >= 70ms); // not before ping_interval + pong_timeout
    CHECK(rec->errors == (std::vector<std::error_code>{make_error_code(error::timed_out)}));
    CHECK(rec->closed->error == error::timed_out);
    CHECK(rec->closed->code == 1006);
    REQUIRE(h.run_until([&] { return peer.read_ended(); }));
    CHECK(peer.saw_eof());
    const auto frames = peer.frames();
    REQUIRE(frames.size() == 1);
    CHECK(frames[0].is(opcode::ping));
    CHECK(frames[0].masked == (r == role::client));
}

TEST_CASE("Keepalive: a peer that answers pings stays open", "[connection][timeouts]") {
    // Counted, not timed: the test runs until the server has had pongs for several pings spread
    // over more than two pong_timeouts, so a keepalive that ignored the answers would have
    // closed first; nothing asserts how long that took. The pong_timeout is generous, so a slow
    // (sanitizer) run cannot miss it by accident.
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.ping_interval = 10ms;
    options.pong_timeout = 500ms;
    constexpr std::size_t enough_pongs = 3;
    auto server = h.connect(std::move(a), role::server, options);
    auto client = h.connect(std::move(b), role::client); // keepalive off: it only answers
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    const auto t0 = clock_type::now();
    server->start(record_into(srec));
    client->start(record_into(crec));
    const auto spans_two_timeouts = [&] {
        return clock_type::now() - t0 > 2 * options.pong_timeout;
    };
    REQUIRE(h.run_until(
        [&] {
            return (srec->pongs.size() >= enough_pongs && spans_two_timeouts()) || srec->closed ||
                   crec->closed;
        },
        30s));
    CHECK_FALSE(srec->closed);
    CHECK_FALSE(crec->closed);
    CHECK(srec->pongs.size() >= enough_pongs);
    CHECK(srec->errors.empty());
    server->close();
    REQUIRE(h.run_until([&] { return srec->closed && crec->closed; }));
    CHECK(srec->closed->error == std::error_code{});
    CHECK(crec->closed->error == std::error_code{});
}

TEST_CASE("Idle timeout: no message either way for idle_timeout closes with 1001",
          "[connection][timeouts]") {
    harness h;
    auto [a, b] = h.pair();
    auto options = fast_options();
    options.idle_timeout = 50ms;
    const auto t0 = clock_type::now(); // before the connection: idleness counts from there
    auto server = h.connect(std::move(a), role::server, options);
    auto client = h.connect(std::move(b), role::client);
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    server->start(record_into(srec));
    client->start(record_into(crec));
    REQUIRE(h.run_until([&] { return srec->closed && crec->closed; }));
    CHECK(srec->closed_at - t0 >= 50ms);
    CHECK(crec->closed->code == 1001);
    CHECK(crec->closed->reason == "idle timeout");
    CHECK(srec->closed->code == 1001);
    CHECK(srec->closed->error == std::error_code{});
    CHECK(crec->closed->error == std::error_code{});
    CHECK(srec->errors.empty());
}

// ---- async operations -------------------------------------------------------------------

TEST_CASE("async_read: messages in order, leftovers kept for the next read, and its errors",
          "[connection][async]") {
    harness h;
    auto [a, b] = h.pair();
    using read_list = std::vector<std::pair<std::error_code, std::string>>;
    auto shared_reads = std::make_shared<read_list>();
    read_list& reads = *shared_reads;
    auto read_into = [&](const std::shared_ptr<mem_connection>& c) {
        c->async_read([shared_reads](std::error_code ec, duplex::message m) {
            shared_reads->emplace_back(ec, describe(m.type, m.data));
        });
    };
    auto reads_done = [&](std::size_t n) { return h.run_until([&] { return reads.size() >= n; }); };

    SECTION("several frames in one transport read come out one per async_read") {
        // A second transport read would fail: everything after the first message must come
        // from the bytes the first read left over.
        a.fail_read(2, code(asio::error::connection_reset));
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        peer.write(frame(opcode::text, "one", true) + frame(opcode::binary, "two", true) +
                   frame(opcode::text, "thr", true, false) + frame(opcode::ping, "p", true) +
                   frame(opcode::continuation, "ee", true));
        for (std::size_t i = 1; i <= 3; ++i) {
            read_into(c);
            REQUIRE(reads_done(i));
        }
        CHECK(reads == (read_list{{{}, "t:one"}, {{}, "b:two"}, {{}, "t:three"}}));
        REQUIRE(h.run_until([&] { return !peer.frames().empty(); }));
        CHECK(peer.frames()[0].is(opcode::pong));
        read_into(c); // now the transport is read again, and fails
        REQUIRE(reads_done(4));
        CHECK(reads[3].first == asio::error::connection_reset);
    }
    SECTION("a second concurrent async_read fails with operation_in_progress") {
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        read_into(c);
        read_into(c);
        REQUIRE(reads_done(1));
        CHECK(reads[0].first == error::operation_in_progress);
        peer.send(opcode::text, "first one wins");
        REQUIRE(reads_done(2));
        CHECK(reads[1] == std::make_pair(std::error_code{}, std::string("t:first one wins")));
    }
    SECTION("a pending async_read ends with the close handshake; later ones fail with closed") {
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        peer.start_reading();
        read_into(c);
        peer.send_close(1000, "bye");
        REQUIRE(h.run_until([&] { return peer.read_ended(); }));
        peer.close();
        REQUIRE(reads_done(1));
        CHECK(reads[0].first == error::closed);
        CHECK(c->result().code == 1000);
        CHECK(c->result().error == std::error_code{});
        read_into(c);
        REQUIRE(reads_done(2));
        CHECK(reads[1].first == error::closed);
    }
    SECTION("async_read on a connection started with handlers fails with operation_in_progress") {
        auto c = h.connect(std::move(a), role::server);
        auto peer = h.peer(std::move(b), role::client);
        auto rec = std::make_shared<record>();
        c->start(record_into(rec));
        read_into(c);
        REQUIRE(reads_done(1));
        CHECK(reads[0].first == error::operation_in_progress);
    }
    SECTION("bytes given to the constructor (after the HTTP head) are read first") {
        const std::string initial =
            frame(opcode::text, "early", true) + frame(opcode::text, "ear", true, false);
        auto c = h.connect(std::move(a), role::server, fast_options(), initial);
        auto peer = h.peer(std::move(b), role::client);
        peer.send(opcode::continuation, "lier");
        read_into(c);
        REQUIRE(reads_done(1));
        read_into(c);
        REQUIRE(reads_done(2));
        CHECK(reads[0].second == "t:early");
        CHECK(reads[1].second == "t:earlier");
    }
}

TEST_CASE("async_ping completes once written, its errors", "[connection][async]") {
    harness h;
    auto [a, b] = h.pair();
    auto c = h.connect(std::move(a), role::client);
    auto peer = h.peer(std::move(b), role::server);
    peer.start_reading();
    auto shared_pings = std::make_shared<std::vector<std::error_code>>();
    auto& pings = *shared_pings;
    auto ping = [&](std::string payload) {
        c->async_ping(std::move(payload),
                      [shared_pings](std::error_code ec) { shared_pings->push_back(ec); });
    };
    ping("hello?");
    REQUIRE(h.run_until([&] { return pings.size() == 1; }));
    CHECK(pings[0] == std::error_code{});
    REQUIRE(peer.frames().size() == 1);
    CHECK(peer.frames()[0].is(opcode::ping));
    CHECK(peer.frames()[0].masked);
    CHECK(peer.frames()[0].payload == "hello?");

    ping(std::string(126, 'x'));
    REQUIRE(h.run_until([&] { return pings.size() == 2; }));
    CHECK(pings[1] == error::control_payload_too_big);

    c->terminate();
    ping("late");
    REQUIRE(h.run_until([&] { return pings.size() == 3; }));
    CHECK(pings[2] == error::closed);
}

// ---- handlers are never re-entered ---------------------------------------------------------

TEST_CASE("close() from inside on_message does not run on_message again inside it",
          "[connection][handlers]") {
    // A connection's handlers never run concurrently, and (as with Asio's own handlers) one is
    // not entered while another is still running: the message view given to on_message stays
    // valid for the whole call, even when the handler calls close() or send().
    harness h;
    auto [a, b] = h.pair();
    auto c = h.connect(std::move(a), role::server);
    auto peer = h.peer(std::move(b), role::client);
    peer.start_reading();
    const std::string first(3000, 'f'); // reassembled from two fragments: held by the session
    peer.write(frame(opcode::text, first.substr(0, 1500), true, false) +
               frame(opcode::continuation, first.substr(1500), true) +
               frame(opcode::text, "second", true));
    auto rec = std::make_shared<record>();
    auto depth = std::make_shared<int>(0);
    auto max_depth = std::make_shared<int>(0);
    auto shared_finished = std::make_shared<std::vector<std::string>>();
    auto& finished = *shared_finished; // in the order the handler calls returned
    auto handlers = record_into(rec);
    handlers.on_message = [rec, depth, max_depth, shared_finished](const auto& conn,
                                                                   const duplex::message_view& m) {
        *max_depth = std::max(*max_depth, ++*depth);
        const std::string copy(m.data); // taken before close(): see the report on re-entry
        rec->messages.push_back(describe(m.type, copy));
        if (rec->messages.size() == 1) conn->close(1000, "enough");
        shared_finished->push_back(copy.substr(0, 6));
        --*depth;
    };
    c->start(std::move(handlers));
    REQUIRE(h.run_until([&] { return rec->messages.size() == 2; }));
    CHECK(*max_depth == 1);
    CHECK(finished == (std::vector<std::string>{"ffffff", "second"}));
    CHECK(rec->messages == (std::vector<std::string>{"t:" + first, "t:second"}));
}

// ---- threads ------------------------------------------------------------------------------

TEST_CASE("send and close from other threads while the io runs on its own: per-sender order",
          "[connection][threads]") {
    const unsigned io_threads = GENERATE(1U, 2U);
    CAPTURE(io_threads);
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    auto [a, b] = memory::make_pair(io.get_executor());
    auto options = fast_options();
    // Generous: a clean close is asserted below, and hundreds of queued messages on a busy
    // machine must not turn it into a timeout.
    options.close_timeout = 5s;
    auto server = std::make_shared<mem_connection>(std::move(a), role::server, options);
    auto client = std::make_shared<mem_connection>(std::move(b), role::client, options);

    struct shared_record {
        std::mutex m;
        std::condition_variable cv;
        std::vector<std::string> at_client, at_server;
        std::optional<duplex::close_info> server_closed, client_closed;
        std::atomic<int> busy[2] = {0, 0}; // handlers running, per connection
        std::atomic<bool> overlapped{false};
        void enter(bool is_server) {
            if (busy[is_server ? 1 : 0].fetch_add(1) != 0) overlapped = true;
        }
        void leave(bool is_server) { busy[is_server ? 1 : 0].fetch_sub(1); }
    };
    auto rec = std::make_shared<shared_record>();
    auto handlers_for = [rec](bool is_server) {
        mem_handlers hd;
        hd.on_message = [rec, is_server](const auto&, const duplex::message_view& m) {
            rec->enter(is_server);
            std::this_thread::yield(); // widen the window for a second handler to slip in
            {
                std::lock_guard<std::mutex> lock(rec->m);
                (is_server ? rec->at_server : rec->at_client).emplace_back(m.data);
                rec->cv.notify_all();
            }
            rec->leave(is_server);
        };
        hd.on_close = [rec, is_server](const auto&, const duplex::close_info& info) {
            std::lock_guard<std::mutex> lock(rec->m);
            (is_server ? rec->server_closed : rec->client_closed) = info;
            rec->cv.notify_all();
        };
        return hd;
    };
    server->start(handlers_for(true));
    client->start(handlers_for(false));

    std::vector<std::thread> pool;
    for (unsigned i = 0; i < io_threads; ++i) pool.emplace_back([&io] { io.run(); });
    struct joiner {
        asio::io_context& io;
        std::vector<std::thread>& pool;
        ~joiner() {
            io.stop();
            for (auto& t : pool)
                if (t.joinable()) t.join();
        }
    } join_pool{io, pool};

    constexpr int per_sender = 300;
    auto sender = [](std::shared_ptr<mem_connection> c, std::string tag) {
        return std::thread([c = std::move(c), tag] {
            for (int i = 0; i < per_sender; ++i) {
                const auto st = c->send_text(tag + std::to_string(i));
                if (st != send_status::ok && st != send_status::backpressure) return;
            }
        });
    };
    // Returns, for each tag, the indexes received in order.
    auto by_sender = [](const std::vector<std::string>& got, const std::string& tag) {
        std::vector<int> out;
        for (const auto& s : got)
            if (s.compare(0, tag.size(), tag) == 0) out.push_back(std::stoi(s.substr(tag.size())));
        return out;
    };
    auto is_prefix = [](const std::vector<int>& v) {
        for (std::size_t i = 0; i < v.size(); ++i)
            if (v[i] != static_cast<int>(i)) return false;
        return true;
    };

    SECTION("everything sent before close arrives, in order per sender") {
        std::thread s1 = sender(server, "a:");
        std::thread s2 = sender(server, "b:");
        std::thread s3 = sender(client, "c:");
        s1.join();
        s2.join();
        s3.join();
        {
            std::unique_lock<std::mutex> lock(rec->m);
            REQUIRE(rec->cv.wait_for(lock, 10s, [&] {
                return rec->at_client.size() == 2 * per_sender &&
                       rec->at_server.size() == per_sender;
            }));
        }
        std::thread closer([&] { client->close(1000, "done"); });
        closer.join();
        std::unique_lock<std::mutex> lock(rec->m);
        REQUIRE(
            rec->cv.wait_for(lock, 10s, [&] { return rec->server_closed && rec->client_closed; }));
        for (const char* tag : {"a:", "b:"}) {
            const auto got = by_sender(rec->at_client, tag);
            CHECK(got.size() == per_sender);
            CHECK(is_prefix(got));
        }
        const auto got = by_sender(rec->at_server, "c:");
        CHECK(got.size() == per_sender);
        CHECK(is_prefix(got));
        CHECK(rec->server_closed->code == 1000);
        CHECK(rec->server_closed->reason == "done");
        CHECK(rec->server_closed->error == std::error_code{});
        CHECK(rec->client_closed->error == std::error_code{});
    }
    SECTION("close while others send: each sender's messages arrive as an in-order prefix") {
        std::thread s1 = sender(server, "a:");
        std::thread s2 = sender(server, "b:");
        std::thread closer([&] {
            std::this_thread::sleep_for(1ms);
            server->close(1001, "bye");
        });
        s1.join();
        s2.join();
        closer.join();
        std::unique_lock<std::mutex> lock(rec->m);
        REQUIRE(
            rec->cv.wait_for(lock, 10s, [&] { return rec->server_closed && rec->client_closed; }));
        for (const char* tag : {"a:", "b:"}) CHECK(is_prefix(by_sender(rec->at_client, tag)));
        CHECK(rec->client_closed->code == 1001);
        CHECK(rec->client_closed->error == std::error_code{});
        CHECK(rec->server_closed->error == std::error_code{});
        CHECK(server->send_text("late") == send_status::closed);
    }
    CHECK(server->buffered_amount() == 0);
    CHECK_FALSE(rec->overlapped); // a connection's handlers never run at the same time
    work.reset();
    io.stop();
    for (auto& t : pool) t.join();
    io.restart();
    io.run_for(100ms); // completes what closing the pipe posted
}
