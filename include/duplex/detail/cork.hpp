// duplex/detail/cork.hpp — one deferred flush per io thread for every corked connection.
// SPDX-License-Identifier: BSL-1.0
//
// A connection that was sent something outside its own read's handlers (a publish from another
// connection's handler, a send from another thread) does not write at once: it joins the batch
// of its thread, and the batch writes every member once the handlers that are ready now have
// run (connection_write.hpp, cork()). One scheduler operation per batch, not one per member:
// with a thousand members a handler each is a thousand allocations outstanding at once, which
// the per-thread handler cache of Asio does not cover, and costs more than it saves when each
// member gets one message per turn.
#pragma once

#include <asio/defer.hpp>
#include <asio/execution_context.hpp>

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace duplex::detail {

class cork_batch {
public:
    // Flushes one member: dispatches to its strand (which is why the batch holds it untyped).
    using flush_fn = void (*)(std::shared_ptr<void>&&);

    // Adds `member` to this thread's open batch for `context`, starting one (deferred on
    // `executor()`, called only then: copying an executor is not free) if there is none. False
    // when this thread's open batch belongs to another execution context: the caller then
    // schedules its flush itself.
    template <class MakeExecutor>
    static bool join(MakeExecutor&& executor, asio::execution_context& context,
                     std::shared_ptr<void> member, flush_fn flush) {
        std::shared_ptr<cork_batch>& current = slot();
        if (current) {
            std::lock_guard<std::mutex> lock(current->mutex_);
            if (!current->closed_) {
                if (&current->context_ != &context) return false;
                current->members_.push_back({std::move(member), flush});
                return true;
            }
        }
        current = std::make_shared<cork_batch>(context);
        current->members_.push_back({std::move(member), flush});
        asio::defer(executor(), runner(current));
        return true;
    }

    explicit cork_batch(asio::execution_context& context) : context_(context) {}

private:
    struct member {
        std::shared_ptr<void> connection;
        flush_fn flush;
    };

    // The deferred handler. A batch is joined only on the thread that started it, but Asio may
    // run the handler on another thread of the same io_context: the mutex covers the members,
    // and once the handler took them the batch is closed and the thread starts a new one.
    struct runner {
        std::shared_ptr<cork_batch> batch;
        explicit runner(std::shared_ptr<cork_batch> b) : batch(std::move(b)) {}
        runner(runner&&) noexcept = default;
        runner& operator=(runner&&) noexcept = default;
        runner(const runner&) = delete;
        runner& operator=(const runner&) = delete;
        // Destroyed unrun (its execution context shut down): let go of the members now, as any
        // pending handler of theirs would, not when the thread that started the batch exits.
        ~runner() {
            if (batch) (void)batch->take();
        }
        void operator()() {
            for (auto& m : batch->take()) m.flush(std::move(m.connection));
        }
    };

    std::vector<member> take() {
        std::lock_guard<std::mutex> lock(mutex_);
        closed_ = true;
        std::vector<member> taken;
        taken.swap(members_);
        return taken;
    }

    static std::shared_ptr<cork_batch>& slot() {
        thread_local std::shared_ptr<cork_batch> current;
        return current;
    }

    asio::execution_context& context_;
    std::mutex mutex_;
    bool closed_ = false; // taken by its handler: members go into a new batch
    std::vector<member> members_;
};

} // namespace duplex::detail
