// duplex/redis/url.hpp — redis:// and rediss:// URLs, as the Redis backplane takes them.
// SPDX-License-Identifier: BSL-1.0
//
//   redis://[[user]:password@]host[:port][/db]      plain TCP
//   rediss://[[user]:password@]host[:port][/db]     TLS, certificate and host name verified
//
// The form follows the IANA registration of the redis scheme and what redis-cli accepts:
// the user and password may be percent-encoded (a ':' or '@' in a password must be); an
// empty user with a password means Redis's `default` user (AUTH with the password only);
// the port defaults to 6379; db is a decimal database index, 0 when absent. Anything else
// (a query, a fragment, a non-numeric db, bytes that are not visible ASCII) is refused,
// because the host goes to a resolver and to TLS host-name verification, and the
// credentials go to AUTH. No I/O.
#pragma once

#include "resp.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <system_error>

namespace duplex::redis {

struct redis_url {
    bool secure = false; // rediss://
    std::string host;    // without the brackets of an IPv6 literal
    std::uint16_t port = 6379;
    std::string user;     // empty: the default user
    std::string password; // empty: no AUTH
    bool has_password = false;
    std::uint32_t db = 0;
};

namespace detail {
inline int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

inline bool percent_decode(std::string_view in, std::string& out) {
    out.clear();
    for (std::size_t i = 0; i < in.size(); ++i) {
        if (in[i] != '%') {
            out.push_back(in[i]);
            continue;
        }
        if (i + 2 >= in.size()) return false;
        const int hi = hex_value(in[i + 1]);
        const int lo = hex_value(in[i + 2]);
        if (hi < 0 || lo < 0) return false;
        out.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
    }
    return true;
}

inline bool parse_decimal(std::string_view s, std::uint64_t max, std::uint64_t& out) noexcept {
    if (s.empty() || s.size() > 10) return false;
    std::uint64_t v = 0;
    for (const char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    if (v > max) return false;
    out = v;
    return true;
}

inline bool host_char(char c) noexcept {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}
} // namespace detail

// Fills `out` and returns {} or returns resp_errc::bad_url (and leaves `out` untouched).
inline std::error_code parse_redis_url(std::string_view text, redis_url& out) {
    const std::error_code bad = make_error_code(resp_errc::bad_url);
    if (text.size() > 4096) return bad;
    for (const char c : text)
        if (static_cast<unsigned char>(c) <= 0x20 || static_cast<unsigned char>(c) >= 0x7f)
            return bad;
    redis_url url;
    const std::size_t colon = text.find("://");
    if (colon == std::string_view::npos) return bad;
    std::string scheme(text.substr(0, colon));
    for (char& c : scheme)
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    if (scheme == "rediss")
        url.secure = true;
    else if (scheme != "redis")
        return bad;
    text.remove_prefix(colon + 3);
    if (text.find_first_of("?#") != std::string_view::npos) return bad;

    const std::size_t slash = text.find('/');
    std::string_view authority = text.substr(0, slash);
    std::string_view path =
        slash == std::string_view::npos ? std::string_view{} : text.substr(slash);

    if (const std::size_t at = authority.rfind('@'); at != std::string_view::npos) {
        const std::string_view userinfo = authority.substr(0, at);
        authority.remove_prefix(at + 1);
        const std::size_t sep = userinfo.find(':');
        if (sep == std::string_view::npos) {
            // A lone word is taken as the password, as redis-cli does ("redis://secret@host").
            if (!detail::percent_decode(userinfo, url.password)) return bad;
        } else {
            if (!detail::percent_decode(userinfo.substr(0, sep), url.user) ||
                !detail::percent_decode(userinfo.substr(sep + 1), url.password))
                return bad;
        }
        url.has_password = !url.password.empty();
        if (!url.has_password && !url.user.empty()) return bad; // a user needs a password
    }

    std::string_view port;
    if (!authority.empty() && authority.front() == '[') {
        const std::size_t close = authority.find(']');
        if (close == std::string_view::npos) return bad;
        url.host.assign(authority.substr(1, close - 1));
        for (const char c : url.host)
            if (detail::hex_value(c) < 0 && c != ':' && c != '.') return bad;
        if (url.host.find(':') == std::string::npos) return bad;
        const std::string_view after = authority.substr(close + 1);
        if (!after.empty()) {
            if (after.front() != ':') return bad;
            port = after.substr(1);
            if (port.empty()) return bad;
        }
    } else {
        const std::size_t sep = authority.rfind(':');
        url.host.assign(authority.substr(0, sep));
        if (sep != std::string_view::npos) {
            port = authority.substr(sep + 1);
            if (port.empty()) return bad;
        }
        for (char& c : url.host) {
            if (!detail::host_char(c)) return bad;
            if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        }
    }
    if (url.host.empty()) return bad;
    if (!port.empty()) {
        std::uint64_t p = 0;
        if (!detail::parse_decimal(port, 65535, p) || p == 0) return bad;
        url.port = static_cast<std::uint16_t>(p);
    }
    if (!path.empty() && path != "/") {
        std::uint64_t db = 0;
        if (!detail::parse_decimal(path.substr(1), 0x7fffffff, db)) return bad;
        url.db = static_cast<std::uint32_t>(db);
    }
    out = std::move(url);
    return {};
}

} // namespace duplex::redis
