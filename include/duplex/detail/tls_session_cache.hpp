// duplex/detail/tls_session_cache.hpp — the TLS sessions a client keeps for its next
// connection to the same peer, so that it resumes instead of running a full handshake.
// SPDX-License-Identifier: BSL-1.0
//
// Part of transport/tls.hpp (which includes it). One cache belongs to one client SSL_CTX (held
// in the context's ex_data, freed with it) and is filled by OpenSSL's new-session callback:
// the context keeps no internal client cache (SSL_SESS_CACHE_NO_INTERNAL_STORE), only this one.
//
// Rules that keep it secure:
// - A session is kept under its peer: the name the client sent as SNI and verified the
//   certificate against (or the IP literal), and the port. It is offered again only to that
//   same name and port, so a session never crosses host names: a resumed handshake skips the
//   certificate, and the name was checked when the session was made.
// - One cache per SSL_CTX: the verification settings of the context that made a session are
//   those of every connection that may resume it.
// - A session is taken out when offered: TLS 1.3 tickets are single-use on OpenSSL servers
//   (anti-replay), and the new connection brings fresh tickets of its own.
// - Sessions OpenSSL marked not resumable (after a fatal alert) or that expired are dropped.
// - Bounded: at most `sessions_per_peer` per peer, at most `max_peers` peers (the least
//   recently filled goes first).
#pragma once

#include <openssl/ssl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

namespace duplex::detail {

class tls_session_cache {
public:
    // OpenSSL servers send two TLS 1.3 tickets after a handshake; two cover two connections
    // opened to the same peer at once.
    static constexpr std::size_t sessions_per_peer = 2;

    explicit tls_session_cache(std::size_t max_peers) : max_peers_(max_peers) {}
    ~tls_session_cache() {
        for (auto& p : peers_)
            for (SSL_SESSION* s : p.sessions) ::SSL_SESSION_free(s);
    }
    tls_session_cache(const tls_session_cache&) = delete;
    tls_session_cache& operator=(const tls_session_cache&) = delete;

    struct counts {
        std::size_t peers = 0;     // peers with sessions kept now
        std::size_t sessions = 0;  // sessions kept now
        std::uint64_t offered = 0; // handshakes that offered a kept session
        std::uint64_t resumed = 0; // handshakes the server resumed
    };

    // The cache of a client context, or null when it keeps no sessions.
    static tls_session_cache* of(SSL_CTX* context) noexcept {
        const int index = context_index();
        if (index < 0) return nullptr;
        return static_cast<tls_session_cache*>(::SSL_CTX_get_ex_data(context, index));
    }

    // Makes `context` keep sessions (at most `max_peers` peers; 0 keeps none), or changes the
    // bound of the cache it has. Call it while setting the context up, before it makes streams:
    // OpenSSL reads the callback and cache mode without a lock. False when OpenSSL refused.
    static bool install(SSL_CTX* context, std::size_t max_peers) {
        if (auto* existing = of(context)) {
            existing->set_max_peers(max_peers);
            return true;
        }
        const int index = context_index();
        if (index < 0) return false;
        auto* cache = new tls_session_cache(max_peers);
        if (::SSL_CTX_set_ex_data(context, index, cache) != 1) {
            delete cache;
            return false;
        }
        ::SSL_CTX_set_session_cache_mode(context,
                                         SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
        ::SSL_CTX_sess_set_new_cb(context, &on_new_session);
        return true;
    }

    // The peer a client SSL's sessions are kept under; not set: nothing is kept or offered.
    static bool set_peer(SSL* ssl, std::string peer) {
        const int index = ssl_index();
        if (index < 0) return false;
        auto* old = static_cast<std::string*>(::SSL_get_ex_data(ssl, index));
        if (old) {
            *old = std::move(peer);
            return true;
        }
        auto* kept = new std::string(std::move(peer));
        if (::SSL_set_ex_data(ssl, index, kept) != 1) {
            delete kept;
            return false;
        }
        return true;
    }
    static void forget_peer(SSL* ssl) noexcept {
        const int index = ssl_index();
        if (index < 0) return;
        delete static_cast<std::string*>(::SSL_get_ex_data(ssl, index));
        ::SSL_set_ex_data(ssl, index, nullptr);
    }
    static const std::string* peer_of(const SSL* ssl) noexcept {
        const int index = ssl_index();
        if (index < 0) return nullptr;
        return static_cast<const std::string*>(::SSL_get_ex_data(ssl, index));
    }

    // One reference to the newest usable session kept for `peer`, taken out; or null.
    SSL_SESSION* take(const std::string& peer) {
        std::lock_guard<std::mutex> lock(mutex_);
        for (auto it = peers_.begin(); it != peers_.end(); ++it) {
            if (it->name != peer) continue;
            SSL_SESSION* found = nullptr;
            while (!found && !it->sessions.empty()) {
                SSL_SESSION* s = it->sessions.back();
                it->sessions.pop_back();
                if (usable(s))
                    found = s;
                else
                    ::SSL_SESSION_free(s);
            }
            if (it->sessions.empty()) peers_.erase(it);
            return found;
        }
        return nullptr;
    }

    // Keeps one reference to `session` (owned from here on) as the newest for `peer`.
    void put(const std::string& peer, SSL_SESSION* session) {
        std::vector<SSL_SESSION*> dropped;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            auto it = peers_.begin();
            while (it != peers_.end() && it->name != peer) ++it;
            peer_sessions entry;
            if (it != peers_.end()) {
                entry = std::move(*it);
                peers_.erase(it);
            } else {
                entry.name = peer;
            }
            entry.sessions.push_back(session);
            if (entry.sessions.size() > sessions_per_peer) {
                dropped.push_back(entry.sessions.front());
                entry.sessions.erase(entry.sessions.begin());
            }
            peers_.push_back(std::move(entry)); // newest last
            trim(dropped);
        }
        for (SSL_SESSION* s : dropped) ::SSL_SESSION_free(s);
    }

    void set_max_peers(std::size_t max_peers) {
        std::vector<SSL_SESSION*> dropped;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            max_peers_ = max_peers;
            trim(dropped);
        }
        for (SSL_SESSION* s : dropped) ::SSL_SESSION_free(s);
    }

    void count_offered() noexcept { offered_.fetch_add(1, std::memory_order_relaxed); }
    void count_resumed() noexcept { resumed_.fetch_add(1, std::memory_order_relaxed); }

    counts count() const {
        counts c;
        {
            std::lock_guard<std::mutex> lock(mutex_);
            c.peers = peers_.size();
            for (const auto& p : peers_) c.sessions += p.sessions.size();
        }
        c.offered = offered_.load(std::memory_order_relaxed);
        c.resumed = resumed_.load(std::memory_order_relaxed);
        return c;
    }

private:
    struct peer_sessions {
        std::string name;
        std::vector<SSL_SESSION*> sessions; // oldest first
    };

    static bool usable(SSL_SESSION* s) noexcept {
        if (::SSL_SESSION_is_resumable(s) != 1) return false;
        const auto made = static_cast<std::int64_t>(::SSL_SESSION_get_time(s));
        const auto lifetime = static_cast<std::int64_t>(::SSL_SESSION_get_timeout(s));
        return static_cast<std::int64_t>(std::time(nullptr)) < made + lifetime;
    }

    // Under mutex_: drops the least recently filled peers beyond the bound.
    void trim(std::vector<SSL_SESSION*>& dropped) {
        while (peers_.size() > max_peers_) {
            for (SSL_SESSION* s : peers_.front().sessions) dropped.push_back(s);
            peers_.erase(peers_.begin());
        }
    }

    // OpenSSL's new-session callback: a full handshake finished (TLS 1.2) or a TLS 1.3
    // ticket arrived. Returning 1 keeps the reference OpenSSL took for us.
    static int on_new_session(SSL* ssl, SSL_SESSION* session) {
        auto* cache = of(::SSL_get_SSL_CTX(ssl));
        const std::string* peer = peer_of(ssl);
        if (!cache || !peer || peer->empty()) return 0;
        try {
            cache->put(*peer, session);
        } catch (...) { // out of memory: the session is just not kept
            return 0;
        }
        return 1;
    }

    static void free_cache(void*, void* data, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<tls_session_cache*>(data);
    }
    static void free_peer(void*, void* data, CRYPTO_EX_DATA*, int, long, void*) {
        delete static_cast<std::string*>(data);
    }

    // Process-wide slots, made once like OpenSSL's own indexes. An SSL that holds a peer name
    // must not be SSL_dup'ed (the copy would share it); duplex never does.
    static int context_index() noexcept {
        static const int index =
            ::SSL_CTX_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_cache);
        return index;
    }
    static int ssl_index() noexcept {
        static const int index = ::SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, &free_peer);
        return index;
    }

    mutable std::mutex mutex_;
    std::vector<peer_sessions> peers_; // least recently filled first
    std::size_t max_peers_;
    std::atomic<std::uint64_t> offered_{0};
    std::atomic<std::uint64_t> resumed_{0};
};

} // namespace duplex::detail
