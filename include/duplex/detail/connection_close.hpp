// duplex/detail/connection_close.hpp — a connection's lifecycle, failures, close and timers.
// SPDX-License-Identifier: BSL-1.0
//
// Part of connection.hpp (which includes it; never include it alone). Here: the one function
// that moves the lifecycle forward (advance) with each phase's entry actions, the one function
// every failure goes through (fail), the closing handshake and the transport shutdown as
// RFC 6455 7.1.1 orders them, and the one timer that serves every deadline.
#pragma once

#include "../connection.hpp"

namespace duplex {

// The only assignment to phase_. Entry actions: every phase past open tells other threads
// (send() answers `closed`); closing and ending start the close deadline; ending shuts the
// transport down; finished releases everything and tells everyone waiting.
template <class Transport, class UserData>
void connection<Transport, UserData>::advance(phase next) {
    if (next <= phase_) return;
    phase_ = next;
    publish_closing();
    if (next == phase::finished) return on_finished();
    if (deadlines_.start_close(options_, clock::now())) arm_timer();
    if (next != phase::ending) return;
    // Our side is done sending. RFC 6455 7.1.1: the server (or an endpoint that failed the
    // connection) ends the TCP connection first; a client waits for the server to do so and
    // reads until then, ending it itself only if the close deadline passes.
    const bool first = session_.get_role() == protocol::role::server ||
                       session_.state() == protocol::session_state::failed;
    if (first) {
        Transport::async_shutdown(
            stream_, asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                      std::error_code) { self->drain(); }));
    } else {
        drain();
    }
}

template <class Transport, class UserData>
void connection<Transport, UserData>::on_finished() {
    timer_.cancel();
    timer_armed_ = false;
    Transport::close(stream_);
    const std::error_code reason = result_.error ? result_.error : make_error_code(error::closed);
    // Frames handed to a write stay alive until its completion (a TLS stream still reads them
    // as its lower-layer writes complete); their senders hear the outcome now, and their bytes
    // no longer count as queued: they will never be sent.
    unbuffer(queue_.abandon_in_flight(reason));
    drop_queue(reason);
    if (cold_) {
        for (auto& w : cold_->control_waiters) w(reason);
        for (auto& w : cold_->control_waiters_in_flight) w(reason);
        cold_->control_waiters.clear();
        cold_->control_waiters_in_flight.clear();
        if (cold_->read_waiter) {
            auto done = std::move(cold_->read_waiter);
            cold_->read_waiter = {};
            done(reason, message{});
        }
        for (auto& w : cold_->close_waiters) w(result_.error);
        cold_->close_waiters.clear();
    }
    if (!reading_) release_read_buffer(); // else on_read releases it
    note_close_frames();
    auto handlers = std::move(handlers_);
    handlers_.reset();
    auto self = this->shared_from_this();
    if (handlers && handlers->on_close) handlers->on_close(self, result_);
    if (!cold_) return;
    auto observers = std::move(cold_->close_observers);
    cold_->close_observers.clear();
    for (auto& observer : observers) observer(self);
}

// Every failure comes here: a protocol violation, a transport error, a timeout, a slow reader.
// The first is the connection's error, in close_info.error and in on_error (which runs once,
// here, unless the peer merely ended the transport: on_close's 1006 tells that story). Later
// failures change nothing, so on_error and close_info always agree. True for the first.
template <class Transport, class UserData>
bool connection<Transport, UserData>::fail(std::error_code ec) {
    if (result_.error || !ec) return false;
    result_.error = ec;
    if (!Transport::is_clean_end(ec) && handlers_ && handlers_->on_error)
        handlers_->on_error(this->shared_from_this(), ec);
    return true;
}

// The same, with the close code (and its reason) that this failure gives the connection.
template <class Transport, class UserData>
bool connection<Transport, UserData>::fail(std::error_code ec, std::uint16_t code,
                                           std::string reason) {
    if (result_.error || !ec) return false;
    result_.code = code;
    result_.reason = std::move(reason);
    return fail(ec);
}

// Fails and cuts the transport at once, without a close handshake.
template <class Transport, class UserData>
void connection<Transport, UserData>::abort(std::error_code ec) {
    fail(ec);
    finish();
}

// The peer reads too slowly for what we send: stop queueing, tell it why, and let the close
// deadline cut the transport if it does not read even that.
template <class Transport, class UserData>
void connection<Transport, UserData>::fail_slow_reader() {
    if (finished() || session_.state() != protocol::session_state::open) return;
    constexpr auto code = protocol::close_code::policy_violation;
    drop_queue(make_error_code(error::send_buffer_full));
    (void)session_.close(code, "send buffer limit");
    advance(phase::closing);
    fail(make_error_code(error::send_buffer_full), static_cast<std::uint16_t>(code),
         "send buffer limit");
    resume_input();
}

// The transport ended or failed. After a completed close handshake that is clean however it
// ends (7.1.1 lets the server reset the TCP connection); while draining after failing the
// connection, an orderly end is what we wait for.
template <class Transport, class UserData>
void connection<Transport, UserData>::on_transport_end(std::error_code ec) {
    const auto state = session_.state();
    const bool failed = state == protocol::session_state::failed;
    if (state == protocol::session_state::closed || (failed && Transport::is_clean_end(ec)))
        return finish();
    if (failed)
        fail(ec);
    else
        fail(ec, static_cast<std::uint16_t>(protocol::close_code::abnormal), {});
    finish();
}

template <class Transport, class UserData>
void connection<Transport, UserData>::note_close_frames() {
    result_.sent_code = session_.sent_close_code();
    result_.received_code = session_.peer_close_code();
    result_.initiator = session_.initiator();
}

// close() on the strand: our close frame goes out after the messages queued before it.
template <class Transport, class UserData>
void connection<Transport, UserData>::request_close(std::uint16_t code, std::string reason) {
    if (phase_ != phase::open || session_.state() != protocol::session_state::open) return;
    drain_inbox(); // what other threads sent before close() goes before the close frame
    queue_.close_after_queued(code, std::move(reason));
    advance(phase::closing);
    resume_input(); // the peer's close is what completes ours
}

// Reads and discards until the peer ends the transport (or the deadline cuts it).
template <class Transport, class UserData>
void connection<Transport, UserData>::drain() {
    if (finished()) return;
    read_begin_ = read_end_ = 0;
    do_read();
}

// One registration serves every deadline: the connection asks its execution context's shared
// timer (detail/deadline_service.hpp) to wake it at the earliest, and registers again when it
// wakes. Activity does not touch the registration; a wake-up that finds the deadline moved
// just registers the new one.
template <class Transport, class UserData>
void connection<Transport, UserData>::arm_timer() {
    if (finished()) return;
    const auto next = deadlines_.next_wake(options_, phase_ == phase::open);
    if (next == clock::time_point::max()) {
        timer_armed_ = false;
        timer_.cancel();
        return;
    }
    timer_armed_ = true;
    timer_.schedule(strand_.get_inner_executor(), next);
}

// How the deadline service reaches a connection: weakly (a registration never keeps a
// connection alive), and on its strand.
template <class Transport, class UserData>
const detail::deadline_entry::owner_ops& connection<Transport, UserData>::timer_ops() noexcept {
    static constexpr detail::deadline_entry::owner_ops ops{
        [](void* owner) -> std::shared_ptr<void> {
            return static_cast<connection*>(owner)->weak_from_this().lock();
        },
        [](std::shared_ptr<void> owner) {
            auto self = std::static_pointer_cast<connection>(std::move(owner));
            const executor_type strand = self->strand_;
            asio::post(strand, [self = std::move(self)] { self->on_timer(); });
        }};
    return ops;
}

template <class Transport, class UserData>
void connection<Transport, UserData>::on_timer() {
    timer_armed_ = false;
    if (finished()) return;
    const auto now = clock::now();
    const auto due = deadlines_.check(options_, now, phase_ == phase::open);
    if (due.close_deadline) {
        // The peer did not finish the close handshake or the transport shutdown in time.
        if (session_.state() != protocol::session_state::closed) fail(error::timed_out);
        return finish();
    }
    if (due.pong_overdue) {
        fail(error::timed_out, static_cast<std::uint16_t>(protocol::close_code::abnormal), {});
        return finish();
    }
    if (due.ping) {
        deadlines_.ping_sent(now);
        (void)session_.ping();
        flush();
    }
    if (due.idle)
        request_close(static_cast<std::uint16_t>(protocol::close_code::going_away), "idle timeout");
    arm_timer();
}

} // namespace duplex
