// duplex/protocol/extensions.hpp — the Sec-WebSocket-Extensions grammar (RFC 6455 9.1).
// SPDX-License-Identifier: BSL-1.0
//
// Parsing and writing the list of extensions, each with its parameters, that both
// handshake roles and extension negotiation (permessage-deflate) build on. Bounded: a peer
// cannot make it allocate per comma or semicolon beyond the limits below.
#pragma once

#include "duplex/error.hpp"
#include "duplex/protocol/http.hpp"

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace duplex::protocol {

// Bounds on a parsed Sec-WebSocket-Extensions list (all header fields together), so a
// peer cannot make us allocate per comma or semicolon it sends.
inline constexpr std::size_t max_extensions = 32;
inline constexpr std::size_t max_extension_params = 32;

// --- Sec-WebSocket-Extensions (RFC 6455 section 9.1) -------------------------------------

struct extension_param {
    std::string name;
    std::optional<std::string> value; // unescaped when it was a quoted-string
};

struct extension {
    std::string name;
    std::vector<extension_param> params;
};

namespace detail {

inline std::size_t skip_ows(std::string_view s, std::size_t i) noexcept {
    while (i < s.size() && is_ows(s[i])) ++i;
    return i;
}

inline std::string_view scan_token(std::string_view s, std::size_t& i) noexcept {
    const std::size_t begin = i;
    while (i < s.size() && is_tchar(s[i])) ++i;
    return s.substr(begin, i - begin);
}

// quoted-string (RFC 7230 section 3.2.6), `i` at the opening quote; appends the unescaped
// content to `out`.
inline bool scan_quoted_string(std::string_view s, std::size_t& i, std::string& out) {
    ++i;
    while (i < s.size()) {
        const char c = s[i++];
        if (c == '"') return true;
        if (c == '\\') {
            if (i == s.size() || !is_field_char(s[i])) return false;
            out += s[i++];
        } else if (is_field_char(c)) {
            out += c;
        } else {
            return false;
        }
    }
    return false; // unterminated
}

} // namespace detail

// Parses one Sec-WebSocket-Extensions value and appends its extensions to `out`; call it
// once per header field to combine several fields (RFC 7230 section 3.2.2). Empty list
// elements are skipped (RFC 7230 section 7), so an empty value adds nothing. A quoted
// parameter value must unescape to a token (RFC 6455 section 9.1). On error `out` is left
// as it was. Fails past max_extensions in `out` or max_extension_params in one extension.
inline std::error_code parse_extensions(std::string_view value, std::vector<extension>& out) {
    const std::size_t original = out.size();
    auto fail = [&] {
        out.erase(out.begin() + static_cast<std::ptrdiff_t>(original), out.end());
        return make_error_code(duplex::error::bad_extension_header);
    };
    std::size_t i = 0;
    while (true) {
        i = detail::skip_ows(value, i);
        if (i == value.size()) break;
        if (value[i] == ',') {
            ++i;
            continue;
        }
        const std::string_view name = detail::scan_token(value, i);
        if (name.empty() || out.size() >= max_extensions) return fail();
        out.push_back({std::string(name), {}});
        auto& params = out.back().params;
        i = detail::skip_ows(value, i);
        while (i < value.size() && value[i] == ';') {
            i = detail::skip_ows(value, i + 1);
            const std::string_view pname = detail::scan_token(value, i);
            if (pname.empty() || params.size() >= max_extension_params) return fail();
            extension_param p{std::string(pname), std::nullopt};
            i = detail::skip_ows(value, i);
            if (i < value.size() && value[i] == '=') {
                i = detail::skip_ows(value, i + 1);
                std::string v;
                if (i < value.size() && value[i] == '"') {
                    if (!detail::scan_quoted_string(value, i, v) || !is_token(v)) return fail();
                } else {
                    v = std::string(detail::scan_token(value, i));
                    if (v.empty()) return fail();
                }
                p.value = std::move(v);
                i = detail::skip_ows(value, i);
            }
            params.push_back(std::move(p));
        }
        if (i == value.size()) break;
        if (value[i] != ',') return fail();
        ++i;
    }
    return {};
}

// Writes extensions as a header value: "name; param; param=value, name2". Names and values
// that are not tokens cannot be written validly (RFC 6455 section 9.1); such extensions and
// parameters are left out.
inline std::string format_extensions(const std::vector<extension>& extensions) {
    std::string out;
    for (const auto& e : extensions) {
        if (!is_token(e.name)) continue;
        if (!out.empty()) out += ", ";
        out += e.name;
        for (const auto& p : e.params) {
            if (!is_token(p.name) || (p.value && !is_token(*p.value))) continue;
            out.append("; ").append(p.name);
            if (p.value) out.append("=").append(*p.value);
        }
    }
    return out;
}

} // namespace duplex::protocol
