#ifndef IOP_ZAP_H
#define IOP_ZAP_H

#include <stdint.h>

/// A ZAP handler (ZeroMQ RFC 27) for one libzmq context: it admits a CURVE
/// client only if its public key is allowed in the server socket's ZAP domain,
/// and tells the socket who it is (the allowed key's user id, readable as the
/// "User-Id" property of every message from that peer). Without a handler
/// libzmq would admit anyone who knows the server's public key.
typedef struct iop_zap iop_zap;

/// Binds inproc://zeromq.zap.01 in `context` and starts the handler's thread.
/// Call before any CURVE socket of the context binds. NULL on failure (errno set).
iop_zap *iop_zap_start(void *context);

/// Admits `public_key` (32 bytes) on server sockets of ZAP domain `domain`, as
/// `user_id` (both at most 63 bytes); allowing a key again replaces its user id.
/// 0, or -1 when the list (256 keys) is full or a name too long.
int iop_zap_allow(iop_zap *zap, const char *domain, const uint8_t *public_key, const char *user_id);

/// Handshakes admitted and refused so far.
uint64_t iop_zap_accepted(iop_zap *zap);
uint64_t iop_zap_refused(iop_zap *zap);

/// Waits for the thread to end and frees the handler. Call after zmq_ctx_term
/// on its context (which ends the thread's socket).
void iop_zap_join(iop_zap *zap);

#endif
