import Foundation
import SiwaKit
import SiwaKitTesting
import XCTest

/// SiwaKit through UniFFI and siwa-core's client, against a real siwa-server whose Apple is
/// mock-apple: the whole chain an iOS app uses, with credentials from the mock.
final class EndToEndTests: XCTestCase {
    var stack: Stack!

    override func setUp() async throws {
        stack = try await Stack.start()
    }

    override func tearDown() async throws {
        stack?.stop()
    }

    func client(_ store: any SessionStore) throws -> SiwaClient {
        try SiwaClient(serverUrl: stack.serverURL, store: store)
    }

    func signIn(_ client: SiwaClient, sub: String? = nil) async throws -> SiwaUser {
        let attempt = client.startSignIn()
        let credential = try await stack.apple.credential(for: attempt, sub: sub)
        return try await client.completeSignIn(attempt: attempt, credential: credential)
    }

    func testTheWholeLifeOfAnAccount() async throws {
        let file = stack.sessionFile()
        let client = try client(fileSessionStore(path: file))

        // First sign-in: Apple gives the name, the server keeps it.
        let user = try await signIn(client)
        XCTAssertEqual(user.givenName, "Jane")
        XCTAssertEqual(user.familyName, "Appleseed")
        XCTAssertEqual(user.email, "jane.appleseed@example.com")
        XCTAssertEqual(client.currentUser(), user)
        XCTAssertNotNil(client.appleUserId())

        // Reading the user and a forced refresh rotate nothing the app has to handle.
        let me = try await client.refreshUser()
        XCTAssertEqual(me.id, user.id)
        let before = try await client.accessToken()
        try await client.refreshSession()
        let after = try await client.accessToken()
        XCTAssertNotEqual(before, after)

        // A restarted app finds its session in the store.
        let restarted = try self.client(fileSessionStore(path: file))
        XCTAssertEqual(restarted.currentUser(), user)
        let restored = try await restarted.refreshUser()
        XCTAssertEqual(restored.id, user.id)

        // Sign out, and in again: Apple does not send the name twice; the server kept it.
        try await restarted.signOut()
        XCTAssertNil(restarted.currentUser())
        XCTAssertFalse(FileManager.default.fileExists(atPath: file))
        let again = try await signIn(restarted)
        XCTAssertEqual(again.id, user.id)
        XCTAssertEqual(again.givenName, "Jane")

        // Deleting the account revokes Apple's token at the mock.
        let revocations = try await stack.apple.requestCount("revoke")
        try await restarted.deleteAccount()
        XCTAssertNil(restarted.currentUser())
        let revocationsAfter = try await stack.apple.requestCount("revoke")
        XCTAssertEqual(revocationsAfter, revocations + 1)

        // A new account now, with the name again (the revocation reset Apple's memory).
        let reborn = try await signIn(restarted)
        XCTAssertNotEqual(reborn.id, user.id)
        XCTAssertEqual(reborn.givenName, "Jane")
    }

    func testABrowserSignInStartsAtTheServerAndReadsWhatTheBrowserBringsBack() async throws {
        let client = try client(inMemorySessionStore())
        let app = Stack.appRedirectURI
        let url = try await client.startBrowserSignIn(appRedirectUri: app)
        XCTAssertTrue(url.hasPrefix("\(stack.serverURL)/v1/web/sign-in?"), url)
        XCTAssertTrue(url.contains("code_challenge_method=S256"), url)
        do {
            _ = try await client.completeBrowserSignIn(callbackUrl: "\(app)?error=user_cancelled_authorize")
            XCTFail("accepted")
        } catch SiwaError.Cancelled {}
        _ = try await client.startBrowserSignIn(appRedirectUri: app)
        do {
            _ = try await client.completeBrowserSignIn(callbackUrl: "\(app)?error=invalid_state")
            XCTFail("accepted")
        } catch let SiwaError.BrowserSignInFailed(code) {
            XCTAssertEqual(code, "invalid_state")
        }
        // Apple or the database down, as the browser brings it back: retry later.
        _ = try await client.startBrowserSignIn(appRedirectUri: app)
        do {
            _ = try await client.completeBrowserSignIn(callbackUrl: "\(app)?error=apple_unavailable")
            XCTFail("accepted")
        } catch let SiwaError.Unavailable(code) {
            XCTAssertEqual(code, "apple_unavailable")
        }
    }

    func testARedirectTheServerDoesNotListFailsBeforeTheBrowserOpens() async throws {
        let client = try client(inMemorySessionStore())
        do {
            _ = try await client.startBrowserSignIn(appRedirectUri: "com.example.other://signed-in")
            XCTFail("accepted")
        } catch let SiwaError.Server(code, _) {
            XCTAssertEqual(code, "app_redirect_uri_not_allowed")
        }
    }

    func testANonceMismatchIsCaughtBeforeTheServer() async throws {
        let client = try client(inMemorySessionStore())
        let attempt = client.startSignIn()
        let other = client.startSignIn()
        let credential = try await stack.apple.credential(for: attempt, nonce: other.hashedNonce)
        do {
            _ = try await client.completeSignIn(attempt: attempt, credential: credential)
            XCTFail("accepted")
        } catch SiwaError.NonceMismatch {}
        let exchanges = try await stack.apple.requestCount("token")
        XCTAssertEqual(exchanges, 0, "the code was not spent")
    }

    func testAServerThatIsDownIsANetworkError() async throws {
        let client = try SiwaClient(serverUrl: "http://127.0.0.1:9", store: inMemorySessionStore())
        let attempt = client.startSignIn()
        let credential = try await stack.apple.credential(for: attempt)
        do {
            _ = try await client.completeSignIn(attempt: attempt, credential: credential)
            XCTFail("accepted")
        } catch SiwaError.Network {}
        XCTAssertNil(client.currentUser())
    }

    /// A session the store cannot keep is undone rather than kept in memory only.
    func testASignInThatCannotBeStoredIsUndone() async throws {
        let client = try client(UnwritableStore())
        do {
            _ = try await signIn(client)
            XCTFail("a session that was not stored was kept")
        } catch SiwaError.Storage {}
        XCTAssertNil(client.currentUser())
        do {
            _ = try await client.accessToken()
            XCTFail("signed in")
        } catch SiwaError.SessionExpired {}
    }

    func testATokenForAnotherAppIsRefusedByTheServer() async throws {
        let client = try client(inMemorySessionStore())
        let attempt = client.startSignIn()
        let otherApp = MockApple(baseURL: stack.apple.baseURL, clientId: "com.example.other")
        let credential = try await otherApp.credential(for: attempt)
        do {
            _ = try await client.completeSignIn(attempt: attempt, credential: credential)
            XCTFail("accepted")
        } catch let SiwaError.Server(code, _) {
            XCTAssertEqual(code, "wrong_audience")
        }
        XCTAssertNil(client.currentUser())
    }

    func testARefreshTokenReusedElsewhereEndsTheSession() async throws {
        let original = stack.sessionFile("original.json")
        let copy = stack.sessionFile("copy.json")
        let client = try client(fileSessionStore(path: original))
        _ = try await signIn(client)

        // Someone copies the stored session and refreshes with it first.
        try FileManager.default.copyItem(atPath: original, toPath: copy)
        let thief = try self.client(fileSessionStore(path: copy))
        try await thief.refreshSession()
        // Past the server's reuse grace (1 s here): within it, the same token would get the
        // same successor (a lost answer, or two processes sharing one stored session).
        try await Task.sleep(nanoseconds: 2_000_000_000)

        do {
            try await client.refreshSession()
            XCTFail("the reused refresh token was accepted")
        } catch SiwaError.SessionExpired {}
        XCTAssertNil(client.currentUser())
        XCTAssertFalse(FileManager.default.fileExists(atPath: original))
        do {
            _ = try await thief.refreshUser()
            XCTFail("the whole session family should have ended")
        } catch SiwaError.SessionExpired {}
    }
}
