// duplex/detail/send_inbox.hpp — messages sent to a connection from outside its strand.
// SPDX-License-Identifier: BSL-1.0
//
// A publish to a room runs on the publisher's strand and sends to every member; a member's
// queue may only be touched on the member's own strand. Dispatching each message to the
// member's strand costs an operation, the strand's mutex and executor copies per message and
// member. Instead the sender appends the message here (a spinlock held for one push), and only
// the first message since the last drain schedules anything: one drain per member per turn,
// which frames everything in order on the member's strand and writes it at once
// (connection_write.hpp, drain_inbox()).
//
// Order: every send made on the strand drains the inbox first, and so does close(), so a
// message sent from another thread before a send or close on the strand still goes first.
#pragma once

#include "buffer_cache.hpp"

#include "../protocol/frame.hpp"
#include "../shared_message.hpp"

#include <atomic>
#include <cstddef>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace duplex::detail {

struct inbox_entry {
    shared_message shared; // a message encoded once for many connections, or empty
    std::string framed;    // otherwise the payload, with room in front for the header
    std::size_t cost = 0;  // what send() counted against the send limits
    protocol::opcode type = protocol::opcode::text;
};

class send_inbox {
public:
    // True when the inbox was empty: nothing is scheduled yet, and the caller must schedule the
    // drain.
    bool push(inbox_entry&& entry) {
        // Storage from the sending thread's cache, taken before the lock is.
        std::vector<inbox_entry> storage;
        if (!pending_.load(std::memory_order_relaxed)) storage = vector_cache<inbox_entry>::take();
        bool first = false;
        {
            const guard held(*this); // released if push_back throws
            first = entries_.empty();
            if (entries_.capacity() == 0) entries_.swap(storage);
            entries_.push_back(std::move(entry));
            pending_.store(true, std::memory_order_relaxed);
        }
        if (storage.capacity() != 0) vector_cache<inbox_entry>::give(storage);
        return first;
    }

    // Whether a drain would find something. Relaxed: a push racing with this check is not
    // ordered before the caller's send anyway, and its own scheduled drain takes it.
    bool pending() const noexcept { return pending_.load(std::memory_order_relaxed); }

    // Everything pushed so far, in order, moved into `out` (empty on entry). Hand `out` back
    // with recycle() once it is processed.
    void take(std::vector<inbox_entry>& out) {
        const guard held(*this);
        out.swap(entries_);
        pending_.store(false, std::memory_order_relaxed);
    }

    // The storage of a vector that take() filled goes to this thread's cache, for whichever
    // inbox fills next.
    static void recycle(std::vector<inbox_entry>& drained) {
        vector_cache<inbox_entry>::give(drained);
    }

private:
    // A spinlock, not a mutex: it guards one vector operation, is rarely contended (two
    // publishers on different threads sending to one member at the same instant), and an idle
    // connection should not carry a 40-byte std::mutex.
    void lock() noexcept {
        while (locked_.exchange(true, std::memory_order_acquire)) {
            while (locked_.load(std::memory_order_relaxed)) std::this_thread::yield();
        }
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }
    struct guard {
        explicit guard(send_inbox& inbox) noexcept : inbox_(inbox) { inbox_.lock(); }
        ~guard() { inbox_.unlock(); }
        guard(const guard&) = delete;
        guard& operator=(const guard&) = delete;
        send_inbox& inbox_;
    };

    std::atomic<bool> locked_{false};
    std::atomic<bool> pending_{false}; // !entries_.empty(), readable without the lock
    std::vector<inbox_entry> entries_;
};

} // namespace duplex::detail
