// wsload — a neutral WebSocket load generator for comparing servers.
//
// It shares no code with duplex (it includes no duplex header): raw non-blocking sockets, one
// epoll loop on one thread, a fixed HTTP upgrade request, and frames encoded and parsed by the
// few lines below. Every server is then measured by the same client, and a bug or a shortcut
// in duplex's own connection code cannot flatter duplex.
//
//   wsload echo      --port P [--connections 100] [--size 20] [--in-flight 1]
//                    [--duration 5] [--warmup 1] [--text] [--server-pid PID] [--json]
//   wsload broadcast --port P [--subscribers 10000] [--publishers 1] [--in-flight 1]
//                    [--size 32] [...]
//   wsload idle      --port P --server-pid PID [--connections 5000] [--touch]
//   wsload connect   --port P [--concurrency 32] [--duration 5] [--warmup 1] [...]
//
// Every mode but connect takes --deflate: offer permessage-deflate (RFC 7692) as browsers do
// ("permessage-deflate; client_max_window_bits"), fail a connection whose server does not
// agree, compress every message sent (zlib level 6, memLevel 8, with or without context
// takeover as agreed) and inflate every compressed message received, which is then checked as
// any other. zlib is used directly. --json-like makes the payload JSON-like text (records of
// ids, names and flags, as chat and market-data messages are) instead of a letter pattern.
//
// echo: each connection keeps --in-flight messages outstanding and sends the next one when an
//   echo arrives; reports messages/s, payload MB/s (one direction) and round-trip latency.
//   Every echo is compared byte for byte with what was sent.
// broadcast: --subscribers connections upgrade on /sub, --publishers on /pub. Each publisher
//   keeps --in-flight messages outstanding: it sends a message stamped with its send time, its
//   own number and a sequence number, and sends the next one each time an earlier one has
//   reached every subscriber. Every subscriber checks that each publisher's messages arrive
//   exactly once and in order; a duplicate, a message out of order or one that never arrives
//   (none for 10 seconds) is a violation, counted, reported and failing the run. Reports
//   deliveries/s and the delay from publishing to each delivery. Before the measurement, a
//   probe message is published until one reaches every subscriber, so that a server that adds
//   members to its room only after the 101 has them all in it when counting starts.
// idle: opens --connections upgraded connections on / and reports how much the server's
//   resident set (VmRSS in /proc/PID/status) grew per connection. --touch first exchanges one
//   message on each, to count what a server keeps after a connection was used.
// connect: --concurrency handshakes at a time, each connection reset as soon as the 101
//   arrives; reports handshakes/s and the time from connect() to the 101.
//
// With --server-pid it also reads the server's CPU time (utime + stime in /proc/PID/stat)
// before and after the measured window, so that throughput can be given per second of server
// CPU: a figure that does not depend on whether the generator's core was the bottleneck.
// Connections end with a reset (SO_LINGER 0), which leaves no TIME_WAIT behind to exhaust the
// loopback's ephemeral ports across many runs. Exit status 0 only if nothing went wrong:
// every handshake answered 101, every echo matched, no connection was lost, and some work was
// measured.
#include "../common/open_files.hpp"
#ifdef WSLOAD_HAVE_ZLIB
#include <zlib.h>
#endif
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace {

std::uint64_t now_ns() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<std::uint64_t>(ts.tv_sec) * 1000000000U +
           static_cast<std::uint64_t>(ts.tv_nsec);
}

constexpr std::uint64_t one_second_ns = 1000000000U;

double seconds_between(std::uint64_t from_ns, std::uint64_t to_ns) {
    return static_cast<double>(to_ns - from_ns) / 1e9;
}

// ---- options ----------------------------------------------------------------------------------

enum class mode { echo, broadcast, idle, connect };

// A broadcast payload starts with its send time (8 bytes), its sequence number (8) and its
// publisher's number (4), in the generator's byte order (only the generator reads them).
constexpr std::size_t broadcast_stamp_size = 20;
// The publisher number of the probe messages that wait for every subscriber to be in the room.
constexpr std::uint32_t probe_publisher = 0xFFFFFFFFU;

struct options {
    mode what = mode::echo;
    std::string host = "127.0.0.1";
    std::uint16_t port = 9001;
    std::size_t connections = 100; // echo, idle
    std::size_t subscribers = 10000;
    std::size_t publishers = 1;
    std::size_t size = 0; // 0: the mode's default
    std::size_t in_flight = 1;
    std::size_t concurrency = 32; // handshakes in progress at once
    double duration = 5;
    double warmup = 1;
    bool text = false;
    bool json_like = false; // JSON-like text payloads (implies text)
    bool deflate = false;   // offer permessage-deflate and compress what is sent
    bool touch = false;
    bool json = false;
    int server_pid = 0;
    std::size_t max_message = 64U << 20; // a longer frame from the server is an error
};

[[noreturn]] void usage() {
    std::fputs("usage: wsload echo|broadcast|idle|connect --port P [--host H] [--connections N]\n"
               "         [--subscribers N] [--publishers N] [--size BYTES] [--in-flight N]\n"
               "         [--concurrency N]\n"
               "         [--duration S] [--warmup S] [--text] [--json-like] [--deflate]"
               " [--touch]\n"
               "         [--server-pid PID] [--json]\n",
               stderr);
    std::exit(2);
}

options parse_options(int argc, char** argv) {
    if (argc < 2) usage();
    options o;
    const std::string m = argv[1];
    if (m == "echo")
        o.what = mode::echo;
    else if (m == "broadcast")
        o.what = mode::broadcast;
    else if (m == "idle")
        o.what = mode::idle;
    else if (m == "connect")
        o.what = mode::connect;
    else
        usage();
    for (int i = 2; i < argc; ++i) {
        const std::string flag = argv[i];
        if (flag == "--text") {
            o.text = true;
            continue;
        }
        if (flag == "--json-like") {
            o.text = o.json_like = true;
            continue;
        }
        if (flag == "--deflate") {
#ifndef WSLOAD_HAVE_ZLIB
            std::fputs("wsload: built without zlib, no --deflate\n", stderr);
            std::exit(2);
#endif
            o.deflate = true;
            continue;
        }
        if (flag == "--touch") {
            o.touch = true;
            continue;
        }
        if (flag == "--json") {
            o.json = true;
            continue;
        }
        if (i + 1 >= argc) usage();
        const std::string value = argv[++i];
        if (flag == "--host")
            o.host = value;
        else if (flag == "--port")
            o.port = static_cast<std::uint16_t>(std::stoul(value));
        else if (flag == "--connections")
            o.connections = std::stoul(value);
        else if (flag == "--subscribers")
            o.subscribers = std::stoul(value);
        else if (flag == "--publishers")
            o.publishers = std::max<std::size_t>(1, std::stoul(value));
        else if (flag == "--size")
            o.size = std::stoul(value);
        else if (flag == "--in-flight")
            o.in_flight = std::max<std::size_t>(1, std::stoul(value));
        else if (flag == "--concurrency")
            o.concurrency = std::max<std::size_t>(1, std::stoul(value));
        else if (flag == "--duration")
            o.duration = std::stod(value);
        else if (flag == "--warmup")
            o.warmup = std::stod(value);
        else if (flag == "--server-pid")
            o.server_pid = std::stoi(value);
        else
            usage();
    }
    if (o.size == 0) o.size = o.what == mode::broadcast ? 32 : 20;
    if (o.what == mode::broadcast) o.size = std::max<std::size_t>(o.size, broadcast_stamp_size);
    if (o.what == mode::idle && o.server_pid == 0) {
        std::fputs("wsload idle needs --server-pid\n", stderr);
        std::exit(2);
    }
    return o;
}

// ---- the server process, seen from /proc ------------------------------------------------------

// utime + stime of every thread of the process, in seconds; negative if it cannot be read.
double process_cpu_seconds(int pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string stat((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
    // The command name (field 2) is in parentheses and may hold spaces: count from its end.
    const auto close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) return -1;
    std::istringstream fields(stat.substr(close_paren + 1));
    std::string field;
    unsigned long long utime = 0, stime = 0;
    for (int index = 3; fields >> field; ++index) {
        if (index == 14) utime = std::stoull(field);
        if (index == 15) {
            stime = std::stoull(field);
            break;
        }
    }
    return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

long resident_kib(int pid) {
    std::ifstream status("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(status, line))
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    return -1;
}

double own_cpu_seconds() {
    rusage usage{};
    getrusage(RUSAGE_SELF, &usage);
    const auto seconds = [](const timeval& t) {
        return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

// ---- latency ----------------------------------------------------------------------------------

// Log-linear histogram of nanoseconds: 64 buckets per power of two, so any percentile is within
// 1.6 % of the true value, in fixed memory however many samples arrive.
class latency_histogram {
public:
    void add(std::uint64_t ns) {
        ++counts_[bucket_of(ns)];
        ++total_;
    }
    std::uint64_t total() const { return total_; }

    // In microseconds; 0 without samples.
    double percentile(double fraction) const {
        if (total_ == 0) return 0;
        const auto rank = static_cast<std::uint64_t>(fraction * static_cast<double>(total_ - 1));
        std::uint64_t seen = 0;
        for (std::size_t b = 0; b < counts_.size(); ++b) {
            seen += counts_[b];
            if (seen > rank) return static_cast<double>(middle_of(b)) / 1000.0;
        }
        return 0;
    }

private:
    static constexpr unsigned sub_bits = 6;
    static constexpr std::size_t per_power = std::size_t{1} << sub_bits;

    static std::size_t bucket_of(std::uint64_t v) {
        if (v < per_power) return static_cast<std::size_t>(v);
        const auto top = static_cast<unsigned>(63 - __builtin_clzll(v));
        return (top - sub_bits + 1) * per_power +
               static_cast<std::size_t>((v >> (top - sub_bits)) & (per_power - 1));
    }
    static std::uint64_t middle_of(std::size_t b) {
        if (b < per_power) return b;
        const auto top = static_cast<unsigned>(b / per_power + sub_bits - 1);
        const std::uint64_t low = (per_power + b % per_power) << (top - sub_bits);
        return low + ((std::uint64_t{1} << (top - sub_bits)) >> 1);
    }

    std::vector<std::uint64_t> counts_ = std::vector<std::uint64_t>(per_power * per_power);
    std::uint64_t total_ = 0;
};

// ---- frames -----------------------------------------------------------------------------------

constexpr unsigned op_continuation = 0x0, op_text = 0x1, op_binary = 0x2, op_close = 0x8,
                   op_ping = 0x9, op_pong = 0xA;

// xorshift64*: masking keys and handshake keys need to vary, not to be secret.
std::uint64_t random_state = 0x9E3779B97F4A7C15ULL;
std::uint64_t next_random() {
    random_state ^= random_state >> 12;
    random_state ^= random_state << 25;
    random_state ^= random_state >> 27;
    return random_state * 0x2545F4914F6CDD1DULL;
}

// XOR with a 4-byte key that starts at payload offset 0, eight bytes per step.
void apply_mask(unsigned char* data, std::size_t size, const unsigned char key[4]) {
    unsigned char pattern[8];
    for (std::size_t i = 0; i < 8; ++i) pattern[i] = key[i & 3U];
    std::uint64_t wide;
    std::memcpy(&wide, pattern, 8);
    std::size_t i = 0;
    for (; i + 8 <= size; i += 8) {
        std::uint64_t w;
        std::memcpy(&w, data + i, 8);
        w ^= wide;
        std::memcpy(data + i, &w, 8);
    }
    for (; i < size; ++i) data[i] = static_cast<unsigned char>(data[i] ^ pattern[i & 7U]);
}

// Appends one masked client frame (RFC 6455 5.2: clients mask every frame) to `out`; the
// payload's first `prefix_size` bytes are replaced by `prefix` (a sequence number stamp).
// `compressed` sets RSV1 (RFC 7692 6).
void append_client_frame(std::vector<unsigned char>& out, unsigned opcode,
                         const unsigned char* payload, std::size_t size,
                         const unsigned char* prefix = nullptr, std::size_t prefix_size = 0,
                         bool compressed = false) {
    unsigned char header[14];
    std::size_t n = 2;
    header[0] = static_cast<unsigned char>(0x80U | (compressed ? 0x40U : 0U) | opcode);
    if (size < 126) {
        header[1] = static_cast<unsigned char>(0x80U | size);
    } else if (size <= 0xFFFF) {
        header[1] = 0x80U | 126U;
        header[2] = static_cast<unsigned char>(size >> 8);
        header[3] = static_cast<unsigned char>(size);
        n = 4;
    } else {
        header[1] = 0x80U | 127U;
        for (unsigned i = 0; i < 8; ++i)
            header[2 + i] = static_cast<unsigned char>(std::uint64_t{size} >> (56 - 8 * i));
        n = 10;
    }
    const auto key = static_cast<std::uint32_t>(next_random());
    std::memcpy(header + n, &key, 4);
    const unsigned char* key_bytes = header + n;
    n += 4;
    const std::size_t start = out.size();
    out.resize(start + n + size);
    std::memcpy(out.data() + start, header, n);
    if (size != 0) std::memcpy(out.data() + start + n, payload, size);
    if (prefix_size != 0) std::memcpy(out.data() + start + n, prefix, prefix_size);
    apply_mask(out.data() + start + n, size, key_bytes);
}

struct frame {
    bool fin = false;
    bool compressed = false; // RSV1
    unsigned opcode = 0;
    unsigned char* payload = nullptr;
    std::size_t size = 0;
};

enum class parse_status { ok, need_more, bad };

// Parses one frame at `data` (7-, 16- and 64-bit lengths; a masked frame, as a raw TCP echo
// returns it, is unmasked in place). Sets `consumed` to the frame's length on ok.
parse_status parse_frame(unsigned char* data, std::size_t size, std::size_t max_payload, frame& f,
                         std::size_t& consumed) {
    if (size < 2) return parse_status::need_more;
    f.fin = (data[0] & 0x80U) != 0;
    f.compressed = (data[0] & 0x40U) != 0;
    f.opcode = data[0] & 0x0FU;
    const bool masked = (data[1] & 0x80U) != 0;
    std::uint64_t length = data[1] & 0x7FU;
    std::size_t header = 2;
    if (length == 126) {
        if (size < 4) return parse_status::need_more;
        length = (std::uint64_t{data[2]} << 8) | data[3];
        header = 4;
    } else if (length == 127) {
        if (size < 10) return parse_status::need_more;
        length = 0;
        for (std::size_t i = 0; i < 8; ++i) length = (length << 8) | data[2 + i];
        header = 10;
    }
    if (length > max_payload) return parse_status::bad;
    const std::size_t mask_at = header;
    if (masked) header += 4;
    const auto payload_size = static_cast<std::size_t>(length);
    if (size < header + payload_size) return parse_status::need_more;
    f.payload = data + header;
    f.size = payload_size;
    if (masked) apply_mask(f.payload, f.size, data + mask_at);
    consumed = header + payload_size;
    return parse_status::ok;
}

std::string base64_of_16(const unsigned char bytes[16]) {
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string out;
    for (std::size_t i = 0; i < 15; i += 3) {
        const unsigned v =
            (unsigned{bytes[i]} << 16) | (unsigned{bytes[i + 1]} << 8) | bytes[i + 2];
        out += alphabet[(v >> 18) & 63U];
        out += alphabet[(v >> 12) & 63U];
        out += alphabet[(v >> 6) & 63U];
        out += alphabet[v & 63U];
    }
    out += alphabet[bytes[15] >> 2];
    out += alphabet[(bytes[15] & 3U) << 4];
    out += "==";
    return out;
}

std::string upgrade_request(const std::string& host, std::uint16_t port, const char* path,
                            bool deflate) {
    unsigned char key[16];
    for (std::size_t i = 0; i < 16; i += 8) {
        const std::uint64_t r = next_random();
        std::memcpy(key + i, &r, 8);
    }
    return std::string("GET ") + path + " HTTP/1.1\r\nHost: " + host + ":" + std::to_string(port) +
           "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
           base64_of_16(key) + "\r\nSec-WebSocket-Version: 13\r\n" +
           (deflate ? "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n"
                    : "") +
           "\r\n";
}

// The payload of echo message `sequence` is a fixed pattern whose first bytes are replaced by
// this stamp of the sequence number (hex digits for text, so that it stays UTF-8): a reordered,
// duplicated or corrupted echo does not compare equal. Returns the stamp's length.
constexpr std::size_t max_stamp = 16;
std::size_t stamp(unsigned char out[max_stamp], std::size_t payload_size, std::uint64_t sequence,
                  bool text) {
    const std::size_t n = std::min<std::size_t>(payload_size, text ? 16 : 8);
    for (std::size_t i = 0; i < n; ++i) {
        const auto digit = static_cast<unsigned>((sequence >> (4 * i)) & 0xFU);
        out[i] = text ? static_cast<unsigned char>("0123456789abcdef"[digit])
                      : static_cast<unsigned char>(sequence >> (8 * i));
    }
    return n;
}

// ---- permessage-deflate ------------------------------------------------------------------------

// A connection's zlib streams, allocated when first needed (an idle connection holds none).
struct deflate_state {
    // As agreed in the 101 (RFC 7692 7.1): the server's compressor is our decompressor.
    bool server_no_context_takeover = false;
    bool client_no_context_takeover = false;
    int server_window = 15;
    int client_window = 15;
#ifdef WSLOAD_HAVE_ZLIB
    z_stream out{};
    z_stream in{};
    bool out_live = false;
    bool in_live = false;

    deflate_state() = default;
    deflate_state(const deflate_state&) = delete;
    deflate_state& operator=(const deflate_state&) = delete;
    ~deflate_state() { release(); }
    void release() {
        if (out_live) deflateEnd(&out);
        if (in_live) inflateEnd(&in);
        out_live = in_live = false;
    }

    // RFC 7692 7.2.1: a sync flush, its 00 00 ff ff removed. False if zlib fails.
    bool compress(const unsigned char* data, std::size_t size, std::vector<unsigned char>& result) {
        if (!out_live) {
            out = z_stream{};
            // zlib's raw deflate has no 256-byte window: 9 is what a peer with 8 accepts too.
            if (deflateInit2(&out, 6, Z_DEFLATED, -std::max(client_window, 9), 8,
                             Z_DEFAULT_STRATEGY) != Z_OK)
                return false;
            out_live = true;
        }
        result.resize(deflateBound(&out, static_cast<uLong>(size)) + 16);
        out.next_in = const_cast<Bytef*>(data);
        out.avail_in = static_cast<uInt>(size);
        out.next_out = result.data();
        out.avail_out = static_cast<uInt>(result.size());
        if (deflate(&out, Z_SYNC_FLUSH) != Z_OK || out.avail_in != 0 || out.avail_out == 0)
            return false;
        result.resize(result.size() - out.avail_out - 4);
        if (client_no_context_takeover) deflateReset(&out);
        return true;
    }

    // RFC 7692 7.2.2: the trailer put back, then inflated. False on bad data.
    bool inflate_message(const unsigned char* data, std::size_t size,
                         std::vector<unsigned char>& result) {
        if (!in_live) {
            in = z_stream{};
            if (inflateInit2(&in, -15) != Z_OK) return false;
            in_live = true;
        }
        static const unsigned char trailer[4] = {0x00, 0x00, 0xff, 0xff};
        result.clear();
        for (int part = 0; part < 2; ++part) {
            in.next_in = const_cast<Bytef*>(part == 0 ? data : trailer);
            in.avail_in = static_cast<uInt>(part == 0 ? size : 4);
            for (;;) {
                const std::size_t at = result.size();
                result.resize(at + std::max<std::size_t>(4 * size, 16384));
                in.next_out = result.data() + at;
                in.avail_out = static_cast<uInt>(result.size() - at);
                const int rc = ::inflate(&in, Z_SYNC_FLUSH);
                const bool full = in.avail_out == 0;
                result.resize(result.size() - in.avail_out);
                if (rc == Z_STREAM_END) {
                    inflateReset(&in); // a final block: the next message starts afresh
                    break;
                }
                if (rc != Z_OK && rc != Z_BUF_ERROR) return false;
                if (in.avail_in == 0 && !full) break;
            }
        }
        if (server_no_context_takeover) inflateReset(&in);
        return true;
    }
#endif
};

// Reads the agreed parameters from the 101's Sec-WebSocket-Extensions; false if the server did
// not agree to permessage-deflate.
bool parse_deflate_response(std::string_view head, deflate_state& d) {
    const auto at = head.find("permessage-deflate");
    if (at == std::string_view::npos) return false;
    const auto end = head.find("\r\n", at);
    const std::string_view element = head.substr(at, end - at);
    d.server_no_context_takeover = element.find("server_no_context_takeover") != element.npos;
    d.client_no_context_takeover = element.find("client_no_context_takeover") != element.npos;
    const auto bits = [&](std::string_view name, int& out) {
        const auto p = element.find(name);
        if (p != element.npos && p + name.size() + 1 < element.size() &&
            element[p + name.size()] == '=')
            out = std::atoi(std::string(element.substr(p + name.size() + 1, 2)).c_str());
    };
    bits("server_max_window_bits", d.server_window);
    bits("client_max_window_bits", d.client_window);
    return true;
}

// ---- connections ------------------------------------------------------------------------------

enum class conn_state { connecting, upgrading, open, done };
enum class conn_role { echo, subscriber, publisher, idle, handshake_only };

struct connection {
    int fd = -1;
    conn_state state = conn_state::connecting;
    conn_role role = conn_role::echo;
    std::string request;
    std::vector<unsigned char> pending_in; // bytes of an incomplete frame, kept for the next read
    std::vector<unsigned char> message;    // a fragmented message being reassembled
    unsigned message_opcode = 0;
    bool message_compressed = false;
    std::unique_ptr<deflate_state> deflate; // permessage-deflate, when agreed
    std::vector<unsigned char> out;
    std::size_t out_offset = 0;
    bool watching_writable = false;
    std::uint64_t started_ns = 0;
    // echo
    std::uint64_t next_send = 0;
    std::uint64_t next_expected = 0;
    std::vector<std::uint64_t> sent_ns; // ring of in_flight send times
    std::uint64_t echoed = 0;
    bool touch_sent = false; // idle --touch
    // broadcast, on a subscriber: the sequence number expected next from each publisher
    std::vector<std::uint64_t> expected;
};

// One publisher of a broadcast run and its messages still on their way.
struct publisher_state {
    std::size_t conn = 0;          // its connection
    std::uint64_t next = 0;        // the sequence number it publishes next
    std::uint64_t oldest = 0;      // every message before this one reached every subscriber
    std::vector<std::size_t> seen; // ring of in_flight: subscribers that have sequence s
    std::uint64_t progress_ns = 0; // when it last published or one of its messages arrived
};

struct window_counters {
    std::uint64_t messages = 0;
    std::uint64_t bytes = 0;
    std::uint64_t deliveries = 0;
    std::uint64_t handshakes = 0;
    std::uint64_t compressed_bytes = 0; // payload bytes of compressed messages received
};

class generator {
public:
    explicit generator(const options& o) : o_(o) {
        epoll_ = epoll_create1(EPOLL_CLOEXEC);
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_port = htons(o.port);
        if (inet_pton(AF_INET, o.host.c_str(), &address.sin_addr) != 1) {
            std::fprintf(stderr, "wsload: --host must be an IPv4 address\n");
            std::exit(2);
        }
        address_ = address;
        read_buffer_.resize(256 * 1024);
        template_payload_.resize(o.size);
        for (std::size_t i = 0; i < o.size; ++i)
            template_payload_[i] = static_cast<unsigned char>(o.text ? 'a' + i % 26 : i * 7 + 1);
        if (o.json_like) {
            std::string json = "[";
            for (unsigned i = 0; json.size() < o.size; ++i)
                json += "{\"id\":" + std::to_string(100000 + i * 37) + ",\"user\":\"user" +
                        std::to_string(i % 13) +
                        "\",\"price\":" + std::to_string(1000 + i * 7 % 97) + "." +
                        std::to_string(i % 10) + ",\"open\":" + (i % 3 ? "true" : "false") +
                        ",\"tags\":[\"a\",\"b" + std::to_string(i % 4) + "\"]},";
            std::copy_n(json.begin(), o.size, template_payload_.begin());
        }
        bench::raise_open_file_limit();
    }

    int run() {
        switch (o_.what) {
        case mode::echo: return run_echo();
        case mode::broadcast: return run_broadcast();
        case mode::idle: return run_idle();
        case mode::connect: return run_connect();
        }
        return 2;
    }

private:
    // ---- the event loop ----

    void fail(const char* what, const connection* c = nullptr) {
        ++errors_;
        if (errors_ <= 5)
            std::fprintf(stderr, "wsload: %s%s%s\n", what, c ? " on fd " : "",
                         c ? std::to_string(c->fd).c_str() : "");
    }

    std::size_t start_connection(conn_role role, const char* path) {
        const int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            fail("socket() failed (file descriptor limit?)");
            return npos;
        }
        const int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        spread_source_address(fd);
        std::size_t index;
        if (!free_slots_.empty()) {
            index = free_slots_.back();
            free_slots_.pop_back();
            conns_[index] = connection{};
        } else {
            index = conns_.size();
            conns_.emplace_back();
        }
        connection& c = conns_[index];
        c.fd = fd;
        c.role = role;
        c.started_ns = now_ns();
        c.request = upgrade_request(o_.host, o_.port, path,
                                    o_.deflate && role != conn_role::handshake_only);
        epoll_event ev{};
        ev.events = EPOLLIN | EPOLLOUT;
        ev.data.u64 = index;
        c.watching_writable = true;
        epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev);
        ++in_progress_;
        const int r = connect(fd, reinterpret_cast<const sockaddr*>(&address_), sizeof address_);
        if (r != 0 && errno != EINPROGRESS) {
            fail("connect() failed");
            finish(index);
        }
        return index;
    }

    // One source address has about 28,000 ephemeral ports towards one server port: past
    // ports_per_source connections to a loopback server, each further block of them comes
    // from the next 127.0.0.x (every 127/8 address is the loopback interface's), so that idle
    // runs of 100,000 connections are possible where the file descriptor limit allows them.
    void spread_source_address(int fd) {
        constexpr std::size_t ports_per_source = 20000;
        const std::size_t block = started_++ / ports_per_source;
        if (block == 0 || (ntohl(address_.sin_addr.s_addr) >> 24) != 127) return;
        const int one = 1;
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        sockaddr_in source{};
        source.sin_family = AF_INET;
        source.sin_addr.s_addr = htonl((127U << 24) | static_cast<std::uint32_t>(block + 1));
        if (bind(fd, reinterpret_cast<const sockaddr*>(&source), sizeof source) != 0)
            fail("bind() to a further loopback source address failed");
    }

    // Resets the connection (no TIME_WAIT) and frees its slot.
    void finish(std::size_t index) {
        connection& c = conns_[index];
        if (c.state == conn_state::done) return;
        if (c.state != conn_state::open) --in_progress_;
        c.state = conn_state::done;
        const linger reset{1, 0};
        setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
        close(c.fd);
        c.fd = -1;
        c = connection{};
        c.state = conn_state::done;
        free_slots_.push_back(index);
    }

    void finish_all() {
        for (std::size_t i = 0; i < conns_.size(); ++i)
            if (conns_[i].state != conn_state::done) finish(i);
    }

    void watch_writable(std::size_t index, bool on) {
        connection& c = conns_[index];
        if (c.watching_writable == on) return;
        c.watching_writable = on;
        epoll_event ev{};
        ev.events = EPOLLIN | (on ? EPOLLOUT : 0U);
        ev.data.u64 = index;
        epoll_ctl(epoll_, EPOLL_CTL_MOD, c.fd, &ev);
    }

    // Writes what is queued; what the socket does not take waits for EPOLLOUT.
    void flush(std::size_t index) {
        connection& c = conns_[index];
        while (c.out_offset < c.out.size()) {
            const ssize_t n =
                send(c.fd, c.out.data() + c.out_offset, c.out.size() - c.out_offset, MSG_NOSIGNAL);
            if (n < 0) {
                if (errno == EAGAIN || errno == EWOULDBLOCK) break;
                if (errno == EINTR) continue;
                fail("send() failed", &c);
                finish(index);
                return;
            }
            c.out_offset += static_cast<std::size_t>(n);
        }
        if (c.out_offset == c.out.size()) {
            c.out.clear();
            c.out_offset = 0;
        }
        watch_writable(index, !c.out.empty());
    }

    void on_writable(std::size_t index) {
        connection& c = conns_[index];
        if (c.state == conn_state::connecting) {
            int error = 0;
            socklen_t length = sizeof error;
            getsockopt(c.fd, SOL_SOCKET, SO_ERROR, &error, &length);
            if (error != 0) {
                fail(std::strerror(error), &c);
                finish(index);
                return;
            }
            c.state = conn_state::upgrading;
            c.out.assign(c.request.begin(), c.request.end());
        }
        flush(index);
    }

    void on_readable(std::size_t index) {
        connection* c = &conns_[index];
        // Bytes left from the previous read go first, then the new ones, in one buffer.
        const std::size_t carried = c->pending_in.size();
        if (read_buffer_.size() < carried + 64 * 1024) read_buffer_.resize(carried + 256 * 1024);
        if (carried != 0) std::memcpy(read_buffer_.data(), c->pending_in.data(), carried);
        ssize_t n;
        do {
            n = recv(c->fd, read_buffer_.data() + carried, read_buffer_.size() - carried, 0);
        } while (n < 0 && errno == EINTR);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
        if (n <= 0) {
            fail(n == 0 ? "server closed the connection" : "recv() failed", c);
            finish(index);
            return;
        }
        std::size_t size = carried + static_cast<std::size_t>(n);
        unsigned char* data = read_buffer_.data();

        if (c->state == conn_state::upgrading) {
            const std::string_view head(reinterpret_cast<const char*>(data), size);
            const auto end = head.find("\r\n\r\n");
            if (end == std::string_view::npos) {
                if (size > 16 * 1024) {
                    fail("oversized handshake response", c);
                    finish(index);
                    return;
                }
                c->pending_in.assign(data, data + size);
                return;
            }
            if (head.compare(0, 12, "HTTP/1.1 101") != 0) {
                fail("upgrade refused (no 101)", c);
                finish(index);
                return;
            }
            if (o_.deflate && c->role != conn_role::handshake_only) {
                c->deflate = std::make_unique<deflate_state>();
                if (!parse_deflate_response(head.substr(0, end), *c->deflate)) {
                    fail("the server did not agree to permessage-deflate", c);
                    finish(index);
                    return;
                }
            }
            c->state = conn_state::open;
            --in_progress_;
            ++opened_;
            on_open(index);
            if (c->state != conn_state::open) return;
            data += end + 4;
            size -= end + 4;
        }

        while (size != 0) {
            frame f;
            std::size_t consumed = 0;
            const auto status = parse_frame(data, size, o_.max_message, f, consumed);
            if (status == parse_status::need_more) break;
            if (status == parse_status::bad) {
                fail("frame from the server longer than the limit", c);
                finish(index);
                return;
            }
            data += consumed;
            size -= consumed;
            if (!on_frame(index, f)) return;
            c = &conns_[index];
        }
        c->pending_in.assign(data, data + size);
        // Everything the frames of this read made us send, in one write.
        if (!c->out.empty()) flush(index);
    }

    // False when the connection was finished.
    bool on_frame(std::size_t index, const frame& f) {
        connection& c = conns_[index];
        switch (f.opcode) {
        case op_ping: append_client_frame(c.out, op_pong, f.payload, f.size); return true;
        case op_pong: return true;
        case op_close:
            fail("server sent a close frame", &c);
            finish(index);
            return false;
        case op_text:
        case op_binary:
            if (f.fin) return deliver(index, f.opcode, f.payload, f.size, f.compressed);
            c.message_opcode = f.opcode;
            c.message_compressed = f.compressed;
            c.message.assign(f.payload, f.payload + f.size);
            return true;
        case op_continuation:
            c.message.insert(c.message.end(), f.payload, f.payload + f.size);
            if (!f.fin) return true;
            {
                std::vector<unsigned char> whole;
                whole.swap(c.message);
                return deliver(index, c.message_opcode, whole.data(), whole.size(),
                               c.message_compressed);
            }
        default:
            fail("reserved opcode from the server", &c);
            finish(index);
            return false;
        }
    }

    // A whole message arrived: inflated first if it is compressed.
    bool deliver(std::size_t index, unsigned opcode, const unsigned char* payload, std::size_t size,
                 bool compressed) {
        if (!compressed) return on_message(index, opcode, payload, size);
        connection& c = conns_[index];
        if (measuring_) window_.compressed_bytes += size;
#ifdef WSLOAD_HAVE_ZLIB
        if (c.deflate && c.deflate->inflate_message(payload, size, inflated_))
            return on_message(index, opcode, inflated_.data(), inflated_.size());
#endif
        fail(c.deflate ? "a compressed message did not inflate" : "RSV1 without deflate", &c);
        finish(index);
        return false;
    }

    // Appends one message to the connection's output, compressed if deflate was agreed.
    void send_message(std::size_t index, unsigned opcode, const unsigned char* payload,
                      std::size_t size, const unsigned char* prefix = nullptr,
                      std::size_t prefix_size = 0) {
        connection& c = conns_[index];
#ifdef WSLOAD_HAVE_ZLIB
        if (c.deflate && size != 0) {
            scratch_out_.assign(payload, payload + size);
            if (prefix_size != 0) std::memcpy(scratch_out_.data(), prefix, prefix_size);
            if (!c.deflate->compress(scratch_out_.data(), size, compressed_)) {
                fail("zlib failed to compress", &c);
                return;
            }
            append_client_frame(c.out, opcode, compressed_.data(), compressed_.size(), nullptr, 0,
                                true);
            return;
        }
#endif
        append_client_frame(c.out, opcode, payload, size, prefix, prefix_size);
    }

    // Runs the loop until `deadline` or until `done()` holds.
    template <class Done>
    void loop_until(std::uint64_t deadline, Done done) {
        epoll_event events[512];
        while (!done()) {
            const std::uint64_t now = now_ns();
            if (now >= deadline) return;
            const auto wait_ms = static_cast<int>(
                std::min<std::uint64_t>((deadline - now + 999999) / 1000000, 1000));
            const int n = epoll_wait(epoll_, events, 512, wait_ms);
            for (int i = 0; i < n; ++i) {
                const auto index = static_cast<std::size_t>(events[i].data.u64);
                if (conns_[index].state == conn_state::done) continue;
                const std::uint32_t e = events[i].events;
                if ((e & EPOLLOUT) != 0U) on_writable(index);
                if (conns_[index].state == conn_state::done) continue;
                if ((e & (EPOLLIN | EPOLLERR | EPOLLHUP)) != 0U) on_readable(index);
            }
            for (; connections_to_start_ != 0; --connections_to_start_)
                start_connection(conn_role::handshake_only, "/");
        }
    }

    // Opens `count` upgraded connections, at most o_.concurrency handshakes at a time.
    bool open_many(std::size_t count, conn_role role, const char* path, double timeout_s) {
        const std::size_t target = opened_ + count;
        std::size_t started = 0;
        const std::uint64_t deadline = now_ns() + static_cast<std::uint64_t>(timeout_s * 1e9);
        while (opened_ < target && errors_ == 0) {
            while (started < count && in_progress_ < o_.concurrency) {
                start_connection(role, path);
                ++started;
            }
            if (now_ns() >= deadline) {
                fail("timed out opening connections");
                return false;
            }
            loop_until(now_ns() + one_second_ns / 20, [&] {
                return opened_ >= target || (in_progress_ < o_.concurrency && started < count);
            });
        }
        return errors_ == 0;
    }

    // ---- mode hooks ----

    void on_open(std::size_t index) {
        connection& c = conns_[index];
        if (c.role == conn_role::handshake_only) {
            if (measuring_) {
                ++window_.handshakes;
                latency_.add(now_ns() - c.started_ns);
            }
            finish(index);
            // Started after this batch of events, so that no slot is reused while events
            // for it may still be in the batch.
            if (connect_running_) ++connections_to_start_;
        } else if (c.role == conn_role::echo) {
            c.sent_ns.assign(o_.in_flight, 0);
        } else if (c.role == conn_role::subscriber) {
            c.expected.assign(o_.publishers, 0);
        }
    }

    void send_echo_message(std::size_t index) {
        connection& c = conns_[index];
        const std::uint64_t sequence = c.next_send++;
        unsigned char prefix[max_stamp];
        const std::size_t n = stamp(prefix, template_payload_.size(), sequence, o_.text);
        c.sent_ns[sequence % o_.in_flight] = now_ns();
        send_message(index, o_.text ? op_text : op_binary, template_payload_.data(),
                     template_payload_.size(), prefix, n);
    }

    bool on_message(std::size_t index, unsigned opcode, const unsigned char* payload,
                    std::size_t size) {
        connection& c = conns_[index];
        const std::uint64_t now = now_ns();
        switch (c.role) {
        case conn_role::echo: {
            const std::uint64_t sequence = c.next_expected++;
            unsigned char prefix[max_stamp];
            const std::size_t n = stamp(prefix, template_payload_.size(), sequence, o_.text);
            if (opcode != (o_.text ? op_text : op_binary) || size != template_payload_.size() ||
                std::memcmp(payload, prefix, n) != 0 ||
                std::memcmp(payload + n, template_payload_.data() + n, size - n) != 0) {
                fail("echo differs from the message sent", &c);
                finish(index);
                return false;
            }
            ++c.echoed;
            if (measuring_) {
                ++window_.messages;
                window_.bytes += size;
                latency_.add(now - c.sent_ns[sequence % o_.in_flight]);
            }
            // Written once per read, with the others this read triggered (on_readable).
            if (sending_) send_echo_message(index);
            return true;
        }
        case conn_role::subscriber: on_delivery(c, payload, size, now); return true;
        case conn_role::idle:
            ++touched_;
            // It sends nothing more: the generator's own zlib memory can go.
#ifdef WSLOAD_HAVE_ZLIB
            if (c.deflate) c.deflate->release();
#endif
            return true;
        case conn_role::publisher:
        case conn_role::handshake_only: return true;
        }
        return true;
    }

    // ---- modes ----

    struct window {
        std::uint64_t start_ns = 0, end_ns = 0;
        double server_cpu = -1, own_cpu = 0;
    };

    void begin_window(window& w) {
        window_ = {};
        latency_ = {};
        measuring_ = true;
        w.start_ns = now_ns();
        w.server_cpu = o_.server_pid != 0 ? process_cpu_seconds(o_.server_pid) : -1;
        w.own_cpu = own_cpu_seconds();
    }

    void end_window(window& w) {
        measuring_ = false;
        w.end_ns = now_ns();
        if (o_.server_pid != 0 && w.server_cpu >= 0)
            w.server_cpu = process_cpu_seconds(o_.server_pid) - w.server_cpu;
        w.own_cpu = own_cpu_seconds() - w.own_cpu;
    }

    std::string common_json(const window& w, double count, const char* rate_name) const {
        const double seconds = seconds_between(w.start_ns, w.end_ns);
        char text[768];
        std::snprintf(
            text, sizeof text,
            "\"seconds\":%.3f,\"%s_per_s\":%.1f,\"latency_us\":{\"p50\":%.1f,\"p99\":%.1f,"
            "\"p999\":%.1f},\"server_cpu_s\":%.3f,\"%s_per_server_cpu_s\":%.1f,"
            "\"generator_cpu_share\":%.3f,\"errors\":%" PRIu64,
            seconds, rate_name, count / seconds, latency_.percentile(0.5),
            latency_.percentile(0.99), latency_.percentile(0.999), w.server_cpu, rate_name,
            w.server_cpu > 0 ? count / w.server_cpu : 0.0, w.own_cpu / seconds, errors_);
        return text;
    }

    void print_latency(const window& w, double count, const char* what) const {
        const double seconds = seconds_between(w.start_ns, w.end_ns);
        std::printf("  %.0f %s/s over %.2f s; latency p50 %.1f us, p99 %.1f us, p99.9 %.1f us\n",
                    count / seconds, what, seconds, latency_.percentile(0.5),
                    latency_.percentile(0.99), latency_.percentile(0.999));
        if (w.server_cpu >= 0)
            std::printf("  server CPU %.2f s (%.0f %% of one core): %.0f %s per CPU-second\n",
                        w.server_cpu, 100 * w.server_cpu / seconds,
                        w.server_cpu > 0 ? count / w.server_cpu : 0.0, what);
        std::printf("  generator CPU %.0f %% of one core%s\n", 100 * w.own_cpu / seconds,
                    w.own_cpu / seconds > 0.9 ? " (the generator may be the bottleneck)" : "");
    }

    std::uint64_t after(double seconds) const {
        return now_ns() + static_cast<std::uint64_t>(seconds * 1e9);
    }

    int verdict(std::uint64_t measured) const {
        if (errors_ != 0) {
            std::fprintf(stderr, "wsload: %" PRIu64 " errors\n", errors_);
            return 1;
        }
        if (measured == 0) {
            std::fputs("wsload: nothing was measured\n", stderr);
            return 1;
        }
        return 0;
    }

    // What the echoes' compressed payloads weighed, as a fraction of their inflated size.
    double compressed_fraction() const {
        return window_.bytes == 0 ? 0.0
                                  : static_cast<double>(window_.compressed_bytes) /
                                        static_cast<double>(window_.bytes);
    }

    int run_echo() {
        if (!open_many(o_.connections, conn_role::echo, "/", 60)) return verdict(0);
        sending_ = true;
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            if (conns_[i].state != conn_state::open) continue;
            for (std::size_t k = 0; k < o_.in_flight; ++k) send_echo_message(i);
            flush(i);
        }
        loop_until(after(o_.warmup), [&] { return errors_ != 0; });
        window w;
        begin_window(w);
        loop_until(after(o_.duration), [&] { return errors_ != 0; });
        end_window(w);
        sending_ = false;
        // Let the messages still in flight come back, so that each echo is checked.
        loop_until(after(2), [&] {
            for (const auto& c : conns_)
                if (c.state == conn_state::open && c.next_expected != c.next_send) return false;
            return true;
        });
        const auto count = static_cast<double>(window_.messages);
        const double seconds = seconds_between(w.start_ns, w.end_ns);
        if (o_.json) {
            std::printf("{\"mode\":\"echo\",\"connections\":%zu,\"size\":%zu,\"in_flight\":%zu,"
                        "\"text\":%s,\"json_like\":%s,\"deflate\":%s,\"messages\":%" PRIu64
                        ",\"mb_per_s\":%.3f,\"compressed_fraction\":%.3f,%s}\n",
                        o_.connections, o_.size, o_.in_flight, o_.text ? "true" : "false",
                        o_.json_like ? "true" : "false", o_.deflate ? "true" : "false",
                        window_.messages, static_cast<double>(window_.bytes) / seconds / 1e6,
                        compressed_fraction(), common_json(w, count, "messages").c_str());
        } else {
            std::printf("echo: %zu connections, %zu-byte %s messages, %zu in flight each\n",
                        o_.connections, o_.size, o_.text ? "text" : "binary", o_.in_flight);
            print_latency(w, count, "messages");
            std::printf("  %.2f MB/s of payload each way\n",
                        static_cast<double>(window_.bytes) / seconds / 1e6);
            if (o_.deflate)
                std::printf("  echoes compressed to %.1f %% of their size\n",
                            100 * compressed_fraction());
        }
        finish_all();
        return verdict(window_.messages);
    }

    // A subscriber received a broadcast message: check it against what that subscriber has
    // seen from the same publisher, and count it towards the message's completion.
    void on_delivery(connection& c, const unsigned char* payload, std::size_t size,
                     std::uint64_t now) {
        if (size != template_payload_.size() ||
            std::memcmp(payload + broadcast_stamp_size,
                        template_payload_.data() + broadcast_stamp_size,
                        size - broadcast_stamp_size) != 0) {
            fail("broadcast message differs from the one published", &c);
            return;
        }
        std::uint64_t sent, sequence;
        std::uint32_t from;
        std::memcpy(&sent, payload, 8);
        std::memcpy(&sequence, payload + 8, 8);
        std::memcpy(&from, payload + 16, 4);
        if (from == probe_publisher) {
            if (sequence == probe_sequence_) ++probe_seen_;
            return;
        }
        if (from >= publishers_.size()) {
            fail("broadcast message from an unknown publisher", &c);
            return;
        }
        std::uint64_t& expected = c.expected[from];
        if (sequence < expected) {
            ++late_or_repeated_;
            return;
        }
        // A message that overtook an earlier one is out of order; the earlier one, if it still
        // comes, is then behind what this subscriber has seen: late, or a repeat.
        if (sequence > expected) ++out_of_order_;
        expected = sequence + 1;
        if (measuring_) {
            ++window_.deliveries;
            latency_.add(now - sent);
        }
        publisher_state& p = publishers_[from];
        p.progress_ns = now;
        if (sequence < p.oldest || sequence >= p.next) return; // given up on already
        ++p.seen[sequence % o_.in_flight];
        advance(p);
    }

    // Retires the publisher's oldest messages once every subscriber has them, and keeps
    // --in-flight messages outstanding while the run is sending.
    void advance(publisher_state& p) {
        while (p.oldest != p.next && p.seen[p.oldest % o_.in_flight] >= o_.subscribers) {
            p.seen[p.oldest % o_.in_flight] = 0;
            ++p.oldest;
        }
        bool wrote = false;
        while (sending_ && p.next - p.oldest < o_.in_flight) {
            publish(p);
            wrote = true;
        }
        if (wrote) flush(p.conn);
    }

    // A publisher with messages on their way of which not one has reached anybody for this
    // long is stalled: what its messages still miss is counted as lost, and it goes on. Not a
    // limit on latency: with 10,000 subscribers and 32 messages in flight, one message may
    // rightly take many seconds to reach everybody while deliveries keep arriving.
    static constexpr std::uint64_t give_up_ns = 10 * one_second_ns;

    void give_up_on_stalled(std::uint64_t now) {
        for (auto& p : publishers_) {
            if (p.oldest == p.next || now - p.progress_ns <= give_up_ns) continue;
            for (; p.oldest != p.next; ++p.oldest) {
                std::size_t& seen = p.seen[p.oldest % o_.in_flight];
                lost_ += o_.subscribers - std::min(seen, o_.subscribers);
                seen = 0;
            }
            p.progress_ns = now;
            advance(p);
        }
    }

    void publish(publisher_state& p) {
        const std::uint64_t sequence = p.next++;
        const auto from = static_cast<std::uint32_t>(&p - publishers_.data());
        const std::uint64_t now = now_ns();
        p.progress_ns = now;
        stamp_broadcast(now, sequence, from);
        send_message(p.conn, op_binary, scratch_.data(), scratch_.size());
        if (measuring_) ++published_;
    }

    void stamp_broadcast(std::uint64_t now, std::uint64_t sequence, std::uint32_t from) {
        scratch_ = template_payload_;
        std::memcpy(scratch_.data(), &now, 8);
        std::memcpy(scratch_.data() + 8, &sequence, 8);
        std::memcpy(scratch_.data() + 16, &from, 4);
    }

    // Publishes probe messages from the first publisher, one at a time, until one reaches every
    // subscriber: from then on every subscriber is in the room.
    bool wait_for_full_room(double timeout_s) {
        const std::uint64_t deadline = after(timeout_s);
        while (now_ns() < deadline && errors_ == 0) {
            probe_seen_ = 0;
            stamp_broadcast(now_ns(), ++probe_sequence_, probe_publisher);
            send_message(publishers_[0].conn, op_binary, scratch_.data(), scratch_.size());
            flush(publishers_[0].conn);
            loop_until(std::min(deadline, after(1)),
                       [&] { return probe_seen_ >= o_.subscribers || errors_ != 0; });
            if (probe_seen_ >= o_.subscribers) return true;
        }
        fail("not every subscriber received a probe message");
        return false;
    }

    bool broadcast_done() {
        give_up_on_stalled(now_ns());
        return errors_ != 0;
    }

    int run_broadcast() {
        if (!open_many(o_.subscribers, conn_role::subscriber, "/sub", 120)) return verdict(0);
        if (!open_many(o_.publishers, conn_role::publisher, "/pub", 10)) return verdict(0);
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            if (conns_[i].role != conn_role::publisher || conns_[i].state != conn_state::open)
                continue;
            publisher_state p;
            p.conn = i;
            p.seen.assign(o_.in_flight, 0);
            publishers_.push_back(std::move(p));
        }
        if (!wait_for_full_room(30)) return verdict(0);
        sending_ = true;
        for (auto& p : publishers_) advance(p);
        loop_until(after(o_.warmup), [&] { return broadcast_done(); });
        window w;
        begin_window(w);
        loop_until(after(o_.duration), [&] { return broadcast_done(); });
        end_window(w);
        sending_ = false;
        // Wait for every message published to reach every subscriber (or for its publisher to
        // be given up on as stalled), so that each one is checked.
        loop_until(after(300), [&] {
            broadcast_done();
            for (const auto& p : publishers_)
                if (p.oldest != p.next) return errors_ != 0;
            return true;
        });
        give_up_on_stalled(now_ns() + give_up_ns + 1);
        const std::uint64_t violations = lost_ + late_or_repeated_ + out_of_order_;
        const auto count = static_cast<double>(window_.deliveries);
        if (o_.json) {
            std::printf("{\"mode\":\"broadcast\",\"subscribers\":%zu,\"publishers\":%zu,"
                        "\"in_flight\":%zu,\"size\":%zu,\"published\":%" PRIu64
                        ",\"deliveries\":%" PRIu64 ",\"lost\":%" PRIu64
                        ",\"late_or_repeated\":%" PRIu64 ",\"out_of_order\":%" PRIu64
                        ",\"violations\":%" PRIu64 ",%s}\n",
                        o_.subscribers, publishers_.size(), o_.in_flight, o_.size, published_,
                        window_.deliveries, lost_, late_or_repeated_, out_of_order_, violations,
                        common_json(w, count, "deliveries").c_str());
        } else {
            std::printf("broadcast: %zu subscribers, %zu publishers with %zu in flight each, "
                        "%zu-byte messages, %" PRIu64 " published\n",
                        o_.subscribers, publishers_.size(), o_.in_flight, o_.size, published_);
            print_latency(w, count, "deliveries");
            std::printf("  deliveries lost %" PRIu64 ", late or repeated %" PRIu64
                        ", out of order %" PRIu64 "\n",
                        lost_, late_or_repeated_, out_of_order_);
        }
        if (violations != 0) fail("broadcast deliveries lost, late or repeated, or out of order");
        finish_all();
        return verdict(window_.deliveries);
    }

    int run_idle() {
        // The first connections warm up the server's allocator and pools: not counted.
        if (!open_many(50, conn_role::idle, "/", 30)) return verdict(0);
        if (o_.touch) touch_new_connections();
        settle();
        const long before = resident_kib(o_.server_pid);
        if (!open_many(o_.connections, conn_role::idle, "/", 300)) return verdict(0);
        if (o_.touch) touch_new_connections();
        settle();
        const long after_kib = resident_kib(o_.server_pid);
        const double per_connection =
            static_cast<double>(after_kib - before) * 1024.0 / static_cast<double>(o_.connections);
        if (o_.json) {
            std::printf("{\"mode\":\"idle\",\"connections\":%zu,\"touch\":%s,\"deflate\":%s,"
                        "\"size\":%zu,\"rss_before_kib\":%ld,\"rss_after_kib\":%ld,"
                        "\"bytes_per_connection\":%.0f,\"errors\":%" PRIu64 "}\n",
                        o_.connections, o_.touch ? "true" : "false", o_.deflate ? "true" : "false",
                        o_.size, before, after_kib, per_connection, errors_);
        } else {
            std::printf("idle: server RSS %ld KiB -> %ld KiB for %zu connections%s: %.0f bytes "
                        "each\n",
                        before, after_kib, o_.connections,
                        o_.touch ? " (one message echoed on each)" : "", per_connection);
        }
        finish_all();
        return verdict(o_.connections);
    }

    // Exchanges one message on each connection not touched yet, and waits for the echoes.
    void touch_new_connections() {
        for (std::size_t i = 0; i < conns_.size(); ++i) {
            connection& c = conns_[i];
            if (c.state != conn_state::open || c.touch_sent) continue;
            c.touch_sent = true;
            ++touches_sent_;
            send_message(i, o_.text ? op_text : op_binary, template_payload_.data(),
                         template_payload_.size());
            flush(i);
        }
        loop_until(after(60), [&] { return touched_ >= touches_sent_ || errors_ != 0; });
        if (touched_ < touches_sent_) fail("not every touched connection answered");
    }

    // Gives the server time to finish what the last connections started (on_open handlers,
    // timers, lazily freed memory) before its memory is read.
    void settle() {
        loop_until(after(0.5), [&] { return errors_ != 0; });
    }

    int run_connect() {
        connect_running_ = true;
        for (std::size_t i = 0; i < o_.concurrency; ++i)
            start_connection(conn_role::handshake_only, "/");
        loop_until(after(o_.warmup), [&] { return errors_ != 0; });
        window w;
        begin_window(w);
        loop_until(after(o_.duration), [&] { return errors_ != 0; });
        end_window(w);
        connect_running_ = false;
        const auto count = static_cast<double>(window_.handshakes);
        if (o_.json) {
            std::printf(
                "{\"mode\":\"connect\",\"concurrency\":%zu,\"handshakes\":%" PRIu64 ",%s}\n",
                o_.concurrency, window_.handshakes, common_json(w, count, "handshakes").c_str());
        } else {
            std::printf("connect: %zu handshakes at a time\n", o_.concurrency);
            print_latency(w, count, "handshakes");
        }
        finish_all();
        return verdict(window_.handshakes);
    }

    static constexpr std::size_t npos = static_cast<std::size_t>(-1);

    const options o_;
    int epoll_ = -1;
    sockaddr_in address_{};
    std::size_t started_ = 0; // connections started, for spread_source_address
    std::vector<connection> conns_;
    std::vector<std::size_t> free_slots_;
    std::vector<unsigned char> read_buffer_;
    std::vector<unsigned char> template_payload_;
    std::vector<unsigned char> scratch_;
    std::vector<unsigned char> scratch_out_; // a message being compressed
    std::vector<unsigned char> compressed_;
    std::vector<unsigned char> inflated_;
    std::size_t in_progress_ = 0; // connecting or upgrading
    std::size_t opened_ = 0;
    std::uint64_t errors_ = 0;
    bool measuring_ = false;
    bool sending_ = false;
    bool connect_running_ = false;
    std::size_t connections_to_start_ = 0;
    window_counters window_;
    latency_histogram latency_;
    // broadcast
    std::vector<publisher_state> publishers_;
    std::uint64_t probe_sequence_ = 0;
    std::size_t probe_seen_ = 0;
    std::uint64_t published_ = 0;
    std::uint64_t lost_ = 0;
    std::uint64_t late_or_repeated_ = 0;
    std::uint64_t out_of_order_ = 0;
    // idle
    std::size_t touches_sent_ = 0;
    std::size_t touched_ = 0;
};

} // namespace

int main(int argc, char** argv) {
    const options o = parse_options(argc, argv);
    generator g(o);
    return g.run();
}
