package rewarder.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import uniffi.rewarder.EmbeddedNode
import uniffi.rewarder.RewarderException
import uniffi.rewarder.Verification

/**
 * `verifyResult` on real answers of embedded nodes, trusting the keys a node lists on
 * `GET /rewarder/keys`: a genuine result, no trusted key, another node's key, each tampering,
 * a recompute mismatch, post-quantum signatures, and bodies that are not results.
 */
class VerifyResultTest {
    private val basic = Vectors.cases.first { it.name == "basic" }

    /** [body] with the first hex digit after [marker] (a JSON key and its opening quote) changed. */
    private fun tamperAfter(body: String, marker: String, skip: Int = 0): String {
        val at = body.indexOf(marker)
        assertTrue("no $marker in the body", at >= 0)
        val i = at + marker.length + skip
        return body.substring(0, i) + flipHex(body.substring(i, i + 1), 0) + body.substring(i + 1)
    }

    /** The checks of [v]'s report that failed, by name. */
    private fun failed(v: Verification): List<String> =
        (Json.parse(v.reportJson).list("checks")).filter { it.str("status") == "fail" }.map { it.str("check") }

    private fun failsWith(v: Verification, vararg checks: String) {
        assertFalse(v.reportJson, v.isValid)
        assertEquals(v.reportJson, checks.toList(), failed(v))
    }

    @Test
    fun aGenuineResultPassesWithTheListedKeysAndAsIntegrityOnly() {
        Rewarder.startNode().use { node ->
            val body = computeOverHttp(node, basic)
            val keys = publishedKeys(node)
            assertEquals(1, keys.size)
            assertEquals(keys[0].str("key_id"), Json.parse(body).obj("signatures").obj("ed25519").str("key_id"))
            val ok = Rewarder.verifyResult(body, keys.map { it.str("public_key") })
            assertTrue(ok.reportJson, ok.isValid && ok.digestOk && ok.signaturesOk && ok.keysTrusted && ok.allocationsOk)
            assertEquals(null, ok.recomputeOk)
            assertFalse(ok.pqSigned)
            val local = Rewarder.compute(Vectors.inputs(basic), Vectors.policy(basic))
            assertEquals(local.manifest, ok.manifest)
            assertEquals(local.manifestDigest, ok.manifestDigest)
            val recomputed = Rewarder.verifyResult(body, keys.map { it.str("public_key") }, Vectors.inputs(basic), Vectors.policy(basic))
            assertTrue(recomputed.reportJson, recomputed.isValid && recomputed.recomputeOk == true)
            assertTrue(Rewarder.verifyIntegrityOnly(body).isValid)
            // Nothing trusted: the result fails, naming its key.
            val nobody = Rewarder.verifyResult(body, emptyList())
            failsWith(nobody, "key.ed25519")
            assertEquals(listOf(keys[0].str("key_id")), nobody.untrustedKeyIds)
        }
    }

    @Test
    fun anotherNodesSignatureFailsAsUntrustedNamingItsKey() {
        Rewarder.startNode().use { trusted ->
            Rewarder.startNode().use { other ->
                val trustedKeys = publishedKeys(trusted).map { it.str("public_key") }
                val foreignId = publishedKeys(other)[0].str("key_id")
                // The same manifest, signed by a key the app does not trust.
                val resigned = computeOverHttp(other, basic)
                val v = Rewarder.verifyResult(resigned, trustedKeys)
                failsWith(v, "key.ed25519")
                assertTrue(v.digestOk && v.signaturesOk && v.allocationsOk)
                assertEquals(listOf(foreignId), v.untrustedKeyIds)
                assertTrue(Rewarder.verifyIntegrityOnly(resigned).isValid)
            }
        }
    }

    @Test
    fun eachTamperingFailsInItsOwnChecks() {
        Rewarder.startNode().use { node ->
            val body = computeOverHttp(node, basic)
            val keys = publishedKeys(node).map { it.str("public_key") }
            val local = Rewarder.compute(Vectors.inputs(basic), Vectors.policy(basic))
            val amounts = local.allocations.map { it.amountMinor }

            val amount = body.replaceFirst("\"amount_minor\":\"${amounts[0]}\"", "\"amount_minor\":\"${amounts[0].toLong() + 1}\"")
            failsWith(Rewarder.verifyResult(amount, keys), "allocations")
            // Same sum, other payees: only the Merkle root can tell.
            val swapped =
                body.replaceFirst("\"amount_minor\":\"${amounts[0]}\"", "\"amount_minor\":\"SWAP\"")
                    .replaceFirst("\"amount_minor\":\"${amounts[1]}\"", "\"amount_minor\":\"${amounts[0]}\"")
                    .replaceFirst("\"amount_minor\":\"SWAP\"", "\"amount_minor\":\"${amounts[1]}\"")
            failsWith(Rewarder.verifyResult(swapped, keys), "allocations")

            // Another root, with the digest recommitted: the signature and the allocations tell.
            val root = local.manifest.allocationsRoot
            val otherRoot = flipHex(root, 10)
            val otherDigest = Rewarder.manifestDigest(local.manifest.copy(allocationsRoot = otherRoot))
            val rooted = body.replace(root, otherRoot).replace(local.manifestDigest, otherDigest)
            failsWith(Rewarder.verifyResult(rooted, keys), "signature.ed25519", "allocations")
            failsWith(Rewarder.verifyResult(body.replace(root, otherRoot), keys), "digest", "signature.ed25519", "allocations")

            failsWith(Rewarder.verifyResult(tamperAfter(body, "\"manifest_digest\":\"b3:", 10), keys), "digest")
            failsWith(Rewarder.verifyResult(tamperAfter(body, "\"signature\":\"", 5), keys), "signature.ed25519")

            // A manifest changed after signing: its digest no longer matches, nor do the signatures.
            val total = local.manifest.payoutTotalMinor
            val manifest = body.replaceFirst("\"payout_total_minor\":\"$total\"", "\"payout_total_minor\":\"${total.toLong() - 1}\"")
            failsWith(Rewarder.verifyResult(manifest, keys), "digest", "signature.ed25519", "allocations")
        }
    }

    @Test
    fun documentsOfAnotherRunFailTheRecompute() {
        val other = Vectors.cases.first { it.name != "basic" && Vectors.expected(it).list("allocations").isNotEmpty() }
        Rewarder.startNode().use { node ->
            val body = computeOverHttp(node, basic)
            val keys = publishedKeys(node).map { it.str("public_key") }
            val v = Rewarder.verifyResult(body, keys, Vectors.inputs(other), Vectors.policy(other))
            failsWith(v, "recompute")
            assertEquals(false, v.recomputeOk)
            val recompute = Json.parse(v.reportJson).list("checks").first { it.str("check") == "recompute" }
            assertTrue(v.reportJson, recompute.list("fields").contains("inputs_cid"))
            try {
                Rewarder.verifyResult(body, keys, Vectors.inputs(basic), null)
                fail("inputs without a policy were accepted")
            } catch (e: RewarderException.Invalid) {
                assertEquals("bad_request", e.code)
            }
        }
    }

    @Test
    fun aResultWithoutAllocationsHasNothingToRecompute() {
        Rewarder.startNode().use { node ->
            val body = computeOverHttp(node, basic, "?allocations=false")
            assertFalse(Json.parse(body).has("allocations"))
            assertTrue(Rewarder.verifyResult(body, publishedKeys(node).map { it.str("public_key") }).isValid)
        }
    }

    @Test
    fun postQuantumResultsNeedBothKeysTrusted() {
        Rewarder.startNode(requirePq = true).use { node ->
            val body = computeOverHttp(node, basic)
            val listed = publishedKeys(node)
            assertEquals(listOf("ed25519", "ml_dsa_65"), listed.map { it.str("algorithm") })
            val keys = listed.map { it.str("public_key") }
            val ok = Rewarder.verifyResult(body, keys)
            assertTrue(ok.reportJson, ok.pqSigned && ok.isValid)
            val edOnly = Rewarder.verifyResult(body, keys.take(1))
            failsWith(edOnly, "key.ml_dsa_65")
            assertEquals(listOf(listed[1].str("key_id")), edOnly.untrustedKeyIds)

            val sigs = Json.parse(body).obj("signatures")
            val pq = sigs.obj("ml_dsa_65")
            val ed = sigs.obj("ed25519")
            val d = ok.manifestDigest
            assertTrue(Rewarder.verifySignature(d, SignatureAlgorithm.ML_DSA_65, pq.str("public_key"), pq.str("signature")))
            assertTrue(Rewarder.verifySignature(d, SignatureAlgorithm.ED25519, ed.str("public_key"), ed.str("signature")))
            val other = flipHex(d, 3)
            assertFalse(Rewarder.verifySignature(other, SignatureAlgorithm.ML_DSA_65, pq.str("public_key"), pq.str("signature")))
            // Malformed arguments answer false, never throw.
            assertFalse(Rewarder.verifySignature(d, SignatureAlgorithm.ED25519, "zz", ed.str("signature")))
            assertFalse(Rewarder.verifySignature("b3:00", SignatureAlgorithm.ED25519, ed.str("public_key"), ed.str("signature")))

            val pqAt = body.indexOf("\"ml_dsa_65\"")
            val tampered = body.substring(0, pqAt) + tamperAfter(body.substring(pqAt), "\"signature\":\"", 40)
            failsWith(Rewarder.verifyResult(tampered, keys), "signature.ml_dsa_65")
        }
    }

    @Test
    fun garbageAndBadKeysAreInvalidWithTheirCode() {
        for ((body, code) in listOf("" to "malformed_json", "not json" to "malformed_json", "{}" to "schema", "[1]" to "schema")) {
            try {
                Rewarder.verifyIntegrityOnly(body)
                fail("$body was accepted")
            } catch (e: RewarderException.Invalid) {
                assertEquals(body, code, e.code)
            }
        }
        try {
            Rewarder.verifyResult("{}", listOf("zz"))
            fail("a key that is not hex was accepted")
        } catch (e: RewarderException.Invalid) {
            assertEquals("bad_request", e.code)
        }
    }
}

/** The keys [node] lists on `GET /rewarder/keys`: `{"key_id","algorithm","public_key","status"}`. */
fun publishedKeys(node: EmbeddedNode): List<Any?> {
    val answer = Http(node.baseUrl()).get("/rewarder/keys")
    assertEquals(answer.body, 200, answer.status)
    return answer.json.list("keys")
}
