// duplex/transport/memory.hpp — an in-memory transport with fault injection, for tests.
// SPDX-License-Identifier: BSL-1.0
//
// `memory` is a transport policy (the contract is at the top of tcp.hpp) whose streams are
// the two ends of an in-process pipe: what one end writes, the other reads. No sockets, no
// ports, no timing: a test (of duplex, or of an application built on it) decides exactly which
// bytes arrive in which pieces and which operation fails, and gets the same run every time.
//
//   auto [a, b] = duplex::transport::memory::make_pair(io.get_executor());
//   b.read_chunks({1, 7, 2});                          // split what b reads anywhere
//   a.fail_write(3, asio::error::connection_reset);    // the third write from now fails
//   b.write_capacity(4096);  b.block_writes(true);     // a peer that stops reading
//   a.late_buffer_use(true);  // like TLS: buffers touched after close(), before the handler
//
// Streams only come in connected pairs (memory::make_pair), so the policy has no make_stream.
//
// Behaviour, modelled on a TCP socket:
//   - async_read_some completes as soon as bytes are available, never inline (posted to the
//     stream's executor, then run on the handler's associated executor). After the peer's
//     shutdown_send or close, reads return the bytes still queued and then asio::error::eof.
//   - async_write_some copies the bytes to the peer's queue and completes (posted). With a
//     write capacity, it accepts only what fits below the capacity (a partial write) and, when
//     nothing fits or writes are blocked, stays pending until the peer reads or the end is
//     unblocked: this is how tests produce backpressure.
//   - close() on an end: its pending operations complete with operation_aborted, later ones
//     with bad_descriptor, bytes queued for it are dropped; the peer reads what was already
//     sent to it and then eof, and its writes fail with connection_reset. The destructor
//     closes.
//   - shutdown_send(): the peer sees eof after the queued bytes; this end's later (or
//     pending) writes fail with broken_pipe; reading still works.
//   - A second read (or write) while one is pending on the same end is a bug in the caller;
//     it completes with asio::error::in_progress rather than being queued.
//   - A pending operation counts as outstanding work, like one on a socket: io_context::run
//     does not return while a read waits for a peer that never writes. Use run_for in tests.
//   - When the execution context shuts down (an io_context being destroyed), the handlers of
//     pending operations are destroyed without being called, as Asio does for sockets. A
//     handler usually owns what owns the stream, so otherwise the two would keep each other.
//
// Threads: the two ends share their state under a mutex, so they may run on different
// threads or strands of a multi-threaded io_context (that is what TSan tests need). As with a
// socket, each end takes at most one read and one write at a time; the fault-injection setters
// may be called from any thread. Completions are collected under the lock and posted after it
// is released, so no handler runs, or is destroyed, while the lock is held.
#pragma once

#include "../detail/post_completion.hpp"
#include "../detail/unique_function.hpp"
#include "../protocol/session.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/bind_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/execution/context.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/execution_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/prefer.hpp>
#include <asio/query.hpp>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace duplex::transport {

struct memory;

namespace memory_detail {

using completion = duplex::detail::unique_function<void(std::error_code, std::size_t)>;

constexpr std::size_t unlimited = std::numeric_limits<std::size_t>::max();

// Wraps a completion handler so that calling it later completes it the way Asio's own I/O
// objects do: posted to the stream's executor (never run inline), then dispatched to the
// handler's associated executor (a strand, a coroutine's executor). While the operation is
// pending, the stream's executor counts it as outstanding work.
template <class Handler>
completion make_completion(Handler&& handler, const asio::any_io_executor& io_executor) {
    auto handler_executor = asio::get_associated_executor(handler, io_executor);
    auto work = asio::prefer(io_executor, asio::execution::outstanding_work.tracked);
    return [h = std::forward<Handler>(handler), handler_executor = std::move(handler_executor),
            work = std::move(work)](std::error_code ec, std::size_t n) mutable {
        asio::post(work, asio::bind_executor(handler_executor,
                                             [h = std::move(h), ec, n]() mutable { h(ec, n); }));
    };
}

// The state the two ends share. Everything here is guarded by `mutex`.
class pipe {
public:
    struct ready {
        completion done;
        std::error_code ec;
        std::size_t bytes;
    };
    using ready_list = std::vector<ready>;

    struct pending_read {
        completion done;
        std::vector<asio::mutable_buffer> buffers;
    };
    struct pending_write {
        completion done;
        std::vector<asio::const_buffer> buffers;
    };

    // One end of the pipe: what it has to read, its pending operations, and its faults.
    struct end {
        std::string inbound; // bytes written by the other end, from `head` on
        std::size_t head = 0;
        bool closed = false;
        bool send_shut = false; // shutdown_send: the other end reads eof after `inbound`

        std::size_t write_capacity = unlimited; // bound on the other end's `inbound`
        bool writes_blocked = false;

        std::size_t reads_started = 0, writes_started = 0;
        std::size_t fail_read_at = 0, fail_write_at = 0; // 0: no fault armed
        std::error_code read_error, write_error;
        std::vector<std::size_t> chunks;
        std::size_t next_chunk = 0;
        std::size_t max_read = unlimited;
        // Set by late_buffer_use(): operations pending at close() touch their buffers when
        // their completion runs, on this executor, as a TLS stream does.
        std::optional<asio::any_io_executor> late_executor;

        std::optional<pending_read> read;
        std::optional<pending_write> write;

        std::size_t queued() const noexcept { return inbound.size() - head; }
    };

    std::mutex mutex;
    end ends[2];

    static void run(ready_list& list) {
        for (auto& r : list) r.done(r.ec, r.bytes);
    }

    void start_read(int i, pending_read op, ready_list& out) {
        end& e = ends[i];
        if (e.closed) return out.push_back({std::move(op.done), asio::error::bad_descriptor, 0});
        if (e.read) return out.push_back({std::move(op.done), asio::error::in_progress, 0});
        ++e.reads_started;
        if (e.fail_read_at != 0 && e.reads_started == e.fail_read_at) {
            e.fail_read_at = 0;
            return out.push_back({std::move(op.done), e.read_error, 0});
        }
        if (asio::buffer_size(op.buffers) == 0)
            return out.push_back({std::move(op.done), std::error_code{}, 0});
        e.read = std::move(op);
        try_read(i, out);
    }

    void start_write(int i, pending_write op, ready_list& out) {
        end& e = ends[i];
        if (e.closed) return out.push_back({std::move(op.done), asio::error::bad_descriptor, 0});
        if (e.write) return out.push_back({std::move(op.done), asio::error::in_progress, 0});
        ++e.writes_started;
        if (e.fail_write_at != 0 && e.writes_started == e.fail_write_at) {
            e.fail_write_at = 0;
            return out.push_back({std::move(op.done), e.write_error, 0});
        }
        if (e.send_shut) return out.push_back({std::move(op.done), asio::error::broken_pipe, 0});
        if (asio::buffer_size(op.buffers) == 0 && !ends[1 - i].closed)
            return out.push_back({std::move(op.done), std::error_code{}, 0});
        e.write = std::move(op);
        try_write(i, out);
    }

    // Completes end i's pending read if there is something to deliver: bytes, or eof.
    void try_read(int i, ready_list& out) {
        end& e = ends[i];
        if (!e.read) return;
        if (e.queued() == 0) {
            if (ends[1 - i].send_shut || ends[1 - i].closed) {
                out.push_back({std::move(e.read->done), asio::error::eof, 0});
                e.read.reset();
            }
            return;
        }
        std::size_t limit = std::min(e.queued(), e.max_read);
        if (!e.chunks.empty()) {
            limit = std::min(limit, e.chunks[e.next_chunk]);
            e.next_chunk = (e.next_chunk + 1) % e.chunks.size();
        }
        std::size_t n = 0;
        for (const auto& b : e.read->buffers) {
            if (n == limit) break;
            const std::size_t k = std::min(b.size(), limit - n);
            std::memcpy(b.data(), e.inbound.data() + e.head + n, k);
            n += k;
        }
        e.head += n;
        if (e.head == e.inbound.size()) {
            e.inbound.clear();
            e.head = 0;
        } else if (e.head > 4096 && e.head > e.inbound.size() / 2) {
            e.inbound.erase(0, e.head);
            e.head = 0;
        }
        out.push_back({std::move(e.read->done), std::error_code{}, n});
        e.read.reset();
        try_write(1 - i, out); // room may have opened for a writer held at capacity
    }

    // Moves as much of end i's pending write into the other end as its capacity allows.
    void try_write(int i, ready_list& out) {
        end& e = ends[i];
        end& peer = ends[1 - i];
        if (!e.write) return;
        if (peer.closed) {
            out.push_back({std::move(e.write->done), asio::error::connection_reset, 0});
            e.write.reset();
            return;
        }
        std::size_t room = 0;
        if (!e.writes_blocked)
            room = e.write_capacity > peer.queued() ? e.write_capacity - peer.queued() : 0;
        if (room == 0) return;
        std::size_t n = 0;
        for (const auto& b : e.write->buffers) {
            if (n == room) break;
            const std::size_t k = std::min(b.size(), room - n);
            peer.inbound.append(static_cast<const char*>(b.data()), k);
            n += k;
        }
        out.push_back({std::move(e.write->done), std::error_code{}, n});
        e.write.reset();
        try_read(1 - i, out);
    }

    void shutdown_send(int i, std::error_code& ec, ready_list& out) {
        end& e = ends[i];
        ec = {};
        if (e.closed) {
            ec = asio::error::bad_descriptor;
            return;
        }
        e.send_shut = true;
        if (e.write) {
            out.push_back({std::move(e.write->done), asio::error::broken_pipe, 0});
            e.write.reset();
        }
        try_read(1 - i, out);
    }

    // The execution context is shutting down: its pending operations will never complete.
    // The caller destroys what this returns after releasing the lock.
    ready_list abandon() {
        ready_list dropped;
        for (auto& e : ends) {
            if (e.read) dropped.push_back({std::move(e.read->done), {}, 0});
            if (e.write) dropped.push_back({std::move(e.write->done), {}, 0});
            e.read.reset();
            e.write.reset();
        }
        return dropped;
    }

    // A read pending at close() that still writes into its buffers (and a write that still
    // reads its own) in a later turn of the executor, just before its handler runs: what
    // Asio's SSL stream does when its lower-layer operation completes after the close.
    template <class Op>
    static completion late(Op op, const asio::any_io_executor& executor) {
        return [op = std::move(op), executor](std::error_code ec, std::size_t) mutable {
            asio::post(executor, [op = std::move(op), ec]() mutable {
                for (const auto& b : op.buffers) {
                    if constexpr (std::is_same_v<Op, pending_read>) {
                        std::memset(b.data(), 0x5a, b.size());
                    } else {
                        volatile unsigned char sink = 0;
                        const auto* bytes = static_cast<const unsigned char*>(b.data());
                        for (std::size_t k = 0; k < b.size(); ++k) sink = sink ^ bytes[k];
                        (void)sink;
                    }
                }
                op.done(ec, 0);
            });
        };
    }

    void close(int i, ready_list& out) {
        end& e = ends[i];
        if (e.closed) return;
        e.closed = true;
        constexpr auto aborted = asio::error::operation_aborted;
        if (e.read && e.late_executor)
            out.push_back({late(std::move(*e.read), *e.late_executor), aborted, 0});
        else if (e.read)
            out.push_back({std::move(e.read->done), aborted, 0});
        if (e.write && e.late_executor)
            out.push_back({late(std::move(*e.write), *e.late_executor), aborted, 0});
        else if (e.write)
            out.push_back({std::move(e.write->done), aborted, 0});
        e.read.reset();
        e.write.reset();
        e.inbound.clear();
        e.head = 0;
        try_read(1 - i, out);
        try_write(1 - i, out);
    }
};

// Knows every pipe made on one execution context, to abandon their pending operations when
// that context shuts down.
class pipe_registry : public asio::execution_context::service {
public:
    using key_type = pipe_registry;
    static inline asio::execution_context::id id;

    explicit pipe_registry(asio::execution_context& context)
        : asio::execution_context::service(context) {}

    void add(const std::shared_ptr<pipe>& p) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (pipes_.size() >= 2 * live_at_last_prune_ + 16) {
            pipes_.erase(std::remove_if(pipes_.begin(), pipes_.end(),
                                        [](const std::weak_ptr<pipe>& w) { return w.expired(); }),
                         pipes_.end());
            live_at_last_prune_ = pipes_.size();
        }
        pipes_.push_back(p);
    }

private:
    void shutdown() override {
        std::vector<std::weak_ptr<pipe>> pipes;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            pipes.swap(pipes_);
        }
        for (auto& weak : pipes) {
            auto p = weak.lock();
            if (!p) continue;
            pipe::ready_list dropped;
            {
                std::lock_guard<std::mutex> lock(p->mutex);
                dropped = p->abandon();
            }
            // Destroying a handler may destroy a stream of this very pipe: not under its lock.
            dropped.clear();
        }
    }

    std::mutex mutex_;
    std::vector<std::weak_ptr<pipe>> pipes_;
    std::size_t live_at_last_prune_ = 0;
};

} // namespace memory_detail

// One end of an in-memory pipe: an AsyncReadStream and AsyncWriteStream. Made in connected
// pairs by memory::make_pair; movable, not copyable.
class memory_stream {
public:
    using executor_type = asio::any_io_executor;
    static constexpr std::size_t unlimited = memory_detail::unlimited;

    memory_stream(memory_stream&& other) noexcept
        : pipe_(std::move(other.pipe_)), side_(other.side_), executor_(other.executor_) {}
    memory_stream& operator=(memory_stream&& other) noexcept {
        if (this != &other) {
            close();
            pipe_ = std::move(other.pipe_);
            side_ = other.side_;
            executor_ = other.executor_;
        }
        return *this;
    }
    memory_stream(const memory_stream&) = delete;
    memory_stream& operator=(const memory_stream&) = delete;
    ~memory_stream() { close(); }

    executor_type get_executor() const noexcept { return executor_; }

    template <class MutableBufferSequence,
              class Token = asio::default_completion_token_t<executor_type>>
    auto async_read_some(const MutableBufferSequence& buffers, Token&& token = Token{}) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto&& handler, const MutableBufferSequence& b) {
                memory_detail::pipe::pending_read op{
                    memory_detail::make_completion(std::forward<decltype(handler)>(handler),
                                                   executor_),
                    {asio::buffer_sequence_begin(b), asio::buffer_sequence_end(b)}};
                start(
                    [&](memory_detail::pipe& p, memory_detail::pipe::ready_list& out) {
                        p.start_read(side_, std::move(op), out);
                    },
                    op.done);
            },
            token, buffers);
    }

    template <class ConstBufferSequence,
              class Token = asio::default_completion_token_t<executor_type>>
    auto async_write_some(const ConstBufferSequence& buffers, Token&& token = Token{}) {
        return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
            [this](auto&& handler, const ConstBufferSequence& b) {
                memory_detail::pipe::pending_write op{
                    memory_detail::make_completion(std::forward<decltype(handler)>(handler),
                                                   executor_),
                    {asio::buffer_sequence_begin(b), asio::buffer_sequence_end(b)}};
                start(
                    [&](memory_detail::pipe& p, memory_detail::pipe::ready_list& out) {
                        p.start_write(side_, std::move(op), out);
                    },
                    op.done);
            },
            token, buffers);
    }

    // Ends this end's sending direction: the peer reads what is queued, then eof.
    void shutdown_send(std::error_code& ec) {
        if (!pipe_) {
            ec = asio::error::bad_descriptor;
            return;
        }
        with_pipe([&](memory_detail::pipe& p, auto& out) { p.shutdown_send(side_, ec, out); });
    }

    // Closes both directions at once; idempotent.
    void close() noexcept {
        if (!pipe_) return;
        try {
            with_pipe([&](memory_detail::pipe& p, auto& out) { p.close(side_, out); });
        } catch (...) {
            // Only allocation can throw here (the list of completions); the end is closed.
        }
    }

    bool is_open() const noexcept {
        if (!pipe_) return false;
        std::lock_guard<std::mutex> lock(pipe_->mutex);
        return !pipe_->ends[side_].closed;
    }

    // Bytes the peer has written that this end has not read yet.
    std::size_t available() const noexcept {
        if (!pipe_) return 0;
        std::lock_guard<std::mutex> lock(pipe_->mutex);
        return pipe_->ends[side_].queued();
    }

    // --- Fault injection. Each setting applies to this end and may change at any time. ---

    // The nth read (or write) started from now on (1 = the next one) completes with `ec` and
    // 0 bytes, consuming nothing. One-shot; n = 0 disarms.
    void fail_read(std::size_t nth, std::error_code ec) {
        configure([&](memory_detail::pipe::end& e, auto&) {
            e.fail_read_at = nth == 0 ? 0 : e.reads_started + nth;
            e.read_error = ec;
        });
    }
    void fail_write(std::size_t nth, std::error_code ec) {
        configure([&](memory_detail::pipe::end& e, auto&) {
            e.fail_write_at = nth == 0 ? 0 : e.writes_started + nth;
            e.write_error = ec;
        });
    }

    // Each read that delivers bytes delivers at most the next of these sizes, cycling, so a
    // test can split the byte stream at any point. Zeros are ignored; {} turns it off.
    void read_chunks(std::vector<std::size_t> sizes) {
        sizes.erase(std::remove(sizes.begin(), sizes.end(), std::size_t{0}), sizes.end());
        configure([&](memory_detail::pipe::end& e, auto&) {
            e.chunks = std::move(sizes);
            e.next_chunk = 0;
        });
    }

    // No read delivers more than `bytes` (0 = unlimited).
    void max_read_size(std::size_t bytes) {
        configure([&](memory_detail::pipe::end& e, auto&) {
            e.max_read = bytes == 0 ? unlimited : bytes;
        });
    }

    // Writes from this end only fill the peer's unread queue up to `bytes`; beyond that they
    // wait for the peer to read (`unlimited` removes the bound).
    void write_capacity(std::size_t bytes) {
        configure([&](memory_detail::pipe::end& e, auto& out) {
            e.write_capacity = bytes;
            pipe_->try_write(side_, out);
        });
    }

    // While blocked, writes from this end stay pending, as if the peer had stopped reading
    // and every buffer on the way were full.
    void block_writes(bool blocked) {
        configure([&](memory_detail::pipe::end& e, auto& out) {
            e.writes_blocked = blocked;
            pipe_->try_write(side_, out);
        });
    }

    // When this end is closed, its pending read still writes into its buffers, and its
    // pending write still reads from its own, in a later turn of the executor, before their
    // handlers run: Asio's SSL stream behaves so, because it copies decrypted bytes into the
    // caller's buffer when its own lower-layer read completes. A caller that frees a buffer
    // before the operation's handler has run is caught by AddressSanitizer.
    void late_buffer_use(bool on) {
        configure([&](memory_detail::pipe::end& e, auto&) {
            if (on)
                e.late_executor = executor_;
            else
                e.late_executor.reset();
        });
    }

private:
    friend struct memory;

    memory_stream(std::shared_ptr<memory_detail::pipe> pipe, int side, executor_type executor)
        : pipe_(std::move(pipe)), side_(side), executor_(std::move(executor)) {}

    template <class F>
    void with_pipe(F&& f) {
        memory_detail::pipe::ready_list out;
        {
            std::lock_guard<std::mutex> lock(pipe_->mutex);
            f(*pipe_, out);
        }
        memory_detail::pipe::run(out);
    }

    template <class F>
    void configure(F&& f) {
        if (!pipe_) return;
        with_pipe([&](memory_detail::pipe& p, auto& out) { f(p.ends[side_], out); });
    }

    // Starts an operation, or fails it with bad_descriptor on a moved-from stream.
    template <class F>
    void start(F&& f, memory_detail::completion& done) {
        if (!pipe_) return done(asio::error::bad_descriptor, 0);
        with_pipe(std::forward<F>(f));
    }

    std::shared_ptr<memory_detail::pipe> pipe_;
    int side_ = 0;
    executor_type executor_;
};

struct memory {
    using stream_type = memory_stream;
    struct context_type {};
    static constexpr bool is_secure = false;

    // Two connected ends, both on `executor` (an io_context's executor or a strand).
    static std::pair<stream_type, stream_type> make_pair(const asio::any_io_executor& executor) {
        return make_pair(executor, executor);
    }
    // Two connected ends on executors of their own, e.g. two strands of one io_context.
    static std::pair<stream_type, stream_type> make_pair(const asio::any_io_executor& a,
                                                         const asio::any_io_executor& b) {
        auto shared = std::make_shared<memory_detail::pipe>();
        for (const auto* executor : {&a, &b})
            asio::use_service<memory_detail::pipe_registry>(
                asio::query(*executor, asio::execution::context))
                .add(shared);
        return {stream_type(shared, 0, a), stream_type(shared, 1, b)};
    }

    template <class Handler>
    static void async_handshake(stream_type& stream, protocol::role, const std::string&,
                                Handler&& handler) {
        detail::post_completion(stream.get_executor(), std::forward<Handler>(handler),
                                std::error_code{});
    }

    // The peer reads the bytes already written, then eof.
    template <class Handler>
    static void async_shutdown(stream_type& stream, Handler&& handler) {
        std::error_code ec;
        stream.shutdown_send(ec);
        detail::post_completion(stream.get_executor(), std::forward<Handler>(handler), ec);
    }

    static void close(stream_type& stream) noexcept { stream.close(); }

    static bool is_clean_end(const std::error_code& ec) noexcept { return ec == asio::error::eof; }

    static asio::ip::tcp::endpoint remote_endpoint(const stream_type&) noexcept { return {}; }
};

} // namespace duplex::transport
