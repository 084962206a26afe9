import SiwaKit
import SwiftUI

/// The example app: the seed's ContentView done right. Add this folder's files to an iOS app
/// target that depends on SiwaKit, and set `serverURL` to your siwa-server (`siwa-server dev`
/// on your Mac listens on port 3000).
@main
struct SiwaExampleApp: App {
    @StateObject private var model = AccountModel(
        serverURL: "http://localhost:3000",
        store: KeychainSessionStore()
    )

    var body: some Scene {
        WindowGroup {
            ContentView()
                .environmentObject(model)
                .task { await model.checkCredentialState() }
        }
    }
}
