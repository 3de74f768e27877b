// duplex/transport/unix_socket.hpp — WebSocket over Unix-domain stream sockets (ws+unix:).
// SPDX-License-Identifier: BSL-1.0
//
// For a server behind a reverse proxy on the same machine (nginx, HAProxy, Envoy): no TCP port
// to allocate or firewall, and who may connect is decided by file permissions. The policy
// follows the contract at the top of tcp.hpp over asio::local::stream_protocol; the WebSocket
// protocol on top is unchanged.
//
//   duplex::server<duplex::transport::unix_socket> server(io);
//   server.listen("/run/app/ws.sock");                    // mode 0660 (listen_options)
//   duplex::async_connect<duplex::transport::unix_socket>(
//       io.get_executor(), "ws+unix:///run/app/ws.sock:/chat?room=1", {}, handler);
//
// A client names the socket in the URL as Node's ws does: "ws+unix:" then the socket's
// absolute path, then ':' and the request target ("/" when absent); "ws+unix:/path" works too.
// The path cannot contain ':' or '?', and the Host header sent is "localhost"
// (protocol/url.hpp). There is no TLS over this transport: the socket never leaves the machine.
//
// Listening (server::listen(path, listen_options)):
//   - The socket file is created with bind(), given listen_options::permissions before listen()
//     (so nobody connects while only the umask applied), and removed again by server::stop()
//     (or the server's destructor) if it is still the file this server made.
//   - A file left at the path by a server that died (a socket nobody accepts on: connecting
//     to it is refused) is removed and replaced. A socket that a live process listens on fails
//     with asio::error::address_in_use; anything that is not a socket (a regular file, a
//     directory, a symbolic link) is never removed, and fails with std::errc::file_exists.
//   - Connecting needs write permission on the socket file and search permission on every
//     directory above it. Anyone who may write the directory may also replace the socket, so
//     keep it in a directory of the service's own (/run/app/, not /tmp/).
//   - Checking for a stale file and removing it are two steps: two servers started at the same
//     moment on one path can race. Start one server per path (a service manager does).
//   - A path must fit in sockaddr_un (at most 107 bytes on Linux), else
//     asio::error::name_too_long; Linux's abstract namespace is not supported.
//
// Connections have no IP peer: connection::remote_endpoint() and request_info::remote are
// default endpoints. Behind a proxy the client's address comes from the proxy's headers
// (X-Forwarded-For, Forwarded), which on_upgrade can read.
#pragma once

#include "../detail/socket_transport.hpp"

#include <asio/error.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/local/stream_protocol.hpp>

#include <cerrno>
#include <memory>
#include <string>
#include <system_error>
#include <utility>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#if !defined(ASIO_HAS_LOCAL_SOCKETS)
#error "duplex/transport/unix_socket.hpp needs Asio's local sockets (ASIO_HAS_LOCAL_SOCKETS)"
#endif

namespace duplex::transport {

// Not `unix`: g++ and clang++ define `unix` as a macro outside strict ISO modes (gnu++17).
struct unix_socket : detail::socket_transport<asio::local::stream_protocol> {
    struct context_type {};
    static constexpr bool is_secure = false;
    using endpoint_type = protocol_type::endpoint;

    // How server::listen(path, options) creates the socket file.
    struct listen_options {
        // The socket file's mode, set after bind() and before listen(). Connecting needs write
        // permission: 0660 lets the owner and the group in (put the proxy's user in the
        // service's group), 0600 only the owner, 0666 everyone on the machine. 0 keeps what the
        // process's umask gave.
        unsigned permissions = 0660;
    };

    static stream_type make_stream(stream_type&& connected, context_type&) {
        return std::move(connected);
    }

    // A Unix-domain peer has no IP address.
    static asio::ip::tcp::endpoint remote_endpoint(const stream_type&) noexcept { return {}; }

    // The endpoint for `path`, without the exception Asio throws for a path too long for
    // sockaddr_un: asio::error::name_too_long then, invalid_argument for an empty path or one
    // with a NUL byte.
    static std::error_code make_endpoint(const std::string& path, endpoint_type& out) {
        if (path.empty() || path.find('\0') != std::string::npos)
            return asio::error::invalid_argument;
        if (path.size() >= sizeof(sockaddr_un{}.sun_path)) return asio::error::name_too_long;
        out = endpoint_type(path);
        return {};
    }

    // Binds `acceptor` to a new socket file at `path` and listens (see the top of this file for
    // stale files and permissions). On success `file` removes the socket file when the last
    // copy is released, if the file at `path` is still the one made here.
    static std::error_code listen(protocol_type::acceptor& acceptor, const std::string& path,
                                  const listen_options& options, std::shared_ptr<void>& file) {
        endpoint_type endpoint;
        if (auto ec = make_endpoint(path, endpoint)) return ec;
        if (auto ec = remove_if_stale(acceptor.get_executor(), path, endpoint)) return ec;
        std::error_code ec;
        acceptor.open(endpoint.protocol(), ec);
        if (!ec) acceptor.bind(endpoint, ec);
        std::error_code ignored;
        if (ec) {
            acceptor.close(ignored);
            return ec;
        }
        auto made = std::make_shared<socket_file>(path);
        if (options.permissions != 0 &&
            ::chmod(path.c_str(), static_cast<mode_t>(options.permissions)) != 0)
            ec = last_error();
        if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
        if (ec) {
            acceptor.close(ignored);
            return ec; // `made` removes the file
        }
        file = std::move(made);
        return {};
    }

private:
    // The socket file a server made, removed when the server is done with it. Not if another
    // file has replaced it in the meantime (a newer server on the same path).
    struct socket_file {
        explicit socket_file(std::string p) : path(std::move(p)) {
            struct stat st {};
            if (::lstat(path.c_str(), &st) == 0) {
                device = st.st_dev;
                inode = st.st_ino;
                known = true;
            }
        }
        socket_file(const socket_file&) = delete;
        socket_file& operator=(const socket_file&) = delete;
        ~socket_file() {
            struct stat st {};
            if (known && ::lstat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode) &&
                st.st_dev == device && st.st_ino == inode)
                ::unlink(path.c_str());
        }
        std::string path;
        dev_t device{};
        ino_t inode{};
        bool known = false;
    };

    static std::error_code last_error() { return {errno, asio::error::get_system_category()}; }

    // A socket file nobody accepts on is what a server that died leaves behind: remove it.
    // Everything else at the path is left alone.
    template <class Executor>
    static std::error_code remove_if_stale(const Executor& executor, const std::string& path,
                                           const endpoint_type& endpoint) {
        struct stat st {};
        if (::lstat(path.c_str(), &st) != 0)
            return errno == ENOENT ? std::error_code{} : last_error();
        if (!S_ISSOCK(st.st_mode)) return std::make_error_code(std::errc::file_exists);
        // Non-blocking, so that a live server with a full backlog cannot stall listen().
        stream_type probe(executor);
        std::error_code ec;
        probe.open(endpoint.protocol(), ec);
        if (!ec) probe.non_blocking(true, ec);
        if (ec) return ec;
        probe.connect(endpoint, ec);
        std::error_code ignored;
        probe.close(ignored);
        if (ec == asio::error::connection_refused) {
            if (::unlink(path.c_str()) != 0 && errno != ENOENT) return last_error();
            return {};
        }
        if (ec.category() == asio::error::get_system_category() && ec.value() == ENOENT)
            return {}; // gone in the meantime
        if (!ec || ec == asio::error::would_block || ec == asio::error::try_again ||
            ec == asio::error::in_progress)
            return asio::error::address_in_use; // someone is listening
        return ec;                              // e.g. permission denied: not ours to judge
    }
};

} // namespace duplex::transport
