package rewarder.android

import java.io.File
import java.math.BigInteger
import org.junit.Assert.assertEquals
import org.junit.Assert.assertNull
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import uniffi.rewarder.RewarderException

/** [Rewarder.compare] through the bindings: the golden comparison of `testing/compare`. */
class CompareTest {
    private val case = File(Vectors.dir, "waterfill")
    private val golden = File(Vectors.dir.parentFile, "compare/waterfill")
    private val policyB = File(golden, "policy-b.json").readBytes()

    @Test
    fun theGoldenComparisonComesThroughWithAParticipantsRow() {
        val want = Json.parse(File(golden, "expected.json").readText())
        val out = Rewarder.compare(Vectors.inputs(case), Vectors.policy(case), policyB, actor = "s1")
        assertEquals(5uL, out.population)
        for ((side, key) in listOf(out.a to "a", out.b to "b")) {
            assertEquals(key, manifestOf(want.obj(key).obj("manifest")), side.manifest)
            assertEquals(key, want.obj(key).str("manifest_digest"), side.manifestDigest)
            assertEquals(key, want.obj(key).obj("summary").str("gini"), side.summary.gini)
            assertEquals(key, want.obj(key).obj("summary").str("top10_share"), side.summary.top10Share)
        }
        val movers = want.list("movers").map { it.str("actor") to it.str("delta_minor") }
        assertEquals(movers, out.movers.map { it.actor to it.deltaMinor })
        assertEquals(out.b.manifest.payoutTotal - out.a.manifest.payoutTotal, out.movers.sumOf { it.delta })
        // "Your payout under the proposed policy": s1 is dust under A, paid under B.
        val s1 = out.actor ?: error("no row for s1")
        assertEquals(BigInteger.valueOf(39), s1.amountB)
        assertTrue(s1.dustA && !s1.dustB)
    }

    @Test
    fun aPolicyComparedWithItselfIsAnEmptyDiff() {
        val out = Rewarder.compare(Vectors.inputs(case), Vectors.policy(case), Vectors.policy(case), actor = "nobody")
        assertTrue(out.movers.isEmpty())
        assertEquals(out.a, out.b)
        assertNull(out.actor)
    }

    @Test
    fun refusalsCarryTheirApiCode() {
        for ((top, policy, code) in listOf(
            Triple(10_001, policyB, "bad_request"),
            Triple(100, "{}".toByteArray(), "schema"),
        )) {
            try {
                Rewarder.compare(Vectors.inputs(case), Vectors.policy(case), policy, top = top)
                fail("top $top should be refused")
            } catch (e: RewarderException.Invalid) {
                assertEquals(code, e.apiCode)
            }
        }
    }
}
