import Foundation
import SiwaKit
import XCTest

/// The parts that need no server: attempts, the local credential checks, the stores, errors.
final class SiwaClientTests: XCTestCase {
    /// Nothing listens there: a request would fail as `Network`.
    let unreachable = "http://127.0.0.1:9"

    func testAnAttemptGivesAppleTheLowercaseHexSha256OfAFreshNonce() throws {
        let client = try SiwaClient(serverUrl: unreachable, store: inMemorySessionStore())
        let a = client.startSignIn(), b = client.startSignIn()
        XCTAssertEqual(a.hashedNonce.count, 64)
        XCTAssertTrue(a.hashedNonce.allSatisfy { "0123456789abcdef".contains($0) })
        XCTAssertNotEqual(a.hashedNonce, b.hashedNonce)
    }

    func testANewClientHasNoUserAndNoToken() async throws {
        let client = try SiwaClient(serverUrl: unreachable, store: inMemorySessionStore())
        XCTAssertNil(client.currentUser())
        XCTAssertNil(client.appleUserId())
        do {
            _ = try await client.accessToken()
            XCTFail("signed out")
        } catch SiwaError.SessionExpired {}
    }

    func testACredentialForAnotherAttemptIsRefusedBeforeTheNetwork() async throws {
        let client = try SiwaClient(serverUrl: unreachable, store: inMemorySessionStore())
        let attempt = client.startSignIn()
        let other = client.startSignIn()
        let credential = AppleCredential(identityToken: token(sub: "001.a", nonce: other.hashedNonce), user: "001.a")
        do {
            _ = try await client.completeSignIn(attempt: attempt, credential: credential)
            XCTFail("accepted")
        } catch SiwaError.NonceMismatch {}
    }

    func testATokenOfAnotherUserIsAnInvalidCredential() async throws {
        let client = try SiwaClient(serverUrl: unreachable, store: inMemorySessionStore())
        let attempt = client.startSignIn()
        let credential = AppleCredential(identityToken: token(sub: "001.a", nonce: attempt.hashedNonce), user: "001.b")
        do {
            _ = try await client.completeSignIn(attempt: attempt, credential: credential)
            XCTFail("accepted")
        } catch SiwaError.InvalidCredential {}
    }

    func testAMatchingCredentialGoesToTheNetwork() async throws {
        let client = try SiwaClient(serverUrl: unreachable, store: inMemorySessionStore())
        let attempt = client.startSignIn()
        let credential = AppleCredential(identityToken: token(sub: "001.a", nonce: attempt.hashedNonce), user: "001.a")
        do {
            _ = try await client.completeSignIn(attempt: attempt, credential: credential)
            XCTFail("no server there")
        } catch SiwaError.Network {}
    }

    func testAServerUrlThatIsNotHttpIsAConfigurationError() {
        XCTAssertThrowsError(try SiwaClient(serverUrl: "ftp://example.com", store: inMemorySessionStore())) { error in
            guard case SiwaError.InvalidConfiguration = error else { return XCTFail("\(error)") }
        }
    }

    func testTheStoresRoundTrip() throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("siwa-\(UUID().uuidString).json").path
        defer { try? FileManager.default.removeItem(atPath: file) }
        let stores: [any SessionStore] = [inMemorySessionStore(), fileSessionStore(path: file), SwiftStore()]
        for store in stores {
            XCTAssertNil(try store.load())
            try store.save(session: "one")
            XCTAssertEqual(try store.load(), "one")
            try store.clear()
            XCTAssertNil(try store.load())
        }
    }

    func testAFailingAppStoreIsAStorageError() {
        XCTAssertThrowsError(try SiwaClient(serverUrl: unreachable, store: FailingStore())) { error in
            XCTAssertEqual(error as? SiwaError, .Storage)
        }
    }

    func testABrowserSignInRefusesARedirectThatIsNoURLBeforeAnyRequest() async throws {
        let client = try SiwaClient(serverUrl: unreachable, store: inMemorySessionStore())
        do {
            _ = try await client.startBrowserSignIn(appRedirectUri: "not a url")
            XCTFail("accepted")
        } catch SiwaError.InvalidConfiguration {}
    }

    func testCredentialRevokedWhileSignedOutIsHarmless() throws {
        let store = SwiftStore()
        let client = try SiwaClient(serverUrl: unreachable, store: store)
        client.credentialRevoked()
        XCTAssertNil(client.currentUser())
        XCTAssertNil(try store.load())
    }
}

/// A store written in Swift, as an app's own would be.
final class SwiftStore: SessionStore, @unchecked Sendable {
    private let lock = NSLock()
    private var value: String?
    func load() throws -> String? { lock.withLock { value } }
    func save(session: String) throws { lock.withLock { value = session } }
    func clear() throws { lock.withLock { value = nil } }
}

struct StoreFailure: Error {}

/// Loads nothing and cannot write: a full disk, a locked Keychain.
final class UnwritableStore: SessionStore {
    func load() throws -> String? { nil }
    func save(session: String) throws { throw StoreFailure() }
    func clear() throws {}
}

final class FailingStore: SessionStore {
    func load() throws -> String? { throw StoreFailure() }
    func save(session: String) throws { throw StoreFailure() }
    func clear() throws { throw StoreFailure() }
}

/// An identity token shaped like Apple's; the client checks its claims, the server its signature.
func token(sub: String, nonce: String) -> String {
    func b64(_ json: String) -> String {
        Data(json.utf8).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_")
            .replacingOccurrences(of: "=", with: "")
    }
    let now = Int(Date().timeIntervalSince1970)
    let header = #"{"kid":"K1","alg":"RS256"}"#
    let claims = #"{"iss":"https://appleid.apple.com","aud":"com.example.app","sub":"\#(sub)","iat":\#(now),"exp":\#(now + 600),"nonce":"\#(nonce)"}"#
    return "\(b64(header)).\(b64(claims)).c2ln"
}
