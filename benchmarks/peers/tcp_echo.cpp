// tcp_echo — the ceiling: what one thread on this machine can do with the same sockets when it
// does no WebSocket work at all.
//
//   tcp_echo [--port P]      (0 picks a free port; prints "listening on PORT" when ready)
//
// It answers the upgrade request with a fixed 101 (no accept key: the load generator only looks
// for the 101), then echoes the bytes it reads as they are: the generator receives its own
// masked frames and parses them like any server's. On /sub and /pub it is the broadcast
// ceiling: each frame the publisher sends is turned into one unmasked server frame, once, and
// the frames published while one epoll_wait's events are handled are written to every
// subscriber's socket in one send. One thread, epoll, TCP_NODELAY.
#include "../common/open_files.hpp"
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

namespace {

enum class role { upgrading, echo, subscriber, publisher };

struct connection {
    bool open = false;
    role what = role::upgrading;
    std::vector<unsigned char> in;  // the upgrade head, or the publisher's incomplete frame
    std::vector<unsigned char> out; // bytes the socket did not take yet
    std::size_t out_offset = 0;
    std::size_t subscriber_slot = 0;
};

constexpr std::string_view switching_protocols = "HTTP/1.1 101 Switching Protocols\r\n"
                                                 "Upgrade: websocket\r\n"
                                                 "Connection: Upgrade\r\n\r\n";

class tcp_server {
public:
    explicit tcp_server(int listener) : listener_(listener), buffer_(256 * 1024) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        watch(listener_, EPOLLIN, EPOLL_CTL_ADD);
    }

    void run() {
        epoll_event events[256];
        for (;;) {
            const int n = epoll_wait(epoll_, events, 256, -1);
            for (int i = 0; i < n; ++i) {
                const int fd = events[i].data.fd;
                if (fd == listener_) {
                    accept_all();
                    continue;
                }
                if (!is_open(fd)) continue;
                if ((events[i].events & EPOLLOUT) != 0U) flush(fd);
                if (!is_open(fd)) continue;
                if ((events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0U) on_readable(fd);
            }
            write_published();
        }
    }

private:
    bool is_open(int fd) const {
        return static_cast<std::size_t>(fd) < conns_.size() && conns_[index(fd)].open;
    }
    static std::size_t index(int fd) { return static_cast<std::size_t>(fd); }

    void watch(int fd, std::uint32_t events, int operation) {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        epoll_ctl(epoll_, operation, fd, &ev);
    }

    void accept_all() {
        for (;;) {
            const int fd = accept4(listener_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
            if (fd < 0) return;
            const int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (conns_.size() <= index(fd)) conns_.resize(index(fd) + 1);
            conns_[index(fd)] = connection{};
            conns_[index(fd)].open = true;
            watch(fd, EPOLLIN, EPOLL_CTL_ADD);
        }
    }

    void drop(int fd) {
        connection& c = conns_[index(fd)];
        if (c.what == role::subscriber) {
            // Swap-remove: the last subscriber takes this one's slot.
            const int last = subscribers_.back();
            subscribers_[c.subscriber_slot] = last;
            conns_[index(last)].subscriber_slot = c.subscriber_slot;
            subscribers_.pop_back();
        }
        c = connection{};
        close(fd);
    }

    // Sends `size` bytes, queueing what the socket does not take. False if the connection died.
    bool send_or_queue(int fd, const unsigned char* data, std::size_t size) {
        connection& c = conns_[index(fd)];
        if (c.out.empty()) {
            const ssize_t n = send(fd, data, size, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
                drop(fd);
                return false;
            }
            const std::size_t written = n < 0 ? 0 : static_cast<std::size_t>(n);
            if (written == size) return true;
            data += written;
            size -= written;
            // An echo connection stops reading until its backlog is written: the generator
            // then sees the same backpressure a WebSocket server would apply.
            watch(fd, c.what == role::echo ? EPOLLOUT : EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD);
        }
        c.out.insert(c.out.end(), data, data + size);
        return true;
    }

    void flush(int fd) {
        connection& c = conns_[index(fd)];
        while (c.out_offset < c.out.size()) {
            const ssize_t n =
                send(fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) return;
                drop(fd);
                return;
            }
            c.out_offset += static_cast<std::size_t>(n);
        }
        c.out.clear();
        c.out_offset = 0;
        watch(fd, EPOLLIN, EPOLL_CTL_MOD);
    }

    void on_readable(int fd) {
        const ssize_t n = recv(fd, buffer_.data(), buffer_.size(), 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        if (n <= 0) {
            drop(fd);
            return;
        }
        const auto size = static_cast<std::size_t>(n);
        connection& c = conns_[index(fd)];
        switch (c.what) {
        case role::echo: send_or_queue(fd, buffer_.data(), size); return;
        case role::upgrading: on_upgrade_bytes(fd, size); return;
        case role::publisher:
            c.in.insert(c.in.end(), buffer_.data(), buffer_.data() + size);
            publish_frames(fd);
            return;
        case role::subscriber: return; // subscribers only listen
        }
    }

    void on_upgrade_bytes(int fd, std::size_t size) {
        connection& c = conns_[index(fd)];
        c.in.insert(c.in.end(), buffer_.data(), buffer_.data() + size);
        const std::string_view head(reinterpret_cast<const char*>(c.in.data()), c.in.size());
        const auto end = head.find("\r\n\r\n");
        if (end == std::string_view::npos) {
            if (head.size() > 16 * 1024) drop(fd);
            return;
        }
        if (head.rfind("GET /sub ", 0) == 0) {
            c.what = role::subscriber;
            c.subscriber_slot = subscribers_.size();
            subscribers_.push_back(fd);
        } else if (head.rfind("GET /pub ", 0) == 0) {
            c.what = role::publisher;
        } else {
            c.what = role::echo;
        }
        // Whatever followed the head is the first frames: treat them as just read.
        std::vector<unsigned char> rest(c.in.begin() + static_cast<std::ptrdiff_t>(end + 4),
                                        c.in.end());
        c.in.clear();
        if (!send_or_queue(fd, reinterpret_cast<const unsigned char*>(switching_protocols.data()),
                           switching_protocols.size()))
            return;
        if (rest.empty()) return;
        if (c.what == role::echo) {
            send_or_queue(fd, rest.data(), rest.size());
        } else if (c.what == role::publisher) {
            c.in = std::move(rest);
            publish_frames(fd);
        }
    }

    // Each complete frame from the publisher: unmask it, encode one server frame, and write
    // those bytes to every subscriber.
    void publish_frames(int fd) {
        connection& c = conns_[index(fd)];
        std::size_t at = 0;
        for (;;) {
            const unsigned char* p = c.in.data() + at;
            const std::size_t available = c.in.size() - at;
            if (available < 2) break;
            std::uint64_t length = p[1] & 0x7FU;
            std::size_t header = 2;
            if (length == 126) {
                if (available < 4) break;
                length = (std::uint64_t{p[2]} << 8) | p[3];
                header = 4;
            } else if (length == 127) {
                if (available < 10) break;
                length = 0;
                for (std::size_t i = 0; i < 8; ++i) length = (length << 8) | p[2 + i];
                header = 10;
            }
            const bool masked = (p[1] & 0x80U) != 0;
            const std::size_t key_at = header;
            if (masked) header += 4;
            if (length > (64U << 20)) {
                drop(fd);
                return;
            }
            const auto payload_size = static_cast<std::size_t>(length);
            if (available < header + payload_size) break;

            frame_.assign(p, p + key_at);
            frame_[1] = static_cast<unsigned char>(frame_[1] & 0x7FU); // server frames: unmasked
            frame_.insert(frame_.end(), p + header, p + header + payload_size);
            if (masked)
                for (std::size_t i = 0; i < payload_size; ++i)
                    frame_[key_at + i] =
                        static_cast<unsigned char>(frame_[key_at + i] ^ p[key_at + (i & 3U)]);
            at += header + payload_size;
            published_.insert(published_.end(), frame_.begin(), frame_.end());
        }
        c.in.erase(c.in.begin(), c.in.begin() + static_cast<std::ptrdiff_t>(at));
    }

    // Once per epoll_wait: everything published while handling its events goes to every
    // subscriber in one send, as a server that corks its writes does (one send per message
    // and subscriber would make this no ceiling for such servers).
    void write_published() {
        if (published_.empty()) return;
        // A subscriber that dies is swap-removed: walk from the end so none is skipped.
        for (std::size_t s = subscribers_.size(); s-- > 0;)
            send_or_queue(subscribers_[s], published_.data(), published_.size());
        published_.clear();
    }

    int listener_;
    int epoll_ = -1;
    std::vector<unsigned char> buffer_;
    std::vector<unsigned char> frame_;
    std::vector<unsigned char> published_; // frames published during this epoll_wait's events
    std::vector<connection> conns_;        // indexed by file descriptor
    std::vector<int> subscribers_;
};

} // namespace

int main(int argc, char** argv) {
    std::uint16_t port = 9300;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
            port = static_cast<std::uint16_t>(std::strtoul(argv[++i], nullptr, 10));
        } else {
            std::fprintf(stderr, "usage: %s [--port P]\n", argv[0]);
            return 2;
        }
    }
    std::signal(SIGPIPE, SIG_IGN);
    bench::raise_open_file_limit();

    const int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
        listen(listener, SOMAXCONN) != 0) {
        std::perror("tcp_echo: cannot listen");
        return 1;
    }
    socklen_t length = sizeof address;
    getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length);
    std::printf("listening on %u\n", ntohs(address.sin_port));
    std::fflush(stdout);
    tcp_server(listener).run();
}
