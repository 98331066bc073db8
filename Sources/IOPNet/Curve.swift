import CIOPZap
import CZMQ

/// A CURVE keypair (Curve25519, as libzmq uses it): 32-byte keys, written as 40-character Z85 text in key files.
public struct CurveKeypair: Equatable, Sendable {
    public var publicKey: [UInt8]
    public var secretKey: [UInt8]

    public init(publicKey: [UInt8], secretKey: [UInt8]) {
        self.publicKey = publicKey; self.secretKey = secretKey
    }

    /// A fresh keypair (zmq_curve_keypair, from the system's randomness).
    public static func generate() throws(NetError) -> CurveKeypair {
        var publicText = [CChar](repeating: 0, count: 41), secretText = [CChar](repeating: 0, count: 41)
        guard zmq_curve_keypair(&publicText, &secretText) == 0 else { throw .last(.option) }
        let publicKey = Z85.decode(publicText.prefix(40).map { UInt8(bitPattern: $0) })!
        let secretKey = Z85.decode(secretText.prefix(40).map { UInt8(bitPattern: $0) })!
        return CurveKeypair(publicKey: publicKey, secretKey: secretKey)
    }

    /// The public key that belongs to `secretKey`, or nil when it is not 32 bytes.
    public static func publicKey(of secretKey: [UInt8]) -> [UInt8]? {
        guard secretKey.count == 32, let secretText = Z85.encode(secretKey) else { return nil }
        var publicText = [CChar](repeating: 0, count: 41)
        var secretC = secretText.map { CChar(bitPattern: $0) } + [0]
        guard zmq_curve_public(&publicText, &secretC) == 0 else { return nil }
        return Z85.decode(publicText.prefix(40).map { UInt8(bitPattern: $0) })
    }
}

/// ZeroMQ's Z85 text form of binary keys (RFC 32).
public enum Z85 {
    /// 40 characters for a 32-byte key; nil unless the length is a multiple of 4.
    public static func encode(_ bytes: [UInt8]) -> [UInt8]? {
        guard bytes.count % 4 == 0 else { return nil }
        var text = [CChar](repeating: 0, count: bytes.count * 5 / 4 + 1)
        guard zmq_z85_encode(&text, bytes, bytes.count) != nil else { return nil }
        return text.dropLast().map { UInt8(bitPattern: $0) }
    }

    /// The bytes of Z85 text; nil unless it is valid Z85 of a length that is a multiple of 5.
    public static func decode(_ text: [UInt8]) -> [UInt8]? {
        guard text.count % 5 == 0, !text.isEmpty else { return nil }
        let alphabet = Array(
            "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#".utf8)
        guard text.allSatisfy({ alphabet.contains($0) }) else { return nil }
        var out = [UInt8](repeating: 0, count: text.count * 4 / 5)
        let c = text.map { CChar(bitPattern: $0) } + [0]
        guard zmq_z85_decode(&out, c) != nil else { return nil }
        return out
    }
}

/// The ZAP handler of one context (CIOPZap): which public keys each server socket's domain admits, and as whom.
public final class Gatekeeper {
    let raw: OpaquePointer

    /// Starts the handler; `Context.guarded` does this before any socket exists.
    init(_ context: Context) throws(NetError) {
        guard let z = iop_zap_start(context.raw) else { throw .last(.bind) }
        raw = z
    }

    /// Admits `publicKey` on server sockets whose ZAP domain is `domain`; their messages carry `userID`.
    public func allow(_ publicKey: [UInt8], domain: String, as userID: String) throws(NetError) {
        guard publicKey.count == 32, iop_zap_allow(raw, domain, publicKey, userID) == 0 else {
            throw NetError(operation: .option, errno: EINVAL)
        }
    }

    public var accepted: UInt64 { iop_zap_accepted(raw) }
    /// Handshakes refused: unknown keys, keys in the wrong role, or no CURVE at all.
    public var refused: UInt64 { iop_zap_refused(raw) }
}

extension Socket {
    /// This socket authenticates its peers: a CURVE server with `own` keys, admitting whom `Gatekeeper` lets
    /// into `domain`. Call before `bind`.
    public func makeCurveServer(_ own: CurveKeypair, domain: String) throws(NetError) {
        try set(ZMQ_CURVE_SERVER, Int32(1))
        try set(ZMQ_CURVE_SECRETKEY, own.secretKey)
        var ok = true
        let length = domain.utf8.count
        domain.withCString { ok = zmq_setsockopt(raw, ZMQ_ZAP_DOMAIN, $0, length) == 0 }
        if !ok { throw .last(.option) }
    }

    /// This socket proves who it is to a CURVE server whose public key is `server`. Call before `connect`.
    public func makeCurveClient(_ own: CurveKeypair, server: [UInt8]) throws(NetError) {
        try set(ZMQ_CURVE_SERVERKEY, server)
        try set(ZMQ_CURVE_PUBLICKEY, own.publicKey)
        try set(ZMQ_CURVE_SECRETKEY, own.secretKey)
    }

    func set(_ option: Int32, _ key: [UInt8]) throws(NetError) {
        guard key.count == 32 else { throw NetError(operation: .option, errno: EINVAL) }
        if zmq_setsockopt(raw, option, key, 32) != 0 { throw .last(.option) }
    }
}
