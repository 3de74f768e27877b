// duplex/detail/tls_stream.hpp — the TLS stream behind transport::tls: OpenSSL over a TCP
// socket, holding no record buffers while the connection is idle.
// SPDX-License-Identifier: BSL-1.0
//
// Part of transport/tls.hpp (which includes it). asio::ssl::stream keeps four ~17 KiB buffers
// (its own two and a BIO pair's two) for the life of a stream; an idle WebSocket connection
// needs none of them. Here OpenSSL reads and writes through a BIO of ours that reads from the
// ciphertext just received and appends to the ciphertext waiting to be sent; both buffers are
// freed as soon as they are empty, and SSL_MODE_RELEASE_BUFFERS (set on duplex's contexts) does
// the same for OpenSSL's record buffers.
//
// Rules that keep it correct:
// - Every SSL call and every completion touching the state runs on the executor the
//   operations were started from (a connection's strand), as with asio::ssl::stream. All
//   socket completions hold the state by shared_ptr, so a stream destroyed (or moved) with
//   operations pending leaves them nothing freed to touch.
// - At most one operation consumes input at a time (a read, a readiness wait or the
//   handshake); writes and shutdown may run beside it (full duplex). Output from any of them
//   (application records, alerts, KeyUpdate answers, session tickets) is appended to one
//   FIFO of ciphertext written by one flusher, so records leave in the order OpenSSL made
//   them. OpenSSL never waits on our BIO for output, so SSL_write never asks for a retry.
// - The socket's end without the peer's close_notify is stream_truncated; the peer's
//   close_notify is eof (as asio::ssl::stream reports them). OpenSSL errors come in asio's
//   ssl category.
#pragma once

#include "unique_function.hpp"

#include <asio/any_io_executor.hpp>
#include <asio/associated_executor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/buffer.hpp>
#include <asio/dispatch.hpp>
#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/ssl/error.hpp>
#include <asio/ssl/stream_base.hpp>
#include <asio/write.hpp>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstddef>
#include <cstring>
#include <memory>
#include <system_error>
#include <utility>
#include <vector>

namespace duplex::detail {

class tls_stream {
public:
    using executor_type = asio::any_io_executor;
    using next_layer_type = asio::ip::tcp::socket;
    using lowest_layer_type = next_layer_type::lowest_layer_type;
    using handshake_type = asio::ssl::stream_base::handshake_type;

    // Throws asio::system_error when OpenSSL cannot make the SSL object (out of memory).
    tls_stream(asio::ip::tcp::socket&& socket, SSL_CTX* context)
        : core_(std::make_shared<core>(std::move(socket))) {
        ::ERR_clear_error();
        BIO_METHOD* method = bio_method();
        core_->ssl = method ? ::SSL_new(context) : nullptr;
        BIO* bio = core_->ssl ? ::BIO_new(method) : nullptr;
        if (!bio) {
            const unsigned long code = ::ERR_get_error();
            throw asio::system_error(
                code ? std::error_code(static_cast<int>(code), asio::error::get_ssl_category())
                     : std::error_code(asio::error::no_memory),
                "duplex::tls stream");
        }
        ::BIO_set_data(bio, core_.get());
        ::SSL_set_bio(core_->ssl, bio, bio);
    }

    tls_stream(tls_stream&&) noexcept = default;
    tls_stream& operator=(tls_stream&& other) noexcept {
        if (this != &other) {
            close_socket();
            core_ = std::move(other.core_);
        }
        return *this;
    }
    tls_stream(const tls_stream&) = delete;
    tls_stream& operator=(const tls_stream&) = delete;
    // Pending operations hold the state; closing the socket makes them complete.
    ~tls_stream() { close_socket(); }

    executor_type get_executor() noexcept { return core_->socket.get_executor(); }
    SSL* native_handle() const noexcept { return core_->ssl; }
    next_layer_type& next_layer() noexcept { return core_->socket; }
    const next_layer_type& next_layer() const noexcept { return core_->socket; }
    lowest_layer_type& lowest_layer() noexcept { return core_->socket; }

    // Bytes of ciphertext buffers the stream holds now (received and not yet decrypted, or
    // encrypted and not yet sent), counted by capacity: 0 whenever the connection is idle.
    std::size_t buffered_capacity() const noexcept {
        return core_->in_capacity + core_->out.capacity() + core_->sending.capacity();
    }

    template <class Handler>
    void async_handshake(handshake_type type, Handler&& handler) {
        if (type == asio::ssl::stream_base::client)
            ::SSL_set_connect_state(core_->ssl);
        else
            ::SSL_set_accept_state(core_->ssl);
        handshake_op<std::decay_t<Handler>>{core_, std::forward<Handler>(handler)}.start();
    }

    template <class MutableBuffers, class Handler>
    void async_read_some(const MutableBuffers& buffers, Handler&& handler) {
        asio::mutable_buffer first;
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers); ++it) {
            if (it->size() == 0) continue;
            first = *it;
            break;
        }
        read_op<std::decay_t<Handler>>{core_, first, std::forward<Handler>(handler)}.start();
    }

    template <class ConstBuffers, class Handler>
    void async_write_some(const ConstBuffers& buffers, Handler&& handler) {
        start_op(handler);
        std::error_code ec = core_->write_error;
        std::size_t n = 0;
        if (!ec) n = encrypt(buffers, ec);
        if (ec || n == 0) {
            start_flush(core_); // an alert, if OpenSSL made one
            return complete(core_, std::forward<Handler>(handler), false, ec, std::size_t{0});
        }
        auto c = core_;
        flush(c, false,
              [c, n, h = std::forward<Handler>(handler)](std::error_code e, bool waited) mutable {
                  complete(c, std::move(h), waited, e, e ? std::size_t{0} : n);
              });
    }

    // Sends close_notify after everything written before it, and completes when it has left.
    // It does not wait for the peer's close_notify: a read sees that as eof.
    template <class Handler>
    void async_shutdown(Handler&& handler) {
        start_op(handler);
        std::error_code ec;
        ::ERR_clear_error();
        const int r = ::SSL_shutdown(core_->ssl);
        if (r < 0) ec = error_of(core_->ssl, r);
        auto c = core_;
        flush(c, false,
              [c, ec, h = std::forward<Handler>(handler)](std::error_code e, bool waited) mutable {
                  complete(c, std::move(h), waited, ec ? ec : e);
              });
    }

    // Readiness (see the policy contract in tcp.hpp): completes when read_now may find bytes,
    // at once when decrypted bytes or ciphertext wait in the stream. Reading makes OpenSSL
    // answer (KeyUpdate), so a peer that sends but never reads could grow our unsent output
    // without end: past output_limit, input waits until the output has left.
    template <class Handler>
    void async_wait_readable(Handler&& handler) {
        start_op(handler);
        if (!core_->output_backlog()) return wait_readable(core_, std::forward<Handler>(handler));
        auto c = core_;
        flush(c, false, [c, h = std::forward<Handler>(handler)](std::error_code ec, bool) mutable {
            if (ec) return complete(c, std::move(h), false, ec);
            wait_readable(c, std::move(h));
        });
    }

    // Decrypts what is there without blocking: asio::error::would_block when nothing is.
    std::size_t read_now(asio::mutable_buffer buffer, std::error_code& ec) {
        core& c = *core_;
        ec = {};
        if (c.read_error) {
            ec = c.read_error;
            return 0;
        }
        if (buffer.size() == 0) return 0;
        if (!c.socket.non_blocking()) {
            c.socket.non_blocking(true, ec);
            if (ec) return 0;
        }
        auto* data = static_cast<unsigned char*>(buffer.data());
        std::size_t total = 0;
        for (;;) {
            std::size_t n = 0;
            std::error_code e;
            const status s = perform(
                c, [&] { return ::SSL_read_ex(c.ssl, data + total, buffer.size() - total, &n); },
                e);
            if (s == status::done) {
                total += n;
                if (total == buffer.size()) break;
                continue;
            }
            if (s == status::failed) {
                // Bytes already decrypted go first; the error is the next read's.
                if (total == 0)
                    ec = e;
                else
                    c.read_error = e;
                c.drop_input();
                break;
            }
            if (total > 0) break;
            c.take_input_buffer();
            const std::size_t got = c.socket.read_some(asio::buffer(c.in.get(), c.in_capacity), e);
            if (e) {
                ec = (e == asio::error::eof) ? end_of_input(c) : e;
                break;
            }
            c.in_begin = 0;
            c.in_end = got;
        }
        c.settle_input();
        start_flush(core_); // what reading made OpenSSL say: a KeyUpdate, an alert
        return total;
    }

private:
    struct core {
        explicit core(asio::ip::tcp::socket&& s) : socket(std::move(s)) {}
        ~core() {
            if (!ssl) return;
            // OpenSSL marks a client's session not resumable when the SSL is freed without
            // having sent close_notify (ssl_clear_bad_session: a TLS 1.0 rule, dropped by
            // RFC 4346 7.2.1 and absent from TLS 1.3). A WebSocket client never sends one
            // (RFC 6455 7.1.1: the server ends TCP first, after the close frames), so every
            // session it kept would be spoiled at the end of its connection. Telling OpenSSL
            // the end was orderly keeps them usable; a fatal alert has already marked the
            // session, and a handshake that did not finish made none.
            if (!::SSL_is_server(ssl) && ::SSL_is_init_finished(ssl))
                ::SSL_set_shutdown(ssl, ::SSL_get_shutdown(ssl) | SSL_SENT_SHUTDOWN);
            ::SSL_free(ssl);
        }
        core(const core&) = delete;
        core& operator=(const core&) = delete;

        asio::ip::tcp::socket socket;
        SSL* ssl = nullptr;
        // Where internal completions (the flusher's) run: the latest operation's executor.
        asio::any_io_executor executor;

        // Ciphertext received, not yet consumed by OpenSSL: in[in_begin, in_end). Allocated
        // for a socket read, freed once OpenSSL has consumed it.
        std::unique_ptr<unsigned char[]> in;
        std::size_t in_capacity = 0, in_begin = 0, in_end = 0;
        // Set from a decrypting read that already returned bytes; the next read reports it.
        std::error_code read_error;

        // Ciphertext OpenSSL made, not yet given to the socket; and the part a socket write in
        // flight holds (never touched until it completes). Both freed when sent.
        std::vector<unsigned char> out;
        std::vector<unsigned char> sending;
        bool writing = false;
        std::error_code write_error; // sticky: nothing more can leave after a failed write
        std::vector<unique_function<void(std::error_code)>> flushed; // waiting for all to leave

        static constexpr std::size_t input_size = 17 * 1024; // one full TLS record and more
        // Above what one write_some leaves (64 KiB of plaintext, encrypted), so that only output
        // made by reading (answers to a peer that does not read) can reach it.
        static constexpr std::size_t output_limit = 256 * 1024;

        bool output_backlog() const noexcept { return out.size() + sending.size() > output_limit; }

        void take_input_buffer() {
            if (in_capacity < input_size) {
                in.reset(new unsigned char[input_size]);
                in_capacity = input_size;
                in_begin = in_end = 0;
            }
        }
        // After an SSL call: a drained buffer is freed; a few bytes left (the start of the next
        // record, when the caller's buffer was full) move to a buffer of their size.
        void settle_input() {
            const std::size_t left = in_end - in_begin;
            if (left == 0) {
                in.reset();
                in_capacity = in_begin = in_end = 0;
            } else if (left < in_capacity / 2) {
                std::unique_ptr<unsigned char[]> kept(new unsigned char[left]);
                std::memcpy(kept.get(), in.get() + in_begin, left);
                in = std::move(kept);
                in_capacity = in_end = left;
                in_begin = 0;
            }
        }
        // After a failure nothing more will be decrypted.
        void drop_input() {
            in_begin = in_end;
            settle_input();
        }
    };

    enum class status { done, want_input, failed };

    // ---- the BIO: OpenSSL's view of the two ciphertext buffers ---------------------------

    static int bio_write(BIO* bio, const char* data, int size) {
        ::BIO_clear_retry_flags(bio);
        auto* c = static_cast<core*>(::BIO_get_data(bio));
        if (size <= 0) return 0;
        const auto* bytes = reinterpret_cast<const unsigned char*>(data);
        c->out.insert(c->out.end(), bytes, bytes + size);
        return size;
    }

    static int bio_read(BIO* bio, char* data, int size) {
        ::BIO_clear_retry_flags(bio);
        auto* c = static_cast<core*>(::BIO_get_data(bio));
        const std::size_t available = c->in_end - c->in_begin;
        if (available == 0 || size <= 0) {
            ::BIO_set_retry_read(bio); // not an end: the socket decides that, not OpenSSL
            return -1;
        }
        const std::size_t n = std::min(available, static_cast<std::size_t>(size));
        std::memcpy(data, c->in.get() + c->in_begin, n);
        c->in_begin += n;
        return static_cast<int>(n);
    }

    static long bio_ctrl(BIO*, int command, long, void*) {
        // OpenSSL flushes after each flight; the flusher does the real work.
        return command == BIO_CTRL_FLUSH ? 1 : 0;
    }

    static int bio_create(BIO* bio) {
        ::BIO_set_init(bio, 1);
        return 1;
    }

    static BIO_METHOD* bio_method() {
        // Made once, never freed: a process-wide description like OpenSSL's own BIO methods.
        static BIO_METHOD* const method = [] {
            const int index = ::BIO_get_new_index();
            BIO_METHOD* m =
                index < 0 ? nullptr : ::BIO_meth_new(index | BIO_TYPE_SOURCE_SINK, "duplex tls");
            if (m &&
                (::BIO_meth_set_write(m, &bio_write) != 1 ||
                 ::BIO_meth_set_read(m, &bio_read) != 1 || ::BIO_meth_set_ctrl(m, &bio_ctrl) != 1 ||
                 ::BIO_meth_set_create(m, &bio_create) != 1)) {
                ::BIO_meth_free(m);
                m = nullptr;
            }
            return m;
        }();
        return method;
    }

    // ---- one SSL call --------------------------------------------------------------------

    static std::error_code error_of(SSL* ssl, int result) {
        const int kind = ::SSL_get_error(ssl, result);
        const unsigned long code = ::ERR_get_error();
        switch (kind) {
        case SSL_ERROR_ZERO_RETURN: return asio::error::eof;
        case SSL_ERROR_SSL:
            if (code) return {static_cast<int>(code), asio::error::get_ssl_category()};
            return asio::ssl::error::unexpected_result;
        case SSL_ERROR_SYSCALL:
            if (code) return {static_cast<int>(code), asio::error::get_ssl_category()};
            return asio::ssl::error::unspecified_system_error;
        default: return asio::ssl::error::unexpected_result;
        }
    }

    template <class Call>
    static status perform(core& c, Call&& call, std::error_code& ec) {
        ::ERR_clear_error();
        const int r = call();
        if (r > 0) return status::done;
        if (::SSL_get_error(c.ssl, r) == SSL_ERROR_WANT_READ) {
            // Our BIO hands OpenSSL all it has; it asks for more only when that is used up.
            if (c.in_begin == c.in_end) return status::want_input;
        }
        ec = error_of(c.ssl, r);
        return status::failed;
    }

    // The socket ended: an orderly end only after the peer's close_notify.
    static std::error_code end_of_input(core& c) {
        if (::SSL_get_shutdown(c.ssl) & SSL_RECEIVED_SHUTDOWN) return asio::error::eof;
        return asio::ssl::error::stream_truncated;
    }

    // ---- output: one flusher, any number of waiters ----------------------------------------

    static void start_flush(const std::shared_ptr<core>& c) {
        if (c->writing || c->out.empty()) return;
        if (c->write_error) {
            std::vector<unsigned char>().swap(c->out);
            return;
        }
        c->writing = true;
        c->sending.swap(c->out);
        asio::async_write(c->socket, asio::buffer(c->sending),
                          asio::bind_executor(c->executor, flush_done(c)));
    }

    // The flusher's completion. The waiters live in the core, and hold the operations that wait
    // (a handshake's holds the core and its handler, which may hold the stream's owner): if the
    // io_context is destroyed with the write pending, Asio destroys this handler without calling
    // it, and the waiters must go with it, or core -> waiters -> core is a cycle nobody breaks.
    struct flush_done {
        std::shared_ptr<core> c;
        explicit flush_done(std::shared_ptr<core> owner) : c(std::move(owner)) {}
        flush_done(flush_done&&) noexcept = default; // leaves the source without a core
        flush_done& operator=(flush_done&&) noexcept = default;
        flush_done(const flush_done&) = delete;
        flush_done& operator=(const flush_done&) = delete;
        ~flush_done() {
            if (!c) return;
            auto abandoned = std::move(c->flushed); // destroyed here, while `c` still lives
            c->flushed.clear();
        }
        void operator()(std::error_code ec, std::size_t) {
            const std::shared_ptr<core> owner = std::move(c);
            on_flushed(owner, ec);
        }
    };

    static void on_flushed(const std::shared_ptr<core>& c, std::error_code ec) {
        c->writing = false;
        std::vector<unsigned char>().swap(c->sending);
        if (ec && !c->write_error) c->write_error = ec;
        if (!c->write_error && !c->out.empty()) return start_flush(c);
        if (c->write_error) std::vector<unsigned char>().swap(c->out);
        auto waiters = std::move(c->flushed);
        c->flushed.clear();
        for (auto& w : waiters) w(c->write_error);
    }

    // Calls then(ec, waited) once everything made so far has been written (or writing
    // failed): from the flusher's completion (waited is true), or at once, inside this call,
    // when nothing is waiting to leave (waited is the caller's own).
    template <class Then>
    static void flush(const std::shared_ptr<core>& c, bool waited, Then&& then) {
        if (!c->writing && (c->out.empty() || c->write_error)) {
            std::vector<unsigned char>().swap(c->out);
            return then(c->write_error, waited);
        }
        c->flushed.emplace_back(
            [t = std::forward<Then>(then)](std::error_code ec) mutable { t(ec, true); });
        start_flush(c);
    }

    template <class Handler>
    static void wait_readable(const std::shared_ptr<core>& c, Handler&& handler) {
        if (c->in_begin != c->in_end || ::SSL_pending(c->ssl) > 0 || c->read_error)
            return complete(c, std::forward<Handler>(handler), false, std::error_code{});
        c->socket.async_wait(asio::socket_base::wait_read, std::forward<Handler>(handler));
    }

    // ---- completions ---------------------------------------------------------------------

    template <class Handler>
    void start_op(const Handler& handler) {
        core_->executor = asio::get_associated_executor(handler, core_->socket.get_executor());
    }

    // `waited`: we are in a completion on the operation's executor, so the handler may run
    // here; otherwise (still inside the initiating call) it is posted.
    template <class Handler, class... Args>
    static void complete(const std::shared_ptr<core>& c, Handler&& handler, bool waited,
                         Args... args) {
        auto ex = asio::get_associated_executor(handler, c->socket.get_executor());
        auto call = [h = std::forward<Handler>(handler), args...]() mutable { h(args...); };
        if (waited)
            asio::dispatch(ex, std::move(call));
        else
            asio::post(ex, std::move(call));
    }

    template <class ConstBuffers>
    std::size_t encrypt(const ConstBuffers& buffers, std::error_code& ec) {
        // Small gathered pieces (frame headers, short messages) become one record, not one each.
        constexpr std::size_t record = 16 * 1024;
        constexpr std::size_t most = 4 * record; // what one write_some takes at most
        thread_local std::unique_ptr<unsigned char[]> staging;
        const unsigned char* data = nullptr;
        std::size_t size = 0, pieces = 0;
        asio::const_buffer first;
        for (auto it = asio::buffer_sequence_begin(buffers);
             it != asio::buffer_sequence_end(buffers); ++it) {
            const asio::const_buffer b(*it);
            if (b.size() == 0) continue;
            if (pieces++ == 0) first = b;
        }
        if (pieces == 0) return 0;
        if (pieces == 1 || first.size() >= record) {
            data = static_cast<const unsigned char*>(first.data());
            size = std::min(first.size(), most);
        } else {
            if (!staging) staging.reset(new unsigned char[record]);
            for (auto it = asio::buffer_sequence_begin(buffers);
                 it != asio::buffer_sequence_end(buffers) && size < record; ++it) {
                const asio::const_buffer b(*it);
                const std::size_t n = std::min(b.size(), record - size);
                if (n) std::memcpy(staging.get() + size, b.data(), n);
                size += n;
            }
            data = staging.get();
        }
        std::size_t written = 0;
        const status s = perform(
            *core_, [&] { return ::SSL_write_ex(core_->ssl, data, size, &written); }, ec);
        if (s == status::want_input) ec = asio::ssl::error::unexpected_result; // renegotiation
        return s == status::done ? written : 0;
    }

    // ---- operations that wait for input ----------------------------------------------------

    template <class Handler>
    struct read_op {
        std::shared_ptr<core> c;
        asio::mutable_buffer buffer;
        Handler handler;
        bool waited = false;

        void start() {
            c->executor = asio::get_associated_executor(handler, c->socket.get_executor());
            if (c->read_error) {
                auto ec = c->read_error;
                return complete(c, std::move(handler), false, ec, std::size_t{0});
            }
            if (buffer.size() == 0)
                return complete(c, std::move(handler), false, std::error_code{}, std::size_t{0});
            run();
        }

        void run() {
            if (c->output_backlog()) { // see async_wait_readable
                auto self = std::make_shared<read_op>(std::move(*this));
                return flush(self->c, self->waited, [self](std::error_code ec, bool waited_now) {
                    self->waited = waited_now;
                    if (!ec) return self->run_now();
                    auto cc = self->c;
                    complete(cc, std::move(self->handler), waited_now, ec, std::size_t{0});
                });
            }
            run_now();
        }

        void run_now() {
            std::size_t n = 0;
            std::error_code ec;
            const status s = perform(
                *c, [&] { return ::SSL_read_ex(c->ssl, buffer.data(), buffer.size(), &n); }, ec);
            start_flush(c); // KeyUpdate answers, alerts
            if (s != status::want_input) {
                if (s == status::failed) c->drop_input();
                c->settle_input();
                return complete(c, std::move(handler), waited, ec, n);
            }
            c->take_input_buffer();
            auto ex = asio::get_associated_executor(handler, c->socket.get_executor());
            auto self = std::make_shared<read_op>(std::move(*this));
            self->c->socket.async_read_some(
                asio::buffer(self->c->in.get(), self->c->in_capacity),
                asio::bind_executor(
                    ex, [self](std::error_code e, std::size_t got) { self->on_input(e, got); }));
        }

        void on_input(std::error_code ec, std::size_t got) {
            waited = true;
            if (ec) {
                c->settle_input();
                if (ec == asio::error::eof) ec = end_of_input(*c);
                return complete(c, std::move(handler), true, ec, std::size_t{0});
            }
            c->in_begin = 0;
            c->in_end = got;
            run();
        }
    };

    template <class Handler>
    struct handshake_op {
        std::shared_ptr<core> c;
        Handler handler;
        bool waited = false;

        void start() {
            c->executor = asio::get_associated_executor(handler, c->socket.get_executor());
            run();
        }

        void run() {
            std::error_code ec;
            const status s = perform(
                *c, [&] { return ::SSL_do_handshake(c->ssl); }, ec);
            if (s == status::failed) c->drop_input();
            if (s != status::want_input) c->settle_input();
            // Our flight (or the alert that ends the handshake) leaves before anything else.
            auto self = std::make_shared<handshake_op>(std::move(*this));
            const bool waited_now = self->waited;
            flush(self->c, waited_now, [self, s, ec](std::error_code e, bool done_later) {
                if (s != status::want_input || e) {
                    auto cc = self->c;
                    return complete(cc, std::move(self->handler), done_later, ec ? ec : e);
                }
                self->read_more();
            });
        }

        void read_more() {
            c->take_input_buffer();
            auto ex = asio::get_associated_executor(handler, c->socket.get_executor());
            auto self = std::make_shared<handshake_op>(std::move(*this));
            self->c->socket.async_read_some(
                asio::buffer(self->c->in.get(), self->c->in_capacity),
                asio::bind_executor(ex, [self](std::error_code e, std::size_t got) {
                    self->waited = true;
                    if (e) {
                        self->c->settle_input();
                        auto cc = self->c;
                        return complete(cc, std::move(self->handler), true,
                                        e == asio::error::eof ? end_of_input(*cc) : e);
                    }
                    self->c->in_begin = 0;
                    self->c->in_end = got;
                    self->run();
                }));
        }
    };

    void close_socket() noexcept {
        if (!core_) return;
        std::error_code ignored;
        core_->socket.close(ignored);
    }

    std::shared_ptr<core> core_;
};

} // namespace duplex::detail
