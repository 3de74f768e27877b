// duplex/shared_message.hpp — one message encoded once, sent to many connections.
// SPDX-License-Identifier: BSL-1.0
//
// A broadcast to N connections should not copy, frame or validate the payload N times. A
// shared_message holds the complete server frame (header and unmasked payload) in one immutable
// buffer; every connection that sends it queues a reference to that buffer, and the buffer is
// freed when the last write that needed it completes. A text payload is checked as UTF-8 once,
// here.
//
//   auto update = duplex::shared_message::text(R"({"price":101.5})");
//   for (auto& c : subscribers) c->send(update); // no copy per subscriber
//
// Server connections write the shared bytes as they are. A client must mask every frame with
// its own key (RFC 6455 5.3), so a client connection copies the payload once, as send() does.
//
// With permessage-deflate (DUPLEX_ENABLE_DEFLATE), a server connection that agreed
// server_no_context_takeover sends the message compressed as every such connection with the
// same settings does: the first one to send it compresses it, and the others share those bytes
// (compressed_frame). A connection with context takeover compresses the message in its own
// context, and one without deflate sends the uncompressed frame.
#pragma once

#include "error.hpp"
#include "protocol/frame.hpp"
#include "protocol/utf8.hpp"

#ifdef DUPLEX_ENABLE_DEFLATE
#include "protocol/deflate_codec.hpp"
#include "protocol/permessage_deflate.hpp"

#include <array>
#include <mutex>
#endif

#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <system_error>

namespace duplex {

class shared_message {
public:
    // An empty message: operator bool is false, and a connection refuses to send it.
    shared_message() = default;

    // Encodes `payload` as one unmasked, final frame of `type` (text or binary). Sets `ec` and
    // returns an empty message for a text payload that is not UTF-8 or another opcode.
    static shared_message make(protocol::opcode type, std::string_view payload,
                               std::error_code& ec) {
        ec = {};
        if (type != protocol::opcode::text && type != protocol::opcode::binary) {
            ec = error::bad_opcode;
            return {};
        }
        if (type == protocol::opcode::text && !protocol::is_valid_utf8(payload)) {
            ec = error::invalid_utf8;
            return {};
        }
        protocol::frame_header header;
        header.fin = true;
        header.op = type;
        header.payload_size = payload.size();
        unsigned char prefix[protocol::max_frame_header_size];
        const std::size_t header_size = protocol::encode_frame_header(header, prefix);
        auto encoded = std::make_shared<frame>();
        encoded->type = type;
        encoded->header_size = header_size;
        encoded->bytes.reserve(header_size + payload.size());
        encoded->bytes.append(reinterpret_cast<const char*>(prefix), header_size);
        encoded->bytes.append(payload);
        shared_message message;
        message.frame_ = std::move(encoded);
        return message;
    }

    // Empty when `payload` is not UTF-8.
    static shared_message text(std::string_view payload) {
        std::error_code ignored;
        return make(protocol::opcode::text, payload, ignored);
    }
    static shared_message binary(std::string_view payload) {
        std::error_code ignored;
        return make(protocol::opcode::binary, payload, ignored);
    }

    explicit operator bool() const noexcept { return frame_ != nullptr; }
    protocol::opcode type() const noexcept {
        return frame_ ? frame_->type : protocol::opcode::binary;
    }
    bool is_text() const noexcept { return type() == protocol::opcode::text; }
    std::string_view payload() const noexcept {
        return frame_ ? std::string_view(frame_->bytes).substr(frame_->header_size)
                      : std::string_view{};
    }
    // The whole frame as a server writes it: header, then payload.
    std::string_view frame_bytes() const noexcept {
        return frame_ ? std::string_view(frame_->bytes) : std::string_view{};
    }
    // Connections (and history) holding this message; for tests and diagnostics.
    long use_count() const noexcept { return frame_.use_count(); }

#ifdef DUPLEX_ENABLE_DEFLATE
    // The whole frame as a server compressor without context takeover with `settings` makes
    // it (RSV1 set, the trailer removed; RFC 7692 7.2.1). Compressed by the first caller with
    // these settings, on whichever thread, while later callers wait for it and then share the
    // bytes; they live as long as the message. Empty (send frame_bytes() then, which the peer
    // takes uncompressed) for an empty message, when zlib failed, or when
    // max_compressed_forms other settings were asked for already.
    std::string_view compressed_frame(const protocol::stateless_deflate& settings) const {
        if (!frame_ || frame_->bytes.size() == frame_->header_size) return {};
        std::lock_guard<std::mutex> lock(frame_->deflate_lock);
        for (auto& form : frame_->forms) {
            if (form.made && form.settings == settings) return form.bytes;
            if (form.made) continue;
            form.made = true;
            form.settings = settings;
            ++frame_->compressions;
            compress_into(settings, form.bytes);
            return form.bytes;
        }
        return {};
    }
    // How many times this message ran the compressor (once per distinct settings); for tests
    // and diagnostics.
    std::size_t compressions() const {
        if (!frame_) return 0;
        std::lock_guard<std::mutex> lock(frame_->deflate_lock);
        return frame_->compressions;
    }
    // One server usually has one set of settings; a few more come from clients that ask for
    // smaller windows.
    static constexpr std::size_t max_compressed_forms = 4;
#endif

private:
#ifdef DUPLEX_ENABLE_DEFLATE
    struct compressed_form {
        bool made = false;
        protocol::stateless_deflate settings;
        std::string bytes; // header and compressed payload; empty if zlib failed
    };
#endif
    struct frame {
        protocol::opcode type = protocol::opcode::binary;
        std::size_t header_size = 0;
        std::string bytes;
#ifdef DUPLEX_ENABLE_DEFLATE
        // Sent from several io threads at once (rooms): filled under the lock, never changed
        // after, so the bytes handed out stay valid and unmoved.
        mutable std::mutex deflate_lock;
        mutable std::array<compressed_form, max_compressed_forms> forms;
        mutable std::size_t compressions = 0;
#endif
    };

#ifdef DUPLEX_ENABLE_DEFLATE
    void compress_into(const protocol::stateless_deflate& settings, std::string& out) const {
        protocol::message_deflater deflater(settings.window_bits, true, settings.level,
                                            settings.mem_level);
        std::string body;
        if (!deflater.compress(payload(), body)) return;
        protocol::frame_header header;
        header.fin = true;
        header.rsv1 = true; // RFC 7692 6: "Per-Message Compressed"
        header.op = frame_->type;
        header.payload_size = body.size();
        unsigned char prefix[protocol::max_frame_header_size];
        const std::size_t header_size = protocol::encode_frame_header(header, prefix);
        out.reserve(header_size + body.size());
        out.append(reinterpret_cast<const char*>(prefix), header_size);
        out.append(body);
    }
#endif

    std::shared_ptr<const frame> frame_;
};

} // namespace duplex
