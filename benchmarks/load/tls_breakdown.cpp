// Where an idle wss:// server connection's memory goes, counted rather than estimated: OpenSSL's
// live allocations (through CRYPTO_set_mem_functions) and everything else allocated with
// operator new (the stream's state, the socket, Asio's), for server streams that completed a
// TLS 1.3 handshake and exchanged one record each way, as an idle WebSocket connection has.
//
//   g++ -std=c++17 -O2 -DASIO_STANDALONE -Iinclude benchmarks/load/tls_breakdown.cpp
//       -o /tmp/tls_breakdown -lssl -lcrypto -pthread
//   /tmp/tls_breakdown CERT.pem KEY.pem [connections]
#include <duplex/transport/tls.hpp>

#include <asio/io_context.hpp>
#include <asio/write.hpp>

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <optional>
#include <vector>

namespace {

std::atomic<long long> ssl_live{0}, new_live{0};

struct header {
    std::size_t size;
    const char* file; // OpenSSL's allocation site, for the table of where its bytes are
    int line;
    alignas(std::max_align_t) unsigned char pad[1];
};
constexpr std::size_t header_size = offsetof(header, pad);

// Live OpenSSL bytes by allocation site: a fixed table, so counting allocates nothing.
struct site {
    const char* file = nullptr;
    int line = 0;
    long long bytes = 0;
};
std::array<site, 4096> sites;
site& site_of(const char* file, int line) {
    std::size_t i =
        (reinterpret_cast<std::uintptr_t>(file) * 31u + static_cast<unsigned>(line)) % sites.size();
    while (sites[i].file && (sites[i].file != file || sites[i].line != line))
        i = (i + 1) % sites.size();
    sites[i].file = file;
    sites[i].line = line;
    return sites[i];
}

header* header_of(void* p) {
    return reinterpret_cast<header*>(static_cast<unsigned char*>(p) - header_size);
}

void* count_malloc(std::size_t n, std::atomic<long long>& live, const char* file = nullptr,
                   int line = 0) {
    auto* h = static_cast<header*>(std::malloc(header_size + n));
    if (!h) return nullptr;
    h->size = n;
    h->file = file;
    h->line = line;
    live += static_cast<long long>(n);
    if (file) site_of(file, line).bytes += static_cast<long long>(n);
    return h->pad;
}
void count_free(void* p, std::atomic<long long>& live) {
    if (!p) return;
    header* h = header_of(p);
    live -= static_cast<long long>(h->size);
    if (h->file) site_of(h->file, h->line).bytes -= static_cast<long long>(h->size);
    std::free(h);
}

void* ssl_malloc(std::size_t n, const char* f, int l) {
    return count_malloc(n, ssl_live, f ? f : "?", l);
}
void ssl_free(void* p, const char*, int) { count_free(p, ssl_live); }
void* ssl_realloc(void* p, std::size_t n, const char* f, int l) {
    if (!p) return ssl_malloc(n, f, l);
    header* h = header_of(p);
    void* q = ssl_malloc(n, f, l);
    if (q) std::memcpy(q, p, std::min(n, h->size));
    ssl_free(p, f, l);
    return q;
}

} // namespace

void* operator new(std::size_t n) {
    if (void* p = count_malloc(n, new_live)) return p;
    throw std::bad_alloc();
}
void operator delete(void* p) noexcept { count_free(p, new_live); }
void operator delete(void* p, std::size_t) noexcept { count_free(p, new_live); }

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s CERT.pem KEY.pem [connections]\n", argv[0]);
        return 2;
    }
    if (!::CRYPTO_set_mem_functions(ssl_malloc, ssl_realloc, ssl_free)) return 1;
    const int count = argc > 3 ? std::atoi(argv[3]) : 500;
    using duplex::transport::tls;
    auto server_context = tls::server_context(argv[1], argv[2]);
    auto client_context = tls::client_context_insecure();
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});

    std::vector<std::optional<tls::stream_type>> servers(static_cast<std::size_t>(count)),
        clients(static_cast<std::size_t>(count));
    const long long ssl_start = ssl_live, new_start = new_live;
    int opened = 0;
    std::array<char, 16> sink{};
    for (int i = 0; i < count; ++i) {
        asio::ip::tcp::socket a(io), b(io);
        b.connect(acceptor.local_endpoint());
        acceptor.accept(a);
        auto& s = servers[static_cast<std::size_t>(i)];
        auto& c = clients[static_cast<std::size_t>(i)];
        s.emplace(tls::make_stream(std::move(a), server_context));
        c.emplace(tls::make_stream(std::move(b), client_context));
        tls::async_handshake(*s, duplex::protocol::role::server, "", [&, i](std::error_code ec) {
            if (ec) return;
            auto& st = *servers[static_cast<std::size_t>(i)];
            asio::async_write(st, asio::buffer("x", 1), [&](std::error_code e, std::size_t) {
                if (!e) ++opened;
            });
        });
        tls::async_handshake(*c, duplex::protocol::role::client, "localhost",
                             [&, i](std::error_code ec) {
                                 if (ec) return;
                                 // Reads the server's tickets and its byte.
                                 clients[static_cast<std::size_t>(i)]->async_read_some(
                                     asio::buffer(sink), [](std::error_code, std::size_t) {});
                             });
        io.run();
        io.restart();
    }
    const long long ssl_both = ssl_live - ssl_start, new_both = new_live - new_start;
    for (auto& c : clients) c.reset();
    io.run();
    io.restart();
    const long long ssl_server = ssl_live - ssl_start, new_server = new_live - new_start;
    std::array<site, 4096> with_servers = sites;
    std::size_t buffered = 0;
    for (auto& s : servers) buffered += s->buffered_capacity();
    for (auto& s : servers) s.reset();
    io.run();
    const long long ssl_after = ssl_live - ssl_start;
    std::vector<site> held;
    for (std::size_t i = 0; i < sites.size(); ++i) {
        if (!with_servers[i].file) continue;
        site d = with_servers[i];
        d.bytes -= sites[i].bytes; // what closing the server connections gave back
        if (d.bytes >= count) held.push_back(d);
    }
    std::sort(held.begin(), held.end(),
              [](const site& a, const site& b) { return a.bytes > b.bytes; });
    std::printf("OpenSSL bytes per idle server connection by allocation site:\n");
    for (const auto& h : held) std::printf("  %6lld  %s:%d\n", h.bytes / count, h.file, h.line);
    std::printf("%d connections (%d completed), protocol %s\n", count, opened,
                count ? "TLS 1.3" : "-");
    std::printf("server, per idle connection: OpenSSL %lld B, operator new %lld B, "
                "ciphertext buffers %zu B\n",
                (ssl_server - ssl_after) / count, new_server / count, buffered);
    std::printf("kept by OpenSSL after the connections closed (session cache): %lld B each\n",
                ssl_after / count);
    std::printf("both ends: OpenSSL %lld B, operator new %lld B per pair\n", ssl_both / count,
                new_both / count);
    return 0;
}
