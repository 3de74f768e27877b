// duplex/redis/resp.hpp — a sans-I/O codec for RESP2 and RESP3, the protocol Redis speaks.
// SPDX-License-Identifier: BSL-1.0
//
// The Redis backplane (duplex/redis_backplane.hpp) talks to Redis through this codec, in the
// style of the WebSocket protocol layer: bytes in, values out, no sockets, no clocks. The
// parser may be fed one byte or a megabyte at a time and produces the same values; every
// length an attacker (or a broken server) controls is checked against resp_limits before
// anything is allocated for it, and malformed input is an error code, never a crash.
//
//   duplex::redis::resp_parser parser;
//   std::string_view input = bytes_just_read;
//   duplex::redis::resp_value value;
//   while (parser.parse(input, value) == duplex::protocol::progress::done) use(value);
//   if (parser.failed()) drop_the_connection(parser.error());
//
// Supported: every RESP2 type, and the RESP3 types null, double, boolean, blob error,
// verbatim string, big number, map, set, push and attribute (attributes are parsed and
// discarded: nothing Redis sends to a pub/sub client depends on them). Not supported:
// RESP3 streamed strings and aggregates ("$?", "*?"), which Redis never sends; they are
// refused with resp_errc::streamed_not_supported.
//
// Commands go out as RESP arrays of bulk strings (append_command), which every Redis
// version accepts and which carry any bytes.
#pragma once

#include "../protocol/progress.hpp"

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

namespace duplex::redis {

// Failures of the codec, of a Redis URL and of the conversation with a Redis server.
enum class resp_errc {
    bad_type = 1,           // a first byte that is no RESP2 or RESP3 type
    bad_line_ending,        // a line not ended by CRLF, a CR or LF inside a line
    bad_length,             // a length that is not a decimal count (or -1 where allowed)
    bad_integer,            // an integer that is not decimal or does not fit 64 bits
    bad_value,              // a boolean, double, big number, null or verbatim string malformed
    line_too_long,          // a type line longer than resp_limits::max_line
    bulk_too_long,          // a string longer than resp_limits::max_bulk
    too_many_elements,      // an aggregate, or one value in all, over the element limits
    too_deep,               // aggregates nested deeper than resp_limits::max_depth
    streamed_not_supported, // a RESP3 streamed string or aggregate
    bad_url,                // a Redis URL that is not redis:// or rediss:// as documented
    tls_not_available,      // rediss:// in a build without duplex::tls
    server_error,           // Redis answered a command with an error reply
    auth_failed,            // Redis refused the credentials (WRONGPASS, NOAUTH, NOPERM)
    unexpected_reply,       // a reply that does not fit the command it answers
};

class resp_category_impl final : public std::error_category {
public:
    const char* name() const noexcept override { return "duplex.redis"; }
    std::string message(int value) const override {
        switch (static_cast<resp_errc>(value)) {
        case resp_errc::bad_type: return "RESP: unknown type byte";
        case resp_errc::bad_line_ending: return "RESP: line not ended by CRLF";
        case resp_errc::bad_length: return "RESP: malformed length";
        case resp_errc::bad_integer: return "RESP: malformed integer";
        case resp_errc::bad_value: return "RESP: malformed value";
        case resp_errc::line_too_long: return "RESP: line over the limit";
        case resp_errc::bulk_too_long: return "RESP: string over the limit";
        case resp_errc::too_many_elements: return "RESP: too many elements";
        case resp_errc::too_deep: return "RESP: aggregates nested too deep";
        case resp_errc::streamed_not_supported: return "RESP: streamed values are not supported";
        case resp_errc::bad_url: return "Redis: malformed redis:// or rediss:// URL";
        case resp_errc::tls_not_available: return "Redis: rediss:// needs duplex::tls";
        case resp_errc::server_error: return "Redis: the server answered with an error";
        case resp_errc::auth_failed: return "Redis: authentication failed";
        case resp_errc::unexpected_reply: return "Redis: unexpected reply";
        }
        return "duplex.redis: unknown error";
    }
};

inline const std::error_category& resp_category() noexcept {
    static const resp_category_impl category;
    return category;
}

inline std::error_code make_error_code(resp_errc e) noexcept {
    return {static_cast<int>(e), resp_category()};
}

} // namespace duplex::redis

template <>
struct std::is_error_code_enum<duplex::redis::resp_errc> : std::true_type {};

namespace duplex::redis {

enum class resp_type : std::uint8_t {
    simple_string, // +
    error,         // -
    integer,       // :
    bulk_string,   // $
    array,         // *
    null,          // _ and RESP2's $-1 and *-1
    boolean,       // #
    double_value,  // , (kept as its text: "1.5", "inf", "-inf", "nan")
    big_number,    // ( (kept as its text)
    bulk_error,    // !
    verbatim,      // = (the text without its three-letter format and ':')
    map,           // % (elements hold key, value, key, value, ...)
    set,           // ~
    push,          // > (out-of-band data: pub/sub messages under RESP3)
};

struct resp_value {
    resp_type type = resp_type::null;
    std::string text;                 // strings, errors, double, big number
    std::int64_t integer = 0;         // integer; boolean as 0 or 1
    std::vector<resp_value> elements; // array, set, push; map as key, value pairs

    bool is_aggregate() const noexcept {
        return type == resp_type::array || type == resp_type::map || type == resp_type::set ||
               type == resp_type::push;
    }
    bool is_error() const noexcept {
        return type == resp_type::error || type == resp_type::bulk_error;
    }
    // Simple, bulk and verbatim strings: the text; anything else: empty.
    std::string_view string() const noexcept {
        return type == resp_type::simple_string || type == resp_type::bulk_string ||
                       type == resp_type::verbatim
                   ? std::string_view(text)
                   : std::string_view{};
    }

    friend bool operator==(const resp_value& a, const resp_value& b) {
        return a.type == b.type && a.text == b.text && a.integer == b.integer &&
               a.elements == b.elements;
    }
    friend bool operator!=(const resp_value& a, const resp_value& b) { return !(a == b); }
};

// Every bound the parser enforces. The defaults suit a general client; the backplane sets
// tighter ones from its own message size limit.
struct resp_limits {
    std::size_t max_line =
        64 * 1024; // a line with its type byte, without CRLF: simple strings, errors, numbers
    std::size_t max_bulk = 64 * 1024 * 1024;      // one bulk string, blob error or verbatim string
    std::size_t max_elements = 1024 * 1024;       // one aggregate's elements (a map's: 2 per entry)
    std::size_t max_total_elements = 1024 * 1024; // all values inside one top-level value
    std::size_t max_depth = 32;                   // aggregates inside aggregates
};

class resp_parser {
public:
    explicit resp_parser(resp_limits limits = {}) : limits_(limits) {}

    // Consumes bytes from the front of `input` until one whole top-level value is complete:
    // then `out` holds it, `input` starts after it, and the result is `done`. Otherwise all
    // of `input` is consumed (partial lines and strings are kept) and the result is
    // `need_more`. After `failed` the parser stays failed (error() says why); the stream
    // cannot be resynchronised, so the connection must be dropped.
    protocol::progress parse(std::string_view& input, resp_value& out) {
        if (error_) return protocol::progress::failed;
        while (!input.empty()) {
            bool complete = false;
            if (phase_ == phase::header) {
                complete = read_line(input);
            } else {
                complete = read_bulk(input);
            }
            if (error_) return protocol::progress::failed;
            if (complete && !pending_.empty()) {
                out = std::move(pending_.back());
                pending_.clear();
                return protocol::progress::done;
            }
        }
        return protocol::progress::need_more;
    }

    bool failed() const noexcept { return static_cast<bool>(error_); }
    std::error_code error() const noexcept { return error_; }
    // True between values: nothing partial is held.
    bool idle() const noexcept {
        return phase_ == phase::header && line_.empty() && stack_.empty() && pending_.empty();
    }
    const resp_limits& limits() const noexcept { return limits_; }

    // Forgets everything, including a failure: for a new connection.
    void reset() {
        phase_ = phase::header;
        line_.clear();
        stack_.clear();
        pending_.clear();
        bulk_ = {};
        bulk_remaining_ = 0;
        trailer_seen_ = 0;
        total_elements_ = 0;
        error_ = {};
    }

private:
    enum class phase { header, bulk };

    struct open_aggregate {
        resp_value value;
        std::size_t remaining = 0; // elements still to come
        bool attribute = false;    // discarded when complete
    };

    bool fail(resp_errc e) {
        error_ = make_error_code(e);
        return false;
    }

    // Reads one CRLF-terminated line; returns true when it completed a top-level value.
    bool read_line(std::string_view& input) {
        const std::size_t lf = input.find('\n');
        if (lf == std::string_view::npos) {
            // The CR is not part of the line's content, hence the + 1.
            if (line_.size() + input.size() > limits_.max_line + 1)
                return fail(resp_errc::line_too_long);
            line_.append(input.data(), input.size());
            input.remove_prefix(input.size());
            return false;
        }
        if (line_.size() + lf > limits_.max_line + 1) return fail(resp_errc::line_too_long);
        std::string_view line;
        if (line_.empty()) {
            line = input.substr(0, lf);
        } else {
            line_.append(input.data(), lf);
            line = line_;
        }
        input.remove_prefix(lf + 1);
        if (line.empty() || line.back() != '\r') return fail(resp_errc::bad_line_ending);
        line.remove_suffix(1);
        if (line.find('\r') != std::string_view::npos) return fail(resp_errc::bad_line_ending);
        const bool complete = on_line(line);
        line_.clear();
        return complete;
    }

    bool read_bulk(std::string_view& input) {
        const std::size_t take = std::min(bulk_remaining_, input.size());
        bulk_.text.append(input.data(), take);
        input.remove_prefix(take);
        bulk_remaining_ -= take;
        while (bulk_remaining_ == 0 && trailer_seen_ < 2 && !input.empty()) {
            if (input.front() != (trailer_seen_ == 0 ? '\r' : '\n'))
                return fail(resp_errc::bad_line_ending);
            input.remove_prefix(1);
            ++trailer_seen_;
        }
        if (bulk_remaining_ != 0 || trailer_seen_ < 2) return false;
        phase_ = phase::header;
        if (bulk_.type == resp_type::verbatim) {
            // "txt:" or "mkd:" and then the text.
            if (bulk_.text.size() < 4 || bulk_.text[3] != ':') return fail(resp_errc::bad_value);
            bulk_.text.erase(0, 4);
        }
        return complete(std::move(bulk_));
    }

    static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

    // A decimal integer with an optional '-', no '+', no leading or trailing space.
    static bool parse_int64(std::string_view s, std::int64_t& out) noexcept {
        bool negative = false;
        if (!s.empty() && s.front() == '-') {
            negative = true;
            s.remove_prefix(1);
        }
        if (s.empty() || s.size() > 19) return false;
        std::uint64_t value = 0;
        for (const char c : s) {
            if (!is_digit(c)) return false;
            value = value * 10 + static_cast<std::uint64_t>(c - '0');
        }
        const std::uint64_t max =
            static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
        if (negative) {
            if (value > max + 1) return false;
            out = value == max + 1 ? std::numeric_limits<std::int64_t>::min()
                                   : -static_cast<std::int64_t>(value);
        } else {
            if (value > max) return false;
            out = static_cast<std::int64_t>(value);
        }
        return true;
    }

    // A count or length: non-negative decimal, or -1 (null) where `allow_null`.
    // Returns false after failing.
    bool parse_length(std::string_view s, bool allow_null, bool& is_null, std::size_t& out) {
        is_null = false;
        if (s == "?") return fail(resp_errc::streamed_not_supported);
        if (s == "-1" && allow_null) {
            is_null = true;
            return true;
        }
        std::int64_t n = 0;
        if (s.empty() || s.front() == '-' || !parse_int64(s, n)) return fail(resp_errc::bad_length);
        out = static_cast<std::size_t>(n);
        if (static_cast<std::uint64_t>(n) != out) return fail(resp_errc::bad_length);
        return true;
    }

    bool count_element() {
        if (++total_elements_ > limits_.max_total_elements)
            return fail(resp_errc::too_many_elements);
        return true;
    }

    bool on_line(std::string_view line) {
        if (line.empty()) return fail(resp_errc::bad_type);
        if (!count_element()) return false;
        const char kind = line.front();
        const std::string_view rest = line.substr(1);
        resp_value v;
        switch (kind) {
        case '+':
            v.type = resp_type::simple_string;
            v.text.assign(rest);
            return complete(std::move(v));
        case '-':
            v.type = resp_type::error;
            v.text.assign(rest);
            return complete(std::move(v));
        case ':':
            v.type = resp_type::integer;
            if (!parse_int64(rest, v.integer)) return fail(resp_errc::bad_integer);
            return complete(std::move(v));
        case '_':
            if (!rest.empty()) return fail(resp_errc::bad_value);
            return complete(std::move(v));
        case '#':
            if (rest != "t" && rest != "f") return fail(resp_errc::bad_value);
            v.type = resp_type::boolean;
            v.integer = rest == "t" ? 1 : 0;
            return complete(std::move(v));
        case ',':
            if (!valid_double(rest)) return fail(resp_errc::bad_value);
            v.type = resp_type::double_value;
            v.text.assign(rest);
            return complete(std::move(v));
        case '(':
            if (!valid_big_number(rest)) return fail(resp_errc::bad_value);
            v.type = resp_type::big_number;
            v.text.assign(rest);
            return complete(std::move(v));
        case '$':
        case '!':
        case '=': {
            bool is_null = false;
            std::size_t length = 0;
            if (!parse_length(rest, kind == '$', is_null, length)) return false;
            if (is_null) return complete(std::move(v));
            if (length > limits_.max_bulk) return fail(resp_errc::bulk_too_long);
            bulk_ = {};
            bulk_.type = kind == '$'   ? resp_type::bulk_string
                         : kind == '!' ? resp_type::bulk_error
                                       : resp_type::verbatim;
            // No reserve(length): the bytes must arrive before memory is spent on them.
            bulk_remaining_ = length;
            trailer_seen_ = 0;
            phase_ = phase::bulk;
            return false;
        }
        case '*':
        case '%':
        case '~':
        case '>':
        case '|': {
            bool is_null = false;
            std::size_t count = 0;
            if (!parse_length(rest, kind == '*', is_null, count)) return false;
            if (is_null) return complete(std::move(v));
            const bool pairs = kind == '%' || kind == '|';
            if (count > limits_.max_elements / (pairs ? 2 : 1))
                return fail(resp_errc::too_many_elements);
            if (pairs) count *= 2;
            if (stack_.size() >= limits_.max_depth) return fail(resp_errc::too_deep);
            v.type = kind == '*'   ? resp_type::array
                     : kind == '%' ? resp_type::map
                     : kind == '~' ? resp_type::set
                     : kind == '>' ? resp_type::push
                                   : resp_type::map;
            if (count == 0) {
                if (kind == '|') return false; // an empty attribute: nothing to deliver
                return complete(std::move(v));
            }
            stack_.push_back({std::move(v), count, kind == '|'});
            return false;
        }
        default: return fail(resp_errc::bad_type);
        }
    }

    static bool valid_double(std::string_view s) noexcept {
        if (s == "inf" || s == "-inf" || s == "nan") return true;
        if (s.empty()) return false;
        bool digit = false;
        for (const char c : s) {
            if (is_digit(c))
                digit = true;
            else if (c != '-' && c != '+' && c != '.' && c != 'e' && c != 'E')
                return false;
        }
        return digit;
    }

    static bool valid_big_number(std::string_view s) noexcept {
        if (!s.empty() && s.front() == '-') s.remove_prefix(1);
        if (s.empty()) return false;
        for (const char c : s)
            if (!is_digit(c)) return false;
        return true;
    }

    // A value is whole: attach it to the aggregate it belongs to, closing every aggregate it
    // completes. Returns true when a top-level value is ready in pending_.
    bool complete(resp_value v) {
        for (;;) {
            if (stack_.empty()) {
                pending_.push_back(std::move(v));
                total_elements_ = 0;
                return true;
            }
            auto& top = stack_.back();
            top.value.elements.push_back(std::move(v));
            if (--top.remaining != 0) return false;
            const bool attribute = top.attribute;
            v = std::move(top.value);
            stack_.pop_back();
            // An attribute describes the value after it; it is not an element of its parent.
            if (attribute) return false;
        }
    }

    resp_limits limits_;
    phase phase_ = phase::header;
    std::string line_;                  // a type line split across inputs
    std::vector<open_aggregate> stack_; // outermost first
    std::vector<resp_value> pending_;   // at most one: the completed top-level value
    resp_value bulk_;                   // the string being read in phase::bulk
    std::size_t bulk_remaining_ = 0;    // its bytes still to come, before the CRLF
    int trailer_seen_ = 0;              // bytes of its CRLF seen
    std::size_t total_elements_ = 0;    // values in the current top-level value so far
    std::error_code error_;
};

// ---- encoding -------------------------------------------------------------------------------

namespace detail {
inline void append_decimal(std::string& out, std::int64_t n) {
    char digits[24];
    std::size_t at = sizeof digits;
    std::uint64_t magnitude =
        n < 0 ? 0 - static_cast<std::uint64_t>(n) : static_cast<std::uint64_t>(n);
    do {
        digits[--at] = static_cast<char>('0' + magnitude % 10);
        magnitude /= 10;
    } while (magnitude != 0);
    if (n < 0) digits[--at] = '-';
    out.append(digits + at, sizeof digits - at);
}

inline void append_header(std::string& out, char kind, std::size_t n) {
    out.push_back(kind);
    append_decimal(out, static_cast<std::int64_t>(n));
    out.append("\r\n", 2);
}

inline void append_bulk(std::string& out, std::string_view s) {
    append_header(out, '$', s.size());
    out.append(s.data(), s.size());
    out.append("\r\n", 2);
}
} // namespace detail

// A command as Redis expects it from clients: an array of bulk strings, binary-safe.
template <class Range>
void append_command(std::string& out, const Range& args) {
    std::size_t n = 0;
    for (const auto& arg : args) {
        (void)arg;
        ++n;
    }
    detail::append_header(out, '*', n);
    for (const auto& arg : args) detail::append_bulk(out, std::string_view(arg));
}

inline void append_command(std::string& out, std::initializer_list<std::string_view> args) {
    append_command<std::initializer_list<std::string_view>>(out, args);
}

// Writes a value back in RESP3 (RESP2 for the types RESP2 has): what a server would send.
// The tests and the fuzz target use it to check that parsing and writing agree.
inline void append_value(std::string& out, const resp_value& v) {
    switch (v.type) {
    case resp_type::simple_string:
        out += '+';
        out += v.text;
        out += "\r\n";
        return;
    case resp_type::error:
        out += '-';
        out += v.text;
        out += "\r\n";
        return;
    case resp_type::integer:
        out += ':';
        detail::append_decimal(out, v.integer);
        out += "\r\n";
        return;
    case resp_type::null: out += "_\r\n"; return;
    case resp_type::boolean: out += v.integer != 0 ? "#t\r\n" : "#f\r\n"; return;
    case resp_type::double_value:
        out += ',';
        out += v.text;
        out += "\r\n";
        return;
    case resp_type::big_number:
        out += '(';
        out += v.text;
        out += "\r\n";
        return;
    case resp_type::bulk_string: detail::append_bulk(out, v.text); return;
    case resp_type::bulk_error:
        detail::append_header(out, '!', v.text.size());
        out += v.text;
        out += "\r\n";
        return;
    case resp_type::verbatim:
        detail::append_header(out, '=', v.text.size() + 4);
        out += "txt:";
        out += v.text;
        out += "\r\n";
        return;
    case resp_type::array:
    case resp_type::set:
    case resp_type::push:
    case resp_type::map: {
        const char kind = v.type == resp_type::array  ? '*'
                          : v.type == resp_type::set  ? '~'
                          : v.type == resp_type::push ? '>'
                                                      : '%';
        detail::append_header(out, kind,
                              v.type == resp_type::map ? v.elements.size() / 2 : v.elements.size());
        for (const auto& e : v.elements) append_value(out, e);
        return;
    }
    }
}

} // namespace duplex::redis
