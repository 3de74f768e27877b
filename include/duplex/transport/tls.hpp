// duplex/transport/tls.hpp — the TLS transport policy (wss://) over OpenSSL.
// SPDX-License-Identifier: BSL-1.0
//
// `tls` follows the policy contract written at the top of tcp.hpp. It runs TLS 1.2+ over a TCP
// socket through duplex's own stream (detail/tls_stream.hpp: OpenSSL over a BIO of ours, no
// record buffers held while a connection is idle) and is secure by default: a client context made
// by tls::client_context() verifies the server's certificate against the system CA store, and
// tls::async_handshake checks the certificate names the host the client connected to, and
// sends that host as SNI. Turning verification off takes a function whose name says so
// (tls::client_context_insecure()), never a bare `false`.
//
// Client contexts keep the sessions servers give them (detail/tls_session_cache.hpp), and a
// client's next connection to the same host name and port with the same context resumes one:
// an abbreviated handshake without the certificate exchange. On by default; a client turns it
// off with client_options::tls_resumption, a low-level user with tls::set_resumption.
//
// This header needs OpenSSL (1.1.1 or later) and is not included by duplex.hpp unless
// DUPLEX_ENABLE_TLS is defined; the CMake target duplex::tls defines it and links OpenSSL, so
// that plain ws:// users never need OpenSSL. Including this header directly always works.
//
// Errors: the context factories run at setup time, from configuration (file names), never on
// input from the network. Each has a throwing form (asio::system_error, whose what() names the
// OpenSSL failure) and a form taking std::error_code& that returns an empty context instead.
#pragma once

#include "../detail/post_completion.hpp"
#include "../detail/tls_session_cache.hpp"
#include "../detail/tls_stream.hpp"
#include "../protocol/session.hpp"

#include <asio/associated_executor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/ip/address.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ssl.hpp>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cctype>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>

#if OPENSSL_VERSION_NUMBER < 0x10101000L
#error "duplex/transport/tls.hpp needs OpenSSL 1.1.1 or later"
#endif

namespace duplex::transport {

struct tls {
    using stream_type = detail::tls_stream;
    static constexpr bool is_secure = true;

    // What a client context's session cache holds and did (context_type::client_sessions()).
    using session_counts = detail::tls_session_cache::counts;
    // Peers (host name or IP, and port) whose sessions a client context keeps by default.
    static constexpr std::size_t default_session_peers = 64;

    // State shared by every connection of one server or client: the OpenSSL context
    // (certificates, trust store, protocol versions). Held by shared_ptr so that a user can
    // bring a context they configured themselves: `tls::context_type{my_shared_ptr}`.
    // The context must outlive every stream made from it (OpenSSL keeps the SSL_CTX alive,
    // but Asio keeps callbacks, such as a password callback, in the asio::ssl::context).
    struct context_type {
        std::shared_ptr<asio::ssl::context> ssl;

        // Empty: what the error_code factories return on failure. Not usable by make_stream.
        context_type() = default;
        explicit context_type(std::shared_ptr<asio::ssl::context> context)
            : ssl(std::move(context)) {}

        explicit operator bool() const noexcept { return ssl != nullptr; }
        asio::ssl::context& native() const noexcept { return *ssl; }

        // Trusts the CA certificate(s) in a PEM file in addition to the system store, e.g. a
        // self-signed certificate in tests or a private CA.
        void load_verify_file(const std::string& pem_file, std::error_code& ec) {
            ec = {};
            if (!ssl) {
                ec = asio::error::invalid_argument;
                return;
            }
            ssl->load_verify_file(pem_file, ec);
        }
        void load_verify_file(const std::string& pem_file) {
            std::error_code ec;
            load_verify_file(pem_file, ec);
            if (ec) throw asio::system_error(ec, "duplex::tls load_verify_file");
        }

        // Makes this client context keep sessions for resumption, for at most `peers` peers
        // (0 keeps none), or changes that bound. client_context() and client_context_insecure()
        // have done it already (default_session_peers); a context configured by hand needs it
        // once, before its first connection. It sets the context's new-session callback and
        // session cache mode (client, no internal store). False if OpenSSL refused.
        bool keep_client_sessions(std::size_t peers = default_session_peers) {
            return ssl && detail::tls_session_cache::install(ssl->native_handle(), peers);
        }

        // Sessions kept now, handshakes that offered one and handshakes resumed; all zero for
        // a context that keeps no sessions.
        session_counts client_sessions() const {
            auto* cache = ssl ? detail::tls_session_cache::of(ssl->native_handle()) : nullptr;
            return cache ? cache->count() : session_counts{};
        }
    };

    // A client context that verifies the peer: TLS 1.2+, the system's default CA paths.
    // Add private CAs with load_verify_file.
    static context_type client_context(std::error_code& ec) {
        auto context = make_context(asio::ssl::context::tls_client, ec);
        if (ec) return {};
        context.ssl->set_default_verify_paths(ec);
        if (!ec) context.ssl->set_verify_mode(asio::ssl::verify_peer, ec);
        // Without the cache (out of memory) the context still works; it only does not resume.
        if (!ec) (void)context.keep_client_sessions();
        return ec ? context_type{} : context;
    }
    static context_type client_context() {
        std::error_code ec;
        auto context = client_context(ec);
        if (ec) throw asio::system_error(ec, "duplex::tls::client_context");
        return context;
    }

    // A client context that accepts any certificate from anyone: encrypted, not authenticated,
    // so open to a man in the middle. For tests and for peers pinned by other means only.
    // SNI is still sent.
    static context_type client_context_insecure(std::error_code& ec) {
        auto context = make_context(asio::ssl::context::tls_client, ec);
        if (ec) return {};
        context.ssl->set_verify_mode(asio::ssl::verify_none, ec);
        if (!ec) (void)context.keep_client_sessions();
        return ec ? context_type{} : context;
    }
    static context_type client_context_insecure() {
        std::error_code ec;
        auto context = client_context_insecure(ec);
        if (ec) throw asio::system_error(ec, "duplex::tls::client_context_insecure");
        return context;
    }

    // A server context: TLS 1.2+, a PEM certificate chain (leaf first) and its PEM private key.
    static context_type server_context(const std::string& cert_chain_file,
                                       const std::string& private_key_file, std::error_code& ec) {
        auto context = make_context(asio::ssl::context::tls_server, ec);
        if (ec) return {};
        context.ssl->set_options(asio::ssl::context::single_dh_use, ec);
        if (!ec) context.ssl->use_certificate_chain_file(cert_chain_file, ec);
        if (!ec) context.ssl->use_private_key_file(private_key_file, asio::ssl::context::pem, ec);
        if (!ec && ::SSL_CTX_check_private_key(context.ssl->native_handle()) != 1)
            ec = last_ssl_error();
        // Session tickets (stateless resumption) are OpenSSL's default for servers and stay on:
        // a TLS 1.3 server sends them right after its handshake; a returning client that kept
        // one skips the certificate exchange. The server's session cache is left on as well.
        return ec ? context_type{} : context;
    }
    static context_type server_context(const std::string& cert_chain_file,
                                       const std::string& private_key_file) {
        std::error_code ec;
        auto context = server_context(cert_chain_file, private_key_file, ec);
        if (ec) throw asio::system_error(ec, "duplex::tls::server_context");
        return context;
    }

    // Precondition: `context` is not empty (servers and clients should check it when they are
    // made); an empty one throws std::invalid_argument here rather than dereferencing null.
    static stream_type make_stream(asio::ip::tcp::socket&& connected, context_type& context) {
        if (!context) throw std::invalid_argument("duplex::tls: empty context_type");
        return stream_type(std::move(connected), context.ssl->native_handle());
    }

    // Client: sends SNI (except for IP literals, RFC 6066 section 3) and, when the context
    // verifies peers, requires the certificate to name `host` (RFC 6125 rules via OpenSSL's
    // X509_check_host: no partial wildcards; an IP literal must match an IP SAN). An empty
    // host with verification on fails with asio::error::invalid_argument: there would be
    // nothing to check the certificate against. Server: the server side of the handshake.
    //
    // The name check is OpenSSL's own (SSL_set1_host) rather than a verify callback such as
    // asio::ssl::host_name_verification, so a mismatch is reported by SSL_get_verify_result as
    // X509_V_ERR_HOSTNAME_MISMATCH, and a verify callback the user put on their own context is
    // left in place.
    //
    // Resumption (client, when the context keeps sessions and set_resumption did not turn it
    // off): offers the newest session kept for this host name and port, taken out of the cache
    // (TLS 1.3 tickets are single-use); the server's new tickets refill it. Certificate and
    // host name checks stay on: a session is only ever offered to the name it was verified for.
    template <class Handler>
    static void async_handshake(stream_type& stream, protocol::role role, const std::string& host,
                                Handler&& handler) {
        if (role == protocol::role::server) {
            stream.async_handshake(asio::ssl::stream_base::server, std::forward<Handler>(handler));
            return;
        }
        std::error_code ec = prepare_client(stream, host);
        if (ec) {
            detail::post_completion(stream.get_executor(), std::forward<Handler>(handler), ec);
            return;
        }
        // The SSL, not the stream: a stream may be moved while its handshake runs.
        auto executor = asio::get_associated_executor(handler, stream.get_executor());
        stream.async_handshake(asio::ssl::stream_base::client,
                               asio::bind_executor(executor, [ssl = stream.native_handle(),
                                                              h = std::forward<Handler>(handler)](
                                                                 std::error_code e) mutable {
                                   if (!e) resumed(ssl);
                                   h(e);
                               }));
    }

    // Whether this client stream offers a kept session and keeps the ones the server sends
    // (the default when its context keeps sessions). Call it before async_handshake.
    static void set_resumption(stream_type& stream, bool on) {
        // Off: an empty peer name, under which nothing is offered or kept.
        if (on)
            detail::tls_session_cache::forget_peer(stream.native_handle());
        else
            detail::tls_session_cache::set_peer(stream.native_handle(), std::string());
    }

    // Whether the handshake resumed a session (an abbreviated handshake, no certificate).
    static bool session_reused(const stream_type& stream) noexcept {
        return ::SSL_session_reused(stream.native_handle()) == 1;
    }

    // Sends close_notify after everything written before it, then ends the TCP send direction,
    // and completes: it does not wait for the peer's close_notify. Whoever wants the peer's end
    // reads until it comes (a connection drains, as over TCP): a pending read completes with
    // eof on the peer's close_notify, or stream_truncated when the peer just closes TCP. A
    // peer that reads nothing could stall the close_notify behind a full socket buffer, so the
    // caller still bounds the shutdown with a timer and calls close() when it fires, which
    // completes it with operation_aborted.
    template <class Handler>
    static void async_shutdown(stream_type& stream, Handler&& handler) {
        auto executor = asio::get_associated_executor(handler, stream.get_executor());
        stream.async_shutdown(asio::bind_executor(
            executor, [&stream, h = std::forward<Handler>(handler)](std::error_code ec) mutable {
                // Both close_notify alerts exchanged is success whatever `ec` says.
                const int state = ::SSL_get_shutdown(stream.native_handle());
                if ((state & SSL_SENT_SHUTDOWN) && (state & SSL_RECEIVED_SHUTDOWN)) ec = {};
                if (is_clean_end(ec)) ec = {};
                std::error_code ignored;
                stream.lowest_layer().shutdown(asio::ip::tcp::socket::shutdown_send, ignored);
                h(ec);
            }));
    }

    // Readiness (tcp.hpp): a connection waits for input without a receive buffer of its own.
    // It completes at once when the stream holds decrypted bytes or unread ciphertext, which
    // the socket knows nothing about.
    template <class Handler>
    static void async_wait_readable(stream_type& stream, Handler&& handler) {
        stream.async_wait_readable(std::forward<Handler>(handler));
    }

    static std::size_t read_now(stream_type& stream, asio::mutable_buffer buffer,
                                std::error_code& ec) {
        return stream.read_now(buffer, ec);
    }

    static void close(stream_type& stream) noexcept {
        std::error_code ignored;
        stream.lowest_layer().close(ignored);
    }

    // After the WebSocket close handshake many peers (browsers among them) close TCP without a
    // TLS close_notify. The WebSocket close frames already said goodbye, so that truncation is
    // an orderly end, as is eof (the peer's close_notify).
    static bool is_clean_end(const std::error_code& ec) noexcept {
        return ec == asio::error::eof || ec == asio::ssl::error::stream_truncated;
    }

    static asio::ip::tcp::endpoint remote_endpoint(const stream_type& stream) noexcept {
        std::error_code ec;
        auto endpoint = stream.next_layer().remote_endpoint(ec);
        return ec ? asio::ip::tcp::endpoint{} : endpoint;
    }

private:
    static std::error_code last_ssl_error() {
        const unsigned long code = ::ERR_get_error();
        if (code == 0) return asio::ssl::error::unspecified_system_error;
        return {static_cast<int>(code), asio::error::get_ssl_category()};
    }

    static context_type make_context(asio::ssl::context::method method, std::error_code& ec) {
        ec = {};
        std::shared_ptr<asio::ssl::context> context;
        try {
            context = std::make_shared<asio::ssl::context>(method);
        } catch (const asio::system_error& e) {
            ec = e.code();
            return {};
        }
        // The no_* options keep the protocol floor even where the minimum version is not
        // honoured; the minimum version also covers protocols added after these flags.
        context->set_options(asio::ssl::context::default_workarounds |
                                 asio::ssl::context::no_sslv2 | asio::ssl::context::no_sslv3 |
                                 asio::ssl::context::no_tlsv1 | asio::ssl::context::no_tlsv1_1,
                             ec);
        if (ec) return {};
        SSL_CTX* native = context->native_handle();
        if (::SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION) != 1) {
            ec = last_ssl_error();
            return {};
        }
        // OpenSSL otherwise keeps a read and a write buffer (about 34 KiB) in every idle
        // connection; with this it frees them while nothing is being sent or received.
        ::SSL_CTX_set_mode(native, SSL_MODE_RELEASE_BUFFERS);
#ifdef SSL_OP_NO_RENEGOTIATION
        // No renegotiation either way: a server could otherwise make a client's write wait for
        // a read (TLS 1.2), and client-initiated renegotiation is a cheap DoS on servers.
        ::SSL_CTX_set_options(native, SSL_OP_NO_RENEGOTIATION);
#endif
        return context_type{std::move(context)};
    }

    // Sets SNI and the expected peer name on a client SSL object before its handshake, and
    // offers a session kept for that name and port.
    static std::error_code prepare_client(stream_type& stream, const std::string& host) {
        SSL* ssl = stream.native_handle();
        // A URL's host may be an IPv6 literal in brackets or a fully qualified name with a
        // trailing dot; SNI and certificates carry neither.
        std::string name = host;
        if (name.size() >= 2 && name.front() == '[' && name.back() == ']')
            name = name.substr(1, name.size() - 2);
        if (!name.empty() && name.back() == '.') name.pop_back();

        std::error_code not_ip;
        (void)asio::ip::make_address(name, not_ip);
        const bool is_ip = !name.empty() && !not_ip;
        const bool verify = (::SSL_get_verify_mode(ssl) & SSL_VERIFY_PEER) != 0;

        ::ERR_clear_error();
        if (!is_ip && !name.empty() && SSL_set_tlsext_host_name(ssl, name.c_str()) != 1)
            return last_ssl_error();
        if (verify) {
            if (name.empty()) return asio::error::invalid_argument;
            if (is_ip) {
                if (::X509_VERIFY_PARAM_set1_ip_asc(::SSL_get0_param(ssl), name.c_str()) != 1)
                    return last_ssl_error();
            } else {
                ::SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
                if (::SSL_set1_host(ssl, name.c_str()) != 1) return last_ssl_error();
            }
        }
        offer_session(stream, name, verify);
        return {};
    }

    // After SNI and the name checks are set: names the peer the connection's sessions are kept
    // under (the SNI name or IP, lower case, and the port) and offers one kept for it. Sessions
    // of connections that verified the peer and of those that did not are kept apart: a
    // session from an unverified handshake must never let a verifying connection skip the
    // certificate check.
    static void offer_session(stream_type& stream, const std::string& name, bool verified) {
        SSL* ssl = stream.native_handle();
        auto* cache = detail::tls_session_cache::of(::SSL_get_SSL_CTX(ssl));
        const std::string* set = detail::tls_session_cache::peer_of(ssl);
        if (!cache || name.empty() || (set && set->empty())) return; // none kept, or off
        std::error_code ec;
        const auto remote = stream.next_layer().remote_endpoint(ec);
        if (ec) return;
        std::string peer = name;
        for (char& ch : peer) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        peer += ':' + std::to_string(remote.port());
        if (!verified) peer += " unverified";
        SSL_SESSION* session = cache->take(peer);
        if (!detail::tls_session_cache::set_peer(ssl, std::move(peer))) {
            if (session) ::SSL_SESSION_free(session);
            return;
        }
        if (!session) return;
        if (::SSL_set_session(ssl, session) == 1) cache->count_offered();
        ::SSL_SESSION_free(session); // the SSL holds its own reference
    }

    // After a client handshake: counts a resumption. A resumed TLS 1.2 session brings no new
    // session to the callback, so it goes back to the cache (TLS 1.2 sessions may be reused);
    // a TLS 1.3 server sends new tickets instead.
    static void resumed(SSL* ssl) {
        if (::SSL_session_reused(ssl) != 1) return;
        auto* cache = detail::tls_session_cache::of(::SSL_get_SSL_CTX(ssl));
        const std::string* peer = detail::tls_session_cache::peer_of(ssl);
        if (!cache) return;
        cache->count_resumed();
        if (!peer || peer->empty() || ::SSL_version(ssl) >= TLS1_3_VERSION) return;
        if (SSL_SESSION* session = ::SSL_get1_session(ssl)) {
            try {
                cache->put(*peer, session);
            } catch (...) {
                ::SSL_SESSION_free(session);
            }
        }
    }
};

} // namespace duplex::transport
