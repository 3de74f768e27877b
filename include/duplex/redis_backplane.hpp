// duplex/redis_backplane.hpp — rooms shared by many processes through Redis pub/sub.
// SPDX-License-Identifier: BSL-1.0
//
// A `backplane` (rooms.hpp) that carries room messages between processes through a Redis
// server: each process opens one subscriber and one publisher connection, over duplex's own
// tcp transport (redis://) or tls transport with certificate and host-name verification
// (rediss://, with duplex::tls). Nothing else is needed: the RESP codec is redis/resp.hpp.
//
//   asio::io_context io;
//   duplex::redis_backplane_options o;
//   o.url = "redis://127.0.0.1:6379/0";
//   auto plane = std::make_shared<duplex::redis_backplane>(io.get_executor(), o);
//   duplex::rooms<server_type::connection_type> rooms({}, plane);
//
// What it guarantees (docs/rooms.md says it at length):
//   - Per publisher, in order: one publisher connection writes in publish order, and Redis
//     delivers one connection's messages in order.
//   - At most once. Redis pub/sub keeps nothing: what is published while a subscriber is
//     disconnected never reaches it. While Redis is away, this process's own publishes wait
//     in a bounded queue (options: messages and bytes; drop the oldest or refuse the newest)
//     and go out in order once both connections are back and subscribed again. PUBLISHes
//     written but not acknowledged when the connection fails are not resent (they may have
//     been delivered) and are counted as `unconfirmed`.
//   - A node never receives its own messages: each carries its origin, and Redis's echo of
//     it is filtered here.
//
// Threads: every member function may be called from any thread. The connections run on a
// strand of the executor given at construction; receivers and the state handler run there.
// After detach(node) returns, that node's receiver is not running and never runs again; after
// the destructor returns, no callback is. A receiver may publish, subscribe and detach, but
// must not wait for another thread that is itself detaching or destroying this backplane.
#pragma once

#include "redis/resp.hpp"
#include "redis/url.hpp"
#include "rooms.hpp"
#include "transport/tcp.hpp"
#if defined(DUPLEX_ENABLE_TLS)
#include "transport/tls.hpp"
#endif

#include <asio/any_io_executor.hpp>
#include <asio/bind_executor.hpp>
#include <asio/connect.hpp>
#include <asio/dispatch.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/strand.hpp>
#include <asio/write.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <system_error>
#include <unordered_map>
#include <utility>
#include <vector>

namespace duplex {

// What happens to a publish when the queue for Redis is full (Redis away or slow).
enum class redis_overflow {
    drop_oldest, // the oldest queued message is dropped: the newest state wins
    reject_new,  // the new message is dropped: what was queued first goes first
};

enum class redis_state {
    connecting, // connecting, authenticating or subscribing (at start, or again after a loss)
    up,         // both connections ready and subscribed: publishes flow
    down,       // the connection failed; a reconnect is scheduled
    stopped,    // destroyed, or the configuration cannot work (a bad URL); no more attempts
};

inline const char* to_string(redis_state s) noexcept {
    switch (s) {
    case redis_state::connecting: return "connecting";
    case redis_state::up: return "up";
    case redis_state::down: return "down";
    case redis_state::stopped: return "stopped";
    }
    return "unknown";
}

struct redis_backplane_options {
    std::string url = "redis://127.0.0.1:6379/0";
    // Every channel this backplane uses starts with it: one Redis can serve several
    // applications. Rooms are on "<prefix>room:<name>", publish_all on "<prefix>all".
    std::string channel_prefix = "duplex:";
    int resp_version = 3; // 3: HELLO 3 (Redis 6+); 2: plain RESP2 and AUTH (older servers)

    // The queue for Redis while it is away (or slower than the publishers).
    std::size_t max_queued_messages = 10000;
    std::size_t max_queued_bytes = 16 * 1024 * 1024;
    redis_overflow on_overflow = redis_overflow::drop_oldest;

    // Reconnect delays double from min to max; each is jittered down to half, so that many
    // processes that lost Redis together do not come back in one burst.
    std::chrono::milliseconds reconnect_min = std::chrono::milliseconds(100);
    std::chrono::milliseconds reconnect_max = std::chrono::seconds(5);
    // For resolving, connecting, the TLS handshake, authenticating and subscribing.
    std::chrono::milliseconds connect_timeout = std::chrono::seconds(5);
    // A PING on each connection this often; a connection that received nothing for two
    // intervals is dead (a stalled network, a frozen server). Zero turns this off.
    std::chrono::milliseconds ping_interval = std::chrono::seconds(5);

    // Presence (presence_add): each entry lives this long unless its process refreshes it,
    // which it does every presence_refresh while up (and at once after a reconnect).
    std::chrono::milliseconds presence_ttl = std::chrono::seconds(30);
    std::chrono::milliseconds presence_refresh = std::chrono::seconds(10);

    // The largest room message carried (its payload); bigger ones are dropped and counted.
    std::size_t max_message_size = 16 * 1024 * 1024;

    // Called on every state change, on the backplane's strand. The error says why for down
    // and stopped (resp_errc::auth_failed for a wrong password, an Asio error, a timeout).
    std::function<void(redis_state, std::error_code)> on_state;

#if defined(DUPLEX_ENABLE_TLS)
    // For rediss://: empty means a context that verifies against the system's CAs
    // (transport::tls::client_context()); add a private CA with load_verify_file.
    transport::tls::context_type tls_context;
#endif
};

struct redis_backplane_counters {
    std::uint64_t publishes = 0;   // PUBLISHes Redis acknowledged
    std::uint64_t deliveries = 0;  // messages from other nodes handed to local nodes
    std::uint64_t reconnects = 0;  // connection attempts after the first
    std::uint64_t drops = 0;       // publishes dropped: queue full, too big, or stopped
    std::uint64_t unconfirmed = 0; // written but not acknowledged when a connection failed
    std::uint64_t malformed = 0;   // channel messages that were no valid envelope
    std::uint64_t channels = 0;    // channels subscribed, as Redis last confirmed
};

// The envelope of one room message on a Redis channel, binary-safe:
//   byte 0       format version (1)
//   bytes 1-8    origin node, big-endian
//   byte 9       audience: 0 room, 1 everyone
//   byte 10      opcode: 1 text, 2 binary
//   bytes 11-14  room name length, big-endian
//   then the room name, then the payload (the rest).
// The room travels inside although the channel names it too, so that a receiver never has to
// parse a channel name (prefixes are configurable) and can check both agree.
namespace redis_envelope {
inline constexpr std::size_t header_size = 15;

inline void append(std::string& out, const backplane_message& m) {
    out.reserve(out.size() + header_size + m.room.size() + m.payload.size());
    out.push_back('\1');
    for (int shift = 56; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((m.origin >> static_cast<unsigned>(shift)) & 0xffU));
    out.push_back(m.to == audience::everyone ? '\1' : '\0');
    out.push_back(static_cast<char>(static_cast<std::uint8_t>(m.type)));
    const auto room_size = static_cast<std::uint32_t>(m.room.size());
    for (int shift = 24; shift >= 0; shift -= 8)
        out.push_back(static_cast<char>((room_size >> static_cast<unsigned>(shift)) & 0xffU));
    out += m.room;
    out += m.payload;
}

// False for anything that is not an envelope this version wrote.
inline bool parse(std::string_view in, backplane_message& m) {
    if (in.size() < header_size || in[0] != '\1') return false;
    const auto byte = [&](std::size_t i) { return static_cast<std::uint8_t>(in[i]); };
    std::uint64_t origin = 0;
    for (std::size_t i = 1; i <= 8; ++i) origin = (origin << 8U) | byte(i);
    if (byte(9) > 1) return false;
    if (byte(10) != static_cast<std::uint8_t>(protocol::opcode::text) &&
        byte(10) != static_cast<std::uint8_t>(protocol::opcode::binary))
        return false;
    std::uint32_t room_size = 0;
    for (std::size_t i = 11; i <= 14; ++i) room_size = (room_size << 8U) | byte(i);
    if (room_size > in.size() - header_size) return false;
    m.origin = origin;
    m.to = byte(9) == 1 ? audience::everyone : audience::room;
    m.type = static_cast<protocol::opcode>(byte(10));
    m.room.assign(in.substr(header_size, room_size));
    m.payload.assign(in.substr(header_size + room_size));
    return m.to == audience::room || m.room.empty();
}
} // namespace redis_envelope

namespace detail {

// What redis_backplane asks of its implementation, whichever transport it runs over.
class redis_plane_impl {
public:
    virtual ~redis_plane_impl() = default;
    virtual void start() = 0;
    virtual void stop() = 0;
    virtual std::uint64_t attach(backplane::receiver on_message) = 0;
    virtual void detach(std::uint64_t node) = 0;
    virtual void subscribe(std::uint64_t node, std::string_view room) = 0;
    virtual void unsubscribe(std::uint64_t node, std::string_view room) = 0;
    virtual void publish(const backplane_message& message) = 0;
    virtual void presence_add(std::string_view room, std::string_view member) = 0;
    virtual void presence_remove(std::string_view room, std::string_view member) = 0;
    virtual void
    presence_members(std::string_view room,
                     std::function<void(std::error_code, std::vector<std::string>)> done) = 0;
    virtual redis_state state() const = 0;
    virtual std::error_code last_error() const = 0;
    virtual redis_backplane_counters counters() const = 0;
};

// Shared by every transport: nodes, wanted rooms, the queue for Redis and the counters,
// under one mutex; everything else lives on the strand.
class redis_plane_common : public redis_plane_impl {
public:
    explicit redis_plane_common(redis_backplane_options o) : options_(std::move(o)) {
        std::random_device seed;
        rng_.seed((std::uint64_t{seed()} << 32U) ^ seed());
    }

    std::uint64_t attach(backplane::receiver on_message) override {
        std::uint64_t node = 0;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            // Random, so that node ids of different processes differ: the origin filter
            // compares them across processes.
            do node = rng_();
            while (node == 0 || nodes_.count(node) != 0);
            nodes_[node].on_message = std::make_shared<backplane::receiver>(std::move(on_message));
        }
        request_sync();
        return node;
    }

    void detach(std::uint64_t node) override {
        {
            // Not while a delivery runs: once detach returns, the node's receiver never runs.
            std::lock_guard<std::recursive_mutex> callbacks(callbacks_mutex_);
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = nodes_.find(node);
            if (it == nodes_.end()) return;
            for (const auto& room : it->second.rooms) release_room(room);
            nodes_.erase(it);
        }
        request_sync();
    }

    void subscribe(std::uint64_t node, std::string_view room) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = nodes_.find(node);
            if (it == nodes_.end() || !it->second.rooms.emplace(room).second) return;
            ++wanted_rooms_[std::string(room)];
        }
        request_sync();
    }

    void unsubscribe(std::uint64_t node, std::string_view room) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = nodes_.find(node);
            if (it == nodes_.end()) return;
            auto at = it->second.rooms.find(room);
            if (at == it->second.rooms.end()) return;
            release_room(*at);
            it->second.rooms.erase(at);
        }
        request_sync();
    }

    void publish(const backplane_message& message) override {
        if (message.payload.size() > options_.max_message_size) {
            count(counters_.drops);
            return;
        }
        std::string body;
        redis_envelope::append(body, message);
        std::string command;
        append_command_with(command, message, body);
        if (enqueue(std::move(command), reply_kind::publish)) request_flush();
    }

    // Presence entries are members of a sorted set per room, scored by the time (ms since
    // the epoch) they expire; each process re-adds its own entries every presence_refresh.
    void presence_add(std::string_view room, std::string_view member) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!local_presence_[std::string(room)].emplace(member).second) return;
        }
        std::string command;
        redis::append_command(command, {"ZADD", presence_key(room), expiry_score(), member});
        if (enqueue(std::move(command), reply_kind::other)) request_flush();
    }

    void presence_remove(std::string_view room, std::string_view member) override {
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = local_presence_.find(room);
            if (it == local_presence_.end() || it->second.erase(std::string(member)) == 0) return;
            if (it->second.empty()) local_presence_.erase(it);
        }
        std::string command;
        redis::append_command(command, {"ZREM", presence_key(room), member});
        if (enqueue(std::move(command), reply_kind::other)) request_flush();
    }

    void
    presence_members(std::string_view room,
                     std::function<void(std::error_code, std::vector<std::string>)> done) override {
        request_query(presence_key(room), std::move(done));
    }

    redis_state state() const override { return state_.load(); }
    std::error_code last_error() const override {
        std::lock_guard<std::mutex> lock(mutex_);
        return last_error_;
    }
    redis_backplane_counters counters() const override {
        std::lock_guard<std::mutex> lock(mutex_);
        return counters_;
    }

protected:
    struct node_record {
        std::shared_ptr<backplane::receiver> on_message;
        std::set<std::string, std::less<>> rooms;
    };

    enum class reply_kind { publish, other, ping, query };

    struct queued_command {
        std::string bytes;
        reply_kind kind;
    };

    virtual void request_sync() = 0;
    virtual void request_flush() = 0;
    virtual void request_query(std::string key,
                               std::function<void(std::error_code, std::vector<std::string>)>) = 0;

    std::string presence_key(std::string_view room) const {
        std::string key = options_.channel_prefix;
        key += "presence:";
        key += room;
        return key;
    }

    static long long now_ms() {
        using namespace std::chrono;
        return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    }
    std::string expiry_score() const {
        return std::to_string(now_ms() + options_.presence_ttl.count());
    }

    // Queues a command for the publisher connection under the overflow policy.
    bool enqueue(std::string command, reply_kind kind) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (stopped_ || !make_room_for(command.size())) {
            ++counters_.drops;
            return false;
        }
        queued_bytes_ += command.size();
        queue_.push_back({std::move(command), kind});
        return true;
    }

    std::string room_channel(std::string_view room) const {
        std::string channel = options_.channel_prefix;
        channel += "room:";
        channel += room;
        return channel;
    }
    std::string all_channel() const { return options_.channel_prefix + "all"; }

    void append_command_with(std::string& out, const backplane_message& m,
                             const std::string& body) const {
        const std::string channel =
            m.to == audience::everyone ? all_channel() : room_channel(m.room);
        redis::append_command(out, {"PUBLISH", channel, body});
    }

    // Under the lock.
    void release_room(const std::string& room) {
        auto it = wanted_rooms_.find(room);
        if (it != wanted_rooms_.end() && --it->second == 0) wanted_rooms_.erase(it);
    }

    // Under the lock: whether a command of `size` bytes may be queued now.
    bool make_room_for(std::size_t size) {
        const auto fits = [&] {
            return queue_.size() < options_.max_queued_messages &&
                   queued_bytes_ + size <= options_.max_queued_bytes;
        };
        if (fits()) return true;
        if (options_.on_overflow == redis_overflow::reject_new) return false;
        while (!queue_.empty() && !fits()) {
            queued_bytes_ -= queue_.front().bytes.size();
            queue_.pop_front();
            ++counters_.drops;
        }
        return fits();
    }

    // The channels wanted now: every room some node has members in, and the everyone channel
    // while any node is attached.
    std::set<std::string> wanted_channels() const {
        std::set<std::string> out;
        std::lock_guard<std::mutex> lock(mutex_);
        if (!nodes_.empty()) out.insert(all_channel());
        for (const auto& entry : wanted_rooms_) out.insert(room_channel(entry.first));
        return out;
    }

    // Hands a channel message to every local node but its origin that wants it.
    void deliver(std::string_view channel, std::string_view data) {
        backplane_message m;
        const bool valid =
            redis_envelope::parse(data, m) &&
            channel == (m.to == audience::everyone ? all_channel() : room_channel(m.room));
        std::vector<std::shared_ptr<backplane::receiver>> targets;
        // Held until every receiver returned: detach and stop wait for it.
        std::lock_guard<std::recursive_mutex> callbacks(callbacks_mutex_);
        if (!callbacks_enabled_) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (!valid) {
                ++counters_.malformed;
                return;
            }
            if (stopped_) return;
            for (const auto& [node, record] : nodes_) {
                if (node == m.origin) continue; // Redis echoes our own publishes back
                if (m.to == audience::everyone || record.rooms.count(m.room) != 0)
                    targets.push_back(record.on_message);
            }
            counters_.deliveries += targets.size();
        }
        for (const auto& target : targets) (*target)(m);
    }

    // Runs a user callback unless the backplane was stopped: once stop() returned, none runs,
    // and none is running (unless stop() was called from inside one).
    template <class F>
    void user_callback(F&& f) {
        std::lock_guard<std::recursive_mutex> callbacks(callbacks_mutex_);
        if (callbacks_enabled_) f();
    }

    void disable_callbacks() {
        std::lock_guard<std::recursive_mutex> callbacks(callbacks_mutex_);
        callbacks_enabled_ = false;
    }

    void count(std::uint64_t& counter) {
        std::lock_guard<std::mutex> lock(mutex_);
        ++counter;
    }

    redis_backplane_options options_;
    std::atomic<redis_state> state_{redis_state::connecting};

    // Held while any user callback runs (receivers, on_state, presence answers); taken before
    // mutex_ when both are.
    std::recursive_mutex callbacks_mutex_;
    bool callbacks_enabled_ = true;

    mutable std::mutex mutex_;
    std::mt19937_64 rng_; // node ids and reconnect jitter
    std::unordered_map<std::uint64_t, node_record> nodes_;
    std::map<std::string, std::size_t, std::less<>> wanted_rooms_; // room: nodes wanting it
    std::deque<queued_command> queue_; // for the publisher connection, in order
    // This process's presence entries, re-added on every refresh and after a reconnect.
    std::map<std::string, std::set<std::string>, std::less<>> local_presence_;
    std::size_t queued_bytes_ = 0;
    bool stopped_ = false;
    std::error_code last_error_;
    redis_backplane_counters counters_;
};

template <class Transport>
class redis_plane final : public redis_plane_common,
                          public std::enable_shared_from_this<redis_plane<Transport>> {
public:
    using stream_type = typename Transport::stream_type;

    redis_plane(const asio::any_io_executor& executor, redis_backplane_options o,
                redis::redis_url url, typename Transport::context_type context)
        : redis_plane_common(std::move(o)), strand_(asio::make_strand(executor)),
          url_(std::move(url)), context_(std::move(context)), timer_(strand_),
          presence_timer_(strand_), resolver_(strand_) {}

    void start() override {
        asio::dispatch(strand_, [self = this->shared_from_this()] { self->connect(); });
    }

    void stop() override {
        disable_callbacks();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (stopped_) return;
            stopped_ = true;
        }
        asio::dispatch(strand_, [self = this->shared_from_this()] {
            self->close_sessions();
            self->timer_.cancel();
            self->presence_timer_.cancel();
            self->resolver_.cancel();
            self->set_state(redis_state::stopped, {});
        });
    }

private:
    enum class link_kind { subscriber, publisher };

    // One connection to Redis. Handlers hold it by shared_ptr, so its stream and buffers
    // outlive every operation on them, whatever happened to the connection since.
    struct session {
        session(link_kind k, asio::strand<asio::any_io_executor>& strand,
                const redis::resp_limits& limits)
            : kind(k), socket(strand), parser(limits) {}

        link_kind kind;
        asio::ip::tcp::socket socket; // until the stream takes it
        std::optional<stream_type> stream;
        redis::resp_parser parser;
        std::vector<char> read_buffer = std::vector<char>(16 * 1024);
        std::string writing; // bytes of the write in progress
        std::string pending; // bytes for the next write
        bool write_active = false;
        bool closed = false;
        std::size_t handshake_replies = 0; // replies still expected to the handshake
        bool ready = false;                // handshake done
        std::size_t unconfirmed_subscribes = 0;
        // Publisher: what each reply still to come answers, in order (Redis answers in order).
        std::deque<reply_kind> expected;
        std::deque<std::function<void(std::error_code, std::vector<std::string>)>> queries;
        bool heard_since_ping = true;
    };

    // ---- on the strand -------------------------------------------------------------------

    void connect() {
        if (is_stopped()) return;
        set_state(redis_state::connecting, {});
        ++attempt_;
        if (attempted_before_) count(counters_.reconnects);
        attempted_before_ = true;
        redis::resp_limits limits;
        // A channel message holds the envelope and the channel name; replies are small.
        limits.max_bulk = options_.max_message_size + 64 * 1024;
        limits.max_elements = 1024;
        limits.max_total_elements = 4096;
        limits.max_depth = 8;
        sub_ = std::make_shared<session>(link_kind::subscriber, strand_, limits);
        pub_ = std::make_shared<session>(link_kind::publisher, strand_, limits);
        subscribed_.clear();
        arm_timer(options_.connect_timeout, timer_purpose::connect_timeout);
        auto self = this->shared_from_this();
        resolver_.async_resolve(
            url_.host, std::to_string(url_.port),
            [self, sub = sub_, pub = pub_](std::error_code ec,
                                           asio::ip::tcp::resolver::results_type results) {
                if (sub != self->sub_ || self->is_stopped()) return;
                if (ec) return self->fail(ec);
                self->open(sub, results);
                self->open(pub, results);
            });
    }

    void open(const std::shared_ptr<session>& s,
              const asio::ip::tcp::resolver::results_type& results) {
        auto self = this->shared_from_this();
        asio::async_connect(s->socket, results,
                            [self, s](std::error_code ec, const asio::ip::tcp::endpoint&) {
                                if (s->closed) return;
                                if (ec) return self->fail(ec);
                                self->on_connected(s);
                            });
    }

    void on_connected(const std::shared_ptr<session>& s) {
        std::error_code ec;
        s->socket.set_option(asio::ip::tcp::no_delay(true), ec);
        s->stream.emplace(Transport::make_stream(std::move(s->socket), context_));
        auto self = this->shared_from_this();
        Transport::async_handshake(*s->stream, protocol::role::client, url_.host,
                                   asio::bind_executor(strand_, [self, s](std::error_code e) {
                                       if (s->closed) return;
                                       if (e) return self->fail(e);
                                       self->send_handshake(s);
                                       self->read(s);
                                   }));
    }

    void send_handshake(const std::shared_ptr<session>& s) {
        const std::string user = url_.user.empty() ? std::string("default") : url_.user;
        if (options_.resp_version == 3) {
            if (url_.has_password)
                redis::append_command(s->pending, {"HELLO", "3", "AUTH", user, url_.password});
            else
                redis::append_command(s->pending, {"HELLO", "3"});
            ++s->handshake_replies;
        } else if (url_.has_password) {
            if (url_.user.empty())
                redis::append_command(s->pending, {"AUTH", url_.password});
            else
                redis::append_command(s->pending, {"AUTH", url_.user, url_.password});
            ++s->handshake_replies;
        }
        // Pub/sub ignores the database; the publisher selects it for what it stores.
        if (s->kind == link_kind::publisher && url_.db != 0) {
            redis::append_command(s->pending, {"SELECT", std::to_string(url_.db)});
            ++s->handshake_replies;
        }
        if (s->handshake_replies == 0)
            on_handshake_done(s);
        else
            write(s);
    }

    void on_handshake_done(const std::shared_ptr<session>& s) {
        s->ready = true;
        if (s->kind == link_kind::subscriber) sync_subscriptions();
        check_up();
    }

    void check_up() {
        if (state_.load() == redis_state::up) return;
        if (!sub_ || !pub_ || !sub_->ready || !pub_->ready || sub_->unconfirmed_subscribes != 0)
            return;
        attempt_ = 0;
        set_state(redis_state::up, {});
        // Presence first: entries may have expired, or Redis restarted empty, while away.
        refresh_presence();
        arm_presence_timer();
        if (options_.ping_interval.count() > 0)
            arm_timer(options_.ping_interval, timer_purpose::ping);
        else
            timer_.cancel();
        flush();
    }

    void read(const std::shared_ptr<session>& s) {
        auto self = this->shared_from_this();
        s->stream->async_read_some(
            asio::buffer(s->read_buffer),
            asio::bind_executor(strand_, [self, s](std::error_code ec, std::size_t n) {
                if (s->closed) return;
                if (ec) return self->fail(ec);
                s->heard_since_ping = true;
                std::string_view input(s->read_buffer.data(), n);
                redis::resp_value value;
                for (;;) {
                    const auto status = s->parser.parse(input, value);
                    if (status == protocol::progress::failed) return self->fail(s->parser.error());
                    if (status == protocol::progress::need_more) break;
                    if (!self->on_value(s, value)) return;
                    if (s->closed) return;
                }
                self->read(s);
            }));
    }

    static bool is_auth_error(std::string_view text) {
        return text.rfind("WRONGPASS", 0) == 0 || text.rfind("NOAUTH", 0) == 0 ||
               text.rfind("NOPERM", 0) == 0 || text.find("invalid password") != text.npos ||
               text.find("invalid username-password") != text.npos;
    }

    // Returns false when it failed the connection.
    bool on_value(const std::shared_ptr<session>& s, redis::resp_value& v) {
        if (s->handshake_replies > 0) {
            if (v.is_error()) {
                fail(is_auth_error(v.text) ? redis::resp_errc::auth_failed
                                           : redis::resp_errc::server_error);
                return false;
            }
            if (--s->handshake_replies == 0) on_handshake_done(s);
            return true;
        }
        if (s->kind == link_kind::publisher) {
            if (s->expected.empty()) {
                fail(redis::resp_errc::unexpected_reply);
                return false;
            }
            const reply_kind kind = s->expected.front();
            s->expected.pop_front();
            if (kind == reply_kind::publish) {
                // An error here is for this PUBLISH alone (OOM, an ACL rule): it is dropped.
                count(v.type == redis::resp_type::integer ? counters_.publishes : counters_.drops);
            } else if (kind == reply_kind::query) {
                auto done = std::move(s->queries.front());
                s->queries.pop_front();
                std::vector<std::string> members;
                std::error_code ec;
                if (v.is_error() || !v.is_aggregate())
                    ec = redis::resp_errc::unexpected_reply;
                else
                    for (auto& e : v.elements) members.push_back(std::move(e.text));
                if (done) user_callback([&] { done(ec, std::move(members)); });
            }
            return true;
        }
        // Subscriber: pushes (RESP3) or arrays (RESP2) of [kind, channel, data].
        if (v.is_error()) {
            fail(redis::resp_errc::server_error);
            return false;
        }
        if (v.type == redis::resp_type::simple_string) return true; // +PONG under RESP3
        if ((v.type != redis::resp_type::push && v.type != redis::resp_type::array) ||
            v.elements.empty())
            return true;
        const std::string_view kind = v.elements[0].string();
        if (kind == "message" && v.elements.size() == 3) {
            deliver(v.elements[1].string(), v.elements[2].string());
        } else if (kind == "subscribe" || kind == "unsubscribe") {
            // The third element is how many channels this connection is subscribed to now.
            if (v.elements.size() == 3 && v.elements[2].type == redis::resp_type::integer) {
                std::lock_guard<std::mutex> lock(mutex_);
                counters_.channels = static_cast<std::uint64_t>(v.elements[2].integer);
            }
            if (kind == "subscribe" && s->unconfirmed_subscribes > 0) --s->unconfirmed_subscribes;
            check_up();
        }
        return true;
    }

    void write(const std::shared_ptr<session>& s) {
        if (s->write_active || s->pending.empty() || s->closed) return;
        s->write_active = true;
        s->writing.clear();
        std::swap(s->writing, s->pending);
        auto self = this->shared_from_this();
        asio::async_write(*s->stream, asio::buffer(s->writing),
                          asio::bind_executor(strand_, [self, s](std::error_code ec, std::size_t) {
                              s->write_active = false;
                              if (s->closed) return;
                              if (ec) return self->fail(ec);
                              self->write(s);
                          }));
    }

    void sync_subscriptions() {
        sync_posted_.store(false);
        if (!sub_ || !sub_->ready || sub_->closed) return;
        const std::set<std::string> wanted = wanted_channels();
        std::vector<std::string_view> add{"SUBSCRIBE"};
        std::vector<std::string_view> remove{"UNSUBSCRIBE"};
        for (const auto& channel : wanted)
            if (subscribed_.count(channel) == 0) add.push_back(channel);
        for (const auto& channel : subscribed_)
            if (wanted.count(channel) == 0) remove.push_back(channel);
        // Never an UNSUBSCRIBE without channels: that would leave every channel.
        if (add.size() > 1) {
            redis::append_command(sub_->pending, add);
            sub_->unconfirmed_subscribes += add.size() - 1;
        }
        if (remove.size() > 1) redis::append_command(sub_->pending, remove);
        subscribed_ = wanted;
        write(sub_);
    }

    void flush() {
        flush_posted_.store(false);
        if (state_.load() != redis_state::up || !pub_ || pub_->closed) return;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            // Pipelined: everything queued goes out in one write, replies are counted later.
            for (auto& command : queue_) {
                pub_->pending += command.bytes;
                pub_->expected.push_back(command.kind);
            }
            queue_.clear();
            queued_bytes_ = 0;
        }
        write(pub_);
    }

    void request_sync() override {
        if (sync_posted_.exchange(true)) return;
        asio::post(strand_, [self = this->shared_from_this()] { self->sync_subscriptions(); });
    }

    void request_flush() override {
        if (flush_posted_.exchange(true)) return;
        asio::post(strand_, [self = this->shared_from_this()] { self->flush(); });
    }

    void
    request_query(std::string key,
                  std::function<void(std::error_code, std::vector<std::string>)> done) override {
        asio::post(strand_, [self = this->shared_from_this(), key = std::move(key),
                             done = std::move(done)]() mutable {
            if (self->state_.load() != redis_state::up || !self->pub_ || self->pub_->closed) {
                if (done) self->user_callback([&] { done(asio::error::not_connected, {}); });
                return;
            }
            self->flush(); // what this process queued before asking goes first
            const std::string now = std::to_string(now_ms());
            auto& s = *self->pub_;
            redis::append_command(s.pending, {"ZREMRANGEBYSCORE", key, "-inf", now});
            s.expected.push_back(reply_kind::other);
            redis::append_command(s.pending, {"ZRANGEBYSCORE", key, "(" + now, "+inf"});
            s.expected.push_back(reply_kind::query);
            s.queries.push_back(std::move(done));
            self->write(self->pub_);
        });
    }

    // Re-adds every presence entry of this process with a fresh expiry; the key itself
    // expires when no process has refreshed it for presence_ttl.
    void refresh_presence() {
        if (!pub_ || pub_->closed) return;
        std::map<std::string, std::set<std::string>, std::less<>> entries;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            entries = local_presence_;
        }
        const std::string score = expiry_score();
        const std::string ttl =
            std::to_string(std::max<long long>(1, options_.presence_ttl.count()));
        for (const auto& [room, members] : entries) {
            const std::string key = presence_key(room);
            std::vector<std::string_view> zadd{"ZADD", key};
            for (const auto& member : members) {
                zadd.push_back(score);
                zadd.push_back(member);
            }
            redis::append_command(pub_->pending, zadd);
            redis::append_command(pub_->pending, {"PEXPIRE", key, ttl});
            pub_->expected.push_back(reply_kind::other);
            pub_->expected.push_back(reply_kind::other);
        }
        write(pub_);
    }

    void arm_presence_timer() {
        presence_timer_.expires_after(
            std::max(options_.presence_refresh, std::chrono::milliseconds(1)));
        presence_timer_.async_wait([self = this->shared_from_this()](std::error_code ec) {
            if (ec || self->is_stopped() || self->state_.load() != redis_state::up) return;
            self->refresh_presence();
            self->arm_presence_timer();
        });
    }

    enum class timer_purpose { connect_timeout, reconnect, ping };

    void arm_timer(std::chrono::milliseconds after, timer_purpose purpose) {
        timer_.expires_after(after);
        const std::uint64_t token = ++timer_token_;
        timer_.async_wait([self = this->shared_from_this(), token, purpose](std::error_code ec) {
            if (ec || token != self->timer_token_ || self->is_stopped()) return;
            switch (purpose) {
            case timer_purpose::connect_timeout: self->fail(asio::error::timed_out); return;
            case timer_purpose::reconnect: self->connect(); return;
            case timer_purpose::ping: self->ping(); return;
            }
        });
    }

    void ping() {
        for (const auto& s : {sub_, pub_}) {
            if (!s || s->closed) continue;
            if (!s->heard_since_ping) return fail(asio::error::timed_out);
            s->heard_since_ping = false;
            redis::append_command(s->pending, {"PING"});
            if (s->kind == link_kind::publisher) s->expected.push_back(reply_kind::ping);
            write(s);
        }
        arm_timer(options_.ping_interval, timer_purpose::ping);
    }

    void close_session(const std::shared_ptr<session>& s) {
        if (!s || s->closed) return;
        s->closed = true;
        std::error_code ignored;
        if (s->stream)
            Transport::close(*s->stream);
        else
            s->socket.close(ignored);
    }

    void close_sessions() {
        if (pub_ && !pub_->closed) {
            {
                std::lock_guard<std::mutex> lock(mutex_);
                for (const auto kind : pub_->expected)
                    if (kind == reply_kind::publish) ++counters_.unconfirmed;
            }
            pub_->expected.clear();
            auto queries = std::move(pub_->queries);
            pub_->queries.clear();
            for (auto& done : queries)
                if (done) user_callback([&] { done(asio::error::connection_aborted, {}); });
        }
        close_session(sub_);
        close_session(pub_);
        std::lock_guard<std::mutex> lock(mutex_);
        counters_.channels = 0;
    }

    // Any failure of either connection: both go, and both come back together.
    void fail(std::error_code ec) {
        if (is_stopped()) return;
        resolver_.cancel();
        close_sessions();
        {
            std::lock_guard<std::mutex> lock(mutex_);
            last_error_ = ec;
        }
        set_state(redis_state::down, ec);
        arm_timer(next_delay(), timer_purpose::reconnect);
    }

    std::chrono::milliseconds next_delay() {
        using std::chrono::milliseconds;
        const auto min = std::max<long long>(1, options_.reconnect_min.count());
        const auto max = std::max<long long>(min, options_.reconnect_max.count());
        long long delay = min;
        for (unsigned i = 1; i < attempt_ && delay < max; ++i) delay *= 2;
        if (delay > max) delay = max;
        std::uniform_int_distribution<long long> jitter(delay / 2, delay);
        std::lock_guard<std::mutex> lock(mutex_);
        return milliseconds(jitter(rng_));
    }

    void set_state(redis_state next, std::error_code ec) {
        if (state_.exchange(next) == next) return;
        if (options_.on_state) user_callback([&] { options_.on_state(next, ec); });
    }

    bool is_stopped() const {
        std::lock_guard<std::mutex> lock(mutex_);
        return stopped_;
    }

    asio::strand<asio::any_io_executor> strand_;
    redis::redis_url url_;
    typename Transport::context_type context_;
    asio::steady_timer timer_;          // reconnect, connect timeout, ping: one at a time
    asio::steady_timer presence_timer_; // presence refresh while up
    asio::ip::tcp::resolver resolver_;
    std::uint64_t timer_token_ = 0;
    unsigned attempt_ = 0;          // since the last time up: drives the backoff
    bool attempted_before_ = false; // every attempt but the very first is a reconnect
    std::shared_ptr<session> sub_;
    std::shared_ptr<session> pub_;
    std::set<std::string> subscribed_; // channels SUBSCRIBE was sent for on sub_
    std::atomic<bool> sync_posted_{false};
    std::atomic<bool> flush_posted_{false};
};

// A backplane that cannot run (a bad URL, rediss:// without TLS): stopped from the start,
// drops what it is given, and says why.
class redis_plane_broken final : public redis_plane_common {
public:
    redis_plane_broken(redis_backplane_options o, std::error_code why)
        : redis_plane_common(std::move(o)) {
        stopped_ = true;
        last_error_ = why;
        state_.store(redis_state::stopped);
    }
    void start() override {
        if (options_.on_state)
            user_callback([&] { options_.on_state(redis_state::stopped, last_error_); });
    }
    void stop() override { disable_callbacks(); }

private:
    void request_sync() override {}
    void request_flush() override {}
    void
    request_query(std::string,
                  std::function<void(std::error_code, std::vector<std::string>)> done) override {
        if (done) user_callback([&] { done(last_error_, {}); });
    }
};

} // namespace detail

// A Redis pub/sub backplane for duplex::rooms. Construct it once per process, hand it (as a
// shared_ptr) to every rooms object that should share rooms with other processes.
class redis_backplane final : public backplane {
public:
    redis_backplane(const asio::any_io_executor& executor, redis_backplane_options options) {
        redis::redis_url url;
        if (auto bad = redis::parse_redis_url(options.url, url)) {
            impl_ = std::make_shared<detail::redis_plane_broken>(std::move(options), bad);
        } else if (!url.secure) {
            impl_ = std::make_shared<detail::redis_plane<transport::tcp>>(
                executor, std::move(options), std::move(url), transport::tcp::context_type{});
        } else {
#if defined(DUPLEX_ENABLE_TLS)
            std::error_code ec;
            transport::tls::context_type context = options.tls_context;
            if (!context) context = transport::tls::client_context(ec);
            if (ec)
                impl_ = std::make_shared<detail::redis_plane_broken>(std::move(options), ec);
            else
                impl_ = std::make_shared<detail::redis_plane<transport::tls>>(
                    executor, std::move(options), std::move(url), std::move(context));
#else
            impl_ = std::make_shared<detail::redis_plane_broken>(
                std::move(options), redis::resp_errc::tls_not_available);
#endif
        }
        impl_->start();
    }

    // Closes both connections; what is still queued is dropped. Once it returns, no receiver,
    // state handler or presence answer runs any more, nor is one still running (it waits for
    // one in progress, unless called from inside it). Pending operations finish on the
    // executor's threads, which must keep running (or be destroyed) afterwards.
    ~redis_backplane() override { impl_->stop(); }

    redis_backplane(const redis_backplane&) = delete;
    redis_backplane& operator=(const redis_backplane&) = delete;

    std::uint64_t attach(receiver on_message) override {
        return impl_->attach(std::move(on_message));
    }
    void detach(std::uint64_t node) override { impl_->detach(node); }
    void subscribe(std::uint64_t node, std::string_view room) override {
        impl_->subscribe(node, room);
    }
    void unsubscribe(std::uint64_t node, std::string_view room) override {
        impl_->unsubscribe(node, room);
    }
    void publish(const backplane_message& message) override { impl_->publish(message); }

    // Presence across processes: `member` is listed in `room` for every process while this
    // one keeps it (refreshed every presence_refresh, re-added after a reconnect), and for at
    // most presence_ttl after this process stops refreshing it (a crash, a lost network).
    // Member names are shared: a name removed here is gone for all until its next refresh
    // elsewhere, so make them unique per process if that matters (a user id and a node).
    // Commands go through the same queue as publishes, in order with them.
    void presence_add(std::string_view room, std::string_view member) {
        impl_->presence_add(room, member);
    }
    void presence_remove(std::string_view room, std::string_view member) {
        impl_->presence_remove(room, member);
    }
    // The unexpired members of `room` in all processes, once, on the backplane's strand; an
    // error (asio::error::not_connected while not up) and no members if it cannot ask.
    void presence_members(std::string_view room,
                          std::function<void(std::error_code, std::vector<std::string>)> done) {
        impl_->presence_members(room, std::move(done));
    }

    redis_state state() const { return impl_->state(); }
    // Why the last connection failed (or why the backplane is stopped); empty if it never did.
    std::error_code last_error() const { return impl_->last_error(); }
    redis_backplane_counters counters() const { return impl_->counters(); }

private:
    std::shared_ptr<detail::redis_plane_impl> impl_;
};

} // namespace duplex
