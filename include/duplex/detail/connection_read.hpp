// duplex/detail/connection_read.hpp — a connection's read path.
// SPDX-License-Identifier: BSL-1.0
//
// Part of connection.hpp (which includes it; never include it alone). Bytes come from the
// transport into a buffer (the thread's, lent for one read, or the connection's own), the
// protocol session turns them into events, and events become handler calls or complete an
// async_read. The next bytes are parsed only after a handler returned (or the next async_read
// is waiting): that is the flow control, for whole messages and for partial pieces alike.
#pragma once

#include "../connection.hpp"

namespace duplex {

template <class Transport, class UserData>
char* connection<Transport, UserData>::thread_buffer(std::size_t size) {
    thread_local std::unique_ptr<char[]> buffer;
    thread_local std::size_t capacity = 0;
    if (capacity < size) {
        buffer = std::make_unique<char[]>(size);
        capacity = size;
    }
    return buffer.get();
}

template <class Transport, class UserData>
void connection<Transport, UserData>::ensure_read_buffer(std::size_t at_least) {
    const std::size_t size =
        reads_when_ready() ? at_least : std::max(at_least, options_.read_buffer_size);
    if (!read_buffer_ || read_capacity_ < size) {
        read_buffer_ = std::make_unique<char[]>(size);
        read_capacity_ = size;
    }
}

// Copies unparsed bytes into the connection's own buffer (initial bytes after the HTTP head,
// or what a satisfied async_read left in the thread's buffer).
template <class Transport, class UserData>
void connection<Transport, UserData>::keep_input(const char* data, std::size_t size) {
    if (data == read_buffer_.get()) return;
    ensure_read_buffer(size);
    std::memmove(read_buffer_.get(), data, size);
    input_ = read_buffer_.get();
    read_begin_ = 0;
    read_end_ = size;
}

// A pending read owns the buffer it was given until its completion handler runs, even after
// the transport was closed: Asio's SSL stream copies decrypted bytes into it when its own
// lower-layer read completes, which can be after close() (docs/design.md, lifetimes).
template <class Transport, class UserData>
void connection<Transport, UserData>::release_read_buffer() {
    read_buffer_.reset();
    read_capacity_ = 0;
    input_ = nullptr;
    read_begin_ = read_end_ = 0;
}

template <class Transport, class UserData>
void connection<Transport, UserData>::start_read(read_handler done) {
    if (handler_mode_ || has_read_waiter()) return done(error::operation_in_progress, message{});
    if (finished())
        return done(result_.error ? result_.error : make_error_code(error::closed), message{});
    cold().read_waiter = std::move(done);
    if (!timer_armed_) arm_timer();
    process_input();
}

// While closing, input is read whatever the application asked for: the peer's close frame or
// its end of the transport is what completes the close.
template <class Transport, class UserData>
bool connection<Transport, UserData>::wants_input() const noexcept {
    return handler_mode_ || has_read_waiter() || phase_ != phase::open;
}

// After close() or a failure: write what is queued and make sure input is being read. Never
// parses from inside a handler (process_input is running then): that would deliver the next
// event inside the current one and free the view the handler is looking at.
template <class Transport, class UserData>
void connection<Transport, UserData>::resume_input() {
    if (reading_ || processing_input_)
        flush();
    else
        process_input();
}

template <class Transport, class UserData>
void connection<Transport, UserData>::do_read() {
    if (reading_ || finished()) return;
    reading_ = true;
    if constexpr (transport_reads_when_ready) {
        if (reads_when_ready()) {
            Transport::async_wait_readable(
                stream_,
                asio::bind_executor(strand_, [self = this->shared_from_this()](std::error_code ec) {
                    self->on_readable(ec);
                }));
            return;
        }
    }
    ensure_read_buffer(held_read_size_);
    stream_.async_read_some(asio::buffer(read_buffer_.get(), read_capacity_),
                            asio::bind_executor(strand_, [self = this->shared_from_this()](
                                                             std::error_code ec, std::size_t n) {
                                self->on_read(ec, n);
                            }));
}

template <class Transport, class UserData>
void connection<Transport, UserData>::on_read(std::error_code ec, std::size_t n) {
    reading_ = false;
    // The buffer was the read's until now, even after the connection finished.
    if (finished()) return release_read_buffer();
    if (ec) return on_transport_end(ec);
    if constexpr (transport_reads_when_ready) {
        // hold_read_buffer over TCP: a read that filled the buffer says messages are larger
        // than it; the next reads get more room, so that one read holds a whole message and it
        // is delivered (and echoed) without being reassembled.
        if (n == read_capacity_ && read_capacity_ < max_held_read_size)
            held_read_size_ = std::min(2 * read_capacity_, max_held_read_size);
    }
    received(read_buffer_.get(), n);
}

template <class Transport, class UserData>
void connection<Transport, UserData>::on_readable(std::error_code ec) {
    reading_ = false;
    if (finished()) return;
    if (ec) return on_transport_end(ec);
    if constexpr (transport_reads_when_ready) {
        const std::size_t size = std::max(options_.read_buffer_size, min_thread_buffer);
        char* buffer = thread_buffer(size);
        const std::size_t n = Transport::read_now(stream_, asio::buffer(buffer, size), ec);
        if (ec == asio::error::would_block || ec == asio::error::try_again) return do_read();
        if (ec) return on_transport_end(ec);
        received(buffer, n);
    }
}

template <class Transport, class UserData>
void connection<Transport, UserData>::received(char* data, std::size_t n) {
    deadlines_.received(clock::now()); // anything from the peer proves it is alive
    input_ = data;
    read_begin_ = 0;
    read_end_ = n;
    process_input();
}

// Feeds unparsed bytes to the session and acts on its events. Stops early only when an
// async_read was satisfied; the rest waits in the buffer for the next one.
template <class Transport, class UserData>
void connection<Transport, UserData>::process_input() {
    if (finished() || processing_input_) return;
    processing_input_ = true;
    const auto self = this->shared_from_this(); // one reference per read, not per message
    while (!finished() && wants_input()) {
        const auto r = session_.receive(input_ + read_begin_, read_end_ - read_begin_);
        read_begin_ += r.consumed;
        if (r.ev.type == protocol::event_type::none) break;
        if (r.ev.type == protocol::event_type::close || r.ev.type == protocol::event_type::error)
            write_answers_before_close();
        on_event(r.ev, self);
    }
    processing_input_ = false;
    if (finished()) return;
    if (session_.pending_output().size() > control_backlog_limit)
        return abort(make_error_code(error::control_backlog));
    // Before anything moves the input: answers may still be borrowing it.
    flush();
    if (finished()) return;
    queue_.own_borrowed();
    // The thread's buffer is lent only for this call.
    if (read_begin_ != read_end_) keep_input(input_ + read_begin_, read_end_ - read_begin_);
    if (read_begin_ == read_end_) {
        read_begin_ = read_end_ = 0;
        if (reads_when_ready() && read_buffer_) {
            read_buffer_.reset(); // an idle connection keeps no receive buffer
            read_capacity_ = 0;
            input_ = nullptr;
        }
        if (wants_input()) do_read();
    }
}

template <class Transport, class UserData>
void connection<Transport, UserData>::on_event(const protocol::event& ev,
                                               const std::shared_ptr<connection>& self) {
    using protocol::event_type;
    switch (ev.type) {
    case event_type::message_start:
        // Partial delivery: the message's first piece (data, or its end when it is empty) comes
        // next; a waiting async_read is not used up by the header alone.
        next_piece_first_ = true;
        return;
    case event_type::message:
    case event_type::message_data:
    case event_type::message_end: return deliver(ev, self);
    case event_type::pong:
        if (handlers_ && handlers_->on_pong) handlers_->on_pong(self, ev.data);
        return;
    case event_type::close:
        // The session queued the echo (5.5.1). Messages still queued are not sent: no data may
        // follow our close frame.
        if (!result_.error) { // a reply to our failure does not replace its code
            result_.code = ev.code;
            result_.reason = std::string(ev.data);
        }
        advance(phase::closing);
        drop_queue(make_error_code(error::closed));
        return;
    case event_type::error:
        advance(phase::closing);
        drop_queue(ev.error);
        fail(ev.error, ev.code, ev.error.message());
        return;
    default: return; // pings are answered by the session
    }
}

// A message, or a piece of one with partial delivery, to on_message or a waiting async_read.
template <class Transport, class UserData>
void connection<Transport, UserData>::deliver(const protocol::event& ev,
                                              const std::shared_ptr<connection>& self) {
    using protocol::event_type;
    // Arrived with this read: its time was taken once for all its messages.
    deadlines_.active(deadlines_.last_received());
    const bool first = ev.type == event_type::message || next_piece_first_;
    const bool last = ev.type != event_type::message_data;
    next_piece_first_ = false;
    if (handler_mode_) {
        if (handlers_ && handlers_->on_message)
            handlers_->on_message(self, message_view{ev.op, ev.data, first, last});
    } else if (has_read_waiter()) {
        auto done = std::move(cold_->read_waiter);
        cold_->read_waiter = {};
        done(std::error_code{}, message{ev.op, std::string(ev.data), first, last});
    }
}

} // namespace duplex
