// redis_fanout — cross-process room fan-out through Redis, against in-process rooms.
//
//   redis_fanout --redis URL [--mode fanout|ramp|layout|all] [--nodes N] [--messages M]
//                [--size BYTES] [--duration SECONDS] [--ramp-nodes N] [--layout-nodes N]
//
// fanout (the default): N + 1 redis_backplane instances in this process stand for N + 1 server
//   processes: each has its own subscriber and publisher connections to Redis, so every message
//   really goes publisher -> Redis -> N subscribers. One publishes M messages of BYTES to a
//   room the other N are in. The same run over in_process_backplane (no Redis) is the
//   baseline. Prints, for each: deliveries per second with every message published at once
//   (queued and pipelined), and the one-way latency (publish call to receiver) of messages
//   sent one at a time.
// ramp: one redis_backplane publishes to a room at a fixed rate for SECONDS, the rate doubling
//   each step, until Redis's CPU reaches 90%, the receivers fall behind, the median latency passes
//   50 ms, or the publisher cannot keep the rate. The room has --ramp-nodes receiving nodes
//   (16): one redis_backplane that times every message, and plain connections that only count
//   the bytes they get, so that each costs this program less than it costs Redis.
//   Prints per step: the rate asked and published, the deliveries, Redis's CPU share (from
//   /proc/<pid>/stat; the pid comes from INFO, so Redis must run on this machine), this
//   program's CPU share, and the latency from publish call to the timing receiver.
// layout: the two channel layouts the backplane could use, over plain RESP connections (one
//   per node, as a backplane's subscriber): a channel per room, where a node subscribes to
//   the rooms it has members in, against one channel for all rooms, where every node gets
//   every message and drops those of rooms it has no members in. For 1, 100 and 1,000 rooms,
//   --layout-nodes nodes (8) each in a tenth of the rooms (at least one), M messages spread evenly
//   over the rooms, all published at once. Prints the wanted deliveries per second, Redis's CPU
//   time, and the bytes each node read and the share of them it threw away.
// all: fanout, ramp and layout.
// Nothing is asserted; benchmarks/CMakeLists.txt builds it so it cannot rot, and
// benchmarks/run.sh runs it against a redis-server of its own.
#include <duplex/redis/resp.hpp>
#include <duplex/redis/url.hpp>
#include <duplex/redis_backplane.hpp>
#include <duplex/rooms.hpp>

#include <asio/connect.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <unistd.h>

namespace {

using clock_type = std::chrono::steady_clock;

struct settings {
    std::string redis;
    std::string mode = "fanout";
    std::size_t nodes = 4;
    std::size_t messages = 50000;
    std::size_t size = 64;
    double duration = 2;
    std::size_t ramp_nodes = 16;
    std::size_t layout_nodes = 8;
};

[[noreturn]] void usage(const char* program) {
    std::fprintf(
        stderr,
        "usage: %s --redis URL [--mode fanout|ramp|layout|all] [--nodes N] "
        "[--messages M] [--size BYTES] [--duration SECONDS] [--ramp-nodes N] [--layout-nodes N]\n",
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
        else if (flag == "--mode")
            s.mode = value;
        else if (flag == "--nodes")
            s.nodes = std::max<std::size_t>(1, std::strtoul(value.c_str(), nullptr, 10));
        else if (flag == "--messages")
            s.messages = std::max<std::size_t>(1, std::strtoul(value.c_str(), nullptr, 10));
        else if (flag == "--size")
            s.size = std::max<std::size_t>(8, std::strtoul(value.c_str(), nullptr, 10));
        else if (flag == "--ramp-nodes")
            s.ramp_nodes = std::max<std::size_t>(1, std::strtoul(value.c_str(), nullptr, 10));
        else if (flag == "--layout-nodes")
            s.layout_nodes = std::max<std::size_t>(1, std::strtoul(value.c_str(), nullptr, 10));
        else if (flag == "--duration")
            s.duration = std::max(0.1, std::strtod(value.c_str(), nullptr));
        else
            usage(argv[0]);
    }
    if (s.redis.empty() || argc % 2 == 0) usage(argv[0]);
    if (s.mode != "fanout" && s.mode != "ramp" && s.mode != "layout" && s.mode != "all")
        usage(argv[0]);
    return s;
}

// ---- CPU time, ours and Redis's ----------------------------------------------------------------

// User plus system CPU seconds of a process so far, from /proc; 0 if it cannot be read.
double cpu_seconds(long pid) {
    std::ifstream in("/proc/" + (pid > 0 ? std::to_string(pid) : std::string("self")) + "/stat");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const auto close = text.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(text.substr(close + 2));
    std::string field;
    unsigned long long utime = 0;
    unsigned long long stime = 0;
    // After the name: state is field 3; utime and stime are fields 14 and 15.
    for (int i = 3; i <= 15 && fields >> field; ++i) {
        if (i == 14) utime = std::strtoull(field.c_str(), nullptr, 10);
        if (i == 15) stime = std::strtoull(field.c_str(), nullptr, 10);
    }
    return static_cast<double>(utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
}

// ---- a plain, blocking RESP2 connection --------------------------------------------------------

// For what the backplane does not do: INFO, and the one-channel layout it does not use.
class raw_redis {
public:
    explicit raw_redis(const duplex::redis::redis_url& url) : socket_(io_) {
        asio::ip::tcp::resolver resolver(io_);
        asio::connect(socket_, resolver.resolve(url.host, std::to_string(url.port)));
        socket_.set_option(asio::ip::tcp::no_delay(true));
        if (url.has_password) {
            std::string auth;
            if (url.user.empty())
                duplex::redis::append_command(auth, {"AUTH", url.password});
            else
                duplex::redis::append_command(auth, {"AUTH", url.user, url.password});
            send(auth);
            duplex::redis::resp_value reply;
            next(reply);
        }
    }

    void send(const std::string& bytes) { asio::write(socket_, asio::buffer(bytes)); }

    // The next value; false when the connection ended or the input was not RESP. Counts the
    // bytes of each value in `bytes`.
    bool next(duplex::redis::resp_value& out, std::size_t* bytes = nullptr) {
        for (;;) {
            std::string_view rest(buffer_.data() + used_, size_ - used_);
            const std::size_t before = rest.size();
            const auto progress = parser_.parse(rest, out);
            const std::size_t taken = before - rest.size();
            used_ += taken;
            pending_bytes_ += taken;
            if (progress == duplex::protocol::progress::failed) return false;
            if (progress == duplex::protocol::progress::done) {
                if (bytes != nullptr) *bytes = pending_bytes_;
                pending_bytes_ = 0;
                return true;
            }
            std::error_code ec;
            buffer_.resize(64 * 1024);
            size_ = socket_.read_some(asio::buffer(buffer_), ec);
            used_ = 0;
            if (ec) return false;
        }
    }

    duplex::redis::resp_value command(std::initializer_list<std::string_view> args) {
        std::string bytes;
        duplex::redis::append_command(bytes, args);
        send(bytes);
        duplex::redis::resp_value reply;
        next(reply);
        return reply;
    }

    // Raw bytes, unparsed (a connection used only this way after its first command); 0 when
    // the connection ended.
    std::size_t read_some() {
        std::error_code ec;
        buffer_.resize(64 * 1024);
        const std::size_t n = socket_.read_some(asio::buffer(buffer_), ec);
        return ec ? 0 : n;
    }

    void shutdown() {
        std::error_code ignored;
        socket_.shutdown(asio::ip::tcp::socket::shutdown_both, ignored);
    }

private:
    asio::io_context io_;
    asio::ip::tcp::socket socket_;
    duplex::redis::resp_parser parser_;
    std::string buffer_;
    std::size_t size_ = 0;
    std::size_t used_ = 0;
    std::size_t pending_bytes_ = 0;
};

// Redis's process id, from INFO server (Redis on this machine), or 0.
long redis_pid(const duplex::redis::redis_url& url) {
    raw_redis r(url);
    const auto info = r.command({"INFO", "server"});
    const std::string text(info.string());
    const auto at = text.find("process_id:");
    return at == std::string::npos ? 0 : std::strtol(text.c_str() + at + 11, nullptr, 10);
}

// ---- fanout: all at once, then one at a time
// -----------------------------------------------------

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

bool wait_until(const std::atomic<std::size_t>& value, std::size_t target,
                std::chrono::seconds limit = std::chrono::seconds(120)) {
    const auto deadline = clock_type::now() + limit;
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

// Attaches every plane, subscribes all but the first to "bench", and publishes until one
// message reached every receiver (subscriptions are in place); the node ids.
std::vector<std::uint64_t> attach_all(const std::vector<std::shared_ptr<duplex::backplane>>& planes,
                                      tally& t, std::atomic<bool>& timed, std::size_t size) {
    std::vector<std::uint64_t> ids;
    for (std::size_t i = 0; i < planes.size(); ++i) {
        ids.push_back(planes[i]->attach(
            [&t, &timed](const duplex::backplane_message& m) { record(t, m, timed.load()); }));
        if (i > 0) planes[i]->subscribe(ids.back(), "bench");
    }
    duplex::backplane_message m;
    m.origin = ids[0];
    m.room = "bench";
    m.type = duplex::opcode::binary;
    for (;;) {
        m.payload = std::string(size, 'w');
        planes[0]->publish(m);
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (t.received.load() >= planes.size() - 1) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    t.received.store(0);
    return ids;
}

// Publishers and subscribers on `planes` (index 0 publishes); prints one table row.
void run(const char* name, const std::vector<std::shared_ptr<duplex::backplane>>& planes,
         const settings& s) {
    tally t;
    std::atomic<bool> timed{false};
    const std::vector<std::uint64_t> ids = attach_all(planes, t, timed, s.size);
    const std::size_t receivers = planes.size() - 1;
    duplex::backplane_message m;
    m.origin = ids[0];
    m.room = "bench";
    m.type = duplex::opcode::binary;

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

// N + 1 Redis backplanes, each up; empty if Redis cannot be reached.
std::vector<std::shared_ptr<duplex::redis_backplane>>
redis_planes(asio::io_context& io, const settings& s, std::size_t queue) {
    std::vector<std::shared_ptr<duplex::redis_backplane>> planes;
    for (std::size_t i = 0; i <= s.nodes; ++i) {
        duplex::redis_backplane_options o;
        o.url = s.redis;
        o.max_queued_messages = queue + 16;
        o.max_queued_bytes = (queue + 16) * (s.size + 128);
        planes.push_back(std::make_shared<duplex::redis_backplane>(io.get_executor(), o));
    }
    for (auto& p : planes) {
        const auto deadline = clock_type::now() + std::chrono::seconds(30);
        while (p->state() != duplex::redis_state::up && clock_type::now() < deadline)
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        if (p->state() != duplex::redis_state::up) {
            std::fprintf(stderr, "redis_fanout: cannot reach %s: %s\n", s.redis.c_str(),
                         p->last_error().message().c_str());
            return {};
        }
    }
    return planes;
}

bool fanout(asio::io_context& io, const settings& s) {
    std::printf("| backplane | receiving nodes | messages | size | deliveries/s | p50 latency "
                "(us) | p99 latency (us) |\n|---|---|---|---|---|---|---|\n");
    {
        auto local = std::make_shared<duplex::in_process_backplane>();
        run("in-process", std::vector<std::shared_ptr<duplex::backplane>>(s.nodes + 1, local), s);
    }
    const auto redis = redis_planes(io, s, s.messages);
    if (redis.empty()) return false;
    run("Redis (one process each)",
        std::vector<std::shared_ptr<duplex::backplane>>(redis.begin(), redis.end()), s);
    std::printf("\n");
    return true;
}

// ---- ramp: a fixed publish rate, doubled until something gives ---------------------------------

// A receiving node that only counts the bytes Redis sends it: no parsing, so that it costs
// this program less than it costs Redis, and the ramp loads Redis more than itself.
struct sink {
    std::unique_ptr<raw_redis> connection;
    std::atomic<std::size_t> bytes{0};
    std::thread reader;
};

// The bytes of one pushed message on `channel` whose envelope has `body_size` bytes.
std::size_t pushed_size(std::string_view channel, std::size_t body_size) {
    duplex::redis::resp_value v;
    v.type = duplex::redis::resp_type::array;
    for (const std::string& part :
         {std::string("message"), std::string(channel), std::string(body_size, 'x')}) {
        duplex::redis::resp_value e;
        e.type = duplex::redis::resp_type::bulk_string;
        e.text = part;
        v.elements.push_back(e);
    }
    std::string bytes;
    duplex::redis::append_value(bytes, v);
    return bytes.size();
}

bool ramp(asio::io_context& io, const settings& s, long pid) {
    duplex::redis::redis_url url;
    if (duplex::redis::parse_redis_url(s.redis, url) || url.secure) {
        std::fprintf(stderr, "redis_fanout: ramp needs a redis:// URL\n");
        return false;
    }
    const std::string channel = "duplex:room:bench";
    std::vector<std::unique_ptr<sink>> sinks;
    for (std::size_t i = 1; i < s.ramp_nodes; ++i) {
        auto k = std::make_unique<sink>();
        k->connection = std::make_unique<raw_redis>(url);
        k->connection->command({"SUBSCRIBE", channel});
        auto* raw = k.get();
        k->reader = std::thread([raw] {
            std::size_t n = 0;
            while ((n = raw->connection->read_some()) > 0) raw->bytes.fetch_add(n);
        });
        sinks.push_back(std::move(k));
    }
    settings one = s;
    one.nodes = 1;
    const auto redis = redis_planes(io, one, 1000000);
    if (redis.empty()) return false;
    const std::vector<std::shared_ptr<duplex::backplane>> planes(redis.begin(), redis.end());
    tally t;
    std::atomic<bool> timed{false};
    const std::vector<std::uint64_t> ids = attach_all(planes, t, timed, s.size);
    timed.store(true);
    const std::size_t frame =
        pushed_size(channel, duplex::redis_envelope::header_size + 5 + s.size);
    auto sink_bytes = [&] {
        std::size_t total = 0;
        for (const auto& k : sinks) total += k->bytes.load();
        return total;
    };
    auto delivered = [&](std::size_t sink_base) {
        return t.received.load() + (sink_bytes() - sink_base) / frame;
    };

    std::printf("| publishes/s asked | published/s | deliveries/s | Redis CPU | redis_fanout CPU | "
                "p50 latency (us) | p99 latency (us) |\n|---|---|---|---|---|---|---|\n");
    duplex::backplane_message m;
    m.origin = ids[0];
    m.room = "bench";
    m.type = duplex::opcode::binary;
    for (double rate = 2000; rate <= 1e7; rate *= 2) {
        t.received.store(0);
        {
            std::lock_guard<std::mutex> lock(t.m);
            t.latencies_us.clear();
        }
        const std::size_t sink_base = sink_bytes();
        const double redis_before = cpu_seconds(pid);
        const double self_before = cpu_seconds(0);
        const auto start = clock_type::now();
        const auto end = start + std::chrono::duration_cast<clock_type::duration>(
                                     std::chrono::duration<double>(s.duration));
        // Publishes in 1 ms slices: as many as the rate says should be out by now.
        std::size_t sent = 0;
        for (auto now = start; now < end; now = clock_type::now()) {
            const auto due =
                static_cast<std::size_t>(rate * std::chrono::duration<double>(now - start).count());
            for (; sent < due; ++sent) {
                m.payload = stamped(s.size);
                planes[0]->publish(m);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        }
        const double publish_seconds =
            std::chrono::duration<double>(clock_type::now() - start).count();
        // What is later than a second after the last publish counts as not delivered.
        const std::size_t target = sent * s.ramp_nodes;
        const auto grace = clock_type::now() + std::chrono::seconds(1);
        while (delivered(sink_base) < target && clock_type::now() < grace)
            std::this_thread::sleep_for(std::chrono::microseconds(200));
        const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
        const double redis_cpu = (cpu_seconds(pid) - redis_before) / seconds;
        const double self_cpu = (cpu_seconds(0) - self_before) / seconds;
        const std::size_t got = delivered(sink_base);
        std::vector<double> latencies;
        {
            std::lock_guard<std::mutex> lock(t.m);
            latencies = t.latencies_us;
        }
        const double p50 = percentile(latencies, 0.5);
        const double p99 = percentile(latencies, 0.99);
        const double published = static_cast<double>(sent) / publish_seconds;
        std::printf("| %.0f | %.0f | %.0f | %.0f%% | %.0f%% | %.0f | %.0f |\n", rate, published,
                    static_cast<double>(got) / seconds, redis_cpu * 100, self_cpu * 100, p50, p99);
        std::fflush(stdout);
        // Let the backlog of a step that fell behind drain before the next one.
        const auto drain = clock_type::now() + std::chrono::seconds(30);
        while (delivered(sink_base) < target && clock_type::now() < drain)
            std::this_thread::sleep_for(std::chrono::milliseconds(1));
        if (redis_cpu >= 0.9 || got < target * 9 / 10 || p50 > 50000 || published < rate * 0.9)
            break;
    }
    std::printf("\n");
    for (std::size_t i = 0; i < planes.size(); ++i) planes[i]->detach(ids[i]);
    for (auto& k : sinks) {
        k->connection->shutdown();
        k->reader.join();
    }
    return true;
}

// ---- layout: a channel per room against one channel for all -----------------------------------

struct layout_result {
    double wanted_per_second = 0;
    double redis_cpu_seconds = 0;
    double bytes_per_node = 0;
    double discarded_share = 0;
    bool complete = true;
};

layout_result run_layout(const duplex::redis::redis_url& url, long pid, const settings& s,
                         std::size_t rooms, bool per_room) {
    const std::size_t nodes = s.layout_nodes;
    const std::size_t per_node = std::max<std::size_t>(1, rooms / 10);
    const std::string prefix = "duplex-bench:";
    auto channel_of = [&](std::size_t room) {
        return per_room ? prefix + "room:r" + std::to_string(room) : prefix + "all";
    };
    // Each node's rooms: a tenth of them, drawn with a fixed seed.
    std::mt19937 rng(42);
    std::vector<std::set<std::string>> node_rooms(nodes);
    std::vector<std::size_t> raw_expected(nodes, 0);
    std::vector<std::size_t> wanted_expected(nodes, 0);
    for (std::size_t n = 0; n < nodes; ++n) {
        std::vector<std::size_t> all(rooms);
        std::iota(all.begin(), all.end(), 0);
        std::shuffle(all.begin(), all.end(), rng);
        for (std::size_t i = 0; i < per_node; ++i)
            node_rooms[n].insert("r" + std::to_string(all[i]));
        // Message i goes to room i % rooms.
        for (std::size_t room = 0; room < rooms; ++room) {
            const std::size_t count = s.messages / rooms + (room < s.messages % rooms ? 1 : 0);
            if (node_rooms[n].count("r" + std::to_string(room)) != 0) wanted_expected[n] += count;
        }
        raw_expected[n] = per_room ? wanted_expected[n] : s.messages;
    }

    // The subscribers, each confirmed before anything is published.
    std::vector<std::unique_ptr<raw_redis>> subscribers;
    for (std::size_t n = 0; n < nodes; ++n) {
        subscribers.push_back(std::make_unique<raw_redis>(url));
        std::set<std::string> channels;
        for (std::size_t room = 0; room < rooms; ++room)
            if (node_rooms[n].count("r" + std::to_string(room)) != 0)
                channels.insert(channel_of(room));
        std::vector<std::string> command{"SUBSCRIBE"};
        command.insert(command.end(), channels.begin(), channels.end());
        std::string bytes;
        duplex::redis::append_command(bytes, command);
        subscribers.back()->send(bytes);
        duplex::redis::resp_value reply;
        for (std::size_t i = 0; i < channels.size(); ++i) subscribers.back()->next(reply);
    }
    std::vector<std::size_t> bytes(nodes, 0);
    std::vector<std::size_t> discarded(nodes, 0);
    std::vector<std::size_t> wanted(nodes, 0);
    std::atomic<std::size_t> done{0};
    std::vector<std::thread> readers;
    for (std::size_t n = 0; n < nodes; ++n)
        readers.emplace_back([&, n] {
            duplex::redis::resp_value v;
            duplex::backplane_message m;
            std::size_t raw = 0;
            std::size_t size = 0;
            while (raw < raw_expected[n] && subscribers[n]->next(v, &size)) {
                if (v.elements.size() != 3 || v.elements[0].string() != "message") continue;
                ++raw;
                bytes[n] += size;
                if (duplex::redis_envelope::parse(v.elements[2].string(), m) &&
                    node_rooms[n].count(m.room) != 0)
                    ++wanted[n];
                else
                    discarded[n] += size;
            }
            done.fetch_add(1);
        });

    // The publisher: every PUBLISH at once, pipelined; its replies read beside it.
    raw_redis publisher(url);
    std::string commands;
    duplex::backplane_message m;
    m.origin = 1;
    m.type = duplex::opcode::binary;
    m.payload = std::string(s.size, 'x');
    for (std::size_t i = 0; i < s.messages; ++i) {
        m.room = "r" + std::to_string(i % rooms);
        std::string body;
        duplex::redis_envelope::append(body, m);
        duplex::redis::append_command(commands, {"PUBLISH", channel_of(i % rooms), body});
    }
    const double redis_before = cpu_seconds(pid);
    const auto start = clock_type::now();
    std::thread replies([&] {
        duplex::redis::resp_value v;
        for (std::size_t i = 0; i < s.messages && publisher.next(v);) ++i;
    });
    publisher.send(commands);
    replies.join();
    layout_result r;
    // Readers end when they have all their node should get; one that never will (Redis
    // dropped it) is let go after a minute.
    const auto deadline = start + std::chrono::seconds(60);
    while (done.load() < nodes && clock_type::now() < deadline)
        std::this_thread::sleep_for(std::chrono::microseconds(200));
    const auto finished = clock_type::now();
    if (done.load() < nodes) {
        r.complete = false;
        for (auto& subscriber : subscribers) subscriber->shutdown();
    }
    for (auto& reader : readers) reader.join();
    const double seconds = std::chrono::duration<double>(finished - start).count();
    r.redis_cpu_seconds = cpu_seconds(pid) - redis_before;
    std::size_t total_wanted = 0;
    std::size_t total_bytes = 0;
    std::size_t total_discarded = 0;
    for (std::size_t n = 0; n < nodes; ++n) {
        total_wanted += wanted[n];
        total_bytes += bytes[n];
        total_discarded += discarded[n];
    }
    r.wanted_per_second = static_cast<double>(total_wanted) / seconds;
    r.bytes_per_node = static_cast<double>(total_bytes) / static_cast<double>(nodes);
    r.discarded_share =
        total_bytes == 0 ? 0
                         : static_cast<double>(total_discarded) / static_cast<double>(total_bytes);
    return r;
}

bool layout(const settings& s, long pid) {
    duplex::redis::redis_url url;
    if (duplex::redis::parse_redis_url(s.redis, url) || url.secure) {
        std::fprintf(stderr, "redis_fanout: layout needs a redis:// URL\n");
        return false;
    }
    std::printf(
        "| layout | nodes | rooms | rooms per node | messages | wanted deliveries/s | Redis "
        "CPU (ms) | bytes read per node | of them thrown away |\n"
        "|---|---|---|---|---|---|---|---|---|\n");
    for (const std::size_t rooms : {std::size_t{1}, std::size_t{100}, std::size_t{1000}}) {
        for (const bool per_room : {true, false}) {
            const layout_result r = run_layout(url, pid, s, rooms, per_room);
            std::printf("| %s | %zu | %zu | %zu | %zu | %.0f%s | %.0f | %.1f MB | %.0f%% |\n",
                        per_room ? "a channel per room" : "one channel", s.layout_nodes, rooms,
                        std::max<std::size_t>(1, rooms / 10), s.messages, r.wanted_per_second,
                        r.complete ? "" : " (incomplete)", r.redis_cpu_seconds * 1000,
                        r.bytes_per_node / 1e6, r.discarded_share * 100);
            std::fflush(stdout);
        }
    }
    std::printf("\n");
    return true;
}

} // namespace

int main(int argc, char** argv) {
    const settings s = parse(argc, argv);
    duplex::redis::redis_url url;
    long pid = 0;
    if (!duplex::redis::parse_redis_url(s.redis, url) && !url.secure) {
        try {
            pid = redis_pid(url);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "redis_fanout: cannot reach %s: %s\n", s.redis.c_str(), e.what());
            return 1;
        }
    }
    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::thread thread([&] { io.run(); });
    bool ok = true;
    if (ok && (s.mode == "fanout" || s.mode == "all")) ok = fanout(io, s);
    if (ok && (s.mode == "ramp" || s.mode == "all")) ok = ramp(io, s, pid);
    if (ok && (s.mode == "layout" || s.mode == "all")) ok = layout(s, pid);
    work.reset();
    io.stop();
    thread.join();
    return ok ? 0 : 1;
}
