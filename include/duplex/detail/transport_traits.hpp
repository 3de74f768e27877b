// duplex/detail/transport_traits.hpp — what server and client ask of a transport policy.
// SPDX-License-Identifier: BSL-1.0
#pragma once

#include <asio/ip/tcp.hpp>

#include <type_traits>

namespace duplex::detail {

// The Asio protocol a transport's sockets speak: Transport::protocol_type, or TCP for policies
// written before the contract named it.
template <class Transport, class = void>
struct transport_protocol {
    using type = asio::ip::tcp;
};
template <class Transport>
struct transport_protocol<Transport, std::void_t<typename Transport::protocol_type>> {
    using type = typename Transport::protocol_type;
};
template <class Transport>
using transport_protocol_t = typename transport_protocol<Transport>::type;

// Whether servers resolve and listen on host and port (else on a path, see unix_socket.hpp).
template <class Transport>
inline constexpr bool is_tcp_transport =
    std::is_same_v<transport_protocol_t<Transport>, asio::ip::tcp>;

} // namespace duplex::detail
