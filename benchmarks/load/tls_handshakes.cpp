// What TLS session resumption saves a wss:// server: connections (TLS handshake, WebSocket
// upgrade, one echo, close) per second of the server thread's CPU, with duplex's client
// resuming (client_options::tls_resumption, the default) and with it off, in interleaved
// rounds so that a machine loaded by others weighs on both alike. The server runs on a thread
// of its own whose CPU clock is read around each round; clients connect one after another,
// verifying the certificate (localhost).
//
//   g++ -std=c++17 -O2 -DASIO_STANDALONE -Iinclude benchmarks/load/tls_handshakes.cpp
//       -o /tmp/tls_handshakes -lssl -lcrypto -pthread
//   openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost
//       -addext subjectAltName=DNS:localhost -days 2 -keyout key.pem -out cert.pem
//   /tmp/tls_handshakes cert.pem key.pem [connections per round] [rounds]
#include <duplex/duplex.hpp>
#include <duplex/transport/tls.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <pthread.h>
#include <time.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

namespace {

using duplex::transport::tls;

double cpu_seconds(clockid_t clock) {
    timespec t{};
    ::clock_gettime(clock, &t);
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

struct round_result {
    double per_server_cpu_second; // connections
    double server_us_per_connection;
    double client_us_per_connection;
    double wall_per_second;
};

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const std::size_t n = v.size();
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

} // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s CERT.pem KEY.pem [connections per round] [rounds]\n",
                     argv[0]);
        return 2;
    }
    const int per_round = argc > 3 ? std::atoi(argv[3]) : 200;
    const int rounds = argc > 4 ? std::atoi(argv[4]) : 7;

    asio::io_context server_io;
    auto server_work = asio::make_work_guard(server_io);
    auto server_context = tls::server_context(argv[1], argv[2]);
    duplex::server<tls> server(server_io, {}, server_context);
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send(m.type, m.data);
    };
    if (auto ec = server.listen("127.0.0.1", 0)) {
        std::fprintf(stderr, "listen: %s\n", ec.message().c_str());
        return 1;
    }
    std::thread server_thread([&] { server_io.run(); });
    clockid_t server_clock{};
    ::pthread_getcpuclockid(server_thread.native_handle(), &server_clock);

    asio::io_context client_io;
    auto client_work = asio::make_work_guard(client_io);
    std::thread client_thread([&] { client_io.run(); });
    clockid_t client_clock{};
    ::pthread_getcpuclockid(client_thread.native_handle(), &client_clock);

    auto context = tls::client_context();
    context.load_verify_file(argv[1]);
    const std::string url = "wss://localhost:" + std::to_string(server.port()) + "/";

    auto run_round = [&](bool resume) {
        duplex::client_options options;
        options.tls_resumption = resume;
        const double s0 = cpu_seconds(server_clock), c0 = cpu_seconds(client_clock);
        const auto w0 = std::chrono::steady_clock::now();
        for (int i = 0; i < per_round; ++i) {
            auto c = duplex::async_connect<tls>(client_io.get_executor(), url, options, context,
                                                asio::use_future)
                         .get();
            c->send_text("x");
            c->async_read(asio::use_future).get();
            c->async_close(1000, "", asio::use_future).get();
        }
        const double wall =
            std::chrono::duration<double>(std::chrono::steady_clock::now() - w0).count();
        const double server_cpu = cpu_seconds(server_clock) - s0;
        const double client_cpu = cpu_seconds(client_clock) - c0;
        return round_result{per_round / server_cpu, server_cpu / per_round * 1e6,
                            client_cpu / per_round * 1e6, per_round / wall};
    };

    run_round(true); // warm-up: fills the cache, faults pages in
    run_round(false);
    const auto before = context.client_sessions();
    std::vector<double> rate[2], server_us[2], client_us[2], wall[2];
    for (int r = 0; r < rounds; ++r) {
        for (int resume = 0; resume < 2; ++resume) {
            // Alternate which goes first, so that neither always follows the other.
            const bool on = (r % 2 == 0) ? resume == 1 : resume == 0;
            const auto res = run_round(on);
            rate[on].push_back(res.per_server_cpu_second);
            server_us[on].push_back(res.server_us_per_connection);
            client_us[on].push_back(res.client_us_per_connection);
            wall[on].push_back(res.wall_per_second);
        }
    }
    const auto after = context.client_sessions();
    for (int on = 1; on >= 0; --on) {
        auto lo_hi = [](const std::vector<double>& v) {
            return std::make_pair(*std::min_element(v.begin(), v.end()),
                                  *std::max_element(v.begin(), v.end()));
        };
        const auto r = lo_hi(rate[on]), s = lo_hi(server_us[on]), c = lo_hi(client_us[on]),
                   w = lo_hi(wall[on]);
        std::printf("resumption %-3s: %7.0f connections per server CPU-second (%.0f-%.0f); "
                    "server %.0f us (%.0f-%.0f), client %.0f us (%.0f-%.0f) CPU per "
                    "connection; %.0f connections/s wall (%.0f-%.0f)\n",
                    on ? "on" : "off", median(rate[on]), r.first, r.second, median(server_us[on]),
                    s.first, s.second, median(client_us[on]), c.first, c.second, median(wall[on]),
                    w.first, w.second);
    }
    std::printf("handshakes resumed in the measured rounds: %llu of %d offered-on connections\n",
                static_cast<unsigned long long>(after.resumed - before.resumed),
                rounds * per_round);
    std::printf("server session cache entries (SSL_CTX_sess_number): %ld\n",
                ::SSL_CTX_sess_number(server_context.native().native_handle()));

    server.stop(std::chrono::milliseconds(0));
    server_work.reset();
    client_work.reset();
    client_io.stop();
    server_io.stop();
    server_thread.join();
    client_thread.join();
    return 0;
}
