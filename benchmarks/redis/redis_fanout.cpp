// redis_fanout — cross-process room fan-out through Redis, against in-process rooms.
//
//   redis_fanout --redis redis://127.0.0.1:6379/0 [--nodes N] [--messages M] [--size BYTES]
//
// N + 1 redis_backplane instances in this process stand for N + 1 server processes: each
// has its own subscriber and publisher connections to Redis, so every message really goes
// publisher -> Redis -> N subscribers. One publishes M messages of BYTES to a room the other
// N are in. The same run over in_process_backplane (no Redis) is the baseline. Prints, for
// each: deliveries per second with every message published at once (queued and pipelined),
// and the one-way latency (publish call to receiver) of messages sent one at a time.
// Nothing is asserted; benchmarks/CMakeLists.txt runs it briefly so it cannot rot.
#include <duplex/redis_backplane.hpp>
#include <duplex/rooms.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using clock_type = std::chrono::steady_clock;

struct settings {
    std::string redis;
    std::size_t nodes = 4;
    std::size_t messages = 50000;
    std::size_t size = 64;
};

[[noreturn]] void usage(const char* program) {
    std::fprintf(stderr, "usage: %s --redis URL [--nodes N] [--messages M] [--size BYTES]\n",
                 program);
    std::exit(2);
}

settings parse(int argc, char** argv) {
    settings s;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        const std::string value = argv[i + 1];
        if (flag == "--redis")
            s.redis = value;
        else if (flag == "--nodes")
            s.nodes = std::max<std::size_t>(1, std::strtoul(value.c_str(), nullptr, 10));
        else if (flag == "--messages")
            s.messages = std::max<std::size_t>(1, std::strtoul(value.c_str(), nullptr, 10));
        else if (flag == "--size")
            s.size = std::max<std::size_t>(8, std::strtoul(value.c_str(), nullptr, 10));
        else
            usage(argv[0]);
    }
    if (s.redis.empty() || argc % 2 == 0) usage(argv[0]);
    return s;
}

// What the receivers saw: a count, and one-way latencies when the payload carries a time.
struct tally {
    std::atomic<std::size_t> received{0};
    std::mutex m;
    std::vector<double> latencies_us;
};

std::string stamped(std::size_t size) {
    std::string payload(size, 'x');
    const auto now = clock_type::now().time_since_epoch().count();
    std::memcpy(payload.data(), &now, sizeof now);
    return payload;
}

void record(tally& t, const duplex::backplane_message& m, bool timed) {
    if (timed && m.payload.size() >= sizeof(clock_type::rep)) {
        clock_type::rep sent = 0;
        std::memcpy(&sent, m.payload.data(), sizeof sent);
        const auto now = clock_type::now().time_since_epoch().count();
        const double us =
            std::chrono::duration<double, std::micro>(clock_type::duration(now - sent)).count();
        std::lock_guard<std::mutex> lock(t.m);
        t.latencies_us.push_back(us);
    }
    t.received.fetch_add(1);
}

bool wait_until(const std::atomic<std::size_t>& value, std::size_t target) {
    const auto deadline = clock_type::now() + std::chrono::seconds(120);
    while (value.load() < target) {
        if (clock_type::now() > deadline) return false;
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    return true;
}

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[std::min(v.size() - 1, static_cast<std::size_t>(p * static_cast<double>(v.size())))];
}

// Publishers and subscribers on `planes` (index 0 publishes); prints one table row.
void run(const char* name, const std::vector<std::shared_ptr<duplex::backplane>>& planes,
         const settings& s) {
    tally t;
    std::atomic<bool> timed{false};
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 0; i < planes.size(); ++i) {
        ids.push_back(planes[i]->attach(
            [&t, &timed](const duplex::backplane_message& m) { record(t, m, timed.load()); }));
        if (i > 0) planes[i]->subscribe(ids.back(), "bench");
    }
    const std::size_t receivers = planes.size() - 1;
    duplex::backplane_message m;
    m.origin = ids[0];
    m.room = "bench";
    m.type = duplex::opcode::binary;

    // Warm-up: until one message reaches every receiver, subscriptions are in place.
    for (;;) {
        m.payload = std::string(s.size, 'w');
        planes[0]->publish(m);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (t.received.load() >= receivers) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    t.received.store(0);

    // Throughput: everything at once.
    const auto start = clock_type::now();
    m.payload = std::string(s.size, 'x');
    for (std::size_t i = 0; i < s.messages; ++i) planes[0]->publish(m);
    const bool all = wait_until(t.received, s.messages * receivers);
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    const double per_second = static_cast<double>(t.received.load()) / seconds;

    // Latency: one message at a time, each waited for at every receiver.
    t.received.store(0);
    timed.store(true);
    const std::size_t samples = std::min<std::size_t>(2000, s.messages);
    for (std::size_t i = 0; i < samples; ++i) {
        m.payload = stamped(s.size);
        planes[0]->publish(m);
        if (!wait_until(t.received, (i + 1) * receivers)) break;
    }
    std::vector<double> latencies;
    {
        std::lock_guard<std::mutex> lock(t.m);
        latencies = t.latencies_us;
    }
    std::printf("| %s | %zu | %zu | %zu B | %.0f%s | %.1f | %.1f |\n", name, receivers, s.messages,
                s.size, per_second, all ? "" : " (incomplete)", percentile(latencies, 0.5),
                percentile(latencies, 0.99));
    std::fflush(stdout);
    for (std::size_t i = 0; i < planes.size(); ++i) planes[i]->detach(ids[i]);
}

} // namespace

int main(int argc, char** argv) {
    const settings s = parse(argc, argv);
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread thread([&] { io.run(); });

    std::printf("| backplane | receiving nodes | messages | size | deliveries/s | p50 latency "
                "(us) | p99 latency (us) |\n|---|---|---|---|---|---|---|\n");
    {
        auto local = std::make_shared<duplex::in_process_backplane>();
        run("in-process", std::vector<std::shared_ptr<duplex::backplane>>(s.nodes + 1, local), s);
    }
    {
        std::vector<std::shared_ptr<duplex::backplane>> planes;
        std::vector<std::shared_ptr<duplex::redis_backplane>> redis;
        for (std::size_t i = 0; i <= s.nodes; ++i) {
            duplex::redis_backplane_options o;
            o.url = s.redis;
            o.max_queued_messages = s.messages + 16;
            o.max_queued_bytes = (s.messages + 16) * (s.size + 128);
            redis.push_back(std::make_shared<duplex::redis_backplane>(io.get_executor(), o));
            planes.push_back(redis.back());
        }
        for (auto& p : redis) {
            const auto deadline = clock_type::now() + std::chrono::seconds(30);
            while (p->state() != duplex::redis_state::up && clock_type::now() < deadline)
                std::this_thread::sleep_for(std::chrono::milliseconds(5));
            if (p->state() != duplex::redis_state::up) {
                std::fprintf(stderr, "redis_fanout: cannot reach %s: %s\n", s.redis.c_str(),
                             p->last_error().message().c_str());
                work.reset();
                io.stop();
                thread.join();
                return 1;
            }
        }
        run("Redis (one process each)", planes, s);
    }
    work.reset();
    io.stop();
    thread.join();
    return 0;
}
