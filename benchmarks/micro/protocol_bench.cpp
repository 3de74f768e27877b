// Micro benchmarks of the protocol layer's hot paths: masking, UTF-8 validation, the frame
// header codec, and parsing many small frames through a session; memcpy of the same sizes is
// the reference line. Run: build/release/benchmarks/duplex_micro_bench (benchmarks/run.sh runs
// it and puts the table in docs/benchmarks.md).
#include <duplex/protocol/frame.hpp>
#include <duplex/protocol/mask.hpp>
#include <duplex/protocol/session.hpp>
#include <duplex/protocol/utf8.hpp>

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

using namespace duplex::protocol;

namespace {

void bm_memcpy(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    std::vector<char> src(size, 'x'), dst(size);
    for (auto _ : state) {
        std::memcpy(dst.data(), src.data(), size);
        benchmark::DoNotOptimize(dst.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

// Masking in place, `range(1)` bytes past a 64-byte boundary (a payload starts wherever its
// header ended), and at key phase 1 when misaligned, so that the rotated key is used as well.
void bm_mask(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const auto misalign = static_cast<std::size_t>(state.range(1));
    std::vector<char> storage(size + misalign + 64, 'x');
    char* start = storage.data();
    start += (64 - reinterpret_cast<std::uintptr_t>(start) % 64) % 64 + misalign;
    const std::size_t phase = misalign == 0 ? 0 : 1;
    for (auto _ : state) {
        apply_mask(start, size, 0x12345678, phase);
        benchmark::DoNotOptimize(start);
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

// How a server unmasks a 64 KiB payload that arrives in reads of one TCP segment (1,448 bytes
// of payload each): piece by piece with the running offset, most pieces misaligned.
void bm_mask_pieces(benchmark::State& state) {
    constexpr std::size_t size = 64 * 1024, piece = 1448;
    std::vector<char> buffer(size, 'x');
    for (auto _ : state) {
        std::size_t offset = 0;
        for (std::size_t at = 0; at < size; at += piece)
            offset = apply_mask(buffer.data() + at, std::min(piece, size - at), 0x12345678, offset);
        benchmark::DoNotOptimize(buffer.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(size));
}

std::string sample_text(int kind, std::size_t size) {
    // 0: ASCII, 1: Latin with accents, 2: CJK, 3: emoji
    const char* unit[] = {"hello world ", "caf\xC3\xA9 na\xC3\xAFve ", "\xE4\xB8\xAD\xE6\x96\x87",
                          "\xF0\x9F\x98\x80\xF0\x9F\x8E\x89"};
    std::string text;
    while (text.size() < size) text += unit[kind];
    while (!is_valid_utf8(text.substr(0, size))) --size; // end on a code point boundary
    return text.substr(0, size);
}

void bm_utf8(benchmark::State& state) {
    const std::string text = sample_text(static_cast<int>(state.range(0)), 64 * 1024);
    for (auto _ : state) benchmark::DoNotOptimize(is_valid_utf8(text));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
}

// The three length forms of RFC 6455 5.2: 7-bit, 16-bit and 64-bit.
constexpr std::int64_t header_payload_sizes[] = {20, 1000, 100000};

// A server encodes unmasked headers.
void bm_frame_header_encode(benchmark::State& state) {
    frame_header header;
    header.op = opcode::binary;
    header.payload_size = static_cast<std::uint64_t>(state.range(0));
    unsigned char out[max_frame_header_size];
    for (auto _ : state) {
        benchmark::DoNotOptimize(header);
        benchmark::DoNotOptimize(encode_frame_header(header, out));
        benchmark::ClobberMemory();
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// A server decodes masked headers.
void bm_frame_header_decode(benchmark::State& state) {
    frame_header header;
    header.op = opcode::binary;
    header.masked = true;
    header.mask = 0x12345678;
    header.payload_size = static_cast<std::uint64_t>(state.range(0));
    unsigned char wire[max_frame_header_size];
    const std::size_t size = encode_frame_header(header, wire);
    frame_header decoded;
    for (auto _ : state) {
        benchmark::DoNotOptimize(wire);
        benchmark::DoNotOptimize(decode_frame_header(wire, size, decoded));
        benchmark::DoNotOptimize(decoded);
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

// A server session parsing 1,000 masked 20-byte text frames from one buffer.
void bm_parse_small_frames(benchmark::State& state) {
    session client(role::client, {}, {1, 2, 3, 4, 5, 6, 7, 8});
    for (int i = 0; i < 1000; ++i) (void)client.send_text("twenty bytes of text");
    const std::string wire(client.pending_output());
    std::string buffer;
    std::size_t messages = 0;
    for (auto _ : state) {
        state.PauseTiming();
        buffer = wire; // the session unmasks in place
        session server(role::server);
        state.ResumeTiming();
        char* data = buffer.data();
        std::size_t size = buffer.size();
        for (;;) {
            auto r = server.receive(data, size);
            data += r.consumed;
            size -= r.consumed;
            if (r.ev.type == event_type::none) break;
            ++messages;
        }
    }
    benchmark::DoNotOptimize(messages);
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 1000));
    state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(wire.size()));
}

void bm_encode_small_frames(benchmark::State& state) {
    session server(role::server);
    for (auto _ : state) {
        for (int i = 0; i < 1000; ++i) (void)server.send_text("twenty bytes of text");
        server.consume_output(server.pending_output().size());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 1000));
}

// 6 B to 1 MiB: a tiny command, a chat message, typical JSON messages, the 16 KiB echo of the
// load benchmark, and sizes that leave the L1 and L2. 125 is the longest 7-bit length, and with
// 6, 20 and 64 it leaves every remainder the wide loops hand to the narrower ones.
const std::vector<std::int64_t> buffer_sizes = {6,    20,        64,        125,
                                                1024, 16 * 1024, 64 * 1024, 1024 * 1024};

} // namespace

BENCHMARK(bm_memcpy)->ArgsProduct({buffer_sizes});
// A payload starts wherever the header ended: misaligned by 3 as well as aligned.
BENCHMARK(bm_mask)->ArgsProduct({buffer_sizes, {0, 3}});
BENCHMARK(bm_mask_pieces);
BENCHMARK(bm_utf8)->DenseRange(0, 3);
BENCHMARK(bm_frame_header_encode)
    ->Arg(header_payload_sizes[0])
    ->Arg(header_payload_sizes[1])
    ->Arg(header_payload_sizes[2]);
BENCHMARK(bm_frame_header_decode)
    ->Arg(header_payload_sizes[0])
    ->Arg(header_payload_sizes[1])
    ->Arg(header_payload_sizes[2]);
BENCHMARK(bm_parse_small_frames);
BENCHMARK(bm_encode_small_frames);
BENCHMARK_MAIN();
