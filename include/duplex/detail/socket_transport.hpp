// duplex/detail/socket_transport.hpp — what every plain-socket transport policy shares.
// SPDX-License-Identifier: BSL-1.0
//
// transport::tcp and transport::unix_socket move bytes through an Asio stream socket and
// nothing else: no handshake of their own, a FIN for a shutdown, readiness that can be awaited
// without a buffer. Those parts of the policy contract (tcp.hpp) are written once here, over
// the socket's protocol; each policy adds its context, make_stream and remote_endpoint.
#pragma once

#include "../protocol/session.hpp"
#include "post_completion.hpp"

#include <asio/buffer.hpp>
#include <asio/error.hpp>
#include <asio/socket_base.hpp>

#include <cstddef>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

namespace duplex::detail {

template <class Protocol>
struct socket_transport {
    using protocol_type = Protocol;
    using stream_type = typename Protocol::socket;

    template <class Handler>
    static void async_handshake(stream_type& stream, protocol::role, const std::string&,
                                Handler&& handler) {
        post_completion(stream.get_executor(), std::forward<Handler>(handler), std::error_code{});
    }

    template <class Handler>
    static void async_shutdown(stream_type& stream, Handler&& handler) {
        std::error_code ec;
        stream.shutdown(asio::socket_base::shutdown_send, ec);
        post_completion(stream.get_executor(), std::forward<Handler>(handler), ec);
    }

    static void close(stream_type& stream) noexcept {
        std::error_code ignored;
        stream.close(ignored);
    }

    static bool is_clean_end(const std::error_code& ec) noexcept { return ec == asio::error::eof; }

    template <class Handler>
    static void async_wait_readable(stream_type& stream, Handler&& handler) {
        // Asio re-arms the descriptor when the wait starts, so bytes that arrived before it
        // complete it at once: nothing is missed between a read and the next wait.
        stream.async_wait(asio::socket_base::wait_read, std::forward<Handler>(handler));
    }

    static std::size_t read_now(stream_type& stream, asio::mutable_buffer buffer,
                                std::error_code& ec) {
        if (!stream.non_blocking()) {
            stream.non_blocking(true, ec);
            if (ec) return 0;
        }
        return stream.read_some(buffer, ec);
    }

    static std::size_t write_now(stream_type& stream,
                                 const std::vector<asio::const_buffer>& buffers,
                                 std::error_code& ec) {
        if (!stream.non_blocking()) {
            stream.non_blocking(true, ec);
            if (ec) return 0;
        }
        return stream.write_some(buffers, ec);
    }
};

} // namespace duplex::detail
