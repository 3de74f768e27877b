// Tests of the Redis backplane's sans-I/O parts: the RESP2/RESP3 codec (every type, fed at
// every split point, every limit, malformed input) and redis:// / rediss:// URLs.
#include "catch.hpp"

#include <duplex/redis/resp.hpp>
#include <duplex/redis/url.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

using namespace duplex::redis;
using namespace std::string_literals;

namespace {

struct outcome {
    std::vector<resp_value> values;
    std::error_code error;
};

// Feeds `wire` in pieces of the given sizes (the last piece takes the rest).
outcome feed(std::string_view wire, const std::vector<std::size_t>& cuts, resp_limits limits = {}) {
    resp_parser parser(limits);
    outcome result;
    std::size_t at = 0;
    std::size_t piece = 0;
    while (at < wire.size()) {
        const std::size_t n =
            piece < cuts.size() ? std::min(cuts[piece], wire.size() - at) : wire.size() - at;
        ++piece;
        std::string_view chunk = wire.substr(at, n);
        at += n;
        resp_value v;
        for (;;) {
            const auto status = parser.parse(chunk, v);
            if (status == duplex::protocol::progress::done) {
                result.values.push_back(v);
                continue;
            }
            if (status == duplex::protocol::progress::failed) {
                result.error = parser.error();
                return result;
            }
            break;
        }
    }
    return result;
}

outcome feed_whole(std::string_view wire, resp_limits limits = {}) {
    return feed(wire, {}, limits);
}

// The wire parsed whole, split once at every position, and one byte at a time: all the same.
outcome feed_every_split(std::string_view wire, resp_limits limits = {}) {
    const outcome whole = feed_whole(wire, limits);
    for (std::size_t cut = 1; cut < wire.size(); ++cut) {
        const outcome split = feed(wire, {cut}, limits);
        INFO("split at " << cut);
        CHECK(split.error == whole.error);
        CHECK(split.values == whole.values);
    }
    const outcome bytes = feed(wire, std::vector<std::size_t>(wire.size(), 1), limits);
    CHECK(bytes.error == whole.error);
    CHECK(bytes.values == whole.values);
    return whole;
}

resp_value str(resp_type t, std::string s) {
    resp_value v;
    v.type = t;
    v.text = std::move(s);
    return v;
}

resp_value num(std::int64_t n) {
    resp_value v;
    v.type = resp_type::integer;
    v.integer = n;
    return v;
}

resp_value agg(resp_type t, std::vector<resp_value> elements) {
    resp_value v;
    v.type = t;
    v.elements = std::move(elements);
    return v;
}

} // namespace

TEST_CASE("RESP2: every type parses the same fed whole, at every split point and bytewise",
          "[resp]") {
    const std::string wire = "+OK\r\n-ERR unknown command\r\n:-42\r\n$5\r\nhe\r\no\r\n$0\r\n\r\n"
                             "$-1\r\n*-1\r\n*3\r\n$7\r\nmessage\r\n$2\r\nch\r\n:1\r\n*0\r\n";
    const outcome out = feed_every_split(wire);
    REQUIRE_FALSE(out.error);
    REQUIRE(out.values.size() == 9);
    CHECK(out.values[0] == str(resp_type::simple_string, "OK"));
    CHECK(out.values[1] == str(resp_type::error, "ERR unknown command"));
    CHECK(out.values[1].is_error());
    CHECK(out.values[2] == num(-42));
    CHECK(out.values[3] == str(resp_type::bulk_string, std::string("he\r\no")));
    CHECK(out.values[4] == str(resp_type::bulk_string, ""));
    CHECK(out.values[5].type == resp_type::null);
    CHECK(out.values[6].type == resp_type::null);
    CHECK(out.values[7] == agg(resp_type::array, {str(resp_type::bulk_string, "message"),
                                                  str(resp_type::bulk_string, "ch"), num(1)}));
    CHECK(out.values[8] == agg(resp_type::array, {}));
}

TEST_CASE("RESP3: null, boolean, double, big number, blob error, verbatim, map, set, push",
          "[resp]") {
    const std::string wire = "_\r\n#t\r\n#f\r\n,3.25\r\n,-inf\r\n(-12345678901234567890\r\n"
                             "!8\r\nERR a\r\nb\r\n=8\r\ntxt:some\r\n%2\r\n+a\r\n:1\r\n+b\r\n_\r\n"
                             "~2\r\n:1\r\n:2\r\n>3\r\n+message\r\n+room\r\n$3\r\n\0\1\2\r\n"s;
    const outcome out = feed_every_split(wire);
    REQUIRE_FALSE(out.error);
    REQUIRE(out.values.size() == 11);
    CHECK(out.values[0].type == resp_type::null);
    CHECK((out.values[1].type == resp_type::boolean && out.values[1].integer == 1));
    CHECK((out.values[2].type == resp_type::boolean && out.values[2].integer == 0));
    CHECK(out.values[3] == str(resp_type::double_value, "3.25"));
    CHECK(out.values[4] == str(resp_type::double_value, "-inf"));
    CHECK(out.values[5] == str(resp_type::big_number, "-12345678901234567890"));
    CHECK(out.values[6] == str(resp_type::bulk_error, "ERR a\r\nb"));
    CHECK(out.values[7] == str(resp_type::verbatim, "some"));
    CHECK(out.values[8] == agg(resp_type::map, {str(resp_type::simple_string, "a"), num(1),
                                                str(resp_type::simple_string, "b"), resp_value{}}));
    CHECK(out.values[9] == agg(resp_type::set, {num(1), num(2)}));
    CHECK(out.values[10] ==
          agg(resp_type::push,
              {str(resp_type::simple_string, "message"), str(resp_type::simple_string, "room"),
               str(resp_type::bulk_string, std::string("\0\1\2", 3))}));
}

TEST_CASE("RESP3: an attribute is read and dropped, at top level and inside an aggregate",
          "[resp]") {
    const std::string wire = "|1\r\n+ttl\r\n:3\r\n:7\r\n*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n"
                             "|0\r\n+x\r\n";
    const outcome out = feed_every_split(wire);
    REQUIRE_FALSE(out.error);
    REQUIRE(out.values.size() == 3);
    CHECK(out.values[0] == num(7));
    CHECK(out.values[1] == agg(resp_type::array, {num(1), num(2)}));
    CHECK(out.values[2] == str(resp_type::simple_string, "x"));
}

TEST_CASE("RESP: nested aggregates and a value after them keep their order", "[resp]") {
    const std::string wire = "*2\r\n*2\r\n:1\r\n*1\r\n:2\r\n%1\r\n+k\r\n*0\r\n+after\r\n";
    const outcome out = feed_every_split(wire);
    REQUIRE_FALSE(out.error);
    REQUIRE(out.values.size() == 2);
    CHECK(out.values[0] ==
          agg(resp_type::array, {agg(resp_type::array, {num(1), agg(resp_type::array, {num(2)})}),
                                 agg(resp_type::map, {str(resp_type::simple_string, "k"),
                                                      agg(resp_type::array, {})})}));
    CHECK(out.values[1] == str(resp_type::simple_string, "after"));
}

TEST_CASE("RESP: the values before a malformed one are delivered, then the parser stays failed",
          "[resp]") {
    resp_parser parser;
    std::string_view in = "+one\r\n?bad\r\n+two\r\n";
    resp_value v;
    REQUIRE(parser.parse(in, v) == duplex::protocol::progress::done);
    CHECK(v == str(resp_type::simple_string, "one"));
    CHECK(parser.parse(in, v) == duplex::protocol::progress::failed);
    CHECK(parser.error() == resp_errc::bad_type);
    std::string_view more = "+three\r\n";
    CHECK(parser.parse(more, v) == duplex::protocol::progress::failed);
    parser.reset();
    CHECK(parser.parse(more, v) == duplex::protocol::progress::done);
    CHECK(v == str(resp_type::simple_string, "three"));
}

TEST_CASE("RESP: malformed input is an error code, at every split point", "[resp]") {
    struct bad_case {
        const char* wire;
        resp_errc error;
    };
    const bad_case cases[] = {
        {"?\r\n", resp_errc::bad_type},
        {"\r\n", resp_errc::bad_type},
        {"+OK\n", resp_errc::bad_line_ending},
        {"+O\rK\r\n", resp_errc::bad_line_ending},
        {"$3\r\nabcXY", resp_errc::bad_line_ending},
        {"$3\r\nabc\rX", resp_errc::bad_line_ending},
        {":12a\r\n", resp_errc::bad_integer},
        {":\r\n", resp_errc::bad_integer},
        {":+1\r\n", resp_errc::bad_integer},
        {":9223372036854775808\r\n", resp_errc::bad_integer},
        {"$-2\r\n", resp_errc::bad_length},
        {"$+3\r\n", resp_errc::bad_length},
        {"$ 3\r\n", resp_errc::bad_length},
        {"*-1x\r\n", resp_errc::bad_length},
        {"%-1\r\n", resp_errc::bad_length}, // only RESP2's $ and * have a null form
        {"!-1\r\n", resp_errc::bad_length},
        {"$?\r\n", resp_errc::streamed_not_supported},
        {"*?\r\n", resp_errc::streamed_not_supported},
        {"#x\r\n", resp_errc::bad_value},
        {"_x\r\n", resp_errc::bad_value},
        {",\r\n", resp_errc::bad_value},
        {",1x\r\n", resp_errc::bad_value},
        {"(12a\r\n", resp_errc::bad_value},
        {"=3\r\ntxt\r\n", resp_errc::bad_value},
        {"=5\r\ntxt-a\r\n", resp_errc::bad_value},
    };
    for (const auto& c : cases) {
        INFO(c.wire);
        const outcome out = feed_every_split(c.wire);
        CHECK(out.values.empty());
        CHECK(out.error == c.error);
    }
    // The extremes of a 64-bit integer are accepted.
    const outcome extremes = feed_whole(":9223372036854775807\r\n:-9223372036854775808\r\n");
    REQUIRE(extremes.values.size() == 2);
    CHECK(extremes.values[0].integer == INT64_MAX);
    CHECK(extremes.values[1].integer == INT64_MIN);
}

TEST_CASE("RESP: every limit is enforced before memory is spent, at every split point", "[resp]") {
    resp_limits limits;
    limits.max_line = 8;
    limits.max_bulk = 10;
    limits.max_elements = 4;
    limits.max_total_elements = 6;
    limits.max_depth = 2;

    // A line's limit counts its type byte, not its CRLF.
    CHECK(feed_every_split("+1234567\r\n", limits).values.size() == 1);
    CHECK(feed_every_split("+12345678\r\n", limits).error == resp_errc::line_too_long);
    // The limit holds even when no line end ever arrives.
    CHECK(feed_whole("+123456789012345", limits).error == resp_errc::line_too_long);
    CHECK(feed_every_split("$10\r\n0123456789\r\n", limits).values.size() == 1);
    // A huge length is refused at its header: nothing waits for 2^62 bytes.
    CHECK(feed_every_split("$11\r\n", limits).error == resp_errc::bulk_too_long);
    CHECK(feed_whole("$4611686018427387904\r\n", {}).error == resp_errc::bulk_too_long);
    CHECK(feed_every_split("*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n", limits).values.size() == 1);
    CHECK(feed_every_split("*5\r\n", limits).error == resp_errc::too_many_elements);
    CHECK(feed_every_split("%3\r\n", limits).error == resp_errc::too_many_elements);
    CHECK(feed_whole("*99999999999\r\n", {}).error == resp_errc::too_many_elements);
    CHECK(feed_every_split("*1\r\n*1\r\n:1\r\n", limits).values.size() == 1);
    CHECK(feed_every_split("*1\r\n*1\r\n*1\r\n", limits).error == resp_errc::too_deep);
    // 1 + 4 + 1 + 1 values: over the total of 6 though each aggregate is within its own limit.
    CHECK(feed_every_split("*2\r\n*4\r\n:1\r\n:2\r\n:3\r\n:4\r\n*1\r\n", limits).error ==
          resp_errc::too_many_elements);
    // The total is per top-level value: six small values in a row are fine.
    CHECK(feed_every_split(":1\r\n:2\r\n:3\r\n:4\r\n:5\r\n:6\r\n:7\r\n", limits).values.size() ==
          7);
}

TEST_CASE("RESP: append_command writes a binary-safe array of bulk strings that parses back",
          "[resp]") {
    std::string wire;
    const std::string binary = "a\0\r\nb"s;
    append_command(wire, {"PUBLISH", "room:x", binary});
    CHECK(wire == "*3\r\n$7\r\nPUBLISH\r\n$6\r\nroom:x\r\n$5\r\na\0\r\nb\r\n"s);
    const outcome out = feed_every_split(wire);
    REQUIRE(out.values.size() == 1);
    CHECK(out.values[0] == agg(resp_type::array, {str(resp_type::bulk_string, "PUBLISH"),
                                                  str(resp_type::bulk_string, "room:x"),
                                                  str(resp_type::bulk_string, binary)}));
    std::vector<std::string> args{"SUBSCRIBE", "a", "b"};
    std::string list;
    append_command(list, args);
    CHECK(list == "*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n");
}

TEST_CASE("RESP: append_value writes what parses back to the same value", "[resp]") {
    const std::string wire = "%2\r\n+a\r\n*3\r\n:-9\r\n#t\r\n,1.5\r\n$1\r\nb\r\n~1\r\n(77\r\n"
                             ">2\r\n!3\r\nERR\r\n=5\r\nmkd:x\r\n_\r\n-E\r\n";
    const outcome first = feed_whole(wire);
    REQUIRE_FALSE(first.error);
    std::string again;
    for (const auto& v : first.values) append_value(again, v);
    const outcome second = feed_every_split(again);
    CHECK(second.values == first.values);
}

TEST_CASE("Redis URLs: host, port, db, user and password, and rediss://", "[redis-url]") {
    redis_url u;
    REQUIRE_FALSE(parse_redis_url("redis://127.0.0.1:6380/2", u));
    CHECK_FALSE(u.secure);
    CHECK(u.host == "127.0.0.1");
    CHECK(u.port == 6380);
    CHECK(u.db == 2);
    CHECK_FALSE(u.has_password);

    REQUIRE_FALSE(parse_redis_url("REDISS://Cache.Example.com", u));
    CHECK(u.secure);
    CHECK(u.host == "cache.example.com");
    CHECK(u.port == 6379);
    CHECK(u.db == 0);

    REQUIRE_FALSE(parse_redis_url("redis://app:p%40ss%3Aw@[::1]:7000/", u));
    CHECK(u.host == "::1");
    CHECK(u.port == 7000);
    CHECK(u.user == "app");
    CHECK(u.password == "p@ss:w");
    CHECK(u.has_password);

    REQUIRE_FALSE(parse_redis_url("redis://:secret@localhost/15", u));
    CHECK(u.user.empty());
    CHECK(u.password == "secret");
    CHECK(u.db == 15);

    REQUIRE_FALSE(parse_redis_url("redis://secret@localhost", u));
    CHECK(u.password == "secret");
}

TEST_CASE("Redis URLs: malformed ones are refused and leave the output alone", "[redis-url]") {
    const char* bad[] = {
        "",
        "redis:/host",
        "http://host",
        "redis://",
        "redis://host:",
        "redis://host:0",
        "redis://host:65536",
        "redis://host:12x",
        "redis://host/x",
        "redis://host/-1",
        "redis://host/1?x=1",
        "redis://host#f",
        "redis://ho st",
        "redis://host\r\n",
        "redis://user:@host",
        "redis://us%zzer:p@host",
        "redis://[::1",
        "redis://[::1]x",
        "redis://[nothex]",
        "redis://a@b@",
        "redis://h%41st",
    };
    for (const char* text : bad) {
        INFO(text);
        redis_url u;
        u.host = "stale";
        CHECK(parse_redis_url(text, u) == resp_errc::bad_url);
        CHECK(u.host == "stale");
    }
}
