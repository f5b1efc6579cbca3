package rewarder.android

import java.io.File

/**
 * The Kotlin side of the FFI overhead measurement (scripts/ffi-bench.sh): times
 * [Rewarder.compute] (lifting every allocation into Kotlin objects) and [Rewarder.computeJson]
 * (one byte array) on an epoch's documents through the bindings, with the same method as the
 * Rust side (ffi/examples/compute_timing.rs): a warm-up, then the median and minimum of N
 * interleaved runs.
 *
 * Arguments: DIR (with inputs.json and policy.json) and optionally ITERATIONS (default 30).
 * Prints `kotlin_compute median_ms=… min_ms=… iterations=…` and the same for `kotlin_compute_json`.
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
    var jsonBytes = 0
    while (rounds < 2 * WARMUP_ROUNDS_MIN || System.nanoTime() - warmupStarted < 2 * WARMUP_NANOS_MIN) {
        jsonBytes = Rewarder.computeJson(inputs, policy).length
        rounds++
    }
    // Interleaved, as on the Rust side: load from other processes weighs on both alike.
    val records = ArrayList<Double>(iterations)
    val json = ArrayList<Double>(iterations)
    for (i in 1..iterations) {
        val recordsFirst = i % 2 == 0
        repeat(2) { turn ->
            val started = System.nanoTime()
            if ((turn == 0) == recordsFirst) {
                payees = Rewarder.compute(inputs, policy).allocations.size
                records.add((System.nanoTime() - started) / 1e6)
            } else {
                jsonBytes = Rewarder.computeJson(inputs, policy).length
                json.add((System.nanoTime() - started) / 1e6)
            }
        }
    }
    records.sort()
    json.sort()
    println(
        "kotlin_compute median_ms=%.3f min_ms=%.3f iterations=%d payees=%d"
            .format(records[iterations / 2], records[0], iterations, payees),
    )
    println(
        "kotlin_compute_json median_ms=%.3f min_ms=%.3f iterations=%d chars=%d"
            .format(json[iterations / 2], json[0], iterations, jsonBytes),
    )
}

/** Fewest warm-up rounds before timing: the JIT compiles the binding code in these. */
private const val WARMUP_ROUNDS_MIN = 20

/** Shortest warm-up before timing, in nanoseconds (2 s). */
private const val WARMUP_NANOS_MIN = 2_000_000_000L
