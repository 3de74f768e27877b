// libFuzzer target: the ws:// and wss:// URL parser (url.hpp), whose output goes into the
// request line, the Host header, the resolver and TLS host-name checks. On every input:
//   * a refused URL leaves the output default-constructed;
//   * an accepted URL has the properties url.hpp promises, each checked here from the URL
//     text: the scheme is ws or wss in any case; the host is non-empty and lower-case, an
//     IPv6 literal of hex digits, ':' and '.', or a reg-name of letters, digits, '-', '.',
//     '_' and '~' with no empty label, and a dotted-decimal IPv4 address (four parts, 0-255,
//     no leading zeros) whenever its last label is numeric; the port is 1-65535 and the
//     scheme's default unless written; the target is the path ("/" when empty) and the
//     query as written, with only the characters RFC 3986 allows there and whole
//     percent-encodings; no fragment, userinfo, white space or control character anywhere;
//   * written again from its parts (scheme, host_header(), target), in lower and in upper
//     case, it parses to the same result, and so do its refused variants stay refused
//     (with a fragment, with userinfo, with a space);
//   * its host_header() and target make a request that our client builds and our server
//     accepts with the same Host, target, path and query.
// A ws+unix: URL (Node's form for a Unix-domain socket) has the same target rules; its socket
// path is absolute, without ':' or '?', as written, and it is not secure, its Host localhost,
// and written again as ws+unix://PATH:TARGET it parses to the same result.
//
// Input: the URL.
#include "fuzz_support.hpp"

#include <duplex/protocol/handshake.hpp>
#include <duplex/protocol/url.hpp>

#include <array>
#include <cstdint>
#include <string>
#include <string_view>

using namespace duplex::protocol;
using fuzz::check;

namespace {

bool same(const websocket_url& a, const websocket_url& b) {
    return a.secure == b.secure && a.host == b.host && a.port == b.port && a.target == b.target &&
           a.path == b.path && a.query == b.query && a.ipv6_literal == b.ipv6_literal &&
           a.ipv4_literal == b.ipv4_literal && a.socket_path == b.socket_path;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }
bool is_hex(char c) { return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }
bool all_digits(std::string_view s) {
    for (const char c : s)
        if (!is_digit(c)) return false;
    return !s.empty();
}

// Four decimal parts 0-255 without leading zeros.
bool dotted_quad(std::string_view host) {
    for (int part = 0; part < 4; ++part) {
        const std::size_t dot = host.find('.');
        const std::string_view number = host.substr(0, dot);
        if (!all_digits(number) || number.size() > 3 || (number.size() > 1 && number[0] == '0') ||
            std::stoi(std::string(number)) > 255)
            return false;
        if ((dot == std::string_view::npos) != (part == 3)) return false;
        if (dot != std::string_view::npos) host.remove_prefix(dot + 1);
    }
    return true;
}

// The last label, ignoring one trailing dot, in any notation an IPv4 parser might read as a
// number: decimal digits, or 0x and hex digits.
bool last_label_numeric(std::string_view host) {
    if (!host.empty() && host.back() == '.') host.remove_suffix(1);
    const std::size_t dot = host.rfind('.');
    const std::string_view label = dot == std::string_view::npos ? host : host.substr(dot + 1);
    if (all_digits(label)) return true;
    if (label.size() < 2 || label[0] != '0' || (label[1] != 'x' && label[1] != 'X')) return false;
    for (const char c : label.substr(2))
        if (!is_hex(c)) return false;
    return true;
}

bool allowed_in_target(std::string_view s) {
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (c == '%') {
            if (i + 2 >= s.size() || !is_hex(s[i + 1]) || !is_hex(s[i + 2])) return false;
            i += 2;
            continue;
        }
        const bool alnum = is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && std::string_view("-._~!$&'()*+,;=:@/?").find(c) == std::string_view::npos)
            return false;
    }
    return true;
}

void check_accepted(std::string_view text, const websocket_url& u) {
    check(text.size() <= max_url_size, "a URL over the size limit");
    for (const char c : text)
        check(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7F,
              "a URL with white space, a control or non-ASCII byte");
    check(text.find('#') == std::string_view::npos, "a URL with a fragment");

    const std::size_t colon = text.find(':');
    std::string scheme(text.substr(0, colon));
    for (char& c : scheme) c = c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c;
    check(scheme == (u.secure ? "wss" : "ws"), "secure does not follow the scheme");
    check(text.substr(colon + 1, 2) == "//", "a URL without an authority");
    const std::string_view rest = text.substr(colon + 3);
    const std::string_view authority = rest.substr(0, rest.find_first_of("/?"));
    check(authority.find('@') == std::string_view::npos, "a URL with userinfo");

    check(!u.host.empty(), "an empty host");
    for (const char c : u.host) check(!(c >= 'A' && c <= 'Z'), "a host not lower-cased");
    if (u.ipv6_literal) {
        check(!u.ipv4_literal && authority.front() == '[', "an IPv6 literal without brackets");
        check(u.host.find(':') != std::string::npos, "an IPv6 literal without ':'");
        for (const char c : u.host)
            check(is_hex(c) || c == ':' || c == '.', "an IPv6 literal with other characters");
    } else {
        for (const char c : u.host)
            check(is_digit(c) || (c >= 'a' && c <= 'z') || c == '-' || c == '.' || c == '_' ||
                      c == '~',
                  "a reg-name with other characters");
        std::string_view labels = u.host;
        if (labels.back() == '.') labels.remove_suffix(1);
        check(!labels.empty() && labels.front() != '.' && labels.back() != '.' &&
                  labels.find("..") == std::string_view::npos,
              "a host with an empty label");
        check(u.ipv4_literal == last_label_numeric(u.host), "a numeric host not read as IPv4");
        if (u.ipv4_literal) check(dotted_quad(u.host), "an IPv4 literal that is not dotted-quad");
    }

    check(u.port != 0, "port 0");
    const std::size_t port_colon = u.ipv6_literal ? authority.find("]:") + 1 : authority.find(':');
    const bool port_written = port_colon != 0 && port_colon != std::string_view::npos &&
                              port_colon + 1 < authority.size();
    if (port_written)
        check(std::stoul(std::string(authority.substr(port_colon + 1))) == u.port,
              "another port than written");
    else
        check(u.port == (u.secure ? 443 : 80), "not the scheme's default port");

    const std::string_view written_target = rest.substr(authority.size());
    check(allowed_in_target(written_target), "a target with characters RFC 3986 does not allow");
    const std::size_t question = written_target.find('?');
    const std::string_view written_path = written_target.substr(0, question);
    check(u.path == (written_path.empty() ? std::string_view("/") : written_path),
          "the path is not as written");
    check(u.query == (question == std::string_view::npos ? std::string_view()
                                                         : written_target.substr(question + 1)),
          "the query is not as written");
    check(u.target == u.path + (question == std::string_view::npos ? "" : "?" + u.query),
          "the target is not path and query");

    const std::string host_part = u.ipv6_literal ? "[" + u.host + "]" : u.host;
    check(u.host_header() ==
              host_part + (u.port == u.default_port() ? "" : ":" + std::to_string(u.port)),
          "host_header() is not host and non-default port");
}

// ws+unix: ["//"] "/" path [":" target]
void check_unix_socket_url(std::string_view text, const websocket_url& u) {
    check(text.size() <= max_url_size, "a URL over the size limit");
    for (const char c : text)
        check(static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7F,
              "a URL with white space, a control or non-ASCII byte");
    check(text.find('#') == std::string_view::npos, "a URL with a fragment");
    std::string_view rest = text.substr(text.find(':') + 1);
    if (rest.substr(0, 2) == "//") rest.remove_prefix(2);
    check(!u.secure && u.host == "localhost" && u.port == 80 && u.host_header() == "localhost",
          "a ws+unix URL that is secure or not for localhost:80");
    check(!u.socket_path.empty() && u.socket_path.front() == '/' &&
              u.socket_path.find_first_of(":?") == std::string::npos,
          "a socket path that is not absolute or holds ':' or '?'");
    check(rest.substr(0, u.socket_path.size()) == u.socket_path, "the socket path not as written");
    const std::string_view after = rest.substr(u.socket_path.size());
    const std::string_view written_target = after.empty() ? after : after.substr(1);
    check(after.empty() || after.front() == ':', "a socket path that does not end at ':'");
    check(allowed_in_target(written_target), "a target with characters RFC 3986 does not allow");
    check(u.target == (written_target.empty()          ? std::string_view("/")
                       : written_target.front() == '?' ? "/" + std::string(written_target)
                                                       : std::string(written_target)),
          "the target is not as written");
    websocket_url parsed;
    check(!parse_websocket_url("ws+unix://" + u.socket_path + ":" + u.target, parsed) &&
              same(parsed, u),
          "a ws+unix URL written from its parts parses differently");
}

void check_written_again(const websocket_url& u) {
    const std::string again = (u.secure ? "wss://" : "ws://") + u.host_header() + u.target;
    websocket_url parsed;
    check(!parse_websocket_url(again, parsed) && same(parsed, u),
          "a URL written from its parts parses differently");
    std::string upper = again;
    const std::size_t target_at = again.size() - u.target.size();
    for (std::size_t i = 0; i < target_at; ++i)
        if (upper[i] >= 'a' && upper[i] <= 'z') upper[i] = static_cast<char>(upper[i] - 'a' + 'A');
    check(!parse_websocket_url(upper, parsed) && same(parsed, u),
          "scheme and host are not case-insensitive");
    const std::string refused[3] = {
        again + "#fragment", (u.secure ? "wss://user@" : "ws://user@") + u.host_header() + u.target,
        again + " "};
    for (const auto& bad : refused) {
        check(parse_websocket_url(bad, parsed) == duplex::error::bad_url, "a bad variant parses");
        check(same(parsed, websocket_url{}), "a refused URL left output");
    }
}

// The request our client would send for this URL is one our server accepts.
void check_request(const websocket_url& u) {
    client_options options;
    options.host = u.host_header();
    options.target = u.target;
    const std::array<std::uint8_t, 16> nonce{};
    client_handshake client(options, nonce);
    check(client.status() == progress::need_more, "our client cannot request this URL");
    server_handshake server;
    const auto r = server.feed(client.request());
    check(r.status == progress::done, "our server refuses a request for this URL");
    const upgrade_request& up = server.upgrade();
    check(up.host == u.host_header() && up.target == u.target && up.path == u.path &&
              up.query == u.query,
          "the server reads another host, path or query");
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    websocket_url u;
    u.host = "left over";
    const std::error_code ec = parse_websocket_url(text, u);
    if (ec) {
        check(ec == duplex::error::bad_url, "a URL refused with another error");
        check(same(u, websocket_url{}), "a refused URL left output");
        return 0;
    }
    if (!u.socket_path.empty()) {
        check_unix_socket_url(text, u);
        check_request(u);
        return 0;
    }
    check_accepted(text, u);
    check_written_again(u);
    check_request(u);
    return 0;
}
