package rewarder.android

import java.io.File

/**
 * The Kotlin side of the FFI overhead measurement (scripts/ffi-bench.sh): times
 * [Rewarder.compute] on an epoch's documents through the bindings (JNA, the native library,
 * and lifting every allocation into Kotlin objects), with the same method as the Rust side
 * (ffi/examples/compute_timing.rs): a warm-up, then the median and minimum of N runs.
 *
 * Arguments: DIR (with inputs.json and policy.json) and optionally ITERATIONS (default 30).
 * Prints `kotlin_compute median_ms=… min_ms=… iterations=…`.
 */
fun main(args: Array<String>) {
    require(args.isNotEmpty()) { "usage: ComputeTiming DIR [ITERATIONS]" }
    val dir = File(args[0])
    val iterations = args.getOrNull(1)?.toInt()?.coerceAtLeast(1) ?: 30
    val inputs = File(dir, "inputs.json").readBytes()
    val policy = File(dir, "policy.json").readBytes()
    var payees = 0
    // Warm up until the JIT has compiled the binding code: enough rounds and enough time.
    val warmupStarted = System.nanoTime()
    var rounds = 0
    while (rounds < WARMUP_ROUNDS_MIN || System.nanoTime() - warmupStarted < WARMUP_NANOS_MIN) {
        payees = Rewarder.compute(inputs, policy).allocations.size
        rounds++
    }
    val samples =
        (1..iterations).map {
            val started = System.nanoTime()
            payees = Rewarder.compute(inputs, policy).allocations.size
            (System.nanoTime() - started) / 1e6
        }.sorted()
    println(
        "kotlin_compute median_ms=%.3f min_ms=%.3f iterations=%d payees=%d"
            .format(samples[iterations / 2], samples[0], iterations, payees),
    )
}

/** Fewest warm-up rounds before timing: the JIT compiles the binding code in these. */
private const val WARMUP_ROUNDS_MIN = 20

/** Shortest warm-up before timing, in nanoseconds (2 s). */
private const val WARMUP_NANOS_MIN = 2_000_000_000L
