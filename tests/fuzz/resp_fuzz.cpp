// libFuzzer target: the RESP2/RESP3 parser (redis/resp.hpp) that reads everything a Redis
// server (or whatever answers on its port) sends to the backplane. On every input:
//   * parsed whole, at pseudo-random split points chosen by the first byte, and one byte at
//     a time, it yields the same values and the same error (the parser is a function of the
//     bytes, not of how they arrive);
//   * every value respects the limits: strings no longer than max_bulk (or max_line), no
//     aggregate with more than max_elements elements, nesting no deeper than max_depth;
//   * each value written back with append_value parses to the same value;
//   * the heap the parser keeps stays bounded by the limits, not by lengths in the input.
//
// Input: one byte seeding the split points, then the bytes a server would send.
#include "fuzz_support.hpp"

#include <duplex/redis/resp.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

using namespace duplex::redis;
using fuzz::check;

namespace {

resp_limits fuzz_limits() {
    resp_limits limits;
    limits.max_line = 512;
    limits.max_bulk = 4096;
    limits.max_elements = 256;
    limits.max_total_elements = 1024;
    limits.max_depth = 8;
    return limits;
}

struct outcome {
    std::vector<resp_value> values;
    std::error_code error;
};

outcome parse_pieces(const std::vector<std::string_view>& pieces) {
    resp_parser parser(fuzz_limits());
    outcome out;
    for (std::string_view piece : pieces) {
        resp_value v;
        for (;;) {
            const duplex::protocol::progress status = parser.parse(piece, v);
            if (status == duplex::protocol::progress::done) {
                out.values.push_back(std::move(v));
                v = {};
                continue;
            }
            if (status == duplex::protocol::progress::failed) {
                check(parser.failed(), "failed status without an error");
                out.error = parser.error();
                return out;
            }
            check(piece.empty(), "need_more left input unconsumed");
            break;
        }
    }
    return out;
}

void check_bounds(const resp_value& v, std::size_t depth) {
    const resp_limits limits = fuzz_limits();
    check(depth <= limits.max_depth, "aggregates nested deeper than max_depth");
    check(v.text.size() <= limits.max_bulk, "a string over max_bulk");
    check(v.elements.size() <= limits.max_elements, "an aggregate over max_elements");
    check(v.is_aggregate() || v.elements.empty(), "a scalar with elements");
    check(v.type != resp_type::map || v.elements.size() % 2 == 0, "a map with an odd count");
    for (const auto& e : v.elements) check_bounds(e, depth + 1);
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const unsigned seed = data[0];
    const std::string_view wire(reinterpret_cast<const char*>(data + 1), size - 1);

    fuzz::heap_meter::start();
    outcome whole;
    {
        fuzz::heap_meter::window w;
        whole = parse_pieces({wire});
    }
    // Values of at most 1024 elements of at most 4 KiB each, in all, plus the vectors'
    // growth: far below this unless a length from the input drove an allocation.
    check(fuzz::heap_meter::peak() <= 16LL * 1024 * 1024, "parser heap not bounded by limits");

    const outcome split = parse_pieces(fuzz::pieces(wire, fuzz::random_cuts(seed, wire.size())));
    check(split.error == whole.error, "split input: a different error");
    check(split.values == whole.values, "split input: different values");
    if (wire.size() <= 512) {
        const outcome bytes = parse_pieces(fuzz::pieces(wire, fuzz::every_cut(wire.size())));
        check(bytes.error == whole.error, "bytewise input: a different error");
        check(bytes.values == whole.values, "bytewise input: different values");
    }

    for (const auto& v : whole.values) {
        check_bounds(v, 0);
        std::string again;
        append_value(again, v);
        const outcome reparsed = parse_pieces({again});
        check(!reparsed.error, "a written value does not parse");
        check(reparsed.values.size() == 1 && reparsed.values[0] == v,
              "a written value parses differently");
    }
    return 0;
}
