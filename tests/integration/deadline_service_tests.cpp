// The shared deadline timer of an execution context (detail/deadline_service.hpp): wake-ups in
// deadline order, cancellation, owners that finish or are destroyed while registered, no timer
// work left once nothing is registered, and many io threads at once. Then the same promises
// seen through connections over the in-memory transport.
#include "memory_harness.hpp"

#include <duplex/detail/deadline_service.hpp>

#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/strand.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

using namespace test;
using duplex::detail::deadline_entry;

namespace {

// A stand-in for a connection: a strand, an entry, and what happens when it wakes.
struct sleeper : std::enable_shared_from_this<sleeper> {
    sleeper(asio::io_context& io, int number)
        : strand(asio::make_strand(io)), id(number), entry(this, ops()) {}

    static const deadline_entry::owner_ops& ops() {
        static constexpr deadline_entry::owner_ops o{
            [](void* owner) -> std::shared_ptr<void> {
                return static_cast<sleeper*>(owner)->weak_from_this().lock();
            },
            [](std::shared_ptr<void> owner) {
                auto self = std::static_pointer_cast<sleeper>(std::move(owner));
                auto where = self->strand;
                asio::post(where, [self = std::move(self)] {
                    ++self->wakes;
                    if (self->on_wake) self->on_wake(*self);
                });
            }};
        return o;
    }

    void schedule_in(std::chrono::milliseconds after) {
        entry.schedule(strand.get_inner_executor(), deadline_entry::clock::now() + after);
    }

    asio::strand<asio::io_context::executor_type> strand;
    int id;
    int wakes = 0; // on the strand
    std::function<void(sleeper&)> on_wake;
    deadline_entry entry;
};

// Runs until the io_context is out of work, or `limit`: true when it ran out of work.
bool runs_out_of_work(asio::io_context& io, std::chrono::milliseconds limit = patience) {
    io.restart();
    io.run_for(limit);
    return io.stopped();
}

} // namespace

TEST_CASE("Deadline service: wake-ups come in deadline order, once each, then run() returns",
          "[deadline_service][timeouts]") {
    asio::io_context io;
    constexpr int count = 40;
    std::vector<int> order;
    std::vector<std::shared_ptr<sleeper>> sleepers;
    std::vector<int> slots(count);
    std::iota(slots.begin(), slots.end(), 1);
    std::shuffle(slots.begin(), slots.end(), std::mt19937(7));
    const auto base = deadline_entry::clock::now();
    for (int i = 0; i < count; ++i) {
        auto s = std::make_shared<sleeper>(io, slots[static_cast<std::size_t>(i)]);
        s->on_wake = [&order](sleeper& me) { order.push_back(me.id); };
        // Registered far away first, then moved: a moved entry wakes at its new time only.
        s->entry.schedule(io.get_executor(), base + std::chrono::hours(1));
        s->entry.schedule(io.get_executor(), base + std::chrono::milliseconds(2 * s->id));
        sleepers.push_back(s);
    }
    REQUIRE(runs_out_of_work(io));
    std::vector<int> expected(count);
    std::iota(expected.begin(), expected.end(), 1);
    CHECK(order == expected);
    for (auto& s : sleepers) CHECK(s->wakes == 1);
}

TEST_CASE("Deadline service: a cancelled entry never wakes and leaves no timer work",
          "[deadline_service][timeouts]") {
    asio::io_context io;
    auto kept = std::make_shared<sleeper>(io, 1);
    auto cancelled = std::make_shared<sleeper>(io, 2);
    cancelled->schedule_in(std::chrono::milliseconds(5));
    kept->schedule_in(std::chrono::milliseconds(20));
    cancelled->entry.cancel();
    REQUIRE(runs_out_of_work(io));
    CHECK(kept->wakes == 1);
    CHECK(cancelled->wakes == 0);

    // Only far deadlines registered, then cancelled: nothing keeps run() going.
    kept->schedule_in(std::chrono::hours(1));
    cancelled->schedule_in(std::chrono::hours(2));
    kept->entry.cancel();
    cancelled->entry.cancel();
    CHECK(runs_out_of_work(io));
}

TEST_CASE("Deadline service: an owner dropped while registered is freed and removed",
          "[deadline_service][timeouts]") {
    asio::io_context io;
    auto early = std::make_shared<sleeper>(io, 1);
    auto late = std::make_shared<sleeper>(io, 2);
    std::weak_ptr<sleeper> watch_early = early;
    std::weak_ptr<sleeper> watch_late = late;
    early->schedule_in(std::chrono::milliseconds(10));
    late->schedule_in(std::chrono::hours(1));
    // The registrations do not keep their owners: the last owner's reference frees them.
    early.reset();
    late.reset();
    CHECK(watch_early.expired());
    CHECK(watch_late.expired());
    // And a removed registration leaves no wait behind (the hour-long one would hold run()).
    CHECK(runs_out_of_work(io));
}

TEST_CASE("Deadline service: a context destroyed with entries registered detaches them",
          "[deadline_service][timeouts]") {
    // An entry that outlives its context (an in-memory stream's connection can); no strand,
    // which could not outlive the context.
    static constexpr deadline_entry::owner_ops never{
        [](void*) -> std::shared_ptr<void> { return nullptr; }, [](std::shared_ptr<void>) {}};
    auto io = std::make_unique<asio::io_context>();
    const asio::any_io_executor executor = io->get_executor();
    auto entry = std::make_unique<deadline_entry>(nullptr, never);
    entry->schedule(executor, deadline_entry::clock::now() + std::chrono::hours(1));
    io->poll(); // the wait is pending
    io.reset(); // shut down with the wait pending: the entry is detached, not left dangling
    // Ignored: the context is gone (the executor is not used again once the entry has a queue).
    entry->schedule(executor, deadline_entry::clock::now());
    entry->cancel();
    entry.reset(); // its destructor finds a detached queue
}

TEST_CASE("Deadline service: many io threads register, wake, re-register and drop owners",
          "[deadline_service][timeouts][threads]") {
    asio::io_context io;
    constexpr int count = 120;
    constexpr int rounds = 4;
    std::mutex mutex;
    std::condition_variable changed;
    int done = 0;
    std::vector<std::shared_ptr<sleeper>> sleepers;
    for (int i = 0; i < count; ++i) {
        auto s = std::make_shared<sleeper>(io, i);
        s->on_wake = [&](sleeper& me) {
            if (me.wakes < rounds) return me.schedule_in(std::chrono::milliseconds(me.id % 7));
            // Done: an odd owner stays registered far away until the test drops it.
            if (me.id % 2 == 1) me.schedule_in(std::chrono::hours(1));
            std::lock_guard<std::mutex> lock(mutex);
            ++done;
            changed.notify_all();
        };
        sleepers.push_back(s);
    }
    // Registered from the threads that run the context, on each owner's strand.
    for (auto& s : sleepers)
        asio::post(s->strand,
                   [s = s.get()] { s->schedule_in(std::chrono::milliseconds(s->id % 5)); });
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) threads.emplace_back([&io] { io.run_for(patience); });
    {
        std::unique_lock<std::mutex> lock(mutex);
        CHECK(changed.wait_for(lock, patience, [&] { return done == count; }));
    }
    std::vector<std::weak_ptr<sleeper>> watch(sleepers.begin(), sleepers.end());
    // Dropped on this thread while the io threads run: the registered ones leave the heap,
    // the timer is cancelled, and every run() returns.
    sleepers.clear();
    for (auto& t : threads) t.join();
    CHECK(io.stopped());
    for (auto& w : watch) CHECK(w.expired());
}

// ---- through connections ----------------------------------------------------------------

TEST_CASE("Deadline service: finished connections leave it and run() returns without waiting for "
          "the keepalive",
          "[deadline_service][connection][timeouts]") {
    asio::io_context io;
    auto [a, b] = memory::make_pair(io.get_executor());
    duplex::connection_options options = fast_options();
    options.ping_interval = std::chrono::hours(1); // registered for an hour
    auto server = std::make_shared<mem_connection>(std::move(a), role::server, options);
    auto client = std::make_shared<mem_connection>(std::move(b), role::client, options);
    auto srec = std::make_shared<record>();
    auto crec = std::make_shared<record>();
    server->start(record_into(srec));
    client->start(record_into(crec));
    client->close(1000, "bye");
    // Only a registration left behind would keep the context busy for the hour.
    REQUIRE(runs_out_of_work(io));
    REQUIRE(srec->closed);
    REQUIRE(crec->closed);
    CHECK(crec->closed->code == 1000);
    CHECK(srec->errors.empty());
    CHECK(crec->errors.empty());
    std::weak_ptr<mem_connection> ws = server;
    std::weak_ptr<mem_connection> wc = client;
    server.reset();
    client.reset();
    CHECK(ws.expired());
    CHECK(wc.expired());
}

TEST_CASE("Deadline service: open connections destroyed with their context are freed",
          "[deadline_service][connection][timeouts]") {
    auto io = std::make_unique<asio::io_context>();
    auto [a, b] = memory::make_pair(io->get_executor());
    duplex::connection_options options = fast_options();
    options.ping_interval = std::chrono::hours(1);
    auto server = std::make_shared<mem_connection>(std::move(a), role::server, options);
    auto client = std::make_shared<mem_connection>(std::move(b), role::client, options);
    server->start({});
    client->start({});
    io->poll(); // both registered, both reading
    std::weak_ptr<mem_connection> ws = server;
    std::weak_ptr<mem_connection> wc = client;
    server.reset();
    client.reset();
    CHECK_FALSE(ws.expired()); // their pending reads hold them, not their registrations
    io.reset();
    CHECK(ws.expired());
    CHECK(wc.expired());
}

TEST_CASE("Deadline service: keepalive on connections served by several io threads",
          "[deadline_service][connection][timeouts][threads]") {
    asio::io_context io;
    constexpr int pairs = 8;
    duplex::connection_options options = fast_options();
    options.ping_interval = std::chrono::milliseconds(10);
    options.idle_timeout = std::chrono::milliseconds(60); // then both close with 1001
    // Generous: a slow machine (or a sanitizer) must not turn a late pong or close into 1006.
    options.pong_timeout = patience / 2;
    options.close_timeout = patience / 2;
    std::vector<std::shared_ptr<record>> records;
    std::vector<std::weak_ptr<mem_connection>> watch;
    for (int i = 0; i < pairs; ++i) {
        auto [a, b] = memory::make_pair(io.get_executor());
        for (auto* s : {&a, &b}) {
            auto c = std::make_shared<mem_connection>(
                std::move(*s), s == &a ? role::server : role::client, options);
            records.push_back(std::make_shared<record>());
            c->start(record_into(records.back()));
            watch.push_back(c);
        }
    }
    std::vector<std::thread> threads;
    for (int t = 0; t < 3; ++t) threads.emplace_back([&io] { io.run_for(patience); });
    for (auto& t : threads) t.join();
    CHECK(io.stopped()); // out of work: every connection ended, no timer wait left
    for (auto& r : records) {
        REQUIRE(r->closed);
        CHECK(r->closed->code == 1001);
    }
    for (auto& w : watch) CHECK(w.expired());
}
