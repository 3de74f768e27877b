// duplex/detail/connection_write.hpp — a connection's write path and send limits.
// SPDX-License-Identifier: BSL-1.0
//
// Part of connection.hpp (which includes it; never include it alone). A send is admitted
// against the send limits on the caller's thread, framed on the strand into the write queue
// (detail/write_queue.hpp), and written with everything else that is ready in one gathered
// write: control frames first (pongs and close replies must not wait behind data), then the
// queued messages in order, then, once they are written, the pending close. Answers produced
// while a read is being parsed are written once, when the whole read has been parsed.
#pragma once

#include "../connection.hpp"

namespace duplex {

// ---- send limits and the drain signal ----------------------------------------------------

// Admit-one (see send_buffer_limit): only past the high-water mark can a message be refused.
template <class Transport, class UserData>
bool connection<Transport, UserData>::over_send_limit(std::size_t before,
                                                      std::size_t cost) const noexcept {
    return before > options_.send_buffer_high_water && before + cost > options_.send_buffer_limit;
}

// Counts `cost` bytes against the send buffer. Past the limit nothing is counted, and the
// connection is failed as a slow reader. A shared budget (a server's send_budget) bounds the
// sum over many connections: past it, a connection that already has something queued is failed
// as a slow reader, while one with an empty queue may still queue its message, so that
// connections whose peers read are not starved by those that do not.
template <class Transport, class UserData>
send_status connection<Transport, UserData>::admit(std::size_t cost) {
    const std::size_t before = buffered_.fetch_add(cost, std::memory_order_relaxed);
    bool over = over_send_limit(before, cost);
    if (!over && budget_) {
        const std::size_t shared = budget_->used.fetch_add(cost, std::memory_order_relaxed);
        if (before != 0 && shared + cost > budget_->limit) {
            budget_->used.fetch_sub(cost, std::memory_order_relaxed);
            over = true;
        }
    }
    if (over) {
        buffered_.fetch_sub(cost, std::memory_order_relaxed);
        asio::dispatch(strand_, [self = this->shared_from_this()] { self->fail_slow_reader(); });
        return send_status::dropped;
    }
    if (before + cost <= options_.send_buffer_high_water) return send_status::ok;
    arm_drain();
    return send_status::backpressure;
}

// Gives back what admit() counted, once the bytes were written or dropped.
template <class Transport, class UserData>
void connection<Transport, UserData>::unbuffer(std::size_t cost) noexcept {
    if (cost == 0) return;
    buffered_.fetch_sub(cost, std::memory_order_relaxed);
    if (budget_) budget_->used.fetch_sub(cost, std::memory_order_relaxed);
}

// A sender on any thread arms the drain signal (arm_drain); the strand fires it after a write
// brought the queue down (maybe_drain). Each side writes its own variable, then reads the
// other's, with a fence between, so at least one of them sees both: no drain is lost.
template <class Transport, class UserData>
std::size_t connection<Transport, UserData>::low_water() const noexcept {
    return std::min(options_.send_buffer_low_water, options_.send_buffer_high_water);
}

template <class Transport, class UserData>
void connection<Transport, UserData>::arm_drain() {
    if (drain_wanted_.exchange(true)) return;
    std::atomic_thread_fence(std::memory_order_seq_cst);
    // The writes may have emptied the queue before the flag was up: check on the strand.
    if (buffered_.load(std::memory_order_relaxed) <= low_water())
        asio::post(strand_, [self = this->shared_from_this()] { self->maybe_drain(); });
}

// On the strand, after bytes left the queue. Posted, so that on_drain never runs inside the
// send() (or handler) that is emptying the queue.
template <class Transport, class UserData>
void connection<Transport, UserData>::maybe_drain() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (drain_posted_ || finished() || !drain_wanted_.load(std::memory_order_relaxed) ||
        buffered_.load(std::memory_order_relaxed) > low_water())
        return;
    drain_posted_ = true;
    asio::post(strand_, [self = this->shared_from_this()] {
        self->drain_posted_ = false;
        if (self->finished() || self->buffered_.load(std::memory_order_relaxed) > self->low_water())
            return; // more was queued meanwhile: the next write completion checks again
        if (!self->drain_wanted_.exchange(false)) return;
        if (self->handlers_ && self->handlers_->on_drain) self->handlers_->on_drain(self);
    });
}

// ---- framing into the queue ----------------------------------------------------------------

// The one copy of a payload a send makes: it leaves room in front for the longest header, so
// that the strand can write the header in place instead of copying the payload again.
template <class Transport, class UserData>
std::string connection<Transport, UserData>::with_header_room(std::string_view payload) {
    std::string framed;
    // Never in the string's inline storage: the write in progress points into these bytes
    // while the queue may move its elements.
    framed.reserve(std::max<std::size_t>(protocol::max_frame_header_size + payload.size(),
                                         sizeof(std::string) + 1));
    framed.resize(protocol::max_frame_header_size + payload.size());
    if (!payload.empty())
        std::memcpy(&framed[protocol::max_frame_header_size], payload.data(), payload.size());
    return framed;
}

// The header of a whole message, from the session, and its body: the payload itself, or the
// session's compressed bytes (permessage-deflate), valid until the session's next send. On
// failure the message's cost goes back to the send buffer. Nothing is framed once the
// connection is past open.
template <class Transport, class UserData>
std::error_code
connection<Transport, UserData>::prepare_frame(opcode type, std::string_view payload,
                                               std::size_t cost, protocol::frame_prefix& prefix,
                                               std::string_view& body) {
    const std::error_code ec = phase_ != phase::open
                                   ? make_error_code(error::closed)
                                   : session_.prepare_message(type, payload, prefix, body);
    if (ec) unbuffer(cost);
    return ec;
}

template <class Transport, class UserData>
void connection<Transport, UserData>::queue_message(opcode type, std::string framed,
                                                    std::size_t cost, done_handler done) {
    constexpr std::size_t room = protocol::max_frame_header_size;
    const std::string_view payload(&framed[room], framed.size() - room);
    protocol::frame_prefix prefix;
    std::string_view body;
    if (const auto ec = prepare_frame(type, payload, cost, prefix, body)) {
        if (done) done(ec);
        return;
    }
    // Compressed: the frame is the header and the compressed bytes, in a buffer of their own.
    if (body.data() != payload.data()) framed = with_header_room(body);
    const std::size_t offset = room - prefix.size;
    std::memcpy(&framed[offset], prefix.bytes, prefix.size);
    if (prefix.masked) protocol::apply_mask(&framed[room], body.size(), prefix.key);
    queue_.push_owned(std::move(framed), offset, cost, std::move(done));
    note_sent();
}

template <class Transport, class UserData>
void connection<Transport, UserData>::queue_shared(shared_message message, std::size_t cost) {
    if (session_.get_role() == protocol::role::client) {
        // Every client frame needs its own masking key: copy, as send() does.
        return queue_message(message.type(), with_header_room(message.payload()), cost, {});
    }
    std::string_view wire = message.frame_bytes();
#ifdef DUPLEX_ENABLE_DEFLATE
    if (phase_ == phase::open && session_.would_compress(message.payload().size())) {
        if (const auto settings = session_.shared_compression()) {
            // No context takeover: every connection with these settings sends the same bytes,
            // compressed once by whichever sent it first.
            const std::string_view compressed = message.compressed_frame(*settings);
            if (!compressed.empty()) wire = compressed;
        } else {
            return queue_own_compressed(message, cost);
        }
    }
#endif
    protocol::frame_prefix prefix;
    const std::error_code ec =
        phase_ != phase::open
            ? make_error_code(error::closed)
            : session_.prepare_whole_message(message.type(), message.payload().size(), prefix);
    if (ec) return unbuffer(cost);
    // An unmasked server header depends only on opcode, length and RSV1: the shared frame's own
    // header is the one the session would have made.
    queue_.push_shared(std::move(message), cost, wire);
    note_sent();
}

#ifdef DUPLEX_ENABLE_DEFLATE
// Context takeover: this connection's compressor builds on its own earlier messages, so a
// shared message is compressed here, for this connection alone, into a frame of its own.
template <class Transport, class UserData>
void connection<Transport, UserData>::queue_own_compressed(const shared_message& message,
                                                           std::size_t cost) {
    protocol::frame_prefix prefix;
    std::string_view body;
    if (prepare_frame(message.type(), message.payload(), cost, prefix, body)) return;
    std::string framed = with_header_room(body);
    const std::size_t offset = protocol::max_frame_header_size - prefix.size;
    std::memcpy(&framed[offset], prefix.bytes, prefix.size);
    queue_.push_owned(std::move(framed), offset, cost);
    note_sent();
}
#endif

// A handler's answer, framed on the strand straight into the queue.
template <class Transport, class UserData>
void connection<Transport, UserData>::append_message(opcode type, std::string_view payload,
                                                     std::size_t cost) {
    protocol::frame_prefix prefix;
    std::string_view body;
    if (prepare_frame(type, payload, cost, prefix, body)) return;
    const std::string_view header(reinterpret_cast<const char*>(prefix.bytes), prefix.size);
    if (transport_writes_now && !prefix.masked && body.data() == payload.data() &&
        payload.size() >= min_borrowed_size && is_unparsed_input(payload)) {
        // Echoing or forwarding what this read delivered: the payload is written from where it
        // was read (flush runs before process_input lets go of those bytes), and copied only if
        // the socket does not take it at once.
        queue_.push_borrowed(header, payload, cost);
        return note_sent();
    }
    char* copy = queue_.append(header, body, cost);
    if (prefix.masked) protocol::apply_mask(copy, body.size(), prefix.key);
    note_sent();
}

template <class Transport, class UserData>
bool connection<Transport, UserData>::is_unparsed_input(std::string_view bytes) const noexcept {
    if (!processing_input_ || input_ == nullptr) return false;
    const std::less_equal<const char*> not_after;
    return not_after(input_, bytes.data()) &&
           not_after(bytes.data() + bytes.size(), input_ + read_end_);
}

// Frames already handed to the transport stay until their write completes.
template <class Transport, class UserData>
void connection<Transport, UserData>::drop_queue(std::error_code ec) {
    unbuffer(queue_.drop_unsent(ec));
}

// A handler answering a message runs inside process_input, which writes once when the whole
// read has been parsed: one write per read, not one per answer. Anything else (a publish from
// another connection's handler, a send from another thread) is corked: see cork().
template <class Transport, class UserData>
void connection<Transport, UserData>::note_sent() {
    if (draining_inbox_) return; // once for the whole inbox, at its end
    // Inside process_input the read's own time is recent enough for the idle timeout.
    deadlines_.active(processing_input_ ? deadlines_.last_received() : clock::now());
    if (!processing_input_) cork();
}

// Corking: the write waits until the handlers that are ready now have run. Each publisher's
// read completes in a turn of its own, so a write per publish would cost a member one system
// call per message; deferred, everything queued for it while the scheduler works through one
// batch of ready completions leaves in one gathered write. Asio queues a deferred handler
// behind the completions that are already ready (and behind the reactor's next poll), so the
// flush runs once that batch is done. While a write is in flight nothing needs scheduling:
// its completion writes what was queued meanwhile.
//
// The flush is deferred to the executor under the strand (through the thread's cork_batch),
// not to the strand itself: a strand with a handler waiting runs nothing inline, so every later
// send() to this connection from another strand would queue behind the flush instead of being
// framed at once, and the flush would take only the first message.
template <class Transport, class UserData>
void connection<Transport, UserData>::cork() {
    if (flush_due_ || writing_) return;
    flush_due_ = true;
    schedule_flush();
}

// A send from outside the strand (a publish from another connection's handler, a send from
// another thread): queued in the inbox without touching the strand. The first one since the
// last drain schedules the flush, as cork() does, so that a member gets one drain and one
// write per turn however many messages it was sent.
template <class Transport, class UserData>
void connection<Transport, UserData>::post_to_inbox(detail::inbox_entry&& entry) {
    if (inbox_.push(std::move(entry))) schedule_flush();
}

// Joins this thread's cork batch, or defers the flush alone when the thread's batch belongs to
// another execution context.
template <class Transport, class UserData>
void connection<Transport, UserData>::schedule_flush() {
    const auto inner = [this] { return strand_.get_inner_executor(); };
    if (detail::cork_batch::join(inner, asio::query(strand_, asio::execution::context),
                                 this->shared_from_this(), &connection::flush_turn))
        return;
    asio::defer(inner(), [self = this->shared_from_this()]() mutable {
        flush_turn(std::shared_ptr<void>(std::move(self)));
    });
}

// The end of the turn, for a member that was corked or sent something from outside its strand:
// on its strand, what the inbox holds is written straight away where it can be
// (write_inbox_now), else framed into the queue, and the queue written.
template <class Transport, class UserData>
void connection<Transport, UserData>::flush_turn(std::shared_ptr<void>&& member) {
    auto self = std::static_pointer_cast<connection>(std::move(member));
    auto& strand = self->strand_;
    asio::dispatch(strand, [self = std::move(self)] {
        // This is the flush: framing what the inbox holds must not cork the member again.
        self->flush_due_ = true;
        if (!self->write_inbox_now()) {
            self->drain_inbox();
            self->flush();
        }
        self->flush_due_ = false; // everything is written or waits for the write in flight
    });
}

// On the strand: frames what the inbox holds, in order, into the write queue. After the
// connection closed, framing refuses each message and gives its cost back.
template <class Transport, class UserData>
void connection<Transport, UserData>::drain_inbox() {
    if (!inbox_.pending()) return;
    std::vector<detail::inbox_entry> entries;
    inbox_.take(entries);
    queue_entries(entries, 0);
}

template <class Transport, class UserData>
void connection<Transport, UserData>::queue_entries(std::vector<detail::inbox_entry>& entries,
                                                    std::size_t first) {
    draining_inbox_ = true;
    for (std::size_t i = first; i < entries.size(); ++i) {
        auto& e = entries[i];
        if (e.shared)
            queue_shared(std::move(e.shared), e.cost);
        else
            queue_message(e.type, std::move(e.framed), e.cost, {});
    }
    draining_inbox_ = false;
    detail::send_inbox::recycle(entries);
    note_sent();
}

// The broadcast path. A member that has nothing queued and no write in flight gets the shared
// frames its inbox holds written at once, straight from the shared bytes in one gathered
// write, without a queue entry per message (which, built and torn down per delivery, was a
// large part of a broadcast's cost). What the socket does not take, and every message this
// path does not cover (compressed, not shared, refused), goes through the queue as usual, in
// order. False when the member is not in that state: the caller drains and flushes.
template <class Transport, class UserData>
bool connection<Transport, UserData>::write_inbox_now() {
    if constexpr (!transport_writes_now) {
        return false;
    } else {
        if (writing_ || phase_ != phase::open || !queue_.empty() || session_.has_pending_output() ||
            session_.get_role() != protocol::role::server || !inbox_.pending())
            return false;
        std::vector<detail::inbox_entry> entries;
        inbox_.take(entries);
        if (gather_.capacity() == 0) gather_ = detail::vector_cache<asio::const_buffer>::take();
        gather_.clear();
        std::size_t count = 0;
        for (; count < entries.size() && count < max_gather; ++count) {
            const shared_message& m = entries[count].shared;
            if (!m) break;
#ifdef DUPLEX_ENABLE_DEFLATE
            if (session_.would_compress(m.payload().size())) break;
#endif
            protocol::frame_prefix prefix;
            if (session_.prepare_whole_message(m.type(), m.payload().size(), prefix)) break;
            const std::string_view wire = m.frame_bytes();
            gather_.push_back(asio::const_buffer(wire.data(), wire.size()));
        }
        std::error_code ec;
        std::size_t written = count == 0 ? 0 : Transport::write_now(stream_, gather_, ec);
        if (ec) written = 0; // would block, or failed: the queue's write finds out which
        gather_.clear();
        std::size_t written_cost = 0;
        std::size_t i = 0;
        for (; i < count && written >= entries[i].shared.frame_bytes().size(); ++i) {
            written -= entries[i].shared.frame_bytes().size();
            written_cost += entries[i].cost;
            entries[i].shared = shared_message();
        }
        if (i < count && written > 0) {
            // Partly written: the rest of its bytes lead the queue.
            auto& e = entries[i++];
            const std::string_view rest = e.shared.frame_bytes().substr(written);
            queue_.push_shared(std::move(e.shared), e.cost, rest);
        }
        deadlines_.active(clock::now());
        if (i < entries.size())
            queue_entries(entries, i); // flush_turn's flush_due_: the flush below writes them
        else
            detail::send_inbox::recycle(entries);
        if (queue_.empty()) detail::vector_cache<asio::const_buffer>::give(gather_);
        unbuffer(written_cost);
        flush();
        if (written_cost != 0) maybe_drain();
        return true;
    }
}

// ---- writing -------------------------------------------------------------------------------

template <class Transport, class UserData>
void connection<Transport, UserData>::flush() {
    while (start_write()) {
    }
}

// A close frame, ours or the peer's, or a protocol error is next: answers to the messages
// before it go out first, as they would have had each been written as it was sent. They were
// framed while the connection was open, and our close frame is still unwritten.
template <class Transport, class UserData>
void connection<Transport, UserData>::write_answers_before_close() {
    while (queue_.unsent() > 0 && start_write(true)) {
    }
}

// Every message queued before close() was written: the close frame is next.
template <class Transport, class UserData>
void connection<Transport, UserData>::send_pending_close() {
    const detail::pending_close close = queue_.take_close();
    if (session_.close(close.code, close.reason)) {
        // An invalid code or reason from the application: close with 1000 instead.
        (void)session_.close(protocol::close_code::normal);
    }
}

// Starts one gathered write of everything writable; true when it completed at once and there
// may be more to write. data_only: the queued messages alone, whatever the session's state; no
// control frames.
template <class Transport, class UserData>
bool connection<Transport, UserData>::start_write(bool data_only) {
    if (writing_ || finished()) return false;
    if (!data_only) {
        if (queue_.close_is_due()) send_pending_close();
        control_in_flight_.assign(session_.pending_output());
        session_.consume_output(control_in_flight_.size());
        if (cold_) {
            for (auto& w : cold_->control_waiters)
                cold_->control_waiters_in_flight.push_back(std::move(w));
            cold_->control_waiters.clear();
        }
    }

    gather_.clear();
    if (gather_.capacity() == 0) gather_ = detail::vector_cache<asio::const_buffer>::take();
    if (!control_in_flight_.empty()) gather_.push_back(asio::buffer(control_in_flight_));
    std::size_t bytes = 0;
    const auto state = session_.state();
    if (data_only || state == protocol::session_state::open ||
        state == protocol::session_state::closing)
        bytes = queue_.gather(gather_, max_gather, max_batch);
    if (gather_.empty()) {
        if (!data_only && session_.wants_transport_close()) advance(phase::ending);
        return false;
    }
    if (state != protocol::session_state::open) advance(phase::closing);
    writing_ = true;
    std::size_t first = 0; // gather_[first] onwards is still to be written
    if constexpr (transport_writes_now) {
        // Most writes fit in the socket's buffer: write now, and skip the asynchronous
        // operation and its completion's trip through the scheduler.
        std::error_code ec;
        std::size_t written = Transport::write_now(stream_, gather_, ec);
        if (ec && ec != asio::error::would_block && ec != asio::error::try_again)
            return complete_write(ec);
        if (!ec && written == bytes + control_in_flight_.size()) return complete_write({});
        if (queue_.borrowed_frames() > 0) {
            // The rest is written later, from bytes of our own: the same frames, copied.
            queue_.own_borrowed();
            gather_.resize(control_in_flight_.empty() ? 0 : 1);
            queue_.regather_in_flight(gather_);
        }
        while (first < gather_.size() && written >= gather_[first].size())
            written -= gather_[first++].size();
        gather_[first] += written;
    }
    asio::async_write(
        stream_, gather_view{gather_.data() + first, gather_.size() - first},
        asio::bind_executor(strand_, [self = this->shared_from_this()](
                                         std::error_code ec, std::size_t) { self->on_write(ec); }));
    return false;
}

template <class Transport, class UserData>
void connection<Transport, UserData>::on_write(std::error_code ec) {
    if (complete_write(ec)) flush();
}

// A write finished: its frames leave the queue. False when the connection is over.
template <class Transport, class UserData>
bool connection<Transport, UserData>::complete_write(std::error_code ec) {
    writing_ = false;
    control_in_flight_.clear();
    if (control_in_flight_.capacity() > 1024) std::string().swap(control_in_flight_);
    unbuffer(queue_.complete(ec));
    gather_.clear();
    if (queue_.empty()) detail::vector_cache<asio::const_buffer>::give(gather_);
    if (cold_) {
        for (auto& w : cold_->control_waiters_in_flight) w(ec);
        cold_->control_waiters_in_flight.clear();
    }
    if (finished()) return false;
    if (ec) {
        fail(ec);
        finish();
        return false;
    }
    maybe_drain();
    return true;
}

} // namespace duplex
