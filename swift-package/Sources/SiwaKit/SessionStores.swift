// The stores implemented in Rust (siwa-core's client) already have the `SessionStore`
// protocol's methods; these conformances let them be passed to `SiwaClient(serverUrl:store:)`.

/// Keeps the session in memory only: for tests and SwiftUI previews.
extension InMemorySessionStore: SessionStore {}

/// Keeps the session in one file, readable by its owner only and replaced atomically: for
/// command-line tools, Linux, and tests that restart the client.
extension FileSessionStore: SessionStore {}
