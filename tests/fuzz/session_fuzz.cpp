// libFuzzer target: the session state machine in both roles. Beyond "no crash" it checks the
// sans-I/O promises on every input:
//   * the same events, output and state whether the bytes come whole, one at a time, or split
//     at pseudo-random points;
//   * partial delivery, once its pieces are joined, equals whole-message delivery;
//   * every byte is accounted for (consumed <= size; `none` only when all input was used);
//   * what the session sends (pongs, close replies, failure closes) is valid to a peer.
// The first bytes choose the role, the limits, auto-pong, whether we sent a close first, and
// the split points.
#include <duplex/protocol/session.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

using namespace duplex::protocol;

namespace {

struct record {
    event_type type;
    opcode op;
    std::string data;
    std::uint16_t code;
    std::error_code error;
    bool operator==(const record& o) const {
        return type == o.type && op == o.op && data == o.data && code == o.code && error == o.error;
    }
};

void check(bool ok, const char* what) {
    if (ok) return;
    std::fprintf(stderr, "invariant broken: %s\n", what);
    std::abort();
}

// Joins partial pieces into whole messages so the two delivery modes can be compared.
std::vector<record> join_pieces(const std::vector<record>& events) {
    std::vector<record> out;
    bool in_message = false;
    record current{};
    for (const auto& e : events) {
        if (e.type == event_type::message_start) {
            check(!in_message, "message_start inside a message");
            in_message = true;
            current = {event_type::message, e.op, {}, 0, {}};
        } else if (e.type == event_type::message_data || e.type == event_type::message_end) {
            check(in_message, "message piece outside a message");
            current.data += e.data;
            if (e.type == event_type::message_end) {
                out.push_back(current);
                in_message = false;
            }
        } else {
            out.push_back(e);
        }
    }
    return out;
}

std::vector<record> feed(session& s, const std::string& input,
                         const std::vector<std::size_t>& cuts) {
    std::vector<record> events;
    std::size_t begin = 0;
    std::vector<std::size_t> ends = cuts;
    ends.push_back(input.size());
    for (std::size_t end : ends) {
        std::string piece = input.substr(begin, end - begin);
        char* data = piece.data();
        std::size_t size = piece.size();
        for (std::size_t guard = 0;; ++guard) {
            check(guard <= input.size() + 2, "receive() made no progress");
            const auto r = s.receive(data, size);
            check(r.consumed <= size, "consumed more than given");
            data += r.consumed;
            size -= r.consumed;
            if (r.ev.type == event_type::none) {
                check(size == 0, "none returned with input left");
                break;
            }
            if (r.ev.type == event_type::message)
                check(r.ev.data.size() <= s.options().max_message_size, "message over the limit");
            events.push_back({r.ev.type, r.ev.op, std::string(r.ev.data), r.ev.code, r.ev.error});
        }
        begin = end;
    }
    return events;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 4) return 0;
    const role r = (data[0] & 1U) ? role::client : role::server;
    session_options options;
    options.max_message_size = 32 + (data[0] >> 1U) * 32U;
    options.max_frame_size = 16 + (data[1] & 0x3FU) * 16U;
    options.max_fragments = 1 + data[2] % 16U;
    options.auto_pong = (data[1] & 0x40U) != 0;
    const bool close_first = (data[2] & 0x80U) != 0;
    const std::string input(reinterpret_cast<const char*>(data + 4), size - 4);
    const random_source::seed_type seed = {1, 2, 3, 4, 5, 6, 7, 8};

    std::vector<std::size_t> every_byte;
    for (std::size_t i = 1; i < input.size(); ++i) every_byte.push_back(i);
    std::vector<std::size_t> random_cuts;
    unsigned x = data[3];
    for (std::size_t at = 0;;) {
        x = x * 1103515245U + 12345U;
        at += 1 + (x >> 16U) % 17U;
        if (at >= input.size()) break;
        random_cuts.push_back(at);
    }

    std::vector<record> events_by_mode[2];
    std::string output_by_mode[2];
    for (int partial = 0; partial < 2; ++partial) {
        options.deliver_partial_messages = partial != 0;
        session whole(r, options, seed), bytewise(r, options, seed), split(r, options, seed);
        if (close_first) {
            (void)whole.close(1000, "bye");
            (void)bytewise.close(1000, "bye");
            (void)split.close(1000, "bye");
        }
        const auto a = join_pieces(feed(whole, input, {}));
        check(a == join_pieces(feed(bytewise, input, every_byte)), "events differ byte by byte");
        check(a == join_pieces(feed(split, input, random_cuts)), "events differ when split");
        check(whole.pending_output() == bytewise.pending_output() &&
                  whole.pending_output() == split.pending_output(),
              "output differs by read boundaries");
        check(whole.state() == bytewise.state() && whole.state() == split.state(),
              "state differs by read boundaries");
        events_by_mode[partial] = a;
        output_by_mode[partial] = std::string(whole.pending_output());
    }
    check(events_by_mode[0] == events_by_mode[1], "partial delivery differs from whole messages");
    check(output_by_mode[0] == output_by_mode[1], "partial delivery changes the output");

    session peer(r == role::client ? role::server : role::client, {}, seed);
    for (const auto& e : feed(peer, output_by_mode[0], {}))
        check(e.type != event_type::error, "our own output is invalid to a peer");
    return 0;
}
