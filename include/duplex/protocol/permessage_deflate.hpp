// duplex/protocol/permessage_deflate.hpp — negotiating permessage-deflate (RFC 7692).
// SPDX-License-Identifier: BSL-1.0
//
// The handshake half of the compression extension, in both roles: a client builds its offer
// and checks the server's answer; a server reads the offers (several, in order of the
// client's preference) and answers the first it can accept. Only the agreed parameters come
// out of it (deflate_params); the compressing itself is in deflate_codec.hpp and needs zlib,
// this header does not. A malformed or duplicated parameter makes a server decline that
// offer (RFC 7692 section 5) and a client fail the connection (section 5, and 5.1 for
// responses it did not allow).
#pragma once

#include "duplex/error.hpp"
#include "duplex/protocol/extensions.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace duplex::protocol {

// Whether this build can compress (zlib, DUPLEX_ENABLE_DEFLATE). Without it, neither role
// offers or accepts the extension, whatever the options say.
#ifdef DUPLEX_ENABLE_DEFLATE
inline constexpr bool deflate_supported = true;
#else
inline constexpr bool deflate_supported = false;
#endif

inline constexpr std::string_view permessage_deflate_name = "permessage-deflate";

// What both endpoints agreed on (RFC 7692 section 7.1), the same on both sides. "server_*"
// is about the server's compressor (the client's decompressor) and "client_*" the reverse.
struct deflate_params {
    bool server_no_context_takeover = false; // 7.1.1.1: the server resets after each message
    bool client_no_context_takeover = false; // 7.1.1.2: the client resets after each message
    int server_max_window_bits = 15;         // 7.1.2.1: the server's LZ77 window, 8-15
    int client_max_window_bits = 15;         // 7.1.2.2: the client's LZ77 window, 8-15
    bool operator==(const deflate_params& o) const noexcept {
        return server_no_context_takeover == o.server_no_context_takeover &&
               client_no_context_takeover == o.client_no_context_takeover &&
               server_max_window_bits == o.server_max_window_bits &&
               client_max_window_bits == o.client_max_window_bits;
    }
    bool operator!=(const deflate_params& o) const noexcept { return !(*this == o); }
};

// Local choices about compressing that are not negotiated. zlib's memory per connection, while
// a message is being compressed or inflated (and between messages with context takeover):
// the compressor about 2^(window_bits + 2) + 2^(mem_level + 9) bytes (256 KiB with 15 and 8),
// the decompressor about 2^window_bits bytes (32 KiB with 15), each plus ~7 KiB.
struct deflate_tuning {
    int level = 6;                // zlib level: 1 fastest ... 9 smallest; 0 stores (zlib's default)
    int mem_level = 8;            // zlib memLevel 1-9: compressor memory and speed (zlib's default)
    std::size_t threshold = 1024; // messages shorter than this are sent uncompressed
};

// The settings that alone decide a compressed message's bytes when the compressor starts
// afresh for every message (no context takeover): two compressors with equal settings turn a
// message into the same bytes. A broadcast (shared_message) compresses once per distinct
// settings for all the connections that have them. Values are clamped as the compressor
// clamps them, so settings that compress alike compare equal.
struct stateless_deflate {
    int window_bits = 15; // 8-15
    int level = 6;        // 0-9
    int mem_level = 8;    // 1-9
    bool operator==(const stateless_deflate& o) const noexcept {
        return window_bits == o.window_bits && level == o.level && mem_level == o.mem_level;
    }
    bool operator!=(const stateless_deflate& o) const noexcept { return !(*this == o); }
};

// A server's preferences. Off by default at this layer; the endpoints choose their own
// default. Window bits outside 8-15 are clamped into it.
struct deflate_server_options {
    bool enabled = false;
    // Reset our compressor after every message: costs ratio, but no compressor memory is held
    // between messages, and a broadcast is compressed once for all such connections instead
    // of once per connection. Sent in every response; implied when the client asks for it.
    bool server_no_context_takeover = false;
    // Ask the client to reset after every message, so no decompressor memory is held between
    // its messages. Sent in every response (RFC 7692 7.1.1.2 lets a server always send it).
    bool client_no_context_takeover = false;
    // Our compressor's window; below 15 it is sent even when the client did not ask (7.1.2.1).
    int server_max_window_bits = 15;
    // The client's window, if the client allowed us to choose one (it offered
    // client_max_window_bits); bounds our decompressor's memory to 2^bits bytes.
    int client_max_window_bits = 15;
};

// A client's offer. Off by default at this layer; the endpoints choose their own default.
struct deflate_client_options {
    bool enabled = false;
    // Ask the server to reset after every message (7.1.1.1); the server must agree.
    bool server_no_context_takeover = false;
    // Tell the server we reset after every message (7.1.1.2, a promise we then keep).
    bool client_no_context_takeover = false;
    // Below 15: ask the server for at most this window (7.1.2.1).
    int server_max_window_bits = 15;
    // client_max_window_bits is always offered, so a server may choose our window (browsers
    // do the same); below 15 it carries this value as the largest we will use (7.1.2.2).
    int client_max_window_bits = 15;
};

namespace detail {

inline int clamp_window_bits(int bits) noexcept { return bits < 8 ? 8 : bits > 15 ? 15 : bits; }

// 7.1.2: "a decimal integer value without leading zeroes between 8 to 15, inclusive".
inline std::optional<int> parse_window_bits(std::string_view v) noexcept {
    if (v.size() == 1 && v[0] >= '8' && v[0] <= '9') return v[0] - '0';
    if (v.size() == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5') return 10 + (v[1] - '0');
    return std::nullopt;
}

// The parameters of one permessage-deflate element, as written; nullopt for a window means
// the parameter was absent, and `client_window_no_value` that it came without a value.
struct deflate_element {
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    std::optional<int> server_max_window_bits;
    bool client_max_window_bits_present = false;
    std::optional<int> client_max_window_bits;
};

// Section 5 and 7: an element is malformed when a parameter is unknown, duplicated, or
// carries an invalid value; client_max_window_bits may come without a value only in an offer
// (7.1.2.2), every other parameter's value rule is the same in both directions.
inline bool parse_deflate_element(const extension& e, bool is_offer, deflate_element& out) {
    out = deflate_element{};
    bool seen_server_window = false;
    for (const auto& p : e.params) {
        if (p.name == "server_no_context_takeover" || p.name == "client_no_context_takeover") {
            bool& flag =
                p.name[0] == 's' ? out.server_no_context_takeover : out.client_no_context_takeover;
            if (flag || p.value) return false;
            flag = true;
        } else if (p.name == "server_max_window_bits") {
            if (seen_server_window || !p.value) return false;
            seen_server_window = true;
            out.server_max_window_bits = parse_window_bits(*p.value);
            if (!out.server_max_window_bits) return false;
        } else if (p.name == "client_max_window_bits") {
            if (out.client_max_window_bits_present) return false;
            out.client_max_window_bits_present = true;
            if (!p.value) {
                if (!is_offer) return false;
                continue;
            }
            out.client_max_window_bits = parse_window_bits(*p.value);
            if (!out.client_max_window_bits) return false;
        } else {
            return false;
        }
    }
    return true;
}

} // namespace detail

// The agreed parameters written as a response element (or, with the client's own choices, an
// offer): only what differs from the defaults, in the RFC's order.
inline extension format_deflate_params(const deflate_params& p, bool server_window_always,
                                       bool client_window_always) {
    extension e{std::string(permessage_deflate_name), {}};
    if (p.server_no_context_takeover) e.params.push_back({"server_no_context_takeover", {}});
    if (p.client_no_context_takeover) e.params.push_back({"client_no_context_takeover", {}});
    if (server_window_always || p.server_max_window_bits < 15)
        e.params.push_back({"server_max_window_bits", std::to_string(p.server_max_window_bits)});
    if (client_window_always || p.client_max_window_bits < 15)
        e.params.push_back({"client_max_window_bits", std::to_string(p.client_max_window_bits)});
    return e;
}

// --- Server side -------------------------------------------------------------------------

struct deflate_agreement {
    deflate_params params;
    extension response; // the element to send in Sec-WebSocket-Extensions
};

// RFC 7692 section 5: answers the first permessage-deflate offer in `offers` (the client's
// Sec-WebSocket-Extensions, in order) that is well formed; nullopt declines them all (then
// the response names no permessage-deflate). Offers of other extensions are skipped.
inline std::optional<deflate_agreement> negotiate_deflate(const std::vector<extension>& offers,
                                                          const deflate_server_options& options) {
    if (!options.enabled || !deflate_supported) return std::nullopt;
    for (const auto& offer : offers) {
        if (offer.name != permessage_deflate_name) continue;
        detail::deflate_element e;
        if (!detail::parse_deflate_element(offer, true, e)) continue; // 5: decline this offer
        deflate_agreement a;
        deflate_params& p = a.params;
        // 7.1.1.1: an offer with server_no_context_takeover is accepted only by agreeing.
        p.server_no_context_takeover =
            e.server_no_context_takeover || options.server_no_context_takeover;
        // 7.1.1.2: the client's hint is a promise; answering it costs nothing and lets our
        // decompressor forget between messages.
        p.client_no_context_takeover =
            e.client_no_context_takeover || options.client_no_context_takeover;
        // 7.1.2.1: the same or a smaller value than offered, and always answered when offered.
        p.server_max_window_bits = detail::clamp_window_bits(options.server_max_window_bits);
        if (e.server_max_window_bits && *e.server_max_window_bits < p.server_max_window_bits)
            p.server_max_window_bits = *e.server_max_window_bits;
        // 7.1.2.2: without client_max_window_bits in the offer the response must not name it,
        // and the client may use the largest window.
        p.client_max_window_bits = 15;
        if (e.client_max_window_bits_present) {
            p.client_max_window_bits = detail::clamp_window_bits(options.client_max_window_bits);
            if (e.client_max_window_bits && *e.client_max_window_bits < p.client_max_window_bits)
                p.client_max_window_bits = *e.client_max_window_bits;
        }
        a.response = format_deflate_params(p, e.server_max_window_bits.has_value(),
                                           e.client_max_window_bits.has_value());
        return a;
    }
    return std::nullopt;
}

// --- Client side -------------------------------------------------------------------------

// The offer of a client that was told nothing: permessage-deflate with client_max_window_bits
// where the build can compress, as browsers, Node ws and Python websockets offer it, and
// nothing in a plain build. The endpoints' client_options start from it.
inline deflate_client_options default_deflate_offer() noexcept {
    deflate_client_options offer;
    offer.enabled = deflate_supported;
    return offer;
}

// The offer element a client sends (RFC 7692 section 5 and 7.1).
inline extension make_deflate_offer(const deflate_client_options& o) {
    extension e{std::string(permessage_deflate_name), {}};
    if (o.server_no_context_takeover) e.params.push_back({"server_no_context_takeover", {}});
    if (o.client_no_context_takeover) e.params.push_back({"client_no_context_takeover", {}});
    const int server_bits = detail::clamp_window_bits(o.server_max_window_bits);
    if (server_bits < 15)
        e.params.push_back({"server_max_window_bits", std::to_string(server_bits)});
    const int client_bits = detail::clamp_window_bits(o.client_max_window_bits);
    if (client_bits < 15)
        e.params.push_back({"client_max_window_bits", std::to_string(client_bits)});
    else
        e.params.push_back({"client_max_window_bits", {}});
    return e;
}

// Checks the server's permessage-deflate response element against what `o` offered and, when
// it is one the offer allowed, gives the agreed parameters. Fails (bad_extension_params, and
// the client must fail the connection, RFC 7692 section 5) on a malformed or duplicated
// parameter, a window larger than offered or one we did not let the server choose, and a
// missing server_no_context_takeover that we asked for.
inline std::error_code accept_deflate_response(const extension& response,
                                               const deflate_client_options& o,
                                               deflate_params& out) {
    detail::deflate_element e;
    if (response.name != permessage_deflate_name ||
        !detail::parse_deflate_element(response, false, e))
        return duplex::error::bad_extension_params;
    deflate_params p;
    // 7.1.1.1: a server accepting our request must include it; it may include it unasked.
    if (o.server_no_context_takeover && !e.server_no_context_takeover)
        return duplex::error::bad_extension_params;
    p.server_no_context_takeover = e.server_no_context_takeover;
    // 7.1.1.2: our own hint is a promise to keep, whatever the answer.
    p.client_no_context_takeover = e.client_no_context_takeover || o.client_no_context_takeover;
    // 7.1.2.1: the same or a smaller value than offered; any valid value when not offered.
    const int server_bits = detail::clamp_window_bits(o.server_max_window_bits);
    p.server_max_window_bits = e.server_max_window_bits.value_or(server_bits);
    if (p.server_max_window_bits > server_bits) return duplex::error::bad_extension_params;
    // 7.1.2.2: we always offer client_max_window_bits; a value above ours is not allowed.
    const int client_bits = detail::clamp_window_bits(o.client_max_window_bits);
    p.client_max_window_bits = e.client_max_window_bits.value_or(client_bits);
    if (p.client_max_window_bits > client_bits) return duplex::error::bad_extension_params;
    out = p;
    return {};
}

} // namespace duplex::protocol
