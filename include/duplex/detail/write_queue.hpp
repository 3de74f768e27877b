// duplex/detail/write_queue.hpp — a connection's outgoing data frames, without any I/O.
// SPDX-License-Identifier: BSL-1.0
//
// The write path of a connection (detail/connection_write.hpp) asks this queue three things:
// take a frame (in one of three shapes, see frame_kind), gather what is ready into one
// buffer sequence for one write, and settle that write when it completes. It also holds the
// connection's one pending close: close() goes out after the messages queued before it, and
// nothing is queued after it. The queue neither knows about sockets nor counts bytes against
// the send limits: it hands back each frame's cost when the frame leaves, and the connection
// gives that back to its counters. Tested on its own in tests/unit/connection_parts_tests.cpp.
#pragma once

#include "buffer_cache.hpp"
#include "fifo.hpp"
#include "unique_function.hpp"

#include "../shared_message.hpp"

#include <asio/buffer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace duplex::detail {

enum class frame_kind : unsigned char {
    owned,    // header and payload in the frame's own bytes (one or more whole frames)
    shared,   // a server frame encoded once for many connections (shared_message), or its
              // compressed form shared by the connections that compress alike
    borrowed, // the header in the frame's bytes, the payload still in the bytes being parsed
};

struct queued_frame {
    frame_kind kind = frame_kind::owned;
    std::string bytes;        // owned: [offset, end) is wire bytes; borrowed: the header
    std::size_t offset = 0;   // owned: where the first header starts (room left for a longer one)
    std::size_t cost = 0;     // what the connection counted for it against its send limits
    shared_message shared;    // shared: keeps `outside` alive
    std::string_view outside; // borrowed: the payload; shared: the whole frame, in `shared`
    unique_function<void(std::error_code)> done; // told when the frame was written, or not

    // The bytes that lead the frame on the wire: all of it, except a borrowed payload.
    std::string_view head_bytes() const noexcept {
        if (kind == frame_kind::shared) return outside;
        return std::string_view(bytes).substr(offset);
    }
};

// A close() that waits for the messages queued before it.
struct pending_close {
    std::uint16_t code = 1000;
    std::string reason;
};

class write_queue {
public:
    // Frames the queue holds: in flight (being written) and not yet written.
    bool empty() const noexcept { return frames_.empty(); }
    std::size_t size() const noexcept { return frames_.size(); }
    std::size_t in_flight() const noexcept { return in_flight_; }
    std::size_t unsent() const noexcept { return frames_.size() - in_flight_; }
    std::size_t borrowed_frames() const noexcept { return borrowed_; }
    const queued_frame& operator[](std::size_t i) noexcept { return frames_[i]; }

    // ---- taking frames --------------------------------------------------------------------

    // `bytes` holds one frame from `offset` on (its payload already masked, if it must be).
    void push_owned(std::string bytes, std::size_t offset, std::size_t cost,
                    unique_function<void(std::error_code)> done = {}) {
        queued_frame frame;
        frame.bytes = std::move(bytes);
        frame.offset = offset;
        frame.cost = cost;
        frame.done = std::move(done);
        frames_.push_back(std::move(frame));
    }

    void push_shared(shared_message message, std::size_t cost) {
        const std::string_view wire = message.frame_bytes();
        push_shared(std::move(message), cost, wire);
    }
    // `wire`: the bytes to write, frame_bytes() or a compressed_frame() of `message`.
    void push_shared(shared_message message, std::size_t cost, std::string_view wire) {
        queued_frame frame;
        frame.kind = frame_kind::shared;
        frame.outside = wire;
        frame.shared = std::move(message);
        frame.cost = cost;
        frames_.push_back(std::move(frame));
    }

    // `payload` must stay valid until the write that takes it completes, or until
    // own_borrowed() copies it.
    void push_borrowed(std::string_view header, std::string_view payload, std::size_t cost) {
        queued_frame frame;
        frame.kind = frame_kind::borrowed;
        frame.bytes.assign(header.data(), header.size());
        frame.outside = payload;
        frame.cost = cost;
        frames_.push_back(std::move(frame));
        ++borrowed_;
    }

    // Copies a whole frame to the end of the last unsent owned frame when that one has room and
    // no sender waits on it, else into a new one: a burst of small answers becomes one buffer,
    // one allocation and one element of the gathered write. Returns where the payload was
    // copied to (to be masked in place).
    char* append(std::string_view header, std::string_view payload, std::size_t cost) {
        const std::size_t size = header.size() + payload.size();
        queued_frame* tail = unsent() > 0 ? &frames_.back() : nullptr;
        if (tail && (tail->kind != frame_kind::owned || tail->done ||
                     tail->bytes.size() + size > append_limit))
            tail = nullptr;
        if (!tail) {
            queued_frame frame;
            // On the heap (take() never returns inline storage): a write in progress points
            // into these bytes while the queue may move its elements.
            frame.bytes = buffer_cache::take(size);
            frames_.push_back(std::move(frame));
            tail = &frames_.back();
        }
        tail->bytes.append(header.data(), header.size());
        const std::size_t at = tail->bytes.size();
        tail->bytes.append(payload.data(), payload.size());
        tail->cost += cost;
        return &tail->bytes[at];
    }

    // Gives every frame that still borrows input bytes a copy of its own.
    void own_borrowed() {
        if (borrowed_ == 0) return;
        for (auto& frame : frames_) {
            if (frame.kind != frame_kind::borrowed) continue;
            std::string owned = buffer_cache::take(frame.bytes.size() + frame.outside.size());
            owned.append(frame.bytes);
            owned.append(frame.outside.data(), frame.outside.size());
            frame.bytes = std::move(owned);
            frame.outside = {};
            frame.kind = frame_kind::owned;
        }
        borrowed_ = 0;
    }

    // ---- the pending close ----------------------------------------------------------------

    void close_after_queued(std::uint16_t code, std::string reason) {
        close_ = std::make_unique<pending_close>(pending_close{code, std::move(reason)});
    }
    bool has_pending_close() const noexcept { return close_ != nullptr; }
    // The close is due once every message queued before it was written.
    bool close_is_due() const noexcept { return close_ && frames_.empty(); }
    pending_close take_close() {
        pending_close close = std::move(*close_);
        close_.reset();
        return close;
    }

    // ---- writing --------------------------------------------------------------------------

    // Appends the buffers of the unsent frames, in order, to `out` (which may already hold
    // control frames), up to `max_buffers` buffers in `out` and about `max_bytes` bytes; they
    // are in flight until complete() or abandon_in_flight(). Returns the bytes gathered.
    std::size_t gather(std::vector<asio::const_buffer>& out, std::size_t max_buffers,
                       std::size_t max_bytes) {
        std::size_t bytes = 0;
        while (in_flight_ < frames_.size() && out.size() + 2 <= max_buffers && bytes < max_bytes) {
            const queued_frame& frame = frames_[in_flight_];
            const std::string_view head = frame.head_bytes();
            out.push_back(asio::buffer(head.data(), head.size()));
            bytes += head.size();
            if (frame.kind == frame_kind::borrowed) {
                out.push_back(asio::buffer(frame.outside.data(), frame.outside.size()));
                bytes += frame.outside.size();
            }
            ++in_flight_;
        }
        return bytes;
    }

    // After own_borrowed(): the in-flight frames' buffers again, now one per frame, appended
    // to `out`.
    void regather_in_flight(std::vector<asio::const_buffer>& out) {
        for (std::size_t i = 0; i < in_flight_; ++i) {
            const std::string_view head = frames_[i].head_bytes();
            out.push_back(asio::buffer(head.data(), head.size()));
        }
    }

    // The write of the in-flight frames finished with `ec`: they leave, their senders are told.
    // Returns their cost.
    std::size_t complete(std::error_code ec) {
        std::size_t cost = 0;
        for (; in_flight_ > 0; --in_flight_) {
            queued_frame frame = std::move(frames_.front());
            frames_.pop_front();
            if (frame.kind == frame_kind::borrowed) --borrowed_;
            cost += frame.cost;
            if (frame.done) frame.done(ec);
            buffer_cache::give(std::move(frame.bytes));
        }
        return cost;
    }

    // The connection ended while a write was in flight: its senders hear `ec` now, and the
    // cost is returned now, but the bytes stay until complete() (the transport may still read
    // them, see docs/design.md, "Lifetimes").
    std::size_t abandon_in_flight(std::error_code ec) {
        std::size_t cost = 0;
        for (std::size_t i = 0; i < in_flight_; ++i) {
            cost += std::exchange(frames_[i].cost, 0);
            if (auto done = std::move(frames_[i].done)) done(ec);
        }
        return cost;
    }

    // Drops every frame not handed to a write yet, and the pending close: their senders hear
    // `ec`. Returns their cost.
    std::size_t drop_unsent(std::error_code ec) {
        std::size_t cost = 0;
        while (frames_.size() > in_flight_) {
            queued_frame frame = std::move(frames_.back());
            frames_.pop_back();
            if (frame.kind == frame_kind::borrowed) --borrowed_;
            cost += frame.cost;
            if (frame.done) frame.done(ec);
        }
        close_.reset();
        return cost;
    }

private:
    // An owned frame that grows past this is not appended to any more.
    static constexpr std::size_t append_limit = 64U * 1024U;

    fifo<queued_frame> frames_; // [0, in_flight_) are being written
    std::size_t in_flight_ = 0;
    std::size_t borrowed_ = 0; // frames of kind borrowed
    std::unique_ptr<pending_close> close_;
};

} // namespace duplex::detail
