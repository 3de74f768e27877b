// Helpers for the targets that parse HTTP heads (handshake_fuzz, response_fuzz, url_fuzz):
// feeding a parser in pieces, comparing heads, and re-reading header lists with code written
// here rather than the library's, so that a bug in one is not hidden by the same bug in the
// other.
#pragma once

#include "fuzz_support.hpp"

#include <duplex/protocol/handshake.hpp>
#include <duplex/protocol/http.hpp>

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace fuzz {

inline char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

inline bool same_ignoring_case(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

inline std::string_view trim_spaces_and_tabs(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
}

// RFC 7230 section 7: the non-empty elements of every field named `name`, read as
// comma-separated lists.
inline std::vector<std::string_view> list_elements(const duplex::protocol::http_head& head,
                                                   std::string_view name) {
    std::vector<std::string_view> out;
    for (const auto& f : head.fields()) {
        if (!same_ignoring_case(f.name, name)) continue;
        std::string_view rest = f.value;
        for (;;) {
            const std::size_t comma = rest.find(',');
            const std::string_view element = trim_spaces_and_tabs(rest.substr(0, comma));
            if (!element.empty()) out.push_back(element);
            if (comma == std::string_view::npos) break;
            rest.remove_prefix(comma + 1);
        }
    }
    return out;
}

inline bool has_element(const duplex::protocol::http_head& head, std::string_view name,
                        std::string_view token) {
    for (const auto element : list_elements(head, name))
        if (same_ignoring_case(element, token)) return true;
    return false;
}

inline std::size_t count_fields(const duplex::protocol::http_head& head, std::string_view name) {
    std::size_t n = 0;
    for (const auto& f : head.fields()) n += same_ignoring_case(f.name, name) ? 1U : 0U;
    return n;
}

inline std::optional<std::string_view> first_field(const duplex::protocol::http_head& head,
                                                   std::string_view name) {
    for (const auto& f : head.fields())
        if (same_ignoring_case(f.name, name)) return f.value;
    return std::nullopt;
}

// RFC 7230 section 3.2.6 tchar, spelled out once more.
inline bool is_token_text(std::string_view s) {
    if (s.empty()) return false;
    for (const char c : s) {
        const bool alnum =
            (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos)
            return false;
    }
    return true;
}

struct parse_outcome {
    duplex::protocol::progress status = duplex::protocol::progress::need_more;
    std::size_t consumed = 0;
    std::error_code error;
    duplex::protocol::http_head head; // when done
};

// Feeds `input` cut at `cuts` until the parser finishes, checking the feed() contract on the
// way: it never takes more than it was given, takes everything while it needs more, and once
// finished takes nothing and keeps its answer. The parser's own work is heap-metered.
inline parse_outcome parse_head(duplex::protocol::http_parser::kind kind,
                                duplex::protocol::http_limits limits, std::string_view input,
                                const std::vector<std::size_t>& cuts) {
    using duplex::protocol::progress;
    duplex::protocol::http_parser parser(kind, limits);
    parse_outcome out;
    for (const auto piece : pieces(input, cuts)) {
        duplex::protocol::http_parser::result r;
        {
            heap_meter::window counted;
            r = parser.feed(piece);
        }
        check(r.consumed <= piece.size(), "the parser took more than it was given");
        check(r.status == parser.status() && r.error == parser.error(), "result and state differ");
        out.consumed += r.consumed;
        if (r.status == progress::need_more) {
            check(r.consumed == piece.size() && !r.error, "need_more left bytes unread");
            continue;
        }
        check((r.status == progress::failed) == static_cast<bool>(r.error),
              "an error without failure, or failure without an error");
        const auto again = parser.feed(piece.substr(r.consumed));
        check(again.consumed == 0 && again.status == r.status && again.error == r.error,
              "a finished parser took more input");
        break;
    }
    out.status = parser.status();
    out.error = parser.error();
    if (out.status == progress::done) out.head = parser.head();
    return out;
}

inline bool same_head(const duplex::protocol::http_head& a, const duplex::protocol::http_head& b) {
    if (a.raw() != b.raw() || a.method() != b.method() || a.target() != b.target() ||
        a.status() != b.status() || a.reason() != b.reason() ||
        a.version_major() != b.version_major() || a.version_minor() != b.version_minor() ||
        a.fields().size() != b.fields().size())
        return false;
    for (std::size_t i = 0; i < a.fields().size(); ++i)
        if (a.fields()[i].name != b.fields()[i].name || a.fields()[i].value != b.fields()[i].value)
            return false;
    return true;
}

inline bool same_outcome(const parse_outcome& a, const parse_outcome& b) {
    return a.status == b.status && a.consumed == b.consumed && a.error == b.error &&
           same_head(a.head, b.head);
}

// Every view a head hands out lies inside its own raw bytes (copies included).
inline void check_views_inside(const duplex::protocol::http_head& head) {
    const std::string_view raw = head.raw();
    const auto inside = [&](std::string_view v) {
        return v.empty() ||
               (v.data() >= raw.data() && v.data() + v.size() <= raw.data() + raw.size());
    };
    check(inside(head.method()) && inside(head.target()) && inside(head.reason()),
          "a start-line view outside the head");
    for (const auto& f : head.fields())
        check(inside(f.name) && inside(f.value), "a field view outside the head");
}

// What the parser promises of a complete head: it is exactly the bytes up to and including
// the CRLF CRLF, within the limits, with token names and trimmed, control-free values.
inline void check_parsed_head(const duplex::protocol::http_head& head, std::string_view input,
                              std::size_t consumed, const duplex::protocol::http_limits& limits) {
    const std::string_view raw = head.raw();
    check(raw == input.substr(0, consumed), "raw() is not the bytes consumed");
    check(raw.size() >= 4 && raw.substr(raw.size() - 4) == "\r\n\r\n",
          "a head not ending in CRLF CRLF");
    check(raw.find("\r\n\r\n") == raw.size() - 4, "the parser read past the end of the head");
    check(raw.size() <= limits.max_head_size, "a head over the size limit");
    check(head.fields().size() <= limits.max_headers, "more fields than the limit");
    check(head.version_major() >= 0 && head.version_major() <= 9 && head.version_minor() >= 0 &&
              head.version_minor() <= 9,
          "a version that is not one digit each");
    for (const auto& f : head.fields()) {
        check(is_token_text(f.name), "a field name that is not a token");
        for (const char c : f.value) {
            const auto u = static_cast<unsigned char>(c);
            check(u == '\t' || (u >= 0x20 && u != 0x7F), "a control character in a field value");
        }
        check(trim_spaces_and_tabs(f.value) == f.value, "a field value with surrounding OWS");
        check(head.field(f.name) == first_field(head, f.name), "field() is not the first match");
        check(head.count(f.name) == count_fields(head, f.name), "count() miscounts");
        for (const auto element : list_elements(head, f.name))
            check(head.has_token(f.name, element), "has_token() misses a list element");
        check(head.tokens(f.name) == list_elements(head, f.name), "tokens() differs");
    }
    check_views_inside(head);
    const duplex::protocol::http_head copy = head;
    check(same_head(copy, head), "a copy of a head differs");
    check_views_inside(copy);
    duplex::protocol::http_head moved_from = copy;
    const duplex::protocol::http_head moved(std::move(moved_from));
    check(same_head(moved, head), "a moved head differs");
    check_views_inside(moved);
}

// A parsed Sec-WebSocket-Extensions value formats to text that parses back to the same list.
inline bool same_extensions(const std::vector<duplex::protocol::extension>& a,
                            const std::vector<duplex::protocol::extension>& b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        if (a[i].name != b[i].name || a[i].params.size() != b[i].params.size()) return false;
        for (std::size_t j = 0; j < a[i].params.size(); ++j)
            if (a[i].params[j].name != b[i].params[j].name ||
                a[i].params[j].value != b[i].params[j].value)
                return false;
    }
    return true;
}

inline void check_extensions_round_trip(std::string_view value) {
    using namespace duplex::protocol;
    std::vector<extension> parsed(1, extension{"already-there", {}});
    if (parse_extensions(value, parsed)) {
        check(parsed.size() == 1 && parsed[0].name == "already-there",
              "a failed parse_extensions() changed its output");
        return;
    }
    parsed.erase(parsed.begin());
    check(parsed.size() <= max_extensions, "more extensions than the limit");
    for (const auto& e : parsed) {
        check(is_token_text(e.name), "an extension name that is not a token");
        check(e.params.size() <= max_extension_params, "more parameters than the limit");
        for (const auto& p : e.params)
            check(is_token_text(p.name) && (!p.value || is_token_text(*p.value)),
                  "an extension parameter that is not a token");
    }
    const std::string text = format_extensions(parsed);
    check(is_field_value(text), "format_extensions() wrote a bad field value");
    std::vector<extension> again;
    check(!parse_extensions(text, again) && same_extensions(again, parsed),
          "formatted extensions do not parse back the same");
    check(format_extensions(again) == text, "format_extensions() is not stable");
}

// base64 of RFC 4648 section 4 without padding checks: decoding then encoding again gives
// back the text only when it was the canonical encoding.
inline std::string simple_base64_decode(std::string_view text) {
    std::string out;
    unsigned bits = 0;
    unsigned have = 0;
    for (const char c : text) {
        if (c == '=') break;
        const std::string_view alphabet =
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        const std::size_t v = alphabet.find(c);
        if (v == std::string_view::npos) return "not base64";
        bits = ((bits << 6U) | static_cast<unsigned>(v)) & 0xFFFFU;
        have += 6;
        if (have >= 8) {
            have -= 8;
            out += static_cast<char>((bits >> have) & 0xFFU);
        }
    }
    return out;
}

inline std::string simple_base64_encode(std::string_view bytes) {
    const std::string_view alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    unsigned bits = 0;
    unsigned have = 0;
    for (const char c : bytes) {
        bits = ((bits << 8U) | static_cast<unsigned char>(c)) & 0xFFFFU;
        have += 8;
        while (have >= 6) {
            have -= 6;
            out += alphabet[(bits >> have) & 0x3FU];
        }
    }
    if (have != 0) out += alphabet[(bits << (6 - have)) & 0x3FU];
    while (out.size() % 4 != 0) out += '=';
    return out;
}

} // namespace fuzz
