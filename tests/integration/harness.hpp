// What every integration test needs to run Asio and wait for events without timing anything:
// io_contexts on threads, bounded waits, and counters that io threads bump and the test thread
// waits on. Every bound is generous: only an event that never comes reaches it, however slow
// the machine (sanitizers, two loaded cores). Nothing here asserts; the tests do.
#pragma once

#include "../common/test_frames.hpp"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <mutex>
#include <thread>
#include <vector>

namespace test {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;
using namespace test_frames;

// The one bound for anything a test waits for: under sanitizers on a loaded machine an
// operation can take a second; only something that never happens takes this long.
inline constexpr std::chrono::milliseconds patience = 10s;

// An io_context running on `threads` threads for the life of the test. On the way out the
// io_context is stopped, so a failed check cannot hang the join.
struct io_runner {
    explicit io_runner(unsigned threads = 1) : work(asio::make_work_guard(io)) {
        for (unsigned i = 0; i < threads; ++i) pool.emplace_back([this] { io.run(); });
    }
    io_runner(const io_runner&) = delete;
    io_runner& operator=(const io_runner&) = delete;
    ~io_runner() {
        work.reset();
        io.stop();
        for (auto& t : pool) t.join();
    }
    asio::io_context io;
    asio::executor_work_guard<asio::io_context::executor_type> work;
    std::vector<std::thread> pool;
};

// Polls `condition` (set by io threads) until it holds or `limit` passes; true when it held.
template <class Condition>
bool eventually(Condition&& condition, std::chrono::milliseconds limit = patience) {
    const auto deadline = clock_type::now() + limit;
    while (!condition()) {
        if (clock_type::now() >= deadline) return false;
        std::this_thread::sleep_for(2ms);
    }
    return true;
}

// Runs `io` on the test thread until `done()` or `limit`; returns done().
template <class Pred>
bool run_until(asio::io_context& io, Pred&& done, std::chrono::milliseconds limit = patience) {
    const auto deadline = clock_type::now() + limit;
    while (!done()) {
        const auto now = clock_type::now();
        if (now >= deadline) return false;
        if (io.stopped()) io.restart();
        const auto step = std::min<clock_type::duration>(deadline - now, 10ms);
        if (io.run_one_for(step) == 0 && io.stopped()) std::this_thread::sleep_for(1ms);
    }
    return true;
}

// Counts events from io threads; the test thread waits for a count.
struct counter {
    std::mutex m;
    std::condition_variable cv;
    std::size_t count = 0;
    void add(std::size_t n = 1) {
        std::lock_guard<std::mutex> lock(m);
        count += n;
        cv.notify_all();
    }
    bool wait_for(std::size_t n, std::chrono::milliseconds limit = patience) {
        std::unique_lock<std::mutex> lock(m);
        return cv.wait_for(lock, limit, [&] { return count >= n; });
    }
};

} // namespace test
