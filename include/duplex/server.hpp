// duplex/server.hpp — a WebSocket server over a transport policy (tcp, tls, unix_socket).
// SPDX-License-Identifier: BSL-1.0
//
// It listens on one or more addresses, runs each new socket through the transport handshake
// and the HTTP upgrade under a deadline, asks the application's on_upgrade hook whether to
// accept (authenticate a token, check Origin, pick a subprotocol, fill the connection's user
// data), answers plain HTTP requests through on_http, and then hands the socket to a
// duplex::connection. stop() shuts down gracefully: no new connections, close 1001 to every
// open one, and a deadline after which the rest are cut.
//
//   asio::io_context io;
//   duplex::server<duplex::transport::tcp> server(io);
//   server.handlers().on_message = [](auto& c, const duplex::message_view& m) {
//       c->send(m.type, m.data);
//   };
//   server.listen("127.0.0.1", 9001);
//   io.run(); // or on N threads
//
// The io_context may run on any number of threads: each connection lives on its own strand.
#pragma once

#include "connection.hpp"
#include "detail/transport_traits.hpp"
#include "protocol/handshake.hpp"
#include "protocol/http.hpp"

#include <asio/ip/tcp.hpp>
#include <asio/ip/v6_only.hpp>
#include <asio/read.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>

#include <array>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace duplex {

struct server_options {
    // Upgraded connections plus handshakes in progress (connection_count() +
    // handshake_count()); past it new sockets are closed at once.
    std::size_t max_connections = 10000;
    // A client must complete the transport handshake and send its whole upgrade request
    // within this time; one that connects and says nothing, or dribbles, is dropped.
    std::chrono::milliseconds handshake_timeout{std::chrono::seconds(10)};
    protocol::http_limits http{};
    connection_options connection{};
    // Bytes queued for writing, summed over every connection of the server. Each connection is
    // also bounded by connection.send_buffer_limit; this bounds the sum, so that many peers that
    // stop reading cannot take the process's memory between them. Past it, a send to a
    // connection that already has bytes queued is dropped and that connection is closed as a
    // slow reader (1008); a connection with an empty queue may still queue one message. 0 turns
    // the budget off. docs/guide.md gives the worst case.
    std::size_t send_budget = 256U << 20;
    // When accept() fails for lack of resources (EMFILE, ENFILE, ENOBUFS, ENOMEM) the server
    // stops accepting for a while instead of retrying at once (which would spin at 100% CPU
    // while the condition lasts): first for this long, doubling up to accept_backoff_max.
    std::chrono::milliseconds accept_backoff{std::chrono::milliseconds(10)};
    std::chrono::milliseconds accept_backoff_max{std::chrono::seconds(1)};
    bool tcp_no_delay = true; // small messages must not wait for Nagle's algorithm
    // permessage-deflate (RFC 7692): accepted when enabled and built with duplex::deflate (off
    // by default: a compressor costs up to ~300 KiB per connection with context takeover).
    // What was agreed goes to connection.protocol.deflate: compressed messages received are
    // inflated (bounded by max_message_size), and messages sent of at least
    // connection.protocol.compression.threshold bytes are compressed; a broadcast once for
    // every connection without context takeover (deflate.server_no_context_takeover).
    protocol::deflate_server_options deflate{};
};

// What the application sees of an upgrade request or plain HTTP request.
struct request_info {
    const protocol::http_head& head; // method, target, headers
    const protocol::upgrade_request*
        upgrade; // offered subprotocols, key, origin; null for plain HTTP
    asio::ip::tcp::endpoint remote;

    std::string_view path() const noexcept { return head.path(); }
    std::optional<std::string_view> query_param(std::string_view key) const {
        return head.query_param(key);
    }
    std::optional<std::string_view> header(std::string_view name) const { return head.field(name); }
    std::optional<std::string_view> cookie(std::string_view name) const {
        return head.cookie(name);
    }
    std::string_view origin() const noexcept {
        return upgrade ? upgrade->origin : std::string_view{};
    }
};

// The application's answer to an upgrade request.
struct upgrade_decision {
    bool accepted = true;
    std::string subprotocol; // one of the offered, or "" for none
    header_list headers;     // extra response headers (101 or refusal)
    // false: no permessage-deflate on this connection even when server_options::deflate
    // enables it and the client offers it (a subprotocol whose payloads are compressed
    // already, a client that should not cost a compressor's memory).
    bool deflate = true;
    int status = 403; // when refused
    std::string body; // when refused

    static upgrade_decision accept(std::string subprotocol = {}) {
        upgrade_decision d;
        d.subprotocol = std::move(subprotocol);
        return d;
    }
    static upgrade_decision reject(int status, std::string body = {}, header_list headers = {}) {
        upgrade_decision d;
        d.accepted = false;
        d.status = status;
        d.body = std::move(body);
        d.headers = std::move(headers);
        return d;
    }
};

// An upgrade decision the application makes later, from any thread (see on_upgrade_async):
// after a token was checked against a database, say. A copyable handle; the first decision
// counts and later ones are ignored. The handshake deadline (server_options::handshake_timeout)
// still runs: a decision that comes too late finds the socket closed and is ignored, and one
// that never comes closes it at the deadline.
template <class UserData = no_user_data>
class pending_upgrade {
public:
    using deliver_type = std::function<void(upgrade_decision, UserData)>;

    explicit pending_upgrade(deliver_type deliver)
        : state_(std::make_shared<state>(std::move(deliver))) {}

    void accept(std::string subprotocol = {}, header_list headers = {}, UserData data = {}) {
        upgrade_decision d = upgrade_decision::accept(std::move(subprotocol));
        d.headers = std::move(headers);
        decide(std::move(d), std::move(data));
    }
    void reject(int status, std::string body = {}, header_list headers = {}) {
        decide(upgrade_decision::reject(status, std::move(body), std::move(headers)));
    }
    // `data` becomes the connection's user data when the decision accepts.
    void decide(upgrade_decision decision, UserData data = {}) {
        if (state_->decided.exchange(true)) return;
        state_->deliver(std::move(decision), std::move(data));
    }
    bool decided() const noexcept { return state_->decided.load(); }

private:
    struct state {
        explicit state(deliver_type d) : deliver(std::move(d)) {}
        std::atomic<bool> decided{false};
        deliver_type deliver;
    };
    std::shared_ptr<state> state_;
};

// The answer to a plain HTTP request (a health check, a static page).
struct http_response {
    int status = 200;
    std::string content_type = "text/plain; charset=utf-8";
    std::string body;
    header_list headers;
};

// True when `origin` is one of `allowed` (compared as ASCII case-insensitive serialized origins,
// RFC 6454), or when it is absent and `allow_missing` (non-browser clients send no Origin).
inline bool is_origin_allowed(std::string_view origin, const std::vector<std::string>& allowed,
                              bool allow_missing = true) {
    if (origin.empty()) return allow_missing;
    for (const auto& candidate : allowed)
        if (protocol::detail::iequals(candidate, origin)) return true;
    return false;
}

template <class Transport, class UserData = no_user_data>
class server {
public:
    using connection_type = connection<Transport, UserData>;
    using connection_ptr = std::shared_ptr<connection_type>;
    using context_type = typename Transport::context_type;

    struct handlers_type : connection_handlers<connection_type> {
        // Decides on each upgrade; without it every valid upgrade is accepted.
        std::function<upgrade_decision(const request_info&, UserData&)> on_upgrade;
        // Or decides later: when set, it is called instead of on_upgrade, and the handshake
        // waits (up to handshake_timeout) until the application calls accept, reject or
        // decide on the handle, from any thread. The request_info is valid during the call
        // only: copy what the decision needs. io threads stay free while a database answers.
        std::function<void(const request_info&, pending_upgrade<UserData>)> on_upgrade_async;
        // Answers requests that are not upgrades; without it they get 426 Upgrade Required.
        std::function<http_response(const request_info&)> on_http;
        // accept() failed for lack of resources (EMFILE: out of file descriptors, ...). Called
        // once when accepting pauses, not for every retry; again only after an accept
        // succeeded in between. Accepting resumes by itself (see server_options).
        std::function<void(std::error_code)> on_accept_error;
    };

    explicit server(asio::io_context& io, server_options options = {}, context_type context = {})
        : state_(std::make_shared<state>(io, std::move(options), std::move(context))) {}

    server(const server&) = delete;
    server& operator=(const server&) = delete;

    // Stops (at once: no grace period) if the application did not.
    ~server() { state_->stop(std::chrono::milliseconds(0)); }

    // Set before listen(); read on every new connection.
    handlers_type& handlers() noexcept { return state_->handlers; }
    const server_options& options() const noexcept { return state_->options; }

    // Listens on every address `host` resolves to ("127.0.0.1", "::1", "0.0.0.0", "::",
    // "localhost"). Port 0 picks a free port: see port().
    std::error_code listen(const std::string& host, std::uint16_t port) {
        return state_->listen(host, port);
    }

    // Listens on a Unix-domain socket file at `path`, for transport::unix_socket (see
    // unix_socket.hpp: permissions, stale files, removal at stop()).
    template <class T = Transport>
    std::error_code listen(const std::string& path, typename T::listen_options options = {}) {
        return state_->listen_path(path, options);
    }

    // The port of the first listening socket (useful after listen(host, 0)).
    std::uint16_t port() const { return state_->port(); }

    // Upgraded WebSocket connections that have not ended yet (on_open ran, on_close not yet).
    // Sockets still in their transport handshake or HTTP upgrade, and plain HTTP requests being
    // answered, are not counted here but in handshake_count().
    std::size_t connection_count() const noexcept { return state_->upgraded.load(); }

    // Accepted sockets not yet upgraded: in the TLS handshake, sending their HTTP request,
    // waiting for on_upgrade's decision, or being answered with plain HTTP or a refusal.
    std::size_t handshake_count() const noexcept { return state_->handshaking.load(); }

    // How many accepts failed for lack of resources (EMFILE, ...); each pauses accepting.
    std::size_t accept_errors() const noexcept {
        return state_->accept_errors.load(std::memory_order_relaxed);
    }

    // Bytes queued for writing over all connections, counted against options().send_budget
    // (0 when the budget is off).
    std::size_t queued_bytes() const noexcept {
        return state_->budget ? state_->budget->used.load(std::memory_order_relaxed) : 0;
    }

    // Graceful shutdown: stop accepting, send close 1001 to every connection, wait for them up
    // to `grace`, then cut the rest. Idempotent, safe from any thread and from handlers; the
    // io_context runs out of work once everything is closed.
    void stop(std::chrono::milliseconds grace = std::chrono::seconds(5)) { state_->stop(grace); }

    // Calls `fn` on every open connection (from the calling thread; connections are thread-safe).
    template <class Fn>
    void for_each_connection(Fn&& fn) const {
        for (auto& c : state_->snapshot()) fn(c);
    }

    // Sends one message, encoded once, to every open connection; returns how many queued it.
    std::size_t broadcast(const shared_message& message) const {
        std::size_t queued = 0;
        for (auto& c : state_->snapshot()) {
            const auto status = c->send(message);
            if (status == send_status::ok || status == send_status::backpressure) ++queued;
        }
        return queued;
    }

private:
    struct state;

    // One socket between accept and the 101 (or its refusal).
    struct handshake : std::enable_shared_from_this<handshake> {
        handshake(std::shared_ptr<state> s, typename Transport::stream_type st)
            : owner(std::move(s)), stream(std::move(st)),
              strand(asio::make_strand(stream.get_executor())), timer(strand), hs([&] {
                  protocol::server_handshake::options o;
                  o.limits = owner->options.http;
                  o.deflate = owner->options.deflate;
                  return o;
              }()),
              remote(Transport::remote_endpoint(stream)) {}

        std::shared_ptr<state> owner;
        typename Transport::stream_type stream;
        asio::strand<asio::any_io_executor> strand;
        asio::steady_timer timer;
        protocol::server_handshake hs;
        asio::ip::tcp::endpoint remote;
        std::array<char, 4096> chunk{};
        std::string leftover;
        std::string response;
        UserData data{};
        bool answering = false; // the request is complete: deciding, then writing the answer
        bool deciding = false;  // waiting for on_upgrade_async's decision
        bool done = false;

        void start() {
            owner->track(this->shared_from_this());
            timer.expires_after(owner->options.handshake_timeout);
            timer.async_wait(
                asio::bind_executor(strand, [self = this->shared_from_this()](std::error_code ec) {
                    if (!ec && !self->done) self->give_up();
                }));
            Transport::async_handshake(
                stream, protocol::role::server, std::string(),
                asio::bind_executor(strand, [self = this->shared_from_this()](std::error_code ec) {
                    if (ec || self->done) return self->give_up();
                    self->read();
                }));
        }

        void read() {
            stream.async_read_some(
                asio::buffer(chunk),
                asio::bind_executor(
                    strand, [self = this->shared_from_this()](std::error_code ec, std::size_t n) {
                        if (ec || self->done) return self->give_up();
                        self->on_bytes(n);
                    }));
        }

        void on_bytes(std::size_t n) {
            const auto r = hs.feed(std::string_view(chunk.data(), n));
            using protocol::progress;
            if (r.status == progress::need_more) return read();
            answering = true;
            leftover.assign(chunk.data() + r.consumed, n - r.consumed);
            request_info info{hs.request(), nullptr, remote};
            if (r.status == progress::done) {
                info.upgrade = &hs.upgrade();
                if (owner->handlers.on_upgrade_async) {
                    // Not answering yet: stop() may drop this handshake while it waits.
                    answering = false;
                    deciding = true;
                    std::weak_ptr<handshake> weak = this->shared_from_this();
                    pending_upgrade<UserData> pending(
                        [weak](upgrade_decision decision, UserData user_data) {
                            // Gone (deadline passed, server stopped): the decision is moot.
                            if (auto self = weak.lock())
                                asio::post(self->strand, [self, d = std::move(decision),
                                                          u = std::move(user_data)]() mutable {
                                    self->decided(std::move(d), std::move(u));
                                });
                        });
                    owner->handlers.on_upgrade_async(info, pending);
                    return;
                }
                upgrade_decision decision;
                if (owner->handlers.on_upgrade) decision = owner->handlers.on_upgrade(info, data);
                if (!decision.accepted)
                    return respond(hs.reject({decision.status, decision.body, decision.headers}));
                protocol::accept_options accept;
                accept.subprotocol = decision.subprotocol;
                accept.extra_headers = decision.headers;
                accept.deflate = decision.deflate;
                return upgrade(hs.accept(accept));
            }
            if (hs.has_request() && !hs.is_upgrade()) {
                if (owner->handlers.on_http) {
                    http_response answer = owner->handlers.on_http(info);
                    answer.headers.emplace_back("Content-Type", answer.content_type);
                    return respond(hs.reject({answer.status, answer.body, answer.headers}));
                }
                // RFC 7231 6.5.15: a 426 names the protocol to upgrade to.
                return respond(hs.reject(
                    {426, "This endpoint speaks WebSocket.\n", {{"Upgrade", "websocket"}}}));
            }
            respond(hs.refusal());
        }

        // The application's deferred decision, on the handshake's strand.
        void decided(upgrade_decision decision, UserData user_data) {
            if (done || !deciding) return;
            deciding = false;
            answering = true;
            if (!decision.accepted)
                return respond(hs.reject({decision.status, decision.body, decision.headers}));
            data = std::move(user_data);
            protocol::accept_options accept;
            accept.subprotocol = decision.subprotocol;
            accept.extra_headers = decision.headers;
            accept.deflate = decision.deflate;
            upgrade(hs.accept(accept));
        }

        // Writes `bytes` (an HTTP answer or the 101), then continues with `next(self)`.
        template <class Next>
        void write_response(std::string bytes, Next next) {
            response = std::move(bytes);
            asio::async_write(stream, asio::buffer(response),
                              asio::bind_executor(strand, [self = this->shared_from_this(),
                                                           next](std::error_code ec, std::size_t) {
                                  // give_up() may have run while the write was pending.
                                  if (ec || self->done) return self->give_up();
                                  next(self);
                              }));
        }

        // An HTTP answer instead of an upgrade: write it, end the transport and wait (bounded
        // by the handshake deadline) for the peer to close, so the answer is not lost to a
        // reset.
        void respond(std::string bytes) {
            write_response(std::move(bytes), [](const std::shared_ptr<handshake>& self) {
                Transport::async_shutdown(
                    self->stream,
                    asio::bind_executor(self->strand, [self](std::error_code) { self->linger(); }));
            });
        }

        void linger() {
            stream.async_read_some(
                asio::buffer(chunk),
                asio::bind_executor(
                    strand, [self = this->shared_from_this()](std::error_code ec, std::size_t) {
                        if (ec) return self->give_up();
                        self->linger();
                    }));
        }

        void upgrade(std::string bytes) {
            write_response(std::move(bytes),
                           [](const std::shared_ptr<handshake>& self) { self->open(); });
        }

        void open() {
            done = true;
            timer.cancel();
            --owner->handshaking;
            std::shared_ptr<connection_type> c;
            if (hs.deflate()) {
                connection_options agreed = owner->options.connection;
                agreed.protocol.deflate = hs.deflate();
                c = std::make_shared<connection_type>(std::move(stream), protocol::role::server,
                                                      std::move(agreed), leftover);
            } else {
                c = std::make_shared<connection_type>(std::move(stream), protocol::role::server,
                                                      owner->options.connection, leftover);
            }
            c->data() = std::move(data);
            c->set_subprotocol(std::string(hs.subprotocol()));
            owner->untrack(this);
            owner->adopt(c);
        }

        // The server is stopping. A handshake that is already answering a complete request
        // goes on (stop() may even be called from on_upgrade): after a 101 the client sees an
        // open WebSocket, so it becomes a connection that adopt() closes with 1001 rather than
        // a transport cut without a close frame (1006). The handshake deadline bounds it.
        void stop() {
            if (!answering) give_up();
        }

        void give_up() {
            if (done) return;
            done = true;
            timer.cancel();
            Transport::close(stream);
            owner->untrack(this);
            --owner->handshaking;
            owner->release();
        }
    };

    struct state : std::enable_shared_from_this<state> {
        state(asio::io_context& io_, server_options o, context_type c)
            : io(io_), options(std::move(o)), context(std::move(c)), strand(asio::make_strand(io_)),
              stop_timer(strand) {
            if (options.send_budget != 0)
                budget = std::make_shared<detail::send_budget>(options.send_budget);
        }

        asio::io_context& io;
        server_options options;
        context_type context;
        handlers_type handlers;
        asio::strand<asio::io_context::executor_type> strand; // acceptors and stop()
        using socket_type = typename detail::transport_protocol_t<Transport>::socket;
        // One listening socket, and the timer that resumes accepting after a lack of resources.
        struct listener {
            explicit listener(const asio::strand<asio::io_context::executor_type>& s)
                : acceptor(s), retry(s) {}
            typename detail::transport_protocol_t<Transport>::acceptor acceptor;
            asio::steady_timer retry;
            std::chrono::milliseconds backoff{0}; // the current pause; 0 while accepting works
            std::shared_ptr<void> socket_file;    // a Unix socket's file, removed when released
        };
        std::vector<std::unique_ptr<listener>> acceptors;
        bool accept_error_reported = false;
        std::atomic<std::size_t> accept_errors{0};   // accepts failed for lack of resources
        std::shared_ptr<detail::send_budget> budget; // null when options.send_budget is 0
        asio::steady_timer stop_timer;
        // Places taken against max_connections: upgraded connections and handshakes. A socket
        // keeps its place from accept to on_close; upgraded + handshaking <= active (each
        // count goes up after active and down before it).
        std::atomic<std::size_t> active{0};
        std::atomic<std::size_t> upgraded{0};
        std::atomic<std::size_t> handshaking{0};
        std::mutex mutex;
        std::unordered_map<connection_type*, connection_ptr> connections;
        std::shared_ptr<const connection_handlers<connection_type>> connection_handlers_copy;
        std::unordered_map<handshake*, std::weak_ptr<handshake>> handshakes;
        std::atomic<bool> stopping{false};

        void track(const std::shared_ptr<handshake>& h) {
            std::lock_guard<std::mutex> lock(mutex);
            handshakes.emplace(h.get(), h);
        }
        void untrack(handshake* h) {
            std::lock_guard<std::mutex> lock(mutex);
            handshakes.erase(h);
        }
        // Handshakes still in progress when the server stops are dropped: they have no
        // WebSocket to close politely yet.
        void drop_handshakes() {
            std::vector<std::shared_ptr<handshake>> pending;
            {
                std::lock_guard<std::mutex> lock(mutex);
                for (auto& entry : handshakes)
                    if (auto h = entry.second.lock()) pending.push_back(std::move(h));
            }
            for (auto& h : pending) asio::dispatch(h->strand, [h] { h->stop(); });
        }

        std::error_code listen(const std::string& host, std::uint16_t port) {
            // Caught here, not on an io thread at the first accept.
            if (!detail::is_usable_context(context)) return error::no_transport_context;
            asio::ip::tcp::resolver resolver(io);
            std::error_code ec;
            const auto results =
                resolver.resolve(host, std::to_string(port), asio::ip::tcp::resolver::passive, ec);
            if (ec) return ec;
            std::uint16_t chosen = port;
            for (const auto& entry : results) {
                auto endpoint = entry.endpoint();
                if (chosen != 0) endpoint.port(chosen);
                auto entry_listener = std::make_unique<listener>(strand);
                auto& acceptor = entry_listener->acceptor;
                acceptor.open(endpoint.protocol(), ec);
                if (ec) return ec;
                acceptor.set_option(asio::socket_base::reuse_address(true), ec);
                if (endpoint.address().is_v6()) acceptor.set_option(asio::ip::v6_only(true), ec);
                acceptor.bind(endpoint, ec);
                if (ec) return ec;
                acceptor.listen(asio::socket_base::max_listen_connections, ec);
                if (ec) return ec;
                // With port 0 and several addresses ("localhost"), listen on one port for all.
                chosen = acceptor.local_endpoint(ec).port();
                acceptors.push_back(std::move(entry_listener));
                accept(*acceptors.back());
            }
            if (acceptors.empty()) return asio::error::host_not_found;
            return {};
        }

        template <class Options>
        std::error_code listen_path(const std::string& path, const Options& o) {
            if (!detail::is_usable_context(context)) return error::no_transport_context;
            auto entry_listener = std::make_unique<listener>(strand);
            if (auto ec = Transport::listen(entry_listener->acceptor, path, o,
                                            entry_listener->socket_file))
                return ec;
            acceptors.push_back(std::move(entry_listener));
            accept(*acceptors.back());
            return {};
        }

        std::uint16_t port() const {
            std::error_code ec;
            return acceptors.empty() ? 0 : acceptors.front()->acceptor.local_endpoint(ec).port();
        }

        // Runs on `strand`, as do every acceptor's completions and stop(): `l` lives in
        // `acceptors` until the state is destroyed, which no pending handler allows before it
        // has run (each holds the state).
        void accept(listener& l) {
            // The socket gets the plain io executor: the handshake and then the connection put
            // it on a strand of their own (a strand here would wrap every operation twice).
            l.acceptor.async_accept(
                io.get_executor(),
                asio::bind_executor(strand, [self = this->shared_from_this(),
                                             &l](std::error_code ec, socket_type socket) {
                    if (self->stopping || !l.acceptor.is_open()) return;
                    if (!ec) {
                        l.backoff = std::chrono::milliseconds(0);
                        self->accept_error_reported = false;
                        self->on_accept(std::move(socket));
                    } else if (is_out_of_resources(ec)) {
                        return self->pause_accepting(l, ec);
                    }
                    if (ec != asio::error::operation_aborted) self->accept(l);
                }));
        }

        // Asio reports errno values in its own system category, which std::errc does not
        // compare equal to: compare the numbers.
        static bool is_out_of_resources(const std::error_code& ec) noexcept {
            if (ec.category() != asio::error::get_system_category()) return false;
            const int e = ec.value();
            return e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM;
        }

        // Retrying at once would fail at once for as long as the condition lasts: wait (the
        // pending connections stay in the kernel's backlog), tell the application once.
        void pause_accepting(listener& l, std::error_code ec) {
            accept_errors.fetch_add(1, std::memory_order_relaxed);
            if (!accept_error_reported) {
                accept_error_reported = true;
                if (handlers.on_accept_error) handlers.on_accept_error(ec);
            }
            l.backoff = l.backoff.count() == 0
                            ? options.accept_backoff
                            : std::min(2 * l.backoff, options.accept_backoff_max);
            l.retry.expires_after(l.backoff);
            l.retry.async_wait(asio::bind_executor(
                strand, [self = this->shared_from_this(), &l](std::error_code wait_ec) {
                    if (wait_ec || self->stopping || !l.acceptor.is_open()) return;
                    self->accept(l);
                }));
        }

        void on_accept(socket_type socket) {
            std::error_code ec;
            if (active.load() >= options.max_connections) {
                socket.close(ec); // cheaper than an HTTP 503 under a connection flood
                return;
            }
            if constexpr (detail::is_tcp_transport<Transport>)
                if (options.tcp_no_delay) socket.set_option(asio::ip::tcp::no_delay(true), ec);
            ++active;
            ++handshaking;
            auto stream = Transport::make_stream(std::move(socket), context);
            std::make_shared<handshake>(this->shared_from_this(), std::move(stream))->start();
        }

        void release() {
            if (--active == 0 && stopping)
                asio::post(strand,
                           [self = this->shared_from_this()] { self->stop_timer.cancel(); });
        }

        void adopt(const connection_ptr& c) {
            std::shared_ptr<const connection_handlers<connection_type>> shared;
            {
                std::lock_guard<std::mutex> lock(mutex);
                connections.emplace(c.get(), c);
                ++upgraded;
                if (budget) c->set_send_budget(budget);
                if (!connection_handlers_copy)
                    connection_handlers_copy = make_connection_handlers();
                shared = connection_handlers_copy;
            }
            c->start_shared(std::move(shared));
            // A stop() that ran while this connection was still in its handshake missed it.
            if (stopping) c->close(protocol::close_code::going_away, "server shutting down");
        }

        // One set of handlers for every connection (not a copy each): the application's, with
        // on_close also releasing the connection's place in this server.
        std::shared_ptr<const connection_handlers<connection_type>> make_connection_handlers() {
            // The server state owns its connections: it is told weakly.
            auto h =
                detail::notify_on_close(static_cast<connection_handlers<connection_type>>(handlers),
                                        std::weak_ptr<state>(this->shared_from_this()),
                                        [](const std::shared_ptr<state>& self,
                                           const connection_ptr& conn, const close_info&) {
                                            {
                                                std::lock_guard<std::mutex> lock(self->mutex);
                                                self->connections.erase(conn.get());
                                            }
                                            --self->upgraded;
                                            self->release();
                                        });
            return std::make_shared<const connection_handlers<connection_type>>(std::move(h));
        }

        std::vector<connection_ptr> snapshot() {
            std::lock_guard<std::mutex> lock(mutex);
            std::vector<connection_ptr> out;
            out.reserve(connections.size());
            for (auto& entry : connections) out.push_back(entry.second);
            return out;
        }

        void stop(std::chrono::milliseconds grace) {
            if (stopping.exchange(true)) return;
            asio::dispatch(strand, [self = this->shared_from_this(), grace] {
                std::error_code ec;
                for (auto& l : self->acceptors) {
                    l->acceptor.close(ec);
                    l->retry.cancel();
                    l->socket_file.reset();
                }
                self->drop_handshakes();
                for (auto& c : self->snapshot())
                    c->close(protocol::close_code::going_away, "server shutting down");
                if (self->active.load() == 0) return;
                self->stop_timer.expires_after(grace);
                self->stop_timer.async_wait([self](std::error_code) {
                    // The grace period is over (or everything closed): cut what remains.
                    for (auto& c : self->snapshot()) c->terminate();
                });
            });
        }
    };

    std::shared_ptr<state> state_;
};

} // namespace duplex
