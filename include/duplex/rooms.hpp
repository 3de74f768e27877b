// duplex/rooms.hpp — rooms (topics) over connections: join, leave, publish once to many.
// SPDX-License-Identifier: BSL-1.0
//
// A connection may be in any number of rooms and leaves them all when it closes. A message
// published to a room is encoded as a frame once (a shared_message) and every member's write
// queue holds a reference to that one buffer. Each member is subject to its own backpressure:
// a slow one misses messages or is closed (rooms_options::on_slow), it never delays the rest.
// Optional per-room history lets a client that reconnects catch up from a sequence number.
//
//   duplex::rooms<server_type::connection_type> rooms;
//   server.handlers().on_open = [&](auto& c) { rooms.join(c, "lobby"); };
//   server.handlers().on_message = [&](auto& c, const duplex::message_view& m) {
//       rooms.publish("lobby", m.type, m.data, c.get()); // everyone but the sender
//   };
//
// More than one server process can share rooms through a backplane: each rooms instance
// publishes what it originates to the backplane and delivers what other processes published
// to its own members. in_process_backplane connects instances in one process (tests, several
// listeners); redis_backplane (redis_backplane.hpp) connects processes through Redis pub/sub.
//
// Threads: every member function may be called from any thread, including from connection
// handlers. Presence handlers run on the thread that joined or left, or on the connection's
// strand for the automatic leave at close; they must not call back into the same rooms
// object's join or leave for the connection that is leaving.
#pragma once

#include "connection.hpp"
#include "shared_message.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace duplex {

// What happens to a member whose send buffer is past its high-water mark when a message is
// published to one of its rooms.
enum class slow_subscriber {
    drop_messages, // it misses this message and stays connected
    close,         // it is closed with 1008: for feeds where a gap is worse than a reconnect
};

struct rooms_options {
    // Messages each room keeps for history(); 0 keeps none.
    std::size_t history_size = 0;
    slow_subscriber on_slow = slow_subscriber::drop_messages;
    // A room whose last member left is forgotten at once, unless it has history to offer to
    // members who come back. At most this many such empty rooms are kept, oldest dropped
    // first, so that room names chosen by clients cannot grow memory without bound.
    std::size_t max_retained_empty_rooms = 1024;
};

struct publish_result {
    std::size_t delivered = 0;  // members whose queue took the message
    std::size_t skipped = 0;    // slow or closing members that did not
    std::uint64_t sequence = 0; // the message's number in its room (history); 0 for none
};

enum class presence_kind { joined, left };

template <class Connection>
struct presence_event {
    presence_kind kind;
    std::string_view room;
    const std::shared_ptr<Connection>& connection;
    std::size_t member_count; // after the change
};

struct history_entry {
    std::uint64_t sequence = 0;
    shared_message message;
};

// ---- backplane ------------------------------------------------------------------------------

// Who a published message is for: the members of one room, or every connection that is in at
// least one room (publish_all).
enum class audience { room, everyone };

// A message crossing between processes.
struct backplane_message {
    std::uint64_t origin = 0; // the node that published it
    audience to = audience::room;
    std::string room; // audience::room: the room's name; audience::everyone: empty, unused
    protocol::opcode type = protocol::opcode::text;
    std::string payload;
};

// The interface a broker adapter implements. A node is one rooms instance. The mapping to
// Redis pub/sub is direct: attach opens the subscriber connection, subscribe/unsubscribe are
// SUBSCRIBE/UNSUBSCRIBE on a channel per room (and one for audience::everyone), publish is PUBLISH
// with the message and its origin, so that a node can ignore its own messages when the broker
// echoes them back. Receivers may be called on any thread.
class backplane {
public:
    using receiver = std::function<void(const backplane_message&)>;
    virtual ~backplane() = default;
    virtual std::uint64_t attach(receiver on_message) = 0;
    virtual void detach(std::uint64_t node) = 0;
    // The node has members in `room` (from its first member to its last).
    virtual void subscribe(std::uint64_t node, std::string_view room) = 0;
    virtual void unsubscribe(std::uint64_t node, std::string_view room) = 0;
    virtual void publish(const backplane_message& message) = 0;
};

// Connects the rooms instances of one process: delivers a message to every other node that
// has members in its room (or to all nodes), synchronously, on the publisher's thread.
class in_process_backplane final : public backplane {
public:
    std::uint64_t attach(receiver on_message) override {
        std::lock_guard<std::mutex> lock(mutex_);
        const std::uint64_t node = ++last_node_;
        nodes_.emplace(node, std::make_shared<receiver>(std::move(on_message)));
        return node;
    }
    void detach(std::uint64_t node) override {
        std::lock_guard<std::mutex> lock(mutex_);
        nodes_.erase(node);
        for (auto it = subscriptions_.begin(); it != subscriptions_.end();) {
            auto& nodes = it->second;
            nodes.erase(std::remove(nodes.begin(), nodes.end(), node), nodes.end());
            it = nodes.empty() ? subscriptions_.erase(it) : std::next(it);
        }
    }
    void subscribe(std::uint64_t node, std::string_view room) override {
        std::lock_guard<std::mutex> lock(mutex_);
        auto& nodes = subscriptions_[std::string(room)];
        if (std::find(nodes.begin(), nodes.end(), node) == nodes.end()) nodes.push_back(node);
    }
    void unsubscribe(std::uint64_t node, std::string_view room) override {
        std::lock_guard<std::mutex> lock(mutex_);
        auto it = subscriptions_.find(room);
        if (it == subscriptions_.end()) return;
        auto& nodes = it->second;
        nodes.erase(std::remove(nodes.begin(), nodes.end(), node), nodes.end());
        if (nodes.empty()) subscriptions_.erase(it);
    }
    void publish(const backplane_message& message) override {
        // Receivers run without the lock: they take their own, and may publish in turn.
        std::vector<std::shared_ptr<receiver>> targets;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            if (message.to == audience::everyone) {
                for (auto& [node, target] : nodes_)
                    if (node != message.origin) targets.push_back(target);
            } else if (auto it = subscriptions_.find(message.room); it != subscriptions_.end()) {
                for (auto node : it->second)
                    if (node != message.origin)
                        if (auto n = nodes_.find(node); n != nodes_.end())
                            targets.push_back(n->second);
            }
        }
        for (auto& target : targets) (*target)(message);
    }

private:
    std::mutex mutex_;
    std::uint64_t last_node_ = 0;
    std::unordered_map<std::uint64_t, std::shared_ptr<receiver>> nodes_;
    std::map<std::string, std::vector<std::uint64_t>, std::less<>> subscriptions_;
};

// ---- rooms ----------------------------------------------------------------------------------

template <class Connection>
class rooms {
public:
    using connection_type = Connection;
    using connection_ptr = std::shared_ptr<Connection>;
    using presence_handler = std::function<void(const presence_event<Connection>&)>;

    explicit rooms(rooms_options options = {}, std::shared_ptr<backplane> plane = nullptr)
        : state_(std::make_shared<state>(options, std::move(plane))) {
        if (state_->plane) {
            std::weak_ptr<state> weak = state_;
            state_->node = state_->plane->attach([weak](const backplane_message& m) {
                if (auto s = weak.lock()) s->deliver_remote(m);
            });
        }
    }

    ~rooms() {
        if (state_->plane) state_->plane->detach(state_->node);
    }

    rooms(const rooms&) = delete;
    rooms& operator=(const rooms&) = delete;

    // Join and leave notifications; set before the first join.
    void on_presence(presence_handler handler) { state_->on_presence = std::move(handler); }

    // False when the connection is already a member, or is closing.
    bool join(const connection_ptr& c, std::string_view room) { return state_->join(c, room); }

    // False when the connection was not a member.
    bool leave(const connection_ptr& c, std::string_view room) {
        return state_->leave(c.get(), room);
    }

    void leave_all(const connection_ptr& c) { state_->leave_all(c.get(), departure::by_request); }

    // Sends to every member of `room` except `exclude`; the payload is encoded once.
    publish_result publish(std::string_view room, protocol::opcode type, std::string_view payload,
                           const Connection* exclude = nullptr) {
        std::error_code ec; // an empty message already says it
        return publish(room, shared_message::make(type, payload, ec), exclude);
    }

    // A message that is empty (text that was not UTF-8) reaches no one.
    publish_result publish(std::string_view room, const shared_message& message,
                           const Connection* exclude = nullptr) {
        if (!message) return {};
        auto result = state_->deliver(audience::room, room, message, exclude);
        if (state_->plane) state_->plane->publish(state_->envelope(audience::room, room, message));
        return result;
    }

    // Sends to every connection that is in at least one room, once each.
    publish_result publish_all(protocol::opcode type, std::string_view payload,
                               const Connection* exclude = nullptr) {
        std::error_code ec;
        return publish_all(shared_message::make(type, payload, ec), exclude);
    }
    publish_result publish_all(const shared_message& message, const Connection* exclude = nullptr) {
        if (!message) return {};
        auto result = state_->deliver(audience::everyone, {}, message, exclude);
        if (state_->plane)
            state_->plane->publish(state_->envelope(audience::everyone, {}, message));
        return result;
    }

    // Sends to one connection under the same slow-subscriber policy as a publish.
    bool send_to(const connection_ptr& c, const shared_message& message) {
        return state_->offer(*c, message);
    }

    std::vector<std::string> rooms_of(const Connection& c) const {
        std::lock_guard<std::mutex> lock(state_->mutex);
        auto it = state_->memberships.find(&c);
        return it == state_->memberships.end() ? std::vector<std::string>{} : it->second.rooms;
    }

    std::vector<connection_ptr> members(std::string_view room) const {
        std::lock_guard<std::mutex> lock(state_->mutex);
        auto it = state_->all_rooms.find(room);
        if (it == state_->all_rooms.end() || !it->second.members) return {};
        return *it->second.members;
    }

    std::size_t member_count(std::string_view room) const {
        std::lock_guard<std::mutex> lock(state_->mutex);
        auto it = state_->all_rooms.find(room);
        return it == state_->all_rooms.end() ? 0 : it->second.index.size();
    }

    // Rooms that have members (or kept history).
    std::size_t room_count() const {
        std::lock_guard<std::mutex> lock(state_->mutex);
        return state_->all_rooms.size();
    }

    // The kept messages of `room` with a sequence number above `after_sequence`, oldest first.
    std::vector<history_entry> history(std::string_view room,
                                       std::uint64_t after_sequence = 0) const {
        std::lock_guard<std::mutex> lock(state_->mutex);
        std::vector<history_entry> out;
        auto it = state_->all_rooms.find(room);
        if (it == state_->all_rooms.end()) return out;
        for (const auto& entry : it->second.history)
            if (entry.sequence > after_sequence) out.push_back(entry);
        return out;
    }

    const rooms_options& options() const noexcept { return state_->options; }

private:
    using member_list = std::vector<connection_ptr>;

    struct room_state {
        // Publishers take a reference to this list and send outside the lock; a join or leave
        // while one is out copies it first (copy on write), otherwise edits it in place.
        std::shared_ptr<member_list> members;
        std::unordered_map<const Connection*, std::size_t> index; // position in *members
        std::deque<history_entry> history;
        std::uint64_t sequence = 0;
    };

    struct membership {
        connection_ptr connection;
        std::vector<std::string> rooms;
    };

    // Why a connection leaves all its rooms: its close forgets it; a request keeps it known
    // (its close observer stays in place) with no rooms.
    enum class departure { by_request, closing };

    struct left_room {
        std::string room;
        std::size_t member_count;
    };

    struct state : std::enable_shared_from_this<state> {
        state(rooms_options o, std::shared_ptr<backplane> p) : options(o), plane(std::move(p)) {}

        rooms_options options;
        std::shared_ptr<backplane> plane;
        std::uint64_t node = 0;
        presence_handler on_presence;

        mutable std::mutex mutex;
        std::map<std::string, room_state, std::less<>> all_rooms;
        std::unordered_map<const Connection*, membership> memberships;
        std::deque<std::string> retained_empty; // rooms kept for their history, oldest first

        bool join(const connection_ptr& c, std::string_view name) {
            if (!c || c->is_closing()) return false;
            bool first_room_ever = false;
            bool first_member = false;
            std::size_t count = 0;
            {
                std::lock_guard<std::mutex> lock(mutex);
                auto [it, inserted] = memberships.try_emplace(c.get());
                auto& record = it->second;
                if (inserted) {
                    record.connection = c;
                    first_room_ever = true;
                }
                if (std::find(record.rooms.begin(), record.rooms.end(), name) != record.rooms.end())
                    return false;
                record.rooms.emplace_back(name);
                auto room_it = all_rooms.find(name);
                if (room_it == all_rooms.end())
                    room_it = all_rooms.emplace(std::string(name), room_state{}).first;
                auto& room = room_it->second;
                first_member = room.index.empty();
                auto& list = writable_members(room);
                room.index.emplace(c.get(), list.size());
                list.push_back(c);
                count = list.size();
            }
            if (first_room_ever) {
                // Weak: a rooms object may be destroyed before its members close.
                std::weak_ptr<state> weak = this->shared_from_this();
                c->add_close_observer([weak](const connection_ptr& closed) {
                    if (auto s = weak.lock()) s->leave_all(closed.get(), departure::closing);
                });
            }
            if (first_member && plane) plane->subscribe(node, name);
            if (on_presence) on_presence({presence_kind::joined, name, c, count});
            return true;
        }

        bool leave(const Connection* c, std::string_view name) {
            connection_ptr keep;
            std::size_t count = 0;
            bool emptied = false;
            {
                std::lock_guard<std::mutex> lock(mutex);
                auto it = memberships.find(c);
                if (it == memberships.end()) return false;
                auto& names = it->second.rooms;
                auto pos = std::find(names.begin(), names.end(), name);
                if (pos == names.end()) return false;
                names.erase(pos);
                keep = it->second.connection;
                count = remove_member(name, c, emptied);
            }
            if (emptied && plane) plane->unsubscribe(node, name);
            if (on_presence) on_presence({presence_kind::left, name, keep, count});
            return true;
        }

        void leave_all(const Connection* c, departure why) {
            connection_ptr keep;
            std::vector<left_room> left;
            std::vector<std::string> emptied_rooms;
            {
                std::lock_guard<std::mutex> lock(mutex);
                auto it = memberships.find(c);
                if (it == memberships.end()) return;
                keep = it->second.connection;
                auto names = std::move(it->second.rooms);
                it->second.rooms.clear();
                if (why == departure::closing) memberships.erase(it);
                for (auto& name : names) {
                    bool emptied = false;
                    const std::size_t count = remove_member(name, c, emptied);
                    if (emptied) emptied_rooms.push_back(name);
                    left.push_back({std::move(name), count});
                }
            }
            if (plane)
                for (auto& name : emptied_rooms) plane->unsubscribe(node, name);
            if (on_presence)
                for (auto& l : left)
                    on_presence({presence_kind::left, l.room, keep, l.member_count});
        }

        // Under the lock. Returns the room's member count after the removal.
        std::size_t remove_member(std::string_view name, const Connection* c, bool& emptied) {
            auto room_it = all_rooms.find(name);
            if (room_it == all_rooms.end()) return 0;
            auto& room = room_it->second;
            auto at = room.index.find(c);
            if (at == room.index.end()) return room.index.size();
            const std::size_t position = at->second;
            room.index.erase(at);
            auto& list = writable_members(room);
            if (position + 1 != list.size()) {
                list[position] = std::move(list.back());
                room.index[list[position].get()] = position;
            }
            list.pop_back();
            if (!list.empty()) return list.size();
            emptied = true;
            if (room.history.empty())
                all_rooms.erase(room_it);
            else
                retain_empty(std::string(name));
            return 0;
        }

        void retain_empty(std::string name) {
            retained_empty.push_back(std::move(name));
            while (retained_empty.size() > options.max_retained_empty_rooms) {
                auto oldest = all_rooms.find(retained_empty.front());
                // It may have filled up again since; then it is not ours to drop.
                if (oldest != all_rooms.end() && oldest->second.index.empty())
                    all_rooms.erase(oldest);
                retained_empty.pop_front();
            }
        }

        member_list& writable_members(room_state& room) {
            if (!room.members)
                room.members = std::make_shared<member_list>();
            else if (room.members.use_count() > 1)
                room.members = std::make_shared<member_list>(*room.members);
            return *room.members;
        }

        publish_result deliver(audience to, std::string_view name, const shared_message& message,
                               const Connection* exclude) {
            publish_result result;
            std::shared_ptr<member_list> targets;
            {
                std::lock_guard<std::mutex> lock(mutex);
                if (to == audience::everyone) {
                    targets = std::make_shared<member_list>();
                    targets->reserve(memberships.size());
                    for (auto& [key, record] : memberships)
                        if (!record.rooms.empty()) targets->push_back(record.connection);
                } else {
                    auto it = all_rooms.find(name);
                    if (it == all_rooms.end()) return result;
                    auto& room = it->second;
                    result.sequence = ++room.sequence;
                    if (options.history_size > 0) {
                        room.history.push_back({result.sequence, message});
                        if (room.history.size() > options.history_size) room.history.pop_front();
                    }
                    targets = room.members;
                }
            }
            if (!targets) return result;
            for (const auto& c : *targets) {
                if (c.get() == exclude) continue;
                if (offer(*c, message))
                    ++result.delivered;
                else
                    ++result.skipped;
            }
            return result;
        }

        bool offer(Connection& c, const shared_message& message) {
            if (c.buffered_amount() >= c.options().send_buffer_high_water) {
                if (options.on_slow == slow_subscriber::close)
                    c.close(protocol::close_code::policy_violation, "too slow to keep up");
                return false;
            }
            const auto status = c.send(message);
            return status == send_status::ok || status == send_status::backpressure;
        }

        backplane_message envelope(audience to, std::string_view name,
                                   const shared_message& message) const {
            backplane_message m;
            m.origin = node;
            m.to = to;
            m.room = std::string(name);
            m.type = message.type();
            m.payload = std::string(message.payload());
            return m;
        }

        void deliver_remote(const backplane_message& m) {
            std::error_code ec;
            auto message = shared_message::make(m.type, m.payload, ec);
            if (!message) return;
            (void)deliver(m.to, m.room, message, nullptr);
        }
    };

    std::shared_ptr<state> state_;
};

} // namespace duplex
