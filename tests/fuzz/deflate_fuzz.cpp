// libFuzzer target: the inflate path of permessage-deflate (RFC 7692) in the session. On every
// input it checks:
//   * a session with the extension negotiated gives the same events and the same output
//     whether its input arrives whole, cut at pseudo-random points, or (short inputs) one
//     byte at a time;
//   * no message or piece delivered is larger than max_message_size, however small the
//     compressed input (bombs), and the heap the session keeps while receiving stays within a
//     bound set by that limit and zlib's window, not by the input;
//   * a failure is one the RFCs ask for, with its close code: data that does not inflate or
//     RSV1 where it may not be (1002), too much inflated data (1009), bad UTF-8 (1007);
//   * what our own compressor sends, a session of the other role inflates back unchanged.
//
// Input: byte 0 chooses the parameters (role, context takeover, window, partial delivery),
// byte 1 the mode and the limit, the rest is the data:
//   mode 0: the data is a compressed payload, sent as 1-4 frames, RSV1 on the first (and, when
//           byte 1 asks, wrongly on a continuation or on an injected ping);
//   mode 1: the data is the session's raw input;
//   mode 2: the data is plaintext, sent compressed by our session and read back.
#include "fuzz_support.hpp"

#include <duplex/protocol/session.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

using namespace duplex::protocol;
using fuzz::check;

namespace {

const random_source::seed_type seed = {7, 6, 9, 2, 7, 6, 9, 2};

struct recorded {
    event_type type;
    opcode op;
    std::string data;
    std::uint16_t code;
    std::error_code error;
    bool operator==(const recorded& o) const {
        return type == o.type && op == o.op && data == o.data && code == o.code && error == o.error;
    }
};

struct outcome {
    std::vector<recorded> events;
    std::string output;
    session_state state;
    long long heap_peak = 0;
    bool operator==(const outcome& o) const {
        return events == o.events && output == o.output && state == o.state;
    }
};

// Partial-delivery pieces joined into whole messages, so that differently cut runs compare
// equal; the pieces of a message that never ended (a failure came first) are left out, as
// how much of it was delivered depends on the cuts.
std::vector<recorded> merged(const std::vector<recorded>& events, std::size_t max_message) {
    std::vector<recorded> out;
    bool in_message = false;
    recorded current{event_type::message, opcode::text, {}, 0, {}};
    for (const auto& e : events) {
        if (e.type == event_type::message_start) {
            check(!in_message, "message_start inside a message");
            in_message = true;
            current = {event_type::message, e.op, {}, 0, {}};
        } else if (e.type == event_type::message_data || e.type == event_type::message_end) {
            check(in_message, "a message piece outside a message");
            current.data += e.data;
            check(current.data.size() <= max_message, "pieces add up past max_message_size");
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

outcome run(role who, const session_options& o, std::string_view input,
            const std::vector<std::size_t>& cuts) {
    session s(who, o, seed);
    outcome out;
    fuzz::heap_meter::start();
    for (const auto piece : fuzz::pieces(input, cuts)) {
        std::string buffer(piece); // its own buffer, as a socket read would be
        std::size_t used = 0;
        for (;;) {
            receive_result r;
            {
                fuzz::heap_meter::window counted;
                r = s.receive(buffer.data() + used, buffer.size() - used);
            }
            check(r.consumed <= buffer.size() - used, "receive() took more than it was given");
            used += r.consumed;
            if (r.ev.type == event_type::none) {
                check(used == buffer.size(), "receive() stopped with input left");
                break;
            }
            const bool data = r.ev.type == event_type::message ||
                              r.ev.type == event_type::message_data ||
                              r.ev.type == event_type::message_end;
            check(!data || r.ev.data.size() <= o.max_message_size,
                  "a delivery over max_message_size");
            out.events.push_back(
                {r.ev.type, r.ev.op, std::string(r.ev.data), r.ev.code, r.ev.error});
        }
    }
    out.output = std::string(s.pending_output());
    out.state = s.state();
    out.heap_peak = fuzz::heap_meter::peak();
    out.events = merged(out.events, o.max_message_size);
    return out;
}

std::string frame(opcode op, std::string_view payload, bool fin, bool masked, bool rsv1) {
    frame_header h;
    h.fin = fin;
    h.rsv1 = rsv1;
    h.op = op;
    h.payload_size = payload.size();
    h.masked = masked;
    h.mask = 0x1F2E3D4C;
    unsigned char head[max_frame_header_size];
    const std::size_t n = encode_frame_header(h, head);
    std::string out(reinterpret_cast<const char*>(head), n);
    const std::size_t at = out.size();
    out.append(payload);
    if (masked) apply_mask(&out[at], payload.size(), h.mask);
    return out;
}

void check_failure(const recorded& e) {
    const auto ec = e.error;
    const bool compression =
        ec == duplex::error::bad_compressed_data || ec == duplex::error::reserved_bits;
    const bool too_big = ec == duplex::error::message_too_big ||
                         ec == duplex::error::frame_too_big ||
                         ec == duplex::error::too_many_fragments;
    const bool utf8 = ec == duplex::error::invalid_utf8;
    check(ec.category() == duplex::error_category(), "a failure outside duplex's errors");
    check(!compression || e.code == 1002, "a compression error without 1002");
    check(!too_big || e.code == 1009, "a size error without 1009");
    check(!utf8 || e.code == 1007, "bad UTF-8 without 1007");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const unsigned flags = data[0];
    const unsigned mode_byte = data[1];
    const std::string_view body(reinterpret_cast<const char*>(data) + 2, size - 2);

    const role receiver = (flags & 1U) != 0 ? role::client : role::server;
    const role sender = receiver == role::server ? role::client : role::server;
    const bool masked = sender == role::client;
    deflate_params p;
    p.server_no_context_takeover = (flags & 2U) != 0;
    p.client_no_context_takeover = (flags & 4U) != 0;
    p.server_max_window_bits = 8 + static_cast<int>((flags >> 4U) & 7U);
    p.client_max_window_bits = 15 - static_cast<int>((flags >> 4U) & 7U);
    session_options o;
    o.deflate = p;
    o.compression.threshold = 0;
    o.deliver_partial_messages = (flags & 8U) != 0;
    // 64 bytes to 8 KiB: small enough that bombs reach the limit within the input sizes the
    // fuzzer tries, and the limit's checks run on most inputs.
    o.max_message_size = std::size_t{64} << ((mode_byte >> 5U) & 7U);
    o.max_frame_size = o.max_message_size * 4;
    const unsigned mode = mode_byte % 3U;

    std::string wire;
    std::vector<std::string> sent; // mode 2: the messages our sender sent
    if (mode == 0) {
        const std::size_t frames = 1 + ((mode_byte >> 2U) & 3U);
        const bool rsv1_on_continuation = (mode_byte & 0x10U) != 0 && frames > 1;
        const bool ping_with_rsv1 = (flags & 0x80U) != 0;
        const opcode op = (mode_byte & 2U) != 0 ? opcode::text : opcode::binary;
        std::size_t at = 0;
        for (std::size_t f = 0; f < frames; ++f) {
            const bool last = f + 1 == frames;
            const std::size_t n = last ? body.size() - at : (body.size() - at) / (frames - f);
            const bool rsv1 = f == 0 || (rsv1_on_continuation && last);
            wire +=
                frame(f == 0 ? op : opcode::continuation, body.substr(at, n), last, masked, rsv1);
            if (f == 0 && ping_with_rsv1) wire += frame(opcode::ping, "", true, masked, true);
            at += n;
        }
    } else if (mode == 1) {
        wire.assign(body);
    } else {
        session tx(sender, o, seed);
        // Up to three messages, text where the bytes are UTF-8.
        std::size_t at = 0;
        for (std::size_t m = 0; m < 3 && at <= body.size(); ++m) {
            const std::size_t n = m == 2 ? body.size() - at : (body.size() - at) / (3 - m);
            const std::string_view piece = body.substr(at, n);
            at += n;
            if (piece.size() > o.max_message_size) continue;
            const opcode op = fuzz::reference_is_utf8(piece) ? opcode::text : opcode::binary;
            check(!tx.send(op, piece), "our session refused to send a valid message");
            sent.emplace_back(piece);
            if (m == 2) break;
        }
        wire.assign(tx.pending_output());
    }

    const session_options& ro = o;
    const outcome whole = run(receiver, ro, wire, {});
    const outcome split =
        run(receiver, ro, wire, fuzz::random_cuts(flags * 131U + mode_byte, wire.size()));
    check(whole == split, "the session differs when its input is split");
    if (wire.size() <= 512) {
        const outcome bytewise = run(receiver, ro, wire, fuzz::every_cut(wire.size()));
        check(whole == bytewise, "the session differs byte by byte");
    }

    // What the session keeps while receiving: the message (or piece) under the limit, its
    // string's growth, zlib's state and window (under 48 KiB), a close frame and small change.
    if (fuzz::heap_meter::available()) {
        const long long bound = static_cast<long long>(4 * ro.max_message_size) + (64 << 10);
        check(whole.heap_peak <= bound, "receiving kept more heap than the limit allows");
    }

    bool failed = false;
    for (const auto& e : whole.events) {
        check(!failed, "an event after the failure");
        if (e.type == event_type::error) {
            failed = true;
            check_failure(e);
        }
        if (e.type == event_type::message || e.type == event_type::message_end)
            check(e.data.size() <= ro.max_message_size, "a message over max_message_size");
    }

    if (mode == 2) {
        std::vector<std::string> received;
        for (const auto& e : whole.events) {
            if (e.type == event_type::message || e.type == event_type::message_end)
                received.push_back(e.data);
        }
        check(!failed, "our own compressed messages failed the peer");
        check(received == sent, "what we compressed did not inflate to what we sent");
    }
    return 0;
}
