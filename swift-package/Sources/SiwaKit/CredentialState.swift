#if canImport(AuthenticationServices)
import AuthenticationServices

extension SiwaClient {
    /// Asks Apple whether the signed-in user still authorizes the app, and signs out locally
    /// when Apple says the credential was revoked or is not found. Call it at launch (and when
    /// `ASAuthorizationAppleIDProvider.credentialRevokedNotification` arrives).
    ///
    /// Returns whether a user is still signed in. A failure to ask Apple (offline, say) keeps
    /// the session: only Apple's answer ends it.
    @discardableResult
    public func checkAppleCredentialState() async -> Bool {
        guard let appleUserId = appleUserId() else { return false }
        let state: ASAuthorizationAppleIDProvider.CredentialState
        do {
            state = try await ASAuthorizationAppleIDProvider().credentialState(forUserID: appleUserId)
        } catch {
            return true
        }
        switch state {
        case .revoked, .notFound:
            credentialRevoked()
            return false
        default:
            return true
        }
    }
}
#endif
