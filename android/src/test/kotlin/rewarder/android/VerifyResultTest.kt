package rewarder.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test

/** `verifyResult` and `verifySignature` on real answers of an embedded node. */
class VerifyResultTest {
    private val basic = Vectors.cases.first { it.name == "basic" }

    /** [body] with the first hex digit after [marker] (a JSON key and its opening quote) changed. */
    private fun tamperAfter(body: String, marker: String, skip: Int = 0): String {
        val at = body.indexOf(marker)
        assertTrue("no $marker in the body", at >= 0)
        val i = at + marker.length + skip
        return body.substring(0, i) + flipHex(body.substring(i, i + 1), 0) + body.substring(i + 1)
    }

    @Test
    fun aRealResultVerifiesAndEachTamperingShowsInItsFlag() {
        Rewarder.startNode().use { node ->
            val body = computeOverHttp(node, basic)
            val ok = Rewarder.verifyResult(body)
            assertTrue(ok.digestOk && ok.signaturesOk && ok.allocationsOk && ok.isValid)
            assertFalse(ok.pqSigned)
            val local = Rewarder.compute(Vectors.inputs(basic), Vectors.policy(basic))
            assertEquals(local.manifest, ok.manifest)
            assertEquals(local.manifestDigest, ok.manifestDigest)

            val digest = Rewarder.verifyResult(tamperAfter(body, "\"manifest_digest\":\"b3:", 10))
            assertEquals(listOf(false, true, true), listOf(digest.digestOk, digest.signaturesOk, digest.allocationsOk))
            assertFalse(digest.isValid)

            val signature = Rewarder.verifyResult(tamperAfter(body, "\"signature\":\"", 5))
            assertEquals(listOf(true, false, true), listOf(signature.digestOk, signature.signaturesOk, signature.allocationsOk))

            val amounts = local.allocations.map { it.amountMinor }
            val more = body.replaceFirst("\"amount_minor\":\"${amounts[0]}\"", "\"amount_minor\":\"${amounts[0].toLong() + 1}\"")
            val allocation = Rewarder.verifyResult(more)
            assertEquals(listOf(true, true, false), listOf(allocation.digestOk, allocation.signaturesOk, allocation.allocationsOk))

            // Same sum, other payees: only the Merkle root can tell.
            val swapped =
                body.replaceFirst("\"amount_minor\":\"${amounts[0]}\"", "\"amount_minor\":\"SWAP\"")
                    .replaceFirst("\"amount_minor\":\"${amounts[1]}\"", "\"amount_minor\":\"${amounts[0]}\"")
                    .replaceFirst("\"amount_minor\":\"SWAP\"", "\"amount_minor\":\"${amounts[1]}\"")
            assertFalse(Rewarder.verifyResult(swapped).allocationsOk)

            // A manifest changed after signing: its digest no longer matches, nor do the signatures.
            val total = local.manifest.payoutTotalMinor
            val manifest = Rewarder.verifyResult(body.replaceFirst("\"payout_total_minor\":\"$total\"", "\"payout_total_minor\":\"${total.toLong() - 1}\""))
            assertFalse(manifest.digestOk || manifest.signaturesOk || manifest.allocationsOk)
        }
    }

    @Test
    fun aResultWithoutAllocationsHasNothingToRecompute() {
        Rewarder.startNode().use { node ->
            val body = computeOverHttp(node, basic, "?allocations=false")
            assertFalse(Json.parse(body).has("allocations"))
            assertTrue(Rewarder.verifyResult(body).isValid)
        }
    }

    @Test
    fun postQuantumResultsCarryAndCheckBothSignatures() {
        Rewarder.startNode(requirePq = true).use { node ->
            val body = computeOverHttp(node, basic)
            val ok = Rewarder.verifyResult(body)
            assertTrue(ok.pqSigned && ok.isValid)
            val sigs = Json.parse(body).obj("signatures")
            val pq = sigs.obj("ml_dsa_65")
            val ed = sigs.obj("ed25519")
            val d = ok.manifestDigest
            assertTrue(Rewarder.verifySignature(d, SignatureAlgorithm.ML_DSA_65, pq.str("public_key"), pq.str("signature")))
            assertTrue(Rewarder.verifySignature(d, SignatureAlgorithm.ED25519, ed.str("public_key"), ed.str("signature")))
            val other = flipHex(d, 3)
            assertFalse(Rewarder.verifySignature(other, SignatureAlgorithm.ML_DSA_65, pq.str("public_key"), pq.str("signature")))
            assertFalse(Rewarder.verifySignature(other, SignatureAlgorithm.ED25519, ed.str("public_key"), ed.str("signature")))
            // Malformed arguments answer false, never throw.
            assertFalse(Rewarder.verifySignature(d, SignatureAlgorithm.ED25519, "zz", ed.str("signature")))
            assertFalse(Rewarder.verifySignature("b3:00", SignatureAlgorithm.ED25519, ed.str("public_key"), ed.str("signature")))

            val pqAt = body.indexOf("\"ml_dsa_65\"")
            val tampered = body.substring(0, pqAt) + tamperAfter(body.substring(pqAt), "\"signature\":\"", 40)
            val bad = Rewarder.verifyResult(tampered)
            assertTrue(bad.pqSigned && bad.digestOk && bad.allocationsOk)
            assertFalse(bad.signaturesOk)
        }
    }
}
