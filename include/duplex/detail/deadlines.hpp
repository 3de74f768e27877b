// duplex/detail/deadlines.hpp — a connection's four deadlines, given "now", without a timer.
// SPDX-License-Identifier: BSL-1.0
//
// A connection registers one wake-up at a time with its execution context's shared timer
// (deadline_service.hpp); this class says when it must wake and what is due when it does:
// the close deadline (the close handshake and the transport shutdown take too long), the
// keepalive ping (nothing arrived for ping_interval), the pong timeout (nothing arrived for
// pong_timeout after that ping) and the idle timeout (no message either way). It is told what
// happened and when, and never reads a clock itself, so tests drive it with made-up times
// (tests/unit/connection_parts_tests.cpp). Activity never re-arms the timer: a wake-up that
// finds its deadline moved registers again, which costs less than a timer update per message.
//
// The durations are read from the caller's options at each call (any type with the fields
// ping_interval, pong_timeout, idle_timeout and close_timeout, as connection_options has),
// rather than copied here: a connection keeps one copy of its options.
#pragma once

#include <algorithm>
#include <chrono>

namespace duplex::detail {

class deadlines {
public:
    using clock = std::chrono::steady_clock;
    using time_point = clock::time_point;
    using duration = std::chrono::milliseconds;

    // What a wake-up at some time found due; more than one may be.
    struct due {
        bool close_deadline = false; // the close handshake or shutdown took too long: cut
        bool pong_overdue = false;   // the keepalive ping went unanswered: fail the connection
        bool ping = false;           // time for a keepalive ping
        bool idle = false;           // no message either way for idle_timeout: close (1001)
        bool any() const noexcept { return close_deadline || pong_overdue || ping || idle; }
    };

    explicit deadlines(time_point now) noexcept : last_received_(now), last_activity_(now) {}

    // Bytes arrived: the peer is alive, a keepalive ping is answered.
    void received(time_point now) noexcept {
        last_received_ = now;
        awaiting_pong_ = false;
    }
    time_point last_received() const noexcept { return last_received_; }

    // A message went either way (for the idle timeout).
    void active(time_point now) noexcept { last_activity_ = now; }

    // The closing phase began: the close deadline runs from the first call; false after that.
    template <class Options>
    bool start_close(const Options& options, time_point now) noexcept {
        if (close_started_) return false;
        close_started_ = true;
        close_at_ = now + duration(options.close_timeout);
        return true;
    }
    bool close_started() const noexcept { return close_started_; }

    // A keepalive ping was sent at `now`.
    void ping_sent(time_point now) noexcept {
        awaiting_pong_ = true;
        ping_sent_ = now;
    }

    // When the timer must wake next; time_point::max() for never. Keepalive and idle apply
    // only while the connection is open.
    template <class Options>
    time_point next_wake(const Options& options, bool open) const noexcept {
        auto next = time_point::max();
        if (close_started_) next = std::min(next, close_at_);
        if (open) {
            if (duration(options.ping_interval).count() > 0)
                next = std::min(next, awaiting_pong_
                                          ? ping_sent_ + duration(options.pong_timeout)
                                          : last_received_ + duration(options.ping_interval));
            if (duration(options.idle_timeout).count() > 0)
                next = std::min(next, last_activity_ + duration(options.idle_timeout));
        }
        return next;
    }

    template <class Options>
    due check(const Options& options, time_point now, bool open) const noexcept {
        due d;
        d.close_deadline = close_started_ && now >= close_at_;
        if (open && duration(options.ping_interval).count() > 0) {
            d.pong_overdue = awaiting_pong_ && now >= ping_sent_ + duration(options.pong_timeout);
            d.ping = !awaiting_pong_ && now >= last_received_ + duration(options.ping_interval);
        }
        d.idle = open && duration(options.idle_timeout).count() > 0 &&
                 now >= last_activity_ + duration(options.idle_timeout);
        return d;
    }

private:
    time_point last_received_;
    time_point last_activity_;
    time_point ping_sent_{};
    time_point close_at_{};
    bool awaiting_pong_ = false;
    bool close_started_ = false;
};

} // namespace duplex::detail
