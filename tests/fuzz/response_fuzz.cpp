// libFuzzer target: the client side of the opening handshake (client_handshake in
// handshake.hpp): the request it builds from options and its checks of the server's response.
// On every input it checks:
//   * options are refused exactly when a reference check written here says they cannot be
//     written validly, with the same error, and then no request is produced;
//   * an accepted request is one our server accepts, carrying the host, target, origin,
//     subprotocols and extensions asked for, and a key that is the base64 of the nonce;
//     the server's 101 to it satisfies a second client with the same options;
//   * the response is judged the same whether it comes whole, one byte at a time, or split,
//     and the bytes after its head are never consumed;
//   * a response is accepted exactly when RFC 6455 4.1 allows it, as read by a reference
//     check written here (101, exactly "Upgrade: websocket", the upgrade token, one
//     Sec-WebSocket-Accept equal to the RFC's own example answer for the fixed nonce, only
//     offered extensions and subprotocols), with the same error otherwise; the negotiated
//     subprotocol and extensions are what the response says.
//
// Input layout:
//   byte 0  bit 7: small limits, then bits 0-6: max_head_size = 64 + 32 * n
//   byte 1  seed of the pseudo-random split points
//   then    the options up to a NUL byte, separated by \x01: host, target, origin,
//           subprotocols (comma-separated), extensions, one extra header "name:value"
//           (missing ones keep their defaults; no NUL means default options)
//   then    the response bytes
#include "http_shared.hpp"

#include <duplex/protocol/handshake.hpp>
#include <duplex/protocol/http.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace duplex::protocol;
using fuzz::check;

namespace {

// RFC 6455 1.3 and 4.1: the example nonce "the sample nonce" and the answer to it, copied from
// the RFC rather than computed, so the client's SHA-1 and base64 are checked too.
constexpr std::array<std::uint8_t, 16> sample_nonce = {'t', 'h', 'e', ' ', 's', 'a', 'm', 'p',
                                                       'l', 'e', ' ', 'n', 'o', 'n', 'c', 'e'};
constexpr std::string_view sample_key = "dGhlIHNhbXBsZSBub25jZQ==";
constexpr std::string_view sample_accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

std::vector<std::string_view> split_on(std::string_view text, char separator) {
    std::vector<std::string_view> out;
    for (;;) {
        const std::size_t at = text.find(separator);
        out.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return out;
        text.remove_prefix(at + 1);
    }
}

client_options options_from(std::string_view block) {
    client_options o;
    o.host = "example.com";
    const auto parts = split_on(block, '\x01');
    if (parts.size() > 0) o.host = std::string(parts[0]);
    if (parts.size() > 1) o.target = std::string(parts[1]);
    if (parts.size() > 2) o.origin = std::string(parts[2]);
    if (parts.size() > 3 && !parts[3].empty())
        for (const auto p : split_on(parts[3], ',')) o.subprotocols.emplace_back(p);
    if (parts.size() > 4) o.extensions = std::string(parts[4]);
    if (parts.size() > 5 && !parts[5].empty()) {
        const auto name_value = split_on(parts[5], ':');
        o.extra_headers.emplace_back(
            std::string(name_value[0]),
            std::string(parts[5].substr(name_value[0].size() + (name_value.size() > 1 ? 1 : 0))));
    }
    return o;
}

bool visible_ascii(std::string_view s) {
    for (const char c : s)
        if (static_cast<unsigned char>(c) < 0x21 || static_cast<unsigned char>(c) > 0x7E)
            return false;
    return true;
}

bool field_value_text(std::string_view s) {
    for (const char c : s) {
        const auto u = static_cast<unsigned char>(c);
        if (u != '\t' && (u < 0x20 || u == 0x7F)) return false;
    }
    return true;
}

// What client_handshake documents it refuses, in its order.
std::error_code reference_options_check(const client_options& o) {
    using duplex::error;
    if (o.target.empty() || !visible_ascii(o.target)) return error::bad_request_line;
    if (o.host.empty() || !visible_ascii(o.host)) return error::missing_host;
    if (!o.origin.empty() && !field_value_text(o.origin)) return error::bad_header;
    for (const auto& p : o.subprotocols)
        if (!fuzz::is_token_text(p)) return error::bad_header;
    if (!o.extensions.empty()) {
        std::vector<extension> offer;
        if (parse_extensions(o.extensions, offer) || !field_value_text(o.extensions))
            return error::bad_extension_header;
    }
    for (const auto& [name, value] : o.extra_headers) {
        for (const std::string_view own :
             {"Host", "Upgrade", "Connection", "Origin", "Sec-WebSocket-Key",
              "Sec-WebSocket-Version", "Sec-WebSocket-Protocol", "Sec-WebSocket-Extensions",
              "Sec-WebSocket-Accept", "Content-Length", "Transfer-Encoding"})
            if (fuzz::same_ignoring_case(name, own)) return error::bad_header;
        if (!fuzz::is_token_text(name) || !field_value_text(value)) return error::bad_header;
    }
    return {};
}

std::vector<std::string> offered_extension_names(const client_options& o) {
    std::vector<extension> offer;
    (void)parse_extensions(o.extensions, offer);
    std::vector<std::string> names;
    for (const auto& e : offer) names.push_back(e.name);
    return names;
}

// RFC 6455 4.1, the client's checks of the server's response, in that order.
std::error_code reference_response_check(const http_head& h, const client_options& o) {
    using duplex::error;
    if (h.status() != 101) return error::bad_status;
    const auto upgrade = fuzz::list_elements(h, "Upgrade");
    if (upgrade.size() != 1 || !fuzz::same_ignoring_case(upgrade[0], "websocket"))
        return error::missing_upgrade;
    if (!fuzz::has_element(h, "Connection", "upgrade")) return error::missing_connection;
    if (fuzz::count_fields(h, "Sec-WebSocket-Accept") != 1 ||
        *fuzz::first_field(h, "Sec-WebSocket-Accept") != sample_accept)
        return error::bad_accept;
    std::vector<extension> accepted;
    for (const auto& f : h.fields())
        if (fuzz::same_ignoring_case(f.name, "Sec-WebSocket-Extensions") &&
            parse_extensions(f.value, accepted))
            return error::bad_extension_header;
    const auto offered = offered_extension_names(o);
    for (const auto& e : accepted)
        if (std::find(offered.begin(), offered.end(), e.name) == offered.end())
            return error::unexpected_extension;
    if (const auto protocol = fuzz::first_field(h, "Sec-WebSocket-Protocol")) {
        if (fuzz::count_fields(h, "Sec-WebSocket-Protocol") != 1 ||
            std::find(o.subprotocols.begin(), o.subprotocols.end(), *protocol) ==
                o.subprotocols.end())
            return error::unexpected_subprotocol;
    }
    return {};
}

// The request must be one our server takes, asking for what the options said.
void check_request(const client_handshake& client, const client_options& o) {
    check(client.key() == sample_key, "the key is not the base64 of the nonce");
    server_handshake server;
    const auto r = server.feed(client.request());
    check(r.status == progress::done && r.consumed == client.request().size(),
          "our server refuses our client's request");
    const upgrade_request& up = server.upgrade();
    // Field values are read without surrounding white space (RFC 7230 3.2.4).
    check(up.host == o.host && up.target == o.target &&
              up.origin == fuzz::trim_spaces_and_tabs(o.origin) && up.key == sample_key,
          "the request carries other values than asked");
    check(up.subprotocols.size() == o.subprotocols.size() &&
              std::equal(up.subprotocols.begin(), up.subprotocols.end(), o.subprotocols.begin()),
          "the request offers other subprotocols");
    const auto names = offered_extension_names(o);
    check(up.extensions.size() == names.size(), "the request offers other extensions");
    for (std::size_t i = 0; i < names.size(); ++i)
        check(up.extensions[i].name == names[i], "the request offers other extensions");
    for (const auto& [name, value] : o.extra_headers)
        check(server.request().field(name) == fuzz::trim_spaces_and_tabs(value),
              "an extra header was lost");

    // The server's answer, choosing the first subprotocol, satisfies a second client.
    accept_options accept;
    if (!o.subprotocols.empty()) accept.subprotocol = o.subprotocols.front();
    const std::string response = server.accept(accept);
    client_options roomy = o; // the input's limits are for the fuzzed response only
    roomy.limits = {};
    client_handshake again(roomy, sample_nonce);
    const auto answer = again.feed(response);
    check(answer.status == progress::done && answer.consumed == response.size() &&
              again.subprotocol() == accept.subprotocol,
          "our client refuses our server's 101");
}

struct outcome {
    progress status;
    std::size_t consumed;
    std::error_code error;
    std::string subprotocol;
    std::vector<extension> extensions;
};

outcome run(const client_options& o, std::string_view response,
            const std::vector<std::size_t>& cuts) {
    client_handshake client(o, sample_nonce);
    outcome out{progress::need_more, 0, {}, {}, {}};
    for (const auto piece : fuzz::pieces(response, cuts)) {
        const auto r = client.feed(piece);
        check(r.consumed <= piece.size() && r.status == client.status() &&
                  r.error == client.error(),
              "client_handshake::feed() broke its contract");
        out.consumed += r.consumed;
        if (r.status != progress::need_more) break;
        check(r.consumed == piece.size(), "need_more left bytes unread");
    }
    out.status = client.status();
    out.error = client.error();
    out.subprotocol = std::string(client.subprotocol());
    out.extensions = client.extensions();
    if (out.status != progress::need_more)
        check(client.feed("HTTP/1.1").consumed == 0, "a finished client took more input");
    return out;
}

bool same(const outcome& a, const outcome& b) {
    return a.status == b.status && a.consumed == b.consumed && a.error == b.error &&
           a.subprotocol == b.subprotocol && fuzz::same_extensions(a.extensions, b.extensions);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 2) return 0;
    const std::string_view rest(reinterpret_cast<const char*>(data + 2), size - 2);
    const std::size_t nul = rest.find('\0');
    client_options o =
        options_from(nul == std::string_view::npos ? std::string_view("") : rest.substr(0, nul));
    if ((data[0] & 0x80U) != 0) o.limits.max_head_size = 64U + (data[0] & 0x7FU) * 32U;
    const std::string_view response = nul == std::string_view::npos ? rest : rest.substr(nul + 1);

    const client_handshake client(o, sample_nonce);
    const std::error_code refused = reference_options_check(o);
    check(client.error() == refused, "options refused for another reason than documented");
    if (refused) {
        check(client.status() == progress::failed && client.request().empty(),
              "refused options still produced a request");
        return 0;
    }
    check(client.status() == progress::need_more, "a fresh client is not waiting");
    check_request(client, o);

    const outcome whole = run(o, response, {});
    check(same(whole, run(o, response, fuzz::every_cut(response.size()))),
          "the response is judged differently byte by byte");
    check(same(whole, run(o, response, fuzz::random_cuts(data[1], response.size()))),
          "the response is judged differently when split");

    const auto head = fuzz::parse_head(http_parser::kind::response, o.limits, response, {});
    check(head.consumed == whole.consumed, "the client consumed other bytes than the head");
    if (head.status == progress::need_more) {
        check(whole.status == progress::need_more && !whole.error, "finished before the head did");
        check(whole.consumed <= o.limits.max_head_size, "waiting past max_head_size");
        return 0;
    }
    if (head.status == progress::failed) {
        check(whole.status == progress::failed && whole.error == head.error,
              "a head error other than the parser's");
        return 0;
    }
    fuzz::check_parsed_head(head.head, response, head.consumed, o.limits);
    check(head.head.status() >= 100 && head.head.status() <= 999, "a status not of 3 digits");
    const std::error_code expected = reference_response_check(head.head, o);
    check(whole.error == expected, "the response is judged differently than RFC 6455 4.1");
    check((whole.status == progress::done) == !expected, "status and error disagree");
    if (expected) return 0;

    const auto protocol = head.head.field("Sec-WebSocket-Protocol");
    check(whole.subprotocol == protocol.value_or(std::string_view()),
          "another subprotocol than the response names");
    std::vector<extension> accepted;
    for (const auto& f : head.head.fields())
        if (fuzz::same_ignoring_case(f.name, "Sec-WebSocket-Extensions")) {
            fuzz::check_extensions_round_trip(f.value);
            (void)parse_extensions(f.value, accepted);
        }
    check(fuzz::same_extensions(whole.extensions, accepted),
          "other extensions than the response names");
    return 0;
}
