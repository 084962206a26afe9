import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import SiwaKitTesting
import XCTest

/// `mock-apple` and `siwa-server` as real processes on free ports, for the end-to-end tests.
/// Their binaries come from `SIWA_TEST_BIN_DIR` (scripts/test-swift.sh sets it); without it
/// the end-to-end tests are skipped, unless `SIWA_REQUIRE_E2E=1` makes that a failure.
final class Stack: @unchecked Sendable {
    let apple: MockApple
    let serverURL: String
    private let processes: [Process]
    private let dataDirectory: URL

    /// The one redirect URI the server lists for browser sign-ins.
    static let appRedirectURI = "com.example.app://signed-in"

    static func start() async throws -> Stack {
        let environment = ProcessInfo.processInfo.environment
        guard let binaries = environment["SIWA_TEST_BIN_DIR"] else {
            if environment["SIWA_REQUIRE_E2E"] == "1" {
                throw StackError.missing("SIWA_TEST_BIN_DIR")
            }
            throw XCTSkip("SIWA_TEST_BIN_DIR is not set: run scripts/test-swift.sh")
        }
        let data = FileManager.default.temporaryDirectory
            .appendingPathComponent("siwa-e2e-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true)

        // Port 0: each process takes a free port and says which.
        let mock = try launch(binaries + "/mock-apple", ["--host", "127.0.0.1", "--port", "0"], [:])
        let mockURL = try await mock.line(containing: "base URL:")
            .components(separatedBy: "base URL:").last!.trimmingCharacters(in: .whitespaces)
        mock.drain()
        let apple = MockApple(baseURL: URL(string: mockURL)!)
        let developerKey = try await apple.generateDeveloperKey()

        let server = try launch(binaries + "/siwa-server", [], [
            "SIWA_HOST": "127.0.0.1",
            "PORT": "0",
            "SIWA_APPLE_CLIENT_IDS": apple.clientId,
            "SIWA_APPLE_BASE_URL": mockURL,
            "SIWA_DATABASE_URL": "sqlite://\(data.path)/siwa.db?mode=rwc",
            "SIWA_APPLE_TEAM_ID": developerKey.teamId,
            "SIWA_APPLE_KEY_ID": developerKey.keyId,
            "SIWA_APPLE_PRIVATE_KEY": developerKey.privateKeyPem,
            "SIWA_LOG_FORMAT": "text",
            // A short reuse grace, so that a test can step past it.
            "SIWA_REFRESH_REUSE_GRACE_SECS": "1",
            // The browser flow, for a native app's start (a macOS app without the entitlement).
            "SIWA_APPLE_SERVICES_ID": "com.example.web",
            "SIWA_PUBLIC_URL": "http://127.0.0.1",
            "SIWA_APP_REDIRECT_URIS": Stack.appRedirectURI,
            "RUST_LOG": "siwa_server=info",
        ])
        let listening = try await server.line(containing: "siwa-server listening")
        server.drain()
        guard let address = listening.components(separatedBy: "address=").last?
            .split(separator: " ").first
        else { throw StackError.missing("the server's address") }
        return Stack(
            apple: apple,
            serverURL: "http://\(address)",
            processes: [server.process, mock.process],
            dataDirectory: data
        )
    }

    private init(apple: MockApple, serverURL: String, processes: [Process], dataDirectory: URL) {
        self.apple = apple
        self.serverURL = serverURL
        self.processes = processes
        self.dataDirectory = dataDirectory
    }

    /// Kills the processes and waits for them. SIGKILL, because on Linux Foundation's `Process`
    /// spawns children with the blocked signal mask of the dispatch thread that launched them:
    /// SIGTERM stays pending forever. `waitpid`, because `waitUntilExit()` spins a run loop,
    /// which hangs on the cooperative threads async tests run on.
    func stop() {
        for process in processes {
            kill(process.processIdentifier, SIGKILL)
            waitpid(process.processIdentifier, nil, 0)
        }
        try? FileManager.default.removeItem(at: dataDirectory)
    }

    /// A path for a session file in this stack's folder.
    func sessionFile(_ name: String = "session.json") -> String {
        dataDirectory.appendingPathComponent(name).path
    }

    private static func launch(_ path: String, _ arguments: [String], _ environment: [String: String]) throws -> Launched {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: path)
        process.arguments = arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        return Launched(process: process, output: output.fileHandleForReading)
    }
}

enum StackError: Error {
    case missing(String)
    case exited(String)
}

/// A started process and its merged output, read until a line shows up.
struct Launched: @unchecked Sendable {
    let process: Process
    let output: FileHandle

    func line(containing needle: String, timeout: TimeInterval = 30) async throws -> String {
        let deadline = Date().addingTimeInterval(timeout)
        var seen = ""
        while Date() < deadline {
            let chunk = output.availableData
            if chunk.isEmpty {
                if !process.isRunning { throw StackError.exited(seen) }
                try await Task.sleep(nanoseconds: 50_000_000)
                continue
            }
            seen += String(decoding: chunk, as: UTF8.self)
            // Colour codes aside, a log line is plain text.
            if let line = seen.split(separator: "\n").first(where: { $0.contains(needle) }) {
                return String(line).replacingOccurrences(of: "\u{1B}[", with: "")
            }
        }
        throw StackError.missing("'\(needle)' in the output of \(process.executableURL?.lastPathComponent ?? "?")")
    }

    /// Keeps reading (and dropping) the output, so that a full pipe never blocks the process.
    func drain() {
        output.readabilityHandler = { handle in _ = handle.availableData }
    }
}
