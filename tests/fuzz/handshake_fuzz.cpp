// libFuzzer target: the HTTP request parser and the server side of the opening handshake
// (http.hpp, handshake.hpp), the first code any client reaches. On every input it checks:
//   * bounded memory: the parser never buffers past max_head_size, and the heap it keeps
//     stays within the head and field limits (measured under AddressSanitizer);
//   * the same outcome (status, bytes consumed, error, every field) whether the head comes
//     whole, one byte at a time, or split at pseudo-random points; the same for the
//     server_handshake driver;
//   * a complete head is exactly the bytes up to CRLF CRLF, with token names and trimmed
//     values, and the accessors (field, count, has_token, tokens, copies) agree with it;
//   * written again with the head writers, it parses back to the same method, target and
//     fields, and writing that again gives the same bytes;
//   * validation refuses exactly what a reference check written here from RFC 6455 4.2.1
//     refuses, with the same error: so an accepted request has method GET, HTTP/1.1 or later,
//     one Host, the websocket and upgrade tokens, version 13 once, and a key that is the
//     canonical base64 of 16 bytes;
//   * every Sec-WebSocket-Extensions value that parses formats and parses back the same;
//   * the 101 response parses, carries what was negotiated and nothing that was dropped, and
//     satisfies a client_handshake holding the same key; a refusal or reject() answer parses,
//     with the status RFC 6455 asks for (or the application's, 500 for one that would not end
//     the exchange), "Connection: close" and a Content-Length that frames its body.
//
// Input layout:
//   byte 0  bit 7: small limits, then bits 0-6: max_head_size = 64 + 32 * n
//   byte 1  bits 0-4: max_headers = 1 + n (small limits only); bits 5-6: the subprotocol to
//           accept (none, first offered, last offered through the callback, one never
//           offered); bit 7: accept the first offered extension
//   byte 2  seed of the pseudo-random split points
//   then    the request bytes
#include "http_shared.hpp"

#include <duplex/protocol/handshake.hpp>
#include <duplex/protocol/http.hpp>

#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

using namespace duplex::protocol;
using fuzz::check;

namespace {

// RFC 6455 4.2.1, in the order the server checks it (the version before the key, so an old
// draft client is told the version to use), read with this file's own list splitting and
// base64.
std::error_code reference_validation(const http_head& h) {
    using duplex::error;
    if (h.method() != "GET") return error::bad_method;
    if (h.version_major() < 1 || (h.version_major() == 1 && h.version_minor() < 1))
        return error::bad_http_version;
    if (fuzz::count_fields(h, "Host") != 1 || fuzz::first_field(h, "Host")->empty())
        return error::missing_host;
    if (!fuzz::has_element(h, "Upgrade", "websocket")) return error::missing_upgrade;
    if (!fuzz::has_element(h, "Connection", "Upgrade")) return error::missing_connection;
    if (fuzz::count_fields(h, "Sec-WebSocket-Version") != 1 ||
        *fuzz::first_field(h, "Sec-WebSocket-Version") != "13")
        return error::bad_websocket_version;
    if (fuzz::count_fields(h, "Sec-WebSocket-Key") != 1) return error::bad_websocket_key;
    const std::string_view key = *fuzz::first_field(h, "Sec-WebSocket-Key");
    const std::string nonce = fuzz::simple_base64_decode(key);
    if (nonce.size() != 16 || fuzz::simple_base64_encode(nonce) != key)
        return error::bad_websocket_key;
    if (fuzz::count_fields(h, "Origin") > 1) return error::bad_header;
    std::vector<extension> offered;
    for (const auto& f : h.fields())
        if (fuzz::same_ignoring_case(f.name, "Sec-WebSocket-Extensions") &&
            parse_extensions(f.value, offered))
            return error::bad_extension_header;
    return {};
}

// Writes the head again with the library's writers: it must accept every part the parser
// accepted, and what it writes must parse back the same.
void check_rewrite(const http_head& head) {
    std::string written;
    check(write_request_line(written, head.method(), head.target()),
          "a parsed request line cannot be written");
    for (const auto& f : head.fields())
        check(write_field(written, f.name, f.value), "a parsed field cannot be written");
    write_head_end(written);
    const http_limits roomy{written.size(), head.fields().size() + 1};
    const auto again = fuzz::parse_head(http_parser::kind::request, roomy, written, {});
    check(again.status == progress::done && again.consumed == written.size(),
          "a written head does not parse");
    const http_head& h = again.head;
    check(h.method() == head.method() && h.target() == head.target() && h.version_major() == 1 &&
              h.version_minor() == 1 && h.fields().size() == head.fields().size(),
          "a written head parses differently");
    for (std::size_t i = 0; i < h.fields().size(); ++i)
        check(h.fields()[i].name == head.fields()[i].name &&
                  h.fields()[i].value == head.fields()[i].value,
              "a written field parses differently");
    std::string twice;
    (void)write_request_line(twice, h.method(), h.target());
    for (const auto& f : h.fields()) (void)write_field(twice, f.name, f.value);
    write_head_end(twice);
    check(twice == written, "writing a head is not stable");
}

// Accessors that read the target: they must describe substrings of it, and decode sanely.
void check_target_accessors(const http_head& head) {
    const std::string_view target = head.target();
    const std::size_t question = target.find('?');
    check(head.query() == (question == std::string_view::npos ? std::string_view()
                                                              : target.substr(question + 1)),
          "query() is not what follows '?'");
    if (!target.empty() && target.front() == '/')
        check(head.path() == target.substr(0, question), "path() of an origin-form target");
    const std::string_view query = head.query();
    const std::string_view first_key = query.substr(0, query.find_first_of("=&"));
    if (const auto value = head.query_param(first_key)) {
        std::string decoded;
        if (percent_decode(*value, decoded, true))
            check(decoded.size() <= value->size(), "percent_decode() grew its input");
        else
            check(decoded.empty(), "a failed percent_decode() left output");
    }
    (void)head.cookie("session");
}

// The bytes of an answer to send: a head that parses, and a body that Content-Length frames.
http_head check_answer(std::string_view bytes, int status) {
    const http_limits roomy{bytes.size() + 1, 1000};
    auto answer = fuzz::parse_head(http_parser::kind::response, roomy, bytes, {});
    check(answer.status == progress::done, "an answer we wrote does not parse");
    const http_head& h = answer.head;
    check(h.status() == status && h.version_major() == 1 && h.version_minor() == 1,
          "an answer with another status");
    if (status != 101) {
        const auto length = fuzz::first_field(h, "Content-Length");
        check(length && std::to_string(bytes.size() - answer.consumed) == *length &&
                  fuzz::count_fields(h, "Content-Length") == 1,
              "a refusal's Content-Length does not frame its body");
        check(fuzz::has_element(h, "Connection", "close") &&
                  fuzz::count_fields(h, "Connection") == 1,
              "a refusal that does not close the connection");
        check(fuzz::count_fields(h, "Transfer-Encoding") == 0, "a refusal with Transfer-Encoding");
    }
    return h;
}

struct handshake_outcome {
    progress status = progress::need_more;
    std::size_t consumed = 0;
    std::error_code error;
    bool operator==(const handshake_outcome& o) const {
        return status == o.status && consumed == o.consumed && error == o.error;
    }
};

handshake_outcome run_handshake(server_handshake& hs, std::string_view input,
                                const std::vector<std::size_t>& cuts) {
    handshake_outcome out;
    for (const auto piece : fuzz::pieces(input, cuts)) {
        const auto r = hs.feed(piece);
        check(r.consumed <= piece.size() && r.status == hs.status() && r.error == hs.error(),
              "server_handshake::feed() broke its contract");
        out.consumed += r.consumed;
        if (r.status != progress::need_more) break;
        check(r.consumed == piece.size(), "reading left bytes unread");
    }
    out.status = hs.status();
    out.error = hs.error();
    const auto again = hs.feed("GET");
    check(out.status == progress::need_more || again.consumed == 0,
          "a finished handshake took more input");
    return out;
}

bool is_handshake_error(std::error_code ec) {
    if (ec.category() != duplex::error_category()) return false;
    const auto e = static_cast<duplex::error>(ec.value());
    return (e >= duplex::error::head_too_large && e <= duplex::error::bad_line_ending) ||
           (e >= duplex::error::bad_method && e <= duplex::error::bad_extension_header);
}

// Accepts an upgrade and checks the 101 against the request and a client with the same key.
void check_accept(server_handshake& hs, std::uint8_t choice) {
    const upgrade_request& up = hs.upgrade();
    accept_options opts;
    const unsigned subprotocol_choice = (choice >> 5U) & 3U;
    if (subprotocol_choice == 1 && !up.subprotocols.empty())
        opts.subprotocol = std::string(up.subprotocols.front());
    if (subprotocol_choice == 3) opts.subprotocol = "never-offered";
    std::string expected_subprotocol;
    if (subprotocol_choice == 2 && !up.subprotocols.empty())
        expected_subprotocol = std::string(up.subprotocols.back());
    for (const auto offered : up.subprotocols)
        if (offered == opts.subprotocol) expected_subprotocol = opts.subprotocol;
    if ((choice & 0x80U) != 0 && !up.extensions.empty())
        opts.extensions = format_extensions({up.extensions.front()});
    // What the server writes itself, a body framing, a bad name and an injection attempt are
    // all dropped; only X-Fine goes out.
    opts.extra_headers = {{"Content-Length", "5"},
                          {"X-Fine", "yes"},
                          {"X-Split", "a\r\nInjected: yes"},
                          {"sec-websocket-accept", "forged"},
                          {"Bad Name", "x"}};
    const std::string response = hs.accept(opts);
    check(hs.accepted(), "accept() did not finish");
    check(hs.subprotocol() == expected_subprotocol, "another subprotocol than chosen");
    check(hs.accept(opts).empty(), "a second accept()");

    const http_head h = check_answer(response, 101);
    std::vector<std::string_view> names;
    for (const auto& f : h.fields()) names.push_back(f.name);
    std::vector<std::string_view> expected_names = {"Upgrade", "Connection",
                                                    "Sec-WebSocket-Accept"};
    if (!expected_subprotocol.empty()) expected_names.push_back("Sec-WebSocket-Protocol");
    if (!opts.extensions.empty()) expected_names.push_back("Sec-WebSocket-Extensions");
    expected_names.push_back("X-Fine");
    check(names == expected_names, "the 101 has other fields than negotiated");
    if (!expected_subprotocol.empty())
        check(*h.field("Sec-WebSocket-Protocol") == expected_subprotocol, "another subprotocol");

    // A client that sent this key, offering what the request offered, takes the answer.
    const std::string nonce = fuzz::simple_base64_decode(up.key);
    std::array<std::uint8_t, 16> nonce_bytes{};
    std::memcpy(nonce_bytes.data(), nonce.data(), 16);
    client_options client;
    client.host = "fuzz.example";
    for (const auto p : up.subprotocols) client.subprotocols.emplace_back(p);
    client.extensions = format_extensions(up.extensions);
    client_handshake peer(client, nonce_bytes);
    check(peer.status() == progress::need_more && peer.key() == up.key,
          "a client cannot offer what the request offered");
    const auto r = peer.feed(response);
    check(r.status == progress::done && r.consumed == response.size(), "a client refuses our 101");
    check(peer.subprotocol() == expected_subprotocol, "the client sees another subprotocol");
    check(peer.extensions().size() == (opts.extensions.empty() ? 0U : 1U) &&
              (opts.extensions.empty() || peer.extensions()[0].name == up.extensions[0].name),
          "the client sees other extensions");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 3) return 0;
    http_limits limits;
    if ((data[0] & 0x80U) != 0) {
        limits.max_head_size = 64U + (data[0] & 0x7FU) * 32U;
        limits.max_headers = 1U + (data[1] & 0x1FU);
    }
    const std::uint8_t accept_choice = data[1];
    const unsigned split_seed = data[2];
    const std::string_view input(reinterpret_cast<const char*>(data + 3), size - 3);

    fuzz::heap_meter::start();
    const auto whole = fuzz::parse_head(http_parser::kind::request, limits, input, {});
    // A head buffer that may double (and be copied while it does) plus the field tables.
    const auto bound = 3 * static_cast<long long>(limits.max_head_size) +
                       6 * static_cast<long long>(limits.max_headers * sizeof(http_field)) + 1024;
    check(fuzz::heap_meter::peak() <= bound, "the parser keeps more heap than its limits");
    check(whole.status != progress::need_more || whole.consumed <= limits.max_head_size,
          "the parser waits for more past max_head_size");
    check(whole.status != progress::failed || whole.error != duplex::error::head_too_large ||
              whole.consumed <= limits.max_head_size + 1,
          "head_too_large after reading past the limit");
    const auto bytewise =
        fuzz::parse_head(http_parser::kind::request, limits, input, fuzz::every_cut(input.size()));
    const auto split = fuzz::parse_head(http_parser::kind::request, limits, input,
                                        fuzz::random_cuts(split_seed, input.size()));
    check(fuzz::same_outcome(whole, bytewise), "parsing differs byte by byte");
    check(fuzz::same_outcome(whole, split), "parsing differs when split");

    if (whole.status == progress::done) {
        fuzz::check_parsed_head(whole.head, input, whole.consumed, limits);
        check(!whole.head.method().empty() && !whole.head.target().empty(),
              "a request without method or target");
        check_rewrite(whole.head);
        check_target_accessors(whole.head);
        for (const auto& f : whole.head.fields())
            if (fuzz::same_ignoring_case(f.name, "Sec-WebSocket-Extensions"))
                fuzz::check_extensions_round_trip(f.value);
    }

    server_handshake::options options;
    options.limits = limits;
    if (((accept_choice >> 5U) & 3U) == 2) {
        options.select_subprotocol = [](const std::vector<std::string_view>& offered) {
            return std::string(offered.back());
        };
    }
    server_handshake hs_whole(options), hs_bytewise(options), hs_split(options);
    const auto a = run_handshake(hs_whole, input, {});
    check(a == run_handshake(hs_bytewise, input, fuzz::every_cut(input.size())),
          "the handshake differs byte by byte");
    check(a == run_handshake(hs_split, input, fuzz::random_cuts(split_seed, input.size())),
          "the handshake differs when split");
    check(a.consumed == whole.consumed, "the handshake consumed other bytes than the parser");
    check(hs_whole.has_request() == (whole.status == progress::done),
          "has_request() disagrees with the parser");

    check(!hs_whole.accepted(), "accepted before accept()");
    switch (a.status) {
    case progress::need_more:
        check(whole.status == progress::need_more, "reading after the head ended");
        break;
    case progress::failed: {
        check(is_handshake_error(a.error), "a failure that is not a handshake error");
        if (whole.status == progress::done)
            check(a.error == reference_validation(whole.head), "refused for another reason");
        else
            check(a.error == whole.error, "a head error other than the parser's");
        check(hs_whole.is_upgrade() ==
                  (hs_whole.has_request() && fuzz::has_element(whole.head, "Upgrade", "websocket")),
              "is_upgrade() disagrees with the Upgrade field");
        const refusal expected = refusal_for(a.error);
        const http_head h = check_answer(hs_whole.refusal(), expected.status);
        if (a.error == duplex::error::bad_websocket_version)
            check(h.field("Sec-WebSocket-Version") == std::string_view("13"),
                  "a 426 without the version to use");
        if (a.error == duplex::error::bad_method)
            check(h.field("Allow") == std::string_view("GET"), "a 405 without Allow");
        check(hs_whole.accept().empty(), "accept() after a failure");
        break;
    }
    case progress::done: {
        check(whole.status == progress::done && !reference_validation(whole.head),
              "accepted a request the RFC refuses");
        const upgrade_request& up = hs_whole.upgrade();
        check(up.target == whole.head.target() && up.host == *whole.head.field("Host") &&
                  up.key == *whole.head.field("Sec-WebSocket-Key") &&
                  up.origin == whole.head.field("Origin").value_or(std::string_view()),
              "upgrade_request does not match the head");
        std::vector<std::string_view> offered;
        for (const auto p : fuzz::list_elements(whole.head, "Sec-WebSocket-Protocol"))
            if (fuzz::is_token_text(p)) offered.push_back(p);
        check(up.subprotocols == offered, "offered subprotocols differ");

        // One copy is refused by the application instead, with a challenge and a header that
        // would contradict the framing; a status that would not end the exchange becomes 500.
        const int statuses[6] = {401, 302, 200, 101, 999, 0};
        const int status = statuses[split_seed % 6];
        const std::string answer = hs_bytewise.reject(
            {status, "who?", {{"WWW-Authenticate", "Basic"}, {"Connection", "x"}}});
        check(hs_bytewise.status() == progress::failed &&
                  hs_bytewise.error() == duplex::error::handshake_refused &&
                  hs_bytewise.refusal() == answer,
              "reject() did not refuse");
        const http_head h = check_answer(answer, status >= 200 && status <= 599 ? status : 500);
        check(h.field("WWW-Authenticate") == std::string_view("Basic"), "reject() lost a header");
        check(hs_bytewise.accept().empty(), "accept() after reject()");

        check_accept(hs_whole, accept_choice);
        break;
    }
    }
    return 0;
}
