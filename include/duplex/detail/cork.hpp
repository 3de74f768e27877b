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
#include <utility>
#include <vector>

namespace duplex::detail {

class cork_batch {
public:
    // Flushes one member: dispatches to its strand (which is why the batch holds it untyped).
    using flush_fn = void (*)(std::shared_ptr<void>&&);

    // Adds `member` to this thread's batch for `context`, starting one (deferred on
    // `executor()`) if there is none. False when this thread's batch belongs to another
    // execution context: the caller then schedules its flush itself.
    // `executor()` is called only to start a batch: copying an executor is not free, and it is
    // paid once per member per turn.
    template <class MakeExecutor>
    static bool join(MakeExecutor&& executor, asio::execution_context& context,
                     std::shared_ptr<void> member, flush_fn flush) {
        cork_batch*& current = slot();
        if (current == nullptr) {
            auto batch = std::make_unique<cork_batch>(context);
            current = batch.get();
            asio::defer(executor(), [batch = std::move(batch)]() mutable { batch->run(); });
        } else if (&current->context_ != &context) {
            return false;
        }
        current->members_.push_back({std::move(member), flush});
        return true;
    }

    explicit cork_batch(asio::execution_context& context) : context_(context) {}
    cork_batch(const cork_batch&) = delete;
    cork_batch& operator=(const cork_batch&) = delete;
    // Also when the handler is destroyed unrun (its execution context shut down).
    ~cork_batch() { leave_slot(); }

private:
    struct member {
        std::shared_ptr<void> connection;
        flush_fn flush;
    };

    static cork_batch*& slot() {
        thread_local cork_batch* current = nullptr;
        return current;
    }
    void leave_slot() noexcept {
        if (slot() == this) slot() = nullptr;
    }

    void run() {
        // What is corked while these flush (a write completing at once may let a handler
        // send) goes into the next batch.
        leave_slot();
        for (auto& m : members_) m.flush(std::move(m.connection));
        members_.clear();
    }

    asio::execution_context& context_;
    std::vector<member> members_;
};

} // namespace duplex::detail
