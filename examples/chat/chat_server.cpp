// chat_server — a multi-room chat: a web page, JSON events over WebSocket, rooms with presence
// and history, a token check at the upgrade, per-connection rate limits, health and metrics.
//
//   chat_server [--host H] [--port P] [--token T] [--rate N] [--tls-cert FILE --tls-key FILE]
//
//   GET /          the chat page (embedded in the binary: no files to deploy)
//   GET /ws        the chat WebSocket: /ws?name=NAME&room=ROOM&token=TOKEN
//   GET /echo      a plain echo WebSocket (no token)
//   GET /health    {"status":"ok","connections":N}
//   GET /metrics   Prometheus text format
//
// Defaults: 127.0.0.1, port 8080 (0 picks a free one), no token unless $DUPLEX_CHAT_TOKEN is
// set, 10 messages per second per connection. With a certificate and key it serves https://
// and wss:// instead. SIGINT or SIGTERM shuts it down gracefully. examples/chat/README.md
// describes the events; tests/interop/browser_chat.mjs drives it from headless Chromium.
#include "chat_page.hpp" // generated from index.html by CMake

#include <duplex/duplex.hpp>

#include <asio/signal_set.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
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

struct arguments {
    std::string host = "127.0.0.1";
    std::uint16_t port = 8080;
    std::string token;
    unsigned rate = 10;
    std::string tls_cert;
    std::string tls_key;
};

[[noreturn]] void usage(const char* program) {
    std::fprintf(
        stderr,
        "usage: %s [--host H] [--port P] [--token T] [--rate N]"
        " [--tls-cert FILE --tls-key FILE]\n"
        "  --token T  required from chat clients (default: $DUPLEX_CHAT_TOKEN, else none)\n"
        "  --rate N   chat messages per second per connection, burst N (default 10)\n",
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
        else if (flag == "--tls-cert")
            a.tls_cert = value;
        else if (flag == "--tls-key")
            a.tls_key = value;
        else
            usage(argv[0]);
    }
    if (a.rate == 0 || a.tls_cert.empty() != a.tls_key.empty()) usage(argv[0]);
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

// 1 to 32 code points of UTF-8 without control characters or surrounding spaces, so that a
// name renders as one line and "alice " cannot pass for "alice".
bool is_valid_name(std::string_view name) {
    if (name.empty() || name.front() == ' ' || name.back() == ' ') return false;
    if (!duplex::protocol::is_valid_utf8(name)) return false;
    const bool has_control = std::any_of(name.begin(), name.end(), [](char c) {
        return static_cast<unsigned char>(c) < 0x20U || c == 0x7F;
    });
    return !has_control && count_code_points(name) <= max_name_code_points;
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

// A token bucket of `rate` messages per second with a burst of `rate`. What exceeds it is
// refused; more than `rate` refusals within abuse_window is abuse, and closes the connection.
class rate_limiter {
public:
    enum class verdict { pass, refuse, close };

    rate_limiter() : rate_limiter(10) {}
    explicit rate_limiter(unsigned rate)
        : rate_(rate), tokens_(rate), refilled_(steady_clock::now()) {}

    verdict admit(steady_clock::time_point now) {
        const std::chrono::duration<double> elapsed = now - refilled_;
        refilled_ = now;
        tokens_ = std::min(static_cast<double>(rate_), tokens_ + elapsed.count() * rate_);
        if (tokens_ >= 1.0) {
            tokens_ -= 1.0;
            return verdict::pass;
        }
        if (now - window_start_ > abuse_window) {
            window_start_ = now;
            excess_ = 0;
        }
        return ++excess_ > rate_ ? verdict::close : verdict::refuse;
    }

private:
    unsigned rate_;
    double tokens_;
    steady_clock::time_point refilled_;
    steady_clock::time_point window_start_{};
    unsigned excess_ = 0;
};

enum class endpoint { chat, echo };

// Filled in on_upgrade. `name` and `room` never change afterwards, so any thread may read
// them (presence and join_ack list the other members' names); `limiter` is only touched by
// the connection's own handlers, which never run at the same time.
struct chat_user {
    endpoint kind = endpoint::chat;
    std::string name;
    std::string room;
    rate_limiter limiter;
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
    std::atomic<std::uint64_t> connection_errors{0}; // protocol violations, 1009, timeouts

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
        sample("duplex_chat_errors_total{kind=\"connection\"}", connection_errors.load());
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

    chat_service(asio::io_context& io, const arguments& args,
                 typename Transport::context_type context)
        : token_(args.token), rate_(args.rate), rooms_(rooms_options()),
          server_(io, server_options(), std::move(context)) {
        rooms_.on_presence(
            [this](const duplex::presence_event<connection_type>& e) { on_presence(e); });
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
        };
    }

    server_type& server() noexcept { return server_; }

private:
    static duplex::rooms_options rooms_options() {
        duplex::rooms_options options;
        options.history_size = history_size;
        return options;
    }

    static duplex::server_options server_options() {
        duplex::server_options options;
        options.connection.protocol.max_message_size = max_message_bytes;
        options.connection.protocol.max_frame_size = max_message_bytes;
        return options;
    }

    // ---- HTTP and the upgrade

    admission admit(const duplex::request_info& request) const {
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
        user.limiter = rate_limiter(rate_);
        if (request.path() == "/echo") {
            user.kind = endpoint::echo;
            return duplex::upgrade_decision::accept();
        }
        if (request.path() != "/ws") {
            ++metrics_.upgrades_refused;
            return duplex::upgrade_decision::reject(404, "WebSocket endpoints: /ws and /echo\n");
        }
        admission a = admit(request);
        if (a.status != 0) {
            ++metrics_.upgrades_refused;
            return duplex::upgrade_decision::reject(a.status, a.reason + "\n");
        }
        user.kind = endpoint::chat;
        user.name = std::move(a.name);
        user.room = std::move(a.room);
        return duplex::upgrade_decision::accept();
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
            return {200,
                    "application/json",
                    to_text({{"status", "ok"}, {"connections", open}}),
                    {{"Cache-Control", "no-store"}}};
        }
        if (path == "/metrics")
            return {200, "text/plain; version=0.0.4; charset=utf-8", metrics_.prometheus(), {}};
        if (path == "/ws" || path == "/echo") {
            if (path == "/ws")
                if (admission a = admit(request); a.status != 0)
                    return {a.status, "text/plain; charset=utf-8", a.reason + "\n", {}};
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
        // Joining, reading the history and queueing the join_ack happen under the lock that
        // every publish takes, so with several io threads the newcomer gets each message
        // exactly once: in the history, or live after its join_ack.
        std::lock_guard<std::mutex> lock(publish_mutex_);
        if (!rooms_.join(c, user.room)) return; // closed in the meantime
        std::vector<std::string> names;
        for (const auto& member : rooms_.members(user.room)) names.push_back(member->data().name);
        std::sort(names.begin(), names.end());
        json history = json::array();
        for (const auto& entry : rooms_.history(user.room)) {
            // Only this program publishes, and only JSON: the check is for the next edit.
            json past = json::parse(entry.message.payload(), nullptr, false);
            if (!past.is_discarded()) history.push_back(std::move(past));
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
        if (c->is_closing()) return; // what a closing client still had in flight
        switch (user.limiter.admit(steady_clock::now())) {
        case rate_limiter::verdict::pass: break;
        case rate_limiter::verdict::refuse:
            ++metrics_.rate_limited;
            return send_error(c, "rate_limited",
                              "more than " + std::to_string(rate_) + " messages per second");
        case rate_limiter::verdict::close:
            ++metrics_.rate_limited;
            return c->close(duplex::protocol::close_code::policy_violation, "rate limit exceeded");
        }
        if (!m.is_text()) return bad_request(c, "invalid_json", "binary messages are not JSON");
        const json request = json::parse(m.data, nullptr, false);
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
        const auto message = duplex::shared_message::text(to_text(event));
        std::lock_guard<std::mutex> lock(publish_mutex_);
        // To the sender as well: its page shows the message with the server's timestamp.
        const auto result = rooms_.publish(user.room, message);
        metrics_.sent(result.delivered, message.payload().size());
    }

    // Runs inside rooms_.join() (under publish_mutex_) or at close on the leaving connection's
    // strand: must not take publish_mutex_. Presence is sent to the members one by one rather
    // than published, so that a room's history holds chat messages only.
    void on_presence(const duplex::presence_event<connection_type>& e) {
        const bool joined = e.kind == duplex::presence_kind::joined;
        const auto message =
            duplex::shared_message::text(to_text({{"event", "presence"},
                                                  {"kind", joined ? "join" : "leave"},
                                                  {"user", e.connection->data().name},
                                                  {"room", e.room},
                                                  {"count", e.member_count}}));
        std::size_t delivered = 0;
        for (const auto& member : rooms_.members(e.room))
            if (member != e.connection && accepted(member->send(message))) ++delivered;
        metrics_.sent(delivered, message.payload().size());
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

    const std::string token_;
    const unsigned rate_;
    chat_metrics metrics_;
    std::mutex publish_mutex_;
    duplex::rooms<connection_type> rooms_;
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
