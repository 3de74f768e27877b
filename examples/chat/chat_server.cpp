// chat_server — a multi-room chat: a web page, JSON events over WebSocket, rooms with presence
// and history, a token and Origin check at the upgrade, per-connection and per-address rate
// limits, health and metrics.
//
//   chat_server [--host H] [--port P] [--token T] [--rate N] [--allow-origin O]...
//               [--address-connections N] [--address-rate N] [--address-burst N]
//               [--tls-cert FILE --tls-key FILE] [--redis URL] [--deflate on|off]
//
//   GET /          the chat page (embedded in the binary: no files to deploy)
//   GET /ws        the chat WebSocket: /ws?name=NAME&room=ROOM&token=TOKEN
//   GET /echo      a plain echo WebSocket (no token)
//   GET /health    {"status":"ok","connections":N} (and "backplane":"up" etc. with --redis)
//   GET /metrics   Prometheus text format
//
// Defaults: 127.0.0.1, port 8080 (0 picks a free one), no token unless $DUPLEX_CHAT_TOKEN is
// set, WebSockets only from the page's own origin, 10 messages per second per connection, and
// per client address 32 connections and 20 messages per second (burst 40). With a certificate
// and key it serves https:// and wss:// instead. SIGINT or SIGTERM shuts it down gracefully.
// With --redis redis://HOST:PORT/DB (or rediss://), several chat_server processes share
// rooms: chat messages, presence and member lists cross them through Redis
// (duplex::redis_backplane). examples/chat/README.md describes the events;
// tests/interop/browser_chat.mjs drives it from headless Chromium.
#include "chat_page.hpp" // generated from index.html by CMake

#include <duplex/duplex.hpp>
#include <duplex/redis_backplane.hpp>

#include <asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace {

using json = nlohmann::ordered_json; // keeps "event" first in what we send
using steady_clock = std::chrono::steady_clock;

constexpr std::size_t max_message_bytes = 64U * 1024U; // larger messages fail with 1009
constexpr std::size_t max_text_code_points = 500;      // longer chat texts are truncated
constexpr std::size_t max_name_code_points = 32;
constexpr std::size_t max_room_length = 64;
constexpr std::size_t history_size = 50; // messages a newcomer to a room gets in its join_ack
// Rate-limit excess beyond `rate` messages within this window closes the connection (1008).
constexpr std::chrono::seconds abuse_window{10};
// Chat requests are handled, and chat messages and presence fanned out to their rooms, from
// queues, for at most this long per turn of the event loop, so that a flood cannot hold up
// everything else the loop serves (/health, other rooms, new connections, SIGTERM). One send
// to a member that reads is one write system call: a room of 1,000 takes milliseconds per
// message.
constexpr std::chrono::microseconds slice_time{500};
// Rooms whose last member left keep their history for whoever comes back; at most this many.
constexpr std::size_t max_retained_empty_rooms = 1024;
// Chat requests read but not handled yet, all connections together; past it a request is
// refused with `server_busy`.
constexpr std::size_t max_inbox_bytes = 8U * 1024U * 1024U;
// Messages waiting in one room's queue; past it a message is refused with `room_busy`.
constexpr std::size_t max_room_backlog = 1024;

struct arguments {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    std::string token;
    unsigned rate = 10;
    std::vector<std::string> allow_origins; // empty: the page's own origin only
    unsigned address_connections = 32;
    unsigned address_rate = 20;
    unsigned address_burst = 40;
    std::string tls_cert;
    std::string tls_key;
    std::string redis;   // a redis:// URL: share rooms with other processes through it
    bool deflate = true; // permessage-deflate, where the build has zlib (duplex::deflate)
};

[[noreturn]] void usage(const char* program) {
    std::fprintf(
        stderr,
        "usage: %s [--host H] [--port P] [--token T] [--rate N] [--allow-origin O]...\n"
        "       [--address-connections N] [--address-rate N] [--address-burst N]\n"
        "       [--tls-cert FILE --tls-key FILE] [--redis URL] [--deflate on|off]\n"
        "  --token T                required from chat clients (default: $DUPLEX_CHAT_TOKEN)\n"
        "  --rate N                 chat messages per second per connection, burst N (10)\n"
        "  --allow-origin O         a browser origin allowed to open WebSockets, repeatable\n"
        "                           (default: only the page's own origin)\n"
        "  --address-connections N  WebSocket connections per client address (32)\n"
        "  --address-rate N         chat messages per second per client address (20)\n"
        "  --address-burst N        ... of which this many at once (40)\n"
        "  --redis URL              share rooms with other chat_server processes through\n"
        "                           Redis: redis://[[user]:password@]host[:port][/db]\n"
        "  --deflate on|off         accept permessage-deflate (on where built with zlib)\n",
        program);
    std::exit(2);
}

// A flag's decimal value, at most `max`; anything else is a usage error.
unsigned long flag_number(const char* program, const std::string& value, unsigned long max) {
    std::size_t used = 0;
    unsigned long number = 0;
    try {
        number = std::stoul(value, &used);
    } catch (const std::exception&) {
        usage(program);
    }
    if (used != value.size() || number > max) usage(program);
    return number;
}

arguments parse(int argc, char** argv) {
    arguments a;
    if (const char* token = std::getenv("DUPLEX_CHAT_TOKEN")) a.token = token;
    for (int i = 1; i < argc; ++i) {
        const std::string flag = argv[i];
        if (i + 1 >= argc) usage(argv[0]);
        const std::string value = argv[++i];
        if (flag == "--host")
            a.host = value;
        else if (flag == "--port")
            a.port = static_cast<std::uint16_t>(flag_number(argv[0], value, 65535));
        else if (flag == "--token")
            a.token = value;
        else if (flag == "--rate")
            a.rate = static_cast<unsigned>(flag_number(argv[0], value, 1000000));
        else if (flag == "--allow-origin")
            a.allow_origins.push_back(value);
        else if (flag == "--address-connections")
            a.address_connections = static_cast<unsigned>(flag_number(argv[0], value, 1000000));
        else if (flag == "--address-rate")
            a.address_rate = static_cast<unsigned>(flag_number(argv[0], value, 1000000));
        else if (flag == "--address-burst")
            a.address_burst = static_cast<unsigned>(flag_number(argv[0], value, 1000000));
        else if (flag == "--tls-cert")
            a.tls_cert = value;
        else if (flag == "--tls-key")
            a.tls_key = value;
        else if (flag == "--redis")
            a.redis = value;
        else if (flag == "--deflate" && (value == "on" || value == "off"))
            a.deflate = value == "on";
        else
            usage(argv[0]);
    }
    if (a.rate == 0 || a.address_connections == 0 || a.address_rate == 0 || a.address_burst == 0 ||
        a.tls_cert.empty() != a.tls_key.empty())
        usage(argv[0]);
    return a;
}

// ---- text rules ---------------------------------------------------------------------------

bool is_continuation_byte(char c) { return (static_cast<unsigned char>(c) & 0xC0U) == 0x80U; }

// Code points in valid UTF-8: every byte that does not continue a sequence starts one.
std::size_t count_code_points(std::string_view utf8) {
    return static_cast<std::size_t>(
        std::count_if(utf8.begin(), utf8.end(), [](char c) { return !is_continuation_byte(c); }));
}

// The longest prefix of valid UTF-8 `utf8` with at most `limit` code points.
std::string_view first_code_points(std::string_view utf8, std::size_t limit) {
    std::size_t seen = 0;
    for (std::size_t i = 0; i < utf8.size(); ++i)
        if (!is_continuation_byte(utf8[i]) && seen++ == limit) return utf8.substr(0, i);
    return utf8;
}

// The code points of valid UTF-8 `utf8`, one at a time.
template <class Fn>
bool all_code_points(std::string_view utf8, Fn&& fn) {
    for (std::size_t i = 0; i < utf8.size();) {
        const auto lead = static_cast<unsigned char>(utf8[i]);
        const std::size_t length = lead < 0x80U ? 1 : lead < 0xE0U ? 2 : lead < 0xF0U ? 3 : 4;
        char32_t cp = length == 1   ? lead
                      : length == 2 ? lead & 0x1FU
                      : length == 3 ? lead & 0x0FU
                                    : lead & 0x07U;
        for (std::size_t k = 1; k < length; ++k)
            cp = (cp << 6U) | (static_cast<unsigned char>(utf8[i + k]) & 0x3FU);
        if (!fn(cp)) return false;
        i += length;
    }
    return true;
}

// Characters that do not show as themselves and so let one name pass for another, reorder the
// text around it, or break the line it is on: the controls (Unicode Cc: C0, DEL, C1 such as
// U+0085 NEL and U+009B CSI), the format characters (Cf: bidi embeddings, overrides, isolates
// and marks, zero-width spaces and joiners, the word joiner and invisible operators, the BOM,
// the soft hyphen, prepended number signs, language tags) and the line and paragraph
// separators (Zl, Zp). The Cf list is Unicode 15's, whole.
bool is_invisible_or_control(char32_t cp) {
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F)) return true;             // Cc
    if (cp == 0x00AD || (cp >= 0x0600 && cp <= 0x0605) || cp == 0x061C || // Cf ...
        cp == 0x06DD || cp == 0x070F || cp == 0x0890 || cp == 0x0891 || cp == 0x08E2 ||
        cp == 0x180E || (cp >= 0x200B && cp <= 0x200F) || (cp >= 0x202A && cp <= 0x202E) ||
        (cp >= 0x2060 && cp <= 0x2064) || (cp >= 0x2066 && cp <= 0x206F) || cp == 0xFEFF ||
        (cp >= 0xFFF9 && cp <= 0xFFFB) || cp == 0x110BD || cp == 0x110CD ||
        (cp >= 0x13430 && cp <= 0x1343F) || (cp >= 0x1BCA0 && cp <= 0x1BCA3) ||
        (cp >= 0x1D173 && cp <= 0x1D17A) || cp == 0xE0001 || (cp >= 0xE0020 && cp <= 0xE007F))
        return true;
    return cp == 0x2028 || cp == 0x2029; // Zl, Zp
}

// 1 to 32 code points of UTF-8 without controls or invisible format characters (above) and
// without surrounding spaces, so that a name renders as one line, shows every character it
// has, and "alice " cannot pass for "alice".
bool is_valid_name(std::string_view name) {
    if (name.empty() || name.front() == ' ' || name.back() == ' ') return false;
    if (!duplex::protocol::is_valid_utf8(name)) return false;
    if (count_code_points(name) > max_name_code_points) return false;
    return all_code_points(name, [](char32_t cp) { return !is_invisible_or_control(cp); });
}

// 1 to 64 of A-Z a-z 0-9 . _ - : a room name is safe in a URL, a log line and a metric label.
bool is_valid_room(std::string_view room) {
    return !room.empty() && room.size() <= max_room_length &&
           std::all_of(room.begin(), room.end(), [](char c) {
               return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '.' || c == '_' || c == '-';
           });
}

// Compares every byte whatever the first difference, so that the time a refusal takes does
// not tell an attacker how much of a guessed token was right.
bool tokens_equal(std::string_view given, std::string_view expected) {
    unsigned difference = given.size() == expected.size() ? 0U : 1U;
    for (std::size_t i = 0; i < expected.size(); ++i) {
        const char g = i < given.size() ? given[i] : '\0';
        difference |= static_cast<unsigned>(static_cast<unsigned char>(g) ^
                                            static_cast<unsigned char>(expected[i]));
    }
    return difference == 0;
}

std::int64_t unix_time_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
}

// Never throws: text taken from clients is valid UTF-8 already (the library checks text
// frames, the names at the upgrade), and anything else would be replaced, not refused.
std::string to_text(const json& event) {
    return event.dump(-1, ' ', false, json::error_handler_t::replace);
}

// ---- per-connection state -----------------------------------------------------------------

// A token bucket of `rate` messages per second with a burst of `burst`. What exceeds it is
// refused; more than `burst` refusals within abuse_window is abuse, and closes the connection.
class rate_limiter {
public:
    enum class verdict { pass, refuse, close };

    rate_limiter() : rate_limiter(10, 10) {}
    rate_limiter(unsigned rate, unsigned burst)
        : rate_(rate), burst_(burst), tokens_(burst), refilled_(steady_clock::now()) {}

    verdict admit(steady_clock::time_point now) {
        refill(now);
        if (tokens_ >= 1.0) {
            tokens_ -= 1.0;
            return verdict::pass;
        }
        if (now - window_start_ > abuse_window) {
            window_start_ = now;
            excess_ = 0;
        }
        return ++excess_ > burst_ ? verdict::close : verdict::refuse;
    }

    // Whether forgetting this bucket changes nothing: it would be full again by now, and no
    // abuse is being counted.
    bool is_idle(steady_clock::time_point now) {
        refill(now);
        return tokens_ >= static_cast<double>(burst_) && now - window_start_ > abuse_window;
    }

private:
    void refill(steady_clock::time_point now) {
        const std::chrono::duration<double> elapsed = now - refilled_;
        refilled_ = now;
        tokens_ = std::min(static_cast<double>(burst_), tokens_ + elapsed.count() * rate_);
    }

    unsigned rate_;
    unsigned burst_;
    double tokens_;
    steady_clock::time_point refilled_;
    steady_clock::time_point window_start_{};
    unsigned excess_ = 0;
};

// ---- per-address budgets --------------------------------------------------------------------

// What a client address is counted as: an IPv4 address (also when it arrives IPv4-mapped on
// an IPv6 socket), or the /64 prefix of an IPv6 address, since one subscriber usually holds a
// whole /64 and could otherwise take a fresh address for every connection.
std::string address_key(const asio::ip::address& address) {
    if (address.is_v6()) {
        const auto v6 = address.to_v6();
        if (v6.is_v4_mapped())
            return asio::ip::make_address_v4(asio::ip::v4_mapped, v6).to_string();
        auto bytes = v6.to_bytes();
        std::fill(bytes.begin() + 8, bytes.end(), static_cast<unsigned char>(0));
        return asio::ip::address_v6(bytes).to_string() + "/64";
    }
    return address.to_string();
}

// Connections and chat messages per client address, kept across reconnects: closing a
// connection and opening another gives back a connection place but not message tokens. An
// address is forgotten once it has no connection and its bucket has refilled, so the table
// holds at most the addresses with open connections plus those seen in the last few seconds.
class address_budget : public std::enable_shared_from_this<address_budget> {
public:
    // Holds one connection place of one address until destroyed or released; lives in the
    // connection's user data (moved from the handshake into the connection), so that a place
    // taken for an upgrade that never opened is given back as well.
    class slot {
    public:
        slot() = default;
        slot(std::shared_ptr<address_budget> owner, std::string key)
            : owner_(std::move(owner)), key_(std::move(key)) {}
        slot(slot&& other) noexcept = default;
        slot& operator=(slot&& other) noexcept {
            if (this != &other) {
                release();
                owner_ = std::move(other.owner_);
                key_ = std::move(other.key_);
            }
            return *this;
        }
        slot(const slot&) = delete;
        slot& operator=(const slot&) = delete;
        ~slot() { release(); }

        void release() {
            if (auto owner = std::exchange(owner_, nullptr)) owner->close(key_);
        }
        const std::string& key() const noexcept { return key_; }

    private:
        std::shared_ptr<address_budget> owner_;
        std::string key_;
    };

    address_budget(unsigned connections, unsigned rate, unsigned burst)
        : max_connections_(connections), rate_(rate), burst_(burst) {}

    // A place for one more connection from `key`, or an empty slot when it has them all.
    slot open(const std::string& key) {
        std::lock_guard<std::mutex> lock(mutex_);
        const auto now = steady_clock::now();
        forget_idle(now);
        auto it = entries_.try_emplace(key, entry{0, rate_limiter(rate_, burst_)}).first;
        if (it->second.connections >= max_connections_) return {};
        ++it->second.connections;
        return slot(shared_from_this(), key);
    }

    rate_limiter::verdict admit_message(const std::string& key) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = entries_.find(key);
        // A connection holds its address's entry: it cannot be missing. Refusing is the safe
        // answer should it ever be.
        if (it == entries_.end()) return rate_limiter::verdict::refuse;
        return it->second.messages.admit(steady_clock::now());
    }

    // Whether `key` could open one more connection now.
    bool has_room(const std::string& key) {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = entries_.find(key);
        return it == entries_.end() || it->second.connections < max_connections_;
    }

    unsigned max_connections() const noexcept { return max_connections_; }
    unsigned rate() const noexcept { return rate_; }

private:
    struct entry {
        unsigned connections = 0;
        rate_limiter messages;
    };

    void close(const std::string& key) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (auto it = entries_.find(key); it != entries_.end() && it->second.connections > 0)
            --it->second.connections;
    }

    // At most once a second, so that a flood of upgrades does not scan the table each time.
    void forget_idle(steady_clock::time_point now) {
        if (now - last_sweep_ < std::chrono::seconds(1)) return;
        last_sweep_ = now;
        for (auto it = entries_.begin(); it != entries_.end();)
            it = it->second.connections == 0 && it->second.messages.is_idle(now)
                     ? entries_.erase(it)
                     : std::next(it);
    }

    const unsigned max_connections_;
    const unsigned rate_;
    const unsigned burst_;
    std::mutex mutex_;
    std::unordered_map<std::string, entry> entries_;
    steady_clock::time_point last_sweep_{};
};

enum class endpoint { chat, echo };

// Filled in on_upgrade. `name` and `room` never change afterwards, so any thread may read
// them (presence and join_ack list the other members' names); `limiter` and `address` are only
// touched by the connection's own handlers, which never run at the same time.
struct chat_user {
    endpoint kind = endpoint::chat;
    std::string name;
    std::string room;
    rate_limiter limiter;
    address_budget::slot address; // this connection's place in its address's budget
    std::uint64_t joined = 0;     // when it joined its room (chat_service::epoch_)
    bool over_limit = false;      // far over its rate: to be closed (1008)
};

// What the upgrade of /ws decided; status 0 admits it. A plain GET of the same URL gets the
// same answer, because a browser does not let the page see why a WebSocket handshake failed.
struct admission {
    int status = 0;
    std::string reason;
    std::string name;
    std::string room;
};

// ---- metrics --------------------------------------------------------------------------------

// Counted from every io thread and read by /metrics and /health while they change.
struct chat_metrics {
    std::atomic<std::int64_t> chat_connections{0};
    std::atomic<std::int64_t> echo_connections{0};
    std::atomic<std::uint64_t> messages_received{0};
    std::atomic<std::uint64_t> messages_sent{0};
    std::atomic<std::uint64_t> bytes_received{0};
    std::atomic<std::uint64_t> bytes_sent{0};
    std::atomic<std::uint64_t> upgrades_refused{0};
    std::atomic<std::uint64_t> bad_requests{0}; // answered with an error event, rate aside
    std::atomic<std::uint64_t> rate_limited{0};
    std::atomic<std::uint64_t> room_busy{0};
    std::atomic<std::uint64_t> server_busy{0};
    std::atomic<std::uint64_t> connection_errors{0};    // protocol violations, 1009, timeouts
    const duplex::redis_backplane* backplane = nullptr; // with --redis

    void sent(std::size_t messages, std::size_t payload_size) {
        messages_sent += messages;
        bytes_sent += messages * payload_size;
    }

    std::string prometheus() const {
        std::string out;
        auto family = [&out](const char* name, const char* type, const char* help) {
            out.append("# HELP ").append(name).append(" ").append(help).append("\n");
            out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
        };
        auto sample = [&out](const std::string& name, auto value) {
            out.append(name).append(" ").append(std::to_string(value)).append("\n");
        };
        family("duplex_chat_connections", "gauge", "Open WebSocket connections by endpoint.");
        sample("duplex_chat_connections{endpoint=\"chat\"}", chat_connections.load());
        sample("duplex_chat_connections{endpoint=\"echo\"}", echo_connections.load());
        family("duplex_chat_messages_received_total", "counter", "WebSocket messages received.");
        sample("duplex_chat_messages_received_total", messages_received.load());
        family("duplex_chat_messages_sent_total", "counter",
               "WebSocket messages queued for sending (one per recipient).");
        sample("duplex_chat_messages_sent_total", messages_sent.load());
        family("duplex_chat_received_bytes_total", "counter", "Payload bytes received.");
        sample("duplex_chat_received_bytes_total", bytes_received.load());
        family("duplex_chat_sent_bytes_total", "counter", "Payload bytes queued for sending.");
        sample("duplex_chat_sent_bytes_total", bytes_sent.load());
        family("duplex_chat_errors_total", "counter", "Errors by kind.");
        sample("duplex_chat_errors_total{kind=\"upgrade_refused\"}", upgrades_refused.load());
        sample("duplex_chat_errors_total{kind=\"bad_request\"}", bad_requests.load());
        sample("duplex_chat_errors_total{kind=\"rate_limited\"}", rate_limited.load());
        sample("duplex_chat_errors_total{kind=\"room_busy\"}", room_busy.load());
        sample("duplex_chat_errors_total{kind=\"server_busy\"}", server_busy.load());
        sample("duplex_chat_errors_total{kind=\"connection\"}", connection_errors.load());
        if (backplane != nullptr) {
            const auto c = backplane->counters();
            family("duplex_chat_backplane_up", "gauge", "1 when the Redis backplane is up.");
            sample("duplex_chat_backplane_up",
                   backplane->state() == duplex::redis_state::up ? 1 : 0);
            family("duplex_chat_backplane_publishes_total", "counter",
                   "Messages published to Redis and acknowledged.");
            sample("duplex_chat_backplane_publishes_total", c.publishes);
            family("duplex_chat_backplane_deliveries_total", "counter",
                   "Messages from other processes received through Redis.");
            sample("duplex_chat_backplane_deliveries_total", c.deliveries);
            family("duplex_chat_backplane_reconnects_total", "counter", "Reconnects to Redis.");
            sample("duplex_chat_backplane_reconnects_total", c.reconnects);
            family("duplex_chat_backplane_drops_total", "counter",
                   "Messages for Redis dropped (queue full while Redis was away, or too big).");
            sample("duplex_chat_backplane_drops_total", c.drops);
            family("duplex_chat_backplane_unconfirmed_total", "counter",
                   "Messages written to Redis but not acknowledged when the connection failed.");
            sample("duplex_chat_backplane_unconfirmed_total", c.unconfirmed);
        }
        return out;
    }
};

// ---- the chat service -----------------------------------------------------------------------

// Everything the server does, written once for plain TCP and for TLS.
template <class Transport>
class chat_service {
public:
    using server_type = duplex::server<Transport, chat_user>;
    using connection_type = typename server_type::connection_type;
    using connection_ptr = std::shared_ptr<connection_type>;

private:
    // A chat request that was read and is within its budgets (see handle_requests).
    struct inbound_request {
        connection_ptr connection;
        std::string text;
        bool close_for_abuse = false; // instead of a request: close it (1008)
    };

    // One entry of a room's fan-out queue: a chat message (presence_of is null), or a presence
    // event about presence_of, for the members that joined before `epoch`.
    struct pending_event {
        duplex::shared_message message;
        const connection_type* presence_of = nullptr;
        std::uint64_t epoch = 0;
        bool emptied = false;         // a leave that left the room empty
        bool remote_presence = false; // presence from another process: not kept in history
        // Fixed when the fan-out starts (see fan_out); `next` is the first not yet sent to.
        std::vector<connection_ptr> recipients;
        std::size_t next = 0;

        explicit pending_event(duplex::shared_message m = {}) : message(std::move(m)) {}
    };

public:
    chat_service(asio::io_context& io, const arguments& args,
                 typename Transport::context_type context)
        : io_(io), token_(args.token), rate_(args.rate), allow_origins_(args.allow_origins),
          addresses_(std::make_shared<address_budget>(args.address_connections, args.address_rate,
                                                      args.address_burst)),
          server_(io, server_options(args.deflate), std::move(context)) {
        rooms_.on_presence(
            [this](const duplex::presence_event<connection_type>& e) { on_presence(e); });
        if (!args.redis.empty()) {
            duplex::redis_backplane_options o;
            o.url = args.redis;
            o.max_message_size = max_message_bytes + 1024; // a chat event, as JSON
            o.on_state = [](duplex::redis_state state, std::error_code ec) {
                std::fprintf(stderr, "redis backplane: %s%s%s\n", duplex::to_string(state),
                             ec ? ": " : "", ec ? ec.message().c_str() : "");
            };
            plane_ = std::make_unique<duplex::redis_backplane>(io.get_executor(), o);
            node_ = plane_->attach([this](const duplex::backplane_message& m) { on_remote(m); });
            metrics_.backplane = plane_.get();
        }
        auto& h = server_.handlers();
        h.on_upgrade = [this](const duplex::request_info& request, chat_user& user) {
            return on_upgrade(request, user);
        };
        h.on_http = [this](const duplex::request_info& request) { return on_http(request); };
        h.on_open = [this](const connection_ptr& c) { on_open(c); };
        h.on_message = [this](const connection_ptr& c, const duplex::message_view& m) {
            on_message(c, m);
        };
        h.on_error = [this](const connection_ptr&, std::error_code) {
            ++metrics_.connection_errors;
        };
        h.on_close = [this](const connection_ptr& c, const duplex::close_info&) {
            auto& gauge = c->data().kind == endpoint::chat ? metrics_.chat_connections
                                                           : metrics_.echo_connections;
            --gauge;
            c->data().address.release(); // at once: the connection object may live on a while
        };
    }

    server_type& server() noexcept { return server_; }

private:
    static duplex::server_options server_options(bool deflate) {
        duplex::server_options options;
        options.deflate.enabled = deflate;
        options.connection.protocol.max_message_size = max_message_bytes;
        options.connection.protocol.max_frame_size = max_message_bytes;
        return options;
    }

    // ---- HTTP and the upgrade

    // RFC 6455 10.2: a browser names the page that opens a WebSocket in Origin, and a server
    // that serves browsers should refuse the origins it does not expect; otherwise any site
    // a user visits can open the chat in the user's name (cross-site WebSocket hijacking).
    // By default the expected origin is the page's own: the scheme this server speaks and the
    // Host the request was sent to, which is where the page came from. Requests without Origin
    // are not from browsers, and are let through.
    bool origin_allowed(const duplex::request_info& request) const {
        const auto origin = request.header("Origin");
        if (!origin || origin->empty()) return true;
        if (!allow_origins_.empty()) return duplex::is_origin_allowed(*origin, allow_origins_);
        const auto host = request.header("Host");
        if (!host || host->empty()) return false;
        const std::string scheme = Transport::is_secure ? "https://" : "http://";
        std::vector<std::string> own{scheme + std::string(*host)};
        // A Host that spells out the default port matches an origin that leaves it out.
        const std::string_view default_port = Transport::is_secure ? ":443" : ":80";
        if (host->size() > default_port.size() &&
            host->substr(host->size() - default_port.size()) == default_port)
            own.push_back(scheme +
                          std::string(host->substr(0, host->size() - default_port.size())));
        return duplex::is_origin_allowed(*origin, own);
    }

    admission admit(const duplex::request_info& request) const {
        if (!origin_allowed(request)) return {403, "origin not allowed", {}, {}};
        // URLSearchParams, which the page uses, encodes a space as '+'.
        auto decoded = [&request](std::string_view key, std::string& out) {
            const auto raw = request.query_param(key);
            return raw && duplex::protocol::percent_decode(*raw, out, true);
        };
        admission a;
        std::string token;
        if (!token_.empty() && (!decoded("token", token) || !tokens_equal(token, token_)))
            return {401, "missing or wrong token", {}, {}};
        if (!decoded("name", a.name) || !is_valid_name(a.name))
            return {400,
                    "name: 1 to 32 characters, no control characters or surrounding spaces",
                    {},
                    {}};
        if (!decoded("room", a.room) || !is_valid_room(a.room))
            return {400, "room: 1 to 64 of the characters A-Z a-z 0-9 . _ -", {}, {}};
        return a;
    }

    duplex::upgrade_decision on_upgrade(const duplex::request_info& request, chat_user& user) {
        user.limiter = rate_limiter(rate_, rate_);
        const std::string_view path = request.path();
        if (path != "/ws" && path != "/echo") {
            ++metrics_.upgrades_refused;
            return duplex::upgrade_decision::reject(404, "WebSocket endpoints: /ws and /echo\n");
        }
        admission a = path == "/ws"             ? admit(request)
                      : origin_allowed(request) ? admission{}
                                                : admission{403, "origin not allowed", {}, {}};
        if (a.status == 0) {
            user.address = addresses_->open(address_key(request.remote.address()));
            if (user.address.key().empty()) a = {429, too_many_connections(), {}, {}};
        }
        if (a.status != 0) {
            ++metrics_.upgrades_refused;
            return duplex::upgrade_decision::reject(a.status, a.reason + "\n");
        }
        if (path == "/echo") {
            user.kind = endpoint::echo;
            return duplex::upgrade_decision::accept();
        }
        user.kind = endpoint::chat;
        user.name = std::move(a.name);
        user.room = std::move(a.room);
        return duplex::upgrade_decision::accept();
    }

    std::string too_many_connections() const {
        return "too many connections from your address (at most " +
               std::to_string(addresses_->max_connections()) + ")";
    }

    duplex::http_response on_http(const duplex::request_info& request) const {
        const std::string_view path = request.path();
        if (request.head.method() != "GET")
            return {405, "text/plain; charset=utf-8", "only GET\n", {{"Allow", "GET"}}};
        if (path == "/" || path == "/index.html")
            return {200,
                    "text/html; charset=utf-8",
                    std::string(chat_page_html),
                    {{"Cache-Control", "no-cache"}, {"X-Content-Type-Options", "nosniff"}}};
        if (path == "/health") {
            const auto open = metrics_.chat_connections.load() + metrics_.echo_connections.load();
            json health = {{"status", "ok"}, {"connections", open}};
            if (plane_) health["backplane"] = duplex::to_string(plane_->state());
            return {200, "application/json", to_text(health), {{"Cache-Control", "no-store"}}};
        }
        if (path == "/metrics")
            return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_.prometheus(), {}};
        if (path == "/ws" || path == "/echo") {
            admission a = path == "/ws"             ? admit(request)
                          : origin_allowed(request) ? admission{}
                                                    : admission{403, "origin not allowed", {}, {}};
            // Would the address get a place? Asked without taking one.
            if (a.status == 0 && !addresses_->has_room(address_key(request.remote.address())))
                a = {429, too_many_connections(), {}, {}};
            if (a.status != 0) return {a.status, "text/plain; charset=utf-8", a.reason + "\n", {}};
            return {426,
                    "text/plain; charset=utf-8",
                    "this URL speaks WebSocket\n",
                    {{"Upgrade", "websocket"}}};
        }
        return {404, "text/plain; charset=utf-8", "not found\n", {}};
    }

    // ---- WebSocket

    void on_open(const connection_ptr& c) {
        const chat_user& user = c->data();
        if (user.kind == endpoint::echo) {
            ++metrics_.echo_connections;
            return;
        }
        ++metrics_.chat_connections;
        if (plane_ && plane_->state() == duplex::redis_state::up) {
            // The members connected to other processes first (Redis presence), then the join.
            plane_->presence_members(user.room,
                                     [this, c](std::error_code ec, std::vector<std::string> ids) {
                                         std::vector<std::string> remote;
                                         if (!ec)
                                             for (const auto& id : ids)
                                                 if (auto name = remote_name(id))
                                                     remote.push_back(std::move(*name));
                                         join(c, std::move(remote));
                                     });
            return;
        }
        join(c, {});
    }

    // `remote`: names of the room's members on other processes.
    void join(const connection_ptr& c, std::vector<std::string> remote) {
        const chat_user& user = c->data();
        // Joining, reading the history and queueing the join_ack happen under the lock that
        // every publish takes, so with several io threads the newcomer gets each message
        // exactly once: in the history, or live after its join_ack.
        std::lock_guard<std::mutex> lock(publish_mutex_);
        c->data().joined = ++epoch_; // before the join: its own presence event comes later
        if (!rooms_.join(c, user.room)) return; // closed in the meantime
        std::vector<std::string> names = std::move(remote);
        for (const auto& member : rooms_.members(user.room)) names.push_back(member->data().name);
        std::sort(names.begin(), names.end());
        json history = json::array();
        if (auto kept = history_.find(user.room); kept != history_.end()) {
            for (const auto& message : kept->second) {
                // Only this program writes it, and only JSON: the check is for the next edit.
                json past = json::parse(message.payload(), nullptr, false);
                if (!past.is_discarded()) history.push_back(std::move(past));
            }
        }
        send(c, {{"event", "join_ack"},
                 {"room", user.room},
                 {"name", user.name},
                 {"members", names},
                 {"history", std::move(history)}});
    }

    void on_message(const connection_ptr& c, const duplex::message_view& m) {
        ++metrics_.messages_received;
        metrics_.bytes_received += m.data.size();
        chat_user& user = c->data();
        if (user.kind == endpoint::echo) {
            if (accepted(c->send(m.type, m.data))) metrics_.sent(1, m.data.size());
            return;
        }
        // What a closing client still had in flight, or one that goes on past its limits.
        if (c->is_closing() || user.over_limit) return;
        // The connection's own budget first: a connection over it does not use up its
        // address's, which other connections from there share.
        if (!within_budget(c, user.limiter.admit(steady_clock::now()),
                           "more than " + std::to_string(rate_) + " messages per second"))
            return;
        if (!within_budget(c, addresses_->admit_message(user.address.key()),
                           "more than " + std::to_string(addresses_->rate()) +
                               " messages per second from your address"))
            return;
        if (!m.is_text()) return bad_request(c, "invalid_json", "binary messages are not JSON");
        {
            std::lock_guard<std::mutex> lock(inbox_mutex_);
            if (inbox_bytes_ + m.data.size() <= max_inbox_bytes) {
                push_request({c, std::string(m.data), false});
                return;
            }
        }
        ++metrics_.server_busy;
        send_error(c, "server_busy", "the server is busy: your message was not read, try again");
    }

    // Under inbox_mutex_.
    void push_request(inbound_request request) {
        inbox_bytes_ += request.text.size();
        inbox_.push_back(std::move(request));
        if (!inbox_scheduled_) {
            inbox_scheduled_ = true;
            asio::post(io_, [this] { handle_requests(); });
        }
    }

    // Handles the chat requests that were read, in order, for at most slice_time, then
    // yields the loop and carries on in a later turn. A read can hold dozens of messages and
    // a turn of the loop up to 128 reads: parsing and answering them all inside the read
    // handlers kept a flood of 10,000 from 1,000 clients between the loop and /health.
    void handle_requests() {
        const auto deadline = steady_clock::now() + slice_time;
        for (;;) {
            inbound_request request;
            {
                std::lock_guard<std::mutex> lock(inbox_mutex_);
                if (inbox_.empty()) {
                    inbox_scheduled_ = false;
                    return;
                }
                request = std::move(inbox_.front());
                inbox_.pop_front();
                inbox_bytes_ -= request.text.size();
            }
            if (request.close_for_abuse)
                request.connection->close(duplex::protocol::close_code::policy_violation,
                                          "rate limit exceeded");
            else if (!request.connection->is_closing())
                handle(request.connection, request.text);
            if (steady_clock::now() >= deadline) break;
        }
        asio::post(io_, [this] { handle_requests(); });
    }

    void handle(const connection_ptr& c, std::string_view text) {
        const json request = json::parse(text, nullptr, false);
        if (request.is_discarded() || !request.is_object())
            return bad_request(c, "invalid_json", "a message must be a JSON object");
        const auto event = request.find("event");
        if (event == request.end() || !event->is_string())
            return bad_request(c, "missing_event", "a message needs an \"event\" string");
        const auto& name = event->get_ref<const std::string&>();
        if (name == "ping") return send(c, {{"event", "pong"}, {"ts", unix_time_ms()}});
        if (name == "message") return on_chat_message(c, request);
        bad_request(c, "unknown_event",
                    "unknown event \"" + std::string(first_code_points(name, 40)) + "\"");
    }

    // False when the message is refused: the sender is told (rate_limited), or closed with
    // 1008 when it goes on sending far over its budget.
    bool within_budget(const connection_ptr& c, rate_limiter::verdict verdict,
                       const std::string& why) {
        switch (verdict) {
        case rate_limiter::verdict::pass: return true;
        case rate_limiter::verdict::refuse:
            ++metrics_.rate_limited;
            send_error(c, "rate_limited", why);
            return false;
        case rate_limiter::verdict::close: {
            ++metrics_.rate_limited;
            // Behind the requests read before it, which are answered first; what the
            // connection sends from now on is ignored.
            c->data().over_limit = true;
            std::lock_guard<std::mutex> lock(inbox_mutex_);
            push_request({c, {}, true});
            return false;
        }
        }
        return false;
    }

    void on_chat_message(const connection_ptr& c, const json& request) {
        const auto text = request.find("text");
        if (text == request.end() || !text->is_string() ||
            text->get_ref<const std::string&>().empty())
            return bad_request(c, "invalid_message", "a message needs a non-empty \"text\" string");
        const std::string_view full = text->get_ref<const std::string&>();
        const std::string_view kept = first_code_points(full, max_text_code_points);
        const chat_user& user = c->data();
        json event = {{"event", "message"},
                      {"room", user.room},
                      {"user", user.name},
                      {"text", kept},
                      {"ts", unix_time_ms()}};
        if (kept.size() != full.size()) event["truncated"] = true;
        const std::string payload = to_text(event);
        if (enqueue(user.room, pending_event(duplex::shared_message::text(payload)))) {
            if (plane_) publish_remote(user.room, payload);
            return;
        }
        ++metrics_.room_busy;
        send_error(c, "room_busy", "the room is busy: your message was not sent, try again");
    }

    // Queues a chat message or a presence event for its room's fan-out. False when a chat
    // message finds the room's queue full. Never takes publish_mutex_ (see on_presence).
    bool enqueue(const std::string& room, pending_event event) {
        std::lock_guard<std::mutex> lock(outbox_mutex_);
        auto& box = outboxes_[room];
        if (!event.presence_of && box.messages >= max_room_backlog) return false;
        if (!event.presence_of) ++box.messages;
        box.pending.push_back(std::move(event));
        if (!box.scheduled) {
            box.scheduled = true;
            asio::post(io_, [this, room] { fan_out(room); });
        }
        return true;
    }

    // Sends a room's waiting events, in order, for at most slice_time, then yields the loop to
    // everything else that is ready and carries on in a later turn (a turn ends between two
    // member sends, within a message if need be). The sender gets its own message as well: its
    // page shows it with the server's timestamp, in the room's order.
    //
    // Who gets an event is decided when its fan-out starts, under publish_mutex_, which every
    // join holds while it reads the history and queues its join_ack: a chat message enters the
    // history at that moment, so a newcomer finds it either in its history (then it is not in
    // the list of recipients) or gets it live (then it was not in the history).
    void fan_out(const std::string& room) {
        std::lock_guard<std::mutex> publishing(publish_mutex_);
        const auto deadline = steady_clock::now() + slice_time;
        outbox* box = nullptr;
        {
            std::lock_guard<std::mutex> lock(outbox_mutex_);
            auto it = outboxes_.find(room);
            if (it == outboxes_.end()) return;
            box = &it->second; // stable: only this room's fan_out erases it
        }
        for (;;) {
            if (!box->current) {
                std::lock_guard<std::mutex> lock(outbox_mutex_);
                if (box->pending.empty()) {
                    outboxes_.erase(room);
                    return;
                }
                box->current = std::move(box->pending.front());
                box->pending.pop_front();
                if (!box->current->presence_of) --box->messages;
                start(room, *box->current);
            }
            if (!deliver_until(*box->current, deadline)) break;
            box->current.reset();
        }
        asio::post(io_, [this, room] { fan_out(room); });
    }

    // Fixes the recipients of an event that begins its fan-out; a chat message joins the
    // room's history, a presence event that emptied the room retires it.
    void start(const std::string& room, pending_event& event) {
        event.recipients = rooms_.members(room);
        if (event.remote_presence) {
            // Nothing to keep: it is about someone on another process.
        } else if (!event.presence_of) {
            auto& kept = history_[room];
            kept.push_back(event.message);
            if (kept.size() > history_size) kept.pop_front();
        } else if (event.emptied) {
            retain_empty(room);
        }
    }

    // False when the deadline came first; the event then goes on in the next turn.
    bool deliver_until(pending_event& event, steady_clock::time_point deadline) {
        std::size_t delivered = 0;
        bool done = true;
        while (event.next < event.recipients.size()) {
            if (steady_clock::now() >= deadline) {
                done = false;
                break;
            }
            const auto& member = event.recipients[event.next++];
            // Presence only to those who were there before it: a later newcomer's join_ack
            // already says who is in the room. And not to the one it is about.
            if (event.presence_of &&
                (member.get() == event.presence_of || member->data().joined > event.epoch))
                continue;
            if (rooms_.send_to(member, event.message)) ++delivered;
        }
        metrics_.sent(delivered, event.message.payload().size());
        if (done) event.recipients.clear();
        return done;
    }

    // The history of a room that has emptied is kept for whoever comes back, for the most
    // recent max_retained_empty_rooms such rooms: room names come from clients, and must not
    // grow memory without bound.
    void retain_empty(const std::string& room) {
        if (history_.find(room) == history_.end()) return;
        retained_empty_.push_back(room);
        while (retained_empty_.size() > max_retained_empty_rooms) {
            const std::string oldest = std::move(retained_empty_.front());
            retained_empty_.pop_front();
            // It may have filled up again since (then its history is still in use), or emptied
            // again (then it is retained by its later entry).
            const bool retained_later = std::find(retained_empty_.begin(), retained_empty_.end(),
                                                  oldest) != retained_empty_.end();
            if (!retained_later && rooms_.member_count(oldest) == 0) history_.erase(oldest);
        }
    }

    // Runs inside rooms_.join() (under publish_mutex_) or at close on the leaving connection's
    // strand, possibly inside a fan_out that holds publish_mutex_: must not take it.
    void on_presence(const duplex::presence_event<connection_type>& e) {
        const bool joined = e.kind == duplex::presence_kind::joined;
        auto message = duplex::shared_message::text(to_text({{"event", "presence"},
                                                             {"kind", joined ? "join" : "leave"},
                                                             {"user", e.connection->data().name},
                                                             {"room", e.room},
                                                             {"count", e.member_count}}));
        if (plane_) {
            // In this order: the presence entry, then (for the room's first member here) the
            // subscription, then the event. A process that receives the event and then asks
            // Redis for the members finds this one (docs/rooms.md, presence event order).
            const std::string id = member_id(*e.connection);
            if (joined)
                plane_->presence_add(e.room, id);
            else
                plane_->presence_remove(e.room, id);
            if (joined && e.member_count == 1) plane_->subscribe(node_, e.room);
            // Without the count, which is this process's alone.
            publish_remote(std::string(e.room), to_text({{"event", "presence"},
                                                         {"kind", joined ? "join" : "leave"},
                                                         {"user", e.connection->data().name},
                                                         {"room", e.room}}));
            if (!joined && e.member_count == 0) plane_->unsubscribe(node_, e.room);
        }
        pending_event event(std::move(message));
        event.presence_of = e.connection.get();
        event.epoch = ++epoch_;
        event.emptied = !joined && e.member_count == 0;
        enqueue(std::string(e.room), std::move(event));
    }

    // ---- the Redis backplane (--redis)

    // A member's presence entry in Redis: this process's node id, the member's join number
    // (unique here), and its name, which is what other processes show.
    std::string member_id(const connection_type& c) const {
        return std::to_string(node_) + ":" + std::to_string(c.data().joined) + ":" + c.data().name;
    }

    // The name in another process's entry; nothing for this process's own entries.
    std::optional<std::string> remote_name(const std::string& id) const {
        const std::size_t first = id.find(':');
        const std::size_t second = first == std::string::npos ? first : id.find(':', first + 1);
        if (second == std::string::npos || id.compare(0, first, std::to_string(node_)) == 0)
            return std::nullopt;
        return id.substr(second + 1);
    }

    void publish_remote(const std::string& room, std::string payload) {
        duplex::backplane_message m;
        m.origin = node_;
        m.room = room;
        m.type = duplex::opcode::text;
        m.payload = std::move(payload);
        plane_->publish(m);
    }

    // A chat message or presence event from another process: fanned out here like our own,
    // a message into the room's history, presence not.
    void on_remote(const duplex::backplane_message& m) {
        const json event = json::parse(m.payload, nullptr, false);
        if (event.is_discarded() || !event.is_object()) return;
        const bool presence = event.value("event", std::string()) == "presence";
        auto message = duplex::shared_message::text(m.payload);
        if (!message) return;
        pending_event pending(std::move(message));
        pending.remote_presence = presence;
        if (!enqueue(m.room, std::move(pending))) ++metrics_.room_busy;
    }

    void send(const connection_ptr& c, const json& event) {
        const std::string text = to_text(event);
        if (accepted(c->send_text(text))) metrics_.sent(1, text.size());
    }

    void send_error(const connection_ptr& c, const char* code, const std::string& message) {
        send(c, {{"event", "error"}, {"code", code}, {"message", message}});
    }

    // A message that breaks the protocol: answered with an error event, the connection stays.
    void bad_request(const connection_ptr& c, const char* code, const std::string& message) {
        ++metrics_.bad_requests;
        send_error(c, code, message);
    }

    static bool accepted(duplex::send_status status) {
        return status == duplex::send_status::ok || status == duplex::send_status::backpressure;
    }

    // What one room still has to send (see fan_out): chat messages and presence, in order.
    struct outbox {
        std::optional<pending_event> current; // being sent; only fan_out touches it
        std::deque<pending_event> pending;
        std::size_t messages = 0; // chat messages in `pending`, bounded by max_room_backlog
        bool scheduled = false;   // a fan_out for this room is posted
    };

    asio::io_context& io_;
    const std::string token_;
    const unsigned rate_;
    const std::vector<std::string> allow_origins_;
    const std::shared_ptr<address_budget> addresses_; // shared with the slots in user data
    chat_metrics metrics_;
    std::mutex publish_mutex_; // joins with their join_ack, and every fan-out
    std::mutex outbox_mutex_;  // outboxes_; taken after publish_mutex_ when both are
    std::unordered_map<std::string, outbox> outboxes_;
    // Under publish_mutex_: each room's last history_size chat messages, oldest first, and the
    // emptied rooms whose history is kept, oldest first.
    std::unordered_map<std::string, std::deque<duplex::shared_message>> history_;
    std::deque<std::string> retained_empty_;
    std::atomic<std::uint64_t> epoch_{0}; // orders joins and presence events
    std::mutex inbox_mutex_;              // the four below
    std::deque<inbound_request> inbox_;
    std::size_t inbox_bytes_ = 0; // text in inbox_, bounded by max_inbox_bytes
    bool inbox_scheduled_ = false;
    duplex::rooms<connection_type> rooms_;
    // With --redis: chat messages and presence to and from other processes. Our own fan-out
    // (above) stays; the backplane only carries what crosses.
    std::unique_ptr<duplex::redis_backplane> plane_;
    std::uint64_t node_ = 0;
    server_type server_; // last: destroyed first, while the rest is still there
};

template <class Transport>
int serve(const arguments& args, typename Transport::context_type context) {
    asio::io_context io;
    chat_service<Transport> chat(io, args, std::move(context));
    auto& server = chat.server();
    if (auto ec = server.listen(args.host, args.port)) {
        std::fprintf(stderr, "cannot listen on %s:%u: %s\n", args.host.c_str(), args.port,
                     ec.message().c_str());
        return 1;
    }
    // Before announcing the address: a supervisor may signal as soon as it reads it.
    asio::signal_set signals(io, SIGINT, SIGTERM);
    signals.async_wait([&](std::error_code, int) { server.stop(); });

    const bool v6 = args.host.find(':') != std::string::npos;
    const std::string authority =
        (v6 ? "[" + args.host + "]" : args.host) + ":" + std::to_string(server.port());
    const char* http = Transport::is_secure ? "https" : "http";
    const char* ws = Transport::is_secure ? "wss" : "ws";
    std::printf("chat server listening on %s://%s/\n", http, authority.c_str());
    std::printf("  chat: %s://%s/ws?name=NAME&room=ROOM%s   echo: %s://%s/echo\n", ws,
                authority.c_str(), args.token.empty() ? "" : "&token=TOKEN", ws, authority.c_str());
    std::printf("  health: %s://%s/health   metrics: %s://%s/metrics\n", http, authority.c_str(),
                http, authority.c_str());
    std::printf("  token: %s, rate limit: %u messages/s per connection\n",
                args.token.empty() ? "none required" : "required", args.rate);
    std::printf("  per address: %u connections, %u messages/s (burst %u); origins: %s\n",
                args.address_connections, args.address_rate, args.address_burst,
                args.allow_origins.empty() ? "the page's own" : "as listed");
    std::fflush(stdout);
    io.run();
    return 0;
}

} // namespace

int main(int argc, char** argv) {
    const arguments args = parse(argc, argv);
    if (args.tls_cert.empty()) return serve<duplex::transport::tcp>(args, {});
#if defined(DUPLEX_ENABLE_TLS)
    std::error_code ec;
    auto context = duplex::transport::tls::server_context(args.tls_cert, args.tls_key, ec);
    if (ec) {
        std::fprintf(stderr, "TLS setup failed: %s\n", ec.message().c_str());
        return 1;
    }
    return serve<duplex::transport::tls>(args, std::move(context));
#else
    std::fprintf(stderr, "this build has no TLS support (configure with OpenSSL)\n");
    return 1;
#endif
}
