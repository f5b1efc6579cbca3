package rewarder.android

import org.junit.runner.JUnitCore
import org.junit.runner.notification.Failure
import kotlin.system.exitProcess

/**
 * Runs the JVM tests on a host without Gradle (scripts/ffi-kotlin-test.sh): every test class
 * named in the arguments, each failure with its trace, then `kotlin: N passed, N failed`.
 */
fun main(args: Array<String>) {
    val classes = args.map { Class.forName(it) }.toTypedArray()
    val core = JUnitCore()
    core.addListener(
        object : org.junit.runner.notification.RunListener() {
            override fun testFailure(failure: Failure) {
                System.err.println("FAILED ${failure.testHeader}\n${failure.trace}")
            }

            override fun testFinished(description: org.junit.runner.Description) {
                println("test ${description.className}.${description.methodName}")
            }
        },
    )
    val result = core.run(*classes)
    val failed = result.failureCount
    println("kotlin: ${result.runCount - failed} passed, $failed failed")
    exitProcess(if (result.wasSuccessful() && result.runCount > 0) 0 else 1)
}
