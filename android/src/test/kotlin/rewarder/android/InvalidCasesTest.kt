package rewarder.android

import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import uniffi.rewarder.RewarderException

/** Every case of the shared `invalid.json` through Kotlin: `Invalid` with the API code. */
class InvalidCasesTest {
    private val basic = Vectors.cases.first { it.name == "basic" }

    @Test
    fun everyInvalidDocumentIsRefusedWithItsCode() {
        assertTrue("expected the shared invalid cases", Vectors.invalid.size >= 30)
        for ((i, case) in Vectors.invalid.withIndex()) {
            val raw = (case["raw"] as String).toByteArray(Charsets.UTF_8)
            val (inputs, policy) =
                when (case["doc"]) {
                    "inputs" -> raw to Vectors.policy(basic)
                    "policy" -> Vectors.inputs(basic) to raw
                    else -> error("case $i: unknown doc ${case["doc"]}")
                }
            try {
                Rewarder.compute(inputs, policy)
                fail("case $i (${case["code"]}) was accepted")
            } catch (e: RewarderException.Invalid) {
                assertEquals("case $i: ${case["raw"]}", case["code"], e.code)
                assertEquals(e.code, e.apiCode)
                assertTrue("case $i has a detail", e.detail.isNotEmpty())
            }
        }
    }

    @Test
    fun aBadTenantIsABadRequest() {
        try {
            Rewarder.compute(Vectors.inputs(basic), Vectors.policy(basic), "not a tenant")
            fail("accepted")
        } catch (e: RewarderException.Invalid) {
            assertEquals("bad_request", e.code)
        }
    }

    @Test
    fun malformedResultBodiesAreInvalidWithTheirCode() {
        for ((body, code) in listOf("not json" to "malformed_json", "{}" to "schema", "[1]" to "schema")) {
            try {
                Rewarder.verifyResult(body, emptyList())
                fail("$body was accepted")
            } catch (e: RewarderException.Invalid) {
                assertEquals(body, code, e.code)
            }
        }
    }
}
