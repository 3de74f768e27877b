// duplex/detail/deadline_service.hpp — one timer per execution context for every connection.
// SPDX-License-Identifier: BSL-1.0
//
// A connection used to own an asio::steady_timer (120 bytes) with a wait always pending (a
// handler and a strand executor copy, about 370 bytes more), for deadlines that fire every 30 s
// at most. Here the connections of one execution context share one timer: each keeps a
// deadline_entry (48 bytes) in a min-heap ordered by exact expiry, and the timer waits for the
// heap's top. Expiry stays exact (a heap keyed by time point, not coarse slots), so deadlines
// of a few milliseconds in tests fire when due.
//
// Threads: a mutex guards the heap and the timer, so connections on any io thread register
// and cancel; the owner hears of its expiry through deadline_entry::owner_ops::expire, outside
// the mutex, and is expected to move to its own strand from there.
//
// Lifetimes (docs/design.md): the heap does not own connections. An entry holds its owner only
// while delivering an expiry, by locking a weak reference; a connection that finishes cancels
// its entry, and one that is destroyed while registered removes it in its destructor. With no
// entry left the timer is cancelled, so an idle context's run() returns. The heap lives in a
// shared deadline_queue that entries keep: a context that is shut down detaches every entry and
// destroys its timer, and an entry that outlives its context (an in-memory stream can) then
// finds a detached queue, never a destroyed one.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/execution/outstanding_work.hpp>
#include <asio/execution_context.hpp>
#include <asio/io_context.hpp>
#include <asio/prefer.hpp>
#include <asio/query.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace duplex::detail {

class deadline_queue;

// One registration: a connection's next wake-up. Not movable: the heap points at it.
class deadline_entry {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;

    struct owner_ops {
        // Under the queue's mutex: a strong reference to the owner, or null when it is being
        // destroyed (its destructor then waits for the mutex and finds the entry removed).
        std::shared_ptr<void> (*lock)(void* owner);
        // Outside the mutex, with that reference: the deadline passed.
        void (*expire)(std::shared_ptr<void> owner);
    };

    deadline_entry(void* owner, const owner_ops& ops) noexcept : owner_(owner), ops_(&ops) {}
    deadline_entry(const deadline_entry&) = delete;
    deadline_entry& operator=(const deadline_entry&) = delete;
    inline ~deadline_entry();

    // Wake the owner at `at` (replacing an earlier registration). `executor` names the
    // execution context whose shared timer serves this entry; only the first call looks it up.
    inline void schedule(const asio::any_io_executor& executor, time_point at);
    // No wake-up: removes the registration, if any.
    inline void cancel();

private:
    friend class deadline_queue;
    static constexpr std::size_t not_queued = static_cast<std::size_t>(-1);

    std::shared_ptr<deadline_queue> queue_; // set by the first schedule()
    void* owner_;
    const owner_ops* ops_;
    time_point at_{};                // guarded by the queue's mutex
    std::size_t index_ = not_queued; // position in the heap; guarded by the queue's mutex
};

// The heap and the timer of one execution context.
class deadline_queue : public std::enable_shared_from_this<deadline_queue> {
public:
    using time_point = deadline_entry::time_point;

    void schedule(deadline_entry& entry, time_point at, const asio::any_io_executor& executor) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (shut_down_) return;
        entry.at_ = at;
        if (entry.index_ == deadline_entry::not_queued) {
            heap_.push_back(&entry); // first: if it throws, the entry is still not queued
            entry.index_ = heap_.size() - 1;
        }
        sift_up(entry.index_);
        sift_down(entry.index_);
        // Untracked: a copy of the executor for the timer's whole life must not count as work.
        // Never a strand: the first caller's executor may be one (a client connected through
        // a strand), and every wake-up of the context would then wait behind its handlers.
        if (!timer_)
            timer_.emplace(asio::prefer(without_strand(executor),
                                        asio::execution::outstanding_work.untracked));
        arm();
    }

    static asio::any_io_executor without_strand(const asio::any_io_executor& executor) {
        if (const auto* s = executor.target<asio::strand<asio::io_context::executor_type>>())
            return s->get_inner_executor();
        if (const auto* s = executor.target<asio::strand<asio::any_io_executor>>())
            return s->get_inner_executor();
        return executor;
    }

    void cancel(deadline_entry& entry) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (entry.index_ == deadline_entry::not_queued) return;
        remove(entry.index_);
        // A timer armed for an earlier entry just wakes early and re-arms; only an empty heap
        // must not leave a wait pending (it would keep run() from returning).
        if (heap_.empty()) disarm();
    }

    // The context is shutting down: no more wake-ups; the timer goes before its service does.
    void shutdown() {
        std::lock_guard<std::mutex> lock(mutex_);
        shut_down_ = true;
        for (auto* entry : heap_) entry->index_ = deadline_entry::not_queued;
        heap_.clear();
        disarm();
        timer_.reset();
    }

private:
    // Waits for the heap's top unless a wait for it (or for earlier) is pending. Under mutex_.
    void arm() {
        const time_point top = heap_.front()->at_;
        if (armed_ && armed_at_ <= top) return;
        armed_ = true;
        armed_at_ = top;
        const auto generation = ++generation_;
        timer_->expires_at(top); // cancels the wait it replaces
        timer_->async_wait([self = shared_from_this(), generation](std::error_code ec) {
            self->on_wait(ec, generation);
        });
    }

    void disarm() {
        if (!armed_) return;
        armed_ = false;
        ++generation_;
        if (timer_) timer_->cancel();
    }

    void on_wait(std::error_code ec, std::uint64_t generation) {
        std::vector<std::pair<std::shared_ptr<void>, void (*)(std::shared_ptr<void>)>> due;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            // A replaced or cancelled wait: the one that replaced it (if any) is pending. Every
            // cancellation moves the generation on, so the current wait is never aborted; any
            // other error is taken as a wake-up (what is due fires, the rest waits again).
            (void)ec;
            if (generation != generation_ || shut_down_) return;
            armed_ = false;
            const time_point now = deadline_entry::clock::now();
            while (!heap_.empty() && heap_.front()->at_ <= now) {
                deadline_entry* entry = heap_.front();
                remove(0);
                if (auto owner = entry->ops_->lock(entry->owner_))
                    due.emplace_back(std::move(owner), entry->ops_->expire);
            }
            if (!heap_.empty()) arm();
        }
        for (auto& [owner, expire] : due) expire(std::move(owner));
    }

    // ---- the binary heap, ordered by at_; each entry knows its index ------------------------
    bool before(std::size_t a, std::size_t b) const noexcept {
        return heap_[a]->at_ < heap_[b]->at_;
    }
    void swap_at(std::size_t a, std::size_t b) noexcept {
        std::swap(heap_[a], heap_[b]);
        heap_[a]->index_ = a;
        heap_[b]->index_ = b;
    }
    void sift_up(std::size_t i) noexcept {
        while (i > 0 && before(i, (i - 1) / 2)) {
            swap_at(i, (i - 1) / 2);
            i = (i - 1) / 2;
        }
    }
    void sift_down(std::size_t i) noexcept {
        for (;;) {
            const std::size_t left = 2 * i + 1;
            const std::size_t right = left + 1;
            std::size_t least = i;
            if (left < heap_.size() && before(left, least)) least = left;
            if (right < heap_.size() && before(right, least)) least = right;
            if (least == i) return;
            swap_at(i, least);
            i = least;
        }
    }
    void remove(std::size_t i) noexcept {
        heap_[i]->index_ = deadline_entry::not_queued;
        const std::size_t last = heap_.size() - 1;
        if (i != last) {
            heap_[i] = heap_[last];
            heap_[i]->index_ = i;
        }
        heap_.pop_back();
        if (i < heap_.size()) {
            sift_up(i);
            sift_down(i);
        }
    }

    std::mutex mutex_;
    std::vector<deadline_entry*> heap_;
    std::optional<asio::steady_timer> timer_; // made by the first schedule(), with its executor
    time_point armed_at_{};                   // what the pending wait waits for, when armed_
    std::uint64_t generation_ = 0;            // of the wait that counts; older ones are stale
    bool armed_ = false;                      // a wait is pending (outstanding work)
    bool shut_down_ = false;
};

// The execution context's queue, created on first use (asio::use_service).
class deadline_service : public asio::execution_context::service {
public:
    using key_type = deadline_service;
    inline static asio::execution_context::id id;

    explicit deadline_service(asio::execution_context& context)
        : asio::execution_context::service(context), queue_(std::make_shared<deadline_queue>()) {}
    ~deadline_service() override { queue_->shutdown(); }

    const std::shared_ptr<deadline_queue>& queue() const noexcept { return queue_; }

private:
    void shutdown() override { queue_->shutdown(); }

    std::shared_ptr<deadline_queue> queue_;
};

deadline_entry::~deadline_entry() { cancel(); }

void deadline_entry::schedule(const asio::any_io_executor& executor, time_point at) {
    if (!queue_)
        queue_ =
            asio::use_service<deadline_service>(asio::query(executor, asio::execution::context))
                .queue();
    queue_->schedule(*this, at, executor);
}

void deadline_entry::cancel() {
    if (queue_) queue_->cancel(*this);
}

} // namespace duplex::detail
