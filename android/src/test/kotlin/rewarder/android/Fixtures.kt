package rewarder.android

import java.io.File
import java.net.HttpURLConnection
import java.net.URI
import uniffi.rewarder.Allocation
import uniffi.rewarder.Manifest
import uniffi.rewarder.ProofStep

/** The golden vectors (`testing/vectors`): `-Drewarder.vectors=DIR` or `REWARDER_VECTORS`. */
object Vectors {
    val dir: File by lazy {
        val path =
            System.getProperty("rewarder.vectors")
                ?: System.getenv("REWARDER_VECTORS")
                ?: error("set -Drewarder.vectors=DIR (or REWARDER_VECTORS) to testing/vectors")
        File(path).also { require(it.isDirectory) { "no vectors at $it" } }
    }

    /** Every golden case (a folder with an `expected.json`), sorted by name. */
    val cases: List<File> by lazy {
        dir.listFiles().orEmpty().filter { File(it, "expected.json").isFile }.sortedBy { it.name }
    }

    fun inputs(case: File): ByteArray = File(case, "inputs.json").readBytes()

    fun policy(case: File): ByteArray = File(case, "policy.json").readBytes()

    fun expected(case: File): Any? = Json.parse(File(case, "expected.json").readText())

    /** The cases of `invalid.json`: `{"doc", "raw", "code"}`. */
    @Suppress("UNCHECKED_CAST")
    val invalid: List<Map<String, Any?>> by lazy {
        Json.parse(File(dir, "invalid.json").readText()) as List<Map<String, Any?>>
    }
}

/** A manifest from its JSON object (CALCULUS.md §4). */
fun manifestOf(m: Any?): Manifest =
    Manifest(
        schema = m.str("schema"),
        tenant = m.str("tenant"),
        epoch = m.str("epoch"),
        runId = m.str("run_id"),
        inputsCid = m.str("inputs_cid"),
        policyId = m.str("policy_id"),
        policyHash = m.str("policy_hash"),
        poolMinor = m.str("pool_minor"),
        distributableMinor = m.str("distributable_minor"),
        payoutTotalMinor = m.str("payout_total_minor"),
        residualMinor = m.str("residual_minor"),
        payees = m.long("payees").toULong(),
        allocationsRoot = m.str("allocations_root"),
    )

fun allocationOf(a: Any?): Allocation = Allocation(a.str("actor"), a.str("amount_minor"), a.str("score"))

fun proofOf(steps: List<Any?>): List<ProofStep> = steps.map { ProofStep(it.str("side"), it.str("hash")) }

/** One HTTP answer. */
data class Answer(val status: Int, val body: String) {
    val json: Any? get() = Json.parse(body)
}

/**
 * A plain HTTP/1.1 client over [HttpURLConnection], as an app would talk to the node; with a
 * [token] (the embedded node's own, `EmbeddedNode.token()`) every request carries it.
 */
class Http(private val baseUrl: String, private val token: String? = null) {
    fun get(path: String): Answer = send("GET", path, null)

    fun put(path: String, body: ByteArray): Answer = send("PUT", path, body)

    fun post(path: String, body: String): Answer = send("POST", path, body.toByteArray())

    /**
     * Sends once more after a `429` (the node's per-tenant rate clamp, API.md §2), waiting
     * `Retry-After` seconds as an app would: the tests send bursts of uploads and proofs.
     */
    private fun send(method: String, path: String, body: ByteArray?): Answer {
        repeat(RATE_LIMITED_RETRIES_MAX) {
            val (answer, retryAfterS) = sendOnce(method, path, body)
            if (answer.status != 429) return answer
            Thread.sleep(1_000L * (retryAfterS ?: 1))
        }
        return sendOnce(method, path, body).first
    }

    private fun sendOnce(method: String, path: String, body: ByteArray?): Pair<Answer, Long?> {
        val c = URI("$baseUrl$path").toURL().openConnection() as HttpURLConnection
        c.requestMethod = method
        if (token != null) c.setRequestProperty("Authorization", "Bearer $token")
        c.connectTimeout = 5_000
        c.readTimeout = 30_000
        if (body != null) {
            c.doOutput = true
            c.setRequestProperty("Content-Type", "application/json")
            c.outputStream.use { it.write(body) }
        }
        val status = c.responseCode
        val stream = if (status < 400) c.inputStream else c.errorStream
        val text = stream?.use { String(it.readBytes(), Charsets.UTF_8) } ?: ""
        val retryAfterS = c.getHeaderField("Retry-After")?.toLongOrNull()
        c.disconnect()
        return Answer(status, text) to retryAfterS
    }

    private companion object {
        /** Most waits for the rate clamp per request before giving up. */
        const val RATE_LIMITED_RETRIES_MAX = 10
    }
}
