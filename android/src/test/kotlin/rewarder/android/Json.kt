package rewarder.android

/**
 * A small JSON reader for the tests (the JVM has none built in): objects become
 * [Map]s in document order, arrays [List]s, numbers [Long] (or [Double] with a fraction),
 * strings, booleans and null. Enough for the shared vectors and the node's answers.
 */
object Json {
    fun parse(text: String): Any? {
        val reader = Reader(text)
        val value = reader.value()
        reader.skipWhitespace()
        require(reader.pos == text.length) { "trailing characters at ${reader.pos}" }
        return value
    }

    private class Reader(val s: String) {
        var pos = 0

        fun skipWhitespace() {
            while (pos < s.length && s[pos] in " \t\r\n") pos++
        }

        fun value(): Any? {
            skipWhitespace()
            require(pos < s.length) { "unexpected end" }
            return when (s[pos]) {
                '{' -> obj()
                '[' -> arr()
                '"' -> str()
                't' -> literal("true", true)
                'f' -> literal("false", false)
                'n' -> literal("null", null)
                else -> num()
            }
        }

        fun literal(word: String, v: Any?): Any? {
            require(s.startsWith(word, pos)) { "bad literal at $pos" }
            pos += word.length
            return v
        }

        fun obj(): Map<String, Any?> {
            val out = LinkedHashMap<String, Any?>()
            pos++
            skipWhitespace()
            if (s[pos] == '}') return out.also { pos++ }
            while (true) {
                skipWhitespace()
                val key = str()
                skipWhitespace()
                require(s[pos] == ':') { "expected : at $pos" }
                pos++
                out[key] = value()
                skipWhitespace()
                when (s[pos++]) {
                    ',' -> continue
                    '}' -> return out
                    else -> error("expected , or } at ${pos - 1}")
                }
            }
        }

        fun arr(): List<Any?> {
            val out = ArrayList<Any?>()
            pos++
            skipWhitespace()
            if (s[pos] == ']') return out.also { pos++ }
            while (true) {
                out.add(value())
                skipWhitespace()
                when (s[pos++]) {
                    ',' -> continue
                    ']' -> return out
                    else -> error("expected , or ] at ${pos - 1}")
                }
            }
        }

        fun str(): String {
            require(s[pos] == '"') { "expected a string at $pos" }
            pos++
            val out = StringBuilder()
            while (true) {
                val c = s[pos++]
                when (c) {
                    '"' -> return out.toString()
                    '\\' -> {
                        when (val e = s[pos++]) {
                            'n' -> out.append('\n')
                            't' -> out.append('\t')
                            'r' -> out.append('\r')
                            'b' -> out.append('\b')
                            'f' -> out.append('\u000c')
                            'u' -> {
                                out.append(s.substring(pos, pos + 4).toInt(16).toChar())
                                pos += 4
                            }
                            else -> out.append(e)
                        }
                    }
                    else -> out.append(c)
                }
            }
        }

        fun num(): Any {
            val start = pos
            while (pos < s.length && (s[pos].isDigit() || s[pos] in "+-.eE")) pos++
            val text = s.substring(start, pos)
            require(text.isNotEmpty()) { "unexpected character at $start" }
            return text.toLongOrNull() ?: text.toDouble()
        }
    }
}

/** `this[key]` of a JSON object, typed. */
@Suppress("UNCHECKED_CAST")
fun Any?.obj(key: String): Map<String, Any?> = (this as Map<String, Any?>)[key] as Map<String, Any?>

@Suppress("UNCHECKED_CAST")
fun Any?.list(key: String): List<Any?> = (this as Map<String, Any?>)[key] as List<Any?>

@Suppress("UNCHECKED_CAST")
fun Any?.str(key: String): String = (this as Map<String, Any?>)[key] as String

@Suppress("UNCHECKED_CAST")
fun Any?.long(key: String): Long = (this as Map<String, Any?>)[key] as Long

@Suppress("UNCHECKED_CAST")
fun Any?.has(key: String): Boolean = (this as Map<String, Any?>).containsKey(key)
