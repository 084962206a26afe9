// The cost of a call into Rust from Kotlin: the calls of core/benches/client.rs and of SiwaKit's
// FFIRoundTrip, through UniFFI and JNA. Run by bench/ffi; prints nanoseconds per call.
package dev.siwa.kit.benchmarks

import dev.siwa.kit.SiwaClient
import dev.siwa.kit.inMemorySessionStore

fun measure(name: String, iterations: Int = 200_000, body: () -> Int): Int {
    var sink = 0
    repeat(20_000) { sink += body() } // warm-up, and the JIT's
    var best = Double.MAX_VALUE
    repeat(5) {
        val start = System.nanoTime()
        repeat(iterations) { sink += body() }
        best = minOf(best, (System.nanoTime() - start).toDouble() / iterations)
    }
    println("%s: %.1f ns per call (best of 5 runs of %d)".format(name, best, iterations))
    return sink
}

fun main() {
    val client = SiwaClient("http://127.0.0.1:9", inMemorySessionStore())
    var sink = 0
    sink += measure("kotlin/currentUser (signed out)") { if (client.currentUser() == null) 1 else 0 }
    sink += measure("kotlin/startSignIn") { client.startSignIn().hashedNonce.length }
    println("(checksum $sink)")
}
