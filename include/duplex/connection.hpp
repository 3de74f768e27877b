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
#pragma once

#include "detail/buffer_cache.hpp"
#include "detail/fifo.hpp"
#include "detail/unique_function.hpp"
#include "error.hpp"
#include "protocol/session.hpp"
#include "shared_message.hpp"

#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/dispatch.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
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
    // Over plain TCP, an idle connection holds no receive buffer: it waits until the socket
    // is readable, then reads into one buffer per io thread. Asio's reactor re-arms epoll
    // (one epoll_ctl) for every such wait. true trades memory for that system call: each
    // connection keeps a read_buffer_size buffer and reads into it directly (as TLS always
    // does), grown (up to 256 KiB) when reads fill it. docs/benchmarks.md measures both.
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

// Whether a transport can wait for readability and then read without blocking (see tcp.hpp).
template <class T, class = void>
struct reads_when_ready : std::false_type {};
template <class T>
struct reads_when_ready<T,
                        std::void_t<decltype(T::read_now(std::declval<typename T::stream_type&>(),
                                                         std::declval<asio::mutable_buffer>(),
                                                         std::declval<std::error_code&>()))>>
    : std::true_type {};

// Whether a transport can write without blocking (see tcp.hpp).
template <class T, class = void>
struct writes_now : std::false_type {};
template <class T>
struct writes_now<
    T, std::void_t<decltype(T::write_now(std::declval<typename T::stream_type&>(),
                                         std::declval<const std::vector<asio::const_buffer>&>(),
                                         std::declval<std::error_code&>()))>> : std::true_type {};
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
          timer_(strand_), options_(options), session_(role, options.protocol),
          remote_(Transport::remote_endpoint(stream_)), last_received_(clock::now()),
          last_activity_(last_received_) {
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
    const std::string& subprotocol() const noexcept { return subprotocol_; }
    void set_subprotocol(std::string value) { subprotocol_ = std::move(value); }

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
            append_message(type, payload, cost);
            return status;
        }
        asio::dispatch(strand_, [self = this->shared_from_this(), type, cost,
                                 framed = with_header_room(payload)]() mutable {
            self->queue_message(type, std::move(framed), cost, {});
        });
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
            queue_shared(message, cost);
            return status;
        }
        asio::dispatch(strand_, [self = this->shared_from_this(), message, cost]() mutable {
            self->queue_shared(std::move(message), cost);
        });
        return status;
    }

    // Starts the closing handshake after the messages already queued. Idempotent.
    void close(std::uint16_t code = static_cast<std::uint16_t>(protocol::close_code::normal),
               std::string reason = {}) {
        // Visible at once to this caller: a send() on the next line answers `closed`.
        mark_closing();
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
            if (self->finished_) return;
            if (!self->result_.error && self->session_.state() != protocol::session_state::closed)
                self->result_.error = error::timed_out;
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
                           if (self->finished_)
                               observer(self);
                           else
                               self->close_observers_.push_back(std::move(observer));
                       });
    }

    // ---- asynchronous operations (any completion token) -----------------------------------

    // Reads the next message: handler(std::error_code, message). Not with start(): reading is
    // then the handlers' job, and a read completes with error::operation_in_progress.
    template <class CompletionToken>
    auto async_read(CompletionToken&& token) {
        return asio::async_initiate<CompletionToken, void(std::error_code, message)>(
            [self = this->shared_from_this()](auto handler) {
                auto done = self->template wrap<std::error_code, message>(std::move(handler));
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
                auto done = self->template wrap<std::error_code>(std::move(handler));
                const std::size_t cost = data.size() + protocol::max_frame_header_size;
                // The same bounds as send(): a slow reader must not grow our memory.
                if (self->admit(cost) == send_status::dropped)
                    return done(make_error_code(error::send_buffer_full));
                asio::dispatch(self->strand_, [self, type, cost, framed = with_header_room(data),
                                               done = std::move(done)]() mutable {
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
                auto done = self->template wrap<std::error_code>(std::move(handler));
                asio::dispatch(self->strand_,
                               [self, data = std::move(data), done = std::move(done)]() mutable {
                                   if (self->finished_) return done(make_error_code(error::closed));
                                   if (auto ec = self->session_.ping(data)) return done(ec);
                                   self->control_waiters_.push_back(std::move(done));
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
                auto done = self->template wrap<std::error_code>(std::move(handler));
                asio::dispatch(self->strand_, [self, code, why = std::move(why),
                                               done = std::move(done)]() mutable {
                    if (self->finished_) return done(self->result_.error);
                    self->close_waiters_.push_back(std::move(done));
                    self->request_close(code, std::move(why));
                });
            },
            token, std::move(reason));
    }

    // How the connection ended; meaningful once on_close ran or async_close completed.
    const close_info& result() const noexcept { return result_; }

private:
    struct outgoing {
        std::string bytes;      // header room, then the payload (see with_header_room)
        shared_message shared;  // or a frame shared with other connections, written as it is
        std::size_t offset = 0; // where the frame starts in `bytes`: its header's first byte
        std::size_t cost = 0;   // what it added to buffered_
        detail::unique_function<void(std::error_code)> done;
        bool close_marker = false; // close() queued behind earlier messages
        std::uint16_t close_code = 0;
        std::string close_reason;
        // Or: the header in `bytes`, the payload still in the bytes being parsed (see
        // append_message); never left queued past the read that delivered it.
        std::string_view borrowed;

        std::string_view wire_bytes() const noexcept {
            if (shared) return shared.frame_bytes();
            return std::string_view(bytes).substr(offset);
        }
    };

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

    // Bounds what pings from a peer that does not read can pile up as pongs.
    static constexpr std::size_t control_backlog_limit = 64U * 1024U;

    // Completion handlers run on their own associated executor (for a coroutine, its own),
    // never inside the call that started the operation.
    template <class... Args, class Handler>
    detail::unique_function<void(Args...)> wrap(Handler handler) {
        return [handler = std::move(handler), strand = strand_](Args... args) mutable {
            auto ex = asio::get_associated_executor(handler, strand);
            asio::post(ex, [handler = std::move(handler),
                            values = std::make_tuple(std::move(args)...)]() mutable {
                std::apply(handler, std::move(values));
            });
        };
    }

    // Admit-one (see send_buffer_limit): only past the high-water mark can a message be refused.
    bool over_send_limit(std::size_t before, std::size_t cost) const noexcept {
        return before > options_.send_buffer_high_water &&
               before + cost > options_.send_buffer_limit;
    }

    // Counts `cost` bytes against the send buffer. Past the limit nothing is counted, and the
    // connection is failed as a slow reader.
    // A shared budget (a server's send_budget) bounds the sum over many connections: past it,
    // a connection that already has something queued is failed as a slow reader, while one
    // with an empty queue may still queue its message, so that connections whose peers read
    // are not starved by those that do not.
    send_status admit(std::size_t cost) {
        const std::size_t before = buffered_.fetch_add(cost, std::memory_order_relaxed);
        bool over = over_send_limit(before, cost);
        if (!over && budget_) {
            const std::size_t shared = budget_->used.fetch_add(cost, std::memory_order_relaxed);
            if (before != 0 && shared + cost > budget_->limit) {
                budget_->used.fetch_sub(cost, std::memory_order_relaxed);
                over = true;
            }
        }
        if (over) {
            buffered_.fetch_sub(cost, std::memory_order_relaxed);
            asio::dispatch(strand_,
                           [self = this->shared_from_this()] { self->fail_slow_reader(); });
            return send_status::dropped;
        }
        if (before + cost <= options_.send_buffer_high_water) return send_status::ok;
        arm_drain();
        return send_status::backpressure;
    }

    // ---- the drain signal ---------------------------------------------------------------
    //
    // A sender on any thread arms it (arm_drain); the strand fires it after a write brought the
    // queue down (maybe_drain). Each side writes its own variable, then reads the other's,
    // with a fence between, so at least one of them sees both: no drain is lost.

    std::size_t low_water() const noexcept {
        return std::min(options_.send_buffer_low_water, options_.send_buffer_high_water);
    }

    void arm_drain() {
        if (drain_wanted_.exchange(true)) return;
        std::atomic_thread_fence(std::memory_order_seq_cst);
        // The writes may have emptied the queue before the flag was up: check on the strand.
        if (buffered_.load(std::memory_order_relaxed) <= low_water())
            asio::post(strand_, [self = this->shared_from_this()] { self->maybe_drain(); });
    }

    // On the strand, after bytes left the queue. Posted, so that on_drain never runs inside
    // the send() (or handler) that is emptying the queue.
    void maybe_drain() {
        std::atomic_thread_fence(std::memory_order_seq_cst);
        if (drain_posted_ || finished_ || !drain_wanted_.load(std::memory_order_relaxed) ||
            buffered_.load(std::memory_order_relaxed) > low_water())
            return;
        drain_posted_ = true;
        asio::post(strand_, [self = this->shared_from_this()] {
            self->drain_posted_ = false;
            if (self->finished_ ||
                self->buffered_.load(std::memory_order_relaxed) > self->low_water())
                return; // more was queued meanwhile: the next write completion checks again
            if (!self->drain_wanted_.exchange(false)) return;
            if (self->handlers_ && self->handlers_->on_drain) self->handlers_->on_drain(self);
        });
    }

    // Gives back what admit() counted, once the bytes were written or dropped.
    void unbuffer(std::size_t cost) noexcept {
        buffered_.fetch_sub(cost, std::memory_order_relaxed);
        if (budget_) budget_->used.fetch_sub(cost, std::memory_order_relaxed);
    }

    // ---- reading -----------------------------------------------------------------------

    static constexpr bool transport_reads_when_ready = detail::reads_when_ready<Transport>::value;

    static constexpr bool transport_writes_now = detail::writes_now<Transport>::value;

    bool reads_when_ready() const noexcept {
        return transport_reads_when_ready && !options_.hold_read_buffer;
    }

    // Readiness transports read into one buffer per thread, lent to whichever connection the
    // thread serves; a connection owns a buffer only for bytes it must keep between reads.
    static constexpr std::size_t min_thread_buffer = 64U * 1024U;

    char* thread_buffer(std::size_t size) {
        thread_local std::unique_ptr<char[]> buffer;
        thread_local std::size_t capacity = 0;
        if (capacity < size) {
            buffer = std::make_unique<char[]>(size);
            capacity = size;
        }
        return buffer.get();
    }

    void ensure_read_buffer(std::size_t at_least) {
        const std::size_t size =
            reads_when_ready() ? at_least : std::max(at_least, options_.read_buffer_size);
        if (!read_buffer_ || read_capacity_ < size) {
            read_buffer_ = std::make_unique<char[]>(size);
            read_capacity_ = size;
        }
    }

    // Copies unparsed bytes into the connection's own buffer (initial bytes after the HTTP
    // head, or what a satisfied async_read left in the thread's buffer).
    void keep_input(const char* data, std::size_t size) {
        if (data == read_buffer_.get()) return;
        ensure_read_buffer(size);
        std::memmove(read_buffer_.get(), data, size);
        input_ = read_buffer_.get();
        read_begin_ = 0;
        read_end_ = size;
    }

    void start_read(detail::unique_function<void(std::error_code, message)> done) {
        if (handler_mode_ || read_waiter_) return done(error::operation_in_progress, message{});
        if (finished_)
            return done(result_.error ? result_.error : make_error_code(error::closed), message{});
        read_waiter_ = std::move(done);
        if (!timer_armed_) arm_timer();
        process_input();
    }

    // While closing, input is read whatever the application asked for: the peer's close frame
    // or its end of the transport is what completes the close.
    bool wants_input() const noexcept {
        return handler_mode_ || static_cast<bool>(read_waiter_) || is_closing();
    }

    void do_read() {
        if (reading_ || finished_) return;
        reading_ = true;
        if constexpr (transport_reads_when_ready) {
            if (reads_when_ready()) {
                Transport::async_wait_readable(
                    stream_, asio::bind_executor(
                                 strand_, [self = this->shared_from_this()](std::error_code ec) {
                                     self->on_readable(ec);
                                 }));
                return;
            }
        }
        ensure_read_buffer(held_read_size_);
        stream_.async_read_some(
            asio::buffer(read_buffer_.get(), read_capacity_),
            asio::bind_executor(
                strand_, [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                    self->on_read(ec, n);
                }));
    }

    void on_read(std::error_code ec, std::size_t n) {
        reading_ = false;
        // The buffer was the read's until now, even after finish() (see release_read_buffer).
        if (finished_) return release_read_buffer();
        if (ec) return on_transport_end(ec);
        if constexpr (transport_reads_when_ready) {
            // hold_read_buffer over TCP: a read that filled the buffer says messages are
            // larger than it; the next reads get more room, so that one read holds a whole
            // message and it is delivered (and echoed) without being reassembled.
            if (n == read_capacity_ && read_capacity_ < max_held_read_size)
                held_read_size_ = std::min(2 * read_capacity_, max_held_read_size);
        }
        received(read_buffer_.get(), n);
    }

    void on_readable(std::error_code ec) {
        reading_ = false;
        if (finished_) return;
        if (ec) return on_transport_end(ec);
        const std::size_t size = std::max(options_.read_buffer_size, min_thread_buffer);
        char* buffer = thread_buffer(size);
        const std::size_t n = Transport::read_now(stream_, asio::buffer(buffer, size), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) return do_read();
        if (ec) return on_transport_end(ec);
        received(buffer, n);
    }

    void received(char* data, std::size_t n) {
        last_received_ = clock::now();
        awaiting_pong_ = false; // anything from the peer proves it is alive
        input_ = data;
        read_begin_ = 0;
        read_end_ = n;
        process_input();
    }

    // Feeds unparsed bytes to the session and acts on its events. Stops early only when an
    // async_read was satisfied; the rest waits in the buffer for the next one.
    void process_input() {
        if (finished_ || processing_input_) return;
        processing_input_ = true;
        const auto self = this->shared_from_this(); // one reference per read, not per message
        while (!finished_ && wants_input()) {
            const auto r = session_.receive(input_ + read_begin_, read_end_ - read_begin_);
            read_begin_ += r.consumed;
            if (r.ev.type == protocol::event_type::none) break;
            if (r.ev.type == protocol::event_type::close ||
                r.ev.type == protocol::event_type::error)
                write_answers_before_close();
            on_event(r.ev, self);
        }
        processing_input_ = false;
        if (finished_) return;
        if (session_.pending_output().size() > control_backlog_limit)
            return abort(make_error_code(error::control_backlog));
        // Before anything moves the input: answers may still be borrowing it.
        flush();
        if (finished_) return;
        if (borrowed_frames_ > 0) own_borrowed();
        // The thread's buffer is lent only for this call.
        if (read_begin_ != read_end_) keep_input(input_ + read_begin_, read_end_ - read_begin_);
        if (read_begin_ == read_end_) {
            read_begin_ = read_end_ = 0;
            if (reads_when_ready() && read_buffer_) {
                read_buffer_.reset(); // an idle connection keeps no receive buffer
                read_capacity_ = 0;
                input_ = nullptr;
            }
            if (wants_input()) do_read();
        }
    }

    void on_event(const protocol::event& ev, const std::shared_ptr<connection>& self) {
        using protocol::event_type;
        switch (ev.type) {
        case event_type::message_start:
            // Partial delivery: the message's first piece (data, or its end when it is empty)
            // comes next; a waiting async_read is not used up by the header alone.
            next_piece_first_ = true;
            return;
        case event_type::message:
        case event_type::message_data:
        case event_type::message_end: {
            // Arrived with this read: its time was taken once for all its messages.
            last_activity_ = last_received_;
            const bool first = ev.type == event_type::message || next_piece_first_;
            const bool last = ev.type != event_type::message_data;
            next_piece_first_ = false;
            // Flow control for pieces as for messages: process_input parses the next event
            // only after the handler returned, or (async_read) once the next read is waiting.
            if (handler_mode_) {
                if (handlers_ && handlers_->on_message)
                    handlers_->on_message(self, message_view{ev.op, ev.data, first, last});
            } else if (read_waiter_) {
                auto done = std::move(read_waiter_);
                read_waiter_ = {};
                done(std::error_code{}, message{ev.op, std::string(ev.data), first, last});
            }
            return;
        }
        case event_type::pong:
            if (handlers_ && handlers_->on_pong) handlers_->on_pong(self, ev.data);
            return;
        case event_type::close:
            // The session queued the echo (5.5.1). Messages still queued are not sent: no data
            // may follow our close frame.
            if (!result_.error) { // a reply to our failure does not replace its code
                result_.code = ev.code;
                result_.reason = std::string(ev.data);
            }
            begin_closing();
            drop_queue(make_error_code(error::closed));
            return;
        case event_type::error:
            result_.code = ev.code;
            result_.reason = ev.error.message();
            result_.error = ev.error;
            begin_closing();
            drop_queue(ev.error);
            report_error(ev.error);
            return;
        default: return; // pings are answered by the session
        }
    }

    // The transport ended or failed. After a completed close handshake that is clean however
    // it ends (7.1.1 lets the server reset the TCP connection); while draining after failing
    // the connection, an orderly end is what we wait for.
    void on_transport_end(std::error_code ec) {
        const bool handshake_done = session_.state() == protocol::session_state::closed;
        const bool failed = session_.state() == protocol::session_state::failed;
        if (handshake_done || (failed && Transport::is_clean_end(ec))) return finish();
        if (!result_.error) result_.error = ec;
        if (!handshake_done && !failed) {
            result_.code = static_cast<std::uint16_t>(protocol::close_code::abnormal);
        }
        finish();
    }

    void note_close_frames() {
        result_.sent_code = session_.sent_close_code();
        result_.received_code = session_.peer_close_code();
        result_.initiator = session_.initiator();
    }

    // ---- writing -----------------------------------------------------------------------

    // The one copy of a payload a send makes: it leaves room in front for the longest header,
    // so that the strand can write the header in place instead of copying the payload again.
    static std::string with_header_room(std::string_view payload) {
        std::string framed;
        // Never in the string's inline storage: the write in progress points into these bytes
        // while the queue may move its elements.
        framed.reserve(std::max<std::size_t>(protocol::max_frame_header_size + payload.size(),
                                             sizeof(std::string) + 1));
        framed.resize(protocol::max_frame_header_size + payload.size());
        if (!payload.empty())
            std::memcpy(&framed[protocol::max_frame_header_size], payload.data(), payload.size());
        return framed;
    }

    // The header of a whole message, from the session; on failure the message's cost goes back
    // to the send buffer.
    std::error_code prepare_frame(opcode type, std::string_view payload, std::size_t cost,
                                  protocol::frame_prefix& prefix) {
        const std::error_code ec = finished_ || closing_requested_
                                       ? make_error_code(error::closed)
                                       : session_.prepare_send(type, payload, true, prefix);
        if (ec) unbuffer(cost);
        return ec;
    }

    void queue_message(opcode type, std::string framed, std::size_t cost,
                       detail::unique_function<void(std::error_code)> done) {
        constexpr std::size_t room = protocol::max_frame_header_size;
        char* const payload_start = &framed[room];
        const std::string_view payload(payload_start, framed.size() - room);
        protocol::frame_prefix prefix;
        if (const auto ec = prepare_frame(type, payload, cost, prefix)) {
            if (done) done(ec);
            return;
        }
        outgoing frame;
        frame.offset = room - prefix.size;
        std::memcpy(&framed[frame.offset], prefix.bytes, prefix.size);
        if (prefix.masked) protocol::apply_mask(payload_start, payload.size(), prefix.key);
        frame.bytes = std::move(framed);
        frame.cost = cost;
        frame.done = std::move(done);
        queue_.push_back(std::move(frame));
        note_sent();
    }

    void queue_shared(shared_message message, std::size_t cost) {
        if (session_.get_role() == protocol::role::client) {
            // Every client frame needs its own masking key: copy, as send() does.
            return queue_message(message.type(), with_header_room(message.payload()), cost, {});
        }
        protocol::frame_prefix prefix;
        std::error_code ec;
        if (finished_ || closing_requested_)
            ec = error::closed;
        else
            ec = session_.prepare_whole_message(message.type(), message.payload().size(), prefix);
        if (ec) {
            unbuffer(cost);
            return;
        }
        // An unmasked server header depends only on opcode and length: the shared frame's own
        // header is the one the session just made.
        outgoing frame;
        frame.shared = std::move(message);
        frame.cost = cost;
        queue_.push_back(std::move(frame));
        note_sent();
    }

    void request_close(std::uint16_t code, std::string reason) {
        if (finished_ || closing_requested_ || session_.state() != protocol::session_state::open)
            return;
        closing_requested_ = true;
        begin_closing();
        outgoing marker;
        marker.close_marker = true;
        marker.close_code = code;
        marker.close_reason = std::move(reason);
        queue_.push_back(std::move(marker));
        resume_input(); // the peer's close is what completes ours
    }

    // The peer reads too slowly for what we send: stop queueing, tell it why, and let the
    // close deadline cut the transport if it does not read even that.
    void fail_slow_reader() {
        if (finished_ || session_.state() != protocol::session_state::open) return;
        result_.error = error::send_buffer_full;
        result_.code = static_cast<std::uint16_t>(protocol::close_code::policy_violation);
        result_.reason = "send buffer limit";
        drop_queue(make_error_code(error::send_buffer_full));
        report_error(make_error_code(error::send_buffer_full));
        (void)session_.close(protocol::close_code::policy_violation, "send buffer limit");
        begin_closing();
        resume_input();
    }

    // After close() or a failure: write what is queued and make sure input is being read. Never
    // parses from inside a handler (process_input is running then): that would deliver the
    // next event inside the current one and free the view the handler is looking at.
    void resume_input() {
        if (reading_ || processing_input_)
            flush();
        else
            process_input();
    }

    void drop_queue(std::error_code ec) {
        // Frames already handed to the transport stay until their write completes.
        while (queue_.size() > in_flight_) {
            auto frame = std::move(queue_.back());
            queue_.pop_back();
            if (!frame.borrowed.empty()) --borrowed_frames_;
            unbuffer(frame.cost);
            if (frame.done) frame.done(ec);
        }
    }

    // Copies one whole message into the queue: appended to the last queued frame's bytes when
    // that one is not being written yet, so a burst of small answers becomes one buffer, one
    // allocation and one element of the gathered write.
    void append_message(opcode type, std::string_view payload, std::size_t cost) {
        protocol::frame_prefix prefix;
        if (prepare_frame(type, payload, cost, prefix)) return;
        if (transport_writes_now && !prefix.masked && payload.size() >= min_borrowed_size &&
            is_unparsed_input(payload)) {
            // Echoing or forwarding what this read delivered: the payload is written from
            // where it was read (flush runs before process_input lets go of those bytes), and
            // copied only if the socket does not take it at once.
            outgoing frame;
            frame.bytes.assign(reinterpret_cast<const char*>(prefix.bytes), prefix.size);
            frame.borrowed = payload;
            frame.cost = cost;
            queue_.push_back(std::move(frame));
            ++borrowed_frames_;
            return note_sent();
        }
        const std::size_t size = prefix.size + payload.size();
        outgoing* tail = queue_.size() > in_flight_ ? &queue_.back() : nullptr;
        if (tail && (tail->close_marker || tail->shared || tail->done || !tail->borrowed.empty() ||
                     tail->bytes.size() + size > append_limit))
            tail = nullptr;
        if (!tail) {
            outgoing frame;
            // On the heap, never in the string's inline storage (see with_header_room).
            frame.bytes = detail::buffer_cache::take(size);
            queue_.push_back(std::move(frame));
            tail = &queue_.back();
        }
        const std::size_t at = tail->bytes.size();
        tail->bytes.append(reinterpret_cast<const char*>(prefix.bytes), prefix.size);
        tail->bytes.append(payload.data(), payload.size());
        if (prefix.masked)
            protocol::apply_mask(&tail->bytes[at + prefix.size], payload.size(), prefix.key);
        tail->cost += cost;
        note_sent();
    }

    bool is_unparsed_input(std::string_view bytes) const noexcept {
        if (!processing_input_ || input_ == nullptr) return false;
        const std::less_equal<const char*> not_after;
        return not_after(input_, bytes.data()) &&
               not_after(bytes.data() + bytes.size(), input_ + read_end_);
    }

    // Gives every frame that still borrows input bytes a copy of its own.
    void own_borrowed() {
        for (auto& frame : queue_) {
            if (frame.borrowed.empty()) continue;
            std::string owned =
                detail::buffer_cache::take(frame.bytes.size() + frame.borrowed.size());
            owned.append(frame.bytes);
            owned.append(frame.borrowed.data(), frame.borrowed.size());
            frame.bytes = std::move(owned);
            frame.borrowed = {};
        }
        borrowed_frames_ = 0;
    }

    void note_sent() {
        // Inside process_input the read's own time is recent enough for the idle timeout.
        last_activity_ = processing_input_ ? last_received_ : clock::now();
        flush_unless_processing();
    }

    // A handler answering a message runs inside process_input, which writes once when the
    // whole read has been parsed: one write per read, not one per answer.
    void flush_unless_processing() {
        if (!processing_input_) flush();
    }

    // Starts one gathered write of everything writable: control frames first (pongs and close
    // replies must not wait behind data), then queued messages in order, up to a close marker.
    void flush() {
        while (start_write()) {
        }
    }

    // A close frame, ours or the peer's, or a protocol error is next: answers to the messages
    // before it go out first, as they would have had each been written as it was sent. They
    // were framed while the connection was open, and our close frame is still unwritten.
    void write_answers_before_close() {
        while (queue_.size() > in_flight_ && start_write(true)) {
        }
    }

    // Starts one write; true when it completed at once and there may be more to write.
    // data_only: the queued messages alone, whatever the session's state; no control frames.
    bool start_write(bool data_only = false) {
        if (writing_ || finished_) return false;
        while (!data_only && !queue_.empty() && queue_.front().close_marker) {
            const auto code = queue_.front().close_code;
            const auto reason = std::move(queue_.front().close_reason);
            queue_.pop_front();
            if (auto ec = session_.close(code, reason)) {
                // An invalid code or reason from the application: close with 1000 instead.
                (void)ec;
                (void)session_.close(protocol::close_code::normal);
            }
            drop_queue(make_error_code(error::closed));
        }
        if (!data_only) {
            control_in_flight_.assign(session_.pending_output());
            session_.consume_output(control_in_flight_.size());
            for (auto& w : control_waiters_) control_waiters_in_flight_.push_back(std::move(w));
            control_waiters_.clear();
        }

        gather_.clear();
        if (!control_in_flight_.empty()) gather_.push_back(asio::buffer(control_in_flight_));
        std::size_t bytes = 0;
        in_flight_ = 0;
        if (data_only || session_.state() == protocol::session_state::open ||
            session_.state() == protocol::session_state::closing) {
            for (auto& frame : queue_) {
                if (frame.close_marker || gather_.size() + 2 > max_gather || bytes >= max_batch)
                    break;
                const std::string_view wire = frame.wire_bytes();
                gather_.push_back(asio::buffer(wire.data(), wire.size()));
                bytes += wire.size();
                if (!frame.borrowed.empty()) {
                    gather_.push_back(asio::buffer(frame.borrowed.data(), frame.borrowed.size()));
                    bytes += frame.borrowed.size();
                }
                ++in_flight_;
            }
        }
        if (gather_.empty()) {
            if (!data_only && session_.wants_transport_close()) end_transport();
            return false;
        }
        if (session_.state() != protocol::session_state::open) arm_close_deadline();
        writing_ = true;
        std::size_t first = 0; // gather_[first] onwards is still to be written
        if constexpr (transport_writes_now) {
            // Most writes fit in the socket's buffer: write now, and skip the asynchronous
            // operation and its completion's trip through the scheduler.
            std::error_code ec;
            std::size_t written = Transport::write_now(stream_, gather_, ec);
            if (ec && ec != asio::error::would_block && ec != asio::error::try_again)
                return complete_write(ec);
            if (!ec && written == bytes + control_in_flight_.size()) return complete_write({});
            if (borrowed_frames_ > 0) {
                // The rest is written later, from bytes of our own: the same frames, copied.
                own_borrowed();
                gather_.resize(control_in_flight_.empty() ? 0 : 1);
                for (std::size_t i = 0; i < in_flight_; ++i) {
                    const std::string_view wire = queue_[i].wire_bytes();
                    gather_.push_back(asio::buffer(wire.data(), wire.size()));
                }
            }
            while (first < gather_.size() && written >= gather_[first].size())
                written -= gather_[first++].size();
            gather_[first] += written;
        }
        asio::async_write(stream_, gather_view{gather_.data() + first, gather_.size() - first},
                          asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                           std::error_code ec, std::size_t) {
                              self->on_write(ec);
                          }));
        return false;
    }

    void on_write(std::error_code ec) {
        if (complete_write(ec)) flush();
    }

    // A write finished: its frames leave the queue. False when the connection is over.
    bool complete_write(std::error_code ec) {
        writing_ = false;
        control_in_flight_.clear();
        if (control_in_flight_.capacity() > 1024) std::string().swap(control_in_flight_);
        for (std::size_t i = 0; i < in_flight_; ++i) {
            auto frame = std::move(queue_.front());
            queue_.pop_front();
            if (!frame.borrowed.empty()) --borrowed_frames_;
            unbuffer(frame.cost);
            if (frame.done) frame.done(ec);
            detail::buffer_cache::give(std::move(frame.bytes));
        }
        in_flight_ = 0;
        gather_.clear();
        if (queue_.empty() && gather_.capacity() > 8)
            std::vector<asio::const_buffer>().swap(gather_);
        for (auto& w : control_waiters_in_flight_) w(ec);
        control_waiters_in_flight_.clear();
        if (finished_) return false;
        if (!ec) maybe_drain();
        if (ec) {
            if (!result_.error) result_.error = ec;
            finish();
            return false;
        }
        return true;
    }

    // Our side is done sending. RFC 6455 7.1.1: the server (or an endpoint that failed the
    // connection) ends the TCP connection first; a client waits for the server to do so and
    // reads until then, ending it itself only if the close deadline passes.
    void end_transport() {
        if (transport_ending_ || finished_) return;
        transport_ending_ = true;
        arm_close_deadline();
        const bool first = session_.get_role() == protocol::role::server ||
                           session_.state() == protocol::session_state::failed;
        if (first) {
            Transport::async_shutdown(
                stream_, asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                          std::error_code) { self->drain(); }));
        } else {
            drain();
        }
    }

    // Reads and discards until the peer ends the transport (or the deadline cuts it).
    void drain() {
        if (finished_) return;
        read_begin_ = read_end_ = 0;
        do_read();
    }

    void abort(std::error_code ec) {
        if (!result_.error) result_.error = ec;
        report_error(ec);
        finish();
    }

    // on_error runs once per connection, at the first failure: a protocol violation, a
    // transport error, a timeout, a slow reader. The peer ending the transport in an orderly
    // way is not a failure of ours; on_close's 1006 tells that story.
    void report_error(std::error_code ec) {
        if (error_reported_ || !ec || Transport::is_clean_end(ec)) return;
        error_reported_ = true;
        if (handlers_ && handlers_->on_error) handlers_->on_error(this->shared_from_this(), ec);
    }

    void finish() {
        if (finished_) return;
        report_error(result_.error); // a failure not reported yet (close timeout, write error)
        finished_ = true;
        mark_closing();
        timer_.cancel();
        Transport::close(stream_);
        const std::error_code reason =
            result_.error ? result_.error : make_error_code(error::closed);
        // Frames handed to a write stay alive until its completion (a TLS stream still reads
        // them as its lower-layer writes complete); their senders hear the outcome now, and
        // their bytes no longer count as queued: they will never be sent.
        if (!writing_) in_flight_ = 0;
        for (std::size_t i = 0; i < in_flight_; ++i) {
            unbuffer(std::exchange(queue_[i].cost, 0));
            if (auto done = std::move(queue_[i].done)) done(reason);
        }
        drop_queue(reason);
        for (auto& w : control_waiters_) w(reason);
        for (auto& w : control_waiters_in_flight_) w(reason);
        control_waiters_.clear();
        control_waiters_in_flight_.clear();
        if (read_waiter_) {
            auto done = std::move(read_waiter_);
            read_waiter_ = {};
            done(reason, message{});
        }
        for (auto& w : close_waiters_) w(result_.error);
        close_waiters_.clear();
        if (!reading_) release_read_buffer(); // else on_read releases it
        note_close_frames();
        auto handlers = std::move(handlers_);
        handlers_.reset();
        auto self = this->shared_from_this();
        if (handlers && handlers->on_close) handlers->on_close(self, result_);
        auto observers = std::move(close_observers_);
        close_observers_.clear();
        for (auto& observer : observers) observer(self);
    }

    // A pending read owns the buffer it was given until its completion handler runs, even
    // after the transport was closed: Asio's SSL stream copies decrypted bytes into it when its
    // own lower-layer read completes, which can be after close() (docs/design.md, lifetimes).
    void release_read_buffer() {
        read_buffer_.reset();
        read_capacity_ = 0;
        input_ = nullptr;
        read_begin_ = read_end_ = 0;
    }

    void mark_closing() { closing_.store(true, std::memory_order_relaxed); }

    // From here on the close handshake and the transport shutdown have a deadline.
    void begin_closing() {
        mark_closing();
        arm_close_deadline();
    }

    // ---- timers ------------------------------------------------------------------------

    void arm_close_deadline() {
        if (close_deadline_set_) return;
        close_deadline_set_ = true;
        close_deadline_ = clock::now() + options_.close_timeout;
        arm_timer();
    }

    // One timer serves every deadline: it wakes at the earliest and re-arms. Activity does not
    // touch the timer; a wake-up that finds the deadline moved just sleeps again.
    void arm_timer() {
        if (finished_) return;
        const auto none = clock::time_point::max();
        auto next = none;
        if (close_deadline_set_) next = std::min(next, close_deadline_);
        if (!is_closing()) {
            if (options_.ping_interval.count() > 0)
                next = std::min(next, awaiting_pong_ ? ping_sent_ + options_.pong_timeout
                                                     : last_received_ + options_.ping_interval);
            if (options_.idle_timeout.count() > 0)
                next = std::min(next, last_activity_ + options_.idle_timeout);
        }
        if (next == none) {
            timer_armed_ = false;
            return;
        }
        timer_armed_ = true;
        timer_.expires_at(next);
        timer_.async_wait(
            asio::bind_executor(strand_, [self = this->shared_from_this()](std::error_code ec) {
                if (!ec) self->on_timer();
            }));
    }

    void on_timer() {
        timer_armed_ = false;
        if (finished_) return;
        const auto now = clock::now();
        if (close_deadline_set_ && now >= close_deadline_) {
            // The peer did not finish the close handshake or the transport shutdown in time.
            if (session_.state() != protocol::session_state::closed && !result_.error)
                result_.error = error::timed_out;
            return finish();
        }
        if (!is_closing() && options_.ping_interval.count() > 0) {
            if (awaiting_pong_ && now >= ping_sent_ + options_.pong_timeout) {
                result_.code = static_cast<std::uint16_t>(protocol::close_code::abnormal);
                return abort(make_error_code(error::timed_out));
            }
            if (!awaiting_pong_ && now >= last_received_ + options_.ping_interval) {
                awaiting_pong_ = true;
                ping_sent_ = now;
                (void)session_.ping();
                flush();
            }
        }
        if (!is_closing() && options_.idle_timeout.count() > 0 &&
            now >= last_activity_ + options_.idle_timeout)
            request_close(static_cast<std::uint16_t>(protocol::close_code::going_away),
                          "idle timeout");
        arm_timer();
    }

    static constexpr std::size_t max_gather = 64;
    static constexpr std::size_t append_limit = 64U * 1024U;
    static constexpr std::size_t max_held_read_size = 256U * 1024U;
    // Below this a copy costs less than a second buffer in the gathered write.
    static constexpr std::size_t min_borrowed_size = 1024;
    static constexpr std::size_t max_batch = 1U << 20;

    stream_type stream_;
    executor_type strand_;
    asio::steady_timer timer_;
    connection_options options_;
    protocol::session session_;
    asio::ip::tcp::endpoint remote_;
    UserData user_data_{};
    std::string subprotocol_;
    std::shared_ptr<const handlers_type> handlers_; // set by start(); null before and after
    bool handler_mode_ = false;

    std::unique_ptr<char[]> read_buffer_;
    std::size_t read_capacity_ = 0;
    std::size_t held_read_size_ = 0; // hold_read_buffer: grown past read_buffer_size by use
    char* input_ = nullptr;          // read_buffer_ or the thread's buffer: unparsed bytes
    std::size_t read_begin_ = 0;
    std::size_t read_end_ = 0;
    bool reading_ = false;
    bool processing_input_ = false;
    bool next_piece_first_ = true; // partial delivery: the next piece starts a message
    bool error_reported_ = false;
    detail::unique_function<void(std::error_code, message)> read_waiter_;

    detail::fifo<outgoing> queue_;
    std::size_t in_flight_ = 0;
    std::size_t borrowed_frames_ = 0;
    std::string control_in_flight_;
    std::vector<asio::const_buffer> gather_;
    bool writing_ = false;
    std::vector<detail::unique_function<void(std::error_code)>> control_waiters_;
    std::vector<detail::unique_function<void(std::error_code)>> control_waiters_in_flight_;
    std::vector<detail::unique_function<void(std::error_code)>> close_waiters_;
    std::vector<detail::unique_function<void(const std::shared_ptr<connection>&)>> close_observers_;
    std::atomic<std::size_t> buffered_{0};
    std::shared_ptr<detail::send_budget> budget_; // shared with other connections, or null
    std::atomic<bool> closing_{false};
    std::atomic<bool> drain_wanted_{false}; // a send answered backpressure; on_drain is owed
    bool drain_posted_ = false;             // on the strand: a drain check is queued
    bool closing_requested_ = false;
    bool transport_ending_ = false;
    bool finished_ = false;
    close_info result_;

    bool timer_armed_ = false;
    bool close_deadline_set_ = false;
    bool awaiting_pong_ = false;
    clock::time_point close_deadline_{};
    clock::time_point ping_sent_{};
    clock::time_point last_received_;
    clock::time_point last_activity_;
};

} // namespace duplex
