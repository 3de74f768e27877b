// duplex_redis_node — one server process's rooms on the Redis backplane, for the test that
// runs three of them as separate OS processes (redis_tests.cpp). Built only for that test.
//
//   duplex_redis_node --redis URL --name NAME [--presence-ttl-ms N]
//
// It holds one duplex::rooms with one member (an in-memory connection) in room "lobby", lists
// NAME in the lobby's presence, and talks to the test over lines:
//   out: "ready" once the backplane is up and subscribed
//        "got <payload>" for each message the member receives (payloads are "<name> <seq>")
//        "published <count>" after a publish command
//        "presence <name> <name> ..." (sorted) or "presence-error <message>"
//   in:  "publish <count> <pause-us>" publishes the next <count> numbers, pausing in between
//        "presence" asks Redis who is in the lobby
//        "quit" (or the end of input) leaves
// The member is excluded from its own publishes, so any message with its own name that it
// gets came back through Redis: the test checks there is none.
#include <duplex/redis_backplane.hpp>
#include <duplex/rooms.hpp>
#include <duplex/transport/memory.hpp>

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using memory = duplex::transport::memory;
using mem_connection = duplex::connection<memory>;

std::mutex out_mutex;

void say(const std::string& line) {
    std::lock_guard<std::mutex> lock(out_mutex);
    std::fwrite(line.data(), 1, line.size(), stdout);
    std::fputc('\n', stdout);
    std::fflush(stdout);
}

} // namespace

int main(int argc, char** argv) {
    std::string url;
    std::string name;
    long presence_ttl_ms = 1500;
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string flag = argv[i];
        if (flag == "--redis")
            url = argv[i + 1];
        else if (flag == "--name")
            name = argv[i + 1];
        else if (flag == "--presence-ttl-ms")
            presence_ttl_ms = std::max(100L, std::strtol(argv[i + 1], nullptr, 10));
    }
    if (url.empty() || name.empty()) {
        std::fprintf(stderr, "usage: %s --redis URL --name NAME [--presence-ttl-ms N]\n", argv[0]);
        return 2;
    }

    asio::io_context io;
    auto work = asio::make_work_guard(io);
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) threads.emplace_back([&io] { io.run(); });

    duplex::redis_backplane_options o;
    o.url = url;
    o.reconnect_min = std::chrono::milliseconds(20);
    o.reconnect_max = std::chrono::milliseconds(200);
    o.ping_interval = std::chrono::milliseconds(500);
    o.presence_ttl = std::chrono::milliseconds(presence_ttl_ms);
    o.presence_refresh = std::chrono::milliseconds(presence_ttl_ms / 5);
    auto plane = std::make_shared<duplex::redis_backplane>(io.get_executor(), o);
    {
        duplex::rooms<mem_connection> rooms({}, plane);

        duplex::connection_options quiet;
        quiet.ping_interval = std::chrono::milliseconds(0);
        auto [server_end, client_end] = memory::make_pair(io.get_executor());
        auto member = std::make_shared<mem_connection>(std::move(server_end),
                                                       duplex::protocol::role::server, quiet);
        auto reader = std::make_shared<mem_connection>(std::move(client_end),
                                                       duplex::protocol::role::client, quiet);
        duplex::connection_handlers<mem_connection> h;
        h.on_message = [](auto&, const duplex::message_view& m) {
            say("got " + std::string(m.data));
        };
        member->start({});
        reader->start(std::move(h));
        rooms.join(member, "lobby");
        plane->presence_add("lobby", name);

        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
        while (!(plane->state() == duplex::redis_state::up && plane->counters().channels == 2)) {
            if (std::chrono::steady_clock::now() > deadline) {
                std::fprintf(stderr, "%s: Redis not up: %s\n", name.c_str(),
                             plane->last_error().message().c_str());
                std::_Exit(1);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        say("ready");

        std::uint64_t next = 0;
        std::string line;
        while (std::getline(std::cin, line)) {
            std::istringstream words(line);
            std::string command;
            words >> command;
            if (command == "publish") {
                std::uint64_t count = 0;
                long pause_us = 0;
                words >> count >> pause_us;
                for (std::uint64_t i = 0; i < count; ++i) {
                    rooms.publish("lobby", duplex::opcode::text,
                                  name + " " + std::to_string(next++), member.get());
                    if (pause_us > 0)
                        std::this_thread::sleep_for(std::chrono::microseconds(pause_us));
                }
                say("published " + std::to_string(count));
            } else if (command == "presence") {
                std::mutex m;
                std::condition_variable cv;
                bool done = false;
                plane->presence_members(
                    "lobby", [&](std::error_code ec, std::vector<std::string> members) {
                        std::sort(members.begin(), members.end());
                        std::string answer = ec ? "presence-error " + ec.message() : "presence";
                        for (const auto& member_name : members) answer += " " + member_name;
                        say(answer);
                        std::lock_guard<std::mutex> lock(m);
                        done = true;
                        cv.notify_one();
                    });
                std::unique_lock<std::mutex> lock(m);
                cv.wait(lock, [&] { return done; });
            } else if (command == "quit") {
                break;
            }
        }
        member->close();
    }
    plane.reset();
    work.reset();
    io.stop();
    for (auto& t : threads) t.join();
    return 0;
}
