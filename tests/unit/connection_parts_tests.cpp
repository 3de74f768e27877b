// The parts of a connection that need no I/O: the write queue (detail/write_queue.hpp) and the
// deadlines (detail/deadlines.hpp), tested without an io_context, the deadlines with made-up
// times instead of a clock.
#include "catch.hpp"

#include <duplex/detail/deadlines.hpp>
#include <duplex/detail/write_queue.hpp>

#include <asio/error.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

using namespace std::chrono_literals;
using duplex::detail::deadlines;
using duplex::detail::frame_kind;
using duplex::detail::write_queue;

namespace {

// What a gathered write would put on the wire.
std::string joined(const std::vector<asio::const_buffer>& buffers) {
    std::string out;
    for (const auto& b : buffers) out.append(static_cast<const char*>(b.data()), b.size());
    return out;
}

// An owned frame as a connection queues it: `room` spare bytes, then the frame.
std::string with_room(std::string_view frame, std::size_t room) {
    return std::string(room, '\0').append(frame);
}

struct outcomes {
    std::vector<std::error_code> seen;
    duplex::detail::unique_function<void(std::error_code)> recorder() {
        return [this](std::error_code ec) { seen.push_back(ec); };
    }
};

const std::error_code aborted = asio::error::make_error_code(asio::error::operation_aborted);
const std::error_code closed = make_error_code(duplex::error::closed);

} // namespace

// ---- the write queue ----------------------------------------------------------------------

TEST_CASE("Write queue: frames leave in order and each sender hears how its write ended",
          "[write_queue]") {
    write_queue q;
    outcomes first, second;
    q.push_owned(with_room("AB", 6), 6, 10, first.recorder());
    q.push_owned(with_room("CD", 2), 2, 20, second.recorder());
    q.push_shared(duplex::shared_message::text("ef"), 30);
    REQUIRE(q.size() == 3);
    REQUIRE(q.unsent() == 3);

    std::vector<asio::const_buffer> out;
    const std::size_t bytes = q.gather(out, 64, 1U << 20);
    const std::string shared_frame(duplex::shared_message::text("ef").frame_bytes());
    CHECK(joined(out) == "ABCD" + shared_frame);
    CHECK(bytes == 4 + shared_frame.size());
    CHECK(q.in_flight() == 3);
    CHECK(q.unsent() == 0);

    CHECK(q.complete(std::error_code{}) == 60);
    CHECK(q.empty());
    CHECK(q.in_flight() == 0);
    REQUIRE(first.seen.size() == 1);
    CHECK(!first.seen[0]);
    REQUIRE(second.seen.size() == 1);
    CHECK(!second.seen[0]);
}

TEST_CASE("Write queue: a burst of small answers is appended into one buffer", "[write_queue]") {
    write_queue q;
    char* a = q.append("h1", "aaa", 5);
    CHECK(std::string_view(a, 3) == "aaa");
    q.append("h2", "bb", 4);
    q.append("h3", "", 2);
    CHECK(q.size() == 1);
    std::vector<asio::const_buffer> out;
    q.gather(out, 64, 1U << 20);
    CHECK(out.size() == 1);
    CHECK(joined(out) == "h1aaah2bbh3");
    CHECK(q.complete({}) == 11);
}

TEST_CASE("Write queue: nothing is appended to a frame being written, a frame with a waiting "
          "sender, a shared or borrowed frame, or past the append limit",
          "[write_queue]") {
    write_queue q;
    std::vector<asio::const_buffer> out;

    SECTION("in flight") {
        q.append("h", "1", 1);
        q.gather(out, 64, 1U << 20);
        q.append("h", "2", 1);
        CHECK(q.size() == 2);
        CHECK(q.unsent() == 1);
    }
    SECTION("a sender waits on it") {
        outcomes sender;
        q.push_owned("x", 0, 1, sender.recorder());
        q.append("h", "2", 1);
        CHECK(q.size() == 2);
    }
    SECTION("shared") {
        q.push_shared(duplex::shared_message::binary("s"), 1);
        q.append("h", "2", 1);
        CHECK(q.size() == 2);
    }
    SECTION("borrowed") {
        const std::string input = "payload";
        q.push_borrowed("h", input, 1);
        q.append("h", "2", 1);
        CHECK(q.size() == 2);
    }
    SECTION("the limit") {
        const std::string big(40U * 1024U, 'x');
        q.append("h", big, 1);
        q.append("h", big, 1); // 80 KiB together: past 64 KiB
        CHECK(q.size() == 2);
        q.append("h", "small", 1);
        CHECK(q.size() == 2); // still room after the second
    }
}

TEST_CASE("Write queue: a gathered write stops at the buffer and byte bounds, and a borrowed "
          "frame takes two buffers",
          "[write_queue]") {
    write_queue q;
    const std::string input = "borrowed payload";
    for (int i = 0; i < 5; ++i) q.push_owned(std::string(1, static_cast<char>('a' + i)), 0, 1);
    q.push_borrowed("H", input, 1);

    std::vector<asio::const_buffer> out;
    out.push_back(asio::buffer("control", 7)); // a connection puts control frames first
    // Room for the control buffer and two more: a frame is gathered only while two buffers fit.
    q.gather(out, 4, 1U << 20);
    CHECK(q.in_flight() == 2);
    CHECK(joined(out) == "controlab");

    q.complete({});
    out.clear();
    q.gather(out, 64, 2); // about two bytes: stops once they are reached
    CHECK(q.in_flight() == 2);
    CHECK(joined(out) == "cd");

    q.complete({});
    out.clear();
    q.gather(out, 64, 1U << 20);
    CHECK(q.in_flight() == 2);
    CHECK(out.size() == 3); // "e", then the borrowed frame's header and payload
    CHECK(joined(out) == "eHborrowed payload");
    CHECK(q.borrowed_frames() == 1);
    q.complete({});
    CHECK(q.borrowed_frames() == 0);
}

TEST_CASE("Write queue: own_borrowed copies borrowed payloads, so the input may be reused",
          "[write_queue]") {
    write_queue q;
    std::string input = "echo me";
    q.push_borrowed("H", input, 9);
    std::vector<asio::const_buffer> out;
    q.gather(out, 64, 1U << 20);
    REQUIRE(out.size() == 2);

    q.own_borrowed();
    input.assign("XXXXXXX");
    CHECK(q.borrowed_frames() == 0);
    out.clear();
    q.regather_in_flight(out);
    REQUIRE(out.size() == 1);
    CHECK(joined(out) == "Hecho me");
    CHECK(q.complete({}) == 9);
}

TEST_CASE("Write queue: the close waits for the messages queued before it, and is held once",
          "[write_queue]") {
    write_queue q;
    q.push_owned("m", 0, 1);
    q.close_after_queued(4000, "bye");
    CHECK(q.has_pending_close());
    CHECK(!q.close_is_due());

    std::vector<asio::const_buffer> out;
    q.gather(out, 64, 1U << 20);
    CHECK(!q.close_is_due()); // still being written
    q.complete({});
    REQUIRE(q.close_is_due());
    const auto close = q.take_close();
    CHECK(close.code == 4000);
    CHECK(close.reason == "bye");
    CHECK(!q.has_pending_close());
    CHECK(!q.close_is_due());
}

TEST_CASE("Write queue: dropping keeps what is being written and drops the rest and the close",
          "[write_queue]") {
    write_queue q;
    outcomes writing, waiting;
    q.push_owned("a", 0, 3, writing.recorder());
    std::vector<asio::const_buffer> out;
    q.gather(out, 64, 1U << 20);
    q.push_owned("b", 0, 5, waiting.recorder());
    q.append("h", "c", 7);
    q.close_after_queued(1000, {});

    CHECK(q.drop_unsent(closed) == 12);
    CHECK(q.size() == 1);
    CHECK(q.in_flight() == 1);
    CHECK(!q.has_pending_close());
    REQUIRE(waiting.seen.size() == 1);
    CHECK(waiting.seen[0] == closed);
    CHECK(writing.seen.empty());

    CHECK(q.complete({}) == 3);
    REQUIRE(writing.seen.size() == 1);
    CHECK(!writing.seen[0]);
}

TEST_CASE("Write queue: frames abandoned mid-write tell their senders once and stay alive until "
          "the write completes",
          "[write_queue]") {
    write_queue q;
    outcomes sender;
    q.push_owned("abc", 0, 8, sender.recorder());
    std::vector<asio::const_buffer> out;
    q.gather(out, 64, 1U << 20);

    CHECK(q.abandon_in_flight(aborted) == 8);
    REQUIRE(sender.seen.size() == 1);
    CHECK(sender.seen[0] == aborted);
    // The write still points at the bytes.
    CHECK(joined(out) == "abc");
    CHECK(q.in_flight() == 1);

    CHECK(q.complete(aborted) == 0); // the cost was given back already
    CHECK(sender.seen.size() == 1);  // and the sender was told already
    CHECK(q.empty());
}

// ---- the deadlines ------------------------------------------------------------------------

namespace {

struct timing {
    std::chrono::milliseconds ping_interval{0};
    std::chrono::milliseconds pong_timeout{0};
    std::chrono::milliseconds idle_timeout{0};
    std::chrono::milliseconds close_timeout{0};
};

const deadlines::time_point t0{}; // made-up times: no clock is read
constexpr bool is_open = true;
constexpr bool is_closing = false;

} // namespace

TEST_CASE("Deadlines: nothing configured, nothing due, no wake-up", "[deadlines]") {
    const timing o;
    deadlines d(t0);
    CHECK(d.next_wake(o, is_open) == deadlines::time_point::max());
    CHECK(!d.check(o, t0 + 24h, is_open).any());
}

TEST_CASE("Deadlines: a keepalive ping after ping_interval of silence, and a pong timeout after "
          "it",
          "[deadlines]") {
    timing o;
    o.ping_interval = 100ms;
    o.pong_timeout = 50ms;
    deadlines d(t0);

    CHECK(d.next_wake(o, is_open) == t0 + 100ms);
    CHECK(!d.check(o, t0 + 99ms, is_open).any());
    d.received(t0 + 60ms); // bytes arrived: the silence starts again
    CHECK(d.next_wake(o, is_open) == t0 + 160ms);
    auto due = d.check(o, t0 + 160ms, is_open);
    CHECK(due.ping);
    CHECK(!due.pong_overdue);

    d.ping_sent(t0 + 160ms);
    CHECK(!d.check(o, t0 + 160ms, is_open).ping); // one ping, not one per wake-up
    CHECK(d.next_wake(o, is_open) == t0 + 210ms);
    CHECK(!d.check(o, t0 + 209ms, is_open).any());
    due = d.check(o, t0 + 210ms, is_open);
    CHECK(due.pong_overdue);
    CHECK(!due.ping);

    SECTION("anything from the peer answers the ping") {
        d.received(t0 + 200ms);
        CHECK(!d.check(o, t0 + 210ms, is_open).any());
        CHECK(d.next_wake(o, is_open) == t0 + 300ms);
    }
}

TEST_CASE("Deadlines: the idle timeout counts messages either way, not bytes", "[deadlines]") {
    timing o;
    o.idle_timeout = 1s;
    deadlines d(t0);
    CHECK(d.next_wake(o, is_open) == t0 + 1s);
    d.received(t0 + 900ms); // a ping or a partial frame: not a message
    CHECK(d.check(o, t0 + 1s, is_open).idle);
    d.active(t0 + 500ms);
    CHECK(!d.check(o, t0 + 1s, is_open).idle);
    CHECK(d.next_wake(o, is_open) == t0 + 1500ms);
    CHECK(d.check(o, t0 + 1500ms, is_open).idle);
}

TEST_CASE("Deadlines: the close deadline runs from the first start, and once closing, "
          "keepalive and idle no longer apply",
          "[deadlines]") {
    timing o;
    o.ping_interval = 100ms;
    o.pong_timeout = 100ms;
    o.idle_timeout = 100ms;
    o.close_timeout = 5s;
    deadlines d(t0);

    CHECK(!d.close_started());
    CHECK(d.start_close(o, t0 + 10ms));
    CHECK(!d.start_close(o, t0 + 2s)); // a later phase does not move it
    CHECK(d.close_started());
    CHECK(d.next_wake(o, is_closing) == t0 + 10ms + 5s);
    auto due = d.check(o, t0 + 4s, is_closing);
    CHECK(!due.any()); // no ping, no pong timeout, no idle while closing
    due = d.check(o, t0 + 10ms + 5s, is_closing);
    CHECK(due.close_deadline);
    CHECK(!due.ping);
    CHECK(!due.idle);
    // While still open (the close deadline and keepalive both apply), the earliest wins.
    CHECK(d.next_wake(o, is_open) == t0 + 100ms);
}
