package rewarder.android

import android.os.SystemClock
import androidx.test.ext.junit.runners.AndroidJUnit4
import androidx.test.platform.app.InstrumentationRegistry
import java.net.HttpURLConnection
import java.net.URI
import org.junit.Assert.assertEquals
import org.junit.Assert.assertTrue
import org.junit.Test
import org.junit.runner.RunWith

/**
 * The mobile cold-start contract (API.md §7, run on a 2 vCPU / 2 GiB emulator by hosted CI):
 * an [uniffi.rewarder.EmbeddedNode] answers `/readyz` within 2 s of being started, and the
 * first compute of an S epoch (1,000 actors, 10,000 events) answers within 750 ms.
 */
@RunWith(AndroidJUnit4::class)
class ColdStartTest {
    private class Answer(val status: Int, val body: String)

    private fun send(url: String, method: String, body: ByteArray? = null): Answer {
        val c = URI(url).toURL().openConnection() as HttpURLConnection
        c.requestMethod = method
        c.connectTimeout = 2_000
        c.readTimeout = 10_000
        if (body != null) {
            c.doOutput = true
            c.setRequestProperty("Content-Type", "application/json")
            c.outputStream.use { it.write(body) }
        }
        val status = c.responseCode
        val text = (if (status < 400) c.inputStream else c.errorStream)?.use { String(it.readBytes()) } ?: ""
        c.disconnect()
        return Answer(status, text)
    }

    private fun field(json: String, key: String): String =
        Regex("\"$key\"\\s*:\\s*\"([^\"]*)\"").find(json)?.groupValues?.get(1) ?: error("no $key in $json")

    @Test
    fun readyWithinTwoSecondsAndFirstSComputeWithin750ms() {
        val assets = InstrumentationRegistry.getInstrumentation().context.assets
        val inputs = assets.open("s/inputs.json").use { it.readBytes() }
        val policy = assets.open("s/policy.json").use { it.readBytes() }

        val started = SystemClock.elapsedRealtime()
        val node = Rewarder.startNode()
        try {
            var ready = false
            while (!ready && SystemClock.elapsedRealtime() - started < 2_000) {
                ready = runCatching { send("${node.baseUrl()}/readyz", "GET").status == 200 }.getOrDefault(false)
                if (!ready) Thread.sleep(10)
            }
            val readyMs = SystemClock.elapsedRealtime() - started
            assertTrue("/readyz not 200 within 2 s (waited $readyMs ms)", ready)

            val put = send("${node.baseUrl()}/rewarder/inputs", "PUT", inputs)
            assertEquals(put.body, 201, put.status)
            val pol = send("${node.baseUrl()}/rewarder/policies", "PUT", policy)
            assertEquals(pol.body, 201, pol.status)
            val request =
                """{"inputs_cid":"${field(put.body, "inputs_cid")}","policy_id":"${field(pol.body, "policy_id")}",""" +
                    """"policy_hash":"${field(pol.body, "policy_hash")}"}"""
            val computeStarted = SystemClock.elapsedRealtime()
            val result = send("${node.baseUrl()}/rewarder/epochs/${field(put.body, "epoch")}/compute", "POST", request.toByteArray())
            val computeMs = SystemClock.elapsedRealtime() - computeStarted
            assertEquals(result.body, 200, result.status)
            assertTrue("first S compute took $computeMs ms (contract: 750 ms)", computeMs <= 750)
            assertTrue(Rewarder.verifyIntegrityOnly(result.body, inputs, policy).isValid)
            println("cold start: readyz after $readyMs ms, first S compute $computeMs ms")
        } finally {
            node.stop()
            node.close()
        }
    }
}
