import CIOPSystem
import IOPNet

/// A board's or a client's CURVE keys, as `iop keys` writes them into one directory per identity:
///
///     secret   name NAME / public Z85 / secret Z85    (mode 0600; never leaves the board)
///     peers    one line per peer it may talk to: ROLE NAME PUBLIC-Z85, ROLE one of leader, worker, client, admin
///
/// Lines starting with # are comments. Roles decide who may send what: a worker takes frames only from its leader,
/// the leader takes results only from its workers and requests only from clients; only an admin may stop it.
public struct Keyring: Sendable {
    public enum Role: Sendable, Equatable {
        case leader, worker, client, admin

        public var name: String {
            switch self {
            case .leader: return "leader"
            case .worker: return "worker"
            case .client: return "client"
            case .admin: return "admin"
            }
        }

        public init?(name: String) {
            for r in [Role.leader, .worker, .client, .admin] where r.name == name {
                self = r
                return
            }
            return nil
        }
    }

    public struct Peer: Sendable, Equatable {
        public var role: Role
        public var name: String
        public var publicKey: [UInt8]
        public init(role: Role, name: String, publicKey: [UInt8]) {
            self.role = role; self.name = name; self.publicKey = publicKey
        }
        /// What the ZAP handler tells a socket about this peer: "role:name".
        public var userID: String { role.name + ":" + name }
    }

    /// ZAP domains: which peers each kind of server socket admits.
    public enum Domain {
        /// A worker's inbox: its leader only.
        public static let work = "iop-work"
        /// The leader's inbox: its workers' results and setup answers.
        public static let results = "iop-results"
        /// The leader's request port: clients and admins.
        public static let requests = "iop-requests"
        /// A client's reply socket: the leader.
        public static let replies = "iop-replies"
    }

    public var name: String
    public var own: CurveKeypair
    public var peers: [Peer]

    public init(name: String, own: CurveKeypair, peers: [Peer]) {
        self.name = name; self.own = own; self.peers = peers
    }

    public func peer(named name: String, role: Role) -> Peer? {
        peers.first { $0.name == name && $0.role == role }
    }

    /// The one leader this identity talks to.
    public var leader: Peer? { peers.first { $0.role == .leader } }

    /// The peer a ZAP user id names ("role:name").
    public func peer(userID: UnsafeRawBufferPointer) -> Peer? {
        peers.first { p in p.userID.utf8.elementsEqual(userID) }
    }

    /// Admits `peers` of `roles` on server sockets of `domain` in this context, and returns its gatekeeper.
    @discardableResult
    public func admit(_ roles: [Role], domain: String, context: Context) throws(NodeError) -> Gatekeeper {
        do throws(NetError) {
            let gate = try context.guarded()
            for p in peers where roles.contains(p.role) { try gate.allow(p.publicKey, domain: domain, as: p.userID) }
            return gate
        } catch { throw .net(error) }
    }

    /// The `secret` file's text.
    public static func secretFile(name: String, keys: CurveKeypair) -> String {
        "# iop CURVE keys of '" + name + "': keep this file secret (mode 0600)\nname " + name + "\npublic "
            + z85(keys.publicKey) + "\nsecret " + z85(keys.secretKey) + "\n"
    }

    /// The `peers` file's text.
    public static func peersFile(name: String, peers: [Peer]) -> String {
        var text = "# who may talk to '" + name + "': role name public-key\n"
        for p in peers { text += p.role.name + " " + p.name + " " + z85(p.publicKey) + "\n" }
        return text
    }

    static func z85(_ key: [UInt8]) -> String { String(decoding: Z85.encode(key) ?? [], as: UTF8.self) }

    /// Reads `directory`/secret and `directory`/peers.
    public static func load(directory: String) throws(KeyringError) -> Keyring {
        let secretPath = directory + "/secret", peersPath = directory + "/peers"
        var name = "", publicKey: [UInt8]?, secretKey: [UInt8]?
        for (n, fields) in try lines(secretPath).enumerated() where !fields.isEmpty {
            guard fields.count == 2 else { throw KeyringError(path: secretPath, line: n + 1, "expected KEY VALUE") }
            switch fields[0] {
            case "name": name = fields[1]
            case "public": publicKey = try key(fields[1], secretPath, n + 1)
            case "secret": secretKey = try key(fields[1], secretPath, n + 1)
            default: throw KeyringError(path: secretPath, line: n + 1, "unknown key '" + fields[0] + "'")
            }
        }
        guard let secretKey, !name.isEmpty else {
            throw KeyringError(path: secretPath, line: 0, "needs a name and a secret line (made by `iop keys`)")
        }
        guard let derived = CurveKeypair.publicKey(of: secretKey), publicKey == nil || publicKey! == derived else {
            throw KeyringError(path: secretPath, line: 0, "the public key does not belong to the secret key")
        }
        var peers: [Peer] = []
        for (n, fields) in try lines(peersPath).enumerated() where !fields.isEmpty {
            guard fields.count == 3, let role = Role(name: fields[0]) else {
                throw KeyringError(
                    path: peersPath, line: n + 1,
                    "expected ROLE NAME PUBLIC-KEY, ROLE one of leader, worker, client, admin")
            }
            peers.append(Peer(role: role, name: fields[1], publicKey: try key(fields[2], peersPath, n + 1)))
        }
        return Keyring(name: name, own: CurveKeypair(publicKey: derived, secretKey: secretKey), peers: peers)
    }

    static func key(_ text: String, _ path: String, _ line: Int) throws(KeyringError) -> [UInt8] {
        guard let k = Z85.decode(Array(text.utf8)), k.count == 32 else {
            throw KeyringError(path: path, line: line, "not a 40-character Z85 key")
        }
        return k
    }

    /// A file's non-comment lines, split at spaces (line numbers count every line, for messages).
    static func lines(_ path: String) throws(KeyringError) -> [[String]] {
        var length = 0
        guard let mapped = iop_map_file(path, &length) else {
            throw KeyringError(path: path, line: 0, "cannot read (" + String(cString: iop_last_error()) + ")")
        }
        defer { iop_unmap_file(mapped, length) }
        var out: [[String]] = [], fields: [String] = [], field: [UInt8] = []
        for byte in UnsafeRawBufferPointer(start: mapped, count: length) + [10] {
            if byte == 10 || byte == 32 || byte == 9 || byte == 13 {
                if !field.isEmpty { fields.append(String(decoding: field, as: UTF8.self)); field = [] }
                if byte == 10 {
                    out.append(fields.first?.hasPrefix("#") == true ? [] : fields)
                    fields = []
                }
            } else {
                field.append(byte)
            }
        }
        // Blank and comment lines stay as empty entries so line numbers stay true; callers skip them.
        return out
    }
}

public struct KeyringError: Error, Sendable {
    public var path: String
    public var line: Int
    public var reason: String
    init(path: String, line: Int, _ reason: String) { self.path = path; self.line = line; self.reason = reason }
    public var message: String { path + (line > 0 ? ":" + String(line) : "") + ": " + reason }
}
