package rewarder.android

import java.io.File
import java.net.ConnectException
import java.net.ServerSocket
import java.net.Socket
import org.junit.Assert.assertEquals
import org.junit.Assert.assertFalse
import org.junit.Assert.assertTrue
import org.junit.Assert.fail
import org.junit.Test
import uniffi.rewarder.EmbeddedNode
import uniffi.rewarder.RewarderException

/** Uploads a golden case to [node] and computes it over HTTP; returns the raw result body. */
fun computeOverHttp(node: EmbeddedNode, case: File, query: String = ""): String {
    val http = Http(node.baseUrl(), node.token())
    val inputs = http.put("/rewarder/inputs", Vectors.inputs(case))
    assertTrue(inputs.body, inputs.status == 201 || inputs.status == 200)
    val policy = http.put("/rewarder/policies", Vectors.policy(case))
    assertTrue(policy.body, policy.status == 201 || policy.status == 200)
    val epoch = inputs.json.str("epoch")
    val request =
        """{"inputs_cid":"${inputs.json.str("inputs_cid")}","policy_id":"${policy.json.str("policy_id")}",""" +
            """"policy_hash":"${policy.json.str("policy_hash")}"}"""
    val result = http.post("/rewarder/epochs/$epoch/compute$query", request)
    assertEquals(result.body, 200, result.status)
    return result.body
}

/** The embedded node: start, compute over HTTP, stop (twice). */
class EmbeddedNodeTest {
    @Test
    fun startsComputesOverHttpAndStopsTwice() {
        val node = Rewarder.startNode()
        val port = node.portNumber
        assertTrue(port > 0)
        assertEquals("http://127.0.0.1:$port", node.baseUrl())
        val http = Http(node.baseUrl(), node.token())
        assertEquals(200, http.get("/readyz").status)
        assertEquals("embedded", http.get("/version").json.str("profile"))
        val case = Vectors.cases.first { it.name == "basic" }
        val body = Json.parse(computeOverHttp(node, case))
        val local = Rewarder.compute(Vectors.inputs(case), Vectors.policy(case))
        assertEquals(local.manifest, manifestOf(body.obj("manifest")))
        assertEquals(local.manifestDigest, body.str("manifest_digest"))
        assertEquals(local.allocations, body.list("allocations").map(::allocationOf))
        assertEquals("dry_run", body.obj("ledger").str("status"))
        node.stop()
        node.stop()
        try {
            Socket("127.0.0.1", port).close()
            fail("the node still accepts connections after stop")
        } catch (_: ConnectException) {
        }
        node.close()
    }

    @Test
    fun everyGoldenCaseComputesTheSameOverHttpAsInProcess() {
        Rewarder.startNode().use { node ->
            for (case in Vectors.cases) {
                val body = Json.parse(computeOverHttp(node, case))
                val local = Rewarder.compute(Vectors.inputs(case), Vectors.policy(case))
                assertEquals(case.name, local.manifestDigest, body.str("manifest_digest"))
                assertEquals(case.name, local.allocations, body.list("allocations").map(::allocationOf))
            }
        }
    }

    @Test
    fun unusableAuthKeysAreInvalid() {
        try {
            Rewarder.startNode(authKeys = "k1:00ff").close()
            fail("accepted a 2-byte key")
        } catch (e: RewarderException.Invalid) {
            assertEquals("bad_request", e.code)
        }
    }

    @Test
    fun aTakenPortIsIo() {
        ServerSocket(0, 1, java.net.InetAddress.getLoopbackAddress()).use { taken ->
            try {
                Rewarder.startNode(port = taken.localPort).close()
                fail("bound a taken port")
            } catch (e: RewarderException.Io) {
                assertEquals(null, e.apiCode)
            }
        }
    }

    @Test
    fun byDefaultTheNodeAnswersOnlyTheAppHoldingItsToken() {
        Rewarder.startNode().use { node ->
            val token = node.token()
            assertTrue("a node private to its app has a token", token != null && token.isNotEmpty())
            val stranger = Http(node.baseUrl())
            assertEquals(200, stranger.get("/readyz").status)
            assertEquals(401, stranger.get("/rewarder/epochs/e1").status)
            assertEquals(404, Http(node.baseUrl(), token).get("/rewarder/epochs/e1").status)
        }
        Rewarder.startNode(open = true).use { node ->
            assertEquals(null, node.token())
            assertEquals(404, Http(node.baseUrl()).get("/rewarder/epochs/e1").status)
        }
    }

    @Test
    fun withAuthKeysRequestsNeedAToken() {
        val key = "00".repeat(32)
        Rewarder.startNode(authKeys = "k1:$key").use { node ->
            val http = Http(node.baseUrl(), node.token())
            assertEquals(200, http.get("/readyz").status)
            val refused = http.put("/rewarder/inputs", "{}".toByteArray())
            assertEquals(401, refused.status)
            assertEquals("unauthenticated", refused.json.obj("error").str("code"))
            assertFalse(node.baseUrl().endsWith("/"))
        }
    }
}
