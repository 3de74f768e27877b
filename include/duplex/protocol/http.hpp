// duplex/protocol/http.hpp — the HTTP/1.1 heads of the WebSocket opening handshake.
// SPDX-License-Identifier: BSL-1.0
//
// A WebSocket connection starts as one HTTP request and one response (RFC 6455 section 4).
// This header parses such heads incrementally, from any number of pieces, and writes them.
// It is deliberately not a general HTTP library: no bodies, no chunked coding. It is strict
// (RFC 7230 section 3) because the head is the first thing an attacker reaches, and it is
// bounded and linear-time because the same parser must survive slow and hostile peers.
// Bytes after the head (the first WebSocket frames) are never consumed: they stay with the
// caller, who hands them to the frame layer.
#pragma once

#include "duplex/error.hpp"
#include "duplex/protocol/progress.hpp"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace duplex::protocol {

struct http_limits {
    std::size_t max_head_size = 8192; // bytes, including the final empty line
    std::size_t max_headers = 100;    // header fields
};

struct http_field {
    std::string_view name;
    std::string_view value; // OWS trimmed
};

namespace detail {

inline char ascii_lower(char c) noexcept {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

inline bool iequals(std::string_view a, std::string_view b) noexcept {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i != a.size(); ++i) {
        if (ascii_lower(a[i]) != ascii_lower(b[i])) return false;
    }
    return true;
}

// RFC 7230 section 3.2.6.
inline bool is_tchar(char ch) noexcept {
    const auto c = static_cast<unsigned char>(ch);
    if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
    switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~': return true;
    default: return false;
    }
}

inline bool is_ows(char c) noexcept { return c == ' ' || c == '\t'; }

// VCHAR (RFC 5234 appendix B.1).
inline bool is_vchar(char ch) noexcept {
    const auto c = static_cast<unsigned char>(ch);
    return c >= 0x21 && c <= 0x7E;
}

// field-vchar / SP / HTAB (RFC 7230 section 3.2): everything but the controls; obs-text
// (0x80-0xFF) is allowed.
inline bool is_field_char(char ch) noexcept {
    const auto c = static_cast<unsigned char>(ch);
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

inline std::string_view trim_ows(std::string_view s) noexcept {
    while (!s.empty() && is_ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_ows(s.back())) s.remove_suffix(1);
    return s;
}

// Steps through a comma-separated list (RFC 7230 section 7): stores the next non-empty,
// OWS-trimmed element in `element` and drops it from `rest`; false when none is left.
inline bool next_list_element(std::string_view& rest, std::string_view& element) noexcept {
    while (!rest.empty()) {
        const std::size_t comma = rest.find(',');
        element = trim_ows(rest.substr(0, comma));
        rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
        if (!element.empty()) return true;
    }
    return false;
}

inline int hex_value(char c) noexcept {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// "HTTP/" DIGIT "." DIGIT (RFC 7230 section 2.6).
inline bool parse_http_version(std::string_view s, int& major_version, int& minor_version) {
    if (s.size() != 8 || s.substr(0, 5) != "HTTP/" || s[6] != '.') return false;
    if (s[5] < '0' || s[5] > '9' || s[7] < '0' || s[7] > '9') return false;
    major_version = s[5] - '0';
    minor_version = s[7] - '0';
    return true;
}

} // namespace detail

// True for a non-empty RFC 7230 token: header names, methods, subprotocols, extensions.
inline bool is_token(std::string_view s) noexcept {
    return !s.empty() && std::all_of(s.begin(), s.end(), detail::is_tchar);
}

// True when `s` may be written as a header field value: no control characters other than
// HTAB, and so in particular no CR, LF or NUL.
inline bool is_field_value(std::string_view s) noexcept {
    return std::all_of(s.begin(), s.end(), detail::is_field_char);
}

// Strict percent-decoding (RFC 3986 section 2.1): '%' must be followed by two hex digits.
// With plus_as_space, '+' decodes to a space as in HTML form data. On failure returns false
// and leaves `out` empty.
inline bool percent_decode(std::string_view in, std::string& out, bool plus_as_space = false) {
    out.clear();
    out.reserve(in.size());
    for (std::size_t i = 0; i < in.size(); ++i) {
        const char c = in[i];
        if (c == '%') {
            if (in.size() - i < 3) {
                out.clear();
                return false;
            }
            const int hi = detail::hex_value(in[i + 1]);
            const int lo = detail::hex_value(in[i + 2]);
            if (hi < 0 || lo < 0) {
                out.clear();
                return false;
            }
            out += static_cast<char>(hi * 16 + lo);
            i += 2;
        } else if (c == '+' && plus_as_space) {
            out += ' ';
        } else {
            out += c;
        }
    }
    return true;
}

class http_parser;

// A parsed request or response head. It owns its bytes and every view it hands out points
// into them, so views stay valid as long as the head (moves keep them valid, copies get
// their own).
class http_head {
public:
    http_head() = default;
    http_head(http_head&&) noexcept = default;
    http_head& operator=(http_head&&) noexcept = default;
    http_head(const http_head& other)
        : buf_(other.buf_), request_(other.request_), method_(other.method_),
          target_(other.target_), reason_(other.reason_), version_major_(other.version_major_),
          version_minor_(other.version_minor_), status_(other.status_), fields_(other.fields_) {
        rebase(other.buf_.data());
    }
    http_head& operator=(const http_head& other) {
        if (this != &other) {
            http_head copy(other);
            *this = std::move(copy);
        }
        return *this;
    }
    ~http_head() = default;

    bool is_request() const noexcept { return request_; }
    // Request line (empty for a response).
    std::string_view method() const noexcept { return method_; }
    std::string_view target() const noexcept { return target_; }
    // Status line (0 and empty for a request).
    int status() const noexcept { return status_; }
    std::string_view reason() const noexcept { return reason_; }
    // HTTP/major.minor of either kind.
    int version_major() const noexcept { return version_major_; }
    int version_minor() const noexcept { return version_minor_; }

    // Every header field, in the order received, repeats included.
    const std::vector<http_field>& fields() const noexcept { return fields_; }
    // The whole head as received, up to and including the final CRLF CRLF.
    std::string_view raw() const noexcept { return {buf_.data(), buf_.size()}; }

    // The value of the first field named `name` (ASCII case-insensitive).
    std::optional<std::string_view> field(std::string_view name) const noexcept {
        for (const auto& f : fields_) {
            if (detail::iequals(f.name, name)) return f.value;
        }
        return std::nullopt;
    }

    std::size_t count(std::string_view name) const noexcept {
        return static_cast<std::size_t>(
            std::count_if(fields_.begin(), fields_.end(),
                          [&](const http_field& f) { return detail::iequals(f.name, name); }));
    }

    // Whether any field named `name`, read as a comma-separated list (RFC 7230 section 7),
    // holds `token` (ASCII case-insensitive). "Connection: keep-alive, Upgrade" has the
    // token "upgrade"; "Upgrade: websocketx" does not have "websocket".
    bool has_token(std::string_view name, std::string_view token) const {
        for (const auto& f : fields_) {
            if (!detail::iequals(f.name, name)) continue;
            std::string_view rest = f.value, element;
            while (detail::next_list_element(rest, element)) {
                if (detail::iequals(element, token)) return true;
            }
        }
        return false;
    }

    // The elements of every field named `name`, read as comma-separated lists, in order,
    // without empty elements. Case is kept (subprotocol names are case-sensitive).
    std::vector<std::string_view> tokens(std::string_view name) const {
        std::vector<std::string_view> out;
        for (const auto& f : fields_) {
            if (!detail::iequals(f.name, name)) continue;
            std::string_view rest = f.value, element;
            while (detail::next_list_element(rest, element)) out.push_back(element);
        }
        return out;
    }

    // The path of the request target: up to '?'. For an absolute-form target
    // ("http://host/p?q", RFC 7230 section 5.3.2) the scheme and authority are skipped.
    std::string_view path() const noexcept {
        std::string_view t = target_.substr(0, target_.find('?'));
        if (!t.empty() && t.front() != '/') {
            const std::size_t scheme_end = t.find("://");
            if (scheme_end != std::string_view::npos) {
                t.remove_prefix(scheme_end + 3);
                const std::size_t slash = t.find('/');
                t = slash == std::string_view::npos ? std::string_view("/") : t.substr(slash);
            }
        }
        return t;
    }

    // The query of the request target, after '?', still percent-encoded; empty if none.
    std::string_view query() const noexcept {
        const std::size_t q = target_.find('?');
        return q == std::string_view::npos ? std::string_view() : target_.substr(q + 1);
    }

    // The raw (still percent-encoded) value of the first "key=value" or "key" in the query
    // whose raw key equals `key`; decode it with percent_decode().
    std::optional<std::string_view> query_param(std::string_view key) const noexcept {
        std::string_view q = query();
        while (!q.empty()) {
            const std::size_t amp = q.find('&');
            const std::string_view pair = q.substr(0, amp);
            const std::size_t eq = pair.find('=');
            if (pair.substr(0, eq) == key) {
                return eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
            }
            if (amp == std::string_view::npos) break;
            q.remove_prefix(amp + 1);
        }
        return std::nullopt;
    }

    // The value of the first cookie named `name` (case-sensitive, RFC 6265 section 5.4)
    // across the Cookie fields, as sent (surrounding double quotes are kept).
    std::optional<std::string_view> cookie(std::string_view name) const noexcept {
        for (const auto& f : fields_) {
            if (!detail::iequals(f.name, "cookie")) continue;
            std::string_view v = f.value;
            while (!v.empty()) {
                const std::size_t semi = v.find(';');
                const std::string_view pair = detail::trim_ows(v.substr(0, semi));
                const std::size_t eq = pair.find('=');
                if (eq != std::string_view::npos && detail::trim_ows(pair.substr(0, eq)) == name) {
                    return detail::trim_ows(pair.substr(eq + 1));
                }
                if (semi == std::string_view::npos) break;
                v.remove_prefix(semi + 1);
            }
        }
        return std::nullopt;
    }

private:
    friend class http_parser;

    // Points every view at the same offset in our own buffer as it had in `old_base`'s.
    void rebase(const char* old_base) noexcept {
        auto fix = [&](std::string_view& v) {
            v = v.empty() ? std::string_view()
                          : std::string_view(buf_.data() + (v.data() - old_base), v.size());
        };
        fix(method_);
        fix(target_);
        fix(reason_);
        for (auto& f : fields_) {
            fix(f.name);
            fix(f.value);
        }
    }

    // A vector rather than a string: moving a vector never relocates its elements (no
    // small-buffer optimisation), so the views survive moves of the head.
    std::vector<char> buf_;
    bool request_ = true;
    std::string_view method_, target_, reason_;
    int version_major_ = 0, version_minor_ = 0, status_ = 0;
    std::vector<http_field> fields_;
};

// Incremental parser for one head. feed() may be given the head in any number of pieces;
// it stops right after the CRLF CRLF that ends the head, so `consumed` tells the caller
// where the rest of its data (WebSocket frames) starts. Each byte is looked at once.
class http_parser {
public:
    enum class kind { request, response };

    struct result {
        progress status;
        std::size_t consumed; // bytes of this call's data taken; on failure, up to and
                              // including the offending byte
        std::error_code error;
    };

    explicit http_parser(kind k, http_limits limits = {}) : kind_(k), limits_(limits) {
        head_.request_ = k == kind::request;
    }

    result feed(std::string_view data) {
        if (status_ != progress::need_more) return {status_, 0, error_};
        auto& buf = head_.buf_;
        std::size_t i = 0;
        while (i < data.size()) {
            // Checked before buffering, so the buffer never grows past the limit.
            if (buf.size() >= limits_.max_head_size) return fail(duplex::error::head_too_large, i);
            if (!cr_pending_ && data[i] != '\r' && data[i] != '\n') {
                // Copy a run of ordinary bytes at once; lines are checked when they end.
                const std::size_t end =
                    i + std::min(data.size() - i, limits_.max_head_size - buf.size());
                std::size_t j = i;
                while (j < end && data[j] != '\r' && data[j] != '\n') ++j;
                buf.insert(buf.end(), data.data() + i, data.data() + j);
                i = j;
                continue;
            }
            const char c = data[i++];
            buf.push_back(c);
            if (cr_pending_) {
                cr_pending_ = false;
                if (c != '\n') return fail(duplex::error::bad_line_ending, i);
                const std::size_t line_end = buf.size() - 2;
                const std::error_code ec = on_line(line_start_, line_end);
                line_start_ = buf.size();
                if (ec) return fail(ec, i);
                if (status_ == progress::done) return {status_, i, {}};
            } else if (c == '\r') {
                cr_pending_ = true;
            } else {
                return fail(duplex::error::bad_line_ending, i); // LF without CR
            }
        }
        return {status_, i, {}};
    }

    progress status() const noexcept { return status_; }
    std::error_code error() const noexcept { return error_; }

    // Complete only once status() is done; before that it holds no views.
    const http_head& head() const noexcept { return head_; }
    // Moves the head out (head() is empty afterwards); reset() before parsing another.
    http_head take_head() noexcept { return std::move(head_); }

    void reset() {
        head_ = http_head();
        head_.request_ = kind_ == kind::request;
        status_ = progress::need_more;
        error_ = {};
        line_start_ = 0;
        cr_pending_ = false;
        started_ = false;
        start_ = {};
        fields_.clear();
    }

private:
    // Offsets, not views, while parsing: the buffer may still reallocate.
    struct range {
        std::size_t begin = 0, size = 0;
    };
    struct field_range {
        range name, value;
    };
    struct start_line {
        range a, b, c; // method/target/- or -/-/reason
        int version_major = 0, version_minor = 0, status = 0;
    };

    result fail(std::error_code e, std::size_t consumed) {
        status_ = progress::failed;
        error_ = e;
        return {status_, consumed, error_};
    }

    std::string_view text(range r) const noexcept { return {head_.buf_.data() + r.begin, r.size}; }

    std::error_code on_line(std::size_t begin, std::size_t end) {
        const std::string_view line(head_.buf_.data() + begin, end - begin);
        if (!started_) {
            started_ = true;
            return kind_ == kind::request ? parse_request_line(line, begin)
                                          : parse_status_line(line, begin);
        }
        if (line.empty()) {
            finish();
            return {};
        }
        if (detail::is_ows(line.front())) return duplex::error::obs_fold;
        if (fields_.size() >= limits_.max_headers) return duplex::error::too_many_headers;
        const std::size_t colon = line.find(':');
        if (colon == std::string_view::npos || !is_token(line.substr(0, colon))) {
            return duplex::error::bad_header; // includes whitespace before the colon
        }
        std::size_t vb = colon + 1, ve = line.size();
        while (vb < ve && detail::is_ows(line[vb])) ++vb;
        while (ve > vb && detail::is_ows(line[ve - 1])) --ve;
        if (!is_field_value(line.substr(vb, ve - vb))) return duplex::error::bad_header;
        fields_.push_back({{begin, colon}, {begin + vb, ve - vb}});
        return {};
    }

    // method SP request-target SP HTTP-version (RFC 7230 section 3.1.1).
    std::error_code parse_request_line(std::string_view line, std::size_t base) {
        const std::size_t sp1 = line.find(' ');
        if (sp1 == std::string_view::npos) return duplex::error::bad_request_line;
        const std::size_t sp2 = line.find(' ', sp1 + 1);
        if (sp2 == std::string_view::npos) return duplex::error::bad_request_line;
        const std::string_view method = line.substr(0, sp1);
        const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
        if (!is_token(method) || target.empty() ||
            !std::all_of(target.begin(), target.end(), detail::is_vchar) ||
            !detail::parse_http_version(line.substr(sp2 + 1), start_.version_major,
                                        start_.version_minor)) {
            return duplex::error::bad_request_line;
        }
        start_.a = {base, sp1};
        start_.b = {base + sp1 + 1, target.size()};
        return {};
    }

    // HTTP-version SP 3DIGIT SP reason-phrase (RFC 7230 section 3.1.2). A missing
    // "SP reason" is accepted as an empty reason: some servers omit it.
    std::error_code parse_status_line(std::string_view line, std::size_t base) {
        if (line.size() < 12 ||
            !detail::parse_http_version(line.substr(0, 8), start_.version_major,
                                        start_.version_minor) ||
            line[8] != ' ') {
            return duplex::error::bad_status_line;
        }
        int status = 0;
        for (std::size_t i = 9; i != 12; ++i) {
            if (line[i] < '0' || line[i] > '9') return duplex::error::bad_status_line;
            status = status * 10 + (line[i] - '0');
        }
        if (status < 100) return duplex::error::bad_status_line;
        if (line.size() > 12) {
            if (line[12] != ' ' || !is_field_value(line.substr(13))) {
                return duplex::error::bad_status_line;
            }
            start_.c = {base + 13, line.size() - 13};
        }
        start_.status = status;
        return {};
    }

    // The head is complete: publish views into the (now final) buffer.
    void finish() {
        status_ = progress::done;
        head_.version_major_ = start_.version_major;
        head_.version_minor_ = start_.version_minor;
        if (kind_ == kind::request) {
            head_.method_ = text(start_.a);
            head_.target_ = text(start_.b);
        } else {
            head_.status_ = start_.status;
            if (start_.c.size != 0) head_.reason_ = text(start_.c);
        }
        head_.fields_.reserve(fields_.size());
        for (const auto& f : fields_) {
            head_.fields_.push_back(
                {text(f.name), f.value.size != 0 ? text(f.value) : std::string_view()});
        }
        fields_.clear();
        fields_.shrink_to_fit();
    }

    kind kind_;
    http_limits limits_;
    http_head head_;
    progress status_ = progress::need_more;
    std::error_code error_;
    std::size_t line_start_ = 0;
    bool cr_pending_ = false;
    bool started_ = false;
    start_line start_;
    std::vector<field_range> fields_;
};

// --- Writing heads -------------------------------------------------------------------
//
// Header injection policy: the writers refuse, never repair. A method or name that is not a
// token, a target with anything but visible ASCII, or a value or reason with a control
// character (CR, LF, NUL, ...; HTAB is allowed) makes the writer return false and leave
// `out` untouched. Callers that take headers from users drop such headers (or fail), so no
// input can start a new header line or end the head early.

// The reason phrases duplex writes; "" for codes it does not know (an empty reason is
// valid HTTP).
inline std::string_view reason_phrase(int status) noexcept {
    switch (status) {
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 426: return "Upgrade Required";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "";
    }
}

// "METHOD target HTTP/1.1\r\n"
[[nodiscard]] inline bool write_request_line(std::string& out, std::string_view method,
                                             std::string_view target) {
    if (!is_token(method) || target.empty() ||
        !std::all_of(target.begin(), target.end(), detail::is_vchar)) {
        return false;
    }
    out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
    return true;
}

// "HTTP/1.1 status reason\r\n"; status must have three digits.
[[nodiscard]] inline bool write_status_line(std::string& out, int status, std::string_view reason) {
    if (status < 100 || status > 999 || !is_field_value(reason)) return false;
    out.append("HTTP/1.1 ")
        .append(std::to_string(status))
        .append(" ")
        .append(reason)
        .append("\r\n");
    return true;
}

// "name: value\r\n"
[[nodiscard]] inline bool write_field(std::string& out, std::string_view name,
                                      std::string_view value) {
    if (!is_token(name) || !is_field_value(value)) return false;
    out.append(name).append(": ").append(value).append("\r\n");
    return true;
}

// The empty line that ends a head.
inline void write_head_end(std::string& out) { out.append("\r\n"); }

} // namespace duplex::protocol
