// A desktop JVM app signing in with Apple through siwa: the system browser and a loopback
// redirect (LoopbackBrowserSignIn), then the user, an access token for the app's own API calls,
// and sign-out. Run it against `siwa-server dev` with scripts/kotlin-example.sh.
package dev.siwa.kit.example

import dev.siwa.kit.LoopbackBrowserSignIn
import dev.siwa.kit.SiwaClient
import dev.siwa.kit.SiwaException
import dev.siwa.kit.fileSessionStore
import java.io.File
import kotlinx.coroutines.runBlocking

fun main(args: Array<String>): Unit = runBlocking {
    val server = args.firstOrNull() ?: "http://127.0.0.1:3000"
    // The session survives restarts in a file only its owner can read.
    val sessionFile = File(System.getProperty("user.home"), ".siwa-example-session.json")
    val client = SiwaClient(server, fileSessionStore(sessionFile.path))
    val user = try {
        client.currentUser() ?: LoopbackBrowserSignIn(client).signIn()
    } catch (cancelled: SiwaException.Cancelled) {
        println("Sign-in cancelled.")
        return@runBlocking
    }
    val name = listOfNotNull(user.givenName, user.familyName).joinToString(" ").ifEmpty { "(name not shared)" }
    println("Signed in: $name <${user.email ?: "email not shared"}>, user ${user.id}")
    val token = client.accessToken()
    println("Access token for the app's API: ${token.take(12)}… (${token.length} characters)")
    client.signOut()
    println("Signed out.")
}
