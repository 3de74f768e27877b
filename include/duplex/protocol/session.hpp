// duplex/protocol/session.hpp — one WebSocket connection's state machine, without any I/O.
// SPDX-License-Identifier: BSL-1.0
//
// A session turns received bytes into events (messages, pings, pongs, close, errors) and calls
// (send, ping, close) into bytes to transmit. It never touches a socket, a clock or a thread, so
// it behaves the same whether bytes arrive one at a time or a megabyte at a time, and it can be
// tested and fuzzed on its own. The Asio connection layer drives it; so can any other transport.
//
// Receiving:
//     for (;;) {
//         auto r = session.receive(data, size); // may unmask `data` in place
//         data += r.consumed; size -= r.consumed;
//         if (r.ev.type == event_type::none) break; // all input used, waiting for more
//         handle(r.ev);                             // views valid until the next receive()
//     }
//     write(session.pending_output()); session.consume_output(n); // pongs, close replies
//
// Every violation of RFC 6455 fails the connection: the session queues a close frame with the
// RFC's code (1002, 1007 or 1009), reports an `error` event with a `duplex::error`, and ignores
// all further input. Size limits are decided from frame headers, before a payload is buffered.
//
// With permessage-deflate negotiated (session_options::deflate, RFC 7692), compressed messages
// are delivered inflated, the inflated size bounded by max_message_size, and whole messages
// sent are compressed. That part needs zlib (DUPLEX_ENABLE_DEFLATE).
#pragma once

#include "../error.hpp"
#include "close.hpp"
#include "frame.hpp"
#include "mask.hpp"
#include "permessage_deflate.hpp"
#include "random.hpp"
#include "utf8.hpp"
#ifdef DUPLEX_ENABLE_DEFLATE
#include "deflate_codec.hpp"
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>

namespace duplex::protocol {

enum class role { client, server };

struct session_options {
    // RFC 6455 10.4: an endpoint must protect itself against oversized frames and messages.
    std::size_t max_message_size = 16U * 1024U * 1024U;
    std::size_t max_frame_size = 16U * 1024U * 1024U;
    // Each continuation frame counts this many bytes against max_message_size on top of its
    // payload (1009 when the sum passes the limit). Without a charge, frames that carry no
    // payload (a flood of empty continuations, the attack Node ws's maxFragments answers)
    // never bring a message nearer its limit and keep the receiver parsing forever. With the
    // largest header size as the charge, no message takes more than max_message_size bytes on
    // the wire beyond its first header, however it is split, while legitimate fragmentation
    // costs little: 4 MiB in 64-byte fragments (65,537 frames) counts as about 4.9 MiB.
    std::size_t fragment_overhead = max_frame_header_size;
    // An optional cap on the frames of one message (1009 past it); by default the charge above
    // is the bound.
    std::size_t max_fragments = static_cast<std::size_t>(-1);
    // Answer each ping with a pong automatically (RFC 6455 5.5.2 requires the answer).
    bool auto_pong = true;
    // Deliver data messages as message_start / message_data / message_end pieces as they
    // arrive, instead of buffering whole messages (for large transfers and streaming).
    bool deliver_partial_messages = false;
    // RSV bits that a negotiated extension has claimed (permessage-deflate claims RSV1).
    reserved_bits_allowed reserved_bits{};
    // permessage-deflate (RFC 7692) as the handshake agreed it (server_handshake::deflate(),
    // client_handshake::deflate()); nullopt when it was not. With it, RSV1 marks compressed
    // messages, which are delivered inflated (max_message_size bounds the inflated size), and
    // send() and prepare_message() compress whole messages of at least compression.threshold
    // bytes. Needs DUPLEX_ENABLE_DEFLATE in every translation unit (link duplex::deflate):
    // without it this is ignored, and no handshake agrees to the extension.
    std::optional<deflate_params> deflate;
    deflate_tuning compression;
};

// Which endpoint sent the first close frame of a connection.
enum class close_initiator {
    none,  // no close frame was sent or received (the transport ended without one)
    local, // this endpoint: close(), or a violation that failed the connection (7.1.7)
    peer,  // the other endpoint; ours was the reply (5.5.1)
};

enum class session_state {
    open,    // data flows both ways
    closing, // we sent a close frame and wait for the peer's
    closed,  // close frames went both ways: close the transport (the server first, 7.1.1)
    failed,  // we failed the connection (7.1.7): flush pending output, then close the transport
};

enum class event_type {
    none,          // no event: every byte given was used; wait for more
    message,       // a whole data message: `op` is text or binary, `data` its payload
    message_start, // partial delivery: a message of type `op` begins
    message_data,  // partial delivery: the next piece of the message's payload
    message_end,   // partial delivery: the last piece (possibly empty) of the message
    ping,          // `data` is the ping's payload (a pong is already queued when auto_pong)
    pong,          // `data` is the pong's payload
    close,         // the peer closed: `code` (1005 when none given) and `data` the reason
    error,         // we failed the connection: `error` says why, `code` is the close code sent
};

struct event {
    event_type type = event_type::none;
    opcode op = opcode::text;
    std::string_view data;
    std::uint16_t code = 0;
    std::error_code error;
};

struct receive_result {
    std::size_t consumed = 0;
    event ev;
};

// A frame header prepared for a caller that writes the payload itself (gather-writes without
// copying it into the session). When `masked`, the caller masks the payload with `key`.
struct frame_prefix {
    unsigned char bytes[max_frame_header_size];
    std::size_t size = 0;
    bool masked = false;
    mask_key key = 0;
    std::string_view view() const noexcept { return {reinterpret_cast<const char*>(bytes), size}; }
};

class session {
public:
    explicit session(role r, session_options options = {}) : role_(r), options_(options) {
        if (role_ == role::client) random_ = std::make_unique<random_source>();
        start_deflate();
    }

    // A session whose masking keys come from a fixed seed: reproducible tests and fuzzing.
    session(role r, session_options options, const random_source::seed_type& seed)
        : role_(r), options_(options), random_(std::make_unique<random_source>(seed)) {
        start_deflate();
    }

    role get_role() const noexcept { return role_; }
    session_state state() const noexcept { return state_; }
    const session_options& options() const noexcept { return options_; }

    // The error that failed the connection, if one did.
    std::error_code error() const noexcept { return error_; }

    // True once the transport should be closed (after sending pending_output()).
    bool wants_transport_close() const noexcept {
        return state_ == session_state::closed || state_ == session_state::failed;
    }

    bool close_received() const noexcept { return close_received_; }
    // Whether permessage-deflate is on (negotiated, and this build has zlib).
    bool compresses() const noexcept { return deflate_on_; }
    // Whether zlib memory is held now: between messages only with context takeover.
    bool holds_deflate_state() const noexcept {
#ifdef DUPLEX_ENABLE_DEFLATE
        return deflate_on_ && (deflater_->holds_state() || inflater_->holds_state());
#else
        return false;
#endif
    }
    // Whether prepare_message() compresses a whole message of `size` bytes.
    bool would_compress(std::size_t size) const noexcept {
        return deflate_on_ && size > 0 && size >= options_.compression.threshold;
    }
    // A server that agreed server_no_context_takeover starts every message afresh, so what it
    // sends compressed depends only on these settings and the message: compressed once, a
    // broadcast serves every connection with the same settings (shared_message). nullopt for
    // a compressor with context takeover (each message builds on this connection's earlier
    // ones), for a client (its frames are masked each with its own key), and without deflate.
    std::optional<stateless_deflate> shared_compression() const noexcept {
        if (!deflate_on_ || role_ != role::server || !options_.deflate->server_no_context_takeover)
            return std::nullopt;
        const auto clamp = [](int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; };
        return stateless_deflate{clamp(options_.deflate->server_max_window_bits, 8, 15),
                                 clamp(options_.compression.level, 0, 9),
                                 clamp(options_.compression.mem_level, 1, 9)};
    }
    // The peer's close code (1005 when it sent none, 1006 when no close was received) and reason.
    std::uint16_t peer_close_code() const noexcept { return peer_close_code_; }
    const std::string& peer_close_reason() const noexcept { return peer_close_reason_; }
    // The code of the close frame this endpoint queued (1005 when it carried none, 1006 when
    // none was queued), and who started the closing handshake.
    std::uint16_t sent_close_code() const noexcept { return sent_close_code_; }
    close_initiator initiator() const noexcept { return initiator_; }

    // ---- receiving ---------------------------------------------------------------------

    // Parses as much of `data` as it needs to produce the next event. Masked payloads are
    // unmasked in place. An event's `data` points into `data` or into the session and is
    // valid until the next call on this session. Call again until it returns event_type::none.
    receive_result receive(char* data, std::size_t size) {
        if (release_message_) {
            // Give back a large reassembly buffer once its message was delivered: an idle
            // connection should not hold the memory of the biggest message it ever received.
            if (message_.capacity() > keep_buffer_capacity)
                std::string().swap(message_);
            else
                message_.clear();
            if (inflated_.capacity() > keep_buffer_capacity) std::string().swap(inflated_);
            release_message_ = false;
        }
        receive_result result;
        if (input_finished()) {
            result.consumed = size; // RFC 6455 5.5.1 / 7.1.7: nothing more is processed
            return result;
        }
        std::size_t& used = result.consumed;
        while (used < size || (rx_ == rx_state::payload && payload_left_ == 0)) {
            if (rx_ == rx_state::header) {
                if (!read_header(data, size, used, result.ev)) {
                    if (result.ev.type == event_type::error) result.consumed = size;
                    return result;
                }
                if (result.ev.type != event_type::none) return result; // message_start
                continue;
            }
            read_payload(data, size, used, result.ev);
            if (result.ev.type == event_type::error) {
                result.consumed = size;
                return result;
            }
            if (result.ev.type != event_type::none) return result;
        }
        return result;
    }

    // ---- sending -------------------------------------------------------------------------

    std::error_code send_text(std::string_view text) { return send(opcode::text, text, true); }
    std::error_code send_binary(std::string_view data) { return send(opcode::binary, data, true); }

    // Sends one data frame. A fragmented message is a text/binary frame with fin=false,
    // then continuation frames, the last with fin=true (RFC 6455 5.4).
    // With permessage-deflate, a whole message (fin, not a continuation) is compressed as
    // prepare_message() says; the frames of a fragmented message are sent uncompressed.
    std::error_code send(opcode op, std::string_view payload, bool fin = true) {
        frame_prefix prefix;
        std::string_view body = payload;
        if (fin && op != opcode::continuation) {
            if (auto ec = prepare_message(op, payload, prefix, body)) return ec;
        } else if (auto ec = prepare_send(op, payload, fin, prefix)) {
            return ec;
        }
        append_frame(prefix, body);
#ifdef DUPLEX_ENABLE_DEFLATE
        // Copied: an idle session keeps no compressed message.
        if (compressed_.capacity() > keep_buffer_capacity) std::string().swap(compressed_);
#endif
        return {};
    }

    // prepare_send() for one whole text or binary message, compressed when permessage-deflate
    // is on and the payload has at least compression.threshold bytes (RFC 7692 7.2.1: RSV1
    // set, the trailer removed). `body` is what to write after prefix.view() (masked with
    // prefix.key when prefix.masked): `payload` itself, or the compressed bytes, which the
    // session holds until the next call that sends. Messages must be written in the order
    // they were prepared: with context takeover each one's compression builds on the last.
    std::error_code prepare_message(opcode op, std::string_view payload, frame_prefix& prefix,
                                    std::string_view& body) {
        body = payload;
        if (op == opcode::continuation) return error::bad_opcode;
        if (auto ec = begin_send(op, payload, true)) return ec;
        bool compressed = false;
#ifdef DUPLEX_ENABLE_DEFLATE
        if (compressed_.capacity() > keep_buffer_capacity) std::string().swap(compressed_);
        if (deflate_on_ && !payload.empty() && payload.size() >= options_.compression.threshold) {
            // On a zlib failure (memory) the message goes uncompressed, which is always allowed.
            compressed = deflater_->compress(payload, compressed_);
            if (compressed) body = compressed_;
        }
#endif
        make_prefix(op, true, body.size(), prefix, compressed);
        return {};
    }

    // Like send(), but returns the header instead of queueing the frame: the caller writes
    // prefix.view() and then the payload (masked with prefix.key when prefix.masked) itself,
    // in order with pending_output(). This is the zero-copy path for large or shared payloads.
    std::error_code prepare_send(opcode op, std::string_view payload, bool fin,
                                 frame_prefix& prefix) {
        if (auto ec = begin_send(op, payload, fin)) return ec;
        make_prefix(op, fin, payload.size(), prefix);
        return {};
    }

    // prepare_send() for a whole message whose payload the caller has already validated (a
    // text payload checked as UTF-8 once for many recipients): the header only, no scan.
    // Never compressed.
    std::error_code prepare_whole_message(opcode op, std::size_t payload_size,
                                          frame_prefix& prefix) {
        if (op != opcode::text && op != opcode::binary) return error::bad_opcode;
        if (state_ != session_state::open) return error::closed;
        if (sending_message_) return error::message_in_progress;
        make_prefix(op, true, payload_size, prefix);
        return {};
    }

    // Allowed until the peer's close arrives: control frames are not data (5.5.1).
    std::error_code ping(std::string_view payload = {}) {
        return send_control(opcode::ping, payload);
    }
    // An unsolicited pong is a unidirectional heartbeat (RFC 6455 5.5.3).
    std::error_code pong(std::string_view payload = {}) {
        return send_control(opcode::pong, payload);
    }

    // Starts the closing handshake (RFC 6455 7.1.2). Code 1005 sends a close with no code.
    std::error_code close(std::uint16_t code = static_cast<std::uint16_t>(close_code::normal),
                          std::string_view reason = {}) {
        if (state_ != session_state::open) return error::closed;
        std::string payload;
        if (auto ec = make_close_payload(code, reason, payload)) return ec;
        queue_control(opcode::close, payload);
        state_ = session_state::closing;
        sent_close_code_ = code;
        initiator_ = close_initiator::local;
        return {};
    }
    std::error_code close(close_code code, std::string_view reason = {}) {
        return close(static_cast<std::uint16_t>(code), reason);
    }

    // ---- output --------------------------------------------------------------------------

    // Bytes to send to the peer, in order: queued frames, automatic pongs and close replies.
    std::string_view pending_output() const noexcept {
        return std::string_view(output_).substr(output_sent_);
    }
    bool has_pending_output() const noexcept { return output_sent_ < output_.size(); }

    // Marks `n` bytes of pending_output() as sent.
    void consume_output(std::size_t n) noexcept {
        output_sent_ += n < output_.size() - output_sent_ ? n : output_.size() - output_sent_;
        if (output_sent_ == output_.size()) {
            if (output_.capacity() > keep_buffer_capacity)
                std::string().swap(output_);
            else
                output_.clear();
            output_sent_ = 0;
        }
    }

private:
    enum class rx_state { header, payload };
    static constexpr std::size_t keep_buffer_capacity = 1024;

    bool input_finished() const noexcept {
        return state_ == session_state::failed || state_ == session_state::closed;
    }

    // The checks and bookkeeping of sending one data frame.
    std::error_code begin_send(opcode op, std::string_view payload, bool fin) {
        if (op != opcode::text && op != opcode::binary && op != opcode::continuation)
            return error::bad_opcode; // control frames have ping(), pong() and close()
        if (state_ != session_state::open) return error::closed;
        if (op == opcode::continuation) {
            if (!sending_message_) return error::no_message_in_progress;
        } else {
            if (sending_message_) return error::message_in_progress;
            sending_text_ = op == opcode::text;
            send_utf8_.reset();
        }
        if (sending_text_) {
            utf8_validator check = send_utf8_;
            if (!check.feed(payload.data(), payload.size()) || (fin && !check.complete()))
                return error::invalid_utf8;
            send_utf8_ = check;
        }
        sending_message_ = !fin;
        return {};
    }

    // permessage-deflate, when negotiated: each direction has its own window and context
    // takeover (RFC 7692 7.1), the server's being the "server_*" parameters.
    void start_deflate() {
#ifdef DUPLEX_ENABLE_DEFLATE
        if (!options_.deflate) return;
        const deflate_params& p = *options_.deflate;
        const bool server = role_ == role::server;
        deflater_ = std::make_unique<message_deflater>(
            server ? p.server_max_window_bits : p.client_max_window_bits,
            server ? p.server_no_context_takeover : p.client_no_context_takeover,
            options_.compression.level, options_.compression.mem_level);
        inflater_ = std::make_unique<message_inflater>(
            server ? p.client_max_window_bits : p.server_max_window_bits,
            server ? p.client_no_context_takeover : p.server_no_context_takeover);
        options_.reserved_bits.rsv1 = true; // RFC 7692 6: the extension claims RSV1
        deflate_on_ = true;
#endif
    }

    // Parses a frame header, possibly across calls. Returns false when it needs more bytes or
    // failed (then `ev` is the error event).
    bool read_header(char* data, std::size_t size, std::size_t& used, event& ev) {
        frame_header h;
        const auto* in = reinterpret_cast<const unsigned char*>(data) + used;
        const std::size_t available = size - used;
        if (header_stash_size_ == 0) {
            const auto r = decode_frame_header(in, available, h, options_.reserved_bits);
            if (r.status == progress::failed) return fail(r.error, ev);
            if (r.status == progress::need_more) {
                if (available != 0) std::memcpy(header_stash_, in, available); // < 14 bytes
                header_stash_size_ = available;
                used = size;
                return false;
            }
            used += r.size;
        } else {
            // Top up the stash only to the size the decoder asks for, so no payload byte is
            // taken into it.
            std::size_t taken = 0;
            for (;;) {
                const auto r = decode_frame_header(header_stash_, header_stash_size_, h,
                                                   options_.reserved_bits);
                if (r.status == progress::failed) return fail(r.error, ev);
                if (r.status == progress::done) break;
                const std::size_t want = r.size - header_stash_size_;
                const std::size_t take = want < available - taken ? want : available - taken;
                if (take != 0) std::memcpy(header_stash_ + header_stash_size_, in + taken, take);
                header_stash_size_ += take;
                taken += take;
                if (take < want) {
                    used = size;
                    return false;
                }
            }
            used += taken;
            header_stash_size_ = 0;
        }
        return start_frame(h, ev);
    }

    // Applies the rules that need the role and the connection's state (RFC 6455 5.1, 5.4,
    // 10.4) and the configured limits, all before any payload byte is read.
    bool start_frame(const frame_header& h, event& ev) {
        // An extension may claim RSV bits for data frames only (RFC 7692 6.1 for RSV1).
        if (is_control(h.op) && (h.rsv1 || h.rsv2 || h.rsv3)) return fail(error::reserved_bits, ev);
        if (role_ == role::server && !h.masked) return fail(error::mask_required, ev);
        if (role_ == role::client && h.masked) return fail(error::unexpected_mask, ev);
        frame_ = h;
        payload_left_ = h.payload_size;
        mask_offset_ = 0;
        control_.clear();
        if (!is_control(h.op)) {
            if (h.op == opcode::continuation) {
                if (!receiving_message_) return fail(error::unexpected_continuation, ev);
                // RFC 7692 6.1: only a message's first frame may say it is compressed.
                if (h.rsv1 && deflate_on_) return fail(error::reserved_bits, ev);
                if (++fragments_ > options_.max_fragments ||
                    options_.fragment_overhead >
                        wire_limit(options_.max_message_size) - message_size_)
                    return fail(error::too_many_fragments, ev);
                message_size_ += options_.fragment_overhead;
            } else {
                if (receiving_message_) return fail(error::expected_continuation, ev);
                receiving_message_ = true;
                message_op_ = h.op;
                fragments_ = 1;
                message_size_ = 0;
                receive_utf8_.reset();
                message_compressed_ = h.rsv1 && deflate_on_;
                inflated_size_ = 0;
            }
            // Written as subtractions so that a peer-chosen 63-bit length cannot overflow.
            if (h.payload_size > wire_limit(options_.max_frame_size))
                return fail(error::frame_too_big, ev);
            if (h.payload_size > wire_limit(options_.max_message_size) - message_size_)
                return fail(error::message_too_big, ev);
            message_size_ += static_cast<std::size_t>(h.payload_size);
            if (options_.deliver_partial_messages && h.op != opcode::continuation) {
                ev.type = event_type::message_start;
                ev.op = message_op_;
            }
        }
        rx_ = rx_state::payload;
        return true;
    }

    // What a limit allows on the wire. A compressed message's limits are on what it inflates
    // to (checked as it inflates); its wire bytes may pass them by what DEFLATE adds to data
    // that does not compress (above zlib's deflateBound() for any settings), so that a message
    // at the limit is not refused for its compressed form, while the wire stays bounded.
    std::size_t wire_limit(std::size_t limit) const noexcept {
        if (!message_compressed_) return limit;
        const std::size_t extra = limit / 8 + limit / 64 + 64;
        return limit > static_cast<std::size_t>(-1) - extra ? static_cast<std::size_t>(-1)
                                                            : limit + extra;
    }

    void read_payload(char* data, std::size_t size, std::size_t& used, event& ev) {
        const std::size_t available = size - used;
        const std::size_t take =
            payload_left_ < available ? static_cast<std::size_t>(payload_left_) : available;
        char* piece = data + used;
        const bool whole_frame_here = payload_left_ == frame_.payload_size && take == payload_left_;
        if (frame_.masked) mask_offset_ = apply_mask(piece, take, frame_.mask, mask_offset_);
        used += take;
        payload_left_ -= take;
        const bool frame_done = payload_left_ == 0;
        if (frame_done) rx_ = rx_state::header;

        if (is_control(frame_.op)) {
            std::string_view payload(piece, take);
            if (!(frame_done && whole_frame_here)) {
                // A control frame split across reads: at most 125 bytes to keep.
                control_.append(piece, take);
                if (!frame_done) return;
                payload = control_;
            }
            on_control(payload, ev);
            return;
        }

        const bool message_done = frame_done && frame_.fin;
        if (message_compressed_) {
            inflate_payload(piece, take, message_done, ev);
            return;
        }
        // Fail fast: at the first invalid byte, not when the frame or message ends.
        if (message_op_ == opcode::text &&
            (!receive_utf8_.feed(piece, take) || (message_done && !receive_utf8_.complete()))) {
            fail(error::invalid_utf8, ev);
            return;
        }
        if (message_done) receiving_message_ = false;

        if (options_.deliver_partial_messages) {
            if (take == 0 && !message_done) return;
            ev.type = message_done ? event_type::message_end : event_type::message_data;
            ev.op = message_op_;
            ev.data = std::string_view(piece, take);
            return;
        }
        if (message_done && message_.empty() && whole_frame_here) {
            // The common case: the whole message is one frame in one read. No copy.
            ev.type = event_type::message;
            ev.op = message_op_;
            ev.data = std::string_view(piece, take);
            return;
        }
        message_.append(piece, take);
        if (message_done) {
            ev.type = event_type::message;
            ev.op = message_op_;
            ev.data = message_;
            release_message_ = true;
        }
    }

    // A piece of a compressed message's payload (RFC 7692 7.2.2): inflated into the message
    // buffer, or into a piece of its own for partial delivery. The inflated size is what
    // max_message_size bounds, checked as zlib produces it; UTF-8 is checked on the inflated
    // bytes as they come.
    void inflate_payload(const char* piece, std::size_t take, bool message_done, event& ev) {
#ifdef DUPLEX_ENABLE_DEFLATE
        const bool partial = options_.deliver_partial_messages;
        std::string& out = partial ? inflated_ : message_;
        if (partial) out.clear();
        const std::size_t before = out.size();
        const std::size_t budget = options_.max_message_size - inflated_size_;
        const auto ec = inflater_->inflate(piece, take, message_done, out, before + budget);
        // What inflated before a failure is checked first, as it would have been had the input
        // come in smaller reads: the same bytes give the same error however they are cut.
        const std::size_t produced = std::min(out.size() - before, budget);
        inflated_size_ += produced;
        if (message_op_ == opcode::text && (!receive_utf8_.feed(out.data() + before, produced) ||
                                            (!ec && message_done && !receive_utf8_.complete()))) {
            fail(error::invalid_utf8, ev);
            return;
        }
        if (ec) {
            fail(ec, ev);
            return;
        }
        if (message_done) {
            receiving_message_ = false;
            message_compressed_ = false;
            release_message_ = true;
        }
        if (partial && produced == 0 && !message_done) return;
        if (!partial && !message_done) return;
        ev.type = !partial       ? event_type::message
                  : message_done ? event_type::message_end
                                 : event_type::message_data;
        ev.op = message_op_;
        ev.data = out;
#else
        (void)piece, (void)take, (void)message_done;
        fail(error::reserved_bits, ev); // unreachable: RSV1 is refused without zlib
#endif
    }

    void on_control(std::string_view payload, event& ev) {
        switch (frame_.op) {
        case opcode::ping:
            // 5.5.2: answer "unless it already received a Close frame"; having sent one
            // ourselves is no exception (5.5.1 forbids only data frames after it).
            if (options_.auto_pong && can_send_control())
                queue_control(opcode::pong, payload); // 5.5.3: the same application data
            ev.type = event_type::ping;
            ev.data = payload;
            return;
        case opcode::pong:
            ev.type = event_type::pong;
            ev.data = payload;
            return;
        default: break;
        }
        close_reason peer;
        if (auto ec = parse_close_payload(payload, peer)) {
            fail(ec, ev);
            return;
        }
        close_received_ = true;
        peer_close_code_ = peer.code;
        peer_close_reason_.assign(peer.reason.data(), peer.reason.size());
        if (state_ == session_state::open) {
            // 5.5.1: reply with a close, echoing the status code received.
            std::string reply;
            if (peer.code != static_cast<std::uint16_t>(close_code::no_status))
                (void)make_close_payload(peer.code, {}, reply);
            queue_control(opcode::close, reply);
            sent_close_code_ = peer.code;
            initiator_ = close_initiator::peer;
        }
        state_ = session_state::closed;
        ev.type = event_type::close;
        ev.code = peer.code;
        ev.data = peer_close_reason_;
    }

    // 7.1.7: fail the connection. A close frame with the RFC's code goes out unless one
    // already did; the reason is the error's message, which is ASCII and short. Returns false
    // so that parsing steps can `return fail(...)`.
    bool fail(std::error_code ec, event& ev) {
        const auto code = static_cast<std::uint16_t>(close_code_for(ec));
        if (state_ == session_state::open) {
            std::string reason = ec.message();
            if (reason.size() > max_control_payload - 2) reason.resize(max_control_payload - 2);
            std::string payload;
            if (make_close_payload(code, reason, payload))
                (void)make_close_payload(code, {}, payload);
            queue_control(opcode::close, payload);
            sent_close_code_ = code;
            initiator_ = close_initiator::local;
        }
        state_ = session_state::failed;
        error_ = ec;
        ev = event{};
        ev.type = event_type::error;
        ev.code = code;
        ev.error = ec;
        return false;
    }

    // Control frames may still go out after our close and before the peer's (5.5.1).
    bool can_send_control() const noexcept {
        return state_ == session_state::open || state_ == session_state::closing;
    }

    std::error_code send_control(opcode op, std::string_view payload) {
        if (!can_send_control()) return error::closed;
        if (payload.size() > max_control_payload) return error::control_payload_too_big;
        queue_control(op, payload);
        return {};
    }

    void queue_control(opcode op, std::string_view payload) {
        frame_prefix prefix;
        make_prefix(op, true, payload.size(), prefix);
        append_frame(prefix, payload);
    }

    void make_prefix(opcode op, bool fin, std::size_t size, frame_prefix& prefix,
                     bool compressed = false) {
        frame_header h;
        h.fin = fin;
        h.rsv1 = compressed; // RFC 7692 6: "Per-Message Compressed", on the first frame only
        h.op = op;
        h.payload_size = size;
        // 5.3: a client masks every frame with a fresh key; a server never masks.
        h.masked = role_ == role::client;
        if (h.masked) h.mask = random_->next_u32();
        prefix.size = encode_frame_header(h, prefix.bytes);
        prefix.masked = h.masked;
        prefix.key = h.mask;
    }

    void append_frame(const frame_prefix& prefix, std::string_view payload) {
        output_.append(prefix.view());
        const std::size_t at = output_.size();
        output_.append(payload);
        if (prefix.masked) apply_mask(&output_[at], payload.size(), prefix.key);
    }

    role role_;
    session_options options_;
    std::unique_ptr<random_source> random_; // clients only: servers never mask
    session_state state_ = session_state::open;
    std::error_code error_;

    // Receiving.
    rx_state rx_ = rx_state::header;
    unsigned char header_stash_[max_frame_header_size];
    std::size_t header_stash_size_ = 0;
    frame_header frame_;
    std::uint64_t payload_left_ = 0;
    std::size_t mask_offset_ = 0;
    bool receiving_message_ = false;
    bool release_message_ = false;
    opcode message_op_ = opcode::text;
    std::size_t fragments_ = 0;
    std::size_t message_size_ = 0;
    utf8_validator receive_utf8_;
    std::string message_;             // reassembly of a message that spans frames or reads
    bool message_compressed_ = false; // the message being received has RSV1 (RFC 7692 6)
    std::size_t inflated_size_ = 0;   // its inflated bytes so far, bounded by max_message_size
    std::string inflated_;            // partial delivery: the inflated piece being delivered
    std::string control_;             // a control frame split across reads (at most 125 bytes)
    bool close_received_ = false;
    std::uint16_t peer_close_code_ = static_cast<std::uint16_t>(close_code::abnormal);
    std::string peer_close_reason_;
    std::uint16_t sent_close_code_ = static_cast<std::uint16_t>(close_code::abnormal);
    close_initiator initiator_ = close_initiator::none;

    // Sending.
    bool sending_message_ = false;
    bool sending_text_ = false;
    utf8_validator send_utf8_;
    std::string output_;
    std::size_t output_sent_ = 0;

    // permessage-deflate (both directions), when negotiated and built with zlib.
    bool deflate_on_ = false;
#ifdef DUPLEX_ENABLE_DEFLATE
    std::unique_ptr<message_deflater> deflater_;
    std::unique_ptr<message_inflater> inflater_;
    std::string compressed_; // the last message prepare_message() compressed
#endif
};

} // namespace duplex::protocol
