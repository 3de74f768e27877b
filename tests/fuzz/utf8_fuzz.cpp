// libFuzzer target: the incremental UTF-8 validator (utf8.hpp), differentially against the
// reference decoder in fuzz_support.hpp, which reads RFC 3629 from code point values (no
// overlongs, no surrogates, nothing above U+10FFFF) instead of the library's byte-range table.
// On every input it checks, whole and incrementally:
//   * feed() accepts exactly the texts the reference accepts, and valid_prefix() is the
//     reference's fail-fast position: the first byte after which no continuation could make
//     the text valid;
//   * complete() says whether the text so far ends between code points, after every piece;
//   * cut in two at every point (inputs up to 512 bytes; 64 points beyond), one byte at a
//     time, and at pseudo-random points, the answers are the same as whole;
//   * a failed validator stays failed (valid_prefix() 0) until reset(), and is reusable after;
//   * is_valid_utf8() agrees with the reference.
// The text is copied to each of the eight alignments, since the validator reads whole words
// on its ASCII fast path; AddressSanitizer catches a read past the end.
//
// Input layout: byte 0 bits 0-2 the alignment, bits 3-7 the split seed; then the text.
#include "fuzz_support.hpp"

#include <duplex/protocol/utf8.hpp>

#include <cstdint>
#include <cstring>
#include <memory>
#include <string_view>
#include <vector>

using namespace duplex::protocol;
using fuzz::check;

namespace {

// Feeds `text` in the pieces given and checks every answer against the reference: where the
// text fails (`fail_at`, or text.size()) and whether each prefix ends between code points.
void check_pieces(std::string_view text, const std::vector<std::size_t>& cuts, std::size_t fail_at,
                  const std::vector<bool>& complete_after) {
    utf8_validator v;
    std::size_t begin = 0;
    for (const auto piece : fuzz::pieces(text, cuts)) {
        const bool ok = v.feed(piece.data(), piece.size());
        const std::size_t end = begin + piece.size();
        if (fail_at < begin) {
            check(!ok && v.valid_prefix() == 0 && v.failed(), "a failed validator recovered");
        } else if (fail_at < end) {
            check(!ok && v.valid_prefix() == fail_at - begin && v.failed(),
                  "failed at another byte than the reference");
        } else {
            check(ok && v.valid_prefix() == piece.size() && !v.failed(),
                  "refused text the reference accepts");
            check(v.complete() == complete_after[end], "complete() differs from the reference");
        }
        if (!ok) check(!v.complete(), "complete() after a failure");
        begin = end;
    }
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size < 1) return 0;
    const std::size_t alignment = data[0] & 7U;
    const unsigned split_seed = data[0] >> 3U;
    const std::size_t n = size - 1;
    // Exactly n bytes after the alignment padding, so a word read past the end is caught.
    const std::unique_ptr<char[]> buffer(new char[alignment + n]);
    if (n != 0) std::memcpy(buffer.get() + alignment, data + 1, n);
    const std::string_view text(buffer.get() + alignment, n);

    std::vector<bool> complete_after(n + 1);
    std::size_t fail_at = n;
    {
        fuzz::reference_utf8 reference;
        complete_after[0] = true;
        for (std::size_t i = 0; i < n; ++i) {
            if (!reference.feed(static_cast<unsigned char>(text[i]))) {
                fail_at = i;
                break;
            }
            complete_after[i + 1] = reference.complete();
        }
    }
    const bool valid = fail_at == n && complete_after[n];

    utf8_validator whole;
    check(whole.complete() && !whole.failed(), "a fresh validator is not complete");
    const bool ok = whole.feed(text.data(), text.size());
    check(ok == (fail_at == n), "feed() differs from the reference");
    check(whole.valid_prefix() == fail_at, "valid_prefix() is not the fail-fast position");
    check(whole.complete() == valid, "complete() differs from the reference");
    check(is_valid_utf8(text) == valid, "is_valid_utf8() differs from the reference");
    if (!ok) {
        check(!whole.feed("a", 1) && whole.valid_prefix() == 0 && whole.failed(),
              "a failed validator accepted more");
        whole.reset();
        check(whole.feed(text.substr(0, fail_at)) && whole.valid_prefix() == fail_at,
              "reset() did not make the validator reusable");
        check(whole.complete() == complete_after[fail_at], "complete() after reset()");
    }

    check_pieces(text, {}, fail_at, complete_after);
    check_pieces(text, fuzz::every_cut(n), fail_at, complete_after);
    check_pieces(text, fuzz::random_cuts(split_seed, n), fail_at, complete_after);
    // Empty pieces included: cutting at 0 or at n feeds an empty piece first or last.
    if (n <= 512) {
        for (std::size_t cut = 0; cut <= n; ++cut)
            check_pieces(text, {cut}, fail_at, complete_after);
    } else {
        for (std::size_t k = 0; k < 64; ++k)
            check_pieces(text, {(k * n / 64 + split_seed) % n}, fail_at, complete_after);
    }
    return 0;
}
