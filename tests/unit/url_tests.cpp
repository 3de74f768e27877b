// Tests of the client's URL parser: ws:// and wss:// URLs (RFC 6455 section 3) with the
// RFC 3986 authority, path and query rules, and the Host header built from them.
#include "catch.hpp"

#include "duplex/error.hpp"
#include "duplex/protocol/url.hpp"

#include <cstddef>
#include <string>
#include <system_error>

using namespace duplex::protocol;

namespace {

// Parses a URL that must be valid.
websocket_url parse_ok(const std::string& url) {
    INFO(url);
    websocket_url u;
    const std::error_code ec = parse_websocket_url(url, u);
    REQUIRE_FALSE(ec);
    return u;
}

// Whether a URL is refused with the malformed-URL error, leaving the output reset.
bool refused(const std::string& url) {
    websocket_url u;
    u.host = "stale";
    u.port = 1;
    const std::error_code ec = parse_websocket_url(url, u);
    return ec == duplex::protocol::detail::url_error && u.host.empty() && u.port == 0 &&
           u.target == "/" && !u.secure;
}

} // namespace

TEST_CASE("RFC 6455 3: ws and wss use the default ports 80 and 443") {
    const auto ws = parse_ok("ws://example.com/chat");
    CHECK_FALSE(ws.secure);
    CHECK(ws.host == "example.com");
    CHECK(ws.port == 80);
    CHECK(ws.target == "/chat");
    CHECK(ws.path == "/chat");
    CHECK(ws.query.empty());
    CHECK_FALSE(ws.ipv6_literal);
    CHECK_FALSE(ws.ipv4_literal);
    CHECK(ws.host_header() == "example.com");

    const auto wss = parse_ok("wss://example.com/chat");
    CHECK(wss.secure);
    CHECK(wss.port == 443);
    CHECK(wss.host_header() == "example.com");
}

TEST_CASE("RFC 6455 3: an explicit port is kept and named in the Host header unless default") {
    CHECK(parse_ok("ws://example.com:9001/").port == 9001);
    CHECK(parse_ok("ws://example.com:9001/").host_header() == "example.com:9001");
    CHECK(parse_ok("wss://example.com:8443").host_header() == "example.com:8443");
    CHECK(parse_ok("ws://example.com:1/").port == 1);
    CHECK(parse_ok("ws://example.com:65535/").port == 65535);

    SECTION("the default port written out is left out of the Host header") {
        CHECK(parse_ok("ws://example.com:80/").host_header() == "example.com");
        CHECK(parse_ok("wss://example.com:443/").host_header() == "example.com");
    }
    SECTION("the other scheme's default port is not a default") {
        CHECK(parse_ok("ws://example.com:443/").host_header() == "example.com:443");
        CHECK(parse_ok("wss://example.com:80/").host_header() == "example.com:80");
    }
    SECTION("RFC 3986 3.2.3: leading zeros in a port are allowed") {
        CHECK(parse_ok("ws://example.com:0080/").port == 80);
        CHECK(parse_ok("ws://example.com:000000009001/").port == 9001);
    }
    SECTION("RFC 3986 3.2.3: an empty port means the default") {
        CHECK(parse_ok("ws://example.com:/x").port == 80);
        CHECK(parse_ok("wss://example.com:").port == 443);
        CHECK(parse_ok("ws://[::1]:/").port == 80);
        CHECK(parse_ok("ws://example.com:/x").host_header() == "example.com");
    }
}

TEST_CASE("RFC 3986 3.2.3: port 0, ports over 65535 and non-digit ports are refused") {
    const std::string bad = GENERATE(
        as<std::string>{}, "ws://example.com:0/", "ws://example.com:00/", "ws://example.com:65536/",
        "ws://example.com:99999/", "ws://example.com:4294967377/",
        "ws://example.com:18446744073709551697/", "ws://example.com:http/", "ws://example.com:80a/",
        "ws://example.com:+80/", "ws://example.com:-1/", "ws://example.com:8:0/",
        "ws://example.com:0x50/", "ws://[::1]:0/", "ws://[::1]:65536/", "ws://[::1]:x/");
    INFO(bad);
    CHECK(refused(bad));
}

TEST_CASE("RFC 3986 3.2.2: dotted-decimal IPv4 hosts") {
    const auto u = parse_ok("ws://127.0.0.1:9001/echo");
    CHECK(u.host == "127.0.0.1");
    CHECK(u.port == 9001);
    CHECK(u.ipv4_literal);
    CHECK_FALSE(u.ipv6_literal);
    CHECK(u.ip_literal());
    CHECK(u.host_header() == "127.0.0.1:9001");
    CHECK(parse_ok("wss://0.0.0.0").host_header() == "0.0.0.0");
    CHECK(parse_ok("ws://255.255.255.255/").ipv4_literal);
    CHECK(parse_ok("ws://10.0.0.1").target == "/");

    SECTION("a host that only looks like a number in its last label is not IPv4") {
        const auto name = parse_ok("ws://1e100.net/");
        CHECK_FALSE(name.ipv4_literal);
        CHECK_FALSE(name.ip_literal());
        CHECK_FALSE(parse_ok("ws://127.0.0.1.example.com/").ipv4_literal);
    }
}

TEST_CASE("RFC 3986 3.2.2: numeric hosts that are not four dec-octets are refused") {
    // Resolvers read these as 127.0.0.1, octal, or hex; strict dotted decimal only.
    const std::string bad =
        GENERATE(as<std::string>{}, "ws://127.1/", "ws://2130706433/", "ws://127.0.0.1.1/",
                 "ws://256.0.0.1/", "ws://1.2.3.256/", "ws://010.0.0.1/", "ws://1.2.3.04/",
                 "ws://0x7f.0.0.1/", "ws://1.2.3.0x4/", "ws://127.0.0.1./", "ws://1..2.3/",
                 "ws://1.2.3.4444/", "ws://example.123/", "ws://example.0x1f/");
    INFO(bad);
    CHECK(refused(bad));
}

TEST_CASE("RFC 3986 3.2.2: IPv6 literals in brackets") {
    SECTION("loopback") {
        const auto u = parse_ok("ws://[::1]/");
        CHECK(u.host == "::1");
        CHECK(u.port == 80);
        CHECK(u.ipv6_literal);
        CHECK_FALSE(u.ipv4_literal);
        CHECK(u.ip_literal());
        CHECK(u.host_header() == "[::1]");
    }
    SECTION("with a port and a path") {
        const auto u = parse_ok("ws://[2001:db8::1]:9001/chat?room=1");
        CHECK(u.host == "2001:db8::1");
        CHECK(u.port == 9001);
        CHECK(u.target == "/chat?room=1");
        CHECK(u.host_header() == "[2001:db8::1]:9001");
    }
    SECTION("wss with the default port and no path") {
        const auto u = parse_ok("wss://[2001:db8::1]");
        CHECK(u.port == 443);
        CHECK(u.target == "/");
        CHECK(u.host_header() == "[2001:db8::1]");
    }
    SECTION("hex digits are lower-cased") {
        CHECK(parse_ok("ws://[2001:DB8::ABCD]/").host == "2001:db8::abcd");
    }
    SECTION("every form of the RFC 3986 grammar") {
        const std::string good = GENERATE(
            as<std::string>{}, "::", "::1", "1::", "1:2:3:4:5:6:7:8", "1::8",
            "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8", "1:2:3:4:5:6::8", "fe80::1",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "0:0:0:0:0:0:0:0", "::ffff:192.0.2.1",
            "::192.0.2.1", "1:2:3:4:5:6:192.0.2.1", "1::6:192.0.2.1", "64:ff9b::198.51.100.7");
        INFO(good);
        const auto u = parse_ok("ws://[" + good + "]:9001/");
        CHECK(u.host == good);
        CHECK(u.ipv6_literal);
        CHECK(u.host_header() == "[" + good + "]:9001");
    }
}

TEST_CASE("RFC 3986 3.2.2: malformed IPv6 literals and brackets are refused") {
    const std::string bad = GENERATE(
        as<std::string>{},
        // brackets
        "ws://[::1/", "ws://::1]/", "ws://::1/", "ws://[]/", "ws://[::1]x/", "ws://[::1]:80]/",
        "ws://[[::1]]/", "ws://[::1]]/", "ws://x[::1]/", "ws://[::1]@x/", "ws://[::1]:[80]/",
        // groups
        "ws://[1:2:3:4:5:6:7]/", "ws://[1:2:3:4:5:6:7:8:9]/", "ws://[1:2:3:4:5:6:7::8]/",
        "ws://[::1:2:3:4:5:6:7:8]/", "ws://[1::2::3]/", "ws://[:::]/", "ws://[1:::2]/",
        "ws://[:1::]/", "ws://[::1:]/", "ws://[1:2:3:4:5:6:7:]/", "ws://[:1:2:3:4:5:6:7:8]/",
        "ws://[12345::1]/", "ws://[g::1]/", "ws://[::1 ]/",
        // embedded IPv4 only at the end, and strict
        "ws://[::192.0.2.1:1]/", "ws://[192.0.2.1::]/", "ws://[::256.0.0.1]/", "ws://[::1.2.3]/",
        "ws://[::01.2.3.4]/", "ws://[1:2:3:4:5:6:7:1.2.3.4]/",
        // zone identifiers (RFC 6874) and IPvFuture are not accepted
        "ws://[fe80::1%25eth0]/", "ws://[fe80::1%eth0]/", "ws://[v1.fe80::1]/");
    INFO(bad);
    CHECK(refused(bad));
}

TEST_CASE("RFC 6455 3: only the ws and wss schemes, in any case") {
    CHECK_FALSE(parse_ok("WS://example.com/").secure);
    CHECK(parse_ok("WsS://example.com/").secure);
    CHECK(parse_ok("wSs://example.com/").port == 443);

    const std::string bad = GENERATE(
        as<std::string>{}, "http://example.com/", "https://example.com/", "ftp://example.com/",
        "wss2://example.com/", "w://example.com/", "xws://example.com/", "ws ://example.com/",
        "://example.com/", "example.com/", "//example.com/", "", "ws", "ws:", "wss:");
    INFO(bad);
    CHECK(refused(bad));
}

TEST_CASE("RFC 3986 3.2: an authority with a host is required") {
    const std::string bad =
        GENERATE(as<std::string>{}, "ws:example.com", "ws:/example.com/", "ws:///chat", "ws://",
                 "ws://:80/", "ws://?x", "wss:///", "ws:\\\\example.com/");
    INFO(bad);
    CHECK(refused(bad));
}

TEST_CASE("RFC 3986 3.2.1: userinfo is refused") {
    const std::string bad =
        GENERATE(as<std::string>{}, "ws://user@example.com/", "ws://user:pass@example.com/",
                 "ws://@example.com/", "ws://example.com@evil.com/", "wss://u@[::1]/",
                 "ws://user:pass@example.com:9001/");
    INFO(bad);
    CHECK(refused(bad));

    SECTION("an '@' after the authority is part of the path or query") {
        CHECK(parse_ok("ws://example.com/a@b?c@d").target == "/a@b?c@d");
    }
}

TEST_CASE("RFC 6455 3: a fragment identifier is refused") {
    const std::string bad = GENERATE(as<std::string>{}, "ws://example.com/#", "ws://example.com#",
                                     "ws://example.com/chat#top", "ws://example.com/?q=1#top",
                                     "wss://[::1]:9001/#x", "ws://exa#mple.com/");
    INFO(bad);
    CHECK(refused(bad));
}

TEST_CASE("RFC 3986 3.2.2, 6.2.2.1: the scheme and a reg-name host are case-insensitive") {
    const auto u = parse_ok("WSS://Example.COM:9001/Chat?Room=A");
    CHECK(u.secure);
    CHECK(u.host == "example.com");
    CHECK(u.host_header() == "example.com:9001");
    SECTION("the path and query keep their case") {
        CHECK(u.path == "/Chat");
        CHECK(u.query == "Room=A");
        CHECK(u.target == "/Chat?Room=A");
    }
}

TEST_CASE("RFC 3986 3.2.2: reg-name hosts") {
    CHECK(parse_ok("ws://localhost").host_header() == "localhost");
    CHECK(parse_ok("ws://my-host_1~x.example/").host == "my-host_1~x.example");
    CHECK(parse_ok("ws://a/").host == "a");
    SECTION("one trailing dot is kept") {
        const auto u = parse_ok("ws://example.com.:9001/");
        CHECK(u.host == "example.com.");
        CHECK(u.host_header() == "example.com.:9001");
    }
    SECTION("percent-encoding, sub-delims, empty labels and other characters are refused") {
        const std::string bad = GENERATE(
            as<std::string>{}, "ws://ex%61mple.com/", "ws://exa!mple.com/", "ws://a,b/",
            "ws://a;b/", "ws://a=b/", "ws://a+b/", "ws://a*b/", "ws://a$b/", "ws://a&b/",
            "ws://a'b/", "ws://a(b)/", "ws://a\"b/", "ws://a<b>/", "ws://a\\b/", "ws://a{b}/",
            "ws://a|b/", "ws://a^b/", "ws://a`b/", "ws://a]b/", "ws://.example.com/",
            "ws://example..com/", "ws://example.com../", "ws://./", "ws://../");
        INFO(bad);
        CHECK(refused(bad));
    }
}

TEST_CASE("RFC 6455 3: the query is kept raw in the target") {
    const auto u = parse_ok("ws://example.com/chat?room=a%20b&x=1/2?3:4@5");
    CHECK(u.path == "/chat");
    CHECK(u.query == "room=a%20b&x=1/2?3:4@5");
    CHECK(u.target == "/chat?room=a%20b&x=1/2?3:4@5");

    SECTION("a query with no path gets the path /") {
        const auto v = parse_ok("ws://example.com?x=1");
        CHECK(v.path == "/");
        CHECK(v.query == "x=1");
        CHECK(v.target == "/?x=1");
        CHECK(v.host_header() == "example.com");
    }
    SECTION("an empty query keeps its '?' in the target") {
        const auto v = parse_ok("ws://example.com/chat?");
        CHECK(v.path == "/chat");
        CHECK(v.query.empty());
        CHECK(v.target == "/chat?");
        CHECK(parse_ok("ws://example.com:9001?").target == "/?");
    }
}

TEST_CASE("RFC 6455 3: an empty path is sent as /") {
    const std::string url = GENERATE(as<std::string>{}, "ws://example.com", "ws://example.com:9001",
                                     "wss://[::1]", "ws://127.0.0.1:80", "ws://example.com:");
    const auto u = parse_ok(url);
    CHECK(u.path == "/");
    CHECK(u.target == "/");
    CHECK(u.query.empty());
}

TEST_CASE("RFC 3986 3.3: the path is kept as written") {
    const auto u = parse_ok("ws://example.com/a/../b/./c%2Fd//e;p=1,2:x@y!$&'()*+=-._~");
    CHECK(u.path == "/a/../b/./c%2Fd//e;p=1,2:x@y!$&'()*+=-._~");
    CHECK(u.target == u.path);
    CHECK(parse_ok("ws://example.com/%7e%7E").path == "/%7e%7E");
}

TEST_CASE("RFC 3986 2: characters not allowed in a path or query, and bad escapes, are refused") {
    const std::string bad = GENERATE(
        as<std::string>{}, "ws://example.com/a\"b", "ws://example.com/<x>", "ws://example.com/a\\b",
        "ws://example.com/a^b", "ws://example.com/a`b", "ws://example.com/{x}",
        "ws://example.com/a|b", "ws://example.com/[x]", "ws://example.com/?q={\"a\":1}",
        "ws://example.com/%", "ws://example.com/%4", "ws://example.com/%zz", "ws://example.com/%4g",
        "ws://example.com/?q=%", "ws://example.com/a%2");
    INFO(bad);
    CHECK(refused(bad));
}

TEST_CASE("RFC 6455 3, 4.1: controls, space and non-ASCII anywhere are refused") {
    const std::string base = "ws://example.com:9001/chat?room=1";
    // Every position: before, inside and after each part, so nothing can reach the request
    // line or the Host header.
    const std::string bad_char =
        GENERATE(as<std::string>{}, std::string(1, '\0'), "\r", "\n", "\r\n", "\t", " ", "\x7f",
                 "\x01", "\x1f", "\x80", "\xc3\xa9", "\xff");
    for (std::size_t i = 0; i <= base.size(); ++i) {
        std::string url = base;
        url.insert(i, bad_char);
        INFO("inserted at " << i);
        CHECK(refused(url));
    }
    SECTION("header injection through the host or the target") {
        CHECK(refused("ws://example.com\r\nX-Evil: 1/"));
        CHECK(refused("ws://example.com/ HTTP/1.1\r\nX-Evil: 1\r\n"));
        CHECK(refused("ws://example.com/?a=b HTTP/1.0"));
    }
    SECTION("nothing is trimmed") {
        CHECK(refused(" ws://example.com/"));
        CHECK(refused("ws://example.com/ "));
        CHECK(refused("ws://example.com/\n"));
    }
}

TEST_CASE("RFC 6455 3: URLs longer than max_url_size are refused") {
    const std::string prefix = "ws://example.com/";
    std::string url = prefix + std::string(max_url_size - prefix.size(), 'a');
    REQUIRE(url.size() == max_url_size);
    const auto u = parse_ok(url);
    CHECK(u.target.size() == max_url_size - prefix.size() + 1);

    url += 'a';
    CHECK(refused(url));
    CHECK(refused(std::string(1024 * 1024, 'a')));
    CHECK(refused("ws://example.com/" + std::string(1024 * 1024, 'a')));
}

TEST_CASE("host_header() for every form of host") {
    struct row {
        const char* url;
        const char* host_header;
    };
    const row r = GENERATE(values<row>({
        {"ws://example.com", "example.com"},
        {"ws://example.com:80", "example.com"},
        {"ws://example.com:81", "example.com:81"},
        {"wss://example.com", "example.com"},
        {"wss://example.com:443", "example.com"},
        {"wss://example.com:444", "example.com:444"},
        {"ws://EXAMPLE.com:9001", "example.com:9001"},
        {"ws://192.0.2.1", "192.0.2.1"},
        {"ws://192.0.2.1:8080", "192.0.2.1:8080"},
        {"wss://192.0.2.1:443", "192.0.2.1"},
        {"ws://[::1]", "[::1]"},
        {"ws://[::1]:80", "[::1]"},
        {"ws://[::1]:9001", "[::1]:9001"},
        {"wss://[2001:DB8::1]", "[2001:db8::1]"},
        {"wss://[2001:db8::1]:9001", "[2001:db8::1]:9001"},
        {"ws://[::ffff:192.0.2.1]:81", "[::ffff:192.0.2.1]:81"},
    }));
    INFO(r.url);
    CHECK(parse_ok(r.url).host_header() == r.host_header);
}

TEST_CASE("parse_websocket_url: the error is a duplex::error") {
    websocket_url u;
    const std::error_code ec = parse_websocket_url("http://example.com/", u);
    CHECK(ec.category() == duplex::error_category());
    CHECK_FALSE(ec.message().empty());

    SECTION("a websocket_url can be reused") {
        REQUIRE_FALSE(parse_websocket_url("wss://[::1]:9001/a?b", u));
        REQUIRE_FALSE(parse_websocket_url("ws://example.com", u));
        CHECK_FALSE(u.secure);
        CHECK_FALSE(u.ipv6_literal);
        CHECK(u.host == "example.com");
        CHECK(u.port == 80);
        CHECK(u.path == "/");
        CHECK(u.query.empty());
        CHECK(u.target == "/");
    }
}

TEST_CASE("ws+unix: the socket path, then the request target after the first colon") {
    const auto u = parse_ok("ws+unix:///run/app/ws.sock:/chat?room=1");
    CHECK(u.socket_path == "/run/app/ws.sock");
    CHECK(u.target == "/chat?room=1");
    CHECK(u.path == "/chat");
    CHECK(u.query == "room=1");
    CHECK_FALSE(u.secure);
    CHECK(u.host_header() == "localhost"); // what Node's ws sends over a Unix socket

    // Without "//", without a target, with an empty target, with only a query; any case.
    CHECK(parse_ok("ws+unix:/tmp/s.sock:/x").socket_path == "/tmp/s.sock");
    CHECK(parse_ok("ws+unix:/tmp/s.sock:/x").target == "/x");
    CHECK(parse_ok("ws+unix:///tmp/s.sock").target == "/");
    CHECK(parse_ok("ws+unix:///tmp/s.sock").socket_path == "/tmp/s.sock");
    CHECK(parse_ok("ws+unix:///tmp/s.sock:").target == "/");
    CHECK(parse_ok("ws+unix:///tmp/s.sock:?a=b").target == "/?a=b");
    CHECK(parse_ok("WS+UNIX:///tmp/s.sock:/y").socket_path == "/tmp/s.sock");
    // The path is taken as written: nothing is decoded.
    CHECK(parse_ok("ws+unix:///tmp/a%20b:/").socket_path == "/tmp/a%20b");
}

TEST_CASE("ws+unix: relative paths, authorities, bad targets and wss+unix are refused") {
    const std::string bad = GENERATE(
        as<std::string>{}, "ws+unix:", "ws+unix://", "ws+unix:relative.sock:/x",
        "ws+unix://localhost/tmp/s.sock", "ws+unix:///tmp/s.sock:chat", "ws+unix:///tmp/s?x:/",
        "ws+unix:///tmp/s.sock:/a b", "ws+unix:///tmp/s.sock:/#frag", "wss+unix:///tmp/s.sock",
        "ws+unix:///tmp/s.sock:/<x>", "ws+unix:///tmp/s\x01.sock:/");
    INFO(bad);
    CHECK(refused(bad));
    websocket_url u;
    u.socket_path = "stale";
    (void)parse_websocket_url(bad, u);
    CHECK(u.socket_path.empty());
}
