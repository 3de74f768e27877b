// duplex/detail/transport_traits.hpp — what server, client and connection ask of a transport
// policy.
// SPDX-License-Identifier: BSL-1.0
#pragma once

#include <asio/buffer.hpp>
#include <asio/ip/tcp.hpp>

#include <system_error>
#include <utility>
#include <vector>

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

// Whether a transport can resume sessions from earlier connections (tls.hpp), which a client
// may turn off per connection.
template <class T, class = void>
struct resumes_sessions : std::false_type {};
template <class T>
struct resumes_sessions<
    T, std::void_t<decltype(T::set_resumption(std::declval<typename T::stream_type&>(), true))>>
    : std::true_type {};

} // namespace duplex::detail
