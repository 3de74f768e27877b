// libFuzzer target: the session state machine in both roles, with arbitrary bytes and split
// points. Beyond "no crash", it checks the sans-I/O invariants: the same events whatever the
// read boundaries, every byte accounted for, messages within the limits, and output that a
// peer session accepts without error.
#include <duplex/protocol/session.hpp>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

using namespace duplex::protocol;

namespace {

struct record {
    event_type type;
    std::string data;
    std::uint16_t code;
    bool operator==(const record& o) const {
        return type == o.type && data == o.data && code == o.code;
    }
};

void check(bool ok) {
    if (!ok) std::abort();
}

std::vector<record> feed(session& s, const std::string& input, std::size_t cut) {
    std::vector<record> events;
    std::size_t begin = 0;
    for (std::size_t end : {cut, input.size()}) {
        std::string piece = input.substr(begin, end - begin);
        char* data = piece.data();
        std::size_t size = piece.size();
        for (;;) {
            const auto r = s.receive(data, size);
            check(r.consumed <= size);
            data += r.consumed;
            size -= r.consumed;
            if (r.ev.type == event_type::none) {
                check(size == 0);
                break;
            }
            if (r.ev.type == event_type::message)
                check(r.ev.data.size() <= s.options().max_message_size);
            events.push_back({r.ev.type, std::string(r.ev.data), r.ev.code});
        }
        begin = end;
    }
    return events;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    const role r = (data[0] & 1) ? role::client : role::server;
    session_options options;
    options.max_message_size = 64 + (data[0] >> 1) * 64U;
    options.max_frame_size = options.max_message_size;
    options.max_fragments = 1 + data[1] % 32U;
    options.deliver_partial_messages = (data[1] & 0x80U) != 0;
    const std::string input(reinterpret_cast<const char*>(data + 2), size - 2);
    const std::size_t cut = input.empty() ? 0 : data[2] % (input.size() + 1);
    const random_source::seed_type seed = {1, 2, 3, 4, 5, 6, 7, 8};

    session whole(r, options, seed);
    session split(r, options, seed);
    const auto a = feed(whole, input, input.size());
    const auto b = feed(split, input, cut);
    if (!options.deliver_partial_messages) check(a == b);
    check(whole.state() == split.state());
    check(whole.pending_output() == split.pending_output());

    // What we send in reply (pongs, close frames) must be valid to a peer of the other role.
    session peer(r == role::client ? role::server : role::client, {}, seed);
    std::string out(whole.pending_output());
    for (const auto& e : feed(peer, out, out.size())) check(e.type != event_type::error);
    return 0;
}
