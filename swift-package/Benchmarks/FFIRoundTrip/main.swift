// The cost of a call into Rust from Swift: the calls of core/benches/client.rs, through UniFFI.
// Run by bench/ffi (release builds on both sides); prints nanoseconds per call.
import Foundation
import SiwaKit

func measure(_ name: String, iterations: Int = 200_000, _ body: () -> Void) {
    for _ in 0..<10_000 { body() }  // warm-up
    var best = Double.infinity
    for _ in 0..<5 {
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<iterations { body() }
        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start)
        best = min(best, elapsed / Double(iterations))
    }
    print(String(format: "%@: %.1f ns per call (best of 5 runs of %d)", name, best, iterations))
}

let client = try SiwaClient(serverUrl: "http://127.0.0.1:9", store: inMemorySessionStore())
var sink = 0
measure("swift/currentUser (signed out)") { sink &+= client.currentUser() == nil ? 1 : 0 }
measure("swift/startSignIn") { sink &+= client.startSignIn().hashedNonce.utf8.count }
print("(checksum \(sink))")
