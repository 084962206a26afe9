#if canImport(AuthenticationServices)
import AuthenticationServices
import Foundation

extension AppleCredential {
    /// The parts of Apple's credential the client needs, with its data fields as UTF-8.
    /// Throws `SiwaError.InvalidCredential` when Apple gave no identity token.
    public init(_ credential: ASAuthorizationAppleIDCredential) throws {
        guard let tokenData = credential.identityToken,
              let identityToken = String(data: tokenData, encoding: .utf8)
        else { throw SiwaError.InvalidCredential }
        let code = credential.authorizationCode.flatMap { String(data: $0, encoding: .utf8) }
        self.init(
            identityToken: identityToken,
            authorizationCode: code,
            user: credential.user,
            givenName: credential.fullName?.givenName,
            familyName: credential.fullName?.familyName,
            email: credential.email
        )
    }
}

extension ASAuthorizationAppleIDRequest {
    /// Asks for the name and email (Apple shares them on the first authorization only) and
    /// binds the request to `attempt` through its hashed nonce.
    public func configure(for attempt: SignInAttempt) {
        requestedScopes = [.fullName, .email]
        nonce = attempt.hashedNonce
    }
}

extension SiwaClient {
    /// Completes a sign-in from what `SignInWithAppleButton`'s `onCompletion` gives.
    /// A cancelled sheet is `SiwaError.Cancelled`.
    public func completeSignIn(
        attempt: SignInAttempt,
        result: Result<ASAuthorization, any Error>
    ) async throws -> SiwaUser {
        switch result {
        case .success(let authorization):
            guard let credential = authorization.credential as? ASAuthorizationAppleIDCredential else {
                throw SiwaError.InvalidCredential
            }
            return try await completeSignIn(attempt: attempt, credential: AppleCredential(credential))
        case .failure(let error):
            throw SiwaError(authorizationError: error)
        }
    }
}

extension SiwaError {
    /// What an `ASAuthorizationController` failure means for the app.
    init(authorizationError error: any Error) {
        if let error = error as? ASAuthorizationError, error.code == .canceled {
            self = .Cancelled
        } else {
            self = .InvalidCredential
        }
    }
}

/// Runs Apple's sign-in sheet and hands the credential to a `SiwaClient`, as one async call:
///
/// ```swift
/// let user = try await SignInWithApple(client: client).signIn()
/// ```
///
/// Use it from a button of your own; with SwiftUI's `SignInWithAppleButton`, use
/// `ASAuthorizationAppleIDRequest.configure(for:)` and `SiwaClient.completeSignIn(attempt:result:)`.
@MainActor
public final class SignInWithApple: NSObject {
    private let client: SiwaClient
    private var continuation: CheckedContinuation<ASAuthorization, any Error>?
    private var controller: ASAuthorizationController?

    public init(client: SiwaClient) {
        self.client = client
    }

    /// Shows Apple's sheet, then signs in at the server. Throws `SiwaError.Cancelled` when the
    /// user closes the sheet.
    public func signIn() async throws -> SiwaUser {
        guard continuation == nil else { throw SiwaError.InvalidCredential }
        let attempt = client.startSignIn()
        let request = ASAuthorizationAppleIDProvider().createRequest()
        request.configure(for: attempt)
        let controller = ASAuthorizationController(authorizationRequests: [request])
        controller.delegate = self
        controller.presentationContextProvider = self
        self.controller = controller
        let result: Result<ASAuthorization, any Error>
        do {
            result = .success(try await withCheckedThrowingContinuation { continuation in
                self.continuation = continuation
                controller.performRequests()
            })
        } catch {
            result = .failure(error)
        }
        self.controller = nil
        return try await client.completeSignIn(attempt: attempt, result: result)
    }

    private func finish(_ result: Result<ASAuthorization, any Error>) {
        continuation?.resume(with: result)
        continuation = nil
    }
}

extension SignInWithApple: ASAuthorizationControllerDelegate {
    nonisolated public func authorizationController(
        controller: ASAuthorizationController,
        didCompleteWithAuthorization authorization: ASAuthorization
    ) {
        MainActor.assumeIsolated { finish(.success(authorization)) }
    }

    nonisolated public func authorizationController(
        controller: ASAuthorizationController,
        didCompleteWithError error: any Error
    ) {
        MainActor.assumeIsolated { finish(.failure(error)) }
    }
}

extension SignInWithApple: ASAuthorizationControllerPresentationContextProviding {
    nonisolated public func presentationAnchor(for controller: ASAuthorizationController) -> ASPresentationAnchor {
        MainActor.assumeIsolated {
            #if os(macOS)
            return NSApplication.shared.keyWindow ?? ASPresentationAnchor()
            #else
            let scenes = UIApplication.shared.connectedScenes.compactMap { $0 as? UIWindowScene }
            return scenes.flatMap(\.windows).first(where: \.isKeyWindow) ?? ASPresentationAnchor()
            #endif
        }
    }
}
#endif
