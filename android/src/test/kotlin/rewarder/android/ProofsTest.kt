package rewarder.android

import java.net.URLEncoder
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Test
import uniffi.rewarder.ProofStep

/** Proofs served by an embedded node, checked through the bindings. */
class ProofsTest {
    @Test
    fun everyPayeesProofVerifiesAndTamperedOnesDoNot() {
        // The golden case with the most payees gives the deepest proofs.
        val case = Vectors.cases.maxBy { Vectors.expected(it).list("allocations").size }
        Rewarder.startNode().use { node ->
            val result = Rewarder.verifyResult(computeOverHttp(node, case), publishedKeys(node).map { it.str("public_key") })
            assertTrue(result.isValid)
            val root = result.manifest.allocationsRoot
            val epoch = result.manifest.epoch
            val allocations = Rewarder.compute(Vectors.inputs(case), Vectors.policy(case)).allocations
            assertTrue("${case.name} has payees", allocations.size > 1)
            val http = Http(node.baseUrl(), node.token())
            for ((index, a) in allocations.withIndex()) {
                val answer = http.get("/rewarder/epochs/$epoch/proof/${URLEncoder.encode(a.actor, "UTF-8")}")
                assertEquals(answer.body, 200, answer.status)
                val body = answer.json
                assertEquals(a.actor, body.str("actor"))
                assertEquals(a.amountMinor, body.str("amount_minor"))
                assertEquals(index.toLong(), body.long("index"))
                assertEquals(result.manifestDigest, body.str("manifest_digest"))
                val proof = proofOf(body.list("proof"))
                assertTrue(a.actor, Rewarder.verifyAllocation(root, a.actor, a.amountMinor, proof))
                assertTrue(Rewarder.verifyAllocation(result.manifest, a.actor, a.amountMinor, proof))
                val more = (a.amount + java.math.BigInteger.ONE).toString()
                assertFalse(Rewarder.verifyAllocation(root, a.actor, more, proof))
                if (proof.isNotEmpty()) {
                    val bad = listOf(ProofStep(proof[0].side, flipHex(proof[0].hash, 63))) + proof.drop(1)
                    assertFalse(Rewarder.verifyAllocation(root, a.actor, a.amountMinor, bad))
                    assertFalse(Rewarder.verifyAllocation(root, a.actor, a.amountMinor, proof.drop(1)))
                }
                assertFalse(Rewarder.verifyAllocation(flipHex(root, 5), a.actor, a.amountMinor, proof))
            }
            // Malformed arguments answer false, never throw.
            val a = allocations[0]
            assertFalse(Rewarder.verifyAllocation("not a root", a.actor, a.amountMinor, emptyList()))
            assertFalse(Rewarder.verifyAllocation(root, a.actor, "-1", emptyList()))
            assertFalse(Rewarder.verifyAllocation(root, a.actor, a.amountMinor, listOf(ProofStep("X", "00"))))
            val unknown = http.get("/rewarder/epochs/$epoch/proof/nobody")
            assertEquals(404, unknown.status)
            assertEquals("unknown_actor", unknown.json.obj("error").str("code"))
        }
    }
}
