// One connection over the in-memory transport, driven by hand, deterministically: the harness
// of the connection tests (connection_read_tests.cpp, connection_write_tests.cpp,
// connection_close_tests.cpp).
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
#pragma once

#include "catch.hpp"
#include "harness.hpp"

#include <duplex/connection.hpp>
#include <duplex/transport/memory.hpp>

#include <asio/write.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace test {

using duplex::error;
using duplex::opcode;
using duplex::send_status;
using duplex::protocol::role;
using memory = duplex::transport::memory;
using mem_connection = duplex::connection<memory>;
using mem_handlers = duplex::connection_handlers<mem_connection>;

inline std::error_code code(asio::error::basic_errors e) { return asio::error::make_error_code(e); }
inline std::error_code code(asio::error::misc_errors e) { return asio::error::make_error_code(e); }

inline role other(role r) { return r == role::server ? role::client : role::server; }

// Keepalive off and a short close deadline; each test turns on what it tests.
inline duplex::connection_options fast_options() {
    duplex::connection_options o;
    o.ping_interval = 0ms;
    o.close_timeout = 200ms;
    return o;
}

inline std::string describe(opcode op, std::string_view data) {
    return (op == opcode::text ? "t:" : op == opcode::binary ? "b:" : "?:") + std::string(data);
}

inline std::vector<std::string> data_messages(const std::vector<wire_frame>& frames) {
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
    raw_peer(std::shared_ptr<peer_state> s, masking m) : s_(std::move(s)), masking_(m) {}

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
    masking masks() const { return masking_; }
    void send(opcode op, std::string_view payload, fin_bit fin = fin_bit::set) {
        write(frame(op, payload, masking_, fin));
    }
    void send_close(std::uint16_t close_code, std::string_view reason = {}) {
        write(close_frame(close_code, masking_, reason));
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
    masking masking_;
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

inline mem_handlers record_into(const std::shared_ptr<record>& r) {
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
        return raw_peer(state, peer_role == role::client ? masking::client : masking::none);
    }

    // Runs handlers until `done()` or `limit`; returns done().
    template <class Pred>
    bool run_until(Pred&& done, std::chrono::milliseconds limit = patience) {
        return test::run_until(io, std::forward<Pred>(done), limit);
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

} // namespace test
