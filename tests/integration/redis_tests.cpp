// duplex::redis_backplane against a real redis-server (Debian's `redis-server`), never a mock.
// Each test starts its own server on a free loopback port with a temporary directory and no
// persistence, and stops it at the end; a test that cannot find redis-server reports itself
// skipped (CI requires these tests, see scripts/required_tests.txt).
//
// A "process" here is one redis_backplane: each has its own subscriber and publisher
// connections to Redis, exactly as separate server processes would, so messages between
// them really cross Redis. Handlers only record; the test thread asserts after waiting.
#include "catch.hpp"

#include <duplex/redis_backplane.hpp>
#include <duplex/rooms.hpp>
#include <duplex/transport/memory.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <sys/prctl.h>
#endif
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

using namespace std::chrono_literals;
using duplex::redis_backplane;
using duplex::redis_backplane_options;
using duplex::redis_state;

namespace {

// DUPLEX_REDIS_SERVER names the binary; otherwise it is looked up in PATH.
std::string find_redis_server() {
    if (const char* env = std::getenv("DUPLEX_REDIS_SERVER"); env != nullptr && *env != '\0')
        return ::access(env, X_OK) == 0 ? std::string(env) : std::string();
    const char* path = std::getenv("PATH");
    const std::string dirs = path != nullptr ? path : "/usr/bin:/usr/sbin";
    std::size_t at = 0;
    while (at <= dirs.size()) {
        const std::size_t end = std::min(dirs.find(':', at), dirs.size());
        std::string candidate = dirs.substr(at, end - at) + "/redis-server";
        if (end > at && ::access(candidate.c_str(), X_OK) == 0) return candidate;
        at = end + 1;
    }
    return {};
}

std::uint16_t free_port() {
    asio::io_context io;
    asio::ip::tcp::acceptor acceptor(io, {asio::ip::make_address("127.0.0.1"), 0});
    return acceptor.local_endpoint().port();
}

template <class Predicate>
bool wait_for(Predicate done, std::chrono::seconds limit = 30s) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (!done()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(5ms);
    }
    return true;
}

// A redis-server child process on 127.0.0.1:port, no persistence, in its own temp directory.
class redis_server {
public:
    explicit redis_server(std::string binary, std::vector<std::string> extra = {})
        : binary_(std::move(binary)), extra_(std::move(extra)), port_(free_port()) {
        char dir_template[] = "/tmp/duplex-redis-XXXXXX";
        if (::mkdtemp(dir_template) != nullptr) dir_ = dir_template;
    }
    ~redis_server() {
        stop();
        if (!dir_.empty()) {
            for (const char* file : {"/redis.log", "/cert.pem", "/key.pem"})
                std::remove((dir_ + file).c_str());
            ::rmdir(dir_.c_str());
        }
    }

    std::uint16_t port() const { return port_; }
    const std::string& dir() const { return dir_; }
    // Arguments for the next start().
    std::vector<std::string>& extra_arguments() { return extra_; }
    std::string url(const std::string& userinfo = "", int db = 0) const {
        return "redis://" + userinfo + "127.0.0.1:" + std::to_string(port_) + "/" +
               std::to_string(db);
    }

    // True once it accepts connections.
    bool start() {
        if (dir_.empty()) return false;
        std::vector<std::string> args{binary_,
                                      "--port",
                                      std::to_string(port_),
                                      "--bind",
                                      "127.0.0.1",
                                      "--save",
                                      "",
                                      "--appendonly",
                                      "no",
                                      "--daemonize",
                                      "no",
                                      "--dir",
                                      dir_,
                                      "--logfile",
                                      dir_ + "/redis.log"};
        args.insert(args.end(), extra_.begin(), extra_.end());
        pid_ = ::fork();
        if (pid_ == 0) {
#if defined(__linux__)
            // Dies with the test, even when the test crashes before its destructor runs.
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(argv[0], argv.data());
            std::_Exit(127);
        }
        if (pid_ < 0) return false;
        return wait_for([&] { return accepts(); }, 20s);
    }

    // SIGKILL: a crash, not a shutdown; clients see their connections reset.
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    // SIGSTOP / SIGCONT: a frozen server, or a network that silently stopped carrying packets:
    // connections stay open and nothing answers.
    void freeze() {
        if (pid_ > 0) ::kill(pid_, SIGSTOP);
    }
    void thaw() {
        if (pid_ > 0) ::kill(pid_, SIGCONT);
    }

private:
    bool accepts() const {
        asio::io_context io;
        asio::ip::tcp::socket socket(io);
        std::error_code ec;
        socket.connect({asio::ip::make_address("127.0.0.1"), port_}, ec);
        return !ec;
    }

    std::string binary_;
    std::vector<std::string> extra_;
    std::uint16_t port_;
    std::string dir_;
    pid_t pid_ = -1;
};

// io threads for the backplanes, stopped and joined at the end of the test.
struct io_threads {
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work{io.get_executor()};
    std::vector<std::thread> threads;
    explicit io_threads(int n = 2) {
        for (int i = 0; i < n; ++i) threads.emplace_back([this] { io.run(); });
    }
    ~io_threads() {
        work.reset();
        io.stop();
        for (auto& t : threads) t.join();
    }
};

// What one node received, and the states its backplane went through.
struct recorder {
    std::mutex m;
    std::vector<duplex::backplane_message> messages;
    std::vector<std::pair<redis_state, std::error_code>> states;

    void add(const duplex::backplane_message& message) {
        std::lock_guard<std::mutex> lock(m);
        messages.push_back(message);
    }
    std::size_t size() {
        std::lock_guard<std::mutex> lock(m);
        return messages.size();
    }
    std::vector<duplex::backplane_message> copy() {
        std::lock_guard<std::mutex> lock(m);
        return messages;
    }
    void on_state(redis_state s, std::error_code ec) {
        std::lock_guard<std::mutex> lock(m);
        states.emplace_back(s, ec);
    }
    bool saw(redis_state s, std::error_code ec) {
        std::lock_guard<std::mutex> lock(m);
        for (const auto& entry : states)
            if (entry.first == s && entry.second == ec) return true;
        return false;
    }
};

redis_backplane_options quick_options(const std::string& url, recorder* states = nullptr) {
    redis_backplane_options o;
    o.url = url;
    o.reconnect_min = 20ms;
    o.reconnect_max = 200ms;
    o.ping_interval = 500ms;
    if (states != nullptr)
        o.on_state = [states](redis_state s, std::error_code ec) { states->on_state(s, ec); };
    return o;
}

duplex::backplane_message make_message(std::uint64_t origin, std::string room, std::string payload,
                                       duplex::opcode type = duplex::opcode::text) {
    duplex::backplane_message m;
    m.origin = origin;
    m.room = std::move(room);
    m.type = type;
    m.payload = std::move(payload);
    return m;
}

std::string redis_or_skip() { return find_redis_server(); }

#define REQUIRE_REDIS(binary)                                                                      \
    const std::string binary = redis_or_skip();                                                    \
    if (binary.empty()) DUPLEX_SKIP("redis-server not found (apt-get install redis-server)")

// A room member on the memory transport: the server end is what joins rooms, and its client
// end records every message it receives.
struct recorded_member {
    using connection_type = duplex::connection<duplex::transport::memory>;
    std::shared_ptr<connection_type> member;
    std::shared_ptr<connection_type> reader;
    recorder got;

    explicit recorded_member(const asio::any_io_executor& executor) {
        duplex::connection_options quiet;
        quiet.ping_interval = 0ms;
        auto [server_end, client_end] = duplex::transport::memory::make_pair(executor);
        member = std::make_shared<connection_type>(std::move(server_end),
                                                   duplex::protocol::role::server, quiet);
        reader = std::make_shared<connection_type>(std::move(client_end),
                                                   duplex::protocol::role::client, quiet);
        duplex::connection_handlers<connection_type> h;
        h.on_message = [this](auto&, const duplex::message_view& m) {
            got.add(make_message(0, "", std::string(m.data), m.type));
        };
        member->start({});
        reader->start(std::move(h));
    }
    recorded_member(const recorded_member&) = delete;
    recorded_member& operator=(const recorded_member&) = delete;
};

} // namespace

TEST_CASE("Redis backplane: three processes deliver to each other in publish order, never to "
          "themselves",
          "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;

    constexpr int processes = 3;
    constexpr int per_publisher = 300;
    std::vector<std::shared_ptr<redis_backplane>> planes;
    std::vector<std::unique_ptr<recorder>> received;
    std::vector<std::uint64_t> nodes;
    for (int i = 0; i < processes; ++i) {
        received.push_back(std::make_unique<recorder>());
        planes.push_back(
            std::make_shared<redis_backplane>(io.io.get_executor(), quick_options(server.url())));
        auto* r = received.back().get();
        nodes.push_back(
            planes.back()->attach([r](const duplex::backplane_message& m) { r->add(m); }));
        planes.back()->subscribe(nodes.back(), "lobby");
    }
    for (auto& p : planes) {
        // Up, and Redis confirmed both channels: the room's and the one for everyone.
        REQUIRE(
            wait_for([&] { return p->state() == redis_state::up && p->counters().channels == 2; }));
    }

    std::vector<std::thread> publishers;
    for (int i = 0; i < processes; ++i)
        publishers.emplace_back([&, i] {
            for (int n = 0; n < per_publisher; ++n)
                planes[static_cast<std::size_t>(i)]->publish(
                    make_message(nodes[static_cast<std::size_t>(i)], "lobby", std::to_string(n)));
        });
    for (auto& t : publishers) t.join();

    const std::size_t expected = static_cast<std::size_t>((processes - 1) * per_publisher);
    for (int i = 0; i < processes; ++i) {
        INFO("process " << i);
        auto& r = *received[static_cast<std::size_t>(i)];
        REQUIRE(wait_for([&] { return r.size() >= expected; }));
        const auto messages = r.copy();
        std::map<std::uint64_t, int> next; // per origin: the number expected next
        for (const auto& m : messages) {
            CHECK(m.origin != nodes[static_cast<std::size_t>(i)]);
            CHECK(m.room == "lobby");
            CHECK(m.to == duplex::audience::room);
            CHECK(m.payload == std::to_string(next[m.origin]++));
        }
        CHECK(messages.size() == expected);
        CHECK(next.size() == processes - 1);
    }
    // Give a stray echo time to arrive before the final counts.
    std::this_thread::sleep_for(100ms);
    for (int i = 0; i < processes; ++i) {
        const auto counters = planes[static_cast<std::size_t>(i)]->counters();
        CHECK(received[static_cast<std::size_t>(i)]->size() == expected);
        CHECK(counters.publishes == per_publisher);
        CHECK(counters.deliveries == expected);
        CHECK(counters.drops == 0);
        CHECK(counters.malformed == 0);
    }
}

TEST_CASE("Redis backplane: binary payloads and room names, text, and publish_all cross intact",
          "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;

    recorder a_got, b_got, c_got;
    redis_backplane a(io.io.get_executor(), quick_options(server.url()));
    redis_backplane b(io.io.get_executor(), quick_options(server.url()));
    const auto a_node = a.attach([&](const duplex::backplane_message& m) { a_got.add(m); });
    const auto b_node = b.attach([&](const duplex::backplane_message& m) { b_got.add(m); });
    // Attached to b as well, in no room: only publish_all reaches it.
    const auto c_node = b.attach([&](const duplex::backplane_message& m) { c_got.add(m); });
    (void)c_node;
    const std::string room("r\0om \r\n\xff", 8);
    b.subscribe(b_node, room);
    REQUIRE(wait_for([&] { return a.state() == redis_state::up; }));
    REQUIRE(wait_for([&] { return b.state() == redis_state::up && b.counters().channels == 2; }));

    std::string every_byte;
    for (int i = 0; i < 256; ++i) every_byte.push_back(static_cast<char>(i));
    every_byte += "\r\n*3\r\n$-1\r\n"; // RESP-looking bytes inside the payload
    a.publish(make_message(a_node, room, every_byte, duplex::opcode::binary));
    a.publish(make_message(a_node, room, "h\xc3\xa9llo", duplex::opcode::text));
    a.publish(make_message(a_node, room, "", duplex::opcode::binary));
    auto to_all = make_message(a_node, "", "everyone");
    to_all.to = duplex::audience::everyone;
    a.publish(to_all);

    REQUIRE(wait_for([&] { return b_got.size() >= 4 && c_got.size() >= 1; }));
    const auto got = b_got.copy();
    REQUIRE(got.size() == 4);
    CHECK(got[0].room == room);
    CHECK(got[0].type == duplex::opcode::binary);
    CHECK(got[0].payload == every_byte);
    CHECK(got[1].type == duplex::opcode::text);
    CHECK(got[1].payload == "h\xc3\xa9llo");
    CHECK(got[2].payload.empty());
    CHECK(got[2].type == duplex::opcode::binary);
    CHECK(got[3].to == duplex::audience::everyone);
    CHECK(got[3].payload == "everyone");
    const auto c_messages = c_got.copy();
    REQUIRE(c_messages.size() == 1);
    CHECK(c_messages[0].payload == "everyone");
    CHECK(a_got.size() == 0); // its own publish_all came back from Redis and was filtered
}

TEST_CASE("Redis backplane: two nodes of one process get each other's messages, not their own",
          "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;

    recorder one_got, two_got;
    redis_backplane plane(io.io.get_executor(), quick_options(server.url()));
    const auto one = plane.attach([&](const duplex::backplane_message& m) { one_got.add(m); });
    const auto two = plane.attach([&](const duplex::backplane_message& m) { two_got.add(m); });
    plane.subscribe(one, "r");
    plane.subscribe(two, "r");
    REQUIRE(wait_for(
        [&] { return plane.state() == redis_state::up && plane.counters().channels == 2; }));
    plane.publish(make_message(one, "r", "from one"));
    plane.publish(make_message(two, "r", "from two"));
    REQUIRE(wait_for([&] { return one_got.size() >= 1 && two_got.size() >= 1; }));
    std::this_thread::sleep_for(100ms); // an echo, if any, would have come by now
    const auto to_one = one_got.copy();
    const auto to_two = two_got.copy();
    REQUIRE(to_one.size() == 1);
    REQUIRE(to_two.size() == 1);
    CHECK(to_one[0].payload == "from two");
    CHECK(to_two[0].payload == "from one");

    // After the last node leaves the room, Redis stops sending it (UNSUBSCRIBE).
    plane.unsubscribe(one, "r");
    plane.unsubscribe(two, "r");
    CHECK(wait_for([&] { return plane.counters().channels == 1; }));
}

TEST_CASE("Redis backplane: a Redis restart in mid-traffic, delivery resumes in order", "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;

    recorder got, publisher_states, subscriber_states;
    redis_backplane publisher(io.io.get_executor(), quick_options(server.url(), &publisher_states));
    redis_backplane subscriber(io.io.get_executor(),
                               quick_options(server.url(), &subscriber_states));
    const auto p_node = publisher.attach([](const duplex::backplane_message&) {});
    const auto s_node = subscriber.attach([&](const duplex::backplane_message& m) { got.add(m); });
    subscriber.subscribe(s_node, "feed");
    REQUIRE(wait_for([&] { return publisher.state() == redis_state::up; }));
    REQUIRE(wait_for([&] {
        return subscriber.state() == redis_state::up && subscriber.counters().channels == 2;
    }));

    std::atomic<int> sent{0};
    std::atomic<bool> stop{false};
    std::thread traffic([&] {
        while (!stop.load()) {
            publisher.publish(make_message(p_node, "feed", std::to_string(sent.load() + 1)));
            sent.fetch_add(1);
            std::this_thread::sleep_for(1ms);
        }
    });

    REQUIRE(wait_for([&] { return got.size() >= 50; }));
    server.stop();
    REQUIRE(wait_for([&] {
        return subscriber_states.saw(redis_state::down, subscriber.last_error()) &&
               publisher.state() != redis_state::up;
    }));
    REQUIRE(server.start());
    REQUIRE(wait_for([&] {
        return publisher.state() == redis_state::up && subscriber.state() == redis_state::up &&
               subscriber.counters().channels == 2;
    }));
    // Both are back and subscribed: from here on nothing may be lost.
    const int back_at = sent.load();
    REQUIRE(wait_for([&] { return sent.load() >= back_at + 200; }));
    stop.store(true);
    traffic.join();
    const int last = sent.load();
    REQUIRE(wait_for([&] {
        const auto messages = got.copy();
        return !messages.empty() && messages.back().payload == std::to_string(last);
    }));

    const auto messages = got.copy();
    int previous = 0;
    int after_back = 0;
    for (const auto& m : messages) {
        const int n = std::stoi(m.payload);
        CHECK(n > previous); // in order, nothing twice
        previous = n;
        if (n > back_at) ++after_back;
    }
    CHECK(after_back == last - back_at); // everything published after the recovery arrived
    const auto p = publisher.counters();
    const auto s = subscriber.counters();
    CHECK(p.reconnects >= 1);
    CHECK(s.reconnects >= 1);
    CHECK(p.drops == 0); // the queue (10,000 messages) never filled
    // Lost: what Redis got while the subscriber was away, and what was in flight at the crash.
    INFO("published " << last << ", delivered " << messages.size() << ", unconfirmed "
                      << p.unconfirmed);
    CHECK(messages.size() <= static_cast<std::size_t>(last));
}

TEST_CASE("Redis backplane: a frozen server is detected by PING, and delivery resumes when it "
          "thaws",
          "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;

    recorder got, states;
    auto options = quick_options(server.url(), &states);
    options.ping_interval = 200ms;
    redis_backplane plane(io.io.get_executor(), options);
    const auto sender = plane.attach([](const duplex::backplane_message&) {});
    const auto receiver = plane.attach([&](const duplex::backplane_message& m) { got.add(m); });
    plane.subscribe(receiver, "r");
    REQUIRE(wait_for(
        [&] { return plane.state() == redis_state::up && plane.counters().channels == 2; }));

    server.freeze(); // TCP stays up: only the missing PONGs tell
    REQUIRE(wait_for([&] { return states.saw(redis_state::down, asio::error::timed_out); }));
    plane.publish(make_message(sender, "r", "queued while frozen"));
    server.thaw();
    REQUIRE(wait_for([&] { return got.size() >= 1; }));
    CHECK(got.copy()[0].payload == "queued while frozen");
    CHECK(plane.state() == redis_state::up);
    CHECK(plane.counters().reconnects >= 1);
}

TEST_CASE("Redis backplane: publishes while Redis is away wait in a bounded queue, by policy",
          "[redis]") {
    REQUIRE_REDIS(binary);
    for (const auto policy :
         {duplex::redis_overflow::drop_oldest, duplex::redis_overflow::reject_new}) {
        INFO((policy == duplex::redis_overflow::drop_oldest ? "drop_oldest" : "reject_new"));
        redis_server server(binary);
        io_threads io;
        recorder got, states;
        auto options = quick_options(server.url(), &states);
        options.max_queued_messages = 5;
        options.on_overflow = policy;
        // Redis is not running yet: the backplane starts anyway and keeps trying.
        redis_backplane plane(io.io.get_executor(), options);
        const auto sender = plane.attach([](const duplex::backplane_message&) {});
        const auto receiver = plane.attach([&](const duplex::backplane_message& m) { got.add(m); });
        plane.subscribe(receiver, "q");
        REQUIRE(wait_for([&] { return plane.state() == redis_state::down; }));
        CHECK(plane.last_error());
        for (int i = 1; i <= 20; ++i) plane.publish(make_message(sender, "q", std::to_string(i)));
        CHECK(plane.counters().drops == 15);

        REQUIRE(server.start());
        REQUIRE(wait_for([&] { return got.size() >= 5; }));
        std::this_thread::sleep_for(100ms);
        const auto messages = got.copy();
        REQUIRE(messages.size() == 5);
        const int first = policy == duplex::redis_overflow::drop_oldest ? 16 : 1;
        for (int i = 0; i < 5; ++i)
            CHECK(messages[static_cast<std::size_t>(i)].payload == std::to_string(first + i));
        CHECK(plane.counters().publishes == 5);
        CHECK(states.saw(redis_state::up, {}));
    }
}

TEST_CASE("Redis backplane: AUTH with the right password and a db works, a wrong one is "
          "reported and never comes up",
          "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary, {"--requirepass", "s3cret:@"});
    REQUIRE(server.start());
    io_threads io;

    recorder wrong_states, got;
    redis_backplane wrong(io.io.get_executor(), quick_options(server.url(":nope@"), &wrong_states));
    REQUIRE(wait_for([&] {
        return wrong_states.saw(redis_state::down, duplex::redis::resp_errc::auth_failed);
    }));
    CHECK(wrong.last_error() == duplex::redis::resp_errc::auth_failed);

    // The password percent-encoded in the URL; HELLO 3 AUTH on one, RESP2 AUTH on the other.
    redis_backplane resp3(io.io.get_executor(), quick_options(server.url(":s3cret%3A%40@", 3)));
    auto resp2_options = quick_options(server.url("default:s3cret%3A%40@", 5));
    resp2_options.resp_version = 2;
    redis_backplane resp2(io.io.get_executor(), resp2_options);
    const auto from = resp3.attach([](const duplex::backplane_message&) {});
    const auto to = resp2.attach([&](const duplex::backplane_message& m) { got.add(m); });
    resp2.subscribe(to, "secure");
    REQUIRE(wait_for([&] { return resp3.state() == redis_state::up; }));
    REQUIRE(wait_for(
        [&] { return resp2.state() == redis_state::up && resp2.counters().channels == 2; }));
    resp3.publish(make_message(from, "secure", "authenticated"));
    REQUIRE(wait_for([&] { return got.size() >= 1; }));
    CHECK(got.copy()[0].payload == "authenticated");

    CHECK(wrong.state() != redis_state::up);
    // It keeps trying (the password may be fixed on the server), and keeps failing.
    CHECK(wait_for([&] { return wrong.counters().reconnects >= 2; }));
    CHECK(wrong.state() != redis_state::up);
}

TEST_CASE("Redis backplane: a malformed URL or a foreign message on its channel is reported, "
          "not fatal",
          "[redis]") {
    REQUIRE_REDIS(binary);
    io_threads io;
    recorder states;
    redis_backplane bad(io.io.get_executor(), quick_options("http://127.0.0.1:6379", &states));
    CHECK(bad.state() == redis_state::stopped);
    CHECK(bad.last_error() == duplex::redis::resp_errc::bad_url);
    CHECK(states.saw(redis_state::stopped, duplex::redis::resp_errc::bad_url));
    bad.publish(make_message(1, "r", "x"));
    CHECK(bad.counters().drops == 1);

    // Another program publishing on our channel: counted as malformed, delivery continues.
    redis_server server(binary);
    REQUIRE(server.start());
    recorder got;
    redis_backplane plane(io.io.get_executor(), quick_options(server.url()));
    redis_backplane other(io.io.get_executor(), quick_options(server.url()));
    const auto node = plane.attach([&](const duplex::backplane_message& m) { got.add(m); });
    const auto sender = other.attach([](const duplex::backplane_message&) {});
    plane.subscribe(node, "r");
    REQUIRE(wait_for(
        [&] { return plane.state() == redis_state::up && plane.counters().channels == 2; }));
    REQUIRE(wait_for([&] { return other.state() == redis_state::up; }));
    {
        asio::io_context raw_io;
        asio::ip::tcp::socket raw(raw_io);
        raw.connect({asio::ip::make_address("127.0.0.1"), server.port()});
        std::string command;
        duplex::redis::append_command(command, {"PUBLISH", "duplex:room:r", "not an envelope"});
        asio::write(raw, asio::buffer(command));
        char reply[64];
        (void)raw.read_some(asio::buffer(reply));
    }
    REQUIRE(wait_for([&] { return plane.counters().malformed == 1; }));
    other.publish(make_message(sender, "r", "still fine"));
    REQUIRE(wait_for([&] { return got.size() >= 1; }));
    CHECK(got.copy()[0].payload == "still fine");
}

TEST_CASE("Redis backplane: rooms in two processes share a room through Redis", "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;
    using memory = duplex::transport::memory;
    using mem_connection = duplex::connection<memory>;

    auto plane_a =
        std::make_shared<redis_backplane>(io.io.get_executor(), quick_options(server.url()));
    auto plane_b =
        std::make_shared<redis_backplane>(io.io.get_executor(), quick_options(server.url()));
    duplex::rooms<mem_connection> rooms_a({}, plane_a);
    duplex::rooms<mem_connection> rooms_b({}, plane_b);

    // A member of rooms_b.
    recorded_member local(io.io.get_executor());
    auto& got = local.got;
    REQUIRE(rooms_b.join(local.member, "news"));
    REQUIRE(wait_for([&] { return plane_a->state() == redis_state::up; }));
    REQUIRE(wait_for(
        [&] { return plane_b->state() == redis_state::up && plane_b->counters().channels == 2; }));

    rooms_a.publish("news", duplex::opcode::text, "across processes");
    rooms_a.publish("other", duplex::opcode::text, "nobody there");
    rooms_a.publish_all(duplex::opcode::binary, "to all");
    REQUIRE(wait_for([&] { return got.size() >= 2; }));
    std::this_thread::sleep_for(100ms);
    const auto messages = got.copy();
    REQUIRE(messages.size() == 2);
    CHECK(messages[0].payload == "across processes");
    CHECK(messages[1].payload == "to all");
    CHECK(messages[1].type == duplex::opcode::binary);
    local.member->close();
}

namespace {

struct presence_answer {
    std::mutex m;
    bool done = false;
    std::error_code error;
    std::vector<std::string> members;
};

// Asks for the members of `room` and waits for the answer; the error when there is one.
std::vector<std::string> members_of(redis_backplane& plane, const std::string& room,
                                    std::error_code& error) {
    auto answer = std::make_shared<presence_answer>();
    plane.presence_members(room, [answer](std::error_code ec, std::vector<std::string> members) {
        std::lock_guard<std::mutex> lock(answer->m);
        answer->error = ec;
        answer->members = std::move(members);
        answer->done = true;
    });
    const bool answered = wait_for([&] {
        std::lock_guard<std::mutex> lock(answer->m);
        return answer->done;
    });
    std::lock_guard<std::mutex> lock(answer->m);
    error = answered ? answer->error : std::make_error_code(std::errc::timed_out);
    return answer->members;
}

bool lists(const std::vector<std::string>& members, const std::string& name) {
    return std::find(members.begin(), members.end(), name) != members.end();
}

} // namespace

TEST_CASE("Redis backplane: presence spans processes, is in order with publishes, and expires "
          "when its process stops refreshing it",
          "[redis][presence]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;

    recorder b_got;
    redis_backplane a(io.io.get_executor(), quick_options(server.url()));
    redis_backplane b(io.io.get_executor(), quick_options(server.url()));
    auto c_options = quick_options(server.url());
    c_options.presence_ttl = 1500ms;
    c_options.presence_refresh = 100ms;
    auto c = std::make_unique<redis_backplane>(io.io.get_executor(), c_options);
    const auto a_node = a.attach([](const duplex::backplane_message&) {});
    const auto b_node = b.attach([&](const duplex::backplane_message& m) { b_got.add(m); });
    const auto c_node = c->attach([](const duplex::backplane_message&) {});
    b.subscribe(b_node, "lobby");
    REQUIRE(
        wait_for([&] { return a.state() == redis_state::up && c->state() == redis_state::up; }));
    REQUIRE(wait_for([&] { return b.state() == redis_state::up && b.counters().channels == 2; }));

    // A process that sees a publish made after a presence change sees the change: both went
    // through the publisher's one connection, in order.
    a.presence_add("lobby", "alice");
    a.publish(make_message(a_node, "lobby", "alice joined"));
    REQUIRE(wait_for([&] { return b_got.size() >= 1; }));
    std::error_code ec;
    auto members = members_of(b, "lobby", ec);
    REQUIRE_FALSE(ec);
    CHECK(lists(members, "alice"));
    CHECK(members_of(a, "lobby", ec).size() == 1);

    a.presence_remove("lobby", "alice");
    a.publish(make_message(a_node, "lobby", "alice left"));
    REQUIRE(wait_for([&] { return b_got.size() >= 2; }));
    members = members_of(b, "lobby", ec);
    REQUIRE_FALSE(ec);
    CHECK_FALSE(lists(members, "alice"));

    // Refreshed, an entry outlives its TTL many times over.
    c->presence_add("lobby", "carol");
    c->publish(make_message(c_node, "lobby", "carol joined"));
    REQUIRE(wait_for([&] { return b_got.size() >= 3; }));
    CHECK(lists(members_of(b, "lobby", ec), "carol"));
    std::this_thread::sleep_for(3s);
    CHECK(lists(members_of(b, "lobby", ec), "carol"));
    REQUIRE_FALSE(ec);

    // Its process gone without a goodbye (as in a crash), the entry expires.
    c.reset();
    CHECK(wait_for([&] {
        const auto now = members_of(b, "lobby", ec);
        return !ec && !lists(now, "carol");
    }));
}

#if defined(DUPLEX_ENABLE_TLS)
TEST_CASE("Redis backplane: rediss:// verifies the server's certificate, and works with the "
          "right CA",
          "[redis][tls]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    // A self-signed certificate for 127.0.0.1; Redis speaks only TLS, on the test's port.
    const std::string cert = server.dir() + "/cert.pem";
    const std::string key = server.dir() + "/key.pem";
    const std::string make_cert =
        "openssl req -x509 -newkey rsa:2048 -nodes -subj /CN=localhost -addext "
        "subjectAltName=DNS:localhost,IP:127.0.0.1 -days 2 -keyout " +
        key + " -out " + cert + " >/dev/null 2>&1";
    if (std::system(make_cert.c_str()) != 0) DUPLEX_SKIP("openssl could not make a certificate");
    server.extra_arguments() = {"--port",
                                "0",
                                "--tls-port",
                                std::to_string(server.port()),
                                "--tls-cert-file",
                                cert,
                                "--tls-key-file",
                                key,
                                "--tls-ca-cert-file",
                                cert,
                                "--tls-auth-clients",
                                "no"};
    REQUIRE(server.start());
    io_threads io;
    const std::string url = "rediss://127.0.0.1:" + std::to_string(server.port()) + "/0";

    // The system's CAs do not know this certificate: refused, again and again, never up.
    recorder untrusted_states;
    redis_backplane untrusted(io.io.get_executor(), quick_options(url, &untrusted_states));
    REQUIRE(wait_for([&] { return untrusted.counters().reconnects >= 2; }));
    CHECK(untrusted.state() != redis_state::up);
    CHECK(untrusted.last_error());
    CHECK_FALSE(untrusted_states.saw(redis_state::up, {}));

    auto trusting = [&] {
        auto o = quick_options(url);
        o.tls_context = duplex::transport::tls::client_context();
        o.tls_context.load_verify_file(cert);
        return o;
    };
    recorder got;
    redis_backplane a(io.io.get_executor(), trusting());
    redis_backplane b(io.io.get_executor(), trusting());
    const auto a_node = a.attach([](const duplex::backplane_message&) {});
    const auto b_node = b.attach([&](const duplex::backplane_message& m) { got.add(m); });
    b.subscribe(b_node, "secure");
    REQUIRE(wait_for([&] { return a.state() == redis_state::up; }));
    REQUIRE(wait_for([&] { return b.state() == redis_state::up && b.counters().channels == 2; }));
    std::string payload(100000, 'x'); // many TLS records
    payload[5] = '\0';
    a.publish(make_message(a_node, "secure", payload, duplex::opcode::binary));
    REQUIRE(wait_for([&] { return got.size() >= 1; }));
    CHECK(got.copy()[0].payload == payload);
}
#endif

#if defined(DUPLEX_REDIS_NODE)
namespace {

// One tests/integration/redis_node.cpp process: commands go to its stdin, and a thread
// collects the lines it prints.
class node_process {
public:
    node_process(const std::string& url, const std::string& name) : name_(name) {
        std::vector<std::string> args{DUPLEX_REDIS_NODE,   "--redis", url, "--name", name,
                                      "--presence-ttl-ms", "1500"};
        std::vector<char*> argv;
        for (auto& a : args) argv.push_back(a.data());
        argv.push_back(nullptr);
        int in[2];
        int out[2];
        if (::pipe(in) != 0 || ::pipe(out) != 0) return;
        // The test's own ends stay out of the other nodes started later: a node whose stdin
        // another node also held open would never see it close.
        ::fcntl(in[1], F_SETFD, FD_CLOEXEC);
        ::fcntl(out[0], F_SETFD, FD_CLOEXEC);
        pid_ = ::fork();
        if (pid_ == 0) {
#if defined(__linux__)
            ::prctl(PR_SET_PDEATHSIG, SIGKILL);
#endif
            ::dup2(in[0], 0);
            ::dup2(out[1], 1);
            ::close(in[0]);
            ::close(in[1]);
            ::close(out[0]);
            ::close(out[1]);
            ::execv(argv[0], argv.data());
            std::_Exit(127);
        }
        ::close(in[0]);
        ::close(out[1]);
        to_ = in[1];
        from_ = out[0];
        reader_ = std::thread([this] { read_lines(); });
    }
    ~node_process() {
        if (to_ >= 0) ::close(to_);
        kill();
        if (reader_.joinable()) reader_.join();
        if (from_ >= 0) ::close(from_);
    }

    const std::string& name() const { return name_; }
    bool running() const { return pid_ > 0; }

    void send(const std::string& command) {
        const std::string line = command + "\n";
        if (to_ >= 0)
            CHECK(::write(to_, line.data(), line.size()) == static_cast<ssize_t>(line.size()));
    }

    // SIGKILL: a crash; no goodbye reaches Redis.
    void kill() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
    }

    std::vector<std::string> lines() {
        std::lock_guard<std::mutex> lock(m_);
        return lines_;
    }
    std::size_t count(const std::string& prefix) {
        std::lock_guard<std::mutex> lock(m_);
        return static_cast<std::size_t>(
            std::count_if(lines_.begin(), lines_.end(),
                          [&](const auto& l) { return l.compare(0, prefix.size(), prefix) == 0; }));
    }
    // The last line that starts with `prefix`, or empty.
    std::string last(const std::string& prefix) {
        std::lock_guard<std::mutex> lock(m_);
        for (auto it = lines_.rbegin(); it != lines_.rend(); ++it)
            if (it->compare(0, prefix.size(), prefix) == 0) return *it;
        return {};
    }

private:
    void read_lines() {
        std::string partial;
        char buffer[4096];
        for (;;) {
            const ssize_t n = ::read(from_, buffer, sizeof buffer);
            if (n <= 0) return;
            partial.append(buffer, static_cast<std::size_t>(n));
            std::size_t at = 0;
            for (std::size_t lf; (lf = partial.find('\n', at)) != std::string::npos; at = lf + 1) {
                std::lock_guard<std::mutex> lock(m_);
                lines_.push_back(partial.substr(at, lf - at));
            }
            partial.erase(0, at);
        }
    }

    std::string name_;
    pid_t pid_ = -1;
    int to_ = -1;
    int from_ = -1;
    std::thread reader_;
    std::mutex m_;
    std::vector<std::string> lines_;
};

// The numbers a node received from `publisher`, in the order it received them.
std::vector<long> received_from(node_process& node, const std::string& publisher) {
    std::vector<long> numbers;
    const std::string prefix = "got " + publisher + " ";
    for (const auto& line : node.lines())
        if (line.compare(0, prefix.size(), prefix) == 0)
            numbers.push_back(std::strtol(line.c_str() + prefix.size(), nullptr, 10));
    return numbers;
}

// 0, 1, ..., n - 1: everything, once, in publish order.
bool is_sequence(const std::vector<long>& numbers, std::size_t n) {
    if (numbers.size() != n) return false;
    for (std::size_t i = 0; i < n; ++i)
        if (numbers[i] != static_cast<long>(i)) return false;
    return true;
}

// The presence list a node reports now ("presence a b c").
std::string ask_presence(node_process& node) {
    const std::size_t before = node.count("presence");
    node.send("presence");
    if (!wait_for([&] { return node.count("presence") > before; }, 10s)) return "no answer";
    return node.last("presence");
}

} // namespace

TEST_CASE("Redis backplane: three OS processes share a room, and when one is killed the others "
          "keep delivering and its presence expires",
          "[redis][processes]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());

    std::vector<std::unique_ptr<node_process>> nodes;
    for (const char* name : {"a", "b", "c"})
        nodes.push_back(std::make_unique<node_process>(server.url(), name));
    for (auto& n : nodes) {
        INFO("process " << n->name());
        REQUIRE(n->running());
        REQUIRE(wait_for([&] { return n->count("ready") == 1; }));
    }
    auto& a = *nodes[0];
    auto& b = *nodes[1];
    auto& c = *nodes[2];
    CHECK(ask_presence(a) == "presence a b c");

    // Every process publishes at once, as fast as it can.
    constexpr std::size_t first = 300;
    for (auto& n : nodes) n->send("publish " + std::to_string(first) + " 0");
    for (auto& n : nodes) {
        for (auto& from : nodes) {
            if (from == n) continue;
            INFO(n->name() << " from " << from->name());
            REQUIRE(wait_for([&] { return received_from(*n, from->name()).size() >= first; }));
            CHECK(is_sequence(received_from(*n, from->name()), first));
        }
    }

    // c streams until it is killed; a and b publish throughout and after.
    c.send("publish 1000000 200");
    a.send("publish 300 2000");
    b.send("publish 300 2000");
    REQUIRE(wait_for([&] { return received_from(a, "c").size() >= first + 100; }));
    c.kill();
    a.send("publish 200 0");
    b.send("publish 200 0");
    constexpr std::size_t total = first + 300 + 200;
    for (auto* n : {&a, &b}) {
        auto& other = n == &a ? b : a;
        INFO(n->name() << " from " << other.name());
        REQUIRE(wait_for([&] { return received_from(*n, other.name()).size() >= total; }));
        CHECK(is_sequence(received_from(*n, other.name()), total));
        // What the killed process got out before it died arrived whole and in order, with no
        // gap: a prefix of what it published.
        const auto from_c = received_from(*n, "c");
        CHECK(from_c.size() > first);
        CHECK(is_sequence(from_c, from_c.size()));
    }

    // Nobody ever got its own messages back.
    for (auto& n : nodes) {
        INFO("process " << n->name());
        CHECK(received_from(*n, n->name()).empty());
    }

    // c's presence entry is no longer refreshed: it expires (TTL 1.5 s), a and b stay.
    std::string now;
    CHECK(wait_for(
        [&] {
            now = ask_presence(b);
            return now == "presence a b";
        },
        20s));
    CHECK(now == "presence a b");
    CHECK(ask_presence(a) == "presence a b");
    a.send("quit");
    b.send("quit");
}
#endif

TEST_CASE("Redis backplane: rooms deliver to their local members while Redis is away", "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary); // never started: nothing listens on its port
    io_threads io;
    using memory = duplex::transport::memory;
    using mem_connection = duplex::connection<memory>;

    auto plane =
        std::make_shared<redis_backplane>(io.io.get_executor(), quick_options(server.url()));
    duplex::rooms<mem_connection> rooms({}, plane);
    recorded_member local(io.io.get_executor());
    auto& got = local.got;
    REQUIRE(rooms.join(local.member, "news"));
    REQUIRE(wait_for([&] { return plane->state() == redis_state::down; }));

    rooms.publish("news", duplex::opcode::text, "local, Redis or not");
    REQUIRE(wait_for([&] { return got.size() >= 1; }));
    CHECK(got.copy()[0].payload == "local, Redis or not");
    CHECK(plane->state() != redis_state::up);
    local.member->close();
}

TEST_CASE("Redis backplane: presence entries come back after a Redis restart",
          "[redis][presence]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;

    auto a_options = quick_options(server.url());
    // No periodic refresh within the test: only the re-add on coming up can list alice again.
    a_options.presence_refresh = 1h;
    a_options.presence_ttl = 1h;
    redis_backplane a(io.io.get_executor(), a_options);
    redis_backplane b(io.io.get_executor(), quick_options(server.url()));
    a.presence_add("lobby", "alice");
    REQUIRE(wait_for([&] { return a.state() == redis_state::up && b.state() == redis_state::up; }));
    std::error_code ec;
    REQUIRE(wait_for([&] { return lists(members_of(b, "lobby", ec), "alice"); }));

    // No persistence: the restarted Redis is empty, until a re-adds its entries on coming up.
    server.stop();
    REQUIRE(wait_for([&] { return a.state() != redis_state::up; }));
    REQUIRE(server.start());
    REQUIRE(wait_for([&] { return a.state() == redis_state::up && b.state() == redis_state::up; }));
    CHECK(wait_for([&] {
        const auto members = members_of(b, "lobby", ec);
        return !ec && lists(members, "alice");
    }));
}

TEST_CASE("Redis backplane: a publish written but unanswered when the connection fails is "
          "counted as unconfirmed and not sent again",
          "[redis]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary);
    REQUIRE(server.start());
    io_threads io;

    recorder got, states;
    auto options = quick_options(server.url(), &states);
    options.ping_interval = 200ms;
    redis_backplane publisher(io.io.get_executor(), options);
    redis_backplane subscriber(io.io.get_executor(), quick_options(server.url()));
    const auto from = publisher.attach([](const duplex::backplane_message&) {});
    const auto to = subscriber.attach([&](const duplex::backplane_message& m) { got.add(m); });
    subscriber.subscribe(to, "r");
    REQUIRE(wait_for([&] { return publisher.state() == redis_state::up; }));
    REQUIRE(wait_for([&] {
        return subscriber.state() == redis_state::up && subscriber.counters().channels == 2;
    }));

    // Frozen, Redis takes the PUBLISH into its socket buffer and answers nothing.
    server.freeze();
    publisher.publish(make_message(from, "r", "in flight"));
    REQUIRE(wait_for([&] { return states.saw(redis_state::down, asio::error::timed_out); }));
    CHECK(publisher.counters().unconfirmed == 1);
    server.thaw();
    REQUIRE(wait_for([&] { return publisher.state() == redis_state::up; }));
    REQUIRE(wait_for([&] {
        return subscriber.state() == redis_state::up && subscriber.counters().channels == 2;
    }));
    publisher.publish(make_message(from, "r", "after"));
    REQUIRE(wait_for([&] {
        for (const auto& m : got.copy())
            if (m.payload == "after") return true;
        return false;
    }));
    std::this_thread::sleep_for(100ms);
    // Redis may have run the frozen PUBLISH when it thawed, but the backplane never wrote it
    // again: only "after" was acknowledged, and "in flight" arrived at most once.
    CHECK(publisher.counters().publishes == 1);
    int in_flight = 0;
    for (const auto& m : got.copy()) in_flight += m.payload == "in flight" ? 1 : 0;
    CHECK(in_flight <= 1);
}

TEST_CASE("Redis backplane: a presence_add dropped from the full queue is repaired on coming up",
          "[redis][presence]") {
    REQUIRE_REDIS(binary);
    redis_server server(binary); // started below
    io_threads io;

    auto options = quick_options(server.url());
    options.max_queued_messages = 1;
    // No periodic refresh within the test: only the re-add on coming up can list alice.
    options.presence_refresh = 1h;
    options.presence_ttl = 1h;
    redis_backplane a(io.io.get_executor(), options);
    const auto node = a.attach([](const duplex::backplane_message&) {});
    REQUIRE(wait_for([&] { return a.state() == redis_state::down; }));
    a.presence_add("lobby", "alice");
    a.publish(make_message(node, "lobby", "pushes the ZADD out of the queue"));
    CHECK(a.counters().drops == 1);

    REQUIRE(server.start());
    redis_backplane b(io.io.get_executor(), quick_options(server.url()));
    REQUIRE(wait_for([&] { return a.state() == redis_state::up && b.state() == redis_state::up; }));
    std::error_code ec;
    CHECK(wait_for([&] {
        const auto members = members_of(b, "lobby", ec);
        return !ec && lists(members, "alice");
    }));
}
