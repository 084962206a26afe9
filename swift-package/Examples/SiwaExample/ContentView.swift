import AuthenticationServices
import SiwaKit
import SwiftUI

/// Sign in with Apple, then a welcome with the user's name and email, sign-out, and account
/// deletion behind a confirmation (App Store guideline 5.1.1(v)).
struct ContentView: View {
    @EnvironmentObject private var model: AccountModel
    @Environment(\.colorScheme) private var colorScheme
    @State private var confirmingDeletion = false

    var body: some View {
        VStack(spacing: 24) {
            Spacer()
            if let user = model.user {
                welcome(user)
            } else {
                signIn
            }
            if let message = model.errorMessage {
                Text(message)
                    .font(.footnote)
                    .foregroundStyle(.red)
                    .multilineTextAlignment(.center)
            }
            Spacer()
        }
        .padding(32)
        .disabled(model.isWorking)
        .overlay { if model.isWorking { ProgressView() } }
    }

    private var signIn: some View {
        VStack(spacing: 16) {
            Text("Welcome")
                .font(.largeTitle.bold())
            Text("Sign in to keep your things in sync across your devices.")
                .multilineTextAlignment(.center)
                .foregroundStyle(.secondary)
            SignInWithAppleButton(.signIn) { request in
                model.prepare(request)
            } onCompletion: { result in
                model.complete(result)
            }
            .signInWithAppleButtonStyle(colorScheme == .dark ? .white : .black)
            .frame(height: 50)
        }
    }

    private func welcome(_ user: SiwaUser) -> some View {
        VStack(spacing: 16) {
            Image(systemName: "person.crop.circle.fill")
                .font(.system(size: 64))
                .foregroundStyle(.secondary)
            Text("Hello, \(displayName(user))")
                .font(.title.bold())
            if let email = user.email {
                Text(email)
                    .foregroundStyle(.secondary)
                if user.isPrivateEmail {
                    Label("Private relay address", systemImage: "lock.fill")
                        .font(.footnote)
                        .foregroundStyle(.secondary)
                }
            }
            Button("Sign Out") { model.signOut() }
                .buttonStyle(.bordered)
            Button("Delete Account", role: .destructive) { confirmingDeletion = true }
                .confirmationDialog(
                    "Delete your account?",
                    isPresented: $confirmingDeletion,
                    titleVisibility: .visible
                ) {
                    Button("Delete Account", role: .destructive) { model.deleteAccount() }
                    Button("Cancel", role: .cancel) {}
                } message: {
                    Text("Your account and its data are deleted, and the app stops using your Apple ID. This cannot be undone.")
                }
        }
    }

    private func displayName(_ user: SiwaUser) -> String {
        let name = [user.givenName, user.familyName].compactMap { $0 }.joined(separator: " ")
        return name.isEmpty ? "there" : name
    }
}

#Preview {
    ContentView()
        .environmentObject(AccountModel(serverURL: "http://localhost:3000", store: inMemorySessionStore()))
}
