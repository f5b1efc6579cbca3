package rewarder.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertNotEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import uniffi.rewarder.ProofStep

/** Every shared golden vector through the Kotlin bindings: any differing output fails. */
class GoldenVectorsTest {
    @Test
    fun everyCaseGivesTheExpectedManifestAndDigestForBothTenants() {
        assertTrue("expected the shared cases, found ${Vectors.cases.size}", Vectors.cases.size >= 40)
        for (case in Vectors.cases) {
            val expected = Vectors.expected(case)
            for (tenant in listOf("default", "tenant-b")) {
                val out = Rewarder.compute(Vectors.inputs(case), Vectors.policy(case), tenant)
                val want = expected.obj(tenant)
                val where = "${case.name} / $tenant"
                assertEquals(where, manifestOf(want.obj("manifest")), out.manifest)
                assertEquals(where, want.str("manifest_digest"), out.manifestDigest)
                assertEquals(where, out.manifestDigest, Rewarder.manifestDigest(out.manifest))
            }
        }
    }

    @Test
    fun everyCaseGivesTheExpectedAllocations() {
        for (case in Vectors.cases) {
            val out = Rewarder.compute(Vectors.inputs(case), Vectors.policy(case))
            val want = Vectors.expected(case).list("allocations").map(::allocationOf)
            assertEquals(case.name, want, out.allocations)
            assertEquals(case.name, out.manifest.payees, out.allocations.size.toULong())
            assertEquals(case.name, out.manifest.payoutTotal, out.allocations.sumOf { it.amount })
        }
    }

    @Test
    fun theJsonFormSaysWhatTheRecordsSay() {
        for (case in Vectors.cases) {
            for (tenant in listOf("default", "tenant-b")) {
                val out = Rewarder.compute(Vectors.inputs(case), Vectors.policy(case), tenant)
                val text = Rewarder.computeJson(Vectors.inputs(case), Vectors.policy(case), tenant)
                val where = "${case.name} / $tenant"
                assertTrue(where, text.startsWith("{\"manifest\":{"))
                val body = Json.parse(text)
                assertEquals(where, out.manifest, manifestOf(body.obj("manifest")))
                assertEquals(where, out.manifestDigest, body.str("manifest_digest"))
                assertEquals(where, out.allocations, body.list("allocations").map(::allocationOf))
                assertEquals(where, 3, (body as Map<*, *>).size)
            }
        }
    }

    @Test
    fun contentIdsAreTheManifestsCids() {
        for (case in Vectors.cases) {
            val out = Rewarder.compute(Vectors.inputs(case), Vectors.policy(case))
            assertEquals(case.name, out.manifest.inputsCid, Rewarder.contentId(Vectors.inputs(case)))
            assertEquals(case.name, out.manifest.policyHash, Rewarder.contentId(Vectors.policy(case)))
        }
        assertEquals(
            "b3:af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262",
            Rewarder.contentId(ByteArray(0)),
        )
    }

    @Test
    fun proofExamplesVerifyAndFailWhenTampered() {
        var seen = 0
        for (case in Vectors.cases) {
            val expected = Vectors.expected(case)
            if (!expected.has("proof_example")) continue
            seen++
            val example = expected.obj("proof_example")
            val root = expected.obj(example.str("tenant")).obj("manifest").str("allocations_root")
            val actor = example.str("actor")
            val amount = example.str("amount_minor")
            val proof = proofOf(example.list("proof"))
            assertTrue(case.name, Rewarder.verifyAllocation(root, actor, amount, proof))
            val more = (amount.toBigInteger() + java.math.BigInteger.ONE).toString()
            assertFalse(case.name, Rewarder.verifyAllocation(root, actor, more, proof))
            assertFalse(case.name, Rewarder.verifyAllocation(root, "$actor-x", amount, proof))
            for (i in proof.indices) {
                val flipped = proof.toMutableList()
                flipped[i] = ProofStep(proof[i].side, flipHex(proof[i].hash, 0))
                assertFalse("${case.name} step $i", Rewarder.verifyAllocation(root, actor, amount, flipped))
                flipped[i] = ProofStep(if (proof[i].side == "L") "R" else "L", proof[i].hash)
                assertFalse("${case.name} side $i", Rewarder.verifyAllocation(root, actor, amount, flipped))
            }
        }
        assertTrue("only $seen proof examples", seen >= 10)
    }

    @Test
    fun theDigestCoversEveryManifestField() {
        val case = Vectors.cases.first { it.name == "basic" }
        val m = Rewarder.compute(Vectors.inputs(case), Vectors.policy(case)).manifest
        val digest = Rewarder.manifestDigest(m)
        for (changed in listOf(m.copy(tenant = "x"), m.copy(payees = m.payees + 1u), m.copy(residualMinor = "2"))) {
            assertNotEquals(digest, Rewarder.manifestDigest(changed))
        }
    }
}

/** [hex] with the digit at [index] changed to another hex digit. */
fun flipHex(hex: String, index: Int): String {
    val c = hex[index]
    val other = if (c == '0') '1' else '0'
    return hex.substring(0, index) + other + hex.substring(index + 1)
}
