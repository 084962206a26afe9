#if canImport(Security)
import Foundation
import Security

/// Keeps the session in the Keychain, the place iOS and macOS give secrets: encrypted at rest,
/// readable after the first unlock, and never restored onto another device from a backup.
///
/// ```swift
/// let client = try SiwaClient(serverUrl: "https://api.example.com", store: KeychainSessionStore())
/// ```
public final class KeychainSessionStore: SessionStore {
    private let service: String
    private let account: String
    private let accessGroup: String?

    /// - Parameters:
    ///   - service: the Keychain item's service; the default names the app's bundle.
    ///   - account: the item's account.
    ///   - accessGroup: a Keychain access group, to share the session with an app extension.
    public init(
        service: String = (Bundle.main.bundleIdentifier ?? "siwa") + ".siwa-session",
        account: String = "session",
        accessGroup: String? = nil
    ) {
        self.service = service
        self.account = account
        self.accessGroup = accessGroup
    }

    private var query: [String: Any] {
        var query: [String: Any] = [
            kSecClass as String: kSecClassGenericPassword,
            kSecAttrService as String: service,
            kSecAttrAccount as String: account,
        ]
        if let accessGroup {
            query[kSecAttrAccessGroup as String] = accessGroup
        }
        // On macOS, items go to the legacy file-based keychain unless asked otherwise, and
        // that keychain ignores `kSecAttrAccessible`: the data-protection keychain (iOS's) is
        // where the accessibility class below holds. iOS uses it whatever this says.
        query[kSecUseDataProtectionKeychain as String] = true
        return query
    }

    public func load() throws -> String? {
        var search = query
        search[kSecReturnData as String] = true
        search[kSecMatchLimit as String] = kSecMatchLimitOne
        var item: CFTypeRef?
        let status = SecItemCopyMatching(search as CFDictionary, &item)
        switch status {
        case errSecSuccess:
            guard let data = item as? Data, let session = String(data: data, encoding: .utf8) else {
                throw SiwaError.Storage
            }
            return session
        case errSecItemNotFound:
            return nil
        default:
            throw SiwaError.Storage
        }
    }

    public func save(session: String) throws {
        let data = Data(session.utf8)
        let attributes: [String: Any] = [
            kSecValueData as String: data,
            // Survives a restart before the first unlock is not needed; a restore onto
            // another device must not carry the session along.
            kSecAttrAccessible as String: kSecAttrAccessibleAfterFirstUnlockThisDeviceOnly,
        ]
        var status = SecItemUpdate(query as CFDictionary, attributes as CFDictionary)
        if status == errSecItemNotFound {
            var item = query
            item.merge(attributes) { _, new in new }
            status = SecItemAdd(item as CFDictionary, nil)
        }
        guard status == errSecSuccess else { throw SiwaError.Storage }
    }

    public func clear() throws {
        let status = SecItemDelete(query as CFDictionary)
        guard status == errSecSuccess || status == errSecItemNotFound else {
            throw SiwaError.Storage
        }
    }
}
#endif
