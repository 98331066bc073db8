#include "iop_zap.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zmq.h>

enum { max_entries = 256, name_size = 64, max_parts = 8 };

struct entry {
    char domain[name_size];
    uint8_t key[32];
    char user_id[name_size];
};

struct iop_zap {
    void *socket;
    pthread_t thread;
    pthread_mutex_t lock;
    struct entry entries[max_entries];
    int count;
    uint64_t accepted, refused, refused_unlogged;
    struct timespec last_log;
};

/* The user id admitted for `key` in `domain`, or NULL. */
static const char *lookup(iop_zap *zap, const char *domain, size_t domain_length, const uint8_t *key) {
    const char *found = NULL;
    pthread_mutex_lock(&zap->lock);
    for (int i = 0; i < zap->count && !found; i++) {
        const struct entry *e = &zap->entries[i];
        if (strlen(e->domain) == domain_length && memcmp(e->domain, domain, domain_length) == 0
            && memcmp(e->key, key, 32) == 0)
            found = e->user_id;
    }
    pthread_mutex_unlock(&zap->lock);
    return found;
}

/* One stderr line per refused peer at most every 5 s, so a scan cannot flood the journal. */
static void log_refusal(iop_zap *zap, const char *address, size_t address_length, const char *why) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (zap->refused > 1 && now.tv_sec - zap->last_log.tv_sec < 5) {
        zap->refused_unlogged++;
        return;
    }
    fprintf(stderr, "<4>iop: refused a handshake from %.*s: %s (%llu refused so far)\n", (int)address_length,
            address, why, (unsigned long long)zap->refused);
    zap->last_log = now;
    zap->refused_unlogged = 0;
}

static int send_part(void *socket, const void *data, size_t length, int more) {
    return zmq_send(socket, data, length, more ? ZMQ_SNDMORE : 0) < 0 ? -1 : 0;
}

static void *serve(void *argument) {
    iop_zap *zap = argument;
    zmq_msg_t parts[max_parts];
    for (;;) {
        int n = 0, more = 1, error = 0;
        while (more) {
            zmq_msg_t part;
            zmq_msg_init(&part);
            if (zmq_msg_recv(&part, zap->socket, 0) < 0) {
                zmq_msg_close(&part);
                if (zmq_errno() == EINTR) continue;
                error = zmq_errno();
                break;
            }
            more = zmq_msg_more(&part);
            if (n < max_parts) {
                zmq_msg_init(&parts[n]);
                zmq_msg_move(&parts[n++], &part);
            }
            zmq_msg_close(&part);
        }
        if (error) {
            for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
            if (error == ETERM) break;
            continue;
        }
        /* version, request id, domain, address, routing id, mechanism, credentials... */
        const char *user = NULL, *why = "malformed ZAP request";
        if (n >= 6) {
            const char *mechanism = zmq_msg_data(&parts[5]);
            size_t mechanism_length = zmq_msg_size(&parts[5]);
            if (mechanism_length != 5 || memcmp(mechanism, "CURVE", 5) != 0 || n < 7 || zmq_msg_size(&parts[6]) != 32)
                why = "not a CURVE handshake";
            else if (!(user = lookup(zap, zmq_msg_data(&parts[2]), zmq_msg_size(&parts[2]), zmq_msg_data(&parts[6]))))
                why = "key not allowed on this port";
        }
        if (user) {
            __atomic_fetch_add(&zap->accepted, 1, __ATOMIC_RELAXED);
        } else {
            __atomic_fetch_add(&zap->refused, 1, __ATOMIC_RELAXED);
            log_refusal(zap, n >= 4 ? zmq_msg_data(&parts[3]) : "?", n >= 4 ? zmq_msg_size(&parts[3]) : 1, why);
        }
        const char *code = user ? "200" : "400";
        int ok = send_part(zap->socket, "1.0", 3, 1) == 0
            && send_part(zap->socket, n >= 2 ? zmq_msg_data(&parts[1]) : "", n >= 2 ? zmq_msg_size(&parts[1]) : 0, 1)
                == 0
            && send_part(zap->socket, code, 3, 1) == 0
            && send_part(zap->socket, user ? "OK" : why, strlen(user ? "OK" : why), 1) == 0
            && send_part(zap->socket, user ? user : "", user ? strlen(user) : 0, 1) == 0
            && send_part(zap->socket, "", 0, 0) == 0;
        for (int i = 0; i < n; i++) zmq_msg_close(&parts[i]);
        if (!ok && zmq_errno() == ETERM) break;
    }
    zmq_close(zap->socket);
    return NULL;
}

iop_zap *iop_zap_start(void *context) {
    iop_zap *zap = calloc(1, sizeof *zap);
    if (!zap) return NULL;
    pthread_mutex_init(&zap->lock, NULL);
    zap->socket = zmq_socket(context, ZMQ_REP);
    int linger = 0;
    if (!zap->socket || zmq_setsockopt(zap->socket, ZMQ_LINGER, &linger, sizeof linger) != 0
        || zmq_bind(zap->socket, "inproc://zeromq.zap.01") != 0) {
        int saved = zmq_errno();
        if (zap->socket) zmq_close(zap->socket);
        free(zap);
        errno = saved;
        return NULL;
    }
    if (pthread_create(&zap->thread, NULL, serve, zap) != 0) {
        zmq_close(zap->socket);
        free(zap);
        return NULL;
    }
    return zap;
}

int iop_zap_allow(iop_zap *zap, const char *domain, const uint8_t *public_key, const char *user_id) {
    if (strlen(domain) >= name_size || strlen(user_id) >= name_size) return -1;
    pthread_mutex_lock(&zap->lock);
    int result = -1, found = -1;
    /* Allowing a key again (a worker registering anew) replaces its entry. */
    for (int i = 0; i < zap->count && found < 0; i++)
        if (strcmp(zap->entries[i].domain, domain) == 0 && memcmp(zap->entries[i].key, public_key, 32) == 0) found = i;
    if (found >= 0 || zap->count < max_entries) {
        struct entry *e = &zap->entries[found >= 0 ? found : zap->count++];
        strcpy(e->domain, domain);
        memcpy(e->key, public_key, 32);
        strcpy(e->user_id, user_id);
        result = 0;
    }
    pthread_mutex_unlock(&zap->lock);
    return result;
}

uint64_t iop_zap_accepted(iop_zap *zap) { return __atomic_load_n(&zap->accepted, __ATOMIC_RELAXED); }
uint64_t iop_zap_refused(iop_zap *zap) { return __atomic_load_n(&zap->refused, __ATOMIC_RELAXED); }

void iop_zap_join(iop_zap *zap) {
    pthread_join(zap->thread, NULL);
    pthread_mutex_destroy(&zap->lock);
    free(zap);
}
