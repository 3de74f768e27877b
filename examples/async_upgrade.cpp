// async_upgrade — accept or refuse an upgrade after a slow check, without blocking an io thread.
//
// Clients connect to ws://127.0.0.1:9004/?token=T. The token is looked up in a "database"
// that answers after 100 ms on a thread of its own (a stand-in for Redis or SQL); meanwhile
// the server keeps serving everyone else. A known token is accepted and its user name becomes
// the connection's user data; an unknown one gets 401 with a body. With no arguments the
// program also runs three clients itself (two good tokens, one bad), prints what each got and
// exits; with `--serve` it only serves.
//
//   async_upgrade [--serve] [--port 9004]
#include <duplex/duplex.hpp>

#include <asio/io_context.hpp>
#include <asio/use_future.hpp>

#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>

using server_type = duplex::server<duplex::transport::tcp, std::string>; // user data: user name

// A slow lookup service with one worker thread and a queue of jobs.
class token_database {
public:
    token_database() : worker_([this] { run(); }) {}
    ~token_database() {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            stopping_ = true;
        }
        wake_.notify_one();
        worker_.join();
    }

    // Calls `done(user)` on the worker thread, "" when the token is unknown.
    void lookup(std::string token, std::function<void(std::string)> done) {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            jobs_.emplace_back(std::move(token), std::move(done));
        }
        wake_.notify_one();
    }

private:
    void run() {
        const std::map<std::string, std::string> users = {{"t-alice", "alice"}, {"t-bob", "bob"}};
        std::unique_lock<std::mutex> lock(mutex_);
        for (;;) {
            wake_.wait(lock, [&] { return stopping_ || !jobs_.empty(); });
            if (jobs_.empty()) return;
            auto job = std::move(jobs_.front());
            jobs_.pop_front();
            lock.unlock();
            std::this_thread::sleep_for(std::chrono::milliseconds(100)); // the round trip
            const auto found = users.find(job.first);
            job.second(found == users.end() ? std::string() : found->second);
            lock.lock();
        }
    }

    std::mutex mutex_;
    std::condition_variable wake_;
    std::deque<std::pair<std::string, std::function<void(std::string)>>> jobs_;
    bool stopping_ = false;
    std::thread worker_; // last: starts after the members above exist
};

int main(int argc, char** argv) {
    bool serve_only = false;
    std::uint16_t port = 9004;
    for (int i = 1; i < argc; ++i) {
        if (std::strcmp(argv[i], "--serve") == 0)
            serve_only = true;
        else if (std::strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = static_cast<std::uint16_t>(std::atoi(argv[++i]));
        else {
            std::fprintf(stderr, "usage: %s [--serve] [--port P]\n", argv[0]);
            return 2;
        }
    }

    token_database database;
    asio::io_context io;
    server_type server(io);
    server.handlers().on_upgrade_async = [&](const duplex::request_info& request,
                                             duplex::pending_upgrade<std::string> pending) {
        // The request is valid during this call only: copy what the decision needs.
        std::string token(request.query_param("token").value_or(""));
        database.lookup(std::move(token), [pending](std::string user) mutable {
            if (user.empty()) return pending.reject(401, "unknown token\n");
            pending.accept({}, {}, std::move(user)); // the user name becomes c->data()
        });
    };
    server.handlers().on_message = [](const auto& c, const duplex::message_view& m) {
        c->send_text(c->data() + " said: " + std::string(m.data));
    };
    if (auto ec = server.listen("127.0.0.1", port)) {
        std::fprintf(stderr, "listen: %s\n", ec.message().c_str());
        return 1;
    }
    std::printf("async_upgrade: ws://127.0.0.1:%u/?token=t-alice\n",
                static_cast<unsigned>(server.port()));
    if (serve_only) {
        io.run();
        return 0;
    }

    std::thread server_thread([&] { io.run(); });
    asio::io_context client_io;
    auto work = asio::make_work_guard(client_io);
    std::thread client_thread([&] { client_io.run(); });
    const std::string base = "ws://127.0.0.1:" + std::to_string(server.port()) + "/?token=";
    int failures = 0;
    for (const char* token : {"t-alice", "t-bob", "t-mallory"}) {
        duplex::upgrade_response refusal;
        try {
            auto c = duplex::async_connect<duplex::transport::tcp>(
                         client_io.get_executor(), base + token, {}, refusal, asio::use_future)
                         .get();
            c->async_send(duplex::opcode::text, "hello", asio::use_future).get();
            std::printf("%s: %s\n", token, c->async_read(asio::use_future).get().data.c_str());
            c->async_close(1000, "", asio::use_future).get();
        } catch (const std::system_error& e) {
            std::printf("%s: refused, %d %s", token, refusal.status, refusal.body.c_str());
            if (refusal.status != 401) ++failures; // anything else is unexpected here
            (void)e;
        }
    }
    server.stop();
    server_thread.join();
    work.reset();
    client_thread.join();
    return failures == 0 ? 0 : 1;
}
