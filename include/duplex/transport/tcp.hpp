// duplex/transport/tcp.hpp — the plain TCP transport policy (ws://), and the policy contract.
// SPDX-License-Identifier: BSL-1.0
//
// duplex's connection, server and client are templates over a transport policy: a struct of
// types and static functions that says how bytes move, and nothing about WebSocket. To add a
// transport (a QUIC stream, an in-memory pipe), write a struct like `tcp` (unix_socket.hpp is
// another one, over Unix-domain sockets):
//
//   using stream_type          An AsyncReadStream + AsyncWriteStream (async_read_some,
//                              async_write_some, get_executor). Connections own one.
//   using protocol_type        The Asio protocol that servers accept and clients connect with
//                              (asio::ip::tcp, asio::local::stream_protocol). Optional:
//                              asio::ip::tcp when absent.
//   using context_type         State shared by every connection of one server or client
//                              (TLS: the asio::ssl::context). Default-constructible or not.
//   static constexpr bool is_secure      true when the scheme is wss://
//
//   static stream_type make_stream(protocol_type::socket&& connected, context_type&)
//       Wraps a connected (or accepted) socket. Only server and client need this.
//   static void async_handshake(stream_type&, protocol::role, const std::string& host,
//                               Handler&& handler)           handler(std::error_code)
//       Runs the transport's own handshake after connect/accept (TLS; a no-op for TCP).
//       `host` is the name the client connected to: for SNI and certificate checks.
//   static void async_shutdown(stream_type&, Handler&& handler)  handler(std::error_code)
//       Ends the outgoing direction gracefully (TLS close_notify; TCP FIN).
//   static void close(stream_type&) noexcept
//       Releases the transport at once. Idempotent, never throws.
//   static bool is_clean_end(const std::error_code&) noexcept
//       Whether a read error after the close handshake is an orderly end (EOF; for TLS also a
//       truncated stream, which many peers produce after the WebSocket close).
//   static asio::ip::tcp::endpoint remote_endpoint(const stream_type&) noexcept
//       The peer's address, or a default endpoint when the transport has none.
//
// Optional, for streams whose readiness can be awaited without a buffer (plain sockets; TLS,
// whose stream completes the wait at once while it or OpenSSL holds bytes the socket knows
// nothing about):
//   static void async_wait_readable(stream_type&, Handler&& handler)  handler(std::error_code)
//   static std::size_t read_now(stream_type&, asio::mutable_buffer, std::error_code&)
//       Reads what is available without blocking (asio::error::would_block when nothing is).
//   static std::size_t write_now(stream_type&, const std::vector<asio::const_buffer>&,
//                                std::error_code&)
//       Writes what the stream takes without blocking; the connection writes the rest
//       asynchronously.
// With them a connection holds no receive buffer while it waits: it reads into a buffer of
// its thread when bytes are there, so an idle connection costs a few hundred bytes, not 16 KiB.
// write_now is independent of the other two (tls has readiness but no write_now yet).
#pragma once

#include "../detail/socket_transport.hpp"

#include <asio/ip/tcp.hpp>

#include <system_error>
#include <utility>

namespace duplex::transport {

// The handshake (none), shutdown (FIN), close and readiness functions come from
// detail::socket_transport, shared with unix_socket.
struct tcp : detail::socket_transport<asio::ip::tcp> {
    struct context_type {};
    static constexpr bool is_secure = false;

    static stream_type make_stream(asio::ip::tcp::socket&& connected, context_type&) {
        return std::move(connected);
    }

    static asio::ip::tcp::endpoint remote_endpoint(const stream_type& stream) noexcept {
        std::error_code ec;
        auto endpoint = stream.remote_endpoint(ec);
        return ec ? asio::ip::tcp::endpoint{} : endpoint;
    }
};

} // namespace duplex::transport
