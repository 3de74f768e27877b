// Micro benchmarks of the protocol layer's hot paths: masking, UTF-8 validation, and parsing
// many small frames through a session. Run: build/release/benchmarks/duplex_micro_bench
#include <duplex/protocol/mask.hpp>
#include <duplex/protocol/session.hpp>
#include <duplex/protocol/utf8.hpp>

#include <benchmark/benchmark.h>

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
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
}

void bm_mask(benchmark::State& state) {
    const auto size = static_cast<std::size_t>(state.range(0));
    const auto misalign = static_cast<std::size_t>(state.range(1));
    std::vector<char> buffer(size + misalign, 'x');
    for (auto _ : state) {
        apply_mask(buffer.data() + misalign, size, 0x12345678, 0);
        benchmark::DoNotOptimize(buffer.data());
        benchmark::ClobberMemory();
    }
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * size));
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
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * text.size()));
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
    state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * wire.size()));
}

void bm_encode_small_frames(benchmark::State& state) {
    session server(role::server);
    for (auto _ : state) {
        for (int i = 0; i < 1000; ++i) (void)server.send_text("twenty bytes of text");
        server.consume_output(server.pending_output().size());
    }
    state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * 1000));
}

} // namespace

BENCHMARK(bm_memcpy)->Arg(16)->Arg(1024)->Arg(64 * 1024)->Arg(1024 * 1024);
BENCHMARK(bm_mask)->ArgsProduct({{16, 1024, 64 * 1024, 1024 * 1024}, {0, 3}});
BENCHMARK(bm_utf8)->DenseRange(0, 3);
BENCHMARK(bm_parse_small_frames);
BENCHMARK(bm_encode_small_frames);
BENCHMARK_MAIN();
