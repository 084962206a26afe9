package dev.siwa.kit

import java.io.File
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import kotlinx.coroutines.async
import kotlinx.coroutines.awaitAll
import kotlinx.coroutines.coroutineScope
import kotlinx.coroutines.runBlocking

// The Kotlin client against real processes: a siwa-server whose Apple is mock-apple, both
// started by scripts/test-kotlin.sh (SIWA_SERVER, SIWA_MOCK), and headless Chromium through
// web-test/consent.mjs (SIWA_CONSENT) for the browser sign-in. Prints one line per test and
// `kotlin: N passed, N failed`.

val server = System.getenv("SIWA_SERVER") ?: error("SIWA_SERVER is not set")
val mock = System.getenv("SIWA_MOCK") ?: error("SIWA_MOCK is not set")
val consentScript = System.getenv("SIWA_CONSENT") ?: error("SIWA_CONSENT is not set")
val dataDir: File = File(System.getenv("SIWA_DATA") ?: error("SIWA_DATA is not set"))
val http: HttpClient = HttpClient.newBuilder().followRedirects(HttpClient.Redirect.NEVER).build()

fun check(condition: Boolean, message: () -> String) {
    if (!condition) throw AssertionError(message())
}

inline fun <reified E : Throwable> expect(block: () -> Unit): E {
    try {
        block()
    } catch (e: Throwable) {
        if (e is E) return e
        throw AssertionError("expected ${E::class.simpleName}, got $e")
    }
    throw AssertionError("expected ${E::class.simpleName}, got success")
}

fun post(url: String, json: String): Pair<Int, String> {
    val request = HttpRequest.newBuilder(URI(url)).header("content-type", "application/json")
        .POST(HttpRequest.BodyPublishers.ofString(json)).build()
    val response = http.send(request, HttpResponse.BodyHandlers.ofString())
    return response.statusCode() to response.body()
}

fun put(url: String, json: String): Pair<Int, String> {
    val request = HttpRequest.newBuilder(URI(url)).header("content-type", "application/json")
        .PUT(HttpRequest.BodyPublishers.ofString(json)).build()
    val response = http.send(request, HttpResponse.BodyHandlers.ofString())
    return response.statusCode() to response.body()
}

fun get(url: String): Pair<Int, String> {
    val response = http.send(HttpRequest.newBuilder(URI(url)).GET().build(), HttpResponse.BodyHandlers.ofString())
    return response.statusCode() to response.body()
}

fun field(json: String, name: String): String? =
    Regex("\"$name\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1)

/** Apple's credential for an attempt, from the fake Apple (as SiwaKitTesting's MockApple). */
fun credential(attempt: SignInAttempt, sub: String? = null): AppleCredential {
    val subField = sub?.let { ",\"sub\":\"$it\"" } ?: ""
    val (status, body) = post("$mock/mock/identity-token",
        "{\"clientId\":\"com.example.app\",\"nonce\":\"${attempt.hashedNonce}\"$subField}")
    check(status == 200) { "mock-apple: $status $body" }
    return AppleCredential(
        identityToken = field(body, "identityToken")!!,
        authorizationCode = field(body, "authorizationCode"),
        user = field(body, "sub")!!,
        givenName = field(body, "givenName"),
        familyName = field(body, "familyName"),
        email = field(body, "email"),
    )
}

fun sessionFile(name: String): String = File(dataDir, name).path

suspend fun signIn(client: SiwaClient, sub: String? = null): SiwaUser {
    val attempt = client.startSignIn()
    return client.completeSignIn(attempt, credential(attempt, sub))
}

/** The system browser, played by headless Chromium answering the consent page. */
fun chromium(choice: String): (String) -> Unit = { url ->
    Thread {
        val process = ProcessBuilder("node", consentScript, url, choice)
            .redirectError(ProcessBuilder.Redirect.INHERIT).start()
        process.inputStream.bufferedReader().forEachLine { line ->
            if (line.startsWith("callback: ")) lastCallback = line.removePrefix("callback: ")
        }
        process.waitFor()
    }.start()
}

fun revocations(): Int {
    val (_, counters) = get("$mock/mock/counters")
    return Regex("\"revoke\"\\s*:\\s*(\\d+)").find(counters)?.groupValues?.get(1)?.toInt() ?: 0
}

val tests: List<Pair<String, suspend () -> Unit>> = listOf(
    "a session is kept in a file store and found by a new client" to {
        val file = sessionFile("kept.json")
        val client = SiwaClient(server, fileSessionStore(file))
        val user = signIn(client, sub = "001.kotlin.kept")
        val restarted = SiwaClient(server, fileSessionStore(file))
        check(restarted.currentUser() == user) { "restored ${restarted.currentUser()}" }
        check(restarted.refreshUser().id == user.id) { "refreshed another user" }
    },
    "a fresh short-lived token is not refreshed, and concurrent refreshes are one" to {
        val client = SiwaClient(server, inMemorySessionStore())
        signIn(client, sub = "001.kotlin.concurrent")
        // The server's access tokens live 30 s, less than the 60 s margin: the margin is a
        // quarter of the lifetime, so the fresh token is served as it is.
        val first = coroutineScope { (1..20).map { async { client.accessToken() } }.awaitAll() }
        check(first.toSet().size == 1) { "${first.toSet().size} different tokens" }
        // Twenty refreshes at once are one rotation (two rotations of one refresh token
        // would end the session).
        coroutineScope { (1..20).map { async { client.refreshSession() } }.awaitAll() }
        val after = coroutineScope { (1..20).map { async { client.accessToken() } }.awaitAll() }
        check(after.toSet().size == 1 && after[0] != first[0]) { "${after.toSet().size} tokens" }
        client.refreshUser()
    },
    "signing out ends the session here and at the server" to {
        val file = sessionFile("signed-out.json")
        val client = SiwaClient(server, fileSessionStore(file))
        signIn(client, sub = "001.kotlin.signout")
        client.signOut()
        check(client.currentUser() == null) { "still signed in" }
        check(!File(file).exists()) { "the session file is still there" }
        expect<SiwaException.SessionExpired> { runBlocking { client.accessToken() } }
    },
    "signing out with the server down still signs out here" to {
        val file = sessionFile("offline.json")
        signIn(SiwaClient(server, fileSessionStore(file)), sub = "001.kotlin.offline")
        val offline = SiwaClient("http://127.0.0.1:9", fileSessionStore(file))
        check(offline.currentUser() != null) { "the stored session was not read" }
        runCatching { offline.signOut() }
        check(offline.currentUser() == null) { "still signed in" }
    },
    "deleting the account revokes at Apple" to {
        val client = SiwaClient(server, inMemorySessionStore())
        signIn(client, sub = "001.kotlin.deleted")
        val before = revocations()
        client.deleteAccount()
        check(client.currentUser() == null) { "still signed in" }
        check(revocations() > before) { "Apple was not asked to revoke" }
    },
    "a session the server ended is SessionExpired" to {
        val original = sessionFile("original.json")
        val copy = sessionFile("copy.json")
        val client = SiwaClient(server, fileSessionStore(original))
        signIn(client, sub = "001.kotlin.ended")
        File(original).copyTo(File(copy))
        // The file store reads only a file that is its user's alone (mode 0600).
        java.nio.file.Files.setPosixFilePermissions(File(copy).toPath(),
            java.nio.file.attribute.PosixFilePermissions.fromString("rw-------"))
        SiwaClient(server, fileSessionStore(copy)).signOut()
        expect<SiwaException.SessionExpired> { runBlocking { client.refreshSession() } }
        check(client.currentUser() == null) { "the ended session was kept" }
    },
    "errors carry no token, nonce or email" to {
        val client = SiwaClient(server, inMemorySessionStore())
        val attempt = client.startSignIn()
        val forged = credential(attempt).let { it.copy(identityToken = it.identityToken.dropLast(4) + "AAAA") }
        val error = expect<SiwaException.Server> { runBlocking { client.completeSignIn(attempt, forged) } }
        val shown = "$error ${error.message} ${error.code} ${error.detail}"
        for (secret in listOf(forged.identityToken, attempt.hashedNonce, forged.email ?: "@")) {
            check(!shown.contains(secret)) { "the error shows a secret: $shown" }
        }
    },
    "the browser sign-in brings the user back with the first authorization's name" to {
        val client = SiwaClient(server, inMemorySessionStore())
        val user = LoopbackBrowserSignIn(client, chromium("continue"), timeoutMillis = 60_000).signIn()
        check(user.givenName != null) { "no name on the first authorization" }
        check(client.currentUser() == user) { "not kept" }
        client.accessToken()
    },
    "cancelling at Apple is Cancelled" to {
        val client = SiwaClient(server, inMemorySessionStore())
        expect<SiwaException.Cancelled> {
            runBlocking { LoopbackBrowserSignIn(client, chromium("cancel"), timeoutMillis = 60_000).signIn() }
        }
        check(client.currentUser() == null) { "signed in" }
    },
    "a one-time code cannot be traded twice" to {
        val client = SiwaClient(server, inMemorySessionStore())
        lastCallback = null
        LoopbackBrowserSignIn(client, chromium("continue"), timeoutMillis = 60_000).signIn()
        // The client spent its attempt; the server spent the code: a replayed exchange is refused.
        // (a browser of an earlier test may still be reporting its own callback)
        repeat(200) { if (lastCallback?.contains("code=") != true) Thread.sleep(100) }
        val code = lastCallback?.let { Regex("code=([^&]+)").find(it)?.groupValues?.get(1) }
        check(code != null) { "no code seen" }
        val (status, body) = post("$server/v1/auth/exchange",
            "{\"code\":\"$code\",\"codeVerifier\":\"${"a".repeat(43)}\"}")
        check(status == 400 && body.contains("invalid_exchange_code")) { "$status $body" }
    },
    "a redirect URI the server does not list fails before the browser opens" to {
        val client = SiwaClient(server, inMemorySessionStore())
        val refused = expect<SiwaException.Server> {
            runBlocking { client.startBrowserSignIn("http://localhost:4321/callback") }
        }
        check(refused.code == "app_redirect_uri_not_allowed") { refused.code }
        var opened = false
        val started = System.nanoTime()
        expect<SiwaException.Server> {
            runBlocking {
                LoopbackBrowserSignIn(client, { opened = true }, timeoutMillis = 60_000,
                    path = "/not-listed").signIn()
            }
        }
        check(!opened) { "the browser was opened" }
        check(System.nanoTime() - started < 10_000_000_000L) { "the app waited" }
    },
    "strays on the loopback port neither end nor block the sign-in" to {
        val client = SiwaClient(server, inMemorySessionStore())
        val browser = chromium("continue")
        val held = mutableListOf<java.net.Socket>()
        val user = LoopbackBrowserSignIn(client, { url ->
            val redirect = java.net.URLDecoder.decode(
                Regex("app_redirect_uri=([^&]+)").find(url)!!.groupValues[1], "UTF-8")
            val port = URI(redirect).port
            // A local process sends half a request and keeps it open...
            held += java.net.Socket("127.0.0.1", port).apply {
                getOutputStream().write("GET /callback?code=x HTTP/1.1\r\nHost: 127".toByteArray())
                getOutputStream().flush()
            }
            // ...and tries to end the sign-in on paths next to the callback's.
            for (stray in listOf("/callbackX?error=access_denied", "/callback/x?error=x",
                    "/other?code=x", "/callback")) {
                val (status, _) = get("http://127.0.0.1:$port$stray")
                check(status == 404) { "$stray: $status" }
            }
            browser(url)
        }, timeoutMillis = 60_000).signIn()
        held.forEach { it.close() }
        check(client.currentUser() == user) { "not signed in" }
    },
    "Apple down during a browser sign-in is Unavailable, and the name comes back on the retry" to {
        val client = SiwaClient(server, inMemorySessionStore())
        // A user of their own: the name comes with a user's first authorization only.
        post("$mock/mock/users", "{\"sub\":\"001.kotlin.retried\"}")
        val (status, _) = put("$mock/mock/faults/token", "{\"status\":503,\"count\":1}")
        check(status in 200..299) { "the fault was not set: $status" }
        val down = expect<SiwaException.Unavailable> {
            runBlocking {
                LoopbackBrowserSignIn(client, chromium("continue-as:001.kotlin.retried"),
                    timeoutMillis = 60_000).signIn()
            }
        }
        check(down.code == "apple_unavailable") { down.code }
        val user = LoopbackBrowserSignIn(client, chromium("continue-as:001.kotlin.retried"),
            timeoutMillis = 60_000).signIn()
        check(user.givenName != null && user.familyName != null) { "the first authorization's name was lost" }
    },
)

/** The last callback URL a LoopbackBrowserSignIn received, as the tests observe it. */
@Volatile var lastCallback: String? = null

fun main() {
    var passed = 0
    var failed = 0
    for ((name, test) in tests) {
        try {
            runBlocking { test() }
            passed += 1
            println("ok - $name")
        } catch (e: Throwable) {
            failed += 1
            println("not ok - $name\n  $e")
        }
    }
    println("kotlin: $passed passed, $failed failed")
    kotlin.system.exitProcess(if (failed == 0) 0 else 1)
}
