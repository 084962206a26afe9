package dev.siwa.kit

import com.sun.net.httpserver.HttpServer
import java.net.InetAddress
import java.net.InetSocketAddress
import java.net.URI
import java.util.concurrent.Executors
import kotlinx.coroutines.CompletableDeferred
import kotlinx.coroutines.withTimeout
import kotlinx.coroutines.TimeoutCancellationException

/**
 * Signs in through the system browser and a loopback redirect (RFC 8252, 7.3), for desktop JVM
 * apps: listens on `127.0.0.1` on a port the system gives, opens the browser at the server's
 * `/v1/web/sign-in` with `http://127.0.0.1:<port>/callback` as the redirect (the server lists
 * `http://127.0.0.1/callback`, which takes any port), waits for the browser to come back,
 * answers it with a page saying the window can be closed, and completes the sign-in.
 *
 * Another local process can reach the port too. It cannot take the user's account: the PKCE
 * verifier never leaves the client, so a code it saw is useless to it. What it could do is end
 * or stall the user's sign-in, so the listener takes only a GET of exactly [path] that carries
 * a `code` or an `error` (anything else is answered 404 and the wait goes on), and serves each
 * request on a thread of its own, so that one sent half-way blocks nothing. Before the browser
 * opens, the server is asked whether it lists the redirect URI: one it does not fails at once
 * (`SiwaException.Server`, `app_redirect_uri_not_allowed`) instead of after the timeout.
 *
 * @param openBrowser opens a URL in the user's browser (by default the desktop's browser).
 * @param timeoutMillis how long the user may take at Apple (the server's own limit is ten
 *   minutes).
 */
class LoopbackBrowserSignIn(
    private val client: SiwaClient,
    private val openBrowser: (String) -> Unit = ::openInDesktopBrowser,
    private val timeoutMillis: Long = 10 * 60 * 1000L,
    private val path: String = "/callback",
) {
    /**
     * Runs the sign-in and returns the user. Throws [SiwaException.Cancelled] when the user
     * cancelled at Apple, [LoopbackTimeoutException] when no callback came in time, and the
     * client's other errors as they are.
     */
    suspend fun signIn(): SiwaUser {
        val server = HttpServer.create(InetSocketAddress(InetAddress.getLoopbackAddress(), 0), 0)
        // A thread per request (the JDK's default is the one dispatcher thread, which a request
        // sent half-way holds until it completes); daemon threads, stopped with the listener.
        val threads = Executors.newCachedThreadPool { task -> Thread(task).apply { isDaemon = true } }
        server.executor = threads
        val callback = CompletableDeferred<String>()
        server.createContext("/") { exchange ->
            val uri = exchange.requestURI
            val params = uri.rawQuery.orEmpty().split('&').map { it.substringBefore('=') }
            // Only the server's answer, at exactly the redirect's path, ends the wait: a stray
            // request (another local process, a browser's prefetch, `/callbackX?error=...`)
            // does not spend the attempt.
            val isCallback = exchange.requestMethod == "GET" && uri.rawPath == path &&
                ("code" in params || "error" in params)
            if (!isCallback) {
                exchange.sendResponseHeaders(404, -1)
                exchange.close()
                return@createContext
            }
            val page = CLOSE_PAGE.toByteArray(Charsets.UTF_8)
            exchange.responseHeaders.add("Content-Type", "text/html; charset=utf-8")
            exchange.responseHeaders.add("Cache-Control", "no-store")
            exchange.sendResponseHeaders(200, page.size.toLong())
            exchange.responseBody.use { it.write(page) }
            callback.complete("http://127.0.0.1:${server.address.port}${uri.rawPath}" +
                (uri.rawQuery?.let { "?$it" } ?: ""))
        }
        server.start()
        try {
            val redirect = "http://127.0.0.1:${server.address.port}$path"
            openBrowser(client.startBrowserSignIn(redirect))
            val url = try {
                withTimeout(timeoutMillis) { callback.await() }
            } catch (timeout: TimeoutCancellationException) {
                throw LoopbackTimeoutException(timeoutMillis)
            }
            return client.completeBrowserSignIn(url)
        } finally {
            server.stop(0)
            threads.shutdownNow()
        }
    }

    private companion object {
        const val CLOSE_PAGE = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">" +
            "<title>Signed in</title></head><body style=\"font-family:sans-serif;margin:3em\">" +
            "<h1>You can close this window</h1><p>Return to the app to continue.</p></body></html>"
    }
}

/** No callback came back from the browser within the timeout: the user may try again. */
class LoopbackTimeoutException(timeoutMillis: Long) :
    Exception("the browser did not come back within ${timeoutMillis / 1000} s")

/** Opens [url] in the desktop's browser, or prints it when there is none (a headless machine). */
fun openInDesktopBrowser(url: String) {
    val desktop = try {
        if (java.awt.Desktop.isDesktopSupported()) java.awt.Desktop.getDesktop() else null
    } catch (unavailable: Throwable) {
        null
    }
    if (desktop != null && desktop.isSupported(java.awt.Desktop.Action.BROWSE)) {
        desktop.browse(URI(url))
    } else {
        println("Open this URL in a browser to sign in: $url")
    }
}
