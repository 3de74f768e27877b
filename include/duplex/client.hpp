// duplex/client.hpp — opening WebSocket connections: once, or kept open with reconnects.
// SPDX-License-Identifier: BSL-1.0
//
// async_connect resolves a ws:// or wss:// URL, connects (IPv4 or IPv6), runs the transport
// handshake (TLS with SNI and certificate + host name verification), sends the upgrade request
// with the application's subprotocols and headers, validates the 101, and completes with a
// duplex::connection — all under one deadline. reconnecting_client keeps a connection open
// across failures with exponential backoff and full jitter, and calls on_open after every
// (re)connect so that the application can rejoin rooms or resync state.
#pragma once

#include "connection.hpp"
#include "detail/transport_traits.hpp"
#include "protocol/handshake.hpp"
#include "protocol/random.hpp"
#include "protocol/url.hpp"

#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <array>
#include <charconv>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace duplex {

struct client_options {
    std::vector<std::string> subprotocols; // offered, in order of preference
    std::string origin;                    // sent as Origin when not empty
    // Extra request headers: Authorization, Cookie, ... (the WebSocket ones are refused).
    std::vector<std::pair<std::string, std::string>> headers;
    // Resolve, connect, TLS and the upgrade must all finish within this time.
    std::chrono::milliseconds connect_timeout{std::chrono::seconds(10)};
    protocol::http_limits http{};
    connection_options connection{};
    bool tcp_no_delay = true;
    // wss://: resume a TLS session kept from an earlier connection to the same host name and
    // port with the same TLS context (an abbreviated handshake, without the certificate
    // exchange), and keep the new connection's. Sessions never cross host names; certificate and
    // host name checks stay on. Off: every connection runs a full handshake.
    bool tls_resumption = true;
    // permessage-deflate (RFC 7692): offered by default where the build can compress (linked
    // with duplex::deflate), as browsers, Node ws and Python websockets offer it; a plain build
    // offers nothing. What the server agrees to goes to connection.protocol.deflate: compressed
    // messages received are inflated (bounded by max_message_size), and messages sent of at
    // least connection.protocol.compression.threshold bytes are compressed.
    protocol::deflate_client_options deflate = protocol::default_deflate_offer();
};

// What a server answered instead of 101 Switching Protocols: an upgrade it refused (401 for a
// bad token, 403, 429, 503 ...). async_connect fills one when the application passes it, and
// completes with error::bad_status; reconnecting_client keeps the last one (last_refusal()).
struct upgrade_response {
    // At most this many bytes of the body are kept; the rest is not read.
    static constexpr std::size_t max_body = 64U * 1024U;

    int status = 0; // 0: no HTTP answer arrived (the attempt failed before, or it was a 101)
    std::string reason;
    header_list headers; // every field, in the order received
    std::string body;    // up to max_body bytes: Content-Length's worth, or until the server closed

    // The value of the first field named `name` (ASCII case-insensitive).
    std::optional<std::string_view> header(std::string_view name) const {
        for (const auto& field : headers)
            if (protocol::detail::iequals(field.first, name)) return field.second;
        return std::nullopt;
    }
    // A refusal the request itself caused (4xx other than 408 Request Timeout and 429 Too Many
    // Requests): asking again the same way gets the same answer.
    bool is_client_error() const noexcept {
        return status >= 400 && status < 500 && status != 408 && status != 429;
    }
};

namespace detail {

// Whether a transport offers a default client context (tls: the verifying client_context()).
template <class T, class = void>
struct has_client_context : std::false_type {};
template <class T>
struct has_client_context<
    T, std::void_t<decltype(T::client_context(std::declval<std::error_code&>()))>>
    : std::true_type {};

// What a client uses when the application gives no context: for TLS, one verifying context
// (system CA store, host name checked) made once per process and shared.
template <class Transport>
typename Transport::context_type default_client_context(std::error_code& ec) {
    ec = {};
    if constexpr (has_client_context<Transport>::value) {
        static const auto made = [] {
            std::error_code e;
            auto context = Transport::client_context(e);
            return std::make_pair(std::move(context), e);
        }();
        ec = made.second;
        return made.first;
    } else {
        return {};
    }
}

// One connection attempt: a chain of asynchronous steps under one deadline.
template <class Transport, class UserData>
struct connect_op : std::enable_shared_from_this<connect_op<Transport, UserData>> {
    using connection_type = connection<Transport, UserData>;
    using result_handler = unique_function<void(std::error_code, std::shared_ptr<connection_type>)>;

    connect_op(asio::any_io_executor ex, protocol::websocket_url u, client_options o,
               typename Transport::context_type c, result_handler h,
               upgrade_response* refusal_out = nullptr)
        : strand(asio::make_strand(ex)), resolver(strand), socket(ex), timer(strand),
          url(std::move(u)), options(std::move(o)), context(std::move(c)), handler(std::move(h)),
          refusal(refusal_out) {}

    asio::strand<asio::any_io_executor> strand;
    asio::ip::tcp::resolver resolver;
    typename transport_protocol_t<Transport>::socket socket;
    std::optional<typename Transport::stream_type> stream;
    asio::steady_timer timer;
    protocol::websocket_url url;
    client_options options;
    // A copy (for TLS a shared handle): the operation outlives the caller's frame.
    typename Transport::context_type context;
    result_handler handler;
    // Filled when the server refuses the upgrade; the caller keeps it alive until completion.
    upgrade_response* refusal;
    std::size_t body_wanted = 0; // of a refusal: bytes still to read into refusal->body
    std::optional<protocol::client_handshake> hs;
    std::array<char, 4096> chunk{};
    bool done = false;

    void start() {
        if (refusal) *refusal = upgrade_response{};
        typename transport_protocol_t<Transport>::endpoint endpoint; // ws+unix: the socket file
        if constexpr (!is_tcp_transport<Transport>) {
            // Nothing to resolve; a path that does not fit fails before anything starts.
            if (auto ec = Transport::make_endpoint(url.socket_path, endpoint)) return complete(ec);
        }
        timer.expires_after(options.connect_timeout);
        timer.async_wait(
            asio::bind_executor(strand, [self = this->shared_from_this()](std::error_code ec) {
                if (!ec) self->complete(make_error_code(error::timed_out));
            }));
        if constexpr (!is_tcp_transport<Transport>) {
            socket.async_connect(
                endpoint,
                asio::bind_executor(strand, [self = this->shared_from_this()](std::error_code ec) {
                    if (ec) return self->complete(ec);
                    self->secure();
                }));
        } else {
            resolver.async_resolve(
                url.host, std::to_string(url.port),
                asio::bind_executor(
                    strand, [self = this->shared_from_this()](
                                std::error_code ec, asio::ip::tcp::resolver::results_type results) {
                        if (ec) return self->complete(ec);
                        self->connect(results);
                    }));
        }
    }

    void connect(const asio::ip::tcp::resolver::results_type& results) {
        asio::async_connect(
            socket, results,
            asio::bind_executor(strand, [self = this->shared_from_this()](
                                            std::error_code ec, const asio::ip::tcp::endpoint&) {
                if (ec) return self->complete(ec);
                self->secure();
            }));
    }

    void secure() {
        if (done) return;
        std::error_code ignored;
        if constexpr (is_tcp_transport<Transport>)
            if (options.tcp_no_delay) socket.set_option(asio::ip::tcp::no_delay(true), ignored);
        stream.emplace(Transport::make_stream(std::move(socket), context));
        if constexpr (resumes_sessions<Transport>::value)
            if (!options.tls_resumption) Transport::set_resumption(*stream, false);
        Transport::async_handshake(
            *stream, protocol::role::client, url.host,
            asio::bind_executor(strand, [self = this->shared_from_this()](std::error_code ec) {
                if (ec) return self->complete(ec);
                self->upgrade();
            }));
    }

    void upgrade() {
        if (done) return;
        protocol::client_options request;
        request.host = url.host_header();
        request.target = url.target;
        request.origin = options.origin;
        request.subprotocols = options.subprotocols;
        request.extra_headers = options.headers;
        request.limits = options.http;
        request.deflate = options.deflate;
        std::array<std::uint8_t, 16> nonce;
        protocol::random_source().fill(nonce.data(), nonce.size());
        hs.emplace(std::move(request), nonce);
        if (hs->status() == protocol::progress::failed) return complete(hs->error());
        asio::async_write(*stream, asio::buffer(hs->request()),
                          asio::bind_executor(strand, [self = this->shared_from_this()](
                                                          std::error_code ec, std::size_t) {
                              if (ec) return self->complete(ec);
                              self->read();
                          }));
    }

    void read() {
        stream->async_read_some(asio::buffer(chunk),
                                asio::bind_executor(strand, [self = this->shared_from_this()](
                                                                std::error_code ec, std::size_t n) {
                                    if (ec) return self->complete(ec);
                                    self->on_bytes(n);
                                }));
    }

    void on_bytes(std::size_t n) {
        if (done) return;
        const auto r = hs->feed(std::string_view(chunk.data(), n));
        if (r.status == protocol::progress::need_more) return read();
        if (r.status == protocol::progress::failed) {
            if (r.error == error::bad_status && refusal)
                return refused(std::string_view(chunk.data() + r.consumed, n - r.consumed));
            return complete(r.error);
        }
        done = true;
        timer.cancel();
        connection_options agreed = options.connection;
        agreed.protocol.deflate = hs->deflate();
        auto c = std::make_shared<connection_type>(
            std::move(*stream), protocol::role::client, std::move(agreed),
            std::string_view(chunk.data() + r.consumed, n - r.consumed));
        c->set_subprotocol(std::string(hs->subprotocol()));
        auto h = std::move(handler);
        h(std::error_code{}, std::move(c));
    }

    // The server answered, but not 101: keep its answer for the application, with as much of
    // the body as Content-Length announces (or until the server ends the transport), bounded by
    // upgrade_response::max_body and the connect deadline.
    void refused(std::string_view body_start) {
        const auto& head = hs->response();
        refusal->status = head.status();
        refusal->reason = std::string(head.reason());
        for (const auto& field : head.fields())
            refusal->headers.emplace_back(std::string(field.name), std::string(field.value));
        body_wanted = upgrade_response::max_body;
        if (const auto length = head.field("Content-Length")) {
            std::size_t value = 0;
            const auto end = length->data() + length->size();
            if (std::from_chars(length->data(), end, value).ptr == end)
                body_wanted = std::min(value, body_wanted);
        }
        take_body(body_start);
    }

    void take_body(std::string_view bytes) {
        const std::size_t take = std::min(bytes.size(), body_wanted);
        refusal->body.append(bytes.data(), take);
        body_wanted -= take;
        if (body_wanted == 0) return complete(make_error_code(error::bad_status));
        stream->async_read_some(asio::buffer(chunk),
                                asio::bind_executor(strand, [self = this->shared_from_this()](
                                                                std::error_code ec, std::size_t n) {
                                    // The server ending the transport ends the body.
                                    if (ec)
                                        return self->complete(make_error_code(error::bad_status));
                                    self->take_body(std::string_view(self->chunk.data(), n));
                                }));
    }

    void complete(std::error_code ec) {
        if (done) return;
        done = true;
        std::error_code ignored;
        timer.cancel();
        resolver.cancel();
        socket.close(ignored);
        if (stream) Transport::close(*stream);
        auto h = std::move(handler);
        h(ec, nullptr);
    }
};

} // namespace detail

namespace detail {
template <class Transport, class UserData, class CompletionToken>
auto async_connect_impl(asio::any_io_executor executor, std::string url, client_options options,
                        typename Transport::context_type context, upgrade_response* refusal,
                        CompletionToken&& token) {
    using connection_ptr = std::shared_ptr<connection<Transport, UserData>>;
    return asio::async_initiate<CompletionToken, void(std::error_code, connection_ptr)>(
        [executor, refusal](auto handler, std::string u, client_options o,
                            typename Transport::context_type transport_context) {
            auto strand = asio::make_strand(executor);
            auto done = detail::post_completion_to<std::error_code, connection_ptr>(
                std::move(handler), strand);
            protocol::websocket_url parsed;
            std::error_code ec = protocol::parse_websocket_url(u, parsed);
            if (!ec && parsed.secure != Transport::is_secure) ec = error::bad_url;
            // ws+unix: URLs for transport::unix_socket, and only those.
            if (!ec && parsed.socket_path.empty() != detail::is_tcp_transport<Transport>)
                ec = error::bad_url;
            if (!ec && !detail::is_usable_context(transport_context))
                ec = error::no_transport_context;
            if (refusal) *refusal = upgrade_response{};
            if (ec) return done(ec, nullptr);
            std::make_shared<detail::connect_op<Transport, UserData>>(
                executor, std::move(parsed), std::move(o), std::move(transport_context),
                std::move(done), refusal)
                ->start();
        },
        token, std::move(url), std::move(options), std::move(context));
}
} // namespace detail

// Connects to `url`: handler(std::error_code, std::shared_ptr<connection<Transport, UserData>>).
// The connection is not reading yet: call start(handlers) on it, or async_read.
// `context` is copied (a tls::context_type is a shared handle, so a temporary is fine); an
// empty one fails the operation with error::no_transport_context.
template <class Transport, class UserData = no_user_data, class CompletionToken>
auto async_connect(asio::any_io_executor executor, std::string url, client_options options,
                   typename Transport::context_type context, CompletionToken&& token) {
    return detail::async_connect_impl<Transport, UserData>(
        std::move(executor), std::move(url), std::move(options), std::move(context), nullptr,
        std::forward<CompletionToken>(token));
}

// The same, and when the server refuses the upgrade (the operation completes with
// error::bad_status) `refusal` receives its status, headers and body. `refusal` must stay
// valid until the operation completes; it is reset when the operation starts.
template <class Transport, class UserData = no_user_data, class CompletionToken>
auto async_connect(asio::any_io_executor executor, std::string url, client_options options,
                   typename Transport::context_type context, upgrade_response& refusal,
                   CompletionToken&& token) {
    return detail::async_connect_impl<Transport, UserData>(
        std::move(executor), std::move(url), std::move(options), std::move(context), &refusal,
        std::forward<CompletionToken>(token));
}

// Without a context: ws:// needs none; wss:// uses one verifying context shared by the process
// (the system's CA store, the host name checked). Bring your own for private CAs.
template <class Transport, class UserData = no_user_data, class CompletionToken>
auto async_connect(asio::any_io_executor executor, std::string url, client_options options,
                   CompletionToken&& token) {
    std::error_code ec;
    auto context = detail::default_client_context<Transport>(ec);
    // A failure to load the system's CA store surfaces as an empty context: the operation
    // then completes with error::no_transport_context, through the token like any other.
    (void)ec;
    return async_connect<Transport, UserData>(std::move(executor), std::move(url),
                                              std::move(options), std::move(context),
                                              std::forward<CompletionToken>(token));
}

// Without a context, with the refusal's details (see above).
template <class Transport, class UserData = no_user_data, class CompletionToken>
auto async_connect(asio::any_io_executor executor, std::string url, client_options options,
                   upgrade_response& refusal, CompletionToken&& token) {
    std::error_code ec;
    auto context = detail::default_client_context<Transport>(ec);
    (void)ec; // as above: an empty context fails the operation through the token
    return async_connect<Transport, UserData>(std::move(executor), std::move(url),
                                              std::move(options), std::move(context), refusal,
                                              std::forward<CompletionToken>(token));
}

struct reconnect_options {
    std::chrono::milliseconds initial_delay{std::chrono::milliseconds(250)};
    std::chrono::milliseconds max_delay{std::chrono::seconds(30)};
    // Give up after this many consecutive failed attempts (a connection that opened and then
    // dropped counts as one); 0 = never give up.
    std::size_t max_attempts = 0;
    // A refused upgrade with a 4xx status other than 408 and 429 (a wrong token, a missing
    // permission) is answered the same way every time: by default the client gives up at once.
    bool retry_client_errors = false;
};

// Keeps one connection to `url` open. After a failure or a close it waits a random time in
// [0, min(max_delay, initial_delay * 2^(failures-1))] ("full jitter", so that many clients
// dropped at once do not return at once) and connects again. handlers.on_open runs after
// every successful (re)connect; on_retry before each wait; on_give_up after max_attempts
// consecutive failures, or at once when the server refused the upgrade with a client error
// (see reconnect_options::retry_client_errors); last_refusal() then says what it answered.
template <class Transport, class UserData = no_user_data>
class reconnecting_client
    : public std::enable_shared_from_this<reconnecting_client<Transport, UserData>> {
public:
    using connection_type = connection<Transport, UserData>;
    using connection_ptr = std::shared_ptr<connection_type>;

    struct handlers_type : connection_handlers<connection_type> {
        // No more attempts: max_attempts consecutive failures, or a refusal not to retry.
        std::function<void(std::error_code last_error)> on_give_up;
        // Attempt number `attempt` (1 for the first of a series of consecutive failures)
        // failed with `error`; the next starts after `delay`. error::bad_status: the upgrade
        // was refused, and last_refusal() has the server's answer.
        std::function<void(std::size_t attempt, std::chrono::milliseconds delay,
                           std::error_code error)>
            on_retry;
    };

    static std::shared_ptr<reconnecting_client>
    create(asio::any_io_executor executor, std::string url, client_options options = {},
           reconnect_options policy = {}, typename Transport::context_type context = {}) {
        return std::shared_ptr<reconnecting_client>(new reconnecting_client(
            std::move(executor), std::move(url), std::move(options), policy, std::move(context)));
    }

    handlers_type& handlers() noexcept { return handlers_; }

    void start() {
        asio::dispatch(strand_, [self = this->shared_from_this()] { self->attempt(); });
    }

    // Closes the current connection (1000) and stops reconnecting.
    void stop() {
        asio::dispatch(strand_, [self = this->shared_from_this()] {
            self->stopped_ = true;
            self->timer_.cancel();
            if (auto c = self->current()) c->close();
        });
    }

    // The open connection, or null between connections.
    connection_ptr current() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return current_;
    }

    // Sends on the current connection; send_status::closed when there is none.
    send_status send(opcode type, std::string_view payload) {
        auto c = current();
        return c ? c->send(type, payload) : send_status::closed;
    }

    // Consecutive failed attempts (0 after a successful connect); successful connects.
    std::size_t failures() const noexcept { return failures_; }
    std::size_t connects() const noexcept { return connects_; }

    // What the server answered the last time it refused the upgrade (status 0 if it never did).
    upgrade_response last_refusal() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return last_refusal_;
    }

private:
    reconnecting_client(asio::any_io_executor executor, std::string url, client_options options,
                        reconnect_options policy, typename Transport::context_type context)
        : executor_(executor), strand_(asio::make_strand(executor)), timer_(strand_),
          url_(std::move(url)), options_(std::move(options)), policy_(policy),
          context_(std::move(context)), jitter_(std::random_device{}()) {
        // No context: the process's default one, as async_connect would use (wss:// resumes
        // TLS sessions across reconnects only with one context kept for all attempts).
        if (!detail::is_usable_context(context_)) {
            std::error_code ignored; // an empty context fails each attempt, as before
            context_ = detail::default_client_context<Transport>(ignored);
        }
    }

    void attempt() {
        if (stopped_) return;
        async_connect<Transport, UserData>(
            executor_, url_, options_, context_, attempt_refusal_,
            asio::bind_executor(
                strand_, [self = this->shared_from_this()](std::error_code ec, connection_ptr c) {
                    self->on_connect(ec, std::move(c));
                }));
    }

    void on_connect(std::error_code ec, connection_ptr c) {
        if (ec == error::bad_status) {
            bool give_up = false;
            {
                std::lock_guard<std::mutex> lock(mutex_);
                last_refusal_ = attempt_refusal_;
                give_up = !policy_.retry_client_errors && last_refusal_.is_client_error();
            }
            if (give_up) {
                ++failures_;
                return stop_trying(ec);
            }
        }
        if (ec) return retry(ec);
        if (stopped_) return c->close();
        failures_ = 0;
        ++connects_;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            current_ = c;
        }
        // This object holds the connection (current_): it is told weakly.
        c->start(detail::notify_on_close(
            handlers_, std::weak_ptr<reconnecting_client>(this->shared_from_this()),
            [](const std::shared_ptr<reconnecting_client>& self, const connection_ptr&,
               const close_info& info) {
                asio::dispatch(self->strand_, [self, info] {
                    {
                        std::lock_guard<std::mutex> lock(self->mutex_);
                        self->current_.reset();
                    }
                    self->retry(info.error);
                });
            }));
    }

    void retry(std::error_code ec) {
        if (stopped_) return;
        ++failures_;
        if (policy_.max_attempts != 0 && failures_ >= policy_.max_attempts) return stop_trying(ec);
        const auto delay = next_delay();
        if (handlers_.on_retry) handlers_.on_retry(failures_, delay, ec);
        if (stopped_) return; // stop() from on_retry
        timer_.expires_after(delay);
        timer_.async_wait(asio::bind_executor(
            strand_, [self = this->shared_from_this()](std::error_code wait_ec) {
                if (!wait_ec) self->attempt();
            }));
    }

    void stop_trying(std::error_code ec) {
        if (handlers_.on_give_up) handlers_.on_give_up(ec);
    }

    std::chrono::milliseconds next_delay() {
        using ms = std::chrono::milliseconds;
        const std::size_t exponent = std::min<std::size_t>(failures_ - 1, 30);
        const auto base = static_cast<std::uint64_t>(policy_.initial_delay.count());
        const auto cap = static_cast<std::uint64_t>(policy_.max_delay.count());
        const std::uint64_t ceiling = std::min(cap, base << exponent);
        std::uniform_int_distribution<std::uint64_t> pick(0, ceiling);
        return ms(static_cast<ms::rep>(pick(jitter_)));
    }

    asio::any_io_executor executor_;
    asio::strand<asio::any_io_executor> strand_;
    asio::steady_timer timer_;
    std::string url_;
    client_options options_;
    reconnect_options policy_;
    typename Transport::context_type context_;
    handlers_type handlers_;
    std::mt19937_64 jitter_; // not security sensitive: spreads reconnects in time
    mutable std::mutex mutex_;
    connection_ptr current_;
    upgrade_response attempt_refusal_; // filled by the attempt in progress (on strand_)
    upgrade_response last_refusal_;    // under mutex_
    std::size_t failures_ = 0;
    std::size_t connects_ = 0;
    bool stopped_ = false;
};

} // namespace duplex
