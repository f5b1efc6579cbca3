package rewarder.android

import java.math.BigInteger
import java.nio.ByteBuffer
import uniffi.rewarder.Allocation
import uniffi.rewarder.CompareOutput
import uniffi.rewarder.ComputeOutput
import uniffi.rewarder.EmbeddedConfig
import uniffi.rewarder.EmbeddedNode
import uniffi.rewarder.Manifest
import uniffi.rewarder.PayoutChange
import uniffi.rewarder.ProofStep
import uniffi.rewarder.RewarderException
import uniffi.rewarder.Trust
import uniffi.rewarder.Verification

/**
 * The entry point of svc-rewarder on Android: compute an epoch on the device, compare two
 * policies on it, verify what a server sent you, or run a node inside the app.
 *
 * Every call goes to the native library `librewarder_ffi.so` (loaded through JNA on first use)
 * and runs on the calling thread: call [compute] and the `verify` functions off the main thread
 * for large epochs. Nothing here keeps state; only [startNode] starts something, a node you stop.
 *
 * Amounts stay decimal strings (use [Allocation.amount] for a [BigInteger]); hashes are `"b3:…"`
 * strings. Refusals throw [RewarderException]: [RewarderException.Invalid] carries the API error
 * code (`schema`, `invalid_amount`, …; see [apiCode]), [RewarderException.Io] means the system
 * refused a resource, [RewarderException.Internal] is a defect to report.
 */
object Rewarder {
    /** The tenant of a node without authentication. */
    const val DEFAULT_TENANT: String = "default"

    /**
     * Computes the run of the sealed [inputs] document under the sealed [policy] for [tenant],
     * exactly as a node would: the same bytes give the same run id, allocations and digest on
     * every device and architecture. The result is not signed (signing keys stay on servers).
     *
     * Blocks the calling thread for the computation (milliseconds for thousands of actors).
     *
     * @throws RewarderException.Invalid with the code of the refused document, or `bad_request`
     *   for a tenant that is not 1–64 characters of `[A-Za-z0-9._-]`.
     * @throws RewarderException.Internal if an invariant of the calculus failed.
     */
    @Throws(RewarderException::class)
    fun compute(inputs: ByteArray, policy: ByteArray, tenant: String = DEFAULT_TENANT): ComputeOutput =
        uniffi.rewarder.compute(inputs.asDirectBuffer(0), policy.asDirectBuffer(1), tenant)

    /**
     * [compute], answered as the JSON text `{"manifest", "manifest_digest", "allocations"}`
     * (the members of a node's compute result that describe the run, unsigned) instead of
     * records: for large epochs, one buffer crosses from the native library instead of one
     * record per payee. Parse what you read, or hand the text on.
     *
     * @throws RewarderException.Invalid as [compute].
     * @throws RewarderException.Internal as [compute].
     */
    @Throws(RewarderException::class)
    fun computeJson(inputs: ByteArray, policy: ByteArray, tenant: String = DEFAULT_TENANT): String =
        uniffi.rewarder.computeJson(inputs.asDirectBuffer(0), policy.asDirectBuffer(1), tenant)

    /** [compute] over documents held as text (encoded as UTF-8, byte for byte). */
    @Throws(RewarderException::class)
    fun compute(inputsJson: String, policyJson: String, tenant: String = DEFAULT_TENANT): ComputeOutput =
        compute(inputsJson.toByteArray(Charsets.UTF_8), policyJson.toByteArray(Charsets.UTF_8), tenant)

    /** The most movers [compare] lists. */
    const val COMPARE_TOP_MAX: Int = 10_000

    /**
     * Compares the epoch of the sealed [inputs] under [policyA] with the same epoch under
     * [policyB], for [tenant]: each side's manifest, digest and figures (payees, totals, Gini,
     * top shares, actors capped and under the dust threshold), the [top] actors whose payout
     * changes most, and the row of [actor] when the inputs list it — "your payout under the
     * proposed policy" ([CompareOutput.actor]). Each side is exactly the run [compute] returns.
     *
     * Blocks the calling thread for two computes (milliseconds for thousands of actors).
     *
     * @throws RewarderException.Invalid with the code of a refused document, or `bad_request`
     *   for the tenant or a [top] outside 0..[COMPARE_TOP_MAX].
     * @throws RewarderException.Internal if an invariant of the calculus failed.
     */
    @Throws(RewarderException::class)
    fun compare(
        inputs: ByteArray,
        policyA: ByteArray,
        policyB: ByteArray,
        tenant: String = DEFAULT_TENANT,
        top: Int = 100,
        actor: String? = null,
    ): CompareOutput {
        if (top !in 0..COMPARE_TOP_MAX) {
            throw RewarderException.Invalid("bad_request", "top $top is outside 0..$COMPARE_TOP_MAX")
        }
        return uniffi.rewarder.compare(
            inputs.asDirectBuffer(0),
            policyA.asDirectBuffer(1),
            policyB.asDirectBuffer(2),
            tenant,
            top.toUInt(),
            actor,
        )
    }

    /** [compare] over documents held as text (encoded as UTF-8, byte for byte). */
    @Throws(RewarderException::class)
    fun compare(
        inputsJson: String,
        policyAJson: String,
        policyBJson: String,
        tenant: String = DEFAULT_TENANT,
        top: Int = 100,
        actor: String? = null,
    ): CompareOutput =
        compare(
            inputsJson.toByteArray(Charsets.UTF_8),
            policyAJson.toByteArray(Charsets.UTF_8),
            policyBJson.toByteArray(Charsets.UTF_8),
            tenant,
            top,
            actor,
        )

    /** The content id `"b3:…"` of a document: what a node answers as `inputs_cid` or `policy_hash`. */
    fun contentId(bytes: ByteArray): String = uniffi.rewarder.contentId(bytes.asDirectBuffer())

    /** The digest `"b3:…"` of a manifest: what the node's signatures sign. */
    fun manifestDigest(manifest: Manifest): String = uniffi.rewarder.manifestDigest(manifest)

    /**
     * Whether [proof] (from `GET /rewarder/epochs/{epoch}/proof/{actor}`) shows that the tree
     * of [allocationsRoot] pays [amountMinor] to [actor]. False for a wrong proof and for
     * arguments that cannot name one (bad hex, a side other than `L`/`R`); never throws.
     */
    fun verifyAllocation(
        allocationsRoot: String,
        actor: String,
        amountMinor: String,
        proof: List<ProofStep>,
    ): Boolean = uniffi.rewarder.verifyAllocation(allocationsRoot, actor, amountMinor, proof)

    /** [verifyAllocation] against the root of [manifest]. */
    fun verifyAllocation(manifest: Manifest, actor: String, amountMinor: String, proof: List<ProofStep>): Boolean =
        verifyAllocation(manifest.allocationsRoot, actor, amountMinor, proof)

    /**
     * Whether [signature] by [publicKey] (both lowercase hex) signs [manifestDigest] (`"b3:…"`).
     * False for a wrong signature and for malformed hex; never throws.
     */
    fun verifySignature(
        manifestDigest: String,
        algorithm: SignatureAlgorithm,
        publicKey: String,
        signature: String,
    ): Boolean = uniffi.rewarder.verifySignature(manifestDigest, algorithm.wireName, publicKey, signature)

    /**
     * Checks a compute result body (what `POST …/compute` or `GET /rewarder/epochs/{epoch}`
     * answer) against the public keys you trust: the digest recomputed from the manifest,
     * every signature over it, that each signature's key is among [trustedKeys] (hex, as
     * `GET /rewarder/keys` lists them; fetch them over a channel you trust), the allocations'
     * count, sum and Merkle root when the body lists them, and — with [inputs] and [policy], the
     * sealed documents of the run — that they recompute to the same manifest.
     *
     * Tampering, an untrusted key ([Verification.untrustedKeyIds]) and a recompute mismatch
     * show as false flags ([Verification.isValid] is false) and in [Verification.reportJson];
     * an empty [trustedKeys] trusts nobody. Blocks the calling thread (a recompute costs a
     * compute).
     *
     * @throws RewarderException.Invalid `malformed_json` or `schema` for a body that is not a
     *   compute result; `bad_request` for a trusted key that is not hex of an Ed25519 or
     *   ML-DSA-65 public key, or for [inputs] without [policy] (or the reverse).
     */
    @Throws(RewarderException::class)
    fun verifyResult(
        resultJson: String,
        trustedKeys: List<String>,
        inputs: ByteArray? = null,
        policy: ByteArray? = null,
    ): Verification = uniffi.rewarder.verifyResult(resultJson, Trust.Keys(trustedKeys), inputs, policy)

    /**
     * [verifyResult] trusting the keys the result carries: this proves only that the result is
     * as the holder of its key signed it (integrity), not who that holder is.
     */
    @Throws(RewarderException::class)
    fun verifyIntegrityOnly(
        resultJson: String,
        inputs: ByteArray? = null,
        policy: ByteArray? = null,
    ): Verification = uniffi.rewarder.verifyResult(resultJson, Trust.EmbeddedKeys, inputs, policy)

    /**
     * Starts a node inside the app on `http://127.0.0.1:`[port] (0 picks a free port; read it
     * back from [EmbeddedNode.baseUrl]). It serves on a background thread until
     * [EmbeddedNode.stop] or `close()`; use it with `use { }`. Fresh signing keys per node
     * (ML-DSA-65 too with [requirePq]); nothing is kept after it stops.
     *
     * Blocks until the node accepts connections (a few milliseconds).
     *
     * By default the node is private to this app: it makes a key and a token at each start, and
     * answers only requests carrying it (`Authorization: Bearer ` + [EmbeddedNode.token]), since
     * every app of the device can reach loopback.
     *
     * @param authKeys `AUTH_KEYS` (`kid:hexkey,…`) when the app mints its own tokens (then
     *   [EmbeddedNode.token] is null).
     * @param open serve every process of the device without a token: an explicit opt-out.
     * @throws RewarderException.Invalid `bad_request` for unusable [authKeys] or port.
     * @throws RewarderException.Io when the port is taken or the system refuses a socket.
     */
    @Throws(RewarderException::class)
    fun startNode(
        port: Int = 0,
        requirePq: Boolean = false,
        authKeys: String? = null,
        open: Boolean = false,
    ): EmbeddedNode {
        if (port !in 0..65535) {
            throw RewarderException.Invalid("bad_request", "port $port is outside 0..65535")
        }
        return EmbeddedNode(EmbeddedConfig(port.toUShort(), requirePq, authKeys, open))
    }
}

/** Largest direct buffer kept per thread and argument for the next call (8 MiB). */
private const val DIRECT_BUFFER_KEPT_MAX = 8 shl 20

/** Most byte arguments of one call ([Rewarder.compare]: the inputs and two policies). */
private const val DIRECT_BUFFER_SLOTS = 3

/**
 * Each thread's direct buffers, one per byte argument of a call: allocating direct memory on
 * every call is slow, and its release waits for a garbage collection.
 */
private val directBuffers = ThreadLocal.withInitial { arrayOfNulls<ByteBuffer>(DIRECT_BUFFER_SLOTS) }

/**
 * The bytes in a direct buffer (argument [slot] of the call): the native library borrows byte
 * arguments as one buffer for the duration of a call (one copy here, instead of one per byte
 * in the generated code). The arguments of one call take distinct slots. The buffer is reused by the thread's next call, so it must not be
 * kept beyond this one; nothing in this library keeps it.
 */
private fun ByteArray.asDirectBuffer(slot: Int = 0): ByteBuffer {
    val kept = directBuffers.get()
    var buffer = kept[slot]
    if (buffer == null || buffer.capacity() < size) {
        buffer = ByteBuffer.allocateDirect(size)
        if (size <= DIRECT_BUFFER_KEPT_MAX) {
            kept[slot] = buffer
        }
    }
    buffer!!.clear()
    buffer.put(this)
    buffer.flip()
    return buffer
}

/** The signature algorithms of a compute result (CALCULUS.md §4). */
enum class SignatureAlgorithm(
    /** The name used on the wire and by the native library. */
    val wireName: String,
) {
    /** Ed25519 (RFC 8032): every result carries it. */
    ED25519("ed25519"),

    /** ML-DSA-65 (FIPS 204): present when the node requires post-quantum signatures. */
    ML_DSA_65("ml_dsa_65"),
}

/** Whether every check passed: digest, signatures, trusted keys, allocations and recompute. */
val Verification.isValid: Boolean
    get() = ok

/** The payout in minor units. */
val Allocation.amount: BigInteger
    get() = BigInteger(amountMinor)

/** B − A in minor units (negative when policy B pays less). */
val PayoutChange.delta: BigInteger
    get() = BigInteger(deltaMinor)

/** The payout under policy B in minor units. */
val PayoutChange.amountB: BigInteger
    get() = BigInteger(amountBMinor)

/** The pool in minor units. */
val Manifest.pool: BigInteger
    get() = BigInteger(poolMinor)

/** The sum of every payout in minor units. */
val Manifest.payoutTotal: BigInteger
    get() = BigInteger(payoutTotalMinor)

/** The port the node is bound to, as an [Int]. */
val EmbeddedNode.portNumber: Int
    get() = port().toInt()

/**
 * The API error code of this exception (API.md §2): the code of [RewarderException.Invalid],
 * `internal` for [RewarderException.Internal], null for [RewarderException.Io] (not an API error).
 */
val RewarderException.apiCode: String?
    get() =
        when (this) {
            is RewarderException.Invalid -> code
            is RewarderException.Internal -> "internal"
            is RewarderException.Io -> null
        }
