import AuthenticationServices
import SiwaKit
import SwiftUI

/// The app's view of the account: who is signed in, and the actions on it.
@MainActor
final class AccountModel: ObservableObject {
    @Published private(set) var user: SiwaUser?
    @Published var errorMessage: String?
    @Published private(set) var isWorking = false

    private let client: SiwaClient?
    private var attempt: SignInAttempt?

    init(serverURL: String, store: any SessionStore) {
        do {
            let client = try SiwaClient(serverUrl: serverURL, store: store)
            self.client = client
            self.user = client.currentUser()
        } catch {
            self.client = nil
            self.errorMessage = "The app is misconfigured: \(error.localizedDescription)"
        }
    }

    /// Apple may have been told to stop sharing the account with the app while it was closed.
    func checkCredentialState() async {
        guard let client else { return }
        await client.checkAppleCredentialState()
        user = client.currentUser()
        guard user != nil else { return }
        do {
            user = try await client.refreshUser()
        } catch SiwaError.SessionExpired {
            user = nil
        } catch {
            // Offline: keep showing the account as last known.
        }
    }

    /// For `SignInWithAppleButton`'s `onRequest`.
    func prepare(_ request: ASAuthorizationAppleIDRequest) {
        guard let client else { return }
        let attempt = client.startSignIn()
        self.attempt = attempt
        request.configure(for: attempt)
    }

    /// For `SignInWithAppleButton`'s `onCompletion`.
    func complete(_ result: Result<ASAuthorization, any Error>) {
        guard let client, let attempt else { return }
        run {
            self.user = try await client.completeSignIn(attempt: attempt, result: result)
        }
    }

    func signOut() {
        guard let client else { return }
        run {
            try await client.signOut()
            self.user = nil
        }
    }

    func deleteAccount() {
        guard let client else { return }
        run {
            try await client.deleteAccount()
            self.user = nil
        }
    }

    private func run(_ action: @escaping @MainActor () async throws -> Void) {
        isWorking = true
        errorMessage = nil
        Task {
            defer { isWorking = false }
            do {
                try await action()
            } catch SiwaError.Cancelled {
                // The user closed Apple's sheet: nothing to say.
            } catch SiwaError.SessionExpired {
                user = nil
                errorMessage = "Your session has ended. Please sign in again."
            } catch SiwaError.Network {
                errorMessage = "The server could not be reached. Check your connection and try again."
            } catch SiwaError.Unavailable {
                errorMessage = "The service is busy right now. Please try again in a moment."
            } catch {
                errorMessage = "Something went wrong: \(error.localizedDescription)"
            }
        }
    }
}
