// duplex/connection.hpp — one WebSocket connection driven over an Asio transport.
// SPDX-License-Identifier: BSL-1.0
//
// A connection owns a transport stream (plain TCP, TLS, in-memory) and a protocol session, and
// runs them: the read loop, an ordered write queue that gathers queued frames into one write,
// automatic pongs, the close handshake with a deadline, keepalive pings and backpressure.
//
// Two ways to use it:
//   * handlers: start(handlers) and receive on_open / on_message / on_close / on_error;
//   * operations: async_read, async_send, async_ping, async_close with any Asio completion token
//     (a callback, asio::use_future, asio::use_awaitable).
//
// Threads: every handler of a connection runs on the connection's strand, never two at once.
// send(), close() and the async_ operations may be called from any thread.
//
// This file holds the public types and the class with its public API; the implementation is
// split by path (docs/design.md, "The connection's shape"): detail/connection_read.hpp,
// detail/connection_write.hpp (with the I/O-free detail/write_queue.hpp) and
// detail/connection_close.hpp (lifecycle, failures, close handshake, and the deadlines of the
// I/O-free detail/deadlines.hpp, served by the execution context's shared timer in
// detail/deadline_service.hpp).
#pragma once

#include "detail/cork.hpp"
#include "detail/deadline_service.hpp"
#include "detail/deadlines.hpp"
#include "detail/post_completion.hpp"
#include "detail/send_inbox.hpp"
#include "detail/transport_traits.hpp"
#include "detail/unique_function.hpp"
#include "detail/write_queue.hpp"
#include "error.hpp"
#include "protocol/session.hpp"
#include "shared_message.hpp"

#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/defer.hpp>
#include <asio/dispatch.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace duplex {

using protocol::close_initiator;
using protocol::opcode;

struct connection_options {
    // Message and frame limits, fragments per message, partial delivery (protocol layer).
    protocol::session_options protocol{};
    // send() answers send_status::backpressure once this many bytes wait to be written.
    std::size_t send_buffer_high_water = 1U << 20;
    // After a send answered backpressure, on_drain runs once when the bytes waiting to be
    // written have fallen to this many (or to send_buffer_high_water, if that is lower).
    std::size_t send_buffer_low_water = 256U * 1024U;
    // Past this many unsent bytes the peer is too slow: the message is dropped and the
    // connection closed (1008), so a reader that stopped reading cannot grow our memory.
    // Admit-one: while at most send_buffer_high_water bytes wait, a message is queued whatever
    // its size, so a message as large as the receive limits admit can always be echoed. Unsent
    // bytes therefore stay below max(send_buffer_limit, send_buffer_high_water + the largest
    // message sent) plus 14 bytes of header per message.
    std::size_t send_buffer_limit = 16U << 20;
    // Send a ping when nothing arrived for this long; 0 turns keepalive off.
    std::chrono::milliseconds ping_interval{std::chrono::seconds(30)};
    // After a keepalive ping, how long to wait for anything from the peer before giving up.
    std::chrono::milliseconds pong_timeout{std::chrono::seconds(30)};
    // Close (1001) after this long without a message in either direction; 0 = never.
    std::chrono::milliseconds idle_timeout{0};
    // How long the close handshake and the transport shutdown may take before the transport is
    // cut (RFC 6455 7.1.1 leaves the wait to the endpoint).
    std::chrono::milliseconds close_timeout{std::chrono::seconds(5)};
    // Bytes read from the transport at a time.
    std::size_t read_buffer_size = 16U * 1024U;
    // Over TCP and TLS, an idle connection holds no receive buffer: it waits until the socket
    // is readable (or the TLS stream holds bytes), then reads into one buffer per io thread.
    // Asio's reactor re-arms epoll (one epoll_ctl) for every such wait. true trades memory for
    // that system call: each connection keeps a read_buffer_size buffer and reads into it
    // directly, grown (up to 256 KiB) when reads fill it. docs/benchmarks.md measures both.
    bool hold_read_buffer = false;
};

enum class send_status {
    ok,              // queued
    backpressure,    // queued, but the send buffer is past its high-water mark: slow down
    dropped,         // not queued: the send buffer limit was reached; the connection is closing
    closed,          // not queued: the connection is closing or closed
    invalid_payload, // not queued: a text message that is not UTF-8
};

// A received message that the caller owns (from async_read).
//
// With connection_options::protocol.deliver_partial_messages, a message arrives as one or more
// pieces, in order, as its bytes arrive: `first` is set on its first piece and `last` on its
// last (both on a message delivered in one piece, which is also how an empty message arrives),
// `type` is the message's opcode on every piece, and the message is `data` of all its pieces
// joined. Without it, every message is one piece and both flags are always set.
struct message {
    opcode type = opcode::text;
    std::string data;
    bool first = true; // the first piece of a message
    bool last = true;  // the last piece of a message
    bool is_text() const noexcept { return type == opcode::text; }
};

// A received message (or piece of one, see message) as seen by on_message: the view is valid
// during the call only.
struct message_view {
    opcode type = opcode::text;
    std::string_view data;
    bool first = true; // the first piece of a message
    bool last = true;  // the last piece of a message
    bool is_text() const noexcept { return type == opcode::text; }
};

// How a connection ended. `code` is the code this endpoint failed the connection with (a
// protocol violation, a slow reader), else the peer's close code (1005 when it gave none), else
// 1006; `reason` goes with it. `error` is empty when the close handshake completed, even if
// the peer then reset the transport (RFC 6455 7.1.1 leaves how it ends to the server).
struct close_info {
    std::uint16_t code = static_cast<std::uint16_t>(protocol::close_code::abnormal);
    std::string reason;
    std::error_code error;
    // Both close frames: the code of ours (a reply echoes the peer's) and of the peer's; 1005
    // when a frame carried no code, 1006 when there was none.
    std::uint16_t sent_code = static_cast<std::uint16_t>(protocol::close_code::abnormal);
    std::uint16_t received_code = static_cast<std::uint16_t>(protocol::close_code::abnormal);
    close_initiator initiator = close_initiator::none; // who sent the first close frame
};

// HTTP header fields as name/value pairs, in order (extra response headers of a server's
// answer, the fields of a refused upgrade).
using header_list = std::vector<std::pair<std::string, std::string>>;

// Used when an application attaches no data to its connections.
struct no_user_data {};

template <class Connection>
struct connection_handlers {
    using pointer = std::shared_ptr<Connection>;
    std::function<void(const pointer&)> on_open;
    std::function<void(const pointer&, const message_view&)> on_message;
    // Called once, when the transport is released, however the connection ended.
    std::function<void(const pointer&, const close_info&)> on_close;
    // Once, at the first failure (protocol violation, transport error, timeout, slow reader);
    // on_close follows. Not for a peer that ends the transport in an orderly way.
    std::function<void(const pointer&, std::error_code)> on_error;
    std::function<void(const pointer&, std::string_view payload)> on_pong;
    // Once after a send() answered send_status::backpressure, when the queue has fallen to
    // send_buffer_low_water: the producer that paused may resume. Never inside send().
    std::function<void(const pointer&)> on_drain;
};

namespace detail {
// A transport context converts to false when it is unusable (an empty tls::context_type);
// servers and clients check it before any operation could throw on an io thread.
template <class Context>
bool is_usable_context(const Context& context) noexcept {
    if constexpr (std::is_constructible_v<bool, const Context&>)
        return static_cast<bool>(context);
    else
        return true;
}

// Bytes queued for writing across many connections, against one limit (see admit()).
struct send_budget {
    explicit send_budget(std::size_t bytes) : limit(bytes) {}
    const std::size_t limit;
    std::atomic<std::size_t> used{0};
};

// The handlers `h`, with on_close also calling `closed(owner, connection, info)` after the
// application's on_close, while `owner` lives. Weak: an owner (a server, a reconnecting
// client) holds its connections, so a strong reference would be a cycle that outlives an
// io_context stopped before the connection ended.
template <class Connection, class Owner, class Closed>
connection_handlers<Connection> notify_on_close(connection_handlers<Connection> h,
                                                std::weak_ptr<Owner> owner, Closed closed) {
    h.on_close = [owner = std::move(owner), user_close = std::move(h.on_close),
                  closed = std::move(closed)](const std::shared_ptr<Connection>& c,
                                              const close_info& info) {
        if (user_close) user_close(c, info);
        if (auto self = owner.lock()) closed(self, c, info);
    };
    return h;
}
} // namespace detail

template <class Transport, class UserData = no_user_data>
class connection : public std::enable_shared_from_this<connection<Transport, UserData>> {
public:
    using transport_type = Transport;
    using stream_type = typename Transport::stream_type;
    using executor_type = asio::strand<asio::any_io_executor>;
    using handlers_type = connection_handlers<connection>;
    using clock = std::chrono::steady_clock;

    // `stream` has completed its transport and WebSocket handshakes. `initial_bytes` are bytes
    // that arrived after the HTTP head: the first frames, which must not be lost.
    connection(stream_type stream, protocol::role role, connection_options options = {},
               std::string_view initial_bytes = {})
        : stream_(std::move(stream)), strand_(asio::make_strand(stream_.get_executor())),
          options_(options), session_(role, options.protocol),
          remote_(Transport::remote_endpoint(stream_)), deadlines_(clock::now()),
          timer_(this, timer_ops()) {
        if (!initial_bytes.empty()) keep_input(initial_bytes.data(), initial_bytes.size());
    }

    connection(const connection&) = delete;
    connection& operator=(const connection&) = delete;

    executor_type get_executor() const noexcept { return strand_; }
    protocol::role role() const noexcept { return session_.get_role(); }
    const connection_options& options() const noexcept { return options_; }
    const asio::ip::tcp::endpoint& remote_endpoint() const noexcept { return remote_; }
    UserData& data() noexcept { return user_data_; }
    const UserData& data() const noexcept { return user_data_; }

    // The subprotocol agreed in the handshake ("" for none); set by the server or client.
    const std::string& subprotocol() const noexcept {
        static const std::string none;
        return subprotocol_ ? *subprotocol_ : none;
    }
    void set_subprotocol(std::string value) {
        if (value.empty())
            subprotocol_.reset();
        else
            subprotocol_ = std::make_unique<const std::string>(std::move(value));
    }

    // Counts this connection's queued bytes also against `budget`, shared with other
    // connections (a server does this for each of its connections). Before start() only.
    void set_send_budget(std::shared_ptr<detail::send_budget> budget) {
        budget_ = std::move(budget);
    }

    // Bytes queued and not yet written to the transport.
    std::size_t buffered_amount() const noexcept {
        return buffered_.load(std::memory_order_relaxed);
    }

    // True once close() was called, a close frame went either way, or the connection ended.
    bool is_closing() const noexcept { return closing_.load(std::memory_order_relaxed); }

    // Begins reading and delivering events to `handlers`. Call once, from any thread.
    void start(handlers_type handlers) {
        start_shared(std::make_shared<const handlers_type>(std::move(handlers)));
    }

    // The same, with handlers shared by many connections (a server's): one copy for all.
    void start_shared(std::shared_ptr<const handlers_type> handlers) {
        asio::dispatch(
            strand_, [self = this->shared_from_this(), h = std::move(handlers)]() mutable {
                self->handlers_ = h ? std::move(h) : std::make_shared<const handlers_type>();
                self->handler_mode_ = true;
                if (self->handlers_->on_open) self->handlers_->on_open(self);
                self->arm_timer();
                self->process_input();
            });
    }

    // ---- thread-safe sending ------------------------------------------------------------

    send_status send_text(std::string_view text) { return send(opcode::text, text); }
    send_status send_binary(std::string_view data) { return send(opcode::binary, data); }

    // Queues a whole message. Never blocks; the status says whether the caller should slow
    // down (backpressure) or stop (dropped, closed).
    send_status send(opcode type, std::string_view payload) {
        if (type == opcode::text && !protocol::is_valid_utf8(payload))
            return send_status::invalid_payload;
        if (closing_.load(std::memory_order_relaxed)) return send_status::closed;
        const std::size_t cost = payload.size() + protocol::max_frame_header_size;
        const send_status status = admit(cost);
        if (status == send_status::dropped) return status;
        if (strand_.running_in_this_thread()) {
            // A handler answering on the connection's own strand: encode straight into the
            // queue; nothing has to be carried across threads.
            if (inbox_.pending()) drain_inbox();
            append_message(type, payload, cost);
            return status;
        }
        post_to_inbox({{}, with_header_room(payload), cost, type});
        return status;
    }

    // Queues a message encoded once for many connections (see shared_message.hpp): a server
    // connection queues a reference to the shared frame and copies nothing.
    send_status send(const shared_message& message) {
        if (!message) return send_status::invalid_payload;
        if (closing_.load(std::memory_order_relaxed)) return send_status::closed;
        const std::size_t cost = message.payload().size() + protocol::max_frame_header_size;
        const send_status status = admit(cost);
        if (status == send_status::dropped) return status;
        if (strand_.running_in_this_thread()) {
            if (inbox_.pending()) drain_inbox();
            queue_shared(message, cost);
            return status;
        }
        post_to_inbox({message, {}, cost, message.type()});
        return status;
    }

    // Starts the closing handshake after the messages already queued. Idempotent.
    void close(std::uint16_t code = static_cast<std::uint16_t>(protocol::close_code::normal),
               std::string reason = {}) {
        // Visible at once to this caller: a send() on the next line answers `closed`. The
        // phase itself changes on the strand.
        publish_closing();
        asio::dispatch(strand_,
                       [self = this->shared_from_this(), code, r = std::move(reason)]() mutable {
                           self->request_close(code, std::move(r));
                       });
    }
    void close(protocol::close_code code, std::string reason = {}) {
        close(static_cast<std::uint16_t>(code), std::move(reason));
    }

    // Cuts the transport now, without a close handshake (a server's grace period is over).
    void terminate() {
        asio::dispatch(strand_, [self = this->shared_from_this()] {
            if (self->finished()) return;
            if (self->session_.state() != protocol::session_state::closed)
                self->fail(error::timed_out);
            self->finish();
        });
    }

    // Runs `observer(self)` once when the connection has ended, after on_close, on the
    // connection's strand; soon (on the strand) if it already has. For layers that keep
    // connections and must let go of them however the application's handlers look (rooms).
    void
    add_close_observer(detail::unique_function<void(const std::shared_ptr<connection>&)> observer) {
        asio::dispatch(strand_,
                       [self = this->shared_from_this(), observer = std::move(observer)]() mutable {
                           if (self->finished())
                               observer(self);
                           else
                               self->cold().close_observers.push_back(std::move(observer));
                       });
    }

    // ---- asynchronous operations (any completion token) -----------------------------------

    // Reads the next message: handler(std::error_code, message). Not with start(): reading is
    // then the handlers' job, and a read completes with error::operation_in_progress.
    template <class CompletionToken>
    auto async_read(CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(std::error_code, message)>(
            [self = this->shared_from_this()](auto handler) {
                auto done = detail::post_completion_to<std::error_code, message>(std::move(handler),
                                                                                 self->strand_);
                asio::dispatch(self->strand_, [self, done = std::move(done)]() mutable {
                    self->start_read(std::move(done));
                });
            },
            token);
    }

    // Sends a message; completes when it was written to the transport: handler(error_code).
    template <class CompletionToken>
    auto async_send(opcode type, std::string payload, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(std::error_code)>(
            [self = this->shared_from_this(), type](auto handler, std::string data) {
                auto done =
                    detail::post_completion_to<std::error_code>(std::move(handler), self->strand_);
                const std::size_t cost = data.size() + protocol::max_frame_header_size;
                // The same bounds as send(): a slow reader must not grow our memory.
                if (self->admit(cost) == send_status::dropped)
                    return done(make_error_code(error::send_buffer_full));
                asio::dispatch(self->strand_, [self, type, cost, framed = with_header_room(data),
                                               done = std::move(done)]() mutable {
                    self->drain_inbox();
                    self->queue_message(type, std::move(framed), cost, std::move(done));
                });
            },
            token, std::move(payload));
    }

    // Sends a ping; completes when it was written: handler(error_code).
    template <class CompletionToken>
    auto async_ping(std::string payload, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(std::error_code)>(
            [self = this->shared_from_this()](auto handler, std::string data) {
                auto done =
                    detail::post_completion_to<std::error_code>(std::move(handler), self->strand_);
                asio::dispatch(self->strand_,
                               [self, data = std::move(data), done = std::move(done)]() mutable {
                                   if (self->finished())
                                       return done(make_error_code(error::closed));
                                   if (auto ec = self->session_.ping(data)) return done(ec);
                                   self->cold().control_waiters.push_back(std::move(done));
                                   self->flush();
                               });
            },
            token, std::move(payload));
    }

    // Closes and completes when the connection has ended: handler(error_code), empty when
    // the close handshake completed.
    template <class CompletionToken>
    auto async_close(std::uint16_t code, std::string reason, CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(std::error_code)>(
            [self = this->shared_from_this(), code](auto handler, std::string why) {
                auto done =
                    detail::post_completion_to<std::error_code>(std::move(handler), self->strand_);
                asio::dispatch(self->strand_, [self, code, why = std::move(why),
                                               done = std::move(done)]() mutable {
                    if (self->finished()) return done(self->result_.error);
                    self->cold().close_waiters.push_back(std::move(done));
                    self->request_close(code, std::move(why));
                });
            },
            token, std::move(reason));
    }

    // How the connection ended; meaningful once on_close ran or async_close completed.
    const close_info& result() const noexcept { return result_; }

private:
    using done_handler = detail::unique_function<void(std::error_code)>;
    using read_handler = detail::unique_function<void(std::error_code, message)>;

    // ---- lifecycle and failures (detail/connection_close.hpp) ------------------------------
    //
    // The lifecycle is one field, phase_, moved forward only by advance(), which performs each
    // phase's entry actions (docs/design.md, "The connection's shape"):
    //
    //   open ──> closing ──> ending ──> finished
    //     └─────────┴───────────┴──────────^   (abort, transport end, close deadline, terminate)
    //
    // How far the close handshake itself got (our close frame sent, the peer's received) is
    // the protocol session's state; the phase is what the connection does about it.
    enum class phase : unsigned char {
        open,     // messages flow both ways
        closing,  // a close was requested, sent or received, or we failed the connection: no
                  // new messages are queued; the close deadline runs
        ending,   // our side is done: the transport is being shut down, or drained until the
                  // peer ends it
        finished, // the transport is closed and everyone waiting was told; nothing runs again
    };

    bool finished() const noexcept { return phase_ == phase::finished; }
    void advance(phase next);
    void finish() { advance(phase::finished); }
    void publish_closing() noexcept { closing_.store(true, std::memory_order_relaxed); }
    void on_finished();
    bool fail(std::error_code ec);
    bool fail(std::error_code ec, std::uint16_t code, std::string reason);
    void abort(std::error_code ec);
    void fail_slow_reader();
    void on_transport_end(std::error_code ec);
    void note_close_frames();

    // ---- closing and timers (detail/connection_close.hpp) ----------------------------------
    void request_close(std::uint16_t code, std::string reason);
    void end_transport();
    void drain();
    void arm_timer();
    void on_timer();
    static const detail::deadline_entry::owner_ops& timer_ops() noexcept;

    // ---- send limits and the drain signal (detail/connection_write.hpp) --------------------
    bool over_send_limit(std::size_t before, std::size_t cost) const noexcept;
    send_status admit(std::size_t cost);
    void unbuffer(std::size_t cost) noexcept;
    std::size_t low_water() const noexcept;
    void arm_drain();
    void maybe_drain();

    // ---- reading (detail/connection_read.hpp) ----------------------------------------------
    static constexpr bool transport_reads_when_ready = detail::reads_when_ready<Transport>::value;
    bool reads_when_ready() const noexcept {
        return transport_reads_when_ready && !options_.hold_read_buffer;
    }
    static char* thread_buffer(std::size_t size);
    void ensure_read_buffer(std::size_t at_least);
    void keep_input(const char* data, std::size_t size);
    void release_read_buffer();
    void start_read(read_handler done);
    bool wants_input() const noexcept;
    void resume_input();
    void do_read();
    void on_read(std::error_code ec, std::size_t n);
    void on_readable(std::error_code ec);
    void received(char* data, std::size_t n);
    void process_input();
    void on_event(const protocol::event& ev, const std::shared_ptr<connection>& self);
    void deliver(const protocol::event& ev, const std::shared_ptr<connection>& self);

    // ---- writing (detail/connection_write.hpp) ---------------------------------------------
    static constexpr bool transport_writes_now = detail::writes_now<Transport>::value;
    static std::string with_header_room(std::string_view payload);
    std::error_code prepare_frame(opcode type, std::string_view payload, std::size_t cost,
                                  protocol::frame_prefix& prefix, std::string_view& body);
    void queue_message(opcode type, std::string framed, std::size_t cost, done_handler done);
    void queue_shared(shared_message message, std::size_t cost);
#ifdef DUPLEX_ENABLE_DEFLATE
    void queue_own_compressed(const shared_message& message, std::size_t cost);
#endif
    void append_message(opcode type, std::string_view payload, std::size_t cost);
    bool is_unparsed_input(std::string_view bytes) const noexcept;
    void drop_queue(std::error_code ec);
    void note_sent();
    void cork();
    void post_to_inbox(detail::inbox_entry&& entry);
    void schedule_flush();
    static void flush_turn(std::shared_ptr<void>&& member);
    void drain_inbox();
    void queue_entries(std::vector<detail::inbox_entry>& entries, std::size_t first);
    bool write_inbox_now();
    void flush();
    void write_answers_before_close();
    void send_pending_close();
    bool start_write(bool data_only = false);
    void on_write(std::error_code ec);
    bool complete_write(std::error_code ec);

    // Bounds what pings from a peer that does not read can pile up as pongs.
    static constexpr std::size_t control_backlog_limit = 64U * 1024U;
    static constexpr std::size_t max_gather = 64;
    static constexpr std::size_t max_batch = 1U << 20;
    static constexpr std::size_t max_held_read_size = 256U * 1024U;
    // Readiness transports read into one buffer per thread, lent to whichever connection the
    // thread serves; a connection owns a buffer only for bytes it must keep between reads.
    static constexpr std::size_t min_thread_buffer = 64U * 1024U;
    // Below this a copy costs less than a second buffer in the gathered write.
    static constexpr std::size_t min_borrowed_size = 1024;

    // async_write keeps a copy of its buffer sequence: a view of gather_ copies in two words
    // what a vector would copy with an allocation on every write.
    struct gather_view {
        using value_type = asio::const_buffer;
        using const_iterator = const asio::const_buffer*;
        const asio::const_buffer* first;
        std::size_t count;
        const_iterator begin() const noexcept { return first; }
        const_iterator end() const noexcept { return first + count; }
    };

    // ---- what the connection is ------------------------------------------------------------
    stream_type stream_;                            // the transport
    executor_type strand_;                          // where every handler of this one runs
    connection_options options_;                    // as given; never changed
    protocol::session session_;                     // RFC 6455 framing and the close handshake
    asio::ip::tcp::endpoint remote_;                // the peer, for logs and limits
    UserData user_data_{};                          // the application's
    std::shared_ptr<const handlers_type> handlers_; // set by start(); null before and after
    bool handler_mode_ = false;                     // start() ran: handlers read, not async_read

    // ---- lifecycle and the outcome -----------------------------------------------------
    phase phase_ = phase::open;        // on the strand: the one answer to "what state is it in?"
    std::atomic<bool> closing_{false}; // phase_ past open, for send() on other threads
    close_info result_;                // how it ended; result_.error is the first failure

    // ---- the read path -----------------------------------------------------------------
    std::unique_ptr<char[]> read_buffer_; // owned while bytes are kept or a read is pending
    std::size_t read_capacity_ = 0;
    std::size_t held_read_size_ = 0; // hold_read_buffer: grown past read_buffer_size by use
    char* input_ = nullptr;          // read_buffer_ or the thread's buffer: unparsed bytes
    std::size_t read_begin_ = 0;     // [read_begin_, read_end_) of input_ is not parsed yet
    std::size_t read_end_ = 0;
    bool reading_ = false;          // a read (or readiness wait) is pending
    bool processing_input_ = false; // process_input() is on the stack
    bool next_piece_first_ = true;  // partial delivery: the next piece starts a message

    // ---- the write path ----------------------------------------------------------------
    detail::write_queue queue_;                   // data frames and the pending close
    detail::send_inbox inbox_;                    // sends from outside the strand, not yet framed
    std::string control_in_flight_;               // pongs, pings and close frames being written
    std::vector<asio::const_buffer> gather_;      // the buffers of the write in flight
    bool writing_ = false;                        // a write is pending
    bool flush_due_ = false;                      // cork(): in this thread's cork_batch
    bool draining_inbox_ = false;                 // drain_inbox() is framing what the inbox held
    std::atomic<std::size_t> buffered_{0};        // bytes admitted and not written or dropped
    std::shared_ptr<detail::send_budget> budget_; // shared with other connections, or null
    std::atomic<bool> drain_wanted_{false};       // a send answered backpressure; on_drain is owed
    bool drain_posted_ = false;                   // on the strand: a drain check is queued

    // ---- cold state: what most connections never use, allocated on first use ------------
    using close_observer = detail::unique_function<void(const std::shared_ptr<connection>&)>;
    struct cold_state {
        read_handler read_waiter;                            // async_read waiting for a message
        std::vector<done_handler> close_waiters;             // async_close: told at finished
        std::vector<close_observer> close_observers;         // rooms and the like: after on_close
        std::vector<done_handler> control_waiters;           // async_ping: not yet written
        std::vector<done_handler> control_waiters_in_flight; // async_ping: being written
    };
    std::unique_ptr<cold_state> cold_; // on the strand only
    // Agreed in the handshake; null for none. Apart from cold_: it is set before start() and
    // read from any thread, while cold_ is created on the strand whenever it is first needed.
    std::unique_ptr<const std::string> subprotocol_;
    cold_state& cold() {
        if (!cold_) cold_ = std::make_unique<cold_state>();
        return *cold_;
    }
    bool has_read_waiter() const noexcept { return cold_ && cold_->read_waiter; }

    // ---- deadlines ---------------------------------------------------------------------
    detail::deadlines deadlines_;
    bool timer_armed_ = false; // registered with the context's deadline service, or expiring
    // Last: destroyed first, so the deadline service never sees a half-destroyed connection.
    detail::deadline_entry timer_; // the earliest of the deadlines, in the shared timer
};

} // namespace duplex

#include "detail/connection_close.hpp"
#include "detail/connection_read.hpp"
#include "detail/connection_write.hpp"
