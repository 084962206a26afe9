import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SiwaKit

/// Apple's side, played by `mock-apple` (`cargo run -p mock-apple`): credentials for tests,
/// SwiftUI previews and UI tests, without an Apple Account or a device.
///
/// ```swift
/// let apple = MockApple(baseURL: URL(string: "http://127.0.0.1:4000")!)
/// let attempt = client.startSignIn()
/// let credential = try await apple.credential(for: attempt)
/// let user = try await client.completeSignIn(attempt: attempt, credential: credential)
/// ```
public struct MockApple: Sendable {
    /// Where the mock listens.
    public let baseURL: URL
    /// The app's bundle ID: the audience of the tokens and the client of their codes.
    public let clientId: String

    public init(baseURL: URL, clientId: String = "com.example.app") {
        self.baseURL = baseURL
        self.clientId = clientId
    }

    /// What Apple's sheet would give the app for `attempt`: a credential whose token carries
    /// the attempt's hashed nonce. The name and email come on the user's first authorization
    /// of the app only, as with Apple (again after the app's tokens were revoked).
    ///
    /// - Parameters:
    ///   - sub: the user; the mock's default user when nil.
    ///   - hideEmail: the user chose "Hide My Email" (a private relay address).
    ///   - nonce: the nonce to put in the token; the attempt's when nil (for mismatch tests).
    public func credential(
        for attempt: SignInAttempt,
        sub: String? = nil,
        hideEmail: Bool = false,
        nonce: String? = nil
    ) async throws -> AppleCredential {
        var body: [String: any Sendable] = [
            "clientId": clientId,
            "nonce": nonce ?? attempt.hashedNonce,
            "hideEmail": hideEmail,
        ]
        if let sub { body["sub"] = sub }
        let minted: MintedToken = try await post("/mock/identity-token", body: body)
        return AppleCredential(
            identityToken: minted.identityToken,
            authorizationCode: minted.authorizationCode,
            user: minted.sub,
            givenName: minted.givenName,
            familyName: minted.familyName,
            email: minted.email
        )
    }

    /// A new developer key (`.p8`) registered with the mock, for a server's
    /// `SIWA_APPLE_TEAM_ID`, `SIWA_APPLE_KEY_ID` and `SIWA_APPLE_PRIVATE_KEY`.
    public func generateDeveloperKey() async throws -> DeveloperKey {
        try await post("/mock/developer-keys/generate", body: [:])
    }

    /// How many requests the mock has had at one of Apple's endpoints (`keys`, `token`,
    /// `revoke`, `authorize`, `discovery`).
    public func requestCount(_ endpoint: String) async throws -> Int {
        let (data, _) = try await URLSession.shared.data(from: baseURL.appendingPathComponent("mock/counters"))
        let counters = try JSONDecoder().decode([String: Int].self, from: data)
        return counters[endpoint] ?? 0
    }

    private struct MintedToken: Decodable {
        let identityToken: String
        let authorizationCode: String
        let sub: String
        let givenName: String?
        let familyName: String?
        let email: String?
    }

    private func post<T: Decodable>(_ path: String, body: [String: any Sendable]) async throws -> T {
        var request = URLRequest(url: baseURL.appendingPathComponent(String(path.dropFirst())))
        request.httpMethod = "POST"
        request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        request.httpBody = try JSONSerialization.data(withJSONObject: body)
        let (data, response) = try await URLSession.shared.data(for: request)
        guard let status = (response as? HTTPURLResponse)?.statusCode, (200..<300).contains(status) else {
            throw MockAppleError.refused(path: path, body: String(decoding: data, as: UTF8.self))
        }
        return try JSONDecoder().decode(T.self, from: data)
    }
}

/// A developer key made by the mock: what a developer downloads from Apple once.
public struct DeveloperKey: Decodable, Sendable {
    public let teamId: String
    public let keyId: String
    public let privateKeyPem: String
}

/// The mock refused a control request.
public enum MockAppleError: Error, Sendable {
    case refused(path: String, body: String)
}
