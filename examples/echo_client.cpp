// echo_client — sends messages to a WebSocket server and prints the replies and round trips.
//
//   echo_client [URL] [--count N --size BYTES] [--ca FILE] [--insecure]
//
// Default URL ws://127.0.0.1:9001/. Without --count it sends each line read from stdin as a
// text message; with it, N binary messages of BYTES bytes. For wss:// the server certificate
// and host name are verified against the system store (or --ca FILE); --insecure turns that
// off, for local testing only.
#include <duplex/duplex.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <chrono>
#include <cstdio>
#include <future>
#include <iostream>
#include <string>
#include <thread>

namespace {

struct arguments {
    std::string url = "ws://127.0.0.1:9001/";
    std::size_t count = 0;
    std::size_t size = 32;
    std::string ca_file;
    bool insecure = false;
};

arguments parse(int argc, char** argv) {
    arguments a;
    for (int i = 1; i < argc; ++i) {
        const std::string arg = argv[i];
        auto value = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", arg.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (arg == "--count")
            a.count = std::stoul(value());
        else if (arg == "--size")
            a.size = std::stoul(value());
        else if (arg == "--ca")
            a.ca_file = value();
        else if (arg == "--insecure")
            a.insecure = true;
        else if (arg.rfind("--", 0) == 0) {
            std::fprintf(stderr,
                         "usage: %s [URL] [--count N --size BYTES] [--ca FILE] [--insecure]\n",
                         argv[0]);
            std::exit(2);
        } else
            a.url = arg;
    }
    return a;
}

template <class Transport>
int run(const arguments& args, typename Transport::context_type context) {
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread runner([&] { io.run(); });
    auto finish = [&](int status) {
        work.reset();
        io.stop();
        runner.join();
        return status;
    };

    duplex::client_options options;
    std::shared_ptr<duplex::connection<Transport>> connection;
    try {
        connection = duplex::async_connect<Transport>(io.get_executor(), args.url, options, context,
                                                      asio::use_future)
                         .get();
    } catch (const std::system_error& e) {
        std::fprintf(stderr, "cannot connect to %s: %s\n", args.url.c_str(), e.what());
        return finish(1);
    }
    std::printf("connected to %s\n", args.url.c_str());

    auto round_trip = [&](duplex::opcode type, const std::string& payload) -> bool {
        const auto start = std::chrono::steady_clock::now();
        try {
            connection->async_send(type, payload, asio::use_future).get();
            const duplex::message reply = connection->async_read(asio::use_future).get();
            const auto micros = std::chrono::duration_cast<std::chrono::microseconds>(
                                    std::chrono::steady_clock::now() - start)
                                    .count();
            if (reply.is_text())
                std::printf("< %s  (%lld us)\n", reply.data.c_str(),
                            static_cast<long long>(micros));
            else
                std::printf("< %zu bytes  (%lld us)\n", reply.data.size(),
                            static_cast<long long>(micros));
            return true;
        } catch (const std::system_error& e) {
            const auto& how = connection->result();
            std::fprintf(stderr, "connection ended: %s (close code %u%s%s)\n", e.what(),
                         static_cast<unsigned>(how.code), how.reason.empty() ? "" : ", ",
                         how.reason.c_str());
            return false;
        }
    };

    bool ok = true;
    if (args.count > 0) {
        const std::string payload(args.size, 'x');
        for (std::size_t i = 0; i < args.count && ok; ++i)
            ok = round_trip(duplex::opcode::binary, payload);
    } else {
        std::string line;
        while (ok && std::getline(std::cin, line)) ok = round_trip(duplex::opcode::text, line);
    }
    if (ok) {
        try {
            connection->async_close(1000, "bye", asio::use_future).get();
        } catch (const std::system_error&) {
        }
    }
    return finish(ok ? 0 : 1);
}

} // namespace

int main(int argc, char** argv) {
    const arguments args = parse(argc, argv);
    if (args.url.rfind("wss:", 0) != 0 && args.url.rfind("WSS:", 0) != 0)
        return run<duplex::transport::tcp>(args, {});
#if defined(DUPLEX_ENABLE_TLS)
    auto context = args.insecure ? duplex::transport::tls::client_context_insecure()
                                 : duplex::transport::tls::client_context();
    if (!args.ca_file.empty()) context.ssl->load_verify_file(args.ca_file);
    return run<duplex::transport::tls>(args, std::move(context));
#else
    std::fprintf(stderr, "this build has no TLS support (configure with OpenSSL)\n");
    return 1;
#endif
}
