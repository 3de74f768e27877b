// libFuzzer target: the session state machine, in the server and in the client role, fed
// arbitrary bytes while the input's script interleaves sends, pings, pongs, closes, zero-copy
// sends and partial output writes. Beyond "no crash" it checks on every input:
//   * a reference model written from RFC 6455 (below) predicts every event, every call's
//     result, the final state and every frame the session sends: pongs, close replies,
//     failure closes and the script's own frames;
//   * every frame header the session accepts re-encodes to the same bytes (so only the
//     minimal length encoding passes), and every frame it sends decodes, is minimal and is
//     masked exactly when the session is a client;
//   * the same events, call results, output and state whether the bytes come whole, one at a
//     time, or split at pseudo-random points; partial delivery, joined, equals whole messages;
//   * every byte is accounted for, no event follows an error or a close, and a failure
//     leaves the session failed with that error;
//   * what the session sends, fed to a session of the other role, yields the same messages,
//     pings, pongs and close;
//   * the heap the session keeps stays within its configured limits plus what it was asked to
//     send (measured under AddressSanitizer).
//
// Input layout:
//   byte 0  bit 0 role (1 = client); bits 1-7: max_message_size = 32 + 32 * n
//   byte 1  bits 0-5: max_frame_size = 16 + 16 * n; bit 6 auto_pong; bit 7 RSV1 allowed
//   byte 2  bits 0-3: max_fragments = 1 + n (15: no cap); bit 4 RSV2 allowed; bit 5 RSV3
//           allowed; bits 6-7: fragment_overhead = 0, 1, 14 or 32
//   byte 3  seed of the pseudo-random split points
//   byte 4  bits 0-2: number of script steps, each 4 bytes [what, where, length, from]
//   then    the received bytes ("wire")
// A step runs once the wire bytes before `where * wire.size() / 255` have been received; its
// payload is `length` bytes of the wire starting at `from` (see make_step_payload).
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

struct sent_frame {
    opcode op;
    bool fin;
    std::string payload;
    bool operator==(const sent_frame& o) const {
        return op == o.op && fin == o.fin && payload == o.payload;
    }
};

// ---- reference model --------------------------------------------------------------------

// RFC 6455 7.4.1 and 7.4.2 plus the IANA registry's 1012-1014, written out again here.
bool may_travel_on_wire(std::uint16_t code) {
    if (code >= 3000 && code <= 4999) return true;
    switch (code) {
    case 1000:
    case 1001:
    case 1002:
    case 1003:
    case 1007:
    case 1008:
    case 1009:
    case 1010:
    case 1011:
    case 1012:
    case 1013:
    case 1014: return true;
    default: return false;
    }
}

std::uint16_t expected_close_code(std::error_code ec) {
    if (ec == duplex::error::invalid_utf8) return 1007; // 7.4.1: inconsistent data
    if (ec == duplex::error::frame_too_big || ec == duplex::error::message_too_big ||
        ec == duplex::error::too_many_fragments)
        return 1009; // 10.4: too big to process
    return 1002;     // everything else is a protocol error
}

std::string close_payload(std::uint16_t code, std::string_view reason) {
    std::string out;
    out += static_cast<char>(code >> 8U);
    out += static_cast<char>(code & 0xFFU);
    out.append(reason);
    return out;
}

// RFC 6455 5.3, byte by byte: payload octet i is XORed with key octet i mod 4 (the key in
// wire order). Unmasks `payload` from index `from` on.
void unmask(std::string& payload, std::size_t from, std::uint32_t key) {
    unsigned char key_bytes[4];
    std::memcpy(key_bytes, &key, 4);
    for (std::size_t i = from; i < payload.size(); ++i)
        payload[i] = static_cast<char>(static_cast<unsigned char>(payload[i]) ^ key_bytes[i % 4]);
}

// What a session must do, from RFC 6455 and the session's documented limits, written without
// looking at how the session does it: it keeps whole frames as strings and decides each rule
// in the order the RFC states them. It shares only the header codec with the session, and
// checks that codec's minimal-length promise on every header.
class model {
public:
    model(role r, const session_options& options) : role_(r), options_(options) {}

    session_state state() const { return state_; }
    std::error_code error() const { return error_; }
    bool close_received() const { return close_received_; }
    std::uint16_t peer_close_code() const { return peer_close_code_; }
    const std::string& peer_close_reason() const { return peer_close_reason_; }
    const std::vector<sent_frame>& output() const { return output_; }

    void receive(std::string_view bytes, std::vector<record>& events) {
        if (input_finished()) return;
        pending_.append(bytes);
        for (;;) {
            if (input_finished()) {
                pending_.clear(); // 5.5.1, 7.1.7: nothing after a close or a failure counts
                return;
            }
            if (!in_frame_) {
                if (!start_frame(events)) return;
                continue;
            }
            const std::size_t take =
                static_cast<std::size_t>(std::min<std::uint64_t>(frame_left_, pending_.size()));
            const std::size_t before = frame_payload_.size();
            frame_payload_.append(pending_, 0, take);
            pending_.erase(0, take);
            frame_left_ -= take;
            if (frame_.masked) unmask(frame_payload_, before, frame_.mask);
            if (!is_control(frame_.op) && message_is_text_ &&
                !text_check_.feed(std::string_view(frame_payload_).substr(before))) {
                fail(duplex::error::invalid_utf8, events); // 8.1: fail fast, mid-frame
                continue;
            }
            if (frame_left_ != 0) return; // the rest of the frame has not arrived
            in_frame_ = false;
            if (is_control(frame_.op)) {
                on_control(events);
                continue;
            }
            message_ += frame_payload_;
            if (!frame_.fin) continue;
            in_message_ = false;
            if (message_is_text_ && !text_check_.complete()) {
                fail(duplex::error::invalid_utf8, events);
                continue;
            }
            events.push_back({event_type::message, message_op_, message_, 0, {}});
            message_.clear();
        }
    }

    std::error_code send(opcode op, std::string_view payload, bool fin) {
        if (op != opcode::text && op != opcode::binary && op != opcode::continuation)
            return duplex::error::bad_opcode;
        if (state_ != session_state::open) return duplex::error::closed; // 5.5.1
        if (op == opcode::continuation && !sending_message_)
            return duplex::error::no_message_in_progress;
        if (op != opcode::continuation && sending_message_)
            return duplex::error::message_in_progress; // 5.4: no interleaved messages
        const bool text = op == opcode::continuation ? sending_text_ : op == opcode::text;
        const std::string so_far = op == opcode::continuation ? sent_text_ : std::string();
        if (text) {
            fuzz::reference_utf8 decoder;
            if (!decoder.feed(so_far + std::string(payload)) || (fin && !decoder.complete()))
                return duplex::error::invalid_utf8;
        }
        sending_text_ = text;
        sent_text_ = text && !fin ? so_far + std::string(payload) : std::string();
        sending_message_ = !fin;
        output_.push_back({op, fin, std::string(payload)});
        return {};
    }

    // prepare_whole_message(): no UTF-8 scan, the caller vouches for the payload.
    std::error_code send_whole_unchecked(opcode op, std::string_view payload) {
        if (op != opcode::text && op != opcode::binary) return duplex::error::bad_opcode;
        if (state_ != session_state::open) return duplex::error::closed;
        if (sending_message_) return duplex::error::message_in_progress;
        output_.push_back({op, true, std::string(payload)});
        return {};
    }

    std::error_code send_control(opcode op, std::string_view payload) {
        // 5.5.1: control frames may follow our close, but nothing follows the peer's.
        if (state_ != session_state::open && state_ != session_state::closing)
            return duplex::error::closed;
        if (payload.size() > 125) return duplex::error::control_payload_too_big; // 5.5
        output_.push_back({op, true, std::string(payload)});
        return {};
    }

    std::error_code close(std::uint16_t code, std::string_view reason) {
        if (state_ != session_state::open) return duplex::error::closed;
        std::string payload;
        if (code == 1005) {
            if (!reason.empty()) return duplex::error::bad_close_code; // 5.5.1
        } else {
            if (!may_travel_on_wire(code)) return duplex::error::bad_close_code;
            if (reason.size() > 123) return duplex::error::control_payload_too_big;
            if (!fuzz::reference_is_utf8(reason)) return duplex::error::invalid_utf8;
            payload = close_payload(code, reason);
        }
        output_.push_back({opcode::close, true, payload});
        state_ = session_state::closing;
        return {};
    }

private:
    bool input_finished() const {
        return state_ == session_state::closed || state_ == session_state::failed;
    }

    // Decodes the next header once all of it is there and applies the rules that depend on
    // the role, the message in progress and the limits. False when more bytes are needed.
    bool start_frame(std::vector<record>& events) {
        frame_header h;
        const auto* bytes = reinterpret_cast<const unsigned char*>(pending_.data());
        const auto r = decode_frame_header(bytes, pending_.size(), h, options_.reserved_bits);
        if (r.status == progress::need_more) return false;
        if (r.status == progress::failed) {
            fail(r.error, events);
            return true;
        }
        unsigned char again[max_frame_header_size];
        check(encode_frame_header(h, again) == r.size && std::memcmp(again, bytes, r.size) == 0,
              "an accepted frame header does not re-encode to its bytes");
        pending_.erase(0, r.size);
        if (const auto ec = frame_violation(h)) {
            fail(ec, events);
            return true;
        }
        frame_ = h;
        frame_left_ = h.payload_size;
        frame_payload_.clear();
        in_frame_ = true;
        return true;
    }

    std::error_code frame_violation(const frame_header& h) {
        // An extension may claim RSV bits for data frames only.
        if (is_control(h.op) && (h.rsv1 || h.rsv2 || h.rsv3)) return duplex::error::reserved_bits;
        if (role_ == role::server && !h.masked) return duplex::error::mask_required;  // 5.1
        if (role_ == role::client && h.masked) return duplex::error::unexpected_mask; // 5.1
        if (is_control(h.op)) return {};
        if (h.op == opcode::continuation) {
            if (!in_message_) return duplex::error::unexpected_continuation; // 5.4
            // Each continuation frame is charged fragment_overhead bytes of the message budget.
            if (++fragments_ > options_.max_fragments ||
                message_.size() + charged_ + options_.fragment_overhead > options_.max_message_size)
                return duplex::error::too_many_fragments;
            charged_ += options_.fragment_overhead;
        } else {
            if (in_message_) return duplex::error::expected_continuation; // 5.4
            in_message_ = true;
            message_op_ = h.op;
            message_is_text_ = h.op == opcode::text;
            text_check_ = {};
            fragments_ = 1;
            charged_ = 0;
            message_.clear();
        }
        // 10.4: limits are judged from the header, before any payload is kept.
        if (h.payload_size > options_.max_frame_size) return duplex::error::frame_too_big;
        if (message_.size() + charged_ + h.payload_size > options_.max_message_size)
            return duplex::error::message_too_big;
        return {};
    }

    void on_control(std::vector<record>& events) {
        if (frame_.op == opcode::ping) {
            // 5.5.2: answer with a pong carrying the same data, unless the peer closed.
            if (options_.auto_pong && state_ != session_state::closed)
                output_.push_back({opcode::pong, true, frame_payload_});
            events.push_back({event_type::ping, opcode::text, frame_payload_, 0, {}});
            return;
        }
        if (frame_.op == opcode::pong) {
            events.push_back({event_type::pong, opcode::text, frame_payload_, 0, {}});
            return;
        }
        // 5.5.1 and 7.4: a close payload is empty, or a code that may travel followed by
        // UTF-8.
        std::uint16_t code = 1005;
        std::string reason;
        if (!frame_payload_.empty()) {
            if (frame_payload_.size() == 1) return fail(duplex::error::bad_close_payload, events);
            code =
                static_cast<std::uint16_t>((static_cast<unsigned char>(frame_payload_[0]) << 8U) |
                                           static_cast<unsigned char>(frame_payload_[1]));
            if (!may_travel_on_wire(code)) return fail(duplex::error::bad_close_code, events);
            reason = frame_payload_.substr(2);
            if (!fuzz::reference_is_utf8(reason)) return fail(duplex::error::invalid_utf8, events);
        }
        close_received_ = true;
        peer_close_code_ = code;
        peer_close_reason_ = reason;
        if (state_ == session_state::open) // 5.5.1: echo the code; no code, no code back
            output_.push_back(
                {opcode::close, true, code == 1005 ? std::string() : close_payload(code, {})});
        state_ = session_state::closed;
        events.push_back({event_type::close, opcode::text, reason, code, {}});
    }

    // 7.1.7: a close frame with the code and the error's message goes out, unless a close
    // already did.
    void fail(std::error_code ec, std::vector<record>& events) {
        const std::uint16_t code = expected_close_code(ec);
        if (state_ == session_state::open)
            output_.push_back(
                {opcode::close, true, close_payload(code, ec.message().substr(0, 123))});
        state_ = session_state::failed;
        error_ = ec;
        events.push_back({event_type::error, opcode::text, {}, code, ec});
    }

    role role_;
    session_options options_;
    session_state state_ = session_state::open;
    std::error_code error_;
    std::string pending_; // received, not yet part of a header or a payload

    bool in_frame_ = false;
    frame_header frame_;
    std::uint64_t frame_left_ = 0;
    std::string frame_payload_;

    bool in_message_ = false;
    opcode message_op_ = opcode::text;
    bool message_is_text_ = false;
    fuzz::reference_utf8 text_check_;
    std::size_t fragments_ = 0;
    std::size_t charged_ = 0; // fragment_overhead for each continuation frame so far
    std::string message_;

    bool close_received_ = false;
    std::uint16_t peer_close_code_ = 1006;
    std::string peer_close_reason_;

    bool sending_message_ = false;
    bool sending_text_ = false;
    std::string sent_text_; // the text message being sent, to judge its UTF-8 as a whole
    std::vector<sent_frame> output_;
};

// ---- the script -------------------------------------------------------------------------

enum class step_kind : unsigned {
    send_text,
    send_binary,
    start_text,
    start_binary,
    continue_message,
    finish_message,
    ping,
    pong,
    close_with_code,
    zero_copy_send,
    whole_message_unchecked,
    write_some_output,
    send_control_opcode,
    close_default,
    send_close_opcode,
    close_without_code,
};

struct step {
    std::size_t at; // wire offset before which this step runs
    unsigned what;
    std::string payload;
};

// Codes the script closes with: valid, local-only, reserved and out of range.
constexpr std::uint16_t script_close_codes[16] = {1000, 1001, 1005, 1006, 1015, 999,  1004, 1016,
                                                  2999, 3000, 4999, 5000, 1007, 1011, 1014, 0};

std::string make_step_payload(std::string_view wire, unsigned what, unsigned length,
                              unsigned from) {
    std::string payload;
    if (!wire.empty()) payload = std::string(wire.substr(from % wire.size(), length));
    // Bit 4 of a plain send asks for a payload past 65535 bytes, so that 64-bit lengths are
    // sent and read back too.
    const auto kind = static_cast<step_kind>(what & 0x0FU);
    if ((what & 0x10U) != 0 && (kind == step_kind::send_text || kind == step_kind::send_binary)) {
        const std::string unit = payload.empty() ? std::string("x") : payload;
        while (payload.size() < 65536) payload += unit;
    }
    return payload;
}

struct run_log {
    std::vector<record> events;
    std::vector<std::error_code> results; // of the script's calls, in order
    std::string sent;                     // every byte the session gave to write, in order
    bool operator==(const run_log& o) const {
        return events == o.events && results == o.results && sent == o.sent;
    }
};

enum class cutting { whole, every_byte, pseudo_random };

void feed(session& s, std::string_view bytes, cutting how, unsigned seed, run_log& log) {
    std::vector<std::size_t> cuts;
    if (how == cutting::every_byte) cuts = fuzz::every_cut(bytes.size());
    if (how == cutting::pseudo_random) cuts = fuzz::random_cuts(seed, bytes.size());
    for (const auto piece_view : fuzz::pieces(bytes, cuts)) {
        std::string piece(piece_view); // receive() unmasks in place
        char* data = piece.data();
        std::size_t size = piece.size();
        for (std::size_t guard = 0;; ++guard) {
            check(guard <= piece.size() + 2, "receive() made no progress");
            receive_result r;
            {
                fuzz::heap_meter::window counted;
                r = s.receive(data, size);
            }
            check(r.consumed <= size, "consumed more than given");
            data += r.consumed;
            size -= r.consumed;
            if (r.ev.type == event_type::none) {
                check(size == 0, "none returned with input left");
                break;
            }
            check(log.events.empty() || (log.events.back().type != event_type::error &&
                                         log.events.back().type != event_type::close),
                  "an event after an error or a close");
            if (r.ev.type == event_type::message_data) check(!r.ev.data.empty(), "empty piece");
            if (r.ev.type == event_type::message || r.ev.type == event_type::message_data)
                check(r.ev.data.size() <= s.options().max_message_size, "message over the limit");
            if (r.ev.type == event_type::error) {
                check(s.state() == session_state::failed && s.error() == r.ev.error &&
                          s.wants_transport_close() && size == 0,
                      "an error event without a failed session");
            }
            if (r.ev.type == event_type::close) {
                check(s.close_received() && s.peer_close_code() == r.ev.code &&
                          s.peer_close_reason() == r.ev.data,
                      "a close event that the session does not remember");
            }
            log.events.push_back(
                {r.ev.type, r.ev.op, std::string(r.ev.data), r.ev.code, r.ev.error});
        }
    }
}

void take_output(session& s, std::size_t n, run_log& log) {
    const std::string_view pending = s.pending_output();
    check(s.has_pending_output() == !pending.empty(), "has_pending_output() disagrees");
    log.sent.append(pending.substr(0, n));
    fuzz::heap_meter::window counted;
    s.consume_output(n);
}

// Runs one step on the session and, when there is one, on the model; checks that both agree
// on the call's result. Only the session's own work is counted by the heap meter.
std::error_code run_step(session& s, model* m, const step& st, run_log& log) {
    const auto kind = static_cast<step_kind>(st.what & 0x0FU);
    const std::string& p = st.payload;
    std::error_code expected;
    std::error_code got;
    const auto counted = [](auto&& call) {
        fuzz::heap_meter::window window;
        return call();
    };
    // The caller of prepare_send() writes what is pending, then the header, then the
    // payload that it masks itself.
    const auto write_zero_copy = [&](const frame_prefix& prefix) {
        take_output(s, s.pending_output().size(), log);
        log.sent.append(prefix.view());
        std::string payload = p;
        if (prefix.masked) apply_mask(payload.data(), payload.size(), prefix.key);
        log.sent.append(payload);
    };
    switch (kind) {
    case step_kind::send_text:
        if (m) expected = m->send(opcode::text, p, true);
        got = counted([&] { return s.send_text(p); });
        break;
    case step_kind::send_binary:
        if (m) expected = m->send(opcode::binary, p, true);
        got = counted([&] { return s.send_binary(p); });
        break;
    case step_kind::start_text:
        if (m) expected = m->send(opcode::text, p, false);
        got = counted([&] { return s.send(opcode::text, p, false); });
        break;
    case step_kind::start_binary:
        if (m) expected = m->send(opcode::binary, p, false);
        got = counted([&] { return s.send(opcode::binary, p, false); });
        break;
    case step_kind::continue_message:
        if (m) expected = m->send(opcode::continuation, p, false);
        got = counted([&] { return s.send(opcode::continuation, p, false); });
        break;
    case step_kind::finish_message:
        if (m) expected = m->send(opcode::continuation, p, true);
        got = counted([&] { return s.send(opcode::continuation, p, true); });
        break;
    case step_kind::ping:
        if (m) expected = m->send_control(opcode::ping, p);
        got = counted([&] { return s.ping(p); });
        break;
    case step_kind::pong:
        if (m) expected = m->send_control(opcode::pong, p);
        got = counted([&] { return s.pong(p); });
        break;
    case step_kind::close_with_code: {
        const std::uint16_t code = script_close_codes[(st.what >> 4U) & 0x0FU];
        if (m) expected = m->close(code, p);
        got = counted([&] { return s.close(code, p); });
        break;
    }
    case step_kind::zero_copy_send: {
        const opcode ops[4] = {opcode::text, opcode::binary, opcode::continuation, opcode::ping};
        const opcode op = ops[(st.what >> 4U) & 3U];
        const bool fin = (st.what & 0x40U) != 0;
        if (m) expected = m->send(op, p, fin);
        frame_prefix prefix;
        got = counted([&] { return s.prepare_send(op, p, fin, prefix); });
        if (!got) write_zero_copy(prefix);
        break;
    }
    case step_kind::whole_message_unchecked: {
        // Only text the caller knows to be valid: the session does not look at it.
        const bool text = fuzz::reference_is_utf8(p) && (st.what & 0x10U) == 0;
        const opcode op = text ? opcode::text : opcode::binary;
        if (m) expected = m->send_whole_unchecked(op, p);
        frame_prefix prefix;
        got = counted([&] { return s.prepare_whole_message(op, p.size(), prefix); });
        if (!got) write_zero_copy(prefix);
        break;
    }
    case step_kind::write_some_output: take_output(s, p.size(), log); break;
    case step_kind::send_control_opcode:
        if (m) expected = m->send(opcode::ping, p, true);
        got = counted([&] { return s.send(opcode::ping, p, true); });
        break;
    case step_kind::close_default:
        if (m) expected = m->close(1000, {});
        got = counted([&] { return s.close(); });
        break;
    case step_kind::send_close_opcode:
        if (m) expected = m->send(opcode::close, p, true);
        got = counted([&] { return s.send(opcode::close, p, true); });
        break;
    case step_kind::close_without_code:
        if (m) expected = m->close(1005, {});
        got = counted([&] { return s.close(close_code::no_status); });
        break;
    }
    if (m != nullptr) check(got == expected, "a call's result differs from the model's");
    return got;
}

// Runs the script against the received bytes, cut as asked; with a model, checks each call
// and each event against it as they happen.
run_log drive(session& s, model* m, std::string_view wire, const std::vector<step>& script,
              cutting how, unsigned seed) {
    run_log log;
    std::size_t at = 0;
    for (std::size_t i = 0; i <= script.size(); ++i) {
        const std::size_t until = i < script.size() ? script[i].at : wire.size();
        const std::size_t before = log.events.size();
        feed(s, wire.substr(at, until - at), how, seed, log);
        if (m != nullptr) {
            std::vector<record> expected;
            m->receive(wire.substr(at, until - at), expected);
            check(std::equal(log.events.begin() + static_cast<std::ptrdiff_t>(before),
                             log.events.end(), expected.begin(), expected.end()),
                  "events differ from the model's");
        }
        at = until;
        if (i < script.size()) log.results.push_back(run_step(s, m, script[i], log));
    }
    take_output(s, s.pending_output().size(), log);
    return log;
}

// Splits what a session sent into frames, checking each is one a peer accepts: decodable,
// minimally encoded, masked exactly when sent by a client.
std::vector<sent_frame> read_sent_frames(std::string_view bytes, role sender) {
    std::vector<sent_frame> frames;
    while (!bytes.empty()) {
        frame_header h;
        const auto* data = reinterpret_cast<const unsigned char*>(bytes.data());
        const auto r = decode_frame_header(data, bytes.size(), h);
        check(r.status == progress::done, "a frame we sent does not decode");
        unsigned char again[max_frame_header_size];
        check(encode_frame_header(h, again) == r.size && std::memcmp(again, data, r.size) == 0,
              "a frame header we sent is not minimal");
        check(h.masked == (sender == role::client), "5.1: clients mask, servers do not");
        check(bytes.size() - r.size >= h.payload_size, "a frame we sent is cut short");
        const auto size = static_cast<std::size_t>(h.payload_size);
        std::string payload(bytes.substr(r.size, size));
        if (h.masked) unmask(payload, 0, h.mask);
        frames.push_back({h.op, h.fin, payload});
        bytes.remove_prefix(r.size + size);
    }
    return frames;
}

// What a peer must report for frames we sent: messages joined, up to and including a close.
std::vector<record> peer_view(const std::vector<sent_frame>& frames) {
    std::vector<record> events;
    std::string message;
    opcode message_op = opcode::text;
    for (const auto& f : frames) {
        if (f.op == opcode::ping || f.op == opcode::pong) {
            const event_type type = f.op == opcode::ping ? event_type::ping : event_type::pong;
            events.push_back({type, opcode::text, f.payload, 0, {}});
            continue;
        }
        if (f.op == opcode::close) {
            std::uint16_t code = 1005;
            std::string reason;
            if (!f.payload.empty()) {
                code = static_cast<std::uint16_t>((static_cast<unsigned char>(f.payload[0]) << 8U) |
                                                  static_cast<unsigned char>(f.payload[1]));
                reason = f.payload.substr(2);
            }
            events.push_back({event_type::close, opcode::text, reason, code, {}});
            break;
        }
        if (f.op != opcode::continuation) {
            message.clear();
            message_op = f.op;
        }
        message += f.payload;
        if (f.fin) events.push_back({event_type::message, message_op, message, 0, {}});
    }
    return events;
}

// Joins partial pieces into whole messages so the two delivery modes can be compared.
std::vector<record> join_pieces(const std::vector<record>& events, std::size_t max_message) {
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
            check(e.op == current.op, "a piece of another type than its message");
            current.data += e.data;
            check(current.data.size() <= max_message, "pieces add up past the limit");
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

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 5) return 0;
    const role r = (data[0] & 1U) != 0 ? role::client : role::server;
    session_options options;
    options.max_message_size = 32U + (data[0] >> 1U) * 32U;
    options.max_frame_size = 16U + (data[1] & 0x3FU) * 16U;
    options.auto_pong = (data[1] & 0x40U) != 0;
    options.reserved_bits.rsv1 = (data[1] & 0x80U) != 0;
    options.max_fragments =
        (data[2] & 0x0FU) == 0x0FU ? static_cast<std::size_t>(-1) : 1U + (data[2] & 0x0FU);
    static constexpr std::size_t overheads[] = {0, 1, 14, 32};
    options.fragment_overhead = overheads[(data[2] >> 6U) & 3U];
    options.reserved_bits.rsv2 = (data[2] & 0x10U) != 0;
    options.reserved_bits.rsv3 = (data[2] & 0x20U) != 0;
    const unsigned split_seed = data[3];
    const std::size_t steps = data[4] & 7U;
    if (size < 5 + 4 * steps) return 0;
    const std::string_view wire(reinterpret_cast<const char*>(data + 5 + 4 * steps),
                                size - 5 - 4 * steps);
    std::vector<step> script;
    for (std::size_t i = 0; i < steps; ++i) {
        const std::uint8_t* s = data + 5 + 4 * i;
        script.push_back({std::size_t{s[1]} * wire.size() / 255U, s[0],
                          make_step_payload(wire, s[0], s[2], s[3])});
    }
    std::stable_sort(script.begin(), script.end(),
                     [](const step& a, const step& b) { return a.at < b.at; });
    const random_source::seed_type seed = {1, 2, 3, 4, 5, 6, 7, 8};

    run_log logs[2];
    for (int partial = 0; partial < 2; ++partial) {
        options.deliver_partial_messages = partial != 0;
        session whole(r, options, seed), bytewise(r, options, seed), split(r, options, seed);
        model expected(r, options);

        fuzz::heap_meter::start();
        run_log a = drive(whole, partial == 0 ? &expected : nullptr, wire, script, cutting::whole,
                          split_seed);
        // The session keeps at most a message being reassembled, a control frame, the peer's
        // close reason and the unsent output. A string that grows by doubling holds up to
        // three times its size while it moves (the old buffer and one twice as big); the
        // slack covers an error message and small bookkeeping.
        const auto bound =
            3 * static_cast<long long>(options.max_message_size + a.sent.size() + 2 * 125) + 2048;
        check(fuzz::heap_meter::peak() <= bound, "the session keeps more heap than its limits");

        const run_log b = drive(bytewise, nullptr, wire, script, cutting::every_byte, split_seed);
        const run_log c = drive(split, nullptr, wire, script, cutting::pseudo_random, split_seed);
        a.events = join_pieces(a.events, options.max_message_size);
        check(a == run_log{join_pieces(b.events, options.max_message_size), b.results, b.sent},
              "events differ byte by byte");
        check(a == run_log{join_pieces(c.events, options.max_message_size), c.results, c.sent},
              "events differ when split");
        check(whole.state() == bytewise.state() && whole.state() == split.state(),
              "state differs by read boundaries");

        if (partial == 0) {
            check(whole.state() == expected.state() && whole.error() == expected.error() &&
                      whole.close_received() == expected.close_received() &&
                      whole.peer_close_code() == expected.peer_close_code() &&
                      whole.peer_close_reason() == expected.peer_close_reason(),
                  "final state differs from the model's");
            check(whole.wants_transport_close() == (whole.state() == session_state::closed ||
                                                    whole.state() == session_state::failed),
                  "wants_transport_close disagrees with the state");
            const auto frames = read_sent_frames(a.sent, r);
            check(frames == expected.output(), "sent frames differ from the model's");

            session peer(r == role::client ? role::server : role::client, {}, seed);
            run_log seen;
            feed(peer, a.sent, cutting::whole, 0, seen);
            check(seen.events == peer_view(frames), "a peer reads something else than we sent");
        }
        logs[partial] = a;
    }
    check(logs[0] == logs[1], "partial delivery changes events, results or output");
    return 0;
}
